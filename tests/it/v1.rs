//! Captain Data v1 end to end: endpoint jobs paginate by the server's cursor with GET, fill path
//! placeholders, end on a 424 with the API's message, and a run resumed after its cursor expired
//! starts its pages again without ever sending the expired cursor, storing every item once.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use watchbell::sandbox::{Options, Sandbox};
use watchbell::status::RunStatus;
use watchbell::store::{RunFilter, RunRecord};

use crate::support::{
    WAIT, eventually, read, running_with_pages, sandbox, signal, spawn, wait_exit, watchbell,
};

/// A job file with `[api]` on the sandbox (v4 and v1), then `rest`.
fn v1_file(sb: &Sandbox, api: &str, rest: &str) -> String {
    format!(
        "[api]\nbase_url = \"{}\"\nv1_base_url = \"{}\"\nplan = \"highest\"\n{api}\n{rest}",
        sb.base_url(),
        sb.v1_url()
    )
}

fn endpoint_job(name: &str, cron: &str, endpoint: &str, extra: &str) -> String {
    format!("[[job]]\nname = \"{name}\"\ncron = \"{cron}\"\nendpoint = \"{endpoint}\"\n{extra}\n")
}

/// `watchbell trigger NAME` in `dir`: its exit code and stdout+stderr.
async fn trigger(dir: &Path, sb: &Sandbox, name: &str) -> (i32, String) {
    let (dir, key, name) = (
        dir.to_path_buf(),
        sb.api_key().to_string(),
        name.to_string(),
    );
    tokio::task::spawn_blocking(move || {
        let out = watchbell(&dir)
            .args(["trigger", &name])
            .env("CAPTAIN_DATA_API_KEY", key)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    })
    .await
    .unwrap()
}

fn last_run(dir: &Path, job: &str) -> RunRecord {
    read(dir, |c| {
        c.list_runs(&RunFilter {
            job: Some(job.to_string()),
            ..RunFilter::default()
        })
        .unwrap()
        .into_iter()
        .max_by_key(|r| r.id)
    })
    .flatten()
    .expect("a run")
}

/// The `uid` of every stored item of `run`, and the URLs of its pages.
fn stored(dir: &Path, run: &RunRecord) -> (Vec<String>, Vec<String>) {
    read(dir, |c| {
        let mut uids = Vec::new();
        c.for_each_item(run.id, |v| {
            uids.push(v["uid"].as_str().unwrap().to_string());
            Ok(())
        })
        .unwrap();
        let urls = c
            .pages(run.id)
            .unwrap()
            .into_iter()
            .map(|p| p.url)
            .collect();
        (uids, urls)
    })
    .unwrap()
}

