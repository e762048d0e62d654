//! What guards a push beyond its records: request ids seen before (replay
//! protection) and the per-source version counter of unversioned records.
//! Both are written in the push's own transaction, so a push is refused as a
//! replay only when the earlier one with its id was really stored, and a
//! version is spent only on a push that was kept.
//!
//! Pushes are written by one writer task per store, which takes every push
//! waiting at that moment into one transaction (group commit): under many
//! concurrent pushes the store sees a few larger transactions instead of a
//! queue of connections polling for SQLite's one write lock, and a small
//! push waits for at most the batch in progress, in arrival order. On
//! SQLite the writer also takes the store's write lane, which the findings
//! refresh takes per batch, so neither can hold the file for long while the
//! other waits.
//!
//! On SQLite a group is written on a connection of the writer's own
//! (rusqlite, on a blocking thread), pupil keys included: through sqlx every
//! statement and every returned row is a hand-over to sqlx's worker thread,
//! which made a group of 2,000 records take 250–750 ms and a one-record post
//! wait that long behind it (`bench http`). The connection commits with the
//! store's [`Synchronous`] mode, so a 202 is as durable as before.

use super::records::write_batch;
use super::{Backend, IngestStats, QuarantineEntry, Store, StoreError, Synchronous};
use crate::domain::AbsenceRecord;
use sqlx::Row;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Records written in one group transaction at most (beyond its first
/// push): a push that arrives while one is written waits for no more than
/// this.
const GROUP_RECORDS: usize = 1_000;
/// A push of at most this many records goes into the next group before
/// larger pushes that arrived earlier: a one-record post from one school
/// system does not wait behind another system's bulk upload.
const SMALL_PUSH: usize = 100;
/// Pushes queued for the writer before senders wait.
const QUEUE: usize = 256;

/// One push to store.
#[derive(Debug)]
pub struct Push<'a> {
    /// The source (from the URL).
    pub source: &'a str,
    /// The request id and the unix second after which it may be forgotten.
    pub request_id: Option<(&'a str, i64)>,
    /// `Some(now)` for records without versions of their own: they all get
    /// the source's next version, at least `now` (unix seconds, the clock of
    /// every other version stamp) and above every version given before.
    pub stamp_at_least: Option<u64>,
    /// The records.
    pub records: Vec<AbsenceRecord>,
    /// The rejected items.
    pub quarantine: &'a [QuarantineEntry],
}

/// What storing a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored; the version given to unversioned records, if any.
    Stored(IngestStats, Option<u64>),
    /// The request id was used before: nothing was stored.
    Replayed,
}

/// A push handed to the writer task.
struct Job {
    source: String,
    request_id: Option<(String, i64)>,
    stamp_at_least: Option<u64>,
    records: Vec<AbsenceRecord>,
    quarantine: Vec<super::records::QuarantineRow>,
    reply: oneshot::Sender<Result<PushOutcome, StoreError>>,
}

/// The writer task's handle, started on the first push.
#[derive(Debug, Default)]
pub(super) struct PushWriter {
    queue: std::sync::OnceLock<mpsc::Sender<Job>>,
}

