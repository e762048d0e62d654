//! `vendor-csv`: a school system's CSV export, mapped by a [`Profile`].
//!
//! Exports come as they are: UTF-8 (with or without a BOM), Windows-1252 or
//! ISO-8859-1 (the profile's `[csv] encoding`), separated by `;` or `,`
//! (detected from the header line unless the profile fixes it).

use super::Parsed;
use super::Rejected;
use super::mapping::{Fields, map_fields, used_fields};
use super::profile::Profile;
use crate::domain::{Fault, RejectCode};
use std::borrow::Cow;
use std::io::{self, Read};

/// The character encoding of a CSV export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextEncoding {
    /// UTF-8.
    #[default]
    Utf8,
    /// Windows-1252 (Western European; what Windows tools write).
    Windows1252,
    /// ISO-8859-1 (Latin-1).
    Latin1,
}

impl TextEncoding {
    /// Parses a profile's `encoding` (ASCII case ignored).
    pub fn parse(s: &str) -> Option<TextEncoding> {
        match s.trim().to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Some(TextEncoding::Utf8),
            "windows-1252" | "cp1252" => Some(TextEncoding::Windows1252),
            "iso-8859-1" | "latin1" | "latin-1" => Some(TextEncoding::Latin1),
            _ => None,
        }
    }

    /// The character of a byte at or above 0x80 (single-byte encodings).
    fn char_of(self, b: u8) -> char {
        // Windows-1252 puts printable characters where ISO-8859-1 has C1
        // controls; its five unassigned bytes stay the control they are.
        const CP1252: [u16; 32] = [
            0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,
            0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A,
            0x0153, 0x9D, 0x017E, 0x0178,
        ];
        match (self, b) {
            (TextEncoding::Windows1252, 0x80..=0x9F) => {
                char::from_u32(u32::from(CP1252[usize::from(b - 0x80)])).unwrap_or(char::REPLACEMENT_CHARACTER)
            }
            _ => char::from(b),
        }
    }
}

/// A reader that turns a single-byte encoding into UTF-8 as it reads.
pub struct Transcoded<R> {
    inner: R,
    encoding: TextEncoding,
    /// Decoded bytes not yet handed out.
    out: Vec<u8>,
    at: usize,
}

impl<R: Read> Transcoded<R> {
    /// Reads `inner` in `encoding`.
    pub fn new(inner: R, encoding: TextEncoding) -> Transcoded<R> {
        Transcoded {
            inner,
            encoding,
            out: Vec::new(),
            at: 0,
        }
    }
}

impl<R: Read> Read for Transcoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.encoding == TextEncoding::Utf8 {
            return self.inner.read(buf);
        }
        if self.at == self.out.len() {
            let mut raw = [0u8; 8192];
            let n = self.inner.read(&mut raw)?;
            self.out.clear();
            self.at = 0;
            for &b in &raw[..n] {
                if b < 0x80 {
                    self.out.push(b);
                } else {
                    let mut utf8 = [0u8; 4];
                    self.out
                        .extend_from_slice(self.encoding.char_of(b).encode_utf8(&mut utf8).as_bytes());
                }
            }
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The delimiter of a header line: `;` or `,`, whichever occurs more
/// often outside quotes (`;` on a tie, as Norwegian exports use).
pub fn detect_delimiter(header: &[u8]) -> u8 {
    let (mut semicolons, mut commas, mut quoted) = (0usize, 0usize, false);
    for &b in header.split(|&b| b == b'\n').next().unwrap_or_default() {
        match b {
            b'"' => quoted = !quoted,
            b';' if !quoted => semicolons += 1,
            b',' if !quoted => commas += 1,
            _ => {}
        }
    }
    if commas > semicolons { b',' } else { b';' }
}

/// The input with its first line read ahead (to find the delimiter).
type Sniffed<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// Reads ahead up to the first newline (at most 64 KiB); the bytes read
/// are handed back in front of the rest.
fn sniff<R: Read>(mut input: R) -> (Sniffed<R>, Vec<u8>, Option<io::Error>) {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    let mut fault = None;
    while !head.contains(&b'\n') && head.len() < 64 << 10 {
        match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                fault = Some(e);
                break;
            }
        }
    }
    let copy = head.clone();
    (io::Cursor::new(head).chain(input), copy, fault)
}

