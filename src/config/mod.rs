//! The service configuration: one TOML file → raw serde structs →
//! [`RawConfig::validate`] → a [`Config`] the rest of tilstede can trust.
//!
//! Secrets never live in the TOML: it names environment variables or files
//! that hold them (`token_env = "…"` or `token_file = "…"`).

pub mod toml;

use crate::rules::{RuleSet, RulesError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("kan ikke lese {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML does not fit the expected shape.
    #[error(transparent)]
    Toml(#[from] toml::TomlError),
    /// A setting has an impossible value.
    #[error("{path}: {message}")]
    Invalid {
        /// The TOML path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The rule set could not be used.
    #[error("rules: {0}")]
    Rules(#[from] RulesError),
}

impl ConfigError {
    /// The TOML path at fault, when there is one.
    pub fn path(&self) -> Option<&str> {
        match self {
            ConfigError::Toml(e) => Some(&e.path),
            ConfigError::Invalid { path, .. } => Some(path),
            ConfigError::Rules(_) => Some("rules"),
            ConfigError::Read { .. } => None,
        }
    }
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

/// The TOML form of the configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Store location: a file path, `sqlite:PATH` or `postgres://…` (default `tilstede.db`).
    #[serde(default)]
    pub store: Option<String>,
    /// Name of an environment variable holding the store URL (for passwords).
    #[serde(default)]
    pub store_env: Option<String>,
    /// A rules preset (`baerum`, `oslo`) or a path to a rules TOML file.
    #[serde(default)]
    pub rules: Option<String>,
    /// The case workflow's deadlines and roles: a preset (`baerum`) or a path.
    #[serde(default)]
    pub cases: Option<String>,
    /// The HTTP server.
    #[serde(default)]
    pub http: Option<RawHttp>,
    /// Sources that push or are pulled, by id.
    #[serde(default)]
    pub sources: BTreeMap<String, RawSource>,
    /// A directory of template overrides (files named like the built-in
    /// templates, e.g. `samarbeidsavtale.md.j2`).
    #[serde(default)]
    pub templates: Option<String>,
    /// The Matrix bot; without it tilstede runs as a gateway only.
    #[serde(default)]
    pub matrix: Option<crate::matrix::RawMatrixConfig>,
}

/// HTTP settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// Address to listen on (default `127.0.0.1:8080`).
    #[serde(default)]
    pub listen: Option<String>,
    /// Largest accepted request body in bytes (default 16 MiB).
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// Users of the read API, by name.
    #[serde(default)]
    pub users: BTreeMap<String, RawUser>,
}

/// A read-API user.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    /// Environment variable holding the user's bearer token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the user's bearer token.
    #[serde(default)]
    pub token_file: Option<String>,
    /// Schools the user may read; empty means every school.
    #[serde(default)]
    pub schools: Vec<String>,
}

/// A source of absence data.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Environment variable holding the bearer token for pushes.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the bearer token for pushes.
    #[serde(default)]
    pub token_file: Option<String>,
    /// Environment variable holding the HMAC-SHA256 key for signed pushes.
    #[serde(default)]
    pub hmac_secret_env: Option<String>,
    /// File holding the HMAC-SHA256 key for signed pushes.
    #[serde(default)]
    pub hmac_secret_file: Option<String>,
    /// The vendor profile for CSV pushes (`text/csv`), e.g. `flyt` or `vis`.
    #[serde(default)]
    pub profile: Option<String>,
    /// A pull adapter to run on a schedule (see `tilstede adapters list`).
    #[serde(default)]
    pub pull: Option<crate::adapters::config::RawSource>,
    /// Seconds between pulls (default 300).
    #[serde(default)]
    pub pull_every_seconds: Option<u64>,
}

/// A secret value; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value (for tests and tools).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Store location.
    pub store: String,
    /// The rule set's name or path as configured.
    pub rules_name: String,
    /// The rules.
    pub rules: RuleSet,
    /// The case workflow settings.
    pub cases: crate::cases::config::CaseConfig,
    /// HTTP settings.
    pub http: HttpConfig,
    /// Sources by id.
    pub sources: BTreeMap<String, SourceConfig>,
    /// Template override directory.
    pub templates: Option<PathBuf>,
    /// The Matrix bot, when configured.
    pub matrix: Option<MatrixService>,
}

