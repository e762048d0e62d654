//! The command line end to end on a real SQLite file.

use crate::support::{spawn_serve, stop_serve, tilstede, tilstede_ok};
use std::fmt::Write as _;
use tilstede::store::Store;

/// A small JSONL file: a pupil with invalid absence, one with three lates, a
/// bad line in the middle, and a newer version that makes a record valid.
fn sample() -> String {
    let mut s = String::new();
    let line = |s: &mut String, id: &str, pupil: &str, date: &str, kind: &str, validity: &str, version: u32| {
        writeln!(
            s,
            r#"{{"source":"vis","id":"{id}","version":{version},"pupil":"{pupil}","school":"skole-1","date":"{date}","kind":"{kind}","validity":"{validity}"}}"#
        )
        .unwrap();
    };
    line(&mut s, "a1", "p1", "2026-03-02", "lesson", "unclassified", 1);
    line(&mut s, "a2", "p1", "2026-03-03", "day", "invalid", 1);
    s.push_str("{\"source\":\"vis\",\"id\":\"bad\",\"pupil\":\"p9\",\"school\":\"skole-1\",\"date\":\"2026-02-30\",\"kind\":\"day\"}\n");
    line(&mut s, "b1", "p2", "2026-03-10", "late", "valid", 1);
    line(&mut s, "b2", "p2", "2026-03-11", "late", "invalid", 1);
    line(&mut s, "b3", "p2", "2026-03-12", "late", "valid", 1);
    line(&mut s, "c1", "p3", "2026-03-12", "day", "invalid", 1);
    line(&mut s, "c1", "p3", "2026-03-12", "day", "valid", 2);
    s
}

#[tokio::test]
async fn importing_the_same_file_twice_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("t.db");
    let file = dir.path().join("records.jsonl");
    std::fs::write(&file, sample()).unwrap();
    let args = ["import", file.to_str().unwrap(), "--as-of", "2026-03-31"];

    let (out1, err1) = tilstede_ok(&store, &args);
    assert!(
        out1.contains("7 poster lest, 6 nye eller endret, 1 uendret, 1 i karantene"),
        "{out1}"
    );
    // The bad line is named by file and line, and by field.
    assert!(err1.contains("records.jsonl:3: bad_date: feltet «date»"), "{err1}");
    let (out2, _) = tilstede_ok(&store, &args);
    assert!(out2.contains("7 poster lest, 0 nye eller endret, 7 uendret"), "{out2}");
    assert!(out2.contains("0 elever vurdert på nytt"), "{out2}");

    let s = Store::open(store.to_str().unwrap()).await.unwrap();
    assert_eq!(s.record_count().await.unwrap(), (6, 0));
    assert_eq!(s.quarantine_count().await.unwrap(), 1);
    let findings = s.findings(None).await.unwrap();
    let got: Vec<(&str, &str)> = findings
        .iter()
        .map(|f| (f.pupil.as_str(), f.criterion.as_str()))
        .collect();
    assert_eq!(got, [("p1", "invalid-absence"), ("p2", "repeated-lateness")]);
    assert_eq!(findings[0].unclassified, ["a1"]);
    // One event per finding, not two.
    assert_eq!(s.finding_events_after(0, 100).await.unwrap().len(), 2);
    s.close().await;
}

#[tokio::test]
async fn findings_follow_new_versions_and_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("t.db");
    let file = dir.path().join("records.jsonl");
    std::fs::write(&file, sample()).unwrap();
    tilstede_ok(&store, &["import", file.to_str().unwrap(), "--as-of", "2026-03-31"]);

    // p1's records: the lesson becomes valid, the day is deleted.
    let change = dir.path().join("change.jsonl");
    std::fs::write(
        &change,
        concat!(
            r#"{"source":"vis","id":"a1","version":2,"pupil":"p1","school":"skole-1","date":"2026-03-02","kind":"lesson","validity":"valid","reason":"illness"}"#,
            "\n",
            r#"{"source":"vis","id":"a2","version":2,"deleted":true}"#,
            "\n",
            // An older version arriving late changes nothing.
            r#"{"source":"vis","id":"a2","version":1,"pupil":"p1","school":"skole-1","date":"2026-03-03","kind":"day","validity":"invalid"}"#,
            "\n"
        ),
    )
    .unwrap();
    let (out, _) = tilstede_ok(&store, &["import", change.to_str().unwrap(), "--as-of", "2026-03-31"]);
    assert!(
        out.contains("1 elev vurdert på nytt, 0 nye funn, 0 endret, 1 borte"),
        "{out}"
    );
    let (json, _) = tilstede_ok(&store, &["findings", "--as-of", "2026-03-31", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let pupils: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["pupil"].as_str().unwrap())
        .collect();
    assert_eq!(pupils, ["p2"]);
    // A later as-of date slides the one-month lateness window past the lates.
    let (json, _) = tilstede_ok(&store, &["findings", "--as-of", "2026-04-20", "--format", "json"]);
    assert_eq!(json.trim(), "[]");
}

