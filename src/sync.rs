//! Remote schedules: the job file is the source of truth for the account's schedules too.
//! [`plan`] compares the file, the links watchbell keeps and the account (pure); [`apply`] carries
//! the plan out, creating before cancelling so no job is ever left without a schedule.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::api::schedules::RemoteSchedule;
use crate::api::{ApiFailure, Client};
use crate::clock::Clock;
use crate::config::{Config, IdentityMode, Job, Json, Runner};
use crate::fnv::Fnv;
use crate::receiver::token;
use crate::store::{Link, Store, StoreError};

/// What to do to one remote schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// Create a schedule for a remote job (then pause it if the job is disabled).
    Create,
    /// Create the job's schedule anew, then cancel the old one (drift).
    Replace,
    Pause,
    Resume,
    Cancel,
    /// Nothing is done: a schedule watchbell created whose job left the file (see `--prune`).
    KeepOrphan,
}

impl Act {
    pub fn as_str(self) -> &'static str {
        match self {
            Act::Create => "create",
            Act::Replace => "replace",
            Act::Pause => "pause",
            Act::Resume => "resume",
            Act::Cancel => "cancel",
            Act::KeepOrphan => "keep-orphan",
        }
    }
}

/// One line of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub job: String,
    /// The remote schedule acted on (none for a creation).
    pub uid: Option<String>,
    pub act: Act,
    pub why: String,
}

impl Step {
    /// True for a step that changes the account.
    pub fn changes(&self) -> bool {
        self.act != Act::KeepOrphan
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<20} {:<36} {:<11} {}",
            self.job,
            self.uid.as_deref().unwrap_or("-"),
            self.act.as_str(),
            self.why
        )
    }
}

/// Where Captain Data delivers a remote job's results: its webhook, with its headers; for a job
/// with `receive = true`, watchbell's receiver (its URL and token are set when the schedule is
/// created, so the definition says only that it is received).
fn callback(job: &Job) -> Option<Value> {
    if job.receive {
        return Some(json!({"receive": true}));
    }
    job.webhook.as_ref().map(|w| {
        let headers: serde_json::Map<String, Value> = w
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), json!(v.resolve().unwrap_or_default())))
            .collect();
        json!({"url": w.url.as_str(), "headers": headers})
    })
}

/// What defines a remote job's schedule: action, inputs, parameters, identity, callback, cron
/// and timezone. Never `schedule_at` (it moves with time), never how the body is encoded.
pub fn definition(job: &Job) -> Value {
    let r = &job.request;
    let callback = callback(job);
    json!({
        "action": job.action,
        "inputs": schedule_inputs(job),
        "parameters": r.parameters.as_ref().map(Json::value),
        "identity_mode": r.identity_mode.map(IdentityMode::as_str),
        "identity_ids": r.identity_ids,
        "callback": callback,
        "cron": job.cron_schedule().cron.as_str(),
        "timezone": job.cron_schedule().tz.name(),
    })
}

/// The schedule's `inputs`: the job's list, or its one input (`inputs = [X]` is `input = X`,
/// so the definition, and its hash, are the same). Actions that take no input are scheduled
/// with one empty input.
fn schedule_inputs(job: &Job) -> Value {
    let r = &job.request;
    match &r.inputs {
        Some(list) => list.iter().map(Json::value).collect(),
        None => json!([r.input.as_ref().map_or_else(|| json!({}), Json::value)]),
    }
}

/// The body that creates a remote job's schedule (schedule mode): its definition, without the
/// keys it leaves unset, and `schedule_at` at the next fire after `now` (without it, the API
/// runs a new schedule at once).
pub fn create_body(job: &Job, now: DateTime<Utc>) -> Value {
    let mut body = definition(job);
    let obj = body.as_object_mut().expect("an object");
    obj.remove("action");
    obj.retain(|_, v| !v.is_null());
    if let Some(next) = job.cron_schedule().next_after(now) {
        obj.insert(
            "schedule_at".into(),
            json!(next.at.to_rfc3339_opts(SecondsFormat::Secs, true)),
        );
    }
    body
}

/// A stable hash of the job's schedule definition (`v2:` + FNV-1a of canonical JSON).
pub fn definition_hash(job: &Job) -> String {
    format!("v2:{}", fnv(&definition(job).to_string()))
}

