//! Retention: absence data past its school years is purged (except what an
//! open case depends on), and a purged case leaves who/what/when in the
//! audit log but no free text and no link back to the pupil. On SQLite and
//! (when configured) PostgreSQL.

use crate::support::{store_backends, tilstede_ok};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use sqlx::Row;
use tilstede::cases::{CaseConfig, Command, Party, Role};
use tilstede::domain::dates::{retention_cutoff, school_date_utc};
use tilstede::domain::{AbsenceRecord, Kind, Validity};
use tilstede::rules::RuleSet;
use tilstede::store::{Backend, Store};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn rec(id: &str, pupil: &str, date: NaiveDate, deleted: bool, code: &str) -> AbsenceRecord {
    AbsenceRecord {
        source: "s".into(),
        id: id.into(),
        version: 1,
        pupil: pupil.into(),
        school: "k".into(),
        date,
        kind: Kind::Day,
        lessons: 1,
        minutes: None,
        validity: Validity::Invalid,
        reason: None,
        deleted,
        subject: None,
        period: None,
        extensions: json!({ "source_code": code }).as_object().unwrap().clone(),
    }
}

async fn count(store: &Store, sql: &str) -> i64 {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get::<i64, _>(0)
        .unwrap()
}

async fn ids(store: &Store, sql: &str) -> Vec<String> {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String, _>(0).unwrap())
        .collect()
}

/// A finding event for `pupil` written at `at`.
async fn event(store: &Store, pupil: &str, at: &str) {
    sqlx::query(
        "INSERT INTO finding_events (pupil, rule, change, finding, created_at) VALUES ($1, 'r', 'opened', '{}', $2)",
    )
    .bind(pupil)
    .bind(at)
    .execute(store.pool())
    .await
    .unwrap();
}

