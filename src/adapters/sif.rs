//! `sif-xml`: SIF AU 3.4 StudentDailyAttendance, StudentPeriodAttendance and
//! StudentAttendanceTimeList, streamed through the XML engine.
//!
//! AttendanceCode (the AU code set) decides what an entry is: present,
//! late, early departure, absence, or not absence; AttendanceStatus (01
//! approved, 02 unapproved, 99 unknown, NA not applicable) decides validity
//! when it says something. Parent-choice (800–805) and school-choice
//! (900–904) codes are treated as the settings say. The table is in
//! `adapters/sif-xml/README.md`; a present day is skipped and counted, never
//! an error.

use super::xml::{Element, XmlRecords};
use super::{Parsed, Rejected, Skip};
use crate::domain::record::{parse_date, period_from_name};
use crate::domain::{AbsenceRecord, Fault, Kind, Reason, RejectCode, Validity};
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::io::{self, BufRead};

/// The record elements read.
pub const RECORD_ELEMENTS: &[&str] = &[
    "StudentDailyAttendance",
    "StudentPeriodAttendance",
    "StudentAttendanceTimeList",
];

/// Minutes in one lesson, to count the lessons of an AttendanceTime span.
const LESSON_MINUTES: i64 = 45;

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
    /// Codes 800–805 (parent choice, e.g. holidays in term time).
    pub parent_choice: Treatment,
    /// Codes 900–904 (school choice, e.g. suspension).
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
    /// Present, at an educational activity away from school, or exempt:
    /// no record, counted as presence.
    NotAbsence,
    /// Late arrival.
    Late,
    /// Early departure.
    EarlyDeparture,
    /// Absence with the code's default validity and reason.
    Absence(Validity, Option<Reason>),
}

/// The meaning of a SIF AU AttendanceCode, `None` when tilstede's table
/// has none for it (the entry is then rejected, naming the code).
pub fn code_meaning(code: &str, m: &SifMapping) -> Option<CodeMeaning> {
    let n: u16 = code.trim().parse().ok()?;
    let treat = |t: Treatment| match t {
        Treatment::Skip => CodeMeaning::NotAbsence,
        Treatment::Absence(v, r) => CodeMeaning::Absence(v, r),
    };
    Some(match n {
        100 | 101 => CodeMeaning::NotAbsence,
        111 | 113 => CodeMeaning::Late,
        112 | 114 => CodeMeaning::EarlyDeparture,
        200 => CodeMeaning::Absence(Validity::Valid, Some(Reason::Illness)),
        201..=211 => CodeMeaning::Absence(Validity::Valid, None),
        300 => CodeMeaning::Absence(Validity::Invalid, None),
        400 | 401 => CodeMeaning::NotAbsence,
        // Unexplained: not yet classified (the routine counts it as invalid).
        500 => CodeMeaning::Absence(Validity::Unclassified, None),
        600..=612 => CodeMeaning::NotAbsence,
        800..=805 => treat(m.parent_choice),
        900..=904 => treat(m.school_choice),
        _ => return None,
    })
}

