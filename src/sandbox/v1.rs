//! The v1 endpoints: GETs with query parameters checked against the raw v1 catalog (required
//! keys, unknown keys; `page` was removed by the vendor in favour of the cursor), result items
//! with the endpoint's response fields and a stable `uid`, pagination by an opaque cursor in
//! `X-Pagination-Next` that expires after `--cursor-ttl`, credits spent per item, `/quotas`, and
//! a 424 on demand: a query or path value containing `sandbox:424` fails page 1, and
//! `sandbox:424@N` fails page N.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::Datelike;
use serde_json::{Value, json};

use super::{Kind, State, api_error, invalid, live};

/// The raw v1 catalog's endpoints, keyed `GET /path/{param}`.
fn raw() -> &'static Value {
    static RAW: OnceLock<Value> = OnceLock::new();
    RAW.get_or_init(|| {
        serde_json::from_str(crate::catalog::v1::V1_JSON).expect("v1 catalog parses")
    })
}

/// The catalog entry whose template matches `path` (after `/v1`), with the placeholders' values.
fn route(path: &str) -> Option<(&'static str, &'static Value, Vec<String>)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    raw()["endpoints"].as_object()?.iter().find_map(|(k, v)| {
        let template = k.strip_prefix("GET ")?;
        let t: Vec<&str> = template.trim_matches('/').split('/').collect();
        if t.len() != segs.len() {
            return None;
        }
        let mut filled = Vec::new();
        for (want, got) in t.iter().zip(&segs) {
            if want.starts_with('{') {
                filled.push(got.to_string());
            } else if want != got {
                return None;
            }
        }
        Some((template, v, filled))
    })
}

