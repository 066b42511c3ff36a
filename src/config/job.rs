//! One `[[job]]` (or `[defaults]`): every key read into an optional field, then merged over
//! `[defaults]` and the built-in defaults, with the checks that need the merged job.

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use chrono_tz::Tz;
use toml::de::DeValue;

use super::action::Holder;
use super::alerts::{self, Notify, Retry, Webhook};
use super::read::{self, Diags, Section, Value};
use super::{CatalogMode, IdentityMode, Job, Overlap, Runner, url};
use crate::catalog::{Count, ModeName};
use crate::schedule::{CronExpr, Fold, Gap, Schedule};

/// `inputs = [ { KEY = "..." }, ... ]`: each a table, read as JSON.
fn read_inputs(d: &mut Diags, v: &Value) -> Option<Vec<serde_json::Value>> {
    let DeValue::Array(list) = v.get_ref() else {
        d.at(
            &v.span(),
            "inputs: expected a list of tables, e.g. [ { key = \"value\" } ]",
        );
        return None;
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        if matches!(item.get_ref(), DeValue::Table(_)) {
            out.push(read::json(d, item, &format!("inputs[{i}]"))?);
        } else {
            d.at(&item.span(), format!("inputs[{i}]: expected a table"));
            return None;
        }
    }
    Some(out)
}

/// The longest spread `jitter` may ask for.
const MAX_JITTER: Duration = Duration::from_hours(366 * 24);

/// The job keys, each optional: read from `[defaults]` and from each `[[job]]`, then merged.
#[derive(Clone, Default)]
pub(super) struct JobFields {
    name: Option<(String, Range<usize>)>,
    cron: Option<CronExpr>,
    timezone: Option<Tz>,
    action: Option<String>,
    endpoint: Option<String>,
    pub(super) query: Option<serde_json::Value>,
    pub(super) path: Option<serde_json::Value>,
    pub(super) input: Option<serde_json::Value>,
    pub(super) inputs: Option<Vec<serde_json::Value>>,
    pub(super) inputs_file: Option<String>,
    pub(super) inputs_from: Option<super::InputsFrom>,
    after: Option<String>,
    input_concurrency: Option<u32>,
    pub(super) parameters: Option<serde_json::Value>,
    pub(super) identity_mode: Option<IdentityMode>,
    pub(super) identity_ids: Option<Vec<String>>,
    enabled: Option<bool>,
    gap: Option<Gap>,
    fold: Option<Fold>,
    jitter: Option<Duration>,
    webhook: Option<Webhook>,
    notify: Option<Notify>,
    ping: Option<reqwest::Url>,
    retry: Option<Retry>,
    runner: Option<Runner>,
    receive: Option<bool>,
    remote_schedule: Option<String>,
    overlap: Option<Overlap>,
    catchup: Option<Duration>,
    max_pages: Option<u32>,
    run_timeout: Option<Duration>,
    resume_interrupted: Option<bool>,
    /// Where keys' values were written: `action`, `input`, `input.KEY`, `parameters.KEY`, ...
    spans: HashMap<String, Range<usize>>,
    /// Where the keys themselves were written (an unknown key is pointed at, not its value).
    key_spans: HashMap<String, Range<usize>>,
}

const JOB_KEYS: &[&str] = &[
    "name",
    "cron",
    "timezone",
    "action",
    "endpoint",
    "query",
    "path",
    "input",
    "inputs",
    "inputs_file",
    "inputs_from",
    "after",
    "input_concurrency",
    "parameters",
    "identity_mode",
    "identity_ids",
    "enabled",
    "dst",
    "jitter",
    "webhook",
    "notify",
    "ping",
    "retry",
    "runner",
    "receive",
    "remote_schedule",
    "overlap",
    "catchup",
    "max_pages",
    "run_timeout",
    "resume_interrupted",
];

