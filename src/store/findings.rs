//! Persisted findings, recomputed only for the pupils a change touched.

use super::records::{Columns, eval_record_from_row, eval_records_sql};
use super::{Backend, Store, StoreError, direct, now};
use crate::domain::record::parse_date;
use crate::domain::{AbsenceRecord, Finding, FindingWindow};
use crate::rules::{Evaluator, RuleSet};
use chrono::NaiveDate;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;

/// Pupils recomputed per transaction.
pub(super) const PUPILS_PER_BATCH: usize = 500;
/// Columns bound per finding row.
const FINDING_COLUMNS: usize = 13;

/// How a pupil's finding for one rule changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum FindingChange {
    /// The rule holds where it did not.
    Opened {
        /// The new finding.
        finding: Finding,
    },
    /// The rule still holds with different evidence.
    Updated {
        /// The new finding.
        finding: Finding,
    },
    /// The rule no longer holds.
    Cleared {
        /// The finding as it was.
        finding: Finding,
    },
}

impl FindingChange {
    /// The finding the change is about.
    pub fn finding(&self) -> &Finding {
        match self {
            FindingChange::Opened { finding }
            | FindingChange::Updated { finding }
            | FindingChange::Cleared { finding } => finding,
        }
    }

    pub(super) fn kind(&self) -> &'static str {
        match self {
            FindingChange::Opened { .. } => "opened",
            FindingChange::Updated { .. } => "updated",
            FindingChange::Cleared { .. } => "cleared",
        }
    }
}

/// What one refresh did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Refresh {
    /// Pupils recomputed.
    pub pupils: u64,
    /// Whether every pupil was recomputed (new as-of date or rules).
    pub full: bool,
    /// Findings opened, updated and cleared.
    pub opened: u64,
    /// See [`Refresh::opened`].
    pub updated: u64,
    /// See [`Refresh::opened`].
    pub cleared: u64,
    /// The first changes, in the order they were recorded, at most
    /// [`Refresh::KEPT_CHANGES`]: a refresh after a large import changes
    /// tens of thousands of findings, which the finding event log holds
    /// ([`Store::finding_events_after`]) and memory need not.
    pub changes: Vec<FindingChange>,
}

impl Refresh {
    /// The most changes a [`Refresh`] keeps in [`Refresh::changes`].
    pub const KEPT_CHANGES: usize = 1_000;

    /// Counts a batch's changes and keeps them while there is room.
    pub(super) fn add(&mut self, changes: Vec<FindingChange>) {
        for c in &changes {
            match c {
                FindingChange::Opened { .. } => self.opened += 1,
                FindingChange::Updated { .. } => self.updated += 1,
                FindingChange::Cleared { .. } => self.cleared += 1,
            }
        }
        let room = Self::KEPT_CHANGES.saturating_sub(self.changes.len());
        self.changes.extend(changes.into_iter().take(room));
    }

    /// All changes counted, kept or not.
    pub fn change_count(&self) -> u64 {
        self.opened + self.updated + self.cleared
    }
}

/// A stable fingerprint of what findings depend on besides the records.
fn basis(set: &RuleSet, as_of: NaiveDate) -> String {
    let digest = Sha256::digest(format!("{set:?}").as_bytes());
    format!("{as_of}|{}", hex::encode(&digest[..12]))
}

/// The findings of each of `pupils` (in that order) from `records`, the
/// live records of those pupils in the evaluator's window.
pub(super) fn evaluate(evaluator: &Evaluator<'_>, pupils: &[String], records: &[AbsenceRecord]) -> Vec<Vec<Finding>> {
    let mut by_pupil: HashMap<&str, Vec<&AbsenceRecord>> = HashMap::new();
    for r in records {
        by_pupil.entry(r.pupil.as_str()).or_default().push(r);
    }
    pupils
        .iter()
        .map(|p| evaluator.pupil(p, by_pupil.get(p.as_str()).map(Vec::as_slice).unwrap_or(&[])))
        .collect()
}

/// `YYYY-MM-DD`.
pub(super) fn day_text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

