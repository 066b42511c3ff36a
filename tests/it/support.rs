//! Helpers shared by the integration tests.

use std::path::Path;
use std::process::{Child, Command as Process, Stdio};
use std::sync::Arc;
use std::time::Duration;

use assert_cmd::Command;
use watchbell::api::{ApiKey, Client, Pacer, RetryPolicy};
use watchbell::clock::Clock;
use watchbell::runner::{Limits, Runner, Stop};
use watchbell::sandbox::{Options, Sandbox};
use watchbell::store::{self, NewRun, RunRecord, Store, Trigger};

/// The watchbell binary, run in `dir` with no API key in its environment.
pub fn watchbell(dir: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("watchbell").expect("binary built");
    cmd.current_dir(dir).env_remove("CAPTAIN_DATA_API_KEY");
    cmd
}

pub async fn sandbox(opts: Options) -> Sandbox {
    Sandbox::start(opts).await.expect("sandbox starts")
}

/// A fresh store: `SQLite` in `dir`, or with `WATCHBELL_TEST_STORE=postgres` a new database on
/// the server at `WATCHBELL_TEST_PG_URL` (`.ci/run` runs the suite's in-process half both ways).
pub fn store_in(dir: &tempfile::TempDir) -> Store {
    // As patient as the daemon (a test that fills the disk must not wait out a CLI's patience).
    let patience = Duration::from_secs(5);
    if std::env::var("WATCHBELL_TEST_STORE").as_deref() == Ok("postgres") {
        let url = std::env::var("WATCHBELL_TEST_PG_URL")
            .expect("WATCHBELL_TEST_STORE=postgres needs WATCHBELL_TEST_PG_URL");
        let admin = watchbell::store::pg::Target::parse(&url).unwrap();
        let name = format!(
            "wb_it_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let c = watchbell::store::pg::connect(&admin).await.unwrap();
                    c.batch_execute(&format!("CREATE DATABASE {name}"))
                        .await
                        .unwrap();
                });
            })
            .join()
            .unwrap();
        });
        return Store::open_postgres(&admin.database(&name), patience).unwrap();
    }
    Store::open_with(&dir.path().join("watchbell.db"), patience).unwrap()
}

static NEXT_DB: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A runner over a fresh database in `dir`, talking to `base` with `key`.
pub fn runner(dir: &tempfile::TempDir, base: &str, key: &str, pacer: Pacer) -> Runner {
    // As patient as the daemon (a test that fills the disk must not wait out a CLI's patience).
    let store = store_in(dir);
    let client = Client::new(
        base.parse().unwrap(),
        ApiKey::new(key),
        Arc::new(pacer),
        Duration::from_secs(10),
        Clock::System,
    )
    .unwrap()
    .with_retry(RetryPolicy {
        rate_limit_retries: 30,
        server_retries: 2,
        base_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
    });
    Runner {
        store,
        client,
        clock: Clock::System,
        safety: fast_safety(),
        receiver: None,
    }
}

/// `[safety]` for tests: lanes still one request at a time, with millisecond gaps.
pub fn fast_safety() -> watchbell::config::Safety {
    watchbell::config::Safety {
        page_gap: (Duration::from_millis(1), Duration::from_millis(5)),
        ..watchbell::config::Safety::default()
    }
}

/// The `[safety]` table of [`fast_safety`], for job files.
pub const FAST_SAFETY: &str = "[safety]\npage_gap = \"1ms..5ms\"\n";

pub const LIMITS: Limits = Limits::bounds(100, Duration::from_mins(1));

/// Creates a run of `action` with `body` (CREATED, before any request).
pub async fn create(r: &Runner, action: &str, body: serde_json::Value) -> RunRecord {
    let now = r.clock.now();
    r.store
        .create_run(new_run("test-job", action, &body), now)
        .await
        .unwrap()
}

/// A manual run of `job` as `trigger` would make it, with no callback and no owner.
pub fn new_run(job: &str, action: &str, body: &serde_json::Value) -> NewRun {
    NewRun {
        job: job.into(),
        action_name: action.into(),
        trigger: Trigger::Manual,
        scheduled_for: None,
        body: body.to_string(),
        callback_url: None,
        owner: None,
    }
}

/// Creates and executes a run to its end.
pub async fn run_once(r: &Runner, action: &str, body: serde_json::Value) -> RunRecord {
    let run = create(r, action, body).await;
    r.execute(&run.uid, &LIMITS, &Stop::new()).await.unwrap()
}

