//! Runs over a list of inputs: one input after another, each with its own cursor, each input's
//! results attributed to it, resumed at the input and page where a killed run was.

use std::collections::{HashMap, HashSet};
use std::process::{Command as Process, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use watchbell::api::Pacer;
use watchbell::status::RunStatus;
use watchbell::store::InputOutcome;

use crate::support::{
    FAST_SAFETY, LIMITS, WAIT, create, eventually, read, runner, serve, signal, wait_exit,
};

const ACTION: &str = "googlemaps-search-places";
const PAGES: u32 = 2;
const PER_PAGE: u32 = 2;

/// A live endpoint for [`ACTION`]: `PAGES` pages of `PER_PAGE` items per input, each request
/// taking `delay`; an input whose URL contains `refuse` is answered 400 `INVALID_INPUT`. It
/// counts the calls per (input, page).
#[derive(Clone, Default)]
struct Server {
    calls: Arc<Mutex<HashMap<(String, u32), u32>>>,
    delay: Duration,
    /// Pages per input when not `PAGES`.
    pages: Option<u32>,
    /// Requests being answered now, and the most at once.
    in_flight: Arc<Mutex<(u32, u32)>>,
}

#[derive(serde::Deserialize)]
struct PageQuery {
    page: Option<u32>,
}

impl Server {
    async fn start(&self) -> String {
        let me = self.clone();
        let base: Arc<Mutex<String>> = Arc::default();
        let at = base.clone();
        let app = Router::new().route(
            "/v4/actions/{name}/run/live",
            post(
                move |Path(name): Path<String>, Query(q): Query<PageQuery>, body: String| {
                    let me = me.clone();
                    let base = at.lock().unwrap().clone();
                    async move { me.answer(&name, q.page.unwrap_or(1), &body, &base).await }
                },
            ),
        );
        let url = serve(app).await;
        base.lock().unwrap().clone_from(&url);
        format!("{url}/v4")
    }

    async fn answer(&self, name: &str, page: u32, body: &str, base: &str) -> Response {
        let body: Value = serde_json::from_str(body).unwrap();
        // The input's one URL, whatever its key.
        let input = body["input"]
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| *k != "custom_data"))
            .and_then(|(_, v)| v.as_str())
            .unwrap_or("")
            .to_string();
        *self
            .calls
            .lock()
            .unwrap()
            .entry((input.clone(), page))
            .or_default() += 1;
        // Counted on arrival: a request in flight at a kill was received.
        {
            let mut f = self.in_flight.lock().unwrap();
            f.0 += 1;
            f.1 = f.1.max(f.0);
        }
        tokio::time::sleep(self.delay).await;
        self.in_flight.lock().unwrap().0 -= 1;
        if input.contains("refuse") {
            let e = json!({"error_label": "INVALID_INPUT", "error_scope": "input", "error_ref": "ERR-1",
                "message": "no such search", "status_code": 400, "params": {}});
            return (StatusCode::BAD_REQUEST, axum::Json(e)).into_response();
        }
        let items: Vec<Value> = (0..PER_PAGE)
            .map(|i| {
                json!({"google_maps_place_url": format!("https://www.google.com/maps/place/{input}-{page}-{i}"),
                       "id": format!("{input}|{page}|{i}")})
            })
            .collect();
        let mut headers = HeaderMap::new();
        if page < self.pages.unwrap_or(PAGES) {
            let next = format!("{base}/v4/actions/{name}/run/live?page={}", page + 1);
            headers.insert("x-pagination-next", HeaderValue::from_str(&next).unwrap());
        }
        (StatusCode::OK, headers, axum::Json(items)).into_response()
    }

    fn calls(&self) -> HashMap<(String, u32), u32> {
        self.calls.lock().unwrap().clone()
    }
}

/// An outreach action: each of its requests sends an invitation.
const OUTREACH: &str = "linkedin-connect-profile";

fn profile(i: usize) -> String {
    format!("https://www.linkedin.com/in/p{i}")
}

fn profiles(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"linkedin_profile_url": profile(i)}))
        .collect()
}

fn search(i: usize) -> String {
    format!("https://www.google.com/maps/search/q{i}")
}

