//! The one door to the database: typed methods, grouped by subject, each owning its transaction
//! and its wake-ups (queuing a callback wakes the deliverer). Callers never see a connection or
//! a closure. [`Store`] writes (one writer thread); [`Reader`] is the read-only handle the CLI
//! opens beside a running daemon.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::db::Db;
use chrono::{DateTime, Utc};
use rusqlite::OpenFlags;
use serde_json::Value;

use super::deliveries::{self, Delivery};
use super::lanes::{self, Entry, LaneAsk, LaneReport};
use super::links::{self, Link};
use super::runs::{self, LastError, PageRecord, RunFilter, RunRecord, TransitionRecord};
use super::ticks::{self, Recorded, Skip, TickRecord};
use super::{NewRun, Result, SkipReason, Store, StoreError};
use crate::clock::Clock;
use crate::status::RunStatus;

/// A page of results to store, with the run's cursor after it and its webhook callback. Shared
/// (`Arc`) between the run's task and the writer thread, so a retried write copies nothing.
#[derive(Clone, Debug)]
pub struct NewPage {
    pub page_no: u32,
    pub url: String,
    /// The items as JSON text, written once by the caller (stored as is).
    pub texts: Vec<String>,
    /// What identifies each item ([`crate::catalog::item_key`]), for the job's seen-record:
    /// computed in the caller's task, so the one writer thread only inserts.
    pub keys: Vec<u64>,
    /// [`super::hash_texts`] of `texts`.
    pub content_hash: String,
    /// The next page's URL: the run's cursor after this page.
    pub next_url: Option<String>,
    /// The webhook callback for this page: (receiver URL, body).
    pub callback: Option<(String, Value)>,
    /// In a run over a list, the input the page belongs to.
    pub input: Option<u32>,
}

impl NewPage {
    /// A page of `action`'s `items` without a callback, written as text and keyed here.
    pub fn new(
        action: &str,
        page_no: u32,
        url: String,
        items: &[Value],
        next_url: Option<String>,
    ) -> NewPage {
        let texts: Vec<String> = items.iter().map(ToString::to_string).collect();
        let keys = crate::catalog::item_keys(action, items, &texts);
        NewPage {
            page_no,
            url,
            content_hash: super::hash_texts(&texts),
            texts,
            keys,
            next_url,
            callback: None,
            input: None,
        }
    }
}

/// Ticks to record in one transaction: skipped ones with their reason, fired ones with the run
/// each creates.
pub type TickBatch = (Vec<Skip>, Vec<(DateTime<Utc>, NewRun)>);

/// Keeps trying `op` while the database has a transient fault (busy, full), once a second: for
/// a run's own writes, which are never given up while the process that owns the run lives.
pub async fn persistently<R, F, Fut>(mut op: F) -> Result<R>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<R>>,
{
    loop {
        match op().await {
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "a run's write is waiting for the database");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => return other,
        }
    }
}

/// Runs.
impl Store {
    /// Writes a CREATED run, before any request is made.
    pub async fn create_run(&self, new: NewRun, now: DateTime<Utc>) -> Result<RunRecord> {
        self.call(move |c| runs::create_run(c, &new, now)).await
    }

    pub async fn run(&self, uid: &str) -> Result<Option<RunRecord>> {
        let uid = uid.to_string();
        self.call(move |c| runs::get_run(c, &uid)).await
    }

    /// The run `uid`, which must exist.
    pub async fn existing_run(&self, uid: &str) -> Result<RunRecord> {
        self.run(uid)
            .await?
            .ok_or_else(|| StoreError::NotFound(uid.to_string()))
    }

    /// Moves a run to `to` (the lifecycle refuses illegal moves), recording why.
    pub async fn transition(
        &self,
        uid: &str,
        to: RunStatus,
        reason: &str,
        error: Option<LastError>,
        now: DateTime<Utc>,
    ) -> Result<RunRecord> {
        let (uid, reason) = (uid.to_string(), reason.to_string());
        self.call(move |c| runs::transition(c, &uid, to, &reason, error.as_ref(), now))
            .await
    }

