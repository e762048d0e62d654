//! One diagnostic type for every configuration validator: a TOML path and a
//! message. Validators push into [`Diagnostics`] and carry on, so `tilstede
//! config check` reports every problem of a file at once instead of the
//! first one.
//!
//! The validators of the parts that have their own files (rules, case
//! settings, pull adapters, Matrix) still return their own error types; their
//! errors are turned into diagnostics here (the `From` impls below) at the
//! point where the service config calls them.

use std::fmt;

/// One problem in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The TOML path of the setting at fault (`sources.vis.token_file`), or
    /// `(rot)` for the document as a whole.
    pub path: String,
    /// What is wrong, in Norwegian; never a secret's value.
    pub message: String,
}

impl Diagnostic {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// All problems found in one configuration, in the order they were found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// No problems yet.
    pub fn new() -> Diagnostics {
        Diagnostics::default()
    }

    /// Notes a problem at `path`.
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.items.push(Diagnostic::new(path, message));
    }

    /// Notes a problem given as another validator's error.
    pub fn add(&mut self, d: impl Into<Diagnostic>) {
        self.items.push(d.into());
    }

    /// The value of `r`, or `None` after noting its error: lets a validator
    /// go on with the next setting.
    pub fn check<T, E: Into<Diagnostic>>(&mut self, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(e);
                None
            }
        }
    }

    /// Whether nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many problems were found.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The problems, in the order found.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// `value` when nothing is wrong, else every problem.
    pub fn finish<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.is_empty() { Ok(value) } else { Err(self) }
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Diagnostics {
        Diagnostics { items: vec![d] }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl From<super::toml::TomlError> for Diagnostic {
    fn from(e: super::toml::TomlError) -> Diagnostic {
        Diagnostic::new(e.path, e.message)
    }
}

/// A rules file's own paths are inside that file; the service config names
/// the setting that chose it (`rules`) and keeps the inner path in the text.
impl From<crate::rules::RulesError> for Diagnostic {
    fn from(e: crate::rules::RulesError) -> Diagnostic {
        Diagnostic::new("rules", e.to_string())
    }
}

impl From<crate::adapters::config::ConfigError> for Diagnostic {
    fn from(e: crate::adapters::config::ConfigError) -> Diagnostic {
        match e {
            crate::adapters::config::ConfigError::Invalid { path, message } => Diagnostic::new(path, message),
            other => Diagnostic::new("sources", other.to_string()),
        }
    }
}

impl From<crate::matrix::config::ConfigError> for Diagnostic {
    fn from(e: crate::matrix::config::ConfigError) -> Diagnostic {
        match e {
            crate::matrix::config::ConfigError::Invalid { path, message }
            | crate::matrix::config::ConfigError::Parse { path, message } => Diagnostic::new(path, message),
        }
    }
}

impl From<crate::archive::config::ConfigError> for Diagnostic {
    fn from(e: crate::archive::config::ConfigError) -> Diagnostic {
        match e {
            crate::archive::config::ConfigError::Invalid { path, message }
            | crate::archive::config::ConfigError::Parse { path, message } => Diagnostic::new(path, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_and_lists_every_problem() {
        let mut d = Diagnostics::new();
        assert_eq!(d.check::<u8, Diagnostic>(Ok(3)), Some(3));
        assert!(d.is_empty());
        assert_eq!(d.check::<u8, _>(Err(Diagnostic::new("a.b", "galt"))), None);
        d.push("c", "også galt");
        assert_eq!(d.len(), 2);
        assert_eq!(d.to_string(), "a.b: galt\nc: også galt");
        assert!(d.clone().finish(()).is_err());
        assert_eq!(Diagnostics::new().finish(7), Ok(7));
    }
}