/// Streams canonical items out of a vendor CSV export.
pub struct VendorCsvReader<R: Read> {
    csv: csv::Reader<Transcoded<Sniffed<R>>>,
    profile: Profile,
    location: String,
    delimiter: u8,
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
        let (input, head, fault) = sniff(input);
        // The delimiters are ASCII, the same byte in every encoding read.
        let delimiter = profile.delimiter.unwrap_or_else(|| detect_delimiter(&head));
        let csv = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(Transcoded::new(input, profile.encoding));
        VendorCsvReader {
            csv,
            profile,
            location: location.into(),
            delimiter,
            header: fault.map(|e| Err(e.to_string())),
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
                            return Some(Ok(Parsed::Rejected(Rejected::new(
                                Some(self.profile.source.clone()),
                                format!("{}:{line}", self.location),
                                Fault::whole(RejectCode::BadEncoding).with_limit("sett [csv] encoding i profilen"),
                                String::new(),
                            ))));
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
            match map_fields(&self.profile, &row) {
                Ok(None) => return Some(Ok(Parsed::Skipped(super::Skip::Presence))),
                Ok(Some(r)) => return Some(Ok(Parsed::Record(r))),
                Err(fault) => {
                    let delim = (self.delimiter as char).to_string();
                    return Some(Ok(Parsed::Rejected(Rejected::new(
                        Some(self.profile.source.clone()),
                        format!("{}:{line}", self.location),
                        fault,
                        self.row.iter().collect::<Vec<_>>().join(&delim),
                    ))));
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
        assert_eq!(
            (q.code, q.field.as_deref()),
            (RejectCode::BadDate, Some("Dato")),
            "{q:?}"
        );
        let Parsed::Rejected(q) = &got[4] else { panic!() };
        // The unknown value itself is not in the reason: it may be a diagnosis.
        assert_eq!(q.code, RejectCode::UnknownCode, "{q:?}");
        assert!(!q.reason().contains("influensa"), "{}", q.reason());
        let Parsed::Record(f) = &got[5] else { panic!() };
        assert_eq!(f.reason, Some(Reason::Leave));
    }

    /// Found by fuzzing: chrono's `%Y` read `05.03.-6` as the year -6, and
    /// `05.03.12026` as 12026; a date has a four-digit year.
    #[test]
    fn dates_have_four_digit_years() {
        let text = "Fravær-ID;Elev-ID;Skole-ID;Dato;Fraværstype;Antall timer;Minutter;Dokumentasjon;Årsak\n\
1;e1;s1;05.03.-6;Dagsfravær;;;Dokumentert;sykdom\n\
2;e1;s1;05.03.12026;Dagsfravær;;;Dokumentert;sykdom\n\
3;e1;s1;05.03.2026;Dagsfravær;;;Dokumentert;sykdom\n";
        let got = read("flyt", text);
        for q in &got[..2] {
            let Parsed::Rejected(q) = q else { panic!("{q:?}") };
            assert_eq!(
                (q.code, q.field.as_deref()),
                (RejectCode::BadDate, Some("Dato")),
                "{q:?}"
            );
        }
        assert!(matches!(got[2], Parsed::Record(_)));
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
        assert!(q.code == RejectCode::UnknownCode && q.location == "f.csv:8", "{q:?}");
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
    fn windows_1252_exports_with_commas_read_as_they_are() {
        let profile = r#"
name = "visma"
adapter = "vendor-csv"
source = "visma"
[csv]
encoding = "windows-1252"
[columns]
pupil = "Elev"
school = "Skole"
date = "Dato"
code = "Kode"
[codes.S]
label = "Sykdom (føresatt har meldt)"
validity = "valid"
reason = "illness"
"#;
        let p = Profile::from_toml(profile).unwrap();
        // «Bjørkås ungdomsskole» and «Ærø» in Windows-1252: one byte each for æ, ø, å.
        let mut bytes = b"Elev,Skole,Dato,Kode,Merknad\ne1,Bj".to_vec();
        bytes.extend_from_slice(&[0xF8, b'r', b'k', 0xE5, b's']);
        bytes.extend_from_slice(b",2026-03-02,S,\"\x93");
        bytes.extend_from_slice(&[0xC6, b'r', 0xF8]);
        bytes.extend_from_slice(b"\x94, sa hun\"\n");
        let got: Vec<Parsed> = VendorCsvReader::new(&bytes[..], "x.csv", p.clone())
            .map(Result::unwrap)
            .collect();
        let [Parsed::Record(r)] = &got[..] else {
            panic!("{got:?}")
        };
        assert_eq!(r.school, "Bjørkås");
        assert_eq!((r.validity, r.reason), (Validity::Valid, Some(Reason::Illness)));
        // The same bytes read as UTF-8 are refused by row, not garbled.
        let mut utf8 = p;
        utf8.encoding = TextEncoding::Utf8;
        let got: Vec<Parsed> = VendorCsvReader::new(&bytes[..], "x.csv", utf8)
            .map(Result::unwrap)
            .collect();
        let [Parsed::Rejected(q)] = &got[..] else {
            panic!("{got:?}")
        };
        assert!(
            q.code == RejectCode::BadEncoding && q.reason().contains("encoding"),
            "{q:?}"
        );
    }

    #[test]
    fn the_delimiter_is_found_in_the_header() {
        assert_eq!(detect_delimiter(b"a;b;c\n1,5;2;3"), b';');
        assert_eq!(detect_delimiter(b"a,b,c\n1;2;3"), b',');
        assert_eq!(detect_delimiter(b"\"a;x\",b,c"), b',');
        assert_eq!(detect_delimiter(b"alone"), b';');
        let comma = "Fravær-ID,Elev-ID,Skole-ID,Dato,Fraværstype,Antall timer,Minutter,Dokumentasjon,Årsak\n\
1,e1,s1,02.03.2026,Dagsfravær,,,Dokumentert,sykdom\n";
        let got = read("flyt", comma);
        let [Parsed::Record(r)] = &got[..] else {
            panic!("{got:?}")
        };
        assert_eq!((r.pupil.as_str(), r.kind), ("e1", Kind::Day));
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