/// A catalog action that pages through results and takes no identity: the tests' default.
pub const PAGED: &str = "googlemaps-search-places";
/// Its input, as TOML and as JSON.
const PAGED_INPUT: &str =
    "{ google_maps_search_url = \"https://www.google.com/maps/search/pizza\" }";

/// The live body of a [`PAGED`] run.
pub fn body() -> serde_json::Value {
    serde_json::json!({"input": {"google_maps_search_url": "https://www.google.com/maps/search/pizza"}})
}

/// A `[[job]]` entry built key by key, valid against the catalog as it stands: by default a
/// [`PAGED`] action with its input; [`JobToml::action`] swaps in another action's example.
#[derive(Clone, Debug)]
pub struct JobToml {
    keys: Vec<(String, String)>,
}

/// A job named `name` firing on `cron`.
pub fn job(name: &str, cron: &str) -> JobToml {
    JobToml {
        keys: vec![
            ("name".into(), format!("{name:?}")),
            ("cron".into(), format!("{cron:?}")),
            ("action".into(), format!("{PAGED:?}")),
            ("input".into(), PAGED_INPUT.into()),
        ],
    }
}

impl JobToml {
    /// Sets `key` to a TOML value written as is (`"\"allow\""`, `3`, `{ url = .. }`).
    pub fn set(mut self, key: &str, value: impl std::fmt::Display) -> JobToml {
        let value = value.to_string();
        match self.keys.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.keys.push((key.into(), value)),
        }
        self
    }

    /// Sets `key` to a string.
    pub fn text(self, key: &str, value: &str) -> JobToml {
        self.set(key, format!("{value:?}"))
    }

    /// Runs `action` with the catalog's example request for it.
    pub fn action(mut self, action: &str) -> JobToml {
        self.keys.retain(|(k, _)| {
            !matches!(
                k.as_str(),
                "action" | "input" | "parameters" | "identity_mode"
            )
        });
        let example = watchbell::catalog::example_job(action, watchbell::catalog::ModeName::Live)
            .unwrap_or_else(|| panic!("{action} is not in the catalog"));
        for line in example.lines() {
            let (k, v) = line.split_once(" = ").expect("key = value");
            self.keys.push((k.into(), v.into()));
        }
        self
    }
}

impl std::fmt::Display for JobToml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "[[job]]")?;
        for (k, v) in &self.keys {
            writeln!(f, "{k} = {v}")?;
        }
        Ok(())
    }
}

