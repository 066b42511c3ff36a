//! Completeness: an async run ends only when every batch the vendor's callback log lists is
//! stored. For a closing run (its final callback came) and for any run silent for
//! `callback_timeout`, the sweep reads `GET /runs/{uid}` and the run's whole callback log; an
//! original the vendor gave up on, or says it delivered but that is not stored, is replayed once
//! it is older than `replay_after` (at most 3 times each), after the receiver has reached
//! itself through `public_url`. When the replays are spent the run ends with what it has:
//! `PARTIAL_SUCCEEDED` with `callbacks_lost N`, or FAILED when nothing arrived. A create never
//! confirmed is adopted from the API's runs or, after `callback_timeout`, ends FAILED
//! `create_unconfirmed` without being sent again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::server::Shared;
use crate::api::ApiFailure;
use crate::api::runs::LogEntry;
use crate::config::{Config, Receiver};
use crate::runner::{Limits, Runner};
use crate::status::RunStatus;
use crate::store::batches::{self, AsyncState, LOST_LABEL, lost_message};
use crate::store::{LastError, RunRecord, StoreError, parse_ts, persistently};

/// Recent async runs of an action looked through for a create whose answer was lost.
const ADOPT_LOOK: usize = 200;

/// What the sweep needs.
pub struct Sweep {
    pub runner: Arc<Runner>,
    pub receiver: Receiver,
    pub shared: Arc<Shared>,
    pub config: tokio::sync::watch::Receiver<Arc<Config>>,
    /// Plain HTTP for the self-probe: never the API key.
    pub http: reqwest::Client,
    /// Per received remote job: the nominal instants accounted up to, and when its recent
    /// runs were last looked through for ones whose callbacks were all lost.
    pub remote: tokio::sync::Mutex<HashMap<String, Accounted>>,
}

/// A received remote job's nominal instants accounted up to, and when its recent runs were
/// last looked through.
pub type Accounted = (DateTime<Utc>, DateTime<Utc>);

/// What the sweep decided for one run.
enum Step {
    /// Nothing to do yet.
    Wait,
    /// The run ended.
    Ended(Box<RunRecord>),
}

impl Sweep {
    /// How often the sweep looks: often enough that replays follow `replay_after`.
    pub fn every(&self) -> Duration {
        (self
            .receiver
            .replay_after
            .min(self.receiver.callback_timeout)
            / 2)
        .clamp(Duration::from_millis(200), Duration::from_secs(30))
    }

    /// Received remote jobs: ticks that got no run within `callback_timeout` are recorded
    /// skipped `remote_not_run`, and runs whose callbacks were all lost are adopted.
    pub async fn remote_pass(&self) -> Result<(), StoreError> {
        let jobs: Vec<crate::config::Job> = self
            .config
            .borrow()
            .jobs
            .iter()
            .filter(|j| j.runner == crate::config::Runner::Remote && j.receive && j.enabled)
            .cloned()
            .collect();
        let now = self.now();
        let timeout = chrono::Duration::from_std(self.receiver.callback_timeout)
            .unwrap_or(chrono::Duration::MAX);
        for job in jobs {
            let Some(schedule) = job.schedule.as_ref() else {
                continue;
            };
            let seen = self.remote.lock().await.get(&job.name).copied();
            let (from, looked) = if let Some(s) = seen {
                s
            } else {
                let last = self.runner.store.last_ticks(vec![job.name.clone()]).await?;
                (last.get(&job.name).copied().unwrap_or(now), now)
            };
            let to = now - timeout;
            let mut upto = from;
            if to > from {
                let missed = super::remote::nominals_between(schedule, from, to, 1000);
                upto = missed.last().copied().unwrap_or(to);
                let name = job.name.clone();
                let n = self
                    .store(move |c| batches::not_run(c, &name, &missed))
                    .await?;
                if n > 0 {
                    warn!(job = %job.name, ticks = n, reason = "remote_not_run", "remote ticks with no run");
                }
            }
            let looked = if now - looked >= timeout {
                self.adopt_lost(&job).await;
                now
            } else {
                looked
            };
            self.remote
                .lock()
                .await
                .insert(job.name.clone(), (upto, looked));
        }
        Ok(())
    }

