//! Runs: creation, the lifecycle (checked by [`RunStatus::can_move_to`]), pages stored with the
//! cursor in one transaction, and the queries behind `runs list/show/results`.

use super::db::{Db, Optional, Row};
use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use super::kinds::Trigger;
use super::{Result, StoreError, parse_ts, ts};
use crate::fnv::Fnv;
use crate::status::RunStatus;

/// What a new run is asked to do.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub job: String,
    pub action_name: String,
    pub trigger: Trigger,
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The JSON body sent to the API (input, parameters, identity), as JSON text; never the key.
    pub body: String,
    pub callback_url: Option<String>,
    /// Who runs it (see [`crate::store`] leases); `None` for a run not yet owned.
    pub owner: Option<String>,
}

/// The API's `last_error`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LastError {
    pub label: String,
    pub message: String,
}

/// How a 402 (no credits) reads in `last_error.message`: every HTTP failure's message starts
/// with its status (`ApiFailure`'s Display).
const NO_CREDITS: &str = "HTTP 402 ";

impl LastError {
    /// A 402: the run waits for credits.
    pub fn waits_for_credits(&self) -> bool {
        self.message.starts_with(NO_CREDITS)
    }
}

/// A run as stored.
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub id: i64,
    pub uid: String,
    pub job: String,
    pub action_name: String,
    pub trigger: Trigger,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub body: serde_json::Value,
    pub status: RunStatus,
    pub next_url: Option<String>,
    pub pages: u32,
    pub items: u64,
    pub retry_count: u32,
    pub rate_limit_waits: u32,
    /// Time spent waiting for identity lanes (a slot, the gap), in milliseconds.
    pub lane_wait_ms: u64,
    pub last_error: Option<LastError>,
    pub callback_url: Option<String>,
    pub owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub postponed_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl RunRecord {
    /// The API's Run object, plus watchbell's own fields.
    pub fn to_json(&self) -> serde_json::Value {
        let t = |x: Option<DateTime<Utc>>| x.map(ts);
        serde_json::json!({
            "id": self.id,
            "uid": self.uid,
            "action_id": null,
            "action_name": self.action_name,
            "retry_count": self.retry_count,
            "user_uid": null,
            "workspace_uid": null,
            "execution_mode": "LIVE",
            "last_error": self.last_error,
            "callback": self.callback_url.as_ref().map(|u| serde_json::json!({"url": u})),
            "status": self.status.as_str(),
            "postponed_until": t(self.postponed_until),
            "started_at": t(self.started_at),
            "finished_at": t(self.finished_at),
            "synced_at": null,
            "created_at": ts(self.created_at),
            "updated_at": t(self.updated_at),
            "job": self.job,
            "scheduled_for": t(self.scheduled_for),
            "pages": self.pages,
            "items": self.items,
            "trigger": self.trigger,
            "lane_wait_ms": self.lane_wait_ms,
        })
    }
}

/// A row of a run's history.
#[derive(Clone, Debug, Serialize)]
pub struct TransitionRecord {
    pub from: Option<String>,
    pub to: String,
    pub at: String,
    pub reason: Option<String>,
}

/// A stored page.
#[derive(Clone, Debug, Serialize)]
pub struct PageRecord {
    pub page: u32,
    pub url: String,
    pub items: u32,
    pub fetched_at: String,
    /// [`content_hash`] of its items (absent for pages stored before schema 4).
    pub content_hash: Option<String>,
    /// In a run over a list, the input the page belongs to.
    pub input: Option<u32>,
}

/// A hash of a page's items (FNV-1a over their JSON), to recognise a page served twice.
pub fn content_hash(items: &[serde_json::Value]) -> String {
    let texts: Vec<String> = items.iter().map(ToString::to_string).collect();
    hash_texts(&texts)
}