impl JobFields {
    pub(super) fn read(d: &mut Diags, s: &Section) -> JobFields {
        s.only(d, JOB_KEYS);
        let mut f = JobFields::default();
        for (key, v) in s.table {
            f.read_key(d, key.get_ref(), v, &s.name);
            f.spans.insert(key.get_ref().to_string(), v.span());
            f.key_spans.insert(key.get_ref().to_string(), key.span());
            let mut tables = Vec::new();
            match (key.get_ref().as_ref(), v.get_ref()) {
                ("input" | "parameters" | "query" | "path", DeValue::Table(t)) => {
                    tables.push((key.get_ref().to_string(), t));
                }
                ("inputs", DeValue::Array(list)) => {
                    for (i, item) in list.iter().enumerate() {
                        f.spans.insert(format!("inputs.{i}"), item.span());
                        if let DeValue::Table(t) = item.get_ref() {
                            tables.push((format!("inputs.{i}"), t));
                        }
                    }
                }
                _ => {}
            }
            for (at, t) in tables {
                for (k, inner) in t {
                    let path = format!("{at}.{}", k.get_ref());
                    f.key_spans.insert(path.clone(), k.span());
                    f.spans.insert(path, inner.span());
                }
            }
        }
        f
    }

    /// The zone set here, if any (`[defaults] timezone` also sets the day of the daily caps).
    pub(super) fn timezone(&self) -> Option<Tz> {
        self.timezone
    }

    /// Where `key` (or `input.KEY`, `parameters.KEY`) was written.
    pub(super) fn span(&self, key: &str) -> Option<Range<usize>> {
        self.spans.get(key).cloned()
    }

    /// Where the key `key` (or `input.KEY`, ...) itself was written.
    pub(super) fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.key_spans.get(key).cloned()
    }

    /// The keys of what the request carries: input (one, a list or a file), parameters, a v1
    /// query and path.
    fn read_request_key(&mut self, d: &mut Diags, key: &str, v: &Value) {
        match key {
            "input" | "parameters" | "query" | "path" => {
                let value = if matches!(v.get_ref(), DeValue::Table(_)) {
                    read::json(d, v, key)
                } else {
                    d.at(
                        &v.span(),
                        format!("{key}: expected a table, e.g. {{ key = \"value\" }}"),
                    );
                    None
                };
                match key {
                    "input" => self.input = value,
                    "parameters" => self.parameters = value,
                    "query" => self.query = value,
                    _ => self.path = value,
                }
            }
            "inputs" => self.inputs = read_inputs(d, v),
            "inputs_file" => self.inputs_file = read::string(d, v, key),
            _ => {}
        }
    }

    fn read_key(&mut self, d: &mut Diags, key: &str, v: &Value, section: &str) {
        match key {
            "name" => self.name = read::string(d, v, key).and_then(|n| valid_name(d, v, n)),
            "cron" => {
                self.cron = read::string(d, v, key).and_then(|c| match CronExpr::parse(&c) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        d.at(&v.span(), format!("cron: invalid expression {c:?}: {e}"));
                        None
                    }
                });
            }
            "timezone" => {
                self.timezone = read::string(d, v, key).and_then(|z| {
                    if let Ok(tz) = z.parse::<Tz>() {
                        Some(tz)
                    } else {
                        d.at(
                            &v.span(),
                            format!("timezone: unknown IANA zone {z:?} (e.g. \"Europe/Paris\")"),
                        );
                        None
                    }
                });
            }
            "action" => self.action = read::string(d, v, key).and_then(|a| valid_action(d, v, a)),
            "endpoint" => {
                self.endpoint = read::string(d, v, key).and_then(|e| valid_endpoint(d, v, e));
            }
            "input" | "parameters" | "query" | "path" | "inputs" | "inputs_file" => {
                self.read_request_key(d, key, v);
            }
            "inputs_from" => self.inputs_from = super::InputsFrom::read(d, v),
            "after" => self.after = read::string(d, v, key),
            "input_concurrency" => {
                self.input_concurrency = read::integer(d, v, key, 1, 64).map(|n| n as u32);
            }
            "identity_mode" => {
                let modes = [
                    ("direct", IdentityMode::Direct),
                    ("auto", IdentityMode::Auto),
                    ("managed", IdentityMode::Managed),
                ];
                self.identity_mode = read::choice(d, v, key, &modes);
            }
            "identity_ids" => self.identity_ids = read::string_list(d, v, key),
            "enabled" => self.enabled = read::boolean(d, v, key),
            "resume_interrupted" => self.resume_interrupted = read::boolean(d, v, key),
            "dst" => {
                if let Some(t) = read::table(d, v, key, format!("dst of {section}")) {
                    t.only(d, &["gap", "fold"]);
                    let gaps = [("shift", Gap::Shift), ("skip", Gap::Skip)];
                    let folds = [
                        ("first", Fold::First),
                        ("last", Fold::Last),
                        ("both", Fold::Both),
                    ];
                    self.gap = t
                        .get("gap")
                        .and_then(|v| read::choice(d, v, "dst.gap", &gaps));
                    self.fold = t
                        .get("fold")
                        .and_then(|v| read::choice(d, v, "dst.fold", &folds));
                }
            }
            "jitter" => self.jitter = read::duration(d, v, key),
            "catchup" => self.catchup = read::duration(d, v, key),
            "run_timeout" => self.run_timeout = read::positive_duration(d, v, key),
            "max_pages" => {
                self.max_pages = read::integer(d, v, key, 1, 1_000_000).map(|n| n as u32);
            }
            "webhook" => self.webhook = alerts::webhook(d, v, section),
            "notify" => self.notify = alerts::notify(d, v, section),
            "ping" => self.ping = url(d, v, "ping"),
            "retry" => self.retry = alerts::retry(d, v, section),
            "runner" => {
                let runners = [
                    ("local", Runner::Local),
                    ("async", Runner::Async),
                    ("remote", Runner::Remote),
                ];
                self.runner = read::choice(d, v, key, &runners);
            }
            "remote_schedule" => self.remote_schedule = read::string(d, v, key),
            "receive" => self.receive = read::boolean(d, v, key),
            "overlap" => {
                let policies = [
                    ("skip", Overlap::Skip),
                    ("queue", Overlap::Queue),
                    ("allow", Overlap::Allow),
                    ("replace", Overlap::Replace),
                ];
                self.overlap = read::choice(d, v, key, &policies);
            }
            _ => {} // reported by `only`
        }
    }
}

