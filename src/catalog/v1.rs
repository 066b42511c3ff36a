//! Captain Data v1: GET endpoints for people and companies (`v1.json`, copied verbatim from the
//! vendor's description, like `v4.json`). A job names an endpoint by its path template
//! (`/companies/{company_uid}/employees`); a run stores that template as its action, so a name
//! that starts with `/` is a v1 endpoint everywhere (runs, lanes, item keys, CSV columns).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

use super::Fields;

/// The catalog's text, as published.
pub const V1_JSON: &str = include_str!("v1.json");

/// Query keys watchbell owns: pagination follows the server's cursor.
pub const OWN_QUERY: &[&str] = &["page", "page_size"];

#[derive(Debug, Deserialize)]
struct Raw {
    endpoints: BTreeMap<String, Endpoint>,
}

/// One endpoint: its query parameters, path placeholders and the fields of a result.
#[derive(Debug, Deserialize)]
pub struct Endpoint {
    pub query: Fields,
    #[serde(default)]
    pub path_params: Vec<String>,
    /// Response headers; `X-Pagination-Next` marks a paginated endpoint.
    #[serde(default)]
    pub headers: Vec<String>,
    /// The fields of an answer that is one object.
    #[serde(default)]
    pub response: Option<Fields>,
    /// The fields of each item of an answer that is a list.
    #[serde(default)]
    pub response_array_of: Option<Fields>,
}

impl Endpoint {
    pub fn paginated(&self) -> bool {
        self.headers.iter().any(|h| h == "X-Pagination-Next")
    }

    /// The fields of one result item with their schemas, in the vendor's order.
    pub fn fields(&self) -> Option<&Fields> {
        self.response_array_of.as_ref().or(self.response.as_ref())
    }

    /// The names of [`Endpoint::fields`].
    pub fn output_fields(&self) -> impl Iterator<Item = &str> {
        self.fields().into_iter().flat_map(Fields::names)
    }

    /// The schema of query key `key`, under its name or one of its `x-variations`.
    pub fn query_param(&self, key: &str) -> Option<(&str, &Value)> {
        self.query.0.iter().find_map(|(name, schema)| {
            let alias = schema["x-variations"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(key)));
            (name == key || alias).then_some((name.as_str(), schema))
        })
    }

    /// Query keys a job may set (pagination is watchbell's).
    pub fn job_query_keys(&self) -> impl Iterator<Item = &str> {
        self.query.names().filter(|k| !OWN_QUERY.contains(k))
    }

    /// Query keys the endpoint requires.
    pub fn required(&self) -> impl Iterator<Item = &str> {
        self.query
            .0
            .iter()
            .filter(|(_, s)| s["required"] == true)
            .map(|(k, _)| k.as_str())
    }
}

/// The data endpoints, by path template (`/quotas` is the account's, not a job's).
pub fn endpoints() -> &'static BTreeMap<String, Endpoint> {
    static PARSED: OnceLock<BTreeMap<String, Endpoint>> = OnceLock::new();
    PARSED.get_or_init(|| {
        let raw: Raw = serde_json::from_str(V1_JSON).expect("the embedded v1 catalog parses");
        raw.endpoints
            .into_iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("GET ")?.to_string(), v)))
            .filter(|(k, _)| k != "/quotas")
            .collect()
    })
}

/// The endpoint `path` (a template such as `/people/search`).
pub fn endpoint(path: &str) -> Option<&'static Endpoint> {
    endpoints().get(path)
}

/// True for a run's action that is a v1 endpoint rather than a v4 action.
pub fn is_endpoint(action: &str) -> bool {
    action.starts_with('/')
}

/// The placeholders of a path template, in order: `{company_uid}` gives `company_uid`.
pub fn placeholders(template: &str) -> Vec<&str> {
    template
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// The first page's path and query: placeholders filled from `path` (each value one
/// percent-encoded segment) and `query` appended; `None` when a placeholder has no value.
pub fn first_page(base: &reqwest::Url, body: &Value) -> Option<reqwest::Url> {
    let template = body["endpoint"].as_str()?;
    let mut url = base.clone();
    {
        let mut segs = url.path_segments_mut().ok()?;
        segs.pop_if_empty();
        for seg in template.split('/').filter(|s| !s.is_empty()) {
            match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => segs.push(body["path"][name].as_str()?),
                None => segs.push(seg),
            };
        }
    }
    if let Some(q) = body["query"].as_object().filter(|q| !q.is_empty()) {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in q {
            match v {
                Value::String(s) => pairs.append_pair(k, s),
                other => pairs.append_pair(k, &other.to_string()),
            };
        }
    }
    Some(url)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_catalog_has_the_seven_data_endpoints() {
        let names: Vec<&str> = endpoints().keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "/companies/enrich",
                "/companies/find",
                "/companies/search",
                "/companies/{company_uid}/employees",
                "/people/enrich",
                "/people/find",
                "/people/search"
            ]
        );
        let search = endpoint("/people/search").unwrap();
        assert!(search.paginated());
        assert_eq!(search.required().collect::<Vec<_>>(), ["query"]);
        assert_eq!(search.job_query_keys().collect::<Vec<_>>(), ["query"]);
        assert_eq!(search.output_fields().next(), Some("uid"));
        assert!(!endpoint("/people/find").unwrap().paginated());
        let enrich = endpoint("/companies/enrich").unwrap();
        assert_eq!(enrich.query_param("url").unwrap().0, "li_company_url");
    }

    #[test]
    fn the_first_page_fills_placeholders_and_the_query() {
        let base = reqwest::Url::parse("https://api.example.com/v1").unwrap();
        let body = json!({"endpoint": "/companies/{company_uid}/employees",
            "path": {"company_uid": "c 1/2"}, "query": {}});
        assert_eq!(
            first_page(&base, &body).unwrap().as_str(),
            "https://api.example.com/v1/companies/c%201%2F2/employees"
        );
        let body =
            json!({"endpoint": "/people/search", "query": {"query": "(keywords:ceo)", "n": 3}});
        assert_eq!(
            first_page(&base, &body).unwrap().as_str(),
            "https://api.example.com/v1/people/search?n=3&query=%28keywords%3Aceo%29"
        );
        let unfilled = json!({"endpoint": "/companies/{company_uid}/employees"});
        assert_eq!(first_page(&base, &unfilled), None);
        assert_eq!(
            placeholders("/companies/{company_uid}/employees"),
            ["company_uid"]
        );
    }
}
