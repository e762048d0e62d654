//! Canonical types shared by every part of tilstede: absence records, findings,
//! and the date arithmetic the routine is written in.
//!
//! Everything here is pure data and pure functions; no IO.

pub mod dates;
pub mod finding;
pub mod identity;
pub mod plausibility;
pub mod record;
pub mod reject;
pub mod roster;

pub use finding::{Finding, FindingWindow};
pub use record::{AbsenceRecord, Kind, Reason, RecordError, RecordKey, Validity};
pub use reject::{Fault, RejectCode};
