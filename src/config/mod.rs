//! What was asked: `schedules.toml` parsed, then validated once into a [`Config`] whose fields are
//! already typed. Every error is reported as `FILE:LINE:COL: message`, all of them in one pass.

mod read;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use reqwest::Url;
use toml::de::{DeTable, DeValue};

pub use read::{Diag, Diagnostics};
use read::{Diags, Section, Value};

use crate::schedule::{CronExpr, Fold, Gap, Schedule};

/// The production API.
pub const DEFAULT_BASE_URL: &str = "https://api.captaindata.com/v4";
/// The environment variable read for the key when the file names none.
pub const DEFAULT_KEY_ENV: &str = "CAPTAIN_DATA_API_KEY";

/// The whole validated job file.
#[derive(Clone, Debug)]
pub struct Config {
    pub api: Api,
    pub daemon: Daemon,
    pub jobs: Vec<Job>,
    /// Position of each job in `jobs`, by name.
    index: HashMap<String, usize>,
}

/// `[api]`: where and how to reach Captain Data.
#[derive(Clone, Debug)]
pub struct Api {
    pub base_url: Url,
    pub key: KeySource,
    pub plan: Plan,
    pub request_timeout: Duration,
}

/// Where the API key comes from. The key itself is never in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    Env(String),
    File(PathBuf),
}

/// The account's plan: sets client-side pacing below its rate limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    Trial,
    Low,
    Mid,
    High,
    Highest,
}

impl Plan {
    /// The plan's documented limits: (requests per second, requests per minute).
    pub fn limits(self) -> (u32, u32) {
        match self {
            Plan::Trial => (1, 60),
            Plan::Low => (2, 120),
            Plan::Mid => (10, 600),
            Plan::High => (20, 1200),
            Plan::Highest => (40, 2400),
        }
    }
}

/// `[daemon]`.
#[derive(Clone, Debug)]
pub struct Daemon {
    /// `None`: `$STATE_DIRECTORY/watchbell.db` under systemd, else `./watchbell.db`.
    pub database: Option<PathBuf>,
    pub max_concurrent_runs: usize,
    pub shutdown_grace: Duration,
    pub sync_interval: Duration,
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityMode {
    Direct,
    Auto,
    Managed,
}

impl IdentityMode {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityMode::Direct => "direct",
            IdentityMode::Auto => "auto",
            IdentityMode::Managed => "managed",
        }
    }
}

/// What to do with a tick while the job's previous run is still going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlap {
    Skip,
    Queue,
    Allow,
    Replace,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runner {
    Local,
    Remote,
}

/// Where a job's results are also delivered, in Captain Data's callback format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub secret_env: Option<String>,
}

/// One `[[job]]`, with `[defaults]` applied.
#[derive(Clone, Debug)]
pub struct Job {
    pub name: String,
    pub schedule: Schedule,
    pub action: String,
    pub input: serde_json::Value,
    pub parameters: serde_json::Value,
    pub identity_mode: IdentityMode,
    pub identity_ids: Option<Vec<String>>,
    pub enabled: bool,
    pub overlap: Overlap,
    pub catchup: Duration,
    pub max_pages: u32,
    pub run_timeout: Duration,
    pub resume_interrupted: bool,
    pub jitter: Duration,
    pub webhook: Option<Webhook>,
    pub runner: Runner,
    pub remote_schedule: Option<String>,
    /// The line of the job's `[[job]]` entry, for messages.
    pub line: usize,
}

impl Job {
    /// Everything the user wrote for this job, hashed: equal fingerprints mean an unchanged job
    /// (its line in the file aside), so a reload can keep its timer.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut h = DefaultHasher::new();
        let s = &self.schedule;
        (
            &self.name,
            s.cron.as_str(),
            s.tz.name(),
            format!("{:?}{:?}", s.gap, s.fold),
        )
            .hash(&mut h);
        (
            s.jitter_offset,
            &self.action,
            self.input.to_string(),
            self.parameters.to_string(),
        )
            .hash(&mut h);
        (
            self.identity_mode.as_str(),
            &self.identity_ids,
            self.enabled,
        )
            .hash(&mut h);
        (
            format!("{:?}{:?}", self.overlap, self.runner),
            self.catchup,
            self.max_pages,
        )
            .hash(&mut h);
        (
            self.run_timeout,
            self.resume_interrupted,
            self.jitter,
            &self.remote_schedule,
        )
            .hash(&mut h);
        format!("{:?}", self.webhook).hash(&mut h);
        h.finish()
    }

    /// The JSON body of a live run: the job's input, parameters and identity.
    pub fn live_body(&self) -> serde_json::Value {
        serde_json::json!({
            "input": self.input,
            "parameters": self.parameters,
            "identity_mode": self.identity_mode.as_str(),
            "identity_ids": self.identity_ids,
        })
    }
}

