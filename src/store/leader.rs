//! Leader election for replicas sharing one PostgreSQL database: pulls and
//! the Matrix bot run on one replica at a time. On SQLite there is one
//! process per file, so it is always the leader.

use super::{Backend, Store, StoreError};
use sqlx::Row;
use sqlx::pool::PoolConnection;

/// The advisory lock key ("tilstede" in ASCII, folded into 63 bits).
const LEADER_KEY: i64 = 0x7469_6c73_7465_6465 & 0x7fff_ffff_ffff_ffff;

/// Leadership, held while this value lives (PostgreSQL: an advisory lock on
/// a dedicated session; it is released when the session ends, so a crashed
/// leader frees it at once).
pub struct Leadership {
    connection: Option<PoolConnection<sqlx::Any>>,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("session", &self.connection.is_some())
            .finish()
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        // Closing the session releases the advisory lock; a pooled session
        // would keep holding it.
        if let Some(conn) = self.connection.take() {
            drop(conn.detach());
        }
    }
}

impl Leadership {
    /// Checks that leadership still holds (the session is alive).
    pub async fn still_held(&mut self) -> bool {
        match &mut self.connection {
            None => true,
            Some(conn) => sqlx::query("SELECT 1").fetch_one(&mut **conn).await.is_ok(),
        }
    }

    /// Gives leadership up at once (dropping it also does, as soon as the
    /// server notices the closed session).
    pub async fn release(mut self) {
        if let Some(mut conn) = self.connection.take() {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(LEADER_KEY)
                .execute(&mut *conn)
                .await;
            let _ = sqlx::Connection::close(conn.detach()).await;
        }
    }
}

impl Store {
    /// Tries to become the leader without waiting.
    pub async fn try_lead(&self) -> Result<Option<Leadership>, StoreError> {
        match self.backend {
            Backend::Sqlite => Ok(Some(Leadership { connection: None })),
            Backend::Postgres => {
                let mut conn = self.pool.acquire().await?;
                let got: bool = sqlx::query("SELECT pg_try_advisory_lock($1) AS got")
                    .bind(LEADER_KEY)
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get("got")?;
                if got {
                    // The lock belongs to this session: keep it out of the pool.
                    Ok(Some(Leadership { connection: Some(conn) }))
                } else {
                    Ok(None)
                }
            }
        }
    }
}
