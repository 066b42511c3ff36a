//! Results out of the database: JSON lines, or CSV whose columns are the union of the items' keys
//! (nested values written as JSON text): first the `lead` columns (the action's result fields in
//! the catalog's order), then any others in name order.

use std::collections::{BTreeSet, HashSet};
use std::io::{self, Write};

use serde_json::Value;

pub fn jsonl(out: &mut impl Write, items: &[Value]) -> io::Result<()> {
    for item in items {
        writeln!(out, "{item}")?;
    }
    Ok(())
}

/// The lead columns for items of these actions: each action's result fields, in order.
pub fn lead_columns<'a>(actions: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut lead: Vec<String> = Vec::new();
    for a in actions {
        if let Some(action) = crate::catalog::v4().action(a) {
            for f in action.output_fields() {
                if !lead.iter().any(|l| l == f) {
                    lead.push(f.to_string());
                }
            }
        }
    }
    lead
}

pub fn csv(out: &mut impl Write, items: &[Value], lead: &[String]) -> io::Result<()> {
    let mut columns = BTreeSet::new();
    for item in items {
        match item {
            Value::Object(m) => columns.extend(m.keys().cloned()),
            _ => {
                columns.insert("value".to_string());
            }
        }
    }
    let leading: HashSet<&String> = lead.iter().filter(|c| columns.contains(*c)).collect();
    let columns: Vec<String> = lead
        .iter()
        .filter(|c| leading.contains(c))
        .cloned()
        .chain(columns.iter().filter(|c| !leading.contains(c)).cloned())
        .collect();
    writeln!(
        out,
        "{}",
        columns
            .iter()
            .map(|c| field(c))
            .collect::<Vec<_>>()
            .join(",")
    )?;
    for item in items {
        let row: Vec<String> = columns
            .iter()
            .map(|c| {
                let v = match item {
                    Value::Object(m) => m.get(c),
                    other if c == "value" => Some(other),
                    _ => None,
                };
                match v {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => field(s),
                    Some(other) => field(&other.to_string()),
                }
            })
            .collect();
        writeln!(out, "{}", row.join(","))?;
    }
    Ok(())
}

/// RFC 4180 quoting where needed.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_columns_are_the_union_of_keys_and_nested_values_are_json() {
        let items = vec![
            serde_json::json!({"id": "a", "name": "Ann, CTO"}),
            serde_json::json!({"id": "b", "tags": ["x", "y"]}),
        ];
        let mut out = Vec::new();
        csv(&mut out, &items, &[]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "id,name,tags\na,\"Ann, CTO\",\nb,,\"[\"\"x\"\",\"\"y\"\"]\"\n"
        );
    }

    #[test]
    fn csv_columns_follow_the_catalog_result_fields_then_the_rest() {
        let items = vec![
            serde_json::json!({"id": "a", "last_name": "L", "first_name": "F", "full_name": "F L"}),
        ];
        let lead = lead_columns(["linkedin-extract-people", "no-such-action"]);
        assert!(lead.len() > 10, "{lead:?}");
        let mut out = Vec::new();
        csv(&mut out, &items, &lead).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.lines().next(),
            Some("first_name,last_name,full_name,id")
        );
    }
}
