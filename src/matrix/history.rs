//! History for people who arrive later.
//!
//! The bot encrypts its own posts with megolm sessions that it creates and
//! keeps itself (with vodozemac, the library matrix-sdk uses underneath)
//! instead of leaving that to matrix-sdk. The reason: only the creator of a
//! session can hand out its key from the first message on in the form every
//! client accepts without asking (`m.room_key`, signed by the session).
//! matrix-sdk keeps only the receiving half of its own sessions, and clients
//! refuse forwarded keys from other people's devices, so with matrix-sdk's
//! encryption a device that appears after a post can never read it.
//!
//! The keys live in `room-keys.sqlite3` in the bot's state directory (owner
//! only), next to matrix-sdk's own crypto store, never in the case store.
//! Each session records who may read it: the room's joined and invited
//! members when it was created. A change of members starts a new session, so
//! nobody gets a key to messages from before their invitation. After every
//! sync the bot looks for devices it has not yet served and sends each the
//! keys of the sessions its user may read, as long as that user is still a
//! member; someone who left gets nothing on a new device.

use super::{Bot, MatrixError};
use matrix_sdk::encryption::vodozemac::Curve25519PublicKey;
use matrix_sdk::encryption::vodozemac::megolm::{GroupSession, GroupSessionPickle, SessionConfig};
use matrix_sdk::ruma::UserId;
use matrix_sdk::ruma::events::AnyToDeviceEventContent;
use matrix_sdk::ruma::serde::Raw;
use matrix_sdk::{Room, RoomMemberships};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A session is replaced after this many messages, as matrix-sdk does: a
/// leaked key then opens a bounded stretch of history.
const ROTATE_MESSAGES: i64 = 100;

/// ... or after this long.
const ROTATE_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// The megolm algorithm every client reads.
pub const MEGOLM: &str = "m.megolm.v1.aes-sha2";

/// The bot's megolm sessions and who has received their keys.
pub(super) struct RoomKeys {
    path: PathBuf,
    db: Mutex<Connection>,
    /// One lock per room: a session's ratchet must advance and be saved
    /// before the next message of that room is encrypted.
    rooms: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Devices already checked since start (a new one is served once).
    served: Mutex<HashSet<(String, String, String)>>,
}

