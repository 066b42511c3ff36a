//! The sandbox as strict as the real service: every live, async and schedule body is validated
//! against a JSON Schema assembled here from the raw catalog text and run by the `jsonschema`
//! crate. This reading of the catalog shares no code with `check`'s (`crate::catalog`), so a bug
//! in one shows up as a disagreement with the other instead of hiding in both.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value, json};

/// The catalog as plain JSON.
pub(crate) fn raw() -> &'static Value {
    static RAW: OnceLock<Value> = OnceLock::new();
    RAW.get_or_init(|| serde_json::from_str(crate::catalog::V4_JSON).expect("catalog parses"))
}

/// The catalog entry of `action`, if the API has it.
pub(crate) fn action(name: &str) -> Option<&'static Value> {
    raw()["actions"].get(name)
}

/// Why a body is refused: the offending key's path and what is wrong, or `None` when the API
/// would accept it. `mode` is `live`, `async` or `schedule`.
pub(crate) fn refusal(name: &str, mode: &str, body: &Value) -> Option<String> {
    type Cache = Mutex<HashMap<(String, String), Arc<jsonschema::Validator>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let validator = {
        let mut cache = CACHE.get_or_init(Mutex::default).lock().expect("lock");
        let key = (name.to_string(), mode.to_string());
        if let Some(v) = cache.get(&key) {
            v.clone()
        } else {
            let schema = body_schema(action(name)?, mode)?;
            let v =
                Arc::new(jsonschema::validator_for(&schema).expect("assembled schema compiles"));
            cache.insert(key, v.clone());
            v
        }
    };
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() {
                "body".to_string()
            } else {
                at
            };
            format!("{at}: {e}")
        })
        .collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

/// The JSON Schema of a request body of `a` in `mode`.
fn body_schema(a: &Value, mode: &str) -> Option<Value> {
    let m = a["modes"].get(mode)?;
    let keys: Vec<&str> = m["body_keys"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut props = Map::new();
    for key in &keys {
        let schema = match *key {
            "input" => input_schema(&a["input"]),
            "inputs" => {
                let mut s = json!({"type": "array", "items": input_schema(&a["input"])});
                if let Some(b) = m.get("inputs_bounds") {
                    s["minItems"] = b["minItems"].clone();
                    s["maxItems"] = b["maxItems"].clone();
                }
                s
            }
            "parameters" => {
                let mut s = json!({
                    "type": "object",
                    "properties": openapi(m.get("parameters").unwrap_or(&json!({}))),
                    "additionalProperties": m.get("parameters_additionalProperties").cloned().unwrap_or(Value::Bool(false)),
                });
                if let Some(r) = m.get("parameters_required") {
                    s["required"] = r.clone();
                }
                s
            }
            "identity_mode" => openapi(m.get("identity_mode").unwrap_or(
                &json!({"type": "string", "enum": ["direct", "auto", "managed"], "nullable": true}),
            )),
            "identity_ids" => json!({"type": ["array", "null"], "items": {"type": "string"}}),
            other => m.get(other).map_or(json!({}), openapi),
        };
        props.insert((*key).to_string(), schema);
    }
    let mut body = json!({
        "type": "object",
        "properties": props,
        "additionalProperties": m.get("additionalProperties").cloned().unwrap_or(Value::Bool(false)),
        "required": m["required"],
    });
    if keys.contains(&"identity_mode") {
        // `direct`, the API's default, acts through the identities listed: at least one.
        body["if"] = json!({"properties": {"identity_mode": {"enum": ["auto", "managed"]}}, "required": ["identity_mode"]});
        body["else"] = json!({"required": ["identity_ids"], "properties": {"identity_ids": {"type": "array", "minItems": 1}}});
    }
    Some(body)
}

/// One input object: `common` properties plus those of the alternatives (under each alias
/// too), nothing else, and the required keys of at least one alternative (an alias counts).
fn input_schema(input: &Value) -> Value {
    let mut props = Map::new();
    let mut add = |name: &str, schema: &Value| {
        let converted = openapi(schema);
        for alias in schema["x-variations"].as_array().into_iter().flatten() {
            if let Some(a) = alias.as_str() {
                props.entry(a.to_string()).or_insert(converted.clone());
            }
        }
        props.insert(name.to_string(), converted);
    };
    let alternatives = input["alternatives"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (k, s) in input["common"].as_object().into_iter().flatten() {
        add(k, s);
    }
    for alt in &alternatives {
        for (k, s) in alt["properties"].as_object().into_iter().flatten() {
            add(k, s);
        }
    }
    let alias_map = alias_map(input);
    let mut any_of = Vec::new();
    for alt in &alternatives {
        let all: Vec<Value> = alt["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|r| {
                let names = alias_map
                    .get(r)
                    .cloned()
                    .unwrap_or_else(|| vec![r.to_string()]);
                for n in &names {
                    props.entry(n.clone()).or_insert(json!({}));
                }
                json!({"anyOf": names.iter().map(|n| json!({"required": [n]})).collect::<Vec<_>>()})
            })
            .collect();
        any_of.push(json!({"allOf": all}));
    }
    let mut s = json!({"type": "object", "properties": props, "additionalProperties": false});
    if !any_of.is_empty() {
        s["anyOf"] = Value::Array(any_of);
    }
    s
}

/// Each property name with its `x-variations`, for the alternatives' required keys.
fn alias_map(input: &Value) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let mut sources: Vec<&Map<String, Value>> = input["common"].as_object().into_iter().collect();
    for alt in input["alternatives"].as_array().into_iter().flatten() {
        sources.extend(alt["properties"].as_object());
    }
    for (k, s) in sources.into_iter().flatten() {
        let names = out.entry(k.clone()).or_insert_with(|| vec![k.clone()]);
        for a in s["x-variations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !names.iter().any(|n| n == a) {
                names.push(a.to_string());
            }
        }
    }
    out
}

