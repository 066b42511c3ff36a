//! What happened: runs, their transitions, result pages and ticks, in `SQLite` (WAL). All SQL lives
//! under this module. One writer thread owns the read-write connection, so no transaction is ever
//! held across an `.await`; read-only commands open their own connection beside the daemon.
//!
//! Other processes write too (`trigger`, `runs resume`), and disks fill up. Write transactions
//! take the lock up front (`BEGIN IMMEDIATE`, so `busy_timeout` applies instead of an instant
//! BUSY), and a task that meets a busy, locked, full or failing database is retried with backoff
//! for the store's patience; the fault is kept in [`Health`] for `/healthz` and the logs.

pub mod account;
pub mod batches;
mod chain;
pub mod db;
mod deliveries;
mod door;
pub mod files;
mod group;
mod inputs;
mod kinds;
mod lanes;
mod links;
pub mod pg;
mod prune;
mod runs;
mod schema;
mod sent;
mod ticks;
mod turn;
pub use turn::SyncTurn;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use db::{Db, DbError};
use rusqlite::{Connection, ErrorCode};
use tokio_postgres::error::SqlState;

pub use chain::{ChainLink, ChainReport, Firing, MapItem};
pub use deliveries::{Delivery, MAX_ATTEMPTS};
pub use door::{
    ClusterView, NewPage, Reader, TickBatch, open_read_only, open_read_postgres, persistently,
};
pub use inputs::{InputOutcome, InputRecord};
pub use kinds::{DeliveryKind, DeliveryState, SkipReason, Trigger};
pub use lanes::{Entry, LaneAsk, LaneReport, Reserve, lane_reserve as lanes_reserve};
pub use links::Link;
pub use prune::Pruned;
pub use runs::{
    ItemQuery, ItemRow, JobHealth, LEASE, LastError, NewRun, PageRecord, RunFilter, RunRecord,
    TransitionRecord, content_hash, hash_texts, new_uid,
};
pub use sent::{SentMark, SentRow, SentState, key as sent_key};
pub use ticks::{Recorded, Skip, TickRecord};

use crate::status::RunStatus;

/// The store's own faults: the database is unreadable or a caller asked for something illegal.
/// (A failed *run* is data, not a `StoreError`.)
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sql(#[from] db::DbError),
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("run {uid}: illegal transition {from} -> {to}")]
    IllegalTransition {
        uid: String,
        from: RunStatus,
        to: RunStatus,
    },
    #[error("run {0} not found")]
    NotFound(String),
    #[error("run {uid}: page {page} is already stored")]
    PageAlreadyStored { uid: String, page: u32 },
    #[error(
        "database {path} was written by a newer watchbell (schema {found}, this one knows {known})"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("the database thread has stopped")]
    Closed,
    /// Writing what was read failed (a closed pipe, a full disk under the output).
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Sql(e.into())
    }
}

impl StoreError {
    /// A fault of the database's surroundings that may pass (another writer, a full disk, an I/O
    /// error): worth retrying, never a reason to give up on the data.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Sql(DbError::Lite(e)) | StoreError::Open { source: e, .. } => matches!(
                e.sqlite_error_code(),
                Some(
                    ErrorCode::DatabaseBusy
                        | ErrorCode::DatabaseLocked
                        | ErrorCode::DiskFull
                        | ErrorCode::SystemIoFailure
                        | ErrorCode::CannotOpen
                        | ErrorCode::OutOfMemory
                )
            ),
            StoreError::Sql(DbError::Pg(e)) => pg_transient(e),
            StoreError::Sql(DbError::Connect(e)) => e.kind != pg::PgErrorKind::Config,
            _ => false,
        }
    }

    /// True for a full disk (or a database at its `max_page_count`).
    pub fn is_full(&self) -> bool {
        match self {
            StoreError::Sql(DbError::Lite(e)) => e.sqlite_error_code() == Some(ErrorCode::DiskFull),
            StoreError::Sql(DbError::Pg(e)) => e.code() == Some(&SqlState::DISK_FULL),
            _ => false,
        }
    }
}

/// A `PostgreSQL` error that waiting may mend: the connection went away (the next task
/// reconnects), the server is starting or stopping, or it is short of disk, memory or
/// connections, or two transactions met (a serialization failure or a deadlock).
fn pg_transient(e: &tokio_postgres::Error) -> bool {
    let Some(code) = e.code() else {
        return e.as_db_error().is_none(); // I/O, a closed connection
    };
    [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::DISK_FULL,
        SqlState::OUT_OF_MEMORY,
        SqlState::IO_ERROR,
    ]
    .contains(code)
}

