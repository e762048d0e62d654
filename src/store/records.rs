//! Writing and reading canonical records and quarantined input.

use super::direct::SqliteBulk;
use super::{Backend, Store, StoreError, now};
use crate::domain::record::parse_date;
use crate::domain::{AbsenceRecord, Fault, Kind, Reason, RejectCode, Validity};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

/// Columns bound per record in the upsert.
pub(super) const RECORD_COLUMNS: usize = 17;
/// Records per INSERT statement: far below SQLite's 32766 parameters, large
/// enough that per-statement overhead vanishes.
const ROWS_PER_STATEMENT: usize = 400;
/// Raw input kept in quarantine is cut at this many bytes.
const MAX_RAW: usize = 64 * 1024;

/// Input that could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantineEntry {
    /// The source it was meant for, when known.
    pub source: Option<String>,
    /// Where it came from: `file:line`, `request#position`, …
    pub location: String,
    /// Why it was rejected.
    pub code: RejectCode,
    /// The field or element at fault (a name, never a value).
    pub field: Option<String>,
    /// Why, for people: built from the code, the field and a limit
    /// ([`crate::domain::reject::describe`]), never from the input.
    pub reason: String,
    /// The input as received. The store keeps it (cut at 64 KiB) only for
    /// a source with `keep_raw` ([`Store::keeping_raw_for`]); read back,
    /// it is empty otherwise.
    pub raw: String,
}

impl QuarantineEntry {
    /// An entry for `fault` at `location`, with its text built from the fault.
    pub fn new(
        source: Option<String>,
        location: impl Into<String>,
        fault: Fault,
        raw: impl Into<String>,
    ) -> QuarantineEntry {
        QuarantineEntry {
            source,
            location: location.into(),
            code: fault.code,
            reason: fault.to_string(),
            field: fault.field,
            raw: raw.into(),
        }
    }
}

/// A quarantine entry as the store writes it: the input only where the
/// source keeps it, and the digest that keeps the same input from the same
/// place once (taken over the input, so it dedupes as before even when the
/// input itself is not kept).
#[derive(Debug, Clone)]
pub(super) struct QuarantineRow {
    pub(super) source: Option<String>,
    pub(super) location: String,
    pub(super) code: &'static str,
    pub(super) field: Option<String>,
    pub(super) reason: String,
    pub(super) raw: String,
    pub(super) digest: String,
}

impl Store {
    /// The same store, keeping the raw input of rejected items from
    /// `sources` (their `keep_raw`); of every other source the quarantine
    /// keeps the place, the code and the field only.
    pub fn keeping_raw_for(self, sources: impl IntoIterator<Item = String>) -> Store {
        Store {
            raw_kept: std::sync::Arc::new(sources.into_iter().collect()),
            ..self
        }
    }

    /// The rows to write for `entries`.
    pub(super) fn quarantine_rows(&self, entries: &[QuarantineEntry]) -> Vec<QuarantineRow> {
        entries
            .iter()
            .map(|e| {
                let raw = truncate(&e.raw, MAX_RAW);
                let mut d = Sha256::new();
                for part in [
                    e.source.as_deref().unwrap_or_default(),
                    e.location.as_str(),
                    e.code.as_str(),
                    e.field.as_deref().unwrap_or_default(),
                    raw,
                ] {
                    d.update(part.as_bytes());
                    d.update([0u8]);
                }
                let keep = e.source.as_ref().is_some_and(|s| self.raw_kept.contains(s));
                QuarantineRow {
                    source: e.source.clone(),
                    location: e.location.clone(),
                    code: e.code.as_str(),
                    field: e.field.clone(),
                    reason: e.reason.clone(),
                    raw: if keep { raw.to_string() } else { String::new() },
                    digest: hex::encode(d.finalize()),
                }
            })
            .collect()
    }
}

/// A quarantined row as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantinedRow {
    /// Sequence number.
    pub seq: i64,
    /// The entry.
    #[serde(flatten)]
    pub entry: QuarantineEntry,
    /// When it was received (RFC 3339).
    pub received_at: String,
}

