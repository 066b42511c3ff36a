//! Result values a chained job can send back: a result field named like an action's input key
//! (`google_maps_place_url`, `linkedin_profile_url`) gets a value that satisfies that key's
//! pattern, unique per item, so `googlemaps-extract-place` accepts the places a search returned.
//! Each shape is found once: the example input of `examples.toml` with its last part replaced by
//! the item's id, kept only if the pattern takes it.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;

use crate::catalog;

/// How a field's value is made from an item's id: `prefix`, the id, `suffix`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Shape {
    prefix: String,
    suffix: String,
    /// The id as a decimal number (for patterns of digits), else in hex.
    decimal: bool,
}

impl Shape {
    fn new(prefix: &str, suffix: &str, decimal: bool) -> Shape {
        Shape {
            prefix: prefix.into(),
            suffix: suffix.into(),
            decimal,
        }
    }

    /// The value for `id` (hex digits).
    fn make(&self, id: &str) -> String {
        let id = if self.decimal {
            (u64::from_str_radix(id, 16).unwrap_or(0) % 1_000_000_000_000).to_string()
        } else {
            id.to_string()
        };
        format!("{}{id}{}", self.prefix, self.suffix)
    }

    /// Whether `re` takes what this shape makes (tried with two ids).
    fn fits(&self, re: &Regex) -> bool {
        ["0a1b2c3d4e5f6789", "0000000000000007"]
            .iter()
            .all(|id| re.is_match(&self.make(id)))
    }
}

/// The value of result field `field` for the item `id` (16 hex digits), when some action takes
/// an input of that name with a pattern.
pub(crate) fn value(field: &str, id: &str) -> Option<String> {
    static SHAPES: OnceLock<HashMap<String, Shape>> = OnceLock::new();
    Some(SHAPES.get_or_init(shapes).get(field)?.make(id))
}

/// Keys that are only an alternative of their actions, so no example of `examples.toml` shows
/// them.
const MORE_EXAMPLES: &[(&str, &str)] = &[(
    "linkedin_comment_url",
    "https://www.linkedin.com/feed/update/example",
)];

/// Every input key with a pattern and an example, with the first shape its pattern takes.
fn shapes() -> HashMap<String, Shape> {
    // A key may carry a different pattern in each action that takes it: a value must fit all.
    let mut patterns: HashMap<String, Vec<Regex>> = HashMap::new();
    for action in catalog::v4().actions.values() {
        for key in action.input_keys() {
            let Some((name, schema)) = action.input_property(&key) else {
                continue;
            };
            if let Some(p) = schema["pattern"].as_str()
                && let Ok(re) = Regex::new(&super::strict::pattern(p))
            {
                patterns.entry(name.to_string()).or_default().push(re);
            }
        }
    }
    // A key's own examples first, then any example its pattern takes (a comment URL is a
    // post's URL, whose example is written under another key).
    let examples: Vec<(&str, &str)> = catalog::example_inputs()
        .flat_map(|(_, input)| input.iter())
        .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
        .chain(MORE_EXAMPLES.iter().copied())
        .collect();
    let mut out = HashMap::new();
    for (key, res) in &patterns {
        let own = examples.iter().filter(|(k, _)| k == key);
        let other = examples.iter().filter(|(k, _)| k != key);
        if let Some(shape) = own
            .chain(other)
            .flat_map(|(_, e)| candidates(e))
            .find(|s| res.iter().all(|re| s.fits(re)))
        {
            out.insert(key.clone(), shape);
        }
    }
    out
}

/// Shapes to try for an example value, best first: its last path segment (or trailing number)
/// replaced by the id, then the id appended.
fn candidates(example: &str) -> Vec<Shape> {
    let (body, slash) = match example.strip_suffix('/') {
        Some(b) => (b, "/"),
        None => (example, ""),
    };
    let mut out = Vec::new();
    if let Some((head, last)) = body.rsplit_once('/') {
        let prefix = format!("{head}/");
        // `.../lead/ID,NAME_SEARCH,xyz`: the id is the segment's first part.
        if let Some((_, rest)) = last.split_once(',') {
            out.push(Shape::new(&prefix, &format!(",{rest}{slash}"), false));
        }
        out.push(Shape::new(&prefix, slash, false));
        out.push(Shape::new(&prefix, slash, true));
    }
    let digits = body.trim_end_matches(|c: char| c.is_ascii_digit());
    if digits.len() < body.len() {
        out.push(Shape::new(digits, slash, true));
    }
    out.push(Shape::new(&format!("{example}-"), "", false));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_url_is_a_place_url_unique_per_item() {
        assert_eq!(
            value("google_maps_place_url", "0a1b2c3d4e5f6789").as_deref(),
            Some("https://www.google.com/maps/place/0a1b2c3d4e5f6789")
        );
        assert_ne!(
            value("google_maps_place_url", "0a1b2c3d4e5f6789"),
            value("google_maps_place_url", "0a1b2c3d4e5f6780")
        );
        assert_eq!(value("not_an_input_key", "0a1b2c3d4e5f6789"), None);
    }

    /// Every result field named like a patterned input key gets a value that key's pattern takes.
    #[test]
    fn every_result_field_named_like_an_input_key_satisfies_its_pattern() {
        let mut checked = 0;
        let actions = &catalog::v4().actions;
        for (name, action) in actions {
            for field in action.output_fields() {
                for (other, taker) in actions {
                    // Same-named keys only: an alias (`linkedin_url`) stands for keys whose
                    // patterns differ, which no one value satisfies.
                    let Some((_, schema)) =
                        taker.input_property(field).filter(|(n, _)| *n == field)
                    else {
                        continue;
                    };
                    let Some(p) = schema["pattern"].as_str() else {
                        continue;
                    };
                    // A pattern Rust's regex cannot read, the sandbox cannot hold bodies to.
                    let Ok(re) = Regex::new(&super::super::strict::pattern(p)) else {
                        continue;
                    };
                    let v = value(field, "00c0ffee00c0ffee").expect(field);
                    assert!(
                        re.is_match(&v),
                        "{name}.{field} = {v:?} breaks {other}'s {p}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 20, "{checked}");
    }
}
