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
    if case.triage {
        // Someone called about a backlog case: it is no longer a list item,
        // and phase 2 runs from here.
        case.triage = false;
        case.drop_deadlines(&[DeadlineKind::Triage]);
        case.responsible = case.contact_party();
        if !matches!(outcome, ContactOutcome::Concern | ContactOutcome::NoConcern) {
            let owner = case.responsible.clone();
            case.set_deadline(deadline(
                DeadlineKind::ContactParents,
                super::calendar::end_of_school_day(config, now),
                &owner,
            ));
        }
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
pub(super) fn set_meeting(case: &mut Case, cx: &Ctx, out: &mut Out) -> Result<(), CaseError> {
    let Command::SetMeeting {
        kind,
        at,
        leadership_present,
        place,
        participants,
    } = cx.command
    else {
        unreachable!("dispatched by variant")
    };
    need_phase(case, cx.command, &[Phase::Mapping, Phase::Further])?;
    let leadership = *leadership_present || participants.iter().any(|p| p.role.is_leadership());
    if *kind == MeetingKind::Samarbeid
        && !leadership
        && case.deadlines.iter().any(|d| d.kind == DeadlineKind::FollowUpMeeting)
    {
        return Err(CaseError::Precondition(
            "kartleggingen er ikke ferdig, så det nye møtet skal ha ledelsen til stede (skriv «ledelsen»)".into(),
        ));
    }
    // A meeting already planned for the same time is the same meeting.
    let number = match case
        .meetings
        .iter_mut()
        .find(|m| !m.held && m.kind == *kind && m.at == *at)
    {
        Some(m) => {
            m.leadership_present |= *leadership_present;
            if place.is_some() {
                m.place = place.clone();
            }
            m.participants.extend(participants.iter().cloned());
            m.number
        }
        None => {
            let number = case.meetings.len() as u32 + 1;
            case.meetings.push(Meeting {
                number,
                kind: *kind,
                at: *at,
                place: place.as_ref().map(|p| p.trim().to_string()).filter(|p| !p.is_empty()),
                participants: participants.clone(),
                held: false,
                leadership_present: *leadership_present,
                mapping_complete: None,
                decisions: Vec::new(),
                next_at: None,
                recorded_by: None,
                copy_to_parents: None,
            });
            number
        }
    };
    out.push(
        Recipient::Ressursteam {
            school: case.pupil.school.clone(),
        },
        NoticeKind::MeetingSet { meeting: number },
    );
    Ok(())
}

/// The meeting a step about "the meeting" means, or why there is none.
fn meeting_of(case: &Case, number: Option<u32>, now: chrono::DateTime<chrono::Utc>) -> Result<usize, CaseError> {
    case.meeting_index(number, now).ok_or_else(|| {
        CaseError::Precondition(match number {
            Some(n) => format!("saken har ikke noe møte nr. {n}"),
            None => "saken har ikke noe møte ennå: sett et møte først (!møte)".into(),
        })
    })
}

/// `AddParticipants`.
pub(super) fn add_participants(case: &mut Case, cx: &Ctx, _out: &mut Out) -> Result<(), CaseError> {
    let Command::AddParticipants { meeting, participants } = cx.command else {
        unreachable!("dispatched by variant")
    };
    if participants.is_empty() {
        return Err(CaseError::Precondition("hvem som er til stede mangler".into()));
    }
    let i = meeting_of(case, *meeting, cx.now)?;
    let m = &mut case.meetings[i];
    for p in participants {
        if !m.participants.contains(p) || p.who.is_none() {
            m.participants.push(p.clone());
        }
    }
    m.leadership_present |= m.participants.iter().any(|p| p.role.is_leadership());
    Ok(())
}

/// `RecordDecision`.
pub(super) fn record_decision(case: &mut Case, cx: &Ctx, _out: &mut Out) -> Result<(), CaseError> {
    let Command::RecordDecision { meeting, text } = cx.command else {
        unreachable!("dispatched by variant")
    };
    non_empty("vedtaket", text)?;
    let i = meeting_of(case, *meeting, cx.now)?;
    case.meetings[i].decisions.push(text.trim().to_string());
    Ok(())
}

/// `MinutesSent`.
pub(super) fn minutes_sent(case: &mut Case, cx: &Ctx, _out: &mut Out) -> Result<(), CaseError> {
    let Command::MinutesSent { meeting, date } = cx.command else {
        unreachable!("dispatched by variant")
    };
    let i = match meeting {
        Some(_) => meeting_of(case, *meeting, cx.now)?,
        None => case
            .meetings
            .iter()
            .enumerate()
            .filter(|(_, m)| m.held)
            .max_by_key(|(_, m)| m.at)
            .map(|(i, _)| i)
            .ok_or_else(|| CaseError::Precondition("ingen møter er holdt, så det finnes ikke noe referat".into()))?,
    };
    let date = date.unwrap_or(cx.today);
    let m = &mut case.meetings[i];
    if !m.held {
        return Err(CaseError::Precondition(format!(
            "møte nr. {} er ikke holdt ennå, så referatet finnes ikke",
            m.number
        )));
    }
    if date < crate::domain::dates::school_date_utc(m.at) {
        return Err(CaseError::Precondition(
            "referatet kan ikke være sendt før møtet".into(),
        ));
    }
    m.copy_to_parents = Some(date);
    Ok(())
}

/// `NotePupilView`.
pub(super) fn note_pupil_view(case: &mut Case, cx: &Ctx, _out: &mut Out) -> Result<(), CaseError> {
    let Command::NotePupilView { stage, text, took_part } = cx.command else {
        unreachable!("dispatched by variant")
    };
    non_empty("elevens syn", text)?;
    case.pupil_views.push(PupilView {
        stage: *stage,
        at: cx.now,
        text: text.trim().to_string(),
        took_part: *took_part,
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
    let planned = case
        .meetings
        .iter()
        .position(|m| !m.held && m.kind == *kind && m.at == *at);
    let leadership = *leadership_present || planned.is_some_and(|i| case.meetings[i].has_leadership());
    let followup = case.deadlines.iter().any(|d| d.kind == DeadlineKind::FollowUpMeeting);
    if *kind == MeetingKind::Samarbeid && followup && !leadership {
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
    let i = match planned {
        Some(i) => i,
        None => {
            case.meetings.push(Meeting {
                number: case.meetings.len() as u32 + 1,
                kind: *kind,
                at: *at,
                place: None,
                participants: Vec::new(),
                held: false,
                leadership_present: false,
                mapping_complete: None,
                decisions: Vec::new(),
                next_at: None,
                recorded_by: None,
                copy_to_parents: None,
            });
            case.meetings.len() - 1
        }
    };
    let number = {
        let m = &mut case.meetings[i];
        m.held = true;
        m.leadership_present = leadership;
        m.mapping_complete = Some(*mapping_complete);
        m.next_at = *next_meeting;
        m.recorded_by = Some(cx.actor.clone());
        m.number
    };
    if *kind == MeetingKind::Ressursteam && case.phase == Phase::Mapping {
        case.reported_to_ressursteam = true;
    }
    let teacher = case.contact_party();
    // The school calls and chairs the meetings, also after a coordinator
    // took over; the agreement is the responsible person's to see to.
    let school = case.school_party();
    let owner = case.responsible.clone();
    case.drop_deadlines(&[
        DeadlineKind::FirstMeeting,
        DeadlineKind::FollowUpMeeting,
        DeadlineKind::Meeting,
    ]);
    if let Some(n) = next_meeting {
        case.meetings.push(Meeting {
            number: case.meetings.len() as u32 + 1,
            kind: *kind,
            at: *n,
            place: case.meetings[i].place.clone(),
            participants: Vec::new(),
            held: false,
            leadership_present: false,
            mapping_complete: None,
            decisions: Vec::new(),
            next_at: None,
            recorded_by: None,
            copy_to_parents: None,
        });
        case.set_deadline(deadline(DeadlineKind::Meeting, *n, &school));
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
    } else if *kind == MeetingKind::Samarbeid
        && (!awaiting_evaluation || case.phase == Phase::Further)
        && !case.agreements.iter().any(|a| a.made_at >= *at)
    {
        // The routine: a new agreement at every meeting in phase 4.
        case.set_deadline(deadline(
            DeadlineKind::Agreement,
            days_later(config, now, config.agreement_days),
            &owner,
        ));
    }
    out.push(
        Recipient::Ressursteam {
            school: case.pupil.school.clone(),
        },
        NoticeKind::MeetingHeld { meeting: number },
    );
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
        added_at: Some(cx.now),
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
        pupil_view,
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
    // Who is there: as given, else as recorded at the current meeting.
    let present = if present.is_empty() {
        case.meeting_index(None, now)
            .map(|i| case.meetings[i].participants.clone())
            .unwrap_or_default()
    } else {
        present.clone()
    };
    let pupil_view = pupil_view.as_deref().map(str::trim).filter(|v| !v.is_empty());
    if let Some(v) = pupil_view {
        case.pupil_views.push(PupilView {
            stage: Stage::Agreement,
            at: now,
            text: v.to_string(),
            took_part: Some(present.iter().any(|p| p.role == ParticipantRole::Elev)),
        });
    }
    case.agreements.push(Agreement {
        number,
        made_at: now,
        place: place.trim().to_string(),
        present,
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
        pupil_view: pupil_view.map(str::to_string),
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
    let Command::Evaluate {
        outcome,
        place,
        present,
        goal,
        sub_goals,
        measures,
        plan_b,
        referrals_considered,
        pupil_view,
        confirm,
        numbers,
    } = cx.command
    else {
        unreachable!("dispatched by variant")
    };
    let (command, actor, now, config) = (cx.command, cx.actor, cx.now, cx.config);
    need_phase(case, command, &[Phase::Mapping, Phase::Further])?;
    let Some(agreement) = case.current_agreement().cloned() else {
        return Err(CaseError::Precondition(
            "det finnes ingen samarbeidsavtale å evaluere".into(),
        ));
    };
    if case.current_agreement_evaluated() {
        return Err(CaseError::Precondition(format!(
            "samarbeidsavtale {} er allerede evaluert; lag en ny avtale først",
            agreement.number
        )));
    }
    if let Some(g) = sub_goals
        .iter()
        .find(|g| g.number == 0 || g.number as usize > agreement.sub_goals.len())
    {
        return Err(CaseError::Precondition(format!(
            "avtale {} har ikke noe delmål {}",
            agreement.number, g.number
        )));
    }
    if let Some(m) = measures
        .iter()
        .find(|m| !agreement.measures.iter().any(|x| x.number == m.number))
    {
        return Err(CaseError::Precondition(format!(
            "avtale {} har ikke noe tiltak {}",
            agreement.number, m.number
        )));
    }
    // «Løst» against the numbers needs a second, deliberate word.
    let worse = numbers.as_ref().filter(|n| n.attendance_change() <= -0.5);
    if *outcome == EvaluationOutcome::Resolved
        && let Some(n) = worse
        && !confirm
    {
        return Err(CaseError::Precondition(format!(
            "oppmøtet var {} % under avtalen mot {} % før, altså dårligere. Er fraværet likevel løst, gjenta med «bekreft»",
            crate::cases::words::decimal(n.during.attendance_percent),
            crate::cases::words::decimal(n.before.attendance_percent)
        )));
    }
    let present = if present.is_empty() {
        case.meeting_index(None, now)
            .map(|i| case.meetings[i].participants.clone())
            .unwrap_or_default()
    } else {
        present.clone()
    };
    let pupil_view = pupil_view
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    if let Some(v) = &pupil_view {
        case.pupil_views.push(PupilView {
            stage: Stage::Evaluation,
            at: now,
            text: v.clone(),
            took_part: Some(present.iter().any(|p| p.role == ParticipantRole::Elev)),
        });
    }
    case.evaluations.push(Evaluation {
        agreement: agreement.number,
        at: now,
        by: actor.clone(),
        outcome: *outcome,
        place: place
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string),
        present,
        goal: *goal,
        sub_goals: sub_goals.clone(),
        measures: measures.clone(),
        plan_b: *plan_b,
        referrals_considered: referrals_considered.clone(),
        pupil_view,
        numbers: *numbers,
        confirmed_against_numbers: worse.is_some() && *outcome == EvaluationOutcome::Resolved,
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
                // Phase 4 continues: the school calls a new meeting, and
                // a new agreement is made there.
                let school = case.school_party();
                case.set_deadline(deadline(
                    DeadlineKind::Meeting,
                    days_later(config, now, config.phase4_meeting_days),
                    &school,
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
        // Triage of a backlog case: contact starts now.
        (Phase::Contact, Phase::Contact) if case.triage => case.start_contact(config, now, false, false, out),
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
    // The seed: the coordinator sees to the agreements, the referrals and
    // the follow-up between meetings; the school keeps calling and chairing
    // the meetings and writing the referat. So only the coordination's
    // deadlines move.
    for d in &mut case.deadlines {
        if d.owner == before && matches!(d.kind, DeadlineKind::Agreement | DeadlineKind::Evaluation) {
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
