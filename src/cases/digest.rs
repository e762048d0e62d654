//! Phase 1 routines: the contact teacher's monthly review, leadership's
//! half-yearly review, and registration gaps. Pure: the caller brings the
//! roster, the records and the cases.
//!
//! Registration gaps. Sources send absence, not "the register was taken",
//! so a missing registration cannot be seen directly. The signal used here:
//! a class has no records at all on at least `min_run` consecutive days on
//! which the rest of its school has records (so school was in session and
//! the source delivered). One empty day is common for a healthy class; a
//! run of them while the school next door registers is worth a question.
//! It is a prompt to check, never a conclusion.

use super::config::CaseConfig;
use super::model::Case;
use super::numbers::{PeriodNumbers, period};
use crate::domain::AbsenceRecord;
use crate::domain::roster::{RosterClass, RosterPupil};
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One pupil in a contact teacher's monthly review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PupilLine {
    /// Initials.
    pub initials: String,
    /// Class name.
    pub class_name: String,
    /// The month's numbers.
    pub numbers: PeriodNumbers,
    /// The open case and its phase number, if any.
    pub case: Option<(String, u8)>,
    /// The absence patterns that stand out over the last
    /// [`PATTERN_WEEKS`] weeks, e.g. «6 av 9 fraværsdager er mandager».
    #[serde(default)]
    pub patterns: Vec<String>,
}

/// Weeks the patterns in a teacher's review look back over: one month holds
/// four or five of each weekday, too few to tell a habit from chance.
pub const PATTERN_WEEKS: i64 = 12;

/// The first day the patterns of a review ending `to` look at.
pub fn pattern_from(to: NaiveDate) -> NaiveDate {
    to - Duration::weeks(PATTERN_WEEKS) + Duration::days(1)
}

/// A contact teacher's monthly review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherDigest {
    /// Staff id.
    pub teacher: String,
    /// First day of the month.
    pub from: NaiveDate,
    /// Last day reviewed.
    pub to: NaiveDate,
    /// Pupils with any absence this month, or an open case; most absent first.
    pub pupils: Vec<PupilLine>,
    /// Pupils in the teacher's classes.
    pub pupils_total: u32,
    /// Weeks the patterns look back over.
    #[serde(default)]
    pub pattern_weeks: i64,
    /// What the pattern analysis lacked (subject, lesson number), once each.
    #[serde(default)]
    pub pattern_notes: Vec<String>,
    /// Whether the school system sent any record of the school for the
    /// period: without any, «no absence» would be a guess, and is not said.
    pub registered: bool,
}

/// The direction of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trend {
    /// Attendance rose by at least half a percentage point.
    Better,
    /// About the same.
    Same,
    /// Attendance fell by at least half a percentage point.
    Worse,
}

impl Trend {
    fn of(now: f64, before: f64) -> Trend {
        if now - before >= 0.5 {
            Trend::Better
        } else if before - now >= 0.5 {
            Trend::Worse
        } else {
            Trend::Same
        }
    }

    /// Norwegian.
    pub fn norwegian(self) -> &'static str {
        match self {
            Trend::Better => "bedre",
            Trend::Same => "omtrent likt",
            Trend::Worse => "dårligere",
        }
    }
}

/// Attendance of a group of pupils, now and in the period before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupLine {
    /// Grade, or 0 for the whole school.
    pub grade: u8,
    /// Pupils.
    pub pupils: u32,
    /// Attendance % this period.
    pub attendance_percent: f64,
    /// Attendance % the period before; `None` when the school system sent
    /// nothing of the school for that period (summer, or before it was
    /// connected), so there is nothing to compare with.
    pub previous_percent: Option<f64>,
    /// The trend.
    pub trend: Trend,
    /// Lates this period.
    pub lates: u32,
    /// Open cases.
    pub open_cases: u32,
}

/// Leadership's review of a whole school.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchoolDigest {
    /// School id.
    pub school: String,
    /// School name.
    pub school_name: String,
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// The whole school.
    pub total: GroupLine,
    /// Per grade.
    pub grades: Vec<GroupLine>,
    /// Open cases per phase 1–4.
    pub open_by_phase: [u32; 4],
    /// Of those, long-term.
    pub long_term: u32,
}

/// A class-day run without registrations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// Class id.
    pub class: String,
    /// Class name.
    pub class_name: String,
    /// First day of the run.
    pub from: NaiveDate,
    /// Last day of the run.
    pub to: NaiveDate,
    /// School days in the run.
    pub days: u32,
}