impl Store {
    /// Brings the stored findings up to date for `as_of` under `set`.
    ///
    /// Only pupils whose records changed since the last refresh are
    /// recomputed, unless the as-of date or the rules changed, in which case
    /// every pupil is. Changes are also appended to the finding event log.
    pub async fn refresh_findings(&self, set: &RuleSet, as_of: NaiveDate) -> Result<Refresh, StoreError> {
        let basis = basis(set, as_of);
        let stored = self.meta("findings_basis").await?;
        let full = stored.as_deref() != Some(basis.as_str());
        if full {
            self.start_full_refresh(stored.is_none(), &basis, as_of).await?;
        }
        let mut refresh = Refresh {
            full,
            ..Refresh::default()
        };
        if let Some(path) = self.sqlite_file() {
            // A SQLite file is refreshed on direct connections (see
            // [`direct::refresh`]), on a blocking thread.
            let set = set.clone();
            let lane = self.lane.clone();
            return tokio::task::spawn_blocking(move || {
                direct::refresh(&path, &Evaluator::new(&set, as_of), refresh, Some(&lane))
            })
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?;
        }
        let evaluator = Evaluator::new(set, as_of);
        loop {
            let (claimed, evaluated) = self.refresh_batch(&evaluator, &mut refresh).await?;
            refresh.pupils += evaluated;
            // A short batch means the queue was drained.
            if claimed < PUPILS_PER_BATCH {
                return Ok(refresh);
            }
        }
    }

    /// Queues every pupil for a refresh under a new basis, and records the
    /// basis, in one transaction: a refresh that stops half-way is finished
    /// by the next one from the queue. A store that was never refreshed
    /// (`first`) and holds no findings needs no queueing: every writer
    /// queues the pupils whose records it changes, and nobody has taken
    /// them off the queue yet.
    async fn start_full_refresh(&self, first: bool, basis: &str, as_of: NaiveDate) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let has_findings = sqlx::query("SELECT 1 FROM findings LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !first || has_findings {
            sqlx::query(
                "INSERT INTO dirty_pupils (pupil) \
                 SELECT pupil FROM (SELECT pupil FROM records WHERE pupil <> '' UNION SELECT pupil FROM findings) AS every_pupil \
                 WHERE true ON CONFLICT (pupil) DO NOTHING",
            )
            .execute(&mut *tx)
            .await?;
        }
        for (key, value) in [
            ("findings_basis", basis.to_string()),
            ("findings_as_of", day_text(as_of)),
        ] {
            sqlx::query(super::META_UPSERT)
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The as-of date of the stored findings, if any were computed.
    pub async fn findings_as_of(&self) -> Result<Option<NaiveDate>, StoreError> {
        Ok(self.meta("findings_as_of").await?.and_then(|s| parse_date(&s).ok()))
    }

    /// Recomputes one batch of dirty pupils through the pool (PostgreSQL, or
    /// SQLite in memory); returns how many were claimed from the queue and
    /// how many of them were evaluated.
    async fn refresh_batch(
        &self,
        evaluator: &Evaluator<'_>,
        refresh: &mut Refresh,
    ) -> Result<(usize, u64), StoreError> {
        let mut tx = self.begin_write().await?;
        // Claiming the pupils first takes SQLite's write lock before reading,
        // so no concurrent import can slip in between read and write.
        let pupils: Vec<String> = sqlx::query(AssertSqlSafe(claim_sql()))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        let claimed = pupils.len();
        // Tombstones for records never seen have no pupil.
        let pupils: Vec<String> = pupils.into_iter().filter(|p| !p.is_empty()).collect();
        if pupils.is_empty() {
            tx.commit().await?;
            return Ok((claimed, 0));
        }
        let n = pupils.len();
        let (from, to) = (day_text(evaluator.earliest()), day_text(evaluator.as_of()));
        let mut q = sqlx::query(AssertSqlSafe(eval_records_sql(self.backend, n)));
        for p in &pupils {
            q = q.bind(p.as_str());
        }
        let rows = q.bind(from).bind(to).fetch_all(&mut *tx).await?;
        let records = rows
            .iter()
            .map(eval_record_from_row)
            .collect::<Result<Vec<AbsenceRecord>, StoreError>>()?;
        let evaluated = evaluate(evaluator, &pupils, &records);

        let mut q = sqlx::query(AssertSqlSafe(old_findings_sql(self.backend, n)));
        for p in &pupils {
            q = q.bind(p.as_str());
        }
        let old = q
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(finding_from_columns)
            .collect::<Result<Vec<_>, _>>()?;
        let stamp = now();
        let plan = plan_batch(old, evaluated, &stamp);

        let mut q = sqlx::query(AssertSqlSafe(delete_findings_sql(self.backend, n)));
        for p in &pupils {
            q = q.bind(p.as_str());
        }
        q.execute(&mut *tx).await?;
        for chunk in plan.rows.chunks(ROWS_PER_INSERT) {
            let mut q = sqlx::query(AssertSqlSafe(insert_findings_sql(self.backend, chunk.len())));
            for (f, first_seen) in chunk {
                let [evidence, unclassified] = finding_lists(f);
                q = q
                    .bind(f.pupil.as_str())
                    .bind(f.rule.as_str())
                    .bind(f.criterion.as_str())
                    .bind(f.school.as_str())
                    .bind(day_text(f.window.from))
                    .bind(day_text(f.window.to))
                    .bind(f.measured)
                    .bind(f.threshold)
                    .bind(f.unit.as_str())
                    .bind(evidence)
                    .bind(unclassified)
                    .bind(f.explanation.as_str())
                    .bind(first_seen.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        // In order, so the event log's sequence follows the changes.
        for chunk in plan.changes.chunks(ROWS_PER_INSERT) {
            let mut q = sqlx::query(AssertSqlSafe(insert_events_sql(self.backend, chunk.len())));
            for c in chunk {
                let f = c.finding();
                q = q
                    .bind(f.pupil.as_str())
                    .bind(f.rule.as_str())
                    .bind(c.kind())
                    .bind(serde_json::to_string(f).unwrap_or_default())
                    .bind(stamp.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        refresh.add(plan.changes);
        Ok((claimed, n as u64))
    }

    /// The stored findings, optionally for one school, sorted by pupil and rule.
    pub async fn findings(&self, school: Option<&str>) -> Result<Vec<Finding>, StoreError> {
        let rows = match school {
            Some(s) => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {FINDING_SELECT} FROM findings WHERE school = $1 ORDER BY pupil, rule"
                )))
                .bind(s)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {FINDING_SELECT} FROM findings ORDER BY pupil, rule"
                )))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(|r| finding_from_columns(r).map(|(f, _)| f)).collect()
    }

    /// How many findings are stored.
    pub async fn finding_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM findings")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(n as u64)
    }

    /// One pupil's stored findings.
    pub async fn pupil_findings(&self, pupil: &str) -> Result<Vec<Finding>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {FINDING_SELECT} FROM findings WHERE pupil = $1 ORDER BY rule"
        )))
        .bind(pupil)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| finding_from_columns(r).map(|(f, _)| f)).collect()
    }

    /// Finding changes recorded after `seq`, oldest first, at most `limit`.
    pub async fn finding_events_after(&self, seq: i64, limit: i64) -> Result<Vec<(i64, FindingChange)>, StoreError> {
        let rows = sqlx::query("SELECT seq, change, finding FROM finding_events WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(seq)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.try_get("seq")?;
                let change: String = r.try_get("change")?;
                let text: String = r.try_get("finding")?;
                let finding: Finding = serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("finding_events {seq}: {e}")))?;
                let change = match change.as_str() {
                    "opened" => FindingChange::Opened { finding },
                    "updated" => FindingChange::Updated { finding },
                    "cleared" => FindingChange::Cleared { finding },
                    other => return Err(StoreError::Corrupt(format!("finding_events {seq}: change «{other}»"))),
                };
                Ok((seq, change))
            })
            .collect()
    }
}

