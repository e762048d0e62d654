//! Source profiles: one TOML file per school system that says how its export
//! maps onto canonical records (columns, value tables, code table). Adding a
//! school system means adding a profile, not code.
//!
//! TOML → [`RawProfile`] (serde) → [`RawProfile::validate`] → [`Profile`];
//! every error names its TOML path.

use crate::config::toml::parse_toml;
use crate::domain::{Kind, Reason, Validity};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Why a profile was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// The TOML could not be read into the expected shape.
    #[error("{path}: {message}")]
    Parse {
        /// TOML path (or `(rot)`), prefixed by the file when known.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A setting has an impossible value.
    #[error("{path}: {message}")]
    Invalid {
        /// TOML path of the setting.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// No shipped profile by that name and no such file.
    #[error("ukjent profil «{0}»: bruk et navn fra `tilstede adapters list` eller en sti til en TOML-fil")]
    Unknown(String),
}

/// Shipped profiles: (name, TOML).
pub const SHIPPED: &[(&str, &str)] = &[
    ("flyt", include_str!("../../adapters/flyt/profile.toml")),
    ("vis", include_str!("../../adapters/vis/profile.toml")),
    ("fint", include_str!("../../adapters/fint/profile.toml")),
    ("flyt-rest", include_str!("../../adapters/flyt/rest.toml")),
    ("vis-rest", include_str!("../../adapters/vis/rest.toml")),
    ("flyt-xml", include_str!("../../adapters/flyt/xml.toml")),
    ("vis-xml", include_str!("../../adapters/vis/xml.toml")),
];

/// The TOML form of a profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    /// Short name.
    pub name: String,
    /// For people.
    #[serde(default)]
    pub description: Option<String>,
    /// The adapter this profile is for (`vendor-csv`).
    pub adapter: String,
    /// Canonical `source` of the records.
    pub source: String,
    /// Lessons in a school day (default 6).
    #[serde(default)]
    pub lessons_per_day: Option<u32>,
    /// CSV dialect.
    #[serde(default)]
    pub csv: RawCsv,
    /// chrono format of dates in JSON and XML (default `%Y-%m-%d`; a longer
    /// timestamp counts by its date part).
    #[serde(default)]
    pub date_format: Option<String>,
    /// Endpoints, auth and paging (vendor-rest).
    #[serde(default)]
    pub rest: Option<super::vendor_rest::RawRest>,
    /// Record element (vendor-xml).
    #[serde(default)]
    pub xml: Option<super::vendor_xml::RawXml>,
    /// Which column holds what (vendor-csv).
    #[serde(default)]
    pub columns: RawColumns,
    /// Another profile (shipped name or path) whose `[kinds]`, `[validity]`
    /// and `[codes]` apply where this one has none: one code table serves a
    /// school system's CSV, XML and REST forms alike.
    #[serde(default)]
    pub tables_from: Option<String>,
    /// Values of the kind column → `day`, `lesson`, `late`, `left`.
    #[serde(default)]
    pub kinds: BTreeMap<String, String>,
    /// Values of the validity column → `valid`, `invalid`, `unclassified`.
    #[serde(default)]
    pub validity: BTreeMap<String, String>,
    /// The source's absence codes.
    #[serde(default)]
    pub codes: BTreeMap<String, RawCode>,
}

/// CSV dialect.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCsv {
    /// One character; when absent it is detected from the header line
    /// (`;` or `,`, `;` when neither is there).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// `utf-8` (default), `windows-1252` or `iso-8859-1`: Visma-style
    /// exports from Windows are often Windows-1252.
    #[serde(default)]
    pub encoding: Option<String>,
    /// chrono format of dates (default `%Y-%m-%d`).
    #[serde(default)]
    pub date_format: Option<String>,
}

