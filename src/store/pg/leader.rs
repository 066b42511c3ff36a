//! Who leads a cluster of nodes on one `PostgreSQL` database: one row (holder, epoch, expiry,
//! the hash of the holder's validated configuration), taken and renewed on the database's
//! clock. Leader election alone never gives "at most once"; what does is that
//!
//! - every write made for the schedule checks, in its own transaction, that its epoch still
//!   holds the row ([`fence`], which also locks the row so a takeover waits for that
//!   transaction), and
//! - a leader stops itself before its row can have expired: it times its lease on its own
//!   monotonic clock from the *start* of its last successful renewal ([`Lease`]) and past
//!   [`Timings::stop`] neither fires nor sends a request. The row expires [`Timings::expire`]
//!   after the database stamped the renewal, which is later than that start, so however slow
//!   the network or paused the process, the node has stopped before anyone else may begin.

use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::{Client, GenericClient};

/// The cluster's tables (`PostgreSQL` only: on `SQLite` one daemon owns the database).
pub const DDL: &str = "
    CREATE TABLE IF NOT EXISTS watchbell_leader (
        id           INT PRIMARY KEY CHECK (id = 1),
        holder       TEXT,
        epoch        BIGINT NOT NULL,
        expires_at   TIMESTAMPTZ NOT NULL,
        renewed_at   TIMESTAMPTZ NOT NULL,
        config_hash  TEXT NOT NULL
    );
    INSERT INTO watchbell_leader (id, holder, epoch, expires_at, renewed_at, config_hash)
        VALUES (1, NULL, 0, clock_timestamp(), clock_timestamp(), '')
        ON CONFLICT (id) DO NOTHING;
    CREATE TABLE IF NOT EXISTS watchbell_nodes (
        node         TEXT PRIMARY KEY,
        seen_at      TIMESTAMPTZ NOT NULL,
        started_at   TIMESTAMPTZ NOT NULL,
        config_hash  TEXT NOT NULL
    );
    ALTER TABLE watchbell_nodes ADD COLUMN IF NOT EXISTS left_at TIMESTAMPTZ;";

/// The lease's clock: renewed every `renew`, the row expires `expire` after the database
/// stamped a renewal, the node stops itself `stop` after it began one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timings {
    pub renew: Duration,
    pub expire: Duration,
    pub stop: Duration,
    /// How often a standby looks at the row.
    pub poll: Duration,
}

impl Default for Timings {
    fn default() -> Timings {
        Timings {
            renew: Duration::from_secs(5),
            expire: Duration::from_secs(15),
            stop: Duration::from_secs(10),
            poll: Duration::from_secs(1),
        }
    }
}

/// The row as one node read or wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub node: Option<String>,
    pub epoch: i64,
    /// Milliseconds the row has left on the database's clock (negative once expired).
    pub left_ms: i64,
    pub config_hash: String,
}

impl Holder {
    pub fn live(&self) -> bool {
        self.node.is_some() && self.left_ms > 0
    }
}

/// What an attempt to take or renew the row found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// This node holds the row at `epoch`. `took` when the epoch is new (a takeover or a first
    /// term); `hash_differs` when the row it took was left by a node with another configuration.
    Leads {
        epoch: i64,
        took: bool,
        hash_differs: bool,
    },
    /// Another node holds a live row.
    Follows(Holder),
}

/// Takes the row if it is free or expired, renews it if this node holds it: one transaction
/// that locks the row, decides on the database's clock and writes. Also notes this node alive.
pub async fn attempt(
    client: &mut Client,
    node: &str,
    hash: &str,
    t: Timings,
) -> Result<Attempt, tokio_postgres::Error> {
    let expire_ms = i64::try_from(t.expire.as_millis()).unwrap_or(i64::MAX);
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO watchbell_nodes (node, seen_at, started_at, config_hash)
         VALUES ($1, clock_timestamp(), clock_timestamp(), $2)
         ON CONFLICT (node) DO UPDATE SET seen_at = EXCLUDED.seen_at,
             config_hash = EXCLUDED.config_hash, left_at = NULL",
        &[&node, &hash],
    )
    .await?;
    let row = tx
        .query_one(
            "SELECT holder, epoch,
                    (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::bigint,
                    config_hash
             FROM watchbell_leader WHERE id = 1 FOR UPDATE",
            &[],
        )
        .await?;
    let held = Holder {
        node: row.get(0),
        epoch: row.get(1),
        left_ms: row.get(2),
        config_hash: row.get(3),
    };
    let mine = held.node.as_deref() == Some(node);
    if held.live() && !mine {
        tx.commit().await?;
        return Ok(Attempt::Follows(held));
    }
    let took = !(mine && held.live());
    let epoch = if took { held.epoch + 1 } else { held.epoch };
    tx.execute(
        "UPDATE watchbell_leader SET holder = $1, epoch = $2,
             expires_at = clock_timestamp() + $3::bigint * interval '1 millisecond',
             renewed_at = clock_timestamp(), config_hash = $4
         WHERE id = 1",
        &[&node, &epoch, &expire_ms, &hash],
    )
    .await?;
    tx.commit().await?;
    let hash_differs = took && !mine && held.node.is_some() && held.config_hash != hash;
    Ok(Attempt::Leads {
        epoch,
        took,
        hash_differs,
    })
}

