//! Writers that turn canonical records into source formats, so adapters can
//! be tested and benchmarked on realistic files: Ed-Fi interchange XML, SIF
//! AU attendance XML and a Flyt-style vendor CSV.

use crate::adapters::xml::escape;
use crate::domain::{AbsenceRecord, Kind, Reason, Validity};
use std::io::{self, Write};

/// Lessons per school day assumed when writing part-day Ed-Fi events.
pub const EDFI_LESSONS_PER_DAY: u32 = 6;

/// Writes an Ed-Fi 5.x InterchangeStudentAttendance document, streaming.
pub struct EdfiXmlWriter<W: Write> {
    out: W,
    school_year: i32,
}

impl<W: Write> EdfiXmlWriter<W> {
    /// Starts the document. `school_year` is the Ed-Fi SchoolYear (the
    /// calendar year the school year ends in).
    pub fn new(mut out: W, school_year: i32) -> io::Result<EdfiXmlWriter<W>> {
        writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
        writeln!(
            out,
            r#"<InterchangeStudentAttendance xmlns="http://ed-fi.org/5.0.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#
        )?;
        Ok(EdfiXmlWriter { out, school_year })
    }

    /// Writes one record as a StudentSchoolAttendanceEvent. Lesson records
    /// become part-day events (lessons / 6 days), so they read back as the
    /// same number of lessons.
    pub fn record(&mut self, r: &AbsenceRecord) -> io::Result<()> {
        let category = match (r.kind, r.validity) {
            (Kind::Late, _) => "Tardy",
            (Kind::Left, _) => "Early departure",
            (_, Validity::Valid) => "Excused Absence",
            // Ed-Fi has no "not yet classified"; the routine counts it as invalid.
            (_, Validity::Invalid | Validity::Unclassified) => "Unexcused Absence",
        };
        let w = &mut self.out;
        writeln!(w, "  <StudentSchoolAttendanceEvent>")?;
        writeln!(
            w,
            "    <AttendanceEventCategoryDescriptor>uri://ed-fi.org/AttendanceEventCategoryDescriptor#{category}</AttendanceEventCategoryDescriptor>"
        )?;
        writeln!(w, "    <EventDate>{}</EventDate>", r.date)?;
        if matches!(r.reason, Some(Reason::Leave)) {
            writeln!(w, "    <AttendanceEventReason>Permisjon</AttendanceEventReason>")?;
        }
        match r.kind {
            Kind::Day => writeln!(w, "    <EventDuration>1</EventDuration>")?,
            Kind::Lesson => writeln!(
                w,
                "    <EventDuration>{:.4}</EventDuration>",
                f64::from(r.lessons.min(EDFI_LESSONS_PER_DAY)) / f64::from(EDFI_LESSONS_PER_DAY)
            )?,
            Kind::Late => {
                if let Some(m) = r.minutes {
                    writeln!(w, "    <SchoolAttendanceDuration>{m}</SchoolAttendanceDuration>")?;
                }
            }
            Kind::Left => {}
        }
        let pupil = escape(&r.pupil);
        let school = escape(&r.school);
        let session = if r.date.format("%m").to_string().as_str() >= "08" {
            "Høst"
        } else {
            "Vår"
        };
        writeln!(
            w,
            "    <StudentReference><StudentIdentity><StudentUniqueId>{pupil}</StudentUniqueId></StudentIdentity></StudentReference>"
        )?;
        writeln!(
            w,
            "    <SchoolReference><SchoolIdentity><SchoolId>{school}</SchoolId></SchoolIdentity></SchoolReference>"
        )?;
        writeln!(
            w,
            "    <SessionReference><SessionIdentity><SchoolYear>{}</SchoolYear><SessionName>{session}</SessionName><SchoolReference><SchoolIdentity><SchoolId>{school}</SchoolId></SchoolIdentity></SchoolReference></SessionIdentity></SessionReference>",
            self.school_year
        )?;
        writeln!(w, "  </StudentSchoolAttendanceEvent>")
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
            writeln!(w, "    <TimetablePeriod>1</TimetablePeriod>")?;
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
