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
        latest: None,
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
        present: ["kontaktlærer", "foresatte", "eleven"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect(),
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
        pupil_view: None,
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
    // Monday 13.4.2026 is CEST: 15:00 Oslo = 13:00 UTC.
    let (case, _) = new_case("repeated-lateness", Level::Barneskole, t("2026-04-13T07:00:00Z"));
    assert_eq!(case.next_deadline().unwrap().due, t("2026-04-13T13:00:00Z"));
}

#[test]
fn holidays_are_no_school_days_for_deadlines() {
    // Friday evening before the Easter holiday (30.3.–6.4.2026 in the
    // Bærum example): the next school day is Tuesday 7.4.
    let (case, _) = new_case("invalid-absence", Level::Ungdomsskole, t("2026-03-27T17:00:00Z"));
    assert_eq!(case.next_deadline().unwrap().due, t("2026-04-07T13:00:00Z"));
    // Without a calendar only weekends are known.
    let mut plain = cfg();
    plain.calendar = Default::default();
    let (case, _) = open_case(
        "S-2026-0001",
        pupil(Level::Ungdomsskole),
        Some("kl-1".into()),
        leader(),
        &finding("invalid-absence"),
        t("2026-03-27T17:00:00Z"),
        &plain,
    );
    assert_eq!(case.next_deadline().unwrap().due, t("2026-03-30T13:00:00Z"));
}

fn finding_on(criterion: &str, change: FindingChangeKind, date: &str) -> FindingEvent {
    FindingEvent {
        change,
        criterion: criterion.into(),
        tentative: false,
        latest: Some(date.parse().unwrap()),
    }
}

#[test]
fn deadlines_count_from_the_absence_not_from_when_tilstede_learns_of_it() {
    // A barneskole lesson missed on Tuesday 3.3., learned Wednesday 4.3. at
    // 12:00: the parents should have heard within Tuesday's first lesson.
    let (mut case, _) = open_case(
        "S-2026-0001",
        pupil(Level::Barneskole),
        Some("kl-1".into()),
        leader(),
        &finding_on("invalid-absence", FindingChangeKind::Opened, "2026-03-03"),
        t("2026-03-04T11:00:00Z"),
        &cfg(),
    );
    let notify = case
        .deadlines
        .iter()
        .find(|d| d.kind == DeadlineKind::NotifyInvalidAbsence)
        .unwrap();
    assert_eq!(notify.due, t("2026-03-03T08:15:00Z"), "08:30 + 45 min on 3.3.");
    // It is already late: the next tick escalates.
    let acts = tick(&mut case, t("2026-03-04T11:01:00Z"), &cfg());
    assert!(acts.iter().any(|a| matches!(
        a.kind,
        NoticeKind::Escalation {
            deadline: DeadlineKind::NotifyInvalidAbsence,
            ..
        }
    )));
}

#[test]
fn old_absence_found_late_opens_for_triage_without_same_day_deadlines() {
    // A lesson missed 7.1., first seen 2.3.: not «within 45 minutes» now.
    let now = t("2026-03-02T09:00:00Z");
    let (case, acts) = open_case(
        "S-2026-0001",
        pupil(Level::Barneskole),
        Some("kl-1".into()),
        leader(),
        &finding_on("invalid-absence", FindingChangeKind::Opened, "2026-01-07"),
        now,
        &cfg(),
    );
    assert!(case.triage);
    assert_eq!(case.responsible, leader());
    assert_eq!(case.deadlines.len(), 1);
    assert_eq!(case.deadlines[0].kind, DeadlineKind::Triage);
    assert!(case.deadlines[0].due > now + Duration::days(6));
    assert_eq!(acts.len(), 1);
    assert!(matches!(acts[0].kind, NoticeKind::Triage { .. }));
    assert!(matches!(acts[0].recipient, Recipient::Ressursteam { .. }));
    // Leadership starts contact: phase 2 deadlines count from now.
    let mut c2 = case.clone();
    apply(
        &mut c2,
        &leader(),
        &Command::ChangePhase { to: Phase::Contact },
        now,
        &cfg(),
    )
    .unwrap();
    assert!(!c2.triage);
    assert_eq!(c2.responsible, teacher());
    assert_eq!(c2.next_deadline().unwrap().kind, DeadlineKind::NotifyInvalidAbsence);
    // Or closes it as nothing to follow up.
    let mut c3 = case;
    apply(
        &mut c3,
        &leader(),
        &Command::Close {
            reason: CloseReason::NoConcern,
        },
        now,
        &cfg(),
    )
    .unwrap();
    assert!(!c3.is_open());
}

