//! Absence counted by weekday, subject, lesson, breaks and week, and the
//! patterns that stand out.
//!
//! # The tests
//!
//! A pattern is named only when chance explains it badly. Each family of
//! questions is tested at the significance level [`PatternSettings::alpha`]
//! (default 1 %), split evenly over the questions in the family (Bonferroni),
//! and a pattern also needs at least [`PatternSettings::min_count`]
//! occurrences (default 3), so two Mondays out of three are never "a
//! pattern":
//!
//! - **Weekday** (one question per weekday with school): the pupil's absence
//!   days are compared with the school days in the window. Under "absence
//!   days are a random choice of school days" the number that fall on
//!   Mondays is hypergeometric; the tail P(X ≥ observed) is the p-value.
//! - **Around weekends** (Mondays and Fridays together, asked only when
//!   neither day is named on its own) and **around breaks** (the first school
//!   day after, and the last before, a break that takes out at least one
//!   weekday — holidays, planning days, the start of term): the same test
//!   on those days.
//! - **Trend** (rising, falling): the absence days in the second half of the
//!   window's school days against the first half, the same test.
//! - **Subject** (one question per subject in the timetable): single-lesson
//!   absence by subject against each subject's share of the timetable,
//!   binomial. Without a timetable the counts are shown but not judged.
//! - **First and last lesson**: single-lesson absence in the day's first (last)
//!   lesson against 1/(lessons that day), Poisson-binomial.
//!
//! Whole-day absence has no subject or lesson; lateness is counted but not
//! tested (it is by nature at the start of the day).

use super::stats::{binomial_sf, hypergeometric_sf, poisson_binomial_sf};
use super::{AbsenceEvent, SchoolCalendar, Timetable, Window, weekday_plural};
use crate::domain::{Kind, Validity};
use chrono::{Datelike, Duration, NaiveDate, Weekday};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// How strict the pattern tests are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PatternSettings {
    /// Significance level per family of questions (split over the family).
    pub alpha: f64,
    /// Fewest occurrences a named pattern needs.
    pub min_count: u32,
    /// Lessons on a school day when the calendar does not say (the rules'
    /// `lessons_per_day`).
    pub lessons_per_day: u32,
}

impl Default for PatternSettings {
    fn default() -> PatternSettings {
        PatternSettings {
            alpha: 0.01,
            min_count: 3,
            lessons_per_day: 6,
        }
    }
}

/// What kind of pattern was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum PatternKind {
    /// Absence piles up on one weekday.
    Weekday(#[serde(serialize_with = "ser_weekday")] Weekday),
    /// Absence piles up on Mondays and Fridays together.
    AroundWeekend,
    /// On the first school day after a break.
    AfterBreak,
    /// On the last school day before a break.
    BeforeBreak,
    /// In one subject (its code).
    Subject(String),
    /// In the day's first lesson.
    FirstLesson,
    /// In the day's last lesson.
    LastLesson,
    /// More in the second half of the window.
    Rising,
    /// Less in the second half of the window.
    Falling,
}

fn ser_weekday<S: serde::Serializer>(day: &Weekday, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(weekday_plural(*day))
}

impl PatternKind {
    /// A stable kebab-case code, like the findings' codes.
    pub fn code(&self) -> String {
        match self {
            PatternKind::Weekday(d) => format!("weekday-{}", format!("{d:?}").to_lowercase()),
            PatternKind::AroundWeekend => "around-weekend".into(),
            PatternKind::AfterBreak => "after-break".into(),
            PatternKind::BeforeBreak => "before-break".into(),
            PatternKind::Subject(_) => "subject".into(),
            PatternKind::FirstLesson => "first-lesson".into(),
            PatternKind::LastLesson => "last-lesson".into(),
            PatternKind::Rising => "rising".into(),
            PatternKind::Falling => "falling".into(),
        }
    }
}

/// A pattern that stood out, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pattern {
    /// What it is.
    pub kind: PatternKind,
    /// Occurrences (absence days or lessons) that fit the pattern.
    pub observed: u32,
    /// All occurrences of the kind counted.
    pub total: u32,
    /// The share chance would give (e.g. Mondays' share of school days).
    pub expected_share: f64,
    /// P(at least `observed`) by chance.
    pub p_value: f64,
    /// The level the p-value had to be under.
    pub threshold: f64,
    /// The short Norwegian sentence, e.g. «6 av 9 fraværsdager er mandager».
    pub sentence: String,
    /// What chance would give, e.g. «mandager er 20 % av skoledagene».
    pub detail: String,
}

