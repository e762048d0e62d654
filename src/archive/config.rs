//! The `[archive]` section: TOML → [`RawArchiveConfig`] →
//! [`RawArchiveConfig::validate`] → [`ArchiveConfig`]. Errors name the TOML
//! path. Self-contained so the service configuration can take it as one
//! table.
//!
//! ```toml
//! [archive]
//! system = "tilstede"                  # fagsystem name in external keys
//! pupil_classification = "ELEVNR"      # the archive's class system for elevmapper
//! arkivdel = "ELEV"                    # optional
//! journal_unit = "SK"                  # optional journalenhet
//! max_attempts = 8                     # failed attempts before leadership is told
//! retry_seconds = 60                   # first retry; doubles per attempt
//! kvittering_hours = 24                # how long to wait for a kvittering
//!
//! [archive.transport]
//! kind = "directory"                   # or "http"
//! outbox_dir = "/var/lib/tilstede/arkiv/ut"
//! reply_dir = "/var/lib/tilstede/arkiv/svar"
//! # kind = "http"
//! # url = "https://arkiv.kommune.no/fiks-arkiv"
//! # token_env = "TILSTEDE_ARCHIVE_TOKEN"
//! # timeout_seconds = 30
//! ```

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Why an archive configuration was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The TOML could not be read into the expected shape.
    #[error("{path}: {message}")]
    Parse {
        /// The TOML path, or `(rot)`.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A setting has an impossible value.
    #[error("{path}: {message}")]
    Invalid {
        /// The TOML path of the setting.
        path: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(path: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_string(),
        message: message.into(),
    }
}

/// The `[archive]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArchiveConfig {
    /// Whether documents are archived at all. Default true when the section
    /// is present.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The line-of-business system's name in messages and external keys.
    /// Default `tilstede`.
    #[serde(default)]
    pub system: Option<String>,
    /// The archive's classification system for elevmapper (the pupil id is
    /// the class). Default `ELEVNR`.
    #[serde(default)]
    pub pupil_classification: Option<String>,
    /// The arkivdel code for new elevmapper, when the archive wants one.
    #[serde(default)]
    pub arkivdel: Option<String>,
    /// The journalenhet, when the archive wants one.
    #[serde(default)]
    pub journal_unit: Option<String>,
    /// Failed attempts before a document is reported as failed. Default 8.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Seconds before the first retry; doubled per attempt, at most a day.
    /// Default 60.
    #[serde(default)]
    pub retry_seconds: Option<u64>,
    /// Hours to wait for a kvittering after the archive said «mottatt».
    /// Default 24.
    #[serde(default)]
    pub kvittering_hours: Option<u64>,
    /// How messages travel.
    pub transport: RawTransport,
}

/// The `[archive.transport]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTransport {
    /// `directory` or `http`.
    pub kind: String,
    /// directory: where messages are dropped, one folder per message.
    #[serde(default)]
    pub outbox_dir: Option<PathBuf>,
    /// directory: where the archive integration puts replies
    /// (`{message id}.xml`).
    #[serde(default)]
    pub reply_dir: Option<PathBuf>,
    /// http: the archive endpoint's base URL.
    #[serde(default)]
    pub url: Option<String>,
    /// http: environment variable with a bearer token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// http: a file holding the bearer token instead.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// http: request timeout in seconds. Default 30.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// A validated archive configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveConfig {
    /// Whether to archive.
    pub enabled: bool,
    /// The system name.
    pub system: String,
    /// The elevmappe classification system.
    pub pupil_classification: String,
    /// The arkivdel, if any.
    pub arkivdel: Option<String>,
    /// The journalenhet, if any.
    pub journal_unit: Option<String>,
    /// Failed attempts before failing.
    pub max_attempts: u32,
    /// First retry delay.
    pub retry: Duration,
    /// How long to wait for a kvittering.
    pub kvittering_wait: Duration,
    /// The transport.
    pub transport: TransportConfig,
}

/// A validated transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportConfig {
    /// Messages dropped in a directory.
    Directory {
        /// Where messages go.
        outbox_dir: PathBuf,
        /// Where replies come.
        reply_dir: PathBuf,
    },
    /// Messages POSTed over HTTP.
    Http {
        /// The base URL (no trailing slash).
        url: String,
        /// Where the bearer token comes from.
        token: Option<TokenSource>,
        /// Request timeout.
        timeout: Duration,
    },
}

/// Where a secret is read from at start (never the TOML itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// An environment variable.
    Env(String),
    /// A file.
    File(PathBuf),
}

