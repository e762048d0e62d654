//! The profile mapping shared by the vendor adapters: one source record seen
//! as named fields (CSV columns, JSON paths, XML element/attribute paths)
//! becomes a canonical record through the profile's `[columns]`, `[kinds]`,
//! `[validity]` and `[codes]` tables. The field names in `[columns]` mean
//! whatever the adapter's [`Fields`] says they mean.

use super::profile::{CodeAction, Profile};
use crate::domain::record::period_from_name;
use crate::domain::{AbsenceRecord, Fault, Kind, RejectCode, Validity};
use chrono::{Datelike, NaiveDate};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// One source record as named fields.
pub trait Fields {
    /// The text of field `name`; `None` when it is missing or empty.
    fn get(&self, name: &str) -> Option<Cow<'_, str>>;
}

/// Maps one source record; `Ok(None)` when its code says it is not absence.
/// A fault names the profile's field (column, path), never its value.
pub fn map_fields(p: &Profile, f: &dyn Fields) -> Result<Option<AbsenceRecord>, Fault> {
    let c = &p.columns;
    let get = |name: &str| f.get(name).filter(|v| !v.is_empty());
    let need = |name: &str| get(name).ok_or_else(|| Fault::new(RejectCode::MissingField, name));
    let code_text = c.code.as_deref().and_then(get);
    let code = match &code_text {
        None => None,
        Some(v) => Some((
            v.as_ref(),
            p.codes.get(v.as_ref()).ok_or_else(|| {
                Fault::new(RejectCode::UnknownCode, c.code.as_deref().unwrap_or_default())
                    .with_limit("ikke i profilens [codes]")
            })?,
        )),
    };
    if matches!(code, Some((_, e)) if e.action == CodeAction::Skip) {
        return Ok(None);
    }
    let id = match &c.id {
        Some(name) => need(name)?.into_owned(),
        None => {
            let mut d = Sha256::new();
            for name in key_fields(p) {
                d.update(f.get(name).unwrap_or_default().as_bytes());
                d.update([0u8]);
            }
            format!("{}-{}", p.source, &hex::encode(d.finalize())[..24])
        }
    };
    let version = match c.version.as_deref().and_then(get) {
        None => 1,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| Fault::new(RejectCode::BadNumber, c.version.as_deref().unwrap_or_default()))?,
    };
    let mut extensions = Map::new();
    if let Some((v, entry)) = code {
        extensions.insert("source_code".into(), Value::String(v.to_string()));
        if let Some(l) = &entry.label {
            extensions.insert("source_label".into(), Value::String(l.clone()));
        }
    }
    let subject = c.subject.as_deref().and_then(get).map(Cow::into_owned);
    let period_text = c.period.as_deref().and_then(get);
    let period = period_text.as_deref().and_then(period_from_name);
    if let (Some(name), None) = (&period_text, period) {
        // A period without a lesson number is kept by its name.
        extensions.insert("period_name".into(), Value::String(name.to_string()));
    }
    let date_text = need(&c.date)?;
    let date = NaiveDate::parse_from_str(&date_text, &p.date_format)
        // Timestamps from APIs: the date part is what counts.
        .or_else(|e| match date_text.get(..10) {
            Some(head) if date_text.len() > 10 && p.date_format == "%Y-%m-%d" => {
                NaiveDate::parse_from_str(head, "%Y-%m-%d")
            }
            _ => Err(e),
        })
        .ok()
        // chrono's %Y takes signed and long years ("-6"); a date is a
        // four-digit year, as everywhere else in tilstede (found by fuzzing).
        .filter(|d| (0..=9999).contains(&d.year()))
        .ok_or_else(|| {
            Fault::new(RejectCode::BadDate, c.date.as_str()).with_limit(format!("formen {}", p.date_format))
        })?;
    // A removal needs only the key; the rest is filled for the shape.
    let removed = AbsenceRecord {
        source: p.source.clone(),
        id,
        version: version.into(),
        pupil: need(&c.pupil)?.into_owned(),
        school: need(&c.school)?.into_owned(),
        date,
        kind: Kind::Day,
        lessons: 1,
        minutes: None,
        validity: Validity::Unclassified,
        reason: None,
        deleted: true,
        subject,
        period,
        extensions,
    };
    if matches!(code, Some((_, e)) if e.action == CodeAction::Delete) {
        return Ok(Some(removed));
    }
    let kind = match (code.and_then(|(_, e)| e.kind), c.kind.as_deref()) {
        (Some(k), _) => k,
        (None, Some(name)) => {
            let v = need(name)?;
            *p.kinds
                .get(v.as_ref())
                .ok_or_else(|| Fault::new(RejectCode::UnknownCode, name).with_limit("ikke i profilens [kinds]"))?
        }
        (None, None) => Kind::Day,
    };
    let number = |name: Option<&str>| -> Result<Option<u32>, Fault> {
        let Some(name) = name else { return Ok(None) };
        match get(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<u32>()
                .map(Some)
                .map_err(|_| Fault::new(RejectCode::BadNumber, name)),
        }
    };
    let lessons = match kind {
        Kind::Lesson => number(c.lessons.as_deref())?.unwrap_or(1),
        _ => 1,
    };
    if lessons == 0 {
        return Err(Fault::new(RejectCode::OutOfRange, c.lessons.as_deref().unwrap_or_default()).with_limit("minst 1"));
    }
    let minutes = if kind == Kind::Late {
        number(c.minutes.as_deref())?
    } else {
        None
    };
    let validity = match (code.and_then(|(_, e)| e.validity), c.validity.as_deref()) {
        (Some(v), _) => v,
        (None, Some(name)) => match get(name) {
            None => Validity::Unclassified,
            Some(v) => *p
                .validity
                .get(v.as_ref())
                .ok_or_else(|| Fault::new(RejectCode::UnknownCode, name).with_limit("ikke i profilens [validity]"))?,
        },
        (None, None) => Validity::Unclassified,
    };
    Ok(Some(AbsenceRecord {
        kind,
        lessons,
        minutes,
        validity,
        reason: code.and_then(|(_, e)| e.reason),
        deleted: false,
        ..removed
    }))
}