/// What one ingest call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IngestStats {
    /// Records offered.
    pub received: u64,
    /// Records that were new or replaced an older version.
    pub changed: u64,
    /// Records already stored at that version or newer.
    pub unchanged: u64,
    /// Entries put in quarantine.
    pub quarantined: u64,
}

impl IngestStats {
    /// The counts of one written batch: `received` records of which
    /// `changed` were new or newer, and `quarantined` entries kept aside.
    pub(super) fn of_batch(received: u64, changed: u64, quarantined: u64) -> IngestStats {
        IngestStats {
            received,
            changed,
            unchanged: received - changed,
            quarantined,
        }
    }

    /// Adds another call's counts.
    pub fn add(&mut self, other: IngestStats) {
        self.received += other.received;
        self.changed += other.changed;
        self.unchanged += other.unchanged;
        self.quarantined += other.quarantined;
    }
}

/// Keeps the winning version per key within one batch, by the same rule as
/// the upsert's WHERE clause ([`crate::domain::record::supersedes`]):
/// PostgreSQL refuses to upsert the same key twice in one statement.
pub(super) fn dedupe(records: &[AbsenceRecord]) -> Vec<&AbsenceRecord> {
    let mut index: rustc_hash::FxHashMap<(&str, &str), usize> =
        rustc_hash::FxHashMap::with_capacity_and_hasher(records.len(), Default::default());
    let mut out: Vec<&AbsenceRecord> = Vec::with_capacity(records.len());
    for r in records {
        match index.get(&(r.source.as_str(), r.id.as_str())) {
            Some(&i) => {
                if r.supersedes(out[i]) {
                    out[i] = r;
                }
            }
            None => {
                index.insert((r.source.as_str(), r.id.as_str()), out.len());
                out.push(r);
            }
        }
    }
    out
}

/// The upsert of `rows` records. With `returning`, it returns the stored
/// pupil of each row it changed (for a tombstone, the pupil of the record it
/// removes).
pub(super) fn upsert_sql(backend: Backend, rows: usize, returning: bool) -> String {
    let values: Vec<String> = (0..rows)
        .map(|i| format!("({})", backend.placeholders(i * RECORD_COLUMNS + 1, RECORD_COLUMNS)))
        .collect();
    // A tombstone keeps the fields of the record it removes.
    let keep = |c: &str| format!("{c} = CASE WHEN excluded.deleted = 1 THEN records.{c} ELSE excluded.{c} END");
    let kept: Vec<String> = [
        "pupil",
        "school",
        "date",
        "kind",
        "lessons",
        "minutes",
        "validity",
        "reason",
        "extensions",
        "extensions_ref",
        "subject",
        "period",
    ]
    .iter()
    .map(|c| keep(c))
    .collect();
    format!(
        "INSERT INTO records (source, id, version, pupil, school, date, kind, lessons, minutes, validity, reason, deleted, extensions, extensions_ref, updated_at, subject, period) \
         VALUES {} \
         ON CONFLICT (source, id) DO UPDATE SET version = excluded.version, deleted = excluded.deleted, \
         updated_at = excluded.updated_at, {} \
         WHERE excluded.version > records.version \
            OR (excluded.version = records.version AND excluded.deleted = 1 AND records.deleted = 0){}",
        values.join(", "),
        kept.join(", "),
        if returning { " RETURNING pupil" } else { "" }
    )
}

/// Stores a quarantine row ([`QuarantineRow`]); the same rejected input
/// from the same place is kept once (by digest).
pub(super) const QUARANTINE_INSERT: &str = "INSERT INTO quarantine (source, location, code, field, reason, raw, digest, received_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (digest) DO NOTHING";

/// Finds or adds the stored extension set with this JSON; its id. Inside
/// the caller's transaction, which must also write the rows referring to it
/// (the retention purge removes sets no row refers to).
pub(super) async fn extension_set(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    json: &str,
) -> Result<i64, StoreError> {
    let digest = extension_digest(json);
    let find = || sqlx::query(EXTENSION_SET_SELECT).bind(digest.clone());
    if let Some(row) = find().fetch_optional(&mut **tx).await? {
        return Ok(row.try_get(0)?);
    }
    sqlx::query(EXTENSION_SET_INSERT)
        .bind(digest.as_str())
        .bind(json)
        .execute(&mut **tx)
        .await?;
    Ok(find().fetch_one(&mut **tx).await?.try_get(0)?)
}

