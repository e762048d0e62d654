//! Writers that turn canonical records into source formats, so adapters can
//! be tested and benchmarked on realistic files: Ed-Fi interchange XML, SIF
//! AU attendance XML and a Flyt-style vendor CSV.

use crate::adapters::xml::escape;
use crate::domain::{AbsenceRecord, Kind, Reason, Validity};
use std::io::{self, Write};

/// Lessons per school day assumed when writing part-day Ed-Fi events.
pub const EDFI_LESSONS_PER_DAY: u32 = 6;

/// The Ed-Fi namespace of the interchange written.
pub const EDFI_NAMESPACE: &str = "http://ed-fi.org/5.2.0";

/// The SchoolId (an `xs:long` in Ed-Fi) a school id is written as: the id
/// itself when it is a number, else its trailing digits (`skole-03` → `3`),
/// else a stable number from a digest of it.
pub fn edfi_school_id(school: &str) -> String {
    if !school.is_empty() && school.bytes().all(|b| b.is_ascii_digit()) {
        return school.to_string();
    }
    let digits: String = school
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    match digits.parse::<u64>() {
        Ok(n) => n.to_string(),
        Err(_) => u64::from(crate::adapters::edfi::fnv1a32(school.as_bytes())).to_string(),
    }
}

/// Writes an Ed-Fi Data Standard 5.2 InterchangeStudentAttendance document,
/// streaming, in the shape `Interchange-StudentAttendance.xsd` defines (a
/// test validates it with xmllint). A single lesson with a subject is a
/// StudentSectionAttendanceEvent (the subject is the course, the lesson its
/// class period); everything else a StudentSchoolAttendanceEvent.
pub struct EdfiXmlWriter<W: Write> {
    out: W,
    /// SchoolYearType, e.g. `2025-2026`.
    school_year: String,
}

