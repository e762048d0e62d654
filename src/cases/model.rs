//! The data of a case: who, which phase, what was agreed, what is due.

use crate::domain::roster::Level;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

crate::vocabulary! {
    /// A role in the routine. Permission checks go by role.
    pub enum Role("en rolle") {
        /// The pupil's contact teacher.
        Kontaktlaerer = "kontaktlærer" | "contact-teacher",
        /// The department head who owns phase 3.
        Avdelingsleder = "avdelingsleder" | "department-head",
        /// A member of the school's resource team.
        Ressursteam = "ressursteam" | "resource-team",
        /// The coordinator who took over in phase 4.
        Fagkoordinator = "fagkoordinator" | "coordinator",
        /// School leadership (rektor and others).
        Ledelse = "ledelse" | "ledelsen" | "rektor" | "leadership",
        /// tilstede itself (findings and the clock).
        System = "tilstede" | "system",
    }
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

    /// Parses a person's role (never [`Role::System`]).
    pub fn parse(s: &str) -> Option<Role> {
        s.parse().ok().filter(|r| *r != Role::System)
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

crate::vocabulary! {
    /// The phase of a case. Phase 1 (prevention) is everyone's normal state; a
    /// case that ended phase 2 with "no concern" is back in [`Phase::Monitoring`].
    pub enum Phase("en fase") {
        /// Followed like everyone else after "no concern"; new evidence prompts again.
        Monitoring = "forebygging" | "1" | "fase-1" | "monitoring",
        /// Phase 2: identification and contact.
        Contact = "kontakt" | "2" | "fase-2" | "identifisering" | "contact",
        /// Phase 3: mapping, measures and evaluation.
        Mapping = "kartlegging" | "3" | "fase-3" | "mapping",
        /// Phase 4: further measures.
        Further = "ytterligere-tiltak" | "4" | "fase-4" | "videre" | "further",
    }
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
    /// Go through a case opened for old absence (backlog).
    Triage,
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
            DeadlineKind::Triage => "vurdere saken (eldre fravær): starte kontakt eller avslutte",
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
            DeadlineKind::Triage => "triage",
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

crate::vocabulary! {
    /// Who was contacted.
    pub enum Contacted("hvem kontakten var med") {
        /// The parents / guardians.
        Parents = "foresatte" | "foresatt" | "parents",
        /// The pupil.
        Pupil = "elev" | "eleven" | "pupil",
        /// Both.
        Both = "begge" | "foresatte-og-elev" | "both",
    }
}

impl Contacted {
    /// Norwegian, for sentences.
    pub fn norwegian(self) -> &'static str {
        match self {
            Contacted::Parents => "foresatte",
            Contacted::Pupil => "eleven",
            Contacted::Both => "foresatte og eleven",
        }
    }
}

crate::vocabulary! {
    /// How.
    pub enum Channel("en kanal") {
        /// Phone call (the routine prefers it).
        Phone = "telefon" | "phone",
        /// In a meeting.
        Meeting = "møte" | "meeting",
        /// A message in the school's messaging system.
        Message = "melding" | "message" | "sms",
        /// A letter.
        Letter = "brev" | "letter",
    }
}

impl Channel {
    /// Norwegian, for sentences.
    pub fn norwegian(self) -> &'static str {
        self.word()
    }
}

crate::vocabulary! {
    /// What came of a contact.
    pub enum ContactOutcome("et utfall av kontakten") {
        /// Nobody answered.
        NotReached = "ikke-nådd" | "ikke-naadd" | "not-reached",
        /// Talked; no conclusion yet.
        Reached = "nådd" | "naadd" | "reached",
        /// Talked; no concern (phase 2 ends, monitoring).
        NoConcern = "ingen-bekymring" | "no-concern",
        /// Talked; concern (phase 3).
        Concern = "bekymring" | "concern",
    }
}

impl ContactOutcome {
    /// Norwegian, for sentences.
    pub fn norwegian(self) -> &'static str {
        match self {
            ContactOutcome::NotReached => "ikke nådd",
            ContactOutcome::Reached => "nådd",
            ContactOutcome::NoConcern => "ingen bekymring",
            ContactOutcome::Concern => "bekymring",
        }
    }

    /// Whether someone was reached.
    pub fn reached(self) -> bool {
        !matches!(self, ContactOutcome::NotReached)
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

crate::vocabulary! {
    /// Kinds of meeting.
    pub enum MeetingKind("en møtetype") {
        /// With pupil and parents (phase 3 and 4 samarbeidsmøte).
        Samarbeid = "samarbeidsmøte" | "samarbeid" | "cooperation",
        /// The school's resource team.
        Ressursteam = "ressursteam" | "ressursteammøte" | "resource-team",
    }
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
    /// 1-based number within the case (0 in cases stored before meetings
    /// were numbered; read as their position).
    #[serde(default)]
    pub number: u32,
    /// Kind.
    pub kind: MeetingKind,
    /// When.
    pub at: DateTime<Utc>,
    /// Where.
    #[serde(default)]
    pub place: Option<String>,
    /// Who is or was present, each with a role.
    #[serde(default)]
    pub participants: Vec<Participant>,
    /// Whether it has been held.
    pub held: bool,
    /// Whether leadership was / will be present.
    pub leadership_present: bool,
    /// Whether the mapping was complete after it (held meetings only).
    pub mapping_complete: Option<bool>,
    /// What was decided, in the order recorded.
    #[serde(default)]
    pub decisions: Vec<String>,
    /// The next meeting set at this one.
    #[serde(default)]
    pub next_at: Option<DateTime<Utc>>,
    /// Who recorded it as held (the referat's author).
    #[serde(default)]
    pub recorded_by: Option<Party>,
    /// When a copy of the referat went to the parents.
    #[serde(default)]
    pub copy_to_parents: Option<NaiveDate>,
}

impl Meeting {
    /// Whether someone from leadership is (or was) there.
    pub fn has_leadership(&self) -> bool {
        self.leadership_present || self.participants.iter().any(|p| p.role.is_leadership())
    }

    /// Whether the pupil is (or was) there.
    pub fn pupil_present(&self) -> bool {
        self.participants.iter().any(|p| p.role == ParticipantRole::Elev)
    }
}

crate::vocabulary! {
    /// The role a person has at a meeting or under an agreement.
    pub enum ParticipantRole("en rolle i møtet") {
        /// The pupil.
        Elev = "elev" | "eleven" | "pupil",
        /// A parent or guardian.
        Foresatt = "foresatt" | "foresatte" | "mor" | "far" | "parent",
        /// The contact teacher.
        Kontaktlaerer = "kontaktlærer" | "contact-teacher",
        /// The department head.
        Avdelingsleder = "avdelingsleder" | "department-head",
        /// The principal or other leadership.
        Rektor = "rektor" | "ledelse" | "ledelsen",
        /// The school nurse.
        Helsesykepleier = "helsesykepleier",
        /// The school counsellor.
        Raadgiver = "rådgiver",
        /// PP-tjenesten.
        Ppt = "ppt" | "pp-tjenesten",
        /// The coordinator.
        Fagkoordinator = "fagkoordinator" | "coordinator",
        /// Someone else.
        Annen = "annen" | "andre" | "other",
    }
}

impl ParticipantRole {
    /// Norwegian, as written before a signature line.
    pub fn norwegian(self) -> &'static str {
        match self {
            ParticipantRole::Elev => "Eleven",
            ParticipantRole::Foresatt => "Foresatt",
            ParticipantRole::Kontaktlaerer => "Kontaktlærer",
            ParticipantRole::Avdelingsleder => "Avdelingsleder",
            ParticipantRole::Rektor => "Ledelsen",
            ParticipantRole::Helsesykepleier => "Helsesykepleier",
            ParticipantRole::Raadgiver => "Rådgiver",
            ParticipantRole::Ppt => "PP-tjenesten",
            ParticipantRole::Fagkoordinator => "Fagkoordinator",
            ParticipantRole::Annen => "Annen",
        }
    }

    /// Whether the role is the school's leadership.
    pub fn is_leadership(self) -> bool {
        matches!(self, ParticipantRole::Avdelingsleder | ParticipantRole::Rektor)
    }
}

/// Someone present at a meeting or an agreement: a role, and for staff
/// perhaps who (a staff or Matrix id, or initials). Pupils and parents are
/// named by role only: documents go to chat, where names do not belong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Participant {
    /// The role.
    pub role: ParticipantRole,
    /// Who, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who: Option<String>,
}

