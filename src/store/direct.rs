//! Bulk work on a SQLite file through a direct connection (rusqlite):
//! large imports and the record reads of a findings refresh.
//!
//! Bulk work spends most of its time handing values to and from the
//! database. Through sqlx every value is copied into shared buffers and
//! every statement is a round trip to sqlx's worker thread; here a prepared
//! statement is stepped on the caller's (blocking) thread. The SQL is the one
//! [`super::records`] uses, so both paths store and read exactly the same.

use super::StoreError;
use super::findings::{
    FindingChange, PUPILS_PER_BATCH, ROWS_PER_INSERT, Refresh, claim_sql, day_text, delete_findings_sql, evaluate,
    finding_from_columns, finding_lists, insert_events_sql, insert_findings_sql, old_findings_sql, plan_batch,
};
use super::records::{
    BULK_CACHE_KIB, BulkProgress, DateText, EXTENSION_SET_INSERT, EXTENSION_SET_SELECT, IngestStats, QUARANTINE_INSERT,
    QuarantineRow, RECORD_COLUMNS, dedupe, eval_records_sql, extension_digest, record_from_columns, upsert_sql,
};
use super::{Backend, now};
use crate::domain::{AbsenceRecord, Finding};
use crate::rules::Evaluator;
use rusqlite::{Connection, OptionalExtension, params};
use std::sync::Arc;
use std::time::Duration;

/// How long a write waits for another writer (the same as the pool's).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens a connection to the (already migrated) store file.
pub(super) fn connect(path: &str) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL is a property of the file, set when the store was opened.
    // Statement journals stay in memory: a multi-row upsert inside the bulk
    // transaction copies each page it changes to one, and as temporary
    // files they were written as much as the log itself (and held pupil
    // data outside the store). synchronous = NORMAL here, unlike the pool's
    // FULL: this connection writes bulk imports and findings refreshes,
    // which a power cut can at worst roll back to an earlier commit, and
    // which a re-import or the next refresh writes again.
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;")?;
    Ok(conn)
}

