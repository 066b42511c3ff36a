//! Async mode end to end over real sockets: the sandbox plays the vendor (callbacks per page, a
//! final one, a callback log with replays, seeded misbehaviour) and the receiver stores every
//! batch exactly once, proves each run complete and repairs what went missing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use watchbell::api::Pacer;
use watchbell::config::Config;
use watchbell::receiver::token;
use watchbell::runner::{Limits, Runner, Stop};
use watchbell::sandbox::{Options, Sandbox, parse_chaos};
use watchbell::status::RunStatus;
use watchbell::store::{RunRecord, batches};

use crate::support::{PAGED, WAIT, new_run, runner, sandbox};

/// Two inputs, two pages each, three items a page: four batches, twelve items.
const PAGES: u32 = 2;
const PER_PAGE: u32 = 3;
const OUTREACH: &str = "linkedin-connect-profile";

fn inputs() -> Value {
    json!([
        {"google_maps_search_url": "https://www.google.com/maps/search/sushi"},
        {"google_maps_search_url": "https://www.google.com/maps/search/ramen"},
    ])
}

fn opts(chaos: &str) -> Options {
    Options {
        pages: PAGES,
        page_size: Some(PER_PAGE),
        callbacks: parse_chaos(chaos).unwrap(),
        ..Options::default()
    }
}

/// A receiver with its sweep in this process, over a fresh database, against `sb`.
struct Receiving {
    runner: Arc<Runner>,
    stop: CancellationToken,
    url: String,
    dir: tempfile::TempDir,
}

impl Receiving {
    async fn start(sb: &Sandbox, timeout: &str) -> Receiving {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        Receiving::start_on(sb, timeout, listener, &url)
    }

