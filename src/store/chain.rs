//! Chained jobs (PRODUCT.md, "Input lists and chained jobs"). A job with `inputs_from` takes
//! as inputs the items its source job stores: each new source item (one per item identity) is
//! queued for the job in the transaction that stores it, so none is missed whichever process
//! ran the source. A run holds the items it takes; an outcome that ends one (consumed when its
//! input succeeded, failed when refused) is written with the outcome; the run's final
//! transition releases the rest, and an item unfinished in three runs is failed. A job with
//! `after` gets a firing in the transaction that ends a run of its source SUCCEEDED or
//! `PARTIAL_SUCCEEDED`; the daemon turns firings into runs.

use super::db::{Db, Optional};
use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use super::{InputOutcome, Result, ts, write_tx};
use crate::status::RunStatus;

/// Runs an item may stay unfinished in before it is failed.
pub const MAX_TRIES: u32 = 3;

/// A job's `inputs_from`, as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainLink {
    pub job: String,
    pub src: String,
    /// Items the source stored before the job first appeared are queued too.
    pub backlog: bool,
}

/// Makes the store's links those of the job file: `inputs_from` links (a job seen for the
/// first time starts its queue now, or from the source's whole history with `backlog`) and
/// `after` links. Links of jobs no longer in the file are dropped; their queues stay.
pub fn set_links(
    conn: &mut Db,
    links: &[ChainLink],
    afters: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<()> {
    let tx = write_tx(conn)?;
    tx.execute("DELETE FROM after_links", ())?;
    for (job, src) in afters {
        tx.execute(
            "INSERT INTO after_links (job, src) VALUES (?1, ?2)
             ON CONFLICT (job) DO UPDATE SET src = excluded.src",
            params![job, src],
        )?;
    }
    let known: Vec<(String, String)> = tx
        .prepare("SELECT job, src FROM chain_links")?
        .query_map((), |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<super::db::Result<_>>()?;
    for (job, _) in &known {
        if !links.iter().any(|l| &l.job == job) {
            tx.execute("DELETE FROM chain_links WHERE job = ?1", [job])?;
        }
    }
    for l in links {
        let was = known.iter().find(|(j, _)| *j == l.job).map(|(_, s)| s);
        if was == Some(&l.src) {
            continue;
        }
        tx.execute(
            "INSERT INTO chain_links (job, src, since) VALUES (?1, ?2, ?3)
             ON CONFLICT (job) DO UPDATE SET src = excluded.src, since = excluded.since",
            params![l.job, l.src, ts(now)],
        )?;
        if l.backlog {
            queue_history(&tx, &l.job, &l.src)?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Queues every item `src` has stored as new, for `job` (`backlog = true`).
fn queue_history(tx: &Db, job: &str, src: &str) -> Result<()> {
    let mut read = tx.prepare(
        "SELECT i.run_id, i.page_no, i.idx, i.data, r.action_name FROM items i JOIN runs r ON r.id = i.run_id
         WHERE r.job = ?1 AND i.is_new = 1 ORDER BY i.run_id, i.page_no, i.idx",
    )?;
    let mut rows = read.query([src])?;
    while let Some(r) = rows.next()? {
        let text: String = r.get(3)?;
        let action: String = r.get(4)?;
        let item: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let key = crate::catalog::item_key(&action, &item, &text);
        queue(tx, job, src, key, (r.get(0)?, r.get(1)?, r.get(2)?))?;
    }
    Ok(())
}

fn queue(tx: &Db, job: &str, src: &str, key: u64, at: (i64, u32, i64)) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO chain_items (job, src, key, src_run_id, page_no, idx) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
    )?
    .execute(params![job, src, key.cast_signed(), at.0, at.1, at.2])?;
    Ok(())
}

/// The jobs that take `src`'s new items (inside `insert_page`'s transaction).
pub fn takers(tx: &Db, src: &str) -> Result<Vec<String>> {
    let mut stmt = tx.prepare_cached("SELECT job FROM chain_links WHERE src = ?1")?;
    let rows = stmt.query_map([src], |r| r.get(0))?;
    Ok(rows.collect::<super::db::Result<_>>()?)
}

/// Queues a new item of `src` for each of `takers` (inside `insert_page`'s transaction).
pub fn queue_new(
    tx: &Db,
    takers: &[String],
    src: &str,
    key: u64,
    at: (i64, u32, i64),
) -> Result<()> {
    for job in takers {
        queue(tx, job, src, key, at)?;
    }
    Ok(())
}

/// True when `job` takes its inputs from another job.
pub fn is_taker(conn: &Db, job: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM chain_links WHERE job = ?1")?
        .query_row([job], |_| Ok(()))
        .optional()?
        .is_some())
}

/// How many items wait for `job` (from its current source).
pub fn pending(conn: &Db, job: &str) -> Result<u64> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*) FROM chain_items c JOIN chain_links l ON l.job = c.job AND l.src = c.src
             WHERE c.job = ?1 AND c.state = 'pending'",
        )?
        .query_row([job], |r| r.get::<_, i64>(0))? as u64)
}

