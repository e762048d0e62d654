//! `tilstede bench ingest`: an Ed-Fi XML file end to end (parse → normalise
//! → store → evaluate) beside a bare quick-xml event scan of the same file.
//!
//! Parsing runs on its own thread and feeds the async store through a
//! bounded channel, so at most a few batches are in memory whatever the
//! file's size.

use super::bench::{peak_rss_mib, reset_peak, rss_mib};
use anyhow::{Context, Result};
use clap::Args;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use tilstede::adapters::Parsed;
use tilstede::adapters::edfi::{EdfiMapping, EdfiXmlReader};
use tilstede::adapters::xml::scan_events;
use tilstede::rules::RuleSet;
use tilstede::store::Store;
use tilstede::synthetic::Municipality;
use tilstede::synthetic::writers::EdfiXmlWriter;

/// Bytes of generated Ed-Fi 5.2 XML per record (measured: 148 MiB for 145,947
/// records, seven in ten of them section events).
const BYTES_PER_RECORD: u64 = 1063;

/// Settings of the ingest benchmark.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Records in the generated file.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Generate about this many MiB of XML instead (overrides --records).
    #[arg(long)]
    size_mib: Option<u64>,
    /// Use this Ed-Fi XML file instead of generating one.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Store location (default: a fresh SQLite file in a temp dir).
    #[arg(long = "bench-store")]
    bench_store: Option<String>,
    /// Seed of the generated municipality.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Runs the benchmark.
pub async fn run(args: IngestArgs) -> Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let year = 2025;
    let as_of = *Municipality::school_days(year).last().context("school days")?;
    let records = match args.size_mib {
        // The generated Ed-Fi XML takes about 1,060 bytes per record.
        Some(mib) => usize::try_from(mib * 1_048_576 / BYTES_PER_RECORD).unwrap_or(usize::MAX),
        None => args.records,
    };
    let path = match &args.file {
        Some(p) => p.clone(),
        None => {
            let t = Instant::now();
            let path = dir.path().join("edfi.xml");
            // About 55 records per pupil and year in the synthetic municipality.
            let m = Municipality::generate(records / 50 + 1, (records / 25_000).max(2), args.seed);
            let mut w = EdfiXmlWriter::new(BufWriter::new(File::create(&path)?), year + 1)?;
            let mut n = 0usize;
            for r in m.absence(year, "edfi").take(records) {
                w.record(&r)?;
                n += 1;
            }
            w.finish()?;
            println!(
                "generated: {n} records, {:.0} MiB of Ed-Fi XML in {:.1} s",
                std::fs::metadata(&path)?.len() as f64 / 1048576.0,
                t.elapsed().as_secs_f64()
            );
            drop(m);
            path
        }
    };
    let size = std::fs::metadata(&path)?.len() as f64 / 1048576.0;

    // Bare scan: quick-xml events, nothing built. The faster of two: the
    // first may read the file from disk (a file not yet in the page cache
    // made the scan half again as slow, and every ratio below look better
    // than it is), while every later stage reads it from memory.
    reset_peak();
    let mut scan = f64::INFINITY;
    let mut events = 0;
    for _ in 0..2 {
        let t = Instant::now();
        events = scan_events(
            BufReader::with_capacity(1 << 16, File::open(&path)?),
            &path.display().to_string(),
        )?;
        scan = scan.min(t.elapsed().as_secs_f64());
    }
    let scan_peak = peak_rss_mib();

    // Parse only: the adapter without the store.
    reset_peak();
    let t = Instant::now();
    let mut parsed = 0u64;
    for item in EdfiXmlReader::new(
        BufReader::with_capacity(1 << 16, File::open(&path)?),
        path.display().to_string(),
        EdfiMapping::default(),
    ) {
        if let Parsed::Record(_) = item? {
            parsed += 1;
        }
    }
    let parse = t.elapsed().as_secs_f64();
    let parse_peak = peak_rss_mib();

    // End to end.
    let location = match &args.bench_store {
        Some(s) => s.clone(),
        None => dir.path().join("bench.db").display().to_string(),
    };
    let store = Store::open(&location).await?;
    let set = RuleSet::preset("baerum").context("preset")?;
    reset_peak();
    let base = rss_mib();
    let t = Instant::now();
    let items = EdfiXmlReader::new(
        BufReader::with_capacity(1 << 16, File::open(&path)?),
        path.display().to_string(),
        EdfiMapping::default(),
    );
    let stats = tilstede::ingest::ingest_parallel(&store, items, |_| {}).await?;
    let stored = stats.received;
    let items = stats.received + stats.quarantined;
    let ingest = t.elapsed().as_secs_f64();
    let ingest_peak = peak_rss_mib();
    let t2 = Instant::now();
    let refresh = store.refresh_findings(&set, as_of).await?;
    let evaluate = t2.elapsed().as_secs_f64();
    let total = t.elapsed().as_secs_f64();
    let total_peak = peak_rss_mib();
    store.close().await;

    println!(
        "file: {} ({size:.0} MiB), {items} items, {stored} stored",
        path.display()
    );
    println!(
        "bare quick-xml scan:     {scan:7.2} s  {:>10.0} records/s  {:>7.0} MiB/s  ({events} events, best of 2)  peak RSS {scan_peak:.0} MiB",
        parsed as f64 / scan,
        size / scan
    );
    println!(
        "parse + normalise:       {parse:7.2} s  {:>10.0} records/s  {:>7.2}× scan  peak RSS {parse_peak:.0} MiB",
        parsed as f64 / parse,
        parse / scan
    );
    println!(
        "… + store (SQLite/PG):   {ingest:7.2} s  {:>10.0} records/s  {:>7.2}× scan  peak RSS {ingest_peak:.0} MiB (base {base:.0} MiB)",
        stored as f64 / ingest,
        ingest / scan
    );
    println!(
        "… + evaluate (end to end): {total:5.2} s  {:>10.0} records/s  {:>7.2}× scan  peak RSS {total_peak:.0} MiB; evaluation {evaluate:.2} s, {} pupils, {} finding changes",
        stored as f64 / total,
        total / scan,
        refresh.pupils,
        refresh.change_count()
    );
    Ok(ExitCode::SUCCESS)
}
