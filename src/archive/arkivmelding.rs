//! The Fiks Arkiv V1 messages tilstede sends and the replies it reads
//! (schemas under `standards/fiks-arkiv-v1/`).
//!
//! One `arkivmelding.opprett` per final document, following the Elevmappe
//! use case's "OpprettMedSaksmappe" flow (`elevmappe/OpprettMedSaksmappe.puml`):
//! the message holds the pupil's elevmappe (a `saksmappe`, identified by the
//! pupil's id under the configured classification system and by an external
//! key) and the journalpost that refers to it by that key. The archive
//! creates the elevmappe if it does not exist and says in the kvittering
//! whether it did (`Opprettet` / `Eksisterende`), so finding the folder
//! first costs no extra round trip.
//!
//! The codes, from the code lists in `kodelister/`:
//! - journalposttype: the documents are written by the school for its own
//!   case handling, neither sent nor received, so they are organinterne:
//!   `N` (for oppfølging) when they set actions with deadlines (referat,
//!   samarbeidsavtale, overføring), `X` (uten oppfølging) otherwise;
//! - dokumenttype: `PROTOKOLL` (referat), `AVTALE`, `RAPPORT` (evaluering),
//!   `NOTAT` (overføring), `DOKUMENT` (samtaleguide);
//! - skjerming on the folder, the journalpost and the document:
//!   tilgangsrestriksjon `13` with hjemmel «Offl. § 13 jf. fvl. § 13 første
//!   ledd nr. 1» — the documents are about a pupil's personal circumstances
//!   and are subject to the duty of confidentiality;
//! - the document: dokumentstatus `F`, tilknyttetRegistreringSom `H`,
//!   variantformat `A` (arkivformat), format `fmt/476` (PRONOM's PDF/A-2b),
//!   with its SHA-256 checksum and size;
//! - journalstatus `F` (ferdigstilt av saksbehandler).
//!
//! External keys (`referanseEksternNoekkel`, fagsystem = the configured
//! system name): the elevmappe's is `elev:{pupil id}`; the journalpost's is
//! the document key `{case number}/{document kind}/{sequence}`, so the case
//! number leads it and an archive that already holds the document answers
//! `Eksisterende` instead of journaling it twice.

use super::DocumentKind;
use super::config::ArchiveConfig;
use chrono::{DateTime, NaiveDate, Utc};
use quick_xml::events::Event;
use sha2::{Digest, Sha256};

/// The message type of an arkivmelding that creates.
pub const OPPRETT: &str = "no.ks.fiks.arkiv.v1.arkivering.arkivmelding.opprett";
/// The reply that says the archive received the message.
pub const MOTTATT: &str = "no.ks.fiks.arkiv.v1.arkivering.arkivmelding.opprett.mottatt";
/// The reply with the archive's receipt.
pub const KVITTERING: &str = "no.ks.fiks.arkiv.v1.arkivering.arkivmelding.opprett.kvittering";
/// The reply to a message the archive found invalid.
pub const UGYLDIG: &str = "no.ks.fiks.arkiv.v1.feilmelding.ugyldigforespoersel";
/// The reply when the archive failed.
pub const SERVERFEIL: &str = "no.ks.fiks.arkiv.v1.feilmelding.serverfeil";

const NS_OPPRETT: &str = "https://ks-no.github.io/standarder/fiks-protokoll/fiks-arkiv/arkivmelding/opprett/v1";
const NS_METADATA: &str = "https://ks-no.github.io/standarder/fiks-protokoll/fiks-arkiv/metadatakatalog/v1";

/// The access restriction code and its legal basis (see the module docs).
pub const TILGANGSRESTRIKSJON: &str = "13";
/// The legal basis of the access restriction.
pub const SKJERMINGSHJEMMEL: &str = "Offl. § 13 jf. fvl. § 13 første ledd nr. 1";

/// What went wrong reading a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArkivmeldingError {
    /// The reply is not well-formed XML.
    #[error("svaret fra arkivet er ikke gyldig XML: {0}")]
    Xml(String),
    /// The reply is XML of a kind we do not know.
    #[error("ukjent svar fra arkivet: rotelementet «{0}»")]
    UnknownReply(String),
    /// A kvittering lacks a field it must have.
    #[error("kvitteringen mangler «{0}»")]
    Missing(&'static str),
}

