//! `run` on `PostgreSQL`: how this node takes the lead, acts only while it holds it, and stops
//! at once when it may no longer. The lead loop ([`lead::keep`]) runs on a connection of its
//! own; the daemon starts once this node leads, every write is fenced by the epoch
//! ([`Store::set_fence`]), and every API request first asks the lease, on this node's monotonic
//! clock, whether it still holds ([`Cluster::lease`]). A node that finds it no longer leads exits
//! 1 without draining (a drain would send requests); systemd starts it again as a standby, and
//! the new leader picks its runs up as after a crash.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::Failure;
use crate::store::db::DbError;
use crate::store::pg::lead::{self, Node, Role};
use crate::store::pg::leader::Timings;
use std::path::Path;

use crate::store::pg::{PgError, Target, UrlSource, copy};
use crate::store::{Store, StoreError};

/// How long a stopping node waits on the database for its handover.
const ASK_PEERS: std::time::Duration = std::time::Duration::from_secs(2);

/// A node of a cluster on one `PostgreSQL` database.
pub(super) struct Cluster {
    pub store: Store,
    node: Node,
    role: watch::Receiver<Role>,
    stop: CancellationToken,
    /// Cancelled on a clean stop, before the lead is given up.
    stopping: CancellationToken,
    keeper: tokio::task::JoinHandle<()>,
    /// The node's registry: its role and failovers are shown at `/metrics`.
    metrics: Arc<crate::metrics::Metrics>,
}

/// This node's name in the cluster: `WATCHBELL_NODE`, else the host's name.
fn node_name() -> String {
    std::env::var("WATCHBELL_NODE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map_or_else(|_| "node".into(), |h| h.trim().to_string())
        })
}

pub(super) fn failure(e: &PgError) -> Failure {
    Failure {
        code: e.exit_code(),
        message: e.message.clone(),
    }
}

/// A store error of opening `PostgreSQL`: a connection's carries its exit code.
pub(super) fn open_failure(e: StoreError) -> Failure {
    match e {
        StoreError::Sql(DbError::Connect(pg)) => failure(&pg),
        other => Failure::runtime(other),
    }
}

/// The `PostgreSQL` state of `[store]`, read-only, for the commands that look.
pub(super) fn read(source: &UrlSource) -> Result<crate::store::Reader, Failure> {
    let target = Target::resolve(source).map_err(|e| failure(&e))?;
    crate::store::open_read_postgres(&target).map_err(open_failure)
}

/// The `PostgreSQL` state of `[store]`, for a command that writes outside the lead (its writes
/// unfenced: `sync`, under the sync's turn).
pub(super) fn write(source: &UrlSource) -> Result<Store, Failure> {
    let target = Target::resolve(source).map_err(|e| failure(&e))?;
    Store::open_postgres(&target, crate::store::DEFAULT_PATIENCE).map_err(open_failure)
}

