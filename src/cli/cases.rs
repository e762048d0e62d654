//! `tilstede cases …`: the routine on the command line. Every step people
//! take in chat is a typed subcommand here too (`tilstede cases kontakt
//! S-2026-0001 --kanal telefon --utfall bekymring`), built from the same
//! table as the chat commands ([`tilstede::matrix::commands::SPECS`]), so
//! the words, the checks and the help are the same. `apply` takes a step as
//! JSON, for machines. Who acts comes from `--as` (or `TILSTEDE_AS`) and the
//! roster and case settings; the role is never taken on trust.

use super::Format;
use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{ArgAction, ArgMatches, Args, FromArgMatches, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use tilstede::cases::digest::{registration_gaps, school_digest, teacher_digest};
use tilstede::cases::model::Case;
use tilstede::cases::{CaseConfig, Command as CaseCommand, Party, Role};
use tilstede::matrix::commands::{self as language, CommandName, SPECS, Slot, Spec, Values};
use tilstede::render::{
    Document, Renderer, case_context, count, count_len, notice_context, school_digest_context, teacher_digest_context,
};
use tilstede::store::{CaseSummary, Store};
use tilstede::workflow::{self, Person, WorkflowError};

/// The help layout of every `cases` command: Norwegian headings, and no
/// English from clap itself.
const TEMPLATE: &str = "{about-with-newline}\nBruk: {usage}\n\n{all-args}{after-help}";

/// Case commands.
#[derive(Debug, Args)]
#[command(
    help_template = TEMPLATE,
    override_usage = "tilstede cases [VALG] KOMMANDO",
    subcommand_help_heading = "Kommandoer",
    subcommand_value_name = "KOMMANDO",
    disable_help_flag = true,
    disable_help_subcommand = true,
    next_help_heading = "Valg"
)]
pub struct CasesArgs {
    /// Case settings: a preset or a TOML path.
    #[arg(
        long,
        default_value = "baerum",
        global = true,
        hide_default_value = true,
        value_name = "OPPSETT",
        help = "Saksoppsettet: et forhåndsvalg (baerum) eller en sti til en TOML-fil. Standard: baerum."
    )]
    pub config: String,
    /// The rule set whose `lessons_per_day` evaluation numbers use.
    #[arg(
        long,
        default_value = "baerum",
        global = true,
        hide_default_value = true,
        value_name = "REGLER",
        help = "Regelsettet som gir timer per skoledag for tallene. Standard: baerum."
    )]
    pub rules: String,
    /// The time to act at (RFC 3339); default now.
    #[arg(
        long,
        global = true,
        value_parser = parse_time,
        value_name = "TID",
        help = "Tidspunktet å handle på (RFC 3339, f.eks. 2026-03-02T09:00:00Z); standard er nå. Testene bruker det som klokke."
    )]
    pub now: Option<DateTime<Utc>>,
    /// Who is acting or reading.
    #[arg(
        long = "as",
        global = true,
        env = "TILSTEDE_AS",
        hide_env = true,
        value_name = "ID",
        help = "Hvem som handler eller leser: en ansatt-id eller Matrix-id (eller miljøvariabelen TILSTEDE_AS). Rollen følger av elevlisten og saksoppsettet."
    )]
    pub actor: Option<String>,
    /// Act only in this role, when the person holds several.
    #[arg(
        long = "rolle",
        alias = "role",
        global = true,
        value_name = "ROLLE",
        help = "Handle bare i denne rollen, når personen har flere: kontaktlærer, avdelingsleder, ressursteam, fagkoordinator eller ledelse. Rollen må personen faktisk ha i saken."
    )]
    pub role: Option<String>,
    /// Help.
    #[arg(short = 'h', long = "help", action = ArgAction::Help, global = true, help = "Vis hjelp.")]
    pub help: Option<bool>,
    /// What to do.
    #[command(subcommand)]
    pub command: CasesCommand,
}

/// Output forms of a rendered document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Form {
    /// Markdown for archiving.
    Markdown,
    /// HTML as sent to Matrix.
    Html,
    /// Plain text.
    Text,
}

