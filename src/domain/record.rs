//! The canonical absence record and its strict JSON reading.
//!
//! JSON Lines of these records is tilstede's interchange format (see
//! `schemas/absence-record.schema.json`). Reading is done by hand instead of by
//! `serde` derive so that every error names the offending field.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// What kind of absence event a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A whole day of absence (dagsfravær).
    Day,
    /// One or more single lessons (enkelttimer / timesfravær).
    Lesson,
    /// Late arrival (forsentkomming).
    Late,
    /// Arrived at school, then left (forlater skolen).
    Left,
}

impl Kind {
    /// All kinds, in canonical order.
    pub const ALL: [Kind; 4] = [Kind::Day, Kind::Lesson, Kind::Late, Kind::Left];

    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Day => "day",
            Kind::Lesson => "lesson",
            Kind::Late => "late",
            Kind::Left => "left",
        }
    }

    /// Parses the canonical spelling.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Whether the school has classified the absence as valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Validity {
    /// Gyldig fravær: illness, granted leave, circumstances beyond control.
    Valid,
    /// Ugyldig fravær.
    Invalid,
    /// Not yet classified. The routine treats this as invalid until classified.
    Unclassified,
}

impl Validity {
    /// All validities, in canonical order.
    pub const ALL: [Validity; 3] = [Validity::Valid, Validity::Invalid, Validity::Unclassified];

    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Validity::Valid => "valid",
            Validity::Invalid => "invalid",
            Validity::Unclassified => "unclassified",
        }
    }

    /// Parses the canonical spelling.
    pub fn parse(s: &str) -> Option<Validity> {
        Validity::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The coarse reason for an absence. Never more detailed than this: health
/// details stay in the source system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// Sykdom.
    Illness,
    /// Permisjon granted by the school.
    Leave,
    /// Circumstances the pupil and parents cannot control.
    Circumstances,
    /// Anything else.
    Other,
}

impl Reason {
    /// All reasons, in canonical order.
    pub const ALL: [Reason; 4] = [Reason::Illness, Reason::Leave, Reason::Circumstances, Reason::Other];

    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Illness => "illness",
            Reason::Leave => "leave",
            Reason::Circumstances => "circumstances",
            Reason::Other => "other",
        }
    }

    /// Parses the canonical spelling.
    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The identity of a record: unique per source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordKey {
    /// The source system the record came from.
    pub source: String,
    /// The record's id within that source.
    pub id: String,
}

/// One canonical absence record.
///
/// A tombstone (`deleted = true`) needs only `source`, `id` and `version`; its
/// other fields may be empty because the store keeps the fields of the record
/// it removes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AbsenceRecord {
    /// Source system id.
    pub source: String,
    /// Record id, unique within `source`.
    pub id: String,
    /// Version; the highest version of (source, id) wins. Wider than any
    /// stamp needs, so that no version a source sends (such as 2^32 − 1)
    /// pins a record beyond the reach of a later correction; plausibility
    /// bounds it (see [`super::plausibility::MAX_VERSION`]).
    pub version: u64,
    /// Pupil id as known to the sources (never a national identity number).
    /// Empty only in a tombstone that did not name it, and then left out of
    /// the JSON form, which reads back the same (found by fuzzing).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pupil: String,
    /// School id (empty, and left out, as `pupil`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub school: String,
    /// The school day (Europe/Oslo); a tombstone without one is left out.
    #[serde(skip_serializing_if = "is_no_date")]
    pub date: NaiveDate,
    /// What happened.
    pub kind: Kind,
    /// Number of lessons for `kind = lesson`; 1 otherwise.
    pub lessons: u32,
    /// Minutes late, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minutes: Option<u32>,
    /// Classification by the school.
    pub validity: Validity,
    /// Coarse reason, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// A tombstone that removes the record.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The subject or course code as the source names it (Ed-Fi
    /// LocalCourseCode, FINT fag, SIF TimeTableSubjectRefId), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The 1-based lesson of the school day (the first one, for a record of
    /// several lessons), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<u8>,
    /// Extension fields kept as they came (e.g. `source_code`, `source_label`).
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
}