/// Absence on one weekday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WeekdayStat {
    /// The weekday.
    #[serde(serialize_with = "ser_weekday")]
    pub weekday: Weekday,
    /// School days on that weekday in the window.
    pub school_days: u32,
    /// Of those, days with absence.
    pub absence_days: u32,
    /// Single lessons missed on that weekday.
    pub lessons: u32,
}

/// Single-lesson absence in one subject.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectStat {
    /// The subject code as the source gives it.
    pub subject: String,
    /// Lessons missed.
    pub lessons: u32,
    /// Lessons missed per weekday, Monday first.
    pub by_weekday: [u32; 5],
    /// The subject's share of the timetable, when known.
    pub timetable_share: Option<f64>,
}

/// Absence around breaks and weekends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BreakStats {
    /// School days that are the first after a break.
    pub after_break_days: u32,
    /// Of those, days with absence.
    pub after_break_absent: u32,
    /// School days that are the last before a break.
    pub before_break_days: u32,
    /// Of those, days with absence.
    pub before_break_absent: u32,
    /// School days that are Mondays or Fridays.
    pub monday_friday_days: u32,
    /// Of those, days with absence.
    pub monday_friday_absent: u32,
}

/// One week.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WeekStat {
    /// The week's Monday.
    pub monday: NaiveDate,
    /// ISO week number.
    pub iso_week: u32,
    /// School days in the week (inside the window).
    pub school_days: u32,
    /// Days with absence.
    pub absence_days: u32,
    /// Whole days away.
    pub whole_days: u32,
    /// Single lessons missed.
    pub lessons: u32,
    /// Late arrivals.
    pub lates: u32,
    /// Lessons attended, in percent of the week's lessons.
    pub attendance_pct: f64,
}

/// Data the analysis needed and did not get; said out loud rather than
/// guessed around.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "gap", rename_all = "kebab-case")]
pub enum DataGap {
    /// No single-lesson absence names its subject.
    NoSubject,
    /// Some single-lesson absence lacks its subject.
    SomeSubjectsMissing {
        /// Lessons without a subject.
        missing: u32,
        /// All single lessons.
        total: u32,
    },
    /// Subjects are known but the timetable is not, so they are not judged.
    NoTimetable,
    /// No single-lesson absence says which lesson of the day it was.
    NoPeriod,
    /// Some single-lesson absence lacks its lesson number.
    SomePeriodsMissing {
        /// Lessons without a number.
        missing: u32,
        /// All single lessons.
        total: u32,
    },
    /// Absence registered on days that are not school days (not counted).
    OutsideSchoolDays {
        /// Such events.
        events: u32,
    },
    /// The window has no school days.
    NoSchoolDays,
}

impl DataGap {
    /// The Norwegian sentence.
    pub fn sentence(&self) -> String {
        match self {
            DataGap::NoSubject => "Fag er ikke oppgitt for timefraværet, så fravær per fag kan ikke vurderes.".into(),
            DataGap::SomeSubjectsMissing { missing, total } => {
                format!("Fag mangler for {missing} av {total} fraværstimer; de er ikke med i fagtellingen.")
            }
            DataGap::NoTimetable => "Timefordelingen per fag er ikke kjent, så fraværet per fag er bare talt opp, \
                                     ikke vurdert mot hvor mange timer faget har."
                .into(),
            DataGap::NoPeriod => "Timenummer er ikke oppgitt for timefraværet, så første og siste time \
                                  kan ikke vurderes."
                .into(),
            DataGap::SomePeriodsMissing { missing, total } => format!(
                "Timenummer mangler for {missing} av {total} fraværstimer; de er ikke med i vurderingen av første og siste time."
            ),
            DataGap::OutsideSchoolDays { events } => {
                format!("{events} fraværsposter gjelder dager uten skole og er ikke talt med.")
            }
            DataGap::NoSchoolDays => "Perioden har ingen skoledager.".into(),
        }
    }
}