/// The case subcommands.
#[derive(Debug, Subcommand)]
pub enum CasesCommand {
    /// Read new findings and open or update cases.
    #[command(
        about = "Les nye funn og åpne eller oppdater saker.",
        help_template = TEMPLATE,
        next_help_heading = "Valg",
        override_usage = "tilstede cases sync"
    )]
    Sync,
    /// Run the deadlines.
    #[command(
        about = "Kjør fristene: påminnelser, eskaleringer, gjennomganger.",
        help_template = TEMPLATE,
        next_help_heading = "Valg",
        override_usage = "tilstede cases tick"
    )]
    Tick,
    /// Purge cases closed longer ago than `retention_days`.
    #[command(
        about = "Slett saker som ble avsluttet for mer enn retention_days siden, og be boten trekke tilbake meldingene sine om dem.",
        help_template = TEMPLATE,
        next_help_heading = "Valg",
        override_usage = "tilstede cases purge"
    )]
    Purge,
    /// List the cases where the person has a role.
    #[command(
        about = "List sakene der du har en rolle.",
        visible_alias = "saker",
        help_template = TEMPLATE,
        next_help_heading = "Valg",
        override_usage = "tilstede cases list [--all] [--school SKOLE] [--format text|json]"
    )]
    List {
        /// Closed cases too.
        #[arg(long, help = "Ta med avsluttede saker.")]
        all: bool,
        /// Only this school.
        #[arg(long, value_name = "SKOLE", help = "Bare denne skolen (skole-id).")]
        school: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text, hide_default_value = true, hide_possible_values = true, value_name = "FORMAT", help = "text (standard) eller json.")]
        format: Format,
    },
    /// Show a case.
    #[command(
        about = "Vis en sak.",
        visible_alias = "sak",
        help_template = TEMPLATE,
        next_help_heading = "Valg",
        override_usage = "tilstede cases show SAK [--format text|json]"
    )]
    Show {
        /// Case number.
        #[arg(
            help_heading = "Argumenter",
            value_name = "SAK",
            help = "Saksnummeret, f.eks. S-2026-0001."
        )]
        number: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text, hide_default_value = true, hide_possible_values = true, value_name = "FORMAT", help = "text (standard) eller json.")]
        format: Format,
    },
    /// Apply a step given as JSON.
    #[command(
        about = "Utfør et steg i rutinen gitt som JSON (for maskiner; folk bruker kommandoene under).",
        help_template = TEMPLATE,
        next_help_heading = "Valg",
        override_usage = "tilstede cases apply SAK STEG"
    )]
    Apply {
        /// Case number.
        #[arg(help_heading = "Argumenter", value_name = "SAK", help = "Saksnummeret.")]
        number: String,
        /// The step as JSON; `-` reads standard input.
        #[arg(
            help_heading = "Argumenter",
            value_name = "STEG",
            help = "Steget som JSON, f.eks. {\"command\":\"log-contact\",\"with\":\"foresatte\",\"channel\":\"telefon\",\"outcome\":\"bekymring\"}; - leser fra standard inn."
        )]
        step: String,
    },
    /// Show the audit log of a case.
    #[command(
        about = "Vis revisjonsloggen for en sak.",
        help_template = TEMPLATE,
        next_help_heading = "Valg",
        override_usage = "tilstede cases audit SAK [--format text|json]"
    )]
    Audit {
        /// Case number.
        #[arg(help_heading = "Argumenter", value_name = "SAK", help = "Saksnummeret.")]
        number: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text, hide_default_value = true, hide_possible_values = true, value_name = "FORMAT", help = "text (standard) eller json.")]
        format: Format,
    },
    /// Show the notification queue.
    #[command(
        about = "Vis varslingskøen.",
        help_template = TEMPLATE,
        next_help_heading = "Valg",
        override_usage = "tilstede cases notifications [--all] [--limit N] [--format text|json] [--templates MAPPE]"
    )]
    Notifications {
        /// Delivered ones too.
        #[arg(long, help = "Ta med leverte varsler.")]
        all: bool,
        /// How many.
        #[arg(
            long,
            default_value_t = 100,
            hide_default_value = true,
            value_name = "N",
            help = "Hvor mange (standard 100)."
        )]
        limit: i64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text, hide_default_value = true, hide_possible_values = true, value_name = "FORMAT", help = "text (standard) eller json.")]
        format: Format,
        /// Render each with this template directory's overrides.
        #[arg(long, value_name = "MAPPE", help = "En mappe med egne maler.")]
        templates: Option<PathBuf>,
    },
    /// Render a document of a case.
    #[command(
        about = "Lag et dokument for en sak.",
        help_template = TEMPLATE,
        next_help_heading = "Valg",
        override_usage = "tilstede cases render SAK DOKUMENT [--form markdown|html|text] [--templates MAPPE]"
    )]
    Render {
        /// Case number.
        #[arg(help_heading = "Argumenter", value_name = "SAK", help = "Saksnummeret.")]
        number: String,
        /// The document.
        #[arg(
            help_heading = "Argumenter",
            value_name = "DOKUMENT",
            help = "forste-samtale, elevsamtale, dagsorden-fase3, dagsorden-fase4, referat, samarbeidsavtale, evaluering eller overforing."
        )]
        document: String,
        /// Output form.
        #[arg(long, value_enum, default_value_t = Form::Markdown, hide_default_value = true, hide_possible_values = true, value_name = "FORM", help = "markdown (standard), html eller text.")]
        form: Form,
        /// A directory of template overrides.
        #[arg(long, value_name = "MAPPE", help = "En mappe med egne maler.")]
        templates: Option<PathBuf>,
    },
    /// A contact teacher's monthly review.
    #[command(
        about = "Månedlig oversikt for en kontaktlærer.",
        help_template = TEMPLATE,
        next_help_heading = "Valg",
        override_usage = "tilstede cases digest-teacher --teacher ID --school SKOLE --from DATO --to DATO"
    )]
    DigestTeacher {
        /// The contact teacher's staff id.
        #[arg(long, value_name = "ID", help = "Kontaktlærerens ansatt-id.")]
        teacher: String,
        /// School id.
        #[arg(long, value_name = "SKOLE", help = "Skole-id.")]
        school: String,
        /// First day.
        #[arg(long, value_parser = parse_date, value_name = "DATO", help = "Første dag (ÅÅÅÅ-MM-DD).")]
        from: NaiveDate,
        /// Last day.
        #[arg(long, value_parser = parse_date, value_name = "DATO", help = "Siste dag (ÅÅÅÅ-MM-DD).")]
        to: NaiveDate,
        /// Output form.
        #[arg(long, value_enum, default_value_t = Form::Markdown, hide_default_value = true, hide_possible_values = true, value_name = "FORM", help = "markdown (standard), html eller text.")]
        form: Form,
    },
    /// Leadership's review of a school.
    #[command(
        about = "Oversikt for ledelsen: hele skolen, per trinn, med trend og registreringshull.",
        help_template = TEMPLATE,
        next_help_heading = "Valg",
        override_usage = "tilstede cases digest-school --school SKOLE --from DATO --to DATO [--gap-days N]"
    )]
    DigestSchool {
        /// School id.
        #[arg(long, value_name = "SKOLE", help = "Skole-id.")]
        school: String,
        /// First day.
        #[arg(long, value_parser = parse_date, value_name = "DATO", help = "Første dag (ÅÅÅÅ-MM-DD).")]
        from: NaiveDate,
        /// Last day.
        #[arg(long, value_parser = parse_date, value_name = "DATO", help = "Siste dag (ÅÅÅÅ-MM-DD).")]
        to: NaiveDate,
        /// Days in a row without registrations before a class is named.
        #[arg(
            long,
            default_value_t = 3,
            hide_default_value = true,
            value_name = "N",
            help = "Skoledager på rad uten registreringer før en klasse nevnes (standard 3)."
        )]
        gap_days: u32,
        /// Output form.
        #[arg(long, value_enum, default_value_t = Form::Markdown, hide_default_value = true, hide_possible_values = true, value_name = "FORM", help = "markdown (standard), html eller text.")]
        form: Form,
    },
    /// Check a case settings file.
    #[command(
        about = "Sjekk en saksoppsett-fil og vis feil med TOML-sti.",
        help_template = TEMPLATE,
        next_help_heading = "Valg",
        override_usage = "tilstede cases check FIL"
    )]
    Check {
        /// The file.
        #[arg(help_heading = "Argumenter", value_name = "FIL", help = "Filen.")]
        path: String,
    },
    /// The steps of the routine, as in chat.
    #[command(flatten)]
    Step(StepArgs),
}

