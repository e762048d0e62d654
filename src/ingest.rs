//! The ingest pipeline shared by file import, HTTP and pulls: parsed items in,
//! stored in batches, each batch one transaction ([`ingest`]), or several
//! batches per transaction with parsing on its own thread ([`ingest_parallel`]).
//! Rejected input becomes a quarantine entry here ([`quarantine_entry`]);
//! input skipped as not absence is not stored.

use crate::adapters::{Parsed, Rejected};
use crate::config::Schools;
use crate::domain::plausibility::{self, Bounds};
use crate::domain::{AbsenceRecord, Fault, RejectCode};
use crate::store::{IngestStats, QuarantineEntry, Store, StoreError};

/// The plausibility hook of the ingest path: a record outside `bounds` on
/// the school day `today` goes to quarantine with its field named (located
/// by its source and id), never to the store.
pub fn screen(r: AbsenceRecord, bounds: &Bounds, today: chrono::NaiveDate) -> Parsed {
    match plausibility::check(&r, bounds, today) {
        Ok(()) => Parsed::Record(r),
        Err(e) => Parsed::Rejected(Rejected::new(
            Some(r.source.clone()),
            format!(
                "{}/{}",
                plausibility::printable(&r.source),
                plausibility::printable(&r.id)
            ),
            e.fault(),
            r.to_json_line(),
        )),
    }
}

/// Reason code of a record for a school its source may not write.
pub const SCHOOL_NOT_ALLOWED: &str = RejectCode::SchoolNotAllowed.as_str();
/// Reason code of a record that names another source than the one sending it.
pub const SOURCE_MISMATCH: &str = RejectCode::SourceMismatch.as_str();

/// What one source may write: records of its own name, for the schools its
/// configuration lists. Every way in (push, file import, pull) screens its
/// records through the sender's scope before they reach the store, so a
/// record for another school is quarantined, never stored and never
/// evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The canonical source name the records must carry.
    pub source: String,
    /// The schools the source may write.
    pub schools: Schools,
    /// The extension fields kept from the source's own payload (the
    /// source's allow-list), or `None` where an adapter maps the fields
    /// itself (pulls): every other field is dropped before it is stored.
    pub extensions: Option<Vec<String>>,
}

impl Scope {
    /// A scope for `source` writing `schools`.
    pub fn new(source: impl Into<String>, schools: Schools) -> Scope {
        Scope {
            source: source.into(),
            schools,
            extensions: None,
        }
    }

    /// Keeps only the extension fields `allowed` names (art. 9: a free-text
    /// field a source adds is not stored unless IT allowed it).
    pub fn with_extensions(self, allowed: Vec<String>) -> Scope {
        Scope {
            extensions: Some(allowed),
            ..self
        }
    }

    /// Why `r` is outside the scope (the reason code and the field), or
    /// `None` when the source may write it. A tombstone without a school
    /// only removes the source's own record and is always allowed.
    pub fn refusal(&self, r: &AbsenceRecord) -> Option<Fault> {
        if r.source != self.source {
            return Some(Fault::new(RejectCode::SourceMismatch, "source"));
        }
        if r.school.is_empty() && r.deleted {
            return None;
        }
        if !self.schools.allows(&r.school) {
            return Some(Fault::new(RejectCode::SchoolNotAllowed, "school"));
        }
        None
    }

    /// `r` itself when the source may write it, else a rejection located
    /// at `location` that keeps no copy of the record: data the source had
    /// no right to send is not kept anywhere.
    pub fn screen(&self, r: AbsenceRecord, location: &str) -> Parsed {
        match self.refusal(&r) {
            None => {
                let mut r = r;
                if let Some(allowed) = &self.extensions {
                    r.extensions.retain(|k, _| allowed.iter().any(|a| a == k));
                }
                Parsed::Record(r)
            }
            Some(fault) => Parsed::Rejected(Rejected::new(
                Some(self.source.clone()),
                format!("{location} ({})", plausibility::printable(&r.id)),
                fault,
                String::new(),
            )),
        }
    }
}