impl Store {
    /// Whether `source` already sent a push with `request_id` (a cheap
    /// check before the body is read; [`Store::ingest_push`] decides).
    pub async fn push_seen(&self, source: &str, request_id: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 FROM push_requests WHERE source = $1 AND request_id = $2 AND expires_at >= $3")
                .bind(source)
                .bind(request_id)
                .bind(chrono::Utc::now().timestamp())
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    /// Stores a push in one transaction: its request id (refusing one seen
    /// before), its version (when stamped), its records and its quarantine.
    /// Pushes arriving together share the transaction (see the module
    /// documentation); each gets its own outcome.
    pub async fn ingest_push(&self, push: Push<'_>) -> Result<PushOutcome, StoreError> {
        let file = self.sqlite_file();
        let queue = self.pushes.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            // The task holds the pool, not the store: when the last store
            // handle is dropped the queue closes and the task ends.
            let writer = match file.clone() {
                Some(path) => Writer::Direct {
                    path,
                    synchronous: self.synchronous,
                    conn: None,
                },
                None => Writer::Pool(self.pool.clone(), self.backend),
            };
            tokio::spawn(write_pushes(writer, self.lane.clone(), rx));
            tx
        });
        let mut records = push.records;
        if file.is_none() {
            // The direct writer keys pupils inside its own transaction.
            self.key_pupils(&mut records).await?;
        }
        let (reply, answer) = oneshot::channel();
        let job = Job {
            source: push.source.to_string(),
            request_id: push.request_id.map(|(id, exp)| (id.to_string(), exp)),
            stamp_at_least: push.stamp_at_least,
            records,
            quarantine: self.quarantine_rows(push.quarantine),
            reply,
        };
        let stopped = || StoreError::Worker("the push writer stopped".into());
        queue.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The writer task: takes the next push and every push already waiting
/// (up to [`GROUP_RECORDS`] records), writes them in one transaction and
/// answers each. When the group transaction fails, each push is written
/// again on its own, so one bad push does not fail the others.
async fn write_pushes(mut writer: Writer, lane: Arc<tokio::sync::Mutex<()>>, mut rx: mpsc::Receiver<Job>) {
    let mut waiting: std::collections::VecDeque<Job> = std::collections::VecDeque::new();
    loop {
        if waiting.is_empty() {
            match rx.recv().await {
                Some(job) => waiting.push_back(job),
                None => return,
            }
        }
        while let Ok(job) = rx.try_recv() {
            waiting.push_back(job);
        }
        let group = next_group(&mut waiting);
        let started = std::time::Instant::now();
        let turn = writer.sqlite().then(|| lane.clone());
        let _turn = match &turn {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        let lane_wait = started.elapsed();
        let (mut group, written) = writer.write(group).await;
        tracing::debug!(
            pushes = group.len(),
            records = group.iter().map(|j| j.records.len()).sum::<usize>(),
            lane_wait_ms = lane_wait.as_secs_f64() * 1e3,
            write_ms = (started.elapsed() - lane_wait).as_secs_f64() * 1e3,
            "push group written"
        );
        match written {
            Ok(outcomes) => {
                for (job, outcome) in group.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(_) if group.len() > 1 => {
                for job in group {
                    let (mut one, outcome) = writer.write(vec![job]).await;
                    let job = one.remove(0);
                    let _ = job.reply.send(outcome.map(|mut o| o.remove(0)));
                }
            }
            Err(e) => {
                let job = group.remove(0);
                let _ = job.reply.send(Err(e));
            }
        }
    }
}

/// Takes the next group off `waiting`: the small pushes, when any are
/// waiting (a group of only those is written in a few milliseconds), else
/// the others in arrival order up to [`GROUP_RECORDS`] records (at least
/// one push). Pushes of one source keep their order, so their versions
/// follow it: a small push passes a large one only of another source.
fn next_group(waiting: &mut std::collections::VecDeque<Job>) -> Vec<Job> {
    let mut large_sources: Vec<&str> = Vec::new();
    let mut small = Vec::new();
    for (i, job) in waiting.iter().enumerate() {
        if job.records.len() > SMALL_PUSH {
            large_sources.push(&job.source);
        } else if !large_sources.contains(&job.source.as_str()) {
            small.push(i);
        }
    }
    if !small.is_empty() {
        let mut group = Vec::with_capacity(small.len());
        let mut rest = std::collections::VecDeque::with_capacity(waiting.len());
        for (i, job) in waiting.drain(..).enumerate() {
            if small.binary_search(&i).is_ok() {
                group.push(job);
            } else {
                rest.push_back(job);
            }
        }
        *waiting = rest;
        return group;
    }
    let mut group = Vec::new();
    let mut records = 0;
    let mut rest = std::collections::VecDeque::with_capacity(waiting.len());
    let mut held_back: Vec<String> = Vec::new();
    while let Some(job) = waiting.pop_front() {
        let fits = group.is_empty() || records + job.records.len() <= GROUP_RECORDS;
        if fits && !held_back.contains(&job.source) {
            records += job.records.len();
            group.push(job);
        } else {
            held_back.push(job.source.clone());
            rest.push_back(job);
        }
    }
    *waiting = rest;
    group
}

/// Where the writer task writes.
enum Writer {
    /// Through the pool (PostgreSQL).
    Pool(sqlx::AnyPool, Backend),
    /// On a SQLite connection of its own, opened at the first group.
    Direct {
        path: String,
        synchronous: Synchronous,
        conn: Option<rusqlite::Connection>,
    },
}

impl Writer {
    /// Whether the writer writes a SQLite file (and takes the lane).
    fn sqlite(&self) -> bool {
        matches!(self, Writer::Direct { .. } | Writer::Pool(_, Backend::Sqlite))
    }

    /// Writes `group` in one transaction; the group back and the outcome
    /// of each push in order.
    async fn write(&mut self, mut group: Vec<Job>) -> (Vec<Job>, Result<Vec<PushOutcome>, StoreError>) {
        match self {
            Writer::Pool(pool, backend) => {
                let outcome = write_group(pool, *backend, &mut group).await;
                (group, outcome)
            }
            Writer::Direct {
                path,
                synchronous,
                conn,
            } => {
                let (path, synchronous, taken) = (path.clone(), *synchronous, conn.take());
                let done = tokio::task::spawn_blocking(move || {
                    let mut c = match taken {
                        Some(c) => c,
                        None => match open_direct(&path, synchronous) {
                            Ok(c) => c,
                            Err(e) => return (None, group, Err(e)),
                        },
                    };
                    let outcome = write_group_direct(&mut c, &mut group);
                    (Some(c), group, outcome)
                })
                .await;
                match done {
                    Ok((c, group, outcome)) => {
                        *conn = c;
                        (group, outcome)
                    }
                    // The blocking task panicked: the group went with it, and
                    // its pushes' senders see the writer gone.
                    Err(e) => (Vec::new(), Err(StoreError::Worker(e.to_string()))),
                }
            }
        }
    }
}

/// The direct writer's connection, committing like the pool does.
fn open_direct(path: &str, synchronous: Synchronous) -> Result<rusqlite::Connection, StoreError> {
    let conn = super::direct::connect(path)?;
    conn.execute_batch(synchronous.pragma())?;
    Ok(conn)
}

/// Forgets request ids past their expiry.
const PURGE_REQUESTS: &str = "DELETE FROM push_requests WHERE expires_at < $1";
/// Keeps a request id; changes no row when the source used it before.
const INSERT_REQUEST: &str = "INSERT INTO push_requests (source, request_id, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (source, request_id) DO NOTHING";
/// The source's next version: one above the last, at least `$2`.
const NEXT_VERSION: &str = "INSERT INTO source_versions (source, last_version) VALUES ($1, $2) \
     ON CONFLICT (source) DO UPDATE SET last_version = CASE \
       WHEN source_versions.last_version + 1 > excluded.last_version THEN source_versions.last_version + 1 \
       ELSE excluded.last_version END \
     RETURNING last_version";

/// [`write_group`] on the direct SQLite connection: pupil keys, request
/// ids, versions, records and quarantine of every push in one transaction.
fn write_group_direct(conn: &mut rusqlite::Connection, group: &mut [Job]) -> Result<Vec<PushOutcome>, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let now = chrono::Utc::now().timestamp();
    if group.iter().any(|j| j.request_id.is_some()) {
        tx.prepare_cached(PURGE_REQUESTS)?.execute([now])?;
    }
    let mut sets = super::direct::ExtensionSets::default();
    let mut keys = std::collections::HashMap::new();
    let mut outcomes = Vec::with_capacity(group.len());
    for job in group.iter_mut() {
        if let Some((id, expires_at)) = &job.request_id {
            let inserted = tx
                .prepare_cached(INSERT_REQUEST)?
                .execute(rusqlite::params![job.source, id, expires_at])?;
            if inserted == 0 {
                outcomes.push(PushOutcome::Replayed);
                continue;
            }
        }
        let mut version = None;
        if let Some(floor) = job.stamp_at_least {
            let floor = i64::try_from(floor).unwrap_or(i64::MAX);
            let v: i64 = tx
                .prepare_cached(NEXT_VERSION)?
                .query_row(rusqlite::params![job.source, floor], |r| r.get(0))?;
            version = Some(stamp(&mut job.records, v)?);
        }
        super::identity::key_pupils_direct(&tx, &mut keys, &mut job.records)?;
        let stats = super::direct::write_rows(&tx, &mut sets, &job.records, &job.quarantine)?;
        outcomes.push(PushOutcome::Stored(stats, version));
    }
    tx.commit()?;
    Ok(outcomes)
}

/// Gives `records` the version `v` the source's counter handed out.
fn stamp(records: &mut [AbsenceRecord], v: i64) -> Result<u64, StoreError> {
    let v = u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("source_versions «{v}»")))?;
    for r in records {
        r.version = v;
    }
    Ok(v)
}

