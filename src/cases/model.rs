//! The data of a case: who, which phase, what was agreed, what is due.

use crate::domain::roster::Level;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A role in the routine. Permission checks go by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The pupil's contact teacher.
    Kontaktlaerer,
    /// The department head who owns phase 3.
    Avdelingsleder,
    /// A member of the school's resource team.
    Ressursteam,
    /// The coordinator who took over in phase 4.
    Fagkoordinator,
    /// School leadership (rektor and others).
    Ledelse,
    /// tilstede itself (findings and the clock).
    System,
}

impl Role {
    /// The Norwegian name.
    pub fn norwegian(self) -> &'static str {
        match self {
            Role::Kontaktlaerer => "kontaktlærer",
            Role::Avdelingsleder => "avdelingsleder",
            Role::Ressursteam => "ressursteam",
            Role::Fagkoordinator => "fagkoordinator",
            Role::Ledelse => "ledelsen",
            Role::System => "tilstede",
        }
    }

    /// Parses the kebab-case spelling or the Norwegian word.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s.trim().to_lowercase().as_str() {
            "kontaktlaerer" | "kontaktlærer" => Role::Kontaktlaerer,
            "avdelingsleder" => Role::Avdelingsleder,
            "ressursteam" => Role::Ressursteam,
            "fagkoordinator" => Role::Fagkoordinator,
            "ledelse" | "ledelsen" | "rektor" => Role::Ledelse,
            _ => return None,
        })
    }
}

/// A person (staff id or Matrix id) acting in a role.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Party {
    /// Staff id or Matrix id; for a role nobody is named for yet, `rolle:<role>@<school>`.
    pub id: String,
    /// The role.
    pub role: Role,
}

impl Party {
    /// A party.
    pub fn new(id: impl Into<String>, role: Role) -> Party {
        Party { id: id.into(), role }
    }
}

/// The phase of a case. Phase 1 (prevention) is everyone's normal state; a
/// case that ended phase 2 with "no concern" is back in [`Phase::Monitoring`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Followed like everyone else after "no concern"; new evidence prompts again.
    Monitoring,
    /// Phase 2: identification and contact.
    Contact,
    /// Phase 3: mapping, measures and evaluation.
    Mapping,
    /// Phase 4: further measures.
    Further,
}

impl Phase {
    /// The routine's phase number.
    pub fn number(self) -> u8 {
        match self {
            Phase::Monitoring => 1,
            Phase::Contact => 2,
            Phase::Mapping => 3,
            Phase::Further => 4,
        }
    }

    /// The Norwegian name.
    pub fn norwegian(self) -> &'static str {
        match self {
            Phase::Monitoring => "fase 1 – forebygging (følges som andre)",
            Phase::Contact => "fase 2 – identifisering og kontakt",
            Phase::Mapping => "fase 3 – kartlegging, tiltak og evaluering",
            Phase::Further => "fase 4 – behov for ytterligere tiltak",
        }
    }

    /// From the phase number 1–4.
    pub fn from_number(n: u8) -> Option<Phase> {
        Some(match n {
            1 => Phase::Monitoring,
            2 => Phase::Contact,
            3 => Phase::Mapping,
            4 => Phase::Further,
            _ => return None,
        })
    }
}

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeadlineKind {
    /// Contact the parents (first day of unreported absence).
    ContactParents,
    /// Tell the parents about invalid absence (first lesson / end of day).
    NotifyInvalidAbsence,
    /// Hold the first phase 3 meeting with pupil and parents.
    FirstMeeting,
    /// A new meeting, with leadership, because mapping is incomplete.
    FollowUpMeeting,
    /// Make the samarbeidsavtale.
    Agreement,
    /// Evaluate the agreement (a missing outcome escalates to the avdelingsleder).
    Evaluation,
    /// The ressursteam / cooperation meeting in phase 4, or the next meeting set.
    Meeting,
    /// The proposed fagkoordinator should accept.
    HandoffAcceptance,
    /// Review a case that ended "no concern".
    Review,
}

