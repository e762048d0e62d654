//! Chat commands: parsing is pure. The doc comments on [`CommandName`] are the
//! `!hjelp` text, so the help can never drift from the commands.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

/// Declares [`CommandName`] from one table: variant, Norwegian word, English
/// alias, argument synopsis, and the doc comment that doubles as help text.
macro_rules! command_names {
    ($( $(#[doc = $doc:literal])+ $variant:ident = ($word:literal, $alias:literal, $args:literal) ),+ $(,)?) => {
        /// The command words. Each variant's doc comment is its `!hjelp` line.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum CommandName {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl CommandName {
            /// Every command, in help order.
            pub const ALL: &'static [CommandName] = &[$(CommandName::$variant),+];

            /// The Norwegian command word (without `!`).
            pub fn word(self) -> &'static str {
                match self { $(CommandName::$variant => $word),+ }
            }

            /// The English alias (without `!`).
            pub fn alias(self) -> &'static str {
                match self { $(CommandName::$variant => $alias),+ }
            }

            /// The argument synopsis.
            pub fn arguments(self) -> &'static str {
                match self { $(CommandName::$variant => $args),+ }
            }

            /// The help text: the variant's doc comment.
            pub fn help(self) -> String {
                match self {
                    $(CommandName::$variant => [$($doc),+].iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ")),+
                }
            }
        }
    };
}

command_names! {
    /// Viser denne oversikten, eller hjelp til én kommando (`!hjelp tiltak`).
    Help = ("hjelp", "help", "[KOMMANDO]"),
    /// Lister de åpne sakene i dette rommet.
    Cases = ("saker", "cases", ""),
    /// Viser status for én sak: fase, ansvarlig og neste frist.
    Case = ("sak", "case", "SAK"),
    /// Logger kontakt med foresatte og utfallet: kanal er telefon, møte eller
    /// melding; utfall er ikke-nådd, ingen-bekymring eller bekymring.
    Contact = ("kontakt", "contact", "SAK KANAL UTFALL"),
    /// Setter tidspunkt for neste møte i saken.
    Meeting = ("møte", "meeting", "SAK ÅÅÅÅ-MM-DD TT:MM"),
    /// Legger til et tiltak i en boks i tiltakssirkelen (1–8), med ansvarlig
    /// (kontaktlærer, ledelsen, foresatte, elev eller @bruker) og frist.
    Measure = ("tiltak", "measure", "SAK BOKS ANSVARLIG ÅÅÅÅ-MM-DD TEKST"),
    /// Lager samarbeidsavtalen av tiltakene som er registrert.
    Agreement = ("avtale", "agreement", "SAK"),
    /// Registrerer evalueringen av avtalen: løst, bedre eller uendret.
    Evaluate = ("evaluer", "evaluate", "SAK UTFALL"),
    /// Flytter saken til en fase (1–4).
    Phase = ("fase", "phase", "SAK FASE"),
    /// Registrerer en henvisning: ppt, bup, barnevern, helsesykepleier,
    /// familievern, fastlege, psykisk-helse eller utekontakten. Skriv
    /// «rapport» når pedagogisk rapport er vedlagt (PPT krever det) og
    /// «legeerklæring» når det trengs legeerklæring.
    Refer = ("henvis", "refer", "SAK INSTANS [rapport] [legeerklæring]"),
    /// Overlater koordineringen til en fagkoordinator i et eget, kryptert saksrom.
    Coordinator = ("koordinator", "coordinator", "SAK @bruker:tjener ROLLE"),
    /// Fagkoordinatoren tar imot saken; først da flyttes ansvaret.
    Accept = ("aksepter", "accept", "SAK"),
    /// Lukker saken, med grunn: løst, ingen-bekymring, flyttet, særskilt
    /// eller annet (uten grunn: ingen-bekymring i fase 1–2, ellers løst).
    Close = ("lukk", "close", "SAK [GRUNN]"),
}

/// A case number as typed in chat (letters, digits and `-`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CaseNumber(pub String);

/// How the parents were contacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// By phone (the routine's preferred way).
    Phone,
    /// In a meeting.
    Meeting,
    /// By message.
    Message,
}

/// What came of a contact with the parents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactOutcome {
    /// Nobody was reached.
    NotReached,
    /// Reached; no concern (phase 2 ends).
    NoConcern,
    /// Reached; concern (go to phase 3).
    Concern,
}

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

