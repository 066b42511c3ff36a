//! The failover harness: two `watchbell run` nodes on one `PostgreSQL` database, three
//! per-second jobs, and a fault on the leader at a random instant (seeded, 2 to 4 s after both
//! nodes are up), each scenario repeated:
//! - `kill`: SIGKILL; `term`: SIGTERM (a handover); `stop`: SIGSTOP past the lease, then SIGCONT;
//! - `terminate`: `pg_terminate_backend` on the leader's sessions (the lead should stay);
//! - `partition`: the leader's database connection cut by a TCP proxy that stops forwarding.
//!
//! ```sh
//! source .ci/pg start     # or WATCHBELL_TEST_PG_URL=postgres://… (a user that may create databases)
//! cargo build --release --bins --examples && target/release/examples/failover --reps 20
//! ```
//!
//! Each node sends its API requests through an HTTP proxy of the harness's (`HTTP_PROXY`), which
//! stamps each with the node and the instant; every request of a run names it
//! (`X-Watchbell-Run`), so it is tied, through the database, to its job and nominal instant. A
//! poller reads the leader row every 50 ms and keeps each node's renewals. Per scenario it prints
//! the failover time (the fault to the other node holding the row; for `terminate`, whether the
//! leader kept it), and what must be 0:
//! - duplicate run starts: a job's nominal instant begun at the API by two runs, or a start the
//!   database has no run for;
//! - requests past a lease: received more than 10 s after its node's last renewal (stamped on the
//!   database's clock, on this machine), or after the lead had moved to the other node;
//! - unaccounted seconds: a nominal second between a job's first tick and its last without a row.
//!
//! It also counts pages asked again after a crash: a run taken over resumes from its cursor, so
//! a page in flight when its node died is asked again, which the contract allows. Exit 1 on any
//! violation or a failover over its bound (2 s after a clean stop, 20 s otherwise).

#![allow(clippy::too_many_lines)] // a harness reads best as the story of a run

#[path = "../tests/it/proxy.rs"]
mod proxy;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use watchbell::clock::Clock;
use watchbell::sandbox::{Options, Sandbox};
use watchbell::store::pg::{self, Target};

use proxy::Proxy;

const JOBS: [&str; 3] = ["a", "b", "c"];
/// A node stops acting this long after its last renewal began (the product's default).
const LEASE_MS: i64 = 10_000;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Scenario {
    Kill,
    Term,
    Stop,
    Terminate,
    Partition,
}

impl Scenario {
    const ALL: [Scenario; 5] = [
        Scenario::Kill,
        Scenario::Term,
        Scenario::Stop,
        Scenario::Terminate,
        Scenario::Partition,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Kill => "kill",
            Scenario::Term => "term",
            Scenario::Stop => "stop",
            Scenario::Terminate => "terminate",
            Scenario::Partition => "partition",
        }
    }

    /// How long the lead may take to move (`None`: it must not move).
    fn bound(self) -> Option<Duration> {
        match self {
            Scenario::Term => Some(Duration::from_secs(2)),
            Scenario::Terminate => None,
            _ => Some(Duration::from_secs(20)),
        }
    }
}

