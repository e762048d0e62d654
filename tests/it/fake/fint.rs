//! A fake FINT API on 127.0.0.1:0: OAuth2 password grant at `/oauth/token`
//! and `utdanning/vurdering/fravarsregistrering` as HAL JSON with size/offset
//! paging and `sinceTimeStamp`. 500s and 429s are queued by the test.
//!
//! The resources have the shape of FINT's information model 3.21: a
//! Fravarsregistrering links `elevfravar`, `faggruppe`,
//! `undervisningsgruppe`, `registrertAv` and `fravarstype` (not the pupil);
//! `Elevfravar` links `elevforhold`, `Elevforhold` links `skole`, and
//! `Faggruppe` links `fag`. Elevfravar `EFR-{x}` belongs to Elevforhold `{x}`
//! at school 4321; Faggruppe `{fag}-{group}` teaches fag `{fag}`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The server's data and what it has seen.
#[derive(Debug, Default)]
pub struct FintState {
    /// (changed at, ms since epoch; entry).
    pub entries: Vec<(i64, Value)>,
    /// Status codes for the coming data requests (500, 429).
    pub faults: VecDeque<u16>,
    /// Password-grant tokens issued.
    pub tokens_issued: u32,
    /// Query strings of answered data requests.
    pub served: Vec<String>,
    /// Paths of the related resources served (Elevfravar, Elevforhold, Faggruppe).
    pub related_served: Vec<String>,
}

/// A running fake.
pub struct FakeFint {
    /// Its address.
    pub addr: SocketAddr,
    /// Its state.
    pub state: Arc<Mutex<FintState>>,
}

/// The user the fake accepts.
pub const USERNAME: &str = "tilstede@kommune.example";
/// Its password.
pub const PASSWORD: &str = "fake-password";

type Shared = Arc<Mutex<FintState>>;

async fn token(State(s): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let ok = form.get("grant_type").map(String::as_str) == Some("password")
        && form.get("username").map(String::as_str) == Some(USERNAME)
        && form.get("password").map(String::as_str) == Some(PASSWORD);
    if !ok {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant"}))).into_response();
    }
    let mut s = s.lock().unwrap();
    s.tokens_issued += 1;
    Json(json!({"access_token": format!("fint-{}", s.tokens_issued), "expires_in": 3600})).into_response()
}

async fn registrations(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = s.lock().unwrap();
    if !super::bearer_starts_with(&headers, "fint-") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if let Some(fault) = super::next_fault(&mut s.faults) {
        return fault;
    }
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    let since = num("sinceTimeStamp").unwrap_or(i64::MIN);
    let (size, offset) = (num("size").unwrap_or(100) as usize, num("offset").unwrap_or(0) as usize);
    let matching: Vec<&Value> = s.entries.iter().filter(|(t, _)| *t > since).map(|(_, v)| v).collect();
    let total = matching.len();
    let page: Vec<Value> = matching.into_iter().skip(offset).take(size).cloned().collect();
    let mut keys: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    keys.sort();
    s.served.push(keys.join("&"));
    Json(json!({
        "_embedded": {"_entries": page},
        "_links": {"self": [{"href": "/utdanning/vurdering/fravarsregistrering"}]},
        "total_items": total, "offset": offset, "size": size
    }))
    .into_response()
}

/// The host FINT names in its links (the client follows them on its own server).
const HOST: &str = "https://api.felleskomponent.no";

fn link(path: String) -> Value {
    json!([{"href": format!("{HOST}{path}")}])
}

/// One related resource: `kind` is its collection, `id` its systemId.
async fn related(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path((area, kind, id)): Path<(String, String, String)>,
) -> Response {
    let mut s = s.lock().unwrap();
    if !super::bearer_starts_with(&headers, "fint-") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    s.related_served.push(format!("/utdanning/{area}/{kind}/systemid/{id}"));
    let system_id = json!({"identifikatorverdi": id});
    let body = match (area.as_str(), kind.as_str()) {
        ("vurdering", "elevfravar") => match id.strip_prefix("EFR-") {
            Some(elevforhold) => json!({"systemId": system_id, "_links": {
                "self": link(format!("/utdanning/vurdering/elevfravar/systemid/{id}")),
                "elevforhold": link(format!("/utdanning/elev/elevforhold/systemid/{elevforhold}")),
            }}),
            None => return StatusCode::NOT_FOUND.into_response(),
        },
        ("elev", "elevforhold") => json!({"systemId": system_id, "hovedskole": true, "_links": {
            "self": link(format!("/utdanning/elev/elevforhold/systemid/{id}")),
            "skole": link("/utdanning/utdanningsprogram/skole/skolenummer/4321".into()),
            "elevfravar": link(format!("/utdanning/vurdering/elevfravar/systemid/EFR-{id}")),
        }}),
        ("timeplan", "faggruppe") => {
            let fag = id.split('-').next().unwrap_or_default();
            json!({"systemId": system_id, "navn": format!("{fag} {id}"), "_links": {
                "self": link(format!("/utdanning/timeplan/faggruppe/systemid/{id}")),
                "fag": link(format!("/utdanning/timeplan/fag/systemid/{fag}")),
            }})
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    Json(body).into_response()
}

/// Starts the fake.
pub async fn start(state: FintState) -> FakeFint {
    let shared: Shared = Arc::new(Mutex::new(state));
    let app = Router::new()
        .route("/oauth/token", post(token))
        .route("/utdanning/vurdering/fravarsregistrering", get(registrations))
        .route("/utdanning/{area}/{kind}/systemid/{id}", get(related))
        .with_state(shared.clone());
    let addr = super::serve(app).await;
    FakeFint { addr, state: shared }
}

/// A fravarsregistrering as FINT serves it, for the pupil whose
/// Elevforhold is `pupil`, in the MAT lesson of group 8A.
pub fn registration(id: &str, pupil: &str, day: u32, code: &str, on_diploma: bool) -> Value {
    json!({
        "systemId": {"identifikatorverdi": id},
        "periode": {"start": format!("2026-03-{day:02}T08:15:00+01:00"), "slutt": format!("2026-03-{day:02}T09:45:00+01:00")},
        "foresPaVitnemal": on_diploma,
        "kommentar": "Fritekst som aldri skal leses",
        "_links": {
            "self": link(format!("/utdanning/vurdering/fravarsregistrering/systemid/{id}")),
            "elevfravar": link(format!("/utdanning/vurdering/elevfravar/systemid/EFR-{pupil}")),
            "faggruppe": link("/utdanning/timeplan/faggruppe/systemid/MAT-8A".into()),
            "undervisningsgruppe": link("/utdanning/timeplan/undervisningsgruppe/systemid/8A".into()),
            "registrertAv": link("/utdanning/elev/skoleressurs/systemid/L-1".into()),
            "fravarstype": link(format!("/utdanning/kodeverk/fravarstype/systemid/{code}"))
        }
    })
}
