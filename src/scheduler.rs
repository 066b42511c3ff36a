//! When jobs are due: a heap of next fire instants and one sleep until the earliest (no polling
//! interval). The next tick is always computed from the previous *scheduled* instant, so nothing
//! drifts. It knows nothing of HTTP or SQL: due ticks leave (one batch per instant) through a channel
//! whose sender waits when it is full, so work is delayed rather than dropped.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::clock::Clock;
use crate::schedule::Schedule;

/// A job as the scheduler sees it: a name, a schedule, and an identity for reload diffs.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub schedule: Schedule,
    /// Changes whenever anything about the job changes; equal fingerprints keep their timers.
    pub fingerprint: u64,
    /// Where to start: the last nominal tick already accounted for (None: from now).
    pub after: Option<DateTime<Utc>>,
}

/// A nominal tick that has come due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// The job's name (shared with the scheduler: a batch of 10,000 ticks copies no names).
    pub job: Arc<str>,
    pub nominal: DateTime<Utc>,
    /// Earlier nominal ticks of the same job that came due at the same time (the daemon was
    /// down, the machine slept, or the wall clock jumped forward), oldest first; at most
    /// [`MAX_MISSED`] of them.
    pub missed: Vec<DateTime<Utc>>,
    /// How many even older ticks were passed over without being listed.
    pub unlisted: u64,
}

/// What the scheduler can be told while it runs.
#[derive(Debug)]
pub enum Command {
    /// Replace the job set: unchanged jobs keep their next tick; new and changed ones start now.
    Reload(Vec<Entry>),
}

/// The scheduler loop's last sign of life, for the watchdog and `/healthz`: the instant of its
/// last pass, how many passes it has made (each command it applies is followed by one), the
/// next fire, and the instant it sleeps until while it sleeps (it no longer wakes every second:
/// sleeping as planned is alive).
#[derive(Clone, Debug, Default)]
pub struct Heartbeat(Arc<(AtomicI64, AtomicU64, AtomicI64, AtomicI64)>);

/// How late past its planned instant the loop may be and still count as alive.
const GRACE: chrono::Duration = chrono::Duration::seconds(5);

impl Heartbeat {
    /// `Ok` while the loop is alive: it passed within [`GRACE`], or it sleeps until an instant
    /// not more than that in the past. `Err`: seconds since its last pass (`None`: never ran).
    pub fn alive(&self, now: DateTime<Utc>) -> Result<(), Option<i64>> {
        let asleep = self.0.3.load(Ordering::Acquire);
        let planned = DateTime::from_timestamp_millis(asleep).filter(|_| asleep > 0);
        if planned.is_some_and(|until| now - until < GRACE) {
            return Ok(());
        }
        match self.last() {
            Some(t) if now - t < GRACE => Ok(()),
            Some(t) => Err(Some((now - t).num_seconds())),
            None => Err(None),
        }
    }

    fn asleep_until(&self, at: Option<DateTime<Utc>>) {
        self.0
            .3
            .store(at.map_or(0, |t| t.timestamp_millis()), Ordering::Release);
    }

    pub fn beat(&self, now: DateTime<Utc>) {
        self.0.0.store(now.timestamp_millis(), Ordering::Relaxed);
        self.0.1.fetch_add(1, Ordering::Release);
    }

    pub fn last(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(self.0.0.load(Ordering::Relaxed))
            .filter(|t| t.timestamp() > 0)
    }

    /// Passes of the loop so far.
    pub fn beats(&self) -> u64 {
        self.0.1.load(Ordering::Acquire)
    }

    /// The instant the next tick fires, as of the last pass.
    pub fn next_fire(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(self.0.2.load(Ordering::Relaxed))
            .filter(|t| t.timestamp() > 0)
    }

    pub(crate) fn set_next_fire(&self, at: Option<DateTime<Utc>>) {
        self.0
            .2
            .store(at.map_or(0, |t| t.timestamp_millis()), Ordering::Relaxed);
    }
}

/// At most this many missed ticks of one job are reported at once; older ones are not listed.
pub const MAX_MISSED: usize = 10_000;

struct Slot {
    name: Arc<str>,
    schedule: Schedule,
    fingerprint: u64,
    /// The next nominal tick, and the instant it fires (nominal + jitter).
    next: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// The scheduler's state; [`Scheduler::run`] is its loop. The heap holds each job's next fire
/// instant by the job's index in `jobs`, and is rebuilt when the job set changes, so it holds
/// no stale entries and a due tick costs no name lookup or copy.
pub struct Scheduler {
    clock: Clock,
    jobs: Vec<Slot>,
    heap: BinaryHeap<Reverse<(DateTime<Utc>, usize)>>,
}

impl Scheduler {
    pub fn new(clock: Clock, entries: Vec<Entry>) -> Scheduler {
        let mut s = Scheduler {
            clock,
            jobs: Vec::new(),
            heap: BinaryHeap::new(),
        };
        s.reload(entries);
        s
    }

