//! Ed-Fi Data Standard 5.x attendance events, from bulk XML
//! (InterchangeStudentAttendance) or from the ODS/API's JSON resources.
//!
//! Both routes fill an [`EdfiEvent`]; one mapping turns it into a canonical
//! record. The record id is a digest of the event's natural key, so the same
//! event imported twice (or from XML and then from the API) is one record.

use super::Parsed;
use super::xml::{Element, XmlError, XmlRecords};
use crate::domain::record::parse_date;
use crate::domain::{AbsenceRecord, Kind, Validity};
use crate::store::QuarantineEntry;
use chrono::NaiveDate;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::io::{self, BufRead};

/// The record elements of InterchangeStudentAttendance that carry absence.
pub const RECORD_ELEMENTS: &[&str] = &["StudentSchoolAttendanceEvent", "StudentSectionAttendanceEvent"];

/// Whether an event concerns the school day or one section (a lesson).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventScope {
    /// StudentSchoolAttendanceEvent.
    School,
    /// StudentSectionAttendanceEvent.
    Section,
}

/// The fields of an Ed-Fi attendance event that the mapping uses.
#[derive(Debug, Clone, PartialEq)]
pub struct EdfiEvent {
    /// School or section event.
    pub scope: EventScope,
    /// StudentUniqueId.
    pub student: Option<String>,
    /// SchoolId.
    pub school: Option<String>,
    /// SchoolYear of the session.
    pub school_year: Option<String>,
    /// SessionName.
    pub session: Option<String>,
    /// EventDate as given.
    pub date: Option<String>,
    /// AttendanceEventCategoryDescriptor as given (URI or bare code value).
    pub category: Option<String>,
    /// Section identity (SectionIdentifier and LocalCourseCode), section events only.
    pub section: Option<String>,
    /// EventDuration in days, as given.
    pub duration: Option<String>,
    /// SchoolAttendanceDuration / SectionAttendanceDuration in minutes, as given.
    pub attendance_minutes: Option<String>,
}

/// The canonical meaning of an attendance event category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// In Attendance / Present: not absence.
    Present,
    /// Excused Absence.
    Excused,
    /// Unexcused Absence.
    Unexcused,
    /// Tardy.
    Tardy,
    /// Early departure.
    EarlyDeparture,
}

impl Category {
    /// The category of a descriptor value: a URI such as
    /// `uri://ed-fi.org/AttendanceEventCategoryDescriptor#Tardy` or a bare code value.
    pub fn of_descriptor(descriptor: &str) -> Option<Category> {
        let code = descriptor.rsplit_once('#').map_or(descriptor, |(_, c)| c).trim();
        let code = code.to_ascii_lowercase();
        match code.as_str() {
            "in attendance" | "present" => Some(Category::Present),
            "excused absence" => Some(Category::Excused),
            "unexcused absence" => Some(Category::Unexcused),
            "tardy" => Some(Category::Tardy),
            "early departure" => Some(Category::EarlyDeparture),
            _ => None,
        }
    }
}

/// The code value of a descriptor (the part after `#`).
fn code_value(descriptor: &str) -> &str {
    descriptor.rsplit_once('#').map_or(descriptor, |(_, c)| c).trim()
}

