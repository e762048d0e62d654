//! Shared helpers for the integration tests.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `tilstede` binary with `args` and the store at `store`.
pub fn tilstede(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tilstede"))
        .args(args)
        .env("TILSTEDE_STORE", store)
        .env_remove("RUST_LOG")
        .output()
        .expect("run tilstede")
}

/// Like [`tilstede`], but panics with the output when the command fails.
pub fn tilstede_ok(store: &Path, args: &[&str]) -> (String, String) {
    let out = tilstede(store, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "tilstede {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (stdout, stderr)
}

/// A fresh store per backend: always SQLite in a temp dir; PostgreSQL too when
/// `TILSTEDE_TEST_POSTGRES` holds a server URL (each call makes a new
/// database). Under CI the PostgreSQL URL must be set.
pub async fn store_backends() -> Vec<tilstede::store::Store> {
    let dir = Box::leak(Box::new(tempfile::tempdir().expect("tempdir")));
    let path = dir.path().join("store.db");
    let mut stores = vec![
        tilstede::store::Store::open(path.to_str().unwrap())
            .await
            .expect("sqlite store"),
    ];
    if let Some(url) = postgres_url() {
        stores.push(fresh_postgres(&url).await);
    }
    stores
}

/// The PostgreSQL server URL for tests, if any; panics under CI without one.
pub fn postgres_url() -> Option<String> {
    match std::env::var("TILSTEDE_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("TILSTEDE_TEST_POSTGRES is not set; CI must test PostgreSQL (see scripts/test)")
        }
        _ => None,
    }
}

/// A new, empty database on the test PostgreSQL server.
pub async fn fresh_postgres(server: &str) -> tilstede::store::Store {
    use sqlx::Executor;
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "t_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        chrono::Utc::now().timestamp_micros()
    );
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(server)
        .await
        .expect("connect to the test PostgreSQL server");
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create database");
    admin.close().await;
    let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(server);
    tilstede::store::Store::open(&format!("{base}/{name}"))
        .await
        .expect("postgres store")
}

/// Starts `tilstede serve --config CONFIG` on a free port; returns the child
/// and its base URL (read from the first line it prints).
pub fn spawn_serve(config: &Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tilstede"))
        .args(["serve", "--config", config.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start tilstede serve");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first.trim().rsplit(' ').next().unwrap_or_default().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "unexpected first line: {first}");
    (child, url)
}

/// Sends SIGTERM and checks that the service exits cleanly.
pub fn stop_serve(mut child: std::process::Child) {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "tilstede serve exited with {status:?}");
}

/// Today's school date (Europe/Oslo), for records the date window accepts.
pub fn today() -> chrono::NaiveDate {
    tilstede::domain::dates::school_date_utc(chrono::Utc::now())
}

/// One canonical JSONL record.
pub fn jsonl_line(id: &str, pupil: &str, school: &str, date: chrono::NaiveDate, kind: &str, validity: &str) -> String {
    format!(
        r#"{{"id":"{id}","pupil":"{pupil}","school":"{school}","date":"{date}","kind":"{kind}","validity":"{validity}"}}"#
    )
}

/// POSTs a JSONL body to `source`'s push endpoint with a bearer token.
pub async fn post_jsonl(
    http: &reqwest::Client,
    base: &str,
    source: &str,
    token: &str,
    body: &str,
) -> reqwest::Response {
    http.post(format!("{base}/api/v1/sources/{source}/records"))
        .header("content-type", "application/x-ndjson")
        .bearer_auth(token)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}