/// Brings the stored findings of a SQLite file up to date: batch by
/// batch, each in one transaction on a connection of the refresh's own, the
/// queued pupils are claimed, their records read and evaluated over the
/// cores ([`evaluate_pupils`]), and their findings replaced and the changes
/// logged. Adds the pupils evaluated and the changes to `refresh`.
///
/// The connection does not checkpoint inside its commits (each such
/// checkpoint syncs the file); the store's next writer does.
///
/// Each batch takes the store's write `lane` (when given) for its
/// transaction, so a push waiting for the lane gets in between batches.
pub(super) fn refresh(
    path: &str,
    evaluator: &Evaluator<'_>,
    mut refresh: Refresh,
    lane: Option<&tokio::sync::Mutex<()>>,
) -> Result<Refresh, StoreError> {
    let conn = connect(path)?;
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")?;
    let mut readers = Readers::new(path.to_string());
    let (from, to) = (day_text(evaluator.earliest()), day_text(evaluator.as_of()));
    loop {
        let _turn = lane.map(|l| l.blocking_lock());
        conn.execute_batch("BEGIN IMMEDIATE")?;
        match refresh_batch(&conn, &mut readers, evaluator, &from, &to) {
            Ok((claimed, evaluated, batch)) => {
                conn.execute_batch("COMMIT")?;
                refresh.pupils += evaluated;
                refresh.add(batch);
                // A short batch means the queue was drained.
                if claimed < PUPILS_PER_BATCH {
                    return Ok(refresh);
                }
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
}

/// One batch of [`refresh`] inside its open transaction: the pupils
/// claimed, those evaluated, and the changes.
fn refresh_batch(
    conn: &Connection,
    readers: &mut Readers,
    evaluator: &Evaluator<'_>,
    from: &str,
    to: &str,
) -> Result<(usize, u64, Vec<FindingChange>), StoreError> {
    // Claiming first takes the write lock before anything is read, so no
    // import can slip in between read and write.
    let claimed: Vec<String> = conn
        .prepare_cached(&claim_sql())?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    // Tombstones for records never seen have no pupil.
    let pupils: Vec<String> = claimed.iter().filter(|p| !p.is_empty()).cloned().collect();
    if pupils.is_empty() {
        return Ok((claimed.len(), 0, Vec::new()));
    }
    let evaluated = evaluate_pupils(readers, evaluator, &pupils, from, to)?;
    let n = pupils.len();
    let old = {
        let mut select = conn.prepare_cached(&old_findings_sql(Backend::Sqlite, n))?;
        let mut rows = select.query(rusqlite::params_from_iter(&pupils))?;
        let mut old = Vec::new();
        while let Some(row) = rows.next()? {
            old.push(finding_from_columns(row)?);
        }
        old
    };
    let stamp = now();
    let plan = plan_batch(old, evaluated, &stamp);
    conn.prepare_cached(&delete_findings_sql(Backend::Sqlite, n))?
        .execute(rusqlite::params_from_iter(&pupils))?;
    for chunk in plan.rows.chunks(ROWS_PER_INSERT) {
        let mut insert = conn.prepare_cached(&insert_findings_sql(Backend::Sqlite, chunk.len()))?;
        let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(chunk.len() * 13);
        for (f, first_seen) in chunk {
            use rusqlite::types::Value::{Real, Text};
            let [evidence, unclassified] = finding_lists(f);
            values.extend([
                Text(f.pupil.clone()),
                Text(f.rule.clone()),
                Text(f.criterion.clone()),
                Text(f.school.clone()),
                Text(day_text(f.window.from)),
                Text(day_text(f.window.to)),
                Real(f.measured),
                Real(f.threshold),
                Text(f.unit.clone()),
                Text(evidence),
                Text(unclassified),
                Text(f.explanation.clone()),
                Text(first_seen.clone()),
            ]);
        }
        insert.execute(rusqlite::params_from_iter(values))?;
    }
    // In order, so the event log's sequence follows the changes.
    for chunk in plan.changes.chunks(ROWS_PER_INSERT) {
        let mut insert = conn.prepare_cached(&insert_events_sql(Backend::Sqlite, chunk.len()))?;
        let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(chunk.len() * 5);
        for c in chunk {
            use rusqlite::types::Value::Text;
            let f = c.finding();
            values.extend([
                Text(f.pupil.clone()),
                Text(f.rule.clone()),
                Text(c.kind().to_string()),
                Text(serde_json::to_string(f).unwrap_or_default()),
                Text(stamp.clone()),
            ]);
        }
        insert.execute(rusqlite::params_from_iter(values))?;
    }
    Ok((claimed.len(), n as u64, plan.changes))
}

/// Read connections of a findings refresh, opened once per refresh and
/// kept across its batches (a fresh connection parses the schema again).
struct Readers {
    path: String,
    idle: Vec<Connection>,
}

impl Readers {
    /// Readers of the store file at `path`; connections open when needed.
    fn new(path: String) -> Readers {
        Readers { path, idle: Vec::new() }
    }

    fn take(&mut self) -> Result<Connection, StoreError> {
        match self.idle.pop() {
            Some(conn) => Ok(conn),
            None => connect(&self.path),
        }
    }
}

/// The live records of `pupils` dated `from..=to` (`YYYY-MM-DD`), without
/// extensions: what a findings refresh evaluates. Reads the last committed
/// state, which a refresh holding the write lock sees too.
fn records_for_evaluation(
    conn: &Connection,
    pupils: &[String],
    from: &str,
    to: &str,
) -> Result<Vec<AbsenceRecord>, StoreError> {
    let mut select = conn.prepare_cached(&eval_records_sql(Backend::Sqlite, pupils.len()))?;
    let values = pupils.iter().map(String::as_str).chain([from, to]);
    let mut rows = select.query(rusqlite::params_from_iter(values))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(record_from_columns(row, false)?);
    }
    Ok(out)
}

/// The findings of each of `pupils` (in that order), from their live
/// records dated `from..=to`: the pupils are split over the available cores,
/// each part read on its own connection and evaluated on its own thread.
fn evaluate_pupils(
    readers: &mut Readers,
    evaluator: &Evaluator<'_>,
    pupils: &[String],
    from: &str,
    to: &str,
) -> Result<Vec<Vec<Finding>>, StoreError> {
    let work = |conn: &Connection, part: &[String]| -> Result<Vec<Vec<Finding>>, StoreError> {
        let records = records_for_evaluation(conn, part, from, to)?;
        Ok(evaluate(evaluator, part, &records))
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    if threads == 1 || pupils.len() < PUPILS_PER_THREAD {
        // A few pupils (an HTTP push, say) are not worth a thread.
        let conn = readers.take()?;
        let out = work(&conn, pupils);
        readers.idle.push(conn);
        return out;
    }
    let part = pupils.len().div_ceil(threads).max(PUPILS_PER_THREAD);
    let mut parts = pupils.chunks(part);
    let first = parts.next().unwrap_or_default();
    let mut conns = Vec::new();
    for _ in 0..=parts.len() {
        conns.push(readers.take()?);
    }
    let out = std::thread::scope(|scope| {
        // The first part on this thread, the rest on threads of their own
        // (a connection is used by one thread at a time).
        let (mine, theirs) = conns.split_first_mut().expect("one connection per part");
        let workers: Vec<_> = parts
            .zip(theirs.iter_mut())
            .map(|(part, conn)| scope.spawn(move || work(conn, part)))
            .collect();
        let mut out = work(mine, first)?;
        for worker in workers {
            let part = worker
                .join()
                .map_err(|_| StoreError::Worker("vurderingstråden stoppet".into()))??;
            out.extend(part);
        }
        Ok(out)
    });
    readers.idle.extend(conns);
    out
}

/// A bulk writer's own connection and its open transaction.
pub(super) struct SqliteBulk {
    conn: Connection,
    progress: BulkProgress,
    /// The extension sets this transaction refers to.
    sets: ExtensionSets,
    /// Checkpoints and frees beside the writer.
    background: Background,
    /// Pupil keys this transaction looked up or assigned.
    keys: std::collections::HashMap<(String, String), String>,
}

impl SqliteBulk {
    /// Opens a connection to the (already migrated) store file.
    pub(super) fn open(path: &str) -> Result<SqliteBulk, StoreError> {
        let conn = connect(path)?;
        conn.execute_batch(&format!("PRAGMA cache_size = -{BULK_CACHE_KIB};"))?;
        // Checkpoints run beside the import instead of inside its commits.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")?;
        Ok(SqliteBulk {
            conn,
            progress: BulkProgress::default(),
            sets: ExtensionSets::default(),
            background: Background::start(path)?,
            keys: Default::default(),
        })
    }

    /// Writes a batch in the open transaction (opening one if needed);
    /// commits when [`BulkProgress::add`] says it is due. Returns the counts
    /// committed by this call, if any.
    pub(super) fn write(
        &mut self,
        records: Vec<AbsenceRecord>,
        quarantine: &[QuarantineRow],
    ) -> Result<Option<IngestStats>, StoreError> {
        if !self.progress.is_open() {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.progress.opened();
            // A set known from an earlier transaction may have been purged since.
            self.sets = ExtensionSets::default();
            self.keys.clear();
        }
        let mut records = records;
        super::identity::key_pupils_direct(&self.conn, &mut self.keys, &mut records)?;
        let stats = write_rows(&self.conn, &mut self.sets, &records, quarantine)?;
        self.background.free(records);
        if self.progress.add(stats) {
            return self.commit();
        }
        Ok(None)
    }

    /// Commits the open transaction; returns its counts (`None` if nothing was open).
    pub(super) fn commit(&mut self) -> Result<Option<IngestStats>, StoreError> {
        if !self.progress.is_open() {
            return Ok(None);
        }
        self.conn.execute_batch("COMMIT")?;
        self.background.checkpoint();
        Ok(self.progress.close())
    }
}

/// Writes records (upserts that keep the higher version), marks the pupils
/// of changed rows for re-evaluation and keeps the quarantine rows, in the
/// transaction open on `conn`. Records already carry pupil keys.
pub(super) fn write_rows(
    conn: &Connection,
    sets: &mut ExtensionSets,
    records: &[AbsenceRecord],
    quarantine: &[QuarantineRow],
) -> Result<IngestStats, StoreError> {
    let stamp = now();
    let mut changed = 0u64;
    let mut touched: Vec<String> = Vec::new();
    let (tombstones, live): (Vec<&AbsenceRecord>, Vec<&AbsenceRecord>) =
        dedupe(records).into_iter().partition(|r| r.deleted);
    {
        // Live records go [`ROWS_PER_UPSERT`] to a statement: a record is
        // stored under its own pupil, so a statement only needs to say
        // how many rows it changed, and the pupils of a statement that
        // changed any are marked (a few unchanged ones with them costs
        // only their re-evaluation).
        let mut upsert_many = conn.prepare_cached(&upsert_sql(Backend::Sqlite, ROWS_PER_UPSERT, false))?;
        let mut upsert_one = conn.prepare_cached(&upsert_sql(Backend::Sqlite, 1, false))?;
        let mut previous = None;
        for chunk in live.chunks(ROWS_PER_UPSERT) {
            let dates: Vec<DateText> = chunk.iter().map(|r| DateText::of(r)).collect();
            let mut extensions = Vec::with_capacity(chunk.len());
            for r in chunk {
                let id = sets.id_after(conn, previous, r)?;
                extensions.push(id);
                previous = Some((r, id));
            }
            let mut row = Vec::with_capacity(ROWS_PER_UPSERT * RECORD_COLUMNS);
            for ((r, date), ext) in chunk.iter().zip(&dates).zip(&extensions) {
                row.extend(record_values(r, date.as_str(), *ext, &stamp));
            }
            let n = if chunk.len() == ROWS_PER_UPSERT {
                upsert_many.execute(rusqlite::params_from_iter(&row))?
            } else {
                let mut n = 0;
                for values in row.chunks(RECORD_COLUMNS) {
                    n += upsert_one.execute(rusqlite::params_from_iter(values))?;
                }
                n
            };
            if n > 0 {
                changed += n as u64;
                for r in chunk {
                    if touched.last() != Some(&r.pupil) {
                        touched.push(r.pupil.clone());
                    }
                }
            }
        }
        // A tombstone may name no pupil and keeps the stored one, which
        // RETURNING reports.
        let mut upsert_tombstone = conn.prepare_cached(&upsert_sql(Backend::Sqlite, 1, true))?;
        for r in tombstones {
            let date = DateText::of(r);
            let ext = sets.id(conn, r)?;
            let values = record_values(r, date.as_str(), ext, &stamp);
            let mut rows = upsert_tombstone.query(rusqlite::params_from_iter(values.iter()))?;
            if let Some(row) = rows.next()? {
                changed += 1;
                touched.push(row.get(0)?);
            }
        }
    }
    touched.sort_unstable();
    touched.dedup();
    let mut mark =
        conn.prepare_cached("INSERT INTO dirty_pupils (pupil) VALUES ($1) ON CONFLICT (pupil) DO NOTHING")?;
    for pupil in &touched {
        mark.execute([pupil])?;
    }
    let mut keep = conn.prepare_cached(QUARANTINE_INSERT)?;
    for e in quarantine {
        keep.execute(params![
            e.source, e.location, e.code, e.field, e.reason, e.raw, e.digest, stamp
        ])?;
    }
    Ok(IngestStats::of_batch(
        records.len() as u64,
        changed,
        quarantine.len() as u64,
    ))
}

/// A thread beside a bulk writer, with a connection of its own, for work
/// that need not hold up the writer:
/// - it checkpoints the write-ahead log after each commit. SQLite would
///   otherwise checkpoint inside the commit that fills the log, on the
///   writer's thread: copying the pages into the database file and syncing
///   it took about a third of the writer's time. A passive checkpoint never
///   blocks the writer; the log is reused from its start once a checkpoint
///   has caught up;
/// - it frees written batches (a million records are some ten million
///   small allocations).
///
/// The thread ends once the writer is gone and its queue is done; nobody
/// waits for it (an interrupted checkpoint is harmless: the pages stay in
/// the log, where readers find them).
struct Background {
    jobs: std::sync::mpsc::SyncSender<Job>,
    /// A checkpoint is queued and not yet begun.
    checkpoint_queued: Arc<std::sync::atomic::AtomicBool>,
}

enum Job {
    Checkpoint,
    Free(Vec<AbsenceRecord>),
}

impl Background {
    fn start(path: &str) -> Result<Background, StoreError> {
        use std::sync::atomic::Ordering;
        let conn = connect(path)?;
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(BACKGROUND_QUEUE);
        let checkpoint_queued = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let queued = checkpoint_queued.clone();
        std::thread::Builder::new()
            .name("sqlite-bulk-background".into())
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    match job {
                        Job::Checkpoint => {
                            queued.store(false, Ordering::Release);
                            // A failed checkpoint leaves the pages in the
                            // log; the next one (or SQLite's own) retries.
                            let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);");
                        }
                        Job::Free(records) => drop(records),
                    }
                }
            })
            .map_err(|e| StoreError::Worker(e.to_string()))?;
        Ok(Background {
            jobs,
            checkpoint_queued,
        })
    }

    /// Asks for a checkpoint (one already queued covers this commit too).
    fn checkpoint(&self) {
        if !self.checkpoint_queued.swap(true, std::sync::atomic::Ordering::AcqRel) {
            let _ = self.jobs.send(Job::Checkpoint);
        }
    }

    /// Frees `records` on the background thread, or here when it is busy.
    fn free(&self, records: Vec<AbsenceRecord>) {
        let _ = self.jobs.try_send(Job::Free(records));
    }
}

