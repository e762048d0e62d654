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

/// The roster of the digest test: two pupils in 5A, one contact teacher and
/// one leader with Matrix ids.
fn digest_roster() -> tilstede::domain::roster::Roster {
    use tilstede::domain::roster::{Roster, RosterClass, RosterPerson, RosterPupil, RosterSchool};
    let person = |id: &str, mx: &str| RosterPerson {
        id: id.into(),
        given_name: "Navn".into(),
        family_name: "Navnesen".into(),
        matrix_id: Some(mx.into()),
        school: Some("skole-1".into()),
    };
    let pupil = |id: &str, given: &str, family: &str| RosterPupil {
        id: id.into(),
        school: "skole-1".into(),
        class: Some("c5a".into()),
        grade: 5,
        given_name: given.into(),
        family_name: family.into(),
    };
    Roster {
        schools: vec![RosterSchool {
            id: "skole-1".into(),
            name: "Eksempel skole".into(),
        }],
        classes: vec![RosterClass {
            id: "c5a".into(),
            school: "skole-1".into(),
            name: "5A".into(),
            grade: 5,
            contact_teachers: vec!["kl-1".into()],
        }],
        pupils: vec![pupil("monday", "Nora", "Nilsen"), pupil("random", "Rolf", "Rud")],
        staff: vec![
            person("kl-1", "@kari:kommune.test"),
            person("al-1", "@ola:kommune.test"),
        ],
    }
}

/// Through the store and the chat workflow: the contact teacher's monthly
/// digest names the planted Monday pattern of one pupil («N.N. (5A): 8 av
/// 10 fraværsdager er mandager») and nothing for the pupil whose absence is
/// random; the first-conversation guide of the case that opens shows the
/// same pattern and says that the subject is missing for whole days.
#[tokio::test]
async fn the_digest_and_the_case_guide_name_a_monday_pattern_and_not_random_absence() {
    use chrono::{TimeZone, Utc};
    use tilstede::matrix::{MatrixConfig, SchoolRoom, direct_room};
    let now = Utc.with_ymd_and_hms(2026, 3, 10, 11, 0, 0).unwrap();
    let month_end = d("2026-02-28");
    let window = Window::new(tilstede::cases::digest::pattern_from(month_end), d("2026-03-09"));
    // Bærum's calendar: the winter break (week 8) has no school days.
    let calendar = tilstede::cases::CaseConfig::baerum().calendar;
    let days: Vec<NaiveDate> = window.days().filter(|x| calendar.is_school_day(*x)).collect();
    let mondays: Vec<NaiveDate> = days.iter().copied().filter(|x| x.weekday() == Weekday::Mon).collect();
    let mut records = Vec::new();
    // Monday pupil: the last 8 Mondays up to the month's end (and the one
    // after), and two other days.
    let planted: Vec<NaiveDate> = mondays
        .iter()
        .copied()
        .filter(|m| *m <= month_end)
        .rev()
        .take(8)
        .collect();
    for (n, date) in planted
        .iter()
        .chain(mondays.iter().filter(|m| **m > month_end))
        .enumerate()
    {
        records.push(record("monday", n, *date, r#""kind":"day""#));
    }
    records.push(record("monday", 50, d("2026-01-14"), r#""kind":"day""#));
    records.push(record("monday", 51, d("2026-02-11"), r#""kind":"day""#));
    // Random pupil: 10 school days drawn with a fixed seed.
    let mut rng = ChaCha8Rng::seed_from_u64(1616);
    let before_end: Vec<NaiveDate> = days.iter().copied().filter(|x| *x <= month_end).collect();
    for (n, date) in before_end.choose_multiple(&mut rng, 10).enumerate() {
        records.push(record("random", n, *date, r#""kind":"day""#));
    }
    for store in crate::support::store_backends().await {
        store.upsert_roster(&digest_roster()).await.unwrap();
        store.ingest(&records, &[]).await.unwrap();
        let cases = tilstede::cases::CaseConfig::baerum();
        let config = MatrixConfig {
            homeserver: "http://127.0.0.1:1".into(),
            user: "@tilstede:kommune.test".into(),
            password_env: "UNUSED".into(),
            store_dir: "/nonexistent".into(),
            admins: vec!["@it:kommune.test".into()],
            allow_unencrypted: false,
            allowed_servers: Vec::new(),
            schools: vec![SchoolRoom {
                school: "skole-1".into(),
                name: "Ressursteam".into(),
                members: vec!["@ola:kommune.test".into()],
            }],
        };
        let chat = tilstede::chat::Chat::new(
            store.clone(),
            cases.clone(),
            config,
            tilstede::render::Renderer::builtin().unwrap(),
        );
        let stats = chat.digests(now).await.unwrap();
        assert_eq!(stats.teachers, 1, "{stats:?}");
        let digest = store
            .outbox_log()
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.post.room_key == direct_room("@kari:kommune.test"))
            .expect("the teacher's digest");
        let body = &digest.post.body;
        println!("{body}");
        assert!(
            body.contains("N.N. (5A): 8 av 10 fraværsdager er mandager"),
            "the Monday sentence: {body}"
        );
        let (listed, patterns) = body.split_once("Mønstre de siste 12 ukene").expect("a pattern section");
        assert!(
            listed.contains("R.R. (5A): 1 dag"),
            "the random pupil is listed: {body}"
        );
        assert!(patterns.contains("N.N. (5A)"), "{body}");
        assert!(!patterns.contains("R.R."), "no pattern for random absence: {body}");

        // A case opens for the Monday pupil; its first-conversation guide
        // shows the pattern over the last weeks.
        let rules = tilstede::rules::RuleSet::preset("baerum").unwrap();
        store
            .refresh_findings(&rules, tilstede::domain::dates::school_date_utc(now))
            .await
            .unwrap();
        tilstede::workflow::sync_cases(&store, &cases, now).await.unwrap();
        chat.relay(now).await.unwrap();
        let log = store.outbox_log().await.unwrap();
        let guide = log
            .iter()
            .find(|e| e.post.body.starts_with("SAMTALEGUIDE: FØRSTE SAMTALE") && e.post.body.contains("N.N."))
            .unwrap_or_else(|| {
                panic!(
                    "a guide for the Monday pupil: {:#?}",
                    log.iter().map(|e| e.post.body.lines().next()).collect::<Vec<_>>()
                )
            });
        // The case looks back 12 weeks from 10 March: the Monday of 15
        // December falls outside, the two in March inside.
        println!("{}", guide.post.body);
        assert!(
            guide
                .post
                .body
                .contains("Siste 12 uker: 9 av 11 fraværsdager er mandager"),
            "{}",
            guide.post.body
        );
    }
}