impl Participant {
    /// A participant.
    pub fn new(role: ParticipantRole, who: Option<&str>) -> Participant {
        Participant {
            role,
            who: who.map(str::trim).filter(|w| !w.is_empty()).map(str::to_string),
        }
    }

    /// `Kontaktlærer (kl-1)` or `Eleven`.
    pub fn label(&self) -> String {
        match &self.who {
            Some(w) => format!("{} ({w})", self.role.norwegian()),
            None => self.role.norwegian().to_string(),
        }
    }
}

impl std::str::FromStr for Participant {
    type Err = crate::cases::words::WordError;

    /// `rolle` or `rolle:hvem`; a word that is no role is someone else.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (role, who) = match s.split_once(':') {
            Some((r, w)) => (r, Some(w)),
            None => (s, None),
        };
        Ok(Participant::new(role.parse()?, who))
    }
}

impl<'de> Deserialize<'de> for Participant {
    /// `{"role": "foresatt", "who": …}`, or the text form agreements used to
    /// keep (`"eleven"`, `"kontaktlærer"`; anything else is someone else).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Full {
                role: ParticipantRole,
                #[serde(default)]
                who: Option<String>,
            },
            Text(String),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Full { role, who } => Participant::new(role, who.as_deref()),
            Raw::Text(t) => t
                .parse()
                .unwrap_or_else(|_| Participant::new(ParticipantRole::Annen, Some(&t))),
        })
    }
}