impl TokenSource {
    /// Reads the token.
    pub fn read(&self) -> Result<String, ConfigError> {
        match self {
            TokenSource::Env(var) => std::env::var(var).map(|t| t.trim().to_string()).map_err(|_| {
                invalid(
                    "archive.transport.token_env",
                    format!("miljøvariabelen {var} er ikke satt"),
                )
            }),
            TokenSource::File(path) => std::fs::read_to_string(path)
                .map(|t| t.trim().to_string())
                .map_err(|e| invalid("archive.transport.token_file", format!("{}: {e}", path.display()))),
        }
    }
}

impl Default for ArchiveConfig {
    /// Defaults with a directory transport under `arkiv/` (for tests and
    /// examples).
    fn default() -> ArchiveConfig {
        ArchiveConfig {
            enabled: true,
            system: "tilstede".into(),
            pupil_classification: "ELEVNR".into(),
            arkivdel: None,
            journal_unit: None,
            max_attempts: 8,
            retry: Duration::from_secs(60),
            kvittering_wait: Duration::from_secs(24 * 3600),
            transport: TransportConfig::Directory {
                outbox_dir: "arkiv/ut".into(),
                reply_dir: "arkiv/svar".into(),
            },
        }
    }
}

fn non_empty(path: &str, value: Option<String>, default: &str) -> Result<String, ConfigError> {
    match value {
        None => Ok(default.to_string()),
        Some(v) if v.trim().is_empty() => Err(invalid(path, "kan ikke være tom")),
        Some(v) => Ok(v.trim().to_string()),
    }
}

impl RawArchiveConfig {
    /// Reads the contents of an `[archive]` table.
    pub fn from_toml(text: &str) -> Result<RawArchiveConfig, ConfigError> {
        crate::config::toml::parse_toml(text).map_err(|e| ConfigError::Parse {
            path: if e.path == "(rot)" {
                "archive".into()
            } else {
                format!("archive.{}", e.path)
            },
            message: e.message,
        })
    }

