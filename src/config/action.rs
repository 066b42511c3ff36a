//! A job held to the action catalog: what it asks (`input`, `parameters`, identity keys) is
//! checked against the schema of the mode it runs in (live for local jobs, schedule for remote
//! ones). Keys written in the job are checked; keys inherited from `[defaults]` that the action
//! does not take are dropped. The result is exactly what the request body will carry.

use std::ops::Range;

use serde_json::Value;

use super::job::JobFields;
use super::read::Diags;
use super::{CatalogMode, IdentityMode};
use crate::catalog::{self, Action, Mode, ModeName, schema};

/// What a job sends: only the keys it set that its action takes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request {
    pub input: Option<Json>,
    /// A list of two or more inputs (a list of one is `input`).
    pub inputs: Option<Vec<Json>>,
    /// `inputs_file`, resolved against the job file's directory; read by each run.
    pub inputs_file: Option<String>,
    /// `inputs_from`: each run's inputs are the source job's new items, mapped.
    pub inputs_from: Option<super::InputsFrom>,
    pub parameters: Option<Json>,
    pub identity_mode: Option<IdentityMode>,
    pub identity_ids: Option<Vec<String>>,
    /// A v1 job: the endpoint's path template, its query and its placeholders' values.
    pub endpoint: Option<String>,
    pub query: Option<Json>,
    pub path: Option<Json>,
}

/// A JSON value kept as its compact text: a parsed one-key object costs a 640-byte tree node,
/// and a daemon holds every job's request for as long as it runs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Json(Box<str>);

impl Json {
    /// The value (parsed again: requests are built once per run, not per tick).
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.0).expect("written from a value")
    }
}

impl From<Value> for Json {
    fn from(v: Value) -> Json {
        Json(v.to_string().into_boxed_str())
    }
}

/// A key's value with where it came from.
struct Asked<'a, T> {
    value: T,
    /// Written in the job itself (checked), not inherited from `[defaults]` (dropped if unfit).
    own: bool,
    from: &'a JobFields,
}

fn pick<'a, T: Clone>(
    own: &'a JobFields,
    def: &'a JobFields,
    get: impl Fn(&JobFields) -> Option<&T>,
) -> Option<Asked<'a, T>> {
    if let Some(v) = get(own) {
        return Some(Asked {
            value: v.clone(),
            own: true,
            from: own,
        });
    }
    get(def).map(|v| Asked {
        value: v.clone(),
        own: false,
        from: def,
    })
}

/// What is wrong with one input of `act` read outside the job file (an inputs file, or a run
/// reading it), each problem with the key it concerns (`None`: the input as a whole).
pub fn input_problems(
    act: &Action,
    input: &serde_json::Map<String, Value>,
) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    for (k, v) in input {
        if k == "custom_data" && v.get("watchbell").is_some() {
            out.push((
                Some(k.clone()),
                "custom_data.watchbell is watchbell's own key".into(),
            ));
        }
        match act.input_property(k) {
            Some((_, schema)) => out.extend(
                schema::check(schema, v, k)
                    .into_iter()
                    .map(|p| (Some(k.clone()), format!("{}: {}", p.path, p.message))),
            ),
            None => out.push((Some(k.clone()), format!("unknown key {k:?}"))),
        }
    }
    if act.matching_alternative(input).is_none() {
        out.push((None, format!("needs {}", act.describe_alternatives())));
    }
    out
}

/// A remote schedule carries its inputs: a checked inputs file's rows (at most 100) become
/// the request's `inputs`, or its one input (returned) when there is one row, as `inputs =
/// [X]` is `input = X`.
fn schedule_rows(
    file: Option<String>,
    act: &Action,
    inputs: &mut Option<Vec<Json>>,
) -> Option<Value> {
    let mut rows = file_rows(std::path::Path::new(&file?), act);
    if rows.len() == 1 {
        return rows.pop();
    }
    *inputs = Some(rows.into_iter().map(Json::from).collect());
    None
}