/// A step of the routine as a typed subcommand, from the command table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepArgs {
    /// Which command.
    pub name: CommandName,
    /// Its arguments as given.
    pub values: Values,
}

/// The ASCII spelling of a word (`møte` → `mote`) for keyboards without
/// æøå; leaked once per process, as clap keeps names for its lifetime.
fn ascii(s: &'static str) -> Option<&'static str> {
    let folded = s.replace('ø', "o").replace('å', "a").replace('æ', "ae");
    (folded != s).then(|| &*Box::leak(folded.into_boxed_str()))
}

/// The subcommand of one table entry: the case number, then `--navn` for
/// every argument, with the table's help.
fn step_command(spec: &'static Spec) -> clap::Command {
    let mut usage = format!("tilstede cases {} SAK", spec.word);
    let mut cmd = clap::Command::new(spec.word)
        .about(spec.help)
        .help_template(TEMPLATE)
        .next_help_heading("Valg")
        .alias(spec.alias)
        .arg(
            clap::Arg::new("sak")
                .value_name("SAK")
                .required(true)
                .help("Saksnummeret, f.eks. S-2026-0001.")
                .help_heading("Argumenter"),
        );
    if let Some(a) = ascii(spec.word) {
        cmd = cmd.alias(a);
    }
    for a in spec.args {
        let mut arg = clap::Arg::new(a.key).long(a.key).help(language::arg_help(a));
        if let Some(alias) = ascii(a.key) {
            arg = arg.alias(alias);
        }
        let required = a.required && matches!(a.slot, Slot::Positional | Slot::Rest);
        arg = match a.slot {
            Slot::Flag => arg.action(ArgAction::SetTrue),
            _ if a.repeated => arg.action(ArgAction::Append).value_name(a.placeholder),
            _ => arg.action(ArgAction::Set).value_name(a.placeholder),
        };
        let shown = match a.slot {
            Slot::Flag => format!("--{}", a.key),
            _ => format!("--{} {}", a.key, a.placeholder),
        };
        usage.push_str(&if required {
            format!(" {shown}")
        } else {
            format!(" [{shown}]")
        });
        cmd = cmd.arg(arg.required(required));
    }
    cmd.override_usage(usage)
}

fn steps() -> impl Iterator<Item = &'static Spec> {
    SPECS.iter().filter(|s| !s.chat_only)
}