/// The key of a stored extension set: the SHA-256 of its JSON, in hex.
pub(super) fn extension_digest(json: &str) -> String {
    hex::encode(Sha256::digest(json.as_bytes()))
}

/// Adds an extension set (`$1` digest, `$2` JSON) unless it is stored.
pub(super) const EXTENSION_SET_INSERT: &str =
    "INSERT INTO record_extensions (digest, json) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING";
/// The id of the extension set with digest `$1`.
pub(super) const EXTENSION_SET_SELECT: &str = "SELECT id FROM record_extensions WHERE digest = $1";

/// A record's extensions as stored (`None` when there are none).
pub(super) fn extensions_json(r: &AbsenceRecord) -> Result<Option<String>, StoreError> {
    (!r.extensions.is_empty())
        .then(|| serde_json::to_string(&r.extensions))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("extensions: {e}")))
}

pub(super) fn date_text(r: &AbsenceRecord) -> String {
    DateText::of(r).as_str().to_string()
}

/// A record's date as stored: `YYYY-MM-DD` (chrono's form: a sign and more
/// digits outside the years 0–9999), empty for a tombstone without one. Held
/// inline: a bulk write formats a million of them.
#[derive(Debug, Clone, Copy)]
pub(super) struct DateText {
    bytes: [u8; 16],
    len: u8,
}

impl DateText {
    /// The stored form of `r`'s date.
    pub(super) fn of(r: &AbsenceRecord) -> DateText {
        use chrono::Datelike;
        let mut bytes = [0u8; 16];
        if r.deleted && r.date == chrono::NaiveDate::MIN {
            return DateText { bytes, len: 0 };
        }
        let d = r.date;
        match u32::try_from(d.year()) {
            Ok(year) if year <= 9999 => {
                let digits = |n: u32, out: &mut [u8]| {
                    let mut n = n;
                    for b in out.iter_mut().rev() {
                        *b = b'0' + (n % 10) as u8;
                        n /= 10;
                    }
                };
                digits(year, &mut bytes[..4]);
                bytes[4] = b'-';
                digits(d.month(), &mut bytes[5..7]);
                bytes[7] = b'-';
                digits(d.day(), &mut bytes[8..10]);
                DateText { bytes, len: 10 }
            }
            _ => {
                // Display is at most 14 bytes ("+262142-12-31" and the like).
                let text = d.to_string();
                let len = text.len().min(bytes.len());
                bytes[..len].copy_from_slice(&text.as_bytes()[..len]);
                DateText { bytes, len: len as u8 }
            }
        }
    }

    /// The text.
    pub(super) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

/// Records committed per transaction by a [`BulkWriter`]. Larger commits
/// write each touched page once for more records, as long as the dirty pages
/// fit SQLite's page cache ([`BULK_CACHE_KIB`]) until the commit: measured
/// on a million Ed-Fi records, the store stage took 5.4 s at 100,000 per
/// commit (pages spilled), 4.8 s at 50,000, 4.4 s at 25,000 and 4.6 s at
/// 10,000.
pub const BULK_COMMIT: u64 = 25_000;
/// A bulk transaction is committed after this long even when it holds fewer
/// records, so a slow import still shows (and keeps) its progress regularly.
const BULK_MAX_OPEN: std::time::Duration = std::time::Duration::from_secs(2);
/// SQLite page cache of a bulk transaction, in KiB: room for the index pages
/// a [`BULK_COMMIT`] touches, so they are not spilled before the commit.
pub(super) const BULK_CACHE_KIB: i64 = 16 * 1024;
/// SQLite's default page cache, restored after a bulk transaction.
const DEFAULT_CACHE_KIB: i64 = 2000;

/// What an open bulk transaction holds, and when it is due: the commit
/// policy both bulk writers (sqlx and the direct SQLite connection) follow.
#[derive(Debug, Default)]
pub(super) struct BulkProgress {
    /// When the open transaction began (`None`: none is open).
    opened: Option<std::time::Instant>,
    /// Counts written in the open transaction.
    pending: IngestStats,
}

impl BulkProgress {
    /// Whether a transaction is open.
    pub(super) fn is_open(&self) -> bool {
        self.opened.is_some()
    }

