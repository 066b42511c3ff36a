//! `watchbell run`: wires the scheduler (when), the runner (how a run goes) and the store (what
//! happened), and handles what a long-running service must: reloads that never break a running
//! schedule, crash recovery, a graceful shutdown, and systemd's notify protocol.

pub mod credits;
mod decide;
mod dispatch;
mod notify;
pub mod observe;
mod reload;
pub mod workers;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::callbacks::Deliverer;
use crate::config::Config;
use crate::runner::Runner;
use crate::scheduler::{Due, Heartbeat, Scheduler};
use crate::store::{SkipReason, StoreError};

pub use dispatch::{entries, last_ticks};

/// How often leases are renewed, lost runs recovered and blocked runs re-checked while runs are
/// in flight.
const MAINTENANCE: Duration = Duration::from_secs(10);
/// How often maintenance looks when nothing is due: an idle daemon sleeps this long.
const SLOW_LOOK: Duration = Duration::from_mins(5);

/// How soon after a run of this process ends firings of `after` jobs are looked for.
const AFTER_SOON: Duration = Duration::from_millis(100);

/// How often firings of `after` jobs are looked for, when the job file has some.
const AFTER_LOOK: Duration = Duration::from_secs(2);
/// How long stopped runs get to record their final status once told to stop.
const STOP_WAIT: Duration = Duration::from_secs(10);
/// How soon work that met a database fault (ticks, a reload) is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// What the daemon is given.
pub struct Daemon {
    pub config: Config,
    /// The job file, re-read on reload.
    pub config_path: PathBuf,
    pub runner: Runner,
    /// SIGHUP (or a test) asks for a reload through this.
    pub reloads: mpsc::Receiver<()>,
    pub heartbeat: Heartbeat,
    /// Where `/metrics` and `/healthz` are served, when asked for.
    pub metrics: Option<tokio::net::TcpListener>,
    /// Where callbacks arrive (`[receiver]`, bound; its public URL set).
    pub receiver: Option<tokio::net::TcpListener>,
    /// How often the account's credits are read ([`credits::EVERY`]; tests go faster).
    pub credits_every: Duration,
    /// Why the ticks that fell due before this start were missed: the daemon was down, or
    /// (a cluster node that took the lead) another node led and stopped.
    pub missed: SkipReason,
    /// Set (before `shutdown` resolves) when a cluster's leader stops for a live node to take
    /// over: runs stop at once for it to resume ([`dispatch::Dispatch::shutdown`]).
    pub handover: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Daemon {
    /// Runs until `shutdown` resolves, then drains and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), StoreError> {
        let Daemon {
            config,
            config_path,
            runner,
            mut reloads,
            heartbeat,
            metrics,
            receiver,
            credits_every,
            missed,
            handover,
        } = self;
        let clock = runner.clock.clone();
        let owner = crate::owner::this_process(clock.now());
        info!(owner = %owner, jobs = config.jobs.len(), db = %runner.store.path().display(), "daemon starting");
        let source = config.source;
        let mut d = dispatch::Dispatch::new(runner, config, owner);
        d.missed = missed;
        d.set_links().await;
        if let Err(e) = d.recover().await {
            log_store_error("could not recover lost runs; maintenance will retry", &e);
        }
        let last = last_ticks_patiently(&d).await;
        let entries = dispatch::entries(&d.config, &last);
        let (due_tx, mut due_rx) = mpsc::channel(64);
        let (cmd_tx, cmd_rx) = mpsc::channel(8);
        let stop_scheduler = CancellationToken::new();
        let scheduler = Scheduler::new(clock.clone(), entries);
        let sched_task =
            tokio::spawn(scheduler.run(due_tx, cmd_rx, heartbeat.clone(), stop_scheduler.clone()));
        notify::ready();
        info!(jobs = d.config.jobs.len(), "schedule armed");

        let stop_background = CancellationToken::new();
        let deliveries = background(&d, (metrics, receiver), &heartbeat, &stop_background);

        let mut syncs = tokio::time::interval(d.config.daemon.sync_interval);
        let sync_running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut watcher = reload::FileWatch::new(&config_path, source);
        // A change saved while the daemon started (after the file was read) is applied now.
        if watcher.changed() {
            reload(&mut d, &config_path, "file changed", &cmd_tx).await;
        }
        let mut chores_at = tokio::time::Instant::now();
        let mut watchdog = notify::watchdog_interval().map(tokio::time::interval);
        // Retention, once a day (the first a minute after start, so start stays quick).
        let mut prunes = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_mins(1),
            Duration::from_hours(24),
        );
        let mut credits = tokio::time::interval(credits_every);
        let mut kept = Kept::default();
        let mut chores_put_off: Option<tokio::time::Instant> = None;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(batch) = due_rx.recv() => {
                    kept.record(&mut d, batch).await;
                    chores_at = soon_if_busy(&d, chores_at);
                }
                () = sleep_until(kept.retry_at) => {
                    let batch = std::mem::take(&mut kept.ticks);
                    info!(ticks = batch.len(), "recording ticks kept back by a database fault");
                    kept.record(&mut d, batch).await;
                }
                // A run that ended well may have fired `after` jobs: look soon.
                Some(done) = d.done.recv() => if d.on_done(&done) {
                    chores_at = chores_at.min(tokio::time::Instant::now() + AFTER_SOON);
                },
                Some(()) = reloads.recv() => {
                    reload(&mut d, &config_path, "signal", &cmd_tx).await;
                    remote_sync(&d, &sync_running, "reload");
                }
                () = watcher.wait() => {
                    if watcher.changed() {
                        reload(&mut d, &config_path, "file changed", &cmd_tx).await;
                        remote_sync(&d, &sync_running, "reload");
                    }
                }
                _ = syncs.tick() => remote_sync(&d, &sync_running, "interval"),
                _ = prunes.tick(), if d.config.daemon.retain.is_some() => prune(&d),
                _ = credits.tick() => {
                    credits::read(&d.runner, &d.credits);
                    // Credits back unblock runs: resumed by the chores that follow the reading.
                    chores_at = chores_at.min(tokio::time::Instant::now() + Duration::from_secs(2));
                }
                () = tokio::time::sleep_until(chores_at) => {
                    chores_at = chores(&mut d, &heartbeat, clock.now(), &mut chores_put_off).await;
                }
                Some(_) = async { match watchdog.as_mut() { Some(w) => Some(w.tick().await), None => None } } => {
                    // Ping only while the scheduler loop itself is alive.
                    if heartbeat.alive(clock.now()).is_ok() {
                        notify::watchdog();
                    } else {
                        warn!("scheduler loop stalled; withholding the watchdog ping");
                    }
                }
            }
        }

        notify::stopping();
        stop_scheduler.cancel();
        let _ = sched_task.await;
        wind_down(d, &handover, stop_background, deliveries).await;
        Ok(())
    }
}

