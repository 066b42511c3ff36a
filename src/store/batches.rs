//! Runs the vendor executes (async mode, received remote schedules) and the callback batches
//! they deliver. A batch is stored with its items in one transaction keyed by the run and the
//! batch's uid, so a callback delivered twice (the vendor delivers at least once) stores nothing
//! the second time; the HTTP answer follows the commit. The run binds the API's uid once.

use super::db::{Db, Optional};
use chrono::{DateTime, Utc};
use rusqlite::params;
use serde_json::Value;

use super::runs::{self, LastError, PageToStore, RunRecord, get_run, transition_in};
use super::{Result, StoreError, parse_ts, ts};
use crate::status::RunStatus;

/// The owner of a sent async run: no process, so recovery and leases leave it alone (the
/// receiver and the sweep finish it). Its lease never lapses.
pub const ASYNC_OWNER: &str = "async";
const NEVER: &str = "9999-12-31T00:00:00.000Z";

/// Where an async or received run stands beside its run row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsyncState {
    pub run_id: i64,
    pub api_uid: Option<String>,
    pub token_hash: String,
    /// When the create was sent (`None`: not yet; a remote run is never sent).
    pub sent_at: Option<DateTime<Utc>>,
    /// The last callback stored or answer read about the run.
    pub heard_at: Option<DateTime<Utc>>,
    /// A final callback arrived: the run ends once complete.
    pub closing: bool,
    /// The final status a callback or the API gave.
    pub remote_status: Option<String>,
    pub lost: u32,
    pub probe_failing_since: Option<DateTime<Utc>>,
}

const STATE: &str = "SELECT run_id, api_uid, token_hash, sent_at, heard_at, closing, remote_status, lost, probe_failing_since FROM async_runs";

fn state_from_row(r: &super::db::Row) -> super::db::Result<AsyncState> {
    let t = |i: usize| -> super::db::Result<Option<DateTime<Utc>>> {
        Ok(r.get::<_, Option<String>>(i)?.as_deref().and_then(parse_ts))
    };
    Ok(AsyncState {
        run_id: r.get(0)?,
        api_uid: r.get(1)?,
        token_hash: r.get(2)?,
        sent_at: t(3)?,
        heard_at: t(4)?,
        closing: r.get(5)?,
        remote_status: r.get(6)?,
        lost: r.get(7)?,
        probe_failing_since: t(8)?,
    })
}

/// The async state of the run with local uid `uid`, if it is one.
pub fn state(conn: &Db, uid: &str) -> Result<Option<AsyncState>> {
    Ok(conn
        .prepare_cached(&format!(
            "{STATE} WHERE run_id = (SELECT id FROM runs WHERE uid = ?1)"
        ))?
        .query_row([uid], state_from_row)
        .optional()?)
}

/// Records that the create of run `uid` is about to be sent with a token hashing to
/// `token_hash`: from here the run belongs to the receiver and the sweep, and nothing sends it
/// again. The run stays in its status.
pub fn mark_sent(conn: &mut Db, uid: &str, token_hash: &str, now: DateTime<Utc>) -> Result<()> {
    let tx = super::write_tx(conn)?;
    let id: i64 = tx
        .query_row("SELECT id FROM runs WHERE uid = ?1", [uid], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(uid.to_string()))?;
    tx.execute(
        "INSERT INTO async_runs (run_id, token_hash, sent_at, heard_at) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (run_id) DO UPDATE SET token_hash = ?2, sent_at = ?3, heard_at = ?3",
        params![id, token_hash, ts(now)],
    )?;
    tx.execute(
        "UPDATE runs SET owner = ?2, lease_until = ?3 WHERE id = ?1",
        params![id, ASYNC_OWNER, NEVER],
    )?;
    tx.commit()?;
    Ok(())
}