/// The fields whose values make the record id when the profile names no
/// `id`: `columns.key`, or else pupil, school, date, kind and code.
pub fn key_fields(p: &Profile) -> Vec<&str> {
    let c = &p.columns;
    match &c.key {
        Some(cols) => cols.iter().map(String::as_str).collect(),
        None => [
            Some(c.pupil.as_str()),
            Some(c.school.as_str()),
            Some(c.date.as_str()),
            c.kind.as_deref(),
            c.code.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect(),
    }
}

/// Every field the profile reads: (TOML path, field name).
pub fn used_fields(p: &Profile) -> Vec<(&'static str, &str)> {
    let c = &p.columns;
    let mut out = vec![
        ("columns.pupil", c.pupil.as_str()),
        ("columns.school", c.school.as_str()),
        ("columns.date", c.date.as_str()),
    ];
    for (path, v) in [
        ("columns.id", &c.id),
        ("columns.kind", &c.kind),
        ("columns.lessons", &c.lessons),
        ("columns.minutes", &c.minutes),
        ("columns.validity", &c.validity),
        ("columns.code", &c.code),
        ("columns.version", &c.version),
        ("columns.subject", &c.subject),
        ("columns.period", &c.period),
    ] {
        if let Some(v) = v {
            out.push((path, v.as_str()));
        }
    }
    if c.id.is_none() {
        out.extend(key_fields(p).into_iter().map(|k| ("columns.key", k)));
    }
    out
}

/// The value at a dotted JSON path (`elev.id`, `data.items`, `links.0.href`);
/// the empty path is the value itself.
pub fn json_at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(v);
    }
    path.split('.').try_fold(v, |v, part| match v {
        Value::Object(m) => m.get(part),
        Value::Array(a) => a.get(part.parse::<usize>().ok()?),
        _ => None,
    })
}

/// A JSON scalar as field text; objects, arrays and null count as missing.
pub fn json_text(v: Option<&Value>) -> Option<Cow<'_, str>> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(Cow::Borrowed(s.trim())),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

/// A JSON object read through dotted paths.
pub struct JsonFields<'a>(pub &'a Value);

impl Fields for JsonFields<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        json_text(json_at(self.0, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_paths_reach_nested_values() {
        let v = json!({"elev": {"id": 7, "navn": " "}, "links": [{"href": "x"}]});
        assert_eq!(json_text(json_at(&v, "elev.id")).as_deref(), Some("7"));
        assert_eq!(json_text(json_at(&v, "links.0.href")).as_deref(), Some("x"));
        assert_eq!(json_text(json_at(&v, "elev.navn")), None);
        assert_eq!(json_at(&v, "elev.id.x"), None);
        assert_eq!(json_at(&v, ""), Some(&v));
    }
}