/// The inputs of a checked inputs file, `custom_data` included.
fn file_rows(path: &std::path::Path, act: &Action) -> Vec<Value> {
    let mut rows = Vec::new();
    let _ = super::inputs_file::read(path, &|k| act.input_property(k).is_some(), &mut |row| {
        if let Ok(r) = row {
            rows.push(Value::Object(r.input));
        }
        true
    });
    rows
}

/// The most problems of one inputs file `check` lists.
const MAX_FILE_PROBLEMS: usize = 20;

/// The most inputs a remote schedule takes (the schedule schema's bound).
const MAX_SCHEDULE_INPUTS: usize = 100;

/// The checks of one job; `here` is the job's entry (for what is missing).
pub(super) struct Holder<'d, 's> {
    pub d: &'d mut Diags<'s>,
    pub catalog: CatalogMode,
    pub here: Range<usize>,
    /// The closest action, while the job is held to it in place of an unknown one.
    pub meant: Option<String>,
}

impl Holder<'_, '_> {
    /// Holds the job's request to `action` in `mode`; `None` when an error was recorded.
    pub fn request(
        &mut self,
        action: &str,
        mode: ModeName,
        own: &JobFields,
        def: &JobFields,
    ) -> Option<Request> {
        let written = Request {
            input: pick(own, def, |f| f.input.as_ref()).map(|a| a.value.into()),
            inputs: pick(own, def, |f| f.inputs.as_ref())
                .map(|a| a.value.into_iter().map(Json::from).collect()),
            inputs_file: pick(own, def, |f| f.inputs_file.as_ref())
                .map(|a| self.d.dir.join(&a.value).to_string_lossy().into_owned()),
            parameters: pick(own, def, |f| f.parameters.as_ref()).map(|a| a.value.into()),
            identity_mode: pick(own, def, |f| f.identity_mode.as_ref()).map(|a| a.value),
            identity_ids: pick(own, def, |f| f.identity_ids.as_ref()).map(|a| a.value),
            ..Request::default()
        };
        let Some(act) = catalog::v4().action(action) else {
            let span = own.span("action").or(def.span("action"));
            let hint = catalog::v4()
                .closest(action)
                .map(|c| format!("; did you mean {c:?}?"))
                .unwrap_or_default();
            self.report(
                span,
                format!("action: {action:?} is not in the action catalog{hint} (`watchbell actions` lists them)"),
            );
            if self.catalog == CatalogMode::Warn {
                return Some(written);
            }
            // The rest of the job, held to the action it most likely meant: its other
            // mistakes show now, not after the name is fixed.
            if let Some(meant) = catalog::v4().closest(action) {
                self.meant = Some(meant.to_string());
                let _ = self.request(meant, mode, own, def);
                self.meant = None;
            }
            return None;
        };
        let Some(m) = act.mode(mode) else {
            let span = own.span("action").or(def.span("action"));
            self.error(
                span,
                format!("action: {action} has no {} mode", mode.as_str()),
            );
            return None;
        };
        let before = self.d.error_count();
        let chained = self.inputs_from(mode, own);
        let mut file = pick(own, def, |f| f.inputs_file.as_ref());
        let (one, list) = self.one_or_list(own, def);
        if let Some(from) = chained {
            let request = Request {
                inputs_from: Some(from),
                ..self.settings(action, m, own, def)
            };
            return (self.d.error_count() == before).then_some(request);
        }
        let written =
            one.as_ref().is_some_and(|(a, _)| a.own) || list.as_ref().is_some_and(|l| l.own);
        let (one, list) = match &file {
            Some(f) if f.own && written => {
                self.error(
                    f.from.key_span("inputs_file"),
                    "input, inputs and inputs_file: write one of them".into(),
                );
                file = None;
                (one, list)
            }
            // The job's own inputs_file wins over an input inherited from [defaults].
            Some(f) if f.own => (None, None),
            Some(_) if one.is_some() || list.is_some() => {
                file = None;
                (one, list)
            }
            _ => (one, list),
        };
        let file_asked = file.is_some();
        let mut inputs_file = file.and_then(|f| self.inputs_file(act, (mode, m), f));
        let mut inputs = list.map(|list| {
            self.inputs(action, act, (mode, m), list)
                .into_iter()
                .map(Json::from)
                .collect()
        });
        let one_row = if mode == ModeName::Schedule {
            schedule_rows(inputs_file.take(), act, &mut inputs)
        } else {
            None
        };
        let request = Request {
            input: match one {
                _ if one_row.is_some() => one_row,
                Some((a, at)) => self.input(action, act, (mode, m), Some(a), at),
                None if inputs.is_some() || file_asked => None,
                None => self.input(action, act, (mode, m), None, "input"),
            }
            .map(Json::from),
            inputs,
            inputs_file,
            ..self.settings(action, m, own, def)
        };
        self.check_direct(action, m, &request, own, def);
        (self.d.error_count() == before).then_some(request)
    }

