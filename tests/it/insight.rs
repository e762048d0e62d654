//! Patterns from records that went through the store: subject and lesson
//! number survive ingestion (as extension fields until the canonical record
//! has them), and a planted Monday pattern is named while random absence is
//! not. The charts of the same numbers are written when
//! `TILSTEDE_CHART_DIR` is set, to look at.

use chrono::{Datelike, NaiveDate, Weekday};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tilstede::domain::AbsenceRecord;
use tilstede::insight::charts::{CaseChart, weekday_subject_heatmap, weekly_attendance};
use tilstede::insight::{
    AbsenceEvent, PatternKind, PatternSettings, SchoolCalendar, Timetable, WeekdayCalendar, Window, analyse,
};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn term() -> (Window, WeekdayCalendar) {
    (
        Window::new(d("2026-01-05"), d("2026-04-24")),
        WeekdayCalendar::default()
            .with_break(d("2026-02-23"), d("2026-02-27"))
            .with_break(d("2026-03-30"), d("2026-04-06")),
    )
}

fn record(pupil: &str, n: usize, date: NaiveDate, extra: &str) -> AbsenceRecord {
    AbsenceRecord::from_json_str(&format!(
        r#"{{"source":"vis","id":"{pupil}-{n}","version":1,"pupil":"{pupil}","school":"skole-1","date":"{date}",{extra},"validity":"unclassified"}}"#
    ))
    .unwrap()
}

#[tokio::test]
async fn a_monday_pupil_and_a_random_pupil_through_the_store() {
    let (window, calendar) = term();
    let days: Vec<NaiveDate> = window.days().filter(|x| calendar.is_school_day(*x)).collect();
    let mondays: Vec<NaiveDate> = days.iter().copied().filter(|x| x.weekday() == Weekday::Mon).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let mut records = Vec::new();
    // Monday pupil: away 10 of 13 Mondays and 2 other days; single maths
    // lessons in the first lesson now and then.
    assert_eq!((days.len(), mondays.len()), (69, 13));
    for (n, date) in mondays.iter().take(10).enumerate() {
        records.push(record("monday", n, *date, r#""kind":"day""#));
    }
    records.push(record("monday", 50, days[13], r#""kind":"day""#));
    records.push(record("monday", 51, days[41], r#""kind":"day""#));
    for (n, date) in days.iter().skip(3).step_by(9).take(6).enumerate() {
        records.push(record(
            "monday",
            100 + n,
            *date,
            r#""kind":"lesson","lessons":1,"subject":"MAT","period":1"#,
        ));
    }
    // Random pupil: 12 days, whole days or a lesson in a random subject and period.
    for (n, date) in days.choose_multiple(&mut rng, 12).enumerate() {
        let extra = if rng.random_bool(0.5) {
            r#""kind":"day""#.to_string()
        } else {
            let subject = ["NOR", "MAT", "ENG", "NAT", "SAM", "KRO", "MUS", "KHV"][rng.random_range(0..8)];
            format!(
                r#""kind":"lesson","lessons":1,"subject":"{subject}","period":{}"#,
                rng.random_range(1..=6)
            )
        };
        records.push(record("random", n, *date, &extra));
    }
    let timetable = Timetable {
        weekly_lessons: [
            ("NOR", 5.0),
            ("MAT", 5.0),
            ("ENG", 3.0),
            ("NAT", 3.0),
            ("SAM", 3.0),
            ("KRO", 2.0),
            ("MUS", 2.0),
            ("KHV", 2.0),
        ]
        .into_iter()
        .map(|(s, n)| (s.to_string(), n))
        .collect(),
    };

    for store in crate::support::store_backends().await {
        store.ingest(&records, &[]).await.unwrap();
        let events = |pupil: &'static str| {
            let store = store.clone();
            async move {
                store
                    .pupil_records(pupil, window.from, window.to)
                    .await
                    .unwrap()
                    .iter()
                    .filter_map(AbsenceEvent::from_record)
                    .collect::<Vec<_>>()
            }
        };
        let monday = events("monday").await;
        assert!(
            monday
                .iter()
                .any(|e| e.subject.as_deref() == Some("MAT") && e.period == Some(1))
        );
        let insight = analyse(
            &monday,
            window,
            &calendar,
            Some(&timetable),
            &PatternSettings::default(),
        );
        let sentences: Vec<&str> = insight.patterns.iter().map(|p| p.sentence.as_str()).collect();
        assert!(
            sentences.contains(&"10 av 17 fraværsdager er mandager"),
            "{sentences:?}"
        );
        assert!(
            insight.patterns.iter().any(|p| p.kind == PatternKind::FirstLesson),
            "{sentences:?}"
        );
        // The digest line the chat layer will print.
        let line = format!("Å.B. (9B): {}", insight.patterns[0].sentence);
        assert!(line.starts_with("Å.B. (9B): "));

        let random = events("random").await;
        let insight_random = analyse(
            &random,
            window,
            &calendar,
            Some(&timetable),
            &PatternSettings::default(),
        );
        assert!(insight_random.patterns.is_empty(), "{:?}", insight_random.summary());
        assert!(insight_random.summary()[0].starts_with("Ingen tydelige mønstre"));

        if let Ok(dir) = std::env::var("TILSTEDE_CHART_DIR") {
            let chart = weekly_attendance(&CaseChart {
                label: "S-2026-0001 · Å.B. (9B)",
                weeks: &insight.weeks,
                agreement: Some((d("2026-03-09"), d("2026-03-27"))),
            })
            .unwrap();
            std::fs::write(format!("{dir}/it-ukentlig.png"), &chart.png).unwrap();
            std::fs::write(format!("{dir}/it-ukentlig.svg"), &chart.svg).unwrap();
            let heat = weekday_subject_heatmap("S-2026-0001 · Å.B. (9B)", &insight_random.by_subject).unwrap();
            std::fs::write(format!("{dir}/it-fag.png"), &heat.png).unwrap();
        }
        store.close().await;
    }
}
