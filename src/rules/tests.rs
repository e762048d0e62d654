//! Unit tests per rule, window-edge property tests and explanation snapshots.

use super::*;
use crate::domain::dates::sub_months;
use crate::domain::{AbsenceRecord, Finding, Kind, Validity};
use chrono::{DateTime, NaiveDate, Utc};
use proptest::prelude::*;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn rec(id: &str, date: &str, kind: Kind, validity: Validity) -> AbsenceRecord {
    rec_on(id, d(date), kind, validity)
}

fn rec_on(id: &str, date: NaiveDate, kind: Kind, validity: Validity) -> AbsenceRecord {
    AbsenceRecord {
        source: "test".into(),
        id: id.into(),
        version: 1,
        pupil: "p1".into(),
        school: "s1".into(),
        date,
        kind,
        lessons: 1,
        minutes: None,
        validity,
        reason: None,
        deleted: false,
        subject: None,
        period: None,
        extensions: Default::default(),
    }
}

fn lessons(id: &str, date: &str, n: u32, validity: Validity) -> AbsenceRecord {
    AbsenceRecord {
        lessons: n,
        ..rec(id, date, Kind::Lesson, validity)
    }
}

fn baerum() -> RuleSet {
    RuleSet::preset("baerum").unwrap()
}

fn oslo() -> RuleSet {
    RuleSet::preset("oslo").unwrap()
}

fn criteria(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.criterion.as_str()).collect()
}

fn only<'a>(findings: &'a [Finding], criterion: &str) -> Option<&'a Finding> {
    findings.iter().find(|f| f.criterion == criterion)
}

use Kind::*;
use Validity::*;

#[test]
fn invalid_absence_one_unclassified_lesson_is_enough() {
    let f = evaluate(
        &[lessons("a", "2026-03-10", 1, Unclassified)],
        &baerum(),
        d("2026-03-31"),
    );
    let f = only(&f, "invalid-absence").expect("finding");
    assert_eq!(f.evidence, ["a"]);
    assert_eq!(f.unclassified, ["a"]);
    assert_eq!(f.measured, 1.0);
    assert!(f.is_tentative());
}

#[test]
fn invalid_absence_ignores_valid_and_counts_days_as_lessons() {
    let set = baerum();
    assert!(evaluate(&[lessons("a", "2026-03-10", 3, Valid)], &set, d("2026-03-31")).is_empty());
    let f = evaluate(
        &[
            rec("a", "2026-03-10", Day, Invalid),
            lessons("b", "2026-03-11", 2, Invalid),
        ],
        &set,
        d("2026-03-31"),
    );
    let f = only(&f, "invalid-absence").unwrap();
    assert_eq!(f.measured, 8.0);
    assert!(f.unclassified.is_empty());
}

#[test]
fn invalid_absence_window_is_three_months_clamped() {
    let set = baerum();
    let as_of = d("2026-05-31");
    // 2026-05-31 − 3 months = 2026-02-28, which is outside; 03-01 is inside.
    assert!(evaluate(&[rec("a", "2026-02-28", Day, Invalid)], &set, as_of).is_empty());
    let f = evaluate(&[rec("a", "2026-03-01", Day, Invalid)], &set, as_of);
    assert_eq!(f[0].window.from, d("2026-03-01"));
    assert_eq!(f[0].window.to, as_of);
    // Records after as_of are ignored.
    assert!(evaluate(&[rec("a", "2026-06-01", Day, Invalid)], &set, as_of).is_empty());
}

#[test]
fn high_valid_absence_needs_five_days() {
    let set = baerum();
    let mut rs: Vec<_> = (1..=4)
        .map(|i| rec(&format!("d{i}"), &format!("2026-03-0{i}"), Day, Valid))
        .collect();
    assert!(evaluate(&rs, &set, d("2026-03-31")).is_empty());
    // Five lessons are 5/6 of a day: not yet.
    rs.push(lessons("l1", "2026-03-09", 5, Valid));
    assert!(only(&evaluate(&rs, &set, d("2026-03-31")), "high-valid-absence").is_none());
    // Three more lessons on another day make it 4 + 5/6 + 3/6 ≥ 5.
    rs.push(lessons("l2", "2026-03-10", 3, Valid));
    let f = evaluate(&rs, &set, d("2026-03-31"));
    let f = only(&f, "high-valid-absence").expect("finding");
    assert_eq!(f.evidence.len(), 6);
    assert!((f.measured - 5.333).abs() < 0.001, "{}", f.measured);
}

