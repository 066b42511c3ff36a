//! What was asked: `schedules.toml` parsed, then validated once into a [`Config`] whose fields are
//! already typed. Every error is reported as `FILE:LINE:COL: message`, all of them in one pass.

mod action;
mod alerts;
mod chain;
mod chunks;
mod endpoint;
mod hash;
pub mod inputs_file;
mod job;
mod read;
mod receiver;
mod safety;
mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use toml::de::DeTable;

pub use action::{Json, Request, input_problems};
pub use alerts::{HeaderValue, Notify, Retry, Webhook, redacted};
pub use chain::InputsFrom;
use job::{JobFields, read_jobs};
pub use read::{Diag, Diagnostics};
use read::{Diags, Section, Value};
pub use receiver::{Receiver, is_loopback};
pub use safety::Safety;

use crate::schedule::Schedule;

/// The production API.
pub const DEFAULT_BASE_URL: &str = "https://api.captaindata.com/v4";
pub const DEFAULT_V1_BASE_URL: &str = "https://api.captaindata.com/v1";
/// The environment variable read for the key when the file names none.
pub const DEFAULT_KEY_ENV: &str = "CAPTAIN_DATA_API_KEY";

/// The whole validated job file.
#[derive(Clone, Debug)]
pub struct Config {
    pub api: Api,
    pub daemon: Daemon,
    pub safety: Safety,
    /// `[receiver]`: where callbacks of async runs and received remote schedules arrive.
    pub receiver: Option<Receiver>,
    /// `[store]`: where the `PostgreSQL` URL is, when the state is there instead of `SQLite`.
    pub store: Option<crate::store::pg::UrlSource>,
    pub jobs: Vec<Job>,
    /// `FILE:LINE:COL: warning: ...` lines: what the file may mean but `check` cannot vouch for.
    pub warnings: Vec<String>,
    /// Position of each job in `jobs`, by name.
    index: HashMap<String, usize>,
    /// [`text_hash`] of the text this was read from (0 when built otherwise): a watch on the
    /// file compares against it, so a change made while the daemon started is not missed.
    pub source: u64,
}

/// A hash of a job file's content.
pub fn text_hash(bytes: &[u8]) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// `[api]`: where and how to reach Captain Data.
#[derive(Clone, Debug)]
pub struct Api {
    pub base_url: Url,
    pub key: KeySource,
    pub plan: Plan,
    /// `rate_limit = "N/s"`: requests per second, instead of what the plan implies.
    pub rate_limit: Option<f64>,
    pub request_timeout: Duration,
    pub catalog: CatalogMode,
    /// `v1_base_url` as written: set, the key may go to it even without a v1 job.
    pub v1_base_url: Option<Url>,
    /// A stored pagination cursor older than this is not sent: the run starts its pages again.
    pub cursor_ttl: Duration,
    /// Talking to a simulator ([`Config::use_sandbox`]), not read from the file: a reload keeps
    /// it, and confines the reloaded jobs' deliveries to loopback too.
    pub sandbox: bool,
}

impl Api {
    /// The requests per second watchbell allows itself (paced a little below this).
    pub fn per_second(&self) -> f64 {
        self.rate_limit.unwrap_or_else(|| self.plan.per_second())
    }

    /// Where v1 endpoints live: `v1_base_url`, else the vendor's.
    pub fn v1_base(&self) -> Url {
        self.v1_base_url
            .clone()
            .unwrap_or_else(|| Url::parse(DEFAULT_V1_BASE_URL).expect("valid default"))
    }
}

/// How jobs are held to the embedded action catalog.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CatalogMode {
    /// An action or key the catalog does not know is an error.
    #[default]
    Strict,
    /// ... a warning: for actions newer than the embedded catalog.
    Warn,
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
    // The v1 tiers, by the names the vendor's pricing uses.
    Bronze,
    Silver,
    Gold,
    Platinum,
    Diamond,
    Titanium,
}

