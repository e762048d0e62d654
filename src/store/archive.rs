//! The durable archive outbox: final case documents waiting for, on their
//! way to, or confirmed by the municipal archive (`crate::archive`).
//!
//! A document moves `queued` → `received` (the archive said «mottatt») →
//! `archived` (its kvittering came), or ends `failed` (refused, or out of
//! attempts) and is reported to leadership. Rows are never deleted. The
//! retention purge blanks the payload of archived documents (see
//! migration 0050 and `crate::archive`'s "Retention").

use super::{Store, StoreError, now};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

/// Where a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveState {
    /// Waiting to be sent (or sent again).
    Queued,
    /// The archive received it; waiting for the kvittering.
    Received,
    /// The archive journaled it.
    Archived,
    /// Refused, or out of attempts: needs a person.
    Failed,
}

impl ArchiveState {
    fn as_str(self) -> &'static str {
        match self {
            ArchiveState::Queued => "queued",
            ArchiveState::Received => "received",
            ArchiveState::Archived => "archived",
            ArchiveState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<ArchiveState, StoreError> {
        Ok(match s {
            "queued" => ArchiveState::Queued,
            "received" => ArchiveState::Received,
            "archived" => ArchiveState::Archived,
            "failed" => ArchiveState::Failed,
            other => return Err(StoreError::Corrupt(format!("ukjent arkivstatus «{other}»"))),
        })
    }
}

/// A document to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewArchiveEntry {
    /// `{case}/{kind}/{sequence}`: at most one entry per key.
    pub document_key: String,
    /// The case.
    pub case_number: String,
    /// The school (for reporting failures to its leadership).
    pub school: String,
    /// `referat`, `samarbeidsavtale`, … (`archive::DocumentKind::name`).
    pub document_kind: String,
    /// The journalpost's title.
    pub title: String,
    /// The file's name inside the message.
    pub file_reference: String,
    /// `arkivmelding.xml`.
    pub arkivmelding: String,
    /// The PDF/A.
    pub document: Vec<u8>,
}

/// A document in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveEntry {
    /// Row id.
    pub id: i64,
    /// The document key.
    pub document_key: String,
    /// The message id, the same on every attempt.
    pub message_id: String,
    /// The case.
    pub case_number: String,
    /// The school.
    pub school: String,
    /// The document kind's name.
    pub document_kind: String,
    /// The journalpost's title.
    pub title: String,
    /// The file's name inside the message.
    pub file_reference: String,
    /// The message (`None` once our copy is purged).
    pub arkivmelding: Option<String>,
    /// The PDF (`None` once our copy is purged).
    pub document: Option<Vec<u8>>,
    /// Where it is.
    pub state: ArchiveState,
    /// Attempts to send or to fetch the reply.
    pub attempts: i64,
    /// Attempts that failed.
    pub failures: i64,
    /// When it is next due.
    pub next_attempt_at: String,
    /// Why the last attempt failed (no personal data).
    pub last_error: Option<String>,
    /// The archive's journalpost id, once archived.
    pub journalpost_system_id: Option<String>,
    /// The journalpost number («år/sekvensnummer»), when the archive gave one.
    pub journalpost_number: Option<String>,
    /// The elevmappe's id in the archive.
    pub folder_system_id: Option<String>,
    /// Whether the archive created the elevmappe for this document.
    pub folder_created: Option<bool>,
    /// When the archive received it.
    pub received_at: Option<String>,
}

/// The outbox in numbers, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArchiveCounts {
    /// Waiting to be sent.
    pub queued: i64,
    /// Received, waiting for the kvittering.
    pub received: i64,
    /// Archived.
    pub archived: i64,
    /// Failed for good (needing a person).
    pub failed: i64,
    /// Failed attempts ever (a counter: it never goes down).
    pub failed_attempts_total: i64,
}

/// A document the archive did not take, for leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveProblem {
    /// Row id (for [`Store::archive_mark_notified`]).
    pub id: i64,
    /// The case.
    pub case_number: String,
    /// The school.
    pub school: String,
    /// The journalpost title («Samarbeidsavtale nr. 2, sak S-2026-0001»).
    pub title: String,
    /// Why (no personal data).
    pub error: String,
}