/// A final document to archive.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveDocument<'a> {
    /// Which document.
    pub kind: DocumentKind,
    /// The case number (`S-2026-0001`).
    pub case_number: &'a str,
    /// Which one of its kind in the case (agreement number, meeting number;
    /// 1 for a one-off), so a case's second agreement is a new journalpost.
    pub sequence: u32,
    /// The document's date.
    pub document_date: NaiveDate,
    /// The pupil's id in the sources (the elevmappe's class id; never a
    /// national identity number).
    pub pupil_id: &'a str,
    /// The elevmappe's title if the archive has to create it, e.g.
    /// «Elevmappe A.B. 5A» (the caller decides how much it names).
    pub folder_title: &'a str,
    /// The school (administrative unit and internal sender).
    pub school_name: &'a str,
    /// The PDF/A.
    pub pdf: &'a [u8],
    /// When the message is made.
    pub created: DateTime<Utc>,
}

/// A built message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arkivmelding {
    /// The document key (`S-2026-0001/samarbeidsavtale/2`).
    pub document_key: String,
    /// The journalpost's title.
    pub title: String,
    /// `arkivmelding.xml`.
    pub xml: String,
    /// The file's display name (`filnavn`).
    pub file_name: String,
    /// The file's name inside the message (`referanseDokumentfil`).
    pub file_reference: String,
}

impl DocumentKind {
    /// The journalposttype code and its description.
    pub fn journalposttype(self) -> (&'static str, &'static str) {
        match self {
            DocumentKind::Referat | DocumentKind::Samarbeidsavtale | DocumentKind::Overforing => {
                ("N", "Organinternt dokument for oppfølging")
            }
            DocumentKind::Evaluering | DocumentKind::Samtaleguide => ("X", "Organinternt dokument uten oppfølging"),
        }
    }

    /// The dokumenttype code and its description.
    pub fn dokumenttype(self) -> (&'static str, &'static str) {
        match self {
            DocumentKind::Referat => ("PROTOKOLL", "Protokoll"),
            DocumentKind::Samarbeidsavtale => ("AVTALE", "Avtale"),
            DocumentKind::Evaluering => ("RAPPORT", "Rapport"),
            DocumentKind::Overforing => ("NOTAT", "Notat"),
            DocumentKind::Samtaleguide => ("DOKUMENT", "Dokument"),
        }
    }
}

/// The document key of a document.
pub fn document_key(case_number: &str, kind: DocumentKind, sequence: u32) -> String {
    format!("{case_number}/{}/{sequence}", kind.name())
}