/// What the head of the file tells a job's checks.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ctx {
    pub catalog: CatalogMode,
    /// The file has a `[receiver]` (or one with errors, reported already).
    pub receiver: bool,
    /// `[safety]` daily caps: outreach, visits (an async list longer is refused).
    pub caps: (u32, u32),
}

/// What Captain Data's own scheduler needs of a remote job: somewhere for the results (its
/// webhook, or watchbell's receiver), and a plain POSIX cron.
fn check_remote(
    d: &mut Diags,
    at: &Range<usize>,
    cron_at: &Range<usize>,
    endpoint: bool,
    webhook: bool,
    cron: Option<&CronExpr>,
) {
    if endpoint {
        d.at(
            at,
            "runner = \"remote\": v1 endpoints have no schedule mode; a v1 job runs locally",
        );
        return;
    }
    if !webhook {
        d.at(
            at,
            "runner = \"remote\" needs a webhook (Captain Data delivers the results there) or receive = true (they come back through [receiver])",
        );
    }
    if let Some(Err(why)) = cron.map(CronExpr::plain_posix) {
        d.at(
            cron_at,
            format!("runner = \"remote\" needs a plain 5-field POSIX cron for Captain Data's scheduler: {why}"),
        );
    }
}

/// An outreach job (invitations, messages, ...) acts as a person: firing it more than hourly, or
/// letting runs overlap, is how LinkedIn accounts get restricted.
fn warn_outreach(d: &mut Diags, here: &Range<usize>, action: &str, s: &Schedule, overlap: Overlap) {
    if Count::of(action) != Count::Outreach {
        return;
    }
    if let Some(gap) = s.shortest_gap().filter(|g| *g < Duration::from_hours(1)) {
        d.warn(
            here,
            format!(
                "{action} writes on LinkedIn as the person, and this job fires every {}: an outreach job should fire at most hourly (the daily cap stops it, but the pattern is what gets accounts restricted)",
                humantime::format_duration(gap)
            ),
        );
    }
    if overlap == Overlap::Allow {
        d.warn(
            here,
            format!("{action} writes on LinkedIn as the person: overlap = \"allow\" lets its runs act at once; prefer \"skip\""),
        );
    }
}

/// A jitter shorter than a year and than the job's period (or its ticks overtake each other).
fn check_jitter(d: &mut Diags, span: &Range<usize>, jitter: Duration, s: &Schedule) -> Option<()> {
    if jitter > MAX_JITTER {
        d.at(span, "jitter: at most a year");
        return None;
    }
    if let Some(period) = s.shortest_gap().filter(|p| jitter >= *p) {
        d.at(
            span,
            format!(
                "jitter: {} is not shorter than the job's period ({} between fires): ticks would overtake each other",
                humantime::format_duration(jitter),
                humantime::format_duration(period)
            ),
        );
        return None;
    }
    Some(())
}

