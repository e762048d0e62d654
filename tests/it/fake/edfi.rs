//! A fake Ed-Fi ODS/API on 127.0.0.1:0 speaking the real protocol: OAuth2
//! client credentials at `/oauth/token`, `/changeQueries/v1/availableChangeVersions`,
//! the two attendance resources and their `/deletes` with offset/limit,
//! `totalCount` (the `Total-Count` header) and min/maxChangeVersion. Faults
//! (500, 429 + Retry-After, slow answers, revoked tokens) are queued by the test.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fault the next data request meets.
#[derive(Debug, Clone)]
pub enum Fault {
    /// No fault: lets one request through.
    Pass,
    /// HTTP 500.
    ServerError,
    /// HTTP 429 with Retry-After in seconds.
    TooMany(u64),
    /// Answer only after this long (longer than the client's timeout).
    Slow(Duration),
    /// Forget every token issued, so the request gets 401.
    RevokeTokens,
}

/// The server's data and what it has seen.
#[derive(Debug, Default)]
pub struct EdfiState {
    /// (changeVersion, resource JSON) per resource name.
    pub events: HashMap<String, Vec<(i64, Value)>>,
    /// (changeVersion, deletes JSON) per resource name.
    pub deletes: HashMap<String, Vec<(i64, Value)>>,
    /// The newest change version.
    pub newest: i64,
    /// Faults for the coming data requests, in order.
    pub faults: VecDeque<Fault>,
    /// Tokens currently valid.
    pub tokens: HashSet<String>,
    /// Tokens issued so far.
    pub tokens_issued: u32,
    /// Query strings of the data requests answered with 200.
    pub served: Vec<String>,
}

impl EdfiState {
    /// Adds a resource at the next change version.
    pub fn add(&mut self, resource: &str, v: Value) {
        self.newest += 1;
        let cv = self.newest;
        self.events.entry(resource.into()).or_default().push((cv, v));
    }

    /// Deletes the resource with `id`, recording it in `/deletes`.
    pub fn delete(&mut self, resource: &str, id: &str) {
        self.newest += 1;
        let cv = self.newest;
        let list = self.events.entry(resource.into()).or_default();
        let pos = list.iter().position(|(_, v)| v["id"] == id).expect("known id");
        let (_, v) = list.remove(pos);
        let mut keys = serde_json::Map::new();
        keys.insert(
            "attendanceEventCategoryDescriptor".into(),
            v["attendanceEventCategoryDescriptor"].clone(),
        );
        keys.insert("eventDate".into(), v["eventDate"].clone());
        keys.insert(
            "studentUniqueId".into(),
            v["studentReference"]["studentUniqueId"].clone(),
        );
        let session = &v["sessionReference"];
        keys.insert("schoolId".into(), session["schoolId"].clone());
        keys.insert("schoolYear".into(), session["schoolYear"].clone());
        keys.insert("sessionName".into(), session["sessionName"].clone());
        if let Some(s) = v.get("sectionReference") {
            keys.insert("sectionIdentifier".into(), s["sectionIdentifier"].clone());
            keys.insert("localCourseCode".into(), s["localCourseCode"].clone());
            keys.insert("schoolId".into(), s["schoolId"].clone());
            keys.insert("schoolYear".into(), s["schoolYear"].clone());
            keys.insert("sessionName".into(), s["sessionName"].clone());
        }
        self.deletes
            .entry(resource.into())
            .or_default()
            .push((cv, json!({"id": id, "changeVersion": cv, "keyValues": keys})));
    }
}

/// A running fake server.
pub struct FakeEdfi {
    /// Its address.
    pub addr: SocketAddr,
    /// Its state, shared with the handlers.
    pub state: Arc<Mutex<EdfiState>>,
}

/// The client credentials the fake accepts.
pub const CLIENT_ID: &str = "tilstede-test";
/// The secret.
pub const CLIENT_SECRET: &str = "fake-secret";

type Shared = Arc<Mutex<EdfiState>>;

async fn token(State(s): State<Shared>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(expected.as_str()) || form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"}))).into_response();
    }
    let mut s = s.lock().unwrap();
    s.tokens_issued += 1;
    let t = format!("tok-{}", s.tokens_issued);
    s.tokens.insert(t.clone());
    Json(json!({"access_token": t, "expires_in": 1800, "token_type": "bearer"})).into_response()
}

fn authorised(s: &EdfiState, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| s.tokens.contains(t))
}