crate::vocabulary! {
    /// The eight boxes of the Tiltakssirkel (Otnes 2016), in the model's order.
    pub enum CircleBox("en boks i tiltakssirkelen (1–8)") {
        /// Relasjon til voksne på skolen (a good place to start).
        RelasjonVoksne = "relasjon-voksne" | "1" | "voksne",
        /// Relasjon til medelever.
        RelasjonMedelever = "relasjon-medelever" | "2" | "medelever",
        /// Mestring på skolen.
        Mestring = "mestring" | "3",
        /// Struktur på skolen.
        Struktur = "struktur" | "4",
        /// Foreldres tillit til skolen.
        ForeldresTillit = "foreldres-tillit" | "5" | "tillit",
        /// Fritidsaktiviteter.
        Fritid = "fritid" | "6" | "fritidsaktiviteter",
        /// Hjemmeforhold (not a good place to start).
        Hjemmeforhold = "hjemmeforhold" | "7" | "hjemme",
        /// Individuelle faktorer (not a good place to start).
        Individuelle = "individuelle-faktorer" | "8" | "individuelle",
    }
}

impl CircleBox {
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
    /// When it was added.
    #[serde(default)]
    pub added_at: Option<DateTime<Utc>>,
}

crate::vocabulary! {
    /// Where a measure happens.
    pub enum Place("et sted for tiltaket") {
        /// At school.
        School = "skolen" | "skole" | "school",
        /// At home.
        Home = "hjemme" | "hjem" | "home",
    }
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
    /// Who was present: everyone signs.
    pub present: Vec<Participant>,
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
    /// What the pupil said they want, in their own words (as noted).
    #[serde(default)]
    pub pupil_view: Option<String>,
}

crate::vocabulary! {
    /// The decision of an evaluation.
    pub enum EvaluationOutcome("et utfall av evalueringen") {
        /// Resolved: no further systematic follow-up.
        Resolved = "løst" | "resolved",
        /// Better but not there: a new agreement (phase 3 again, or continued phase 4).
        NewAgreement = "ny-avtale" | "bedre" | "new-agreement" | "improved",
        /// Unchanged or rising: phase 4.
        Phase4 = "fase-4" | "uendret" | "phase4" | "unchanged",
    }
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The agreement evaluated.
    pub agreement: u32,
    /// When.
    pub at: DateTime<Utc>,
    /// By whom.
    pub by: Party,
    /// The decision.
    pub outcome: EvaluationOutcome,
    /// Where.
    #[serde(default)]
    pub place: Option<String>,
    /// Who was present.
    #[serde(default)]
    pub present: Vec<Participant>,
    /// How far the goal was reached.
    #[serde(default)]
    pub goal: Option<GoalRating>,
    /// How far each sub-goal was reached, by sub-goal number.
    #[serde(default)]
    pub sub_goals: Vec<Rated<GoalRating>>,
    /// Whether each measure was carried out, by measure number.
    #[serde(default)]
    pub measures: Vec<Rated<MeasureRating>>,
    /// Whether Plan B was used, and whether it worked.
    #[serde(default)]
    pub plan_b: Option<PlanBUse>,
    /// Referrals considered at the evaluation (Vedlegg 4: PPT, BUP, barnevern, others).
    #[serde(default)]
    pub referrals_considered: Vec<Agency>,
    /// What the pupil said, in their own words (as noted).
    #[serde(default)]
    pub pupil_view: Option<String>,
    /// The attendance before and during the agreement, frozen when evaluated.
    #[serde(default)]
    pub numbers: Option<crate::cases::numbers::Comparison>,
    /// «Løst» was kept although attendance got worse, after a confirmation.
    #[serde(default)]
    pub confirmed_against_numbers: bool,
}