fn valid_name(d: &mut Diags, v: &Value, name: String) -> Option<(String, Range<usize>)> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Some((name, v.span()))
    } else {
        d.at(
            &v.span(),
            format!("name: {name:?} must be 1 to 64 characters of a-z, 0-9, '-' and '_'"),
        );
        None
    }
}

fn valid_endpoint(d: &mut Diags, v: &Value, endpoint: String) -> Option<String> {
    if endpoint.starts_with('/') {
        Some(endpoint)
    } else {
        d.at(
            &v.span(),
            format!("endpoint: {endpoint:?} is a path such as \"/people/search\""),
        );
        None
    }
}

fn valid_action(d: &mut Diags, v: &Value, action: String) -> Option<String> {
    let ok = !action.is_empty()
        && action
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Some(action)
    } else {
        d.at(
            &v.span(),
            format!("action: {action:?} is not an action name (letters, digits, '-', '_')"),
        );
        None
    }
}

/// The `[[job]]` entries of `v`, appended to `jobs`; `seen` holds the names met so far (with
/// their lines), across calls.
pub(super) fn read_jobs(
    d: &mut Diags,
    v: Option<&Value>,
    defaults: &JobFields,
    ctx: Ctx,
    (jobs, seen): (&mut Vec<Job>, &mut HashMap<String, usize>),
) {
    let Some(v) = v else { return };
    let DeValue::Array(entries) = v.get_ref() else {
        d.at(&v.span(), "job: expected [[job]] entries");
        return;
    };
    let mut written = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let Some(s) = read::table(d, entry, "job", format!("job #{}", i + 1)) else {
            continue;
        };
        let fields = JobFields::read(d, &s);
        if let Some((name, _)) = &fields.name
            && (fields.inputs_from.is_some() || fields.after.is_some())
        {
            written.push(super::chain::Written {
                job: name.clone(),
                inputs_from: fields.inputs_from.as_ref().and(fields.span("inputs_from")),
                after: fields.after.clone().zip(fields.span("after")),
            });
        }
        if let Some((name, span)) = &fields.name {
            if let Some(line) = seen.get(name) {
                d.at(
                    span,
                    format!("duplicate job name {name:?} (first defined on line {line})"),
                );
            } else {
                seen.insert(name.clone(), d.line_of(span.start));
            }
        }
        if let Some(job) = merge(d, &s, entry, &fields, defaults, ctx) {
            jobs.push(job);
        }
    }
    super::chain::check(d, jobs, &written);
}

/// The job's own value, else the one from `[defaults]`.
fn either<T: Clone>(own: Option<&T>, def: Option<&T>) -> Option<T> {
    own.or(def).cloned()
}

/// The job's v1 endpoint if it has one, and what its runs record as their action (the endpoint's
/// template for a v1 job). The job's own `endpoint` or `action` decides which generation it
/// speaks; `[defaults]` only fills in when the job names neither.
fn generation(d: &mut Diags, f: &JobFields, def: &JobFields) -> (Option<String>, Option<String>) {
    let endpoint = match (&f.endpoint, &f.action) {
        (Some(e), _) => Some(e.clone()),
        (None, Some(_)) => None,
        (None, None) => def.endpoint.clone().filter(|_| def.action.is_none()),
    };
    let action = match &endpoint {
        Some(e) => Some(e.clone()),
        None => f.action.clone().or_else(|| def.action.clone()),
    };
    if endpoint.is_none() {
        for key in ["query", "path"] {
            if let Some(span) = f.span(key) {
                d.at(&span, format!("{key}: only a job with endpoint (v1) takes {key}; an action job takes input and parameters"));
            }
        }
    }
    (endpoint, action)
}

