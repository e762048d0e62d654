//! The ingest pipeline shared by file import, HTTP and pulls: parsed items in,
//! stored in batches, each batch one transaction.

use crate::adapters::Parsed;
use crate::store::{IngestStats, QuarantineEntry, Store, StoreError};

/// Items per transaction.
pub const BATCH: usize = 10_000;

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
    for item in items {
        match item {
            Ok(Parsed::Record(r)) => records.push(r),
            Ok(Parsed::Rejected(q)) => rejected.push(q),
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
