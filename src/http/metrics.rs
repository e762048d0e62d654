//! Prometheus metrics, kept as atomics and rendered in the text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// A latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; 10],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation in seconds.
    pub fn observe(&self, seconds: f64) {
        for (bound, c) in BUCKETS.iter().zip(&self.counts) {
            if seconds <= *bound {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, c) in BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", c.load(Ordering::Relaxed));
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Counters per source.
#[derive(Debug, Default, Clone, Copy)]
struct SourceCounters {
    ingested: u64,
    quarantined: u64,
    last_sync_unix: Option<i64>,
}

/// The service's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    sources: Mutex<BTreeMap<String, SourceCounters>>,
    /// Latency of Matrix sends (seconds).
    pub matrix_send_latency: Histogram,
    /// HTTP ingest requests answered.
    pub ingest_requests: AtomicU64,
    /// Connections closed at once because `http.max_connections` were open.
    pub connections_refused: AtomicU64,
    /// Pushes answered 429 because their source had no free slot.
    pub pushes_throttled: AtomicU64,
    /// Pushes refused as replays (a request id seen before).
    pub pushes_replayed: AtomicU64,
}

/// Values read from the store at scrape time.
#[derive(Debug, Default, Clone)]
pub struct Gauges {
    /// Current findings.
    pub findings: u64,
    /// Open cases per phase.
    pub cases_per_phase: BTreeMap<String, u64>,
    /// Messages waiting in the outbox.
    pub outbox_depth: u64,
    /// The archive outbox, when `[archive]` is configured.
    pub archive: Option<crate::store::ArchiveCounts>,
}

impl Metrics {
    /// Counts records stored and entries quarantined for a source.
    pub fn count_ingest(&self, source: &str, ingested: u64, quarantined: u64) {
        let mut s = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        let c = s.entry(source.to_string()).or_default();
        c.ingested += ingested;
        c.quarantined += quarantined;
    }

    /// Notes that a pull of `source` completed now.
    pub fn mark_synced(&self, source: &str, unix: i64) {
        let mut s = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        s.entry(source.to_string()).or_default().last_sync_unix = Some(unix);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, gauges: &Gauges, now_unix: i64) -> String {
        let mut out = String::new();
        let sources = self.sources.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let _ = writeln!(
            out,
            "# HELP tilstede_records_ingested_total Records stored, per source.\n# TYPE tilstede_records_ingested_total counter"
        );
        for (s, c) in &sources {
            let _ = writeln!(out, "tilstede_records_ingested_total{{source=\"{s}\"}} {}", c.ingested);
        }
        let _ = writeln!(
            out,
            "# HELP tilstede_records_quarantined_total Input put in quarantine, per source.\n# TYPE tilstede_records_quarantined_total counter"
        );
        for (s, c) in &sources {
            let _ = writeln!(
                out,
                "tilstede_records_quarantined_total{{source=\"{s}\"}} {}",
                c.quarantined
            );
        }
        let _ = writeln!(
            out,
            "# HELP tilstede_sync_lag_seconds Seconds since the last completed pull, per source.\n# TYPE tilstede_sync_lag_seconds gauge"
        );
        for (s, c) in &sources {
            if let Some(t) = c.last_sync_unix {
                let _ = writeln!(out, "tilstede_sync_lag_seconds{{source=\"{s}\"}} {}", now_unix - t);
            }
        }
        let _ = writeln!(
            out,
            "# HELP tilstede_findings Current findings.\n# TYPE tilstede_findings gauge\ntilstede_findings {}",
            gauges.findings
        );
        let _ = writeln!(
            out,
            "# HELP tilstede_cases Open cases per phase.\n# TYPE tilstede_cases gauge"
        );
        for (phase, n) in &gauges.cases_per_phase {
            let _ = writeln!(out, "tilstede_cases{{phase=\"{phase}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP tilstede_outbox_depth Messages waiting for delivery.\n# TYPE tilstede_outbox_depth gauge\ntilstede_outbox_depth {}",
            gauges.outbox_depth
        );
        if let Some(a) = &gauges.archive {
            let _ = writeln!(
                out,
                "# HELP tilstede_archive_documents Documents in the archive outbox, per state.\n# TYPE tilstede_archive_documents gauge"
            );
            for (state, n) in [
                ("queued", a.queued),
                ("received", a.received),
                ("archived", a.archived),
                ("failed", a.failed),
            ] {
                let _ = writeln!(out, "tilstede_archive_documents{{state=\"{state}\"}} {n}");
            }
            let _ = writeln!(
                out,
                "# HELP tilstede_archive_failed_attempts_total Archive deliveries that failed (retried or given up).\n# TYPE tilstede_archive_failed_attempts_total counter\ntilstede_archive_failed_attempts_total {}",
                a.failed_attempts_total
            );
        }
        let _ = writeln!(
            out,
            "# HELP tilstede_ingest_requests_total Ingest requests answered.\n# TYPE tilstede_ingest_requests_total counter\ntilstede_ingest_requests_total {}",
            self.ingest_requests.load(Ordering::Relaxed)
        );
        for (name, help, counter) in [
            (
                "tilstede_connections_refused_total",
                "Connections closed at once because the connection cap was reached.",
                &self.connections_refused,
            ),
            (
                "tilstede_pushes_throttled_total",
                "Pushes answered 429 because their source had no free slot.",
                &self.pushes_throttled,
            ),
            (
                "tilstede_pushes_replayed_total",
                "Pushes refused because their request id was used before.",
                &self.pushes_replayed,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        self.matrix_send_latency.render(
            &mut out,
            "tilstede_matrix_send_seconds",
            "Time from handing a message to the homeserver to its acceptance.",
        );
        out
    }
}
