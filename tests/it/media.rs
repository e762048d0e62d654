//! Charts and documents in the case thread against a real Synapse: a case
//! walked to its evaluation gets the weekly attendance chart as an
//! encrypted `m.image` and the evaluation as an encrypted PDF (`m.file`);
//! a second client downloads and decrypts both and checks the PNG's
//! dimensions and the PDF's frozen numbers.

use crate::archive::{poppler, t, with_case};
use crate::synapse::{Person, register, shared};
use matrix_sdk::media::{MediaFormat, MediaRequestParameters};
use matrix_sdk::ruma::events::room::message::MessageType;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tilstede::cases::{Command as CaseCommand, EvaluationOutcome, Party, Role};
use tilstede::chat::Chat;
use tilstede::matrix::{Bot, MatrixConfig, SchoolRoom, school_room};
use tilstede::render::Renderer;
use tilstede::store::Store;

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG signature");
    assert_eq!(&png[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&png[16..20]), be(&png[20..24]))
}

#[tokio::test]
async fn an_evaluated_case_gets_its_chart_and_pdf_in_the_thread_decrypted_by_a_second_client() {
    let server = shared();
    let ola = Person::new(server, "ola").await;
    let (bot_user, password) = register(server, "tilstede").await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store.db").to_str().unwrap())
        .await
        .unwrap();
    let (store, cases) = with_case(store).await;
    let config = MatrixConfig {
        homeserver: server.url(),
        user: bot_user.clone(),
        password_env: "UNUSED".into(),
        store_dir: dir.path().join("matrix"),
        admins: Vec::new(),
        allow_unencrypted: false,
        allowed_servers: Vec::new(),
        schools: vec![SchoolRoom {
            school: "skole-1".into(),
            name: "Ressursteam".into(),
            members: vec![ola.user_id.clone()],
        }],
    };
    let chat = Chat::new(
        store.clone(),
        cases.clone(),
        config.clone(),
        Renderer::builtin().unwrap(),
    );
    let bot = Bot::start(config, &password, store.clone(), Arc::new(chat.clone()))
        .await
        .expect("bot start");
    bot.ensure_rooms().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let room = loop {
        if let Some(r) = store.matrix_room(&school_room("skole-1")).await.unwrap() {
            break r.room_id;
        }
        assert!(Instant::now() < deadline, "the ressursteam room was never made");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _tasks = bot.spawn();
    ola.join(&room).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The evaluation on its date: the numbers freeze.
    let leader = Party::new("al-1", Role::Avdelingsleder);
    tilstede::workflow::apply_case_command(
        &store,
        "S-2026-0001",
        &leader,
        &CaseCommand::evaluate(EvaluationOutcome::NewAgreement),
        t("2026-03-23T10:00:00Z"),
        &cases,
    )
    .await
    .unwrap();
    chat.relay(t("2026-03-23T11:00:00Z")).await.unwrap();
    bot.wake();

    let card = ola
        .wait_for("the case card", |m| {
            m.room == room && m.body.starts_with("Sak S-2026-0001") && m.thread_root.is_none()
        })
        .await;
    let image = ola
        .wait_for("the chart in the thread", |m| {
            m.room == room
                && m.thread_root.as_deref() == Some(card.event_id.as_str())
                && matches!(m.media, Some(MessageType::Image(_)))
        })
        .await;
    assert!(image.encrypted, "the image event is encrypted");
    let Some(MessageType::Image(content)) = &image.media else {
        unreachable!()
    };
    assert!(
        matches!(
            content.source,
            matrix_sdk::ruma::events::room::MediaSource::Encrypted(_)
        ),
        "the image itself is encrypted on the homeserver"
    );
    assert!(image.body.contains("S-2026-0001 · Å.B. (9B)"), "{}", image.body);
    assert!(!image.body.contains("Åse"), "no name in the chart's text");
    let png = ola
        .client
        .media()
        .get_media_content(
            &MediaRequestParameters {
                source: content.source.clone(),
                format: MediaFormat::File,
            },
            false,
        )
        .await
        .expect("download and decrypt the chart");
    let (w, h) = png_size(&png);
    let info = content.info.as_ref().expect("image info");
    assert_eq!(
        (Some(u64::from(w)), Some(u64::from(h))),
        (info.width.map(u64::from), info.height.map(u64::from)),
        "the PNG is as large as the event says"
    );
    assert!(w >= 600 && h >= 300, "{w}×{h}");
    std::fs::write(dir.path().join("chart.png"), &png).unwrap();
    if let Ok(out) = std::env::var("TILSTEDE_CHART_DIR") {
        std::fs::write(std::path::Path::new(&out).join("thread-chart.png"), &png).unwrap();
    }

    let file = ola
        .wait_for("the evaluation PDF in the thread", |m| {
            m.room == room
                && m.thread_root.as_deref() == Some(card.event_id.as_str())
                && matches!(&m.media, Some(MessageType::File(f)) if f.filename().starts_with("evaluering-"))
        })
        .await;
    let Some(MessageType::File(content)) = &file.media else {
        unreachable!()
    };
    assert_eq!(
        content.info.as_ref().and_then(|i| i.mimetype.as_deref()),
        Some("application/pdf")
    );
    let pdf = ola
        .client
        .media()
        .get_media_content(
            &MediaRequestParameters {
                source: content.source.clone(),
                format: MediaFormat::File,
            },
            false,
        )
        .await
        .expect("download and decrypt the PDF");
    assert!(pdf.starts_with(b"%PDF-"), "a PDF");
    let path = dir.path().join("evaluering.pdf");
    std::fs::write(&path, &pdf).unwrap();
    if let Some(text) = poppler("pdftotext", &["-layout"], &path) {
        assert!(text.contains("Fraværet før og under avtalen"), "{text}");
        assert!(text.contains("Endring i oppmøte"), "the frozen numbers: {text}");
        assert!(text.contains("Oppmøte per uke"), "the chart's heading: {text}");
    }
    if let Some(listed) = crate::archive::poppler_plain("pdfimages", &["-list"], &path) {
        assert!(
            listed.lines().skip(2).count() >= 1,
            "the chart is an image in the PDF: {listed}"
        );
    }
}

/// The chat relay queues each final document of a walked case (the
/// samarbeidsavtale, then the evaluation) for the archive, and a handoff
/// its overføring; delivery to a
/// fake archive that validates every message against the Fiks Arkiv XSD
/// and fails a third of the requests ends with one journalpost per
/// document, each once.
#[tokio::test]
async fn final_documents_reach_the_archive_through_the_chat_relay() {
    use crate::fake::archive::FakeArchive;
    use tilstede::archive::ArchiveConfig;
    use tilstede::archive::config::TransportConfig;
    use tilstede::archive::delivery::Delivery;
    use tilstede::archive::transport::Transport;
    use tilstede::store::PostKind;
    let fake = FakeArchive::start(0.3, 16).await;
    let archive = ArchiveConfig {
        transport: TransportConfig::Http {
            url: fake.url(),
            token: None,
            timeout: Duration::from_secs(10),
        },
        retry: Duration::from_secs(1),
        max_attempts: 50,
        ..ArchiveConfig::default()
    };
    let (store, cases) = with_case(Store::open("sqlite::memory:").await.unwrap()).await;
    let config = MatrixConfig {
        homeserver: "http://127.0.0.1:1".into(),
        user: "@tilstede:kommune.test".into(),
        password_env: "UNUSED".into(),
        store_dir: "/nonexistent".into(),
        admins: Vec::new(),
        allow_unencrypted: false,
        allowed_servers: Vec::new(),
        schools: vec![SchoolRoom {
            school: "skole-1".into(),
            name: "Ressursteam".into(),
            members: vec!["@al-1:kommune.test".into()],
        }],
    };
    let clock = tilstede::clock::SimulatedClock::new(t("2026-03-24T09:00:00Z"));
    let chat = Chat::new(store.clone(), cases.clone(), config, Renderer::builtin().unwrap())
        .with_archive(Some(archive.clone()))
        .with_clock(clock);
    chat.relay(t("2026-03-02T10:00:00Z")).await.unwrap();
    tilstede::workflow::apply_case_command(
        &store,
        "S-2026-0001",
        &Party::new("al-1", Role::Avdelingsleder),
        &CaseCommand::evaluate(EvaluationOutcome::NewAgreement),
        t("2026-03-23T10:00:00Z"),
        &cases,
    )
    .await
    .unwrap();
    chat.relay(t("2026-03-23T11:00:00Z")).await.unwrap();
    assert_eq!(chat.relay(t("2026-03-23T11:00:00Z")).await.unwrap(), 0, "relayed once");
    // Phase 4 and a handoff proposed in the ressursteam room: the
    // overføring is a final document too.
    tilstede::workflow::apply_case_command(
        &store,
        "S-2026-0001",
        &Party::new("al-1", Role::Avdelingsleder),
        &serde_json::from_value(serde_json::json!({"command":"change-phase","to":"further"})).unwrap(),
        t("2026-03-24T08:00:00Z"),
        &cases,
    )
    .await
    .unwrap();
    let context = tilstede::matrix::CommandContext {
        room_key: school_room("skole-1"),
        room_kind: "ressursteam".into(),
        sender: "@al-1:kommune.test".into(),
        event_id: "$handoff".into(),
        thread_root: "$card".into(),
    };
    let command = tilstede::matrix::commands::parse("!koordinator S-2026-0001 @bup:kommune.test bup").unwrap();
    let reply = tilstede::matrix::CommandHandler::handle(&chat, &context, command).await;
    assert!(reply.plain.contains("kryptert saksrom"), "{}", reply.plain);
    chat.relay(t("2026-03-24T09:00:00Z")).await.unwrap();
    let mut files: Vec<(String, String)> = store
        .outbox_log()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.post.kind == PostKind::File)
        .map(|e| (e.post.room_key, e.post.body))
        .collect();
    files.sort();
    let school = school_room("skole-1");
    let case_room = tilstede::matrix::case_room("S-2026-0001");
    assert_eq!(
        files,
        [
            (case_room, "overforing-S-2026-0001-1.pdf".to_string()),
            (school.clone(), "evaluering-S-2026-0001-1.pdf".to_string()),
            (school.clone(), "overforing-S-2026-0001-1.pdf".to_string()),
            (school, "samarbeidsavtale-S-2026-0001-1.pdf".to_string()),
        ],
        "each final document attached once; the overføring in the case room and the case thread"
    );
    let queued = store.archive_entries_of_case("S-2026-0001").await.unwrap();
    assert_eq!(queued.len(), 3, "{queued:?}");

    let delivery = Delivery::new(
        store.clone(),
        Transport::from_config(&archive.transport).unwrap(),
        archive,
    );
    let mut now = t("2026-03-24T10:00:00Z");
    for _ in 0..200 {
        delivery.run_once(now).await.unwrap();
        if store.archive_counts().await.unwrap().archived == 3 {
            break;
        }
        now += chrono::Duration::minutes(5);
    }
    let counts = store.archive_counts().await.unwrap();
    assert_eq!((counts.archived, counts.failed), (3, 0), "{counts:?}");
    let state = fake.state.lock().unwrap().clone();
    assert_eq!(state.invalid_messages, 0, "every message valid against the XSD");
    let titles: Vec<&str> = state.journalposts.values().map(|j| j.title.as_str()).collect();
    assert_eq!(titles.len(), 3, "one journalpost per document: {titles:?}");
    assert!(titles.iter().any(|t| t.starts_with("Overføring")), "{titles:?}");
    assert!(titles.iter().any(|t| t.starts_with("Samarbeidsavtale")), "{titles:?}");
    assert!(titles.iter().any(|t| t.starts_with("Evaluering")), "{titles:?}");
    for j in state.journalposts.values() {
        assert!(j.document.starts_with(b"%PDF-"));
        assert!(!j.arkivmelding.contains("Åse"), "no given name in the message");
    }
    println!("faults committed by the fake archive: {}", state.faults_committed.len());
}