/// The job's schedule from its cron (`Ok(None)`: none, fired only `after` another), with the
/// checks that need it; `Err` when it is in error (reported).
fn schedule(
    d: &mut Diags,
    (f, def): (&JobFields, &JobFields),
    here: &Range<usize>,
    (name, cron, has_cron): (&str, Option<CronExpr>, bool),
    action: Option<&str>,
) -> Result<Option<Schedule>, ()> {
    let tz = f.timezone.or(def.timezone).unwrap_or(Tz::UTC);
    let jitter = f.jitter.or(def.jitter).unwrap_or_default();
    let schedule = match cron {
        Some(cron) => Schedule::new(
            name,
            cron,
            tz,
            f.gap.or(def.gap).unwrap_or_default(),
            f.fold.or(def.fold).unwrap_or_default(),
            jitter,
        ),
        None if f.after.is_some() && !has_cron => return Ok(None),
        None => return Err(()),
    };
    if !jitter.is_zero() {
        let span = f
            .span("jitter")
            .or(def.span("jitter"))
            .unwrap_or(here.clone());
        check_jitter(d, &span, jitter, &schedule).ok_or(())?;
    }
    let overlap = f.overlap.or(def.overlap).unwrap_or(Overlap::Skip);
    if let Some(a) = action {
        warn_outreach(d, here, a, &schedule, overlap);
    }
    Ok(Some(schedule))
}

/// What a job's runner asks of the rest of it; its `receive` and `overlap`.
fn runner_keys(
    d: &mut Diags,
    (s, f, def, here): (&Section, &JobFields, &JobFields, &Range<usize>),
    runner: Runner,
    (endpoint, webhook, cron): (bool, bool, Option<&CronExpr>),
    ctx: Ctx,
) -> (bool, Overlap) {
    let receive = f.receive.or(def.receive).unwrap_or(false);
    let overlap = f.overlap.or(def.overlap).unwrap_or(Overlap::Skip);
    let at = s.get("runner").map_or(here.clone(), toml::Spanned::span);
    if runner == Runner::Remote {
        let cron_at = f.span("cron").or(def.span("cron")).unwrap_or(at.clone());
        check_remote(d, &at, &cron_at, endpoint, webhook || receive, cron);
    }
    check_receiving(d, (f, &at), (runner, receive, overlap), endpoint, ctx);
    (receive, overlap)
}

/// Async jobs and received remote jobs need `[receiver]`; an async run is the vendor's once sent,
/// so it cannot be replaced, and v1 endpoints have no async mode.
fn check_receiving(
    d: &mut Diags,
    (f, at): (&JobFields, &Range<usize>),
    (runner, receive, overlap): (Runner, bool, Overlap),
    endpoint: bool,
    ctx: Ctx,
) {
    if runner == Runner::Async {
        if !ctx.receiver {
            d.at(
                at,
                "runner = \"async\" needs [receiver]: the results come back as callbacks",
            );
        }
        if endpoint {
            d.at(
                at,
                "runner = \"async\": v1 endpoints have no async mode; a v1 job runs locally",
            );
        }
        if overlap == Overlap::Replace {
            let span = f.span("overlap").unwrap_or(at.clone());
            d.at(
                &span,
                "overlap = \"replace\": not for runner = \"async\" (a sent async run belongs to the vendor and cannot be stopped from here); use skip, queue or allow",
            );
        }
    }
    if receive && let Some(span) = f.span("receive") {
        if runner != Runner::Remote {
            d.at(
                &span,
                "receive: only for runner = \"remote\" (async runs always come back through [receiver])",
            );
        } else if !ctx.receiver {
            d.at(
                &span,
                "receive = true needs [receiver]: the schedule's callbacks come back there",
            );
        }
    }
}

/// An async list through identities is sent whole in one create: each input counts against
/// the daily cap, so a list longer than the cap could never be sent.
fn check_async_caps(
    d: &mut Diags,
    f: &JobFields,
    action: Option<&str>,
    r: &super::Request,
    (outreach, visits): (u32, u32),
) {
    let Some(action) = action else { return };
    let through = crate::catalog::v4()
        .action(action)
        .is_some_and(crate::catalog::Action::takes_identities);
    let cap = match Count::of(action) {
        Count::Outreach => outreach,
        Count::Visit => visits,
        Count::Read => return,
    };
    let n = r.inputs.as_ref().map_or(0, Vec::len);
    if through && n > cap as usize {
        let span = f.span("inputs").unwrap_or_default();
        d.at(
            &span,
            format!(
                "inputs: {n} inputs, but {action} counts against the daily cap of {cap} per identity ([safety] daily_cap); an async run over more could never be sent whole"
            ),
        );
    }
}

