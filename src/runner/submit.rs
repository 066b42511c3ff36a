//! An async run's one request: the create, carrying every input (each tagged with the run and
//! its place in `custom_data.watchbell`), the parameters, the identities and the run's own
//! callback URL with a fresh token. The run is recorded as sent before the request leaves, and
//! from then on belongs to the receiver and the sweep: nothing here sends it again, whatever
//! happens to the answer or to this process (PRODUCT.md, "Async mode and the callback
//! receiver").

use serde_json::{Map, Value, json};
use tracing::{info, warn};

use super::{Limits, Runner};
use crate::api::ApiFailure;
use crate::catalog;
use crate::lanes::{Denial, RunGate};
use crate::receiver::token;
use crate::status::RunStatus;
use crate::store::{self, LastError, Reserve, RunRecord, StoreError, batches, persistently};

impl Runner {
    /// Sends the create of async run `run` (its inputs stored), once.
    pub(super) async fn submit(
        &self,
        run: &RunRecord,
        limits: &Limits,
    ) -> Result<RunRecord, StoreError> {
        let uid = run.uid.clone();
        let sent = {
            let uid = uid.clone();
            persistently(|| {
                let uid = uid.clone();
                self.store.call(move |c| batches::state(c, &uid))
            })
            .await?
        };
        if sent.is_some_and(|s| s.sent_at.is_some()) {
            info!("async run already sent; the receiver and the sweep finish it");
            return self.get(&uid).await;
        }
        let Some(receiver) = &self.receiver else {
            let e = LastError {
                label: "NO_RECEIVER".into(),
                message: "runner = \"async\" needs [receiver]".into(),
            };
            return self
                .transition(&uid, RunStatus::Failed, "no receiver", Some(e))
                .await;
        };
        let inputs = match self
            .within_lanes(run, self.async_inputs(run).await?)
            .await?
        {
            Ok(inputs) => inputs,
            Err(done) => {
                self.ended(&done, limits).await?;
                return Ok(done);
            }
        };
        let token = token::new();
        let callback = receiver.callback_url("r", &uid);
        let mut body = Map::new();
        body.insert("inputs".into(), Value::Array(inputs));
        for key in ["parameters", "identity_mode", "identity_ids"] {
            if let Some(v) = run.body.get(key) {
                body.insert(key.into(), v.clone());
            }
        }
        body.insert(
            "callback".into(),
            json!({"url": callback, "headers": {"Authorization": format!("Bearer {token}")}}),
        );
        let body = Value::Object(body);
        let hash = token::hash(&token);
        let now = self.clock.now();
        persistently(|| {
            let (uid, hash) = (uid.clone(), hash.clone());
            self.store
                .call(move |c| batches::mark_sent(c, &uid, &hash, now))
        })
        .await?;
        let answer = self.client.create_async(&run.action_name, &body).await;
        let inputs = body["inputs"].as_array().map_or(0, Vec::len);
        self.answered(&uid, answer, inputs, limits).await
    }

    /// What the create's answer makes of the run: QUEUED with the API's uid, ended when the API
    /// refused it, or left to the sweep when it may exist.
    async fn answered(
        &self,
        uid: &str,
        answer: Result<String, ApiFailure>,
        inputs: usize,
        limits: &Limits,
    ) -> Result<RunRecord, StoreError> {
        let uid = uid.to_string();
        match answer {
            Ok(api_uid) => {
                let bound = persistently(|| {
                    let (uid, api) = (uid.clone(), api_uid.clone());
                    self.store.call(move |c| batches::bind(c, &uid, &api))
                })
                .await?;
                if !bound {
                    warn!(api_run = %api_uid, "the create's answer names another run than the first callback did");
                }
                info!(api_run = %api_uid, inputs, "async run sent");
                let now = self.clock.now();
                persistently(|| {
                    let uid = uid.clone();
                    self.store
                        .call(move |c| batches::accepted(c, &uid, "accepted", now))
                })
                .await
            }
            Err(f) if refused(&f) => {
                warn!(error = %f, "async create refused");
                let e = LastError {
                    label: f.label(),
                    message: crate::api::cap(&f.to_string(), 2000),
                };
                let to = f.run_status(false);
                let to = if to == RunStatus::Blocked {
                    RunStatus::Failed
                } else {
                    to
                };
                let now = self.clock.now();
                let done = persistently(|| {
                    let (uid, e) = (uid.clone(), e.clone());
                    self.store.call(move |c| {
                        batches::finish(c, &uid, (to, "create refused"), Some(&e), 0, now)
                    })
                })
                .await?;
                self.ended(&done, limits).await?;
                Ok(done)
            }
            Err(f) => {
                // It may have reached the API: the sweep looks for it, and never sends it again.
                warn!(error = %f, "async create unconfirmed; the sweep looks for it");
                let now = self.clock.now();
                persistently(|| self.store.note(&uid, "create unconfirmed", now)).await?;
                self.get(&uid).await
            }
        }
    }

