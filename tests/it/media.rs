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
