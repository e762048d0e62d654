//! What guards a push beyond its records: request ids seen before (replay
//! protection) and the per-source version counter of unversioned records.
//! Both are written in the push's own transaction, so a push is refused as a
//! replay only when the earlier one with its id was really stored, and a
//! version is spent only on a push that was kept.

use super::records::write_batch;
use super::{IngestStats, QuarantineEntry, Store, StoreError};
use crate::domain::AbsenceRecord;
use sqlx::Row;

/// One push to store.
#[derive(Debug)]
pub struct Push<'a> {
    /// The source (from the URL).
    pub source: &'a str,
    /// The request id and the unix second after which it may be forgotten.
    pub request_id: Option<(&'a str, i64)>,
    /// `Some(now)` for records without versions of their own: they all get
    /// the source's next version, at least `now` (unix seconds, the clock of
    /// every other version stamp) and above every version given before.
    pub stamp_at_least: Option<u64>,
    /// The records.
    pub records: Vec<AbsenceRecord>,
    /// The rejected items.
    pub quarantine: &'a [QuarantineEntry],
}

/// What storing a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored; the version given to unversioned records, if any.
    Stored(IngestStats, Option<u64>),
    /// The request id was used before: nothing was stored.
    Replayed,
}

impl Store {
    /// Whether `source` already sent a push with `request_id` (a cheap
    /// check before the body is read; [`Store::ingest_push`] decides).
    pub async fn push_seen(&self, source: &str, request_id: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 FROM push_requests WHERE source = $1 AND request_id = $2 AND expires_at >= $3")
                .bind(source)
                .bind(request_id)
                .bind(chrono::Utc::now().timestamp())
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    /// Stores a push in one transaction: its request id (refusing one seen
    /// before), its version (when stamped), its records and its quarantine.
    pub async fn ingest_push(&self, push: Push<'_>) -> Result<PushOutcome, StoreError> {
        let Push {
            source,
            request_id,
            stamp_at_least,
            mut records,
            quarantine,
        } = push;
        let mut tx = self.begin_write().await?;
        if let Some((id, expires_at)) = request_id {
            let now = chrono::Utc::now().timestamp();
            sqlx::query("DELETE FROM push_requests WHERE expires_at < $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let inserted = sqlx::query(
                "INSERT INTO push_requests (source, request_id, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (source, request_id) DO NOTHING",
            )
            .bind(source)
            .bind(id)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                // Dropping the transaction rolls it back.
                return Ok(PushOutcome::Replayed);
            }
        }
        let mut version = None;
        if let Some(floor) = stamp_at_least {
            let floor = i64::try_from(floor).unwrap_or(i64::MAX);
            let v: i64 = sqlx::query(
                "INSERT INTO source_versions (source, last_version) VALUES ($1, $2) \
                 ON CONFLICT (source) DO UPDATE SET last_version = CASE \
                   WHEN source_versions.last_version + 1 > excluded.last_version THEN source_versions.last_version + 1 \
                   ELSE excluded.last_version END \
                 RETURNING last_version",
            )
            .bind(source)
            .bind(floor)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            let v = u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("source_versions «{v}»")))?;
            for r in &mut records {
                r.version = v;
            }
            version = Some(v);
        }
        let stats = write_batch(self.backend, &mut tx, &records, quarantine).await?;
        tx.commit().await?;
        Ok(PushOutcome::Stored(stats, version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, kind: &str) -> AbsenceRecord {
        AbsenceRecord::from_json_str(&format!(
            r#"{{"source":"s","id":"{id}","pupil":"p","school":"k","date":"2026-12-01","kind":"{kind}","validity":"invalid"}}"#
        ))
        .unwrap()
    }

    async fn stored(store: &Store) -> Vec<(String, u64, String)> {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        store
            .pupil_records("p", day, day)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.id, r.version, r.kind.as_str().to_string()))
            .collect()
    }

    /// Two unversioned pushes in the same second: the later one (a
    /// correction) gets the higher version and wins.
    #[tokio::test]
    async fn a_correction_in_the_same_second_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s.db").to_str().unwrap()).await.unwrap();
        let now = 1_800_000_000;
        let push = |kind: &str| Push {
            source: "s",
            request_id: None,
            stamp_at_least: Some(now),
            records: vec![record("r1", kind)],
            quarantine: &[],
        };
        let first = store.ingest_push(push("day")).await.unwrap();
        assert!(matches!(first, PushOutcome::Stored(_, Some(v)) if v == now));
        let second = store.ingest_push(push("late")).await.unwrap();
        assert!(matches!(second, PushOutcome::Stored(s, Some(v)) if v == now + 1 && s.changed == 1));
        assert_eq!(stored(&store).await, [("r1".to_string(), now + 1, "late".to_string())]);
        // A later clock moves the counter forward; it never goes back.
        let later = store
            .ingest_push(Push {
                stamp_at_least: Some(now + 100),
                ..push("day")
            })
            .await
            .unwrap();
        assert!(matches!(later, PushOutcome::Stored(_, Some(v)) if v == now + 100));
        let earlier_clock = store
            .ingest_push(Push {
                stamp_at_least: Some(now - 100),
                ..push("late")
            })
            .await
            .unwrap();
        assert!(matches!(earlier_clock, PushOutcome::Stored(_, Some(v)) if v == now + 101));
    }

    /// A request id is kept once: the second push with it stores nothing.
    #[tokio::test]
    async fn a_request_id_is_accepted_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s.db").to_str().unwrap()).await.unwrap();
        let expires = chrono::Utc::now().timestamp() + 600;
        let push = |id: &str, kind: &str| Push {
            source: "s",
            request_id: Some(("req-1", expires)),
            stamp_at_least: None,
            records: vec![record(id, kind)],
            quarantine: &[],
        };
        assert!(!store.push_seen("s", "req-1").await.unwrap());
        assert!(matches!(
            store.ingest_push(push("r1", "day")).await.unwrap(),
            PushOutcome::Stored(..)
        ));
        assert!(store.push_seen("s", "req-1").await.unwrap());
        assert!(!store.push_seen("other", "req-1").await.unwrap());
        assert_eq!(
            store.ingest_push(push("r2", "late")).await.unwrap(),
            PushOutcome::Replayed
        );
        assert_eq!(stored(&store).await.len(), 1, "the replay stored nothing");
        // Expired ids are forgotten.
        let old = Push {
            request_id: Some(("req-old", 1)),
            ..push("r3", "day")
        };
        store.ingest_push(old).await.unwrap();
        assert!(!store.push_seen("s", "req-old").await.unwrap(), "expired");
        let fresh = Push {
            request_id: Some(("req-2", expires)),
            ..push("r4", "day")
        };
        store.ingest_push(fresh).await.unwrap();
        let kept: i64 = sqlx::query("SELECT COUNT(*) FROM push_requests")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(kept, 2, "req-1 and req-2 kept, req-old purged");
    }
}
