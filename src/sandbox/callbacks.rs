//! Async mode as the vendor plays it: a run's results go out as callbacks, one per page of each
//! input (status RUNNING) and a final one, each retried until answered 2xx (then logged FAILED),
//! with a callback log that can be listed, read and replayed (originals only, at most three
//! times each). `--callbacks` adds the vendor's misbehaviour, counted and seeded: duplicates,
//! reordered deliveries, originals and replays that never arrive, creates whose answer is lost.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Kind, State, api_error, invalid, live, strict};
use crate::uid::new_uid;

/// `--callbacks duplicate=P,reorder=N,drop=N,drop-replays=N,lose-create=N,gap=MS,fail-runs=N`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chaos {
    /// Probability that a delivered callback is delivered once more.
    pub duplicate: f64,
    /// Originals delivered after the one that follows them (pairs swapped), in all.
    pub reorder: u32,
    /// Originals never delivered (logged FAILED), in all.
    pub drop: u32,
    /// Replays never delivered (logged FAILED), in all.
    pub drop_replays: u32,
    /// Async creates accepted whose answer is replaced by a 503, in all.
    pub lose_create: u32,
    /// Milliseconds between two callbacks of a run (a vendor that takes its time).
    pub gap_ms: u32,
    /// Async runs that end FAILED after their batches (a resume plays them again), in all.
    pub fail_runs: u32,
}

pub fn parse_chaos(text: &str) -> Result<Chaos, String> {
    let mut chaos = Chaos::default();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: write KEY=VALUE"))?;
        let count = || {
            value
                .parse::<u32>()
                .map_err(|_| format!("{key}={value}: a whole number"))
        };
        match key {
            "duplicate" => {
                chaos.duplicate = value
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=1.0).contains(p))
                    .ok_or_else(|| format!("duplicate={value}: a probability from 0 to 1"))?;
            }
            "reorder" => chaos.reorder = count()?,
            "drop" => chaos.drop = count()?,
            "drop-replays" => chaos.drop_replays = count()?,
            "lose-create" => chaos.lose_create = count()?,
            "gap" => chaos.gap_ms = count()?,
            "fail-runs" => chaos.fail_runs = count()?,
            other => {
                return Err(format!(
                    "unknown {other:?}: duplicate, reorder, drop, drop-replays, lose-create, gap, fail-runs"
                ));
            }
        }
    }
    Ok(chaos)
}

/// The chaos still to be done, and what was done (a test reads it).
#[derive(Debug, Default)]
pub struct Counts {
    pub left: Chaos,
    pub delivered: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub dropped: u64,
    pub replays: u64,
    pub replays_dropped: u64,
    pub creates_lost: u64,
}

/// One entry of the callback log, with the payload the API does not show.
pub(crate) struct Entry {
    uid: String,
    parent_uid: Option<String>,
    retry_count: u32,
    created_at: DateTime<Utc>,
    status: &'static str,
    callback_url: String,
    http_status: Option<u16>,
    batch_uid: String,
    run_uid: String,
    body: Value,
    headers: Vec<(String, String)>,
}

impl Entry {
    fn json(&self) -> Value {
        json!({
            "uid": self.uid, "parent_uid": self.parent_uid, "retry_count": self.retry_count,
            "created_at": self.created_at.to_rfc3339(), "status": self.status,
            "callback_url": self.callback_url, "http_status": self.http_status,
            "batch_uid": self.batch_uid, "run_uid": self.run_uid,
            "workspace_uid": super::records::WORKSPACE,
        })
    }
}

/// Attempts per delivery before it is logged FAILED.
const ATTEMPTS: u32 = 8;

