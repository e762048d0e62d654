//! Evaluation with numbers: the weeks before an agreement compared with the
//! agreement period, computed from absence records.

use crate::domain::{AbsenceRecord, Kind};
use chrono::{Datelike, Duration, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Absence in one period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PeriodNumbers {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// School days (Monday–Friday) in the period.
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
    /// The same number of days right before the agreement.
    pub before: PeriodNumbers,
    /// The agreement period up to the evaluation (or today).
    pub during: PeriodNumbers,
}

impl Comparison {
    /// Change in attendance, percentage points (positive is better).
    pub fn attendance_change(&self) -> f64 {
        self.during.attendance_percent - self.before.attendance_percent
    }
}

fn school_days(from: NaiveDate, to: NaiveDate) -> u32 {
    from.iter_days()
        .take_while(|d| *d <= to)
        .filter(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
        .count() as u32
}

/// Numbers for `from..=to` from `records` (others are ignored).
pub fn period(records: &[AbsenceRecord], from: NaiveDate, to: NaiveDate, lessons_per_day: u32) -> PeriodNumbers {
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
    let school_days = school_days(from, to);
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

/// Compares the agreement period `start..=end` with the same number of days
/// before `start`.
pub fn compare(records: &[AbsenceRecord], start: NaiveDate, end: NaiveDate, lessons_per_day: u32) -> Comparison {
    let end = end.max(start);
    let len = (end - start).num_days() + 1;
    let before_to = start - Duration::days(1);
    let before_from = start - Duration::days(len);
    Comparison {
        before: period(records, before_from, before_to, lessons_per_day),
        during: period(records, start, end, lessons_per_day),
    }
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
        // Agreement 2.3.–8.3. (5 school days); before: 23.2.–1.3.
        let c = compare(&records, d("2026-03-02"), d("2026-03-08"), 6);
        assert_eq!(c.during.school_days, 5);
        assert_eq!(c.during.lessons, 2);
        assert_eq!(c.during.attendance_percent, 93.3);
        assert_eq!(c.before.from, d("2026-02-23"));
        assert_eq!(c.before.lessons, 0);
        let wide = period(&records, d("2026-02-16"), d("2026-02-20"), 6);
        // The lesson on a whole-day date is not counted twice.
        assert_eq!((wide.days, wide.lessons, wide.lates), (2, 12, 1));
        assert_eq!(wide.attendance_percent, 60.0);
        assert!(c.attendance_change() < 0.0);
    }
}
