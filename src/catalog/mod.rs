//! What the account accepts: Captain Data's published schema for every v4 action (`v4.json`,
//! copied verbatim from the vendor's machine-readable description; see `README.md` beside it),
//! embedded in the binary and parsed once, on first use. `check`, the request bodies, the
//! `actions` command and CSV column order all read it from here; the sandbox assembles its own
//! JSON Schemas from the same data (an independent reading, so one bug cannot hide in both).

pub mod schema;
pub mod v1;

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::OnceLock;

use crate::fnv::Fnv;
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::Value;

/// The catalog's text, as published.
pub const V4_JSON: &str = include_str!("v4.json");
/// An example request per action, reviewed by hand (see the file's header).
const EXAMPLES: &str = include_str!("examples.toml");
/// The field that identifies a result item of each action, reviewed by hand.
const IDENTITY: &str = include_str!("identity.toml");

/// The whole v4 catalog.
#[derive(Debug, Deserialize)]
pub struct Catalog {
    pub actions: BTreeMap<String, Action>,
}

/// One action: its request body per mode, its input, and the fields of a result item.
#[derive(Debug, Deserialize)]
pub struct Action {
    pub modes: Modes,
    pub input: Input,
    /// The fields of one result item, in the vendor's order.
    pub output: Fields,
    /// The live answer is one object, not a list.
    #[serde(default)]
    pub output_is_object: bool,
}

#[derive(Debug, Deserialize)]
pub struct Modes {
    pub live: Option<Mode>,
    #[serde(rename = "async")]
    pub asynchronous: Option<Mode>,
    pub schedule: Option<Mode>,
}

/// The body of one mode's request.
#[derive(Debug, Deserialize)]
pub struct Mode {
    /// Every top-level key the body may have (`additionalProperties` is false everywhere).
    pub body_keys: Vec<String>,
    pub required: Vec<String>,
    #[serde(default)]
    pub parameters: Option<Fields>,
    #[serde(default)]
    pub parameters_required: Vec<String>,
    /// Live mode: the page query, present only for paginated actions.
    #[serde(default)]
    pub query: Option<Value>,
    /// Async and schedule modes: how many `inputs`.
    #[serde(default)]
    pub inputs_bounds: Option<Bounds>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
pub struct Bounds {
    #[serde(rename = "minItems")]
    pub min: u64,
    #[serde(rename = "maxItems")]
    pub max: u64,
}

/// What an action's `input` may hold: `common` properties plus one of the `alternatives`.
#[derive(Debug, Deserialize)]
pub struct Input {
    pub common: Fields,
    pub alternatives: Vec<Alternative>,
}

/// One accepted shape of the input: these keys (or one of their aliases) must be present.
#[derive(Debug, Deserialize)]
pub struct Alternative {
    pub required: Vec<String>,
    #[serde(default)]
    pub properties: Fields,
}

/// A JSON object's entries in the order the vendor wrote them.
#[derive(Debug, Default)]
pub struct Fields(pub Vec<(String, Value)>);

impl Fields {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Fields, D::Error> {
        struct Ordered;
        impl<'de> Visitor<'de> for Ordered {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    out.push(entry);
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(Ordered)
    }
}

/// The mode a job's request is made in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeName {
    Live,
    Async,
    Schedule,
}

impl ModeName {
    pub fn as_str(self) -> &'static str {
        match self {
            ModeName::Live => "live",
            ModeName::Async => "async",
            ModeName::Schedule => "schedule",
        }
    }
}

/// The embedded catalog, parsed on first use.
pub fn v4() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| serde_json::from_str(V4_JSON).expect("the embedded catalog parses"))
}

impl Catalog {
    pub fn action(&self, name: &str) -> Option<&Action> {
        self.actions.get(name)
    }

    /// The known action nearest to a misspelt `name`, when one is near enough to be a typo.
    pub fn closest(&self, name: &str) -> Option<&str> {
        closest(name, self.actions.keys().map(String::as_str))
    }
}

/// The candidate nearest to `word` by edit distance, if within a third of its length.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .map(|c| (strsim::levenshtein(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

impl Action {
    pub fn mode(&self, mode: ModeName) -> Option<&Mode> {
        match mode {
            ModeName::Live => self.modes.live.as_ref(),
            ModeName::Async => self.modes.asynchronous.as_ref(),
            ModeName::Schedule => self.modes.schedule.as_ref(),
        }
    }

