//! `watchbell sandbox`: a local Captain Data simulator (v4 actions, v1 endpoints) with deterministic data, so anyone can
//! try a job file without an account, and tests and benchmarks have a real HTTP peer. Strict
//! where the client should be tolerant: it answers exactly the contract in `captaindata-v4.md`.

// Handlers answer errors as ready responses, the axum way; boxing them buys nothing here.
#![allow(clippy::result_large_err)]

mod callbacks;
mod live;
mod records;
mod strict;
mod v1;
mod values;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use reqwest::Url;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;

pub use callbacks::{Chaos, Counts as ChaosCounts, parse_chaos};

/// The sandbox's knobs (also the flags of `watchbell sandbox`).
#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// Where to listen (port 0: any free port; the first stdout line says which).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The only API key accepted.
    #[arg(long, default_value = "sandbox-key")]
    pub api_key: String,
    /// Pages per live run.
    #[arg(long, default_value_t = 3)]
    pub pages: u32,
    /// Items per page (default: the action's page size in the catalog, else 10).
    #[arg(long)]
    pub page_size: Option<u32>,
    /// Requests per second per key, e.g. "2/s" (default: unlimited).
    #[arg(long, value_parser = parse_rate)]
    pub rate_limit: Option<f64>,
    /// Live requests per key per UTC day.
    #[arg(long)]
    pub daily_quota: Option<u64>,
    /// Probability of a 500/503 answer.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Delay before each answer, e.g. "50ms".
    #[arg(long, value_parser = humantime::parse_duration)]
    pub latency: Option<Duration>,
    /// Items never served before that each live run of a paginated action also returns, first
    /// on its first page (a search that finds something new each time, for chains).
    #[arg(long, default_value_t = 0)]
    pub new_per_run: u32,
    /// Seed for the fault injection.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The account's credits for the billing period; each item returned costs one.
    #[arg(long, default_value_t = 1_000_000)]
    pub credits: u64,
    /// How long a v1 pagination cursor stays valid, e.g. "24h".
    #[arg(long, value_parser = humantime::parse_duration, default_value = "24h")]
    pub cursor_ttl: Duration,
    /// Remote schedules fire on their cron (the sandbox's clock), their callbacks sent.
    #[arg(long)]
    pub fire_schedules: bool,
    /// Async callbacks misbehaving, e.g. "duplicate=1,reorder=2,drop=1,drop-replays=3,lose-create=1".
    #[arg(long, value_parser = callbacks::parse_chaos, default_value = "")]
    pub callbacks: Chaos,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: "127.0.0.1:0".parse().expect("valid"),
            api_key: "sandbox-key".into(),
            pages: 3,
            page_size: None,
            new_per_run: 0,
            rate_limit: None,
            daily_quota: None,
            fail_rate: 0.0,
            latency: None,
            seed: 1,
            credits: 1_000_000,
            cursor_ttl: Duration::from_hours(24),
            callbacks: Chaos::default(),
            fire_schedules: false,
        }
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let n = s.trim().trim_end_matches("/s");
    match n.parse::<f64>() {
        Ok(r) if r > 0.0 => Ok(r),
        _ => Err(format!("{s:?}: expected a rate like \"2/s\"")),
    }
}

/// Counters a test or benchmark can read.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub rate_limited: AtomicU64,
    pub live_pages: AtomicU64,
    /// Items returned by live runs in this billing period: each costs the account a credit.
    pub items: AtomicU64,
    pub faults: AtomicU64,
    /// v1 cursors received after they expired (a client should never send one).
    pub expired_cursors: AtomicU64,
}

