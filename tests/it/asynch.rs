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
    _dir: tempfile::TempDir,
}

impl Receiving {
    async fn start(sb: &Sandbox, timeout: &str) -> Receiving {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        Receiving::start_on(sb, timeout, listener, &url).await
    }

    /// Listening on `listener`, reached by the vendor at `public`.
    async fn start_on(
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
            _dir: dir,
        }
    }

    /// Creates and sends an async run of two inputs; its uid.
    async fn submit(&self) -> String {
        let body = json!({"inputs": inputs()});
        let run = self
            .runner
            .store
            .create_run(new_run("test-job", PAGED, &body), self.runner.clock.now())
            .await
            .unwrap();
        let limits = Limits {
            asynchronous: true,
            ..Limits::bounds(100, Duration::from_mins(1))
        };
        let sent = self
            .runner
            .execute(&run.uid, &limits, &Stop::new())
            .await
            .unwrap();
        assert!(!sent.status.is_final(), "{sent:?}");
        run.uid
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