/// One refused input among three: the run is `PARTIAL_SUCCEEDED` `inputs_refused 1/3`, the
/// refused input is not called again, and the others' results are stored, each with its input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refused_input_leaves_the_others_results_and_says_so() {
    let server = Server::default();
    let base = server.start().await;
    let dir = tempfile::tempdir().unwrap();
    let r = runner(&dir, &base, "k", Pacer::unlimited());
    let inputs: Vec<Value> = [search(0), format!("{}-refuse", search(1)), search(2)]
        .iter()
        .map(|u| json!({"google_maps_search_url": u}))
        .collect();
    let run = create(&r, ACTION, json!({"inputs": inputs})).await;
    let (limits, stop) = (LIMITS, watchbell::runner::Stop::new());
    let execute = || r.execute(&run.uid, &limits, &stop);
    let done = execute().await.unwrap();
    assert_eq!(done.status, RunStatus::PartialSucceeded);
    let history = r.store.transitions(run.id).await.unwrap();
    assert_eq!(
        history.last().unwrap().reason.as_deref(),
        Some("inputs_refused 1/3")
    );
    assert_eq!(done.last_error.unwrap().label, "INVALID_INPUT");
    let outcomes: Vec<InputOutcome> = r
        .store
        .inputs(run.id)
        .await
        .unwrap()
        .iter()
        .map(|i| i.outcome)
        .collect();
    assert_eq!(
        outcomes,
        [
            InputOutcome::Succeeded,
            InputOutcome::Refused,
            InputOutcome::Succeeded
        ]
    );
    assert_eq!(done.items, u64::from(2 * PAGES * PER_PAGE));
    for (i, input) in [(0, search(0)), (2, search(2))] {
        let items = r.store.items_of(run.id, Some(i)).await.unwrap();
        assert_eq!(items.len(), (PAGES * PER_PAGE) as usize);
        assert!(
            items
                .iter()
                .all(|v| v["id"].as_str().unwrap().starts_with(&input))
        );
    }
    // A resumed run calls neither the refused input nor the finished ones again.
    let before = server.calls();
    assert_eq!(before[&(format!("{}-refuse", search(1)), 1)], 1);
    r.take_over(&run.uid, "test", "resumed by hand")
        .await
        .unwrap();
    let again = execute().await.unwrap();
    assert_eq!(again.status, RunStatus::PartialSucceeded);
    assert_eq!(server.calls(), before);
}

/// A 30-input job's run killed with SIGKILL part-way is resumed by the daemon and ends
/// SUCCEEDED: every input's results stored exactly once and attributed to it, and no input
/// called again once its results were stored (only the page in flight at the kill, and the
/// page being stored, may be asked twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_killed_part_way_resumes_where_it_was_and_repeats_nothing_stored() {
    let server = Server {
        delay: Duration::from_millis(25),
        ..Server::default()
    };
    let base = server.start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = (0..30).map(|i| format!("{{ google_maps_search_url = \"{}\" }}", search(i)));
    write_list_job(
        d,
        &base,
        "list",
        &format!("action = \"{ACTION}\"\n"),
        inputs,
    );
    let mut trigger = process(d, &["trigger", "list"], "trigger.log");
    let succeeded = |d: &std::path::Path| {
        read(d, |c| {
            let run = c
                .list_runs(&watchbell::store::RunFilter::default())
                .ok()?
                .pop()?;
            let n = c
                .inputs(run.id)
                .ok()?
                .iter()
                .filter(|i| i.outcome == InputOutcome::Succeeded)
                .count();
            Some(n)
        })
        .flatten()
        .unwrap_or(0)
    };
    eventually(WAIT, || {
        let far = succeeded(d) >= 10;
        async move { far }
    })
    .await;
    trigger.kill().unwrap(); // SIGKILL, part-way through the list
    trigger.wait().unwrap();
    assert!(succeeded(d) < 30, "the run ended before it could be killed");
    let mut daemon = process(d, &["run"], "daemon.log");
    let run = || only_run(d);
    eventually(WAIT, || {
        let done = run().status == RunStatus::Succeeded;
        async move { done }
    })
    .await;
    let run = run();
    assert_eq!(run.pages, 30 * PAGES);
    assert_eq!(run.items, u64::from(30 * PAGES * PER_PAGE));
    let inputs = read(d, |c| c.inputs(run.id).unwrap()).unwrap();
    let per_input = items_by_input(d, run.id);
    assert!(inputs.iter().all(|i| i.outcome == InputOutcome::Succeeded));
    for i in 0..30u32 {
        let ids = &per_input[&i];
        assert_eq!(ids.len(), (PAGES * PER_PAGE) as usize, "input {i}");
        assert_eq!(
            ids.iter().collect::<HashSet<_>>().len(),
            ids.len(),
            "input {i}"
        );
        assert!(
            ids.iter()
                .all(|id| id.starts_with(&format!("{}|", search(i as usize))))
        );
    }
    let calls = server.calls();
    assert_eq!(calls.len(), (30 * PAGES) as usize);
    let repeats: u32 = calls.values().map(|n| n - 1).sum();
    eprintln!("calls repeated after the kill: {repeats}");
    assert!(repeats <= 2, "calls repeated after the kill: {calls:?}");
    let history = read(d, |c| c.transitions(run.id).unwrap()).unwrap();
    assert!(
        history
            .iter()
            .any(|h| h.reason.as_deref() == Some("owner_lost")),
        "{history:?}"
    );
    signal(&daemon, "-TERM");
    assert!(wait_exit(&mut daemon).await.success());
}

