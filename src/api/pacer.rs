//! Client-side pacing: one pacer per API key, shared by every run of the process, spacing
//! requests just under the plan's limit so the API rarely has to say 429. A 429 pauses and slows
//! everyone, not just the request that got it; the slowdown wears off as requests succeed.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Requests are spaced this much wider than the plan's limit allows.
const MARGIN: f64 = 0.01;
/// The most a run of 429s can stretch the spacing.
const MAX_PENALTY: f64 = 4.0;

#[derive(Debug)]
pub struct Pacer {
    /// `None`: no pacing at all.
    interval: Option<Duration>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    next_slot: Instant,
    paused_until: Instant,
    penalty: f64,
}

impl Pacer {
    /// At most `per_second` requests per second (spaced evenly).
    pub fn new(per_second: f64) -> Pacer {
        Pacer::with_interval(Some(Duration::from_secs_f64((1.0 + MARGIN) / per_second)))
    }

    /// No pacing (a sandbox without limits, benchmarks).
    pub fn unlimited() -> Pacer {
        Pacer::with_interval(None)
    }

    fn with_interval(interval: Option<Duration>) -> Pacer {
        let now = Instant::now();
        Pacer {
            interval,
            state: Mutex::new(State {
                next_slot: now,
                paused_until: now,
                penalty: 1.0,
            }),
        }
    }

    /// The spacing between two requests (`None`: unpaced).
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// Waits for this request's slot; returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        let now = Instant::now();
        let slot = {
            let mut s = self.state.lock().expect("pacer lock");
            let slot = now.max(s.paused_until).max(if self.interval.is_some() {
                s.next_slot
            } else {
                now
            });
            if let Some(i) = self.interval {
                s.next_slot = slot + i.mul_f64(s.penalty);
            }
            slot
        };
        tokio::time::sleep_until(slot).await;
        slot - now
    }

    /// A request went through: let any slowdown wear off.
    pub fn on_success(&self) {
        let mut s = self.state.lock().expect("pacer lock");
        s.penalty = (s.penalty * 0.9).max(1.0);
    }

    /// The API said 429: nobody sends for `wait`, and spacing widens for a while.
    pub fn on_rate_limited(&self, wait: Duration) {
        let mut s = self.state.lock().expect("pacer lock");
        let until = Instant::now() + wait;
        s.paused_until = s.paused_until.max(until);
        s.next_slot = s.next_slot.max(until);
        s.penalty = (s.penalty * 1.5).min(MAX_PENALTY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Plan;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_under_the_rate() {
        let p = Pacer::new(10.0);
        let start = Instant::now();
        for _ in 0..11 {
            p.acquire().await;
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_secs(1), "{took:?}");
        assert!(took < Duration::from_millis(1020), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_everyone() {
        let p = Pacer::new(100.0);
        p.acquire().await;
        p.on_rate_limited(Duration::from_secs(2));
        let waited = p.acquire().await;
        assert!(waited >= Duration::from_secs(2), "{waited:?}");
    }

    #[test]
    fn trial_is_paced_at_one_request_per_second() {
        let p = Pacer::new(Plan::Trial.per_second());
        assert_eq!(p.interval, Some(Duration::from_secs_f64(1.01)));
    }
}
