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

/// A case in phase 4 with an agreement, an evaluation, a referral and a
/// pending handoff, and the notices each step produced.
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
    run(
        &mut case,
        &mut notices,
        &teacher,
        Command::MapBox {
            circle_box: CircleBox::RelasjonVoksne,
            resources: vec!["God kontakt med gymlæreren".into()],
            risks: vec!["Få voksne å gå til i friminuttene".into()],
        },
        now,
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
            now,
        );
    }
    run(
        &mut case,
        &mut notices,
        &teacher,
        Command::CreateAgreement {
            place: "Møterom 2".into(),
            present: vec![
                "eleven".into(),
                "foresatte".into(),
                "kontaktlærer".into(),
                "avdelingsleder".into(),
            ],
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
        },
        now,
    );
    let later = t("2026-03-23T09:00:00Z");
    notices.extend(tick(&mut case, t("2026-03-22T15:00:00Z"), &c));
    run(
        &mut case,
        &mut notices,
        &leader,
        Command::Evaluate {
            outcome: EvaluationOutcome::Phase4,
        },
        later,
    );
    run(
        &mut case,
        &mut notices,
        &leader,
        Command::Refer {
            agency: Agency::Ppt,
            decided: d("2026-03-23"),
            sent: Some(d("2026-03-24")),
            pedagogisk_rapport: true,
            legeerklaering_needed: true,
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
    let numbers = compare(&records(), d("2026-03-02"), d("2026-03-22"), 6);
    let ctx = case_context(&case, now, Some(&numbers));
    for doc in [
        Document::FirstConversation,
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
    let numbers = compare(&records(), d("2026-03-02"), d("2026-03-22"), 6);
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
    assert_eq!(kinds.len(), 15, "{kinds:?}");
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
            },
            PupilLine {
                initials: "O.N.".into(),
                class_name: "9B".into(),
                numbers: period(97.0),
                case: None,
            },
        ],
        pupils_total: 24,
    };
    snapshot(
        "oversikt-kontaktlaerer",
        &render(Document::DigestTeacher, &teacher_digest_context(&teacher)),
    );
    let line = |grade, att, prev, trend| GroupLine {
        grade,
        pupils: 50,
        attendance_percent: att,
        previous_percent: prev,
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
