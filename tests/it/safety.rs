//! Account safety over real sockets: identity lanes keep one request at a time per identity
//! with random gaps, leave identity-free jobs at the plan's rate, stop outreach at its daily cap
//! (across processes and restarts), and pause a lane whose identity the API says is unusable.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::post;
use watchbell::api::Pacer;
use watchbell::config::Safety;
use watchbell::sandbox::Options;
use watchbell::status::RunStatus;
use watchbell::store::RunFilter;

use crate::support::{
    self, PAGED, body, create, job_file, read, runner, sandbox, serve, watchbell,
};

/// One request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    lane: String,
    start: Instant,
    end: Instant,
}

/// A live endpoint that takes 30 ms per request and pages three times, recording each request
/// with the identity it came through; `status` for every request when not 200.
async fn recording_server(status: StatusCode) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let base: Arc<std::sync::OnceLock<String>> = Arc::default();
    let b = base.clone();
    let app = Router::new().route(
        "/v4/actions/{name}/run/live",
        post(
            move |Path(name): Path<String>,
                  q: axum::extract::Query<std::collections::HashMap<String, String>>,
                  axum::Json(req): axum::Json<serde_json::Value>| {
                let (log, b) = (log.clone(), b.clone());
                async move {
                    let start = Instant::now();
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    let lane = req["identity_ids"][0]
                        .as_str()
                        .map_or_else(|| format!("none:{name}"), str::to_string);
                    log.lock().unwrap().push(Seen {
                        lane,
                        start,
                        end: Instant::now(),
                    });
                    if status != StatusCode::OK {
                        let body = serde_json::json!({"error_label": "INTEGRATION_ERROR", "message": "the LinkedIn account is disconnected"});
                        return (status, [("x-pagination-next", String::new())], body.to_string());
                    }
                    let page: u32 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                    let next = if page < 3 && name.contains("search") {
                        format!("{}/v4/actions/{name}/run/live?page={}", b.get().unwrap(), page + 1)
                    } else {
                        String::new()
                    };
                    let id = format!("{}-{page}-{}", req["identity_ids"], start.elapsed().as_nanos());
                    (StatusCode::OK, [("x-pagination-next", next)], format!("[{{\"id\":{id:?}}}]"))
                }
            },
        ),
    );
    let url = serve(app).await;
    base.set(url.clone()).unwrap();
    (format!("{url}/v4"), seen)
}

