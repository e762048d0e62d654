//! The pull sources a municipality has configured (`adapters.toml`).
//!
//! ```toml
//! [sources.edfi]
//! adapter = "edfi-api"
//! base_url = "https://ods.kommune.example"
//! client_id = "tilstede"
//! client_secret_env = "TILSTEDE_EDFI_SECRET"   # or client_secret_file = "/run/secrets/edfi"
//! ```
//!
//! Secrets are never read from the TOML itself: only from an environment
//! variable or a file, named in the TOML.

use super::edfi::EdfiMapping;
use super::edfi_api::EdfiApiSettings;
use super::fint::FintSettings;
use super::oneroster::OneRosterSettings;
use super::profile::Profile;
use super::pull::PullComponent;
use super::rest::{Auth, RetryPolicy};
use super::vendor_rest::RestAuth;

/// The OAuth2 scope a OneRoster 1.2 client asks for to read rosters.
pub const ONEROSTER_SCOPE: &str = "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly";
use crate::config::Schools;
use crate::config::toml::parse_toml;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Why the adapters configuration was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A setting is wrong; the TOML path says which.
    #[error("{path}: {message}")]
    Invalid {
        /// TOML path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The file could not be read.
    #[error("kan ikke lese {0}")]
    Unreadable(String),
    /// No source by that name.
    #[error("kilden «{0}» finnes ikke i konfigurasjonen (kjente: {1})")]
    UnknownSource(String, String),
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

/// The TOML form.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdaptersConfig {
    /// Sources by name.
    #[serde(default)]
    pub sources: BTreeMap<String, RawSource>,
}

/// One source, before validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// `edfi-api`.
    pub adapter: String,
    /// Server base URL.
    pub base_url: String,
    /// Data API path below the base (default `/data/v3`).
    #[serde(default)]
    pub data_path: Option<String>,
    /// Change queries path below the base (default `/changeQueries/v1`).
    #[serde(default)]
    pub change_queries_path: Option<String>,
    /// Token endpoint path below the base (default `/oauth/token`).
    #[serde(default)]
    pub token_path: Option<String>,
    /// `client_credentials` (default) or `password`.
    #[serde(default)]
    pub grant: Option<String>,
    /// OAuth2 client id (not for an API key).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// File holding the client secret.
    #[serde(default)]
    pub client_secret_file: Option<String>,
    /// Refused with a clear message: secrets do not belong in the TOML.
    #[serde(default)]
    pub client_secret: Option<toml::Value>,
    /// Environment variable holding the API key (vendor-rest with `kind = "api-key"`).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// File holding the API key.
    #[serde(default)]
    pub api_key_file: Option<String>,
    /// User name for the password grant.
    #[serde(default)]
    pub username: Option<String>,
    /// Environment variable holding the password (password grant).
    #[serde(default)]
    pub password_env: Option<String>,
    /// FINT resource path below the base (default `/utdanning/vurdering/fravarsregistrering`).
    #[serde(default)]
    pub resource_path: Option<String>,
    /// The profile: FINT's Fravarstype table (default `fint`) or the
    /// vendor-rest profile (required); a shipped name or a TOML path.
    #[serde(default)]
    pub profile: Option<String>,
    /// Canonical `source` of the records (default: the source's name).
    #[serde(default)]
    pub source: Option<String>,
    /// Schools the source may write (required in `adapters.toml`): school
    /// ids, or `["*"]` for every school. In the service config the source's
    /// own `schools` is used, and this must not be set.
    #[serde(default)]
    pub schools: Option<Vec<String>>,
    /// Items per page (default 500).
    #[serde(default)]
    pub page_size: Option<u32>,
    /// Lessons per school day (default 6).
    #[serde(default)]
    pub lessons_per_day: Option<u32>,
    /// OAuth2 scope to ask for (oneroster; default the roster-core read scope).
    #[serde(default)]
    pub scope: Option<String>,
    /// Staff Matrix ids from a template, e.g. `@{username}:kommune.no` (oneroster).
    #[serde(default)]
    pub matrix_template: Option<String>,
    /// Dotted path of a user field holding the Matrix id, e.g. `metadata.matrixId` (oneroster).
    #[serde(default)]
    pub matrix_id_field: Option<String>,
    /// Seconds per request before it counts as failed (default 30).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// Attempts per request (default 5).
    #[serde(default)]
    pub attempts: Option<u32>,
    /// First retry delay in milliseconds, doubled per retry (default 250).
    #[serde(default)]
    pub backoff_ms: Option<u64>,
}