    /// An action through an identity in `direct` mode needs identity ids.
    fn check_direct(
        &mut self,
        action: &str,
        m: &Mode,
        request: &Request,
        own: &JobFields,
        def: &JobFields,
    ) {
        if m.takes("identity_mode")
            && request.identity_mode.unwrap_or(IdentityMode::Direct) == IdentityMode::Direct
            && request.identity_ids.as_ref().is_none_or(Vec::is_empty)
        {
            let span = own
                .span("identity_mode")
                .or(def.span("identity_mode"))
                .or(own.span("action"));
            self.error(
                span,
                format!(
                    "{action} acts through a LinkedIn identity and identity_mode = \"direct\" (the API's default) needs identity_ids: use identity_mode = \"auto\" or \"managed\", or list identity_ids"
                ),
            );
        }
    }

    /// What a request carries beside its inputs: parameters and identities.
    fn settings(&mut self, action: &str, m: &Mode, own: &JobFields, def: &JobFields) -> Request {
        Request {
            parameters: self
                .parameters(action, m, pick(own, def, |f| f.parameters.as_ref()))
                .map(Json::from),
            identity_mode: self.identity_mode(action, m, own, def),
            identity_ids: self.identity_ids(action, m, own, def),
            ..Request::default()
        }
    }

    /// The job's `inputs_from`, when it has one and nothing else gives it inputs.
    fn inputs_from(&mut self, mode: ModeName, own: &JobFields) -> Option<super::InputsFrom> {
        let from = own.inputs_from.clone()?;
        let span = own.span("inputs_from");
        if mode == ModeName::Schedule {
            self.error(
                span,
                "inputs_from: not for runner = \"remote\" (a remote schedule sends fixed inputs)"
                    .into(),
            );
            return None;
        }
        if own.input.is_some() || own.inputs.is_some() || own.inputs_file.is_some() {
            self.error(
                span,
                "input, inputs, inputs_file and inputs_from: write one of them".into(),
            );
            return None;
        }
        Some(from)
    }