/// Column names in the export's header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawColumns {
    /// Record id; when absent the id is derived from `key`.
    #[serde(default)]
    pub id: Option<String>,
    /// Pupil id.
    #[serde(default)]
    pub pupil: String,
    /// School id.
    #[serde(default)]
    pub school: String,
    /// Date.
    #[serde(default)]
    pub date: String,
    /// Kind of absence (mapped by `[kinds]`).
    #[serde(default)]
    pub kind: Option<String>,
    /// Number of lessons.
    #[serde(default)]
    pub lessons: Option<String>,
    /// Minutes late.
    #[serde(default)]
    pub minutes: Option<String>,
    /// Validity (mapped by `[validity]`).
    #[serde(default)]
    pub validity: Option<String>,
    /// The source's absence code (looked up in `[codes]`).
    #[serde(default)]
    pub code: Option<String>,
    /// Version of the record.
    #[serde(default)]
    pub version: Option<String>,
    /// Subject or course code.
    #[serde(default)]
    pub subject: Option<String>,
    /// Lesson of the day: a number or a name such as `2. time`.
    #[serde(default)]
    pub period: Option<String>,
    /// Columns whose values make the natural key when there is no `id`.
    #[serde(default)]
    pub key: Option<Vec<String>>,
}

/// One entry of the code table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCode {
    /// The source's label for the code.
    #[serde(default)]
    pub label: Option<String>,
    /// `record` (default), `skip` (not absence) or `delete` (a tombstone).
    #[serde(default)]
    pub action: Option<String>,
    /// Validity this code implies (overrides the validity column).
    #[serde(default)]
    pub validity: Option<String>,
    /// Coarse reason this code implies.
    #[serde(default)]
    pub reason: Option<String>,
    /// Kind this code implies (overrides the kind column).
    #[serde(default)]
    pub kind: Option<String>,
}

/// What to do with rows carrying a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeAction {
    /// Make a record.
    Record,
    /// Not absence: ignore the row.
    Skip,
    /// The source removed the absence: make a tombstone.
    Delete,
}

/// A validated code table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    /// Label kept as `source_label`.
    pub label: Option<String>,
    /// What to do.
    pub action: CodeAction,
    /// Implied validity.
    pub validity: Option<Validity>,
    /// Implied reason.
    pub reason: Option<Reason>,
    /// Implied kind.
    pub kind: Option<Kind>,
}

/// A validated profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Short name.
    pub name: String,
    /// For people.
    pub description: String,
    /// The adapter.
    pub adapter: String,
    /// Canonical source.
    pub source: String,
    /// Lessons per day.
    pub lessons_per_day: u32,
    /// CSV delimiter byte; `None`: detected from the header line.
    pub delimiter: Option<u8>,
    /// The CSV file's character encoding.
    pub encoding: super::vendor_csv::TextEncoding,
    /// chrono date format.
    pub date_format: String,
    /// Columns.
    pub columns: RawColumns,
    /// Kind values.
    pub kinds: BTreeMap<String, Kind>,
    /// Validity values.
    pub validity: BTreeMap<String, Validity>,
    /// Code table.
    pub codes: BTreeMap<String, Code>,
    /// Endpoints, auth and paging (vendor-rest).
    pub rest: Option<super::vendor_rest::RestLayout>,
    /// Record element (vendor-xml).
    pub xml: Option<super::vendor_xml::XmlLayout>,
}

pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> ProfileError {
    ProfileError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

fn parse_kind(path: String, s: &str) -> Result<Kind, ProfileError> {
    Kind::parse(s).ok_or_else(|| invalid(path, format!("ukjent verdi «{s}» (gyldige: day, lesson, late, left)")))
}

fn parse_validity(path: String, s: &str) -> Result<Validity, ProfileError> {
    Validity::parse(s).ok_or_else(|| {
        invalid(
            path,
            format!("ukjent verdi «{s}» (gyldige: valid, invalid, unclassified)"),
        )
    })
}

fn parse_reason(path: String, s: &str) -> Result<Reason, ProfileError> {
    Reason::parse(s).ok_or_else(|| {
        invalid(
            path,
            format!("ukjent verdi «{s}» (gyldige: illness, leave, circumstances, other)"),
        )
    })
}

/// Quotes a TOML key when it is not a bare key.
fn key(k: &str) -> String {
    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        k.to_string()
    } else {
        format!("\"{k}\"")
    }
}