/// A rating of a numbered sub-goal or measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rated<R> {
    /// The sub-goal's or measure's number.
    pub number: u32,
    /// The rating.
    pub rating: R,
}

impl<R: std::str::FromStr<Err = crate::cases::words::WordError>> std::str::FromStr for Rated<R> {
    type Err = String;

    /// `2:delvis`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (n, r) = s
            .split_once(':')
            .ok_or_else(|| format!("«{s}» er ikke på formen NUMMER:VURDERING"))?;
        let number = n.trim().parse().map_err(|_| format!("«{n}» er ikke et nummer"))?;
        let rating = r.parse().map_err(|e: crate::cases::words::WordError| e.to_string())?;
        Ok(Rated { number, rating })
    }
}

crate::vocabulary! {
    /// How far a goal or sub-goal was reached.
    pub enum GoalRating("en vurdering av målet") {
        /// Reached.
        Reached = "nådd" | "reached",
        /// Partly.
        Partly = "delvis" | "partly",
        /// Not reached.
        NotReached = "ikke-nådd" | "not-reached",
    }
}

crate::vocabulary! {
    /// Whether a measure was carried out.
    pub enum MeasureRating("en vurdering av tiltaket") {
        /// Carried out.
        Done = "gjennomført" | "done",
        /// Partly.
        Partly = "delvis" | "partly",
        /// Not carried out.
        NotDone = "ikke-gjennomført" | "ikke" | "not-done",
    }
}

crate::vocabulary! {
    /// How Plan B went.
    pub enum PlanBUse("hvordan plan B gikk") {
        /// Not needed.
        NotUsed = "ikke-brukt" | "not-used",
        /// Used, and it worked.
        Worked = "brukt-virket" | "virket" | "worked",
        /// Used, and it did not work.
        DidNotWork = "brukt-virket-ikke" | "virket-ikke" | "did-not-work",
    }
}

impl GoalRating {
    /// Norwegian, for documents.
    pub fn norwegian(self) -> &'static str {
        match self {
            GoalRating::Reached => "nådd",
            GoalRating::Partly => "delvis nådd",
            GoalRating::NotReached => "ikke nådd",
        }
    }
}

impl MeasureRating {
    /// Norwegian, for documents.
    pub fn norwegian(self) -> &'static str {
        match self {
            MeasureRating::Done => "gjennomført",
            MeasureRating::Partly => "delvis gjennomført",
            MeasureRating::NotDone => "ikke gjennomført",
        }
    }
}

impl PlanBUse {
    /// Norwegian, for documents.
    pub fn norwegian(self) -> &'static str {
        match self {
            PlanBUse::NotUsed => "ikke brukt",
            PlanBUse::Worked => "brukt, og det virket",
            PlanBUse::DidNotWork => "brukt, men det virket ikke",
        }
    }
}

crate::vocabulary! {
    /// Where in the work the pupil's own view was heard.
    pub enum Stage("et trinn i arbeidet") {
        /// At the mapping.
        Mapping = "kartlegging" | "mapping",
        /// When the agreement was made.
        Agreement = "avtale" | "agreement",
        /// At the evaluation.
        Evaluation = "evaluering" | "evaluation",
    }
}

/// The pupil's own view and wishes, as noted (Barnekonvensjonen art. 12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PupilView {
    /// Where in the work.
    pub stage: Stage,
    /// When noted.
    pub at: DateTime<Utc>,
    /// What the pupil said.
    pub text: String,
    /// Whether the pupil took part in person (rather than being told after).
    #[serde(default)]
    pub took_part: Option<bool>,
}

crate::vocabulary! {
    /// A side of a Tiltakssirkel box.
    pub enum Side("ressurs eller risiko") {
        /// Something that helps.
        Resource = "ressurs" | "ressurser" | "resource",
        /// Something that stands in the way.
        Risk = "risiko" | "risk",
    }
}

