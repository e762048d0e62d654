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
