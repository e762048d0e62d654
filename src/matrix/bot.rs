//! The bot: one matrix-sdk client with its SQLite crypto store kept in the
//! state directory, a `sync_once` loop, outbox delivery and command dispatch.

use super::commands::{self, Command};
use super::config::MatrixConfig;
use super::{MatrixError, direct_room, escape_html, school_room};
use crate::store::{EventRef, MatrixRoom, NewPost, OutboxEntry, PostKind, Store};
use futures::future::BoxFuture;
use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::{RequestConfig, SyncSettings};
use matrix_sdk::encryption::recovery::RecoveryState;
use matrix_sdk::encryption::{BackupDownloadStrategy, EncryptionSettings};
use matrix_sdk::ruma::api::client::room::create_room::v3::{Request as CreateRoom, RoomPreset};
use matrix_sdk::ruma::api::error::{ErrorKind, RetryAfter};
use matrix_sdk::ruma::events::reaction::ReactionEventContent;
use matrix_sdk::ruma::events::relation::{Annotation, Thread};
use matrix_sdk::ruma::events::room::encryption::RoomEncryptionEventContent;
use matrix_sdk::ruma::events::room::history_visibility::{HistoryVisibility, RoomHistoryVisibilityEventContent};
use matrix_sdk::ruma::events::room::member::{MembershipState, SyncRoomMemberEvent};
use matrix_sdk::ruma::events::room::message::{
    MessageType, OriginalSyncRoomMessageEvent, Relation, ReplacementMetadata, RoomMessageEventContent,
    RoomMessageEventContentWithoutRelation,
};
use matrix_sdk::ruma::events::{InitialStateEvent, Mentions};
use matrix_sdk::ruma::{OwnedEventId, OwnedTransactionId, OwnedUserId, UserId};
use matrix_sdk::{Client, Room, RoomMemberships};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The namespaced state event holding the room's non-personal configuration.
pub const CONFIG_EVENT_TYPE: &str = "no.tilstede.config";

/// The reaction key that acknowledges a command. It carries no data.
pub const ACK_REACTION: &str = "✅";

/// Where a command was given and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    /// The room's registry key.
    pub room_key: String,
    /// The room's kind (`ressursteam`, `direct`, `case`).
    pub room_kind: String,
    /// The sender's user id.
    pub sender: String,
    /// The command's event id.
    pub event_id: String,
    /// The thread the answer goes into.
    pub thread_root: String,
}

/// The bot's answer to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Plain body.
    pub plain: String,
    /// HTML body.
    pub html: String,
    /// Users to mention.
    pub mentions: Vec<String>,
}

impl Reply {
    /// A plain-text reply (the HTML is the escaped text).
    pub fn text(plain: impl Into<String>) -> Reply {
        let plain = plain.into();
        Reply {
            html: escape_html(&plain),
            plain,
            mentions: Vec::new(),
        }
    }
}

/// Carries out parsed commands (the case workflow implements this). It checks
/// permissions itself and says why in the reply when it refuses.
pub trait CommandHandler: Send + Sync {
    /// Handles one command; the reply goes into the command's thread.
    fn handle<'a>(&'a self, context: &'a CommandContext, command: Command) -> BoxFuture<'a, Reply>;

    /// Handles a message in a thread that is not a command (an answer in a
    /// multi-step dialogue). `None`: not for the bot, say nothing.
    fn handle_text<'a>(&'a self, context: &'a CommandContext, text: &'a str) -> BoxFuture<'a, Option<Reply>> {
        let _ = (context, text);
        Box::pin(async { None })
    }
}

/// The running bot. Cheap to clone.
#[derive(Clone)]
pub struct Bot {
    inner: Arc<Inner>,
}

/// Called with the duration of every successful send (for metrics).
pub type SendObserver = Arc<dyn Fn(Duration) + Send + Sync>;

struct Inner {
    client: Client,
    store: Store,
    config: MatrixConfig,
    wake: Notify,
    handler: Arc<dyn CommandHandler>,
    observer: std::sync::Mutex<Option<SendObserver>>,
    /// Until when the homeserver is rate limiting the bot: meanwhile each
    /// room's backlog goes out merged into one message per round.
    pressure_until: std::sync::Mutex<Option<Instant>>,
}

/// How long after a 429 the bot keeps coalescing backlogs.
const PRESSURE: Duration = Duration::from_secs(120);

