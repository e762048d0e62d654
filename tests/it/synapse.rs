//! The Matrix test harness: a real Synapse on loopback (one shared by the
//! tests of a run, plus private ones for tests that stop the server or need
//! its stock rate limits), users registered through the admin API, and
//! "people": second matrix-sdk clients that join, read, decrypt and answer.

use matrix_sdk::config::SyncSettings;
use matrix_sdk::deserialized_responses::EncryptionInfo;
use matrix_sdk::ruma::events::reaction::OriginalSyncReactionEvent;
use matrix_sdk::ruma::events::relation::Thread;
use matrix_sdk::ruma::events::room::message::{
    MessageType, OriginalSyncRoomMessageEvent, Relation, RoomMessageEventContent,
};
use matrix_sdk::ruma::{OwnedEventId, RoomId};
use matrix_sdk::{Client, Room};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
pub use tilstede::matrix::synapse::{Limits, Synapse};

/// The Synapse interpreter; installs Synapse when it is missing, except under
/// CI where a missing Synapse is a failure (scripts/test installs it).
pub fn python() -> PathBuf {
    match Synapse::python() {
        Ok(p) => p,
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{e}: CI must test against a real Synapse (scripts/test installs it)")
        }
        Err(_) => {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/synapse");
            let status = std::process::Command::new(script)
                .status()
                .expect("run scripts/synapse");
            assert!(status.success(), "scripts/synapse failed");
            Synapse::python().expect("Synapse installed")
        }
    }
}

/// The Synapse shared by this test run (rate limits lifted), started once.
pub fn shared() -> &'static Synapse {
    static SHARED: OnceLock<Synapse> = OnceLock::new();
    SHARED.get_or_init(|| Synapse::start(&python(), Limits::Lifted).expect("start Synapse"))
}

/// A private Synapse, for a test that stops it or needs other limits.
pub fn spawn_synapse(limits: Limits) -> Synapse {
    Synapse::start(&python(), limits).expect("start Synapse")
}

/// A user name no other test in this run (or an earlier run) has.
pub fn unique(name: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "{name}{}x{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::process::id()
    )
}

/// Registers a fresh user and returns (user id, password).
pub async fn register(server: &Synapse, name: &str) -> (String, String) {
    let local = unique(name);
    let password = format!("pw-{local}");
    let id = server.register(&local, &password, false).await.expect("register");
    (id, password)
}

/// One message a person saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Room id.
    pub room: String,
    /// Event id.
    pub event_id: String,
    /// Sender.
    pub sender: String,
    /// Whether it was an m.notice.
    pub notice: bool,
    /// Plain body (for an edit: the new content's body).
    pub body: String,
    /// HTML body.
    pub html: Option<String>,
    /// Arrived encrypted (and was decrypted).
    pub encrypted: bool,
    /// Thread root, when in a thread.
    pub thread_root: Option<String>,
    /// The reply fallback's target, when in a thread.
    pub in_reply_to: Option<String>,
    /// The event it edits.
    pub replaces: Option<String>,
    /// Mentioned users.
    pub mentions: Vec<String>,
    /// The image or file, for an `m.image` or `m.file`.
    pub media: Option<MessageType>,
}

/// A reaction a person saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenReaction {
    /// The event reacted to.
    pub target: String,
    /// The key.
    pub key: String,
    /// Sender.
    pub sender: String,
}