/// Leadership's review brings the school chart: an `m.image` in the
/// ressursteam room (delivered encrypted like every post there), with the
/// weeks of the review period and counts only, no pupil.
#[tokio::test]
async fn leadership_review_posts_the_school_chart_in_the_ressursteam_room() {
    use tilstede::store::PostKind;
    let (store, cases) = with_case(Store::open("sqlite::memory:").await.unwrap()).await;
    let config = MatrixConfig {
        homeserver: "http://127.0.0.1:1".into(),
        user: "@tilstede:kommune.test".into(),
        password_env: "UNUSED".into(),
        store_dir: "/nonexistent".into(),
        admins: Vec::new(),
        allow_unencrypted: false,
        allowed_servers: Vec::new(),
        schools: vec![SchoolRoom {
            school: "skole-1".into(),
            name: "Ressursteam Østerås".into(),
            members: vec!["@al-1:kommune.test".into()],
        }],
    };
    let chat = Chat::new(store.clone(), cases.clone(), config, Renderer::builtin().unwrap());
    // Ten weeks into the spring half-year: the first review (1 January to 11 March).
    let now = t("2026-03-23T07:00:00Z");
    let stats = chat.digests(now).await.unwrap();
    assert_eq!(stats.schools, 1, "{stats:?}");
    assert_eq!(chat.digests(now).await.unwrap().schools, 0, "once per review");
    let images: Vec<_> = store
        .outbox_log()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.post.kind == PostKind::Image)
        .collect();
    assert_eq!(images.len(), 1, "one chart: {images:?}");
    let image = &images[0];
    assert_eq!(image.post.room_key, school_room("skole-1"));
    assert!(image.post.thread.is_none(), "beside the review, not in a case thread");
    assert!(
        image
            .post
            .body
            .starts_with("Fravær per uke for Ressursteam Østerås (uke 1–11)"),
        "{}",
        image.post.body
    );
    for personal in ["Åse", "Bø", "Å.B.", "9B", "S-2026"] {
        assert!(!image.post.body.contains(personal), "{personal} in {}", image.post.body);
    }
    let media = store.outbox_media(image.id).await.unwrap().expect("the PNG");
    assert_eq!(media.mime, "image/png");
    let (w, h) = png_size(&media.data);
    assert_eq!((Some(w), Some(h)), (media.width, media.height));
    assert!(w >= 600 && h >= 300, "{w}×{h}");
    if let Ok(out) = std::env::var("TILSTEDE_CHART_DIR") {
        std::fs::write(std::path::Path::new(&out).join("school-review.png"), &media.data).unwrap();
    }
}
