//! Session bootstrap: one matrix-sdk client with its SQLite crypto store kept
//! in the state directory, login or a restored session, cross-signing and
//! recovery, the `sync_once` loop and the bot's background tasks.

use super::MatrixError;
use super::config::MatrixConfig;
use super::delivery::backoff;
use super::inbound::CommandHandler;
use crate::store::Store;
use matrix_sdk::Client;
use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::{RequestConfig, SyncSettings};
use matrix_sdk::encryption::recovery::RecoveryState;
use matrix_sdk::encryption::{BackupDownloadStrategy, EncryptionSettings};
use matrix_sdk::ruma::{OwnedEventId, OwnedUserId, UserId};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The running bot. Cheap to clone.
#[derive(Clone)]
pub struct Bot {
    pub(super) inner: Arc<Inner>,
}

/// Called with the duration of every successful send (for metrics).
pub type SendObserver = Arc<dyn Fn(Duration) + Send + Sync>;

/// The state every clone of the bot shares.
pub(super) struct Inner {
    pub(super) client: Client,
    pub(super) store: Store,
    pub(super) config: MatrixConfig,
    pub(super) wake: Notify,
    pub(super) handler: Arc<dyn CommandHandler>,
    pub(super) observer: std::sync::Mutex<Option<SendObserver>>,
    /// Until when the homeserver is rate limiting the bot: meanwhile each
    /// room's backlog goes out merged into one message per round.
    /// The bot's own megolm sessions (see `history.rs`).
    pub(super) keys: super::history::RoomKeys,
    pub(super) pressure_until: std::sync::Mutex<Option<Instant>>,
}

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
pub(super) fn write_private(path: &Path, text: &str) -> Result<(), MatrixError> {
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

pub(super) fn user(id: &str) -> Result<OwnedUserId, MatrixError> {
    UserId::parse(id).map_err(|_| MatrixError::BadId(id.to_string()))
}

pub(super) fn event(id: &str) -> Result<OwnedEventId, MatrixError> {
    OwnedEventId::try_from(id).map_err(|_| MatrixError::BadId(id.to_string()))
}

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
        let keys = super::history::RoomKeys::open(&dir)?;
        let bot = Bot {
            inner: Arc::new(Inner {
                keys,
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

    /// One sync with the homeserver (long-polling up to `timeout`); then
    /// devices that appeared get the room keys of what their users may read.
    pub async fn sync_once(&self, timeout: Duration) -> Result<(), MatrixError> {
        self.inner
            .client
            .sync_once(SyncSettings::default().timeout(timeout))
            .await?;
        if let Err(e) = self.share_history().await {
            tracing::warn!(error = %e, "room keys not shared with new devices yet");
        }
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
}