/// Plays an accepted async run: its callbacks, in order (chaos aside), then its final status.
pub(crate) async fn play(
    st: Arc<State>,
    run_uid: String,
    action: String,
    inputs: Vec<Value>,
    callback: Value,
) {
    let Some(url) = callback["url"].as_str().map(str::to_string) else {
        return;
    };
    let headers: Vec<(String, String)> = callback["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    st.records
        .lock()
        .expect("lock")
        .set_run_status(&run_uid, "RUNNING", st.now());
    let mut bodies = batches(&st, &run_uid, &action, &inputs);
    {
        let mut counts = st.chaos.lock().expect("lock");
        let mut i = 0;
        while counts.left.reorder > 0 && i + 1 < bodies.len() {
            bodies.swap(i, i + 1);
            counts.left.reorder -= 1;
            counts.reordered += 1;
            i += 2;
        }
    }
    let ending = if spend(&st, |c| (&mut c.left.fail_runs, None)) {
        "FAILED"
    } else {
        "SUCCEEDED"
    };
    let final_body = json!({
        "run": {"run_uid": run_uid, "batch_uid": format!("{run_uid}-final-{}", ending.to_lowercase()), "status": ending},
        "input": null, "custom_data": null, "error": null, "results": null,
    });
    let last = bodies.len();
    bodies.push(final_body);
    let gap = Duration::from_millis(u64::from(st.chaos.lock().expect("lock").left.gap_ms));
    for (i, body) in bodies.into_iter().enumerate() {
        if i > 0 && !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
        if i == last {
            st.records
                .lock()
                .expect("lock")
                .set_run_status(&run_uid, ending, st.now());
        }
        let uid = log(&st, &run_uid, None, &url, &headers, body);
        let dropped = spend(&st, |c| (&mut c.left.drop, Some(&mut c.dropped)));
        if dropped {
            settle(&st, &uid, "FAILED", None, 0);
        } else {
            deliver(&st, &uid).await;
        }
    }
}

/// The RUNNING callbacks of a run: for each input, its pages of items.
fn batches(st: &State, run_uid: &str, action: &str, inputs: &[Value]) -> Vec<Value> {
    let Some(act) = strict::action(action) else {
        return Vec::new();
    };
    let single = act["output_is_object"] == true;
    let paginated = act["modes"]["live"].get("query").is_some();
    let pages = if paginated { st.opts.pages } else { 1 };
    let per_page = if single {
        1
    } else {
        st.opts.page_size.unwrap_or_else(|| {
            act["modes"]["live"]["query"]["page_size"]["default"]
                .as_u64()
                .map_or(10, |n| n as u32)
        })
    };
    let mut out = Vec::new();
    for (n, input) in inputs.iter().enumerate() {
        let custom = input.get("custom_data").cloned().unwrap_or(Value::Null);
        let mut plain = input.clone();
        if let Some(m) = plain.as_object_mut() {
            m.remove("custom_data");
        }
        let key = plain.to_string();
        for page in 1..=pages {
            let items: Vec<Value> = (0..per_page)
                .map(|i| live::item(action, &act["output"], &key, page, i))
                .collect();
            st.stats
                .items
                .fetch_add(items.len() as u64, Ordering::Relaxed);
            out.push(json!({
                "run": {"run_uid": run_uid, "batch_uid": format!("{run_uid}-{n}-{page}"), "status": "RUNNING"},
                "input": plain, "custom_data": custom, "error": null, "results": items,
            }));
        }
    }
    out
}

/// Writes a PENDING log entry; its uid.
fn log(
    st: &State,
    run_uid: &str,
    parent: Option<String>,
    url: &str,
    headers: &[(String, String)],
    body: Value,
) -> String {
    let now = st.now();
    let uid = new_uid(now);
    let batch_uid = body["run"]["batch_uid"].as_str().unwrap_or("").to_string();
    st.log.lock().expect("lock").push(Entry {
        uid: uid.clone(),
        parent_uid: parent,
        retry_count: 0,
        created_at: now,
        status: "PENDING",
        callback_url: url.to_string(),
        http_status: None,
        batch_uid,
        run_uid: run_uid.to_string(),
        body,
        headers: headers.to_vec(),
    });
    uid
}

fn settle(st: &State, uid: &str, status: &'static str, http: Option<u16>, retries: u32) {
    if let Some(e) = st
        .log
        .lock()
        .expect("lock")
        .iter_mut()
        .find(|e| e.uid == uid)
    {
        e.status = status;
        e.http_status = http;
        e.retry_count = retries;
    }
}

/// Delivers log entry `uid` until answered 2xx, then maybe once more (`duplicate`).
async fn deliver(st: &State, uid: &str) {
    let Some((url, headers, body)) = st
        .log
        .lock()
        .expect("lock")
        .iter()
        .find(|e| e.uid == uid)
        .map(|e| (e.callback_url.clone(), e.headers.clone(), e.body.clone()))
    else {
        return;
    };
    let send = || {
        let mut req = st.http.post(&url).json(&body);
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let mut wait = Duration::from_millis(50);
    for attempt in 0..ATTEMPTS {
        let answer = send().await.map(|r| r.status().as_u16());
        if let Ok(code) = answer
            && (200..300).contains(&code)
        {
            settle(st, uid, "SUCCESS", Some(code), attempt);
            st.chaos.lock().expect("lock").delivered += 1;
            if st.random() < st.chaos.lock().expect("lock").left.duplicate {
                let _ = send().await;
                st.chaos.lock().expect("lock").duplicated += 1;
            }
            return;
        }
        settle(st, uid, "RUNNING", answer.ok(), attempt);
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(1));
    }
    settle(st, uid, "FAILED", None, ATTEMPTS);
}

/// `GET /runs/callbacks`: the log of a run (`run_uid`, `status` filters), 1..20 a page.
pub(crate) async fn list(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(r) = st.admit(&headers, Kind::Other).await {
        return r;
    }
    let limit = super::records::pairs(q.as_deref())
        .into_iter()
        .find(|(k, _)| k == "limit")
        .map(|(_, v)| v.parse::<usize>());
    if matches!(limit, Some(Ok(n)) if !(1..=20).contains(&n)) || matches!(limit, Some(Err(_))) {
        return invalid("limit must be from 1 to 20");
    }
    let entries: Vec<Value> = st
        .log
        .lock()
        .expect("lock")
        .iter()
        .map(Entry::json)
        .collect();
    super::records::list(&entries, q.as_deref(), &["run_uid", "status"])
}

/// `GET /runs/callbacks/{uid}`.
pub(crate) async fn get(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Response {
    if let Err(r) = st.admit(&headers, Kind::Other).await {
        return r;
    }
    match st.log.lock().expect("lock").iter().find(|e| e.uid == uid) {
        Some(e) => (StatusCode::OK, Json(e.json())).into_response(),
        None => api_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            None,
            "callback not found",
        ),
    }
}

/// Replays an original at most three times.
const MAX_REPLAYS: usize = 3;

/// `POST /runs/callbacks/{uid}/replay`: a new entry whose parent is the original, delivered.
pub(crate) async fn replay(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Response {
    if let Err(r) = st.admit(&headers, Kind::Other).await {
        return r;
    }
    let found = {
        let log = st.log.lock().expect("lock");
        let Some(e) = log.iter().find(|e| e.uid == uid) else {
            return api_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                None,
                "callback not found",
            );
        };
        if e.parent_uid.is_some() {
            return api_error(
                StatusCode::BAD_REQUEST,
                "CALLBACK_NOT_ORIGINAL",
                None,
                "only an original callback can be replayed",
            );
        }
        if log
            .iter()
            .filter(|c| c.parent_uid.as_deref() == Some(&uid))
            .count()
            >= MAX_REPLAYS
        {
            return api_error(
                StatusCode::BAD_REQUEST,
                "REPLAY_LIMIT_REACHED",
                None,
                "this callback was replayed 3 times already",
            );
        }
        (
            e.run_uid.clone(),
            e.callback_url.clone(),
            e.headers.clone(),
            e.body.clone(),
        )
    };
    let (run_uid, url, hdrs, body) = found;
    let child = log(&st, &run_uid, Some(uid), &url, &hdrs, body);
    st.chaos.lock().expect("lock").replays += 1;
    let dropped = spend(&st, |c| {
        (&mut c.left.drop_replays, Some(&mut c.replays_dropped))
    });
    let answer = st
        .log
        .lock()
        .expect("lock")
        .iter()
        .find(|e| e.uid == child)
        .map(Entry::json);
    let bg = st.clone();
    tokio::spawn(async move {
        if dropped {
            settle(&bg, &child, "FAILED", None, 0);
        } else {
            deliver(&bg, &child).await;
        }
    });
    (StatusCode::OK, Json(answer.unwrap_or(Value::Null))).into_response()
}

/// True when this create's answer is to be lost (`lose-create`).
pub(crate) fn lose_create(st: &State) -> bool {
    spend(st, |c| (&mut c.left.lose_create, Some(&mut c.creates_lost)))
}

/// Spends one of a chaos budget when any is left, counting it done: true when it was spent.
/// `pick` names the budget and its done-counter.
fn spend(st: &State, pick: impl FnOnce(&mut Counts) -> (&mut u32, Option<&mut u64>)) -> bool {
    let mut c = st.chaos.lock().expect("lock");
    let (left, done) = pick(&mut c);
    if *left == 0 {
        return false;
    }
    *left -= 1;
    if let Some(done) = done {
        *done += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chaos_reads_every_knob() {
        let c = parse_chaos("duplicate=1,reorder=2,drop=1,drop-replays=3,lose-create=1").unwrap();
        assert_eq!(
            c,
            Chaos {
                duplicate: 1.0,
                reorder: 2,
                drop: 1,
                drop_replays: 3,
                lose_create: 1,
                gap_ms: 0,
                fail_runs: 0,
            }
        );
        assert!(parse_chaos("duplicate=2").is_err());
        assert!(parse_chaos("shuffle=1").is_err());
        assert_eq!(parse_chaos("").unwrap(), Chaos::default());
    }
}