/// [`content_hash`] of items already written as JSON text.
pub fn hash_texts(texts: &[String]) -> String {
    texts
        .iter()
        .fold(Fnv::new(), |h, t| h.write(t.as_bytes()).write(&[0]))
        .hex()
}

pub use crate::uid::new_uid;

const COLUMNS: &str = "id, uid, job, action_name, trigger, scheduled_for, body, status, next_url, \
    pages, items, retry_count, rate_limit_waits, last_error_label, last_error_message, callback_url, \
    owner, lease_until, postponed_until, created_at, started_at, finished_at, updated_at, lane_wait_ms";

fn ts_col(row: &Row, i: usize) -> super::db::Result<Option<DateTime<Utc>>> {
    Ok(row
        .get::<_, Option<String>>(i)?
        .as_deref()
        .and_then(parse_ts))
}

fn run_from_row(row: &Row) -> super::db::Result<RunRecord> {
    let status: String = row.get(7)?;
    let label: Option<String> = row.get(13)?;
    let body: String = row.get(6)?;
    Ok(RunRecord {
        id: row.get(0)?,
        uid: row.get(1)?,
        job: row.get(2)?,
        action_name: row.get(3)?,
        trigger: row.get(4)?,
        scheduled_for: ts_col(row, 5)?,
        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        status: status.parse().unwrap_or(RunStatus::Failed),
        next_url: row.get(8)?,
        pages: row.get(9)?,
        items: row.get::<_, i64>(10)? as u64,
        retry_count: row.get(11)?,
        rate_limit_waits: row.get(12)?,
        last_error: label.map(|label| LastError {
            label,
            message: row
                .get::<_, Option<String>>(14)
                .ok()
                .flatten()
                .unwrap_or_default(),
        }),
        callback_url: row.get(15)?,
        owner: row.get(16)?,
        lease_until: ts_col(row, 17)?,
        postponed_until: ts_col(row, 18)?,
        created_at: ts_col(row, 19)?.unwrap_or_default(),
        started_at: ts_col(row, 20)?,
        finished_at: ts_col(row, 21)?,
        updated_at: ts_col(row, 22)?,
        lane_wait_ms: row.get::<_, i64>(23)? as u64,
    })
}

/// Writes a CREATED run (before any request is made) and its first transition.
pub fn create_run(conn: &mut Db, new: &NewRun, now: DateTime<Utc>) -> Result<RunRecord> {
    let tx = super::write_tx(conn)?;
    let uid = insert_run(&tx, new, now)?;
    let run = get_run(&tx, &uid)?.ok_or(StoreError::NotFound(uid))?;
    tx.commit()?;
    Ok(run)
}

pub(super) fn insert_run(conn: &Db, new: &NewRun, now: DateTime<Utc>) -> Result<String> {
    let uid = new_uid(now);
    // Kept prepared: a saturated tick batch creates thousands of runs a second.
    let id: i64 = conn.prepare_cached(
        "INSERT INTO runs (uid, job, action_name, trigger, scheduled_for, body, status, callback_url, \
         owner, lease_until, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'CREATED', ?7, ?8, ?10, ?9, ?9) \
         RETURNING id",
    )?
    .query_row(
        params![
            uid,
            new.job,
            new.action_name,
            new.trigger,
            new.scheduled_for.map(ts),
            new.body,
            new.callback_url,
            new.owner,
            ts(now),
            new.owner.as_ref().map(|_| ts(now + LEASE))
        ],
        |r| r.get(0),
    )?;
    conn.execute(
        "INSERT INTO transitions (run_id, from_status, to_status, at, reason) VALUES (?1, NULL, 'CREATED', ?2, ?3)",
        params![id, ts(now), new.trigger],
    )?;
    Ok(uid)
}

