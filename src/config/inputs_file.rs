//! An inputs file: a CSV whose header row names the action's input keys (and `custom_data.KEY`
//! columns), or JSON lines, one input object a line. Read one row at a time, never whole, so
//! `check` holds every row to the action's schema and a run stores the rows in chunks, in
//! constant memory however long the file. Positions are `ROW:COL` of the file (1-based; for
//! JSON lines, the column of the line).

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::{Map, Value};

/// Where and what is wrong in an inputs file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub row: u64,
    pub col: u64,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.row, self.col, self.message)
    }
}

/// One input read from the file, with the column each key came from.
#[derive(Debug)]
pub struct Row {
    pub row: u64,
    pub input: Map<String, Value>,
    columns: Vec<(String, u64)>,
}

impl Row {
    /// The column `key` came from (1 when the file has no columns, or the key none).
    pub fn column(&self, key: &str) -> u64 {
        self.columns
            .iter()
            .find(|(k, _)| k == key || key.starts_with(&format!("{k}.")))
            .map_or(1, |(_, c)| *c)
    }
}

/// Calls `each` with every row of the file at `path`, or the problem of a row that cannot be
/// read; `each` returns false to stop. `takes` says whether a CSV column names an input key.
/// `Err`: the file as a whole cannot be read (missing, a bad header, no `.csv`/`.jsonl`).
pub fn read(
    path: &Path,
    takes: &dyn Fn(&str) -> bool,
    each: &mut dyn FnMut(Result<Row, Problem>) -> bool,
) -> Result<u64, Problem> {
    let whole = |message: String| Problem {
        row: 1,
        col: 1,
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| whole(format!("cannot read it: {e}")))?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => csv(BufReader::new(file), takes, each),
        Some("jsonl") => jsonl(BufReader::new(file), each),
        _ => Err(whole(
            "an inputs file is .csv (a header row of input keys) or .jsonl (an object a line)"
                .into(),
        )),
    }
}

fn csv(
    file: impl std::io::Read,
    takes: &dyn Fn(&str) -> bool,
    each: &mut dyn FnMut(Result<Row, Problem>) -> bool,
) -> Result<u64, Problem> {
    let mut reader = csv::ReaderBuilder::new().from_reader(file);
    let header = reader.headers().map_err(|e| problem(&e, 1))?.clone();
    let mut columns = Vec::new();
    for (i, name) in header.iter().enumerate() {
        let col = i as u64 + 1;
        let name = name.trim();
        let known = match name.strip_prefix("custom_data.") {
            Some("watchbell") => {
                return Err(Problem {
                    row: 1,
                    col,
                    message: "custom_data.watchbell is watchbell's own key".into(),
                });
            }
            Some(k) => !k.is_empty(),
            None => takes(name),
        };
        if !known {
            return Err(Problem {
                row: 1,
                col,
                message: format!(
                    "unknown column {name:?}: not an input key of the action, nor custom_data.KEY"
                ),
            });
        }
        columns.push((name.to_string(), col));
    }
    let mut rows = 0;
    let mut record = csv::StringRecord::new();
    loop {
        let row = reader.position().line() + 1;
        match reader.read_record(&mut record) {
            Ok(false) => return Ok(rows),
            Ok(true) => {}
            Err(e) => {
                if each(Err(problem(&e, row))) {
                    continue;
                }
                return Ok(rows);
            }
        }
        rows += 1;
        let row = record.position().map_or(row, csv::Position::line);
        let mut input = Map::new();
        let mut custom = Map::new();
        for ((name, _), cell) in columns.iter().zip(record.iter()) {
            if cell.is_empty() {
                continue;
            }
            match name.strip_prefix("custom_data.") {
                Some(k) => custom.insert(k.to_string(), Value::from(cell)),
                None => input.insert(name.clone(), Value::from(cell)),
            };
        }
        if !custom.is_empty() {
            input.insert("custom_data".into(), Value::Object(custom));
        }
        let columns = columns.clone();
        if !each(Ok(Row {
            row,
            input,
            columns,
        })) {
            return Ok(rows);
        }
    }
}

/// A CSV error where it is: a ragged row, invalid UTF-8.
fn problem(e: &csv::Error, row: u64) -> Problem {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => Problem {
            row: pos.as_ref().map_or(row, csv::Position::line),
            // The first field too many, or the first one missing.
            col: len.min(expected_len) + 1,
            message: format!("{len} fields where the header has {expected_len}"),
        },
        csv::ErrorKind::Utf8 { pos, err } => Problem {
            row: pos.as_ref().map_or(row, csv::Position::line),
            col: err.field() as u64 + 1,
            message: "not UTF-8".into(),
        },
        _ => Problem {
            row,
            col: 1,
            message: e.to_string(),
        },
    }
}

