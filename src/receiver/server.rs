//! The HTTP side of the receiver. A callback is refused before its body is read when its token
//! is missing or wrong (the run's token hash is one indexed read), or when it declares a body
//! over `max_body`; at most 16 bodies are read at once, each cut at `max_body`. What passes is
//! stored in one transaction and answered 200 after the commit, 503 when the store fails (the
//! vendor delivers again). Refusals are counted by reason and logged at most once a second per
//! reason, never with a body or a token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::token;
use crate::clock::Clock;
use crate::config::Config;
use crate::runner::Runner;
use crate::store::batches::{self, Batch, Received};
use crate::store::{Store, StoreError};
use tokio::sync::watch;

/// Bodies read at once.
const BODIES: usize = 16;

/// What every request handler shares.
pub struct Shared {
    pub store: Store,
    pub clock: Clock,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub max_body: u64,
    /// Asks the API about runs of remote schedules it does not know yet.
    pub runner: Arc<Runner>,
    /// The job file as it stands (remote jobs, their schedules).
    pub config: watch::Receiver<Arc<Config>>,
    bodies: Semaphore,
    /// Per refusal reason: when it was last logged, and how many since.
    said: Mutex<HashMap<&'static str, (Option<Instant>, u64)>>,
    /// Told when a final callback is stored: the sweep looks at once.
    pub closing: tokio::sync::Notify,
    /// A read-only connection for token checks: a flood of forged callbacks reads beside the
    /// store's writer, never in its queue (where ticks are recorded).
    reader: Mutex<Option<crate::store::Reader>>,
}

impl Shared {
    pub fn new(
        runner: Arc<Runner>,
        config: watch::Receiver<Arc<Config>>,
        max_body: u64,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            store: runner.store.clone(),
            clock: runner.clock.clone(),
            metrics: runner.client.metrics().clone(),
            runner,
            config,
            max_body,
            bodies: Semaphore::new(BODIES),
            said: Mutex::default(),
            closing: tokio::sync::Notify::new(),
            reader: Mutex::new(None),
        })
    }

    /// The async state of run `uid`, for its token check.
    async fn state_of(&self, uid: &str) -> Result<Option<batches::AsyncState>, StoreError> {
        {
            let mut reader = self.reader.lock().expect("lock");
            // SQLite: a reader of its own beside the writer; PostgreSQL: the writer's queue.
            if reader.is_none() && !self.store.is_postgres() {
                *reader = crate::store::open_read_only(self.store.path())
                    .and_then(|r| r.bound_cache(crate::store::SIDE_CACHE_KIB).map(|()| r))
                    .ok();
            }
            if let Some(r) = reader.as_ref() {
                match r.async_state(uid) {
                    Ok(found) => return Ok(found),
                    Err(_) => *reader = None,
                }
            }
        }
        let uid = uid.to_string();
        self.store.call(move |c| batches::state(c, &uid)).await
    }

    /// A refusal: counted, logged at most once a second per reason (with how many since).
    fn refuse(&self, status: StatusCode, reason: &'static str, run: &str) -> Response {
        self.metrics.count(
            "watchbell_callbacks_refused_total",
            &[("reason", reason)],
            1.0,
        );
        let mut said = self.said.lock().expect("lock");
        let now = Instant::now();
        let entry = said.entry(reason).or_insert((None, 0));
        entry.1 += 1;
        if entry
            .0
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
        {
            warn!(reason, run = %run, count = entry.1, "callback refused");
            *entry = (Some(now), 0);
        }
        (status, reason).into_response()
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/callbacks/r/{uid}", post(run_callback))
        .route("/callbacks/s/{job}", post(schedule_callback))
        .route("/callbacks/probe/{nonce}", get(probe))
        .with_state(shared)
}

