//! Results over time: what is new since the last run, retention that does not make old items
//! new, backfill of past ticks, CSV that a spreadsheet cannot run, and an export whose memory
//! stays flat.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use watchbell::api::Pacer;
use watchbell::clock::Clock;
use watchbell::sandbox::Options;
use watchbell::status::RunStatus;
use watchbell::store::{self, RunFilter};

use crate::support::{self, PAGED, body, job, job_file, read, runner, sandbox, serve, watchbell};

fn place(id: &str) -> serde_json::Value {
    serde_json::json!({"google_maps_place_url": format!("https://www.google.com/maps/place/{id}"), "name": id})
}

/// A live endpoint answering, call after call, one page of these places.
async fn places_server(answers: Vec<Vec<&'static str>>) -> String {
    let n = Arc::new(AtomicU32::new(0));
    let app = Router::new().route(
        "/v4/actions/{name}/run/live",
        post(move || {
            let (n, answers) = (n.clone(), answers.clone());
            async move {
                let call = n.fetch_add(1, Ordering::SeqCst) as usize;
                let ids = &answers[call.min(answers.len() - 1)];
                let items: Vec<serde_json::Value> = ids.iter().map(|i| place(i)).collect();
                axum::Json(items)
            }
        }),
    );
    format!("{}/v4", serve(app).await)
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

fn names(jsonl: &str) -> Vec<String> {
    jsonl
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_what_is_new_even_after_the_old_run_is_pruned() {
    let base = places_server(vec![
        vec!["a", "b", "c"],
        vec!["b", "c", "d"],
        vec!["b", "c", "d"],
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut r = runner(&dir, &base, "k", Pacer::unlimited());
    // The first run is ten days old.
    let (old, _) = Clock::test(Clock::System.now() - chrono::Duration::days(10));
    r.clock = old;
    let first = support::run_once(&r, PAGED, body()).await;
    r.clock = Clock::System;
    let second = support::run_once(&r, PAGED, body()).await;
    let d = dir.path();
    assert_eq!(
        names(&cli(
            d,
            &[
                "--db",
                "watchbell.db",
                "runs",
                "results",
                &first.uid,
                "--new"
            ]
        )),
        ["a", "b", "c"]
    );
    assert_eq!(
        names(&cli(
            d,
            &[
                "--db",
                "watchbell.db",
                "runs",
                "results",
                &second.uid,
                "--new"
            ]
        )),
        ["d"]
    );
    assert_eq!(
        names(&cli(
            d,
            &["--db", "watchbell.db", "runs", "results", &second.uid]
        )),
        ["b", "c", "d"]
    );
    assert_eq!(
        names(&cli(d, &["--db", "watchbell.db", "export", "--new"])),
        ["a", "b", "c", "d"]
    );
    // Retention: the old run goes, the seen-record stays.
    std::fs::write(d.join("schedules.toml"), "[daemon]\nretain = \"1d\"\n").unwrap();
    let dry = cli(d, &["--db", "watchbell.db", "prune", "--dry-run"]);
    assert!(dry.starts_with("would remove 1 finished run(s)"), "{dry}");
    let done = cli(d, &["--db", "watchbell.db", "prune"]);
    assert!(
        done.starts_with("removed 1 finished run(s)") && done.contains("3 item(s)"),
        "{done}"
    );
    let runs = r.store.list_runs(RunFilter::default()).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].uid, second.uid);
    let third = support::run_once(&r, PAGED, body()).await;
    let new = cli(
        d,
        &[
            "--db",
            "watchbell.db",
            "runs",
            "results",
            &third.uid,
            "--new",
        ],
    );
    assert!(new.is_empty(), "pruning made old items new: {new}");
    // A second prune finds nothing: the remaining runs are recent.
    let again = cli(d, &["--db", "watchbell.db", "prune"]);
    assert!(again.starts_with("removed 0 finished run(s)"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfilling_five_past_hours_fires_five_runs_once() {
    let sb = sandbox(Options {
        pages: 1,
        page_size: Some(2),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schedules.toml"),
        job_file(&sb, &job("hourly", "0 * * * *").to_string()),
    )
    .unwrap();
    let hour = Clock::System.now().timestamp() / 3600 * 3600;
    let at = |h: i64| {
        chrono::DateTime::from_timestamp(hour - h * 3600, 0)
            .unwrap()
            .to_rfc3339()
    };
    let (from, to) = (at(5), at(0));
    let (d, key) = (dir.path().to_path_buf(), sb.api_key().to_string());
    let (first, second, future, many) = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| {
            watchbell(&d)
                .env("CAPTAIN_DATA_API_KEY", &key)
                .args(args)
                .output()
                .unwrap()
        };
        let first = run(&["backfill", "hourly", "--from", &from, "--to", &to]);
        let second = run(&["backfill", "hourly", "--from", &from, "--to", &to]);
        let tomorrow = (Clock::System.now() + chrono::Duration::days(1)).to_rfc3339();
        let future = run(&["backfill", "hourly", "--from", &from, "--to", &tomorrow]);
        let long_ago = (Clock::System.now() - chrono::Duration::days(30)).to_rfc3339();
        let many = run(&["backfill", "hourly", "--from", &long_ago, "--to", &to]);
        (first, second, future, many)
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(text.contains("5 tick(s) in range, 5 fired"), "{text}");
    let text = String::from_utf8_lossy(&second.stdout);
    assert!(
        text.contains("5 tick(s) in range, 0 fired, 5 already had a run"),
        "{text}"
    );
    assert_eq!(future.status.code(), Some(2));
    assert_eq!(
        many.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&many.stderr)
    );
    assert!(String::from_utf8_lossy(&many.stderr).contains("--yes"));
    let runs = read(dir.path(), |c| c.list_runs(&RunFilter::default()).unwrap()).unwrap();
    assert_eq!(runs.len(), 5);
    assert!(
        runs.iter()
            .all(|r| r.status == RunStatus::Succeeded && r.trigger == store::Trigger::Backfill)
    );
    let ticks = read(dir.path(), |c| c.ticks(Some("hourly"), None).unwrap()).unwrap();
    assert_eq!(ticks.iter().filter(|t| t.outcome == "fired").count(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_formula_in_a_scraped_cell_is_neutralised_in_csv() {
    let app = Router::new().route(
        "/v4/actions/{name}/run/live",
        post(|| async {
            axum::Json(serde_json::json!([
                {"google_maps_place_url": "u1", "name": "=HYPERLINK(\"http://evil\",\"x\")", "lat": -3.5},
                {"google_maps_place_url": "u2", "name": "@SUM(A1)", "lat": 1}
            ]))
        }),
    );
    let base = format!("{}/v4", serve(app).await);
    let dir = tempfile::tempdir().unwrap();
    let r = runner(&dir, &base, "k", Pacer::unlimited());
    let run = support::run_once(&r, PAGED, body()).await;
    let d = dir.path();
    let csv = cli(
        d,
        &[
            "--db",
            "watchbell.db",
            "runs",
            "results",
            &run.uid,
            "--format",
            "csv",
        ],
    );
    let lines: Vec<&str> = csv.lines().collect();
    // The action's result fields first (catalog order), then the others.
    assert_eq!(lines[0], "google_maps_place_url,lat,name");
    assert_eq!(
        lines[1],
        "u1,-3.5,\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\""
    );
    assert_eq!(lines[2], "u2,1,'@SUM(A1)");
    let raw = cli(
        d,
        &[
            "--db",
            "watchbell.db",
            "runs",
            "results",
            &run.uid,
            "--format",
            "csv",
            "--raw",
        ],
    );
    assert_eq!(raw.lines().nth(2), Some("u2,1,@SUM(A1)"));
    let export = cli(d, &["--db", "watchbell.db", "export", "--format", "csv"]);
    assert!(
        export.starts_with("_job,_run_uid,google_maps_place_url,lat,name\n"),
        "{export}"
    );
}

/// Peak resident memory of `watchbell ARGS` over `dir`'s database, in KiB, read from
/// `/proc/PID/status` (`VmHWM`) until it exits.
fn peak_rss_kib(dir: &std::path::Path, args: &[&str]) -> u64 {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("watchbell"))
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(kib) = text
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if child.try_wait().unwrap().is_some() {
            return peak;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Stores `n` items of about 300 bytes in one run.
async fn many_items(dir: &tempfile::TempDir, n: usize) {
    let r = runner(dir, "http://127.0.0.1:9/v4", "k", Pacer::unlimited());
    let run = support::create(&r, PAGED, body()).await;
    let per_page = 2_000;
    for page in 0..n.div_ceil(per_page) {
        let items: Vec<serde_json::Value> = (0..per_page.min(n - page * per_page))
            .map(|i| {
                let id = page * per_page + i;
                serde_json::json!({
                    "google_maps_place_url": format!("https://www.google.com/maps/place/{id}"),
                    "name": format!("Place number {id} with a name long enough to matter"),
                    "address": format!("{id} Rue de la Paix, 75002 Paris, France"),
                    "rating": 4.5, "reviews": id, "extra": {"k": id},
                })
            })
            .collect();
        let p = store::NewPage::new(
            PAGED,
            page as u32 + 1,
            format!("http://x/{page}"),
            &items,
            None,
        );
        r.store
            .store_page(&run.uid, p, Clock::System.now())
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporting_200000_items_keeps_memory_flat() {
    let (small, large) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    many_items(&small, 10_000).await;
    many_items(&large, 200_000).await;
    let (s, l) = (small.path().to_path_buf(), large.path().to_path_buf());
    let peaks = tokio::task::spawn_blocking(move || {
        let args = ["--db", "watchbell.db", "export", "--format", "csv"];
        let jsonl = ["--db", "watchbell.db", "export"];
        (
            peak_rss_kib(&s, &args),
            peak_rss_kib(&l, &args),
            peak_rss_kib(&l, &jsonl),
        )
    })
    .await
    .unwrap();
    eprintln!(
        "export peak RSS: 10,000 items csv {} KiB; 200,000 items csv {} KiB, jsonl {} KiB",
        peaks.0, peaks.1, peaks.2
    );
    assert!(peaks.1 < 64 * 1024, "{peaks:?}");
    assert!(peaks.2 < 64 * 1024, "{peaks:?}");
    assert!(
        peaks.1 < peaks.0 + 8 * 1024,
        "memory grows with the items: {peaks:?}"
    );
}

/// The figure for the closing note (slow: a million items): `cargo test --release --test it
/// exporting_a_million -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check: about a minute"]
async fn exporting_a_million_items_measured() {
    let mut peaks = Vec::new();
    for n in [10_000, 100_000, 1_000_000] {
        let dir = tempfile::tempdir().unwrap();
        many_items(&dir, n).await;
        let d = dir.path().to_path_buf();
        let kib = tokio::task::spawn_blocking(move || {
            peak_rss_kib(&d, &["--db", "watchbell.db", "export", "--format", "csv"])
        })
        .await
        .unwrap();
        peaks.push((n, kib));
    }
    for (n, kib) in &peaks {
        eprintln!(
            "export --format csv of {n} items: peak RSS {kib} KiB, ratio to 10,000 items {:.2}",
            *kib as f64 / peaks[0].1 as f64
        );
    }
}