/// An open case of `pupil`, as the workflow stores it (the purge of
/// absence data reads only the row's columns).
async fn open_case(store: &Store, number: &str, pupil: &str) {
    sqlx::query(
        "INSERT INTO cases (number, pupil, school, open, phase, responsible, next_due, long_term, revision, state, opened_at, updated_at) \
         VALUES ($1, $2, 'k', 1, 3, 'al-1', NULL, 0, 1, '{}', '2025-03-03T08:00:00Z', '2025-03-03T08:00:00Z')",
    )
    .bind(number)
    .bind(pupil)
    .execute(store.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn expired_absence_data_goes_but_an_open_case_keeps_its_pupils_data() {
    // On 6 December 2026 the current (2026–27) and the previous (2025–26)
    // school year are kept: everything dated before 1 August 2025 goes.
    let cutoff = retention_cutoff(d("2026-12-06"), 2);
    assert_eq!(cutoff, d("2025-08-01"));
    for store in store_backends().await {
        let backend = format!("{:?}", store.backend());
        let sqlite = store.backend() == Backend::Sqlite;
        store
            .ingest(
                &[
                    // p1, no case: two old records (one with a set of
                    // extensions nothing else uses), an old tombstone, one
                    // on the cutoff and one recent.
                    rec("old-1", "p1", d("2025-03-02"), false, "GAMMEL"),
                    rec("old-2", "p1", d("2025-07-31"), false, "X"),
                    rec("gone", "p1", d("2025-05-05"), true, "X"),
                    rec("edge", "p1", d("2025-08-01"), false, "X"),
                    rec("new", "p1", d("2026-11-02"), false, "X"),
                    // p2 has an open case: its old record stays.
                    rec("old-p2", "p2", d("2025-03-02"), false, "X"),
                ],
                &[],
            )
            .await
            .unwrap();
        open_case(&store, "S-2025-0001", "p2").await;
        event(&store, "p1", "2025-06-01T10:00:00.000Z").await;
        event(&store, "p1", "2025-07-31T21:00:00.000Z").await;
        event(&store, "p2", "2025-06-01T10:00:00.000Z").await;
        event(&store, "p1", "2026-10-01T10:00:00.000Z").await;
        let before_sets = if sqlite {
            count(&store, "SELECT COUNT(*) FROM record_extensions").await
        } else {
            0
        };

        let purged = store.purge_expired(cutoff).await.unwrap();
        assert_eq!(
            (purged.records, purged.tombstones, purged.finding_events),
            (2, 1, 2),
            "{backend}: {purged:?}"
        );
        assert_eq!(purged.extension_sets, u64::from(sqlite), "{backend}: the GAMMEL set");
        let mut left = ids(&store, "SELECT id FROM records").await;
        left.sort();
        assert_eq!(left, ["edge", "new", "old-p2"], "{backend}");
        let events = ids(
            &store,
            "SELECT pupil || ' ' || created_at FROM finding_events ORDER BY seq",
        )
        .await;
        assert_eq!(
            events,
            ["p2 2025-06-01T10:00:00.000Z", "p1 2026-10-01T10:00:00.000Z"],
            "{backend}"
        );
        if sqlite {
            assert_eq!(
                count(&store, "SELECT COUNT(*) FROM record_extensions").await,
                before_sets - 1,
                "{backend}"
            );
        }
        // Nothing is left to purge; the records kept read back whole.
        assert!(store.purge_expired(cutoff).await.unwrap().is_empty(), "{backend}");
        let kept = store
            .pupil_records("p1", d("2000-01-01"), d("2100-01-01"))
            .await
            .unwrap();
        assert_eq!(kept.len(), 2, "{backend}");
        assert!(
            kept.iter()
                .all(|r| r.extensions.get("source_code") == Some(&"X".into()))
        );

        // Once the case is closed, p2's old data goes at the next purge.
        sqlx::query("UPDATE cases SET open = 0 WHERE number = 'S-2025-0001'")
            .execute(store.pool())
            .await
            .unwrap();
        let purged = store.purge_expired(cutoff).await.unwrap();
        assert_eq!((purged.records, purged.finding_events), (1, 1), "{backend}");
        store.close().await;
    }
}

fn case_config() -> CaseConfig {
    let mut cfg = CaseConfig::from_toml(
        r#"
name = "test"
[school_day]
start = "08:30"
end = "15:00"
first_lesson_minutes = 45
[deadlines]
remind_hours_before = 24
first_meeting_days = 7
followup_meeting_days = 7
agreement_days = 7
evaluation_days = 21
agreement_valid_days = 21
phase4_meeting_days = 14
handoff_accept_days = 7
monitoring_review_days = 30
[long_term]
open_weeks = 8
[schools.skole-1]
avdelingsleder = "al-1"
ledelse = ["rektor"]
"#,
    )
    .unwrap();
    cfg.use_rules(&RuleSet::preset("baerum").unwrap());
    cfg
}

fn roster() -> tilstede::domain::roster::Roster {
    use tilstede::domain::roster::{Roster, RosterClass, RosterPerson, RosterPupil, RosterSchool};
    let person = |id: &str| RosterPerson {
        id: id.into(),
        given_name: "Kari".into(),
        family_name: "Lærer".into(),
        matrix_id: None,
        school: Some("skole-1".into()),
    };
    Roster {
        schools: vec![RosterSchool {
            id: "skole-1".into(),
            name: "Eikeli skole".into(),
        }],
        classes: vec![RosterClass {
            id: "c9b".into(),
            school: "skole-1".into(),
            name: "9B".into(),
            grade: 9,
            contact_teachers: vec!["kl-1".into()],
        }],
        pupils: vec![RosterPupil {
            id: "p1".into(),
            school: "skole-1".into(),
            class: Some("c9b".into()),
            grade: 9,
            given_name: "Emma".into(),
            family_name: "Hansen".into(),
        }],
        staff: vec![person("kl-1"), person("al-1")],
    }
}

/// The risks, goal and Plan B a case's audit rows carry.
const FREE_TEXT: [&str; 3] = [
    "Gruer seg til matteprøvene",
    "Eleven er på skolen hver dag",
    "Kontaktlærer ringer hjem kl. 9",
];

#[tokio::test]
async fn a_purged_case_keeps_who_what_when_but_no_free_text_and_no_link_to_the_pupil() {
    let cfg = case_config();
    for s in store_backends().await {
        let backend = format!("{:?}", s.backend());
        s.upsert_roster(&roster()).await.unwrap();
        let records: Vec<AbsenceRecord> = ["2026-02-23", "2026-02-24", "2026-02-25"]
            .iter()
            .enumerate()
            .map(|(i, date)| AbsenceRecord {
                school: "skole-1".into(),
                ..rec(&format!("r{i}"), "p1", d(date), false, "X")
            })
            .collect();
        s.ingest(&records, &[]).await.unwrap();
        s.refresh_findings(&RuleSet::preset("baerum").unwrap(), d("2026-03-02"))
            .await
            .unwrap();
        let events_of_p1 = "SELECT COUNT(*) FROM finding_events WHERE pupil = 'p1'";
        assert!(count(&s, events_of_p1).await > 0, "{backend}");
        let stats = tilstede::workflow::sync_cases(&s, &cfg, t("2026-03-02T07:00:00Z"))
            .await
            .unwrap();
        assert_eq!(stats.opened, 1, "{backend}");
        let number = "S-2026-0001";
        let teacher = Party::new("kl-1", Role::Kontaktlaerer);
        let leader = Party::new("al-1", Role::Avdelingsleder);
        let apply = |who: &Party, at: &str, v: serde_json::Value| {
            let (s, cfg, who, at) = (s.clone(), cfg.clone(), who.clone(), t(at));
            async move {
                let step: Command = serde_json::from_value(v).unwrap();
                tilstede::workflow::apply_case_command(&s, number, &who, &step, at, &cfg)
                    .await
                    .unwrap();
            }
        };
        apply(&teacher, "2026-03-02T10:00:00Z",
            json!({"command":"log-contact","with":"foresatte","at":"2026-03-02T09:55:00Z","channel":"telefon","outcome":"bekymring"})).await;
        apply(
            &leader,
            "2026-03-02T10:05:00Z",
            json!({"command":"report-to-ressursteam"}),
        )
        .await;
        apply(&teacher, "2026-03-04T12:00:00Z",
            json!({"command":"map-box","circle_box":"relasjon-voksne","resources":["Trives med gymlæreren"],"risks":[FREE_TEXT[0]]})).await;
        apply(&teacher, "2026-03-04T12:00:00Z",
            json!({"command":"add-measure","circle_box":"relasjon-voksne","text":"Fast voksen i døra","responsible":"kontaktlærer","due":"2026-03-20","at_home":false})).await;
        apply(&teacher, "2026-03-04T12:00:00Z",
            json!({"command":"add-measure","circle_box":"hjemmeforhold","text":"Foresatte følger til skolen","responsible":"foresatte","due":"2026-03-20","at_home":true})).await;
        apply(&teacher, "2026-03-04T13:00:00Z",
            json!({"command":"meeting-held","kind":"samarbeid","at":"2026-03-04T12:00:00Z","leadership_present":true,"mapping_complete":true,"next_meeting":null})).await;
        apply(
            &teacher,
            "2026-03-04T13:05:00Z",
            json!({"command":"create-agreement","place":"Skolen","present":["eleven","foresatte","kontaktlærer"],
                   "goal":FREE_TEXT[1],"sub_goals":[{"text":"Møte til første time","weeks":3,"measures":[1,2]}],
                   "plan_b":FREE_TEXT[2],"plan_b_responsible":"kontaktlærer","valid_days":null,"evaluation_date":null}),
        )
        .await;
        apply(
            &leader,
            "2026-03-30T10:00:00Z",
            json!({"command":"close","reason":"lost"}),
        )
        .await;
        s.read_case(number, &leader, t("2026-03-30T11:00:00Z")).await.unwrap();

        let before = s.case_audit(number).await.unwrap();
        let text_of =
            |rows: &[tilstede::store::AuditEntry]| rows.iter().map(|a| a.detail.clone()).collect::<Vec<_>>().join("\n");
        for text in FREE_TEXT {
            assert!(text_of(&before).contains(text), "{backend}: {text} in the audit log");
        }
        assert!(
            text_of(&before).contains("\"seq\""),
            "{backend}: the open row names its finding event"
        );

        // A year on, the purge: who/what/when stays, the details go, and no
        // finding event of the pupil is left.
        let purged = s.purge_closed_cases(t("2027-04-01T00:00:00Z")).await.unwrap();
        assert_eq!(purged.cases, [number], "{backend}");
        assert!(purged.audit_rows_scrubbed >= 6, "{backend}: {purged:?}");
        assert!(purged.finding_events >= 1, "{backend}: {purged:?}");
        assert_eq!(count(&s, events_of_p1).await, 0, "{backend}");
        let after = s.case_audit(number).await.unwrap();
        assert_eq!(after.len(), before.len() + 1, "{backend}");
        for (a, b) in after.iter().zip(&before) {
            assert_eq!(
                (a.seq, &a.case, &a.actor, &a.role, &a.action, &a.at),
                (b.seq, &b.case, &b.actor, &b.role, &b.action, &b.at),
                "{backend}"
            );
            assert_eq!(a.detail, "{}", "{backend}: {}", b.action);
        }
        assert_eq!(after.last().unwrap().action, "purged");
        assert!(
            after
                .iter()
                .any(|a| a.action == "create-agreement" && a.actor == "kl-1")
        );
        let everything = format!("{after:?}");
        for text in FREE_TEXT {
            assert!(!everything.contains(text), "{backend}");
        }
        assert!(!everything.contains("p1"), "{backend}");

        // The scrub is the only change the log allows.
        refuses_changes(&s, number, &backend).await;
        s.close().await;
    }
}

/// Every UPDATE and DELETE on `case_audit` but the scrub of a purged case
/// is refused: of `purged` (a purged case) and of a live case.
async fn refuses_changes(s: &Store, purged: &str, backend: &str) {
    open_case(s, "S-2026-0099", "p9").await;
    sqlx::query(
        "INSERT INTO case_audit (case_number, actor, role, action, detail, at) \
         VALUES ('S-2026-0099', 'kl-9', 'kontaktlaerer', 'map-box', '{\"risks\":[\"hemmelig\"]}', '2026-03-01T10:00:00Z')",
    )
    .execute(s.pool())
    .await
    .unwrap();
    for (case, sql) in [
        (purged, "UPDATE case_audit SET actor = 'noen' WHERE case_number = $1"),
        (purged, "UPDATE case_audit SET role = 'ledelse' WHERE case_number = $1"),
        (purged, "UPDATE case_audit SET action = 'read' WHERE case_number = $1"),
        (
            purged,
            "UPDATE case_audit SET at = '2020-01-01T00:00:00Z' WHERE case_number = $1",
        ),
        (
            purged,
            "UPDATE case_audit SET detail = '{\"x\":1}' WHERE case_number = $1",
        ),
        (
            purged,
            "UPDATE case_audit SET case_number = 'S-1' WHERE case_number = $1",
        ),
        (
            purged,
            "UPDATE case_audit SET detail = '{}', actor = 'noen' WHERE case_number = $1",
        ),
        (purged, "DELETE FROM case_audit WHERE case_number = $1"),
        // A live case's details cannot be scrubbed, nor its rows changed or deleted.
        (
            "S-2026-0099",
            "UPDATE case_audit SET detail = '{}' WHERE case_number = $1",
        ),
        (
            "S-2026-0099",
            "UPDATE case_audit SET actor = 'noen' WHERE case_number = $1",
        ),
        ("S-2026-0099", "DELETE FROM case_audit WHERE case_number = $1"),
    ] {
        let e = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(case)
            .execute(s.pool())
            .await
            .expect_err(sql);
        assert!(e.to_string().contains("append-only"), "{backend}: {sql}: {e}");
    }
    let live = s.case_audit("S-2026-0099").await.unwrap();
    assert!(live[0].detail.contains("hemmelig"), "{backend}");
}

/// `tilstede purge` purges as of `--now` and prints counts in Norwegian;
/// `config check` names a bad `[retention]` setting.
#[test]
fn the_purge_command_prints_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("t.db");
    let config = dir.path().join("tilstede.toml");
    std::fs::write(&config, "store = \"t.db\"\n[retention]\nschool_years = 1\n").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::open(store_path.to_str().unwrap()).await.unwrap();
        store
            .ingest(
                &[
                    rec("a", "p1", d("2026-07-31"), false, "X"),
                    rec("b", "p1", d("2026-06-01"), true, "X"),
                    rec("c", "p1", d("2026-08-01"), false, "X"),
                ],
                &[tilstede::ingest::quarantine_entry(tilstede::adapters::Rejected::new(
                    Some("X".into()),
                    "fil.csv:3",
                    tilstede::domain::reject::Fault::new(tilstede::domain::reject::RejectCode::BadDate, "dato"),
                    String::new(),
                ))],
            )
            .await
            .unwrap();
        store.close().await;
    });
    let (out, _) = tilstede_ok(
        &store_path,
        &[
            "purge",
            "--config",
            config.to_str().unwrap(),
            "--now",
            "2026-12-06T12:00:00Z",
        ],
    );
    assert!(out.contains("fravær fra og med 1.8.2026 (1 skoleår)"), "{out}");
    assert!(
        out.contains("Slettet: 1 fraværsregistrering, 1 slettemarkering, 0 funnhendelser"),
        "{out}"
    );
    assert!(!out.contains("p1"), "counts only: {out}");
    let (out, _) = tilstede_ok(
        &store_path,
        &[
            "purge",
            "--config",
            config.to_str().unwrap(),
            "--now",
            "2026-12-06T12:00:00Z",
        ],
    );
    assert!(
        out.contains("Slettet: 0 fraværsregistreringer, 0 slettemarkeringer"),
        "{out}"
    );
    assert!(
        out.contains("0 poster i karantene"),
        "received today, kept 30 days: {out}"
    );
    // Two months on, the quarantine entry is past its own retention, while
    // the record of this school year stays.
    let later = (Utc::now() + chrono::Duration::days(60)).to_rfc3339();
    let (out, _) = tilstede_ok(
        &store_path,
        &["purge", "--config", config.to_str().unwrap(), "--now", &later],
    );
    assert!(out.contains("karantene i 30 dager"), "{out}");
    assert!(out.contains("1 post i karantene"), "{out}");

    std::fs::write(&config, "store = \"t.db\"\n[retention]\nschool_years = 0\n").unwrap();
    let out = crate::support::tilstede(&store_path, &["config", "check", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("retention.school_years: må være mellom 1 og 10, ikke 0"),
        "{err}"
    );
}

/// `serve` purges expired absence data on its own, soon after it starts.
#[tokio::test]
async fn serve_purges_expired_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let today = school_date_utc(Utc::now());
    let cutoff = retention_cutoff(today, 2);
    let store = Store::open(path.to_str().unwrap()).await.unwrap();
    store
        .ingest(
            &[
                rec("old", "p1", cutoff.pred_opt().unwrap(), false, "X"),
                rec("kept", "p1", cutoff, false, "X"),
            ],
            &[],
        )
        .await
        .unwrap();
    let config = tilstede::config::parse_and_validate("store = \"t.db\"\n", dir.path()).unwrap();
    let running = tilstede::service::start(config, Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let left = ids(&store, "SELECT id FROM records").await;
        if left == ["kept"] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not purged: {left:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    running.shutdown().await.unwrap();
    store.close().await;
}
