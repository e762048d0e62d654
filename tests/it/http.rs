//! The HTTP gateway over real loopback HTTP, backed by a real SQLite store.

use crate::support::{jsonl_line as line, spawn_serve, stop_serve, today};
use std::time::Duration;
use tilstede::config::Config;
use tilstede::http::auth::{REQUEST_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};

/// The push token of source `vis`.
const PUSH: &str = "push-token-5f0c1e7a9b2d4c6e8f0a1b3c";
/// The HMAC key of source `vis`.
const HMAC: &str = "hmac-key-3d5f7a9c1e2b4d6f8a0c2e4b";
/// The token of the read user who sees every school.
const READER_ALL: &str = "reader-all-8e6c4a2f0d9b7e5c3a1f77";
/// The token of the read user who sees only skole-2.
const READER_TWO: &str = "reader-two-1a3c5e7f9b2d4f6a8c0e55";

/// Config with a push source `vis` (token + HMAC) and two read users, plus
/// `extra` TOML appended (settings of `[sources.vis]` may follow directly).
fn config_with(dir: &std::path::Path, max_body: u64, extra: &str) -> Config {
    std::fs::write(dir.join("vis.token"), format!("{PUSH}\n")).unwrap();
    std::fs::write(dir.join("vis.hmac"), format!("{HMAC}\n")).unwrap();
    std::fs::write(dir.join("leder.token"), format!("{READER_ALL}\n")).unwrap();
    std::fs::write(dir.join("skole2.token"), format!("{READER_TWO}\n")).unwrap();
    let text = format!(
        r#"
store = "store.db"
[http]
max_body_bytes = {max_body}
[http.users.leder]
token_file = "leder.token"
schools = ["*"]
[http.users.skole2]
token_file = "skole2.token"
schools = ["skole-2"]
[sources.vis]
schools = ["*"]
token_file = "vis.token"
hmac_secret_file = "vis.hmac"
{extra}
"#
    );
    tilstede::config::parse_and_validate(&text, dir).unwrap()
}

fn config(dir: &std::path::Path, max_body: u64) -> Config {
    config_with(dir, max_body, "")
}

/// A push of `body` signed with `key` at `at` (unix seconds) under `id`.
fn signed(request: reqwest::RequestBuilder, key: &str, at: i64, id: &str, body: &str) -> reqwest::RequestBuilder {
    with_signature(request, &sign(key, at, id, body.as_bytes()), at, id, body)
}