/// Validates a code table; errors name `codes.KEY.FIELD`.
pub fn validate_codes(codes: &BTreeMap<String, RawCode>) -> Result<BTreeMap<String, Code>, ProfileError> {
    let mut out = BTreeMap::new();
    for (k, c) in codes {
        let path = format!("codes.{}", key(k));
        let action = match c.action.as_deref() {
            None | Some("record") => CodeAction::Record,
            Some("skip") => CodeAction::Skip,
            Some("delete") => CodeAction::Delete,
            Some(other) => {
                return Err(invalid(
                    format!("{path}.action"),
                    format!("ukjent verdi «{other}» (gyldige: record, skip, delete)"),
                ));
            }
        };
        out.insert(
            k.clone(),
            Code {
                label: c.label.clone(),
                action,
                validity: c
                    .validity
                    .as_deref()
                    .map(|v| parse_validity(format!("{path}.validity"), v))
                    .transpose()?,
                reason: c
                    .reason
                    .as_deref()
                    .map(|v| parse_reason(format!("{path}.reason"), v))
                    .transpose()?,
                kind: c
                    .kind
                    .as_deref()
                    .map(|v| parse_kind(format!("{path}.kind"), v))
                    .transpose()?,
            },
        );
    }
    Ok(out)
}

impl RawProfile {
    /// Checks every setting.
    pub fn validate(mut self) -> Result<Profile, ProfileError> {
        if let Some(parent) = self.tables_from.take() {
            let raw = read_raw(&parent).map_err(|e| invalid("tables_from", e.to_string()))?;
            if raw.tables_from.is_some() {
                return Err(invalid(
                    "tables_from",
                    format!("«{parent}» arver selv tabeller; bare ett ledd er lov"),
                ));
            }
            // Validated on its own first, so its errors name its own paths.
            raw.clone()
                .validate()
                .map_err(|e| invalid("tables_from", format!("«{parent}»: {e}")))?;
            if self.kinds.is_empty() {
                self.kinds = raw.kinds;
            }
            if self.validity.is_empty() {
                self.validity = raw.validity;
            }
            if self.codes.is_empty() {
                self.codes = raw.codes;
            }
        }
        if !matches!(
            self.adapter.as_str(),
            "vendor-csv" | "vendor-rest" | "vendor-xml" | "fint"
        ) {
            return Err(invalid(
                "adapter",
                format!(
                    "«{}» støttes ikke (gyldige: vendor-csv, vendor-rest, vendor-xml, fint)",
                    self.adapter
                ),
            ));
        }
        if self.adapter != "fint" {
            for (field, value) in [
                ("pupil", &self.columns.pupil),
                ("school", &self.columns.school),
                ("date", &self.columns.date),
            ] {
                if value.is_empty() {
                    return Err(invalid(
                        format!("columns.{field}"),
                        format!("mangler (kreves for {})", self.adapter),
                    ));
                }
            }
        }
        let rest = match (self.adapter.as_str(), self.rest) {
            ("vendor-rest", Some(r)) => Some(r.validate()?),
            ("vendor-rest", None) => return Err(invalid("rest", "mangler (kreves for vendor-rest)")),
            (_, Some(_)) => return Err(invalid("rest", "brukes bare av vendor-rest")),
            (_, None) => None,
        };
        let xml = match (self.adapter.as_str(), self.xml) {
            ("vendor-xml", Some(x)) => Some(x.validate()?),
            ("vendor-xml", None) => return Err(invalid("xml", "mangler (kreves for vendor-xml)")),
            (_, Some(_)) => return Err(invalid("xml", "brukes bare av vendor-xml")),
            (_, None) => None,
        };

        if self.source.trim().is_empty() {
            return Err(invalid("source", "kan ikke være tom"));
        }
        let lessons_per_day = self.lessons_per_day.unwrap_or(6);
        if !(1..=16).contains(&lessons_per_day) {
            return Err(invalid("lessons_per_day", "må være mellom 1 og 16"));
        }
        let delimiter = match self.csv.delimiter.as_deref() {
            None => None,
            Some(d) if d.len() == 1 => Some(d.as_bytes()[0]),
            Some(d) => return Err(invalid("csv.delimiter", format!("«{d}» må være ett ASCII-tegn"))),
        };
        let encoding = match self.csv.encoding.as_deref() {
            None => super::vendor_csv::TextEncoding::Utf8,
            Some(e) => super::vendor_csv::TextEncoding::parse(e).ok_or_else(|| {
                invalid(
                    "csv.encoding",
                    format!("ukjent verdi «{e}» (gyldige: utf-8, windows-1252, iso-8859-1)"),
                )
            })?,
        };
        let (date_format, date_path) = match (self.csv.date_format, self.date_format) {
            (Some(_), Some(_)) => {
                return Err(invalid("date_format", "står også i [csv]; bruk bare én av dem"));
            }
            (Some(f), None) => (f, "csv.date_format"),
            (None, Some(f)) => (f, "date_format"),
            (None, None) => ("%Y-%m-%d".to_string(), "date_format"),
        };
        // A format that cannot print a date cannot parse one either.
        if chrono::NaiveDate::from_ymd_opt(2026, 3, 2)
            .map(|d| {
                use std::fmt::Write;
                let mut s = String::new();
                write!(s, "{}", d.format(&date_format)).is_err()
            })
            .unwrap_or(true)
        {
            return Err(invalid(
                date_path,
                format!("«{date_format}» er ikke et gyldig datoformat"),
            ));
        }
        if self.columns.id.is_none() && self.columns.key.as_ref().is_some_and(Vec::is_empty) {
            return Err(invalid("columns.key", "må ha minst én kolonne"));
        }
        if self.columns.kind.is_some() && self.kinds.is_empty() {
            return Err(invalid("kinds", "columns.kind er satt, men tabellen [kinds] mangler"));
        }
        if self.columns.validity.is_some() && self.validity.is_empty() {
            return Err(invalid(
                "validity",
                "columns.validity er satt, men tabellen [validity] mangler",
            ));
        }
        if self.columns.code.is_some() && self.codes.is_empty() {
            return Err(invalid("codes", "columns.code er satt, men tabellen [codes] mangler"));
        }
        let kinds = self
            .kinds
            .iter()
            .map(|(k, v)| Ok((k.clone(), parse_kind(format!("kinds.{}", key(k)), v)?)))
            .collect::<Result<_, ProfileError>>()?;
        let validity = self
            .validity
            .iter()
            .map(|(k, v)| Ok((k.clone(), parse_validity(format!("validity.{}", key(k)), v)?)))
            .collect::<Result<_, ProfileError>>()?;
        let codes = validate_codes(&self.codes)?;
        Ok(Profile {
            name: self.name,
            description: self.description.unwrap_or_default(),
            adapter: self.adapter,
            source: self.source,
            lessons_per_day,
            delimiter,
            encoding,
            date_format,
            columns: self.columns,
            kinds,
            validity,
            codes,
            rest,
            xml,
        })
    }
}

