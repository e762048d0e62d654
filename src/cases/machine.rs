//! The state machine: findings, commands and the clock in; notices out.
//!
//! Every function takes the time as an argument and returns the actions to
//! take; nothing here reads a clock or touches IO. A refused command leaves
//! the case untouched.

use super::command::Command;
use super::config::CaseConfig;
use super::model::*;
use crate::domain::roster::Level;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc, Weekday};
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
}

/// Where a notice goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "kebab-case")]
pub enum Recipient {
    /// A person in a role (a direct message).
    Person {
        /// Staff id or Matrix id.
        id: String,
        /// The role.
        role: Role,
    },
    /// The school's ressursteam room.
    Ressursteam {
        /// School id.
        school: String,
    },
}

impl Recipient {
    fn person(p: &Party) -> Recipient {
        Recipient::Person {
            id: p.id.clone(),
            role: p.role,
        }
    }
}

/// What a notice is about. The renderer turns it into text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "kebab-case")]
pub enum NoticeKind {
    /// Contact the parents (phase 2 starts, or starts again).
    ContactParents {
        /// The criteria that hold.
        criteria: Vec<String>,
        /// The absence includes invalid absence (tell parents at once).
        invalid_absence: bool,
        /// Some evidence is still unclassified.
        tentative: bool,
        /// New evidence after a "no concern" outcome.
        again: bool,
        /// When the parents must have been contacted.
        due: DateTime<Utc>,
    },
    /// Leadership is told about invalid absence.
    InvalidAbsenceToLeadership,
    /// A new criterion holds on an open case.
    NewEvidence {
        /// The criterion.
        criterion: String,
    },
    /// Concern: the avdelingsleder takes over and reports to the ressursteam.
    TakeOver,
    /// Call pupil and parents to a meeting.
    CallMeeting {
        /// By when.
        within_days: u32,
        /// Leadership must be present (mapping was incomplete).
        leadership_required: bool,
    },
    /// The case for the ressursteam's agenda.
    ToRessursteam {
        /// Why it comes up now.
        reason: RessursteamReason,
    },
    /// A deadline is near.
    Reminder {
        /// Which.
        deadline: DeadlineKind,
        /// When due.
        due: DateTime<Utc>,
    },
    /// A deadline was missed.
    Escalation {
        /// Which.
        deadline: DeadlineKind,
        /// When it was due.
        due: DateTime<Utc>,
        /// Who should have done it.
        owner: Party,
    },
    /// A samarbeidsavtale was made.
    AgreementMade {
        /// Its number.
        agreement: u32,
        /// The evaluation date.
        evaluation_date: NaiveDate,
    },
    /// Time to evaluate (numbers are added by the caller from records).
    EvaluationDue {
        /// The agreement.
        agreement: u32,
        /// The agreement's date.
        made: NaiveDate,
        /// The evaluation date.
        evaluation_date: NaiveDate,
    },
    /// Asked to take over as fagkoordinator.
    HandoffProposed {
        /// The agency.
        agency: Agency,
    },
    /// The fagkoordinator accepted.
    HandoffAccepted {
        /// The agency.
        agency: Agency,
        /// The new responsible person.
        person: String,
    },
    /// The proposed fagkoordinator declined.
    HandoffDeclined {
        /// The agency.
        agency: Agency,
    },
    /// The case was marked long-term.
    LongTerm,
    /// The case was closed.
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

/// Why the case goes to the ressursteam.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RessursteamReason {
    /// Reported by the avdelingsleder (phase 3).
    Reported,
    /// An evaluation was held.
    Evaluated,
    /// Phase 4: call a ressursteam meeting.
    Phase4,
    /// A deadline owned by the avdelingsleder was missed.
    Escalated,
}

/// One notice to deliver, with a stable idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Stable key: the same step never yields two deliveries.
    pub key: String,
    /// The case number.
    pub case: String,
    /// Where to.
    pub recipient: Recipient,
    /// What.
    pub kind: NoticeKind,
}

/// What the world should do after a step.
pub type Actions = Vec<Notice>;

/// The party escalations go to at `school`: the configured avdelingsleder,
/// else the first of leadership, else a role placeholder so that nobody is lost.
pub fn escalation_party(config: &CaseConfig, school: &str) -> Party {
    let staff = config.school(school);
    if let Some(a) = staff.avdelingsleder {
        return Party::new(a, Role::Avdelingsleder);
    }
    if let Some(l) = staff.ledelse.first() {
        return Party::new(l.clone(), Role::Ledelse);
    }
    Party::new(format!("rolle:avdelingsleder@{school}"), Role::Avdelingsleder)
}