/// The deliverer, and `/metrics` and `/healthz` when asked for; they stop with `stop`.
fn background(
    d: &dispatch::Dispatch,
    (metrics, receiver): (
        Option<tokio::net::TcpListener>,
        Option<tokio::net::TcpListener>,
    ),
    heartbeat: &Heartbeat,
    stop: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    if let Some(listener) = receiver {
        crate::receiver::serve(d.runner.clone(), listener, d.watch_config(), stop);
    }
    let clock = d.runner.clock.clone();
    let mut deliverer = Deliverer::new(d.runner.store.clone(), clock.clone(), d.watch_config());
    deliverer.metrics = d.runner.client.metrics().clone();
    let deliveries = tokio::spawn(deliverer.run(stop.clone()));
    if let Some(listener) = metrics {
        observe::serve(
            listener,
            Some(heartbeat.clone()),
            (
                d.runner.store.clone(),
                d.watch_config(),
                d.runner.client.metrics().clone(),
            ),
            clock,
            stop.clone(),
        );
    }
    deliveries
}

/// Where each job's schedule resumes: read until the database answers.
async fn last_ticks_patiently(
    d: &dispatch::Dispatch,
) -> std::collections::HashMap<String, chrono::DateTime<chrono::Utc>> {
    loop {
        match dispatch::last_ticks(&d.config, &d.runner.store).await {
            Ok(last) => return last,
            Err(e) => {
                log_store_error("cannot read the last ticks; retrying", &e);
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// Applies a reload; a database fault during it is logged, and the next change or signal retries.
async fn reload(
    d: &mut dispatch::Dispatch,
    path: &std::path::Path,
    why: &str,
    scheduler: &mpsc::Sender<crate::scheduler::Command>,
) {
    if let Err(e) = reload::apply(d, path, why, scheduler).await {
        log_store_error("reload could not be recorded", &e);
    }
}

/// Ticks whose recording failed (a busy or full database): kept, and recorded a little later.
#[derive(Default)]
struct Kept {
    ticks: Vec<Due>,
    retry_at: Option<tokio::time::Instant>,
}

impl Kept {
    async fn record(&mut self, d: &mut dispatch::Dispatch, batch: Vec<Due>) {
        match d.on_batch(batch).await {
            Ok(()) => self.retry_at = self.retry_at.filter(|_| !self.ticks.is_empty()),
            Err(back) => {
                self.ticks.extend(back);
                self.retry_at = Some(tokio::time::Instant::now() + RETRY);
            }
        }
    }
}

/// Prunes finished runs older than `[daemon] retain` in the background.
fn prune(d: &dispatch::Dispatch) {
    let Some(retain) = d.config.daemon.retain else {
        return;
    };
    let (store, now) = (d.runner.store.clone(), d.runner.clock.now());
    let before = now - chrono::Duration::from_std(retain).unwrap_or(chrono::Duration::MAX);
    tokio::spawn(async move {
        match store.prune(before, false).await {
            Ok(p) => info!(
                runs = p.runs,
                items = p.items,
                kept_last = p.kept_last,
                reclaimed_kib = p.reclaimed_bytes / 1024,
                switched_vacuum = p.switched_vacuum,
                "retention: old runs pruned"
            ),
            Err(e) => log_store_error("retention prune failed; it runs again tomorrow", &e),
        }
    });
}

/// How close to a tick the chores may start: leases of 10,000 runs in flight take tens of
/// milliseconds to renew, and a tick batch arriving meanwhile waited for them.
const CLEAR: chrono::Duration = chrono::Duration::milliseconds(300);

/// Maintenance, then the systemd status line; returns when the next chores are due.
async fn chores(
    d: &mut dispatch::Dispatch,
    heartbeat: &Heartbeat,
    now: chrono::DateTime<chrono::Utc>,
    put_off_since: &mut Option<tokio::time::Instant>,
) -> tokio::time::Instant {
    if let Some(later) = put_off(heartbeat, now, put_off_since) {
        return later;
    }
    if let Err(e) = d.maintain().await {
        log_store_error("maintenance failed; it runs again shortly", &e);
    }
    notify::status(&d.status_line(heartbeat.next_fire()));
    d.next_chores().await
}

/// Chores hold the daemon's loop: with a tick due within [`CLEAR`] of `now`, they are put off
/// until just after it (`Some`: when), for at most [`MAINTENANCE`] since `since`, should ticks
/// never leave a gap.
fn put_off(
    heartbeat: &Heartbeat,
    now: chrono::DateTime<chrono::Utc>,
    since: &mut Option<tokio::time::Instant>,
) -> Option<tokio::time::Instant> {
    let at = tokio::time::Instant::now();
    let until = heartbeat.next_fire()? - now;
    if until >= CLEAR || at >= *since.get_or_insert(at) + MAINTENANCE {
        *since = None;
        return None;
    }
    Some(
        at + (until.max(chrono::Duration::zero()) + CLEAR / 3)
            .to_std()
            .unwrap_or_default(),
    )
}

/// The next chores, brought forward to [`MAINTENANCE`] from now when runs are in flight (their
/// leases need renewing).
fn soon_if_busy(d: &dispatch::Dispatch, at: tokio::time::Instant) -> tokio::time::Instant {
    if d.in_flight() > 0 {
        at.min(tokio::time::Instant::now() + MAINTENANCE)
    } else {
        at
    }
}

/// Resolves at `at`, or never.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The runs drained, then the background tasks (deliveries, receiver, metrics) stopped.
async fn wind_down(
    mut d: dispatch::Dispatch,
    handover: &std::sync::atomic::AtomicBool,
    stop_background: CancellationToken,
    deliveries: tokio::task::JoinHandle<()>,
) {
    d.shutdown(handover.load(std::sync::atomic::Ordering::Acquire))
        .await;
    stop_background.cancel();
    let _ = deliveries.await;
    info!("daemon stopped");
}

/// Reconciles remote schedules in the background (one at a time), so a slow or failing API
/// never delays a tick. The first tick of the interval makes this run at start.
fn remote_sync(
    d: &dispatch::Dispatch,
    running: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    why: &'static str,
) {
    use std::sync::atomic::Ordering;
    if running.swap(true, Ordering::AcqRel) {
        return;
    }
    let (config, runner, running) = (d.config.clone(), d.runner.clone(), running.clone());
    tokio::spawn(async move {
        // Never at once with a `watchbell sync` (two creations of one schedule).
        let _turn = match runner.store.sync_turn(Duration::ZERO).await {
            Ok(Some(turn)) => turn,
            Ok(None) => {
                info!(
                    why,
                    "a sync from the CLI is running; this reconcile is skipped"
                );
                running.store(false, Ordering::Release);
                return;
            }
            Err(e) => {
                warn!(why, error = %e, "cannot take the sync's turn; will retry");
                running.store(false, Ordering::Release);
                return;
            }
        };
        let r = crate::sync::reconcile(
            &config,
            &runner.client,
            Some(&runner.store),
            &runner.clock,
            false,
            false,
        )
        .await;
        match r {
            Ok((steps, applied)) => {
                let changed = applied.len();
                let failed = applied.iter().filter(|a| a.result.is_err()).count();
                let orphans = steps.iter().filter(|s| !s.changes()).count();
                if changed + orphans > 0 {
                    info!(why, changed, failed, orphans, "remote schedules reconciled");
                }
            }
            Err(e) => warn!(why, error = %e, "remote schedule sync failed; will retry"),
        }
        running.store(false, Ordering::Release);
    });
}

/// Logs a store failure that should not take the daemon down.
pub(crate) fn log_store_error(what: &str, e: &StoreError) {
    error!(error = %e, "{what}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chores_wait_for_a_tick_due_in_a_moment_but_not_for_ever() {
        let heartbeat = Heartbeat::default();
        let now = crate::store::parse_ts("2026-06-01T10:00:00.900Z").unwrap();
        let mut since = None;
        heartbeat.set_next_fire(Some(now + chrono::Duration::milliseconds(100)));
        let later = put_off(&heartbeat, now, &mut since).expect("a tick in 100 ms");
        let wait = later - tokio::time::Instant::now();
        assert!(wait > Duration::from_millis(100) && wait <= Duration::from_millis(200));
        heartbeat.set_next_fire(Some(now + chrono::Duration::milliseconds(900)));
        assert_eq!(
            put_off(&heartbeat, now, &mut since),
            None,
            "a gap long enough"
        );
        assert_eq!(since, None);
        heartbeat.set_next_fire(Some(now + chrono::Duration::milliseconds(50)));
        since = Some(tokio::time::Instant::now() - MAINTENANCE);
        assert_eq!(
            put_off(&heartbeat, now, &mut since),
            None,
            "put off long enough"
        );
    }
}