    /// Recent runs of a received remote job that no callback brought here: adopted (their
    /// batches then come by replay).
    async fn adopt_lost(&self, job: &crate::config::Job) {
        let recent = match self.runner.client.recent_async_runs(&job.action, 100).await {
            Ok(r) => r,
            Err(e) => {
                warn!(job = %job.name, error = %e, "cannot list the remote job's runs");
                return;
            }
        };
        for r in recent
            .iter()
            .filter(|r| super::remote::confirms(&self.shared, job, r))
        {
            let api = r.uid.clone();
            let known = self.store(move |c| batches::run_of_api(c, &api)).await;
            if matches!(known, Ok(None)) {
                match super::remote::create(&self.shared, job, r, "adopted").await {
                    Ok(uid) => {
                        info!(job = %job.name, run = %uid, api_run = %r.uid, "remote run adopted: no callback of it arrived");
                    }
                    Err(e) => warn!(job = %job.name, error = %e, "remote run not adopted"),
                }
            }
        }
    }

    /// One look at every open async run; how many ended.
    pub async fn pass(&self) -> Result<usize, StoreError> {
        let open = self.runner.store.call(|c| batches::open(c)).await?;
        let mut ended = 0;
        for (run, st) in open {
            match self.check(&run, &st).await {
                Ok(Step::Ended(done)) => {
                    ended += 1;
                    let limits = self
                        .config
                        .borrow()
                        .job(&done.job)
                        .map_or(Limits::bounds(0, Duration::ZERO), Limits::of);
                    info!(job = %done.job, run = %done.uid, status = %done.status, items = done.items, "async run finished");
                    if !self.retried(&done, &limits).await? {
                        self.runner.ended(&done, &limits).await?;
                    }
                }
                Ok(Step::Wait) => {}
                Err(Failure::Api(e)) => {
                    warn!(job = %run.job, run = %run.uid, error = %e, "async run not checked; the sweep tries again");
                }
                Err(Failure::Store(e)) => return Err(e),
            }
        }
        Ok(ended)
    }

    fn now(&self) -> DateTime<Utc> {
        self.runner.clock.now()
    }

    fn older(&self, at: Option<DateTime<Utc>>, than: Duration) -> bool {
        let than = chrono::Duration::from_std(than).unwrap_or(chrono::Duration::MAX);
        at.is_none_or(|t| self.now() - t >= than)
    }

    async fn check(&self, run: &RunRecord, st: &AsyncState) -> Result<Step, Failure> {
        let timeout = self.receiver.callback_timeout;
        let silent = self.older(st.heard_at, timeout);
        if st.sent_at.is_none() || !(st.closing || silent) {
            return Ok(Step::Wait);
        }
        let api_uid = match &st.api_uid {
            Some(u) => u.clone(),
            None => match self.adopt(run).await? {
                Some(u) => u,
                None if self.older(st.sent_at, timeout) => {
                    let e = error(
                        "CREATE_UNCONFIRMED",
                        "the create was never confirmed by the API; it is not sent again",
                    );
                    return self
                        .finish(run, RunStatus::Failed, "create_unconfirmed", Some(e), 0)
                        .await;
                }
                None => return Ok(Step::Wait),
            },
        };
        let Some(remote) = self.runner.client.get_run(&api_uid).await? else {
            let e = error(
                "RUN_NOT_FOUND",
                &format!("the API does not know run {api_uid}"),
            );
            return self
                .finish(run, RunStatus::Failed, "run_not_found", Some(e), 0)
                .await;
        };
        let status = remote
            .status
            .as_deref()
            .and_then(|s| s.parse::<RunStatus>().ok());
        let now = self.now();
        let (run_id, said) = (st.run_id, status.filter(|s| s.is_final()));
        self.store(move |c| batches::heard(c, run_id, said.map(RunStatus::as_str), now))
            .await?;
        let Some(status) = status.filter(|s| s.is_final()) else {
            // BLOCKED or SCHEDULED at the vendor: still running here, with when it resumes.
            let until = remote.postponed_until.as_deref().and_then(parse_ts);
            if until != run.postponed_until {
                persistently(|| self.runner.store.set_postponed(&run.uid, until)).await?;
            }
            return Ok(Step::Wait);
        };
        let log = self.runner.client.callback_log(&api_uid).await?;
        let stored = self.store(move |c| batches::batch_uids(c, run_id)).await?;
        let missing: Vec<&LogEntry> = log
            .iter()
            .filter(|e| e.is_original())
            .filter(|e| e.batch_uid.as_ref().is_none_or(|b| !stored.contains(b)))
            .collect();
        if missing.is_empty() {
            return self.finish(run, status, "complete", None, 0).await;
        }
        self.repair(run, st, &log, &missing, status, !stored.is_empty())
            .await
    }