/// The extension sets a bulk transaction refers to (see
/// [`super::records::extension_set`]), found once per transaction by their
/// JSON, which is written into one reused buffer. Callers skip the lookup
/// for a record whose extensions equal the previous record's (a source's
/// records mostly carry the same few codes).
#[derive(Default)]
pub(super) struct ExtensionSets {
    by_json: rustc_hash::FxHashMap<String, i64>,
    json: Vec<u8>,
}

impl ExtensionSets {
    /// The id of `r`'s extension set (`None` when it has none), added to the
    /// store if needed.
    fn id(&mut self, conn: &Connection, r: &AbsenceRecord) -> Result<Option<i64>, StoreError> {
        if r.extensions.is_empty() {
            return Ok(None);
        }
        self.json.clear();
        serde_json::to_writer(&mut self.json, &r.extensions)
            .map_err(|e| StoreError::Corrupt(format!("extensions: {e}")))?;
        let json = std::str::from_utf8(&self.json).map_err(|e| StoreError::Corrupt(format!("extensions: {e}")))?;
        if let Some(id) = self.by_json.get(json) {
            return Ok(Some(*id));
        }
        let digest = extension_digest(json);
        let find = || -> Result<Option<i64>, StoreError> {
            let mut select = conn.prepare_cached(EXTENSION_SET_SELECT)?;
            Ok(select.query_row([&digest], |row| row.get(0)).optional()?)
        };
        let id = match find()? {
            Some(id) => id,
            None => {
                conn.prepare_cached(EXTENSION_SET_INSERT)?
                    .execute(params![digest, json])?;
                find()?.ok_or_else(|| StoreError::Corrupt("record_extensions: settet mangler".into()))?
            }
        };
        self.by_json.insert(json.to_string(), id);
        Ok(Some(id))
    }

