//! Ticks: every nominal instant of every job, fired (with its run) or skipped (with a reason).
//! The primary key (job, nominal instant) makes "at most once, across restarts" a database fact.

use super::db::{Db, Optional};
use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use super::kinds::SkipReason;
use super::runs::{NewRun, insert_run, mark_queued};
use super::{Result, ts};

/// A tick as `ticks --json` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TickRecord {
    pub job: String,
    pub scheduled_for: String,
    pub fired_at: Option<String>,
    pub outcome: String,
    pub reason: Option<SkipReason>,
    pub run_uid: Option<String>,
}

/// A skipped tick to record.
#[derive(Clone, Debug)]
pub struct Skip {
    pub job: std::sync::Arc<str>,
    pub nominal: DateTime<Utc>,
    pub reason: SkipReason,
}

/// What recording a batch of ticks did.
#[derive(Debug, Default)]
pub struct Recorded {
    /// For each skip: false when that tick was already recorded.
    pub skipped: Vec<bool>,
    /// For each fire: the new run's uid, or `None` when that tick was already recorded.
    pub fired: Vec<Option<String>>,
    /// The instant the batch was written (the runs' creation time).
    pub at: DateTime<Utc>,
}

/// Records a batch of ticks in one transaction: skips, and fires whose runs are created QUEUED
/// ("waiting for a slot"). Each tick is recorded at most once.
pub fn record_ticks(
    conn: &mut Db,
    skips: &[Skip],
    fires: &[(DateTime<Utc>, NewRun)],
    now: DateTime<Utc>,
) -> Result<Recorded> {
    let tx = super::write_tx(conn)?;
    let mut out = Recorded {
        at: now,
        ..Recorded::default()
    };
    {
        let mut skip = tx.prepare_cached(
            "INSERT INTO ticks (job, scheduled_for, outcome, reason) VALUES (?1, ?2, 'skipped', ?3) ON CONFLICT DO NOTHING",
        )?;
        for s in skips {
            out.skipped
                .push(skip.execute(params![s.job, ts(s.nominal), s.reason])? == 1);
        }
    }
    for (nominal, new) in fires {
        let exists: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM ticks WHERE job = ?1 AND scheduled_for = ?2",
                params![new.job, ts(*nominal)],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_some() {
            out.fired.push(None);
            continue;
        }
        if super::chain::is_taker(&tx, &new.job)? && super::chain::pending(&tx, &new.job)? == 0 {
            tx.execute(
                "INSERT INTO ticks (job, scheduled_for, outcome, reason) VALUES (?1, ?2, 'skipped', ?3)",
                params![new.job, ts(*nominal), SkipReason::NoInputs],
            )?;
            out.fired.push(None);
            continue;
        }
        let uid = insert_run(&tx, new, now)?;
        mark_queued(&tx, &uid, "tick", now)?;
        tx.execute(
            "INSERT INTO ticks (job, scheduled_for, outcome, reason, run_uid, fired_at) VALUES (?1, ?2, 'fired', NULL, ?3, ?4)",
            params![new.job, ts(*nominal), uid, ts(now)],
        )?;
        out.fired.push(Some(uid));
    }
    tx.commit()?;
    Ok(out)
}

/// Fires a past tick that has no run (no row, or one skipped while the daemon was down, outside
/// the catch-up window, or for overlap): the run is created QUEUED and the tick row says fired.
/// `None` when the tick already has a run (or was skipped because the job was disabled).
pub fn backfill_tick(
    conn: &mut Db,
    nominal: DateTime<Utc>,
    new: &NewRun,
    now: DateTime<Utc>,
) -> Result<Option<String>> {
    let tx = super::write_tx(conn)?;
    let row: Option<(String, Option<SkipReason>)> = tx
        .query_row(
            "SELECT outcome, reason FROM ticks WHERE job = ?1 AND scheduled_for = ?2",
            params![new.job, ts(nominal)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let open = match &row {
        None => true,
        Some((outcome, reason)) => {
            outcome == "skipped"
                && matches!(
                    reason,
                    Some(
                        SkipReason::DaemonDown
                            | SkipReason::Failover
                            | SkipReason::CatchupWindow
                            | SkipReason::Overlap
                    )
                )
        }
    };
    if !open {
        return Ok(None);
    }
    let uid = insert_run(&tx, new, now)?;
    mark_queued(&tx, &uid, "backfill", now)?;
    tx.execute(
        "INSERT INTO ticks (job, scheduled_for, outcome, reason, run_uid, fired_at) VALUES (?1, ?2, 'fired', NULL, ?3, ?4)
         ON CONFLICT(job, scheduled_for) DO UPDATE SET outcome = 'fired', reason = NULL, run_uid = ?3, fired_at = ?4",
        params![new.job, ts(nominal), uid, ts(now)],
    )?;
    tx.commit()?;
    Ok(Some(uid))
}

/// Records a tick as skipped. Returns false when the tick was already recorded.
pub fn skip_tick(
    conn: &Db,
    job: &str,
    scheduled_for: DateTime<Utc>,
    reason: SkipReason,
) -> Result<bool> {
    let n = conn.execute(
        "INSERT INTO ticks (job, scheduled_for, outcome, reason) VALUES (?1, ?2, 'skipped', ?3) ON CONFLICT DO NOTHING",
        params![job, ts(scheduled_for), reason],
    )?;
    Ok(n == 1)
}

/// The latest nominal instant recorded for each job (fired or skipped), in one pass over the
/// primary key (a query per job was a quarter of a 10,000-job start).
pub fn last_ticks(conn: &Db) -> Result<Vec<(String, DateTime<Utc>)>> {
    let mut stmt = conn.prepare("SELECT job, MAX(scheduled_for) FROM ticks GROUP BY job")?;
    let rows = stmt.query_map((), |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (job, at) = row?;
        if let Some(at) = super::parse_ts(&at) {
            out.push((job, at));
        }
    }
    Ok(out)
}

/// Ticks, oldest first, optionally for one job and from an instant on.
pub fn list_ticks(
    conn: &Db,
    job: Option<&str>,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<TickRecord>> {
    let mut stmt = conn.prepare(
        "SELECT job, scheduled_for, fired_at, outcome, reason, run_uid FROM ticks
         WHERE (CAST(?1 AS TEXT) IS NULL OR job = ?1) AND (CAST(?2 AS TEXT) IS NULL OR scheduled_for >= ?2)
         ORDER BY scheduled_for, job",
    )?;
    let rows = stmt.query_map(params![job, since.map(ts)], |r| {
        Ok(TickRecord {
            job: r.get(0)?,
            scheduled_for: r.get(1)?,
            fired_at: r.get(2)?,
            outcome: r.get(3)?,
            reason: r.get(4)?,
            run_uid: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<super::db::Result<_>>()?)
}