/// `inputs_from` is for v4 actions, `after` for local jobs, `input_concurrency` above 1 for
/// actions through no identity (one request at a time is an identity's rule).
fn check_chain_keys(d: &mut Diags, f: &JobFields, endpoint: bool, runner: Runner) {
    if let (Some(n), Some(span)) = (f.input_concurrency, f.span("input_concurrency"))
        && n > 1
        && let Some(name) = f.action.as_deref()
        && crate::catalog::v4()
            .action(name)
            .is_some_and(crate::catalog::Action::takes_identities)
    {
        d.at(
            &span,
            format!(
                "input_concurrency: {name} acts through a LinkedIn identity, whose requests go one at a time; leave it at 1"
            ),
        );
    }
    if let (true, Some(span)) = (endpoint, f.span("inputs_from")) {
        d.at(
            &span,
            "inputs_from: for v4 actions only; a v1 endpoint job takes query and path",
        );
    }
    if let (Runner::Remote, Some(span)) = (runner, f.span("after")) {
        d.at(
            &span,
            "after: not for runner = \"remote\" (the vendor fires remote schedules by cron only)",
        );
    }
}

/// A job's own keys over `[defaults]` over built-in defaults; then the checks that need both.
fn merge(
    d: &mut Diags,
    s: &Section,
    entry: &Value,
    f: &JobFields,
    def: &JobFields,
    ctx: Ctx,
) -> Option<Job> {
    let here = entry.span();
    let mut missing = |what: &str| {
        d.at(&here, format!("{}: {what} is required", s.name));
    };
    let name = f.name.clone().map(|(n, _)| n);
    if s.get("name").is_none() {
        missing("name");
    }
    let cron = f.cron.clone().or_else(|| def.cron.clone());
    if cron.is_none() && s.get("cron").is_none() && f.after.is_none() {
        missing("cron (or after, for a job fired when another ends)");
    }
    let named = s.get("action").is_some() || s.get("endpoint").is_some();
    if !named && f.action.is_none() && def.action.is_none() && def.endpoint.is_none() {
        missing("action (or endpoint, for a v1 job)");
    }
    let (endpoint, action) = generation(d, f, def);
    let runner = f.runner.or(def.runner).unwrap_or(Runner::Local);
    let webhook = f.webhook.clone().or_else(|| def.webhook.clone());
    let (receive, overlap) = runner_keys(
        d,
        (s, f, def, &here),
        runner,
        (endpoint.is_some(), webhook.is_some(), cron.as_ref()),
        ctx,
    );
    let mode = match runner {
        Runner::Local => ModeName::Live,
        Runner::Async => ModeName::Async,
        Runner::Remote => ModeName::Schedule,
    };
    check_chain_keys(d, f, endpoint.is_some(), runner);
    let request = if let Some(e) = &endpoint {
        super::endpoint::request(d, &here, e, f, def)
    } else {
        action.as_deref().and_then(|a| {
            Holder {
                d: &mut *d,
                catalog: ctx.catalog,
                here: here.clone(),
                meant: None,
            }
            .request(a, mode, f, def)
        })
    };
    if let (Runner::Async, Some(r)) = (runner, request.as_ref()) {
        check_async_caps(d, f, action.as_deref(), r, ctx.caps);
    }
    let name = name?;
    let jitter = f.jitter.or(def.jitter).unwrap_or_default();
    let has_cron = s.get("cron").is_some();
    let schedule = schedule(
        d,
        (f, def),
        &here,
        (&name, cron, has_cron),
        action.as_deref(),
    )
    .ok()?;
    Some(Job {
        line: d.line_of(here.start),
        name,
        schedule,
        action: action?,
        request: request?,
        enabled: f.enabled.or(def.enabled).unwrap_or(true),
        overlap,
        catchup: f.catchup.or(def.catchup).unwrap_or(Duration::from_hours(1)),
        max_pages: f.max_pages.or(def.max_pages).unwrap_or(500),
        run_timeout: f
            .run_timeout
            .or(def.run_timeout)
            .unwrap_or(Duration::from_mins(30)),
        resume_interrupted: f
            .resume_interrupted
            .or(def.resume_interrupted)
            .unwrap_or(true),
        jitter,
        webhook: webhook.map(Box::new),
        notify: either(f.notify.as_ref(), def.notify.as_ref()).map(Box::new),
        ping: either(f.ping.as_ref(), def.ping.as_ref()).map(Box::new),
        retry: f.retry.or(def.retry),
        runner,
        receive,
        remote_schedule: either(f.remote_schedule.as_ref(), def.remote_schedule.as_ref()),
        after: f.after.clone(),
        input_concurrency: f.input_concurrency.or(def.input_concurrency).unwrap_or(1),
    })
}
