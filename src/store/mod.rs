//! Persistence: SQLite by default, PostgreSQL for scale-out, through one code
//! path (sqlx's `Any` driver; SQL written for both).
//!
//! Placeholders are always `$N` (SQLite accepts them too), booleans are stored
//! as integers and dates as `YYYY-MM-DD` text, so both backends decode alike.

mod archive;
mod cases;
mod chat;
mod direct;
mod findings;
mod identity;
mod leader;
mod outbox;
mod pushes;
mod records;
mod retention;
mod roster;
mod sync;

pub use archive::{ArchiveCounts, ArchiveEntry, ArchiveProblem, ArchiveState, NewArchiveEntry};
pub use cases::{AuditEntry, CaseStoreError, CaseSummary, CaseTx, QueuedNotification, role_text};
pub use chat::{CardText, Claim, RoomPlan};
pub use findings::{FindingChange, Refresh};
pub use identity::{LinkRefusal, LinkReport};
pub use leader::Leadership;
pub use outbox::{EventRef, MatrixRoom, Media, NewPost, OutboxCounts, OutboxEntry, PostKind};
pub use pushes::{Push, PushOutcome};
pub use records::{BULK_COMMIT, BulkWriter, IngestStats, QuarantineEntry, QuarantinedRow};
pub use retention::{Expired, FINDING_CURSOR, Purged, REDACTION_REASON};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor, Row};
use std::time::Duration;

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file (the embedded default).
    Sqlite,
    /// A PostgreSQL server (several replicas may share it).
    Postgres,
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL could not be understood.
    #[error("ugyldig lager-adresse «{0}»: bruk en filsti, sqlite:STI eller postgres://…")]
    BadUrl(String),
    /// Connecting failed.
    #[error("kunne ikke åpne lageret: {0}")]
    Connect(#[source] sqlx::Error),
    /// A migration failed.
    #[error("migrering {version} feilet: {source}")]
    Migration {
        /// The migration's number.
        version: i64,
        /// The database's error.
        #[source]
        source: sqlx::Error,
    },
    /// The database was written by a newer tilstede.
    #[error("lageret har skjemaversjon {found}, men denne versjonen av tilstede kjenner bare til {known}")]
    TooNew {
        /// A migration in the database that this binary does not know.
        found: i64,
        /// Highest migration this binary has.
        known: i64,
    },
    /// A query failed.
    #[error("databasefeil: {0}")]
    Database(#[from] sqlx::Error),
    /// Stored data could not be read back.
    #[error("ødelagte data i lageret: {0}")]
    Corrupt(String),
    /// The direct SQLite connection of a bulk import failed.
    #[error("databasefeil (masseimport): {0}")]
    Bulk(#[from] rusqlite::Error),
    /// A blocking thread doing the store's direct SQLite work stopped (it panicked).
    #[error("lagerets arbeidstråd stoppet: {0}")]
    Worker(String),
}

/// Migrations per backend, in order. Never edit one that has shipped; add a new one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        include_str!("migrations/sqlite/0001_foundation.sql"),
        include_str!("migrations/postgres/0001_foundation.sql"),
    ),
    (
        2,
        include_str!("migrations/sqlite/0002_roster.sql"),
        include_str!("migrations/postgres/0002_roster.sql"),
    ),
    (
        3,
        include_str!("migrations/sqlite/0003_cases.sql"),
        include_str!("migrations/postgres/0003_cases.sql"),
    ),
    (
        4,
        include_str!("migrations/sqlite/0004_sync_state.sql"),
        include_str!("migrations/postgres/0004_sync_state.sql"),
    ),
    (
        5,
        include_str!("migrations/sqlite/0005_matrix.sql"),
        include_str!("migrations/postgres/0005_matrix.sql"),
    ),
    (
        8,
        include_str!("migrations/sqlite/0008_chat.sql"),
        include_str!("migrations/postgres/0008_chat.sql"),
    ),
    (
        9,
        include_str!("migrations/sqlite/0009_dirty_marking.sql"),
        include_str!("migrations/postgres/0009_dirty_marking.sql"),
    ),
    (
        10,
        include_str!("migrations/sqlite/0010_extension_sets.sql"),
        include_str!("migrations/postgres/0010_extension_sets.sql"),
    ),
    (
        11,
        include_str!("migrations/sqlite/0011_subject_period.sql"),
        include_str!("migrations/postgres/0011_subject_period.sql"),
    ),
    (
        20,
        include_str!("migrations/sqlite/0020_push_guard.sql"),
        include_str!("migrations/postgres/0020_push_guard.sql"),
    ),
    (
        30,
        include_str!("migrations/sqlite/0030_pupil_identity.sql"),
        include_str!("migrations/postgres/0030_pupil_identity.sql"),
    ),
    (
        31,
        include_str!("migrations/sqlite/0031_identity_map.sql"),
        include_str!("migrations/postgres/0031_identity_map.sql"),
    ),
    (
        40,
        include_str!("migrations/sqlite/0040_audit_scrub.sql"),
        include_str!("migrations/postgres/0040_audit_scrub.sql"),
    ),
    (
        50,
        include_str!("migrations/sqlite/0050_archive_outbox.sql"),
        include_str!("migrations/postgres/0050_archive_outbox.sql"),
    ),
    (
        51,
        include_str!("migrations/sqlite/0051_outbox_media.sql"),
        include_str!("migrations/postgres/0051_outbox_media.sql"),
    ),
    (
        63,
        include_str!("migrations/sqlite/0063_quarantine_codes.sql"),
        include_str!("migrations/postgres/0063_quarantine_codes.sql"),
    ),
];

