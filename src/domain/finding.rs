//! Findings: a criterion of serious absence that holds for a pupil.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The inclusive date range a finding looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingWindow {
    /// First date inside the window.
    pub from: NaiveDate,
    /// Last date inside the window (the as-of date).
    pub to: NaiveDate,
}

/// One criterion holding for one pupil, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The pupil.
    pub pupil: String,
    /// The pupil's school, from the newest evidence record.
    pub school: String,
    /// The stable criterion code, e.g. `invalid-absence`.
    pub criterion: String,
    /// The id of the configured rule that found it (equal to the criterion
    /// in the Bærum preset; a criterion may have several rules).
    pub rule: String,
    /// The window the rule looked at.
    pub window: FindingWindow,
    /// What was measured, in `unit`.
    pub measured: f64,
    /// The configured threshold, in `unit`.
    pub threshold: f64,
    /// `lessons`, `days`, `occurrences` or `percent`.
    pub unit: String,
    /// The ids of the records that are the evidence, oldest first.
    pub evidence: Vec<String>,
    /// The subset of `evidence` that the school has not classified yet.
    pub unclassified: Vec<String>,
    /// One sentence in Norwegian saying why.
    pub explanation: String,
}

impl Finding {
    /// Whether any of the evidence is still unclassified, so the finding may
    /// be a false alarm.
    pub fn is_tentative(&self) -> bool {
        !self.unclassified.is_empty()
    }
}