    /// Notes that a transaction was just opened.
    pub(super) fn opened(&mut self) {
        self.opened = Some(std::time::Instant::now());
    }

    /// Adds a written batch; true when the transaction should commit now
    /// (it holds [`BULK_COMMIT`] records or has been open [`BULK_MAX_OPEN`]).
    pub(super) fn add(&mut self, stats: IngestStats) -> bool {
        self.pending.add(stats);
        self.pending.received + self.pending.quarantined >= BULK_COMMIT
            || self.opened.is_some_and(|t| t.elapsed() >= BULK_MAX_OPEN)
    }

    /// Ends the open transaction; its counts (`None` if none was open).
    pub(super) fn close(&mut self) -> Option<IngestStats> {
        self.opened.take()?;
        Some(std::mem::take(&mut self.pending))
    }
}

/// Batches written in shared transactions (see [`Store::bulk_writer`]).
/// What [`BulkWriter::write`] returns is committed only by a later
/// [`BulkWriter::commit`] (or by a write that reaches [`BULK_COMMIT`]);
/// dropping the writer rolls back the open transaction.
pub struct BulkWriter<'s> {
    store: &'s Store,
    /// A SQLite file store writes through a connection of its own.
    direct: Option<Direct>,
    tx: Option<sqlx::Transaction<'static, sqlx::Any>>,
    progress: BulkProgress,
    /// Pupil keys looked up or assigned in this writer's transactions.
    keys: std::collections::HashMap<(String, String), String>,
}

/// The direct connection of a SQLite file store, opened on first use.
struct Direct {
    path: String,
    conn: Option<SqliteBulk>,
}