/// Sets meta key `$1` to `$2`.
pub(crate) const META_UPSERT: &str =
    "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/// The store. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    url: String,
    /// Taken by SQLite writers that must not wait behind each other for
    /// long: the push writer per group, the findings refresh per batch. A
    /// fair queue, unlike SQLite's busy handler, which polls with sleeps of
    /// up to 100 ms and lets a writer that just committed take the lock again.
    lane: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The group-commit writer of pushes ([`Store::ingest_push`]).
    pushes: std::sync::Arc<pushes::PushWriter>,
    /// Pupil keys already looked up ([`identity`]).
    pupil_keys: std::sync::Arc<identity::KeyCache>,
    /// Sources whose rejected input the quarantine keeps (`keep_raw`);
    /// none unless the configuration says so ([`Store::keeping_raw_for`]).
    raw_kept: std::sync::Arc<std::collections::BTreeSet<String>>,
    /// How SQLite commits pool and push writes.
    synchronous: Synchronous,
}

/// Creates the SQLite file of `url` readable by its owner only (0600)
/// before SQLite opens it, and narrows an existing one and its WAL and
/// shared-memory files to 0600: the store holds pupil data. SQLite creates
/// the `-wal` and `-shm` files with the database file's mode.
fn private_file(url: &str) -> std::io::Result<()> {
    let Some(path) = url.strip_prefix("sqlite://").and_then(|u| u.strip_suffix("?mode=rwc")) else {
        return Ok(());
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        for file in [path.to_string(), format!("{path}-wal"), format!("{path}-shm")] {
            match std::fs::metadata(&file) {
                Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Turns a user-facing store location into a sqlx URL.
fn database_url(location: &str) -> Result<(String, Backend), StoreError> {
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        return Ok((location.to_string(), Backend::Postgres));
    }
    let path = location
        .strip_prefix("sqlite://")
        .or_else(|| location.strip_prefix("sqlite:"))
        .unwrap_or(location);
    if path.is_empty() || location.contains("://") && !location.starts_with("sqlite://") {
        return Err(StoreError::BadUrl(location.to_string()));
    }
    if path == ":memory:" {
        return Ok(("sqlite::memory:".into(), Backend::Sqlite));
    }
    Ok((format!("sqlite://{path}?mode=rwc"), Backend::Sqlite))
}

/// How SQLite commits through the pool (pushes, cases, findings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// Every commit is on disk (one fsync of the WAL) before it returns: a
    /// push answered 202 survives a power loss, not only a crash of the
    /// process. The default.
    #[default]
    Full,
    /// Commits reach the disk at WAL checkpoints: a crash of the process
    /// loses nothing, a power loss may roll back the last commits (pushes
    /// already answered 202). Cheaper by one fsync per commit.
    Normal,
}

impl Synchronous {
    /// The mode named `s` (`full`, `normal`).
    pub fn parse(s: &str) -> Option<Synchronous> {
        match s {
            "full" => Some(Synchronous::Full),
            "normal" => Some(Synchronous::Normal),
            _ => None,
        }
    }

    /// The pragma that sets this mode on a connection.
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "PRAGMA synchronous = FULL;",
            Synchronous::Normal => "PRAGMA synchronous = NORMAL;",
        }
    }
}

