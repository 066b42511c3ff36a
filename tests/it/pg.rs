//! The `PostgreSQL` half: against the server at `WATCHBELL_TEST_PG_URL` (`.ci/run` starts a
//! throwaway one). Without it each test says it skipped and passes. Every test works in a
//! database of its own, created here and dropped after.

use std::time::Duration;

use tokio_postgres::Client;
use watchbell::clock::Clock;
use watchbell::store::pg::{self, PgErrorKind, Target, copy, lead, leader, schema};

use crate::proxy::Proxy;
use crate::support::{InProcess, eventually, job, sandbox, watchbell};

/// A database of this test's own, dropped when the value is.
struct Db {
    admin: String,
    name: String,
    pub url: String,
}

impl Db {
    /// `None` (and a line saying so) when no `PostgreSQL` is configured for the tests.
    async fn new(test: &str) -> Option<Db> {
        let Ok(admin) = std::env::var("WATCHBELL_TEST_PG_URL") else {
            // Written past the test harness's capture, once, so a plain `cargo test` says it.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "note: WATCHBELL_TEST_PG_URL is not set: the PostgreSQL half of the suite (pg::*) is skipped; .ci/run starts a PostgreSQL for it"
                );
            });
            return None;
        };
        let name = format!("wb_{}_{}", test, std::process::id());
        let c = client(&admin).await;
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            c.batch_execute(&sql).await.unwrap();
        }
        let mut url = reqwest::Url::parse(&admin).unwrap();
        url.set_path(&name);
        Some(Db {
            admin,
            name,
            url: url.to_string(),
        })
    }

    fn target(&self) -> Target {
        Target::parse(&self.url).unwrap()
    }

    async fn client(&self) -> Client {
        client(&self.url).await
    }

    /// A client of this database, its tables migrated.
    async fn migrated(&self) -> Client {
        let mut c = self.client().await;
        schema::migrate(&mut c, &self.target()).await.unwrap();
        c
    }
}

