//! Tick precision and cost: watchbell's daemon and tokio-cron-scheduler driven the same way, in
//! the same run, each scenario in a fresh child process so CPU seconds and peak RSS are its own.
//!
//! Scenarios: 1,000 per-second jobs; 10,000 jobs due at the same instant; 10,000 idle yearly jobs;
//! 10,000 per-second jobs saturating the runs; and 1,000 per-second jobs beside a job whose
//! inputs file has 100,000 rows (`list`), against the same 1,000 jobs alone (`list-baseline`),
//! both paced at 1,000 requests a second: the list's run pages its inputs throughout the window,
//! and the per-second jobs' ticks (the list job's own are left out) are compared.
//! watchbell's lateness comes from its ticks table (fired_at - scheduled_for); its runs go to a
//! sandbox answering one page of one item at once. The sandbox stands in for the remote API: it
//! runs in a process of its own (so the RSS figures are the daemon's alone), serving from
//! threads at the run threads' lower priority. tokio-cron-scheduler's jobs record when
//! they were called and return at once.
//!
//! With `WATCHBELL_TEST_PG_URL` set (`source .ci/pg start`), the per-second scenario also runs
//! with the state on `PostgreSQL` (a database of its own, the daemon leading it and every write
//! fenced as a cluster's leader's are), and its p99 is given as a ratio to `SQLite`'s.
//!
//! Run: `cargo run --release --manifest-path bench/ticks/Cargo.toml`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use watchbell::clock::Clock;

#[derive(Clone, Copy)]
enum Scenario {
    PerSecond,
    SameInstant,
    IdleYearly,
    Saturated,
    /// 1,000 per-second jobs and a 100,000-input list, paced at 1,000/s.
    List,
    /// The same 1,000 per-second jobs alone, paced at 1,000/s.
    ListBaseline,
    /// 1,000 per-second jobs with the callback receiver on, under 1,000 forged callbacks a
    /// second from another process.
    Forged,
    /// The same, with the receiver on and nobody calling it.
    ForgedBaseline,
}

/// Forged callbacks a second in the `forged` scenario.
const FORGED_RATE: u32 = 1_000;

/// Rows of the list scenario's inputs file.
const LIST_ROWS: usize = 100_000;

impl Scenario {
    fn parse(s: &str) -> Scenario {
        match s {
            "per-second" => Scenario::PerSecond,
            "same-instant" => Scenario::SameInstant,
            "saturated" => Scenario::Saturated,
            "list" => Scenario::List,
            "list-baseline" => Scenario::ListBaseline,
            "forged" => Scenario::Forged,
            "forged-baseline" => Scenario::ForgedBaseline,
            _ => Scenario::IdleYearly,
        }
    }
    fn jobs(self) -> usize {
        match self {
            Scenario::PerSecond
            | Scenario::List
            | Scenario::ListBaseline
            | Scenario::Forged
            | Scenario::ForgedBaseline => 1_000,
            _ => 10_000,
        }
    }
}

/// CPU seconds (user + system) of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0 // USER_HZ
}

/// Peak resident set size in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
}

struct Outcome {
    lateness_ms: Vec<f64>,
    expected: usize,
    window_s: f64,
    cpu_s: f64,
    /// From process start to the measured window (includes 1.5 s of settling).
    startup_s: f64,
    /// Pages the list's run stored in the window (one input each).
    list_pages: u32,
    /// Forged callbacks sent, and how many the receiver refused.
    forged: (u64, u64),
}

/// The window a scenario measures: (expression, seconds to run, target instant if any).
fn plan(s: Scenario, now: DateTime<Utc>) -> (String, u64, Option<DateTime<Utc>>) {
    match s {
        Scenario::PerSecond => ("* * * * * *".into(), 10, None),
        Scenario::SameInstant => {
            let at = (now + chrono::Duration::seconds(15)).with_nanosecond(0).unwrap();
            (format!("{} {} {} * * *", at.second(), at.minute(), at.hour()), 0, Some(at))
        }
        Scenario::IdleYearly => ("0 0 0 1 1 *".into(), 60, None),
        Scenario::Saturated => ("* * * * * *".into(), 10, None),
        Scenario::List | Scenario::ListBaseline => ("* * * * * *".into(), 20, None),
        Scenario::Forged | Scenario::ForgedBaseline => ("* * * * * *".into(), 15, None),
    }
}

