//! `tilstede serve`: the long-running gateway. Wires the store, the HTTP
//! server and the background evaluation together, and shuts down gracefully.

use crate::config::Config;
use crate::http::{self, AppState};
use crate::store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often findings are refreshed even when nothing was pushed (the as-of
/// date moves at midnight, and pulls may have written).
const REFRESH_EVERY: Duration = Duration::from_secs(60);

/// What can stop the service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The HTTP listener failed.
    #[error("HTTP-serveren: {0}")]
    Http(#[from] std::io::Error),
}

/// A running service.
pub struct Running {
    /// The bound HTTP address.
    pub addr: std::net::SocketAddr,
    /// The shared state (for tests and tools).
    pub state: AppState,
    /// The clock the loops and the chat workflow read.
    pub clock: crate::clock::SharedClock,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting requests, lets in-flight requests and the current
    /// evaluation finish, then closes the store.
    pub async fn shutdown(self) -> Result<(), ServiceError> {
        let _ = self.stop.send(true);
        if let Ok(r) = self.server.await {
            r?;
        }
        for t in self.tasks {
            let _ = t.await;
        }
        self.state.store.close().await;
        Ok(())
    }
}

/// Starts the service; `listen` overrides the configured address (tests pass port 0).
pub async fn start(config: Config, listen: Option<std::net::SocketAddr>) -> Result<Running, ServiceError> {
    start_with_clock(config, listen, crate::clock::system()).await
}

/// Starts the service on `clock`: findings, the case clock, relayed notices,
/// digests and chat commands all read "now" from it (a demo replaying a
/// school year passes a simulated clock).
pub async fn start_with_clock(
    config: Config,
    listen: Option<std::net::SocketAddr>,
    clock: crate::clock::SharedClock,
) -> Result<Running, ServiceError> {
    let config = Arc::new(config);
    let store = Store::open_with(&config.store, config.sqlite_synchronous)
        .await?
        .keeping_raw_for(config.raw_kept_sources());
    let state = AppState::new(store.clone(), config.clone());
    let (stop, stopped) = watch::channel(false);
    let mut server_stop = stopped.clone();
    let (addr, server) = http::spawn(listen.unwrap_or(config.http.listen), state.clone(), async move {
        let _ = server_stop.wait_for(|s| *s).await;
    })
    .await?;
    tracing::info!(%addr, "HTTP server listening");
    let (leader_tx, leader) = watch::channel(false);
    let mut tasks = vec![
        tokio::spawn(evaluate_loop(state.clone(), clock.clone(), stopped.clone())),
        tokio::spawn(lead_loop(state.store.clone(), leader_tx, stopped.clone())),
        tokio::spawn(case_loop(state.clone(), clock.clone(), leader.clone(), stopped.clone())),
    ];
    if let Some(matrix) = state.config.matrix.clone() {
        tasks.push(tokio::spawn(bot_loop(
            state.clone(),
            clock.clone(),
            matrix,
            leader.clone(),
            stopped.clone(),
        )));
    }
    if let Some(archive) = state.config.archive.clone().filter(|a| a.enabled) {
        tasks.push(tokio::spawn(archive_loop(
            state.clone(),
            archive,
            leader.clone(),
            stopped.clone(),
        )));
    }
    for (id, source) in &state.config.sources {
        if let Some(pull) = &source.pull {
            tasks.push(tokio::spawn(pull_loop(
                state.clone(),
                id.clone(),
                pull.clone(),
                leader.clone(),
                stopped.clone(),
            )));
        }
    }
    Ok(Running {
        addr,
        state,
        clock,
        stop,
        tasks,
        server,
    })
}

/// The shortest time from one refresh to the next. While pushes keep
/// arriving, a refresh after every one of them would hold the store's
/// writer most of the time; a moment's wait lets one refresh take every
/// pupil changed meanwhile.
const REFRESH_GAP: Duration = Duration::from_millis(500);

/// Refreshes findings whenever records change (at most every
/// [`REFRESH_GAP`]), and every minute.
async fn evaluate_loop(state: AppState, clock: crate::clock::SharedClock, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    let mut jumps = clock.jumps();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = state.records_changed.notified() => {}
            _ = crate::clock::jumped(&mut jumps) => {}
            _ = stopped.wait_for(|s| *s) => break,
        }
        let today = crate::domain::dates::school_date_utc(clock.now());
        match state.store.refresh_findings(&state.config.rules, today).await {
            Ok(r) if r.pupils > 0 => {
                if r.change_count() > 0 {
                    state.findings_changed.notify_one();
                }
                tracing::info!(
                    pupils = r.pupils,
                    changes = r.change_count(),
                    full = r.full,
                    "findings refreshed"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "refreshing findings failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(REFRESH_GAP) => {}
            _ = stopped.wait_for(|s| *s) => break,
        }
    }
}

/// How often the case clock runs even when no finding changed.
const CASE_TICK: Duration = Duration::from_secs(60);

/// Opens and updates cases from finding changes, and runs the routine's
/// clock (reminders, escalations, long-term marking), on the leader only:
/// case numbers and the finding cursor must have one writer.
async fn case_loop(
    state: AppState,
    clock: crate::clock::SharedClock,
    mut leader: watch::Receiver<bool>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(CASE_TICK);
    let mut jumps = clock.jumps();
    let mut expired_purged_at: Option<chrono::DateTime<chrono::Utc>> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = state.findings_changed.notified() => {}
            _ = crate::clock::jumped(&mut jumps) => {}
            _ = leader.changed() => {}
            _ = stopped.wait_for(|s| *s) => break,
        }
        if !*leader.borrow_and_update() {
            continue;
        }
        let now = clock.now();
        match crate::workflow::sync_cases(&state.store, &state.config.cases, now).await {
            Ok(s) if s.events > 0 => {
                tracing::info!(
                    events = s.events,
                    opened = s.opened,
                    changed = s.changed,
                    notices = s.notices,
                    "cases synced"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "case sync failed"),
        }
        match crate::workflow::tick_cases(&state.store, &state.config.cases, now).await {
            Ok(n) if !n.is_empty() => tracing::info!(notices = n.len(), "case clock ran"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "case clock failed"),
        }
        let before = now - chrono::Duration::days(i64::from(state.config.cases.retention_days));
        match state.store.purge_closed_cases(before).await {
            Ok(p) if !p.cases.is_empty() || p.extension_sets > 0 => tracing::info!(
                cases = p.cases.len(),
                redactions = p.redactions,
                extension_sets = p.extension_sets,
                "retention purge ran"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "retention purge failed"),
        }
        if expired_purged_at.is_none_or(|at| now - at >= EXPIRED_PURGE_EVERY || now < at) {
            expired_purged_at = Some(now);
            let cutoff = state
                .config
                .retention
                .cutoff(crate::domain::dates::school_date_utc(now));
            // Counts only are logged (by the store), never what was purged.
            if let Err(e) = state.store.purge_expired(cutoff).await {
                tracing::error!(error = %e, "purging expired absence data failed");
            }
        }
        purge_quarantine(&state.store, state.config.quarantine, now).await;
    }
}

