//! `tilstede cases …`: drive the case workflow without chat.

use super::Format;
use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use tilstede::cases::digest::{registration_gaps, school_digest, teacher_digest};
use tilstede::cases::{CaseConfig, Command as CaseCommand, Party, Role};
use tilstede::render::{
    Document, Renderer, case_context, notice_context, school_digest_context, teacher_digest_context,
};
use tilstede::store::Store;
use tilstede::workflow::{self, WorkflowError};

/// Case commands.
#[derive(Debug, Args)]
pub struct CasesArgs {
    /// Case settings: a preset (baerum) or a path to a TOML file.
    #[arg(long, default_value = "baerum", global = true)]
    pub config: String,
    /// The rule set whose `lessons_per_day` evaluation numbers use.
    #[arg(long, default_value = "baerum", global = true)]
    pub rules: String,
    /// The time to act at (RFC 3339); default now. Tests use it as a fake clock.
    #[arg(long, global = true, value_parser = parse_time)]
    pub now: Option<DateTime<Utc>>,
    /// Who is acting or reading: a staff id or a Matrix id.
    #[arg(long = "as", global = true)]
    pub actor: Option<String>,
    /// In which role: kontaktlaerer, avdelingsleder, ressursteam, fagkoordinator, ledelse.
    #[arg(long, global = true)]
    pub role: Option<String>,
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
    /// Les nye funn og åpne eller oppdater saker.
    Sync,
    /// Kjør fristene: påminnelser, eskaleringer, gjennomganger.
    Tick,
    /// Slett saker som ble avsluttet for mer enn `retention_days` siden, og
    /// be boten trekke tilbake (redigere bort) meldingene sine om dem.
    Purge,
    /// List saker.
    List {
        /// Closed cases too.
        #[arg(long)]
        all: bool,
        /// Only this school.
        #[arg(long)]
        school: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Vis en sak.
    Show {
        /// Case number, e.g. S-2026-0001.
        number: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Utfør et steg i rutinen, gitt som JSON (se `Command` i src/cases/command.rs).
    Apply {
        /// Case number.
        number: String,
        /// The step as JSON, e.g. {"command":"log-contact",...}; `-` reads standard input.
        step: String,
    },
    /// Vis revisjonsloggen for en sak.
    Audit {
        /// Case number.
        number: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Vis varslingskøen.
    Notifications {
        /// Delivered ones too.
        #[arg(long)]
        all: bool,
        /// How many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Render each with this template directory's overrides.
        #[arg(long)]
        templates: Option<PathBuf>,
    },
    /// Lag et dokument for en sak (samarbeidsavtale, evaluering, referat, …).
    Render {
        /// Case number.
        number: String,
        /// forste-samtale, dagsorden-fase3, dagsorden-fase4, referat, samarbeidsavtale, evaluering, overforing.
        document: String,
        /// Output form.
        #[arg(long, value_enum, default_value_t = Form::Markdown)]
        form: Form,
        /// A directory of template overrides.
        #[arg(long)]
        templates: Option<PathBuf>,
    },
    /// Månedlig oversikt for en kontaktlærer.
    DigestTeacher {
        /// The contact teacher's staff id.
        #[arg(long)]
        teacher: String,
        /// School id.
        #[arg(long)]
        school: String,
        /// First day (YYYY-MM-DD).
        #[arg(long, value_parser = parse_date)]
        from: NaiveDate,
        /// Last day (YYYY-MM-DD).
        #[arg(long, value_parser = parse_date)]
        to: NaiveDate,
        /// Output form.
        #[arg(long, value_enum, default_value_t = Form::Markdown)]
        form: Form,
    },
    /// Oversikt for ledelsen: hele skolen, per trinn, med trend og registreringshull.
    DigestSchool {
        /// School id.
        #[arg(long)]
        school: String,
        /// First day (YYYY-MM-DD).
        #[arg(long, value_parser = parse_date)]
        from: NaiveDate,
        /// Last day (YYYY-MM-DD).
        #[arg(long, value_parser = parse_date)]
        to: NaiveDate,
        /// Days in a row without registrations before a class is named.
        #[arg(long, default_value_t = 3)]
        gap_days: u32,
        /// Output form.
        #[arg(long, value_enum, default_value_t = Form::Markdown)]
        form: Form,
    },
    /// Sjekk en saksoppsett-fil og vis feil med TOML-sti.
    Check {
        /// The file.
        path: String,
    },
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("«{s}» er ikke et tidspunkt som 2026-03-02T09:00:00Z"))
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    tilstede::domain::record::parse_date(s)
}

fn actor(args: &CasesArgs) -> Result<Party> {
    let id = args
        .actor
        .clone()
        .ok_or_else(|| anyhow!("--as mangler: hvem leser eller endrer saken?"))?;
    let role = args.role.as_deref().ok_or_else(|| anyhow!("--role mangler"))?;
    let role = Role::parse(role).ok_or_else(|| {
        anyhow!("ukjent rolle «{role}»: bruk kontaktlaerer, avdelingsleder, ressursteam, fagkoordinator eller ledelse")
    })?;
    Ok(Party::new(id, role))
}

fn pick(r: &tilstede::render::Rendered, form: Form) -> &str {
    match form {
        Form::Markdown => &r.markdown,
        Form::Html => &r.html,
        Form::Text => &r.plain,
    }
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
    config.lessons_per_day = tilstede::rules::RuleSet::load(&args.rules)
        .with_context(|| format!("regelsettet «{}»", args.rules))?
        .lessons_per_day;
    let now = args.now.unwrap_or_else(Utc::now);
    let s = Store::open(store).await?;
    let result = run_with(&s, &config, now, &args).await;
    s.close().await;
    result
}

async fn run_with(s: &Store, config: &CaseConfig, now: DateTime<Utc>, args: &CasesArgs) -> Result<ExitCode> {
    match &args.command {
        CasesCommand::Check { .. } => unreachable!("handled before opening the store"),
        CasesCommand::Sync => {
            let st = workflow::sync_cases(s, config, now).await?;
            println!(
                "{} funnendringer lest, {} saker åpnet, {} saker endret, {} varsler i kø",
                st.events, st.opened, st.changed, st.notices
            );
        }
        CasesCommand::Purge => {
            let before = now - chrono::Duration::days(i64::from(config.retention_days));
            let p = s.purge_closed_cases(before).await?;
            println!(
                "{} saker slettet, {} Matrix-meldinger i kø for tilbaketrekking",
                p.cases.len(),
                p.redactions
            );
            for n in p.cases {
                println!("{n}");
            }
        }
        CasesCommand::Tick => {
            let notices = workflow::tick_cases(s, config, now).await?;
            println!("{} varsler i kø", notices.len());
            for n in notices {
                println!("{}", n.key);
            }
        }
        CasesCommand::List { all, school, format } => {
            let cases = s.list_cases(school.as_deref(), *all, &actor(args)?, now).await?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&cases)?),
                Format::Text => {
                    for c in cases {
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
            let case = s.read_case(number, &actor(args)?, now).await?;
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
        CasesCommand::Apply { number, step } => {
            let text = if step == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                step.clone()
            };
            let command: CaseCommand =
                serde_json::from_str(&text).map_err(|e| anyhow!("steget kunne ikke leses: {e}"))?;
            match workflow::apply_case_command(s, number, &actor(args)?, &command, now, config).await {
                Ok((case, notices)) => {
                    println!(
                        "{}: {} · fase {} · ansvarlig {}",
                        case.number,
                        command.norwegian(),
                        case.phase.number(),
                        case.responsible.id
                    );
                    for n in notices {
                        println!("varsel {}", n.key);
                    }
                }
                Err(WorkflowError::Refused(e)) => {
                    eprintln!("avvist: {e}");
                    return Ok(ExitCode::from(3));
                }
                Err(e) => return Err(e.into()),
            }
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
            let case = s.read_case(number, &actor(args)?, now).await?;
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
            for p in &pupils {
                records.extend(s.pupil_records(&p.id, *from, *to).await?);
            }
            let cases = s.cases_raw(Some(school), false).await?;
            let d = teacher_digest(
                teacher,
                &classes,
                &pupils,
                &records,
                &cases,
                *from,
                *to,
                config.lessons_per_day,
            );
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
            let d = school_digest(
                school,
                &name,
                &pupils,
                &records,
                &cases,
                *from,
                *to,
                config.lessons_per_day,
            );
            let gaps = registration_gaps(&classes, &pupils, &records, *from, *to, *gap_days);
            let r = Renderer::builtin()?.render(Document::DigestSchool, &school_digest_context(&d, &gaps))?;
            print!("{}", pick(&r, *form));
        }
    }
    Ok(ExitCode::SUCCESS)
}