impl DeadlineKind {
    /// What is due, in Norwegian.
    pub fn norwegian(self) -> &'static str {
        match self {
            DeadlineKind::ContactParents => "kontakte foresatte",
            DeadlineKind::NotifyInvalidAbsence => "varsle foresatte om ugyldig fravær",
            DeadlineKind::FirstMeeting => "holde møte med elev og foresatte",
            DeadlineKind::FollowUpMeeting => "holde nytt møte med ledelsen til stede (kartleggingen er ikke ferdig)",
            DeadlineKind::Agreement => "lage samarbeidsavtale",
            DeadlineKind::Evaluation => "evaluere samarbeidsavtalen",
            DeadlineKind::Meeting => "holde samarbeidsmøte",
            DeadlineKind::HandoffAcceptance => "bekrefte overtakelse som fagkoordinator",
            DeadlineKind::Review => "gå gjennom fraværet på nytt",
        }
    }

    /// The kebab-case code.
    pub fn code(self) -> &'static str {
        match self {
            DeadlineKind::ContactParents => "contact-parents",
            DeadlineKind::NotifyInvalidAbsence => "notify-invalid-absence",
            DeadlineKind::FirstMeeting => "first-meeting",
            DeadlineKind::FollowUpMeeting => "follow-up-meeting",
            DeadlineKind::Agreement => "agreement",
            DeadlineKind::Evaluation => "evaluation",
            DeadlineKind::Meeting => "meeting",
            DeadlineKind::HandoffAcceptance => "handoff-acceptance",
            DeadlineKind::Review => "review",
        }
    }
}

/// Something that must happen by a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    /// What.
    pub kind: DeadlineKind,
    /// By when.
    pub due: DateTime<Utc>,
    /// Who must do it.
    pub owner: Party,
    /// Whether the reminder went out.
    pub reminded: bool,
    /// Whether the escalation went out.
    pub escalated: bool,
}

/// Who was contacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Contacted {
    /// The parents / guardians.
    Foresatte,
    /// The pupil.
    Elev,
    /// Both.
    ForesatteOgElev,
}

impl Contacted {
    /// Norwegian.
    pub fn norwegian(self) -> &'static str {
        match self {
            Contacted::Foresatte => "foresatte",
            Contacted::Elev => "eleven",
            Contacted::ForesatteOgElev => "foresatte og eleven",
        }
    }
}

/// How.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    /// Phone call (the routine prefers it).
    Telefon,
    /// In a meeting.
    Mote,
    /// A message in the school's messaging system.
    Melding,
    /// A letter.
    Brev,
}

impl Channel {
    /// Norwegian.
    pub fn norwegian(self) -> &'static str {
        match self {
            Channel::Telefon => "telefon",
            Channel::Mote => "møte",
            Channel::Melding => "melding",
            Channel::Brev => "brev",
        }
    }
}

/// What came of a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContactOutcome {
    /// Nobody answered.
    IkkeNadd,
    /// Talked; no conclusion yet.
    Naadd,
    /// Talked; no concern (phase 2 ends, monitoring).
    IngenBekymring,
    /// Talked; concern (phase 3).
    Bekymring,
}

impl ContactOutcome {
    /// Norwegian.
    pub fn norwegian(self) -> &'static str {
        match self {
            ContactOutcome::IkkeNadd => "ikke nådd",
            ContactOutcome::Naadd => "nådd",
            ContactOutcome::IngenBekymring => "ingen bekymring",
            ContactOutcome::Bekymring => "bekymring",
        }
    }

    /// Whether someone was reached.
    pub fn reached(self) -> bool {
        !matches!(self, ContactOutcome::IkkeNadd)
    }
}

/// One logged contact with parents and/or pupil.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactEntry {
    /// Who made the contact.
    pub by: Party,
    /// Whom.
    pub with: Contacted,
    /// When.
    pub at: DateTime<Utc>,
    /// How.
    pub channel: Channel,
    /// What came of it.
    pub outcome: ContactOutcome,
}

/// Kinds of meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MeetingKind {
    /// With pupil and parents (phase 3 and 4 samarbeidsmøte).
    Samarbeid,
    /// The school's resource team.
    Ressursteam,
}

impl MeetingKind {
    /// Norwegian.
    pub fn norwegian(self) -> &'static str {
        match self {
            MeetingKind::Samarbeid => "samarbeidsmøte",
            MeetingKind::Ressursteam => "møte i ressursteamet",
        }
    }
}

/// A meeting, planned or held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meeting {
    /// Kind.
    pub kind: MeetingKind,
    /// When.
    pub at: DateTime<Utc>,
    /// Whether it has been held.
    pub held: bool,
    /// Whether leadership was / will be present.
    pub leadership_present: bool,
    /// Whether the mapping was complete after it (held meetings only).
    pub mapping_complete: Option<bool>,
}

/// The eight boxes of the Tiltakssirkel (Otnes 2016).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CircleBox {
    /// Relasjon til voksne på skolen (a good place to start).
    RelasjonVoksne,
    /// Relasjon til medelever.
    RelasjonMedelever,
    /// Mestring på skolen.
    Mestring,
    /// Struktur på skolen.
    Struktur,
    /// Foreldres tillit til skolen.
    ForeldresTillit,
    /// Fritidsaktiviteter.
    Fritid,
    /// Hjemmeforhold (not a good place to start).
    Hjemmeforhold,
    /// Individuelle faktorer (not a good place to start).
    Individuelle,
}

