//! The HTTP server (axum): push ingest, a read API, health, metrics and the
//! OpenAPI document.

pub mod auth;
pub mod error;
mod ingest;
pub mod metrics;

pub use error::ApiError;
pub use ingest::IngestResponse;

use crate::config::Config;
use crate::store::Store;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics::{Gauges, Metrics};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// The OpenAPI document, also kept in `schemas/openapi.json`.
pub const OPENAPI: &str = include_str!("../../schemas/openapi.json");

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Woken when stored records changed, so findings get refreshed.
    pub records_changed: Arc<Notify>,
    /// Woken when findings changed, so cases follow.
    pub findings_changed: Arc<Notify>,
    /// Reads live gauges (cases, outbox) at scrape time; set by the service.
    pub gauges: Arc<dyn Fn() -> futures::future::BoxFuture<'static, Gauges> + Send + Sync>,
}

impl AppState {
    /// State with default gauges read from the store.
    pub fn new(store: Store, config: Arc<Config>) -> AppState {
        let gauge_store = store.clone();
        AppState {
            store,
            config,
            metrics: Arc::new(Metrics::default()),
            records_changed: Arc::new(Notify::new()),
            findings_changed: Arc::new(Notify::new()),
            gauges: Arc::new(move || {
                let store = gauge_store.clone();
                Box::pin(async move {
                    let mut cases_per_phase = std::collections::BTreeMap::new();
                    for case in store.cases_raw(None, false).await.unwrap_or_default() {
                        *cases_per_phase.entry(case.phase.number().to_string()).or_insert(0) += 1;
                    }
                    Gauges {
                        findings: store.finding_count().await.unwrap_or(0),
                        cases_per_phase,
                        ..Gauges::default()
                    }
                })
            }),
        }
    }
}

/// The routes.
pub fn router(state: AppState) -> Router {
    let limit = state.config.http.max_body_bytes;
    Router::new()
        .route("/api/v1/sources/{source}/records", post(ingest::post_records))
        .route("/api/v1/findings", get(findings))
        .route("/api/v1/cases", get(cases))
        .route("/api/v1/cases/{number}", get(case))
        .route("/api/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Binds `addr` (port 0 picks a free one) and returns the bound address and
/// the server task, which stops gracefully when `shutdown` completes.
pub async fn spawn(
    addr: SocketAddr,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = router(state);
    let task = tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(shutdown).await });
    Ok((local, task))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(app): State<AppState>) -> Result<&'static str, ApiError> {
    app.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "store not reachable");
        ApiError::Unavailable
    })?;
    if let Some(matrix) = &app.config.matrix {
        let url = format!("{}/_matrix/client/versions", matrix.config.homeserver);
        let answer = reqwest::Client::new()
            .get(&url)
            .timeout(std::time::Duration::from_secs(3))
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                tracing::warn!(status = r.status().as_u16(), "homeserver not ready");
                return Err(ApiError::Unavailable);
            }
            Err(e) => {
                tracing::warn!(error = %e, "homeserver not reachable");
                return Err(ApiError::Unavailable);
            }
        }
    }
    Ok("ready")
}

async fn metrics_text(State(app): State<AppState>) -> impl IntoResponse {
    let gauges = (app.gauges)().await;
    let body = app.metrics.render(&gauges, chrono::Utc::now().timestamp());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// Query of `GET /api/v1/findings`.
#[derive(Debug, Deserialize)]
struct FindingsQuery {
    school: Option<String>,
}

async fn findings(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<FindingsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let user = auth::read_user(&app.config.http.users, &headers)?;
    let allowed = |school: &str| user.may_read(school);
    if let Some(school) = &q.school
        && !allowed(school)
    {
        return Err(ApiError::Forbidden(format!("skolen «{school}»")));
    }
    let mut list = app.store.findings(q.school.as_deref()).await?;
    list.retain(|f| allowed(&f.school));
    tracing::info!(user = %user.name, school = ?q.school, count = list.len(), "findings read");
    Ok((StatusCode::OK, Json(list)))
}

/// Query of `GET /api/v1/cases`.
#[derive(Debug, Deserialize)]
struct CasesQuery {
    school: Option<String>,
    /// Closed cases too.
    #[serde(default)]
    all: bool,
}

/// The audit identity of an API user.
fn api_party(user: &crate::config::ApiUser) -> crate::cases::model::Party {
    crate::cases::model::Party::new(format!("api:{}", user.name), crate::cases::model::Role::Ledelse)
}

fn case_error(e: crate::store::CaseStoreError) -> ApiError {
    match e {
        crate::store::CaseStoreError::NotFound(n) => ApiError::NotFound(format!("saken «{n}»")),
        other => ApiError::Internal(other.into()),
    }
}

/// Lists cases the user may see; every listed case is audited as read.
async fn cases(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CasesQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let user = auth::read_user(&app.config.http.users, &headers)?;
    if let Some(school) = &q.school
        && !user.may_read(school)
    {
        return Err(ApiError::Forbidden(format!("skolen «{school}»")));
    }
    let schools: Vec<Option<String>> = match (&q.school, user.schools.is_empty()) {
        (Some(s), _) => vec![Some(s.clone())],
        (None, true) => vec![None],
        (None, false) => user.schools.iter().cloned().map(Some).collect(),
    };
    let mut list = Vec::new();
    for school in schools {
        list.extend(
            app.store
                .list_cases(school.as_deref(), q.all, &api_party(user), chrono::Utc::now())
                .await
                .map_err(case_error)?,
        );
    }
    Ok(Json(list))
}

/// One case, audited as read.
async fn case(
    State(app): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(number): axum::extract::Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let user = auth::read_user(&app.config.http.users, &headers)?;
    // Check the school before the read is logged as one.
    let school = app
        .store
        .cases_raw(None, true)
        .await?
        .into_iter()
        .find(|c| c.number == number)
        .map(|c| c.pupil.school)
        .ok_or_else(|| ApiError::NotFound(format!("saken «{number}»")))?;
    if !user.may_read(&school) {
        return Err(ApiError::Forbidden(format!("saken «{number}»")));
    }
    let case = app
        .store
        .read_case(&number, &api_party(user), chrono::Utc::now())
        .await
        .map_err(case_error)?;
    Ok(Json(case))
}