/// Every `GET /v1/...` request.
pub(crate) async fn endpoint(
    AxState(st): AxState<Arc<State>>,
    uri: Uri,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().strip_prefix("/v1").unwrap_or("");
    let Some((template, spec, filled)) = route(path) else {
        return api_error(StatusCode::NOT_FOUND, "NOT_FOUND", None, "no such endpoint");
    };
    if template == "/quotas" {
        return quotas(&st, &headers).await;
    }
    if let Err(r) = st.admit(&headers, Kind::Live).await {
        return r;
    }
    if let Some(why) = refusal(spec, &q) {
        return invalid(&why);
    }
    let page = match q.get("cursor").map(|c| st.open_cursor(c)) {
        None => 1,
        Some(Ok(page)) => page,
        Some(Err(r)) => return r,
    };
    let asked = q.values().chain(&filled);
    if let Some(fail) = asked.filter_map(|v| failing_page(v)).min()
        && fail == page
    {
        return api_error(
            StatusCode::FAILED_DEPENDENCY,
            "INTEGRATION_FAILED",
            Some("integ"),
            "the LinkedIn account behind this request failed (sandbox: asked for by sandbox:424)",
        );
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
    let paginated = spec["headers"]
        .as_array()
        .is_some_and(|h| h.iter().any(|h| h == "X-Pagination-Next"));
    let size = spec["query"]["page_size"]["maximum"].as_u64().unwrap_or(1) as u32;
    let pages = if paginated { st.opts.pages } else { 1 };
    // What the results depend on: the endpoint and what was asked, not the cursor.
    let mut asked: BTreeMap<&str, &str> = q
        .iter()
        .filter(|(k, _)| *k != "cursor")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let joined = filled.join("/");
    asked.insert("", &joined);
    let input = format!("{asked:?}");
    let fields = spec.get("response_array_of").unwrap_or(&spec["response"]);
    let count = if page > pages { 0 } else { size };
    let items: Vec<Value> = (0..count)
        .map(|i| item(template, fields, &input, page, i))
        .collect();
    st.stats.live_pages.fetch_add(1, Ordering::Relaxed);
    st.stats
        .items
        .fetch_add(u64::from(count), Ordering::Relaxed);
    let answer = if paginated {
        Value::Array(items)
    } else {
        items.into_iter().next().unwrap_or(Value::Null)
    };
    let mut resp = (StatusCode::OK, Json(answer)).into_response();
    if paginated && page < pages {
        let mut next = reqwest::Url::parse(&format!("{}{}", st.v1_base(), path)).expect("URL");
        {
            let mut pairs = next.query_pairs_mut();
            for (k, v) in q.iter().filter(|(k, _)| *k != "cursor") {
                pairs.append_pair(k, v);
            }
            pairs.append_pair("cursor", &st.issue_cursor(page + 1));
        }
        if let Ok(v) = HeaderValue::from_str(next.as_str()) {
            resp.headers_mut().insert("x-pagination-next", v);
        }
    }
    resp
}

/// Why the API would refuse this query: a missing required key, an unknown one, or `page`.
fn refusal(spec: &Value, q: &BTreeMap<String, String>) -> Option<String> {
    let params = spec["query"].as_object()?;
    let mut why = Vec::new();
    for (k, p) in params {
        if p["required"] == true && !q.contains_key(k) {
            why.push(format!("query parameter {k:?} is required"));
        }
    }
    for k in q.keys() {
        let alias = |p: &Value| {
            p["x-variations"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == k.as_str()))
        };
        if k == "page" {
            why.push("page was removed on 2026-01-15: follow X-Pagination-Next (cursor)".into());
        } else if k != "cursor" && !params.contains_key(k) && !params.values().any(alias) {
            why.push(format!("unknown query parameter {k:?}"));
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// The page a value asks to fail: `sandbox:424` is page 1, `sandbox:424@N` page N.
fn failing_page(value: &str) -> Option<u32> {
    let at = value.find("sandbox:424")?;
    let rest = &value[at + "sandbox:424".len()..];
    match rest.strip_prefix('@') {
        Some(n) => n.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok(),
        None => Some(1),
    }
}

/// One result: the endpoint's response fields, `uid` the item's stable id.
fn item(template: &str, fields: &Value, input: &str, page: u32, index: u32) -> Value {
    let mut v = live::item(template.trim_start_matches('/'), fields, input, page, index);
    let m = v.as_object_mut().expect("an object");
    let id = m.remove("id").unwrap_or(Value::Null);
    m.remove("page");
    m.remove("index");
    m.insert("uid".into(), id);
    v
}

async fn quotas(st: &State, headers: &HeaderMap) -> Response {
    if let Err(r) = st.admit(headers, Kind::Other).await {
        return r;
    }
    let (max, used) = st.credits();
    let now = st.now();
    let start = now
        .date_naive()
        .with_day0(0)
        .expect("the first of the month")
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let end = start
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(start);
    let body = json!({"uid": super::records::WORKSPACE, "name": "Sandbox",
        "credits_left": max.saturating_sub(used), "credits_max": max,
        "credits_used": used.min(max), "plan_name": "sandbox",
        "current_month_start": start.to_rfc3339(), "current_month_end": end.to_rfc3339()});
    (StatusCode::OK, Json(body)).into_response()
}

impl State {
    fn v1_base(&self) -> String {
        self.base.as_str().trim_end_matches("/v4").to_string() + "/v1"
    }

    /// An opaque cursor for `page`, stamped with when it was handed out.
    fn issue_cursor(&self, page: u32) -> String {
        format!("c{page}.{}", self.now().timestamp_millis())
    }

    /// The page a cursor points at, or the API's refusal: malformed, or older than the TTL
    /// (counted: a client must never send one).
    fn open_cursor(&self, cursor: &str) -> Result<u32, Response> {
        let parsed = cursor
            .strip_prefix('c')
            .and_then(|c| c.split_once('.'))
            .and_then(|(p, t)| Some((p.parse::<u32>().ok()?, t.parse::<i64>().ok()?)));
        let Some((page, issued)) = parsed else {
            return Err(invalid(&format!(
                "cursor {cursor:?} is not one this API issued"
            )));
        };
        let age = self.now().timestamp_millis() - issued;
        if age > i64::try_from(self.opts.cursor_ttl.as_millis()).unwrap_or(i64::MAX) {
            self.stats.expired_cursors.fetch_add(1, Ordering::Relaxed);
            return Err(api_error(
                StatusCode::BAD_REQUEST,
                "CURSOR_EXPIRED",
                Some("input"),
                "the pagination cursor has expired: start again from the first page",
            ));
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fill_placeholders() {
        let (t, _, filled) = route("/companies/abc/employees").unwrap();
        assert_eq!(t, "/companies/{company_uid}/employees");
        assert_eq!(filled, ["abc"]);
        assert_eq!(route("/people/search").unwrap().0, "/people/search");
        assert!(route("/people/nope").is_none());
    }

    #[test]
    fn a_424_is_asked_for_by_value() {
        assert_eq!(failing_page("(keywords:ceo) sandbox:424"), Some(1));
        assert_eq!(failing_page("sandbox:424@3 more"), Some(3));
        assert_eq!(failing_page("(keywords:ceo)"), None);
    }
}
