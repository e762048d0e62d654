//! Command definitions (clap) and their dispatch. The doc comments are the
//! `--help` text.

mod adapters;
mod bench;
mod bench_http;
mod bench_ingest;
mod bench_matrix;
mod bench_matrix_load;
mod cases;
mod demo;
mod demo_staff;
mod purge;
mod records;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use tilstede::rules::RuleSet;

/// tilstede: oppfølging av alvorlig skolefravær: henter fraværsdata, vurderer
/// dem mot kommunens fraværsrutine og følger opp sakene i Matrix.
#[derive(Debug, Parser)]
#[command(name = "tilstede", version = tilstede::VERSION, about, long_about = None)]
pub struct Cli {
    /// Where the store lives: a file path, sqlite:STI or postgres://…
    #[arg(
        long,
        global = true,
        env = "TILSTEDE_STORE",
        default_value = "tilstede.db",
        hide_env = true,
        hide_default_value = true,
        value_name = "LAGER",
        help_heading = "Valg",
        help = "Hvor lageret ligger: en filsti, sqlite:STI eller postgres://… (eller TILSTEDE_STORE). Standard: tilstede.db."
    )]
    pub store: String,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Valg", help = "Mer logg (gjenta for enda mer).")]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Machine-readable JSON.
    Json,
    /// Text for people.
    Text,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Vurder en JSONL-fil mot reglene, uten lager.
    Evaluate {
        /// Canonical JSON Lines.
        #[arg(long)]
        records: PathBuf,
        /// The date to evaluate as of (YYYY-MM-DD).
        #[arg(long, value_parser = parse_date)]
        as_of: NaiveDate,
        /// A preset (baerum, oslo) or a path to a rules TOML file.
        #[arg(long, default_value = "baerum")]
        rules: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
    /// Importer filer (JSONL eller en kildes eksport) til lageret og oppdater funnene.
    #[command(after_long_help = records::IMPORT_HELP)]
    Import {
        /// Canonical JSON Lines or source files (`-` for standard input).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// How the files are read and versioned.
        #[command(flatten)]
        options: records::ImportOptions,
        /// A preset or a path to a rules TOML file.
        #[arg(long, default_value = "baerum")]
        rules: String,
        /// Evaluate as of this date (default: today in Europe/Oslo).
        #[arg(long, value_parser = parse_date)]
        as_of: Option<NaiveDate>,
    },
    /// Vis funnene i lageret.
    Findings {
        /// The date to evaluate as of (default: today in Europe/Oslo).
        #[arg(long, value_parser = parse_date)]
        as_of: Option<NaiveDate>,
        /// A preset or a path to a rules TOML file.
        #[arg(long, default_value = "baerum")]
        rules: String,
        /// Only this school.
        #[arg(long)]
        school: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Vis eller sjekk regelsett.
    Rules {
        /// What to do with rules.
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Vis innhold i karantene.
    Quarantine {
        /// How many of the newest entries.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Lag en syntetisk kommune med ett skoleårs fravær.
    Gen {
        /// Number of pupils.
        #[arg(long, default_value_t = 2000)]
        pupils: usize,
        /// Number of schools.
        #[arg(long, default_value_t = 8)]
        schools: usize,
        /// The school year starting in August of this year.
        #[arg(long, default_value_t = 2025)]
        year: i32,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GenFormat::Jsonl)]
        format: GenFormat,
        /// Random seed (same seed, same municipality).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Kjør tilstede som tjeneste: HTTP-mottak, vurdering og oppfølging.
    Serve {
        /// The config file.
        #[arg(long, env = "TILSTEDE_CONFIG")]
        config: PathBuf,
        /// Listen here instead of `http.listen` (e.g. 127.0.0.1:0).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Slett det som har passert oppbevaringstiden: fravær, funnhendelser og avsluttede saker.
    #[command(
        long_about = "Slett det som har passert oppbevaringstiden: fravær, slettemarkeringer og funnhendelser eldre enn [retention] school_years (unntatt for elever med åpen sak), og saker avsluttet for mer enn retention_days siden. Skriver bare ut antall."
    )]
    Purge {
        /// The config file.
        #[arg(long, env = "TILSTEDE_CONFIG", value_name = "FIL", help = "Konfigurasjonsfilen.")]
        config: PathBuf,
        /// The time to purge as of (RFC 3339); default now.
        #[arg(long, value_parser = parse_time, value_name = "TID", help = "Tidspunktet å slette per (RFC 3339, f.eks. 2026-12-06T12:00:00Z); standard er nå.")]
        now: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Hele produktet på én maskin: lokal Matrix-tjener, en generert kommune
    /// som sender fravær, og tilstede med boten. Skriver ut en Matrix-innlogging.
    Demo(demo::DemoArgs),
    /// Sjekk konfigurasjonen.
    Config {
        /// What to do with the config.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Gjør om en kildefil til kanoniske JSON Lines (til standard ut).
    Convert {
        /// The adapter (see `tilstede adapters list`).
        #[arg(long)]
        adapter: String,
        /// Profile name or TOML path (vendor adapters).
        #[arg(long)]
        profile: Option<String>,
        /// Canonical source name of the records.
        #[arg(long)]
        source: Option<String>,
        /// Lessons in a school day (Ed-Fi part-day events).
        #[arg(long)]
        lessons_per_day: Option<u32>,
        /// The file (`-` for standard input).
        file: PathBuf,
    },
    /// Hent nye endringer fra en konfigurert kilde (én gang): edfi-api, fint, vendor-rest, eller oneroster (elevliste).
    Sync {
        /// The source's name in the adapters config.
        source: String,
        /// The adapters config (TOML).
        #[arg(long, env = "TILSTEDE_ADAPTERS", default_value = "adapters.toml")]
        config: PathBuf,
    },
    /// Adaptere, profiler og elevlister.
    Adapters {
        /// What to do.
        #[command(subcommand)]
        command: adapters::AdaptersCommand,
    },
    /// Følg opp saker: funn, frister, steg i rutinen, dokumenter.
    Cases(cases::CasesArgs),
    /// Mål ytelse og skriv ut tallene.
    Bench {
        /// What to measure.
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
}

/// Formats `gen` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GenFormat {
    /// Canonical JSON Lines.
    Jsonl,
    /// Ed-Fi 5.x InterchangeStudentAttendance XML.
    EdfiXml,
    /// SIF AU 3.4 StudentDailyAttendance / StudentPeriodAttendance XML.
    SifXml,
    /// Flyt-style vendor CSV (profile `flyt`).
    VendorCsv,
    /// Roster CSV (pupils, classes, contact teachers).
    RosterCsv,
}

/// Config commands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Sjekk en konfigurasjonsfil; feil vises med TOML-sti.
    Check {
        /// The file.
        path: PathBuf,
    },
}

/// Rule set commands.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Skriv ut et regelsett som TOML.
    Show {
        /// A preset (baerum, oslo) or a path.
        name: String,
    },
    /// Sjekk en regelfil og vis feil med TOML-sti.
    Check {
        /// The file.
        path: String,
    },
    /// List the presets.
    List,
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    tilstede::domain::record::parse_date(s)
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| format!("«{s}» er ikke et tidspunkt som 2026-03-02T09:00:00Z"))
}

