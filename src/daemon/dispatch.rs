//! From a due tick to a run: catch-up and overlap policies, the concurrency bound, and the
//! recovery of runs whose owner died. Every tick leaves a row: fired with its run, or skipped
//! with a reason.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::decide::{Verdicts, View, decide};
use super::log_store_error;
use crate::config::{Config, Job, Overlap, Runner as RunnerKind};
use crate::runner::{Limits, Runner, Stop};
use crate::scheduler::{Due, Entry};
use crate::status::RunStatus;
use crate::store::{SkipReason, Store, StoreError};

/// A run that has ended (its task is done).
pub struct Done {
    pub job: String,
    pub uid: String,
}

struct Active {
    uid: String,
    stop: Stop,
}

pub struct Dispatch {
    /// Shared with every run task (one copy, not one per waiting run); a reload that changes it
    /// makes a new one, and runs already spawned keep theirs.
    pub runner: Arc<Runner>,
    /// The job file as it stands; every task that needs it watches [`Dispatch::published`].
    pub config: Arc<Config>,
    published: watch::Sender<Arc<Config>>,
    owner: String,
    /// The runs in flight in this process, by job (a job with none has no entry).
    active: HashMap<String, Vec<Active>>,
    /// How many runs `active` holds.
    active_count: usize,
    lanes: HashMap<String, Arc<Mutex<()>>>,
    /// The reason ticks missed before this start are skipped with.
    pub missed: SkipReason,
    slots: Arc<Semaphore>,
    tracker: TaskTracker,
    /// Parent of every run's stop: cancelled when the shutdown grace period is over.
    runs_stop: CancellationToken,
    /// Cancelled as shutdown begins: runs still waiting for a slot stop at once.
    queue_stop: CancellationToken,
    done_tx: mpsc::UnboundedSender<Done>,
    pub done: mpsc::UnboundedReceiver<Done>,
    /// The account's credits as last read (ticks are skipped while there are none).
    pub credits: Arc<super::credits::Reading>,
}

/// The last nominal tick recorded for each job (where the scheduler resumes after a restart).
pub async fn last_ticks(
    config: &Config,
    store: &Store,
) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
    let names: Vec<String> = config.jobs.iter().map(|j| j.name.clone()).collect();
    store.last_ticks(names).await
}

/// The scheduler's view of the file: local jobs, each starting after its entry in `last` (from
/// now when it has none).
pub fn entries<S: std::hash::BuildHasher>(
    config: &Config,
    last: &HashMap<String, DateTime<Utc>, S>,
) -> Vec<Entry> {
    config
        .jobs
        .iter()
        .filter(|j| j.runner != RunnerKind::Remote)
        .filter_map(|j| {
            Some(Entry {
                name: j.name.clone(),
                schedule: j.schedule.clone()?,
                fingerprint: j.fingerprint(),
                after: last.get(&j.name).copied(),
            })
        })
        .collect()
}

impl Dispatch {
    pub fn new(runner: Runner, config: Config, owner: String) -> Dispatch {
        let config = Arc::new(config);
        let (published, _) = watch::channel(config.clone());
        let (done_tx, done) = mpsc::unbounded_channel();
        Dispatch {
            slots: Arc::new(Semaphore::new(config.daemon.max_concurrent_runs)),
            runner: Arc::new(runner),
            config,
            published,
            owner,
            active: HashMap::new(),
            active_count: 0,
            lanes: HashMap::new(),
            missed: SkipReason::DaemonDown,
            tracker: TaskTracker::new(),
            runs_stop: CancellationToken::new(),
            queue_stop: CancellationToken::new(),
            done_tx,
            done,
            credits: Arc::default(),
        }
    }

    /// The job file, for tasks that must follow reloads (the deliverer).
    pub fn watch_config(&self) -> watch::Receiver<Arc<Config>> {
        self.published.subscribe()
    }

    /// Takes a reloaded job file: for the next ticks, the runs started from now on, and every
    /// task watching it.
    pub fn set_config(&mut self, mut config: Config) {
        let runner = Arc::make_mut(&mut self.runner);
        runner.safety = config.safety.clone();
        // The receiver stays where it was bound (a new listen takes a restart).
        if let (Some(new), Some(old)) = (&mut config.receiver, &runner.receiver) {
            new.listen = old.listen;
            if new.public_url.is_none() {
                new.public_url.clone_from(&old.public_url);
            }
            runner.receiver = Some(new.clone());
        }
        self.config = Arc::new(config);
        self.published.send_replace(self.config.clone());
    }

