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
//! the same child, unless the identity map moves it.
//!
//! The identity map ([`Store::link_identities`]) links pupils of several
//! sources that a roster column IT configured (a Feide id, a hashed
//! national id) says are one child: they get one key, their records are
//! evaluated together, and they have one finding and one case. A link
//! joins only pupils the rosters put in the same school (each source may
//! only write its own schools), never gives one source two pupils for one
//! child or one pupil two identities, and never merges two open cases:
//! such a link is refused with a reason code and nothing changes.
//!
//! When a link arrives after both pupils have records, the records move to
//! the linked key and both keys are queued for evaluation: the next refresh
//! sees one child. The linked key is the one with an open case when one of
//! them has it (so that case goes on with all the evidence), else the key
//! the other source's pupil already has. Closed cases and past finding
//! events stay under the key they were written with.

use super::{Store, StoreError};
use crate::domain::AbsenceRecord;
use crate::domain::identity::PupilIdentity;
use crate::domain::plausibility::printable;
use crate::domain::reject::{Fault, RejectCode};
use crate::domain::roster::Roster;
use crate::ingest::Scope;
use sqlx::Row;
use std::collections::{BTreeSet, HashMap};

/// The known keys, by (source, local id), as of one generation of the
/// identity map: when another process (a roster import) links pupils, the
/// generation in `meta` changes and the cache starts over.
#[derive(Debug, Default)]
pub(super) struct Keys {
    generation: Option<String>,
    map: HashMap<(String, String), String>,
}

/// [`Keys`] shared by the store's handles.
pub(super) type KeyCache = std::sync::Mutex<Keys>;

/// The `meta` key of the identity map's generation.
const GENERATION: &str = "pupil_links_generation";

const SELECT_KEY: &str = "SELECT pupil FROM pupil_keys WHERE source = $1 AND local_id = $2";
const CLAIM: &str = "INSERT INTO pupil_owners (pupil, source) VALUES ($1, $2) ON CONFLICT (pupil) DO NOTHING";
const OWNER: &str = "SELECT source FROM pupil_owners WHERE pupil = $1";
const INSERT_KEY: &str =
    "INSERT INTO pupil_keys (source, local_id, pupil) VALUES ($1, $2, $3) ON CONFLICT (source, local_id) DO NOTHING";

/// A link the identity map refused (nothing of it was stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRefusal {
    /// The source's local id of the pupil.
    pub local: String,
    /// The reason code (`identity-conflict`, `identity-other-school`,
    /// `identity-open-cases`, `school-not-allowed`).
    pub code: RejectCode,
    /// Why, in Norwegian, without the code; ids and case numbers only.
    pub reason: String,
}

impl LinkRefusal {
    /// The refusal as a quarantine fault: the code, and the reason (ids
    /// and case numbers of tilstede's own) as its limit.
    pub fn fault(&self) -> Fault {
        Fault::whole(self.code).with_limit(self.reason.clone())
    }
}

impl std::fmt::Display for LinkRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.reason)
    }
}

/// What [`Store::link_identities`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkReport {
    /// Pupils whose identity is now in the map.
    pub linked: usize,
    /// Pupils (of any source) that moved to another pupil key.
    pub moved: usize,
    /// Links refused.
    pub refused: Vec<LinkRefusal>,
}

/// The key of `local` for a source when `owner` owns the bare id.
fn key_for(source: &str, local: &str, owner: &str) -> String {
    if owner == source {
        local.to_string()
    } else {
        format!("{source}:{local}")
    }
}

/// The (source, local id) pairs of `records` not in `cache`. Records mostly
/// come pupil by pupil, so a run of one pupil's records is looked up once.
fn unknown(records: &[AbsenceRecord], cache: &HashMap<(String, String), String>) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut previous: Option<&AbsenceRecord> = None;
    for r in records.iter().filter(|r| !r.pupil.is_empty()) {
        if previous.is_some_and(|p| p.source == r.source && p.pupil == r.pupil) {
            continue;
        }
        previous = Some(r);
        let pair = (r.source.clone(), r.pupil.clone());
        if !cache.contains_key(&pair) {
            out.insert(pair);
        }
    }
    out
}

