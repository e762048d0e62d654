//! The command language people use in chat (`!kontakt S-2026-0001 telefon
//! bekymring`) and on the command line (`tilstede cases kontakt S-2026-0001
//! --kanal telefon --utfall bekymring`). Both come from one table,
//! [`SPECS`]: the words, the arguments, and the help text, so the two can
//! never drift apart. The values are the case model's own types with their
//! canonical Norwegian words ([`crate::cases::words`]). Parsing is pure.
//!
//! In chat, required arguments come in order, optional ones as
//! `navn=verdi` (quote text with spaces: `sted="Møterom 2"`), flags as a
//! bare word, and free text last. On the command line every argument after
//! the case number is a `--navn`.

use crate::cases::model::{
    Agency, Case, Channel, CircleBox, CloseReason, ContactOutcome, Contacted, EvaluationOutcome, GoalRating,
    MeasureRating, MeetingKind, Participant, Phase, Place, PlanBUse, Rated, Side, Stage,
};
use crate::cases::words::Vocabulary;
use crate::cases::{Command as Step, SubGoalInput};
use crate::domain::dates::oslo_instant;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use std::collections::BTreeMap;

/// The command words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandName {
    /// `!hjelp`.
    Help,
    /// `!saker`.
    Cases,
    /// `!sak`.
    Case,
    /// `!kontakt`.
    Contact,
    /// `!møte`.
    Meeting,
    /// `!deltakere`.
    Participants,
    /// `!vedtak`.
    Decision,
    /// `!holdt`.
    Held,
    /// `!kopi`.
    MinutesSent,
    /// `!kartlegg`.
    Map,
    /// `!forslag`.
    Suggestions,
    /// `!elevsyn`.
    PupilView,
    /// `!tiltak`.
    Measure,
    /// `!avtale`.
    Agreement,
    /// `!evaluer`.
    Evaluate,
    /// `!fase`.
    Phase,
    /// `!meld`.
    Report,
    /// `!henvis`.
    Refer,
    /// `!koordinator`.
    Coordinator,
    /// `!aksepter`.
    Accept,
    /// `!avslå`.
    Decline,
    /// `!langvarig`.
    LongTerm,
    /// `!lukk`.
    Close,
}

/// How an argument is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// In chat in its place after the case number; `--navn` on the command line.
    Positional,
    /// `navn=verdi` in chat; `--navn verdi` on the command line.
    Named,
    /// A bare word in chat (`rapport`); `--navn` on the command line.
    Flag,
    /// The rest of the line in chat; `--navn "…"` on the command line.
    Rest,
}

/// What kind of value an argument takes.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// One of a vocabulary's words: what it is, and the choices.
    Word(&'static str, fn() -> String),
    /// `ÅÅÅÅ-MM-DD`.
    Date,
    /// `TT:MM`.
    Time,
    /// `TT:MM` today, or `ÅÅÅÅ-MM-DDTTT:MM`.
    DateTime,
    /// A Matrix user, `@navn:tjener`.
    User,
    /// Who is responsible: a role word or a Matrix user.
    Responsible,
    /// A whole number.
    Number,
    /// Free text.
    Text,
    /// No value (a flag).
    None,
}

/// One argument of a command.
#[derive(Debug, Clone, Copy)]
pub struct ArgSpec {
    /// The name in chat (`navn=`) and on the command line (`--navn`).
    pub key: &'static str,
    /// The placeholder in the synopsis, e.g. `KANAL`.
    pub placeholder: &'static str,
    /// How it is given.
    pub slot: Slot,
    /// What it takes.
    pub kind: Kind,
    /// Whether it must be given.
    pub required: bool,
    /// Whether it may be given more than once.
    pub repeated: bool,
    /// What it is, in Norwegian.
    pub help: &'static str,
}

/// One command: its words, whether it is about a case, its arguments and
/// its help text. The single source of chat parsing, chat help, and the
/// command line's subcommands and `--help`.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Which command.
    pub name: CommandName,
    /// The Norwegian word (without `!`).
    pub word: &'static str,
    /// The English alias.
    pub alias: &'static str,
    /// Whether the first argument is a case number.
    pub case: bool,
    /// Only in chat (the command line has its own `list` and `show`).
    pub chat_only: bool,
    /// The arguments after the case number.
    pub args: &'static [ArgSpec],
    /// The help text.
    pub help: &'static str,
}

const fn pos(key: &'static str, placeholder: &'static str, kind: Kind, help: &'static str) -> ArgSpec {
    ArgSpec {
        key,
        placeholder,
        slot: Slot::Positional,
        kind,
        required: true,
        repeated: false,
        help,
    }
}

const fn opt_pos(key: &'static str, placeholder: &'static str, kind: Kind, help: &'static str) -> ArgSpec {
    ArgSpec {
        required: false,
        ..pos(key, placeholder, kind, help)
    }
}

const fn named(key: &'static str, placeholder: &'static str, kind: Kind, help: &'static str) -> ArgSpec {
    ArgSpec {
        key,
        placeholder,
        slot: Slot::Named,
        kind,
        required: false,
        repeated: false,
        help,
    }
}

const fn many(key: &'static str, placeholder: &'static str, kind: Kind, help: &'static str) -> ArgSpec {
    ArgSpec {
        repeated: true,
        ..named(key, placeholder, kind, help)
    }
}

const fn flag(key: &'static str, help: &'static str) -> ArgSpec {
    ArgSpec {
        key,
        placeholder: "",
        slot: Slot::Flag,
        kind: Kind::None,
        required: false,
        repeated: false,
        help,
    }
}

const fn rest(key: &'static str, placeholder: &'static str, help: &'static str) -> ArgSpec {
    ArgSpec {
        key,
        placeholder,
        slot: Slot::Rest,
        kind: Kind::Text,
        required: true,
        repeated: false,
        help,
    }
}

macro_rules! word {
    ($t:ty) => {
        Kind::Word(<$t as Vocabulary>::WHAT, <$t as Vocabulary>::choices)
    };
}

