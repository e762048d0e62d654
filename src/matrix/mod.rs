//! ALL Matrix IO: the bot's client (login, session and encrypted-state store
//! kept between runs, cross-signing and recovery: `session.rs`), its rooms
//! and the membership guard (`rooms.rs`), inbound commands (`inbound.rs`),
//! the delivery of the durable outbox (`delivery.rs`), and the megolm
//! sessions it encrypts its posts with so that devices arriving later can
//! read the history (`history.rs`).
//!
//! Other modules never talk to Matrix: they enqueue [`NewPost`]s (built with
//! the helpers here) in the store, and answer commands through a
//! [`CommandHandler`].

pub mod commands;
pub mod config;
mod delivery;
mod history;
mod inbound;
mod rooms;
mod session;
pub mod synapse;

pub use config::{MatrixConfig, RawMatrixConfig, SchoolRoom};
pub use inbound::{CommandContext, CommandHandler, Reply};
pub use session::{Bot, BotTasks, SendObserver};

use crate::store::{EventRef, NewPost, PostKind};

/// What went wrong talking to Matrix.
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    /// The matrix-sdk client failed.
    #[error("Matrix: {0}")]
    Sdk(Box<matrix_sdk::Error>),
    /// Setting up recovery (key backup, secret storage) failed.
    #[error("gjenoppretting (nøkkelbackup) kunne ikke slås på: {0}")]
    Recovery(#[from] matrix_sdk::encryption::recovery::RecoveryError),
    /// Building the client failed.
    #[error("Matrix-klienten kunne ikke lages: {0}")]
    Build(Box<matrix_sdk::ClientBuildError>),
    /// An HTTP request to the homeserver failed.
    #[error("Matrix-tjeneren: {0}")]
    Http(Box<matrix_sdk::HttpError>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Reading or writing the bot's state directory failed.
    #[error("{path}: {source}")]
    State {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The saved session could not be read.
    #[error("{path}: ødelagt økt: {message}")]
    Session {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An id in the configuration or store is not a valid Matrix id.
    #[error("ugyldig Matrix-id «{0}»")]
    BadId(String),
    /// The password variable is not set.
    #[error("miljøvariabelen {0} med bot-passordet er ikke satt")]
    NoPassword(String),
    /// The bot's room key store failed.
    #[error("nøkkellageret {path}: {message}")]
    Keys {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The room is not encrypted and the configuration does not allow that.
    #[error("rommet {0} er ikke kryptert; boten poster bare i krypterte rom")]
    Unencrypted(String),
}

// Boxed: the SDK's errors are large, and every Result would carry their size.
impl From<matrix_sdk::Error> for MatrixError {
    fn from(e: matrix_sdk::Error) -> Self {
        MatrixError::Sdk(Box::new(e))
    }
}

impl From<matrix_sdk::ClientBuildError> for MatrixError {
    fn from(e: matrix_sdk::ClientBuildError) -> Self {
        MatrixError::Build(Box::new(e))
    }
}

impl From<matrix_sdk::HttpError> for MatrixError {
    fn from(e: matrix_sdk::HttpError) -> Self {
        MatrixError::Http(Box::new(e))
    }
}

/// Registry key of a school's ressursteam room.
pub fn school_room(school: &str) -> String {
    format!("school:{school}")
}

/// Registry key of the direct-message room with `user`.
pub fn direct_room(user: &str) -> String {
    format!("direct:{user}")
}

/// Registry key of a case room (handed to a fagkoordinator).
pub fn case_room(case: &str) -> String {
    format!("case:{case}")
}

/// The anchor name of a case's card in a room.
pub fn card_anchor(case: &str) -> String {
    format!("card:{case}")
}

/// A message (m.notice, HTML and plain) at the top of a room.
pub fn notice(room_key: &str, plain: &str, html: &str, mentions: &[String]) -> NewPost {
    NewPost {
        room_key: room_key.to_string(),
        kind: PostKind::Notice,
        anchor: None,
        thread: None,
        target: None,
        body: plain.to_string(),
        html: html.to_string(),
        mentions: mentions.to_vec(),
        media: None,
    }
}

/// The case card: the root message of the case's thread. Enqueueing it twice
/// is harmless (the anchor is unique per room).
pub fn case_card(room_key: &str, case: &str, plain: &str, html: &str, mentions: &[String]) -> NewPost {
    NewPost {
        anchor: Some(card_anchor(case)),
        ..notice(room_key, plain, html, mentions)
    }
}

/// A new version of the case card (an `m.replace` edit).
pub fn case_card_update(room_key: &str, case: &str, plain: &str, html: &str, mentions: &[String]) -> NewPost {
    NewPost {
        kind: PostKind::Edit,
        target: Some(EventRef::Anchor(card_anchor(case))),
        ..notice(room_key, plain, html, mentions)
    }
}

/// A message in the case's thread (prompts, agendas, templates, …).
pub fn case_thread(room_key: &str, case: &str, plain: &str, html: &str, mentions: &[String]) -> NewPost {
    NewPost {
        thread: Some(EventRef::Anchor(card_anchor(case))),
        ..notice(room_key, plain, html, mentions)
    }
}

/// An encrypted image (`m.image`) or file (`m.file`) in the case's thread:
/// a chart, or a final document as PDF. `body` describes it (an image's
/// alt text, a file's name); neither carries more than initials and class.
pub fn case_thread_media(room_key: &str, case: &str, body: &str, media: crate::store::Media) -> NewPost {
    NewPost {
        thread: Some(EventRef::Anchor(card_anchor(case))),
        ..media_post(room_key, body, media)
    }
}

/// An image (`m.image`) or file (`m.file`) post in a room, outside any
/// thread (as in a case room); `body` is its text for clients without media.
pub fn media_post(room_key: &str, body: &str, media: crate::store::Media) -> NewPost {
    let kind = if media.mime.starts_with("image/") {
        PostKind::Image
    } else {
        PostKind::File
    };
    NewPost {
        kind,
        media: Some(media),
        ..notice(room_key, body, &escape_html(body), &[])
    }
}

/// Escapes text for an HTML body.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_for_a_case_refer_to_its_card() {
        let card = case_card("school:a", "7", "p", "<b>p</b>", &[]);
        assert_eq!(card.anchor.as_deref(), Some("card:7"));
        let edit = case_card_update("school:a", "7", "p2", "p2", &[]);
        assert_eq!(edit.kind, PostKind::Edit);
        assert_eq!(edit.target, Some(EventRef::Anchor("card:7".into())));
        let t = case_thread("school:a", "7", "x", "x", &["@a:b".into()]);
        assert_eq!(t.thread, Some(EventRef::Anchor("card:7".into())));
        assert_eq!(escape_html("a<b>&\n"), "a&lt;b&gt;&amp;<br>");
    }
}
