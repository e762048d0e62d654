//! PURE: when and where a pupil stays away — absence by weekday, subject,
//! first/last lesson, around weekends and breaks, and per week — and which of
//! those stand out enough to be named ([`patterns`]); charts of the same
//! numbers ([`charts`]).
//!
//! Nothing here does IO or reads the clock: absence events, the school
//! calendar and the window come in, numbers and Norwegian sentences go out.
//!
//! Intended call sites (wired in by the chat/render side later):
//! - the teacher digest (`cases::digest` / `chat::digests`): for each pupil,
//!   [`analyse`] over the digest's window and print each
//!   [`Pattern::sentence`] after «N.N. (5A): »;
//! - the phase-3 agenda and the mapping prompt: [`Insight::summary`] (the
//!   patterns, or «ingen tydelige mønstre», and what data is missing);
//! - the evaluation: [`analyse`] over the agreement period and before it,
//!   and [`charts::weekly_attendance`] with the agreement period shaded;
//! - leadership's school review: [`school_weeks`] and
//!   [`charts::school_overview`].

pub mod charts;
mod patterns;
mod stats;

pub use patterns::{
    BreakStats, DataGap, Insight, Pattern, PatternKind, PatternSettings, SchoolWeek, SubjectStat, WeekStat,
    WeekdayStat, analyse, school_weeks,
};

use crate::domain::{AbsenceRecord, Kind, Validity};
use chrono::{Datelike, NaiveDate, Weekday};
use std::collections::{BTreeMap, BTreeSet};

/// One absence event as the pattern analysis sees it: the canonical
/// record's fields that matter for *when* and *where*, nothing about why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsenceEvent {
    /// The school day.
    pub date: NaiveDate,
    /// Whole day, lessons, late or left.
    pub kind: Kind,
    /// Lessons for [`Kind::Lesson`]; ignored otherwise.
    pub lessons: u32,
    /// The school's classification.
    pub validity: Validity,
    /// Subject or course code, when the source says.
    pub subject: Option<String>,
    /// 1-based number of the (first) lesson within the school day, when the
    /// source says. A record of several lessons covers `period`,
    /// `period + 1`, ….
    pub period: Option<u8>,
}

impl AbsenceEvent {
    /// The event of a live record; `None` for a tombstone. Subject and
    /// period come from the canonical record's own fields.
    pub fn from_record(record: &AbsenceRecord) -> Option<AbsenceEvent> {
        if record.deleted {
            return None;
        }
        let subject = record
            .subject
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let period = record.period.filter(|p| (1..=24).contains(p));
        Some(AbsenceEvent {
            date: record.date,
            kind: record.kind,
            lessons: record.lessons,
            validity: record.validity,
            subject,
            period,
        })
    }
}

/// Which days are school days, and how many lessons they have. A school
/// calendar is being added to the case settings; anything that can answer
/// these two questions fits.
pub trait SchoolCalendar {
    /// Whether pupils are expected at school on `date`.
    fn is_school_day(&self, date: NaiveDate) -> bool;

    /// Lessons on `date`, when the calendar knows (otherwise
    /// [`PatternSettings::lessons_per_day`] is used).
    fn lessons_on(&self, _date: NaiveDate) -> Option<u32> {
        None
    }
}

/// Monday to Friday, except the listed days off (holidays, planning days).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeekdayCalendar {
    /// Weekdays without school.
    pub days_off: BTreeSet<NaiveDate>,
    /// Lessons on every school day, when known.
    pub lessons_per_day: Option<u32>,
}

impl WeekdayCalendar {
    /// Monday–Friday with `days_off` taken out.
    pub fn new(days_off: impl IntoIterator<Item = NaiveDate>) -> WeekdayCalendar {
        WeekdayCalendar {
            days_off: days_off.into_iter().collect(),
            lessons_per_day: None,
        }
    }

    /// Adds the days `from..=to` off (a holiday week).
    pub fn with_break(mut self, from: NaiveDate, to: NaiveDate) -> WeekdayCalendar {
        self.days_off.extend(from.iter_days().take_while(|d| *d <= to));
        self
    }
}

impl SchoolCalendar for WeekdayCalendar {
    fn is_school_day(&self, date: NaiveDate) -> bool {
        !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && !self.days_off.contains(&date)
    }

    fn lessons_on(&self, _date: NaiveDate) -> Option<u32> {
        self.lessons_per_day
    }
}

/// An explicit set of school days (as a school's own calendar lists them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchoolDays {
    /// The school days.
    pub days: BTreeSet<NaiveDate>,
    /// Lessons per day, where known.
    pub lessons: BTreeMap<NaiveDate, u32>,
}