/// Lease timings fast enough for a test: the row expires after `expire_ms`, the node stops
/// acting a third earlier, renewals every 100 ms, standbys look every 50 ms.
fn fast(expire_ms: u64) -> leader::Timings {
    leader::Timings {
        renew: Duration::from_millis(100),
        expire: Duration::from_millis(expire_ms),
        stop: Duration::from_millis(expire_ms * 2 / 3),
        poll: Duration::from_millis(50),
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let c = client(&admin).await;
                let _ = c
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

async fn client(url: &str) -> Client {
    pg::connect(&Target::parse(url).unwrap()).await.unwrap()
}

/// Two nodes starting together migrate once: the advisory lock serialises them and the second
/// finds the version the first wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_under_an_advisory_lock() {
    let Some(db) = Db::new("migrate").await else {
        return;
    };
    let target = db.target();
    let (mut one, mut two) = (db.client().await, db.client().await);
    let (ra, rb) = tokio::join!(
        schema::migrate(&mut one, &target),
        schema::migrate(&mut two, &target)
    );
    assert_eq!(ra.unwrap(), rb.unwrap());
    let c = db.client().await;
    let rows: i64 = c
        .query_one("SELECT count(*) FROM watchbell_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
    assert_eq!(schema::version(&c).await.unwrap(), sqlite_version());
    for table in schema::tables() {
        c.query_one(&format!("SELECT count(*) FROM \"{table}\""), &[])
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
    }
    // A database written by a newer build is refused, naming both versions.
    c.execute("UPDATE watchbell_schema SET version = version + 1", &[])
        .await
        .unwrap();
    let e = schema::migrate(&mut one, &target).await.unwrap_err();
    assert!(e.message.contains("newer watchbell"), "{}", e.message);
}

/// The `SQLite` schema version, read from a fresh `SQLite` database.
fn sqlite_version() -> i64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    drop(watchbell::store::Store::open(&path).unwrap());
    let c = rusqlite::Connection::open(&path).unwrap();
    c.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

/// A real state (a per-second job's runs, pages, items, ticks, deliveries; a remote link) is
/// copied whole: every row of every table reads back the same from `PostgreSQL`. A second copy
/// into the now full database is refused and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_copy_moves_every_row_of_every_table() {
    let Some(db) = Db::new("copy").await else {
        return;
    };
    let sb = sandbox(watchbell::sandbox::Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let toml = job("every", "* * * * * *").to_string();
    let d = InProcess::start(&dir, &sb, &toml, Clock::System).await;
    let store = d.runner.store.clone();
    eventually(Duration::from_secs(20), || {
        let s = store.clone();
        async move {
            s.list_runs(watchbell::store::RunFilter::default())
                .await
                .unwrap()
                .iter()
                .filter(|r| r.status.is_final())
                .count()
                >= 3
        }
    })
    .await;
    store
        .set_link(
            watchbell::store::Link {
                job: "remote".into(),
                uid: "sch_1".into(),
                hash: Some("abc".into()),
                adopted_from: None,
            },
            Some("active"),
            Clock::System.now(),
        )
        .await
        .unwrap();
    d.shutdown().await;
    drop(store);
    let lite = dir.path().join("watchbell.db");
    let t = db.target();
    let mut c = db.client().await;
    let copied = copy::to_postgres(&lite, &mut c, &t).await.unwrap();
    assert!(copied.rows() > 20, "{copied:?}");
    let sqlite = rusqlite::Connection::open(&lite).unwrap();
    for table in schema::tables() {
        let lite_rows = lite_dump(&sqlite, &table);
        let pg_rows = pg_dump(&c, &table).await;
        assert_eq!(lite_rows, pg_rows, "table {table}");
        let n = copied.tables.iter().find(|(t, _)| *t == table).unwrap().1;
        assert_eq!(n, lite_rows.len() as u64, "table {table}");
    }
    for t in [
        "runs",
        "ticks",
        "pages",
        "items",
        "transitions",
        "remote_links",
    ] {
        assert!(!lite_dump(&sqlite, t).is_empty(), "{t} was copied empty");
    }
    // New rows take ids after the copied ones.
    let next: i64 = c
        .query_one(
            "INSERT INTO runs (uid, job, action_name, trigger, body, status, created_at)
             VALUES ('x', 'j', 'a', 'manual', '{}', 'CREATED', 'now') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let max: i64 = sqlite
        .query_row("SELECT max(id) FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(next, max + 1);
    let e = copy::to_postgres(&lite, &mut c, &t).await.unwrap_err();
    assert!(
        e.message.contains("already holds a watchbell state"),
        "{}",
        e.message
    );
}

/// Every row of a `SQLite` table as text, in a stable order.
fn lite_dump(c: &rusqlite::Connection, table: &str) -> Vec<String> {
    let create: String = c
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .unwrap();
    // PostgreSQL keeps SQLite's implicit rowid as its last column, with the same values.
    let all = if schema::keeps_rowid(&create) {
        "*, rowid"
    } else {
        "*"
    };
    let mut stmt = c
        .prepare(&format!("SELECT {all} FROM \"{table}\""))
        .unwrap();
    let n = stmt.column_count();
    let mut rows: Vec<String> = stmt
        .query_map([], |r| {
            Ok((0..n)
                .map(|i| match r.get::<_, rusqlite::types::Value>(i).unwrap() {
                    rusqlite::types::Value::Null => "NULL".to_string(),
                    rusqlite::types::Value::Integer(v) => v.to_string(),
                    rusqlite::types::Value::Text(s) => s,
                    other => format!("{other:?}"),
                })
                .collect::<Vec<_>>()
                .join("|"))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows.sort();
    rows
}

/// Every row of a `PostgreSQL` table as text, in the same form.
async fn pg_dump(c: &Client, table: &str) -> Vec<String> {
    let cols = c
        .query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .await
        .unwrap();
    let list = cols
        .iter()
        .map(|r| format!("COALESCE(\"{}\"::text, 'NULL')", r.get::<_, String>(0)))
        .collect::<Vec<_>>()
        .join(" || '|' || ");
    let mut out: Vec<String> = c
        .query(&format!("SELECT {list} FROM \"{table}\""), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    out.sort();
    out
}

/// One leader at a time, on the database's clock: the first node takes the row, the second
/// follows; a release hands it over at once with a new epoch; an expired row is taken whatever
/// its holder's configuration (said); the old epoch's fence fails from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_and_old_epochs_are_fenced() {
    let Some(db) = Db::new("leader").await else {
        return;
    };
    let _c = db.migrated().await;
    let fast = fast(600);
    let (mut a, mut b) = (db.client().await, db.client().await);
    let first = leader::attempt(&mut a, "node-a", "h1", fast).await.unwrap();
    assert_eq!(
        first,
        leader::Attempt::Leads {
            epoch: 1,
            took: true,
            hash_differs: false
        }
    );
    match leader::attempt(&mut b, "node-b", "h1", fast).await.unwrap() {
        leader::Attempt::Follows(holder) => {
            assert_eq!(holder.node.as_deref(), Some("node-a"));
            assert_eq!(holder.epoch, 1);
            assert!(holder.live());
        }
        other @ leader::Attempt::Leads { .. } => panic!("{other:?}"),
    }
    // Renewing keeps the epoch.
    assert!(matches!(
        leader::attempt(&mut a, "node-a", "h1", fast).await.unwrap(),
        leader::Attempt::Leads {
            epoch: 1,
            took: false,
            ..
        }
    ));
    assert_eq!(
        leader::live_peers(&a, "node-a", fast).await.unwrap(),
        ["node-b"]
    );
    // A clean stop: released, taken at once by the standby with a new epoch.
    assert!(leader::release(&a, "node-a", 1).await.unwrap());
    assert!(matches!(
        leader::attempt(&mut b, "node-b", "h2", fast).await.unwrap(),
        leader::Attempt::Leads {
            epoch: 2,
            took: true,
            hash_differs: false
        }
    ));
    // node-a's old epoch no longer writes.
    let mut ca = db.client().await;
    let tx = ca.transaction().await.unwrap();
    assert!(!leader::fence(&tx, "node-a", 1).await.unwrap());
    tx.rollback().await.unwrap();
    // node-b goes silent; once its row expires node-a takes it, though its file differs.
    tokio::time::sleep(fast.expire + Duration::from_millis(100)).await;
    assert!(matches!(
        leader::attempt(&mut a, "node-a", "h1", fast).await.unwrap(),
        leader::Attempt::Leads {
            epoch: 3,
            took: true,
            hash_differs: true
        }
    ));
    let tx = ca.transaction().await.unwrap();
    assert!(leader::fence(&tx, "node-a", 3).await.unwrap());
    tx.commit().await.unwrap();
    let mut cb = db.client().await;
    let tx = cb.transaction().await.unwrap();
    assert!(!leader::fence(&tx, "node-b", 2).await.unwrap());
}

/// A fenced write holds the row: a takeover waits for it to end, so no write of an old epoch
/// commits after a new epoch began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_waits_for_the_fenced_write_in_flight() {
    let Some(db) = Db::new("fence").await else {
        return;
    };
    let _c = db.migrated().await;
    let fast = fast(300);
    let mut a = db.client().await;
    leader::attempt(&mut a, "node-a", "h", fast).await.unwrap();
    let mut writer = db.client().await;
    let tx = writer.transaction().await.unwrap();
    assert!(leader::fence(&tx, "node-a", 1).await.unwrap());
    tokio::time::sleep(fast.expire + Duration::from_millis(50)).await;
    let mut b = db.client().await;
    let takeover = tokio::spawn(async move { leader::attempt(&mut b, "node-b", "h", fast).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !takeover.is_finished(),
        "the takeover did not wait for the fenced write"
    );
    tx.execute(
        "INSERT INTO ticks (job, scheduled_for, outcome) VALUES ('j', 't', 'fired')",
        &[],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let taken = takeover.await.unwrap().unwrap();
    assert!(
        matches!(taken, leader::Attempt::Leads { epoch: 2, .. }),
        "{taken:?}"
    );
}

/// Errors name the user and host, never the password; refused credentials are a configuration
/// to fix (exit 2), an unreachable server one to wait for (exit 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_name_user_and_host_never_the_password() {
    let Some(db) = Db::new("errors").await else {
        return;
    };
    let mut bad = reqwest::Url::parse(&db.url).unwrap();
    bad.set_password(Some("wrong-Pa55word")).unwrap();
    let t = Target::parse(bad.as_str()).unwrap();
    let e = pg::connect(&t).await.unwrap_err();
    assert_eq!(e.kind, PgErrorKind::Config, "{}", e.message);
    assert_eq!(e.exit_code(), 2);
    assert!(e.message.contains("postgres@127.0.0.1"), "{}", e.message);
    assert!(!e.message.contains("wrong-Pa55word"), "{}", e.message);
    // A port nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let mut gone = bad.clone();
    gone.set_port(Some(port)).unwrap();
    let e = pg::connect(&Target::parse(gone.as_str()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind, PgErrorKind::Unreachable, "{}", e.message);
    assert_eq!(e.exit_code(), 1);
    assert!(!e.message.contains("wrong-Pa55word"), "{}", e.message);
}

/// The command: `store copy --to-postgres` reads the URL from `[store] url_env`, copies, and
/// says how much; the daemon refuses a file with `[store]` (exit 2) rather than run elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copy_command_and_the_daemons_refusal() {
    let Some(db) = Db::new("cli").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    drop(watchbell::store::Store::open(&d.join("watchbell.db")).unwrap());
    let toml = format!(
        "[store]\nurl_env = \"WB_TEST_URL\"\n{}",
        job("j", "0 9 * * *")
    );
    std::fs::write(d.join("schedules.toml"), toml).unwrap();
    let url = db.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        watchbell(&d)
            .args(["store", "copy", "--to-postgres"])
            .env("WB_TEST_URL", &url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("copied 0 row(s)"), "{stdout}");
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        watchbell(&d)
            .args(["store", "copy", "--to-postgres"])
            .env_remove("WB_TEST_URL")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WB_TEST_URL is not set"));
}

/// `run` with `[store]` whose variable is unset exits 2 naming it, and leaves no `SQLite` file
/// behind (the user meant the state to be elsewhere); `check` accepts the file.
#[test]
fn the_daemon_on_an_unset_store_variable_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[store]\nurl_env = \"WB_TEST_URL\"\n{}",
        job("j", "0 9 * * *")
    );
    std::fs::write(dir.path().join("schedules.toml"), toml).unwrap();
    let out = watchbell(dir.path())
        .args(["run"])
        .env_remove("WB_TEST_URL")
        .env("CAPTAIN_DATA_API_KEY", "k")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WB_TEST_URL is not set"), "{err}");
    assert!(!dir.path().join("watchbell.db").exists());
    let out = watchbell(dir.path()).args(["check"]).output().unwrap();
    assert!(out.status.success());
    // Commands that write do not split the state into a SQLite file beside the cluster's.
    for (args, said) in [
        (&["trigger", "j"][..], "does not write to yet"),
        (&["sync"], "WB_TEST_URL is not set"),
    ] {
        let out = watchbell(dir.path())
            .args(args)
            .env("CAPTAIN_DATA_API_KEY", "k")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(said), "{args:?}: {err}");
    }
    assert!(!dir.path().join("watchbell.db").exists());
}

/// TLS through rustls: `require` encrypts without checking the certificate, `verify-full`
/// checks chain and name against `sslrootcert` (here the test cluster's own CA) or the system's
/// roots, which do not know that CA: refused, as a configuration to fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_require_and_verify_full() {
    let Some(db) = Db::new("tls").await else {
        return;
    };
    let Ok(ca) = std::env::var("WATCHBELL_TEST_PG_CA") else {
        eprintln!("skipped: WATCHBELL_TEST_PG_CA is not set (the cluster has no TLS)");
        return;
    };
    let encrypted = |c: Client| async move {
        c.query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get::<_, bool>(0)
    };
    let c = client(&format!("{}?sslmode=require", db.url)).await;
    assert!(encrypted(c).await);
    let mut named = reqwest::Url::parse(&db.url).unwrap();
    named.set_host(Some("localhost")).unwrap();
    let c = client(&format!("{named}?sslmode=verify-full&sslrootcert={ca}")).await;
    assert!(encrypted(c).await);
    let t = Target::parse(&format!("{named}?sslmode=verify-full")).unwrap();
    let e = pg::connect(&t).await.unwrap_err();
    assert_eq!(e.kind, PgErrorKind::Config, "{}", e.message);
    assert!(e.message.contains("TLS"), "{}", e.message);
}

/// Intervals during which a node could act as leader, as its role channel published them:
/// from a lease's start to its withdrawal, or, when the node died, to the lease's own end.
type Terms =
    std::sync::Arc<std::sync::Mutex<Vec<(String, tokio::time::Instant, tokio::time::Instant)>>>;

fn watch_terms(
    name: &str,
    mut rx: tokio::sync::watch::Receiver<lead::Role>,
    t: leader::Timings,
    terms: Terms,
) -> tokio::task::JoinHandle<()> {
    let name = name.to_string();
    tokio::spawn(async move {
        let mut open: Option<lead::LeaseView> = None;
        loop {
            let changed = rx.changed().await;
            let now = tokio::time::Instant::now();
            if let Some(v) = open.take() {
                let end = if changed.is_ok() {
                    now.min(v.began + t.stop)
                } else {
                    v.began + t.stop
                };
                terms.lock().unwrap().push((name.clone(), v.began, end));
            }
            if changed.is_err() {
                return;
            }
            if let lead::Role::Leader(v) = *rx.borrow_and_update() {
                open = Some(v);
            }
        }
    })
}

/// One node of the test cluster: its role, its stop, its loop and the watcher of its terms.
struct Running {
    role: tokio::sync::watch::Receiver<lead::Role>,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Running {
    fn leads(&self) -> bool {
        matches!(*self.role.borrow(), lead::Role::Leader(_))
    }
}

/// Two nodes keep their roles through a clean stop (released: the standby leads within a few
/// looks) and a crash (not released: the other leads once the row expires); at no instant could
/// two act.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handover_and_failover_between_two_nodes_never_overlap() {
    let Some(db) = Db::new("lead").await else {
        return;
    };
    let _c = db.migrated().await;
    let t = fast(600);
    let terms: Terms = std::sync::Arc::default();
    let failovers = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = |name: &str| {
        let (tx, rx) = tokio::sync::watch::channel(lead::Role::Standby);
        let stop = tokio_util::sync::CancellationToken::new();
        let node = lead::Node {
            target: db.target(),
            name: name.to_string(),
            config_hash: "h".into(),
            timings: t,
        };
        Running {
            task: tokio::spawn(lead::keep(node, tx, failovers.clone(), stop.clone())),
            watcher: watch_terms(name, rx.clone(), t, terms.clone()),
            role: rx,
            stop,
        }
    };
    let mut nodes = vec![start("a"), start("b")];
    eventually(Duration::from_secs(5), || {
        let any = nodes.iter().any(Running::leads);
        async move { any }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(nodes.iter().filter(|n| n.leads()).count(), 1);
    // A clean stop: released, the standby leads within a few looks, long before expiry.
    let first = nodes.remove(usize::from(!nodes[0].leads()));
    let stopped = tokio::time::Instant::now();
    first.stop.cancel();
    first.task.await.unwrap();
    first.watcher.await.unwrap();
    let other = &nodes[0];
    eventually(Duration::from_secs(5), || {
        let l = other.leads();
        async move { l }
    })
    .await;
    let handover = stopped.elapsed();
    assert!(handover < t.expire, "handover took {handover:?}");
    // A third node joins as a standby; then the leader crashes (its loop is dropped mid-term,
    // nothing released), and the row must expire before the standby leads.
    let third = start("c");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!third.leads());
    let crashed = tokio::time::Instant::now();
    let leader = nodes.remove(0);
    leader.task.abort();
    let _ = leader.task.await;
    leader.watcher.await.unwrap();
    eventually(Duration::from_secs(5), || {
        let l = third.leads();
        async move { l }
    })
    .await;
    let failover = crashed.elapsed();
    assert!(
        failover >= t.expire.saturating_sub(t.renew),
        "failover after {failover:?}: before the row expired"
    );
    assert!(
        failover < t.expire + Duration::from_millis(500),
        "failover took {failover:?}"
    );
    third.stop.cancel();
    third.task.await.unwrap();
    third.watcher.await.unwrap();
    assert_eq!(failovers.load(std::sync::atomic::Ordering::Relaxed), 2);
    let mut terms = terms.lock().unwrap().clone();
    terms.sort_by_key(|(_, start, _)| *start);
    for pair in terms.windows(2) {
        let ((n0, _, end0), (n1, start1, _)) = (&pair[0], &pair[1]);
        if n0 != n1 {
            assert!(
                start1 >= end0,
                "{n1} could act before {n0}'s term ended: {terms:?}"
            );
        }
    }
    assert!(
        terms
            .iter()
            .map(|(n, ..)| n)
            .collect::<std::collections::HashSet<_>>()
            .len()
            == 3
    );
}

/// The store's SQL as `PostgreSQL` reads it: every statement written out in `src/store` (those
/// built with `format!` aside) is prepared against the migrated tables, with `?N` as `$N`. The
/// SQLite-only ones are the known few below, each to be rewritten as the store moves onto
/// `PostgreSQL`; any other refusal is new SQLite-only SQL, and fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stores_sql_prepares_on_postgres() {
    const SQLITE_ONLY: &[&str] = &[
        "sqlite_master", // the catalog
        "FROM doomed",   // prune's temporary table, made at run time
    ];
    let Some(db) = Db::new("sql").await else {
        return;
    };
    let mut c = db.client().await;
    schema::migrate(&mut c, &db.target()).await.unwrap();
    let statements = store_sql();
    assert!(statements.len() > 100, "found only {}", statements.len());
    let mut refused = Vec::new();
    for (file, sql) in &statements {
        let pg_sql = watchbell::store::db::placeholders(sql);
        if let Err(e) = c.prepare(&pg_sql).await {
            let why = e
                .as_db_error()
                .map_or(e.to_string(), |d| d.message().to_string());
            refused.push((file.clone(), sql.clone(), why));
        }
    }
    let unknown: Vec<_> = refused
        .iter()
        .filter(|(_, sql, _)| !SQLITE_ONLY.iter().any(|m| sql.contains(m)))
        .collect();
    assert!(
        unknown.is_empty(),
        "{} of {} statements refused by PostgreSQL, not known SQLite-only: {unknown:#?}",
        unknown.len(),
        statements.len()
    );
    eprintln!(
        "{} statements prepared on PostgreSQL, {} known SQLite-only",
        statements.len() - refused.len(),
        refused.len()
    );
}

/// The SQL string literals of `src/store/*.rs` outside tests and migrations, with the file.
fn store_sql() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
    let literal = regex::Regex::new(r##"r#?"((?s:.*?))"#?|"((?:[^"\\]|\\(?s:.))*)""##).unwrap();
    let continuation = regex::Regex::new(r"\\\n\s*").unwrap();
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "schema.rs" || name == "tests.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for m in literal.captures_iter(code) {
            let raw = m.get(1).or_else(|| m.get(2)).unwrap().as_str();
            let sql = continuation.replace_all(raw, "").replace("\\\"", "\"");
            let head = sql.trim_start();
            let is_sql = ["SELECT ", "INSERT ", "UPDATE ", "DELETE ", "WITH "]
                .iter()
                .any(|k| head.starts_with(k));
            if is_sql && !sql.contains('{') {
                out.push((name.clone(), head.to_string()));
            }
        }
    }
    out
}