/// A push of `body` claiming `signature` for time `at` and request `id`.
fn with_signature(
    request: reqwest::RequestBuilder,
    signature: &str,
    at: i64,
    id: &str,
    body: &str,
) -> reqwest::RequestBuilder {
    request
        .header(SIGNATURE_HEADER, signature)
        .header(TIMESTAMP_HEADER, at.to_string())
        .header(REQUEST_ID_HEADER, id)
        .body(body.to_string())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

const JSONL: &str = "application/x-ndjson";

/// GETs a JSON list until it has `len` items (the service works in the
/// background) or five seconds pass; returns the last answer.
async fn poll_list(http: &reqwest::Client, url: &str, token: &str, len: usize) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..100 {
        let r = http.get(url).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 200);
        last = r.json().await.unwrap();
        if last.as_array().unwrap().len() == len {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

/// Sends a request and returns its status code.
async fn code(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn push_evaluate_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let running = tilstede::service::start(config(dir.path(), 1 << 20), Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let url = format!("{base}/api/v1/sources/vis/records");
    let day = today() - chrono::Days::new(2);
    let body = [
        line("a1", "p1", "skole-1", day, "lesson", "unclassified"),
        "{\"id\":\"bad\",\"pupil\":\"p1\",\"school\":\"skole-1\",\"date\":\"2026-13-01\",\"kind\":\"day\"}".into(),
        line("b1", "p2", "skole-2", day, "left", "invalid"),
        // A record claiming another source is refused, not silently re-labelled.
        r#"{"source":"other","id":"x","pupil":"p3","school":"skole-1","date":"2026-01-05","kind":"day"}"#.into(),
    ]
    .join("\n");

    let r = http
        .post(&url)
        .header("content-type", JSONL)
        .bearer_auth(PUSH)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (
            v["received"].as_u64(),
            v["accepted"].as_u64(),
            v["quarantined"].as_u64()
        ),
        (Some(4), Some(2), Some(2))
    );
    assert_eq!(v["rejected"][0]["position"], 2);
    assert!(v["rejected"][0]["reason"].as_str().unwrap().contains("date"));
    assert_eq!(v["rejected"][1]["position"], 4);
    assert!(v["rejected"][1]["reason"].as_str().unwrap().contains("source"));

    // Resending is harmless: nothing changes.
    let r = http
        .post(&url)
        .header("content-type", JSONL)
        .bearer_auth(PUSH)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!((v["changed"].as_u64(), v["unchanged"].as_u64()), (Some(0), Some(2)));

    // Signed instead of a token.
    let body = line("a2", "p1", "skole-1", day, "late", "valid");
    let r = signed(
        http.post(&url).header("content-type", JSONL),
        HMAC,
        now(),
        "req-a2",
        &body,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 202);

    // The evaluator picks the push up; the read API shows findings by school.
    let findings = poll_list(&http, &format!("{base}/api/v1/findings"), READER_ALL, 2).await;
    let got: Vec<(&str, &str)> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["pupil"].as_str().unwrap(), f["criterion"].as_str().unwrap()))
        .collect();
    assert_eq!(got, [("p1", "invalid-absence"), ("p2", "left-school")]);
    let r = http
        .get(format!("{base}/api/v1/findings"))
        .bearer_auth(READER_TWO)
        .send()
        .await
        .unwrap();
    let only: serde_json::Value = r.json().await.unwrap();
    assert_eq!(only.as_array().unwrap().len(), 1);
    assert_eq!(only[0]["school"], "skole-2");
    // Another school answers like a school with no findings at all.
    for school in ["skole-1", "skole-finnes-ikke"] {
        let r = http
            .get(format!("{base}/api/v1/findings?school={school}"))
            .bearer_auth(READER_TWO)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "[]");
    }

    // Cases open from the findings; reading them is audited.
    let cases = poll_list(&http, &format!("{base}/api/v1/cases"), READER_ALL, 2).await;
    let list = cases.as_array().unwrap();
    assert_eq!(list.len(), 2, "{cases}");
    assert!(list.iter().all(|c| c["phase"] == 2 && c["open"] == true), "{cases}");
    let theirs: serde_json::Value = http
        .get(format!("{base}/api/v1/cases"))
        .bearer_auth(READER_TWO)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs.as_array().unwrap().len(), 1);
    assert_eq!(theirs[0]["school"], "skole-2");
    let other = list.iter().find(|c| c["school"] == "skole-1").unwrap()["number"]
        .as_str()
        .unwrap()
        .to_string();
    // Another school's case answers exactly like a case that does not
    // exist, so case numbers cannot be probed.
    let r = http
        .get(format!("{base}/api/v1/cases/{other}"))
        .bearer_auth(READER_TWO)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let theirs_body = r.text().await.unwrap();
    let missing = "S-2099-9999";
    let r = http
        .get(format!("{base}/api/v1/cases/{missing}"))
        .bearer_auth(READER_TWO)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.text().await.unwrap().replace(missing, "NR"),
        theirs_body.replace(&other, "NR"),
        "the same answer for a missing case"
    );
    let r = http
        .get(format!("{base}/api/v1/cases/{other}"))
        .bearer_auth(READER_ALL)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let one: serde_json::Value = r.json().await.unwrap();
    assert_eq!(one["number"], other.as_str());
    let audit = running.state.store.case_audit(&other).await.unwrap();
    let actions: Vec<(&str, &str)> = audit.iter().map(|a| (a.actor.as_str(), a.action.as_str())).collect();
    assert!(actions.contains(&("api:leder", "list")), "{actions:?}");
    assert!(actions.contains(&("api:leder", "read")), "{actions:?}");
    assert!(
        !actions.iter().any(|(who, _)| *who == "api:skole2"),
        "a refused read is not a read: {actions:?}"
    );

    // Health, readiness, metrics and the OpenAPI document.
    assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(http.get(format!("{base}/readyz")).send().await.unwrap().status(), 200);
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tilstede_records_ingested_total{source=\"vis\"} 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tilstede_records_quarantined_total{source=\"vis\"} 4"),
        "{metrics}"
    );
    assert!(metrics.contains("tilstede_findings 2"), "{metrics}");
    assert!(metrics.contains("tilstede_cases{phase=\"2\"} 2"), "{metrics}");
    let doc: serde_json::Value = http
        .get(format!("{base}/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(doc, file);
    assert!(doc["paths"]["/api/v1/sources/{source}/records"]["post"].is_object());

    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn refuses_what_it_must() {
    let dir = tempfile::tempdir().unwrap();
    let running = tilstede::service::start(config(dir.path(), 4096), Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let url = format!("{base}/api/v1/sources/vis/records");
    let body = line("a1", "p1", "skole-1", today(), "day", "invalid");
    let post = |content_type: &str| http.post(&url).header("content-type", content_type);

    // No credentials, a wrong token, a wrong signature, a signature of another body.
    assert_eq!(code(post(JSONL).body(body.clone())).await, 401);
    assert_eq!(code(post(JSONL).bearer_auth("nope").body(body.clone())).await, 401);
    assert_eq!(code(signed(post(JSONL), "wrong-key", now(), "r1", &body)).await, 401);
    let at = now();
    let other_body = sign(HMAC, at, "r2", b"another body");
    assert_eq!(
        code(with_signature(post(JSONL), &other_body, at, "r2", &body)).await,
        401
    );
    // Unknown source, unsupported type, too large a body.
    let unknown = http
        .post(format!("{base}/api/v1/sources/nope/records"))
        .header("content-type", JSONL);
    assert_eq!(code(unknown.bearer_auth(PUSH).body(body.clone())).await, 404);
    assert_eq!(code(post("text/plain").bearer_auth(PUSH).body(body.clone())).await, 415);
    let big = vec![body.as_str(); 100].join("\n");
    assert_eq!(code(post(JSONL).bearer_auth(PUSH).body(big.clone())).await, 413);
    // Too large without a declared length (chunked): refused while reading.
    let chunked = format!(
        "POST /api/v1/sources/vis/records HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PUSH}\r\n\
         Content-Type: {JSONL}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    let answer = raw_exchange(running.addr, chunked.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // The read API needs a user token.
    let findings = format!("{base}/api/v1/findings");
    assert_eq!(code(http.get(&findings)).await, 401);
    assert_eq!(code(http.get(&findings).bearer_auth(PUSH)).await, 401);
    // Nothing of that was stored.
    assert_eq!(running.state.store.record_count().await.unwrap(), (0, 0));
    running.shutdown().await.unwrap();
}

/// Peak resident memory of a process, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024.0
}

/// 50 concurrent clients post 100,000 records (1 % malformed) to a running
/// `tilstede serve`: every item is accounted for, the store holds exactly the
/// accepted records, and the server's memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_hundred_thousand_records_all_accounted_for() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("vis.token"), PUSH).unwrap();
    let config = dir.path().join("tilstede.toml");
    std::fs::write(
        &config,
        "store = \"load.db\"\n[sources.vis]\nschools = [\"*\"]\ntoken_file = \"vis.token\"\n",
    )
    .unwrap();
    let (child, base) = spawn_serve(&config);
    let url = format!("{base}/api/v1/sources/vis/records");

    const CLIENTS: usize = 50;
    const REQUESTS: usize = 20;
    const PER_REQUEST: usize = 100;
    let day = today();
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (http, url) = (http.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let (mut accepted, mut quarantined, mut sent) = (0u64, 0u64, 0u64);
            for r in 0..REQUESTS {
                let body: Vec<String> = (0..PER_REQUEST)
                    .map(|i| {
                        let n = (c * REQUESTS + r) * PER_REQUEST + i;
                        if n % 100 == 7 {
                            format!(
                                r#"{{"id":"r{n}","pupil":"p{}","school":"s","date":"{day}","kind":"sometimes"}}"#,
                                n % 5000
                            )
                        } else {
                            line(&format!("r{n}"), &format!("p{}", n % 5000), "s", day, "lesson", "valid")
                        }
                    })
                    .collect();
                sent += body.len() as u64;
                let body = body.join("\n");
                // More clients than the source's push slots: a 429 is
                // sent again after a short pause.
                let resp = loop {
                    let resp = http
                        .post(&url)
                        .header("content-type", JSONL)
                        .bearer_auth(PUSH)
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    if resp.status() != 429 {
                        break resp;
                    }
                    assert_eq!(resp.headers()["retry-after"], "1");
                    tokio::time::sleep(Duration::from_millis(50 + (c as u64 * 7) % 100)).await;
                };
                assert_eq!(resp.status(), 202);
                let v: serde_json::Value = resp.json().await.unwrap();
                accepted += v["accepted"].as_u64().unwrap();
                quarantined += v["quarantined"].as_u64().unwrap();
            }
            (accepted, quarantined, sent)
        }));
    }
    let (mut accepted, mut quarantined, mut sent) = (0, 0, 0);
    for t in tasks {
        let (a, q, s) = t.await.unwrap();
        accepted += a;
        quarantined += q;
        sent += s;
    }
    assert_eq!(sent, 100_000);
    assert_eq!(accepted + quarantined, sent);
    assert_eq!(quarantined, 1_000);
    let peak = peak_rss_mib(child.id());
    let store = tilstede::store::Store::open(dir.path().join("load.db").to_str().unwrap())
        .await
        .unwrap();
    assert_eq!(store.record_count().await.unwrap(), (accepted, 0));
    assert_eq!(store.quarantine_count().await.unwrap(), quarantined);
    store.close().await;
    stop_serve(child);
    assert!(peak < 400.0, "server peak RSS {peak:.0} MiB");
}