/// A write transaction that holds the write lock from its first statement, so a busy database
/// is waited out (`busy_timeout`) instead of failing the moment a read turns into a write.
pub fn write_tx(conn: &mut Db) -> db::Result<db::Tx<'_>> {
    conn.write_tx()
}

/// The database's state as the writer last saw it: `None` when the last write went through.
#[derive(Debug, Default)]
pub struct Health {
    fault: Mutex<Option<(String, DateTime<Utc>)>>,
    /// Rung when a fenced write found this node no longer leads.
    fenced: tokio::sync::Notify,
}

impl Health {
    /// Resolves when a write was refused because this node no longer leads: the node must
    /// stop acting at once.
    pub async fn lost_lead(&self) {
        self.fenced.notified().await;
    }

    /// What is wrong and since when, if the last write failed.
    pub fn fault(&self) -> Option<(String, DateTime<Utc>)> {
        self.fault.lock().ok().and_then(|f| f.clone())
    }

    fn failed(&self, e: &StoreError, now: DateTime<Utc>) -> bool {
        let Ok(mut f) = self.fault.lock() else {
            return false;
        };
        let what = if e.is_full() {
            "disk full".to_string()
        } else {
            e.to_string()
        };
        let first = f.is_none();
        if first {
            *f = Some((what, now));
        }
        first
    }

    fn recovered(&self) -> Option<(String, DateTime<Utc>)> {
        self.fault.lock().ok().and_then(|mut f| f.take())
    }
}

/// How long a task keeps retrying a transient fault before its error reaches the caller.
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(30);

type Task = Box<dyn FnOnce(&mut Db) + Send>;

/// What waits for the writer thread in the ordinary lane.
enum Work {
    /// A task that owns its transaction.
    Alone(Task),
    /// A result page: pages waiting together are committed together ([`group`]).
    Page(group::PageTask),
}

/// Work for the writer: urgent tasks (recording ticks) go before everything else, so a backlog
/// of run writes never makes a tick late. On `SQLite` one thread takes both lanes, urgent
/// first; on `PostgreSQL`, where every statement is a round trip, the urgent lane has a thread
/// and a connection of its own, so a tick does not even wait for the write in progress (1,000
/// per-second jobs: p99 fire lateness 18 ms with one connection, behind groups of pages).
#[derive(Default)]
struct Queue {
    state: Mutex<Lanes>,
    ready: Condvar,
}

#[derive(Default)]
struct Lanes {
    urgent: VecDeque<Task>,
    normal: VecDeque<Work>,
    closed: bool,
}

/// Which lanes a writer thread takes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Takes {
    Both,
    Urgent,
    Normal,
}

/// What the writer takes next: a task, or the pages waiting in a row at the front of the lane.
enum Next {
    Task(Task),
    Pages(Vec<group::PageTask>),
}

impl Queue {
    fn push(&self, work: Work, urgent: bool) -> Result<()> {
        let mut l = self.state.lock().map_err(|_| StoreError::Closed)?;
        if l.closed {
            return Err(StoreError::Closed);
        }
        match (work, urgent) {
            (Work::Alone(task), true) => l.urgent.push_back(task),
            (work, _) => l.normal.push_back(work),
        }
        self.ready.notify_all();
        Ok(())
    }

    /// Queues `task` ahead of every waiting ordinary task.
    fn push_first(&self, task: Task) -> Result<()> {
        let mut l = self.state.lock().map_err(|_| StoreError::Closed)?;
        if l.closed {
            return Err(StoreError::Closed);
        }
        l.normal.push_front(Work::Alone(task));
        self.ready.notify_all();
        Ok(())
    }

    /// The next work from the lanes `takes`, or `None` once closed and drained.
    fn pop(&self, takes: Takes) -> Option<Next> {
        let mut l = self.state.lock().ok()?;
        loop {
            if takes != Takes::Normal
                && let Some(t) = l.urgent.pop_front()
            {
                return Some(Next::Task(t));
            }
            let normal = if takes == Takes::Urgent {
                None
            } else {
                l.normal.pop_front()
            };
            match normal {
                Some(Work::Alone(t)) => return Some(Next::Task(t)),
                Some(Work::Page(p)) => {
                    let mut pages = vec![p];
                    while pages.len() < group::MOST
                        && matches!(l.normal.front(), Some(Work::Page(_)))
                    {
                        if let Some(Work::Page(p)) = l.normal.pop_front() {
                            pages.push(p);
                        }
                    }
                    return Some(Next::Pages(pages));
                }
                None => {}
            }
            if l.closed {
                return None;
            }
            l = self.ready.wait(l).ok()?;
        }
    }