/// Why a job file could not be used.
#[derive(Debug)]
pub enum ConfigError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    Invalid(Diagnostics),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            ConfigError::Invalid(d) => d.fmt(f),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&path.display().to_string(), &text).map_err(ConfigError::Invalid)
    }

    /// Validates `text`; `path` is only used in messages.
    pub fn parse(path: &str, text: &str) -> Result<Config, Diagnostics> {
        let mut d = Diags::new(text);
        let (root, syntax) = DeTable::parse_recoverable(text);
        for e in &syntax {
            d.at(&e.span().unwrap_or(0..0), e.message().trim().to_string());
        }
        let root = Section {
            name: "the file".into(),
            table: root.get_ref(),
        };
        root.only(&mut d, &["api", "daemon", "defaults", "job"]);
        let api = read_api(&mut d, root.get("api"));
        let daemon = read_daemon(&mut d, root.get("daemon"));
        let defaults = root
            .get("defaults")
            .and_then(|v| read::table(&mut d, v, "defaults", "[defaults]"))
            .map(|s| {
                if let Some(span) = s.key_span("name") {
                    d.at(&span, "name cannot be defaulted: every job names itself");
                }
                JobFields::read(&mut d, &s)
            })
            .unwrap_or_default();
        let jobs = read_jobs(&mut d, root.get("job"), &defaults);
        match (api, daemon, d.is_empty()) {
            (Some(api), Some(daemon), true) => Ok(Config::new(api, daemon, jobs)),
            _ => Err(d.finish(path)),
        }
    }

    /// A configuration from its parts (the name index is built here).
    pub fn new(api: Api, daemon: Daemon, jobs: Vec<Job>) -> Config {
        let index = jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (j.name.clone(), i))
            .collect();
        Config {
            api,
            daemon,
            jobs,
            index,
        }
    }

    pub fn job(&self, name: &str) -> Option<&Job> {
        self.index.get(name).map(|&i| &self.jobs[i])
    }
}

fn empty_section() -> &'static DeTable<'static> {
    static EMPTY: std::sync::OnceLock<DeTable<'static>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(DeTable::default)
}

fn section<'a, 'i>(d: &mut Diags, v: Option<&'a Value<'i>>, name: &str) -> Option<Section<'a, 'i>> {
    match v {
        None => Some(Section {
            name: format!("[{name}]"),
            table: empty_section(),
        }),
        Some(v) => read::table(d, v, name, format!("[{name}]")),
    }
}

fn read_api(d: &mut Diags, v: Option<&Value>) -> Option<Api> {
    let s = section(d, v, "api")?;
    s.only(
        d,
        &[
            "base_url",
            "api_key_env",
            "api_key_file",
            "plan",
            "request_timeout",
        ],
    );
    let base_url = match s.get("base_url") {
        None => Some(Url::parse(DEFAULT_BASE_URL).expect("valid default")),
        Some(v) => url(d, v, "base_url"),
    };
    let env = s
        .get("api_key_env")
        .and_then(|v| read::string(d, v, "api_key_env"));
    let file = s
        .get("api_key_file")
        .and_then(|v| read::string(d, v, "api_key_file"));
    let key = match (env, file) {
        (Some(_), Some(_)) => {
            let span = s.key_span("api_key_file").unwrap_or_default();
            d.at(
                &span,
                "api_key_env and api_key_file are both set; keep one (the key has one source)",
            );
            None
        }
        (Some(e), None) => Some(KeySource::Env(e)),
        (None, Some(f)) => Some(KeySource::File(f.into())),
        (None, None) => Some(KeySource::Env(DEFAULT_KEY_ENV.into())),
    };
    let plans = [
        ("trial", Plan::Trial),
        ("low", Plan::Low),
        ("mid", Plan::Mid),
        ("high", Plan::High),
        ("highest", Plan::Highest),
    ];
    let plan = s
        .get("plan")
        .map_or(Some(Plan::Trial), |v| read::choice(d, v, "plan", &plans));
    let request_timeout = opt_duration(d, &s, "request_timeout", Duration::from_mins(1));
    Some(Api {
        base_url: base_url?,
        key: key?,
        plan: plan?,
        request_timeout: request_timeout?,
    })
}