/// Ed-Fi XML and vendor CSV pushes go through the same adapters as
/// `tilstede convert`, so a push stores exactly what convert prints.
#[tokio::test]
async fn xml_and_csv_pushes_use_the_adapters() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t1"), PUSH).unwrap();
    std::fs::write(dir.path().join("t2"), READER_ALL).unwrap();
    let text = "store = \"s.db\"\n[sources.edfi]\nschools = [\"*\"]\ntoken_file = \"t1\"\n\
                [sources.vis]\nschools = [\"*\"]\ntoken_file = \"t2\"\nprofile = \"vis\"\n";
    let config = tilstede::config::parse_and_validate(text, dir.path()).unwrap();
    let running = tilstede::service::start(config, Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let root = env!("CARGO_MANIFEST_DIR");
    let mut versions = Vec::new();
    for (source, token, content_type, fixture, adapter) in [
        (
            "edfi",
            PUSH,
            "application/xml",
            "adapters/edfi-xml/fixtures/attendance.xml",
            ["--adapter", "edfi-xml", "--source", "edfi"],
        ),
        (
            "vis",
            READER_ALL,
            "text/csv; charset=utf-8",
            "adapters/vis/fixtures/export.csv",
            ["--adapter", "vendor-csv", "--profile", "vis"],
        ),
    ] {
        let path = format!("{root}/{fixture}");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tilstede"))
            .arg("convert")
            .args(adapter)
            .arg(&path)
            .output()
            .unwrap();
        let expected = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count() as u64;
        assert!(expected > 0, "{fixture}: convert printed nothing");
        let body = std::fs::read(&path).unwrap();
        let r = http
            .post(format!("{base}/api/v1/sources/{source}/records"))
            .header("content-type", content_type)
            .bearer_auth(token)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{fixture}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["accepted"].as_u64(), Some(expected), "{fixture}: {v}");
        versions.push(v["version"].as_u64());
    }
    // Ed-Fi XML has no versions: each push gets the source's next version
    // (at least its arrival second), so a corrected push right after, in
    // the same second, replaces what it corrects (a part day that was a
    // whole day) instead of being dropped as a repeat.
    let first = versions[0].expect("the Ed-Fi push was stamped");
    let fixture = std::fs::read_to_string(format!("{root}/adapters/edfi-xml/fixtures/attendance.xml")).unwrap();
    let corrected = fixture.replacen(
        "<EventDuration>1.0000</EventDuration>",
        "<EventDuration>0.5</EventDuration>",
        1,
    );
    assert_ne!(corrected, fixture);
    let r = http
        .post(format!("{base}/api/v1/sources/edfi/records"))
        .header("content-type", "application/xml")
        .bearer_auth(PUSH)
        .body(corrected)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["changed"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["version"].as_u64().unwrap() > first, "{v}");
    let store = tilstede::store::Store::open(dir.path().join("s.db").to_str().unwrap())
        .await
        .unwrap();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    let stored: Vec<_> = store
        .pupil_records("elev-000101", day, day)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.source == "edfi")
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        stored[0].kind,
        tilstede::domain::Kind::Lesson,
        "the corrected half day replaced the whole day"
    );
    let now = now() as u64;
    assert!(
        stored[0].version <= now + 5 && stored[0].version + 120 > now,
        "stamped on the clock of every other version stamp: {}",
        stored[0].version
    );
    store.close().await;
    // CSV without a profile for the source is refused, not guessed.
    let r = http
        .post(format!("{base}/api/v1/sources/edfi/records"))
        .header("content-type", "text/csv")
        .bearer_auth(PUSH)
        .body("a;b\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    running.shutdown().await.unwrap();
}

