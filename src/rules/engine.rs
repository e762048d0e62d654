//! Evaluating rules over records.

use super::config::{Comparison, Rule, RuleSet, Unit, WindowSpec};
use crate::domain::dates::{half_year_start, is_weekday, month_start, sub_months};
use crate::domain::{AbsenceRecord, Finding, FindingWindow, Kind, Validity};
use chrono::{Datelike, Days, NaiveDate};
use rustc_hash::FxHashMap;
use std::collections::hash_map::Entry;

/// Tolerance for comparing fractional days with thresholds.
const EPSILON: f64 = 1e-9;

/// The first date inside a window ending at `as_of`.
pub fn window_start(set: &RuleSet, window: WindowSpec, as_of: NaiveDate) -> NaiveDate {
    let day_after = |d: NaiveDate| d.succ_opt().unwrap_or(d);
    match window {
        WindowSpec::RollingMonths(n) => day_after(sub_months(as_of, n)),
        WindowSpec::RollingWeeks(n) => day_after(as_of - Days::new(7 * u64::from(n))),
        WindowSpec::RollingDays(n) => day_after(as_of - Days::new(u64::from(n))),
        WindowSpec::CalendarMonth => month_start(as_of),
        WindowSpec::HalfYear => half_year_start(as_of, set.autumn_start, set.spring_start),
    }
}

/// A rule set prepared for one as-of date: windows and scheduled lessons are
/// computed once and shared by every pupil.
#[derive(Debug, Clone)]
pub struct Evaluator<'a> {
    set: &'a RuleSet,
    as_of: NaiveDate,
    prepared: Vec<Prepared>,
    earliest: NaiveDate,
}

#[derive(Debug, Clone)]
struct Prepared {
    from: NaiveDate,
    /// Lessons scheduled in the window, for percentage rules.
    scheduled: Option<u32>,
    kinds: [bool; 4],
    validity: [bool; 3],
}

fn kind_index(k: Kind) -> usize {
    k as usize
}

fn validity_index(v: Validity) -> usize {
    v as usize
}

