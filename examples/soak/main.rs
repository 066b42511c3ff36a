//! The soak: the real `watchbell run` process against the sandbox with its faults on, for a
//! while, while a driver kills and restarts it, holds the database's write lock, fills its disk,
//! edits its job file and runs commands beside it; then an auditor checks, from the database and
//! from what the sandbox and the harness's own webhook receiver saw, every invariant the product
//! promises. It prints each invariant with its checks and violations, and exits 1 on any.
//!
//! ```sh
//! cargo run --release --example soak -- --duration 1h --seed 7
//! source .ci/pg start && cargo run --release --example soak -- --duration 1h --postgres
//! ```
//!
//! With `--postgres` (and `WATCHBELL_TEST_PG_URL`) the state is on a `PostgreSQL` database of the
//! run's own and two nodes run on it ([`cluster`]); the driver kills and stops either, the
//! leader among them, and terminates a node's database sessions instead of holding `SQLite`'s
//! lock; commands beside are those that act on a cluster's database.
//!
//! The last quarter of the run (or `--quiet D`) has no faults: over it the daemon's resident
//! memory, its anonymous part (heap and stacks) on its own, and its descriptors must stay flat. The database lives on a tmpfs of its own when the harness may mount one (root), so
//! the disk can be filled; otherwise that fault is skipped, and said so.

#![allow(clippy::too_many_lines)] // a harness reads best as the story of a run

mod cluster;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};
use watchbell::clock::Clock;
use watchbell::sandbox::{Chaos, Options, Sandbox};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const PAGES: u32 = 3;
const PER_PAGE: u32 = 5;

