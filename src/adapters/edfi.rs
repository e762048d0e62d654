//! Ed-Fi Data Standard 5.x attendance events, from bulk XML
//! (InterchangeStudentAttendance) or from the ODS/API's JSON resources.
//!
//! Both routes fill an [`EdfiEvent`]; one mapping turns it into a canonical
//! record. The record id is a digest of the event's natural key, so the same
//! event imported twice (or from XML and then from the API) is one record.

use super::Parsed;
use super::xml::{Element, RecordLog, RecordVisitor, XmlError, XmlRecords};
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
        Category::of_code(code_value(descriptor))
    }

    /// The category of a code value (ASCII case ignored).
    fn of_code(code: &str) -> Option<Category> {
        const CODES: [(&str, Category); 6] = [
            ("in attendance", Category::Present),
            ("present", Category::Present),
            ("excused absence", Category::Excused),
            ("unexcused absence", Category::Unexcused),
            ("tardy", Category::Tardy),
            ("early departure", Category::EarlyDeparture),
        ];
        CODES
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(code))
            .map(|&(_, category)| category)
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

/// An event's fields, borrowed: what the mapping reads, from an
/// [`EdfiEvent`] or straight from the XML ([`EventVisitor`]).
#[derive(Debug, Clone, Copy)]
struct EventFields<'a> {
    scope: EventScope,
    student: Option<&'a str>,
    school: Option<&'a str>,
    school_year: Option<&'a str>,
    session: Option<&'a str>,
    date: Option<&'a str>,
    category: Option<&'a str>,
    section: Option<&'a str>,
    duration: Option<&'a str>,
    attendance_minutes: Option<&'a str>,
}

