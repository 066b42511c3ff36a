//! The loop that keeps a node's role: a standby looks at the row every `poll` and takes it once
//! free or expired; a leader renews every `renew` and publishes its [`Lease`], which lapses on
//! its own monotonic clock when renewals stop succeeding (a lost connection, a paused process):
//! whoever acts for the leader checks [`Role::may_act`] right before each act. On stop, a leader
//! with a live peer releases the row, so the peer takes it on its next look.

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::leader::{self, Attempt, Lease, Timings};
use super::{PgError, Target};

/// What this node is, as the loop last learned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Not leading (another node does, or the database cannot be reached).
    Standby,
    /// Leading under this lease, as long as it holds.
    Leader(LeaseView),
}

/// A [`Lease`] as published (comparable, for the watch channel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseView {
    pub epoch: i64,
    pub began: Instant,
}

impl Role {
    /// True when this node may fire or send a request now.
    pub fn may_act(&self, now: Instant, t: Timings) -> bool {
        match self {
            Role::Standby => false,
            Role::Leader(v) => Lease::new(v.epoch, v.began, t).holds(now),
        }
    }
}

/// Who this node is in the cluster and how it keeps its role.
#[derive(Clone, Debug)]
pub struct Node {
    pub target: Target,
    pub name: String,
    pub config_hash: String,
    pub timings: Timings,
}

/// Runs until `stop`; publishes every change of role on `role`. Counts each term this node
/// began after another node's (a failover) in `failovers`.
pub async fn keep(
    node: Node,
    role: watch::Sender<Role>,
    failovers: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: CancellationToken,
) {
    let t = node.timings;
    let mut client: Option<tokio_postgres::Client> = None;
    let mut current: Option<Lease> = None;
    // The leader whose differing configuration was last said (said once, not every look).
    let mut said: Option<(Option<String>, String)> = None;
    loop {
        let began = Instant::now();
        if client
            .as_ref()
            .is_none_or(tokio_postgres::Client::is_closed)
        {
            client = match super::connect(&node.target).await {
                Ok(c) => Some(c),
                Err(e) => {
                    warn!(node = %node.name, error = %e.message, "cluster: cannot reach the database");
                    None
                }
            };
        }
        let attempt = match &mut client {
            Some(c) => leader::attempt(c, &node.name, &node.config_hash, t)
                .await
                .map_err(|e| PgError::of(&node.target, &e)),
            None => Err(PgError::config("no connection")),
        };
        match attempt {
            Ok(Attempt::Leads {
                epoch,
                took,
                hash_differs,
            }) => {
                if took {
                    info!(node = %node.name, epoch, "cluster: this node leads");
                    if hash_differs {
                        warn!(node = %node.name, epoch, "cluster: took the lead from a node whose configuration differs from this one's");
                    }
                    if epoch > 1 {
                        failovers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                let lease = Lease::new(epoch, began, t);
                current = Some(lease);
                role.send_replace(Role::Leader(LeaseView { epoch, began }));
            }
            Ok(Attempt::Follows(holder)) => {
                if current.take().is_some() {
                    warn!(node = %node.name, leader = ?holder.node, epoch = holder.epoch, "cluster: another node leads now");
                }
                let seen = (holder.node.clone(), holder.config_hash.clone());
                if holder.config_hash != node.config_hash && said.as_ref() != Some(&seen) {
                    warn!(node = %node.name, leader = ?holder.node, "cluster: the leader's configuration differs from this node's");
                    said = Some(seen);
                }
                role.send_replace(Role::Standby);
            }
            Err(e) => {
                // The lease published last lapses on its own; nothing to send.
                if current.is_some_and(|l| !l.holds(Instant::now())) {
                    warn!(node = %node.name, error = %e.message, "cluster: lease lapsed without a renewal; stopped acting");
                    current = None;
                    role.send_replace(Role::Standby);
                }
                client = None;
            }
        }
        let wait = if current.is_some() { t.renew } else { t.poll };
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep_until(began + wait) => {}
        }
        // A lease that lapses between renewals is withdrawn at its end, not at the next look.
        if let Some(l) = current
            && !l.holds(Instant::now())
        {
            current = None;
            role.send_replace(Role::Standby);
        }
    }
    role.send_replace(Role::Standby);
    if let Some(c) = &client {
        if let Some(l) = current {
            handover(c, &node, l).await;
        }
        // Whatever its role, a node that stops says so: a leader stopping after it must not
        // count it as a live peer and stop its runs for it.
        if let Err(e) = leader::leave(c, &node.name).await {
            warn!(node = %node.name, error = %e, "cluster: cannot record this node's leaving");
        }
    }
}

/// A clean stop of the leader: the row is released at once when another node is alive to take
/// it; alone, it is left to expire (a restart of this node takes it back).
async fn handover(c: &tokio_postgres::Client, node: &Node, lease: Lease) {
    match leader::live_peers(c, &node.name, node.timings).await {
        Ok(peers) if !peers.is_empty() => {
            if let Ok(true) = leader::release(c, &node.name, lease.epoch()).await {
                info!(node = %node.name, epoch = lease.epoch(), peers = ?peers, "cluster: released the lead for a handover");
            }
        }
        Ok(_) => {
            info!(node = %node.name, "cluster: no other node alive; the lead expires on its own");
        }
        Err(e) => warn!(node = %node.name, error = %e, "cluster: cannot hand over"),
    }
}