fn assert_once(uids: &[String], n: usize) {
    assert_eq!(uids.len(), n, "items stored");
    assert_eq!(
        uids.iter().collect::<HashSet<_>>().len(),
        n,
        "an item stored twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_search_paginates_to_the_end_and_a_placeholder_is_filled() {
    let sb = sandbox(Options {
        pages: 3,
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let jobs = endpoint_job(
        "ceos",
        "0 7 * * 1",
        "/people/search",
        "query = { query = \"(keywords:ceo)\" }",
    ) + &endpoint_job(
        "staff",
        "0 7 * * 1",
        "/companies/{company_uid}/employees",
        "path = { company_uid = \"acme 1\" }",
    );
    std::fs::write(d.join("schedules.toml"), v1_file(&sb, "", &jobs)).unwrap();
    let (code, out) = trigger(d, &sb, "ceos").await;
    assert_eq!(code, 0, "{out}");
    let run = last_run(d, "ceos");
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.pages, 3);
    let (uids, urls) = stored(d, &run);
    assert_once(&uids, 75); // 3 pages of the endpoint's fixed 25
    assert!(
        urls[0].ends_with("/v1/people/search?query=%28keywords%3Aceo%29"),
        "{urls:?}"
    );
    assert!(urls[1].contains("cursor="), "{urls:?}");

    let (code, out) = trigger(d, &sb, "staff").await;
    assert_eq!(code, 0, "{out}");
    let run = last_run(d, "staff");
    assert_eq!((run.status, run.pages), (RunStatus::Succeeded, 3));
    let (uids, urls) = stored(d, &run);
    assert_once(&uids, 30); // 3 pages of 10
    assert!(
        urls[0].ends_with("/v1/companies/acme%201/employees"),
        "{urls:?}"
    );
    assert_eq!(sb.stats().expired_cursors.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_424_ends_the_run_with_the_apis_message_and_is_not_retried() {
    let sb = sandbox(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let retry = "retry = { attempts = 3, backoff = \"1s\" }";
    let jobs = endpoint_job(
        "broken",
        "0 7 * * 1",
        "/people/search",
        &format!("query = {{ query = \"ceo sandbox:424\" }}\n{retry}"),
    ) + &endpoint_job(
        "later",
        "0 7 * * 1",
        "/people/search",
        &format!("query = {{ query = \"ceo sandbox:424@2\" }}\n{retry}"),
    );
    std::fs::write(d.join("schedules.toml"), v1_file(&sb, "", &jobs)).unwrap();
    trigger(d, &sb, "broken").await;
    let run = last_run(d, "broken");
    assert_eq!(
        (run.status, run.pages, run.retry_count),
        (RunStatus::Failed, 0, 0)
    );
    let e = run.last_error.clone().unwrap();
    assert_eq!(e.label, "INTEGRATION_FAILED");
    assert!(e.message.contains("HTTP 424"), "{e:?}");
    let show = watchbell(d)
        .args(["runs", "show", &run.uid])
        .output()
        .unwrap();
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.contains("the LinkedIn account behind this request failed"),
        "{show}"
    );

    trigger(d, &sb, "later").await;
    let run = last_run(d, "later");
    assert_eq!(
        (run.status, run.pages, run.items, run.retry_count),
        (RunStatus::PartialSucceeded, 1, 25, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_resumed_after_its_cursor_expired_starts_again_and_stores_every_item_once() {
    let ttl = Duration::from_secs(1);
    let sb = sandbox(Options {
        pages: 6,
        latency: Some(Duration::from_millis(150)),
        cursor_ttl: ttl,
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let jobs = endpoint_job(
        "ceos",
        "* * * * * *",
        "/people/search",
        "query = { query = \"(keywords:ceo)\" }",
    );
    let file = v1_file(&sb, "cursor_ttl = \"1s\"", &jobs);
    std::fs::write(d.join("schedules.toml"), file).unwrap();
    let mut child = spawn(d, &sb, "first.log");
    let victim = running_with_pages(d, 2).await;
    child.kill().unwrap(); // SIGKILL, mid-run
    child.wait().unwrap();
    let uid = victim.uid;
    // The cursor the run holds outlives its TTL while no daemon runs.
    tokio::time::sleep(ttl + Duration::from_millis(500)).await;
    let mut again = spawn(d, &sb, "second.log");
    let get = |uid: String| read(d, move |c| c.run(&uid).unwrap()).flatten();
    eventually(WAIT, || {
        let done = get(uid.clone()).is_some_and(|r| r.status.is_final());
        async move { done }
    })
    .await;
    let run = get(uid.clone()).unwrap();
    let history = read(d, |c| c.transitions(run.id).unwrap()).unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{history:?}");
    let (uids, urls) = stored(d, &run);
    assert_once(&uids, 150);
    assert!(run.pages > 6, "the pages started again: {urls:?}");
    assert!(
        history.iter().any(|h| h
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("cursor expired"))),
        "{history:?}"
    );
    assert_eq!(
        sb.stats().expired_cursors.load(Ordering::Relaxed),
        0,
        "an expired cursor was sent"
    );

    // `status` shows the credits the sandbox's /quotas reports, with the billing period.
    let status = watchbell(d).arg("status").output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("of 1,000,000 (plan sandbox, period ends "),
        "{status}"
    );
    signal(&again, "-TERM");
    assert!(wait_exit(&mut again).await.success());
}