    /// Mode names the action offers, in the API's order.
    pub fn mode_names(&self) -> Vec<&'static str> {
        [
            ("live", self.modes.live.is_some()),
            ("async", self.modes.asynchronous.is_some()),
            ("schedule", self.modes.schedule.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, on)| on.then_some(n))
        .collect()
    }

    /// False for the actions whose request carries no input at all.
    pub fn takes_input(&self) -> bool {
        !self.input.alternatives.is_empty()
    }

    /// True when live runs page through results (`X-Pagination-Next`).
    pub fn paginated(&self) -> bool {
        self.modes.live.as_ref().is_some_and(|m| m.query.is_some())
    }

    /// True when the action acts through an identity (a `LinkedIn` account), in live mode.
    pub fn takes_identities(&self) -> bool {
        self.modes.live.as_ref().is_some_and(Mode::takes_identities)
    }

    /// The schema of an input key, found by its name or one of its aliases; with the key's
    /// canonical name.
    pub fn input_property(&self, key: &str) -> Option<(&str, &Value)> {
        let all = self.input.common.0.iter().chain(
            self.input
                .alternatives
                .iter()
                .flat_map(|a| a.properties.0.iter()),
        );
        for (name, schema) in all {
            if name == key || aliases(schema).any(|a| a == key) {
                return Some((name, schema));
            }
        }
        None
    }

    /// Every name an input key may be written as: the key itself and its `x-variations`.
    pub fn names_of(&self, key: &str) -> Vec<String> {
        let mut names = vec![key.to_string()];
        if let Some((_, schema)) = self.input_property(key) {
            for a in aliases(schema) {
                if !names.iter().any(|n| n == a) {
                    names.push(a.to_string());
                }
            }
        }
        names
    }

    /// Every input key the action knows (canonical names and aliases).
    pub fn input_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        let mut add = |k: &str| {
            if !keys.iter().any(|x| x == k) {
                keys.push(k.to_string());
            }
        };
        for (name, schema) in self.input.common.0.iter().chain(
            self.input
                .alternatives
                .iter()
                .flat_map(|a| a.properties.0.iter()),
        ) {
            add(name);
            aliases(schema).for_each(&mut add);
        }
        for alt in &self.input.alternatives {
            for r in &alt.required {
                add(r);
            }
        }
        keys
    }

    /// The index of the first alternative `input` satisfies (each required key, or an alias).
    pub fn matching_alternative(&self, input: &serde_json::Map<String, Value>) -> Option<usize> {
        self.input.alternatives.iter().position(|alt| {
            alt.required
                .iter()
                .all(|r| self.names_of(r).iter().any(|n| input.contains_key(n)))
        })
    }

    /// "a (or b), or c": the alternatives, for messages.
    pub fn describe_alternatives(&self) -> String {
        self.input
            .alternatives
            .iter()
            .map(|alt| {
                alt.required
                    .iter()
                    .map(|r| {
                        let names = self.names_of(r);
                        if names.len() > 1 {
                            format!("{} (or {})", names[0], names[1..].join(", "))
                        } else {
                            names[0].clone()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" + ")
            })
            .collect::<Vec<_>>()
            .join("; or ")
    }

    /// The result fields, in order (CSV columns).
    pub fn output_fields(&self) -> impl Iterator<Item = &str> {
        self.output.names()
    }
}

impl Mode {
    pub fn takes(&self, key: &str) -> bool {
        self.body_keys.iter().any(|k| k == key)
    }

    pub fn takes_identities(&self) -> bool {
        self.takes("identity_mode") || self.takes("identity_ids")
    }

    pub fn takes_parameters(&self) -> bool {
        self.takes("parameters")
    }

    pub fn parameter(&self, key: &str) -> Option<&Value> {
        self.parameters.as_ref().and_then(|p| p.get(key))
    }
}

/// The `x-variations` of a property schema.
fn aliases(schema: &Value) -> impl Iterator<Item = &str> {
    schema
        .get("x-variations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// What a request of an action counts against in an identity's daily caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// Writes on LinkedIn as the person: invitations, messages, likes, ...
    Outreach,
    /// Looks at a profile or company page as the person.
    Visit,
    /// Other reading.
    Read,
}

impl Count {
    /// By the verb, the second segment of the action's name; `linkedin-extract-people` opens
    /// the profile, so it counts as a visit.
    pub fn of(action: &str) -> Count {
        const OUTREACH: &[&str] = &[
            "connect", "message", "inmail", "invite", "follow", "like", "comment", "accept",
            "withdraw", "archive", "mark",
        ];
        let verb = action.split('-').nth(1).unwrap_or("");
        if OUTREACH.contains(&verb) {
            Count::Outreach
        } else if verb == "visit" || action == "linkedin-extract-people" {
            Count::Visit
        } else {
            Count::Read
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Count::Outreach => "outreach",
            Count::Visit => "visits",
            Count::Read => "reads",
        }
    }
}

/// The identity lanes a live request of `action` with `body` goes through, in a fixed order:
/// `identity:UID` for each of its `identity_ids`, else `workspace` (the identity the API picks
/// for `auto`); none for `managed` (the vendor's pool) and for actions without identities.
pub fn lanes(action: &str, body: &Value) -> Vec<String> {
    let takes = v4().action(action).map_or(
        body.get("identity_mode").is_some() || body.get("identity_ids").is_some(),
        Action::takes_identities,
    );
    if !takes || body.get("identity_mode").and_then(Value::as_str) == Some("managed") {
        return Vec::new();
    }
    let mut ids: Vec<String> = body
        .get("identity_ids")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|id| format!("identity:{id}"))
        .collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        ids.push("workspace".into());
    }
    ids
}