/// What a source item becomes as an input: its JSON text, or why it cannot be sent.
pub type MapItem = dyn Fn(&str) -> std::result::Result<String, String> + Send + Sync;

/// Holds every item pending for the run's job and stores each as one of the run's inputs, in
/// one transaction. An item whose mapped input breaks the target's schema is stored refused
/// with the reason, and failed, with no request. How many were taken.
pub fn take(conn: &mut Db, run_id: i64, job: &str, map: &MapItem) -> Result<u32> {
    let tx = write_tx(conn)?;
    let already: i64 = tx.query_row(
        "SELECT COUNT(*) FROM run_inputs WHERE run_id = ?1",
        [run_id],
        |r| r.get(0),
    )?;
    if already > 0 {
        return Ok(already as u32);
    }
    let mut taken = 0u32;
    {
        let mut read = tx.prepare(
            "SELECT c.key, i.data FROM chain_items c JOIN chain_links l ON l.job = c.job AND l.src = c.src
             JOIN items i ON i.run_id = c.src_run_id AND i.page_no = c.page_no AND i.idx = c.idx
             WHERE c.job = ?1 AND c.state = 'pending' ORDER BY c.src_run_id, c.page_no, c.idx",
        )?;
        let mut hold = tx.prepare(
            "UPDATE chain_items SET state = ?3, run_id = ?4 WHERE job = ?1 AND key = ?2",
        )?;
        let mut add = tx.prepare(
            "INSERT INTO run_inputs (run_id, idx, input, src_key, outcome, error_label, error_message)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut rows = read.query([job])?;
        while let Some(r) = rows.next()? {
            let (key, data): (i64, String) = (r.get(0)?, r.get(1)?);
            let (input, outcome, state, why) = match map(&data) {
                Ok(input) => (input, InputOutcome::Pending, "held", None),
                Err(why) => ("{}".to_string(), InputOutcome::Refused, "failed", Some(why)),
            };
            hold.execute(params![job, key, state, run_id])?;
            let label = why.as_ref().map(|_| "INVALID_MAPPED_INPUT");
            add.execute(params![
                run_id,
                taken,
                input,
                key,
                outcome.as_str(),
                label,
                why
            ])?;
            taken += 1;
        }
    }
    tx.commit()?;
    Ok(taken)
}

/// An input's outcome, for the item it came from (inside `set_outcome`'s transaction):
/// succeeded consumes it, refused fails it; both final.
pub fn on_outcome(tx: &Db, run_id: i64, index: u32, outcome: InputOutcome) -> Result<()> {
    let state = match outcome {
        InputOutcome::Succeeded => "consumed",
        InputOutcome::Refused => "failed",
        _ => return Ok(()),
    };
    tx.prepare_cached(
        "UPDATE chain_items SET state = ?3 WHERE run_id = ?1 AND state = 'held'
         AND key = (SELECT src_key FROM run_inputs WHERE run_id = ?1 AND idx = ?2)",
    )?
    .execute(params![run_id, index, state])?;
    Ok(())
}

/// A run's final transition (inside its transaction): its held items released, failed after
/// [`MAX_TRIES`] runs; and, when it ended `SUCCEEDED` or `PARTIAL_SUCCEEDED`, a firing for each job
/// that runs `after` its job.
pub fn on_final(tx: &Db, run: &super::RunRecord, to: RunStatus, now: DateTime<Utc>) -> Result<()> {
    let (run_id, job) = (run.id, run.job.as_str());
    // Only a chained run holds items: every other run's end (a thousand a second under load)
    // skips the two updates.
    if run.body.get("inputs_from").is_some() {
        release(tx, run_id)?;
    }
    if matches!(to, RunStatus::Succeeded | RunStatus::PartialSucceeded) {
        tx.prepare_cached(
            "INSERT INTO firings (job, src_run_id, at) SELECT job, ?1, ?2 FROM after_links WHERE src = ?3",
        )?
        .execute(params![run_id, ts(now), job])?;
    }
    Ok(())
}

/// Gives back the items a chained run holds (failed after [`MAX_TRIES`] runs), and marks its
/// inputs that were not done released: a later resume of the run skips them.
fn release(tx: &Db, run_id: i64) -> Result<()> {
    tx.prepare_cached(
        "UPDATE chain_items SET tries = tries + 1, run_id = NULL,
            state = CASE WHEN tries + 1 >= ?2 THEN 'failed' ELSE 'pending' END
         WHERE run_id = ?1 AND state = 'held'",
    )?
    .execute(params![run_id, MAX_TRIES])?;
    tx.prepare_cached(
        "UPDATE run_inputs SET outcome = 'released' WHERE run_id = ?1 AND src_key IS NOT NULL
           AND outcome IN ('pending', 'unfinished', 'failed')",
    )?
    .execute([run_id])?;
    Ok(())
}

/// A firing waiting for its job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Firing {
    pub id: i64,
    pub job: String,
    pub src_run_id: i64,
}