#[test]
fn new_invalid_absence_on_a_case_in_phase_3_says_call_home_at_once() {
    let now = t("2026-03-02T09:00:00Z");
    let mut case = through_phase3(now);
    assert!(
        case.deadlines
            .iter()
            .all(|d| d.kind != DeadlineKind::NotifyInvalidAbsence)
    );
    let later = t("2026-03-10T09:30:00Z");
    let acts = on_finding(
        &mut case,
        &finding_on("invalid-absence", FindingChangeKind::Updated, "2026-03-10"),
        later,
        &cfg(),
    );
    assert_eq!(case.phase, Phase::Mapping);
    let d = case
        .deadlines
        .iter()
        .find(|d| d.kind == DeadlineKind::NotifyInvalidAbsence)
        .expect("a deadline to tell the parents");
    assert_eq!(d.owner, teacher());
    assert_eq!(d.due, t("2026-03-10T14:00:00Z"), "ungdomsskole: by the end of the day");
    assert!(
        acts.iter()
            .any(|a| matches!(a.kind, NoticeKind::InvalidAbsenceAgain { .. })
                && a.recipient == Recipient::person(&teacher()))
    );
    assert!(acts.iter().any(|a| a.kind == NoticeKind::InvalidAbsenceToLeadership));
    // The same evidence again raises nothing new.
    let again = on_finding(
        &mut case,
        &finding_on("invalid-absence", FindingChangeKind::Updated, "2026-03-10"),
        later,
        &cfg(),
    );
    assert!(again.is_empty(), "{again:?}");
    // Other criteria do not carry the role, whatever their code.
    let other = on_finding(
        &mut case,
        &finding_on("repeated-lateness", FindingChangeKind::Opened, "2026-03-11"),
        later,
        &cfg(),
    );
    assert!(
        other
            .iter()
            .all(|a| !matches!(a.kind, NoticeKind::InvalidAbsenceAgain { .. }))
    );
}

#[test]
fn the_workflow_knows_invalid_absence_by_the_role_the_rule_set_declares() {
    // The Oslo rule set calls its criteria differently; the role decides.
    let mut c = cfg();
    c.use_rules(&crate::rules::RuleSet::preset("oslo").unwrap());
    assert!(c.is_invalid_absence("invalid-absence"));
    let mut none = cfg();
    none.invalid_absence_criteria.clear();
    let (case, acts) = open_case(
        "S-2026-0001",
        pupil(Level::Barneskole),
        Some("kl-1".into()),
        leader(),
        &finding("invalid-absence"),
        t("2026-03-02T06:00:00Z"),
        &none,
    );
    assert!(
        case.deadlines
            .iter()
            .all(|d| d.kind != DeadlineKind::NotifyInvalidAbsence)
    );
    assert!(acts.iter().all(|a| a.kind != NoticeKind::InvalidAbsenceToLeadership));
}

#[test]
fn long_term_follows_the_configured_duration_not_phase_4() {
    let now = t("2026-03-02T09:00:00Z");
    let mut c = cfg();
    assert_eq!(c.long_term_weeks, 0, "Bærum's routine names no duration");
    let (mut case, _) = new_case("repeated-lateness", Level::Barneskole, now);
    assert!(
        tick(&mut case, now + Duration::weeks(20), &c)
            .iter()
            .all(|a| a.kind != NoticeKind::LongTerm)
    );
    assert!(!case.long_term);
    c.long_term_weeks = 8;
    let acts = tick(&mut case, now + Duration::weeks(21), &c);
    assert!(case.long_term);
    assert!(acts.iter().any(|a| a.kind == NoticeKind::LongTerm));
    // An old setting asking for phase 4 to mean long-term is refused.
    let text = crate::cases::config::PRESETS[0]
        .1
        .replace("open_weeks = 0", "open_weeks = 0\nphase4 = true");
    let e = CaseConfig::from_toml(&text).unwrap_err();
    assert!(e.to_string().starts_with("long_term.phase4:"), "{e}");
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
            latest: None,
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
        &Command::evaluate(EvaluationOutcome::Resolved),
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
        &Command::evaluate(EvaluationOutcome::Phase4),
        later,
        &c,
    )
    .unwrap();
    assert_eq!(case.phase, Phase::Further);
    assert!(
        !case.long_term,
        "phase 4 is not long-term: the routine keeps the two apart"
    );
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
    // Calling the phase 4 meeting stays with the school.
    assert!(
        case.deadlines
            .iter()
            .any(|d| d.kind == DeadlineKind::Meeting && d.owner == leader()),
        "{:?}",
        case.deadlines
    );
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
    // The seed: the school calls and chairs the meetings, also now.
    let e = apply(&mut case, &coord, &held(Some(later + Duration::days(14))), later, &c).unwrap_err();
    assert!(e.to_string().contains("skolen"), "{e}");
    assert!(apply(&mut case, &leader(), &held(None), later, &c).is_err());
    apply(&mut case, &leader(), &held(Some(later + Duration::days(14))), later, &c).unwrap();
    let meeting = case.deadlines.iter().find(|d| d.kind == DeadlineKind::Meeting).unwrap();
    assert_eq!(meeting.owner, leader(), "the next meeting is the school's to call");
    let agreement = case
        .deadlines
        .iter()
        .find(|d| d.kind == DeadlineKind::Agreement)
        .unwrap();
    assert_eq!(agreement.owner, coord, "the agreement is the coordinator's to see to");
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

