//! Plausibility: pure checks that a well-formed record is also a believable
//! one, before it may reach the store and the rules. A school system does
//! not report 4,294,967,295 lessons on one day, absence in the year 9999, or
//! a version that no later correction could ever beat; such a record is
//! quarantined with the field named, like any other bad input.
//!
//! Also here: reading JSON that refuses duplicate keys (a record with two
//! `validity` fields has no single meaning), and making text safe to print
//! on a terminal (ids come from outside and may carry escape sequences).

use super::record::AbsenceRecord;
use chrono::NaiveDate;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// The highest version a record may carry: the largest integer every JSON
/// implementation reads exactly (2^53), so a version survives a round trip
/// through any sender's JSON library.
pub const MAX_VERSION: u64 = 1 << 53;

/// The bounds a record must stay within. Configurable in the service config
/// (`[plausibility]`); the defaults fit any school year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The most lessons one record may stand for (a school day has fewer).
    pub max_lessons: u32,
    /// The most minutes one late arrival may stand for.
    pub max_minutes: u32,
    /// How far back a record's date may lie, in days before today: the
    /// retention keeps the current and the previous school year, so older
    /// absence has no use.
    pub days_back: u32,
    /// How far ahead a record's date may lie, in days after today (planned
    /// leave is registered ahead of time).
    pub days_ahead: u32,
    /// The highest version (at most [`MAX_VERSION`]).
    pub max_version: u64,
}

impl Default for Bounds {
    fn default() -> Bounds {
        Bounds {
            max_lessons: 16,
            max_minutes: 600,
            days_back: 3 * 366,
            days_ahead: 366,
            max_version: MAX_VERSION,
        }
    }
}

/// Why a record is not plausible; each names its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Implausible {
    /// More lessons than a school day has.
    #[error("feltet «lessons»: {found} timer i én post er ikke troverdig (høyst {max})")]
    Lessons {
        /// The value given.
        found: u32,
        /// The bound.
        max: u32,
    },
    /// Implausibly many minutes late.
    #[error("feltet «minutes»: {found} minutter er ikke troverdig (høyst {max})")]
    Minutes {
        /// The value given.
        found: u32,
        /// The bound.
        max: u32,
    },
    /// A date outside the window around today.
    #[error("feltet «date»: {found} ligger utenfor det som tas imot ({from} til {to})")]
    Date {
        /// The date given.
        found: NaiveDate,
        /// The first date accepted.
        from: NaiveDate,
        /// The last date accepted.
        to: NaiveDate,
    },
    /// A version no later correction could beat.
    #[error("feltet «version»: {found} er større enn høyeste tillatte versjon {max}")]
    Version {
        /// The version given.
        found: u64,
        /// The bound.
        max: u64,
    },
    /// Control characters in an identifier.
    #[error("feltet «{field}»: inneholder kontrolltegn")]
    ControlCharacters {
        /// The field.
        field: &'static str,
    },
}

impl Implausible {
    /// The rejection's code, field and the bound broken; never the value
    /// found.
    pub fn fault(&self) -> super::Fault {
        use super::{Fault, RejectCode};
        match self {
            Implausible::Lessons { max, .. } | Implausible::Minutes { max, .. } => {
                Fault::new(RejectCode::OutOfRange, self.field()).with_limit(format!("høyst {max}"))
            }
            Implausible::Date { from, to, .. } => {
                Fault::new(RejectCode::OutOfRange, "date").with_limit(format!("fra {from} til {to}"))
            }
            Implausible::Version { max, .. } => {
                Fault::new(RejectCode::OutOfRange, "version").with_limit(format!("høyst {max}"))
            }
            Implausible::ControlCharacters { field } => Fault::new(RejectCode::ControlCharacters, *field),
        }
    }

    /// The field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            Implausible::Lessons { .. } => "lessons",
            Implausible::Minutes { .. } => "minutes",
            Implausible::Date { .. } => "date",
            Implausible::Version { .. } => "version",
            Implausible::ControlCharacters { field } => field,
        }
    }
}

/// Checks `r` against `bounds` on the school day `today`. A tombstone that
/// names no date is checked for its identifiers and version only.
pub fn check(r: &AbsenceRecord, bounds: &Bounds, today: NaiveDate) -> Result<(), Implausible> {
    for (field, value) in [
        ("source", &r.source),
        ("id", &r.id),
        ("pupil", &r.pupil),
        ("school", &r.school),
    ] {
        if value.chars().any(char::is_control) {
            return Err(Implausible::ControlCharacters { field });
        }
    }
    if r.version > bounds.max_version {
        return Err(Implausible::Version {
            found: r.version,
            max: bounds.max_version,
        });
    }
    if r.lessons > bounds.max_lessons {
        return Err(Implausible::Lessons {
            found: r.lessons,
            max: bounds.max_lessons,
        });
    }
    if let Some(m) = r.minutes
        && m > bounds.max_minutes
    {
        return Err(Implausible::Minutes {
            found: m,
            max: bounds.max_minutes,
        });
    }
    if r.deleted && r.date == NaiveDate::MIN {
        return Ok(());
    }
    let from = today
        .checked_sub_days(chrono::Days::new(u64::from(bounds.days_back)))
        .unwrap_or(NaiveDate::MIN);
    let to = today
        .checked_add_days(chrono::Days::new(u64::from(bounds.days_ahead)))
        .unwrap_or(NaiveDate::MAX);
    if r.date < from || r.date > to {
        return Err(Implausible::Date {
            found: r.date,
            from,
            to,
        });
    }
    Ok(())
}

