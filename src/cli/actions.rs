//! `watchbell actions [NAME] [--json]`: the action catalog, explained like `kubectl explain`:
//! what each action takes (input alternatives with aliases and patterns, parameters with type,
//! enum, default and bounds, identities) and what it returns.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Failure, Outcome, write_out};
use crate::catalog::{self, Action, Mode, schema};

pub fn run(name: Option<&str>, as_json: bool) -> Outcome {
    let cat = catalog::v4();
    let text = match name {
        None if as_json => json_lines(cat.actions.iter().map(|(n, a)| summary(n, a))),
        None => {
            let mut out = list();
            list_endpoints(&mut out);
            out
        }
        Some(n) if catalog::v1::is_endpoint(n) => {
            let Some(e) = catalog::v1::endpoint(n) else {
                let all: Vec<&str> = catalog::v1::endpoints()
                    .keys()
                    .map(String::as_str)
                    .collect();
                return Err(Failure::usage(format!(
                    "unknown v1 endpoint {n:?}; they are {}",
                    all.join(", ")
                )));
            };
            explain_endpoint(n, e)
        }
        Some(n) => {
            let Some(act) = cat.action(n) else {
                let hint = cat
                    .closest(n)
                    .map(|c| format!("; did you mean {c:?}?"))
                    .unwrap_or_default();
                return Err(Failure::usage(format!(
                    "unknown action {n:?}{hint} (`watchbell actions` lists them)"
                )));
            };
            if as_json {
                let raw: Value = serde_json::from_str(catalog::V4_JSON).expect("parses");
                let mut out = summary(n, act);
                out["schema"] = raw["actions"][n].clone();
                format!("{out:#}\n")
            } else {
                explain(n, act)
            }
        }
    };
    write_out(&text)
}

fn json_lines(items: impl Iterator<Item = Value>) -> String {
    items.fold(String::new(), |mut out, v| {
        let _ = writeln!(out, "{v}");
        out
    })
}

fn summary(name: &str, a: &Action) -> Value {
    json!({
        "name": name,
        "modes": a.mode_names(),
        "paginated": a.paginated(),
        "identities": a.takes_identities(),
        "input": a.takes_input(),
        "result": if a.output_is_object { "object" } else { "list" },
    })
}

fn list() -> String {
    let mut out = format!(
        "{:<46} {:<22} {:<10} {:<10} {}\n",
        "ACTION", "MODES", "PAGINATED", "IDENTITY", "INPUT"
    );
    for (name, a) in &catalog::v4().actions {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let _ = writeln!(
            out,
            "{:<46} {:<22} {:<10} {:<10} {}",
            name,
            a.mode_names().join(","),
            yes(a.paginated()),
            yes(a.takes_identities()),
            if a.takes_input() {
                a.describe_alternatives()
            } else {
                "none".into()
            }
        );
    }
    out
}

/// The v1 endpoints after the actions: what a job with `endpoint` may call.
fn list_endpoints(out: &mut String) {
    let _ = writeln!(out, "\n{:<46} {:<10} QUERY", "V1 ENDPOINT", "PAGINATED");
    for (path, e) in catalog::v1::endpoints() {
        let required: Vec<&str> = e.required().collect();
        let _ = writeln!(
            out,
            "{path:<46} {:<10} {}",
            if e.paginated() { "yes" } else { "no" },
            if required.is_empty() {
                "none required".to_string()
            } else {
                required.join(" + ")
            }
        );
    }
}