/// The hash versions before `v2:` covered the whole create body as then encoded (with
/// `identity_mode: "direct"`, `parameters: {}`, `null`s). A link stored with it is compared
/// this way once, then rehashed, so upgrading recreates no schedule whose job did not change.
fn legacy_hash(job: &Job) -> String {
    let r = &job.request;
    let callback = callback(job);
    let body = json!({
        "inputs": [r.input.as_ref().map_or_else(|| json!({}), Json::value)],
        "parameters": r.parameters.as_ref().map_or_else(|| json!({}), Json::value),
        "identity_mode": r.identity_mode.unwrap_or(IdentityMode::Direct).as_str(),
        "identity_ids": r.identity_ids,
        "callback": callback,
        "cron": job.cron_schedule().cron.as_str(),
        "timezone": job.cron_schedule().tz.name(),
    });
    fnv(&format!("{}\n{body}", job.action))
}

/// True when `stored` (a link's hash, of either version) describes `job` as it is now.
fn hash_matches(stored: &str, job: &Job) -> bool {
    if stored.starts_with("v2:") {
        stored == definition_hash(job)
    } else {
        stored == legacy_hash(job)
    }
}

/// Links whose hash is of the old version and still matches their job: rewritten as `v2:`.
pub fn rehashed(config: &Config, links: &[Link]) -> Vec<Link> {
    links
        .iter()
        .filter_map(|l| {
            let job = config.job(&l.job)?;
            let h = l.hash.as_deref()?;
            (!h.starts_with("v2:") && hash_matches(h, job)).then(|| Link {
                hash: Some(definition_hash(job)),
                ..l.clone()
            })
        })
        .collect()
}

fn fnv(text: &str) -> String {
    Fnv::new().write(text.as_bytes()).hex()
}

/// The plan: one step per remote schedule that differs from the file.
pub fn plan(config: &Config, links: &[Link], remote: &[RemoteSchedule], prune: bool) -> Vec<Step> {
    let by_uid: HashMap<&str, &RemoteSchedule> =
        remote.iter().map(|s| (s.uid.as_str(), s)).collect();
    let by_job: HashMap<&str, &Link> = links.iter().map(|l| (l.job.as_str(), l)).collect();
    let mut steps = Vec::new();
    for job in &config.jobs {
        let link = by_job.get(job.name.as_str()).copied();
        // The adopted uid, unless watchbell has since replaced that schedule.
        let uid = match (&job.remote_schedule, link) {
            (Some(adopt), Some(l)) if l.adopted_from.as_deref() == Some(adopt.as_str()) => {
                Some(l.uid.clone())
            }
            (Some(adopt), _) => Some(adopt.clone()),
            (None, l) => l.map(|l| l.uid.clone()),
        };
        let current = uid.as_deref().and_then(|u| by_uid.get(u).copied());
        let step = |act, why: String| Step {
            job: job.name.clone(),
            uid: uid.clone(),
            act,
            why,
        };
        match job.runner {
            Runner::Local | Runner::Async => {
                if current.is_some_and(|s| s.status() == "ACTIVE") {
                    steps.push(step(
                        Act::Pause,
                        "runner = \"local\": watchbell fires this job, so its remote schedule must not also fire (it was ACTIVE)".into(),
                    ));
                }
            }
            Runner::Remote => {
                let Some(s) = current.filter(|s| !s.is_terminal()) else {
                    let why = match (&uid, current) {
                        (None, _) => "runner = \"remote\" and no remote schedule yet".to_string(),
                        (Some(u), None) => format!("the linked schedule {u} is not in the account"),
                        (Some(_), Some(s)) => format!("the linked schedule is {}", s.status()),
                    };
                    steps.push(Step {
                        uid: None,
                        ..step(Act::Create, why)
                    });
                    continue;
                };
                let drift = drift(job, s, link);
                if !drift.is_empty() {
                    steps.push(step(Act::Replace, format!("drift: {}", drift.join("; "))));
                } else if job.enabled && s.status() == "PAUSED" {
                    steps.push(step(
                        Act::Resume,
                        "enabled = true but the remote schedule is PAUSED".into(),
                    ));
                } else if !job.enabled && s.status() == "ACTIVE" {
                    steps.push(step(
                        Act::Pause,
                        "enabled = false but the remote schedule is ACTIVE".into(),
                    ));
                }
            }
        }
    }
    for l in links {
        if config.job(&l.job).is_some() {
            continue;
        }
        let Some(s) = by_uid.get(l.uid.as_str()).filter(|s| !s.is_terminal()) else {
            continue;
        };
        let (act, why) = if prune {
            (
                Act::Cancel,
                format!("job {:?} left the file (--prune)", l.job),
            )
        } else {
            (
                Act::KeepOrphan,
                format!(
                    "job {:?} left the file; {} kept (sync --prune cancels it)",
                    l.job,
                    s.status()
                ),
            )
        };
        steps.push(Step {
            job: l.job.clone(),
            uid: Some(l.uid.clone()),
            act,
            why,
        });
    }
    steps
}

