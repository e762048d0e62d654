//! Outbox delivery: the delivery loop, per-room ordering, retries with
//! Retry-After honoured, coalescing under rate limiting, and the sends
//! themselves with stable transaction ids.

use super::session::event;
use super::{Bot, MatrixError, SendObserver, escape_html};
use crate::store::{EventRef, NewPost, OutboxEntry, PostKind};
use matrix_sdk::config::RequestConfig;
use matrix_sdk::ruma::UInt;
use matrix_sdk::ruma::api::client::message::send_message_event::v3::Request as SendMessageEvent;
use matrix_sdk::ruma::api::error::{ErrorKind, RetryAfter};
use matrix_sdk::ruma::events::AnyMessageLikeEventContent;
use matrix_sdk::ruma::events::Mentions;
use matrix_sdk::ruma::events::reaction::ReactionEventContent;
use matrix_sdk::ruma::events::relation::{Annotation, Thread};
use matrix_sdk::ruma::events::room::message::{
    FileInfo, FileMessageEventContent, ImageMessageEventContent, MessageType, Relation, ReplacementMetadata,
    RoomMessageEventContent, RoomMessageEventContentWithoutRelation,
};
use matrix_sdk::ruma::events::room::{ImageInfo, MediaSource};
use matrix_sdk::ruma::serde::Raw;
use matrix_sdk::ruma::{OwnedEventId, OwnedTransactionId, UserId};
use matrix_sdk::{Room, RoomMemberships};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long after a 429 the bot keeps coalescing backlogs.
const PRESSURE: Duration = Duration::from_secs(120);

/// Most posts merged into one message.
const BATCH_MAX: i64 = 60;

/// How long a room waits before the next delivery attempt.
struct Wait(Duration);

impl Bot {
    /// Has `observer` called with the duration of every successful send.
    pub fn observe_sends(&self, observer: SendObserver) {
        if let Ok(mut o) = self.inner.observer.lock() {
            *o = Some(observer);
        }
    }

    fn observe_send(&self, took: Duration) {
        let observer = self.inner.observer.lock().ok().and_then(|o| o.clone());
        if let Some(observe) = observer {
            observe(took);
        }
    }

    /// Enqueues a post and wakes the delivery loop.
    pub async fn enqueue(&self, post: &NewPost) -> Result<OutboxEntry, MatrixError> {
        let entry = self.inner.store.enqueue_post(post).await?;
        self.inner.wake.notify_one();
        Ok(entry)
    }