/// Everything counted for one pupil over one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Insight {
    /// First day of the window.
    pub from: NaiveDate,
    /// Last day of the window.
    pub to: NaiveDate,
    /// School days in the window.
    pub school_days: u32,
    /// Days with any absence (whole day, lessons, or leaving).
    pub absence_days: u32,
    /// Whole days away.
    pub whole_days: u32,
    /// Single lessons missed.
    pub lessons: u32,
    /// Late arrivals.
    pub lates: u32,
    /// Times the pupil left school during the day.
    pub left: u32,
    /// Days with absence not (yet) classified as valid.
    pub not_valid_days: u32,
    /// Per weekday with school, Monday first.
    pub by_weekday: Vec<WeekdayStat>,
    /// Per subject, most missed first.
    pub by_subject: Vec<SubjectStat>,
    /// Single lessons missed per lesson number.
    pub by_period: BTreeMap<u8, u32>,
    /// Single lessons missed that were the day's first.
    pub first_lesson: u32,
    /// Single lessons missed that were the day's last.
    pub last_lesson: u32,
    /// Around breaks and weekends.
    pub breaks: BreakStats,
    /// Per week, in order.
    pub weeks: Vec<WeekStat>,
    /// The patterns that stood out, strongest first.
    pub patterns: Vec<Pattern>,
    /// What data was missing.
    pub gaps: Vec<DataGap>,
}

impl Insight {
    /// Lines for an agenda, a prompt or an evaluation: each pattern with
    /// what chance would give, or that none stands out; then the gaps.
    pub fn summary(&self) -> Vec<String> {
        let mut out: Vec<String> = if self.patterns.is_empty() {
            vec![format!(
                "Ingen tydelige mønstre i fraværet ({} fraværsdager på {} skoledager).",
                self.absence_days, self.school_days
            )]
        } else {
            self.patterns
                .iter()
                .map(|p| format!("{} ({}).", p.sentence, p.detail))
                .collect()
        };
        out.extend(self.gaps.iter().map(DataGap::sentence));
        out
    }
}

/// What happened on one school day.
#[derive(Debug, Clone, Copy, Default)]
struct Day {
    whole: bool,
    lessons: u32,
    lates: u32,
    left: bool,
    not_valid: bool,
}

impl Day {
    fn absent(&self) -> bool {
        self.whole || self.lessons > 0 || self.left
    }
}

/// One missed lesson.
struct Unit {
    date: NaiveDate,
    subject: Option<String>,
    period: Option<u32>,
}

/// How far to look for the neighbouring school day across a break.
const BREAK_SEARCH_DAYS: i64 = 80;

fn previous_school_day(calendar: &dyn SchoolCalendar, date: NaiveDate) -> Option<NaiveDate> {
    (1..=BREAK_SEARCH_DAYS)
        .map(|i| date - Duration::days(i))
        .find(|d| calendar.is_school_day(*d))
}

fn next_school_day(calendar: &dyn SchoolCalendar, date: NaiveDate) -> Option<NaiveDate> {
    (1..=BREAK_SEARCH_DAYS)
        .map(|i| date + Duration::days(i))
        .find(|d| calendar.is_school_day(*d))
}

/// Whether a weekday lies strictly between `a` and `b` (a day off that is
/// not a weekend).
fn weekday_between(a: NaiveDate, b: NaiveDate) -> bool {
    a.iter_days()
        .skip(1)
        .take_while(|d| *d < b)
        .any(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
}

fn is_after_break(calendar: &dyn SchoolCalendar, date: NaiveDate) -> bool {
    previous_school_day(calendar, date).is_none_or(|prev| weekday_between(prev, date))
}

fn is_before_break(calendar: &dyn SchoolCalendar, date: NaiveDate) -> bool {
    next_school_day(calendar, date).is_none_or(|next| weekday_between(date, next))
}

fn pct(x: f64) -> String {
    format!("{} %", (x * 100.0).round() as i64)
}

/// The tests of one family share `alpha`.
struct Family<'a> {
    settings: &'a PatternSettings,
    questions: usize,
}

