//! File imports are versioned by a stamp per import (the file's modification
//! time or `--version-stamp`), and `--snapshot` removes what a full export no
//! longer has; on SQLite and PostgreSQL, through the command line.

use crate::support::{store_backends, tilstede, tilstede_ok};
use chrono::NaiveDate;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};
use tilstede::store::{FindingChange, Store};

/// One Ed-Fi school attendance event.
fn event(pupil: &str, school: &str, date: &str, category: &str, duration: Option<&str>) -> String {
    format!(
        "<StudentSchoolAttendanceEvent>\
<AttendanceEvent><EventDate>{date}</EventDate>\
<AttendanceEventCategory>uri://ed-fi.org/AttendanceEventCategoryDescriptor#{category}</AttendanceEventCategory>{}</AttendanceEvent>\
<StudentReference><StudentIdentity><StudentUniqueId>{pupil}</StudentUniqueId></StudentIdentity></StudentReference>\
<SchoolReference><SchoolIdentity><SchoolId>{school}</SchoolId></SchoolIdentity></SchoolReference>\
<SessionReference><SessionIdentity><SessionName>Vår</SessionName><SchoolYear>2025-2026</SchoolYear></SessionIdentity></SessionReference>\
</StudentSchoolAttendanceEvent>\n",
        duration
            .map(|d| format!("<EventDuration>{d}</EventDuration>"))
            .unwrap_or_default()
    )
}

/// Writes an interchange file with `events`, modified at `mtime` unix seconds.
fn write(dir: &Path, name: &str, events: &[String], mtime: u64) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InterchangeStudentAttendance xmlns=\"http://ed-fi.org/5.0.0\">\n{}</InterchangeStudentAttendance>\n",
            events.concat()
        ),
    )
    .unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(UNIX_EPOCH + Duration::from_secs(mtime))
        .unwrap();
    path
}

fn import(store: &Store, file: &Path, extra: &[&str]) -> String {
    let mut args = vec!["import", "--adapter", "edfi-xml", "--as-of", "2026-03-31"];
    args.extend_from_slice(extra);
    args.push(file.to_str().unwrap());
    tilstede_ok(Path::new(store.url()), &args).0
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// (pupil, date, kind, lessons, version) of a pupil's live records.
async fn live(store: &Store, pupil: &str) -> Vec<(String, String, u32, u64)> {
    store
        .pupil_records(pupil, d("2026-01-01"), d("2026-12-31"))
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.date.to_string(), r.kind.as_str().to_string(), r.lessons, r.version))
        .collect()
}

fn criteria(findings: &[tilstede::domain::Finding]) -> Vec<(String, String)> {
    findings
        .iter()
        .map(|f| (f.pupil.clone(), f.criterion.clone()))
        .collect()
}

#[tokio::test]
async fn corrected_files_replace_older_files_do_not() {
    for store in store_backends().await {
        let dir = tempfile::tempdir().unwrap();
        let first = [
            event("p1", "s1", "2026-03-02", "Unexcused Absence", None),
            event("p1", "s1", "2026-03-03", "Excused Absence", None),
            event("p2", "s1", "2026-03-04", "Excused Absence", None),
        ];
        let file = write(dir.path(), "a.xml", &first, 1_000_000);
        let out = import(&store, &file, &[]);
        assert!(out.contains("3 poster lest, 3 nye eller endret, 0 uendret"), "{out}");
        // The version is the file's modification time.
        assert_eq!(
            live(&store, "p1").await,
            [
                ("2026-03-02".into(), "day".into(), 1, 1_000_000),
                ("2026-03-03".into(), "day".into(), 1, 1_000_000)
            ]
        );
        assert_eq!(
            criteria(&store.findings(None).await.unwrap()),
            [("p1".into(), "invalid-absence".into())]
        );

        // The same file again: nothing changes, nobody is re-evaluated.
        let out = import(&store, &file, &[]);
        assert!(out.contains("3 poster lest, 0 nye eller endret, 3 uendret"), "{out}");
        assert!(out.contains("0 elever vurdert på nytt"), "{out}");

        // A corrected export, newer: p1's unexcused day was half a day.
        let mut corrected = first.clone();
        corrected[0] = event("p1", "s1", "2026-03-02", "Unexcused Absence", Some("0.5"));
        let newer = write(dir.path(), "b.xml", &corrected, 2_000_000);
        let out = import(&store, &newer, &[]);
        assert!(out.contains("3 poster lest, 3 nye eller endret, 0 uendret"), "{out}");
        assert_eq!(
            live(&store, "p1").await[0],
            ("2026-03-02".into(), "lesson".into(), 3, 2_000_000)
        );

        // An older export arriving late cannot undo the correction.
        let older = write(dir.path(), "c.xml", &first, 1_500_000);
        let out = import(&store, &older, &[]);
        assert!(out.contains("3 poster lest, 0 nye eller endret, 3 uendret"), "{out}");
        assert_eq!(
            live(&store, "p1").await[0],
            ("2026-03-02".into(), "lesson".into(), 3, 2_000_000)
        );

        // The flag overrides the modification time.
        let out = import(&store, &older, &["--version-stamp", "3000000"]);
        assert!(out.contains("3 nye eller endret"), "{out}");
        assert_eq!(
            live(&store, "p1").await[0],
            ("2026-03-02".into(), "day".into(), 1, 3_000_000)
        );
        assert_eq!(store.record_count().await.unwrap(), (3, 0));
        store.close().await;
    }
}

