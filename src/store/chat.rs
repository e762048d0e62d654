//! What the case workflow in chat keeps: rooms to create, dialogues in
//! progress, the case cards last posted, digests already sent, and the relay
//! of queued case notices into the Matrix outbox.

use super::{NewPost, Store, StoreError, now};
use crate::cases::model::Case;
use sqlx::Row;

/// A room the bot is asked to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomPlan {
    /// The registry key (`case:…`).
    pub room_key: String,
    /// `case`.
    pub kind: String,
    /// The room name (never personal data).
    pub name: Option<String>,
    /// Who is invited (and expected).
    pub members: Vec<String>,
}

/// A card to remember as posted: (room key, case number, plain body).
pub type CardText = (String, String, String);

/// What a relay claims, so the same thing is never relayed twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim<'a> {
    /// A queued case notification (by key): marked delivered.
    Notification(&'a str),
    /// A digest (by recipient and period): recorded as sent.
    Digest(&'a str),
}

impl Store {
    /// Asks for a room (or updates the members of a planned one).
    pub async fn plan_matrix_room(&self, plan: &RoomPlan) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO matrix_room_plans (room_key, kind, name, members, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (room_key) DO UPDATE SET members = excluded.members, name = excluded.name",
        )
        .bind(plan.room_key.as_str())
        .bind(plan.kind.as_str())
        .bind(plan.name.as_deref())
        .bind(serde_json::to_string(&plan.members).unwrap_or_else(|_| "[]".into()))
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The plan for a room, if one was made.
    pub async fn matrix_room_plan(&self, room_key: &str) -> Result<Option<RoomPlan>, StoreError> {
        let Some(row) = sqlx::query("SELECT room_key, kind, name, members FROM matrix_room_plans WHERE room_key = $1")
            .bind(room_key)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let members: String = row.try_get("members")?;
        Ok(Some(RoomPlan {
            room_key: row.try_get("room_key")?,
            kind: row.try_get("kind")?,
            name: row.try_get("name")?,
            members: serde_json::from_str(&members).map_err(|e| StoreError::Corrupt(format!("romplan: {e}")))?,
        }))
    }

    /// The saved state of a dialogue, if one is in progress.
    pub async fn dialogue(&self, room_key: &str, thread: &str, user: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query("SELECT state FROM chat_dialogues WHERE room_key = $1 AND thread = $2 AND user_id = $3")
                .bind(room_key)
                .bind(thread)
                .bind(user)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.get::<String, _>(0)),
        )
    }

    /// Saves a dialogue's state, or ends the dialogue with `None`.
    pub async fn put_dialogue(
        &self,
        room_key: &str,
        thread: &str,
        user: &str,
        state: Option<&str>,
    ) -> Result<(), StoreError> {
        match state {
            Some(state) => {
                sqlx::query(
                    "INSERT INTO chat_dialogues (room_key, thread, user_id, state, updated_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (room_key, thread, user_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                )
                .bind(room_key)
                .bind(thread)
                .bind(user)
                .bind(state)
                .bind(now())
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM chat_dialogues WHERE room_key = $1 AND thread = $2 AND user_id = $3")
                    .bind(room_key)
                    .bind(thread)
                    .bind(user)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// The card body last enqueued for a case in a room.
    pub async fn chat_card(&self, room_key: &str, case: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query("SELECT body FROM chat_cards WHERE room_key = $1 AND case_number = $2")
                .bind(room_key)
                .bind(case)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.get::<String, _>(0)),
        )
    }

    /// A case as stored, without an audit row: for tilstede's own rendering
    /// (people's reads go through [`Store::read_case`]).
    pub async fn case_state(&self, number: &str) -> Result<Option<Case>, StoreError> {
        let Some(row) = sqlx::query("SELECT state FROM cases WHERE number = $1")
            .bind(number)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let state: String = row.try_get(0)?;
        serde_json::from_str(&state)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("cases {number}: {e}")))
    }

    /// Enqueues `posts` about `case`, remembers the card texts, and makes
    /// the `claim`, all in one transaction: after a crash either everything
    /// is queued or nothing, and what was claimed is never relayed again.
    /// Returns the posts enqueued (0 when the claim was already made).
    pub async fn relay_posts(
        &self,
        claim: Option<Claim<'_>>,
        case: Option<&str>,
        posts: &[NewPost],
        cards: &[CardText],
    ) -> Result<usize, StoreError> {
        let mut tx = self.begin_write().await?;
        let claimed = match claim {
            None => true,
            Some(Claim::Notification(key)) => {
                sqlx::query(
                    "UPDATE notifications SET delivered_at = $1, attempts = attempts + 1 WHERE key = $2 AND delivered_at IS NULL",
                )
                .bind(now())
                .bind(key)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1
            }
            Some(Claim::Digest(key)) => {
                sqlx::query("INSERT INTO chat_digests (key, created_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                    .bind(key)
                    .bind(now())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1
            }
        };
        if !claimed {
            return Ok(0);
        }
        for post in posts {
            Self::enqueue_post_in(&mut tx, post, case).await?;
        }
        for (room, number, body) in cards {
            sqlx::query(
                "INSERT INTO chat_cards (room_key, case_number, body) VALUES ($1, $2, $3) \
                 ON CONFLICT (room_key, case_number) DO UPDATE SET body = excluded.body",
            )
            .bind(room.as_str())
            .bind(number.as_str())
            .bind(body.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(posts.len())
    }
}
