//! The archive: PDF/A-2b documents checked with poppler's tools, arkivmeldinger
//! delivered through the durable outbox to a fake archive that validates
//! them against the Fiks Arkiv XSD and fails now and then, and the
//! retention purge leaving the archive alone.

use crate::fake::archive::{FakeArchive, Fault, process_directory, text_at, xmllint};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use tilstede::archive::arkivmelding::{self, ArchiveDocument};
use tilstede::archive::config::TransportConfig;
use tilstede::archive::delivery::Delivery;
use tilstede::archive::pdf::{NamedImage, PdfInput, render_pdf, visible_words};
use tilstede::archive::transport::Transport;
use tilstede::archive::{ArchiveConfig, DocumentKind};
use tilstede::cases::{CaseConfig, Command as CaseCommand, Party, Role};
use tilstede::domain::roster::{Roster, RosterClass, RosterPerson, RosterPupil, RosterSchool};
use tilstede::insight::charts::{CaseChart, weekly_attendance};
use tilstede::insight::{AbsenceEvent, PatternSettings, WeekdayCalendar, Window, analyse};
use tilstede::render::{Document, Renderer, case_context};
use tilstede::rules::RuleSet;
use tilstede::store::{ArchiveState, NewArchiveEntry, Store};

pub(crate) fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Runs a poppler tool on `pdf`; a missing tool fails under CI.
pub(crate) fn poppler(tool: &str, args: &[&str], pdf: &Path) -> Option<String> {
    match Command::new(tool).args(args).arg(pdf).arg("-").output() {
        Ok(out) => {
            assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Err(e) => {
            assert!(
                std::env::var("CI").is_err(),
                "{tool} is missing (scripts/tools installs poppler-utils): {e}"
            );
            eprintln!("SKIPPED: {tool} missing");
            None
        }
    }
}

pub(crate) fn poppler_plain(tool: &str, args: &[&str], pdf: &Path) -> Option<String> {
    match Command::new(tool).args(args).arg(pdf).output() {
        Ok(out) => {
            assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Err(e) => {
            assert!(
                std::env::var("CI").is_err(),
                "{tool} is missing (scripts/tools installs poppler-utils): {e}"
            );
            None
        }
    }
}

const CONFIG: &str = r#"
name = "test"
[school_day]
start = "08:30"
end = "15:00"
first_lesson_minutes = 45
[deadlines]
remind_hours_before = 24
first_meeting_days = 7
followup_meeting_days = 7
agreement_days = 7
evaluation_days = 21
agreement_valid_days = 21
phase4_meeting_days = 14
handoff_accept_days = 7
monitoring_review_days = 30
[long_term]
open_weeks = 8
[schools.skole-1]
avdelingsleder = "al-1"
ledelse = ["rektor"]
"#;

fn roster() -> Roster {
    Roster {
        schools: vec![RosterSchool {
            id: "skole-1".into(),
            name: "Østerås skole".into(),
        }],
        classes: vec![RosterClass {
            id: "c9b".into(),
            school: "skole-1".into(),
            name: "9B".into(),
            grade: 9,
            contact_teachers: vec!["kl-1".into()],
        }],
        pupils: vec![RosterPupil {
            id: "p1".into(),
            school: "skole-1".into(),
            class: Some("c9b".into()),
            grade: 9,
            given_name: "Åse".into(),
            family_name: "Bø".into(),
        }],
        staff: vec![RosterPerson {
            id: "kl-1".into(),
            given_name: "Kari".into(),
            family_name: "Lærer".into(),
            matrix_id: Some("@kl-1:kommune.test".into()),
            school: Some("skole-1".into()),
        }],
    }
}

/// Gives the store one case (S-2026-0001) that has an agreement.
pub(crate) async fn with_case(s: Store) -> (Store, CaseConfig) {
    s.upsert_roster(&roster()).await.unwrap();
    let records: Vec<_> = [
        ("r1", "2026-02-23", "day"),
        ("r2", "2026-02-24", "day"),
        ("r3", "2026-03-02", "day"),
    ]
    .iter()
    .map(|(id, date, kind)| {
        tilstede::domain::AbsenceRecord::from_json_str(&format!(
            r#"{{"source":"vis","id":"{id}","version":1,"pupil":"p1","school":"skole-1","date":"{date}","kind":"{kind}","validity":"invalid"}}"#
        ))
        .unwrap()
    })
    .collect();
    s.ingest(&records, &[]).await.unwrap();
    s.refresh_findings(
        &RuleSet::preset("baerum").unwrap(),
        NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
    )
    .await
    .unwrap();
    let cfg = CaseConfig::from_toml(CONFIG).unwrap();
    assert_eq!(
        tilstede::workflow::sync_cases(&s, &cfg, t("2026-03-02T07:00:00Z"))
            .await
            .unwrap()
            .opened,
        1
    );
    let teacher = Party::new("kl-1", Role::Kontaktlaerer);
    for step in [
        json!({"command":"log-contact","with":"foresatte","at":"2026-03-02T08:00:00Z","channel":"telefon","outcome":"bekymring"}),
        json!({"command":"add-measure","circle_box":"struktur","text":"Fast voksen tar imot i døra kl. 08:25","responsible":"kontaktlærer","due":"2026-03-20","at_home":false}),
        json!({"command":"add-measure","circle_box":"hjemmeforhold","text":"Faste leggetider på søndager","responsible":"foresatte","due":"2026-03-20","at_home":true}),
        json!({"command":"create-agreement","place":"Møterommet på Østerås","present":["eleven","foresatte","kontaktlærer"],"goal":"Åse møter på skolen hver dag, også mandager",
               "sub_goals":[{"text":"Møte til første time","weeks":3,"measures":[1]}],"plan_b":"Kontaktlærer ringer hjem kl. 08:45 og avtaler å hente",
               "plan_b_responsible":"kontaktlærer","valid_days":null,"evaluation_date":"2026-03-23"}),
    ] {
        let cmd: CaseCommand = serde_json::from_value(step).unwrap();
        tilstede::workflow::apply_case_command(&s, "S-2026-0001", &teacher, &cmd, t("2026-03-02T09:00:00Z"), &cfg)
            .await
            .unwrap();
    }
    (s, cfg)
}

/// The case's weekly attendance chart.
fn chart() -> tilstede::insight::charts::Chart {
    let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let events: Vec<AbsenceEvent> = [
        "2026-02-02",
        "2026-02-09",
        "2026-02-16",
        "2026-02-23",
        "2026-02-24",
        "2026-03-02",
        "2026-03-16",
    ]
    .iter()
    .map(|s| AbsenceEvent {
        date: d(s),
        kind: tilstede::domain::Kind::Day,
        lessons: 1,
        validity: tilstede::domain::Validity::Invalid,
        subject: None,
        period: None,
    })
    .collect();
    let window = Window::new(d("2026-01-26"), d("2026-04-17"));
    let insight = analyse(
        &events,
        window,
        &WeekdayCalendar::default(),
        None,
        &PatternSettings::default(),
    );
    weekly_attendance(&CaseChart {
        label: "S-2026-0001 · Å.B. (9B)",
        weeks: &insight.weeks,
        agreement: Some((d("2026-03-02"), d("2026-03-23"))),
    })
    .unwrap()
}

/// Every archived document type renders to a PDF/A-2b whose text poppler
/// extracts word for word, whose XMP declares PDF/A-2b, whose fonts are
/// embedded, and whose chart is an image in it.
#[tokio::test]
async fn every_document_is_pdf_a_2b_with_its_norwegian_text() {
    let (store, _) = with_case(Store::open("sqlite::memory:").await.unwrap()).await;
    let case = store.cases_raw(None, true).await.unwrap().remove(0);
    let renderer = Renderer::builtin().unwrap();
    let context = case_context(&case, t("2026-03-23T10:00:00Z"), None);
    let chart = chart();
    let images = [NamedImage {
        name: "ukentlig",
        caption: &chart.alt,
        png: &chart.png,
    }];
    let dir = tempfile::tempdir().unwrap();
    for doc in [
        Document::Samarbeidsavtale,
        Document::Evaluering,
        Document::Referat,
        Document::Overforing,
        Document::FirstConversation,
    ] {
        let kind = DocumentKind::of(doc).unwrap();
        let rendered = renderer.render(doc, &context).unwrap();
        // A table and a signature block, which the templates will grow.
        let markdown = format!(
            "{}\n## Fravær per uke\n\n| Uke | Dager borte | Oppmøte |\n|---|---|---|\n| 9 | 2 | 60 % |\n| 10 | 1 | 80 % |\n\n- Rektor: ________\n",
            rendered.markdown
        );
        let with_chart = doc == Document::Evaluering;
        let pdf = render_pdf(&PdfInput {
            title: &format!("{}, sak S-2026-0001", kind.title()),
            markdown: &markdown,
            images: if with_chart { &images } else { &[] },
            created: t("2026-03-23T10:00:00Z"),
        })
        .unwrap();
        let path = dir.path().join(format!("{}.pdf", kind.name()));
        std::fs::write(&path, &pdf).unwrap();
        if let Ok(out) = std::env::var("TILSTEDE_PDF_DIR") {
            std::fs::write(Path::new(&out).join(format!("{}.pdf", kind.name())), &pdf).unwrap();
        }

        let Some(text) = poppler("pdftotext", &["-layout"], &path) else {
            return;
        };
        // The words, in order, with the footer's removed.
        let footer = format!("{}, sak S-2026-0001 · side", kind.title());
        let extracted: Vec<String> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with(&footer))
            .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .collect();
        let mut expected = visible_words(&markdown);
        if with_chart {
            expected.extend(chart.alt.split_whitespace().map(str::to_string));
        }
        assert_eq!(
            extracted, expected,
            "{doc:?}: pdftotext gives back the document's words"
        );
        for word in ["Østerås", "Å.B.", "(9B)"] {
            assert!(
                text.contains(word) || doc != Document::Samarbeidsavtale,
                "{word} in {text}"
            );
        }

        let meta = poppler_plain("pdfinfo", &["-meta"], &path).unwrap();
        assert!(meta.contains("<pdfaid:part>2</pdfaid:part>"), "{meta}");
        assert!(meta.contains("<pdfaid:conformance>B</pdfaid:conformance>"), "{meta}");
        let info = poppler_plain("pdfinfo", &[], &path).unwrap();
        assert!(
            info.contains(&format!("Title:           {}, sak S-2026-0001", kind.title())),
            "{info}"
        );
        assert!(
            info.lines()
                .any(|l| l.starts_with("PDF version:") && l.ends_with("1.7")),
            "{info}"
        );

        let fonts = poppler_plain("pdffonts", &[], &path).unwrap();
        let rows: Vec<&str> = fonts.lines().skip(2).collect();
        assert!(rows.len() >= 2, "regular and bold: {fonts}");
        for row in rows {
            assert!(row.contains("DejaVuSans"), "{row}");
            // Columns: name type encoding emb sub uni …
            let cols: Vec<&str> = row.split_whitespace().collect();
            let emb = cols[cols.len() - 5];
            assert_eq!(emb, "yes", "embedded: {row}");
        }

        let images_listed = poppler_plain("pdfimages", &["-list"], &path).unwrap();
        let n = images_listed.lines().skip(2).count();
        assert_eq!(n > 0, with_chart, "{images_listed}");
    }
}

fn document(kind: DocumentKind, sequence: u32, pdf: &[u8]) -> (ArchiveDocument<'_>, String) {
    let doc = ArchiveDocument {
        kind,
        case_number: "S-2026-0001",
        sequence,
        document_date: NaiveDate::from_ymd_opt(2026, 3, 23).unwrap(),
        pupil_id: "p1",
        folder_title: "Elevmappe Å.B. 9B",
        school_name: "Østerås skole",
        pdf,
        created: t("2026-03-23T10:00:00Z"),
    };
    (doc, kind.name().to_string())
}

pub(crate) async fn enqueue(
    store: &Store,
    config: &ArchiveConfig,
    kind: DocumentKind,
    sequence: u32,
    pdf: &[u8],
) -> String {
    let (doc, _) = document(kind, sequence, pdf);
    let m = arkivmelding::build(&doc, config);
    store
        .archive_enqueue(
            &NewArchiveEntry {
                document_key: m.document_key.clone(),
                case_number: doc.case_number.into(),
                school: "skole-1".into(),
                document_kind: kind.name().into(),
                title: m.title.clone(),
                file_reference: m.file_reference.clone(),
                arkivmelding: m.xml.clone(),
                document: pdf.to_vec(),
            },
            t("2026-03-23T10:00:00Z"),
        )
        .await
        .unwrap();
    m.document_key
}

pub(crate) fn sample_pdf(n: u32) -> Vec<u8> {
    render_pdf(&PdfInput {
        title: "Prøve",
        markdown: &format!("# Dokument {n}\n\nBlåbærsyltetøy på Ørland.\n"),
        images: &[],
        created: t("2026-03-23T10:00:00Z"),
    })
    .unwrap()
}

/// Runs delivery rounds, a minute apart plus the backoff, until nothing is
/// left to do; returns the clock.
async fn deliver_all(delivery: &Delivery, store: &Store, mut now: DateTime<Utc>, rounds: usize) -> DateTime<Utc> {
    for _ in 0..rounds {
        delivery.run_once(now).await.unwrap();
        let c = store.archive_counts().await.unwrap();
        if c.queued == 0 && c.received == 0 {
            break;
        }
        now += Duration::hours(2);
    }
    now
}

/// Each document type goes through HTTP to an archive that fails a third of
/// the time, loses answers and throws server errors: in the end the archive
/// holds exactly one XSD-valid journalpost per document, in one elevmappe,
/// and the failed attempts are counted.
#[tokio::test]
async fn documents_reach_the_archive_once_despite_failures() {
    for backend in crate::support::store_backends().await {
        let fake = FakeArchive::start(0.35, 7).await;
        fake.state.lock().unwrap().require_token = true;
        // The first message loses its answer after being journaled: the
        // resend must not make a second journalpost.
        fake.state.lock().unwrap().faults.push_back(Fault::LoseAnswer);
        // SAFETY: only this test reads the variable.
        unsafe { std::env::set_var("TILSTEDE_TEST_ARCHIVE_TOKEN", crate::fake::archive::TOKEN) };
        let config = tilstede::archive::RawArchiveConfig::from_toml(&format!(
            "max_attempts = 30\nretry_seconds = 60\n[transport]\nkind = \"http\"\nurl = \"{}\"\ntoken_env = \"TILSTEDE_TEST_ARCHIVE_TOKEN\"\n",
            fake.url()
        ))
        .unwrap()
        .validate()
        .unwrap();
        let store = backend;
        let mut keys = Vec::new();
        let mut pdfs = Vec::new();
        for (i, kind) in DocumentKind::ALL.into_iter().enumerate() {
            let pdf = sample_pdf(i as u32);
            keys.push(enqueue(&store, &config, kind, 1, &pdf).await);
            pdfs.push(pdf);
        }
        // Queueing a document again changes nothing.
        enqueue(&store, &config, DocumentKind::Referat, 1, &pdfs[0]).await;
        assert_eq!(store.archive_counts().await.unwrap().queued, 5);

        let transport = Transport::from_config(&config.transport).unwrap();
        let delivery = Delivery::new(store.clone(), transport, config.clone());
        deliver_all(&delivery, &store, t("2026-03-23T10:00:00Z"), 60).await;

        let counts = store.archive_counts().await.unwrap();
        assert_eq!((counts.archived, counts.failed, counts.queued), (5, 0, 0), "{counts:?}");
        let s = fake.state.lock().unwrap().clone();
        assert!(s.faults_committed.contains(&Fault::LoseAnswer));
        assert!(
            counts.failed_attempts_total >= s.faults_committed.len() as i64,
            "every fault is a counted failure: {counts:?} {:?}",
            s.faults_committed
        );
        assert!(
            s.faults_committed.len() >= 3,
            "the archive failed now and then: {:?}",
            s.faults_committed
        );
        assert_eq!(s.invalid_messages, 0);
        assert_eq!(s.journalposts.len(), 5, "one journalpost per document");
        assert_eq!(s.folders.len(), 1, "one elevmappe for the pupil");
        assert_eq!(s.folders["elev:p1"].title, "Elevmappe Å.B. 9B");
        for (key, pdf) in keys.iter().zip(&pdfs) {
            let jp = &s.journalposts[key];
            assert_eq!(&jp.document, pdf);
            assert_eq!(jp.folder_key, "elev:p1");
            xmllint(
                &jp.arkivmelding,
                "no.ks.fiks.arkiv.v1.arkivering.arkivmelding.opprett.xsd",
            )
            .unwrap();
            assert_eq!(
                text_at(&jp.arkivmelding, &["registrering", "noekkelord"]).as_deref(),
                Some("S-2026-0001")
            );
            let entry = store.archive_entry(key).await.unwrap().unwrap();
            assert_eq!(entry.state, ArchiveState::Archived);
            assert_eq!(entry.journalpost_system_id.as_deref(), Some(jp.system_id.as_str()));
            assert_eq!(entry.journalpost_number, Some(format!("2026/{}", jp.number)));
        }
        // The message that lost its answer was received twice, under one id.
        assert!(s.received.values().any(|n| *n >= 2), "{:?}", s.received);
        store.close().await;
    }
}

/// A document the archive refuses is failed at once, not retried, and
/// waits in the list for leadership; a requeue sends it again.
#[tokio::test]
async fn refused_documents_are_reported_to_leadership() {
    let fake = FakeArchive::start(0.0, 1).await;
    fake.state.lock().unwrap().faults.push_back(Fault::Refuse);
    let config = ArchiveConfig {
        transport: TransportConfig::Http {
            url: fake.url(),
            token: None,
            timeout: std::time::Duration::from_secs(10),
        },
        ..ArchiveConfig::default()
    };
    let store = Store::open("sqlite::memory:").await.unwrap();
    let key = enqueue(&store, &config, DocumentKind::Evaluering, 1, &sample_pdf(1)).await;
    let delivery = Delivery::new(
        store.clone(),
        Transport::from_config(&config.transport).unwrap(),
        config,
    );
    let now = t("2026-03-23T10:00:00Z");
    let round = delivery.run_once(now).await.unwrap();
    assert_eq!(round.failed, 1);
    let problems = store.archive_problems(Some("skole-1")).await.unwrap();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].title, "Evaluering av samarbeidsavtale, sak S-2026-0001");
    assert!(
        problems[0].error.contains("Arkivdelen finnes ikke"),
        "{}",
        problems[0].error
    );
    // Not retried by later rounds.
    delivery.run_once(now + Duration::days(1)).await.unwrap();
    assert!(fake.state.lock().unwrap().journalposts.is_empty());
    assert!(store.archive_requeue(&key, now).await.unwrap());
    delivery.run_once(now + Duration::days(1)).await.unwrap();
    assert_eq!(
        store.archive_entry(&key).await.unwrap().unwrap().state,
        ArchiveState::Archived
    );
}

