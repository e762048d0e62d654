//! `edfi-api` against the fake ODS/API over loopback: paging, change
//! versions, deletes, and recovery from 500s, 429s, timeouts and revoked
//! tokens without losing or doubling records.

use crate::fake::edfi::{self, CLIENT_ID, CLIENT_SECRET, EdfiState, FakeEdfi, Fault};
use crate::support::{store_backends, tilstede_ok};
use std::time::Duration;
use tilstede::adapters::edfi::EdfiMapping;
use tilstede::adapters::edfi_api::{CURSOR_STREAM, EdfiApiSettings, sync};
use tilstede::adapters::rest::{Auth, RestClient, RetryPolicy};

const SCHOOL: &str = "studentSchoolAttendanceEvents";
const SECTION: &str = "studentSectionAttendanceEvents";

fn client(server: &FakeEdfi) -> RestClient {
    RestClient::new(
        Auth::ClientCredentials {
            token_url: format!("http://{}/oauth/token", server.addr),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            scope: None,
        },
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(2),
            timeout: Duration::from_millis(700),
        },
    )
    .unwrap()
}

fn settings(server: &FakeEdfi, page_size: u32) -> EdfiApiSettings {
    EdfiApiSettings {
        data_url: format!("http://{}/data/v3", server.addr),
        change_queries_url: format!("http://{}/changeQueries/v1", server.addr),
        page_size,
    }
}

/// 1 100 school events (one "In Attendance" every 100th) and 40 section events.
fn populated() -> (EdfiState, u64) {
    let mut s = EdfiState::default();
    let mut absences = 0;
    for i in 0..1100 {
        let day = 2 + i % 20;
        let category = if i % 100 == 0 {
            "In Attendance"
        } else {
            "Unexcused Absence"
        };
        absences += u64::from(i % 100 != 0);
        s.add(
            SCHOOL,
            edfi::school_event(
                &format!("s{i}"),
                &format!("elev-{}", i / 20),
                &format!("2026-03-{day:02}"),
                category,
            ),
        );
    }
    for i in 0..40 {
        s.add(
            SECTION,
            edfi::section_event(&format!("t{i}"), &format!("elev-{i}"), "2026-03-02", &format!("9A-{i}")),
        );
    }
    (s, absences + 40)
}

#[tokio::test]
async fn sync_recovers_from_faults_and_then_runs_incrementally() {
    for store in store_backends().await {
        let (state, expected) = populated();
        let server = edfi::start(state).await;
        server.state.lock().unwrap().faults = [
            Fault::ServerError,
            Fault::TooMany(1),
            Fault::Slow(Duration::from_secs(2)),
            Fault::RevokeTokens,
        ]
        .into();
        let client = client(&server);
        let m = EdfiMapping {
            source: "edfi".into(),
            lessons_per_day: 6,
        };
        let r = sync(
            &client,
            &settings(&server, 200),
            &m,
            &store,
            "edfi",
            &tilstede::config::Schools::All,
        )
        .await
        .unwrap();
        assert_eq!(r.from, None);
        assert_eq!(r.to, 1140);
        assert_eq!(r.stats.received, expected, "{r:?}");
        assert_eq!(r.stats.changed, expected, "nothing lost, nothing doubled: {r:?}");
        assert_eq!(store.record_count().await.unwrap(), (expected, 0));
        assert_eq!(
            store.sync_cursor("edfi", CURSOR_STREAM).await.unwrap().as_deref(),
            Some("1140")
        );
        {
            let s = server.state.lock().unwrap();
            assert!(s.faults.is_empty());
            // The revoked token was replaced.
            assert_eq!(s.tokens_issued, 2);
            // 1100 school events in pages of 200: 6 pages.
            assert_eq!(
                s.served.iter().filter(|q| q.starts_with(&format!("{SCHOOL} "))).count(),
                6
            );
        }

        // New events and a delete: only the window after the cursor is asked for.
        {
            let mut s = server.state.lock().unwrap();
            s.served.clear();
            for i in 0..5 {
                s.add(
                    SCHOOL,
                    edfi::school_event(&format!("n{i}"), "elev-900", &format!("2026-04-0{}", i + 1), "Tardy"),
                );
            }
            s.delete(SCHOOL, "s7");
            s.delete(SECTION, "t3");
        }
        let r = sync(
            &client,
            &settings(&server, 200),
            &m,
            &store,
            "edfi",
            &tilstede::config::Schools::All,
        )
        .await
        .unwrap();
        assert_eq!((r.from, r.to), (Some(1140), 1147));
        assert_eq!((r.stats.received, r.deleted), (7, 2), "{r:?}");
        // Live: five new, two removed; the two tombstones are kept.
        assert_eq!(store.record_count().await.unwrap(), (expected + 3, 2));
        let served = server.state.lock().unwrap().served.clone();
        assert!(
            served
                .iter()
                .all(|q| q.contains("minChangeVersion=1141") && q.contains("maxChangeVersion=1147")),
            "{served:?}"
        );

        // Nothing new: nothing fetched but the change versions.
        server.state.lock().unwrap().served.clear();
        let r = sync(
            &client,
            &settings(&server, 200),
            &m,
            &store,
            "edfi",
            &tilstede::config::Schools::All,
        )
        .await
        .unwrap();
        assert_eq!((r.stats.received, r.pages), (0, 0));
        assert!(server.state.lock().unwrap().served.is_empty());
        store.close().await;
    }
}