impl CircleBox {
    /// All boxes in the model's order.
    pub const ALL: [CircleBox; 8] = [
        CircleBox::RelasjonVoksne,
        CircleBox::RelasjonMedelever,
        CircleBox::Mestring,
        CircleBox::Struktur,
        CircleBox::ForeldresTillit,
        CircleBox::Fritid,
        CircleBox::Hjemmeforhold,
        CircleBox::Individuelle,
    ];

    /// The box's title.
    pub fn norwegian(self) -> &'static str {
        match self {
            CircleBox::RelasjonVoksne => "Relasjon til voksne på skolen",
            CircleBox::RelasjonMedelever => "Relasjon til medelever",
            CircleBox::Mestring => "Mestring på skolen",
            CircleBox::Struktur => "Struktur på skolen",
            CircleBox::ForeldresTillit => "Foreldres tillit til skolen",
            CircleBox::Fritid => "Fritidsaktiviteter",
            CircleBox::Hjemmeforhold => "Hjemmeforhold",
            CircleBox::Individuelle => "Individuelle faktorer",
        }
    }

    /// The box number 1–8.
    pub fn number(self) -> u8 {
        CircleBox::ALL
            .iter()
            .position(|b| *b == self)
            .map(|i| i as u8 + 1)
            .unwrap_or(0)
    }

    /// From the number 1–8.
    pub fn from_number(n: u8) -> Option<CircleBox> {
        CircleBox::ALL.get(usize::from(n).checked_sub(1)?).copied()
    }
}

/// Resources and risks noted in one box.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoxMapping {
    /// Ressurser.
    pub resources: Vec<String>,
    /// Risiko.
    pub risks: Vec<String>,
}

/// A measure (tiltak).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measure {
    /// 1-based number within the case.
    pub number: u32,
    /// The box it strengthens.
    pub circle_box: CircleBox,
    /// What is done.
    pub text: String,
    /// Who is responsible: a role word or a person.
    pub responsible: String,
    /// By when.
    pub due: NaiveDate,
    /// Whether it is at home (otherwise at school).
    pub at_home: bool,
}

/// A sub-goal (delmål) with its duration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubGoal {
    /// The sub-goal.
    pub text: String,
    /// Duration in weeks.
    pub weeks: u32,
    /// The measures (by number) serving it.
    pub measures: Vec<u32>,
}

/// A samarbeidsavtale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agreement {
    /// 1-based number within the case.
    pub number: u32,
    /// Made when.
    pub made_at: DateTime<Utc>,
    /// Where.
    pub place: String,
    /// Who was present (roles or names as written).
    pub present: Vec<String>,
    /// The goal.
    pub goal: String,
    /// Sub-goals.
    pub sub_goals: Vec<SubGoal>,
    /// The measures it holds (copies, as they were agreed).
    pub measures: Vec<Measure>,
    /// Plan B: what happens if the pupil does not come as agreed.
    pub plan_b: String,
    /// Who is responsible for Plan B.
    pub plan_b_responsible: String,
    /// Valid until (inclusive).
    pub valid_until: NaiveDate,
    /// The evaluation date.
    pub evaluation_date: NaiveDate,
}

/// The decision of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvaluationOutcome {
    /// Resolved: no further systematic follow-up.
    Resolved,
    /// Better but not there: a new agreement (phase 3 again, or continued phase 4).
    NewAgreement,
    /// Unchanged or rising: phase 4.
    Phase4,
}

impl EvaluationOutcome {
    /// Norwegian.
    pub fn norwegian(self) -> &'static str {
        match self {
            EvaluationOutcome::Resolved => "løst – ingen videre systematisk oppfølging",
            EvaluationOutcome::NewAgreement => "bedre, men ikke i mål – ny samarbeidsavtale",
            EvaluationOutcome::Phase4 => "uendret eller økende – videre til fase 4",
        }
    }
}

/// A held evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The agreement evaluated.
    pub agreement: u32,
    /// When.
    pub at: DateTime<Utc>,
    /// By whom.
    pub by: Party,
    /// The decision.
    pub outcome: EvaluationOutcome,
}

