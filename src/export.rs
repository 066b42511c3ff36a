//! Results out of the database: JSON lines, or CSV whose columns are the union of the items' keys
//! (nested values written as JSON text).

use std::collections::BTreeSet;
use std::io::{self, Write};

use serde_json::Value;

pub fn jsonl(out: &mut impl Write, items: &[Value]) -> io::Result<()> {
    for item in items {
        writeln!(out, "{item}")?;
    }
    Ok(())
}

pub fn csv(out: &mut impl Write, items: &[Value]) -> io::Result<()> {
    let mut columns = BTreeSet::new();
    for item in items {
        match item {
            Value::Object(m) => columns.extend(m.keys().cloned()),
            _ => {
                columns.insert("value".to_string());
            }
        }
    }
    let columns: Vec<String> = columns.into_iter().collect();
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
        csv(&mut out, &items).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "id,name,tags\na,\"Ann, CTO\",\nb,,\"[\"\"x\"\",\"\"y\"\"]\"\n"
        );
    }
}
