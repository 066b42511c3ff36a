//! Webhook callbacks for local runs, in Captain Data's callback format, so one receiver serves
//! local and remote runs alike: one per stored page (status RUNNING) and a last one with the
//! final status. Deliveries are queued in the database and sent by [`Deliverer`], in order per run,
//! signed when the job names a secret, and retried with backoff: a receiver that is down, or a
//! restart, loses nothing. The deliverer has its own HTTP client: it never carries the API key.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use serde_json::{Value, json};
use tracing::{info, warn};

use crate::clock::Clock;
use crate::config::{Config, HeaderValue};
use crate::signatures::{self, Secret};
use crate::store::{self, Delivery, DeliveryKind, Store, StoreError};

/// The callback for one stored page.
pub fn page_body(run_uid: &str, page: u32, input: &Value, items: &[Value]) -> Value {
    json!({
        "run": {"run_uid": run_uid, "batch_uid": format!("{run_uid}-{page}"), "status": "RUNNING"},
        "input": input,
        "custom_data": null,
        "error": null,
        "results": items,
    })
}

/// The last callback of a run, with its final status (and a batch uid of its own, like every
/// callback, so a receiver that stores by batch stores it once).
pub fn final_body(
    run_uid: &str,
    status: &str,
    input: &Value,
    error: Option<&store::LastError>,
) -> Value {
    json!({
        "run": {"run_uid": run_uid, "batch_uid": format!("{run_uid}-final"), "status": status},
        "input": input,
        "custom_data": null,
        "error": error,
        "results": null,
    })
}

/// The body of a `notify` POST: the facts, and a one-line `text` that a Slack or Mattermost
/// incoming webhook shows as it is.
pub fn notify_body(run: &crate::store::RunRecord) -> Value {
    let error = run.last_error.as_ref();
    let mut text = format!(
        "watchbell: job {} run {} ended {}",
        run.job, run.uid, run.status
    );
    if let Some(e) = error {
        let _ = write!(text, ": {} ({})", e.label, e.message);
    }
    json!({
        "job": run.job,
        "run_uid": run.uid,
        "status": run.status.as_str(),
        "reason": error.map(|e| e.label.to_ascii_lowercase()),
        "error": error,
        "finished_at": run.finished_at.map(crate::store::ts),
        "text": text,
    })
}

/// Sends queued callbacks.
#[derive(Clone)]
pub struct Deliverer {
    pub store: Store,
    pub clock: Clock,
    /// The job file as it stands (a reload replaces it): each job's webhook.
    pub config: watch::Receiver<Arc<Config>>,
    /// Where delivery attempts are counted (the daemon's registry).
    pub metrics: Arc<crate::metrics::Metrics>,
    http: reqwest::Client,
    /// The first retry waits this long; each next one twice as long, up to ten minutes.
    pub retry_base: Duration,
}

const CLAIM: chrono::Duration = chrono::Duration::seconds(60);
/// The longest the deliverer sleeps with nothing due: a `trigger` delivers its own run's
/// callbacks, so this only catches what one left behind.
const IDLE_LOOK: Duration = Duration::from_mins(5);
const MAX_BACKOFF: Duration = Duration::from_mins(10);

impl Deliverer {
    pub fn new(store: Store, clock: Clock, config: watch::Receiver<Arc<Config>>) -> Deliverer {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("watchbell/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a plain HTTP client builds");
        Deliverer {
            store,
            clock,
            config,
            metrics: crate::metrics::Metrics::new(),
            http,
            retry_base: Duration::from_secs(2),
        }
    }

    /// Sends what is due (for one run, or all); returns how many were delivered.
    pub async fn deliver_due(&self, run_id: Option<i64>) -> Result<usize, StoreError> {
        let mut delivered = 0;
        loop {
            let now = self.store.now(&self.clock);
            let batch = self.store.claim_due(run_id, 50, CLAIM, now).await?;
            if batch.is_empty() {
                return Ok(delivered);
            }
            let mut progressed = false;
            for d in batch {
                if self.send(&d).await? {
                    delivered += 1;
                    progressed = true;
                }
            }
            if !progressed {
                return Ok(delivered);
            }
        }
    }

