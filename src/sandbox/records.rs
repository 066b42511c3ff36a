//! Runs, schedules and the workspace, kept in memory: create, list (limit/offset), get,
//! pause/resume/cancel with the contract's legal transitions, and run resume.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Kind, State, api_error, invalid, strict};
use crate::schedule::CronExpr;
use crate::uid::new_uid;

#[derive(Default)]
pub(crate) struct Records {
    runs: Vec<RunRecord>,
    schedules: Vec<Value>,
    /// What each schedule sends when it fires (the API does not show it): its inputs and
    /// callback, headers included.
    sends: std::collections::HashMap<String, (Vec<Value>, Value)>,
    next_id: i64,
}

/// A run as the simulator keeps it: what varies, in a few dozen bytes (the API's JSON object of
/// 17 keys, kept parsed, took about 3 KB, and a saturated daemon makes thousands of runs a
/// second); the object is written when a run is asked for.
struct RunRecord {
    id: i64,
    uid: String,
    action: Box<str>,
    mode: &'static str,
    status: &'static str,
    callback: Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl RunRecord {
    fn json(&self) -> Value {
        let (created, updated) = (self.created_at.to_rfc3339(), self.updated_at.to_rfc3339());
        json!({
            "id": self.id, "uid": self.uid, "action_id": action_id(&self.action),
            "action_name": &*self.action, "retry_count": 0, "user_uid": USER,
            "workspace_uid": WORKSPACE, "execution_mode": self.mode, "last_error": null,
            "callback": self.callback, "status": self.status, "postponed_until": null,
            "started_at": created, "finished_at": null, "synced_at": null,
            "created_at": created, "updated_at": updated,
        })
    }
}

impl Records {
    fn run(
        &mut self,
        action: &str,
        mode: &'static str,
        status: &'static str,
        now: DateTime<Utc>,
    ) -> &mut RunRecord {
        self.next_id += 1;
        self.runs.push(RunRecord {
            id: self.next_id,
            uid: new_uid(now),
            action: action.into(),
            mode,
            status,
            callback: Value::Null,
            created_at: now,
            updated_at: now,
        });
        self.runs.last_mut().expect("just pushed")
    }

    pub(crate) fn record_live(&mut self, action: &str, now: DateTime<Utc>) {
        self.run(action, "LIVE", "SUCCEEDED", now);
    }

    pub(crate) fn set_run_status(&mut self, uid: &str, status: &'static str, now: DateTime<Utc>) {
        if let Some(r) = self.runs.iter_mut().find(|r| r.uid == uid) {
            r.status = status;
            r.updated_at = now;
        }
    }

    pub(crate) fn callback_of(&self, uid: &str) -> Option<Value> {
        self.sends.get(uid).map(|(_, c)| c.clone())
    }

    pub(crate) fn schedules_json(&self) -> Vec<Value> {
        self.schedules.clone()
    }

    pub(crate) fn force_status(&mut self, uid: &str, status: &str) -> bool {
        match self.schedules.iter_mut().find(|s| s["uid"] == uid) {
            Some(s) => {
                s["status"] = json!(status);
                true
            }
            None => false,
        }
    }
}

const USER: &str = "00000000-0000-4000-8000-000000000001";
pub(crate) const WORKSPACE: &str = "00000000-0000-4000-8000-000000000002";

fn action_id(action: &str) -> i64 {
    action
        .bytes()
        .fold(7_i64, |h, b| (h * 31 + i64::from(b)) % 1_000_000)
}

/// The record with `uid`, or the API's 404.
fn by_uid(items: &[Value], uid: &str, what: &str) -> Response {
    match items.iter().find(|r| r["uid"] == uid) {
        Some(r) => (StatusCode::OK, Json(r.clone())).into_response(),
        None => not_found(what),
    }
}

fn not_found(what: &str) -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        None,
        &format!("{what} not found"),
    )
}

fn object(body: &Bytes) -> Result<serde_json::Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(invalid("body must be a JSON object")),
    }
}

