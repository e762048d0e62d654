//! State machine tests: the routine's paths, refusals, deadlines, and the
//! invariant as a property test.

use super::*;
use crate::domain::roster::Level;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use proptest::prelude::*;

fn cfg() -> CaseConfig {
    CaseConfig::baerum()
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn pupil(level: Level) -> PupilRef {
    PupilRef {
        id: "p1".into(),
        school: "skole-1".into(),
        initials: "E.H.".into(),
        class_name: Some("5B".into()),
        level,
    }
}

fn finding(criterion: &str) -> FindingEvent {
    FindingEvent {
        change: FindingChangeKind::Opened,
        criterion: criterion.into(),
        tentative: false,
    }
}

fn teacher() -> Party {
    Party::new("kl-1", Role::Kontaktlaerer)
}
fn leader() -> Party {
    Party::new("al-1", Role::Avdelingsleder)
}

fn new_case(criterion: &str, level: Level, now: DateTime<Utc>) -> (Case, Actions) {
    open_case(
        "S-2026-0001",
        pupil(level),
        Some("kl-1".into()),
        leader(),
        &finding(criterion),
        now,
        &cfg(),
    )
}

fn contact(outcome: ContactOutcome, at: DateTime<Utc>) -> Command {
    Command::LogContact {
        with: Contacted::Parents,
        at: Some(at),
        channel: Channel::Phone,
        outcome,
    }
}

fn measure(home: bool, due: NaiveDate) -> Command {
    Command::AddMeasure {
        circle_box: if home {
            CircleBox::Hjemmeforhold
        } else {
            CircleBox::RelasjonVoksne
        },
        text: if home {
            "Foresatte følger til skolen"
        } else {
            "Fast voksen i døra"
        }
        .into(),
        responsible: if home { "foresatte" } else { "kontaktlærer" }.into(),
        due,
        at_home: home,
    }
}

fn agreement() -> Command {
    Command::CreateAgreement {
        place: "Skolen".into(),
        present: vec!["kontaktlærer".into(), "foresatte".into(), "eleven".into()],
        goal: "Eleven er på skolen hver dag".into(),
        sub_goals: vec![SubGoalInput {
            text: "Møte til første time".into(),
            weeks: 3,
            measures: vec![1],
        }],
        plan_b: "Kontaktlærer ringer hjem kl. 9".into(),
        plan_b_responsible: "kontaktlærer".into(),
        valid_days: None,
        evaluation_date: None,
    }
}

#[test]
fn opening_prompts_the_contact_teacher_by_end_of_day() {
    // Monday 2.3.2026 10:00 Oslo (09:00 UTC).
    let now = t("2026-03-02T09:00:00Z");
    let (case, actions) = new_case("repeated-lateness", Level::Barneskole, now);
    assert_eq!(case.phase, Phase::Contact);
    assert_eq!(case.responsible, teacher());
    let d = case.next_deadline().unwrap();
    assert_eq!(d.kind, DeadlineKind::ContactParents);
    // 15:00 Oslo = 14:00 UTC the same day.
    assert_eq!(d.due, t("2026-03-02T14:00:00Z"));
    assert_eq!(actions.len(), 1);
    assert!(matches!(
        actions[0].kind,
        NoticeKind::ContactParents {
            invalid_absence: false,
            ..
        }
    ));
    assert_eq!(actions[0].key, "S-2026-0001/r1/0");
}

#[test]
fn invalid_absence_deadline_depends_on_level() {
    // Before school: barneskole must tell parents within the first lesson.
    let now = t("2026-03-02T06:00:00Z");
    let (case, actions) = new_case("invalid-absence", Level::Barneskole, now);
    let d = case
        .deadlines
        .iter()
        .find(|d| d.kind == DeadlineKind::NotifyInvalidAbsence)
        .unwrap();
    // 08:30 + 45 min Oslo = 08:15 UTC.
    assert_eq!(d.due, t("2026-03-02T08:15:00Z"));
    // Leadership is informed too.
    assert!(actions.iter().any(|a| a.kind == NoticeKind::InvalidAbsenceToLeadership
        && a.recipient
            == Recipient::Person {
                id: "al-1".into(),
                role: Role::Avdelingsleder
            }));
    let (case, _) = new_case("invalid-absence", Level::Ungdomsskole, now);
    let d = case
        .deadlines
        .iter()
        .find(|d| d.kind == DeadlineKind::NotifyInvalidAbsence)
        .unwrap();
    assert_eq!(d.due, t("2026-03-02T14:00:00Z"));
    // Friday evening: the next school day is Monday.
    let (case, _) = new_case("invalid-absence", Level::Ungdomsskole, t("2026-03-06T18:00:00Z"));
    assert_eq!(case.next_deadline().unwrap().due, t("2026-03-09T14:00:00Z"));
}

#[test]
fn deadlines_follow_summer_time() {
    // Monday 30.3.2026 is CEST: 15:00 Oslo = 13:00 UTC.
    let (case, _) = new_case("repeated-lateness", Level::Barneskole, t("2026-03-30T07:00:00Z"));
    assert_eq!(case.next_deadline().unwrap().due, t("2026-03-30T13:00:00Z"));
}

#[test]
fn no_concern_goes_to_monitoring_and_new_evidence_prompts_again() {
    let now = t("2026-03-02T09:00:00Z");
    let (mut case, _) = new_case("repeated-lateness", Level::Barneskole, now);
    apply(
        &mut case,
        &teacher(),
        &contact(ContactOutcome::NoConcern, now),
        now,
        &cfg(),
    )
    .unwrap();
    assert_eq!(case.phase, Phase::Monitoring);
    assert_eq!(case.next_deadline().unwrap().kind, DeadlineKind::Review);
    // The same evidence again does nothing new...
    let later = now + Duration::days(3);
    let acts = on_finding(
        &mut case,
        &FindingEvent {
            change: FindingChangeKind::Updated,
            criterion: "repeated-lateness".into(),
            tentative: false,
        },
        later,
        &cfg(),
    );
    // ...except that updated evidence on a monitored case prompts again.
    assert_eq!(case.phase, Phase::Contact);
    assert!(matches!(acts[0].kind, NoticeKind::ContactParents { again: true, .. }));
}

#[test]
fn refusals_say_why_in_norwegian() {
    let now = t("2026-03-02T09:00:00Z");
    let (mut case, _) = new_case("repeated-lateness", Level::Barneskole, now);
    let before = case.clone();
    let other = Party::new("kl-9", Role::Kontaktlaerer);
    let e = apply(&mut case, &other, &contact(ContactOutcome::Concern, now), now, &cfg()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "kontaktlærer kan ikke logge kontakt: du er ikke kontaktlærer for denne eleven"
    );
    let e = apply(
        &mut case,
        &teacher(),
        &Command::Evaluate {
            outcome: EvaluationOutcome::Resolved,
        },
        now,
        &cfg(),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("kontaktlærer kan ikke evaluere samarbeidsavtalen"),
        "{e}"
    );
    let e = apply(&mut case, &teacher(), &agreement(), now, &cfg()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "kan ikke lage samarbeidsavtale i fase 2 – identifisering og kontakt"
    );
    assert_eq!(case, before, "a refusal changes nothing");
}

fn through_phase3(now: DateTime<Utc>) -> Case {
    let (mut case, _) = new_case("invalid-absence", Level::Ungdomsskole, now);
    let c = cfg();
    let acts = apply(&mut case, &teacher(), &contact(ContactOutcome::Concern, now), now, &c).unwrap();
    assert_eq!(case.phase, Phase::Mapping);
    assert_eq!(case.responsible, leader(), "the avdelingsleder takes over");
    assert!(acts.iter().any(|a| a.kind == NoticeKind::TakeOver));
    assert_eq!(case.next_deadline().unwrap().kind, DeadlineKind::FirstMeeting);
    let due = NaiveDate::from_ymd_opt(2026, 3, 20).unwrap();
    apply(&mut case, &teacher(), &measure(false, due), now, &c).unwrap();
    // An agreement needs measures at home too.
    let e = apply(&mut case, &teacher(), &agreement(), now, &c).unwrap_err();
    assert!(e.to_string().contains("både på skolen og hjemme"), "{e}");
    apply(&mut case, &teacher(), &measure(true, due), now, &c).unwrap();
    apply(&mut case, &teacher(), &agreement(), now, &c).unwrap();
    assert_eq!(case.measures.len(), 0);
    let a = case.current_agreement().unwrap();
    assert_eq!(a.measures.len(), 2);
    assert_eq!(a.evaluation_date, NaiveDate::from_ymd_opt(2026, 3, 23).unwrap());
    assert_eq!(case.next_deadline().unwrap().kind, DeadlineKind::Evaluation);
    case
}

#[test]
fn evaluation_reminder_then_escalation_to_the_avdelingsleder() {
    let now = t("2026-03-02T09:00:00Z");
    let mut case = through_phase3(now);
    // The day before: the evaluation prompt to the owner.
    let acts = tick(&mut case, t("2026-03-22T15:00:00Z"), &cfg());
    assert_eq!(acts.len(), 1, "{acts:?}");
    assert!(matches!(acts[0].kind, NoticeKind::EvaluationDue { agreement: 1, .. }));
    // Ticking again sends nothing new.
    assert!(tick(&mut case, t("2026-03-22T16:00:00Z"), &cfg()).is_empty());
    // Missed: the owner is the avdelingsleder, so it goes to the ressursteam.
    let acts = tick(&mut case, t("2026-03-24T08:00:00Z"), &cfg());
    assert_eq!(acts.len(), 1);
    assert!(matches!(
        acts[0].kind,
        NoticeKind::Escalation {
            deadline: DeadlineKind::Evaluation,
            ..
        }
    ));
    assert!(
        acts[0]
            .key
            .starts_with("S-2026-0001/escalate/evaluation/20260323T1400Z/"),
        "{}",
        acts[0].key
    );
}

#[test]
fn incomplete_mapping_needs_a_new_meeting_with_leadership_within_a_week() {
    let now = t("2026-03-02T09:00:00Z");
    let (mut case, _) = new_case("repeated-lateness", Level::Barneskole, now);
    let c = cfg();
    apply(&mut case, &teacher(), &contact(ContactOutcome::Concern, now), now, &c).unwrap();
    let held = |leadership| Command::MeetingHeld {
        kind: MeetingKind::Samarbeid,
        at: now,
        leadership_present: leadership,
        mapping_complete: false,
        next_meeting: None,
    };
    let acts = apply(&mut case, &teacher(), &held(false), now, &c).unwrap();
    assert!(acts.iter().any(|a| matches!(
        a.kind,
        NoticeKind::CallMeeting {
            leadership_required: true,
            ..
        }
    )));
    let d = case.next_deadline().unwrap();
    assert_eq!(d.kind, DeadlineKind::FollowUpMeeting);
    assert_eq!(d.due, t("2026-03-09T14:00:00Z"));
    let e = apply(&mut case, &teacher(), &held(false), now, &c).unwrap_err();
    assert!(e.to_string().contains("ledelsen til stede"), "{e}");
}

#[test]
fn phase4_handoff_moves_responsibility_only_on_acceptance() {
    let now = t("2026-03-02T09:00:00Z");
    let c = cfg();
    let mut case = through_phase3(now);
    let later = t("2026-03-23T09:00:00Z");
    apply(
        &mut case,
        &leader(),
        &Command::Evaluate {
            outcome: EvaluationOutcome::Phase4,
        },
        later,
        &c,
    )
    .unwrap();
    assert_eq!(case.phase, Phase::Further);
    assert!(case.long_term, "phase 4 marks long-term in Bærum");
    let propose = Command::ProposeHandoff {
        agency: Agency::Helsesykepleier,
        person: "@hsp:kommune.no".into(),
    };
    let acts = apply(&mut case, &leader(), &propose, later, &c).unwrap();
    assert_eq!(
        acts[0].recipient,
        Recipient::Person {
            id: "@hsp:kommune.no".into(),
            role: Role::Fagkoordinator
        }
    );
    assert_eq!(case.responsible, leader(), "not yet moved");
    // Someone else cannot accept on their behalf.
    let e = apply(
        &mut case,
        &Party::new("@x:kommune.no", Role::Ressursteam),
        &Command::AcceptHandoff,
        later,
        &c,
    )
    .unwrap_err();
    assert!(e.to_string().contains("bare den som er foreslått"), "{e}");
    let hsp = Party::new("@hsp:kommune.no", Role::Ressursteam);
    apply(&mut case, &hsp, &Command::AcceptHandoff, later, &c).unwrap();
    assert_eq!(case.responsible, Party::new("@hsp:kommune.no", Role::Fagkoordinator));
    // PPT needs a pedagogisk rapport.
    let refer = |rapport| Command::Refer {
        agency: Agency::Ppt,
        decided: NaiveDate::from_ymd_opt(2026, 3, 23).unwrap(),
        sent: None,
        pedagogisk_rapport: rapport,
        legeerklaering_needed: true,
    };
    let coord = Party::new("@hsp:kommune.no", Role::Fagkoordinator);
    assert!(
        apply(&mut case, &coord, &refer(false), later, &c)
            .unwrap_err()
            .to_string()
            .contains("pedagogisk rapport")
    );
    apply(&mut case, &coord, &refer(true), later, &c).unwrap();
    // Hjemmeundervisning needs its preconditions.
    let e = apply(
        &mut case,
        &leader(),
        &Command::NoteSpecialOutcome {
            outcome: SpecialOutcome::Hjemmeundervisning {
                ppt_vurdering: true,
                legeerklaering: false,
            },
        },
        later,
        &c,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "hjemmeundervisning krever legeerklæring");
    // Phase 4 meetings must set the next one.
    let held = |next| Command::MeetingHeld {
        kind: MeetingKind::Samarbeid,
        at: later,
        leadership_present: true,
        mapping_complete: true,
        next_meeting: next,
    };
    assert!(apply(&mut case, &coord, &held(None), later, &c).is_err());
    apply(&mut case, &coord, &held(Some(later + Duration::days(14))), later, &c).unwrap();
    assert!(case.deadlines.iter().any(|d| d.kind == DeadlineKind::Agreement));
    apply(
        &mut case,
        &coord,
        &Command::Close {
            reason: CloseReason::Resolved,
        },
        later,
        &c,
    )
    .unwrap();
    assert!(!case.is_open());
    assert!(case.deadlines.is_empty());
}

#[test]
fn monitoring_review_closes_when_findings_cleared() {
    let now = t("2026-03-02T09:00:00Z");
    let (mut case, _) = new_case("repeated-lateness", Level::Barneskole, now);
    apply(
        &mut case,
        &teacher(),
        &contact(ContactOutcome::NoConcern, now),
        now,
        &cfg(),
    )
    .unwrap();
    on_finding(
        &mut case,
        &FindingEvent {
            change: FindingChangeKind::Cleared,
            criterion: "repeated-lateness".into(),
            tentative: false,
        },
        now,
        &cfg(),
    );
    let acts = tick(&mut case, now + Duration::days(40), &cfg());
    assert!(!case.is_open());
    assert!(acts.iter().any(|a| matches!(
        a.kind,
        NoticeKind::Closed {
            reason: CloseReason::NoConcern
        }
    )));
}

// The property test: random sequences of steps by random people at
// advancing times never leave an open case without a responsible person
// and a next deadline.

#[derive(Debug, Clone)]
enum Step {
    Cmd(usize, Command),
    Finding(FindingChangeKind, usize),
    Tick,
}

fn actors() -> Vec<Party> {
    vec![
        teacher(),
        leader(),
        Party::new("rt-1", Role::Ressursteam),
        Party::new("@hsp:kommune.no", Role::Fagkoordinator),
        Party::new("@hsp:kommune.no", Role::Ressursteam),
        Party::new("rektor", Role::Ledelse),
    ]
}

const CRITERIA: [&str; 4] = [
    "invalid-absence",
    "high-valid-absence",
    "repeated-lateness",
    "left-school",
];

fn arb_command() -> impl Strategy<Value = Command> {
    let now = t("2026-03-02T09:00:00Z");
    let due = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    prop_oneof![
        (0..4usize, 0..4usize).prop_map(move |(w, o)| Command::LogContact {
            with: [Contacted::Parents, Contacted::Pupil, Contacted::Both][w % 3],
            at: Some(now),
            channel: Channel::Phone,
            outcome: [
                ContactOutcome::NotReached,
                ContactOutcome::Reached,
                ContactOutcome::NoConcern,
                ContactOutcome::Concern
            ][o],
        }),
        (
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(1..30i64),
            any::<bool>()
        )
            .prop_map(move |(lead, complete, next, rt)| Command::MeetingHeld {
                kind: if rt {
                    MeetingKind::Ressursteam
                } else {
                    MeetingKind::Samarbeid
                },
                at: now,
                leadership_present: lead,
                mapping_complete: complete,
                next_meeting: next.map(|d| now + Duration::days(d)),
            }),
        any::<bool>().prop_map(move |home| measure(home, due)),
        Just(agreement()),
        (0..3usize).prop_map(|o| Command::Evaluate {
            outcome: [
                EvaluationOutcome::Resolved,
                EvaluationOutcome::NewAgreement,
                EvaluationOutcome::Phase4
            ][o]
        }),
        (1..=4u8).prop_map(|n| Command::ChangePhase {
            to: Phase::from_number(n).unwrap()
        }),
        Just(Command::ReportToRessursteam),
        Just(Command::ProposeHandoff {
            agency: Agency::Bup,
            person: "@hsp:kommune.no".into()
        }),
        Just(Command::AcceptHandoff),
        Just(Command::DeclineHandoff),
        Just(Command::MarkLongTerm),
        Just(Command::Refer {
            agency: Agency::Bup,
            decided: due,
            sent: None,
            pedagogisk_rapport: false,
            legeerklaering_needed: false
        }),
        (0..5usize).prop_map(|r| Command::Close {
            reason: [
                CloseReason::Resolved,
                CloseReason::NoConcern,
                CloseReason::Moved,
                CloseReason::SpecialOutcome,
                CloseReason::Other
            ][r]
        }),
    ]
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..6usize, arb_command()).prop_map(|(a, c)| Step::Cmd(a, c)),
        2 => (0..3usize, 0..4usize).prop_map(|(k, c)| Step::Finding(
            [FindingChangeKind::Opened, FindingChangeKind::Updated, FindingChangeKind::Cleared][k], c)),
        2 => Just(Step::Tick),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn open_cases_always_have_a_responsible_person_and_a_deadline(
        level in prop_oneof![Just(Level::Barneskole), Just(Level::Ungdomsskole)],
        teacher_known in any::<bool>(),
        first in 0..4usize,
        start_hours in 0..24*14i64,
        steps in proptest::collection::vec((arb_step(), 0..72i64), 1..60),
    ) {
        let c = cfg();
        let mut now = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap() + Duration::hours(start_hours);
        let (mut case, _) = open_case(
            "S-2026-0001",
            pupil(level),
            teacher_known.then(|| "kl-1".to_string()),
            leader(),
            &finding(CRITERIA[first]),
            now,
            &c,
        );
        let actors = actors();
        let mut keys = std::collections::HashSet::new();
        for (step, hours) in steps {
            now += Duration::hours(hours);
            let acts = match step {
                Step::Cmd(a, mut cmd) => {
                    // Contacts happen "now".
                    if let Command::LogContact { at, .. } = &mut cmd { *at = Some(now); }
                    if let Command::MeetingHeld { at, next_meeting, .. } = &mut cmd {
                        let gap = next_meeting.map(|n| n - *at);
                        *at = now;
                        *next_meeting = gap.map(|g| now + g);
                    }
                    let before = case.clone();
                    match apply(&mut case, &actors[a], &cmd, now, &c) {
                        Ok(acts) => acts,
                        Err(_) => { prop_assert_eq!(&case, &before); Vec::new() }
                    }
                }
                Step::Finding(kind, i) => on_finding(
                    &mut case,
                    &FindingEvent { change: kind, criterion: CRITERIA[i].into(), tentative: false },
                    now,
                    &c,
                ),
                Step::Tick => tick(&mut case, now, &c),
            };
            for a in &acts {
                prop_assert!(keys.insert(a.key.clone()), "duplicate idempotency key {}", a.key);
                prop_assert_eq!(&a.case, &case.number);
            }
            if case.is_open() {
                prop_assert!(!case.responsible.id.trim().is_empty());
                prop_assert!(case.next_deadline().is_some(), "open case without a deadline: {:?}", case);
                prop_assert!(case.deadlines.iter().all(|d| !d.owner.id.is_empty()));
            } else {
                prop_assert!(case.deadlines.is_empty());
            }
        }
    }
}