/// Why an event could not be mapped; names the Ed-Fi element.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EdfiError {
    /// A required element is missing or empty.
    #[error("elementet {0} mangler")]
    Missing(&'static str),
    /// An element has a value that cannot be used.
    #[error("elementet {element}: {message}")]
    Invalid {
        /// The Ed-Fi element.
        element: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Settings of the Ed-Fi mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct EdfiMapping {
    /// The canonical `source` of the records.
    pub source: String,
    /// Lessons in a school day, to turn a part-day EventDuration into lessons.
    pub lessons_per_day: u32,
}

impl Default for EdfiMapping {
    fn default() -> Self {
        EdfiMapping {
            source: "edfi".into(),
            lessons_per_day: 6,
        }
    }
}

/// 32-bit FNV-1a: a stable, cheap digest for grouping keys (not for uniqueness).
pub(crate) fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

impl EdfiEvent {
    /// The deterministic record id: a digest of the natural key (student,
    /// school, session, date, category and, for section events, section),
    /// after a short digest of the student alone. The student part keeps a
    /// pupil's records next to each other in the store's key index, so an
    /// import (which comes pupil by pupil) touches few index pages.
    pub fn record_id(&self) -> String {
        let mut h = Sha256::new();
        let scope = match self.scope {
            EventScope::School => "school",
            EventScope::Section => "section",
        };
        for part in [
            Some(scope),
            self.student.as_deref(),
            self.school.as_deref(),
            self.school_year.as_deref(),
            self.session.as_deref(),
            self.date.as_deref(),
            self.category.as_deref().map(code_value),
            self.section.as_deref(),
        ] {
            h.update(part.unwrap_or("").as_bytes());
            // A separator that cannot appear in the parts keeps keys apart.
            h.update([0u8]);
        }
        let student = fnv1a32(self.student.as_deref().unwrap_or("").as_bytes());
        format!("edfi-{student:08x}{}", &hex::encode(h.finalize())[..24])
    }

    /// Maps the event to a canonical record; `Ok(None)` for attendance that
    /// is not absence.
    pub fn to_record(&self, m: &EdfiMapping) -> Result<Option<AbsenceRecord>, EdfiError> {
        let descriptor = self
            .category
            .as_deref()
            .ok_or(EdfiError::Missing("AttendanceEventCategoryDescriptor"))?;
        let category = Category::of_descriptor(descriptor).ok_or_else(|| EdfiError::Invalid {
            element: "AttendanceEventCategoryDescriptor",
            message: format!("ukjent kategori «{}»", code_value(descriptor)),
        })?;
        if category == Category::Present {
            return Ok(None);
        }
        let student = self.student.clone().ok_or(EdfiError::Missing("StudentUniqueId"))?;
        let school = self.school.clone().ok_or(EdfiError::Missing("SchoolId"))?;
        let date_text = self.date.as_deref().ok_or(EdfiError::Missing("EventDate"))?;
        let date: NaiveDate =
            parse_date(date_text.get(..10).unwrap_or(date_text)).map_err(|message| EdfiError::Invalid {
                element: "EventDate",
                message,
            })?;
        let duration = match self.duration.as_deref() {
            None => None,
            Some(d) => match d.trim().parse::<f64>() {
                Ok(v) if v > 0.0 && v.is_finite() => Some(v),
                _ => {
                    return Err(EdfiError::Invalid {
                        element: "EventDuration",
                        message: format!("«{d}» er ikke et positivt tall"),
                    });
                }
            },
        };
        let minutes = match self.attendance_minutes.as_deref() {
            None => None,
            Some(t) => Some(t.trim().parse::<u32>().map_err(|_| EdfiError::Invalid {
                element: match self.scope {
                    EventScope::School => "SchoolAttendanceDuration",
                    EventScope::Section => "SectionAttendanceDuration",
                },
                message: format!("«{t}» er ikke et heltall minutter"),
            })?),
        };
        let (kind, lessons, validity) = match category {
            Category::Present => return Ok(None),
            Category::Tardy => (Kind::Late, 1, Validity::Unclassified),
            Category::EarlyDeparture => (Kind::Left, 1, Validity::Unclassified),
            Category::Excused | Category::Unexcused => {
                let validity = if category == Category::Excused {
                    Validity::Valid
                } else {
                    Validity::Invalid
                };
                match (self.scope, duration) {
                    // A section is one lesson.
                    (EventScope::Section, _) => (Kind::Lesson, 1, validity),
                    (EventScope::School, Some(d)) if d < 1.0 => {
                        let lessons = (d * f64::from(m.lessons_per_day)).round().max(1.0) as u32;
                        (Kind::Lesson, lessons, validity)
                    }
                    (EventScope::School, _) => (Kind::Day, 1, validity),
                }
            }
        };
        let mut extensions = Map::new();
        extensions.insert("source_code".into(), Value::String(code_value(descriptor).to_string()));
        extensions.insert("source_label".into(), Value::String(code_value(descriptor).to_string()));
        if let Some(s) = &self.section {
            extensions.insert("section".into(), Value::String(s.clone()));
        }
        Ok(Some(AbsenceRecord {
            source: m.source.clone(),
            id: self.record_id(),
            version: 1,
            pupil: student,
            school,
            date,
            kind,
            lessons,
            minutes: if kind == Kind::Late { minutes } else { None },
            validity,
            reason: None,
            deleted: false,
            extensions,
        }))
    }

    /// Reads an event from an interchange element.
    pub fn from_xml(e: &Element) -> EdfiEvent {
        let scope = if e.name == "StudentSectionAttendanceEvent" {
            EventScope::Section
        } else {
            EventScope::School
        };
        let text = |el: Option<&Element>| el.map(|x| x.text.clone()).filter(|t| !t.is_empty());
        let session = e.child("SessionReference");
        let section_ref = e.child("SectionReference");
        let section = section_ref.and_then(|s| {
            let id = text(s.find("SectionIdentifier"))?;
            Some(match text(s.find("LocalCourseCode")) {
                Some(course) => format!("{course}/{id}"),
                None => id,
            })
        });
        // Section events name school and session inside the section reference.
        let within = |name: &str| {
            text(e.child("SchoolReference").and_then(|s| s.find(name)))
                .or_else(|| text(section_ref.and_then(|s| s.find(name))))
        };
        EdfiEvent {
            scope,
            student: text(e.child("StudentReference").and_then(|s| s.find("StudentUniqueId"))),
            school: within("SchoolId").or_else(|| text(session.and_then(|s| s.find("SchoolId")))),
            school_year: text(session.and_then(|s| s.find("SchoolYear"))).or_else(|| within("SchoolYear")),
            session: text(session.and_then(|s| s.find("SessionName"))).or_else(|| within("SessionName")),
            date: text(e.child("EventDate")),
            category: text(e.child("AttendanceEventCategoryDescriptor")),
            section,
            duration: text(e.child("EventDuration")),
            attendance_minutes: text(e.child("SchoolAttendanceDuration"))
                .or_else(|| text(e.child("SectionAttendanceDuration"))),
        }
    }
}

/// Streams canonical items out of an Ed-Fi interchange file.
pub struct EdfiXmlReader<R> {
    inner: XmlRecords<R>,
    mapping: EdfiMapping,
}

impl<R: BufRead> EdfiXmlReader<R> {
    /// Reads `input`; `location` names it in errors.
    pub fn new(input: R, location: impl Into<String>, mapping: EdfiMapping) -> EdfiXmlReader<R> {
        EdfiXmlReader {
            inner: XmlRecords::new(input, location, RECORD_ELEMENTS),
            mapping,
        }
    }
}

impl<R: BufRead> Iterator for EdfiXmlReader<R> {
    type Item = io::Result<Parsed>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let element = match self.inner.next()? {
                Ok(e) => e,
                Err(e) => return Some(Err(io::Error::from(e))),
            };
            let event = EdfiEvent::from_xml(&element);
            match event.to_record(&self.mapping) {
                Ok(Some(r)) => return Some(Ok(Parsed::Record(r))),
                Ok(None) => continue,
                Err(e) => {
                    return Some(Ok(Parsed::Rejected(QuarantineEntry {
                        source: Some(self.mapping.source.clone()),
                        location: format!("{}:{}:{}", self.inner.location(), element.line, element.column),
                        reason: format!("{}: {e}", element.name),
                        raw: element.to_xml(),
                    })));
                }
            }
        }
    }
}