#[test]
fn high_valid_absence_counts_a_date_at_most_once() {
    let set = baerum();
    let mut rs: Vec<_> = (1..=4)
        .map(|i| rec(&format!("d{i}"), &format!("2026-03-0{i}"), Day, Valid))
        .collect();
    // A day record and lessons on the same date are still one day.
    rs.push(rec("x", "2026-03-02", Day, Valid));
    rs.push(lessons("y", "2026-03-03", 6, Valid));
    assert!(only(&evaluate(&rs, &set, d("2026-03-31")), "high-valid-absence").is_none());
    rs.push(lessons("z", "2026-03-05", 6, Valid));
    assert!(only(&evaluate(&rs, &set, d("2026-03-31")), "high-valid-absence").is_some());
}

#[test]
fn repeated_lateness_any_validity_within_one_month() {
    let set = baerum();
    let rs = [
        rec("a", "2026-03-02", Late, Valid),
        rec("b", "2026-03-15", Late, Invalid),
        rec("c", "2026-03-31", Late, Unclassified),
    ];
    let f = evaluate(&rs, &set, d("2026-03-31"));
    assert_eq!(criteria(&f), ["repeated-lateness"]);
    assert_eq!(f[0].evidence, ["a", "b", "c"]);
    assert_eq!(f[0].unclassified, ["c"]);
    // 2026-04-02 − 1 month = 2026-03-02: outside, so only two remain.
    assert!(evaluate(&rs, &set, d("2026-04-02")).is_empty());
}

#[test]
fn left_school_needs_a_record_that_is_not_valid() {
    let set = baerum();
    assert!(evaluate(&[rec("a", "2026-03-02", Left, Valid)], &set, d("2026-03-31")).is_empty());
    let f = evaluate(&[rec("a", "2026-03-02", Left, Invalid)], &set, d("2026-03-31"));
    assert_eq!(criteria(&f), ["left-school"]);
}

#[test]
fn versions_and_tombstones_decide() {
    let set = baerum();
    let v1 = rec("a", "2026-03-02", Day, Invalid);
    let v2 = AbsenceRecord {
        version: 2,
        validity: Valid,
        ..v1.clone()
    };
    // The newer version says valid: no invalid absence, in either order.
    assert!(evaluate(&[v1.clone(), v2.clone()], &set, d("2026-03-31")).is_empty());
    assert!(evaluate(&[v2, v1.clone()], &set, d("2026-03-31")).is_empty());
    let gone = AbsenceRecord {
        deleted: true,
        ..v1.clone()
    };
    assert!(evaluate(&[v1, gone], &set, d("2026-03-31")).is_empty());
}

#[test]
fn pupils_are_evaluated_separately() {
    let set = baerum();
    let a = rec("a", "2026-03-02", Left, Invalid);
    let b = AbsenceRecord {
        pupil: "p2".into(),
        id: "b".into(),
        ..a.clone()
    };
    let f = evaluate(&[a, b], &set, d("2026-03-31"));
    let pupils: Vec<_> = f.iter().map(|f| f.pupil.as_str()).collect();
    assert_eq!(pupils, ["p1", "p2"]);
}

#[test]
fn oslo_counts_more_than_three_days_in_the_calendar_month() {
    let set = oslo();
    let mut rs: Vec<_> = (2..=4)
        .map(|i| rec(&format!("d{i}"), &format!("2026-03-0{i}"), Day, Invalid))
        .collect();
    assert!(evaluate(&rs, &set, d("2026-03-31")).is_empty());
    rs.push(rec("d5", "2026-03-05", Day, Unclassified));
    let f = evaluate(&rs, &set, d("2026-03-31"));
    assert_eq!(f.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>(), ["invalid-days"]);
    assert_eq!(f[0].criterion, "invalid-absence");
    assert_eq!(f[0].window.from, d("2026-03-01"));
    // A new month starts from zero.
    assert!(evaluate(&rs, &set, d("2026-04-01")).is_empty());
}

#[test]
fn oslo_lessons_and_lateness() {
    let set = oslo();
    let rs = [lessons("a", "2026-03-02", 5, Invalid)];
    assert!(evaluate(&rs, &set, d("2026-03-31")).is_empty());
    let rs = [
        lessons("a", "2026-03-02", 5, Invalid),
        lessons("b", "2026-03-03", 1, Unclassified),
    ];
    assert_eq!(evaluate(&rs, &set, d("2026-03-31"))[0].rule, "invalid-lessons");
    let lates: Vec<_> = (2..=4)
        .map(|i| rec(&format!("l{i}"), &format!("2026-03-0{i}"), Late, Valid))
        .collect();
    assert!(evaluate(&lates, &set, d("2026-03-31")).is_empty());
    let mut lates = lates;
    lates.push(rec("l5", "2026-03-05", Late, Valid));
    assert_eq!(evaluate(&lates, &set, d("2026-03-31"))[0].rule, "repeated-lateness");
}