/// The validity AttendanceStatus gives; `Ok(None)` when it leaves the
/// code's default (absent, or NA).
fn status_validity(status: Option<&str>) -> Result<Option<Validity>, Fault> {
    match status.map(str::trim) {
        None | Some("NA") => Ok(None),
        Some("01") => Ok(Some(Validity::Valid)),
        Some("02") => Ok(Some(Validity::Invalid)),
        Some("99") => Ok(Some(Validity::Unclassified)),
        Some(_) => Err(Fault::new(RejectCode::UnknownCode, "AttendanceStatus").with_limit("gyldige: 01, 02, 99, NA")),
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
    subject: Option<&'a str>,
    period: Option<&'a str>,
}

fn map_entry(e: Entry<'_>, m: &SifMapping) -> Result<Option<AbsenceRecord>, Fault> {
    let missing = |element: &str| Fault::new(RejectCode::MissingField, element);
    let code = e.code.ok_or_else(|| missing("AttendanceCode/Code"))?;
    let meaning = code_meaning(code, m).ok_or_else(|| {
        Fault::new(RejectCode::UnknownCode, "AttendanceCode").with_limit("ikke i tilstedes kodetabell for SIF AU 3.4")
    })?;
    let status = status_validity(e.status)?;
    let (kind, lessons, validity, reason) = match meaning {
        CodeMeaning::NotAbsence => return Ok(None),
        CodeMeaning::Late => (Kind::Late, 1, status.unwrap_or(Validity::Unclassified), None),
        CodeMeaning::EarlyDeparture => (Kind::Left, 1, status.unwrap_or(Validity::Unclassified), None),
        CodeMeaning::Absence(v, r) => (e.kind, e.lessons, status.unwrap_or(v), r),
    };
    let pupil = e.pupil.ok_or_else(|| missing("StudentPersonalRefId"))?;
    let school = e.school.ok_or_else(|| missing("SchoolInfoRefId"))?;
    let date =
        parse_date(e.date.ok_or_else(|| missing("Date"))?).map_err(|_| Fault::new(RejectCode::BadDate, "Date"))?;
    let mut extensions = Map::new();
    extensions.insert("source_code".into(), Value::String(code.to_string()));
    let period = e.period.and_then(period_from_name);
    if let (Some(name), None) = (e.period, period) {
        extensions.insert("period_name".into(), Value::String(name.to_string()));
    }
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
        subject: e.subject.map(str::to_string),
        period,
        extensions,
    }))
}

/// Lessons of an AttendanceTime span: DurationValue (a share of the day)
/// when given, else the minutes from StartTime to EndTime in whole lessons;
/// at least one.
fn span_lessons(t: &Element, lessons_per_day: u32) -> u32 {
    if let Some(share) = t.text_at("DurationValue").and_then(|v| v.parse::<f64>().ok())
        && share.is_finite()
        && share > 0.0
    {
        return (share * f64::from(lessons_per_day)).round().max(1.0) as u32;
    }
    let time = |name: &str| {
        t.text_at(name)
            .and_then(|v| chrono::NaiveTime::parse_from_str(v.get(..8).unwrap_or(v), "%H:%M:%S").ok())
    };
    match (time("StartTime"), time("EndTime")) {
        (Some(a), Some(b)) if b > a => {
            let minutes = (b - a).num_minutes();
            ((minutes + LESSON_MINUTES / 2) / LESSON_MINUTES).max(1) as u32
        }
        _ => 1,
    }
}