/// The outcome of evaluating an agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvaluationOutcome {
    /// Resolved: the measures may end.
    Resolved,
    /// Improved but not there: new agreement, repeat phase 3.
    Improved,
    /// Unchanged or rising: go to phase 4.
    Unchanged,
}

/// Where a case can be referred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agency {
    /// PP-tjenesten.
    Ppt,
    /// Barne- og ungdomspsykiatrisk poliklinikk.
    Bup,
    /// Barneverntjenesten.
    Barnevern,
    /// Helsesykepleier / skolehelsetjenesten.
    Helsesykepleier,
    /// Familievernkontoret.
    Familievern,
    /// The GP.
    Fastlege,
    /// Psykisk helseteam.
    PsykiskHelse,
    /// Utekontakten.
    Utekontakten,
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
    /// Log a parent contact.
    Contact {
        /// The case.
        case: CaseNumber,
        /// How.
        channel: Channel,
        /// With what result.
        outcome: ContactOutcome,
    },
    /// Set the next meeting.
    Meeting {
        /// The case.
        case: CaseNumber,
        /// When (Europe/Oslo local time).
        at: NaiveDateTime,
    },
    /// Add a measure.
    Measure {
        /// The case.
        case: CaseNumber,
        /// Tiltakssirkel box, 1–8.
        circle_box: u8,
        /// Who does it.
        responsible: Responsible,
        /// By when.
        due: NaiveDate,
        /// What.
        text: String,
    },
    /// Build the agreement.
    Agreement(CaseNumber),
    /// Record an evaluation.
    Evaluate {
        /// The case.
        case: CaseNumber,
        /// The outcome.
        outcome: EvaluationOutcome,
    },
    /// Move to a phase.
    Phase {
        /// The case.
        case: CaseNumber,
        /// 1–4.
        phase: u8,
    },
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
    },
    /// Hand the case to a coordinator.
    Coordinator {
        /// The case.
        case: CaseNumber,
        /// The coordinator's Matrix id.
        user: String,
        /// The coordinator's role (agency).
        role: Agency,
    },
    /// The coordinator accepts.
    Accept(CaseNumber),
    /// Close the case.
    Close {
        /// The case.
        case: CaseNumber,
        /// Why, when given.
        reason: Option<CloseWhy>,
    },
}

/// Why a case is closed, as typed in chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseWhy {
    /// The absence is resolved.
    Resolved,
    /// No concern.
    NoConcern,
    /// The pupil moved.
    Moved,
    /// A special outcome (hjemmeundervisning / fritak).
    Special,
    /// Something else.
    Other,
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
        missing: &'static str,
        /// The synopsis.
        usage: &'static str,
    },
    /// An argument has the wrong form.
    #[error("«{value}» er ikke {expected}. Bruk: !{word} {usage}")]
    Invalid {
        /// The command word.
        word: &'static str,
        /// The offending text.
        value: String,
        /// What was expected.
        expected: &'static str,
        /// The synopsis.
        usage: &'static str,
    },
    /// More arguments than the command takes.
    #[error("for mange argumenter. Bruk: !{word} {usage}")]
    TooMany {
        /// The command word.
        word: &'static str,
        /// The synopsis.
        usage: &'static str,
    },
}

/// Whether `text` is addressed to the bot at all (starts with `!`).
pub fn is_command(text: &str) -> bool {
    text.trim_start().starts_with('!')
}

impl CommandName {
    /// Finds a command by its Norwegian word or English alias (any case).
    pub fn lookup(word: &str) -> Option<CommandName> {
        let word = word.to_lowercase();
        // "mote" for keyboards without ø.
        let word = if word == "mote" { "møte".to_string() } else { word };
        CommandName::ALL
            .iter()
            .copied()
            .find(|c| c.word() == word || c.alias() == word)
    }
}

/// The full `!hjelp` text (plain).
pub fn help_text() -> String {
    let mut out = String::from("Kommandoer (engelske alias i parentes):\n");
    for c in CommandName::ALL {
        let args = if c.arguments().is_empty() {
            String::new()
        } else {
            format!(" {}", c.arguments())
        };
        out.push_str(&format!("!{}{} (!{}): {}\n", c.word(), args, c.alias(), c.help()));
    }
    out
}