/// Most posts merged into one message.
const BATCH_MAX: i64 = 60;

impl std::fmt::Debug for Bot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bot").field("user", &self.inner.config.user).finish()
    }
}

/// The bot's background tasks; dropping this stops them.
#[derive(Debug)]
pub struct BotTasks {
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for BotTasks {
    fn drop(&mut self) {
        for h in &self.handles {
            h.abort();
        }
    }
}

fn state_err(path: &Path) -> impl FnOnce(std::io::Error) -> MatrixError + '_ {
    move |source| MatrixError::State {
        path: path.display().to_string(),
        source,
    }
}

/// Writes a secret file readable only by its owner.
fn write_private(path: &Path, text: &str) -> Result<(), MatrixError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.create(true).write(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options.open(path).map_err(state_err(path))?;
    f.write_all(text.as_bytes()).map_err(state_err(path))
}

fn user(id: &str) -> Result<OwnedUserId, MatrixError> {
    UserId::parse(id).map_err(|_| MatrixError::BadId(id.to_string()))
}

fn event(id: &str) -> Result<OwnedEventId, MatrixError> {
    OwnedEventId::try_from(id).map_err(|_| MatrixError::BadId(id.to_string()))
}

/// How long a room waits before the next delivery attempt.
struct Wait(Duration);

impl Bot {
    /// Logs in (first run) or restores the saved session from the state
    /// directory, then syncs once. On the first run it also sets up
    /// cross-signing and recovery; the recovery key is written to
    /// `recovery-key` in the state directory (owner-only).
    pub async fn start(
        config: MatrixConfig,
        password: &str,
        store: Store,
        handler: Arc<dyn CommandHandler>,
    ) -> Result<Bot, MatrixError> {
        let dir = config.store_dir.clone();
        std::fs::create_dir_all(&dir).map_err(state_err(&dir))?;
        let client = Client::builder()
            .homeserver_url(&config.homeserver)
            .sqlite_store(dir.join("sdk"), None)
            .with_encryption_settings(EncryptionSettings {
                auto_enable_cross_signing: true,
                // Recovery (below) creates the backup; doing it here too
                // would race it.
                auto_enable_backups: false,
                backup_download_strategy: BackupDownloadStrategy::AfterDecryptionFailure,
            })
            // Bounded retries: the outbox retries on its own terms, and a
            // request must not hang through an outage.
            .request_config(RequestConfig::new().retry_limit(2).timeout(Duration::from_secs(60)))
            .build()
            .await?;
        let session_path = dir.join("session.json");
        let first_run = !session_path.exists();
        if first_run {
            client
                .matrix_auth()
                .login_username(&config.user, password)
                .initial_device_display_name("tilstede")
                .await?;
            let session = client.matrix_auth().session().ok_or_else(|| MatrixError::Session {
                path: session_path.display().to_string(),
                message: "ingen økt etter innlogging".into(),
            })?;
            let text = serde_json::to_string(&session).map_err(|e| MatrixError::Session {
                path: session_path.display().to_string(),
                message: e.to_string(),
            })?;
            write_private(&session_path, &text)?;
        } else {
            let text = std::fs::read_to_string(&session_path).map_err(state_err(&session_path))?;
            let session: MatrixSession = serde_json::from_str(&text).map_err(|e| MatrixError::Session {
                path: session_path.display().to_string(),
                message: e.to_string(),
            })?;
            client.restore_session(session).await?;
        }
        let bot = Bot {
            inner: Arc::new(Inner {
                client,
                store,
                config,
                wake: Notify::new(),
                handler,
                observer: std::sync::Mutex::new(None),
                pressure_until: std::sync::Mutex::new(None),
            }),
        };
        bot.register_handlers();
        bot.sync_once(Duration::ZERO).await?;
        bot.inner.client.encryption().wait_for_e2ee_initialization_tasks().await;
        bot.ensure_recovery().await?;
        tracing::info!(first_run, "matrix bot started");
        Ok(bot)
    }

    /// Turns on recovery (key backup and secret storage) unless it already is.
    async fn ensure_recovery(&self) -> Result<(), MatrixError> {
        let recovery = self.inner.client.encryption().recovery();
        if recovery.state() == RecoveryState::Disabled {
            let key = recovery.enable().await?;
            write_private(&self.recovery_key_path(), &key)?;
            tracing::info!("matrix recovery enabled; key saved in the state directory");
        }
        Ok(())
    }

