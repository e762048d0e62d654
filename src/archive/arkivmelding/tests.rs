use super::*;
use std::path::Path;
use std::process::Command;

fn standards() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/standards/fiks-arkiv-v1"))
}

/// Validates `xml` against the schema `xsd` with xmllint. Missing xmllint
/// fails under CI and skips (loudly) elsewhere.
pub(crate) fn xmllint(xml: &str, xsd: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("melding.xml");
    std::fs::write(&file, xml).map_err(|e| e.to_string())?;
    let out = match Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(standards().join(xsd))
        .arg(&file)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            assert!(
                std::env::var("CI").is_err(),
                "xmllint is missing (scripts/tools installs it): {e}"
            );
            eprintln!("SKIPPED: xmllint missing");
            return Ok(());
        }
    };
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn sample(kind: DocumentKind, sequence: u32) -> ArchiveDocument<'static> {
    ArchiveDocument {
        kind,
        case_number: "S-2026-0007",
        sequence,
        document_date: NaiveDate::from_ymd_opt(2026, 3, 20).unwrap(),
        pupil_id: "elev-4711",
        folder_title: "Elevmappe A.B. 5A",
        school_name: "Østre Bærum skole & SFO",
        pdf: b"%PDF-1.7 not really",
        created: DateTime::parse_from_rfc3339("2026-03-20T13:45:00Z")
            .unwrap()
            .with_timezone(&Utc),
    }
}

#[test]
fn every_document_kind_validates_against_the_opprett_schema() {
    let mut config = ArchiveConfig {
        arkivdel: Some("ELEV".into()),
        journal_unit: Some("SK".into()),
        ..ArchiveConfig::default()
    };
    for kind in DocumentKind::ALL {
        let m = build(&sample(kind, 2), &config);
        xmllint(&m.xml, "no.ks.fiks.arkiv.v1.arkivering.arkivmelding.opprett.xsd")
            .unwrap_or_else(|e| panic!("{kind:?}: {e}\n{}", m.xml));
    }
    // And without the optional settings.
    config.arkivdel = None;
    config.journal_unit = None;
    let m = build(&sample(DocumentKind::Referat, 1), &config);
    xmllint(&m.xml, "no.ks.fiks.arkiv.v1.arkivering.arkivmelding.opprett.xsd").unwrap();
}

#[test]
fn the_message_carries_the_codes_and_keys() {
    let doc = sample(DocumentKind::Samarbeidsavtale, 2);
    let m = build(&doc, &ArchiveConfig::default());
    assert_eq!(m.document_key, "S-2026-0007/samarbeidsavtale/2");
    assert_eq!(m.title, "Samarbeidsavtale nr. 2, sak S-2026-0007");
    assert_eq!(m.file_name, "Samarbeidsavtale nr. 2 sak S-2026-0007.pdf");
    assert_eq!(m.file_reference, "samarbeidsavtale-2.pdf");
    let x = &m.xml;
    for needle in [
        "<mappe xsi:type=\"saksmappe\">",
        "<registrering xsi:type=\"journalpost\">",
        "<n5mdk:kode>AVTALE</n5mdk:kode>",
        "<n5mdk:kode>N</n5mdk:kode>",
        "<n5mdk:kode>13</n5mdk:kode>",
        "<skjermingshjemmel>Offl. § 13 jf. fvl. § 13 første ledd nr. 1</skjermingshjemmel>",
        "<n5mdk:noekkel>S-2026-0007/samarbeidsavtale/2</n5mdk:noekkel>",
        "<n5mdk:noekkel>elev:elev-4711</n5mdk:noekkel>",
        "<klasseID>elev-4711</klasseID>",
        "<noekkelord>S-2026-0007</noekkelord>",
        "<n5mdk:kode>fmt/476</n5mdk:kode>",
        "<sjekksumAlgoritme>SHA256</sjekksumAlgoritme>",
        "<filstoerrelse>19</filstoerrelse>",
        "<n5mdk:navn>Østre Bærum skole &amp; SFO</n5mdk:navn>",
        "<dokumentetsDato>2026-03-20</dokumentetsDato>",
    ] {
        assert!(x.contains(needle), "missing {needle} in\n{x}");
    }
    // Three screenings: folder, journalpost, document.
    assert_eq!(x.matches("<skjerming>").count(), 3);
    let sha = hex::encode(sha2::Sha256::digest(doc.pdf));
    assert!(x.contains(&format!("<sjekksum>{sha}</sjekksum>")));
    assert_eq!(DocumentKind::Evaluering.journalposttype().0, "X");
    // A second delivery of the same document builds the same message.
    assert_eq!(build(&doc, &ArchiveConfig::default()), m);
}

