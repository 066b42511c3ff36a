//! The Captain Data v4 client: live runs with pagination, pacing and retries, and the schedules
//! endpoints. It knows HTTP and the API's contract; it knows nothing of the database or the scheduler.

mod error;
pub mod key;
pub mod pacer;
pub mod runs;
pub mod schedules;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use tracing::{debug, info, warn};

pub use error::{ApiFailure, ErrorBody, http_failure};
pub use key::ApiKey;
pub use pacer::Pacer;

use crate::clock::Clock;

/// The largest response body read (a page of results is far smaller).
pub const MAX_BODY: usize = 32 * 1024 * 1024;
/// The longest wait a server can ask for and be believed (a larger `Retry-After` is read as
/// this); keeps every instant computed from it representable.
const MAX_SERVER_WAIT: Duration = Duration::from_hours(366 * 24);
/// The longest a request outside a run (the schedules endpoints) waits out a 429.
const MAX_WAIT_OUTSIDE_RUNS: Duration = Duration::from_mins(5);

/// How hard to try before giving up on one request.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// 429s answered by waiting before the run is BLOCKED.
    pub rate_limit_retries: u32,
    /// 5xx and transport errors retried with backoff.
    pub server_retries: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            rate_limit_retries: 30,
            server_retries: 5,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// What retrying cost one request (for the run's counters and logs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attempts {
    pub retries: u32,
    pub rate_limit_waits: u32,
}

/// A successful answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Admits each attempt of a request: the identity lanes it goes through (the runner's), which
/// may make it wait, or refuse it.
pub trait Gate: Send + Sync {
    /// Waits until the request may be sent; an error ends the request without sending it.
    fn enter(&self) -> Pin<Box<dyn Future<Output = Result<(), ApiFailure>> + Send + '_>>;
    /// The attempt is over (answered or failed).
    fn leave(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
    /// False when a request that may have reached the server must not be sent again.
    fn may_resend(&self) -> bool {
        true
    }
    /// The run the request is for, sent as `X-Watchbell-Run`: the vendor's logs, a proxy or a
    /// test server can tell which run (and so which tick) each request serves, and which
    /// requests were one run's resumption rather than a second run.
    fn run(&self) -> Option<&str> {
        None
    }
}

/// One page of a live run.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Value>,
    pub next: Option<Url>,
}

/// The client. Clone it to share its connection pool and its pacer.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    /// Where v1 endpoints and `/quotas` are: only when the job file names v1.
    v1: Option<Url>,
    cursor_ttl: Duration,
    key: ApiKey,
    pacer: Arc<Pacer>,
    retry: RetryPolicy,
    clock: Clock,
    request_timeout: Duration,
    metrics: Arc<crate::metrics::Metrics>,
    /// Asked right before every request (a cluster node's lease).
    lease: Option<LeaseCheck>,
}

/// Whether this node may send a request now (a cluster node's lease): false sends nothing.
#[derive(Clone)]
pub struct LeaseCheck(pub Arc<dyn Fn() -> bool + Send + Sync>);

impl std::fmt::Debug for LeaseCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaseCheck")
    }
}