/// Firings not yet turned into a run or skipped, oldest first.
pub fn firings(conn: &Db) -> Result<Vec<Firing>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, job, src_run_id FROM firings WHERE outcome IS NULL ORDER BY id",
    )?;
    let rows = stmt.query_map((), |r| {
        Ok(Firing {
            id: r.get(0)?,
            job: r.get(1)?,
            src_run_id: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<super::db::Result<_>>()?)
}

/// Creates the run that firings `ids` start, QUEUED, and marks them fired by it, at once.
pub fn fire(conn: &mut Db, ids: &[i64], new: &super::NewRun, now: DateTime<Utc>) -> Result<String> {
    let tx = write_tx(conn)?;
    let uid = super::runs::insert_run(&tx, new, now)?;
    super::runs::mark_queued(&tx, &uid, "after", now)?;
    for id in ids {
        tx.execute(
            "UPDATE firings SET outcome = 'fired', run_uid = ?2 WHERE id = ?1",
            params![id, uid],
        )?;
    }
    tx.commit()?;
    Ok(uid)
}

/// Ends firings `ids`: fired as `run_uid`, or skipped (`no_inputs`).
pub fn settle_firings(conn: &mut Db, ids: &[i64], run_uid: Option<&str>) -> Result<()> {
    let tx = write_tx(conn)?;
    for id in ids {
        tx.execute(
            "UPDATE firings SET outcome = ?2, run_uid = ?3 WHERE id = ?1",
            params![
                id,
                if run_uid.is_some() {
                    "fired"
                } else {
                    "no_inputs"
                },
                run_uid
            ],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// A job's chained inputs, counted by state, for `watchbell inputs JOB`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    pub src: Option<String>,
    pub since: Option<String>,
    pub pending: u64,
    pub held: u64,
    pub consumed: u64,
    pub failed: u64,
}

pub fn report(conn: &Db, job: &str) -> Result<ChainReport> {
    let mut out = ChainReport::default();
    if let Some((src, since)) = conn
        .query_row(
            "SELECT src, since FROM chain_links WHERE job = ?1",
            [job],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
    {
        out.src = Some(src);
        out.since = Some(since);
    }
    let mut stmt =
        conn.prepare("SELECT state, COUNT(*) FROM chain_items WHERE job = ?1 GROUP BY state")?;
    let rows = stmt.query_map([job], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
    })?;
    for row in rows {
        let (state, n) = row?;
        match state.as_str() {
            "pending" => out.pending = n,
            "held" => out.held = n,
            "consumed" => out.consumed = n,
            _ => out.failed += n,
        }
    }
    Ok(out)
}
