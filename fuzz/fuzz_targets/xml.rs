//! The XML engine: records cut out of arbitrary bytes, and each record
//! written back as XML reads back as the same element.
#![no_main]

use std::io::Cursor;
use tilstede::adapters::xml::XmlRecords;

const NAMES: &[&str] = &["rad", "StudentSchoolAttendanceEvent", "StudentDailyAttendance"];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut items = 0usize;
    for item in XmlRecords::new(Cursor::new(data), "fuzz", NAMES) {
        items += 1;
        assert!(items <= data.len() + 1, "more records than input bytes");
        let Ok(element) = item else { continue };
        let xml = element.to_xml();
        let again: Vec<_> = XmlRecords::new(Cursor::new(xml.as_bytes()), "again", NAMES).collect();
        assert_eq!(again.len(), 1, "a written record reads back as one: {xml}");
        let back = again.into_iter().next().unwrap().unwrap_or_else(|e| panic!("written record unreadable ({e}): {xml}"));
        assert_eq!(back.to_xml(), xml, "a written record reads back the same");
    }
});