impl Client {
    /// A client for `base` (e.g. `https://api.captaindata.com/v4`).
    pub fn new(
        base: Url,
        key: ApiKey,
        pacer: Arc<Pacer>,
        request_timeout: Duration,
        clock: Clock,
    ) -> Result<Client, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(Duration::from_secs(10))
            // A redirect could carry the key elsewhere; the API does not redirect.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("watchbell/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client {
            http,
            base,
            v1: None,
            cursor_ttl: Duration::from_hours(24),
            key,
            pacer,
            retry: RetryPolicy::default(),
            clock,
            request_timeout,
            metrics: crate::metrics::Metrics::new(),
            lease: None,
        })
    }

    /// A client for the `[api]` section, paced for its plan unless `pacer` is given.
    pub fn for_config(
        api: &crate::config::Api,
        key: ApiKey,
        pacer: Option<Arc<Pacer>>,
        clock: Clock,
    ) -> Result<Client, reqwest::Error> {
        let pacer = pacer.unwrap_or_else(|| Arc::new(Pacer::new(api.per_second())));
        let mut c = Client::new(api.base_url.clone(), key, pacer, api.request_timeout, clock)?;
        c.cursor_ttl = api.cursor_ttl;
        Ok(c)
    }

    /// Asks `lease` right before every request, and sends nothing when it says no.
    #[must_use]
    pub fn with_lease(mut self, lease: LeaseCheck) -> Client {
        self.lease = Some(lease);
        self
    }

    /// Lets this client call v1 endpoints and `/quotas` at `v1` (`None`: never).
    #[must_use]
    pub fn with_v1(mut self, v1: Option<Url>) -> Client {
        self.v1 = v1;
        self
    }

    /// The v1 base, when the job file named v1.
    pub fn v1_base(&self) -> Option<&Url> {
        self.v1.as_ref()
    }

    /// How old a stored cursor may be and still be sent (`[api] cursor_ttl`).
    pub fn cursor_ttl(&self) -> Duration {
        self.cursor_ttl
    }

    #[must_use]
    pub fn with_cursor_ttl(mut self, ttl: Duration) -> Client {
        self.cursor_ttl = ttl;
        self
    }

    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Client {
        self.retry = retry;
        self
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The registry this client's runs count into (the daemon serves it at `/metrics`).
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// The plan's spacing between two requests (`None`: unpaced).
    pub fn pace(&self) -> Option<Duration> {
        self.pacer.interval()
    }

    /// How long one request may take.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// `{base}/{path}` (path without a leading slash).
    pub fn url(&self, path: &str) -> Url {
        under(&self.base, path)
    }

    /// The first page of a live run of `action`.
    pub fn live_url(&self, action: &str) -> Url {
        self.url(&format!("actions/{action}/run/live"))
    }

    /// The first page of a run: the live URL of a v4 action, or a v1 endpoint's URL with its
    /// placeholders and query filled from the run's body.
    pub fn first_url(&self, action: &str, body: &Value) -> Result<Url, ApiFailure> {
        if !crate::catalog::v1::is_endpoint(action) {
            return Ok(self.live_url(action));
        }
        let base = self.v1.as_ref().ok_or_else(|| ApiFailure::Unsendable(format!(
            "{action} is a v1 endpoint, and the job file names no v1 API (a v1 job or [api] v1_base_url)"
        )))?;
        crate::catalog::v1::first_page(base, body).ok_or_else(|| {
            ApiFailure::Unsendable(format!("the run's body cannot fill {action}: {body}"))
        })
    }

    /// True when `url` has the scheme, host and port of the configured API (v4, or v1 when
    /// named).
    pub fn same_origin(&self, url: &Url) -> bool {
        url.origin() == self.base.origin()
            || self
                .v1
                .as_ref()
                .is_some_and(|v1| url.origin() == v1.origin())
    }

    /// One page of a run: the results and the next page's URL, if any. A POST of `body` for a
    /// v4 live run, a GET without one for a v1 endpoint. A wait the server asks for that
    /// would end after `deadline` (the run's timeout) is not waited: the request fails as
    /// rate-limited, with the reset, so the run ends BLOCKED until then.
    pub async fn live_page(
        &self,
        url: &Url,
        body: Option<&Value>,
        attempts: &mut Attempts,
        deadline: Option<tokio::time::Instant>,
        gate: Option<&dyn Gate>,
    ) -> Result<Page, ApiFailure> {
        let answer = self
            .request_until(
                if body.is_some() {
                    Method::POST
                } else {
                    Method::GET
                },
                url.clone(),
                body,
                attempts,
                deadline,
                gate,
            )
            .await?;
        let status = answer.status.as_u16();
        let items = match serde_json::from_slice::<Value>(&answer.body) {
            Ok(Value::Array(items)) => items,
            Ok(obj @ Value::Object(_)) => vec![obj],
            Ok(other) => {
                return Err(ApiFailure::BadBody {
                    status,
                    detail: format!("expected a JSON array or object, got {other}"),
                });
            }
            Err(e) => {
                let start: String = String::from_utf8_lossy(&answer.body)
                    .chars()
                    .take(80)
                    .collect();
                return Err(ApiFailure::BadBody {
                    status,
                    detail: format!("invalid JSON ({e}); body starts {start:?}"),
                });
            }
        };
        let next = match answer
            .headers
            .get("x-pagination-next")
            .map(|v| v.to_str().unwrap_or("").trim())
        {
            None | Some("" | "null") => None,
            Some(_) if items.is_empty() => None,
            // A relative URL is resolved against the request's; the same-origin rule then applies.
            Some(s) => Some(url.join(s).map_err(|e| ApiFailure::BadBody {
                status,
                detail: format!("X-Pagination-Next {:?} is not a URL ({e})", cap(s, 200)),
            })?),
        };
        Ok(Page { items, next })
    }

    /// Sends one request with the key, paced, retrying 429 (after the wait the API asks for,
    /// up to five minutes), 5xx and transport errors; never other 4xx. Refuses any URL off the
    /// configured origin.
    pub async fn request(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        attempts: &mut Attempts,
    ) -> Result<Answer, ApiFailure> {
        let deadline = tokio::time::Instant::now() + MAX_WAIT_OUTSIDE_RUNS;
        self.request_until(method, url, body, attempts, Some(deadline), None)
            .await
    }

    /// [`Client::request`], waiting out 429s only while they end before `deadline`, and letting
    /// `gate` admit each attempt.
    async fn request_until(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        attempts: &mut Attempts,
        deadline: Option<tokio::time::Instant>,
        gate: Option<&dyn Gate>,
    ) -> Result<Answer, ApiFailure> {
        if !self.same_origin(&url) {
            return Err(ApiFailure::ForeignNext(url.to_string()));
        }
        let mut server_failures = 0;
        loop {
            if let Some(g) = gate {
                g.enter().await?;
            }
            self.pacer.acquire().await;
            let run = gate.and_then(|g| g.run());
            let sent = self.send_once(&method, &url, body, run).await;
            debug!(url = %url.path(), "response");
            if let Some(g) = gate {
                g.leave().await;
            }
            let failure = match sent? {
                Ok((status, headers, body)) => {
                    match (status, body) {
                        (s, Ok(body)) if s.is_success() => {
                            self.pacer.on_success();
                            return Ok(Answer {
                                status,
                                headers,
                                body,
                            });
                        }
                        (StatusCode::TOO_MANY_REQUESTS, _) => {
                            // Either the wait the server asked for is waited out by everyone
                            // sharing the pacer, or the request ends rate-limited.
                            self.wait_for_429(&url, &headers, attempts, deadline)?;
                            continue;
                        }
                        (s, Err(e)) if s.is_success() => {
                            return Err(ApiFailure::BadBody {
                                status: s.as_u16(),
                                detail: e,
                            });
                        }
                        (s, body) => {
                            let f = http_failure(s.as_u16(), &body.unwrap_or_default());
                            if !s.is_server_error() {
                                return Err(f);
                            }
                            f
                        }
                    }
                }
                Err(e) => ApiFailure::Transport(error_chain(&e)),
            };
            // A request that may have reached the server is not sent twice when the gate says
            // so (outreach: the invitation may have gone out).
            if server_failures >= self.retry.server_retries || gate.is_some_and(|g| !g.may_resend())
            {
                return Err(failure);
            }
            let wait = self.backoff(server_failures);
            server_failures += 1;
            attempts.retries += 1;
            warn!(url = %url.path(), error = %failure, wait_ms = wait.as_millis() as u64, "request failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// A 429: the pacer is paused for everyone as long as the server asked (the next attempt
    /// waits it out), or the failure that ends the request: a daily quota, too many 429s, or a wait that would
    /// outlast `deadline` (the run's timeout; others then pause only until that bound).
    fn wait_for_429(
        &self,
        url: &Url,
        headers: &HeaderMap,
        attempts: &mut Attempts,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(), ApiFailure> {
        self.metrics.count("watchbell_rate_limited_total", &[], 1.0);
        let limit = self.rate_limit(headers);
        if limit.daily || attempts.rate_limit_waits >= self.retry.rate_limit_retries {
            return Err(ApiFailure::RateLimited {
                kind: limit.kind,
                reset: limit.reset,
                daily: limit.daily,
            });
        }
        let wait = limit
            .wait
            .unwrap_or_else(|| self.backoff(attempts.rate_limit_waits));
        let left = deadline.map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
        if let Some(left) = left.filter(|left| wait > *left) {
            self.pacer.on_rate_limited(left);
            let reset = chrono::Duration::from_std(wait)
                .ok()
                .and_then(|w| self.clock.now().checked_add_signed(w));
            warn!(url = %url.path(), kind = %limit.kind, wait_s = wait.as_secs(), left_s = left.as_secs(), "rate limited beyond the run's timeout; not waiting");
            return Err(ApiFailure::RateLimited {
                kind: limit.kind,
                reset: limit.reset.or(reset),
                daily: limit.daily,
            });
        }
        attempts.rate_limit_waits += 1;
        info!(url = %url.path(), kind = %limit.kind, wait_ms = wait.as_millis() as u64, "rate limited; waiting");
        self.metrics.count(
            "watchbell_rate_limit_wait_seconds_total",
            &[],
            wait.as_secs_f64(),
        );
        self.pacer.on_rate_limited(wait);
        Ok(())
    }

    /// Sends the request once with the key; the answer's status, headers and (capped) body.
    async fn send_once(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        run: Option<&str>,
    ) -> Result<Result<(StatusCode, HeaderMap, Result<Vec<u8>, String>), reqwest::Error>, ApiFailure>
    {
        if self.lease.as_ref().is_some_and(|may| !(may.0)()) {
            return Err(ApiFailure::Transport(
                "this node no longer leads its cluster: the request was not sent".into(),
            ));
        }
        let mut key = reqwest::header::HeaderValue::from_str(self.key.expose())
            .map_err(|_| ApiFailure::Transport("the API key is not a valid header value".into()))?;
        key.set_sensitive(true); // never shown by the HTTP stack's debug output
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            .header("X-API-Key", key);
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(run) = run {
            req = req.header("X-Watchbell-Run", run);
        }
        Ok(match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                let headers = resp.headers().clone();
                Ok((status, headers, read_capped(resp).await))
            }
            Err(e) => Err(e),
        })
    }

    /// Exponential backoff with full jitter.
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .retry
            .base_backoff
            .saturating_mul(1 << attempt.min(16))
            .min(self.retry.max_backoff);
        cap.mul_f64(random_unit())
    }

    fn rate_limit(&self, headers: &HeaderMap) -> RateLimit {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let now = self.clock.now();
        let kind = text("x-ratelimit-type")
            .unwrap_or("unknown")
            .to_ascii_lowercase();
        let reset = text("x-ratelimit-reset").and_then(|s| reset_instant(s, now));
        let retry_after = text("retry-after").and_then(|s| match s.parse::<u64>() {
            Ok(secs) => Some(Duration::from_secs(secs)),
            Err(_) => DateTime::parse_from_rfc2822(s)
                .ok()
                .map(|at| (at.to_utc() - now).to_std().unwrap_or(Duration::ZERO)),
        });
        let until_reset = reset.map(|r| (r - now).to_std().unwrap_or(Duration::ZERO));
        RateLimit {
            daily: kind == "daily",
            kind: cap(&kind, 32),
            reset,
            wait: retry_after.or(until_reset).map(|w| w.min(MAX_SERVER_WAIT)),
        }
    }
}

/// `X-RateLimit-Reset`: Unix epoch seconds, or a delay in seconds when smaller than a day's
/// seconds (the format is not documented; both are seen).
fn reset_instant(text: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let secs = text.parse::<i64>().ok().filter(|s| *s >= 0)?;
    if secs < 86_400 {
        now.checked_add_signed(chrono::Duration::try_seconds(secs)?)
    } else {
        DateTime::from_timestamp(secs, 0)
    }
}

struct RateLimit {
    kind: String,
    daily: bool,
    reset: Option<DateTime<Utc>>,
    wait: Option<Duration>,
}

/// Reads a body, refusing more than [`MAX_BODY`] bytes.
async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > MAX_BODY {
                    return Err(format!("body larger than {MAX_BODY} bytes"));
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out),
            Err(e) => return Err(format!("body cut short: {}", error_chain(&e))),
        }
    }
}

/// `{base}/{path}` (path without a leading slash).
fn under(base: &Url, path: &str) -> Url {
    let mut s = base.as_str().trim_end_matches('/').to_string();
    s.push('/');
    s.push_str(path);
    Url::parse(&s).expect("base URL plus a path is a URL")
}

/// At most `max` characters of a string the server chose, for logs and the database.
pub fn cap(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// An error with its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A number in [0, 1) from the process's randomly keyed hasher.
pub fn random_unit() -> f64 {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let h = std::collections::hash_map::RandomState::new().hash_one(n);
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_reset_is_an_epoch_or_a_delay_under_a_day() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(
            reset_instant("30", now),
            Some(now + chrono::Duration::seconds(30))
        );
        assert_eq!(
            reset_instant("86399", now),
            Some(now + chrono::Duration::seconds(86_399))
        );
        assert_eq!(
            reset_instant("1800000600", now),
            DateTime::from_timestamp(1_800_000_600, 0)
        );
        assert_eq!(reset_instant("-5", now), None);
        assert_eq!(reset_instant("soon", now), None);
        assert_eq!(reset_instant("99999999999999999", now), None);
    }
}
