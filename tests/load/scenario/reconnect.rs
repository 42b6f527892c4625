//! Coming back after losing the gateway (`chat --reconnect`, `--kill-after`): reconnection
//! with backoff, the kill itself, and the figures of the recovery.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::report;
use crate::ws::ConnectError;

#[derive(Clone, Copy, Debug)]
pub enum Side {
    Customer,
    Agent,
}

/// Shared by every client of a run.
pub struct Recovery {
    within: Duration,
    attempt_timeout: Duration,
    killed_at: Mutex<Option<Instant>>,
    first_lost: Mutex<Option<Instant>>,
    first_back: Mutex<Option<Instant>>,
    last_back: Mutex<Option<Instant>>,
    lost: AtomicU64,
    customers_back: AtomicU64,
    agents_back: AtomicU64,
    failed_attempts: AtomicU64,
    gave_up: AtomicU64,
    pub resent: AtomicU64,
    pub already_stored: AtomicU64,
    pub resumed: AtomicU64,
}

fn set_once(slot: &Mutex<Option<Instant>>, at: Instant) {
    slot.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert(at);
}

fn get(slot: &Mutex<Option<Instant>>) -> Option<Instant> {
    *slot.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Recovery {
    /// Clients keep trying for `within` after losing their connection; each attempt (TCP,
    /// upgrade, hello → welcome) has `attempt_timeout`.
    pub fn new(within: Duration, attempt_timeout: Duration) -> Self {
        Self {
            within,
            attempt_timeout,
            killed_at: Mutex::new(None),
            first_lost: Mutex::new(None),
            first_back: Mutex::new(None),
            last_back: Mutex::new(None),
            lost: AtomicU64::new(0),
            customers_back: AtomicU64::new(0),
            agents_back: AtomicU64::new(0),
            failed_attempts: AtomicU64::new(0),
            gave_up: AtomicU64::new(0),
            resent: AtomicU64::new(0),
            already_stored: AtomicU64::new(0),
            resumed: AtomicU64::new(0),
        }
    }

    pub fn killed(&self) {
        set_once(&self.killed_at, Instant::now());
    }

    pub fn lost(&self) {
        self.lost.fetch_add(1, Ordering::Relaxed);
        set_once(&self.first_lost, Instant::now());
    }

    /// Tries `attempt` until it succeeds or `within` has passed, waiting between tries (see
    /// [`backoff`]); `key` staggers this client's waits against the others'.
    pub async fn reconnect<T, F, Fut>(&self, side: Side, key: u32, mut attempt: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ConnectError>>,
    {
        let deadline = Instant::now() + self.within;
        let mut tries = 0;
        loop {
            tokio::time::sleep(backoff(tries, key)).await;
            tries += 1;
            if let Ok(Ok(connected)) = tokio::time::timeout(self.attempt_timeout, attempt()).await {
                let now = Instant::now();
                set_once(&self.first_back, now);
                let mut last = self
                    .last_back
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                *last = Some(last.map_or(now, |l| l.max(now)));
                drop(last);
                let back = match side {
                    Side::Customer => &self.customers_back,
                    Side::Agent => &self.agents_back,
                };
                back.fetch_add(1, Ordering::Relaxed);
                return Some(connected);
            }
            self.failed_attempts.fetch_add(1, Ordering::Relaxed);
            if Instant::now() >= deadline {
                self.gave_up.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
    }

    /// The figures, with the kill placed against the window's start.
    pub fn figures(&self, window_start: Instant) -> report::Recovery {
        let first_lost = get(&self.first_lost);
        let since_lost = |at: Option<Instant>| {
            Some(at?.saturating_duration_since(first_lost?).as_secs_f64() * 1000.0)
        };
        report::Recovery {
            killed_at_secs: get(&self.killed_at)
                .map(|k| k.saturating_duration_since(window_start).as_secs_f64()),
            connections_lost: self.lost.load(Ordering::Relaxed),
            customers_back: self.customers_back.load(Ordering::Relaxed),
            agents_back: self.agents_back.load(Ordering::Relaxed),
            first_back_ms: since_lost(get(&self.first_back)),
            all_back_ms: since_lost(get(&self.last_back)),
            failed_attempts: self.failed_attempts.load(Ordering::Relaxed),
            gave_up: self.gave_up.load(Ordering::Relaxed),
            resent: self.resent.load(Ordering::Relaxed),
            already_stored: self.already_stored.load(Ordering::Relaxed),
            resumed: self.resumed.load(Ordering::Relaxed),
        }
    }
}

/// The wait before reconnection attempt `tries` (from 0): 50 ms, then doubling up to 2 s, each
/// shortened by up to a half by the client's own key, so that a thousand clients that lost the
/// gateway together do not all come back in the same millisecond.
pub fn backoff(tries: u32, key: u32) -> Duration {
    let full = (50u64 << tries.min(6)).min(2000);
    let spread = super::chat::phase(key.wrapping_mul(31).wrapping_add(tries));
    Duration::from_millis(full - (full as f64 * spread / 2.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_cap_and_is_spread_over_clients() {
        for key in 0..100 {
            assert!((25..=50).contains(&backoff(0, key).as_millis()));
            assert!((1000..=2000).contains(&backoff(20, key).as_millis()));
        }
        let waits: std::collections::HashSet<_> = (0..100).map(|k| backoff(3, k)).collect();
        assert!(waits.len() > 50, "{} distinct waits", waits.len());
    }

    #[tokio::test]
    async fn a_client_comes_back_once_the_server_answers() {
        let recovery = Recovery::new(Duration::from_secs(10), Duration::from_secs(1));
        recovery.lost();
        let mut tries = 0;
        let back = recovery
            .reconnect(Side::Customer, 7, || {
                tries += 1;
                let n = tries;
                async move {
                    if n < 3 {
                        Err(ConnectError {
                            stage: "tcp",
                            detail: "refused".into(),
                        })
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(back, Some(3));
        let f = recovery.figures(Instant::now());
        assert_eq!((f.customers_back, f.failed_attempts, f.gave_up), (1, 2, 0));
        assert!(f.first_back_ms.unwrap() >= 50.0, "{f:?}");
    }

    #[tokio::test]
    async fn a_client_gives_up_after_its_time() {
        let recovery = Recovery::new(Duration::from_millis(300), Duration::from_secs(1));
        let back: Option<()> = recovery
            .reconnect(Side::Agent, 1, || async {
                Err(ConnectError {
                    stage: "tcp",
                    detail: "refused".into(),
                })
            })
            .await;
        assert!(back.is_none());
        let f = recovery.figures(Instant::now());
        assert_eq!((f.agents_back, f.gave_up), (0, 1));
        assert!(f.failed_attempts >= 2);
    }
}
