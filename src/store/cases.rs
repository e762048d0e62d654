//! Persisting cases: state, contact log, agreements, referrals, the
//! append-only audit log and the durable notification queue. The workflow
//! itself is pure ([`crate::cases`]); this file loads, applies, and saves in
//! one transaction, so a notice is queued exactly when its change is stored.

use super::records::{RECORD_SELECT, record_from_row};
use super::{Store, StoreError};
use crate::cases::machine::evaluation_prompt;
use crate::cases::model::Case;
use crate::cases::numbers::{Comparison, compare};
use crate::cases::{
    CaseConfig, CaseError, Command, FindingChangeKind, FindingEvent, Notice, NoticeKind, Party, PupilRef, Role, apply,
    escalation_party, on_finding, open_case, tick,
};
use crate::domain::dates::school_date_utc;
use crate::domain::roster::Level;
use crate::store::FindingChange;
use chrono::{DateTime, Datelike, Duration, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// Finding events handled per call of [`Store::sync_cases`].
const SYNC_BATCH: i64 = 500;
/// The meta key of the cursor into the finding event log.
const CURSOR_KEY: &str = "cases_finding_cursor";

/// What went wrong with a case.
#[derive(Debug, thiserror::Error)]
pub enum CaseStoreError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The workflow refused the step.
    #[error(transparent)]
    Refused(#[from] CaseError),
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

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncStats {
    /// Finding events read.
    pub events: u64,
    /// Cases opened.
    pub opened: u64,
    /// Cases changed.
    pub changed: u64,
    /// Notifications queued.
    pub notices: u64,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn role_text(r: Role) -> String {
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

async fn audit(
    tx: &mut Transaction<'static, Any>,
    case: &str,
    actor: &Party,
    action: &str,
    detail: &serde_json::Value,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO case_audit (case_number, actor, role, action, detail, at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(case)
    .bind(actor.id.as_str())
    .bind(role_text(actor.role))
    .bind(action)
    .bind(detail.to_string())
    .bind(ts(at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn system() -> Party {
    Party::new("tilstede", Role::System)
}

impl Store {
    /// Inserts or updates a case row; `expected` is the revision the caller
    /// loaded (None for a new case). Fails with a conflict if it moved.
    async fn save_case(
        tx: &mut Transaction<'static, Any>,
        case: &Case,
        expected: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<(), CaseStoreError> {
        let state = serde_json::to_string(case).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let next_due = case.next_deadline().map(|d| ts(d.due));
        match expected {
            None => {
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
                .bind(next_due)
                .bind(i64::from(case.long_term))
                .bind(case.revision as i64)
                .bind(state)
                .bind(ts(case.opened_at))
                .bind(ts(now))
                .execute(&mut **tx)
                .await?;
            }
            Some(rev) => {
                let done = sqlx::query(
                    "UPDATE cases SET open = $1, phase = $2, responsible = $3, next_due = $4, long_term = $5, revision = $6, \
                     state = $7, updated_at = $8 WHERE number = $9 AND revision = $10",
                )
                .bind(i64::from(case.is_open()))
                .bind(i64::from(case.phase.number()))
                .bind(case.responsible.id.as_str())
                .bind(next_due)
                .bind(i64::from(case.long_term))
                .bind(case.revision as i64)
                .bind(state)
                .bind(ts(now))
                .bind(case.number.as_str())
                .bind(rev as i64)
                .execute(&mut **tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Err(CaseStoreError::Conflict(case.number.clone()));
                }
            }
        }
        Ok(())
    }

    /// Queues notices (a key already queued is skipped), adding facts the
    /// pure machine cannot know, such as evaluation numbers.
    async fn queue(
        tx: &mut Transaction<'static, Any>,
        case: &Case,
        notices: &[Notice],
        now: DateTime<Utc>,
        lessons_per_day: u32,
    ) -> Result<u64, CaseStoreError> {
        let mut n = 0;
        for notice in notices {
            let extra = match &notice.kind {
                NoticeKind::EvaluationDue {
                    made, evaluation_date, ..
                } => {
                    let to = (*evaluation_date).min(school_date_utc(now)).max(*made);
                    let from = *made - Duration::days((to - *made).num_days() + 1);
                    // Read inside the transaction: a one-connection SQLite pool
                    // would otherwise wait for itself.
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {RECORD_SELECT} FROM records WHERE pupil = $1 AND deleted = 0 AND date >= $2 AND date <= $3 ORDER BY date, source, id"
                    )))
                    .bind(case.pupil.id.as_str())
                    .bind(from.to_string())
                    .bind(to.to_string())
                    .fetch_all(&mut **tx)
                    .await?;
                    let records: Vec<_> = rows.iter().map(record_from_row).collect::<Result<_, _>>()?;
                    serde_json::json!({ "numbers": compare(&records, *made, to, lessons_per_day) })
                }
                _ => serde_json::json!({}),
            };
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
            .execute(&mut **tx)
            .await?;
            n += done.rows_affected();
        }
        Ok(n)
    }

    /// Writes the rows that mirror what a command added (contact log,
    /// agreements, referrals), so they can be queried without the JSON.
    async fn mirror(tx: &mut Transaction<'static, Any>, before: &Case, after: &Case) -> Result<(), sqlx::Error> {
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
            .execute(&mut **tx)
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
            .execute(&mut **tx)
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
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// The next case number for `year`: `S-2026-0042`. Opaque, not personal.
    async fn next_case_number(tx: &mut Transaction<'static, Any>, year: i32) -> Result<String, sqlx::Error> {
        sqlx::query(
            "INSERT INTO case_numbers (year, last) VALUES ($1, 1) ON CONFLICT (year) DO UPDATE SET last = case_numbers.last + 1",
        )
        .bind(i64::from(year))
        .execute(&mut **tx)
        .await?;
        let last: i64 = sqlx::query("SELECT last FROM case_numbers WHERE year = $1")
            .bind(i64::from(year))
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?;
        Ok(format!("S-{year}-{last:04}"))
    }

    async fn open_case_row(tx: &mut Transaction<'static, Any>, pupil: &str) -> Result<Option<Case>, StoreError> {
        sqlx::query("SELECT number, state FROM cases WHERE pupil = $1 AND open = 1")
            .bind(pupil)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| case_from_row(&r))
            .transpose()
    }

    /// The pupil as a case sees them, from the roster (a pupil missing from
    /// the roster still gets a case, with the stricter barneskole deadlines).
    async fn pupil_ref(&self, pupil: &str, school: &str) -> Result<(PupilRef, Option<String>), StoreError> {
        Ok(match self.pupil_context(pupil).await? {
            Some(ctx) => (
                PupilRef {
                    id: ctx.pupil.id.clone(),
                    school: ctx.pupil.school.clone(),
                    initials: ctx.pupil.initials(),
                    class_name: ctx.class.as_ref().map(|c| c.name.clone()),
                    level: ctx.pupil.level(),
                },
                ctx.contact_teachers.first().map(|t| t.id.clone()),
            ),
            None => (
                PupilRef {
                    id: pupil.to_string(),
                    school: school.to_string(),
                    initials: "–".into(),
                    class_name: None,
                    level: Level::Barneskole,
                },
                None,
            ),
        })
    }

    /// Feeds new finding events into cases: opens a case for a pupil without
    /// an open one, and updates open cases. Keeps its own cursor; each event
    /// is handled in one transaction with the cursor, so a crash repeats
    /// nothing and loses nothing.
    pub async fn sync_cases(&self, config: &CaseConfig, now: DateTime<Utc>) -> Result<SyncStats, CaseStoreError> {
        let mut stats = SyncStats::default();
        loop {
            let cursor: i64 = self.meta(CURSOR_KEY).await?.and_then(|s| s.parse().ok()).unwrap_or(0);
            let events = self.finding_events_after(cursor, SYNC_BATCH).await?;
            if events.is_empty() {
                return Ok(stats);
            }
            for (seq, change) in events {
                stats.events += 1;
                let f = change.finding();
                let event = FindingEvent {
                    change: match change {
                        FindingChange::Opened { .. } => FindingChangeKind::Opened,
                        FindingChange::Updated { .. } => FindingChangeKind::Updated,
                        FindingChange::Cleared { .. } => FindingChangeKind::Cleared,
                    },
                    criterion: f.criterion.clone(),
                    tentative: f.is_tentative(),
                };
                let pupil = self.pupil_ref(&f.pupil, &f.school).await?;
                let mut tx = self.begin_write().await?;
                let detail = serde_json::json!({ "criterion": f.criterion, "rule": f.rule, "seq": seq });
                match Self::open_case_row(&mut tx, &f.pupil).await? {
                    Some(mut case) => {
                        let before = case.revision;
                        let notices = on_finding(&mut case, &event, now, config);
                        if case.revision != before {
                            Self::save_case(&mut tx, &case, Some(before), now).await?;
                            let action = format!("finding:{}", change_name(event.change));
                            audit(&mut tx, &case.number, &system(), &action, &detail, now).await?;
                            stats.changed += 1;
                        }
                        stats.notices += Self::queue(&mut tx, &case, &notices, now, config.lessons_per_day).await?;
                    }
                    None if event.change != FindingChangeKind::Cleared => {
                        let (pref, teacher) = pupil;
                        let number = Self::next_case_number(&mut tx, school_date_utc(now).year()).await?;
                        let escalate = escalation_party(config, &pref.school);
                        let (case, notices) = open_case(&number, pref, teacher, escalate, &event, now, config);
                        Self::save_case(&mut tx, &case, None, now).await?;
                        audit(&mut tx, &number, &system(), "open", &detail, now).await?;
                        stats.opened += 1;
                        stats.notices += Self::queue(&mut tx, &case, &notices, now, config.lessons_per_day).await?;
                    }
                    None => {}
                }
                sqlx::query(super::META_UPSERT)
                    .bind(CURSOR_KEY)
                    .bind(seq.to_string())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }
    }

    /// Applies a person's step to a case; the refusal, if any, says why.
    pub async fn apply_case_command(
        &self,
        number: &str,
        actor: &Party,
        command: &Command,
        now: DateTime<Utc>,
        config: &CaseConfig,
    ) -> Result<(Case, Vec<Notice>), CaseStoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT number, state FROM cases WHERE number = $1")
            .bind(number)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| CaseStoreError::NotFound(number.to_string()))?;
        let before = case_from_row(&row)?;
        let mut case = before.clone();
        let detail = serde_json::to_value(command).unwrap_or_default();
        let notices = match apply(&mut case, actor, command, now, config) {
            Ok(n) => n,
            Err(e) => {
                // A refused attempt is part of the story too.
                audit(
                    &mut tx,
                    number,
                    actor,
                    &format!("refused:{}", command.name()),
                    &serde_json::json!({ "why": e.to_string() }),
                    now,
                )
                .await?;
                tx.commit().await?;
                return Err(e.into());
            }
        };
        Self::save_case(&mut tx, &case, Some(before.revision), now).await?;
        Self::mirror(&mut tx, &before, &case).await?;
        audit(&mut tx, number, actor, command.name(), &detail, now).await?;
        Self::queue(&mut tx, &case, &notices, now, config.lessons_per_day).await?;
        tx.commit().await?;
        tracing::info!(case = number, command = command.name(), "case changed");
        Ok((case, notices))
    }

    /// Moves the clock for every open case: reminders, escalations,
    /// reviews, long-term marking. Returns the notices queued.
    pub async fn tick_cases(&self, config: &CaseConfig, now: DateTime<Utc>) -> Result<Vec<Notice>, CaseStoreError> {
        let numbers: Vec<String> = sqlx::query("SELECT number FROM cases WHERE open = 1 ORDER BY number")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        let mut all = Vec::new();
        for number in numbers {
            let mut tx = self.begin_write().await?;
            let Some(row) = sqlx::query("SELECT number, state FROM cases WHERE number = $1 AND open = 1")
                .bind(number.as_str())
                .fetch_optional(&mut *tx)
                .await?
            else {
                continue;
            };
            let mut case = case_from_row(&row)?;
            let before = case.revision;
            let notices = tick(&mut case, now, config);
            if case.revision != before {
                Self::save_case(&mut tx, &case, Some(before), now).await?;
                let keys: Vec<&str> = notices.iter().map(|n| n.key.as_str()).collect();
                audit(
                    &mut tx,
                    &number,
                    &system(),
                    "tick",
                    &serde_json::json!({ "notices": keys }),
                    now,
                )
                .await?;
                Self::queue(&mut tx, &case, &notices, now, config.lessons_per_day).await?;
            }
            tx.commit().await?;
            all.extend(notices);
        }
        Ok(all)
    }

    /// Reads one case, and logs the read.
    pub async fn read_case(&self, number: &str, reader: &Party, now: DateTime<Utc>) -> Result<Case, CaseStoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT number, state FROM cases WHERE number = $1")
            .bind(number)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| CaseStoreError::NotFound(number.to_string()))?;
        let case = case_from_row(&row)?;
        audit(&mut tx, number, reader, "read", &serde_json::json!({}), now).await?;
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
        let mut tx = self.begin_write().await?;
        for c in &cases {
            audit(&mut tx, &c.number, reader, "list", &serde_json::json!({}), now).await?;
        }
        tx.commit().await?;
        Ok(cases.iter().map(CaseSummary::of).collect())
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

    /// Before/after numbers for a case's newest agreement, up to `today`.
    pub async fn agreement_numbers(
        &self,
        case: &Case,
        now: DateTime<Utc>,
        lessons_per_day: u32,
    ) -> Result<Option<Comparison>, StoreError> {
        let Some(NoticeKind::EvaluationDue {
            made, evaluation_date, ..
        }) = evaluation_prompt(case).or_else(|| {
            case.current_agreement().map(|a| NoticeKind::EvaluationDue {
                agreement: a.number,
                made: school_date_utc(a.made_at),
                evaluation_date: a.evaluation_date,
            })
        })
        else {
            return Ok(None);
        };
        let to = evaluation_date.min(school_date_utc(now)).max(made);
        let len = (to - made).num_days() + 1;
        let records = self
            .pupil_records(&case.pupil.id, made - Duration::days(len), to)
            .await?;
        Ok(Some(compare(&records, made, to, lessons_per_day)))
    }
}

fn change_name(c: FindingChangeKind) -> &'static str {
    match c {
        FindingChangeKind::Opened => "opened",
        FindingChangeKind::Updated => "updated",
        FindingChangeKind::Cleared => "cleared",
    }
}
