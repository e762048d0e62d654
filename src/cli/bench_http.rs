//! `tilstede bench http`: the front door under load. Three measurements
//! against an in-process `serve` on a temp SQLite store:
//!
//! 1. ingest throughput from many clients, and the latency of one-record
//!    posts (from another source) while that load runs;
//! 2. `/healthz` while a thousand slow clients hold connections open,
//!    dribbling their headers a byte at a time;
//! 3. `/healthz` while the largest push a source may send (Ed-Fi XML just
//!    under its body limit) is parsed and stored.

use super::bench::peak_rss_mib;
use anyhow::{Context, Result};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The load source's push token.
const TOKEN: &str = "bench-token-0123456789abcdef0123456789";
/// The probe source's push token.
const PROBE_TOKEN: &str = "probe-token-0123456789abcdef0123456789";
/// The XML source's push token.
const XML_TOKEN: &str = "xmlpush-token-0123456789abcdef0123456789";
/// The body limit of the XML source (the default of `http.max_body_bytes`).
const XML_LIMIT: usize = 16 * 1024 * 1024;

/// The p-th percentile of sorted `samples`, in milliseconds.
fn percentile(samples: &[Duration], p: f64) -> f64 {
    samples
        .get(((samples.len() as f64 - 1.0) * p).round() as usize)
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or(f64::NAN)
}

