//! Bulk work on a SQLite file through a direct connection (rusqlite):
//! large imports and the record reads of a findings refresh.
//!
//! Bulk work spends most of its time handing values to and from the
//! database. Through sqlx every value is copied into shared buffers and
//! every statement is a round trip to sqlx's worker thread; here a prepared
//! statement is stepped on the caller's (blocking) thread. The SQL is the one
//! [`super::records`] uses, so both paths store and read exactly the same.

use super::StoreError;
use super::records::{
    BULK_CACHE_KIB, BulkProgress, IngestStats, QUARANTINE_INSERT, QuarantineEntry, date_text, dedupe, eval_records_sql,
    extensions_json, quarantine_raw, record_from_columns, upsert_sql,
};
use super::{Backend, now};
use crate::domain::AbsenceRecord;
use rusqlite::{Connection, params};
use std::borrow::Cow;
use std::time::Duration;

/// How long a write waits for another writer (the same as the pool's).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens a connection to the (already migrated) store file.
fn connect(path: &str) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL is a property of the file, set when the store was opened.
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    Ok(conn)
}

/// The live records of `pupils` dated `from..=to` (`YYYY-MM-DD`), without
/// extensions: what a findings refresh evaluates. Reads the last committed
/// state, which a refresh holding the write lock sees too.
pub(super) fn records_for_evaluation(
    path: &str,
    pupils: &[String],
    from: &str,
    to: &str,
) -> Result<Vec<AbsenceRecord>, StoreError> {
    let conn = connect(path)?;
    let mut select = conn.prepare(&eval_records_sql(Backend::Sqlite, pupils.len()))?;
    let values = pupils.iter().map(String::as_str).chain([from, to]);
    let mut rows = select.query(rusqlite::params_from_iter(values))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(record_from_columns(row, false)?);
    }
    Ok(out)
}

/// A bulk writer's own connection and its open transaction.
pub(super) struct SqliteBulk {
    conn: Connection,
    progress: BulkProgress,
    /// The last extensions stored and their JSON: a source's records mostly
    /// carry the same few codes, so most rows skip the serialisation.
    last_extensions: Option<(serde_json::Map<String, serde_json::Value>, Option<String>)>,
}

impl SqliteBulk {
    /// Opens a connection to the (already migrated) store file.
    pub(super) fn open(path: &str) -> Result<SqliteBulk, StoreError> {
        let conn = connect(path)?;
        conn.execute_batch(&format!("PRAGMA cache_size = -{BULK_CACHE_KIB};"))?;
        Ok(SqliteBulk {
            conn,
            progress: BulkProgress::default(),
            last_extensions: None,
        })
    }

    /// Writes a batch in the open transaction (opening one if needed);
    /// commits when [`BulkProgress::add`] says it is due. Returns the counts
    /// committed by this call, if any.
    pub(super) fn write(
        &mut self,
        records: &[AbsenceRecord],
        quarantine: &[QuarantineEntry],
    ) -> Result<Option<IngestStats>, StoreError> {
        if !self.progress.is_open() {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.progress.opened();
        }
        let stats = self.write_batch(records, quarantine)?;
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
        Ok(self.progress.close())
    }

    fn write_batch(
        &mut self,
        records: &[AbsenceRecord],
        quarantine: &[QuarantineEntry],
    ) -> Result<IngestStats, StoreError> {
        let stamp = now();
        let mut changed = 0u64;
        let mut touched: Vec<String> = Vec::new();
        {
            // RETURNING costs a temporary table per statement: a record is
            // stored under its own pupil, so its upsert only needs to say
            // whether it changed something. A tombstone may name no pupil
            // and keeps the stored one, which RETURNING reports.
            let mut upsert = self.conn.prepare_cached(&upsert_sql(Backend::Sqlite, 1, false))?;
            let mut upsert_tombstone = self.conn.prepare_cached(&upsert_sql(Backend::Sqlite, 1, true))?;
            for r in dedupe(records) {
                let cached = matches!(&self.last_extensions, Some((m, _)) if *m == r.extensions);
                if !cached {
                    self.last_extensions = Some((r.extensions.clone(), extensions_json(r)?));
                }
                let extensions = self.last_extensions.as_ref().and_then(|(_, json)| json.as_deref());
                let values = params![
                    r.source,
                    r.id,
                    r.version,
                    r.pupil,
                    r.school,
                    date_text(r),
                    r.kind.as_str(),
                    r.lessons,
                    r.minutes,
                    r.validity.as_str(),
                    r.reason.map(|x| x.as_str()),
                    i64::from(r.deleted),
                    extensions,
                    stamp,
                ];
                let pupil: Option<Cow<'_, str>> = if r.deleted {
                    let mut rows = upsert_tombstone.query(values)?;
                    match rows.next()? {
                        Some(row) => Some(Cow::Owned(row.get(0)?)),
                        None => None,
                    }
                } else {
                    (upsert.execute(values)? > 0).then_some(Cow::Borrowed(r.pupil.as_str()))
                };
                if let Some(pupil) = pupil {
                    changed += 1;
                    if touched.last().map(String::as_str) != Some(&*pupil) {
                        touched.push(pupil.into_owned());
                    }
                }
            }
        }
        touched.sort_unstable();
        touched.dedup();
        let mut mark = self
            .conn
            .prepare_cached("INSERT INTO dirty_pupils (pupil) VALUES ($1) ON CONFLICT (pupil) DO NOTHING")?;
        for pupil in &touched {
            mark.execute([pupil])?;
        }
        let mut keep = self.conn.prepare_cached(QUARANTINE_INSERT)?;
        for e in quarantine {
            let (raw, digest) = quarantine_raw(e);
            keep.execute(params![e.source, e.location, e.reason, raw, digest, stamp])?;
        }
        Ok(IngestStats::of_batch(
            records.len() as u64,
            changed,
            quarantine.len() as u64,
        ))
    }
}