/// Moves a just-inserted run from CREATED to QUEUED inside the caller's transaction.
pub(super) fn mark_queued(conn: &Db, uid: &str, reason: &str, now: DateTime<Utc>) -> Result<()> {
    conn.execute(
        "UPDATE runs SET status = 'QUEUED', updated_at = ?2 WHERE uid = ?1 AND status = 'CREATED'",
        params![uid, ts(now)],
    )?;
    conn.execute(
        "INSERT INTO transitions (run_id, from_status, to_status, at, reason)
         SELECT id, 'CREATED', 'QUEUED', ?2, ?3 FROM runs WHERE uid = ?1",
        params![uid, ts(now), reason],
    )?;
    Ok(())
}

/// The run's id and status, when the lifecycle lets it move to `to`; the refusal otherwise.
fn movable(tx: &Db, uid: &str, to: RunStatus) -> Result<(i64, RunStatus)> {
    let (id, from): (i64, String) = tx
        .query_row("SELECT id, status FROM runs WHERE uid = ?1", [uid], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?
        .ok_or_else(|| StoreError::NotFound(uid.to_string()))?;
    let from: RunStatus = from.parse().unwrap_or(RunStatus::Failed);
    if !from.can_move_to(to) {
        return Err(StoreError::IllegalTransition {
            uid: uid.to_string(),
            from,
            to,
        });
    }
    Ok((id, from))
}

/// Moves a run to `to`, refusing a move the lifecycle does not allow. `error` is recorded as the
/// run's `last_error` when given.
pub fn transition(
    conn: &mut Db,
    uid: &str,
    to: RunStatus,
    reason: &str,
    error: Option<&LastError>,
    now: DateTime<Utc>,
) -> Result<RunRecord> {
    let tx = super::write_tx(conn)?;
    let run = transition_in(&tx, uid, to, reason, error, now)?;
    tx.commit()?;
    Ok(run)
}

/// [`transition`] inside the caller's transaction.
pub(super) fn transition_in(
    tx: &Db,
    uid: &str,
    to: RunStatus,
    reason: &str,
    error: Option<&LastError>,
    now: DateTime<Utc>,
) -> Result<RunRecord> {
    let (id, from) = movable(tx, uid, to)?;
    let t = ts(now);
    tx.execute(
        "UPDATE runs SET status = ?2, updated_at = ?3,
            started_at = CASE WHEN ?2 = 'RUNNING' AND started_at IS NULL THEN ?3 ELSE started_at END,
            finished_at = CASE WHEN ?4 THEN ?3 ELSE NULL END,
            postponed_until = CASE WHEN ?2 = 'QUEUED' THEN NULL ELSE postponed_until END,
            last_error_label = COALESCE(?5, CASE WHEN ?2 = 'QUEUED' THEN NULL ELSE last_error_label END),
            last_error_message = COALESCE(?6, CASE WHEN ?2 = 'QUEUED' THEN NULL ELSE last_error_message END)
         WHERE id = ?1",
        params![
            id,
            to.as_str(),
            t,
            to.is_final(),
            error.map(|e| &e.label),
            error.map(|e| &e.message)
        ],
    )?;
    tx.execute(
        "INSERT INTO transitions (run_id, from_status, to_status, at, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, from.as_str(), to.as_str(), t, reason],
    )?;
    let run = get_run(tx, uid)?.ok_or_else(|| StoreError::NotFound(uid.to_string()))?;
    if to.is_final() {
        super::chain::on_final(tx, &run, to, now)?;
    }
    Ok(run)
}

/// Records in a run's history something that happened without a change of status (a cursor
/// found expired, the pages started again): a row from its status to the same status.
pub fn note(conn: &mut Db, uid: &str, reason: &str, now: DateTime<Utc>) -> Result<()> {
    let tx = super::write_tx(conn)?;
    let (id, status): (i64, String) = tx
        .query_row("SELECT id, status FROM runs WHERE uid = ?1", [uid], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?
        .ok_or_else(|| StoreError::NotFound(uid.to_string()))?;
    tx.execute(
        "INSERT INTO transitions (run_id, from_status, to_status, at, reason) VALUES (?1, ?2, ?2, ?3, ?4)",
        params![id, status, ts(now), reason],
    )?;
    tx.commit()?;
    Ok(())
}

/// One page of results, as it is stored.
#[derive(Clone, Copy, Debug)]
pub struct PageToStore<'a> {
    pub page_no: u32,
    pub url: &'a str,
    /// The items as JSON text (written once, off the writer thread).
    pub items: &'a [String],
    /// What identifies each item ([`crate::catalog::item_key`]), for the job's seen-record.
    pub keys: &'a [u64],
    /// [`hash_texts`] of `items`.
    pub content_hash: &'a str,
    /// The next page's URL: the run's cursor after this page.
    pub next_url: Option<&'a str>,
    /// The webhook callback for this page: (receiver URL, body).
    pub callback: Option<(&'a str, &'a serde_json::Value)>,
    /// In a run over a list, the input the page belongs to (its cursor moves with the page).
    pub input: Option<u32>,
}

/// Stores one page of results together with the run's next-page cursor and counters (and its
/// webhook callback, if any), in one transaction: a crash never duplicates or loses a page. A
/// page stored twice is refused.
pub fn store_page(conn: &mut Db, uid: &str, page: &PageToStore, now: DateTime<Utc>) -> Result<()> {
    let tx = super::write_tx(conn)?;
    insert_page(&tx, uid, page, now)?;
    tx.commit()?;
    Ok(())
}

/// [`store_page`] inside the caller's transaction. A page refused (already stored, or its run
/// unknown) is refused before anything is written.
pub fn insert_page(tx: &Db, uid: &str, page: &PageToStore, now: DateTime<Utc>) -> Result<()> {
    let (id, job): (i64, String) = tx
        .prepare_cached("SELECT id, job FROM runs WHERE uid = ?1")?
        .query_row([uid], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(uid.to_string()))?;
    let inserted = tx.prepare_cached(
        "INSERT INTO pages (run_id, page_no, url, item_count, fetched_at, content_hash, input_idx) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
    )?
    .execute(params![id, page.page_no, page.url, page.items.len() as i64, ts(now), page.content_hash, page.input])?;
    if inserted == 0 {
        return Err(StoreError::PageAlreadyStored {
            uid: uid.to_string(),
            page: page.page_no,
        });
    }
    let takers = super::chain::takers(tx, &job)?;
    let mut seen = tx.prepare_cached(
        "INSERT INTO seen (job, key, first_run_id) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    )?;
    let mut ins = tx.prepare_cached(
        "INSERT INTO items (run_id, page_no, idx, data, is_new) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (i, item) in page.items.iter().enumerate() {
        // New to the job: no earlier run (nor an earlier page of this one) returned it.
        let new = match page.keys.get(i) {
            Some(k) => seen.execute(params![job, k.cast_signed(), id])? == 1,
            None => false,
        };
        if new && !takers.is_empty() {
            let at = (id, page.page_no, i as i64);
            super::chain::queue_new(tx, &takers, &job, page.keys[i], at)?;
        }
        ins.execute(params![id, page.page_no, i as i64, item, new])?;
    }
    tx.prepare_cached(
        "UPDATE runs SET next_url = ?2, pages = pages + 1, items = items + ?3, updated_at = ?4 WHERE id = ?1",
    )?
    .execute(params![id, page.next_url, page.items.len() as i64, ts(now)])?;
    if let Some(input) = page.input {
        tx.prepare_cached(
            "UPDATE run_inputs SET next_url = ?3, pages = pages + 1, items = items + ?4 WHERE run_id = ?1 AND idx = ?2",
        )?
        .execute(params![id, input, page.next_url, page.items.len() as i64])?;
        if page.next_url.is_none() {
            // Its last page: the input succeeded, recorded with it (one write per page, not
            // two, on the store's one thread).
            super::inputs::set_outcome(tx, id, input, super::InputOutcome::Succeeded, None)?;
        }
    }
    if let Some((url, body)) = page.callback {
        super::deliveries::enqueue(tx, uid, super::DeliveryKind::Callback, url, body, now)?;
    }
    Ok(())
}

/// How long an owner's claim on its runs lasts without renewal.
/// Renewed every 10 s by the daemon and every 5 s by `trigger`.
pub const LEASE: chrono::Duration = chrono::Duration::seconds(30);

/// Renews the lease on every unfinished run of `owner`.
pub fn renew_leases(conn: &Db, owner: &str, now: DateTime<Utc>) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE runs SET lease_until = ?2 WHERE owner = ?1 AND status IN ('CREATED', 'QUEUED', 'RUNNING')",
        params![owner, ts(now + LEASE)],
    )?)
}

