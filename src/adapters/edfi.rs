//! Ed-Fi Data Standard 5.2 attendance events, from bulk XML
//! (InterchangeStudentAttendance, as `Interchange-StudentAttendance.xsd`
//! defines it) or from the ODS/API's JSON resources.
//!
//! Both routes fill an [`EdfiEvent`]; one mapping turns it into a canonical
//! record (the table is in `adapters/edfi-xml/README.md`). The record id is
//! a digest of the event's natural key, so the same event imported twice (or
//! from XML and then from the API) is one record.
//!
//! In the interchange, an event's date, category, reason and duration sit
//! in a nested `AttendanceEvent`; the pupil, school, session and section are
//! references whose identity may be wrapped (`StudentIdentity`,
//! `CourseOfferingReference/CourseOfferingIdentity`) or looked up
//! (`StudentLookup`), so they are read as the first descendant of their name.

use super::xml::{Element, RecordLog, RecordVisitor, XmlError, XmlRecords};
use super::{Parsed, Rejected, Skip};
use crate::domain::record::{parse_date, period_from_name};
use crate::domain::{AbsenceRecord, Fault, Kind, RejectCode, Validity};
use chrono::NaiveDate;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::io::{self, BufRead};

/// The record elements of InterchangeStudentAttendance: the two that carry
/// absence, and the three that are read only to be counted as skipped.
pub const RECORD_ELEMENTS: &[&str] = &[
    "StudentSchoolAttendanceEvent",
    "StudentSectionAttendanceEvent",
    "StudentInterventionAttendanceEvent",
    "StudentProgramAttendanceEvent",
    "SectionAttendanceTakenEvent",
];

/// Whether an event concerns the school day or one section (a lesson).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventScope {
    /// StudentSchoolAttendanceEvent.
    #[default]
    School,
    /// StudentSectionAttendanceEvent.
    Section,
    /// An event tilstede does not follow (intervention or program
    /// attendance, attendance taken for a section): skipped and counted.
    NotFollowed(&'static str),
}

impl EventScope {
    /// The scope of a record element by its local name.
    fn of_element(name: &[u8]) -> EventScope {
        match name {
            b"StudentSectionAttendanceEvent" => EventScope::Section,
            b"StudentInterventionAttendanceEvent" => EventScope::NotFollowed("StudentInterventionAttendanceEvent"),
            b"StudentProgramAttendanceEvent" => EventScope::NotFollowed("StudentProgramAttendanceEvent"),
            b"SectionAttendanceTakenEvent" => EventScope::NotFollowed("SectionAttendanceTakenEvent"),
            _ => EventScope::School,
        }
    }
}

/// The fields of an Ed-Fi attendance event that the mapping uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EdfiEvent {
    /// School or section event.
    pub scope: EventScope,
    /// StudentUniqueId.
    pub student: Option<String>,
    /// SchoolId.
    pub school: Option<String>,
    /// SchoolYear of the session (`2025-2026` in XML, `2026` in the API).
    pub school_year: Option<String>,
    /// SessionName.
    pub session: Option<String>,
    /// AttendanceEvent/EventDate as given.
    pub date: Option<String>,
    /// AttendanceEvent/AttendanceEventCategory as given (URI or bare code value).
    pub category: Option<String>,
    /// Section identity (`LocalCourseCode/SectionIdentifier`), section events only.
    pub section: Option<String>,
    /// LocalCourseCode of the section's course offering.
    pub course: Option<String>,
    /// ClassPeriodName of the first ClassPeriodReference.
    pub class_period: Option<String>,
    /// AttendanceEvent/EventDuration in days, as given.
    pub duration: Option<String>,
    /// SchoolAttendanceDuration / SectionAttendanceDuration in minutes, as given.
    pub attendance_minutes: Option<String>,
    /// ArrivalTime (xs:time).
    pub arrival: Option<String>,
    /// DepartureTime (xs:time).
    pub departure: Option<String>,
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
    /// Partial: present for part of the day, away for the rest.
    Partial,
}

impl Category {
    /// The category of a descriptor value: a URI such as
    /// `uri://ed-fi.org/AttendanceEventCategoryDescriptor#Tardy` or a bare code value.
    pub fn of_descriptor(descriptor: &str) -> Option<Category> {
        Category::of_code(code_value(descriptor))
    }