    fn close(&self) {
        if let Ok(mut l) = self.state.lock() {
            l.closed = true;
        }
        self.ready.notify_all();
    }
}

/// Closes the queue when the last [`Store`] handle is dropped, which ends the writer thread.
#[derive(Debug)]
struct Inner {
    queue: Arc<Queue>,
    path: PathBuf,
    health: Arc<Health>,
    patience: Duration,
    /// Rung when a webhook callback is queued, so the deliverer need not poll.
    deliveries: tokio::sync::Notify,
    /// The `PostgreSQL` database, when the state is there.
    target: Option<pg::Target>,
    /// How far this node's clock is from the database's, on `PostgreSQL`.
    offset: Option<Arc<pg::offset::Offset>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.queue.close();
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Queue")
    }
}

/// The handle to the writer thread. Cheap to clone; the thread ends when the last handle drops.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, migrates it, and starts the writer.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with(path, DEFAULT_PATIENCE)
    }

    /// Like [`Store::open`], retrying each transient fault for `patience` before reporting it.
    pub fn open_with(path: &Path, patience: Duration) -> Result<Store> {
        files::create_private(path)?;
        let start = Instant::now();
        let conn = loop {
            match open_rw(path) {
                Err(e) if e.is_transient() && start.elapsed() < patience => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => break other?,
            }
        };
        files::restrict(path);
        let checkpoints = checkpointer(path);
        if checkpoints.is_some() {
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        }
        Store::start(
            Db::lite(conn),
            None,
            path.to_path_buf(),
            patience,
            checkpoints,
            None,
        )
    }

    /// Opens the `PostgreSQL` database at `target`, migrates it (once, however many nodes
    /// start together), and starts the writer on a connection of its own.
    /// Blocks (on a thread of its own, so it may be called from async code) until connected.
    pub fn open_postgres(target: &pg::Target, patience: Duration) -> Result<Store> {
        let connect = || -> Result<(Db, Db)> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    StoreError::Sql(DbError::Connect(pg::PgError::config(e.to_string())))
                })?;
            rt.block_on(async {
                let mut client = pg::connect(target).await?;
                pg::schema::migrate(&mut client, target).await
            })
            .map_err(|e| StoreError::Sql(DbError::Connect(e)))?;
            drop(rt);
            let db = Db::postgres(target.clone())?;
            let mut ticks = Db::postgres(target.clone())?;
            if let Some(offset) = db.offset() {
                ticks.share_offset(offset);
            }
            Ok((db, ticks))
        };
        let (db, ticks) =
            std::thread::scope(|s| s.spawn(connect).join()).map_err(|_| StoreError::Closed)??;
        Store::start(
            db,
            Some(ticks),
            PathBuf::from(target.to_string()),
            patience,
            None,
            Some(target.clone()),
        )
    }

    /// Starts the writer thread on `conn`, and the urgent lane's on `ticks` when given.
    fn start(
        conn: Db,
        ticks: Option<Db>,
        path: PathBuf,
        patience: Duration,
        checkpoints: Option<std::sync::mpsc::SyncSender<()>>,
        target: Option<pg::Target>,
    ) -> Result<Store> {
        let queue = Arc::new(Queue::default());
        let health = Arc::<Health>::default();
        let offset = conn.offset();
        let spawn =
            |name: &str, conn: Db, takes: Takes, checkpoints: Option<mpsc::SyncSender<()>>| {
                let (q, h) = (queue.clone(), health.clone());
                std::thread::Builder::new()
                    .name(name.into())
                    .spawn(move || write(&q, conn, takes, &h, patience, checkpoints.as_ref()))
                    .map_err(|e| StoreError::Io {
                        path: path.clone(),
                        source: e,
                    })
            };
        match ticks {
            None => spawn("watchbell-db", conn, Takes::Both, checkpoints)?,
            Some(ticks) => {
                spawn("watchbell-db-ticks", ticks, Takes::Urgent, None)?;
                spawn("watchbell-db", conn, Takes::Normal, checkpoints)?
            }
        };
        Ok(Store {
            inner: Arc::new(Inner {
                queue,
                path,
                health,
                patience,
                deliveries: tokio::sync::Notify::new(),
                target,
                offset,
            }),
        })
    }

    /// The `SQLite` file, or on `PostgreSQL` the database's name (user@host:port/db).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn is_postgres(&self) -> bool {
        self.inner.target.is_some()
    }

    /// Now, for a time another process compares (a run's lease, a lane's slot and gap, the
    /// pacer's slot, a delivery's claim): on `PostgreSQL` the database's clock, as this node
    /// last measured it, so nodes whose clocks differ agree; else, and always with a test
    /// clock, `clock`'s.
    pub fn now(&self, clock: &crate::clock::Clock) -> DateTime<Utc> {
        on_db_clock(self.inner.offset.as_deref(), clock)
    }

    /// The database's state as the writer last saw it.
    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    /// From now on every task's writes are fenced by this node's epoch (`PostgreSQL`, while
    /// it leads), or no longer (`None`). Queued ahead of every waiting task.
    pub async fn set_fence(&self, fence: Option<(String, i64)>) -> Result<()> {
        let task = |fence: Option<(String, i64)>| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let task: Task = Box::new(move |c| {
                c.set_fence(fence);
                let _ = tx.send(());
            });
            (task, rx)
        };
        let (urgent, done) = task(fence.clone());
        self.inner.queue.push(Work::Alone(urgent), true)?;
        // On PostgreSQL the ordinary lane has a connection of its own to fence.
        if self.is_postgres() {
            let (normal, done) = task(fence);
            self.inner.queue.push_first(normal)?;
            done.await.map_err(|_| StoreError::Closed)?;
        }
        done.await.map_err(|_| StoreError::Closed)
    }

    /// Tells the deliverer that a callback was queued.
    pub fn deliveries_queued(&self) {
        self.inner.deliveries.notify_one();
    }

    /// Resolves when a callback is queued (in this process) after the last call.
    pub async fn delivery_queued(&self) {
        self.inner.deliveries.notified().await;
    }

    /// Runs `f` on the writer thread and awaits its result. A transient fault (busy, locked,
    /// full) is retried for the store's patience, so `f` may run more than once: it must own
    /// its transaction. The store's own methods ([`door`]) are built on this; outside the
    /// store it serves tests that inject faults into the writer's connection.
    pub async fn call<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: Fn(&mut Db) -> Result<R> + Send + 'static,
    {
        self.call_in_lane(f, false).await
    }

    /// Like [`Store::call`], ahead of every waiting ordinary task (for recording ticks).
    pub async fn call_urgent<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: Fn(&mut Db) -> Result<R> + Send + 'static,
    {
        self.call_in_lane(f, true).await
    }

    async fn call_in_lane<R, F>(&self, f: F, urgent: bool) -> Result<R>
    where
        R: Send + 'static,
        F: Fn(&mut Db) -> Result<R> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (health, patience) = (self.inner.health.clone(), self.inner.patience);
        self.inner.queue.push(
            Work::Alone(Box::new(move |c| {
                let _ = tx.send(patiently(c, &f, &health, patience));
            })),
            urgent,
        )?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on the writer thread and blocks until it is done (for code outside the runtime).
    pub fn call_blocking<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: Fn(&mut Db) -> Result<R> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let (health, patience) = (self.inner.health.clone(), self.inner.patience);
        self.inner.queue.push(
            Work::Alone(Box::new(move |c| {
                let _ = tx.send(patiently(c, &f, &health, patience));
            })),
            false,
        )?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    /// Stores a result page on the writer thread, committed with the pages waiting beside it.
    async fn call_page(&self, uid: String, page: Arc<NewPage>, now: DateTime<Utc>) -> Result<()> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let task = group::PageTask {
            uid,
            page,
            now,
            reply,
        };
        self.inner.queue.push(Work::Page(task), false)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// A writer thread: takes work from `takes` until the queue closes, and asks for a