/// A self-probe: 204 when the nonce is signed by its run's token hash in this database, so the
/// sweep of any node on it learns that `public_url` reaches the cluster's receivers.
async fn probe(State(sh): State<Arc<Shared>>, Path(nonce): Path<String>) -> Response {
    let Some(run) = token::probe_run(&nonce) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match sh.state_of(run).await {
        Ok(Some(s)) if token::probe_signed(&nonce, &s.token_hash) => {
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(_) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => unavailable(&e),
    }
}

async fn run_callback(
    State(sh): State<Arc<Shared>>,
    Path(uid): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(given) = bearer(&headers) else {
        return sh.refuse(StatusCode::UNAUTHORIZED, "no_token", &uid);
    };
    let state = sh.state_of(&uid).await;
    let state = match state {
        Ok(Some(s)) if token::same(&s.token_hash, &token::hash(given)) => s,
        Ok(_) => return sh.refuse(StatusCode::FORBIDDEN, "wrong_token", &uid),
        Err(e) => return unavailable(&e),
    };
    let bytes = match read_body(&sh, &headers, body).await {
        Ok(b) => b,
        Err(r) => return sh.refuse(r.0, r.1, &uid),
    };
    let batch = match parse(&bytes) {
        Ok(b) => b,
        Err(reason) => return sh.refuse(StatusCode::BAD_REQUEST, reason, &uid),
    };
    if state.api_uid.as_deref().is_some_and(|a| a != batch.api_uid) {
        return sh.refuse(StatusCode::FORBIDDEN, "other_run", &uid);
    }
    store_batch(&sh, &uid, batch).await
}

/// Stores a checked callback of local run `uid`.
async fn store_batch(sh: &Shared, uid: &str, batch: Batch) -> Response {
    let now = sh.store.now(&sh.clock);
    let last = batch.status != "RUNNING";
    let uid = uid.to_string();
    let stored = {
        let uid = uid.clone();
        sh.store
            .call(move |c| batches::receive(c, &uid, &batch, now))
            .await
    };
    match stored {
        Ok(Received::Stored { page, items, job }) => {
            sh.metrics.count(
                "watchbell_callbacks_received_total",
                &[("outcome", "stored")],
                1.0,
            );
            sh.metrics.items_stored(&job, items);
            sh.store.deliveries_queued();
            if last {
                sh.closing.notify_one();
            }
            debug!(run = %uid, page, "callback stored");
            StatusCode::OK.into_response()
        }
        Ok(Received::Repeat) => {
            sh.metrics.count(
                "watchbell_callbacks_received_total",
                &[("outcome", "repeat")],
                1.0,
            );
            StatusCode::OK.into_response()
        }
        Ok(Received::OtherRun) => sh.refuse(StatusCode::FORBIDDEN, "other_run", &uid),
        Err(e) => unavailable(&e),
    }
}

/// A callback of a remote schedule with `receive = true`: the job's token, then the run it
/// belongs to, created only once the API confirms it (this job's action, this callback URL).
async fn schedule_callback(
    State(sh): State<Arc<Shared>>,
    Path(job): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(given) = bearer(&headers) else {
        return sh.refuse(StatusCode::UNAUTHORIZED, "no_token", &job);
    };
    let hash = token::hash(given);
    let valid = {
        let (job, hash, now) = (job.clone(), hash.clone(), sh.clock.now());
        sh.store
            .call(move |c| batches::job_token(c, &job, &hash, now))
            .await
    };
    match valid {
        Ok(true) => {}
        Ok(false) => return sh.refuse(StatusCode::FORBIDDEN, "wrong_token", &job),
        Err(e) => return unavailable(&e),
    }
    let bytes = match read_body(&sh, &headers, body).await {
        Ok(b) => b,
        Err(r) => return sh.refuse(r.0, r.1, &job),
    };
    let batch = match parse(&bytes) {
        Ok(b) => b,
        Err(reason) => return sh.refuse(StatusCode::BAD_REQUEST, reason, &job),
    };
    let known = {
        let api = batch.api_uid.clone();
        sh.store.call(move |c| batches::run_of_api(c, &api)).await
    };
    let uid = match known {
        Ok(Some((uid, of))) if of == job => uid,
        Ok(Some(_)) => return sh.refuse(StatusCode::FORBIDDEN, "other_run", &job),
        Ok(None) => match super::remote::adopt(&sh, &job, &batch.api_uid, &hash).await {
            Ok(Some(uid)) => uid,
            Ok(None) => return sh.refuse(StatusCode::FORBIDDEN, "unconfirmed", &job),
            Err(r) => return r,
        },
        Err(e) => return unavailable(&e),
    };
    store_batch(&sh, &uid, batch).await
}

/// The token of the request's `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(token::bearer)
}

pub(super) fn unavailable(e: &StoreError) -> Response {
    warn!(error = %e, "callback not stored; answered 503 so it is delivered again");
    (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response()
}

/// The body, read under the bound on bodies at once and cut at `max_body`.
async fn read_body(
    sh: &Shared,
    headers: &HeaderMap,
    body: Body,
) -> Result<axum::body::Bytes, (StatusCode, &'static str)> {
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > sh.max_body) {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, "too_large"));
    }
    let _permit = sh.bodies.acquire().await.expect("never closed");
    axum::body::to_bytes(body, sh.max_body as usize)
        .await
        .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, "too_large"))
}

/// A callback in Captain Data's shape, or the reason it is not one.
fn parse(bytes: &[u8]) -> Result<Batch, &'static str> {
    let v: Value = serde_json::from_slice(bytes).map_err(|_| "invalid_json")?;
    let run = v.get("run").filter(|r| r.is_object()).ok_or("bad_shape")?;
    let text = |k: &str| {
        run.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 200)
            .map(str::to_string)
    };
    let (Some(api_uid), Some(batch_uid), Some(status)) =
        (text("run_uid"), text("batch_uid"), text("status"))
    else {
        return Err("bad_shape");
    };
    if status.parse::<crate::status::RunStatus>().is_err() {
        return Err("bad_shape");
    }
    let items = match v.get("results") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err("bad_shape"),
    };
    Ok(Batch {
        api_uid,
        batch_uid,
        status,
        items,
        body: v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_callback_shape_parses() {
        let ok =
            br#"{"run":{"run_uid":"a","batch_uid":"b","status":"RUNNING"},"results":[{"x":1}]}"#;
        let b = parse(ok).unwrap();
        assert_eq!((b.api_uid.as_str(), b.items.len()), ("a", 1));
        assert_eq!(parse(b"{").err(), Some("invalid_json"));
        assert_eq!(parse(b"[]").err(), Some("bad_shape"));
        let no_batch = br#"{"run":{"run_uid":"a","batch_uid":null,"status":"SUCCEEDED"}}"#;
        assert_eq!(parse(no_batch).err(), Some("bad_shape"));
        let bad_status = br#"{"run":{"run_uid":"a","batch_uid":"b","status":"DONE"}}"#;
        assert_eq!(parse(bad_status).err(), Some("bad_shape"));
        let bad_results =
            br#"{"run":{"run_uid":"a","batch_uid":"b","status":"RUNNING"},"results":7}"#;
        assert_eq!(parse(bad_results).err(), Some("bad_shape"));
    }
}