/// A small writer for the element-only XML Fiks Arkiv uses.
struct Xml {
    out: String,
    depth: usize,
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

impl Xml {
    fn new() -> Xml {
        Xml {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
            depth: 0,
        }
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    fn open(&mut self, tag: &str) -> &mut Xml {
        self.open_with(tag, "")
    }

    fn open_with(&mut self, tag: &str, attributes: &str) -> &mut Xml {
        self.indent();
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push_str(attributes);
        self.out.push_str(">\n");
        self.depth += 1;
        self
    }

    fn close(&mut self, tag: &str) -> &mut Xml {
        self.depth -= 1;
        self.indent();
        self.out.push_str(&format!("</{tag}>\n"));
        self
    }

    fn leaf(&mut self, tag: &str, text: &str) -> &mut Xml {
        self.indent();
        self.out.push_str(&format!("<{tag}>{}</{tag}>\n", escape(text)));
        self
    }

    /// A Fiks Arkiv code (`kode` + `beskrivelse`, in the metadata catalogue's
    /// namespace).
    fn code(&mut self, tag: &str, code: &str, description: &str) -> &mut Xml {
        self.open(tag)
            .leaf("n5mdk:kode", code)
            .leaf("n5mdk:beskrivelse", description)
            .close(tag)
    }

    fn external_key(&mut self, tag: &str, system: &str, key: &str) -> &mut Xml {
        self.open(tag)
            .leaf("n5mdk:fagsystem", system)
            .leaf("n5mdk:noekkel", key)
            .close(tag)
    }

    fn screening(&mut self) -> &mut Xml {
        self.open("skjerming")
            .code("tilgangsrestriksjon", TILGANGSRESTRIKSJON, "Taushetsplikt")
            .leaf("skjermingshjemmel", SKJERMINGSHJEMMEL)
            .close("skjerming")
    }
}

/// The external key of a pupil's elevmappe.
pub fn folder_key(pupil_id: &str) -> String {
    format!("elev:{pupil_id}")
}

/// Builds the `arkivmelding.opprett` for `doc`.
pub fn build(doc: &ArchiveDocument<'_>, config: &ArchiveConfig) -> Arkivmelding {
    let key = document_key(doc.case_number, doc.kind, doc.sequence);
    let title = if doc.sequence > 1 || matches!(doc.kind, DocumentKind::Samarbeidsavtale | DocumentKind::Referat) {
        format!("{} nr. {}, sak {}", doc.kind.title(), doc.sequence, doc.case_number)
    } else {
        format!("{}, sak {}", doc.kind.title(), doc.case_number)
    };
    let file_name = format!("{}.pdf", title.replace(',', "").replace(['/', '\\'], "-"));
    let file_reference = format!("{}-{}.pdf", doc.kind.name(), doc.sequence);
    let created = doc.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let checksum = hex::encode(Sha256::digest(doc.pdf));
    let (jp_code, jp_text) = doc.kind.journalposttype();
    let (dt_code, dt_text) = doc.kind.dokumenttype();
    let system = config.system.as_str();

    let mut x = Xml::new();
    x.open_with(
        "arkivmelding",
        &format!(
            " xmlns=\"{NS_OPPRETT}\" xmlns:n5mdk=\"{NS_METADATA}\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\""
        ),
    )
    .leaf("system", system)
    .leaf("antallFiler", "1");

    // The elevmappe: created by the archive when it does not exist.
    x.open_with("mappe", " xsi:type=\"saksmappe\"")
        .leaf("tittel", doc.folder_title)
        .leaf("offentligTittel", "Elevmappe");
    if let Some(arkivdel) = &config.arkivdel {
        x.code("arkivdel", arkivdel, "Arkivdel");
    }
    x.screening();
    x.open("klassifikasjon")
        .leaf("klassifikasjonssystemID", &config.pupil_classification)
        .leaf("klasseID", doc.pupil_id)
        .leaf("erSkjermet", "true")
        .close("klassifikasjon");
    x.external_key("referanseEksternNoekkel", system, &folder_key(doc.pupil_id));
    x.open("administrativEnhet")
        .leaf("n5mdk:navn", doc.school_name)
        .close("administrativEnhet");
    if let Some(unit) = &config.journal_unit {
        x.leaf("journalenhet", unit);
    }
    x.close("mappe");

    // The journalpost, in the elevmappe by its external key.
    x.open_with("registrering", " xsi:type=\"journalpost\"")
        .leaf("opprettetDato", &created)
        .open("referanseForelderMappe")
        .external_key("n5mdk:referanseEksternNoekkel", system, &folder_key(doc.pupil_id))
        .close("referanseForelderMappe")
        .screening();
    x.open("dokumentbeskrivelse")
        .code("dokumenttype", dt_code, dt_text)
        .code("dokumentstatus", "F", "Dokumentet er ferdigstilt")
        .leaf("tittel", &title)
        .leaf("opprettetDato", &created)
        .code("tilknyttetRegistreringSom", "H", "Hoveddokument")
        .leaf("dokumentnummer", "1")
        .screening()
        .open("dokumentobjekt")
        .leaf("versjonsnummer", "1")
        .code("variantformat", "A", "Arkivformat")
        .code("format", "fmt/476", "PDF/A-2b")
        .leaf("mimeType", "application/pdf")
        .leaf("filnavn", &file_name)
        .leaf("referanseDokumentfil", &file_reference)
        .leaf("sjekksum", &checksum)
        .leaf("sjekksumAlgoritme", "SHA256")
        .leaf("filstoerrelse", &doc.pdf.len().to_string())
        .close("dokumentobjekt")
        .close("dokumentbeskrivelse");
    x.leaf("tittel", &title)
        .leaf("offentligTittel", &title)
        .leaf("noekkelord", doc.case_number);
    x.open("korrespondansepart")
        .code("korrespondanseparttype", "IA", "Intern avsender")
        .leaf("korrespondansepartNavn", doc.school_name)
        .close("korrespondansepart");
    x.external_key("referanseEksternNoekkel", system, &key);
    x.code("journalposttype", jp_code, jp_text)
        .code("journalstatus", "F", "Ferdigstilt av saksbehandler")
        .leaf("dokumentetsDato", &doc.document_date.format("%Y-%m-%d").to_string());
    x.close("registrering");
    x.close("arkivmelding");

    Arkivmelding {
        document_key: key,
        title,
        xml: x.out,
        file_name,
        file_reference,
    }
}

/// The archive's receipt for a journalpost.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Kvittering {
    /// The elevmappe's system id.
    pub folder_system_id: Option<String>,
    /// Whether the archive created the elevmappe (`false`: it existed).
    pub folder_created: Option<bool>,
    /// The journalpost's system id.
    pub journalpost_system_id: String,
    /// The journalpost's number as «år/sekvensnummer» when the archive says.
    pub journalpost_number: Option<String>,
    /// Whether the archive created the journalpost (`false`: it already held
    /// it, from an earlier delivery of the same document).
    pub journalpost_created: bool,
}

/// A reply from the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The receipt: the document is archived.
    Kvittering(Kvittering),
    /// The archive refused the message, or refused to create the folder or
    /// the journalpost; sending it again will not help.
    Rejected {
        /// The archive's error id.
        id: String,
        /// Its message.
        message: String,
    },
    /// The archive failed; worth trying again.
    ServerError {
        /// The archive's error id.
        id: String,
        /// Its message.
        message: String,
    },
}