/// How a remote job's schedule differs from the file.
fn drift(job: &Job, s: &RemoteSchedule, link: Option<&Link>) -> Vec<String> {
    let mut d = Vec::new();
    if let Some(cron) = &s.cron
        && cron.trim() != job.cron_schedule().cron.as_str()
    {
        d.push(format!(
            "cron {cron:?} in the account, {:?} in the file",
            job.cron_schedule().cron.as_str()
        ));
    }
    if s.timezone.is_some() && s.timezone() != job.cron_schedule().tz.name() {
        d.push(format!(
            "timezone {} in the account, {} in the file",
            s.timezone(),
            job.cron_schedule().tz.name()
        ));
    }
    if !s.action_name.is_empty() && s.action_name != job.action {
        d.push(format!(
            "action {} in the account, {} in the file",
            s.action_name, job.action
        ));
    }
    if let Some(h) = link
        .filter(|l| l.uid == s.uid)
        .and_then(|l| l.hash.as_deref())
        && !hash_matches(h, job)
    {
        d.push("the job changed since its schedule was created (input, parameters, identity or webhook)".into());
    }
    d
}

/// What happened to one step.
#[derive(Debug)]
pub struct Applied {
    pub step: Step,
    pub result: Result<String, ApiFailure>,
}

/// Carries out `steps` in order; a failed step does not stop the others.
pub async fn apply(
    config: &Config,
    steps: &[Step],
    client: &Client,
    store: &Store,
    clock: &Clock,
) -> Result<Vec<Applied>, StoreError> {
    let mut out = Vec::new();
    for step in steps.iter().filter(|s| s.changes()) {
        let result = apply_one(config, step, client, store, clock).await?;
        match &result {
            Ok(done) => {
                info!(job = %step.job, action = step.act.as_str(), why = %step.why, "remote schedule: {done}");
            }
            Err(e) => {
                warn!(job = %step.job, action = step.act.as_str(), error = %e, "remote schedule change failed");
            }
        }
        out.push(Applied {
            step: step.clone(),
            result,
        });
    }
    Ok(out)
}

async fn apply_one(
    config: &Config,
    step: &Step,
    client: &Client,
    store: &Store,
    clock: &Clock,
) -> Result<Result<String, ApiFailure>, StoreError> {
    let uid = step.uid.clone().unwrap_or_default();
    Ok(match step.act {
        Act::Create | Act::Replace => {
            let Some(job) = config.job(&step.job) else {
                return Ok(Ok("job gone; nothing created".into()));
            };
            let mut body = create_body(job, clock.now());
            let token = receive_callback(config, job, &mut body);
            let created = match client.create_schedule(&job.action, &body).await {
                Ok(u) => u,
                Err(e) => return Ok(Err(e)),
            };
            if let Some(token) = token {
                let (name, uid, hash) = (job.name.clone(), created.clone(), token::hash(&token));
                store
                    .call(move |c| crate::store::batches::add_token(c, &name, &uid, &hash))
                    .await?;
            }
            let link = Link {
                job: job.name.clone(),
                uid: created.clone(),
                hash: Some(definition_hash(job)),
                adopted_from: job.remote_schedule.clone(),
            };
            store.set_link(link, Some("ACTIVE"), clock.now()).await?;
            let mut done = format!("created {created}");
            if !job.enabled {
                match client.manage_schedule(&created, "pause").await {
                    Ok(_) => {
                        done.push_str(", paused (enabled = false)");
                        store
                            .set_remote_statuses(vec![(created.clone(), "PAUSED".into())])
                            .await?;
                    }
                    Err(e) => return Ok(Err(e)),
                }
            }
            if step.act == Act::Replace {
                // Only now that the new schedule exists is the old one cancelled.
                match client.manage_schedule(&uid, "cancel").await {
                    Ok(_) => done = format!("{done}, then cancelled {uid}"),
                    Err(e) => return Ok(Err(e)),
                }
                expire_tokens(config, store, &uid, clock).await?;
            }
            Ok(done)
        }
        Act::Pause | Act::Resume | Act::Cancel => {
            match client.manage_schedule(&uid, step.act.as_str()).await {
                Ok(s) => {
                    if step.act == Act::Cancel {
                        expire_tokens(config, store, &uid, clock).await?;
                    }
                    store
                        .set_remote_statuses(vec![(uid.clone(), s.status().to_string())])
                        .await?;
                    Ok(format!("{uid} is now {}", s.status()))
                }
                Err(e) => Err(e),
            }
        }
        Act::KeepOrphan => Ok("kept".into()),
    })
}

