//! The retention purge: closed cases older than the configured period are
//! deleted, with everything tilstede kept about them, and the bot's Matrix
//! messages about them are redacted (through the outbox, so an outage only
//! delays the redactions).

use super::{EventRef, NewPost, PostKind, Store, StoreError, now};
use chrono::{DateTime, Utc};
use sqlx::Row;

/// The reason shown on redacted messages.
pub const REDACTION_REASON: &str = "Oppbevaringstiden for saken er ute.";

/// What a purge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    /// The case numbers purged.
    pub cases: Vec<String>,
    /// Redactions queued.
    pub redactions: usize,
    /// Stored extension sets no record refers to any more, deleted.
    pub extension_sets: u64,
}

impl Store {
    /// Purges cases closed before `closed_before`. Each case goes in one
    /// transaction: its rows, queued notices and unsent posts are deleted,
    /// sent posts are queued for redaction and their stored text blanked,
    /// and a `purged` row is added to the audit log. The audit log itself is
    /// append-only (the database refuses changes to it): it is the record of
    /// who did and read what, and is kept.
    pub async fn purge_closed_cases(&self, closed_before: DateTime<Utc>) -> Result<Purged, StoreError> {
        let mut out = Purged::default();
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
