//! `vendor-csv`: a school system's CSV export, mapped by a [`Profile`].

use super::Parsed;
use super::Rejected;
use super::mapping::{Fields, map_fields, used_fields};
use super::profile::Profile;
use std::borrow::Cow;
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
}

/// One CSV row seen by column name.
struct Row<'a> {
    header: &'a Header,
    row: &'a csv::StringRecord,
}

impl Fields for Row<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        let i = self.header.names.iter().position(|n| n == name)?;
        self.row.get(i).filter(|v| !v.is_empty()).map(Cow::Borrowed)
    }
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
        for (field, col) in used_fields(&self.profile) {
            if !names.iter().any(|n| n == col) {
                return Err(format!(
                    "kolonnen «{col}» (profilens {field}) finnes ikke i overskriftslinjen"
                ));
            }
        }
        Ok(Header { names })
    }
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
                            return Some(Ok(Parsed::Rejected(Rejected {
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
            let row = Row { header, row: &self.row };
            match map_fields(&self.profile, &row, "kolonnen") {
                Ok(None) => return Some(Ok(Parsed::Skipped(super::Skip::Presence))),
                Ok(Some(r)) => return Some(Ok(Parsed::Record(r))),
                Err(reason) => {
                    let delim = (self.profile.delimiter as char).to_string();
                    return Some(Ok(Parsed::Rejected(Rejected {
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
    use crate::domain::{AbsenceRecord, Kind, Reason, Validity};

    fn read(profile: &str, text: &str) -> Vec<Parsed> {
        let p = Profile::load(profile).unwrap();
        VendorCsvReader::new(text.as_bytes(), "f.csv", p)
            .map(Result::unwrap)
            .filter(|p| !matches!(p, Parsed::Skipped(_)))
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
