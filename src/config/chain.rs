//! Chained jobs in the job file: `inputs_from` (a job's inputs are another job's new items,
//! mapped field by field) and `after` (a job fires when a run of another ends well). Read per
//! job, then checked across the file: the source exists and runs locally, each mapped field is
//! a result field of the source, the mapped keys make a valid input, and no chain is a cycle.

use std::collections::BTreeMap;
use std::ops::Range;

use serde_json::Value;

use super::read::{self, Diags};
use super::{Job, Runner};
use crate::catalog;

/// `inputs_from = { job = "SRC", map = { TARGET_KEY = "SRC_FIELD" }, backlog = false }`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
pub struct InputsFrom {
    pub job: String,
    /// Input key of this job's action -> result field of the source's items.
    pub map: BTreeMap<String, String>,
    pub backlog: bool,
}

impl InputsFrom {
    pub(super) fn read(d: &mut Diags, v: &read::Value<'_>) -> Option<InputsFrom> {
        let t = read::table(d, v, "inputs_from", "inputs_from")?;
        t.only(d, &["job", "map", "backlog"]);
        let Some(job) = t
            .get("job")
            .and_then(|v| read::string(d, v, "inputs_from.job"))
        else {
            d.at(
                &v.span(),
                "inputs_from: job is required (the job whose items feed this one)",
            );
            return None;
        };
        let mut map = BTreeMap::new();
        match t.get("map") {
            None => {
                d.at(
                    &v.span(),
                    "inputs_from: map is required, e.g. map = { google_maps_place_url = \"google_maps_place_url\" }",
                );
                return None;
            }
            Some(m) => {
                let m = read::table(d, m, "inputs_from.map", "inputs_from.map")?;
                for (k, field) in m.table {
                    let key = format!("inputs_from.map.{}", k.get_ref());
                    map.insert(k.get_ref().to_string(), read::string(d, field, &key)?);
                }
            }
        }
        if map.is_empty() {
            d.at(&v.span(), "inputs_from: map is empty");
            return None;
        }
        let backlog = match t.get("backlog") {
            Some(b) => read::boolean(d, b, "inputs_from.backlog")?,
            None => false,
        };
        Some(InputsFrom { job, map, backlog })
    }

    /// The input a source item becomes, or why it cannot be one.
    pub fn input_of(&self, item: &Value) -> Result<serde_json::Map<String, Value>, String> {
        let mut input = serde_json::Map::new();
        for (key, field) in &self.map {
            match item.get(field) {
                None | Some(Value::Null) => {
                    return Err(format!("the {} item has no {field}", self.job));
                }
                Some(v) => {
                    input.insert(key.clone(), v.clone());
                }
            }
        }
        Ok(input)
    }
}

/// Where a job wrote its chain keys, for the checks across the file.
pub(super) struct Written {
    pub job: String,
    pub inputs_from: Option<Range<usize>>,
    pub after: Option<(String, Range<usize>)>,
}

/// The checks across jobs: sources exist and are local, mapped fields are the source's result
/// fields and make a valid input, and no job feeds or fires itself through a chain.
pub(super) fn check(d: &mut Diags, jobs: &[Job], written: &[Written]) {
    let find = |name: &str| jobs.iter().find(|j| j.name == name);
    for w in written {
        let Some(job) = find(&w.job) else { continue };
        if let (Some(span), Some(from)) = (&w.inputs_from, &job.request.inputs_from) {
            check_inputs_from(d, span, job, from, find(&from.job));
        }
        if let Some((src, span)) = &w.after {
            match find(src) {
                None => d.at(span, format!("after: no job named {src:?}")),
                Some(s) if s.runner == Runner::Remote => d.at(
                    span,
                    format!("after: {src} runs remotely; after needs a local source"),
                ),
                Some(_) if *src == w.job => d.at(span, "after: a job cannot follow itself"),
                Some(_) => {}
            }
        }
    }
    for w in written {
        if let Some(cycle) = cycle_from(&w.job, jobs) {
            let span = w
                .inputs_from
                .clone()
                .or_else(|| w.after.as_ref().map(|a| a.1.clone()));
            if let Some(span) = span {
                d.at(
                    &span,
                    format!("a chain of jobs is a cycle: {}", cycle.join(" <- ")),
                );
            }
        }
    }
}

fn check_inputs_from(
    d: &mut Diags,
    span: &Range<usize>,
    job: &Job,
    from: &InputsFrom,
    src: Option<&Job>,
) {
    let Some(src) = src else {
        d.at(span, format!("inputs_from: no job named {:?}", from.job));
        return;
    };
    if src.runner == Runner::Remote {
        d.at(
            span,
            format!(
                "inputs_from: {} runs remotely; its items do not reach this machine",
                src.name
            ),
        );
        return;
    }
    let fields: Vec<&str> = match (&src.request.endpoint, catalog::v4().action(&src.action)) {
        (Some(_), _) => catalog::v1::endpoint(&src.action)
            .map(|e| e.output_fields().collect())
            .unwrap_or_default(),
        (None, Some(a)) => a.output_fields().collect(),
        (None, None) => return,
    };
    for field in from.map.values() {
        if !fields.contains(&field.as_str()) {
            let hint = catalog::closest(field, fields.iter().copied())
                .map(|c| format!("; did you mean {c:?}?"))
                .unwrap_or_default();
            d.at(
                span,
                format!(
                    "inputs_from.map: {field:?} is not a result field of {} ({}){hint}",
                    src.name, src.action
                ),
            );
        }
    }
    let Some(act) = catalog::v4().action(&job.action) else {
        return;
    };
    for key in from.map.keys() {
        if act.input_property(key).is_none() {
            d.at(
                span,
                format!(
                    "inputs_from.map: {key:?} is not an input key of {} (it takes {})",
                    job.action,
                    act.input_keys().join(", ")
                ),
            );
            return;
        }
    }
    let keys: serde_json::Map<String, Value> = from
        .map
        .keys()
        .map(|k| (k.clone(), Value::Bool(true)))
        .collect();
    if act.matching_alternative(&keys).is_none() {
        d.at(
            span,
            format!(
                "inputs_from.map: {} needs {}",
                job.action,
                act.describe_alternatives()
            ),
        );
    }
}

/// The chain back from `start` (its sources, theirs, ...) when it comes back to `start`.
fn cycle_from(start: &str, jobs: &[Job]) -> Option<Vec<String>> {
    let sources = |name: &str| -> Vec<String> {
        jobs.iter()
            .find(|j| j.name == name)
            .map(|j| {
                j.request
                    .inputs_from
                    .iter()
                    .map(|f| f.job.clone())
                    .chain(j.after.clone())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut path = vec![start.to_string()];
    let mut stack = vec![(start.to_string(), sources(start), 0usize)];
    let mut seen = std::collections::HashSet::new();
    while let Some((_, next, i)) = stack.last_mut() {
        let Some(s) = next.get(*i).cloned() else {
            stack.pop();
            path.pop();
            continue;
        };
        *i += 1;
        if s == start {
            path.push(s);
            return Some(path);
        }
        if seen.insert(s.clone()) {
            path.push(s.clone());
            let more = sources(&s);
            stack.push((s, more, 0));
        }
    }
    None
}
