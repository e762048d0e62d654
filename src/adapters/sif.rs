//! `sif-xml`: SIF AU 3.4 StudentDailyAttendance, StudentPeriodAttendance and
//! StudentAttendanceTimeList, streamed through the XML engine.
//!
//! AttendanceCode decides what an entry is (present, late, early departure,
//! absence, not absence); AttendanceStatus (01 approved, 02 unapproved, 99
//! unknown) decides validity when given. Parent-choice (800–806) and
//! school-choice (900–905) codes are treated as the settings say.

use super::Parsed;
use super::xml::{Element, XmlRecords};
use crate::domain::record::parse_date;
use crate::domain::{AbsenceRecord, Kind, Reason, Validity};
use crate::store::QuarantineEntry;
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::io::{self, BufRead};

/// The record elements read.
pub const RECORD_ELEMENTS: &[&str] = &[
    "StudentDailyAttendance",
    "StudentPeriodAttendance",
    "StudentAttendanceTimeList",
];

/// How a range of codes whose meaning varies between schools is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// Not absence.
    Skip,
    /// Absence with this validity (unless AttendanceStatus says otherwise) and reason.
    Absence(Validity, Option<Reason>),
}

/// Settings of the SIF mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct SifMapping {
    /// Canonical `source`.
    pub source: String,
    /// Lessons in a school day (AM/PM and partial days).
    pub lessons_per_day: u32,
    /// Codes 800–806 (parent choice, e.g. holidays in term time).
    pub parent_choice: Treatment,
    /// Codes 900–905 (school choice, e.g. suspension).
    pub school_choice: Treatment,
}

impl Default for SifMapping {
    fn default() -> Self {
        SifMapping {
            source: "sif".into(),
            lessons_per_day: 6,
            // Leave the parents asked for and the school granted is valid leave.
            parent_choice: Treatment::Absence(Validity::Valid, Some(Reason::Leave)),
            // Absence the school itself decided on is not the pupil's absence.
            school_choice: Treatment::Skip,
        }
    }
}

/// What an AttendanceCode means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeMeaning {
    /// Present, or away for education (excursion, work placement): no record.
    NotAbsence,
    /// Late arrival.
    Late,
    /// Early departure.
    EarlyDeparture,
    /// Absence with the code's default validity and reason.
    Absence(Validity, Option<Reason>),
}

/// The meaning of a SIF AU AttendanceCode, `None` if unknown.
pub fn code_meaning(code: &str, m: &SifMapping) -> Option<CodeMeaning> {
    let n: u16 = code.trim().parse().ok()?;
    let treat = |t: Treatment| match t {
        Treatment::Skip => CodeMeaning::NotAbsence,
        Treatment::Absence(v, r) => CodeMeaning::Absence(v, r),
    };
    Some(match n {
        100 => CodeMeaning::NotAbsence,
        111 | 113 => CodeMeaning::Late,
        112 | 114 => CodeMeaning::EarlyDeparture,
        200..=214 => CodeMeaning::Absence(Validity::Valid, Some(Reason::Illness)),
        300 | 500 => CodeMeaning::Absence(Validity::Invalid, None),
        600..=625 => CodeMeaning::NotAbsence,
        800..=806 => treat(m.parent_choice),
        900..=905 => treat(m.school_choice),
        _ => return None,
    })
}

fn status_validity(status: Option<&str>) -> Result<Option<Validity>, String> {
    match status.map(str::trim) {
        None => Ok(None),
        Some("01") => Ok(Some(Validity::Valid)),
        Some("02") => Ok(Some(Validity::Invalid)),
        Some("99") => Ok(Some(Validity::Unclassified)),
        Some(other) => Err(format!("AttendanceStatus «{other}» er ukjent (gyldige: 01, 02, 99)")),
    }
}

/// One entry to map: the shared fields plus the entry's own code and status.
struct Entry<'a> {
    id: String,
    pupil: Option<&'a str>,
    school: Option<&'a str>,
    date: Option<&'a str>,
    code: Option<&'a str>,
    status: Option<&'a str>,
    kind: Kind,
    lessons: u32,
}

