//! Phase transitions and deadline bookkeeping shared by the steps, the
//! finding events and the clock.

use super::calendar::{days_later, end_of_school_day, within_first_lesson};
use super::config::CaseConfig;
use super::machine::deadline;
use super::model::*;
use super::notice::{NoticeKind, Out, Recipient, RessursteamReason};
use crate::domain::roster::Level;
use chrono::{DateTime, NaiveDate, Utc};

/// When absence on `date` happened, as far as the routine's clock goes: the
/// start of that school day, or `now` for absence today (it is happening
/// while tilstede learns of it, and lessons carry no time).
pub(super) fn absence_time(config: &CaseConfig, date: Option<NaiveDate>, now: DateTime<Utc>) -> DateTime<Utc> {
    let today = crate::domain::dates::school_date_utc(now);
    match date {
        Some(d) if d < today => super::calendar::oslo(d, config.day_start),
        _ => now,
    }
}

/// Whether absence on `date` is older than the backlog horizon at `now`:
/// more school days have passed since than the routine's deadlines span.
pub(super) fn is_backlog(config: &CaseConfig, date: Option<NaiveDate>, now: DateTime<Utc>) -> bool {
    let today = crate::domain::dates::school_date_utc(now);
    match date {
        Some(d) if d < today => {
            config.calendar.school_days(d.succ_opt().unwrap_or(d), today) > config.backlog_horizon_school_days
        }
        _ => false,
    }
}

impl Case {
    pub(super) fn drop_deadlines(&mut self, kinds: &[DeadlineKind]) {
        self.deadlines.retain(|d| !kinds.contains(&d.kind));
    }

    pub(super) fn set_deadline(&mut self, d: Deadline) {
        self.drop_deadlines(&[d.kind]);
        self.deadlines.push(d);
        self.deadlines.sort_by_key(|d| (d.due, d.kind));
    }

    /// Who calls and chairs the meetings for the school: the avdelingsleder
    /// (or leadership), also after a coordinator took over.
    pub(super) fn school_party(&self) -> Party {
        self.escalation_to.clone()
    }

    pub(super) fn contact_party(&self) -> Party {
        match &self.contact_teacher {
            Some(t) => Party::new(t.clone(), Role::Kontaktlaerer),
            None => self.escalation_to.clone(),
        }
    }

    /// Whether any criterion that holds means invalid absence (by the role
    /// the rule set gives it).
    pub(super) fn has_invalid_absence(&self, config: &CaseConfig) -> bool {
        self.active_criteria.iter().any(|c| config.is_invalid_absence(c))
    }

    /// When parents must hear of invalid absence that happened at `from`:
    /// barneskole within the first lesson, ungdomsskole by the end of the day.
    pub(super) fn notify_due(&self, config: &CaseConfig, from: DateTime<Utc>) -> DateTime<Utc> {
        match self.pupil.level {
            Level::Barneskole => within_first_lesson(config, from),
            Level::Ungdomsskole => end_of_school_day(config, from),
        }
    }

    /// Phase 2 deadlines and prompts for the criteria that hold. Deadlines
    /// count from `from`: when the absence happened (see [`absence_time`]).
    pub(super) fn start_contact(
        &mut self,
        config: &CaseConfig,
        from: DateTime<Utc>,
        tentative: bool,
        again: bool,
        out: &mut Out,
    ) {
        self.phase = Phase::Contact;
        self.triage = false;
        self.responsible = self.contact_party();
        self.deadlines.clear();
        let owner = self.responsible.clone();
        let contact_due = end_of_school_day(config, from);
        self.set_deadline(deadline(DeadlineKind::ContactParents, contact_due, &owner));
        let invalid = self.has_invalid_absence(config);
        if invalid {
            let due = self.notify_due(config, from);
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

    pub(super) fn enter_mapping(&mut self, config: &CaseConfig, now: DateTime<Utc>, out: &mut Out) {
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

    pub(super) fn enter_further(&mut self, config: &CaseConfig, now: DateTime<Utc>, out: &mut Out) {
        self.phase = Phase::Further;
        self.drop_deadlines(&[
            DeadlineKind::ContactParents,
            DeadlineKind::NotifyInvalidAbsence,
            DeadlineKind::FirstMeeting,
            DeadlineKind::FollowUpMeeting,
            DeadlineKind::Review,
        ]);
        let school = self.school_party();
        self.set_deadline(deadline(
            DeadlineKind::Meeting,
            days_later(config, now, config.phase4_meeting_days),
            &school,
        ));
        out.push(
            Recipient::Ressursteam {
                school: self.pupil.school.clone(),
            },
            NoticeKind::ToRessursteam {
                reason: RessursteamReason::Phase4,
            },
        );
    }

    pub(super) fn close(&mut self, reason: CloseReason, now: DateTime<Utc>, out: &mut Out) {
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