/// Maps one SIF element to one or more items (sans-IO).
pub fn map_element(e: &Element, m: &SifMapping, location: &str) -> Vec<Parsed> {
    let reject = |fault: Fault| {
        Parsed::Rejected(Rejected::new(
            Some(m.source.clone()),
            format!("{location}:{}:{}", e.line, e.column),
            fault,
            e.to_xml(),
        ))
    };
    let Some(ref_id) = e.attribute("RefId").filter(|r| !r.is_empty()) else {
        return vec![reject(Fault::new(
            RejectCode::MissingField,
            format!("{}@RefId", e.name),
        ))];
    };
    let pupil = e.text_at("StudentPersonalRefId");
    let school = e.text_at("SchoolInfoRefId");
    let date = e.text_at("Date");
    let one = |result: Result<Option<AbsenceRecord>, Fault>| match result {
        Ok(Some(r)) => Parsed::Record(r),
        Ok(None) => Parsed::Skipped(Skip::Presence),
        Err(reason) => reject(reason),
    };
    match e.name.as_str() {
        "StudentDailyAttendance" => {
            let lpd = m.lessons_per_day;
            let (kind, lessons) = match e.text_at("DayValue").unwrap_or("Full") {
                "AM" | "PM" => (Kind::Lesson, (lpd / 2).max(1)),
                "Partial" => {
                    let share = e.text_at("AbsenceValue").and_then(|v| v.parse::<f64>().ok());
                    let lessons = share
                        .filter(|s| s.is_finite() && *s > 0.0)
                        .map_or(1, |s| (s * f64::from(lpd)).round().max(1.0) as u32);
                    (Kind::Lesson, lessons)
                }
                _ => (Kind::Day, 1),
            };
            vec![one(map_entry(
                Entry {
                    id: ref_id.to_string(),
                    pupil,
                    school,
                    date,
                    code: e.text_at("AttendanceCode/Code"),
                    status: e.text_at("AttendanceStatus"),
                    kind,
                    lessons,
                    subject: None,
                    period: None,
                },
                m,
            ))]
        }
        "StudentPeriodAttendance" => vec![one(map_entry(
            Entry {
                id: ref_id.to_string(),
                pupil,
                school,
                date,
                code: e.text_at("AttendanceCode/Code"),
                status: e.text_at("AttendanceStatus"),
                kind: Kind::Lesson,
                lessons: 1,
                subject: e.text_at("TimeTableSubjectRefId"),
                period: e.text_at("TimetablePeriod"),
            },
            m,
        ))],
        _ => {
            // StudentAttendanceTimeList: spans of the day, then lessons.
            let times = e.child("AttendanceTimes").map_or(&[][..], |t| &t.children[..]);
            let periods = e.child("PeriodAttendances").map_or(&[][..], |p| &p.children[..]);
            let mut out: Vec<Parsed> = times
                .iter()
                .filter(|t| t.name == "AttendanceTime")
                .enumerate()
                .map(|(i, t)| {
                    one(map_entry(
                        Entry {
                            id: format!("{ref_id}#t{}", i + 1),
                            pupil,
                            school,
                            date,
                            code: t.text_at("AttendanceCode/Code"),
                            status: t.text_at("AttendanceStatus"),
                            kind: Kind::Lesson,
                            lessons: span_lessons(t, m.lessons_per_day),
                            subject: t.text_at("TimeTableSubjectRefId"),
                            period: None,
                        },
                        m,
                    ))
                })
                .collect();
            out.extend(
                periods
                    .iter()
                    .filter(|p| p.name == "PeriodAttendance")
                    .enumerate()
                    .map(|(i, p)| {
                        one(map_entry(
                            Entry {
                                id: format!("{ref_id}#p{}", i + 1),
                                pupil,
                                school,
                                date: p.text_at("Date").or(date),
                                code: p.text_at("AttendanceCode/Code"),
                                status: p.text_at("AttendanceStatus"),
                                kind: Kind::Lesson,
                                lessons: 1,
                                subject: p.text_at("TimeTableSubjectRefId"),
                                period: p.text_at("TimetablePeriod"),
                            },
                            m,
                        ))
                    }),
            );
            if out.is_empty() {
                out.push(reject(Fault::new(
                    RejectCode::MissingField,
                    "AttendanceTimes/AttendanceTime | PeriodAttendances/PeriodAttendance",
                )));
            }
            out
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
                Parsed::Record(r) => format!(
                    "{} {} {} {}{}{}",
                    r.id,
                    r.kind.as_str(),
                    r.lessons,
                    r.validity.as_str(),
                    r.period.map(|p| format!(" p{p}")).unwrap_or_default(),
                    r.subject.as_deref().map(|s| format!(" {s}")).unwrap_or_default()
                ),
                Parsed::Rejected(q) => format!("rejected {}", q.reason()),
                Parsed::Skipped(s) => format!("skipped {s:?}"),
            })
            .collect()
    }

    #[test]
    fn codes_and_status_map_as_the_table_says() {
        let body = [
            daily("a", "100", "<AttendanceStatus>NA</AttendanceStatus>", "Full"),
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
            daily("m", "500", "<AttendanceStatus>NA</AttendanceStatus>", "Partial"),
        ]
        .concat();
        assert_eq!(
            summary(&read(&body)),
            [
                "skipped Presence",
                "b day 1 valid",
                "c lesson 3 invalid",
                "d day 1 valid",
                "e late 1 unclassified",
                "f left 1 invalid",
                "skipped Presence",
                "h day 1 valid",
                "skipped Presence",
                "j day 1 unclassified",
                // The codes themselves are not echoed.
                "rejected unknown_code: feltet «AttendanceCode» har en kode som ikke er i kodetabellen (ikke i tilstedes kodetabell for SIF AU 3.4)",
                "rejected unknown_code: feltet «AttendanceStatus» har en kode som ikke er i kodetabellen (gyldige: 01, 02, 99, NA)",
                "m lesson 1 unclassified",
            ]
        );
    }

    #[test]
    fn period_and_time_list_entries_are_lessons_with_period_and_subject() {
        let body = "<StudentPeriodAttendance RefId=\"p1\"><StudentPersonalRefId>P1</StudentPersonalRefId><SchoolInfoRefId>S1</SchoolInfoRefId>\
<Date>2026-03-03</Date><SessionInfoRefId>X</SessionInfoRefId><TimetablePeriod>P3</TimetablePeriod>\
<AttendanceCode><Code>300</Code></AttendanceCode><AttendanceStatus>02</AttendanceStatus></StudentPeriodAttendance>\n\
<StudentAttendanceTimeList RefId=\"t1\"><StudentPersonalRefId>P1</StudentPersonalRefId><SchoolInfoRefId>S1</SchoolInfoRefId>\
<Date>2026-03-04</Date><SchoolYear>2026</SchoolYear><AttendanceTimes>\
<AttendanceTime><AttendanceCode><Code>100</Code></AttendanceCode><AttendanceStatus>NA</AttendanceStatus><StartTime>08:30:00</StartTime><EndTime>10:00:00</EndTime></AttendanceTime>\
<AttendanceTime><AttendanceCode><Code>203</Code></AttendanceCode><AttendanceStatus>01</AttendanceStatus><StartTime>10:00:00</StartTime><EndTime>11:30:00</EndTime><TimeTableSubjectRefId>SUBJ-MAT</TimeTableSubjectRefId></AttendanceTime>\
<AttendanceTime><AttendanceCode><Code>500</Code></AttendanceCode><AttendanceStatus>99</AttendanceStatus><StartTime>12:00:00</StartTime><EndTime>15:00:00</EndTime><DurationValue>0.5</DurationValue></AttendanceTime>\
</AttendanceTimes><PeriodAttendances>\
<PeriodAttendance><AttendanceCode><Code>300</Code></AttendanceCode><AttendanceStatus>02</AttendanceStatus><Date>2026-03-04</Date><TimetablePeriod>6</TimetablePeriod><TimeTableSubjectRefId>SUBJ-NAT</TimeTableSubjectRefId></PeriodAttendance>\
<PeriodAttendance><AttendanceCode><Code>113</Code></AttendanceCode><AttendanceStatus>NA</AttendanceStatus><Date>2026-03-04</Date><TimetablePeriod>1</TimetablePeriod></PeriodAttendance>\
</PeriodAttendances></StudentAttendanceTimeList>\n\
<StudentPeriodAttendance><Date>2026-03-03</Date></StudentPeriodAttendance>\n";
        assert_eq!(
            summary(&read(body)),
            [
                "p1 lesson 1 invalid p3",
                "skipped Presence",
                "t1#t2 lesson 2 valid SUBJ-MAT",
                "t1#t3 lesson 3 unclassified",
                "t1#p1 lesson 1 invalid p6 SUBJ-NAT",
                "t1#p2 late 1 unclassified p1",
                "rejected missing_field: feltet «StudentPeriodAttendance@RefId» mangler eller er tom",
            ]
        );
    }
}