const KVITTERING_XML: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<arkivmeldingKvittering xmlns="https://ks-no.github.io/standarder/fiks-protokoll/fiks-arkiv/arkivmelding/opprett/kvittering/v1"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <mappeKvittering xsi:type="saksmappeKvittering">
    <systemID>c3f1a6a0-0000-4000-8000-000000000001</systemID>
    <opprettetEllerEksisterende>Eksisterende</opprettetEllerEksisterende>
    <saksaar>2024</saksaar>
  </mappeKvittering>
  <registreringKvittering xsi:type="journalpostKvittering">
    <systemID>c3f1a6a0-0000-4000-8000-000000000002</systemID>
    <opprettetEllerEksisterende>Opprettet</opprettetEllerEksisterende>
    <journalaar>2026</journalaar>
    <journalsekvensnummer>1234</journalsekvensnummer>
  </registreringKvittering>
</arkivmeldingKvittering>"#;

#[test]
fn a_kvittering_is_read() {
    xmllint(
        KVITTERING_XML,
        "no.ks.fiks.arkiv.v1.arkivering.arkivmelding.opprett.kvittering.xsd",
    )
    .unwrap();
    let Reply::Kvittering(k) = parse_reply(KVITTERING_XML).unwrap() else {
        panic!()
    };
    assert_eq!(
        k,
        Kvittering {
            folder_system_id: Some("c3f1a6a0-0000-4000-8000-000000000001".into()),
            folder_created: Some(false),
            journalpost_system_id: "c3f1a6a0-0000-4000-8000-000000000002".into(),
            journalpost_number: Some("2026/1234".into()),
            journalpost_created: true,
        }
    );
}

#[test]
fn errors_and_refusals_are_told_apart() {
    let ugyldig = r#"<ugyldigforespoersel xmlns="https://ks-no.github.io/standarder/fiks-protokoll/fiks-arkiv/feil/ugyldigforespoersel/v1"><feilId xmlns="https://ks-no.github.io/standarder/fiks-protokoll/fiks-arkiv/feil/feilmelding/v1">e1</feilId><feilmelding xmlns="https://ks-no.github.io/standarder/fiks-protokoll/fiks-arkiv/feil/feilmelding/v1">Ukjent arkivdel</feilmelding></ugyldigforespoersel>"#;
    assert_eq!(
        parse_reply(ugyldig).unwrap(),
        Reply::Rejected {
            id: "e1".into(),
            message: "Ukjent arkivdel".into()
        }
    );
    let serverfeil = ugyldig.replace("ugyldigforespoersel", "serverfeil");
    assert!(matches!(parse_reply(&serverfeil).unwrap(), Reply::ServerError { .. }));
    let registrering_feilet = r#"<arkivmeldingKvittering xmlns="https://ks-no.github.io/standarder/fiks-protokoll/fiks-arkiv/arkivmelding/opprett/kvittering/v1"><mappeKvittering><systemID>m</systemID><opprettetEllerEksisterende>Opprettet</opprettetEllerEksisterende></mappeKvittering><registreringFeilet><feilId>f</feilId><feilmelding>Låst</feilmelding></registreringFeilet></arkivmeldingKvittering>"#;
    assert!(matches!(parse_reply(registrering_feilet).unwrap(), Reply::Rejected { message, .. } if message == "Låst"));
    assert!(matches!(parse_reply("<x/>"), Err(ArkivmeldingError::UnknownReply(r)) if r == "x"));
    assert!(parse_reply("<arkivmeldingKvittering>").is_err() || parse_reply("not xml <").is_err());
}
