//! Inbound dispatch: messages and membership events from the sync, commands
//! parsed and handed to the [`CommandHandler`], answers enqueued.

use super::commands::{self, Command};
use super::{Bot, MatrixError, escape_html};
use crate::store::{EventRef, NewPost, PostKind};
use futures::future::BoxFuture;
use matrix_sdk::Room;
use matrix_sdk::ruma::events::room::member::{MembershipState, SyncRoomMemberEvent};
use matrix_sdk::ruma::events::room::message::{MessageType, OriginalSyncRoomMessageEvent, Relation};

/// The reaction key that acknowledges a command. It carries no data.
pub const ACK_REACTION: &str = "✅";

/// Where a command was given and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    /// The room's registry key.
    pub room_key: String,
    /// The room's kind (`ressursteam`, `direct`, `case`).
    pub room_kind: String,
    /// The sender's user id.
    pub sender: String,
    /// The command's event id.
    pub event_id: String,
    /// The thread the answer goes into.
    pub thread_root: String,
}

/// The bot's answer to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Plain body.
    pub plain: String,
    /// HTML body.
    pub html: String,
    /// Users to mention.
    pub mentions: Vec<String>,
}

impl Reply {
    /// A plain-text reply (the HTML is the escaped text).
    pub fn text(plain: impl Into<String>) -> Reply {
        let plain = plain.into();
        Reply {
            html: escape_html(&plain),
            plain,
            mentions: Vec::new(),
        }
    }
}

/// Carries out parsed commands (the case workflow implements this). It checks
/// permissions itself and says why in the reply when it refuses.
pub trait CommandHandler: Send + Sync {
    /// Handles one command; the reply goes into the command's thread.
    fn handle<'a>(&'a self, context: &'a CommandContext, command: Command) -> BoxFuture<'a, Reply>;

    /// Handles a message in a thread that is not a command (an answer in a
    /// multi-step dialogue). `None`: not for the bot, say nothing.
    fn handle_text<'a>(&'a self, context: &'a CommandContext, text: &'a str) -> BoxFuture<'a, Option<Reply>> {
        let _ = (context, text);
        Box::pin(async { None })
    }
}

impl Bot {
    /// Registers the sync handlers for messages and joins.
    pub(super) fn register_handlers(&self) {
        let bot = self.clone();
        self.inner
            .client
            .add_event_handler(move |ev: OriginalSyncRoomMessageEvent, room: Room| {
                let bot = bot.clone();
                async move {
                    if let Err(e) = bot.on_message(ev, room).await {
                        tracing::warn!(error = %e, "command handling failed");
                    }
                }
            });
        let bot = self.clone();
        self.inner
            .client
            .add_event_handler(move |ev: SyncRoomMemberEvent, room: Room| {
                let bot = bot.clone();
                async move {
                    if let SyncRoomMemberEvent::Original(ev) = ev
                        && ev.content.membership == MembershipState::Join
                        && let Err(e) = bot.check_member(&room, ev.state_key.as_str()).await
                    {
                        tracing::warn!(error = %e, "membership check failed");
                    }
                }
            });
    }

    async fn on_message(&self, ev: OriginalSyncRoomMessageEvent, room: Room) -> Result<(), MatrixError> {
        if ev.sender.as_str() == self.inner.config.user {
            return Ok(());
        }
        let MessageType::Text(text) = &ev.content.msgtype else {
            return Ok(());
        };
        let command = commands::is_command(&text.body);
        let in_thread = matches!(&ev.content.relates_to, Some(Relation::Thread(_)));
        // Plain talk outside threads is people talking to each other.
        if !command && !in_thread {
            return Ok(());
        }
        let Some(known) = self.inner.store.matrix_room_by_id(room.room_id().as_str()).await? else {
            return Ok(());
        };
        // A sync replayed after a restart must not run the command (or
        // advance the dialogue) again.
        if !self.inner.store.claim_command(ev.event_id.as_str()).await? {
            return Ok(());
        }
        let thread_root = match &ev.content.relates_to {
            Some(Relation::Thread(t)) => t.event_id.to_string(),
            _ => ev.event_id.to_string(),
        };
        let context = CommandContext {
            room_key: known.room_key.clone(),
            room_kind: known.kind.clone(),
            sender: ev.sender.to_string(),
            event_id: ev.event_id.to_string(),
            thread_root: thread_root.clone(),
        };
        let reply = if command {
            tracing::info!(room = %known.room_key, event = %ev.event_id, "command received");
            match commands::parse(&text.body) {
                Err(e) => Reply::text(e.to_string()),
                Ok(Command::Help(None)) => Reply::text(commands::help_text()),
                Ok(Command::Help(Some(c))) => Reply::text(format!(
                    "!{} {} (!{}): {}",
                    c.word(),
                    c.arguments(),
                    c.alias(),
                    c.help()
                )),
                Ok(command) => self.inner.handler.handle(&context, command).await,
            }
        } else {
            match self.inner.handler.handle_text(&context, &text.body).await {
                Some(reply) => reply,
                None => return Ok(()),
            }
        };
        self.enqueue(&NewPost {
            room_key: known.room_key.clone(),
            kind: PostKind::Reaction,
            anchor: None,
            thread: None,
            target: Some(EventRef::Event(ev.event_id.to_string())),
            body: ACK_REACTION.into(),
            html: String::new(),
            mentions: Vec::new(),
            media: None,
        })
        .await?;
        let mut mentions = reply.mentions.clone();
        if !mentions.contains(&context.sender) {
            mentions.push(context.sender.clone());
        }
        self.enqueue(&NewPost {
            room_key: known.room_key,
            kind: PostKind::Notice,
            anchor: None,
            thread: Some(EventRef::Event(thread_root)),
            target: None,
            body: reply.plain,
            html: reply.html,
            mentions,
            media: None,
        })
        .await?;
        Ok(())
    }
}