/// Text made safe for a terminal: control characters (escape sequences,
/// carriage returns, bells, …) are shown as `\u{…}` escapes instead of
/// being obeyed. Borrowed when there is nothing to replace.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Like [`printable`], but keeps line breaks and tabs (for multi-line
/// text such as messages).
pub fn printable_text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Cow::Borrowed(s);
    }
    s.split('\n')
        .map(|line| line.split('\t').map(printable).collect::<Vec<_>>().join("\t"))
        .collect::<Vec<_>>()
        .join("\n")
        .into()
}

/// Reads JSON like `serde_json::from_str::<Value>`, but refuses an object
/// that has the same key twice (at any depth), naming the key.
pub fn json_without_duplicate_keys(text: &str) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = StrictValue::deserialize(&mut de)?.0;
    de.end()?;
    Ok(value)
}

/// A JSON value read by a visitor that checks object keys as they come.
struct StrictValue(Value);

impl StrictValue {
    fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<StrictValue, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

impl<'de> de::Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StrictValue, D::Error> {
        StrictValue::deserialize(d)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<StrictValue, E> {
        Ok(StrictValue(
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }
    fn visit_str<E>(self, v: &str) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }
    fn visit_none<E>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<StrictValue, D::Error> {
        StrictValue::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(StrictValue(Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictValue, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "feltet «{}» forekommer to ganger",
                    printable(&key)
                )));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(StrictValue(Value::Object(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(extra: &str) -> AbsenceRecord {
        AbsenceRecord::from_json_str(&format!(
            r#"{{"source":"s","id":"1","pupil":"p","school":"k","kind":"lesson","validity":"invalid"{extra}}}"#
        ))
        .unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn plausible_records_pass_and_each_bound_names_its_field() {
        let today = day("2026-12-06");
        let b = Bounds::default();
        assert_eq!(check(&record(r#","date":"2026-12-04","lessons":3"#), &b, today), Ok(()));
        let field = |extra: &str| check(&record(extra), &b, today).unwrap_err().field();
        assert_eq!(field(r#","date":"2026-12-04","lessons":4294967295"#), "lessons");
        assert_eq!(field(r#","date":"0000-01-01""#), "date");
        assert_eq!(field(r#","date":"9999-12-31""#), "date");
        assert_eq!(field(r#","date":"2026-12-04","version":9007199254740993"#), "version");
        assert_eq!(field(r#","date":"2026-12-04","minutes":100000"#), "minutes");
        // Three school years back and one ahead are fine.
        assert_eq!(check(&record(r#","date":"2024-08-15""#), &b, today), Ok(()));
        assert_eq!(check(&record(r#","date":"2027-06-20""#), &b, today), Ok(()));
        // Tighter bounds are honoured.
        let tight = Bounds {
            max_lessons: 8,
            days_back: 30,
            ..Bounds::default()
        };
        assert!(check(&record(r#","date":"2026-12-04","lessons":9"#), &tight, today).is_err());
        assert!(check(&record(r#","date":"2026-10-01""#), &tight, today).is_err());
    }

    #[test]
    fn control_characters_in_ids_are_refused_and_never_printed() {
        let today = day("2026-12-06");
        let r = AbsenceRecord::from_json_str(
            r#"{"source":"s","id":"x\u001b[2J","pupil":"p","school":"k","date":"2026-12-04","kind":"day"}"#,
        )
        .unwrap();
        let e = check(&r, &Bounds::default(), today).unwrap_err();
        assert_eq!(e.field(), "id");
        assert!(!e.to_string().contains('\u{1b}'));
        assert_eq!(printable("x\u{1b}[2J\r"), "x\\u{1b}[2J\\u{d}");
        assert!(matches!(printable("elev-01"), Cow::Borrowed(_)));
        assert_eq!(printable_text("a\tb\nc\u{7}"), "a\tb\nc\\u{7}");
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert!(json_without_duplicate_keys(r#"{"a":1,"b":[1,{"c":null}],"d":1.5}"#).is_ok());
        let e = json_without_duplicate_keys(r#"{"validity":"valid","validity":"invalid"}"#).unwrap_err();
        assert!(e.to_string().contains("«validity» forekommer to ganger"), "{e}");
        assert!(json_without_duplicate_keys(r#"{"x":{"k":1,"k":2}}"#).is_err());
        assert!(json_without_duplicate_keys(r#"{"a":1} trailing"#).is_err());
        assert_eq!(
            json_without_duplicate_keys(r#"{"n":18446744073709551615,"m":-1}"#).unwrap(),
            serde_json::json!({"n": 18446744073709551615u64, "m": -1})
        );
    }
}
