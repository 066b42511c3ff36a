//! Account safety: a live request that goes through a LinkedIn identity acts as that person, so
//! it is paced the way a careful person would act. Each identity is a lane; before every
//! request of a run, the run's [`RunGate`] takes a slot in each of its lanes (at most
//! `per_identity` in flight, across every process on the database), waits out the random gap
//! since the lane's last request, and checks the lane's daily caps and pause. Every request also
//! takes the plan-rate slot that all processes share. The state lives in the database
//! (`store::lanes`), so the daemon, `trigger` and `runs resume` see the same lanes.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tracing::{debug, info};

use crate::api::{ApiFailure, Gate, random_unit};
use crate::catalog::{self, Count};
use crate::clock::Clock;
use crate::config::Safety;
use crate::store::{self, Entry, LaneAsk, RunRecord, Store};

/// Why a lane refused a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    /// The lane has made its daily quota of this kind of request.
    DailyCap {
        lane: String,
        count: Count,
        cap: u32,
        until: DateTime<Utc>,
    },
    /// The lane's identity was reported unusable; it rests until `until`.
    Paused {
        lane: String,
        until: DateTime<Utc>,
        reason: String,
    },
}

impl Denial {
    /// The denial a lane's answer says, for a request of kind `count`: `None` when it let the
    /// request through or asked it to wait.
    pub fn of(entry: Entry, count: Count) -> Option<Denial> {
        match entry {
            Entry::Capped {
                lane, cap, until, ..
            } => Some(Denial::DailyCap {
                lane,
                count,
                cap,
                until,
            }),
            Entry::Paused {
                lane,
                until,
                reason,
            } => Some(Denial::Paused {
                lane,
                until,
                reason,
            }),
            Entry::Entered | Entry::Wait(_) => None,
        }
    }

    /// Until when the lane refuses.
    pub fn until(&self) -> DateTime<Utc> {
        match self {
            Denial::DailyCap { until, .. } | Denial::Paused { until, .. } => *until,
        }
    }
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denial::DailyCap {
                lane,
                count,
                cap,
                until,
            } => write!(
                f,
                "daily cap: lane {lane} has made its {cap} {} requests for the day (until {})",
                count.as_str(),
                until.format("%Y-%m-%d %H:%M UTC")
            ),
            Denial::Paused {
                lane,
                until,
                reason,
            } => write!(
                f,
                "lane {lane} is paused until {} ({reason}); `watchbell lanes resume {lane}` lifts it",
                until.format("%Y-%m-%d %H:%M UTC")
            ),
        }
    }
}

/// The gate of one run: its lanes, its kind of request, and the plan's shared spacing.
pub struct RunGate {
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    store: Store,
    safety: Safety,
    lanes: Vec<String>,
    count: Count,
    holder: String,
    /// The plan's spacing, shared with other processes through the database.
    pace: Option<Duration>,
    /// How long the lease on a slot lasts if this process dies mid-request.
    lease: Duration,
    waited_ms: AtomicU64,
    /// True between a granted `enter` and its `leave`: a run stopped mid-request (timeout,
    /// shutdown) drops its gate there, and the drop frees the slots.
    holding: AtomicBool,
    /// The outreach input the next request sends: recorded in the transaction that lets it
    /// go, then cleared (a later page of the same input is not a new send).
    sending: std::sync::Mutex<Option<store::SentMark>>,
    /// The run's uid, sent with each of its requests.
    run_uid: String,
}

impl RunGate {
    pub fn new(
        run: &RunRecord,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
        store: Store,
        safety: Safety,
        pace: Option<Duration>,
        request_timeout: Duration,
    ) -> RunGate {
        let body = catalog::clean_live_body(&run.action_name, &run.body);
        RunGate {
            lanes: catalog::lanes(&run.action_name, &body),
            count: Count::of(&run.action_name),
            holder: holder(run),
            metrics,
            store,
            safety,
            pace,
            lease: request_timeout + Duration::from_secs(30),
            waited_ms: AtomicU64::new(0),
            holding: AtomicBool::new(false),
            sending: std::sync::Mutex::new(None),
            run_uid: run.uid.clone(),
        }
    }

    pub fn lanes(&self) -> &[String] {
        &self.lanes
    }

    /// How long this run has waited for its lanes so far.
    pub fn waited(&self) -> Duration {
        Duration::from_millis(self.waited_ms.load(Ordering::Relaxed))
    }

    /// The outreach input the run's next request sends (`None`: not one of a list's).
    pub fn send_as(&self, mark: Option<store::SentMark>) {
        *self
            .sending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = mark;
    }

    fn sending(&self) -> Option<store::SentMark> {
        self.sending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// What a request of this run asks of its lanes at `now`.
    pub fn ask(&self, now: DateTime<Utc>) -> LaneAsk {
        let (day, day_ends) = local_day(now, self.safety.tz);
        LaneAsk {
            lanes: self.lanes.clone(),
            count: self.count,
            holder: self.holder.clone(),
            per_identity: self.safety.per_identity,
            outreach_cap: self.safety.outreach,
            visits_cap: self.safety.visits,
            ramp_up: self.safety.ramp_up,
            day,
            day_ends,
            lease: chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::hours(1)),
            sent: self.sending(),
        }
    }