/// A job file in `dir` against `base` with one yearly job `name` (`action` lines) over
/// `inputs` (TOML inline tables).
fn write_list_job(
    dir: &std::path::Path,
    base: &str,
    name: &str,
    action: &str,
    inputs: impl Iterator<Item = String>,
) {
    let inputs: Vec<String> = inputs.collect();
    let toml = format!(
        "[api]\nbase_url = \"{base}\"\nplan = \"highest\"\n{FAST_SAFETY}\n[[job]]\nname = \"{name}\"\ncron = \"0 0 1 1 *\"\n{action}inputs = [{}]\n",
        inputs.join(",\n  ")
    );
    std::fs::write(dir.join("schedules.toml"), toml).unwrap();
}

/// The run in `dir`'s database (these tests make one).
fn only_run(dir: &std::path::Path) -> watchbell::store::RunRecord {
    read(dir, |c| {
        c.list_runs(&watchbell::store::RunFilter::default())
            .unwrap()
            .pop()
    })
    .flatten()
    .unwrap()
}

/// `watchbell ARGS` in `dir` with a key, its log in `dir/log`.
fn process(dir: &std::path::Path, args: &[&str], log: &str) -> std::process::Child {
    Process::new(assert_cmd::cargo::cargo_bin("watchbell"))
        .current_dir(dir)
        .args(args)
        .env("CAPTAIN_DATA_API_KEY", "k")
        .env("RUST_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(log)).unwrap())
        .spawn()
        .unwrap()
}

/// The `id`s of a run's stored items, by the input each is attributed to.
fn items_by_input(dir: &std::path::Path, run_id: i64) -> HashMap<u32, Vec<String>> {
    read(dir, |c| {
        let mut per_input: HashMap<u32, Vec<String>> = HashMap::new();
        let q = watchbell::store::ItemQuery {
            run_id: Some(run_id),
            ..Default::default()
        };
        c.for_each_item_text(&q, |row| {
            let v: Value = serde_json::from_str(&row.text).unwrap();
            per_input
                .entry(row.input.unwrap())
                .or_default()
                .push(v["id"].as_str().unwrap().to_string());
            Ok(())
        })
        .unwrap();
        per_input
    })
    .unwrap()
}

/// A run over an inputs file reads it when accepted: each row an input with its
/// `custom_data`; a file that has vanished since makes the run INVALID with the reason, and
/// nothing is called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inputs_file_is_read_when_the_run_is_accepted_and_a_vanished_one_is_invalid() {
    let server = Server::default();
    let base = server.start().await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("in.csv");
    let rows: Vec<String> = (0..5).map(|i| format!("{},{i}", search(i))).collect();
    std::fs::write(
        &csv,
        format!(
            "google_maps_search_url,custom_data.row\n{}\n",
            rows.join("\n")
        ),
    )
    .unwrap();
    let r = runner(&dir, &base, "k", Pacer::unlimited());
    let (limits, stop) = (LIMITS, watchbell::runner::Stop::new());
    let run = create(&r, ACTION, json!({"inputs_file": csv.to_str().unwrap()})).await;
    let done = r.execute(&run.uid, &limits, &stop).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    let inputs = r.store.inputs(run.id).await.unwrap();
    assert_eq!(inputs.len(), 5);
    assert_eq!(inputs[3].input["custom_data"]["row"], "3");
    assert_eq!(done.items, u64::from(5 * PAGES * PER_PAGE));

    let calls = server.calls().len();
    std::fs::remove_file(&csv).unwrap();
    let gone = create(&r, ACTION, json!({"inputs_file": csv.to_str().unwrap()})).await;
    let done = r.execute(&gone.uid, &limits, &stop).await.unwrap();
    assert_eq!(done.status, RunStatus::Invalid);
    let e = done.last_error.unwrap();
    assert_eq!(e.label, "INVALID_INPUTS_FILE");
    assert!(
        e.message.contains("in.csv: 1:1: cannot read it"),
        "{}",
        e.message
    );
    let history = r.store.transitions(gone.id).await.unwrap();
    assert_eq!(history.last().unwrap().from.as_deref(), Some("CREATED"));
    assert_eq!(server.calls().len(), calls, "nothing was called");
}