/// Without a kvittering in time, a received document is reported.
#[tokio::test]
async fn a_missing_kvittering_is_reported_after_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let config = ArchiveConfig {
        kvittering_wait: std::time::Duration::from_secs(3600),
        transport: TransportConfig::Directory {
            outbox_dir: dir.path().join("ut"),
            reply_dir: dir.path().join("svar"),
        },
        ..ArchiveConfig::default()
    };
    let store = Store::open("sqlite::memory:").await.unwrap();
    let key = enqueue(&store, &config, DocumentKind::Referat, 3, &sample_pdf(3)).await;
    let delivery = Delivery::new(
        store.clone(),
        Transport::from_config(&config.transport).unwrap(),
        config,
    );
    let now = t("2026-03-23T10:00:00Z");
    assert_eq!(delivery.run_once(now).await.unwrap().received, 1);
    delivery.run_once(now + Duration::minutes(30)).await.unwrap();
    assert_eq!(
        store.archive_entry(&key).await.unwrap().unwrap().state,
        ArchiveState::Received
    );
    delivery.run_once(now + Duration::hours(2)).await.unwrap();
    let e = store.archive_entry(&key).await.unwrap().unwrap();
    assert_eq!(e.state, ArchiveState::Failed);
    assert!(e.last_error.unwrap().contains("ingen kvittering"));
}