    /// Listening on `listener`, reached by the vendor at `public`.
    fn start_on(
        sb: &Sandbox,
        timeout: &str,
        listener: tokio::net::TcpListener,
        public: &str,
    ) -> Receiving {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[api]\nbase_url = \"{}\"\n[receiver]\nlisten = \"127.0.0.1:0\"\npublic_url = \"{public}\"\nmax_body = \"4KiB\"\ncallback_timeout = \"{timeout}\"\nreplay_after = \"300ms\"\n[[job]]\nname = \"test-job\"\ncron = \"0 0 1 1 *\"\nrunner = \"async\"\naction = \"{PAGED}\"\ninputs = [{{ google_maps_search_url = \"https://www.google.com/maps/search/sushi\" }}, {{ google_maps_search_url = \"https://www.google.com/maps/search/ramen\" }}]\n",
            sb.base_url()
        );
        std::fs::write(dir.path().join("schedules.toml"), &text).unwrap();
        let config = Config::parse("schedules.toml", &text).unwrap();
        let mut r = runner(
            &dir,
            sb.base_url().as_str(),
            sb.api_key(),
            Pacer::unlimited(),
        );
        r.receiver.clone_from(&config.receiver);
        let runner = Arc::new(r);
        let stop = CancellationToken::new();
        let (_, file) = tokio::sync::watch::channel(Arc::new(config));
        watchbell::receiver::serve(runner.clone(), listener, file, &stop);
        Receiving {
            runner,
            stop,
            url: public.to_string(),
            dir,
        }
    }

    /// Creates and sends an async run of two inputs; its uid.
    async fn submit(&self) -> String {
        let sent = submit(&self.runner, PAGED, &json!({"inputs": inputs()})).await;
        assert!(!sent.status.is_final(), "{sent:?}");
        sent.uid
    }

    async fn ended(&self, uid: &str) -> RunRecord {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let run = self.runner.store.existing_run(uid).await.unwrap();
            if run.status.is_final() {
                return run;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {uid} still {} after {WAIT:?}",
                run.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The stored items' ids: each once.
    async fn item_ids(&self, run: &RunRecord) -> Vec<String> {
        let items = self.runner.store.items_of(run.id, None).await.unwrap();
        items
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    }

    async fn batches(&self, run: &RunRecord) -> Vec<batches::BatchRecord> {
        let id = run.id;
        self.runner
            .store
            .call(move |c| batches::batches(c, id))
            .await
            .unwrap()
    }
}

/// Creates a run of `test-job` with `body` and sends it as `runner` would (async).
async fn submit(runner: &Runner, action: &str, body: &Value) -> RunRecord {
    let run = runner
        .store
        .create_run(new_run("test-job", action, body), runner.clock.now())
        .await
        .unwrap();
    let limits = Limits {
        asynchronous: true,
        ..Limits::bounds(100, Duration::from_mins(1))
    };
    runner
        .execute(&run.uid, &limits, &Stop::new())
        .await
        .unwrap()
}

impl Drop for Receiving {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn assert_exactly_once(ids: &[String]) {
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "an item stored twice: {ids:?}");
    assert_eq!(ids.len() as u32, 2 * PAGES * PER_PAGE);
}

/// Async creates the sandbox received.
async fn creates(sb: &Sandbox) -> usize {
    let runs: Vec<Value> = reqwest::Client::new()
        .get(format!(
            "{}/runs?execution_mode=ASYNC&limit=100",
            sb.base_url()
        ))
        .header("x-api-key", sb.api_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    runs.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_reordered_and_dropped_callbacks_end_succeeded_with_every_item_once() {
    let sb = sandbox(opts("duplicate=1,reorder=2,drop=1")).await;
    let rx = Receiving::start(&sb, "1m").await;
    let uid = rx.submit().await;
    let done = rx.ended(&uid).await;
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
    assert_exactly_once(&rx.item_ids(&done).await);
    // Each input's items are its own, by the tag watchbell put in its custom_data.
    let inputs = rx.runner.store.inputs(done.id).await.unwrap();
    let per_input: Vec<(u32, u64)> = inputs.iter().map(|i| (i.pages, i.items)).collect();
    assert_eq!(per_input, [(PAGES, u64::from(PAGES * PER_PAGE)); 2]);
    let batches = rx.batches(&done).await;
    assert_eq!(batches.len(), 5, "four pages and the final: {batches:?}");
    assert_eq!(batches.iter().filter(|b| b.how == "replayed").count(), 1);
    let (_, [_, duplicated, reordered, dropped, replays, ..]) = sb.chaos();
    assert_eq!((reordered, dropped, replays), (2, 1, 1));
    assert!(
        duplicated >= 4,
        "every delivered callback twice: {duplicated}"
    );
    assert_eq!(creates(&sb).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_replays_are_lost_too_ends_partial_with_callbacks_lost() {
    let sb = sandbox(opts("duplicate=1,reorder=2,drop=1,drop-replays=3")).await;
    let rx = Receiving::start(&sb, "1m").await;
    let uid = rx.submit().await;
    let done = rx.ended(&uid).await;
    assert_eq!(done.status, RunStatus::PartialSucceeded, "{done:?}");
    let e = done.last_error.clone().unwrap();
    assert_eq!(
        (e.label.as_str(), e.message.as_str()),
        ("CALLBACKS_LOST", "callbacks_lost 1")
    );
    assert_eq!(
        rx.item_ids(&done).await.len() as u32,
        PAGES * PER_PAGE * 2 - PER_PAGE
    );
    let (_, [.., replays, replays_dropped, _]) = sb.chaos();
    assert_eq!((replays, replays_dropped), (3, 3), "three replays, no more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_is_lost_is_adopted_and_a_silent_run_is_finished_by_the_sweep() {
    // The create's answer is lost and no callback ever arrives: the sweep finds the run at the
    // API by its callback URL once it has been silent for callback_timeout, then replays all.
    let sb = sandbox(opts("lose-create=1,drop=100")).await;
    let rx = Receiving::start(&sb, "1s").await;
    let uid = rx.submit().await;
    let st = rx
        .runner
        .store
        .call({
            let uid = uid.clone();
            move |c| batches::state(c, &uid)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st.api_uid, None, "the answer was lost");
    let done = rx.ended(&uid).await;
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
    assert_exactly_once(&rx.item_ids(&done).await);
    assert_eq!(creates(&sb).await, 1, "adopted, never sent again");
    let transitions = rx.runner.store.transitions(done.id).await.unwrap();
    assert!(
        transitions
            .iter()
            .any(|t| t.reason.as_deref() == Some("adopted")),
        "{transitions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_never_confirmed_ends_failed_and_is_not_sent_again() {
    // A create that never reached the API (its host refused the connection) is never found.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let sb = sandbox(opts("")).await;
    let rx = Receiving::start(&sb, "1s").await;
    // The create goes to a dead address; the sweep then asks the sandbox, which never saw it.
    let body = json!({"inputs": inputs()});
    let run = rx
        .runner
        .store
        .create_run(new_run("test-job", PAGED, &body), rx.runner.clock.now())
        .await
        .unwrap();
    let mut lost = (*rx.runner).clone();
    lost.client = watchbell::api::Client::new(
        format!("http://{dead}/v4").parse().unwrap(),
        watchbell::api::ApiKey::new(sb.api_key()),
        Arc::new(Pacer::unlimited()),
        Duration::from_secs(2),
        watchbell::clock::Clock::System,
    )
    .unwrap();
    let limits = Limits {
        asynchronous: true,
        ..Limits::bounds(100, Duration::from_mins(1))
    };
    lost.execute(&run.uid, &limits, &Stop::new()).await.unwrap();
    let done = rx.ended(&run.uid).await;
    assert_eq!(done.status, RunStatus::Failed);
    assert_eq!(done.last_error.unwrap().label, "CREATE_UNCONFIRMED");
    assert_eq!(creates(&sb).await, 0);
}

/// POSTs `body` to the receiver's URL for run `uid` with `token` (none: no header).
async fn post(url: &str, uid: &str, token: Option<&str>, body: &str) -> u16 {
    let mut req = reqwest::Client::new()
        .post(format!("{url}/callbacks/r/{uid}"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_oversized_and_malformed_callbacks_are_refused_and_store_nothing() {
    let sb = sandbox(opts("")).await;
    let rx = Receiving::start(&sb, "1m").await;
    let body = json!({"inputs": inputs()});
    let run = rx
        .runner
        .store
        .create_run(new_run("test-job", PAGED, &body), rx.runner.clock.now())
        .await
        .unwrap();
    let hash = token::hash("the-token");
    let (uid, now) = (run.uid.clone(), rx.runner.clock.now());
    rx.runner
        .store
        .call(move |c| batches::mark_sent(c, &uid, &hash, now))
        .await
        .unwrap();
    let batch = |batch: &str| {
        json!({"run": {"run_uid": "api-1", "batch_uid": batch, "status": "RUNNING"},
               "input": null, "custom_data": null, "error": null, "results": [{"id": batch}]})
        .to_string()
    };
    let url = rx.url.clone();
    let uid = run.uid.as_str();
    assert_eq!(post(&url, uid, None, &batch("b1")).await, 401);
    assert_eq!(post(&url, uid, Some("forged"), &batch("b1")).await, 403);
    assert_eq!(
        post(&url, "no-such-run", Some("the-token"), &batch("b1")).await,
        403
    );
    assert_eq!(post(&url, uid, Some("the-token"), "{not json").await, 400);
    assert_eq!(
        post(&url, uid, Some("the-token"), "{\"run\": 1}").await,
        400
    );
    let big = json!({"run": {"run_uid": "api-1", "batch_uid": "big", "status": "RUNNING"},
                     "results": [{"pad": "x".repeat(8000)}]});
    assert_eq!(
        post(&url, uid, Some("the-token"), &big.to_string()).await,
        413
    );
    let stored = rx.runner.store.existing_run(uid).await.unwrap();
    assert_eq!((stored.pages, stored.items), (0, 0), "nothing stored");
    // The real thing is stored once; its repeat is answered 200 and stores nothing.
    assert_eq!(post(&url, uid, Some("the-token"), &batch("b1")).await, 200);
    assert_eq!(post(&url, uid, Some("the-token"), &batch("b1")).await, 200);
    // Bound to api-1 now: a callback naming another API run is refused.
    let other = batch("b2").replace("api-1", "api-2");
    assert_eq!(post(&url, uid, Some("the-token"), &other).await, 403);
    let stored = rx.runner.store.existing_run(uid).await.unwrap();
    assert_eq!((stored.pages, stored.items), (1, 1));
    assert_eq!(stored.status, RunStatus::Running);
    let metrics = rx.runner.client.metrics().render();
    for reason in [
        "no_token",
        "wrong_token",
        "invalid_json",
        "bad_shape",
        "too_large",
        "other_run",
    ] {
        assert!(
            metrics.contains(&format!(
                "watchbell_callbacks_refused_total{{reason=\"{reason}\"}}"
            )),
            "{reason}: {metrics}"
        );
    }
}

/// A proxy in front of the receiver answering 503 to the first `refuse` requests (a receiver
/// that is down, or whose store is failing): the vendor delivers again.
async fn refusing_proxy(
    to: String,
    refuse: u32,
) -> (
    tokio::net::TcpListener,
    String,
    Arc<std::sync::atomic::AtomicU32>,
) {
    use axum::body::Bytes;
    use axum::extract::{Path as AxPath, State as AxState};
    use axum::http::HeaderMap;
    use std::sync::atomic::{AtomicU32, Ordering};
    let seen = Arc::new(AtomicU32::new(0));
    let app =
        axum::Router::new()
            .route(
                "/callbacks/r/{uid}",
                axum::routing::post(
                    move |AxState((to, seen)): AxState<(String, Arc<AtomicU32>)>,
                          AxPath(uid): AxPath<String>,
                          headers: HeaderMap,
                          body: Bytes| async move {
                        if seen.fetch_add(1, Ordering::SeqCst) < refuse {
                            return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        let mut req = reqwest::Client::new()
                            .post(format!("{to}/callbacks/r/{uid}"))
                            .body(body);
                        for name in ["authorization", "content-type"] {
                            if let Some(v) = headers.get(name) {
                                req = req.header(name, v.as_bytes());
                            }
                        }
                        let code = req.send().await.map_or(502, |r| r.status().as_u16());
                        axum::http::StatusCode::from_u16(code).unwrap()
                    },
                ),
            )
            .route(
                "/callbacks/probe/{nonce}",
                axum::routing::get(
                    |AxState((to, _)): AxState<(String, Arc<AtomicU32>)>,
                     AxPath(n): AxPath<String>| async move {
                        let code = reqwest::get(format!("{to}/callbacks/probe/{n}"))
                            .await
                            .map_or(502, |r| r.status().as_u16());
                        axum::http::StatusCode::from_u16(code).unwrap()
                    },
                ),
            )
            .with_state((to, seen.clone()));
    let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", front.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(front, app).await.unwrap() });
    let back = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    (back, url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_refusing_the_first_deliveries_loses_nothing() {
    let sb = sandbox(opts("")).await;
    let back_addr = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let to = format!("http://{}", back_addr.local_addr().unwrap());
    let (_, public, seen) = refusing_proxy(to, 6).await;
    let rx = Receiving::start_on(&sb, "1m", back_addr, &public);
    let uid = rx.submit().await;
    let done = rx.ended(&uid).await;
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
    assert_exactly_once(&rx.item_ids(&done).await);
    assert!(seen.load(std::sync::atomic::Ordering::SeqCst) > 6);
    let (_, [delivered, ..]) = sb.chaos();
    assert_eq!(
        delivered, 5,
        "four pages and the final, each delivered once in the end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_while_an_async_run_is_in_flight_sends_nothing_again_and_the_run_completes()
{
    use crate::support::{read, signal, spawn, wait_exit, watchbell};
    // Twenty pages per input, 30 ms apart: the run is in flight long enough to kill under.
    let sb = sandbox(Options {
        pages: 20,
        page_size: Some(PER_PAGE),
        callbacks: parse_chaos("gap=30").unwrap(),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.path().join("schedules.toml"),
        format!(
            "[api]\nbase_url = \"{}\"\n[receiver]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\ncallback_timeout = \"2s\"\nreplay_after = \"300ms\"\n[[job]]\nname = \"test-job\"\ncron = \"0 0 1 1 *\"\nrunner = \"async\"\naction = \"{PAGED}\"\ninputs = [{{ google_maps_search_url = \"https://www.google.com/maps/search/sushi\" }}, {{ google_maps_search_url = \"https://www.google.com/maps/search/ramen\" }}]\n",
            sb.base_url()
        ),
    )
    .unwrap();
    let listening = |log: &'static str| {
        let dir = dir.path().to_path_buf();
        async move {
            let deadline = tokio::time::Instant::now() + WAIT;
            while !crate::support::log(&dir, log).contains("receiver listening") {
                assert!(tokio::time::Instant::now() < deadline, "no receiver");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let mut first = spawn(dir.path(), &sb, "log1");
    listening("log1").await;
    let out = watchbell(dir.path())
        .args(["trigger", "test-job"])
        .env("CAPTAIN_DATA_API_KEY", sb.api_key())
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(stdout.contains("sent (API run"), "{stdout}");
    let uid = stdout
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    let pages = |dir: &std::path::Path, uid: &str| {
        read(dir, |c| c.run(uid).ok().flatten().map_or(0, |r| r.pages)).unwrap_or(0)
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while pages(dir.path(), &uid) < 3 {
        assert!(tokio::time::Instant::now() < deadline, "no batch stored");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal(&first, "-KILL");
    wait_exit(&mut first).await;
    let at_kill = pages(dir.path(), &uid);
    let _second = spawn(dir.path(), &sb, "log2");
    let deadline = tokio::time::Instant::now() + WAIT;
    let done = loop {
        let run = read(dir.path(), |c| c.run(&uid).unwrap())
            .flatten()
            .unwrap();
        if run.status.is_final() {
            break run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {}",
            run.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
    assert!(
        at_kill < 40,
        "killed while in flight ({at_kill} of 40 pages)"
    );
    assert_eq!(done.pages, 40);
    let ids: Vec<String> = read(dir.path(), |c| {
        let mut ids = Vec::new();
        c.for_each_item(done.id, |v: serde_json::Value| {
            ids.push(v["id"].as_str().unwrap().to_string());
            Ok(())
        })
        .unwrap();
        ids
    })
    .unwrap();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (120, 120));
    assert_eq!(creates(&sb).await, 1, "nothing sent again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_outreach_list_respects_the_daily_cap_and_sends_each_input_once() {
    let sb = sandbox(opts("")).await;
    let rx = Receiving::start(&sb, "1m").await;
    let mut capped = (*rx.runner).clone();
    capped.safety.outreach = 4;
    let list = |ns: &[u32]| {
        let inputs: Vec<Value> = ns
            .iter()
            .map(|n| json!({"linkedin_profile_url": format!("https://www.linkedin.com/in/p{n}")}))
            .collect();
        json!({"inputs": inputs, "identity_mode": "auto"})
    };
    let first = submit(&capped, OUTREACH, &list(&[0, 1, 2])).await;
    let first = rx.ended(&first.uid).await;
    assert_eq!(
        (first.status, first.items),
        (RunStatus::Succeeded, 3),
        "{first:?}"
    );
    // p0 was sent by the first run; p3 takes the cap's last slot; p4 is past it.
    let second = submit(&capped, OUTREACH, &list(&[0, 3, 4])).await;
    let second = rx.ended(&second.uid).await;
    assert_eq!(
        (second.status, second.items),
        (RunStatus::Succeeded, 1),
        "{second:?}"
    );
    let outcomes: Vec<(String, Option<String>)> = rx
        .runner
        .store
        .inputs(second.id)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.outcome.to_string(), i.error.map(|e| e.label)))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("already_sent".to_string(), None),
            ("succeeded".to_string(), None),
            ("failed".to_string(), Some("DAILY_CAP".to_string())),
        ]
    );
    // The cap is spent for the day: nothing is sent, and an outreach run is not resumed.
    let third = submit(&capped, OUTREACH, &list(&[5])).await;
    assert_eq!(third.status, RunStatus::Stopped, "{third:?}");
    assert_eq!(creates(&sb).await, 2);
}

/// A daemon in this process with a remote job whose callbacks come back (`receive = true`),
/// once its schedule exists at the sandbox: (daemon, schedule uid, receiver URL).
async fn received_remote(
    sb: &Sandbox,
    dir: &tempfile::TempDir,
) -> (crate::support::InProcess, String, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let toml = format!(
        "[receiver]\nlisten = \"127.0.0.1:0\"\npublic_url = \"{url}\"\ncallback_timeout = \"1m\"\nreplay_after = \"300ms\"\n[[job]]\nname = \"remote-job\"\ncron = \"* * * * *\"\nrunner = \"remote\"\nreceive = true\naction = \"{PAGED}\"\ninputs = [{{ google_maps_search_url = \"https://www.google.com/maps/search/sushi\" }}, {{ google_maps_search_url = \"https://www.google.com/maps/search/ramen\" }}]\n"
    );
    let d = crate::support::InProcess::start_full(
        dir,
        sb,
        &toml,
        watchbell::clock::Clock::System,
        (None, Some(listener)),
    )
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let uid = loop {
        if let Some(s) = sb.schedules_snapshot().first() {
            break s["uid"].as_str().unwrap().to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no schedule created"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    (d, uid, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_received_remote_schedule_lands_as_a_local_run_with_its_tick() {
    let sb = sandbox(opts("duplicate=1")).await;
    let dir = tempfile::tempdir().unwrap();
    let (d, schedule, url) = received_remote(&sb, &dir).await;
    let callback = sb.schedule_callback(&schedule).unwrap();
    assert_eq!(callback["url"], format!("{url}/callbacks/s/remote-job"));
    assert!(
        callback["headers"]["Authorization"]
            .as_str()
            .unwrap()
            .starts_with("Bearer ")
    );
    let api = sb.fire_schedule(&schedule).unwrap();
    let store = d.runner.store.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    let run = loop {
        let a = api.clone();
        let found = store
            .call(move |c| batches::run_of_api(c, &a))
            .await
            .unwrap();
        if let Some((uid, _)) = found {
            let run = store.existing_run(&uid).await.unwrap();
            if run.status.is_final() {
                break run;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no remote run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.trigger, watchbell::store::Trigger::Remote);
    let ids: Vec<String> = store
        .items_of(run.id, None)
        .await
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_exactly_once(&ids);
    let nominal = run.scheduled_for.expect("accounted to a tick");
    assert_eq!(nominal.timestamp() % 60, 0, "the minute's tick: {nominal}");
    assert!(nominal <= run.created_at);
    let ticks = d.ticks(Some("remote-job")).await;
    assert!(
        ticks.iter().any(
            |t| watchbell::store::parse_ts(&t.scheduled_for) == Some(nominal)
                && t.run_uid.as_deref() == Some(run.uid.as_str())
        ),
        "{ticks:?}"
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_token_cannot_create_a_run_the_api_does_not_confirm() {
    let sb = sandbox(opts("")).await;
    let dir = tempfile::tempdir().unwrap();
    let (d, schedule, url) = received_remote(&sb, &dir).await;
    let callback = sb.schedule_callback(&schedule).unwrap();
    let auth = callback["headers"]["Authorization"]
        .as_str()
        .unwrap()
        .to_string();
    let forged = json!({"run": {"run_uid": "no-such-run", "batch_uid": "b1", "status": "RUNNING"},
                        "results": [{"id": "x"}]});
    let post = |path: &str, auth: &str| {
        reqwest::Client::new()
            .post(format!("{url}{path}"))
            .header("authorization", auth)
            .json(&forged)
            .send()
    };
    let code = |r: reqwest::Result<reqwest::Response>| r.unwrap().status().as_u16();
    assert_eq!(code(post("/callbacks/s/remote-job", &auth).await), 403);
    assert_eq!(code(post("/callbacks/s/other-job", &auth).await), 403);
    assert_eq!(
        code(post("/callbacks/s/remote-job", "Bearer forged").await),
        403
    );
    let runs = d
        .runner
        .store
        .list_runs(watchbell::store::RunFilter::default())
        .await
        .unwrap();
    assert!(runs.is_empty(), "{runs:?}");
    d.shutdown().await;
}

#[test]
fn the_shipped_async_job_runs_against_the_sandbox_from_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schedules.toml");
    std::fs::copy(shipped, dir.path().join("schedules.toml")).unwrap();
    let out = crate::support::watchbell(dir.path())
        .args(["trigger", "places-async", "--sandbox"])
        .timeout(WAIT)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(stdout.contains("sent (API run"), "{stdout}");
    // Two inputs, three pages each, twenty places a page.
    assert!(
        stdout.contains("SUCCEEDED (6 pages, 120 items)"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_resume_of_an_async_run_resumes_it_at_the_api_and_it_completes() {
    // The vendor fails the run once, after its batches; resumed, it plays them again.
    let sb = sandbox(opts("fail-runs=1")).await;
    let rx = Receiving::start(&sb, "1m").await;
    let uid = rx.submit().await;
    let done = rx.ended(&uid).await;
    assert_eq!(done.status, RunStatus::Failed, "{done:?}");
    let out = crate::support::watchbell(rx.dir.path())
        .args(["--db", "watchbell.db", "runs", "resume", &uid])
        .env("CAPTAIN_DATA_API_KEY", sb.api_key())
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(stdout.contains("resumed at the API"), "{stdout}");
    let done = rx.ended(&uid).await;
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
    assert!(done.last_error.is_none());
    assert_exactly_once(&rx.item_ids(&done).await);
    assert_eq!(creates(&sb).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_async_run_is_sent_only_once_the_vendor_ended_the_one_before() {
    // Each run takes the vendor about a second (6 callbacks 200 ms apart); ticks come every second.
    let sb = sandbox(opts("gap=200")).await;
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let toml = format!(
        "[receiver]\nlisten = \"127.0.0.1:0\"\npublic_url = \"{url}\"\nreplay_after = \"300ms\"\n[[job]]\nname = \"q\"\ncron = \"* * * * * *\"\noverlap = \"queue\"\nrunner = \"async\"\naction = \"{PAGED}\"\ninputs = [{{ google_maps_search_url = \"https://www.google.com/maps/search/q1\" }}, {{ google_maps_search_url = \"https://www.google.com/maps/search/q2\" }}]\n"
    );
    let d = crate::support::InProcess::start_full(
        &dir,
        &sb,
        &toml,
        watchbell::clock::Clock::System,
        (None, Some(listener)),
    )
    .await;
    let store = d.runner.store.clone();
    let ended = |runs: &[RunRecord]| runs.iter().filter(|r| r.status.is_final()).count();
    let deadline = tokio::time::Instant::now() + WAIT;
    let runs = loop {
        let runs = store
            .list_runs(watchbell::store::RunFilter::default())
            .await
            .unwrap();
        if ended(&runs) >= 3 {
            break runs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "fewer than 3 runs ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    d.shutdown().await;
    // When each was sent and when it ended: no two overlap.
    let mut spans = Vec::new();
    for r in runs.iter().filter(|r| r.status.is_final()) {
        let uid = r.uid.clone();
        let st = store.call(move |c| batches::state(c, &uid)).await.unwrap();
        if let (Some(sent), Some(end)) = (st.and_then(|s| s.sent_at), r.finished_at) {
            spans.push((sent, end));
        }
    }
    spans.sort();
    assert!(spans.len() >= 3, "{spans:?}");
    for w in spans.windows(2) {
        assert!(
            w[1].0 >= w[0].1,
            "sent before the one before ended: {spans:?}"
        );
    }
}