#[tokio::test]
async fn a_failed_sync_leaves_the_cursor_and_the_rerun_completes() {
    let store = store_backends().await.remove(0);
    let (state, expected) = populated();
    let server = edfi::start(state).await;
    let client = client(&server);
    let m = EdfiMapping::default();
    // The first page arrives, then the server fails every attempt of the second.
    server.state.lock().unwrap().faults = std::iter::once(Fault::Pass)
        .chain(std::iter::repeat_n(Fault::ServerError, 4))
        .collect();
    let err = sync(
        &client,
        &settings(&server, 500),
        &m,
        &store,
        "edfi",
        &tilstede::config::Schools::All,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    assert_eq!(store.sync_cursor("edfi", CURSOR_STREAM).await.unwrap(), None);
    let (stored, _) = store.record_count().await.unwrap();
    assert!(stored > 0 && stored < expected, "page one was committed: {stored}");

    server.state.lock().unwrap().faults.clear();
    let r = sync(
        &client,
        &settings(&server, 500),
        &m,
        &store,
        "edfi",
        &tilstede::config::Schools::All,
    )
    .await
    .unwrap();
    assert_eq!(r.from, None);
    assert_eq!(store.record_count().await.unwrap(), (expected, 0));
    assert_eq!(
        store.sync_cursor("edfi", CURSOR_STREAM).await.unwrap().as_deref(),
        Some("1140")
    );
    store.close().await;
}

#[tokio::test]
async fn wrong_secret_is_refused_clearly() {
    let store = store_backends().await.remove(0);
    let server = edfi::start(populated().0).await;
    let client = RestClient::new(
        Auth::ClientCredentials {
            token_url: format!("http://{}/oauth/token", server.addr),
            client_id: CLIENT_ID.into(),
            client_secret: "wrong".into(),
            scope: None,
        },
        RetryPolicy::default(),
    )
    .unwrap();
    let err = sync(
        &client,
        &settings(&server, 100),
        &EdfiMapping::default(),
        &store,
        "edfi",
        &tilstede::config::Schools::All,
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("innlogging") && err.to_string().contains("401"),
        "{err}"
    );
    assert_eq!(store.record_count().await.unwrap(), (0, 0));
}

#[tokio::test]
async fn sync_command_reads_the_config_and_a_secret_file() {
    let (state, expected) = populated();
    let server = edfi::start(state).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{CLIENT_SECRET}\n")).unwrap();
    let config = dir.path().join("adapters.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.ods]\nschools = [\"*\"]\nadapter = \"edfi-api\"\nbase_url = \"http://{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = \"{}\"\npage_size = 300\nsource = \"edfi\"\n",
            server.addr,
            secret.display()
        ),
    )
    .unwrap();
    let store = dir.path().join("t.db");
    let args: Vec<String> = ["sync", "ods", "--config", config.to_str().unwrap()]
        .map(String::from)
        .into();
    let run = |store: std::path::PathBuf, args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            tilstede_ok(&store, &args)
        })
    };
    let (out, _) = run(store.clone(), args.clone()).await.unwrap();
    assert!(
        out.contains(&format!("markør start → 1140; 7 sider, {expected} poster")),
        "{out}"
    );
    let (out, _) = run(store.clone(), args).await.unwrap();
    assert!(out.contains("markør 1140 → 1140; 0 sider, 0 poster"), "{out}");
}