/// A validated pull source.
#[derive(Debug, Clone, PartialEq)]
pub struct PullSource {
    /// Its name in the config (also the cursor's key).
    pub name: String,
    /// Authentication (secrets resolved).
    pub auth: Auth,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// What it pulls, by protocol; builds the run's puller.
    pub component: PullComponent,
    /// The schools it may write: records for others are quarantined.
    pub schools: Schools,
}

/// Reads a secret from the environment variable or file named at `path`,
/// by the service config's rules.
fn secret(path: &str, env: Option<&str>, file: Option<&str>) -> Result<String, ConfigError> {
    let (env, file) = (env.map(str::to_string), file.map(str::to_string));
    match crate::config::secret(path, &env, &file, std::path::Path::new(""), true) {
        Ok(Some(s)) => Ok(s.expose().to_string()),
        Ok(None) => Err(invalid(path, "mangler")),
        Err(d) => Err(invalid(d.path, d.message)),
    }
}

impl RawSource {
    /// Checks the settings and resolves the secrets; `path` is the TOML
    /// path of the source. `inherited` is the schools of the service
    /// config's source the pull belongs to (`None` in `adapters.toml`,
    /// where the pull lists its own).
    pub fn validate(self, name: &str, path: &str, inherited: Option<&Schools>) -> Result<PullSource, ConfigError> {
        let schools = match (inherited, self.schools.as_deref()) {
            (Some(s), None) => s.clone(),
            (Some(_), Some(_)) => {
                return Err(invalid(
                    format!("{path}.schools"),
                    "skolene står på kilden selv (sources.ID.schools), ikke under pull",
                ));
            }
            (None, list) => Schools::parse(&format!("{path}.schools"), list).map_err(|d| invalid(d.path, d.message))?,
        };
        if self.client_secret.is_some() {
            return Err(invalid(
                format!("{path}.client_secret"),
                "hemmeligheter skal ikke stå i TOML; bruk client_secret_env eller client_secret_file",
            ));
        }
        if !matches!(self.adapter.as_str(), "edfi-api" | "fint" | "vendor-rest" | "oneroster") {
            return Err(invalid(
                format!("{path}.adapter"),
                format!(
                    "«{}» kan ikke synkroniseres (gyldige: edfi-api, fint, vendor-rest, oneroster)",
                    self.adapter
                ),
            ));
        }
        let base = self.base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("https://") || base.starts_with("http://")) || base.len() < 10 {
            return Err(invalid(
                format!("{path}.base_url"),
                format!("«{}» er ikke en http(s)-adresse", self.base_url),
            ));
        }
        let join = |p: Option<String>, default: &str| {
            let p = p.unwrap_or_else(|| default.to_string());
            format!("{base}/{}", p.trim_start_matches('/'))
        };
        let vendor_profile = if self.adapter == "vendor-rest" {
            let name = self
                .profile
                .as_deref()
                .ok_or_else(|| invalid(format!("{path}.profile"), "mangler (kreves for vendor-rest)"))?;
            let mut p = Profile::load(name).map_err(|e| invalid(format!("{path}.profile"), e.to_string()))?;
            if p.rest.is_none() {
                return Err(invalid(
                    format!("{path}.profile"),
                    format!("«{name}» er en {}-profil, ikke vendor-rest", p.adapter),
                ));
            }
            if let Some(s) = &self.source {
                p.source = s.clone();
            }
            if let (Some(n), Some(rest)) = (self.page_size, p.rest.as_mut()) {
                rest.page_size = n;
            }
            Some(p)
        } else {
            None
        };
        let oauth = |token_url: String| -> Result<(String, String, String), ConfigError> {
            let client_id = self
                .client_id
                .clone()
                .ok_or_else(|| invalid(format!("{path}.client_id"), "mangler"))?;
            let client_secret = secret(
                &format!("{path}.client_secret"),
                self.client_secret_env.as_deref(),
                self.client_secret_file.as_deref(),
            )?;
            Ok((token_url, client_id, client_secret))
        };
        let vendor_auth = vendor_profile
            .as_ref()
            .and_then(|p| p.rest.as_ref())
            .map(|r| r.auth.clone());
        let auth = match vendor_auth {
            Some(RestAuth::None) => Auth::None,
            Some(RestAuth::ApiKey { header }) => Auth::ApiKey {
                header,
                value: secret(
                    &format!("{path}.api_key"),
                    self.api_key_env.as_deref(),
                    self.api_key_file.as_deref(),
                )?,
            },
            Some(RestAuth::OAuth2 { token_path, scope }) => {
                let (token_url, client_id, client_secret) =
                    oauth(join(self.token_path.clone().or(Some(token_path)), "/oauth/token"))?;
                Auth::ClientCredentials {
                    token_url,
                    client_id,
                    client_secret,
                    scope,
                }
            }
            None => {
                let (token_url, client_id, client_secret) = oauth(join(self.token_path.clone(), "/oauth/token"))?;
                match self.grant.as_deref().unwrap_or("client_credentials") {
                    "client_credentials" => Auth::ClientCredentials {
                        token_url,
                        client_id,
                        client_secret,
                        scope: match self.adapter.as_str() {
                            "oneroster" => Some(self.scope.clone().unwrap_or_else(|| ONEROSTER_SCOPE.to_string())),
                            _ => self.scope.clone(),
                        },
                    },
                    "password" => Auth::Password {
                        token_url,
                        client_id,
                        client_secret,
                        username: self.username.clone().ok_or_else(|| {
                            invalid(format!("{path}.username"), "mangler (kreves for grant = \"password\")")
                        })?,
                        password: secret(&format!("{path}.password"), self.password_env.as_deref(), None)?,
                    },
                    other => {
                        return Err(invalid(
                            format!("{path}.grant"),
                            format!("ukjent verdi «{other}» (gyldige: client_credentials, password)"),
                        ));
                    }
                }
            }
        };
        let page_size = self.page_size.unwrap_or(500);
        if !(1..=5000).contains(&page_size) {
            return Err(invalid(format!("{path}.page_size"), "må være mellom 1 og 5000"));
        }
        let lessons_per_day = self.lessons_per_day.unwrap_or(6);
        if !(1..=16).contains(&lessons_per_day) {
            return Err(invalid(format!("{path}.lessons_per_day"), "må være mellom 1 og 16"));
        }
        let attempts = self.attempts.unwrap_or(5);
        if !(1..=20).contains(&attempts) {
            return Err(invalid(format!("{path}.attempts"), "må være mellom 1 og 20"));
        }
        let timeout = self.timeout_seconds.unwrap_or(30);
        if timeout == 0 {
            return Err(invalid(format!("{path}.timeout_seconds"), "må være minst 1"));
        }
        Ok(PullSource {
            name: name.to_string(),
            schools,
            auth,
            retry: RetryPolicy {
                attempts,
                base_delay: Duration::from_millis(self.backoff_ms.unwrap_or(250)),
                max_delay: Duration::from_secs(30),
                timeout: Duration::from_secs(timeout),
            },
            component: if let Some(profile) = vendor_profile {
                PullComponent::VendorRest {
                    base_url: base.clone(),
                    profile,
                }
            } else if self.adapter == "oneroster" {
                if let Some(t) = &self.matrix_template
                    && !t.contains("{username}")
                    && !t.contains("{sourcedId}")
                {
                    return Err(invalid(
                        format!("{path}.matrix_template"),
                        format!("«{t}» bruker verken {{username}} eller {{sourcedId}}"),
                    ));
                }
                PullComponent::OneRoster(OneRosterSettings {
                    rostering_url: join(self.data_path.clone(), "/ims/oneroster/rostering/v1p2"),
                    page_size,
                    matrix_template: self.matrix_template.clone(),
                    matrix_id_field: self.matrix_id_field.clone(),
                    identity: None,
                })
            } else if self.adapter == "fint" {
                let mut profile = Profile::load(self.profile.as_deref().unwrap_or("fint"))
                    .map_err(|e| invalid(format!("{path}.profile"), e.to_string()))?;
                profile.source = self.source.clone().unwrap_or_else(|| name.to_string());
                PullComponent::Fint {
                    settings: FintSettings {
                        resource_url: join(self.resource_path.clone(), "/utdanning/vurdering/fravarsregistrering"),
                        page_size,
                    },
                    profile,
                }
            } else {
                PullComponent::EdfiApi {
                    settings: EdfiApiSettings {
                        data_url: join(self.data_path, "/data/v3"),
                        change_queries_url: join(self.change_queries_path, "/changeQueries/v1"),
                        page_size,
                    },
                    mapping: EdfiMapping {
                        source: self.source.unwrap_or_else(|| name.to_string()),
                        lessons_per_day,
                    },
                }
            },
        })
    }
}