/// What the simulator remembers.
pub(crate) struct State {
    opts: Options,
    base: Url,
    clock: Clock,
    pub(crate) stats: Stats,
    buckets: Mutex<HashMap<String, Bucket>>,
    daily: Mutex<HashMap<(String, chrono::NaiveDate), u64>>,
    rng: Mutex<u64>,
    pub(crate) records: Mutex<records::Records>,
    /// Credits of the current billing period (items returned count against them).
    pub(crate) credits: AtomicU64,
    /// Live runs begun, for `--new-per-run`'s never-served items.
    pub(crate) runs_begun: AtomicU64,
    /// The callback log of async runs.
    pub(crate) log: Mutex<Vec<callbacks::Entry>>,
    /// `--callbacks` still to do, and what was done.
    pub(crate) chaos: Mutex<callbacks::Counts>,
    /// Delivers callbacks (no API key: it goes to the receiver, not the API).
    pub(crate) http: reqwest::Client,
    /// Outreach requests served (their first page), per action and input.
    pub(crate) outreach: Mutex<HashMap<String, u32>>,
    /// Live runs begun (first pages served), per `X-Watchbell-Run` ("" without one).
    pub(crate) starts: Mutex<HashMap<String, u32>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A running sandbox.
pub struct Sandbox {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Sandbox {
    /// Binds and starts serving in the background.
    pub async fn start(opts: Options) -> std::io::Result<Sandbox> {
        let listener = tokio::net::TcpListener::bind(opts.listen).await?;
        let addr = listener.local_addr()?;
        let base = Url::parse(&format!("http://{addr}/v4")).expect("valid URL");
        let opts_credits = opts.credits;
        let chaos = opts.callbacks.clone();
        let state = Arc::new(State {
            rng: Mutex::new(opts.seed.max(1)),
            opts,
            base,
            clock: Clock::System,
            stats: Stats::default(),
            buckets: Mutex::default(),
            daily: Mutex::default(),
            records: Mutex::default(),
            credits: AtomicU64::new(opts_credits),
            runs_begun: AtomicU64::new(0),
            log: Mutex::default(),
            outreach: Mutex::default(),
            starts: Mutex::default(),
            chaos: Mutex::new(callbacks::Counts {
                left: chaos,
                ..callbacks::Counts::default()
            }),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(std::io::Error::other)?,
        });
        let shutdown = CancellationToken::new();
        // Remote schedules fire on the sandbox's clock.
        let (ticking, stop_ticking) = (state.clone(), shutdown.clone());
        let firing = state.opts.fire_schedules;
        tokio::spawn(async move {
            if !firing {
                return;
            }
            let mut every = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    () = stop_ticking.cancelled() => return,
                    _ = every.tick() => records::fire_due(&ticking),
                }
            }
        });
        let app = router(state.clone());
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok(Sandbox {
            addr,
            state,
            shutdown,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/v4`.
    pub fn base_url(&self) -> Url {
        self.state.base.clone()
    }

    /// `http://ADDR/v1`: the v1 endpoints and `/quotas`.
    pub fn v1_url(&self) -> Url {
        Url::parse(&format!("http://{}/v1", self.addr)).expect("valid URL")
    }

    pub fn api_key(&self) -> &str {
        &self.state.opts.api_key
    }

    /// Live runs begun (their first page served), per run as the client named it in
    /// `X-Watchbell-Run` ("" for requests without one): a run begun twice shows a 2.
    pub fn starts(&self) -> HashMap<String, u32> {
        self.state.starts.lock().expect("lock").clone()
    }

    pub fn stats(&self) -> &Stats {
        &self.state.stats
    }

    /// A new billing period with `credits`: what was used before no longer counts.
    pub fn new_period(&self, credits: u64) {
        self.state.stats.items.store(0, Ordering::Relaxed);
        self.state.credits.store(credits, Ordering::Relaxed);
    }

    /// A copy of the remote schedules, for tests that compare state before and after.
    pub fn schedules_snapshot(&self) -> Vec<serde_json::Value> {
        self.state.records.lock().expect("lock").schedules_json()
    }

    /// The callback remote schedule `uid` sends (URL and headers), as a test peeks at it.
    pub fn schedule_callback(&self, uid: &str) -> Option<serde_json::Value> {
        self.state.records.lock().expect("lock").callback_of(uid)
    }

    /// Fires remote schedule `uid` now, as its cron would; the run's uid.
    pub fn fire_schedule(&self, uid: &str) -> Option<String> {
        records::fire(&self.state, uid)
    }

    /// Acts as a person in the web app: moves a schedule's status behind watchbell's back.
    pub fn set_schedule_status(&self, uid: &str, status: &str) -> bool {
        self.state
            .records
            .lock()
            .expect("lock")
            .force_status(uid, status)
    }

    /// Outreach requests served, per "ACTION INPUT": each person contacted, and how often.
    pub fn outreach_sends(&self) -> HashMap<String, u32> {
        self.state.outreach.lock().expect("lock").clone()
    }

    /// What `--callbacks` did so far, and what is left of it.
    pub fn chaos(&self) -> (Chaos, [u64; 7]) {
        let c = self.state.chaos.lock().expect("lock");
        (
            c.left.clone(),
            [
                c.delivered,
                c.duplicated,
                c.reordered,
                c.dropped,
                c.replays,
                c.replays_dropped,
                c.creates_lost,
            ],
        )
    }

    /// Stops serving and waits for the server to end.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Serves until `shutdown` resolves.
    pub async fn run_until(self, shutdown: impl std::future::Future<Output = ()>) {
        shutdown.await;
        self.stop().await;
    }
}

fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/v4/actions/{name}/run/live", post(live::run_live))
        .route("/v4/actions/{name}/run/async", post(records::run_async))
        .route(
            "/v4/actions/{name}/run/schedule",
            post(records::create_schedule),
        )
        .route("/v4/runs", get(records::list_runs))
        .route("/v4/runs/callbacks", get(callbacks::list))
        .route("/v4/runs/callbacks/{uid}", get(callbacks::get))
        .route("/v4/runs/callbacks/{uid}/replay", post(callbacks::replay))
        .route("/v4/runs/{uid}", get(records::get_run))
        .route("/v4/runs/{uid}/resume", post(records::resume_run))
        .route("/v4/schedules", get(records::list_schedules))
        .route("/v4/schedules/{uid}", get(records::get_schedule))
        .route(
            "/v4/schedules/{uid}/{action}",
            post(records::manage_schedule),
        )
        .route("/v4/workspaces", get(records::workspace))
        .route("/v1/{*path}", get(v1::endpoint))
        .fallback(|| async {
            api_error(StatusCode::NOT_FOUND, "NOT_FOUND", None, "no such endpoint")
        })
        .with_state(state)
}

/// The API's error body.
pub(crate) fn api_error(
    status: StatusCode,
    label: &str,
    scope: Option<&str>,
    message: &str,
) -> Response {
    static REF: AtomicU64 = AtomicU64::new(10_000);
    let body = serde_json::json!({
        "error_label": label,
        "error_scope": scope,
        "error_ref": format!("ERR-{}", REF.fetch_add(1, Ordering::Relaxed)),
        "message": message,
        "status_code": status.as_u16(),
        "params": {},
    });
    (status, Json(body)).into_response()
}

/// The API's answer to a body it refuses.
pub(crate) fn invalid(message: &str) -> Response {
    api_error(
        StatusCode::BAD_REQUEST,
        "INVALID_INPUT",
        Some("input"),
        message,
    )
}

/// Which limits a request counts against.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Live,
    Other,
}

impl State {
    /// (credits of the period, credits used).
    pub(crate) fn credits(&self) -> (u64, u64) {
        (
            self.credits.load(Ordering::Relaxed),
            self.stats.items.load(Ordering::Relaxed),
        )
    }

