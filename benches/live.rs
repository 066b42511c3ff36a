//! Live-run benchmarks, each printed as a ratio against a baseline measured in the same process:
//! 1. rate-limit efficiency: watchbell's shared pacer vs a naive client (fixed exponential
//!    backoff on 429, no pacing), both against a sandbox limited to R requests per second;
//! 2. ingest: pages of 100 items fetched and stored, vs the same fetches with storage off.
//!
//! Run: `cargo bench --bench live` (both), or name one: `cargo bench --bench live -- ingest`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use watchbell::api::{ApiKey, Attempts, Client, Pacer};
use watchbell::clock::Clock;
use watchbell::runner::{Limits, Runner, Stop};
use watchbell::sandbox::{Options, Sandbox};
use watchbell::store::{NewRun, Store, Trigger};

const RATE: f64 = 20.0;
const RUNS: u32 = 8;
const PAGES_PER_RUN: u32 = 25;
/// A paginated catalog action without identities (the sandbox validates bodies against it).
const ACTION: &str = "googlemaps-search-places";

/// The body of run `i`: the same search, told apart by its `custom_data`.
fn body(i: u32) -> serde_json::Value {
    serde_json::json!({"input": {
        "google_maps_search_url": "https://www.google.com/maps/search/pizza",
        "custom_data": {"n": i},
    }})
}

fn client(sb: &Sandbox, pacer: Pacer) -> Client {
    Client::new(
        sb.base_url(),
        ApiKey::new(sb.api_key()),
        Arc::new(pacer),
        Duration::from_secs(30),
        Clock::System,
    )
    .unwrap()
}

fn runner(sb: &Sandbox, pacer: Pacer, dir: &tempfile::TempDir) -> Runner {
    Runner {
        store: Store::open(&dir.path().join("bench.db")).unwrap(),
        client: client(sb, pacer),
        clock: Clock::System,
        safety: watchbell::config::Safety::default(),
        receiver: None,
    }
}

/// K concurrent runs through watchbell's runner; returns the wall time.
async fn watchbell_runs(r: &Runner, runs: u32) -> Duration {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..runs {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            let new = NewRun {
                job: "bench".into(),
                action_name: ACTION.into(),
                trigger: Trigger::Manual,
                scheduled_for: None,
                body: body(i).to_string(),
                callback_url: None,
                owner: None,
            };
            let now = r.clock.now();
            let run = r.store.create_run(new, now).await.unwrap();
            let limits = Limits::bounds(10_000, Duration::from_hours(1));
            let done = r.execute(&run.uid, &limits, &Stop::new()).await.unwrap();
            assert_eq!(done.status, watchbell::status::RunStatus::Succeeded);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

/// The naive client: no pacing, on 429 sleep 100 ms doubling up to 5 s.
async fn naive_runs(sb: &Sandbox, runs: u32) -> Duration {
    let http = reqwest::Client::new();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..runs {
        let http = http.clone();
        let first = format!("{}/actions/{ACTION}/run/live", sb.base_url());
        let key = sb.api_key().to_string();
        tasks.push(tokio::spawn(async move {
            let body = body(i);
            let mut url = Some(first);
            let mut backoff = Duration::from_millis(100);
            while let Some(u) = url.take() {
                let resp = http
                    .post(&u)
                    .header("X-API-Key", &key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                if resp.status() == 429 {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    url = Some(u);
                    continue;
                }
                backoff = Duration::from_millis(100);
                url = resp
                    .headers()
                    .get("x-pagination-next")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let _ = resp.bytes().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

async fn rate_limit_efficiency() {
    let total = f64::from(RUNS * PAGES_PER_RUN);
    let ideal = total / RATE;
    println!(
        "rate-limit efficiency: sandbox at {RATE} req/s, {RUNS} concurrent runs x {PAGES_PER_RUN} pages = {total} pages, ideal {ideal:.2} s"
    );
    for name in ["watchbell", "naive"] {
        let sb = Sandbox::start(Options {
            pages: PAGES_PER_RUN,
            page_size: Some(10),
            rate_limit: Some(RATE),
            ..Options::default()
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let wall = if name == "watchbell" {
            let r = runner(&sb, Pacer::new(RATE), &dir);
            watchbell_runs(&r, RUNS).await
        } else {
            naive_runs(&sb, RUNS).await
        };
        let requests = sb.stats().requests.load(Ordering::Relaxed);
        let limited = sb.stats().rate_limited.load(Ordering::Relaxed);
        println!(
            "  {name:<10} wall {:>6.2} s  ratio to ideal {:>5.3}  requests {requests:>4}  429s {limited:>4} ({:.1}% of requests)",
            wall.as_secs_f64(),
            wall.as_secs_f64() / ideal,
            100.0 * limited as f64 / requests as f64
        );
        sb.stop().await;
    }
}

async fn ingest() {
    const RUNS: u32 = 4;
    const PAGES: u32 = 100;
    let sb = Sandbox::start(Options {
        pages: PAGES,
        page_size: Some(100),
        ..Options::default()
    })
    .await
    .unwrap();
    let items = f64::from(RUNS * PAGES * 100);
    // Baseline: the same fetches with storage off.
    let c = client(&sb, Pacer::unlimited());
    let cpu0 = cpu();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..RUNS {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let body = body(i);
            let mut url = Some(c.live_url(ACTION));
            let mut n = 0;
            while let Some(u) = url.take() {
                let page = c
                    .live_page(&u, Some(&body), &mut Attempts::default(), None, None)
                    .await
                    .unwrap();
                n += page.items.len();
                url = page.next;
            }
            n
        }));
    }
    let mut fetched = 0;
    for t in tasks {
        fetched += t.await.unwrap();
    }
    let fetch_only = start.elapsed();
    let cpu1 = cpu();
    assert_eq!(fetched, (RUNS * PAGES * 100) as usize);
    let dir = tempfile::tempdir().unwrap();
    let r = runner(&sb, Pacer::unlimited(), &dir);
    let cpu2 = cpu();
    let stored = watchbell_runs(&r, RUNS).await;
    let cpu3 = cpu();
    println!(
        "ingest: {RUNS} concurrent runs x {PAGES} pages x 100 items = {items} items, sandbox unlimited"
    );
    println!(
        "  fetch only     {:>6.2} s  {:>9.0} items/s  CPU {:.2} s",
        fetch_only.as_secs_f64(),
        items / fetch_only.as_secs_f64(),
        cpu1 - cpu0
    );
    println!(
        "  fetch + store  {:>6.2} s  {:>9.0} items/s  CPU {:.2} s  {:.3} of the fetch-only rate (goal >= 0.8)",
        stored.as_secs_f64(),
        items / stored.as_secs_f64(),
        cpu3 - cpu2,
        fetch_only.as_secs_f64() / stored.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| name.contains(o.as_str()));
    if wanted("rate-limit") {
        rate_limit_efficiency().await;
    }
    if wanted("ingest") {
        ingest().await;
    }
}

/// CPU seconds this process used so far, user and system (`/proc/self/stat`, in 10 ms ticks).
fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}