/// The directory drop, with the archive integration on the other side.
#[tokio::test]
async fn the_directory_transport_delivers_and_reads_the_kvittering() {
    let dir = tempfile::tempdir().unwrap();
    let (ut, svar) = (dir.path().join("ut"), dir.path().join("svar"));
    let text = format!(
        "[transport]\nkind = \"directory\"\noutbox_dir = \"{}\"\nreply_dir = \"{}\"\n",
        ut.display(),
        svar.display()
    );
    let config = tilstede::archive::RawArchiveConfig::from_toml(&text)
        .unwrap()
        .validate()
        .unwrap();
    let store = Store::open("sqlite::memory:").await.unwrap();
    let a = enqueue(&store, &config, DocumentKind::Samarbeidsavtale, 1, &sample_pdf(1)).await;
    let b = enqueue(&store, &config, DocumentKind::Samarbeidsavtale, 2, &sample_pdf(2)).await;
    let delivery = Delivery::new(
        store.clone(),
        Transport::from_config(&config.transport).unwrap(),
        config,
    );
    let now = t("2026-03-23T10:00:00Z");
    assert_eq!(delivery.run_once(now).await.unwrap().received, 2);
    let fake = FakeArchive::start(0.0, 1).await;
    assert_eq!(process_directory(&fake.state, &ut, &svar), 2);
    let round = delivery.run_once(now + Duration::hours(1)).await.unwrap();
    assert_eq!(round.archived, 2);
    let s = fake.state.lock().unwrap().clone();
    assert_eq!(s.journalposts.len(), 2);
    assert_eq!(s.invalid_messages, 0);
    for key in [&a, &b] {
        let e = store.archive_entry(key).await.unwrap().unwrap();
        assert_eq!(
            e.folder_system_id.as_deref(),
            Some(s.folders["elev:p1"].system_id.as_str())
        );
    }
    assert_eq!(
        [&a, &b].map(|k| s.journalposts[k].title.clone()),
        [
            "Samarbeidsavtale nr. 1, sak S-2026-0001".to_string(),
            "Samarbeidsavtale nr. 2, sak S-2026-0001".to_string()
        ]
    );
}

