//! `POST /api/v1/sources/{source}/records`: pushes of absence data.
//!
//! The order of the checks is the point: everything that can be decided
//! from the headers (the source, its token or the shape and freshness of a
//! signature, the content type, the declared size, a free push slot, a
//! request id not seen before) is decided before a byte of the body is
//! read. The body is then read within the source's size limit and the body
//! timeout, parsed on a bounded pool of blocking threads (never on the
//! async runtime, so `/healthz` and other requests keep answering while a
//! large XML push is parsed), checked for plausibility, and stored in one
//! transaction with its request id and version.

use super::AppState;
use super::auth::{self, PushAuth, check_push_headers, verify_signature};
use super::error::ApiError;
use crate::adapters::FileOptions;
use crate::adapters::Parsed;
use crate::adapters::jsonl::JsonlReader;
use crate::domain::plausibility::{self, Bounds};
use crate::store::{Push, PushOutcome, QuarantineEntry};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
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
    /// The reason code (`missing_field`, `bad_date`, …).
    pub code: crate::domain::RejectCode,
    /// The field or element at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Why, for people: built from the code, the field and a limit, never
    /// from the body's values.
    pub reason: String,
}

/// The fault of a body that could not be read on (a malformed document):
/// its code by the adapter's format, and its place when the XML reader
/// knows it. The reader's own message is not used: it may quote the body.
fn read_fault(adapter: &str, e: &std::io::Error, location: &str) -> (crate::domain::Fault, String) {
    use crate::domain::{Fault, RejectCode};
    if let Some(x) = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<crate::adapters::xml::XmlError>())
    {
        return (
            Fault::whole(RejectCode::MalformedXml),
            format!("{location}:{}:{}", x.line, x.column),
        );
    }
    let code = match adapter {
        "jsonl" | "fint" => RejectCode::MalformedJson,
        "vendor-csv" => RejectCode::MalformedCsv,
        _ => RejectCode::MalformedXml,
    };
    (Fault::whole(code), location.to_string())
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
    /// The version given to the records when the format carries none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The first rejected items with their positions.
    pub rejected: Vec<Rejected>,
    /// Why nothing was accepted (only with 422).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The adapter for the declared content type.
fn adapter_for(headers: &HeaderMap, profile: Option<&str>) -> Result<&'static str, ApiError> {
    let media = media_type(headers);
    match media.as_str() {
        "application/x-ndjson" | "application/jsonl" | "application/json-lines" | "application/jsonlines" => {
            Ok("jsonl")
        }
        "application/xml" | "text/xml" => Ok("edfi-xml"),
        "text/csv" if profile.is_some() => Ok("vendor-csv"),
        _ => Err(ApiError::UnsupportedMediaType(
            plausibility::printable(&media).into_owned(),
        )),
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Reads the body, refusing more than `limit` bytes (413) and a body that
/// has not arrived within `timeout` (408).
async fn read_body(body: Body, limit: usize, timeout: std::time::Duration) -> Result<Bytes, ApiError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut stream = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return Err(ApiError::BodyTimeout),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(ApiError::BadRequest(format!("innholdet kunne ikke leses: {e}"))),
            Ok(Some(Ok(chunk))) => {
                if buf.len() + chunk.len() > limit {
                    return Err(ApiError::TooLarge(limit));
                }
                buf.extend_from_slice(&chunk);
            }
        }
    }
    Ok(Bytes::from(buf))
}

/// A parsed and checked body: what to store and what to report.
#[derive(Debug, Default)]
struct Prepared {
    records: Vec<crate::domain::AbsenceRecord>,
    quarantine: Vec<QuarantineEntry>,
    rejected: Vec<Rejected>,
    /// Rows the adapter skipped as presence (not absence): a body of only
    /// those is valid and answered 202 with nothing stored.
    skipped_presence: u64,
}

/// The parsing of one body, run on a blocking thread.
struct ParseJob {
    adapter: &'static str,
    source: String,
    /// What the source may write.
    scope: crate::ingest::Scope,
    options: FileOptions,
    bounds: Bounds,
    today: chrono::NaiveDate,
}