const PERCENT: &str = r#"
name = "percent"
[timetable]
lessons_per_weekday = [6, 6, 6, 6, 4]
holidays = [{ from = "2026-03-09", to = "2026-03-13" }]
[[rules]]
id = "ten-percent"
criterion = "high-absence"
kinds = ["day", "lesson"]
validity = ["valid", "invalid", "unclassified"]
unit = "percent"
comparison = ">"
threshold = 10
window = { kind = "rolling", weeks = 2 }
"#;

#[test]
fn percent_of_scheduled_lessons() {
    let set = RuleSet::from_toml(PERCENT).unwrap();
    // Window 2026-03-06 (Fri) .. 2026-03-19 (Thu): Fri 4 + holiday week 0 + Mon–Thu 24 = 28 lessons.
    let as_of = d("2026-03-19");
    // 2 lessons of 28 = 7.1 %: not more than 10 %.
    assert!(evaluate(&[lessons("a", "2026-03-16", 2, Valid)], &set, as_of).is_empty());
    // A Friday day counts as that Friday's 4 lessons: 6/28 = 21.4 %.
    let f = evaluate(
        &[lessons("a", "2026-03-16", 2, Valid), rec("b", "2026-03-06", Day, Valid)],
        &set,
        as_of,
    );
    assert_eq!(f.len(), 1);
    assert!((f[0].measured - 21.429).abs() < 0.01, "{}", f[0].measured);
}

#[test]
fn half_year_windows() {
    let toml = r#"
name = "half"
[[rules]]
id = "ten-days"
kinds = ["day"]
validity = ["valid"]
unit = "days"
comparison = ">="
threshold = 2
window = { kind = "half-year" }
"#;
    let set = RuleSet::from_toml(toml).unwrap();
    let rs = [rec("a", "2026-07-31", Day, Valid), rec("b", "2026-08-03", Day, Valid)];
    assert!(evaluate(&rs, &set, d("2026-08-10")).is_empty());
    let rs = [rec("a", "2026-08-01", Day, Valid), rec("b", "2026-12-31", Day, Valid)];
    assert_eq!(evaluate(&rs, &set, d("2026-12-31")).len(), 1);
    assert!(evaluate(&rs, &set, d("2027-01-04")).is_empty());
}

#[test]
fn explanations_snapshot() {
    let as_of = d("2026-05-31");
    let mut rs = vec![
        rec("a", "2026-03-02", Day, Invalid),
        lessons("b", "2026-04-14", 2, Unclassified),
        rec("c", "2026-05-20", Late, Valid),
        rec("d", "2026-05-21", Late, Unclassified),
        rec("e", "2026-05-27", Late, Invalid),
        rec("f", "2026-05-28", Left, Unclassified),
    ];
    rs.extend((1..=4).map(|i| rec(&format!("v{i}"), &format!("2026-04-0{i}"), Day, Valid)));
    rs.push(lessons("v5", "2026-04-07", 6, Valid));
    let text: Vec<String> = evaluate(&rs, &baerum(), as_of)
        .into_iter()
        .map(|f| format!("{}: {}", f.rule, f.explanation))
        .collect();
    insta::assert_snapshot!("baerum_explanations", text.join("\n"));

    let mut rs: Vec<_> = (4..=8)
        .map(|i| rec(&format!("d{i}"), &format!("2026-05-0{i}"), Day, Invalid))
        .collect();
    rs.push(lessons("l", "2026-05-11", 7, Invalid));
    rs.extend((1..=4).map(|i| rec(&format!("late{i}"), &format!("2026-05-1{i}"), Late, Valid)));
    let text: Vec<String> = evaluate(&rs, &oslo(), as_of)
        .into_iter()
        .map(|f| format!("{}: {}", f.rule, f.explanation))
        .collect();
    insta::assert_snapshot!("oslo_explanations", text.join("\n"));
}

