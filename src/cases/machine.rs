//! The state machine: findings, commands and the clock in; notices out.
//!
//! Every function takes the time as an argument and returns the actions to
//! take; nothing here reads a clock or touches IO. A refused command leaves
//! the case untouched.

use super::calendar::days_later;
use super::command::Command;
use super::config::CaseConfig;
use super::model::*;
use super::notice::{Actions, NoticeKind, Out, Recipient};
use super::policy::authorize;
use super::steps::{self, Ctx};
use super::transitions::{absence_time, is_backlog};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Why a command was refused. The messages are shown to the person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseError {
    /// The role may not do this.
    #[error("{role} kan ikke {action}: {why}")]
    NotAllowed {
        /// The actor's role, in Norwegian.
        role: &'static str,
        /// The step, in Norwegian.
        action: &'static str,
        /// Why not.
        why: String,
    },
    /// The case is closed.
    #[error("saken {0} er avsluttet")]
    Closed(String),
    /// The step does not fit the phase.
    #[error("kan ikke {action} i {phase}")]
    WrongPhase {
        /// The step, in Norwegian.
        action: &'static str,
        /// The current phase, in Norwegian.
        phase: &'static str,
    },
    /// A precondition of the routine is not met.
    #[error("{0}")]
    Precondition(String),
    /// The person holds no role in the case.
    #[error(
        "du har ingen rolle i sak {0}: tilstede kjenner deg ikke som kontaktlærer, ledelse, ressursteam eller fagkoordinator for den"
    )]
    NoRole(String),
    /// The person asked to act in a role they do not hold in the case.
    #[error("du har ikke rollen {role} i sak {case}")]
    RoleNotHeld {
        /// The role asked for, in Norwegian.
        role: &'static str,
        /// The case.
        case: String,
    },
}

/// How a finding changed, as the case sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingChangeKind {
    /// A criterion began to hold.
    Opened,
    /// It still holds, with new evidence.
    Updated,
    /// It no longer holds.
    Cleared,
}

/// A finding change reduced to what the case needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingEvent {
    /// The change.
    pub change: FindingChangeKind,
    /// The criterion code.
    pub criterion: String,
    /// Whether some evidence is still unclassified.
    pub tentative: bool,
    /// The newest date of the evidence: deadlines count from the absence,
    /// not from when tilstede learns of it.
    #[serde(default)]
    pub latest: Option<NaiveDate>,
}
/// A deadline that has neither reminded nor escalated yet.
pub(super) fn deadline(kind: DeadlineKind, due: DateTime<Utc>, owner: &Party) -> Deadline {
    Deadline {
        kind,
        due,
        owner: owner.clone(),
        reminded: false,
        escalated: false,
    }
}

/// Opens a case for a pupil on a finding. `contact_teacher` comes from the
/// roster; `escalation_to` from [`escalation_party`].
pub fn open_case(
    number: &str,
    pupil: PupilRef,
    contact_teacher: Option<String>,
    escalation_to: Party,
    finding: &FindingEvent,
    now: DateTime<Utc>,
    config: &CaseConfig,
) -> (Case, Actions) {
    let responsible = match &contact_teacher {
        Some(t) => Party::new(t.clone(), Role::Kontaktlaerer),
        None => escalation_to.clone(),
    };
    let mut case = Case {
        number: number.to_string(),
        pupil,
        status: Status::Open,
        phase: Phase::Contact,
        opened_at: now,
        responsible,
        contact_teacher,
        escalation_to,
        active_criteria: [finding.criterion.clone()].into_iter().collect(),
        deadlines: Vec::new(),
        contacts: Vec::new(),
        meetings: Vec::new(),
        mapping: vec![BoxMapping::default(); CircleBox::ALL.len()],
        measures: Vec::new(),
        agreements: Vec::new(),
        evaluations: Vec::new(),
        referrals: Vec::new(),
        coordinator: None,
        pending_handoff: None,
        special_outcomes: Vec::new(),
        long_term: false,
        reported_to_ressursteam: false,
        measure_count: 0,
        pupil_views: Vec::new(),
        triage: false,
        invalid_seen: None,
        revision: 1,
    };
    let mut out = Out::new(number, "r1".into());
    if config.is_invalid_absence(&finding.criterion) {
        case.invalid_seen = finding.latest;
    }
    if is_backlog(config, finding.latest, now) {
        // Old absence found late (a first sync of a school year's data):
        // no same-day deadlines for it; leadership goes through the list.
        case.triage = true;
        case.responsible = case.escalation_to.clone();
        let owner = case.responsible.clone();
        case.set_deadline(deadline(
            DeadlineKind::Triage,
            days_later(config, now, config.triage_days),
            &owner,
        ));
        out.push(
            Recipient::Ressursteam {
                school: case.pupil.school.clone(),
            },
            NoticeKind::Triage {
                latest: finding
                    .latest
                    .unwrap_or_else(|| crate::domain::dates::school_date_utc(now)),
            },
        );
    } else {
        let from = absence_time(config, finding.latest, now);
        case.start_contact(config, from, finding.tentative, false, &mut out);
    }
    (case, out.notices)
}