/// A person: a second matrix-sdk client with its own store directory.
pub struct Person {
    /// The client.
    pub client: Client,
    /// The user id.
    pub user_id: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    reactions: Arc<Mutex<Vec<SeenReaction>>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Person {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Person {
    /// Registers a new user on `server` and logs in as them.
    pub async fn new(server: &Synapse, name: &str) -> Person {
        let (id, password) = register(server, name).await;
        Person::login(server, &id, &password).await
    }

    /// Logs in, uploads device keys (one sync) and starts a `sync_once` loop.
    pub async fn login(server: &Synapse, user: &str, password: &str) -> Person {
        let dir = tempfile::tempdir().expect("tempdir");
        let client = Client::builder()
            .homeserver_url(server.url())
            .sqlite_store(dir.path(), None)
            .request_config(
                matrix_sdk::config::RequestConfig::new()
                    .retry_limit(2)
                    .timeout(Duration::from_secs(60)),
            )
            .build()
            .await
            .expect("client");
        client
            .matrix_auth()
            .login_username(user, password)
            .await
            .expect("login");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let reactions = Arc::new(Mutex::new(Vec::new()));
        {
            let seen = seen.clone();
            client.add_event_handler(
                move |ev: OriginalSyncRoomMessageEvent, room: Room, info: Option<EncryptionInfo>| {
                    let seen = seen.clone();
                    async move {
                        let (msgtype, replaces) = match &ev.content.relates_to {
                            Some(Relation::Replacement(r)) => {
                                (r.new_content.msgtype.clone(), Some(r.event_id.to_string()))
                            }
                            _ => (ev.content.msgtype.clone(), None),
                        };
                        let (notice, body, html) = match &msgtype {
                            MessageType::Notice(n) => {
                                (true, n.body.clone(), n.formatted.as_ref().map(|f| f.body.clone()))
                            }
                            MessageType::Text(t) => {
                                (false, t.body.clone(), t.formatted.as_ref().map(|f| f.body.clone()))
                            }
                            other => (false, other.body().to_string(), None),
                        };
                        let (thread_root, in_reply_to) = match &ev.content.relates_to {
                            Some(Relation::Thread(t)) => (
                                Some(t.event_id.to_string()),
                                t.in_reply_to.as_ref().map(|r| r.event_id.to_string()),
                            ),
                            _ => (None, None),
                        };
                        let mentions = ev
                            .content
                            .mentions
                            .as_ref()
                            .map(|m| m.user_ids.iter().map(|u| u.to_string()).collect())
                            .unwrap_or_default();
                        seen.lock().unwrap().push(Seen {
                            room: room.room_id().to_string(),
                            event_id: ev.event_id.to_string(),
                            sender: ev.sender.to_string(),
                            notice,
                            body,
                            html,
                            encrypted: info.is_some(),
                            thread_root,
                            in_reply_to,
                            replaces,
                            mentions,
                            media: matches!(msgtype, MessageType::Image(_) | MessageType::File(_))
                                .then(|| msgtype.clone()),
                        });
                    }
                },
            );
        }
        {
            let reactions = reactions.clone();
            client.add_event_handler(move |ev: OriginalSyncReactionEvent| {
                let reactions = reactions.clone();
                async move {
                    reactions.lock().unwrap().push(SeenReaction {
                        target: ev.content.relates_to.event_id.to_string(),
                        key: ev.content.relates_to.key.clone(),
                        sender: ev.sender.to_string(),
                    });
                }
            });
        }
        client.sync_once(SyncSettings::default()).await.expect("first sync");
        let task = {
            let client = client.clone();
            tokio::spawn(async move {
                loop {
                    if client
                        .sync_once(SyncSettings::default().timeout(Duration::from_secs(5)))
                        .await
                        .is_err()
                    {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            })
        };
        Person {
            user_id: client.user_id().expect("user id").to_string(),
            client,
            seen,
            reactions,
            task,
            _dir: dir,
        }
    }

    /// Joins a room it was invited to (waiting for the invite to arrive).
    pub async fn join(&self, room_id: &str) -> Room {
        let id = RoomId::parse(room_id).expect("room id");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.client.join_room_by_id(&id).await {
                Ok(room) => return room,
                Err(e) if Instant::now() > deadline => panic!("{} could not join {room_id}: {e}", self.user_id),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Sends a text message, in a thread when `thread_root` is given.
    pub async fn say(&self, room_id: &str, text: &str, thread_root: Option<&str>) -> String {
        let room = self.room(room_id).await;
        let mut content = RoomMessageEventContent::text_plain(text);
        if let Some(root) = thread_root {
            let root = OwnedEventId::try_from(root).unwrap();
            content.relates_to = Some(Relation::Thread(Thread::plain(root.clone(), root)));
        }
        room.send(content).await.expect("send").response.event_id.to_string()
    }

    /// The room as this client knows it (waits for it to sync).
    pub async fn room(&self, room_id: &str) -> Room {
        let id = RoomId::parse(room_id).expect("room id");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(room) = self.client.get_room(&id) {
                return room;
            }
            assert!(Instant::now() < deadline, "room {room_id} never synced");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Reactions seen so far.
    pub fn reactions(&self) -> Vec<SeenReaction> {
        self.reactions.lock().unwrap().clone()
    }

    /// Waits until `done` holds for what was seen, or panics after `limit`
    /// with what was seen.
    pub async fn wait_until(&self, limit: Duration, what: &str, done: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        let deadline = Instant::now() + limit;
        loop {
            let seen = self.seen();
            if done(&seen) {
                return seen;
            }
            if Instant::now() > deadline {
                panic!("{}: timed out waiting for {what}; saw {seen:#?}", self.user_id);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits for the first message matching `pred`.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Seen) -> bool) -> Seen {
        let seen = self
            .wait_until(Duration::from_secs(60), what, |s| s.iter().any(&pred))
            .await;
        seen.into_iter().find(|s| pred(s)).unwrap()
    }
}

/// The interpreter of the matrix-nio virtualenv, the independent client the
/// tests read with: `TILSTEDE_NIO_PYTHON`, else what `scripts/nio` installs
/// (it is idempotent). Under CI a missing client is a failure, not a skip.
pub fn nio_python() -> PathBuf {
    if let Some(p) = std::env::var_os("TILSTEDE_NIO_PYTHON").map(PathBuf::from)
        && p.exists()
    {
        return p;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/nio");
    let out = std::process::Command::new(script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run scripts/nio");
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !out.status.success() || !path.exists() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "matrix-nio is missing: CI must read the rooms with an independent client (scripts/test installs it)"
            );
        }
        panic!("scripts/nio failed: {}", out.status);
    }
    path
}

/// What the independent client saw: every encrypted event in the rooms the
/// user is in, decrypted or not (see tests/nio/reader.py).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct NioReport {
    /// The new device the reader logged in as.
    pub device_id: String,
    /// The rooms it read.
    pub rooms: Vec<String>,
    /// The encrypted events, oldest first per room.
    pub events: Vec<NioEvent>,
    /// Decrypted messages per document type (by the title a document opens
    /// with; «saksinfo», «endret saksinfo» and «melding» for the rest).
    #[serde(default)]
    pub document_types: std::collections::BTreeMap<String, usize>,
}

/// One encrypted event as the independent client saw it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct NioEvent {
    /// Room id.
    pub room: String,
    /// Event id.
    pub event_id: String,
    /// Sender.
    pub sender: String,
    /// Whether this device could decrypt it.
    pub decrypted: bool,
    /// The decrypted event type.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The message type.
    #[serde(default)]
    pub msgtype: Option<String>,
    /// The relation type (`m.thread`, `m.replace`, `m.annotation`).
    #[serde(default)]
    pub rel: Option<String>,
    /// The event it relates to.
    #[serde(default)]
    pub relates_to: Option<String>,
    /// The plain body.
    #[serde(default)]
    pub body: Option<String>,
}

impl NioReport {
    /// Events the reader decrypted.
    pub fn decrypted(&self) -> Vec<&NioEvent> {
        self.events.iter().filter(|e| e.decrypted).collect()
    }

    /// How many events it could not decrypt.
    pub fn undecryptable(&self) -> usize {
        self.events.iter().filter(|e| !e.decrypted).count()
    }

    /// Decrypted messages with relation `rel` (`None`: top-level messages).
    pub fn messages_with(&self, rel: Option<&str>) -> Vec<&NioEvent> {
        self.decrypted()
            .into_iter()
            .filter(|e| e.kind.as_deref() == Some("m.room.message") && e.rel.as_deref() == rel)
            .collect()
    }

    /// A one-line summary for failure messages and notes.
    pub fn summary(&self) -> String {
        format!(
            "{} dekryptert, {} ikke dekrypterbare, i {} rom (enhet {})",
            self.decrypted().len(),
            self.undecryptable(),
            self.rooms.len(),
            self.device_id
        )
    }
}

/// Logs in as `user` on a NEW device with matrix-nio, joins what it is
/// invited to and reads every room's history, retrying until nothing is
/// undecryptable and at least `min_decrypted` events decrypted, or `wait`.
pub async fn nio_read(server_url: &str, user: &str, password: &str, min_decrypted: usize, wait: Duration) -> NioReport {
    nio_read_until(server_url, user, password, min_decrypted, &[], wait).await
}

/// [`nio_read`], reading again until the document `types` were all seen
/// too (or `wait`); a homeserver that goes away meanwhile ends the reading
/// with the last full one.
pub async fn nio_read_until(
    server_url: &str,
    user: &str,
    password: &str,
    min_decrypted: usize,
    types: &[&str],
    wait: Duration,
) -> NioReport {
    let python = nio_python();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/nio/reader.py");
    let args = vec![
        script.to_string(),
        server_url.to_string(),
        user.to_string(),
        "-".to_string(),
        "--wait".to_string(),
        wait.as_secs().to_string(),
        "--min-decrypted".to_string(),
        min_decrypted.to_string(),
        "--types".to_string(),
        types.join(","),
    ];
    let password = password.to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .args(&args)
            .env("NIO_PASSWORD", password)
            .output()
            .expect("run tests/nio/reader.py")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "reader.py failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "reader.py printed no report ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
