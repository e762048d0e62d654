//! The person-driven steps of the routine as one plain-data enum. The Matrix
//! bot parses Norwegian chat into it; the CLI builds it from flags.

use super::model::{
    Agency, Channel, CircleBox, CloseReason, ContactOutcome, Contacted, EvaluationOutcome, GoalRating, MeasureRating,
    MeetingKind, Participant, Phase, PlanBUse, Rated, SpecialOutcome, Stage,
};
use super::numbers::Comparison;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A sub-goal as given when making an agreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubGoalInput {
    /// The sub-goal.
    pub text: String,
    /// Duration in weeks.
    pub weeks: u32,
    /// Measure numbers that serve it (empty: none named).
    #[serde(default)]
    pub measures: Vec<u32>,
}

/// One step a person takes in a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Command {
    /// A contact with parents and/or pupil was made (or tried).
    LogContact {
        /// Whom.
        with: Contacted,
        /// When (default: now).
        #[serde(default)]
        at: Option<DateTime<Utc>>,
        /// How.
        channel: Channel,
        /// What came of it; in phase 2 "no concern"/"concern" decide the way on.
        outcome: ContactOutcome,
    },
    /// A meeting was set.
    SetMeeting {
        /// Which meeting.
        kind: MeetingKind,
        /// When.
        at: DateTime<Utc>,
        /// Whether leadership will be present.
        #[serde(default)]
        leadership_present: bool,
        /// Where.
        #[serde(default)]
        place: Option<String>,
        /// Who is called.
        #[serde(default)]
        participants: Vec<Participant>,
    },
    /// Someone is (or was) present at a meeting.
    AddParticipants {
        /// The meeting's number (default: the current meeting).
        #[serde(default)]
        meeting: Option<u32>,
        /// Who, each with a role.
        participants: Vec<Participant>,
    },
    /// Something was decided at a meeting.
    RecordDecision {
        /// The meeting's number (default: the current meeting).
        #[serde(default)]
        meeting: Option<u32>,
        /// The decision.
        text: String,
    },
    /// A meeting was held.
    MeetingHeld {
        /// Which meeting.
        kind: MeetingKind,
        /// When.
        at: DateTime<Utc>,
        /// Whether leadership was present.
        leadership_present: bool,
        /// Whether the mapping is complete after it.
        mapping_complete: bool,
        /// The next meeting (required in phase 4).
        #[serde(default)]
        next_meeting: Option<DateTime<Utc>>,
    },
    /// A copy of a meeting's referat went to the parents.
    MinutesSent {
        /// The meeting's number (default: the latest held).
        #[serde(default)]
        meeting: Option<u32>,
        /// When (default: today).
        #[serde(default)]
        date: Option<NaiveDate>,
    },
    /// The pupil's own view and wishes, in their words.
    NotePupilView {
        /// Where in the work.
        stage: Stage,
        /// What the pupil said.
        text: String,
        /// Whether the pupil took part in person.
        #[serde(default)]
        took_part: Option<bool>,
    },
    /// Resources and risks noted in a Tiltakssirkel box.
    MapBox {
        /// The box.
        circle_box: CircleBox,
        /// Ressurser.
        resources: Vec<String>,
        /// Risiko.
        risks: Vec<String>,
    },
    /// A measure in a Tiltakssirkel box.
    AddMeasure {
        /// The box it strengthens.
        circle_box: CircleBox,
        /// What is done.
        text: String,
        /// Who is responsible: a role word or a person.
        responsible: String,
        /// By when.
        due: NaiveDate,
        /// At home (otherwise at school).
        at_home: bool,
    },
    /// A samarbeidsavtale from the measures added since the last one.
    CreateAgreement {
        /// Where.
        place: String,
        /// Who is present (default: who is recorded at the current meeting).
        #[serde(default)]
        present: Vec<Participant>,
        /// The goal.
        goal: String,
        /// Sub-goals with duration.
        sub_goals: Vec<SubGoalInput>,
        /// Plan B.
        plan_b: String,
        /// Who is responsible for Plan B.
        plan_b_responsible: String,
        /// Valid this many days (default from the configuration, usually 21).
        valid_days: Option<u32>,
        /// The evaluation date (default: three weeks on).
        #[serde(default)]
        evaluation_date: Option<NaiveDate>,
        /// What the pupil said they want.
        #[serde(default)]
        pupil_view: Option<String>,
    },
    /// The newest agreement was evaluated (Vedlegg 4).
    Evaluate {
        /// The decision.
        outcome: EvaluationOutcome,
        /// Where.
        #[serde(default)]
        place: Option<String>,
        /// Who is present (default: who is recorded at the current meeting).
        #[serde(default)]
        present: Vec<Participant>,
        /// How far the goal was reached.
        #[serde(default)]
        goal: Option<GoalRating>,
        /// Each sub-goal.
        #[serde(default)]
        sub_goals: Vec<Rated<GoalRating>>,
        /// Each measure.
        #[serde(default)]
        measures: Vec<Rated<MeasureRating>>,
        /// How Plan B went.
        #[serde(default)]
        plan_b: Option<PlanBUse>,
        /// Referrals considered.
        #[serde(default)]
        referrals_considered: Vec<Agency>,
        /// What the pupil said.
        #[serde(default)]
        pupil_view: Option<String>,
        /// «Løst» stands although attendance got worse.
        #[serde(default)]
        confirm: bool,
        /// The numbers, frozen by the workflow from the records (any value
        /// a caller sends is replaced).
        #[serde(default)]
        numbers: Option<Comparison>,
    },
    /// Move to another phase (forward only).
    ChangePhase {
        /// The phase.
        to: Phase,
    },
    /// The avdelingsleder reported the case to the ressursteam.
    ReportToRessursteam,
    /// A referral was decided.
    Refer {
        /// To whom.
        agency: Agency,
        /// Decided on.
        decided: NaiveDate,
        /// Sent on.
        sent: Option<NaiveDate>,
        /// A pedagogisk rapport is attached (PPT requires it).
        pedagogisk_rapport: bool,
        /// A legeerklæring is needed.
        legeerklaering_needed: bool,
    },
    /// Propose who takes the fagkoordinator role.
    ProposeHandoff {
        /// The agency.
        agency: Agency,
        /// The person (staff id or Matrix id) who should accept.
        person: String,
    },
    /// The proposed person accepts; responsibility moves now.
    AcceptHandoff,
    /// The proposed person (or the proposer) declines.
    DeclineHandoff,
    /// Mark the case long-term (langvarig) by hand.
    MarkLongTerm,
    /// Note a special outcome with its preconditions.
    NoteSpecialOutcome {
        /// The outcome.
        outcome: SpecialOutcome,
    },
    /// Close the case.
    Close {
        /// Why.
        reason: CloseReason,
    },
}