impl ParseJob {
    fn run(self, body: &Bytes) -> Result<Prepared, ApiError> {
        let source = self.source;
        let location = format!("http:{source}");
        let stream: Box<dyn Iterator<Item = std::io::Result<Parsed>> + Send> = if self.adapter == "jsonl" {
            Box::new(
                JsonlReader::new(std::io::Cursor::new(body.clone()), location.clone())
                    .with_default_source(source.as_str()),
            )
        } else {
            let input: Box<dyn std::io::BufRead + Send> = Box::new(std::io::Cursor::new(body.clone()));
            crate::adapters::open_file(self.adapter, &self.options, input, &location)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?
        };
        let mut out = Prepared::default();
        // A malformed document ends the stream; what came before it is kept
        // and the fault itself is quarantined with its position.
        for (i, item) in stream.enumerate() {
            let position = i as u64 + 1;
            let item = match item {
                Ok(p) => p,
                Err(e) => {
                    // The body's start is kept only for a source with
                    // keep_raw (the store decides): it may hold other
                    // records' text.
                    let (fault, at) = read_fault(self.adapter, &e, &location);
                    Parsed::Rejected(crate::adapters::Rejected::new(
                        Some(source.clone()),
                        at,
                        fault,
                        String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned(),
                    ))
                }
            };
            // The source's scope first: a record for a school it may not
            // write (or in another source's name) is not kept at all.
            let item = match item {
                Parsed::Record(r) => self.scope.screen(r, &format!("{location}:{position}")),
                other => other,
            };
            let rejected = match item {
                Parsed::Record(r) => match plausibility::check(&r, &self.bounds, self.today) {
                    Ok(()) => {
                        out.records.push(r);
                        continue;
                    }
                    Err(e) => crate::ingest::quarantine_entry(crate::adapters::Rejected::new(
                        Some(source.clone()),
                        format!("{location}:{position}"),
                        e.fault(),
                        r.to_json_line(),
                    )),
                },
                Parsed::Rejected(q) => crate::ingest::quarantine_entry(q),
                // Not absence (a present day): nothing to store.
                Parsed::Skipped(_) => {
                    out.skipped_presence += 1;
                    continue;
                }
            };
            if out.rejected.len() < LISTED_REJECTS {
                out.rejected.push(Rejected {
                    position,
                    location: plausibility::printable(&rejected.location).into_owned(),
                    code: rejected.code,
                    field: rejected
                        .field
                        .as_deref()
                        .map(|f| plausibility::printable(f).into_owned()),
                    reason: rejected.reason.clone(),
                });
            }
            out.quarantine.push(rejected);
        }
        Ok(out)
    }
}

/// Why a push that yielded no records is refused (422), or `None` when it
/// is accepted. A body of the declared type from which nothing could be
/// read is an error to its sender, and so is a body whose every item was
/// rejected; a body of only presence rows (attendance, not absence) is
/// valid and is accepted with nothing to store.
pub fn unprocessable(records: usize, rejected: usize, skipped_presence: u64) -> Option<&'static str> {
    match (records, rejected, skipped_presence) {
        (1.., _, _) => None,
        (0, 0, 1..) => None,
        (0, 0, 0) => Some("innholdet har ingen poster av den oppgitte typen"),
        (0, 1.., _) => Some("ingen av postene kunne tas imot; se «rejected»"),
    }
}

/// How long a request id is remembered: past the time its signed timestamp
/// would be refused anyway, with a margin.
fn id_expiry(now: i64, auth: &PushAuth) -> i64 {
    let signed_at = match auth {
        PushAuth::Signed { at, .. } => *at,
        PushAuth::Token => now,
    };
    now.max(signed_at) + 2 * auth::MAX_SKEW_SECONDS + 60
}