struct Args {
    duration: Duration,
    seed: u64,
    /// The fault-free end of the run (a quarter of it unless given).
    quiet: Option<Duration>,
    /// Two nodes on `PostgreSQL` (`WATCHBELL_TEST_PG_URL`) instead of one on `SQLite`.
    postgres: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        duration: Duration::from_mins(2),
        seed: 1,
        quiet: None,
        postgres: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--postgres" {
            a.postgres = true;
            continue;
        }
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        match k.as_str() {
            "--duration" => {
                a.duration = humantime::parse_duration(&v).map_err(|e| e.to_string())?;
            }
            "--seed" => {
                a.seed = v.parse().map_err(|_| format!("--seed {v}: a number"))?;
            }
            "--quiet" => {
                a.quiet = Some(humantime::parse_duration(&v).map_err(|e| e.to_string())?);
            }
            _ => {
                return Err(format!(
                    "unknown {k}: --duration D --seed N [--quiet D] [--postgres]"
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
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if rt.block_on(soak(&a)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// xorshift64*, from the seed: the run's every random choice.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What the harness's webhook receiver got: per delivery id, its body and arrival order.
#[derive(Default)]
struct Hooks {
    arrivals: Vec<(String, String)>,
}

async fn hook(State(h): State<Arc<Mutex<Hooks>>>, headers: HeaderMap, body: Bytes) -> &'static str {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = String::from_utf8_lossy(&body).into_owned();
    h.lock().unwrap().arrivals.push((id, body));
    "ok"
}

/// The job file: stable jobs the auditor accounts tick by tick, and one job the driver edits.
/// `port` is where this node's receiver listens, `public` where the vendor reaches one (the
/// same on every node); `store` puts the state in `PostgreSQL`.
fn job_file(
    base: &str,
    hooks: &str,
    (port, public): (u16, u16),
    edit: u64,
    broken: bool,
    store: bool,
) -> String {
    let webhook = format!("webhook = {{ url = \"{hooks}/hook\", secret_env = \"SOAK_SECRET\" }}");
    let place = |q: &str| {
        format!("{{ google_maps_search_url = \"https://www.google.com/maps/search/{q}\" }}")
    };
    let mut t = format!(
        "[api]\nbase_url = \"{base}\"\nv1_base_url = \"{v1}\"\nplan = \"highest\"\n\
         [daemon]\nmax_concurrent_runs = 6\nshutdown_grace = \"2s\"\nsync_interval = \"20s\"\nretain = \"1h\"\n\
         [receiver]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{public}\"\ncallback_timeout = \"20s\"\nreplay_after = \"2s\"\n\
         [safety]\npage_gap = \"1ms..5ms\"\n\
         [defaults]\ncatchup = \"1h\"\nrun_timeout = \"30s\"\n\n",
        v1 = base.replace("/v4", "/v1"),
    );
    let stable = [
        format!("name = \"sec\"\ncron = \"* * * * * *\"\naction = \"googlemaps-search-places\"\ninput = {}\n{webhook}", place("sec")),
        format!("name = \"queue\"\ncron = \"*/5 * * * * *\"\noverlap = \"queue\"\naction = \"googlemaps-search-places\"\ninput = {}", place("queue")),
        format!("name = \"allow\"\ncron = \"*/7 * * * * *\"\noverlap = \"allow\"\naction = \"googlemaps-search-places\"\ninput = {}", place("allow")),
        format!("name = \"replace\"\ncron = \"*/6 * * * * *\"\noverlap = \"replace\"\nretry = {{ attempts = 1, backoff = \"2s\" }}\naction = \"googlemaps-search-places\"\ninput = {}", place("replace")),
        format!("name = \"list\"\ncron = \"*/15 * * * * *\"\ninput_concurrency = 2\naction = \"googlemaps-search-places\"\ninputs = [{}, {}, {}, {}]\n{webhook}", place("l1"), place("l2"), place("l3"), place("l4")),
        "name = \"chain\"\nafter = \"queue\"\naction = \"googlemaps-extract-place\"\ninputs_from = { job = \"queue\", map = { google_maps_place_url = \"google_maps_place_url\" } }".to_string(),
        "name = \"v1\"\ncron = \"*/10 * * * * *\"\nretry = { attempts = 1, backoff = \"1s\" }\nendpoint = \"/people/search\"\nquery = { query = \"(keywords:ceo) sandbox:424@2\" }".to_string(),
        format!("name = \"async\"\ncron = \"*/20 * * * * *\"\nrunner = \"async\"\naction = \"googlemaps-search-places\"\ninputs = [{}, {}]\n{webhook}", place("a1"), place("a2")),
        format!(
            "name = \"connect\"\ncron = \"*/10 * * * * *\"\naction = \"linkedin-connect-profile\"\nidentity_mode = \"auto\"\ninputs = [{}]",
            (0..6)
                .map(|i| format!("{{ linkedin_profile_url = \"https://www.linkedin.com/in/soak{i}\" }}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!("name = \"remote\"\ncron = \"* * * * *\"\nrunner = \"remote\"\nreceive = true\naction = \"googlemaps-search-places\"\ninputs = [{}]", place("r1")),
    ];
    if store {
        t.insert_str(0, "[store]\nurl_env = \"SOAK_PG_URL\"\n");
    }
    for j in &stable {
        let _ = write!(t, "[[job]]\n{j}\n\n");
    }
    // The edited job: present or not, its cron changing.
    if !edit.is_multiple_of(3) {
        let cron = ["*/3 * * * * *", "*/4 * * * * *", "*/9 * * * * *"][(edit % 3) as usize];
        let _ = write!(
            t,
            "[[job]]\nname = \"edited\"\ncron = \"{cron}\"\naction = \"googlemaps-search-places\"\ninput = {}\n",
            place("edited")
        );
    }
    if broken {
        t.push_str("[[job]]\nname = \"broken\"\ncron = \"not a cron\"\n");
    }
    t
}

/// The jobs the auditor accounts tick by tick (never edited).
const STABLE: &[&str] = &[
    "sec", "queue", "allow", "replace", "list", "v1", "async", "connect",
];

struct Daemon {
    /// Its working directory: its job file and `daemon.log`.
    dir: PathBuf,
    /// On `PostgreSQL`: its node name and the database's URL.
    node: Option<(String, String)>,
    child: Option<Child>,
    started: Instant,
    /// Anonymous memory (KiB) at 10 s of uptime, per start that lived that long.
    rss_at_10s: Vec<Usage>,
    starts: u32,
}

fn bin() -> PathBuf {
    let me = std::env::current_exe().unwrap();
    me.parent().unwrap().parent().unwrap().join("watchbell")
}

impl Daemon {
    fn new(dir: PathBuf, node: Option<(String, String)>) -> Daemon {
        Daemon {
            dir,
            node,
            child: None,
            started: Instant::now(),
            rss_at_10s: Vec::new(),
            starts: 0,
        }
    }

    fn start(&mut self, key: &str) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))
            .unwrap();
        let mut cmd = Command::new(bin());
        cmd.current_dir(&self.dir).arg("run");
        match &self.node {
            Some((name, url)) => cmd.env("WATCHBELL_NODE", name).env("SOAK_PG_URL", url),
            None => cmd.args(["--db", &db(&self.dir).display().to_string()]),
        };
        let child = cmd
            .env("CAPTAIN_DATA_API_KEY", key)
            .env("SOAK_SECRET", SECRET)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.started = Instant::now();
        self.starts += 1;
        true
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn signal(&mut self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }

    /// Waits for the process to end (SIGKILL after `patience`); its exit code.
    fn wait(&mut self, patience: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        let until = Instant::now() + patience;
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                return s.code();
            }
            if Instant::now() > until {
                let _ = c.kill();
                return c.wait().ok().and_then(|s| s.code());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How the process ended when it did on its own (nobody asked it to).
    fn ended(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    /// Reads the process's memory once it has been up 10 s (once per start). Called each
    /// second by the driver.
    fn sample(&mut self) {
        if self.started.elapsed() >= Duration::from_secs(10)
            && self.rss_at_10s.len() < self.starts as usize
            && let Some(pid) = self.pid()
            && let Some(u) = usage(pid)
        {
            self.rss_at_10s.push(u);
        }
    }
}

/// A process's memory and descriptors. Resident memory is two kinds: anonymous (heap, stacks:
/// what a leak grows) and file-backed (mostly the binary's own code, paged in the first time a
/// path runs, such as the first sync or sweep after a start: bounded by the files' size).
#[derive(Clone, Copy, Debug)]
struct Usage {
    /// Resident memory in all, KiB.
    rss: u64,
    /// KiB.
    anon: u64,
    /// KiB.
    file: u64,
    fds: usize,
}

fn usage(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some(Usage {
        rss: field("VmRSS:")?,
        anon: field("RssAnon:")?,
        file: field("RssFile:")?,
        fds,
    })
}

fn db(dir: &Path) -> PathBuf {
    dir.join("db").join("watchbell.db")
}

/// A tmpfs of `size` at `at`, when this process may mount one.
fn mount_small(at: &Path) -> bool {
    std::fs::create_dir_all(at).unwrap();
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=48m", "tmpfs"])
        .arg(at)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[derive(Default)]
struct Counts {
    kills: u32,
    leader_kills: u32,
    terms: u32,
    locks: u32,
    disk_full: u32,
    edits: u32,
    commands: u32,
    failed_starts: u32,
    /// Exits nobody asked for, with their node and code (each node is started again, as
    /// systemd would; the audit counts them).
    unasked: Vec<String>,
}

/// The nodes (one on `SQLite`; two on `PostgreSQL`) and what they share.
struct Nodes {
    all: Vec<Daemon>,
    db: Option<cluster::Database>,
}

impl Nodes {
    /// The node `rng` picks; on `PostgreSQL` half the picks are the leader.
    async fn pick(&self, rng: &mut Rng) -> usize {
        let any = rng.below(self.all.len() as u64) as usize;
        match &self.db {
            Some(db) if rng.below(2) == 0 => self.leading(db).await.unwrap_or(any),
            _ => any,
        }
    }

    /// The node that holds the lead row.
    async fn leading(&self, db: &cluster::Database) -> Option<usize> {
        let holder = db.leader().await?;
        self.all
            .iter()
            .position(|d| d.node.as_ref().is_some_and(|(n, _)| *n == holder))
    }

    /// Notes any node that ended on its own, and starts it again.
    fn restart_ended(&mut self, key: &str, n: &mut Counts) {
        for d in &mut self.all {
            if let Some(code) = d.ended() {
                let name = d.node.as_ref().map_or("the daemon", |(n, _)| n.as_str());
                n.unasked.push(format!("{name} ended unasked: {code}"));
                d.start(key);
            }
        }
    }
}

async fn soak(a: &Args) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let db_url = if a.postgres {
        let Ok(u) = std::env::var("WATCHBELL_TEST_PG_URL") else {
            println!("soak: --postgres needs WATCHBELL_TEST_PG_URL (`source .ci/pg start`)");
            return false;
        };
        Some(u)
    } else {
        None
    };
    let mounted = db_url.is_none() && mount_small(&root.join("db"));
    let sb = Sandbox::start(Options {
        pages: PAGES,
        page_size: Some(PER_PAGE),
        // Below the plan's pacing (40/s): 429 bursts, absorbed by the client.
        rate_limit: Some(15.0),
        fail_rate: 0.03,
        latency: Some(Duration::from_millis(3)),
        new_per_run: 2,
        seed: a.seed,
        credits: 3_000,
        fire_schedules: true,
        callbacks: Chaos {
            duplicate: 0.2,
            reorder: 1_000_000,
            drop: 40,
            drop_replays: 10,
            lose_create: 5,
            gap_ms: 0,
            fail_runs: 0,
        },
        ..Options::default()
    })
    .await
    .unwrap();
    let hooks = Arc::new(Mutex::new(Hooks::default()));
    let hook_url = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(hooks.clone());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        url
    };
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    // Each node: its directory, its receiver's port, its name and the database's URL.
    let mut nodes = Nodes {
        all: Vec::new(),
        db: None,
    };
    let mut ports = Vec::new();
    match &db_url {
        None => {
            ports.push(free());
            nodes.all.push(Daemon::new(root.clone(), None));
        }
        Some(admin) => {
            let db =
                cluster::Database::create(admin, format!("wb_soak_{}", std::process::id())).await;
            for name in ["one", "two"] {
                let dir = root.join(name);
                std::fs::create_dir_all(&dir).unwrap();
                ports.push(free());
                let node = Some((name.to_string(), db.url.clone()));
                nodes.all.push(Daemon::new(dir, node));
            }
            nodes.db = Some(db);
        }
    }
    let public = match nodes.db {
        Some(_) => cluster::front(ports.clone()).await,
        None => ports[0],
    };
    let base = sb.base_url().to_string();
    let base = base.trim_end_matches('/');
    let dirs: Vec<PathBuf> = nodes.all.iter().map(|d| d.dir.clone()).collect();
    let store = nodes.db.is_some();
    let write = |edit: u64, broken: bool| {
        for (d, port) in dirs.iter().zip(&ports) {
            let file = job_file(base, &hook_url, (*port, public), edit, broken, store);
            std::fs::write(d.join("schedules.toml"), file).unwrap();
        }
        // The auditor's copy (the nodes' differ only in where they listen).
        let file = job_file(base, &hook_url, (ports[0], public), edit, broken, store);
        std::fs::write(root.join("schedules.toml"), file).unwrap();
    };
    write(1, false);
    println!(
        "soak: seed {}, {:?}, in {} ({})",
        a.seed,
        a.duration,
        root.display(),
        match &nodes.db {
            Some(db) => format!("two nodes on PostgreSQL database {}", db.name),
            None if mounted => "database on a 48 MiB tmpfs".into(),
            None => "cannot mount a tmpfs: the disk-full fault is skipped".into(),
        }
    );
    // Ticks are accounted from the first start on (a backfill may write older ones).
    let first_start = Clock::System.now();
    for d in &mut nodes.all {
        d.start(sb.api_key());
    }
    let mut rng = Rng(a.seed.max(1) * 0x9E37_79B9);
    let mut n = Counts::default();
    let began = Instant::now();
    let faults_end = a.duration.saturating_sub(a.quiet.unwrap_or(a.duration / 4));
    let mut edit = 1u64;
    let mut credits_back = false;
    while began.elapsed() < faults_end {
        let wait = Duration::from_millis(500 + rng.below(2500));
        tokio::time::sleep(wait).await;
        let key = sb.api_key().to_string();
        nodes.restart_ended(&key, &mut n);
        for d in &mut nodes.all {
            d.sample();
        }
        if !credits_back && began.elapsed() > faults_end / 3 {
            sb.new_period(10_000_000);
            credits_back = true;
        }
        let i = nodes.pick(&mut rng).await;
        let led = match &nodes.db {
            Some(db) => nodes.leading(db).await == Some(i),
            None => false,
        };
        let d = &mut nodes.all[i];
        match rng.below(100) {
            0..30 => {
                d.signal("-KILL");
                d.wait(Duration::from_secs(5));
                n.kills += 1;
                n.leader_kills += u32::from(led);
                tokio::time::sleep(Duration::from_millis(rng.below(800))).await;
                d.start(&key);
            }
            30..38 => {
                d.signal("-TERM");
                d.wait(Duration::from_secs(15));
                n.terms += 1;
                d.start(&key);
            }
            38..53 => {
                if let Some(db) = &nodes.db {
                    // The node's database sessions cut by the server: made again, lead kept.
                    let name = &d.node.as_ref().unwrap().0;
                    if db.terminate(name).await > 0 {
                        n.locks += 1;
                    }
                } else {
                    // Some longer than the daemon's 5 s of patience on a busy database.
                    let hold = Duration::from_millis(1000 + rng.below(7000));
                    let path = db(&root);
                    tokio::task::spawn_blocking(move || hold_lock(&path, hold))
                        .await
                        .unwrap();
                    n.locks += 1;
                }
            }
            53..60 if mounted => {
                let hold = Duration::from_millis(1000 + rng.below(3000));
                let ballast = root.join("db").join("ballast");
                // Written until the filesystem is full: dd stops there and keeps what it wrote.
                let _ = Command::new("dd")
                    .args(["if=/dev/zero", "bs=1M", "count=64"])
                    .arg(format!("of={}", ballast.display()))
                    .stderr(Stdio::null())
                    .status();
                tokio::time::sleep(hold).await;
                let _ = std::fs::remove_file(&ballast);
                n.disk_full += 1;
            }
            60..80 => {
                edit += 1;
                let broken = rng.below(5) == 0;
                write(edit, broken);
                if rng.below(2) == 0 {
                    for d in &mut nodes.all {
                        d.signal("-HUP");
                    }
                }
                n.edits += 1;
                if broken {
                    // Broken for a moment: a restart now fails (exit 2), the file is mended.
                    tokio::time::sleep(Duration::from_millis(300 + rng.below(1500))).await;
                    let d = &mut nodes.all[i];
                    if rng.below(3) == 0 {
                        d.signal("-TERM");
                        d.wait(Duration::from_secs(15));
                        d.start(&key);
                        if d.wait(Duration::from_secs(10)) == Some(2) {
                            n.failed_starts += 1;
                        }
                        write(edit, false);
                        d.start(&key);
                    } else {
                        write(edit, false);
                    }
                    n.edits += 1;
                }
            }
            _ => {
                let (dir, on) = (d.dir.clone(), d.node.clone().map(|(_, url)| url));
                command(&dir, on.as_deref(), &key, &mut rng);
                n.commands += 1;
            }
        }
    }
    // The quiet quarter: no faults; memory and descriptors must stay flat. Measured from when
    // the daemon has warmed up (the last fault may have been a restart): after a start under
    // this load its memory climbs for about four minutes to its working set (the hour measured
    // ~1 MB: allocator arenas of the worker threads, SQLite's bounded caches, pools), then
    // holds. A quiet period of ten minutes or more waits five minutes of uptime; a shorter one
    // (CI's) 15 s. On PostgreSQL the node measured is the one leading when the quiet begins.
    let key = sb.api_key().to_string();
    nodes.restart_ended(&key, &mut n);
    let watched = match &nodes.db {
        Some(db) => nodes.leading(db).await.unwrap_or(0),
        None => 0,
    };
    let quiet = a.duration.saturating_sub(began.elapsed());
    let warm_up = if quiet >= Duration::from_mins(10) {
        Duration::from_mins(5)
    } else {
        Duration::from_secs(15)
    };
    // Sampled each second meanwhile: a start just before the quiet period still has its
    // memory read at 10 s of uptime, not at the end of the warm-up.
    let settled = Instant::now()
        + warm_up
            .saturating_sub(nodes.all[watched].started.elapsed())
            .max(Duration::from_secs(5));
    while Instant::now() < settled {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for d in &mut nodes.all {
            d.sample();
        }
    }
    let quiet_from = nodes.all[watched].pid().and_then(usage);
    let quiet_left = a.duration.saturating_sub(began.elapsed());
    let mut t = Duration::ZERO;
    while t < quiet_left {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for d in &mut nodes.all {
            d.sample();
        }
        t += Duration::from_secs(1);
        if t.as_secs().is_multiple_of(60)
            && let Some(u) = nodes.all[watched].pid().and_then(usage)
        {
            println!(
                "quiet {}m: RSS {} KiB (anonymous {}, file-backed {}), {} descriptors",
                t.as_secs() / 60,
                u.rss,
                u.anon,
                u.file,
                u.fds
            );
        }
    }
    let quiet_to = nodes.all[watched].pid().and_then(usage);
    for d in &mut nodes.all {
        if let Some(code) = d.ended() {
            n.unasked
                .push(format!("{:?} ended unasked: {code}", d.node));
        }
    }
    let drained_at = Clock::System.now();
    // The standbys first, so the leader drains its runs instead of handing them over.
    let mut order: Vec<usize> = (0..nodes.all.len()).filter(|i| *i != watched).collect();
    order.push(watched);
    let mut code = None;
    for i in order {
        nodes.all[i].signal("-TERM");
        code = nodes.all[i].wait(Duration::from_secs(30));
    }
    let starts: u32 = nodes.all.iter().map(|d| d.starts).sum();
    println!(
        "faults: {} kills ({} of the leader), {} SIGTERMs, {} {}, {} disk-full windows, {} file edits ({} failed starts on a broken file), {} commands beside; the daemons started {} times; last exit {:?}",
        n.kills,
        n.leader_kills,
        n.terms,
        n.locks,
        if nodes.db.is_some() {
            "sessions terminated"
        } else {
            "lock holds"
        },
        n.disk_full,
        n.edits,
        n.failed_starts,
        n.commands,
        starts,
        code
    );
    if let Some(pg) = &nodes.db {
        std::fs::create_dir_all(root.join("db")).unwrap();
        pg.to_sqlite(&db(&root)).await;
    }
    let logs: Vec<PathBuf> = nodes.all.iter().map(|d| d.dir.join("daemon.log")).collect();
    let audit = Audit::new(&root, &logs, &sb, &hooks, (first_start, drained_at)).await;
    let ok = audit.report(
        &nodes.all[watched],
        (quiet_from, quiet_to),
        quiet,
        &n.unasked,
    );
    sb.stop().await;
    if mounted {
        let _ = Command::new("umount").arg(root.join("db")).status();
    }
    if !ok {
        println!(
            "replay with: cargo run --release --example soak -- --duration {:?} --seed {}{}",
            a.duration,
            a.seed,
            if a.postgres { " --postgres" } else { "" }
        );
        // Keep the evidence.
        let kept = dir.keep();
        println!("kept {}", kept.display());
    } else if let Some(db) = nodes.db.take() {
        db.drop_it().await;
    }
    ok
}

/// Holds the database's write lock from this process for `hold`.
fn hold_lock(path: &Path, hold: Duration) {
    if let Ok(c) = Connection::open(path)
        && c.execute_batch("BEGIN IMMEDIATE").is_ok()
    {
        std::thread::sleep(hold);
        let _ = c.execute_batch("ROLLBACK");
    }
}

/// One command beside the daemon, as a person would type it.
/// On a cluster (`pg`: its URL), in a node's directory: those that act on its database.
fn command(root: &Path, pg: Option<&str>, key: &str, rng: &mut Rng) {
    let dbp = db(root).display().to_string();
    let run = |args: &[&str]| {
        let mut cmd = Command::new(bin());
        cmd.current_dir(root);
        match pg {
            Some(url) => cmd.env("SOAK_PG_URL", url),
            None => cmd.arg("--db").arg(&dbp),
        };
        let _ = cmd
            .args(args)
            .env("CAPTAIN_DATA_API_KEY", key)
            .env("SOAK_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    if pg.is_some() {
        match rng.below(3) {
            0 => run(&["export", "--job", "sec"]),
            1 => run(&["status"]),
            _ => run(&["sync"]),
        }
        return;
    }
    match rng.below(6) {
        0 => run(&["trigger", "list"]),
        1 => {
            if let Some(uid) = stopped_run(&db(root)) {
                run(&["runs", "resume", &uid]);
            }
        }
        2 => {
            let to = Clock::System.now() - chrono::Duration::seconds(30);
            let from = to - chrono::Duration::seconds(20);
            run(&[
                "backfill",
                "sec",
                "--from",
                &from.to_rfc3339(),
                "--to",
                &to.to_rfc3339(),
                "--yes",
            ]);
        }
        3 => run(&["prune"]),
        4 => run(&["export", "--job", "sec"]),
        _ => run(&["sync"]),
    }
}

fn stopped_run(path: &Path) -> Option<String> {
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    c.query_row(
        "SELECT uid FROM runs WHERE status = 'STOPPED' AND job IN ('sec', 'list') ORDER BY id DESC LIMIT 1",
        [],
        |r| r.get(0),
    )
    .ok()
}

/// One invariant's checks and violations.
#[derive(Default)]
struct Finding {
    checks: u64,
    violations: Vec<String>,
}

impl Finding {
    fn check(&mut self, ok: bool, why: impl FnOnce() -> String) {
        self.checks += 1;
        if !ok {
            self.violations.push(why());
        }
    }
}

struct Audit {
    findings: BTreeMap<&'static str, Finding>,
}

impl Audit {
    async fn new(
        root: &Path,
        logs: &[PathBuf],
        sb: &Sandbox,
        hooks: &Arc<Mutex<Hooks>>,
        window: (DateTime<Utc>, DateTime<Utc>),
    ) -> Audit {
        let c = Connection::open_with_flags(db(root), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let config = watchbell::config::Config::load(&root.join("schedules.toml")).unwrap();
        let by_job: Vec<(String, String, i64)> = c
            .prepare(
                "SELECT job, status, COUNT(*) FROM runs GROUP BY job, status ORDER BY job, status",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut line = String::from("runs:");
        for (job, status, n) in by_job {
            let _ = write!(line, " {job}/{status}={n}");
        }
        println!("{line}");
        let log: String = logs
            .iter()
            .map(|l| std::fs::read_to_string(l).unwrap_or_default())
            .collect();
        let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
        println!(
            "daemon log: {} busy-database and {} full-disk lines, {} rate limited, {} callbacks refused, {} replays, {} reloads rejected",
            count("locked") + count("busy"),
            count("full"),
            count("rate limited"),
            count("callback refused"),
            count("replaying a missing callback"),
            count("reload rejected"),
        );
        let mut findings = BTreeMap::new();
        findings.insert(
            "every nominal tick of a stable job accounted once",
            ticks(&c, &config, window),
        );
        findings.insert(
            "no run left open without an owner after the drain",
            open_runs(&c, sb).await,
        );
        findings.insert("no item stored twice in a run; no page missing", items(&c));
        findings.insert(
            "webhook deliveries: each received, repeats identical, in order",
            deliveries(&c, hooks),
        );
        findings.insert(
            "no outreach input sent twice; daily caps never exceeded",
            caps(&c, &sb.outreach_sends()),
        );
        Audit { findings }
    }

    fn report(
        &self,
        d: &Daemon,
        (from, to): (Option<Usage>, Option<Usage>),
        quiet: Duration,
        unasked: &[String],
    ) -> bool {
        let mut ok = true;
        let mut mem = Finding::default();
        let exits = Finding {
            checks: u64::from(d.starts),
            violations: unasked.to_vec(),
        };
        // Resident memory as the issue counts it may grow 5% over the quiet quarter. Its
        // anonymous part (heap and stacks, what a leak grows, hidden in RSS by ~18 MB of mapped
        // code) may grow 10% when the window is ten minutes or more: after a start under this
        // load it settles for 12-15 minutes (allocator arenas, SQLite's bounded caches; a heap
        // profile of a quiet quarter found no growing allocation) and measured up to +8% before
        // its plateau, while a leak of 1 KiB a run (about 100 runs a minute) would pass 13%.
        if let (Some(a), Some(b)) = (from, to) {
            let mut measures = vec![("RSS", a.rss, b.rss, 1.05)];
            if quiet >= Duration::from_mins(10) {
                measures.push(("anonymous memory", a.anon, b.anon, 1.10));
            }
            for (what, x0, x1, most) in measures {
                mem.check(x1 as f64 <= x0 as f64 * most, || {
                    format!(
                        "{what} {x0} KiB -> {x1} KiB over the quiet quarter (> {:.0}%)",
                        (most - 1.0) * 100.0
                    )
                });
            }
            let (f0, f1) = (a.fds, b.fds);
            mem.check(f1 <= f0 + 8, || {
                format!("descriptors {f0} -> {f1} over the quiet quarter (> 8)")
            });
            println!(
                "quiet quarter: RSS {} -> {} KiB (anonymous {} -> {}, file-backed {} -> {}), descriptors {f0} -> {f1}",
                a.rss, b.rss, a.anon, b.anon, a.file, b.file
            );
        }
        // Start against start: on a cluster a start may lead or stand by, which differ.
        if d.node.is_none()
            && let (Some(first), Some(last)) = (d.rss_at_10s.get(1), d.rss_at_10s.last())
        {
            for (what, x0, x1) in [
                ("RSS", first.rss, last.rss),
                ("anonymous memory", first.anon, last.anon),
            ] {
                mem.check(x1 as f64 <= x0 as f64 * 1.10, || {
                    format!("{what} at 10 s of uptime grew from {x0} KiB (first restart) to {x1} KiB (last)")
                });
            }
            println!(
                "at 10 s of uptime: RSS {} -> {} KiB, anonymous {} -> {} KiB, first restart to last ({} samples)",
                first.rss,
                last.rss,
                first.anon,
                last.anon,
                d.rss_at_10s.len()
            );
        }
        for (name, f) in self.findings.iter().map(|(n, f)| (*n, f)).chain([
            ("memory and descriptors stay flat", &mem),
            ("no daemon exited unasked", &exits),
        ]) {
            println!(
                "{:<64} {:>8} checks {:>4} violations",
                name,
                f.checks,
                f.violations.len()
            );
            for v in f.violations.iter().take(10) {
                println!("    {v}");
            }
            ok &= f.violations.is_empty();
        }
        ok
    }
}

fn ticks(
    c: &Connection,
    config: &watchbell::config::Config,
    (started, drained_at): (DateTime<Utc>, DateTime<Utc>),
) -> Finding {
    let mut f = Finding::default();
    for name in STABLE {
        let Some(schedule) = config.job(name).and_then(|j| j.schedule.clone()) else {
            continue;
        };
        let rows: HashMap<String, (String, Option<String>)> = c
            .prepare("SELECT scheduled_for, outcome, run_uid FROM ticks WHERE job = ?1")
            .unwrap()
            .query_map([name], |r| {
                Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?)))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let first = rows
            .keys()
            .filter_map(|k| watchbell::store::parse_ts(k))
            .filter(|t| *t > started)
            .min();
        let Some(first) = first else { continue };
        let until = drained_at - chrono::Duration::seconds(3);
        let mut at = first - chrono::Duration::milliseconds(1);
        while let Some(fire) = schedule.next_after(at).filter(|x| x.at <= until) {
            let key = watchbell::store::ts(fire.at);
            let row = rows.get(&key);
            f.check(row.is_some(), || format!("{name} {key}: no row"));
            if let Some((outcome, run)) = row
                && outcome == "fired"
            {
                let exists = run.as_ref().is_some_and(|u| {
                    c.query_row("SELECT COUNT(*) FROM runs WHERE uid = ?1", [u], |r| {
                        r.get::<_, i64>(0)
                    })
                    .unwrap_or(0)
                        == 1
                });
                f.check(exists, || format!("{name} {key}: fired without its run"));
            }
            at = fire.at;
        }
    }
    f
}

async fn open_runs(c: &Connection, sb: &Sandbox) -> Finding {
    let mut f = Finding::default();
    let open: Vec<(String, String, Option<String>, Option<String>)> = c
        .prepare("SELECT r.uid, r.status, r.owner, a.api_uid FROM runs r LEFT JOIN async_runs a ON a.run_id = r.id WHERE r.status IN ('CREATED', 'QUEUED', 'RUNNING')")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let total: i64 = c
        .query_row("SELECT COUNT(*) FROM runs", [], |r| r.get(0))
        .unwrap();
    f.checks += total as u64;
    let http = reqwest::Client::new();
    for (uid, status, owner, api) in open {
        if owner.as_deref() == Some("async") {
            // Awaiting callbacks: the vendor must know the run.
            let known = match &api {
                Some(a) => http
                    .get(format!("{}/runs/{a}", sb.base_url()))
                    .header("x-api-key", sb.api_key())
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success()),
                None => true, // an unconfirmed create: the sweep adopts or fails it
            };
            f.check(known, || {
                format!("{uid} {status}: async, the sandbox does not know {api:?}")
            });
        } else {
            f.violations
                .push(format!("{uid} left {status} (owner {owner:?})"));
        }
    }
    f
}

fn items(c: &Connection) -> Finding {
    let mut f = Finding::default();
    let dupes: Vec<(String, String, i64)> = c
        .prepare(
            "SELECT r.uid, COALESCE(json_extract(i.data, '$.id'), json_extract(i.data, '$.uid'), i.data) AS k, COUNT(*)
             FROM items i JOIN runs r ON r.id = i.run_id GROUP BY i.run_id, k HAVING COUNT(*) > 1",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let n: i64 = c
        .query_row("SELECT COUNT(*) FROM items", [], |r| r.get(0))
        .unwrap();
    f.checks += n as u64;
    for (run, k, count) in dupes {
        f.violations
            .push(format!("run {run}: item {k} stored {count} times"));
    }
    // A live search that succeeded stored every page the sandbox serves.
    let short: Vec<(String, i64)> = c
        .prepare("SELECT uid, pages FROM runs WHERE job IN ('sec', 'queue', 'allow', 'replace') AND status = 'SUCCEEDED'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (uid, pages) in short {
        f.check(pages == i64::from(PAGES), || {
            format!("run {uid}: SUCCEEDED with {pages} of {PAGES} pages")
        });
    }
    // An async run that succeeded holds each input's pages (a batch counted lost is accounted).
    let asyncs: Vec<(String, i64, i64)> = c
        .prepare(
            "SELECT r.uid, (SELECT COUNT(*) FROM batches b WHERE b.run_id = r.id AND b.status = 'RUNNING'), a.lost
             FROM runs r JOIN async_runs a ON a.run_id = r.id WHERE r.job = 'async' AND r.status IN ('SUCCEEDED', 'PARTIAL_SUCCEEDED')",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (uid, got, lost) in asyncs {
        let want = 2 * i64::from(PAGES);
        f.check(got + lost >= want, || {
            format!("async run {uid}: {got} batches and {lost} lost of {want}")
        });
    }
    f
}

fn deliveries(c: &Connection, hooks: &Arc<Mutex<Hooks>>) -> Finding {
    let mut f = Finding::default();
    let arrivals = hooks.lock().unwrap().arrivals.clone();
    // Repeats carry the same body.
    let mut bodies: HashMap<&str, &str> = HashMap::new();
    for (id, body) in &arrivals {
        match bodies.get(id.as_str()) {
            Some(b) => f.check(b == body, || {
                format!("delivery {id}: a repeat with another body")
            }),
            None => {
                bodies.insert(id, body);
            }
        }
    }
    let first_arrival: HashMap<&str, usize> = arrivals
        .iter()
        .enumerate()
        .rev()
        .map(|(i, (id, _))| (id.as_str(), i))
        .collect();
    let delivered: Vec<(i64, i64, String, String)> = c
        .prepare("SELECT run_id, seq, job, body FROM deliveries WHERE kind = 'callback' AND state = 'delivered' ORDER BY run_id, seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut last: HashMap<i64, usize> = HashMap::new();
    let mut seen = HashSet::new();
    for (run, seq, job, body) in delivered {
        let id = watchbell::signatures::delivery_id(&job, run, seq, &body);
        let at = first_arrival.get(id.as_str()).copied();
        f.check(at.is_some(), || {
            format!("run {run} delivery {seq}: recorded delivered, never received")
        });
        if let Some(at) = at {
            let before = last.insert(run, at);
            f.check(before.is_none_or(|b| b < at), || {
                format!("run {run} delivery {seq}: received before an earlier one")
            });
        }
        seen.insert(id);
    }
    f
}

fn caps(c: &Connection, sent: &HashMap<String, u32>) -> Finding {
    let mut f = Finding::default();
    for (input, n) in sent {
        f.check(*n <= 1, || format!("{input}: sent {n} times"));
    }
    let days: Vec<(String, i64, i64)> = c
        .prepare("SELECT lane, outreach, visits FROM lane_days")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (lane, outreach, visits) in days {
        f.check(outreach <= 25 && visits <= 80, || {
            format!("lane {lane}: {outreach} outreach, {visits} visits in a day")
        });
    }
    f
}
