//! The municipality's duty to archive: final case documents go to the
//! pupil's elevmappe in the municipal Noark 5 archive through KS Fiks Arkiv
//! V1, as PDF/A.
//!
//! - [`pdf`] renders a document's Markdown to PDF/A-2b (charts embedded);
//! - [`arkivmelding`] builds the `no.ks.fiks.arkiv.v1.arkivering.arkivmelding.opprett`
//!   message (the elevmappe, found or created by the archive, and a
//!   journalpost with the PDF as its dokumentobjekt) and reads the archive's
//!   replies;
//! - [`transport`] carries messages: a directory drop or HTTP POST (Fiks IO
//!   itself needs KS's network and certificates);
//! - [`delivery`] drives the durable archive outbox in the store
//!   (`store::archive`): retries, at most once per document, kvittering;
//! - [`config`] is the `[archive]` section.
//!
//! # The flow, and where the chat layer calls in
//!
//! When a document becomes final (referat written, samarbeidsavtale saved,
//! evaluation done, handoff made, guide used):
//!
//! 1. render the PDF: [`pdf::render_pdf`];
//! 2. build the message: [`arkivmelding::build`] with an [`ArchiveDocument`];
//! 3. queue it in the same transaction as the change that made it final, or
//!    right after: `Store::archive_enqueue` (idempotent per document key);
//! 4. `serve` runs [`delivery::Delivery::run_once`] periodically;
//! 5. leadership hears of documents the archive refused:
//!    `Store::archive_problems` / `Store::archive_mark_notified`, and
//!    `/metrics` exports `Store::archive_counts` (a failed-attempts counter
//!    and gauges per state).
//!
//! # Retention: the archive keeps what it archived
//!
//! tilstede's retention purge deletes tilstede's copy of a closed case, never
//! what the archive holds: the archive has its own retention rules (the
//! municipality's bevarings- og kassasjonsplan), and a document journaled
//! there is no longer ours to delete. So the purge sends nothing to the
//! archive, and in the store it only blanks the payload (XML and PDF) of
//! documents the archive has confirmed; the receipt (journalpost id) stays.
//! A document not yet archived keeps its payload until it is delivered, then
//! loses it at once — the duty to archive outlives our copy.

pub mod arkivmelding;
pub mod config;
pub mod delivery;
pub mod pdf;
pub mod transport;

pub use arkivmelding::{ArchiveDocument, Arkivmelding, Kvittering, Reply};
pub use config::{ArchiveConfig, RawArchiveConfig};

/// The documents the routine prescribes and tilstede archives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentKind {
    /// Minutes of a meeting (referat).
    Referat,
    /// The cooperation agreement (samarbeidsavtale).
    Samarbeidsavtale,
    /// The evaluation of an agreement (evaluering av samarbeidsavtale).
    Evaluering,
    /// The handoff to a fagkoordinator (overføring).
    Overforing,
    /// A conversation guide as used (first conversation, pupil conversation).
    Samtaleguide,
}

impl DocumentKind {
    /// Every kind.
    pub const ALL: [DocumentKind; 5] = [
        DocumentKind::Referat,
        DocumentKind::Samarbeidsavtale,
        DocumentKind::Evaluering,
        DocumentKind::Overforing,
        DocumentKind::Samtaleguide,
    ];

    /// A stable lowercase name (document keys, the store).
    pub fn name(self) -> &'static str {
        match self {
            DocumentKind::Referat => "referat",
            DocumentKind::Samarbeidsavtale => "samarbeidsavtale",
            DocumentKind::Evaluering => "evaluering",
            DocumentKind::Overforing => "overforing",
            DocumentKind::Samtaleguide => "samtaleguide",
        }
    }

    /// From [`DocumentKind::name`].
    pub fn parse(s: &str) -> Option<DocumentKind> {
        DocumentKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The Norwegian title word.
    pub fn title(self) -> &'static str {
        match self {
            DocumentKind::Referat => "Referat",
            DocumentKind::Samarbeidsavtale => "Samarbeidsavtale",
            DocumentKind::Evaluering => "Evaluering av samarbeidsavtale",
            DocumentKind::Overforing => "Overføring til fagkoordinator",
            DocumentKind::Samtaleguide => "Samtaleguide",
        }
    }

    /// The archive document of a rendered template, for the templates that
    /// are case documents (agendas, digests and notices are not archived).
    pub fn of(document: crate::render::Document) -> Option<DocumentKind> {
        use crate::render::Document as D;
        match document {
            D::Referat => Some(DocumentKind::Referat),
            D::Samarbeidsavtale => Some(DocumentKind::Samarbeidsavtale),
            D::Evaluering => Some(DocumentKind::Evaluering),
            D::Overforing => Some(DocumentKind::Overforing),
            D::FirstConversation => Some(DocumentKind::Samtaleguide),
            _ => None,
        }
    }
}