impl Family<'_> {
    fn threshold(&self) -> f64 {
        self.settings.alpha / self.questions.max(1) as f64
    }

    /// The pattern when `observed` of `total` is unlikely enough.
    fn judge(&self, kind: PatternKind, observed: u32, total: u32, share: f64, p: f64) -> Option<Pattern> {
        let threshold = self.threshold();
        let more_than_chance = f64::from(observed) > share * f64::from(total);
        (observed >= self.settings.min_count && more_than_chance && p <= threshold).then(|| Pattern {
            kind,
            observed,
            total,
            expected_share: share,
            p_value: p,
            threshold,
            sentence: String::new(),
            detail: String::new(),
        })
    }
}

/// Counts a pupil's absence over `window` and names the patterns that stand
/// out (see the module documentation for the tests).
pub fn analyse(
    events: &[AbsenceEvent],
    window: Window,
    calendar: &dyn SchoolCalendar,
    timetable: Option<&Timetable>,
    settings: &PatternSettings,
) -> Insight {
    let school_days: Vec<NaiveDate> = window.days().filter(|d| calendar.is_school_day(*d)).collect();
    let school_set: BTreeSet<NaiveDate> = school_days.iter().copied().collect();
    let lessons_on = |d: NaiveDate| calendar.lessons_on(d).unwrap_or(settings.lessons_per_day).max(1);

    let mut days: BTreeMap<NaiveDate, Day> = BTreeMap::new();
    let mut units: Vec<Unit> = Vec::new();
    let mut outside = 0u32;
    for e in events {
        if !window.contains(e.date) {
            continue;
        }
        if !school_set.contains(&e.date) {
            outside += 1;
            continue;
        }
        let day = days.entry(e.date).or_default();
        match e.kind {
            Kind::Day => day.whole = true,
            Kind::Lesson => {
                day.lessons += e.lessons;
                for i in 0..e.lessons {
                    units.push(Unit {
                        date: e.date,
                        subject: e.subject.clone(),
                        period: e.period.map(|p| u32::from(p) + i),
                    });
                }
            }
            Kind::Late => day.lates += 1,
            Kind::Left => day.left = true,
        }
        if e.validity != Validity::Valid && e.kind != Kind::Late {
            day.not_valid = true;
        }
    }
    let absent = |d: &NaiveDate| days.get(d).is_some_and(Day::absent);
    let n = school_days.iter().filter(|d| absent(d)).count() as u32;
    let total_days = school_days.len() as u32;

    // Weekdays.
    let mut by_weekday: Vec<WeekdayStat> = Vec::new();
    for wd in [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ] {
        let on: Vec<&NaiveDate> = school_days.iter().filter(|d| d.weekday() == wd).collect();
        if on.is_empty() {
            continue;
        }
        by_weekday.push(WeekdayStat {
            weekday: wd,
            school_days: on.len() as u32,
            absence_days: on.iter().filter(|d| absent(d)).count() as u32,
            lessons: on.iter().map(|d| days.get(d).map_or(0, |x| x.lessons)).sum(),
        });
    }

    let mut patterns = Vec::new();
    let day_test = |observed: u32, marked: u32| hypergeometric_sf(observed, total_days, marked, n);

    let weekday_family = Family {
        settings,
        questions: by_weekday.len(),
    };
    for s in &by_weekday {
        let share = f64::from(s.school_days) / f64::from(total_days.max(1));
        let p = day_test(s.absence_days, s.school_days);
        if let Some(mut pat) = weekday_family.judge(PatternKind::Weekday(s.weekday), s.absence_days, n, share, p) {
            pat.sentence = format!(
                "{} av {n} fraværsdager er {}",
                s.absence_days,
                weekday_plural(s.weekday)
            );
            pat.detail = format!("{} er {} av skoledagene", weekday_plural(s.weekday), pct(share));
            patterns.push(pat);
        }
    }

    // Weekends and breaks.
    let mut breaks = BreakStats::default();
    let mut after = Vec::new();
    let mut before = Vec::new();
    for d in &school_days {
        let a = absent(d);
        if matches!(d.weekday(), Weekday::Mon | Weekday::Fri) {
            breaks.monday_friday_days += 1;
            breaks.monday_friday_absent += u32::from(a);
        }
        if is_after_break(calendar, *d) {
            after.push(*d);
            breaks.after_break_days += 1;
            breaks.after_break_absent += u32::from(a);
        }
        if is_before_break(calendar, *d) {
            before.push(*d);
            breaks.before_break_days += 1;
            breaks.before_break_absent += u32::from(a);
        }
    }
    let single_day_named = patterns
        .iter()
        .any(|p| matches!(p.kind, PatternKind::Weekday(Weekday::Mon | Weekday::Fri)));
    if !single_day_named && breaks.monday_friday_days > 0 {
        let family = Family { settings, questions: 1 };
        let share = f64::from(breaks.monday_friday_days) / f64::from(total_days.max(1));
        let p = day_test(breaks.monday_friday_absent, breaks.monday_friday_days);
        if let Some(mut pat) = family.judge(PatternKind::AroundWeekend, breaks.monday_friday_absent, n, share, p) {
            pat.sentence = format!("{} av {n} fraværsdager er mandager eller fredager", pat.observed);
            pat.detail = format!("de er {} av skoledagene", pct(share));
            patterns.push(pat);
        }
    }
    let family = Family { settings, questions: 2 };
    for (kind, marked, absent_on, what) in [
        (
            PatternKind::AfterBreak,
            breaks.after_break_days,
            breaks.after_break_absent,
            "første skoledag etter ferie eller fridager",
        ),
        (
            PatternKind::BeforeBreak,
            breaks.before_break_days,
            breaks.before_break_absent,
            "siste skoledag før ferie eller fridager",
        ),
    ] {
        if marked == 0 {
            continue;
        }
        let share = f64::from(marked) / f64::from(total_days.max(1));
        if let Some(mut pat) = family.judge(kind, absent_on, n, share, day_test(absent_on, marked)) {
            pat.sentence = format!("{absent_on} av {n} fraværsdager er {what}");
            pat.detail = format!("slike dager er {} av skoledagene", pct(share));
            patterns.push(pat);
        }
    }

    // Trend: the second half of the window's school days against the first.
    if total_days >= 2 {
        let first_half = total_days / 2;
        let second_half = total_days - first_half;
        let k2 = school_days[first_half as usize..].iter().filter(|d| absent(d)).count() as u32;
        let k1 = n - k2;
        let split = school_days[first_half as usize];
        for (kind, observed, marked, sentence) in [
            (
                PatternKind::Rising,
                k2,
                second_half,
                format!(
                    "Fraværet øker: {k2} av {n} fraværsdager er i siste halvdel av perioden (fra {})",
                    split.format("%d.%m.")
                ),
            ),
            (
                PatternKind::Falling,
                k1,
                first_half,
                format!(
                    "Fraværet avtar: {k1} av {n} fraværsdager er i første halvdel av perioden (før {})",
                    split.format("%d.%m.")
                ),
            ),
        ] {
            let share = f64::from(marked) / f64::from(total_days);
            if let Some(mut pat) = family.judge(kind, observed, n, share, day_test(observed, marked)) {
                pat.sentence = sentence;
                pat.detail = format!("den halvdelen er {} av skoledagene", pct(share));
                patterns.push(pat);
            }
        }
    }

    // Subjects.
    let mut gaps = Vec::new();
    let total_units = units.len() as u32;
    let with_subject: Vec<&Unit> = units.iter().filter(|u| u.subject.is_some()).collect();
    let mut subjects: BTreeMap<String, SubjectStat> = BTreeMap::new();
    for u in &with_subject {
        let subject = u.subject.clone().unwrap_or_default();
        let stat = subjects.entry(subject.clone()).or_insert_with(|| SubjectStat {
            timetable_share: timetable.and_then(|t| t.share(&subject)),
            subject,
            lessons: 0,
            by_weekday: [0; 5],
        });
        stat.lessons += 1;
        if let Some(slot) = stat
            .by_weekday
            .get_mut(u.date.weekday().num_days_from_monday() as usize)
        {
            *slot += 1;
        }
    }
    if total_units > 0 {
        if with_subject.is_empty() {
            gaps.push(DataGap::NoSubject);
        } else if (with_subject.len() as u32) < total_units {
            gaps.push(DataGap::SomeSubjectsMissing {
                missing: total_units - with_subject.len() as u32,
                total: total_units,
            });
        }
    }
    match timetable {
        Some(t) if !with_subject.is_empty() && !t.weekly_lessons.is_empty() => {
            // Only lessons in subjects the timetable knows can be judged.
            let judged: u32 = subjects
                .values()
                .filter(|s| s.timetable_share.is_some())
                .map(|s| s.lessons)
                .sum();
            let family = Family {
                settings,
                questions: t.weekly_lessons.len(),
            };
            for s in subjects.values() {
                let Some(share) = s.timetable_share else { continue };
                let p = binomial_sf(s.lessons, judged, share);
                if let Some(mut pat) =
                    family.judge(PatternKind::Subject(s.subject.clone()), s.lessons, judged, share, p)
                {
                    pat.sentence = format!("{} av {judged} fraværstimer er i {}", s.lessons, s.subject);
                    pat.detail = format!("{} har {} av timene", s.subject, pct(share));
                    patterns.push(pat);
                }
            }
        }
        _ if !with_subject.is_empty() => gaps.push(DataGap::NoTimetable),
        _ => {}
    }
    let mut by_subject: Vec<SubjectStat> = subjects.into_values().collect();
    by_subject.sort_by(|a, b| b.lessons.cmp(&a.lessons).then(a.subject.cmp(&b.subject)));

    // Lessons of the day.
    let with_period: Vec<(&Unit, u32)> = units.iter().filter_map(|u| u.period.map(|p| (u, p))).collect();
    if total_units > 0 {
        if with_period.is_empty() {
            gaps.push(DataGap::NoPeriod);
        } else if (with_period.len() as u32) < total_units {
            gaps.push(DataGap::SomePeriodsMissing {
                missing: total_units - with_period.len() as u32,
                total: total_units,
            });
        }
    }
    let mut by_period: BTreeMap<u8, u32> = BTreeMap::new();
    let (mut first_lesson, mut last_lesson) = (0u32, 0u32);
    let mut chances = Vec::with_capacity(with_period.len());
    for (u, p) in &with_period {
        *by_period.entry(u8::try_from(*p).unwrap_or(u8::MAX)).or_default() += 1;
        let lessons = lessons_on(u.date);
        first_lesson += u32::from(*p == 1);
        last_lesson += u32::from(*p == lessons);
        chances.push(1.0 / f64::from(lessons));
    }
    if !with_period.is_empty() {
        let total = with_period.len() as u32;
        let share = chances.iter().sum::<f64>() / f64::from(total);
        for (kind, observed, what) in [
            (PatternKind::FirstLesson, first_lesson, "dagens første time"),
            (PatternKind::LastLesson, last_lesson, "dagens siste time"),
        ] {
            let p = poisson_binomial_sf(observed as usize, &chances);
            if let Some(mut pat) = family.judge(kind, observed, total, share, p) {
                pat.sentence = format!("{observed} av {total} fraværstimer er {what}");
                pat.detail = format!("tilfeldig fordelt ville det vært om lag {}", pct(share));
                patterns.push(pat);
            }
        }
    }

    if outside > 0 {
        gaps.push(DataGap::OutsideSchoolDays { events: outside });
    }
    if school_days.is_empty() {
        gaps.push(DataGap::NoSchoolDays);
    }
    patterns.sort_by(|a, b| a.p_value.total_cmp(&b.p_value));

    Insight {
        from: window.from,
        to: window.to,
        school_days: total_days,
        absence_days: n,
        whole_days: days.values().filter(|d| d.whole).count() as u32,
        lessons: total_units,
        lates: days.values().map(|d| d.lates).sum(),
        left: days.values().filter(|d| d.left).count() as u32,
        not_valid_days: days.values().filter(|d| d.absent() && d.not_valid).count() as u32,
        by_weekday,
        by_subject,
        by_period,
        first_lesson,
        last_lesson,
        breaks,
        weeks: weeks(&school_days, &days, &lessons_on),
        patterns,
        gaps,
    }
}

