//! Phase transitions and deadline bookkeeping shared by the steps, the
//! finding events and the clock.

use super::calendar::{days_later, end_of_school_day, within_first_lesson};
use super::config::CaseConfig;
use super::machine::deadline;
use super::model::*;
use super::notice::{NoticeKind, Out, Recipient, RessursteamReason};
use crate::domain::roster::Level;
use chrono::{DateTime, Utc};

impl Case {
    pub(super) fn drop_deadlines(&mut self, kinds: &[DeadlineKind]) {
        self.deadlines.retain(|d| !kinds.contains(&d.kind));
    }

    pub(super) fn set_deadline(&mut self, d: Deadline) {
        self.drop_deadlines(&[d.kind]);
        self.deadlines.push(d);
        self.deadlines.sort_by_key(|d| (d.due, d.kind));
    }

    pub(super) fn contact_party(&self) -> Party {
        match &self.contact_teacher {
            Some(t) => Party::new(t.clone(), Role::Kontaktlaerer),
            None => self.escalation_to.clone(),
        }
    }

    /// Phase 2 deadlines and prompts for the criteria that hold.
    pub(super) fn start_contact(
        &mut self,
        config: &CaseConfig,
        now: DateTime<Utc>,
        tentative: bool,
        again: bool,
        out: &mut Out,
    ) {
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