impl<'a> Evaluator<'a> {
    /// Prepares `set` for `as_of`.
    pub fn new(set: &'a RuleSet, as_of: NaiveDate) -> Evaluator<'a> {
        let prepared: Vec<Prepared> = set
            .rules
            .iter()
            .map(|rule| {
                let from = window_start(set, rule.window, as_of);
                let scheduled = (rule.unit == Unit::Percent).then(|| scheduled_lessons(set, from, as_of));
                let mut kinds = [false; 4];
                rule.kinds.iter().for_each(|k| kinds[kind_index(*k)] = true);
                let mut validity = [false; 3];
                rule.validity.iter().for_each(|v| validity[validity_index(*v)] = true);
                Prepared {
                    from,
                    scheduled,
                    kinds,
                    validity,
                }
            })
            .collect();
        let earliest = prepared.iter().map(|p| p.from).min().unwrap_or(as_of);
        Evaluator {
            set,
            as_of,
            prepared,
            earliest,
        }
    }

    /// The earliest date any rule looks at; older records can be skipped.
    pub fn earliest(&self) -> NaiveDate {
        self.earliest
    }

    /// The as-of date.
    pub fn as_of(&self) -> NaiveDate {
        self.as_of
    }

    /// Evaluates one pupil's live records (already version-resolved, no
    /// tombstones). The order of `records` does not matter.
    pub fn pupil(&self, pupil: &str, records: &[&AbsenceRecord]) -> Vec<Finding> {
        let mut relevant: Vec<&AbsenceRecord> = records
            .iter()
            .copied()
            .filter(|r| !r.deleted && r.date >= self.earliest && r.date <= self.as_of)
            .collect();
        if relevant.is_empty() {
            return Vec::new();
        }
        relevant.sort_by(|a, b| a.date.cmp(&b.date).then_with(|| a.id.cmp(&b.id)));
        let mut findings = Vec::new();
        for (rule, prep) in self.set.rules.iter().zip(&self.prepared) {
            if let Some(f) = self.rule(pupil, rule, prep, &relevant) {
                findings.push(f);
            }
        }
        findings
    }

    fn rule(&self, pupil: &str, rule: &Rule, prep: &Prepared, sorted: &[&AbsenceRecord]) -> Option<Finding> {
        let start = sorted.partition_point(|r| r.date < prep.from);
        let evidence: Vec<&AbsenceRecord> = sorted[start..]
            .iter()
            .copied()
            .filter(|r| prep.kinds[kind_index(r.kind)] && prep.validity[validity_index(r.validity)])
            .collect();
        if evidence.is_empty() {
            return None;
        }
        let lpd = self.set.lessons_per_day;
        let measured = match rule.unit {
            Unit::Occurrences => evidence.len() as f64,
            Unit::Lessons => evidence.iter().map(|r| f64::from(r.lesson_count(lpd))).sum(),
            Unit::Days => {
                // Evidence is sorted by date: sum per date, each date capped at 1.
                let mut total = 0.0;
                let mut i = 0;
                while i < evidence.len() {
                    let date = evidence[i].date;
                    let mut day = 0.0;
                    while i < evidence.len() && evidence[i].date == date {
                        day += match evidence[i].kind {
                            Kind::Day => 1.0,
                            _ => f64::from(evidence[i].lessons) / f64::from(lpd),
                        };
                        i += 1;
                    }
                    total += day.min(1.0);
                }
                total
            }
            Unit::Percent => {
                let scheduled = prep.scheduled.unwrap_or(0);
                if scheduled == 0 {
                    return None;
                }
                let absent: f64 = evidence
                    .iter()
                    .map(|r| match r.kind {
                        Kind::Day => f64::from(self.lessons_on(r.date)),
                        _ => f64::from(r.lessons),
                    })
                    .sum();
                100.0 * absent / f64::from(scheduled)
            }
        };
        let holds = match rule.comparison {
            Comparison::AtLeast => measured + EPSILON >= rule.threshold,
            Comparison::MoreThan => measured > rule.threshold + EPSILON,
        };
        if !holds {
            return None;
        }
        let window = FindingWindow {
            from: prep.from,
            to: self.as_of,
        };
        let unclassified: Vec<String> = evidence
            .iter()
            .filter(|r| r.validity == Validity::Unclassified)
            .map(|r| r.id.clone())
            .collect();
        let school = evidence.last().map(|r| r.school.clone()).unwrap_or_default();
        let explanation = super::explain::sentence(rule, measured, window, evidence.len(), unclassified.len());
        Some(Finding {
            pupil: pupil.to_string(),
            school,
            criterion: rule.criterion.clone(),
            rule: rule.id.clone(),
            window,
            measured: (measured * 1000.0).round() / 1000.0,
            threshold: rule.threshold,
            unit: rule.unit.as_str().to_string(),
            evidence: evidence.iter().map(|r| r.id.clone()).collect(),
            unclassified,
            explanation,
        })
    }

    fn lessons_on(&self, date: NaiveDate) -> u32 {
        match &self.set.timetable {
            Some(t) => t
                .lessons_per_weekday
                .get(date.weekday().num_days_from_monday() as usize)
                .copied()
                .unwrap_or(0),
            None => self.set.lessons_per_day,
        }
    }
}

/// Lessons scheduled from `from` to `to` inclusive (weekdays outside holidays).
fn scheduled_lessons(set: &RuleSet, from: NaiveDate, to: NaiveDate) -> u32 {
    let Some(t) = &set.timetable else { return 0 };
    from.iter_days()
        .take_while(|d| *d <= to)
        .filter(|d| is_weekday(*d) && !t.holidays.iter().any(|(a, b)| a <= d && d <= b))
        .map(|d| t.lessons_per_weekday[d.weekday().num_days_from_monday() as usize])
        .sum()
}

/// Keeps, for every (source, id), only the record that wins by the version
/// rule, and drops tombstones. The result borrows from `records` and keeps
/// their input order.
pub fn resolve_versions(records: &[AbsenceRecord]) -> Vec<&AbsenceRecord> {
    // FxHash: the keys are ids from school systems, and this runs over
    // millions of them; SipHash's flooding resistance is not worth 2x here.
    let mut index: FxHashMap<(&str, &str), usize> = FxHashMap::default();
    index.reserve(records.len());
    let mut winners: Vec<&AbsenceRecord> = Vec::with_capacity(records.len());
    for r in records {
        match index.entry((r.source.as_str(), r.id.as_str())) {
            Entry::Occupied(e) => {
                let current = &mut winners[*e.get()];
                if r.supersedes(current) {
                    *current = r;
                }
            }
            Entry::Vacant(e) => {
                e.insert(winners.len());
                winners.push(r);
            }
        }
    }
    winners.retain(|r| !r.deleted);
    winners
}

/// Evaluates a whole set of records as of `as_of`: versions are resolved,
/// records grouped by pupil. Findings come sorted by pupil, then rule order.
pub fn evaluate(records: &[AbsenceRecord], set: &RuleSet, as_of: NaiveDate) -> Vec<Finding> {
    let evaluator = Evaluator::new(set, as_of);
    let earliest = evaluator.earliest();
    let mut by_pupil: FxHashMap<&str, Vec<&AbsenceRecord>> = FxHashMap::default();
    for r in resolve_versions(records) {
        // Records outside every window cannot matter.
        if r.date >= earliest && r.date <= as_of {
            by_pupil.entry(r.pupil.as_str()).or_default().push(r);
        }
    }
    let mut pupils: Vec<(&str, Vec<&AbsenceRecord>)> = by_pupil.into_iter().collect();
    pupils.sort_unstable_by(|a, b| a.0.cmp(b.0));
    pupils
        .iter()
        .flat_map(|(pupil, group)| evaluator.pupil(pupil, group))
        .collect()
}