/// A record that could not be read, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The line is not JSON at all.
    #[error("ugyldig JSON: {0}")]
    Json(String),
    /// The JSON is not an object.
    #[error("posten må være et JSON-objekt")]
    NotAnObject,
    /// A required field is absent.
    #[error("feltet «{0}» mangler")]
    Missing(&'static str),
    /// A field has the wrong JSON type or an impossible value.
    #[error("feltet «{field}»: {message}")]
    Invalid {
        /// The reason code.
        code: super::RejectCode,
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl RecordError {
    /// The field at fault, if the error concerns one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            RecordError::Missing(f) => Some(f),
            RecordError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl RecordError {
    /// The rejection's code and field, without the input's values (the
    /// message may quote them; this never does).
    pub fn fault(&self) -> super::Fault {
        use super::{Fault, RejectCode};
        match self {
            RecordError::Json(_) | RecordError::NotAnObject => Fault::whole(RejectCode::MalformedJson),
            RecordError::Missing(f) => Fault::new(RejectCode::MissingField, *f),
            RecordError::Invalid { code, field, .. } => Fault::new(*code, *field),
        }
    }
}

fn invalid(code: super::RejectCode, field: &'static str, message: impl Into<String>) -> RecordError {
    RecordError::Invalid {
        code,
        field,
        message: message.into(),
    }
}

/// The date of a tombstone that did not say which day it removes.
const NO_DATE: NaiveDate = NaiveDate::MIN;

/// Whether `d` is the placeholder of a tombstone without a date.
fn is_no_date(d: &NaiveDate) -> bool {
    *d == NO_DATE
}

impl AbsenceRecord {
    /// Its identity.
    pub fn key(&self) -> RecordKey {
        RecordKey {
            source: self.source.clone(),
            id: self.id.clone(),
        }
    }

    /// Lessons this record stands for, counting a whole day as
    /// `lessons_per_day` lessons. Late and left records stand for none.
    pub fn lesson_count(&self, lessons_per_day: u32) -> u32 {
        match self.kind {
            Kind::Day => lessons_per_day,
            Kind::Lesson => self.lessons,
            Kind::Late | Kind::Left => 0,
        }
    }

    /// Whether `self` replaces `current` when both have the same key: a higher
    /// version wins; at the same version only a tombstone replaces a live
    /// record (a delete is idempotent and sources rarely bump versions for it).
    pub fn supersedes(&self, current: &AbsenceRecord) -> bool {
        supersedes(self.version, self.deleted, current.version, current.deleted)
    }

    /// Reads one JSON line.
    pub fn from_json_str(line: &str) -> Result<AbsenceRecord, RecordError> {
        let value =
            super::plausibility::json_without_duplicate_keys(line).map_err(|e| RecordError::Json(e.to_string()))?;
        AbsenceRecord::from_json(value)
    }

    /// Reads a record from a JSON value, checking every field.
    pub fn from_json(value: Value) -> Result<AbsenceRecord, RecordError> {
        let Value::Object(mut map) = value else {
            return Err(RecordError::NotAnObject);
        };
        let source = take_string(&mut map, "source")?.ok_or(RecordError::Missing("source"))?;
        let id = take_string(&mut map, "id")?.ok_or(RecordError::Missing("id"))?;
        let version = match take_version(&mut map)? {
            None => 1,
            Some(0) => {
                return Err(invalid(
                    super::RejectCode::OutOfRange,
                    "version",
                    "må være 1 eller høyere",
                ));
            }
            Some(v) => v,
        };
        let deleted = match map.remove("deleted") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(other) => {
                return Err(invalid(
                    super::RejectCode::BadValue,
                    "deleted",
                    format!("må være true eller false, ikke {other}"),
                ));
            }
        };
        // A tombstone may omit what it removes.
        let required = |field: &'static str, v: Option<String>| match v {
            Some(v) => Ok(v),
            None if deleted => Ok(String::new()),
            None => Err(RecordError::Missing(field)),
        };
        let pupil = required("pupil", take_string(&mut map, "pupil")?)?;
        let school = required("school", take_string(&mut map, "school")?)?;
        let date = match take_string(&mut map, "date")? {
            Some(s) => parse_date(&s).map_err(|m| invalid(super::RejectCode::BadDate, "date", m))?,
            None if deleted => NO_DATE,
            None => return Err(RecordError::Missing("date")),
        };
        let kind = match take_string(&mut map, "kind")? {
            Some(s) => Kind::parse(&s).ok_or_else(|| {
                invalid(
                    super::RejectCode::UnknownCode,
                    "kind",
                    format!("ukjent verdi «{s}» (gyldige: day, lesson, late, left)"),
                )
            })?,
            None if deleted => Kind::Day,
            None => return Err(RecordError::Missing("kind")),
        };
        let lessons = match take_uint(&mut map, "lessons")? {
            None => 1,
            Some(0) => {
                return Err(invalid(
                    super::RejectCode::OutOfRange,
                    "lessons",
                    "må være 1 eller høyere",
                ));
            }
            Some(n) => n,
        };
        let minutes = take_uint(&mut map, "minutes")?;
        let validity = match take_string(&mut map, "validity")? {
            None => Validity::Unclassified,
            Some(s) => Validity::parse(&s).ok_or_else(|| {
                invalid(
                    super::RejectCode::UnknownCode,
                    "validity",
                    format!("ukjent verdi «{s}» (gyldige: valid, invalid, unclassified)"),
                )
            })?,
        };
        let reason = match take_string(&mut map, "reason")? {
            None => None,
            Some(s) => Some(Reason::parse(&s).ok_or_else(|| {
                invalid(
                    super::RejectCode::UnknownCode,
                    "reason",
                    format!("ukjent verdi «{s}» (gyldige: illness, leave, circumstances, other)"),
                )
            })?),
        };
        let subject = take_string(&mut map, "subject")?;
        let period = match take_uint(&mut map, "period")? {
            None => None,
            Some(n) => Some(
                u8::try_from(n)
                    .ok()
                    .filter(|p| (1..=MAX_PERIOD).contains(p))
                    .ok_or_else(|| {
                        invalid(
                            super::RejectCode::OutOfRange,
                            "period",
                            format!("må være en time på dagen, 1–{MAX_PERIOD}, ikke {n}"),
                        )
                    })?,
            ),
        };
        let lessons = if kind == Kind::Lesson { lessons } else { 1 };
        Ok(AbsenceRecord {
            source,
            id,
            version,
            pupil,
            school,
            date,
            kind,
            lessons,
            minutes,
            validity,
            reason,
            deleted,
            subject,
            period,
            extensions: map,
        })
    }

    /// The record as one JSON line (without a newline).
    pub fn to_json_line(&self) -> String {
        // Serializing plain data into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The version rule of [`AbsenceRecord::supersedes`] on bare values, so the
/// store can apply the same rule.
pub fn supersedes(new_version: u64, new_deleted: bool, old_version: u64, old_deleted: bool) -> bool {
    new_version > old_version || (new_version == old_version && new_deleted && !old_deleted)
}

/// The highest lesson number of a school day a record may name.
pub const MAX_PERIOD: u8 = 20;

/// The lesson number in a period name as sources write it: `2`, `2. time`,
/// `Period 2`, `P2`, `3rd period`, `andre time`. `None` when the name holds
/// no single number in 1..=[`MAX_PERIOD`] (say, `08:15-09:00` or `Blokk A`).
pub fn period_from_name(name: &str) -> Option<u8> {
    const ORDINALS: [&str; 10] = [
        "første", "andre", "tredje", "fjerde", "femte", "sjette", "sjuende", "åttende", "niende", "tiende",
    ];
    let mut runs = name.split(|c: char| !c.is_ascii_digit()).filter(|run| !run.is_empty());
    let n = match (runs.next(), runs.next()) {
        (Some(run), None) => run.parse::<u8>().ok()?,
        (None, _) => {
            let lower = name.to_lowercase();
            let word = lower.split(|c: char| !c.is_alphanumeric()).find(|w| !w.is_empty())?;
            let i = ORDINALS.iter().position(|o| *o == word)?;
            u8::try_from(i + 1).ok()?
        }
        _ => return None,
    };
    Some(n).filter(|n| (1..=MAX_PERIOD).contains(n))
}

/// Parses a strict `YYYY-MM-DD` date.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape_ok {
        return Err(format!("«{s}» er ikke en dato på formen ÅÅÅÅ-MM-DD"));
    }
    // The shape is checked: every other byte is a digit.
    let number = |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |n, c| n * 10 + u32::from(c - b'0'));
    NaiveDate::from_ymd_opt(number(0..4) as i32, number(5..7), number(8..10))
        .ok_or_else(|| format!("«{s}» er en umulig dato"))
}