/// A finding changed for the pupil of an open case.
pub fn on_finding(case: &mut Case, event: &FindingEvent, now: DateTime<Utc>, config: &CaseConfig) -> Actions {
    if !case.is_open() {
        return Vec::new();
    }
    let number = case.number.clone();
    let mut out = Out::new(&number, format!("r{}", case.revision + 1));
    let mut changed = false;
    match event.change {
        FindingChangeKind::Opened | FindingChangeKind::Updated => {
            let new = case.active_criteria.insert(event.criterion.clone());
            changed |= new;
            let invalid = config.is_invalid_absence(&event.criterion);
            // Invalid absence newer than any the case has seen.
            let fresh_invalid = invalid && event.latest.is_some_and(|d| case.invalid_seen.is_none_or(|s| d > s));
            if fresh_invalid {
                case.invalid_seen = event.latest;
                changed = true;
            }
            let from = absence_time(config, event.latest, now);
            let recent = !is_backlog(config, event.latest, now);
            if case.phase == Phase::Monitoring || (case.triage && recent) {
                // A triaged case never had its first contact: the prompt is
                // the first one, with the conversation guide.
                let again = !case.triage;
                case.start_contact(config, from, event.tentative, again, &mut out);
                changed = true;
            } else if fresh_invalid && recent && !case.triage {
                // Whatever the phase: new invalid absence means the parents
                // are told at once, and leadership hears of it.
                let owner = case.contact_party();
                let due = case.notify_due(config, from);
                case.set_deadline(deadline(DeadlineKind::NotifyInvalidAbsence, due, &owner));
                out.push(
                    Recipient::person(&owner),
                    NoticeKind::InvalidAbsenceAgain {
                        date: event
                            .latest
                            .unwrap_or_else(|| crate::domain::dates::school_date_utc(now)),
                        due,
                    },
                );
                out.push(
                    Recipient::person(&case.escalation_to),
                    NoticeKind::InvalidAbsenceToLeadership,
                );
            } else if new {
                out.push(
                    Recipient::person(&case.responsible),
                    NoticeKind::NewEvidence {
                        criterion: event.criterion.clone(),
                    },
                );
            }
        }
        FindingChangeKind::Cleared => {
            changed |= case.active_criteria.remove(&event.criterion);
        }
    }
    if changed {
        case.revision += 1;
    }
    out.notices
}
pub(super) fn need_phase(case: &Case, command: &Command, phases: &[Phase]) -> Result<(), CaseError> {
    if phases.contains(&case.phase) {
        Ok(())
    } else {
        Err(CaseError::WrongPhase {
            action: command.norwegian(),
            phase: case.phase.norwegian(),
        })
    }
}

pub(super) fn non_empty(what: &str, s: &str) -> Result<(), CaseError> {
    if s.trim().is_empty() {
        Err(CaseError::Precondition(format!("{what} mangler")))
    } else {
        Ok(())
    }
}

/// Applies a person's step. On refusal the case is unchanged.
pub fn apply(
    case: &mut Case,
    actor: &Party,
    command: &Command,
    now: DateTime<Utc>,
    config: &CaseConfig,
) -> Result<Actions, CaseError> {
    if !case.is_open() {
        return Err(CaseError::Closed(case.number.clone()));
    }
    authorize(case, actor, command)?;
    let mut next = case.clone();
    let number = case.number.clone();
    let mut out = Out::new(&number, format!("r{}", case.revision + 1));
    step(&mut next, actor, command, now, config, &mut out)?;
    next.revision += 1;
    *case = next;
    Ok(out.notices)
}
fn step(
    case: &mut Case,
    actor: &Party,
    command: &Command,
    now: DateTime<Utc>,
    config: &CaseConfig,
    out: &mut Out,
) -> Result<(), CaseError> {
    let cx = Ctx {
        actor,
        command,
        now,
        today: crate::domain::dates::school_date_utc(now),
        config,
    };
    match command {
        Command::LogContact { .. } => steps::log_contact(case, &cx, out),
        Command::SetMeeting { .. } => steps::set_meeting(case, &cx, out),
        Command::AddParticipants { .. } => steps::add_participants(case, &cx, out),
        Command::RecordDecision { .. } => steps::record_decision(case, &cx, out),
        Command::MinutesSent { .. } => steps::minutes_sent(case, &cx, out),
        Command::NotePupilView { .. } => steps::note_pupil_view(case, &cx, out),
        Command::MeetingHeld { .. } => steps::meeting_held(case, &cx, out),
        Command::MapBox { .. } => steps::map_box(case, &cx, out),
        Command::AddMeasure { .. } => steps::add_measure(case, &cx, out),
        Command::CreateAgreement { .. } => steps::create_agreement(case, &cx, out),
        Command::Evaluate { .. } => steps::evaluate(case, &cx, out),
        Command::ChangePhase { .. } => steps::change_phase(case, &cx, out),
        Command::ReportToRessursteam => steps::report_to_ressursteam(case, &cx, out),
        Command::Refer { .. } => steps::refer(case, &cx, out),
        Command::ProposeHandoff { .. } => steps::propose_handoff(case, &cx, out),
        Command::AcceptHandoff => steps::accept_handoff(case, &cx, out),
        Command::DeclineHandoff => steps::decline_handoff(case, &cx, out),
        Command::MarkLongTerm => steps::mark_long_term(case, &cx, out),
        Command::NoteSpecialOutcome { .. } => steps::note_special_outcome(case, &cx, out),
        Command::Close { .. } => steps::close(case, &cx, out),
    }
}