/// The current outbound session of a room.
struct Current {
    session_id: String,
    session: GroupSession,
    readers: BTreeSet<String>,
    messages: i64,
    created_ms: i64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl RoomKeys {
    /// Opens (or creates, owner-only) the key store in `dir`.
    pub(super) fn open(dir: &Path) -> Result<RoomKeys, MatrixError> {
        let path = dir.join("room-keys.sqlite3");
        if !path.exists() {
            // Created empty with owner-only rights before SQLite writes keys into it.
            super::session::write_private(&path, "")?;
        }
        let err = |e: rusqlite::Error| MatrixError::Keys {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let db = Connection::open(&path).map_err(err)?;
        db.execute_batch(
            "PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS sessions (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 room_id TEXT NOT NULL,
                 session_id TEXT NOT NULL UNIQUE,
                 -- The signed key from the first message on: what m.room_key carries.
                 session_key TEXT NOT NULL,
                 -- The outbound session while it is current; NULL once replaced.
                 pickle TEXT,
                 messages INTEGER NOT NULL DEFAULT 0,
                 created_ms INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS sessions_room ON sessions (room_id, seq);
             CREATE TABLE IF NOT EXISTS readers (
                 session_id TEXT NOT NULL,
                 user_id TEXT NOT NULL,
                 PRIMARY KEY (session_id, user_id)
             );
             CREATE INDEX IF NOT EXISTS readers_user ON readers (user_id);
             CREATE TABLE IF NOT EXISTS shared (
                 session_id TEXT NOT NULL,
                 user_id TEXT NOT NULL,
                 device_id TEXT NOT NULL,
                 PRIMARY KEY (session_id, user_id, device_id)
             );",
        )
        .map_err(err)?;
        Ok(RoomKeys {
            path,
            db: Mutex::new(db),
            rooms: Mutex::new(HashMap::new()),
            served: Mutex::new(HashSet::new()),
        })
    }

    fn err(&self, message: impl std::fmt::Display) -> MatrixError {
        MatrixError::Keys {
            path: self.path.display().to_string(),
            message: message.to_string(),
        }
    }

    fn with_db<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, MatrixError> {
        let db = self.db.lock().map_err(|_| self.err("låst etter en feil"))?;
        f(&db).map_err(|e| self.err(e))
    }

    fn room_lock(&self, room_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms.entry(room_id.to_string()).or_default().clone()
    }

    fn current(&self, room_id: &str) -> Result<Option<Current>, MatrixError> {
        let row = self.with_db(|db| {
            db.query_row(
                "SELECT session_id, pickle, messages, created_ms FROM sessions
                 WHERE room_id = ?1 AND pickle IS NOT NULL ORDER BY seq DESC LIMIT 1",
                params![room_id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .optional()
        })?;
        let Some((session_id, pickle, messages, created_ms)) = row else {
            return Ok(None);
        };
        let pickle: GroupSessionPickle = serde_json::from_str(&pickle).map_err(|e| self.err(e))?;
        let readers = self.readers(&session_id)?;
        Ok(Some(Current {
            session_id,
            session: GroupSession::from_pickle(pickle),
            readers,
            messages,
            created_ms,
        }))
    }

    fn readers(&self, session_id: &str) -> Result<BTreeSet<String>, MatrixError> {
        self.with_db(|db| {
            let mut q = db.prepare("SELECT user_id FROM readers WHERE session_id = ?1")?;
            let rows = q.query_map(params![session_id], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
    }

    /// Saves a new session for `room_id` (retiring the old one) with the
    /// users who may read it.
    fn create(&self, room_id: &str, readers: &BTreeSet<String>) -> Result<Current, MatrixError> {
        let session = GroupSession::new(SessionConfig::version_1());
        let session_id = session.session_id();
        let key = session.session_key().to_base64();
        let pickle = serde_json::to_string(&session.pickle()).map_err(|e| self.err(e))?;
        let created_ms = now_ms();
        self.with_db(|db| {
            let tx = db.unchecked_transaction()?;
            tx.execute(
                "UPDATE sessions SET pickle = NULL WHERE room_id = ?1 AND pickle IS NOT NULL",
                params![room_id],
            )?;
            tx.execute(
                "INSERT INTO sessions (room_id, session_id, session_key, pickle, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![room_id, session_id, key, pickle, created_ms],
            )?;
            for r in readers {
                tx.execute(
                    "INSERT OR IGNORE INTO readers (session_id, user_id) VALUES (?1, ?2)",
                    params![session_id, r],
                )?;
            }
            tx.commit()
        })?;
        Ok(Current {
            session_id,
            session,
            readers: readers.clone(),
            messages: 0,
            created_ms,
        })
    }

    /// Saves the ratchet after a message was encrypted (before it is sent:
    /// a message index must never be used twice, not even after a crash).
    fn advance(&self, current: &Current) -> Result<(), MatrixError> {
        let pickle = serde_json::to_string(&current.session.pickle()).map_err(|e| self.err(e))?;
        self.with_db(|db| {
            db.execute(
                "UPDATE sessions SET pickle = ?2, messages = ?3 WHERE session_id = ?1",
                params![current.session_id, pickle, current.messages],
            )
            .map(|_| ())
        })
    }

    /// Sessions of `room_id` that `user` may read and `device` has not got.
    fn unshared(&self, room_id: &str, user: &str, device: &str) -> Result<Vec<(String, String)>, MatrixError> {
        self.with_db(|db| {
            let mut q = db.prepare(
                "SELECT s.session_id, s.session_key FROM sessions s
                 JOIN readers r ON r.session_id = s.session_id AND r.user_id = ?2
                 WHERE s.room_id = ?1 AND NOT EXISTS (
                     SELECT 1 FROM shared x WHERE x.session_id = s.session_id AND x.user_id = ?2 AND x.device_id = ?3)
                 ORDER BY s.seq",
            )?;
            let rows = q.query_map(params![room_id, user, device], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    fn mark_shared(&self, session_id: &str, user: &str, device: &str) -> Result<(), MatrixError> {
        self.with_db(|db| {
            db.execute(
                "INSERT OR IGNORE INTO shared (session_id, user_id, device_id) VALUES (?1, ?2, ?3)",
                params![session_id, user, device],
            )
            .map(|_| ())
        })
    }

    /// Rooms that have sessions.
    fn rooms(&self) -> Result<Vec<String>, MatrixError> {
        self.with_db(|db| {
            let mut q = db.prepare("SELECT DISTINCT room_id FROM sessions")?;
            let rows = q.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
    }

    /// How many sessions have been made (for tests and status).
    pub(super) fn session_count(&self) -> Result<i64, MatrixError> {
        self.with_db(|db| db.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0)))
    }
}

/// What an encrypted room event carries outside the ciphertext: the relation
/// is copied there, as the spec asks, so servers can thread and aggregate.
fn encrypted_content(
    ciphertext: String,
    sender_key: &Curve25519PublicKey,
    device_id: &str,
    session_id: &str,
    relates_to: Option<&serde_json::Value>,
) -> serde_json::Value {
    let mut content = serde_json::json!({
        "algorithm": MEGOLM,
        "ciphertext": ciphertext,
        "sender_key": sender_key.to_base64(),
        "device_id": device_id,
        "session_id": session_id,
    });
    if let Some(r) = relates_to {
        content["m.relates_to"] = r.clone();
    }
    content
}

impl Bot {
    /// Encrypts `content` of `event_type` for `room` with the room's current
    /// session (a new one when the members changed, or the old one is used
    /// up), after making sure every device of every reader has its key.
    /// Returns the `m.room.encrypted` content.
    pub(super) async fn encrypt_event(
        &self,
        room: &Room,
        event_type: &str,
        content: serde_json::Value,
    ) -> Result<serde_json::Value, MatrixError> {
        let keys = &self.inner.keys;
        let room_id = room.room_id().to_string();
        let lock = keys.room_lock(&room_id);
        let _guard = lock.lock().await;
        let readers = self.readers(room).await?;
        let mut current = match keys.current(&room_id)? {
            Some(c)
                if c.readers == readers
                    && c.messages < ROTATE_MESSAGES
                    && now_ms() - c.created_ms < ROTATE_AFTER.as_millis() as i64 =>
            {
                c
            }
            _ => {
                // A new session goes to the devices the readers have now:
                // ask the server rather than trust a list that may be stale.
                for user in &readers {
                    if let Ok(user_id) = UserId::parse(user)
                        && let Err(e) = self.inner.client.encryption().request_user_identity(&user_id).await
                    {
                        tracing::info!(error = %e, "device list not refreshed");
                    }
                }
                keys.create(&room_id, &readers)?
            }
        };
        for user in &readers {
            self.serve_user(&room_id, user).await?;
        }
        let payload = serde_json::json!({ "type": event_type, "content": content, "room_id": room_id });
        let ciphertext = current.session.encrypt(payload.to_string()).to_base64();
        current.messages += 1;
        keys.advance(&current)?;
        let (sender_key, device_id) = self.own_keys().await?;
        Ok(encrypted_content(
            ciphertext,
            &sender_key,
            &device_id,
            &current.session_id,
            content.get("m.relates_to"),
        ))
    }

    /// The bot's device id and its Curve25519 key.
    async fn own_keys(&self) -> Result<(Curve25519PublicKey, String), MatrixError> {
        let client = &self.inner.client;
        let device = client
            .device_id()
            .ok_or_else(|| self.inner.keys.err("boten har ingen enhet"))?
            .to_string();
        let key = client
            .encryption()
            .curve25519_key()
            .await
            .ok_or_else(|| self.inner.keys.err("boten har ingen krypteringsnøkkel"))?;
        Ok((key, device))
    }

    /// Who may read what the bot posts in `room` now: its joined and invited
    /// members, the bot itself excepted.
    async fn readers(&self, room: &Room) -> Result<BTreeSet<String>, MatrixError> {
        let me = self.inner.config.user.as_str();
        Ok(room
            .members(RoomMemberships::JOIN | RoomMemberships::INVITE)
            .await?
            .iter()
            .map(|m| m.user_id().to_string())
            .filter(|u| u != me)
            .collect())
    }

    /// Sends every device of `user` the keys of `room_id`'s sessions that the
    /// user may read and the device has not received yet.
    async fn serve_user(&self, room_id: &str, user: &str) -> Result<(), MatrixError> {
        let keys = &self.inner.keys;
        let user_id = UserId::parse(user).map_err(|_| MatrixError::BadId(user.to_string()))?;
        let own_device = self.inner.client.device_id().map(|d| d.to_string());
        let devices = self.inner.client.encryption().get_user_devices(&user_id).await?;
        for device in devices.devices() {
            let device_id = device.device_id().to_string();
            if Some(&device_id) == own_device.as_ref() || device.is_blacklisted() {
                continue;
            }
            let missing = keys.unshared(room_id, user, &device_id)?;
            for (session_id, session_key) in missing {
                let content = serde_json::json!({
                    "algorithm": MEGOLM,
                    "room_id": room_id,
                    "session_id": session_id,
                    "session_key": session_key,
                });
                let raw: Raw<AnyToDeviceEventContent> = Raw::new(&content).map_err(|e| keys.err(e))?.cast_unchecked();
                let failed = self
                    .inner
                    .client
                    .encryption()
                    .encrypt_and_send_raw_to_device(vec![&device], "m.room_key", raw, Default::default())
                    .await?;
                if !failed.is_empty() {
                    // No olm session could be made (the device published no
                    // one-time keys yet): try again after the next sync.
                    tracing::info!(device = %device_id, "room key not delivered to a device; retrying later");
                    break;
                }
                keys.mark_shared(&session_id, user, &device_id)?;
            }
        }
        Ok(())
    }

    /// Gives devices that appeared since the last look the keys of what their
    /// users may read. Runs after every sync; cheap when nothing is new.
    pub(super) async fn share_history(&self) -> Result<(), MatrixError> {
        let keys = &self.inner.keys;
        for room_id in keys.rooms()? {
            let Some(room) = matrix_sdk::ruma::RoomId::parse(&room_id)
                .ok()
                .and_then(|id| self.inner.client.get_room(&id))
            else {
                continue;
            };
            let lock = keys.room_lock(&room_id);
            let _guard = lock.lock().await;
            for user in self.readers(&room).await? {
                let Ok(user_id) = UserId::parse(&user) else {
                    continue;
                };
                let devices = self.inner.client.encryption().get_user_devices(&user_id).await?;
                let fresh: Vec<String> = devices
                    .devices()
                    .map(|d| d.device_id().to_string())
                    .filter(|d| {
                        let served = keys.served.lock().unwrap_or_else(|e| e.into_inner());
                        !served.contains(&(room_id.clone(), user.clone(), d.clone()))
                    })
                    .collect();
                if fresh.is_empty() {
                    continue;
                }
                self.serve_user(&room_id, &user).await?;
                let mut served = keys.served.lock().unwrap_or_else(|e| e.into_inner());
                for d in fresh {
                    // Served only when nothing is left for it (a device
                    // without one-time keys is tried again next time).
                    if keys.unshared(&room_id, &user, &d)?.is_empty() {
                        served.insert((room_id.clone(), user.clone(), d));
                    }
                }
            }
        }
        Ok(())
    }

    /// How many megolm sessions the bot has made (for tests).
    pub fn room_key_sessions(&self) -> Result<i64, MatrixError> {
        self.inner.keys.session_count()
    }
}
