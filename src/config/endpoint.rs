//! A job on a Captain Data v1 endpoint (`endpoint`, `query`, `path`) held to the v1 catalog: the
//! endpoint exists, every query key is one it takes (pagination aside: watchbell follows the
//! server's cursor), required keys are there, values fit their schema, and every placeholder of
//! the path has a value. `endpoint` replaces `action`, `input`, `parameters` and the identity
//! keys: a job written with both is refused rather than half-sent.

use std::ops::Range;

use serde_json::{Map, Value};

use super::action::Request;
use super::job::JobFields;
use super::read::Diags;
use crate::catalog::{self, schema, v1};

/// The keys only a v4 action job takes.
pub(super) const ACTION_KEYS: &[&str] = &[
    "action",
    "input",
    "inputs",
    "inputs_file",
    "parameters",
    "identity_mode",
    "identity_ids",
];

/// The request of an endpoint job, or `None` after reporting what is wrong.
pub(super) fn request(
    d: &mut Diags,
    here: &Range<usize>,
    endpoint: &str,
    own: &JobFields,
    def: &JobFields,
) -> Option<Request> {
    let before = d.error_count();
    let at = |key: &str| own.span(key).or(def.span(key)).unwrap_or(here.clone());
    for key in ACTION_KEYS {
        if let Some(span) = own.span(key) {
            d.at(
                &span,
                format!("{key}: a job on a v1 endpoint ({endpoint}) takes query and path instead; remove {key}"),
            );
        }
    }
    let Some(e) = v1::endpoint(endpoint) else {
        let hint = catalog::closest(endpoint, v1::endpoints().keys().map(String::as_str))
            .map(|c| format!("; did you mean {c:?}?"))
            .unwrap_or_default();
        let all: Vec<&str> = v1::endpoints().keys().map(String::as_str).collect();
        d.at(
            &at("endpoint"),
            format!(
                "endpoint: {endpoint:?} is not a v1 endpoint{hint} (they are {})",
                all.join(", ")
            ),
        );
        return None;
    };
    let query = own.query.clone().or_else(|| def.query.clone());
    let empty = || Value::Object(Map::new());
    let query = check_query(d, endpoint, e, query.unwrap_or_else(empty), &at, own, def);
    let path = check_path(
        d,
        endpoint,
        own.path.clone().unwrap_or_else(empty),
        &at,
        own,
    );
    (d.error_count() == before).then(|| Request {
        endpoint: Some(endpoint.to_string()),
        query: Some(Value::Object(query).into()),
        path: (!path.is_empty()).then(|| Value::Object(path).into()),
        ..Request::default()
    })
}

fn check_query(
    d: &mut Diags,
    endpoint: &str,
    e: &v1::Endpoint,
    query: Value,
    at: &dyn Fn(&str) -> Range<usize>,
    own: &JobFields,
    def: &JobFields,
) -> Map<String, Value> {
    let Value::Object(query) = query else {
        return Map::new();
    };
    let mut out = Map::new();
    let known: Vec<&str> = e.job_query_keys().collect();
    for (k, v) in query {
        let span = own
            .span(&format!("query.{k}"))
            .or(def.span(&format!("query.{k}")))
            .unwrap_or_else(|| at("query"));
        if v1::OWN_QUERY.contains(&k.as_str()) {
            d.at(
                &span,
                format!("query.{k}: watchbell pages through {endpoint} by the server's cursor; remove {k}"),
            );
            continue;
        }
        let Some((name, schema)) = e.query_param(&k) else {
            let hint = catalog::closest(&k, known.iter().copied())
                .map(|c| format!("did you mean {c:?}? "))
                .unwrap_or_default();
            let takes = if known.is_empty() {
                "it takes none".to_string()
            } else {
                format!("it takes {}", known.join(", "))
            };
            let key = own
                .key_span(&format!("query.{k}"))
                .or(def.key_span(&format!("query.{k}")))
                .unwrap_or_else(|| span.clone());
            d.at(
                &key,
                format!("query: unknown parameter {k:?} for {endpoint}; {hint}{takes}"),
            );
            continue;
        };
        for p in schema::check(schema, &v, &format!("query.{k}")) {
            d.at(&span, format!("{}: {}", p.path, p.message));
        }
        out.insert(name.to_string(), v);
    }
    for r in e.required() {
        if !out.contains_key(r) {
            d.at(&at("query"), format!("query.{r} is required by {endpoint}"));
        }
    }
    out
}

