//! The durable Matrix outbox, the registry of the bot's rooms, and the set of
//! chat commands already handled.
//!
//! Every post gets its transaction id when it is enqueued and keeps it, so a
//! resend after a crash is recognised by the homeserver and not duplicated.

use super::{Store, StoreError, now};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// What kind of Matrix event a post becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostKind {
    /// An `m.notice` message (HTML and plain body).
    Notice,
    /// An edit (`m.replace`) of the notice in `target`.
    Edit,
    /// A reaction (annotation) on `target`; its body is the key. Reactions are
    /// not encrypted, so the key must never carry data.
    Reaction,
    /// A redaction of `target` (the retention purge); its body is the reason.
    Redaction,
    /// An encrypted `m.image` (a chart); its body is the description, the
    /// bytes are in [`NewPost::media`].
    Image,
    /// An encrypted `m.file` (a PDF document); its body is the file name.
    File,
}

impl PostKind {
    fn as_str(self) -> &'static str {
        match self {
            PostKind::Notice => "notice",
            PostKind::Edit => "edit",
            PostKind::Reaction => "reaction",
            PostKind::Redaction => "redaction",
            PostKind::Image => "image",
            PostKind::File => "file",
        }
    }

    fn parse(s: &str) -> Result<PostKind, StoreError> {
        Ok(match s {
            "notice" => PostKind::Notice,
            "edit" => PostKind::Edit,
            "reaction" => PostKind::Reaction,
            "redaction" => PostKind::Redaction,
            "image" => PostKind::Image,
            "file" => PostKind::File,
            other => return Err(StoreError::Corrupt(format!("ukjent utboks-type «{other}»"))),
        })
    }
}

/// A reference to an event the post relates to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventRef {
    /// An earlier post in the same room, by its anchor name (its event id is
    /// known only once it is delivered).
    Anchor(String),
    /// An event already on the homeserver.
    Event(String),
}

impl EventRef {
    fn encode(&self) -> String {
        match self {
            EventRef::Anchor(a) => format!("anchor:{a}"),
            EventRef::Event(e) => format!("event:{e}"),
        }
    }

    fn decode(s: &str) -> Result<EventRef, StoreError> {
        if let Some(a) = s.strip_prefix("anchor:") {
            Ok(EventRef::Anchor(a.to_string()))
        } else if let Some(e) = s.strip_prefix("event:") {
            Ok(EventRef::Event(e.to_string()))
        } else {
            Err(StoreError::Corrupt(format!("ugyldig hendelsesreferanse «{s}»")))
        }
    }
}

/// A post to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPost {
    /// The room, by its key in the room registry (`school:…`, `direct:…`, `case:…`).
    pub room_key: String,
    /// What it becomes.
    pub kind: PostKind,
    /// A name later posts can refer to (e.g. `card:2026-0001`); unique per room.
    pub anchor: Option<String>,
    /// The thread root, for a post in a thread.
    pub thread: Option<EventRef>,
    /// The edited event (for [`PostKind::Edit`]) or reacted-to event (for
    /// [`PostKind::Reaction`]).
    pub target: Option<EventRef>,
    /// The plain-text body (or the reaction key).
    pub body: String,
    /// The HTML body (empty for reactions).
    pub html: String,
    /// Users to mention (`m.mentions`).
    pub mentions: Vec<String>,
    /// The image or file of an [`PostKind::Image`] or [`PostKind::File`]
    /// post. Stored apart: entries read back from the outbox have `None`
    /// here, and delivery reads the bytes with [`Store::outbox_media`].
    pub media: Option<Media>,
}

/// The bytes of an image or file post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// MIME type (`image/png`, `application/pdf`).
    pub mime: String,
    /// The file name shown to readers (no personal data).
    pub file_name: String,
    /// Width in pixels, for images.
    pub width: Option<u32>,
    /// Height in pixels, for images.
    pub height: Option<u32>,
    /// The content.
    pub data: Vec<u8>,
}

/// A post as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Position in the outbox; delivery follows it within a room.
    pub id: i64,
    /// The batch this post was merged into (the first post's id), when the
    /// outbox coalesced a backlog under rate limiting.
    pub batch: Option<i64>,
    /// The stable transaction id.
    pub txn_id: String,
    /// The post.
    pub post: NewPost,
    /// Failed delivery attempts so far.
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The Matrix event id once delivered.
    pub event_id: Option<String>,
}