/// An agency a case can be referred to or coordinated by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Agency {
    /// Skolen selv.
    Skole,
    /// PP-tjenesten.
    Ppt,
    /// Barne- og ungdomspsykiatrisk poliklinikk.
    Bup,
    /// Fastlege.
    Fastlege,
    /// Barneverntjenesten.
    Barnevern,
    /// Familievernkontoret.
    Familievern,
    /// Helsesykepleier / skolehelsetjenesten.
    Helsesykepleier,
    /// Psykisk helseteam.
    PsykiskHelse,
    /// Utekontakten.
    Utekontakten,
}

impl Agency {
    /// All agencies.
    pub const ALL: [Agency; 9] = [
        Agency::Skole,
        Agency::Ppt,
        Agency::Bup,
        Agency::Fastlege,
        Agency::Barnevern,
        Agency::Familievern,
        Agency::Helsesykepleier,
        Agency::PsykiskHelse,
        Agency::Utekontakten,
    ];

    /// Norwegian name.
    pub fn norwegian(self) -> &'static str {
        match self {
            Agency::Skole => "skolen",
            Agency::Ppt => "PP-tjenesten",
            Agency::Bup => "BUP",
            Agency::Fastlege => "fastlege",
            Agency::Barnevern => "barneverntjenesten",
            Agency::Familievern => "familievernkontoret",
            Agency::Helsesykepleier => "helsesykepleier",
            Agency::PsykiskHelse => "psykisk helseteam",
            Agency::Utekontakten => "Utekontakten",
        }
    }

    /// The kebab-case code.
    pub fn code(self) -> &'static str {
        match self {
            Agency::Skole => "skole",
            Agency::Ppt => "ppt",
            Agency::Bup => "bup",
            Agency::Fastlege => "fastlege",
            Agency::Barnevern => "barnevern",
            Agency::Familievern => "familievern",
            Agency::Helsesykepleier => "helsesykepleier",
            Agency::PsykiskHelse => "psykisk-helse",
            Agency::Utekontakten => "utekontakten",
        }
    }

    /// From the code.
    pub fn parse(s: &str) -> Option<Agency> {
        let s = s.trim().to_lowercase();
        Agency::ALL
            .into_iter()
            .find(|a| a.code() == s || a.norwegian().to_lowercase() == s)
    }
}

/// A referral.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referral {
    /// To whom.
    pub agency: Agency,
    /// Decided on.
    pub decided: NaiveDate,
    /// Sent on, when sent.
    pub sent: Option<NaiveDate>,
    /// Whether a pedagogisk rapport is attached (PPT requires it).
    pub pedagogisk_rapport: bool,
    /// Whether a legeerklæring is needed.
    pub legeerklaering_needed: bool,
}

/// The fagkoordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coordinator {
    /// The agency.
    pub agency: Agency,
    /// The person.
    pub person: String,
    /// Since.
    pub since: DateTime<Utc>,
}

/// A proposed handoff waiting for acceptance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    /// The agency.
    pub agency: Agency,
    /// The person who should accept.
    pub person: String,
    /// Proposed by.
    pub by: Party,
    /// When.
    pub at: DateTime<Utc>,
}

/// A special outcome with its preconditions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SpecialOutcome {
    /// Hjemmeundervisning: needs a PPT assessment and a legeerklæring.
    Hjemmeundervisning {
        /// PPT has assessed.
        ppt_vurdering: bool,
        /// A legeerklæring exists.
        legeerklaering: bool,
    },
    /// Fritak fra opplæringsplikten: needs a sakkyndig vurdering, a
    /// legeerklæring and an enkeltvedtak.
    Fritak {
        /// A sakkyndig vurdering exists.
        sakkyndig_vurdering: bool,
        /// A legeerklæring exists.
        legeerklaering: bool,
        /// An enkeltvedtak has been made.
        enkeltvedtak: bool,
    },
}

impl SpecialOutcome {
    /// The preconditions that are missing, in Norwegian.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        match *self {
            SpecialOutcome::Hjemmeundervisning {
                ppt_vurdering,
                legeerklaering,
            } => {
                if !ppt_vurdering {
                    out.push("vurdering fra PP-tjenesten");
                }
                if !legeerklaering {
                    out.push("legeerklæring");
                }
            }
            SpecialOutcome::Fritak {
                sakkyndig_vurdering,
                legeerklaering,
                enkeltvedtak,
            } => {
                if !sakkyndig_vurdering {
                    out.push("sakkyndig vurdering");
                }
                if !legeerklaering {
                    out.push("legeerklæring");
                }
                if !enkeltvedtak {
                    out.push("enkeltvedtak");
                }
            }
        }
        out
    }

    /// Norwegian name.
    pub fn norwegian(&self) -> &'static str {
        match self {
            SpecialOutcome::Hjemmeundervisning { .. } => "hjemmeundervisning",
            SpecialOutcome::Fritak { .. } => "fritak fra opplæringsplikten",
        }
    }
}

