//! Reading typed values out of toml's spanned tree, collecting every error with its position
//! instead of stopping at the first one.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One problem in the job file, at a byte offset that [`Diags`] turns into line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diag {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Every error found in one file, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics {
    pub path: String,
    pub errors: Vec<Diag>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: {}", self.path, d.line, d.col, d.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The collector: knows the source text so it can place a span.
pub struct Diags<'s> {
    src: &'s str,
    /// Byte offsets where lines start, so a position is a binary search, not a rescan.
    line_starts: Vec<usize>,
    found: Vec<(usize, String)>,
    warned: Vec<(usize, String)>,
    /// Where the text being read starts in `src` (a file read one `[[job]]` at a time).
    pub offset: usize,
    /// The job file's directory: what `inputs_file` paths are relative to.
    pub dir: std::path::PathBuf,
}

impl<'s> Diags<'s> {
    pub fn new(src: &'s str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(src.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Diags {
            src,
            line_starts,
            found: Vec::new(),
            warned: Vec::new(),
            offset: 0,
            dir: std::path::PathBuf::new(),
        }
    }

    /// Records `message` at the start of `span`.
    pub fn at(&mut self, span: &Range<usize>, message: impl Into<String>) {
        self.found.push((self.offset + span.start, message.into()));
    }

    /// Records a warning: the file is still accepted.
    pub fn warn(&mut self, span: &Range<usize>, message: impl Into<String>) {
        self.warned.push((self.offset + span.start, message.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// No error and no warning.
    pub fn is_clean(&self) -> bool {
        self.found.is_empty() && self.warned.is_empty()
    }

    pub fn error_count(&self) -> usize {
        self.found.len()
    }

    /// The warnings, as `PATH:LINE:COL: warning: message` lines in file order.
    pub fn warnings(&self, path: &str) -> Vec<String> {
        let mut w = self.warned.clone();
        w.sort_by_key(|(o, _)| *o);
        w.dedup();
        w.iter()
            .map(|(o, m)| {
                let (line, col) = self.position(*o);
                format!("{path}:{line}:{col}: warning: {m}")
            })
            .collect()
    }

    /// The line (1-based) of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        let offset = (self.offset + offset).min(self.src.len());
        self.line_starts.partition_point(|&s| s <= offset)
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        (line, self.src[start..offset].chars().count() + 1)
    }

    pub fn finish(mut self, path: &str) -> Diagnostics {
        self.found.sort_by_key(|(o, _)| *o);
        self.found.dedup();
        let errors = self
            .found
            .iter()
            .map(|(o, m)| {
                let (line, col) = self.position(*o);
                Diag {
                    line,
                    col,
                    message: m.clone(),
                }
            })
            .collect();
        Diagnostics {
            path: path.to_string(),
            errors,
        }
    }
}

pub type Value<'i> = Spanned<DeValue<'i>>;

/// A table with the section name used in messages.
pub struct Section<'a, 'i> {
    pub name: String,
    pub table: &'a DeTable<'i>,
}

impl<'a, 'i> Section<'a, 'i> {
    /// Reports every key not in `allowed`.
    pub fn only(&self, d: &mut Diags, allowed: &[&str]) {
        for (k, _) in self.table {
            if !allowed.contains(&k.get_ref().as_ref()) {
                let hint = if k.get_ref() == "api_key" {
                    " (the API key never goes in the file: use api_key_env or api_key_file)"
                        .to_string()
                } else {
                    format!("; expected one of: {}", allowed.join(", "))
                };
                d.at(
                    &k.span(),
                    format!("unknown key {:?} in {}{hint}", k.get_ref(), self.name),
                );
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.table.get(key)
    }

    pub fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.table.get_key_value(key).map(|(k, _)| k.span())
    }
}

fn type_error(d: &mut Diags, v: &Value, key: &str, want: &str) {
    d.at(
        &v.span(),
        format!("{key}: expected {want}, found {}", v.get_ref().type_str()),
    );
}

pub fn string(d: &mut Diags, v: &Value, key: &str) -> Option<String> {
    if let DeValue::String(s) = v.get_ref() {
        Some(s.to_string())
    } else {
        type_error(d, v, key, "a string");
        None
    }
}

pub fn boolean(d: &mut Diags, v: &Value, key: &str) -> Option<bool> {
    if let DeValue::Boolean(b) = v.get_ref() {
        Some(*b)
    } else {
        type_error(d, v, key, "true or false");
        None
    }
}

/// A whole number in `min..=max`.
pub fn integer(d: &mut Diags, v: &Value, key: &str, min: i64, max: i64) -> Option<i64> {
    let parsed = if let DeValue::Integer(i) = v.get_ref() {
        i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok()
    } else {
        type_error(d, v, key, "a whole number");
        return None;
    };
    match parsed {
        Some(n) if (min..=max).contains(&n) => Some(n),
        _ => {
            d.at(
                &v.span(),
                format!("{key}: must be a whole number from {min} to {max}"),
            );
            None
        }
    }
}

/// The longest duration any key takes: beyond it, instants computed from it stop being
/// representable, and no schedule means it.
pub const MAX_DURATION: Duration = Duration::from_hours(10 * 366 * 24);

/// A duration such as "90s", "5m", "1h 30m"; "0s" is allowed; at most [`MAX_DURATION`].
pub fn duration(d: &mut Diags, v: &Value, key: &str) -> Option<Duration> {
    let s = string(d, v, key)?;
    match humantime::parse_duration(&s) {
        Ok(dur) if dur > MAX_DURATION => {
            d.at(&v.span(), format!("{key}: {s:?} is longer than ten years"));
            None
        }
        Ok(dur) => Some(dur),
        Err(e) => {
            d.at(
                &v.span(),
                format!("{key}: invalid duration {s:?} ({e}); write e.g. \"30s\", \"5m\", \"1h\""),
            );
            None
        }
    }
}

/// A duration that must not be zero (a timeout, an interval).
pub fn positive_duration(d: &mut Diags, v: &Value, key: &str) -> Option<Duration> {
    let dur = duration(d, v, key)?;
    if dur.is_zero() {
        d.at(&v.span(), format!("{key}: must be longer than zero"));
        return None;
    }
    Some(dur)
}

/// One of a fixed set of words.
pub fn choice<T: Copy>(d: &mut Diags, v: &Value, key: &str, options: &[(&str, T)]) -> Option<T> {
    let s = string(d, v, key)?;
    if let Some((_, t)) = options.iter().find(|(name, _)| *name == s) {
        Some(*t)
    } else {
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        d.at(
            &v.span(),
            format!("{key}: {s:?} is not one of {}", names.join(", ")),
        );
        None
    }
}

pub fn table<'a, 'i>(
    d: &mut Diags,
    v: &'a Value<'i>,
    key: &str,
    name: impl Into<String>,
) -> Option<Section<'a, 'i>> {
    if let DeValue::Table(t) = v.get_ref() {
        Some(Section {
            name: name.into(),
            table: t,
        })
    } else {
        type_error(d, v, key, "a table");
        None
    }
}

pub fn string_list(d: &mut Diags, v: &Value, key: &str) -> Option<Vec<String>> {
    let DeValue::Array(items) = v.get_ref() else {
        type_error(d, v, key, "a list of strings");
        return None;
    };
    let mut out = Vec::new();
    for item in items {
        out.push(string(d, item, key)?);
    }
    Some(out)
}

/// Any TOML value as JSON (for `input` and `parameters`, which go to the API as they are).
pub fn json(d: &mut Diags, v: &Value, key: &str) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    Some(match v.get_ref() {
        DeValue::String(s) => J::String(s.to_string()),
        DeValue::Boolean(b) => J::Bool(*b),
        DeValue::Integer(_) => J::from(integer(d, v, key, i64::MIN, i64::MAX)?),
        DeValue::Float(f) => {
            let n = f.as_str().replace('_', "").parse::<f64>().ok();
            if let Some(n) = n.and_then(serde_json::Number::from_f64) {
                J::Number(n)
            } else {
                d.at(&v.span(), format!("{key}: {} has no JSON form", f.as_str()));
                return None;
            }
        }
        DeValue::Datetime(dt) => J::String(dt.to_string()),
        DeValue::Array(items) => J::Array(
            items
                .iter()
                .map(|i| json(d, i, key))
                .collect::<Option<_>>()?,
        ),
        DeValue::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| Some((k.get_ref().to_string(), json(d, v, key)?)))
                .collect::<Option<_>>()?,
        ),
    })
}
