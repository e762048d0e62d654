//! The service configuration: one TOML file → raw serde structs →
//! [`RawConfig::validate`] → a [`Config`] the rest of tilstede can trust.
//!
//! Secrets never live in the TOML: it names environment variables or files
//! that hold them (`token_env = "…"` or `token_file = "…"`).

pub mod diagnostic;
pub mod toml;

pub use diagnostic::{Diagnostic, Diagnostics};

use crate::domain::plausibility::{Bounds, MAX_VERSION};
use crate::rules::RuleSet;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The shortest bearer token or HMAC key accepted, in bytes: 256 bits, so
/// that guessing is hopeless (`openssl rand -hex 32` makes one).
pub const MIN_SECRET_BYTES: usize = 32;

/// The tables whose entries are read one by one, so that a typo in one
/// source or user does not hide the errors of the others.
const SECTIONS: &[&str] = &["sources", "http.users"];

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
    /// One or more settings are wrong: all of them, each with its TOML path.
    #[error("{0}")]
    Invalid(Diagnostics),
}

impl ConfigError {
    /// The TOML path of the first problem, when there is one.
    pub fn path(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid(d) => d.iter().next().map(|d| d.path.as_str()),
            ConfigError::Read { .. } => None,
        }
    }

    /// Every problem found (empty when the file could not be read).
    pub fn diagnostics(&self) -> Vec<&Diagnostic> {
        match self {
            ConfigError::Invalid(d) => d.iter().collect(),
            ConfigError::Read { .. } => Vec::new(),
        }
    }
}

impl From<Diagnostics> for ConfigError {
    fn from(d: Diagnostics) -> ConfigError {
        ConfigError::Invalid(d)
    }
}

impl From<toml::TomlError> for ConfigError {
    fn from(e: toml::TomlError) -> ConfigError {
        ConfigError::Invalid(Diagnostic::from(e).into())
    }
}

/// The TOML form of the configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Store location: a file path, `sqlite:PATH` or `postgres://…` (default `tilstede.db`).
    #[serde(default)]
    pub store: Option<String>,
    /// How SQLite commits: `full` (default, a 202 survives a power loss) or
    /// `normal` (one fsync less per commit; docs/privacy.md gives the cost).
    #[serde(default)]
    pub sqlite_synchronous: Option<String>,
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
    /// Bounds a record must stay within to be accepted.
    #[serde(default)]
    pub plausibility: Option<RawPlausibility>,
    /// How long absence data is kept.
    #[serde(default)]
    pub retention: Option<RawRetention>,
    /// The quarantine of rejected input.
    #[serde(default)]
    pub quarantine: Option<RawQuarantine>,
    /// A directory of template overrides (files named like the built-in
    /// templates, e.g. `samarbeidsavtale.md.j2`).
    #[serde(default)]
    pub templates: Option<String>,
    /// The Matrix bot; without it tilstede runs as a gateway only.
    #[serde(default)]
    pub matrix: Option<crate::matrix::RawMatrixConfig>,
    /// The municipal archive (Fiks Arkiv); without it nothing is archived.
    #[serde(default)]
    pub archive: Option<crate::archive::RawArchiveConfig>,
    /// The key of the identity map (needed when a source sets `identity`).
    #[serde(default)]
    pub identity: Option<RawIdentity>,
}

/// The identity map's key: identifiers that link one child across sources
/// (a Feide id, a national id) are stored only as HMAC-SHA256 under it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    /// Environment variable holding the key (at least 32 bytes).
    #[serde(default)]
    pub key_env: Option<String>,
    /// File holding the key (at least 32 bytes).
    #[serde(default)]
    pub key_file: Option<String>,
}

/// Which roster column of a source carries the identifier shared with
/// other sources.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSourceIdentity {
    /// `feide` or `national-id`.
    #[serde(default)]
    pub kind: Option<String>,
    /// The roster's column (CSV header) or OneRoster user field (dotted path).
    #[serde(default)]
    pub column: Option<String>,
}

/// HTTP settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// Address to listen on (default `127.0.0.1:8080`).
    #[serde(default)]
    pub listen: Option<String>,
    /// Largest accepted push body in bytes (default 16 MiB); a source may
    /// set its own.
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// Most open connections (default 4096); more are closed at once.
    #[serde(default)]
    pub max_connections: Option<u64>,
    /// Seconds a client has to send a request's headers, and the longest a
    /// kept-alive connection may sit idle (default 10).
    #[serde(default)]
    pub header_timeout_seconds: Option<u64>,
    /// Seconds a client has to send a request's body (default 60).
    #[serde(default)]
    pub body_timeout_seconds: Option<u64>,
    /// Seconds a whole request may take, body and storing included (default 120).
    #[serde(default)]
    pub request_timeout_seconds: Option<u64>,
    /// Threads that parse pushed bodies at once (default: the number of CPU cores).
    #[serde(default)]
    pub parse_workers: Option<u64>,
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
    /// Schools the user may read (required): school ids, or `["*"]` for
    /// every school.
    #[serde(default)]
    pub schools: Option<Vec<String>>,
}