/// The Matrix bot's validated settings and its password.
#[derive(Debug, Clone)]
pub struct MatrixService {
    /// Rooms, users and the state directory.
    pub config: crate::matrix::MatrixConfig,
    /// The bot's password (from the environment or a file).
    pub password: Secret,
}

/// Validated HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Largest body in bytes.
    pub max_body_bytes: usize,
    /// Read-API users.
    pub users: Vec<ApiUser>,
}

/// A read-API user with a token.
#[derive(Debug, Clone)]
pub struct ApiUser {
    /// Name (for audit).
    pub name: String,
    /// Bearer token.
    pub token: Secret,
    /// Readable schools; empty = all.
    pub schools: Vec<String>,
}

impl ApiUser {
    /// Whether the user may read `school`'s findings and cases.
    pub fn may_read(&self, school: &str) -> bool {
        self.schools.is_empty() || self.schools.iter().any(|s| s == school)
    }
}

/// A validated source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Display name.
    pub name: String,
    /// Bearer token for pushes, when pushes are allowed by token.
    pub token: Option<Secret>,
    /// HMAC key for signed pushes.
    pub hmac_secret: Option<Secret>,
    /// Vendor profile for CSV pushes.
    pub profile: Option<String>,
    /// The scheduled pull, when configured.
    pub pull: Option<PullConfig>,
}

/// A scheduled pull of a source.
#[derive(Debug, Clone)]
pub struct PullConfig {
    /// The adapter settings (secrets resolved).
    pub source: crate::adapters::config::PullSource,
    /// Time between pulls.
    pub every: std::time::Duration,
}