/// The retention purge deletes our copy of a closed case, never what the
/// archive holds: the delivered journalpost stays in the archive, our
/// payload goes, the receipt stays; a document not yet delivered keeps its
/// payload until it is, and is delivered after the purge.
#[tokio::test]
async fn the_purge_leaves_the_archived_document_alone() {
    for backend in crate::support::store_backends().await {
        purge_leaves_the_archive_alone(backend).await;
    }
}

async fn purge_leaves_the_archive_alone(backend: Store) {
    let (store, cfg) = with_case(backend).await;
    let fake = FakeArchive::start(0.0, 1).await;
    let config = ArchiveConfig {
        transport: TransportConfig::Http {
            url: fake.url(),
            token: None,
            timeout: std::time::Duration::from_secs(10),
        },
        ..ArchiveConfig::default()
    };
    let delivery = Delivery::new(
        store.clone(),
        Transport::from_config(&config.transport).unwrap(),
        config.clone(),
    );
    let pdf = sample_pdf(1);
    let delivered = enqueue(&store, &config, DocumentKind::Samarbeidsavtale, 1, &pdf).await;
    deliver_all(&delivery, &store, t("2026-03-23T10:00:00Z"), 5).await;
    // The archive is down when the evaluation is made final.
    let late = enqueue(&store, &config, DocumentKind::Evaluering, 1, &sample_pdf(2)).await;
    fake.state.lock().unwrap().faults.push_back(Fault::Unavailable);
    delivery.run_once(t("2026-03-24T10:00:00Z")).await.unwrap();
    assert_eq!(
        store.archive_entry(&late).await.unwrap().unwrap().state,
        ArchiveState::Queued
    );

    let leader = Party::new("al-1", Role::Avdelingsleder);
    let close: CaseCommand = serde_json::from_value(json!({"command":"close","reason":"lost"})).unwrap();
    tilstede::workflow::apply_case_command(&store, "S-2026-0001", &leader, &close, t("2026-03-24T12:00:00Z"), &cfg)
        .await
        .unwrap();
    let purged = store.purge_closed_cases(Utc::now() + Duration::days(1)).await.unwrap();
    assert_eq!(purged.cases, ["S-2026-0001"]);

    // The archive still holds the journalpost, whole.
    {
        let s = fake.state.lock().unwrap();
        assert_eq!(s.journalposts[&delivered].document, pdf);
        xmllint(
            &s.journalposts[&delivered].arkivmelding,
            "no.ks.fiks.arkiv.v1.arkivering.arkivmelding.opprett.xsd",
        )
        .unwrap();
    }
    // Our copy is gone; the receipt is kept.
    let e = store.archive_entry(&delivered).await.unwrap().unwrap();
    assert_eq!((e.arkivmelding, e.document), (None, None));
    assert_eq!(e.state, ArchiveState::Archived);
    assert!(e.journalpost_system_id.is_some());
    // The undelivered one kept its payload and still goes out, then loses it.
    let l = store.archive_entry(&late).await.unwrap().unwrap();
    assert!(l.document.is_some() && l.arkivmelding.is_some());
    deliver_all(&delivery, &store, t("2026-03-25T10:00:00Z"), 5).await;
    let l = store.archive_entry(&late).await.unwrap().unwrap();
    assert_eq!(l.state, ArchiveState::Archived);
    assert_eq!((l.arkivmelding, l.document), (None, None));
    assert_eq!(fake.state.lock().unwrap().journalposts.len(), 2);
}