    /// [`Self::id`], reusing the id of `previous` (the record before `r`,
    /// with its id) when its extensions are the same.
    fn id_after(
        &mut self,
        conn: &Connection,
        previous: Option<(&AbsenceRecord, Option<i64>)>,
        r: &AbsenceRecord,
    ) -> Result<Option<i64>, StoreError> {
        match previous {
            Some((p, id)) if p.extensions == r.extensions => Ok(id),
            _ => self.id(conn, r),
        }
    }
}

/// Jobs waiting for the background thread; a batch to free that finds the
/// queue full is freed by the writer itself, so memory stays bounded.
const BACKGROUND_QUEUE: usize = 1;

/// The fewest pupils a refresh gives a thread of its own.
const PUPILS_PER_THREAD: usize = 32;

/// Live records per upsert statement in a bulk write.
const ROWS_PER_UPSERT: usize = 32;

/// The values of one record's row, in [`upsert_sql`]'s column order.
fn record_values<'a>(
    r: &'a AbsenceRecord,
    date: &'a str,
    extensions_ref: Option<i64>,
    stamp: &'a str,
) -> [rusqlite::types::ToSqlOutput<'a>; RECORD_COLUMNS] {
    use rusqlite::types::{ToSqlOutput, Value, ValueRef};
    let text = |s: &'a str| ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()));
    let int = |i: i64| ToSqlOutput::Owned(Value::Integer(i));
    let opt_text = |s: Option<&'a str>| s.map_or(ToSqlOutput::Owned(Value::Null), text);
    [
        text(&r.source),
        text(&r.id),
        int(i64::try_from(r.version).unwrap_or(i64::MAX)),
        text(&r.pupil),
        text(&r.school),
        text(date),
        text(r.kind.as_str()),
        int(i64::from(r.lessons)),
        r.minutes.map_or(ToSqlOutput::Owned(Value::Null), |m| int(i64::from(m))),
        text(r.validity.as_str()),
        opt_text(r.reason.map(|x| x.as_str())),
        int(i64::from(r.deleted)),
        // The extensions live in their set, not in the row.
        ToSqlOutput::Owned(Value::Null),
        extensions_ref.map_or(ToSqlOutput::Owned(Value::Null), int),
        text(stamp),
        opt_text(r.subject.as_deref()),
        r.period.map_or(ToSqlOutput::Owned(Value::Null), |p| int(i64::from(p))),
    ]
}