    /// Writes `reason` in the run's history without changing its status.
    pub async fn note(&self, uid: &str, reason: &str, now: DateTime<Utc>) -> Result<()> {
        let (uid, reason) = (uid.to_string(), reason.to_string());
        self.call(move |c| runs::note(c, &uid, &reason, now)).await
    }

    /// Stores a page with the run's next cursor (and queues its callback) in one transaction.
    pub async fn store_page(
        &self,
        uid: &str,
        page: impl Into<Arc<NewPage>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let page = page.into();
        let hook = page.callback.is_some();
        self.call_page(uid.to_string(), page, now).await?;
        if hook {
            self.deliveries_queued();
        }
        Ok(())
    }

    /// Stores a run over a list's inputs (JSON texts, in order), once, in a transaction of
    /// their own: the run stays CREATED until they are.
    pub async fn add_inputs(&self, run_id: i64, start: u32, inputs: Vec<String>) -> Result<()> {
        self.call(move |c| {
            let tx = super::write_tx(c)?;
            super::inputs::add(&tx, run_id, start, &inputs)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// The stored items of a run, or of one input of a run over a list.
    pub async fn items_of(&self, run_id: i64, input: Option<u32>) -> Result<Vec<Value>> {
        match input {
            None => self.items(run_id).await,
            Some(i) => self.call(move |c| super::inputs::items(c, run_id, i)).await,
        }
    }

    /// A run's inputs, in order (none for a run over one input).
    pub async fn inputs(&self, run_id: i64) -> Result<Vec<super::InputRecord>> {
        self.call(move |c| super::inputs::list(c, run_id)).await
    }

    /// At most `limit` of a run's inputs, in order, from index `from`.
    pub async fn inputs_from(
        &self,
        run_id: i64,
        from: u32,
        limit: u32,
    ) -> Result<Vec<super::InputRecord>> {
        self.call(move |c| super::inputs::list_from(c, run_id, from, limit))
            .await
    }

    /// Records where an input ended in this attempt of its run.
    pub async fn set_input_outcome(
        &self,
        run_id: i64,
        index: u32,
        outcome: super::InputOutcome,
        error: Option<LastError>,
    ) -> Result<()> {
        self.call(move |c| {
            let tx = super::write_tx(c)?;
            super::inputs::set_outcome(&tx, run_id, index, outcome, error.as_ref())?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Makes the store's chain links those of the job file (see `chain::set_links`).
    pub async fn set_links(
        &self,
        links: Vec<super::ChainLink>,
        afters: Vec<(String, String)>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.call(move |c| super::chain::set_links(c, &links, &afters, now))
            .await
    }

    /// Items waiting for a chained job.
    pub async fn chain_pending(&self, job: &str) -> Result<u64> {
        let job = job.to_string();
        self.call(move |c| super::chain::pending(c, &job)).await
    }

    /// Holds what waits for the run's job and stores it as the run's inputs; how many.
    pub async fn take_chain(
        &self,
        run_id: i64,
        job: &str,
        map: std::sync::Arc<super::MapItem>,
    ) -> Result<u32> {
        let job = job.to_string();
        self.call(move |c| super::chain::take(c, run_id, &job, &*map))
            .await
    }

    pub async fn firings(&self) -> Result<Vec<super::Firing>> {
        self.call(|c| super::chain::firings(c)).await
    }

    /// Creates the run firings `ids` start (QUEUED) and marks them fired, at once.
    pub async fn fire_after(
        &self,
        ids: Vec<i64>,
        new: NewRun,
        now: DateTime<Utc>,
    ) -> Result<String> {
        self.call(move |c| super::chain::fire(c, &ids, &new, now))
            .await
    }

    /// A job's chained inputs counted by state.
    pub async fn chain_report(&self, job: &str) -> Result<super::ChainReport> {
        let job = job.to_string();
        self.call(move |c| super::chain::report(c, &job)).await
    }

    pub async fn settle_firings(&self, ids: Vec<i64>, run_uid: Option<String>) -> Result<()> {
        self.call(move |c| super::chain::settle_firings(c, &ids, run_uid.as_deref()))
            .await
    }

    /// The run's last page number (0 before its first page).
    pub async fn last_page(&self, run_id: i64) -> Result<u32> {
        self.call(move |c| {
            Ok(
                c.prepare_cached("SELECT COALESCE(MAX(page_no), 0) FROM pages WHERE run_id = ?1")?
                    .query_row([run_id], |r| r.get(0))?,
            )
        })
        .await
    }

    /// An outreach job's record of an input (its [`super::sent_key`]).
    pub async fn sent(&self, job: &str, input: &str) -> Result<Option<super::SentRow>> {
        let (job, input) = (job.to_string(), input.to_string());
        self.call(move |c| super::sent::lookup(c, &job, &input))
            .await
    }

    /// Records an outreach input as in flight (a request through no lane, whose `lane_enter`
    /// would have recorded it).
    pub async fn mark_sent(&self, mark: super::SentMark, now: DateTime<Utc>) -> Result<()> {
        self.call(move |c| super::sent::mark(c, &mark, now)).await
    }

    /// Ends an outreach input and its record at once (see `sent::settle`); how it ended.
    pub async fn settle_sent(
        &self,
        mark: super::SentMark,
        outcome: super::InputOutcome,
        error: Option<LastError>,
        answered: bool,
    ) -> Result<super::InputOutcome> {
        self.call(move |c| super::sent::settle(c, &mark, outcome, error.as_ref(), answered))
            .await
    }

    pub async fn pages(&self, run_id: i64) -> Result<Vec<PageRecord>> {
        self.call(move |c| runs::pages(c, run_id)).await
    }

    /// The pages of one input of a run over a list (`None`: of a run over one input).
    pub async fn pages_of(&self, run_id: i64, input: Option<u32>) -> Result<Vec<PageRecord>> {
        self.call(move |c| runs::pages_of(c, run_id, input)).await
    }

    pub async fn transitions(&self, run_id: i64) -> Result<Vec<TransitionRecord>> {
        self.call(move |c| runs::transitions(c, run_id)).await
    }

    /// A run's stored items, in page and index order.
    pub async fn items(&self, run_id: i64) -> Result<Vec<Value>> {
        self.call(move |c| {
            let mut items = Vec::new();
            runs::for_each_item(c, run_id, |v| {
                items.push(v);
                Ok(())
            })?;
            Ok(items)
        })
        .await
    }

    pub async fn list_runs(&self, filter: RunFilter) -> Result<Vec<RunRecord>> {
        self.call(move |c| runs::list_runs(c, &filter)).await
    }

    /// Runs in any of `statuses`, oldest first.
    pub async fn runs_in(&self, statuses: &[RunStatus]) -> Result<Vec<RunRecord>> {
        let statuses = statuses.to_vec();
        self.call(move |c| runs::runs_in(c, &statuses)).await
    }

    /// Runs stopped by a leader's handover, for this leader to resume.
    pub async fn handed_over(&self) -> Result<Vec<RunRecord>> {
        self.call(|c| runs::handed_over(c)).await
    }

    /// Makes `owner` the run's owner, with a fresh lease.
    pub async fn claim(&self, uid: &str, owner: &str, now: DateTime<Utc>) -> Result<()> {
        let (uid, owner) = (uid.to_string(), owner.to_string());
        self.call(move |c| runs::claim(c, &uid, &owner, now)).await
    }

    /// Renews the lease on every unfinished run of `owner`.
    pub async fn renew_leases(&self, owner: &str, now: DateTime<Utc>) -> Result<usize> {
        let owner = owner.to_string();
        self.call(move |c| runs::renew_leases(c, &owner, now)).await
    }

    /// Unfinished runs (created, queued, running) per job, of owners other than `owner`. On the
    /// urgent lane: the tick path asks it before each batch, and must not wait behind run writes.
    pub async fn open_runs_elsewhere(
        &self,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, usize>> {
        let owner = owner.to_string();
        self.call_urgent(move |c| runs::open_runs_elsewhere(c, &owner, now))
            .await
    }

    /// Each job's last success, last finish and consecutive failures.
    pub async fn job_health(&self, jobs: Vec<String>) -> Result<Vec<(String, runs::JobHealth)>> {
        self.call(move |c| {
            jobs.iter()
                .map(|j| Ok((j.clone(), runs::job_health(c, j)?)))
                .collect()
        })
        .await
    }

    /// BLOCKED runs whose reset time has passed.
    pub async fn blocked_due(&self, now: DateTime<Utc>) -> Result<Vec<RunRecord>> {
        self.call(move |c| runs::blocked_due(c, now)).await
    }

    /// BLOCKED runs waiting for credits become due (the account has credits again).
    pub async fn unblock_for_credits(&self, now: DateTime<Utc>) -> Result<usize> {
        self.call(move |c| runs::unblock_for_credits(c, now)).await
    }

    /// When maintenance has something to do next (see [`runs::next_chore`]).
    pub async fn next_chore(&self, owner: &str) -> Result<Option<DateTime<Utc>>> {
        let owner = owner.to_string();
        self.call(move |c| runs::next_chore(c, &owner)).await
    }

    pub async fn count_retries(&self, uid: &str, retries: u32, waits: u32) -> Result<()> {
        let uid = uid.to_string();
        self.call(move |c| runs::count_retries(c, &uid, retries, waits))
            .await
    }

    /// Puts a failed run back in the queue for a retry at `at`: QUEUED with `reason`,
    /// `retry_count` up by one, `postponed_until` at.
    pub async fn schedule_retry(
        &self,
        uid: &str,
        reason: &str,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RunRecord> {
        let (uid, reason) = (uid.to_string(), reason.to_string());
        self.call(move |c| runs::schedule_retry(c, &uid, &reason, at, now))
            .await
    }

    pub async fn set_postponed(&self, uid: &str, until: Option<DateTime<Utc>>) -> Result<()> {
        let uid = uid.to_string();
        self.call(move |c| runs::set_postponed(c, &uid, until))
            .await
    }

    /// Adds time a run spent waiting for its identity lanes.
    pub async fn add_lane_wait(&self, uid: &str, ms: u64) -> Result<()> {
        let uid = uid.to_string();
        self.call(move |c| lanes::add_lane_wait(c, &uid, ms)).await
    }
}

/// Retention.
impl Store {
    /// Removes (or, with `dry_run`, counts) the finished runs created before `before`, except
    /// each job's last and those with callbacks still to deliver; reclaims the space.
    pub async fn prune(&self, before: DateTime<Utc>, dry_run: bool) -> Result<super::Pruned> {
        self.call(move |c| super::prune::prune(c, before, dry_run))
            .await
    }
}

/// Ticks.
impl Store {
    /// Records a batch of ticks in one transaction, ahead of every waiting run write; the
    /// fired runs' creation time (and lease) is `clock`'s now on the database's clock, as
    /// [`Store::now`] gives it, read when the batch is written.
    pub async fn record_ticks(&self, batch: Arc<TickBatch>, clock: Clock) -> Result<Recorded> {
        let offset = self.inner.offset.clone();
        self.call_urgent(move |c| {
            let now = super::on_db_clock(offset.as_deref(), &clock);
            ticks::record_ticks(c, &batch.0, &batch.1, now)
        })
        .await
    }

    /// Fires a past tick that has no run yet; `None` when it has one.
    pub async fn backfill_tick(
        &self,
        nominal: DateTime<Utc>,
        new: NewRun,
        now: DateTime<Utc>,
    ) -> Result<Option<String>> {
        self.call(move |c| ticks::backfill_tick(c, nominal, &new, now))
            .await
    }

    /// Records one tick as skipped; false when it already had a row.
    pub async fn skip_tick(
        &self,
        job: &str,
        at: DateTime<Utc>,
        reason: SkipReason,
    ) -> Result<bool> {
        let job = job.to_string();
        self.call(move |c| ticks::skip_tick(c, &job, at, reason))
            .await
    }

    /// The last nominal tick recorded for each of `jobs` that has one.
    pub async fn last_ticks(&self, jobs: Vec<String>) -> Result<HashMap<String, DateTime<Utc>>> {
        let wanted: std::collections::HashSet<String> = jobs.into_iter().collect();
        self.call(move |c| {
            Ok(ticks::last_ticks(c)?
                .into_iter()
                .filter(|(job, _)| wanted.contains(job))
                .collect())
        })
        .await
    }

    pub async fn ticks(
        &self,
        job: Option<&str>,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<TickRecord>> {
        let job = job.map(str::to_string);
        self.call(move |c| ticks::list_ticks(c, job.as_deref(), since))
            .await
    }
}

/// Webhook deliveries.
impl Store {
    /// Queues a delivery after the run's earlier ones of its kind, and wakes the deliverer.
    pub async fn enqueue(
        &self,
        run_uid: &str,
        kind: super::DeliveryKind,
        url: &str,
        body: Value,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (uid, url) = (run_uid.to_string(), url.to_string());
        self.call(move |c| deliveries::enqueue(c, &uid, kind, &url, &body, now))
            .await?;
        self.deliveries_queued();
        Ok(())
    }

    /// Claims up to `limit` due deliveries (of one run, or all) for `claim`.
    pub async fn claim_due(
        &self,
        run_id: Option<i64>,
        limit: u32,
        claim: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>> {
        self.call(move |c| deliveries::claim_due(c, run_id, limit, claim, now))
            .await
    }

    /// Records an attempt: delivered, or to be retried at `retry_at`.
    pub async fn record_attempt(
        &self,
        id: i64,
        http_status: Option<u16>,
        error: Option<String>,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.call(move |c| {
            deliveries::record_attempt(c, id, http_status, error.as_deref(), retry_at, now)
        })
        .await
    }

    pub async fn next_delivery_at(&self) -> Result<Option<DateTime<Utc>>> {
        self.call(|c| deliveries::next_delivery_at(c)).await
    }

    /// Replaces the account's credits with what the API just said.
    pub async fn record_account(&self, a: super::account::Account) -> Result<()> {
        self.call(move |c| super::account::record(c, &a)).await
    }

    pub async fn account(&self) -> Result<Option<super::account::Account>> {
        self.call(|c| super::account::read(c)).await
    }

    pub async fn pending_count(&self, run_id: Option<i64>) -> Result<u64> {
        self.call(move |c| deliveries::pending_count(c, run_id))
            .await
    }

    pub async fn deliveries_of(&self, run_id: i64) -> Result<Vec<Delivery>> {
        self.call(move |c| deliveries::deliveries_of(c, run_id))
            .await
    }
}

/// Remote schedule links.
impl Store {
    pub async fn links(&self) -> Result<Vec<Link>> {
        self.call(|c| links::links(c)).await
    }

    /// Records a link, with the linked schedule's status when known.
    pub async fn set_link(
        &self,
        link: Link,
        status: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let status = status.map(str::to_string);
        self.call(move |c| {
            let tx = super::write_tx(c)?;
            links::set_link(&tx, &link, now)?;
            if let Some(s) = &status {
                links::set_remote_status(&tx, &link.uid, s)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Remembers each linked schedule's status as the account last showed it.
    pub async fn set_remote_statuses(&self, statuses: Vec<(String, String)>) -> Result<()> {
        self.call(move |c| {
            let tx = super::write_tx(c)?;
            for (uid, status) in &statuses {
                links::set_remote_status(&tx, uid, status)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn remote_statuses(&self) -> Result<Vec<(String, String, Option<String>)>> {
        self.call(|c| links::remote_statuses(c)).await
    }
}

/// Identity lanes and the shared plan-rate slot.
impl Store {
    pub async fn lane_enter(&self, ask: LaneAsk, now: DateTime<Utc>) -> Result<Entry> {
        self.call(move |c| lanes::lane_enter(c, &ask, now)).await
    }

    /// Frees every identity slot `holder` holds (its process is gone).
    pub async fn lane_free(&self, holder: String) -> Result<usize> {
        self.call(move |c| Ok(c.execute("DELETE FROM lane_slots WHERE holder = ?1", [&holder])?))
            .await
    }

    pub async fn lane_leave(
        &self,
        lanes: Vec<String>,
        holder: String,
        next_at: DateTime<Utc>,
    ) -> Result<()> {
        self.call(move |c| lanes::lane_leave(c, &lanes, &holder, next_at))
            .await
    }

    pub async fn lane_pause(
        &self,
        lanes: Vec<String>,
        until: DateTime<Utc>,
        reason: &str,
    ) -> Result<()> {
        let reason = reason.to_string();
        self.call(move |c| lanes::lane_pause(c, &lanes, until, &reason))
            .await
    }

    /// Lifts a lane's pause; false when it had none.
    pub async fn lane_resume(&self, lane: &str) -> Result<bool> {
        let lane = lane.to_string();
        self.call(move |c| lanes::lane_resume(c, &lane)).await
    }

    /// The next plan-rate slot shared by every process on the database.
    pub async fn pace_slot(&self, interval: Duration, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
        self.call(move |c| lanes::pace_slot(c, interval, now)).await
    }
}

/// The read-only handle: what the CLI's views read while the daemon writes (WAL).
pub struct Reader {
    pub(super) conn: Db,
}

/// Opens the database read-only, for commands that only look.
pub fn open_read_only(path: &Path) -> Result<Reader> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(Reader {
        conn: Db::lite(conn),
    })
}

/// Opens the `PostgreSQL` state read-only, for commands that only look (its schema must be
/// there: a daemon made it).
pub fn open_read_postgres(target: &super::pg::Target) -> Result<Reader> {
    let conn = Db::postgres(target.clone())?;
    conn.execute_batch("SET default_transaction_read_only = on")?;
    Ok(Reader { conn })
}

/// A cluster as `status` shows it: who leads, and the nodes seen.
#[derive(Debug)]
pub struct ClusterView {
    /// The holder (`None`: no node has led yet), its epoch, seconds since its last renewal, and
    /// whether the row is still live on the database's clock.
    pub leader: Option<String>,
    pub epoch: i64,
    pub renewed_s_ago: f64,
    pub live: bool,
    /// Every node that ever joined, with seconds since it was last seen.
    pub nodes: Vec<(String, f64)>,
}

impl Reader {
    /// The cluster on `PostgreSQL` (`None` on `SQLite`: one daemon, no cluster).
    pub fn cluster(&self) -> Result<Option<ClusterView>> {
        if !self.conn.is_postgres() {
            return Ok(None);
        }
        let mut view = self.conn.query_row(
            "SELECT holder, epoch,
                    EXTRACT(EPOCH FROM clock_timestamp() - renewed_at)::float8,
                    expires_at > clock_timestamp()
             FROM watchbell_leader WHERE id = 1",
            (),
            |r| {
                Ok(ClusterView {
                    leader: r.get(0)?,
                    epoch: r.get(1)?,
                    renewed_s_ago: r.get(2)?,
                    live: r.get(3)?,
                    nodes: Vec::new(),
                })
            },
        )?;
        let mut stmt = self.conn.prepare(
            "SELECT node, EXTRACT(EPOCH FROM clock_timestamp() - seen_at)::float8
             FROM watchbell_nodes ORDER BY node",
        )?;
        view.nodes = stmt
            .query_map((), |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<super::db::Result<_>>()?;
        Ok(Some(view))
    }

    /// Keeps this connection's page cache to `kib` (a reader kept open for long, by the daemon).
    pub fn bound_cache(&self, kib: i64) -> Result<()> {
        if let Some(c) = self.conn.as_lite() {
            c.pragma_update(None, "cache_size", -kib)?;
        }
        Ok(())
    }

    pub fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        runs::list_runs(&self.conn, filter)
    }

    pub fn run(&self, uid: &str) -> Result<Option<RunRecord>> {
        runs::get_run(&self.conn, uid)
    }

    pub fn last_run(&self, job: &str) -> Result<Option<RunRecord>> {
        runs::last_run(&self.conn, job)
    }

    /// The jobs the database has runs or ticks of (for `status` without a job file).
    pub fn job_names(&self) -> Result<Vec<String>> {
        runs::job_names(&self.conn)
    }

    /// Where an async or received run stands.
    pub fn async_state(&self, uid: &str) -> Result<Option<super::batches::AsyncState>> {
        super::batches::state(&self.conn, uid)
    }

    /// Where an async or received run stands, and its batches.
    pub fn async_of(
        &self,
        uid: &str,
    ) -> Result<Option<(super::batches::AsyncState, Vec<super::batches::BatchRecord>)>> {
        let Some(st) = super::batches::state(&self.conn, uid)? else {
            return Ok(None);
        };
        let batches = super::batches::batches(&self.conn, st.run_id)?;
        Ok(Some((st, batches)))
    }

    pub fn transitions(&self, run_id: i64) -> Result<Vec<TransitionRecord>> {
        runs::transitions(&self.conn, run_id)
    }

    /// A run's inputs, in order (none for a run over one input).
    pub fn inputs(&self, run_id: i64) -> Result<Vec<super::InputRecord>> {
        super::inputs::list(&self.conn, run_id)
    }

    pub fn pages(&self, run_id: i64) -> Result<Vec<PageRecord>> {
        runs::pages(&self.conn, run_id)
    }

    /// Calls `each` with every stored item of a run, in order, without loading them all.
    pub fn for_each_item(
        &self,
        run_id: i64,
        each: impl FnMut(Value) -> std::io::Result<()>,
    ) -> Result<()> {
        runs::for_each_item(&self.conn, run_id, each)
    }

    /// Calls `each` with the items `q` selects (as JSON text, with their run, job and input),
    /// one row at a time.
    pub fn for_each_item_text(
        &self,
        q: &runs::ItemQuery,
        each: impl FnMut(&runs::ItemRow) -> std::io::Result<()>,
    ) -> Result<()> {
        runs::for_each_item_text(&self.conn, q, each)
    }

    /// How many of a run's items no earlier run of its job returned.
    pub fn new_items(&self, run_id: i64) -> Result<u64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM items WHERE run_id = ?1 AND is_new = 1",
            [run_id],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// The actions of the items `q` selects, in the order they first appear.
    pub fn item_actions(&self, q: &runs::ItemQuery) -> Result<Vec<String>> {
        runs::item_actions(&self.conn, q)
    }

    pub fn deliveries_of(&self, run_id: i64) -> Result<Vec<Delivery>> {
        deliveries::deliveries_of(&self.conn, run_id)
    }

    pub fn ticks(
        &self,
        job: Option<&str>,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<TickRecord>> {
        ticks::list_ticks(&self.conn, job, since)
    }

    pub fn remote_statuses(&self) -> Result<Vec<(String, String, Option<String>)>> {
        links::remote_statuses(&self.conn)
    }

    /// A chained job's inputs counted by state.
    pub fn chain_report(&self, job: &str) -> Result<super::ChainReport> {
        super::chain::report(&self.conn, job)
    }

    pub fn lanes(&self, day: &str, now: DateTime<Utc>) -> Result<Vec<LaneReport>> {
        lanes::lane_report(&self.conn, day, now)
    }

    pub fn account(&self) -> Result<Option<super::account::Account>> {
        super::account::read(&self.conn)
    }
}
