//! Snapshot tests of every template, on a case driven through the workflow.

use super::*;
use crate::cases::digest::{Gap, GroupLine, PupilLine, SchoolDigest, TeacherDigest, Trend};
use crate::cases::numbers::{PeriodNumbers, compare};
use crate::cases::*;
use crate::domain::roster::Level;
use chrono::{DateTime, NaiveDate, Utc};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn who(list: &[&str]) -> Vec<Participant> {
    list.iter().map(|p| p.parse().unwrap()).collect()
}

/// A case in phase 4: a meeting with who was there, what was decided and
/// the referat sent home; mapping; the pupil's view; an agreement; an
/// evaluation with ratings and frozen numbers; a referral; a phase 4
/// meeting set; a pending handoff. And the notices each step produced.
fn fixture() -> (Case, Vec<Notice>) {
    let c = CaseConfig::baerum();
    let now = t("2026-03-02T09:00:00Z");
    let teacher = Party::new("kl-1", Role::Kontaktlaerer);
    let leader = Party::new("al-1", Role::Avdelingsleder);
    let (mut case, mut notices) = open_case(
        "S-2026-0042",
        PupilRef {
            id: "p1".into(),
            school: "skole-1".into(),
            initials: "E.H.".into(),
            class_name: Some("9B".into()),
            level: Level::Ungdomsskole,
        },
        Some("kl-1".into()),
        leader.clone(),
        &FindingEvent {
            change: FindingChangeKind::Opened,
            criterion: "invalid-absence".into(),
            tentative: true,
            latest: Some(d("2026-03-02")),
        },
        now,
        &c,
    );
    fn run(case: &mut Case, notices: &mut Vec<Notice>, who: &Party, cmd: Command, at: DateTime<Utc>) {
        notices.extend(apply(case, who, &cmd, at, &CaseConfig::baerum()).unwrap());
    }
    run(
        &mut case,
        &mut notices,
        &teacher,
        Command::LogContact {
            with: Contacted::Parents,
            at: Some(now),
            channel: Channel::Phone,
            outcome: ContactOutcome::Concern,
        },
        now,
    );
    run(&mut case, &mut notices, &leader, Command::ReportToRessursteam, now);
    let meeting_at = t("2026-03-04T11:00:00Z");
    run(
        &mut case,
        &mut notices,
        &teacher,
        Command::SetMeeting {
            kind: MeetingKind::Samarbeid,
            at: meeting_at,
            leadership_present: false,
            place: Some("Møterom 2".into()),
            participants: who(&["elev", "foresatt", "kontaktlærer:kl-1"]),
        },
        now,
    );
    let during = t("2026-03-04T11:30:00Z");
    run(
        &mut case,
        &mut notices,
        &teacher,
        Command::AddParticipants {
            meeting: None,
            participants: who(&["foresatt", "avdelingsleder:al-1"]),
        },
        during,
    );
    for (b, resources, risks) in [
        (
            CircleBox::RelasjonVoksne,
            vec!["God kontakt med gymlæreren".to_string()],
            vec!["Få voksne å gå til i friminuttene".to_string()],
        ),
        (
            CircleBox::Hjemmeforhold,
            Vec::new(),
            vec!["Sene kvelder med skjerm".to_string()],
        ),
    ] {
        run(
            &mut case,
            &mut notices,
            &teacher,
            Command::MapBox {
                circle_box: b,
                resources,
                risks,
            },
            during,
        );
    }
    run(
        &mut case,
        &mut notices,
        &teacher,
        Command::NotePupilView {
            stage: Stage::Mapping,
            text: "Det er lettere når jeg vet hvem som møter meg".into(),
            took_part: Some(true),
        },
        during,
    );
    for (home, text, who) in [
        (false, "Fast voksen tar imot i døra kl. 08:25", "kontaktlærer"),
        (true, "Foresatte følger til skolen første uke", "foresatte"),
    ] {
        run(
            &mut case,
            &mut notices,
            &teacher,
            Command::AddMeasure {
                circle_box: if home {
                    CircleBox::Hjemmeforhold
                } else {
                    CircleBox::RelasjonVoksne
                },
                text: text.into(),
                responsible: who.into(),
                due: d("2026-03-20"),
                at_home: home,
            },
            during,
        );
    }
    run(
        &mut case,
        &mut notices,
        &teacher,
        Command::RecordDecision {
            meeting: None,
            text: "Eleven begynner med første time tre dager i uka".into(),
        },
        during,
    );
    run(
        &mut case,
        &mut notices,
        &teacher,
        Command::CreateAgreement {
            place: "Møterom 2".into(),
            present: Vec::new(),
            goal: "Eleven møter på skolen hver dag".into(),
            sub_goals: vec![SubGoalInput {
                text: "Møte til første time".into(),
                weeks: 3,
                measures: vec![1, 2],
            }],
            plan_b: "Kontaktlærer ringer hjem kl. 09:00 og avtaler oppmøte samme dag".into(),
            plan_b_responsible: "kontaktlærer".into(),
            valid_days: None,
            evaluation_date: None,
            pupil_view: Some("Vil prøve å komme til første time".into()),
        },
        during,
    );
    let after = t("2026-03-04T12:30:00Z");
    run(
        &mut case,
        &mut notices,
        &teacher,
        Command::MeetingHeld {
            kind: MeetingKind::Samarbeid,
            at: meeting_at,
            leadership_present: false,
            mapping_complete: true,
            next_meeting: None,
        },
        after,
    );
    run(
        &mut case,
        &mut notices,
        &teacher,
        Command::MinutesSent {
            meeting: None,
            date: Some(d("2026-03-05")),
        },
        t("2026-03-05T09:00:00Z"),
    );
    let later = t("2026-03-25T09:00:00Z");
    notices.extend(tick(&mut case, t("2026-03-24T15:00:00Z"), &c));
    let mut evaluation = Command::evaluate(EvaluationOutcome::Phase4);
    if let Command::Evaluate {
        place,
        present,
        goal,
        sub_goals,
        measures,
        plan_b,
        referrals_considered,
        pupil_view,
        numbers,
        ..
    } = &mut evaluation
    {
        *place = Some("Møterom 2".into());
        *present = who(&["elev", "foresatt", "kontaktlærer:kl-1", "avdelingsleder:al-1"]);
        *goal = Some(GoalRating::NotReached);
        sub_goals.push(Rated {
            number: 1,
            rating: GoalRating::Partly,
        });
        measures.push(Rated {
            number: 1,
            rating: MeasureRating::Done,
        });
        measures.push(Rated {
            number: 2,
            rating: MeasureRating::Partly,
        });
        *plan_b = Some(PlanBUse::DidNotWork);
        referrals_considered.extend([Agency::Ppt, Agency::Bup]);
        *pupil_view = Some("Morgenene er det vanskeligste".into());
        *numbers = Some(compare(&records(), &c.calendar, d("2026-03-04"), d("2026-03-25"), 6));
    }
    run(&mut case, &mut notices, &leader, evaluation, later);
    run(
        &mut case,
        &mut notices,
        &leader,
        Command::Refer {
            agency: Agency::Ppt,
            decided: d("2026-03-25"),
            sent: Some(d("2026-03-26")),
            pedagogisk_rapport: true,
            legeerklaering_needed: true,
        },
        later,
    );
    run(
        &mut case,
        &mut notices,
        &leader,
        Command::SetMeeting {
            kind: MeetingKind::Ressursteam,
            at: t("2026-03-26T13:00:00Z"),
            leadership_present: true,
            place: Some("Ressursteamets møterom".into()),
            participants: who(&["avdelingsleder:al-1", "kontaktlærer:kl-1", "helsesykepleier", "ppt"]),
        },
        later,
    );
    run(
        &mut case,
        &mut notices,
        &leader,
        Command::ProposeHandoff {
            agency: Agency::Helsesykepleier,
            person: "@hsp:kommune.no".into(),
        },
        later,
    );
    (case, notices)
}