fn read_daemon(d: &mut Diags, v: Option<&Value>) -> Option<Daemon> {
    let s = section(d, v, "daemon")?;
    s.only(
        d,
        &[
            "database",
            "max_concurrent_runs",
            "shutdown_grace",
            "sync_interval",
            "metrics_listen",
        ],
    );
    let database = s
        .get("database")
        .and_then(|v| read::string(d, v, "database"));
    let max = s.get("max_concurrent_runs").map_or(Some(4), |v| {
        read::integer(d, v, "max_concurrent_runs", 1, 1024)
    });
    let grace = opt_duration(d, &s, "shutdown_grace", Duration::from_secs(30));
    let sync = opt_duration(d, &s, "sync_interval", Duration::from_mins(5));
    let metrics = match s.get("metrics_listen") {
        None => Some(None),
        Some(v) => read::string(d, v, "metrics_listen").and_then(|a| {
            if let Ok(addr) = a.parse() {
                Some(Some(addr))
            } else {
                d.at(
                    &v.span(),
                    format!("metrics_listen: {a:?} is not an address like \"127.0.0.1:9464\""),
                );
                None
            }
        }),
    };
    Some(Daemon {
        database: database.map(PathBuf::from),
        max_concurrent_runs: max? as usize,
        shutdown_grace: grace?,
        sync_interval: sync?,
        metrics_listen: metrics?,
    })
}

fn opt_duration(d: &mut Diags, s: &Section, key: &str, default: Duration) -> Option<Duration> {
    s.get(key)
        .map_or(Some(default), |v| read::duration(d, v, key))
}

fn url(d: &mut Diags, v: &Value, key: &str) -> Option<Url> {
    let s = read::string(d, v, key)?;
    match Url::parse(&s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
        Ok(_) => {
            d.at(&v.span(), format!("{key}: {s:?} is not an http(s) URL"));
            None
        }
        Err(e) => {
            d.at(&v.span(), format!("{key}: invalid URL {s:?} ({e})"));
            None
        }
    }
}

/// The job keys, each optional: read from `[defaults]` and from each `[[job]]`, then merged.
#[derive(Clone, Default)]
struct JobFields {
    name: Option<(String, Range<usize>)>,
    cron: Option<CronExpr>,
    timezone: Option<Tz>,
    action: Option<String>,
    input: Option<serde_json::Value>,
    parameters: Option<serde_json::Value>,
    identity_mode: Option<IdentityMode>,
    identity_ids: Option<Vec<String>>,
    enabled: Option<bool>,
    gap: Option<Gap>,
    fold: Option<Fold>,
    jitter: Option<Duration>,
    webhook: Option<Webhook>,
    runner: Option<Runner>,
    remote_schedule: Option<String>,
    overlap: Option<Overlap>,
    catchup: Option<Duration>,
    max_pages: Option<u32>,
    run_timeout: Option<Duration>,
    resume_interrupted: Option<bool>,
}

const JOB_KEYS: &[&str] = &[
    "name",
    "cron",
    "timezone",
    "action",
    "input",
    "parameters",
    "identity_mode",
    "identity_ids",
    "enabled",
    "dst",
    "jitter",
    "webhook",
    "runner",
    "remote_schedule",
    "overlap",
    "catchup",
    "max_pages",
    "run_timeout",
    "resume_interrupted",
];