/// The clock moved to `now`: reminders, escalations, reviews, long-term marking.
pub fn tick(case: &mut Case, now: DateTime<Utc>, config: &CaseConfig) -> Actions {
    if !case.is_open() {
        return Vec::new();
    }
    let number = case.number.clone();
    let mut out = Out::new(&number, format!("r{}", case.revision + 1));
    let lead = Duration::hours(i64::from(config.remind_hours_before));
    let mut changed = false;
    let mut review_due = false;
    let escalate_to = case.escalation_to.clone();
    let school = case.pupil.school.clone();
    let evaluation = evaluation_prompt(case);
    let revision = case.revision;
    for d in &mut case.deadlines {
        // The revision makes a deadline set again at the same time remind again.
        let stamp = format!("{}/r{}", d.due.format("%Y%m%dT%H%MZ"), revision + 1);
        if d.kind == DeadlineKind::Review {
            if now > d.due {
                review_due = true;
            }
            continue;
        }
        if !d.reminded && now >= d.due - lead {
            d.reminded = true;
            changed = true;
            out.push_keyed(
                format!("{number}/remind/{}/{stamp}", d.kind.code()),
                Recipient::person(&d.owner),
                match (&evaluation, d.kind) {
                    (Some(prompt), DeadlineKind::Evaluation) => prompt.clone(),
                    _ => NoticeKind::Reminder {
                        deadline: d.kind,
                        due: d.due,
                    },
                },
            );
        }
        if !d.escalated && now > d.due {
            d.escalated = true;
            changed = true;
            let kind = NoticeKind::Escalation {
                deadline: d.kind,
                due: d.due,
                owner: d.owner.clone(),
            };
            let to = if d.owner == escalate_to {
                Recipient::Ressursteam { school: school.clone() }
            } else {
                Recipient::person(&escalate_to)
            };
            out.push_keyed(format!("{number}/escalate/{}/{stamp}", d.kind.code()), to, kind);
        }
    }
    if review_due {
        changed = true;
        if case.active_criteria.is_empty() {
            case.close(CloseReason::NoConcern, now, &mut out);
        } else {
            let owner = case.responsible.clone();
            let due = days_later(config, now, config.monitoring_review_days);
            out.push_keyed(
                format!("{number}/review/{}/r{}", now.format("%Y%m%d"), revision + 1),
                Recipient::person(&owner),
                NoticeKind::Reminder {
                    deadline: DeadlineKind::Review,
                    due,
                },
            );
            case.set_deadline(deadline(DeadlineKind::Review, due, &owner));
        }
    }
    // Langvarig: serious absence that has lasted the weeks the
    // municipality decided (a criterion still holds).
    if case.is_open()
        && !case.long_term
        && config.long_term_weeks > 0
        && !case.active_criteria.is_empty()
        && now - case.opened_at >= Duration::weeks(i64::from(config.long_term_weeks))
    {
        case.long_term = true;
        changed = true;
        out.push(Recipient::person(&case.responsible), NoticeKind::LongTerm);
    }
    if changed {
        case.revision += 1;
    }
    out.notices
}

/// The evaluation prompt for an agreement whose evaluation date is near:
/// emitted once with the reminder, so the caller can add the numbers.
pub fn evaluation_prompt(case: &Case) -> Option<NoticeKind> {
    let a = case.current_agreement()?;
    if case.current_agreement_evaluated() {
        return None;
    }
    Some(NoticeKind::EvaluationDue {
        agreement: a.number,
        made: crate::domain::dates::school_date_utc(a.made_at),
        evaluation_date: a.evaluation_date,
    })
}
