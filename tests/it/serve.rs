//! `tilstede serve` as a whole: scheduled pulls from a fake source that fails
//! for a while, then catches up; findings follow.

use crate::fake::edfi::{self, CLIENT_ID, CLIENT_SECRET, EdfiState, Fault};
use std::time::Duration;
use tilstede::config::RawConfig;

#[tokio::test]
async fn scheduled_pull_survives_500s_and_429s_and_catches_up() {
    let today = tilstede::domain::dates::school_date_utc(chrono::Utc::now());
    let day = (today - chrono::Days::new(1)).to_string();
    let mut state = EdfiState::default();
    for i in 0..30 {
        state.add(
            "studentSchoolAttendanceEvents",
            edfi::school_event(&format!("e{i}"), &format!("elev-{i}"), &day, "Unexcused Absence"),
        );
    }
    let server = edfi::start(state).await;
    // The source is down for a while: errors, rate limits, errors again.
    server.state.lock().unwrap().faults = [
        Fault::ServerError,
        Fault::ServerError,
        Fault::TooMany(1),
        Fault::ServerError,
        Fault::ServerError,
        Fault::ServerError,
        Fault::ServerError,
        Fault::ServerError,
        Fault::TooMany(1),
        Fault::ServerError,
    ]
    .into();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), CLIENT_SECRET).unwrap();
    let text = format!(
        r#"
store = "serve.db"
[sources.edfi]
schools = ["*"]
pull_every_seconds = 1
[sources.edfi.pull]
adapter = "edfi-api"
base_url = "http://{addr}"
client_id = "{CLIENT_ID}"
client_secret_file = "{secret}"
page_size = 7
attempts = 2
backoff_ms = 10
timeout_seconds = 2
"#,
        addr = server.addr,
        secret = dir.path().join("secret").display()
    );
    let raw: RawConfig = tilstede::config::toml::parse_toml(&text).unwrap();
    let running = tilstede::service::start(raw.validate(dir.path()).unwrap(), Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();

    // Every record arrives exactly once, and findings follow.
    let mut counts = (0, 0);
    for _ in 0..300 {
        counts = running.state.store.record_count().await.unwrap();
        let findings = running.state.store.finding_count().await.unwrap();
        if counts.0 == 30 && findings == 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counts, (30, 0));
    assert_eq!(running.state.store.finding_count().await.unwrap(), 30);
    assert!(server.state.lock().unwrap().faults.is_empty(), "every fault was met");

    // New events are pulled incrementally on the next round.
    server.state.lock().unwrap().add(
        "studentSchoolAttendanceEvents",
        edfi::school_event("late1", "elev-9", &day, "Tardy"),
    );
    for _ in 0..100 {
        if running.state.store.record_count().await.unwrap().0 == 31 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(running.state.store.record_count().await.unwrap(), (31, 0));
    let metrics = reqwest::get(format!("http://{}/metrics", running.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tilstede_sync_lag_seconds{source=\"edfi\"}"),
        "{metrics}"
    );
    running.shutdown().await.unwrap();
}

/// The whole service with the Matrix bot: pushed records become cases whose
/// cards and prompts reach the ressursteam room; `kill -9` in the middle of
/// delivery, then a restart: every post arrives, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_the_bot_and_a_kill_mid_delivery_loses_and_doubles_nothing() {
    use crate::support::{spawn_serve, stop_serve};
    use crate::synapse::{Person, register, shared};
    use tilstede::domain::roster::{Roster, RosterClass, RosterPupil, RosterSchool};

    let server = shared();
    let leder = Person::new(server, "leder").await;
    let (bot_user, password) = register(server, "tilstede").await;
    let dir = tempfile::tempdir().unwrap();
    const PUSH: &str = "push-token-1-0123456789abcdef0123456789";
    std::fs::write(dir.path().join("push.token"), PUSH).unwrap();
    std::fs::write(dir.path().join("bot.password"), &password).unwrap();
    let config = dir.path().join("tilstede.toml");
    std::fs::write(
        &config,
        format!(
            r#"
store = "serve.db"
[sources.vis]
schools = ["sk-01"]
token_file = "push.token"
[matrix]
homeserver = "{url}"
user = "{bot_user}"
password_file = "bot.password"
store_dir = "matrix"
[[matrix.schools]]
school = "sk-01"
name = "Ressursteam Eksempel skole"
members = ["{leder}"]
"#,
            url = server.url(),
            leder = leder.user_id
        ),
    )
    .unwrap();
    const PUPILS: usize = 30;
    {
        let store = tilstede::store::Store::open(dir.path().join("serve.db").to_str().unwrap())
            .await
            .unwrap();
        store
            .upsert_roster(&Roster {
                schools: vec![RosterSchool {
                    id: "sk-01".into(),
                    name: "Eksempel skole".into(),
                }],
                classes: vec![RosterClass {
                    id: "c8a".into(),
                    school: "sk-01".into(),
                    name: "8A".into(),
                    grade: 8,
                    contact_teachers: Vec::new(),
                }],
                pupils: (0..PUPILS)
                    .map(|i| RosterPupil {
                        id: format!("p{i}"),
                        school: "sk-01".into(),
                        class: Some("c8a".into()),
                        grade: 8,
                        given_name: format!("Fornavn{i}"),
                        family_name: "Etternavn".into(),
                    })
                    .collect(),
                staff: Vec::new(),
            })
            .await
            .unwrap();
        store.close().await;
    }
    let (child, url) = spawn_serve(&config);
    let http = reqwest::Client::new();
    // Ready: the store and the homeserver answer.
    let mut ready = false;
    for _ in 0..200 {
        if http
            .get(format!("{url}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "readyz never answered 200");
    let store = tilstede::store::Store::open(dir.path().join("serve.db").to_str().unwrap())
        .await
        .unwrap();
    let room = loop {
        if let Some(r) = store
            .matrix_room(&tilstede::matrix::school_room("sk-01"))
            .await
            .unwrap()
        {
            break r.room_id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    leder.join(&room).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let yesterday = tilstede::domain::dates::school_date_utc(chrono::Utc::now()) - chrono::Days::new(1);
    let body: String = (0..PUPILS)
        .map(|i| {
            format!(
                "{{\"id\":\"r{i}\",\"version\":1,\"pupil\":\"p{i}\",\"school\":\"sk-01\",\"date\":\"{yesterday}\",\"kind\":\"day\",\"validity\":\"invalid\"}}\n"
            )
        })
        .collect();
    let answer = http
        .post(format!("{url}/api/v1/sources/vis/records"))
        .bearer_auth(PUSH)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);

    // Kill the service while the posts are going out.
    let bot_posts = |p: &Person| {
        p.seen()
            .into_iter()
            .filter(|m| m.sender == bot_user && m.room == room)
            .collect::<Vec<_>>()
    };
    leder
        .wait_until(Duration::from_secs(120), "the first posts", |s| {
            s.iter().filter(|m| m.sender == bot_user).count() >= 10
        })
        .await;
    let pending = store.outbox_counts().await.unwrap().pending;
    let mut child = child;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(pending > 0, "the kill came after delivery had finished");

    // Restart: the rest goes out, each post once.
    let (child, url) = spawn_serve(&config);
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let c = store.outbox_counts().await.unwrap();
        if c.pending == 0 && c.delivered > 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "outbox never drained: {c:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivered_here: i64 = store.outbox_counts().await.unwrap().delivered;
    let seen = leder
        .wait_until(Duration::from_secs(60), "every post", |s| {
            s.iter().filter(|m| m.sender == bot_user && m.room == room).count() as i64 >= delivered_here
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let posts = bot_posts(&leder);
    let mut ids: Vec<&str> = posts.iter().map(|m| m.event_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), posts.len(), "an event seen twice");
    let mut bodies: Vec<(String, Option<String>)> =
        posts.iter().map(|m| (m.body.clone(), m.replaces.clone())).collect();
    bodies.sort();
    let all = bodies.len();
    bodies.dedup();
    assert_eq!(bodies.len(), all, "a post was delivered twice");
    let cards = posts
        .iter()
        .filter(|m| m.thread_root.is_none() && m.replaces.is_none() && m.body.starts_with("Sak S-"))
        .count();
    assert_eq!(cards, PUPILS, "one card per case: {cards}");
    assert!(seen.len() >= posts.len());
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("tilstede_matrix_send_seconds_count"), "{metrics}");
    stop_serve(child);
}

/// The archive loop runs inside `serve`: of two final documents queued,
/// the fake archive takes one (an XSD-valid journalpost) and refuses the
/// other; `/metrics` shows the states move from queued to archived and
/// failed, with the failed attempt counted, and leadership is told in the
/// ressursteam room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_delivers_the_archive_outbox_and_tells_leadership_of_a_refusal() {
    use crate::archive::{enqueue, sample_pdf};
    use crate::fake::archive::{FakeArchive, Fault};
    use crate::synapse::{Person, register, shared};
    use tilstede::archive::DocumentKind;

    let fake = FakeArchive::start(0.0, 7).await;
    fake.state.lock().unwrap().faults.push_back(Fault::Refuse);
    let server = shared();
    let leder = Person::new(server, "arkivleder").await;
    let (bot_user, password) = register(server, "tilstede").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bot.password"), &password).unwrap();
    let text = format!(
        r#"
store = "serve.db"
[matrix]
homeserver = "{url}"
user = "{bot_user}"
password_file = "bot.password"
store_dir = "matrix"
[[matrix.schools]]
school = "skole-1"
name = "Ressursteam"
members = ["{leder}"]
[archive]
retry_seconds = 1
max_attempts = 3
[archive.transport]
kind = "http"
url = "{archive}"
timeout_seconds = 5
"#,
        url = server.url(),
        leder = leder.user_id,
        archive = fake.url(),
    );
    let raw: RawConfig = tilstede::config::toml::parse_toml(&text).unwrap();
    let running = tilstede::service::start(raw.validate(dir.path()).unwrap(), Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let store = running.state.store.clone();
    let metrics = || async {
        reqwest::get(format!("http://{}/metrics", running.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = metrics().await;
    assert!(
        before.contains("tilstede_archive_documents{state=\"archived\"} 0"),
        "{before}"
    );
    let room = loop {
        if let Some(r) = store
            .matrix_room(&tilstede::matrix::school_room("skole-1"))
            .await
            .unwrap()
        {
            break r.room_id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    leder.join(&room).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let config = running.state.config.archive.clone().expect("the archive section");
    let refused = enqueue(&store, &config, DocumentKind::Evaluering, 1, &sample_pdf(1)).await;
    let taken = enqueue(&store, &config, DocumentKind::Samarbeidsavtale, 1, &sample_pdf(2)).await;
    let mut scraped = String::new();
    for _ in 0..300 {
        scraped = metrics().await;
        if scraped.contains("tilstede_archive_documents{state=\"archived\"} 1")
            && scraped.contains("tilstede_archive_documents{state=\"failed\"} 1")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for line in [
        "tilstede_archive_documents{state=\"queued\"} 0",
        "tilstede_archive_documents{state=\"archived\"} 1",
        "tilstede_archive_documents{state=\"failed\"} 1",
        "tilstede_archive_failed_attempts_total 1",
    ] {
        assert!(scraped.contains(line), "{line} in {scraped}");
    }
    {
        let state = fake.state.lock().unwrap();
        assert_eq!(state.invalid_messages, 0, "every message valid against the XSD");
        assert_eq!(
            state.journalposts.keys().collect::<Vec<_>>(),
            [&taken],
            "the archive holds the document it took"
        );
    }
    let refused_entry = store.archive_entry(&refused).await.unwrap().unwrap();
    assert_eq!(refused_entry.state, tilstede::store::ArchiveState::Failed);

    // Leadership hears of the refusal in the ressursteam room, once.
    let alert = leder
        .wait_for("the archive alert", |m| {
            m.room == room && m.sender == bot_user && m.body.starts_with("Arkivet tok ikke imot")
        })
        .await;
    assert!(
        alert.body.contains("Evaluering av samarbeidsavtale, sak S-2026-0001"),
        "{}",
        alert.body
    );
    assert!(alert.encrypted, "the alert is encrypted");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let alerts = store
        .outbox_log()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.post.body.starts_with("Arkivet tok ikke imot"))
        .count();
    assert_eq!(alerts, 1, "told once");
    running.shutdown().await.unwrap();
}
