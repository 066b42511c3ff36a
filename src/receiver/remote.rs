//! Runs of remote schedules with `receive = true`. The vendor creates them on its cron; the first
//! callback of one (or the sweep, when every callback was lost) makes it a local run, but only
//! once `GET /runs/{uid}` confirms it exists with the job's action and the job's callback URL:
//! a leaked token alone cannot create runs. Each run is the run of its job's latest nominal tick
//! at or before the vendor created it; a tick that gets no run within `callback_timeout` is
//! recorded skipped `remote_not_run`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::server::{Shared, unavailable};
use crate::api::runs::RemoteRun;
use crate::config::{Job, Runner as RunnerKind};
use crate::schedule::Schedule;
use crate::store::batches::{self, ASYNC_OWNER, TickNote};
use crate::store::{StoreError, Trigger, parse_ts};

/// Nominal instants looked through at most, going back from a run's creation.
const MAX_LOOK: usize = 100_000;

/// A received remote job named `name` in the file as it stands.
pub fn receiving(sh: &Shared, name: &str) -> Option<Job> {
    sh.config
        .borrow()
        .job(name)
        .filter(|j| j.runner == RunnerKind::Remote && j.receive)
        .cloned()
}

/// The local run of API run `api_uid` of job `name`, created once the API confirms it; `None`
/// when it does not.
pub async fn adopt(
    sh: &Shared,
    name: &str,
    api_uid: &str,
    token_hash: &str,
) -> Result<Option<String>, Response> {
    let Some(job) = receiving(sh, name) else {
        return Ok(None);
    };
    let remote = match sh.runner.client.get_run(api_uid).await {
        Ok(r) => r,
        Err(e) => {
            warn!(job = %name, api_run = %api_uid, error = %e, "cannot confirm a remote run; answered 503 so it is delivered again");
            return Err((StatusCode::SERVICE_UNAVAILABLE, "cannot confirm the run").into_response());
        }
    };
    let Some(remote) = remote.filter(|r| confirms(sh, &job, r)) else {
        warn!(job = %name, api_run = %api_uid, "a callback for a run the API does not confirm for this job");
        return Ok(None);
    };
    create(sh, &job, &remote, token_hash)
        .await
        .map(Some)
        .map_err(|e| unavailable(&e))
}

/// True when the API's run is one of `job`'s schedule: its action and this job's callback URL.
pub fn confirms(sh: &Shared, job: &Job, r: &RemoteRun) -> bool {
    let url = sh
        .runner
        .receiver
        .as_ref()
        .map(|rc| rc.callback_url("s", &job.name));
    r.action_name.as_deref() == Some(job.action.as_str()) && r.callback_url() == url.as_deref()
}

/// Creates the local run of a confirmed remote run, accounted to its nominal tick.
pub async fn create(
    sh: &Shared,
    job: &Job,
    remote: &RemoteRun,
    token_hash: &str,
) -> Result<String, StoreError> {
    let now = sh.clock.now();
    let created = remote
        .created_at
        .as_deref()
        .and_then(parse_ts)
        .unwrap_or(now);
    let nominal = job
        .schedule
        .as_ref()
        .and_then(|s| nominal_at_or_before(s, created));
    let new = job.new_run(Trigger::Remote, nominal, Some(ASYNC_OWNER.to_string()));
    let (api, hash) = (remote.uid.clone(), token_hash.to_string());
    let (uid, note) = sh
        .store
        .call(move |c| batches::adopt_remote(c, &new, (&api, &hash), now))
        .await?;
    match note {
        TickNote::Fired => {
            info!(job = %job.name, run = %uid, api_run = %remote.uid, nominal = ?nominal, "remote run received");
        }
        TickNote::Extra => {
            warn!(job = %job.name, run = %uid, api_run = %remote.uid, nominal = ?nominal, reason = "remote_extra_run", "a second remote run for one tick; stored without a tick");
        }
        TickNote::Untimed => {}
    }
    Ok(uid)
}

/// The latest nominal instant of `s` at or before `t` (within a bounded look back).
pub fn nominal_at_or_before(s: &Schedule, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    for back in [
        chrono::Duration::hours(2),
        chrono::Duration::days(2),
        chrono::Duration::days(40),
    ] {
        let mut last = None;
        let mut at = t - back;
        for _ in 0..MAX_LOOK {
            match s.next_after(at) {
                Some(f) if f.at <= t => {
                    last = Some(f.at);
                    at = f.at;
                }
                _ => break,
            }
        }
        if last.is_some() {
            return last;
        }
    }
    None
}

/// The nominal instants of `s` in `(from, to]`, at most `max`.
pub fn nominals_between(
    s: &Schedule,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    max: usize,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut at = from;
    while out.len() < max {
        match s.next_after(at) {
            Some(f) if f.at <= to => {
                out.push(f.at);
                at = f.at;
            }
            _ => break,
        }
    }
    out
}