impl Plan {
    /// Every name `plan` accepts: v4's, then v1's tiers.
    pub const NAMES: [(&str, Plan); 11] = [
        ("trial", Plan::Trial),
        ("low", Plan::Low),
        ("mid", Plan::Mid),
        ("high", Plan::High),
        ("highest", Plan::Highest),
        ("bronze", Plan::Bronze),
        ("silver", Plan::Silver),
        ("gold", Plan::Gold),
        ("platinum", Plan::Platinum),
        ("diamond", Plan::Diamond),
        ("titanium", Plan::Titanium),
    ];

    /// The plan's documented limits: (requests per second, requests per minute).
    pub fn limits(self) -> (u32, u32) {
        match self {
            Plan::Trial => (1, 60),
            Plan::Low | Plan::Bronze => (2, 120),
            Plan::Mid | Plan::Silver | Plan::Gold => (10, 600),
            Plan::High | Plan::Platinum | Plan::Diamond => (20, 1200),
            Plan::Highest | Plan::Titanium => (40, 2400),
        }
    }

    /// Requests per second under both of the plan's limits.
    pub fn per_second(self) -> f64 {
        let (ps, pm) = self.limits();
        f64::from(ps).min(f64::from(pm) / 60.0)
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
    /// Finished runs older than this are pruned daily; `None` keeps everything.
    pub retain: Option<Duration>,
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
    /// The vendor runs it (async mode); results come back as callbacks through `[receiver]`.
    Async,
    Remote,
}

/// One `[[job]]`, with `[defaults]` applied.
#[derive(Clone, Debug)]
pub struct Job {
    pub name: String,
    /// Its cron; `None` for a job fired only `after` another.
    pub schedule: Option<Schedule>,
    pub action: String,
    /// What the request carries: the keys the job set that its action takes.
    pub request: Request,
    pub enabled: bool,
    pub overlap: Overlap,
    pub catchup: Duration,
    pub max_pages: u32,
    pub run_timeout: Duration,
    pub resume_interrupted: bool,
    pub jitter: Duration,
    /// Boxed, like `notify` and `ping`: most jobs have none, and 10,000 jobs carried 360 bytes
    /// each of empty slots.
    pub webhook: Option<Box<Webhook>>,
    /// One POST when a run ends for good in a listed status.
    pub notify: Option<Box<Notify>>,
    /// healthchecks.io-style pings: `URL/start`, `URL` on success, `URL/fail`.
    pub ping: Option<Box<Url>>,
    /// Failed runs resumed before they count as failed.
    pub retry: Option<Retry>,
    pub runner: Runner,
    /// A remote job whose callbacks come back through `[receiver]`.
    pub receive: bool,
    pub remote_schedule: Option<String>,
    /// `after = "SRC"`: a run of SRC that ends well fires this job.
    pub after: Option<String>,
    /// Inputs of a list paged at once (identity-free actions).
    pub input_concurrency: u32,
    /// The line of the job's `[[job]]` entry, for messages.
    pub line: usize,
}

impl Config {
    /// The chains of the job file as the store keeps them: each `inputs_from` link, and each
    /// `after` link (job, source).
    pub fn links(&self) -> (Vec<crate::store::ChainLink>, Vec<(String, String)>) {
        let links = self
            .jobs
            .iter()
            .filter_map(|j| {
                let from = j.request.inputs_from.as_ref()?;
                Some(crate::store::ChainLink {
                    job: j.name.clone(),
                    src: from.job.clone(),
                    backlog: from.backlog,
                })
            })
            .collect();
        let afters = self
            .jobs
            .iter()
            .filter_map(|j| Some((j.name.clone(), j.after.clone()?)))
            .collect();
        (links, afters)
    }
}

impl Job {
    /// The schedule of a remote job (a remote job always has a cron: `check` holds it).
    pub fn cron_schedule(&self) -> &Schedule {
        self.schedule
            .as_ref()
            .expect("a remote job has a cron (check refuses one without)")
    }