fn map_entry(e: Entry<'_>, m: &SifMapping) -> Result<Option<AbsenceRecord>, String> {
    let code = e.code.ok_or("AttendanceCode/Code mangler")?;
    let meaning = code_meaning(code, m).ok_or_else(|| format!("AttendanceCode «{code}» er ukjent"))?;
    let status = status_validity(e.status)?;
    let (kind, lessons, validity, reason) = match meaning {
        CodeMeaning::NotAbsence => return Ok(None),
        CodeMeaning::Late => (Kind::Late, 1, status.unwrap_or(Validity::Unclassified), None),
        CodeMeaning::EarlyDeparture => (Kind::Left, 1, status.unwrap_or(Validity::Unclassified), None),
        CodeMeaning::Absence(v, r) => (e.kind, e.lessons, status.unwrap_or(v), r),
    };
    let pupil = e.pupil.ok_or("StudentPersonalRefId mangler")?;
    let school = e.school.ok_or("SchoolInfoRefId mangler")?;
    let date = parse_date(e.date.ok_or("Date mangler")?).map_err(|m| format!("Date: {m}"))?;
    let mut extensions = Map::new();
    extensions.insert("source_code".into(), Value::String(code.to_string()));
    Ok(Some(AbsenceRecord {
        source: m.source.clone(),
        id: e.id,
        version: 1,
        pupil: pupil.to_string(),
        school: school.to_string(),
        date,
        kind,
        lessons,
        minutes: None,
        validity,
        reason,
        deleted: false,
        extensions,
    }))
}

/// Maps one SIF element to zero or more items (sans-IO).
pub fn map_element(e: &Element, m: &SifMapping, location: &str) -> Vec<Parsed> {
    let reject = |reason: String| {
        Parsed::Rejected(QuarantineEntry {
            source: Some(m.source.clone()),
            location: format!("{location}:{}:{}", e.line, e.column),
            reason: format!("{}: {reason}", e.name),
            raw: e.to_xml(),
        })
    };
    let Some(ref_id) = e.attribute("RefId").filter(|r| !r.is_empty()) else {
        return vec![reject("attributtet RefId mangler".into())];
    };
    let pupil = e.text_at("StudentPersonalRefId");
    let school = e.text_at("SchoolInfoRefId");
    let date = e.text_at("Date");
    let one = |result: Result<Option<AbsenceRecord>, String>| match result {
        Ok(Some(r)) => vec![Parsed::Record(r)],
        Ok(None) => Vec::new(),
        Err(reason) => vec![reject(reason)],
    };
    match e.name.as_str() {
        "StudentDailyAttendance" => {
            let lpd = m.lessons_per_day;
            let (kind, lessons) = match e.text_at("DayValue").unwrap_or("Full") {
                "AM" | "PM" => (Kind::Lesson, (lpd / 2).max(1)),
                "Partial" => {
                    let share = e.text_at("AbsenceValue").and_then(|v| v.parse::<f64>().ok());
                    let lessons = share.map_or(1, |s| (s * f64::from(lpd)).round().max(1.0) as u32);
                    (Kind::Lesson, lessons)
                }
                _ => (Kind::Day, 1),
            };
            one(map_entry(
                Entry {
                    id: ref_id.to_string(),
                    pupil,
                    school,
                    date,
                    code: e.text_at("AttendanceCode/Code"),
                    status: e.text_at("AttendanceStatus"),
                    kind,
                    lessons,
                },
                m,
            ))
        }
        "StudentPeriodAttendance" => one(map_entry(
            Entry {
                id: ref_id.to_string(),
                pupil,
                school,
                date,
                code: e.text_at("AttendanceCode/Code"),
                status: e.text_at("AttendanceStatus"),
                kind: Kind::Lesson,
                lessons: 1,
            },
            m,
        )),
        _ => {
            let Some(list) = e.child("PeriodList") else {
                return vec![reject("PeriodList mangler".into())];
            };
            list.children
                .iter()
                .filter(|p| p.name == "Period")
                .enumerate()
                .flat_map(|(i, p)| {
                    one(map_entry(
                        Entry {
                            id: format!("{ref_id}#{}", i + 1),
                            pupil,
                            school,
                            date,
                            code: p.text_at("AttendanceCode/Code"),
                            status: p.text_at("AttendanceStatus"),
                            kind: Kind::Lesson,
                            lessons: 1,
                        },
                        m,
                    ))
                })
                .collect()
        }
    }
}

/// Streams canonical items out of a SIF AU attendance file.
pub struct SifXmlReader<R> {
    inner: XmlRecords<R>,
    mapping: SifMapping,
    pending: VecDeque<Parsed>,
}

impl<R: BufRead> SifXmlReader<R> {
    /// Reads `input`; `location` names it in errors.
    pub fn new(input: R, location: impl Into<String>, mapping: SifMapping) -> SifXmlReader<R> {
        SifXmlReader {
            inner: XmlRecords::new(input, location, RECORD_ELEMENTS),
            mapping,
            pending: VecDeque::new(),
        }
    }
}