    /// Where the recovery key is kept.
    pub fn recovery_key_path(&self) -> PathBuf {
        self.inner.config.store_dir.join("recovery-key")
    }

    /// The matrix-sdk client (for status checks).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The bot's user id.
    pub fn user_id(&self) -> String {
        self.inner.config.user.clone()
    }

    /// One sync with the homeserver (long-polling up to `timeout`).
    pub async fn sync_once(&self, timeout: Duration) -> Result<(), MatrixError> {
        self.inner
            .client
            .sync_once(SyncSettings::default().timeout(timeout))
            .await?;
        Ok(())
    }

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

    /// Makes sure every configured school has its encrypted ressursteam room
    /// with the configured members invited, and every admin a direct room.
    pub async fn ensure_rooms(&self) -> Result<(), MatrixError> {
        for school in self.inner.config.schools.clone() {
            self.ensure_school_room(&school.school, &school.name, &school.members)
                .await?;
        }
        for admin in self.inner.config.admins.clone() {
            self.ensure_direct(&admin).await?;
        }
        Ok(())
    }

    fn expected(&self, members: &[String]) -> Vec<String> {
        let mut all = vec![self.inner.config.user.clone()];
        all.extend(members.iter().filter(|m| **m != self.inner.config.user).cloned());
        all
    }

    /// Creates (if missing) a school's ressursteam room and invites members
    /// not yet in it. Returns the room id.
    pub async fn ensure_school_room(
        &self,
        school: &str,
        name: &str,
        members: &[String],
    ) -> Result<String, MatrixError> {
        let key = school_room(school);
        let expected = self.expected(members);
        if let Some(mut known) = self.inner.store.matrix_room(&key).await?
            && let Some(room) = self.inner.client.get_room(
                &matrix_sdk::ruma::OwnedRoomId::try_from(known.room_id.as_str())
                    .map_err(|_| MatrixError::BadId(known.room_id.clone()))?,
            )
        {
            for m in members {
                let present = room.get_member_no_sync(&user(m)?).await?;
                let in_room =
                    present.is_some_and(|p| matches!(p.membership(), MembershipState::Join | MembershipState::Invite));
                if !in_room {
                    room.invite_user_by_id(&user(m)?).await?;
                }
            }
            known.members = expected;
            self.inner.store.put_matrix_room(&known).await?;
            return Ok(known.room_id);
        }
        let config = serde_json::json!({ "kind": "ressursteam", "school": school, "version": 1 });
        let room_id = self
            .create_encrypted_room(Some(name), members, false, Some(config))
            .await?;
        self.inner
            .store
            .put_matrix_room(&MatrixRoom {
                room_key: key,
                room_id: room_id.clone(),
                kind: "ressursteam".into(),
                members: expected,
                blocked: None,
            })
            .await?;
        tracing::info!(school, room = %room_id, "ressursteam room created");
        Ok(room_id)
    }

    /// The encrypted direct room with `user_id`, created on first use.
    pub async fn ensure_direct(&self, user_id: &str) -> Result<String, MatrixError> {
        let key = direct_room(user_id);
        if let Some(known) = self.inner.store.matrix_room(&key).await? {
            return Ok(known.room_id);
        }
        let room_id = self
            .create_encrypted_room(
                None,
                &[user_id.to_string()],
                true,
                Some(serde_json::json!({ "kind": "direct", "version": 1 })),
            )
            .await?;
        self.inner
            .store
            .put_matrix_room(&MatrixRoom {
                room_key: key,
                room_id: room_id.clone(),
                kind: "direct".into(),
                members: self.expected(&[user_id.to_string()]),
                blocked: None,
            })
            .await?;
        Ok(room_id)
    }

    /// Creates a room the workflow planned (a case room), encrypted, with
    /// exactly the planned members invited. `false` when nothing is planned.
    pub async fn ensure_planned(&self, room_key: &str) -> Result<bool, MatrixError> {
        if self.inner.store.matrix_room(room_key).await?.is_some() {
            return Ok(true);
        }
        let Some(plan) = self.inner.store.matrix_room_plan(room_key).await? else {
            return Ok(false);
        };
        let room_id = self
            .create_encrypted_room(
                plan.name.as_deref(),
                &plan.members,
                false,
                Some(serde_json::json!({ "kind": plan.kind, "version": 1 })),
            )
            .await?;
        self.inner
            .store
            .put_matrix_room(&MatrixRoom {
                room_key: room_key.to_string(),
                room_id: room_id.clone(),
                kind: plan.kind.clone(),
                members: self.expected(&plan.members),
                blocked: None,
            })
            .await?;
        tracing::info!(room = %room_id, kind = %plan.kind, "planned room created");
        Ok(true)
    }