/// Takes a run over (to resume it), with a fresh lease.
pub fn claim(conn: &Db, uid: &str, owner: &str, now: DateTime<Utc>) -> Result<()> {
    conn.execute(
        "UPDATE runs SET owner = ?2, lease_until = ?3 WHERE uid = ?1",
        params![uid, owner, ts(now + LEASE)],
    )?;
    Ok(())
}

/// BLOCKED runs whose reset time has passed.
/// A job's health as its runs tell it, for alerting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobHealth {
    pub last_success: Option<DateTime<Utc>>,
    pub last_finish: Option<DateTime<Utc>>,
    /// FAILED or INVALID runs since the last SUCCEEDED one.
    pub consecutive_failures: u64,
}

pub fn job_health(conn: &Db, job: &str) -> Result<JobHealth> {
    let (success, finish): (Option<String>, Option<String>) = conn.query_row(
        "SELECT MAX(CASE WHEN status = 'SUCCEEDED' THEN finished_at END), MAX(finished_at)
         FROM runs WHERE job = ?1",
        [job],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let failures: i64 = conn.query_row(
        "SELECT COUNT(*) FROM runs WHERE job = ?1 AND status IN ('FAILED', 'INVALID')
           AND created_at > COALESCE((SELECT MAX(created_at) FROM runs WHERE job = ?1 AND status = 'SUCCEEDED'), '')",
        [job],
        |r| r.get(0),
    )?;
    Ok(JobHealth {
        last_success: success.as_deref().and_then(parse_ts),
        last_finish: finish.as_deref().and_then(parse_ts),
        consecutive_failures: failures as u64,
    })
}

/// A failed run back in the queue for a retry at `at` (one transaction: the transition, the
/// count, the time).
pub fn schedule_retry(
    conn: &mut Db,
    uid: &str,
    reason: &str,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<RunRecord> {
    let tx = super::write_tx(conn)?;
    let (id, from) = movable(&tx, uid, RunStatus::Queued)?;
    tx.execute(
        "UPDATE runs SET status = 'QUEUED', retry_count = retry_count + 1, postponed_until = ?2,
            finished_at = NULL, updated_at = ?3 WHERE id = ?1",
        params![id, ts(at), ts(now)],
    )?;
    tx.execute(
        "INSERT INTO transitions (run_id, from_status, to_status, at, reason) VALUES (?1, ?2, 'QUEUED', ?3, ?4)",
        params![id, from.as_str(), ts(now), reason],
    )?;
    let run = get_run(&tx, uid)?.ok_or_else(|| StoreError::NotFound(uid.to_string()))?;
    tx.commit()?;
    Ok(run)
}

/// [`open_runs_elsewhere`]: the two ranges of `runs_open_owner` around the owner (`!=`, or the
/// status index the planner prefers, reads every unfinished run, the owner's own included).
pub(super) const OPEN_ELSEWHERE: &str = "SELECT job, COUNT(*) FROM (
    SELECT job FROM runs INDEXED BY runs_open_owner
    WHERE status IN ('CREATED', 'QUEUED', 'RUNNING') AND owner < ?1 AND lease_until >= ?2
    UNION ALL
    SELECT job FROM runs INDEXED BY runs_open_owner
    WHERE status IN ('CREATED', 'QUEUED', 'RUNNING') AND owner > ?1 AND lease_until >= ?2
) AS open GROUP BY job";

/// Unfinished runs per job whose owner is not `owner` (a `trigger` beside the daemon) and
/// still holds its lease.
pub fn open_runs_elsewhere(
    conn: &Db,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<std::collections::HashMap<String, usize>> {
    let mut stmt = conn.prepare_cached(OPEN_ELSEWHERE)?;
    let rows = stmt.query_map(params![owner, ts(now)], |r| {
        Ok((r.get(0)?, r.get::<_, i64>(1)? as usize))
    })?;
    Ok(rows.collect::<super::db::Result<_>>()?)
}

pub fn blocked_due(conn: &Db, now: DateTime<Utc>) -> Result<Vec<RunRecord>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM runs WHERE status = 'BLOCKED' AND postponed_until IS NOT NULL AND postponed_until <= ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([ts(now)], run_from_row)?;
    Ok(rows.collect::<super::db::Result<_>>()?)
}

/// When the next chore comes due for `owner`'s maintenance: the earliest reset of a BLOCKED run,
/// or the earliest lease expiry of another process's open run (a `trigger` that may die).
pub fn next_chore(conn: &Db, owner: &str) -> Result<Option<DateTime<Utc>>> {
    let at: Option<String> = conn.query_row(
        "SELECT MIN(t) FROM (
            SELECT MIN(postponed_until) AS t FROM runs WHERE status = 'BLOCKED'
            UNION ALL
            SELECT MIN(lease_until) FROM runs
             WHERE status IN ('CREATED', 'QUEUED', 'RUNNING') AND (owner IS NULL OR owner != ?1)) AS due",
        [owner],
        |r| r.get(0),
    )?;
    Ok(at.as_deref().and_then(super::parse_ts))
}

