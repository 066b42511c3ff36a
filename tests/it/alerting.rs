//! Alerting over real sockets: a failing job is retried, then notified once and pinged
//! `/start` and `/fail`; a succeeding one pinged `/start` and its bare URL; per-job gauges read
//! from the database survive a daemon restart.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::post;
use watchbell::api::Pacer;
use watchbell::callbacks::Deliverer;
use watchbell::clock::Clock;
use watchbell::config::Config;
use watchbell::runner::{Limits, Stop};
use watchbell::sandbox::Options;
use watchbell::status::RunStatus;
use watchbell::store::Trigger;

use crate::support::{self, PAGED, body, job, job_file, runner, sandbox, serve};

/// A server whose live endpoint answers `status`, and which records what reaches `/notify` and
/// `/ping/...`.
struct Receiver {
    base: String,
    notified: Arc<Mutex<Vec<serde_json::Value>>>,
    pinged: Arc<Mutex<Vec<String>>>,
}

async fn receiver(status: StatusCode) -> Receiver {
    let notified: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let pinged: Arc<Mutex<Vec<String>>> = Arc::default();
    let (n, p) = (notified.clone(), pinged.clone());
    let app = Router::new()
        .route(
            "/v4/actions/{name}/run/live",
            post(move || async move {
                if status == StatusCode::OK {
                    (status, "[{\"google_maps_place_url\":\"u\"}]".to_string())
                } else {
                    (
                        status,
                        "{\"error_label\":\"INTERNAL_ERROR\",\"message\":\"boom\"}".to_string(),
                    )
                }
            }),
        )
        .route(
            "/notify",
            post(move |axum::Json(v): axum::Json<serde_json::Value>| {
                let n = n.clone();
                async move {
                    n.lock().unwrap().push(v);
                    StatusCode::OK
                }
            }),
        )
        .route(
            "/ping/{*rest}",
            post(move |Path(rest): Path<String>| {
                let p = p.clone();
                async move {
                    p.lock().unwrap().push(rest);
                    StatusCode::OK
                }
            }),
        );
    Receiver {
        base: serve(app).await,
        notified,
        pinged,
    }
}

/// The job `name` of a file with retry, notify and ping pointing at `rx`.
fn alerting_config(rx: &Receiver, name: &str) -> Config {
    let base = &rx.base;
    let text = format!(
        "[api]\nbase_url = \"{base}/v4\"\n{}",
        job(name, "@yearly")
            .set("retry", "{ attempts = 2, backoff = \"100ms\" }")
            .set("notify", format!("{{ url = \"{base}/notify\" }}"))
            .set("ping", format!("\"{base}/ping/{name}\"")),
    );
    Config::parse("t", &text).unwrap()
}