    async fn create_encrypted_room(
        &self,
        name: Option<&str>,
        invite: &[String],
        direct: bool,
        config: Option<serde_json::Value>,
    ) -> Result<String, MatrixError> {
        let mut request = CreateRoom::new();
        request.name = name.map(str::to_string);
        request.is_direct = direct;
        request.preset = Some(if direct {
            RoomPreset::TrustedPrivateChat
        } else {
            RoomPreset::PrivateChat
        });
        request.invite = invite.iter().map(|u| user(u)).collect::<Result<_, _>>()?;
        request.initial_state = vec![
            InitialStateEvent::with_empty_state_key(RoomEncryptionEventContent::with_recommended_defaults())
                .to_raw_any(),
            // Members read from their invitation on, never older history.
            InitialStateEvent::with_empty_state_key(RoomHistoryVisibilityEventContent::new(HistoryVisibility::Invited))
                .to_raw_any(),
        ];
        let room = self.inner.client.create_room(request).await?;
        if let Some(config) = config {
            room.send_state_event_raw(CONFIG_EVENT_TYPE, "", config).await?;
        }
        Ok(room.room_id().to_string())
    }

    fn register_handlers(&self) {
        let bot = self.clone();
        self.inner
            .client
            .add_event_handler(move |ev: OriginalSyncRoomMessageEvent, room: Room| {
                let bot = bot.clone();
                async move {
                    if let Err(e) = bot.on_message(ev, room).await {
                        tracing::warn!(error = %e, "command handling failed");
                    }
                }
            });
        let bot = self.clone();
        self.inner
            .client
            .add_event_handler(move |ev: SyncRoomMemberEvent, room: Room| {
                let bot = bot.clone();
                async move {
                    if let SyncRoomMemberEvent::Original(ev) = ev
                        && ev.content.membership == MembershipState::Join
                        && let Err(e) = bot.check_member(&room, ev.state_key.as_str()).await
                    {
                        tracing::warn!(error = %e, "membership check failed");
                    }
                }
            });
    }

    /// Stops posting into a managed room when `member` was not expected there,
    /// and alerts the admins. Returns whether the room is (now) blocked.
    async fn check_member(&self, room: &Room, member: &str) -> Result<bool, MatrixError> {
        let Some(known) = self.inner.store.matrix_room_by_id(room.room_id().as_str()).await? else {
            return Ok(false);
        };
        if known.blocked.is_some() {
            return Ok(true);
        }
        if known.members.iter().any(|m| m == member) {
            return Ok(false);
        }
        self.inner
            .store
            .set_matrix_room_blocked(&known.room_key, Some("unexpected-member"))
            .await?;
        tracing::warn!(room = %known.room_key, "unexpected member joined; posting stopped");
        let plain = format!(
            "Varsel: {member} er med i rommet {} uten å stå på medlemslisten. Boten har sluttet å poste der til en administrator har ryddet i rommet.",
            known.room_key
        );
        for admin in &self.inner.config.admins {
            let key = direct_room(admin);
            if key == known.room_key {
                continue;
            }
            self.enqueue(&super::notice(
                &key,
                &plain,
                &escape_html(&plain),
                std::slice::from_ref(admin),
            ))
            .await?;
        }
        Ok(true)
    }