/// Every stored item's `id`, in order.
pub async fn item_ids(r: &Runner, run: &RunRecord) -> Vec<String> {
    r.store
        .items(run.id)
        .await
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Waits for `cond` to hold, checking every 20 ms, failing after `deadline`.
pub async fn eventually<F, Fut>(deadline: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < deadline,
            "condition not met within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Serves `app` on a free loopback port; returns `http://ADDR`.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

/// A daemon running in this process.
pub struct InProcess {
    pub runner: Runner,
    pub heartbeat: watchbell::scheduler::Heartbeat,
    pub reload: tokio::sync::mpsc::Sender<()>,
    pub config_path: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl InProcess {
    /// Starts `watchbell run` in-process on the job file `toml` (written to `dir`), against `sb`.
    pub async fn start(
        dir: &tempfile::TempDir,
        sb: &Sandbox,
        toml: &str,
        clock: Clock,
    ) -> InProcess {
        InProcess::start_with(dir, sb, toml, clock, None).await
    }

    /// Like [`InProcess::start`], serving metrics on `metrics`.
    pub async fn start_with(
        dir: &tempfile::TempDir,
        sb: &Sandbox,
        toml: &str,
        clock: Clock,
        metrics: Option<tokio::net::TcpListener>,
    ) -> InProcess {
        InProcess::start_full(dir, sb, toml, clock, (metrics, None)).await
    }

    /// Like [`InProcess::start`], serving metrics and callbacks (`[receiver]`) where given.
    pub async fn start_full(
        dir: &tempfile::TempDir,
        sb: &Sandbox,
        toml: &str,
        clock: Clock,
        (metrics, receiver): (
            Option<tokio::net::TcpListener>,
            Option<tokio::net::TcpListener>,
        ),
    ) -> InProcess {
        let path = dir.path().join("schedules.toml");
        std::fs::write(&path, job_file(sb, toml)).unwrap();
        let config = watchbell::config::Config::load(&path).unwrap();
        let mut r = runner(
            dir,
            sb.base_url().as_str(),
            sb.api_key(),
            Pacer::unlimited(),
        );
        r.clock = clock;
        r.receiver.clone_from(&config.receiver);
        let (reload, reloads) = tokio::sync::mpsc::channel(4);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let heartbeat = watchbell::scheduler::Heartbeat::default();
        let daemon = watchbell::daemon::Daemon {
            config,
            config_path: path.clone(),
            runner: r.clone(),
            reloads,
            heartbeat: heartbeat.clone(),
            metrics,
            receiver,
            credits_every: Duration::from_millis(200),
            missed: watchbell::store::SkipReason::DaemonDown,
            handover: std::sync::Arc::default(),
        };
        let task = tokio::spawn(async move {
            daemon
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        // Armed: the scheduler has made its first pass.
        let hb = heartbeat.clone();
        eventually(Duration::from_secs(10), || {
            let hb = hb.clone();
            async move { hb.beats() > 0 }
        })
        .await;
        InProcess {
            runner: r,
            heartbeat,
            reload,
            config_path: path,
            stop: Some(stop),
            task,
        }
    }

    /// Asks for a reload and waits until the scheduler has applied it.
    pub async fn reload_and_wait(&self) {
        let before = self.heartbeat.beats();
        self.reload.send(()).await.unwrap();
        let hb = self.heartbeat.clone();
        eventually(Duration::from_secs(10), || {
            let hb = hb.clone();
            async move { hb.beats() > before }
        })
        .await;
    }

    pub async fn ticks(&self, job: Option<&str>) -> Vec<store::TickRecord> {
        self.runner.store.ticks(job, None).await.unwrap()
    }

    pub async fn run(&self, uid: &str) -> RunRecord {
        self.runner.store.existing_run(uid).await.unwrap()
    }

    pub async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap();
    }
}

/// A job file whose `[api]` points at the sandbox, followed by `rest`.
pub fn job_file(sb: &Sandbox, rest: &str) -> String {
    format!(
        "[api]\nbase_url = \"{}\"\nplan = \"highest\"\n{FAST_SAFETY}\n{rest}",
        sb.base_url()
    )
}

/// Parses an RFC 3339 instant.
pub fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

// Real processes.

/// How long a test waits for a real process.
pub const WAIT: Duration = Duration::from_secs(30);

/// A spawned `watchbell run`, killed when dropped, so a failing test leaves no daemon behind.
pub struct Spawned(Child);

impl std::ops::Deref for Spawned {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `watchbell run` in `dir` against `sb`, its log in `dir/log`.
pub fn spawn(dir: &Path, sb: &Sandbox, log: &str) -> Spawned {
    let child = Process::new(assert_cmd::cargo::cargo_bin("watchbell"))
        .current_dir(dir)
        .arg("run")
        .env("CAPTAIN_DATA_API_KEY", sb.api_key())
        .env("RUST_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(log)).unwrap())
        .spawn()
        .unwrap();
    Spawned(child)
}

pub fn signal(child: &Child, sig: &str) {
    let ok = Process::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Reads the database beside the daemon (read-only, as the CLI does).
pub fn read<T>(dir: &Path, f: impl Fn(&store::Reader) -> T) -> Option<T> {
    let path = dir.join("watchbell.db");
    path.exists()
        .then(|| store::open_read_only(&path).ok())
        .flatten()
        .map(|c| f(&c))
}

/// A RUNNING run of the daemon in `dir` with at least `pages` stored: one to kill it under.
pub async fn running_with_pages(dir: &Path, pages: u32) -> RunRecord {
    let mut victim = None;
    eventually(WAIT, || {
        victim = read(dir, |c| {
            c.list_runs(&store::RunFilter {
                status: Some(watchbell::status::RunStatus::Running),
                ..store::RunFilter::default()
            })
            .unwrap_or_default()
            .into_iter()
            .find(|r| r.pages >= pages)
        })
        .flatten();
        let found = victim.is_some();
        async move { found }
    })
    .await;
    victim.expect("found")
}

pub fn ticks(dir: &Path, job: &str) -> usize {
    read(dir, |c| c.ticks(Some(job), None).map_or(0, |t| t.len())).unwrap_or(0)
}

pub async fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let mut status = None;
    eventually(WAIT, || {
        status = child.try_wait().unwrap();
        let done = status.is_some();
        async move { done }
    })
    .await;
    status.unwrap()
}

pub fn log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}