/// A `watchbell run` process of a two-node cluster, its log in a file.
struct Node {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Node {
    fn start(dir: &std::path::Path, name: &str, url: &str, key: &str) -> Node {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("watchbell"))
            .current_dir(dir)
            .args(["run"])
            .env("WB_CLUSTER_URL", url)
            .env("WATCHBELL_NODE", name)
            .env("CAPTAIN_DATA_API_KEY", key)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Node { child, log }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn said(&self, what: &str) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|l| l.contains(what))
    }

    fn signal(&self, sig: &str) {
        std::process::Command::new("kill")
            .args([sig, &self.pid()])
            .status()
            .unwrap();
    }
}

impl Node {
    /// Waits (30 s at most) until the node's log says `what`.
    async fn until(&self, what: &str) {
        eventually(Duration::from_secs(30), || async { self.said(what) }).await;
    }

    /// Waits for the process to end: its exit code, and the node (for its log).
    async fn exited(mut self) -> (Option<i32>, Node) {
        tokio::task::spawn_blocking(move || {
            let status = self.child.wait().unwrap();
            (status.code(), self)
        })
        .await
        .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// The log's lines stamped after `since`.
    fn lines_after(&self, since: chrono::DateTime<chrono::Utc>) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| {
                l.get(..27)
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .is_some_and(|t| t > since)
            })
            .map(str::to_string)
            .collect()
    }
}

