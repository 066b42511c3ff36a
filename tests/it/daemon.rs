//! The daemon in this process: overlap, catch-up and reload, with a test clock where time
//! matters and the sandbox as the API.

use std::collections::HashSet;
use std::time::Duration;

use watchbell::clock::Clock;
use watchbell::sandbox::Options;
use watchbell::status::RunStatus;
use watchbell::store::{self, NewRun, SkipReason, Trigger};

use crate::support::{InProcess, PAGED, at, body, eventually, job, sandbox};

fn slow() -> Options {
    Options {
        pages: 4,
        page_size: Some(2),
        latency: Some(Duration::from_millis(150)),
        ..Options::default()
    }
}

const WAIT: Duration = Duration::from_secs(20);

async fn wait_ticks(d: &InProcess, job: &str, n: usize) -> Vec<store::TickRecord> {
    eventually(WAIT, || async { d.ticks(Some(job)).await.len() >= n }).await;
    d.ticks(Some(job)).await
}

async fn wait_final(d: &InProcess, uid: &str) -> store::RunRecord {
    eventually(WAIT, || async { d.run(uid).await.status.is_final() }).await;
    d.run(uid).await
}

/// The order in which runs reached statuses, from the transitions table (the test clock stands
/// still, so timestamps cannot tell).
async fn order(d: &InProcess) -> Vec<(i64, String)> {
    d.runner
        .store
        .call(|c| {
            let mut st = c.prepare("SELECT run_id, to_status FROM transitions ORDER BY rowid")?;
            let rows = st.query_map((), |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
        .unwrap()
}

fn position(events: &[(i64, String)], run: i64, status: &str) -> usize {
    events
        .iter()
        .position(|(r, s)| *r == run && s == status)
        .expect("event recorded")
}

fn minutely(overlap: &str) -> String {
    job("m", "* * * * *").text("overlap", overlap).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_skip_records_the_tick_as_skipped() {
    let sb = sandbox(slow()).await;
    let dir = tempfile::tempdir().unwrap();
    let (clock, hand) = Clock::test(at("2026-05-01T10:00:30Z"));
    let d = InProcess::start(&dir, &sb, &minutely("skip"), clock).await;
    hand.set(at("2026-05-01T10:01:00Z"));
    let first = wait_ticks(&d, "m", 1).await;
    hand.set(at("2026-05-01T10:02:00Z"));
    let ticks = wait_ticks(&d, "m", 2).await;
    assert_eq!(ticks[1].outcome, "skipped");
    assert_eq!(ticks[1].reason.map(SkipReason::as_str), Some("overlap"));
    let run = wait_final(&d, first[0].run_uid.as_deref().unwrap()).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_queue_keeps_one_waiting_run_and_runs_it_after() {
    let sb = sandbox(slow()).await;
    let dir = tempfile::tempdir().unwrap();
    let (clock, hand) = Clock::test(at("2026-05-01T10:00:30Z"));
    let d = InProcess::start(&dir, &sb, &minutely("queue"), clock).await;
    for (i, t) in ["10:01", "10:02", "10:03"].iter().enumerate() {
        hand.set(at(&format!("2026-05-01T{t}:00Z")));
        wait_ticks(&d, "m", i + 1).await;
    }
    let ticks = d.ticks(Some("m")).await;
    let outcomes: Vec<_> = ticks
        .iter()
        .map(|t| (t.outcome.as_str(), t.reason.map(SkipReason::as_str)))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("fired", None),
            ("fired", None),
            ("skipped", Some("overlap"))
        ]
    );
    let a = wait_final(&d, ticks[0].run_uid.as_deref().unwrap()).await;
    let b = wait_final(&d, ticks[1].run_uid.as_deref().unwrap()).await;
    assert_eq!(
        (a.status, b.status),
        (RunStatus::Succeeded, RunStatus::Succeeded)
    );
    // The test clock stands still, so timestamps cannot tell: the database's order does.
    let events = order(&d).await;
    assert!(
        position(&events, b.id, "RUNNING") > position(&events, a.id, "SUCCEEDED"),
        "the queued run started before the first ended: {events:?}"
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_replace_stops_the_running_run_resumably() {
    let sb = sandbox(slow()).await;
    let dir = tempfile::tempdir().unwrap();
    let (clock, hand) = Clock::test(at("2026-05-01T10:00:30Z"));
    let d = InProcess::start(&dir, &sb, &minutely("replace"), clock).await;
    hand.set(at("2026-05-01T10:01:00Z"));
    let first = wait_ticks(&d, "m", 1).await[0].run_uid.clone().unwrap();
    eventually(WAIT, || async {
        d.run(&first).await.status == RunStatus::Running
    })
    .await;
    hand.set(at("2026-05-01T10:02:00Z"));
    let second = wait_ticks(&d, "m", 2).await[1].run_uid.clone().unwrap();
    let a = wait_final(&d, &first).await;
    assert_eq!(a.status, RunStatus::Stopped);
    assert!(a.status.is_resumable());
    let history = d.runner.store.transitions(a.id).await.unwrap();
    assert_eq!(history.last().unwrap().reason.as_deref(), Some("replaced"));
    assert_eq!(wait_final(&d, &second).await.status, RunStatus::Succeeded);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_allow_runs_both_at_once() {
    let sb = sandbox(slow()).await;
    let dir = tempfile::tempdir().unwrap();
    let (clock, hand) = Clock::test(at("2026-05-01T10:00:30Z"));
    let d = InProcess::start(&dir, &sb, &minutely("allow"), clock).await;
    hand.set(at("2026-05-01T10:01:00Z"));
    wait_ticks(&d, "m", 1).await;
    hand.set(at("2026-05-01T10:02:00Z"));
    let ticks = wait_ticks(&d, "m", 2).await;
    assert!(ticks.iter().all(|t| t.outcome == "fired"));
    let a = wait_final(&d, ticks[0].run_uid.as_deref().unwrap()).await;
    let b = wait_final(&d, ticks[1].run_uid.as_deref().unwrap()).await;
    let events = order(&d).await;
    assert!(
        position(&events, b.id, "RUNNING") < position(&events, a.id, "SUCCEEDED"),
        "the runs did not overlap"
    );
    d.shutdown().await;
}

/// Records that the daemon last accounted for `job` at `nominal` (as if it had run then).
async fn seed_last_tick(dir: &tempfile::TempDir, job: &str, nominal: &str) {
    let s = store::Store::open(&dir.path().join("watchbell.db")).unwrap();
    s.skip_tick(job, at(nominal), SkipReason::Overlap)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_missed_while_down_fire_once_within_catchup() {
    let sb = sandbox(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    seed_last_tick(&dir, "m", "2026-05-01T10:00:00Z").await;
    // Down for ten minutes; catch-up window one hour.
    let (clock, _hand) = Clock::test(at("2026-05-01T10:10:30Z"));
    let d = InProcess::start(&dir, &sb, &minutely("skip"), clock).await;
    let ticks = wait_ticks(&d, "m", 11).await;
    let fired: Vec<_> = ticks.iter().filter(|t| t.outcome == "fired").collect();
    assert_eq!(fired.len(), 1, "one run, not one per missed tick");
    assert_eq!(fired[0].scheduled_for, "2026-05-01T10:10:00.000Z");
    let down = ticks
        .iter()
        .filter(|t| t.reason == Some(SkipReason::DaemonDown))
        .count();
    assert_eq!(down, 9);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_missed_outside_catchup_are_skipped_with_a_reason() {
    let sb = sandbox(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    seed_last_tick(&dir, "d", "2026-05-01T02:00:00Z").await;
    let (clock, _hand) = Clock::test(at("2026-05-03T12:00:00Z"));
    let toml = &job("d", "0 2 * * *").text("catchup", "1h").to_string();
    let d = InProcess::start(&dir, &sb, toml, clock).await;
    let ticks = wait_ticks(&d, "d", 3).await;
    let got: Vec<_> = ticks[1..]
        .iter()
        .map(|t| (t.scheduled_for.as_str(), t.reason.map(SkipReason::as_str)))
        .collect();
    assert_eq!(
        got,
        [
            ("2026-05-02T02:00:00.000Z", Some("catchup_window")),
            ("2026-05-03T02:00:00.000Z", Some("catchup_window"))
        ]
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_second_job_accounts_for_every_tick() {
    let sb = sandbox(Options {
        pages: 1,
        page_size: Some(1),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let toml = &job("s", "* * * * * *").text("overlap", "allow").to_string();
    let d = InProcess::start(&dir, &sb, toml, Clock::System).await;
    let ticks = wait_ticks(&d, "s", 4).await;
    d.shutdown().await;
    let secs: Vec<i64> = ticks
        .iter()
        .map(|t| {
            watchbell::store::parse_ts(&t.scheduled_for)
                .unwrap()
                .timestamp()
        })
        .collect();
    for w in secs.windows(2) {
        assert_eq!(w[1] - w[0], 1, "a second was not accounted for: {secs:?}");
    }
    // Each run's requests name it (`X-Watchbell-Run`): each fired tick's run began once.
    let starts = sb.starts();
    for t in &ticks {
        assert_eq!(t.outcome, "fired");
        assert_eq!(
            starts.get(t.run_uid.as_deref().unwrap()),
            Some(&1),
            "{starts:?}"
        );
        let fired = watchbell::store::parse_ts(t.fired_at.as_deref().unwrap()).unwrap();
        let late = fired - watchbell::store::parse_ts(&t.scheduled_for).unwrap();
        assert!(
            late < chrono::Duration::milliseconds(500),
            "fired {late} late"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_adds_and_removes_jobs_without_touching_the_others() {
    let sb = sandbox(Options {
        pages: 1,
        page_size: Some(1),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (clock, hand) = Clock::test(at("2026-05-01T10:00:30Z"));
    let jobs = |names: &[&str]| -> String {
        use std::fmt::Write as _;
        names.iter().fold(String::new(), |mut out, n| {
            let _ = write!(out, "{}", job(n, "* * * * *").text("overlap", "allow"));
            out
        })
    };
    let d = InProcess::start(&dir, &sb, &jobs(&["a", "b"]), clock).await;
    hand.set(at("2026-05-01T10:01:00Z"));
    wait_ticks(&d, "b", 1).await;
    wait_ticks(&d, "a", 1).await;
    std::fs::write(
        &d.config_path,
        crate::support::job_file(&sb, &jobs(&["a", "c"])),
    )
    .unwrap();
    d.reload_and_wait().await;
    hand.set(at("2026-05-01T10:02:00Z"));
    wait_ticks(&d, "a", 2).await;
    wait_ticks(&d, "c", 1).await;
    hand.set(at("2026-05-01T10:03:00Z"));
    wait_ticks(&d, "a", 3).await;
    let a: Vec<_> = d
        .ticks(Some("a"))
        .await
        .iter()
        .map(|t| t.scheduled_for.clone())
        .collect();
    assert_eq!(
        a,
        [
            "2026-05-01T10:01:00.000Z",
            "2026-05-01T10:02:00.000Z",
            "2026-05-01T10:03:00.000Z"
        ]
    );
    assert_eq!(
        d.ticks(Some("b")).await.len(),
        1,
        "a removed job kept firing"
    );
    assert_eq!(
        d.ticks(Some("c")).await[0].scheduled_for,
        "2026-05-01T10:02:00.000Z"
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_owner_died_is_stopped_then_resumed_with_every_item_once() {
    let sb = sandbox(Options {
        pages: 5,
        page_size: Some(3),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let run = orphan(&dir, &sb).await;
    let toml = &job("y", "0 0 1 1 *").to_string();
    let d = InProcess::start(&dir, &sb, toml, Clock::System).await;
    let done = wait_final(&d, &run.uid).await;
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!((done.pages, done.items), (5, 15));
    let history = d.runner.store.transitions(done.id).await.unwrap();
    let moves: Vec<_> = history
        .iter()
        .map(|h| format!("{}:{}", h.to, h.reason.clone().unwrap_or_default()))
        .collect();
    assert!(
        moves.contains(&"STOPPED:owner_lost".to_string()),
        "{moves:?}"
    );
    let ids = crate::support::item_ids(&d.runner, &done).await;
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 15);
    d.shutdown().await;
}

/// A run of job `y` left RUNNING with two pages stored by a process that no longer exists.
async fn orphan(dir: &tempfile::TempDir, sb: &watchbell::sandbox::Sandbox) -> store::RunRecord {
    let r = crate::support::runner(
        dir,
        sb.base_url().as_str(),
        sb.api_key(),
        watchbell::api::Pacer::unlimited(),
    );
    let ghost = format!(
        "{}:{}:dead",
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim(),
        u32::MAX - 3
    );
    let new = NewRun {
        job: "y".into(),
        action_name: PAGED.into(),
        trigger: Trigger::Tick,
        scheduled_for: None,
        body: body().to_string(),
        callback_url: None,
        owner: Some(ghost),
    };
    let now = Clock::System.now();
    let run = r.store.create_run(new, now).await.unwrap();
    // Fetch two pages as the dead owner did, then leave the run RUNNING.
    let base = sb.base_url().to_string();
    for to in [RunStatus::Queued, RunStatus::Running] {
        r.store
            .transition(&run.uid, to, "t", None, now)
            .await
            .unwrap();
    }
    let client = reqwest::Client::new();
    let mut url = format!("{base}/actions/{PAGED}/run/live");
    for page in 1..=2u32 {
        let resp = client
            .post(&url)
            .header("x-api-key", sb.api_key())
            .json(&body())
            .send()
            .await
            .unwrap();
        let next = resp.headers()["x-pagination-next"]
            .to_str()
            .unwrap()
            .to_string();
        let items: Vec<serde_json::Value> = resp.json().await.unwrap();
        let p = store::NewPage::new(PAGED, page, url.clone(), &items, Some(next.clone()));
        r.store.store_page(&run.uid, p, now).await.unwrap();
        url = next;
    }
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_run_is_not_resumed_when_its_job_says_resume_interrupted_false() {
    let sb = sandbox(Options {
        pages: 5,
        page_size: Some(3),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let run = orphan(&dir, &sb).await;
    let toml = &job("y", "0 0 1 1 *")
        .set("resume_interrupted", false)
        .to_string();
    let d = InProcess::start(&dir, &sb, toml, Clock::System).await;
    let stopped = wait_final(&d, &run.uid).await;
    assert_eq!(stopped.status, RunStatus::Stopped);
    // Maintenance passes again; the run stays where it is, resumable by hand.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = d.run(&run.uid).await;
    assert_eq!((still.status, still.pages), (RunStatus::Stopped, 2));
    let history = d.runner.store.transitions(run.id).await.unwrap();
    assert_eq!(
        history.last().unwrap().reason.as_deref(),
        Some("owner_lost")
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_job_skips_its_ticks_with_the_reason() {
    let sb = sandbox(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (clock, hand) = Clock::test(at("2026-05-01T10:00:30Z"));
    let toml = job("m", "* * * * *").set("enabled", false).to_string();
    let d = InProcess::start(&dir, &sb, &toml, clock).await;
    hand.set(at("2026-05-01T10:01:00Z"));
    let ticks = wait_ticks(&d, "m", 1).await;
    assert_eq!(
        (ticks[0].outcome.as_str(), ticks[0].reason),
        ("skipped", Some(SkipReason::Disabled))
    );
    assert!(ticks[0].run_uid.is_none());
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_runs_bounds_the_runs_in_flight() {
    let sb = sandbox(slow()).await;
    let dir = tempfile::tempdir().unwrap();
    let (clock, hand) = Clock::test(at("2026-05-01T10:00:30Z"));
    let toml = format!(
        "[daemon]\nmax_concurrent_runs = 1\n{}{}{}",
        job("a", "* * * * *").text("overlap", "allow"),
        job("b", "* * * * *").text("overlap", "allow"),
        job("c", "* * * * *").text("overlap", "allow"),
    );
    let d = InProcess::start(&dir, &sb, &toml, clock).await;
    hand.set(at("2026-05-01T10:01:00Z"));
    let mut uids = Vec::new();
    for j in ["a", "b", "c"] {
        uids.push(wait_ticks(&d, j, 1).await[0].run_uid.clone().unwrap());
    }
    for u in &uids {
        assert_eq!(wait_final(&d, u).await.status, RunStatus::Succeeded);
    }
    // In the order the database recorded them, never two runs RUNNING at once.
    let mut running = 0usize;
    for (_, to) in order(&d).await {
        match to.as_str() {
            "RUNNING" => {
                running += 1;
                assert!(
                    running <= 1,
                    "two runs in flight with max_concurrent_runs = 1"
                );
            }
            "SUCCEEDED" => running -= 1,
            _ => {}
        }
    }
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_timeout_stops_a_run_resumably_with_its_cursor() {
    let sb = sandbox(Options {
        pages: 50,
        page_size: Some(1),
        latency: Some(Duration::from_millis(200)),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (clock, hand) = Clock::test(at("2026-05-01T10:00:30Z"));
    let toml = job("t", "* * * * *").text("run_timeout", "1s").to_string();
    let d = InProcess::start(&dir, &sb, &toml, clock).await;
    hand.set(at("2026-05-01T10:01:00Z"));
    let uid = wait_ticks(&d, "t", 1).await[0].run_uid.clone().unwrap();
    let run = wait_final(&d, &uid).await;
    assert_eq!(run.status, RunStatus::Stopped);
    assert!(run.status.is_resumable());
    assert!(run.pages >= 1 && run.pages < 50, "{}", run.pages);
    assert!(run.next_url.is_some(), "the cursor is kept");
    let history = d.runner.store.transitions(run.id).await.unwrap();
    assert_eq!(
        history.last().unwrap().reason.as_deref(),
        Some("run_timeout")
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_run_is_resumed_after_its_reset() {
    use axum::routing::post;
    // The first request meets a daily quota that resets in two seconds; later ones go through.
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let n = calls.clone();
    let app = axum::Router::new().route(
        "/v4/actions/{name}/run/live",
        post(move || {
            let n = n.clone();
            async move {
                if n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    let reset = (Clock::System.now() + chrono::Duration::seconds(2)).timestamp();
                    (
                        axum::http::StatusCode::TOO_MANY_REQUESTS,
                        [
                            ("x-ratelimit-type", "daily".to_string()),
                            ("x-ratelimit-reset", reset.to_string()),
                        ],
                        "{}".to_string(),
                    )
                } else {
                    (
                        axum::http::StatusCode::OK,
                        [
                            ("x-ratelimit-type", String::new()),
                            ("x-served", "1".into()),
                        ],
                        "[{\"id\":\"1\"}]".to_string(),
                    )
                }
            }
        }),
    );
    let base = crate::support::serve(app).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schedules.toml");
    std::fs::write(
        &path,
        // support::create names its runs' job "test-job".
        format!(
            "[api]\nbase_url = \"{base}/v4\"\nplan = \"highest\"\n{}",
            job("test-job", "@yearly")
        ),
    )
    .unwrap();
    let r = crate::support::runner(
        &dir,
        &format!("{base}/v4"),
        "k",
        watchbell::api::Pacer::unlimited(),
    );
    let blocked = crate::support::run_once(&r, PAGED, body()).await;
    assert_eq!(blocked.status, RunStatus::Blocked);
    assert!(blocked.postponed_until.is_some());
    let config = watchbell::config::Config::load(&path).unwrap();
    let (reload, reloads) = tokio::sync::mpsc::channel(1);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = watchbell::daemon::Daemon {
        config,
        config_path: path,
        runner: r.clone(),
        reloads,
        heartbeat: watchbell::scheduler::Heartbeat::default(),
        metrics: None,
        receiver: None,
        credits_every: Duration::from_mins(1),
        missed: watchbell::store::SkipReason::DaemonDown,
        handover: std::sync::Arc::default(),
    };
    let task = tokio::spawn(daemon.run(async {
        let _ = stopped.await;
    }));
    // Maintenance looks every ten seconds; the reset is two seconds away.
    eventually(Duration::from_secs(30), || {
        let (r, uid) = (r.clone(), blocked.uid.clone());
        async move { r.store.existing_run(&uid).await.unwrap().status == RunStatus::Succeeded }
    })
    .await;
    let history = r.store.transitions(blocked.id).await.unwrap();
    assert!(
        history
            .iter()
            .any(|h| h.reason.as_deref() == Some("rate-limit reset passed")),
        "{history:?}"
    );
    drop(reload);
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_the_job_file_is_picked_up_without_a_signal() {
    let sb = sandbox(Options {
        pages: 1,
        page_size: Some(1),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = InProcess::start(
        &dir,
        &sb,
        &job("first", "@yearly").to_string(),
        Clock::System,
    )
    .await;
    // Written, not signalled: the daemon notices the file changed.
    let text = format!("{}{}", job("first", "@yearly"), job("added", "* * * * * *"));
    std::fs::write(&d.config_path, crate::support::job_file(&sb, &text)).unwrap();
    eventually(Duration::from_secs(20), || async {
        !d.ticks(Some("added")).await.is_empty()
    })
    .await;
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_on_an_account_without_credits_is_skipped_with_no_credits() {
    let sb = sandbox(Options {
        credits: 0,
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (clock, hand) = Clock::test(at("2026-05-01T10:00:30Z"));
    let d = InProcess::start(&dir, &sb, &minutely("skip"), clock).await;
    // The daemon reads the credits as it starts.
    let store = d.runner.store.clone();
    eventually(Duration::from_secs(10), || {
        let store = store.clone();
        async move { matches!(store.account().await, Ok(Some(a)) if a.credits_left == 0) }
    })
    .await;
    hand.set(at("2026-05-01T10:01:00Z"));
    let ticks = wait_ticks(&d, "m", 1).await;
    assert_eq!(ticks[0].outcome, "skipped");
    assert_eq!(ticks[0].reason, Some(SkipReason::NoCredits));
    assert!(ticks[0].run_uid.is_none());
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_blocked_by_a_402_resumes_when_the_account_has_credits_again() {
    // 20 credits: two pages of ten, then the third page is refused with 402.
    let sb = sandbox(Options {
        pages: 5,
        page_size: Some(10),
        credits: 20,
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (clock, hand) = Clock::test(at("2026-05-01T10:00:30Z"));
    let d = InProcess::start(&dir, &sb, &minutely("skip"), clock).await;
    hand.set(at("2026-05-01T10:01:00Z"));
    let ticks = wait_ticks(&d, "m", 1).await;
    let uid = ticks[0].run_uid.clone().expect("fired");
    eventually(WAIT, || async {
        d.run(&uid).await.status == RunStatus::Blocked
    })
    .await;
    let blocked = d.run(&uid).await;
    assert_eq!((blocked.pages, blocked.items), (2, 20));
    assert!(
        blocked.postponed_until.is_none(),
        "no reset time: it waits for credits"
    );
    let e = blocked.last_error.expect("the 402 is kept");
    assert!(e.message.starts_with("HTTP 402 "), "{}", e.message);
    let out = crate::support::watchbell(dir.path())
        .args(["runs", "show", &uid])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("blocked for credits"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A new billing period: the daemon reads the credits, and the run ends from its cursor.
    sb.new_period(1000);
    eventually(WAIT, || async {
        d.run(&uid).await.status == RunStatus::Succeeded
    })
    .await;
    let done = d.run(&uid).await;
    assert_eq!((done.pages, done.items), (5, 50));
    let ids: HashSet<String> = crate::support::item_ids(&d.runner, &done)
        .await
        .into_iter()
        .collect();
    assert_eq!(ids.len(), 50, "every item once");
    d.shutdown().await;
}