fn jsonl(
    mut file: impl BufRead,
    each: &mut dyn FnMut(Result<Row, Problem>) -> bool,
) -> Result<u64, Problem> {
    let (mut row, mut rows) = (0, 0);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = file.read_until(b'\n', &mut line).map_err(|e| Problem {
            row: row + 1,
            col: 1,
            message: format!("cannot read it: {e}"),
        })?;
        if n == 0 {
            return Ok(rows);
        }
        row += 1;
        let parsed = match std::str::from_utf8(&line) {
            Err(e) => Err(Problem {
                row,
                col: e.valid_up_to() as u64 + 1,
                message: "not UTF-8".into(),
            }),
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(input)) => Ok(Row {
                    row,
                    input,
                    columns: Vec::new(),
                }),
                Ok(_) => Err(Problem {
                    row,
                    col: 1,
                    message: "expected an object, one input a line".into(),
                }),
                Err(e) => Err(Problem {
                    row,
                    col: e.column() as u64,
                    message: format!("not JSON: {e}"),
                }),
            },
        };
        rows += u64::from(parsed.is_ok());
        if !each(parsed) {
            return Ok(rows);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(name: &str, text: &[u8]) -> (Result<u64, Problem>, Vec<Result<Row, Problem>>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let mut got = Vec::new();
        let n = read(&path, &|k| k == "url" || k == "n", &mut |r| {
            got.push(r);
            true
        });
        (n, got)
    }

    #[test]
    fn csv_rows_are_inputs_with_their_custom_data() {
        let (n, rows) = all(
            "in.csv",
            b"url,custom_data.row\nhttps://a,1\n\"https://b,c\",\nhttps://d,\"x\"\"y\"\n",
        );
        assert_eq!(n, Ok(3));
        let rows: Vec<Row> = rows.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            Value::Object(rows[0].input.clone()),
            serde_json::json!({"url": "https://a", "custom_data": {"row": "1"}})
        );
        assert_eq!(rows[1].input["url"], "https://b,c");
        assert!(rows[1].input.get("custom_data").is_none());
        assert_eq!(rows[2].input["custom_data"]["row"], "x\"y");
        assert_eq!((rows[0].row, rows[2].row), (2, 4));
        assert_eq!(rows[0].column("custom_data.row"), 2);
    }

    #[test]
    fn bad_files_are_placed_by_row_and_column() {
        let (n, _) = all("in.csv", b"url,colour\nx,y\n");
        assert_eq!(
            n.unwrap_err().to_string(),
            "1:2: unknown column \"colour\": not an input key of the action, nor custom_data.KEY"
        );
        let (n, _) = all("in.csv", b"url,custom_data.watchbell\n");
        assert_eq!(n.unwrap_err().col, 2);
        let (_, rows) = all("in.csv", b"url,n\na,1\nb\nc,3\n");
        assert_eq!(
            rows[1].as_ref().unwrap_err().to_string(),
            "3:2: 1 fields where the header has 2"
        );
        assert!(rows[2].is_ok(), "reading goes on after a ragged row");
        let (_, rows) = all("in.csv", b"url,n\na,\xff\n");
        assert_eq!(rows[0].as_ref().unwrap_err().to_string(), "2:2: not UTF-8");
        let (_, rows) = all("in.jsonl", b"{\"url\": \"a\"}\n\n{\"url\": }\n[1]\n\xfe\n");
        assert!(rows[0].is_ok());
        assert_eq!(rows[1].as_ref().unwrap_err().row, 3);
        assert!(
            rows[1]
                .as_ref()
                .unwrap_err()
                .message
                .starts_with("not JSON")
        );
        assert_eq!(
            rows[2].as_ref().unwrap_err().to_string(),
            "4:1: expected an object, one input a line"
        );
        assert_eq!(rows[3].as_ref().unwrap_err().to_string(), "5:1: not UTF-8");
        let (n, _) = all("in.txt", b"x");
        assert!(n.unwrap_err().message.contains(".csv"));
        let missing = read(Path::new("/nonexistent/in.csv"), &|_| true, &mut |_| true);
        assert!(missing.unwrap_err().message.starts_with("cannot read it"));
    }
}