/// `watchbell-tick-bench serve-sandbox`: serves a sandbox, prints its URL and key as one JSON
/// line, and stops when its standard input closes.
fn serve_sandbox() {
    use watchbell::sandbox::{Options, Sandbox};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let sb = watchbell::daemon::workers::handle()
            .spawn(Sandbox::start(Options { pages: 1, page_size: Some(1), ..Options::default() }))
            .await
            .unwrap()
            .unwrap();
        println!("{}", serde_json::json!({"url": sb.base_url().to_string(), "key": sb.api_key()}));
        tokio::task::spawn_blocking(|| std::io::read_to_string(std::io::stdin())).await.unwrap().ok();
    });
}

/// `watchbell-tick-bench forge URL`: POSTs forged callbacks (random run uids, a wrong token) to
/// the receiver at `URL`, `FORGED_RATE` a second, until its standard input closes; then prints
/// how many it sent and how many were refused (4xx).
fn forge(url: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    // A sender on another machine does not take this one's CPU: like the sandbox, the forger
    // yields to the daemon when the two cores are short.
    let _ = std::process::Command::new("renice")
        .args(["-n", "10", "-p", &std::process::id().to_string()])
        .output();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let (sent, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let done = tokio::task::spawn_blocking(|| std::io::read_to_string(std::io::stdin()));
        tokio::pin!(done);
        let mut every = tokio::time::interval(Duration::from_micros(1_000_000 / u64::from(FORGED_RATE)));
        let body = r#"{"run":{"run_uid":"x","batch_uid":"b","status":"RUNNING"},"results":[]}"#;
        let mut n = 0u64;
        loop {
            tokio::select! {
                _ = &mut done => break,
                _ = every.tick() => {}
            }
            n += 1;
            let req = http
                .post(format!("{url}/callbacks/r/00000000-0000-4000-8000-{n:012}"))
                .header("authorization", "Bearer forged")
                .header("content-type", "application/json")
                .body(body);
            let (sent, refused) = (sent.clone(), refused.clone());
            tokio::spawn(async move {
                sent.fetch_add(1, Ordering::Relaxed);
                if req.send().await.is_ok_and(|r| r.status().is_client_error()) {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        println!("{} {}", sent.load(Ordering::Relaxed), refused.load(Ordering::Relaxed));
    });
}

/// The forger process aimed at `url`.
fn forger_process(url: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["forge", url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The sandbox process, and the URL and key it serves with.
fn sandbox_process() -> (std::process::Child, url::Url, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("serve-sandbox")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    (child, v["url"].as_str().unwrap().parse().unwrap(), v["key"].as_str().unwrap().to_string())
}

/// A fresh `PostgreSQL` database on the server at `WATCHBELL_TEST_PG_URL`, its store fenced by
/// a lead this process takes and renews (as a cluster's leader's writes are).
async fn postgres_store() -> watchbell::store::Store {
    use watchbell::store::pg::{self, Target, leader};
    let admin = std::env::var("WATCHBELL_TEST_PG_URL").unwrap();
    let name = format!("wb_tick_bench_{}", std::process::id());
    let c = pg::connect(&Target::parse(&admin).unwrap()).await.unwrap();
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
    c.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&name);
    let target = Target::parse(url.as_str()).unwrap();
    let store = watchbell::store::Store::open_postgres(&target, Duration::from_secs(5)).unwrap();
    let mut lead = pg::connect(&target).await.unwrap();
    let t = leader::Timings::default();
    let leader::Attempt::Leads { epoch, .. } = leader::attempt(&mut lead, "bench", "", t).await.unwrap() else {
        panic!("a fresh database has no leader");
    };
    store.set_fence(Some(("bench".into(), epoch))).await.unwrap();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(t.renew).await;
            let _ = leader::attempt(&mut lead, "bench", "", t).await;
        }
    });
    store
}

async fn watchbell(s: Scenario, postgres: bool) -> Outcome {
    let (mut sandbox, base_url, key) = sandbox_process();
    let dir = tempfile::tempdir().unwrap();
    let now = Clock::System.now();
    let (expr, secs, target) = plan(s, now);
    let mut toml = format!(
        "[api]\nbase_url = \"{}\"\nplan = \"highest\"\n[daemon]\nmax_concurrent_runs = 64\n",
        base_url
    );
    for i in 0..s.jobs() {
        toml.push_str(&format!("[[job]]\nname = \"j{i}\"\ncron = \"{expr}\"\naction = \"googlemaps-search-places\"\ninput = {{ google_maps_search_url = \"https://www.google.com/maps/search/j{i}\" }}\n"));
    }
    if matches!(s, Scenario::List) {
        let mut csv = String::from("google_maps_search_url,custom_data.row\n");
        for i in 0..LIST_ROWS {
            csv.push_str(&format!("https://www.google.com/maps/search/row{i},{i}\n"));
        }
        std::fs::write(dir.path().join("rows.csv"), csv).unwrap();
        toml.push_str("[[job]]\nname = \"list\"\ncron = \"* * * * * *\"\naction = \"googlemaps-search-places\"\ninputs_file = \"rows.csv\"\n");
    }
    let receiving = matches!(s, Scenario::Forged | Scenario::ForgedBaseline);
    let listener = if receiving {
        Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
    } else {
        None
    };
    let receiver_url = listener.as_ref().map(|l| format!("http://{}", l.local_addr().unwrap()));
    if let Some(url) = &receiver_url {
        toml = toml.replacen(
            "[daemon]",
            &format!("[receiver]\nlisten = \"127.0.0.1:0\"\npublic_url = \"{url}\"\n[daemon]"),
            1,
        );
    }
    let path = dir.path().join("schedules.toml");
    std::fs::write(&path, toml).unwrap();
    let config = watchbell::config::Config::load(&path).unwrap();
    let store = if postgres {
        postgres_store().await
    } else {
        watchbell::store::Store::open(&dir.path().join("w.db")).unwrap()
    };
    let client = watchbell::api::Client::new(
        base_url,
        watchbell::api::ApiKey::new(&key),
        Arc::new(match s {
            Scenario::List | Scenario::ListBaseline => watchbell::api::Pacer::new(1000.0),
            _ => watchbell::api::Pacer::unlimited(),
        }),
        Duration::from_secs(30),
        Clock::System,
    )
    .unwrap();
    let runner = watchbell::runner::Runner {
        store: store.clone(),
        client,
        clock: Clock::System,
        safety: watchbell::config::Safety::default(),
        receiver: config.receiver.clone(),
    };
    let (_reload, reloads) = tokio::sync::mpsc::channel(1);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = watchbell::daemon::Daemon {
        config,
        config_path: path,
        runner,
        reloads,
        heartbeat: watchbell::scheduler::Heartbeat::default(),
        metrics: None,
        receiver: listener,
        credits_every: watchbell::daemon::credits::EVERY,
        missed: watchbell::store::SkipReason::DaemonDown,
        handover: std::sync::Arc::default(),
    };
    let task = tokio::spawn(daemon.run(async {
        let _ = stopped.await;
    }));
    let mut forger = match (s, &receiver_url) {
        (Scenario::Forged, Some(url)) => Some(forger_process(url)),
        _ => None,
    };
    // Let start-up finish, then measure a window of whole seconds.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let startup_s = (Clock::System.now() - now).num_milliseconds() as f64 / 1000.0;
    let cpu0 = cpu_seconds();
    let start = Clock::System.now();
    tokio::time::sleep(window(secs, target)).await;
    let end = Clock::System.now();
    let cpu_s = cpu_seconds() - cpu0;
    let forged = forger.take().map_or((0, 0), |mut f| {
        drop(f.stdin.take());
        let out = f.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut n = text.split_whitespace().map(|w| w.parse::<u64>().unwrap_or(0));
        (n.next().unwrap_or(0), n.next().unwrap_or(0))
    });
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    drop(sandbox.stdin.take());
    let _ = sandbox.wait();
    let list_pages = store
        .list_runs(watchbell::store::RunFilter { job: Some("list".into()), ..Default::default() })
        .await
        .unwrap()
        .iter()
        .map(|r| r.pages)
        .sum();
    let ticks = store.ticks(None, None).await.unwrap();
    let mut lateness_ms = Vec::new();
    for t in &ticks {
        let nominal = watchbell::store::parse_ts(&t.scheduled_for).unwrap();
        if nominal <= start || nominal > end - chrono::Duration::seconds(1) || t.job == "list" {
            continue;
        }
        if let Some(f) = t.fired_at.as_deref().and_then(watchbell::store::parse_ts) {
            lateness_ms.push((f - nominal).num_microseconds().unwrap() as f64 / 1000.0);
        }
    }
    Outcome { lateness_ms, expected: expected(s, start, end), window_s: (end - start).num_milliseconds() as f64 / 1000.0, cpu_s, startup_s, list_pages, forged }
}

/// How long to measure: `secs`, or until three seconds after the target instant.
fn window(secs: u64, target: Option<DateTime<Utc>>) -> Duration {
    match target {
        Some(at) => (at + chrono::Duration::seconds(3) - Clock::System.now()).to_std().unwrap_or_default(),
        None => Duration::from_secs(secs),
    }
}

/// Nominal ticks due in (start, end - 1s], for all jobs of the scenario.
fn expected(s: Scenario, start: DateTime<Utc>, end: DateTime<Utc>) -> usize {
    let cutoff = end - chrono::Duration::seconds(1);
    match s {
        Scenario::PerSecond
        | Scenario::List
        | Scenario::ListBaseline
        | Scenario::Forged
        | Scenario::ForgedBaseline => {
            let secs = (cutoff.timestamp() - start.timestamp()).max(0) as usize;
            secs * s.jobs()
        }
        // Every tick is accounted (fired or skipped as overlap); only the fired ones count here.
        Scenario::Saturated => 0,
        Scenario::SameInstant => s.jobs(),
        Scenario::IdleYearly => 0,
    }
}

async fn tokio_cron_scheduler(s: Scenario) -> Outcome {
    use tokio_cron_scheduler::{Job, JobScheduler};
    let calls: Arc<Mutex<Vec<DateTime<Utc>>>> = Arc::default();
    let sched = JobScheduler::new().await.unwrap();
    let now = Clock::System.now();
    let (expr, secs, target) = plan(s, now);
    for _ in 0..s.jobs() {
        let calls = calls.clone();
        let job = Job::new_async(expr.as_str(), move |_uuid, _l| {
            let calls = calls.clone();
            Box::pin(async move {
                calls.lock().unwrap().push(Clock::System.now());
            })
        })
        .unwrap();
        sched.add(job).await.unwrap();
    }
    sched.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let startup_s = (Clock::System.now() - now).num_milliseconds() as f64 / 1000.0;
    let cpu0 = cpu_seconds();
    let start = Clock::System.now();
    tokio::time::sleep(window(secs, target)).await;
    let end = Clock::System.now();
    let cpu_s = cpu_seconds() - cpu0;
    let mut sched = sched;
    let _ = sched.shutdown().await;
    let calls = calls.lock().unwrap().clone();
    let mut lateness_ms = Vec::new();
    let mut per_second: HashMap<i64, usize> = HashMap::new();
    for c in calls {
        // The nominal instant of a call is the whole second it belongs to (or the target).
        let nominal = target.unwrap_or_else(|| c.with_nanosecond(0).unwrap());
        if nominal <= start || nominal > end - chrono::Duration::seconds(1) {
            continue;
        }
        *per_second.entry(nominal.timestamp()).or_default() += 1;
        lateness_ms.push((c - nominal).num_microseconds().unwrap() as f64 / 1000.0);
    }
    Outcome { lateness_ms, expected: expected(s, start, end), window_s: (end - start).num_milliseconds() as f64 / 1000.0, cpu_s, startup_s, list_pages: 0, forged: (0, 0) }
}

fn child(scenario: &str, which: &str) {
    let s = Scenario::parse(scenario);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut o = rt.block_on(async {
        match which {
            "watchbell" => watchbell(s, false).await,
            "watchbell-postgres" => watchbell(s, true).await,
            _ => tokio_cron_scheduler(s).await,
        }
    });
    o.lateness_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if o.lateness_ms.is_empty() {
            return f64::NAN;
        }
        o.lateness_ms[((o.lateness_ms.len() - 1) as f64 * p).round() as usize]
    };
    let fired = o.lateness_ms.len();
    println!(
        "{}",
        serde_json::json!({
            "fired": fired, "expected": o.expected, "missed": o.expected.saturating_sub(fired),
            "p50": pct(0.5), "p99": pct(0.99), "max": o.lateness_ms.last().copied().unwrap_or(f64::NAN),
            "cpu_s": o.cpu_s, "window_s": o.window_s, "peak_rss_mib": peak_rss_mib(), "startup_s": o.startup_s,
            "list_pages": o.list_pages, "forged": o.forged.0, "refused": o.forged.1,
        })
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve-sandbox") {
        return serve_sandbox();
    }
    if args.get(1).map(String::as_str) == Some("forge") {
        return forge(&args[2]);
    }
    if args.len() == 3 {
        return child(&args[1], &args[2]);
    }
    let me = std::env::current_exe().unwrap();
    println!("tick precision and cost (lateness = fire time - nominal instant; CPU during the measured window)");
    println!(
        "{:<34} {:<22} {:>7} {:>7} {:>9} {:>9} {:>9} {:>8} {:>9} {:>9} {:>9}",
        "scenario", "scheduler", "fired", "missed", "p50 ms", "p99 ms", "max ms", "CPU s", "CPU %core", "RSS MiB", "start s"
    );
    let names = [
        ("per-second", "1,000 per-second jobs, 10 s"),
        ("same-instant", "10,000 jobs due at one instant"),
        ("idle-yearly", "10,000 idle yearly jobs, 60 s"),
        ("saturated", "10,000 per-second jobs, runs saturating"),
        ("list-baseline", "1,000 per-second jobs at 1,000/s, 20 s"),
        ("list", "the same beside a 100,000-row list"),
        ("forged-baseline", "1,000 per-second jobs, receiver on, 15 s"),
        ("forged", "the same under 1,000 forged callbacks/s"),
    ];
    // `watchbell-tick-bench SCENARIO` runs that scenario alone.
    let only = args.get(1).cloned();
    let mut list_p99 = HashMap::new();
    for (scenario, label) in names.into_iter().filter(|(s, _)| only.as_deref().is_none_or(|o| s.starts_with(o))) {
        let list = matches!(
            Scenario::parse(scenario),
            Scenario::List | Scenario::ListBaseline | Scenario::Forged | Scenario::ForgedBaseline
        );
        let postgres = matches!(Scenario::parse(scenario), Scenario::PerSecond)
            && std::env::var_os("WATCHBELL_TEST_PG_URL").is_some();
        let schedulers = ["watchbell", "watchbell-postgres", "tokio-cron-scheduler"]
            .into_iter()
            .filter(|w| *w != "watchbell-postgres" || postgres)
            .filter(|w| !list || *w == "watchbell");
        for which in schedulers {
            let out = std::process::Command::new(&me).args([scenario, which]).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let Some(line) = text.lines().last().filter(|l| l.starts_with('{')) else {
                println!("{label:<34} {which:<22} failed: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            println!(
                "{label:<34} {which:<22} {:>7} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>8.3} {:>9.3} {:>9.1} {:>9.2}",
                v["fired"], v["missed"], f("p50"), f("p99"), f("max"), f("cpu_s"),
                100.0 * f("cpu_s") / f("window_s"), f("peak_rss_mib"), f("startup_s")
            );
            if list {
                list_p99.insert(scenario, (f("p99"), f("peak_rss_mib"), v["list_pages"].as_u64().unwrap_or(0)));
            }
            if scenario == "per-second" && which.starts_with("watchbell") {
                list_p99.insert(which, (f("p99"), f("peak_rss_mib"), 0));
            }
            if scenario == "forged" {
                println!("{:>34} forged callbacks sent {}, refused {}", "", v["forged"], v["refused"]);
            }
        }
    }
    if let (Some(lite), Some(pg)) = (list_p99.get("watchbell"), list_p99.get("watchbell-postgres")) {
        println!(
            "1,000 per-second jobs with the state on PostgreSQL: p99 {:.2}x SQLite's in this run (goal <= 3x), peak RSS {:.2}x",
            pg.0 / lite.0,
            pg.1 / lite.1
        );
    }
    if let (Some(base), Some(with)) = (list_p99.get("list-baseline"), list_p99.get("list")) {
        println!(
            "with the 100,000-row list: per-second p99 {:.2}x the same run without it (goal <= 1.2x), peak RSS {:.2}x; the list stored {} pages ({} inputs) in the window",
            with.0 / base.0, with.1 / base.1, with.2, with.2
        );
    }
    if let (Some(base), Some(with)) = (list_p99.get("forged-baseline"), list_p99.get("forged")) {
        println!(
            "under 1,000 forged callbacks a second: per-second p99 {:.2}x the same run without them (goal <= 1.5x), peak RSS {:.2}x",
            with.0 / base.0,
            with.1 / base.1
        );
    }
}