/// Reads `text` and validates the source `name`.
pub fn pull_source(text: &str, name: &str) -> Result<PullSource, ConfigError> {
    let raw: RawAdaptersConfig = parse_toml(text).map_err(|e| invalid(e.path, e.message))?;
    let known = raw.sources.keys().cloned().collect::<Vec<_>>().join(", ");
    let source = raw
        .sources
        .get(name)
        .cloned()
        .ok_or_else(|| ConfigError::UnknownSource(name.to_string(), known))?;
    let path = if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        format!("sources.{name}")
    } else {
        format!("sources.\"{name}\"")
    };
    source.validate(name, &path, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[sources.edfi]\nschools = [\"*\"]\nadapter = \"edfi-api\"\nbase_url = \"http://127.0.0.1:9\"\nclient_id = \"c\"\n";

    #[test]
    fn secrets_come_from_env_or_file_never_toml() {
        let err = pull_source(&format!("{BASE}client_secret = \"hemmelig\"\n"), "edfi").unwrap_err();
        assert!(err.to_string().starts_with("sources.edfi.client_secret:"), "{err}");
        let err = pull_source(BASE, "edfi").unwrap_err();
        assert!(err.to_string().starts_with("sources.edfi.client_secret:"), "{err}");
        let err = pull_source(
            &format!("{BASE}client_secret_env = \"TILSTEDE_TEST_UNSET_VAR\"\n"),
            "edfi",
        )
        .unwrap_err();
        assert!(err.to_string().contains("TILSTEDE_TEST_UNSET_VAR"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "s3cret\n").unwrap();
        let ok = pull_source(&format!("{BASE}client_secret_file = \"{}\"\n", f.display()), "edfi").unwrap();
        assert!(matches!(ok.auth, Auth::ClientCredentials { ref client_secret, .. } if client_secret == "s3cret"));
        let PullComponent::EdfiApi { settings, mapping } = &ok.component else {
            panic!("{:?}", ok.component)
        };
        assert_eq!(settings.data_url, "http://127.0.0.1:9/data/v3");
        assert_eq!(mapping.source, "edfi");
        assert_eq!(ok.component.adapter(), "edfi-api");
    }

    #[test]
    fn bad_settings_name_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "x").unwrap();
        let ok = format!("{BASE}client_secret_file = \"{}\"\n", f.display());
        let cases = [
            (format!("{ok}page_size = 0\n"), "sources.edfi.page_size"),
            (format!("{ok}grant = \"implicit\"\n"), "sources.edfi.grant"),
            (format!("{ok}grant = \"password\"\n"), "sources.edfi.username"),
            (ok.replace("edfi-api", "roster-csv"), "sources.edfi.adapter"),
            (
                format!("{ok}profile = \"nope\"\n").replace("edfi-api", "fint"),
                "sources.edfi.profile",
            ),
            (ok.replace("http://127.0.0.1:9", "ftp://x"), "sources.edfi.base_url"),
            (format!("{ok}wat = 1\n"), "sources.edfi"),
        ];
        for (text, path) in cases {
            let err = pull_source(&text, "edfi").unwrap_err();
            assert!(err.to_string().starts_with(path), "{path}: {err}");
        }
        assert!(matches!(pull_source(&ok, "other"), Err(ConfigError::UnknownSource(..))));
    }

    #[test]
    fn vendor_rest_sources_take_auth_from_the_profile_and_secrets_from_outside() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, "nøkkel\n").unwrap();
        let base = "[sources.vis]\nschools = [\"*\"]\nadapter = \"vendor-rest\"\nbase_url = \"http://127.0.0.1:9\"\n";
        let err = pull_source(base, "vis").unwrap_err();
        assert!(err.to_string().starts_with("sources.vis.profile:"), "{err}");
        let err = pull_source(&format!("{base}profile = \"vis\"\n"), "vis").unwrap_err();
        assert!(err.to_string().contains("vendor-csv"), "{err}");
        let err = pull_source(&format!("{base}profile = \"vis-rest\"\n"), "vis").unwrap_err();
        assert!(err.to_string().starts_with("sources.vis.api_key:"), "{err}");
        let ok = pull_source(
            &format!(
                "{base}profile = \"vis-rest\"\napi_key_file = \"{}\"\npage_size = 7\n",
                f.display()
            ),
            "vis",
        )
        .unwrap();
        assert_eq!(
            ok.auth,
            Auth::ApiKey {
                header: "X-Api-Key".into(),
                value: "nøkkel".into()
            }
        );
        let PullComponent::VendorRest { base_url, profile } = ok.component else {
            panic!("{:?}", ok.component)
        };
        assert_eq!(
            (base_url.as_str(), profile.rest.unwrap().page_size),
            ("http://127.0.0.1:9", 7)
        );
        // OAuth2 profiles need the client id and secret.
        let err = pull_source(&format!("{base}profile = \"flyt-rest\"\n"), "vis").unwrap_err();
        assert!(err.to_string().starts_with("sources.vis.client_id:"), "{err}");
        let ok = pull_source(
            &format!(
                "{base}profile = \"flyt-rest\"\nclient_id = \"c\"\nclient_secret_file = \"{}\"\n",
                f.display()
            ),
            "vis",
        )
        .unwrap();
        assert!(
            matches!(ok.auth, Auth::ClientCredentials { ref token_url, .. } if token_url == "http://127.0.0.1:9/oauth/token")
        );
    }
}