/// An outreach list of 10 under `daily_cap.outreach = 4`: the first day's run sends inputs
/// 0-3 and stops at the cap; the next day's run (another local day: the caps' timezone moved
/// from UTC+14 to UTC-12) skips those and sends 4-7; a third run that day sends nothing. No
/// profile is ever called twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outreach_list_sends_each_input_once_ever_and_the_cap_leaves_the_rest_to_the_next_day() {
    use InputOutcome::{AlreadySent, Succeeded, Unfinished};
    let server = Server {
        pages: Some(1),
        ..Server::default()
    };
    let base = server.start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut r = runner(&dir, &base, "k", Pacer::unlimited());
    let (limits, stop) = (LIMITS, watchbell::runner::Stop::new());
    let day = |r: &mut watchbell::runner::Runner, tz| {
        r.safety = watchbell::config::Safety {
            outreach: 4,
            tz,
            ..crate::support::fast_safety()
        };
    };
    let sent = |server: &Server| {
        let calls = server.calls();
        assert!(calls.values().all(|n| *n == 1), "{calls:?}");
        let mut sent: Vec<String> = calls.into_keys().map(|(p, _)| p).collect();
        sent.sort();
        sent
    };
    let outcomes = |id| {
        let inputs = read(dir.path(), |c| c.inputs(id).unwrap()).unwrap();
        inputs.iter().map(|i| i.outcome).collect::<Vec<_>>()
    };
    day(&mut r, chrono_tz::Pacific::Kiritimati);
    let first = create(&r, OUTREACH, json!({"inputs": profiles(10)})).await;
    let done = r.execute(&first.uid, &limits, &stop).await.unwrap();
    assert_eq!(done.status, RunStatus::Stopped);
    assert_eq!(done.last_error.unwrap().label, "DAILY_CAP");
    assert_eq!(sent(&server), (0..4).map(profile).collect::<Vec<_>>());
    let o = outcomes(first.id);
    assert_eq!(o[..4], [Succeeded; 4]);
    assert_eq!(o[4], Unfinished);

    day(&mut r, chrono_tz::Etc::GMTPlus12);
    let second = create(&r, OUTREACH, json!({"inputs": profiles(10)})).await;
    let done = r.execute(&second.uid, &limits, &stop).await.unwrap();
    assert_eq!(done.status, RunStatus::Stopped);
    assert_eq!(sent(&server), (0..8).map(profile).collect::<Vec<_>>());
    let o = outcomes(second.id);
    assert_eq!(o[..4], [AlreadySent; 4]);
    assert_eq!(o[4..8], [Succeeded; 4]);
    assert!(!o[8].is_final());

    // The same day again: the cap is spent, and what was sent is not sent again.
    let third = create(&r, OUTREACH, json!({"inputs": profiles(10)})).await;
    let done = r.execute(&third.uid, &limits, &stop).await.unwrap();
    assert_eq!(done.status, RunStatus::Stopped);
    assert_eq!(sent(&server).len(), 8);
    assert_eq!(outcomes(third.id)[..8], [AlreadySent; 8]);
}