    /// Applies a new job set as a diff: a job whose fingerprint is unchanged keeps its next
    /// tick; a new or changed one starts after its `after` (from now when it has none).
    pub fn reload(&mut self, entries: Vec<Entry>) {
        let now = self.clock.now();
        let mut old: HashMap<Arc<str>, Slot> = self
            .jobs
            .drain(..)
            .map(|slot| (slot.name.clone(), slot))
            .collect();
        self.jobs = entries
            .into_iter()
            .map(|e| match old.remove(e.name.as_str()) {
                Some(slot) if slot.fingerprint == e.fingerprint => slot,
                _ => {
                    let next = e
                        .schedule
                        .next_after(e.after.unwrap_or(now))
                        .map(|f| (f.at, e.schedule.fire_instant(f.at)));
                    Slot {
                        name: e.name.into(),
                        schedule: e.schedule,
                        fingerprint: e.fingerprint,
                        next,
                    }
                }
            })
            .collect();
        self.jobs.shrink_to_fit();
        self.heap = self
            .jobs
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| slot.next.map(|(_, fire_at)| Reverse((fire_at, i))))
            .collect();
    }

    /// The instant the next tick fires, if any.
    pub fn next_fire(&self) -> Option<DateTime<Utc>> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The next nominal tick of each job, for status lines.
    pub fn upcoming(&self) -> Vec<(String, DateTime<Utc>)> {
        self.jobs
            .iter()
            .filter_map(|s| s.next.map(|(nominal, _)| (s.name.to_string(), nominal)))
            .collect()
    }

    /// Every tick due at `now`: one [`Due`] per job, with the ticks it skipped over listed.
    pub fn take_due(&mut self, now: DateTime<Utc>) -> Vec<Due> {
        let mut out = Vec::new();
        while let Some(mut top) = self.heap.peek_mut() {
            let Reverse((at, i)) = *top;
            if at > now {
                break;
            }
            let slot = &mut self.jobs[i];
            let (mut nominal, _) = slot.next.expect("a queued job has a next tick");
            let mut missed = std::collections::VecDeque::new();
            let mut unlisted = 0;
            // Collapse every tick already due into one, listing the ones passed over.
            let next = loop {
                match slot.schedule.next_after(nominal) {
                    Some(f) if slot.schedule.fire_instant(f.at) <= now => {
                        if missed.len() == MAX_MISSED {
                            missed.pop_front();
                            unlisted += 1;
                        }
                        missed.push_back(nominal);
                        nominal = f.at;
                    }
                    next => break next,
                }
            };
            slot.next = next.map(|f| (f.at, slot.schedule.fire_instant(f.at)));
            // The job's entry moves to its next instant in place (one sift, not a pop and a push).
            match slot.next {
                Some((_, fire_at)) => *top = Reverse((fire_at, i)),
                None => drop(std::collections::binary_heap::PeekMut::pop(top)),
            }
            out.push(Due {
                job: slot.name.clone(),
                nominal,
                missed: missed.into(),
                unlisted,
            });
        }
        out
    }

    /// The loop: sleep until the earliest tick (waking at least once a second, so clock jumps
    /// and suspends are noticed), send what is due, apply commands, until `stop`.
    pub async fn run(
        mut self,
        due: mpsc::Sender<Vec<Due>>,
        mut commands: mpsc::Receiver<Command>,
        heartbeat: Heartbeat,
        stop: CancellationToken,
    ) {
        loop {
            let now = self.clock.now();
            heartbeat.beat(now);
            // Everything due at this instant leaves as one batch, recorded in one transaction.
            let batch = self.take_due(now);
            if !batch.is_empty() {
                debug!(ticks = batch.len(), "ticks due");
                if due.send(batch).await.is_err() {
                    return;
                }
            }
            let next = self.next_fire();
            heartbeat.set_next_fire(next);
            // With nothing scheduled the loop waits for a command (or a clock set).
            let wake = next.unwrap_or_else(|| now + chrono::Duration::days(1));
            heartbeat.asleep_until(Some(wake));
            tokio::select! {
                () = self.clock.nap_until(wake) => heartbeat.asleep_until(None),
                cmd = commands.recv() => match cmd {
                    Some(Command::Reload(entries)) => self.reload(entries),
                    None => return,
                },
                () = stop.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
