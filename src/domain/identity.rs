//! The identity map: one child in two school systems. IT names, per source,
//! the roster column that carries an identifier every system shares (a
//! Feide id, or the national id). tilstede never keeps that identifier:
//! on arrival it becomes an identity token, an HMAC-SHA256 of the kind and
//! the normalised value under a key of the installation's own. Two sources'
//! pupils with the same token are one child; the token tells nobody without
//! the key who the child is, and the national id itself is never stored.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Which shared identifier a column carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    /// A Feide id (eduPersonPrincipalName, e.g. `ola123@skole.kommune.no`).
    Feide,
    /// The national id (fødselsnummer or D-nummer, 11 digits).
    NationalId,
}

impl IdentityKind {
    /// The kind's name in the config.
    pub fn name(self) -> &'static str {
        match self {
            IdentityKind::Feide => "feide",
            IdentityKind::NationalId => "national-id",
        }
    }

    /// The kind named `name` in the config.
    pub fn parse(name: &str) -> Option<IdentityKind> {
        match name {
            "feide" => Some(IdentityKind::Feide),
            "national-id" => Some(IdentityKind::NationalId),
            _ => None,
        }
    }

    /// `raw` in its one spelling, or why it is no identifier of this kind.
    /// The message never repeats the value.
    pub fn normalise(self, raw: &str) -> Result<String, String> {
        match self {
            IdentityKind::Feide => {
                let v = raw.trim();
                if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err("en Feide-id kan ikke ha mellomrom eller kontrolltegn".into());
                }
                Ok(v.to_lowercase())
            }
            IdentityKind::NationalId => {
                let v: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
                if v.len() != 11 || !v.chars().all(|c| c.is_ascii_digit()) {
                    return Err("et fødselsnummer har 11 sifre".into());
                }
                Ok(v)
            }
        }
    }
}

/// Where a source's roster carries the shared identifier, with the key
/// that turns it into a token.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityColumn {
    /// Which identifier.
    pub kind: IdentityKind,
    /// The roster's column (CSV header) or user field (OneRoster, dotted path).
    pub column: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for IdentityColumn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityColumn")
            .field("kind", &self.kind)
            .field("column", &self.column)
            .field("key", &"***")
            .finish()
    }
}

impl IdentityColumn {
    /// A column of `kind` named `column`, hashed with `key`.
    pub fn new(kind: IdentityKind, column: impl Into<String>, key: &[u8]) -> IdentityColumn {
        IdentityColumn {
            kind,
            column: column.into(),
            key: key.to_vec(),
        }
    }

    /// The identity token of `raw`: lowercase hex of HMAC-SHA256 under the
    /// installation's key of `KIND:VALUE`, so a Feide id and a national id
    /// never meet. `Ok(None)` for an empty value (the pupil is not linked).
    pub fn token(&self, raw: &str) -> Result<Option<String>, String> {
        if raw.trim().is_empty() {
            return Ok(None);
        }
        let value = self.kind.normalise(raw)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(self.kind.name().as_bytes());
        mac.update(b":");
        mac.update(value.as_bytes());
        Ok(Some(hex::encode(mac.finalize().into_bytes())))
    }
}

/// One pupil of a source's roster with the token of the identifier it
/// shares with other sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PupilIdentity {
    /// The source's local id of the pupil.
    pub local: String,
    /// The school the roster puts the pupil in.
    pub school: String,
    /// The identity token ([`IdentityColumn::token`]).
    pub token: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_keyed_normalised_and_kind_apart() {
        let key = [7u8; 32];
        let feide = IdentityColumn::new(IdentityKind::Feide, "feide", &key);
        let a = feide.token(" Ola123@Skole.no ").unwrap().unwrap();
        assert_eq!(a, feide.token("ola123@skole.no").unwrap().unwrap());
        assert_eq!(a.len(), 64);
        assert!(!a.contains("ola"));
        let other_key = IdentityColumn::new(IdentityKind::Feide, "feide", &[8u8; 32]);
        assert_ne!(a, other_key.token("ola123@skole.no").unwrap().unwrap());
        let nin = IdentityColumn::new(IdentityKind::NationalId, "fnr", &key);
        let n = nin.token("010101 12345").unwrap().unwrap();
        assert_eq!(n, nin.token("01010112345").unwrap().unwrap());
        let as_feide = feide.token("01010112345").unwrap().unwrap();
        assert_ne!(n, as_feide, "the kind is part of the token");
        assert_eq!(feide.token("  ").unwrap(), None);
    }

    #[test]
    fn malformed_values_are_refused_without_repeating_them() {
        let nin = IdentityColumn::new(IdentityKind::NationalId, "fnr", &[1; 32]);
        let e = nin.token("0101011234").unwrap_err();
        assert!(!e.contains("0101011234"), "{e}");
        assert!(nin.token("0101011234x").is_err());
        let feide = IdentityColumn::new(IdentityKind::Feide, "feide", &[1; 32]);
        assert!(feide.token("ola nordmann@x").is_err());
        assert!(format!("{nin:?}").contains("***"));
    }
}