async fn versions(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let s = s.lock().unwrap();
    if !authorised(&s, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Json(json!({"oldestChangeVersion": 0, "newestChangeVersion": s.newest})).into_response()
}

async fn data(s: Shared, resource: String, deletes: bool, headers: HeaderMap, q: HashMap<String, String>) -> Response {
    let fault = s.lock().unwrap().faults.pop_front();
    match fault {
        Some(Fault::ServerError) => return (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response(),
        Some(Fault::TooMany(secs)) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", secs.to_string())],
                "slow down",
            )
                .into_response();
        }
        Some(Fault::Slow(d)) => {
            // The client has given up by now; what is answered does not matter.
            tokio::time::sleep(d).await;
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        Some(Fault::RevokeTokens) => s.lock().unwrap().tokens.clear(),
        Some(Fault::Pass) | None => {}
    }
    let mut s = s.lock().unwrap();
    if !authorised(&s, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let num = |k: &str, d: i64| q.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(d);
    let (min, max) = (num("minChangeVersion", 0), num("maxChangeVersion", i64::MAX));
    let (offset, limit) = (num("offset", 0) as usize, num("limit", 25) as usize);
    if limit > 500 {
        return (StatusCode::BAD_REQUEST, "limit").into_response();
    }
    let list = if deletes { &s.deletes } else { &s.events };
    let mut matching: Vec<&(i64, Value)> = list
        .get(&resource)
        .map(|l| l.iter().filter(|(cv, _)| (min..=max).contains(cv)).collect())
        .unwrap_or_default();
    matching.sort_by_key(|(cv, _)| *cv);
    let total = matching.len();
    let page: Vec<Value> = matching
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|(_, v)| v.clone())
        .collect();
    let mut query: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    query.sort();
    s.served.push(format!(
        "{resource}{} {}",
        if deletes { "/deletes" } else { "" },
        query.join("&")
    ));
    let mut resp = Json(page).into_response();
    if q.get("totalCount").map(String::as_str) == Some("true") {
        resp.headers_mut()
            .insert("total-count", total.to_string().parse().unwrap());
    }
    resp
}

/// Starts a fake server with `state`.
pub async fn start(state: EdfiState) -> FakeEdfi {
    let shared: Shared = Arc::new(Mutex::new(state));
    let app = Router::new()
        .route("/oauth/token", post(token))
        .route("/changeQueries/v1/availableChangeVersions", get(versions))
        .route(
            "/data/v3/ed-fi/{resource}",
            get(
                |State(s): State<Shared>,
                 Path(r): Path<String>,
                 h: HeaderMap,
                 Query(q): Query<HashMap<String, String>>| { data(s, r, false, h, q) },
            ),
        )
        .route(
            "/data/v3/ed-fi/{resource}/deletes",
            get(
                |State(s): State<Shared>,
                 Path(r): Path<String>,
                 h: HeaderMap,
                 Query(q): Query<HashMap<String, String>>| { data(s, r, true, h, q) },
            ),
        )
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    FakeEdfi { addr, state: shared }
}

/// A school attendance event as the ODS/API returns it.
pub fn school_event(id: &str, student: &str, date: &str, category: &str) -> Value {
    json!({
        "id": id,
        "attendanceEventCategoryDescriptor": format!("uri://ed-fi.org/AttendanceEventCategoryDescriptor#{category}"),
        "eventDate": date,
        "eventDuration": 1.0,
        "studentReference": {"studentUniqueId": student},
        "schoolReference": {"schoolId": 255901001},
        "sessionReference": {"schoolId": 255901001, "schoolYear": 2026, "sessionName": "2025-2026 Vår"},
        "_etag": "5250549322300",
        "_lastModifiedDate": "2026-03-02T08:00:00Z"
    })
}

/// A section attendance event.
pub fn section_event(id: &str, student: &str, date: &str, section: &str) -> Value {
    json!({
        "id": id,
        "attendanceEventCategoryDescriptor": "uri://ed-fi.org/AttendanceEventCategoryDescriptor#Unexcused Absence",
        "eventDate": date,
        "sectionAttendanceDuration": 45,
        "studentReference": {"studentUniqueId": student},
        "sectionReference": {"localCourseCode": "MAT9", "schoolId": 255901001, "schoolYear": 2026,
            "sectionIdentifier": section, "sessionName": "2025-2026 Vår"}
    })
}