#[test]
fn evaluate_prints_json_findings_and_names_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.jsonl");
    std::fs::write(&file, sample()).unwrap();
    let (out, err) = tilstede_ok(
        &dir.path().join("unused.db"),
        &["evaluate", "--records", file.to_str().unwrap(), "--as-of", "2026-03-31"],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let first = &v[0];
    assert_eq!(first["pupil"], "p1");
    assert_eq!(first["criterion"], "invalid-absence");
    assert_eq!(first["evidence"], serde_json::json!(["a1", "a2"]));
    assert_eq!(first["unclassified"], serde_json::json!(["a1"]));
    assert!(first["explanation"].as_str().unwrap().starts_with("Eleven har 7 timer"));
    assert!(err.contains("records.jsonl:3"), "{err}");
    // The evaluation needs no store.
    assert!(!dir.path().join("unused.db").exists());

    let oslo = tilstede_ok(
        &dir.path().join("unused.db"),
        &[
            "evaluate",
            "--records",
            file.to_str().unwrap(),
            "--as-of",
            "2026-03-31",
            "--rules",
            "oslo",
            "--format",
            "text",
        ],
    )
    .0;
    assert!(oslo.contains("Ingen funn"), "{oslo}");
}

#[test]
fn rules_show_prints_the_preset_and_check_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let (toml, _) = tilstede_ok(&dir.path().join("x.db"), &["rules", "show", "baerum"]);
    let set = tilstede::rules::RuleSet::from_toml(&toml).unwrap();
    assert_eq!(set, tilstede::rules::RuleSet::preset("baerum").unwrap());
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, toml.replacen("unit = \"lessons\"", "unit = \"hours\"", 1)).unwrap();
    let out = tilstede(&dir.path().join("x.db"), &["rules", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml: rules[0].unit"), "{err}");
}

#[test]
fn config_check_names_the_toml_path() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "rules = \"oslo\"\n[http]\nlisten = \"127.0.0.1:9000\"\n").unwrap();
    let (out, _) = tilstede_ok(&dir.path().join("x.db"), &["config", "check", good.to_str().unwrap()]);
    assert!(out.contains("i orden"), "{out}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[http]\nlisten = \"127.0.0.1:9000\"\nmax_body_bytes = 5\n").unwrap();
    let out = tilstede(&dir.path().join("x.db"), &["config", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http.max_body_bytes"), "{err}");
}

/// Shared and short tokens fail `config check`, which lists every problem
/// of the file at once rather than stopping at the first.
#[test]
fn config_check_lists_every_error_and_refuses_shared_or_short_tokens() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shared.token"), "a".repeat(40)).unwrap();
    std::fs::write(dir.path().join("short.token"), "hemmelig").unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[http]\nmax_body_bytes = 5\n\
         [http.users.alle]\ntoken_file = \"shared.token\"\nschools = [\"*\"]\n\
         [http.users.skole2]\ntoken_file = \"shared.token\"\nschools = [\"skole-02\"]\n\
         [http.users.tom]\ntoken_file = \"short.token\"\nschools = []\n\
         [sources.annen]\ntoken_file = \"short.token\"\n",
    )
    .unwrap();
    let out = tilstede(&dir.path().join("x.db"), &["config", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for path in [
        "http.max_body_bytes",
        "http.users.skole2.token_file: samme hemmelighet som http.users.alle.token_file",
        "http.users.tom.schools",
        "sources.annen.schools",
        "sources.annen.token_file: for kort",
    ] {
        assert!(err.contains(path), "{path} missing in:\n{err}");
    }
    assert!(err.contains("feil i"), "{err}");
    assert!(
        !err.contains("hemmelig\n") && !err.contains("aaaa"),
        "no secret printed: {err}"
    );
}

/// Terminal escape sequences in ids never reach the terminal: `evaluate`
/// shows them escaped, and an import quarantines such records, whose
/// listing is escaped too.
#[test]
fn control_characters_in_ids_never_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("t.db");
    let day = tilstede::domain::dates::school_date_utc(chrono::Utc::now()) - chrono::Days::new(1);
    let file = dir.path().join("esc.jsonl");
    std::fs::write(
        &file,
        format!(
            "{{\"source\":\"s\",\"id\":\"r1\\u001b[2J\",\"pupil\":\"p\\u001b]0;x\\u0007\",\"school\":\"k\\r\",\"date\":\"{day}\",\"kind\":\"left\",\"validity\":\"invalid\"}}\n\
             {{\"source\":\"s\",\"id\":\"r2\",\"pupil\":\"p2\",\"school\":\"k\",\"date\":\"{day}\",\"kind\":\"bad\\u001b[31m\"}}\n"
        ),
    )
    .unwrap();
    let out = tilstede(
        &store,
        &[
            "evaluate",
            "--records",
            file.to_str().unwrap(),
            "--as-of",
            &day.to_string(),
            "--format",
            "text",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("p\\u{1b}]0;x\\u{7}"),
        "the finding is shown, escaped: {stdout}"
    );
    for text in [&stdout, &stderr] {
        assert!(!text.contains(['\u{1b}', '\u{7}', '\r']), "{text:?}");
    }
    tilstede_ok(&store, &["import", file.to_str().unwrap()]);
    let (listing, _) = tilstede_ok(&store, &["quarantine", "--format", "text"]);
    assert!(listing.contains("2 i karantene"), "{listing}");
    assert!(!listing.contains(['\u{1b}', '\u{7}', '\r']), "{listing:?}");
}

#[tokio::test]
async fn serve_answers_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tilstede.toml");
    std::fs::write(&config, "store = \"serve.db\"\n").unwrap();
    let (child, url) = spawn_serve(&config);
    let body = reqwest::get(format!("{url}/readyz"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ready");
    stop_serve(child);
    assert!(
        dir.path().join("serve.db").exists(),
        "store path is relative to the config file"
    );
}

#[test]
fn the_example_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/tilstede.example.toml")).unwrap();
    // Point the secret files at real ones (each its own, long enough);
    // everything else as shipped.
    let mut text = example;
    for (i, name) in [
        "fravaerskoordinator.token",
        "skoleadm.hmac",
        "matrix.password",
        "identity.key",
    ]
    .iter()
    .enumerate()
    {
        let secret = dir.path().join(name);
        std::fs::write(&secret, format!("{i}-{}", "s".repeat(40))).unwrap();
        text = text.replace(&format!("/etc/tilstede/secrets/{name}"), secret.to_str().unwrap());
    }
    let path = dir.path().join("t.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tilstede"))
        .args(["config", "check", path.to_str().unwrap()])
        .env("TILSTEDE_SKOLEADM_TOKEN", "t".repeat(40))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `kill -9` in the middle of a large import, then import again: no record
/// is lost or doubled, and the stored findings equal a pure evaluation of
/// the file.
#[tokio::test]
async fn kill_9_during_import_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("t.db");
    let file = dir.path().join("year.jsonl");
    tilstede_ok(
        &store_path,
        &[
            "gen",
            "--pupils",
            "3000",
            "--schools",
            "4",
            "--seed",
            "9",
            "--out",
            file.to_str().unwrap(),
        ],
    );
    let total = std::fs::read_to_string(&file).unwrap().lines().count() as u64;
    assert!(total > 150_000, "{total}");
    // The first import reads from a pipe that is given only part of the
    // file and never closed: it cannot finish, whatever the machine's load,
    // and is killed once some of its batches are committed.
    let text = std::fs::read_to_string(&file).unwrap();
    let part: String = text
        .lines()
        .take(total as usize * 3 / 5)
        .flat_map(|l| [l, "\n"])
        .collect();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tilstede"))
        .args(["import", "-", "--as-of", "2026-06-19"])
        .env("TILSTEDE_STORE", &store_path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        // Fails only once the child is killed; the pipe stays open until then.
        let _ = input.write_all(part.as_bytes());
        input
    });
    let committed = tilstede::store::BULK_COMMIT;
    let mut seen = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while std::time::Instant::now() < deadline {
        if store_path.exists()
            && let Ok(s) = Store::open(store_path.to_str().unwrap()).await
        {
            seen = s.record_count().await.map(|c| c.0).unwrap_or(0);
            s.close().await;
            if seen >= 2 * committed {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(feeder.join().unwrap());
    assert!(seen >= 2 * committed, "the import committed only {seen} records");
    let s = Store::open(store_path.to_str().unwrap()).await.unwrap();
    let after_kill = s.record_count().await.unwrap().0;
    s.close().await;
    assert!(
        after_kill < total * 3 / 5,
        "more was stored than the import was given ({after_kill} of {total})"
    );

    let args = ["import", file.to_str().unwrap(), "--as-of", "2026-06-19"];
    tilstede_ok(&store_path, &args);
    let s = Store::open(store_path.to_str().unwrap()).await.unwrap();
    assert_eq!(s.record_count().await.unwrap(), (total, 0));
    let stored = s.findings(None).await.unwrap();
    s.close().await;
    let (json, _) = tilstede_ok(
        &store_path,
        &["evaluate", "--records", file.to_str().unwrap(), "--as-of", "2026-06-19"],
    );
    let mut pure: Vec<tilstede::domain::Finding> = serde_json::from_str(&json).unwrap();
    pure.sort_by(|a, b| (&a.pupil, &a.rule).cmp(&(&b.pupil, &b.rule)));
    assert_eq!(stored.len(), pure.len());
    assert!(stored == pure, "the store and the pure evaluation disagree");
}
