//! Helpers shared by the integration tests.

use std::sync::Arc;
use std::time::Duration;

use assert_cmd::Command;
use watchbell::api::{ApiKey, Client, Pacer, RetryPolicy};
use watchbell::clock::Clock;
use watchbell::runner::{Limits, Runner, Stop};
use watchbell::sandbox::{Options, Sandbox};
use watchbell::store::{self, NewRun, RunRecord, Store, Trigger};

/// The watchbell binary, run in `dir` with no API key in its environment.
pub fn watchbell(dir: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("watchbell").expect("binary built");
    cmd.current_dir(dir).env_remove("CAPTAIN_DATA_API_KEY");
    cmd
}

pub async fn sandbox(opts: Options) -> Sandbox {
    Sandbox::start(opts).await.expect("sandbox starts")
}

/// A runner over a fresh database in `dir`, talking to `base` with `key`.
pub fn runner(dir: &tempfile::TempDir, base: &str, key: &str, pacer: Pacer) -> Runner {
    let store = Store::open(&dir.path().join("watchbell.db")).unwrap();
    let client = Client::new(
        base.parse().unwrap(),
        ApiKey::new(key),
        Arc::new(pacer),
        Duration::from_secs(10),
        Clock::System,
    )
    .unwrap()
    .with_retry(RetryPolicy {
        rate_limit_retries: 30,
        server_retries: 2,
        base_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
    });
    Runner {
        store,
        client,
        clock: Clock::System,
    }
}

pub const LIMITS: Limits = Limits {
    max_pages: 100,
    run_timeout: Duration::from_mins(1),
};

/// Creates a run of `action` with `body` (CREATED, before any request).
pub async fn create(r: &Runner, action: &str, body: serde_json::Value) -> RunRecord {
    let new = NewRun {
        job: "test-job".into(),
        action_name: action.into(),
        trigger: Trigger::Manual,
        scheduled_for: None,
        body,
        callback_url: None,
        owner: None,
    };
    let now = r.clock.now();
    r.store
        .call(move |c| store::create_run(c, &new, now))
        .await
        .unwrap()
}

/// Creates and executes a run to its end.
pub async fn run_once(r: &Runner, action: &str, body: serde_json::Value) -> RunRecord {
    let run = create(r, action, body).await;
    r.execute(&run.uid, LIMITS, &Stop::new()).await.unwrap()
}

pub fn body() -> serde_json::Value {
    serde_json::json!({"input": {"url": "https://example.com/x"}, "parameters": {}, "identity_mode": "direct", "identity_ids": null})
}

/// Every stored item's `id`, in order.
pub async fn item_ids(r: &Runner, run: &RunRecord) -> Vec<String> {
    let id = run.id;
    r.store
        .call(move |c| {
            let mut ids = Vec::new();
            store::for_each_item(c, id, |v| {
                ids.push(v["id"].as_str().unwrap_or_default().to_string());
                Ok(())
            })?;
            Ok(ids)
        })
        .await
        .unwrap()
}

/// Waits for `cond` to hold, checking every 20 ms, failing after `deadline`.
pub async fn eventually<F, Fut>(deadline: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < deadline,
            "condition not met within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Serves `app` on a free loopback port; returns `http://ADDR`.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}
