//! The school calendar and the routine's clock: which days are school days
//! (weekdays of a school year, not its holidays or planning days), and where
//! a deadline such as "by the end of the school day" or "within the first
//! lesson" falls. Times are Europe/Oslo; instants are UTC.
//!
//! The calendar drives deadlines, the before/after numbers of an
//! evaluation, and the digests, so a holiday week neither runs a deadline
//! out nor counts as a week of full attendance.

use super::config::CaseConfig;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc, Weekday};

/// A break in a school year: a holiday or a planning day (both inclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// Its name, e.g. `Høstferie`.
    pub name: String,
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
}

/// One school year: its first and last school day and its breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchoolYear {
    /// E.g. `2026–27`.
    pub name: String,
    /// The first school day.
    pub first_day: NaiveDate,
    /// The last school day.
    pub last_day: NaiveDate,
    /// Holidays and planning days.
    pub breaks: Vec<Break>,
}

/// The school years a municipality has configured, oldest first. Outside
/// every configured year nothing is known, and every weekday counts as a
/// school day; between two configured years is the summer holiday.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchoolCalendar {
    /// The years, oldest first, not overlapping.
    pub years: Vec<SchoolYear>,
}

/// Days looked at before giving up on finding a school day (a year and a
/// half: more than any holiday).
const SEARCH_DAYS: u32 = 550;

impl SchoolCalendar {
    /// The break `d` falls in, if any (summer between configured years included).
    pub fn break_on(&self, d: NaiveDate) -> Option<&str> {
        if let Some(y) = self.years.iter().find(|y| y.first_day <= d && d <= y.last_day) {
            return y
                .breaks
                .iter()
                .find(|b| b.from <= d && d <= b.to)
                .map(|b| b.name.as_str());
        }
        let (Some(first), Some(last)) = (self.years.first(), self.years.last()) else {
            return None;
        };
        (first.first_day < d && d < last.last_day).then_some("Sommerferie")
    }

    /// Whether pupils are at school on `d`.
    pub fn is_school_day(&self, d: NaiveDate) -> bool {
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && self.break_on(d).is_none()
    }

    /// `d` if it is a school day, else the next one.
    pub fn next_school_day(&self, d: NaiveDate) -> NaiveDate {
        let mut day = d;
        for _ in 0..SEARCH_DAYS {
            if self.is_school_day(day) {
                return day;
            }
            day = day.succ_opt().unwrap_or(day);
        }
        d
    }

    /// The school days from `from` to `to`, both inclusive.
    pub fn school_days(&self, from: NaiveDate, to: NaiveDate) -> u32 {
        from.iter_days()
            .take_while(|d| *d <= to)
            .filter(|d| self.is_school_day(*d))
            .count() as u32
    }

    /// The first day of the `n` school days right before `before` (so the
    /// period from it to the day before `before` holds `n` school days);
    /// `before` itself when `n` is 0.
    pub fn school_days_back(&self, before: NaiveDate, n: u32) -> NaiveDate {
        let mut day = before;
        let mut found = 0;
        let mut looked = 0;
        while found < n && looked < SEARCH_DAYS * 2 {
            day = day.pred_opt().unwrap_or(day);
            looked += 1;
            if self.is_school_day(day) {
                found += 1;
            }
        }
        day
    }

    /// The school day `n` school days after `d` (the same day when `n` is 0
    /// and `d` is a school day).
    pub fn school_days_later(&self, d: NaiveDate, n: u32) -> NaiveDate {
        let mut day = self.next_school_day(d);
        for _ in 0..n {
            day = self.next_school_day(day.succ_opt().unwrap_or(day));
        }
        day
    }
}

pub(crate) fn oslo(date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    crate::domain::dates::oslo_instant(date.and_time(time))
}

/// The end of the school day `now` falls in, or of the next school day.
pub fn end_of_school_day(config: &CaseConfig, now: DateTime<Utc>) -> DateTime<Utc> {
    let today = crate::domain::dates::school_date_utc(now);
    let calendar = &config.calendar;
    if calendar.is_school_day(today) && now < oslo(today, config.day_end) {
        return oslo(today, config.day_end);
    }
    let next = calendar.next_school_day(today.succ_opt().unwrap_or(today));
    oslo(next, config.day_end)
}

/// "Within the first lesson": the end of the first lesson today if it is
/// still ahead; during the school day, one lesson's length from now (never
/// past the end of the day); after school, the next school day's first lesson.
pub fn within_first_lesson(config: &CaseConfig, now: DateTime<Utc>) -> DateTime<Utc> {
    let today = crate::domain::dates::school_date_utc(now);
    let lesson = Duration::minutes(i64::from(config.first_lesson_minutes));
    let calendar = &config.calendar;
    if calendar.is_school_day(today) {
        let start = oslo(today, config.day_start);
        let end = oslo(today, config.day_end);
        if now < start + lesson {
            return start + lesson;
        }
        if now < end {
            return (now + lesson).min(end);
        }
    }
    let next = calendar.next_school_day(today.succ_opt().unwrap_or(today));
    oslo(next, config.day_start) + lesson
}

/// The end of the school day `days` calendar days after `now`, moved to
/// the next school day when that falls in a weekend or a holiday.
pub fn days_later(config: &CaseConfig, now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    let today = crate::domain::dates::school_date_utc(now);
    let d = config.calendar.next_school_day(today + Duration::days(i64::from(days)));
    oslo(d, config.day_end)
}

/// The end of the school day on `date` (or the next school day).
pub(crate) fn date_deadline(config: &CaseConfig, date: NaiveDate) -> DateTime<Utc> {
    oslo(config.calendar.next_school_day(date), config.day_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn calendar() -> SchoolCalendar {
        SchoolCalendar {
            years: vec![
                SchoolYear {
                    name: "2025–26".into(),
                    first_day: d("2025-08-18"),
                    last_day: d("2026-06-19"),
                    breaks: vec![Break {
                        name: "Vinterferie".into(),
                        from: d("2026-02-16"),
                        to: d("2026-02-20"),
                    }],
                },
                SchoolYear {
                    name: "2026–27".into(),
                    first_day: d("2026-08-17"),
                    last_day: d("2027-06-18"),
                    breaks: Vec::new(),
                },
            ],
        }
    }

    #[test]
    fn holidays_weekends_and_summer_are_no_school_days() {
        let c = calendar();
        assert!(c.is_school_day(d("2026-02-13")));
        assert!(!c.is_school_day(d("2026-02-16")));
        assert_eq!(c.break_on(d("2026-02-18")), Some("Vinterferie"));
        assert!(!c.is_school_day(d("2026-02-21")), "a Saturday");
        assert_eq!(c.break_on(d("2026-07-10")), Some("Sommerferie"));
        assert_eq!(c.next_school_day(d("2026-06-20")), d("2026-08-17"));
        // Outside every configured year only weekends are known.
        assert!(c.is_school_day(d("2028-01-04")));
        assert!(SchoolCalendar::default().is_school_day(d("2026-02-16")));
        // A week with the winter holiday has no school days.
        assert_eq!(c.school_days(d("2026-02-16"), d("2026-02-22")), 0);
        assert_eq!(c.school_days(d("2026-02-09"), d("2026-02-22")), 5);
        // Five school days back from Monday 23.2. skip the holiday week.
        assert_eq!(c.school_days_back(d("2026-02-23"), 5), d("2026-02-09"));
        assert_eq!(c.school_days_later(d("2026-02-13"), 1), d("2026-02-23"));
    }
}