/// For a job with `receive = true`: the create's callback is the receiver's URL for the job with
/// a fresh token, returned to be stored hashed.
fn receive_callback(config: &Config, job: &Job, body: &mut Value) -> Option<String> {
    let receiver = config.receiver.as_ref().filter(|_| job.receive)?;
    let token = token::new();
    body["callback"] = json!({
        "url": receiver.callback_url("s", &job.name),
        "headers": {"Authorization": format!("Bearer {token}")},
    });
    Some(token)
}

/// A cancelled schedule's callback tokens stay valid for `callback_timeout`: its last runs may
/// still call back.
async fn expire_tokens(
    config: &Config,
    store: &Store,
    schedule: &str,
    clock: &Clock,
) -> Result<(), StoreError> {
    let keep = config
        .receiver
        .as_ref()
        .map_or(std::time::Duration::ZERO, |r| r.callback_timeout);
    let until = clock.now() + chrono::Duration::from_std(keep).unwrap_or_default();
    let uid = schedule.to_string();
    store
        .call(move |c| crate::store::batches::expire_tokens(c, &uid, until))
        .await
}

/// Lists the account, plans, and (unless `dry_run`) applies: the whole of `watchbell sync`.
pub async fn reconcile(
    config: &Config,
    client: &Client,
    store: Option<&Store>,
    clock: &Clock,
    dry_run: bool,
    prune: bool,
) -> Result<(Vec<Step>, Vec<Applied>), SyncError> {
    let links = match store {
        Some(s) => s.links().await?,
        None => Vec::new(),
    };
    let remote_jobs = config
        .jobs
        .iter()
        .any(|j| j.runner == Runner::Remote || j.remote_schedule.is_some());
    if links.is_empty() && !remote_jobs && !prune {
        // Nothing of the file's lives in the account: no call (an idle daemon stays idle).
        return Ok((Vec::new(), Vec::new()));
    }
    let remote = client.list_schedules().await.map_err(SyncError::List)?;
    let steps = plan(config, &links, &remote, prune);
    if dry_run {
        return Ok((steps, Vec::new()));
    }
    let Some(store) = store else {
        return Err(SyncError::NoStore);
    };
    let upgraded = rehashed(config, &links);
    if !upgraded.is_empty() {
        info!(
            links = upgraded.len(),
            "remote schedule links rehashed (v2: definition only)"
        );
        for l in upgraded {
            store.set_link(l, None, clock.now()).await?;
        }
    }
    // What the account says now, for `watchbell status`; changes below update it.
    let seen: Vec<(String, String)> = links
        .iter()
        .filter_map(|l| {
            remote
                .iter()
                .find(|s| s.uid == l.uid)
                .map(|s| (l.uid.clone(), s.status().to_string()))
        })
        .collect();
    store.set_remote_statuses(seen).await?;
    if !steps.iter().any(Step::changes) {
        return Ok((steps, Vec::new()));
    }
    let applied = apply(config, &steps, client, store, clock).await?;
    Ok((steps, applied))
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot list the account's schedules: {0}")]
    List(ApiFailure),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no database to record links in")]
    NoStore,
}

#[cfg(test)]
mod tests;