impl<R: BufRead> Iterator for SifXmlReader<R> {
    type Item = io::Result<Parsed>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(p) = self.pending.pop_front() {
                return Some(Ok(p));
            }
            match self.inner.next()? {
                Ok(e) => {
                    let location = self.inner.location().to_string();
                    self.pending.extend(map_element(&e, &self.mapping, &location));
                }
                Err(e) => return Some(Err(io::Error::from(e))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> Vec<Parsed> {
        let xml = format!(
            "<?xml version=\"1.0\"?>\n<StudentDailyAttendances xmlns=\"http://www.sifassociation.org/datamodel/au/3.4\">\n{body}</StudentDailyAttendances>"
        );
        SifXmlReader::new(xml.as_bytes(), "s.xml", SifMapping::default())
            .map(Result::unwrap)
            .collect()
    }

    fn daily(id: &str, code: &str, status: &str, day: &str) -> String {
        format!(
            "<StudentDailyAttendance RefId=\"{id}\"><StudentPersonalRefId>P1</StudentPersonalRefId><SchoolInfoRefId>S1</SchoolInfoRefId>\
<Date>2026-03-02</Date><SchoolYear>2026</SchoolYear><DayValue>{day}</DayValue><AttendanceCode><Code>{code}</Code></AttendanceCode>{status}</StudentDailyAttendance>\n"
        )
    }

    fn summary(items: &[Parsed]) -> Vec<String> {
        items
            .iter()
            .map(|p| match p {
                Parsed::Record(r) => format!("{} {} {} {}", r.id, r.kind.as_str(), r.lessons, r.validity.as_str()),
                Parsed::Rejected(q) => format!("rejected {}", q.reason),
            })
            .collect()
    }

    #[test]
    fn codes_and_status_map_as_the_issue_says() {
        let body = [
            daily("a", "100", "", "Full"),
            daily("b", "200", "", "Full"),
            daily("c", "300", "", "AM"),
            daily("d", "500", "<AttendanceStatus>01</AttendanceStatus>", "Full"),
            daily("e", "111", "", "Full"),
            daily("f", "114", "<AttendanceStatus>02</AttendanceStatus>", "Full"),
            daily("g", "612", "", "Full"),
            daily("h", "801", "", "Full"),
            daily("i", "902", "", "Full"),
            daily("j", "210", "<AttendanceStatus>99</AttendanceStatus>", "Full"),
            daily("k", "777", "", "Full"),
            daily("l", "200", "<AttendanceStatus>07</AttendanceStatus>", "Full"),
        ]
        .concat();
        assert_eq!(
            summary(&read(&body)),
            [
                "b day 1 valid",
                "c lesson 3 invalid",
                "d day 1 valid",
                "e late 1 unclassified",
                "f left 1 invalid",
                "h day 1 valid",
                "j day 1 unclassified",
                "rejected StudentDailyAttendance: AttendanceCode «777» er ukjent",
                "rejected StudentDailyAttendance: AttendanceStatus «07» er ukjent (gyldige: 01, 02, 99)",
            ]
        );
    }

    #[test]
    fn period_and_time_list_entries_are_lessons() {
        let body = "<StudentPeriodAttendance RefId=\"p1\"><StudentPersonalRefId>P1</StudentPersonalRefId><SchoolInfoRefId>S1</SchoolInfoRefId>\
<Date>2026-03-03</Date><SessionInfoRefId>X</SessionInfoRefId><TimetablePeriod>3</TimetablePeriod>\
<AttendanceCode><Code>300</Code></AttendanceCode><AttendanceStatus>02</AttendanceStatus></StudentPeriodAttendance>\n\
<StudentAttendanceTimeList RefId=\"t1\"><StudentPersonalRefId>P1</StudentPersonalRefId><SchoolInfoRefId>S1</SchoolInfoRefId>\
<Date>2026-03-04</Date><SchoolYear>2026</SchoolYear><PeriodList>\
<Period><TimeIn>08:30:00</TimeIn><TimeOut>09:15:00</TimeOut><AttendanceCode><Code>100</Code></AttendanceCode><AttendanceStatus>01</AttendanceStatus></Period>\
<Period><TimeIn>09:20:00</TimeIn><TimeOut>10:05:00</TimeOut><AttendanceCode><Code>203</Code></AttendanceCode><AttendanceStatus>01</AttendanceStatus></Period>\
<Period><AttendanceCode><Code>113</Code></AttendanceCode></Period>\
</PeriodList></StudentAttendanceTimeList>\n\
<StudentPeriodAttendance><Date>2026-03-03</Date></StudentPeriodAttendance>\n";
        assert_eq!(
            summary(&read(body)),
            [
                "p1 lesson 1 invalid",
                "t1#2 lesson 1 valid",
                "t1#3 late 1 unclassified",
                "rejected StudentPeriodAttendance: attributtet RefId mangler",
            ]
        );
    }
}
