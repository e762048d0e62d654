//! What a step asks the world to do: notices, their recipients and their
//! stable idempotency keys. The renderer turns a notice into text; the
//! store queues it in the same transaction as the change that caused it.

use super::model::*;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

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
    pub(crate) fn person(p: &Party) -> Recipient {
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
    /// New invalid absence on an open case: tell the parents at once.
    InvalidAbsenceAgain {
        /// The day of the absence.
        date: NaiveDate,
        /// By when the parents must have been told.
        due: DateTime<Utc>,
    },
    /// A case opened for old absence: leadership triages it.
    Triage {
        /// The newest absence in it.
        latest: NaiveDate,
    },
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
    /// A meeting was set (its agenda goes with it).
    MeetingSet {
        /// The meeting's number.
        meeting: u32,
    },
    /// A meeting was held (its referat goes with it).
    MeetingHeld {
        /// The meeting's number.
        meeting: u32,
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

/// Builds notices with keys derived from the case revision.
pub(crate) struct Out<'a> {
    case: &'a str,
    stem: String,
    pub(crate) notices: Vec<Notice>,
}

impl<'a> Out<'a> {
    pub(crate) fn new(case: &'a str, stem: String) -> Out<'a> {
        Out {
            case,
            stem,
            notices: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, recipient: Recipient, kind: NoticeKind) {
        let key = format!("{}/{}/{}", self.case, self.stem, self.notices.len());
        self.notices.push(Notice {
            key,
            case: self.case.to_string(),
            recipient,
            kind,
        });
    }

    pub(crate) fn push_keyed(&mut self, key: String, recipient: Recipient, kind: NoticeKind) {
        self.notices.push(Notice {
            key,
            case: self.case.to_string(),
            recipient,
            kind,
        });
    }
}