impl FromArgMatches for StepArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let (word, sub) = matches
            .subcommand()
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::MissingSubcommand))?;
        let spec = steps()
            .find(|s| s.word == word)
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidSubcommand))?;
        let mut values = Values {
            case: sub.get_one::<String>("sak").cloned(),
            ..Values::default()
        };
        for a in spec.args {
            if a.slot == Slot::Flag {
                if sub.get_flag(a.key) {
                    values.args.insert(a.key, vec!["ja".into()]);
                }
            } else if let Some(v) = sub.get_many::<String>(a.key) {
                values.args.insert(a.key, v.cloned().collect());
            }
        }
        Ok(StepArgs {
            name: spec.name,
            values,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = StepArgs::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Subcommand for StepArgs {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        steps().fold(cmd, |cmd, spec| cmd.subcommand(step_command(spec)))
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        StepArgs::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        steps().any(|s| s.word == name)
    }
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("«{s}» er ikke et tidspunkt som 2026-03-02T09:00:00Z"))
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    tilstede::domain::record::parse_date(s)
}

fn pick(r: &tilstede::render::Rendered, form: Form) -> &str {
    match form {
        Form::Markdown => &r.markdown,
        Form::Html => &r.html,
        Form::Text => &r.plain,
    }
}

/// A serde error about a step, in Norwegian where its shape is known.
fn step_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    // Internally tagged enums buffer the input, so some errors have no place.
    let at = if e.line() > 0 {
        format!(" (linje {}, kolonne {})", e.line(), e.column())
    } else {
        String::new()
    };
    let message = text.split(" at line ").next().unwrap_or(&text);
    let quoted = |s: &str| s.split('`').nth(1).unwrap_or("").to_string();
    let reason = if let Some(rest) = message.strip_prefix("missing field ") {
        format!("feltet «{}» mangler", quoted(rest))
    } else if let Some(rest) = message.strip_prefix("unknown field ") {
        format!("ukjent felt «{}»", quoted(rest))
    } else if let Some(rest) = message.strip_prefix("unknown variant ") {
        format!("ukjent steg «{}»", quoted(rest))
    } else if message.starts_with("invalid type") {
        format!("feil type verdi ({message})")
    } else if message.starts_with("EOF") {
        "steget slutter for tidlig".to_string()
    } else {
        message.to_string()
    };
    format!("{reason}{at}")
}

/// Who runs the command, from `--as` (or `TILSTEDE_AS`) and the roster.
async fn person(s: &Store, args: &CasesArgs) -> Result<Person> {
    let id = args
        .actor
        .clone()
        .ok_or_else(|| anyhow!("--as mangler: hvem leser eller endrer saken? (eller sett TILSTEDE_AS)"))?;
    Ok(Person::identify(s, &id).await?)
}