/// The pragmas every pooled SQLite connection starts with (then its
/// [`Synchronous::pragma`]). busy_timeout first: switching a fresh file to
/// WAL needs a lock another process may hold. The page size applies only to
/// a file still empty (before WAL mode writes its header): 8 KiB pages halve
/// the pages and log frames a bulk import writes. Temporary tables and
/// statement journals stay in memory, so no pupil data lands in temporary
/// files. The bulk import's own connection keeps NORMAL (see direct.rs).
const POOL_PRAGMAS: &str = "PRAGMA busy_timeout = 30000; PRAGMA page_size = 8192; PRAGMA journal_mode = WAL; \
     PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;";

impl Store {
    /// Opens (creating if needed) and migrates the store at `location`: a file
    /// path, `sqlite:PATH`, or a `postgres://` URL. SQLite commits with
    /// [`Synchronous::Full`].
    pub async fn open(location: &str) -> Result<Store, StoreError> {
        Store::open_with(location, Synchronous::Full).await
    }

    /// [`Store::open`] with the durability of SQLite's commits through the
    /// pool (PostgreSQL ignores it: its own `synchronous_commit` rules).
    pub async fn open_with(location: &str, synchronous: Synchronous) -> Result<Store, StoreError> {
        install_default_drivers();
        let mode = synchronous.pragma();
        let (url, backend) = database_url(location)?;
        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        options = match backend {
            Backend::Sqlite => options
                // One connection per core is plenty: SQLite has one writer.
                .max_connections(if url.contains(":memory:") { 1 } else { 4 })
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        conn.execute(POOL_PRAGMAS).await?;
                        conn.execute(mode).await?;
                        Ok(())
                    })
                }),
            Backend::Postgres => options.max_connections(16),
        };
        if backend == Backend::Sqlite {
            private_file(&url).map_err(|e| StoreError::Connect(sqlx::Error::Io(e)))?;
        }
        let pool = options.connect(&url).await.map_err(StoreError::Connect)?;
        let store = Store {
            pool,
            backend,
            url: location.to_string(),
            lane: Default::default(),
            pushes: Default::default(),
            pupil_keys: Default::default(),
            raw_kept: Default::default(),
            synchronous,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The location the store was opened with (may contain credentials: never log it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The file of a file-based SQLite store (`None` for PostgreSQL and
    /// in-memory SQLite).
    pub(crate) fn sqlite_file(&self) -> Option<String> {
        match database_url(&self.url) {
            Ok((url, Backend::Sqlite)) if !url.contains(":memory:") => url
                .strip_prefix("sqlite://")
                .and_then(|u| u.strip_suffix("?mode=rwc"))
                .map(str::to_string),
            _ => None,
        }
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection pool, for modules that own their own tables.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Applies missing migrations, each in its own transaction.
    async fn migrate(&self) -> Result<(), StoreError> {
        self.pool
            .execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
            )
            .await?;
        // Every migration this binary has and the database lacks is applied,
        // not only those above the highest applied: migrations are numbered
        // in ranges per area and may land out of order.
        let applied: std::collections::BTreeSet<i64> = sqlx::query("SELECT version FROM schema_migrations")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?;
        let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
        if let Some(&found) = applied.iter().find(|v| !MIGRATIONS.iter().any(|m| m.0 == **v)) {
            return Err(StoreError::TooNew { found, known });
        }
        for &(version, sqlite, postgres) in MIGRATIONS.iter().filter(|m| !applied.contains(&m.0)) {
            let sql = match self.backend {
                Backend::Sqlite => sqlite,
                Backend::Postgres => postgres,
            };
            let migration = |source| StoreError::Migration { version, source };
            // Another process or replica may be migrating the same
            // database: SQLite's BEGIN IMMEDIATE and PostgreSQL's advisory
            // lock serialise us, and the version is checked again inside.
            let mut tx = self.begin_write().await.map_err(migration)?;
            if self.backend == Backend::Postgres {
                sqlx::query("SELECT pg_advisory_xact_lock(7461736) ")
                    .execute(&mut *tx)
                    .await
                    .map_err(migration)?;
            }
            let done: Option<i64> = sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(migration)?
                .map(|r| r.get(0));
            if done.is_some() {
                continue;
            }
            sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(migration)?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(now())
                .execute(&mut *tx)
                .await
                .map_err(migration)?;
            tx.commit().await.map_err(migration)?;
            tracing::info!(version, "store migrated");
        }
        Ok(())
    }

    /// Reads a value from the key-value meta table.
    pub async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.get::<String, _>(0)))
    }

    /// Writes a value to the meta table.
    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(META_UPSERT)
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Begins a transaction that will write. On SQLite it takes the write
    /// lock at once (`BEGIN IMMEDIATE`): a deferred transaction that reads
    /// first and then writes fails with "database is locked", without
    /// waiting, when another connection committed in between.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Process-wide SQLite settings; call before anything opens a database