    /// How the job fires, for people: its cron and zone, or `after SRC`.
    pub fn fires(&self) -> String {
        match (&self.schedule, &self.after) {
            (Some(s), None) => format!("{} ({})", s.cron, s.tz.name()),
            (Some(s), Some(a)) => format!("{} ({}) and after {a}", s.cron, s.tz.name()),
            (None, a) => format!("after {}", a.as_deref().unwrap_or("?")),
        }
    }

    /// Everything the user wrote for this job, hashed: equal fingerprints mean an unchanged job
    /// (its line in the file aside), so a reload can keep its timer.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut h = DefaultHasher::new();
        self.name.hash(&mut h);
        if let Some(s) = &self.schedule {
            (
                s.cron.as_str(),
                s.tz.name(),
                format!("{:?}{:?}", s.gap, s.fold),
                s.jitter_offset,
            )
                .hash(&mut h);
        }
        self.action.hash(&mut h);
        // The request as the file wrote it: compact JSON texts, hashed as they are.
        let r = &self.request;
        (
            &r.input,
            &r.inputs,
            &r.inputs_file,
            &r.inputs_from,
            &self.after,
            self.input_concurrency,
            &r.parameters,
            &r.query,
            &r.path,
            &r.endpoint,
        )
            .hash(&mut h);
        (r.identity_mode.map(IdentityMode::as_str), &r.identity_ids).hash(&mut h);
        self.enabled.hash(&mut h);
        (
            format!("{:?}{:?}{}", self.overlap, self.runner, self.receive),
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
        format!(
            "{:?}{:?}{:?}{:?}",
            self.webhook, self.notify, self.ping, self.retry
        )
        .hash(&mut h);
        h.finish()
    }

    /// A new run of this job: its action, body and callback, and who started it.
    pub fn new_run(
        &self,
        trigger: crate::store::Trigger,
        scheduled_for: Option<chrono::DateTime<chrono::Utc>>,
        owner: Option<String>,
    ) -> crate::store::NewRun {
        crate::store::NewRun {
            job: self.name.clone(),
            action_name: self.action.clone(),
            trigger,
            scheduled_for,
            body: self.live_body_text(),
            callback_url: self.webhook.as_ref().map(|w| w.url.to_string()),
            owner,
        }
    }

    /// The JSON body of a live run: exactly the keys the job set that its action takes.
    pub fn live_body(&self) -> serde_json::Value {
        action::live_body(&self.request)
    }