/// Today's school day, for [`screen`].
fn today() -> chrono::NaiveDate {
    crate::domain::dates::school_date_utc(chrono::Utc::now())
}

/// Items per transaction.
pub const BATCH: usize = 10_000;

/// Items per batch handed from the parser to the writer in
/// [`ingest_parallel`] (the writer commits every
/// [`crate::store::BULK_COMMIT`]): small enough that the batches in flight
/// stay a few megabytes when the parser runs ahead of the writer.
const PARALLEL_BATCH: usize = 5_000;

/// The quarantine entry of a rejected input: the store's form of the
/// adapters' [`Rejected`]. It still holds the input; the store keeps that
/// only for a source with `keep_raw` ([`Store::keeping_raw_for`]).
pub fn quarantine_entry(r: Rejected) -> QuarantineEntry {
    let reason = r.reason();
    QuarantineEntry {
        source: r.source,
        location: r.location,
        code: r.code,
        field: r.field,
        reason,
        raw: r.raw,
    }
}

/// What went wrong while ingesting.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Reading the input failed; everything before was stored.
    #[error("lesefeil etter {stored} lagrede poster: {source}")]
    Read {
        /// Items stored before the failure.
        stored: u64,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The store failed; earlier batches are kept.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores everything `items` yields. `progress` is called after every batch
/// with the running totals. Rejected items go to quarantine.
pub async fn ingest<I>(
    store: &Store,
    items: I,
    mut progress: impl FnMut(&IngestStats),
) -> Result<IngestStats, IngestError>
where
    I: IntoIterator<Item = std::io::Result<Parsed>>,
{
    let mut totals = IngestStats::default();
    let mut records = Vec::with_capacity(BATCH);
    let mut rejected: Vec<QuarantineEntry> = Vec::new();
    let (bounds, today) = (Bounds::default(), today());
    for item in items {
        match item.map(|p| match p {
            Parsed::Record(r) => screen(r, &bounds, today),
            other => other,
        }) {
            Ok(Parsed::Record(r)) => records.push(r),
            Ok(Parsed::Rejected(q)) => rejected.push(quarantine_entry(q)),
            Ok(Parsed::Skipped(_)) => continue,
            Err(source) => {
                totals.add(store.ingest(&records, &rejected).await?);
                return Err(IngestError::Read {
                    stored: totals.received,
                    source,
                });
            }
        }
        if records.len() + rejected.len() >= BATCH {
            totals.add(store.ingest(&records, &rejected).await?);
            records.clear();
            rejected.clear();
            progress(&totals);
        }
    }
    if !records.is_empty() || !rejected.is_empty() {
        totals.add(store.ingest(&records, &rejected).await?);
        progress(&totals);
    }
    Ok(totals)
}

/// Batches in flight between the parsing thread and the store.
const IN_FLIGHT: usize = 2;

/// What the parsing thread hands the store.
enum Message {
    /// A full (or the last) batch.
    Batch(Vec<AbsenceRecord>, Vec<QuarantineEntry>),
    /// Reading failed after the batches already sent.
    Fault(std::io::Error),
}

/// Like [`ingest`], for large inputs: parses on a thread of its own while
/// the store writes, so parsing and storing use two cores, and commits about
/// [`crate::store::BULK_COMMIT`] records per transaction instead of one
/// batch. A bounded channel keeps at most a few batches in memory whatever
/// the input's size. What is stored is the same as with [`ingest`]; a kill
/// loses at most the open transaction, which a re-import writes again.
pub async fn ingest_parallel<I>(
    store: &Store,
    items: I,
    mut progress: impl FnMut(&IngestStats),
) -> Result<IngestStats, IngestError>
where
    I: IntoIterator<Item = std::io::Result<Parsed>>,
    I::IntoIter: Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(IN_FLIGHT);
    let items = items.into_iter();
    let parser = tokio::task::spawn_blocking(move || {
        let mut records = Vec::with_capacity(PARALLEL_BATCH);
        let mut rejected = Vec::new();
        let (bounds, today) = (Bounds::default(), today());
        for item in items {
            match item.map(|p| match p {
                Parsed::Record(r) => screen(r, &bounds, today),
                other => other,
            }) {
                Ok(Parsed::Record(r)) => records.push(r),
                Ok(Parsed::Rejected(q)) => rejected.push(quarantine_entry(q)),
                Ok(Parsed::Skipped(_)) => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Message::Batch(records, rejected));
                    let _ = tx.blocking_send(Message::Fault(e));
                    return;
                }
            }
            if records.len() + rejected.len() >= PARALLEL_BATCH {
                let full = Message::Batch(
                    std::mem::replace(&mut records, Vec::with_capacity(PARALLEL_BATCH)),
                    std::mem::take(&mut rejected),
                );
                // The store side stopped (it failed); its error is reported there.
                if tx.blocking_send(full).is_err() {
                    return;
                }
            }
        }
        if !records.is_empty() || !rejected.is_empty() {
            let _ = tx.blocking_send(Message::Batch(records, rejected));
        }
    });
    let mut totals = IngestStats::default();
    // Batches share transactions of about BULK_COMMIT records; a fault or
    // the end of input commits what is open, like `ingest` does.
    let mut writer = store.bulk_writer();
    let outcome = loop {
        match rx.recv().await {
            Some(Message::Batch(records, rejected)) => match writer.write(records, rejected).await {
                Ok(Some(stats)) => {
                    totals.add(stats);
                    progress(&totals);
                }
                Ok(None) => {}
                Err(e) => break Err(IngestError::Store(e)),
            },
            end => match writer.commit().await {
                Ok(last) => {
                    if let Some(stats) = last {
                        totals.add(stats);
                        progress(&totals);
                    }
                    match end {
                        Some(Message::Fault(source)) => {
                            break Err(IngestError::Read {
                                stored: totals.received,
                                source,
                            });
                        }
                        _ => break Ok(totals),
                    }
                }
                Err(e) => break Err(IngestError::Store(e)),
            },
        }
    };
    // Dropping the receiver stops a parser that is still running.
    drop(rx);
    match (parser.await, outcome) {
        // A panicking parser closes the channel like a finished one would.
        (Err(e), Ok(totals)) => Err(IngestError::Read {
            stored: totals.received,
            source: std::io::Error::other(format!("lesetråden stoppet: {e}")),
        }),
        (_, outcome) => outcome,
    }
}

