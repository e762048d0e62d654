//! The case workflow of the absence routine (DOMAIN.md sections 3–6) as a
//! pure state machine: findings, people's commands and the clock go in;
//! notices to deliver come out. No IO and no clock here: the workflow
//! ([`crate::workflow`]) persists cases and queues the notices, and the time
//! is always an argument.
//!
//! - [`model`]: the data of a case; [`command`]: the steps people take;
//! - [`notice`]: what a step asks the world to do;
//! - [`calendar`]: school days and where deadlines fall;
//! - [`policy`]: who may do what;
//! - [`machine`]: opening, findings, the clock, and [`apply`], which
//!   dispatches each command to its function in `steps`.

pub mod calendar;
pub mod command;
pub mod config;
pub mod digest;
pub mod machine;
pub mod model;
pub mod notice;
pub mod numbers;
pub mod policy;
mod steps;
pub mod suggestions;
mod transitions;
pub mod words;

pub use command::{Command, SubGoalInput};
pub use config::{CaseConfig, CaseConfigError};
pub use machine::{CaseError, FindingChangeKind, FindingEvent, apply, on_finding, open_case, tick};
pub use model::*;
pub use notice::{Actions, Notice, NoticeKind, Recipient, RessursteamReason};
pub use policy::{authorize, escalation_party};

#[cfg(test)]
mod tests;
