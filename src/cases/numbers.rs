//! Evaluation with numbers: the agreement period compared with as many
//! school days right before it, computed from absence records. School days
//! come from the school calendar, so a holiday week neither counts as full
//! attendance nor stretches a period.

use super::calendar::SchoolCalendar;
use crate::domain::{AbsenceRecord, Kind};
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Absence in one period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PeriodNumbers {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// School days in the period (weekdays without holidays).
    pub school_days: u32,
    /// Whole days absent.
    pub days: u32,
    /// Lessons absent, whole days counted as `lessons_per_day`.
    pub lessons: u32,
    /// Late arrivals.
    pub lates: u32,
    /// Times the pupil left school after arriving.
    pub left: u32,
    /// Attendance in percent of scheduled lessons.
    pub attendance_percent: f64,
}

/// Before and during an agreement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// As many school days right before the agreement as it has had.
    pub before: PeriodNumbers,
    /// The agreement period up to the evaluation (or today).
    pub during: PeriodNumbers,
}

/// Fewer school days than this under an agreement are too few to compare.
pub const FEW_SCHOOL_DAYS: u32 = 5;

impl Comparison {
    /// Change in attendance, percentage points (positive is better).
    pub fn attendance_change(&self) -> f64 {
        self.during.attendance_percent - self.before.attendance_percent
    }
}

/// Numbers for `from..=to` from `records` (others are ignored), with the
/// school days of `calendar`.
pub fn period(
    records: &[AbsenceRecord],
    calendar: &SchoolCalendar,
    from: NaiveDate,
    to: NaiveDate,
    lessons_per_day: u32,
) -> PeriodNumbers {
    let inside = records.iter().filter(|r| !r.deleted && r.date >= from && r.date <= to);
    let mut day_dates = BTreeSet::new();
    let mut lessons = 0u32;
    let mut lates = 0;
    let mut left = 0;
    let mut lesson_records = Vec::new();
    for r in inside {
        match r.kind {
            Kind::Day => {
                day_dates.insert(r.date);
            }
            Kind::Lesson => lesson_records.push(r),
            Kind::Late => lates += 1,
            Kind::Left => left += 1,
        }
    }
    // Lessons on a day already counted whole would count twice.
    for r in lesson_records {
        if !day_dates.contains(&r.date) {
            lessons += r.lessons;
        }
    }
    let days = day_dates.len() as u32;
    lessons += days * lessons_per_day;
    let school_days = calendar.school_days(from, to);
    let scheduled = school_days * lessons_per_day;
    let attendance_percent = if scheduled == 0 {
        100.0
    } else {
        (100.0 * (1.0 - f64::from(lessons.min(scheduled)) / f64::from(scheduled)) * 10.0).round() / 10.0
    };
    PeriodNumbers {
        from,
        to,
        school_days,
        days,
        lessons,
        lates,
        left,
        attendance_percent,
    }
}

/// Compares the agreement period `start..=end` with as many school days
/// right before `start`: equal periods of school days, holidays left out.
pub fn compare(
    records: &[AbsenceRecord],
    calendar: &SchoolCalendar,
    start: NaiveDate,
    end: NaiveDate,
    lessons_per_day: u32,
) -> Comparison {
    let end = end.max(start);
    let during = period(records, calendar, start, end, lessons_per_day);
    let before_from = calendar.school_days_back(start, during.school_days);
    let before_to = start - Duration::days(1);
    Comparison {
        before: period(
            records,
            calendar,
            before_from.min(before_to),
            before_to,
            lessons_per_day,
        ),
        during,
    }
}

/// The first day `compare` may read for an agreement period `start..=end`.
pub fn earliest(calendar: &SchoolCalendar, start: NaiveDate, end: NaiveDate) -> NaiveDate {
    let days = calendar.school_days(start, end.max(start));
    calendar.school_days_back(start, days).min(start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Validity;

    fn rec(date: &str, kind: Kind, lessons: u32) -> AbsenceRecord {
        AbsenceRecord {
            source: "s".into(),
            id: format!("{date}-{kind:?}"),
            version: 1,
            pupil: "p".into(),
            school: "k".into(),
            date: NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap(),
            kind,
            lessons,
            minutes: None,
            validity: Validity::Invalid,
            reason: None,
            deleted: false,
            subject: None,
            period: None,
            extensions: Default::default(),
        }
    }

    #[test]
    fn before_and_during() {
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let records = vec![
            rec("2026-02-16", Kind::Day, 1),
            rec("2026-02-17", Kind::Day, 1),
            rec("2026-02-17", Kind::Lesson, 2),
            rec("2026-02-18", Kind::Late, 1),
            rec("2026-03-03", Kind::Lesson, 2),
        ];
        let weekdays = SchoolCalendar::default();
        // Agreement 2.3.–8.3. (5 school days); before: 23.2.–1.3.
        let c = compare(&records, &weekdays, d("2026-03-02"), d("2026-03-08"), 6);
        assert_eq!(c.during.school_days, 5);
        assert_eq!(c.during.lessons, 2);
        assert_eq!(c.during.attendance_percent, 93.3);
        assert_eq!(c.before.from, d("2026-02-23"));
        assert_eq!(c.before.lessons, 0);
        let wide = period(&records, &weekdays, d("2026-02-16"), d("2026-02-20"), 6);
        // The lesson on a whole-day date is not counted twice.
        assert_eq!((wide.days, wide.lessons, wide.lates), (2, 12, 1));
        assert_eq!(wide.attendance_percent, 60.0);
        assert!(c.attendance_change() < 0.0);
    }

    #[test]
    fn equal_periods_of_school_days_skip_holidays() {
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let calendar = SchoolCalendar {
            years: vec![crate::cases::calendar::SchoolYear {
                name: "2025–26".into(),
                first_day: d("2025-08-18"),
                last_day: d("2026-06-19"),
                breaks: vec![crate::cases::calendar::Break {
                    name: "Vinterferie".into(),
                    from: d("2026-02-16"),
                    to: d("2026-02-20"),
                }],
            }],
        };
        let records = vec![rec("2026-02-12", Kind::Day, 1), rec("2026-02-24", Kind::Day, 1)];
        // An agreement made Monday 23.2., evaluated Friday 6.3.: ten school
        // days under it, against the ten before it, which skip the winter
        // holiday and reach back to 2.2.
        let c = compare(&records, &calendar, d("2026-02-23"), d("2026-03-06"), 6);
        assert_eq!((c.during.school_days, c.before.school_days), (10, 10));
        assert_eq!(c.before.from, d("2026-02-02"));
        assert_eq!((c.before.days, c.during.days), (1, 1));
        assert_eq!(c.before.attendance_percent, 90.0);
        // On the agreement's own day there is one school day to compare:
        // the numbers say so, and documents call it too short.
        let c = compare(&records, &calendar, d("2026-02-23"), d("2026-02-23"), 6);
        assert_eq!((c.during.school_days, c.before.school_days), (1, 1));
        assert!(c.during.school_days < FEW_SCHOOL_DAYS);
    }
}
