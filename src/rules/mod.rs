//! The absence routine's criteria as configurable, pure rules.
//!
//! Records + a [`RuleSet`] + an as-of date in, [`Finding`](crate::domain::Finding)s
//! out. No IO and no clock: the caller passes the date.

pub mod config;
pub mod engine;
mod explain;

pub use config::{Comparison, CriterionRole, Rule, RuleSet, RulesError, Unit, WindowSpec};
pub use engine::{Evaluator, evaluate, resolve_versions};

#[cfg(test)]
mod tests;