/// (later calls change nothing). Memory statistics are switched off: with
/// them, every allocation inside SQLite takes a global mutex, which a bulk
/// import pays about a million times per million records.
pub fn configure_sqlite() {
    // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int. Before SQLite is
    // initialised this only sets the option; afterwards SQLite refuses it
    // with SQLITE_MISUSE and nothing changes.
    unsafe {
        rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::os::raw::c_int);
    }
}

/// The current time as RFC 3339 text (the store's timestamp format).
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Backend {
    /// `n` placeholders numbered from `first`, for statements with many
    /// parameters: `?, ?, …` on SQLite, `$first, $first+1, …` on PostgreSQL.
    ///
    /// SQLite looks up every *named* parameter (`$N`) by a linear scan when
    /// sqlx binds it, which is quadratic in the parameter count; anonymous `?`
    /// parameters avoid that. Do not mix the two forms in one statement.
    pub(crate) fn placeholders(self, first: usize, n: usize) -> String {
        match self {
            Backend::Sqlite => vec!["?"; n].join(", "),
            Backend::Postgres => (first..first + n)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            database_url("a.db").unwrap(),
            ("sqlite://a.db?mode=rwc".into(), Backend::Sqlite)
        );
        assert_eq!(database_url("sqlite:/x/a.db").unwrap().0, "sqlite:///x/a.db?mode=rwc");
        assert_eq!(database_url("postgres://u@h/db").unwrap().1, Backend::Postgres);
        assert!(database_url("mysql://h/db").is_err());
        assert!(database_url("").is_err());
    }

    /// Statement journals and temporary tables hold pupil data; neither may
    /// land in a temporary file, on the pool's connections or the direct ones.
    #[tokio::test]
    async fn temporary_data_stays_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db").display().to_string();
        let store = Store::open(&path).await.unwrap();
        let mut pooled = Vec::new();
        for _ in 0..2 {
            pooled.push(store.pool().acquire().await.unwrap());
        }
        for conn in &mut pooled {
            let row = sqlx::query("PRAGMA temp_store").fetch_one(&mut **conn).await.unwrap();
            assert_eq!(sqlx::Row::try_get::<i64, _>(&row, 0).unwrap(), 2, "pool connection");
        }
        let direct = direct::connect(&path).unwrap();
        let mode: i64 = direct.query_row("PRAGMA temp_store", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, 2, "direct connection");
    }

    /// A new file gets 8 KiB pages; a file made with other pages keeps
    /// them (a page size cannot change in WAL mode) and works as before.
    #[tokio::test]
    async fn new_files_get_large_pages_and_old_files_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let page_size = |path: &str| -> i64 {
            let conn = direct::connect(path).unwrap();
            conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap()
        };
        let new = dir.path().join("new.db").display().to_string();
        Store::open(&new).await.unwrap().close().await;
        assert_eq!(page_size(&new), 8192);

        let old = dir.path().join("old.db").display().to_string();
        {
            let conn = rusqlite::Connection::open(&old).unwrap();
            conn.execute_batch("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE t (x);")
                .unwrap();
        }
        let store = Store::open(&old).await.unwrap();
        let record = crate::domain::AbsenceRecord::from_json_str(
            r#"{"source":"s","id":"e1","version":1,"pupil":"p1","school":"k","date":"2026-01-05","kind":"day","lessons":1,"validity":"invalid"}"#,
        )
        .unwrap();
        store.ingest(&[record], &[]).await.unwrap();
        assert_eq!(store.record_count().await.unwrap().0, 1);
        store.close().await;
        assert_eq!(page_size(&old), 4096);
    }

    #[test]
    fn placeholder_lists() {
        assert_eq!(Backend::Postgres.placeholders(3, 2), "$3, $4");
        assert_eq!(Backend::Sqlite.placeholders(3, 2), "?, ?");
    }
}