impl Profile {
    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Profile, ProfileError> {
        let raw: RawProfile = parse_toml(text).map_err(|e| ProfileError::Parse {
            path: e.path,
            message: e.message,
        })?;
        raw.validate()
    }

    /// A shipped profile by name, or else a TOML file at that path.
    pub fn load(name_or_path: &str) -> Result<Profile, ProfileError> {
        read_raw(name_or_path)?.validate().map_err(|e| located(name_or_path, e))
    }
}

/// The TOML form of a shipped profile or a file.
fn read_raw(name_or_path: &str) -> Result<RawProfile, ProfileError> {
    let parse = |text: &str| {
        parse_toml::<RawProfile>(text).map_err(|e| ProfileError::Parse {
            path: e.path,
            message: e.message,
        })
    };
    if let Some((_, text)) = SHIPPED.iter().find(|(n, _)| *n == name_or_path) {
        return parse(text);
    }
    let text = std::fs::read_to_string(name_or_path).map_err(|_| ProfileError::Unknown(name_or_path.to_string()))?;
    parse(&text).map_err(|e| located(name_or_path, e))
}

/// Prefixes an error's TOML path with the file it is in (not for shipped profiles).
fn located(name_or_path: &str, e: ProfileError) -> ProfileError {
    if SHIPPED.iter().any(|(n, _)| *n == name_or_path) {
        return e;
    }
    match e {
        ProfileError::Parse { path, message } => ProfileError::Parse {
            path: format!("{name_or_path}: {path}"),
            message,
        },
        ProfileError::Invalid { path, message } => ProfileError::Invalid {
            path: format!("{name_or_path}: {path}"),
            message,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_profiles_validate() {
        for (name, _) in SHIPPED {
            let p = Profile::load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&p.name, name);
        }
    }

    #[test]
    fn errors_name_the_toml_path() {
        let base = "name = \"x\"\nadapter = \"vendor-csv\"\nsource = \"x\"\n[columns]\npupil = \"a\"\nschool = \"b\"\ndate = \"c\"\ncode = \"k\"\n";
        let cases = [
            (format!("{base}[codes.X]\nvalidity = \"ok\"\n"), "codes.X.validity"),
            (
                format!("{base}[codes.\"§\"]\naction = \"drop\"\n"),
                "codes.\"§\".action",
            ),
            (format!("{base}[codes.D]\nreason = \"flu\"\n"), "codes.D.reason"),
            (base.to_string(), "codes"),
            (format!("{base}[codes.D]\nlabel = 3\n"), "codes.D.label"),
            (format!("{base}[csv]\ndelimiter = \";;\"\n[codes.D]\n"), "csv.delimiter"),
            (format!("{base}[codes.D]\nwat = 1\n"), "codes.D"),
        ];
        for (text, path) in cases {
            let err = Profile::from_toml(&text).unwrap_err();
            assert!(err.to_string().starts_with(path), "{path}: {err}");
        }
        let err = Profile::from_toml(&base.replace("vendor-csv", "fax")).unwrap_err();
        assert!(err.to_string().starts_with("adapter"), "{err}");
    }

    #[test]
    fn tables_come_from_one_other_profile() {
        let base = "name = \"x\"\nadapter = \"vendor-csv\"\nsource = \"x\"\n[columns]\npupil = \"a\"\nschool = \"b\"\ndate = \"c\"\ncode = \"k\"\n";
        let p = Profile::from_toml(&format!("tables_from = \"vis\"\n{base}")).unwrap();
        assert_eq!(p.codes, Profile::load("vis").unwrap().codes);
        // Its own table wins over the inherited one.
        let p = Profile::from_toml(&format!(
            "tables_from = \"vis\"\n{base}[codes.Z]\nvalidity = \"valid\"\n"
        ))
        .unwrap();
        assert_eq!(p.codes.keys().collect::<Vec<_>>(), ["Z"]);
        let err = Profile::from_toml(&format!("tables_from = \"nope\"\n{base}")).unwrap_err();
        assert!(err.to_string().starts_with("tables_from:"), "{err}");
        let err = Profile::from_toml(&format!("tables_from = \"vis-rest\"\n{base}")).unwrap_err();
        assert!(err.to_string().contains("bare ett ledd"), "{err}");
    }
}