fn take_string(map: &mut Map<String, Value>, field: &'static str) -> Result<Option<String>, RecordError> {
    match map.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(invalid(super::RejectCode::MissingField, field, "kan ikke være tom"))
        }
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(invalid(
            super::RejectCode::BadValue,
            field,
            format!("må være en tekst, ikke {}", json_type(&other)),
        )),
    }
}

fn take_uint(map: &mut Map<String, Value>, field: &'static str) -> Result<Option<u32>, RecordError> {
    match map.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Ok(Some(n)),
            None => Err(invalid(
                super::RejectCode::BadNumber,
                field,
                format!("må være et heltall ≥ 0, ikke {n}"),
            )),
        },
        Some(other) => Err(invalid(
            super::RejectCode::BadNumber,
            field,
            format!("må være et heltall, ikke {}", json_type(&other)),
        )),
    }
}

/// The version: a whole number the store can hold (a signed 64-bit column).
fn take_version(map: &mut Map<String, Value>) -> Result<Option<u64>, RecordError> {
    match map.remove("version") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64().filter(|v| i64::try_from(*v).is_ok()) {
            Some(n) => Ok(Some(n)),
            None => Err(invalid(
                super::RejectCode::BadNumber,
                "version",
                format!("må være et heltall ≥ 0, ikke {n}"),
            )),
        },
        Some(other) => Err(invalid(
            super::RejectCode::BadNumber,
            "version",
            format!("må være et heltall, ikke {}", json_type(&other)),
        )),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "en sannhetsverdi",
        Value::Number(_) => "et tall",
        Value::String(_) => "en tekst",
        Value::Array(_) => "en liste",
        Value::Object(_) => "et objekt",
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.source, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<AbsenceRecord, RecordError> {
        AbsenceRecord::from_json_str(s)
    }

    #[test]
    fn minimal_record_gets_defaults() {
        let r = parse(r#"{"source":"s","id":"1","pupil":"p","school":"k","date":"2026-03-02","kind":"day"}"#).unwrap();
        assert_eq!(r.version, 1);
        assert_eq!(r.validity, Validity::Unclassified);
        assert_eq!(r.lessons, 1);
        assert!(!r.deleted);
        assert!(r.reason.is_none());
    }

    #[test]
    fn extensions_are_kept_and_written_back() {
        let line = r#"{"source":"s","id":"1","pupil":"p","school":"k","date":"2026-03-02","kind":"lesson","lessons":2,"validity":"valid","reason":"illness","source_code":"S","source_label":"Sykdom"}"#;
        let r = parse(line).unwrap();
        assert_eq!(r.extensions["source_code"], "S");
        let again = parse(&r.to_json_line()).unwrap();
        assert_eq!(r, again);
    }

    #[test]
    fn errors_name_the_field() {
        let base = r#""source":"s","id":"1","pupil":"p","school":"k""#;
        let cases = [
            (format!(r#"{{{base},"date":"2026-02-30","kind":"day"}}"#), "date"),
            (format!(r#"{{{base},"date":"2026-2-3","kind":"day"}}"#), "date"),
            (format!(r#"{{{base},"date":"2026-02-03","kind":"week"}}"#), "kind"),
            (
                format!(r#"{{{base},"date":"2026-02-03","kind":"day","validity":"ok"}}"#),
                "validity",
            ),
            (
                format!(r#"{{{base},"date":"2026-02-03","kind":"day","reason":"flu"}}"#),
                "reason",
            ),
            (
                format!(r#"{{{base},"date":"2026-02-03","kind":"lesson","lessons":0}}"#),
                "lessons",
            ),
            (
                format!(r#"{{{base},"date":"2026-02-03","kind":"day","version":0}}"#),
                "version",
            ),
            (
                format!(r#"{{{base},"date":"2026-02-03","kind":"day","version":"2"}}"#),
                "version",
            ),
            (format!(r#"{{{base},"kind":"day"}}"#), "date"),
            (
                r#"{"source":"s","id":"1","school":"k","date":"2026-02-03","kind":"day"}"#.to_string(),
                "pupil",
            ),
            (
                r#"{"source":"s","pupil":"p","school":"k","date":"2026-02-03","kind":"day"}"#.to_string(),
                "id",
            ),
        ];
        for (line, field) in cases {
            let err = parse(&line).unwrap_err();
            assert_eq!(err.field(), Some(field), "{line}: {err}");
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn not_json_is_reported() {
        assert!(matches!(parse("{oops"), Err(RecordError::Json(_))));
        assert_eq!(parse("[1]"), Err(RecordError::NotAnObject));
    }

    #[test]
    fn subject_and_period_are_read_and_written_back() {
        let line = r#"{"source":"s","id":"1","pupil":"p","school":"k","date":"2026-03-02","kind":"lesson","subject":"MAT","period":3}"#;
        let r = parse(line).unwrap();
        assert_eq!((r.subject.as_deref(), r.period), (Some("MAT"), Some(3)));
        assert!(r.extensions.is_empty());
        assert_eq!(parse(&r.to_json_line()).unwrap(), r);
        let plain =
            parse(r#"{"source":"s","id":"1","pupil":"p","school":"k","date":"2026-03-02","kind":"day"}"#).unwrap();
        assert!(!plain.to_json_line().contains("subject") && !plain.to_json_line().contains("period"));
        for bad in [
            r#""period":0"#,
            r#""period":21"#,
            r#""period":"2""#,
            r#""subject":"""#,
            r#""subject":7"#,
        ] {
            let line = format!(
                r#"{{"source":"s","id":"1","pupil":"p","school":"k","date":"2026-03-02","kind":"lesson",{bad}}}"#
            );
            let field = parse(&line).unwrap_err().field();
            assert!(matches!(field, Some("period" | "subject")), "{line}: {field:?}");
        }
    }

    #[test]
    fn period_names_give_their_lesson_number() {
        for (name, want) in [
            ("2", Some(2)),
            ("2. time", Some(2)),
            ("Period 2", Some(2)),
            ("P6", Some(6)),
            ("3rd period", Some(3)),
            ("Andre time", Some(2)),
            ("tiende", Some(10)),
            ("08:15-09:00", None),
            ("Blokk A", None),
            ("0", None),
            ("99", None),
            ("", None),
        ] {
            assert_eq!(period_from_name(name), want, "{name}");
        }
    }

    #[test]
    fn tombstone_needs_only_key() {
        let r = parse(r#"{"source":"s","id":"1","version":3,"deleted":true}"#).unwrap();
        assert!(r.deleted);
        // The JSON form of a bare tombstone reads back the same.
        assert_eq!(parse(&r.to_json_line()).unwrap(), r, "{}", r.to_json_line());
        let r = parse(r#"{"source":"s","id":"1","version":3,"deleted":true,"pupil":"p"}"#).unwrap();
        assert_eq!(parse(&r.to_json_line()).unwrap(), r, "{}", r.to_json_line());
        assert_eq!(r.version, 3);
    }

    #[test]
    fn version_rule() {
        assert!(supersedes(2, false, 1, false));
        assert!(!supersedes(1, false, 1, false));
        assert!(!supersedes(1, false, 2, true));
        assert!(supersedes(1, true, 1, false));
        assert!(!supersedes(1, true, 1, true));
        assert!(!supersedes(1, false, 1, true));
    }
}
