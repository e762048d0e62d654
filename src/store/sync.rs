//! Cursors of the pull adapters.

use super::{Store, StoreError, now};
use sqlx::Row;

impl Store {
    /// The saved cursor of `stream` within `source`, if any.
    pub async fn sync_cursor(&self, source: &str, stream: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query("SELECT cursor FROM sync_state WHERE source = $1 AND stream = $2")
                .bind(source)
                .bind(stream)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.get::<String, _>(0)),
        )
    }

    /// Saves a cursor. Call it only after the records up to the cursor are
    /// committed: a crash in between makes the next run fetch them again,
    /// which the idempotent upsert absorbs.
    pub async fn set_sync_cursor(&self, source: &str, stream: &str, cursor: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sync_state (source, stream, cursor, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (source, stream) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
        )
        .bind(source)
        .bind(stream)
        .bind(cursor)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
