//! What operators do after runs: receive callbacks, look at runs, export, scrape metrics.

use std::process::{Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use watchbell::api::Pacer;
use watchbell::callbacks::Deliverer;
use watchbell::clock::Clock;
use watchbell::config::Config;
use watchbell::sandbox::Options;
use watchbell::signatures::{Secret, hex as signature, standard};
use watchbell::status::RunStatus;
use watchbell::store::{self, NewRun, Store, Trigger};

use crate::support::{PAGED, eventually, job, job_file, runner, sandbox, serve, watchbell};

/// A webhook receiver that answers 503 until it is told to come up.
#[derive(Clone, Default)]
struct Receiver {
    up: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
}

impl Receiver {
    async fn start(&self) -> String {
        let me = self.clone();
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: String| {
                let me = me.clone();
                async move {
                    if !me.up.load(Ordering::SeqCst) {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    me.got.lock().unwrap().push((headers, body));
                    StatusCode::OK
                }
            }),
        );
        format!("{}/hook", serve(app).await)
    }
}

/// A variable every test process has: tests cannot set one (unsafe code is forbidden here).
const SECRET_ENV: &str = "PATH";

fn hook_job(url: &str) -> String {
    job("hooked", "@yearly")
        .set(
            "webhook",
            format!("{{ url = \"{url}\", headers = {{ Authorization = \"Bearer t0k\" }}, secret_env = \"{SECRET_ENV}\" }}"),
        )
        .to_string()
}

/// Runs the hooked job once while the receiver is down; every delivery attempt fails and is kept.
async fn run_while_receiver_is_down(
    dir: &tempfile::TempDir,
    sb: &watchbell::sandbox::Sandbox,
    config: &Config,
    url: &str,
) -> String {
    let r = runner(
        dir,
        sb.base_url().as_str(),
        sb.api_key(),
        Pacer::unlimited(),
    );
    let job = config.job("hooked").unwrap();
    let new = NewRun {
        job: job.name.clone(),
        action_name: job.action.clone(),
        trigger: Trigger::Manual,
        scheduled_for: None,
        body: job.live_body_text(),
        callback_url: Some(url.to_string()),
        owner: None,
    };
    let now = r.clock.now();
    let run = r.store.create_run(new, now).await.unwrap();
    let done = r
        .execute(
            &run.uid,
            &crate::support::LIMITS,
            &watchbell::runner::Stop::new(),
        )
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    // The receiver is down: every attempt fails and is kept.
    let (_, file) = tokio::sync::watch::channel(Arc::new(config.clone()));
    let mut d = Deliverer::new(r.store.clone(), Clock::System, file);
    d.retry_base = Duration::from_millis(20);
    assert_eq!(d.deliver_due(None).await.unwrap(), 0);
    let pending = r.store.pending_count(Some(run.id)).await.unwrap();
    assert_eq!(pending, 4, "3 pages and the final status");
    run.uid
}

