//! `evaluate`, `import`, `findings`, `quarantine` and `gen`.

// Ids come from outside: control characters are shown, never obeyed.
use super::{Format, GenFormat};
use anyhow::{Context, Result};
use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use tilstede::adapters::jsonl::JsonlReader;
use tilstede::adapters::{ParseCounts, Parsed, Rejected};
use tilstede::domain::dates::norwegian;
use tilstede::domain::plausibility::printable;
use tilstede::domain::{Fault, Finding, RejectCode};
use tilstede::render::{count, count_len};
use tilstede::rules::{RuleSet, evaluate as evaluate_records};
use tilstede::store::Store;

/// Rejected lines shown on the terminal; the rest are only in quarantine.
const SHOWN_REJECTS: usize = 20;

fn open(path: &Path) -> Result<(Box<dyn BufRead + Send>, Option<u64>)> {
    if path == Path::new("-") {
        return Ok((Box::new(BufReader::new(std::io::stdin())), None));
    }
    let file = File::open(path).with_context(|| format!("kan ikke åpne {}", path.display()))?;
    let len = file.metadata().ok().map(|m| m.len());
    Ok((Box::new(BufReader::with_capacity(1 << 16, file)), len))
}

fn report_reject(q: &Rejected) {
    eprintln!("{}: {}", printable(&q.location), q.reason());
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
            Parsed::Skipped(_) => {}
        }
    }
    let findings = evaluate_records(&records, set, as_of);
    print_findings(&findings, format)?;
    if rejected > 0 {
        eprintln!(
            "{} ble avvist og er ikke med i vurderingen.",
            count_len(rejected, "linje", "linjer")
        );
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
                    printable(&f.pupil),
                    printable(&f.school),
                    f.criterion,
                    norwegian(f.window.from),
                    norwegian(f.window.to),
                    printable(&f.explanation),
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

/// At most five ids, then how many there are; safe for a terminal.
fn shorten(ids: &[String]) -> String {
    let shown: Vec<_> = ids.iter().take(5).map(|id| printable(id)).collect();
    if ids.len() <= 5 {
        shown.join(", ")
    } else {
        format!("{} … ({} i alt)", shown.join(", "), ids.len())
    }
}

/// Extra help for `tilstede import --help`: how file imports are versioned.
pub const IMPORT_HELP: &str = "\
Versjoner: JSONL-poster har sin egen versjon. Kildefiler (edfi-xml, sif-xml, \
vendor-csv uten versjonskolonne) har ingen, så hver import får et versjonsstempel: \
filens endringstid i unix-sekunder, eller --version-stamp N. Samme fil to ganger \
endrer ingenting, en nyere rettet fil erstatter postene den endrer, og en eldre fil \
kan ikke overskrive nyere data.

Med --snapshot er filen et fullstendig øyeblikksbilde av kilden for sine skoler og \
sin datoperiode: poster fra samme kilde innenfor dette utsnittet som mangler i filen \
(og er eldre enn stempelet), blir slettet (gravstein), og funnene oppdateres.";

/// How `tilstede import` reads its files.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportOptions {
    /// The adapter that reads the files (see `tilstede adapters list`).
    #[arg(long, default_value = "jsonl")]
    pub adapter: String,
    /// Profile name or TOML path (vendor adapters).
    #[arg(long)]
    pub profile: Option<String>,
    /// Canonical source name of the records.
    #[arg(long)]
    pub source: Option<String>,
    /// Lessons in a school day (Ed-Fi and SIF part-day events).
    #[arg(long)]
    pub lessons_per_day: Option<u32>,
    /// Version of every record in the files (default: each file's modification time in unix seconds).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub version_stamp: Option<u32>,
    /// Treat each file as a full snapshot: stored records of its source, schools and dates that it lacks are deleted.
    #[arg(long)]
    pub snapshot: bool,
    /// The service config: records are then held to what their source may write (its `schools`).
    #[arg(long, env = "TILSTEDE_CONFIG", hide_env = true)]
    pub config: Option<std::path::PathBuf>,
}