/// Sends raw bytes on a new connection and returns what comes back until
/// the server closes it (or five seconds pass).
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the server closes `s` within `within` (a read ends or fails).
async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

const XML_FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/adapters/edfi-xml/fixtures/attendance.xml");

/// The kind and version of elev-000101's Ed-Fi record on 2026-03-02 (the
/// fixture's first event: a whole day, which the correction makes a half).
async fn fixture_record(store: &tilstede::store::Store) -> (tilstede::domain::Kind, u64) {
    let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    let stored: Vec<_> = store
        .pupil_records("elev-000101", day, day)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.source == "vis")
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    (stored[0].kind, stored[0].version)
}

/// A signed push carries a timestamp and a request id under its MAC: an
/// old signed body replayed later cannot overwrite a correction, neither
/// as it was nor with a new id or time, and a stale timestamp is refused.
#[tokio::test]
async fn replayed_and_stale_signed_pushes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let running = tilstede::service::start(config(dir.path(), 1 << 20), Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let url = format!("http://{}/api/v1/sources/vis/records", running.addr);
    let http = reqwest::Client::new();
    let xml = || http.post(&url).header("content-type", "application/xml");
    let original = std::fs::read_to_string(XML_FIXTURE).unwrap();
    let corrected = original.replacen(
        "<EventDuration>1.0000</EventDuration>",
        "<EventDuration>0.5</EventDuration>",
        1,
    );
    let at = now();
    assert_eq!(code(signed(xml(), HMAC, at, "push-1", &original)).await, 202);
    assert_eq!(code(signed(xml(), HMAC, at, "push-2", &corrected)).await, 202);
    let store = &running.state.store;
    let (kind, version) = fixture_record(store).await;
    assert_eq!(kind, tilstede::domain::Kind::Lesson, "the correction won");

    // The first push again, byte for byte: refused, nothing changes.
    let r = signed(xml(), HMAC, at, "push-1", &original).send().await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(fixture_record(store).await, (kind, version));
    // Its signature under another request id or time: not valid.
    let signature = sign(HMAC, at, "push-1", original.as_bytes());
    let moved = with_signature(xml(), &signature, at, "push-3", &original);
    assert_eq!(code(moved).await, 401);
    let unused = sign(HMAC, at, "push-7", original.as_bytes());
    let later = with_signature(xml(), &unused, at + 1, "push-7", &original);
    assert_eq!(code(later).await, 401);
    // Signed properly, but more than five minutes old (or ahead).
    assert_eq!(code(signed(xml(), HMAC, now() - 301, "push-4", &original)).await, 401);
    assert_eq!(code(signed(xml(), HMAC, now() + 301, "push-5", &original)).await, 401);
    assert_eq!(fixture_record(store).await, (kind, version));
    // A token push may name a request id too; a repeat of it is refused.
    let token_push = || {
        xml()
            .bearer_auth(PUSH)
            .header(REQUEST_ID_HEADER, "token-push-1")
            .body(original.clone())
    };
    assert_eq!(code(token_push()).await, 202);
    assert_eq!(code(token_push()).await, 409);
    running.shutdown().await.unwrap();
}