/// What a snapshot file covers, per source: the schools it names and the
/// dates from its first to its last record. A snapshot import removes stored
/// records inside this coverage that the file no longer has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    sources: std::collections::BTreeMap<String, SourceCoverage>,
}

/// The coverage of one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceCoverage {
    /// Schools with records in the file.
    pub schools: std::collections::BTreeSet<String>,
    /// The first record's date.
    pub from: chrono::NaiveDate,
    /// The last record's date.
    pub to: chrono::NaiveDate,
}

impl Coverage {
    /// Widens the coverage to include `r`. Tombstones without fields say
    /// nothing about coverage.
    pub fn add(&mut self, r: &AbsenceRecord) {
        if r.school.is_empty() || r.date == chrono::NaiveDate::MIN {
            return;
        }
        match self.sources.get_mut(&r.source) {
            Some(c) => {
                if !c.schools.contains(&r.school) {
                    c.schools.insert(r.school.clone());
                }
                c.from = c.from.min(r.date);
                c.to = c.to.max(r.date);
            }
            None => {
                self.sources.insert(
                    r.source.clone(),
                    SourceCoverage {
                        schools: [r.school.clone()].into(),
                        from: r.date,
                        to: r.date,
                    },
                );
            }
        }
    }

    /// The covered sources.
    pub fn sources(&self) -> impl Iterator<Item = (&str, &SourceCoverage)> {
        self.sources.iter().map(|(s, c)| (s.as_str(), c))
    }

