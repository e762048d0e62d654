//! The retention purges.
//!
//! - Closed cases older than the configured period are deleted, with
//!   everything tilstede kept about them, and the bot's Matrix messages
//!   about them are redacted (through the outbox, so an outage only delays
//!   the redactions). Their audit rows keep who, what and when, with the
//!   details scrubbed, and the finding events that tied them to the pupil
//!   are deleted.
//! - Absence data (records, tombstones, finding events, extension sets)
//!   dated before the retention cutoff is deleted ([`Store::purge_expired`]),
//!   except what an open case still depends on.

use super::{EventRef, NewPost, PostKind, Store, StoreError, now};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;

/// The reason shown on redacted messages.
pub const REDACTION_REASON: &str = "Oppbevaringstiden for saken er ute.";

/// The meta key of the case workflow's cursor into the finding event log:
/// events up to it have been read.
pub const FINDING_CURSOR: &str = "cases_finding_cursor";

/// Pupils whose old records go in one transaction of [`Store::purge_expired`]:
/// short transactions, so pushes never wait long behind a purge.
const PUPIL_BATCH: i64 = 200;

/// Finding events looked at per transaction of [`Store::purge_expired`].
const EVENT_BATCH: i64 = 5000;

/// Pupils with an open case: their data is kept whatever its age.
const NO_OPEN_CASE: &str = "NOT EXISTS (SELECT 1 FROM cases c WHERE c.pupil = {table}.pupil AND c.open = 1)";

/// What a purge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    /// The case numbers purged.
    pub cases: Vec<String>,
    /// Redactions queued.
    pub redactions: usize,
    /// Stored extension sets no record refers to any more, deleted.
    pub extension_sets: u64,
    /// Audit rows of the purged cases whose details were scrubbed.
    pub audit_rows_scrubbed: u64,
    /// Finding events that tied the purged cases to their pupils, deleted.
    pub finding_events: u64,
}

/// What a purge of expired absence data deleted (counts only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Canonical records dated before the cutoff.
    pub records: u64,
    /// Tombstones (deleted records) dated before the cutoff.
    pub tombstones: u64,
    /// Finding events written before the cutoff.
    pub finding_events: u64,
    /// Extension sets no record refers to any more (SQLite).
    pub extension_sets: u64,
}

impl Expired {
    /// Whether anything was deleted.
    pub fn is_empty(&self) -> bool {
        *self == Expired::default()
    }
}

