//! The quarantine keeps the place, a reason code and the field of what it
//! rejects, never the input's text (art. 9: a value in the wrong field may
//! be a diagnosis), unless the source sets `keep_raw`; and it has its own
//! retention. On SQLite and PostgreSQL, and over real HTTP.

use crate::support::store_backends;
use tilstede::adapters::jsonl::JsonlReader;
use tilstede::domain::RejectCode;
use tilstede::store::{QuarantinedRow, Store};

/// Health data a source put where it does not belong.
const SECRET: &str = "Diagnose ADHD, se notat fra BUP";

/// A line with the free text in its date field.
fn bad_line(source: &str) -> String {
    format!(r#"{{"source":"{source}","id":"x1","pupil":"p1","school":"s","date":"{SECRET}","kind":"day"}}"#)
}

/// Runs `lines` through the file import's pipeline into `store`.
async fn import(store: &Store, lines: &str) {
    let items = JsonlReader::new(std::io::Cursor::new(lines.to_string()), "f.jsonl");
    tilstede::ingest::ingest(store, items, |_| {}).await.unwrap();
}

/// Everything a quarantined row says, as one text.
fn everything(row: &QuarantinedRow) -> String {
    serde_json::to_string(row).unwrap()
}

#[tokio::test]
async fn a_free_text_value_in_a_bad_field_is_kept_nowhere() {
    for store in store_backends().await {
        let kind =
            format!(r#"{{"source":"vis","id":"x2","pupil":"p1","school":"s","date":"2026-03-02","kind":"{SECRET}"}}"#);
        import(&store, &format!("{}\n{kind}\n", bad_line("vis"))).await;
        let rows = store.quarantined(10).await.unwrap();
        assert_eq!(rows.len(), 2);
        let mut got: Vec<(RejectCode, Option<&str>, &str)> = rows
            .iter()
            .map(|r| (r.entry.code, r.entry.field.as_deref(), r.entry.location.as_str()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                (RejectCode::BadDate, Some("date"), "f.jsonl:1"),
                (RejectCode::UnknownCode, Some("kind"), "f.jsonl:2"),
            ]
        );
        for row in &rows {
            assert_eq!(row.entry.raw, "");
            assert!(!everything(row).contains("ADHD"), "{row:?}");
            assert!(row.entry.reason.contains(row.entry.code.as_str()), "{row:?}");
        }
        // Nothing of it is anywhere in the table.
        let stored: Vec<(String, String, String)> = sqlx::query_as("SELECT location, reason, raw FROM quarantine")
            .fetch_all(store.pool())
            .await
            .unwrap();
        assert!(
            stored.iter().all(|(l, r, w)| !format!("{l}{r}{w}").contains("ADHD")),
            "{stored:?}"
        );
    }
}

#[tokio::test]
async fn keep_raw_keeps_the_input_of_that_source_only() {
    for store in store_backends().await {
        let store = store.keeping_raw_for(["vis".to_string()]);
        import(&store, &format!("{}\n{}\n", bad_line("vis"), bad_line("annen"))).await;
        let rows = store.quarantined(10).await.unwrap();
        let raw = |source: &str| {
            rows.iter()
                .find(|r| r.entry.source.as_deref() == Some(source))
                .map(|r| r.entry.raw.clone())
                .unwrap()
        };
        assert_eq!(raw("vis"), bad_line("vis"));
        assert_eq!(raw("annen"), "");
        // The reason is built from the code even where the input is kept.
        assert!(rows.iter().all(|r| !r.entry.reason.contains("ADHD")));
    }
}

#[tokio::test]
async fn the_purge_removes_old_entries_only() {
    for store in store_backends().await {
        let lines: Vec<String> = (1..=3)
            .map(|i| format!(r#"{{"source":"vis","id":"x{i}","pupil":"p1","school":"s","date":"no","kind":"day"}}"#))
            .collect();
        import(&store, &lines.join("\n")).await;
        // Two arrived 40 and 31 days ago, one now.
        for (location, at) in [
            ("f.jsonl:1", "2026-01-01T00:00:00.000Z"),
            ("f.jsonl:2", "2026-01-10T00:00:00.000Z"),
        ] {
            sqlx::query("UPDATE quarantine SET received_at = $1 WHERE location = $2")
                .bind(at)
                .bind(location)
                .execute(store.pool())
                .await
                .unwrap();
        }
        let now: chrono::DateTime<chrono::Utc> = "2026-02-10T00:00:00Z".parse().unwrap();
        let config = tilstede::config::QuarantineConfig { retention_days: 30 };
        assert_eq!(store.purge_quarantine(config.cutoff(now)).await.unwrap(), 2);
        let left = store.quarantined(10).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].entry.location, "f.jsonl:3");
        // Again: nothing more is due.
        assert_eq!(store.purge_quarantine(config.cutoff(now)).await.unwrap(), 0);
    }
}

/// A store from before migration 63 keeps its rows, with the free text
/// and the raw input gone and the two old codes kept.
#[tokio::test]
async fn the_upgrade_drops_old_free_text() {
    for store in store_backends().await {
        // Back to the table as it was before 63.
        for sql in [
            "DROP INDEX quarantine_received",
            "ALTER TABLE quarantine DROP COLUMN code",
            "ALTER TABLE quarantine DROP COLUMN field",
            "DELETE FROM schema_migrations WHERE version = 63",
        ] {
            sqlx::query(sql).execute(store.pool()).await.unwrap();
        }
        for (n, reason, raw) in [
            (1, format!("feltet «date»: «{SECRET}» er ikke en dato"), bad_line("vis")),
            (
                2,
                "school-not-allowed: feltet «school»: kilden «vis» har ikke lov".to_string(),
                String::new(),
            ),
        ] {
            sqlx::query(
                "INSERT INTO quarantine (source, location, reason, raw, digest, received_at) VALUES ('vis', $1, $2, $3, $4, '2026-01-01T00:00:00.000Z')",
            )
            .bind(format!("f.jsonl:{n}"))
            .bind(reason)
            .bind(raw)
            .bind(format!("d{n}"))
            .execute(store.pool())
            .await
            .unwrap();
        }
        let url = store.url().to_string();
        store.close().await;
        let store = Store::open(&url).await.unwrap();
        let mut rows = store.quarantined(10).await.unwrap();
        rows.sort_by(|a, b| a.entry.location.cmp(&b.entry.location));
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].entry.code, rows[1].entry.code, rows[1].entry.field.as_deref()),
            (RejectCode::Legacy, RejectCode::SchoolNotAllowed, Some("school"))
        );
        for row in &rows {
            assert_eq!(row.entry.raw, "");
            assert!(!everything(row).contains("ADHD"), "{row:?}");
        }
    }
}

