//! Matrix configuration: TOML → [`RawMatrixConfig`] → [`RawMatrixConfig::validate`]
//! → [`MatrixConfig`]. Errors name the TOML path.

use serde::Deserialize;
use std::path::PathBuf;

/// Why a Matrix configuration was rejected.
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

/// The `[matrix]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatrixConfig {
    /// Base URL of the homeserver's client API.
    pub homeserver: String,
    /// The bot's user id (`@tilstede:kommune.no`).
    pub user: String,
    /// Environment variable holding the bot's password (it is read at start,
    /// never stored in the TOML). Default `TILSTEDE_MATRIX_PASSWORD`.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A file holding the bot's password instead (read at start).
    #[serde(default)]
    pub password_file: Option<String>,
    /// Where the session, the encrypted-state store and the recovery key live.
    pub store_dir: PathBuf,
    /// Who is alerted when something is wrong with a room (user ids).
    #[serde(default)]
    pub admins: Vec<String>,
    /// Allow posting into unencrypted rooms. Only for tests.
    #[serde(default)]
    pub allow_unencrypted: bool,
    /// Other homeservers whose users may be invited into case rooms
    /// (federated fagkoordinators). The bot's own server is always allowed.
    #[serde(default)]
    pub allowed_servers: Vec<String>,
    /// One ressursteam room per school.
    #[serde(default)]
    pub schools: Vec<RawSchoolRoom>,
}

/// One `[[matrix.schools]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchoolRoom {
    /// The school's id in the roster.
    pub school: String,
    /// The room name (must not hold personal data; the school's name is fine).
    pub name: String,
    /// The ressursteam members (user ids) invited to the room.
    #[serde(default)]
    pub members: Vec<String>,
}

/// A validated Matrix configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixConfig {
    /// Base URL of the homeserver.
    pub homeserver: String,
    /// The bot's full user id.
    pub user: String,
    /// The environment variable with the password.
    pub password_env: String,
    /// The bot's state directory.
    pub store_dir: PathBuf,
    /// Admins to alert.
    pub admins: Vec<String>,
    /// Whether unencrypted rooms are acceptable (tests only).
    pub allow_unencrypted: bool,
    /// Homeservers allowed in case rooms besides the bot's own.
    pub allowed_servers: Vec<String>,
    /// Ressursteam rooms.
    pub schools: Vec<SchoolRoom>,
}

/// A validated ressursteam room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchoolRoom {
    /// The school id.
    pub school: String,
    /// The room name.
    pub name: String,
    /// Members to invite.
    pub members: Vec<String>,
}

fn user_id(path: String, value: &str) -> Result<String, ConfigError> {
    matrix_sdk::ruma::UserId::parse(value)
        .map(|u| u.to_string())
        .map_err(|_| ConfigError::Invalid {
            path,
            message: format!("«{value}» er ikke en Matrix-bruker (@navn:tjener)"),
        })
}

impl RawMatrixConfig {
    /// Reads the TOML text of a `[matrix]` table (the table's contents).
    pub fn from_toml(text: &str) -> Result<RawMatrixConfig, ConfigError> {
        crate::config::toml::parse_toml(text).map_err(|e| ConfigError::Parse {
            path: if e.path == "(rot)" {
                e.path
            } else {
                format!("matrix.{}", e.path)
            },
            message: e.message,
        })
    }

    /// Checks every setting.
    pub fn validate(self) -> Result<MatrixConfig, ConfigError> {
        let url = self.homeserver.trim_end_matches('/');
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < 10 {
            return Err(ConfigError::Invalid {
                path: "matrix.homeserver".into(),
                message: format!("«{}» er ingen http(s)-adresse", self.homeserver),
            });
        }
        let user = user_id("matrix.user".into(), &self.user)?;
        let admins = self
            .admins
            .iter()
            .enumerate()
            .map(|(i, a)| user_id(format!("matrix.admins[{i}]"), a))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, server) in self.allowed_servers.iter().enumerate() {
            let ok = !server.is_empty()
                && server
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
            if !ok {
                return Err(ConfigError::Invalid {
                    path: format!("matrix.allowed_servers[{i}]"),
                    message: format!("«{server}» er ikke et tjenernavn (f.eks. helse.kommune.no)"),
                });
            }
        }
        let mut schools = Vec::new();
        for (i, s) in self.schools.iter().enumerate() {
            if s.school.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    path: format!("matrix.schools[{i}].school"),
                    message: "skole-id mangler".into(),
                });
            }
            if schools.iter().any(|o: &SchoolRoom| o.school == s.school) {
                return Err(ConfigError::Invalid {
                    path: format!("matrix.schools[{i}].school"),
                    message: format!("skolen «{}» har alt et rom", s.school),
                });
            }
            let members = s
                .members
                .iter()
                .enumerate()
                .map(|(j, m)| user_id(format!("matrix.schools[{i}].members[{j}]"), m))
                .collect::<Result<Vec<_>, _>>()?;
            schools.push(SchoolRoom {
                school: s.school.clone(),
                name: s.name.clone(),
                members,
            });
        }
        Ok(MatrixConfig {
            homeserver: url.to_string(),
            user,
            password_env: self.password_env.unwrap_or_else(|| "TILSTEDE_MATRIX_PASSWORD".into()),
            store_dir: self.store_dir,
            admins,
            allow_unencrypted: self.allow_unencrypted,
            allowed_servers: self.allowed_servers,
            schools,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
homeserver = "https://matrix.kommune.no/"
user = "@tilstede:kommune.no"
store_dir = "/var/lib/tilstede/matrix"
admins = ["@it:kommune.no"]
[[schools]]
school = "sk-01"
name = "Ressursteam Eksempel skole"
members = ["@kari:kommune.no", "@ola:kommune.no"]
"#;

    #[test]
    fn a_good_config_validates() {
        let c = RawMatrixConfig::from_toml(GOOD).unwrap().validate().unwrap();
        assert_eq!(c.homeserver, "https://matrix.kommune.no");
        assert_eq!(c.password_env, "TILSTEDE_MATRIX_PASSWORD");
        assert!(!c.allow_unencrypted);
        assert_eq!(c.schools[0].members.len(), 2);
    }

    #[test]
    fn errors_name_the_toml_path() {
        let bad = GOOD.replace("@ola:kommune.no", "ola");
        let e = RawMatrixConfig::from_toml(&bad).unwrap().validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "matrix.schools[0].members[1]: «ola» er ikke en Matrix-bruker (@navn:tjener)"
        );
        let bad = GOOD.replace("store_dir", "stor_dir");
        let e = RawMatrixConfig::from_toml(&bad).unwrap_err();
        assert!(e.to_string().contains("stor_dir"), "{e}");
        let bad = GOOD.replace("https://matrix.kommune.no/", "matrix.kommune.no");
        let e = RawMatrixConfig::from_toml(&bad).unwrap().validate().unwrap_err();
        assert!(e.to_string().starts_with("matrix.homeserver: "), "{e}");
        let bad = format!("{GOOD}\n[[schools]]\nschool = \"sk-01\"\nname = \"x\"\n");
        let e = RawMatrixConfig::from_toml(&bad).unwrap().validate().unwrap_err();
        assert!(e.to_string().starts_with("matrix.schools[1].school: "), "{e}");
    }
}
