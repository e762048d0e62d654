//! Writers that turn canonical records into source formats, so adapters can
//! be tested and benchmarked on realistic files: Ed-Fi interchange XML and a
//! Flyt-style vendor CSV.

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
