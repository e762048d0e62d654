//! Who a record's pupil is. A pupil is one child of one source: the pair
//! (source, local id). Two school systems that both use the id `1234` have
//! two children, with two sets of findings and two cases.
//!
//! Everything downstream (findings, cases, the roster, chat) names a pupil
//! by one string, the pupil key, which the store writes into a record's
//! `pupil` as the record is stored. The first source to use a local id owns
//! it: its key is the bare id, so a single-source municipality and a roster
//! with the same ids go on as before. Every other source's pupil with that
//! local id gets the key `SOURCE:ID`. The assignment is stored
//! (`pupil_keys`, `pupil_owners`) and never changes, so a key always means
//! the same child. Records of a source that links ids (an identity map IT
//! sets up, [`Store::link_pupil`]) get the linked key instead.

use super::{Store, StoreError};
use crate::domain::AbsenceRecord;
use sqlx::Row;
use std::collections::{BTreeSet, HashMap};

/// The known keys, by (source, local id).
pub(super) type KeyCache = std::sync::Mutex<HashMap<(String, String), String>>;

const SELECT_KEY: &str = "SELECT pupil FROM pupil_keys WHERE source = $1 AND local_id = $2";
const CLAIM: &str = "INSERT INTO pupil_owners (pupil, source) VALUES ($1, $2) ON CONFLICT (pupil) DO NOTHING";
const OWNER: &str = "SELECT source FROM pupil_owners WHERE pupil = $1";
const INSERT_KEY: &str =
    "INSERT INTO pupil_keys (source, local_id, pupil) VALUES ($1, $2, $3) ON CONFLICT (source, local_id) DO NOTHING";
const LINK_KEY: &str = "INSERT INTO pupil_keys (source, local_id, pupil) VALUES ($1, $2, $3) \
     ON CONFLICT (source, local_id) DO UPDATE SET pupil = excluded.pupil";

/// The key of `local` for a source when `owner` owns the bare id.
fn key_for(source: &str, local: &str, owner: &str) -> String {
    if owner == source {
        local.to_string()
    } else {
        format!("{source}:{local}")
    }
}

/// The (source, local id) pairs of `records` not in `cache`.
fn unknown(records: &[AbsenceRecord], cache: &HashMap<(String, String), String>) -> BTreeSet<(String, String)> {
    records
        .iter()
        .filter(|r| !r.pupil.is_empty())
        .map(|r| (r.source.clone(), r.pupil.clone()))
        .filter(|pair| !cache.contains_key(pair))
        .collect()
}

/// Writes each record's pupil key into its `pupil`.
fn apply(records: &mut [AbsenceRecord], cache: &HashMap<(String, String), String>) {
    for r in records.iter_mut().filter(|r| !r.pupil.is_empty()) {
        if let Some(key) = cache.get(&(r.source.clone(), std::mem::take(&mut r.pupil))) {
            r.pupil = key.clone();
        }
    }
}

impl Store {
    /// Replaces each record's local pupil id by its pupil key, assigning
    /// keys to pairs never seen (in a transaction of its own).
    pub(super) async fn key_pupils(&self, records: &mut [AbsenceRecord]) -> Result<(), StoreError> {
        let missing = {
            let cache = self
                .pupil_keys
                .lock()
                .map_err(|_| StoreError::Worker("pupil keys".into()))?;
            unknown(records, &cache)
        };
        if !missing.is_empty() {
            let mut tx = self.begin_write().await?;
            let found = assign(&mut tx, missing).await?;
            tx.commit().await?;
            self.pupil_keys
                .lock()
                .map_err(|_| StoreError::Worker("pupil keys".into()))?
                .extend(found);
        }
        let cache = self
            .pupil_keys
            .lock()
            .map_err(|_| StoreError::Worker("pupil keys".into()))?;
        apply(records, &cache);
        Ok(())
    }