const COLUMNS: &str = "id, document_key, message_id, case_number, school, document_kind, title, file_reference, \
     arkivmelding, document, state, attempts, failures, next_attempt_at, last_error, journalpost_system_id, \
     journalpost_number, folder_system_id, folder_created, received_at";

fn entry(row: &AnyRow) -> Result<ArchiveEntry, StoreError> {
    Ok(ArchiveEntry {
        id: row.try_get("id")?,
        document_key: row.try_get("document_key")?,
        message_id: row.try_get("message_id")?,
        case_number: row.try_get("case_number")?,
        school: row.try_get("school")?,
        document_kind: row.try_get("document_kind")?,
        title: row.try_get("title")?,
        file_reference: row.try_get("file_reference")?,
        arkivmelding: row.try_get("arkivmelding")?,
        document: row.try_get("document")?,
        state: ArchiveState::parse(&row.try_get::<String, _>("state")?)?,
        attempts: row.try_get("attempts")?,
        failures: row.try_get("failures")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        journalpost_system_id: row.try_get("journalpost_system_id")?,
        journalpost_number: row.try_get("journalpost_number")?,
        folder_system_id: row.try_get("folder_system_id")?,
        folder_created: row.try_get::<Option<i64>, _>("folder_created")?.map(|v| v != 0),
        received_at: row.try_get("received_at")?,
    })
}