    /// Replays what is missing and may be replayed now; ends the run when nothing more can come.
    async fn repair(
        &self,
        run: &RunRecord,
        st: &AsyncState,
        log: &[LogEntry],
        missing: &[&LogEntry],
        status: RunStatus,
        some_stored: bool,
    ) -> Result<Step, Failure> {
        let run_id = st.run_id;
        let asked = self.store(move |c| batches::replays(c, run_id)).await?;
        let after = self.receiver.replay_after;
        let mut due = Vec::new();
        let mut waiting = false;
        for m in missing {
            let children: Vec<&LogEntry> = log
                .iter()
                .filter(|e| e.parent_uid.as_deref() == Some(m.uid.as_str()))
                .collect();
            let pending = |e: &LogEntry| !e.failed() && !self.older(ts(e), after);
            if pending(m) || children.iter().any(|c| pending(c)) {
                waiting = true;
            } else if asked.get(&m.uid).copied().unwrap_or(0) < 3 {
                due.push(*m);
            }
        }
        if !due.is_empty() {
            if !self.probe(run, st).await? {
                return self.unreachable(run, st, status, some_stored).await;
            }
            for m in due {
                let (uid, batch) = (m.uid.clone(), m.batch_uid.clone().unwrap_or_default());
                let now = self.now();
                let n = self
                    .store(move |c| batches::count_replay(c, run_id, &uid, &batch, now))
                    .await?;
                info!(job = %run.job, run = %run.uid, callback = %m.uid, replay = n, "replaying a missing callback");
                if let Err(e) = self.runner.client.replay_callback(&m.uid).await {
                    warn!(job = %run.job, run = %run.uid, callback = %m.uid, error = %e, "replay refused");
                }
            }
            return Ok(Step::Wait);
        }
        if waiting {
            return Ok(Step::Wait);
        }
        let lost = missing.len() as u32;
        let e = error(LOST_LABEL, &lost_message(lost));
        warn!(job = %run.job, run = %run.uid, lost, "callbacks lost after every replay");
        let to = if some_stored {
            RunStatus::PartialSucceeded
        } else {
            RunStatus::Failed
        };
        self.finish(run, to, "callbacks_lost", Some(e), lost).await
    }

    /// A run the vendor ended `FAILED` or `PARTIAL_SUCCEEDED` (never one that lost callbacks),
    /// resumed at the API while its job's `retry` allows: true when it was.
    async fn retried(&self, done: &RunRecord, limits: &Limits) -> Result<bool, StoreError> {
        let Some(policy) = limits.retry else {
            return Ok(false);
        };
        let vendor_failed = matches!(done.status, RunStatus::Failed | RunStatus::PartialSucceeded)
            && done.last_error.is_none();
        if !vendor_failed || done.retry_count >= policy.attempts {
            return Ok(false);
        }
        let uid = done.uid.clone();
        let Some(api) = self
            .store(move |c| batches::state(c, &uid))
            .await?
            .and_then(|s| s.api_uid)
        else {
            return Ok(false);
        };
        if let Err(e) = self.runner.client.resume_run(&api).await {
            warn!(job = %done.job, run = %done.uid, error = %e, "the API did not resume the run; it stays ended");
            return Ok(false);
        }
        let why = format!(
            "retry {}/{} (resumed at the API)",
            done.retry_count + 1,
            policy.attempts
        );
        let (uid, now) = (done.uid.clone(), self.now());
        self.store(move |c| batches::resumed(c, &uid, (&why, true), now))
            .await?;
        info!(job = %done.job, run = %done.uid, "async run resumed at the API by its retry policy");
        Ok(true)
    }