/// Stores a pushed body (see the module documentation for the order of the
/// checks). All of it is stored in one transaction, so a 202 means every
/// good record and every quarantine entry was kept and an error means
/// nothing was: a retry is safe because records are idempotent by (source,
/// id, version) and a request id is kept only with its push. Records of
/// formats without versions of their own get the source's next version from
/// the store's counter (at least the arrival second), so a correction sent
/// a moment later, even within the same second, replaces what it corrects.
pub async fn post_records(
    State(app): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let config = app
        .config
        .sources
        .get(&source)
        .ok_or_else(|| ApiError::NotFound(format!("kilden «{}»", plausibility::printable(&source))))?;
    let now = chrono::Utc::now();
    let auth = check_push_headers(config, &headers, now.timestamp())?;
    let adapter = adapter_for(&headers, config.profile.as_deref())?;
    let request_id = match &auth {
        PushAuth::Signed { request_id, .. } => Some(request_id.clone()),
        PushAuth::Token => auth::request_id(&headers)?.map(str::to_string),
    };
    if content_length(&headers).is_some_and(|n| n > config.max_body_bytes as u64) {
        return Err(ApiError::TooLarge(config.max_body_bytes));
    }
    let slots = app
        .limits
        .pushes
        .get(&source)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no push slots for source {source}")))?;
    let Ok(_slot) = slots.clone().try_acquire_owned() else {
        app.metrics.pushes_throttled.fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::TooMany);
    };
    if let Some(id) = &request_id
        && app.store.push_seen(&source, id).await?
    {
        app.metrics.pushes_replayed.fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::Replayed);
    }
    let started = std::time::Instant::now();
    let body = read_body(body, config.max_body_bytes, app.config.http.body_timeout).await?;
    let read = started.elapsed();
    if let Some(key) = &config.hmac_secret {
        verify_signature(key, &auth, &body)?;
    }
    let carries_versions = crate::adapters::carries_versions(adapter, config.profile.as_deref())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let job = ParseJob {
        adapter,
        source: source.clone(),
        scope: crate::ingest::Scope::new(source.clone(), config.schools.clone())
            .with_extensions(config.extensions.clone()),
        options: FileOptions {
            profile: config.profile.clone(),
            source: Some(source.clone()),
            lessons_per_day: Some(app.config.rules.lessons_per_day),
        },
        bounds: app.config.plausibility,
        today: crate::domain::dates::school_date_utc(now),
    };
    let lane = if body.len() <= super::SMALL_BODY {
        &app.limits.small_parsers
    } else {
        &app.limits.parsers
    };
    let permit = lane
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let parse_queued = started.elapsed() - read;
    let prepared = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        job.run(&body)
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("parsing stopped: {e}")))??;
    let parsed = started.elapsed();

    let received = (prepared.records.len() + prepared.quarantine.len()) as u64;
    if let Some(reason) = unprocessable(
        prepared.records.len(),
        prepared.quarantine.len(),
        prepared.skipped_presence,
    ) {
        // Nothing is accepted, but what was rejected is kept in quarantine
        // for IT to see; the request id stays free for a corrected retry.
        let stats = app.store.ingest(&[], &prepared.quarantine).await?;
        app.metrics.count_ingest(&source, 0, stats.quarantined);
        tracing::info!(source = %source, quarantined = stats.quarantined, "push refused: no records");
        let answer = IngestResponse {
            source,
            received,
            accepted: 0,
            changed: 0,
            unchanged: 0,
            quarantined: stats.quarantined,
            version: None,
            rejected: prepared.rejected,
            error: Some(reason.into()),
        };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(answer)).into_response());
    }
    let outcome = app
        .store
        .ingest_push(Push {
            source: &source,
            request_id: request_id.as_deref().map(|id| (id, id_expiry(now.timestamp(), &auth))),
            stamp_at_least: (!carries_versions).then(|| now.timestamp().max(1) as u64),
            records: prepared.records,
            quarantine: &prepared.quarantine,
        })
        .await?;
    let (stats, version) = match outcome {
        PushOutcome::Stored(stats, version) => (stats, version),
        PushOutcome::Replayed => {
            app.metrics.pushes_replayed.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::Replayed);
        }
    };
    app.metrics.count_ingest(&source, stats.received, stats.quarantined);
    app.metrics.ingest_requests.fetch_add(1, Ordering::Relaxed);
    if stats.changed > 0 {
        app.records_changed.notify_one();
    }
    tracing::info!(source = %source, received = stats.received, changed = stats.changed, quarantined = stats.quarantined, "push stored");
    // Where a push's time goes, for `RUST_LOG=tilstede::http=debug`.
    tracing::debug!(
        source = %source,
        read_ms = read.as_secs_f64() * 1e3,
        parse_queued_ms = parse_queued.as_secs_f64() * 1e3,
        parse_ms = (parsed - read - parse_queued).as_secs_f64() * 1e3,
        store_ms = (started.elapsed() - parsed).as_secs_f64() * 1e3,
        "push timings"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(IngestResponse {
            source,
            received,
            accepted: stats.received,
            changed: stats.changed,
            unchanged: stats.unchanged,
            quarantined: stats.quarantined,
            version,
            rejected: prepared.rejected,
            error: None,
        }),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_body_with_records_or_only_presence_is_accepted() {
        assert_eq!(unprocessable(3, 0, 0), None);
        assert_eq!(unprocessable(3, 2, 0), None);
        assert_eq!(unprocessable(0, 0, 5), None, "only presence rows: 202, nothing stored");
        assert!(unprocessable(0, 0, 0).is_some(), "nothing readable");
        assert!(unprocessable(0, 4, 0).is_some(), "every item rejected");
        assert!(unprocessable(0, 4, 2).is_some(), "presence rows and only rejects");
    }
}