fn worse() -> crate::cases::numbers::Comparison {
    let p = |att: f64| crate::cases::numbers::PeriodNumbers {
        from: "2026-03-02".parse().unwrap(),
        to: "2026-03-20".parse().unwrap(),
        school_days: 15,
        days: 0,
        lessons: 0,
        lates: 0,
        left: 0,
        attendance_percent: att,
    };
    crate::cases::numbers::Comparison {
        before: p(92.0),
        during: p(85.0),
    }
}

#[test]
fn resolved_against_worse_attendance_needs_a_confirmation() {
    let now = t("2026-03-02T09:00:00Z");
    let mut case = through_phase3(now);
    let later = t("2026-03-23T09:00:00Z");
    let mut resolved = Command::evaluate(EvaluationOutcome::Resolved);
    if let Command::Evaluate { numbers, .. } = &mut resolved {
        *numbers = Some(worse());
    }
    let e = apply(&mut case, &leader(), &resolved, later, &cfg()).unwrap_err();
    assert!(e.to_string().contains("85 % under avtalen mot 92 % før"), "{e}");
    assert!(e.to_string().contains("bekreft"), "{e}");
    assert!(case.is_open());
    if let Command::Evaluate { confirm, .. } = &mut resolved {
        *confirm = true;
    }
    apply(&mut case, &leader(), &resolved, later, &cfg()).unwrap();
    assert!(!case.is_open());
    let e = case.evaluations.last().unwrap();
    assert!(e.confirmed_against_numbers);
    assert_eq!(e.numbers, Some(worse()), "the numbers are kept with the evaluation");
}

#[test]
fn an_evaluation_records_vedlegg_4() {
    let now = t("2026-03-02T09:00:00Z");
    let mut case = through_phase3(now);
    let later = t("2026-03-23T09:00:00Z");
    let mut e = Command::evaluate(EvaluationOutcome::NewAgreement);
    if let Command::Evaluate {
        goal,
        sub_goals,
        measures,
        plan_b,
        referrals_considered,
        pupil_view,
        ..
    } = &mut e
    {
        *goal = Some(GoalRating::Partly);
        sub_goals.push(Rated {
            number: 1,
            rating: GoalRating::Reached,
        });
        measures.push(Rated {
            number: 2,
            rating: MeasureRating::NotDone,
        });
        *plan_b = Some(PlanBUse::Worked);
        referrals_considered.push(Agency::Ppt);
        *pupil_view = Some("Vil ha samme voksne i døra".into());
    }
    // A rating of something the agreement does not hold is refused.
    let mut wrong = e.clone();
    if let Command::Evaluate { sub_goals, .. } = &mut wrong {
        sub_goals.push(Rated {
            number: 4,
            rating: GoalRating::Reached,
        });
    }
    assert!(apply(&mut case.clone(), &leader(), &wrong, later, &cfg()).is_err());
    apply(&mut case, &leader(), &e, later, &cfg()).unwrap();
    let ev = case.evaluations.last().unwrap();
    assert_eq!(ev.goal, Some(GoalRating::Partly));
    assert_eq!(ev.measures[0].rating, MeasureRating::NotDone);
    assert_eq!(ev.plan_b, Some(PlanBUse::Worked));
    assert_eq!(ev.referrals_considered, vec![Agency::Ppt]);
    assert_eq!(case.pupil_views.last().unwrap().stage, Stage::Evaluation);
}

