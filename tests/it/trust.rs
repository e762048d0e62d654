//! Trust between sources, schools and readers (issue 13): a source writes
//! only its own schools on every way in (push, file import, pull), readers
//! see only theirs, and a pupil is one child of one source.

use crate::fake::edfi::{self, CLIENT_ID, CLIENT_SECRET, EdfiState};
use crate::support::{jsonl_line, post_jsonl, tilstede, tilstede_ok, today};
use std::time::Duration;
use tilstede::store::Store;

/// Push token of `skole02`, the school system of skole-02.
const SKOLE02_PUSH: &str = "skole02-push-4b8d2f6a0c9e7b5d3f1a2c";
/// Push token of `annen`, a source that may write skole-01 only.
const ANNEN_PUSH: &str = "annen-push-7e1c9a3f5b2d8e6c4a0f1b3d";
/// Read token of skole-01's reader.
const READER_01: &str = "reader-skole01-2c4e6a8f0b1d3f5a7c9e";
/// Read token of skole-02's reader.
const READER_02: &str = "reader-skole02-9f7d5b3a1c8e6f4d2b0a";

/// The service config of the attack: `skole02` writes skole-02, `annen`
/// writes skole-01, and each school has its own reader.
fn config_text(dir: &std::path::Path) -> String {
    for (file, token) in [
        ("skole02.token", SKOLE02_PUSH),
        ("annen.token", ANNEN_PUSH),
        ("r01.token", READER_01),
        ("r02.token", READER_02),
    ] {
        std::fs::write(dir.join(file), format!("{token}\n")).unwrap();
    }
    r#"
store = "store.db"
[http.users.skole01]
token_file = "r01.token"
schools = ["skole-01"]
[http.users.skole02]
token_file = "r02.token"
schools = ["skole-02"]
[sources.skole02]
schools = ["skole-02"]
token_file = "skole02.token"
[sources.annen]
schools = ["skole-01"]
token_file = "annen.token"
extensions = ["source_code"]
"#
    .to_string()
}

fn line(id: &str, pupil: &str, school: &str, date: chrono::NaiveDate) -> String {
    jsonl_line(id, pupil, school, date, "day", "invalid")
}

async fn push(http: &reqwest::Client, base: &str, source: &str, token: &str, body: &str) -> serde_json::Value {
    let r = post_jsonl(http, base, source, token, body).await;
    let status = r.status().as_u16();
    let mut v: serde_json::Value = r.json().await.unwrap();
    v["status"] = status.into();
    v
}