/// What identifies a result item, for "new since the last run": the action's identity field
/// (`identity.toml`) when the item has it, else `uid` (v1 endpoints), else the item itself. The
/// identity is the text `k:<value>`, or `h:<hash of the item's JSON>`; the key is the hash of
/// that text, which is what the job's seen-record keeps (schema 10 hashed the texts it kept).
/// `text` is the item as stored.
pub fn item_key(action: &str, item: &Value, text: &str) -> u64 {
    static FIELDS: OnceLock<toml::Table> = OnceLock::new();
    let fields = FIELDS.get_or_init(|| toml::from_str(IDENTITY).expect("identity.toml parses"));
    let field = fields.get(action).and_then(toml::Value::as_str);
    let value = field
        .and_then(|f| item.get(f))
        .or_else(|| item.get("uid"))
        .filter(|v| !v.is_null() && v.as_str() != Some(""));
    let k = Fnv::new().write(b"k:");
    match value {
        Some(Value::String(s)) => k.write(s.as_bytes()).finish(),
        Some(v) => k.write(v.to_string().as_bytes()).finish(),
        None => {
            let h = Fnv::new().write(text.as_bytes()).hex();
            Fnv::new().write(b"h:").write(h.as_bytes()).finish()
        }
    }
}

/// [`item_key`] of each item, `texts` being the same items as stored.
pub fn item_keys(action: &str, items: &[Value], texts: &[String]) -> Vec<u64> {
    items
        .iter()
        .zip(texts)
        .map(|(item, text)| item_key(action, item, text))
        .collect()
}

/// A job for `action` that the catalog accepts, as TOML lines (`name` and `cron` left to the
/// caller): the example input and required parameters, and `identity_mode = "auto"` when the
/// action takes an identity mode in `mode`.
pub fn example_job(action: &str, mode: ModeName) -> Option<String> {
    static PARSED: OnceLock<toml::Table> = OnceLock::new();
    let all = PARSED.get_or_init(|| toml::from_str(EXAMPLES).expect("examples.toml parses"));
    let example = all.get(action)?.as_table()?;
    let body = v4().action(action)?.mode(mode)?;
    let mut out = format!("action = \"{action}\"\n");
    for key in ["input", "parameters"] {
        if let Some(v) = example.get(key) {
            let _ = writeln!(out, "{key} = {v}");
        }
    }
    if body.takes("identity_mode") {
        out.push_str("identity_mode = \"auto\"\n");
    }
    Some(out)
}

/// Every example input of `examples.toml`, by action: values that satisfy the actions' input
/// patterns (the catalog's tests hold them to the schema).
pub fn example_inputs() -> impl Iterator<Item = (&'static str, &'static toml::Table)> {
    static PARSED: OnceLock<toml::Table> = OnceLock::new();
    PARSED
        .get_or_init(|| toml::from_str(EXAMPLES).expect("examples.toml parses"))
        .iter()
        .filter_map(|(action, v)| Some((action.as_str(), v.get("input")?.as_table()?)))
}

/// A live body as the action accepts it: keys the action does not take, `null`s, and empty
/// `input`/`parameters` it does not require are left out. Runs stored before the catalog was
/// enforced carried `identity_mode`, `identity_ids: null`, `parameters: {}` and `input: {}`
/// whatever the action; they are sent cleaned the same way.
pub fn clean_live_body(action: &str, body: &Value) -> Value {
    let Some(obj) = body.as_object() else {
        return body.clone();
    };
    let mode = v4().action(action).and_then(|a| a.modes.live.as_ref());
    let mut out = serde_json::Map::new();
    for (k, v) in obj {
        let empty = v.is_null() || v.as_object().is_some_and(serde_json::Map::is_empty);
        match mode {
            Some(m) if !m.takes(k) => continue,
            Some(m) if empty && !m.required.iter().any(|r| r == k) => continue,
            None if v.is_null() => continue,
            _ => {}
        }
        out.insert(k.clone(), v.clone());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