/// Binds the API's uid to run `uid` (once): true when it is bound to `api_uid` now, false when
/// another uid was bound first.
pub fn bind(conn: &Db, uid: &str, api_uid: &str) -> Result<bool> {
    conn.execute(
        "UPDATE async_runs SET api_uid = ?2 WHERE run_id = (SELECT id FROM runs WHERE uid = ?1) AND api_uid IS NULL",
        params![uid, api_uid],
    )?;
    let bound: Option<String> = conn
        .query_row(
            "SELECT api_uid FROM async_runs WHERE run_id = (SELECT id FROM runs WHERE uid = ?1)",
            [uid],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    Ok(bound.as_deref() == Some(api_uid))
}

/// A sent run the API took (its answer came, or it was found there when the answer was lost):
/// QUEUED when still CREATED, in one transaction (a callback may have moved it on already).
pub fn accepted(conn: &mut Db, uid: &str, why: &str, now: DateTime<Utc>) -> Result<RunRecord> {
    let tx = super::write_tx(conn)?;
    let mut run = get_run(&tx, uid)?.ok_or_else(|| StoreError::NotFound(uid.to_string()))?;
    if run.status == RunStatus::Created {
        run = transition_in(&tx, uid, RunStatus::Queued, why, None, now)?;
    }
    tx.commit()?;
    Ok(run)
}

/// One callback as the receiver read it.
#[derive(Debug)]
pub struct Batch {
    pub api_uid: String,
    pub batch_uid: String,
    /// The callback's `run.status`: RUNNING for a batch, the final status for the last one.
    pub status: String,
    /// Its `results`.
    pub items: Vec<Value>,
    /// The callback as received, forwarded to the job's webhook (with `watchbell_run_uid`).
    pub body: Value,
}

/// What became of a callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// Stored now (its items, if any, as the run's page `page`), for job `job`.
    Stored {
        page: Option<u32>,
        items: u64,
        job: String,
    },
    /// Stored before: nothing written.
    Repeat,
    /// The run is bound to another API uid: refused.
    OtherRun,
}

/// Stores one callback of run `uid` exactly once. A batch moves the run to RUNNING; a final
/// status makes it *closing*; a batch after the run ended is stored late and the lost count
/// corrected.
pub fn receive(conn: &mut Db, uid: &str, b: &Batch, now: DateTime<Utc>) -> Result<Received> {
    let tx = super::write_tx(conn)?;
    let Some(st) = state(&tx, uid)? else {
        return Err(StoreError::NotFound(uid.to_string()));
    };
    tx.execute(
        "UPDATE async_runs SET api_uid = ?2 WHERE run_id = ?1 AND api_uid IS NULL",
        params![st.run_id, b.api_uid],
    )?;
    if st.api_uid.as_deref().is_some_and(|a| a != b.api_uid) {
        return Ok(Received::OtherRun);
    }
    let run = get_run(&tx, uid)?.ok_or_else(|| StoreError::NotFound(uid.to_string()))?;
    let replayed: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM replays WHERE run_id = ?1 AND batch_uid = ?2)",
        params![st.run_id, b.batch_uid],
        |r| r.get(0),
    )?;
    let how = match (run.status.is_final(), replayed) {
        (true, _) => "late",
        (false, true) => "replayed",
        (false, false) => "received",
    };
    let page = (!b.items.is_empty()).then_some(run.pages + 1);
    let inserted = tx.execute(
        "INSERT INTO batches (run_id, batch_uid, status, page_no, items, how, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
        params![st.run_id, b.batch_uid, b.status, page, b.items.len() as i64, how, ts(now)],
    )?;
    if inserted == 0 {
        return Ok(Received::Repeat);
    }
    let mut forward = b.body.clone();
    if let Some(m) = forward.as_object_mut() {
        m.insert("watchbell_run_uid".into(), Value::String(uid.to_string()));
    }
    if let Some(page_no) = page {
        let url = format!("callback:{}", b.batch_uid);
        let p = super::NewPage::new(&run.action_name, page_no, url, &b.items, None);
        runs::insert_page(
            &tx,
            uid,
            &PageToStore {
                page_no,
                url: &p.url,
                items: &p.texts,
                keys: &p.keys,
                content_hash: &p.content_hash,
                next_url: None,
                callback: run.callback_url.as_deref().map(|u| (u, &forward)),
                input: own_input(&b.body, uid),
            },
            now,
        )?;
    } else if let Some(url) = run.callback_url.as_deref() {
        super::deliveries::enqueue(&tx, uid, super::DeliveryKind::Callback, url, &forward, now)?;
    }
    let final_status = b.status.parse::<RunStatus>().ok().filter(|s| s.is_final());
    tx.execute(
        "UPDATE async_runs SET heard_at = ?2,
            closing = CASE WHEN ?3 THEN 1 ELSE closing END,
            remote_status = COALESCE(?4, remote_status)
         WHERE run_id = ?1",
        params![
            st.run_id,
            ts(now),
            final_status.is_some(),
            final_status.map(RunStatus::as_str)
        ],
    )?;
    if run.status.is_final() {
        correct_lost(&tx, &run, &st)?;
    } else {
        if run.status == RunStatus::Created {
            transition_in(&tx, uid, RunStatus::Queued, "accepted", None, now)?;
        }
        if run.status != RunStatus::Running {
            transition_in(&tx, uid, RunStatus::Running, "first callback", None, now)?;
        }
    }
    tx.commit()?;
    Ok(Received::Stored {
        page,
        items: b.items.len() as u64,
        job: run.job,
    })
}