/// BLOCKED runs that met a 402 (no credits) and wait with no reset time: due now, as the
/// account has credits again. Returns how many.
pub fn unblock_for_credits(conn: &mut Db, now: DateTime<Utc>) -> Result<usize> {
    let tx = super::write_tx(conn)?;
    let n = tx.execute(
        "UPDATE runs SET postponed_until = ?1 WHERE status = 'BLOCKED' AND (postponed_until IS NULL OR postponed_until > ?1) AND substr(last_error_message, 1, ?2) = ?3",
        params![ts(now), NO_CREDITS.len() as i64, NO_CREDITS],
    )?;
    tx.commit()?;
    Ok(n)
}

/// Adds to a run's retry and rate-limit-wait counters.
pub fn count_retries(conn: &Db, uid: &str, retries: u32, waits: u32) -> Result<()> {
    conn.execute(
        "UPDATE runs SET request_retries = request_retries + ?2, rate_limit_waits = rate_limit_waits + ?3 WHERE uid = ?1",
        params![uid, retries, waits],
    )?;
    Ok(())
}

/// Sets when a BLOCKED run may be resumed.
pub fn set_postponed(conn: &Db, uid: &str, until: Option<DateTime<Utc>>) -> Result<()> {
    conn.execute(
        "UPDATE runs SET postponed_until = ?2 WHERE uid = ?1",
        params![uid, until.map(ts)],
    )?;
    Ok(())
}