fn oslo(date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    crate::domain::dates::oslo_instant(date.and_time(time))
}

fn is_school_day(d: NaiveDate) -> bool {
    !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

fn next_school_day(mut d: NaiveDate) -> NaiveDate {
    while !is_school_day(d) {
        d = d.succ_opt().unwrap_or(d);
    }
    d
}

/// The end of the school day `now` falls in, or of the next school day.
pub fn end_of_school_day(config: &CaseConfig, now: DateTime<Utc>) -> DateTime<Utc> {
    let today = crate::domain::dates::school_date_utc(now);
    if is_school_day(today) && now < oslo(today, config.day_end) {
        return oslo(today, config.day_end);
    }
    let next = next_school_day(today.succ_opt().unwrap_or(today));
    oslo(next, config.day_end)
}

/// "Within the first lesson": the end of the first lesson today if it is
/// still ahead; during the school day, one lesson's length from now (never
/// past the end of the day); after school, the next school day's first lesson.
pub fn within_first_lesson(config: &CaseConfig, now: DateTime<Utc>) -> DateTime<Utc> {
    let today = crate::domain::dates::school_date_utc(now);
    let lesson = Duration::minutes(i64::from(config.first_lesson_minutes));
    if is_school_day(today) {
        let start = oslo(today, config.day_start);
        let end = oslo(today, config.day_end);
        if now < start + lesson {
            return start + lesson;
        }
        if now < end {
            return (now + lesson).min(end);
        }
    }
    let next = next_school_day(today.succ_opt().unwrap_or(today));
    oslo(next, config.day_start) + lesson
}

/// The end of the school day `days` calendar days after `now` (moved to a school day).
pub fn days_later(config: &CaseConfig, now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    let today = crate::domain::dates::school_date_utc(now);
    let d = next_school_day(today + Duration::days(i64::from(days)));
    oslo(d, config.day_end)
}

fn date_deadline(config: &CaseConfig, date: NaiveDate) -> DateTime<Utc> {
    oslo(date, config.day_end)
}

/// Builds notices with keys derived from the case revision.
struct Out<'a> {
    case: &'a str,
    stem: String,
    notices: Vec<Notice>,
}

impl<'a> Out<'a> {
    fn new(case: &'a str, stem: String) -> Out<'a> {
        Out {
            case,
            stem,
            notices: Vec::new(),
        }
    }

    fn push(&mut self, recipient: Recipient, kind: NoticeKind) {
        let key = format!("{}/{}/{}", self.case, self.stem, self.notices.len());
        self.notices.push(Notice {
            key,
            case: self.case.to_string(),
            recipient,
            kind,
        });
    }

    fn push_keyed(&mut self, key: String, recipient: Recipient, kind: NoticeKind) {
        self.notices.push(Notice {
            key,
            case: self.case.to_string(),
            recipient,
            kind,
        });
    }
}

fn deadline(kind: DeadlineKind, due: DateTime<Utc>, owner: &Party) -> Deadline {
    Deadline {
        kind,
        due,
        owner: owner.clone(),
        reminded: false,
        escalated: false,
    }
}

impl Case {
    fn drop_deadlines(&mut self, kinds: &[DeadlineKind]) {
        self.deadlines.retain(|d| !kinds.contains(&d.kind));
    }

    fn set_deadline(&mut self, d: Deadline) {
        self.drop_deadlines(&[d.kind]);
        self.deadlines.push(d);
        self.deadlines.sort_by_key(|d| (d.due, d.kind));
    }

    fn contact_party(&self) -> Party {
        match &self.contact_teacher {
            Some(t) => Party::new(t.clone(), Role::Kontaktlaerer),
            None => self.escalation_to.clone(),
        }
    }