/// A source of absence data.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Schools the source may write (required): school ids, or `["*"]` for
    /// every school.
    #[serde(default)]
    pub schools: Option<Vec<String>>,
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
    /// Largest push body from this source, in bytes (default `http.max_body_bytes`).
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// Pushes from this source handled at once (default 4); more are
    /// answered 429 with Retry-After.
    #[serde(default)]
    pub max_concurrent: Option<u64>,
    /// The vendor profile for CSV pushes (`text/csv`), e.g. `flyt` or `vis`.
    #[serde(default)]
    pub profile: Option<String>,
    /// Extra fields of the source's records that are kept (the allow-list;
    /// default none). Any other field beyond the canonical record, such as
    /// a free-text note, is dropped before it is stored.
    #[serde(default)]
    pub extensions: Option<Vec<String>>,
    /// The roster column that links this source's pupils to other
    /// sources' (the identity map); without it a pupil is (source, local id).
    #[serde(default)]
    pub identity: Option<RawSourceIdentity>,
    /// A pull adapter to run on a schedule (see `tilstede adapters list`).
    #[serde(default)]
    pub pull: Option<crate::adapters::config::RawSource>,
    /// Seconds between pulls (default 300).
    #[serde(default)]
    pub pull_every_seconds: Option<u64>,
    /// Keep the raw input of this source's rejected items in the quarantine
    /// (default false: only the place, a reason code and the field name).
    /// For finding a fault with the vendor; the raw input may hold health
    /// data, so switch it off again when done.
    #[serde(default)]
    pub keep_raw: Option<bool>,
}

/// The quarantine's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuarantine {
    /// Days a quarantine entry is kept (default 30, 1–3660).
    #[serde(default)]
    pub retention_days: Option<u64>,
}

/// Plausibility bounds (see [`Bounds`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlausibility {
    /// Most lessons in one record (default 16).
    #[serde(default)]
    pub max_lessons: Option<u32>,
    /// Most minutes of one late arrival (default 600).
    #[serde(default)]
    pub max_minutes: Option<u32>,
    /// Oldest date accepted, in days before today (default 1098).
    #[serde(default)]
    pub days_back: Option<u32>,
    /// Latest date accepted, in days after today (default 366).
    #[serde(default)]
    pub days_ahead: Option<u32>,
    /// Highest version accepted (default and at most 2^53).
    #[serde(default)]
    pub max_version: Option<u64>,
}

/// How long absence data is kept (`[retention]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// School years of records, tombstones, finding events and extension
    /// sets kept, the current one included (default 2: the current and the
    /// previous school year; a school year starts on 1 August).
    #[serde(default)]
    pub school_years: Option<u64>,
}

/// How long absence data is kept: whole school years, the current one
/// included. Older records, tombstones, finding events and extension sets
/// are purged, except what an open case still depends on (see
/// `docs/privacy.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// School years kept (1–10).
    pub school_years: u32,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention { school_years: 2 }
    }
}

impl Retention {
    /// The oldest date kept on `today` (see [`crate::domain::dates::retention_cutoff`]).
    pub fn cutoff(&self, today: chrono::NaiveDate) -> chrono::NaiveDate {
        crate::domain::dates::retention_cutoff(today, self.school_years)
    }
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

/// Which schools a read user may read or a source may write. There is no
/// "empty means all": every list is given, and "all" is said explicitly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schools {
    /// Every school (`schools = ["*"]`).
    All,
    /// Only these.
    Only(BTreeSet<String>),
}

impl Schools {
    /// Whether `school` is among them.
    pub fn allows(&self, school: &str) -> bool {
        match self {
            Schools::All => true,
            Schools::Only(list) => list.contains(school),
        }
    }

    /// The listed schools (`None` for all).
    pub fn listed(&self) -> Option<&BTreeSet<String>> {
        match self {
            Schools::All => None,
            Schools::Only(list) => Some(list),
        }
    }

    /// Reads a `schools` setting at `path`.
    pub(crate) fn parse(path: &str, list: Option<&[String]>) -> Result<Schools, Diagnostic> {
        let hint = "list skolene (skole-id-er), eller [\"*\"] for alle skoler";
        let Some(list) = list else {
            return Err(Diagnostic::new(path, format!("mangler: {hint}")));
        };
        if list.is_empty() {
            return Err(Diagnostic::new(
                path,
                format!("en tom liste gir ingen tilgang og er trolig en feil: {hint}"),
            ));
        }
        if list.iter().any(|s| s == "*") {
            return if list.len() == 1 {
                Ok(Schools::All)
            } else {
                Err(Diagnostic::new(path, "«*» betyr alle skoler og står alene i listen"))
            };
        }
        if let Some(bad) = list
            .iter()
            .find(|s| s.trim().is_empty() || s.chars().any(char::is_control))
        {
            return Err(Diagnostic::new(
                path,
                format!("«{}» er ingen skole-id", crate::domain::plausibility::printable(bad)),
            ));
        }
        Ok(Schools::Only(list.iter().cloned().collect()))
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Store location.
    pub store: String,
    /// How SQLite commits through the pool.
    pub sqlite_synchronous: crate::store::Synchronous,
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
    /// Bounds every pushed record must stay within.
    pub plausibility: Bounds,
    /// How long absence data is kept.
    pub retention: Retention,
    /// The quarantine's retention.
    pub quarantine: QuarantineConfig,
    /// Template override directory.
    pub templates: Option<PathBuf>,
    /// The Matrix bot, when configured.
    pub matrix: Option<MatrixService>,
    /// The archive, when configured.
    pub archive: Option<crate::archive::ArchiveConfig>,
}

/// The quarantine's validated settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarantineConfig {
    /// How long an entry is kept; `serve` purges older ones.
    pub retention_days: u32,
}

