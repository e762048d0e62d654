//! `tilstede bench http`: ingest throughput over HTTP, and the latency of
//! one-record posts while that load runs.

use super::bench::peak_rss_mib;
use anyhow::Result;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The bench source's push token.
const TOKEN: &str = "bench-token-0123456789abcdef0123456789";

/// Runs the HTTP benchmark against an in-process `serve` on a temp SQLite store.
pub async fn run(clients: usize, records: usize, per_request: usize) -> Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("token"), TOKEN)?;
    let config = tilstede::config::parse_and_validate(
        &format!(
            "store = \"bench.db\"\n[http]\nmax_body_bytes = 67108864\n\
             [sources.bench]\nschools = [\"*\"]\ntoken_file = \"token\"\nmax_concurrent = {}\n",
            clients.max(1)
        ),
        dir.path(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let running = tilstede::service::start(config, Some("127.0.0.1:0".parse()?)).await?;
    let url = format!("http://{}/api/v1/sources/bench/records", running.addr);
    let http = reqwest::Client::new();
    let day = tilstede::domain::dates::school_date_utc(chrono::Utc::now());
    let line = |n: usize| {
        format!(
            r#"{{"id":"r{n}","pupil":"p{}","school":"s{}","date":"{day}","kind":"lesson","validity":"valid"}}"#,
            n % 20_000,
            n % 40
        )
    };

    let requests = records.div_ceil(per_request);
    let per_client = requests.div_ceil(clients);
    let started = Instant::now();
    let mut load = Vec::new();
    for c in 0..clients {
        let (http, url) = (http.clone(), url.clone());
        let bodies: Vec<String> = (0..per_client)
            .map(|r| {
                let first = (c * per_client + r) * per_request;
                (first..(first + per_request).min(records))
                    .map(line)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .filter(|b| !b.is_empty())
            .collect();
        load.push(tokio::spawn(async move {
            let mut accepted = 0u64;
            for body in bodies {
                let r = http
                    .post(&url)
                    .header("content-type", "application/x-ndjson")
                    .bearer_auth(TOKEN)
                    .body(body)
                    .send()
                    .await?;
                let v: serde_json::Value = r.error_for_status()?.json().await?;
                accepted += v["accepted"].as_u64().unwrap_or(0);
            }
            Ok::<u64, reqwest::Error>(accepted)
        }));
    }
    // One-record posts, one after another, while the load runs.
    let probe = {
        let (http, url) = (http.clone(), url.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0usize;
            loop {
                let body = format!(
                    r#"{{"id":"probe{n}","pupil":"probe","school":"s0","date":"{day}","kind":"late","validity":"valid"}}"#
                );
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .header("content-type", "application/x-ndjson")
                    .bearer_auth(TOKEN)
                    .body(body)
                    .send()
                    .await;
                if r.map(|r| r.status().as_u16() != 202).unwrap_or(true) {
                    break;
                }
                latencies.push(t.elapsed());
                n += 1;
                if n >= 100_000 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                if PROBE_STOP.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
            }
            latencies
        })
    };
    let mut accepted = 0;
    for t in load {
        accepted += t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    PROBE_STOP.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut latencies = probe.await?;
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .map(|d| d.as_secs_f64() * 1e3)
            .unwrap_or(f64::NAN)
    };
    println!(
        "HTTP ingest: {accepted} records in {} requests from {clients} clients in {secs:.2} s = {:.0} records/s",
        requests,
        accepted as f64 / secs
    );
    println!(
        "one-record posts under that load: {} samples, p50 {:.1} ms, p99 {:.1} ms; peak RSS {:.0} MiB",
        latencies.len(),
        pct(0.5),
        pct(0.99),
        peak_rss_mib()
    );
    running.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

static PROBE_STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
