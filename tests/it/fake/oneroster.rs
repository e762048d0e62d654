//! A fake OneRoster 1.2 rostering service on 127.0.0.1:0: OAuth2 client
//! credentials at `/oauth/token` (with the roster-core scope), and
//! `/ims/oneroster/rostering/v1p2/{orgs,classes,users,enrollments}` with
//! limit/offset paging, `X-Total-Count` and `Link` headers. 500s and 429s are
//! queued by the test. Its data is made from a synthetic municipality.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tilstede::synthetic::Municipality;

/// The client the fake accepts.
pub const CLIENT_ID: &str = "tilstede-or";
/// Its secret.
pub const CLIENT_SECRET: &str = "or-secret";
/// The scope it wants.
pub const SCOPE: &str = "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly";
/// The rostering base path.
pub const BASE: &str = "/ims/oneroster/rostering/v1p2";

/// The server's data and what it has seen.
#[derive(Debug, Default)]
pub struct OneRosterState {
    /// The collections by name.
    pub collections: HashMap<String, Vec<Value>>,
    /// Status codes for the coming data requests (500, 429; 200 lets one through).
    pub faults: VecDeque<u16>,
    /// Tokens issued.
    pub tokens_issued: u32,
    /// (collection, offset) of answered data requests.
    pub served: Vec<(String, usize)>,
    /// Send `Link` headers (else the client pages by offset and the total).
    pub links: bool,
}

/// A running fake.
pub struct FakeOneRoster {
    /// Its address.
    pub addr: SocketAddr,
    /// Its state.
    pub state: Arc<Mutex<OneRosterState>>,
}

type Shared = Arc<Mutex<OneRosterState>>;

async fn token(State(s): State<Shared>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    let ok = super::basic_auth_is(&headers, CLIENT_ID, CLIENT_SECRET)
        && form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("scope").map(String::as_str) == Some(SCOPE);
    if !ok {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"}))).into_response();
    }
    let mut s = s.lock().unwrap();
    s.tokens_issued += 1;
    Json(json!({"access_token": format!("or-{}", s.tokens_issued), "token_type": "bearer", "expires_in": 3600}))
        .into_response()
}