/// The outreach variant of the kill test: a list of 10 invitations killed with SIGKILL while a
/// request is in flight and resumed by the daemon sends no profile twice; the input in flight
/// at the kill is `outcome_unknown`, every other one succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outreach_list_killed_in_flight_sends_nothing_twice() {
    let server = Server {
        delay: Duration::from_millis(400),
        pages: Some(1),
        ..Server::default()
    };
    let base = server.start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = (0..10).map(|i| format!("{{ linkedin_profile_url = \"{}\" }}", profile(i)));
    let action = format!("action = \"{OUTREACH}\"\nidentity_mode = \"auto\"\n");
    write_list_job(d, &base, "invite", &action, inputs);
    let mut trigger = process(d, &["trigger", "invite"], "trigger.log");
    eventually(WAIT, || {
        // Three answered, the fourth (or fifth) on its way.
        let far = server.calls().len() >= 4;
        async move { far }
    })
    .await;
    trigger.kill().unwrap();
    trigger.wait().unwrap();
    let mut daemon = process(d, &["run"], "daemon.log");
    let run = || only_run(d);
    // STOPPED (owner_lost) comes first and is not the end: the daemon resumes it.
    eventually(WAIT, || {
        let done = matches!(
            run().status,
            RunStatus::Succeeded | RunStatus::PartialSucceeded
        );
        async move { done }
    })
    .await;
    let calls = server.calls();
    assert_eq!(calls.len(), 10, "{calls:?}");
    assert!(calls.values().all(|n| *n == 1), "sent twice: {calls:?}");
    let inputs = read(d, |c| c.inputs(run().id).unwrap()).unwrap();
    let unknown = inputs
        .iter()
        .filter(|i| i.outcome == InputOutcome::OutcomeUnknown)
        .count();
    let succeeded = inputs
        .iter()
        .filter(|i| i.outcome == InputOutcome::Succeeded)
        .count();
    assert!(unknown <= 1 && unknown + succeeded == 10, "{inputs:?}");
    let expect = if unknown == 1 {
        RunStatus::PartialSucceeded
    } else {
        RunStatus::Succeeded
    };
    assert_eq!(run().status, expect);
    signal(&daemon, "-TERM");
    assert!(wait_exit(&mut daemon).await.success());
}

/// `input_concurrency = 4` on an identity-free action: inputs are paged four at a time (the
/// server sees requests at once), every page gets its own number, and every input's items are
/// stored once and attributed to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_paged_at_once_each_keep_their_own_pages() {
    let server = Server {
        delay: Duration::from_millis(40),
        ..Server::default()
    };
    let base = server.start().await;
    let dir = tempfile::tempdir().unwrap();
    let r = runner(&dir, &base, "k", Pacer::unlimited());
    let inputs: Vec<Value> = (0..12)
        .map(|i| json!({"google_maps_search_url": search(i)}))
        .collect();
    let run = create(&r, ACTION, json!({"inputs": inputs})).await;
    let limits = watchbell::runner::Limits {
        input_concurrency: 4,
        ..LIMITS
    };
    let done = r
        .execute(&run.uid, &limits, &watchbell::runner::Stop::new())
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    let most = server.in_flight.lock().unwrap().1;
    assert!((2..=4).contains(&most), "{most} requests at once");
    let pages = r.store.pages(run.id).await.unwrap();
    let numbers: HashSet<u32> = pages.iter().map(|p| p.page).collect();
    assert_eq!(numbers.len(), 12 * PAGES as usize);
    assert_eq!(numbers.iter().max().copied(), Some(12 * PAGES));
    let per_input = items_by_input(dir.path(), run.id);
    for i in 0..12u32 {
        let ids = &per_input[&i];
        assert_eq!(ids.len(), (PAGES * PER_PAGE) as usize, "input {i}");
        assert!(
            ids.iter()
                .all(|id| id.starts_with(&format!("{}|", search(i as usize))))
        );
    }
    assert!(server.calls().values().all(|n| *n == 1));
}
