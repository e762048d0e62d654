//! A fake municipal archive behind a Fiks Arkiv integration, over HTTP on
//! 127.0.0.1:0 or as a directory integration (the protocol is in
//! `src/archive/transport.rs`).
//!
//! It validates every arkivmelding against the published XSD with xmllint
//! (an invalid one is refused with `ugyldigforespoersel`, and counted), checks
//! the document against the message's checksum, keeps elevmapper and
//! journalposts found by their external keys (a resend is `Eksisterende`),
//! answers `mottatt` and then a kvittering with a journalpost id (written
//! here from the kvittering XSD and validated against it too), and fails
//! when told: scripted faults, or at random at a seeded rate.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use quick_xml::events::Event;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

const OPPRETT: &str = "no.ks.fiks.arkiv.v1.arkivering.arkivmelding.opprett";
const MOTTATT: &str = "no.ks.fiks.arkiv.v1.arkivering.arkivmelding.opprett.mottatt";
const KVITTERING: &str = "no.ks.fiks.arkiv.v1.arkivering.arkivmelding.opprett.kvittering";

/// The token the fake wants, when it wants one.
pub const TOKEN: &str = "arkiv-hemmelig";

/// A fault the fake commits on the next request of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer 503 and do nothing.
    Unavailable,
    /// Journal the message, then answer 500 as if the answer got lost.
    LoseAnswer,
    /// Receive the message, then reply `serverfeil` instead of a kvittering.
    ServerFeil,
    /// Refuse the message (`ugyldigforespoersel`).
    Refuse,
}

/// An elevmappe.
#[derive(Debug, Clone)]
pub struct Folder {
    /// Its system id.
    pub system_id: String,
    /// Its title.
    pub title: String,
}

/// A journalpost as archived.
#[derive(Debug, Clone)]
pub struct Journalpost {
    /// Its system id.
    pub system_id: String,
    /// Its sequence number in the year.
    pub number: u32,
    /// The folder's external key.
    pub folder_key: String,
    /// Its title.
    pub title: String,
    /// The message that created it.
    pub arkivmelding: String,
    /// The document.
    pub document: Vec<u8>,
}

/// The archive's contents and what it has seen.
#[derive(Debug, Default, Clone)]
pub struct ArchiveState {
    /// Elevmapper by external key.
    pub folders: BTreeMap<String, Folder>,
    /// Journalposts by external key.
    pub journalposts: BTreeMap<String, Journalpost>,
    /// Uploaded files: (message id, name) → bytes.
    pub files: HashMap<(String, String), Vec<u8>>,
    /// Replies by message id (kvittering or feilmelding XML).
    pub replies: HashMap<String, String>,
    /// Messages received (message id → times).
    pub received: HashMap<String, u32>,
    /// Scripted faults for POSTs, taken in order.
    pub faults: VecDeque<Fault>,
    /// Scripted HTTP statuses for reply fetches (GET), taken in order.
    pub poll_faults: VecDeque<u16>,
    /// Chance of a random fault per POST and per GET.
    pub fail_rate: f64,
    /// Faults committed, by kind.
    pub faults_committed: Vec<Fault>,
    /// Messages that failed XSD validation.
    pub invalid_messages: u32,
    /// Whether a bearer token is required.
    pub require_token: bool,
    rng: Option<ChaCha8Rng>,
}

/// A running fake archive.
pub struct FakeArchive {
    /// Its address (HTTP).
    pub addr: SocketAddr,
    /// Its state.
    pub state: Arc<Mutex<ArchiveState>>,
}

type Shared = Arc<Mutex<ArchiveState>>;

impl FakeArchive {
    /// Starts the fake; random faults at `fail_rate` from `seed`.
    pub async fn start(fail_rate: f64, seed: u64) -> FakeArchive {
        let state = Arc::new(Mutex::new(ArchiveState {
            fail_rate,
            rng: Some(ChaCha8Rng::seed_from_u64(seed)),
            ..ArchiveState::default()
        }));
        let app = Router::new()
            .route("/fiks/meldinger/{id}/filer/{name}", put(upload))
            .route("/fiks/meldinger/{id}", post(message))
            .route("/fiks/meldinger/{id}/svar", get(reply))
            .with_state(state.clone());
        FakeArchive {
            addr: super::serve(app).await,
            state,
        }
    }

    /// The base URL for the HTTP transport.
    pub fn url(&self) -> String {
        format!("http://{}/fiks", self.addr)
    }
}

fn authorised(s: &ArchiveState, headers: &HeaderMap) -> bool {
    !s.require_token
        || headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(format!("Bearer {TOKEN}").as_str())
}

fn random_fault(s: &mut ArchiveState, kinds: &[Fault]) -> Option<Fault> {
    let rate = s.fail_rate;
    let rng = s.rng.as_mut()?;
    if rng.random_bool(rate.clamp(0.0, 1.0)) {
        Some(kinds[rng.random_range(0..kinds.len())])
    } else {
        None
    }
}