fn by_pupil(records: &[AbsenceRecord]) -> HashMap<&str, Vec<AbsenceRecord>> {
    let mut map: HashMap<&str, Vec<AbsenceRecord>> = HashMap::new();
    for r in records {
        map.entry(r.pupil.as_str()).or_default().push(r.clone());
    }
    map
}

#[allow(clippy::too_many_arguments)]
/// The monthly review for one contact teacher. `classes` are the teacher's
/// classes, `pupils` and `records` may hold more (they are filtered).
/// Records from [`pattern_from`]`(to)` on feed the patterns; the numbers
/// count `from..=to` only.
pub fn teacher_digest(
    teacher: &str,
    classes: &[RosterClass],
    pupils: &[RosterPupil],
    records: &[AbsenceRecord],
    cases: &[Case],
    from: NaiveDate,
    to: NaiveDate,
    config: &CaseConfig,
) -> TeacherDigest {
    let mine: BTreeMap<&str, &RosterClass> = classes
        .iter()
        .filter(|c| c.contact_teachers.iter().any(|t| t == teacher))
        .map(|c| (c.id.as_str(), c))
        .collect();
    let registered = records.iter().any(|r| r.date >= from && r.date <= to);
    let records = by_pupil(records);
    let mut lines = Vec::new();
    let mut total = 0;
    let mut notes: Vec<String> = Vec::new();
    let window = crate::insight::Window::new(pattern_from(to), to);
    for p in pupils {
        let Some(class) = p.class.as_deref().and_then(|c| mine.get(c)) else {
            continue;
        };
        total += 1;
        let numbers = period(
            records.get(p.id.as_str()).map(Vec::as_slice).unwrap_or(&[]),
            &config.calendar,
            from,
            to,
            config.lessons_per_day,
        );
        let case = cases
            .iter()
            .find(|c| c.is_open() && c.pupil.id == p.id)
            .map(|c| (c.number.clone(), c.phase.number()));
        if numbers.lessons + numbers.lates + numbers.left > 0 || case.is_some() {
            let insight = crate::insight::of_records(
                records.get(p.id.as_str()).map(Vec::as_slice).unwrap_or(&[]),
                window,
                &config.calendar,
                config.lessons_per_day,
            );
            for gap in &insight.gaps {
                // Per-pupil counts would say little here; what kind of data
                // is missing is said once.
                if matches!(
                    gap,
                    crate::insight::DataGap::NoSubject | crate::insight::DataGap::NoPeriod
                ) && !notes.contains(&gap.sentence())
                {
                    notes.push(gap.sentence());
                }
            }
            lines.push(PupilLine {
                initials: p.initials(),
                class_name: class.name.clone(),
                numbers,
                case,
                patterns: insight.patterns.iter().map(|x| x.sentence.clone()).collect(),
            });
        }
    }
    lines.sort_by(|a, b| {
        b.numbers
            .lessons
            .cmp(&a.numbers.lessons)
            .then(b.numbers.lates.cmp(&a.numbers.lates))
            .then(a.initials.cmp(&b.initials))
    });
    TeacherDigest {
        teacher: teacher.to_string(),
        from,
        to,
        pupils: lines,
        pupils_total: total,
        pattern_weeks: PATTERN_WEEKS,
        pattern_notes: notes,
        registered,
    }
}