impl BulkWriter<'_> {
    /// Writes a batch; commits when the open transaction holds
    /// [`BULK_COMMIT`] records or has been open for two seconds. Returns the
    /// counts committed by this call, if it committed.
    pub async fn write(
        &mut self,
        records: Vec<AbsenceRecord>,
        quarantine: Vec<QuarantineEntry>,
    ) -> Result<Option<IngestStats>, StoreError> {
        let quarantine = self.store.quarantine_rows(&quarantine);
        if self.direct.is_some() {
            return self.direct(move |bulk| bulk.write(records, &quarantine)).await;
        }
        let tx = match &mut self.tx {
            Some(tx) => tx,
            None => {
                let mut tx = self.store.begin_write().await?;
                if self.store.backend == Backend::Sqlite {
                    sqlx::query(AssertSqlSafe(format!("PRAGMA cache_size = -{BULK_CACHE_KIB}")))
                        .execute(&mut *tx)
                        .await?;
                }
                self.progress.opened();
                self.tx.insert(tx)
            }
        };
        let mut records = records;
        super::identity::key_pupils_in(tx, &mut self.keys, &mut records).await?;
        let stats = write_batch(self.store.backend, tx, &records, &quarantine).await?;
        if self.progress.add(stats) {
            return self.commit().await;
        }
        Ok(None)
    }

    /// Commits the open transaction; returns its counts (`None` if nothing was open).
    pub async fn commit(&mut self) -> Result<Option<IngestStats>, StoreError> {
        if self.direct.is_some() {
            return self.direct(SqliteBulk::commit).await;
        }
        let Some(mut tx) = self.tx.take() else {
            return Ok(None);
        };
        if self.store.backend == Backend::Sqlite {
            // The pool reuses the connection: give the memory back.
            sqlx::query(AssertSqlSafe(format!("PRAGMA cache_size = -{DEFAULT_CACHE_KIB}")))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(self.progress.close())
    }

    /// Runs `work` on the direct connection, on a blocking thread.
    async fn direct(
        &mut self,
        work: impl FnOnce(&mut SqliteBulk) -> Result<Option<IngestStats>, StoreError> + Send + 'static,
    ) -> Result<Option<IngestStats>, StoreError> {
        let Some(direct) = self.direct.as_mut() else {
            return Ok(None);
        };
        let path = direct.path.clone();
        let conn = direct.conn.take();
        let (conn, outcome) = tokio::task::spawn_blocking(move || {
            let mut conn = match conn {
                Some(c) => c,
                None => match SqliteBulk::open(&path) {
                    Ok(c) => c,
                    Err(e) => return (None, Err(e)),
                },
            };
            let outcome = work(&mut conn);
            (Some(conn), outcome)
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?;
        direct.conn = conn;
        outcome
    }
}

/// Queues `pupils` for re-evaluation by the next findings refresh.
pub(super) async fn mark_dirty(
    backend: Backend,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    mut pupils: Vec<String>,
) -> Result<(), StoreError> {
    pupils.sort_unstable();
    pupils.dedup();
    for chunk in pupils.chunks(ROWS_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", backend.placeholders(i + 1, 1)))
            .collect();
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO dirty_pupils (pupil) VALUES {} ON CONFLICT (pupil) DO NOTHING",
            values.join(", ")
        )));
        for p in chunk {
            q = q.bind(p.as_str());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Writes one batch inside `tx` (see [`Store::ingest`]).
pub(super) async fn write_batch(
    backend: Backend,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    records: &[AbsenceRecord],
    quarantine: &[QuarantineRow],
) -> Result<IngestStats, StoreError> {
    let unique = dedupe(records);
    let stamp = now();
    let mut changed = 0;
    // SQLite refers to stored extension sets (see [`extension_set`]);
    // PostgreSQL keeps the JSON in the row.
    let mut sets: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    // The pupils of the changed rows (the upsert returns only those), marked
    // for re-evaluation once per batch.
    let mut touched: Vec<String> = Vec::new();
    for chunk in unique.chunks(ROWS_PER_STATEMENT) {
        let sql = upsert_sql(backend, chunk.len(), true);
        let mut stored = Vec::with_capacity(chunk.len());
        for r in chunk {
            stored.push(match (extensions_json(r)?, backend) {
                (Some(json), Backend::Sqlite) => {
                    let id = match sets.get(&json) {
                        Some(id) => *id,
                        None => {
                            let id = extension_set(tx, &json).await?;
                            sets.insert(json, id);
                            id
                        }
                    };
                    (None, Some(id))
                }
                (json, _) => (json, None),
            });
        }
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (r, (extensions, extensions_ref)) in chunk.iter().zip(stored) {
            q = q
                .bind(r.source.as_str())
                .bind(r.id.as_str())
                .bind(i64::try_from(r.version).unwrap_or(i64::MAX))
                .bind(r.pupil.as_str())
                .bind(r.school.as_str())
                .bind(date_text(r))
                .bind(r.kind.as_str())
                .bind(i64::from(r.lessons))
                .bind(r.minutes.map(i64::from))
                .bind(r.validity.as_str())
                .bind(r.reason.map(|x| x.as_str()))
                .bind(i64::from(r.deleted))
                .bind(extensions)
                .bind(extensions_ref)
                .bind(stamp.as_str())
                .bind(r.subject.as_deref())
                .bind(r.period.map(i64::from));
        }
        for row in q.fetch_all(&mut **tx).await? {
            changed += 1;
            let pupil: String = row.try_get(0)?;
            if touched.last() != Some(&pupil) {
                touched.push(pupil);
            }
        }
    }
    mark_dirty(backend, tx, touched).await?;
    for e in quarantine {
        sqlx::query(QUARANTINE_INSERT)
            .bind(e.source.as_deref())
            .bind(e.location.as_str())
            .bind(e.code)
            .bind(e.field.as_deref())
            .bind(e.reason.as_str())
            .bind(e.raw.as_str())
            .bind(e.digest.as_str())
            .bind(stamp.as_str())
            .execute(&mut **tx)
            .await?;
    }
    Ok(IngestStats::of_batch(
        records.len() as u64,
        changed,
        quarantine.len() as u64,
    ))
}

impl Store {
    /// Stores records and quarantine entries in one transaction: either all of
    /// it is kept or none. Re-sending the same versions changes nothing.
    pub async fn ingest(
        &self,
        records: &[AbsenceRecord],
        quarantine: &[QuarantineEntry],
    ) -> Result<IngestStats, StoreError> {
        let mut records = records.to_vec();
        self.key_pupils(&mut records).await?;
        let quarantine = self.quarantine_rows(quarantine);
        let mut tx = self.begin_write().await?;
        let stats = write_batch(self.backend, &mut tx, &records, &quarantine).await?;
        tx.commit().await?;
        Ok(stats)
    }

    /// A writer for large imports: batches share a transaction until about
    /// [`BULK_COMMIT`] records are written, so each B-tree page a batch
    /// touches is written to disk once per commit rather than once per batch.
    pub fn bulk_writer(&self) -> BulkWriter<'_> {
        BulkWriter {
            store: self,
            direct: self.sqlite_file().map(|path| Direct { path, conn: None }),
            tx: None,
            progress: BulkProgress::default(),
            keys: Default::default(),
        }
    }

    /// Deletes (as tombstones at version `stamp`) the live records of
    /// `source` at `schools` dated `from..=to` whose version is below
    /// `stamp`: after a snapshot import at `stamp`, those are the records the
    /// snapshot no longer has. Records at `stamp` or newer are kept, so an
    /// older snapshot cannot remove newer data. Returns how many were deleted.
    pub async fn tombstone_absent(
        &self,
        source: &str,
        schools: &[&str],
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
        stamp: u32,
    ) -> Result<u64, StoreError> {
        if schools.is_empty() {
            return Ok(0);
        }
        let stamp_at = now();
        let mut tx = self.begin_write().await?;
        let mut removed = 0;
        let mut touched: Vec<String> = Vec::new();
        for chunk in schools.chunks(ROWS_PER_STATEMENT) {
            // The same rule as the upsert: a tombstone at a higher version wins.
            let sql = format!(
                "UPDATE records SET deleted = 1, version = {p1}, updated_at = {p2} \
                 WHERE source = {p3} AND deleted = 0 AND version < {p4} AND date >= {p5} AND date <= {p6} \
                 AND school IN ({list}) RETURNING pupil",
                p1 = self.backend.placeholders(1, 1),
                p2 = self.backend.placeholders(2, 1),
                p3 = self.backend.placeholders(3, 1),
                p4 = self.backend.placeholders(4, 1),
                p5 = self.backend.placeholders(5, 1),
                p6 = self.backend.placeholders(6, 1),
                list = self.backend.placeholders(7, chunk.len()),
            );
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .bind(i64::from(stamp))
                .bind(stamp_at.as_str())
                .bind(source)
                .bind(i64::from(stamp))
                .bind(from.format("%Y-%m-%d").to_string())
                .bind(to.format("%Y-%m-%d").to_string());
            for school in chunk {
                q = q.bind(*school);
            }
            let rows = q.fetch_all(&mut *tx).await?;
            removed += rows.len() as u64;
            for row in rows {
                touched.push(row.try_get(0)?);
            }
        }
        mark_dirty(self.backend, &mut tx, touched).await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// A pupil's live records dated `from..=to`, oldest first.
    pub async fn pupil_records(
        &self,
        pupil: &str,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<AbsenceRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RECORD_SELECT} FROM records WHERE pupil = $1 AND deleted = 0 AND date >= $2 AND date <= $3 ORDER BY date, source, id"
        )))
        .bind(pupil)
        .bind(from.format("%Y-%m-%d").to_string())
        .bind(to.format("%Y-%m-%d").to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Records stored (live and tombstones).
    pub async fn record_count(&self) -> Result<(u64, u64), StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n, CAST(COALESCE(SUM(deleted), 0) AS BIGINT) AS d FROM records")
            .fetch_one(&self.pool)
            .await?;
        let n: i64 = row.try_get("n")?;
        let d: i64 = row.try_get("d")?;
        Ok(((n - d) as u64, d as u64))
    }

    /// The newest quarantined entries, newest first.
    pub async fn quarantined(&self, limit: i64) -> Result<Vec<QuarantinedRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, source, location, code, field, reason, raw, received_at FROM quarantine ORDER BY seq DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let code: String = r.try_get("code")?;
                // A code this version does not know reads as from before codes.
                let code = RejectCode::parse(&code).unwrap_or(RejectCode::Legacy);
                let field: Option<String> = r.try_get("field")?;
                let mut reason: String = r.try_get("reason")?;
                if reason.is_empty() {
                    reason = crate::domain::reject::describe(code, field.as_deref(), None);
                }
                Ok(QuarantinedRow {
                    seq: r.try_get("seq")?,
                    entry: QuarantineEntry {
                        source: r.try_get("source")?,
                        location: r.try_get("location")?,
                        code,
                        field,
                        reason,
                        raw: r.try_get("raw")?,
                    },
                    received_at: r.try_get("received_at")?,
                })
            })
            .collect()
    }

    /// Deletes the quarantine entries received before `before` (the
    /// quarantine's own retention, `[quarantine] retention_days`); how
    /// many. Newer entries are kept.
    pub async fn purge_quarantine(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64, StoreError> {
        // received_at is RFC 3339 in UTC with milliseconds (`now()`), so
        // text order is time order.
        let cutoff = before.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM quarantine WHERE received_at < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// How many entries the quarantine holds.
    pub async fn quarantine_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM quarantine")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(n as u64)
    }
}

