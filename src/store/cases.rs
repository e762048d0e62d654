//! Persisting cases: state, contact log, agreements, referrals, the
//! append-only audit log and the durable notification queue. The store
//! persists; it does not run the routine: [`crate::workflow`] loads a case
//! in a [`CaseTx`], applies the pure state machine, and saves the result,
//! its audit rows and its notices in the same transaction.

use super::records::{RECORD_SELECT, record_from_row};
use super::{Store, StoreError};
use crate::cases::model::Case;
use crate::cases::{Notice, Party, Role};
use crate::domain::AbsenceRecord;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// What went wrong with a case.
#[derive(Debug, thiserror::Error)]
pub enum CaseStoreError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No case has that number.
    #[error("fant ingen sak med nummer «{0}»")]
    NotFound(String),
    /// Someone else changed the case at the same time; try again.
    #[error("saken {0} ble endret samtidig av noen andre; prøv igjen")]
    Conflict(String),
}

impl From<sqlx::Error> for CaseStoreError {
    fn from(e: sqlx::Error) -> Self {
        CaseStoreError::Store(StoreError::Database(e))
    }
}

/// A case in a list: no more than chat would show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseSummary {
    /// Case number.
    pub number: String,
    /// School id.
    pub school: String,
    /// Initials and class.
    pub pupil_label: String,
    /// Phase number 1–4.
    pub phase: u8,
    /// Open.
    pub open: bool,
    /// The responsible person.
    pub responsible: String,
    /// The next deadline (RFC 3339).
    pub next_due: Option<String>,
    /// Long-term.
    pub long_term: bool,
}

/// One audit log row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Sequence.
    pub seq: i64,
    /// Case number.
    pub case: String,
    /// Who.
    pub actor: String,
    /// In which role.
    pub role: String,
    /// What (`read`, `open`, `finding:opened`, `tick`, or a command name).
    pub action: String,
    /// Details as JSON (never health data).
    pub detail: String,
    /// When (RFC 3339).
    pub at: String,
}

/// A queued notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueuedNotification {
    /// Sequence.
    pub seq: i64,
    /// The notice.
    pub notice: Notice,
    /// Extra facts for rendering (e.g. evaluation numbers).
    pub extra: serde_json::Value,
    /// When queued.
    pub created_at: String,
    /// When delivered, if yet.
    pub delivered_at: Option<String>,
    /// Delivery attempts.
    pub attempts: i64,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The kebab-case spelling of a role, as the audit log keeps it.
pub fn role_text(r: Role) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn case_from_row(row: &AnyRow) -> Result<Case, StoreError> {
    let number: String = row.try_get("number")?;
    let state: String = row.try_get("state")?;
    serde_json::from_str(&state).map_err(|e| StoreError::Corrupt(format!("cases {number}: {e}")))
}

impl CaseSummary {
    /// The summary of a case.
    pub fn of(c: &Case) -> CaseSummary {
        CaseSummary {
            number: c.number.clone(),
            school: c.pupil.school.clone(),
            pupil_label: c.pupil_label(),
            phase: c.phase.number(),
            open: c.is_open(),
            responsible: c.responsible.id.clone(),
            next_due: c.next_deadline().map(|d| ts(d.due)),
            long_term: c.long_term,
        }
    }
}

/// A write transaction over cases: everything the workflow needs to load a
/// case, change it and persist the change together with its audit rows,
/// mirror rows and notices, so that either all of it is stored or none.
pub struct CaseTx {
    tx: Transaction<'static, Any>,
}

impl Store {
    /// Starts a case transaction.
    pub async fn begin_cases(&self) -> Result<CaseTx, StoreError> {
        Ok(CaseTx {
            tx: self.begin_write().await?,
        })
    }

    /// The numbers of the open cases, in order.
    pub async fn open_case_numbers(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query("SELECT number FROM cases WHERE open = 1 ORDER BY number")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?)
    }
}