    /// Links `source`'s pupil `local` to the pupil key `pupil` (the identity
    /// map: the same child in two systems, e.g. by Feide id). Records
    /// stored from now on get that key; records already stored move with
    /// it, and both pupils are re-evaluated.
    pub async fn link_pupil(&self, source: &str, local: &str, pupil: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let old: Option<String> = sqlx::query(SELECT_KEY)
            .bind(source)
            .bind(local)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        sqlx::query(LINK_KEY)
            .bind(source)
            .bind(local)
            .bind(pupil)
            .execute(&mut *tx)
            .await?;
        if let Some(old) = old.filter(|o| o != pupil) {
            sqlx::query("UPDATE records SET pupil = $1 WHERE source = $2 AND pupil = $3")
                .bind(pupil)
                .bind(source)
                .bind(old.as_str())
                .execute(&mut *tx)
                .await?;
            for p in [old.as_str(), pupil] {
                sqlx::query("INSERT INTO dirty_pupils (pupil) VALUES ($1) ON CONFLICT (pupil) DO NOTHING")
                    .bind(p)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        self.pupil_keys
            .lock()
            .map_err(|_| StoreError::Worker("pupil keys".into()))?
            .insert((source.to_string(), local.to_string()), pupil.to_string());
        Ok(())
    }

    /// The (source, local id) pairs behind the pupil key `pupil`.
    pub async fn pupil_identities(&self, pupil: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT source, local_id FROM pupil_keys WHERE pupil = $1 ORDER BY source, local_id")
            .bind(pupil)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}

/// [`Store::key_pupils`] inside an open transaction (of a bulk import),
/// with a cache of its own: keys assigned there count only once it commits.
pub(super) async fn key_pupils_in(
    conn: &mut sqlx::AnyConnection,
    cache: &mut HashMap<(String, String), String>,
    records: &mut [AbsenceRecord],
) -> Result<(), StoreError> {
    let missing = unknown(records, cache);
    if !missing.is_empty() {
        cache.extend(assign(conn, missing).await?);
    }
    apply(records, cache);
    Ok(())
}

/// Looks up or assigns the keys of `pairs`.
async fn assign(
    conn: &mut sqlx::AnyConnection,
    pairs: BTreeSet<(String, String)>,
) -> Result<Vec<((String, String), String)>, StoreError> {
    let mut found = Vec::with_capacity(pairs.len());
    for (source, local) in pairs {
        let known: Option<String> = sqlx::query(SELECT_KEY)
            .bind(source.as_str())
            .bind(local.as_str())
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        let key = match known {
            Some(k) => k,
            None => {
                sqlx::query(CLAIM)
                    .bind(local.as_str())
                    .bind(source.as_str())
                    .execute(&mut *conn)
                    .await?;
                let owner: String = sqlx::query(OWNER)
                    .bind(local.as_str())
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get(0)?;
                let key = key_for(&source, &local, &owner);
                sqlx::query(INSERT_KEY)
                    .bind(source.as_str())
                    .bind(local.as_str())
                    .bind(key.as_str())
                    .execute(&mut *conn)
                    .await?;
                key
            }
        };
        found.push(((source, local), key));
    }
    Ok(found)
}

/// [`Store::key_pupils`] on the direct SQLite connection of a bulk import,
/// inside its open transaction.
pub(super) fn key_pupils_direct(
    conn: &rusqlite::Connection,
    cache: &mut HashMap<(String, String), String>,
    records: &mut [AbsenceRecord],
) -> Result<(), StoreError> {
    use rusqlite::OptionalExtension;
    for (source, local) in unknown(records, cache) {
        let known: Option<String> = conn
            .prepare_cached(SELECT_KEY)?
            .query_row(rusqlite::params![source, local], |r| r.get(0))
            .optional()?;
        let key = match known {
            Some(k) => k,
            None => {
                conn.prepare_cached(CLAIM)?.execute(rusqlite::params![local, source])?;
                let owner: String = conn.prepare_cached(OWNER)?.query_row([&local], |r| r.get(0))?;
                let key = key_for(&source, &local, &owner);
                conn.prepare_cached(INSERT_KEY)?
                    .execute(rusqlite::params![source, local, key])?;
                key
            }
        };
        cache.insert((source, local), key);
    }
    apply(records, cache);
    Ok(())
}