/// The columns [`record_from_row`] reads (from `records`, unaliased): the
/// subject and period, and the extensions from the row or from the set it
/// refers to.
pub(super) const RECORD_SELECT: &str = "source, id, version, pupil, school, date, kind, lessons, minutes, validity, reason, deleted, \
     subject, period, COALESCE(extensions, (SELECT json FROM record_extensions WHERE record_extensions.id = records.extensions_ref))";

/// The columns the rule engine needs: [`RECORD_SELECT`] without subject,
/// period and the extensions, which rules never read (the extensions cost a
/// JSON parse per row).
pub(super) const RECORD_EVAL_SELECT: &str =
    "source, id, version, pupil, school, date, kind, lessons, minutes, validity, reason, deleted";

/// The query of a findings refresh: the live records of `pupils` pupils
/// (`$1..`), dated from `$pupils+1` to `$pupils+2`, in [`RECORD_EVAL_SELECT`] columns.
pub(super) fn eval_records_sql(backend: Backend, pupils: usize) -> String {
    format!(
        "SELECT {RECORD_EVAL_SELECT} FROM records WHERE pupil IN ({}) AND deleted = 0 AND date >= {} AND date <= {}",
        backend.placeholders(1, pupils),
        backend.placeholders(pupils + 1, 1),
        backend.placeholders(pupils + 2, 1)
    )
}