/// Any date between 2000 and 2040, biased towards month ends and leap days.
fn any_date() -> impl Strategy<Value = NaiveDate> {
    prop_oneof![
        (2000i32..2040, 1u32..=12, 1u32..=31)
            .prop_filter_map("real date", |(y, m, d)| NaiveDate::from_ymd_opt(y, m, d)),
        (2000i32..2040, 1u32..=12, 0u32..3).prop_filter_map("month end", |(y, m, back)| {
            let first_next = if m == 12 {
                NaiveDate::from_ymd_opt(y + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(y, m + 1, 1)
            }?;
            first_next.checked_sub_days(chrono::Days::new(1 + u64::from(back)))
        }),
        (0i32..10).prop_map(|i| NaiveDate::from_ymd_opt(2000 + 4 * i, 2, 29).unwrap()),
    ]
}

proptest! {
    /// A record is evidence exactly when as_of − N months < date ≤ as_of.
    #[test]
    fn rolling_month_window_edges(as_of in any_date(), months in 1u32..13, offset in -40i64..40) {
        let toml = format!(r#"
name = "edge"
[[rules]]
id = "any-invalid"
kinds = ["day"]
validity = ["invalid"]
unit = "days"
comparison = ">="
threshold = 1
window = {{ kind = "rolling", months = {months} }}
"#);
        let set = RuleSet::from_toml(&toml).unwrap();
        let boundary = sub_months(as_of, months);
        let date = boundary + chrono::Duration::days(offset);
        let found = !evaluate(&[rec_on("a", date, Day, Invalid)], &set, as_of).is_empty();
        prop_assert_eq!(found, boundary < date && date <= as_of, "as_of {} date {}", as_of, date);
    }

    /// Records stamped with instants around the DST changes land on their
    /// Oslo school day, and the window decision follows that day.
    #[test]
    fn dst_instants_fall_on_oslo_days(year in 2020i32..2035, autumn in any::<bool>(), minutes in -600i64..600, days_back in 0u32..3) {
        // DST changes on the last Sunday of March and October at 01:00 UTC.
        let month = if autumn { 10 } else { 3 };
        let last = NaiveDate::from_ymd_opt(year, month, 31).unwrap();
        let sunday = last - chrono::Duration::days(i64::from(chrono::Datelike::weekday(&last).num_days_from_sunday()));
        let change = sunday.and_hms_opt(1, 0, 0).unwrap().and_utc();
        let instant: DateTime<Utc> = change + chrono::Duration::minutes(minutes);
        let date = crate::domain::dates::school_date_utc(instant);
        let as_of = sunday - chrono::Duration::days(i64::from(days_back));
        let set = baerum();
        let found = !evaluate(&[rec_on("a", date, Day, Invalid)], &set, as_of).is_empty();
        prop_assert_eq!(found, date <= as_of && date > sub_months(as_of, 3));
        // Oslo is ahead of UTC: local day is never before the UTC day.
        prop_assert!(date >= instant.date_naive());
    }

    /// Evaluation does not depend on record order.
    #[test]
    fn order_does_not_matter(seed in any::<u64>()) {
        use rand::{SeedableRng, seq::SliceRandom};
        let mut rs: Vec<_> = (0..30).map(|i| {
            let kind = [Day, Lesson, Late, Left][i % 4];
            let validity = [Valid, Invalid, Unclassified][i % 3];
            rec_on(&format!("r{i}"), d("2026-03-01") + chrono::Duration::days((i * 3) as i64 % 60), kind, validity)
        }).collect();
        let before = evaluate(&rs, &baerum(), d("2026-04-15"));
        rs.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        prop_assert_eq!(before, evaluate(&rs, &baerum(), d("2026-04-15")));
    }
}

/// The routine's words and every interpretation are in the preset as
/// comments (what `rules show` prints) and in docs/rules.md, the same.
#[test]
fn every_interpretation_is_documented() {
    let preset = super::config::preset_text("baerum").unwrap();
    let docs = include_str!("../../docs/rules.md");
    let set = RuleSet::preset("baerum").unwrap();
    // Each rule is preceded by at least one quote from the routine.
    let mut quotes = 0;
    let mut interpretations = 0;
    let mut block: Vec<&str> = Vec::new();
    for line in preset.lines() {
        if let Some(note) = line.strip_prefix("# ") {
            block.push(note);
            continue;
        }
        if line == "[[rules]]" {
            let q = block.iter().filter(|l| l.starts_with("Rutinen: «")).count();
            assert!(q > 0, "a rule without a quote from the routine after {block:?}");
            quotes += q;
        }
        if !line.is_empty() {
            block.clear();
        }
    }
    assert_eq!(
        quotes,
        set.rules.len() + 1,
        "four criteria and the definition of invalid absence"
    );
    for note in preset.lines().filter_map(|l| l.strip_prefix("# ")) {
        if note.starts_with("Rutinen: ") || note.starts_with("Tolkning: ") {
            assert!(docs.contains(note), "docs/rules.md lacks «{note}»");
            interpretations += usize::from(note.starts_with("Tolkning: "));
        }
    }
    assert!(interpretations >= 7, "{interpretations}");
    // The docs show each rule's TOML as shipped.
    for rule in &set.rules {
        assert!(docs.contains(&format!("id = \"{}\"", rule.id)), "{}", rule.id);
    }
    // And the workflow's role is declared, not inferred from a code.
    assert_eq!(
        set.criteria_with_role(super::CriterionRole::InvalidAbsence),
        ["invalid-absence".to_string()].into_iter().collect()
    );
    let oslo = RuleSet::preset("oslo").unwrap();
    assert_eq!(
        oslo.criteria_with_role(super::CriterionRole::InvalidAbsence),
        ["invalid-absence".to_string()].into_iter().collect()
    );
}
