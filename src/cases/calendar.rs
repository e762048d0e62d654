//! The school calendar and the routine's clock: which days are school days,
//! and where a deadline such as "by the end of the school day" or "within
//! the first lesson" falls. Times are Europe/Oslo; instants are UTC.

use super::config::CaseConfig;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc, Weekday};

pub(crate) fn oslo(date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    crate::domain::dates::oslo_instant(date.and_time(time))
}

pub(crate) fn is_school_day(d: NaiveDate) -> bool {
    !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

fn next_school_day(mut d: NaiveDate) -> NaiveDate {
    while !is_school_day(d) {
        d = d.succ_opt().unwrap_or(d);
    }
    d
}

/// The end of the school day `now` falls in, or of the next school day.
pub fn end_of_school_day(config: &CaseConfig, now: DateTime<Utc>) -> DateTime<Utc> {
    let today = crate::domain::dates::school_date_utc(now);
    if is_school_day(today) && now < oslo(today, config.day_end) {
        return oslo(today, config.day_end);
    }
    let next = next_school_day(today.succ_opt().unwrap_or(today));
    oslo(next, config.day_end)
}

/// "Within the first lesson": the end of the first lesson today if it is
/// still ahead; during the school day, one lesson's length from now (never
/// past the end of the day); after school, the next school day's first lesson.
pub fn within_first_lesson(config: &CaseConfig, now: DateTime<Utc>) -> DateTime<Utc> {
    let today = crate::domain::dates::school_date_utc(now);
    let lesson = Duration::minutes(i64::from(config.first_lesson_minutes));
    if is_school_day(today) {
        let start = oslo(today, config.day_start);
        let end = oslo(today, config.day_end);
        if now < start + lesson {
            return start + lesson;
        }
        if now < end {
            return (now + lesson).min(end);
        }
    }
    let next = next_school_day(today.succ_opt().unwrap_or(today));
    oslo(next, config.day_start) + lesson
}

/// The end of the school day `days` calendar days after `now` (moved to a school day).
pub fn days_later(config: &CaseConfig, now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    let today = crate::domain::dates::school_date_utc(now);
    let d = next_school_day(today + Duration::days(i64::from(days)));
    oslo(d, config.day_end)
}

pub(crate) fn date_deadline(config: &CaseConfig, date: NaiveDate) -> DateTime<Utc> {
    oslo(date, config.day_end)
}