impl<W: Write> EdfiXmlWriter<W> {
    /// Starts the document. `school_year` is the calendar year the school
    /// year ends in.
    pub fn new(mut out: W, school_year: i32) -> io::Result<EdfiXmlWriter<W>> {
        writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
        writeln!(out, r#"<InterchangeStudentAttendance xmlns="{EDFI_NAMESPACE}">"#)?;
        Ok(EdfiXmlWriter {
            out,
            school_year: format!("{}-{school_year}", school_year - 1),
        })
    }

    /// Writes one record. Lesson records of several lessons become part-day
    /// events (lessons / 6 days, two decimals as the schema allows), so they
    /// read back as the same number of lessons.
    pub fn record(&mut self, r: &AbsenceRecord) -> io::Result<()> {
        let category = match (r.kind, r.validity) {
            (Kind::Late, _) => "Tardy",
            (Kind::Left, _) => "Early departure",
            (_, Validity::Valid) => "Excused Absence",
            // Ed-Fi has no "not yet classified"; the routine counts it as invalid.
            (_, Validity::Invalid | Validity::Unclassified) => "Unexcused Absence",
        };
        let pupil = escape(&r.pupil);
        let school_id = edfi_school_id(&r.school);
        let school = format!(
            "<SchoolReference><SchoolIdentity><SchoolId>{school_id}</SchoolId></SchoolIdentity></SchoolReference>"
        );
        let session_name = if r.date.format("%m").to_string().as_str() >= "08" {
            "Høst"
        } else {
            "Vår"
        };
        let session = format!(
            "<SessionReference><SessionIdentity><SessionName>{session_name}</SessionName><SchoolYear>{}</SchoolYear>{school}</SessionIdentity></SessionReference>",
            self.school_year
        );
        let section = match (&r.subject, r.kind, r.lessons) {
            (Some(subject), Kind::Lesson, 1) => Some(escape(subject)),
            _ => None,
        };
        let w = &mut self.out;
        let element = if section.is_some() {
            "StudentSectionAttendanceEvent"
        } else {
            "StudentSchoolAttendanceEvent"
        };
        writeln!(w, "  <{element}>")?;
        write!(
            w,
            "    <AttendanceEvent><EventDate>{}</EventDate><AttendanceEventCategory>uri://ed-fi.org/AttendanceEventCategoryDescriptor#{category}</AttendanceEventCategory>",
            r.date
        )?;
        if matches!(r.reason, Some(Reason::Leave)) {
            write!(w, "<AttendanceEventReason>Permisjon</AttendanceEventReason>")?;
        }
        match (r.kind, &section) {
            (Kind::Day, _) => write!(w, "<EventDuration>1</EventDuration>")?,
            (Kind::Lesson, None) => write!(
                w,
                "<EventDuration>{:.2}</EventDuration>",
                f64::from(r.lessons.min(EDFI_LESSONS_PER_DAY)) / f64::from(EDFI_LESSONS_PER_DAY)
            )?,
            _ => {}
        }
        writeln!(w, "</AttendanceEvent>")?;
        writeln!(
            w,
            "    <StudentReference><StudentIdentity><StudentUniqueId>{pupil}</StudentUniqueId></StudentIdentity></StudentReference>"
        )?;
        match &section {
            Some(subject) => {
                writeln!(
                    w,
                    "    <SectionReference><SectionIdentity><SectionIdentifier>{subject}-{school_id}</SectionIdentifier><CourseOfferingReference><CourseOfferingIdentity><LocalCourseCode>{subject}</LocalCourseCode>{school}{session}</CourseOfferingIdentity></CourseOfferingReference></SectionIdentity></SectionReference>"
                )?;
                if let Some(p) = r.period {
                    writeln!(
                        w,
                        "    <ClassPeriodReference><ClassPeriodIdentity>{school}<ClassPeriodName>{p}. time</ClassPeriodName></ClassPeriodIdentity></ClassPeriodReference>"
                    )?;
                }
            }
            None => {
                writeln!(w, "    {school}")?;
                writeln!(w, "    {session}")?;
                if let (Kind::Late, Some(m)) = (r.kind, r.minutes) {
                    writeln!(
                        w,
                        "    <SchoolAttendanceDuration>{}</SchoolAttendanceDuration>",
                        m.min(1440)
                    )?;
                }
            }
        }
        writeln!(w, "  </{element}>")
    }

    /// Ends the document and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        writeln!(self.out, "</InterchangeStudentAttendance>")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Lessons per school day assumed when writing partial SIF days.
pub const SIF_LESSONS_PER_DAY: u32 = 6;

/// Writes SIF AU 3.4 attendance, streaming: one lesson is a
/// StudentPeriodAttendance, everything else a StudentDailyAttendance (Full
/// day, Partial with AbsenceValue = lessons / 6, late arrival 111, early
/// departure 112). The `sif-xml` adapter reads it back to the same records,
/// except what SIF cannot carry: the minutes of a late arrival and the
/// reason for late arrivals and early departures.
pub struct SifXmlWriter<W: Write> {
    out: W,
    school_year: i32,
}

impl<W: Write> SifXmlWriter<W> {
    /// Starts the document; `school_year` is the SIF SchoolYear.
    pub fn new(mut out: W, school_year: i32) -> io::Result<SifXmlWriter<W>> {
        writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
        // One file holding both collections: the reader finds the objects at any depth.
        writeln!(
            out,
            r#"<Attendance xmlns="http://www.sifassociation.org/datamodel/au/3.4">"#
        )?;
        Ok(SifXmlWriter { out, school_year })
    }

    /// Writes one record.
    pub fn record(&mut self, r: &AbsenceRecord) -> io::Result<()> {
        // Codes whose defaults already say the validity and reason, so the
        // status is only written where it changes them.
        let (code, status) = match (r.kind, r.validity, r.reason) {
            (Kind::Late, v, _) => ("111", Some(v)),
            (Kind::Left, v, _) => ("112", Some(v)),
            (_, Validity::Valid, Some(Reason::Leave)) => ("800", None),
            (_, Validity::Valid, Some(Reason::Illness)) => ("200", None),
            // Valid for another reason: unexplained made approved.
            (_, Validity::Valid, _) => ("500", Some(Validity::Valid)),
            (_, Validity::Invalid, _) => ("300", None),
            (_, Validity::Unclassified, _) => ("500", Some(Validity::Unclassified)),
        };
        let status = status.map(|v| match v {
            Validity::Valid => "01",
            Validity::Invalid => "02",
            Validity::Unclassified => "99",
        });
        let ref_id = sif_ref_id(&r.id);
        let pupil = escape(&r.pupil);
        let school = escape(&r.school);
        let w = &mut self.out;
        let period = r.kind == Kind::Lesson && r.lessons == 1;
        let element = if period {
            "StudentPeriodAttendance"
        } else {
            "StudentDailyAttendance"
        };
        writeln!(w, "  <{element} RefId=\"{ref_id}\">")?;
        writeln!(w, "    <StudentPersonalRefId>{pupil}</StudentPersonalRefId>")?;
        writeln!(w, "    <SchoolInfoRefId>{school}</SchoolInfoRefId>")?;
        writeln!(w, "    <Date>{}</Date>", r.date)?;
        if period {
            writeln!(w, "    <TimetablePeriod>{}</TimetablePeriod>", r.period.unwrap_or(1))?;
        }
        writeln!(w, "    <AttendanceCode><Code>{code}</Code></AttendanceCode>")?;
        if let Some(s) = status {
            writeln!(w, "    <AttendanceStatus>{s}</AttendanceStatus>")?;
        }
        writeln!(w, "    <SchoolYear>{}</SchoolYear>", self.school_year)?;
        if !period {
            match r.kind {
                Kind::Lesson => {
                    writeln!(w, "    <DayValue>Partial</DayValue>")?;
                    writeln!(
                        w,
                        "    <AbsenceValue>{:.4}</AbsenceValue>",
                        f64::from(r.lessons) / f64::from(SIF_LESSONS_PER_DAY)
                    )?;
                }
                Kind::Day => writeln!(w, "    <DayValue>Full</DayValue>")?,
                Kind::Late | Kind::Left => writeln!(w, "    <DayValue>Partial</DayValue>")?,
            }
        }
        writeln!(
            w,
            "    <AuditInfo><CreationUser Type=\"Other\"><UserId>tilstede-gen</UserId></CreationUser><CreationDateTime>{}T08:00:00</CreationDateTime></AuditInfo>",
            r.date
        )?;
        writeln!(w, "  </{element}>")
    }

    /// Ends the document and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        writeln!(self.out, "</Attendance>")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A SIF RefId (32 upper-case hex digits, a GUID without dashes) derived from
/// a record id, so the same record always gets the same RefId.
pub fn sif_ref_id(id: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode_upper(&Sha256::digest(id.as_bytes())[..16])
}

/// Header of the Flyt-style CSV (see `adapters/flyt/profile.toml`).
pub const FLYT_HEADER: &str = "Fravær-ID;Elev-ID;Skole-ID;Dato;Fraværstype;Antall timer;Minutter;Dokumentasjon;Årsak";

/// One record as a line of the Flyt-style CSV (without newline).
pub fn flyt_csv_line(r: &AbsenceRecord) -> String {
    let kind = match r.kind {
        Kind::Day => "Dagsfravær",
        Kind::Lesson => "Timesfravær",
        Kind::Late => "Forsentkomming",
        Kind::Left => "Forlatt skolen",
    };
    let documented = match r.validity {
        Validity::Valid => "Dokumentert",
        Validity::Invalid => "Udokumentert",
        Validity::Unclassified => "Ikke vurdert",
    };
    let reason = match r.reason {
        Some(Reason::Illness) => "sykdom",
        Some(Reason::Leave) => "permisjon",
        Some(Reason::Other | Reason::Circumstances) => "annet",
        None => "",
    };
    let lessons = if r.kind == Kind::Lesson {
        r.lessons.to_string()
    } else {
        String::new()
    };
    let minutes = r.minutes.map(|m| m.to_string()).unwrap_or_default();
    format!(
        "{};{};{};{};{kind};{lessons};{minutes};{documented};{reason}",
        r.id,
        r.pupil,
        r.school,
        r.date.format("%d.%m.%Y")
    )
}

/// The roster of a municipality as roster CSV lines (header first), one line
/// per pupil. Matrix ids are left to the reader's template.
pub fn roster_csv_lines(m: &super::Municipality) -> impl Iterator<Item = String> + '_ {
    use std::collections::HashMap;
    let schools: HashMap<&str, &super::School> = m.schools.iter().map(|s| (s.id.as_str(), s)).collect();
    let classes: HashMap<&str, &super::Class> = m.classes.iter().map(|c| (c.id.as_str(), c)).collect();
    let staff: HashMap<&str, &super::Staff> = m.staff.iter().map(|s| (s.id.as_str(), s)).collect();
    std::iter::once(crate::adapters::roster_csv::HEADER.to_string()).chain(m.pupils.iter().map(move |p| {
        let school = schools.get(p.school.as_str()).map(|s| s.name.as_str()).unwrap_or("");
        let class = classes.get(p.class.as_str());
        let teacher = class.and_then(|c| staff.get(c.contact_teacher.as_str()));
        format!(
            "{};{};{};{};{};{};{};{};{};{};{};{};",
            p.school,
            school,
            p.class,
            class.map(|c| c.name.as_str()).unwrap_or(""),
            p.grade,
            p.id,
            p.given_name,
            p.family_name,
            teacher.map(|t| t.id.as_str()).unwrap_or(""),
            teacher.map(|t| t.given_name.as_str()).unwrap_or(""),
            teacher.map(|t| t.family_name.as_str()).unwrap_or(""),
            teacher.map(|t| t.username.as_str()).unwrap_or(""),
        )
    }))
}
