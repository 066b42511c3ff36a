//! Checking one value against one of the catalog's property schemas, the subset the catalog uses:
//! `type` (with `nullable`), `enum`, `minimum`/`maximum`, `minLength`/`maxLength`, `pattern`,
//! `items`, `properties`/`required`/`additionalProperties`, `oneOf`. Each problem is reported
//! with the path of the value it concerns, so `check` can place it in the file.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use regex::Regex;
use serde_json::Value;

/// One problem: where (`parameters.seniority[1]`) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// Every way `value` breaks `schema`; `path` names the value in messages.
pub fn check(schema: &Value, value: &Value, path: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    walk(schema, value, path, &mut out);
    out
}

fn walk(schema: &Value, value: &Value, path: &str, out: &mut Vec<Problem>) {
    let mut problem = |message: String| {
        out.push(Problem {
            path: path.to_string(),
            message,
        });
    };
    let nullable = schema.get("nullable").and_then(Value::as_bool) == Some(true);
    let enum_values = schema.get("enum").and_then(Value::as_array);
    if value.is_null() && (nullable || enum_values.is_some_and(|e| e.contains(&Value::Null))) {
        return;
    }
    if let Some(t) = schema.get("type").and_then(Value::as_str)
        && !has_type(value, t)
    {
        problem(format!("expected {}, found {}", article(t), kind(value)));
        return;
    }
    if let Some(allowed) = enum_values
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed
            .iter()
            .filter(|v| !v.is_null())
            .map(Value::to_string)
            .collect();
        problem(format!("{value} is not one of {}", names.join(", ")));
        return;
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            problem(format!("{value} is below the minimum {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            problem(format!("{value} is above the maximum {max}"));
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            problem(format!("{len} characters, at most {max} allowed"));
        }
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            problem(format!("{len} characters, at least {min} needed"));
        }
        if let Some(p) = schema.get("pattern").and_then(Value::as_str)
            && let Some(re) = compiled(p)
            && !re.is_match(s)
        {
            problem(format!("{s:?} does not match the pattern {p}"));
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, v) in list.iter().enumerate() {
            walk(items, v, &format!("{path}[{i}]"), out);
        }
    }
    if let Some(obj) = value.as_object() {
        object(schema, obj, path, out);
    }
    if let Some(shapes) = schema.get("oneOf").and_then(Value::as_array) {
        let fits = shapes.iter().filter(|s| check(s, value, path).is_empty());
        if fits.count() != 1 {
            out.push(Problem {
                path: path.to_string(),
                message: format!("matches none of its {} accepted shapes", shapes.len()),
            });
        }
    }
}

fn object(
    schema: &Value,
    obj: &serde_json::Map<String, Value>,
    path: &str,
    out: &mut Vec<Problem>,
) {
    let props = schema.get("properties").and_then(Value::as_object);
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if !obj.contains_key(r) {
                out.push(Problem {
                    path: path.to_string(),
                    message: format!("{r} is required"),
                });
            }
        }
    }
    let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
    for (k, v) in obj {
        let child = format!("{path}.{k}");
        match props.and_then(|p| p.get(k)) {
            Some(s) => walk(s, v, &child, out),
            None if closed => {
                let known = props.map(|p| p.keys().cloned().collect::<Vec<_>>().join(", "));
                out.push(Problem {
                    path: child,
                    message: format!(
                        "unknown key; expected one of: {}",
                        known.unwrap_or_default()
                    ),
                });
            }
            None => {}
        }
    }
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn article(t: &str) -> String {
    match t {
        "integer" => "a whole number".into(),
        "array" => "a list".into(),
        "object" => "a table".into(),
        "boolean" => "true or false".into(),
        other => format!("a {other}"),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "true or false",
        Value::Number(n) if n.is_f64() => "a decimal number",
        Value::Number(_) => "a whole number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// A catalog pattern as a Rust regex source: JavaScript literals (`/^^https:.../i`) lose their
/// slashes and the doubled caret, `i` becomes `(?i)`, `g` means nothing for a single match.
pub fn rust_pattern(pattern: &str) -> String {
    let (body, flags) = match pattern.strip_prefix('/').and_then(|p| p.rsplit_once('/')) {
        Some((body, flags)) if flags.chars().all(|c| "gimsuy".contains(c)) => (body, flags),
        _ => (pattern, ""),
    };
    let body = body
        .strip_prefix("^^")
        .map_or(body.to_string(), |b| format!("^{b}"));
    if flags.contains('i') {
        format!("(?i){body}")
    } else {
        body
    }
}

/// The compiled pattern, or `None` when Rust's regex engine cannot run it (a lookbehind): such a
/// pattern is not checked rather than reported falsely.
/// Shared, not cloned: a clone of a `Regex` starts with empty search caches, and rebuilding them
/// for every job was a quarter of reading a 10,000-job file.
pub fn compiled(pattern: &str) -> Option<Arc<Regex>> {
    type Cache = Mutex<HashMap<String, Option<Arc<Regex>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Mutex::default).lock().expect("lock");
    if let Some(re) = cache.get(pattern) {
        return re.clone();
    }
    let re = Regex::new(&rust_pattern(pattern)).ok().map(Arc::new);
    cache.insert(pattern.to_string(), re.clone());
    re
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn javascript_literals_become_rust_patterns() {
        assert_eq!(rust_pattern("/^^https:\\/\\/x/"), "^https:\\/\\/x");
        assert_eq!(rust_pattern("/^a/gi"), "(?i)^a");
        assert_eq!(rust_pattern("/^a/g"), "^a");
        assert_eq!(
            rust_pattern("^(https?:\\/\\/[^\\s]+)$"),
            "^(https?:\\/\\/[^\\s]+)$"
        );
        assert!(
            compiled("/^https:\\/\\/(www\\.)?linkedin\\.com\\/in\\/[-\\w\\d%]+/gi")
                .unwrap()
                .is_match("HTTPS://LinkedIn.com/in/ann")
        );
        assert!(
            compiled("/(?<=thread\\/|^)\\d.+?==/").is_none(),
            "lookbehind is skipped"
        );
    }

    #[test]
    fn every_problem_is_found_with_its_path() {
        let schema = json!({"type": "object", "additionalProperties": false, "required": ["a"],
            "properties": {"a": {"type": "integer", "minimum": 1, "maximum": 5},
                           "b": {"type": "array", "items": {"type": "string", "enum": ["x", "y"]}},
                           "c": {"type": "string", "enum": [null, "F"]}}});
        let found = check(
            &schema,
            &json!({"a": 9, "b": ["x", "z"], "c": "G", "d": 1}),
            "p",
        );
        let paths: Vec<&str> = found.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["p.a", "p.b[1]", "p.c", "p.d"], "{found:?}");
        assert!(check(&schema, &json!({"a": 2, "c": null}), "p").is_empty());
        assert_eq!(check(&schema, &json!({}), "p")[0].message, "a is required");
        assert_eq!(
            check(&json!({"type": "integer"}), &json!("1"), "p")[0].message,
            "expected a whole number, found a string"
        );
    }
}