/// checkpoint after writes.
fn write(
    q: &Queue,
    mut conn: Db,
    takes: Takes,
    health: &Health,
    patience: Duration,
    checkpoints: Option<&std::sync::mpsc::SyncSender<()>>,
) {
    let mut written = conn.total_changes();
    while let Some(next) = q.pop(takes) {
        match next {
            Next::Task(task) => task(&mut conn),
            Next::Pages(pages) => group::store(&mut conn, pages, health, patience),
        }
        let now = conn.total_changes();
        if now != written {
            written = now;
            if let Some(c) = checkpoints {
                let _ = c.try_send(()); // one pending request is enough
            }
        }
    }
}

/// Runs `f`, retrying a transient fault with backoff (50 ms doubling to 2 s) until `patience`
/// after the fault began. Past that, tasks try once and fail fast (their callers retry at their
/// own pace), so a queue of writes does not pile up behind a full disk. The fault is
/// logged when it starts and when a write goes through again.
fn patiently<R>(
    c: &mut Db,
    f: &impl Fn(&mut Db) -> Result<R>,
    health: &Health,
    patience: Duration,
) -> Result<R> {
    let now = || crate::clock::Clock::System.now();
    // Every task shares the fault's deadline: since it began, plus the patience.
    let budget = match health.fault() {
        Some((_, since)) => patience.saturating_sub((now() - since).to_std().unwrap_or_default()),
        None => patience,
    };
    let (start, writes_before) = (Instant::now(), c.total_changes());
    let mut wait = Duration::from_millis(50);
    loop {
        match c.fenced(f) {
            Err(e @ StoreError::Sql(DbError::Fenced { .. })) => {
                health.fenced.notify_one();
                return Err(e);
            }
            Err(e) if e.is_transient() => {
                if health.failed(&e, now()) {
                    tracing::warn!(error = %e, full = e.is_full(), "database unavailable; retrying");
                }
                if start.elapsed() >= budget {
                    return Err(e);
                }
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            other => {
                // Only a write that went through proves the database takes writes again.
                if other.is_ok() && c.total_changes() > writes_before {
                    wrote(health);
                }
                return other;
            }
        }
    }
}

/// A write went through: a fault the database had is over.
fn wrote(health: &Health) {
    if let Some((what, since)) = health.recovered() {
        tracing::info!(fault = %what, since = %ts(since), "database takes writes again");
    }
}

/// Copies the WAL back into the database on a thread of its own, after writes: SQLite's
/// automatic checkpoint ran inside the writer's commits, about a tenth of the writer's time
/// while pages were stored. It waits for the writes to pause ([`CHECKPOINT_QUIET`]), or at most
/// [`CHECKPOINT_LAG`] while they go on, so a page written by many commits in a burst (a run's
/// row, an index leaf) is copied once, not once per commit: copying after every commit took a
/// fifth of all CPU while pages were stored. PASSIVE never blocks the writer; a failed
/// checkpoint is tried again after the next write. `None` (automatic checkpoints stay on) when
/// it cannot start.
fn checkpointer(path: &Path) -> Option<std::sync::mpsc::SyncSender<()>> {
    use std::sync::mpsc::RecvTimeoutError;
    let conn = Connection::open(path).ok()?;
    conn.busy_timeout(Duration::from_secs(1)).ok()?;
    // A checkpoint copies frames from the WAL; it keeps no pages worth caching.
    conn.pragma_update(None, "cache_size", -SIDE_CACHE_KIB)
        .ok()?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("watchbell-ckpt".into())
        .spawn(move || {
            while rx.recv().is_ok() {
                let first = Instant::now();
                let open = loop {
                    match rx.recv_timeout(CHECKPOINT_QUIET) {
                        Ok(()) if first.elapsed() < CHECKPOINT_LAG => {}
                        Ok(()) | Err(RecvTimeoutError::Timeout) => break true,
                        Err(RecvTimeoutError::Disconnected) => break false,
                    }
                };
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                if !open {
                    return;
                }
            }
        })
        .ok()?;
    Some(tx)
}

/// How long writes must pause before the WAL is copied back.
const CHECKPOINT_QUIET: Duration = Duration::from_millis(100);
/// The longest the WAL goes uncopied while writes go on.
const CHECKPOINT_LAG: Duration = Duration::from_secs(2);

/// The read-write connection, configured, with its schema migrated.
fn open_rw(path: &Path) -> Result<Connection> {
    let mut conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // A new database gives pruned space back as it goes (must be set before any table exists).
    let tables: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))?;
    if tables == 0 {
        conn.pragma_update(None, "auto_vacuum", 2)?;
    }
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    schema::migrate(&mut conn, path)?;
    Ok(conn)
}

/// The writer's page cache, KiB. SQLite's default is about 2 MiB per connection, filled page by
/// page as the database grows: after each start the daemon's memory climbed for twenty minutes
/// of the soak. The operating system caches the file too, so a smaller cache costs a read from
/// memory, not from disk (measured on the tick bench: see the commit).
pub const WRITER_CACHE_KIB: i64 = 256;

/// The page cache of the daemon's side connections (the checkpointer, the receiver's reader).
pub const SIDE_CACHE_KIB: i64 = 64;

/// How instants are written: UTC RFC 3339 with milliseconds, which sorts as text.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Reads an instant written by [`ts`].
pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.to_utc())
}

#[cfg(test)]
mod tests;

/// `clock`'s now, moved onto the database's clock when `offset` is known and `clock` is the
/// system's (a test clock stays as the test set it).
fn on_db_clock(offset: Option<&pg::offset::Offset>, clock: &crate::clock::Clock) -> DateTime<Utc> {
    match (offset, clock) {
        (Some(o), crate::clock::Clock::System) => o.apply(clock.now()),
        _ => clock.now(),
    }
}