impl SchoolCalendar for SchoolDays {
    fn is_school_day(&self, date: NaiveDate) -> bool {
        self.days.contains(&date)
    }

    fn lessons_on(&self, date: NaiveDate) -> Option<u32> {
        self.lessons.get(&date).copied()
    }
}

/// How the school's timetable divides lessons between subjects (weekly
/// lessons per subject code). Without it, absence per subject can be counted
/// but not judged: a subject with many lessons is missed more often.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timetable {
    /// Weekly lessons per subject code.
    pub weekly_lessons: BTreeMap<String, f64>,
}

impl Timetable {
    /// The share of all lessons that `subject` has.
    pub fn share(&self, subject: &str) -> Option<f64> {
        let total: f64 = self.weekly_lessons.values().sum();
        let n = *self.weekly_lessons.get(subject)?;
        (total > 0.0 && n > 0.0).then(|| n / total)
    }
}

/// The days `from..=to`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
}

impl Window {
    /// The window `from..=to`.
    pub fn new(from: NaiveDate, to: NaiveDate) -> Window {
        Window { from, to }
    }

    /// Whether `date` is inside.
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.from <= date && date <= self.to
    }

    /// Its days, in order.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.from.iter_days().take_while(move |d| *d <= self.to)
    }
}

impl SchoolCalendar for crate::cases::calendar::SchoolCalendar {
    fn is_school_day(&self, date: NaiveDate) -> bool {
        crate::cases::calendar::SchoolCalendar::is_school_day(self, date)
    }
}

/// [`analyse`] of one pupil's canonical records over `window`, with the
/// municipality's school calendar and default tests: what the case texts
/// and digests show.
pub fn of_records(
    records: &[AbsenceRecord],
    window: Window,
    calendar: &dyn SchoolCalendar,
    lessons_per_day: u32,
) -> Insight {
    let events: Vec<AbsenceEvent> = records.iter().filter_map(AbsenceEvent::from_record).collect();
    let settings = PatternSettings {
        lessons_per_day: lessons_per_day.max(1),
        ..PatternSettings::default()
    };
    analyse(&events, window, calendar, None, &settings)
}

/// The Norwegian plural of a weekday («mandager»).
pub fn weekday_plural(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "mandager",
        Weekday::Tue => "tirsdager",
        Weekday::Wed => "onsdager",
        Weekday::Thu => "torsdager",
        Weekday::Fri => "fredager",
        Weekday::Sat => "lørdager",
        Weekday::Sun => "søndager",
    }
}

/// The Norwegian short name of a weekday («man»), for chart axes.
pub fn weekday_short(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "man",
        Weekday::Tue => "tir",
        Weekday::Wed => "ons",
        Weekday::Thu => "tor",
        Weekday::Fri => "fre",
        Weekday::Sat => "lør",
        Weekday::Sun => "søn",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_take_subject_and_period_from_the_record() {
        let r = AbsenceRecord::from_json_str(
            r#"{"source":"s","id":"1","pupil":"p","school":"k","date":"2026-01-05","kind":"lesson","lessons":2,"validity":"invalid","subject":"MAT","period":3}"#,
        )
        .unwrap();
        let e = AbsenceEvent::from_record(&r).unwrap();
        assert_eq!(e.subject.as_deref(), Some("MAT"));
        assert_eq!(e.period, Some(3));
        assert_eq!(e.lessons, 2);

        let bare = AbsenceRecord::from_json_str(
            r#"{"source":"s","id":"2","pupil":"p","school":"k","date":"2026-01-05","kind":"day","lessons":1,"validity":"valid"}"#,
        )
        .unwrap();
        let e = AbsenceEvent::from_record(&bare).unwrap();
        assert_eq!(
            (e.subject, e.period),
            (None, None),
            "a whole day names no subject or lesson"
        );
        assert!(
            AbsenceRecord::from_json_str(
                r#"{"source":"s","id":"3","pupil":"p","school":"k","date":"2026-01-05","kind":"lesson","period":0}"#
            )
            .is_err(),
            "period 0 is not a lesson number"
        );
    }

    #[test]
    fn weekday_calendar_skips_weekends_and_breaks() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let cal = WeekdayCalendar::new([d("2026-05-01")]).with_break(d("2026-02-23"), d("2026-02-27"));
        assert!(cal.is_school_day(d("2026-02-20")));
        assert!(!cal.is_school_day(d("2026-02-21")), "Saturday");
        assert!(!cal.is_school_day(d("2026-02-25")), "winter break");
        assert!(!cal.is_school_day(d("2026-05-01")));
        assert!(cal.is_school_day(d("2026-03-02")));
    }
}