    /// [`Job::live_body`] as JSON text.
    pub fn live_body_text(&self) -> String {
        action::live_body_text(&self.request)
    }
}

/// The directory of the job file at `path` (`inputs_file` is relative to it).
fn dir_of(path: &str) -> PathBuf {
    Path::new(path)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
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
    /// Where v1 calls (endpoint jobs, `/quotas`) go, when the user named v1: a job on an
    /// endpoint, or `v1_base_url` set. `None`: the key goes to no v1 origin.
    pub fn v1_base(&self) -> Option<Url> {
        let named = self.api.v1_base_url.is_some()
            || self.jobs.iter().any(|j| j.request.endpoint.is_some());
        named.then(|| self.api.v1_base())
    }

    /// Points the API at a simulator (`run --sandbox`, `trigger --sandbox`) and keeps its
    /// simulated results on this machine: a job's webhook, notify or ping to a URL that is not
    /// loopback is dropped. Returns one message per drop, for the log.
    pub fn use_sandbox(&mut self, base_url: Url, v1_base_url: Url) -> Vec<String> {
        self.api.base_url = base_url;
        self.api.v1_base_url = Some(v1_base_url);
        self.api.sandbox = true;
        // The receiver answers on any free loopback port; callbacks go to it as bound.
        if let Some(r) = &mut self.receiver {
            r.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
            r.public_url = None;
        }
        let mut dropped = Vec::new();
        let mut keep = |job: &str, what: &str, url: &Url| {
            let host = url.host_str().unwrap_or("").trim_matches(['[', ']']);
            let local = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !local {
                dropped.push(format!(
                    "job {job:?}: {what} to {} not sent in sandbox mode (only loopback URLs are)",
                    alerts::redacted(url)
                ));
            }
            local
        };
        for job in &mut self.jobs {
            let name = job.name.clone();
            job.webhook = job
                .webhook
                .take()
                .filter(|w| keep(&name, "webhook", &w.url));
            job.notify = job.notify.take().filter(|n| keep(&name, "notify", &n.url));
            job.ping = job.ping.take().filter(|p| keep(&name, "ping", p));
        }
        dropped
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config =
            Config::parse(&path.display().to_string(), &text).map_err(ConfigError::Invalid)?;
        config.source = text_hash(text.as_bytes());
        Ok(config)
    }

    /// Validates `text`; `path` is only used in messages.
    pub fn parse(path: &str, text: &str) -> Result<Config, Diagnostics> {
        if let Some(config) = chunks::parse(path, text) {
            return Ok(config);
        }
        let mut d = Diags::new(text);
        d.dir = dir_of(path);
        let (root, syntax) = DeTable::parse_recoverable(text);
        for e in &syntax {
            d.at(&e.span().unwrap_or(0..0), e.message().trim().to_string());
        }
        let root = Section {
            name: "the file".into(),
            table: root.get_ref(),
        };
        let head = Head::read(&mut d, &root);
        let mut jobs = Vec::new();
        let seen = &mut std::collections::HashMap::new();
        read_jobs(
            &mut d,
            root.get("job"),
            &head.defaults,
            head.ctx(),
            (&mut jobs, seen),
        );
        head.finish(d, path, jobs)
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
            safety: Safety::default(),
            receiver: None,
            store: None,
            jobs,
            warnings: Vec::new(),
            index,
            source: 0,
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

/// What comes before the jobs: `[api]`, `[daemon]`, `[safety]` and `[defaults]`.
struct Head {
    api: Option<Api>,
    daemon: Option<Daemon>,
    safety: Option<Safety>,
    receiver: Option<Receiver>,
    /// False when `[receiver]` has errors (reported; its jobs are not blamed too).
    receiver_ok: bool,
    store: Option<crate::store::pg::UrlSource>,
    defaults: JobFields,
}

impl Head {
    fn read(d: &mut Diags, root: &Section) -> Head {
        root.only(
            d,
            &[
                "api", "daemon", "store", "safety", "receiver", "defaults", "job",
            ],
        );
        let api = read_api(d, root.get("api"));
        let base = api.as_ref().map(|a| &a.base_url);
        let written = root.get("receiver");
        let receiver = written.and_then(|v| receiver::read(d, v, base));
        let receiver_ok = written.is_none() || receiver.is_some();
        let daemon = read_daemon(d, root.get("daemon"));
        let store = root.get("store").and_then(|v| store::read(d, v));
        let defaults = root
            .get("defaults")
            .and_then(|v| read::table(d, v, "defaults", "[defaults]"))
            .map(|s| {
                if let Some(span) = s.key_span("name") {
                    d.at(&span, "name cannot be defaulted: every job names itself");
                }
                JobFields::read(d, &s)
            })
            .unwrap_or_default();
        let tz = defaults.timezone().unwrap_or(chrono_tz::Tz::UTC);
        let safety =
            section(d, root.get("safety"), "safety").and_then(|s| safety::read_safety(d, &s, tz));
        Head {
            api,
            daemon,
            safety,
            receiver,
            receiver_ok,
            store,
            defaults,
        }
    }

    /// What a job's checks need to know of the head of the file.
    fn ctx(&self) -> job::Ctx {
        job::Ctx {
            catalog: self.api.as_ref().map(|a| a.catalog).unwrap_or_default(),
            receiver: self.receiver.is_some() || !self.receiver_ok,
            caps: self.safety.as_ref().map_or_else(
                || {
                    let d = Safety::default();
                    (d.outreach, d.visits)
                },
                |s| (s.outreach, s.visits),
            ),
        }
    }

    /// The configuration, or every error found.
    fn finish(self, d: Diags, path: &str, mut jobs: Vec<Job>) -> Result<Config, Diagnostics> {
        match (self.api, self.daemon, self.safety, d.is_empty()) {
            (Some(api), Some(daemon), Some(safety), true) => {
                jobs.shrink_to_fit();
                let mut config = Config::new(api, daemon, jobs);
                config.safety = safety;
                config.receiver = self.receiver;
                config.store = self.store;
                config.warnings = d.warnings(path);
                Ok(config)
            }
            _ => Err(d.finish(path)),
        }
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
            "rate_limit",
            "request_timeout",
            "catalog",
            "v1_base_url",
            "cursor_ttl",
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
    let plan = s.get("plan").map_or(Some(Plan::Trial), |v| {
        read::choice(d, v, "plan", &Plan::NAMES)
    });
    let rate_limit = match s.get("rate_limit") {
        None => Some(None),
        Some(v) => read::string(d, v, "rate_limit").and_then(|text| match rate(&text) {
            Ok(r) => Some(Some(r)),
            Err(why) => {
                d.at(&v.span(), format!("rate_limit {text:?}: {why}"));
                None
            }
        }),
    };
    let request_timeout = opt_duration(d, &s, "request_timeout", Duration::from_mins(1));
    let modes = [("strict", CatalogMode::Strict), ("warn", CatalogMode::Warn)];
    let catalog = s.get("catalog").map_or(Some(CatalogMode::Strict), |v| {
        read::choice(d, v, "catalog", &modes)
    });
    let v1_base_url = match s.get("v1_base_url") {
        None => Some(None),
        Some(v) => url(d, v, "v1_base_url").map(Some),
    };
    let cursor_ttl = opt_duration(d, &s, "cursor_ttl", Duration::from_hours(24));
    Some(Api {
        sandbox: false,
        v1_base_url: v1_base_url?,
        cursor_ttl: cursor_ttl?,
        catalog: catalog?,
        base_url: base_url?,
        key: key?,
        plan: plan?,
        rate_limit: rate_limit?,
        request_timeout: request_timeout?,
    })
}

/// `"10/s"`, `"600/min"` (or `/m`): requests per second, above zero and at most 1000.
fn rate(text: &str) -> Result<f64, String> {
    let (n, unit) = text
        .trim()
        .split_once('/')
        .ok_or("write it as N/s or N/min")?;
    let n: f64 = n
        .trim()
        .parse()
        .map_err(|_| format!("{:?} is not a number", n.trim()))?;
    let per_second = match unit.trim() {
        "s" => n,
        "m" | "min" => n / 60.0,
        other => return Err(format!("unknown unit {other:?}: use /s or /min")),
    };
    if !per_second.is_finite() || per_second <= 0.0 || per_second > 1000.0 {
        return Err("must be above 0 and at most 1000/s".into());
    }
    Ok(per_second)
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
            "retain",
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
    let retain = match s.get("retain") {
        None => Some(None),
        Some(v) => read::positive_duration(d, v, "retain").map(Some),
    };
    Some(Daemon {
        retain: retain?,
        database: database.map(PathBuf::from),
        max_concurrent_runs: max? as usize,
        shutdown_grace: grace?,
        sync_interval: sync?,
        metrics_listen: metrics?,
    })
}

/// A duration key that must not be zero (every one in `[api]` and `[daemon]` so far).
fn opt_duration(d: &mut Diags, s: &Section, key: &str, default: Duration) -> Option<Duration> {
    s.get(key)
        .map_or(Some(default), |v| read::positive_duration(d, v, key))
}

pub(super) fn url(d: &mut Diags, v: &Value, key: &str) -> Option<Url> {
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

#[cfg(test)]
mod tests;