    /// Checks every setting.
    pub fn validate(self) -> Result<ArchiveConfig, ConfigError> {
        let system = non_empty("archive.system", self.system, "tilstede")?;
        if system.len() > 100 {
            return Err(invalid("archive.system", "høyst 100 tegn"));
        }
        let pupil_classification = non_empty("archive.pupil_classification", self.pupil_classification, "ELEVNR")?;
        let arkivdel = self
            .arkivdel
            .map(|a| non_empty("archive.arkivdel", Some(a), ""))
            .transpose()?;
        let journal_unit = self
            .journal_unit
            .map(|a| non_empty("archive.journal_unit", Some(a), ""))
            .transpose()?;
        let max_attempts = self.max_attempts.unwrap_or(8);
        if !(1..=100).contains(&max_attempts) {
            return Err(invalid("archive.max_attempts", "må være mellom 1 og 100"));
        }
        let retry_seconds = self.retry_seconds.unwrap_or(60);
        if !(1..=86_400).contains(&retry_seconds) {
            return Err(invalid("archive.retry_seconds", "må være mellom 1 og 86400"));
        }
        let kvittering_hours = self.kvittering_hours.unwrap_or(24);
        if !(1..=24 * 30).contains(&kvittering_hours) {
            return Err(invalid("archive.kvittering_hours", "må være mellom 1 og 720"));
        }
        let t = self.transport;
        let foreign = |fields: &[(&str, bool)]| -> Result<(), ConfigError> {
            for (name, set) in fields {
                if *set {
                    return Err(invalid(
                        &format!("archive.transport.{name}"),
                        format!("gjelder ikke for kind = \"{}\"", t.kind),
                    ));
                }
            }
            Ok(())
        };
        let transport = match t.kind.as_str() {
            "directory" => {
                foreign(&[
                    ("url", t.url.is_some()),
                    ("token_env", t.token_env.is_some()),
                    ("token_file", t.token_file.is_some()),
                    ("timeout_seconds", t.timeout_seconds.is_some()),
                ])?;
                let outbox_dir = t
                    .outbox_dir
                    .clone()
                    .ok_or_else(|| invalid("archive.transport.outbox_dir", "mangler (kind = \"directory\")"))?;
                let reply_dir = t
                    .reply_dir
                    .clone()
                    .ok_or_else(|| invalid("archive.transport.reply_dir", "mangler (kind = \"directory\")"))?;
                if outbox_dir == reply_dir {
                    return Err(invalid(
                        "archive.transport.reply_dir",
                        "må være en annen mappe enn outbox_dir",
                    ));
                }
                TransportConfig::Directory { outbox_dir, reply_dir }
            }
            "http" => {
                foreign(&[
                    ("outbox_dir", t.outbox_dir.is_some()),
                    ("reply_dir", t.reply_dir.is_some()),
                ])?;
                let url = t
                    .url
                    .clone()
                    .ok_or_else(|| invalid("archive.transport.url", "mangler (kind = \"http\")"))?;
                let url = url.trim_end_matches('/').to_string();
                if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < 10 {
                    return Err(invalid(
                        "archive.transport.url",
                        format!("«{url}» er ingen http(s)-adresse"),
                    ));
                }
                let token = match (&t.token_env, &t.token_file) {
                    (Some(_), Some(_)) => {
                        return Err(invalid(
                            "archive.transport.token_file",
                            "bruk enten token_env eller token_file, ikke begge",
                        ));
                    }
                    (Some(var), None) if var.trim().is_empty() => {
                        return Err(invalid("archive.transport.token_env", "kan ikke være tom"));
                    }
                    (Some(var), None) => Some(TokenSource::Env(var.trim().to_string())),
                    (None, Some(file)) => Some(TokenSource::File(file.clone())),
                    (None, None) => None,
                };
                let timeout = t.timeout_seconds.unwrap_or(30);
                if !(1..=600).contains(&timeout) {
                    return Err(invalid("archive.transport.timeout_seconds", "må være mellom 1 og 600"));
                }
                TransportConfig::Http {
                    url,
                    token,
                    timeout: Duration::from_secs(timeout),
                }
            }
            other => {
                return Err(invalid(
                    "archive.transport.kind",
                    format!("ukjent transport «{other}»: bruk \"directory\" eller \"http\""),
                ));
            }
        };
        Ok(ArchiveConfig {
            enabled: self.enabled.unwrap_or(true),
            system,
            pupil_classification,
            arkivdel,
            journal_unit,
            max_attempts,
            retry: Duration::from_secs(retry_seconds),
            kvittering_wait: Duration::from_secs(kvittering_hours * 3600),
            transport,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<ArchiveConfig, ConfigError> {
        RawArchiveConfig::from_toml(text)?.validate()
    }

    #[test]
    fn a_directory_transport_with_defaults() {
        let c = check("[transport]\nkind = \"directory\"\noutbox_dir = \"/a/ut\"\nreply_dir = \"/a/svar\"\n").unwrap();
        assert_eq!(c.system, "tilstede");
        assert_eq!(c.max_attempts, 8);
        assert!(c.enabled);
        assert_eq!(
            c.transport,
            TransportConfig::Directory {
                outbox_dir: "/a/ut".into(),
                reply_dir: "/a/svar".into()
            }
        );
    }

    #[test]
    fn an_http_transport() {
        let c = check(
            "system = \"tilstede-baerum\"\narkivdel = \"ELEV\"\n[transport]\nkind = \"http\"\nurl = \"https://arkiv.example/fiks/\"\ntoken_env = \"ARKIV_TOKEN\"\n",
        )
        .unwrap();
        assert_eq!(c.system, "tilstede-baerum");
        assert_eq!(c.arkivdel.as_deref(), Some("ELEV"));
        let TransportConfig::Http { url, token, timeout } = c.transport else {
            panic!()
        };
        assert_eq!(url, "https://arkiv.example/fiks");
        assert_eq!(token, Some(TokenSource::Env("ARKIV_TOKEN".into())));
        assert_eq!(timeout, Duration::from_secs(30));
    }

    #[test]
    fn errors_name_the_toml_path() {
        let err = |text: &str| check(text).unwrap_err().to_string();
        assert!(err("[transport]\nkind = \"ftp\"\n").starts_with("archive.transport.kind: ukjent transport «ftp»"));
        assert!(
            err("[transport]\nkind = \"directory\"\noutbox_dir = \"/a\"\n").starts_with("archive.transport.reply_dir:")
        );
        assert!(
            err("[transport]\nkind = \"directory\"\noutbox_dir = \"/a\"\nreply_dir = \"/b\"\nurl = \"https://x.example\"\n")
                .starts_with("archive.transport.url: gjelder ikke")
        );
        assert!(
            err("max_attempts = 0\n[transport]\nkind = \"http\"\nurl = \"https://x.example\"\n")
                .starts_with("archive.max_attempts:")
        );
        assert!(err("[transport]\nkind = \"http\"\nurl = \"ftp://x\"\n").starts_with("archive.transport.url:"));
        assert!(err("sytem = \"x\"\n[transport]\nkind = \"http\"\n").starts_with("archive"));
        assert!(
            err("retry_seconds = \"fort\"\n[transport]\nkind = \"http\"\nurl = \"https://x.example\"\n")
                .starts_with("archive.retry_seconds:")
        );
    }
}