    async fn on_message(&self, ev: OriginalSyncRoomMessageEvent, room: Room) -> Result<(), MatrixError> {
        if ev.sender.as_str() == self.inner.config.user {
            return Ok(());
        }
        let MessageType::Text(text) = &ev.content.msgtype else {
            return Ok(());
        };
        let command = commands::is_command(&text.body);
        let in_thread = matches!(&ev.content.relates_to, Some(Relation::Thread(_)));
        // Plain talk outside threads is people talking to each other.
        if !command && !in_thread {
            return Ok(());
        }
        let Some(known) = self.inner.store.matrix_room_by_id(room.room_id().as_str()).await? else {
            return Ok(());
        };
        // A sync replayed after a restart must not run the command (or
        // advance the dialogue) again.
        if !self.inner.store.claim_command(ev.event_id.as_str()).await? {
            return Ok(());
        }
        let thread_root = match &ev.content.relates_to {
            Some(Relation::Thread(t)) => t.event_id.to_string(),
            _ => ev.event_id.to_string(),
        };
        let context = CommandContext {
            room_key: known.room_key.clone(),
            room_kind: known.kind.clone(),
            sender: ev.sender.to_string(),
            event_id: ev.event_id.to_string(),
            thread_root: thread_root.clone(),
        };
        let reply = if command {
            tracing::info!(room = %known.room_key, event = %ev.event_id, "command received");
            match commands::parse(&text.body) {
                Err(e) => Reply::text(e.to_string()),
                Ok(Command::Help(None)) => Reply::text(commands::help_text()),
                Ok(Command::Help(Some(c))) => Reply::text(format!(
                    "!{} {} (!{}): {}",
                    c.word(),
                    c.arguments(),
                    c.alias(),
                    c.help()
                )),
                Ok(command) => self.inner.handler.handle(&context, command).await,
            }
        } else {
            match self.inner.handler.handle_text(&context, &text.body).await {
                Some(reply) => reply,
                None => return Ok(()),
            }
        };
        self.enqueue(&NewPost {
            room_key: known.room_key.clone(),
            kind: PostKind::Reaction,
            anchor: None,
            thread: None,
            target: Some(EventRef::Event(ev.event_id.to_string())),
            body: ACK_REACTION.into(),
            html: String::new(),
            mentions: Vec::new(),
        })
        .await?;
        let mut mentions = reply.mentions.clone();
        if !mentions.contains(&context.sender) {
            mentions.push(context.sender.clone());
        }
        self.enqueue(&NewPost {
            room_key: known.room_key,
            kind: PostKind::Notice,
            anchor: None,
            thread: Some(EventRef::Event(thread_root)),
            target: None,
            body: reply.plain,
            html: reply.html,
            mentions,
        })
        .await?;
        Ok(())
    }

    /// Starts the `sync_once` loop and the delivery loop.
    pub fn spawn(&self) -> BotTasks {
        let sync = {
            let bot = self.clone();
            tokio::spawn(async move {
                let mut failures = 0u32;
                loop {
                    match bot.sync_once(Duration::from_secs(30)).await {
                        Ok(()) => failures = 0,
                        Err(e) => {
                            failures += 1;
                            tracing::warn!(error = %e, failures, "sync failed");
                            tokio::time::sleep(backoff(failures)).await;
                        }
                    }
                }
            })
        };
        let deliver = {
            let bot = self.clone();
            tokio::spawn(async move { bot.delivery_loop().await })
        };
        BotTasks {
            handles: vec![sync, deliver],
        }
    }

    async fn delivery_loop(&self) {
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
        match room
            .send(content)
            .with_transaction_id(txn)
            .with_request_config(once)
            .await
        {
            Ok(sent) => {
                self.observe_send(started.elapsed());
                store
                    .outbox_batch_delivered(batch, sent.response.event_id.as_str())
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
        let result = match (post.kind, target) {
            (PostKind::Reaction, Some(target)) => {
                room.send(ReactionEventContent::new(Annotation::new(target, post.body.clone())))
                    .with_transaction_id(txn)
                    .with_request_config(once)
                    .await?
            }
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
                room.send(content)
                    .with_transaction_id(txn)
                    .with_request_config(once)
                    .await?
            }
            (kind, _) => {
                if kind != PostKind::Notice {
                    // The target was never delivered: post the text rather
                    // than lose it.
                    tracing::warn!(txn = %entry.txn_id, "relation target unknown; sending as a plain notice");
                }
                let mut content = RoomMessageEventContent::notice_html(&post.body, &post.html).add_mentions(mentions());
                if let Some(thread) = &post.thread
                    && let Some(root) = self.resolve(&post.room_key, thread).await
                {
                    let latest = self
                        .inner
                        .store
                        .outbox_last_in_thread(&post.room_key, thread)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|e| event(&e).ok())
                        .unwrap_or_else(|| root.clone());
                    content.relates_to = Some(Relation::Thread(Thread::plain(root, latest)));
                }
                room.send(content)
                    .with_transaction_id(txn)
                    .with_request_config(once)
                    .await?
            }
        };
        Ok(result.response.event_id.to_string())
    }
}

/// Exponential backoff from 250 ms up to 10 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << failures.min(6).saturating_sub(1))).min(Duration::from_secs(10))
}