/// Every command, in help order.
pub static SPECS: &[Spec] = &[
    Spec {
        name: CommandName::Help,
        word: "hjelp",
        alias: "help",
        case: false,
        chat_only: true,
        args: &[opt_pos(
            "kommando",
            "KOMMANDO",
            Kind::Text,
            "Kommandoen du vil vite mer om.",
        )],
        help: "Viser denne oversikten, eller hjelp til én kommando (`!hjelp tiltak`).",
    },
    Spec {
        name: CommandName::Cases,
        word: "saker",
        alias: "cases",
        case: false,
        chat_only: true,
        args: &[],
        help: "Lister de åpne sakene i dette rommet.",
    },
    Spec {
        name: CommandName::Case,
        word: "sak",
        alias: "case",
        case: true,
        chat_only: true,
        args: &[],
        help: "Viser status for én sak: fase, ansvarlig og neste frist.",
    },
    Spec {
        name: CommandName::Contact,
        word: "kontakt",
        alias: "contact",
        case: true,
        chat_only: false,
        args: &[
            pos("kanal", "KANAL", word!(Channel), "Hvordan kontakten ble tatt."),
            pos("utfall", "UTFALL", word!(ContactOutcome), "Hva kontakten førte til."),
            named(
                "med",
                "HVEM",
                word!(Contacted),
                "Hvem kontakten var med (standard: foresatte).",
            ),
            named(
                "tid",
                "TID",
                Kind::DateTime,
                "Når kontakten var, om ikke nå: TT:MM i dag eller ÅÅÅÅ-MM-DDTTT:MM.",
            ),
        ],
        help: "Logger kontakt med foresatte eller eleven og utfallet. I fase 2 avgjør \
               «bekymring» eller «ingen-bekymring» veien videre.",
    },
    Spec {
        name: CommandName::Meeting,
        word: "møte",
        alias: "meeting",
        case: true,
        chat_only: false,
        args: &[
            pos("dato", "DATO", Kind::Date, "Dagen for møtet (ÅÅÅÅ-MM-DD)."),
            pos("kl", "TT:MM", Kind::Time, "Klokkeslettet."),
            named(
                "type",
                "TYPE",
                word!(MeetingKind),
                "Hva slags møte (standard: samarbeidsmøte; i fase 4 ressursteam).",
            ),
            named("sted", "STED", Kind::Text, "Hvor møtet holdes."),
            flag("ledelsen", "Ledelsen er med på møtet."),
        ],
        help: "Setter tid (og sted) for neste møte i saken.",
    },
    Spec {
        name: CommandName::Participants,
        word: "deltakere",
        alias: "participants",
        case: true,
        chat_only: false,
        args: &[
            named(
                "møte",
                "NR",
                Kind::Number,
                "Møtets nummer (standard: møtet nå, ellers det neste).",
            ),
            rest(
                "hvem",
                "ROLLE[:HVEM] …",
                "Hvem som er til stede, med rolle: elev, foresatt, kontaktlærer, avdelingsleder, rektor, helsesykepleier, rådgiver, ppt, fagkoordinator eller annen; for ansatte gjerne med id (kontaktlærer:kl-1). Elev og foresatte nevnes bare med rolle.",
            ),
        ],
        help: "Registrerer hvem som er til stede på møtet. Alle til stede får hver sin linje for underskrift.",
    },
    Spec {
        name: CommandName::Decision,
        word: "vedtak",
        alias: "decision",
        case: true,
        chat_only: false,
        args: &[
            named("møte", "NR", Kind::Number, "Møtets nummer (standard: møtet nå)."),
            rest("tekst", "TEKST", "Hva som ble bestemt."),
        ],
        help: "Registrerer noe som ble bestemt på møtet; det kommer med i referatet.",
    },
    Spec {
        name: CommandName::Held,
        word: "holdt",
        alias: "held",
        case: true,
        chat_only: false,
        args: &[
            named(
                "kartlegging",
                "FERDIG",
                Kind::Text,
                "ferdig (standard) eller ikke-ferdig: da settes nytt møte innen en uke med ledelsen til stede.",
            ),
            named(
                "neste",
                "TID",
                Kind::DateTime,
                "Tidspunkt for neste møte: ÅÅÅÅ-MM-DDTTT:MM (i fase 4 påkrevd).",
            ),
            flag("ledelsen", "Ledelsen var med på møtet."),
        ],
        help: "Registrerer at møtet er holdt. Referatet lages av det som er registrert: hvem som var til stede, vedtak, tiltak med ansvarlige og neste møte.",
    },
    Spec {
        name: CommandName::MinutesSent,
        word: "kopi",
        alias: "minutes-sent",
        case: true,
        chat_only: false,
        args: &[
            named("dato", "DATO", Kind::Date, "Når kopien ble sendt (standard: i dag)."),
            named(
                "møte",
                "NR",
                Kind::Number,
                "Møtets nummer (standard: det siste holdte).",
            ),
        ],
        help: "Registrerer at en kopi av referatet er sendt foresatte (ikke på e-post når det står personsensitive opplysninger i det).",
    },
    Spec {
        name: CommandName::Map,
        word: "kartlegg",
        alias: "map",
        case: true,
        chat_only: false,
        args: &[
            pos("boks", "BOKS", word!(CircleBox), "Boksen i tiltakssirkelen."),
            pos(
                "side",
                "SIDE",
                word!(Side),
                "Ressurs (noe som hjelper) eller risiko (noe som står i veien).",
            ),
            rest("tekst", "TEKST", "Hva dere fant."),
        ],
        help: "Noterer en ressurs eller en risiko i en av de åtte boksene i tiltakssirkelen. For en risiko foreslår tilstede små tiltak i samme boks.",
    },
    Spec {
        name: CommandName::Suggestions,
        word: "forslag",
        alias: "suggestions",
        case: true,
        chat_only: false,
        args: &[],
        help: "Viser forslag til tiltak for boksene i tiltakssirkelen der det er notert risiko.",
    },
    Spec {
        name: CommandName::PupilView,
        word: "elevsyn",
        alias: "pupil-view",
        case: true,
        chat_only: false,
        args: &[
            named(
                "ved",
                "TRINN",
                word!(Stage),
                "Når eleven sa det (standard: kartlegging).",
            ),
            named("deltok", "JA/NEI", Kind::Text, "Om eleven selv var med (ja eller nei)."),
            rest("tekst", "TEKST", "Hva eleven selv mener og ønsker, med elevens ord."),
        ],
        help: "Noterer elevens eget syn og ønsker (Barnekonvensjonen art. 12). Kommer med i dagsorden, referat, avtale og evaluering.",
    },
    Spec {
        name: CommandName::Measure,
        word: "tiltak",
        alias: "measure",
        case: true,
        chat_only: false,
        args: &[
            pos(
                "boks",
                "BOKS",
                word!(CircleBox),
                "Boksen i tiltakssirkelen tiltaket styrker.",
            ),
            pos(
                "ansvarlig",
                "ANSVARLIG",
                Kind::Responsible,
                "Hvem som gjør det: kontaktlærer, ledelsen, foresatte, elev eller @bruker:tjener.",
            ),
            pos(
                "frist",
                "FRIST",
                Kind::Date,
                "Når tiltaket skal være gjort (ÅÅÅÅ-MM-DD).",
            ),
            named(
                "hvor",
                "HVOR",
                word!(Place),
                "På skolen eller hjemme (standard: hjemme når foresatte er ansvarlige).",
            ),
            rest("tekst", "TEKST", "Hva som gjøres."),
        ],
        help: "Legger til et tiltak i en boks i tiltakssirkelen, med ansvarlig og frist.",
    },
    Spec {
        name: CommandName::Agreement,
        word: "avtale",
        alias: "agreement",
        case: true,
        chat_only: false,
        args: &[
            named("mål", "MÅL", Kind::Text, "Målet for samarbeidet."),
            many(
                "delmål",
                "DELMÅL",
                Kind::Text,
                "Et delmål med varighet i uker: «tekst;uker», gjerne med tiltakene: «tekst;uker;1,2».",
            ),
            named(
                "plan-b",
                "PLAN-B",
                Kind::Text,
                "Hva som skjer om eleven ikke møter som avtalt.",
            ),
            named(
                "plan-b-ansvarlig",
                "HVEM",
                Kind::Text,
                "Hvem som har ansvaret for plan B.",
            ),
            named("sted", "STED", Kind::Text, "Hvor avtalen ble laget."),
            many(
                "til-stede",
                "ROLLE[:HVEM]",
                Kind::Text,
                "Hvem som er til stede, én per gang (standard: de som er registrert på møtet). Alle signerer, også eleven.",
            ),
            named(
                "evaluering",
                "DATO",
                Kind::Date,
                "Dato for evalueringen (standard: om tre uker).",
            ),
            named(
                "elevsyn",
                "TEKST",
                Kind::Text,
                "Hva eleven selv ønsker, med elevens ord.",
            ),
        ],
        help: "Lager samarbeidsavtalen av tiltakene som er registrert. I chat uten mål: \
               tilstede spør om mål, delmål og plan B i tråden.",
    },
    Spec {
        name: CommandName::Evaluate,
        word: "evaluer",
        alias: "evaluate",
        case: true,
        chat_only: false,
        args: &[
            pos("utfall", "UTFALL", word!(EvaluationOutcome), "Beslutningen."),
            named("mål", "VURDERING", word!(GoalRating), "Hvor langt målet er nådd."),
            many(
                "delmål",
                "NR:VURDERING",
                Kind::Text,
                "Et delmål og hvor langt det er nådd, f.eks. 1:delvis (nådd, delvis eller ikke-nådd).",
            ),
            many(
                "tiltak",
                "NR:VURDERING",
                Kind::Text,
                "Et tiltak og om det er gjennomført, f.eks. 2:gjennomført (gjennomført, delvis eller ikke-gjennomført).",
            ),
            named("plan-b", "BRUK", word!(PlanBUse), "Hvordan plan B gikk."),
            many(
                "vurdert",
                "INSTANS",
                word!(Agency),
                "En henvisning som er vurdert (PPT, BUP, barnevern, andre).",
            ),
            many(
                "til-stede",
                "ROLLE[:HVEM]",
                Kind::Text,
                "Hvem som er til stede (standard: de som er registrert på møtet).",
            ),
            named("sted", "STED", Kind::Text, "Hvor evalueringen ble holdt."),
            named(
                "elevsyn",
                "TEKST",
                Kind::Text,
                "Hva eleven selv mener, med elevens ord.",
            ),
            flag("bekreft", "Står fast på «løst» selv om oppmøtet ble dårligere."),
        ],
        help: "Registrerer evalueringen av samarbeidsavtalen (vedlegg 4): mål, delmål, tiltak, plan B, vurderte henvisninger og beslutningen. Tallene for fraværet før og under avtalen låses da.",
    },
    Spec {
        name: CommandName::Phase,
        word: "fase",
        alias: "phase",
        case: true,
        chat_only: false,
        args: &[pos("fase", "FASE", word!(Phase), "Fasen saken går til (1–4).")],
        help: "Flytter saken til en fase.",
    },
    Spec {
        name: CommandName::Report,
        word: "meld",
        alias: "report",
        case: true,
        chat_only: false,
        args: &[],
        help: "Avdelingsleder melder saken til skolens ressursteam.",
    },
    Spec {
        name: CommandName::Refer,
        word: "henvis",
        alias: "refer",
        case: true,
        chat_only: false,
        args: &[
            pos("instans", "INSTANS", word!(Agency), "Hvem saken henvises til."),
            flag("rapport", "Pedagogisk rapport er vedlagt (PP-tjenesten krever det)."),
            flag("legeerklæring", "Det trengs legeerklæring."),
            named(
                "sendt",
                "DATO",
                Kind::Date,
                "Når henvisningen ble sendt, om den er sendt.",
            ),
        ],
        help: "Registrerer en henvisning.",
    },
    Spec {
        name: CommandName::Coordinator,
        word: "koordinator",
        alias: "coordinator",
        case: true,
        chat_only: false,
        args: &[
            pos(
                "bruker",
                "@bruker:tjener",
                Kind::User,
                "Den som foreslås som fagkoordinator.",
            ),
            pos("instans", "ROLLE", word!(Agency), "Instansen vedkommende kommer fra."),
        ],
        help: "Foreslår en fagkoordinator; i chat lages et eget, kryptert saksrom. Ansvaret \
               flyttes først når vedkommende aksepterer.",
    },
    Spec {
        name: CommandName::Accept,
        word: "aksepter",
        alias: "accept",
        case: true,
        chat_only: false,
        args: &[],
        help: "Fagkoordinatoren tar imot saken; først da flyttes ansvaret.",
    },
    Spec {
        name: CommandName::Decline,
        word: "avslå",
        alias: "decline",
        case: true,
        chat_only: false,
        args: &[],
        help: "Den foreslåtte (eller den som foreslo) avslår overtakelsen.",
    },
    Spec {
        name: CommandName::LongTerm,
        word: "langvarig",
        alias: "long-term",
        case: true,
        chat_only: false,
        args: &[],
        help: "Markerer saken som langvarig, alvorlig skolefravær.",
    },
    Spec {
        name: CommandName::Close,
        word: "lukk",
        alias: "close",
        case: true,
        chat_only: false,
        args: &[opt_pos(
            "grunn",
            "GRUNN",
            word!(CloseReason),
            "Hvorfor (uten grunn: ingen-bekymring i fase 1–2, ellers løst).",
        )],
        help: "Avslutter saken.",
    },
];