/// GETs `url` as `token` until `done` holds for the JSON answer or five
/// seconds pass; returns the last answer.
async fn poll(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..100 {
        let r = http.get(url).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 200);
        last = r.json().await.unwrap();
        if done(&last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

/// The issue's attack over HTTP: `annen` may write skole-01 only. A record
/// it sends for skole-02 is quarantined with the reason code, keeps no copy
/// of the record, is never stored and never makes a finding; skole-02's
/// reader sees nothing of it and skole-01's reader sees only skole-01.
#[tokio::test]
async fn a_push_for_a_school_the_source_may_not_write_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let config = tilstede::config::parse_and_validate(&config_text(dir.path()), dir.path()).unwrap();
    let running = tilstede::service::start(config, Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let day = today() - chrono::Days::new(1);

    // Only a record for a school it may not write: nothing accepted.
    let v = push(&http, &base, "annen", ANNEN_PUSH, &line("x1", "p-02", "skole-02", day)).await;
    assert_eq!(v["status"], 422, "{v}");
    assert_eq!(v["quarantined"], 1, "{v}");
    let reason = v["rejected"][0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("school-not-allowed: feltet «school»"), "{reason}");
    // One allowed and one refused record: the allowed one is stored.
    let body = [line("x2", "p-01", "skole-01", day), line("x3", "p-02", "skole-02", day)].join("\n");
    let v = push(&http, &base, "annen", ANNEN_PUSH, &body).await;
    assert_eq!(v["status"], 202, "{v}");
    assert_eq!(
        (v["accepted"].as_u64(), v["quarantined"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    assert_eq!(v["rejected"][0]["position"], 2, "{v}");

    let store = &running.state.store;
    assert_eq!(
        store.record_count().await.unwrap().0,
        1,
        "only the skole-01 record is stored"
    );
    let q = store.quarantined(10).await.unwrap();
    assert_eq!(q.len(), 2);
    assert!(
        q.iter().all(|r| r.entry.reason.starts_with("school-not-allowed")),
        "{q:?}"
    );
    assert!(
        q.iter().all(|r| r.entry.raw.is_empty()),
        "no copy of a refused record: {q:?}"
    );
    assert!(q.iter().all(|r| !r.entry.reason.contains("p-02")), "{q:?}");

    let mine = poll(&http, &format!("{base}/api/v1/findings"), READER_01, |v| {
        v.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let schools: Vec<&str> = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["school"].as_str().unwrap())
        .collect();
    assert_eq!(schools, ["skole-01"], "{mine}");
    let theirs = poll(&http, &format!("{base}/api/v1/findings"), READER_02, |_| true).await;
    assert_eq!(theirs, serde_json::json!([]), "skole-02 has no finding from annen");
    assert!(store.findings(Some("skole-02")).await.unwrap().is_empty());
    running.shutdown().await.unwrap();
}

/// Art. 9 minimisation: a pushed record keeps only the extension fields its
/// source's allow-list names. `annen` may send `source_code`; a free-text
/// note about a diagnosis is dropped before it is stored, and `skole02`,
/// with no allow-list, keeps none.
#[tokio::test]
async fn extension_fields_are_kept_only_when_the_source_allows_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = tilstede::config::parse_and_validate(&config_text(dir.path()), dir.path()).unwrap();
    let running = tilstede::service::start(config, Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let day = today() - chrono::Days::new(1);
    let with_extras = |id: &str, pupil: &str, school: &str| {
        let l = line(id, pupil, school, day);
        format!(
            "{},\"source_code\":\"F2\",\"merknad\":\"diagnose: angst\"}}",
            l.trim_end_matches('}')
        )
    };
    let v = push(
        &http,
        &base,
        "annen",
        ANNEN_PUSH,
        &with_extras("e1", "p-01", "skole-01"),
    )
    .await;
    assert_eq!(v["status"], 202, "{v}");
    let v = push(
        &http,
        &base,
        "skole02",
        SKOLE02_PUSH,
        &with_extras("e2", "p-02", "skole-02"),
    )
    .await;
    assert_eq!(v["status"], 202, "{v}");
    let store = &running.state.store;
    let from = day - chrono::Days::new(1);
    let kept = store.pupil_records("p-01", from, day).await.unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].extensions.get("source_code"), Some(&serde_json::json!("F2")));
    assert!(kept[0].extensions.get("merknad").is_none(), "{kept:?}");
    let none = store.pupil_records("p-02", from, day).await.unwrap();
    assert_eq!(none.len(), 1, "{none:?}");
    assert!(none[0].extensions.is_empty(), "no allow-list keeps nothing: {none:?}");
    running.shutdown().await.unwrap();
}

/// `tilstede import --config … --source annen`: a file record for a school
/// the source may not write is quarantined with the reason code and not
/// stored; a record naming another source is refused too.
#[test]
fn a_file_import_holds_records_to_the_source_schools() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tilstede.toml");
    std::fs::write(&config, config_text(dir.path())).unwrap();
    let day = today() - chrono::Days::new(1);
    let file = dir.path().join("annen.jsonl");
    std::fs::write(
        &file,
        [
            line("f1", "p-01", "skole-01", day),
            line("f2", "p-02", "skole-02", day),
            format!(
                r#"{{"source":"skole02","id":"f3","pupil":"p-02","school":"skole-02","date":"{day}","kind":"day","validity":"invalid"}}"#
            ),
        ]
        .join("\n"),
    )
    .unwrap();
    let store = dir.path().join("t.db");
    let (out, err) = tilstede_ok(
        &store,
        &[
            "import",
            "--config",
            config.to_str().unwrap(),
            "--source",
            "annen",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.contains("1 post lest"), "{out}");
    assert!(out.contains("2 i karantene"), "{out}");
    assert!(err.contains("school-not-allowed"), "{err}");
    assert!(err.contains("source-mismatch"), "{err}");
    let (out, _) = tilstede_ok(&store, &["findings", "--format", "json"]);
    let findings: serde_json::Value = serde_json::from_str(&out).unwrap();
    let schools: Vec<&str> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["school"].as_str().unwrap())
        .collect();
    assert_eq!(schools, ["skole-01"], "{out}");
    // An unknown source is refused outright.
    let out = tilstede(
        &store,
        &[
            "import",
            "--config",
            config.to_str().unwrap(),
            "--source",
            "ukjent",
            file.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("«ukjent» finnes ikke"));
}

/// A pull writes only the schools its source lists: events of the fake
/// ODS's school 255901001 are quarantined for a source listing another
/// school, and stored for one listing it. `schools` is required in
/// adapters.toml.
#[tokio::test]
async fn a_pull_holds_records_to_the_source_schools() {
    let mut state = EdfiState::default();
    for i in 0..5 {
        state.add(
            "studentSchoolAttendanceEvents",
            edfi::school_event(
                &format!("e{i}"),
                &format!("elev-{i}"),
                "2026-03-02",
                "Unexcused Absence",
            ),
        );
    }
    let server = edfi::start(state).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, CLIENT_SECRET).unwrap();
    let source = |schools: &str| {
        format!(
            "[sources.ods]\n{schools}adapter = \"edfi-api\"\nbase_url = \"http://{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = \"{}\"\nsource = \"edfi\"\n",
            server.addr,
            secret.display()
        )
    };
    let run = |store: std::path::PathBuf, text: String| {
        let config = dir.path().join("adapters.toml");
        std::fs::write(&config, text).unwrap();
        tokio::task::spawn_blocking(move || tilstede(&store, &["sync", "ods", "--config", config.to_str().unwrap()]))
    };
    let out = run(dir.path().join("a.db"), source("")).await.unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sources.ods.schools"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let other = dir.path().join("other.db");
    let out = run(other.clone(), source("schools = [\"skole-01\"]\n")).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let store = Store::open(other.to_str().unwrap()).await.unwrap();
    assert_eq!(store.record_count().await.unwrap(), (0, 0));
    let q = store.quarantined(10).await.unwrap();
    assert_eq!(q.len(), 5, "{q:?}");
    assert!(
        q.iter().all(|r| r.entry.reason.starts_with("school-not-allowed")),
        "{q:?}"
    );
    store.close().await;

    let own = dir.path().join("own.db");
    let out = run(own.clone(), source("schools = [\"255901001\"]\n")).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let store = Store::open(own.to_str().unwrap()).await.unwrap();
    assert_eq!(store.record_count().await.unwrap().0, 5);
    assert_eq!(store.quarantine_count().await.unwrap(), 0);
}

/// The issue's second attack: `annen` (allowed skole-01) pushes a record
/// under the local id of a skole-02 pupil. A pupil is (source, local id):
/// the two are two children with two findings and two cases, each with only
/// its own source's evidence, and skole-01's reader sees nothing of the
/// skole-02 child.
#[tokio::test]
async fn two_sources_with_the_same_local_id_are_two_children() {
    let dir = tempfile::tempdir().unwrap();
    let config = tilstede::config::parse_and_validate(&config_text(dir.path()), dir.path()).unwrap();
    let running = tilstede::service::start(config, Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let day = today() - chrono::Days::new(1);
    let v = push(
        &http,
        &base,
        "skole02",
        SKOLE02_PUSH,
        &line("s1", "p7", "skole-02", day),
    )
    .await;
    assert_eq!(v["status"], 202, "{v}");
    let v = push(&http, &base, "annen", ANNEN_PUSH, &line("a1", "p7", "skole-01", day)).await;
    assert_eq!(v["status"], 202, "{v}");

    let cases = poll(&http, &format!("{base}/api/v1/cases"), READER_01, |v| {
        v.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let store = &running.state.store;
    let mut findings = store.findings(None).await.unwrap();
    findings.sort_by(|a, b| a.school.cmp(&b.school));
    let seen: Vec<(&str, &str, Vec<String>)> = findings
        .iter()
        .map(|f| (f.pupil.as_str(), f.school.as_str(), f.evidence.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("annen:p7", "skole-01", vec!["a1".to_string()]),
            ("p7", "skole-02", vec!["s1".to_string()]),
        ]
    );
    assert_eq!(
        store.pupil_identities("annen:p7").await.unwrap(),
        [("annen".to_string(), "p7".to_string())]
    );
    assert_eq!(cases.as_array().unwrap().len(), 1, "{cases}");
    assert_eq!(cases[0]["school"], "skole-01");
    let all = store.cases_raw(None, false).await.unwrap();
    assert_eq!(all.len(), 2, "two children, two cases");
    let mine = poll(&http, &format!("{base}/api/v1/findings"), READER_01, |_| true).await;
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine[0]["evidence"], serde_json::json!(["a1"]), "{mine}");
    running.shutdown().await.unwrap();
}

/// A store written before pupils were keyed by source (migration 30) had
/// merged two children with the same local id; upgrading splits them: the
/// id stays with the source that has most records under it, the other
/// source's records move to `SOURCE:ID`, and both are re-evaluated apart.
#[tokio::test]
async fn upgrading_a_store_splits_merged_children() {
    for store in crate::support::store_backends().await {
        let url = store.url().to_string();
        let day = today() - chrono::Days::new(1);
        let items: Vec<std::io::Result<tilstede::adapters::Parsed>> = [
            ("vis", "v1", "skole-01"),
            ("vis", "v2", "skole-01"),
            ("flyt", "f1", "skole-02"),
        ]
        .iter()
        .map(|(source, id, school)| {
            let r = tilstede::domain::AbsenceRecord::from_json_str(&format!(
                r#"{{"source":"{source}","id":"{id}","pupil":"p1","school":"{school}","date":"{day}","kind":"day","validity":"invalid"}}"#
            ))
            .unwrap();
            Ok(tilstede::adapters::Parsed::Record(r))
        })
        .collect();
        tilstede::ingest::ingest(&store, items, |_| {}).await.unwrap();
        // Back to the shape of a store before migration 30: one bare id.
        for sql in [
            "UPDATE records SET pupil = 'p1'",
            "DROP TABLE pupil_keys",
            "DROP TABLE pupil_owners",
            "DELETE FROM schema_migrations WHERE version = 30",
        ] {
            sqlx::query(sql).execute(store.pool()).await.unwrap();
        }
        store.close().await;
        let store = Store::open(&url).await.unwrap();
        let rules = tilstede::rules::RuleSet::load("baerum").unwrap();
        store.refresh_findings(&rules, today()).await.unwrap();
        let mut pupils: Vec<(String, String)> = store
            .findings(None)
            .await
            .unwrap()
            .into_iter()
            .map(|f| (f.pupil, f.evidence.join(",")))
            .collect();
        pupils.sort();
        pupils.dedup();
        assert_eq!(
            pupils,
            [
                ("flyt:p1".to_string(), "f1".to_string()),
                ("p1".to_string(), "v1,v2".to_string())
            ],
            "{url}"
        );
        // New records of either source follow the same keys.
        let r = tilstede::domain::AbsenceRecord::from_json_str(&format!(
            r#"{{"source":"flyt","id":"f2","pupil":"p1","school":"skole-02","date":"{day}","kind":"day","validity":"invalid"}}"#
        ))
        .unwrap();
        store.ingest(&[r], &[]).await.unwrap();
        assert_eq!(store.pupil_records("flyt:p1", day, day).await.unwrap().len(), 2);
        assert_eq!(store.pupil_records("p1", day, day).await.unwrap().len(), 2);
    }
}

/// The store file, its WAL and shared-memory files are the owner's only
/// (0600), also when the file existed with a wider mode, and the pool
/// commits with `synchronous = FULL` so an answered push survives a power
/// loss.
#[cfg(unix)]
#[tokio::test]
async fn store_files_are_private_and_commits_are_durable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let store = Store::open(path.to_str().unwrap()).await.unwrap();
    let line = format!(
        r#"{{"source":"vis","id":"r1","pupil":"p1","school":"s","date":"{}","kind":"day"}}"#,
        today()
    );
    let r = tilstede::domain::AbsenceRecord::from_json_str(&line).unwrap();
    store.ingest(&[r], &[]).await.unwrap();
    for file in ["t.db", "t.db-wal", "t.db-shm"] {
        assert_eq!(mode(&dir.path().join(file)), 0o600, "{file}");
    }
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(sync, 2, "FULL");
    store.close().await;
    for file in ["t.db", "t.db-wal", "t.db-shm"] {
        let f = dir.path().join(file);
        if f.exists() {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let store = Store::open(path.to_str().unwrap()).await.unwrap();
    assert_eq!(mode(&path), 0o600, "an existing store is narrowed");
    store.close().await;
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/tilstede.service")).unwrap();
    assert!(unit.contains("\nUMask=0077\n") && unit.contains("\nStateDirectoryMode=0700\n"));
}
