//! Persisted findings, recomputed only for the pupils a change touched.

use super::records::{eval_record_from_row, eval_records_sql};
use super::{Store, StoreError, direct, now};
use crate::domain::record::parse_date;
use crate::domain::{AbsenceRecord, Finding, FindingWindow};
use crate::rules::{Evaluator, RuleSet};
use chrono::NaiveDate;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;

/// Pupils recomputed per transaction.
const PUPILS_PER_BATCH: usize = 500;
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

    fn kind(&self) -> &'static str {
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
    /// The changes, in the order they were recorded.
    pub changes: Vec<FindingChange>,
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

fn date_text(d: NaiveDate) -> String {
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
        let evaluator = Evaluator::new(set, as_of);
        let mut refresh = Refresh {
            full,
            ..Refresh::default()
        };
        // The batches commit on one connection. On a SQLite file it does not
        // checkpoint the log in its commits (each such checkpoint syncs the
        // file); the store's next writer after the refresh does.
        let mut conn = self.pool.acquire().await?;
        let mut readers = self.sqlite_file().map(direct::Readers::new);
        let checkpoints = match readers {
            Some(_) => {
                let row = sqlx::query("PRAGMA wal_autocheckpoint")
                    .fetch_optional(&mut *conn)
                    .await?;
                let before = row.map(|r| r.try_get::<i64, _>(0)).transpose()?;
                sqlx::query("PRAGMA wal_autocheckpoint = 0").execute(&mut *conn).await?;
                before
            }
            None => None,
        };
        let done = async {
            loop {
                let (claimed, evaluated) = self
                    .refresh_batch(&mut conn, &mut readers, &evaluator, &mut refresh.changes)
                    .await?;
                refresh.pupils += evaluated;
                // A short batch means the queue was drained.
                if claimed < PUPILS_PER_BATCH {
                    return Ok::<(), StoreError>(());
                }
            }
        }
        .await;
        if readers.is_some() {
            let restored = sqlx::query(AssertSqlSafe(format!(
                "PRAGMA wal_autocheckpoint = {}",
                checkpoints.unwrap_or(1000)
            )))
            .execute(&mut *conn)
            .await;
            if restored.is_err() {
                // Not back in the pool with its checkpoints off.
                conn.close_on_drop();
            }
        }
        done.map(|()| refresh)
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
            ("findings_as_of", date_text(as_of)),
        ] {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
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

    /// Recomputes one batch of dirty pupils; returns how many were claimed
    /// from the queue and how many of them were evaluated.
    async fn refresh_batch(
        &self,
        conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
        readers: &mut Option<direct::Readers>,
        evaluator: &Evaluator<'_>,
        changes: &mut Vec<FindingChange>,
    ) -> Result<(usize, u64), StoreError> {
        let mut tx = match self.backend {
            super::Backend::Sqlite => sqlx::Connection::begin_with(&mut **conn, "BEGIN IMMEDIATE").await?,
            super::Backend::Postgres => sqlx::Connection::begin(&mut **conn).await?,
        };
        // Claiming the pupils first takes SQLite's write lock before reading,
        // so no concurrent import can slip in between read and write.
        let pupils: Vec<String> = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM dirty_pupils WHERE pupil IN (SELECT pupil FROM dirty_pupils ORDER BY pupil LIMIT {PUPILS_PER_BATCH}) RETURNING pupil"
        )))
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
        let list = self.backend.placeholders(1, pupils.len());
        let n = pupils.len();
        let (from, to) = (date_text(evaluator.earliest()), date_text(evaluator.as_of()));
        let (pupils, evaluated) = match readers.take() {
            // A SQLite file is read on direct connections, the pupils split
            // over the cores: the write lock this transaction holds keeps the
            // records as they are.
            Some(mut direct) => {
                let (set, as_of) = (evaluator.set().clone(), evaluator.as_of());
                let (direct, pupils, evaluated) = tokio::task::spawn_blocking(move || {
                    let evaluator = Evaluator::new(&set, as_of);
                    let evaluated = direct::evaluate_pupils(&mut direct, &evaluator, &pupils, &from, &to);
                    (direct, pupils, evaluated)
                })
                .await
                .map_err(|e| StoreError::Worker(e.to_string()))?;
                *readers = Some(direct);
                (pupils, evaluated)
            }
            None => {
                let mut q = sqlx::query(AssertSqlSafe(eval_records_sql(self.backend, n)));
                for p in &pupils {
                    q = q.bind(p.as_str());
                }
                let rows = q.bind(from).bind(to).fetch_all(&mut *tx).await?;
                let records: Result<Vec<AbsenceRecord>, StoreError> = rows.iter().map(eval_record_from_row).collect();
                let evaluated = records.map(|records| evaluate(evaluator, &pupils, &records));
                (pupils, evaluated)
            }
        };
        let evaluated = evaluated?;

        let mut q = sqlx::query(AssertSqlSafe(format!(
            "SELECT {FINDING_SELECT} FROM findings WHERE pupil IN ({list})"
        )));
        for p in &pupils {
            q = q.bind(p.as_str());
        }
        let old_rows = q.fetch_all(&mut *tx).await?;
        let mut old: HashMap<(String, String), (Finding, String)> = HashMap::new();
        for row in &old_rows {
            let (f, first_seen) = finding_from_row(row)?;
            old.insert((f.pupil.clone(), f.rule.clone()), (f, first_seen));
        }

        let stamp = now();
        let mut new_rows: Vec<(Finding, String)> = Vec::new();
        let mut batch_changes = Vec::new();
        for findings in evaluated {
            for f in findings {
                let first_seen = match old.remove(&(f.pupil.clone(), f.rule.clone())) {
                    None => {
                        batch_changes.push(FindingChange::Opened { finding: f.clone() });
                        stamp.clone()
                    }
                    Some((before, first_seen)) => {
                        if before.evidence != f.evidence || before.unclassified != f.unclassified {
                            batch_changes.push(FindingChange::Updated { finding: f.clone() });
                        }
                        first_seen
                    }
                };
                new_rows.push((f, first_seen));
            }
        }
        let mut cleared: Vec<_> = old.into_values().collect();
        cleared.sort_by(|a, b| (&a.0.pupil, &a.0.rule).cmp(&(&b.0.pupil, &b.0.rule)));
        batch_changes.extend(
            cleared
                .into_iter()
                .map(|(finding, _)| FindingChange::Cleared { finding }),
        );

        let mut q = sqlx::query(AssertSqlSafe(format!("DELETE FROM findings WHERE pupil IN ({list})")));
        for p in &pupils {
            q = q.bind(p.as_str());
        }
        q.execute(&mut *tx).await?;
        for chunk in new_rows.chunks(200) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    format!(
                        "({})",
                        self.backend.placeholders(i * FINDING_COLUMNS + 1, FINDING_COLUMNS)
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO findings (pupil, rule, criterion, school, window_from, window_to, measured, threshold, unit, evidence, unclassified, explanation, first_seen) VALUES {}",
                values.join(", ")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (f, first_seen) in chunk {
                q = q
                    .bind(f.pupil.as_str())
                    .bind(f.rule.as_str())
                    .bind(f.criterion.as_str())
                    .bind(f.school.as_str())
                    .bind(date_text(f.window.from))
                    .bind(date_text(f.window.to))
                    .bind(f.measured)
                    .bind(f.threshold)
                    .bind(f.unit.as_str())
                    .bind(serde_json::to_string(&f.evidence).unwrap_or_default())
                    .bind(serde_json::to_string(&f.unclassified).unwrap_or_default())
                    .bind(f.explanation.as_str())
                    .bind(first_seen.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        // In order, so the event log's sequence follows the changes.
        for chunk in batch_changes.chunks(200) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("({})", self.backend.placeholders(i * 5 + 1, 5)))
                .collect();
            let mut q = sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO finding_events (pupil, rule, change, finding, created_at) VALUES {}",
                values.join(", ")
            )));
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
        changes.extend(batch_changes);
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
        rows.iter().map(|r| finding_from_row(r).map(|(f, _)| f)).collect()
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
        rows.iter().map(|r| finding_from_row(r).map(|(f, _)| f)).collect()
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

fn finding_from_row(row: &AnyRow) -> Result<(Finding, String), StoreError> {
    let text = |c: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(c)?) };
    let date = |c: &str| -> Result<NaiveDate, StoreError> {
        let s = text(c)?;
        parse_date(&s).map_err(|_| StoreError::Corrupt(format!("findings.{c} «{s}»")))
    };
    let list = |c: &str| -> Result<Vec<String>, StoreError> {
        let s = text(c)?;
        serde_json::from_str(&s).map_err(|_| StoreError::Corrupt(format!("findings.{c}")))
    };
    Ok((
        Finding {
            pupil: text("pupil")?,
            school: text("school")?,
            criterion: text("criterion")?,
            rule: text("rule")?,
            window: FindingWindow {
                from: date("window_from")?,
                to: date("window_to")?,
            },
            measured: row.try_get("measured")?,
            threshold: row.try_get("threshold")?,
            unit: text("unit")?,
            evidence: list("evidence")?,
            unclassified: list("unclassified")?,
            explanation: text("explanation")?,
        },
        text("first_seen")?,
    ))
}