impl CommandName {
    /// Every command, in help order.
    pub const ALL: &'static [CommandName] = &[
        CommandName::Help,
        CommandName::Cases,
        CommandName::Case,
        CommandName::Contact,
        CommandName::Meeting,
        CommandName::Participants,
        CommandName::Decision,
        CommandName::Held,
        CommandName::MinutesSent,
        CommandName::Map,
        CommandName::Suggestions,
        CommandName::PupilView,
        CommandName::Measure,
        CommandName::Agreement,
        CommandName::Evaluate,
        CommandName::Phase,
        CommandName::Report,
        CommandName::Refer,
        CommandName::Coordinator,
        CommandName::Accept,
        CommandName::Decline,
        CommandName::LongTerm,
        CommandName::Close,
    ];

    /// The table entry.
    pub fn spec(self) -> &'static Spec {
        SPECS
            .iter()
            .find(|s| s.name == self)
            .expect("every command is in the table")
    }

    /// The Norwegian command word (without `!`).
    pub fn word(self) -> &'static str {
        self.spec().word
    }

    /// The English alias (without `!`).
    pub fn alias(self) -> &'static str {
        self.spec().alias
    }

    /// The argument synopsis as written in chat.
    pub fn arguments(self) -> String {
        let spec = self.spec();
        let mut parts = Vec::new();
        if spec.case {
            parts.push("SAK".to_string());
        }
        for a in spec.args {
            let p = match a.slot {
                Slot::Positional | Slot::Rest => a.placeholder.to_string(),
                Slot::Named => format!("{}={}", a.key, a.placeholder),
                Slot::Flag => a.key.to_string(),
            };
            parts.push(if a.required { p } else { format!("[{p}]") });
        }
        parts.join(" ")
    }

    /// The help text, with the words each argument takes.
    pub fn help(self) -> String {
        let spec = self.spec();
        let mut out = spec.help.to_string();
        for a in spec.args {
            if let Kind::Word(_, choices) = a.kind {
                out.push_str(&format!(" {}: {}.", a.placeholder, choices()));
            }
        }
        out
    }

    /// Finds a command by its Norwegian word or English alias (any case;
    /// `mote` and `avsla` for keyboards without ø and å).
    pub fn lookup(word: &str) -> Option<CommandName> {
        let word = fold(word);
        SPECS
            .iter()
            .find(|s| fold(s.word) == word || s.alias == word)
            .map(|s| s.name)
    }
}

fn fold(s: &str) -> String {
    s.trim()
        .to_lowercase()
        .replace('ø', "o")
        .replace('å', "a")
        .replace('æ', "ae")
}

/// A case number as typed (letters, digits and `-`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CaseNumber(pub String);

/// Who is responsible for a measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Responsible {
    /// The contact teacher.
    ContactTeacher,
    /// School leadership.
    Leadership,
    /// The parents.
    Parents,
    /// The pupil.
    Pupil,
    /// A named Matrix user.
    User(String),
}

impl Responsible {
    /// How the measure names who is responsible.
    pub fn text(&self) -> String {
        match self {
            Responsible::ContactTeacher => "kontaktlærer".into(),
            Responsible::Leadership => "ledelsen".into(),
            Responsible::Parents => "foresatte".into(),
            Responsible::Pupil => "eleven".into(),
            Responsible::User(u) => u.clone(),
        }
    }
}

/// The terms of a samarbeidsavtale given in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementTerms {
    /// The goal.
    pub goal: String,
    /// Sub-goals.
    pub sub_goals: Vec<SubGoalInput>,
    /// Plan B.
    pub plan_b: String,
    /// Who is responsible for Plan B.
    pub plan_b_responsible: String,
    /// Where.
    pub place: Option<String>,
    /// Who is present.
    pub present: Vec<Participant>,
    /// The evaluation date.
    pub evaluation_date: Option<NaiveDate>,
    /// What the pupil wants.
    pub pupil_view: Option<String>,
}