#[tokio::test]
async fn snapshot_tombstones_what_the_export_no_longer_has() {
    for store in store_backends().await {
        let dir = tempfile::tempdir().unwrap();
        let first = [
            event("p1", "s1", "2026-03-02", "Unexcused Absence", None),
            event("p1", "s1", "2026-03-03", "Unexcused Absence", None),
            event("p2", "s1", "2026-03-10", "Unexcused Absence", None),
            // Another school, and a date before the later export's range.
            event("p3", "s2", "2026-03-05", "Unexcused Absence", None),
            event("p4", "s1", "2026-02-02", "Unexcused Absence", None),
        ];
        let file = write(dir.path(), "a.xml", &first, 1_000_000);
        import(&store, &file, &["--snapshot"]);
        assert_eq!(store.record_count().await.unwrap(), (5, 0));
        let events_before = store.finding_events_after(0, 1000).await.unwrap().len();

        // School s1's export for March: p1's absence was excused after all
        // (a new category is a new Ed-Fi event), p2's record is gone.
        let second = [
            event("p1", "s1", "2026-03-02", "Excused Absence", None),
            event("p1", "s1", "2026-03-03", "Excused Absence", None),
            event("p5", "s1", "2026-03-20", "Excused Absence", None),
        ];
        let snap = write(dir.path(), "b.xml", &second, 2_000_000);
        let out = import(&store, &snap, &["--snapshot"]);
        assert!(out.contains("1 skole "), "{out}");
        assert!(out.contains("3 poster som mangler i filen, er slettet"), "{out}");
        // p1's two unexcused days and p2's day are tombstones; p3 (other
        // school) and p4 (before the export's first date) are untouched.
        assert_eq!(store.record_count().await.unwrap(), (5, 3));
        let mut findings = criteria(&store.findings(None).await.unwrap());
        findings.sort();
        assert_eq!(
            findings,
            [
                ("p3".into(), "invalid-absence".into()),
                ("p4".into(), "invalid-absence".into())
            ]
        );
        let cleared: Vec<String> = store
            .finding_events_after(0, 1000)
            .await
            .unwrap()
            .into_iter()
            .skip(events_before)
            .filter_map(|(_, c)| match c {
                FindingChange::Cleared { finding } => Some(finding.pupil),
                _ => None,
            })
            .collect();
        assert_eq!(cleared, ["p1", "p2"]);

        // The same snapshot again changes nothing.
        let out = import(&store, &snap, &["--snapshot"]);
        assert!(out.contains("0 nye eller endret"), "{out}");
        assert!(out.contains("0 poster som mangler i filen, er slettet"), "{out}");
        assert!(out.contains("0 elever vurdert på nytt"), "{out}");

        // An older snapshot cannot remove newer records nor revive tombstones.
        let out = import(&store, &file, &["--snapshot"]);
        assert!(out.contains("0 poster som mangler i filen, er slettet"), "{out}");
        assert_eq!(store.record_count().await.unwrap(), (5, 3));

        // A newer export that has p2's record again brings it back.
        let third = [
            second.as_slice(),
            &[event("p2", "s1", "2026-03-10", "Unexcused Absence", None)],
        ]
        .concat();
        let again = write(dir.path(), "c.xml", &third, 3_000_000);
        let out = import(&store, &again, &["--snapshot"]);
        assert!(out.contains("0 poster som mangler i filen, er slettet"), "{out}");
        assert_eq!(store.record_count().await.unwrap(), (6, 2));
        store.close().await;
    }
}

#[test]
fn version_stamps_are_refused_where_records_carry_versions() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.jsonl");
    std::fs::write(&file, "").unwrap();
    let out = tilstede(
        &dir.path().join("t.db"),
        &["import", "--snapshot", file.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("«jsonl» har versjoner"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (help, _) = tilstede_ok(&dir.path().join("t.db"), &["import", "--help"]);
    assert!(help.contains("--snapshot") && help.contains("øyeblikksbilde"), "{help}");
}