/// A room the bot manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixRoom {
    /// The registry key (`school:…`, `direct:…`, `case:…`).
    pub room_key: String,
    /// The Matrix room id.
    pub room_id: String,
    /// `ressursteam`, `direct` or `case`.
    pub kind: String,
    /// Who is expected in the room (the bot included).
    pub members: Vec<String>,
    /// Posting has stopped, with this reason code.
    pub blocked: Option<String>,
}

/// Counts of the outbox, for status output and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxCounts {
    /// Waiting for delivery.
    pub pending: i64,
    /// Delivered.
    pub delivered: i64,
}

const ENTRY_COLUMNS: &str = "id, txn_id, room_key, kind, anchor, thread_ref, target_ref, body, html, mentions, attempts, event_id, batch_id, last_error";

fn entry_from_row(row: &AnyRow) -> Result<OutboxEntry, StoreError> {
    let decode_ref = |col: &str| -> Result<Option<EventRef>, StoreError> {
        row.try_get::<Option<String>, _>(col)?
            .map(|s| EventRef::decode(&s))
            .transpose()
    };
    let mentions: String = row.try_get("mentions")?;
    Ok(OutboxEntry {
        id: row.try_get("id")?,
        batch: row.try_get("batch_id")?,
        txn_id: row.try_get("txn_id")?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        event_id: row.try_get("event_id")?,
        post: NewPost {
            room_key: row.try_get("room_key")?,
            kind: PostKind::parse(&row.try_get::<String, _>("kind")?)?,
            anchor: row.try_get("anchor")?,
            thread: decode_ref("thread_ref")?,
            target: decode_ref("target_ref")?,
            body: row.try_get("body")?,
            html: row.try_get("html")?,
            mentions: serde_json::from_str(&mentions)
                .map_err(|e| StoreError::Corrupt(format!("utboksens mentions: {e}")))?,
            media: None,
        },
    })
}

fn room_from_row(row: &AnyRow) -> Result<MatrixRoom, StoreError> {
    let members: String = row.try_get("members")?;
    let blocked: i64 = row.try_get("blocked")?;
    Ok(MatrixRoom {
        room_key: row.try_get("room_key")?,
        room_id: row.try_get("room_id")?,
        kind: row.try_get("kind")?,
        members: serde_json::from_str(&members).map_err(|e| StoreError::Corrupt(format!("rommedlemmer: {e}")))?,
        blocked: if blocked != 0 {
            Some(row.try_get::<Option<String>, _>("blocked_reason")?.unwrap_or_default())
        } else {
            None
        },
    })
}

/// A fresh transaction id: random, so ids never repeat across stores.
fn new_txn_id() -> String {
    format!("tilstede.{:032x}", rand::random::<u128>())
}

