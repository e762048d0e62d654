//! `tilstede bench`: measurements that print numbers (no timed tests).

use anyhow::Result;
use chrono::NaiveDate;
use clap::Subcommand;
use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Instant;
use tilstede::domain::AbsenceRecord;
use tilstede::rules::{Evaluator, RuleSet, evaluate};
use tilstede::synthetic::Municipality;

/// What to measure.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Regelmotoren: full og inkrementell vurdering av en generert kommune.
    Rules {
        /// Pupils.
        #[arg(long, default_value_t = 20_000)]
        pupils: usize,
        /// Schools.
        #[arg(long, default_value_t = 40)]
        schools: usize,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also measure import and refresh through an SQLite store in a temp dir.
        #[arg(long)]
        with_store: bool,
    },
    /// HTTP-mottak: poster/s og svartid for enkeltposter under last.
    Http {
        /// Concurrent clients.
        #[arg(long, default_value_t = 50)]
        clients: usize,
        /// Records in total.
        #[arg(long, default_value_t = 100_000)]
        records: usize,
        /// Records per request.
        #[arg(long, default_value_t = 500)]
        per_request: usize,
        /// Slow clients holding connections while `/healthz` is measured.
        #[arg(long, default_value_t = 1000)]
        slow_clients: usize,
        /// SQLite's commit mode for the run: full (the default, a 202
        /// survives a power loss) or normal, to measure what full costs.
        #[arg(long, default_value = "full", value_parser = ["full", "normal"])]
        synchronous: String,
    },
    /// Ed-Fi XML ende til ende (les → normaliser → lagre → vurder) ved siden av en ren XML-skanning.
    Ingest(super::bench_ingest::IngestArgs),
    /// Matrix: bare matrix-sdk round trip beside the bot's outbox → reader (starts its own Synapse).
    Matrix {
        /// Messages per kind.
        #[arg(long, default_value_t = 200)]
        messages: usize,
    },
    /// Matrix under load: many prompts over many rooms at once, with Synapse's
    /// stock limits lifted for the bot (override_ratelimit) or not.
    MatrixLoad {
        /// Prompts (thread messages) in total; one case card per five.
        #[arg(long, default_value_t = 1000)]
        prompts: usize,
        /// Ressursteam rooms.
        #[arg(long, default_value_t = 50)]
        rooms: usize,
        /// How the bot is rate limited.
        #[arg(long, value_enum, default_value_t = super::bench_matrix_load::BotLimits::Override)]
        limits: super::bench_matrix_load::BotLimits,
    },
}

/// Peak resident memory so far, in MiB (Linux).
pub fn peak_rss_mib() -> f64 {
    status_kib("VmHWM:") / 1024.0
}

/// Current resident memory, in MiB (Linux).
pub fn rss_mib() -> f64 {
    status_kib("VmRSS:") / 1024.0
}

fn status_kib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0.0)
}

/// Resets the peak-RSS counter so the next phase is measured on its own.
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub async fn run(what: BenchCommand) -> Result<ExitCode> {
    match what {
        BenchCommand::Rules {
            pupils,
            schools,
            seed,
            with_store,
        } => rules(pupils, schools, seed, with_store).await,
        BenchCommand::Http {
            clients,
            records,
            per_request,
            slow_clients,
            synchronous,
        } => super::bench_http::run(clients, records, per_request, slow_clients, &synchronous).await,
        BenchCommand::Ingest(args) => super::bench_ingest::run(args).await,
        BenchCommand::Matrix { messages } => super::bench_matrix::run(messages).await,
        BenchCommand::MatrixLoad { prompts, rooms, limits } => {
            super::bench_matrix_load::run(prompts, rooms, limits).await
        }
    }
}

async fn rules(pupils: usize, schools: usize, seed: u64, with_store: bool) -> Result<ExitCode> {
    let set = RuleSet::preset("baerum").expect("preset");
    let year = 2025;
    let days = Municipality::school_days(year);
    let as_of = *days.last().expect("school days");
    let t = Instant::now();
    let m = Municipality::generate(pupils, schools, seed);
    let records: Vec<AbsenceRecord> = m.absence(year, "gen").collect();
    println!(
        "generated: {} pupils, {} records in {:.2} s; RSS {:.0} MiB",
        m.pupils.len(),
        records.len(),
        t.elapsed().as_secs_f64(),
        rss_mib()
    );

    // Full evaluation, three runs; report the best and the median.
    reset_peak();
    let base = rss_mib();
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let findings = evaluate(&records, &set, as_of);
        times.push(t.elapsed().as_secs_f64());
        found = findings.len();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "full evaluation: {} findings; median {:.3} s, best {:.3} s; {:.2} M records/s; peak RSS {:.0} MiB ({:+.0} MiB over the loaded data)",
        found,
        times[1],
        times[0],
        records.len() as f64 / times[1] / 1e6,
        peak_rss_mib(),
        peak_rss_mib() - base
    );

    // Incremental: one new record for one pupil, re-evaluating that pupil only.
    let evaluator = Evaluator::new(&set, as_of);
    let mut by_pupil: HashMap<&str, Vec<&AbsenceRecord>> = HashMap::new();
    for r in &records {
        by_pupil.entry(r.pupil.as_str()).or_default().push(r);
    }
    let pupil = &m.pupils[m.pupils.len() / 2].id;
    let new = AbsenceRecord {
        id: "bench-new".into(),
        date: as_of,
        ..(*by_pupil[pupil.as_str()][0]).clone()
    };
    let rounds = 10_000;
    let t = Instant::now();
    for _ in 0..rounds {
        let mut mine = by_pupil[pupil.as_str()].clone();
        mine.push(&new);
        std::hint::black_box(evaluator.pupil(pupil, &mine));
    }
    let per = t.elapsed().as_secs_f64() / f64::from(rounds);
    println!(
        "incremental (one new record, one pupil with {} records): {:.1} µs",
        by_pupil[pupil.as_str()].len() + 1,
        per * 1e6
    );

    if with_store {
        store_bench(&set, &records, as_of, pupil, &new).await?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn store_bench(
    set: &RuleSet,
    records: &[AbsenceRecord],
    as_of: NaiveDate,
    pupil: &str,
    new: &AbsenceRecord,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.db");
    let store = tilstede::store::Store::open(path.to_str().unwrap_or("bench.db")).await?;
    let t = Instant::now();
    for chunk in records.chunks(tilstede::ingest::BATCH) {
        store.ingest(chunk, &[]).await?;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "store import (SQLite): {:.2} s, {:.0} records/s",
        secs,
        records.len() as f64 / secs
    );
    let t = Instant::now();
    let r = store.refresh_findings(set, as_of).await?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "store full refresh: {} pupils, {} changes in {:.2} s",
        r.pupils,
        r.change_count(),
        secs
    );
    let rounds = 200u32;
    let t = Instant::now();
    for i in 0..rounds {
        let rec = AbsenceRecord {
            id: format!("bench-{i}"),
            ..new.clone()
        };
        store.ingest(std::slice::from_ref(&rec), &[]).await?;
        let r = store.refresh_findings(set, as_of).await?;
        assert_eq!(r.pupils, 1, "only {pupil} is re-evaluated");
    }
    let per = t.elapsed().as_secs_f64() / f64::from(rounds);
    println!(
        "store incremental (ingest one record + refresh its pupil): {:.2} ms",
        per * 1e3
    );
    store.close().await;
    Ok(())
}
