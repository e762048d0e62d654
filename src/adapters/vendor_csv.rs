//! `vendor-csv`: a school system's CSV export, mapped by a [`Profile`].

use super::Parsed;
use super::profile::{CodeAction, Profile};
use crate::domain::{AbsenceRecord, Kind, Validity};
use crate::store::QuarantineEntry;
use chrono::NaiveDate;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::io::{self, Read};

/// Streams canonical items out of a vendor CSV export.
pub struct VendorCsvReader<R: Read> {
    csv: csv::Reader<R>,
    profile: Profile,
    location: String,
    header: Option<Result<Header, String>>,
    row: csv::StringRecord,
    failed: bool,
}

/// Column positions resolved from the header.
struct Header {
    names: Vec<String>,
    id: Option<usize>,
    pupil: usize,
    school: usize,
    date: usize,
    kind: Option<usize>,
    lessons: Option<usize>,
    minutes: Option<usize>,
    validity: Option<usize>,
    code: Option<usize>,
    version: Option<usize>,
    key: Vec<usize>,
}

impl<R: Read> VendorCsvReader<R> {
    /// Reads `input` with `profile`; `location` names it in errors.
    pub fn new(input: R, location: impl Into<String>, profile: Profile) -> VendorCsvReader<R> {
        let csv = csv::ReaderBuilder::new()
            .delimiter(profile.delimiter)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(input);
        VendorCsvReader {
            csv,
            profile,
            location: location.into(),
            header: None,
            row: csv::StringRecord::new(),
            failed: false,
        }
    }

    fn header(&mut self) -> Result<Header, String> {
        let headers = self.csv.headers().map_err(|e| e.to_string())?.clone();
        // A UTF-8 BOM (common in exports from Windows tools) is not part of the name.
        let names: Vec<String> = headers
            .iter()
            .enumerate()
            .map(|(i, h)| if i == 0 { h.trim_start_matches('\u{feff}') } else { h }.to_string())
            .collect();
        let find = |col: &str, field: &str| -> Result<usize, String> {
            names
                .iter()
                .position(|n| n == col)
                .ok_or_else(|| format!("kolonnen «{col}» (profilens columns.{field}) finnes ikke i overskriftslinjen"))
        };
        let opt = |col: &Option<String>, field: &str| col.as_deref().map(|c| find(c, field)).transpose();
        let c = &self.profile.columns;
        let key = match (&c.id, &c.key) {
            (Some(_), _) => Vec::new(),
            (None, Some(cols)) => cols.iter().map(|k| find(k, "key")).collect::<Result<_, _>>()?,
            (None, None) => [
                Some(&c.pupil),
                Some(&c.school),
                Some(&c.date),
                c.kind.as_ref(),
                c.code.as_ref(),
            ]
            .into_iter()
            .flatten()
            .map(|k| find(k, "key"))
            .collect::<Result<_, _>>()?,
        };
        Ok(Header {
            id: opt(&c.id, "id")?,
            pupil: find(&c.pupil, "pupil")?,
            school: find(&c.school, "school")?,
            date: find(&c.date, "date")?,
            kind: opt(&c.kind, "kind")?,
            lessons: opt(&c.lessons, "lessons")?,
            minutes: opt(&c.minutes, "minutes")?,
            validity: opt(&c.validity, "validity")?,
            code: opt(&c.code, "code")?,
            version: opt(&c.version, "version")?,
            key,
            names,
        })
    }
}

