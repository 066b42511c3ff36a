//! What a real machine does to a daemon: another process holding the write lock, a second
//! daemon, a full disk, absurd server waits, absurd values, a reader that goes away. The daemon
//! must never exit for any of them, and nothing acknowledged may be lost.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use watchbell::api::Pacer;
use watchbell::clock::Clock;
use watchbell::runner::{Limits, Stop};
use watchbell::sandbox::Options;
use watchbell::status::RunStatus;
use watchbell::store::RunFilter;

use crate::support::{
    self, InProcess, PAGED, WAIT, body, eventually, job, job_file, log, read, run_once, runner,
    sandbox, serve, signal, spawn, ticks, wait_exit, watchbell,
};

/// Every second from the first recorded tick of `job` to the last has a row.
fn assert_no_second_missing(seconds: &[i64]) {
    let set: BTreeSet<i64> = seconds.iter().copied().collect();
    let (first, last) = (*set.first().unwrap(), *set.last().unwrap());
    let missing: Vec<i64> = (first..=last).filter(|s| !set.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "seconds without a tick row: {missing:?}"
    );
}

fn tick_seconds(dir: &std::path::Path, job: &str) -> Vec<i64> {
    read(dir, |c| {
        c.ticks(Some(job), None)
            .unwrap()
            .iter()
            .map(|t| support::at(&t.scheduled_for).timestamp())
            .collect()
    })
    .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_holding_the_lock_for_3s_beside_the_daemon_and_two_trigger_loops_costs_nothing() {
    let sb = sandbox(Options {
        pages: 2,
        page_size: Some(2),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let jobs = format!(
        "{}{}",
        job("s", "* * * * * *").text("overlap", "allow"),
        job("t", "@yearly")
    );
    std::fs::write(d.join("schedules.toml"), job_file(&sb, &jobs)).unwrap();
    let mut daemon = spawn(&d, &sb, "daemon.log");
    eventually(WAIT, || async { ticks(&d, "s") >= 2 }).await;
    let key = sb.api_key().to_string();
    let loops: Vec<_> = (0..2)
        .map(|_| {
            let (d, key) = (d.clone(), key.clone());
            std::thread::spawn(move || {
                (0..4)
                    .map(|_| {
                        let out = watchbell(&d)
                            .env("CAPTAIN_DATA_API_KEY", &key)
                            .args(["trigger", "t"])
                            .output()
                            .unwrap();
                        (
                            out.status.code(),
                            String::from_utf8_lossy(&out.stderr).into_owned(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    // Another process takes the write lock and keeps it 3 s, twice.
    let db = d.join("watchbell.db");
    let holder = std::thread::spawn(move || {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.busy_timeout(Duration::from_secs(30)).unwrap();
        for _ in 0..2 {
            c.execute_batch("BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS intruder (x); INSERT INTO intruder VALUES (1);")
                .unwrap();
            std::thread::sleep(Duration::from_secs(3));
            c.execute_batch("COMMIT").unwrap();
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    holder.join().unwrap();
    for l in loops {
        for (code, err) in l.join().unwrap() {
            assert_eq!(code, Some(0), "a trigger failed beside the daemon:\n{err}");
        }
    }
    let seen = ticks(&d, "s");
    eventually(WAIT, || async { ticks(&d, "s") >= seen + 2 }).await;
    signal(&daemon, "-TERM");
    let status = wait_exit(&mut daemon).await;
    let daemon_log = log(&d, "daemon.log");
    assert!(status.success(), "{daemon_log}");
    assert_no_second_missing(&tick_seconds(&d, "s"));
    let open = read(&d, |c| {
        c.list_runs(&RunFilter {
            limit: Some(100_000),
            ..RunFilter::default()
        })
        .unwrap()
        .into_iter()
        .filter(|r| !r.status.is_final())
        .map(|r| format!("{} {}", r.uid, r.status))
        .collect::<Vec<_>>()
    })
    .unwrap();
    assert!(
        open.is_empty(),
        "runs left unfinished: {open:?}\n{daemon_log}"
    );
    let manual = read(&d, |c| {
        c.list_runs(&RunFilter {
            job: Some("t".into()),
            limit: Some(100),
            ..RunFilter::default()
        })
        .unwrap()
    })
    .unwrap();
    assert_eq!(manual.len(), 8);
    assert!(manual.iter().all(|r| r.status == RunStatus::Succeeded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_database_exits_2_at_once_naming_the_first() {
    let sb = sandbox(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    std::fs::write(
        d.join("schedules.toml"),
        job_file(&sb, &job("y", "@yearly").to_string()),
    )
    .unwrap();
    let mut first = spawn(&d, &sb, "first.log");
    eventually(WAIT, || async {
        log(&d, "first.log").contains("schedule armed")
    })
    .await;
    let started = std::time::Instant::now();
    let second = watchbell(&d)
        .env("CAPTAIN_DATA_API_KEY", sb.api_key())
        .arg("run")
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    assert!(started.elapsed() < Duration::from_secs(5));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains(&format!("another watchbell daemon (pid {}", first.id())),
        "{err}"
    );
    // Read commands still work beside the first.
    let list = watchbell(&d).args(["runs", "list"]).output().unwrap();
    assert!(list.status.success());
    signal(&first, "-TERM");
    assert!(wait_exit(&mut first).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_logged_reported_by_healthz_and_loses_no_tick() {
    // Pages of 40 items fill the free pages of the database file quickly.
    let sb = sandbox(Options {
        pages: 1,
        page_size: Some(40),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let toml = job("f", "* * * * * *").text("overlap", "allow").to_string();
    let d = InProcess::start_with(&dir, &sb, &toml, Clock::System, Some(listener)).await;
    eventually(WAIT, || async { d.ticks(Some("f")).await.len() >= 2 }).await;
    // SQLite's own limit gives a real SQLITE_FULL: the file may not grow past its size now.
    d.runner
        .store
        .call(|c| {
            let pages: i64 = c
                .as_lite()
                .unwrap()
                .pragma_query_value(None, "page_count", |r| r.get(0))?;
            c.as_lite()
                .unwrap()
                .pragma_update(None, "max_page_count", pages)?;
            Ok(())
        })
        .await
        .unwrap();
    let store = d.runner.store.clone();
    eventually(WAIT, || {
        let full = store
            .health()
            .fault()
            .is_some_and(|(what, _)| what == "disk full");
        async move { full }
    })
    .await;
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 503);
    assert!(health.text().await.unwrap().contains("disk full"));
    tokio::time::sleep(Duration::from_secs(3)).await; // ticks come due while the disk is full
    d.runner
        .store
        .call(|c| {
            Ok(c.as_lite()
                .unwrap()
                .pragma_update(None, "max_page_count", 1_000_000_000)?)
        })
        .await
        .unwrap();
    let before = Clock::System.now().timestamp();
    eventually(WAIT, || async {
        d.ticks(Some("f"))
            .await
            .iter()
            .any(|t| support::at(&t.scheduled_for).timestamp() > before + 1)
    })
    .await;
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let seconds: Vec<i64> = d
        .ticks(Some("f"))
        .await
        .iter()
        .map(|t| support::at(&t.scheduled_for).timestamp())
        .collect();
    assert_no_second_missing(&seconds);
    d.shutdown().await;
}

/// A live endpoint that answers 429 with `retry_after` to `action`, and one item otherwise.
async fn rate_limiting_server(retry_after: &'static str) -> String {
    let app = Router::new().route(
        "/v4/actions/{name}/run/live",
        post(
            move |axum::extract::Path(name): axum::extract::Path<String>| async move {
                if name == "limited" {
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", retry_after)],
                        "{}".to_string(),
                    )
                } else {
                    (
                        StatusCode::OK,
                        [("x-served", "1")],
                        "[{\"id\":\"a\"}]".to_string(),
                    )
                }
            },
        ),
    );
    format!("{}/v4", serve(app).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_retry_after_blocks_that_run_and_pauses_no_one_beyond_its_timeout() {
    for absurd in ["18446744073709551615", "1000000000000"] {
        let base = rate_limiting_server(absurd).await;
        let dir = tempfile::tempdir().unwrap();
        let r = runner(&dir, &base, "k", Pacer::new(50.0));
        let limited = support::create(&r, "limited", body()).await;
        let short = Limits::bounds(10, Duration::from_secs(2));
        let started = std::time::Instant::now();
        let done = r.execute(&limited.uid, &short, &Stop::new()).await.unwrap();
        assert_eq!(
            done.status,
            RunStatus::Blocked,
            "{absurd}: {:?}",
            done.last_error
        );
        let until = done.postponed_until.expect("postponed_until");
        assert!(
            until > Clock::System.now() + chrono::Duration::days(300),
            "{absurd}: {until}"
        );
        assert!(started.elapsed() < Duration::from_secs(2), "it waited");
        // Another job's run on the same pacer goes through within the blocked run's bound.
        let other = run_once(&r, PAGED, body()).await;
        assert_eq!(other.status, RunStatus::Succeeded);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_next_url_is_followed_and_a_protocol_relative_one_refused() {
    for (next, status, pages) in [
        ("/v4/actions/x/run/live?page=2", RunStatus::Succeeded, 2),
        ("?page=3", RunStatus::Succeeded, 2),
        (
            "//elsewhere.example/v4/actions/x/run/live?page=2",
            RunStatus::PartialSucceeded,
            1,
        ),
    ] {
        let n = Arc::new(AtomicU32::new(0));
        let app = Router::new().route(
            "/v4/actions/{name}/run/live",
            post(move || {
                let n = n.clone();
                async move {
                    let call = n.fetch_add(1, Ordering::SeqCst);
                    let next = if call == 0 { next } else { "" };
                    (
                        [("x-pagination-next", next)],
                        format!("[{{\"id\":\"{call}\"}}]"),
                    )
                }
            }),
        );
        let base = serve(app).await;
        let dir = tempfile::tempdir().unwrap();
        let r = runner(&dir, &format!("{base}/v4"), "k", Pacer::unlimited());
        let run = run_once(&r, PAGED, body()).await;
        assert_eq!(
            (run.status, run.pages),
            (status, pages),
            "{next}: {:?}",
            run.last_error
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_label_of_any_length_is_stored_capped() {
    let label = "X".repeat(100_000);
    let app = Router::new().route(
        "/v4/actions/{name}/run/live",
        post(move || {
            let label = label.clone();
            async move {
                let body = serde_json::json!({"error_label": label, "message": "m".repeat(100_000), "status_code": 400});
                (StatusCode::BAD_REQUEST, axum::Json(body))
            }
        }),
    );
    let base = serve(app).await;
    let dir = tempfile::tempdir().unwrap();
    let r = runner(&dir, &format!("{base}/v4"), "k", Pacer::unlimited());
    let run = run_once(&r, PAGED, body()).await;
    let e = run.last_error.unwrap();
    assert!(e.label.chars().count() <= 65, "{}", e.label.len());
    assert!(e.message.chars().count() <= 2001, "{}", e.message.len());
}

#[test]
fn check_refuses_values_that_cannot_be_represented_or_mean_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            job("j", "@daily").text("jitter", "100000000y").to_string(),
            "longer than ten years",
        ),
        (
            job("j", "0 * * * *").text("jitter", "2h").to_string(),
            "not shorter than the job's period",
        ),
        (
            job("j", "0 9 * * 1-5").text("jitter", "1day").to_string(),
            "not shorter than the job's period",
        ),
        (
            job("j", "@daily").text("run_timeout", "0s").to_string(),
            "longer than zero",
        ),
        (
            format!("[daemon]\nsync_interval = \"0s\"\n{}", job("j", "@daily")),
            "longer than zero",
        ),
        (
            format!("[daemon]\nshutdown_grace = \"0s\"\n{}", job("j", "@daily")),
            "longer than zero",
        ),
        (
            format!("[api]\nrequest_timeout = \"0s\"\n{}", job("j", "@daily")),
            "longer than zero",
        ),
        (
            format!("[daemon]\nmax_concurrent_runs = 0\n{}", job("j", "@daily")),
            "from 1 to 1024",
        ),
    ];
    for (text, why) in cases {
        std::fs::write(dir.path().join("schedules.toml"), &text).unwrap();
        let out = watchbell(dir.path()).arg("check").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(err.contains(why), "{why:?} not in {err}");
    }
    let zeros = job("j", "@daily")
        .text("jitter", "0s")
        .text("catchup", "0s")
        .to_string();
    std::fs::write(dir.path().join("schedules.toml"), zeros).unwrap();
    assert!(
        watchbell(dir.path())
            .arg("check")
            .output()
            .unwrap()
            .status
            .success()
    );
}

#[test]
fn absurd_counts_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for n in ["18446744073709551615", "1000000000000", "0"] {
        let out = watchbell(dir.path())
            .args(["next", "--cron", "* * * * *", "-n", n])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "-n {n}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
    let out = watchbell(dir.path())
        .args(["runs", "list", "--limit", "99999999999"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schedules.toml"),
        job("j", "* * * * * *").to_string(),
    )
    .unwrap();
    // The read commands need a database (one that is not there is an error of its own).
    drop(watchbell::store::Store::open(&dir.path().join("watchbell.db")).unwrap());
    for args in [
        vec!["next", "--cron", "* * * * * *", "-n", "10000", "--json"],
        vec!["next", "-n", "10000"],
        vec!["check"],
        vec!["ticks", "--json"],
        vec!["runs", "list"],
        vec!["actions"],
    ] {
        // The read end is closed before the command starts: its first write meets EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("watchbell"))
            .current_dir(dir.path())
            .args(&args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