/// Days a quarantine entry is kept unless `[quarantine] retention_days` says otherwise.
pub const QUARANTINE_RETENTION_DAYS: u32 = 30;

impl QuarantineConfig {
    /// Entries received before this are due for the purge, as of `now`.
    pub fn cutoff(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        now - chrono::Duration::days(i64::from(self.retention_days))
    }
}

impl Default for QuarantineConfig {
    fn default() -> QuarantineConfig {
        QuarantineConfig {
            retention_days: QUARANTINE_RETENTION_DAYS,
        }
    }
}

impl Config {
    /// The sources whose rejected input the quarantine keeps (`keep_raw`),
    /// for [`crate::store::Store::keeping_raw_for`].
    pub fn raw_kept_sources(&self) -> Vec<String> {
        self.sources
            .iter()
            .filter(|(_, s)| s.keep_raw)
            .map(|(id, _)| id.clone())
            .collect()
    }
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
    /// Largest push body in bytes, unless a source sets its own.
    pub max_body_bytes: usize,
    /// Most open connections.
    pub max_connections: usize,
    /// Time to send a request's headers (and the idle keep-alive limit).
    pub header_timeout: Duration,
    /// Time to send a request's body.
    pub body_timeout: Duration,
    /// Time for a whole request.
    pub request_timeout: Duration,
    /// Bodies parsed at once.
    pub parse_workers: usize,
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
    /// Readable schools.
    pub schools: Schools,
}

impl ApiUser {
    /// Whether the user may read `school`'s findings and cases.
    pub fn may_read(&self, school: &str) -> bool {
        self.schools.allows(school)
    }
}

/// A validated source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Display name.
    pub name: String,
    /// Schools the source may write records for.
    pub schools: Schools,
    /// Bearer token for pushes, when pushes are allowed by token.
    pub token: Option<Secret>,
    /// HMAC key for signed pushes.
    pub hmac_secret: Option<Secret>,
    /// Largest push body in bytes.
    pub max_body_bytes: usize,
    /// Pushes handled at once.
    pub max_concurrent: usize,
    /// Vendor profile for CSV pushes.
    pub profile: Option<String>,
    /// Extension fields kept from the source's records (none by default).
    pub extensions: Vec<String>,
    /// Whether the quarantine keeps this source's rejected input.
    pub keep_raw: bool,
    /// The roster column that links its pupils to other sources' pupils.
    pub identity: Option<crate::domain::identity::IdentityColumn>,
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
) -> Result<Option<Secret>, Diagnostic> {
    match (env, file) {
        (Some(_), Some(_)) => Err(Diagnostic::new(path, "bruk enten _env eller _file, ikke begge")),
        (Some(var), None) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(Secret(v.trim().to_string()))),
            _ => Err(Diagnostic::new(
                format!("{path}_env"),
                format!("miljøvariabelen {var} er ikke satt"),
            )),
        },
        (None, Some(f)) => {
            let p = base.join(f);
            match std::fs::read_to_string(&p) {
                Ok(v) if !v.trim().is_empty() => Ok(Some(Secret(v.trim().to_string()))),
                Ok(_) => Err(Diagnostic::new(
                    format!("{path}_file"),
                    format!("{} er tom", p.display()),
                )),
                Err(e) => Err(Diagnostic::new(
                    format!("{path}_file"),
                    format!("kan ikke lese {}: {e}", p.display()),
                )),
            }
        }
        (None, None) if required => Err(Diagnostic::new(
            path,
            "mangler: oppgi en miljøvariabel (_env) eller en fil (_file)",
        )),
        (None, None) => Ok(None),
    }
}

/// A credential read for authentication, remembered with where it was set
/// so that short and shared ones can be named.
struct Credential {
    /// `http.users.kari.token`, `sources.vis.hmac_secret`, …
    path: String,
    /// Whether it came from an environment variable (names `_env`) or a file.
    from_env: bool,
    value: Secret,
}

impl Credential {
    fn setting(&self) -> String {
        format!("{}{}", self.path, if self.from_env { "_env" } else { "_file" })
    }
}