#[test]
fn meetings_record_who_was_there_what_was_decided_and_the_copy_home() {
    let now = t("2026-03-02T09:00:00Z");
    let c = cfg();
    let (mut case, _) = new_case("repeated-lateness", Level::Barneskole, now);
    apply(&mut case, &teacher(), &contact(ContactOutcome::Concern, now), now, &c).unwrap();
    let at = t("2026-03-04T11:00:00Z");
    let acts = apply(
        &mut case,
        &teacher(),
        &Command::SetMeeting {
            kind: MeetingKind::Samarbeid,
            at,
            leadership_present: false,
            place: Some("Møterom 2".into()),
            participants: vec!["elev".parse().unwrap()],
        },
        now,
        &c,
    )
    .unwrap();
    assert!(acts.iter().any(|a| a.kind == NoticeKind::MeetingSet { meeting: 1 }));
    // Nothing about a meeting before one is set is refused elsewhere; here
    // the meeting is going on.
    let during = t("2026-03-04T11:20:00Z");
    apply(
        &mut case,
        &teacher(),
        &Command::AddParticipants {
            meeting: None,
            participants: vec!["foresatt".parse().unwrap(), "avdelingsleder:al-1".parse().unwrap()],
        },
        during,
        &c,
    )
    .unwrap();
    apply(
        &mut case,
        &teacher(),
        &Command::RecordDecision {
            meeting: None,
            text: "Redusert timeplan i to uker".into(),
        },
        during,
        &c,
    )
    .unwrap();
    let e = apply(
        &mut case.clone(),
        &teacher(),
        &Command::MinutesSent {
            meeting: None,
            date: None,
        },
        during,
        &c,
    )
    .unwrap_err();
    assert!(e.to_string().contains("ingen møter er holdt"), "{e}");
    let acts = apply(
        &mut case,
        &teacher(),
        &Command::MeetingHeld {
            kind: MeetingKind::Samarbeid,
            at,
            leadership_present: false,
            mapping_complete: true,
            next_meeting: None,
        },
        t("2026-03-04T12:30:00Z"),
        &c,
    )
    .unwrap();
    assert!(acts.iter().any(|a| a.kind == NoticeKind::MeetingHeld { meeting: 1 }));
    apply(
        &mut case,
        &teacher(),
        &Command::MinutesSent {
            meeting: None,
            date: None,
        },
        t("2026-03-05T09:00:00Z"),
        &c,
    )
    .unwrap();
    let m = &case.meetings[0];
    assert!(m.held && m.has_leadership() && m.pupil_present());
    assert_eq!(m.participants.len(), 3);
    assert_eq!(m.decisions, vec!["Redusert timeplan i to uker"]);
    assert_eq!(m.recorded_by, Some(teacher()));
    assert_eq!(m.copy_to_parents, Some("2026-03-05".parse().unwrap()));
    // The agreement written up right after the meeting has everyone who
    // was there by default.
    let due = NaiveDate::from_ymd_opt(2026, 3, 20).unwrap();
    let written = t("2026-03-04T13:00:00Z");
    apply(&mut case, &teacher(), &measure(false, due), written, &c).unwrap();
    apply(&mut case, &teacher(), &measure(true, due), written, &c).unwrap();
    let mut a = agreement();
    if let Command::CreateAgreement { present, .. } = &mut a {
        present.clear();
    }
    apply(&mut case, &teacher(), &a, written, &c).unwrap();
    assert_eq!(case.current_agreement().unwrap().present.len(), 3);
    // A decision a week later belongs to no meeting until one is set.
    let e = apply(
        &mut case.clone(),
        &teacher(),
        &Command::RecordDecision {
            meeting: None,
            text: "Noe senere".into(),
        },
        t("2026-03-11T09:00:00Z"),
        &c,
    )
    .unwrap_err();
    assert!(e.to_string().contains("sett et møte først"), "{e}");
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
            latest: None,
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
    Cmd(usize, Box<Command>),
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
        (0..3usize).prop_map(|o| Command::evaluate(
            [
                EvaluationOutcome::Resolved,
                EvaluationOutcome::NewAgreement,
                EvaluationOutcome::Phase4
            ][o]
        )),
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
        6 => (0..6usize, arb_command()).prop_map(|(a, c)| Step::Cmd(a, Box::new(c))),
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
                Step::Cmd(a, cmd) => {
                    let mut cmd = *cmd;
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
                    &FindingEvent { change: kind, criterion: CRITERIA[i].into(), tentative: false, latest: None },
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

#[test]
fn fresh_absence_on_a_triaged_case_starts_the_first_contact() {
    let now = t("2026-03-02T09:00:00Z");
    let (mut case, _) = open_case(
        "S-2026-0001",
        pupil(Level::Ungdomsskole),
        Some("kl-1".into()),
        leader(),
        &finding_on("repeated-lateness", FindingChangeKind::Opened, "2026-01-07"),
        now,
        &cfg(),
    );
    assert!(case.triage);
    // Older evidence changing does not wake it.
    let acts = on_finding(
        &mut case,
        &finding_on("repeated-lateness", FindingChangeKind::Updated, "2026-01-09"),
        now,
        &cfg(),
    );
    assert!(case.triage && acts.is_empty());
    let acts = on_finding(
        &mut case,
        &finding_on("repeated-lateness", FindingChangeKind::Updated, "2026-03-02"),
        now,
        &cfg(),
    );
    assert!(!case.triage);
    assert_eq!(case.responsible, teacher());
    assert!(matches!(acts[0].kind, NoticeKind::ContactParents { again: false, .. }));
}