fn identity_body(uid: &str) -> serde_json::Value {
    serde_json::json!({
        "input": {"linkedin_people_search_url": "https://www.linkedin.com/search/results/people/?keywords=cto"},
        "identity_ids": [uid],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jobs_on_one_identity_never_overlap_and_wait_random_gaps() {
    let (base, seen) = recording_server(StatusCode::OK).await;
    let dir = tempfile::tempdir().unwrap();
    let mut r = runner(&dir, &base, "k", Pacer::new(20.0));
    r.safety = Safety {
        page_gap: (Duration::from_millis(150), Duration::from_millis(400)),
        ..Safety::default()
    };
    let a = create(&r, "linkedin-search-people", identity_body("u1")).await;
    let b = create(&r, "linkedin-search-people", identity_body("u1")).await;
    let free = create(&r, PAGED, body()).await;
    let run = |uid: String| {
        let r = r.clone();
        tokio::spawn(async move {
            r.execute(&uid, &support::LIMITS, &watchbell::runner::Stop::new())
                .await
                .unwrap()
        })
    };
    let (ta, tb, tf) = (run(a.uid), run(b.uid), run(free.uid));
    let (da, db, df) = (ta.await.unwrap(), tb.await.unwrap(), tf.await.unwrap());
    for d in [&da, &db, &df] {
        assert_eq!(d.status, RunStatus::Succeeded, "{:?}", d.last_error);
    }
    let all = seen.lock().unwrap().clone();
    let mut lane: Vec<&Seen> = all.iter().filter(|s| s.lane == "u1").collect();
    lane.sort_by_key(|s| s.start);
    assert_eq!(lane.len(), 6);
    let gaps: Vec<u128> = lane
        .windows(2)
        .map(|w| {
            assert!(
                w[1].start >= w[0].end,
                "two requests of one identity overlapped"
            );
            (w[1].start - w[0].end).as_millis()
        })
        .collect();
    let (lo, hi) = (*gaps.iter().min().unwrap(), *gaps.iter().max().unwrap());
    eprintln!("identity gaps (ms): {gaps:?}");
    assert!(lo >= 150, "a gap under page_gap: {gaps:?}");
    assert!(hi <= 400 + 150, "a gap far over page_gap: {gaps:?}");
    assert!(
        hi - lo >= 20,
        "gaps without spread (a fixed period): {gaps:?}"
    );
    assert!(da.lane_wait_ms > 0 || db.lane_wait_ms > 0);
    // The identity-free run paged at the plan's rate (20/s), not at the lanes' pace.
    let mut free: Vec<&Seen> = all.iter().filter(|s| s.lane.starts_with("none:")).collect();
    free.sort_by_key(|s| s.start);
    assert_eq!(free.len(), 3);
    let spacing: Vec<u128> = free
        .windows(2)
        .map(|w| (w[1].start - w[0].start).as_millis())
        .collect();
    eprintln!("identity-free spacing (ms): {spacing:?}");
    assert!(spacing.iter().all(|s| *s < 150), "{spacing:?}");
    assert_eq!(df.lane_wait_ms, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_outreach_triggers_with_a_cap_of_three_send_three_and_the_cap_survives_restarts() {
    let sb = sandbox(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let text = job_file(
        &sb,
        &support::job("invite", "@yearly")
            .action("linkedin-connect-profile")
            .to_string(),
    )
    .replace(
        "[safety]\n",
        "[safety]\ndaily_cap = { outreach = 3, visits = 80 }\n",
    );
    std::fs::write(dir.path().join("schedules.toml"), &text).unwrap();
    let (d, key) = (dir.path().to_path_buf(), sb.api_key().to_string());
    let codes = tokio::task::spawn_blocking(move || {
        (0..6)
            .map(|_| {
                watchbell(&d)
                    .env("CAPTAIN_DATA_API_KEY", &key)
                    .args(["trigger", "invite"])
                    .output()
                    .unwrap()
                    .status
                    .code()
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(
        codes,
        [Some(0), Some(0), Some(0), Some(1), Some(1), Some(1)]
    );
    assert_eq!(
        sb.stats()
            .live_pages
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    let runs = read(dir.path(), |c| {
        c.list_runs(&RunFilter {
            limit: Some(100),
            ..RunFilter::default()
        })
        .unwrap()
    })
    .unwrap();
    let stopped: Vec<_> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Stopped)
        .collect();
    assert_eq!(stopped.len(), 3);
    for r in &stopped {
        assert_eq!(r.last_error.as_ref().unwrap().label, "DAILY_CAP");
        assert_eq!(r.postponed_until, None, "an outreach run is not resumed");
    }
    let lanes = watchbell(dir.path()).arg("lanes").output().unwrap();
    let text = String::from_utf8_lossy(&lanes.stdout);
    assert!(text.contains("workspace") && text.contains("3/3"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_run_over_its_cap_is_blocked_until_local_midnight() {
    let (base, seen) = recording_server(StatusCode::OK).await;
    let dir = tempfile::tempdir().unwrap();
    let mut r = runner(&dir, &base, "k", Pacer::unlimited());
    r.safety = Safety {
        visits: 1,
        tz: chrono_tz::Asia::Tokyo,
        ..support::fast_safety()
    };
    let visit = serde_json::json!({"input": {"linkedin_profile_url": "https://www.linkedin.com/in/x"}, "identity_mode": "auto"});
    let first = support::run_once(&r, "linkedin-visit-profile", visit.clone()).await;
    assert_eq!(first.status, RunStatus::Succeeded);
    let second = support::run_once(&r, "linkedin-visit-profile", visit).await;
    assert_eq!(second.status, RunStatus::Blocked);
    assert_eq!(second.last_error.unwrap().label, "DAILY_CAP");
    let until = second.postponed_until.unwrap();
    let tokyo = until.with_timezone(&chrono_tz::Asia::Tokyo);
    assert_eq!(tokyo.format("%H:%M:%S").to_string(), "00:00:00");
    assert!(until > watchbell::clock::Clock::System.now());
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the capped request was not sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_identity_pauses_its_lane_for_every_job_until_resumed() {
    let (base, seen) = recording_server(StatusCode::FAILED_DEPENDENCY).await;
    let dir = tempfile::tempdir().unwrap();
    let r = runner(&dir, &base, "k", Pacer::unlimited());
    let failed = support::run_once(&r, "linkedin-search-people", identity_body("u9")).await;
    assert_eq!(failed.status, RunStatus::Failed);
    let other_job = support::run_once(&r, "linkedin-search-people", identity_body("u9")).await;
    assert_eq!(other_job.status, RunStatus::Blocked);
    assert_eq!(other_job.last_error.as_ref().unwrap().label, "LANE_PAUSED");
    assert!(other_job.postponed_until.is_some());
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the paused lane sent nothing"
    );
    // Another identity is not held back.
    support::run_once(&r, "linkedin-search-people", identity_body("u2")).await;
    assert_eq!(seen.lock().unwrap().len(), 2);
    let out = watchbell(dir.path())
        .args(["--db", "watchbell.db", "lanes", "resume", "identity:u9"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    support::run_once(&r, "linkedin-search-people", identity_body("u9")).await;
    assert_eq!(seen.lock().unwrap().len(), 3, "resumed by hand");
}

#[test]
fn check_warns_about_outreach_jobs_that_fire_too_often_or_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let text = support::job("invite", "*/10 * * * *")
        .action("linkedin-connect-profile")
        .text("overlap", "allow")
        .to_string();
    std::fs::write(dir.path().join("schedules.toml"), text).unwrap();
    let out = watchbell(dir.path()).arg("check").output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: linkedin-connect-profile writes on LinkedIn") && err.contains("10m"),
        "{err}"
    );
    assert!(err.contains("overlap = \"allow\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_the_plan_rate_through_the_database() {
    let (base, seen) = recording_server(StatusCode::OK).await;
    let dir = tempfile::tempdir().unwrap();
    // Two runners with their own connection and their own in-memory pacer, as two processes
    // (the daemon and a `trigger`) have: each alone would send 10 requests a second.
    let one = runner(&dir, &base, "k", Pacer::new(10.0));
    let two = runner(&dir, &base, "k", Pacer::new(10.0));
    let search = serde_json::json!({"input": {"google_maps_search_url": "https://www.google.com/maps/search/x"}});
    let (a, b) = tokio::join!(
        support::run_once(&one, "googlemaps-search-places", search.clone()),
        support::run_once(&two, "googlemaps-search-places", search),
    );
    assert_eq!(
        (a.status, b.status),
        (RunStatus::Succeeded, RunStatus::Succeeded)
    );
    let mut starts: Vec<Instant> = seen.lock().unwrap().iter().map(|s| s.start).collect();
    starts.sort();
    assert_eq!(starts.len(), 6);
    let spacing: Vec<u128> = starts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    eprintln!("plan-rate spacing across processes (ms): {spacing:?}");
    // Arrival times at the server jitter on a loaded machine (seen in the full suite: 117
    // then 84 ms), so gaps between neighbours say little. The span does: six requests through
    // one pacer at 10/s take five slots (500 ms, less the first one's delay); two processes
    // with pacers of their own send all six within about 200 ms.
    let span = (starts[5] - starts[0]).as_millis();
    assert!(
        span >= 5 * 85,
        "together over the plan: {span} ms for six requests, gaps {spacing:?}"
    );
}
