//! Delivery from the archive outbox (`store::archive`) through a
//! [`Transport`].
//!
//! Each round takes the due documents. A queued one is sent; when the
//! archive says «mottatt» its kvittering is fetched at once and then on each
//! later round until it comes (or `kvittering_wait` passes). A kvittering
//! archives the document; a refusal (`ugyldigforespoersel`, or a failed
//! folder or journalpost in the kvittering) fails it for good; a server
//! error or an unreachable archive is retried with doubling delays, up to
//! `max_attempts`, then failed. Failed documents wait for leadership
//! (`Store::archive_problems`).
//!
//! At most once per document: the outbox holds one row per document key,
//! every attempt reuses the row's message id, and the journalpost's external
//! key is the document key, so an archive that got the message before a
//! lost answer recognises it and replies `Eksisterende` instead of
//! journaling it twice.
//!
//! Intended call site: `serve` runs [`Delivery::run_once`] every few
//! seconds next to the Matrix outbox, when `[archive]` is configured.

use super::arkivmelding::Reply;
use super::config::ArchiveConfig;
use super::transport::{Outgoing, Sent, Transport, TransportError};
use crate::store::{ArchiveEntry, ArchiveState, Store, StoreError};
use chrono::{DateTime, Duration, Utc};

/// What went wrong in a delivery round (a transport failure is not one: it
/// is recorded on the document and retried).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Messages the archive received.
    pub received: usize,
    /// Documents archived.
    pub archived: usize,
    /// Attempts that failed and will be retried.
    pub retried: usize,
    /// Documents failed for good.
    pub failed: usize,
}

/// Most documents one round works on.
const BATCH: i64 = 50;

/// Delivers the archive outbox.
#[derive(Debug, Clone)]
pub struct Delivery {
    store: Store,
    transport: Transport,
    config: ArchiveConfig,
}

impl Delivery {
    /// Delivery over `transport` with `config`'s retry settings.
    pub fn new(store: Store, transport: Transport, config: ArchiveConfig) -> Delivery {
        Delivery {
            store,
            transport,
            config,
        }
    }

    /// The delay before retry number `failures` (1-based): the configured
    /// first delay, doubled each time, at most a day.
    pub fn backoff(&self, failures: i64) -> Duration {
        let base = Duration::from_std(self.config.retry).unwrap_or(Duration::seconds(60));
        let factor = 1i32 << failures.clamp(1, 20).saturating_sub(1);
        (base * factor).min(Duration::days(1))
    }

    /// One round at `now`.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<Round, DeliveryError> {
        let mut round = Round::default();
        for entry in self.store.archive_due(now, BATCH).await? {
            self.work(&entry, now, &mut round).await?;
        }
        Ok(round)
    }

    async fn work(&self, entry: &ArchiveEntry, now: DateTime<Utc>, round: &mut Round) -> Result<(), DeliveryError> {
        let store = &self.store;
        store.archive_attempt(entry.id).await?;
        let attempts = entry.attempts + 1;
        if entry.state == ArchiveState::Queued {
            let (Some(xml), Some(file)) = (&entry.arkivmelding, &entry.document) else {
                store
                    .archive_failed(entry.id, "meldingen finnes ikke lenger i lageret", now)
                    .await?;
                round.failed += 1;
                return Ok(());
            };
            let sent = self
                .transport
                .send(&Outgoing {
                    message_id: &entry.message_id,
                    arkivmelding: xml,
                    file_reference: &entry.file_reference,
                    file,
                })
                .await;
            match sent {
                Ok(Sent::Replied(reply)) => return self.reply(entry, reply, attempts, now, round).await,
                Ok(Sent::Received) => {
                    store.archive_received(entry.id, now, now).await?;
                    round.received += 1;
                    tracing::info!(document = %entry.document_key, "archive received the document");
                }
                Err(e) => {
                    return self
                        .transient(entry, ArchiveState::Queued, &e, attempts, now, round)
                        .await;
                }
            }
        }
        // Received: fetch the reply.
        match self.transport.poll(&entry.message_id).await {
            Ok(Some(reply)) => self.reply(entry, reply, attempts, now, round).await,
            Ok(None) => {
                let since = entry
                    .received_at
                    .as_deref()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map_or(now, |t| t.with_timezone(&Utc));
                let wait = Duration::from_std(self.config.kvittering_wait).unwrap_or(Duration::days(1));
                if now - since > wait {
                    store
                        .archive_failed(entry.id, "ingen kvittering fra arkivet innen fristen", now)
                        .await?;
                    round.failed += 1;
                    tracing::warn!(document = %entry.document_key, "archive sent no kvittering in time");
                } else {
                    store.archive_wait(entry.id, now + self.backoff(1)).await?;
                }
                Ok(())
            }
            Err(e) => {
                self.transient(entry, ArchiveState::Received, &e, attempts, now, round)
                    .await
            }
        }
    }

    async fn reply(
        &self,
        entry: &ArchiveEntry,
        reply: Reply,
        attempts: i64,
        now: DateTime<Utc>,
        round: &mut Round,
    ) -> Result<(), DeliveryError> {
        match reply {
            Reply::Kvittering(k) => {
                self.store.archive_archived(entry.id, now, &k).await?;
                round.archived += 1;
                tracing::info!(
                    document = %entry.document_key,
                    created = k.journalpost_created,
                    "archive journaled the document"
                );
            }
            Reply::Rejected { id, message } => {
                self.store
                    .archive_failed(entry.id, &format!("arkivet avviste dokumentet ({id}): {message}"), now)
                    .await?;
                round.failed += 1;
                tracing::warn!(document = %entry.document_key, error_id = %id, "archive refused the document");
            }
            Reply::ServerError { id, message } => {
                let e = TransportError::Unavailable(format!("serverfeil ({id}): {message}"));
                // The archive failed while handling it: send it again.
                self.transient(entry, ArchiveState::Queued, &e, attempts, now, round)
                    .await?;
            }
        }
        Ok(())
    }

    async fn transient(
        &self,
        entry: &ArchiveEntry,
        state: ArchiveState,
        error: &TransportError,
        attempts: i64,
        now: DateTime<Utc>,
        round: &mut Round,
    ) -> Result<(), DeliveryError> {
        let text = error.to_string();
        // Waiting for a kvittering is not a failure; only failed attempts
        // count towards giving up.
        let failures = entry.failures + 1;
        if failures >= i64::from(self.config.max_attempts) {
            self.store
                .archive_failed(
                    entry.id,
                    &format!("ga opp etter {failures} mislykkede forsøk: {text}"),
                    now,
                )
                .await?;
            round.failed += 1;
            tracing::warn!(document = %entry.document_key, attempts, "archive delivery gave up");
        } else {
            let next = now + self.backoff(failures);
            self.store.archive_retry(entry.id, state, &text, next).await?;
            round.retried += 1;
            tracing::info!(document = %entry.document_key, attempts, "archive delivery will retry");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn backoff_doubles_up_to_a_day() {
        let d = Delivery::new(
            Store::open("sqlite::memory:").await.unwrap(),
            Transport::Directory {
                outbox_dir: "/nonexistent/ut".into(),
                reply_dir: "/nonexistent/svar".into(),
            },
            ArchiveConfig::default(),
        );
        assert_eq!(d.backoff(1), Duration::seconds(60));
        assert_eq!(d.backoff(3), Duration::seconds(240));
        assert_eq!(d.backoff(40), Duration::days(1));
    }
}