/// Maps one CSV row; `Ok(None)` for rows that are not absence.
fn map_row(p: &Profile, h: &Header, row: &csv::StringRecord) -> Result<Option<AbsenceRecord>, String> {
    let get = |i: usize| row.get(i).filter(|v| !v.is_empty());
    let need = |i: usize| get(i).ok_or_else(|| format!("kolonnen «{}» er tom", h.names[i]));
    let code = match h.code.and_then(get) {
        None => None,
        Some(c) => Some((
            c,
            p.codes.get(c).ok_or_else(|| {
                format!(
                    "kolonnen «{}»: ukjent kode «{c}» (ikke i profilens [codes])",
                    h.names[h.code.unwrap_or(0)]
                )
            })?,
        )),
    };
    if matches!(code, Some((_, c)) if c.action == CodeAction::Skip) {
        return Ok(None);
    }
    let id = match h.id {
        Some(i) => need(i)?.to_string(),
        None => {
            let mut d = Sha256::new();
            for &i in &h.key {
                d.update(row.get(i).unwrap_or("").as_bytes());
                d.update([0u8]);
            }
            format!("{}-{}", p.source, &hex::encode(d.finalize())[..24])
        }
    };
    let version = match h.version.and_then(get) {
        None => 1,
        Some(v) => v.parse::<u32>().ok().filter(|v| *v > 0).ok_or_else(|| {
            format!(
                "kolonnen «{}»: «{v}» er ikke et versjonsnummer",
                h.names[h.version.unwrap_or(0)]
            )
        })?,
    };
    let mut extensions = Map::new();
    if let Some((c, entry)) = code {
        extensions.insert("source_code".into(), Value::String(c.to_string()));
        if let Some(l) = &entry.label {
            extensions.insert("source_label".into(), Value::String(l.clone()));
        }
    }
    let date_text = need(h.date)?;
    let date = NaiveDate::parse_from_str(date_text, &p.date_format).map_err(|_| {
        format!(
            "kolonnen «{}»: «{date_text}» er ikke en dato på formen {}",
            h.names[h.date], p.date_format
        )
    })?;
    if matches!(code, Some((_, c)) if c.action == CodeAction::Delete) {
        return Ok(Some(AbsenceRecord {
            source: p.source.clone(),
            id,
            version,
            pupil: need(h.pupil)?.to_string(),
            school: need(h.school)?.to_string(),
            date,
            kind: Kind::Day,
            lessons: 1,
            minutes: None,
            validity: Validity::Unclassified,
            reason: None,
            deleted: true,
            extensions,
        }));
    }
    let kind = match (code.and_then(|(_, c)| c.kind), h.kind) {
        (Some(k), _) => k,
        (None, Some(i)) => {
            let v = need(i)?;
            *p.kinds.get(v).ok_or_else(|| {
                format!(
                    "kolonnen «{}»: ukjent verdi «{v}» (ikke i profilens [kinds])",
                    h.names[i]
                )
            })?
        }
        (None, None) => Kind::Day,
    };
    let number = |col: Option<usize>| -> Result<Option<u32>, String> {
        match col.and_then(get) {
            None => Ok(None),
            Some(v) => v
                .parse::<u32>()
                .map(Some)
                .map_err(|_| format!("kolonnen «{}»: «{v}» er ikke et heltall", h.names[col.unwrap_or(0)])),
        }
    };
    let lessons = match kind {
        Kind::Lesson => number(h.lessons)?.unwrap_or(1),
        _ => 1,
    };
    if lessons == 0 {
        return Err(format!(
            "kolonnen «{}»: antall timer må være minst 1",
            h.names[h.lessons.unwrap_or(0)]
        ));
    }
    let minutes = if kind == Kind::Late { number(h.minutes)? } else { None };
    let validity = match (code.and_then(|(_, c)| c.validity), h.validity) {
        (Some(v), _) => v,
        (None, Some(i)) => match get(i) {
            None => Validity::Unclassified,
            Some(v) => *p.validity.get(v).ok_or_else(|| {
                format!(
                    "kolonnen «{}»: ukjent verdi «{v}» (ikke i profilens [validity])",
                    h.names[i]
                )
            })?,
        },
        (None, None) => Validity::Unclassified,
    };
    Ok(Some(AbsenceRecord {
        source: p.source.clone(),
        id,
        version,
        pupil: need(h.pupil)?.to_string(),
        school: need(h.school)?.to_string(),
        date,
        kind,
        lessons,
        minutes,
        validity,
        reason: code.and_then(|(_, c)| c.reason),
        deleted: false,
        extensions,
    }))
}