/// Cursor over the words of a command, producing precise errors.
struct Args<'a> {
    name: CommandName,
    words: std::iter::Peekable<std::str::SplitWhitespace<'a>>,
}

impl<'a> Args<'a> {
    fn next(&mut self, missing: &'static str) -> Result<&'a str, ParseError> {
        self.words.next().ok_or(ParseError::Missing {
            word: self.name.word(),
            missing,
            usage: self.name.arguments(),
        })
    }

    fn invalid(&self, value: &str, expected: &'static str) -> ParseError {
        ParseError::Invalid {
            word: self.name.word(),
            value: value.to_string(),
            expected,
            usage: self.name.arguments(),
        }
    }

    fn case(&mut self) -> Result<CaseNumber, ParseError> {
        let w = self.next("saksnummer")?;
        if w.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            Ok(CaseNumber(w.to_string()))
        } else {
            Err(self.invalid(w, "et saksnummer"))
        }
    }

    fn date(&mut self) -> Result<NaiveDate, ParseError> {
        let w = self.next("dato")?;
        NaiveDate::parse_from_str(w, "%Y-%m-%d").map_err(|_| self.invalid(w, "en dato (ÅÅÅÅ-MM-DD)"))
    }

    fn pick<T: Copy>(
        &mut self,
        missing: &'static str,
        expected: &'static str,
        table: &[(&str, T)],
    ) -> Result<T, ParseError> {
        let w = self.next(missing)?;
        let lower = w.to_lowercase();
        table
            .iter()
            .find(|(k, _)| *k == lower)
            .map(|(_, v)| *v)
            .ok_or_else(|| self.invalid(w, expected))
    }

    fn agency(&mut self) -> Result<Agency, ParseError> {
        self.pick(
            "instans",
            "en kjent instans (ppt, bup, barnevern, helsesykepleier, familievern, fastlege, psykisk-helse, utekontakten)",
            &[
                ("ppt", Agency::Ppt),
                ("bup", Agency::Bup),
                ("barnevern", Agency::Barnevern),
                ("helsesykepleier", Agency::Helsesykepleier),
                ("familievern", Agency::Familievern),
                ("fastlege", Agency::Fastlege),
                ("psykisk-helse", Agency::PsykiskHelse),
                ("utekontakten", Agency::Utekontakten),
            ],
        )
    }

    fn rest(&mut self) -> String {
        self.words.by_ref().collect::<Vec<_>>().join(" ")
    }

    fn end(mut self) -> Result<(), ParseError> {
        match self.words.next() {
            None => Ok(()),
            Some(_) => Err(ParseError::TooMany {
                word: self.name.word(),
                usage: self.name.arguments(),
            }),
        }
    }
}

