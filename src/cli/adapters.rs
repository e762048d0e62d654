//! `convert`, `adapters list`, `adapters roster` and the source formats of `gen`.

use super::GenFormat;
use anyhow::{Context, Result};
use clap::Subcommand;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tilstede::adapters::{FILE_ADAPTERS, FileOptions, ParseCounts, Parsed, open_file};
use tilstede::domain::plausibility::printable;
use tilstede::domain::reject::{Fault, RejectCode};
use tilstede::render::{count, count_len};
use tilstede::store::Store;

/// Adapter commands.
#[derive(Debug, Subcommand)]
pub enum AdaptersCommand {
    /// Vis adaptere og profiler.
    List,
    /// Les en elevliste (roster-csv) inn i lageret.
    Roster {
        /// The roster CSV file.
        file: PathBuf,
        /// Matrix id template for staff without one, e.g. `@{username}:kommune.no`.
        #[arg(long)]
        matrix_template: Option<String>,
        /// The service config: the roster is then the source's (`--source`),
        /// held to its schools, and linked by its identity column.
        #[arg(long, requires = "source")]
        config: Option<PathBuf>,
        /// The source whose local pupil ids the roster uses (with `--config`).
        #[arg(long, requires = "config")]
        source: Option<String>,
    },
}

fn open(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    if path == Path::new("-") {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let file = File::open(path).with_context(|| format!("kan ikke åpne {}", path.display()))?;
    Ok(Box::new(BufReader::with_capacity(1 << 16, file)))
}

/// `tilstede convert`: source file in, canonical JSON Lines out. Exits
/// non-zero when the file yields no accepted record (a wrong adapter or
/// shape must not pass in silence) or stops at a fault; the last line on
/// stderr counts what was accepted, rejected and skipped as presence.
pub fn convert(adapter: &str, options: &FileOptions, path: &Path) -> Result<ExitCode> {
    let input = open(path)?;
    let items = open_file(adapter, options, input, &path.display().to_string())?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut counts = ParseCounts::default();
    let mut fault = None;
    for item in items {
        match item {
            Ok(p) => {
                counts.add(&p);
                match p {
                    Parsed::Record(r) => writeln!(out, "{}", r.to_json_line())?,
                    Parsed::Rejected(q) => eprintln!(
                        "{}: {}",
                        tilstede::domain::plausibility::printable(&q.location),
                        q.reason()
                    ),
                    Parsed::Skipped(_) => {}
                }
            }
            Err(e) => {
                fault = Some(e);
                break;
            }
        }
    }
    out.flush()?;
    if let Some(e) = &fault {
        // The records before the fault are already written.
        eprintln!("stoppet: {e}");
    }
    eprintln!("{}: {}", path.display(), counts.summary());
    if fault.is_some() || counts.accepted == 0 {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `tilstede adapters …`.
pub async fn adapters(store: &str, command: AdaptersCommand) -> Result<ExitCode> {
    match command {
        AdaptersCommand::List => {
            let show = |a: &tilstede::adapters::AdapterInfo| {
                println!("  {:<12} {}", a.name, a.description);
                println!("  {:<12}   standard: {}", "", a.standard);
                println!("  {:<12}   kartlegging: {}", "", a.mapping);
            };
            println!("Filadaptere:");
            FILE_ADAPTERS.iter().for_each(show);
            println!(
                "  {:<12} elevliste: skole, klasse, trinn, kontaktlærer (tilstede adapters roster)",
                "roster-csv"
            );
            println!("  {:<12}   standard: tilstedes elevliste-CSV", "");
            println!("  {:<12}   kartlegging: adapters/README.md", "");
            println!("Kilder som hentes (tilstede sync KILDE, se adapters/README.md):");
            tilstede::adapters::PULL_ADAPTERS.iter().for_each(show);
            println!("Profiler (--profile):");
            for (name, _) in tilstede::adapters::profile::SHIPPED {
                let p = tilstede::adapters::profile::Profile::load(name)?;
                println!("  {name:<12} {}: {}", p.adapter, p.description);
            }
            Ok(ExitCode::SUCCESS)
        }
        AdaptersCommand::Roster {
            file,
            matrix_template,
            config,
            source,
        } => {
            let scope = match (&config, &source) {
                (Some(config), Some(source)) => Some(roster_source(config, source)?),
                _ => None,
            };
            let input = open(&file)?;
            let location = file.display().to_string();
            let (mut roster, links, mut rejects) = tilstede::adapters::roster_csv::read_roster_linked(
                input,
                &location,
                matrix_template.as_deref(),
                scope.as_ref().and_then(|(_, s)| s.identity.as_ref()),
            )?;
            let store = Store::open(store).await?;
            let mut report = tilstede::store::LinkReport::default();
            match &scope {
                None => store.upsert_roster(&roster).await?,
                Some((id, s)) => {
                    // A roster source writes only its own schools, like an absence source.
                    let allowed = |school: &str| s.schools.allows(school);
                    for p in roster.pupils.iter().filter(|p| !allowed(&p.school)) {
                        rejects.push(tilstede::adapters::roster_csv::RosterReject {
                            location: format!("{location} (elev {})", printable(&p.id)),
                            fault: Fault::whole(RejectCode::SchoolNotAllowed).with_limit(format!(
                                "kilden «{id}» har ikke lov til å skrive for skolen «{}»",
                                printable(&p.school)
                            )),
                        });
                    }
                    roster.schools.retain(|x| allowed(&x.id));
                    roster.classes.retain(|c| allowed(&c.school));
                    roster.pupils.retain(|p| allowed(&p.school));
                    roster.staff.retain(|p| p.school.as_deref().is_none_or(allowed));
                    let links: Vec<_> = links.into_iter().filter(|l| allowed(&l.school)).collect();
                    let scope = tilstede::ingest::Scope::new(id.clone(), s.schools.clone());
                    report = store.link_identities(&scope, &links).await?;
                    store.upsert_source_roster(id, &roster).await?;
                    // Refused links and unreadable identities go to the
                    // quarantine with their reason code, for IT to resolve.
                    let refused: Vec<_> = report
                        .refused
                        .iter()
                        .map(|r| (format!("{location} (elev {})", printable(&r.local)), r.fault()))
                        .chain(
                            rejects
                                .iter()
                                .filter(|r| r.fault.code == RejectCode::IdentityMalformed)
                                .map(|r| (r.location.clone(), r.fault.clone())),
                        )
                        .map(|(location, fault)| {
                            tilstede::ingest::quarantine_entry(tilstede::adapters::Rejected::new(
                                Some(id.clone()),
                                location,
                                fault,
                                String::new(),
                            ))
                        })
                        .collect();
                    if !refused.is_empty() {
                        store.ingest(&[], &refused).await?;
                    }
                }
            }
            store.close().await;
            for r in &rejects {
                eprintln!("{}: {}", r.location, r.fault);
            }
            for r in &report.refused {
                eprintln!(
                    "{location} (elev {}): {}",
                    printable(&r.local),
                    printable(&r.to_string())
                );
            }
            println!(
                "{}: {}, {}, {}, {}; {} avvist",
                file.display(),
                count_len(roster.schools.len(), "skole", "skoler"),
                count_len(roster.classes.len(), "klasse", "klasser"),
                count_len(roster.pupils.len(), "elev", "elever"),
                count_len(roster.staff.len(), "ansatt", "ansatte"),
                count_len(rejects.len(), "linje", "linjer")
            );
            if scope.as_ref().is_some_and(|(_, s)| s.identity.is_some()) {
                println!(
                    "identitetskart: {} knyttet, {} flyttet til felles elevnøkkel, {} avvist (se karantenen)",
                    count_len(report.linked, "elev", "elever"),
                    count_len(report.moved, "elev", "elever"),
                    report.refused.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The configured source `id` of the service config at `path`.
fn roster_source(path: &Path, id: &str) -> Result<(String, tilstede::config::SourceConfig)> {
    let config = tilstede::config::Config::load(path)
        .with_context(|| format!("konfigurasjonen {} kunne ikke brukes", path.display()))?;
    let known: Vec<&str> = config.sources.keys().map(String::as_str).collect();
    let source = config.sources.get(id).cloned().with_context(|| {
        format!(
            "kilden «{}» finnes ikke i {} (kjente: {})",
            printable(id),
            path.display(),
            known.join(", ")
        )
    })?;
    Ok((id.to_string(), source))
}

/// `tilstede gen` for the source formats.
pub fn generate(
    pupils: usize,
    schools: usize,
    year: i32,
    format: GenFormat,
    seed: u64,
    out: Option<&Path>,
) -> Result<ExitCode> {
    use tilstede::synthetic::writers;
    let m = tilstede::synthetic::Municipality::generate(pupils, schools, seed);
    let w: Box<dyn Write> = match out {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("kan ikke skrive {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let mut n = 0u64;
    match format {
        GenFormat::Jsonl => anyhow::bail!("jsonl skrives av records::generate"),
        GenFormat::EdfiXml => {
            let mut x = writers::EdfiXmlWriter::new(w, year + 1)?;
            for r in m.absence(year, "edfi") {
                x.record(&r)?;
                n += 1;
            }
            x.finish()?;
        }
        GenFormat::SifXml => {
            let mut x = writers::SifXmlWriter::new(w, year + 1)?;
            for r in m.absence(year, "sif") {
                x.record(&r)?;
                n += 1;
            }
            x.finish()?;
        }
        GenFormat::VendorCsv => {
            let mut w = w;
            writeln!(w, "{}", writers::FLYT_HEADER)?;
            for r in m.absence(year, "flyt") {
                writeln!(w, "{}", writers::flyt_csv_line(&r))?;
                n += 1;
            }
            w.flush()?;
        }
        GenFormat::RosterCsv => {
            let mut w = w;
            for line in writers::roster_csv_lines(&m) {
                writeln!(w, "{line}")?;
                n += 1;
            }
            n = n.saturating_sub(1);
            w.flush()?;
        }
    }
    eprintln!(
        "{}, {}, {}, {}",
        count_len(m.pupils.len(), "elev", "elever"),
        count_len(m.schools.len(), "skole", "skoler"),
        count_len(m.classes.len(), "klasse", "klasser"),
        count(n as i64, "post", "poster")
    );
    Ok(ExitCode::SUCCESS)
}

/// `tilstede sync SOURCE`: one incremental pull of a configured source.
pub async fn sync(store: &str, config: &Path, source: &str) -> Result<ExitCode> {
    let text = std::fs::read_to_string(config).with_context(|| format!("kan ikke lese {}", config.display()))?;
    let pull = tilstede::adapters::config::pull_source(&text, source)
        .with_context(|| format!("feil i {}", config.display()))?;
    let client = tilstede::adapters::rest::RestClient::new(pull.auth.clone(), pull.retry)?;
    let store = Store::open(store).await?;
    let report = tilstede::adapters::pull_once(&client, &pull, &store).await;
    store.close().await;
    let report = report.with_context(|| format!("synkronisering av «{source}» stoppet; markøren er uendret"))?;
    if let Some(r) = &report.roster {
        for s in &r.skipped {
            eprintln!("utelatt: {s}");
        }
        println!(
            "{source}: elevliste hentet på {}: {}, {}, {}, {}; {} utelatt",
            count(report.pages as i64, "side", "sider"),
            count(r.schools as i64, "skole", "skoler"),
            count(r.classes as i64, "klasse", "klasser"),
            count(r.pupils as i64, "elev", "elever"),
            count(r.staff as i64, "ansatt", "ansatte"),
            r.skipped.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{source}: markør {} → {}; {}, {} ({}), {} nye eller endret, {} uendret, {} i karantene",
        report.from.map_or("start".to_string(), |v| v.to_string()),
        report.to,
        count(report.pages as i64, "side", "sider"),
        count(report.stats.received as i64, "post", "poster"),
        count(report.deleted as i64, "sletting", "slettinger"),
        report.stats.changed,
        report.stats.unchanged,
        report.stats.quarantined
    );
    Ok(ExitCode::SUCCESS)
}