impl<R: Read> Iterator for VendorCsvReader<R> {
    type Item = io::Result<Parsed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.header.is_none() {
            let h = self.header();
            self.header = Some(h);
        }
        if let Some(Err(e)) = &self.header {
            self.failed = true;
            return Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}:1: {e}", self.location),
            )));
        }
        loop {
            match self.csv.read_record(&mut self.row) {
                Ok(false) => return None,
                Ok(true) => {}
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    match e.kind() {
                        // A bad byte sequence spoils one row, not the file.
                        csv::ErrorKind::Utf8 { .. } => {
                            return Some(Ok(Parsed::Rejected(QuarantineEntry {
                                source: Some(self.profile.source.clone()),
                                location: format!("{}:{line}", self.location),
                                reason: "ikke gyldig UTF-8".into(),
                                raw: String::new(),
                            })));
                        }
                        _ => {
                            self.failed = true;
                            return Some(Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("{}:{line}: {e}", self.location),
                            )));
                        }
                    }
                }
            }
            if self.row.iter().all(str::is_empty) {
                continue;
            }
            let Some(Ok(header)) = &self.header else { return None };
            let line = self.row.position().map(|p| p.line()).unwrap_or(0);
            match map_row(&self.profile, header, &self.row) {
                Ok(None) => continue,
                Ok(Some(r)) => return Some(Ok(Parsed::Record(r))),
                Err(reason) => {
                    let delim = (self.profile.delimiter as char).to_string();
                    return Some(Ok(Parsed::Rejected(QuarantineEntry {
                        source: Some(self.profile.source.clone()),
                        location: format!("{}:{line}", self.location),
                        reason,
                        raw: self.row.iter().collect::<Vec<_>>().join(&delim),
                    })));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Reason;

    fn read(profile: &str, text: &str) -> Vec<Parsed> {
        let p = Profile::load(profile).unwrap();
        VendorCsvReader::new(text.as_bytes(), "f.csv", p)
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn flyt_rows_map_through_the_profile() {
        let text = "Fravær-ID;Elev-ID;Skole-ID;Dato;Fraværstype;Antall timer;Minutter;Dokumentasjon;Årsak\n\
1;e1;s1;02.03.2026;Dagsfravær;;;Dokumentert;sykdom\n\
2;e1;s1;03.03.2026;Timesfravær;2;;Udokumentert;annet\n\
3;e2;s1;03.03.2026;Forsentkomming;;15;;\n\
4;e2;s1;31.02.2026;Dagsfravær;;;Dokumentert;sykdom\n\
5;e2;s1;04.03.2026;Dagsfravær;;;Dokumentert;influensa\n\
6;e3;s1;05.03.2026;Timesfravær;1;;Dokumentert;permisjon\n";
        let got = read("flyt", text);
        assert_eq!(got.len(), 6);
        let Parsed::Record(a) = &got[0] else { panic!() };
        assert_eq!(
            (a.kind, a.validity, a.reason),
            (Kind::Day, Validity::Valid, Some(Reason::Illness))
        );
        assert_eq!(a.extensions["source_code"], "sykdom");
        assert_eq!(a.extensions["source_label"], "Sykdom");
        let Parsed::Record(b) = &got[1] else { panic!() };
        assert_eq!((b.kind, b.lessons, b.validity), (Kind::Lesson, 2, Validity::Invalid));
        let Parsed::Record(c) = &got[2] else { panic!() };
        assert_eq!(
            (c.kind, c.minutes, c.validity),
            (Kind::Late, Some(15), Validity::Unclassified)
        );
        let Parsed::Rejected(q) = &got[3] else { panic!() };
        assert_eq!(q.location, "f.csv:5");
        assert!(q.reason.contains("«Dato»"), "{}", q.reason);
        let Parsed::Rejected(q) = &got[4] else { panic!() };
        assert!(q.reason.contains("«influensa»"), "{}", q.reason);
        let Parsed::Record(f) = &got[5] else { panic!() };
        assert_eq!(f.reason, Some(Reason::Leave));
    }

    #[test]
    fn vis_letters_decide_validity_skip_and_delete() {
        let text = "elevnr;skolenr;dato;time;omfang;kode\n\
e1;s1;2026-03-02;;dag;X\n\
e1;s1;2026-03-03;2;time;M\n\
e1;s1;2026-03-03;3;time;D\n\
e1;s1;2026-03-04;1;time;!\n\
e1;s1;2026-03-04;2;time;R\n\
e1;s1;2026-03-03;2;time;§\n\
e1;s1;2026-03-05;1;time;Q\n";
        let got = read("vis", text);
        assert_eq!(got.len(), 5);
        let recs: Vec<&AbsenceRecord> = got
            .iter()
            .filter_map(|p| if let Parsed::Record(r) = p { Some(r) } else { None })
            .collect();
        assert_eq!(recs[0].validity, Validity::Invalid);
        assert_eq!(recs[0].kind, Kind::Day);
        assert_eq!(recs[1].validity, Validity::Unclassified);
        assert_eq!(recs[2].validity, Validity::Valid);
        // The § row removes the M row for the same lesson: same id, a tombstone.
        assert!(recs[3].deleted);
        assert_eq!(recs[3].id, recs[1].id);
        assert_ne!(recs[1].id, recs[2].id);
        let Parsed::Rejected(q) = &got[4] else { panic!() };
        assert!(q.reason.contains("«Q»") && q.location == "f.csv:8", "{q:?}");
    }

    #[test]
    fn a_missing_column_is_named() {
        let p = Profile::load("vis").unwrap();
        let got: Vec<io::Result<Parsed>> =
            VendorCsvReader::new(&b"elevnr;skolenr;dato;omfang;kode\n"[..], "f.csv", p).collect();
        let e = got[0].as_ref().unwrap_err().to_string();
        assert!(e.contains("«time»") && e.contains("columns.key"), "{e}");
    }

    #[test]
    fn a_new_school_system_needs_only_a_profile() {
        let profile = r#"
name = "annet"
adapter = "vendor-csv"
source = "annet"
[csv]
delimiter = ","
date_format = "%d/%m/%Y"
[columns]
pupil = "student"
school = "unit"
date = "day"
code = "c"
[codes.U]
validity = "invalid"
kind = "lesson"
[codes.S]
validity = "valid"
reason = "illness"
"#;
        let p = Profile::from_toml(profile).unwrap();
        let got: Vec<Parsed> =
            VendorCsvReader::new(&b"student,unit,day,c\na,b,02/03/2026,U\na,b,03/03/2026,S\n"[..], "x", p)
                .map(Result::unwrap)
                .collect();
        let Parsed::Record(r) = &got[0] else { panic!() };
        assert_eq!((r.kind, r.validity), (Kind::Lesson, Validity::Invalid));
        let Parsed::Record(r) = &got[1] else { panic!() };
        assert_eq!(
            (r.kind, r.validity, r.reason),
            (Kind::Day, Validity::Valid, Some(Reason::Illness))
        );
    }
}