impl Store {
    /// Enqueues a post and returns it with its transaction id. An anchor that
    /// is already taken in the room makes this a no-op returning the existing
    /// entry, so a caller that crashed after enqueueing can safely retry.
    pub async fn enqueue_post(&self, post: &NewPost) -> Result<OutboxEntry, StoreError> {
        let mut tx = self.begin_write().await?;
        let entry = Self::enqueue_post_in(&mut tx, post, None).await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// [`Store::enqueue_post`] inside a caller's transaction, so a post is
    /// queued exactly when the change it reports is stored; `case` tags the
    /// post for the retention purge.
    pub(crate) async fn enqueue_post_in(
        tx: &mut Transaction<'static, Any>,
        post: &NewPost,
        case: Option<&str>,
    ) -> Result<OutboxEntry, StoreError> {
        if let Some(anchor) = &post.anchor
            && let Some(row) = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {ENTRY_COLUMNS} FROM matrix_outbox WHERE room_key = $1 AND anchor = $2"
            )))
            .bind(post.room_key.as_str())
            .bind(anchor.as_str())
            .fetch_optional(&mut **tx)
            .await?
        {
            return entry_from_row(&row);
        }
        let txn = new_txn_id();
        let id: i64 = sqlx::query(
            "INSERT INTO matrix_outbox (room_key, txn_id, kind, anchor, thread_ref, target_ref, body, html, mentions, enqueued_at, case_number) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(post.room_key.as_str())
        .bind(txn.as_str())
        .bind(post.kind.as_str())
        .bind(post.anchor.as_deref())
        .bind(post.thread.as_ref().map(EventRef::encode))
        .bind(post.target.as_ref().map(EventRef::encode))
        .bind(post.body.as_str())
        .bind(post.html.as_str())
        .bind(serde_json::to_string(&post.mentions).unwrap_or_else(|_| "[]".into()))
        .bind(now())
        .bind(case)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
        if let Some(m) = &post.media {
            sqlx::query(
                "INSERT INTO matrix_outbox_media (outbox_id, mime, file_name, width, height, data) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(m.mime.as_str())
            .bind(m.file_name.as_str())
            .bind(m.width.map(i64::from))
            .bind(m.height.map(i64::from))
            .bind(m.data.as_slice())
            .execute(&mut **tx)
            .await?;
        }
        Ok(OutboxEntry {
            id,
            batch: None,
            txn_id: txn,
            post: post.clone(),
            attempts: 0,
            last_error: None,
            event_id: None,
        })
    }

    /// The image or file of outbox post `id`, if it has one (and the
    /// retention purge has not deleted it).
    pub async fn outbox_media(&self, id: i64) -> Result<Option<Media>, StoreError> {
        let Some(row) =
            sqlx::query("SELECT mime, file_name, width, height, data FROM matrix_outbox_media WHERE outbox_id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        let size = |col: &str| -> Result<Option<u32>, StoreError> {
            Ok(row.try_get::<Option<i64>, _>(col)?.and_then(|v| u32::try_from(v).ok()))
        };
        Ok(Some(Media {
            mime: row.try_get("mime")?,
            file_name: row.try_get("file_name")?,
            width: size("width")?,
            height: size("height")?,
            data: row.try_get("data")?,
        }))
    }

    /// The entry that holds `anchor` in `room_key`.
    pub async fn outbox_by_anchor(&self, room_key: &str, anchor: &str) -> Result<Option<OutboxEntry>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM matrix_outbox WHERE room_key = $1 AND anchor = $2"
        )))
        .bind(room_key)
        .bind(anchor)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(entry_from_row)
        .transpose()
    }

    /// Every post ever enqueued, oldest first (for transcripts and audits).
    pub async fn outbox_log(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM matrix_outbox ORDER BY room_key, id"
        )))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(entry_from_row)
        .collect()
    }

    /// The entry with transaction id `txn_id`.
    pub async fn outbox_by_txn(&self, txn_id: &str) -> Result<Option<OutboxEntry>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM matrix_outbox WHERE txn_id = $1"
        )))
        .bind(txn_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(entry_from_row)
        .transpose()
    }

    /// Rooms with posts waiting.
    pub async fn outbox_pending_rooms(&self) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT DISTINCT room_key FROM matrix_outbox WHERE delivered_at IS NULL ORDER BY room_key")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// The oldest undelivered post in `room_key`: delivery goes in order, so
    /// nothing after it is sent before it.
    pub async fn outbox_next(&self, room_key: &str) -> Result<Option<OutboxEntry>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM matrix_outbox WHERE room_key = $1 AND delivered_at IS NULL ORDER BY id LIMIT 1"
        )))
        .bind(room_key)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(entry_from_row)
        .transpose()
    }

    /// Up to `limit` undelivered posts in `room_key`, oldest first.
    pub async fn outbox_pending(&self, room_key: &str, limit: i64) -> Result<Vec<OutboxEntry>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM matrix_outbox WHERE room_key = $1 AND delivered_at IS NULL ORDER BY id LIMIT $2"
        )))
        .bind(room_key)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(entry_from_row)
        .collect()
    }

    /// Fixes the posts `ids` (the first one first) as one batch, so that a
    /// resend after a crash sends the same merged message with the same
    /// transaction id. Returns the batch id.
    pub async fn outbox_make_batch(&self, ids: &[i64]) -> Result<i64, StoreError> {
        let batch = ids.first().copied().unwrap_or_default();
        let mut tx = self.begin_write().await?;
        for id in ids {
            sqlx::query("UPDATE matrix_outbox SET batch_id = $1 WHERE id = $2 AND delivered_at IS NULL")
                .bind(batch)
                .bind(*id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(batch)
    }

    /// The undelivered posts of a batch, in order.
    pub async fn outbox_batch(&self, batch: i64) -> Result<Vec<OutboxEntry>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM matrix_outbox WHERE batch_id = $1 AND delivered_at IS NULL ORDER BY id"
        )))
        .bind(batch)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(entry_from_row)
        .collect()
    }

    /// Records that every post of a batch went out as `event_id`.
    pub async fn outbox_batch_delivered(&self, batch: i64, event_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE matrix_outbox SET event_id = $1, delivered_at = $2 WHERE batch_id = $3 AND delivered_at IS NULL",
        )
        .bind(event_id)
        .bind(now())
        .bind(batch)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records that `id` was delivered as `event_id`.
    pub async fn outbox_delivered(&self, id: i64, event_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE matrix_outbox SET event_id = $1, delivered_at = $2 WHERE id = $3")
            .bind(event_id)
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a failed attempt (the error is a code or message without
    /// personal data).
    pub async fn outbox_failed(&self, id: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE matrix_outbox SET attempts = attempts + 1, last_error = $1 WHERE id = $2")
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// How many posts wait and how many went out.
    pub async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN delivered_at IS NULL THEN 1 ELSE 0 END), 0) AS pending, \
                    COALESCE(SUM(CASE WHEN delivered_at IS NULL THEN 0 ELSE 1 END), 0) AS delivered FROM matrix_outbox",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(OutboxCounts {
            pending: row.try_get("pending")?,
            delivered: row.try_get("delivered")?,
        })
    }

    /// Registers (or updates) a managed room.
    pub async fn put_matrix_room(&self, room: &MatrixRoom) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO matrix_rooms (room_key, room_id, kind, members, blocked, blocked_reason, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (room_key) DO UPDATE SET room_id = excluded.room_id, \
             kind = excluded.kind, members = excluded.members, blocked = excluded.blocked, blocked_reason = excluded.blocked_reason",
        )
        .bind(room.room_key.as_str())
        .bind(room.room_id.as_str())
        .bind(room.kind.as_str())
        .bind(serde_json::to_string(&room.members).unwrap_or_else(|_| "[]".into()))
        .bind(i64::from(room.blocked.is_some()))
        .bind(room.blocked.as_deref())
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A managed room by registry key.
    pub async fn matrix_room(&self, room_key: &str) -> Result<Option<MatrixRoom>, StoreError> {
        sqlx::query("SELECT * FROM matrix_rooms WHERE room_key = $1")
            .bind(room_key)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(room_from_row)
            .transpose()
    }

    /// A managed room by Matrix room id.
    pub async fn matrix_room_by_id(&self, room_id: &str) -> Result<Option<MatrixRoom>, StoreError> {
        sqlx::query("SELECT * FROM matrix_rooms WHERE room_id = $1")
            .bind(room_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(room_from_row)
            .transpose()
    }

    /// Stops posting into a room (or, with `None`, allows it again).
    pub async fn set_matrix_room_blocked(&self, room_key: &str, reason: Option<&str>) -> Result<(), StoreError> {
        sqlx::query("UPDATE matrix_rooms SET blocked = $1, blocked_reason = $2 WHERE room_key = $3")
            .bind(i64::from(reason.is_some()))
            .bind(reason)
            .bind(room_key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks a chat command as handled; `false` when it already was (a
    /// replayed sync), so it must not run again.
    pub async fn claim_command(&self, event_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO matrix_commands_seen (event_id, handled_at) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Store {
    /// The newest delivered event in a thread, for the reply fallback that
    /// clients without thread support show.
    pub async fn outbox_last_in_thread(&self, room_key: &str, thread: &EventRef) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query(
            "SELECT event_id FROM matrix_outbox WHERE room_key = $1 AND thread_ref = $2 AND event_id IS NOT NULL \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(room_key)
        .bind(thread.encode())
        .fetch_optional(&self.pool)
        .await?
        .map(|r| r.get::<String, _>(0)))
    }
}