/// `/healthz` answers, each on a new connection, until `stop` is set.
async fn probe_health(url: String, stop: Arc<AtomicBool>) -> (Vec<Duration>, u64) {
    // No connection reuse: a new client must get in while the others wait.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    let mut samples = Vec::new();
    let mut failures = 0;
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        match http.get(&url).send().await {
            Ok(r) if r.status().is_success() => samples.push(t.elapsed()),
            _ => failures += 1,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    samples.sort();
    (samples, failures)
}

fn report(what: &str, samples: &[Duration], failures: u64) {
    println!(
        "{what}: {} samples, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {failures} failed",
        samples.len(),
        percentile(samples, 0.5),
        percentile(samples, 0.99),
        samples.last().map(|d| d.as_secs_f64() * 1e3).unwrap_or(f64::NAN),
    );
}

/// Runs the HTTP benchmark.
pub async fn run(
    clients: usize,
    records: usize,
    per_request: usize,
    slow_clients: usize,
    synchronous: &str,
) -> Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    for (file, token) in [("token", TOKEN), ("probe", PROBE_TOKEN), ("xml", XML_TOKEN)] {
        std::fs::write(dir.path().join(file), token)?;
    }
    let config = tilstede::config::parse_and_validate(
        &format!(
            "store = \"bench.db\"\nsqlite_synchronous = \"{synchronous}\"\n\
             [sources.bench]\nschools = [\"*\"]\ntoken_file = \"token\"\nmax_concurrent = {}\n\
             [sources.probe]\nschools = [\"*\"]\ntoken_file = \"probe\"\n\
             [sources.edfi]\nschools = [\"*\"]\ntoken_file = \"xml\"\nmax_body_bytes = {XML_LIMIT}\n",
            clients.max(1)
        ),
        dir.path(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let header_timeout = config.http.header_timeout;
    let running = tilstede::service::start(config, Some("127.0.0.1:0".parse()?)).await?;
    let base = format!("http://{}", running.addr);
    load(&base, clients, records, per_request).await?;
    slow(&base, running.addr, slow_clients, header_timeout).await?;
    largest_xml(&base).await?;
    println!("peak RSS {:.0} MiB", peak_rss_mib());
    running.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

/// Measurement 1: throughput, and one-record posts under that load.
async fn load(base: &str, clients: usize, records: usize, per_request: usize) -> Result<()> {
    let url = format!("{base}/api/v1/sources/bench/records");
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
    // One-record posts, one after another, from another source, while the load runs.
    let stop = Arc::new(AtomicBool::new(false));
    let probe = {
        let url = format!("{base}/api/v1/sources/probe/records");
        let (http, stop) = (http.clone(), stop.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) && n < 100_000 {
                let body = format!(
                    r#"{{"id":"probe{n}","pupil":"probe","school":"s0","date":"{day}","kind":"late","validity":"valid"}}"#
                );
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .header("content-type", "application/x-ndjson")
                    .bearer_auth(PROBE_TOKEN)
                    .body(body)
                    .send()
                    .await;
                if r.map(|r| r.status().as_u16() != 202).unwrap_or(true) {
                    break;
                }
                latencies.push(t.elapsed());
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            latencies
        })
    };
    let mut accepted = 0;
    for t in load {
        accepted += t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut latencies = probe.await?;
    latencies.sort();
    println!(
        "HTTP ingest: {accepted} records in {requests} requests from {clients} clients in {secs:.2} s = {:.0} records/s",
        accepted as f64 / secs
    );
    report("one-record posts under that load", &latencies, 0);
    Ok(())
}

/// Measurement 2: `/healthz` while `n` slow clients hold connections open,
/// each sending one more header byte every half second (well within the
/// header timeout, which ends them after `header_timeout`).
async fn slow(base: &str, addr: std::net::SocketAddr, n: usize, header_timeout: Duration) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    if n == 0 {
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut slow = Vec::with_capacity(n);
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + header_timeout + Duration::from_secs(3);
    for _ in 0..n {
        let mut s = tokio::net::TcpStream::connect(addr).await.context("slow client")?;
        let stop = stop.clone();
        slow.push(tokio::spawn(async move {
            if s.write_all(b"POST /api/v1/sources/bench/records HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .is_err()
            {
                return;
            }
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if s.write_all(b"a").await.is_err() {
                    return;
                }
            }
        }));
    }
    let connected = started.elapsed();
    // Measure within the header timeout, while all of them are connected.
    let window = header_timeout
        .saturating_sub(connected + Duration::from_secs(1))
        .min(Duration::from_secs(5));
    let probe_stop = Arc::new(AtomicBool::new(false));
    let probe = tokio::spawn(probe_health(format!("{base}/healthz"), probe_stop.clone()));
    tokio::time::sleep(window).await;
    probe_stop.store(true, Ordering::Relaxed);
    let (samples, failures) = probe.await?;
    report(
        &format!(
            "/healthz with {n} slow clients connected ({:.1} s to connect, {:.1} s measured)",
            connected.as_secs_f64(),
            window.as_secs_f64()
        ),
        &samples,
        failures,
    );
    // After the header timeout, the server has dropped every one of them.
    tokio::time::sleep_until(deadline).await;
    let dropped = slow.iter().filter(|t| t.is_finished()).count();
    println!(
        "slow clients dropped by the server after the {} s header timeout: {dropped} of {n}",
        header_timeout.as_secs()
    );
    stop.store(true, Ordering::Relaxed);
    for t in slow {
        let _ = t.await;
    }
    Ok(())
}

/// Measurement 3: `/healthz` while the largest allowed Ed-Fi XML push is
/// parsed and stored.
async fn largest_xml(base: &str) -> Result<()> {
    use tilstede::synthetic::Municipality;
    use tilstede::synthetic::writers::EdfiXmlWriter;
    let year = {
        let today = tilstede::domain::dates::school_date_utc(chrono::Utc::now());
        let y = chrono::Datelike::year(&today);
        if chrono::Datelike::month(&today) >= 8 { y } else { y - 1 }
    };
    let m = Municipality::generate(2_000, 4, 7);
    /// A buffer the writer fills while its length can be read.
    #[derive(Clone, Default)]
    struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let shared = Shared::default();
    let mut w = EdfiXmlWriter::new(shared.clone(), year + 1)?;
    for r in m.absence(year, "edfi") {
        w.record(&r)?;
        // Stop a record short of the limit (the closing tags follow).
        if shared.0.borrow().len() > XML_LIMIT - 4096 {
            break;
        }
    }
    w.finish()?;
    let body = std::mem::take(&mut *shared.0.borrow_mut());
    anyhow::ensure!(body.len() <= XML_LIMIT, "generated XML over the limit");
    let probe_stop = Arc::new(AtomicBool::new(false));
    let probe = tokio::spawn(probe_health(format!("{base}/healthz"), probe_stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let size = body.len();
    let t = Instant::now();
    let answer = reqwest::Client::new()
        .post(format!("{base}/api/v1/sources/edfi/records"))
        .header("content-type", "application/xml")
        .bearer_auth(XML_TOKEN)
        .body(body)
        .send()
        .await?;
    let status = answer.status();
    let v: serde_json::Value = answer.json().await?;
    let took = t.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    probe_stop.store(true, Ordering::Relaxed);
    let (samples, failures) = probe.await?;
    println!(
        "largest XML push: {:.1} MiB, {} records, answered {status} in {:.2} s",
        size as f64 / 1048576.0,
        v["accepted"],
        took.as_secs_f64()
    );
    report("/healthz during that push", &samples, failures);
    Ok(())
}