impl CaseTx {
    /// The case with `number`, if any.
    pub async fn case(&mut self, number: &str) -> Result<Option<Case>, StoreError> {
        sqlx::query("SELECT number, state FROM cases WHERE number = $1")
            .bind(number)
            .fetch_optional(&mut *self.tx)
            .await?
            .map(|r| case_from_row(&r))
            .transpose()
    }

    /// The open case of `pupil`, if any.
    pub async fn open_case_of(&mut self, pupil: &str) -> Result<Option<Case>, StoreError> {
        sqlx::query("SELECT number, state FROM cases WHERE pupil = $1 AND open = 1")
            .bind(pupil)
            .fetch_optional(&mut *self.tx)
            .await?
            .map(|r| case_from_row(&r))
            .transpose()
    }

    /// Inserts a new case row.
    pub async fn insert(&mut self, case: &Case, now: DateTime<Utc>) -> Result<(), StoreError> {
        let state = serde_json::to_string(case).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO cases (number, pupil, school, open, phase, responsible, next_due, long_term, revision, state, opened_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(case.number.as_str())
        .bind(case.pupil.id.as_str())
        .bind(case.pupil.school.as_str())
        .bind(i64::from(case.is_open()))
        .bind(i64::from(case.phase.number()))
        .bind(case.responsible.id.as_str())
        .bind(case.next_deadline().map(|d| ts(d.due)))
        .bind(i64::from(case.long_term))
        .bind(case.revision as i64)
        .bind(state)
        .bind(ts(case.opened_at))
        .bind(ts(now))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Updates a case row; `expected` is the revision the caller loaded.
    /// Fails with a conflict if someone else moved it meanwhile.
    pub async fn update(&mut self, case: &Case, expected: u64, now: DateTime<Utc>) -> Result<(), CaseStoreError> {
        let state = serde_json::to_string(case).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let done = sqlx::query(
            "UPDATE cases SET open = $1, phase = $2, responsible = $3, next_due = $4, long_term = $5, revision = $6, \
             state = $7, updated_at = $8 WHERE number = $9 AND revision = $10",
        )
        .bind(i64::from(case.is_open()))
        .bind(i64::from(case.phase.number()))
        .bind(case.responsible.id.as_str())
        .bind(case.next_deadline().map(|d| ts(d.due)))
        .bind(i64::from(case.long_term))
        .bind(case.revision as i64)
        .bind(state)
        .bind(ts(now))
        .bind(case.number.as_str())
        .bind(expected as i64)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(CaseStoreError::Conflict(case.number.clone()));
        }
        Ok(())
    }

    /// Appends an audit row: who (and in which role, as text), what, when.
    pub async fn audit(
        &mut self,
        case: &str,
        actor: &str,
        role: &str,
        action: &str,
        detail: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO case_audit (case_number, actor, role, action, detail, at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(case)
        .bind(actor)
        .bind(role)
        .bind(action)
        .bind(detail.to_string())
        .bind(ts(at))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Queues a notice with the facts the renderer needs besides the case
    /// (`extra`); a key already queued is skipped. Returns 1 if queued.
    pub async fn queue(
        &mut self,
        notice: &Notice,
        extra: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "INSERT INTO notifications (key, case_number, recipient, notice, extra, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(notice.key.as_str())
        .bind(notice.case.as_str())
        .bind(serde_json::to_string(&notice.recipient).unwrap_or_default())
        .bind(serde_json::to_string(&notice.kind).unwrap_or_default())
        .bind(extra.to_string())
        .bind(ts(now))
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected())
    }

    /// Writes the rows that mirror what a command added (contact log,
    /// agreements, referrals), so they can be queried without the JSON.
    pub async fn mirror(&mut self, before: &Case, after: &Case) -> Result<(), StoreError> {
        for c in &after.contacts[before.contacts.len().min(after.contacts.len())..] {
            sqlx::query(
                "INSERT INTO case_contacts (case_number, by_id, by_role, with_whom, at, channel, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(after.number.as_str())
            .bind(c.by.id.as_str())
            .bind(role_text(c.by.role))
            .bind(c.with.norwegian())
            .bind(ts(c.at))
            .bind(c.channel.norwegian())
            .bind(c.outcome.norwegian())
            .execute(&mut *self.tx)
            .await?;
        }
        for a in &after.agreements[before.agreements.len().min(after.agreements.len())..] {
            sqlx::query(
                "INSERT INTO case_agreements (case_number, number, made_at, valid_until, evaluation_date, body) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(after.number.as_str())
            .bind(i64::from(a.number))
            .bind(ts(a.made_at))
            .bind(a.valid_until.to_string())
            .bind(a.evaluation_date.to_string())
            .bind(serde_json::to_string(a).unwrap_or_default())
            .execute(&mut *self.tx)
            .await?;
        }
        for r in &after.referrals[before.referrals.len().min(after.referrals.len())..] {
            sqlx::query(
                "INSERT INTO case_referrals (case_number, agency, decided, sent, pedagogisk_rapport, legeerklaering_needed) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(after.number.as_str())
            .bind(r.agency.code())
            .bind(r.decided.to_string())
            .bind(r.sent.map(|d| d.to_string()))
            .bind(i64::from(r.pedagogisk_rapport))
            .bind(i64::from(r.legeerklaering_needed))
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }

    /// The next case number for `year`: `S-2026-0042`. Opaque, not personal.
    pub async fn next_case_number(&mut self, year: i32) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO case_numbers (year, last) VALUES ($1, 1) ON CONFLICT (year) DO UPDATE SET last = case_numbers.last + 1",
        )
        .bind(i64::from(year))
        .execute(&mut *self.tx)
        .await?;
        let last: i64 = sqlx::query("SELECT last FROM case_numbers WHERE year = $1")
            .bind(i64::from(year))
            .fetch_one(&mut *self.tx)
            .await?
            .try_get(0)?;
        Ok(format!("S-{year}-{last:04}"))
    }

    /// A pupil's live records from `from` to `to`, read inside the
    /// transaction (a one-connection SQLite pool would otherwise wait for
    /// itself).
    pub async fn records(
        &mut self,
        pupil: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<AbsenceRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_SELECT} FROM records WHERE pupil = $1 AND deleted = 0 AND date >= $2 AND date <= $3 ORDER BY date, source, id"
        )))
        .bind(pupil)
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Sets a meta value (such as a cursor) in this transaction.
    pub async fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(super::META_UPSERT)
            .bind(key)
            .bind(value)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Commits everything.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// Reads one case, and logs the read.
    pub async fn read_case(&self, number: &str, reader: &Party, now: DateTime<Utc>) -> Result<Case, CaseStoreError> {
        let mut tx = self.begin_cases().await?;
        let case = tx
            .case(number)
            .await?
            .ok_or_else(|| CaseStoreError::NotFound(number.to_string()))?;
        let role = role_text(reader.role);
        tx.audit(number, &reader.id, &role, "read", &serde_json::json!({}), now)
            .await?;
        tx.commit().await?;
        Ok(case)
    }

    /// Lists cases (open only unless `all`), optionally for one school;
    /// each listed case gets a `list` row in the audit log.
    pub async fn list_cases(
        &self,
        school: Option<&str>,
        all: bool,
        reader: &Party,
        now: DateTime<Utc>,
    ) -> Result<Vec<CaseSummary>, CaseStoreError> {
        let cases = self.cases_raw(school, all).await?;
        let mut tx = self.begin_cases().await?;
        let role = role_text(reader.role);
        for c in &cases {
            tx.audit(&c.number, &reader.id, &role, "list", &serde_json::json!({}), now)
                .await?;
        }
        tx.commit().await?;
        Ok(cases.iter().map(CaseSummary::of).collect())
    }

    /// Logs that `reader` listed `cases` (one `list` row each).
    pub async fn list_cases_as(&self, cases: &[Case], reader: &Party, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = self.begin_cases().await?;
        let role = role_text(reader.role);
        for c in cases {
            tx.audit(&c.number, &reader.id, &role, "list", &serde_json::json!({}), now)
                .await?;
        }
        tx.commit().await
    }

    /// Cases without audit, for digests computed by tilstede itself.
    pub async fn cases_raw(&self, school: Option<&str>, all: bool) -> Result<Vec<Case>, StoreError> {
        let open = if all { "" } else { " AND open = 1" };
        let rows = match school {
            Some(s) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT number, state FROM cases WHERE school = $1{open} ORDER BY number"
                )))
                .bind(s)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT number, state FROM cases WHERE 1 = 1{open} ORDER BY number"
                )))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(case_from_row).collect()
    }

    /// The audit log of a case, oldest first.
    pub async fn case_audit(&self, number: &str) -> Result<Vec<AuditEntry>, StoreError> {
        sqlx::query(
            "SELECT seq, case_number, actor, role, action, detail, at FROM case_audit WHERE case_number = $1 ORDER BY seq",
        )
        .bind(number)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(AuditEntry {
                seq: r.try_get("seq")?,
                case: r.try_get("case_number")?,
                actor: r.try_get("actor")?,
                role: r.try_get("role")?,
                action: r.try_get("action")?,
                detail: r.try_get("detail")?,
                at: r.try_get("at")?,
            })
        })
        .collect()
    }

    /// The contact log of a case as stored rows: (by, with, at, channel, outcome).
    pub async fn case_contacts(
        &self,
        number: &str,
    ) -> Result<Vec<(String, String, String, String, String)>, StoreError> {
        sqlx::query(
            "SELECT by_id, with_whom, at, channel, outcome FROM case_contacts WHERE case_number = $1 ORDER BY seq",
        )
        .bind(number)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            ))
        })
        .collect()
    }

    /// Referral agencies of a case as stored, oldest first.
    pub async fn case_referrals(&self, number: &str) -> Result<Vec<String>, StoreError> {
        sqlx::query("SELECT agency FROM case_referrals WHERE case_number = $1 ORDER BY seq")
            .bind(number)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
    }

    /// Notifications, oldest first: only undelivered unless `all`.
    pub async fn notifications(&self, all: bool, limit: i64) -> Result<Vec<QueuedNotification>, StoreError> {
        let filter = if all { "" } else { "WHERE delivered_at IS NULL " };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT seq, key, case_number, recipient, notice, extra, created_at, delivered_at, attempts FROM notifications {filter}ORDER BY seq LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let seq: i64 = r.try_get("seq")?;
            let bad = |what: &str, e: serde_json::Error| StoreError::Corrupt(format!("notifications {seq} {what}: {e}"));
            let recipient: String = r.try_get("recipient")?;
            let notice: String = r.try_get("notice")?;
            let extra: String = r.try_get("extra")?;
            Ok(QueuedNotification {
                seq,
                notice: Notice {
                    key: r.try_get("key")?,
                    case: r.try_get("case_number")?,
                    recipient: serde_json::from_str(&recipient).map_err(|e| bad("recipient", e))?,
                    kind: serde_json::from_str(&notice).map_err(|e| bad("notice", e))?,
                },
                extra: serde_json::from_str(&extra).map_err(|e| bad("extra", e))?,
                created_at: r.try_get("created_at")?,
                delivered_at: r.try_get("delivered_at")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .collect()
    }

    /// Marks a notification delivered (idempotent: a second call changes nothing).
    pub async fn mark_notification_delivered(&self, key: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE notifications SET delivered_at = $1, attempts = attempts + 1 WHERE key = $2 AND delivered_at IS NULL",
        )
        .bind(ts(at))
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Counts a failed delivery attempt.
    pub async fn mark_notification_failed(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE notifications SET attempts = attempts + 1 WHERE key = $1 AND delivered_at IS NULL")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