/// Reads a record selected with [`RECORD_SELECT`].
pub(super) fn record_from_row(row: &AnyRow) -> Result<AbsenceRecord, StoreError> {
    record_from_columns(row, true)
}

/// Reads a record selected with [`RECORD_EVAL_SELECT`] (no extensions).
pub(super) fn eval_record_from_row(row: &AnyRow) -> Result<AbsenceRecord, StoreError> {
    record_from_columns(row, false)
}

/// A result row read by column position, from sqlx or from the direct
/// SQLite connection, so both decode records the same way.
pub(super) trait Columns {
    /// A nullable text column.
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError>;
    /// A nullable integer column.
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    /// A nullable floating-point column.
    fn opt_real(&self, i: usize) -> Result<Option<f64>, StoreError>;
    /// A text column.
    fn text(&self, i: usize) -> Result<String, StoreError> {
        self.opt_text(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("kolonne {i} er tom")))
    }
    /// An integer column.
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.opt_int(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("kolonne {i} er tom")))
    }
    /// A nullable text column handed to `f`, borrowed where the row allows
    /// (a refresh decodes a million short codes and dates).
    fn map_text<T>(&self, i: usize, f: impl FnOnce(Option<&str>) -> T) -> Result<T, StoreError> {
        Ok(f(self.opt_text(i)?.as_deref()))
    }
}

impl Columns for AnyRow {
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn opt_real(&self, i: usize) -> Result<Option<f64>, StoreError> {
        Ok(self.try_get(i)?)
    }
}