/// What an evaluation found (Vedlegg 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluationInput {
    /// The decision.
    pub outcome: EvaluationOutcome,
    /// The goal.
    pub goal: Option<GoalRating>,
    /// Each sub-goal.
    pub sub_goals: Vec<Rated<GoalRating>>,
    /// Each measure.
    pub measures: Vec<Rated<MeasureRating>>,
    /// Plan B.
    pub plan_b: Option<PlanBUse>,
    /// Referrals considered.
    pub considered: Vec<Agency>,
    /// Who is present.
    pub present: Vec<Participant>,
    /// Where.
    pub place: Option<String>,
    /// The pupil's view.
    pub pupil_view: Option<String>,
    /// «Løst» stands against worse numbers.
    pub confirm: bool,
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Help, optionally about one command.
    Help(Option<CommandName>),
    /// List open cases.
    Cases,
    /// Show one case.
    Case(CaseNumber),
    /// Log a contact.
    Contact {
        /// The case.
        case: CaseNumber,
        /// How.
        channel: Channel,
        /// With what result.
        outcome: ContactOutcome,
        /// With whom.
        with: Contacted,
        /// When, if not now.
        at: Option<When>,
    },
    /// Set the next meeting.
    Meeting {
        /// The case.
        case: CaseNumber,
        /// When (Europe/Oslo local time).
        at: NaiveDateTime,
        /// Which kind, when given.
        kind: Option<MeetingKind>,
        /// Where, when given.
        place: Option<String>,
        /// Leadership will be present.
        leadership: bool,
    },
    /// Who is present at a meeting.
    Participants {
        /// The case.
        case: CaseNumber,
        /// The meeting, when given.
        meeting: Option<u32>,
        /// Who.
        participants: Vec<Participant>,
    },
    /// A decision at a meeting.
    Decision {
        /// The case.
        case: CaseNumber,
        /// The meeting, when given.
        meeting: Option<u32>,
        /// What was decided.
        text: String,
    },
    /// The meeting was held.
    Held {
        /// The case.
        case: CaseNumber,
        /// Whether the mapping is complete.
        mapping_complete: bool,
        /// The next meeting, when set.
        next: Option<When>,
        /// Leadership was there.
        leadership: bool,
    },
    /// The referat went to the parents.
    MinutesSent {
        /// The case.
        case: CaseNumber,
        /// When, if not today.
        date: Option<NaiveDate>,
        /// The meeting, when given.
        meeting: Option<u32>,
    },
    /// A resource or a risk in a Tiltakssirkel box.
    Map {
        /// The case.
        case: CaseNumber,
        /// The box.
        circle_box: CircleBox,
        /// Resource or risk.
        side: Side,
        /// What.
        text: String,
    },
    /// Suggested measures for the boxes with risks.
    Suggestions(CaseNumber),
    /// The pupil's own view.
    PupilView {
        /// The case.
        case: CaseNumber,
        /// Where in the work.
        stage: Stage,
        /// Whether the pupil took part.
        took_part: Option<bool>,
        /// What the pupil said.
        text: String,
    },
    /// Add a measure.
    Measure {
        /// The case.
        case: CaseNumber,
        /// Tiltakssirkel box.
        circle_box: CircleBox,
        /// Who does it.
        responsible: Responsible,
        /// By when.
        due: NaiveDate,
        /// At school or at home, when given.
        place: Option<Place>,
        /// What.
        text: String,
    },
    /// Make the agreement: in one go, or (in chat, without terms) by a dialogue.
    Agreement {
        /// The case.
        case: CaseNumber,
        /// The terms, when given.
        terms: Option<Box<AgreementTerms>>,
    },
    /// Record an evaluation.
    Evaluate {
        /// The case.
        case: CaseNumber,
        /// The decision and what was found.
        evaluation: Box<EvaluationInput>,
    },
    /// Move to a phase.
    Phase {
        /// The case.
        case: CaseNumber,
        /// The phase.
        phase: Phase,
    },
    /// Report the case to the ressursteam.
    Report(CaseNumber),
    /// Record a referral.
    Refer {
        /// The case.
        case: CaseNumber,
        /// To whom.
        agency: Agency,
        /// A pedagogisk rapport is attached.
        report: bool,
        /// A legeerklæring is needed.
        medical: bool,
        /// Sent on, when sent.
        sent: Option<NaiveDate>,
    },
    /// Propose a coordinator.
    Coordinator {
        /// The case.
        case: CaseNumber,
        /// The coordinator's Matrix id.
        user: String,
        /// The coordinator's agency.
        role: Agency,
    },
    /// The coordinator accepts.
    Accept(CaseNumber),
    /// The handoff is declined.
    Decline(CaseNumber),
    /// Mark the case long-term.
    LongTerm(CaseNumber),
    /// Close the case.
    Close {
        /// The case.
        case: CaseNumber,
        /// Why, when given.
        reason: Option<CloseReason>,
    },
}

/// Why a command could not be understood. The message is shown in chat.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The word after `!` is no command.
    #[error("ukjent kommando «!{0}». Skriv !hjelp for en oversikt.")]
    Unknown(String),
    /// An argument is missing.
    #[error("mangler {missing}. Bruk: !{word} {usage}")]
    Missing {
        /// The command word.
        word: &'static str,
        /// What is missing.
        missing: String,
        /// The synopsis.
        usage: String,
    },
    /// An argument has the wrong form.
    #[error("«{value}» er ikke {expected}. Bruk: !{word} {usage}")]
    Invalid {
        /// The command word.
        word: &'static str,
        /// The offending text.
        value: String,
        /// What was expected.
        expected: String,
        /// The synopsis.
        usage: String,
    },
    /// More arguments than the command takes.
    #[error("for mange argumenter. Bruk: !{word} {usage}")]
    TooMany {
        /// The command word.
        word: &'static str,
        /// The synopsis.
        usage: String,
    },
    /// A quote was opened and never closed.
    #[error("et anførselstegn mangler slutt. Bruk: !{word} {usage}")]
    Unclosed {
        /// The command word.
        word: &'static str,
        /// The synopsis.
        usage: String,
    },
}

impl ParseError {
    /// What is wrong, without the chat synopsis (the command line shows its own).
    pub fn reason(&self) -> String {
        match self {
            ParseError::Unknown(w) => format!("ukjent kommando «{w}»"),
            ParseError::Missing { missing, .. } => format!("mangler {missing}"),
            ParseError::Invalid { value, expected, .. } => format!("«{value}» er ikke {expected}"),
            ParseError::TooMany { .. } => "for mange argumenter".into(),
            ParseError::Unclosed { .. } => "et anførselstegn mangler slutt".into(),
        }
    }
}

/// Whether `text` is addressed to the bot at all (starts with `!`).
pub fn is_command(text: &str) -> bool {
    text.trim_start().starts_with('!')
}

/// The full `!hjelp` text (plain).
pub fn help_text() -> String {
    let mut out = String::from("Kommandoer (engelske alias i parentes):\n");
    for c in CommandName::ALL {
        let args = c.arguments();
        let args = if args.is_empty() {
            String::new()
        } else {
            format!(" {args}")
        };
        out.push_str(&format!("!{}{} (!{}): {}\n", c.word(), args, c.alias(), c.help()));
    }
    out
}

/// The arguments of one command as given, before their values are read:
/// the case number and each argument's texts by key. Chat and the command
/// line fill it their own way; [`build`] reads it the same way for both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    /// The case number.
    pub case: Option<String>,
    /// Texts by argument key (flags hold `ja`).
    pub args: BTreeMap<&'static str, Vec<String>>,
}