/// A v1 endpoint: its query, its placeholders, whether it pages, and its result fields.
fn explain_endpoint(path: &str, e: &catalog::v1::Endpoint) -> String {
    let mut out = format!("{path} (v1, GET)\n");
    let paging = if e.paginated() {
        "a list of items, paged by the server's cursor (X-Pagination-Next)"
    } else {
        "one object"
    };
    let _ = writeln!(out, "  result:    {paging}");
    for p in catalog::v1::placeholders(path) {
        let _ = writeln!(out, "  path:      {p}: string (path = {{ {p} = \"...\" }})");
    }
    out.push_str("\nquery:\n");
    for (k, schema) in &e.query.0 {
        if catalog::v1::OWN_QUERY.contains(&k.as_str()) {
            continue;
        }
        let required = if schema["required"] == true {
            ", required"
        } else {
            ""
        };
        let aliases = schema["x-variations"]
            .as_array()
            .map(|a| {
                let names: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
                format!(" (or {})", names.join(", "))
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<28} {}{required}",
            format!("{k}{aliases}"),
            describe(schema)
        );
    }
    if e.job_query_keys().next().is_none() {
        out.push_str("  none\n");
    }
    out.push_str("\nresult fields:\n");
    for (k, s) in e.fields().iter().flat_map(|f| f.0.iter()) {
        let _ = writeln!(out, "  {k:<36} {}", describe(s));
    }
    let _ = writeln!(
        out,
        "\nexample job:\n  [[job]]\n  name = \"my-job\"\n  cron = \"0 9 * * 1-5\"\n  endpoint = \"{path}\""
    );
    let required: Vec<String> = e.required().map(|r| format!("{r} = \"...\"")).collect();
    if !required.is_empty() {
        let _ = writeln!(out, "  query = {{ {} }}", required.join(", "));
    }
    for p in catalog::v1::placeholders(path) {
        let _ = writeln!(out, "  path = {{ {p} = \"...\" }}");
    }
    out
}