/// A message id as Fiks uses them: a random UUID (version 4).
fn new_message_id() -> String {
    let r = rand::random::<u128>();
    let r = (r & !(0xF000u128 << 64) | (0x4000u128 << 64)) & !(0xC000u128 << 48) | (0x8000u128 << 48);
    let h = format!("{r:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Error texts are kept short: they are for a person to read, not a dump.
fn short(error: &str) -> String {
    error.chars().take(500).collect()
}

impl Store {
    /// Queues a document for the archive. A document key already queued
    /// (in any state) is not queued again: the existing entry is returned,
    /// so a caller that crashed after queueing may simply call again.
    pub async fn archive_enqueue(&self, new: &NewArchiveEntry, at: DateTime<Utc>) -> Result<ArchiveEntry, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO archive_outbox (document_key, message_id, case_number, school, document_kind, title, \
             file_reference, arkivmelding, document, state, next_attempt_at, enqueued_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', $10, $11) ON CONFLICT (document_key) DO NOTHING",
        )
        .bind(new.document_key.as_str())
        .bind(new_message_id())
        .bind(new.case_number.as_str())
        .bind(new.school.as_str())
        .bind(new.document_kind.as_str())
        .bind(new.title.as_str())
        .bind(new.file_reference.as_str())
        .bind(new.arkivmelding.as_str())
        .bind(new.document.clone())
        .bind(stamp(at))
        .bind(now())
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM archive_outbox WHERE document_key = $1"
        )))
        .bind(new.document_key.as_str())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        entry(&row)
    }

    /// The entry of a document.
    pub async fn archive_entry(&self, document_key: &str) -> Result<Option<ArchiveEntry>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM archive_outbox WHERE document_key = $1"
        )))
        .bind(document_key)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(entry)
        .transpose()
    }

    /// Every entry of a case, oldest first.
    pub async fn archive_entries_of_case(&self, case_number: &str) -> Result<Vec<ArchiveEntry>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM archive_outbox WHERE case_number = $1 ORDER BY id"
        )))
        .bind(case_number)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(entry)
        .collect()
    }

    /// Entries to work on at `at`: queued or awaiting a kvittering, and due.
    pub async fn archive_due(&self, at: DateTime<Utc>, limit: i64) -> Result<Vec<ArchiveEntry>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM archive_outbox WHERE state IN ('queued', 'received') AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, id LIMIT $2"
        )))
        .bind(stamp(at))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(entry)
        .collect()
    }

    /// Records an attempt starting (sending or fetching the reply).
    pub async fn archive_attempt(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE archive_outbox SET attempts = attempts + 1 WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The archive received the message; the kvittering is next due at `next`.
    pub async fn archive_received(&self, id: i64, at: DateTime<Utc>, next: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE archive_outbox SET state = 'received', received_at = COALESCE(received_at, $1), next_attempt_at = $2 \
             WHERE id = $3 AND state IN ('queued', 'received')",
        )
        .bind(stamp(at))
        .bind(stamp(next))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Nothing to do until `next` (no kvittering yet; not a failure).
    pub async fn archive_wait(&self, id: i64, next: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE archive_outbox SET next_attempt_at = $1 WHERE id = $2")
            .bind(stamp(next))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The kvittering came: the document is archived. If its case has been
    /// purged meanwhile, our copy goes at once.
    pub async fn archive_archived(
        &self,
        id: i64,
        at: DateTime<Utc>,
        kvittering: &crate::archive::Kvittering,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE archive_outbox SET state = 'archived', archived_at = $1, last_error = NULL, \
             journalpost_system_id = $2, journalpost_number = $3, folder_system_id = $4, folder_created = $5 WHERE id = $6",
        )
        .bind(stamp(at))
        .bind(kvittering.journalpost_system_id.as_str())
        .bind(kvittering.journalpost_number.as_deref())
        .bind(kvittering.folder_system_id.as_deref())
        .bind(kvittering.folder_created.map(i64::from))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE archive_outbox SET arkivmelding = NULL, document = NULL WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM cases WHERE cases.number = archive_outbox.case_number)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An attempt failed and will be retried at `next`; `state` says whether
    /// the message is sent again (`Queued`) or only its reply fetched again
    /// (`Received`).
    pub async fn archive_retry(
        &self,
        id: i64,
        state: ArchiveState,
        error: &str,
        next: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE archive_outbox SET state = $1, failures = failures + 1, last_error = $2, next_attempt_at = $3 WHERE id = $4",
        )
        .bind(state.as_str())
        .bind(short(error))
        .bind(stamp(next))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The document failed for good: refused by the archive or out of
    /// attempts. It waits for a person ([`Store::archive_problems`],
    /// [`Store::archive_requeue`]).
    pub async fn archive_failed(&self, id: i64, error: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE archive_outbox SET state = 'failed', failures = failures + 1, last_error = $1, failed_at = $2, \
             notified_at = NULL WHERE id = $3",
        )
        .bind(short(error))
        .bind(stamp(at))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Puts a failed document back in the queue (after a person fixed the
    /// cause), with the same message id. `false` if it was not failed.
    pub async fn archive_requeue(&self, document_key: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE archive_outbox SET state = 'queued', attempts = 0, next_attempt_at = $1, failed_at = NULL \
             WHERE document_key = $2 AND state = 'failed'",
        )
        .bind(stamp(at))
        .bind(document_key)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The outbox in numbers.
    pub async fn archive_counts(&self) -> Result<ArchiveCounts, StoreError> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN state = 'queued' THEN 1 ELSE 0 END), 0) AS queued, \
                    COALESCE(SUM(CASE WHEN state = 'received' THEN 1 ELSE 0 END), 0) AS received, \
                    COALESCE(SUM(CASE WHEN state = 'archived' THEN 1 ELSE 0 END), 0) AS archived, \
                    COALESCE(SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END), 0) AS failed, \
                    CAST(COALESCE(SUM(failures), 0) AS BIGINT) AS failures FROM archive_outbox",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(ArchiveCounts {
            queued: row.try_get("queued")?,
            received: row.try_get("received")?,
            archived: row.try_get("archived")?,
            failed: row.try_get("failed")?,
            failed_attempts_total: row.try_get("failures")?,
        })
    }

    /// Failed documents leadership has not been told about, per school
    /// (`None`: all schools), oldest first.
    pub async fn archive_problems(&self, school: Option<&str>) -> Result<Vec<ArchiveProblem>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, case_number, school, title, last_error FROM archive_outbox \
             WHERE state = 'failed' AND notified_at IS NULL AND ($1 IS NULL OR school = $1) ORDER BY id",
        )
        .bind(school)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ArchiveProblem {
                    id: r.try_get("id")?,
                    case_number: r.try_get("case_number")?,
                    school: r.try_get("school")?,
                    title: r.try_get("title")?,
                    error: r.try_get::<Option<String>, _>("last_error")?.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Records that leadership was told about these failures.
    pub async fn archive_mark_notified(&self, ids: &[i64]) -> Result<(), StoreError> {
        let at = now();
        let mut tx = self.begin_write().await?;
        for id in ids {
            sqlx::query("UPDATE archive_outbox SET notified_at = $1 WHERE id = $2")
                .bind(at.as_str())
                .bind(*id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(key: &str) -> NewArchiveEntry {
        NewArchiveEntry {
            document_key: key.into(),
            case_number: "S-2026-0001".into(),
            school: "skole-1".into(),
            document_kind: "referat".into(),
            title: "Referat nr. 1, sak S-2026-0001".into(),
            file_reference: "referat-1.pdf".into(),
            arkivmelding: "<arkivmelding/>".into(),
            document: vec![0x25, 0x50, 0x44, 0x46, 0, 255],
        }
    }

    #[test]
    fn message_ids_are_uuids() {
        let id = new_message_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(id, new_message_id());
    }

    #[tokio::test]
    async fn a_document_is_queued_once_and_moves_through_its_states() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let t0 = Utc::now();
        let a = store.archive_enqueue(&new("S-2026-0001/referat/1"), t0).await.unwrap();
        let again = store.archive_enqueue(&new("S-2026-0001/referat/1"), t0).await.unwrap();
        assert_eq!(a, again, "same key, same entry, same message id");
        assert_eq!(a.document.as_deref(), Some(&[0x25, 0x50, 0x44, 0x46, 0, 255][..]));
        assert_eq!(store.archive_due(t0, 10).await.unwrap().len(), 1);

        store.archive_attempt(a.id).await.unwrap();
        store
            .archive_retry(
                a.id,
                ArchiveState::Queued,
                "HTTP 503",
                t0 + chrono::Duration::seconds(60),
            )
            .await
            .unwrap();
        assert!(
            store.archive_due(t0, 10).await.unwrap().is_empty(),
            "not due before the retry time"
        );
        let later = t0 + chrono::Duration::seconds(61);
        assert_eq!(store.archive_due(later, 10).await.unwrap().len(), 1);
        store.archive_received(a.id, later, later).await.unwrap();
        let k = crate::archive::Kvittering {
            journalpost_system_id: "jp-1".into(),
            journalpost_number: Some("2026/17".into()),
            journalpost_created: true,
            ..Default::default()
        };
        store.archive_archived(a.id, later, &k).await.unwrap();
        let done = store.archive_entry("S-2026-0001/referat/1").await.unwrap().unwrap();
        assert_eq!(done.state, ArchiveState::Archived);
        assert_eq!(done.journalpost_number.as_deref(), Some("2026/17"));
        assert_eq!((done.attempts, done.failures), (1, 1));
        // The case row does not exist in this store: its copy went at once.
        assert_eq!(done.document, None);
        assert_eq!(
            store.archive_counts().await.unwrap(),
            ArchiveCounts {
                archived: 1,
                failed_attempts_total: 1,
                ..Default::default()
            }
        );
    }

    #[tokio::test]
    async fn failures_are_surfaced_once_and_can_be_requeued() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let t0 = Utc::now();
        let a = store.archive_enqueue(&new("S-2026-0001/referat/1"), t0).await.unwrap();
        store.archive_failed(a.id, "Ukjent arkivdel", t0).await.unwrap();
        let problems = store.archive_problems(Some("skole-1")).await.unwrap();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].error, "Ukjent arkivdel");
        assert!(store.archive_problems(Some("skole-2")).await.unwrap().is_empty());
        store.archive_mark_notified(&[problems[0].id]).await.unwrap();
        assert!(store.archive_problems(None).await.unwrap().is_empty());
        assert_eq!(store.archive_counts().await.unwrap().failed, 1);
        assert!(store.archive_requeue("S-2026-0001/referat/1", t0).await.unwrap());
        assert!(!store.archive_requeue("S-2026-0001/referat/1", t0).await.unwrap());
        let e = store.archive_entry("S-2026-0001/referat/1").await.unwrap().unwrap();
        assert_eq!((e.state, e.message_id), (ArchiveState::Queued, a.message_id));
        assert_eq!(
            store.archive_counts().await.unwrap().failed_attempts_total,
            1,
            "a counter keeps its count"
        );
    }
}
