//! The one door to wall-clock time. Everything that asks "what time is it" or "wake me at T" goes
//! through [`Clock`], so tests can drive time by hand and never sleep blind.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// The longest the daemon sleeps in one go where the kernel has no real-time timerfd: tokio
/// timers follow the monotonic clock, so waking this often is what lets a wall-clock jump or a
/// resume from suspend be noticed in time.
pub const MAX_NAP: Duration = Duration::from_secs(1);

/// Wall-clock time, real or driven by a test.
#[derive(Clone, Debug)]
pub enum Clock {
    /// The system's real-time clock.
    System,
    /// A clock that moves only when a test says so.
    Test(Arc<TestClock>),
}

impl Clock {
    /// A test clock starting at `start`, with the handle that moves it.
    pub fn test(start: DateTime<Utc>) -> (Clock, Arc<TestClock>) {
        let (tx, _rx) = watch::channel(start);
        let tc = Arc::new(TestClock { now: tx });
        (Clock::Test(tc.clone()), tc)
    }

    /// The current instant.
    #[allow(clippy::disallowed_methods)]
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Test(tc) => *tc.now.borrow(),
        }
    }

    /// Sleeps until `deadline` on the wall clock, or until the wall clock is set (a jump; see
    /// [`crate::realtime`]), or for at most [`MAX_NAP`] where that is not available. Callers loop
    /// and re-read [`Clock::now`].
    #[allow(clippy::disallowed_methods)]
    pub async fn nap_until(&self, deadline: DateTime<Utc>) {
        match self {
            Clock::System => {
                let left = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                match crate::realtime::clock_changes() {
                    Some(mut set) => tokio::select! {
                        () = tokio::time::sleep(left) => {}
                        _ = set.changed() => {}
                    },
                    None => tokio::time::sleep(left.min(MAX_NAP)).await,
                }
            }
            Clock::Test(tc) => {
                let mut rx = tc.now.subscribe();
                // A test clock only moves when told; waiting for the change is the nap.
                let _ = rx.wait_for(|now| *now >= deadline).await;
            }
        }
    }
}

/// The handle a test uses to move its clock.
#[derive(Debug)]
pub struct TestClock {
    now: watch::Sender<DateTime<Utc>>,
}

impl TestClock {
    /// Moves the clock to `t` (forward or back) and wakes every sleeper.
    pub fn set(&self, t: DateTime<Utc>) {
        self.now.send_replace(t);
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let next = *self.now.borrow() + chrono::Duration::from_std(d).expect("small duration");
        self.set(next);
    }

    /// The test clock's current instant.
    pub fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_test_clock_nap_ends_when_the_clock_passes_the_deadline() {
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let (clock, handle) = Clock::test(t0);
        let deadline = t0 + chrono::Duration::seconds(10);
        let c = clock.clone();
        let nap = tokio::spawn(async move { c.nap_until(deadline).await });
        handle.advance(Duration::from_secs(5));
        tokio::task::yield_now().await;
        assert!(!nap.is_finished());
        handle.advance(Duration::from_secs(5));
        nap.await.unwrap();
        assert_eq!(clock.now(), deadline);
    }
}