    /// Phase 2 deadlines and prompts for the criteria that hold.
    fn start_contact(&mut self, config: &CaseConfig, now: DateTime<Utc>, tentative: bool, again: bool, out: &mut Out) {
        self.phase = Phase::Contact;
        self.responsible = self.contact_party();
        self.deadlines.clear();
        let owner = self.responsible.clone();
        let contact_due = end_of_school_day(config, now);
        self.set_deadline(deadline(DeadlineKind::ContactParents, contact_due, &owner));
        let invalid = self.active_criteria.contains("invalid-absence");
        if invalid {
            let due = match self.pupil.level {
                Level::Barneskole => within_first_lesson(config, now),
                Level::Ungdomsskole => end_of_school_day(config, now),
            };
            self.set_deadline(deadline(DeadlineKind::NotifyInvalidAbsence, due, &owner));
        }
        out.push(
            Recipient::person(&owner),
            NoticeKind::ContactParents {
                criteria: self.active_criteria.iter().cloned().collect(),
                invalid_absence: invalid,
                tentative,
                again,
                due: contact_due,
            },
        );
        if invalid {
            out.push(
                Recipient::person(&self.escalation_to),
                NoticeKind::InvalidAbsenceToLeadership,
            );
        }
    }

    fn enter_mapping(&mut self, config: &CaseConfig, now: DateTime<Utc>, out: &mut Out) {
        self.phase = Phase::Mapping;
        self.responsible = self.escalation_to.clone();
        self.drop_deadlines(&[
            DeadlineKind::ContactParents,
            DeadlineKind::NotifyInvalidAbsence,
            DeadlineKind::Review,
        ]);
        let teacher = self.contact_party();
        self.set_deadline(deadline(
            DeadlineKind::FirstMeeting,
            days_later(config, now, config.first_meeting_days),
            &teacher,
        ));
        out.push(Recipient::person(&self.responsible), NoticeKind::TakeOver);
        out.push(
            Recipient::person(&teacher),
            NoticeKind::CallMeeting {
                within_days: config.first_meeting_days,
                leadership_required: false,
            },
        );
    }

    fn enter_further(&mut self, config: &CaseConfig, now: DateTime<Utc>, out: &mut Out) {
        self.phase = Phase::Further;
        self.drop_deadlines(&[
            DeadlineKind::ContactParents,
            DeadlineKind::NotifyInvalidAbsence,
            DeadlineKind::FirstMeeting,
            DeadlineKind::FollowUpMeeting,
            DeadlineKind::Review,
        ]);
        let owner = self.responsible.clone();
        self.set_deadline(deadline(
            DeadlineKind::Meeting,
            days_later(config, now, config.phase4_meeting_days),
            &owner,
        ));
        out.push(
            Recipient::Ressursteam {
                school: self.pupil.school.clone(),
            },
            NoticeKind::ToRessursteam {
                reason: RessursteamReason::Phase4,
            },
        );
        if config.long_term_phase4 && !self.long_term {
            self.long_term = true;
            out.push(Recipient::person(&self.responsible), NoticeKind::LongTerm);
        }
    }