/// Parses a chat message that starts with `!`.
pub fn parse(text: &str) -> Result<Command, ParseError> {
    let text = text.trim_start().strip_prefix('!').unwrap_or(text).trim();
    let mut words = text.split_whitespace();
    let word = words.next().unwrap_or("");
    let name = CommandName::lookup(word).ok_or_else(|| ParseError::Unknown(word.to_string()))?;
    let mut a = Args {
        name,
        words: words.peekable(),
    };
    let command = match name {
        CommandName::Help => {
            let topic = match a.words.next() {
                None => None,
                Some(w) => {
                    let w = w.trim_start_matches('!');
                    Some(CommandName::lookup(w).ok_or_else(|| a.invalid(w, "en kommando"))?)
                }
            };
            Command::Help(topic)
        }
        CommandName::Cases => Command::Cases,
        CommandName::Case => Command::Case(a.case()?),
        CommandName::Contact => {
            let case = a.case()?;
            let channel = a.pick(
                "kanal",
                "en kanal (telefon, møte, melding)",
                &[
                    ("telefon", Channel::Phone),
                    ("phone", Channel::Phone),
                    ("møte", Channel::Meeting),
                    ("meeting", Channel::Meeting),
                    ("melding", Channel::Message),
                    ("message", Channel::Message),
                ],
            )?;
            let outcome = a.pick(
                "utfall",
                "et utfall (ikke-nådd, ingen-bekymring, bekymring)",
                &[
                    ("ikke-nådd", ContactOutcome::NotReached),
                    ("not-reached", ContactOutcome::NotReached),
                    ("ingen-bekymring", ContactOutcome::NoConcern),
                    ("no-concern", ContactOutcome::NoConcern),
                    ("bekymring", ContactOutcome::Concern),
                    ("concern", ContactOutcome::Concern),
                ],
            )?;
            Command::Contact { case, channel, outcome }
        }
        CommandName::Meeting => {
            let case = a.case()?;
            let date = a.date()?;
            let w = a.next("klokkeslett")?;
            let time = NaiveTime::parse_from_str(w, "%H:%M").map_err(|_| a.invalid(w, "et klokkeslett (TT:MM)"))?;
            Command::Meeting {
                case,
                at: date.and_time(time),
            }
        }
        CommandName::Measure => {
            let case = a.case()?;
            let w = a.next("boks")?;
            let circle_box = match w.parse::<u8>() {
                Ok(n @ 1..=8) => n,
                _ => return Err(a.invalid(w, "en boks i tiltakssirkelen (1–8)")),
            };
            let w = a.next("ansvarlig")?;
            let responsible = match w.to_lowercase().as_str() {
                "kontaktlærer" | "contact-teacher" => Responsible::ContactTeacher,
                "ledelsen" | "leadership" => Responsible::Leadership,
                "foresatte" | "parents" => Responsible::Parents,
                "elev" | "pupil" => Responsible::Pupil,
                _ if is_user_id(w) => Responsible::User(w.to_string()),
                _ => {
                    return Err(a.invalid(
                        w,
                        "en ansvarlig (kontaktlærer, ledelsen, foresatte, elev eller @bruker:tjener)",
                    ));
                }
            };
            let due = a.date()?;
            let text = a.rest();
            if text.is_empty() {
                return Err(ParseError::Missing {
                    word: name.word(),
                    missing: "beskrivelse av tiltaket",
                    usage: name.arguments(),
                });
            }
            return Ok(Command::Measure {
                case,
                circle_box,
                responsible,
                due,
                text,
            });
        }
        CommandName::Agreement => Command::Agreement(a.case()?),
        CommandName::Evaluate => {
            let case = a.case()?;
            let outcome = a.pick(
                "utfall",
                "et utfall (løst, bedre, uendret)",
                &[
                    ("løst", EvaluationOutcome::Resolved),
                    ("resolved", EvaluationOutcome::Resolved),
                    ("bedre", EvaluationOutcome::Improved),
                    ("improved", EvaluationOutcome::Improved),
                    ("uendret", EvaluationOutcome::Unchanged),
                    ("unchanged", EvaluationOutcome::Unchanged),
                ],
            )?;
            Command::Evaluate { case, outcome }
        }
        CommandName::Phase => {
            let case = a.case()?;
            let phase = a.pick("fase", "en fase (1–4)", &[("1", 1), ("2", 2), ("3", 3), ("4", 4)])?;
            Command::Phase { case, phase }
        }
        CommandName::Refer => {
            let case = a.case()?;
            let agency = a.agency()?;
            let (mut report, mut medical) = (false, false);
            while let Some(w) = a.words.next() {
                match w.to_lowercase().as_str() {
                    "rapport" | "report" => report = true,
                    "legeerklæring" | "legeerklaering" | "medical" => medical = true,
                    _ => return Err(a.invalid(w, "«rapport» eller «legeerklæring»")),
                }
            }
            Command::Refer {
                case,
                agency,
                report,
                medical,
            }
        }
        CommandName::Coordinator => {
            let case = a.case()?;
            let w = a.next("bruker")?;
            if !is_user_id(w) {
                return Err(a.invalid(w, "en Matrix-bruker (@navn:tjener)"));
            }
            let user = w.to_string();
            Command::Coordinator {
                case,
                user,
                role: a.agency()?,
            }
        }
        CommandName::Accept => Command::Accept(a.case()?),
        CommandName::Close => {
            let case = a.case()?;
            let reason = match a.words.peek() {
                None => None,
                Some(_) => Some(a.pick(
                    "grunn",
                    "en grunn (løst, ingen-bekymring, flyttet, særskilt, annet)",
                    &[
                        ("løst", CloseWhy::Resolved),
                        ("resolved", CloseWhy::Resolved),
                        ("ingen-bekymring", CloseWhy::NoConcern),
                        ("no-concern", CloseWhy::NoConcern),
                        ("flyttet", CloseWhy::Moved),
                        ("moved", CloseWhy::Moved),
                        ("særskilt", CloseWhy::Special),
                        ("special", CloseWhy::Special),
                        ("annet", CloseWhy::Other),
                        ("other", CloseWhy::Other),
                    ],
                )?),
            };
            Command::Close { case, reason }
        }
    };
    a.end()?;
    Ok(command)
}