fn records() -> Vec<crate::domain::AbsenceRecord> {
    let line = |date: &str, kind: &str, id: &str| {
        crate::domain::AbsenceRecord::from_json_str(&format!(
            r#"{{"source":"s","id":"{id}","version":1,"pupil":"p1","school":"skole-1","date":"{date}","kind":"{kind}","validity":"invalid"}}"#
        ))
        .unwrap()
    };
    vec![
        line("2026-02-10", "day", "a"),
        line("2026-02-11", "day", "b"),
        line("2026-02-12", "late", "c"),
        line("2026-02-19", "day", "d"),
        line("2026-03-10", "late", "e"),
    ]
}

fn render(doc: Document, ctx: &serde_json::Value) -> Rendered {
    Renderer::builtin().unwrap().render(doc, ctx).unwrap()
}

fn snapshot(name: &str, r: &Rendered) {
    insta::assert_snapshot!(format!("{name}_md"), r.markdown);
    insta::assert_snapshot!(format!("{name}_html"), r.html);
    insta::assert_snapshot!(format!("{name}_txt"), r.plain);
}

#[test]
fn case_documents() {
    let (case, _) = fixture();
    let now = t("2026-03-23T10:00:00Z");
    let numbers = compare(
        &records(),
        &CaseConfig::baerum().calendar,
        d("2026-03-02"),
        d("2026-03-22"),
        6,
    );
    let ctx = case_context(&case, now, Some(&numbers));
    for doc in [
        Document::FirstConversation,
        Document::PupilConversation,
        Document::AgendaPhase3,
        Document::AgendaPhase4,
        Document::Referat,
        Document::Samarbeidsavtale,
        Document::Evaluering,
        Document::Overforing,
    ] {
        snapshot(doc.name(), &render(doc, &ctx));
    }
}

