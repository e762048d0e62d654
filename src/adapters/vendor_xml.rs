//! `vendor-xml`: a school system's XML export, mapped by a profile and
//! streamed one record element at a time (the file is never held whole).
//!
//! The profile's `[xml]` names the record element; `[columns]` gives each
//! field as a path below it: `Elev/Id` (child elements' text), `@dato` (an
//! attribute of the record) or `Elev/@id` (an attribute further down). The
//! `[kinds]`, `[validity]` and `[codes]` tables are vendor-csv's.

use super::Parsed;
use super::Rejected;
use super::mapping::{Fields, map_fields};
use super::profile::{Profile, ProfileError, invalid};
use super::xml::{Element, XmlRecords};
use serde::Deserialize;
use std::borrow::Cow;
use std::io::{self, BufRead};

/// `[xml]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawXml {
    /// Local name (no namespace prefix) of the element holding one record.
    pub record: String,
}

/// A validated `[xml]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlLayout {
    /// The record element's local name.
    pub record: String,
}

impl RawXml {
    /// Checks `[xml]`; errors name `xml.…`.
    pub fn validate(self) -> Result<XmlLayout, ProfileError> {
        let r = self.record.trim();
        if r.is_empty() || r.contains(['/', ':', '@', ' ']) {
            return Err(invalid(
                "xml.record",
                format!("«{}» må være et elementnavn uten prefiks eller sti", self.record),
            ));
        }
        Ok(XmlLayout { record: r.to_string() })
    }
}

/// A record element read through field paths.
struct ElementFields<'a>(&'a Element);

impl Fields for ElementFields<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        let text = match name.rsplit_once('@') {
            Some((path, attribute)) => {
                let path = path.trim_end_matches('/');
                let e = if path.is_empty() { Some(self.0) } else { self.0.at(path) };
                e?.attribute(attribute)
            }
            None => self.0.text_at(name),
        };
        text.map(str::trim).filter(|t| !t.is_empty()).map(Cow::Borrowed)
    }
}

/// Streams canonical items out of a vendor XML export.
pub struct VendorXmlReader<R> {
    inner: XmlRecords<R>,
    profile: Profile,
}

impl<R: BufRead> VendorXmlReader<R> {
    /// Reads `input` with `profile` (which must have `[xml]`); `location`
    /// names it in errors.
    pub fn new(input: R, location: impl Into<String>, profile: Profile) -> Result<VendorXmlReader<R>, ProfileError> {
        let record = profile
            .xml
            .as_ref()
            .ok_or_else(|| {
                invalid(
                    "xml",
                    format!(
                        "profilen «{}» er for {}, ikke vendor-xml",
                        profile.name, profile.adapter
                    ),
                )
            })?
            .record
            .clone();
        Ok(VendorXmlReader {
            inner: XmlRecords::new(input, location, &[record.as_str()]),
            profile,
        })
    }
}

impl<R: BufRead> Iterator for VendorXmlReader<R> {
    type Item = io::Result<Parsed>;

