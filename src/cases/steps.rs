//! One function per person-driven step of the routine. [`super::machine::apply`]
//! checks permission and dispatches here; each step either changes the case
//! and says what to notify, or refuses with a reason and changes nothing
//! (the caller works on a copy).

use super::calendar::{date_deadline, days_later};
use super::command::Command;
use super::config::CaseConfig;
use super::machine::{CaseError, deadline, need_phase, non_empty};
use super::model::*;
use super::notice::{NoticeKind, Out, Recipient, RessursteamReason};
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// What every step knows besides the case.
pub(super) struct Ctx<'a> {
    /// Who acts.
    pub actor: &'a Party,
    /// The step.
    pub command: &'a Command,
    /// The time.
    pub now: DateTime<Utc>,
    /// The school date of `now`.
    pub today: NaiveDate,
    /// The case settings.
    pub config: &'a CaseConfig,
}

/// `LogContact`.
pub(super) fn log_contact(case: &mut Case, cx: &Ctx, out: &mut Out) -> Result<(), CaseError> {
    let Command::LogContact {
        with,
        at,
        channel,
        outcome,
    } = cx.command
    else {
        unreachable!("dispatched by variant")
    };
    let (actor, now, config) = (cx.actor, cx.now, cx.config);
    let at = at.unwrap_or(now);
    if at > now + Duration::minutes(5) {
        return Err(CaseError::Precondition("kontakten kan ikke være i fremtiden".into()));
    }
    case.contacts.push(ContactEntry {
        by: actor.clone(),
        with: *with,
        at,
        channel: *channel,
        outcome: *outcome,
    });
    if outcome.reached() && *with != Contacted::Pupil {
        case.drop_deadlines(&[DeadlineKind::NotifyInvalidAbsence]);
    }
    if case.phase == Phase::Contact {
        match outcome {
            ContactOutcome::NoConcern => {
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
            ContactOutcome::Concern => case.enter_mapping(config, now, out),
            ContactOutcome::Reached | ContactOutcome::NotReached => {}
        }
    }
    Ok(())
}

/// `SetMeeting`.
pub(super) fn set_meeting(case: &mut Case, cx: &Ctx, _out: &mut Out) -> Result<(), CaseError> {
    let Command::SetMeeting {
        kind,
        at,
        leadership_present,
    } = cx.command
    else {
        unreachable!("dispatched by variant")
    };
    let command = cx.command;
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
    Ok(())
}

/// `MeetingHeld`.
pub(super) fn meeting_held(case: &mut Case, cx: &Ctx, out: &mut Out) -> Result<(), CaseError> {
    let Command::MeetingHeld {
        kind,
        at,
        leadership_present,
        mapping_complete,
        next_meeting,
    } = cx.command
    else {
        unreachable!("dispatched by variant")
    };
    let (command, now, config) = (cx.command, cx.now, cx.config);
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
    Ok(())
}

/// `MapBox`.
pub(super) fn map_box(case: &mut Case, cx: &Ctx, _out: &mut Out) -> Result<(), CaseError> {
    let Command::MapBox {
        circle_box,
        resources,
        risks,
    } = cx.command
    else {
        unreachable!("dispatched by variant")
    };
    let command = cx.command;
    need_phase(case, command, &[Phase::Mapping, Phase::Further])?;
    let i = usize::from(circle_box.number()) - 1;
    let m = &mut case.mapping[i];
    m.resources
        .extend(resources.iter().filter(|s| !s.trim().is_empty()).cloned());
    m.risks.extend(risks.iter().filter(|s| !s.trim().is_empty()).cloned());
    Ok(())
}

/// `AddMeasure`.
pub(super) fn add_measure(case: &mut Case, cx: &Ctx, _out: &mut Out) -> Result<(), CaseError> {
    let Command::AddMeasure {
        circle_box,
        text,
        responsible,
        due,
        at_home,
    } = cx.command
    else {
        unreachable!("dispatched by variant")
    };
    let (command, today) = (cx.command, cx.today);
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
    Ok(())
}

/// `CreateAgreement`.
pub(super) fn create_agreement(case: &mut Case, cx: &Ctx, out: &mut Out) -> Result<(), CaseError> {
    let Command::CreateAgreement {
        place,
        present,
        goal,
        sub_goals,
        plan_b,
        plan_b_responsible,
        valid_days,
        evaluation_date,
    } = cx.command
    else {
        unreachable!("dispatched by variant")
    };
    let (command, now, today, config) = (cx.command, cx.now, cx.today, cx.config);
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
    Ok(())
}

/// `Evaluate`.
pub(super) fn evaluate(case: &mut Case, cx: &Ctx, out: &mut Out) -> Result<(), CaseError> {
    let Command::Evaluate { outcome } = cx.command else {
        unreachable!("dispatched by variant")
    };
    let (command, actor, now, config) = (cx.command, cx.actor, cx.now, cx.config);
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
        EvaluationOutcome::Resolved => case.close(CloseReason::Resolved, now, out),
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
    Ok(())
}

/// `ChangePhase`.
pub(super) fn change_phase(case: &mut Case, cx: &Ctx, out: &mut Out) -> Result<(), CaseError> {
    let Command::ChangePhase { to } = cx.command else {
        unreachable!("dispatched by variant")
    };
    let (now, config) = (cx.now, cx.config);
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
    Ok(())
}

/// `ReportToRessursteam`.
pub(super) fn report_to_ressursteam(case: &mut Case, cx: &Ctx, out: &mut Out) -> Result<(), CaseError> {
    let command = cx.command;
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
    Ok(())
}

/// `Refer`.
pub(super) fn refer(case: &mut Case, cx: &Ctx, _out: &mut Out) -> Result<(), CaseError> {
    let Command::Refer {
        agency,
        decided,
        sent,
        pedagogisk_rapport,
        legeerklaering_needed,
    } = cx.command
    else {
        unreachable!("dispatched by variant")
    };
    let command = cx.command;
    need_phase(case, command, &[Phase::Mapping, Phase::Further])?;
    if *agency == Agency::Skole {
        return Err(CaseError::Precondition("skolen kan ikke henvise til seg selv".into()));
    }
    if *agency == Agency::Ppt && !pedagogisk_rapport {
        return Err(CaseError::Precondition(
            "en henvisning til PP-tjenesten trenger en pedagogisk rapport som beskriver tiltakene som er prøvd".into(),
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
    Ok(())
}

/// `ProposeHandoff`.
pub(super) fn propose_handoff(case: &mut Case, cx: &Ctx, out: &mut Out) -> Result<(), CaseError> {
    let Command::ProposeHandoff { agency, person } = cx.command else {
        unreachable!("dispatched by variant")
    };
    let (command, actor, now, config) = (cx.command, cx.actor, cx.now, cx.config);
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
    Ok(())
}

/// `AcceptHandoff`.
pub(super) fn accept_handoff(case: &mut Case, cx: &Ctx, out: &mut Out) -> Result<(), CaseError> {
    let now = cx.now;
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
    Ok(())
}

/// `DeclineHandoff`.
pub(super) fn decline_handoff(case: &mut Case, _cx: &Ctx, out: &mut Out) -> Result<(), CaseError> {
    let Some(h) = case.pending_handoff.take() else {
        return Err(CaseError::Precondition("ingen overtakelse er foreslått i saken".into()));
    };
    case.drop_deadlines(&[DeadlineKind::HandoffAcceptance]);
    out.push(
        Recipient::person(&h.by),
        NoticeKind::HandoffDeclined { agency: h.agency },
    );
    Ok(())
}

/// `MarkLongTerm`.
pub(super) fn mark_long_term(case: &mut Case, _cx: &Ctx, out: &mut Out) -> Result<(), CaseError> {
    if case.long_term {
        return Err(CaseError::Precondition(
            "saken er allerede markert som langvarig".into(),
        ));
    }
    case.long_term = true;
    out.push(Recipient::person(&case.responsible), NoticeKind::LongTerm);
    Ok(())
}

/// `NoteSpecialOutcome`.
pub(super) fn note_special_outcome(case: &mut Case, cx: &Ctx, _out: &mut Out) -> Result<(), CaseError> {
    let Command::NoteSpecialOutcome { outcome } = cx.command else {
        unreachable!("dispatched by variant")
    };
    let command = cx.command;
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
    Ok(())
}

/// `Close`.
pub(super) fn close(case: &mut Case, cx: &Ctx, out: &mut Out) -> Result<(), CaseError> {
    let Command::Close { reason } = cx.command else {
        unreachable!("dispatched by variant")
    };
    let now = cx.now;
    if *reason == CloseReason::SpecialOutcome && case.special_outcomes.is_empty() {
        return Err(CaseError::Precondition(
            "ingen særskilt utfall er notert i saken".into(),
        ));
    }
    case.close(*reason, now, out);
    Ok(())
}