/// Four callbacks, in order, each signed and carrying the job's headers (never the API key).
fn assert_callbacks(got: &[(HeaderMap, String)], uid: &str) {
    assert_eq!(got.len(), 4, "each callback exactly once");
    let secret = std::env::var(SECRET_ENV).unwrap();
    let mut statuses = Vec::new();
    for (headers, body) in got {
        assert_eq!(headers["authorization"], "Bearer t0k");
        assert_eq!(
            headers["x-watchbell-signature"],
            signature(secret.as_bytes(), body.as_bytes()).as_str()
        );
        assert!(
            headers.get("x-api-key").is_none(),
            "the API key went to a receiver"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["run"]["run_uid"], uid);
        statuses.push(format!(
            "{}:{}",
            v["run"]["status"].as_str().unwrap(),
            v["run"]["batch_uid"]
        ));
    }
    assert_eq!(
        statuses,
        [
            format!("RUNNING:\"{uid}-1\""),
            format!("RUNNING:\"{uid}-2\""),
            format!("RUNNING:\"{uid}-3\""),
            format!("SUCCEEDED:\"{uid}-final\"")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_every_callback_in_order_even_across_a_restart() {
    let sb = sandbox(Options {
        pages: 3,
        page_size: Some(2),
        ..Options::default()
    })
    .await;
    let rx = Receiver::default();
    let url = rx.start().await;
    let config = Config::parse("schedules.toml", &job_file(&sb, &hook_job(&url))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let uid = run_while_receiver_is_down(&dir, &sb, &config, &url).await;
    // The process "restarts": every handle on the database was dropped.
    let store = Store::open(&dir.path().join("watchbell.db")).unwrap();
    rx.up.store(true, Ordering::SeqCst);
    let (_, file) = tokio::sync::watch::channel(Arc::new(config.clone()));
    let mut d = Deliverer::new(store.clone(), Clock::System, file);
    d.retry_base = Duration::from_millis(20);
    eventually(Duration::from_secs(10), || {
        let (d, store) = (d.clone(), store.clone());
        async move {
            d.deliver_due(None).await.unwrap();
            store.pending_count(None).await.unwrap() == 0
        }
    })
    .await;
    let got = rx.got.lock().unwrap().clone();
    assert_callbacks(&got, &uid);
    let run = store.existing_run(&uid).await.unwrap();
    let deliveries = store.deliveries_of(run.id).await.unwrap();
    assert!(
        deliveries
            .iter()
            .all(|d| d.state == watchbell::store::DeliveryState::Delivered
                && d.last_http_status == Some(200))
    );
    // In order per run: only the first was tried while the receiver was down; the rest waited.
    assert!(deliveries[0].attempts >= 2, "{deliveries:?}");
    assert!(
        deliveries[1..].iter().all(|d| d.attempts == 1),
        "{deliveries:?}"
    );
}

/// A database with known content: two runs of one job, ticks, items.
async fn known_db(dir: &tempfile::TempDir) {
    let s = Store::open(&dir.path().join("watchbell.db")).unwrap();
    let t = |x: &str| watchbell::store::parse_ts(x).unwrap();
    let mut new = NewRun {
        job: "report".into(),
        action_name: PAGED.into(),
        trigger: Trigger::Tick,
        scheduled_for: Some(t("2026-06-01T09:00:00Z")),
        body: serde_json::json!({"input": {"q": "cto"}}).to_string(),
        callback_url: None,
        owner: None,
    };
    // The tick is written at 09:00:00.004: that is the run's creation time.
    let fire = |s: &Store, new: &NewRun, nominal: &str, written: &str| {
        let batch = Arc::new((Vec::new(), vec![(t(nominal), new.clone())]));
        let (clock, _) = Clock::test(t(written));
        let s = s.clone();
        async move {
            s.record_ticks(batch, clock).await.unwrap().fired[0]
                .clone()
                .unwrap()
        }
    };
    let ok_uid = fire(&s, &new, "2026-06-01T09:00:00Z", "2026-06-01T09:00:00.004Z").await;
    s.transition(
        &ok_uid,
        RunStatus::Running,
        "t",
        None,
        t("2026-06-01T09:00:00.006Z"),
    )
    .await
    .unwrap();
    let items = vec![
        serde_json::json!({"id": "a", "name": "Ann, CTO"}),
        serde_json::json!({"id": "b", "tags": [1, 2]}),
    ];
    let page = store::NewPage::new(PAGED, 1, "http://x/1".into(), &items, None);
    s.store_page(&ok_uid, page, t("2026-06-01T09:00:01Z"))
        .await
        .unwrap();
    s.transition(
        &ok_uid,
        RunStatus::Succeeded,
        "pagination ended",
        None,
        t("2026-06-01T09:00:02Z"),
    )
    .await
    .unwrap();
    new.scheduled_for = Some(t("2026-06-02T09:00:00Z"));
    let bad_uid = fire(&s, &new, "2026-06-02T09:00:00Z", "2026-06-02T09:00:00.003Z").await;
    s.transition(
        &bad_uid,
        RunStatus::Running,
        "t",
        None,
        t("2026-06-02T09:00:00Z"),
    )
    .await
    .unwrap();
    let e = store::LastError {
        label: "INVALID_INPUT".into(),
        message: "bad url".into(),
    };
    s.transition(
        &bad_uid,
        RunStatus::Invalid,
        "invalid_input",
        Some(e),
        t("2026-06-02T09:00:01Z"),
    )
    .await
    .unwrap();
    s.skip_tick(
        "report",
        t("2026-06-03T09:00:00Z"),
        watchbell::store::SkipReason::Overlap,
    )
    .await
    .unwrap();
}

fn cli(dir: &std::path::Path, args: &[&str]) -> String {
    let out = watchbell(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_views_show_a_known_database() {
    let dir = tempfile::tempdir().unwrap();
    known_db(&dir).await;
    std::fs::write(
        dir.path().join("schedules.toml"),
        job("report", "0 9 * * *")
            .text("timezone", "Europe/Paris")
            .to_string(),
    )
    .unwrap();
    let d = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let list = cli(&d, &["runs", "list"]);
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 3, "{list}");
        assert!(
            lines[1].contains("INVALID") && lines[2].contains("SUCCEEDED"),
            "newest first: {list}"
        );
        let failed = cli(&d, &["runs", "list", "--status", "INVALID", "--json"]);
        let v: serde_json::Value = serde_json::from_str(failed.trim()).unwrap();
        assert_eq!(v["last_error"]["label"], "INVALID_INPUT");
        assert_eq!(v["execution_mode"], "LIVE");
        let ok_uid = serde_json::from_str::<serde_json::Value>(
            cli(&d, &["runs", "list", "--status", "SUCCEEDED", "--json"]).trim(),
        )
        .unwrap()["uid"]
            .as_str()
            .unwrap()
            .to_string();
        let since = cli(&d, &["runs", "list", "--since", "2026-06-02T00:00:00Z"]);
        assert_eq!(since.lines().count(), 2, "{since}");
        let show = cli(&d, &["runs", "show", &ok_uid]);
        assert!(
            show.contains("RUNNING -> SUCCEEDED         pagination ended"),
            "{show}"
        );
        assert!(
            show.contains("2 items  2026-06-01T09:00:01.000Z  http://x/1"),
            "{show}"
        );
        assert_eq!(
            cli(&d, &["runs", "results", &ok_uid, "--format", "csv"]),
            "id,name,tags\na,\"Ann, CTO\",\nb,,\"[1,2]\"\n"
        );
        let export = cli(&d, &["export", "--job", "report"]);
        let first: serde_json::Value =
            serde_json::from_str(export.lines().next().unwrap()).unwrap();
        assert_eq!(first["_run_uid"], ok_uid.as_str());
        assert_eq!(first["_job"], "report");
        assert_eq!(first["name"], "Ann, CTO");
        let ticks = cli(&d, &["ticks", "--json"]);
        let rows: Vec<serde_json::Value> = ticks
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["fired_at"], "2026-06-01T09:00:00.004Z");
        assert_eq!(rows[2]["outcome"], "skipped");
        assert_eq!(rows[2]["reason"], "overlap");
        let status = cli(&d, &["status"]);
        let line = status.lines().nth(1).unwrap();
        assert!(line.starts_with("report"), "{status}");
        // The strip, oldest to newest: a success then an invalid run; half of them succeeded;
        // both took one or two seconds.
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[..4], ["report", "yes", "SI", "50%"], "{status}");
        assert!(line.contains("1.0s") || line.contains("2.0s"), "{status}");
        assert!(line.contains("CET") || line.contains("CEST"), "{status}");
        let detail = cli(&d, &["status", "report"]);
        assert!(
            detail.starts_with("report  0 9 * * *  Europe/Paris"),
            "{detail}"
        );
        assert_eq!(
            detail.matches(" CET").count() + detail.matches(" CEST").count(),
            5,
            "{detail}"
        );
        assert!(
            detail.contains("INVALID") && detail.contains("INVALID_INPUT"),
            "{detail}"
        );
        assert!(
            detail.contains("skipped ticks: 1") && detail.contains("overlap"),
            "{detail}"
        );
        assert!(
            status.lines().all(|l| l.chars().count() <= 80),
            "wider than 80 columns:\n{status}"
        );
        assert!(!status.contains('\u{1b}'), "colours outside a terminal");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_ticks_runs_items_and_health_is_served() {
    let sb = sandbox(Options {
        pages: 2,
        page_size: Some(3),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // A daemon process of its own: its registry counts only what it did (this test process
    // shares one registry among all its tests).
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let toml = format!(
        "[daemon]\nmetrics_listen = \"{addr}\"\n{}",
        job("metered", "* * * * * *")
    );
    std::fs::write(dir.path().join("schedules.toml"), job_file(&sb, &toml)).unwrap();
    let mut daemon = crate::support::spawn(dir.path(), &sb, "daemon.log");
    let http = reqwest::Client::new();
    let scrape = || async {
        match http.get(format!("http://{addr}/metrics")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    };
    let value = |text: &str, name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = scrape().await;
        if value(
            &text,
            "watchbell_runs_total{job_name=\"metered\",status=\"SUCCEEDED\"}",
        ) >= 2.0
        {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "runs never counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let runs = value(
        &text,
        "watchbell_runs_total{job_name=\"metered\",status=\"SUCCEEDED\"}",
    );
    let fired = value(
        &text,
        "watchbell_ticks_total{outcome=\"fired\",reason=\"\"}",
    );
    let items = value(&text, "watchbell_items_stored_total{job_name=\"metered\"}");
    assert!(fired >= runs, "{text}");
    assert!(
        fired <= runs + 2.0,
        "ticks counted that this daemon did not fire:\n{text}"
    );
    assert!(items >= 6.0 * runs, "{text}");
    assert!(
        value(&text, "watchbell_fire_lateness_seconds_count") >= fired,
        "{text}"
    );
    assert!(
        text.contains("# TYPE watchbell_runs_in_flight gauge"),
        "{text}"
    );
    // Prometheus attaches `job` and `instance` itself: a scraped label of either name would be
    // renamed `exported_job` and fold every job into one series.
    assert!(
        !text.contains("{job=") && !text.contains(",job=") && !text.contains("instance="),
        "{text}"
    );
    assert!(
        text.contains("watchbell_job_last_success_timestamp_seconds{job_name=\"metered\"}"),
        "{text}"
    );
    let health = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    crate::support::signal(&daemon, "-TERM");
    assert!(crate::support::wait_exit(&mut daemon).await.success());
}

/// A stock Prometheus server scraping a daemon that runs two jobs sees one series per job for
/// `sum by (job_name) (watchbell_runs_total)`. Ignored: it needs a `prometheus` binary
/// (Debian's package, 2.42 tested). Run it with
/// `cargo test --test it real_prometheus -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a prometheus binary on PATH"]
async fn a_real_prometheus_sees_one_series_per_job() {
    let Ok(prometheus) = which("prometheus") else {
        eprintln!("skipped: no prometheus binary on PATH");
        return;
    };
    let sb = sandbox(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let free = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (metrics, web) = (free(), free());
    let toml = format!(
        "[daemon]\nmetrics_listen = \"{metrics}\"\n{}{}",
        job("maps", "* * * * * *"),
        job("places", "*/2 * * * * *")
    );
    std::fs::write(dir.path().join("schedules.toml"), job_file(&sb, &toml)).unwrap();
    let mut daemon = crate::support::spawn(dir.path(), &sb, "daemon.log");
    // The stock configuration's shape: one scrape job, no honor_labels.
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: watchbell\n    static_configs:\n      - targets: ['{metrics}']\n"
        ),
    )
    .unwrap();
    let mut server = Process::new(prometheus)
        .arg(format!(
            "--config.file={}/prometheus.yml",
            dir.path().display()
        ))
        .arg(format!("--storage.tsdb.path={}/tsdb", dir.path().display()))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_mins(1);
    let series = loop {
        let series = query(web, "sum by (job_name) (watchbell_runs_total)")
            .await
            .unwrap_or_default();
        if series.len() >= 2 || tokio::time::Instant::now() > deadline {
            break series;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut names: Vec<&str> = series
        .iter()
        .filter_map(|s| s["metric"]["job_name"].as_str())
        .collect();
    names.sort_unstable();
    eprintln!("sum by (job_name) (watchbell_runs_total): {series:?}");
    assert_eq!(names, ["maps", "places"], "{series:?}");
    let gauges = query(web, "watchbell_job_last_finish_timestamp_seconds")
        .await
        .unwrap_or_default();
    assert_eq!(gauges.len(), 2, "{gauges:?}");
    assert!(
        gauges
            .iter()
            .all(|g| g["metric"]["job"] == "watchbell" && g["metric"]["exported_job"].is_null()),
        "{gauges:?}"
    );
    dashboard_draws_one_line_per_job(web).await;
    let _ = server.kill();
    let _ = server.wait();
    crate::support::signal(&daemon, "-TERM");
    assert!(crate::support::wait_exit(&mut daemon).await.success());
}

/// Every per-job panel of the shipped dashboard, asked of a real Prometheus at `web`, draws one
/// line per job.
async fn dashboard_draws_one_line_per_job(web: std::net::SocketAddr) {
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../contrib/grafana/watchbell.json")).unwrap();
    let mut panels = 0;
    for target in dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
    {
        if !target["legendFormat"]
            .as_str()
            .unwrap_or("")
            .contains("{{job_name}}")
        {
            continue;
        }
        let expr = target["expr"]
            .as_str()
            .unwrap()
            .replace("$instance", ".*")
            .replace("$job_name", ".*");
        let expr = expr.as_str();
        // Rates need two scrapes of each series.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let (jobs, series) = loop {
            let series = query(web, expr).await.unwrap_or_default();
            let mut jobs: Vec<String> = series
                .iter()
                .filter_map(|s| s["metric"]["job_name"].as_str().map(str::to_string))
                .collect();
            jobs.sort_unstable();
            jobs.dedup();
            if jobs.len() >= 2 || tokio::time::Instant::now() > deadline {
                break (jobs, series);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        assert_eq!(jobs, ["maps", "places"], "{expr}: {series:?}");
        panels += 1;
    }
    eprintln!("{panels} per-job dashboard queries: one series set per job");
    assert!(panels >= 5, "{panels}");
}

/// The result of an instant query to the Prometheus at `web`.
async fn query(web: std::net::SocketAddr, q: &str) -> Option<Vec<serde_json::Value>> {
    let url =
        reqwest::Url::parse_with_params(&format!("http://{web}/api/v1/query"), &[("query", q)])
            .ok()?;
    let r = reqwest::get(url).await.ok()?;
    let v: serde_json::Value = r.json().await.ok()?;
    Some(v["data"]["result"].as_array()?.clone())
}

/// The path of `name` on PATH.
fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

/// A webhook whose secret is a `whsec_` value gets Standard Webhooks headers beside the old
/// one: the id fixed per delivery (the same on a retry), the timestamp of each attempt, and a
/// signature that an independent implementation (Python's standard library, when the machine
/// has python3) verifies. A `whsec_` secret too short to sign is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whsec_secrets_sign_deliveries_as_standard_webhooks() {
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    // Every attempt, in order; the very first is answered 503 so that one delivery is retried.
    let got: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
    let seen = got.clone();
    let hook = serve(Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let mut got = seen.lock().unwrap();
                got.push((headers, body));
                if got.len() == 1 {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        }),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let toml = job("signed", "0 9 * * 1").set(
        "webhook",
        format!("{{ url = \"{hook}/hook\", secret_env = \"HOOK_SECRET\" }}"),
    );
    std::fs::write(dir.path().join("schedules.toml"), toml.to_string()).unwrap();
    let trigger = |secret: &'static str| {
        let d = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            watchbell(&d)
                .args(["trigger", "signed", "--sandbox"])
                .env("HOOK_SECRET", secret)
                .output()
                .unwrap()
        })
    };
    let short = trigger("whsec_AAECAwQF").await.unwrap();
    assert_eq!(short.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&short.stderr).contains("a whsec_ secret needs at least 24"),
        "{}",
        String::from_utf8_lossy(&short.stderr)
    );
    let out = trigger(SECRET).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 5, "4 deliveries, the first attempted twice");
    let header = |h: &HeaderMap, n: &str| h[n].to_str().unwrap().to_string();
    let ids: Vec<String> = got.iter().map(|(h, _)| header(h, "webhook-id")).collect();
    assert_eq!(ids[0], ids[1], "a retry keeps its webhook-id");
    assert_eq!(got[0].1, got[1].1);
    let mut distinct = ids.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "{ids:?}");
    let Secret::Standard { keys, .. } = Secret::parse(SECRET).unwrap() else {
        panic!("a whsec_ secret");
    };
    let mut signed = Vec::new();
    for (h, body) in &got {
        let ts: i64 = header(h, "webhook-timestamp").parse().unwrap();
        assert!((Clock::System.now().timestamp() - ts).abs() < 300);
        let id = header(h, "webhook-id");
        let sig = header(h, "webhook-signature");
        assert_eq!(sig, standard(&keys, &id, ts, body.as_bytes()));
        assert_eq!(
            header(h, "x-watchbell-signature"),
            signature(SECRET.as_bytes(), body.as_bytes())
        );
        signed.push(serde_json::json!({"id": id, "ts": ts, "body": body, "sig": sig}));
    }
    verified_elsewhere(SECRET, &signed);
}

/// The Standard Webhooks check of each `{id, ts, body, sig}`, by another implementation of
/// HMAC and base64: Python's standard library, when the machine has python3.
fn verified_elsewhere(secret: &str, signed: &[serde_json::Value]) {
    let verify = r#"
import base64, hashlib, hmac, json, sys
key = base64.b64decode(sys.argv[1].split("_", 1)[1])
for m in json.load(sys.stdin):
    mac = hmac.new(key, f"{m['id']}.{m['ts']}.{m['body']}".encode(), hashlib.sha256).digest()
    want = "v1," + base64.b64encode(mac).decode()
    assert hmac.compare_digest(want, m["sig"]), m["id"]
"#;
    match Process::new("python3")
        .args(["-c", verify, secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(mut py) => {
            use std::io::Write as _;
            py.stdin
                .take()
                .unwrap()
                .write_all(serde_json::to_string(signed).unwrap().as_bytes())
                .unwrap();
            let out = py.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "python3 refused a signature: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(e) => eprintln!("skipped the independent check: no python3 ({e})"),
    }
}