/// Today's school date in Europe/Oslo.
pub fn today() -> NaiveDate {
    tilstede::domain::dates::school_date_utc(chrono::Utc::now())
}

/// Sets up tracing to stderr; `RUST_LOG` overrides.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,sqlx=warn",
        _ => "debug,sqlx=info",
    };
    // matrix-sdk logs every failed request as an error, the expected 404s
    // of its own lookups included; tilstede reports the failures that matter.
    let default = format!("{default},matrix_sdk::http_client=off,matrix_sdk_crypto=error");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn load_rules(name: &str) -> Result<RuleSet> {
    RuleSet::load(name).with_context(|| format!("regelsettet «{name}» kunne ikke brukes"))
}

/// Runs a command.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Evaluate {
            records,
            as_of,
            rules,
            format,
        } => records::evaluate(&records, as_of, &load_rules(&rules)?, format),
        Command::Import {
            files,
            options,
            rules,
            as_of,
        } => {
            records::import(
                &cli.store,
                &files,
                &options,
                &load_rules(&rules)?,
                as_of.unwrap_or_else(today),
            )
            .await
        }
        Command::Findings {
            as_of,
            rules,
            school,
            format,
        } => {
            records::findings(
                &cli.store,
                &load_rules(&rules)?,
                as_of.unwrap_or_else(today),
                school.as_deref(),
                format,
            )
            .await
        }
        Command::Quarantine { limit, format } => records::quarantine(&cli.store, limit, format).await,
        Command::Rules { command } => match command {
            RulesCommand::Show { name } => {
                let text = match tilstede::rules::config::preset_text(&name) {
                    Some(t) => t.to_string(),
                    None => {
                        load_rules(&name)?;
                        std::fs::read_to_string(&name)?
                    }
                };
                print!("{text}");
                Ok(ExitCode::SUCCESS)
            }
            RulesCommand::Check { path } => match RuleSet::load(&path) {
                Ok(set) => {
                    println!("{}: {} regler, i orden", set.name, set.rules.len());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{e}");
                    Ok(ExitCode::from(2))
                }
            },
            RulesCommand::List => {
                for (name, _) in tilstede::rules::config::PRESETS {
                    let set = load_rules(name)?;
                    println!("{name}\t{}", set.description);
                }
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Gen {
            pupils,
            schools,
            year,
            format,
            seed,
            out,
        } if format == GenFormat::Jsonl => records::generate(pupils, schools, year, format, seed, out.as_deref()),
        Command::Gen {
            pupils,
            schools,
            year,
            format,
            seed,
            out,
        } => adapters::generate(pupils, schools, year, format, seed, out.as_deref()),
        Command::Convert {
            adapter,
            profile,
            source,
            lessons_per_day,
            file,
        } => adapters::convert(
            &adapter,
            &tilstede::adapters::FileOptions {
                profile,
                source,
                lessons_per_day,
            },
            &file,
        ),
        Command::Sync { source, config } => adapters::sync(&cli.store, &config, &source).await,
        Command::Adapters { command } => adapters::adapters(&cli.store, command).await,
        Command::Bench { what } => bench::run(what).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Serve { config, listen } => {
            let config = tilstede::config::Config::load(&config)?;
            let running = tilstede::service::start(config, listen).await?;
            println!("tilstede lytter på http://{}", running.addr);
            tilstede::service::termination().await;
            eprintln!("avslutter: venter på pågående forespørsler …");
            running.shutdown().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Check { path },
        } => match tilstede::config::Config::load(&path) {
            Ok(c) => {
                let matrix = match &c.matrix {
                    Some(m) => format!(
                        "Matrix-bot {} med {} ressursteam-rom",
                        m.config.user,
                        m.config.schools.len()
                    ),
                    None => "uten Matrix-bot".into(),
                };
                println!(
                    "{}: i orden (lager {}, regler {}, {} kilder, {matrix})",
                    path.display(),
                    if c.store.starts_with("postgres") {
                        "PostgreSQL"
                    } else {
                        "SQLite"
                    },
                    c.rules_name,
                    c.sources.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(tilstede::config::ConfigError::Invalid(problems)) => {
                // Every problem, one per line, so all can be fixed at once.
                for d in problems.iter() {
                    eprintln!(
                        "{}: {}",
                        path.display(),
                        tilstede::domain::plausibility::printable_text(&d.to_string())
                    );
                }
                eprintln!("{} feil i {}", problems.len(), path.display());
                Ok(ExitCode::from(2))
            }
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                Ok(ExitCode::from(2))
            }
        },
        Command::Cases(args) => cases::run(&cli.store, args).await,
        Command::Purge { config, now } => purge::run(&config, now).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