/// A syntactic check of a Matrix user id (`@local:server`).
fn is_user_id(s: &str) -> bool {
    matrix_sdk::ruma::UserId::parse(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn help_text_comes_from_the_doc_comments() {
        let help = help_text();
        assert!(help.contains("!tiltak SAK BOKS ANSVARLIG ÅÅÅÅ-MM-DD TEKST (!measure): Legger til et tiltak i en boks i tiltakssirkelen (1–8)"));
        assert!(help.contains("!aksepter SAK (!accept): Fagkoordinatoren tar imot saken; først da flyttes ansvaret."));
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
                outcome: ContactOutcome::Concern
            })
        );
        assert_eq!(
            parse("!meeting 12 2026-12-01 09:15"),
            Ok(Command::Meeting {
                case: case("12"),
                at: NaiveDate::from_ymd_opt(2026, 12, 1)
                    .unwrap()
                    .and_hms_opt(9, 15, 0)
                    .unwrap()
            })
        );
        assert_eq!(
            parse("!tiltak 12 1 kontaktlærer 2026-12-05 faste samtaler hver mandag"),
            Ok(Command::Measure {
                case: case("12"),
                circle_box: 1,
                responsible: Responsible::ContactTeacher,
                due: NaiveDate::from_ymd_opt(2026, 12, 5).unwrap(),
                text: "faste samtaler hver mandag".into()
            })
        );
        assert_eq!(
            parse("!tiltak 12 3 @kari:kommune.no 2026-12-05 læringspartner"),
            Ok(Command::Measure {
                case: case("12"),
                circle_box: 3,
                responsible: Responsible::User("@kari:kommune.no".into()),
                due: NaiveDate::from_ymd_opt(2026, 12, 5).unwrap(),
                text: "læringspartner".into()
            })
        );
        assert_eq!(
            parse("!evaluer 12 uendret"),
            Ok(Command::Evaluate {
                case: case("12"),
                outcome: EvaluationOutcome::Unchanged
            })
        );
        assert_eq!(
            parse("!fase 12 4"),
            Ok(Command::Phase {
                case: case("12"),
                phase: 4
            })
        );
        assert_eq!(
            parse("!refer 12 PPT"),
            Ok(Command::Refer {
                case: case("12"),
                agency: Agency::Ppt,
                report: false,
                medical: false,
            })
        );
        assert_eq!(
            parse("!henvis 12 ppt rapport legeerklæring"),
            Ok(Command::Refer {
                case: case("12"),
                agency: Agency::Ppt,
                report: true,
                medical: true,
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
                reason: Some(CloseWhy::Moved)
            })
        );
        assert!(parse("!lukk 12 fordi").is_err());
        assert_eq!(parse("!avtale 12"), Ok(Command::Agreement(case("12"))));
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
            "«9» er ikke en boks i tiltakssirkelen (1–8). Bruk: !tiltak SAK BOKS ANSVARLIG ÅÅÅÅ-MM-DD TEKST"
        );
        assert!(matches!(
            parse("!tiltak 12 1 elev 2026-12-05"),
            Err(ParseError::Missing {
                missing: "beskrivelse av tiltaket",
                ..
            })
        ));
        assert!(matches!(
            parse("!møte 12 2026-13-01 10:00"),
            Err(ParseError::Invalid {
                expected: "en dato (ÅÅÅÅ-MM-DD)",
                ..
            })
        ));
        assert!(matches!(
            parse("!møte 12 2026-12-01 25:00"),
            Err(ParseError::Invalid {
                expected: "et klokkeslett (TT:MM)",
                ..
            })
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
            Err(ParseError::Invalid {
                expected: "et saksnummer",
                ..
            })
        ));
        assert!(matches!(parse("!fase 12 5"), Err(ParseError::Invalid { .. })));
    }

    #[test]
    fn only_bang_messages_are_commands() {
        assert!(is_command("!saker"));
        assert!(is_command("  !hjelp"));
        assert!(!is_command("hei !saker"));
    }
}
