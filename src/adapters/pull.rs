//! The pull machinery shared by every pulled source (Ed-Fi ODS/API, FINT,
//! vendor REST, OneRoster): the run's report and errors, committing a page
//! of parsed items, the timed runs of sources whose cursor is a start time,
//! and the configured source as a component that builds its runtime puller.
//!
//! A configured source ([`crate::adapters::config::PullSource`]) holds one
//! [`PullComponent`]; [`PullComponent::build`] turns it into a [`Puller`]
//! for one run. Each puller commits page by page and moves its cursor only
//! after everything before it is committed.

use super::Parsed;
use super::edfi::EdfiMapping;
use super::edfi_api::EdfiApiSettings;
use super::fint::FintSettings;
use super::oneroster::OneRosterSettings;
use super::profile::Profile;
use super::rest::{RestClient, RestError};
use crate::config::Schools;
use crate::domain::AbsenceRecord;
use crate::ingest::Scope;
use crate::store::{IngestStats, Store, StoreError};

/// What went wrong in a sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Talking to the source failed.
    #[error(transparent)]
    Rest(#[from] RestError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The source answered something that is not what the protocol says.
    #[error("{0}")]
    Protocol(String),
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Cursor the run started after (`None`: first run).
    pub from: Option<i64>,
    /// Cursor the run synced up to (the saved cursor).
    pub to: i64,
    /// Store counts.
    pub stats: IngestStats,
    /// Tombstones among the received records.
    pub deleted: u64,
    /// Items skipped as presence (attendance, codes that are not absence).
    pub presence: u64,
    /// Pages fetched.
    pub pages: u64,
    /// For a roster source: what the roster held.
    pub roster: Option<super::oneroster::RosterCounts>,
}

/// Commits one page of parsed items, the records at `version` when given
/// (else at their own), and counts them into `report`. Rejected items go
/// to the quarantine, and so do records outside the source's `scope`
/// (another school): those are never stored.
pub(crate) async fn commit(
    store: &Store,
    items: Vec<Parsed>,
    version: Option<u32>,
    scope: &Scope,
    report: &mut SyncReport,
) -> Result<(), StoreError> {
    let mut records = Vec::new();
    let mut rejected = Vec::new();
    for p in items {
        let p = match p {
            Parsed::Record(r) => {
                let location = format!("pull:{}", scope.source);
                scope.screen(r, &location)
            }
            other => other,
        };
        match p {
            Parsed::Record(r) => {
                report.deleted += u64::from(r.deleted);
                records.push(match version {
                    Some(version) => AbsenceRecord {
                        version: version.into(),
                        ..r
                    },
                    None => r,
                });
            }
            Parsed::Rejected(q) => rejected.push(crate::ingest::quarantine_entry(q)),
            Parsed::Skipped(super::Skip::Presence) => report.presence += 1,
            Parsed::Skipped(super::Skip::NotFollowed(_)) => {}
        }
    }
    report.stats.add(store.ingest(&records, &rejected).await?);
    Ok(())
}

/// A run of a source whose cursor is the start time (ms) of the previous
/// complete run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimedRun {
    /// The saved mark: the previous run's start.
    pub since: Option<i64>,
    /// This run's start, saved as the mark when it completes.
    pub started: i64,
    /// The version this run's records get: sources without versions still
    /// need a later run's records to replace an earlier run's.
    pub version: u32,
}

/// Reads the mark of `source_name`'s `stream` and starts a timed run.
pub(crate) async fn timed_run(store: &Store, source_name: &str, stream: &str) -> Result<TimedRun, SyncError> {
    let since = match store.sync_cursor(source_name, stream).await? {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| SyncError::Protocol(format!("lagret markør «{c}» er ikke et tall")))?,
        ),
    };
    let started = chrono::Utc::now().timestamp_millis();
    // On the clock of file imports (unix seconds, see
    // adapters::version_stamp_at), kept above the previous run's even when
    // both start within the same second.
    let run = (started / 1000).max(since.map_or(1, |s| s / 1000 + 1));
    Ok(TimedRun {
        since,
        started,
        version: u32::try_from(run.max(1)).unwrap_or(u32::MAX),
    })
}

/// What a configured source pulls: one component per protocol, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum PullComponent {
    /// `adapter = "edfi-api"`: an Ed-Fi ODS/API.
    EdfiApi {
        /// Endpoints and page size.
        settings: EdfiApiSettings,
        /// Mapping settings.
        mapping: EdfiMapping,
    },
    /// `adapter = "fint"`: FINT fravarsregistrering.
    Fint {
        /// The resource and page size.
        settings: FintSettings,
        /// The Fravarstype table.
        profile: Profile,
    },
    /// `adapter = "vendor-rest"`: a vendor's JSON API.
    VendorRest {
        /// The server.
        base_url: String,
        /// Paths, paging and the mapping.
        profile: Profile,
    },
    /// `adapter = "oneroster"`: a OneRoster 1.2 rostering service.
    OneRoster(OneRosterSettings),
}

impl PullComponent {
    /// The adapter's name, as configured.
    pub fn adapter(&self) -> &'static str {
        match self {
            PullComponent::EdfiApi { .. } => "edfi-api",
            PullComponent::Fint { .. } => "fint",
            PullComponent::VendorRest { .. } => "vendor-rest",
            PullComponent::OneRoster(_) => "oneroster",
        }
    }

    /// The runtime puller of source `name`, writing only `schools`, for one run.
    pub fn build<'a>(&'a self, name: &'a str, schools: &'a Schools) -> Puller<'a> {
        Puller {
            component: self,
            name,
            schools,
        }
    }
}

/// One source's puller: runs incremental pulls into a store.
#[derive(Debug, Clone, Copy)]
pub struct Puller<'a> {
    component: &'a PullComponent,
    name: &'a str,
    schools: &'a Schools,
}

impl Puller<'_> {
    /// Runs one incremental pull into `store`, with the protocol the
    /// component speaks. The cursor moves only after committed data.
    pub async fn pull(&self, client: &RestClient, store: &Store) -> Result<SyncReport, SyncError> {
        let (name, schools) = (self.name, self.schools);
        match self.component {
            PullComponent::EdfiApi { settings, mapping } => {
                super::edfi_api::sync(client, settings, mapping, store, name, schools).await
            }
            PullComponent::Fint { settings, profile } => {
                super::fint::sync(client, settings, profile, store, name, schools).await
            }
            PullComponent::VendorRest { base_url, profile } => {
                super::vendor_rest::sync(client, base_url, profile, store, name, schools).await
            }
            PullComponent::OneRoster(settings) => super::oneroster::sync(client, settings, store, name, schools).await,
        }
    }
}