/// The input of the run's list a batch belongs to: what watchbell put in its `custom_data`
/// when it sent the run (`None` for a remote schedule's runs, or another run's tag).
fn own_input(body: &Value, uid: &str) -> Option<u32> {
    let tag = body.get("custom_data")?.get("watchbell")?;
    (tag.get("run")?.as_str()? == uid)
        .then(|| tag.get("input")?.as_u64())
        .flatten()
        .and_then(|i| u32::try_from(i).ok())
}

/// A batch counted lost arrived after all: one fewer lost, said in the run's error.
fn correct_lost(tx: &Db, run: &RunRecord, st: &AsyncState) -> Result<()> {
    if st.lost == 0 {
        return Ok(());
    }
    let lost = st.lost - 1;
    tx.execute(
        "UPDATE async_runs SET lost = ?2 WHERE run_id = ?1",
        params![st.run_id, lost],
    )?;
    if run
        .last_error
        .as_ref()
        .is_some_and(|e| e.label == LOST_LABEL)
    {
        tx.execute(
            "UPDATE runs SET last_error_message = ?2 WHERE id = ?1",
            params![run.id, lost_message(lost)],
        )?;
    }
    Ok(())
}

/// The label of a run that ended with callbacks missing.
pub const LOST_LABEL: &str = "CALLBACKS_LOST";

pub fn lost_message(lost: u32) -> String {
    format!("callbacks_lost {lost}")
}

/// The batch uids stored for a run.
pub fn batch_uids(conn: &Db, run_id: i64) -> Result<std::collections::HashSet<String>> {
    let mut stmt = conn.prepare_cached("SELECT batch_uid FROM batches WHERE run_id = ?1")?;
    let rows = stmt.query_map([run_id], |r| r.get(0))?;
    Ok(rows.collect::<super::db::Result<_>>()?)
}

/// One stored batch, for `runs show`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BatchRecord {
    pub batch_uid: String,
    pub status: String,
    pub items: u64,
    /// `received`, `replayed` (arrived after watchbell asked for a replay) or `late`.
    pub how: String,
    pub at: String,
}

pub fn batches(conn: &Db, run_id: i64) -> Result<Vec<BatchRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT batch_uid, status, items, how, at FROM batches WHERE run_id = ?1 ORDER BY at, batch_uid",
    )?;
    let rows = stmt.query_map([run_id], |r| {
        Ok(BatchRecord {
            batch_uid: r.get(0)?,
            status: r.get(1)?,
            items: r.get::<_, i64>(2)? as u64,
            how: r.get(3)?,
            at: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<super::db::Result<_>>()?)
}

/// Replays asked for each original callback of a run (by the vendor's callback uid).
pub fn replays(conn: &Db, run_id: i64) -> Result<std::collections::HashMap<String, u32>> {
    let mut stmt =
        conn.prepare_cached("SELECT callback_uid, count FROM replays WHERE run_id = ?1")?;
    let rows = stmt.query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<super::db::Result<_>>()?)
}

/// Counts one replay of `callback_uid` (whose batch is `batch_uid`), before it is asked for: a
/// crash after asking never asks a fourth time.
pub fn count_replay(
    conn: &Db,
    run_id: i64,
    callback_uid: &str,
    batch_uid: &str,
    now: DateTime<Utc>,
) -> Result<u32> {
    Ok(conn.query_row(
        "INSERT INTO replays (run_id, callback_uid, batch_uid, count, at) VALUES (?1, ?2, ?3, 1, ?4)
         ON CONFLICT (run_id, callback_uid) DO UPDATE SET count = replays.count + 1, at = ?4
         RETURNING count",
        params![run_id, callback_uid, batch_uid, ts(now)],
        |r| r.get(0),
    )?)
}

/// Sets or clears since when the receiver could not reach itself.
pub fn set_probe_failing(conn: &Db, run_id: i64, since: Option<DateTime<Utc>>) -> Result<()> {
    conn.execute(
        "UPDATE async_runs SET probe_failing_since = ?2 WHERE run_id = ?1",
        params![run_id, since.map(ts)],
    )?;
    Ok(())
}

/// Records that the API was asked about the run (its silence restarts from now).
pub fn heard(
    conn: &Db,
    run_id: i64,
    remote_status: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    conn.execute(
        "UPDATE async_runs SET heard_at = ?2, remote_status = COALESCE(?3, remote_status) WHERE run_id = ?1",
        params![run_id, ts(now), remote_status],
    )?;
    Ok(())
}

/// Async and received runs not ended yet, with their state.
pub fn open(conn: &Db) -> Result<Vec<(RunRecord, AsyncState)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{STATE} WHERE run_id IN (SELECT id FROM runs WHERE status IN ('CREATED', 'QUEUED', 'RUNNING') AND owner = '{ASYNC_OWNER}') ORDER BY run_id"
    ))?;
    let states = stmt
        .query_map((), state_from_row)?
        .collect::<super::db::Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(states.len());
    for st in states {
        let uid: String =
            conn.query_row("SELECT uid FROM runs WHERE id = ?1", [st.run_id], |r| {
                r.get(0)
            })?;
        if let Some(run) = get_run(conn, &uid)? {
            out.push((run, st));
        }
    }
    Ok(out)
}