async fn run_job(rx: &Receiver, name: &str) -> (watchbell::store::RunRecord, Config) {
    let config = alerting_config(rx, name);
    let dir = tempfile::tempdir().unwrap();
    let r = runner(&dir, &format!("{}/v4", rx.base), "k", Pacer::unlimited());
    let job = config.job(name).unwrap();
    let run = r
        .store
        .create_run(
            job.new_run(Trigger::Manual, None, None),
            Clock::System.now(),
        )
        .await
        .unwrap();
    let done = r
        .run_to_end(&run.uid, &Limits::of(job), &Stop::new())
        .await
        .unwrap();
    let (_, file) = tokio::sync::watch::channel(Arc::new(config.clone()));
    let d = Deliverer::new(r.store.clone(), Clock::System, file);
    support::eventually(Duration::from_secs(10), || {
        let (d, s) = (d.clone(), r.store.clone());
        async move {
            d.deliver_due(None).await.unwrap();
            s.pending_count(None).await.unwrap() == 0
        }
    })
    .await;
    let history = r.store.transitions(done.id).await.unwrap();
    let reasons: Vec<String> = history.iter().filter_map(|t| t.reason.clone()).collect();
    if name == "broken" {
        assert!(
            reasons.contains(&"retry 1/2".to_string())
                && reasons.contains(&"retry 2/2".to_string()),
            "{reasons:?}"
        );
    }
    drop(dir);
    (done, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_is_retried_then_notified_once_and_pinged_start_and_fail() {
    let rx = receiver(StatusCode::INTERNAL_SERVER_ERROR).await;
    let (done, _) = run_job(&rx, "broken").await;
    assert_eq!(done.status, RunStatus::Failed);
    assert_eq!(done.retry_count, 2);
    let notified = rx.notified.lock().unwrap().clone();
    assert_eq!(notified.len(), 1, "{notified:?}");
    let text = notified[0]["text"].as_str().unwrap();
    assert!(
        text.contains("job broken") && text.contains("FAILED"),
        "{text}"
    );
    assert_eq!(notified[0]["status"], "FAILED");
    assert_eq!(*rx.pinged.lock().unwrap(), ["broken/start", "broken/fail"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_succeeding_job_is_pinged_start_then_its_bare_url_and_not_notified() {
    let rx = receiver(StatusCode::OK).await;
    let (done, _) = run_job(&rx, "fine").await;
    assert_eq!((done.status, done.retry_count), (RunStatus::Succeeded, 0));
    assert!(rx.notified.lock().unwrap().is_empty());
    assert_eq!(*rx.pinged.lock().unwrap(), ["fine/start", "fine"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_job_gauges_come_from_the_database_after_a_restart() {
    let sb = sandbox(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    // Before the "restart": one success for `ok`, two failures for `bad` (runs made in this
    // process, as `trigger` would).
    let r = runner(
        &dir,
        sb.base_url().as_str(),
        sb.api_key(),
        Pacer::unlimited(),
    );
    for (job, b) in [
        ("ok", body()),
        ("bad", serde_json::json!({"input": {"nope": 1}})),
        ("bad", serde_json::json!({"input": {"nope": 2}})),
    ] {
        let run = r
            .store
            .create_run(support::new_run(job, PAGED, &b), Clock::System.now())
            .await
            .unwrap();
        r.execute(&run.uid, &support::LIMITS, &Stop::new())
            .await
            .unwrap();
    }
    drop(r);
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let jobs = format!(
        "[daemon]\nmetrics_listen = \"{addr}\"\n{}{}{}",
        job("ok", "@yearly"),
        job("bad", "@yearly"),
        job("never", "0 9 * * *")
    );
    std::fs::write(dir.path().join("schedules.toml"), job_file(&sb, &jobs)).unwrap();
    let mut daemon = support::spawn(dir.path(), &sb, "daemon.log");
    let mut text = String::new();
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("http://{addr}/metrics")).await {
            text = r.text().await.unwrap_or_default();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    let now = Clock::System.now().timestamp() as f64;
    let success =
        value("watchbell_job_last_success_timestamp_seconds{job_name=\"ok\"}").expect(&text);
    assert!((now - success).abs() < 120.0, "{success} vs {now}");
    assert_eq!(
        value("watchbell_job_consecutive_failures{job_name=\"bad\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value("watchbell_job_consecutive_failures{job_name=\"ok\"}"),
        Some(0.0),
        "{text}"
    );
    let next = value("watchbell_job_next_tick_timestamp_seconds{job_name=\"never\"}").expect(&text);
    assert!(next > now && next <= now + 86_400.0, "{next}");
    assert_eq!(
        value("watchbell_job_last_success_timestamp_seconds{job_name=\"never\"}"),
        None
    );

    credits_are_exported_and_shown(addr, dir.path(), &sb).await;
    support::signal(&daemon, "-TERM");
    assert!(support::wait_exit(&mut daemon).await.success());
}

/// The account's credits: read by the daemon from the sandbox, whose credits fell by one per
/// item returned; exported and shown in the footer of `status`.
async fn credits_are_exported_and_shown(
    addr: std::net::SocketAddr,
    dir: &std::path::Path,
    sb: &watchbell::sandbox::Sandbox,
) {
    let served = sb.stats().items.load(std::sync::atomic::Ordering::Relaxed);
    assert!(served > 0);
    let left = 1_000_000 - served;
    let deadline = tokio::time::Instant::now() + support::WAIT;
    let credits = loop {
        let text = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let found = text
            .lines()
            .find_map(|l| l.strip_prefix("watchbell_credits_left "))
            .map(str::to_string);
        if found.is_some() || tokio::time::Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(credits, Some(left.to_string()));
    let out = support::watchbell(dir).arg("status").output().unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    let digits = left.to_string();
    let shown = format!("{},{}", &digits[..3], &digits[3..]);
    assert!(
        status.contains(&format!(
            "credits {shown} of 1,000,000 (plan sandbox, read "
        )),
        "{status}"
    );
}