    /// The job's input: `input`, or `inputs` (a list of one is its one input, written at
    /// `inputs.0`); the rest of a longer list. A job with both is an error.
    #[allow(clippy::type_complexity)] // two answers, each with where it was written
    fn one_or_list<'a>(
        &mut self,
        own: &'a JobFields,
        def: &'a JobFields,
    ) -> (
        Option<(Asked<'a, Value>, &'static str)>,
        Option<Asked<'a, Vec<Value>>>,
    ) {
        let one = pick(own, def, |f| f.input.as_ref());
        let list = pick(own, def, |f| f.inputs.as_ref());
        match (one, list) {
            (Some(one), Some(list)) if one.own == list.own => {
                self.error(
                    list.from.key_span("inputs"),
                    "input and inputs: write one of them".into(),
                );
                (Some((one, "input")), None)
            }
            // The job's own key wins over one inherited from [defaults].
            (Some(one), Some(_)) if one.own => (Some((one, "input")), None),
            (_, Some(list)) if list.value.len() == 1 => {
                let Asked { value, own, from } = list;
                let first = value.into_iter().next().expect("one");
                (
                    Some((
                        Asked {
                            value: first,
                            own,
                            from,
                        },
                        "inputs.0",
                    )),
                    None,
                )
            }
            (_, Some(list)) => (None, Some(list)),
            (one, None) => (one.map(|a| (a, "input")), None),
        }
    }

    /// An inputs file, read row by row and each row held to the schema; its path resolved
    /// against the job file's directory, or `None` after reporting what is wrong as
    /// `FILE:ROW:COL` at the key.
    fn inputs_file(
        &mut self,
        act: &Action,
        (mode, _): (ModeName, &Mode),
        asked: Asked<String>,
    ) -> Option<String> {
        let span = asked.from.span("inputs_file");
        let shown = asked.value;
        let path = self.d.dir.join(&shown);
        let mut found = Vec::new();
        let read =
            super::inputs_file::read(&path, &|k| act.input_property(k).is_some(), &mut |row| {
                match row {
                    Err(p) => found.push(format!("{shown}:{p}")),
                    Ok(r) => found.extend(input_problems(act, &r.input).into_iter().map(
                        |(key, message)| {
                            let col = key.map_or(1, |k| r.column(&k));
                            format!("{shown}:{}:{col}: {message}", r.row)
                        },
                    )),
                }
                found.len() < MAX_FILE_PROBLEMS
            });
        match read {
            Err(p) => found.push(format!("{shown}:{p}")),
            Ok(0) if found.is_empty() => found.push(format!("{shown} has no inputs")),
            Ok(_) if found.len() >= MAX_FILE_PROBLEMS => {
                found.push(format!("{shown}: more problems not shown"));
            }
            Ok(n) if mode == ModeName::Schedule && n > MAX_SCHEDULE_INPUTS as u64 => {
                found.push(format!(
                    "{shown} has {n} rows; a remote schedule takes at most {MAX_SCHEDULE_INPUTS}"
                ));
            }
            Ok(_) => {}
        }
        if !found.is_empty() {
            for f in found {
                self.error(span.clone(), format!("inputs_file: {f}"));
            }
            return None;
        }
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        Some(path.to_string_lossy().into_owned())
    }

    /// Each input of a list held to the action's schema, as the inputs to send.
    fn inputs(
        &mut self,
        action: &str,
        act: &Action,
        mode: (ModeName, &Mode),
        list: Asked<Vec<Value>>,
    ) -> Vec<Value> {
        let Asked { value, own, from } = list;
        if value.is_empty() {
            self.error(
                from.span("inputs"),
                "inputs: an empty list; write at least one input".into(),
            );
        }
        if mode.0 == ModeName::Schedule && value.len() > MAX_SCHEDULE_INPUTS {
            self.error(
                from.span("inputs"),
                format!(
                    "inputs: {} inputs; a remote schedule takes at most {MAX_SCHEDULE_INPUTS}",
                    value.len()
                ),
            );
        }
        let mut out = Vec::with_capacity(value.len());
        for (i, v) in value.into_iter().enumerate() {
            let at = format!("inputs.{i}");
            let asked = Asked {
                value: v,
                own,
                from,
            };
            if let Some(v) = self.input(action, act, mode, Some(asked), &at) {
                out.push(v);
            }
        }
        out
    }

    /// Holds one input to the action's schema; `at` is where the file wrote it: `input`, or
    /// `inputs.N` for the N-th of a list (named `inputs[N]` in messages).
    fn input(
        &mut self,
        action: &str,
        act: &Action,
        (mode, m): (ModeName, &Mode),
        asked: Option<Asked<Value>>,
        at: &str,
    ) -> Option<Value> {
        let name = match at.strip_prefix("inputs.") {
            Some(n) => format!("inputs[{n}]"),
            None => at.to_string(),
        };
        let needed = match mode {
            ModeName::Live => m.required.iter().any(|r| r == "input"),
            ModeName::Async | ModeName::Schedule => true,
        };
        if !act.takes_input() {
            if let Some(a) = asked.filter(|a| a.own) {
                self.error(
                    a.from.span(at),
                    format!("{name}: {action} takes no input; remove it"),
                );
            }
            return None;
        }
        let Some(mut a) = asked else {
            if needed {
                self.error(
                    None,
                    format!(
                        "input is required by {action}: {}",
                        act.describe_alternatives()
                    ),
                );
            }
            return None;
        };
        let Some(obj) = a.value.as_object_mut() else {
            return None; // read as a table already
        };
        let known = act.input_keys();
        let mut unknown = Vec::new();
        for (k, v) in obj.iter() {
            let span = a.from.span(&format!("{at}.{k}")).or(a.from.span(at));
            if k == "custom_data" && v.get("watchbell").is_some() {
                self.error(
                    span.clone(),
                    format!("{name}.custom_data: the key \"watchbell\" is watchbell's own"),
                );
            }
            if let Some((_, schema)) = act.input_property(k) {
                for p in schema::check(schema, v, &format!("{name}.{k}")) {
                    self.error(span.clone(), format!("{}: {}", p.path, p.message));
                }
            } else if !known.iter().any(|n| n == k) {
                unknown.push(k.clone());
                if a.own {
                    let hint = catalog::closest(k, known.iter().map(String::as_str))
                        .map(|c| format!("did you mean {c:?}? "))
                        .unwrap_or_default();
                    self.report(
                        a.from.key_span(&format!("{at}.{k}")).or(span),
                        format!(
                            "{name}: unknown key {k:?} for {action}; {hint}it takes {}",
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        if !a.own || self.catalog == CatalogMode::Strict {
            for k in &unknown {
                obj.remove(k);
            }
        }
        if act.matching_alternative(obj).is_none() {
            self.error(
                a.from.span(at),
                format!("{name}: {action} needs {}", act.describe_alternatives()),
            );
        }
        Some(a.value)
    }

    fn parameters(&mut self, action: &str, m: &Mode, asked: Option<Asked<Value>>) -> Option<Value> {
        let required = &m.parameters_required;
        let Some(mut a) = asked else {
            if let Some(r) = required.first() {
                self.error(None, format!("parameters.{r} is required by {action}"));
            }
            return None;
        };
        if !m.takes_parameters() {
            if a.own {
                self.error(
                    a.from.span("parameters"),
                    format!("parameters: {action} takes no parameters; remove them"),
                );
            }
            return None;
        }
        let obj = a.value.as_object_mut()?;
        let known: Vec<&str> = m
            .parameters
            .iter()
            .flat_map(catalog::Fields::names)
            .collect();
        let mut drop = Vec::new();
        for (k, v) in obj.iter() {
            let span = a
                .from
                .span(&format!("parameters.{k}"))
                .or(a.from.span("parameters"));
            if let Some(schema) = m.parameter(k) {
                for p in schema::check(schema, v, &format!("parameters.{k}")) {
                    self.error(span.clone(), format!("{}: {}", p.path, p.message));
                }
            } else {
                if !a.own || self.catalog == CatalogMode::Strict {
                    drop.push(k.clone());
                }
                if a.own {
                    let hint = catalog::closest(k, known.iter().copied())
                        .map(|c| format!("did you mean {c:?}? "))
                        .unwrap_or_default();
                    self.report(
                        a.from.key_span(&format!("parameters.{k}")).or(span),
                        format!(
                            "parameters: unknown parameter {k:?} for {action}; {hint}it takes {}",
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        for k in drop {
            obj.remove(&k);
        }
        for r in required {
            if !obj.contains_key(r) {
                self.error(
                    a.own.then(|| a.from.span("parameters")).flatten(),
                    format!("parameters.{r} is required by {action}"),
                );
            }
        }
        (a.own || !obj.is_empty()).then_some(a.value)
    }

    fn identity_mode(
        &mut self,
        action: &str,
        m: &Mode,
        own: &JobFields,
        def: &JobFields,
    ) -> Option<IdentityMode> {
        let a = pick(own, def, |f| f.identity_mode.as_ref())?;
        if m.takes("identity_mode") {
            return Some(a.value);
        }
        if a.own {
            let why = if m.takes("identity_ids") {
                "takes identity_ids only"
            } else {
                "acts through no identity"
            };
            self.error(
                own.span("identity_mode"),
                format!("identity_mode: {action} {why}; remove it"),
            );
        }
        None
    }

    fn identity_ids(
        &mut self,
        action: &str,
        m: &Mode,
        own: &JobFields,
        def: &JobFields,
    ) -> Option<Vec<String>> {
        let a = pick(own, def, |f| f.identity_ids.as_ref())?;
        if m.takes("identity_ids") {
            return Some(a.value);
        }
        if a.own {
            self.error(
                own.span("identity_ids"),
                format!("identity_ids: {action} acts through no identity; remove them"),
            );
        }
        None
    }

    fn error(&mut self, span: Option<Range<usize>>, message: String) {
        let span = span.unwrap_or_else(|| self.here.clone());
        let message = self.as_meant(message);
        self.d.at(&span, message);
    }

    /// `message`, said of the action the job most likely meant when it named an unknown one.
    fn as_meant(&self, message: String) -> String {
        match &self.meant {
            Some(action) => format!("if you meant {action}: {message}"),
            None => message,
        }
    }

    /// An error, or a warning under `[api] catalog = "warn"` (actions newer than the catalog).
    fn report(&mut self, span: Option<Range<usize>>, message: String) {
        let span = span.unwrap_or_else(|| self.here.clone());
        let message = self.as_meant(message);
        match self.catalog {
            CatalogMode::Strict => self.d.at(&span, message),
            CatalogMode::Warn => self.d.warn(&span, message),
        }
    }
}

/// The body of a live run: exactly the keys the job's request has. A v1 job's run keeps its
/// endpoint, query and path here (the request itself is a GET built from them).
pub fn live_body(r: &Request) -> Value {
    serde_json::from_str(&live_body_text(r)).expect("written as JSON")
}

/// [`live_body`] as compact JSON text, written from the request's texts without parsing them:
/// a tick that fires builds one, and parsing each part to serialize it again was most of the
/// cost of deciding a batch. Keys in sorted order, as a parsed map prints them.
pub fn live_body_text(r: &Request) -> String {
    let mut out = String::from("{");
    let mut field = |key: &str, value: &str| {
        if out.len() > 1 {
            out.push(',');
        }
        out.push('"');
        out.push_str(key);
        out.push_str("\":");
        out.push_str(value);
    };
    let quoted = |s: &str| Value::from(s).to_string();
    if let Some(e) = &r.endpoint {
        field("endpoint", &quoted(e.as_str()));
    }
    if let Some(ids) = &r.identity_ids {
        field("identity_ids", &Value::from(ids.clone()).to_string());
    }
    if let Some(m) = r.identity_mode {
        field("identity_mode", &quoted(m.as_str()));
    }
    if let Some(i) = &r.input {
        field("input", &i.0);
    }
    if let Some(list) = &r.inputs {
        let texts: Vec<&str> = list.iter().map(|j| &*j.0).collect();
        field("inputs", &format!("[{}]", texts.join(",")));
    }
    if let Some(file) = &r.inputs_file {
        field("inputs_file", &quoted(file));
    }
    if let Some(from) = &r.inputs_from {
        let map: serde_json::Map<String, Value> = from
            .map
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        let v = serde_json::json!({"job": from.job, "map": map, "backlog": from.backlog});
        field("inputs_from", &v.to_string());
    }
    if let Some(p) = &r.parameters {
        field("parameters", &p.0);
    }
    if r.endpoint.is_some() {
        if let Some(p) = &r.path {
            field("path", &p.0);
        }
        field("query", r.query.as_ref().map_or("null", |q| &q.0));
    }
    out.push('}');
    out
}

#[cfg(test)]
#[path = "action_tests.rs"]
mod tests;