/// Ends an async run: its final status, the batches counted lost, in one transaction.
pub fn finish(
    conn: &mut Db,
    uid: &str,
    (to, reason): (RunStatus, &str),
    error: Option<&LastError>,
    lost: u32,
    now: DateTime<Utc>,
) -> Result<RunRecord> {
    let tx = super::write_tx(conn)?;
    tx.execute(
        "UPDATE async_runs SET lost = ?2 WHERE run_id = (SELECT id FROM runs WHERE uid = ?1)",
        params![uid, lost],
    )?;
    if matches!(to, RunStatus::Succeeded | RunStatus::PartialSucceeded) {
        // The vendor took every input of the submission: a chained item is consumed, never
        // sent again (released, it would be).
        tx.execute(
            "UPDATE chain_items SET state = 'consumed' WHERE state = 'held' AND run_id = (SELECT id FROM runs WHERE uid = ?1)",
            [uid],
        )?;
        tx.execute(
            "UPDATE run_inputs SET outcome = 'succeeded' WHERE outcome = 'pending' AND run_id = (SELECT id FROM runs WHERE uid = ?1)",
            [uid],
        )?;
    }
    let mut at = get_run(&tx, uid)?
        .ok_or_else(|| StoreError::NotFound(uid.to_string()))?
        .status;
    // A run that never heard a batch still ends in the remote status: through the steps the
    // lifecycle has.
    for (from, via, why) in [
        (RunStatus::Created, RunStatus::Queued, "accepted"),
        (RunStatus::Queued, RunStatus::Running, "run by the vendor"),
    ] {
        if at == from && !at.can_move_to(to) {
            transition_in(&tx, uid, via, why, None, now)?;
            at = via;
        }
    }
    let run = transition_in(&tx, uid, to, reason, error, now)?;
    tx.commit()?;
    Ok(run)
}

/// An async run the API resumed (`runs resume`, or a retry): QUEUED again and the receiver's,
/// its completeness checked afresh; a retry counts in `retry_count`.
pub fn resumed(
    conn: &mut Db,
    uid: &str,
    (why, retry): (&str, bool),
    now: DateTime<Utc>,
) -> Result<RunRecord> {
    let tx = super::write_tx(conn)?;
    let run = transition_in(&tx, uid, RunStatus::Queued, why, None, now)?;
    tx.execute(
        "UPDATE runs SET owner = ?2, lease_until = ?3, retry_count = retry_count + ?4 WHERE id = ?1",
        params![run.id, ASYNC_OWNER, NEVER, i64::from(retry)],
    )?;
    tx.execute(
        "UPDATE async_runs SET closing = 0, remote_status = NULL, lost = 0, heard_at = ?2 WHERE run_id = ?1",
        params![run.id, ts(now)],
    )?;
    let run = get_run(&tx, uid)?.ok_or_else(|| StoreError::NotFound(uid.to_string()))?;
    tx.commit()?;
    Ok(run)
}

/// Records the token (its hash) given to remote job `job`'s schedule `schedule`.
pub fn add_token(conn: &Db, job: &str, schedule: &str, token_hash: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO receive_tokens (token_hash, job, schedule, until) VALUES (?1, ?2, ?3, NULL)
         ON CONFLICT (token_hash) DO UPDATE SET job = excluded.job, schedule = excluded.schedule, until = NULL",
        params![token_hash, job, schedule],
    )?;
    Ok(())
}