    /// Now on the clock leases and slots are compared on (the database's, on `PostgreSQL`).
    fn now(&self) -> DateTime<Utc> {
        self.runner.store.now(&self.runner.clock)
    }

    /// Decides what each tick of a batch becomes, then records them all in one transaction and
    /// starts the fired runs. Every tick leaves a row: when the database cannot take the batch,
    /// it is handed back to be recorded later.
    pub async fn on_batch(&mut self, batch: Vec<Due>) -> Result<(), Vec<Due>> {
        let kept = batch.clone();
        let elsewhere = match self
            .runner
            .store
            .open_runs_elsewhere(&self.owner, self.now())
            .await
        {
            Ok(counts) => counts,
            Err(e) => {
                warn!(error = %e, "runs in flight unreadable; ticks kept to retry");
                return Err(kept);
            }
        };
        let here = &self.active;
        let in_flight = |job: &str| {
            here.get(job).map_or(0, Vec::len) + elsewhere.get(job).copied().unwrap_or(0)
        };
        let now = self.now();
        // The verdicts borrow the jobs from this handle while runs are spawned below.
        let (config, owner) = (self.config.clone(), self.owner.clone());
        let v = decide(
            batch,
            &View {
                now,
                config: &config,
                in_flight: &in_flight,
                owner: &owner,
                credits_out: self.credits.out_of_credits(now),
                missed: self.missed,
            },
        );
        for (job, count) in &v.unlisted {
            warn!(job = %job, count, "older missed ticks were passed over without a row each");
        }
        for job in &v.replace {
            for a in self.active.get(job).into_iter().flatten() {
                info!(job = %job, run = %a.uid, "replacing the run in flight");
                a.stop.stop("replaced");
            }
        }
        let Verdicts {
            skips,
            fires,
            fired_jobs,
            ..
        } = v;
        let clock = self.runner.clock.clone();
        // Urgent: ahead of run writes; the creation time is read when the batch is written.
        let recorded = Arc::new((skips, fires));
        let rec = self
            .runner
            .store
            .record_ticks(recorded.clone(), clock)
            .await;
        let rec = match rec {
            Ok(rec) => rec,
            Err(e) => {
                let jobs: Vec<&str> = kept.iter().map(|d| &*d.job).collect();
                warn!(error = %e, jobs = %jobs.join(","), "ticks not recorded; keeping them to retry");
                return Err(kept);
            }
        };
        let (skips, fires) = &*recorded;
        for (s, recorded) in skips.iter().zip(&rec.skipped) {
            if *recorded {
                self.runner.client.metrics().count(
                    "watchbell_ticks_total",
                    &[("outcome", "skipped"), ("reason", s.reason.as_str())],
                    1.0,
                );
                info!(job = %s.job, nominal = %s.nominal, reason = %s.reason, "tick skipped");
            }
        }
        for ((job, (nominal, _)), uid) in fired_jobs.iter().zip(fires).zip(rec.fired) {
            let Some(uid) = uid else {
                debug!(job = %job.name, nominal = %nominal, "tick already recorded");
                continue;
            };
            let late = rec.at
                - job
                    .schedule
                    .as_ref()
                    .map_or(rec.at, |s| s.fire_instant(*nominal));
            self.runner.client.metrics().count(
                "watchbell_ticks_total",
                &[("outcome", "fired"), ("reason", "")],
                1.0,
            );
            self.runner
                .client
                .metrics()
                .observe_lateness(late.num_microseconds().unwrap_or(0) as f64 / 1e6);
            info!(job = %job.name, run = %uid, nominal = %nominal, late_ms = late.num_milliseconds(), "tick fired");
            self.spawn(job, uid);
        }
        Ok(())
    }