    /// The category of a code value (ASCII case ignored).
    fn of_code(code: &str) -> Option<Category> {
        const CODES: [(&str, Category); 7] = [
            ("in attendance", Category::Present),
            ("present", Category::Present),
            ("excused absence", Category::Excused),
            ("unexcused absence", Category::Unexcused),
            ("tardy", Category::Tardy),
            ("early departure", Category::EarlyDeparture),
            ("partial", Category::Partial),
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

/// The end year of a school year: the interchange writes `2025-2026`
/// (SchoolYearType), the API `2026`; both key the same event.
fn end_year(year: &str) -> &str {
    match year.as_bytes() {
        [_, _, _, _, b'-', _, _, _, _] => &year[5..],
        _ => year,
    }
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
        /// The reason code.
        code: RejectCode,
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

/// A time of day as `HH:MM` or `HH:MM:SS` (fractions and a zone are
/// dropped); `None` when it is not one.
fn time_of_day(t: &str) -> Option<&str> {
    let hms = t
        .get(..8)
        .filter(|p| chrono::NaiveTime::parse_from_str(p, "%H:%M:%S").is_ok());
    hms.or_else(|| {
        t.get(..5)
            .filter(|p| chrono::NaiveTime::parse_from_str(p, "%H:%M").is_ok())
    })
}

impl From<EdfiError> for Fault {
    fn from(e: EdfiError) -> Fault {
        e.fault()
    }
}

impl EdfiError {
    /// The rejection's code and element, without the input's values.
    pub fn fault(&self) -> Fault {
        match self {
            EdfiError::Missing(element) => Fault::new(RejectCode::MissingField, *element),
            EdfiError::Invalid { code, element, .. } => Fault::new(*code, *element),
        }
    }
}

/// The time of day of an element that holds one, if it is given.
fn clock<'a>(t: Option<&'a str>, element: &'static str) -> Result<Option<&'a str>, EdfiError> {
    match t {
        None => Ok(None),
        Some(t) => time_of_day(t).map(Some).ok_or_else(|| EdfiError::Invalid {
            code: RejectCode::BadValue,
            element,
            message: format!("«{t}» er ikke et klokkeslett"),
        }),
    }
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
    course: Option<&'a str>,
    class_period: Option<&'a str>,
    duration: Option<&'a str>,
    attendance_minutes: Option<&'a str>,
    arrival: Option<&'a str>,
    departure: Option<&'a str>,
}

impl EventFields<'_> {
    /// The deterministic record id: a digest of the natural key (student,
    /// school, school year, session, date, category and, for section
    /// events, section), after a short digest of the student alone. The
    /// student part keeps a pupil's records next to each other in the
    /// store's key index, so an import (which comes pupil by pupil) touches
    /// few index pages.
    fn record_id(self) -> String {
        self.record_id_with(self.category.map(code_value))
    }

    /// [`Self::record_id`] with the category's code value given.
    fn record_id_with(self, code: Option<&str>) -> String {
        let scope = match self.scope {
            EventScope::School => "school",
            EventScope::Section => "section",
            EventScope::NotFollowed(name) => name,
        };
        let parts = [
            Some(scope),
            self.student,
            self.school,
            self.school_year.map(end_year),
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
    /// is not absence. The table is in `adapters/edfi-xml/README.md`.
    fn to_record(self, m: &EdfiMapping) -> Result<Option<AbsenceRecord>, EdfiError> {
        let descriptor = self
            .category
            .ok_or(EdfiError::Missing("AttendanceEvent/AttendanceEventCategory"))?;
        let code = code_value(descriptor);
        let category = Category::of_code(code).ok_or_else(|| EdfiError::Invalid {
            code: RejectCode::UnknownCode,
            element: "AttendanceEvent/AttendanceEventCategory",
            message: format!("ukjent kategori «{code}»"),
        })?;
        if category == Category::Present {
            return Ok(None);
        }
        let student = self
            .student
            .ok_or(EdfiError::Missing("StudentReference//StudentUniqueId"))?;
        let school = self.school.ok_or(EdfiError::Missing("SchoolId"))?;
        let date_text = self.date.ok_or(EdfiError::Missing("AttendanceEvent/EventDate"))?;
        let date: NaiveDate =
            parse_date(date_text.get(..10).unwrap_or(date_text)).map_err(|message| EdfiError::Invalid {
                code: RejectCode::BadDate,
                element: "AttendanceEvent/EventDate",
                message,
            })?;
        let duration = match self.duration {
            None => None,
            Some(d) => match d.trim().parse::<f64>() {
                Ok(v) if v > 0.0 && v.is_finite() => Some(v),
                _ => {
                    return Err(EdfiError::Invalid {
                        code: RejectCode::BadNumber,
                        element: "AttendanceEvent/EventDuration",
                        message: format!("«{d}» er ikke et positivt tall"),
                    });
                }
            },
        };
        let minutes_element = match self.scope {
            EventScope::Section => "SectionAttendanceDuration",
            _ => "SchoolAttendanceDuration",
        };
        let minutes = match self.attendance_minutes {
            None => None,
            Some(t) => Some(t.trim().parse::<u32>().map_err(|_| EdfiError::Invalid {
                code: RejectCode::BadNumber,
                element: minutes_element,
                message: format!("«{t}» er ikke et heltall minutter"),
            })?),
        };
        let arrival = clock(self.arrival, "ArrivalTime")?;
        let departure = clock(self.departure, "DepartureTime")?;
        let lpd = m.lessons_per_day.max(1);
        let part_of_day = |d: f64| (d * f64::from(lpd)).round().clamp(1.0, f64::from(lpd)) as u32;
        let (kind, lessons, validity) = match category {
            Category::Present => return Ok(None),
            Category::Tardy => (Kind::Late, 1, Validity::Unclassified),
            Category::EarlyDeparture => (Kind::Left, 1, Validity::Unclassified),
            // Away for part of the day, not yet classified by the school.
            Category::Partial => match (self.scope, duration) {
                (EventScope::School, Some(d)) => (Kind::Lesson, part_of_day(d), Validity::Unclassified),
                _ => (Kind::Lesson, 1, Validity::Unclassified),
            },
            Category::Excused | Category::Unexcused => {
                let validity = if category == Category::Excused {
                    Validity::Valid
                } else {
                    Validity::Invalid
                };
                match (self.scope, duration) {
                    // A section is one lesson.
                    (EventScope::Section, _) => (Kind::Lesson, 1, validity),
                    (_, Some(d)) if d < 1.0 => (Kind::Lesson, part_of_day(d), validity),
                    _ => (Kind::Day, 1, validity),
                }
            }
        };
        let mut extensions = Map::new();
        extensions.insert("source_code".into(), Value::String(code.to_string()));
        extensions.insert("source_label".into(), Value::String(code.to_string()));
        if let Some(s) = self.section {
            extensions.insert("section".into(), Value::String(s.to_string()));
        }
        let period = self.class_period.and_then(period_from_name);
        if let (Some(name), None) = (self.class_period, period) {
            extensions.insert("period_name".into(), Value::String(name.to_string()));
        }
        match (kind, arrival, departure) {
            (Kind::Late, Some(t), _) => {
                extensions.insert("arrival_time".into(), Value::String(t.to_string()));
            }
            (Kind::Left, _, Some(t)) => {
                extensions.insert("departure_time".into(), Value::String(t.to_string()));
            }
            _ => {}
        }
        Ok(Some(AbsenceRecord {
            source: m.source.clone(),
            id: self.record_id_with(Some(code)),
            version: 1,
            pupil: student.to_string(),
            school: school.to_string(),
            date,
            kind,
            lessons,
            minutes: if kind == Kind::Late { minutes } else { None },
            validity,
            reason: None,
            deleted: false,
            subject: self.course.map(str::to_string),
            period,
            extensions,
        }))
    }
}

impl EdfiEvent {
    /// The deterministic record id (see the mapping's natural key).
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
            course: self.course.as_deref(),
            class_period: self.class_period.as_deref(),
            duration: self.duration.as_deref(),
            attendance_minutes: self.attendance_minutes.as_deref(),
            arrival: self.arrival.as_deref(),
            departure: self.departure.as_deref(),
        }
    }

    /// Reads an event from an interchange element.
    pub fn from_xml(e: &Element) -> EdfiEvent {
        let text = |el: Option<&Element>| el.map(|x| x.text.clone()).filter(|t| !t.is_empty());
        let event = e.child("AttendanceEvent");
        let in_event = |name: &str| text(event.and_then(|a| a.child(name)));
        let session = e.child("SessionReference");
        let section_ref = e.child("SectionReference");
        let course = text(section_ref.and_then(|s| s.find("LocalCourseCode")));
        let section = section_ref.and_then(|s| {
            let id = text(s.find("SectionIdentifier"))?;
            Some(match &course {
                Some(course) => format!("{course}/{id}"),
                None => id,
            })
        });
        let in_section = |name: &str| text(section_ref.and_then(|s| s.find(name)));
        let in_session = |name: &str| text(session.and_then(|s| s.find(name)));
        EdfiEvent {
            scope: EventScope::of_element(e.name.as_bytes()),
            student: text(e.child("StudentReference").and_then(|s| s.find("StudentUniqueId"))),
            school: text(e.child("SchoolReference").and_then(|s| s.find("SchoolId")))
                .or_else(|| in_section("SchoolId"))
                .or_else(|| in_session("SchoolId")),
            school_year: in_session("SchoolYear").or_else(|| in_section("SchoolYear")),
            session: in_session("SessionName").or_else(|| in_section("SessionName")),
            date: in_event("EventDate"),
            category: in_event("AttendanceEventCategory"),
            section,
            course,
            class_period: text(e.child("ClassPeriodReference").and_then(|c| c.find("ClassPeriodName"))),
            duration: in_event("EventDuration"),
            attendance_minutes: text(e.child("SchoolAttendanceDuration"))
                .or_else(|| text(e.child("SectionAttendanceDuration"))),
            arrival: text(e.child("ArrivalTime")),
            departure: text(e.child("DepartureTime")),
        }
    }
}

/// Texts of an event that [`EventVisitor`] collects: the elements
/// [`EdfiEvent::from_xml`] reads, each the first of its name in its place.
mod slot {
    /// StudentReference//StudentUniqueId.
    pub const STUDENT: usize = 0;
    /// SchoolReference//SchoolId.
    pub const SCHOOL_SCHOOL_ID: usize = 1;
    /// SessionReference//SchoolId, SchoolYear, SessionName.
    pub const SESSION_SCHOOL_ID: usize = 2;
    pub const SESSION_YEAR: usize = 3;
    pub const SESSION_NAME: usize = 4;
    /// SectionReference//SchoolId, SchoolYear, SessionName, SectionIdentifier, LocalCourseCode.
    pub const SECTION_SCHOOL_ID: usize = 5;
    pub const SECTION_YEAR: usize = 6;
    pub const SECTION_SESSION: usize = 7;
    pub const SECTION_ID: usize = 8;
    pub const SECTION_COURSE: usize = 9;
    /// AttendanceEvent/EventDate, AttendanceEventCategory, EventDuration.
    pub const DATE: usize = 10;
    pub const CATEGORY: usize = 11;
    pub const DURATION: usize = 12;
    /// Children of the event.
    pub const SCHOOL_MINUTES: usize = 13;
    pub const SECTION_MINUTES: usize = 14;
    pub const ARRIVAL: usize = 15;
    pub const DEPARTURE: usize = 16;
    /// ClassPeriodReference//ClassPeriodName.
    pub const CLASS_PERIOD: usize = 17;
    pub const COUNT: usize = 18;
    /// No slot: the element's text is not kept.
    pub const NONE: u8 = u8::MAX;
}

/// The children of an event whose descendants are read.
mod reference {
    pub const STUDENT: u8 = 0;
    pub const SCHOOL: u8 = 1;
    pub const SECTION: u8 = 2;
    pub const SESSION: u8 = 3;
    pub const CLASS_PERIOD: u8 = 4;
    /// AttendanceEvent: its children only.
    pub const EVENT: u8 = 5;
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
            school_year: t(slot::SESSION_YEAR).or_else(|| t(slot::SECTION_YEAR)),
            session: t(slot::SESSION_NAME).or_else(|| t(slot::SECTION_SESSION)),
            date: t(slot::DATE),
            category: t(slot::CATEGORY),
            section,
            course: t(slot::SECTION_COURSE),
            class_period: t(slot::CLASS_PERIOD),
            duration: t(slot::DURATION),
            attendance_minutes: t(slot::SCHOOL_MINUTES).or_else(|| t(slot::SECTION_MINUTES)),
            arrival: t(slot::ARRIVAL),
            departure: t(slot::DEPARTURE),
        }
    }
}

impl RecordVisitor for EventVisitor {
    fn start(&mut self, name: &[u8], depth: usize) {
        let frame = match depth {
            0 => {
                self.scope = EventScope::of_element(name);
                self.seen = 0;
                self.references_seen = 0;
                self.open.clear();
                (reference::NONE, slot::NONE)
            }
            // The event's children (`child`: the first of each name).
            1 => match name {
                b"AttendanceEvent" => (self.claim_reference(reference::EVENT), slot::NONE),
                b"StudentReference" => (self.claim_reference(reference::STUDENT), slot::NONE),
                b"SchoolReference" => (self.claim_reference(reference::SCHOOL), slot::NONE),
                b"SectionReference" => (self.claim_reference(reference::SECTION), slot::NONE),
                b"SessionReference" => (self.claim_reference(reference::SESSION), slot::NONE),
                b"ClassPeriodReference" => (self.claim_reference(reference::CLASS_PERIOD), slot::NONE),
                b"SchoolAttendanceDuration" => (reference::NONE, self.claim(slot::SCHOOL_MINUTES)),
                b"SectionAttendanceDuration" => (reference::NONE, self.claim(slot::SECTION_MINUTES)),
                b"ArrivalTime" => (reference::NONE, self.claim(slot::ARRIVAL)),
                b"DepartureTime" => (reference::NONE, self.claim(slot::DEPARTURE)),
                _ => (reference::NONE, slot::NONE),
            },
            // Inside AttendanceEvent (`child`) or a reference (`find`: the
            // first descendant of each name).
            _ => {
                let within = self.open.last().map_or(reference::NONE, |f| f.0);
                let wanted = match (within, name) {
                    (reference::NONE, _) => None,
                    (reference::EVENT, _) if depth != 2 => None,
                    (reference::EVENT, b"EventDate") => Some(slot::DATE),
                    (reference::EVENT, b"AttendanceEventCategory") => Some(slot::CATEGORY),
                    (reference::EVENT, b"EventDuration") => Some(slot::DURATION),
                    (reference::STUDENT, b"StudentUniqueId") => Some(slot::STUDENT),
                    (reference::SCHOOL, b"SchoolId") => Some(slot::SCHOOL_SCHOOL_ID),
                    (reference::SECTION, b"SchoolId") => Some(slot::SECTION_SCHOOL_ID),
                    (reference::SECTION, b"SchoolYear") => Some(slot::SECTION_YEAR),
                    (reference::SECTION, b"SessionName") => Some(slot::SECTION_SESSION),
                    (reference::SECTION, b"SectionIdentifier") => Some(slot::SECTION_ID),
                    (reference::SECTION, b"LocalCourseCode") => Some(slot::SECTION_COURSE),
                    (reference::SESSION, b"SchoolId") => Some(slot::SESSION_SCHOOL_ID),
                    (reference::SESSION, b"SchoolYear") => Some(slot::SESSION_YEAR),
                    (reference::SESSION, b"SessionName") => Some(slot::SESSION_NAME),
                    (reference::CLASS_PERIOD, b"ClassPeriodName") => Some(slot::CLASS_PERIOD),
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
        let position = match self.inner.next_with(&mut self.visitor)? {
            Ok(p) => p,
            Err(e) => return Some(Err(io::Error::from(e))),
        };
        let (event, log) = &mut self.visitor;
        if let EventScope::NotFollowed(name) = event.scope {
            return Some(Ok(Parsed::Skipped(Skip::NotFollowed(name))));
        }
        event.finish();
        Some(Ok(match event.fields().to_record(&self.mapping) {
            Ok(Some(r)) => Parsed::Record(r),
            Ok(None) => Parsed::Skipped(Skip::Presence),
            Err(e) => {
                let element = log.element();
                Parsed::Rejected(Rejected::new(
                    Some(self.mapping.source.clone()),
                    format!("{}:{}:{}", self.inner.location(), position.line, position.column),
                    e.fault(),
                    element.to_xml(),
                ))
            }
        }))
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

    const NS: &str = "http://ed-fi.org/5.2.0";

    /// A school event in the interchange's shape: `inside` goes in the
    /// AttendanceEvent after the category, `after` after the references.
    fn school_event(category: &str, date: &str, inside: &str, after: &str) -> String {
        format!(
            "<StudentSchoolAttendanceEvent>\
<AttendanceEvent><EventDate>{date}</EventDate>\
<AttendanceEventCategory>uri://ed-fi.org/AttendanceEventCategoryDescriptor#{category}</AttendanceEventCategory>{inside}</AttendanceEvent>\
<StudentReference><StudentIdentity><StudentUniqueId>604822</StudentUniqueId></StudentIdentity></StudentReference>\
<SchoolReference><SchoolIdentity><SchoolId>255901001</SchoolId></SchoolIdentity></SchoolReference>\
<SessionReference><SessionIdentity><SessionName>2025-2026 Høst</SessionName><SchoolYear>2025-2026</SchoolYear>\
<SchoolReference><SchoolIdentity><SchoolId>255901001</SchoolId></SchoolIdentity></SchoolReference></SessionIdentity></SessionReference>\
{after}</StudentSchoolAttendanceEvent>\n"
        )
    }

    fn section_event(category: &str, course: &str, id: &str, period: &str) -> String {
        format!(
            "<StudentSectionAttendanceEvent>\
<AttendanceEvent><EventDate>2026-03-02</EventDate>\
<AttendanceEventCategory>uri://ed-fi.org/AttendanceEventCategoryDescriptor#{category}</AttendanceEventCategory></AttendanceEvent>\
<StudentReference><StudentIdentity><StudentUniqueId>7</StudentUniqueId></StudentIdentity></StudentReference>\
<SectionReference><SectionIdentity><SectionIdentifier>{id}</SectionIdentifier>\
<CourseOfferingReference><CourseOfferingIdentity>{course}\
<SchoolReference><SchoolIdentity><SchoolId>9</SchoolId></SchoolIdentity></SchoolReference>\
<SessionReference><SessionIdentity><SessionName>Vår</SessionName><SchoolYear>2025-2026</SchoolYear>\
<SchoolReference><SchoolIdentity><SchoolId>9</SchoolId></SchoolIdentity></SchoolReference></SessionIdentity></SessionReference>\
</CourseOfferingIdentity></CourseOfferingReference></SectionIdentity></SectionReference>\
<SectionAttendanceDuration>45</SectionAttendanceDuration>{period}\
</StudentSectionAttendanceEvent>\n"
        )
    }

    fn class_period(name: &str) -> String {
        format!(
            "<ClassPeriodReference><ClassPeriodIdentity><SchoolReference><SchoolIdentity><SchoolId>9</SchoolId></SchoolIdentity></SchoolReference>\
<ClassPeriodName>{name}</ClassPeriodName></ClassPeriodIdentity></ClassPeriodReference>"
        )
    }

    /// One school event of each standard category, with durations.
    fn one_event_per_category() -> Vec<String> {
        vec![
            school_event("Excused Absence", "2026-03-02", "<EventDuration>1</EventDuration>", ""),
            school_event("Unexcused Absence", "2026-03-03", "", ""),
            school_event(
                "Tardy",
                "2026-03-04",
                "",
                "<SchoolAttendanceDuration>12</SchoolAttendanceDuration><ArrivalTime>08:42:00</ArrivalTime>",
            ),
            school_event(
                "Early departure",
                "2026-03-05",
                "",
                "<DepartureTime>11:30:00</DepartureTime>",
            ),
            school_event("In Attendance", "2026-03-06", "", ""),
            school_event("Present", "2026-03-06", "", ""),
            school_event(
                "Unexcused Absence",
                "2026-03-09",
                "<EventDuration>0.33</EventDuration>",
                "",
            ),
            school_event("Partial", "2026-03-10", "<EventDuration>0.5</EventDuration>", ""),
        ]
    }

    fn interchange(body: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InterchangeStudentAttendance xmlns=\"{NS}\">\n{body}</InterchangeStudentAttendance>\n"
        )
    }

    fn read(body: &str) -> Vec<io::Result<Parsed>> {
        EdfiXmlReader::new(interchange(body).as_bytes(), "a.xml", EdfiMapping::default()).collect::<Vec<_>>()
    }

    fn records(body: &str) -> Vec<AbsenceRecord> {
        read(body)
            .into_iter()
            .filter_map(|p| match p.unwrap() {
                Parsed::Record(r) => Some(r),
                Parsed::Skipped(_) => None,
                Parsed::Rejected(q) => panic!("rejected: {q:?}"),
            })
            .collect()
    }

    #[test]
    fn categories_map_as_the_table_says() {
        let mut body = one_event_per_category();
        body.push(school_event(
            "Excused Absence",
            "2026-03-11",
            "<EventDuration>0.05</EventDuration>",
            "",
        ));
        let body = body.concat();
        let mut counts = crate::adapters::ParseCounts::default();
        for p in read(&body) {
            counts.add(&p.unwrap());
        }
        assert_eq!((counts.accepted, counts.rejected, counts.presence), (7, 0, 2));
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
                // Partial: half the day away, not yet classified.
                (Kind::Lesson, 3, Validity::Unclassified, None),
                // Never less than one lesson.
                (Kind::Lesson, 1, Validity::Valid, None),
            ]
        );
        assert_eq!(got[0].pupil, "604822");
        assert_eq!(got[0].school, "255901001");
        assert_eq!(got[0].extensions["source_code"], "Excused Absence");
        assert_eq!(got[2].extensions["source_label"], "Tardy");
        assert_eq!(got[2].extensions["arrival_time"], "08:42:00");
        assert_eq!(got[3].extensions["departure_time"], "11:30:00");
        assert!(got.iter().all(|r| r.subject.is_none() && r.period.is_none()));
    }

    #[test]
    fn descriptors_come_as_uri_or_code_value() {
        let uri = records(&school_event("Tardy", "2026-03-04", "", ""));
        let bare = school_event("Tardy", "2026-03-04", "", "")
            .replace("uri://ed-fi.org/AttendanceEventCategoryDescriptor#Tardy", "Tardy");
        let bare = records(&bare);
        assert_eq!(uri[0].kind, bare[0].kind);
        assert_eq!(uri[0].id, bare[0].id, "the code value keys the event either way");
    }

    #[test]
    fn record_id_follows_the_natural_key() {
        let a = records(&school_event("Tardy", "2026-03-04", "", ""));
        let again = records(&school_event(
            "Tardy",
            "2026-03-04",
            "",
            "<SchoolAttendanceDuration>3</SchoolAttendanceDuration>",
        ));
        assert_eq!(a[0].id, again[0].id, "same key, same id");
        let other_day = records(&school_event("Tardy", "2026-03-05", "", ""));
        assert_ne!(a[0].id, other_day[0].id);
        let other_cat = records(&school_event("Early departure", "2026-03-04", "", ""));
        assert_ne!(a[0].id, other_cat[0].id);
        // One pupil's ids share the student prefix, so they sort together.
        assert_eq!(a[0].id[..13], other_day[0].id[..13]);
        assert_eq!(a[0].id.len(), "edfi-".len() + 8 + 24);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        // The interchange's SchoolYear 2025-2026 and the API's 2026 key the same event.
        let api = EdfiEvent {
            scope: EventScope::School,
            student: Some("604822".into()),
            school: Some("255901001".into()),
            school_year: Some("2026".into()),
            session: Some("2025-2026 Høst".into()),
            date: Some("2026-03-04".into()),
            category: Some("uri://ed-fi.org/AttendanceEventCategoryDescriptor#Tardy".into()),
            ..Default::default()
        };
        assert_eq!(api.record_id(), a[0].id);
    }

    #[test]
    fn section_events_are_lessons_with_subject_period_and_section() {
        let got = records(
            &[
                section_event(
                    "Unexcused Absence",
                    "<LocalCourseCode>MAT8</LocalCourseCode>",
                    "8A-1",
                    &class_period("2. time"),
                ),
                section_event(
                    "Unexcused Absence",
                    "<LocalCourseCode>MAT8</LocalCourseCode>",
                    "8A-2",
                    &class_period("Blokk A"),
                ),
                section_event("Excused Absence", "<LocalCourseCode>NOR8</LocalCourseCode>", "8A-3", ""),
            ]
            .concat(),
        );
        assert_eq!(got.len(), 3);
        assert_eq!(
            (got[0].kind, got[0].lessons, got[0].school.as_str()),
            (Kind::Lesson, 1, "9")
        );
        assert_eq!((got[0].subject.as_deref(), got[0].period), (Some("MAT8"), Some(2)));
        assert_eq!(got[0].extensions["section"], "MAT8/8A-1");
        // A period name without a number is kept by name.
        assert_eq!(got[1].period, None);
        assert_eq!(got[1].extensions["period_name"], "Blokk A");
        assert_eq!(
            (got[2].subject.as_deref(), got[2].period, got[2].validity),
            (Some("NOR8"), None, Validity::Valid)
        );
        assert_ne!(got[0].id, got[1].id);
    }

    #[test]
    fn intervention_and_program_events_are_skipped_and_counted() {
        let body = "<StudentInterventionAttendanceEvent><AttendanceEvent><EventDate>2026-03-02</EventDate>\
<AttendanceEventCategory>uri://ed-fi.org/AttendanceEventCategoryDescriptor#Unexcused Absence</AttendanceEventCategory></AttendanceEvent>\
<StudentReference><StudentIdentity><StudentUniqueId>7</StudentUniqueId></StudentIdentity></StudentReference>\
<InterventionReference><InterventionIdentity><EducationOrganizationReference><EducationOrganizationIdentity><EducationOrganizationId>9</EducationOrganizationId></EducationOrganizationIdentity></EducationOrganizationReference>\
<InterventionIdentificationCode>LES</InterventionIdentificationCode></InterventionIdentity></InterventionReference></StudentInterventionAttendanceEvent>\n\
<StudentProgramAttendanceEvent/>\n<StudentInterventionAttendanceEvent/>\n";
        let got: Vec<Parsed> = read(body).into_iter().map(Result::unwrap).collect();
        let mut counts = crate::adapters::ParseCounts::default();
        got.iter().for_each(|p| counts.add(p));
        assert_eq!((counts.accepted, counts.rejected, counts.presence), (0, 0, 0));
        assert_eq!(counts.not_followed["StudentInterventionAttendanceEvent"], 2);
        assert_eq!(counts.not_followed["StudentProgramAttendanceEvent"], 1);
        assert!(
            counts
                .summary()
                .contains("2 StudentInterventionAttendanceEvent hoppet over"),
            "{}",
            counts.summary()
        );
    }

    #[test]
    fn the_flat_shape_no_producer_sends_is_refused_by_name() {
        // Our old generator's invention: the category beside the event
        // instead of inside AttendanceEvent.
        let flat = "<StudentSchoolAttendanceEvent>\
<AttendanceEventCategoryDescriptor>uri://ed-fi.org/AttendanceEventCategoryDescriptor#Tardy</AttendanceEventCategoryDescriptor>\
<EventDate>2026-03-04</EventDate>\
<StudentReference><StudentIdentity><StudentUniqueId>1</StudentUniqueId></StudentIdentity></StudentReference>\
<SchoolReference><SchoolIdentity><SchoolId>2</SchoolId></SchoolIdentity></SchoolReference>\
</StudentSchoolAttendanceEvent>\n";
        let got: Vec<Parsed> = read(flat).into_iter().map(Result::unwrap).collect();
        let [Parsed::Rejected(q)] = &got[..] else {
            panic!("{got:?}")
        };
        assert_eq!(
            (q.code, q.field.as_deref()),
            (
                RejectCode::MissingField,
                Some("AttendanceEvent/AttendanceEventCategory")
            ),
            "{q:?}"
        );
    }

    #[test]
    fn bad_events_are_quarantined_by_element_and_place() {
        let body = [
            school_event("Excused Absence", "2026-03-02", "", ""),
            school_event("Sick", "2026-03-03", "", ""),
            school_event("Tardy", "2026-02-30", "", ""),
            school_event("Excused Absence", "2026-03-04", "<EventDuration>-1</EventDuration>", ""),
            school_event("Tardy", "2026-03-04", "", "<ArrivalTime>kvart over</ArrivalTime>"),
            school_event("Excused Absence", "2026-03-05", "", ""),
        ]
        .concat();
        let got: Vec<Parsed> = read(&body).into_iter().map(Result::unwrap).collect();
        assert_eq!(got.len(), 6);
        let reasons: Vec<String> = got
            .iter()
            .filter_map(|p| match p {
                Parsed::Rejected(q) => Some(format!("{} {}", q.location, q.reason())),
                _ => None,
            })
            .collect();
        assert_eq!(reasons.len(), 4);
        assert!(
            reasons[0].starts_with("a.xml:4:1 unknown_code: ")
                && reasons[0].contains("AttendanceEventCategory")
                && !reasons[0].contains("Sick"),
            "{reasons:?}"
        );
        assert!(reasons[1].contains("EventDate"), "{reasons:?}");
        assert!(reasons[2].contains("EventDuration"), "{reasons:?}");
        assert!(reasons[3].contains("ArrivalTime"), "{reasons:?}");
        assert!(matches!(&got[5], Parsed::Record(r) if r.date.to_string() == "2026-03-05"));
    }

    #[test]
    fn truncated_interchange_keeps_earlier_records() {
        let xml = format!(
            "<InterchangeStudentAttendance>\n{}{}",
            school_event("Tardy", "2026-03-04", "", ""),
            &school_event("Tardy", "2026-03-05", "", "")[..200]
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

    /// The reader without the fast path: a tree per event, `from_xml`, `to_record`.
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
            let event = EdfiEvent::from_xml(&element);
            if let EventScope::NotFollowed(name) = event.scope {
                out.push(Ok(Parsed::Skipped(Skip::NotFollowed(name))));
                continue;
            }
            match event.to_record(&m) {
                Ok(Some(r)) => out.push(Ok(Parsed::Record(r))),
                Ok(None) => out.push(Ok(Parsed::Skipped(Skip::Presence))),
                Err(e) => out.push(Ok(Parsed::Rejected(Rejected::new(
                    Some(m.source.clone()),
                    format!("{location}:{}:{}", element.line, element.column),
                    e.fault(),
                    element.to_xml(),
                )))),
            }
        }
        out
    }

    fn fast(xml: &str, location: &str) -> Vec<Result<Parsed, String>> {
        EdfiXmlReader::new(xml.as_bytes(), location, EdfiMapping::default())
            .map(|p| p.map_err(|e| e.to_string()))
            .collect()
    }

    /// Odd but well-formed events: prefixes, references, CDATA, comments,
    /// mixed content, repeated and empty elements, fallbacks between references.
    const ODD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ed:InterchangeStudentAttendance xmlns:ed="http://ed-fi.org/5.2.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <ed:StudentSchoolAttendanceEvent id="a&amp;b" xsi:type="x">
    <ed:AttendanceEvent><ed:EventDate><!-- c -->2026-03-02</ed:EventDate>
    <ed:AttendanceEventCategory>  uri://ed-fi.org/AttendanceEventCategoryDescriptor#<![CDATA[Excused]]> Absence  </ed:AttendanceEventCategory></ed:AttendanceEvent>
    <ed:StudentReference><ed:StudentIdentity><ed:StudentUniqueId> A &amp; B &#x41;&#66; </ed:StudentUniqueId></ed:StudentIdentity></ed:StudentReference>
    <ed:SchoolReference><ed:SchoolIdentity><ed:SchoolId>s&lt;1&gt;</ed:SchoolId></ed:SchoolIdentity></ed:SchoolReference>
    <ed:SessionReference><ed:SessionIdentity><ed:SessionName>Vår &quot;x&quot; &apos;y&apos;</ed:SessionName><ed:SchoolYear>2025-2026</ed:SchoolYear></ed:SessionIdentity></ed:SessionReference>
  </ed:StudentSchoolAttendanceEvent>
  <StudentSchoolAttendanceEvent>
    <AttendanceEvent><AttendanceEventCategory>Tardy</AttendanceEventCategory>
    <EventDate>2026-03-<X/>03<Y>junk</Y></EventDate>
    <EventDate>2026-03-09</EventDate><Nested><EventDate>2026-01-01</EventDate></Nested></AttendanceEvent>
    <AttendanceEvent><EventDuration>0.5</EventDuration></AttendanceEvent>
    <SchoolAttendanceDuration> 7 </SchoolAttendanceDuration>
    <ArrivalTime>09:05:00.000+01:00</ArrivalTime>
    <StudentReference><StudentLookup><StudentUniqueId>direct</StudentUniqueId></StudentLookup><StudentUniqueId>second</StudentUniqueId></StudentReference>
    <SessionReference><SessionIdentity><SchoolReference><SchoolIdentity><SchoolId>from-session</SchoolId></SchoolIdentity></SchoolReference><SessionName></SessionName></SessionIdentity><SessionName>later</SessionName></SessionReference>
  </StudentSchoolAttendanceEvent>
  <StudentSchoolAttendanceEvent>
    <AttendanceEvent><EventDate>2026-03-04T00:00:00</EventDate><AttendanceEventCategory>uri://x#unexcused absence</AttendanceEventCategory><EventDuration>0.5</EventDuration></AttendanceEvent>
    <StudentReference></StudentReference>
    <StudentReference><StudentUniqueId>ignored</StudentUniqueId></StudentReference>
    <SchoolReference/>
    <SchoolReference><SchoolId>ignored</SchoolId></SchoolReference>
  </StudentSchoolAttendanceEvent>
  <StudentSchoolAttendanceEvent>
    <AttendanceEvent><EventDate>2026-03-05</EventDate><AttendanceEventCategory>uri://x#unexcused absence</AttendanceEventCategory><EventDuration>0.5</EventDuration></AttendanceEvent>
    <StudentReference><StudentUniqueId>p1</StudentUniqueId></StudentReference>
    <SchoolReference><SchoolId><SchoolId>inner</SchoolId>outer</SchoolId></SchoolReference>
  </StudentSchoolAttendanceEvent>
  <StudentSectionAttendanceEvent>
    <AttendanceEvent><EventDate>2026-03-06</EventDate><AttendanceEventCategory>Excused Absence</AttendanceEventCategory></AttendanceEvent>
    <SectionAttendanceDuration>45</SectionAttendanceDuration>
    <SchoolAttendanceDuration></SchoolAttendanceDuration>
    <StudentReference><StudentIdentity><StudentUniqueId>p2</StudentUniqueId></StudentIdentity></StudentReference>
    <SchoolReference><SchoolId>school-wins</SchoolId></SchoolReference>
    <SectionReference><SectionIdentity><SectionIdentifier>  9B  </SectionIdentifier><CourseOfferingReference><CourseOfferingIdentity><SchoolReference><SchoolIdentity><SchoolId>sec</SchoolId></SchoolIdentity></SchoolReference><SessionReference><SessionIdentity><SchoolYear>2025</SchoolYear></SessionIdentity></SessionReference></CourseOfferingIdentity></CourseOfferingReference></SectionIdentity></SectionReference>
    <ClassPeriodReference><ClassPeriodIdentity><ClassPeriodName>Period 4</ClassPeriodName></ClassPeriodIdentity></ClassPeriodReference>
    <ClassPeriodReference><ClassPeriodIdentity><ClassPeriodName>5</ClassPeriodName></ClassPeriodIdentity></ClassPeriodReference>
  </StudentSectionAttendanceEvent>
  <StudentSectionAttendanceEvent>
    <AttendanceEvent><EventDate>2026-03-06</EventDate><AttendanceEventCategory>Tardy</AttendanceEventCategory></AttendanceEvent>
    <SectionAttendanceDuration>x</SectionAttendanceDuration>
    <StudentReference><StudentIdentity><StudentUniqueId>p2</StudentUniqueId></StudentIdentity></StudentReference>
    <SectionReference><SectionIdentity><CourseOfferingReference><CourseOfferingIdentity><LocalCourseCode>C&amp;D</LocalCourseCode><SchoolReference><SchoolIdentity><SchoolId>sec</SchoolId></SchoolIdentity></SchoolReference></CourseOfferingIdentity></CourseOfferingReference></SectionIdentity></SectionReference>
  </StudentSectionAttendanceEvent>
  <StudentSectionAttendanceEvent>
    <AttendanceEvent><EventDate>2026-03-06</EventDate><AttendanceEventCategory>Partial</AttendanceEventCategory></AttendanceEvent>
    <StudentReference><StudentIdentity><StudentUniqueId>p3</StudentUniqueId></StudentIdentity></StudentReference>
    <SectionReference><SectionIdentity><SectionIdentifier>id</SectionIdentifier><CourseOfferingReference><CourseOfferingIdentity><LocalCourseCode>  </LocalCourseCode><SchoolReference><SchoolIdentity><SchoolId>sec</SchoolId></SchoolIdentity></SchoolReference></CourseOfferingIdentity></CourseOfferingReference></SectionIdentity></SectionReference>
  </StudentSectionAttendanceEvent>
  <StudentSchoolAttendanceEvent/>
  <StudentInterventionAttendanceEvent><AttendanceEvent><EventDate>x</EventDate></AttendanceEvent></StudentInterventionAttendanceEvent>
  <StudentSchoolAttendanceEvent a="1"><AttendanceEvent><AttendanceEventCategory>Early departure</AttendanceEventCategory></AttendanceEvent></StudentSchoolAttendanceEvent>
  <Wrapper><StudentSchoolAttendanceEvent><AttendanceEvent><EventDate>2026-13-01</EventDate><AttendanceEventCategory>Early departure</AttendanceEventCategory></AttendanceEvent><StudentReference><StudentUniqueId>q</StudentUniqueId></StudentReference><SchoolReference><SchoolId>q</SchoolId></SchoolReference></StudentSchoolAttendanceEvent></Wrapper>
  <StudentSchoolAttendanceEvent><AttendanceEvent><EventDate>2026-03-01</EventDate><AttendanceEventCategory>Excused Absence</AttendanceEventCategory><EventDuration>nan</EventDuration></AttendanceEvent><StudentReference><StudentUniqueId>q</StudentUniqueId></StudentReference><SchoolReference><SchoolId>q</SchoolId></SchoolReference></StudentSchoolAttendanceEvent>
</ed:InterchangeStudentAttendance>
"#;

    #[test]
    fn the_fast_path_reads_what_the_tree_reads() {
        let mut body = one_event_per_category();
        body.extend([
            school_event("Sick", "2026-03-03", "", ""),
            school_event("Tardy", "2026-02-30", "", ""),
            school_event("Excused Absence", "2026-03-04", "<EventDuration>-1</EventDuration>", ""),
            section_event(
                "Unexcused Absence",
                "<LocalCourseCode>MAT8</LocalCourseCode>",
                "8A-1",
                &class_period("3"),
            ),
            section_event("Excused Absence", "", "8A-2", ""),
            section_event("Sick", "<LocalCourseCode>MAT8</LocalCourseCode>", "8A-3", ""),
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
            matches!(&odd[1], Ok(Parsed::Record(r)) if r.pupil == "direct" && r.school == "from-session" && r.date.to_string() == "2026-03-03"),
            "{:?}",
            odd[1]
        );
        assert!(
            matches!(&odd[4], Ok(Parsed::Record(r)) if r.period == Some(4) && r.subject.is_none() && r.school == "school-wins"),
            "{:?}",
            odd[4]
        );
        assert!(
            matches!(&odd[5], Ok(Parsed::Rejected(q)) if q.raw.starts_with("<StudentSectionAttendanceEvent><AttendanceEvent><EventDate>2026-03-06<")),
            "{:?}",
            odd[5]
        );
        assert!(
            matches!(&odd[8], Ok(Parsed::Skipped(Skip::NotFollowed(_)))),
            "{:?}",
            odd[8]
        );
    }

    /// Names an event is read by, and some it is not.
    const NAMES: &[&str] = &[
        "StudentReference",
        "SchoolReference",
        "SectionReference",
        "SessionReference",
        "ClassPeriodReference",
        "AttendanceEvent",
        "StudentUniqueId",
        "SchoolId",
        "SchoolYear",
        "SessionName",
        "SectionIdentifier",
        "LocalCourseCode",
        "ClassPeriodName",
        "EventDate",
        "AttendanceEventCategory",
        "EventDuration",
        "SchoolAttendanceDuration",
        "SectionAttendanceDuration",
        "ArrivalTime",
        "DepartureTime",
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
        "2025-2026",
        "Tardy",
        "uri://x#Excused Absence",
        "Unexcused Absence",
        "Partial",
        "a &amp; b",
        "0.5",
        "08:15:00",
        "2. time",
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

    /// A reference (or AttendanceEvent) as the events have them, sometimes odd.
    fn arb_reference() -> impl Strategy<Value = String> {
        let leaf = (6..16usize, 0..TEXTS.len(), any::<bool>()).prop_map(|(n, t, wrap)| {
            let leaf = format!("<{0}>{1}</{0}>", NAMES[n], TEXTS[t]);
            if wrap {
                format!("<Identity>{leaf}</Identity>")
            } else {
                leaf
            }
        });
        (
            0..6usize,
            proptest::collection::vec(prop_oneof![4 => leaf, 1 => arb_element()], 0..6),
        )
            .prop_map(|(n, children)| format!("<{0}>{1}</{0}>", NAMES[n], children.concat()))
    }

    fn arb_child() -> impl Strategy<Value = String> {
        let direct = (13..20usize, 0..TEXTS.len()).prop_map(|(n, t)| format!("<{0}>{1}</{0}>", NAMES[n], TEXTS[t]));
        prop_oneof![3 => arb_reference(), 2 => direct, 1 => arb_element()]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn the_fast_path_reads_any_event_like_the_tree(
            events in proptest::collection::vec(
                (0..3usize, any::<bool>(), proptest::collection::vec(arb_child(), 0..8)),
                1..4,
            )
        ) {
            let body: String = events
                .into_iter()
                .map(|(kind, good, children)| {
                    let name = ["StudentSchoolAttendanceEvent", "StudentSectionAttendanceEvent", "StudentInterventionAttendanceEvent"][kind];
                    let good = if good {
                        "<AttendanceEvent><EventDate>2026-03-02</EventDate><AttendanceEventCategory>Excused Absence</AttendanceEventCategory></AttendanceEvent>\
    <StudentReference><StudentUniqueId>s</StudentUniqueId></StudentReference>"
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