    /// A create whose answer was lost, found among the action's recent async runs by the run's
    /// own callback URL and bound.
    async fn adopt(&self, run: &RunRecord) -> Result<Option<String>, Failure> {
        let url = self.receiver.callback_url("r", &run.uid);
        let recent = self
            .runner
            .client
            .recent_async_runs(&run.action_name, ADOPT_LOOK)
            .await?;
        let Some(found) = recent
            .iter()
            .find(|r| r.callback_url() == Some(url.as_str()))
        else {
            return Ok(None);
        };
        let (uid, api) = (run.uid.clone(), found.uid.clone());
        let bound = self.store(move |c| batches::bind(c, &uid, &api)).await?;
        if bound {
            info!(job = %run.job, run = %run.uid, api_run = %found.uid, "unconfirmed create found and adopted");
            let uid = run.uid.clone();
            let now = self.now();
            self.store(move |c| batches::accepted(c, &uid, "adopted", now).map(|_| ()))
                .await?;
        }
        Ok(bound.then(|| found.uid.clone()))
    }

    /// Whether the receiver answers through `public_url` (the vendor's way in).
    async fn probe(&self, run: &RunRecord, st: &AsyncState) -> Result<bool, Failure> {
        let nonce = super::token::probe(&run.uid, &st.token_hash);
        let url = self.receiver.callback_url("probe", &nonce);
        let ok = self
            .http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 204);
        let run_id = st.run_id;
        let since = match (ok, st.probe_failing_since) {
            (true, _) => None,
            (false, Some(s)) => Some(s),
            (false, None) => {
                warn!(job = %run.job, run = %run.uid, url = %url, "the receiver cannot reach itself through public_url; no replay asked");
                Some(self.now())
            }
        };
        if since != st.probe_failing_since {
            self.store(move |c| batches::set_probe_failing(c, run_id, since))
                .await?;
        }
        Ok(ok)
    }

    /// The probe keeps failing: after `callback_timeout` the run ends `receiver_unreachable`.
    async fn unreachable(
        &self,
        run: &RunRecord,
        st: &AsyncState,
        status: RunStatus,
        some_stored: bool,
    ) -> Result<Step, Failure> {
        let since = st.probe_failing_since.or(Some(self.now()));
        if !self.older(since, self.receiver.callback_timeout) {
            return Ok(Step::Wait);
        }
        let to = if some_stored && status != RunStatus::Failed {
            RunStatus::PartialSucceeded
        } else {
            RunStatus::Failed
        };
        let e = error(
            "RECEIVER_UNREACHABLE",
            "the receiver could not reach itself through public_url for callback_timeout",
        );
        self.finish(run, to, "receiver_unreachable", Some(e), 0)
            .await
    }

    async fn finish(
        &self,
        run: &RunRecord,
        to: RunStatus,
        reason: &'static str,
        error: Option<LastError>,
        lost: u32,
    ) -> Result<Step, Failure> {
        let (uid, now) = (run.uid.clone(), self.now());
        let done = self
            .store(move |c| batches::finish(c, &uid, (to, reason), error.as_ref(), lost, now))
            .await?;
        Ok(Step::Ended(Box::new(done)))
    }

    async fn store<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: Fn(&mut crate::store::db::Db) -> crate::store::Result<R> + Clone + Send + 'static,
    {
        persistently(|| self.runner.store.call(f.clone())).await
    }
}

fn ts(e: &LogEntry) -> Option<DateTime<Utc>> {
    e.created_at.as_deref().and_then(parse_ts)
}

fn error(label: &str, message: &str) -> LastError {
    LastError {
        label: label.into(),
        message: message.into(),
    }
}

/// Why a run was not checked this time.
enum Failure {
    Api(ApiFailure),
    Store(StoreError),
}

impl From<ApiFailure> for Failure {
    fn from(e: ApiFailure) -> Failure {
        Failure::Api(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::Store(e)
    }
}