/// A body of the declared type that yields no records is an error to its
/// sender (422), and so is a body whose every item was rejected; the
/// rejected items are still kept in quarantine for IT.
#[tokio::test]
async fn a_body_that_yields_no_records_is_unprocessable() {
    let dir = tempfile::tempdir().unwrap();
    let running = tilstede::service::start(config(dir.path(), 1 << 20), Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let url = format!("http://{}/api/v1/sources/vis/records", running.addr);
    let http = reqwest::Client::new();
    let post = |content_type: &str, body: &str| {
        http.post(&url)
            .header("content-type", content_type)
            .bearer_auth(PUSH)
            .body(body.to_string())
    };
    for (content_type, body) in [
        ("application/xml", "this is not XML at all"),
        ("application/xml", "<?xml version=\"1.0\"?><nothing/>"),
        (JSONL, ""),
        (JSONL, "\n\n"),
    ] {
        let r = post(content_type, body).send().await.unwrap();
        assert_eq!(r.status(), 422, "{content_type}: {body:?}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["accepted"], 0, "{v}");
        assert!(v["error"].is_string(), "{v}");
    }
    let all_bad = ["{\"id\":\"x\"}", "not json"].join("\n");
    let r = post(JSONL, &all_bad).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (v["received"].as_u64(), v["quarantined"].as_u64()),
        (Some(2), Some(2)),
        "{v}"
    );
    assert_eq!(v["rejected"][1]["position"], 2);
    let some_good = [
        "not json".to_string(),
        line("g1", "p1", "skole-1", today(), "day", "invalid"),
    ]
    .join("\n");
    assert_eq!(code(post(JSONL, &some_good)).await, 202);
    assert_eq!(running.state.store.record_count().await.unwrap(), (1, 0));
    running.shutdown().await.unwrap();
}

/// Implausible values are quarantined with the field named, and a large
/// version no longer pins a record: a higher one still replaces it.
#[tokio::test]
async fn implausible_records_are_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let running = tilstede::service::start(config(dir.path(), 1 << 20), Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let url = format!("http://{}/api/v1/sources/vis/records", running.addr);
    let http = reqwest::Client::new();
    let post = |body: String| {
        http.post(&url)
            .header("content-type", JSONL)
            .bearer_auth(PUSH)
            .body(body)
    };
    let day = today();
    let lines = [
        format!(
            r#"{{"id":"ok","pupil":"p1","school":"s","date":"{day}","kind":"lesson","lessons":2,"version":4294967295}}"#
        ),
        format!(r#"{{"id":"many","pupil":"p1","school":"s","date":"{day}","kind":"lesson","lessons":4294967295}}"#),
        r#"{"id":"old","pupil":"p1","school":"s","date":"0000-01-01","kind":"day"}"#.to_string(),
        r#"{"id":"far","pupil":"p1","school":"s","date":"9999-12-31","kind":"day"}"#.to_string(),
        format!(r#"{{"id":"big","pupil":"p1","school":"s","date":"{day}","kind":"day","version":9007199254740993}}"#),
        format!(
            r#"{{"id":"twice","pupil":"p1","school":"s","date":"{day}","kind":"day","validity":"valid","validity":"invalid"}}"#
        ),
        format!(r#"{{"id":"esc\u001b[2J","pupil":"p1","school":"s","date":"{day}","kind":"day"}}"#),
    ];
    let r = post(lines.join("\n")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["accepted"], 1, "{v}");
    let reasons: Vec<(u64, String)> = v["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["position"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        (2, "«lessons»"),
        (3, "«date»"),
        (4, "«date»"),
        (5, "«version»"),
        (6, "malformed_json"),
        (7, "«id»"),
    ];
    assert_eq!(reasons.len(), expected.len(), "{reasons:?}");
    for ((position, reason), (want_position, want)) in reasons.iter().zip(expected) {
        assert_eq!(*position, want_position);
        assert!(reason.contains(want), "{position}: {reason}");
        assert!(!reason.contains('\u{1b}'), "{reason}");
    }
    // Version 2^32 − 1 does not pin the record: 2^32 replaces it.
    let r = post(format!(
        r#"{{"id":"ok","pupil":"p1","school":"s","date":"{day}","kind":"late","version":4294967296}}"#
    ))
    .send()
    .await
    .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["changed"], 1, "{v}");
    let stored = running.state.store.pupil_records("p1", day, day).await.unwrap();
    assert_eq!(
        stored.iter().map(|r| (r.id.as_str(), r.version)).collect::<Vec<_>>(),
        [("ok", 4294967296)]
    );
    running.shutdown().await.unwrap();
}

/// Twelve parallel 15 MB posts without valid credentials are refused
/// before their bodies are read: the server's memory does not grow with
/// them (it grew from 93 to 454 MB when bodies were read before auth).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_big_posts_are_refused_before_their_body() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("vis.token"), PUSH).unwrap();
    let config = dir.path().join("tilstede.toml");
    std::fs::write(
        &config,
        "store = \"rss.db\"\n[sources.vis]\nschools = [\"*\"]\ntoken_file = \"vis.token\"\n",
    )
    .unwrap();
    let (child, base) = spawn_serve(&config);
    let http = reqwest::Client::new();
    assert_eq!(code(http.get(format!("{base}/healthz"))).await, 200);
    let before = peak_rss_mib(child.id());
    let body = axum::body::Bytes::from(vec![b'x'; 15 * 1024 * 1024]);
    let mut posts = Vec::new();
    for i in 0..12 {
        let request = http
            .post(format!("{base}/api/v1/sources/vis/records"))
            .header("content-type", JSONL)
            .body(body.clone());
        let request = if i % 2 == 0 {
            request
        } else {
            request.bearer_auth("wrong")
        };
        posts.push(tokio::spawn(async move {
            // The server answers and closes without reading the body, so
            // the client may see the answer or a reset while it sends.
            match request.send().await {
                Ok(r) => Some(r.status().as_u16()),
                Err(_) => None,
            }
        }));
    }
    for p in posts {
        let status = p.await.unwrap();
        assert!(matches!(status, None | Some(401)), "{status:?}");
    }
    let after = peak_rss_mib(child.id());
    stop_serve(child);
    assert!(
        after - before < 40.0,
        "peak RSS grew from {before:.0} to {after:.0} MiB"
    );
}

/// Clients that connect and send their headers slowly (or not at all) are
/// disconnected after `http.header_timeout_seconds`, and while they are
/// connected the service still answers others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_hold_the_service() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), 1 << 20);
    config.http.header_timeout = Duration::from_secs(1);
    let running = tilstede::service::start(config, Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let mut slow = Vec::new();
    for i in 0..300 {
        let mut s = tokio::net::TcpStream::connect(running.addr).await.unwrap();
        // Half send part of a request, half send nothing at all.
        if i % 2 == 0 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .unwrap();
        }
        slow.push(s);
    }
    // No pooled connections: the service closes an idle keep-alive
    // connection after the header timeout, and a pooled one picked up just
    // then fails with an incomplete message, which is not what is tested.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let health = format!("http://{}/healthz", running.addr);
    assert_eq!(code(http.get(&health)).await, 200);
    // Within the timeout (and some slack) every slow client is gone.
    let mut closed = 0;
    for s in &mut slow {
        if closed_within(s, Duration::from_secs(3)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, slow.len(), "slow clients still connected");
    assert_eq!(code(http.get(&health)).await, 200);
    running.shutdown().await.unwrap();
}

/// More connections than `http.max_connections` are closed at once; when
/// the slow ones time out, the service answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), 1 << 20);
    config.http.header_timeout = Duration::from_secs(1);
    config.http.max_connections = 16;
    let running = tilstede::service::start(config, Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(tokio::net::TcpStream::connect(running.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    assert!(
        closed_within(&mut extra, Duration::from_millis(500)).await,
        "a connection over the cap is closed at once"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let http = reqwest::Client::new();
    assert_eq!(code(http.get(format!("http://{}/healthz", running.addr))).await, 200);
    assert!(
        running
            .state
            .metrics
            .connections_refused
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    drop(held);
    running.shutdown().await.unwrap();
}

/// A body that does not arrive in time is answered 408, and a source whose
/// push slots are all taken is answered 429 with Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_time_out_and_full_sources_answer_429() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_with(dir.path(), 1 << 20, "max_concurrent = 1");
    config.http.body_timeout = Duration::from_secs(2);
    let running = tilstede::service::start(config, Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let head = format!(
        "POST /api/v1/sources/vis/records HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PUSH}\r\n\
         Content-Type: {JSONL}\r\nContent-Length: 1000\r\n\r\n{{\"id\":"
    );
    let mut slow = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    slow.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The one slot is taken by the slow body.
    let http = reqwest::Client::new();
    let url = format!("http://{}/api/v1/sources/vis/records", running.addr);
    let body = line("a1", "p1", "skole-1", today(), "day", "invalid");
    let push = || {
        http.post(&url)
            .header("content-type", JSONL)
            .bearer_auth(PUSH)
            .body(body.clone())
    };
    let r = push().send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    // The slow body times out; then the slot is free again.
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut slow, &mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(code(push()).await, 202);
    running.shutdown().await.unwrap();
}

/// The push guard (request ids, version counter) on every backend.
#[tokio::test]
async fn push_guard_on_every_backend() {
    use tilstede::store::{Push, PushOutcome};
    for store in crate::support::store_backends().await {
        let day = today();
        let record = |kind: &str| {
            tilstede::domain::AbsenceRecord::from_json_str(&format!(
                r#"{{"source":"s","id":"r1","pupil":"p","school":"k","date":"{day}","kind":"{kind}","validity":"invalid"}}"#
            ))
            .unwrap()
        };
        let expires = now() + 600;
        let push = |id: &'static str, kind: &str| Push {
            source: "s",
            request_id: Some((id, expires)),
            stamp_at_least: Some(1_800_000_000),
            records: vec![record(kind)],
            quarantine: &[],
        };
        let first = store.ingest_push(push("a", "day")).await.unwrap();
        assert!(
            matches!(first, PushOutcome::Stored(_, Some(1_800_000_000))),
            "{first:?}"
        );
        let second = store.ingest_push(push("b", "late")).await.unwrap();
        assert!(
            matches!(second, PushOutcome::Stored(s, Some(1_800_000_001)) if s.changed == 1),
            "{second:?}"
        );
        assert_eq!(
            store.ingest_push(push("a", "day")).await.unwrap(),
            PushOutcome::Replayed
        );
        assert!(store.push_seen("s", "b").await.unwrap());
        let stored = store.pupil_records("p", day, day).await.unwrap();
        assert_eq!(stored[0].kind, tilstede::domain::Kind::Late, "{:?}", store.backend());
        store.close().await;
    }
}

/// Pushed bodies are parsed on a pool of blocking threads, never on the
/// threads that answer requests: with a single runtime thread, `/healthz`
/// keeps answering while a large XML push is parsed (it waited for the
/// whole parse when XML was parsed on the runtime).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn health_answers_while_a_large_push_is_parsed() {
    use tilstede::synthetic::Municipality;
    use tilstede::synthetic::writers::EdfiXmlWriter;
    let dir = tempfile::tempdir().unwrap();
    let running = tilstede::service::start(config(dir.path(), 16 << 20), Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    let year = {
        let t = today();
        let y = chrono::Datelike::year(&t);
        if chrono::Datelike::month(&t) >= 8 { y } else { y - 1 }
    };
    let mut body = Vec::new();
    {
        let mut w = EdfiXmlWriter::new(&mut body, year + 1).unwrap();
        for r in Municipality::generate(800, 2, 3).absence(year, "vis").take(12_000) {
            w.record(&r).unwrap();
        }
        w.finish().unwrap();
    }
    let http = reqwest::Client::new();
    let push = {
        let request = http
            .post(format!("{base}/api/v1/sources/vis/records"))
            .header("content-type", "application/xml")
            .bearer_auth(PUSH)
            .body(body);
        tokio::spawn(async move {
            let t = std::time::Instant::now();
            let status = request.send().await.unwrap().status();
            (status, t.elapsed())
        })
    };
    let mut slowest = Duration::ZERO;
    while !push.is_finished() {
        let t = std::time::Instant::now();
        assert_eq!(code(http.get(format!("{base}/healthz"))).await, 200);
        slowest = slowest.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, took) = push.await.unwrap();
    assert_eq!(status, 202);
    assert!(
        slowest < took / 3,
        "/healthz took up to {slowest:?} during a push that took {took:?}"
    );
    running.shutdown().await.unwrap();
}