pub fn get_run(conn: &Db, uid: &str) -> Result<Option<RunRecord>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM runs WHERE uid = ?1"),
            [uid],
            run_from_row,
        )
        .optional()?)
}

/// Filters for `runs list`.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub job: Option<String>,
    pub status: Option<RunStatus>,
    pub since: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
}

/// Runs matching `f`, newest first.
pub fn list_runs(conn: &Db, f: &RunFilter) -> Result<Vec<RunRecord>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM runs WHERE (CAST(?1 AS TEXT) IS NULL OR job = ?1)
         AND (CAST(?2 AS TEXT) IS NULL OR status = ?2)
         AND (CAST(?3 AS TEXT) IS NULL OR created_at >= ?3) ORDER BY created_at DESC, id DESC LIMIT ?4"
    ))?;
    let rows = stmt.query_map(
        params![
            f.job,
            f.status.map(RunStatus::as_str),
            f.since.map(ts),
            f.limit.map_or(i64::MAX, i64::from) // no limit (PostgreSQL refuses SQLite's -1)
        ],
        run_from_row,
    )?;
    Ok(rows.collect::<super::db::Result<_>>()?)
}

/// Runs in any of `statuses`, oldest first.
pub fn runs_in(conn: &Db, statuses: &[RunStatus]) -> Result<Vec<RunRecord>> {
    let list = statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(",");
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM runs WHERE status IN ({list}) ORDER BY id"
    ))?;
    let rows = stmt.query_map((), run_from_row)?;
    Ok(rows.collect::<super::db::Result<_>>()?)
}