    /// Authentication, latency, rate limits, quota and injected faults, in that order.
    pub(crate) async fn admit(&self, headers: &HeaderMap, kind: Kind) -> Result<(), Response> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let key = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if key != self.opts.api_key {
            return Err(api_error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                Some("auth"),
                "missing or invalid X-API-Key",
            ));
        }
        if let Some(l) = self.opts.latency {
            tokio::time::sleep(l).await;
        }
        if let Some(rate) = self.opts.rate_limit
            && let Err(wait) = self.take_token(key, rate)
        {
            self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            let reset = self.clock.now() + chrono::Duration::from_std(wait).unwrap_or_default();
            return Err(too_many("second", wait, reset));
        }
        if kind == Kind::Live
            && let Some(quota) = self.opts.daily_quota
        {
            let now = self.clock.now();
            let mut daily = self.daily.lock().expect("lock");
            let used = daily
                .entry((key.to_string(), now.date_naive()))
                .or_insert(0);
            if *used >= quota {
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                let midnight = (now.date_naive() + chrono::Days::new(1))
                    .and_hms_opt(0, 0, 0)
                    .expect("midnight")
                    .and_utc();
                let wait = (midnight - now).to_std().unwrap_or_default();
                return Err(too_many("daily", wait, midnight));
            }
            *used += 1;
        }
        if self.opts.fail_rate > 0.0 && self.random() < self.opts.fail_rate {
            self.stats.faults.fetch_add(1, Ordering::Relaxed);
            let status = if self.random() < 0.5 {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return Err(api_error(
                status,
                "INTERNAL_ERROR",
                Some("server"),
                "injected fault",
            ));
        }
        Ok(())
    }

    /// A token bucket per key holding one second of requests.
    fn take_token(&self, key: &str, rate: f64) -> Result<(), Duration> {
        let now = Instant::now();
        let cap = rate.max(1.0);
        let mut buckets = self.buckets.lock().expect("lock");
        let b = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: cap,
            at: now,
        });
        b.tokens = (b.tokens + (now - b.at).as_secs_f64() * rate).min(cap);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }

    /// xorshift64*: reproducible from `--seed`.
    fn random(&self) -> f64 {
        let mut s = self.rng.lock().expect("lock");
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        let r = s.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (r >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

fn too_many(kind: &str, wait: Duration, reset: DateTime<Utc>) -> Response {
    let mut resp = api_error(
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMIT_EXCEEDED",
        None,
        &format!("{kind} rate limit exceeded"),
    );
    let h = resp.headers_mut();
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    h.insert("retry-after", HeaderValue::from(secs));
    h.insert(
        "x-ratelimit-type",
        HeaderValue::from_str(kind).expect("ascii"),
    );
    let reset_secs = reset.timestamp() + i64::from(reset.timestamp_subsec_millis() > 0);
    h.insert("x-ratelimit-reset", HeaderValue::from(reset_secs));
    resp
}
