//! Date arithmetic in the routine's terms: school days in Europe/Oslo, month
//! windows that clamp to month ends, school half-years.

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveDateTime, TimeZone, Utc, Weekday};
use chrono_tz::Europe::Oslo;

/// The school day (in Europe/Oslo) that an instant falls on.
pub fn school_date<Tz: TimeZone>(instant: &DateTime<Tz>) -> NaiveDate {
    instant.with_timezone(&Oslo).date_naive()
}

/// The school day of a UTC instant.
pub fn school_date_utc(instant: DateTime<Utc>) -> NaiveDate {
    school_date(&instant)
}

/// An Oslo wall-clock time as an instant: the earlier one in the autumn
/// overlap, and an hour on for a time inside the spring gap.
pub fn oslo_instant(local: NaiveDateTime) -> DateTime<Utc> {
    Oslo.from_local_datetime(&local)
        .earliest()
        .or_else(|| Oslo.from_local_datetime(&(local + Duration::hours(1))).earliest())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&local))
}

/// `date` minus `months` calendar months, clamped to the last day of the
/// target month (2026-05-31 − 3 months = 2026-02-28).
pub fn sub_months(date: NaiveDate, months: u32) -> NaiveDate {
    date.checked_sub_months(Months::new(months)).unwrap_or(NaiveDate::MIN)
}

/// The first day of `date`'s month.
pub fn month_start(date: NaiveDate) -> NaiveDate {
    date.with_day(1).unwrap_or(date)
}

/// The first day of the school half-year that holds `date`. The autumn term
/// starts on `autumn_start` (month, day), the spring term on `spring_start`.
pub fn half_year_start(date: NaiveDate, autumn_start: (u32, u32), spring_start: (u32, u32)) -> NaiveDate {
    let y = date.year();
    let at = |year: i32, (m, d): (u32, u32)| {
        NaiveDate::from_ymd_opt(year, m, d).unwrap_or_else(|| NaiveDate::from_ymd_opt(year, m, 28).unwrap_or(date))
    };
    // The latest term start on or before `date`.
    [
        at(y, autumn_start),
        at(y, spring_start),
        at(y - 1, autumn_start),
        at(y - 1, spring_start),
    ]
    .into_iter()
    .filter(|s| *s <= date)
    .max()
    .unwrap_or(date)
}

/// The first day of the school year that holds `date`: a Norwegian school
/// year runs from 1 August to 31 July.
pub fn school_year_start(date: NaiveDate) -> NaiveDate {
    let year = if date.month() >= 8 {
        date.year()
    } else {
        date.year() - 1
    };
    NaiveDate::from_ymd_opt(year, 8, 1).unwrap_or(NaiveDate::MIN)
}

/// The oldest date kept when `school_years` school years are kept, the
/// current one (holding `today`) included: 1 August of the school year
/// `school_years - 1` before the current one. Data dated before it has
/// outlived its retention period.
pub fn retention_cutoff(today: NaiveDate, school_years: u32) -> NaiveDate {
    let start = school_year_start(today);
    let back = i32::try_from(school_years.saturating_sub(1)).unwrap_or(i32::MAX);
    start
        .with_year(start.year().saturating_sub(back))
        .unwrap_or(NaiveDate::MIN)
}