/// A config with source `vis` (pushing JSON Lines and Ed-Fi XML), `extra`
/// appended to its section.
fn serve_config(dir: &std::path::Path, extra: &str) -> tilstede::config::Config {
    std::fs::write(dir.join("vis.token"), "push-token-quarantine-0123456789abcdef\n").unwrap();
    let text = format!("store = \"store.db\"\n[sources.vis]\nschools = [\"*\"]\ntoken_file = \"vis.token\"\n{extra}\n");
    tilstede::config::parse_and_validate(&text, dir).unwrap()
}

/// Pushes `body` as `content_type` to a service running `config`; the
/// answer's JSON and the quarantine afterwards.
async fn push(
    config: tilstede::config::Config,
    content_type: &str,
    body: String,
) -> (serde_json::Value, Vec<QuarantinedRow>) {
    let running = tilstede::service::start(config, Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v1/sources/vis/records", running.addr))
        .header("content-type", content_type)
        .bearer_auth("push-token-quarantine-0123456789abcdef")
        .body(body)
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    let rows = running.state.store.quarantined(10).await.unwrap();
    running.shutdown().await.unwrap();
    (v, rows)
}

/// An XML fault used to keep the body's first 4 KiB, other records' text
/// with it. Now the fault is kept as its place and code.
#[tokio::test]
async fn an_xml_fault_keeps_no_other_records_text() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/adapters/edfi-xml/fixtures/attendance.xml"
    ))
    .unwrap();
    let body = fixture.replace("Melding fra foresatte", SECRET).replace(
        "</InterchangeStudentAttendance>",
        "<StudentSchoolAttendanceEvent><EventDate>2026-03-09</Broken></InterchangeStudentAttendance>",
    );
    assert!(body.find(SECRET).unwrap() < 4096);
    let (v, rows) = push(serve_config(dir.path(), ""), "application/xml", body).await;
    assert!(v["accepted"].as_u64().unwrap() > 0, "{v}");
    let fault = rows
        .iter()
        .find(|r| r.entry.code == RejectCode::MalformedXml)
        .unwrap_or_else(|| panic!("{rows:?}"));
    assert!(fault.entry.location.starts_with("http:vis:"), "{fault:?}");
    for row in &rows {
        assert_eq!(row.entry.raw, "", "{row:?}");
        assert!(!everything(row).contains("ADHD"), "{row:?}");
    }
    assert!(!v.to_string().contains("ADHD"), "{v}");
}

/// Over HTTP: the answer names code and field, not the value; with
/// `keep_raw = true` the store keeps the input (serve applies the config).
#[tokio::test]
async fn pushes_answer_codes_and_keep_raw_follows_the_config() {
    for (extra, kept) in [("", false), ("keep_raw = true", true)] {
        let dir = tempfile::tempdir().unwrap();
        let line = bad_line("vis");
        let (v, rows) = push(serve_config(dir.path(), extra), "application/x-ndjson", line.clone()).await;
        assert_eq!(v["rejected"][0]["code"], "bad_date", "{v}");
        assert_eq!(v["rejected"][0]["field"], "date", "{v}");
        assert!(!v.to_string().contains("ADHD"), "{v}");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].entry.raw == line, kept, "{extra}: {rows:?}");
        assert!(!rows[0].entry.reason.contains("ADHD"));
    }
}