/// The quarantine's own retention: entries older than
/// `[quarantine] retention_days` are deleted.
async fn purge_quarantine(store: &Store, config: crate::config::QuarantineConfig, now: chrono::DateTime<chrono::Utc>) {
    match store.purge_quarantine(config.cutoff(now)).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(entries = n, "quarantine purge ran"),
        Err(e) => tracing::error!(error = %e, "quarantine purge failed"),
    }
}

/// How often absence data past its retention period is purged (by the
/// service's clock, so a demo's simulated year purges too).
const EXPIRED_PURGE_EVERY: chrono::Duration = chrono::Duration::hours(1);

/// How often queued case notices are relayed into the outbox and due
/// digests are sent, while nothing wakes the relay sooner.
const RELAY_EVERY: Duration = Duration::from_secs(2);

/// How often the digest schedule is checked.
const DIGEST_EVERY: Duration = Duration::from_secs(600);

/// Runs the Matrix bot on the leader: starts it (retrying while the
/// homeserver is away), keeps the rooms, relays case notices into the
/// outbox and sends due digests. Losing leadership or a stop drops the bot's
/// tasks; posts not yet delivered stay in the outbox for the next leader,
/// with their transaction ids, so nothing is lost or sent twice.
async fn bot_loop(
    state: AppState,
    clock: crate::clock::SharedClock,
    matrix: crate::config::MatrixService,
    mut leader: watch::Receiver<bool>,
    mut stopped: watch::Receiver<bool>,
) {
    let renderer = match crate::render::Renderer::with_overrides(state.config.templates.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "templates unusable; the Matrix bot does not start");
            return;
        }
    };
    let chat = crate::chat::Chat::new(
        state.store.clone(),
        state.config.cases.clone(),
        matrix.config.clone(),
        renderer,
    )
    .with_term_starts(state.config.rules.autumn_start, state.config.rules.spring_start)
    .with_archive(state.config.archive.clone())
    .with_clock(clock.clone());
    let mut failures = 0u32;
    loop {
        if *stopped.borrow() {
            return;
        }
        if !*leader.borrow_and_update() {
            tokio::select! {
                _ = leader.changed() => continue,
                _ = until_stopped(&mut stopped) => return,
            }
        }
        let started = crate::matrix::Bot::start(
            matrix.config.clone(),
            matrix.password.expose(),
            state.store.clone(),
            std::sync::Arc::new(chat.clone()),
        )
        .await;
        let bot = match started {
            Ok(b) => b,
            Err(e) => {
                failures += 1;
                let wait = Duration::from_secs(u64::from(failures.min(6)) * 5);
                tracing::warn!(error = %e, failures, "the Matrix bot could not start; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = until_stopped(&mut stopped) => return,
                }
            }
        };
        failures = 0;
        let metrics = state.metrics.clone();
        bot.observe_sends(std::sync::Arc::new(move |d| {
            metrics.matrix_send_latency.observe(d.as_secs_f64())
        }));
        if let Err(e) = bot.ensure_rooms().await {
            tracing::warn!(error = %e, "rooms could not be made ready; retrying later");
        }
        let tasks = bot.spawn();
        tracing::info!("Matrix bot running");
        let mut relay = tokio::time::interval(RELAY_EVERY);
        let mut digest = tokio::time::interval(DIGEST_EVERY);
        // A new school day is checked for due digests at once.
        let mut digest_day = None;
        loop {
            tokio::select! {
                _ = relay.tick() => {
                    let today = crate::domain::dates::school_date_utc(clock.now());
                    if digest_day.is_some_and(|d| d != today) {
                        digest.reset_immediately();
                    }
                    digest_day = Some(today);
                    match chat.relay(clock.now()).await {
                        Ok(n) if n > 0 => {
                            tracing::info!(posts = n, "case notices relayed");
                            bot.wake();
                        }
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "relaying case notices failed"),
                    }
                    match chat.archive_alerts().await {
                        Ok(n) if n > 0 => {
                            tracing::warn!(documents = n, "archive failures told to leadership");
                            bot.wake();
                        }
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "archive alerts failed"),
                    }
                }
                _ = digest.tick() => {
                    match chat.digests(clock.now()).await {
                        Ok(d) if d.teachers + d.schools + d.gaps > 0 => {
                            tracing::info!(teachers = d.teachers, schools = d.schools, gaps = d.gaps, "digests queued");
                            bot.wake();
                        }
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "digests failed"),
                    }
                }
                _ = leader.changed() => {
                    if !*leader.borrow_and_update() {
                        tracing::warn!("leadership lost; the Matrix bot stops here");
                        break;
                    }
                }
                _ = until_stopped(&mut stopped) => {
                    drop(tasks);
                    return;
                }
            }
        }
        drop(tasks);
    }
}