/// Reads a reply payload (a kvittering or a feilmelding) by its root element.
pub fn parse_reply(xml: &str) -> Result<Reply, ArkivmeldingError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut root = None;
    let mut k = Kvittering::default();
    let (mut journalaar, mut sekvens) = (None::<String>, None::<String>);
    let (mut feil_id, mut feil_text) = (String::new(), String::new());
    let mut failed_part = false;
    loop {
        match reader.read_event().map_err(|e| ArkivmeldingError::Xml(e.to_string()))? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if root.is_none() {
                    root = Some(name.clone());
                }
                if name == "mappeFeilet" || name == "registreringFeilet" {
                    failed_part = true;
                }
                path.push(name);
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Empty(e) if root.is_none() => {
                root = Some(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
            }
            Event::Text(t) => {
                let text = t
                    .decode()
                    .map_err(|e| ArkivmeldingError::Xml(e.to_string()))?
                    .into_owned();
                let text = quick_xml::escape::unescape(&text)
                    .map(|c| c.into_owned())
                    .unwrap_or(text);
                let parent = path.iter().rev().nth(1).map(String::as_str);
                match (parent, path.last().map(String::as_str)) {
                    (Some("mappeKvittering"), Some("systemID")) => k.folder_system_id = Some(text),
                    (Some("mappeKvittering"), Some("opprettetEllerEksisterende")) => {
                        k.folder_created = Some(text == "Opprettet")
                    }
                    (Some("registreringKvittering"), Some("systemID")) => k.journalpost_system_id = text,
                    (Some("registreringKvittering"), Some("journalaar")) => journalaar = Some(text),
                    (Some("registreringKvittering"), Some("journalsekvensnummer")) => sekvens = Some(text),
                    (Some("registreringKvittering"), Some("opprettetEllerEksisterende")) => {
                        k.journalpost_created = text == "Opprettet"
                    }
                    (_, Some("feilId")) => feil_id = text,
                    (_, Some("feilmelding")) => feil_text = text,
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    match root.as_deref() {
        Some("arkivmeldingKvittering") if failed_part => Ok(Reply::Rejected {
            id: feil_id,
            message: feil_text,
        }),
        Some("arkivmeldingKvittering") => {
            if k.journalpost_system_id.is_empty() {
                return Err(ArkivmeldingError::Missing("registreringKvittering/systemID"));
            }
            if let (Some(a), Some(s)) = (journalaar, sekvens) {
                k.journalpost_number = Some(format!("{a}/{s}"));
            }
            Ok(Reply::Kvittering(k))
        }
        Some("ugyldigforespoersel") => Ok(Reply::Rejected {
            id: feil_id,
            message: feil_text,
        }),
        Some("serverfeil") => Ok(Reply::ServerError {
            id: feil_id,
            message: feil_text,
        }),
        Some(other) => Err(ArkivmeldingError::UnknownReply(other.to_string())),
        None => Err(ArkivmeldingError::Xml("tomt svar".into())),
    }
}

#[cfg(test)]
mod tests;