/// An `OpenAPI` 3.0 schema fragment as JSON Schema: `nullable` (and `null` in an enum) widen the
/// type; JavaScript regex literals become plain patterns; vendor keys are dropped.
fn openapi(v: &Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(openapi).collect()),
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, val) in m {
                let converted = match k.as_str() {
                    "nullable" | "title" | "xAutoPaginate" | "deprecated" | "format" => continue,
                    k if k.starts_with("x-") => continue,
                    "pattern" => Value::String(val.as_str().map_or(String::new(), pattern)),
                    // Property names are data, not schemas: convert their values only.
                    "properties" => Value::Object(
                        val.as_object()
                            .into_iter()
                            .flatten()
                            .map(|(name, s)| (name.clone(), openapi(s)))
                            .collect(),
                    ),
                    _ => openapi(val),
                };
                out.insert(k.clone(), converted);
            }
            let null_ok = m.get("nullable") == Some(&Value::Bool(true))
                || m.get("enum")
                    .and_then(Value::as_array)
                    .is_some_and(|e| e.contains(&Value::Null));
            if null_ok && let Some(Value::String(t)) = out.get("type").cloned() {
                out.insert("type".into(), json!([t, "null"]));
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// `/body/flags` -> `(?flags)body`, dropping `g`, and the doubled caret some literals carry.
pub(crate) fn pattern(p: &str) -> String {
    let Some(rest) = p.strip_prefix('/') else {
        return p.to_string();
    };
    let Some(end) = rest.rfind('/') else {
        return p.to_string();
    };
    let (body, flags) = (&rest[..end], &rest[end + 1..]);
    let body = body.replacen("^^", "^", 1);
    if flags.contains('i') {
        format!("(?i){body}")
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::catalog::{self, ModeName};
    use crate::config::Config;

    /// The live body `check` builds for the action's example job.
    fn example_body(name: &str) -> Value {
        let job = catalog::example_job(name, ModeName::Live).unwrap();
        let text = format!("[[job]]\nname = \"j\"\ncron = \"0 9 * * 1\"\n{job}");
        Config::parse("t", &text).unwrap().jobs[0].live_body()
    }

    #[test]
    fn what_check_builds_the_strict_sandbox_accepts_for_every_action() {
        for name in catalog::v4().actions.keys() {
            let body = example_body(name);
            assert_eq!(refusal(name, "live", &body), None, "{name}: {body}");
        }
    }

    #[test]
    fn the_sandbox_refuses_what_the_catalog_forbids_naming_the_key() {
        let places = example_body("googlemaps-search-places");
        let mut b = places.clone();
        b["identity_mode"] = json!("auto");
        let why = refusal("googlemaps-search-places", "live", &b).unwrap();
        assert!(why.contains("identity_mode"), "{why}");
        let mut b = places.clone();
        b["parameters"] = json!({"country": "XX"});
        let why = refusal("googlemaps-search-places", "live", &b).unwrap();
        assert!(why.contains("/parameters/country"), "{why}");
        let mut b = places;
        b["input"]["zoom"] = json!(3);
        let why = refusal("googlemaps-search-places", "live", &b).unwrap();
        assert!(why.contains("zoom"), "{why}");
        let why = refusal(
            "linkedin-accept-invitations",
            "live",
            &json!({"input": {}, "identity_mode": "auto"}),
        )
        .unwrap();
        assert!(why.contains("input"), "{why}");
        let why = refusal(
            "linkedin-extract-people",
            "live",
            &json!({"input": {"url": "https://www.linkedin.com/in/x"}}),
        )
        .unwrap();
        assert!(
            why.contains("identity_ids"),
            "direct needs identities: {why}"
        );
        assert_eq!(
            refusal(
                "linkedin-extract-people",
                "live",
                &json!({"input": {"url": "https://www.linkedin.com/in/x"}, "identity_mode": "managed"})
            ),
            None,
            "an alias satisfies the alternative"
        );
        let why = refusal("tripadvisor-extract-reviews", "live", &json!({"input": {"tripadvisor_reviews_url": "https://www.tripadvisor.com/Hotel_Review-g1"}})).unwrap();
        assert!(why.contains("parameters"), "{why}");
    }

    #[test]
    fn schedule_bodies_take_one_to_a_hundred_inputs_and_a_callback() {
        let body = |inputs: Value| json!({"inputs": inputs, "callback": {"url": "https://e.com/h"}, "cron": "0 9 * * *", "identity_mode": "auto"});
        assert_eq!(
            refusal(
                "linkedin-accept-invitations",
                "schedule",
                &body(json!([{}]))
            ),
            None
        );
        assert!(refusal("linkedin-accept-invitations", "schedule", &body(json!([]))).is_some());
        let many: Vec<Value> = (0..101).map(|_| json!({})).collect();
        assert!(
            refusal(
                "linkedin-accept-invitations",
                "schedule",
                &body(json!(many))
            )
            .is_some()
        );
        let mut no_callback = body(json!([{}]));
        no_callback.as_object_mut().unwrap().remove("callback");
        assert!(
            refusal("linkedin-accept-invitations", "schedule", &no_callback)
                .unwrap()
                .contains("callback")
        );
    }

    #[test]
    fn javascript_literals_become_patterns() {
        assert_eq!(pattern("/^^https:\\/\\/x/"), "^https:\\/\\/x");
        assert_eq!(pattern("/a/gi"), "(?i)a");
        assert_eq!(pattern("^plain$"), "^plain$");
    }
}