/// Writes each record's pupil key into its `pupil`. Every pair is to be in
/// `cache` (callers make sure); a record whose pair is not gets no pupil
/// rather than its local id, which may be another child's key. A run of one
/// pupil's records is looked up once, and a pupil is rewritten only where
/// the key differs from the local id (a bulk import keys a million records).
fn apply(records: &mut [AbsenceRecord], cache: &HashMap<(String, String), String>) {
    // The source, local id and key of the run in progress.
    let mut run: Option<(String, String, Option<String>)> = None;
    for r in records.iter_mut().filter(|r| !r.pupil.is_empty()) {
        let same = run
            .as_ref()
            .is_some_and(|(source, local, _)| *source == r.source && *local == r.pupil);
        if !same {
            let pair = (r.source.clone(), r.pupil.clone());
            let key = cache.get(&pair).cloned();
            run = Some((pair.0, pair.1, key));
        }
        match &run {
            Some((_, _, Some(key))) => {
                if *key != r.pupil {
                    r.pupil.clone_from(key);
                }
            }
            _ => r.pupil.clear(),
        }
    }
}

impl Store {
    /// Replaces each record's local pupil id by its pupil key, assigning
    /// keys to pairs never seen (in a transaction of its own).
    pub(super) async fn key_pupils(&self, records: &mut [AbsenceRecord]) -> Result<(), StoreError> {
        loop {
            // Read afresh each time round: a link made meanwhile starts a
            // new generation.
            let generation: Option<String> = sqlx::query("SELECT value FROM meta WHERE key = $1")
                .bind(GENERATION)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
            let missing = {
                let mut cache = self
                    .pupil_keys
                    .lock()
                    .map_err(|_| StoreError::Worker("pupil keys".into()))?;
                if cache.generation != generation {
                    cache.map.clear();
                    cache.generation = generation;
                }
                unknown(records, &cache.map)
            };
            let found = if missing.is_empty() {
                Vec::new()
            } else {
                let mut tx = self.begin_write().await?;
                let found = assign(&mut tx, missing).await?;
                tx.commit().await?;
                found
            };
            let mut cache = self
                .pupil_keys
                .lock()
                .map_err(|_| StoreError::Worker("pupil keys".into()))?;
            cache.map.extend(found);
            // A link (or a new generation) may have emptied the cache while
            // the lock was let go: then the keys are looked up again.
            if unknown(records, &cache.map).is_empty() {
                apply(records, &cache.map);
                return Ok(());
            }
        }
    }

