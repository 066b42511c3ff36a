//! The webhook delivery queue: one row per callback, delivered in order per run, claimed by one
//! process at a time, retried with backoff until it is delivered.

use super::db::Db;
use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use super::kinds::{DeliveryKind, DeliveryState};
use super::{Result, ts};

/// A callback waiting to go out (or gone).
#[derive(Clone, Debug, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub run_id: i64,
    pub seq: i64,
    pub job: String,
    pub url: String,
    pub body: String,
    pub state: DeliveryState,
    pub kind: DeliveryKind,
    pub attempts: u32,
    pub last_http_status: Option<u16>,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
}

/// Gives up on a delivery after this many attempts (about a day with the backoff cap).
pub const MAX_ATTEMPTS: u32 = 200;

/// Queues a callback for `run_uid`, after the ones already queued for it.
pub fn enqueue(
    conn: &Db,
    run_uid: &str,
    kind: DeliveryKind,
    url: &str,
    body: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<()> {
    conn.execute(
        "INSERT INTO deliveries (run_id, seq, job, url, body, next_attempt_at, created_at, kind)
         SELECT r.id, COALESCE((SELECT MAX(seq) FROM deliveries WHERE run_id = r.id), 0) + 1, r.job, ?2, ?3, ?4, ?4, ?5
         FROM runs r WHERE r.uid = ?1",
        params![run_uid, url, body.to_string(), ts(now), kind],
    )?;
    Ok(())
}

const COLUMNS: &str = "id, run_id, seq, job, url, body, state, attempts, last_http_status, last_error, delivered_at, kind";

fn from_row(r: &super::db::Row) -> super::db::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        run_id: r.get(1)?,
        seq: r.get(2)?,
        job: r.get(3)?,
        url: r.get(4)?,
        body: r.get(5)?,
        state: r.get(6)?,
        attempts: r.get(7)?,
        last_http_status: r.get(8)?,
        last_error: r.get(9)?,
        delivered_at: r.get(10)?,
        kind: r.get(11)?,
    })
}

/// Claims up to `limit` due deliveries for `claim` (each the oldest pending one of its run, so
/// a run's callbacks go out in order), optionally only for one run.
pub fn claim_due(
    conn: &mut Db,
    run_id: Option<i64>,
    limit: u32,
    claim: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<Vec<Delivery>> {
    // Look first without a write transaction: most of the time nothing is due.
    let due: i64 = conn.query_row(
        "SELECT COUNT(*) FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ?1",
        [ts(now)],
        |r| r.get(0),
    )?;
    if due == 0 {
        return Ok(Vec::new());
    }
    let tx = super::write_tx(conn)?;
    let found: Vec<Delivery> = {
        let mut stmt = tx.prepare(&format!(
            "SELECT {COLUMNS} FROM deliveries d WHERE state = 'pending' AND next_attempt_at <= ?1
               AND (claimed_until IS NULL OR claimed_until < ?1) AND (CAST(?2 AS BIGINT) IS NULL OR run_id = ?2)
               AND seq = (SELECT MIN(seq) FROM deliveries e WHERE e.run_id = d.run_id AND e.kind = d.kind AND e.state = 'pending')
             ORDER BY id LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![ts(now), run_id, limit], from_row)?;
        rows.collect::<super::db::Result<_>>()?
    };
    for d in &found {
        tx.execute(
            "UPDATE deliveries SET claimed_until = ?2 WHERE id = ?1",
            params![d.id, ts(now + claim)],
        )?;
    }
    tx.commit()?;
    Ok(found)
}

/// Records an attempt: delivered, or to be retried at `retry_at` (failed for good past
/// [`MAX_ATTEMPTS`]).
pub fn record_attempt(
    conn: &Db,
    id: i64,
    http_status: Option<u16>,
    error: Option<&str>,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<()> {
    match retry_at {
        None => conn.execute(
            "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, last_http_status = ?2,
             last_error = NULL, delivered_at = ?3, claimed_until = NULL WHERE id = ?1",
            params![id, http_status, ts(now)],
        )?,
        Some(at) => conn.execute(
            "UPDATE deliveries SET attempts = attempts + 1, last_http_status = ?2, last_error = ?3,
             next_attempt_at = ?4, claimed_until = NULL,
             state = CASE WHEN attempts + 1 >= ?5 THEN 'failed' ELSE 'pending' END WHERE id = ?1",
            params![id, http_status, error.map(|e| crate::api::cap(e, 500)), ts(at), MAX_ATTEMPTS],
        )?,
    };
    Ok(())
}

/// A run's deliveries, in order.
pub fn deliveries_of(conn: &Db, run_id: i64) -> Result<Vec<Delivery>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM deliveries WHERE run_id = ?1 ORDER BY seq"
    ))?;
    let rows = stmt.query_map([run_id], from_row)?;
    Ok(rows.collect::<super::db::Result<_>>()?)
}

/// When the earliest pending delivery is due.
pub fn next_delivery_at(conn: &Db) -> Result<Option<DateTime<Utc>>> {
    let s: Option<String> = conn.query_row(
        "SELECT MIN(next_attempt_at) FROM deliveries WHERE state = 'pending'",
        (),
        |r| r.get(0),
    )?;
    Ok(s.as_deref().and_then(super::parse_ts))
}

/// How many deliveries are still pending, for one run or all.
pub fn pending_count(conn: &Db, run_id: Option<i64>) -> Result<u64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM deliveries WHERE state = 'pending' AND (CAST(?1 AS BIGINT) IS NULL OR run_id = ?1)",
        params![run_id],
        |r| r.get::<_, i64>(0),
    )? as u64)
}