    fn close(&mut self, reason: CloseReason, now: DateTime<Utc>, out: &mut Out) {
        self.status = Status::Closed { reason, at: now };
        self.deadlines.clear();
        self.pending_handoff = None;
        out.push(Recipient::person(&self.responsible), NoticeKind::Closed { reason });
        if self.phase >= Phase::Mapping {
            out.push(
                Recipient::Ressursteam {
                    school: self.pupil.school.clone(),
                },
                NoticeKind::Closed { reason },
            );
        }
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
        revision: 1,
    };
    let mut out = Out::new(number, "r1".into());
    case.start_contact(config, now, finding.tentative, false, &mut out);
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
            if case.phase == Phase::Monitoring {
                case.start_contact(config, now, event.tentative, true, &mut out);
                changed = true;
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

fn allowed(actor: &Party, command: &Command, roles: &[Role], why: &str) -> Result<(), CaseError> {
    if roles.contains(&actor.role) {
        Ok(())
    } else {
        Err(CaseError::NotAllowed {
            role: actor.role.norwegian(),
            action: command.norwegian(),
            why: why.to_string(),
        })
    }
}

/// Checks that `actor` may apply `command` to `case`.
pub fn authorize(case: &Case, actor: &Party, command: &Command) -> Result<(), CaseError> {
    use Role::*;
    let refuse = |why: String| CaseError::NotAllowed {
        role: actor.role.norwegian(),
        action: command.norwegian(),
        why,
    };
    if actor.id.trim().is_empty() {
        return Err(refuse("hvem som handler er ikke oppgitt".into()));
    }
    if actor.role == System {
        return Err(refuse("bare personer kan utføre steg i rutinen".into()));
    }
    // A role is a claim about this case: the contact teacher of this pupil,
    // the coordinator of this case.
    if actor.role == Kontaktlaerer
        && let Some(t) = &case.contact_teacher
        && *t != actor.id
    {
        return Err(refuse("du er ikke kontaktlærer for denne eleven".into()));
    }
    // The person proposed as coordinator acts as one when accepting or declining.
    let proposed = case.pending_handoff.as_ref().is_some_and(|h| h.person == actor.id)
        && matches!(command, Command::AcceptHandoff | Command::DeclineHandoff);
    if actor.role == Fagkoordinator && !proposed && case.coordinator.as_ref().is_none_or(|c| c.person != actor.id) {
        return Err(refuse("du er ikke fagkoordinator i denne saken".into()));
    }
    let staff = [Kontaktlaerer, Avdelingsleder, Ressursteam, Fagkoordinator, Ledelse];
    match command {
        Command::LogContact { outcome, .. } => {
            if case.phase == Phase::Contact
                && matches!(outcome, ContactOutcome::Bekymring | ContactOutcome::IngenBekymring)
            {
                allowed(
                    actor,
                    command,
                    &[Kontaktlaerer, Avdelingsleder, Ledelse],
                    "konklusjonen i fase 2 tas av kontaktlærer eller ledelsen",
                )
            } else {
                allowed(actor, command, &staff, "")
            }
        }
        Command::SetMeeting { kind, .. } | Command::MeetingHeld { kind, .. } => match kind {
            MeetingKind::Samarbeid => allowed(
                actor,
                command,
                &[Kontaktlaerer, Avdelingsleder, Ledelse, Fagkoordinator],
                "skolen ved kontaktlærer eller ledelsen kaller inn til samarbeidsmøter",
            ),
            MeetingKind::Ressursteam => allowed(
                actor,
                command,
                &[Avdelingsleder, Ledelse, Ressursteam, Fagkoordinator],
                "møter i ressursteamet kalles inn av ledelsen eller ressursteamet",
            ),
        },
        Command::MapBox { .. } | Command::AddMeasure { .. } => allowed(actor, command, &staff, ""),
        Command::CreateAgreement { .. } => allowed(
            actor,
            command,
            &[Kontaktlaerer, Avdelingsleder, Ledelse, Fagkoordinator],
            "avtalen lages av kontaktlærer, ledelsen eller fagkoordinator i møtet",
        ),
        Command::Evaluate { .. } => allowed(
            actor,
            command,
            &[Avdelingsleder, Ledelse, Fagkoordinator],
            "avdelingsleder har ansvaret for evalueringen i fase 3",
        ),
        Command::ChangePhase { to } => match to {
            Phase::Monitoring | Phase::Contact | Phase::Mapping => allowed(
                actor,
                command,
                &[Kontaktlaerer, Avdelingsleder, Ledelse],
                "fase 2 og 3 styres av kontaktlærer og avdelingsleder",
            ),
            Phase::Further => allowed(
                actor,
                command,
                &[Avdelingsleder, Ledelse, Ressursteam],
                "overgang til fase 4 besluttes av avdelingsleder, ledelsen eller ressursteamet",
            ),
        },
        Command::ReportToRessursteam => allowed(
            actor,
            command,
            &[Avdelingsleder, Ledelse],
            "avdelingsleder melder saken til ressursteamet",
        ),
        Command::Refer { .. } => allowed(
            actor,
            command,
            &[Avdelingsleder, Ledelse, Ressursteam, Fagkoordinator],
            "henvisninger besluttes av ledelsen, ressursteamet eller fagkoordinator",
        ),
        Command::ProposeHandoff { .. } => allowed(
            actor,
            command,
            &[Avdelingsleder, Ledelse, Ressursteam],
            "hvem som blir fagkoordinator avgjøres i ressursteamet",
        ),
        Command::AcceptHandoff => match &case.pending_handoff {
            Some(h) if h.person == actor.id => Ok(()),
            Some(_) => Err(refuse("bare den som er foreslått kan overta".into())),
            None => Err(CaseError::Precondition("ingen overtakelse er foreslått i saken".into())),
        },
        Command::DeclineHandoff => match &case.pending_handoff {
            Some(h) if h.person == actor.id || h.by.id == actor.id => Ok(()),
            Some(_) => Err(refuse("bare den foreslåtte eller den som foreslo kan avslå".into())),
            None => Err(CaseError::Precondition("ingen overtakelse er foreslått i saken".into())),
        },
        Command::MarkLongTerm => allowed(
            actor,
            command,
            &[Avdelingsleder, Ledelse, Ressursteam, Fagkoordinator],
            "",
        ),
        Command::NoteSpecialOutcome { .. } => allowed(
            actor,
            command,
            &[Avdelingsleder, Ledelse],
            "særskilte utfall besluttes av skolens ledelse",
        ),
        Command::Close { .. } => {
            let mut roles = vec![Avdelingsleder, Ledelse];
            if matches!(case.phase, Phase::Contact | Phase::Monitoring) {
                roles.push(Kontaktlaerer);
            }
            if case.phase == Phase::Further {
                roles.push(Fagkoordinator);
            }
            allowed(
                actor,
                command,
                &roles,
                "etter fase 2 avsluttes saken av avdelingsleder, ledelsen eller fagkoordinator",
            )
        }
    }
}

fn need_phase(case: &Case, command: &Command, phases: &[Phase]) -> Result<(), CaseError> {
    if phases.contains(&case.phase) {
        Ok(())
    } else {
        Err(CaseError::WrongPhase {
            action: command.norwegian(),
            phase: case.phase.norwegian(),
        })
    }
}

fn non_empty(what: &str, s: &str) -> Result<(), CaseError> {
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
    let today = crate::domain::dates::school_date_utc(now);
    match command {
        Command::LogContact {
            with,
            at,
            channel,
            outcome,
        } => {
            if *at > now + Duration::minutes(5) {
                return Err(CaseError::Precondition("kontakten kan ikke være i fremtiden".into()));
            }
            case.contacts.push(ContactEntry {
                by: actor.clone(),
                with: *with,
                at: *at,
                channel: *channel,
                outcome: *outcome,
            });
            if outcome.reached() && *with != Contacted::Elev {
                case.drop_deadlines(&[DeadlineKind::NotifyInvalidAbsence]);
            }
            if case.phase == Phase::Contact {
                match outcome {
                    ContactOutcome::IngenBekymring => {
                        case.phase = Phase::Monitoring;
                        case.responsible = case.contact_party();
                        case.deadlines.clear();
                        let owner = case.responsible.clone();
                        case.set_deadline(deadline(
                            DeadlineKind::Review,
                            days_later(config, now, config.monitoring_review_days),
                            &owner,
                        ));
                    }
                    ContactOutcome::Bekymring => case.enter_mapping(config, now, out),
                    ContactOutcome::Naadd | ContactOutcome::IkkeNadd => {}
                }
            }
        }
        Command::SetMeeting {
            kind,
            at,
            leadership_present,
        } => {
            need_phase(case, command, &[Phase::Mapping, Phase::Further])?;
            if *kind == MeetingKind::Samarbeid
                && !leadership_present
                && case.deadlines.iter().any(|d| d.kind == DeadlineKind::FollowUpMeeting)
            {
                return Err(CaseError::Precondition(
                    "kartleggingen er ikke ferdig, så det nye møtet skal ha ledelsen til stede".into(),
                ));
            }
            case.meetings.push(Meeting {
                kind: *kind,
                at: *at,
                held: false,
                leadership_present: *leadership_present,
                mapping_complete: None,
            });
        }
        Command::MeetingHeld {
            kind,
            at,
            leadership_present,
            mapping_complete,
            next_meeting,
        } => {
            need_phase(case, command, &[Phase::Mapping, Phase::Further])?;
            let followup = case.deadlines.iter().any(|d| d.kind == DeadlineKind::FollowUpMeeting);
            if *kind == MeetingKind::Samarbeid && followup && !leadership_present {
                return Err(CaseError::Precondition(
                    "kartleggingen var ikke ferdig, så dette møtet skulle hatt ledelsen til stede".into(),
                ));
            }
            if case.phase == Phase::Further && next_meeting.is_none() {
                return Err(CaseError::Precondition(
                    "i fase 4 skal tidspunktet for neste møte settes på hvert møte".into(),
                ));
            }
            if let Some(n) = next_meeting
                && *n <= *at
            {
                return Err(CaseError::Precondition("neste møte må være etter dette møtet".into()));
            }
            // A planned meeting at the same time is now held; otherwise add it.
            match case
                .meetings
                .iter_mut()
                .find(|m| !m.held && m.kind == *kind && m.at == *at)
            {
                Some(m) => {
                    m.held = true;
                    m.leadership_present = *leadership_present;
                    m.mapping_complete = Some(*mapping_complete);
                }
                None => case.meetings.push(Meeting {
                    kind: *kind,
                    at: *at,
                    held: true,
                    leadership_present: *leadership_present,
                    mapping_complete: Some(*mapping_complete),
                }),
            }
            if *kind == MeetingKind::Ressursteam && case.phase == Phase::Mapping {
                case.reported_to_ressursteam = true;
            }
            let teacher = case.contact_party();
            let owner = case.responsible.clone();
            case.drop_deadlines(&[
                DeadlineKind::FirstMeeting,
                DeadlineKind::FollowUpMeeting,
                DeadlineKind::Meeting,
            ]);
            if let Some(n) = next_meeting {
                case.meetings.push(Meeting {
                    kind: *kind,
                    at: *n,
                    held: false,
                    leadership_present: false,
                    mapping_complete: None,
                });
                case.set_deadline(deadline(DeadlineKind::Meeting, *n, &owner));
            }
            let awaiting_evaluation = case.current_agreement().is_some() && !case.current_agreement_evaluated();
            if *kind == MeetingKind::Samarbeid && !mapping_complete {
                case.set_deadline(deadline(
                    DeadlineKind::FollowUpMeeting,
                    days_later(config, now, config.followup_meeting_days),
                    &teacher,
                ));
                out.push(
                    Recipient::person(&teacher),
                    NoticeKind::CallMeeting {
                        within_days: config.followup_meeting_days,
                        leadership_required: true,
                    },
                );
            } else if *kind == MeetingKind::Samarbeid && (!awaiting_evaluation || case.phase == Phase::Further) {
                // The routine: a new agreement at every meeting in phase 4.
                case.set_deadline(deadline(
                    DeadlineKind::Agreement,
                    days_later(config, now, config.agreement_days),
                    &owner,
                ));
            }
            if case.deadlines.is_empty() {
                // A ressursteam meeting in phase 3 before any agreement: the
                // pupil meeting is still owed.
                case.set_deadline(deadline(
                    DeadlineKind::FirstMeeting,
                    days_later(config, now, config.first_meeting_days),
                    &teacher,
                ));
            }
        }
        Command::MapBox {
            circle_box,
            resources,
            risks,
        } => {
            need_phase(case, command, &[Phase::Mapping, Phase::Further])?;
            let i = usize::from(circle_box.number()) - 1;
            let m = &mut case.mapping[i];
            m.resources
                .extend(resources.iter().filter(|s| !s.trim().is_empty()).cloned());
            m.risks.extend(risks.iter().filter(|s| !s.trim().is_empty()).cloned());
        }
        Command::AddMeasure {
            circle_box,
            text,
            responsible,
            due,
            at_home,
        } => {
            need_phase(case, command, &[Phase::Mapping, Phase::Further])?;
            non_empty("tiltaket", text)?;
            non_empty("ansvarlig for tiltaket", responsible)?;
            if *due < today {
                return Err(CaseError::Precondition(
                    "fristen for tiltaket har allerede gått ut".into(),
                ));
            }
            case.measure_count += 1;
            case.measures.push(Measure {
                number: case.measure_count,
                circle_box: *circle_box,
                text: text.trim().to_string(),
                responsible: responsible.trim().to_string(),
                due: *due,
                at_home: *at_home,
            });
        }
        Command::CreateAgreement {
            place,
            present,
            goal,
            sub_goals,
            plan_b,
            plan_b_responsible,
            valid_days,
            evaluation_date,
        } => {
            need_phase(case, command, &[Phase::Mapping, Phase::Further])?;
            non_empty("målet for samarbeidet", goal)?;
            non_empty("plan B", plan_b)?;
            non_empty("ansvarlig for plan B", plan_b_responsible)?;
            if case.measures.is_empty() {
                return Err(CaseError::Precondition(
                    "avtalen trenger tiltak: legg til tiltak i tiltakssirkelen først".into(),
                ));
            }
            if !case.measures.iter().any(|m| m.at_home) || !case.measures.iter().any(|m| !m.at_home) {
                return Err(CaseError::Precondition(
                    "avtalen skal ha tiltak både på skolen og hjemme".into(),
                ));
            }
            if sub_goals.is_empty() {
                return Err(CaseError::Precondition("avtalen trenger minst ett delmål".into()));
            }
            for (i, g) in sub_goals.iter().enumerate() {
                non_empty(&format!("delmål {}", i + 1), &g.text)?;
                if g.weeks == 0 {
                    return Err(CaseError::Precondition(format!("delmål {} mangler varighet", i + 1)));
                }
                if let Some(m) = g
                    .measures
                    .iter()
                    .find(|m| !case.measures.iter().any(|x| x.number == **m))
                {
                    return Err(CaseError::Precondition(format!(
                        "delmål {} viser til tiltak {m}, som ikke finnes blant tiltakene til denne avtalen",
                        i + 1
                    )));
                }
            }
            let valid = valid_days.unwrap_or(config.agreement_valid_days);
            if valid == 0 {
                return Err(CaseError::Precondition("avtalen må gjelde minst én dag".into()));
            }
            let evaluation = evaluation_date.unwrap_or(today + Duration::days(i64::from(config.evaluation_days)));
            if evaluation <= today {
                return Err(CaseError::Precondition("evalueringsdatoen må være etter i dag".into()));
            }
            let number = case.agreements.len() as u32 + 1;
            case.agreements.push(Agreement {
                number,
                made_at: now,
                place: place.trim().to_string(),
                present: present.clone(),
                goal: goal.trim().to_string(),
                sub_goals: sub_goals
                    .iter()
                    .map(|g| SubGoal {
                        text: g.text.trim().to_string(),
                        weeks: g.weeks,
                        measures: g.measures.clone(),
                    })
                    .collect(),
                measures: std::mem::take(&mut case.measures),
                plan_b: plan_b.trim().to_string(),
                plan_b_responsible: plan_b_responsible.trim().to_string(),
                valid_until: today + Duration::days(i64::from(valid)),
                evaluation_date: evaluation,
            });
            case.drop_deadlines(&[DeadlineKind::Agreement, DeadlineKind::FirstMeeting]);
            let owner = case.responsible.clone();
            case.set_deadline(deadline(
                DeadlineKind::Evaluation,
                date_deadline(config, evaluation),
                &owner,
            ));
            out.push(
                Recipient::person(&owner),
                NoticeKind::AgreementMade {
                    agreement: number,
                    evaluation_date: evaluation,
                },
            );
        }
        Command::Evaluate { outcome } => {
            need_phase(case, command, &[Phase::Mapping, Phase::Further])?;
            let Some(agreement) = case.current_agreement().map(|a| a.number) else {
                return Err(CaseError::Precondition(
                    "det finnes ingen samarbeidsavtale å evaluere".into(),
                ));
            };
            if case.current_agreement_evaluated() {
                return Err(CaseError::Precondition(format!(
                    "samarbeidsavtale {agreement} er allerede evaluert; lag en ny avtale først"
                )));
            }
            case.evaluations.push(Evaluation {
                agreement,
                at: now,
                by: actor.clone(),
                outcome: *outcome,
            });
            case.drop_deadlines(&[DeadlineKind::Evaluation]);
            out.push(
                Recipient::Ressursteam {
                    school: case.pupil.school.clone(),
                },
                NoticeKind::ToRessursteam {
                    reason: RessursteamReason::Evaluated,
                },
            );
            match outcome {
                EvaluationOutcome::Resolved => case.close(CloseReason::Lost, now, out),
                EvaluationOutcome::NewAgreement => {
                    let owner = case.responsible.clone();
                    case.set_deadline(deadline(
                        DeadlineKind::Agreement,
                        days_later(config, now, config.agreement_days),
                        &owner,
                    ));
                }
                EvaluationOutcome::Phase4 => {
                    if case.phase == Phase::Further {
                        // Phase 4 continues: a new meeting and a new agreement.
                        let owner = case.responsible.clone();
                        case.set_deadline(deadline(
                            DeadlineKind::Meeting,
                            days_later(config, now, config.phase4_meeting_days),
                            &owner,
                        ));
                    } else {
                        case.enter_further(config, now, out);
                    }
                }
            }
        }
        Command::ChangePhase { to } => {
            let from = case.phase;
            match (from, to) {
                (Phase::Monitoring, Phase::Contact) => case.start_contact(config, now, false, true, out),
                (Phase::Contact | Phase::Monitoring, Phase::Mapping) => case.enter_mapping(config, now, out),
                (Phase::Mapping, Phase::Further) => case.enter_further(config, now, out),
                _ => {
                    return Err(CaseError::Precondition(format!(
                        "kan ikke gå fra {} til {}: rutinen går fremover, og en sak som er løst avsluttes",
                        from.norwegian(),
                        to.norwegian()
                    )));
                }
            }
        }
        Command::ReportToRessursteam => {
            need_phase(case, command, &[Phase::Mapping, Phase::Further])?;
            case.reported_to_ressursteam = true;
            out.push(
                Recipient::Ressursteam {
                    school: case.pupil.school.clone(),
                },
                NoticeKind::ToRessursteam {
                    reason: RessursteamReason::Reported,
                },
            );
        }
        Command::Refer {
            agency,
            decided,
            sent,
            pedagogisk_rapport,
            legeerklaering_needed,
        } => {
            need_phase(case, command, &[Phase::Mapping, Phase::Further])?;
            if *agency == Agency::Skole {
                return Err(CaseError::Precondition("skolen kan ikke henvise til seg selv".into()));
            }
            if *agency == Agency::Ppt && !pedagogisk_rapport {
                return Err(CaseError::Precondition(
                    "en henvisning til PP-tjenesten trenger en pedagogisk rapport som beskriver tiltakene som er prøvd"
                        .into(),
                ));
            }
            if let Some(s) = sent
                && s < decided
            {
                return Err(CaseError::Precondition(
                    "henvisningen kan ikke sendes før den er besluttet".into(),
                ));
            }
            case.referrals.push(Referral {
                agency: *agency,
                decided: *decided,
                sent: *sent,
                pedagogisk_rapport: *pedagogisk_rapport,
                legeerklaering_needed: *legeerklaering_needed,
            });
        }
        Command::ProposeHandoff { agency, person } => {
            need_phase(case, command, &[Phase::Further])?;
            non_empty("hvem som skal overta", person)?;
            if case.coordinator.as_ref().is_some_and(|c| c.person == *person) {
                return Err(CaseError::Precondition(format!("{person} er allerede fagkoordinator")));
            }
            let to = Party::new(person.trim(), Role::Fagkoordinator);
            case.pending_handoff = Some(Handoff {
                agency: *agency,
                person: to.id.clone(),
                by: actor.clone(),
                at: now,
            });
            case.set_deadline(deadline(
                DeadlineKind::HandoffAcceptance,
                days_later(config, now, config.handoff_accept_days),
                &to,
            ));
            out.push(Recipient::person(&to), NoticeKind::HandoffProposed { agency: *agency });
        }
        Command::AcceptHandoff => {
            let Some(h) = case.pending_handoff.take() else {
                return Err(CaseError::Precondition("ingen overtakelse er foreslått i saken".into()));
            };
            let before = case.responsible.clone();
            let after = Party::new(h.person.clone(), Role::Fagkoordinator);
            case.coordinator = Some(Coordinator {
                agency: h.agency,
                person: h.person.clone(),
                since: now,
            });
            case.responsible = after.clone();
            case.drop_deadlines(&[DeadlineKind::HandoffAcceptance]);
            // What the school owned as coordinator moves with the role.
            for d in &mut case.deadlines {
                if d.owner == before {
                    d.owner = after.clone();
                }
            }
            let accepted = NoticeKind::HandoffAccepted {
                agency: h.agency,
                person: h.person,
            };
            out.push(Recipient::person(&before), accepted.clone());
            out.push(
                Recipient::Ressursteam {
                    school: case.pupil.school.clone(),
                },
                accepted,
            );
        }
        Command::DeclineHandoff => {
            let Some(h) = case.pending_handoff.take() else {
                return Err(CaseError::Precondition("ingen overtakelse er foreslått i saken".into()));
            };
            case.drop_deadlines(&[DeadlineKind::HandoffAcceptance]);
            out.push(
                Recipient::person(&h.by),
                NoticeKind::HandoffDeclined { agency: h.agency },
            );
        }
        Command::MarkLongTerm => {
            if case.long_term {
                return Err(CaseError::Precondition(
                    "saken er allerede markert som langvarig".into(),
                ));
            }
            case.long_term = true;
            out.push(Recipient::person(&case.responsible), NoticeKind::LongTerm);
        }
        Command::NoteSpecialOutcome { outcome } => {
            need_phase(case, command, &[Phase::Further])?;
            let missing = outcome.missing();
            if !missing.is_empty() {
                return Err(CaseError::Precondition(format!(
                    "{} krever {}",
                    outcome.norwegian(),
                    missing.join(", ")
                )));
            }
            case.special_outcomes.push(outcome.clone());
        }
        Command::Close { reason } => {
            if *reason == CloseReason::SaerskiltUtfall && case.special_outcomes.is_empty() {
                return Err(CaseError::Precondition(
                    "ingen særskilt utfall er notert i saken".into(),
                ));
            }
            case.close(*reason, now, out);
        }
    }
    Ok(())
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
            case.close(CloseReason::IngenBekymring, now, &mut out);
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
    if case.is_open()
        && !case.long_term
        && config.long_term_weeks > 0
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