    /// Account safety for a submission through identities: each input counts one request
    /// against every lane's daily cap, the inputs are cut to what the caps leave today, an
    /// outreach input this job sent before is left out, and nothing goes to a paused lane.
    /// `Err`: the run ended (or waits BLOCKED) with nothing sent.
    async fn within_lanes(
        &self,
        run: &RunRecord,
        inputs: Vec<Value>,
    ) -> Result<Result<Vec<Value>, RunRecord>, StoreError> {
        let gate = RunGate::new(
            run,
            self.client.metrics().clone(),
            self.store.clone(),
            self.safety.clone(),
            None,
            self.client.request_timeout(),
        );
        if gate.lanes().is_empty() {
            return Ok(Ok(inputs));
        }
        let keyed: Vec<(u32, String)> = inputs
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u32, store::sent_key(v)))
            .collect();
        let now = self.store.now(&self.clock);
        let ask = gate.ask(now);
        let (job, id) = (run.job.clone(), run.id);
        let reserved = persistently(|| {
            let (ask, job, keyed) = (ask.clone(), job.clone(), keyed.clone());
            self.store
                .call(move |c| store::lanes_reserve(c, &ask, (&job, id), &keyed, now))
        })
        .await?;
        let count = catalog::Count::of(&run.action_name);
        let denial = match reserved {
            Reserve::Granted { keep, already } if keep.is_empty() => {
                info!(
                    already = already.len(),
                    "every input was sent by this job before; nothing to send"
                );
                let done = self
                    .end_unsent(
                        run,
                        RunStatus::Succeeded,
                        "every input sent before",
                        None,
                        None,
                    )
                    .await?;
                return Ok(Err(done));
            }
            Reserve::Granted { keep, already } => {
                let cut = inputs.len() - keep.len() - already.len();
                if cut > 0 || !already.is_empty() {
                    info!(
                        sent = keep.len(),
                        already_sent = already.len(),
                        past_cap = cut,
                        "inputs held to the identity lanes"
                    );
                }
                let keep: std::collections::HashSet<u32> = keep.into_iter().collect();
                let kept = inputs
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| keep.contains(&(*i as u32)))
                    .map(|(_, v)| v)
                    .collect();
                return Ok(Ok(kept));
            }
            Reserve::Refused(entry) => {
                Denial::of(entry, count).expect("a refusal is capped or paused")
            }
        };
        let until = denial.until();
        warn!(error = %denial, "async run not sent");
        let f = ApiFailure::Lane(denial);
        let e = LastError {
            label: f.label(),
            message: crate::api::cap(&f.to_string(), 2000),
        };
        let to = f.run_status(false);
        let later = (to == RunStatus::Blocked).then_some(until);
        let done = self
            .end_unsent(run, to, "identity lanes", Some(e), later)
            .await?;
        Ok(Err(done))
    }

    /// Ends (or blocks until `until`) a run whose create was never sent.
    async fn end_unsent(
        &self,
        run: &RunRecord,
        to: RunStatus,
        why: &'static str,
        e: Option<LastError>,
        until: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<RunRecord, StoreError> {
        let (uid, now) = (run.uid.clone(), self.clock.now());
        let done = persistently(|| {
            let (uid, e) = (uid.clone(), e.clone());
            self.store
                .call(move |c| batches::finish(c, &uid, (to, why), e.as_ref(), 0, now))
        })
        .await?;
        if until.is_some() {
            persistently(|| self.store.set_postponed(&run.uid, until)).await?;
            return self.get(&run.uid).await;
        }
        Ok(done)
    }

    /// The run's inputs as the create carries them: its stored list, or its one input; each
    /// with `custom_data.watchbell = {run, input}`.
    async fn async_inputs(&self, run: &RunRecord) -> Result<Vec<Value>, StoreError> {
        let listed = persistently(|| self.store.inputs(run.id)).await?;
        let plain: Vec<Value> = if listed.is_empty() {
            vec![run.body.get("input").cloned().unwrap_or_else(|| json!({}))]
        } else {
            listed.into_iter().map(|i| i.input).collect()
        };
        Ok(plain
            .into_iter()
            .enumerate()
            .map(|(i, mut input)| {
                if let Some(m) = input.as_object_mut() {
                    let custom = m.entry("custom_data").or_insert_with(|| json!({}));
                    if let Some(c) = custom.as_object_mut() {
                        c.insert("watchbell".into(), json!({"run": run.uid, "input": i}));
                    }
                }
                input
            })
            .collect())
    }
}

/// An answer that says the API did not take the create (a 4xx other than 429): nothing exists.
fn refused(f: &ApiFailure) -> bool {
    matches!(f, ApiFailure::Http { status, .. } if (400..500).contains(status))
        || matches!(
            f,
            ApiFailure::RateLimited { .. } | ApiFailure::ForeignNext(_)
        )
}