/// Runs a leader stopped for a handover (STOPPED, reason `handover`, not taken up since), for
/// the next leader to resume.
pub fn handed_over(conn: &Db) -> Result<Vec<RunRecord>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM runs r WHERE status = 'STOPPED'
           AND (SELECT reason FROM transitions t WHERE t.run_id = r.id ORDER BY rowid DESC LIMIT 1)
               = 'handover'
         ORDER BY id"
    ))?;
    let rows = stmt.query_map((), run_from_row)?;
    Ok(rows.collect::<super::db::Result<_>>()?)
}

pub fn transitions(conn: &Db, run_id: i64) -> Result<Vec<TransitionRecord>> {
    let mut stmt = conn.prepare(
        "SELECT from_status, to_status, at, reason FROM transitions WHERE run_id = ?1 ORDER BY rowid",
    )?;
    let rows = stmt.query_map([run_id], |r| {
        Ok(TransitionRecord {
            from: r.get(0)?,
            to: r.get(1)?,
            at: r.get(2)?,
            reason: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<super::db::Result<_>>()?)
}

pub fn pages(conn: &Db, run_id: i64) -> Result<Vec<PageRecord>> {
    read_pages(conn, "", params![run_id])
}

/// The pages of one input of a run over a list (`None`: of a run over one input), read by
/// index: a run over 100,000 inputs reads each one's pages, not the run's, per input.
pub fn pages_of(conn: &Db, run_id: i64, input: Option<u32>) -> Result<Vec<PageRecord>> {
    read_pages(
        conn,
        "AND input_idx IS NOT DISTINCT FROM ?2",
        params![run_id, input],
    )
}

fn read_pages(conn: &Db, and: &str, params: impl super::db::Params) -> Result<Vec<PageRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT page_no, url, item_count, fetched_at, content_hash, input_idx FROM pages
         WHERE run_id = ?1 {and} ORDER BY page_no"
    ))?;
    let rows = stmt.query_map(params, |r| {
        Ok(PageRecord {
            page: r.get(0)?,
            url: r.get(1)?,
            items: r.get(2)?,
            fetched_at: r.get(3)?,
            content_hash: r.get(4)?,
            input: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<super::db::Result<_>>()?)
}

/// Calls `each` with every stored item of a run, in page and index order.
pub fn for_each_item(
    conn: &Db,
    run_id: i64,
    mut each: impl FnMut(serde_json::Value) -> std::io::Result<()>,
) -> Result<()> {
    let mut stmt =
        conn.prepare("SELECT data FROM items WHERE run_id = ?1 ORDER BY page_no, idx")?;
    let mut rows = stmt.query([run_id])?;
    while let Some(row) = rows.next()? {
        let text: String = row.get(0)?;
        let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        each(value).map_err(StoreError::Output)?;
    }
    Ok(())
}

/// The names of the jobs the database has runs or ticks of, sorted.
pub fn job_names(conn: &Db) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT job FROM runs UNION SELECT job FROM ticks ORDER BY 1")?;
    let names = stmt.query_map((), |r| r.get(0))?;
    Ok(names.collect::<std::result::Result<_, _>>()?)
}

/// A job's newest run.
pub fn last_run(conn: &Db, job: &str) -> Result<Option<RunRecord>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM runs WHERE job = ?1 ORDER BY created_at DESC, id DESC LIMIT 1"),
            [job],
            run_from_row,
        )
        .optional()?)
}

