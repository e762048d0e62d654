//! The HTTP server (axum): push ingest, a read API, health, metrics and the
//! OpenAPI document.

pub mod auth;
pub mod error;
mod ingest;
pub mod metrics;

pub use error::ApiError;
pub use ingest::IngestResponse;

use crate::config::{Config, HttpConfig};
use crate::store::Store;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics::{Gauges, Metrics};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

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
    /// The push slots of each source and the parsing pool.
    pub limits: Arc<Limits>,
}

/// What bounds the work pushes can cause at once.
#[derive(Debug)]
pub struct Limits {
    /// Push slots per source (`sources.X.max_concurrent`); a push that finds
    /// none free is answered 429.
    pub pushes: HashMap<String, Arc<Semaphore>>,
    /// Bodies parsed at once (`http.parse_workers`), on blocking threads.
    pub parsers: Arc<Semaphore>,
    /// Small bodies (at most [`SMALL_BODY`] bytes) parsed at once, on
    /// blocking threads too, beside the others: a one-record post does not
    /// queue behind large bodies being parsed.
    pub small_parsers: Arc<Semaphore>,
}

/// The largest body that parses in the small lane ([`Limits::small_parsers`]).
pub const SMALL_BODY: usize = 64 << 10;

impl Limits {
    /// Limits for `config`.
    pub fn new(config: &Config) -> Limits {
        Limits {
            pushes: config
                .sources
                .iter()
                .map(|(id, s)| (id.clone(), Arc::new(Semaphore::new(s.max_concurrent))))
                .collect(),
            parsers: Arc::new(Semaphore::new(config.http.parse_workers)),
            small_parsers: Arc::new(Semaphore::new(config.http.parse_workers)),
        }
    }
}

impl AppState {
    /// State with default gauges read from the store.
    pub fn new(store: Store, config: Arc<Config>) -> AppState {
        let gauge_store = store.clone();
        let archived = config.archive.is_some();
        AppState {
            limits: Arc::new(Limits::new(&config)),
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
                        archive: if archived {
                            store.archive_counts().await.ok()
                        } else {
                            None
                        },
                        ..Gauges::default()
                    }
                })
            }),
        }
    }
}

/// The routes. Every request is bounded by `http.request_timeout_seconds`
/// as a whole; a push's body is read by its handler, after authentication,
/// within its source's limit ([`ingest`]).
pub fn router(state: AppState) -> Router {
    let timeout = state.config.http.request_timeout;
    Router::new()
        .route("/api/v1/sources/{source}/records", post(ingest::post_records))
        .route("/api/v1/findings", get(findings))
        .route("/api/v1/cases", get(cases))
        .route("/api/v1/cases/{number}", get(case))
        .route("/api/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .layer(axum::middleware::from_fn_with_state(timeout, whole_request_timeout))
        .with_state(state)
}

/// Answers 503 (with Retry-After) when a request takes longer than the
/// configured limit; what it was doing is dropped (a store transaction rolls
/// back).
async fn whole_request_timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout.into_response(),
    }
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
    raise_open_file_limit(state.config.http.max_connections);
    let http = state.config.http.clone();
    let metrics = state.metrics.clone();
    let app = router(state);
    let task = tokio::spawn(serve(listener, app, http, metrics, shutdown));
    Ok((local, task))
}

/// Accepts connections up to `http.max_connections` (more are closed at
/// once, so they cost nothing while they wait) and serves HTTP/1.1 on each
/// with a deadline for the request headers, which also ends idle kept-alive
/// connections: a slow or silent client cannot hold a connection for long.
/// On shutdown, stops accepting, lets requests in progress finish and waits
/// for every connection to close.
async fn serve(
    listener: TcpListener,
    app: Router,
    http: HttpConfig,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(http.max_connections));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors or a connection reset before it
                    // was accepted: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let header_timeout = http.header_timeout;
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            let stopping = tokio::select! {
                _ = conn.as_mut() => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            if stopping {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it is closed.
    let all = u32::try_from(http.max_connections).unwrap_or(u32::MAX);
    let _ = connections.acquire_many(all).await;
    Ok(())
}

/// Raises the soft limit of open files to the hard limit when the
/// connection cap needs more than it allows (the soft limit is often 1,024;
/// every connection is a file descriptor).
fn raise_open_file_limit(max_connections: usize) {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct given.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return;
            }
            let wanted = (max_connections as libc::rlim_t).saturating_add(256);
            if limit.rlim_cur < wanted && limit.rlim_cur < limit.rlim_max {
                limit.rlim_cur = wanted.min(limit.rlim_max);
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < wanted {
                tracing::warn!(
                    open_files = limit.rlim_cur,
                    max_connections,
                    "the open-file limit is below http.max_connections; raise LimitNOFILE"
                );
            }
        }
    }
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
    // Another school answers like a school without findings: whether a
    // school has any is not for outsiders to learn.
    if let Some(school) = &q.school
        && !allowed(school)
    {
        return Ok((StatusCode::OK, Json(Vec::new())));
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
    // Another school answers like a school without cases.
    if let Some(school) = &q.school
        && !user.may_read(school)
    {
        return Ok(Json(Vec::new()));
    }
    let schools: Vec<Option<String>> = match (&q.school, user.schools.listed()) {
        (Some(s), _) => vec![Some(s.clone())],
        (None, None) => vec![None],
        (None, Some(list)) => list.iter().cloned().map(Some).collect(),
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

/// One case, audited as read. A case of a school the user may not read
/// answers exactly like a case that does not exist, so case numbers cannot
/// be probed.
async fn case(
    State(app): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(number): axum::extract::Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let user = auth::read_user(&app.config.http.users, &headers)?;
    // Check the school before the read is logged as one.
    let not_found = || ApiError::NotFound(format!("saken «{}»", crate::domain::plausibility::printable(&number)));
    let school = app
        .store
        .cases_raw(None, true)
        .await?
        .into_iter()
        .find(|c| c.number == number)
        .map(|c| c.pupil.school)
        .ok_or_else(not_found)?;
    if !user.may_read(&school) {
        return Err(not_found());
    }
    let case = app
        .store
        .read_case(&number, &api_party(user), chrono::Utc::now())
        .await
        .map_err(case_error)?;
    Ok(Json(case))
}