    /// Starts a run's task: QUEUED until its lane (overlap) and a slot are free, then executed.
    fn spawn(&mut self, job: &Job, uid: String) {
        let stop = Stop::child_of(&self.runs_stop);
        // The overlap lane is taken here when it is free, in tick order: a task taking it once
        // it first runs could be overtaken by the next tick's task, and the queued run would go
        // first.
        let lane = matches!(job.overlap, Overlap::Queue | Overlap::Replace).then(|| {
            let lane = self.lanes.entry(job.name.clone()).or_default().clone();
            match lane.clone().try_lock_owned() {
                Ok(held) => Lane::Held(held),
                Err(_) => Lane::Wait(lane),
            }
        });
        self.active
            .entry(job.name.clone())
            .or_default()
            .push(Active {
                uid: uid.clone(),
                stop: stop.clone(),
            });
        self.active_count += 1;
        self.runner.client.metrics().set_in_flight(self.in_flight());
        let (runner, slots, queue_stop, done) = (
            self.runner.clone(),
            self.slots.clone(),
            self.queue_stop.clone(),
            self.done_tx.clone(),
        );
        let (name, limits) = (job.name.clone(), Limits::of(job));
        let queue_behind_vendor = limits.asynchronous && job.overlap == Overlap::Queue;
        let task = async move {
            // Boxed: a run's whole state (its paging loop, its retries) is allocated when its
            // turn comes. Under saturation thousands of runs wait, each in about 800 bytes.
            let vendor =
                queue_behind_vendor.then_some((&runner.store, name.as_str(), uid.as_str()));
            let ran = match turn(lane, vendor, &slots, &queue_stop, &stop).await {
                Some(held) => {
                    Box::pin(run_task(
                        &runner,
                        &uid,
                        held,
                        &slots,
                        &queue_stop,
                        &stop,
                        limits,
                    ))
                    .await
                }
                None => Box::pin(runner.stop_waiting(&uid, stop.reason_or("shutdown")))
                    .await
                    .map(|_| ()),
            };
            if let Err(e) = ran {
                log_store_error("run failed to record", &e);
            }
            let _ = done.send(Done { job: name, uid });
        };
        self.tracker.spawn_on(task, super::workers::handle());
    }

    /// Forgets a finished run; true when firings of `after` jobs are worth a look soon.
    pub fn on_done(&mut self, done: &Done) -> bool {
        if let Some(list) = self.active.get_mut(&done.job) {
            let before = list.len();
            list.retain(|a| a.uid != done.uid);
            self.active_count -= before - list.len();
            if list.is_empty() {
                self.active.remove(&done.job);
            }
        }
        self.runner.client.metrics().set_in_flight(self.in_flight());
        self.has_after_jobs()
    }

    /// Runs whose owner is gone become STOPPED (`owner_lost`) and, when their job says so, are
    /// resumed here from their cursor. Runs whose owner is alive are left alone.
    pub async fn recover(&mut self) -> Result<(), StoreError> {
        let now = self.now();
        let open = self
            .runner
            .store
            .runs_in(&[RunStatus::Created, RunStatus::Queued, RunStatus::Running])
            .await?;
        for run in open {
            if crate::owner::is_alive(run.owner.as_deref(), run.lease_until, now) {
                continue;
            }
            let stopped = self
                .runner
                .store
                .transition(&run.uid, RunStatus::Stopped, "owner_lost", None, now)
                .await;
            if let Err(e) = stopped {
                log_store_error("could not stop a lost run", &e);
                continue;
            }
            warn!(job = %run.job, run = %run.uid, owner = run.owner.as_deref().unwrap_or("-"), status = "STOPPED", "run lost its owner");
            // Its process died mid-request: the identity slots it held are free now, not when
            // their lease ends.
            let holder = crate::lanes::holder(&run);
            if let Err(e) = self.runner.store.lane_free(holder).await {
                log_store_error("could not free a lost run's identity slots", &e);
            }
            match self.config.job(&run.job).cloned() {
                Some(job) if job.resume_interrupted => {
                    self.adopt(&job, run.uid, "resumed after owner_lost")
                        .await?;
                }
                _ => {}
            }
        }
        // A cluster's previous leader stopped these at a request boundary and handed over.
        for run in self.runner.store.handed_over().await? {
            if let Some(job) = self.config.job(&run.job).cloned() {
                self.adopt(&job, run.uid, "resumed after a handover")
                    .await?;
            }
        }
        Ok(())
    }

    /// Takes over a run (recovered, or unblocked) and starts it from its cursor.
    async fn adopt(&mut self, job: &Job, uid: String, why: &'static str) -> Result<(), StoreError> {
        self.runner.take_over(&uid, &self.owner, why).await?;
        info!(job = %job.name, run = %uid, why, "resuming run");
        self.spawn(job, uid);
        Ok(())
    }