const FINDING_SELECT: &str = "pupil, rule, criterion, school, window_from, window_to, measured, threshold, unit, evidence, unclassified, explanation, first_seen";

/// Takes up to [`PUPILS_PER_BATCH`] pupils off the refresh queue, returning them.
pub(super) fn claim_sql() -> String {
    format!(
        "DELETE FROM dirty_pupils WHERE pupil IN \
         (SELECT pupil FROM dirty_pupils ORDER BY pupil LIMIT {PUPILS_PER_BATCH}) RETURNING pupil"
    )
}

/// Finding or event rows per INSERT statement.
pub(super) const ROWS_PER_INSERT: usize = 200;

/// The stored findings of `n` pupils (`$1..`), in [`FINDING_SELECT`] columns.
pub(super) fn old_findings_sql(backend: Backend, n: usize) -> String {
    format!(
        "SELECT {FINDING_SELECT} FROM findings WHERE pupil IN ({})",
        backend.placeholders(1, n)
    )
}

/// Deletes the findings of `n` pupils (`$1..`).
pub(super) fn delete_findings_sql(backend: Backend, n: usize) -> String {
    format!("DELETE FROM findings WHERE pupil IN ({})", backend.placeholders(1, n))
}

/// Inserts `rows` findings, [`FINDING_COLUMNS`] values each in the order of
/// [`FINDING_SELECT`].
pub(super) fn insert_findings_sql(backend: Backend, rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|i| format!("({})", backend.placeholders(i * FINDING_COLUMNS + 1, FINDING_COLUMNS)))
        .collect();
    format!("INSERT INTO findings ({FINDING_SELECT}) VALUES {}", values.join(", "))
}

/// Appends `rows` events to the finding log: pupil, rule, change, the
/// finding's JSON and the time, each.
pub(super) fn insert_events_sql(backend: Backend, rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|i| format!("({})", backend.placeholders(i * 5 + 1, 5)))
        .collect();
    format!(
        "INSERT INTO finding_events (pupil, rule, change, finding, created_at) VALUES {}",
        values.join(", ")
    )
}

