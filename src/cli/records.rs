//! `evaluate`, `import`, `findings`, `quarantine` and `gen`.

use super::{Format, GenFormat};
use anyhow::{Context, Result};
use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use tilstede::adapters::Parsed;
use tilstede::adapters::jsonl::JsonlReader;
use tilstede::domain::Finding;
use tilstede::domain::dates::norwegian;
use tilstede::rules::{RuleSet, evaluate as evaluate_records};
use tilstede::store::{QuarantineEntry, Store};

/// Rejected lines shown on the terminal; the rest are only in quarantine.
const SHOWN_REJECTS: usize = 20;

fn open(path: &Path) -> Result<(Box<dyn BufRead>, Option<u64>)> {
    if path == Path::new("-") {
        return Ok((Box::new(BufReader::new(std::io::stdin())), None));
    }
    let file = File::open(path).with_context(|| format!("kan ikke åpne {}", path.display()))?;
    let len = file.metadata().ok().map(|m| m.len());
    Ok((Box::new(BufReader::with_capacity(1 << 16, file)), len))
}

fn report_reject(q: &QuarantineEntry) {
    eprintln!("{}: {}", q.location, q.reason);
}

/// `tilstede evaluate`: pure, no store.
pub fn evaluate(path: &Path, as_of: NaiveDate, set: &RuleSet, format: Format) -> Result<ExitCode> {
    let (input, _) = open(path)?;
    let mut records = Vec::new();
    let mut rejected = 0usize;
    for item in JsonlReader::new(input, path.display().to_string()) {
        match item.with_context(|| format!("lesefeil i {}", path.display()))? {
            Parsed::Record(r) => records.push(r),
            Parsed::Rejected(q) => {
                rejected += 1;
                report_reject(&q);
            }
        }
    }
    let findings = evaluate_records(&records, set, as_of);
    print_findings(&findings, format)?;
    if rejected > 0 {
        eprintln!("{rejected} linjer ble avvist og er ikke med i vurderingen.");
    }
    Ok(ExitCode::SUCCESS)
}

fn print_findings(findings: &[Finding], format: Format) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, findings)?;
            writeln!(out)?;
        }
        Format::Text => {
            if findings.is_empty() {
                writeln!(out, "Ingen funn.")?;
            }
            for f in findings {
                writeln!(
                    out,
                    "{} ({})  {}  {}–{}\n  {}\n  grunnlag: {}{}",
                    f.pupil,
                    f.school,
                    f.criterion,
                    norwegian(f.window.from),
                    norwegian(f.window.to),
                    f.explanation,
                    shorten(&f.evidence),
                    if f.unclassified.is_empty() {
                        String::new()
                    } else {
                        format!("\n  ikke vurdert: {}", shorten(&f.unclassified))
                    }
                )?;
            }
        }
    }
    Ok(())
}

/// At most five ids, then how many there are.
fn shorten(ids: &[String]) -> String {
    if ids.len() <= 5 {
        ids.join(", ")
    } else {
        format!("{} … ({} i alt)", ids[..5].join(", "), ids.len())
    }
}

/// `tilstede import`.
pub async fn import(store: &str, files: &[std::path::PathBuf], set: &RuleSet, as_of: NaiveDate) -> Result<ExitCode> {
    let store = Store::open(store).await?;
    for path in files {
        let (input, len) = open(path)?;
        let bar = match len {
            Some(len) => ProgressBar::new(len).with_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner(),
        };
        bar.set_message(path.display().to_string());
        let input = BufReader::with_capacity(1 << 16, bar.wrap_read(input));
        let mut shown = 0usize;
        let reader = JsonlReader::new(input, path.display().to_string()).inspect(|item| {
            if let Ok(Parsed::Rejected(q)) = item {
                shown += 1;
                if shown <= SHOWN_REJECTS {
                    bar.suspend(|| report_reject(q));
                }
            }
        });
        let stats = tilstede::ingest::ingest(&store, reader, |_| {}).await;
        bar.finish_and_clear();
        let stats = stats.with_context(|| format!("import av {} stoppet", path.display()))?;
        if stats.quarantined as usize > SHOWN_REJECTS {
            eprintln!(
                "… og {} avviste linjer til (se `tilstede quarantine`).",
                stats.quarantined as usize - SHOWN_REJECTS
            );
        }
        println!(
            "{}: {} poster lest, {} nye eller endret, {} uendret, {} i karantene",
            path.display(),
            stats.received,
            stats.changed,
            stats.unchanged,
            stats.quarantined
        );
    }
    let refresh = store.refresh_findings(set, as_of).await?;
    let count = |k: &str| {
        refresh
            .changes
            .iter()
            .filter(|c| {
                matches!(
                    (k, c),
                    ("opened", tilstede::store::FindingChange::Opened { .. })
                        | ("updated", tilstede::store::FindingChange::Updated { .. })
                        | ("cleared", tilstede::store::FindingChange::Cleared { .. })
                )
            })
            .count()
    };
    println!(
        "Funn per {}: {} elever vurdert på nytt, {} nye funn, {} endrede, {} borte",
        norwegian(as_of),
        refresh.pupils,
        count("opened"),
        count("updated"),
        count("cleared")
    );
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `tilstede findings`.
pub async fn findings(
    store: &str,
    set: &RuleSet,
    as_of: NaiveDate,
    school: Option<&str>,
    format: Format,
) -> Result<ExitCode> {
    let store = Store::open(store).await?;
    store.refresh_findings(set, as_of).await?;
    let findings = store.findings(school).await?;
    print_findings(&findings, format)?;
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `tilstede quarantine`.
pub async fn quarantine(store: &str, limit: i64, format: Format) -> Result<ExitCode> {
    let store = Store::open(store).await?;
    let rows = store.quarantined(limit).await?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Text => {
            println!("{} i karantene totalt", store.quarantine_count().await?);
            for r in rows {
                println!("#{} {}  {}: {}", r.seq, r.received_at, r.entry.location, r.entry.reason);
            }
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `tilstede gen`.
pub fn generate(
    pupils: usize,
    schools: usize,
    year: i32,
    format: GenFormat,
    seed: u64,
    out: Option<&Path>,
) -> Result<ExitCode> {
    let m = tilstede::synthetic::Municipality::generate(pupils, schools, seed);
    let mut w: Box<dyn Write> = match out {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("kan ikke skrive {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let mut n = 0u64;
    match format {
        GenFormat::Jsonl => {
            for r in m.absence(year, "gen") {
                writeln!(w, "{}", r.to_json_line())?;
                n += 1;
            }
        }
        // The source formats are written by `adapters::generate`.
        other => anyhow::bail!("formatet {other:?} skrives ikke her"),
    }
    w.flush()?;
    eprintln!(
        "{} elever, {} skoler, {} klasser, {n} poster",
        m.pupils.len(),
        m.schools.len(),
        m.classes.len()
    );
    Ok(ExitCode::SUCCESS)
}
