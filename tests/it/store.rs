//! The store suite, run against SQLite and (when configured) PostgreSQL.

use crate::support::store_backends;
use chrono::NaiveDate;
use tilstede::domain::{AbsenceRecord, Fault, Kind, RejectCode, Validity};
use tilstede::rules::RuleSet;
use tilstede::store::{FindingChange, QuarantineEntry};
use tilstede::synthetic::Municipality;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn rec(id: &str, pupil: &str, date: &str, kind: Kind, validity: Validity, version: u64) -> AbsenceRecord {
    AbsenceRecord {
        source: "s".into(),
        id: id.into(),
        version,
        pupil: pupil.into(),
        school: "k".into(),
        date: d(date),
        kind,
        lessons: 1,
        minutes: None,
        validity,
        reason: None,
        deleted: false,
        subject: None,
        period: None,
        extensions: serde_json::json!({"source_code": "X"}).as_object().unwrap().clone(),
    }
}

/// `n` missed lessons with ids `{prefix}0…`, 20 per pupil on 20 school days,
/// pupil by pupil as an export comes.
fn lessons_by_pupil(prefix: &str, n: usize) -> Vec<AbsenceRecord> {
    (0..n)
        .map(|i| {
            let day = format!("2026-03-{:02}", 2 + i % 20);
            let (id, pupil) = (format!("{prefix}{i}"), format!("p{}", i / 20));
            rec(&id, &pupil, &day, Kind::Lesson, Validity::Invalid, 1)
        })
        .collect()
}

/// The store backends, and SQLite in memory (which writes through sqlx
/// where a SQLite file uses its direct connection).
async fn every_store() -> Vec<tilstede::store::Store> {
    let mut stores = store_backends().await;
    stores.push(tilstede::store::Store::open(":memory:").await.unwrap());
    stores
}