impl Store {
    /// Purges cases closed before `closed_before`. Each case goes in one
    /// transaction: its rows, queued notices and unsent posts are deleted,
    /// sent posts are queued for redaction and their stored text blanked,
    /// and a `purged` row is added to the audit log. The audit log is the
    /// record of who did and read what, and is kept: the database refuses
    /// every change to it but one, the scrub done here, which sets the
    /// details of a purged case's rows to `{}` (its risks, goals, Plan B,
    /// the finding events it came from) and leaves who, what and when.
    /// The finding events of the case's pupil up to the last one the case
    /// read are deleted too (every event read so far, when the pupil has no
    /// other open case), so nothing leads from the case number back to the
    /// pupil.
    pub async fn purge_closed_cases(&self, closed_before: DateTime<Utc>) -> Result<Purged, StoreError> {
        let mut out = Purged::default();
        let cursor: i64 = self
            .meta(FINDING_CURSOR)
            .await?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let candidates: Vec<(String, String)> = sqlx::query("SELECT number, state FROM cases WHERE open = 0")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, StoreError>>()?;
        for (number, state) in candidates {
            let case: crate::cases::model::Case =
                serde_json::from_str(&state).map_err(|e| StoreError::Corrupt(format!("cases {number}: {e}")))?;
            let crate::cases::model::Status::Closed { at, .. } = case.status else {
                continue;
            };
            if at >= closed_before {
                continue;
            }
            let mut tx = self.begin_write().await?;
            // Posts tagged with the case, and any other post naming it (a
            // command's answer, a listing).
            let named = format!("%{number}%");
            let sent: Vec<(String, String)> = sqlx::query(
                "SELECT DISTINCT room_key, event_id FROM matrix_outbox WHERE (case_number = $1 OR body LIKE $2) \
                 AND event_id IS NOT NULL AND event_id <> '' AND kind <> 'redaction'",
            )
            .bind(number.as_str())
            .bind(named.as_str())
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, StoreError>>()?;
            sqlx::query(
                "DELETE FROM matrix_outbox_media WHERE outbox_id IN (SELECT id FROM matrix_outbox WHERE case_number = $1 OR body LIKE $2)",
            )
            .bind(number.as_str())
            .bind(named.as_str())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM matrix_outbox WHERE (case_number = $1 OR body LIKE $2) AND delivered_at IS NULL AND kind <> 'redaction'",
            )
            .bind(number.as_str())
            .bind(named.as_str())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE matrix_outbox SET body = '', html = '', mentions = '[]' WHERE (case_number = $1 OR body LIKE $2) AND kind <> 'redaction'",
            )
            .bind(number.as_str())
            .bind(named.as_str())
            .execute(&mut *tx)
            .await?;
            for (room, event) in &sent {
                let post = NewPost {
                    room_key: room.clone(),
                    kind: PostKind::Redaction,
                    anchor: None,
                    thread: None,
                    target: Some(EventRef::Event(event.clone())),
                    body: REDACTION_REASON.into(),
                    html: String::new(),
                    mentions: Vec::new(),
                    media: None,
                };
                Self::enqueue_post_in(&mut tx, &post, Some(&number)).await?;
            }
            for table in [
                "case_contacts",
                "case_agreements",
                "case_referrals",
                "notifications",
                "chat_cards",
            ] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE case_number = $1"
                )))
                .bind(number.as_str())
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("DELETE FROM matrix_room_plans WHERE room_key = $1")
                .bind(crate::matrix::case_room(&number))
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM cases WHERE number = $1")
                .bind(number.as_str())
                .execute(&mut *tx)
                .await?;
            // The finding events the case read, named in its audit rows.
            let details: Vec<String> = sqlx::query("SELECT detail FROM case_audit WHERE case_number = $1")
                .bind(number.as_str())
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            let read_up_to = details
                .iter()
                .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok()?.get("seq")?.as_i64())
                .max()
                .unwrap_or(0);
            let other_open: Option<String> = sqlx::query("SELECT number FROM cases WHERE pupil = $1 AND open = 1")
                .bind(case.pupil.id.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
            let events_up_to = if other_open.is_some() {
                read_up_to
            } else {
                read_up_to.max(cursor)
            };
            out.finding_events += sqlx::query("DELETE FROM finding_events WHERE pupil = $1 AND seq <= $2")
                .bind(case.pupil.id.as_str())
                .bind(events_up_to)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            out.audit_rows_scrubbed +=
                sqlx::query("UPDATE case_audit SET detail = '{}' WHERE case_number = $1 AND detail <> '{}'")
                    .bind(number.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            sqlx::query(
                "INSERT INTO case_audit (case_number, actor, role, action, detail, at) VALUES ($1, 'tilstede', 'system', 'purged', '{}', $2)",
            )
            .bind(number.as_str())
            .bind(now())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(case = %number, redactions = sent.len(), "closed case purged");
            out.redactions += sent.len();
            out.cases.push(number);
        }
        out.extension_sets = self.purge_unused_extension_sets().await?;
        Ok(out)
    }

    /// Purges absence data that has outlived its retention period: records
    /// and tombstones dated before `cutoff`, finding events written before
    /// it, and the extension sets no record uses any more. A pupil with an
    /// open case keeps all of it: the case's evidence, the numbers its
    /// evaluations are built from and the events it follows come from
    /// there. Works in short transactions (a batch of pupils, a batch of
    /// events), so pushes keep flowing; an interrupted purge goes on where
    /// it stopped the next time. Logs counts only.
    pub async fn purge_expired(&self, cutoff: NaiveDate) -> Result<Expired, StoreError> {
        let mut out = Expired::default();
        let cutoff_text = cutoff.to_string();
        let keep_open = NO_OPEN_CASE.replace("{table}", "records");
        // Records, pupil by pupil along the (pupil, date) index.
        let mut after = String::new();
        loop {
            let pupils: Vec<String> = sqlx::query(
                "SELECT DISTINCT pupil FROM records WHERE pupil > $1 AND date < $2 ORDER BY pupil LIMIT $3",
            )
            .bind(after.as_str())
            .bind(cutoff_text.as_str())
            .bind(PUPIL_BATCH)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
            let Some(last) = pupils.last() else { break };
            after = last.clone();
            let list = self.backend.placeholders(2, pupils.len());
            let first = self.backend.placeholders(1, 1);
            let mut tx = self.begin_write().await?;
            for (deleted, count) in [(0, &mut out.records), (1, &mut out.tombstones)] {
                let sql = format!(
                    "DELETE FROM records WHERE date < {first} AND pupil IN ({list}) AND deleted = {deleted} AND {keep_open}"
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(cutoff_text.as_str());
                for p in &pupils {
                    q = q.bind(p.as_str());
                }
                *count += q.execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
        }
        // Finding events, in order of the log.
        let keep_open = NO_OPEN_CASE.replace("{table}", "finding_events");
        let mut after = 0i64;
        loop {
            let upto: Option<i64> = sqlx::query(
                "SELECT MAX(seq) FROM (SELECT seq FROM finding_events WHERE seq > $1 AND created_at < $2 ORDER BY seq LIMIT $3) AS batch",
            )
            .bind(after)
            .bind(cutoff_text.as_str())
            .bind(EVENT_BATCH)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
            let Some(upto) = upto else { break };
            let mut tx = self.begin_write().await?;
            out.finding_events += sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM finding_events WHERE seq > $1 AND seq <= $2 AND created_at < $3 AND {keep_open}"
            )))
            .bind(after)
            .bind(upto)
            .bind(cutoff_text.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            after = upto;
        }
        out.extension_sets = self.purge_unused_extension_sets().await?;
        if !out.is_empty() {
            tracing::info!(
                records = out.records,
                tombstones = out.tombstones,
                finding_events = out.finding_events,
                extension_sets = out.extension_sets,
                "expired absence data purged"
            );
        }
        Ok(out)
    }

    /// Deletes the stored extension sets (SQLite) that no record refers to
    /// any more, its records since corrected to other codes: what the
    /// store no longer needs, it does not keep. Writers find a set's id
    /// inside the transaction that writes the rows referring to it, and
    /// this runs in a write transaction of its own, so a set in use is
    /// never taken away.
    pub async fn purge_unused_extension_sets(&self) -> Result<u64, StoreError> {
        if self.backend != super::Backend::Sqlite {
            // PostgreSQL keeps the extensions in the row.
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "DELETE FROM record_extensions \
             WHERE id NOT IN (SELECT extensions_ref FROM records WHERE extensions_ref IS NOT NULL)",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}
