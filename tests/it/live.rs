//! Live runs against real HTTP peers: the sandbox, and small servers that misbehave on purpose.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use watchbell::api::Pacer;
use watchbell::runner::Stop;
use watchbell::sandbox::Options;
use watchbell::status::RunStatus;

use crate::support::{self, LIMITS, body, create, item_ids, run_once, runner, sandbox, serve};

const ACTION: &str = support::PAGED;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_page_run_stores_every_item_exactly_once() {
    let sb = sandbox(Options {
        pages: 5,
        page_size: Some(7),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let r = runner(
        &dir,
        sb.base_url().as_str(),
        sb.api_key(),
        Pacer::unlimited(),
    );
    let run = run_once(&r, ACTION, body()).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!((run.pages, run.items), (5, 35));
    let ids = item_ids(&r, &run).await;
    assert_eq!(ids.len(), 35);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        35,
        "duplicate ids"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_loses_and_duplicates_nothing() {
    // The client is told the wrong plan (20/s) against a sandbox allowing 2/s: 429s are certain.
    let sb = sandbox(Options {
        pages: 2,
        page_size: Some(5),
        rate_limit: Some(2.0),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let r = runner(&dir, sb.base_url().as_str(), sb.api_key(), Pacer::new(20.0));
    let mut tasks = Vec::new();
    for i in 0..4 {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            let mut body = body();
            body["input"]["custom_data"] = serde_json::json!({"n": i});
            run_once(&r, ACTION, body).await
        }));
    }
    let mut all = HashSet::new();
    for t in tasks {
        let run = t.await.unwrap();
        assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.last_error);
        let ids = item_ids(&r, &run).await;
        assert_eq!(ids.len(), 10);
        for id in ids {
            assert!(all.insert(id), "duplicate item");
        }
    }
    assert_eq!(all.len(), 40);
    assert!(
        sb.stats().rate_limited.load(Ordering::Relaxed) > 0,
        "no 429 was provoked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_as_an_http_date_is_honoured() {
    let hits = Arc::new(AtomicU32::new(0));
    let h = hits.clone();
    let app = Router::new().route(
        "/v4/actions/{name}/run/live",
        post(move || {
            let h = h.clone();
            async move {
                if h.fetch_add(1, Ordering::SeqCst) == 0 {
                    let at = watchbell::clock::Clock::System.now() + chrono::Duration::seconds(2);
                    let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", date), ("x-ratelimit-type", "minute".into())],
                        "{}",
                    )
                        .into_response()
                } else {
                    (StatusCode::OK, "[{\"id\":\"a\"}]").into_response()
                }
            }
        }),
    );
    let base = serve(app).await;
    let dir = tempfile::tempdir().unwrap();
    let r = runner(&dir, &format!("{base}/v4"), "k", Pacer::unlimited());
    let start = std::time::Instant::now();
    let run = run_once(&r, ACTION, body()).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.rate_limit_waits, 1);
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "did not wait: {:?}",
        start.elapsed()
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_quota_blocks_the_run_until_the_reset() {
    let sb = sandbox(Options {
        pages: 3,
        daily_quota: Some(1),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let r = runner(
        &dir,
        sb.base_url().as_str(),
        sb.api_key(),
        Pacer::unlimited(),
    );
    let run = run_once(&r, ACTION, body()).await;
    assert_eq!(run.status, RunStatus::Blocked);
    assert_eq!(run.pages, 1, "the page before the quota is kept");
    assert_eq!(
        run.last_error.as_ref().unwrap().label,
        "DAILY_QUOTA_EXCEEDED"
    );
    let until = run.postponed_until.expect("a reset time");
    assert!(until > watchbell::clock::Clock::System.now());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_url_on_another_origin_is_refused_and_gets_no_key() {
    let elsewhere_hits = Arc::new(AtomicU32::new(0));
    let eh = elsewhere_hits.clone();
    let elsewhere = serve(Router::new().fallback(move || {
        eh.fetch_add(1, Ordering::SeqCst);
        async { "[]" }
    }))
    .await;
    let next = format!("{elsewhere}/v4/actions/x/run/live?page=2");
    let app = Router::new().route(
        "/v4/actions/{name}/run/live",
        post(move || {
            let next = next.clone();
            async move { ([("x-pagination-next", next)], "[{\"id\":\"1\"}]") }
        }),
    );
    let base = serve(app).await;
    let dir = tempfile::tempdir().unwrap();
    let r = runner(
        &dir,
        &format!("{base}/v4"),
        "secret-key",
        Pacer::unlimited(),
    );
    let run = run_once(&r, ACTION, body()).await;
    assert_eq!(run.status, RunStatus::PartialSucceeded);
    assert_eq!(run.last_error.unwrap().label, "FOREIGN_PAGINATION_URL");
    assert_eq!(
        elsewhere_hits.load(Ordering::SeqCst),
        0,
        "the other origin was contacted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pagination_loop_stops_the_run() {
    // The next URL is always page 2; each answer has new items.
    let base_cell: Arc<std::sync::OnceLock<String>> = Arc::default();
    let (b, n) = (base_cell.clone(), Arc::new(AtomicU32::new(0)));
    let app = Router::new().route(
        "/v4/actions/{name}/run/live",
        post(move || {
            let (b, n) = (b.clone(), n.clone());
            async move {
                let next = format!("{}/v4/actions/x/run/live?page=2", b.get().unwrap());
                let id = n.fetch_add(1, Ordering::SeqCst);
                (
                    [("x-pagination-next", next)],
                    format!("[{{\"id\":\"{id}\"}}]"),
                )
            }
        }),
    );
    let base = serve(app).await;
    base_cell.set(base.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let r = runner(&dir, &format!("{base}/v4"), "k", Pacer::unlimited());
    let run = run_once(&r, ACTION, body()).await;
    assert_eq!(run.status, RunStatus::PartialSucceeded);
    assert_eq!(run.pages, 2);
    assert_eq!(run.last_error.unwrap().label, "PAGINATION_LOOP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_served_again_behind_a_new_url_ends_the_run_without_duplicates() {
    // Page 3 has a URL never seen, but its items are page 1's.
    let base_cell: Arc<std::sync::OnceLock<String>> = Arc::default();
    let (b, n) = (base_cell.clone(), Arc::new(AtomicU32::new(0)));
    let app = Router::new().route(
        "/v4/actions/{name}/run/live",
        post(move || {
            let (b, n) = (b.clone(), n.clone());
            async move {
                let call = n.fetch_add(1, Ordering::SeqCst) + 1;
                let next = format!("{}/v4/actions/x/run/live?cursor=c{call}", b.get().unwrap());
                let items = if call == 2 {
                    "[{\"id\":\"2\"}]"
                } else {
                    "[{\"id\":\"1\"}]"
                };
                ([("x-pagination-next", next)], items)
            }
        }),
    );
    let base = serve(app).await;
    base_cell.set(base.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let r = runner(&dir, &format!("{base}/v4"), "k", Pacer::unlimited());
    let run = run_once(&r, ACTION, body()).await;
    assert_eq!(run.status, RunStatus::PartialSucceeded);
    assert_eq!((run.pages, run.items), (2, 2));
    let e = run.last_error.clone().unwrap();
    assert_eq!(e.label, "PAGINATION_LOOP");
    assert!(e.message.contains("repeats page 1"), "{}", e.message);
    assert_eq!(item_ids(&r, &run).await, ["1", "2"]);
    let history = r.store.transitions(run.id);
    let reasons: Vec<String> = history
        .await
        .unwrap()
        .into_iter()
        .filter_map(|t| t.reason)
        .collect();
    assert!(
        reasons.iter().any(|r| r == "pagination_loop"),
        "{reasons:?}"
    );
}

/// A server whose live endpoint always answers `status` with `body`.
async fn answering(status: StatusCode, content_type: &'static str, body: &'static str) -> String {
    let app = Router::new().route(
        "/v4/actions/{name}/run/live",
        post(move || async move { (status, [("content-type", content_type)], body) }),
    );
    format!("{}/v4", serve(app).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_answers_fail_the_run_with_a_clear_reason() {
    let cases = [
        (
            StatusCode::OK,
            "application/json",
            "[{\"id\": 1}, {\"id\"",
            "invalid JSON",
        ),
        (
            StatusCode::BAD_GATEWAY,
            "text/html",
            "<html><body>502 Bad Gateway</body></html>",
            "HTTP 502",
        ),
        (StatusCode::OK, "application/json", "", "invalid JSON"),
        (
            StatusCode::OK,
            "application/json",
            "42",
            "expected a JSON array or object",
        ),
    ];
    for (status, ct, text, expect) in cases {
        let base = answering(status, ct, text).await;
        let dir = tempfile::tempdir().unwrap();
        let r = runner(&dir, &base, "k", Pacer::unlimited());
        let run = run_once(&r, ACTION, body()).await;
        assert_eq!(run.status, RunStatus::Failed, "{text:?}");
        let e = run.last_error.unwrap();
        assert!(e.message.contains(expect), "{text:?}: {}", e.message);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_cut_short_is_a_clear_error() {
    // A raw socket that promises 100 bytes and sends 10.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n[{\"id\":\"a\"")
                .await;
            let _ = s.shutdown().await;
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let r = runner(&dir, &format!("http://{addr}/v4"), "k", Pacer::unlimited());
    let run = run_once(&r, ACTION, body()).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.last_error.unwrap().message.contains("cut short"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_makes_the_run_invalid() {
    let sb = sandbox(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let r = runner(
        &dir,
        sb.base_url().as_str(),
        sb.api_key(),
        Pacer::unlimited(),
    );
    let run = run_once(&r, ACTION, serde_json::json!({"input": "not an object"})).await;
    assert_eq!(run.status, RunStatus::Invalid);
    assert_eq!(run.last_error.unwrap().label, "INVALID_INPUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_mid_pagination_resumes_from_its_cursor() {
    let sb = sandbox(Options {
        pages: 6,
        page_size: Some(4),
        latency: Some(Duration::from_millis(100)),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let r = runner(
        &dir,
        sb.base_url().as_str(),
        sb.api_key(),
        Pacer::unlimited(),
    );
    let run = create(&r, ACTION, body()).await;
    let stop = Stop::new();
    let (r2, uid, s2) = (r.clone(), run.uid.clone(), stop.clone());
    let task = tokio::spawn(async move { r2.execute(&uid, &LIMITS, &s2).await.unwrap() });
    let (r3, uid) = (r.clone(), run.uid.clone());
    support::eventually(Duration::from_secs(10), || {
        let (r3, uid) = (r3.clone(), uid.clone());
        async move {
            let run = r3.store.existing_run(&uid).await.unwrap();
            run.pages >= 2
        }
    })
    .await;
    stop.stop("shutdown");
    let stopped = task.await.unwrap();
    assert_eq!(stopped.status, RunStatus::Stopped);
    assert!(stopped.pages < 6);
    let served_before = sb.stats().live_pages.load(Ordering::Relaxed);
    r.take_over(&run.uid, "test", "resume").await.unwrap();
    let done = r.execute(&run.uid, &LIMITS, &Stop::new()).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!((done.pages, done.items), (6, 24));
    let ids = item_ids(&r, &done).await;
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 24);
    let refetched = sb.stats().live_pages.load(Ordering::Relaxed) - served_before;
    assert_eq!(
        u64::from(6 - stopped.pages),
        refetched,
        "stored pages were fetched again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_never_appears_in_logs() {
    let key = "wb-secret-4f1c9e";
    let sb = sandbox(Options {
        api_key: key.into(),
        pages: 2,
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schedules.toml"),
        support::job_file(&sb, &support::job("j", "@daily").to_string()),
    )
    .unwrap();
    let base = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        let ok = support::watchbell(&base)
            .env("CAPTAIN_DATA_API_KEY", key)
            .env("RUST_LOG", "trace")
            .args(["trigger", "j"])
            .output()
            .unwrap();
        let bad = support::watchbell(&base)
            .env("CAPTAIN_DATA_API_KEY", "wb-wrong-key-77aa")
            .env("RUST_LOG", "trace")
            .args(["trigger", "j"])
            .output()
            .unwrap();
        (ok, bad)
    })
    .await
    .unwrap();
    let (ok, bad) = out;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(bad.status.code(), Some(1));
    for (o, k) in [(&ok, key), (&bad, "wb-wrong-key-77aa")] {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(all.contains("run"), "no log captured");
        assert!(!all.contains(k), "the key leaked into the output");
    }
    // Not a byte of the key in the database or its WAL.
    for file in ["watchbell.db", "watchbell.db-wal"] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
        let found = bytes.windows(key.len()).any(|w| w == key.as_bytes());
        assert!(!found, "the key is stored in {file}");
    }
}

/// With `--new-per-run`, each search also returns items never served before, and the place
/// URLs a search returns are inputs `googlemaps-extract-place` accepts: a chain can be tried
/// against the sandbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_find_new_places_that_the_extract_action_accepts() {
    let sb = sandbox(Options {
        pages: 2,
        page_size: Some(3),
        new_per_run: 2,
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let r = runner(
        &dir,
        sb.base_url().as_str(),
        sb.api_key(),
        Pacer::unlimited(),
    );
    let first = run_once(&r, ACTION, body()).await;
    let second = run_once(&r, ACTION, body()).await;
    assert_eq!(
        (first.items, second.items),
        (8, 8),
        "2 new and 2 pages of 3"
    );
    let (a, b) = (item_ids(&r, &first).await, item_ids(&r, &second).await);
    let a: HashSet<&String> = a.iter().collect();
    let b: HashSet<&String> = b.iter().collect();
    assert_eq!(
        a.intersection(&b).count(),
        6,
        "only the two new ones differ"
    );
    let places = r.store.items(second.id).await.unwrap();
    let url = places[0]["google_maps_place_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        url.starts_with("https://www.google.com/maps/place/"),
        "{url}"
    );
    let extract = run_once(
        &r,
        "googlemaps-extract-place",
        serde_json::json!({"input": {"google_maps_place_url": url}}),
    )
    .await;
    assert_eq!(
        extract.status,
        RunStatus::Succeeded,
        "{:?}",
        extract.last_error
    );
    assert_eq!(extract.items, 1);
}