/// How often the archive outbox is delivered.
const ARCHIVE_EVERY: Duration = Duration::from_secs(5);

/// Delivers the archive outbox on the leader (`archive::delivery`): one
/// sender, so a document is sent at most once at a time.
async fn archive_loop(
    state: AppState,
    config: crate::archive::ArchiveConfig,
    leader: watch::Receiver<bool>,
    mut stopped: watch::Receiver<bool>,
) {
    let transport = match crate::archive::transport::Transport::from_config(&config.transport) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "the archive transport could not be set up; nothing is archived");
            return;
        }
    };
    let delivery = crate::archive::delivery::Delivery::new(state.store.clone(), transport, config);
    loop {
        if *leader.borrow() {
            match delivery.run_once(chrono::Utc::now()).await {
                Ok(r) if r.received + r.archived + r.retried + r.failed > 0 => tracing::info!(
                    received = r.received,
                    archived = r.archived,
                    retried = r.retried,
                    failed = r.failed,
                    "archive delivery ran"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "archive delivery failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(ARCHIVE_EVERY) => {}
            _ = until_stopped(&mut stopped) => return,
        }
    }
}

/// Resolves when the stop signal is given (without holding its guard).
async fn until_stopped(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// How often leadership is sought or checked.
const LEAD_CHECK: Duration = Duration::from_secs(5);

/// Holds leadership when it can get it and publishes whether this replica
/// leads. Pulls (and the Matrix bot) run only on the leader.
async fn lead_loop(store: Store, leader: watch::Sender<bool>, mut stopped: watch::Receiver<bool>) {
    let mut held = None;
    loop {
        match held.as_mut() {
            None => match store.try_lead().await {
                Ok(Some(l)) => {
                    tracing::info!("this replica leads");
                    held = Some(l);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "seeking leadership failed"),
            },
            Some(l) => {
                if !crate::store::Leadership::still_held(l).await {
                    tracing::warn!("leadership lost");
                    held = None;
                }
            }
        }
        let _ = leader.send(held.is_some());
        tokio::select! {
            _ = tokio::time::sleep(LEAD_CHECK) => {}
            _ = stopped.wait_for(|s| *s) => break,
        }
    }
    if let Some(l) = held {
        l.release().await;
    }
}

/// Pulls one source on its schedule, one pull at a time, while this replica
/// leads. A pull commits batch by batch and moves its cursor only after a
/// committed batch, so a stop or crash mid-pull loses nothing.
async fn pull_loop(
    state: AppState,
    id: String,
    pull: crate::config::PullConfig,
    mut leader: watch::Receiver<bool>,
    mut stopped: watch::Receiver<bool>,
) {
    let client = match crate::adapters::rest::RestClient::new(pull.source.auth.clone(), pull.source.retry) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(source = %id, error = %e, "pull client could not be set up");
            return;
        }
    };
    loop {
        if *leader.borrow_and_update() {
            let started = std::time::Instant::now();
            // Not raced against the stop signal: a pull in flight finishes
            // (its requests have timeouts), then the loop sees the stop.
            let report = crate::adapters::pull_once(&client, &pull.source, &state.store).await;
            match report {
                Ok(r) => {
                    state.metrics.count_ingest(&id, r.stats.received, r.stats.quarantined);
                    state.metrics.mark_synced(&id, chrono::Utc::now().timestamp());
                    if r.stats.changed > 0 {
                        state.records_changed.notify_one();
                    }
                    tracing::info!(source = %id, to = r.to, received = r.stats.received, seconds = started.elapsed().as_secs_f64(), "pull done");
                }
                Err(e) => {
                    tracing::warn!(source = %id, error = %e, "pull failed; the cursor is unchanged and the next pull retries")
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pull.every) => {}
            _ = leader.changed() => {}
            _ = stopped.wait_for(|s| *s) => break,
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn termination() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