#[test]
fn every_notice_kind() {
    let (case, notices) = fixture();
    let mut kinds = std::collections::BTreeSet::new();
    let mut out = String::new();
    let numbers = compare(
        &records(),
        &CaseConfig::baerum().calendar,
        d("2026-03-02"),
        d("2026-03-22"),
        6,
    );
    for n in &notices {
        let extra = serde_json::json!({ "numbers": numbers });
        let r = render(Document::Notice, &notice_context(n, &case, &extra));
        kinds.insert(
            serde_json::to_value(&n.kind).unwrap()["notice"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        out.push_str(&format!("=== {} → {:?}\n{}\n{}\n", n.key, n.recipient, r.plain, r.html));
    }
    // Kinds the fixture does not reach, rendered on their own.
    let extra_kinds = [
        NoticeKind::NewEvidence {
            criterion: "left-school".into(),
        },
        NoticeKind::Escalation {
            deadline: DeadlineKind::Evaluation,
            due: t("2026-03-23T14:00:00Z"),
            owner: Party::new("al-1", Role::Avdelingsleder),
        },
        NoticeKind::Reminder {
            deadline: DeadlineKind::FollowUpMeeting,
            due: t("2026-03-09T14:00:00Z"),
        },
        NoticeKind::HandoffAccepted {
            agency: Agency::Helsesykepleier,
            person: "@hsp:kommune.no".into(),
        },
        NoticeKind::HandoffDeclined { agency: Agency::Bup },
        NoticeKind::Closed {
            reason: CloseReason::Resolved,
        },
        NoticeKind::CallMeeting {
            within_days: 7,
            leadership_required: true,
        },
        NoticeKind::InvalidAbsenceAgain {
            date: d("2026-03-24"),
            due: t("2026-03-24T14:00:00Z"),
        },
        NoticeKind::Triage {
            latest: d("2026-01-07"),
        },
        NoticeKind::LongTerm,
    ];
    for k in extra_kinds {
        let n = Notice {
            key: "x".into(),
            case: case.number.clone(),
            recipient: Recipient::Ressursteam {
                school: "skole-1".into(),
            },
            kind: k,
        };
        kinds.insert(
            serde_json::to_value(&n.kind).unwrap()["notice"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        let r = render(Document::Notice, &notice_context(&n, &case, &serde_json::json!({})));
        out.push_str(&format!(
            "=== {}\n{}\n",
            serde_json::to_value(&n.kind).unwrap()["notice"],
            r.plain
        ));
    }
    assert_eq!(kinds.len(), 19, "{kinds:?}");
    // No notice mentions a name or a reason: only number, initials and class.
    assert!(!out.contains("p1"));
    insta::assert_snapshot!("notices", out);
}

#[test]
fn digests() {
    let period = |att: f64| PeriodNumbers {
        from: d("2026-03-01"),
        to: d("2026-03-31"),
        school_days: 22,
        days: 2,
        lessons: 14,
        lates: 3,
        left: 0,
        attendance_percent: att,
    };
    let teacher = TeacherDigest {
        teacher: "kl-1".into(),
        from: d("2026-03-01"),
        to: d("2026-03-31"),
        pupils: vec![
            PupilLine {
                initials: "E.H.".into(),
                class_name: "9B".into(),
                numbers: period(89.4),
                case: Some(("S-2026-0042".into(), 3)),
                patterns: vec!["6 av 9 fraværsdager er mandager".into()],
            },
            PupilLine {
                initials: "O.N.".into(),
                class_name: "9B".into(),
                numbers: period(97.0),
                case: None,
                patterns: vec![],
            },
        ],
        pupils_total: 24,
        pattern_weeks: 12,
        pattern_notes: vec!["Fag er ikke oppgitt for timefraværet, så fravær per fag kan ikke vurderes.".into()],
        registered: true,
    };
    snapshot(
        "oversikt-kontaktlaerer",
        &render(Document::DigestTeacher, &teacher_digest_context(&teacher)),
    );
    let line = |grade, att, prev, trend| GroupLine {
        grade,
        pupils: 50,
        attendance_percent: att,
        previous_percent: Some(prev),
        trend,
        lates: 12,
        open_cases: 2,
    };
    let school = SchoolDigest {
        school: "skole-1".into(),
        school_name: "Eikeli skole".into(),
        from: d("2026-01-01"),
        to: d("2026-03-31"),
        total: line(0, 94.2, 95.1, Trend::Worse),
        grades: vec![line(8, 95.0, 94.0, Trend::Better), line(9, 93.4, 96.2, Trend::Worse)],
        open_by_phase: [1, 2, 1, 1],
        long_term: 1,
    };
    let gaps = vec![Gap {
        class: "c9b".into(),
        class_name: "9B".into(),
        from: d("2026-03-16"),
        to: d("2026-03-18"),
        days: 3,
    }];
    snapshot(
        "oversikt-skole",
        &render(Document::DigestSchool, &school_digest_context(&school, &gaps)),
    );
}

/// Issue 15: without data for a period the digests say so, instead of
/// «før: 100 %» or «Ingen av elevene dine har registrert fravær».
#[test]
fn digests_without_data_say_there_is_none() {
    let teacher = TeacherDigest {
        teacher: "kl-1".into(),
        from: d("2026-08-01"),
        to: d("2026-08-31"),
        pupils: Vec::new(),
        pupils_total: 24,
        pattern_weeks: 12,
        pattern_notes: vec![],
        registered: false,
    };
    let plain = render(Document::DigestTeacher, &teacher_digest_context(&teacher)).plain;
    assert!(!plain.contains("Ingen av elevene dine"), "{plain}");
    assert!(plain.contains("ikke sendt noe fravær"), "{plain}");
    let line = GroupLine {
        grade: 8,
        pupils: 50,
        attendance_percent: 96.0,
        previous_percent: None,
        trend: Trend::Same,
        lates: 1,
        open_cases: 0,
    };
    let school = SchoolDigest {
        school: "skole-1".into(),
        school_name: "Eikeli skole".into(),
        from: d("2026-08-17"),
        to: d("2026-10-23"),
        total: GroupLine {
            grade: 0,
            ..line.clone()
        },
        grades: vec![line],
        open_by_phase: [0; 4],
        long_term: 0,
    };
    let plain = render(Document::DigestSchool, &school_digest_context(&school, &[])).plain;
    assert!(!plain.contains("100 %") && !plain.contains("før:"), "{plain}");
    assert_eq!(plain.matches("ingen tall for perioden før").count(), 2, "{plain}");
}

#[test]
fn overrides_come_from_the_directory_and_typos_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("samarbeidsavtale.md.j2"), "# Avtale for {{ number }}\n").unwrap();
    let r = Renderer::with_overrides(Some(dir.path())).unwrap();
    let (case, _) = fixture();
    let out = r
        .render(Document::Samarbeidsavtale, &case_context(&case, Utc::now(), None))
        .unwrap();
    assert_eq!(out.markdown, "# Avtale for S-2026-0042\n");
    assert_eq!(out.html, "<h1>Avtale for S-2026-0042</h1>\n");
    std::fs::write(dir.path().join("samarbeidsavtal.md.j2"), "x").unwrap();
    let e = Renderer::with_overrides(Some(dir.path())).unwrap_err();
    assert_eq!(e.to_string(), "ukjent mal «samarbeidsavtal.md.j2»");
    // A broken template names itself and the line.
    std::fs::remove_file(dir.path().join("samarbeidsavtal.md.j2")).unwrap();
    std::fs::write(dir.path().join("referat.md.j2"), "linje\n{% if %}\n").unwrap();
    let e = Renderer::with_overrides(Some(dir.path())).unwrap_err();
    assert!(e.to_string().starts_with("malen «referat.md.j2»: linje 2"), "{e}");
}

/// Singular and plural of every noun that follows a number in a document.
const NOUNS: &[(&str, &str)] = &[
    ("dag", "dager"),
    ("skoledag", "skoledager"),
    ("time", "timer"),
    ("elev", "elever"),
    ("sak", "saker"),
    ("åpen sak", "åpne saker"),
    ("skole", "skoler"),
    ("gang", "ganger"),
    ("uke", "uker"),
    ("forsentkomming", "forsentkomminger"),
    ("kontakt", "kontakter"),
    ("varsel", "varsler"),
    ("registrering", "registreringer"),
    ("langvarig", "langvarige"),
    ("møte", "møter"),
    ("henvisning", "henvisninger"),
    ("avtale", "avtaler"),
];

/// The first «1 dager», «2 dag», «0 dag» … in `text`.
fn wrong_number(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let s: String = chars.iter().collect();
    for (one, many) in NOUNS {
        for (n, word) in [("1", *many), ("0", *one), ("2", *one)] {
            let needle = format!("{n} {word}");
            for (i, _) in s.match_indices(&needle) {
                let before = s[..i].chars().last();
                let after = s[i + needle.len()..].chars().next();
                let number_starts = before.is_none_or(|c| !c.is_ascii_digit() && c != ',' && c != '.');
                let word_ends = after.is_none_or(|c| !c.is_alphabetic());
                // «åpen sak» contains «sak»: a match inside a longer noun is
                // checked under that noun.
                if number_starts && word_ends {
                    return Some(needle);
                }
            }
        }
    }
    None
}

fn numbers_of(n: u32) -> crate::cases::numbers::Comparison {
    let p = PeriodNumbers {
        from: d("2026-03-02"),
        to: d("2026-03-20"),
        school_days: n,
        days: n,
        lessons: n,
        lates: n,
        left: n,
        attendance_percent: 90.0,
    };
    crate::cases::numbers::Comparison { before: p, during: p }
}

/// Every integer in a context set to `n`: what a template prints as a count.
fn all_integers(v: &mut serde_json::Value, n: u64) {
    match v {
        serde_json::Value::Number(x) if x.is_u64() => *v = serde_json::json!(n),
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| all_integers(x, n)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| all_integers(x, n)),
        _ => {}
    }
}

#[test]
fn every_template_says_1_dag_and_2_dager() {
    assert_eq!(wrong_number("1 dager"), Some("1 dager".into()));
    assert_eq!(wrong_number("2 dag."), Some("2 dag".into()));
    assert_eq!(wrong_number("1 åpne saker"), Some("1 åpne saker".into()));
    assert_eq!(wrong_number("12 dager, 1 time, 21 dag"), None);
    assert_eq!(wrong_number("2 dager, 0 timer, 1 åpen sak"), None);
    let (case, notices) = fixture();
    let now = t("2026-03-23T10:00:00Z");
    for n in 0..3u32 {
        let mut rendered = Vec::new();
        let numbers = numbers_of(n);
        let ctx = case_context(&case, now, Some(&numbers));
        let mut flat = ctx.clone();
        all_integers(&mut flat, u64::from(n));
        for doc in Document::ALL {
            match doc {
                Document::DigestTeacher | Document::DigestSchool | Document::Notice => {}
                _ => {
                    rendered.push((doc.name().to_string(), render(doc, &ctx)));
                    rendered.push((format!("{} (alle tall {n})", doc.name()), render(doc, &flat)));
                }
            }
        }
        let extra = serde_json::json!({ "numbers": numbers });
        let mut kinds = notices.iter().map(|x| x.kind.clone()).collect::<Vec<_>>();
        kinds.push(NoticeKind::CallMeeting {
            within_days: n,
            leadership_required: true,
        });
        for kind in kinds {
            let notice = Notice {
                key: "x".into(),
                case: case.number.clone(),
                recipient: Recipient::Ressursteam {
                    school: "skole-1".into(),
                },
                kind,
            };
            let mut ctx = notice_context(&notice, &case, &extra);
            rendered.push(("melding".into(), render(Document::Notice, &ctx)));
            all_integers(&mut ctx, u64::from(n));
            rendered.push((format!("melding (alle tall {n})"), render(Document::Notice, &ctx)));
        }
        let period = PeriodNumbers {
            school_days: n,
            ..numbers.before
        };
        let teacher = TeacherDigest {
            teacher: "kl-1".into(),
            from: d("2026-03-01"),
            to: d("2026-03-31"),
            pupils: (0..n)
                .map(|_| PupilLine {
                    initials: "E.H.".into(),
                    class_name: "9B".into(),
                    numbers: period,
                    case: None,
                    patterns: vec![],
                })
                .collect(),
            pupils_total: n,
            pattern_weeks: 12,
            pattern_notes: vec![],
            registered: true,
        };
        rendered.push((
            "oversikt-kontaktlaerer".into(),
            render(Document::DigestTeacher, &teacher_digest_context(&teacher)),
        ));
        let line = GroupLine {
            grade: 9,
            pupils: n,
            attendance_percent: 90.0,
            previous_percent: Some(91.0),
            trend: Trend::Worse,
            lates: n,
            open_cases: n,
        };
        let school = SchoolDigest {
            school: "skole-1".into(),
            school_name: "Eikeli skole".into(),
            from: d("2026-01-01"),
            to: d("2026-03-31"),
            total: line.clone(),
            grades: vec![line],
            open_by_phase: [n; 4],
            long_term: n,
        };
        let gaps = vec![Gap {
            class: "c9b".into(),
            class_name: "9B".into(),
            from: d("2026-03-16"),
            to: d("2026-03-18"),
            days: n,
        }];
        let mut ctx = school_digest_context(&school, &gaps);
        rendered.push(("oversikt-skole".into(), render(Document::DigestSchool, &ctx)));
        all_integers(&mut ctx, u64::from(n));
        rendered.push((
            "oversikt-skole (alle tall)".into(),
            render(Document::DigestSchool, &ctx),
        ));
        for (name, r) in rendered {
            if let Some(bad) = wrong_number(&r.plain) {
                panic!("«{bad}» in {name} with {n}:\n{}", r.plain);
            }
        }
    }
}

#[test]
fn the_guides_carry_the_points_of_vedlegg_2() {
    let (case, _) = fixture();
    let ctx = case_context(&case, t("2026-03-23T10:00:00Z"), None);
    let first = render(Document::FirstConversation, &ctx).plain;
    for point in [
        "Spør eleven om hun eller han vil være med",
        "hvor ofte dere holder kontakt",
        "Personsensitive opplysninger sendes ikke på e-post",
        "Har dere tillit til skolen?",
        "helsemessige grunner",
        "plaget eller mobbet",
    ] {
        assert!(first.contains(point), "«{point}» missing:\n{first}");
    }
    let pupil = render(Document::PupilConversation, &ctx).plain;
    for point in [
        "Hva er godt med å være hjemme?",
        "Hva er vanskelig med å være på skolen?",
        "tiltakssirkelen",
        "Morgenene er det vanskeligste",
    ] {
        assert!(pupil.contains(point), "«{point}» missing:\n{pupil}");
    }
}