fn group(
    grade: u8,
    pupils: &[&RosterPupil],
    records: &HashMap<&str, Vec<AbsenceRecord>>,
    cases: &[Case],
    from: NaiveDate,
    to: NaiveDate,
    config: &CaseConfig,
) -> GroupLine {
    // The period before holds as many school days, holidays left out.
    let calendar = &config.calendar;
    let days = calendar.school_days(from, to);
    let (pfrom, pto) = (calendar.school_days_back(from, days), from - Duration::days(1));
    let (mut now, mut before, mut lates) = (0.0, 0.0, 0);
    for p in pupils {
        let recs = records.get(p.id.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let n = period(recs, calendar, from, to, config.lessons_per_day);
        now += n.attendance_percent;
        lates += n.lates;
        before += period(recs, calendar, pfrom.min(pto), pto, config.lessons_per_day).attendance_percent;
    }
    let count = pupils.len().max(1) as f64;
    let round = |x: f64| (x * 10.0).round() / 10.0;
    let (attendance_percent, previous) = (round(now / count), round(before / count));
    // Records only tell absence: a period without a single record of the
    // whole school is a period without data, not one of full attendance.
    let known = records
        .values()
        .flatten()
        .any(|r| r.date >= pfrom.min(pto) && r.date <= pto);
    let previous_percent = known.then_some(previous);
    let ids: BTreeSet<&str> = pupils.iter().map(|p| p.id.as_str()).collect();
    GroupLine {
        grade,
        pupils: pupils.len() as u32,
        attendance_percent,
        previous_percent,
        trend: Trend::of(attendance_percent, previous_percent.unwrap_or(attendance_percent)),
        lates,
        open_cases: cases
            .iter()
            .filter(|c| c.is_open() && ids.contains(c.pupil.id.as_str()))
            .count() as u32,
    }
}

/// Leadership's review of a school for `from..=to`, compared with the same
/// number of days before.
#[allow(clippy::too_many_arguments)]
pub fn school_digest(
    school: &str,
    school_name: &str,
    pupils: &[RosterPupil],
    records: &[AbsenceRecord],
    cases: &[Case],
    from: NaiveDate,
    to: NaiveDate,
    config: &CaseConfig,
) -> SchoolDigest {
    let pupils: Vec<&RosterPupil> = pupils.iter().filter(|p| p.school == school).collect();
    let records = by_pupil(records);
    let cases: Vec<Case> = cases.iter().filter(|c| c.pupil.school == school).cloned().collect();
    let grades: BTreeSet<u8> = pupils.iter().map(|p| p.grade).collect();
    let mut open_by_phase = [0; 4];
    let mut long_term = 0;
    for c in cases.iter().filter(|c| c.is_open()) {
        open_by_phase[usize::from(c.phase.number()) - 1] += 1;
        long_term += u32::from(c.long_term);
    }
    SchoolDigest {
        school: school.to_string(),
        school_name: school_name.to_string(),
        from,
        to,
        total: group(0, &pupils, &records, &cases, from, to, config),
        grades: grades
            .into_iter()
            .map(|g| {
                let of: Vec<&RosterPupil> = pupils.iter().copied().filter(|p| p.grade == g).collect();
                group(g, &of, &records, &cases, from, to, config)
            })
            .collect(),
        open_by_phase,
        long_term,
    }
}

/// Runs of at least `min_run` school-in-session days on which a class had no
/// records (see the module documentation for why this signal).
pub fn registration_gaps(
    classes: &[RosterClass],
    pupils: &[RosterPupil],
    records: &[AbsenceRecord],
    from: NaiveDate,
    to: NaiveDate,
    min_run: u32,
) -> Vec<Gap> {
    let class_of: HashMap<&str, &str> = pupils
        .iter()
        .filter_map(|p| p.class.as_deref().map(|c| (p.id.as_str(), c)))
        .collect();
    let mut in_session: BTreeSet<NaiveDate> = BTreeSet::new();
    let mut registered: HashMap<&str, BTreeSet<NaiveDate>> = HashMap::new();
    for r in records.iter().filter(|r| !r.deleted && r.date >= from && r.date <= to) {
        in_session.insert(r.date);
        if let Some(c) = class_of.get(r.pupil.as_str()) {
            registered.entry(*c).or_default().insert(r.date);
        }
    }
    let mut gaps = Vec::new();
    let empty = BTreeSet::new();
    for class in classes {
        let has = registered.get(class.id.as_str()).unwrap_or(&empty);
        let mut run: Vec<NaiveDate> = Vec::new();
        let mut flush = |run: &mut Vec<NaiveDate>| {
            if run.len() as u32 >= min_run.max(1) {
                gaps.push(Gap {
                    class: class.id.clone(),
                    class_name: class.name.clone(),
                    from: run[0],
                    to: run[run.len() - 1],
                    days: run.len() as u32,
                });
            }
            run.clear();
        };
        for d in &in_session {
            if has.contains(d) {
                flush(&mut run);
            } else {
                run.push(*d);
            }
        }
        flush(&mut run);
    }
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Kind, Validity};

    /// Bærum's settings with weekdays as school days, as the numbers below assume.
    fn weekdays() -> CaseConfig {
        let mut c = CaseConfig::baerum();
        c.calendar = Default::default();
        c
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn rec(pupil: &str, date: &str, kind: Kind) -> AbsenceRecord {
        AbsenceRecord {
            source: "s".into(),
            id: format!("{pupil}-{date}-{kind:?}"),
            version: 1,
            pupil: pupil.into(),
            school: "k".into(),
            date: d(date),
            kind,
            lessons: 1,
            minutes: None,
            validity: Validity::Invalid,
            reason: None,
            deleted: false,
            subject: None,
            period: None,
            extensions: Default::default(),
        }
    }

    fn class(id: &str, grade: u8, teacher: &str) -> RosterClass {
        RosterClass {
            id: id.into(),
            school: "k".into(),
            name: id.to_uppercase(),
            grade,
            contact_teachers: vec![teacher.into()],
        }
    }

    fn pupil(id: &str, class: &str, grade: u8) -> RosterPupil {
        RosterPupil {
            id: id.into(),
            school: "k".into(),
            class: Some(class.into()),
            grade,
            given_name: "Ola".into(),
            family_name: id.to_uppercase(),
        }
    }

    #[test]
    fn gaps_need_a_run_while_the_school_registers() {
        let classes = [class("5a", 5, "t1"), class("5b", 5, "t2")];
        let pupils = [pupil("a", "5a", 5), pupil("b", "5b", 5)];
        // 5A registers every day 2.–6.3.; 5B only on the 2nd and the 6th.
        let mut records: Vec<_> = ["02", "03", "04", "05", "06"]
            .iter()
            .map(|day| rec("a", &format!("2026-03-{day}"), Kind::Late))
            .collect();
        records.push(rec("b", "2026-03-02", Kind::Late));
        records.push(rec("b", "2026-03-06", Kind::Late));
        let gaps = registration_gaps(&classes, &pupils, &records, d("2026-03-01"), d("2026-03-31"), 3);
        assert_eq!(gaps.len(), 1);
        assert_eq!(
            (gaps[0].class.as_str(), gaps[0].from, gaps[0].to, gaps[0].days),
            ("5b", d("2026-03-03"), d("2026-03-05"), 3)
        );
        // A shorter run is not named.
        assert!(registration_gaps(&classes, &pupils, &records, d("2026-03-01"), d("2026-03-31"), 4).is_empty());
    }

    #[test]
    fn teacher_and_school_digests() {
        let classes = [class("5a", 5, "t1"), class("6a", 6, "t2")];
        let pupils = [pupil("a", "5a", 5), pupil("b", "5a", 5), pupil("c", "6a", 6)];
        let records = [
            rec("a", "2026-03-03", Kind::Day),
            rec("a", "2026-03-04", Kind::Late),
            rec("c", "2026-03-04", Kind::Day),
            rec("c", "2026-02-10", Kind::Day),
            rec("c", "2026-02-11", Kind::Day),
        ];
        let t = teacher_digest(
            "t1",
            &classes,
            &pupils,
            &records,
            &[],
            d("2026-03-01"),
            d("2026-03-31"),
            &weekdays(),
        );
        assert_eq!(t.pupils_total, 2);
        assert_eq!(t.pupils.len(), 1, "only pupils with absence or a case");
        assert_eq!(t.pupils[0].numbers.days, 1);
        assert_eq!(t.pupils[0].numbers.lates, 1);
        let s = school_digest(
            "k",
            "K",
            &pupils,
            &records,
            &[],
            d("2026-03-01"),
            d("2026-03-31"),
            &weekdays(),
        );
        assert_eq!(s.total.pupils, 3);
        assert_eq!(s.grades.len(), 2);
        let six = &s.grades[1];
        // 22 school days in March; one day absent: 95,5 %; February's window had two.
        assert_eq!(six.attendance_percent, 95.5);
        assert_eq!(six.trend, Trend::Better);
    }

    /// Issue 15: the digests went out before the data arrived and said
    /// «Ingen av elevene dine har registrert fravær» and «før: 100 %».
    /// A period without any record of the school is a period without data.
    #[test]
    fn a_period_without_data_is_not_full_attendance() {
        let classes = [class("5a", 5, "t1")];
        let pupils = [pupil("a", "5a", 5), pupil("b", "5a", 5)];
        let march = [rec("a", "2026-03-03", Kind::Day)];
        let (from, to) = (d("2026-03-01"), d("2026-03-31"));
        let s = school_digest("k", "K", &pupils, &march, &[], from, to, &weekdays());
        assert_eq!(s.total.previous_percent, None, "nothing was sent for February");
        assert_eq!(s.grades[0].previous_percent, None);
        let with_feb = [march[0].clone(), rec("b", "2026-02-10", Kind::Late)];
        let s = school_digest("k", "K", &pupils, &with_feb, &[], from, to, &weekdays());
        assert_eq!(s.total.previous_percent, Some(100.0), "a late is attendance");
        let t = teacher_digest("t1", &classes, &pupils, &[], &[], from, to, &weekdays());
        assert!(!t.registered && t.pupils.is_empty());
        let t = teacher_digest("t1", &classes, &pupils, &with_feb[1..], &[], from, to, &weekdays());
        assert!(!t.registered, "February's record says nothing of March");
        let t = teacher_digest("t1", &classes, &pupils, &march, &[], from, to, &weekdays());
        assert!(t.registered && t.pupils.len() == 1);
    }
}