struct Args {
    reps: usize,
    scenarios: Vec<Scenario>,
    seed: u64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        reps: 20,
        scenarios: Scenario::ALL.to_vec(),
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        match k.as_str() {
            "--reps" => a.reps = v.parse().map_err(|_| format!("--reps {v}: a number"))?,
            "--seed" => a.seed = v.parse().map_err(|_| format!("--seed {v}: a number"))?,
            "--scenarios" => {
                a.scenarios = v
                    .split(',')
                    .map(|s| {
                        Scenario::ALL
                            .into_iter()
                            .find(|c| c.name() == s)
                            .ok_or(format!("--scenarios: no scenario {s:?}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            _ => {
                return Err(format!(
                    "unknown {k}: --reps N --seed N --scenarios kill,term,stop,terminate,partition"
                ));
            }
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("failover: {e}");
            return ExitCode::from(2);
        }
    };
    let Ok(admin) = std::env::var("WATCHBELL_TEST_PG_URL") else {
        eprintln!(
            "failover: WATCHBELL_TEST_PG_URL is not set (`source .ci/pg start` starts a PostgreSQL and sets it)"
        );
        return ExitCode::from(2);
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if rt.block_on(harness(&a, &admin)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// xorshift64*, from the seed: the fault instants.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// What one repetition found.
#[derive(Default)]
struct Outcome {
    /// The fault to the other node holding the row (`None`: the lead did not move).
    failover: Option<Duration>,
    duplicates: Vec<String>,
    past_lease: Vec<String>,
    unaccounted: Vec<String>,
    resent: usize,
    /// Why the nodes did not exit as the scenario expects (`None`: they did).
    exit: Option<String>,
    starts: usize,
}

impl Outcome {
    fn violations(&self, s: Scenario) -> Vec<String> {
        let mut v: Vec<String> = self
            .duplicates
            .iter()
            .chain(&self.past_lease)
            .chain(&self.unaccounted)
            .cloned()
            .collect();
        if let Some(e) = &self.exit {
            v.push(e.clone());
        }
        match (s.bound(), self.failover) {
            (Some(b), Some(f)) if f > b => v.push(format!("failover took {f:?} (bound {b:?})")),
            (Some(_), None) => v.push("the lead never moved".into()),
            (None, Some(f)) => v.push(format!("the lead moved after {f:?}")),
            _ => {}
        }
        v
    }
}

async fn harness(a: &Args, admin: &str) -> bool {
    let bin = bin();
    if !bin.exists() {
        eprintln!("failover: {} is not built", bin.display());
        return false;
    }
    let mut rng = Rng(a.seed.max(1));
    let mut all: BTreeMap<Scenario, Vec<Outcome>> = BTreeMap::new();
    let mut ok = true;
    println!(
        "failover: seed {}, {} repetitions of {}",
        a.seed,
        a.reps,
        a.scenarios
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for &s in &a.scenarios {
        for n in 0..a.reps {
            let offset = Duration::from_millis(2000 + rng.below(2000));
            let o = match repetition(s, n, offset, admin, &bin).await {
                Ok(o) => o,
                Err(e) => Outcome {
                    exit: Some(format!("the repetition failed: {e}")),
                    ..Outcome::default()
                },
            };
            let bad = o.violations(s);
            println!(
                "{:<9} #{n:<2} fault at +{:.3}s: {} | {} starts, {} pages asked again{}",
                s.name(),
                offset.as_secs_f64(),
                o.failover.map_or("the lead stayed".into(), |f| format!(
                    "the other node led after {:.2}s",
                    f.as_secs_f64()
                )),
                o.starts,
                o.resent,
                if bad.is_empty() {
                    String::new()
                } else {
                    format!(" | VIOLATIONS: {}", bad.join("; "))
                }
            );
            ok &= bad.is_empty();
            all.entry(s).or_default().push(o);
        }
    }
    println!();
    println!(
        "{:<10} {:>4} {:>9} {:>9} {:>9} {:>11} {:>11} {:>12} {:>12} {:>10}",
        "scenario",
        "reps",
        "p50",
        "p90",
        "max",
        "duplicates",
        "past lease",
        "unaccounted",
        "asked again",
        "violating"
    );
    for (s, os) in &all {
        let mut times: Vec<Duration> = os.iter().filter_map(|o| o.failover).collect();
        times.sort();
        let pick = |q: f64| {
            if times.is_empty() {
                "-".to_string()
            } else {
                let i = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
                format!("{:.2}s", times[i].as_secs_f64())
            }
        };
        let sum = |f: fn(&Outcome) -> usize| os.iter().map(f).sum::<usize>();
        println!(
            "{:<10} {:>4} {:>9} {:>9} {:>9} {:>11} {:>11} {:>12} {:>12} {:>10}",
            s.name(),
            os.len(),
            pick(0.5),
            pick(0.9),
            times
                .last()
                .map_or("-".into(), |t| format!("{:.2}s", t.as_secs_f64())),
            sum(|o| o.duplicates.len()),
            sum(|o| o.past_lease.len()),
            sum(|o| o.unaccounted.len()),
            sum(|o| o.resent),
            os.iter().filter(|o| !o.violations(*s).is_empty()).count()
        );
    }
    ok
}

/// `watchbell`, beside this example's directory (`target/<profile>/`).
fn bin() -> PathBuf {
    let me = std::env::current_exe().unwrap();
    me.parent().unwrap().parent().unwrap().join("watchbell")
}

/// A database of the repetition's own, dropped after.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    async fn create(admin: &str, name: String) -> Result<Database, String> {
        let c = client(admin).await?;
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            c.batch_execute(&sql).await.map_err(|e| e.to_string())?;
        }
        let mut url = reqwest::Url::parse(admin).map_err(|e| e.to_string())?;
        url.set_path(&name);
        Ok(Database {
            admin: admin.to_string(),
            name,
            url: url.to_string(),
        })
    }

    /// The database through `proxy`.
    fn via(&self, proxy: &Proxy) -> String {
        let mut url = reqwest::Url::parse(&self.url).unwrap();
        url.set_port(Some(proxy.port)).unwrap();
        url.to_string()
    }

    fn upstream(&self) -> std::net::SocketAddr {
        let url = reqwest::Url::parse(&self.url).unwrap();
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
            .parse()
            .unwrap()
    }

    async fn drop_it(self) {
        if let Ok(c) = client(&self.admin).await {
            let _ = c
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .await;
        }
    }
}

async fn client(url: &str) -> Result<tokio_postgres::Client, String> {
    let t = Target::parse(url).map_err(|e| e.to_string())?;
    pg::connect(&t).await.map_err(|e| e.to_string())
}

/// One request a node sent, as its HTTP proxy saw it.
struct Sent {
    node: usize,
    at: DateTime<Utc>,
    path: String,
    run: Option<String>,
}

type Sends = Arc<Mutex<Vec<Sent>>>;

/// An HTTP proxy for node `node`: records each request, then forwards it to the sandbox.
async fn http_proxy(node: usize, sends: Sends) -> u16 {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let app = axum::Router::new()
        .fallback(forward)
        .with_state((node, sends, http));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    port
}

async fn forward(
    State((node, sends, http)): State<(usize, Sends, reqwest::Client)>,
    req: axum::extract::Request,
) -> Response {
    let at = Clock::System.now();
    let (parts, body) = req.into_parts();
    let run = parts
        .headers
        .get("x-watchbell-run")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    sends.lock().unwrap().push(Sent {
        node,
        at,
        path: parts
            .uri
            .path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default(),
        run,
    });
    let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut out = http.request(parts.method, parts.uri.to_string()).body(body);
    for (k, v) in &parts.headers {
        if !matches!(
            k.as_str(),
            "host" | "connection" | "proxy-connection" | "content-length"
        ) {
            out = out.header(k, v);
        }
    }
    match out.send().await {
        Ok(r) => {
            let (status, headers) = (r.status(), r.headers().clone());
            let body = r.bytes().await.unwrap_or_default();
            let mut resp = (status, body).into_response();
            for (k, v) in &headers {
                if !matches!(
                    k.as_str(),
                    "content-length" | "transfer-encoding" | "connection"
                ) {
                    resp.headers_mut().insert(k, v.clone());
                }
            }
            resp
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// The leader row as the poller saw it.
#[derive(Clone)]
struct Seen {
    at: Instant,
    holder: Option<String>,
    renewed_ms: i64,
}

/// Reads the leader row every 50 ms until dropped.
struct Poller {
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Poller {
    fn start(url: String) -> Poller {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let keep = seen.clone();
        let task = tokio::spawn(async move {
            let mut c = None;
            loop {
                if c.is_none() {
                    c = client(&url).await.ok();
                }
                if let Some(cl) = &c {
                    match cl
                        .query_opt(
                            "SELECT holder, (EXTRACT(EPOCH FROM renewed_at) * 1000)::BIGINT
                               FROM watchbell_leader WHERE epoch > 0",
                            &[],
                        )
                        .await
                    {
                        Ok(Some(r)) => keep.lock().unwrap().push(Seen {
                            at: Instant::now(),
                            holder: r.get(0),
                            renewed_ms: r.get(1),
                        }),
                        Err(e) if e.is_closed() => c = None,
                        Ok(None) | Err(_) => {}
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Poller { seen, task }
    }

    /// The first instant after `since` the row was held by `node`.
    fn held_by(&self, node: &str, since: Instant) -> Option<Instant> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.at >= since && s.holder.as_deref() == Some(node))
            .map(|s| s.at)
    }

    /// Each node's renewals (database clock, ms since the epoch), in order.
    fn renewals(&self) -> HashMap<String, Vec<i64>> {
        let mut out: HashMap<String, Vec<i64>> = HashMap::new();
        for s in self.seen.lock().unwrap().iter() {
            if let Some(h) = &s.holder {
                let r = out.entry(h.clone()).or_default();
                if r.last() != Some(&s.renewed_ms) {
                    r.push(s.renewed_ms);
                }
            }
        }
        out
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const NODES: [&str; 2] = ["one", "two"];

/// A `watchbell run` of the cluster, its log in a file, its database and API traffic through
/// proxies of the harness's.
struct Node {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
    db: Proxy,
    api_port: u16,
}

impl Node {
    fn start(&mut self, dir: &Path, bin: &Path, url: &str, key: &str) {
        let out = std::fs::File::create(&self.log).unwrap();
        let proxy = format!("http://127.0.0.1:{}", self.api_port);
        self.child = Some(
            Command::new(bin)
                .current_dir(dir)
                .arg("run")
                .env("WB_URL", url)
                .env("WATCHBELL_NODE", self.name)
                .env("CAPTAIN_DATA_API_KEY", key)
                .env("HTTP_PROXY", &proxy)
                .env("http_proxy", &proxy)
                .env_remove("NO_PROXY")
                .env_remove("no_proxy")
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap(),
        );
    }

    fn said(&self, what: &str) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|l| l.contains(what))
    }

    async fn until(&self, what: &str, patience: Duration) -> Result<(), String> {
        let end = Instant::now() + patience;
        while !self.said(what) {
            if Instant::now() > end {
                return Err(format!("node {} never said {what:?}", self.name));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }

    /// Waits for the process to end (`patience` at most): its exit code, `None` for a signal.
    async fn exit(&mut self, patience: Duration) -> Result<Option<i32>, String> {
        let end = Instant::now() + patience;
        let Some(c) = self.child.as_mut() else {
            return Err(format!("node {} was not started", self.name));
        };
        loop {
            if let Some(status) = c.try_wait().map_err(|e| e.to_string())? {
                self.child = None;
                return Ok(status.code());
            }
            if Instant::now() > end {
                return Err(format!(
                    "node {} still running after {patience:?}",
                    self.name
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn job_file(sb: &Sandbox) -> String {
    let mut t = format!(
        "[store]\nurl_env = \"WB_URL\"\n[api]\nbase_url = \"{}\"\nplan = \"highest\"\n\
         [safety]\npage_gap = \"1ms..5ms\"\n[defaults]\ncatchup = \"1m\"\n",
        sb.base_url()
    );
    for j in JOBS {
        let _ = write!(
            t,
            "[[job]]\nname = \"{j}\"\ncron = \"* * * * * *\"\naction = \"googlemaps-search-places\"\n\
             input = {{ google_maps_search_url = \"https://www.google.com/maps/search/{j}\" }}\n"
        );
    }
    t
}

/// One repetition of `s`: two nodes, the fault `offset` after both are up, the other node
/// leading (or not), then the audit.
async fn repetition(
    s: Scenario,
    n: usize,
    offset: Duration,
    admin: &str,
    bin: &Path,
) -> Result<Outcome, String> {
    let db = Database::create(admin, format!("wb_failover_{}_{n}", std::process::id())).await?;
    let sb = Sandbox::start(Options {
        pages: 2,
        page_size: Some(2),
        latency: Some(Duration::from_millis(100)),
        ..Options::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("schedules.toml"), job_file(&sb)).map_err(|e| e.to_string())?;
    let sends: Sends = Arc::default();
    let mut nodes = Vec::new();
    for (i, name) in NODES.into_iter().enumerate() {
        nodes.push(Node {
            name,
            child: None,
            log: dir.path().join(format!("{name}.log")),
            db: Proxy::start(db.upstream()).await,
            api_port: http_proxy(i, sends.clone()).await,
        });
    }
    let poller = Poller::start(db.url.clone());
    let key = sb.api_key().to_string();
    let found = async {
        let url = db.via(&nodes[0].db);
        nodes[0].start(dir.path(), bin, &url, &key);
        nodes[0]
            .until("leading; the schedule starts", Duration::from_secs(30))
            .await?;
        let url = db.via(&nodes[1].db);
        nodes[1].start(dir.path(), bin, &url, &key);
        nodes[1]
            .until("starts as a standby", Duration::from_secs(30))
            .await?;
        tokio::time::sleep(offset).await;
        let fault = Instant::now();
        match s {
            Scenario::Kill => nodes[0].signal("-KILL"),
            Scenario::Term => nodes[0].signal("-TERM"),
            Scenario::Stop => nodes[0].signal("-STOP"),
            Scenario::Partition => nodes[0].db.set_cut(true),
            Scenario::Terminate => terminate(&db, "watchbell one").await?,
        }
        let failover = if s == Scenario::Terminate {
            tokio::time::sleep(Duration::from_secs(8)).await;
            poller.held_by("two", fault).map(|t| t - fault)
        } else {
            let end = fault + Duration::from_secs(40);
            loop {
                if let Some(t) = poller.held_by("two", fault) {
                    break Some(t - fault);
                }
                if Instant::now() > end {
                    break None;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        // The new leader (or the kept one) fires for a while.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let exit = match s {
            Scenario::Stop => {
                nodes[0].signal("-CONT");
                expect(nodes[0].exit(Duration::from_secs(30)).await, Some(1))
            }
            Scenario::Partition => {
                let e = expect(nodes[0].exit(Duration::from_secs(30)).await, Some(1));
                nodes[0].db.set_cut(false);
                e
            }
            Scenario::Kill => expect(nodes[0].exit(Duration::from_secs(30)).await, None),
            Scenario::Term => expect(nodes[0].exit(Duration::from_secs(30)).await, Some(0)),
            Scenario::Terminate => {
                // The standby goes first, so the leader drains (no live peer to hand over to).
                nodes[1].signal("-TERM");
                let e = expect(nodes[1].exit(Duration::from_secs(30)).await, Some(0));
                nodes[0].signal("-TERM");
                e.and(expect(nodes[0].exit(Duration::from_mins(1)).await, Some(0)))
            }
        };
        if s != Scenario::Terminate {
            nodes[1].signal("-TERM");
            nodes[1].exit(Duration::from_mins(1)).await?;
        }
        Ok::<_, String>((failover, exit))
    }
    .await;
    poller.task.abort();
    let outcome = match found {
        Ok((failover, exit)) => {
            let mut o = audit(&db, &sends, &poller, &nodes).await?;
            o.failover = failover;
            o.exit = exit.err();
            Ok(o)
        }
        Err(e) => Err(e),
    };
    if outcome
        .as_ref()
        .map_or(true, |o| !o.violations(s).is_empty())
    {
        let keep = std::env::temp_dir().join(format!("failover-{}-{n}", s.name()));
        let _ = std::fs::create_dir_all(&keep);
        for node in &nodes {
            let _ = std::fs::copy(&node.log, keep.join(format!("{}.log", node.name)));
        }
        eprintln!("failover: the nodes' logs are kept in {}", keep.display());
    }
    drop(nodes);
    sb.stop().await;
    db.drop_it().await;
    outcome
}

fn expect(got: Result<Option<i32>, String>, want: Option<i32>) -> Result<(), String> {
    match got {
        Ok(code) if code == want => Ok(()),
        Ok(code) => Err(format!("the old leader exited {code:?}, expected {want:?}")),
        Err(e) => Err(e),
    }
}

/// `pg_terminate_backend` on every session of `application` (a node's: `watchbell NAME`).
async fn terminate(db: &Database, application: &str) -> Result<(), String> {
    let c = client(&db.admin).await?;
    let cut: i64 = c
        .query_one(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
               WHERE datname = $1 AND application_name = $2",
            &[&db.name, &application],
        )
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    if cut == 0 {
        return Err(format!("no session of {application:?} to terminate"));
    }
    Ok(())
}

/// What the repetition left, from the database, the proxies and the leader row's history.
async fn audit(
    db: &Database,
    sends: &Sends,
    poller: &Poller,
    nodes: &[Node],
) -> Result<Outcome, String> {
    let c = client(&db.url).await?;
    let mut o = Outcome::default();
    // Unaccounted seconds: gaps between a job's consecutive tick rows.
    let rows = c
        .query(
            "SELECT job, scheduled_for FROM ticks ORDER BY job, scheduled_for",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut by_job: HashMap<String, Vec<DateTime<Utc>>> = HashMap::new();
    for r in &rows {
        let at = DateTime::parse_from_rfc3339(r.get::<_, &str>(1))
            .map_err(|e| e.to_string())?
            .to_utc();
        by_job.entry(r.get(0)).or_default().push(at);
    }
    for j in JOBS {
        let ticks = by_job.get(j).map_or(&[][..], Vec::as_slice);
        if ticks.len() < 5 {
            o.unaccounted
                .push(format!("job {j}: only {} ticks", ticks.len()));
        }
        for w in ticks.windows(2) {
            let gap = (w[1] - w[0]).num_seconds();
            if gap != 1 {
                o.unaccounted.push(format!(
                    "job {j}: {} seconds missing after {}",
                    gap - 1,
                    w[0]
                ));
            }
        }
    }
    // Run starts, tied to their tick through the database.
    let runs: HashMap<String, String> = c
        .query(
            "SELECT uid, job || ' ' || COALESCE(scheduled_for, 'manual') FROM runs",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let sends = sends.lock().unwrap();
    let mut per_tick: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut asked: HashMap<(&str, &str), usize> = HashMap::new();
    for s in sends.iter().filter(|s| s.path.contains("/run/live")) {
        let Some(uid) = s.run.as_deref() else {
            o.duplicates
                .push(format!("a run start without X-Watchbell-Run: {}", s.path));
            continue;
        };
        *asked.entry((uid, s.path.as_str())).or_default() += 1;
        let first =
            !s.path.contains("page=") || s.path.contains("page=1&") || s.path.ends_with("page=1");
        if !first {
            continue;
        }
        o.starts += 1;
        match runs.get(uid) {
            Some(tick) => {
                per_tick.entry(tick).or_default().insert(uid);
            }
            None => o
                .duplicates
                .push(format!("run {uid} begun at the API is not in the database")),
        }
    }
    for (tick, uids) in &per_tick {
        if uids.len() > 1 {
            o.duplicates
                .push(format!("{tick} begun by {} runs", uids.len()));
        }
    }
    o.resent = asked.values().map(|n| n - 1).sum();
    // Requests past a lease.
    let renewals = poller.renewals();
    for s in sends.iter() {
        let name = nodes[s.node].name;
        let at = s.at.timestamp_millis();
        let last = renewals
            .get(name)
            .and_then(|r| r.iter().rev().find(|&&r| r <= at).copied());
        match last {
            Some(r) if at - r <= LEASE_MS => {}
            Some(r) => o.past_lease.push(format!(
                "node {name} sent {} {} ms after its last renewal",
                s.path,
                at - r
            )),
            None => o
                .past_lease
                .push(format!("node {name} sent {} without ever leading", s.path)),
        }
        // Nor after the other node renewed the row after this one's last renewal.
        let other = NODES.iter().find(|&&m| m != name).unwrap();
        if let (Some(mine), Some(theirs)) = (
            last,
            renewals
                .get(*other)
                .and_then(|r| r.iter().rev().find(|&&r| r <= at).copied()),
        ) && theirs > mine
        {
            o.past_lease.push(format!(
                "node {name} sent {} after node {other} took the lead",
                s.path
            ));
        }
    }
    Ok(o)
}