fn monday_of(date: NaiveDate) -> NaiveDate {
    date - Duration::days(i64::from(date.weekday().num_days_from_monday()))
}

fn weeks(
    school_days: &[NaiveDate],
    days: &BTreeMap<NaiveDate, Day>,
    lessons_on: &dyn Fn(NaiveDate) -> u32,
) -> Vec<WeekStat> {
    let mut out: BTreeMap<NaiveDate, (WeekStat, u32, u32)> = BTreeMap::new();
    for d in school_days {
        let monday = monday_of(*d);
        let (w, scheduled, missed) = out.entry(monday).or_insert_with(|| {
            (
                WeekStat {
                    monday,
                    iso_week: monday.iso_week().week(),
                    school_days: 0,
                    absence_days: 0,
                    whole_days: 0,
                    lessons: 0,
                    lates: 0,
                    attendance_pct: 100.0,
                },
                0,
                0,
            )
        });
        let l = lessons_on(*d);
        w.school_days += 1;
        *scheduled += l;
        if let Some(day) = days.get(d) {
            w.absence_days += u32::from(day.absent());
            w.whole_days += u32::from(day.whole);
            w.lessons += day.lessons;
            w.lates += day.lates;
            *missed += if day.whole { l } else { day.lessons.min(l) };
        }
    }
    out.into_values()
        .map(|(mut w, scheduled, missed)| {
            w.attendance_pct = if scheduled == 0 {
                100.0
            } else {
                100.0 * (1.0 - f64::from(missed) / f64::from(scheduled))
            };
            w
        })
        .collect()
}

