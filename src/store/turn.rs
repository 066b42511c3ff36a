//! One reconcile of remote schedules at a time: the daemon's and `watchbell sync`'s would both
//! create a schedule missing from the account, and the account would hold two. On `SQLite` the
//! turn is a lock file beside the database; on `PostgreSQL` a session advisory lock on a
//! connection of its own, released by the server when the turn (its connection) ends, so a
//! crashed holder never keeps it.

use std::time::{Duration, Instant};

use super::{Result, Store, StoreError, db::DbError, files, pg};

/// The advisory lock key of the sync's turn: "wb-sync!" in ASCII.
const SYNC_LOCK: i64 = 0x7762_2d73_796e_6321;

/// How often a waiting turn asks again.
const LOOK: Duration = Duration::from_millis(100);

/// Held while a reconcile runs; dropping it gives the turn up.
pub enum SyncTurn {
    File(files::Lock),
    Session(tokio_postgres::Client),
}

impl std::fmt::Debug for SyncTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SyncTurn::File(_) => "SyncTurn(file)",
            SyncTurn::Session(_) => "SyncTurn(advisory lock)",
        })
    }
}

impl Store {
    /// Takes the sync's turn, waiting up to `patience` for another reconcile to finish:
    /// `None` when it did not.
    pub async fn sync_turn(&self, patience: Duration) -> Result<Option<SyncTurn>> {
        let Some(target) = &self.inner.target else {
            let path = self.path().to_path_buf();
            return tokio::task::spawn_blocking(move || files::sync_lock(&path, patience))
                .await
                .map(|l| l.map(SyncTurn::File))
                .map_err(|_| StoreError::Closed);
        };
        let fail = |e: pg::PgError| StoreError::Sql(DbError::Connect(e));
        let client = pg::connect(target).await.map_err(fail)?;
        let start = Instant::now();
        loop {
            let got: bool = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&SYNC_LOCK])
                .await
                .map_err(|e| fail(pg::PgError::of(target, &e)))?
                .get(0);
            if got {
                return Ok(Some(SyncTurn::Session(client)));
            }
            if start.elapsed() >= patience {
                return Ok(None);
            }
            tokio::time::sleep(LOOK).await;
        }
    }
}