/// The row (its holder `None` until a node first leads, and after a release).
pub async fn read(client: &impl GenericClient) -> Result<Option<Holder>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT holder, epoch,
                    (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::bigint,
                    config_hash
             FROM watchbell_leader WHERE id = 1",
            &[],
        )
        .await?;
    Ok(row.map(|r| Holder {
        node: r.get(0),
        epoch: r.get(1),
        left_ms: r.get(2),
        config_hash: r.get(3),
    }))
}

/// Gives the row up at once (a clean stop with a standby alive): the next node takes it on its
/// next look instead of waiting out the lease. Only the holder at `epoch` can release it.
pub async fn release(
    client: &Client,
    node: &str,
    epoch: i64,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "UPDATE watchbell_leader SET holder = NULL, expires_at = clock_timestamp()
             WHERE id = 1 AND holder = $1 AND epoch = $2",
            &[&node, &epoch],
        )
        .await?;
    Ok(n == 1)
}

/// Marks `node` as gone (a clean stop): no leader stopping after it hands its runs over to it.
pub async fn leave(client: &Client, node: &str) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE watchbell_nodes SET left_at = clock_timestamp() WHERE node = $1",
            &[&node],
        )
        .await
        .map(drop)
}

/// Inside a write transaction of the leader: true when `node` still holds the row at `epoch`
/// and it has not expired. The row is locked (`FOR SHARE`) until the transaction ends, so a
/// takeover, which updates it, waits for this write to commit or roll back: no write of an old
/// epoch can land after a new epoch began.
pub async fn fence(
    tx: &tokio_postgres::Transaction<'_>,
    node: &str,
    epoch: i64,
) -> Result<bool, tokio_postgres::Error> {
    let row = tx
        .query_opt(
            "SELECT 1 FROM watchbell_leader
             WHERE id = 1 AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp()
             FOR SHARE",
            &[&node, &epoch],
        )
        .await?;
    Ok(row.is_some())
}

/// Nodes seen within the lease's expiry, other than `node`: a clean stop hands over only when
/// one of them can take the row.
pub async fn live_peers(
    client: &Client,
    node: &str,
    t: Timings,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let expire_ms = i64::try_from(t.expire.as_millis()).unwrap_or(i64::MAX);
    let rows = client
        .query(
            "SELECT node FROM watchbell_nodes
             WHERE node <> $1 AND left_at IS NULL
               AND seen_at > clock_timestamp() - $2::bigint * interval '1 millisecond'
             ORDER BY node",
            &[&node, &expire_ms],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The leader's own view of its lease, on its monotonic clock.
#[derive(Clone, Copy, Debug)]
pub struct Lease {
    epoch: i64,
    /// When the last successful renewal *began*.
    began: Instant,
    stop: Duration,
}

impl Lease {
    /// A renewal that began at `began` succeeded at `epoch`.
    pub fn new(epoch: i64, began: Instant, t: Timings) -> Lease {
        Lease {
            epoch,
            began,
            stop: t.stop,
        }
    }

    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// True while this node may fire and send requests: checked right before each one.
    pub fn holds(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.began) < self.stop
    }

    /// How long it may still act.
    pub fn left(&self, now: Instant) -> Duration {
        self.stop
            .saturating_sub(now.saturating_duration_since(self.began))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_lease_lapses_on_the_node_clock_before_the_row_can_expire() {
        let t = Timings::default();
        let began = Instant::now();
        // The renewal took 3 s to answer; the node counts from when it began.
        tokio::time::advance(Duration::from_secs(3)).await;
        let lease = Lease::new(4, began, t);
        assert!(lease.holds(Instant::now()));
        assert_eq!(lease.left(Instant::now()), Duration::from_secs(7));
        tokio::time::advance(Duration::from_millis(6_999)).await;
        assert!(lease.holds(Instant::now()));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!lease.holds(Instant::now()));
        assert_eq!(lease.epoch(), 4);
        assert!(t.stop < t.expire && t.renew < t.stop);
    }
}