impl Columns for rusqlite::Row<'_> {
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.get(i)?)
    }
    fn opt_real(&self, i: usize) -> Result<Option<f64>, StoreError> {
        Ok(self.get(i)?)
    }
    fn map_text<T>(&self, i: usize, f: impl FnOnce(Option<&str>) -> T) -> Result<T, StoreError> {
        match self.get_ref(i)? {
            rusqlite::types::ValueRef::Null => Ok(f(None)),
            rusqlite::types::ValueRef::Text(b) => match std::str::from_utf8(b) {
                Ok(s) => Ok(f(Some(s))),
                Err(_) => Err(StoreError::Corrupt(format!("kolonne {i} er ikke UTF-8"))),
            },
            _ => Ok(f(self.opt_text(i)?.as_deref())),
        }
    }
}

/// Reads a record by position in the order of [`RECORD_SELECT`]; subject,
/// period and the extensions only when asked for (they are last).
pub(super) fn record_from_columns(row: &impl Columns, with_extensions: bool) -> Result<AbsenceRecord, StoreError> {
    // By position: looking columns up by name costs more than the decoding
    // on large reads.
    let corrupt = |what: &str, v: &str| StoreError::Corrupt(format!("{what} «{v}»"));
    let missing = |i: usize| StoreError::Corrupt(format!("kolonne {i} er tom"));
    let date = row.map_text(5, |d| match d {
        None => Err(missing(5)),
        Some("") => Ok(chrono::NaiveDate::MIN),
        Some(d) => parse_date(d).map_err(|_| corrupt("date", d)),
    })??;
    let kind = row.map_text(6, |k| {
        let k = k.ok_or_else(|| missing(6))?;
        Kind::parse(k).ok_or_else(|| corrupt("kind", k))
    })??;
    let validity = row.map_text(9, |v| {
        let v = v.ok_or_else(|| missing(9))?;
        Validity::parse(v).ok_or_else(|| corrupt("validity", v))
    })??;
    let reason = row.map_text(10, |r| {
        r.map(|r| Reason::parse(r).ok_or_else(|| corrupt("reason", r)))
            .transpose()
    })??;
    let (subject, period, extensions) = if with_extensions {
        let period = row.opt_int(13)?;
        (
            row.opt_text(12)?,
            period
                .map(|p| u8::try_from(p).map_err(|_| corrupt("period", &p.to_string())))
                .transpose()?,
            row.opt_text(14)?,
        )
    } else {
        (None, None, None)
    };
    let extensions = match extensions {
        None => Default::default(),
        Some(s) => match serde_json::from_str(&s) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => return Err(corrupt("extensions", &s)),
        },
    };
    let version = row.int(2)?;
    let lessons = row.int(7)?;
    let minutes = row.opt_int(8)?;
    let deleted = row.int(11)?;
    Ok(AbsenceRecord {
        source: row.text(0)?,
        id: row.text(1)?,
        version: u64::try_from(version).map_err(|_| corrupt("version", &version.to_string()))?,
        pupil: row.text(3)?,
        school: row.text(4)?,
        date,
        kind,
        lessons: u32::try_from(lessons).unwrap_or(1),
        minutes: minutes.and_then(|m| u32::try_from(m).ok()),
        validity,
        reason,
        deleted: deleted != 0,
        subject,
        period,
        extensions,
    })
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inline form writes what chrono's `Display` writes, for every
    /// kind of year, and nothing for a tombstone without a date.
    #[test]
    fn stored_dates_read_as_chrono_writes_them() {
        let mut r = AbsenceRecord::from_json_str(
            r#"{"source":"a","id":"x","pupil":"p","school":"s","date":"2026-03-05","kind":"day"}"#,
        )
        .unwrap();
        let days = [
            (0, 1, 1),
            (9, 12, 31),
            (999, 7, 4),
            (2026, 3, 5),
            (9999, 12, 31),
            (10_000, 1, 1),
            (-1, 6, 15),
            (-44, 3, 15),
        ];
        for (y, m, d) in days {
            r.date = chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert_eq!(DateText::of(&r).as_str(), r.date.to_string());
        }
        for d in [chrono::NaiveDate::MIN, chrono::NaiveDate::MAX] {
            r.date = d;
            assert_eq!(DateText::of(&r).as_str(), d.to_string());
        }
        r.deleted = true;
        r.date = chrono::NaiveDate::MIN;
        assert_eq!(DateText::of(&r).as_str(), "");
    }
}