/// Calls `each` with every item of the runs matching `job` and created from `since` on, oldest
/// Which stored items to read: one run's, or many runs' (a job's, since an instant).
#[derive(Clone, Debug, Default)]
pub struct ItemQuery {
    pub run_id: Option<i64>,
    pub job: Option<String>,
    pub since: Option<DateTime<Utc>>,
    /// Only items no earlier run of the job returned.
    pub new_only: bool,
}

const ITEMS_WHERE: &str = "WHERE (CAST(?1 AS BIGINT) IS NULL OR i.run_id = ?1)
     AND (CAST(?2 AS TEXT) IS NULL OR r.job = ?2)
     AND (CAST(?3 AS TEXT) IS NULL OR r.created_at >= ?3) AND (?4 = 0 OR i.is_new = 1)";

/// Calls `each(run_uid, job, action, item as JSON text)` for every item `q` selects, in run,
/// page and index order, one row at a time (memory stays flat however many there are).
pub fn for_each_item_text(
    conn: &Db,
    q: &ItemQuery,
    mut each: impl FnMut(&ItemRow) -> std::io::Result<()>,
) -> Result<()> {
    let mut stmt = conn.prepare(&format!(
        "SELECT r.uid, r.job, r.action_name, i.data, p.input_idx, json_extract(ri.input, '$.custom_data')
         FROM items i JOIN runs r ON r.id = i.run_id
         LEFT JOIN pages p ON p.run_id = i.run_id AND p.page_no = i.page_no
         LEFT JOIN run_inputs ri ON ri.run_id = i.run_id AND ri.idx = p.input_idx
         {ITEMS_WHERE} ORDER BY r.created_at, r.id, i.page_no, i.idx"
    ))?;
    let mut rows = stmt.query(params![q.run_id, q.job, q.since.map(ts), q.new_only])?;
    while let Some(row) = rows.next()? {
        let item = ItemRow {
            run_uid: row.get(0)?,
            job: row.get(1)?,
            action: row.get(2)?,
            text: row.get(3)?,
            input: row.get(4)?,
            custom_data: row.get(5)?,
        };
        each(&item).map_err(StoreError::Output)?;
    }
    Ok(())
}

/// One stored item as read for output, with where it came from.
#[derive(Debug)]
pub struct ItemRow {
    pub run_uid: String,
    pub job: String,
    pub action: String,
    /// The item, as JSON text.
    pub text: String,
    /// In a run over a list, the index of the item's input, and that input's `custom_data`
    /// (JSON text).
    pub input: Option<u32>,
    pub custom_data: Option<String>,
}

/// The actions of the items `q` selects, in the order they first appear.
pub fn item_actions(conn: &Db, q: &ItemQuery) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT r.action_name, MIN(r.created_at) AS first FROM items i JOIN runs r ON r.id = i.run_id
         {ITEMS_WHERE} GROUP BY r.action_name ORDER BY first"
    ))?;
    let rows = stmt.query_map(params![q.run_id, q.job, q.since.map(ts), q.new_only], |r| {
        r.get(0)
    })?;
    Ok(rows.collect::<super::db::Result<_>>()?)
}