/// A finding's evidence and unclassified lists as stored (JSON).
pub(super) fn finding_lists(f: &Finding) -> [String; 2] {
    [
        serde_json::to_string(&f.evidence).unwrap_or_default(),
        serde_json::to_string(&f.unclassified).unwrap_or_default(),
    ]
}

/// What a refresh batch writes: its pupils' findings, each with when it was
/// first seen, and the changes from the stored ones, in log order.
pub(super) struct BatchPlan {
    pub(super) rows: Vec<(Finding, String)>,
    pub(super) changes: Vec<FindingChange>,
}

/// Compares a batch's stored findings (`old`, with when each was first
/// seen) with its evaluation; a finding new at `stamp` is first seen then.
pub(super) fn plan_batch(old: Vec<(Finding, String)>, evaluated: Vec<Vec<Finding>>, stamp: &str) -> BatchPlan {
    let mut old: HashMap<(String, String), (Finding, String)> = old
        .into_iter()
        .map(|(f, first_seen)| ((f.pupil.clone(), f.rule.clone()), (f, first_seen)))
        .collect();
    let mut plan = BatchPlan {
        rows: Vec::new(),
        changes: Vec::new(),
    };
    for findings in evaluated {
        for f in findings {
            let first_seen = match old.remove(&(f.pupil.clone(), f.rule.clone())) {
                None => {
                    plan.changes.push(FindingChange::Opened { finding: f.clone() });
                    stamp.to_string()
                }
                Some((before, first_seen)) => {
                    if before.evidence != f.evidence || before.unclassified != f.unclassified {
                        plan.changes.push(FindingChange::Updated { finding: f.clone() });
                    }
                    first_seen
                }
            };
            plan.rows.push((f, first_seen));
        }
    }
    let mut cleared: Vec<_> = old.into_values().collect();
    cleared.sort_by(|a, b| (&a.0.pupil, &a.0.rule).cmp(&(&b.0.pupil, &b.0.rule)));
    plan.changes.extend(
        cleared
            .into_iter()
            .map(|(finding, _)| FindingChange::Cleared { finding }),
    );
    plan
}

/// Reads a finding selected with [`FINDING_SELECT`], by position, and when
/// it was first seen.
pub(super) fn finding_from_columns(row: &impl Columns) -> Result<(Finding, String), StoreError> {
    let date = |i: usize, c: &str| -> Result<NaiveDate, StoreError> {
        let s = row.text(i)?;
        parse_date(&s).map_err(|_| StoreError::Corrupt(format!("findings.{c} «{s}»")))
    };
    let list = |i: usize, c: &str| -> Result<Vec<String>, StoreError> {
        let s = row.text(i)?;
        serde_json::from_str(&s).map_err(|_| StoreError::Corrupt(format!("findings.{c}")))
    };
    let real = |i: usize| -> Result<f64, StoreError> {
        row.opt_real(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("findings: kolonne {i} er tom")))
    };
    Ok((
        Finding {
            pupil: row.text(0)?,
            rule: row.text(1)?,
            criterion: row.text(2)?,
            school: row.text(3)?,
            window: FindingWindow {
                from: date(4, "window_from")?,
                to: date(5, "window_to")?,
            },
            measured: real(6)?,
            threshold: real(7)?,
            unit: row.text(8)?,
            evidence: list(9, "evidence")?,
            unclassified: list(10, "unclassified")?,
            explanation: row.text(11)?,
        },
        row.text(12)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(i: usize) -> Finding {
        Finding {
            pupil: format!("p{i}"),
            school: "k".into(),
            criterion: "c".into(),
            rule: "r".into(),
            window: FindingWindow {
                from: NaiveDate::MIN,
                to: NaiveDate::MIN,
            },
            measured: 1.0,
            threshold: 1.0,
            unit: "lessons".into(),
            evidence: vec![],
            unclassified: vec![],
            explanation: String::new(),
        }
    }

    /// Every change is counted; only the first [`Refresh::KEPT_CHANGES`]
    /// are kept, so a refresh after a large import stays small.
    #[test]
    fn refresh_counts_every_change_and_keeps_the_first() {
        let mut r = Refresh::default();
        let batch = |from: usize, n: usize| -> Vec<FindingChange> {
            (from..from + n)
                .map(|i| match i % 3 {
                    0 => FindingChange::Opened { finding: finding(i) },
                    1 => FindingChange::Updated { finding: finding(i) },
                    _ => FindingChange::Cleared { finding: finding(i) },
                })
                .collect()
        };
        r.add(batch(0, 600));
        r.add(batch(600, 900));
        assert_eq!((r.opened, r.updated, r.cleared), (500, 500, 500));
        assert_eq!(r.change_count(), 1_500);
        assert_eq!(r.changes.len(), Refresh::KEPT_CHANGES);
        assert_eq!(r.changes, batch(0, 1_000));
    }
}