/// One week of a whole school, for leadership's review.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SchoolWeek {
    /// The week's Monday.
    pub monday: NaiveDate,
    /// ISO week number.
    pub iso_week: u32,
    /// School days in the week.
    pub school_days: u32,
    /// Lessons missed with valid absence, in percent of all pupils' lessons.
    pub valid_pct: f64,
    /// Lessons missed with invalid or not yet classified absence, in percent.
    pub not_valid_pct: f64,
    /// Pupils with any absence that week.
    pub pupils_absent: u32,
}

/// A school's absence per week: `absence` holds each pupil's events (pupils
/// without absence may be left out), `pupils` counts every pupil enrolled.
pub fn school_weeks(
    absence: &[Vec<AbsenceEvent>],
    pupils: u32,
    window: Window,
    calendar: &dyn SchoolCalendar,
    settings: &PatternSettings,
) -> Vec<SchoolWeek> {
    let lessons_on = |d: NaiveDate| calendar.lessons_on(d).unwrap_or(settings.lessons_per_day).max(1);
    let school_days: Vec<NaiveDate> = window.days().filter(|d| calendar.is_school_day(*d)).collect();
    // Per week: scheduled lessons per pupil, valid and not-valid missed lessons, pupils absent.
    let mut weeks: BTreeMap<NaiveDate, (u32, u32, f64, f64, u32)> = BTreeMap::new();
    for d in &school_days {
        let w = weeks.entry(monday_of(*d)).or_default();
        w.0 += 1;
        w.1 += lessons_on(*d);
    }
    for events in absence {
        // Per day: lessons missed, valid part; a whole day caps at the day.
        let mut per_day: BTreeMap<NaiveDate, (u32, u32)> = BTreeMap::new();
        for e in events {
            if !window.contains(e.date) || !calendar.is_school_day(e.date) {
                continue;
            }
            let l = lessons_on(e.date);
            let missed = match e.kind {
                Kind::Day => l,
                Kind::Lesson => e.lessons,
                Kind::Late | Kind::Left => 0,
            };
            let slot = per_day.entry(e.date).or_default();
            slot.0 += missed;
            if e.validity == Validity::Valid {
                slot.1 += missed;
            }
        }
        let mut absent_weeks = BTreeSet::new();
        for (date, (missed, valid)) in per_day {
            let l = lessons_on(date);
            let missed = missed.min(l);
            let valid = valid.min(missed);
            if let Some(w) = weeks.get_mut(&monday_of(date)) {
                w.2 += f64::from(valid);
                w.3 += f64::from(missed - valid);
                if missed > 0 {
                    absent_weeks.insert(monday_of(date));
                }
            }
        }
        for m in absent_weeks {
            if let Some(w) = weeks.get_mut(&m) {
                w.4 += 1;
            }
        }
    }
    weeks
        .into_iter()
        .map(|(monday, (days, scheduled, valid, not_valid, absent))| {
            let all = f64::from(scheduled) * f64::from(pupils.max(1));
            SchoolWeek {
                monday,
                iso_week: monday.iso_week().week(),
                school_days: days,
                valid_pct: 100.0 * valid / all,
                not_valid_pct: 100.0 * not_valid / all,
                pupils_absent: absent,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