    /// Periodic chores: renew leases, recover lost runs, resume blocked runs whose reset passed.
    pub async fn maintain(&mut self) -> Result<(), StoreError> {
        let now = self.now();
        if self.in_flight() > 0 {
            self.runner.store.renew_leases(&self.owner, now).await?;
        }
        self.recover().await?;
        self.fire_after().await?;
        let blocked = self.runner.store.blocked_due(now).await?;
        for run in blocked {
            if let Some(job) = self.config.job(&run.job).cloned() {
                self.adopt(&job, run.uid, "rate-limit reset passed").await?;
            }
        }
        Ok(())
    }

    /// Firings of `after` jobs (written when their source's run ended well, by whichever
    /// process ran it) become runs: all of a job's firings merged into one, when it has
    /// something to do; a firing that meets a run of its job in flight waits for it.
    async fn fire_after(&mut self) -> Result<(), StoreError> {
        let firings = self.runner.store.firings().await?;
        let mut by_job = std::collections::BTreeMap::<String, Vec<i64>>::new();
        for f in firings {
            by_job.entry(f.job).or_default().push(f.id);
        }
        let now = self.now();
        for (name, ids) in by_job {
            let Some(job) = self.config.job(&name).cloned() else {
                continue; // not in this job file (yet): left for a daemon that has it
            };
            if self.active.contains_key(&name) {
                continue;
            }
            let idle = !job.enabled
                || (job.request.inputs_from.is_some()
                    && self.runner.store.chain_pending(&name).await? == 0);
            if idle {
                info!(job = %name, firings = ids.len(), reason = if job.enabled { "no_inputs" } else { "disabled" }, "after: nothing to fire");
                self.runner.store.settle_firings(ids, None).await?;
                continue;
            }
            let new = job.new_run(crate::store::Trigger::After, None, Some(self.owner.clone()));
            let merged = ids.len();
            let uid = self.runner.store.fire_after(ids, new, now).await?;
            info!(job = %name, run = %uid, firings = merged, "after: run fired");
            self.spawn(&job, uid);
        }
        Ok(())
    }

    /// True when some job of the file runs `after` another.
    pub fn has_after_jobs(&self) -> bool {
        self.config.jobs.iter().any(|j| j.after.is_some())
    }

    /// Makes the store's chain links those of the job file.
    pub async fn set_links(&self) {
        let (links, afters) = self.config.links();
        if let Err(e) = self.runner.store.set_links(links, afters, self.now()).await {
            log_store_error("could not record the job file's chains", &e);
        }
    }

    /// When maintenance should run next: within [`super::MAINTENANCE`] while runs are in
    /// flight (their leases), else when a blocked run's reset or another process's lease comes
    /// due, and at least every [`super::SLOW_LOOK`] (a `trigger` started since may die).
    pub async fn next_chores(&self) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        if self.in_flight() > 0 {
            return now + super::MAINTENANCE;
        }
        let due = match self.runner.store.next_chore(&self.owner).await {
            Ok(at) => at,
            Err(e) => {
                log_store_error(
                    "cannot read when maintenance is due; it looks again soon",
                    &e,
                );
                return now + super::MAINTENANCE;
            }
        };
        let wait = due.map_or(super::SLOW_LOOK, |at| {
            (at - self.now()).to_std().unwrap_or_default()
        });
        // Firings of `after` jobs may be written by another process (a `trigger` of their
        // source): looked for every couple of seconds.
        let look = if self.has_after_jobs() {
            super::AFTER_LOOK
        } else {
            super::SLOW_LOOK
        };
        now + wait.min(look)
    }

    /// Runs in flight in this process.
    pub fn in_flight(&self) -> usize {
        self.active_count
    }

    /// systemd's `STATUS=`: jobs, runs in flight, the next tick.
    pub fn status_line(&self, next: Option<DateTime<Utc>>) -> String {
        let next = next.map_or_else(
            || "none".into(),
            |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        );
        format!(
            "{} jobs, {} runs in flight, next tick {next}",
            self.config.jobs.len(),
            self.in_flight()
        )
    }

    /// Stops taking work, lets runs in flight finish within the grace period, then stops the
    /// rest (STOPPED, resumable from their cursor).
    /// With `handover` (a cluster's leader that a live node follows), runs are stopped at
    /// their next request boundary at once (STOPPED, reason `handover`) for that node to resume,
    /// instead of given `shutdown_grace` to finish.
    pub async fn shutdown(&mut self, handover: bool) {
        if handover {
            info!(
                in_flight = self.in_flight(),
                "handing over: stopping runs for the next leader"
            );
            self.queue_stop.cancel();
            self.tracker.close();
            for a in self.active.values().flatten() {
                a.stop.stop(crate::runner::HANDOVER);
            }
            if tokio::time::timeout(super::STOP_WAIT, self.tracker.wait())
                .await
                .is_err()
            {
                warn!(
                    "some runs did not record their stop in time; the next leader recovers them as owner_lost"
                );
            }
            return;
        }
        let grace = self.config.daemon.shutdown_grace;
        info!(
            in_flight = self.in_flight(),
            grace_s = grace.as_secs(),
            "shutting down"
        );
        self.queue_stop.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            warn!(
                in_flight = self.in_flight(),
                "grace period over; stopping runs in flight"
            );
            self.runs_stop.cancel();
            if tokio::time::timeout(super::STOP_WAIT, self.tracker.wait())
                .await
                .is_err()
            {
                warn!(
                    "some runs did not record their stop in time; they will be recovered as owner_lost"
                );
            }
        }
    }
}