/// Writes `group` in one transaction; the outcome of each push in order.
async fn write_group(
    pool: &sqlx::AnyPool,
    backend: Backend,
    group: &mut [Job],
) -> Result<Vec<PushOutcome>, StoreError> {
    let mut tx = match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => pool.begin().await?,
    };
    let now = chrono::Utc::now().timestamp();
    if group.iter().any(|j| j.request_id.is_some()) {
        sqlx::query(PURGE_REQUESTS).bind(now).execute(&mut *tx).await?;
    }
    let mut outcomes = Vec::with_capacity(group.len());
    for job in group.iter_mut() {
        if let Some((id, expires_at)) = &job.request_id {
            let inserted = sqlx::query(INSERT_REQUEST)
                .bind(job.source.as_str())
                .bind(id.as_str())
                .bind(*expires_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if inserted == 0 {
                // Nothing of this push is written.
                outcomes.push(PushOutcome::Replayed);
                continue;
            }
        }
        let mut version = None;
        if let Some(floor) = job.stamp_at_least {
            let floor = i64::try_from(floor).unwrap_or(i64::MAX);
            let v: i64 = sqlx::query(NEXT_VERSION)
                .bind(job.source.as_str())
                .bind(floor)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            version = Some(stamp(&mut job.records, v)?);
        }
        let stats = write_batch(backend, &mut tx, &job.records, &job.quarantine).await?;
        outcomes.push(PushOutcome::Stored(stats, version));
    }
    tx.commit().await?;
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, kind: &str) -> AbsenceRecord {
        AbsenceRecord::from_json_str(&format!(
            r#"{{"source":"s","id":"{id}","pupil":"p","school":"k","date":"2026-12-01","kind":"{kind}","validity":"invalid"}}"#
        ))
        .unwrap()
    }

    async fn stored(store: &Store) -> Vec<(String, u64, String)> {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        store
            .pupil_records("p", day, day)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.id, r.version, r.kind.as_str().to_string()))
            .collect()
    }

    /// Two unversioned pushes in the same second: the later one (a
    /// correction) gets the higher version and wins.
    #[tokio::test]
    async fn a_correction_in_the_same_second_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s.db").to_str().unwrap()).await.unwrap();
        let now = 1_800_000_000;
        let push = |kind: &str| Push {
            source: "s",
            request_id: None,
            stamp_at_least: Some(now),
            records: vec![record("r1", kind)],
            quarantine: &[],
        };
        let first = store.ingest_push(push("day")).await.unwrap();
        assert!(matches!(first, PushOutcome::Stored(_, Some(v)) if v == now));
        let second = store.ingest_push(push("late")).await.unwrap();
        assert!(matches!(second, PushOutcome::Stored(s, Some(v)) if v == now + 1 && s.changed == 1));
        assert_eq!(stored(&store).await, [("r1".to_string(), now + 1, "late".to_string())]);
        // A later clock moves the counter forward; it never goes back.
        let later = store
            .ingest_push(Push {
                stamp_at_least: Some(now + 100),
                ..push("day")
            })
            .await
            .unwrap();
        assert!(matches!(later, PushOutcome::Stored(_, Some(v)) if v == now + 100));
        let earlier_clock = store
            .ingest_push(Push {
                stamp_at_least: Some(now - 100),
                ..push("late")
            })
            .await
            .unwrap();
        assert!(matches!(earlier_clock, PushOutcome::Stored(_, Some(v)) if v == now + 101));
    }

    /// A request id is kept once: the second push with it stores nothing.
    #[tokio::test]
    async fn a_request_id_is_accepted_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s.db").to_str().unwrap()).await.unwrap();
        let expires = chrono::Utc::now().timestamp() + 600;
        let push = |id: &str, kind: &str| Push {
            source: "s",
            request_id: Some(("req-1", expires)),
            stamp_at_least: None,
            records: vec![record(id, kind)],
            quarantine: &[],
        };
        assert!(!store.push_seen("s", "req-1").await.unwrap());
        assert!(matches!(
            store.ingest_push(push("r1", "day")).await.unwrap(),
            PushOutcome::Stored(..)
        ));
        assert!(store.push_seen("s", "req-1").await.unwrap());
        assert!(!store.push_seen("other", "req-1").await.unwrap());
        assert_eq!(
            store.ingest_push(push("r2", "late")).await.unwrap(),
            PushOutcome::Replayed
        );
        assert_eq!(stored(&store).await.len(), 1, "the replay stored nothing");
        // Expired ids are forgotten.
        let old = Push {
            request_id: Some(("req-old", 1)),
            ..push("r3", "day")
        };
        store.ingest_push(old).await.unwrap();
        assert!(!store.push_seen("s", "req-old").await.unwrap(), "expired");
        let fresh = Push {
            request_id: Some(("req-2", expires)),
            ..push("r4", "day")
        };
        store.ingest_push(fresh).await.unwrap();
        let kept: i64 = sqlx::query("SELECT COUNT(*) FROM push_requests")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(kept, 2, "req-1 and req-2 kept, req-old purged");
    }

    /// Pushes sent at once are written together, yet each gets its own
    /// outcome: a repeated request id is refused once written, and every
    /// unversioned push its own version.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_pushes_share_transactions_but_not_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s.db").to_str().unwrap()).await.unwrap();
        let expires = chrono::Utc::now().timestamp() + 600;
        let mut tasks = Vec::new();
        for i in 0..40 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                // Pushes 0 and 1 share a request id.
                let id = format!("req-{}", i.max(1));
                store
                    .ingest_push(Push {
                        source: "s",
                        request_id: Some((&id, expires)),
                        stamp_at_least: Some(1_800_000_000),
                        records: vec![record(&format!("r{i}"), "day")],
                        quarantine: &[],
                    })
                    .await
                    .unwrap()
            }));
        }
        let mut versions = Vec::new();
        let mut replays = 0;
        for t in tasks {
            match t.await.unwrap() {
                PushOutcome::Stored(stats, Some(v)) => {
                    assert_eq!(stats.changed, 1);
                    versions.push(v);
                }
                PushOutcome::Replayed => replays += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(replays, 1);
        versions.sort_unstable();
        versions.dedup();
        assert_eq!(versions.len(), 39, "a version per stored push");
        assert_eq!(stored(&store).await.len(), 39);
    }

    /// The push writer's own connection commits like the pool: a push
    /// answered 202 is on disk (FULL) unless IT chose NORMAL.
    #[test]
    fn the_direct_writer_commits_in_the_configured_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA journal_mode = WAL;")
            .unwrap();
        let mode = |s| {
            open_direct(path.to_str().unwrap(), s)
                .unwrap()
                .query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))
                .unwrap()
        };
        assert_eq!(mode(Synchronous::Full), 2);
        assert_eq!(mode(Synchronous::Normal), 1);
    }

    /// Pupils get their keys inside the push's own transaction: two sources
    /// with one local id are two pupils, and a source's second push finds
    /// the key of its first.
    #[tokio::test]
    async fn the_direct_writer_keys_pupils_in_its_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s.db").to_str().unwrap()).await.unwrap();
        for (source, id) in [("a", "r1"), ("b", "r1"), ("a", "r2")] {
            let mut r = record(id, "day");
            r.source = source.into();
            let outcome = store
                .ingest_push(Push {
                    source,
                    request_id: None,
                    stamp_at_least: None,
                    records: vec![r],
                    quarantine: &[],
                })
                .await
                .unwrap();
            assert!(
                matches!(outcome, PushOutcome::Stored(s, None) if s.changed == 1),
                "{outcome:?}"
            );
        }
        let mut keys: Vec<(String, String)> = sqlx::query("SELECT source, pupil FROM pupil_keys ORDER BY source")
            .fetch_all(store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
            .collect();
        keys.dedup();
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert_ne!(keys[0].1, keys[1].1, "two sources' «p» are two children");
        let stored: i64 = sqlx::query("SELECT COUNT(*) FROM records")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(stored, 3);
    }

    /// A one-record push goes into the next group ahead of larger pushes
    /// of other sources; a source's own pushes keep their order.
    #[test]
    fn small_pushes_of_other_sources_go_first() {
        let job = |source: &str, n: usize| Job {
            source: source.into(),
            request_id: None,
            stamp_at_least: None,
            records: (0..n).map(|i| record(&format!("{source}{i}"), "day")).collect(),
            quarantine: Vec::new(),
            reply: oneshot::channel().0,
        };
        let mut waiting: std::collections::VecDeque<Job> = [
            job("bulk", 600),
            job("bulk", 600),
            job("bulk", 1),
            job("bulk", 600),
            job("probe", 1),
            job("other", 400),
        ]
        .into();
        let shape = |g: &[Job]| {
            g.iter()
                .map(|j| (j.source.clone(), j.records.len()))
                .collect::<Vec<_>>()
        };
        // The small push of another source goes alone, ahead of the rest;
        // bulk's own small push stays behind bulk's earlier large one.
        assert_eq!(shape(&next_group(&mut waiting)), [("probe".into(), 1)]);
        assert_eq!(
            shape(&next_group(&mut waiting)),
            [("bulk".into(), 600), ("other".into(), 400)]
        );
        assert_eq!(
            shape(&next_group(&mut waiting)),
            [("bulk".into(), 600), ("bulk".into(), 1)]
        );
        assert_eq!(shape(&next_group(&mut waiting)), [("bulk".into(), 600)]);
        assert!(waiting.is_empty());
    }
}
