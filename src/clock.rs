//! Where the service reads "now": the system clock in production, or a
//! simulated clock that a demo (or a test) moves along with the data it
//! replays, so deadlines, reminders, digests and reviews fall on the dates
//! of the data and not on the day the demo runs.

use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;

/// A source of the current instant.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// Told each time the clock jumps (never for a clock that only runs),
    /// so loops waiting on a timer can look again at once.
    fn jumps(&self) -> Option<watch::Receiver<DateTime<Utc>>> {
        None
    }
}

/// A clock shared by the service's loops and the chat workflow.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that is set to an instant and runs on from there at the real
/// pace until it is set again. Setting it may jump forward or back.
#[derive(Debug)]
pub struct SimulatedClock {
    set: Mutex<(DateTime<Utc>, Instant)>,
    jumped: watch::Sender<DateTime<Utc>>,
}

impl SimulatedClock {
    /// A clock showing `start` now.
    pub fn new(start: DateTime<Utc>) -> Arc<SimulatedClock> {
        Arc::new(SimulatedClock {
            set: Mutex::new((start, Instant::now())),
            jumped: watch::channel(start).0,
        })
    }

    /// Sets the clock to `to` and tells those waiting on [`Clock::jumps`].
    pub fn set(&self, to: DateTime<Utc>) {
        *self.set.lock().unwrap_or_else(|p| p.into_inner()) = (to, Instant::now());
        self.jumped.send_replace(to);
    }
}

impl Clock for SimulatedClock {
    fn now(&self) -> DateTime<Utc> {
        let (at, since) = *self.set.lock().unwrap_or_else(|p| p.into_inner());
        at + chrono::Duration::from_std(since.elapsed()).unwrap_or_default()
    }

    fn jumps(&self) -> Option<watch::Receiver<DateTime<Utc>>> {
        Some(self.jumped.subscribe())
    }
}

/// Resolves when `jumps` reports a jump; never, when there is nothing to
/// report (the system clock) or the clock is gone.
pub async fn jumped(jumps: &mut Option<watch::Receiver<DateTime<Utc>>>) {
    match jumps {
        Some(rx) => {
            if rx.changed().await.is_err() {
                *jumps = None;
                std::future::pending::<()>().await
            }
        }
        None => std::future::pending::<()>().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_simulated_clock_shows_what_it_was_set_to_and_runs_on() {
        let start: DateTime<Utc> = "2026-08-17T06:00:00Z".parse().unwrap();
        let clock = SimulatedClock::new(start);
        let now = clock.now();
        assert!(now >= start && now - start < chrono::Duration::seconds(5), "{now}");
        let mut jumps = clock.jumps();
        let later: DateTime<Utc> = "2026-09-07T06:00:00Z".parse().unwrap();
        clock.set(later);
        tokio::time::timeout(std::time::Duration::from_secs(1), jumped(&mut jumps))
            .await
            .expect("the jump is reported");
        let now = clock.now();
        assert!(now >= later && now - later < chrono::Duration::seconds(5), "{now}");
        let system = SystemClock;
        assert!((system.now() - Utc::now()).num_seconds().abs() < 5);
        assert!(system.jumps().is_none());
    }
}