fn check_path(
    d: &mut Diags,
    endpoint: &str,
    path: Value,
    at: &dyn Fn(&str) -> Range<usize>,
    own: &JobFields,
) -> Map<String, Value> {
    let Value::Object(path) = path else {
        return Map::new();
    };
    let wanted = v1::placeholders(endpoint);
    for (k, v) in &path {
        let span = own.span(&format!("path.{k}")).unwrap_or_else(|| at("path"));
        if !wanted.contains(&k.as_str()) {
            let has = if wanted.is_empty() {
                "it has no placeholder".to_string()
            } else {
                format!("its placeholders are {}", wanted.join(", "))
            };
            d.at(&span, format!("path: {endpoint} has no {{{k}}}; {has}"));
        } else if v.as_str().is_none_or(str::is_empty) {
            d.at(&span, format!("path.{k}: expected a non-empty string"));
        }
    }
    for w in &wanted {
        if !path.contains_key(*w) {
            d.at(
                &at("endpoint"),
                format!("path.{w} is required: {endpoint} has the placeholder {{{w}}}, e.g. path = {{ {w} = \"...\" }}"),
            );
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn job(body: &str) -> String {
        format!("[[job]]\nname = \"v1\"\ncron = \"0 7 * * 1\"\n{body}\n")
    }

    fn errors(body: &str) -> Vec<String> {
        let d = Config::parse("schedules.toml", &job(body)).expect_err("should be rejected");
        d.errors
            .iter()
            .map(|e| format!("{}:{}: {}", e.line, e.col, e.message))
            .collect()
    }

    #[test]
    fn an_endpoint_job_sends_its_query_and_path() {
        let c = Config::parse(
            "s.toml",
            &job("endpoint = \"/companies/{company_uid}/employees\"\npath = { company_uid = \"c-1\" }"),
        )
        .unwrap();
        let j = &c.jobs[0];
        assert_eq!(j.action, "/companies/{company_uid}/employees");
        assert_eq!(
            j.live_body(),
            serde_json::json!({"endpoint": "/companies/{company_uid}/employees", "query": {}, "path": {"company_uid": "c-1"}})
        );
        assert!(c.v1_base().is_some());
        let aliased = Config::parse(
            "s.toml",
            &job("endpoint = \"/companies/enrich\"\nquery = { url = \"https://www.linkedin.com/company/x\" }"),
        )
        .unwrap();
        assert_eq!(
            aliased.jobs[0].live_body()["query"],
            serde_json::json!({"li_company_url": "https://www.linkedin.com/company/x"})
        );
    }

    #[test]
    fn what_the_v1_catalog_refuses_is_placed() {
        assert_eq!(
            errors("endpoint = \"/people/serch\"\nquery = { query = \"x\" }"),
            [
                "4:12: endpoint: \"/people/serch\" is not a v1 endpoint; did you mean \"/people/search\"? (they are /companies/enrich, /companies/find, /companies/search, /companies/{company_uid}/employees, /people/enrich, /people/find, /people/search)"
            ]
        );
        assert_eq!(
            errors("endpoint = \"/people/search\"\nquery = { querry = \"x\" }"),
            [
                "5:9: query.query is required by /people/search",
                "5:11: query: unknown parameter \"querry\" for /people/search; did you mean \"query\"? it takes query"
            ]
        );
        assert_eq!(
            errors("endpoint = \"/people/search\"\nquery = { query = \"x\", page = 2 }"),
            [
                "5:31: query.page: watchbell pages through /people/search by the server's cursor; remove page"
            ]
        );
        assert_eq!(
            errors("endpoint = \"/companies/{company_uid}/employees\""),
            [
                "4:12: path.company_uid is required: /companies/{company_uid}/employees has the placeholder {company_uid}, e.g. path = { company_uid = \"...\" }"
            ]
        );
        assert_eq!(
            errors(
                "endpoint = \"/people/find\"\nquery = { full_name = \"A\" }\npath = { id = \"1\" }"
            ),
            ["6:15: path: /people/find has no {id}; it has no placeholder"]
        );
        assert_eq!(
            errors(
                "endpoint = \"/people/enrich\"\nquery = { li_profile_url = \"https://example.com/x\" }"
            ),
            [
                "5:28: query.li_profile_url: \"https://example.com/x\" does not match the pattern /^https:\\/\\/(?:(www|[a-z]{2})\\.)?linkedin\\.com\\/(?:in|pub|sales\\/people|sales\\/lead)\\/[^\\s/]+/"
            ]
        );
    }

    #[test]
    fn endpoint_and_action_keys_are_exclusive() {
        let errs = errors(
            "endpoint = \"/people/search\"\nquery = { query = \"x\" }\naction = \"linkedin-me\"\nidentity_mode = \"auto\"",
        );
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with(
                "6:10: action: a job on a v1 endpoint (/people/search) takes query and path instead"
            ),
            "{errs:?}"
        );
        assert!(errs[1].starts_with("7:17: identity_mode:"), "{errs:?}");
        assert_eq!(
            errors("action = \"linkedin-me\"\nquery = { q = \"x\" }"),
            [
                "5:9: query: only a job with endpoint (v1) takes query; an action job takes input and parameters"
            ]
        );
        assert_eq!(
            errors(
                "endpoint = \"/people/search\"\nquery = { query = \"x\" }\nrunner = \"remote\"\nwebhook = { url = \"https://example.com/h\" }"
            ),
            [
                "6:10: runner = \"remote\": v1 endpoints have no schedule mode; a v1 job runs locally"
            ]
        );
        // [defaults] keys an endpoint job does not take are dropped, not refused.
        let text = format!(
            "[defaults]\nidentity_mode = \"auto\"\nparameters = {{ x = 1 }}\n{}",
            job("endpoint = \"/people/search\"\nquery = { query = \"x\" }")
        );
        assert!(Config::parse("s.toml", &text).is_ok());
    }
}