/// The body as the API's schema for `mode` accepts it, or the API's refusal.
fn checked(
    name: &str,
    mode: &str,
    body: &Bytes,
) -> Result<serde_json::Map<String, Value>, Response> {
    if strict::action(name).is_none() {
        return Err(not_found(&format!("action {name:?}")));
    }
    let m = object(body)?;
    match strict::refusal(name, mode, &Value::Object(m.clone())) {
        Some(why) => Err(invalid(&why)),
        None => Ok(m),
    }
}

pub(crate) async fn run_async(
    AxState(st): AxState<Arc<State>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = st.admit(&headers, Kind::Other).await {
        return r;
    }
    let m = match checked(&name, "async", &body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let callback = m.get("callback").cloned().unwrap_or(Value::Null);
    let run = {
        let mut recs = st.records.lock().expect("lock");
        let run = recs.run(&name, "ASYNC", "QUEUED", st.now());
        // The API keeps the callback's URL, not its headers (they carry the token).
        run.callback = json!({"url": callback["url"]});
        run.json()
    };
    let inputs = m
        .get("inputs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let uid = run["uid"].as_str().unwrap_or_default().to_string();
    st.records
        .lock()
        .expect("lock")
        .sends
        .insert(uid.clone(), (inputs.clone(), callback.clone()));
    tokio::spawn(super::callbacks::play(
        st.clone(),
        uid,
        name,
        inputs,
        callback,
    ));
    if super::callbacks::lose_create(&st) {
        return api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "INTERNAL_ERROR",
            Some("server"),
            "the answer was lost (the run exists)",
        );
    }
    let receipt = json!({
        "run_id": run["id"], "run_uid": run["uid"], "action_name": run["action_name"],
        "workspace_uid": WORKSPACE, "user_uid": USER, "status": "pending",
        "postponed_until": null, "created_at": run["created_at"], "synced_at": null,
        "updated_at": run["updated_at"],
    });
    (StatusCode::OK, Json(receipt)).into_response()
}

pub(crate) async fn create_schedule(
    AxState(st): AxState<Arc<State>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = st.admit(&headers, Kind::Other).await {
        return r;
    }
    let m = match checked(&name, "schedule", &body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Some(cron_text) = m.get("cron").and_then(Value::as_str) else {
        return invalid("cron is required");
    };
    // Captain Data's scheduler takes plain POSIX cron only.
    if let Err(why) = CronExpr::parse(cron_text)
        .map_err(|e| e.to_string())
        .and_then(|c| c.plain_posix())
    {
        return invalid(&format!("cron {cron_text:?}: {why}"));
    }
    let tz_name = m.get("timezone").and_then(Value::as_str).unwrap_or("UTC");
    if tz_name.parse::<chrono_tz::Tz>().is_err() {
        return invalid(&format!("unknown timezone {tz_name:?}"));
    }
    let now = st.now();
    // Without `schedule_at` the API runs a new schedule at once, then on its cron.
    let next = match m.get("schedule_at").and_then(Value::as_str) {
        Some(at) => match DateTime::parse_from_rfc3339(at) {
            Ok(at) => Some(at.to_utc().to_rfc3339()),
            Err(e) => return invalid(&format!("schedule_at {at:?}: {e}")),
        },
        None => Some(now.to_rfc3339()),
    };
    let uid = new_uid(now);
    let t = now.to_rfc3339();
    let schedule = json!({
        "uid": uid, "action_id": action_id(&name), "action_name": name, "user_uid": USER,
        "workspace_uid": WORKSPACE, "status": "ACTIVE", "postponed_until": null,
        "cron": cron_text, "timezone": tz_name, "next_execution_at": next,
        "last_executed_at": null, "created_at": t, "updated_at": t,
    });
    let sends = (
        m.get("inputs")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        m.get("callback").cloned().unwrap_or(Value::Null),
    );
    let mut recs = st.records.lock().expect("lock");
    recs.schedules.push(schedule);
    recs.sends.insert(uid.clone(), sends);
    drop(recs);
    let answer = json!({"schedule_uid": uid, "status": "ACTIVE", "cron": cron_text,
        "timezone": tz_name, "next_execution_at": next, "created_at": t});
    (StatusCode::OK, Json(answer)).into_response()
}

/// Query pairs, with repeated keys kept (array filters repeat the key).
pub(crate) fn pairs(q: Option<&str>) -> Vec<(String, String)> {
    let url = reqwest::Url::parse(&format!("http://x/?{}", q.unwrap_or(""))).expect("valid");
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Filters by the listed fields (a key given several times matches any), then pages.
pub(crate) fn list(items: &[Value], q: Option<&str>, filters: &[&str]) -> Response {
    let pairs = pairs(q);
    let get = |k: &str| {
        pairs
            .iter()
            .filter(|(pk, _)| pk == k)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    let limit = match get("limit").first().map(|s| s.parse::<usize>()) {
        None => 10,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => return invalid("limit must be from 1 to 100"),
    };
    let offset = match get("offset").first().map(|s| s.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return invalid("offset must be a whole number"),
    };
    let mut out: Vec<&Value> = items
        .iter()
        .filter(|item| {
            filters.iter().all(|f| {
                let wanted = get(f);
                wanted.is_empty() || wanted.iter().any(|w| item[*f].as_str() == Some(w))
            })
        })
        .collect();
    if get("sort").first().is_some_and(|s| *s == "-created_at") {
        out.reverse();
    }
    let page: Vec<Value> = out.into_iter().skip(offset).take(limit).cloned().collect();
    (StatusCode::OK, Json(Value::Array(page))).into_response()
}

pub(crate) async fn list_runs(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(r) = st.admit(&headers, Kind::Other).await {
        return r;
    }
    let runs: Vec<Value> = st
        .records
        .lock()
        .expect("lock")
        .runs
        .iter()
        .map(RunRecord::json)
        .collect();
    list(
        &runs,
        q.as_deref(),
        &["status", "action_name", "execution_mode", "uid"],
    )
}

pub(crate) async fn get_run(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Response {
    if let Err(r) = st.admit(&headers, Kind::Other).await {
        return r;
    }
    let recs = st.records.lock().expect("lock");
    match recs.runs.iter().find(|r| r.uid == uid) {
        Some(r) => (StatusCode::OK, Json(r.json())).into_response(),
        None => not_found("run"),
    }
}

pub(crate) async fn resume_run(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Response {
    if let Err(r) = st.admit(&headers, Kind::Other).await {
        return r;
    }
    let now = st.now();
    let mut recs = st.records.lock().expect("lock");
    let Some(run) = recs.runs.iter_mut().find(|r| r.uid == uid) else {
        return not_found("run");
    };
    let resumable = ["STOPPED", "BLOCKED", "FAILED", "PARTIAL_SUCCEEDED"];
    if !resumable.contains(&run.status) {
        return api_error(
            StatusCode::BAD_REQUEST,
            "RUN_NOT_RESUMABLE",
            None,
            &format!("run is {:?}", run.status),
        );
    }
    run.status = "QUEUED";
    run.updated_at = now;
    let answer = run.json();
    // An async run resumed plays its callbacks again (the same batches: a receiver that has
    // them stores nothing twice).
    let again = (run.mode == "ASYNC").then(|| (run.uid.clone(), run.action.to_string()));
    if let Some((uid, action)) = again
        && let Some((inputs, callback)) = recs.sends.get(&uid).cloned()
    {
        drop(recs);
        tokio::spawn(super::callbacks::play(
            st.clone(),
            uid,
            action,
            inputs,
            callback,
        ));
    }
    (StatusCode::OK, Json(answer)).into_response()
}

pub(crate) async fn list_schedules(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(r) = st.admit(&headers, Kind::Other).await {
        return r;
    }
    let recs = st.records.lock().expect("lock");
    list(&recs.schedules, q.as_deref(), &["status", "action_name"])
}

pub(crate) async fn get_schedule(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Response {
    if let Err(r) = st.admit(&headers, Kind::Other).await {
        return r;
    }
    let recs = st.records.lock().expect("lock");
    by_uid(&recs.schedules, &uid, "schedule")
}

pub(crate) async fn manage_schedule(
    AxState(st): AxState<Arc<State>>,
    headers: HeaderMap,
    Path((uid, action)): Path<(String, String)>,
) -> Response {
    if let Err(r) = st.admit(&headers, Kind::Other).await {
        return r;
    }
    let now = st.now().to_rfc3339();
    let mut recs = st.records.lock().expect("lock");
    let Some(s) = recs.schedules.iter_mut().find(|s| s["uid"] == uid) else {
        return not_found("schedule");
    };
    let from = s["status"].as_str().unwrap_or("").to_string();
    let to = match (from.as_str(), action.as_str()) {
        ("ACTIVE", "pause") => "PAUSED",
        ("PAUSED", "resume") => "ACTIVE",
        ("ACTIVE" | "PAUSED", "cancel") => "CANCELLED",
        (_, "pause" | "resume" | "cancel") => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "INVALID_SCHEDULE_TRANSITION",
                None,
                &format!("cannot {action} a schedule that is {from}"),
            );
        }
        _ => return not_found("schedule action"),
    };
    s["status"] = json!(to);
    s["updated_at"] = json!(now);
    (StatusCode::OK, Json(s.clone())).into_response()
}

pub(crate) async fn workspace(AxState(st): AxState<Arc<State>>, headers: HeaderMap) -> Response {
    if let Err(r) = st.admit(&headers, Kind::Other).await {
        return r;
    }
    let (max, used) = st.credits();
    let body = json!({"name": "Sandbox", "uid": WORKSPACE,
        "credits_left": max.saturating_sub(used), "credits_max": max,
        "credits_used": used.min(max), "plan_name": "sandbox"});
    (StatusCode::OK, Json(body)).into_response()
}

/// Fires schedule `uid` now, as its cron would: an async run whose callbacks go where the
/// schedule says. The run's uid, or `None` for an unknown schedule.
pub(crate) fn fire(st: &Arc<State>, uid: &str) -> Option<String> {
    let now = st.now();
    let (action, inputs, callback, run_uid) = {
        let mut recs = st.records.lock().expect("lock");
        let s = recs.schedules.iter_mut().find(|s| s["uid"] == uid)?;
        s["last_executed_at"] = json!(now.to_rfc3339());
        let action = s["action_name"].as_str().unwrap_or_default().to_string();
        let (inputs, callback) = recs.sends.get(uid).cloned()?;
        let run = recs.run(&action, "ASYNC", "QUEUED", now);
        run.callback = json!({"url": callback["url"]});
        (action, inputs, callback, run.uid.clone())
    };
    tokio::spawn(super::callbacks::play(
        st.clone(),
        run_uid.clone(),
        action,
        inputs,
        callback,
    ));
    Some(run_uid)
}

/// Fires every ACTIVE schedule whose next execution has come, and sets its next one.
pub(crate) fn fire_due(st: &Arc<State>) {
    let now = st.now();
    let due: Vec<String> = {
        let mut recs = st.records.lock().expect("lock");
        let mut due = Vec::new();
        for s in &mut recs.schedules {
            let next = s["next_execution_at"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
            if s["status"] != "ACTIVE" || next.is_none_or(|n| n.to_utc() > now) {
                continue;
            }
            let tz: chrono_tz::Tz = s["timezone"]
                .as_str()
                .unwrap_or("UTC")
                .parse()
                .unwrap_or(chrono_tz::UTC);
            let after = CronExpr::parse(s["cron"].as_str().unwrap_or(""))
                .ok()
                .and_then(|c| {
                    crate::schedule::Schedule::new(
                        "",
                        c,
                        tz,
                        crate::schedule::Gap::Shift,
                        crate::schedule::Fold::First,
                        std::time::Duration::ZERO,
                    )
                    .next_after(now)
                });
            s["next_execution_at"] = json!(after.map(|f| f.at.to_rfc3339()));
            due.push(s["uid"].as_str().unwrap_or_default().to_string());
        }
        due
    };
    for uid in due {
        fire(st, &uid);
    }
}
