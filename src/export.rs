//! Results out of the database, streamed: JSON lines as they are read, or CSV in two passes (the
//! columns first, then the rows), so memory stays flat however many items there are. CSV
//! columns: the items' origin (for exports), the actions' result fields in the catalog's order,
//! then any other key in the order it first appears; nested values are written as JSON text.
//! A string cell that a spreadsheet would run as a formula is neutralised unless `raw`.

use std::collections::HashSet;
use std::io::{self, Write};

use serde_json::{Map, Value};

use crate::store::{ItemQuery, ItemRow, Reader, Result};

/// How to write items.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub csv: bool,
    /// Add `_job` and `_run_uid` to each item (an export of many runs).
    pub origin: bool,
    /// Keep formula-looking cells as they are.
    pub raw: bool,
}

/// Every this many rows, an event for the progress line.
const PROGRESS_EVERY: u64 = 1000;

/// Writes the items `q` selects to `out`.
pub fn write(db: &Reader, q: &ItemQuery, layout: Layout, out: &mut impl Write) -> Result<()> {
    tracing::debug!(rows = 0, "exported");
    let mut rows = 0_u64;
    let mut count = move || {
        rows += 1;
        if rows.is_multiple_of(PROGRESS_EVERY) {
            tracing::debug!(rows, "exported");
        }
    };
    if !layout.csv {
        return db.for_each_item_text(q, |row| {
            count();
            if layout.origin {
                let item = with_origin(item_of(row), &row.run_uid, &row.job);
                writeln!(out, "{}", Value::Object(item))
            } else if row.input.is_some() {
                // The input first, then the item as stored.
                let mut head =
                    serde_json::to_string(&Value::Object(input_fields(row))).unwrap_or_default();
                head.pop();
                match row.text.strip_prefix('{') {
                    Some("}") => writeln!(out, "{head}}}"),
                    Some(rest) => writeln!(out, "{head},{rest}"),
                    None => writeln!(out, "{}", Value::Object(item_of(row))),
                }
            } else {
                writeln!(out, "{}", row.text)
            }
        });
    }
    let columns = columns(db, q, layout.origin)?;
    let header: Vec<String> = columns.iter().map(|c| field(c)).collect();
    writeln!(out, "{}", header.join(",")).map_err(crate::store::StoreError::Output)?;
    db.for_each_item_text(q, |row| {
        count();
        let item = if layout.origin {
            with_origin(item_of(row), &row.run_uid, &row.job)
        } else {
            item_of(row)
        };
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match item.get(c) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) if layout.raw => field(s),
                Some(Value::String(s)) => field(&neutralised(s)),
                Some(other) => field(&other.to_string()),
            })
            .collect();
        writeln!(out, "{}", cells.join(","))
    })
}

/// An item of a run over a list remembers its input: `_input` (its index) and its
/// `custom_data.KEY`s, without the `watchbell` key watchbell itself adds.
fn input_fields(row: &ItemRow) -> Map<String, Value> {
    let mut m = Map::new();
    let Some(index) = row.input else {
        return m;
    };
    m.insert("_input".into(), index.into());
    let custom = row
        .custom_data
        .as_deref()
        .and_then(|t| serde_json::from_str::<Map<String, Value>>(t).ok())
        .unwrap_or_default();
    for (k, v) in custom.into_iter().filter(|(k, _)| k != "watchbell") {
        m.insert(format!("custom_data.{k}"), v);
    }
    m
}

/// The item as an object, its input's fields first.
fn item_of(row: &ItemRow) -> Map<String, Value> {
    let mut item = input_fields(row);
    item.extend(parse(&row.text));
    item
}

/// The CSV columns: a first pass over the items' keys, holding only the names.
fn columns(db: &Reader, q: &ItemQuery, origin: bool) -> Result<Vec<String>> {
    let mut columns: Vec<String> = Vec::new();
    let mut known: HashSet<String> = HashSet::new();
    let mut add = |c: &str, columns: &mut Vec<String>| {
        if known.insert(c.to_string()) {
            columns.push(c.to_string());
        }
    };
    if origin {
        add("_job", &mut columns);
        add("_run_uid", &mut columns);
    }
    let mut present: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut inputs: Vec<String> = Vec::new();
    db.for_each_item_text(q, |row| {
        for k in input_fields(row).keys() {
            if seen.insert(k.clone()) {
                inputs.push(k.clone());
            }
        }
        for k in parse(&row.text).keys() {
            if seen.insert(k.clone()) {
                present.push(k.clone());
            }
        }
        Ok(())
    })?;
    for k in &inputs {
        add(k, &mut columns);
    }
    for action in db.item_actions(q)? {
        let fields: Vec<&str> = match crate::catalog::v4().action(&action) {
            Some(a) => a.output_fields().collect(),
            None => crate::catalog::v1::endpoint(&action)
                .into_iter()
                .flat_map(crate::catalog::v1::Endpoint::output_fields)
                .collect(),
        };
        for f in fields.into_iter().filter(|f| seen.contains(*f)) {
            add(f, &mut columns);
        }
    }
    for k in &present {
        add(k, &mut columns);
    }
    Ok(columns)
}

/// An item as an object (a bare value becomes `{"value": ...}`).
fn parse(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => m,
        Ok(other) => Map::from_iter([("value".to_string(), other)]),
        Err(_) => Map::from_iter([("value".to_string(), Value::String(text.to_string()))]),
    }
}

fn with_origin(mut item: Map<String, Value>, uid: &str, job: &str) -> Map<String, Value> {
    item.insert("_run_uid".into(), uid.into());
    item.insert("_job".into(), job.into());
    item
}

/// A cell a spreadsheet would read as a formula (OWASP's CSV injection: `=`, `+`, `-`, `@`, tab,
/// carriage return) gets a leading `'`, so it is shown, not run.
fn neutralised(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

/// RFC 4180 quoting where needed.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Maps a closed pipe to a quiet end, as the CLI's other output does.
pub fn quiet_pipe(r: Result<()>) -> Result<()> {
    match r {
        Err(crate::store::StoreError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_numbers_left_alone() {
        for f in [
            "=HYPERLINK(\"http://x\")",
            "+1",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            assert!(neutralised(f).starts_with('\''), "{f:?}");
        }
        assert_eq!(neutralised("Ann"), "Ann");
        assert_eq!(field(&neutralised("=1,2")), "\"'=1,2\"");
    }
}