impl JobFields {
    fn read(d: &mut Diags, s: &Section) -> JobFields {
        s.only(d, JOB_KEYS);
        let mut f = JobFields::default();
        for (key, v) in s.table {
            f.read_key(d, key.get_ref(), v, &s.name);
        }
        f
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
            "input" | "parameters" => {
                let value = if matches!(v.get_ref(), DeValue::Table(_)) {
                    read::json(d, v, key)
                } else {
                    d.at(
                        &v.span(),
                        format!("{key}: expected a table, e.g. {{ key = \"value\" }}"),
                    );
                    None
                };
                if key == "input" {
                    self.input = value;
                } else {
                    self.parameters = value;
                }
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
            "run_timeout" => self.run_timeout = read::duration(d, v, key),
            "max_pages" => {
                self.max_pages = read::integer(d, v, key, 1, 1_000_000).map(|n| n as u32);
            }
            "webhook" => self.webhook = webhook(d, v, section),
            "runner" => {
                let runners = [("local", Runner::Local), ("remote", Runner::Remote)];
                self.runner = read::choice(d, v, key, &runners);
            }
            "remote_schedule" => self.remote_schedule = read::string(d, v, key),
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

fn webhook(d: &mut Diags, v: &Value, section: &str) -> Option<Webhook> {
    let t = read::table(d, v, "webhook", format!("webhook of {section}"))?;
    t.only(d, &["url", "headers", "secret_env"]);
    let Some(url_value) = t.get("url") else {
        d.at(&v.span(), "webhook: url is required");
        return None;
    };
    let url = url(d, url_value, "webhook.url");
    let mut headers = Vec::new();
    if let Some(h) = t.get("headers") {
        let h = read::table(d, h, "webhook.headers", "webhook.headers")?;
        for (k, v) in h.table {
            headers.push((
                k.get_ref().to_string(),
                read::string(d, v, "webhook.headers")?,
            ));
        }
    }
    let secret_env = t
        .get("secret_env")
        .and_then(|v| read::string(d, v, "webhook.secret_env"));
    Some(Webhook {
        url: url?,
        headers,
        secret_env,
    })
}

fn read_jobs(d: &mut Diags, v: Option<&Value>, defaults: &JobFields) -> Vec<Job> {
    let Some(v) = v else { return Vec::new() };
    let DeValue::Array(entries) = v.get_ref() else {
        d.at(&v.span(), "job: expected [[job]] entries");
        return Vec::new();
    };
    let mut jobs = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let Some(s) = read::table(d, entry, "job", format!("job #{}", i + 1)) else {
            continue;
        };
        let fields = JobFields::read(d, &s);
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
        if let Some(job) = merge(d, &s, entry, fields, defaults) {
            jobs.push(job);
        }
    }
    jobs
}

/// A job's own keys over `[defaults]` over built-in defaults; then the checks that need both.
fn merge(d: &mut Diags, s: &Section, entry: &Value, f: JobFields, def: &JobFields) -> Option<Job> {
    let here = entry.span();
    let mut missing = |what: &str| {
        d.at(&here, format!("{}: {what} is required", s.name));
    };
    let name = f.name.clone().map(|(n, _)| n);
    if s.get("name").is_none() {
        missing("name");
    }
    let cron = f.cron.or_else(|| def.cron.clone());
    if cron.is_none() && s.get("cron").is_none() {
        missing("cron");
    }
    let action = f.action.or_else(|| def.action.clone());
    if action.is_none() && s.get("action").is_none() {
        missing("action");
    }
    let runner = f.runner.or(def.runner).unwrap_or(Runner::Local);
    let webhook = f.webhook.or_else(|| def.webhook.clone());
    if runner == Runner::Remote {
        let at = s.get("runner").map_or(here.clone(), toml::Spanned::span);
        if webhook.is_none() {
            d.at(
                &at,
                "runner = \"remote\" needs a webhook: Captain Data delivers the results there",
            );
        }
        if cron.as_ref().is_some_and(CronExpr::has_seconds) {
            d.at(
                &at,
                "runner = \"remote\" needs a 5-field cron: Captain Data's scheduler has no seconds",
            );
        }
    }
    let name = name?;
    let tz = f.timezone.or(def.timezone).unwrap_or(Tz::UTC);
    let jitter = f.jitter.or(def.jitter).unwrap_or_default();
    let schedule = Schedule::new(
        &name,
        cron?,
        tz,
        f.gap.or(def.gap).unwrap_or_default(),
        f.fold.or(def.fold).unwrap_or_default(),
        jitter,
    );
    Some(Job {
        line: d.line_of(here.start),
        name,
        schedule,
        action: action?,
        input: f
            .input
            .or_else(|| def.input.clone())
            .unwrap_or_else(|| serde_json::json!({})),
        parameters: f
            .parameters
            .or_else(|| def.parameters.clone())
            .unwrap_or_else(|| serde_json::json!({})),
        identity_mode: f
            .identity_mode
            .or(def.identity_mode)
            .unwrap_or(IdentityMode::Direct),
        identity_ids: f.identity_ids.or_else(|| def.identity_ids.clone()),
        enabled: f.enabled.or(def.enabled).unwrap_or(true),
        overlap: f.overlap.or(def.overlap).unwrap_or(Overlap::Skip),
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
        webhook,
        runner,
        remote_schedule: f.remote_schedule.or_else(|| def.remote_schedule.clone()),
    })
}

#[cfg(test)]
mod tests;