fn role(args: &CasesArgs) -> Result<Option<Role>> {
    args.role
        .as_deref()
        .map(|r| {
            Role::parse(r).ok_or_else(|| {
                anyhow!(
                    "ukjent rolle «{r}»: bruk kontaktlærer, avdelingsleder, ressursteam, fagkoordinator eller ledelse"
                )
            })
        })
        .transpose()
}

/// The role in which `person` reads `case`, or why not.
fn reader(person: &Person, case: &Case, config: &CaseConfig, role: Option<Role>) -> Result<Party, String> {
    let mut parties = person.parties(case, config);
    if let Some(r) = role {
        parties.retain(|p| p.role == r);
    }
    parties.into_iter().next().ok_or_else(|| {
        match role {
            Some(r) => format!("du har ikke rollen {} i sak {}", r.norwegian(), case.number),
            None => format!(
                "du har ingen rolle i sak {}: tilstede kjenner deg ikke som kontaktlærer, ledelse, ressursteam eller fagkoordinator for den",
                case.number
            ),
        }
    })
}

/// Reads a case as a person in a role they hold; the read is audited, and
/// so is a refusal.
async fn read(
    s: &Store,
    config: &CaseConfig,
    args: &CasesArgs,
    number: &str,
    now: DateTime<Utc>,
) -> Result<Result<Case, String>> {
    let Some(case) = s.case_state(number).await? else {
        bail!("fant ingen sak med nummer «{number}»");
    };
    let person = person(s, args).await?;
    match reader(&person, &case, config, role(args)?) {
        Ok(p) => Ok(Ok(s.read_case(number, &p, now).await?)),
        Err(why) => {
            workflow::refuse(s, number, &person.id, "ingen", "read", &why, now).await?;
            Ok(Err(why))
        }
    }
}

/// What `sync` did, in words.
fn sync_text(st: &workflow::SyncStats) -> String {
    format!(
        "{} lest, {} åpnet, {} endret, {} i kø",
        count(st.events as i64, "funnendring", "funnendringer"),
        count(st.opened as i64, "sak", "saker"),
        count(st.changed as i64, "sak", "saker"),
        count(st.notices as i64, "varsel", "varsler")
    )
}

