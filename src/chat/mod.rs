//! The case workflow in chat: queued case notices become Matrix posts (the
//! case card and its thread in the ressursteam room, direct messages, the
//! coordinator's case room), and chat commands become workflow steps, with
//! the permissions that the roster and the configuration give each person.
//!
//! Pure parts live in [`card`] and [`dialogue`]; this module and [`relay`]
//! and [`handler`] read and write the store. Nothing here talks to Matrix:
//! posts go through the durable outbox that [`crate::matrix::Bot`] delivers.

mod attachments;
pub mod card;
pub mod dialogue;
mod digests;
mod handler;
mod patterns;
mod relay;

use crate::cases::CaseConfig;
use crate::matrix::MatrixConfig;
use crate::render::{RenderError, Renderer};
use crate::store::{Store, StoreError};
use std::sync::Arc;

pub use digests::DigestStats;

/// What went wrong in the chat workflow.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The case store failed.
    #[error(transparent)]
    Case(#[from] crate::store::CaseStoreError),
    /// The workflow failed.
    #[error(transparent)]
    Workflow(#[from] crate::workflow::WorkflowError),
    /// A template failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Saved dialogue state could not be read.
    #[error("lagret dialog kunne ikke leses: {0}")]
    Dialogue(#[from] serde_json::Error),
}

/// The chat workflow: shared by the command handler and the relay. Cheap to clone.
#[derive(Clone)]
pub struct Chat {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    cases: CaseConfig,
    matrix: MatrixConfig,
    renderer: Renderer,
    term_starts: ((u32, u32), (u32, u32)),
    archive: Option<crate::archive::ArchiveConfig>,
    clock: crate::clock::SharedClock,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chat").field("bot", &self.inner.matrix.user).finish()
    }
}

impl Chat {
    /// The workflow over `store`, with the municipality's case settings, the
    /// Matrix settings (rooms, admins, allowed servers) and the templates.
    pub fn new(store: Store, cases: CaseConfig, matrix: MatrixConfig, renderer: Renderer) -> Chat {
        Chat {
            inner: Arc::new(Inner {
                store,
                cases,
                matrix,
                renderer,
                term_starts: ((8, 1), (1, 1)),
                archive: None,
                clock: crate::clock::system(),
            }),
        }
    }

    /// Sets when the half-years start (month, day), as the rule set says;
    /// leadership's reviews are placed from them.
    pub fn with_term_starts(self, autumn: (u32, u32), spring: (u32, u32)) -> Chat {
        let inner = self.unshared();
        Chat {
            inner: Arc::new(Inner {
                term_starts: (autumn, spring),
                ..inner
            }),
        }
    }

    /// Queues final documents for the municipal archive (`[archive]`).
    pub fn with_archive(self, archive: Option<crate::archive::ArchiveConfig>) -> Chat {
        let inner = self.unshared();
        Chat {
            inner: Arc::new(Inner { archive, ..inner }),
        }
    }

    /// Reads "now" for chat commands and dialogues from `clock` (the
    /// system clock unless set; a demo passes its simulated clock).
    pub fn with_clock(self, clock: crate::clock::SharedClock) -> Chat {
        let inner = self.unshared();
        Chat {
            inner: Arc::new(Inner { clock, ..inner }),
        }
    }

    /// The current instant on the workflow's clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.clock.now()
    }

    fn unshared(self) -> Inner {
        Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            store: shared.store.clone(),
            cases: shared.cases.clone(),
            matrix: shared.matrix.clone(),
            renderer: shared.renderer.clone(),
            term_starts: shared.term_starts,
            archive: shared.archive.clone(),
            clock: shared.clock.clone(),
        })
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The ressursteam room key of `school`, when the school has a room.
    fn school_room(&self, school: &str) -> Option<String> {
        self.inner
            .matrix
            .schools
            .iter()
            .any(|s| s.school == school)
            .then(|| crate::matrix::school_room(school))
    }

    /// The configured members of `school`'s ressursteam room.
    fn room_members(&self, school: &str) -> &[String] {
        self.inner
            .matrix
            .schools
            .iter()
            .find(|s| s.school == school)
            .map(|s| s.members.as_slice())
            .unwrap_or(&[])
    }

    /// The Matrix id of a party id: itself when it is one, else the roster's.
    async fn matrix_id(&self, id: &str) -> Result<Option<String>, StoreError> {
        if id.starts_with('@') && id.contains(':') {
            return Ok(Some(id.to_string()));
        }
        Ok(self.store().staff_member(id).await?.and_then(|p| p.matrix_id))
    }

    /// Whether a server may host a case room member (the bot's own server,
    /// or one in `matrix.allowed_servers`).
    fn server_allowed(&self, user: &str) -> bool {
        let Some((_, server)) = user.split_once(':') else {
            return false;
        };
        let own = self.inner.matrix.user.split_once(':').map(|(_, s)| s);
        own == Some(server) || self.inner.matrix.allowed_servers.iter().any(|s| s == server)
    }
}
