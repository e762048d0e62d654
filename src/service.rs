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
    let config = Arc::new(config);
    let store = Store::open(&config.store).await?;
    let state = AppState::new(store.clone(), config.clone());
    let (stop, stopped) = watch::channel(false);
    let mut server_stop = stopped.clone();
    let (addr, server) = http::spawn(listen.unwrap_or(config.http.listen), state.clone(), async move {
        let _ = server_stop.wait_for(|s| *s).await;
    })
    .await?;
    tracing::info!(%addr, "HTTP server listening");
    let evaluator = tokio::spawn(evaluate_loop(state.clone(), stopped));
    Ok(Running {
        addr,
        state,
        stop,
        tasks: vec![evaluator],
        server,
    })
}

/// Refreshes findings whenever records change, and every minute.
async fn evaluate_loop(state: AppState, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = state.records_changed.notified() => {}
            _ = stopped.wait_for(|s| *s) => break,
        }
        let today = crate::domain::dates::school_date_utc(chrono::Utc::now());
        match state.store.refresh_findings(&state.config.rules, today).await {
            Ok(r) if r.pupils > 0 => {
                tracing::info!(
                    pupils = r.pupils,
                    changes = r.changes.len(),
                    full = r.full,
                    "findings refreshed"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "refreshing findings failed"),
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