/// Whether an IO error from an XML adapter is an XML fault (as opposed to a
/// failing disk), and which.
pub fn xml_fault(e: &io::Error) -> Option<&XmlError> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<XmlError>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "http://ed-fi.org/5.0.0";

    fn school_event(category: &str, date: &str, extra: &str) -> String {
        format!(
            "<StudentSchoolAttendanceEvent>\
<AttendanceEventCategoryDescriptor>uri://ed-fi.org/AttendanceEventCategoryDescriptor#{category}</AttendanceEventCategoryDescriptor>\
<EventDate>{date}</EventDate>{extra}\
<StudentReference><StudentIdentity><StudentUniqueId>604822</StudentUniqueId></StudentIdentity></StudentReference>\
<SchoolReference><SchoolIdentity><SchoolId>255901001</SchoolId></SchoolIdentity></SchoolReference>\
<SessionReference><SessionIdentity><SchoolYear>2026</SchoolYear><SessionName>2025-2026 Høst</SessionName>\
<SchoolReference><SchoolIdentity><SchoolId>255901001</SchoolId></SchoolIdentity></SchoolReference></SessionIdentity></SessionReference>\
</StudentSchoolAttendanceEvent>\n"
        )
    }

    fn read(body: &str) -> Vec<io::Result<Parsed>> {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InterchangeStudentAttendance xmlns=\"{NS}\">\n{body}</InterchangeStudentAttendance>\n"
        );
        EdfiXmlReader::new(xml.as_bytes(), "a.xml", EdfiMapping::default()).collect::<Vec<_>>()
    }

    fn records(body: &str) -> Vec<AbsenceRecord> {
        read(body)
            .into_iter()
            .map(|p| match p.unwrap() {
                Parsed::Record(r) => r,
                Parsed::Rejected(q) => panic!("rejected: {q:?}"),
            })
            .collect()
    }

    #[test]
    fn categories_map_as_the_issue_says() {
        let body = [
            school_event("Excused Absence", "2026-03-02", "<EventDuration>1</EventDuration>"),
            school_event("Unexcused Absence", "2026-03-03", ""),
            school_event(
                "Tardy",
                "2026-03-04",
                "<SchoolAttendanceDuration>12</SchoolAttendanceDuration>",
            ),
            school_event("Early departure", "2026-03-05", ""),
            school_event("In Attendance", "2026-03-06", ""),
            school_event("Unexcused Absence", "2026-03-09", "<EventDuration>0.33</EventDuration>"),
            school_event("Excused Absence", "2026-03-10", "<EventDuration>0.05</EventDuration>"),
        ]
        .concat();
        let got = records(&body);
        let summary: Vec<(Kind, u32, Validity, Option<u32>)> =
            got.iter().map(|r| (r.kind, r.lessons, r.validity, r.minutes)).collect();
        assert_eq!(
            summary,
            [
                (Kind::Day, 1, Validity::Valid, None),
                (Kind::Day, 1, Validity::Invalid, None),
                (Kind::Late, 1, Validity::Unclassified, Some(12)),
                (Kind::Left, 1, Validity::Unclassified, None),
                // 0.33 × 6 lessons = 1.98 → 2 lessons.
                (Kind::Lesson, 2, Validity::Invalid, None),
                // Never less than one lesson.
                (Kind::Lesson, 1, Validity::Valid, None),
            ]
        );
        assert_eq!(got[0].pupil, "604822");
        assert_eq!(got[0].school, "255901001");
        assert_eq!(got[0].extensions["source_code"], "Excused Absence");
        assert_eq!(got[2].extensions["source_label"], "Tardy");
    }

    #[test]
    fn record_id_follows_the_natural_key() {
        let a = records(&school_event("Tardy", "2026-03-04", ""));
        let again = records(&school_event(
            "Tardy",
            "2026-03-04",
            "<SchoolAttendanceDuration>3</SchoolAttendanceDuration>",
        ));
        assert_eq!(a[0].id, again[0].id, "same key, same id");
        let other_day = records(&school_event("Tardy", "2026-03-05", ""));
        assert_ne!(a[0].id, other_day[0].id);
        let other_cat = records(&school_event("Early departure", "2026-03-04", ""));
        assert_ne!(a[0].id, other_cat[0].id);
        // One pupil's ids share the student prefix, so they sort together.
        assert_eq!(a[0].id[..13], other_day[0].id[..13]);
        assert_eq!(a[0].id.len(), "edfi-".len() + 8 + 24);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
    }

    #[test]
    fn section_events_are_lessons_with_the_section_in_the_key() {
        let section = |id: &str| {
            format!(
                "<StudentSectionAttendanceEvent>\
<AttendanceEventCategoryDescriptor>uri://ed-fi.org/AttendanceEventCategoryDescriptor#Unexcused Absence</AttendanceEventCategoryDescriptor>\
<EventDate>2026-03-02</EventDate>\
<SectionAttendanceDuration>45</SectionAttendanceDuration>\
<StudentReference><StudentIdentity><StudentUniqueId>7</StudentUniqueId></StudentIdentity></StudentReference>\
<SectionReference><SectionIdentity><LocalCourseCode>MAT8</LocalCourseCode><SchoolId>9</SchoolId><SchoolYear>2026</SchoolYear>\
<SectionIdentifier>{id}</SectionIdentifier><SessionName>Vår</SessionName></SectionIdentity></SectionReference>\
</StudentSectionAttendanceEvent>\n"
            )
        };
        let got = records(&(section("8A-1") + section("8A-2").as_str()));
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].kind, got[0].lessons, got[0].school.as_str()),
            (Kind::Lesson, 1, "9")
        );
        assert_eq!(got[0].extensions["section"], "MAT8/8A-1");
        assert_ne!(got[0].id, got[1].id);
    }

    #[test]
    fn bad_events_are_quarantined_by_element_and_place() {
        let body = [
            school_event("Excused Absence", "2026-03-02", ""),
            school_event("Sick", "2026-03-03", ""),
            school_event("Tardy", "2026-02-30", ""),
            school_event("Excused Absence", "2026-03-04", "<EventDuration>-1</EventDuration>"),
            school_event("Excused Absence", "2026-03-05", ""),
        ]
        .concat();
        let got: Vec<Parsed> = read(&body).into_iter().map(Result::unwrap).collect();
        assert_eq!(got.len(), 5);
        let reasons: Vec<String> = got
            .iter()
            .filter_map(|p| match p {
                Parsed::Rejected(q) => Some(format!("{} {}", q.location, q.reason)),
                _ => None,
            })
            .collect();
        assert_eq!(reasons.len(), 3);
        assert!(
            reasons[0].starts_with("a.xml:4:1 ") && reasons[0].contains("«Sick»"),
            "{reasons:?}"
        );
        assert!(reasons[1].contains("EventDate"), "{reasons:?}");
        assert!(reasons[2].contains("EventDuration"), "{reasons:?}");
        assert!(matches!(&got[4], Parsed::Record(r) if r.date.to_string() == "2026-03-05"));
    }

    #[test]
    fn truncated_interchange_keeps_earlier_records() {
        let xml = format!(
            "<InterchangeStudentAttendance>\n{}{}",
            school_event("Tardy", "2026-03-04", ""),
            &school_event("Tardy", "2026-03-05", "")[..200]
        );
        let got: Vec<io::Result<Parsed>> =
            EdfiXmlReader::new(xml.as_bytes(), "cut.xml", EdfiMapping::default()).collect();
        assert_eq!(got.len(), 2);
        assert!(matches!(got[0], Ok(Parsed::Record(_))));
        let err = got[1].as_ref().unwrap_err();
        let fault = xml_fault(err).expect("an XML fault");
        assert_eq!(fault.line, 3);
        assert!(err.to_string().starts_with("cut.xml:3:"), "{err}");
    }
}