    async fn take_lanes(&self) -> Result<(), ApiFailure> {
        let started = tokio::time::Instant::now();
        loop {
            let now = self.store.now(&Clock::System);
            let entry = store::persistently(|| self.store.lane_enter(self.ask(now), now))
                .await
                .map_err(|e| ApiFailure::Transport(format!("identity lanes: {e}")))?;
            let denial = match entry {
                Entry::Entered => break,
                Entry::Wait(at) => {
                    // Busy (another request in flight): look again shortly; in its gap: sleep it out.
                    let wait = (at - now)
                        .to_std()
                        .unwrap_or_default()
                        .max(Duration::from_millis(50));
                    tokio::time::sleep(wait).await;
                    continue;
                }
                refused => Denial::of(refused, self.count).expect("capped or paused"),
            };
            if matches!(denial, Denial::DailyCap { .. }) {
                self.metrics
                    .count("watchbell_lane_cap_blocks_total", &[], 1.0);
            }
            return Err(ApiFailure::Lane(denial));
        }
        let waited = started.elapsed();
        if waited > Duration::from_millis(1) {
            self.waited_ms
                .fetch_add(waited.as_millis() as u64, Ordering::Relaxed);
            self.metrics.count("watchbell_lane_waits_total", &[], 1.0);
            self.metrics.count(
                "watchbell_lane_wait_seconds_total",
                &[],
                waited.as_secs_f64(),
            );
            debug!(lanes = %self.lanes.join(","), waited_ms = waited.as_millis() as u64, "lane free");
        }
        Ok(())
    }

    async fn take_pace(&self, interval: Duration) {
        let now = self.store.now(&Clock::System);
        let slot = store::persistently(|| self.store.pace_slot(interval, now)).await;
        if let Ok(slot) = slot
            && let Ok(wait) = (slot - now).to_std()
        {
            tokio::time::sleep(wait).await;
        }
    }

    /// What leaving the lanes writes: the lanes, the holder, and the end of a fresh random gap.
    fn release(&self) -> (Vec<String>, String, DateTime<Utc>) {
        self.holding.store(false, Ordering::Release);
        let (lo, hi) = self.safety.page_gap;
        let gap = lo + hi.saturating_sub(lo).mul_f64(random_unit());
        let next = Clock::System.now() + chrono::Duration::from_std(gap).unwrap_or_default();
        (self.lanes.clone(), self.holder.clone(), next)
    }

    /// Pauses the run's lanes for everyone: the API reported their identity unusable.
    pub async fn pause(&self, reason: &str) {
        if self.lanes.is_empty() {
            return;
        }
        let until = Clock::System.now()
            + chrono::Duration::from_std(self.safety.lane_pause)
                .unwrap_or(chrono::Duration::hours(6));
        let paused =
            store::persistently(|| self.store.lane_pause(self.lanes.clone(), until, reason)).await;
        if paused.is_ok() {
            info!(lanes = %self.lanes.join(","), until = %until, reason, "identity lane paused for every job");
        }
    }
}

impl Gate for RunGate {
    fn enter(&self) -> Pin<Box<dyn Future<Output = Result<(), ApiFailure>> + Send + '_>> {
        Box::pin(async move {
            if self.lanes.is_empty() {
                if let Some(mark) = self.sending() {
                    let now = Clock::System.now();
                    store::persistently(|| self.store.mark_sent(mark.clone(), now))
                        .await
                        .map_err(|e| ApiFailure::Transport(format!("sent inputs: {e}")))?;
                }
            } else {
                self.take_lanes().await?;
                self.holding.store(true, Ordering::Release);
            }
            self.send_as(None);
            if let Some(i) = self.pace {
                self.take_pace(i).await;
            }
            Ok(())
        })
    }

    fn leave(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            if self.lanes.is_empty() {
                return;
            }
            let (lanes, holder, next) = self.release();
            let _ =
                store::persistently(|| self.store.lane_leave(lanes.clone(), holder.clone(), next))
                    .await;
        })
    }

    fn may_resend(&self) -> bool {
        self.count != Count::Outreach
    }

    fn run(&self) -> Option<&str> {
        Some(&self.run_uid)
    }
}

impl Drop for RunGate {
    fn drop(&mut self) {
        if !self.holding.load(Ordering::Acquire) {
            return;
        }
        let (lanes, holder, next) = self.release();
        let store = self.store.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = store.lane_leave(lanes, holder, next).await;
            });
        }
    }
}

/// Who holds a run's identity slots: its process and the run.
pub fn holder(run: &RunRecord) -> String {
    format!("{}/{}", run.owner.as_deref().unwrap_or("-"), run.uid)
}

/// The local day of `now` in `tz` (`YYYY-MM-DD`) and the instant it ends.
pub fn local_day(now: DateTime<Utc>, tz: chrono_tz::Tz) -> (String, DateTime<Utc>) {
    let local = now.with_timezone(&tz).date_naive();
    let next = local.succ_opt().unwrap_or(local);
    let midnight = next.and_hms_opt(0, 0, 0).expect("midnight exists");
    // A zone whose midnight is skipped by DST starts the day at the first instant after.
    let ends = tz
        .from_local_datetime(&midnight)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(midnight + chrono::Duration::hours(1)))
                .earliest()
        })
        .map_or(now + chrono::Duration::days(1), |t| t.with_timezone(&Utc));
    (local.format("%Y-%m-%d").to_string(), ends)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_of_the_caps_is_local() {
        let t = DateTime::parse_from_rfc3339("2026-05-01T23:30:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(local_day(t, chrono_tz::UTC).0, "2026-05-01");
        let (day, ends) = local_day(t, chrono_tz::Europe::Paris);
        assert_eq!(day, "2026-05-02");
        assert_eq!(ends.to_rfc3339(), "2026-05-02T22:00:00+00:00");
    }
}
