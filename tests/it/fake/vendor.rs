//! A fake vendor absence API on 127.0.0.1:0, speaking the four paging styles
//! the vendor-rest profiles describe, each on its own path:
//!
//! - `/offset/fravaer?offset=&limit=`   → `{"data": [...]}` + `X-Total-Count`
//! - `/page/fravaer?side=&per_side=`    → a bare JSON list
//! - `/next/fravaer?limit=`             → `{"data": [...], "links": {"next": "/next/fravaer?etter=N&limit=S"}}`
//! - `/cursor/fravaer?antall=&markor=`  → `{"data": [...], "meta": {"nesteMarkor": "…"}}`
//!
//! Every style filters by `endretEtter` (RFC 3339) or `endret_etter` (ms).
//! Auth: OAuth2 client credentials at `/oauth/token` or the `X-Api-Key`
//! header. 500s and 429s are queued by the test.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The client the fake accepts.
pub const CLIENT_ID: &str = "tilstede";
/// Its secret.
pub const CLIENT_SECRET: &str = "vendor-secret";
/// The API key it accepts.
pub const API_KEY: &str = "vendor-key";

/// The server's data and what it has seen.
#[derive(Debug, Default)]
pub struct VendorState {
    /// (changed at, ms since epoch; record).
    pub records: Vec<(i64, Value)>,
    /// Status codes for the coming data requests (500, 429; 200 lets one through).
    pub faults: VecDeque<u16>,
    /// Tokens issued.
    pub tokens_issued: u32,
    /// (path, sorted query) of data requests answered with 200.
    pub served: Vec<(String, String)>,
}

/// A running fake.
pub struct FakeVendor {
    /// Its address.
    pub addr: SocketAddr,
    /// Its state.
    pub state: Arc<Mutex<VendorState>>,
}

type Shared = Arc<Mutex<VendorState>>;

async fn token(State(s): State<Shared>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    let basic_ok = super::basic_auth_is(&headers, CLIENT_ID, CLIENT_SECRET);
    if !basic_ok || form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"}))).into_response();
    }
    let mut s = s.lock().unwrap();
    s.tokens_issued += 1;
    Json(json!({"access_token": format!("v-{}", s.tokens_issued), "token_type": "bearer", "expires_in": 3600}))
        .into_response()
}

async fn records(
    State(s): State<Shared>,
    Path(style): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = s.lock().unwrap();
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !(super::bearer_starts_with(&headers, "v-") || header("x-api-key") == API_KEY) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if let Some(fault) = super::next_fault(&mut s.faults) {
        return fault;
    }
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<usize>().ok());
    let since = q
        .get("endretEtter")
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis())
        .or_else(|| q.get("endret_etter").and_then(|v| v.parse().ok()))
        .unwrap_or(i64::MIN);
    let matching: Vec<&Value> = s.records.iter().filter(|(t, _)| *t > since).map(|(_, v)| v).collect();
    let total = matching.len();
    let (start, size) = match style.as_str() {
        "offset" => (num("offset").unwrap_or(0), num("limit").unwrap_or(100)),
        "page" => {
            let size = num("per_side").unwrap_or(100);
            (num("side").unwrap_or(1).saturating_sub(1) * size, size)
        }
        "next" => (num("etter").unwrap_or(0), num("limit").unwrap_or(100)),
        "cursor" => {
            // An opaque cursor: the position, disguised.
            let at = q
                .get("markor")
                .and_then(|c| c.strip_prefix("m-"))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            (at, num("antall").unwrap_or(100))
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let page: Vec<Value> = matching.into_iter().skip(start).take(size).cloned().collect();
    let end = start + page.len();
    let mut keys: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    keys.sort();
    s.served.push((style.clone(), keys.join("&")));
    let more = end < total;
    match style.as_str() {
        "offset" => ([("x-total-count", total.to_string())], Json(json!({"data": page}))).into_response(),
        "page" => Json(Value::Array(page)).into_response(),
        "next" => {
            let next = if more {
                // The link carries the caller's filter on, as real APIs do.
                let mut u = reqwest::Url::parse("http://x/next/fravaer").unwrap();
                u.query_pairs_mut().append_pair("etter", &end.to_string());
                for (k, v) in q.iter().filter(|(k, _)| *k != "etter") {
                    u.query_pairs_mut().append_pair(k, v);
                }
                json!(format!("{}?{}", u.path(), u.query().unwrap_or_default()))
            } else {
                Value::Null
            };
            Json(json!({"data": page, "links": {"next": next}})).into_response()
        }
        _ => {
            let cursor = if more { json!(format!("m-{end}")) } else { Value::Null };
            Json(json!({"data": page, "meta": {"nesteMarkor": cursor}})).into_response()
        }
    }
}

/// Starts the fake.
pub async fn start(state: VendorState) -> FakeVendor {
    let shared: Shared = Arc::new(Mutex::new(state));
    let app = Router::new()
        .route("/oauth/token", post(token))
        .route("/{style}/fravaer", get(records))
        .with_state(shared.clone());
    let addr = super::serve(app).await;
    FakeVendor { addr, state: shared }
}

/// A Flyt-style record as the flyt-rest profile reads it.
pub fn flyt_record(id: &str, pupil: &str, day: u32, kind: &str, documented: bool, code: &str) -> Value {
    json!({
        "id": id,
        "elev": {"id": pupil, "navn": "ikke i logger"},
        "skole": {"id": "s1"},
        "dato": format!("2026-03-{day:02}"),
        "type": kind,
        "timer": if kind == "Timesfravær" { json!(2) } else { Value::Null },
        "dokumentasjon": if documented { "Dokumentert" } else { "Udokumentert" },
        "arsak": code
    })
}