/// Runs a case command.
pub async fn run(store: &str, args: CasesArgs) -> Result<ExitCode> {
    if let CasesCommand::Check { path } = &args.command {
        return Ok(match CaseConfig::load(path) {
            Ok(c) => {
                println!("{}: i orden", c.name);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        });
    }
    let mut config = CaseConfig::load(&args.config).with_context(|| format!("saksoppsettet «{}»", args.config))?;
    config.use_rules(
        &tilstede::rules::RuleSet::load(&args.rules).with_context(|| format!("regelsettet «{}»", args.rules))?,
    );
    let now = args.now.unwrap_or_else(Utc::now);
    let s = Store::open(store).await?;
    let result = run_with(&s, &config, now, &args).await;
    s.close().await;
    result
}

/// Takes a step as the person running the command.
async fn step(
    s: &Store,
    config: &CaseConfig,
    args: &CasesArgs,
    number: &str,
    command: &CaseCommand,
    now: DateTime<Utc>,
) -> Result<ExitCode> {
    let person = person(s, args).await?;
    match workflow::act(s, config, &person, role(args)?, number, command, now).await {
        Ok(acted) => {
            println!(
                "{}: {} som {} · fase {} · ansvarlig {}",
                acted.case.number,
                command.norwegian(),
                acted.actor.role.norwegian(),
                acted.case.phase.number(),
                acted.case.responsible.id
            );
            for n in acted.notices {
                println!("varsel {}", n.key);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(WorkflowError::Refused(e)) => {
            eprintln!("avvist: {e}");
            Ok(ExitCode::from(3))
        }
        Err(e) => Err(e.into()),
    }
}

async fn run_with(s: &Store, config: &CaseConfig, now: DateTime<Utc>, args: &CasesArgs) -> Result<ExitCode> {
    match &args.command {
        CasesCommand::Check { .. } => unreachable!("handled before opening the store"),
        CasesCommand::Step(StepArgs { name, values }) => {
            let command = match language::build(*name, values) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{}: {}", name.word(), e.reason());
                    return Ok(ExitCode::from(2));
                }
            };
            let number = command.case().unwrap_or_default().to_string();
            if matches!(command, language::Command::Suggestions(_)) {
                return Ok(match read(s, config, args, &number, now).await? {
                    Ok(case) => {
                        println!("{}", tilstede::cases::suggestions::for_risks(&case));
                        ExitCode::SUCCESS
                    }
                    Err(why) => {
                        eprintln!("avvist: {why}");
                        ExitCode::from(3)
                    }
                });
            }
            let Some(case) = s.case_state(&number).await? else {
                bail!("fant ingen sak med nummer «{number}»");
            };
            let Some(step_command) = command.to_step(&case, now) else {
                eprintln!(
                    "{}: mangler --mål, --delmål, --plan-b og --plan-b-ansvarlig",
                    name.word()
                );
                return Ok(ExitCode::from(2));
            };
            return step(s, config, args, &number, &step_command, now).await;
        }
        CasesCommand::Sync => {
            let st = workflow::sync_cases(s, config, now).await?;
            println!("{}", sync_text(&st));
        }
        CasesCommand::Purge => {
            let before = now - chrono::Duration::days(i64::from(config.retention_days));
            let p = s.purge_closed_cases(before).await?;
            println!(
                "{} slettet, {} i kø for tilbaketrekking",
                count_len(p.cases.len(), "sak", "saker"),
                count_len(p.redactions, "Matrix-melding", "Matrix-meldinger")
            );
            for n in p.cases {
                println!("{n}");
            }
        }
        CasesCommand::Tick => {
            let notices = workflow::tick_cases(s, config, now).await?;
            println!("{} i kø", count_len(notices.len(), "varsel", "varsler"));
            for n in notices {
                println!("{}", n.key);
            }
        }
        CasesCommand::List { all, school, format } => {
            let person = person(s, args).await?;
            let role = role(args)?;
            let mut cases = Vec::new();
            for case in s.cases_raw(school.as_deref(), *all).await? {
                if let Ok(p) = reader(&person, &case, config, role) {
                    cases.push((case, p));
                }
            }
            let mut listed = Vec::new();
            for (case, p) in &cases {
                s.list_cases_as(std::slice::from_ref(case), p, now).await?;
                listed.push(CaseSummary::of(case));
            }
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&listed)?),
                Format::Text => {
                    for c in listed {
                        println!(
                            "{}\t{}\tfase {}\t{}\t{}\t{}{}",
                            c.number,
                            c.pupil_label,
                            c.phase,
                            if c.open { "åpen" } else { "avsluttet" },
                            c.responsible,
                            c.next_due.unwrap_or_else(|| "-".into()),
                            if c.long_term { "\tlangvarig" } else { "" }
                        );
                    }
                }
            }
        }
        CasesCommand::Show { number, format } => {
            let case = match read(s, config, args, number, now).await? {
                Ok(c) => c,
                Err(why) => {
                    eprintln!("avvist: {why}");
                    return Ok(ExitCode::from(3));
                }
            };
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&case)?),
                Format::Text => {
                    let numbers = workflow::agreement_numbers(s, &case, now, config).await?;
                    let ctx = case_context(&case, now, numbers.as_ref());
                    println!(
                        "Sak {} · {} · {}",
                        case.number,
                        case.pupil_label(),
                        case.phase.norwegian()
                    );
                    println!("Status: {}", ctx["status"].as_str().unwrap_or(""));
                    println!(
                        "Ansvarlig: {} ({})",
                        case.responsible.id,
                        case.responsible.role.norwegian()
                    );
                    for d in &case.deadlines {
                        println!(
                            "Frist: {} innen {} ({})",
                            d.kind.norwegian(),
                            tilstede::render::when(d.due),
                            d.owner.id
                        );
                    }
                    println!(
                        "Kontakter: {}, avtaler: {}, henvisninger: {}",
                        case.contacts.len(),
                        case.agreements.len(),
                        case.referrals.len()
                    );
                }
            }
        }
        CasesCommand::Apply { number, step: text } => {
            let text = if text == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                text.clone()
            };
            let command: CaseCommand = match serde_json::from_str(&text) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("steget kunne ikke leses: {}", step_error(&e));
                    return Ok(ExitCode::from(2));
                }
            };
            return step(s, config, args, number, &command, now).await;
        }
        CasesCommand::Audit { number, format } => {
            let rows = s.case_audit(number).await?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                Format::Text => {
                    for r in rows {
                        println!("{}\t{}\t{} ({})\t{}", r.seq, r.at, r.actor, r.role, r.action);
                    }
                }
            }
        }
        CasesCommand::Notifications {
            all,
            limit,
            format,
            templates,
        } => {
            let rows = s.notifications(*all, *limit).await?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                Format::Text => {
                    let renderer = Renderer::with_overrides(templates.as_deref())?;
                    let mut cases = std::collections::HashMap::new();
                    for q in rows {
                        if !cases.contains_key(&q.notice.case) {
                            // The queue is read by tilstede itself, not a person: no audit row.
                            let c = s.cases_raw(None, true).await?;
                            for case in c {
                                cases.insert(case.number.clone(), case);
                            }
                        }
                        let Some(case) = cases.get(&q.notice.case) else {
                            bail!("varsel {} viser til en ukjent sak", q.notice.key);
                        };
                        let r = renderer.render(Document::Notice, &notice_context(&q.notice, case, &q.extra))?;
                        println!("=== {} → {}", q.notice.key, serde_json::to_string(&q.notice.recipient)?);
                        print!("{}", r.plain);
                    }
                }
            }
        }
        CasesCommand::Render {
            number,
            document,
            form,
            templates,
        } => {
            let doc = Document::parse(document).ok_or_else(|| anyhow!("ukjent dokument «{document}»"))?;
            let case = match read(s, config, args, number, now).await? {
                Ok(c) => c,
                Err(why) => {
                    eprintln!("avvist: {why}");
                    return Ok(ExitCode::from(3));
                }
            };
            let numbers = workflow::agreement_numbers(s, &case, now, config).await?;
            let r = Renderer::with_overrides(templates.as_deref())?
                .render(doc, &case_context(&case, now, numbers.as_ref()))?;
            print!("{}", pick(&r, *form));
        }
        CasesCommand::DigestTeacher {
            teacher,
            school,
            from,
            to,
            form,
        } => {
            let classes = s.school_classes(school).await?;
            let pupils = s.school_pupils(school).await?;
            let mut records = Vec::new();
            let since = tilstede::cases::digest::pattern_from(*to).min(*from);
            for p in &pupils {
                records.extend(s.pupil_records(&p.id, since, *to).await?);
            }
            let cases = s.cases_raw(Some(school), false).await?;
            let d = teacher_digest(teacher, &classes, &pupils, &records, &cases, *from, *to, config);
            let r = Renderer::builtin()?.render(Document::DigestTeacher, &teacher_digest_context(&d))?;
            print!("{}", pick(&r, *form));
        }
        CasesCommand::DigestSchool {
            school,
            from,
            to,
            gap_days,
            form,
        } => {
            let classes = s.school_classes(school).await?;
            let pupils = s.school_pupils(school).await?;
            let name = s
                .schools()
                .await?
                .into_iter()
                .find(|x| x.id == *school)
                .map(|x| x.name)
                .unwrap_or_else(|| school.clone());
            let before = *from - (*to - *from) - chrono::Duration::days(1);
            let mut records = Vec::new();
            for p in &pupils {
                records.extend(s.pupil_records(&p.id, before, *to).await?);
            }
            let cases = s.cases_raw(Some(school), false).await?;
            let d = school_digest(school, &name, &pupils, &records, &cases, *from, *to, config);
            let gaps = registration_gaps(&classes, &pupils, &records, *from, *to, *gap_days);
            let r = Renderer::builtin()?.render(Document::DigestSchool, &school_digest_context(&d, &gaps))?;
            print!("{}", pick(&r, *form));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    fn help(args: &[&str]) -> String {
        let mut all = vec!["tilstede"];
        all.extend_from_slice(args);
        all.push("--help");
        match super::super::Cli::try_parse_from(all) {
            Err(e) => e.render().to_string(),
            Ok(_) => panic!("--help parses as help"),
        }
    }

    /// Words clap writes by itself in English.
    const ENGLISH: &[&str] = &[
        "Usage",
        "Options",
        "Arguments",
        "Commands",
        "Print help",
        "[default",
        "possible values",
        "[env",
    ];

    #[test]
    fn every_step_has_a_typed_subcommand_with_the_chat_help() {
        let cmd = super::super::Cli::command();
        let cases = cmd.find_subcommand("cases").expect("cases");
        for spec in steps() {
            let sub = cases
                .find_subcommand(spec.word)
                .unwrap_or_else(|| panic!("no subcommand {}", spec.word));
            assert_eq!(sub.get_about().map(|a| a.to_string()).as_deref(), Some(spec.help));
            let text = help(&["cases", spec.word]);
            for a in spec.args {
                assert!(text.contains(&format!("--{}", a.key)), "{}: {text}", spec.word);
            }
            for word in ENGLISH {
                assert!(!text.contains(word), "«{word}» in the help of {}:\n{text}", spec.word);
            }
        }
        let text = help(&["cases"]);
        for word in ENGLISH {
            assert!(!text.contains(word), "«{word}» in `cases --help`:\n{text}");
        }
        for sub in ["list", "show", "apply", "render", "notifications", "sync"] {
            let text = help(&["cases", sub]);
            for word in ENGLISH {
                assert!(!text.contains(word), "«{word}» in `cases {sub} --help`:\n{text}");
            }
        }
    }

    #[test]
    fn typed_subcommands_read_like_chat() {
        let cli = super::super::Cli::try_parse_from([
            "tilstede",
            "cases",
            "kontakt",
            "S-2026-0001",
            "--med",
            "foresatt",
            "--kanal",
            "telefon",
            "--utfall",
            "bekymring",
        ])
        .unwrap();
        let super::super::Command::Cases(args) = cli.command else {
            panic!("cases");
        };
        let CasesCommand::Step(step) = args.command else {
            panic!("a step");
        };
        let from_chat = language::parse("!kontakt S-2026-0001 telefon bekymring med=foresatt").unwrap();
        assert_eq!(language::build(step.name, &step.values).unwrap(), from_chat);
        // ASCII spellings of the words work too.
        let cli = super::super::Cli::try_parse_from([
            "tilstede",
            "cases",
            "mote",
            "S-1",
            "--dato",
            "2026-03-10",
            "--kl",
            "12:00",
            "--ledelsen",
        ])
        .unwrap();
        let super::super::Command::Cases(args) = cli.command else {
            panic!("cases");
        };
        assert!(matches!(
            args.command,
            CasesCommand::Step(StepArgs {
                name: CommandName::Meeting,
                ..
            })
        ));
    }

    #[test]
    fn sync_output_counts_in_the_right_number() {
        for n in 0..3u64 {
            let st = workflow::SyncStats {
                events: n,
                opened: n,
                changed: n,
                notices: n,
            };
            let text = sync_text(&st);
            assert!(
                !text.contains("1 saker") && !text.contains("1 varsler") && !text.contains("1 funnendringer"),
                "{text}"
            );
            assert!(!text.contains("2 sak ") && !text.contains("0 sak "), "{text}");
        }
        assert_eq!(
            sync_text(&workflow::SyncStats {
                events: 1,
                opened: 1,
                changed: 0,
                notices: 2
            }),
            "1 funnendring lest, 1 sak åpnet, 0 saker endret, 2 varsler i kø"
        );
    }

    #[test]
    fn json_steps_use_the_canonical_words_and_the_time_is_optional() {
        let step: CaseCommand = serde_json::from_str(
            r#"{"command":"log-contact","with":"foresatte","channel":"telefon","outcome":"ikke-nådd"}"#,
        )
        .unwrap();
        let CaseCommand::LogContact { at, outcome, .. } = step else {
            panic!("a contact");
        };
        assert_eq!(at, None, "--now decides when");
        assert_eq!(outcome.word(), "ikke-nådd");
        let step: CaseCommand =
            serde_json::from_str(r#"{"command":"change-phase","to":"ytterligere-tiltak"}"#).unwrap();
        assert_eq!(serde_json::to_value(&step).unwrap()["to"], "ytterligere-tiltak");
        // Old spellings in stored cases still read.
        let step: CaseCommand = serde_json::from_str(r#"{"command":"close","reason":"lost"}"#).unwrap();
        assert_eq!(serde_json::to_value(&step).unwrap()["reason"], "løst");
    }

    #[test]
    fn json_errors_are_norwegian() {
        let e = serde_json::from_str::<CaseCommand>(r#"{"command":"log-contact","with":"foresatte"}"#).unwrap_err();
        assert_eq!(step_error(&e), "feltet «channel» mangler");
        let e = serde_json::from_str::<CaseCommand>(r#"{"command":"fly"}"#).unwrap_err();
        assert!(step_error(&e).starts_with("ukjent steg «fly»"), "{}", step_error(&e));
        let e = serde_json::from_str::<CaseCommand>(
            r#"{"command":"log-contact","with":"foresatte","channel":"due","outcome":"bekymring"}"#,
        )
        .unwrap_err();
        assert!(
            step_error(&e).starts_with("«due» er ikke en kanal"),
            "{}",
            step_error(&e)
        );
    }
}