/// Every token and HMAC key must be long, and no two may be equal: a
/// token shared by two users or sources makes them indistinguishable, and
/// the broader one's access goes to both.
fn check_credentials(credentials: &[Credential], diags: &mut Diagnostics) {
    for c in credentials {
        let len = c.value.expose().len();
        if len < MIN_SECRET_BYTES {
            diags.push(
                c.setting(),
                format!("for kort: {len} byte, minst {MIN_SECRET_BYTES} kreves (lag en med `openssl rand -hex 32`)"),
            );
        }
    }
    for (i, a) in credentials.iter().enumerate() {
        if let Some(b) = credentials[..i].iter().find(|b| b.value == a.value) {
            diags.push(
                a.setting(),
                format!(
                    "samme hemmelighet som {}: hver bruker og kilde må ha sin egen",
                    b.setting()
                ),
            );
        }
    }
}

/// The identity column of the source at `path`: a known kind, a column,
/// and the installation's key (`[identity]`).
fn source_identity(
    diags: &mut Diagnostics,
    path: &str,
    raw: &RawSourceIdentity,
    key_configured: bool,
    key: Option<&Secret>,
) -> Option<crate::domain::identity::IdentityColumn> {
    use crate::domain::identity::{IdentityColumn, IdentityKind};
    let kind = match raw.kind.as_deref() {
        None => {
            diags.push(format!("{path}.identity.kind"), "mangler: feide eller national-id");
            None
        }
        Some(k) => IdentityKind::parse(k).or_else(|| {
            diags.push(
                format!("{path}.identity.kind"),
                format!(
                    "«{}» er ukjent (gyldige: feide, national-id)",
                    crate::domain::plausibility::printable(k)
                ),
            );
            None
        }),
    };
    let column = match raw.column.as_deref() {
        Some(c) if !c.trim().is_empty() && !c.chars().any(char::is_control) => Some(c.to_string()),
        _ => {
            diags.push(
                format!("{path}.identity.column"),
                "mangler: navnet på kolonnen i elevlisten som har identiteten",
            );
            None
        }
    };
    if !key_configured {
        diags.push(
            "identity",
            format!(
                "{path}.identity krever en nøkkel: [identity] key_env eller key_file (minst {MIN_SECRET_BYTES} byte)"
            ),
        );
    }
    Some(IdentityColumn::new(kind?, column?, key?.expose().as_bytes()))
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `value` (or `default`) when it lies in `range`, else a diagnostic at `path`.
fn bounded(
    diags: &mut Diagnostics,
    path: &str,
    value: Option<u64>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> u64 {
    let v = value.unwrap_or(default);
    if range.contains(&v) {
        v
    } else {
        diags.push(
            path,
            format!("må være mellom {} og {}, ikke {v}", range.start(), range.end()),
        );
        default
    }
}

impl RawConfig {
    /// Checks every setting. Relative paths are taken from `base` (the
    /// config file's folder); secrets are read from the environment or files.
    /// Every problem is reported, not only the first.
    pub fn validate(self, base: &Path) -> Result<Config, ConfigError> {
        let mut diags = Diagnostics::new();
        let config = self.validate_into(base, &mut diags);
        Ok(diags.finish(config)?)
    }

    /// Checks every setting, noting each problem in `diags`; what it returns
    /// is usable only when `diags` stays empty.
    pub fn validate_into(self, base: &Path, diags: &mut Diagnostics) -> Config {
        let store = match (&self.store, &self.store_env) {
            (Some(_), Some(_)) => {
                diags.push("store", "bruk enten store eller store_env, ikke begge");
                String::new()
            }
            (_, Some(var)) => std::env::var(var).unwrap_or_else(|_| {
                diags.push("store_env", format!("miljøvariabelen {var} er ikke satt"));
                String::new()
            }),
            (Some(s), None) => s.clone(),
            (None, None) => "tilstede.db".into(),
        };
        if store.contains("://") && !store.starts_with("postgres") && !store.starts_with("sqlite") {
            diags.push("store", "bruk en filsti, sqlite:STI eller postgres://…");
        }
        // Relative SQLite paths are relative to the config file.
        let store = if !store.is_empty()
            && !store.contains("://")
            && !store.starts_with("sqlite:")
            && Path::new(&store).is_relative()
        {
            base.join(&store).display().to_string()
        } else {
            store
        };
        let sqlite_synchronous = match self.sqlite_synchronous.as_deref() {
            None => crate::store::Synchronous::Full,
            Some(mode) => crate::store::Synchronous::parse(mode).unwrap_or_else(|| {
                diags.push(
                    "sqlite_synchronous",
                    format!(
                        "bruk full eller normal, ikke «{}»",
                        crate::domain::plausibility::printable(mode)
                    ),
                );
                crate::store::Synchronous::Full
            }),
        };
        let rules_name = self.rules.unwrap_or_else(|| "baerum".into());
        let rules = match RuleSet::preset(&rules_name) {
            Some(r) => r,
            None => diags
                .check(RuleSet::load(&base.join(&rules_name).display().to_string()))
                .unwrap_or_else(|| RuleSet::preset("baerum").expect("the baerum preset")),
        };
        let cases_name = self.cases.unwrap_or_else(|| "baerum".into());
        let is_preset = crate::cases::config::PRESETS.iter().any(|(n, _)| *n == cases_name);
        let cases_location = if is_preset {
            cases_name.clone()
        } else {
            base.join(&cases_name).display().to_string()
        };
        let mut cases = crate::cases::config::CaseConfig::load(&cases_location).unwrap_or_else(|e| {
            diags.push("cases", e.to_string());
            crate::cases::config::CaseConfig::load("baerum").expect("the baerum preset")
        });
        cases.use_rules(&rules);
        let http = self.http.unwrap_or_default();
        let listen_text = http.listen.as_deref().unwrap_or("127.0.0.1:8080");
        let listen: SocketAddr = listen_text.parse().unwrap_or_else(|_| {
            diags.push(
                "http.listen",
                format!("«{listen_text}» er ikke en adresse som 127.0.0.1:8080"),
            );
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        const BODY_RANGE: std::ops::RangeInclusive<u64> = 1024..=1024 * 1024 * 1024;
        let max_body_bytes = bounded(
            diags,
            "http.max_body_bytes",
            http.max_body_bytes,
            16 * 1024 * 1024,
            BODY_RANGE,
        );
        let max_connections = bounded(
            diags,
            "http.max_connections",
            http.max_connections,
            4096,
            16..=1_000_000,
        );
        let header_timeout = bounded(
            diags,
            "http.header_timeout_seconds",
            http.header_timeout_seconds,
            10,
            1..=300,
        );
        let body_timeout = bounded(
            diags,
            "http.body_timeout_seconds",
            http.body_timeout_seconds,
            60,
            1..=3600,
        );
        let request_timeout = bounded(
            diags,
            "http.request_timeout_seconds",
            http.request_timeout_seconds,
            120,
            1..=7200,
        );
        if request_timeout < body_timeout {
            diags.push(
                "http.request_timeout_seconds",
                format!("må være minst like lang som http.body_timeout_seconds ({body_timeout})"),
            );
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let parse_workers = bounded(diags, "http.parse_workers", http.parse_workers, cores, 1..=256);
        let mut credentials = Vec::new();
        let mut users = Vec::new();
        for (name, u) in &http.users {
            let path = format!("http.users.{name}");
            let token = diags
                .check(secret(
                    &format!("{path}.token"),
                    &u.token_env,
                    &u.token_file,
                    base,
                    true,
                ))
                .flatten();
            let schools = diags.check(Schools::parse(&format!("{path}.schools"), u.schools.as_deref()));
            if let Some(token) = &token {
                credentials.push(Credential {
                    path: format!("{path}.token"),
                    from_env: u.token_env.is_some(),
                    value: token.clone(),
                });
            }
            if let (Some(token), Some(schools)) = (token, schools) {
                users.push(ApiUser {
                    name: name.clone(),
                    token,
                    schools,
                });
            }
        }
        let identity_key = self.identity.as_ref().and_then(|i| {
            let key = diags
                .check(secret("identity.key", &i.key_env, &i.key_file, base, true))
                .flatten()?;
            credentials.push(Credential {
                path: "identity.key".into(),
                from_env: i.key_env.is_some(),
                value: key.clone(),
            });
            Some(key)
        });
        let mut sources = BTreeMap::new();
        for (id, s) in self.sources {
            let path = format!("sources.{id}");
            if !is_id(&id) {
                diags.push(&path, "id kan bare ha bokstaver, tall, - og _");
                continue;
            }
            let schools = diags.check(Schools::parse(&format!("{path}.schools"), s.schools.as_deref()));
            let token = diags
                .check(secret(
                    &format!("{path}.token"),
                    &s.token_env,
                    &s.token_file,
                    base,
                    false,
                ))
                .flatten();
            let hmac_secret = diags
                .check(secret(
                    &format!("{path}.hmac_secret"),
                    &s.hmac_secret_env,
                    &s.hmac_secret_file,
                    base,
                    false,
                ))
                .flatten();
            for (name, value, from_env) in [
                ("token", &token, s.token_env.is_some()),
                ("hmac_secret", &hmac_secret, s.hmac_secret_env.is_some()),
            ] {
                if let Some(v) = value {
                    credentials.push(Credential {
                        path: format!("{path}.{name}"),
                        from_env,
                        value: v.clone(),
                    });
                }
            }
            let source_body = bounded(
                diags,
                &format!("{path}.max_body_bytes"),
                s.max_body_bytes,
                max_body_bytes,
                BODY_RANGE,
            );
            let max_concurrent = bounded(diags, &format!("{path}.max_concurrent"), s.max_concurrent, 4, 1..=1024);
            if let Some(p) = &s.profile
                && let Err(e) = crate::adapters::profile::Profile::load(p)
            {
                diags.push(format!("{path}.profile"), e.to_string());
            }
            let pull = match s.pull {
                None => None,
                Some(raw) => {
                    let every = bounded(
                        diags,
                        &format!("{path}.pull_every_seconds"),
                        s.pull_every_seconds,
                        300,
                        1..=86_400,
                    );
                    diags
                        .check(raw.validate(
                            &id,
                            &format!("{path}.pull"),
                            // A wrong list is reported above; the pull is
                            // dropped with its source then.
                            Some(schools.as_ref().unwrap_or(&Schools::Only(BTreeSet::new()))),
                        ))
                        .map(|source| PullConfig {
                            source,
                            every: Duration::from_secs(every),
                        })
                }
            };
            let extensions = s.extensions.unwrap_or_default();
            for (i, name) in extensions.iter().enumerate() {
                if name.trim().is_empty() || name.chars().any(char::is_control) {
                    diags.push(
                        format!("{path}.extensions[{i}]"),
                        "et feltnavn kan ikke være tomt eller ha kontrolltegn".to_string(),
                    );
                }
            }
            let identity = s
                .identity
                .as_ref()
                .and_then(|i| source_identity(diags, &path, i, self.identity.is_some(), identity_key.as_ref()));
            // A OneRoster pull of the source reads the same identity column.
            let mut pull = pull;
            if let (Some(p), Some(i)) = (&mut pull, &identity)
                && let crate::adapters::pull::PullComponent::OneRoster(settings) = &mut p.source.component
            {
                settings.identity = Some(i.clone());
            }
            let Some(schools) = schools else { continue };
            sources.insert(
                id.clone(),
                SourceConfig {
                    name: s.name.unwrap_or_else(|| id.clone()),
                    schools,
                    token,
                    hmac_secret,
                    max_body_bytes: source_body as usize,
                    max_concurrent: max_concurrent as usize,
                    profile: s.profile,
                    extensions,
                    keep_raw: s.keep_raw.unwrap_or(false),
                    identity,
                    pull,
                },
            );
        }
        check_credentials(&credentials, diags);
        let p = self.plausibility.unwrap_or_default();
        let defaults = Bounds::default();
        let plausibility = Bounds {
            max_lessons: bounded(
                diags,
                "plausibility.max_lessons",
                p.max_lessons.map(u64::from),
                u64::from(defaults.max_lessons),
                1..=100,
            ) as u32,
            max_minutes: bounded(
                diags,
                "plausibility.max_minutes",
                p.max_minutes.map(u64::from),
                u64::from(defaults.max_minutes),
                1..=1440,
            ) as u32,
            days_back: bounded(
                diags,
                "plausibility.days_back",
                p.days_back.map(u64::from),
                u64::from(defaults.days_back),
                1..=3660,
            ) as u32,
            days_ahead: bounded(
                diags,
                "plausibility.days_ahead",
                p.days_ahead.map(u64::from),
                u64::from(defaults.days_ahead),
                0..=3660,
            ) as u32,
            max_version: bounded(
                diags,
                "plausibility.max_version",
                p.max_version,
                defaults.max_version,
                1..=MAX_VERSION,
            ),
        };
        let retention = Retention {
            school_years: bounded(
                diags,
                "retention.school_years",
                self.retention.and_then(|r| r.school_years),
                u64::from(Retention::default().school_years),
                1..=10,
            ) as u32,
        };
        let quarantine = QuarantineConfig {
            retention_days: bounded(
                diags,
                "quarantine.retention_days",
                self.quarantine.and_then(|q| q.retention_days),
                u64::from(QUARANTINE_RETENTION_DAYS),
                1..=3660,
            ) as u32,
        };
        let templates = self.templates.map(|t| base.join(t));
        if let Some(dir) = &templates
            && let Err(e) = crate::render::Renderer::with_overrides(Some(dir))
        {
            diags.push("templates", e.to_string());
        }
        let matrix = self.matrix.and_then(|raw| {
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
            let password = diags
                .check(secret("matrix.password", &env, &file, base, true))
                .flatten();
            let mut config = diags.check(raw.validate())?;
            if config.store_dir.is_relative() {
                config.store_dir = base.join(&config.store_dir);
            }
            Some(MatrixService {
                config,
                password: password?,
            })
        });
        let archive = self.archive.and_then(|raw| {
            let mut config = diags.check(raw.validate())?;
            if let crate::archive::config::TransportConfig::Directory { outbox_dir, reply_dir } = &mut config.transport
            {
                *outbox_dir = base.join(&*outbox_dir);
                *reply_dir = base.join(&*reply_dir);
            }
            Some(config)
        });
        Config {
            store,
            sqlite_synchronous,
            rules_name,
            rules,
            cases,
            templates,
            matrix,
            archive,
            http: HttpConfig {
                listen,
                max_body_bytes: max_body_bytes as usize,
                max_connections: max_connections as usize,
                header_timeout: Duration::from_secs(header_timeout),
                body_timeout: Duration::from_secs(body_timeout),
                request_timeout: Duration::from_secs(request_timeout),
                parse_workers: parse_workers as usize,
                users,
            },
            sources,
            plausibility,
            retention,
            quarantine,
        }
    }
}

impl Config {
    /// Reads and validates a config file, reporting every problem in it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Ok(parse_and_validate(&text, base)?)
    }
}

/// Reads the TOML section by section and validates what fits, collecting
/// every problem of both steps.
pub fn parse_and_validate(text: &str, base: &Path) -> Result<Config, Diagnostics> {
    let mut diags = Diagnostics::new();
    let (raw, errors): (RawConfig, _) = match toml::parse_toml_sections(text, SECTIONS) {
        Ok(parsed) => parsed,
        Err(e) => return Err(Diagnostic::from(e).into()),
    };
    for e in errors {
        diags.add(e);
    }
    let config = raw.validate_into(base, &mut diags);
    diags.finish(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Config, Diagnostics> {
        parse_and_validate(text, Path::new("/tmp"))
    }

    fn first_path(text: &str) -> String {
        check(text).unwrap_err().iter().next().unwrap().path.clone()
    }

    /// A directory with secret files: `long-a`, `long-b`, `long-c` of 32+
    /// bytes, and `short` of 8.
    fn secrets() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, value) in [
            ("long-a", "a".repeat(40)),
            ("long-b", "b".repeat(40)),
            ("long-c", "c".repeat(32)),
            ("short", "kort1234".into()),
        ] {
            std::fs::write(dir.path().join(name), value).unwrap();
        }
        dir
    }

    #[test]
    fn defaults() {
        let c = check("").unwrap();
        assert_eq!(c.store, "/tmp/tilstede.db");
        assert_eq!(c.rules.name, "baerum");
        assert_eq!(c.http.listen.port(), 8080);
        assert_eq!(c.http.header_timeout, Duration::from_secs(10));
        assert_eq!(c.plausibility, Bounds::default());
        assert_eq!(c.retention.school_years, 2, "the current and the previous school year");
    }

    #[test]
    fn retention_is_whole_school_years() {
        let c = check("[retention]\nschool_years = 3\n").unwrap();
        assert_eq!(c.retention.school_years, 3);
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 6).unwrap();
        assert_eq!(c.retention.cutoff(today).to_string(), "2024-08-01");
        let e = check("[retention]\nschool_years = 0\n").unwrap_err();
        assert!(
            e.to_string().contains("retention.school_years: må være mellom 1 og 10"),
            "{e}"
        );
        assert_eq!(first_path("[retention]\nyears = 2\n"), "retention.years");
    }

    #[test]
    fn cases_count_lessons_like_the_rules() {
        let dir = tempfile::tempdir().unwrap();
        let rules = crate::rules::config::preset_text("oslo")
            .unwrap()
            .replace("lessons_per_day = 6", "lessons_per_day = 5");
        std::fs::write(dir.path().join("rules.toml"), rules).unwrap();
        let c = parse_and_validate("rules = \"rules.toml\"\n", dir.path()).unwrap();
        assert_eq!(c.rules.lessons_per_day, 5);
        assert_eq!(c.cases.lessons_per_day, 5);
    }

    #[test]
    fn secrets_come_from_env_or_files() {
        // SAFETY: tests in this module are the only readers of this variable.
        unsafe { std::env::set_var("TILSTEDE_TEST_SECRET_A", "s3cret-s3cret-s3cret-s3cret-s3cret") };
        let c = check("[sources.vis]\nschools = [\"*\"]\ntoken_env = \"TILSTEDE_TEST_SECRET_A\"\n").unwrap();
        assert_eq!(
            c.sources["vis"].token.as_ref().unwrap().expose(),
            "s3cret-s3cret-s3cret-s3cret-s3cret"
        );
        assert_eq!(format!("{:?}", c.sources["vis"].token), "Some(Secret(***))");
        assert_eq!(
            first_path("[sources.vis]\nschools = [\"*\"]\ntoken_env = \"TILSTEDE_TEST_SECRET_MISSING\"\n"),
            "sources.vis.token_env"
        );
    }

    /// The quarantine's retention defaults to 30 days and is bounded;
    /// `keep_raw` is off unless a source sets it.
    #[test]
    fn quarantine_settings() {
        let c =
            check("[sources.vis]\nschools = [\"*\"]\n[sources.annen]\nschools = [\"*\"]\nkeep_raw = true\n").unwrap();
        assert_eq!(c.quarantine.retention_days, 30);
        assert_eq!(c.raw_kept_sources(), ["annen"]);
        let c = check("[quarantine]\nretention_days = 7\n").unwrap();
        assert_eq!(c.quarantine.retention_days, 7);
        for bad in [
            "[quarantine]\nretention_days = 0\n",
            "[quarantine]\nretention_days = 100000\n",
        ] {
            assert_eq!(first_path(bad), "quarantine.retention_days", "{bad}");
        }
        assert_eq!(first_path("[quarantine]\nkeep = 1\n"), "quarantine.keep");
    }

    #[test]
    fn sqlite_commit_mode() {
        use crate::store::Synchronous;
        assert_eq!(check("").unwrap().sqlite_synchronous, Synchronous::Full);
        assert_eq!(
            check("sqlite_synchronous = \"normal\"\n").unwrap().sqlite_synchronous,
            Synchronous::Normal
        );
        assert_eq!(first_path("sqlite_synchronous = \"off\"\n"), "sqlite_synchronous");
    }

    #[test]
    fn errors_name_the_path() {
        let cases = [
            ("[http]\nlisten = \"nowhere\"\n", "http.listen"),
            ("[http]\nlisten = 8080\n", "http.listen"),
            ("[http]\nmax_body_bytes = 1\n", "http.max_body_bytes"),
            ("[http]\nheader_timeout_seconds = 0\n", "http.header_timeout_seconds"),
            ("[sources.\"bad id\"]\nschools = [\"*\"]\n", "sources.bad id"),
            (
                "[sources.vis]\nschools = [\"*\"]\ntoken = \"inline secrets are refused\"\n",
                "sources.vis.token",
            ),
            ("store = \"mysql://x\"\n", "store"),
            ("rules = \"no-such-rules\"\n", "rules"),
            ("cases = \"no-such-routine\"\n", "cases"),
            ("[http.users.kari]\nschools = [\"s1\"]\n", "http.users.kari.token"),
            (
                "[plausibility]\nmax_version = 9007199254740993\n",
                "plausibility.max_version",
            ),
            ("[plausibility]\nmax_lessons = 0\n", "plausibility.max_lessons"),
            ("[retention]\nschool_years = 11\n", "retention.school_years"),
        ];
        for (text, path) in cases {
            assert_eq!(first_path(text), path, "{text}");
        }
    }

    /// Read users and sources say which schools they cover: there is no
    /// "empty means all" to fail open, and "all" is `["*"]`.
    #[test]
    fn schools_are_listed_or_explicitly_all() {
        let dir = secrets();
        let check = |text: &str| parse_and_validate(text, dir.path());
        let c = check(
            "[http.users.alle]\ntoken_file = \"long-a\"\nschools = [\"*\"]\n\
             [http.users.en]\ntoken_file = \"long-b\"\nschools = [\"skole-02\"]\n\
             [sources.vis]\ntoken_file = \"long-c\"\nschools = [\"skole-01\", \"skole-02\"]\n",
        )
        .unwrap();
        assert_eq!(c.http.users[0].schools, Schools::All);
        assert!(c.http.users[1].may_read("skole-02"));
        assert!(!c.http.users[1].may_read("skole-01"));
        assert!(c.sources["vis"].schools.allows("skole-01"));
        assert!(!c.sources["vis"].schools.allows("skole-03"));
        assert_eq!(c.sources["vis"].max_concurrent, 4);
        for (text, path) in [
            ("[http.users.u]\ntoken_file = \"long-a\"\n", "http.users.u.schools"),
            (
                "[http.users.u]\ntoken_file = \"long-a\"\nschools = []\n",
                "http.users.u.schools",
            ),
            ("[sources.s]\ntoken_file = \"long-a\"\n", "sources.s.schools"),
            (
                "[sources.s]\ntoken_file = \"long-a\"\nschools = []\n",
                "sources.s.schools",
            ),
            (
                "[sources.s]\ntoken_file = \"long-a\"\nschools = [\"*\", \"k\"]\n",
                "sources.s.schools",
            ),
        ] {
            let e = check(text).unwrap_err();
            assert_eq!(e.iter().next().unwrap().path, path, "{text}: {e}");
        }
    }

    /// Shared and short credentials fail the check, and every problem of
    /// the file is listed at once, not only the first.
    #[test]
    fn duplicate_and_short_tokens_fail_listing_every_error() {
        let dir = secrets();
        let text = "\
[http]
listen = \"nowhere\"
[http.users.alle]
token_file = \"long-a\"
schools = [\"*\"]
[http.users.skole2]
token_file = \"long-a\"
schools = [\"skole-02\"]
[http.users.kort]
token_file = \"short\"
schools = [\"skole-01\"]
[sources.vis]
schools = [\"*\"]
token_file = \"long-b\"
hmac_secret_file = \"short\"
[sources.annen]
schools = [\"skole-01\"]
token_file = \"long-b\"
tokn = \"typo\"
[sources.tredje]
token_file = \"long-c\"
[plausibility]
max_lessons = 0
";
        let e = parse_and_validate(text, dir.path()).unwrap_err();
        let got: Vec<(&str, bool)> = e
            .iter()
            .map(|d| (d.path.as_str(), d.message.contains("samme hemmelighet")))
            .collect();
        let expected = [
            ("sources.annen.tokn", false),
            ("http.listen", false),
            ("sources.tredje.schools", false),
            ("http.users.kort.token_file", false),
            ("sources.vis.hmac_secret_file", false),
            ("http.users.skole2.token_file", true),
            ("sources.vis.hmac_secret_file", true),
            ("plausibility.max_lessons", false),
        ];
        assert_eq!(got, expected, "{e}");
        // No secret's value is ever printed.
        let text = e.to_string();
        assert!(!text.contains("aaaa") && !text.contains("kort1234"), "{text}");
    }
}
