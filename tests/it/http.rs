//! The HTTP gateway over real loopback HTTP, backed by a real SQLite store.

use crate::support::{spawn_serve, stop_serve};
use std::time::Duration;
use tilstede::config::{Config, RawConfig};
use tilstede::http::auth::{SIGNATURE_HEADER, sign};

/// Config with a push source `vis` (token + HMAC) and two read users.
fn config(dir: &std::path::Path, max_body: u64) -> Config {
    std::fs::write(dir.join("vis.token"), "push-token\n").unwrap();
    std::fs::write(dir.join("vis.hmac"), "hmac-key\n").unwrap();
    std::fs::write(dir.join("leder.token"), "reader-all\n").unwrap();
    std::fs::write(dir.join("skole2.token"), "reader-two\n").unwrap();
    let text = format!(
        r#"
store = "store.db"
[http]
max_body_bytes = {max_body}
[http.users.leder]
token_file = "leder.token"
[http.users.skole2]
token_file = "skole2.token"
schools = ["skole-2"]
[sources.vis]
token_file = "vis.token"
hmac_secret_file = "vis.hmac"
"#
    );
    let raw: RawConfig = tilstede::config::toml::parse_toml(&text).unwrap();
    raw.validate(dir).unwrap()
}

fn line(id: &str, pupil: &str, school: &str, date: chrono::NaiveDate, kind: &str, validity: &str) -> String {
    format!(
        r#"{{"id":"{id}","pupil":"{pupil}","school":"{school}","date":"{date}","kind":"{kind}","validity":"{validity}"}}"#
    )
}

fn today() -> chrono::NaiveDate {
    tilstede::domain::dates::school_date_utc(chrono::Utc::now())
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
        .bearer_auth("push-token")
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
        .bearer_auth("push-token")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!((v["changed"].as_u64(), v["unchanged"].as_u64()), (Some(0), Some(2)));

    // Signed instead of a token.
    let signed = line("a2", "p1", "skole-1", day, "late", "valid");
    let r = http
        .post(&url)
        .header("content-type", JSONL)
        .header(SIGNATURE_HEADER, sign("hmac-key", signed.as_bytes()))
        .body(signed.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // The evaluator picks the push up; the read API shows findings by school.
    let findings = poll_list(&http, &format!("{base}/api/v1/findings"), "reader-all", 2).await;
    let got: Vec<(&str, &str)> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["pupil"].as_str().unwrap(), f["criterion"].as_str().unwrap()))
        .collect();
    assert_eq!(got, [("p1", "invalid-absence"), ("p2", "left-school")]);
    let r = http
        .get(format!("{base}/api/v1/findings"))
        .bearer_auth("reader-two")
        .send()
        .await
        .unwrap();
    let only: serde_json::Value = r.json().await.unwrap();
    assert_eq!(only.as_array().unwrap().len(), 1);
    assert_eq!(only[0]["school"], "skole-2");
    let r = http
        .get(format!("{base}/api/v1/findings?school=skole-1"))
        .bearer_auth("reader-two")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Cases open from the findings; reading them is audited.
    let cases = poll_list(&http, &format!("{base}/api/v1/cases"), "reader-all", 2).await;
    let list = cases.as_array().unwrap();
    assert_eq!(list.len(), 2, "{cases}");
    assert!(list.iter().all(|c| c["phase"] == 2 && c["open"] == true), "{cases}");
    let theirs: serde_json::Value = http
        .get(format!("{base}/api/v1/cases"))
        .bearer_auth("reader-two")
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
    let r = http
        .get(format!("{base}/api/v1/cases/{other}"))
        .bearer_auth("reader-two")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .get(format!("{base}/api/v1/cases/{other}"))
        .bearer_auth("reader-all")
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
    let wrong_key = sign("wrong-key", body.as_bytes());
    assert_eq!(
        code(post(JSONL).header(SIGNATURE_HEADER, wrong_key).body(body.clone())).await,
        401
    );
    let other_body = sign("hmac-key", b"another body");
    assert_eq!(
        code(post(JSONL).header(SIGNATURE_HEADER, other_body).body(body.clone())).await,
        401
    );
    // Unknown source, unsupported type, too large a body.
    let unknown = http
        .post(format!("{base}/api/v1/sources/nope/records"))
        .header("content-type", JSONL);
    assert_eq!(code(unknown.bearer_auth("push-token").body(body.clone())).await, 404);
    assert_eq!(
        code(post("text/plain").bearer_auth("push-token").body(body.clone())).await,
        415
    );
    let big = vec![body.as_str(); 100].join("\n");
    assert_eq!(code(post(JSONL).bearer_auth("push-token").body(big)).await, 413);
    // The read API needs a user token.
    let findings = format!("{base}/api/v1/findings");
    assert_eq!(code(http.get(&findings)).await, 401);
    assert_eq!(code(http.get(&findings).bearer_auth("push-token")).await, 401);
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
    std::fs::write(dir.path().join("vis.token"), "push-token").unwrap();
    let config = dir.path().join("tilstede.toml");
    std::fs::write(
        &config,
        "store = \"load.db\"\n[sources.vis]\ntoken_file = \"vis.token\"\n",
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
                let resp = http
                    .post(&url)
                    .header("content-type", JSONL)
                    .bearer_auth("push-token")
                    .body(body.join("\n"))
                    .send()
                    .await
                    .unwrap();
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
    std::fs::write(dir.path().join("t"), "tok").unwrap();
    let text =
        "store = \"s.db\"\n[sources.edfi]\ntoken_file = \"t\"\n[sources.vis]\ntoken_file = \"t\"\nprofile = \"vis\"\n";
    let raw: RawConfig = tilstede::config::toml::parse_toml(text).unwrap();
    let running = tilstede::service::start(raw.validate(dir.path()).unwrap(), Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let root = env!("CARGO_MANIFEST_DIR");
    for (source, content_type, fixture, adapter) in [
        (
            "edfi",
            "application/xml",
            "adapters/edfi-xml/fixtures/attendance.xml",
            ["--adapter", "edfi-xml", "--source", "edfi"],
        ),
        (
            "vis",
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
            .bearer_auth("tok")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{fixture}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["accepted"].as_u64(), Some(expected), "{fixture}: {v}");
    }
    // Ed-Fi XML has no versions: a push is stamped with its arrival second,
    // so a corrected push a moment later replaces what it corrects (a part
    // day that was a whole day) instead of being ignored as a repeat.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
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
        .bearer_auth("tok")
        .body(corrected)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["changed"].as_u64().unwrap() >= 1, "{v}");
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
    let now = tilstede::adapters::version_stamp_at(std::time::SystemTime::now()).unwrap();
    assert!(
        stored[0].version <= now && stored[0].version + 120 > now,
        "stamped with the arrival time: {}",
        stored[0].version
    );
    store.close().await;
    // CSV without a profile for the source is refused, not guessed.
    let r = http
        .post(format!("{base}/api/v1/sources/edfi/records"))
        .header("content-type", "text/csv")
        .bearer_auth("tok")
        .body("a;b\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    running.shutdown().await.unwrap();
}