    /// Puts `source`'s pupils with their identity tokens (from the roster
    /// column IT configured) into the identity map, in one transaction:
    /// pupils of several sources with one token become one pupil (see the
    /// module documentation). A link that would join pupils of different
    /// schools, give a pupil a second identity, give a source two pupils
    /// for one identity, or merge two open cases is refused and reported;
    /// so is a pupil in a school the source may not write
    /// (`school-not-allowed`). The caller quarantines the refusals.
    pub async fn link_identities(&self, scope: &Scope, links: &[PupilIdentity]) -> Result<LinkReport, StoreError> {
        let source = scope.source.as_str();
        let mut report = LinkReport::default();
        let mut tx = self.begin_write().await?;
        report.moved += sweep(&mut tx).await?;
        for link in links {
            if !scope.schools.allows(&link.school) {
                report.refused.push(LinkRefusal {
                    local: link.local.clone(),
                    code: RejectCode::SchoolNotAllowed,
                    reason: format!(
                        "kilden «{}» har ikke lov til å skrive for skolen «{}»",
                        printable(source),
                        printable(&link.school)
                    ),
                });
                continue;
            }
            match link_one(&mut tx, source, link).await? {
                Ok(moved) => {
                    report.linked += 1;
                    report.moved += moved;
                }
                Err(refusal) => report.refused.push(refusal),
            }
        }
        if report.moved > 0 {
            // Every store handle, in every process, drops its cached keys.
            let generation = format!(
                "{}-{}",
                chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
                std::process::id()
            );
            sqlx::query(super::META_UPSERT)
                .bind(GENERATION)
                .bind(generation)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if report.moved > 0 {
            let mut cache = self
                .pupil_keys
                .lock()
                .map_err(|_| StoreError::Worker("pupil keys".into()))?;
            cache.map.clear();
            cache.generation = None;
        }
        Ok(report)
    }

    /// Stores the roster of `source`, whose pupil ids are the source's
    /// local ids: each pupil is stored under its pupil key, as the source's
    /// records are, so a linked child has one roster entry.
    pub async fn upsert_source_roster(&self, source: &str, roster: &Roster) -> Result<(), StoreError> {
        let mut roster = roster.clone();
        let mut tx = self.begin_write().await?;
        let pairs = roster
            .pupils
            .iter()
            .map(|p| (source.to_string(), p.id.clone()))
            .collect();
        let keys: HashMap<(String, String), String> = assign(&mut tx, pairs).await?.into_iter().collect();
        for p in &mut roster.pupils {
            if let Some(key) = keys.get(&(source.to_string(), p.id.clone())) {
                p.id = key.clone();
            }
        }
        super::roster::write_roster(&mut tx, &roster).await?;
        tx.commit().await?;
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

/// Links one pupil (see [`Store::link_identities`]): the number of pupils
/// moved to another key, or why the link is refused. Every check comes
/// before the first write, so a refused link changes nothing.
async fn link_one(
    conn: &mut sqlx::AnyConnection,
    source: &str,
    link: &PupilIdentity,
) -> Result<Result<usize, LinkRefusal>, StoreError> {
    let refuse = |code: RejectCode, reason: String| {
        Ok(Err(LinkRefusal {
            local: link.local.clone(),
            code,
            reason,
        }))
    };
    let own: Option<String> = sqlx::query("SELECT identity FROM pupil_links WHERE source = $1 AND local_id = $2")
        .bind(source)
        .bind(link.local.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    if own.as_ref().is_some_and(|t| *t != link.token) {
        return refuse(
            RejectCode::IdentityConflict,
            format!(
                "eleven «{}» i kilden «{}» er alt knyttet til et annet barn",
                printable(&link.local),
                printable(source)
            ),
        );
    }
    let twin: Option<String> =
        sqlx::query("SELECT local_id FROM pupil_links WHERE identity = $1 AND source = $2 AND local_id <> $3")
            .bind(link.token.as_str())
            .bind(source)
            .bind(link.local.as_str())
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
    if let Some(twin) = twin {
        return refuse(
            RejectCode::IdentityConflict,
            format!(
                "identiteten til eleven «{}» er alt knyttet til eleven «{}» i samme kilde «{}»",
                printable(&link.local),
                printable(&twin),
                printable(source)
            ),
        );
    }
    let others: Vec<(String, String, String)> = sqlx::query(
        "SELECT source, local_id, school FROM pupil_links WHERE identity = $1 AND source <> $2 ORDER BY source, local_id",
    )
    .bind(link.token.as_str())
    .bind(source)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
    .collect::<Result<_, sqlx::Error>>()?;
    if let Some((other, _, _)) = others.iter().find(|(_, _, school)| *school != link.school) {
        return refuse(
            RejectCode::IdentityOtherSchool,
            format!(
                "kilden «{}» har barnet på en annen skole enn «{}»; bare elever på samme skole knyttes sammen",
                printable(other),
                printable(&link.school)
            ),
        );
    }
    let mut pairs: BTreeSet<(String, String)> = others.iter().map(|(s, l, _)| (s.clone(), l.clone())).collect();
    pairs.insert((source.to_string(), link.local.clone()));
    let keys: Vec<((String, String), String)> = assign(conn, pairs).await?;
    let own_pair = (source.to_string(), link.local.clone());
    let mut open: Vec<(String, String)> = Vec::new();
    let distinct: BTreeSet<&String> = keys.iter().map(|(_, k)| k).collect();
    for key in &distinct {
        let numbers: Vec<String> = sqlx::query("SELECT number FROM cases WHERE open = 1 AND pupil = $1")
            .bind(key.as_str())
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, sqlx::Error>>()?;
        open.extend(numbers.into_iter().map(|n| ((*key).clone(), n)));
    }
    if open.len() > 1 {
        let numbers: Vec<&str> = open.iter().map(|(_, n)| n.as_str()).collect();
        return refuse(
            RejectCode::IdentityOpenCases,
            format!(
                "eleven «{}» og barnet den skal knyttes til har hver sin åpne sak ({}); \
                 tilstede slår ikke sammen saker: avslutt den ene, så knyttes de ved neste import av elevlisten",
                printable(&link.local),
                numbers.join(", ")
            ),
        );
    }
    let target = match open.first() {
        Some((key, _)) => key.clone(),
        None => keys
            .iter()
            .find(|(pair, _)| *pair != own_pair)
            .or_else(|| keys.first())
            .map(|(_, k)| k.clone())
            .unwrap_or_default(),
    };
    sqlx::query(
        "INSERT INTO pupil_links (source, local_id, identity, school) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (source, local_id) DO UPDATE SET school = excluded.school",
    )
    .bind(source)
    .bind(link.local.as_str())
    .bind(link.token.as_str())
    .bind(link.school.as_str())
    .execute(&mut *conn)
    .await?;
    let mut moved = 0;
    for ((pair_source, local), key) in &keys {
        if *key != target {
            rekey(conn, pair_source, local, key, &target).await?;
            moved += 1;
        }
    }
    Ok(Ok(moved))
}

/// Moves records stored under a key their pupil has left (pushed while a
/// link committed) to the pupil's key; the number of keys with such records.
async fn sweep(conn: &mut sqlx::AnyConnection) -> Result<usize, StoreError> {
    let moves: Vec<(String, String, String)> = sqlx::query("SELECT source, old_key, new_key FROM pupil_moves")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    let mut moved = 0;
    for (source, old, new) in moves {
        let done = sqlx::query("UPDATE records SET pupil = $1 WHERE source = $2 AND pupil = $3")
            .bind(new.as_str())
            .bind(source.as_str())
            .bind(old.as_str())
            .execute(&mut *conn)
            .await?;
        if done.rows_affected() > 0 {
            moved += 1;
        }
    }
    Ok(moved)
}

/// Moves `source`'s pupil `local` from the key `from` to `to`: its key, its
/// records, and the roster entry when no other pupil has the old key. Both
/// keys are queued for evaluation.
async fn rekey(
    conn: &mut sqlx::AnyConnection,
    source: &str,
    local: &str,
    from: &str,
    to: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE pupil_keys SET pupil = $1 WHERE source = $2 AND local_id = $3")
        .bind(to)
        .bind(source)
        .bind(local)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE records SET pupil = $1 WHERE source = $2 AND pupil = $3")
        .bind(to)
        .bind(source)
        .bind(from)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE pupil_moves SET new_key = $1 WHERE source = $2 AND new_key = $3")
        .bind(to)
        .bind(source)
        .bind(from)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO pupil_moves (source, old_key, new_key) VALUES ($1, $2, $3) \
         ON CONFLICT (source, old_key) DO UPDATE SET new_key = excluded.new_key",
    )
    .bind(source)
    .bind(from)
    .bind(to)
    .execute(&mut *conn)
    .await?;
    for key in [from, to] {
        sqlx::query("INSERT INTO dirty_pupils (pupil) VALUES ($1) ON CONFLICT (pupil) DO NOTHING")
            .bind(key)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(
        "UPDATE pupils SET id = $1 WHERE id = $2 AND NOT EXISTS (SELECT 1 FROM pupils WHERE id = $1) \
         AND NOT EXISTS (SELECT 1 FROM pupil_keys WHERE pupil = $2)",
    )
    .bind(to)
    .bind(from)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM pupils WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM pupil_keys WHERE pupil = $1)")
        .bind(from)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(source: &str, pupil: &str) -> AbsenceRecord {
        let mut r = AbsenceRecord::from_json_str(&format!(
            r#"{{"source":"{source}","id":"x","pupil":"p","school":"s","date":"2026-03-05","kind":"day"}}"#
        ))
        .unwrap();
        pupil.clone_into(&mut r.pupil);
        r
    }

    /// Runs of one pupil, the same local id in two sources, a pair without
    /// a key and a tombstone without a pupil: each record gets its own key.
    #[test]
    fn every_record_gets_the_key_of_its_own_source_and_local_id() {
        let mut records = vec![
            record("a", "p1"),
            record("a", "p1"),
            record("b", "p1"),
            record("b", "p1"),
            record("a", "p1"),
            record("a", "p2"),
            record("a", ""),
            record("c", "p3"),
        ];
        let cache: HashMap<(String, String), String> = [
            (("a".to_string(), "p1".to_string()), "p1".to_string()),
            (("b".to_string(), "p1".to_string()), "b:p1".to_string()),
            (("a".to_string(), "p2".to_string()), "k2".to_string()),
        ]
        .into();
        let missing: Vec<(String, String)> = unknown(&records, &cache).into_iter().collect();
        assert_eq!(missing, [("c".to_string(), "p3".to_string())]);
        apply(&mut records, &cache);
        let pupils: Vec<&str> = records.iter().map(|r| r.pupil.as_str()).collect();
        // A pair with no key gets no pupil, never its local id.
        assert_eq!(pupils, ["p1", "p1", "b:p1", "b:p1", "p1", "k2", "", ""]);
    }
}