/// Reads a secret from an environment variable or a file (relative to
/// `base`); at most one may be given, and one must be when `required`. Errors
/// name `{path}_env` or `{path}_file`.
pub(crate) fn secret(
    path: &str,
    env: &Option<String>,
    file: &Option<String>,
    base: &Path,
    required: bool,
) -> Result<Option<Secret>, ConfigError> {
    match (env, file) {
        (Some(_), Some(_)) => Err(invalid(path, "bruk enten _env eller _file, ikke begge")),
        (Some(var), None) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(Secret(v.trim().to_string()))),
            _ => Err(invalid(
                format!("{path}_env"),
                format!("miljøvariabelen {var} er ikke satt"),
            )),
        },
        (None, Some(f)) => {
            let p = base.join(f);
            match std::fs::read_to_string(&p) {
                Ok(v) if !v.trim().is_empty() => Ok(Some(Secret(v.trim().to_string()))),
                Ok(_) => Err(invalid(format!("{path}_file"), format!("{} er tom", p.display()))),
                Err(e) => Err(invalid(
                    format!("{path}_file"),
                    format!("kan ikke lese {}: {e}", p.display()),
                )),
            }
        }
        (None, None) if required => Err(invalid(
            path,
            "mangler: oppgi en miljøvariabel (_env) eller en fil (_file)",
        )),
        (None, None) => Ok(None),
    }
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl RawConfig {
    /// Checks every setting. Relative paths are taken from `base` (the
    /// config file's folder); secrets are read from the environment or files.
    pub fn validate(self, base: &Path) -> Result<Config, ConfigError> {
        let store = match (&self.store, &self.store_env) {
            (Some(_), Some(_)) => return Err(invalid("store", "bruk enten store eller store_env, ikke begge")),
            (_, Some(var)) => {
                std::env::var(var).map_err(|_| invalid("store_env", format!("miljøvariabelen {var} er ikke satt")))?
            }
            (Some(s), None) => s.clone(),
            (None, None) => "tilstede.db".into(),
        };
        if store.contains("://") && !store.starts_with("postgres") && !store.starts_with("sqlite") {
            return Err(invalid("store", "bruk en filsti, sqlite:STI eller postgres://…"));
        }
        // Relative SQLite paths are relative to the config file.
        let store = if !store.contains("://") && !store.starts_with("sqlite:") && Path::new(&store).is_relative() {
            base.join(&store).display().to_string()
        } else {
            store
        };
        let rules_name = self.rules.unwrap_or_else(|| "baerum".into());
        let rules = match RuleSet::preset(&rules_name) {
            Some(r) => r,
            None => RuleSet::load(&base.join(&rules_name).display().to_string())?,
        };
        let cases_name = self.cases.unwrap_or_else(|| "baerum".into());
        let is_preset = crate::cases::config::PRESETS.iter().any(|(n, _)| *n == cases_name);
        let cases_location = if is_preset {
            cases_name.clone()
        } else {
            base.join(&cases_name).display().to_string()
        };
        let mut cases =
            crate::cases::config::CaseConfig::load(&cases_location).map_err(|e| invalid("cases", e.to_string()))?;
        cases.use_rules(&rules);
        let http = self.http.unwrap_or_default();
        let listen = http.listen.as_deref().unwrap_or("127.0.0.1:8080");
        let listen: SocketAddr = listen.parse().map_err(|_| {
            invalid(
                "http.listen",
                format!("«{listen}» er ikke en adresse som 127.0.0.1:8080"),
            )
        })?;
        let max_body_bytes = http.max_body_bytes.unwrap_or(16 * 1024 * 1024);
        if !(1024..=1024 * 1024 * 1024).contains(&max_body_bytes) {
            return Err(invalid("http.max_body_bytes", "må være mellom 1 KiB og 1 GiB"));
        }
        let mut users = Vec::new();
        for (name, u) in &http.users {
            let path = format!("http.users.{name}.token");
            let token =
                secret(&path, &u.token_env, &u.token_file, base, true)?.ok_or_else(|| invalid(&path, "mangler"))?;
            users.push(ApiUser {
                name: name.clone(),
                token,
                schools: u.schools.clone(),
            });
        }
        let mut sources = BTreeMap::new();
        for (id, s) in self.sources {
            if !is_id(&id) {
                return Err(invalid(
                    format!("sources.{id}"),
                    "id kan bare ha bokstaver, tall, - og _",
                ));
            }
            let token = secret(&format!("sources.{id}.token"), &s.token_env, &s.token_file, base, false)?;
            let hmac_secret = secret(
                &format!("sources.{id}.hmac_secret"),
                &s.hmac_secret_env,
                &s.hmac_secret_file,
                base,
                false,
            )?;
            if let Some(p) = &s.profile {
                crate::adapters::profile::Profile::load(p)
                    .map_err(|e| invalid(format!("sources.{id}.profile"), e.to_string()))?;
            }
            let pull = match s.pull {
                None => None,
                Some(raw) => {
                    let source = raw.validate(&id, &format!("sources.{id}.pull")).map_err(|e| match e {
                        crate::adapters::config::ConfigError::Invalid { path, message } => {
                            ConfigError::Invalid { path, message }
                        }
                        other => invalid(format!("sources.{id}.pull"), other.to_string()),
                    })?;
                    let every = s.pull_every_seconds.unwrap_or(300);
                    if !(1..=86_400).contains(&every) {
                        return Err(invalid(
                            format!("sources.{id}.pull_every_seconds"),
                            "må være mellom 1 og 86400",
                        ));
                    }
                    Some(PullConfig {
                        source,
                        every: std::time::Duration::from_secs(every),
                    })
                }
            };
            sources.insert(
                id.clone(),
                SourceConfig {
                    name: s.name.unwrap_or_else(|| id.clone()),
                    token,
                    hmac_secret,
                    profile: s.profile,
                    pull,
                },
            );
        }
        let templates = self.templates.map(|t| base.join(t));
        if let Some(dir) = &templates {
            crate::render::Renderer::with_overrides(Some(dir)).map_err(|e| invalid("templates", e.to_string()))?;
        }
        let matrix = match self.matrix {
            None => None,
            Some(raw) => {
                let (env, file) = match &raw.password_file {
                    Some(f) => (None, Some(f.clone())),
                    None => (
                        Some(
                            raw.password_env
                                .clone()
                                .unwrap_or_else(|| "TILSTEDE_MATRIX_PASSWORD".into()),
                        ),
                        None,
                    ),
                };
                let password = secret("matrix.password", &env, &file, base, true)?
                    .ok_or_else(|| invalid("matrix.password", "mangler"))?;
                let mut config = raw.validate().map_err(|e| match e {
                    crate::matrix::config::ConfigError::Invalid { path, message }
                    | crate::matrix::config::ConfigError::Parse { path, message } => invalid(path, message),
                })?;
                if config.store_dir.is_relative() {
                    config.store_dir = base.join(&config.store_dir);
                }
                Some(MatrixService { config, password })
            }
        };
        Ok(Config {
            store,
            rules_name,
            rules,
            cases,
            templates,
            matrix,
            http: HttpConfig {
                listen,
                max_body_bytes: max_body_bytes as usize,
                users,
            },
            sources,
        })
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let raw: RawConfig = toml::parse_toml(&text)?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        raw.validate(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::parse_toml(text)?;
        raw.validate(Path::new("/tmp"))
    }

    #[test]
    fn defaults() {
        let c = check("").unwrap();
        assert_eq!(c.store, "/tmp/tilstede.db");
        assert_eq!(c.rules.name, "baerum");
        assert_eq!(c.http.listen.port(), 8080);
    }

    #[test]
    fn cases_count_lessons_like_the_rules() {
        let dir = tempfile::tempdir().unwrap();
        let rules = crate::rules::config::preset_text("oslo")
            .unwrap()
            .replace("lessons_per_day = 6", "lessons_per_day = 5");
        std::fs::write(dir.path().join("rules.toml"), rules).unwrap();
        let raw: RawConfig = toml::parse_toml("rules = \"rules.toml\"\n").unwrap();
        let c = raw.validate(dir.path()).unwrap();
        assert_eq!(c.rules.lessons_per_day, 5);
        assert_eq!(c.cases.lessons_per_day, 5);
    }

    #[test]
    fn secrets_come_from_env_or_files() {
        // SAFETY: tests in this module are the only readers of this variable.
        unsafe { std::env::set_var("TILSTEDE_TEST_SECRET_A", "s3cret") };
        let c = check("[sources.vis]\ntoken_env = \"TILSTEDE_TEST_SECRET_A\"\n").unwrap();
        assert_eq!(c.sources["vis"].token.as_ref().unwrap().expose(), "s3cret");
        assert_eq!(format!("{:?}", c.sources["vis"].token), "Some(Secret(***))");
        let e = check("[sources.vis]\ntoken_env = \"TILSTEDE_TEST_SECRET_MISSING\"\n").unwrap_err();
        assert_eq!(e.path(), Some("sources.vis.token_env"));
    }

    #[test]
    fn errors_name_the_path() {
        let cases = [
            ("[http]\nlisten = \"nowhere\"\n", "http.listen"),
            ("[http]\nlisten = 8080\n", "http.listen"),
            ("[http]\nmax_body_bytes = 1\n", "http.max_body_bytes"),
            ("[sources.\"bad id\"]\n", "sources.bad id"),
            (
                "[sources.vis]\ntoken = \"inline secrets are refused\"\n",
                "sources.vis.token",
            ),
            ("store = \"mysql://x\"\n", "store"),
            ("rules = \"no-such-rules\"\n", "rules"),
            ("cases = \"no-such-routine\"\n", "cases"),
            ("[http.users.kari]\nschools = []\n", "http.users.kari.token"),
        ];
        for (text, path) in cases {
            let e = check(text).unwrap_err();
            assert_eq!(e.path(), Some(path), "{text}: {e}");
        }
    }
}