async fn collection(
    State(s): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = s.lock().unwrap();
    if !super::bearer_starts_with(&headers, "or-") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if let Some(fault) = super::next_fault(&mut s.faults) {
        return fault;
    }
    let Some(all) = s.collections.get(&name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let num = |k: &str, d: usize| q.get(k).and_then(|v| v.parse::<usize>().ok()).unwrap_or(d);
    // OneRoster's default page is 100.
    let (limit, offset) = (num("limit", 100), num("offset", 0));
    let total = all.len();
    let page: Vec<Value> = all.iter().skip(offset).take(limit).cloned().collect();
    let mut links = vec![format!("<{BASE}/{name}?limit={limit}&offset=0>; rel=\"first\"")];
    if offset + limit < total {
        links.push(format!(
            "<{BASE}/{name}?limit={limit}&offset={}>; rel=\"next\"",
            offset + limit
        ));
    }
    let with_links = s.links;
    s.served.push((name.clone(), offset));
    let mut resp = Json(json!({ name.as_str(): page })).into_response();
    let h = resp.headers_mut();
    h.insert("x-total-count", total.to_string().parse().unwrap());
    if with_links {
        h.insert("link", links.join(", ").parse().unwrap());
    }
    resp
}

/// Starts the fake.
pub async fn start(state: OneRosterState) -> FakeOneRoster {
    let shared: Shared = Arc::new(Mutex::new(state));
    let app = Router::new()
        .route("/oauth/token", post(token))
        .route(&format!("{BASE}/{{name}}"), get(collection))
        .with_state(shared.clone());
    let addr = super::serve(app).await;
    FakeOneRoster { addr, state: shared }
}

fn guid(id: &str, kind: &str) -> Value {
    json!({"href": format!("{BASE}/{kind}s/{id}"), "sourcedId": id, "type": kind})
}

/// The municipality as OneRoster collections: a district, its schools, a
/// homeroom class per basisgruppe plus a scheduled class per school (not a
/// basisgruppe), pupils and staff with their enrollments, and one user
/// marked `tobedeleted`.
pub fn from_municipality(m: &Municipality) -> HashMap<String, Vec<Value>> {
    let stamp = "2026-08-01T00:00:00.000Z";
    let mut orgs = vec![
        json!({"sourcedId": "kommune", "status": "active", "dateLastModified": stamp,
        "name": "Kommunen", "type": "district", "identifier": "0000"}),
    ];
    let mut classes = Vec::new();
    let mut users = Vec::new();
    let mut enrollments = Vec::new();
    for s in &m.schools {
        orgs.push(
            json!({"sourcedId": s.id, "status": "active", "dateLastModified": stamp, "name": s.name,
            "type": "school", "parent": guid("kommune", "org")}),
        );
        classes.push(
            json!({"sourcedId": format!("{}-kroppsøving", s.id), "status": "active", "dateLastModified": stamp,
            "title": "Kroppsøving", "classType": "scheduled", "grades": ["05"], "school": guid(&s.id, "org"),
            "course": guid("kroppsoving", "course"), "terms": [guid("2026", "academicSession")]}),
        );
    }
    for c in &m.classes {
        classes.push(json!({"sourcedId": c.id, "status": "active", "dateLastModified": stamp, "title": c.name,
            "classCode": c.name, "classType": "homeroom", "grades": [format!("{:02}", c.grade)],
            "school": guid(&c.school, "org"), "course": guid("basis", "course"), "terms": [guid("2026", "academicSession")]}));
        enrollments.push(
            json!({"sourcedId": format!("{}-kl", c.id), "status": "active", "dateLastModified": stamp,
            "role": "teacher", "primary": true, "user": guid(&c.contact_teacher, "user"),
            "class": guid(&c.id, "class"), "school": guid(&c.school, "org")}),
        );
    }
    for p in &m.pupils {
        users.push(
            json!({"sourcedId": p.id, "status": "active", "dateLastModified": stamp, "enabledUser": true,
            "username": format!("elev.{}", p.id), "givenName": p.given_name, "familyName": p.family_name,
            "roles": [{"roleType": "primary", "role": "student", "org": guid(&p.school, "org")}],
            "grades": [format!("{:02}", p.grade)]}),
        );
        enrollments.push(json!({"sourcedId": format!("{}-{}", p.class, p.id), "status": "active", "dateLastModified": stamp,
            "role": "student", "user": guid(&p.id, "user"), "class": guid(&p.class, "class"), "school": guid(&p.school, "org")}));
        // Scheduled classes are not basisgrupper: they must not move the pupil.
        enrollments.push(json!({"sourcedId": format!("gym-{}", p.id), "status": "active", "dateLastModified": stamp,
            "role": "student", "user": guid(&p.id, "user"), "class": guid(&format!("{}-kroppsøving", p.school), "class"),
            "school": guid(&p.school, "org")}));
    }
    for s in &m.staff {
        users.push(
            json!({"sourcedId": s.id, "status": "active", "dateLastModified": stamp, "enabledUser": true,
            "username": s.username, "givenName": s.given_name, "familyName": s.family_name,
            "roles": [{"roleType": "primary", "role": "teacher", "org": guid(&s.school, "org")}]}),
        );
    }
    users.push(json!({"sourcedId": "sluttet", "status": "tobedeleted", "dateLastModified": stamp, "enabledUser": false,
        "username": "sluttet", "givenName": "Tidligere", "familyName": "Elev", "roles": [{"roleType": "primary", "role": "student",
        "org": guid(&m.schools[0].id, "org")}], "grades": ["05"]}));
    HashMap::from([
        ("orgs".to_string(), orgs),
        ("classes".to_string(), classes),
        ("users".to_string(), users),
        ("enrollments".to_string(), enrollments),
    ])
}
