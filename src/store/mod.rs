//! What happened: runs, their transitions, result pages and ticks, in `SQLite` (WAL). All SQL lives
//! under this module. One writer thread owns the read-write connection, so no transaction is ever
//! held across an `.await`; read-only commands open their own connection beside the daemon.

mod deliveries;
mod links;
mod runs;
mod schema;
mod ticks;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OpenFlags};

pub use deliveries::*;
pub use links::*;
pub use runs::*;
pub use ticks::*;

use crate::status::RunStatus;

/// The store's own faults: the database is unreadable or a caller asked for something illegal.
/// (A failed *run* is data, not a `StoreError`.)
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
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
}

pub type Result<T> = std::result::Result<T, StoreError>;

type Task = Box<dyn FnOnce(&mut Connection) + Send>;

/// Work for the writer thread: urgent tasks (recording ticks) go before everything else, so a
/// backlog of run writes never makes a tick late.
#[derive(Default)]
struct Queue {
    state: Mutex<Lanes>,
    ready: Condvar,
}

#[derive(Default)]
struct Lanes {
    urgent: VecDeque<Task>,
    normal: VecDeque<Task>,
    closed: bool,
}

impl Queue {
    fn push(&self, task: Task, urgent: bool) -> Result<()> {
        let mut l = self.state.lock().map_err(|_| StoreError::Closed)?;
        if l.closed {
            return Err(StoreError::Closed);
        }
        if urgent {
            l.urgent.push_back(task);
        } else {
            l.normal.push_back(task);
        }
        self.ready.notify_one();
        Ok(())
    }

    /// The next task, or `None` once closed and drained.
    fn pop(&self) -> Option<Task> {
        let mut l = self.state.lock().ok()?;
        loop {
            if let Some(t) = l.urgent.pop_front().or_else(|| l.normal.pop_front()) {
                return Some(t);
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
    /// Rung when a webhook callback is queued, so the deliverer need not poll.
    deliveries: tokio::sync::Notify,
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
        let mut conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        schema::migrate(&mut conn, path)?;
        let queue = Arc::new(Queue::default());
        let q = queue.clone();
        std::thread::Builder::new()
            .name("watchbell-db".into())
            .spawn(move || {
                while let Some(task) = q.pop() {
                    task(&mut conn);
                }
            })
            .map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        Ok(Store {
            inner: Arc::new(Inner {
                queue,
                path: path.to_path_buf(),
                deliveries: tokio::sync::Notify::new(),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Tells the deliverer that a callback was queued.
    pub fn deliveries_queued(&self) {
        self.inner.deliveries.notify_one();
    }

    /// Resolves when a callback is queued (in this process) after the last call.
    pub async fn delivery_queued(&self) {
        self.inner.deliveries.notified().await;
    }

    /// Runs `f` on the writer thread and awaits its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        self.call_in_lane(f, false).await
    }

    /// Like [`Store::call`], ahead of every waiting ordinary task (for recording ticks).
    pub async fn call_urgent<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        self.call_in_lane(f, true).await
    }

    async fn call_in_lane<R, F>(&self, f: F, urgent: bool) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner.queue.push(
            Box::new(move |c| {
                let _ = tx.send(f(c));
            }),
            urgent,
        )?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on the writer thread and blocks until it is done (for code outside the runtime).
    pub fn call_blocking<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        self.inner.queue.push(
            Box::new(move |c| {
                let _ = tx.send(f(c));
            }),
            false,
        )?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }
}

/// Opens the database read-only, for commands that only look (the daemon may be writing).
pub fn open_read_only(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

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