impl EventFields<'_> {
    /// The deterministic record id: a digest of the natural key (student,
    /// school, session, date, category and, for section events, section),
    /// after a short digest of the student alone. The student part keeps a
    /// pupil's records next to each other in the store's key index, so an
    /// import (which comes pupil by pupil) touches few index pages.
    fn record_id(self) -> String {
        self.record_id_with(self.category.map(code_value))
    }

    /// [`Self::record_id`] with the category's code value given.
    fn record_id_with(self, code: Option<&str>) -> String {
        let scope = match self.scope {
            EventScope::School => "school",
            EventScope::Section => "section",
        };
        let parts = [
            Some(scope),
            self.student,
            self.school,
            self.school_year,
            self.session,
            self.date,
            code,
            self.section,
        ];
        // Each part followed by a separator that cannot appear in the parts,
        // which keeps keys apart; hashed in one piece when the key is short.
        let mut key = [0u8; 256];
        let mut len = 0;
        for part in parts {
            let part = part.unwrap_or("").as_bytes();
            match key.get_mut(len..len + part.len() + 1) {
                Some(room) => {
                    room[..part.len()].copy_from_slice(part);
                    room[part.len()] = 0;
                    len += part.len() + 1;
                }
                None => {
                    len = usize::MAX;
                    break;
                }
            }
        }
        let digest = match key.get(..len) {
            Some(key) => Sha256::digest(key),
            None => {
                let mut h = Sha256::new();
                for part in parts {
                    h.update(part.unwrap_or("").as_bytes());
                    h.update([0u8]);
                }
                h.finalize()
            }
        };
        let student = fnv1a32(self.student.unwrap_or("").as_bytes());
        // "edfi-", the student digest and 12 bytes of the key digest, in hex.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut id = [0u8; 5 + 8 + 24];
        id[..5].copy_from_slice(b"edfi-");
        for (i, b) in student.to_be_bytes().iter().chain(&digest[..12]).enumerate() {
            id[5 + 2 * i] = HEX[usize::from(b >> 4)];
            id[6 + 2 * i] = HEX[usize::from(b & 15)];
        }
        String::from_utf8_lossy(&id).into_owned()
    }

    /// Maps the event to a canonical record; `Ok(None)` for attendance that
    /// is not absence.
    fn to_record(self, m: &EdfiMapping) -> Result<Option<AbsenceRecord>, EdfiError> {
        let descriptor = self
            .category
            .ok_or(EdfiError::Missing("AttendanceEventCategoryDescriptor"))?;
        let code = code_value(descriptor);
        let category = Category::of_code(code).ok_or_else(|| EdfiError::Invalid {
            element: "AttendanceEventCategoryDescriptor",
            message: format!("ukjent kategori «{code}»"),
        })?;
        if category == Category::Present {
            return Ok(None);
        }
        let student = self.student.ok_or(EdfiError::Missing("StudentUniqueId"))?.to_string();
        let school = self.school.ok_or(EdfiError::Missing("SchoolId"))?.to_string();
        let date_text = self.date.ok_or(EdfiError::Missing("EventDate"))?;
        let date: NaiveDate =
            parse_date(date_text.get(..10).unwrap_or(date_text)).map_err(|message| EdfiError::Invalid {
                element: "EventDate",
                message,
            })?;
        let duration = match self.duration {
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
        let minutes = match self.attendance_minutes {
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
        extensions.insert("source_code".into(), Value::String(code.to_string()));
        extensions.insert("source_label".into(), Value::String(code.to_string()));
        if let Some(s) = self.section {
            extensions.insert("section".into(), Value::String(s.to_string()));
        }
        Ok(Some(AbsenceRecord {
            source: m.source.clone(),
            id: self.record_id_with(Some(code)),
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
}

impl EdfiEvent {
    /// The deterministic record id: a digest of the natural key (student,
    /// school, session, date, category and, for section events, section),
    /// after a short digest of the student alone. The student part keeps a
    /// pupil's records next to each other in the store's key index, so an
    /// import (which comes pupil by pupil) touches few index pages.
    pub fn record_id(&self) -> String {
        self.fields().record_id()
    }

    /// Maps the event to a canonical record; `Ok(None)` for attendance that
    /// is not absence.
    pub fn to_record(&self, m: &EdfiMapping) -> Result<Option<AbsenceRecord>, EdfiError> {
        self.fields().to_record(m)
    }

    fn fields(&self) -> EventFields<'_> {
        EventFields {
            scope: self.scope,
            student: self.student.as_deref(),
            school: self.school.as_deref(),
            school_year: self.school_year.as_deref(),
            session: self.session.as_deref(),
            date: self.date.as_deref(),
            category: self.category.as_deref(),
            section: self.section.as_deref(),
            duration: self.duration.as_deref(),
            attendance_minutes: self.attendance_minutes.as_deref(),
        }
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

/// Texts of an event that [`EventVisitor`] collects: the elements
/// [`EdfiEvent::from_xml`] reads, each the first of its name in its place.
mod slot {
    /// StudentReference//StudentUniqueId.
    pub const STUDENT: usize = 0;
    /// SchoolReference//SchoolId, SchoolYear, SessionName.
    pub const SCHOOL_SCHOOL_ID: usize = 1;
    pub const SCHOOL_YEAR: usize = 2;
    pub const SCHOOL_SESSION: usize = 3;
    /// SectionReference//SchoolId, SchoolYear, SessionName, SectionIdentifier, LocalCourseCode.
    pub const SECTION_SCHOOL_ID: usize = 4;
    pub const SECTION_YEAR: usize = 5;
    pub const SECTION_SESSION: usize = 6;
    pub const SECTION_ID: usize = 7;
    pub const SECTION_COURSE: usize = 8;
    /// SessionReference//SchoolId, SchoolYear, SessionName.
    pub const SESSION_SCHOOL_ID: usize = 9;
    pub const SESSION_YEAR: usize = 10;
    pub const SESSION_SESSION: usize = 11;
    /// Children of the event.
    pub const DATE: usize = 12;
    pub const CATEGORY: usize = 13;
    pub const DURATION: usize = 14;
    pub const SCHOOL_MINUTES: usize = 15;
    pub const SECTION_MINUTES: usize = 16;
    pub const COUNT: usize = 17;
    /// No slot: the element's text is not kept.
    pub const NONE: u8 = u8::MAX;
}

/// The references of an event whose descendants are read.
mod reference {
    pub const STUDENT: u8 = 0;
    pub const SCHOOL: u8 = 1;
    pub const SECTION: u8 = 2;
    pub const SESSION: u8 = 3;
    /// Outside the references read.
    pub const NONE: u8 = u8::MAX;
}

/// Fills an event's fields straight from the XML, without a tree: the fast
/// path of [`EdfiXmlReader`], reading exactly what [`EdfiEvent::from_xml`]
/// reads. The text buffers are reused from event to event.
#[derive(Debug)]
struct EventVisitor {
    scope: EventScope,
    texts: [String; slot::COUNT],
    /// Slots whose element has been seen (bit per slot): later elements of
    /// the same name and place are ignored, like `child` and `find` do.
    seen: u32,
    /// References seen (bit per reference): only the first of each is read.
    references_seen: u8,
    /// Per open element: the reference it is in and the slot of its text.
    open: Vec<(u8, u8)>,
    /// "course/id" of a section with a LocalCourseCode.
    section: String,
    section_composed: bool,
}

impl Default for EventVisitor {
    fn default() -> Self {
        EventVisitor {
            scope: EventScope::School,
            texts: Default::default(),
            seen: 0,
            references_seen: 0,
            open: Vec::with_capacity(16),
            section: String::new(),
            section_composed: false,
        }
    }
}

impl EventVisitor {
    /// The slot, if it is the first element seen for it.
    fn claim(&mut self, slot: usize) -> u8 {
        if self.seen & (1 << slot) != 0 {
            return slot::NONE;
        }
        self.seen |= 1 << slot;
        self.texts[slot].clear();
        slot as u8
    }

    /// The reference, if it is the first of its kind.
    fn claim_reference(&mut self, reference: u8) -> u8 {
        if self.references_seen & (1 << reference) != 0 {
            return reference::NONE;
        }
        self.references_seen |= 1 << reference;
        reference
    }

    /// The trimmed, non-empty text of a slot's element.
    fn slot_text(&self, slot: usize) -> Option<&str> {
        if self.seen & (1 << slot) == 0 {
            return None;
        }
        Some(self.texts[slot].trim()).filter(|t| !t.is_empty())
    }

    /// Composes the section of the event just read (before [`Self::fields`]).
    fn finish(&mut self) {
        self.section_composed = false;
        let seen = |slot: usize| self.seen & (1 << slot) != 0;
        if !(seen(slot::SECTION_ID) && seen(slot::SECTION_COURSE)) {
            return;
        }
        let id = self.texts[slot::SECTION_ID].trim();
        let course = self.texts[slot::SECTION_COURSE].trim();
        if !id.is_empty() && !course.is_empty() {
            self.section.clear();
            self.section.push_str(course);
            self.section.push('/');
            self.section.push_str(id);
            self.section_composed = true;
        }
    }

    /// The fields of the event just read, combined like [`EdfiEvent::from_xml`] does.
    fn fields(&self) -> EventFields<'_> {
        let t = |slot| self.slot_text(slot);
        let section = if self.section_composed {
            Some(self.section.as_str())
        } else {
            t(slot::SECTION_ID)
        };
        EventFields {
            scope: self.scope,
            student: t(slot::STUDENT),
            school: t(slot::SCHOOL_SCHOOL_ID)
                .or_else(|| t(slot::SECTION_SCHOOL_ID))
                .or_else(|| t(slot::SESSION_SCHOOL_ID)),
            school_year: t(slot::SESSION_YEAR)
                .or_else(|| t(slot::SCHOOL_YEAR))
                .or_else(|| t(slot::SECTION_YEAR)),
            session: t(slot::SESSION_SESSION)
                .or_else(|| t(slot::SCHOOL_SESSION))
                .or_else(|| t(slot::SECTION_SESSION)),
            date: t(slot::DATE),
            category: t(slot::CATEGORY),
            section,
            duration: t(slot::DURATION),
            attendance_minutes: t(slot::SCHOOL_MINUTES).or_else(|| t(slot::SECTION_MINUTES)),
        }
    }
}

impl RecordVisitor for EventVisitor {
    fn start(&mut self, name: &[u8], depth: usize) {
        let frame = match depth {
            0 => {
                self.scope = if name == b"StudentSectionAttendanceEvent" {
                    EventScope::Section
                } else {
                    EventScope::School
                };
                self.seen = 0;
                self.references_seen = 0;
                self.open.clear();
                (reference::NONE, slot::NONE)
            }
            // The event's children (`child`: the first of each name).
            1 => match name {
                b"StudentReference" => (self.claim_reference(reference::STUDENT), slot::NONE),
                b"SchoolReference" => (self.claim_reference(reference::SCHOOL), slot::NONE),
                b"SectionReference" => (self.claim_reference(reference::SECTION), slot::NONE),
                b"SessionReference" => (self.claim_reference(reference::SESSION), slot::NONE),
                b"EventDate" => (reference::NONE, self.claim(slot::DATE)),
                b"AttendanceEventCategoryDescriptor" => (reference::NONE, self.claim(slot::CATEGORY)),
                b"EventDuration" => (reference::NONE, self.claim(slot::DURATION)),
                b"SchoolAttendanceDuration" => (reference::NONE, self.claim(slot::SCHOOL_MINUTES)),
                b"SectionAttendanceDuration" => (reference::NONE, self.claim(slot::SECTION_MINUTES)),
                _ => (reference::NONE, slot::NONE),
            },
            // Inside a reference (`find`: the first descendant of each name).
            _ => {
                let within = self.open.last().map_or(reference::NONE, |f| f.0);
                let wanted = match (within, name) {
                    (reference::NONE, _) => None,
                    (reference::STUDENT, b"StudentUniqueId") => Some(slot::STUDENT),
                    (reference::SCHOOL, b"SchoolId") => Some(slot::SCHOOL_SCHOOL_ID),
                    (reference::SCHOOL, b"SchoolYear") => Some(slot::SCHOOL_YEAR),
                    (reference::SCHOOL, b"SessionName") => Some(slot::SCHOOL_SESSION),
                    (reference::SECTION, b"SchoolId") => Some(slot::SECTION_SCHOOL_ID),
                    (reference::SECTION, b"SchoolYear") => Some(slot::SECTION_YEAR),
                    (reference::SECTION, b"SessionName") => Some(slot::SECTION_SESSION),
                    (reference::SECTION, b"SectionIdentifier") => Some(slot::SECTION_ID),
                    (reference::SECTION, b"LocalCourseCode") => Some(slot::SECTION_COURSE),
                    (reference::SESSION, b"SchoolId") => Some(slot::SESSION_SCHOOL_ID),
                    (reference::SESSION, b"SchoolYear") => Some(slot::SESSION_YEAR),
                    (reference::SESSION, b"SessionName") => Some(slot::SESSION_SESSION),
                    _ => None,
                };
                (within, wanted.map_or(slot::NONE, |s| self.claim(s)))
            }
        };
        self.open.push(frame);
    }

    fn text(&mut self, text: &str) {
        if let Some(&(_, slot)) = self.open.last()
            && slot != slot::NONE
        {
            self.texts[usize::from(slot)].push_str(text);
        }
    }

    fn end(&mut self, _depth: usize) {
        self.open.pop();
    }
}

/// Streams canonical items out of an Ed-Fi interchange file.
///
/// Events are read straight into their fields ([`EventVisitor`]) beside a
/// compact log of the event, from which a rejected event's XML is rebuilt
/// for the quarantine.
pub struct EdfiXmlReader<R> {
    inner: XmlRecords<R>,
    mapping: EdfiMapping,
    visitor: (EventVisitor, RecordLog),
}

impl<R: BufRead> EdfiXmlReader<R> {
    /// Reads `input`; `location` names it in errors.
    pub fn new(input: R, location: impl Into<String>, mapping: EdfiMapping) -> EdfiXmlReader<R> {
        EdfiXmlReader {
            inner: XmlRecords::new(input, location, RECORD_ELEMENTS),
            mapping,
            visitor: Default::default(),
        }
    }
}

impl<R: BufRead> Iterator for EdfiXmlReader<R> {
    type Item = io::Result<Parsed>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let position = match self.inner.next_with(&mut self.visitor)? {
                Ok(p) => p,
                Err(e) => return Some(Err(io::Error::from(e))),
            };
            let (event, log) = &mut self.visitor;
            event.finish();
            match event.fields().to_record(&self.mapping) {
                Ok(Some(r)) => return Some(Ok(Parsed::Record(r))),
                Ok(None) => continue,
                Err(e) => {
                    let element = log.element();
                    return Some(Ok(Parsed::Rejected(QuarantineEntry {
                        source: Some(self.mapping.source.clone()),
                        location: format!("{}:{}:{}", self.inner.location(), position.line, position.column),
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
    use proptest::prelude::*;

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

    /// One school event of each category the issue maps, with durations.
    fn one_event_per_category() -> Vec<String> {
        vec![
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
        ]
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
        let mut body = one_event_per_category();
        body.push(school_event(
            "Excused Absence",
            "2026-03-10",
            "<EventDuration>0.05</EventDuration>",
        ));
        let body = body.concat();
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

    /// The reader before the fast path: a tree per event, `from_xml`, `to_record`.
    fn via_tree(xml: &str, location: &str) -> Vec<Result<Parsed, String>> {
        let m = EdfiMapping::default();
        let mut out = Vec::new();
        for element in XmlRecords::new(xml.as_bytes(), location, RECORD_ELEMENTS) {
            let element = match element {
                Ok(e) => e,
                Err(e) => {
                    out.push(Err(io::Error::from(e).to_string()));
                    break;
                }
            };
            match EdfiEvent::from_xml(&element).to_record(&m) {
                Ok(Some(r)) => out.push(Ok(Parsed::Record(r))),
                Ok(None) => {}
                Err(e) => out.push(Ok(Parsed::Rejected(QuarantineEntry {
                    source: Some(m.source.clone()),
                    location: format!("{location}:{}:{}", element.line, element.column),
                    reason: format!("{}: {e}", element.name),
                    raw: element.to_xml(),
                }))),
            }
        }
        out
    }

    fn fast(xml: &str, location: &str) -> Vec<Result<Parsed, String>> {
        EdfiXmlReader::new(xml.as_bytes(), location, EdfiMapping::default())
            .map(|p| p.map_err(|e| e.to_string()))
            .collect()
    }

    fn interchange(body: &str) -> String {
        format!(
            "<?xml version=\"1.0\"?>\n<InterchangeStudentAttendance xmlns=\"{NS}\">\n{body}</InterchangeStudentAttendance>\n"
        )
    }

    /// Odd but well-formed events: prefixes, references, CDATA, comments,
    /// mixed content, repeated and empty elements, fallbacks between references.
    const ODD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ed:InterchangeStudentAttendance xmlns:ed="http://ed-fi.org/5.0.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <ed:StudentSchoolAttendanceEvent id="a&amp;b" xsi:type="x">
    <ed:AttendanceEventCategoryDescriptor>  uri://ed-fi.org/AttendanceEventCategoryDescriptor#<![CDATA[Excused]]> Absence  </ed:AttendanceEventCategoryDescriptor>
    <ed:EventDate><!-- c -->2026-03-02</ed:EventDate>
    <ed:StudentReference><ed:StudentIdentity><ed:StudentUniqueId> A &amp; B &#x41;&#66; </ed:StudentUniqueId></ed:StudentIdentity></ed:StudentReference>
    <ed:SchoolReference><ed:SchoolIdentity><ed:SchoolId>s&lt;1&gt;</ed:SchoolId></ed:SchoolIdentity></ed:SchoolReference>
    <ed:SessionReference><ed:SessionIdentity><ed:SchoolYear>2026</ed:SchoolYear><ed:SessionName>Vår &quot;x&quot; &apos;y&apos;</ed:SessionName></ed:SessionIdentity></ed:SessionReference>
  </ed:StudentSchoolAttendanceEvent>
  <StudentSchoolAttendanceEvent>
    <AttendanceEventCategoryDescriptor>Tardy</AttendanceEventCategoryDescriptor>
    <EventDate>2026-03-<X/>03<Y>junk</Y></EventDate>
    <EventDate>2026-03-09</EventDate>
    <SchoolAttendanceDuration> 7 </SchoolAttendanceDuration>
    <StudentReference><StudentUniqueId>direct</StudentUniqueId><StudentUniqueId>second</StudentUniqueId></StudentReference>
    <SessionReference><SessionIdentity><SchoolId>from-session</SchoolId><SessionName></SessionName></SessionIdentity><SessionName>later</SessionName></SessionReference>
    <SchoolReference><SchoolIdentity><SchoolYear>1999</SchoolYear><SessionName>from-school</SessionName></SchoolIdentity></SchoolReference>
  </StudentSchoolAttendanceEvent>
  <StudentSchoolAttendanceEvent>
    <AttendanceEventCategoryDescriptor>uri://x#unexcused absence</AttendanceEventCategoryDescriptor>
    <EventDate>2026-03-04T00:00:00</EventDate>
    <EventDuration>0.5</EventDuration>
    <StudentReference></StudentReference>
    <StudentReference><StudentUniqueId>ignored</StudentUniqueId></StudentReference>
    <SchoolReference/>
    <SchoolReference><SchoolId>ignored</SchoolId></SchoolReference>
  </StudentSchoolAttendanceEvent>
  <StudentSchoolAttendanceEvent>
    <AttendanceEventCategoryDescriptor>uri://x#unexcused absence</AttendanceEventCategoryDescriptor>
    <EventDate>2026-03-05</EventDate>
    <EventDuration>0.5</EventDuration>
    <StudentReference><StudentUniqueId>p1</StudentUniqueId></StudentReference>
    <SchoolReference><SchoolId><SchoolId>inner</SchoolId>outer</SchoolId></SchoolReference>
  </StudentSchoolAttendanceEvent>
  <StudentSectionAttendanceEvent>
    <AttendanceEventCategoryDescriptor>Excused Absence</AttendanceEventCategoryDescriptor>
    <EventDate>2026-03-06</EventDate>
    <SectionAttendanceDuration>45</SectionAttendanceDuration>
    <SchoolAttendanceDuration></SchoolAttendanceDuration>
    <StudentReference><StudentIdentity><StudentUniqueId>p2</StudentUniqueId></StudentIdentity></StudentReference>
    <SchoolReference><SchoolId>school-wins</SchoolId></SchoolReference>
    <SectionReference><SectionIdentity><SchoolId>sec</SchoolId><SectionIdentifier>  9B  </SectionIdentifier><SchoolYear>2025</SchoolYear></SectionIdentity></SectionReference>
  </StudentSectionAttendanceEvent>
  <StudentSectionAttendanceEvent>
    <AttendanceEventCategoryDescriptor>Tardy</AttendanceEventCategoryDescriptor>
    <EventDate>2026-03-06</EventDate>
    <SectionAttendanceDuration>x</SectionAttendanceDuration>
    <StudentReference><StudentIdentity><StudentUniqueId>p2</StudentUniqueId></StudentIdentity></StudentReference>
    <SectionReference><SectionIdentity><LocalCourseCode>C&amp;D</LocalCourseCode><SchoolId>sec</SchoolId></SectionIdentity></SectionReference>
  </StudentSectionAttendanceEvent>
  <StudentSectionAttendanceEvent>
    <AttendanceEventCategoryDescriptor>Tardy</AttendanceEventCategoryDescriptor>
    <EventDate>2026-03-06</EventDate>
    <StudentReference><StudentIdentity><StudentUniqueId>p3</StudentUniqueId></StudentIdentity></StudentReference>
    <SectionReference><SectionIdentity><LocalCourseCode>  </LocalCourseCode><SectionIdentifier>id</SectionIdentifier><SchoolId>sec</SchoolId></SectionIdentity></SectionReference>
  </StudentSectionAttendanceEvent>
  <StudentSchoolAttendanceEvent/>
  <StudentSchoolAttendanceEvent a="1"><AttendanceEventCategoryDescriptor>Early departure</AttendanceEventCategoryDescriptor></StudentSchoolAttendanceEvent>
  <Wrapper><StudentSchoolAttendanceEvent><AttendanceEventCategoryDescriptor>Early departure</AttendanceEventCategoryDescriptor><EventDate>2026-13-01</EventDate><StudentReference><StudentUniqueId>q</StudentUniqueId></StudentReference><SchoolReference><SchoolId>q</SchoolId></SchoolReference></StudentSchoolAttendanceEvent></Wrapper>
  <StudentSchoolAttendanceEvent><AttendanceEventCategoryDescriptor>Excused Absence</AttendanceEventCategoryDescriptor><EventDate>2026-03-01</EventDate><StudentReference><StudentUniqueId>q</StudentUniqueId></StudentReference><SchoolReference><SchoolId>q</SchoolId></SchoolReference><EventDuration>nan</EventDuration></StudentSchoolAttendanceEvent>
</ed:InterchangeStudentAttendance>
"#;

    #[test]
    fn the_fast_path_reads_what_the_tree_reads() {
        let section = |course: &str, id: &str, category: &str| {
            format!(
                "<StudentSectionAttendanceEvent>\
<AttendanceEventCategoryDescriptor>uri://ed-fi.org/AttendanceEventCategoryDescriptor#{category}</AttendanceEventCategoryDescriptor>\
<EventDate>2026-03-02</EventDate><SectionAttendanceDuration>45</SectionAttendanceDuration>\
<StudentReference><StudentIdentity><StudentUniqueId>7</StudentUniqueId></StudentIdentity></StudentReference>\
<SectionReference><SectionIdentity>{course}<SchoolId>9</SchoolId><SchoolYear>2026</SchoolYear>\
<SectionIdentifier>{id}</SectionIdentifier><SessionName>Vår</SessionName></SectionIdentity></SectionReference>\
</StudentSectionAttendanceEvent>\n"
            )
        };
        let mut body = one_event_per_category();
        body.extend([
            school_event("Sick", "2026-03-03", ""),
            school_event("Tardy", "2026-02-30", ""),
            school_event("Excused Absence", "2026-03-04", "<EventDuration>-1</EventDuration>"),
            section("<LocalCourseCode>MAT8</LocalCourseCode>", "8A-1", "Unexcused Absence"),
            section("", "8A-2", "Excused Absence"),
            section("<LocalCourseCode>MAT8</LocalCourseCode>", "8A-3", "Sick"),
        ]);
        let body = body.concat();
        let fixture = include_str!("../../adapters/edfi-xml/fixtures/attendance.xml");
        let cut = interchange(&body);
        let cut = &cut[..cut.len() - 300];
        for (xml, name) in [
            (fixture, "attendance.xml"),
            (&interchange(&body), "a.xml"),
            (ODD, "odd.xml"),
            (cut, "cut.xml"),
            (&ODD.replace("</ed:EventDate>", "</EventDate>"), "mismatch.xml"),
            (&ODD.replace("&apos;y", "&zz;y"), "entity.xml"),
        ] {
            assert_eq!(fast(xml, name), via_tree(xml, name), "{name}");
        }
        for xml in [fixture, &interchange(&body), ODD] {
            let got = fast(xml, "x.xml");
            assert!(got.iter().any(|p| matches!(p, Ok(Parsed::Rejected(_)))));
            assert!(
                got.iter()
                    .any(|p| matches!(p, Ok(Parsed::Record(r)) if r.extensions.contains_key("section")))
            );
        }
        let odd = fast(ODD, "odd.xml");
        assert!(
            matches!(&odd[5], Ok(Parsed::Rejected(q)) if q.raw.starts_with("<StudentSectionAttendanceEvent><AttendanceEventCategoryDescriptor>Tardy<"))
        );
        assert!(matches!(&odd[1], Ok(Parsed::Record(r)) if r.pupil == "direct" && r.school == "from-session"));
    }

    /// Names an event is read by, and some it is not.
    const NAMES: &[&str] = &[
        "StudentReference",
        "SchoolReference",
        "SectionReference",
        "SessionReference",
        "StudentUniqueId",
        "SchoolId",
        "SchoolYear",
        "SessionName",
        "SectionIdentifier",
        "LocalCourseCode",
        "EventDate",
        "AttendanceEventCategoryDescriptor",
        "EventDuration",
        "SchoolAttendanceDuration",
        "SectionAttendanceDuration",
        "StudentSchoolAttendanceEvent",
        "SchoolIdentity",
        "X",
    ];

    const TEXTS: &[&str] = &[
        "",
        " ",
        "\n  ",
        "7",
        " 2026-03-02 ",
        "Tardy",
        "uri://x#Excused Absence",
        "Unexcused Absence",
        "a &amp; b",
        "0.5",
        "<![CDATA[9]]>",
        "<!--c-->",
        "&#x41;",
    ];

    fn arb_element() -> impl Strategy<Value = String> {
        let leaf = (0..NAMES.len(), 0..TEXTS.len(), any::<bool>()).prop_map(|(n, t, empty)| {
            if empty {
                format!("<{}/>", NAMES[n])
            } else {
                format!("<{0}>{1}</{0}>", NAMES[n], TEXTS[t])
            }
        });
        leaf.prop_recursive(4, 40, 5, |inner| {
            (
                0..NAMES.len(),
                proptest::collection::vec((inner, 0..TEXTS.len()), 0..5),
                0..TEXTS.len(),
            )
                .prop_map(|(n, children, t)| {
                    let content: String = children.into_iter().map(|(c, t)| c + TEXTS[t]).collect();
                    format!("<{0}>{1}{content}</{0}>", NAMES[n], TEXTS[t])
                })
        })
    }

    /// A reference as the events have them, sometimes odd.
    fn arb_reference() -> impl Strategy<Value = String> {
        let leaf = (4..10usize, 0..TEXTS.len(), any::<bool>()).prop_map(|(n, t, wrap)| {
            let leaf = format!("<{0}>{1}</{0}>", NAMES[n], TEXTS[t]);
            if wrap {
                format!("<Identity>{leaf}</Identity>")
            } else {
                leaf
            }
        });
        (
            0..4usize,
            proptest::collection::vec(prop_oneof![4 => leaf, 1 => arb_element()], 0..6),
        )
            .prop_map(|(n, children)| format!("<{0}>{1}</{0}>", NAMES[n], children.concat()))
    }

    fn arb_child() -> impl Strategy<Value = String> {
        let direct = (10..15usize, 0..TEXTS.len()).prop_map(|(n, t)| format!("<{0}>{1}</{0}>", NAMES[n], TEXTS[t]));
        prop_oneof![3 => arb_reference(), 2 => direct, 1 => arb_element()]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn the_fast_path_reads_any_event_like_the_tree(
            events in proptest::collection::vec(
                (any::<bool>(), any::<bool>(), proptest::collection::vec(arb_child(), 0..8)),
                1..4,
            )
        ) {
            let body: String = events
                .into_iter()
                .map(|(section, good, children)| {
                    let name = if section { "StudentSectionAttendanceEvent" } else { "StudentSchoolAttendanceEvent" };
                    let good = if good {
                        "<AttendanceEventCategoryDescriptor>Excused Absence</AttendanceEventCategoryDescriptor>\
    <EventDate>2026-03-02</EventDate><StudentReference><StudentUniqueId>s</StudentUniqueId></StudentReference>"
                    } else {
                        ""
                    };
                    format!("<{name}>{good}{}</{name}>\n", children.concat())
                })
                .collect();
            let xml = interchange(&body);
            proptest::prop_assert_eq!(fast(&xml, "p.xml"), via_tree(&xml, "p.xml"));
        }
    }
}