/// A file export imported into a source and a later pull into the same
/// source share one version clock: the pull's correction of an event the
/// file had replaces it (change versions alone would rank below any file).
#[tokio::test]
async fn a_pull_replaces_what_an_earlier_file_import_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("t.db");
    let file = dir.path().join("export.xml");
    std::fs::write(
        &file,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<InterchangeStudentAttendance xmlns="http://ed-fi.org/5.2.0">
  <StudentSchoolAttendanceEvent>
    <AttendanceEvent><EventDate>2026-03-02</EventDate>
    <AttendanceEventCategory>uri://ed-fi.org/AttendanceEventCategoryDescriptor#Unexcused Absence</AttendanceEventCategory>
    <EventDuration>1.0</EventDuration></AttendanceEvent>
    <StudentReference><StudentIdentity><StudentUniqueId>elev-0</StudentUniqueId></StudentIdentity></StudentReference>
    <SchoolReference><SchoolIdentity><SchoolId>255901001</SchoolId></SchoolIdentity></SchoolReference>
    <SessionReference><SessionIdentity><SchoolYear>2026</SchoolYear><SessionName>2025-2026 Vår</SessionName><SchoolReference><SchoolIdentity><SchoolId>255901001</SchoolId></SchoolIdentity></SchoolReference></SessionIdentity></SessionReference>
  </StudentSchoolAttendanceEvent>
</InterchangeStudentAttendance>
"#,
    )
    .unwrap();
    // Exported an hour ago.
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    tilstede_ok(
        &store_path,
        &[
            "import",
            "--adapter",
            "edfi-xml",
            "--source",
            "edfi",
            file.to_str().unwrap(),
        ],
    );
    let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    let store = tilstede::store::Store::open(store_path.to_str().unwrap())
        .await
        .unwrap();
    let before = store.pupil_records("elev-0", day, day).await.unwrap();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].kind, tilstede::domain::Kind::Day);

    // The ODS now has the same event as a half day.
    let mut state = EdfiState::default();
    let mut half = edfi::school_event("s0", "elev-0", "2026-03-02", "Unexcused Absence");
    half["eventDuration"] = serde_json::json!(0.5);
    state.add(SCHOOL, half);
    let server = edfi::start(state).await;
    let m = EdfiMapping {
        source: "edfi".into(),
        lessons_per_day: 6,
    };
    let r = sync(
        &client(&server),
        &settings(&server, 50),
        &m,
        &store,
        "edfi",
        &tilstede::config::Schools::All,
    )
    .await
    .unwrap();
    assert_eq!(r.stats.changed, 1, "{r:?}");
    let after = store.pupil_records("elev-0", day, day).await.unwrap();
    assert_eq!(after.len(), 1, "the same event, not a second one: {after:?}");
    assert_eq!(after[0].id, before[0].id);
    assert_eq!((after[0].kind, after[0].lessons), (tilstede::domain::Kind::Lesson, 3));
    assert!(after[0].version > before[0].version);

    // A second run within the same second still ranks above the first.
    let first = store
        .sync_cursor("edfi", tilstede::adapters::edfi_api::VERSION_STREAM)
        .await
        .unwrap();
    server.state.lock().unwrap().add(
        SCHOOL,
        edfi::school_event("s1", "elev-0", "2026-03-03", "Unexcused Absence"),
    );
    sync(
        &client(&server),
        &settings(&server, 50),
        &m,
        &store,
        "edfi",
        &tilstede::config::Schools::All,
    )
    .await
    .unwrap();
    let second = store
        .sync_cursor("edfi", tilstede::adapters::edfi_api::VERSION_STREAM)
        .await
        .unwrap();
    let parse = |v: Option<String>| v.unwrap().parse::<u32>().unwrap();
    assert!(parse(second) > parse(first));
    store.close().await;
}