/// Whether `date` is Monday–Friday.
pub fn is_weekday(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Formats a date the Norwegian way: `2.3.2026`.
pub fn norwegian(date: NaiveDate) -> String {
    format!("{}.{}.{}", date.day(), date.month(), date.year())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn retention_keeps_whole_school_years() {
        assert_eq!(school_year_start(d("2026-07-31")), d("2025-08-01"));
        assert_eq!(school_year_start(d("2026-08-01")), d("2026-08-01"));
        assert_eq!(school_year_start(d("2026-12-06")), d("2026-08-01"));
        // The current and the previous school year.
        assert_eq!(retention_cutoff(d("2026-12-06"), 2), d("2025-08-01"));
        assert_eq!(retention_cutoff(d("2026-07-31"), 2), d("2024-08-01"));
        assert_eq!(retention_cutoff(d("2026-08-01"), 2), d("2025-08-01"));
        assert_eq!(retention_cutoff(d("2026-03-01"), 1), d("2025-08-01"));
        assert_eq!(retention_cutoff(d("2026-03-01"), 5), d("2021-08-01"));
    }

    #[test]
    fn month_subtraction_clamps() {
        assert_eq!(sub_months(d("2026-05-31"), 3), d("2026-02-28"));
        assert_eq!(sub_months(d("2024-05-31"), 3), d("2024-02-29"));
        assert_eq!(sub_months(d("2026-03-31"), 1), d("2026-02-28"));
        assert_eq!(sub_months(d("2026-01-15"), 3), d("2025-10-15"));
    }

    #[test]
    fn half_years() {
        let a = (8, 1);
        let s = (1, 1);
        assert_eq!(half_year_start(d("2026-11-26"), a, s), d("2026-08-01"));
        assert_eq!(half_year_start(d("2026-08-01"), a, s), d("2026-08-01"));
        assert_eq!(half_year_start(d("2026-07-31"), a, s), d("2026-01-01"));
        assert_eq!(half_year_start(d("2027-01-01"), a, s), d("2027-01-01"));
    }

    #[test]
    fn school_date_follows_oslo_time_across_dst() {
        // 2026-03-29 01:30 UTC is 03:30 CEST on the 29th (after the spring change).
        let t = Utc.with_ymd_and_hms(2026, 3, 28, 23, 30, 0).unwrap();
        assert_eq!(school_date_utc(t), d("2026-03-29"));
        // 2026-10-25 22:30 UTC is 23:30 CET on the 25th (after the autumn change).
        let t = Utc.with_ymd_and_hms(2026, 10, 25, 22, 30, 0).unwrap();
        assert_eq!(school_date_utc(t), d("2026-10-25"));
        // ...and 23:30 UTC is already the 26th in Oslo.
        let t = Utc.with_ymd_and_hms(2026, 10, 25, 23, 30, 0).unwrap();
        assert_eq!(school_date_utc(t), d("2026-10-26"));
        // In summer (CEST, UTC+2) 22:00 UTC is midnight the next day.
        let t = Utc.with_ymd_and_hms(2026, 6, 10, 22, 0, 0).unwrap();
        assert_eq!(school_date_utc(t), d("2026-06-11"));
    }

    proptest! {
        #[test]
        fn sub_months_never_overshoots(y in 2000i32..2100, m in 1u32..=12, day in 1u32..=31, n in 0u32..24) {
            prop_assume!(NaiveDate::from_ymd_opt(y, m, day).is_some());
            let date = NaiveDate::from_ymd_opt(y, m, day).unwrap();
            let back = sub_months(date, n);
            // The month is exactly n back, and the day is the same or clamped to month end.
            let months = (date.year() - back.year()) * 12 + date.month() as i32 - back.month() as i32;
            prop_assert_eq!(months, n as i32);
            if back.day() != date.day() {
                prop_assert!(back.day() < date.day());
                prop_assert_eq!(back.succ_opt().unwrap().day(), 1, "clamped to month end");
            }
        }

        #[test]
        fn school_date_is_oslo_wall_clock(secs in 1_600_000_000i64..1_900_000_000) {
            let t = DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
            let date = school_date_utc(t);
            // Oslo is UTC+1 or UTC+2, so the school day is the UTC day or the next.
            let utc_day = t.date_naive();
            prop_assert!(date == utc_day || date == utc_day.succ_opt().unwrap());
            let offset_hours = if date == utc_day { 0 } else { 1 };
            prop_assert!(offset_hours == 0 || t.time() >= chrono::NaiveTime::from_hms_opt(22, 0, 0).unwrap());
        }
    }
}
