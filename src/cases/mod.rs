//! The case workflow of the absence routine (DOMAIN.md sections 3–6) as a
//! pure state machine: findings, people's commands and the clock go in;
//! notices to deliver come out. No IO and no clock here: the store persists
//! cases and queues the notices, and the time is always an argument.

pub mod command;
pub mod config;
pub mod digest;
pub mod machine;
pub mod model;
pub mod numbers;
pub mod suggestions;

pub use command::{Command, SubGoalInput};
pub use config::{CaseConfig, CaseConfigError};
pub use machine::{
    Actions, CaseError, FindingChangeKind, FindingEvent, Notice, NoticeKind, Recipient, RessursteamReason, apply,
    authorize, escalation_party, on_finding, open_case, tick,
};
pub use model::*;

#[cfg(test)]
mod tests;