impl Cluster {
    /// Connects (exit 2 for a configuration to fix, 1 for a server to wait for), migrates, and
    /// starts keeping this node's role.
    /// `config_hash` is the job file's as loaded ([`crate::config::Config::cluster_hash`]),
    /// before the sandbox rewrites its URLs. An empty database beside an existing `SQLite`
    /// state at `sqlite` is refused (exit 2): its history would be left behind.
    pub async fn open(
        config_hash: String,
        source: &UrlSource,
        sqlite: &Path,
        patience: std::time::Duration,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Cluster, Failure> {
        let name = node_name();
        // Each node's sessions carry its name, so `pg_stat_activity` tells them apart.
        let target = Target::resolve(source)
            .map_err(|e| failure(&e))?
            .named(&format!("watchbell {name}"));
        if sqlite.exists() {
            let fail = |e: tokio_postgres::Error| failure(&PgError::of(&target, &e));
            let client = crate::store::pg::connect(&target)
                .await
                .map_err(|e| failure(&e))?;
            let tables = crate::store::pg::schema::tables();
            let found = match crate::store::pg::schema::version(&client)
                .await
                .map_err(fail)?
            {
                0 => None,
                _ => copy::holding(&client, &tables).await.map_err(fail)?,
            };
            if found.is_none() {
                return Err(Failure::usage(format!(
                    "PostgreSQL {target} holds no watchbell state, while {} does: move it first with `watchbell store copy --to-postgres` (or move the file away to start afresh)",
                    sqlite.display()
                )));
            }
        }
        let store = Store::open_postgres(&target, patience).map_err(open_failure)?;
        let node = Node {
            target,
            name,
            config_hash,
            timings: Timings::default(),
        };
        let (tx, role) = watch::channel(Role::Standby);
        let stop = CancellationToken::new();
        let keeper = tokio::spawn(lead::keep(
            node.clone(),
            tx,
            metrics.failovers(),
            stop.clone(),
        ));
        metrics.set_leads(false);
        info!(node = %node.name, database = %node.target, "cluster: this node starts as a standby");
        Ok(Cluster {
            store,
            node,
            role,
            stop,
            stopping: CancellationToken::new(),
            keeper,
            metrics,
        })
    }

    /// Waits until this node leads (its epoch), or `None` when `shutdown` comes first.
    pub async fn lead(&mut self, shutdown: impl Future<Output = ()>) -> Option<i64> {
        let leads = self.role.wait_for(|r| matches!(r, Role::Leader(_)));
        let epoch = tokio::select! {
            r = leads => match *r.ok()? {
                Role::Leader(v) => v.epoch,
                Role::Standby => return None,
            },
            () = shutdown => return None,
        };
        self.store
            .set_fence(Some((self.node.name.clone(), epoch)))
            .await
            .ok()?;
        self.metrics.set_leads(true);
        info!(node = %self.node.name, epoch, "cluster: leading; the schedule starts");
        Some(epoch)
    }

    /// Asked right before every API request: true while this node's lease holds on its own
    /// monotonic clock. When it no longer does, the process exits 1 there and then.
    /// During a clean stop, once the lead is given up, requests are refused without exiting.
    pub fn lease(&self) -> crate::api::LeaseCheck {
        let (role, t, name) = (self.role.clone(), self.node.timings, self.node.name.clone());
        let stopping = self.stopping.clone();
        crate::api::LeaseCheck(Arc::new(move || {
            if role.borrow().may_act(tokio::time::Instant::now(), t) {
                return true;
            }
            if stopping.is_cancelled() {
                return false;
            }
            error!(node = %name, "cluster: the lease ran out before a request; exiting without sending it");
            std::process::exit(1);
        }))
    }

    /// Exits the process at once, without draining, when this node stops leading under
    /// `epoch` (another node took the row, a fenced write was refused) or can no longer tell
    /// (its lease ran out on its own clock: the database stopped answering, or the process was
    /// paused), until [`Cluster::stop`].
    pub fn exit_when_lost(&self, epoch: i64) {
        let (mut role, store, stopping) =
            (self.role.clone(), self.store.clone(), self.stopping.clone());
        let stop_after = self.node.timings.stop;
        tokio::spawn(async move {
            loop {
                // The lease ends `stop` after its last renewal began, on this node's monotonic
                // clock, whether or not the lead loop is still waiting on the database.
                let ends = match *role.borrow_and_update() {
                    Role::Leader(v) if v.epoch == epoch => v.began + stop_after,
                    _ => break,
                };
                tokio::select! {
                    biased;
                    () = stopping.cancelled() => return,
                    changed = role.changed() => if changed.is_err() { break },
                    () = tokio::time::sleep_until(ends) => break,
                    () = store.health().lost_lead() => break,
                }
            }
            if stopping.is_cancelled() {
                return; // a clean stop gives the lead up on purpose
            }
            error!(
                "cluster: this node no longer leads (or cannot tell: its lease ran out); exiting at once, without draining (the new leader resumes its runs)"
            );
            std::process::exit(1);
        });
    }

    /// True when another node was seen within the lease's expiry: one that can take the lead
    /// at once (so runs stop for it instead of finishing here).
    pub async fn has_live_peer(&self) -> bool {
        // Asked on SIGTERM: a database that does not answer must not hold the stop up.
        let ask = async {
            let client = crate::store::pg::connect(&self.node.target).await.ok()?;
            crate::store::pg::leader::live_peers(&client, &self.node.name, self.node.timings)
                .await
                .ok()
        };
        tokio::time::timeout(ASK_PEERS, ask)
            .await
            .ok()
            .flatten()
            .is_some_and(|peers| !peers.is_empty())
    }

    /// Stops the lead loop after a clean stop of the daemon; a leader with a live peer hands
    /// the row over at once.
    pub async fn stop(self) {
        self.stopping.cancel();
        self.stop.cancel();
        // The handover's release is one statement; a database that does not answer leaves the
        // row to expire instead of holding the exit up.
        if tokio::time::timeout(ASK_PEERS, self.keeper).await.is_err() {
            tracing::warn!(node = %self.node.name, "cluster: the database did not answer the handover; the lead expires on its own");
        }
    }
}
