//! Protocol engines that turn source data into canonical records.
//!
//! Every adapter yields [`Parsed`] items: a record, or a rejected input with
//! its location and reason for the quarantine. Adapters never stop at the
//! first bad item; what came before and after it is still delivered.

pub mod jsonl;

use crate::domain::AbsenceRecord;
use crate::store::QuarantineEntry;

/// One item read from a source.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A good record.
    Record(AbsenceRecord),
    /// Input that was rejected, for the quarantine.
    Rejected(QuarantineEntry),
}