    /// Schools covered, over all sources.
    pub fn school_count(&self) -> usize {
        self.sources.values().map(|c| c.schools.len()).sum()
    }

    /// The first and last date covered, over all sources.
    pub fn dates(&self) -> Option<(chrono::NaiveDate, chrono::NaiveDate)> {
        let from = self.sources.values().map(|c| c.from).min()?;
        let to = self.sources.values().map(|c| c.to).max()?;
        Some((from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(source: &str, school: &str, date: &str) -> AbsenceRecord {
        AbsenceRecord::from_json_str(&format!(
            r#"{{"source":"{source}","id":"x","version":1,"pupil":"p","school":"{school}","date":"{date}","kind":"day","validity":"invalid"}}"#
        ))
        .unwrap()
    }

    /// File imports pass through the same plausibility bounds as pushes.
    #[tokio::test]
    async fn implausible_records_are_quarantined_on_import() {
        let store = Store::open(":memory:").await.unwrap();
        let day = today();
        let lines = [
            format!(r#"{{"source":"a","id":"ok","pupil":"p","school":"s","date":"{day}","kind":"day"}}"#),
            format!(
                r#"{{"source":"a","id":"many","pupil":"p","school":"s","date":"{day}","kind":"lesson","lessons":4294967295}}"#
            ),
            r#"{"source":"a","id":"far","pupil":"p","school":"s","date":"9999-12-31","kind":"day"}"#.to_string(),
        ]
        .join("\n");
        let items = crate::adapters::jsonl::JsonlReader::new(lines.as_bytes(), "f.jsonl");
        let stats = ingest(&store, items, |_| {}).await.unwrap();
        assert_eq!((stats.received, stats.quarantined), (1, 2));
        let q = store.quarantined(10).await.unwrap();
        let mut reasons: Vec<(&str, &str)> = q
            .iter()
            .map(|r| (r.entry.location.as_str(), r.entry.reason.as_str()))
            .collect();
        reasons.sort();
        assert_eq!(reasons[0].0, "a/far");
        assert!(reasons[0].1.contains("«date»"), "{reasons:?}");
        assert_eq!(reasons[1].0, "a/many");
        assert!(reasons[1].1.contains("«lessons»"), "{reasons:?}");
        let lines = lines.into_bytes();
        let items = crate::adapters::jsonl::JsonlReader::new(std::io::Cursor::new(lines), "f.jsonl");
        let stats = ingest_parallel(&store, items, |_| {}).await.unwrap();
        assert_eq!((stats.received, stats.quarantined), (1, 2));
    }

    #[test]
    fn coverage_spans_schools_and_dates_per_source() {
        let mut c = Coverage::default();
        assert_eq!(c.dates(), None);
        c.add(&rec("a", "s1", "2026-03-05"));
        c.add(&rec("a", "s2", "2026-02-01"));
        c.add(&rec("a", "s1", "2026-04-30"));
        c.add(&rec("b", "s9", "2026-01-10"));
        c.add(&AbsenceRecord::from_json_str(r#"{"source":"a","id":"y","version":2,"deleted":true}"#).unwrap());
        let a: Vec<_> = c.sources().collect();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].0, "a");
        assert_eq!(a[0].1.schools.iter().collect::<Vec<_>>(), ["s1", "s2"]);
        assert_eq!(
            (a[0].1.from.to_string(), a[0].1.to.to_string()),
            ("2026-02-01".into(), "2026-04-30".into())
        );
        assert_eq!(c.school_count(), 3);
        assert_eq!(c.dates().unwrap().0.to_string(), "2026-01-10");
    }
}
