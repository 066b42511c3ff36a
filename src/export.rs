//! Results out of the database, streamed: JSON lines as they are read, or CSV in two passes (the
//! columns first, then the rows), so memory stays flat however many items there are. CSV
//! columns: the items' origin (for exports), the actions' result fields in the catalog's order,
//! then any other key in the order it first appears; nested values are written as JSON text.
//! A string cell that a spreadsheet would run as a formula is neutralised unless `raw`.

use std::collections::HashSet;
use std::io::{self, Write};

use serde_json::{Map, Value};

use crate::store::{ItemQuery, Reader, Result};

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
        return db.for_each_item_text(q, |uid, job, _, text| {
            count();
            if layout.origin {
                let item = with_origin(parse(text), uid, job);
                writeln!(out, "{}", Value::Object(item))
            } else {
                writeln!(out, "{text}")
            }
        });
    }
    let columns = columns(db, q, layout.origin)?;
    let header: Vec<String> = columns.iter().map(|c| field(c)).collect();
    writeln!(out, "{}", header.join(",")).map_err(crate::store::StoreError::Output)?;
    db.for_each_item_text(q, |uid, job, _, text| {
        count();
        let item = if layout.origin {
            with_origin(parse(text), uid, job)
        } else {
            parse(text)
        };
        let row: Vec<String> = columns
            .iter()
            .map(|c| match item.get(c) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) if layout.raw => field(s),
                Some(Value::String(s)) => field(&neutralised(s)),
                Some(other) => field(&other.to_string()),
            })
            .collect();
        writeln!(out, "{}", row.join(","))
    })
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
    db.for_each_item_text(q, |_, _, _, text| {
        for k in parse(text).keys() {
            if seen.insert(k.clone()) {
                present.push(k.clone());
            }
        }
        Ok(())
    })?;
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