impl Command {
    /// An evaluation with only its decision (the rest as not recorded).
    pub fn evaluate(outcome: EvaluationOutcome) -> Command {
        Command::Evaluate {
            outcome,
            place: None,
            present: Vec::new(),
            goal: None,
            sub_goals: Vec::new(),
            measures: Vec::new(),
            plan_b: None,
            referrals_considered: Vec::new(),
            pupil_view: None,
            confirm: false,
            numbers: None,
        }
    }

    /// A short kebab-case name, for the audit log.
    pub fn name(&self) -> &'static str {
        match self {
            Command::LogContact { .. } => "log-contact",
            Command::SetMeeting { .. } => "set-meeting",
            Command::AddParticipants { .. } => "add-participants",
            Command::RecordDecision { .. } => "record-decision",
            Command::MinutesSent { .. } => "minutes-sent",
            Command::NotePupilView { .. } => "note-pupil-view",
            Command::MeetingHeld { .. } => "meeting-held",
            Command::MapBox { .. } => "map-box",
            Command::AddMeasure { .. } => "add-measure",
            Command::CreateAgreement { .. } => "create-agreement",
            Command::Evaluate { .. } => "evaluate",
            Command::ChangePhase { .. } => "change-phase",
            Command::ReportToRessursteam => "report-to-ressursteam",
            Command::Refer { .. } => "refer",
            Command::ProposeHandoff { .. } => "propose-handoff",
            Command::AcceptHandoff => "accept-handoff",
            Command::DeclineHandoff => "decline-handoff",
            Command::MarkLongTerm => "mark-long-term",
            Command::NoteSpecialOutcome { .. } => "note-special-outcome",
            Command::Close { .. } => "close",
        }
    }

    /// What it does, in Norwegian (for refusals).
    pub fn norwegian(&self) -> &'static str {
        match self {
            Command::LogContact { .. } => "logge kontakt",
            Command::SetMeeting { .. } => "sette møte",
            Command::AddParticipants { .. } => "registrere hvem som er til stede",
            Command::RecordDecision { .. } => "registrere et vedtak fra møtet",
            Command::MinutesSent { .. } => "registrere at referatet er sendt foresatte",
            Command::NotePupilView { .. } => "notere elevens syn",
            Command::MeetingHeld { .. } => "registrere holdt møte",
            Command::MapBox { .. } => "kartlegge i tiltakssirkelen",
            Command::AddMeasure { .. } => "legge til tiltak",
            Command::CreateAgreement { .. } => "lage samarbeidsavtale",
            Command::Evaluate { .. } => "evaluere samarbeidsavtalen",
            Command::ChangePhase { .. } => "bytte fase",
            Command::ReportToRessursteam => "melde saken til ressursteamet",
            Command::Refer { .. } => "henvise",
            Command::ProposeHandoff { .. } => "foreslå fagkoordinator",
            Command::AcceptHandoff => "overta som fagkoordinator",
            Command::DeclineHandoff => "avslå overtakelse",
            Command::MarkLongTerm => "markere som langvarig",
            Command::NoteSpecialOutcome { .. } => "notere særskilt utfall",
            Command::Close { .. } => "avslutte saken",
        }
    }
}