/// The version stamp of a file import: the flag, or the file's modification time.
fn version_stamp(path: &Path, flag: Option<u32>) -> Result<u32> {
    if let Some(v) = flag {
        return Ok(v);
    }
    anyhow::ensure!(
        path != Path::new("-"),
        "standard inn har ingen endringstid: oppgi --version-stamp"
    );
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .with_context(|| format!("kan ikke lese endringstiden til {}", path.display()))?;
    tilstede::adapters::version_stamp_at(modified).with_context(|| {
        format!(
            "endringstiden til {} passer ikke som versjon: oppgi --version-stamp",
            path.display()
        )
    })
}

/// The scopes of the configured sources when a config is given: a file
/// import then holds every record to what its source may write, like a
/// push. Also the sources whose rejected input the quarantine keeps
/// (`keep_raw`; none without a config).
#[allow(clippy::type_complexity)]
fn import_scopes(
    options: &ImportOptions,
) -> Result<(
    Option<std::sync::Arc<std::collections::BTreeMap<String, tilstede::ingest::Scope>>>,
    Vec<String>,
)> {
    let Some(path) = &options.config else {
        return Ok((None, Vec::new()));
    };
    let config = tilstede::config::Config::load(path)
        .with_context(|| format!("konfigurasjonen {} kunne ikke brukes", path.display()))?;
    if let Some(source) = &options.source {
        anyhow::ensure!(
            config.sources.contains_key(source),
            "kilden «{}» finnes ikke i {}",
            printable(source),
            path.display()
        );
    }
    let scopes = config
        .sources
        .iter()
        .map(|(id, s)| {
            (
                id.clone(),
                tilstede::ingest::Scope::new(id.clone(), s.schools.clone()).with_extensions(s.extensions.clone()),
            )
        })
        .collect();
    Ok((Some(std::sync::Arc::new(scopes)), config.raw_kept_sources()))
}