    /// Wakes the delivery loop (after posts were enqueued by someone else).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    pub(super) async fn delivery_loop(&self) {
        let mut not_before: HashMap<String, Instant> = HashMap::new();
        loop {
            let next = self.deliver_round(&mut not_before).await;
            let wait = next
                .unwrap_or(Duration::from_millis(500))
                .min(Duration::from_millis(500));
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Delivers what is pending in every room that is not waiting, rooms in
    /// parallel and each in order. Returns the shortest wait left, if any.
    async fn deliver_round(&self, not_before: &mut HashMap<String, Instant>) -> Option<Duration> {
        let rooms = match self.inner.store.outbox_pending_rooms().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "outbox unreadable");
                return Some(Duration::from_secs(1));
            }
        };
        let now = Instant::now();
        let ready: Vec<String> = rooms
            .into_iter()
            .filter(|r| not_before.get(r).is_none_or(|t| *t <= now))
            .collect();
        let results = futures::future::join_all(ready.iter().map(|r| self.deliver_room(r))).await;
        for (room, result) in ready.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    not_before.remove(&room);
                }
                Err(Wait(d)) => {
                    not_before.insert(room, Instant::now() + d);
                }
            }
        }
        let now = Instant::now();
        not_before.values().map(|t| t.saturating_duration_since(now)).min()
    }

    /// Delivers everything pending for tests and tools that drive the bot by
    /// hand; gives up after `limit`.
    pub async fn flush(&self, limit: Duration) -> Result<(), MatrixError> {
        let started = Instant::now();
        let mut not_before = HashMap::new();
        while self.inner.store.outbox_counts().await?.pending > 0 && started.elapsed() < limit {
            if let Some(wait) = self.deliver_round(&mut not_before).await {
                tokio::time::sleep(wait.min(Duration::from_millis(200))).await;
            }
        }
        Ok(())
    }

    async fn deliver_room(&self, room_key: &str) -> Result<(), Wait> {
        let store = &self.inner.store;
        let known = match store.matrix_room(room_key).await {
            Ok(Some(k)) => k,
            Ok(None) => {
                // Direct rooms are made on first use; other rooms wait for
                // whoever creates them.
                if let Some(user) = room_key.strip_prefix("direct:") {
                    if let Err(e) = self.ensure_direct(user).await {
                        tracing::warn!(error = %e, "direct room not created");
                        return Err(Wait(Duration::from_secs(2)));
                    }
                    return Err(Wait(Duration::ZERO));
                }
                // Case rooms are planned by the workflow and made here.
                match self.ensure_planned(room_key).await {
                    Ok(true) => return Err(Wait(Duration::ZERO)),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, room = %room_key, "planned room not created"),
                }
                return Err(Wait(Duration::from_secs(2)));
            }
            Err(_) => return Err(Wait(Duration::from_secs(1))),
        };
        if known.blocked.is_some() {
            return Err(Wait(Duration::from_secs(5)));
        }
        let Some(room) = matrix_sdk::ruma::RoomId::parse(&known.room_id)
            .ok()
            .and_then(|id| self.inner.client.get_room(&id))
        else {
            return Err(Wait(Duration::from_millis(500)));
        };
        match room.latest_encryption_state().await {
            Ok(state) if state.is_encrypted() || self.inner.config.allow_unencrypted => {}
            Ok(_) => {
                tracing::error!(room = %room_key, "refusing to post into an unencrypted room");
                return Err(Wait(Duration::from_secs(30)));
            }
            Err(_) => return Err(Wait(Duration::from_secs(1))),
        }
        // Membership as the bot last saw it: nobody unexpected may read along.
        if let Ok(members) = room.members_no_sync(RoomMemberships::JOIN).await {
            for m in members {
                if self.check_member(&room, m.user_id().as_str()).await.unwrap_or(true) {
                    return Err(Wait(Duration::from_secs(5)));
                }
            }
        }
        loop {
            let entry = match store.outbox_next(room_key).await {
                Ok(Some(e)) => e,
                Ok(None) => return Ok(()),
                Err(_) => return Err(Wait(Duration::from_secs(1))),
            };
            // A batch fixed before a crash goes out as it was fixed; under
            // rate limiting a new backlog is merged into one message.
            let batch = match entry.batch {
                Some(b) => Some(b),
                None if self.under_pressure() => self.make_batch(room_key).await?,
                None => None,
            };
            if let Some(batch) = batch {
                self.deliver_batch(&room, room_key, batch).await?;
                continue;
            }
            let started = Instant::now();
            match self.send(&room, &entry).await {
                Ok(event_id) => {
                    self.observe_send(started.elapsed());
                    if store.outbox_delivered(entry.id, &event_id).await.is_err() {
                        return Err(Wait(Duration::from_secs(1)));
                    }
                    tracing::debug!(room = %room_key, txn = %entry.txn_id, "delivered");
                }
                Err(e) => {
                    let wait = self.retry_wait(&e, entry.attempts);
                    tracing::info!(room = %room_key, txn = %entry.txn_id, wait_ms = wait.as_millis() as u64, error = %e, "delivery deferred");
                    let _ = store.outbox_failed(entry.id, &e.to_string()).await;
                    return Err(Wait(wait));
                }
            }
        }
    }

    /// How long to wait after a failed send: the server's Retry-After on a
    /// 429 (which also turns on coalescing), else exponential backoff.
    fn retry_wait(&self, e: &matrix_sdk::Error, attempts: i64) -> Duration {
        match e.client_api_error_kind() {
            Some(ErrorKind::LimitExceeded(limit)) => {
                self.note_pressure();
                match &limit.retry_after {
                    Some(RetryAfter::Delay(d)) => *d,
                    Some(RetryAfter::DateTime(t)) => t.duration_since(std::time::SystemTime::now()).unwrap_or_default(),
                    None => backoff(attempts as u32 + 1),
                }
            }
            _ => backoff(attempts as u32 + 1),
        }
    }

    fn under_pressure(&self) -> bool {
        self.inner
            .pressure_until
            .lock()
            .ok()
            .and_then(|p| *p)
            .is_some_and(|until| Instant::now() < until)
    }

    fn note_pressure(&self) {
        if let Ok(mut p) = self.inner.pressure_until.lock() {
            *p = Some(Instant::now() + PRESSURE);
        }
    }

    /// Fixes the room's leading run of pending notices and edits as one
    /// batch, when there are at least two. Posts that failed for another
    /// reason than rate limiting may have arrived, so they go alone.
    async fn make_batch(&self, room_key: &str) -> Result<Option<i64>, Wait> {
        let pending = self
            .inner
            .store
            .outbox_pending(room_key, BATCH_MAX)
            .await
            .map_err(|_| Wait(Duration::from_secs(1)))?;
        let mergeable = |e: &OutboxEntry| {
            matches!(e.post.kind, PostKind::Notice | PostKind::Edit)
                && (e.attempts == 0 || e.last_error.as_deref().is_some_and(|r| r.contains("M_LIMIT_EXCEEDED")))
        };
        let run: Vec<i64> = pending.iter().take_while(|e| mergeable(e)).map(|e| e.id).collect();
        if run.len() < 2 {
            return Ok(None);
        }
        self.inner
            .store
            .outbox_make_batch(&run)
            .await
            .map(Some)
            .map_err(|_| Wait(Duration::from_secs(1)))
    }

    /// Sends a batch as one message (its own transaction id, derived from
    /// the first post's) and marks all its posts delivered.
    async fn deliver_batch(&self, room: &Room, room_key: &str, batch: i64) -> Result<(), Wait> {
        let store = &self.inner.store;
        let entries = store
            .outbox_batch(batch)
            .await
            .map_err(|_| Wait(Duration::from_secs(1)))?;
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let header = format!(
            "Samlet utsending av {} meldinger: Matrix-tjeneren begrenser hvor fort boten kan sende.",
            entries.len()
        );
        let mut plain = header.clone();
        let mut html = format!("<p><em>{}</em></p>", escape_html(&header));
        let mut mentions: Vec<String> = Vec::new();
        for e in &entries {
            let label = if e.post.kind == PostKind::Edit {
                "Oppdatert saksinfo:\n"
            } else {
                ""
            };
            plain.push_str(&format!("\n\n———\n\n{label}{}", e.post.body));
            html.push_str(&format!("<hr>{}{}", escape_html(label), e.post.html));
            for m in &e.post.mentions {
                if !mentions.contains(m) {
                    mentions.push(m.clone());
                }
            }
        }
        let content = RoomMessageEventContent::notice_html(plain, html).add_mentions(Mentions::with_user_ids(
            mentions.iter().filter_map(|m| UserId::parse(m).ok()),
        ));
        let txn: OwnedTransactionId = format!("{}.batch", first.txn_id).as_str().into();
        let once = RequestConfig::new().disable_retry().timeout(Duration::from_secs(30));
        let started = Instant::now();
        match self.send_event(room, "m.room.message", json(&content), txn, once).await {
            Ok(event_id) => {
                self.observe_send(started.elapsed());
                store
                    .outbox_batch_delivered(batch, &event_id)
                    .await
                    .map_err(|_| Wait(Duration::from_secs(1)))?;
                tracing::info!(room = %room_key, posts = entries.len(), "backlog delivered as one message");
                Ok(())
            }
            Err(e) => {
                let wait = self.retry_wait(&e, first.attempts);
                let _ = store.outbox_failed(first.id, &e.to_string()).await;
                Err(Wait(wait))
            }
        }
    }

    async fn resolve(&self, room_key: &str, r: &EventRef) -> Option<OwnedEventId> {
        match r {
            EventRef::Event(e) => event(e).ok(),
            EventRef::Anchor(a) => self
                .inner
                .store
                .outbox_by_anchor(room_key, a)
                .await
                .ok()
                .flatten()
                .and_then(|e| e.event_id)
                .and_then(|e| event(&e).ok()),
        }
    }

    async fn send(&self, room: &Room, entry: &OutboxEntry) -> Result<String, matrix_sdk::Error> {
        let post = &entry.post;
        let mentions = || Mentions::with_user_ids(post.mentions.iter().filter_map(|m| UserId::parse(m).ok()));
        let target = match &post.target {
            Some(t) => self.resolve(&post.room_key, t).await,
            None => None,
        };
        let txn: OwnedTransactionId = entry.txn_id.as_str().into();
        // The outbox does its own retrying, with Retry-After honoured.
        let once = RequestConfig::new().disable_retry().timeout(Duration::from_secs(30));
        let (event_type, content) = match (post.kind, target) {
            (PostKind::Reaction, Some(target)) => (
                "m.reaction",
                json(&ReactionEventContent::new(Annotation::new(target, post.body.clone()))),
            ),
            (PostKind::Redaction, Some(target)) => {
                let response = room.redact(&target, Some(&post.body), Some(txn)).await?;
                return Ok(response.event_id.to_string());
            }
            (PostKind::Redaction, None) => {
                // Nothing was ever sent for it: nothing to redact.
                return Ok(String::new());
            }
            (PostKind::Edit, Some(target)) => {
                let content = RoomMessageEventContentWithoutRelation::notice_html(&post.body, &post.html)
                    .add_mentions(mentions())
                    .make_replacement(ReplacementMetadata::new(target, None));
                ("m.room.message", json(&content))
            }
            (PostKind::Image | PostKind::File, _) => {
                let Some(mut content) = self.media_content(room, entry).await? else {
                    // The bytes are gone (the case was purged): nothing to post.
                    return Ok(String::new());
                };
                content.relates_to = self.thread_relation(post).await;
                ("m.room.message", json(&content))
            }
            (kind, _) => {
                if kind != PostKind::Notice {
                    // The target was never delivered: post the text rather
                    // than lose it.
                    tracing::warn!(txn = %entry.txn_id, "relation target unknown; sending as a plain notice");
                }
                let mut content = RoomMessageEventContent::notice_html(&post.body, &post.html).add_mentions(mentions());
                content.relates_to = self.thread_relation(post).await;
                ("m.room.message", json(&content))
            }
        };
        self.send_event(room, event_type, content, txn, once).await
    }

    /// The thread relation of a post in a thread whose root has gone out.
    async fn thread_relation(&self, post: &NewPost) -> Option<Relation<RoomMessageEventContentWithoutRelation>> {
        let thread = post.thread.as_ref()?;
        let root = self.resolve(&post.room_key, thread).await?;
        let latest = self
            .inner
            .store
            .outbox_last_in_thread(&post.room_key, thread)
            .await
            .ok()
            .flatten()
            .and_then(|e| event(&e).ok())
            .unwrap_or_else(|| root.clone());
        Some(Relation::Thread(Thread::plain(root, latest)))
    }

    /// Uploads the bytes of an image or file post — encrypted with a fresh
    /// key in an encrypted room, so the homeserver holds only ciphertext —
    /// and returns the `m.image` / `m.file` content; `None` when the bytes
    /// are no longer stored. A retry uploads again (the event itself keeps
    /// its transaction id, so it is still sent once).
    async fn media_content(
        &self,
        room: &Room,
        entry: &OutboxEntry,
    ) -> Result<Option<RoomMessageEventContent>, matrix_sdk::Error> {
        let media = self
            .inner
            .store
            .outbox_media(entry.id)
            .await
            .map_err(|e| matrix_sdk::Error::UnknownError(Box::new(e)))?;
        let Some(media) = media else {
            return Ok(None);
        };
        let size = UInt::new(media.data.len() as u64);
        let source = if room.latest_encryption_state().await?.is_encrypted() {
            let mut reader = std::io::Cursor::new(media.data);
            MediaSource::Encrypted(Box::new(self.inner.client.upload_encrypted_file(&mut reader).await?))
        } else {
            let mut request = matrix_sdk::ruma::api::client::media::create_content::v3::Request::new(media.data);
            request.content_type = Some(media.mime.clone());
            let response = self.inner.client.send(request).await?;
            MediaSource::Plain(response.content_uri)
        };
        let msgtype = if entry.post.kind == PostKind::Image {
            let mut info = ImageInfo::new();
            info.mimetype = Some(media.mime.clone());
            info.size = size;
            info.width = media.width.map(UInt::from);
            info.height = media.height.map(UInt::from);
            let mut content = match source {
                MediaSource::Encrypted(file) => ImageMessageEventContent::encrypted(entry.post.body.clone(), *file),
                MediaSource::Plain(uri) => ImageMessageEventContent::plain(entry.post.body.clone(), uri),
            }
            .info(Box::new(info));
            content.filename = Some(media.file_name.clone());
            MessageType::Image(content)
        } else {
            let mut info = FileInfo::new();
            info.mimetype = Some(media.mime.clone());
            info.size = size;
            let mut content = match source {
                MediaSource::Encrypted(file) => FileMessageEventContent::encrypted(entry.post.body.clone(), *file),
                MediaSource::Plain(uri) => FileMessageEventContent::plain(entry.post.body.clone(), uri),
            }
            .info(Box::new(info));
            content.filename = Some(media.file_name.clone());
            MessageType::File(content)
        };
        Ok(Some(RoomMessageEventContent::new(msgtype)))
    }

    /// Sends one room event, encrypted by the bot itself in an encrypted
    /// room (see `history.rs` for why not by matrix-sdk).
    async fn send_event(
        &self,
        room: &Room,
        event_type: &str,
        content: serde_json::Value,
        txn: OwnedTransactionId,
        config: RequestConfig,
    ) -> Result<String, matrix_sdk::Error> {
        let (event_type, content) = if room.latest_encryption_state().await?.is_encrypted() {
            let encrypted = self
                .encrypt_event(room, event_type, content)
                .await
                .map_err(|e| match e {
                    MatrixError::Sdk(e) => *e,
                    MatrixError::Http(e) => matrix_sdk::Error::Http(e),
                    other => matrix_sdk::Error::UnknownError(Box::new(other)),
                })?;
            ("m.room.encrypted", encrypted)
        } else {
            (event_type, content)
        };
        let raw: Raw<AnyMessageLikeEventContent> = Raw::new(&content)?.cast_unchecked();
        let request = SendMessageEvent::new_raw(room.room_id().to_owned(), txn, event_type.into(), raw);
        let response = self.inner.client.send(request).with_request_config(config).await?;
        Ok(response.event_id.to_string())
    }
}

/// An event content as JSON (serializing a ruma content cannot fail).
fn json(content: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(content).unwrap_or_default()
}

/// Exponential backoff from 250 ms up to 10 s.
pub(super) fn backoff(failures: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << failures.min(6).saturating_sub(1))).min(Duration::from_secs(10))
}