/// Node `one` leading (at `urls.0`), then node `two` its standby (at `urls.1`).
async fn leader_and_standby(dir: &std::path::Path, urls: (&str, &str), key: &str) -> (Node, Node) {
    let one = Node::start(dir, "one", urls.0, key);
    one.until("leading; the schedule starts").await;
    let two = Node::start(dir, "two", urls.1, key);
    two.until("starts as a standby").await;
    (one, two)
}

/// The job file of a cluster test: `[store]` from `WB_CLUSTER_URL`, the sandbox as the API, then
/// `rest` (jobs, tables).
fn cluster_file(dir: &std::path::Path, sb: &watchbell::sandbox::Sandbox, rest: &str) {
    std::fs::write(
        dir.join("schedules.toml"),
        format!(
            "[store]\nurl_env = \"WB_CLUSTER_URL\"\n[api]\nbase_url = \"{}\"\nplan = \"highest\"\n{rest}",
            sb.base_url()
        ),
    )
    .unwrap();
}

/// No nominal instant in two "tick fired" lines of the nodes' `logs`: each fired once, by one
/// leader.
fn each_nominal_fired_once(logs: &[String]) {
    let mut nominals: Vec<&str> = logs
        .iter()
        .flat_map(|l| l.lines())
        .filter(|l| l.contains("tick fired"))
        .filter_map(|l| l.split("nominal=").nth(1))
        .map(|n| n.split(" late_ms").next().unwrap_or(n))
        .collect();
    let logged = nominals.len();
    nominals.sort_unstable();
    nominals.dedup();
    assert_eq!(nominals.len(), logged, "a nominal instant fired twice");
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two daemons on one database: one leads and fires each second, the other waits. SIGTERM hands
/// the lead over in about a second; SIGKILL passes it once the row expires (15 s). Whoever
/// leads, each nominal second has one tick row, the seconds no node led are skipped `failover`
/// (the latest within `catchup` fired once), and the two nodes never created runs in the same
/// stretch of time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_lead_one_at_a_time_and_fail_over() {
    let Some(db) = Db::new("cluster").await else {
        return;
    };
    // Pages answered in 1.5 s: a run is in flight whenever the leader stops, and its page does
    // not land within the second a handover waits for it (the run is stopped mid-run).
    let sb = sandbox(watchbell::sandbox::Options {
        latency: Some(Duration::from_millis(1500)),
        ..watchbell::sandbox::Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    cluster_file(
        dir.path(),
        &sb,
        &job("sec", "* * * * * *")
            .set("catchup", "\"1m\"")
            .to_string(),
    );
    let key = sb.api_key().to_string();
    let (one, two) = leader_and_standby(dir.path(), (&db.url, &db.url), &key).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!two.said("this node leads"), "a second leader");
    // A clean stop hands over: the standby leads within the next looks.
    one.signal("-TERM");
    let stopped = std::time::Instant::now();
    eventually(Duration::from_secs(40), || async {
        two.said("leading; the schedule starts")
    })
    .await;
    let handover = stopped.elapsed();
    eventually(Duration::from_secs(5), || async {
        one.said("released the lead for a handover")
    })
    .await;
    assert!(one.said("handing over: stopping runs for the next leader"));
    assert!(
        handover < Duration::from_secs(3),
        "handover took {handover:?}"
    );
    // A crash: the row must expire first.
    let three = Node::start(dir.path(), "three", &db.url, &key);
    three.until("starts as a standby").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    two.signal("-KILL");
    let killed = std::time::Instant::now();
    three.until("leading; the schedule starts").await;
    let failover = killed.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    three.signal("-TERM");
    let mut three = three;
    let _ = three.child.wait();
    eprintln!(
        "handover after SIGTERM: {handover:?} (the run in flight stopped for the next leader); failover after SIGKILL: {failover:?}"
    );
    assert!(failover < Duration::from_secs(20), "{failover:?}");

    let c = db.client().await;
    audit_cluster(&c, &sb.starts(), dir.path()).await;
    // Read commands find the cluster's database as the daemon does, through [store].
    let out = cli(dir.path(), &db.url, &["ticks", "--job", "sec"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("failover"));
    // `status` shows the cluster: the last leader and every node that joined.
    let out = cli(dir.path(), &db.url, &["status"]).await;
    let shown = String::from_utf8_lossy(&out.stdout);
    let cluster = shown
        .lines()
        .find(|l| l.starts_with("cluster: "))
        .unwrap_or_default();
    assert!(cluster.contains("three (epoch 3"), "{shown}");
    assert!(
        cluster.contains("nodes one (") && cluster.contains("two ("),
        "{shown}"
    );
}

/// `watchbell ARGS` in `dir` with the cluster's URL, its exit status checked.
async fn cli(dir: &std::path::Path, url: &str, args: &[&str]) -> std::process::Output {
    let (dir, url) = (dir.to_path_buf(), url.to_string());
    let args: Vec<String> = args.iter().map(ToString::to_string).collect();
    let out = tokio::task::spawn_blocking(move || {
        watchbell(&dir)
            .args(&args)
            .env("WB_CLUSTER_URL", url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What a cluster's run must leave: every nominal second accounted once, the seconds no node
/// led skipped `failover`, the run in flight at the handover resumed by the next leader to its
/// end, no nominal instant fired by two leaders, and every run begun at the API (`starts`, by
/// `X-Watchbell-Run`) one run of the database, begun once unless a crash took its owner.
async fn audit_cluster(
    c: &Client,
    starts: &std::collections::HashMap<String, u32>,
    dir: &std::path::Path,
) {
    let logs: Vec<String> = ["one", "two", "three"]
        .iter()
        .map(|n| std::fs::read_to_string(dir.join(format!("{n}.log"))).unwrap())
        .collect();
    let ticks = c
        .query(
            "SELECT scheduled_for, outcome, COALESCE(reason, '') FROM ticks WHERE job = 'sec' ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let seconds: Vec<String> = ticks.iter().map(|r| r.get(0)).collect();
    let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    for pair in seconds.windows(2) {
        let gap = parse(&pair[1]) - parse(&pair[0]);
        assert_eq!(
            gap.num_seconds(),
            1,
            "a nominal second unaccounted between {pair:?}"
        );
    }
    let failovers = ticks
        .iter()
        .filter(|r| r.get::<_, String>(2) == "failover")
        .count();
    assert!(
        failovers >= 10,
        "{failovers} ticks skipped `failover` across a 15 s expiry"
    );
    // The run in flight at the handover was stopped for the next leader, which resumed it.
    let handed: Vec<String> = c
        .query(
            "SELECT r.status FROM runs r WHERE EXISTS (SELECT 1 FROM transitions t
               WHERE t.run_id = r.id AND t.reason = 'handover')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let said = std::fs::read_to_string(dir.join("one.log")).unwrap();
    let said: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("handing over"))
        .collect();
    assert!(
        !handed.is_empty(),
        "no run was in flight at the handover: {said:?}"
    );
    assert!(
        handed.iter().all(|s| s == "SUCCEEDED"),
        "runs handed over and not resumed to the end: {handed:?}"
    );
    each_nominal_fired_once(&logs);
    assert!(!starts.is_empty() && !starts.contains_key(""), "{starts:?}");
    for (uid, n) in starts {
        let lost: i64 = c
            .query_one(
                "SELECT COUNT(*) FROM transitions t JOIN runs r ON r.id = t.run_id
                   WHERE r.uid = $1 AND t.reason = 'owner_lost'",
                &[uid],
            )
            .await
            .unwrap()
            .get(0);
        let known: i64 = c
            .query_one("SELECT COUNT(*) FROM runs WHERE uid = $1", &[uid])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            known, 1,
            "run {uid} begun at the API is not in the database"
        );
        assert!(
            *n == 1 || (*n == 2 && lost == 1),
            "run {uid} begun {n} times ({lost} owner_lost)"
        );
    }
}

/// A daemon refuses an empty `PostgreSQL` while a `SQLite` state exists where `[daemon]
/// database` says: starting afresh would leave the history behind. It names the command that
/// moves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_postgres_beside_a_sqlite_state_is_refused() {
    let Some(db) = Db::new("beside").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    drop(watchbell::store::Store::open(&dir.path().join("watchbell.db")).unwrap());
    std::fs::write(
        dir.path().join("schedules.toml"),
        format!("[store]\nurl_env = \"WB_URL\"\n{}", job("j", "0 9 * * *")),
    )
    .unwrap();
    let dir_path = dir.path().to_path_buf();
    let url = db.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        watchbell(&dir_path)
            .args(["run"])
            .env("WB_URL", url)
            .env("CAPTAIN_DATA_API_KEY", "k")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("store copy --to-postgres"), "{err}");
    let url = reqwest::Url::parse(&db.url).unwrap();
    if let Some(password) = url.password().filter(|p| !p.is_empty()) {
        assert!(
            !err.contains(password),
            "the password in the message: {err}"
        );
    }
}

/// A leader paused past its lease (SIGSTOP for longer than the row's expiry) is replaced, and
/// when it wakes it sends nothing and fires nothing: its own clock says its lease ran out, or
/// its first fenced write is refused, and it exits 1. No nominal instant fires twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_wakes_and_exits_without_acting() {
    let Some(db) = Db::new("paused").await else {
        return;
    };
    let sb = sandbox(watchbell::sandbox::Options {
        latency: Some(Duration::from_millis(200)),
        ..watchbell::sandbox::Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    cluster_file(dir.path(), &sb, &job("sec", "* * * * * *").to_string());
    let key = sb.api_key().to_string();
    let (one, two) = leader_and_standby(dir.path(), (&db.url, &db.url), &key).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    one.signal("-STOP");
    let paused = std::time::Instant::now();
    two.until("leading; the schedule starts").await;
    eprintln!("SIGSTOP: the other node led after {:?}", paused.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let woke = Clock::System.now();
    one.signal("-CONT");
    let (code, one) = one.exited().await;
    assert_eq!(code, Some(1), "the woken leader exits 1");
    let after = one.lines_after(woke);
    let why = after.iter().find(|l| l.contains("exiting"));
    assert!(why.is_some(), "it said why it stopped: {after:#?}");
    eprintln!("the woken leader: {}", why.map_or("", String::as_str));
    for l in &after {
        assert!(
            !l.contains("tick fired") && !l.contains("page stored") && !l.contains("run started"),
            "acted after its lease: {l}"
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    each_nominal_fired_once(&[one.log(), two.log()]);
}

/// The database drops every connection (`pg_terminate_backend`, as a restart or a pooler
/// would): the leader reconnects, renews within its lease and goes on firing; the standby stays
/// one; nothing fires twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_by_the_server_are_made_again_and_the_leader_keeps_the_lead() {
    let Some(db) = Db::new("terminated").await else {
        return;
    };
    let sb = sandbox(watchbell::sandbox::Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let fast = format!(
        "{}\n{}",
        crate::support::FAST_SAFETY,
        job("sec", "* * * * * *")
    );
    cluster_file(dir.path(), &sb, &fast);
    let key = sb.api_key().to_string();
    let (one, two) = leader_and_standby(dir.path(), (&db.url, &db.url), &key).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let admin = client(&db.admin).await;
    let cut: i64 = admin
        .query_one(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1",
            &[&db.name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        cut >= 3,
        "{cut} connections cut (each node's lead loop, the leader's writer)"
    );
    let c = db.client().await;
    let fired = "SELECT COUNT(*) FROM ticks WHERE outcome = 'fired'";
    let before: i64 = c.query_one(fired, &[]).await.unwrap().get(0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after: i64 = c.query_one(fired, &[]).await.unwrap().get(0);
    assert!(
        after >= before + 3,
        "the leader fires on after the cut: {before} -> {after}"
    );
    assert!(!one.said("exiting"), "the leader kept its lead");
    assert!(!two.said("this node leads"), "the standby stayed one");
    let epoch: i64 = c
        .query_one("SELECT epoch FROM watchbell_leader", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(epoch, 1);
    each_nominal_fired_once(&[one.log(), two.log()]);
}

/// A leader cut off from the database by a partition (its connections hang, nothing is
/// refused) stops itself on its own clock within its 10 s lease and exits 1, without firing or
/// storing anything after the cut; the other node leads once the row expires (within 20 s);
/// when the partition heals nothing of the old leader lands, and no nominal fires twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_by_a_partition_stops_itself_and_the_other_node_leads() {
    let Some(db) = Db::new("partition").await else {
        return;
    };
    let sb = sandbox(watchbell::sandbox::Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let fast = format!(
        "{}\n{}",
        crate::support::FAST_SAFETY,
        job("sec", "* * * * * *")
    );
    cluster_file(dir.path(), &sb, &fast);
    let mut url = reqwest::Url::parse(&db.url).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let proxy = Proxy::start(upstream.parse().unwrap()).await;
    url.set_port(Some(proxy.port)).unwrap();
    let key = sb.api_key().to_string();
    let (one, two) = leader_and_standby(dir.path(), (url.as_str(), &db.url), &key).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.set_cut(true);
    let cut_at = std::time::Instant::now();
    let since = Clock::System.now();
    let (code, one) = one.exited().await;
    let stopped = cut_at.elapsed();
    assert_eq!(code, Some(1));
    two.until("leading; the schedule starts").await;
    let failover = cut_at.elapsed();
    proxy.set_cut(false);
    eprintln!(
        "partition: the leader stopped itself after {stopped:?}; the other node led after {failover:?}"
    );
    assert!(stopped <= Duration::from_secs(11), "{stopped:?}");
    assert!(failover < Duration::from_secs(20), "{failover:?}");
    for l in one.lines_after(since) {
        assert!(
            !l.contains("tick fired") && !l.contains("page stored"),
            "acted after the cut: {l}"
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let c = db.client().await;
    let doubles: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM (SELECT scheduled_for FROM runs WHERE scheduled_for IS NOT NULL
               GROUP BY job, scheduled_for HAVING COUNT(*) > 1) AS d",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(doubles, 0, "a nominal instant with two runs");
}

/// Every node serves `/healthz` (naming its role), `/metrics` (`watchbell_leader`,
/// `watchbell_failovers_total`) and the receiver, the standby too; the standby that takes over
/// after a crash counts one failover, on the same listeners.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_serves_health_metrics_and_callbacks_and_counts_its_failover() {
    let Some(db) = Db::new("roles").await else {
        return;
    };
    let sb = sandbox(watchbell::sandbox::Options::default()).await;
    let root = tempfile::tempdir().unwrap();
    let free = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    // One job file per node: the same jobs, its own node-local addresses.
    let mut nodes = Vec::new();
    for name in ["one", "two"] {
        let dir = root.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        let (metrics, receiver) = (free(), free());
        cluster_file(
            &dir,
            &sb,
            &format!(
                "[daemon]\nmetrics_listen = \"{metrics}\"\n[receiver]\nlisten = \"{receiver}\"\npublic_url = \"https://hooks.example.com\"\n{}{}",
                job("sec", "* * * * * *"),
                job("as", "* * * * * *").text("runner", "async"),
            ),
        );
        nodes.push((dir, metrics, receiver));
    }
    let key = sb.api_key().to_string();
    let one = Node::start(&nodes[0].0, "one", &db.url, &key);
    one.until("leading; the schedule starts").await;
    let two = Node::start(&nodes[1].0, "two", &db.url, &key);
    two.until("starts as a standby").await;
    let http = reqwest::Client::new();
    let get = |addr: std::net::SocketAddr, path: &'static str| {
        let http = http.clone();
        async move {
            let r = http.get(format!("http://{addr}{path}")).send().await?;
            Ok::<_, reqwest::Error>((r.status().as_u16(), r.text().await?))
        }
    };
    let health = |addr| async move { get(addr, "/healthz").await.ok() };
    eventually(Duration::from_secs(10), || async {
        health(nodes[0].1).await == Some((200, "ok: leader\n".into()))
            && health(nodes[1].1).await == Some((200, "ok: standby\n".into()))
    })
    .await;
    let (_, standby) = get(nodes[1].1, "/metrics").await.unwrap();
    assert!(standby.contains("\nwatchbell_leader 0\n"), "{standby}");
    assert!(
        standby.contains("\nwatchbell_failovers_total 0\n"),
        "{standby}"
    );
    let (_, leader) = get(nodes[0].1, "/metrics").await.unwrap();
    assert!(leader.contains("\nwatchbell_leader 1\n"), "{leader}");
    // The standby's receiver answers (a callback without its token is refused unread).
    let refused = http
        .post(format!("http://{}/callbacks/r/no-such-run", nodes[1].2))
        .body("{}")
        .send()
        .await
        .unwrap()
        .status();
    assert!(refused.is_client_error(), "{refused}");
    either_node_answers_a_probe(&db, [nodes[0].2, nodes[1].2]).await;
    one.signal("-KILL");
    two.until("leading; the schedule starts").await;
    eventually(Duration::from_secs(10), || async {
        health(nodes[1].1).await == Some((200, "ok: leader\n".into()))
    })
    .await;
    let (_, now) = get(nodes[1].1, "/metrics").await.unwrap();
    assert!(now.contains("\nwatchbell_leader 1\n"), "{now}");
    assert!(now.contains("\nwatchbell_failovers_total 1\n"), "{now}");
    let (code, _) = get(nodes[1].1, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    let refused = http
        .post(format!("http://{}/callbacks/r/no-such-run", nodes[1].2))
        .body("{}")
        .send()
        .await
        .unwrap()
        .status();
    assert!(refused.is_client_error(), "{refused}");
    two.signal("-TERM");
    assert_eq!(two.exited().await.0, Some(0));
}

/// A self-probe of the leader's sweep is answered by either node (a load balancer in front may
/// send it to the standby), when signed by its run's token hash in this database.
async fn either_node_answers_a_probe(db: &Db, receivers: [std::net::SocketAddr; 2]) {
    use watchbell::receiver::token;
    let http = reqwest::Client::new();
    let c = db.client().await;
    let started = std::time::Instant::now();
    let (run, hash) = loop {
        let row = c
            .query_opt(
                "SELECT r.uid, a.token_hash FROM runs r JOIN async_runs a ON a.run_id = r.id LIMIT 1",
                &[],
            )
            .await
            .unwrap();
        if let Some(r) = row {
            break (r.get::<_, String>(0), r.get::<_, String>(1));
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no async run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let probe = |addr: std::net::SocketAddr, nonce: String| {
        let http = http.clone();
        async move {
            let url = format!("http://{addr}/callbacks/probe/{nonce}");
            http.get(url).send().await.unwrap().status().as_u16()
        }
    };
    for addr in receivers {
        assert_eq!(probe(addr, token::probe(&run, &hash)).await, 204);
        let forged = token::probe(&run, &token::hash("another token"));
        assert_eq!(probe(addr, forged).await, 404);
    }
}

/// A state moved by `store copy` is the same state: a `sync` against the cluster's database
/// plans nothing (the remote schedule's link came along, nothing is created twice), and a
/// run's `--new` items are those it had on `SQLite` (the seen records came along).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_state_syncs_nothing_and_keeps_what_is_new() {
    let Some(db) = Db::new("moved").await else {
        return;
    };
    let sb = sandbox(watchbell::sandbox::Options {
        new_per_run: 2,
        ..watchbell::sandbox::Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let jobs = format!(
        "{}{}",
        job("j", "0 9 * * *"),
        job("r", "0 10 * * *")
            .text("runner", "remote")
            .set("webhook", "{ url = \"https://example.com/hook\" }")
    );
    let (d, key, url) = (
        dir.path().to_path_buf(),
        sb.api_key().to_string(),
        db.url.clone(),
    );
    let run = move |args: &[&str]| {
        let out = watchbell(&d)
            .args(args)
            .env("CAPTAIN_DATA_API_KEY", &key)
            .env("WB_URL", &url)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let file = dir.path().join("schedules.toml");
    std::fs::write(&file, crate::support::job_file(&sb, &jobs)).unwrap();
    let (was, uid) = tokio::task::spawn_blocking({
        let run = run.clone();
        move || {
            assert!(run(&["sync"]).contains("create"));
            run(&["trigger", "j"]);
            let second = run(&["trigger", "j"]);
            let uid = second
                .split_whitespace()
                .nth(1)
                .unwrap()
                .trim_end_matches(':')
                .to_string();
            (run(&["runs", "results", &uid, "--new"]), uid)
        }
    })
    .await
    .unwrap();
    assert_eq!(was.lines().count(), 2, "two new items on SQLite: {was}");
    let schedules = sb.schedules_snapshot().len();
    std::fs::write(
        &file,
        format!(
            "[store]\nurl_env = \"WB_URL\"\n{}",
            crate::support::job_file(&sb, &jobs)
        ),
    )
    .unwrap();
    let (synced, now) = tokio::task::spawn_blocking(move || {
        run(&["store", "copy", "--to-postgres"]);
        (run(&["sync"]), run(&["runs", "results", &uid, "--new"]))
    })
    .await
    .unwrap();
    assert!(synced.contains("nothing to do"), "{synced}");
    assert_eq!(sb.schedules_snapshot().len(), schedules);
    assert_eq!(now, was);
}

/// The sync's turn on `PostgreSQL` is one at a time across processes (two stores here): held,
/// the other waits out its patience and is refused; given up, the other takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sync_at_a_time_on_postgres() {
    let Some(db) = Db::new("turn").await else {
        return;
    };
    let open = || watchbell::store::Store::open_postgres(&db.target(), Duration::from_secs(5));
    let (a, b) = (open().unwrap(), open().unwrap());
    let held = a.sync_turn(Duration::ZERO).await.unwrap().expect("free");
    let waited = std::time::Instant::now();
    assert!(
        b.sync_turn(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none()
    );
    assert!(waited.elapsed() >= Duration::from_millis(300));
    drop(held);
    assert!(b.sync_turn(Duration::from_secs(5)).await.unwrap().is_some());
}

/// A standby keeps running through SIGHUP (its default would end the process; the reload is
/// applied once it leads), and one that stopped cleanly is no longer a live peer: the leader
/// stopping after it drains its runs instead of stopping them for a handover, and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_outlives_sighup_and_once_stopped_is_no_peer_to_hand_over_to() {
    let Some(db) = Db::new("leave").await else {
        return;
    };
    let sb = sandbox(watchbell::sandbox::Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    cluster_file(dir.path(), &sb, &job("sec", "* * * * * *").to_string());
    let key = sb.api_key().to_string();
    let (one, mut two) = leader_and_standby(dir.path(), (&db.url, &db.url), &key).await;
    two.signal("-HUP");
    two.until("SIGHUP: reloading the job file").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(two.child.try_wait().unwrap().is_none(), "{}", two.log());
    two.signal("-TERM");
    let (code, two) = two.exited().await;
    assert_eq!(code, Some(0), "{}", two.log());
    one.signal("-TERM");
    let (code, one) = one.exited().await;
    assert_eq!(code, Some(0), "{}", one.log());
    assert!(one.said("no other node alive"), "{}", one.log());
    assert!(!one.said("handing over"), "{}", one.log());
}
