//! `POST /api/v1/sources/{source}/records`: pushes of absence data.

use super::AppState;
use super::auth::check_push;
use super::error::ApiError;
use crate::adapters::FileOptions;
use crate::adapters::Parsed;
use crate::adapters::jsonl::JsonlReader;
use crate::domain::AbsenceRecord;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use std::sync::atomic::Ordering;

/// Rejected items listed in one response; the rest are only counted.
const LISTED_REJECTS: usize = 1000;

/// One rejected item in the response.
#[derive(Debug, Serialize)]
pub struct Rejected {
    /// 1-based position of the item in the body.
    pub position: u64,
    /// Where in the body: `http:SOURCE:LINE` or `http:SOURCE:LINE:COLUMN`.
    pub location: String,
    /// Why (names the field).
    pub reason: String,
}

/// The answer to a push.
#[derive(Debug, Serialize)]
pub struct IngestResponse {
    /// The source.
    pub source: String,
    /// Items in the body (records and rejected items).
    pub received: u64,
    /// Records accepted (new, changed or already known).
    pub accepted: u64,
    /// Records that were new or changed.
    pub changed: u64,
    /// Records already stored at that version.
    pub unchanged: u64,
    /// Items put in quarantine.
    pub quarantined: u64,
    /// The first rejected items with their positions.
    pub rejected: Vec<Rejected>,
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Stores a pushed body. All of it is stored in one transaction, so a 202
/// means everything was kept and an error means nothing was: a retry is safe
/// because records are idempotent by (source, id, version). Records of
/// formats without versions of their own are stamped with the arrival time
/// ([`crate::adapters::version_stamp_at`]), so a later corrected push
/// replaces an earlier one.
pub async fn post_records(
    State(app): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<IngestResponse>), ApiError> {
    let config = app
        .config
        .sources
        .get(&source)
        .ok_or_else(|| ApiError::NotFound(format!("kilden «{source}»")))?;
    check_push(config, &headers, &body)?;
    let media = media_type(&headers);
    let adapter = match media.as_str() {
        "application/x-ndjson" | "application/jsonl" | "application/json-lines" | "application/jsonlines" => "jsonl",
        "application/xml" | "text/xml" => "edfi-xml",
        "text/csv" if config.profile.is_some() => "vendor-csv",
        _ => return Err(ApiError::UnsupportedMediaType(media)),
    };
    let stamp = if crate::adapters::carries_versions(adapter, config.profile.as_deref())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?
    {
        None
    } else {
        crate::adapters::version_stamp_at(std::time::SystemTime::now())
    };
    let options = FileOptions {
        profile: config.profile.clone(),
        source: Some(source.clone()),
        lessons_per_day: Some(app.config.rules.lessons_per_day),
    };
    let location = format!("http:{source}");
    let stream: Box<dyn Iterator<Item = std::io::Result<Parsed>> + Send> = if adapter == "jsonl" {
        Box::new(
            JsonlReader::new(std::io::Cursor::new(body.clone()), location.clone()).with_default_source(source.as_str()),
        )
    } else {
        let input: Box<dyn std::io::BufRead + Send> = Box::new(std::io::Cursor::new(body.clone()));
        crate::adapters::open_file(adapter, &options, input, &location)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?
    };
    // A malformed document ends the stream; what came before it is kept and
    // the fault itself is quarantined with its position.
    let mut items: Vec<Parsed> = Vec::new();
    for item in stream {
        match item {
            Ok(p) => items.push(p),
            Err(e) => {
                items.push(Parsed::Rejected(crate::adapters::Rejected {
                    source: Some(source.clone()),
                    location: location.clone(),
                    reason: e.to_string(),
                    raw: String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned(),
                }));
                break;
            }
        }
    }
    let mut records = Vec::new();
    let mut quarantine = Vec::new();
    let mut rejected = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let position = i as u64 + 1;
        let reject = |q: crate::store::QuarantineEntry, rejected: &mut Vec<Rejected>| {
            if rejected.len() < LISTED_REJECTS {
                rejected.push(Rejected {
                    position,
                    location: q.location.clone(),
                    reason: q.reason.clone(),
                });
            }
            q
        };
        match item {
            Parsed::Record(r) if r.source != source => {
                let q = crate::store::QuarantineEntry {
                    source: Some(source.clone()),
                    location: format!("http:{source}:{position}"),
                    reason: format!(
                        "feltet «source»: «{}» passer ikke med kilden «{source}» i adressen",
                        r.source
                    ),
                    raw: r.to_json_line(),
                };
                quarantine.push(reject(q, &mut rejected));
            }
            Parsed::Record(r) => records.push(match stamp {
                Some(version) => AbsenceRecord { version, ..r },
                None => r,
            }),
            Parsed::Rejected(q) => quarantine.push(reject(crate::ingest::quarantine_entry(q), &mut rejected)),
            // Not absence (a present day): nothing to store.
            Parsed::Skipped(_) => {}
        }
    }
    let stats = app.store.ingest(&records, &quarantine).await?;
    app.metrics.count_ingest(&source, stats.received, stats.quarantined);
    app.metrics.ingest_requests.fetch_add(1, Ordering::Relaxed);
    if stats.changed > 0 {
        app.records_changed.notify_one();
    }
    tracing::info!(source = %source, received = stats.received, changed = stats.changed, quarantined = stats.quarantined, "push stored");
    Ok((
        StatusCode::ACCEPTED,
        Json(IngestResponse {
            source,
            received: stats.received + stats.quarantined,
            accepted: stats.received,
            changed: stats.changed,
            unchanged: stats.unchanged,
            quarantined: stats.quarantined,
            rejected,
        }),
    ))
}