/// `tilstede import`.
pub async fn import(
    store: &str,
    files: &[std::path::PathBuf],
    options: &ImportOptions,
    set: &RuleSet,
    as_of: NaiveDate,
) -> Result<ExitCode> {
    let own_versions = tilstede::adapters::carries_versions(&options.adapter, options.profile.as_deref())?;
    if own_versions && (options.version_stamp.is_some() || options.snapshot) {
        anyhow::bail!(
            "--version-stamp og --snapshot gjelder bare kildefiler uten egne versjoner; postene fra «{}»{} har versjoner",
            options.adapter,
            options
                .profile
                .as_deref()
                .map(|p| format!(" med profilen «{p}»"))
                .unwrap_or_default()
        );
    }
    let file_options = tilstede::adapters::FileOptions {
        profile: options.profile.clone(),
        source: options.source.clone(),
        lessons_per_day: options.lessons_per_day,
    };
    let (scopes, raw_kept) = import_scopes(options)?;
    let store = Store::open(store).await?.keeping_raw_for(raw_kept);
    let mut empty = Vec::new();
    for path in files {
        let stamp = if own_versions {
            None
        } else {
            Some(version_stamp(path, options.version_stamp)?)
        };
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
        let items = tilstede::adapters::open_file(
            &options.adapter,
            &file_options,
            Box::new(input),
            &path.display().to_string(),
        )?;
        let coverage = std::sync::Arc::new(std::sync::Mutex::new(tilstede::ingest::Coverage::default()));
        let seen = coverage.clone();
        let counts = std::sync::Arc::new(std::sync::Mutex::new(ParseCounts::default()));
        let counted = counts.clone();
        let shown_bar = bar.clone();
        let mut shown = 0usize;
        let scopes = scopes.clone();
        let fixed_source = options.source.clone();
        let place = path.display().to_string();
        let reader = items.map(move |mut item| {
            // A configured source writes only its own schools: what it may
            // not write is rejected before anything counts it as accepted.
            if let Some(scopes) = &scopes
                && let Ok(Parsed::Record(r)) = item
            {
                let scope = scopes.get(fixed_source.as_deref().unwrap_or(r.source.as_str()));
                item = Ok(match scope {
                    Some(scope) => scope.screen(r, &place),
                    None => Parsed::Rejected(Rejected::new(
                        Some(r.source.clone()),
                        format!("{place} ({})", printable(&r.id)),
                        Fault::new(RejectCode::SourceMismatch, "source").with_limit("ingen kilde i konfigurasjonen"),
                        String::new(),
                    )),
                });
            }
            if let (Ok(p), Ok(mut c)) = (&item, counted.lock()) {
                c.add(p);
            }
            match &mut item {
                Ok(Parsed::Record(r)) => {
                    if let Some(stamp) = stamp {
                        r.version = stamp.into();
                    }
                    if let Ok(mut c) = seen.lock() {
                        c.add(r);
                    }
                }
                Ok(Parsed::Rejected(q)) => {
                    shown += 1;
                    if shown <= SHOWN_REJECTS {
                        shown_bar.suspend(|| report_reject(q));
                    }
                }
                Ok(Parsed::Skipped(_)) | Err(_) => {}
            }
            item
        });
        let stats = tilstede::ingest::ingest_parallel(&store, reader, |_| {}).await;
        bar.finish_and_clear();
        let stats = stats.with_context(|| format!("import av {} stoppet", path.display()))?;
        if stats.quarantined as usize > SHOWN_REJECTS {
            eprintln!(
                "… og {} til (se `tilstede quarantine`).",
                count_len(
                    stats.quarantined as usize - SHOWN_REJECTS,
                    "avvist linje",
                    "avviste linjer"
                )
            );
        }
        let counts = std::mem::take(&mut *counts.lock().map_err(|_| anyhow::anyhow!("tellingen ble ødelagt"))?);
        println!(
            "{}: {} lest, {} nye eller endret, {} uendret, {} i karantene",
            path.display(),
            count(stats.received as i64, "post", "poster"),
            stats.changed,
            stats.unchanged,
            stats.quarantined
        );
        eprintln!("{}: {}", path.display(), counts.summary());
        if counts.accepted == 0 {
            empty.push(path.display().to_string());
        }
        if let (true, Some(stamp)) = (options.snapshot, stamp) {
            let coverage = std::mem::take(&mut *coverage.lock().map_err(|_| anyhow::anyhow!("dekningen ble ødelagt"))?);
            let mut removed = 0;
            for (source, c) in coverage.sources() {
                let schools: Vec<&str> = c.schools.iter().map(String::as_str).collect();
                removed += store.tombstone_absent(source, &schools, c.from, c.to, stamp).await?;
            }
            println!(
                "{}: øyeblikksbilde for {} {}: {} som mangler i filen, er slettet",
                path.display(),
                count_len(coverage.school_count(), "skole", "skoler"),
                coverage
                    .dates()
                    .map(|(from, to)| format!("{}–{}", norwegian(from), norwegian(to)))
                    .unwrap_or_else(|| "(ingen poster)".into()),
                count(removed as i64, "post", "poster")
            );
        }
    }
    let refresh = store.refresh_findings(set, as_of).await?;
    println!(
        "Funn per {}: {} vurdert på nytt, {}, {} endret, {} borte",
        norwegian(as_of),
        count(refresh.pupils as i64, "elev", "elever"),
        count(refresh.opened as i64, "nytt funn", "nye funn"),
        refresh.updated,
        refresh.cleared
    );
    store.close().await;
    if !empty.is_empty() {
        // A file that gave nothing is a failure even when it was read to
        // the end: a wrong adapter or shape must not pass in silence.
        eprintln!("ingen godtatte poster i: {}", empty.join(", "));
        return Ok(ExitCode::FAILURE);
    }
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
                println!(
                    "#{} {}  {}: {}",
                    r.seq,
                    r.received_at,
                    printable(&r.entry.location),
                    printable(&r.entry.reason)
                );
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
        "{}, {}, {}, {}",
        count_len(m.pupils.len(), "elev", "elever"),
        count_len(m.schools.len(), "skole", "skoler"),
        count_len(m.classes.len(), "klasse", "klasser"),
        count(n as i64, "post", "poster")
    );
    Ok(ExitCode::SUCCESS)
}