#[tokio::test]
async fn upsert_is_idempotent_and_versioned() {
    for store in store_backends().await {
        let a1 = rec("a", "p1", "2026-03-02", Kind::Day, Validity::Invalid, 1);
        let b1 = rec("b", "p2", "2026-03-02", Kind::Late, Validity::Valid, 1);
        let s = store.ingest(&[a1.clone(), b1.clone()], &[]).await.unwrap();
        assert_eq!((s.changed, s.unchanged), (2, 0), "{:?}", store.backend());
        let s = store.ingest(&[a1.clone(), b1.clone()], &[]).await.unwrap();
        assert_eq!((s.changed, s.unchanged), (0, 2));
        // Same key twice in one batch: the higher version wins.
        let a2 = AbsenceRecord {
            version: 2,
            validity: Validity::Valid,
            ..a1.clone()
        };
        let s = store.ingest(&[a2.clone(), a1.clone()], &[]).await.unwrap();
        assert_eq!(s.changed, 1);
        let got = store
            .pupil_records("p1", d("2026-01-01"), d("2026-12-31"))
            .await
            .unwrap();
        assert_eq!(got, std::slice::from_ref(&a2));
        // A tombstone without fields removes it; an older version cannot bring it back.
        let gone = AbsenceRecord::from_json_str(r#"{"source":"s","id":"a","version":2,"deleted":true}"#).unwrap();
        assert_eq!(store.ingest(&[gone], &[]).await.unwrap().changed, 1);
        assert_eq!(store.ingest(std::slice::from_ref(&a1), &[]).await.unwrap().changed, 0);
        assert!(
            store
                .pupil_records("p1", d("2026-01-01"), d("2026-12-31"))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.record_count().await.unwrap(), (1, 1));
        // A newer version revives it.
        let a3 = AbsenceRecord { version: 3, ..a1 };
        assert_eq!(store.ingest(&[a3], &[]).await.unwrap().changed, 1);
        assert_eq!(store.record_count().await.unwrap(), (2, 0));
    }
}

#[tokio::test]
async fn quarantine_keeps_rejects_once() {
    for store in store_backends().await {
        let q = QuarantineEntry::new(
            Some("s".into()),
            "f.jsonl:3",
            Fault::new(RejectCode::UnknownCode, "kind"),
            "{\"kind\":\"x\"}",
        );
        store.ingest(&[], std::slice::from_ref(&q)).await.unwrap();
        store.ingest(&[], std::slice::from_ref(&q)).await.unwrap();
        assert_eq!(store.quarantine_count().await.unwrap(), 1);
        // Without keep_raw the input itself is not kept.
        let kept = QuarantineEntry {
            raw: String::new(),
            ..q.clone()
        };
        assert_eq!(store.quarantined(10).await.unwrap()[0].entry, kept);
    }
}

#[tokio::test]
async fn refresh_touches_only_changed_pupils() {
    let set = RuleSet::preset("baerum").unwrap();
    let as_of = d("2026-03-31");
    for store in store_backends().await {
        let records: Vec<_> = (0..50)
            .map(|i| {
                rec(
                    &format!("r{i}"),
                    &format!("p{}", i % 10),
                    "2026-03-02",
                    Kind::Lesson,
                    Validity::Invalid,
                    1,
                )
            })
            .collect();
        store.ingest(&records, &[]).await.unwrap();
        let r = store.refresh_findings(&set, as_of).await.unwrap();
        assert!(r.full);
        assert_eq!(r.pupils, 10);
        assert_eq!(r.changes.len(), 10);
        // Nothing changed: nothing recomputed.
        let r = store.refresh_findings(&set, as_of).await.unwrap();
        assert_eq!((r.pupils, r.full), (0, false));
        // One pupil's record becomes valid: only that pupil, and its finding updates.
        let fix = AbsenceRecord {
            version: 2,
            validity: Validity::Valid,
            ..records[3].clone()
        };
        store.ingest(&[fix], &[]).await.unwrap();
        let r = store.refresh_findings(&set, as_of).await.unwrap();
        assert_eq!(r.pupils, 1);
        assert!(
            matches!(&r.changes[..], [FindingChange::Updated { finding }] if finding.pupil == "p3" && finding.evidence.len() == 4)
        );
        // Events are durable and ordered.
        let events = store.finding_events_after(0, 100).await.unwrap();
        assert_eq!(events.len(), 11);
        assert!(events.windows(2).all(|w| w[0].0 < w[1].0));
        // A new as-of date recomputes everyone.
        let r = store.refresh_findings(&set, d("2026-07-01")).await.unwrap();
        assert!(r.full);
        assert_eq!(
            r.changes
                .iter()
                .filter(|c| matches!(c, FindingChange::Cleared { .. }))
                .count(),
            10
        );
        assert!(store.findings(None).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn roster_round_trip() {
    for store in store_backends().await {
        let m = Municipality::generate(120, 2, 3);
        let roster = m.roster(Some("@{username}:example.org"));
        store.upsert_roster(&roster).await.unwrap();
        store.upsert_roster(&roster).await.unwrap();
        let p = &roster.pupils[7];
        let ctx = store.pupil_context(&p.id).await.unwrap().expect("on roster");
        assert_eq!(&ctx.pupil, p);
        assert_eq!(ctx.class.as_ref().map(|c| c.id.clone()), p.class.clone());
        assert_eq!(ctx.contact_teachers.len(), 1);
        let teacher = &ctx.contact_teachers[0];
        assert!(teacher.matrix_id.as_deref().unwrap().ends_with(":example.org"));
        assert_eq!(
            store
                .staff_by_matrix_id(teacher.matrix_id.as_deref().unwrap())
                .await
                .unwrap()[0]
                .id,
            teacher.id
        );
        assert_eq!(store.schools().await.unwrap().len(), 2);
        assert!(store.pupil_context("nobody").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn one_leader_at_a_time_on_postgres() {
    let Some(server) = crate::support::postgres_url() else {
        return;
    };
    let a = crate::support::fresh_postgres(&server).await;
    // A second replica: another pool on the same database.
    let db_url = a.url().to_string();
    let b = tilstede::store::Store::open(&db_url).await.unwrap();
    let lead = a.try_lead().await.unwrap().expect("first replica leads");
    assert!(b.try_lead().await.unwrap().is_none(), "second replica must wait");
    lead.release().await;
    let mut lead_b = b.try_lead().await.unwrap().expect("second replica takes over");
    assert!(lead_b.still_held().await);
    assert!(a.try_lead().await.unwrap().is_none());
    // A replica that dies frees leadership: its session ends with it.
    drop(lead_b);
    let mut again = None;
    for _ in 0..50 {
        again = a.try_lead().await.unwrap();
        if again.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(again.is_some());
    b.close().await;
}

/// Several processes opening one fresh SQLite file at once (an import and a
/// status probe, say) all get a migrated store: none fails on a migration
/// the other applied first.
#[tokio::test]
async fn concurrent_opens_of_a_fresh_sqlite_store_all_succeed() {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("fresh{round}.db"));
        let path = path.to_str().unwrap().to_string();
        let opens: Vec<_> = (0..6)
            .map(|_| {
                let path = path.clone();
                tokio::spawn(async move { tilstede::store::Store::open(&path).await })
            })
            .collect();
        for open in opens {
            let store = open.await.unwrap().unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(store.record_count().await.unwrap(), (0, 0));
            store.close().await;
        }
    }
}

/// The bulk writer (a direct connection on a SQLite file, sqlx elsewhere)
/// stores what `ingest` would: the same counts, quarantine kept once, and
/// only the pupils whose records changed queued for re-evaluation, also the
/// pupil a record moved away from.
#[tokio::test]
async fn bulk_writer_counts_and_marks_like_ingest() {
    let set = RuleSet::preset("baerum").unwrap();
    let as_of = d("2026-03-31");
    let stores = every_store().await;
    for store in stores {
        let backend = format!("{:?} {}", store.backend(), store.url().starts_with(':'));
        let batch: Vec<_> = (0..30)
            .map(|i| {
                rec(
                    &format!("b{i}"),
                    &format!("q{}", i % 6),
                    "2026-03-03",
                    Kind::Lesson,
                    Validity::Invalid,
                    1,
                )
            })
            .collect();
        let bad = QuarantineEntry::new(
            Some("s".into()),
            "f.xml:9:3",
            Fault::new(RejectCode::MissingField, "EventDate"),
            "<x/>",
        );
        let mut w = store.bulk_writer();
        // A key twice in one batch: the higher version wins, counted once.
        let mut first = batch.clone();
        first.push(AbsenceRecord {
            version: 2,
            lessons: 2,
            ..batch[0].clone()
        });
        assert_eq!(w.write(first, vec![bad.clone()]).await.unwrap(), None, "{backend}");
        let stats = w.commit().await.unwrap().unwrap();
        assert_eq!(
            (stats.received, stats.changed, stats.unchanged, stats.quarantined),
            (31, 30, 1, 1),
            "{backend}"
        );
        assert_eq!(w.commit().await.unwrap(), None, "{backend}");
        drop(w);
        assert_eq!(store.record_count().await.unwrap(), (30, 0), "{backend}");
        assert_eq!(
            store.pupil_records("q0", d("2026-03-01"), as_of).await.unwrap()[0].lessons,
            2
        );
        let r = store.refresh_findings(&set, as_of).await.unwrap();
        assert_eq!(r.pupils, 6, "{backend}");

        // The same again changes nothing and queues nobody; quarantine keeps one.
        let mut w = store.bulk_writer();
        w.write(batch.clone(), vec![bad.clone()]).await.unwrap();
        let stats = w.commit().await.unwrap().unwrap();
        assert_eq!((stats.changed, stats.unchanged), (0, 30), "{backend}");
        drop(w);
        assert_eq!(store.quarantine_count().await.unwrap(), 1, "{backend}");
        let r = store.refresh_findings(&set, as_of).await.unwrap();
        assert_eq!(r.pupils, 0, "{backend}");

        // A record moving from q1 to q5: both are re-evaluated.
        let moved = AbsenceRecord {
            version: 3,
            pupil: "q5".into(),
            ..batch[1].clone()
        };
        let mut w = store.bulk_writer();
        w.write(vec![moved], vec![]).await.unwrap();
        w.commit().await.unwrap();
        drop(w);
        let r = store.refresh_findings(&set, as_of).await.unwrap();
        assert_eq!(r.pupils, 2, "{backend}");

        // A tombstone naming no pupil: the pupil of the record it removes is
        // re-evaluated.
        let tombstone = AbsenceRecord::from_json_str(r#"{"source":"s","id":"b2","version":4,"deleted":true}"#).unwrap();
        let mut w = store.bulk_writer();
        w.write(vec![tombstone], vec![]).await.unwrap();
        assert_eq!(w.commit().await.unwrap().unwrap().changed, 1, "{backend}");
        drop(w);
        assert_eq!(store.record_count().await.unwrap(), (29, 1), "{backend}");
        let r = store.refresh_findings(&set, as_of).await.unwrap();
        assert_eq!(r.pupils, 1, "{backend}");

        // A write left uncommitted is rolled back when the writer is dropped.
        let mut w = store.bulk_writer();
        let extra = rec("late", "q9", "2026-03-04", Kind::Day, Validity::Invalid, 1);
        w.write(vec![extra], vec![]).await.unwrap();
        drop(w);
        assert_eq!(store.record_count().await.unwrap(), (29, 1), "{backend}");

        // Snapshot removals mark the pupils whose records they delete.
        let removed = store
            .tombstone_absent("s", &["k"], d("2026-03-03"), d("2026-03-03"), 9)
            .await
            .unwrap();
        assert_eq!(removed, 29, "{backend}");
        let r = store.refresh_findings(&set, as_of).await.unwrap();
        assert_eq!(r.pupils, 6, "{backend}");
        store.close().await;
    }
}

/// Large batches: the direct SQLite writer upserts many rows per statement;
/// its counts must stay exact and an unchanged statement must mark nobody,
/// like the row-by-row writers of the other backends.
#[tokio::test]
async fn bulk_writer_counts_many_rows_per_statement_exactly() {
    let set = RuleSet::preset("baerum").unwrap();
    let as_of = d("2026-03-31");
    let stores = every_store().await;
    for store in stores {
        let backend = format!("{:?} {}", store.backend(), store.url().starts_with(':'));
        // 10 pupils with 20 records each.
        let batch = lessons_by_pupil("m", 200);
        let mut w = store.bulk_writer();
        w.write(batch.clone(), vec![]).await.unwrap();
        let stats = w.commit().await.unwrap().unwrap();
        assert_eq!((stats.changed, stats.unchanged), (200, 0), "{backend}");
        drop(w);
        assert_eq!(store.record_count().await.unwrap(), (200, 0), "{backend}");
        assert_eq!(
            store.refresh_findings(&set, as_of).await.unwrap().pupils,
            10,
            "{backend}"
        );

        // Unchanged: nothing counted, nobody queued.
        let mut w = store.bulk_writer();
        w.write(batch.clone(), vec![]).await.unwrap();
        let stats = w.commit().await.unwrap().unwrap();
        assert_eq!((stats.changed, stats.unchanged), (0, 200), "{backend}");
        drop(w);
        assert_eq!(
            store.refresh_findings(&set, as_of).await.unwrap().pupils,
            0,
            "{backend}"
        );

        // One record of p7 corrected in the middle of the batch: counted
        // once; p7 is re-evaluated, and at most the pupils sharing its
        // statement (32 rows span at most three pupils here) with it.
        let mut again = batch.clone();
        again[150] = AbsenceRecord {
            version: 2,
            lessons: 3,
            ..batch[150].clone()
        };
        let mut w = store.bulk_writer();
        w.write(again, vec![]).await.unwrap();
        let stats = w.commit().await.unwrap().unwrap();
        assert_eq!((stats.changed, stats.unchanged), (1, 199), "{backend}");
        drop(w);
        let r = store.refresh_findings(&set, as_of).await.unwrap();
        assert!(
            (1..=3).contains(&r.pupils),
            "{backend}: {} pupils re-evaluated",
            r.pupils
        );
        let p7 = store.pupil_records("p7", d("2026-03-01"), as_of).await.unwrap();
        assert_eq!(p7.iter().map(|r| r.lessons).sum::<u32>(), 22, "{backend}");
        store.close().await;
    }
}

/// A bulk import's pages reach the database file without the importer
/// checkpointing inside its commits: a thread of the writer's does it.
#[tokio::test]
async fn bulk_import_pages_are_checkpointed_into_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = tilstede::store::Store::open(path.to_str().unwrap()).await.unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    let batch = lessons_by_pupil("c", 20_000);
    let mut w = store.bulk_writer();
    w.write(batch, vec![]).await.unwrap();
    assert_eq!(w.commit().await.unwrap().unwrap().changed, 20_000);
    // Nothing else writes (or checkpoints) from here on.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let now = std::fs::metadata(&path).unwrap().len();
        if now > before + 2_000_000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the database file stayed at {now} bytes (was {before}): the import was never checkpointed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(w);
    assert_eq!(store.record_count().await.unwrap(), (20_000, 0));
    store.close().await;
}

/// A refresh of many pupils (split over threads on a SQLite file) finds
/// exactly what the rule engine finds over the same records.
#[tokio::test]
async fn refresh_of_many_pupils_matches_the_engine() {
    let set = RuleSet::preset("baerum").unwrap();
    let year = 2025;
    let as_of = *Municipality::school_days(year).last().unwrap();
    let m = Municipality::generate(300, 3, 11);
    let records: Vec<AbsenceRecord> = m.absence(year, "gen").collect();
    let evaluator = tilstede::rules::Evaluator::new(&set, as_of);
    let mut by_pupil: std::collections::BTreeMap<&str, Vec<&AbsenceRecord>> = Default::default();
    for r in &records {
        by_pupil.entry(r.pupil.as_str()).or_default().push(r);
    }
    let mut expected: Vec<_> = by_pupil.iter().flat_map(|(p, rs)| evaluator.pupil(p, rs)).collect();
    expected.sort_by(|a, b| (&a.pupil, &a.rule).cmp(&(&b.pupil, &b.rule)));
    assert!(expected.len() > 20, "the generated year should raise findings");
    let stores = every_store().await;
    for store in stores {
        let backend = format!("{:?} {}", store.backend(), store.url().starts_with(':'));
        let items = records
            .iter()
            .cloned()
            .map(|r| Ok(tilstede::adapters::Parsed::Record(r)));
        tilstede::ingest::ingest_parallel(&store, items.collect::<Vec<_>>(), |_| {})
            .await
            .unwrap();
        let r = store.refresh_findings(&set, as_of).await.unwrap();
        assert_eq!(r.pupils as usize, by_pupil.len(), "{backend}");
        // A first refresh opens every finding; the changes kept are the
        // first ones of the event log.
        assert_eq!(
            (r.opened, r.updated, r.cleared),
            (expected.len() as u64, 0, 0),
            "{backend}"
        );
        let logged = store.finding_events_after(0, 1_000).await.unwrap();
        assert_eq!(r.changes.len(), expected.len().min(1_000), "{backend}");
        assert!(r.changes.iter().zip(&logged).all(|(c, (_, l))| c == l), "{backend}");
        let stored = store.findings(None).await.unwrap();
        assert_eq!(stored.len(), expected.len(), "{backend}");
        for (s, e) in stored.iter().zip(&expected) {
            assert_eq!(
                (&s.pupil, &s.rule, &s.evidence),
                (&e.pupil, &e.rule, &e.evidence),
                "{backend}"
            );
            assert_eq!(s.measured, e.measured, "{backend}");
        }
        store.close().await;
    }
}

/// A refresh on a SQLite file commits its batches without checkpointing
/// the log, on a connection of its own; the pool's connections must still
/// checkpoint, or the log would grow without bound under later writes.
#[tokio::test]
async fn refresh_leaves_the_pools_checkpoints_on() {
    let set = RuleSet::preset("baerum").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = tilstede::store::Store::open(dir.path().join("s.db").to_str().unwrap())
        .await
        .unwrap();
    store.ingest(&lessons_by_pupil("r", 2_000), &[]).await.unwrap();
    let r = store.refresh_findings(&set, d("2026-06-19")).await.unwrap();
    assert_eq!(r.pupils, 100);
    // Every connection the pool holds (at most four on a file).
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(store.pool().acquire().await.unwrap());
    }
    for conn in &mut held {
        let row = sqlx::query("PRAGMA wal_autocheckpoint")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(sqlx::Row::try_get::<i64, _>(&row, 0).unwrap(), 1000);
    }
}

/// Extension sets are stored once on SQLite (the row refers to its set) and
/// kept in the row on PostgreSQL; either way a record reads back with its
/// own extensions, through the bulk writer and the plain ingest alike, and
/// a row written with its JSON inline (before sets existed) still reads.
/// A set no record refers to any more is purged.
#[tokio::test]
async fn extension_sets_are_stored_once_and_purged_when_unused() {
    let ext = |v: serde_json::Value| v.as_object().unwrap().clone();
    let stores = every_store().await;
    for store in stores {
        let backend = format!("{:?} {}", store.backend(), store.url());
        let sqlite = store.backend() == tilstede::store::Backend::Sqlite;
        let mut records = lessons_by_pupil("e", 60);
        for (i, r) in records.iter_mut().enumerate() {
            r.extensions = match i % 3 {
                0 => ext(serde_json::json!({"source_code": "X"})),
                1 => ext(serde_json::json!({"source_code": "Y", "source_label": "Why"})),
                _ => Default::default(),
            };
        }
        let mut w = store.bulk_writer();
        w.write(records[..30].to_vec(), vec![]).await.unwrap();
        w.commit().await.unwrap();
        drop(w);
        store.ingest(&records[30..], &[]).await.unwrap();
        let read = |store: &tilstede::store::Store| {
            let store = store.clone();
            async move {
                let mut all = Vec::new();
                for p in 0..3 {
                    all.extend(
                        store
                            .pupil_records(&format!("p{p}"), d("2026-01-01"), d("2026-12-31"))
                            .await
                            .unwrap(),
                    );
                }
                all.sort_by(|a, b| a.id.cmp(&b.id));
                all
            }
        };
        let mut expected = records.clone();
        expected.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(read(&store).await, expected, "{backend}");
        let count = |sql: &'static str| {
            let pool = store.pool().clone();
            async move {
                let row = sqlx::query(sql).fetch_one(&pool).await.unwrap();
                sqlx::Row::try_get::<i64, _>(&row, 0).unwrap()
            }
        };
        let (sets, inline) = (
            count("SELECT COUNT(*) FROM record_extensions").await,
            count("SELECT COUNT(*) FROM records WHERE extensions IS NOT NULL").await,
        );
        if sqlite {
            assert_eq!((sets, inline), (2, 0), "{backend}");
        } else {
            assert_eq!((sets, inline), (0, 40), "{backend}");
        }

        // Every "Y" record corrected to "Z": the "Y" set is no longer used.
        let corrected: Vec<_> = records
            .iter()
            .filter(|r| r.extensions.get("source_code").is_some_and(|c| c == "Y"))
            .map(|r| AbsenceRecord {
                version: 2,
                extensions: ext(serde_json::json!({"source_code": "Z"})),
                ..r.clone()
            })
            .collect();
        assert_eq!(corrected.len(), 20);
        store.ingest(&corrected, &[]).await.unwrap();
        assert_eq!(
            store.purge_unused_extension_sets().await.unwrap(),
            u64::from(sqlite),
            "{backend}"
        );
        assert_eq!(store.purge_unused_extension_sets().await.unwrap(), 0, "{backend}");
        let now: Vec<_> = read(&store).await;
        assert_eq!(
            now.iter()
                .filter(|r| r.extensions.get("source_code").is_some_and(|c| c == "Z"))
                .count(),
            20,
            "{backend}"
        );
        assert!(now.iter().all(|r| r.extensions.get("source_code") != Some(&"Y".into())));

        // A row from before extension sets, its JSON in the row.
        sqlx::query(
            "INSERT INTO records (source, id, version, pupil, school, date, kind, lessons, minutes, validity, reason, deleted, extensions, updated_at) \
             VALUES ('s', 'old', 1, 'p9', 'k', '2026-03-02', 'lesson', 1, NULL, 'invalid', NULL, 0, '{\"source_code\":\"O\"}', '2026-03-02T00:00:00Z')",
        )
        .execute(store.pool())
        .await
        .unwrap();
        let old = store
            .pupil_records("p9", d("2026-01-01"), d("2026-12-31"))
            .await
            .unwrap();
        assert_eq!(old.len(), 1, "{backend}");
        assert_eq!(
            old[0].extensions,
            ext(serde_json::json!({"source_code": "O"})),
            "{backend}"
        );
    }
}

/// Migrations are numbered in ranges per area and can land out of order: a
/// store that lacks a lower-numbered migration than its highest gets it on
/// open, and a store holding a migration this binary does not know is refused.
#[tokio::test]
async fn a_missing_lower_migration_is_applied_and_an_unknown_one_refused() {
    for store in every_store().await {
        // Make the store look as if migration 4 had never run, though later
        // ones have.
        sqlx::raw_sql("DROP TABLE sync_state; DELETE FROM schema_migrations WHERE version = 4")
            .execute(store.pool())
            .await
            .unwrap();
        let url = store.url().to_string();
        if url.contains(":memory:") {
            continue;
        }
        let reopened = tilstede::store::Store::open(&url).await.unwrap();
        sqlx::query("SELECT COUNT(*) FROM sync_state")
            .fetch_one(reopened.pool())
            .await
            .expect("migration 4 applied again on open");
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (99999, 'x')")
            .execute(reopened.pool())
            .await
            .unwrap();
        match tilstede::store::Store::open(&url).await {
            Err(tilstede::store::StoreError::TooNew { found, .. }) => assert_eq!(found, 99999),
            other => panic!("expected TooNew, got {:?}", other.map(|_| ())),
        }
    }
}

/// The pool's SQLite connections commit as configured: FULL by default (a
/// 202 survives a power loss), NORMAL when IT chooses it.
#[tokio::test]
async fn sqlite_commits_in_the_configured_mode() {
    use sqlx::Row;
    use tilstede::store::{Store, Synchronous};
    let dir = tempfile::tempdir().unwrap();
    for (file, mode, want) in [
        ("full.db", None, 2i64),
        ("normal.db", Some(Synchronous::Normal), 1),
        ("explicit.db", Some(Synchronous::Full), 2),
    ] {
        let path = dir.path().join(file);
        let store = match mode {
            None => Store::open(path.to_str().unwrap()).await.unwrap(),
            Some(m) => Store::open_with(path.to_str().unwrap(), m).await.unwrap(),
        };
        // Every pooled connection, not only the first.
        let mut held = Vec::new();
        for _ in 0..4 {
            let mut conn = store.pool().acquire().await.unwrap();
            let got: i64 = sqlx::query("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap()
                .try_get(0)
                .unwrap();
            assert_eq!(got, want, "{file}");
            held.push(conn);
        }
        drop(held);
        store.close().await;
    }
}
