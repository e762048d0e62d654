//! The identity map (issue 13, item 2): a pupil is (source, local id) unless
//! the rosters link ids across sources through the column IT configured (a
//! Feide id, a national id stored only as an HMAC token). Linked pupils are
//! one child with one finding and one case; a link never crosses schools,
//! never gives an id a second child, and never merges two open cases.

use crate::support::{jsonl_line, post_jsonl, tilstede, tilstede_ok, today};
use std::path::Path;
use std::time::Duration;
use tilstede::domain::identity::{IdentityColumn, IdentityKind, PupilIdentity};
use tilstede::store::Store;

const SKOLE02_PUSH: &str = "skole02-push-5c7e9a1b3d5f7a9c1e3b5d";
const LAERING_PUSH: &str = "laering-push-8d6b4f2a0e8c6a4f2d0b8e";
const ANNEN_PUSH: &str = "annen-push-1f3d5b7a9c1e3f5d7b9a1c";
const READER_02: &str = "reader-skole02-4e2c0a8f6d4b2e0c8a6f";
/// The installation's identity key (HMAC-SHA256).
const IDENTITY_KEY: &str = "identity-key-0d2f4b6a8c0e2d4f6b8a0c2e";

/// Two school systems that both write skole-02 and whose rosters carry the
/// pupils' Feide ids, and `annen`, which writes skole-01 only.
fn write_config(dir: &Path, kind: &str, column: &str) -> std::path::PathBuf {
    for (file, token) in [
        ("skole02.token", SKOLE02_PUSH),
        ("laering.token", LAERING_PUSH),
        ("annen.token", ANNEN_PUSH),
        ("r02.token", READER_02),
        ("identity.key", IDENTITY_KEY),
    ] {
        std::fs::write(dir.join(file), format!("{token}\n")).unwrap();
    }
    let text = format!(
        r#"
store = "store.db"
[identity]
key_file = "identity.key"
[http.users.skole02]
token_file = "r02.token"
schools = ["skole-02"]
[sources.skole02]
schools = ["skole-02"]
token_file = "skole02.token"
identity = {{ kind = "{kind}", column = "{column}" }}
[sources.laering]
schools = ["skole-02"]
token_file = "laering.token"
identity = {{ kind = "{kind}", column = "{column}" }}
[sources.annen]
schools = ["skole-01"]
token_file = "annen.token"
identity = {{ kind = "{kind}", column = "{column}" }}
"#
    );
    let path = dir.join("tilstede.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A roster CSV with an identity column: (school, pupil id, identity).
fn write_roster(dir: &Path, name: &str, column: &str, rows: &[(&str, &str, &str)]) -> std::path::PathBuf {
    let mut text = format!("{};{column}\n", tilstede::adapters::roster_csv::HEADER);
    for (school, pupil, identity) in rows {
        text.push_str(&format!(
            "{school};Skolen;{school}-5a;5A;5;{pupil};Ola;Nordmann;;;;;;{identity}\n"
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn line(id: &str, pupil: &str, school: &str, date: chrono::NaiveDate, validity: &str) -> String {
    jsonl_line(id, pupil, school, date, "day", validity)
}

async fn push(http: &reqwest::Client, base: &str, source: &str, token: &str, body: &str) {
    let r = post_jsonl(http, base, source, token, body).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
}

/// Polls until `done` holds for the findings of the store, or ten seconds pass.
async fn wait_for(
    store: &Store,
    done: impl Fn(&[tilstede::domain::Finding]) -> bool,
) -> Vec<tilstede::domain::Finding> {
    let mut last = Vec::new();
    for _ in 0..200 {
        last = store.findings(None).await.unwrap();
        if done(&last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

/// The issue's case: two school systems, different local ids for one child,
/// the same Feide id in both rosters. After the rosters are imported (by
/// the CLI, while the service runs), the child is one pupil: the record the
/// second system had already sent moves to it, the next one it sends lands
/// there too, and there is one finding with both systems' evidence and one
/// case. A local id both systems use without a map stays two children, and
/// a source that claims the child in a school it may not write is refused.
#[tokio::test]
async fn two_sources_one_feide_id_are_one_child_with_one_case() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), "feide", "feide");
    let config = tilstede::config::Config::load(&config_path).unwrap();
    let running = tilstede::service::start(config, Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let store = running.state.store.clone();
    let day = today() - chrono::Days::new(1);
    let earlier = today() - chrono::Days::new(2);
    push(
        &http,
        &base,
        "skole02",
        SKOLE02_PUSH,
        &line("s1", "p7", "skole-02", day, "invalid"),
    )
    .await;
    push(
        &http,
        &base,
        "laering",
        LAERING_PUSH,
        &line("l1", "l9", "skole-02", earlier, "valid"),
    )
    .await;
    // Same local id in both systems, no identity: two children.
    push(
        &http,
        &base,
        "skole02",
        SKOLE02_PUSH,
        &line("s8", "p8", "skole-02", day, "invalid"),
    )
    .await;
    push(
        &http,
        &base,
        "laering",
        LAERING_PUSH,
        &line("l8", "p8", "skole-02", day, "invalid"),
    )
    .await;
    wait_for(&store, |f| f.len() == 3).await;

    let store_path = dir.path().join("store.db");
    let config_arg = config_path.to_str().unwrap();
    let roster = write_roster(
        dir.path(),
        "skole02.csv",
        "feide",
        &[("skole-02", "p7", "ola123@skole.kommune.no"), ("skole-02", "p8", "")],
    );
    let (out, _) = tilstede_ok(
        &store_path,
        &[
            "adapters",
            "roster",
            roster.to_str().unwrap(),
            "--config",
            config_arg,
            "--source",
            "skole02",
        ],
    );
    assert!(out.contains("1 elev knyttet"), "{out}");
    let roster = write_roster(
        dir.path(),
        "laering.csv",
        "feide",
        &[("skole-02", "l9", "Ola123@Skole.Kommune.no"), ("skole-02", "p8", "")],
    );
    let (out, _) = tilstede_ok(
        &store_path,
        &[
            "adapters",
            "roster",
            roster.to_str().unwrap(),
            "--config",
            config_arg,
            "--source",
            "laering",
        ],
    );
    assert!(out.contains("1 elev flyttet"), "{out}");
    // `annen` may write skole-01 only: its claim on the child is refused.
    let roster = write_roster(
        dir.path(),
        "annen.csv",
        "feide",
        &[("skole-01", "a1", "ola123@skole.kommune.no")],
    );
    let out = tilstede(
        &store_path,
        &[
            "adapters",
            "roster",
            roster.to_str().unwrap(),
            "--config",
            config_arg,
            "--source",
            "annen",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("identity-other-school"), "{stderr}");

    // The service has l9 cached under its old key: the next record follows the link.
    push(
        &http,
        &base,
        "laering",
        LAERING_PUSH,
        &line("l2", "l9", "skole-02", day, "invalid"),
    )
    .await;
    let findings = wait_for(&store, |f| f.iter().any(|f| f.evidence.contains(&"l2".to_string()))).await;
    let mut seen: Vec<(String, Vec<String>)> = findings
        .iter()
        .map(|f| {
            let mut e = f.evidence.clone();
            e.sort();
            (f.pupil.clone(), e)
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("laering:p8".to_string(), vec!["l8".to_string()]),
            ("p7".to_string(), vec!["l2".to_string(), "s1".to_string()]),
            ("p8".to_string(), vec!["s8".to_string()]),
        ]
    );
    let records = store.pupil_records("p7", earlier, day).await.unwrap();
    assert_eq!(records.len(), 3, "the record sent before the link moved too");
    assert_eq!(
        store.pupil_identities("p7").await.unwrap(),
        [
            ("laering".to_string(), "l9".to_string()),
            ("skole02".to_string(), "p7".to_string())
        ]
    );
    assert!(store.pupil_identities("l9").await.unwrap().is_empty());
    assert!(store.pupil_identities("annen:a1").await.unwrap().len() <= 1);
    // One roster entry for the child, one per child with the same local id.
    assert!(store.pupil_context("p7").await.unwrap().is_some());
    assert!(store.pupil_context("l9").await.unwrap().is_none());
    assert!(store.pupil_context("laering:p8").await.unwrap().is_some());
    // One case per child: p7, p8 and laering:p8.
    let mut cases = Vec::new();
    for _ in 0..200 {
        cases = store.cases_raw(None, false).await.unwrap();
        if cases.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut pupils: Vec<String> = cases.iter().map(|c| c.pupil.id.clone()).collect();
    pupils.sort();
    assert_eq!(pupils, ["laering:p8", "p7", "p8"]);
    let quarantined = store.quarantined(10).await.unwrap();
    assert!(
        quarantined
            .iter()
            .any(|q| q.entry.reason.starts_with("identity-other-school") && q.entry.source.as_deref() == Some("annen")),
        "{quarantined:?}"
    );
    running.shutdown().await.unwrap();
}

fn record(source: &str, id: &str, pupil: &str, school: &str, date: chrono::NaiveDate, validity: &str) -> String {
    format!(
        r#"{{"source":"{source}","id":"{id}","pupil":"{pupil}","school":"{school}","date":"{date}","kind":"day","validity":"{validity}"}}"#
    )
}

async fn store_lines(store: &Store, lines: &[String]) {
    let items: Vec<std::io::Result<tilstede::adapters::Parsed>> = lines
        .iter()
        .map(|l| {
            Ok(tilstede::adapters::Parsed::Record(
                tilstede::domain::AbsenceRecord::from_json_str(l).unwrap(),
            ))
        })
        .collect();
    tilstede::ingest::ingest(store, items, |_| {}).await.unwrap();
}

async fn evaluate(store: &Store) {
    let rules = tilstede::rules::RuleSet::load("baerum").unwrap();
    store.refresh_findings(&rules, today()).await.unwrap();
    let cases = tilstede::cases::config::CaseConfig::load("baerum").unwrap();
    tilstede::workflow::sync_cases(store, &cases, chrono::Utc::now())
        .await
        .unwrap();
}

/// The scope of a source that may write skole-02 only (`annen`: skole-01).
fn scope(source: &str) -> tilstede::ingest::Scope {
    let school = if source == "annen" { "skole-01" } else { "skole-02" };
    tilstede::ingest::Scope::new(source, tilstede::config::Schools::Only([school.to_string()].into()))
}

fn link(local: &str, school: &str, token: &str) -> PupilIdentity {
    PupilIdentity {
        local: local.into(),
        school: school.into(),
        token: token.into(),
    }
}

/// A link that arrives after both pupils have records: each system alone
/// has three days of valid absence (below Bærum's five), together six.
/// After the link the next evaluation sees one child: one
/// `high-valid-absence` finding with all six days, one case.
#[tokio::test]
async fn a_late_link_re_keys_records_so_the_next_evaluation_sees_one_child() {
    for store in crate::support::store_backends().await {
        let url = store.url().to_string();
        let mut lines = Vec::new();
        for d in 2..5u64 {
            let date = today() - chrono::Days::new(d * 7);
            lines.push(record("vis", &format!("v{d}"), "e1", "skole-02", date, "valid"));
            lines.push(record(
                "flyt",
                &format!("f{d}"),
                "x5",
                "skole-02",
                date + chrono::Days::new(1),
                "valid",
            ));
        }
        store_lines(&store, &lines).await;
        evaluate(&store).await;
        assert!(store.findings(None).await.unwrap().is_empty(), "{url}");
        let r = store
            .link_identities(&scope("vis"), &[link("e1", "skole-02", "t-ola")])
            .await
            .unwrap();
        assert_eq!((r.linked, r.moved, r.refused.len()), (1, 0, 0), "{url}");
        let r = store
            .link_identities(&scope("flyt"), &[link("x5", "skole-02", "t-ola")])
            .await
            .unwrap();
        assert_eq!((r.linked, r.moved, r.refused.len()), (1, 1, 0), "{url}");
        evaluate(&store).await;
        let findings = store.findings(None).await.unwrap();
        assert_eq!(findings.len(), 1, "{url}: {findings:?}");
        assert_eq!(findings[0].pupil, "e1");
        assert_eq!(findings[0].rule, "high-valid-absence");
        assert_eq!(findings[0].evidence.len(), 6, "{url}");
        let cases = store.cases_raw(None, false).await.unwrap();
        assert_eq!(cases.len(), 1, "{url}");
        // Linking again is idempotent.
        let r = store
            .link_identities(&scope("flyt"), &[link("x5", "skole-02", "t-ola")])
            .await
            .unwrap();
        assert_eq!((r.linked, r.moved, r.refused.len()), (1, 0, 0), "{url}");
        // A record pushed while the link committed landed under the old
        // key: the next link (the next roster import) moves it on.
        sqlx::query("UPDATE records SET pupil = 'x5' WHERE source = 'flyt' AND id = 'f2'")
            .execute(store.pool())
            .await
            .unwrap();
        let r = store
            .link_identities(&scope("flyt"), &[link("x5", "skole-02", "t-ola")])
            .await
            .unwrap();
        assert_eq!((r.linked, r.moved), (1, 1), "{url}");
        let from = today() - chrono::Days::new(60);
        assert!(
            store.pupil_records("x5", from, today()).await.unwrap().is_empty(),
            "{url}"
        );
        assert_eq!(
            store.pupil_records("e1", from, today()).await.unwrap().len(),
            6,
            "{url}"
        );
    }
}

/// Conflicting links are refused with a reason code and change nothing: an
/// id already linked to another child, a second id of one source for the
/// same child, a child in another school, and two pupils that each have an
/// open case (tilstede does not merge cases; IT closes one first).
#[tokio::test]
async fn conflicting_links_are_refused_and_change_nothing() {
    for store in crate::support::store_backends().await {
        let url = store.url().to_string();
        let day = today() - chrono::Days::new(1);
        store_lines(
            &store,
            &[
                record("vis", "v1", "e1", "skole-02", day, "invalid"),
                record("flyt", "f1", "x5", "skole-02", day, "invalid"),
            ],
        )
        .await;
        evaluate(&store).await;
        assert_eq!(store.cases_raw(None, false).await.unwrap().len(), 2, "{url}");
        let r = store
            .link_identities(
                &scope("vis"),
                &[
                    link("e1", "skole-02", "t-ola"),
                    link("e2", "skole-02", "t-kari"),
                    // A second pupil of the same source for the same child.
                    link("e3", "skole-02", "t-ola"),
                ],
            )
            .await
            .unwrap();
        assert_eq!(r.linked, 2, "{url}");
        assert_eq!(r.refused.len(), 1, "{url}");
        assert_eq!(
            (r.refused[0].local.as_str(), r.refused[0].code.as_str()),
            ("e3", "identity-conflict")
        );
        // An id already linked to another child.
        let r = store
            .link_identities(&scope("vis"), &[link("e1", "skole-02", "t-kari")])
            .await
            .unwrap();
        assert_eq!(r.refused[0].code.as_str(), "identity-conflict", "{url}");
        // The child in another school.
        let r = store
            .link_identities(&scope("annen"), &[link("a1", "skole-01", "t-ola")])
            .await
            .unwrap();
        assert_eq!(r.refused[0].code.as_str(), "identity-other-school", "{url}");
        // A school the source may not write.
        let r = store
            .link_identities(&scope("annen"), &[link("a2", "skole-02", "t-ola")])
            .await
            .unwrap();
        assert_eq!(
            (r.linked, r.refused[0].code.as_str()),
            (0, "school-not-allowed"),
            "{url}"
        );
        // Both pupils have an open case: refused, and the reason names both.
        let r = store
            .link_identities(&scope("flyt"), &[link("x5", "skole-02", "t-ola")])
            .await
            .unwrap();
        assert_eq!(r.linked, 0, "{url}");
        assert_eq!(r.refused[0].code.as_str(), "identity-open-cases", "{url}");
        let cases = store.cases_raw(None, false).await.unwrap();
        for c in &cases {
            assert!(r.refused[0].reason.contains(&c.number), "{}", r.refused[0].reason);
        }
        // Nothing moved.
        assert_eq!(store.pupil_records("x5", day, day).await.unwrap().len(), 1, "{url}");
        assert_eq!(store.pupil_records("e1", day, day).await.unwrap().len(), 1, "{url}");
        assert_eq!(
            store.pupil_identities("e1").await.unwrap(),
            [("vis".to_string(), "e1".to_string())],
            "{url}"
        );
        evaluate(&store).await;
        assert_eq!(store.cases_raw(None, false).await.unwrap().len(), 2, "{url}");
    }
}

/// The national id is hashed as the roster is read: neither the store file
/// nor its write-ahead log holds it in any spelling, only the HMAC token.
#[test]
fn the_national_id_is_never_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "national-id", "fodselsnummer");
    let roster = write_roster(
        dir.path(),
        "roster.csv",
        "fodselsnummer",
        &[
            ("skole-02", "p7", "240512 34567"),
            ("skole-02", "p9", "11111111111"),
            // Ten digits: no national id; quarantined without the value.
            ("skole-02", "p6", "9876543210"),
        ],
    );
    let store = dir.path().join("store.db");
    let (out, _) = tilstede_ok(
        &store,
        &[
            "adapters",
            "roster",
            roster.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--source",
            "skole02",
        ],
    );
    assert!(out.contains("2 elever knyttet"), "{out}");
    let mut bytes = Vec::new();
    for file in ["store.db", "store.db-wal"] {
        if let Ok(b) = std::fs::read(dir.path().join(file)) {
            bytes.extend(b);
        }
    }
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    for id in ["24051234567", "240512 34567", "240512", "11111111111", "9876543210"] {
        assert!(!has(id.as_bytes()), "«{id}» is in the store");
    }
    let token = IdentityColumn::new(IdentityKind::NationalId, "fodselsnummer", IDENTITY_KEY.as_bytes())
        .token("24051234567")
        .unwrap()
        .unwrap();
    assert!(has(token.as_bytes()), "the token is stored");
    assert!(
        has(b"identity-malformed"),
        "the bad value is quarantined by its reason code"
    );
}

/// `config check` holds the identity map to its rules: a known kind, a
/// column, and a key of at least 32 bytes.
#[test]
fn config_check_requires_a_long_identity_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "feide", "feide");
    let check = |text: &str| {
        let path = dir.path().join("check.toml");
        std::fs::write(&path, text).unwrap();
        let out = tilstede(&dir.path().join("x.db"), &["config", "check", path.to_str().unwrap()]);
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(check(&text).0, "{}", check(&text).1);
    std::fs::write(dir.path().join("short.key"), "kort-nøkkel\n").unwrap();
    let (ok, err) = check(&text.replace("identity.key", "short.key"));
    assert!(!ok && err.contains("identity.key_file: for kort"), "{err}");
    let (ok, err) = check(&text.replace("[identity]\nkey_file = \"identity.key\"\n", ""));
    assert!(!ok && err.contains("[identity] key_env eller key_file"), "{err}");
    let (ok, err) = check(&text.replacen("kind = \"feide\"", "kind = \"personnummer\"", 1));
    assert!(!ok && err.contains("sources.skole02.identity.kind"), "{err}");
}

/// A OneRoster pull of a source with an identity column reads the pupil's
/// Feide id from its `userIds` and links the pupil to another source's
/// pupil with the same Feide id: the config carries the source's identity
/// into its pull, and the pulled pupil is stored under the linked key.
#[tokio::test]
async fn a_oneroster_pull_links_pupils_by_their_feide_user_id() {
    use crate::fake::oneroster::{self, CLIENT_ID, CLIENT_SECRET, OneRosterState};
    let m = tilstede::synthetic::Municipality::generate(30, 1, 5);
    let child = m.pupils[0].clone();
    let mut collections = oneroster::from_municipality(&m);
    let user = collections
        .get_mut("users")
        .unwrap()
        .iter_mut()
        .find(|u| u["sourcedId"] == child.id.as_str())
        .unwrap();
    user["userIds"] = serde_json::json!([{"type": "Feide", "identifier": "Ola123@skole.kommune.no"}]);
    let server = oneroster::start(OneRosterState {
        collections,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("identity.key"), IDENTITY_KEY).unwrap();
    std::fs::write(dir.path().join("or.secret"), CLIENT_SECRET).unwrap();
    let text = format!(
        r#"
[identity]
key_file = "identity.key"
[sources.skoleadm]
schools = ["{school}"]
identity = {{ kind = "feide", column = "userIds.Feide" }}
[sources.skoleadm.pull]
adapter = "oneroster"
base_url = "http://{addr}"
client_id = "{CLIENT_ID}"
client_secret_file = "{secret}"
"#,
        school = child.school,
        addr = server.addr,
        secret = dir.path().join("or.secret").display(),
    );
    let config = tilstede::config::parse_and_validate(&text, dir.path()).unwrap();
    let store = Store::open(dir.path().join("t.db").to_str().unwrap()).await.unwrap();
    let day = today() - chrono::Days::new(1);
    store_lines(&store, &[record("laering", "l1", "l9", &child.school, day, "invalid")]).await;
    let token = IdentityColumn::new(IdentityKind::Feide, "feide", IDENTITY_KEY.as_bytes())
        .token("ola123@skole.kommune.no")
        .unwrap()
        .unwrap();
    let r = store
        .link_identities(
            &tilstede::ingest::Scope::new("laering", tilstede::config::Schools::All),
            &[link("l9", &child.school, &token)],
        )
        .await
        .unwrap();
    assert_eq!(r.linked, 1);
    let pull = &config.sources["skoleadm"].pull.as_ref().unwrap().source;
    let client = tilstede::adapters::rest::RestClient::new(pull.auth.clone(), pull.retry).unwrap();
    let report = pull
        .component
        .build("skoleadm", &pull.schools)
        .pull(&client, &store)
        .await
        .unwrap();
    assert_eq!(report.roster.unwrap().pupils, m.pupils.len());
    assert_eq!(
        store.pupil_identities("l9").await.unwrap(),
        [
            ("laering".to_string(), "l9".to_string()),
            ("skoleadm".to_string(), child.id.clone())
        ]
    );
    let context = store.pupil_context("l9").await.unwrap().unwrap();
    assert_eq!(context.pupil.given_name, child.given_name);
    assert!(store.pupil_context(&m.pupils[1].id).await.unwrap().is_some());
}