/// A run's overlap lane: already held, or to wait for.
enum Lane {
    Held(tokio::sync::OwnedMutexGuard<()>),
    Wait(Arc<Mutex<()>>),
}

/// What a run holds while it executes: its overlap lane (if its job has one) and a slot.
type Held = (
    Option<tokio::sync::OwnedMutexGuard<()>>,
    tokio::sync::OwnedSemaphorePermit,
);

/// A QUEUED run's turn: its overlap lane, then a slot (slots are handed out in order), or
/// `None` when it is stopped while it waits.
async fn turn(
    lane: Option<Lane>,
    vendor: Option<(&Store, &str, &str)>,
    slots: &Arc<Semaphore>,
    queue_stop: &CancellationToken,
    stop: &Stop,
) -> Option<Held> {
    let wait = async {
        let guard = match lane {
            Some(Lane::Held(g)) => Some(g),
            Some(Lane::Wait(l)) => Some(l.lock_owned().await),
            None => None,
        };
        // An async job's queued run also waits for the runs the vendor still has: they are in
        // flight until they end, not until they are sent.
        if let Some((store, job, uid)) = vendor {
            vendor_clear(store, job, uid).await;
        }
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        (guard, permit)
    };
    tokio::select! {
        held = wait => Some(held),
        () = queue_stop.cancelled() => None,
        () = stop.cancelled() => None,
    }
}

/// Returns once `job` has no async run open other than `uid` (looked at once a second).
async fn vendor_clear(store: &Store, job: &str, uid: &str) {
    loop {
        let (j, u) = (job.to_string(), uid.to_string());
        match store
            .call(move |c| crate::store::batches::open_of_job(c, &j, &u))
            .await
        {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => log_store_error("cannot see the job's async runs; waiting", &e),
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// A run's task once its turn came: executes it, and waits out its retries' backoffs without
/// holding a slot.
async fn run_task(
    runner: &Runner,
    uid: &str,
    held: Held,
    slots: &Arc<Semaphore>,
    queue_stop: &CancellationToken,
    stop: &Stop,
    limits: Limits,
) -> Result<(), StoreError> {
    let mut done = runner.execute(uid, &limits, stop).await?;
    // A retry: the slot and the overlap lane are given back while the backoff runs.
    drop(held);
    // A sent async run waits in QUEUED for the vendor, not for a retry here.
    while done.status == RunStatus::Queued && !limits.asynchronous {
        let wait = done
            .postponed_until
            .map(|at| {
                (at - runner.store.now(&runner.clock))
                    .to_std()
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = queue_stop.cancelled() => return runner.stop_waiting(uid, "shutdown").await.map(|_| ()),
            () = stop.cancelled() => return runner.stop_waiting(uid, stop.reason_or("shutdown")).await.map(|_| ()),
        }
        let _permit = slots
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        done = runner.execute(uid, &limits, stop).await?;
    }
    Ok(())
}