    fn next(&mut self) -> Option<Self::Item> {
        let e = match self.inner.next()? {
            Ok(e) => e,
            // The records before the fault have been delivered.
            Err(e) => return Some(Err(io::Error::from(e))),
        };
        Some(Ok(match map_fields(&self.profile, &ElementFields(&e)) {
            Ok(None) => Parsed::Skipped(super::Skip::Presence),
            Ok(Some(r)) => Parsed::Record(r),
            Err(fault) => Parsed::Rejected(Rejected::new(
                Some(self.profile.source.clone()),
                format!("{}:{}:{}", self.inner.location(), e.line, e.column),
                fault,
                e.to_xml(),
            )),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Kind, Reason, Validity};

    fn read(profile: &str, xml: &str) -> Vec<io::Result<Parsed>> {
        let p = Profile::load(profile).unwrap();
        VendorXmlReader::new(xml.as_bytes(), "f.xml", p)
            .unwrap()
            .filter(|p| !matches!(p, Ok(Parsed::Skipped(_))))
            .collect()
    }

    #[test]
    fn flyt_xml_maps_elements_and_attributes() {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Fravaerseksport><Fravaer id=\"F-1\">\
<Elev id=\"e1\"/><Skole>s1</Skole><Dato>02.03.2026</Dato><Type>Dagsfravær</Type>\
<Dokumentasjon>Dokumentert</Dokumentasjon><Arsak>sykdom</Arsak></Fravaer>\n\
<Fravaer id=\"F-2\"><Elev id=\"e1\"/><Skole>s1</Skole><Dato>03.03.2026</Dato><Type>Timesfravær</Type>\
<AntallTimer>2</AntallTimer><Dokumentasjon>Udokumentert</Dokumentasjon><Arsak>annet</Arsak></Fravaer>\n\
<Fravaer id=\"F-3\"><Elev id=\"e2\"/><Skole>s1</Skole><Dato>03.03.2026</Dato><Type>Dagsfravær</Type><Arsak>ferie</Arsak></Fravaer>\n\
<Fravaer id=\"F-4\"><Elev id=\"e2\"/><Skole>s1</Skole><Dato>04.03.2026</Dato><Type>Forsentkomming</Type><Minutter>12</Minutter></Fravaer>\n\
<Fravaer id=\"F-5\"><Elev id=\"e2\"/><Skole>s1</Skole><Dato>05.03";
        let got = read("flyt-xml", xml);
        assert_eq!(got.len(), 5, "{got:?}");
        let Ok(Parsed::Record(a)) = &got[0] else { panic!() };
        assert_eq!(
            (a.id.as_str(), a.pupil.as_str(), a.kind, a.validity, a.reason),
            ("F-1", "e1", Kind::Day, Validity::Valid, Some(Reason::Illness))
        );
        assert_eq!(a.extensions["source_label"], "Sykdom");
        let Ok(Parsed::Record(b)) = &got[1] else { panic!() };
        assert_eq!((b.kind, b.lessons, b.validity), (Kind::Lesson, 2, Validity::Invalid));
        let Ok(Parsed::Rejected(q)) = &got[2] else { panic!() };
        assert!(
            q.code == crate::domain::RejectCode::UnknownCode
                && q.location == "f.xml:4:1"
                && !q.reason().contains("ferie"),
            "{q:?}"
        );
        assert!(q.raw.contains("ferie"));
        let Ok(Parsed::Record(d)) = &got[3] else { panic!() };
        assert_eq!((d.kind, d.minutes), (Kind::Late, Some(12)));
        // A cut-off file: the fault is reported, what came before is kept.
        let e = got[4].as_ref().unwrap_err().to_string();
        assert!(e.starts_with("f.xml:"), "{e}");
    }

    #[test]
    fn vis_xml_letters_skip_and_delete_like_the_csv() {
        let row = |time: &str, code: &str| {
            format!(
                "<rad elevnr=\"e1\" skolenr=\"s1\" dato=\"2026-03-03\" time=\"{time}\" omfang=\"time\"><kode>{code}</kode></rad>"
            )
        };
        let xml = format!("<vis>{}{}{}</vis>", row("2", "M"), row("3", "!"), row("2", "§"));
        let got: Vec<Parsed> = read("vis-xml", &xml).into_iter().map(Result::unwrap).collect();
        assert_eq!(got.len(), 2);
        let (Parsed::Record(m), Parsed::Record(del)) = (&got[0], &got[1]) else {
            panic!()
        };
        assert_eq!(m.validity, Validity::Unclassified);
        assert!(del.deleted && del.id == m.id);
        // The same lesson from the CSV export has the same id.
        let csv = "elevnr;skolenr;dato;time;omfang;kode\ne1;s1;2026-03-03;2;time;M\n";
        let from_csv: Vec<Parsed> =
            super::super::vendor_csv::VendorCsvReader::new(csv.as_bytes(), "f.csv", Profile::load("vis").unwrap())
                .map(Result::unwrap)
                .collect();
        let Parsed::Record(c) = &from_csv[0] else { panic!() };
        assert_eq!(c.id, m.id);
    }

    #[test]
    fn entities_are_refused_like_in_every_xml_adapter() {
        let xml = "<?xml version=\"1.0\"?>\n<!DOCTYPE vis [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>\n<vis><rad elevnr=\"&e;\" skolenr=\"s\" dato=\"2026-03-03\" omfang=\"dag\"><kode>X</kode></rad></vis>";
        let got = read("vis-xml", xml);
        assert_eq!(got.len(), 1);
        let e = got[0].as_ref().unwrap_err().to_string();
        assert!(e.starts_with("f.xml:2:") && e.contains("DOCTYPE"), "{e}");
    }

    #[test]
    fn xml_errors_name_the_toml_path() {
        let base = "name = \"x\"\nadapter = \"vendor-xml\"\nsource = \"x\"\n[columns]\npupil = \"a\"\nschool = \"b\"\ndate = \"c\"\n";
        for (text, path) in [
            (base.to_string(), "xml"),
            (format!("{base}[xml]\nrecord = \"a/b\"\n"), "xml.record"),
            (format!("{base}[xml]\nrecord = \"r\"\nwat = 1\n"), "xml"),
        ] {
            let err = Profile::from_toml(&text).unwrap_err();
            assert!(err.to_string().starts_with(path), "{path}: {err}");
        }
        let csv = Profile::load("vis").unwrap();
        assert!(VendorXmlReader::new(&b""[..], "x", csv).is_err());
    }
}