crate::vocabulary! {
    /// An agency a case can be referred to or coordinated by.
    pub enum Agency("en instans") {
        /// Skolen selv.
        Skole = "skole" | "skolen",
        /// PP-tjenesten.
        Ppt = "ppt" | "pp-tjenesten",
        /// Barne- og ungdomspsykiatrisk poliklinikk.
        Bup = "bup",
        /// Fastlege.
        Fastlege = "fastlege",
        /// Barneverntjenesten.
        Barnevern = "barnevern" | "barneverntjenesten" | "barnevernet",
        /// Familievernkontoret.
        Familievern = "familievern" | "familievernkontoret",
        /// Helsesykepleier / skolehelsetjenesten.
        Helsesykepleier = "helsesykepleier" | "skolehelsetjenesten",
        /// Psykisk helseteam.
        PsykiskHelse = "psykisk-helse" | "psykisk-helseteam",
        /// Utekontakten.
        Utekontakten = "utekontakten",
    }
}

impl Agency {
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

    /// The code kept in the store's referral rows (the canonical word).
    pub fn code(self) -> &'static str {
        self.word()
    }

    /// From a word or an alias.
    pub fn parse(s: &str) -> Option<Agency> {
        s.parse().ok()
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

crate::vocabulary! {
    /// Why a case was closed.
    pub enum CloseReason("en grunn til å avslutte") {
        /// The absence is resolved.
        Resolved = "løst" | "resolved",
        /// No concern, and the review found nothing new.
        NoConcern = "ingen-bekymring" | "no-concern",
        /// The pupil moved or changed school.
        Moved = "flyttet" | "moved",
        /// A special outcome took over (hjemmeundervisning / fritak).
        SpecialOutcome = "særskilt-utfall" | "særskilt" | "special",
        /// Something else.
        Other = "annet" | "other",
    }
}

impl CloseReason {
    /// Norwegian.
    pub fn norwegian(self) -> &'static str {
        match self {
            CloseReason::Resolved => "fraværet er løst",
            CloseReason::NoConcern => "ingen bekymring, og ikke nytt fravær",
            CloseReason::Moved => "eleven har flyttet eller byttet skole",
            CloseReason::SpecialOutcome => "særskilt utfall (hjemmeundervisning eller fritak)",
            CloseReason::Other => "annen grunn",
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
    /// The pupil's own view, noted at mapping, agreement and evaluation.
    #[serde(default)]
    pub pupil_views: Vec<PupilView>,
    /// Opened for old absence: waiting for leadership to triage.
    #[serde(default)]
    pub triage: bool,
    /// The newest invalid absence the case has acted on.
    #[serde(default)]
    pub invalid_seen: Option<NaiveDate>,
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

    /// Every measure ever added: those agreed (newest agreement last) and
    /// those waiting for an agreement, by number.
    pub fn all_measures(&self) -> Vec<&Measure> {
        let mut all: Vec<&Measure> = self
            .agreements
            .iter()
            .flat_map(|a| a.measures.iter())
            .chain(self.measures.iter())
            .collect();
        all.sort_by_key(|m| m.number);
        all.dedup_by_key(|m| m.number);
        all
    }

    /// The meeting with `number`, or the current one: one going on (not
    /// yet recorded as held, started within the last twelve hours or about
    /// to), one held earlier today, else the next planned. An old meeting is
    /// never the current one, so what is said at a later meeting does not
    /// end up in an earlier referat.
    pub fn meeting_index(&self, number: Option<u32>, now: DateTime<Utc>) -> Option<usize> {
        if let Some(n) = number {
            return self.meetings.iter().position(|m| m.number == n);
        }
        let today = crate::domain::dates::school_date_utc(now);
        let going_on = |m: &Meeting| {
            !m.held && m.at <= now + chrono::Duration::hours(1) && m.at >= now - chrono::Duration::hours(12)
        };
        let held_today = |m: &Meeting| m.held && crate::domain::dates::school_date_utc(m.at) == today;
        let pick = |f: &dyn Fn(&Meeting) -> bool| {
            self.meetings
                .iter()
                .enumerate()
                .filter(|(_, m)| f(m))
                .max_by_key(|(_, m)| m.at)
                .map(|(i, _)| i)
        };
        pick(&going_on).or_else(|| pick(&held_today)).or_else(|| {
            self.meetings
                .iter()
                .enumerate()
                .filter(|(_, m)| !m.held && m.at > now)
                .min_by_key(|(_, m)| m.at)
                .map(|(i, _)| i)
        })
    }

    /// The next planned meeting, if any.
    pub fn next_meeting(&self) -> Option<&Meeting> {
        self.meetings.iter().filter(|m| !m.held).min_by_key(|m| m.at)
    }

    /// The latest held meeting, if any.
    pub fn last_held_meeting(&self) -> Option<&Meeting> {
        self.meetings.iter().filter(|m| m.held).max_by_key(|m| m.at)
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
