//! Retention: finished runs older than `[daemon] retain` go, with their items, pages,
//! transitions and delivered callbacks. What stays: tick rows (small, and they stop a backfill
//! from firing a pruned range again), each job's last run, the seen-record (so old items do not
//! become new), every run that may still continue (BLOCKED, QUEUED, RUNNING, callbacks not
//! yet delivered), every run holding an item a chained job has not yet consumed or failed, and
//! the chained jobs' records of what they consumed or failed. The space is given back to the file system (incremental vacuum).

use super::db::Db;
use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use super::{Result, ts, write_tx};

/// What a prune removed (or, dry, would remove).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub runs: u64,
    pub items: u64,
    pub pages: u64,
    pub transitions: u64,
    pub callbacks: u64,
    /// Old finished runs kept because they are their job's last run.
    pub kept_last: u64,
    /// Bytes given back to the file system.
    pub reclaimed_bytes: u64,
    /// The database was switched to incremental vacuum (once, on its first prune).
    pub switched_vacuum: bool,
}

/// The runs a prune removes: finished before `before`, not their job's last, with no callback
/// still to deliver.
const DOOMED: &str = "SELECT r.id FROM runs r
     WHERE r.created_at < ?1
       AND r.status IN ('SUCCEEDED', 'PARTIAL_SUCCEEDED', 'FAILED', 'INVALID', 'STOPPED')
       AND r.id != (SELECT l.id FROM runs l WHERE l.job = r.job ORDER BY l.created_at DESC, l.id DESC LIMIT 1)
       AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.run_id = r.id AND d.state = 'pending')
       AND NOT EXISTS (SELECT 1 FROM chain_items c WHERE c.src_run_id = r.id AND c.state IN ('pending', 'held'))";

fn count(conn: &Db, sql: &str, before: &str) -> Result<u64> {
    Ok(conn.query_row(sql, [before], |r| r.get::<_, i64>(0))? as u64)
}

/// Removes (or with `dry_run`, counts) what retention lets go of, then reclaims the space.
pub fn prune(conn: &mut Db, before: DateTime<Utc>, dry_run: bool) -> Result<Pruned> {
    let b = ts(before);
    let within =
        |table: &str, col: &str| format!("SELECT COUNT(*) FROM {table} WHERE {col} IN ({DOOMED})");
    let mut p = Pruned {
        runs: count(conn, &format!("SELECT COUNT(*) FROM ({DOOMED}) AS d"), &b)?,
        items: count(conn, &within("items", "run_id"), &b)?,
        pages: count(conn, &within("pages", "run_id"), &b)?,
        transitions: count(conn, &within("transitions", "run_id"), &b)?,
        callbacks: count(conn, &within("deliveries", "run_id"), &b)?,
        kept_last: count(
            conn,
            "SELECT COUNT(*) FROM runs r WHERE r.created_at < ?1
               AND r.status IN ('SUCCEEDED', 'PARTIAL_SUCCEEDED', 'FAILED', 'INVALID', 'STOPPED')
               AND r.id = (SELECT l.id FROM runs l WHERE l.job = r.job ORDER BY l.created_at DESC, l.id DESC LIMIT 1)",
            &b,
        )?,
        ..Pruned::default()
    };
    if dry_run || p.runs == 0 {
        return Ok(p);
    }
    let tx = write_tx(conn)?;
    tx.execute(&format!("CREATE TEMP TABLE doomed AS {DOOMED}"), params![b])?;
    for table in ["deliveries", "items", "pages", "transitions", "run_inputs"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE run_id IN (SELECT id FROM doomed)"),
            (),
        )?;
    }
    tx.execute("DELETE FROM runs WHERE id IN (SELECT id FROM doomed)", ())?;
    tx.execute("DROP TABLE doomed", ())?;
    tx.commit()?;
    // PostgreSQL reclaims on its own (autovacuum); SQLite's file gives pages back here.
    let Some(conn) = conn.as_lite() else {
        return Ok(p);
    };
    let size = |c: &rusqlite::Connection| -> Result<u64> {
        let pages: i64 = c.pragma_query_value(None, "page_count", |r| r.get(0))?;
        let size: i64 = c.pragma_query_value(None, "page_size", |r| r.get(0))?;
        Ok((pages * size) as u64)
    };
    let before_bytes = size(conn)?;
    let mode: i64 = conn.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?;
    if mode != 2 {
        // A database made before retention existed: switched once (VACUUM rewrites it).
        conn.pragma_update(None, "auto_vacuum", 2)?;
        conn.execute_batch("VACUUM")?;
        p.switched_vacuum = true;
    }
    conn.execute_batch("PRAGMA incremental_vacuum")?;
    p.reclaimed_bytes = before_bytes.saturating_sub(size(conn)?);
    Ok(p)
}