/// Splits a chat message into words; `"…"` and `«…»` keep spaces inside.
fn tokenize(text: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in text.chars() {
        match quote {
            Some(close) if c == close => quote = None,
            Some(_) => current.push(c),
            None if c == '"' => {
                quote = Some('"');
                in_word = true;
            }
            None if c == '«' => {
                quote = Some('»');
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            None => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return None;
    }
    if in_word {
        out.push(current);
    }
    Some(out)
}

fn missing(spec: &Spec, what: impl Into<String>) -> ParseError {
    ParseError::Missing {
        word: spec.word,
        missing: what.into(),
        usage: spec.name.arguments(),
    }
}

fn invalid(spec: &Spec, value: &str, expected: impl Into<String>) -> ParseError {
    ParseError::Invalid {
        word: spec.word,
        value: value.to_string(),
        expected: expected.into(),
        usage: spec.name.arguments(),
    }
}

/// Reads the words after a chat command into [`Values`].
fn chat_values(spec: &'static Spec, words: &[String]) -> Result<Values, ParseError> {
    let mut values = Values::default();
    let mut positional = spec.args.iter().filter(|a| a.slot == Slot::Positional).peekable();
    let rest = spec.args.iter().find(|a| a.slot == Slot::Rest);
    let mut rest_words: Vec<&str> = Vec::new();
    let mut case_wanted = spec.case;
    for w in words {
        let keyed = w.split_once('=').and_then(|(k, v)| {
            spec.args
                .iter()
                .find(|a| a.slot != Slot::Positional && fold(a.key) == fold(k))
                .map(|a| (a, v))
        });
        if let Some((a, v)) = keyed
            && rest_words.is_empty()
        {
            let v = if a.slot == Slot::Flag && v.is_empty() { "ja" } else { v };
            let entry = values.args.entry(a.key).or_default();
            if !a.repeated && !entry.is_empty() {
                return Err(invalid(spec, w, format!("gitt én gang ({} er gitt før)", a.key)));
            }
            entry.push(v.to_string());
            continue;
        }
        if rest_words.is_empty()
            && let Some(a) = spec
                .args
                .iter()
                .find(|a| a.slot == Slot::Flag && fold(a.key) == fold(w))
        {
            values.args.entry(a.key).or_default().push("ja".into());
            continue;
        }
        if case_wanted {
            values.case = Some(w.clone());
            case_wanted = false;
            continue;
        }
        if rest_words.is_empty()
            && let Some(a) = positional.next()
        {
            values.args.entry(a.key).or_default().push(w.clone());
            continue;
        }
        if rest.is_some() {
            rest_words.push(w);
            continue;
        }
        return Err(ParseError::TooMany {
            word: spec.word,
            usage: spec.name.arguments(),
        });
    }
    if let Some(a) = rest
        && !rest_words.is_empty()
    {
        values.args.insert(a.key, vec![rest_words.join(" ")]);
    }
    Ok(values)
}

/// Reads typed values out of [`Values`] with errors that name the argument.
struct Reader<'a> {
    spec: &'static Spec,
    values: &'a Values,
}

impl Reader<'_> {
    fn arg(&self, key: &str) -> &'static ArgSpec {
        self.spec
            .args
            .iter()
            .find(|a| a.key == key)
            .unwrap_or_else(|| panic!("!{} has no argument «{key}»", self.spec.word))
    }

    fn raw(&self, key: &str) -> Result<Option<&str>, ParseError> {
        let a = self.arg(key);
        match self.values.args.get(key).and_then(|v| v.first()) {
            Some(v) => Ok(Some(v.as_str())),
            None if a.required => Err(missing(self.spec, a.help_name())),
            None => Ok(None),
        }
    }

    fn case(&self) -> Result<CaseNumber, ParseError> {
        let w = self
            .values
            .case
            .as_deref()
            .ok_or_else(|| missing(self.spec, "saksnummer"))?;
        if !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            Ok(CaseNumber(w.to_string()))
        } else {
            Err(invalid(self.spec, w, "et saksnummer"))
        }
    }

    fn word<T: Vocabulary + std::str::FromStr>(&self, key: &str) -> Result<Option<T>, ParseError> {
        self.raw(key)?
            .map(|w| {
                w.parse::<T>()
                    .map_err(|_| invalid(self.spec, w, format!("{} ({})", T::WHAT, T::choices())))
            })
            .transpose()
    }

    fn need<T>(&self, key: &str, v: Option<T>) -> Result<T, ParseError> {
        v.ok_or_else(|| missing(self.spec, self.arg(key).help_name()))
    }

    fn date(&self, key: &str) -> Result<Option<NaiveDate>, ParseError> {
        self.raw(key)?
            .map(|w| parse_date(w).ok_or_else(|| invalid(self.spec, w, "en dato (ÅÅÅÅ-MM-DD)")))
            .transpose()
    }

    fn time(&self, key: &str) -> Result<Option<NaiveTime>, ParseError> {
        self.raw(key)?
            .map(|w| NaiveTime::parse_from_str(w, "%H:%M").map_err(|_| invalid(self.spec, w, "et klokkeslett (TT:MM)")))
            .transpose()
    }

    fn datetime(&self, key: &str) -> Result<Option<When>, ParseError> {
        self.raw(key)?
            .map(|w| {
                if let Ok(t) = NaiveTime::parse_from_str(w, "%H:%M") {
                    return Ok(When::Today(t));
                }
                NaiveDateTime::parse_from_str(w, "%Y-%m-%dT%H:%M")
                    .or_else(|_| NaiveDateTime::parse_from_str(w, "%Y-%m-%d %H:%M"))
                    .map(When::At)
                    .map_err(|_| invalid(self.spec, w, "et tidspunkt (TT:MM eller ÅÅÅÅ-MM-DDTTT:MM)"))
            })
            .transpose()
    }

    fn text(&self, key: &str) -> Result<Option<String>, ParseError> {
        Ok(self.raw(key)?.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
    }

    fn number(&self, key: &str) -> Result<Option<u32>, ParseError> {
        self.raw(key)?
            .map(|w| w.parse().map_err(|_| invalid(self.spec, w, "et nummer")))
            .transpose()
    }

    fn yes_no(&self, key: &str) -> Result<Option<bool>, ParseError> {
        self.raw(key)?
            .map(|w| match fold(w).as_str() {
                "ja" | "yes" => Ok(true),
                "nei" | "no" => Ok(false),
                _ => Err(invalid(self.spec, w, "ja eller nei")),
            })
            .transpose()
    }

    /// Every value of a repeated argument, each read with `parse`.
    fn each<T>(
        &self,
        key: &str,
        expected: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, ParseError> {
        self.all(key)
            .iter()
            .flat_map(|v| {
                v.split([',', ' '])
                    .map(str::trim)
                    .filter(|w| !w.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .map(|w| parse(&w).map_err(|e| invalid(self.spec, &w, format!("{expected}: {e}"))))
            .collect()
    }

    fn participants(&self, key: &str) -> Result<Vec<Participant>, ParseError> {
        self.each(key, "en deltaker (rolle eller rolle:hvem)", |w| {
            w.parse::<Participant>().map_err(|e| e.to_string())
        })
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.values.args.get(key).cloned().unwrap_or_default()
    }

    fn flag(&self, key: &str) -> Result<bool, ParseError> {
        match self.raw(key)? {
            None => Ok(false),
            Some(v) => match fold(v).as_str() {
                "ja" | "yes" | "true" => Ok(true),
                "nei" | "no" | "false" => Ok(false),
                _ => Err(invalid(self.spec, v, "ja eller nei")),
            },
        }
    }

    fn user(&self, key: &str) -> Result<Option<String>, ParseError> {
        self.raw(key)?
            .map(|w| {
                if is_user_id(w) {
                    Ok(w.to_string())
                } else {
                    Err(invalid(self.spec, w, "en Matrix-bruker (@navn:tjener)"))
                }
            })
            .transpose()
    }

    fn responsible(&self, key: &str) -> Result<Option<Responsible>, ParseError> {
        self.raw(key)?
            .map(|w| {
                Ok(match fold(w).as_str() {
                    "kontaktlaerer" | "contact-teacher" => Responsible::ContactTeacher,
                    "ledelsen" | "ledelse" | "leadership" => Responsible::Leadership,
                    "foresatte" | "foresatt" | "parents" => Responsible::Parents,
                    "elev" | "eleven" | "pupil" => Responsible::Pupil,
                    _ if is_user_id(w) => Responsible::User(w.to_string()),
                    _ => {
                        return Err(invalid(
                            self.spec,
                            w,
                            "en ansvarlig (kontaktlærer, ledelsen, foresatte, elev eller @bruker:tjener)",
                        ));
                    }
                })
            })
            .transpose()
    }
}

impl ArgSpec {
    /// How the argument is named when it is missing.
    fn help_name(&self) -> String {
        match self.kind {
            Kind::Word(what, _) => what
                .trim_start_matches("en ")
                .trim_start_matches("et ")
                .split(" (")
                .next()
                .unwrap_or(self.key)
                .to_string(),
            Kind::Date => format!("{} (dato)", self.key),
            Kind::Time => "klokkeslett".into(),
            _ if self.key == "tekst" => "beskrivelse av tiltaket".into(),
            _ => self.key.to_string(),
        }
    }
}

/// A time given as a clock time today or as a date and time (Europe/Oslo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// At this clock time today.
    Today(NaiveTime),
    /// At this date and time.
    At(NaiveDateTime),
}

impl When {
    /// The instant, with `today` for a clock time alone.
    pub fn instant(self, today: NaiveDate) -> DateTime<Utc> {
        match self {
            When::Today(t) => oslo_instant(today.and_time(t)),
            When::At(t) => oslo_instant(t),
        }
    }
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// `tekst;uker[;tiltak,tiltak]`.
fn sub_goal(spec: &'static Spec, s: &str) -> Result<SubGoalInput, ParseError> {
    let mut parts = s.split(';').map(str::trim);
    let text = parts.next().unwrap_or("");
    let weeks = parts.next().unwrap_or("");
    let measures = parts.next().unwrap_or("");
    let bad = || invalid(spec, s, "et delmål på formen «tekst;uker» eller «tekst;uker;1,2»");
    if text.is_empty() || parts.next().is_some() {
        return Err(bad());
    }
    let weeks: u32 = weeks.parse().ok().filter(|w| (1..=52).contains(w)).ok_or_else(bad)?;
    let measures = measures
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| m.parse::<u32>().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    Ok(SubGoalInput {
        text: text.to_string(),
        weeks,
        measures,
    })
}

/// Reads a command's [`Values`] into a typed [`Command`]: the same for chat
/// and the command line.
pub fn build(name: CommandName, values: &Values) -> Result<Command, ParseError> {
    let spec = name.spec();
    let r = Reader { spec, values };
    Ok(match name {
        CommandName::Help => Command::Help(match r.raw("kommando")? {
            None => None,
            Some(w) => {
                let w = w.trim_start_matches('!');
                Some(CommandName::lookup(w).ok_or_else(|| invalid(spec, w, "en kommando"))?)
            }
        }),
        CommandName::Cases => Command::Cases,
        CommandName::Case => Command::Case(r.case()?),
        CommandName::Contact => Command::Contact {
            case: r.case()?,
            channel: r.need("kanal", r.word("kanal")?)?,
            outcome: r.need("utfall", r.word("utfall")?)?,
            with: r.word("med")?.unwrap_or(Contacted::Parents),
            at: r.datetime("tid")?,
        },
        CommandName::Meeting => {
            let case = r.case()?;
            let date = r.need("dato", r.date("dato")?)?;
            let time = r.need("kl", r.time("kl")?)?;
            Command::Meeting {
                case,
                at: date.and_time(time),
                kind: r.word("type")?,
                place: r.text("sted")?,
                leadership: r.flag("ledelsen")?,
            }
        }
        CommandName::Participants => {
            let case = r.case()?;
            let participants = r.participants("hvem")?;
            if participants.is_empty() {
                return Err(missing(spec, "hvem som er til stede"));
            }
            Command::Participants {
                case,
                meeting: r.number("møte")?,
                participants,
            }
        }
        CommandName::Decision => Command::Decision {
            case: r.case()?,
            meeting: r.number("møte")?,
            text: r.need("tekst", r.text("tekst")?)?,
        },
        CommandName::Held => Command::Held {
            case: r.case()?,
            mapping_complete: match r.raw("kartlegging")?.map(fold).as_deref() {
                None | Some("ferdig") | Some("ja") => true,
                Some("ikke-ferdig") | Some("uferdig") | Some("nei") => false,
                Some(_) => {
                    return Err(invalid(
                        spec,
                        r.raw("kartlegging")?.unwrap_or(""),
                        "ferdig eller ikke-ferdig",
                    ));
                }
            },
            next: r.datetime("neste")?,
            leadership: r.flag("ledelsen")?,
        },
        CommandName::MinutesSent => Command::MinutesSent {
            case: r.case()?,
            date: r.date("dato")?,
            meeting: r.number("møte")?,
        },
        CommandName::Map => Command::Map {
            case: r.case()?,
            circle_box: r.need("boks", r.word("boks")?)?,
            side: r.need("side", r.word("side")?)?,
            text: r.need("tekst", r.text("tekst")?)?,
        },
        CommandName::Suggestions => Command::Suggestions(r.case()?),
        CommandName::PupilView => Command::PupilView {
            case: r.case()?,
            stage: r.word("ved")?.unwrap_or(Stage::Mapping),
            took_part: r.yes_no("deltok")?,
            text: r.need("tekst", r.text("tekst")?)?,
        },
        CommandName::Measure => Command::Measure {
            case: r.case()?,
            circle_box: r.need("boks", r.word("boks")?)?,
            responsible: r.need("ansvarlig", r.responsible("ansvarlig")?)?,
            due: r.need("frist", r.date("frist")?)?,
            place: r.word("hvor")?,
            text: r.need("tekst", r.text("tekst")?)?,
        },
        CommandName::Agreement => {
            let case = r.case()?;
            let goal = r.text("mål")?;
            let terms = match goal {
                None if values.args.is_empty() => None,
                None => return Err(missing(spec, "mål")),
                Some(goal) => {
                    let sub_goals = r
                        .all("delmål")
                        .iter()
                        .map(|s| sub_goal(spec, s))
                        .collect::<Result<Vec<_>, _>>()?;
                    if sub_goals.is_empty() {
                        return Err(missing(spec, "delmål"));
                    }
                    Some(Box::new(AgreementTerms {
                        goal,
                        sub_goals,
                        plan_b: r.text("plan-b")?.ok_or_else(|| missing(spec, "plan-b"))?,
                        plan_b_responsible: r
                            .text("plan-b-ansvarlig")?
                            .ok_or_else(|| missing(spec, "plan-b-ansvarlig"))?,
                        place: r.text("sted")?,
                        present: r.participants("til-stede")?,
                        evaluation_date: r.date("evaluering")?,
                        pupil_view: r.text("elevsyn")?,
                    }))
                }
            };
            Command::Agreement { case, terms }
        }
        CommandName::Evaluate => Command::Evaluate {
            case: r.case()?,
            evaluation: Box::new(EvaluationInput {
                outcome: r.need("utfall", r.word("utfall")?)?,
                goal: r.word("mål")?,
                sub_goals: r.each("delmål", "et delmål med vurdering (1:delvis)", |w| w.parse())?,
                measures: r.each("tiltak", "et tiltak med vurdering (2:gjennomført)", |w| w.parse())?,
                plan_b: r.word("plan-b")?,
                considered: r.each("vurdert", "en instans", |w| {
                    w.parse::<Agency>().map_err(|e| e.to_string())
                })?,
                present: r.participants("til-stede")?,
                place: r.text("sted")?,
                pupil_view: r.text("elevsyn")?,
                confirm: r.flag("bekreft")?,
            }),
        },
        CommandName::Phase => Command::Phase {
            case: r.case()?,
            phase: r.need("fase", r.word("fase")?)?,
        },
        CommandName::Report => Command::Report(r.case()?),
        CommandName::Refer => Command::Refer {
            case: r.case()?,
            agency: r.need("instans", r.word("instans")?)?,
            report: r.flag("rapport")?,
            medical: r.flag("legeerklæring")?,
            sent: r.date("sendt")?,
        },
        CommandName::Coordinator => Command::Coordinator {
            case: r.case()?,
            user: r.need("bruker", r.user("bruker")?)?,
            role: r.need("instans", r.word("instans")?)?,
        },
        CommandName::Accept => Command::Accept(r.case()?),
        CommandName::Decline => Command::Decline(r.case()?),
        CommandName::LongTerm => Command::LongTerm(r.case()?),
        CommandName::Close => Command::Close {
            case: r.case()?,
            reason: r.word("grunn")?,
        },
    })
}

/// Parses a chat message that starts with `!`.
pub fn parse(text: &str) -> Result<Command, ParseError> {
    let text = text.trim_start().strip_prefix('!').unwrap_or(text).trim();
    let word = text.split_whitespace().next().unwrap_or("");
    let name = CommandName::lookup(word).ok_or_else(|| ParseError::Unknown(word.to_string()))?;
    let spec = name.spec();
    let words = tokenize(text[word.len()..].trim()).ok_or(ParseError::Unclosed {
        word: spec.word,
        usage: name.arguments(),
    })?;
    build(name, &chat_values(spec, &words)?)
}

/// A syntactic check of a Matrix user id (`@local:server`).
fn is_user_id(s: &str) -> bool {
    matrix_sdk::ruma::UserId::parse(s).is_ok()
}

impl Command {
    /// The case number the command is about, if any.
    pub fn case(&self) -> Option<&str> {
        match self {
            Command::Case(n)
            | Command::Report(n)
            | Command::Accept(n)
            | Command::Decline(n)
            | Command::LongTerm(n)
            | Command::Suggestions(n)
            | Command::Participants { case: n, .. }
            | Command::Decision { case: n, .. }
            | Command::Held { case: n, .. }
            | Command::MinutesSent { case: n, .. }
            | Command::Map { case: n, .. }
            | Command::PupilView { case: n, .. }
            | Command::Agreement { case: n, .. }
            | Command::Contact { case: n, .. }
            | Command::Meeting { case: n, .. }
            | Command::Measure { case: n, .. }
            | Command::Evaluate { case: n, .. }
            | Command::Phase { case: n, .. }
            | Command::Refer { case: n, .. }
            | Command::Coordinator { case: n, .. }
            | Command::Close { case: n, .. } => Some(n.0.as_str()),
            Command::Help(_) | Command::Cases => None,
        }
    }

    /// The workflow step this command is, for `case` at `now`. `None` for
    /// commands that are not one step by themselves (help, listing,
    /// showing, the agreement dialogue).
    pub fn to_step(&self, case: &Case, now: DateTime<Utc>) -> Option<Step> {
        let today = crate::domain::dates::school_date_utc(now);
        let default_kind = if case.phase == Phase::Further {
            MeetingKind::Ressursteam
        } else {
            MeetingKind::Samarbeid
        };
        Some(match self {
            Command::Contact {
                channel,
                outcome,
                with,
                at,
                ..
            } => Step::LogContact {
                with: *with,
                at: at.map(|t| t.instant(today)),
                channel: *channel,
                outcome: *outcome,
            },
            Command::Meeting {
                at,
                kind,
                leadership,
                place,
                ..
            } => Step::SetMeeting {
                kind: kind.unwrap_or(default_kind),
                at: oslo_instant(*at),
                leadership_present: *leadership,
                place: place.clone(),
                participants: Vec::new(),
            },
            Command::Participants {
                meeting, participants, ..
            } => Step::AddParticipants {
                meeting: *meeting,
                participants: participants.clone(),
            },
            Command::Decision { meeting, text, .. } => Step::RecordDecision {
                meeting: *meeting,
                text: text.clone(),
            },
            Command::Held {
                mapping_complete,
                next,
                leadership,
                ..
            } => {
                // The meeting going on (or just over) is the one held.
                let current = case
                    .meeting_index(None, now)
                    .map(|i| &case.meetings[i])
                    .filter(|m| !m.held && m.at <= now + chrono::Duration::hours(12));
                Step::MeetingHeld {
                    kind: current.map(|m| m.kind).unwrap_or(default_kind),
                    at: current.map(|m| m.at).unwrap_or(now),
                    leadership_present: *leadership,
                    mapping_complete: *mapping_complete,
                    next_meeting: next.map(|t| t.instant(today)),
                }
            }
            Command::MinutesSent { date, meeting, .. } => Step::MinutesSent {
                meeting: *meeting,
                date: *date,
            },
            Command::Map {
                circle_box, side, text, ..
            } => Step::MapBox {
                circle_box: *circle_box,
                resources: if *side == Side::Resource {
                    vec![text.clone()]
                } else {
                    Vec::new()
                },
                risks: if *side == Side::Risk {
                    vec![text.clone()]
                } else {
                    Vec::new()
                },
            },
            Command::PupilView {
                stage, took_part, text, ..
            } => Step::NotePupilView {
                stage: *stage,
                text: text.clone(),
                took_part: *took_part,
            },
            Command::Measure {
                circle_box,
                responsible,
                due,
                place,
                text,
                ..
            } => Step::AddMeasure {
                circle_box: *circle_box,
                text: text.clone(),
                responsible: responsible.text(),
                due: *due,
                at_home: match place {
                    Some(p) => *p == Place::Home,
                    None => *responsible == Responsible::Parents,
                },
            },
            Command::Agreement { terms: Some(t), .. } => Step::CreateAgreement {
                place: t.place.clone().unwrap_or_else(|| "skolen".into()),
                present: t.present.clone(),
                goal: t.goal.clone(),
                sub_goals: t.sub_goals.clone(),
                plan_b: t.plan_b.clone(),
                plan_b_responsible: t.plan_b_responsible.clone(),
                valid_days: None,
                evaluation_date: t.evaluation_date,
                pupil_view: t.pupil_view.clone(),
            },
            Command::Evaluate { evaluation: e, .. } => Step::Evaluate {
                outcome: e.outcome,
                place: e.place.clone(),
                present: e.present.clone(),
                goal: e.goal,
                sub_goals: e.sub_goals.clone(),
                measures: e.measures.clone(),
                plan_b: e.plan_b,
                referrals_considered: e.considered.clone(),
                pupil_view: e.pupil_view.clone(),
                confirm: e.confirm,
                numbers: None,
            },
            Command::Phase { phase, .. } => Step::ChangePhase { to: *phase },
            Command::Report(_) => Step::ReportToRessursteam,
            Command::Refer {
                agency,
                report,
                medical,
                sent,
                ..
            } => Step::Refer {
                agency: *agency,
                decided: today,
                sent: *sent,
                pedagogisk_rapport: *report,
                legeerklaering_needed: *medical,
            },
            Command::Coordinator { user, role, .. } => Step::ProposeHandoff {
                agency: *role,
                person: user.clone(),
            },
            Command::Accept(_) => Step::AcceptHandoff,
            Command::Decline(_) => Step::DeclineHandoff,
            Command::LongTerm(_) => Step::MarkLongTerm,
            Command::Close { reason, .. } => Step::Close {
                reason: reason.unwrap_or(if matches!(case.phase, Phase::Contact | Phase::Monitoring) {
                    CloseReason::NoConcern
                } else {
                    CloseReason::Resolved
                }),
            },
            Command::Help(_)
            | Command::Cases
            | Command::Case(_)
            | Command::Suggestions(_)
            | Command::Agreement { terms: None, .. } => {
                return None;
            }
        })
    }
}

/// The words of every value an argument of `spec` takes, for `--help`.
pub fn arg_help(a: &ArgSpec) -> String {
    match a.kind {
        Kind::Word(_, choices) => format!("{} Én av: {}.", a.help, choices()),
        _ => a.help.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::model::ParticipantRole;

    fn case(s: &str) -> CaseNumber {
        CaseNumber(s.into())
    }

    #[test]
    fn norwegian_words_and_english_aliases_parse_alike() {
        for c in CommandName::ALL {
            assert_eq!(CommandName::lookup(c.word()), Some(*c));
            assert_eq!(CommandName::lookup(c.alias()), Some(*c));
            assert_eq!(CommandName::lookup(&c.alias().to_uppercase()), Some(*c));
        }
        assert_eq!(parse("!saker"), Ok(Command::Cases));
        assert_eq!(parse("  !cases "), Ok(Command::Cases));
        assert_eq!(parse("!sak 2026-0001"), Ok(Command::Case(case("2026-0001"))));
        assert_eq!(parse("!case 2026-0001"), parse("!sak 2026-0001"));
        assert_eq!(parse("!mote 7 2026-12-01 14:30"), parse("!møte 7 2026-12-01 14:30"));
        assert_eq!(parse("!avsla 7"), Ok(Command::Decline(case("7"))));
    }

    #[test]
    fn help_text_comes_from_the_table() {
        let help = help_text();
        assert!(
            help.contains("!tiltak SAK BOKS ANSVARLIG FRIST [hvor=HVOR] TEKST (!measure): Legger til et tiltak i en boks i tiltakssirkelen"),
            "{help}"
        );
        assert!(help.contains("!aksepter SAK (!accept): Fagkoordinatoren tar imot saken; først da flyttes ansvaret."));
        assert!(help.contains("KANAL: telefon, møte, melding eller brev."), "{help}");
        assert_eq!(help.lines().count(), CommandName::ALL.len() + 1);
        assert_eq!(parse("!help tiltak"), Ok(Command::Help(Some(CommandName::Measure))));
        assert_eq!(parse("!hjelp !avtale"), Ok(Command::Help(Some(CommandName::Agreement))));
    }

    #[test]
    fn typed_arguments_parse() {
        assert_eq!(
            parse("!kontakt 12 telefon bekymring"),
            Ok(Command::Contact {
                case: case("12"),
                channel: Channel::Phone,
                outcome: ContactOutcome::Concern,
                with: Contacted::Parents,
                at: None,
            })
        );
        assert_eq!(
            parse("!contact 12 phone not-reached med=eleven"),
            Ok(Command::Contact {
                case: case("12"),
                channel: Channel::Phone,
                outcome: ContactOutcome::NotReached,
                with: Contacted::Pupil,
                at: None,
            })
        );
        assert_eq!(
            parse("!meeting 12 2026-12-01 09:15 sted=\"Møterom 2\" ledelsen"),
            Ok(Command::Meeting {
                case: case("12"),
                at: NaiveDate::from_ymd_opt(2026, 12, 1)
                    .unwrap()
                    .and_hms_opt(9, 15, 0)
                    .unwrap(),
                kind: None,
                place: Some("Møterom 2".into()),
                leadership: true,
            })
        );
        assert_eq!(
            parse("!tiltak 12 1 kontaktlærer 2026-12-05 faste samtaler hver mandag"),
            Ok(Command::Measure {
                case: case("12"),
                circle_box: CircleBox::RelasjonVoksne,
                responsible: Responsible::ContactTeacher,
                due: NaiveDate::from_ymd_opt(2026, 12, 5).unwrap(),
                place: None,
                text: "faste samtaler hver mandag".into()
            })
        );
        assert_eq!(
            parse("!tiltak 12 mestring @kari:kommune.no 2026-12-05 hvor=hjemme læringspartner"),
            Ok(Command::Measure {
                case: case("12"),
                circle_box: CircleBox::Mestring,
                responsible: Responsible::User("@kari:kommune.no".into()),
                due: NaiveDate::from_ymd_opt(2026, 12, 5).unwrap(),
                place: Some(Place::Home),
                text: "læringspartner".into()
            })
        );
        let Ok(Command::Evaluate { evaluation, .. }) = parse("!evaluer 12 uendret") else {
            panic!("an evaluation");
        };
        assert_eq!(evaluation.outcome, EvaluationOutcome::Phase4);
        let Ok(Command::Evaluate { evaluation: e, .. }) = parse(
            "!evaluer 12 løst mål=nådd delmål=1:delvis delmål=2:nådd tiltak=1:gjennomført,2:ikke plan-b=ikke-brukt vurdert=ppt vurdert=bup elevsyn=«Vil prøve hele dager» bekreft",
        ) else {
            panic!("an evaluation");
        };
        assert_eq!(e.goal, Some(GoalRating::Reached));
        assert_eq!(
            e.sub_goals,
            vec![
                Rated {
                    number: 1,
                    rating: GoalRating::Partly
                },
                Rated {
                    number: 2,
                    rating: GoalRating::Reached
                }
            ]
        );
        assert_eq!(
            e.measures[1],
            Rated {
                number: 2,
                rating: MeasureRating::NotDone
            }
        );
        assert_eq!(e.plan_b, Some(PlanBUse::NotUsed));
        assert_eq!(e.considered, vec![Agency::Ppt, Agency::Bup]);
        assert_eq!(e.pupil_view.as_deref(), Some("Vil prøve hele dager"));
        assert!(e.confirm);
        assert!(parse("!evaluer 12 løst delmål=1:kanskje").is_err());
        assert_eq!(
            parse("!kartlegg 12 voksne risiko Redd for engelsklæreren"),
            Ok(Command::Map {
                case: case("12"),
                circle_box: CircleBox::RelasjonVoksne,
                side: Side::Risk,
                text: "Redd for engelsklæreren".into()
            })
        );
        assert_eq!(
            parse("!deltakere 12 elev foresatt kontaktlærer:kl-1 rektor"),
            Ok(Command::Participants {
                case: case("12"),
                meeting: None,
                participants: vec![
                    Participant::new(ParticipantRole::Elev, None),
                    Participant::new(ParticipantRole::Foresatt, None),
                    Participant::new(ParticipantRole::Kontaktlaerer, Some("kl-1")),
                    Participant::new(ParticipantRole::Rektor, None),
                ]
            })
        );
        assert!(parse("!deltakere 12 bestemor").is_err());
        assert_eq!(
            parse("!holdt 12 kartlegging=ikke-ferdig neste=2026-12-08T10:00"),
            Ok(Command::Held {
                case: case("12"),
                mapping_complete: false,
                next: Some(When::At(
                    NaiveDate::from_ymd_opt(2026, 12, 8)
                        .unwrap()
                        .and_hms_opt(10, 0, 0)
                        .unwrap()
                )),
                leadership: false,
            })
        );
        assert_eq!(
            parse("!elevsyn 12 deltok=ja Vil helst begynne med første time"),
            Ok(Command::PupilView {
                case: case("12"),
                stage: Stage::Mapping,
                took_part: Some(true),
                text: "Vil helst begynne med første time".into()
            })
        );
        assert_eq!(
            parse("!fase 12 4"),
            Ok(Command::Phase {
                case: case("12"),
                phase: Phase::Further
            })
        );
        assert_eq!(
            parse("!refer 12 PPT"),
            Ok(Command::Refer {
                case: case("12"),
                agency: Agency::Ppt,
                report: false,
                medical: false,
                sent: None,
            })
        );
        assert_eq!(
            parse("!henvis 12 ppt rapport legeerklæring sendt=2026-12-02"),
            Ok(Command::Refer {
                case: case("12"),
                agency: Agency::Ppt,
                report: true,
                medical: true,
                sent: NaiveDate::from_ymd_opt(2026, 12, 2),
            })
        );
        assert!(parse("!henvis 12 ppt kanskje").is_err());
        assert_eq!(
            parse("!koordinator 12 @ola:helse.no bup"),
            Ok(Command::Coordinator {
                case: case("12"),
                user: "@ola:helse.no".into(),
                role: Agency::Bup
            })
        );
        assert_eq!(parse("!aksepter 12"), Ok(Command::Accept(case("12"))));
        assert_eq!(
            parse("!lukk 12"),
            Ok(Command::Close {
                case: case("12"),
                reason: None
            })
        );
        assert_eq!(
            parse("!close 12 moved"),
            Ok(Command::Close {
                case: case("12"),
                reason: Some(CloseReason::Moved)
            })
        );
        assert!(parse("!lukk 12 fordi").is_err());
        assert_eq!(
            parse("!avtale 12"),
            Ok(Command::Agreement {
                case: case("12"),
                terms: None
            })
        );
        let Ok(Command::Agreement { terms: Some(t), .. }) = parse(
            "!avtale 12 mål=«Eleven er på skolen hver dag» delmål=\"Første time;2;1,2\" delmål=\"Hele dager;3\" plan-b=«Ringer hjem kl. 9» plan-b-ansvarlig=kontaktlærer til-stede=eleven til-stede=foresatte",
        ) else {
            panic!("terms");
        };
        assert_eq!(t.goal, "Eleven er på skolen hver dag");
        assert_eq!(t.sub_goals[0].measures, vec![1, 2]);
        assert_eq!(t.sub_goals[1].weeks, 3);
        assert_eq!(
            t.present,
            vec![
                Participant::new(ParticipantRole::Elev, None),
                Participant::new(ParticipantRole::Foresatt, None)
            ]
        );
    }

    #[test]
    fn errors_say_what_is_wrong_and_show_the_usage() {
        assert_eq!(
            parse("!foo").unwrap_err().to_string(),
            "ukjent kommando «!foo». Skriv !hjelp for en oversikt."
        );
        assert_eq!(
            parse("!sak").unwrap_err().to_string(),
            "mangler saksnummer. Bruk: !sak SAK"
        );
        assert_eq!(
            parse("!tiltak 12 9 elev 2026-12-05 x").unwrap_err().to_string(),
            "«9» er ikke en boks i tiltakssirkelen (1–8) (relasjon-voksne, relasjon-medelever, mestring, struktur, foreldres-tillit, fritid, hjemmeforhold eller individuelle-faktorer). Bruk: !tiltak SAK BOKS ANSVARLIG FRIST [hvor=HVOR] TEKST"
        );
        assert!(matches!(
            parse("!tiltak 12 1 elev 2026-12-05"),
            Err(ParseError::Missing { missing, .. }) if missing == "beskrivelse av tiltaket"
        ));
        assert!(matches!(
            parse("!møte 12 2026-13-01 10:00"),
            Err(ParseError::Invalid { expected, .. }) if expected == "en dato (ÅÅÅÅ-MM-DD)"
        ));
        assert!(matches!(
            parse("!møte 12 2026-12-01 25:00"),
            Err(ParseError::Invalid { expected, .. }) if expected == "et klokkeslett (TT:MM)"
        ));
        assert!(matches!(
            parse("!koordinator 12 ola bup"),
            Err(ParseError::Invalid { .. })
        ));
        assert!(matches!(
            parse("!lukk 12 løst nå"),
            Err(ParseError::TooMany { word: "lukk", .. })
        ));
        assert!(matches!(
            parse("!sak 12;drop"),
            Err(ParseError::Invalid { expected, .. }) if expected == "et saksnummer"
        ));
        assert!(matches!(parse("!fase 12 5"), Err(ParseError::Invalid { .. })));
        assert!(matches!(
            parse("!møte 12 2026-12-01 10:00 sted=\"x"),
            Err(ParseError::Unclosed { .. })
        ));
        assert_eq!(
            parse("!kontakt 12 telefon").unwrap_err().to_string(),
            "mangler utfall av kontakten. Bruk: !kontakt SAK KANAL UTFALL [med=HVEM] [tid=TID]"
        );
    }

    #[test]
    fn only_bang_messages_are_commands() {
        assert!(is_command("!saker"));
        assert!(is_command("  !hjelp"));
        assert!(!is_command("hei !saker"));
    }
}