/// The tokens of a schedule that was cancelled or replaced stay valid until `until` (callbacks
/// of its last runs may still come).
pub fn expire_tokens(conn: &Db, schedule: &str, until: DateTime<Utc>) -> Result<()> {
    conn.execute(
        "UPDATE receive_tokens SET until = ?2 WHERE schedule = ?1 AND until IS NULL",
        params![schedule, ts(until)],
    )?;
    Ok(())
}

/// True when `token_hash` is a valid token of remote job `job` at `now`.
pub fn job_token(conn: &Db, job: &str, token_hash: &str, now: DateTime<Utc>) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM receive_tokens WHERE token_hash = ?1 AND job = ?2 AND (until IS NULL OR until > ?3))",
        )?
        .query_row(params![token_hash, job, ts(now)], |r| r.get(0))?)
}

/// The local run (uid, job) bound to the API's run `api_uid`, if any.
pub fn run_of_api(conn: &Db, api_uid: &str) -> Result<Option<(String, String)>> {
    Ok(conn
        .prepare_cached(
            "SELECT r.uid, r.job FROM async_runs a JOIN runs r ON r.id = a.run_id WHERE a.api_uid = ?1",
        )?
        .query_row([api_uid], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// How a received remote run was accounted against its job's ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TickNote {
    /// It is its nominal tick's run.
    Fired,
    /// Its tick already had a run: stored without a tick (`remote_extra_run`).
    Extra,
    /// No tick to account it to.
    Untimed,
}

/// A run of a remote schedule, first heard of: created (trigger `remote`, owned by the receiver)
/// with the API's uid bound, and recorded as its nominal tick's run. A run created meanwhile by
/// another callback of the same API run is returned instead.
pub fn adopt_remote(
    conn: &mut Db,
    new: &super::NewRun,
    (api_uid, token_hash): (&str, &str),
    now: DateTime<Utc>,
) -> Result<(String, TickNote)> {
    let tx = super::write_tx(conn)?;
    if let Some((uid, _)) = run_of_api(&tx, api_uid)? {
        return Ok((uid, TickNote::Untimed));
    }
    let uid = runs::insert_run(&tx, new, now)?;
    runs::mark_queued(&tx, &uid, "run by the vendor", now)?;
    tx.execute(
        "UPDATE runs SET owner = ?2, lease_until = ?3 WHERE uid = ?1",
        params![uid, ASYNC_OWNER, NEVER],
    )?;
    tx.execute(
        "INSERT INTO async_runs (run_id, api_uid, token_hash, sent_at, heard_at)
         SELECT id, ?2, ?3, ?4, ?4 FROM runs WHERE uid = ?1",
        params![uid, api_uid, token_hash, ts(now)],
    )?;
    let note = match new.scheduled_for {
        None => TickNote::Untimed,
        Some(nominal) => {
            let t = ts(nominal);
            // A tick recorded `remote_not_run` becomes fired: the run came after all.
            let fired = tx.execute(
                "INSERT INTO ticks (job, scheduled_for, outcome, reason, run_uid, fired_at) VALUES (?1, ?2, 'fired', NULL, ?3, ?4)
                 ON CONFLICT (job, scheduled_for) DO UPDATE SET outcome = 'fired', reason = NULL, run_uid = ?3, fired_at = ?4
                 WHERE ticks.run_uid IS NULL",
                params![new.job, t, uid, ts(now)],
            )?;
            if fired == 1 {
                TickNote::Fired
            } else {
                tx.execute(
                    "UPDATE runs SET scheduled_for = NULL WHERE uid = ?1",
                    [&uid],
                )?;
                TickNote::Extra
            }
        }
    };
    tx.commit()?;
    Ok((uid, note))
}

/// Records each nominal instant of `job` in `nominals` that has no tick as skipped
/// `remote_not_run`; how many.
pub fn not_run(conn: &mut Db, job: &str, nominals: &[DateTime<Utc>]) -> Result<usize> {
    let tx = super::write_tx(conn)?;
    let mut n = 0;
    for at in nominals {
        n += tx.execute(
            "INSERT INTO ticks (job, scheduled_for, outcome, reason) VALUES (?1, ?2, 'skipped', 'remote_not_run') ON CONFLICT DO NOTHING",
            params![job, ts(*at)],
        )?;
    }
    tx.commit()?;
    Ok(n)
}

/// How many async runs of `job` other than `uid` the vendor still has.
pub fn open_of_job(conn: &mut Db, job: &str, uid: &str) -> Result<u32> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM runs WHERE job = ?1 AND uid != ?2 AND owner = ?3
           AND status IN ('CREATED', 'QUEUED', 'RUNNING')",
        params![job, uid, ASYNC_OWNER],
        |r| r.get(0),
    )?)
}