    /// One attempt; true when delivered.
    async fn send(&self, d: &Delivery) -> Result<bool, StoreError> {
        let how = self.config.borrow().job(&d.job).and_then(|j| {
            let secret = j.webhook.as_ref().and_then(|w| w.secret_env.clone());
            match d.kind {
                DeliveryKind::Callback => j.webhook.as_ref().map(|w| (w.headers.clone(), secret)),
                DeliveryKind::Notify => j.notify.as_ref().map(|n| (n.headers.clone(), secret)),
                DeliveryKind::Ping => j.ping.as_ref().map(|_| (Vec::new(), None)),
            }
        });
        let outcome = match how {
            None => Err((
                None,
                format!("job {:?} has no {} in the file any more", d.job, d.kind),
            )),
            Some((headers, secret)) => self.post(d, &headers, secret.as_deref()).await,
        };
        let now = self.store.now(&self.clock);
        let (id, ok) = (d.id, outcome.is_ok());
        match outcome {
            Ok(status) => {
                self.metrics.count(
                    "watchbell_callback_deliveries_total",
                    &[("outcome", "delivered")],
                    1.0,
                );
                self.store
                    .record_attempt(id, Some(status), None, None, now)
                    .await?;
            }
            Err((status, error)) => {
                self.metrics.count(
                    "watchbell_callback_deliveries_total",
                    &[("outcome", "failed_attempt")],
                    1.0,
                );
                let wait = self
                    .retry_base
                    .saturating_mul(1 << d.attempts.min(20))
                    .min(MAX_BACKOFF);
                let at = now + chrono::Duration::from_std(wait).unwrap_or_default();
                warn!(job = %d.job, delivery = d.id, kind = %d.kind, attempts = d.attempts + 1, error = %error, retry_in_s = wait.as_secs(), "not delivered");
                self.store
                    .record_attempt(id, status, Some(error), Some(at), now)
                    .await?;
            }
        }
        Ok(ok)
    }

    async fn post(
        &self,
        d: &Delivery,
        headers: &[(String, HeaderValue)],
        secret_env: Option<&str>,
    ) -> Result<u16, (Option<u16>, String)> {
        let mut req = self
            .http
            .post(&d.url)
            .header("content-type", "application/json")
            .body(d.body.clone());
        for (k, v) in headers {
            req = req.header(k, v.resolve().map_err(|e| (None, e))?);
        }
        if let Some(var) = secret_env {
            let value = std::env::var(var).map_err(|_| {
                (
                    None,
                    format!("webhook.secret_env {var} is not set; not sending unsigned"),
                )
            })?;
            let secret = Secret::parse(&value).map_err(|e| {
                (
                    None,
                    format!("webhook.secret_env {var}: {e}; not sending unsigned"),
                )
            })?;
            // The id is the delivery's, the same at every attempt; the time is this attempt's.
            let id = signatures::delivery_id(&d.job, d.run_id, d.seq, &d.body);
            let now = self.clock.now().timestamp();
            for (name, value) in secret.headers(&id, now, d.body.as_bytes()) {
                req = req.header(name, value);
            }
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                info!(job = %d.job, delivery = d.id, kind = %d.kind, status = r.status().as_u16(), "delivered");
                Ok(r.status().as_u16())
            }
            Ok(r) => Err((
                Some(r.status().as_u16()),
                format!("receiver answered HTTP {}", r.status().as_u16()),
            )),
            // Without the URL: it may carry a token.
            Err(e) => Err((None, format!("receiver unreachable: {}", e.without_url()))),
        }
    }

    /// Delivers in the background until `stop`: sleeps until the earliest pending delivery is
    /// due, or a callback is queued in this process, and looks at least every 5 minutes (for
    /// callbacks a `watchbell trigger` beside the daemon left undelivered).
    pub async fn run(self, stop: tokio_util::sync::CancellationToken) {
        loop {
            if let Err(e) = self.deliver_due(None).await {
                warn!(error = %e, "callback queue unreadable");
            }
            let next = self.store.next_delivery_at().await.ok().flatten();
            let wait = next.map_or(IDLE_LOOK, |t| {
                (t - self.store.now(&self.clock))
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(IDLE_LOOK)
            });
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.store.delivery_queued() => {}
                () = stop.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_callback_shape() {
        let p = page_body("r1", 2, &json!({"a": 1}), &[json!({"id": "x"})]);
        assert_eq!(p["run"]["status"], "RUNNING");
        assert_eq!(p["run"]["batch_uid"], "r1-2");
        assert_eq!(p["results"][0]["id"], "x");
        let f = final_body("r1", "SUCCEEDED", &json!({}), None);
        assert_eq!(f["run"]["status"], "SUCCEEDED");
        assert_eq!(f["run"]["batch_uid"], "r1-final");
        assert!(f["results"].is_null());
        for k in ["run", "input", "custom_data", "error", "results"] {
            assert!(f.get(k).is_some());
        }
    }
}
