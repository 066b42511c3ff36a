//! Live runs: deterministic pages of items with stable unique ids, paginated with
//! `X-Pagination-Next` exactly as the contract says.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Kind, State, api_error, invalid, strict};
use crate::fnv::Fnv;

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    page: Option<u32>,
}

pub(crate) async fn run_live(
    AxState(st): AxState<Arc<State>>,
    Path(name): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = st.admit(&headers, Kind::Live).await {
        return r;
    }
    let Some(action) = strict::action(&name) else {
        return api_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            None,
            &format!("action {name:?} not found"),
        );
    };
    let body: Value = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return invalid(&format!("body is not JSON: {e}")),
    };
    if let Some(why) = strict::refusal(&name, "live", &body) {
        return invalid(&why);
    }
    let (max, used) = st.credits();
    if used >= max {
        return api_error(
            StatusCode::PAYMENT_REQUIRED,
            "NOT_ENOUGH_CREDITS",
            Some("account"),
            "no credits left on the account for this billing period",
        );
    }
    let page = q.page.unwrap_or(1);
    if page == 0 {
        return invalid("page starts at 1");
    }
    if page == 1 {
        let run = headers.get("x-watchbell-run").and_then(|v| v.to_str().ok());
        *st.starts
            .lock()
            .expect("lock")
            .entry(run.unwrap_or_default().to_string())
            .or_default() += 1;
        st.records
            .lock()
            .expect("lock")
            .record_live(&name, st.now());
    }
    let input = body
        .get("input")
        .cloned()
        .unwrap_or(Value::Null)
        .to_string();
    if page == 1 && crate::catalog::Count::of(&name) == crate::catalog::Count::Outreach {
        // What an auditor checks: which person was contacted, and how often.
        let key = format!("{name} {}", crate::store::sent_key(&body["input"]));
        *st.outreach.lock().expect("lock").entry(key).or_default() += 1;
    }
    let single = action["output_is_object"] == true;
    let paginated = action["modes"]["live"].get("query").is_some();
    let pages = if paginated { st.opts.pages } else { 1 };
    let count = match (page > pages, single) {
        (true, _) => 0,
        (false, true) => 1,
        // What `watchbell actions` says a page holds, unless told otherwise.
        (false, false) => st.opts.page_size.unwrap_or_else(|| {
            action["modes"]["live"]["query"]["page_size"]["default"]
                .as_u64()
                .map_or(10, |n| n as u32)
        }),
    };
    let mut items: Vec<Value> = Vec::new();
    if page == 1 && paginated && !single && st.opts.new_per_run > 0 {
        // Never served before: keyed by this run's number, which no other run shares.
        let run = st.runs_begun.fetch_add(1, Ordering::Relaxed);
        let fresh = format!("{input}\u{0}new-{run}");
        items
            .extend((0..st.opts.new_per_run).map(|i| item(&name, &action["output"], &fresh, 0, i)));
    }
    items.extend((0..count).map(|i| item(&name, &action["output"], &input, page, i)));
    let count = items.len() as u32;
    st.stats.live_pages.fetch_add(1, Ordering::Relaxed);
    st.stats
        .items
        .fetch_add(u64::from(count), Ordering::Relaxed);
    let answer = match items.pop() {
        Some(one) if single => one,
        Some(last) => {
            items.push(last);
            Value::Array(items)
        }
        None => Value::Array(items),
    };
    let mut resp = (StatusCode::OK, axum::Json(answer)).into_response();
    if page < pages {
        let next = format!("{}/actions/{name}/run/live?page={}", st.base, page + 1);
        if let Ok(v) = HeaderValue::from_str(&next) {
            resp.headers_mut().insert("x-pagination-next", v);
        }
    }
    resp
}

/// One result item: the action's result fields with values of their types, and a stable
/// unique `id` so a client's stored results can be checked for loss and duplicates.
pub(crate) fn item(action: &str, output: &Value, input: &str, page: u32, index: u32) -> Value {
    let id = item_id(action, input, page, index);
    let mut m = serde_json::Map::new();
    for (field, schema) in output.as_object().into_iter().flatten() {
        let n = u64::from(page) * 1000 + u64::from(index);
        let v = match schema["type"].as_str() {
            // Named like an input key: a value that key's pattern takes (chains send it back).
            Some("string") if let Some(v) = super::values::value(field, &id) => json!(v),
            Some("string") if schema["format"] == "uri" => {
                json!(format!("https://example.com/{action}/{id}/{field}"))
            }
            Some("string") => json!(format!("{field} {page}-{index}")),
            Some("integer") => json!(n),
            Some("number") => json!(n as f64 / 10.0),
            Some("boolean") => json!(index.is_multiple_of(2)),
            Some("array") => json!([]),
            Some("object") => json!({}),
            _ => Value::Null,
        };
        m.insert(field.clone(), v);
    }
    m.insert("id".into(), json!(id));
    m.insert("page".into(), json!(page));
    m.insert("index".into(), json!(index));
    Value::Object(m)
}

/// A stable id from (action, input, page, index): FNV-1a, 64 bits, as hex.
pub(crate) fn item_id(action: &str, input: &str, page: u32, index: u32) -> String {
    Fnv::new()
        .write(action.as_bytes())
        .write(&[0])
        .write(input.as_bytes())
        .write(&[0])
        .write(&page.to_le_bytes())
        .write(&index.to_le_bytes())
        .hex()
}