/// Why a case was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CloseReason {
    /// The absence is resolved.
    Lost,
    /// No concern, and the review found nothing new.
    IngenBekymring,
    /// The pupil moved or changed school.
    Flyttet,
    /// A special outcome took over (hjemmeundervisning / fritak).
    SaerskiltUtfall,
    /// Something else.
    Annet,
}

impl CloseReason {
    /// Norwegian.
    pub fn norwegian(self) -> &'static str {
        match self {
            CloseReason::Lost => "fraværet er løst",
            CloseReason::IngenBekymring => "ingen bekymring, og ikke nytt fravær",
            CloseReason::Flyttet => "eleven har flyttet eller byttet skole",
            CloseReason::SaerskiltUtfall => "særskilt utfall (hjemmeundervisning eller fritak)",
            CloseReason::Annet => "annen grunn",
        }
    }
}

/// Open or closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Status {
    /// Open.
    Open,
    /// Closed with a reason.
    Closed {
        /// Why.
        reason: CloseReason,
        /// When.
        at: DateTime<Utc>,
    },
}

/// What the case needs to know about the pupil: minimal, non-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PupilRef {
    /// Pupil id.
    pub id: String,
    /// School id.
    pub school: String,
    /// Initials, e.g. `E.H.`.
    pub initials: String,
    /// Class name, e.g. `5B`, when known.
    pub class_name: Option<String>,
    /// Barneskole or ungdomsskole.
    pub level: Level,
}

/// One case: a pupil's follow-up from the first finding to closing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// The opaque case number, e.g. `S-2026-0042`.
    pub number: String,
    /// The pupil.
    pub pupil: PupilRef,
    /// Open or closed.
    pub status: Status,
    /// The phase.
    pub phase: Phase,
    /// When opened.
    pub opened_at: DateTime<Utc>,
    /// Who holds the responsibility now.
    pub responsible: Party,
    /// The contact teacher, when known.
    pub contact_teacher: Option<String>,
    /// The avdelingsleder (or the leadership role) that escalations go to.
    pub escalation_to: Party,
    /// Criterion codes that currently hold.
    pub active_criteria: BTreeSet<String>,
    /// Deadlines not yet met.
    pub deadlines: Vec<Deadline>,
    /// Every contact with parents / pupil.
    pub contacts: Vec<ContactEntry>,
    /// Meetings.
    pub meetings: Vec<Meeting>,
    /// The Tiltakssirkel mapping, one entry per box in [`CircleBox::ALL`] order.
    pub mapping: Vec<BoxMapping>,
    /// Measures not yet in an agreement.
    pub measures: Vec<Measure>,
    /// Agreements, oldest first.
    pub agreements: Vec<Agreement>,
    /// Evaluations, oldest first.
    pub evaluations: Vec<Evaluation>,
    /// Referrals.
    pub referrals: Vec<Referral>,
    /// The fagkoordinator, after an accepted handoff.
    pub coordinator: Option<Coordinator>,
    /// A handoff waiting for acceptance.
    pub pending_handoff: Option<Handoff>,
    /// Special outcomes noted.
    pub special_outcomes: Vec<SpecialOutcome>,
    /// Marked as long-term (langvarig).
    pub long_term: bool,
    /// Whether the case was reported to the ressursteam.
    pub reported_to_ressursteam: bool,
    /// Number of measures ever added (for numbering).
    pub measure_count: u32,
    /// Changes applied (also the idempotency counter for notifications).
    pub revision: u64,
}

impl Case {
    /// Whether the case is open.
    pub fn is_open(&self) -> bool {
        self.status == Status::Open
    }

    /// The earliest deadline, if any.
    pub fn next_deadline(&self) -> Option<&Deadline> {
        self.deadlines.iter().min_by_key(|d| (d.due, d.kind))
    }

    /// The agreement in force (the newest), if any.
    pub fn current_agreement(&self) -> Option<&Agreement> {
        self.agreements.last()
    }

    /// Whether the newest agreement has been evaluated.
    pub fn current_agreement_evaluated(&self) -> bool {
        match self.current_agreement() {
            Some(a) => self.evaluations.iter().any(|e| e.agreement == a.number),
            None => false,
        }
    }

    /// How `pupil` is named in chat by default: initials and class.
    pub fn pupil_label(&self) -> String {
        match &self.pupil.class_name {
            Some(c) => format!("{} ({c})", self.pupil.initials),
            None => self.pupil.initials.clone(),
        }
    }
}