async fn upload(
    State(s): State<Shared>,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = s.lock().unwrap();
    if !authorised(&s, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    s.files.insert((id, name), body.to_vec());
    StatusCode::NO_CONTENT.into_response()
}

async fn message(State(s): State<Shared>, Path(id): Path<String>, headers: HeaderMap, body: String) -> Response {
    {
        let s = s.lock().unwrap();
        if !authorised(&s, &headers) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    if headers.get("fiks-meldingstype").and_then(|v| v.to_str().ok()) != Some(OPPRETT) {
        return (
            StatusCode::BAD_REQUEST,
            feilmelding("ugyldigforespoersel", "feil meldingstype"),
        )
            .into_response();
    }
    let fault = {
        let mut s = s.lock().unwrap();
        let scripted = s.faults.pop_front();
        let fault =
            scripted.or_else(|| random_fault(&mut s, &[Fault::Unavailable, Fault::LoseAnswer, Fault::ServerFeil]));
        if let Some(f) = fault {
            s.faults_committed.push(f);
        }
        fault
    };
    match fault {
        Some(Fault::Unavailable) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Some(Fault::Refuse) => {
            return (
                StatusCode::BAD_REQUEST,
                feilmelding("ugyldigforespoersel", "Arkivdelen finnes ikke"),
            )
                .into_response();
        }
        _ => {}
    }
    let files = {
        let s = s.lock().unwrap();
        s.files
            .iter()
            .filter(|((m, _), _)| *m == id)
            .map(|((_, n), b)| (n.clone(), b.clone()))
            .collect::<HashMap<_, _>>()
    };
    // xmllint runs outside the lock.
    let outcome = tokio::task::spawn_blocking({
        let body = body.clone();
        move || journal_check(&body, &files)
    })
    .await
    .unwrap();
    let mut st = s.lock().unwrap();
    *st.received.entry(id.clone()).or_default() += 1;
    match outcome {
        Err(why) => {
            st.invalid_messages += 1;
            return (StatusCode::BAD_REQUEST, feilmelding("ugyldigforespoersel", &why)).into_response();
        }
        Ok(parsed) => {
            if fault == Some(Fault::ServerFeil) {
                st.replies
                    .insert(id, feilmelding("serverfeil", "Arkivet er midlertidig utilgjengelig"));
            } else {
                let kvittering = journal(&mut st, parsed, &body);
                st.replies.insert(id, kvittering);
            }
        }
    }
    if fault == Some(Fault::LoseAnswer) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (StatusCode::ACCEPTED, [("Fiks-Meldingstype", MOTTATT)]).into_response()
}

async fn reply(State(s): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut s = s.lock().unwrap();
    if !authorised(&s, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if let Some(code) = s.poll_faults.pop_front() {
        return StatusCode::from_u16(code).unwrap().into_response();
    }
    if random_fault(&mut s, &[Fault::Unavailable]).is_some() {
        s.faults_committed.push(Fault::Unavailable);
        return StatusCode::BAD_GATEWAY.into_response();
    }
    match s.replies.get(&id) {
        Some(xml) => {
            let kind = if xml.contains("arkivmeldingKvittering") {
                KVITTERING
            } else {
                "no.ks.fiks.arkiv.v1.feilmelding.serverfeil"
            };
            (StatusCode::OK, [("Fiks-Meldingstype", kind)], xml.clone()).into_response()
        }
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// What the fake reads out of an arkivmelding.
#[derive(Debug, Clone)]
pub struct Parsed {
    folder_key: String,
    folder_title: String,
    journalpost_key: String,
    title: String,
    file: Vec<u8>,
}

/// The text of the first element whose path ends with `suffix` (local names).
pub fn text_at(xml: &str, suffix: &[&str]) -> Option<String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => path.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned()),
            Event::End(_) => {
                path.pop();
            }
            Event::Text(t) if path.ends_with(&suffix.iter().map(|s| s.to_string()).collect::<Vec<_>>()) => {
                let raw = t.decode().ok()?.into_owned();
                return Some(quick_xml::escape::unescape(&raw).map(|c| c.into_owned()).unwrap_or(raw));
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// Validates `xml` against the Fiks Arkiv schema `xsd` with xmllint.
pub fn xmllint(xml: &str, xsd: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("m.xml");
    std::fs::write(&file, xml).map_err(|e| e.to_string())?;
    let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("standards/fiks-arkiv-v1")
        .join(xsd);
    let out = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema)
        .arg(&file)
        .output()
        .map_err(|e| format!("xmllint is missing (scripts/tools installs it): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Checks a message as an archive would: schema, files, checksum.
fn journal_check(xml: &str, files: &HashMap<String, Vec<u8>>) -> Result<Parsed, String> {
    xmllint(xml, "no.ks.fiks.arkiv.v1.arkivering.arkivmelding.opprett.xsd")?;
    let get = |path: &[&str]| text_at(xml, path).ok_or_else(|| format!("mangler {}", path.join("/")));
    let reference = get(&["dokumentobjekt", "referanseDokumentfil"])?;
    let file = files
        .get(&reference)
        .ok_or_else(|| format!("filen {reference} er ikke lastet opp"))?
        .clone();
    let checksum = get(&["dokumentobjekt", "sjekksum"])?;
    if hex::encode(Sha256::digest(&file)) != checksum {
        return Err("sjekksummen stemmer ikke".into());
    }
    if get(&["dokumentobjekt", "filstoerrelse"])? != file.len().to_string() {
        return Err("filstørrelsen stemmer ikke".into());
    }
    Ok(Parsed {
        folder_key: get(&["mappe", "referanseEksternNoekkel", "noekkel"])?,
        folder_title: get(&["mappe", "tittel"])?,
        journalpost_key: get(&["registrering", "referanseEksternNoekkel", "noekkel"])?,
        title: get(&["registrering", "tittel"])?,
        file,
    })
}

/// Journals a checked message (finding the folder and the journalpost by
/// their keys) and returns the kvittering.
fn journal(s: &mut ArchiveState, p: Parsed, xml: &str) -> String {
    let folder_created = !s.folders.contains_key(&p.folder_key);
    let n = s.folders.len();
    let folder = s
        .folders
        .entry(p.folder_key.clone())
        .or_insert_with(|| Folder {
            system_id: format!("00000000-0000-4000-8000-{:012}", n + 1),
            title: p.folder_title.clone(),
        })
        .clone();
    let created = !s.journalposts.contains_key(&p.journalpost_key);
    let next = s.journalposts.len() as u32 + 101;
    let jp = s
        .journalposts
        .entry(p.journalpost_key.clone())
        .or_insert_with(|| Journalpost {
            system_id: format!("11111111-0000-4000-8000-{next:012}"),
            number: next,
            folder_key: p.folder_key.clone(),
            title: p.title.clone(),
            arkivmelding: xml.to_string(),
            document: p.file.clone(),
        })
        .clone();
    let status = |c: bool| if c { "Opprettet" } else { "Eksisterende" };
    let kvittering = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<arkivmeldingKvittering xmlns="https://ks-no.github.io/standarder/fiks-protokoll/fiks-arkiv/arkivmelding/opprett/kvittering/v1" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <mappeKvittering xsi:type="saksmappeKvittering">
    <systemID>{}</systemID>
    <opprettetEllerEksisterende>{}</opprettetEllerEksisterende>
  </mappeKvittering>
  <registreringKvittering xsi:type="journalpostKvittering">
    <systemID>{}</systemID>
    <opprettetEllerEksisterende>{}</opprettetEllerEksisterende>
    <journalaar>2026</journalaar>
    <journalsekvensnummer>{}</journalsekvensnummer>
  </registreringKvittering>
</arkivmeldingKvittering>
"#,
        folder.system_id,
        status(folder_created),
        jp.system_id,
        status(created),
        jp.number
    );
    xmllint(
        &kvittering,
        "no.ks.fiks.arkiv.v1.arkivering.arkivmelding.opprett.kvittering.xsd",
    )
    .expect("the fake's kvittering is valid");
    kvittering
}

/// A feilmelding of the given kind (`ugyldigforespoersel`, `serverfeil`).
pub fn feilmelding(kind: &str, message: &str) -> String {
    let message = message.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let xml = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<{kind} xmlns="https://ks-no.github.io/standarder/fiks-protokoll/fiks-arkiv/feil/{kind}/v1" xmlns:f="https://ks-no.github.io/standarder/fiks-protokoll/fiks-arkiv/feil/feilmelding/v1"><f:feilId>feil-1</f:feilId><f:feilmelding>{message}</f:feilmelding></{kind}>
"#
    );
    xmllint(&xml, &format!("no.ks.fiks.arkiv.v1.feilmelding.{kind}.xsd")).expect("the fake's feilmelding is valid");
    xml
}

/// The archive side of the directory transport: takes each message folder
/// out of `outbox`, journals it and writes the reply to `replies`. Returns
/// how many messages it took.
pub fn process_directory(
    state: &Arc<Mutex<ArchiveState>>,
    outbox: &std::path::Path,
    replies: &std::path::Path,
) -> usize {
    std::fs::create_dir_all(replies).unwrap();
    let Ok(entries) = std::fs::read_dir(outbox) else {
        return 0;
    };
    let mut taken = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        let dir = entry.path();
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("melding.json")).unwrap()).unwrap();
        assert_eq!(manifest["meldingstype"], OPPRETT);
        assert_eq!(manifest["meldingId"], name.as_str());
        let xml = std::fs::read_to_string(dir.join("arkivmelding.xml")).unwrap();
        let files: HashMap<String, Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|f| {
                (
                    f.file_name().to_string_lossy().into_owned(),
                    std::fs::read(f.path()).unwrap(),
                )
            })
            .collect();
        let reply = match journal_check(&xml, &files) {
            Ok(parsed) => {
                let mut s = state.lock().unwrap();
                *s.received.entry(name.clone()).or_default() += 1;
                journal(&mut s, parsed, &xml)
            }
            Err(why) => {
                state.lock().unwrap().invalid_messages += 1;
                feilmelding("ugyldigforespoersel", &why)
            }
        };
        std::fs::write(replies.join(format!("{name}.xml")), reply).unwrap();
        // The integration moves what it took out of the drop folder.
        std::fs::remove_dir_all(&dir).unwrap();
        taken += 1;
    }
    taken
}