fn explain(name: &str, a: &Action) -> String {
    let mut out = String::new();
    let mut notes = Vec::new();
    let _ = writeln!(out, "{name}");
    let _ = writeln!(out, "  modes:     {}", a.mode_names().join(", "));
    let live = a.modes.live.as_ref();
    let paging = match live.and_then(|m| m.query.as_ref()) {
        Some(q) => match q.pointer("/page_size/default") {
            Some(size) => format!("paginated, {size} items a page"),
            None => "paginated".into(),
        },
        None => "one page".into(),
    };
    let shape = if a.output_is_object {
        "one object"
    } else {
        "a list of items"
    };
    let _ = writeln!(out, "  live:      {shape}, {paging}");
    let identity = match live {
        Some(m) if m.takes("identity_mode") => {
            "through a LinkedIn identity: identity_mode = \"auto\" | \"managed\", or \"direct\" with identity_ids"
        }
        Some(m) if m.takes("identity_ids") => "through a LinkedIn identity: identity_ids only",
        _ => "no identity (identity_mode and identity_ids are refused)",
    };
    let _ = writeln!(out, "  identity:  {identity}");
    out.push_str("\ninput");
    if a.takes_input() {
        out.push_str(" (one of):\n");
        for (i, alt) in a.input.alternatives.iter().enumerate() {
            let keys: Vec<String> = alt
                .required
                .iter()
                .map(|r| {
                    let names = a.names_of(r);
                    let aliases = if names.len() > 1 {
                        format!(" (or {})", names[1..].join(", "))
                    } else {
                        String::new()
                    };
                    let schema = a.input_property(r).map(|(_, s)| s);
                    if let Some(s) = schema {
                        note_pattern(r, s, &mut notes);
                    }
                    format!(
                        "{r}{aliases}{}",
                        schema
                            .map(|s| format!(": {}", describe(s)))
                            .unwrap_or_default()
                    )
                })
                .collect();
            let _ = writeln!(out, "  {}. {}", i + 1, keys.join("\n     + "));
        }
        out.push_str("  any: custom_data (a table, echoed back in callbacks)\n");
    } else {
        out.push_str(": none (input is refused; remote schedules send one empty input)\n");
    }
    parameters(&mut out, "parameters (live)", live, &mut notes);
    if let Some(sched) = a.modes.schedule.as_ref() {
        let only: Vec<&(String, Value)> = sched
            .parameters
            .iter()
            .flat_map(|p| p.0.iter())
            .filter(|(k, _)| live.and_then(|m| m.parameter(k)).is_none())
            .collect();
        if !only.is_empty() {
            out.push_str("\nparameters only in schedule mode (runner = \"remote\"):\n");
            for (k, s) in only {
                let _ = writeln!(out, "  {k:<28} {}", describe(s));
            }
        }
    }
    out.push_str("\nresult fields:\n");
    for (k, s) in &a.output.0 {
        let _ = writeln!(out, "  {k:<36} {}", describe(s));
    }
    if let Some(example) = catalog::example_job(name, catalog::ModeName::Live) {
        out.push_str("\nexample job (`watchbell check` accepts it):\n  [[job]]\n");
        let _ = writeln!(out, "  name = \"my-{name}\"\n  cron = \"0 9 * * 1-5\"");
        for line in example.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    if !notes.is_empty() {
        out.push_str("\nnotes:\n");
        for n in notes {
            let _ = writeln!(out, "  {n}");
        }
    }
    out
}

fn parameters(out: &mut String, title: &str, mode: Option<&Mode>, notes: &mut Vec<String>) {
    let Some(params) = mode.and_then(|m| m.parameters.as_ref()) else {
        let _ = writeln!(out, "\n{title}: none (parameters are refused)");
        return;
    };
    let required = &mode.expect("has parameters").parameters_required;
    let _ = writeln!(out, "\n{title}:");
    for (k, s) in &params.0 {
        note_pattern(k, s, notes);
        let req = if required.contains(k) {
            " (required)"
        } else {
            ""
        };
        let _ = writeln!(out, "  {k:<28} {}{req}", describe(s));
    }
}

fn note_pattern(key: &str, s: &Value, notes: &mut Vec<String>) {
    if let Some(p) = s.get("pattern").and_then(Value::as_str)
        && schema::compiled(p).is_none()
    {
        notes.push(format!(
            "the pattern of {key} ({p}) needs a regex feature watchbell's engine lacks (a lookbehind): `check` does not test it; the API does"
        ));
    }
}

/// One line for a property schema: type, enum, default, bounds, pattern.
fn describe(s: &Value) -> String {
    let mut parts = Vec::new();
    let ty = s.get("type").and_then(Value::as_str).unwrap_or("any");
    let item = s.pointer("/items/type").and_then(Value::as_str);
    parts.push(match (ty, item) {
        ("array", Some(i)) => format!("list of {i}"),
        (t, _) => t.to_string(),
    });
    let choices = s
        .get("enum")
        .or_else(|| s.pointer("/items/enum"))
        .and_then(Value::as_array);
    if let Some(e) = choices {
        let names: Vec<String> = e
            .iter()
            .filter(|v| !v.is_null())
            .map(Value::to_string)
            .collect();
        parts.push(format!("one of {}", names.join(", ")));
    }
    for (key, word) in [
        ("minimum", "min"),
        ("maximum", "max"),
        ("maxLength", "max length"),
    ] {
        if let Some(v) = s.get(key) {
            parts.push(format!("{word} {v}"));
        }
    }
    if let Some(d) = s.get("default") {
        parts.push(format!("default {d}"));
    }
    if let Some(p) = s.get("pattern").and_then(Value::as_str) {
        parts.push(format!("pattern {p}"));
    }
    if s.get("deprecated").and_then(Value::as_bool) == Some(true) {
        parts.push("deprecated".into());
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_endpoint_is_explained_with_its_placeholder_and_query() {
        let path = "/companies/{company_uid}/employees";
        let text = explain_endpoint(path, catalog::v1::endpoint(path).unwrap());
        assert!(text.contains("paged by the server's cursor"), "{text}");
        assert!(
            text.contains("  path = { company_uid = \"...\" }"),
            "{text}"
        );
        assert!(!text.contains("page_size"), "{text}");
        let enrich = explain_endpoint(
            "/companies/enrich",
            catalog::v1::endpoint("/companies/enrich").unwrap(),
        );
        assert!(
            enrich.contains("li_company_url (or url, company_url, current_company_url, link)"),
            "{enrich}"
        );
        let mut listed = String::new();
        list_endpoints(&mut listed);
        assert_eq!(listed.lines().filter(|l| l.starts_with('/')).count(), 7);
    }
}
