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

use super::{Kind, State, api_error};

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    page: Option<u32>,
}

const FIELDS: &[&str] = &["input", "parameters", "identity_mode", "identity_ids"];

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
    let body: Value = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return invalid(&format!("body is not JSON: {e}")),
    };
    if let Err(msg) = check_body(&body) {
        return invalid(&msg);
    }
    let page = q.page.unwrap_or(1);
    if page == 0 {
        return invalid("page starts at 1");
    }
    if page == 1 {
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
    let items: Vec<Value> = if page > st.opts.pages {
        Vec::new()
    } else {
        (0..st.opts.page_size)
            .map(|i| {
                json!({
                    "id": item_id(&name, &input, page, i),
                    "action": name,
                    "page": page,
                    "index": i,
                    "full_name": format!("Person {page}-{i}"),
                    "headline": "Chief Technology Officer",
                })
            })
            .collect()
    };
    st.stats.live_pages.fetch_add(1, Ordering::Relaxed);
    let mut resp = (StatusCode::OK, axum::Json(Value::Array(items))).into_response();
    if page < st.opts.pages {
        let next = format!("{}/actions/{name}/run/live?page={}", st.base, page + 1);
        if let Ok(v) = HeaderValue::from_str(&next) {
            resp.headers_mut().insert("x-pagination-next", v);
        }
    }
    resp
}

fn invalid(message: &str) -> Response {
    api_error(
        StatusCode::BAD_REQUEST,
        "INVALID_INPUT",
        Some("input"),
        message,
    )
}

/// The body rules: an object of the known fields, `input` and `parameters` objects,
/// `identity_mode` one of three words.
fn check_body(body: &Value) -> Result<(), String> {
    let obj = body.as_object().ok_or("body must be a JSON object")?;
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!("unknown field {k:?}"));
    }
    for f in ["input", "parameters"] {
        if obj.get(f).is_some_and(|v| !v.is_object() && !v.is_null()) {
            return Err(format!("{f} must be an object"));
        }
    }
    if let Some(m) = obj.get("identity_mode").and_then(Value::as_str)
        && !["direct", "auto", "managed"].contains(&m)
    {
        return Err(format!(
            "identity_mode {m:?} is not direct, auto or managed"
        ));
    }
    Ok(())
}

/// A stable id from (action, input, page, index): FNV-1a, 64 bits, as hex.
pub(crate) fn item_id(action: &str, input: &str, page: u32, index: u32) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in action
        .bytes()
        .chain([0])
        .chain(input.bytes())
        .chain([0])
        .chain(page.to_le_bytes())
        .chain(index.to_le_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
