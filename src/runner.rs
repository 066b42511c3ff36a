//! How one run goes: CREATED -> QUEUED -> RUNNING, then page after page into the store (items and
//! the next-page cursor in one transaction), until the pagination ends or something stops it.
//! A failed run is data: the outcome is the run's final status; `Err` is only for the store.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::Url;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::api::{ApiFailure, Attempts, Client, Page, cap};
use crate::clock::Clock;
use crate::config::Safety;
use crate::config::{Notify, Retry};
use crate::lanes::RunGate;
use crate::paging::{self, Pass};
use crate::status::RunStatus;
use crate::store::{
    self, DeliveryKind, LastError, NewPage, RunRecord, Store, StoreError, persistently,
};
use crate::{callbacks, catalog};

mod inputs;
mod submit;

/// What a run's job asks of it: bounds, retries, and whom to tell how it ended.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_pages: u32,
    pub run_timeout: Duration,
    pub retry: Option<Retry>,
    pub notify: Option<Notify>,
    pub ping: Option<Url>,
    /// Inputs of a list paged at once (identity-free actions).
    pub input_concurrency: u32,
    /// `runner = "async"`: the run is one create; the vendor runs it and calls back.
    pub asynchronous: bool,
}

impl Limits {
    /// What `job` asks of its runs.
    pub fn of(job: &crate::config::Job) -> Limits {
        Limits {
            max_pages: job.max_pages,
            run_timeout: job.run_timeout,
            retry: job.retry,
            notify: job.notify.as_deref().cloned(),
            ping: job.ping.as_deref().cloned(),
            input_concurrency: job.input_concurrency,
            asynchronous: job.runner == crate::config::Runner::Async,
        }
    }

    /// Just bounds: no retry, nobody told.
    pub const fn bounds(max_pages: u32, run_timeout: Duration) -> Limits {
        Limits {
            max_pages,
            run_timeout,
            retry: None,
            notify: None,
            ping: None,
            input_concurrency: 1,
            asynchronous: false,
        }
    }
}

/// The stop reason of a cluster leader's handover ([`Stop::stop`]).
pub const HANDOVER: &str = "handover";

/// How long a run stopped for a handover waits for its page in flight to land.
const BOUNDARY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Asks a run to stop (shutdown, `overlap = "replace"`), with the reason recorded.
#[derive(Clone, Debug, Default)]
pub struct Stop {
    token: CancellationToken,
    reason: Arc<OnceLock<String>>,
}

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }

    /// A stop that also fires when `parent` is cancelled (reason: shutdown).
    pub fn child_of(parent: &CancellationToken) -> Stop {
        Stop {
            token: parent.child_token(),
            reason: Arc::default(),
        }
    }

    pub fn stop(&self, reason: &str) {
        let _ = self.reason.set(reason.to_string());
        self.token.cancel();
    }

    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves when the run is asked to stop.
    pub async fn cancelled(&self) {
        self.token.cancelled().await;
    }

    fn reason(&self) -> &str {
        self.reason_or("shutdown")
    }

    /// The reason given to [`Stop::stop`], or `default` when a parent stopped it.
    pub fn reason_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.reason.get().map_or(default, String::as_str)
    }
}

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct Runner {
    pub store: Store,
    pub client: Client,
    pub clock: Clock,
    /// How requests through an identity are paced (`[safety]`).
    pub safety: Safety,
    /// Where async runs are called back (`[receiver]`).
    pub receiver: Option<crate::config::Receiver>,
}

impl Runner {
    /// Takes the run `uid` (CREATED or QUEUED) to a final status, or back to QUEUED with
    /// `postponed_until` when its job retries it: then the caller runs it again at that time.
    pub async fn execute(
        &self,
        uid: &str,
        limits: &Limits,
        stop: &Stop,
    ) -> Result<RunRecord, StoreError> {
        let run = self.get(uid).await?;
        let span = info_span!("run", job = %run.job, run = %uid);
        async {
            // A list's inputs are stored while the run is still CREATED, in transactions of
            // their own after the tick row; an inputs file gone bad makes the run INVALID.
            // A run fired by a tick or a firing is created QUEUED: what decides is whether its
            // inputs are stored yet.
            let unstored = inputs::is_list(&run)
                && matches!(run.status, RunStatus::Created | RunStatus::Queued)
                && persistently(|| self.store.inputs_from(run.id, 0, 1))
                    .await?
                    .is_empty();
            let unreadable = if unstored {
                self.store_inputs(&run).await?.err()
            } else {
                None
            };
            if limits.asynchronous && unreadable.is_none() {
                return self.submit(&run, limits).await;
            }
            let result = match unreadable {
                Some(why) if inputs::is_chained(&run) => End::NoInputs(why),
                Some(why) => End::Unreadable(why),
                None => self.started(&run, limits, stop).await?,
            };
            let retryable = match &result {
                End::Failed(f) => f.worth_retrying(),
                End::Inputs(t) => t.unfinished > 0,
                _ => false,
            } && catalog::Count::of(&run.action_name) != catalog::Count::Outreach;
            let done = self.finish(uid, result).await?;
            if retryable && let Some(again) = self.retry(&done, limits).await? {
                return Ok(again);
            }
            self.ended(&done, limits).await?;
            info!(status = %done.status, pages = done.pages, items = done.items, "run finished");
            Ok(done)
        }
        .instrument(span)
        .await
    }

    /// What follows a run's end for good: its count, its last webhook callback (with the final
    /// status), its notification and its ping.
    pub async fn ended(&self, done: &RunRecord, limits: &Limits) -> Result<(), StoreError> {
        self.client
            .metrics()
            .run_finished(&done.job, done.status.as_str());
        if let Some(url) = done.callback_url.clone() {
            let body = callbacks::final_body(
                &done.uid,
                done.status.as_str(),
                &done.body["input"],
                done.last_error.as_ref(),
            );
            let now = self.store.now(&self.clock);
            persistently(|| {
                self.store
                    .enqueue(&done.uid, DeliveryKind::Callback, &url, body.clone(), now)
            })
            .await?;
        }
        self.tell(done, limits).await
    }

    /// From CREATED or QUEUED to RUNNING, then the paging, within `run_timeout` and until
    /// `stop`.
    async fn started(
        &self,
        run: &RunRecord,
        limits: &Limits,
        stop: &Stop,
    ) -> Result<End, StoreError> {
        let uid = run.uid.as_str();
        if run.status == RunStatus::Created {
            self.transition(uid, RunStatus::Queued, "accepted", None)
                .await?;
        }
        if run.started_at.is_none()
            && let Some(ping) = &limits.ping
        {
            self.ping(uid, ping, "start").await?;
        }
        let run = self
            .transition(uid, RunStatus::Running, "started", None)
            .await?;
        info!(action = %run.action_name, pages = run.pages, "run started");
        let paging = self.pages(&run, limits, stop);
        // A run over a list times each input on its own (`inputs::list_loop`).
        let whole = (!inputs::is_list(&run)).then_some(limits.run_timeout);
        let paging = within(whole, paging);
        tokio::pin!(paging);
        let ended = |r: Option<Result<End, StoreError>>| match r {
            Some(r) => r,
            None => Ok(End::Stopped("run_timeout".into())),
        };
        tokio::select! {
            r = &mut paging => ended(r),
            () = stop.token.cancelled() => {
                // A handover stops at the next request boundary: the page in flight lands and
                // is stored (the next leader goes on from it), if it does so soon.
                if stop.reason() == HANDOVER
                    && let Ok(r) = tokio::time::timeout(BOUNDARY_WAIT, &mut paging).await
                {
                    return ended(r);
                }
                Ok(End::Stopped(stop.reason().to_string()))
            }
        }
    }

    /// [`Runner::execute`], and again after each retry's backoff, in this process (`trigger`,
    /// `backfill`): until the run has ended for good, or `stop` (then STOPPED, resumable).
    pub async fn run_to_end(
        &self,
        uid: &str,
        limits: &Limits,
        stop: &Stop,
    ) -> Result<RunRecord, StoreError> {
        let mut done = self.execute(uid, limits, stop).await?;
        // A sent async run is the receiver's: QUEUED is where this process leaves it.
        while done.status == RunStatus::Queued && !limits.asynchronous {
            let at = done.postponed_until.unwrap_or_else(|| self.clock.now());
            let why = self
                .store
                .transitions(done.id)
                .await?
                .last()
                .and_then(|t| t.reason.clone())
                .unwrap_or_default();
            eprintln!("run {}: {why}, again at {}", done.uid, at.to_rfc3339());
            let wait = (at - self.clock.now()).to_std().unwrap_or_default();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => return self.stop_waiting(uid, stop.reason_or("interrupted")).await,
            }
            done = self.execute(uid, limits, stop).await?;
        }
        Ok(done)
    }

    /// A failed run with retries left goes back to QUEUED (`retry K/N`, `retry_count` up) with
    /// `postponed_until` after the doubling backoff; `None` when it has ended for good.
    async fn retry(
        &self,
        done: &RunRecord,
        limits: &Limits,
    ) -> Result<Option<RunRecord>, StoreError> {
        let Some(policy) = limits.retry else {
            return Ok(None);
        };
        let failed = done.status == RunStatus::Failed
            || (done.status == RunStatus::PartialSucceeded
                && done
                    .last_error
                    .as_ref()
                    .is_some_and(|e| e.label != "MAX_PAGES"));
        if !failed || done.retry_count >= policy.attempts {
            return Ok(None);
        }
        let attempt = done.retry_count + 1;
        let wait = policy.wait(attempt);
        let now = self.clock.now();
        let at = now + chrono::Duration::from_std(wait).unwrap_or_default();
        let why = format!("retry {attempt}/{}", policy.attempts);
        let again = persistently(|| self.store.schedule_retry(&done.uid, &why, at, now)).await?;
        info!(status = %again.status, reason = %why, retry_in_s = wait.as_secs(), "run will be retried");
        Ok(Some(again))
    }

    /// A run that ended for good: its notification and its ping. A BLOCKED run that resumes by
    /// itself (a quota or cap reset) has not ended for good.
    async fn tell(&self, done: &RunRecord, limits: &Limits) -> Result<(), StoreError> {
        if done.status == RunStatus::Blocked && done.postponed_until.is_some() {
            return Ok(());
        }
        if let Some(n) = limits
            .notify
            .as_ref()
            .filter(|n| n.on.contains(&done.status))
        {
            let body = callbacks::notify_body(done);
            let now = self.store.now(&self.clock);
            persistently(|| {
                self.store.enqueue(
                    &done.uid,
                    DeliveryKind::Notify,
                    n.url.as_str(),
                    body.clone(),
                    now,
                )
            })
            .await?;
        }
        if let Some(ping) = &limits.ping {
            let what = if done.status == RunStatus::Succeeded {
                ""
            } else {
                "fail"
            };
            self.ping(&done.uid, ping, what).await?;
        }
        Ok(())
    }

    /// Queues a ping to `base` (`/start`, `/fail`, or the bare URL for success).
    async fn ping(&self, uid: &str, base: &Url, what: &str) -> Result<(), StoreError> {
        let url = if what.is_empty() {
            base.to_string()
        } else {
            format!("{}/{what}", base.as_str().trim_end_matches('/'))
        };
        let body = serde_json::json!({"run_uid": uid, "event": if what.is_empty() { "success" } else { what }});
        let now = self.store.now(&self.clock);
        persistently(|| {
            self.store
                .enqueue(uid, DeliveryKind::Ping, &url, body.clone(), now)
        })
        .await
    }

    /// Makes `owner` the owner of a resumable run and puts it back in the queue: the one way a
    /// run is taken over (the daemon recovering or unblocking it, `runs resume`). It continues
    /// from its stored cursor.
    pub async fn take_over(
        &self,
        uid: &str,
        owner: &str,
        why: &str,
    ) -> Result<RunRecord, StoreError> {
        persistently(|| self.store.claim(uid, owner, self.store.now(&self.clock))).await?;
        self.transition(uid, RunStatus::Queued, why, None).await
    }

    /// Stops a run that never started (it waited in the queue): STOPPED, resumable.
    pub async fn stop_waiting(&self, uid: &str, reason: &str) -> Result<RunRecord, StoreError> {
        self.transition(uid, RunStatus::Stopped, reason, None).await
    }

    /// The paging loop behind the run's gate; then what the gate saw: the time waited for the
    /// lanes, and a lane paused when the API says its identity is unusable.
    async fn pages(
        &self,
        run: &RunRecord,
        limits: &Limits,
        stop: &Stop,
    ) -> Result<End, StoreError> {
        let gate = RunGate::new(
            run,
            self.client.metrics().clone(),
            self.store.clone(),
            self.safety.clone(),
            self.client.pace(),
            self.client.request_timeout(),
        );
        let end = if inputs::is_list(run) {
            self.list_loop(run, limits, stop, &gate).await?
        } else {
            self.page_loop(run, &Leg::whole(run), limits, stop, &gate)
                .await?
        };
        let waited = gate.waited().as_millis() as u64;
        if waited > 0 {
            persistently(|| self.store.add_lane_wait(&run.uid, waited)).await?;
        }
        if let End::Failed(f) = &end
            && f.identity_unusable()
        {
            gate.pause(&f.label()).await;
        }
        Ok(end)
    }

    /// Pages `leg` (the run's one input, or one input of its list) from its cursor to its end.
    async fn page_loop(
        &self,
        run: &RunRecord,
        leg: &Leg,
        limits: &Limits,
        stop: &Stop,
        gate: &RunGate,
    ) -> Result<End, StoreError> {
        // Where `run_timeout` will stop this run: no server-requested wait may go past it.
        let deadline = tokio::time::Instant::now().checked_add(limits.run_timeout);
        let first = match self.client.first_url(&run.action_name, &run.body) {
            Ok(u) => u.to_string(),
            Err(f) => return Ok(End::Failed(f)),
        };
        let body = leg.body.as_ref();
        let stored = self.stored_pages(run, leg).await?;
        let mut pass = match leg.input {
            Some(_) if stored.is_empty() => Pass::first(run.pages + 1),
            _ => Pass::of(&stored, &first),
        };
        let mut cursor_at = paging::cursor_time(&stored);
        // Item keys stored in this run (or input), once a new pass makes repeats possible.
        let mut known = if pass.is_repeat() {
            Some(self.stored_keys(run, leg.input).await?)
        } else {
            None
        };
        let mut page_no = run.pages;
        let mut next = if stored.is_empty() {
            Some(first.clone())
        } else {
            leg.next.clone() // `None`: every page was already stored
        };
        let mut total = leg.items;
        // The last page is stored while the next is fetched, so a run waits for the longer of
        // the two instead of their sum. Every way out of the loop waits for it first.
        let mut storing: Option<Storing<'_>> = None;
        let end = loop {
            let Some(mut url_text) = next.take() else {
                break End::Done;
            };
            if stop.is_stopped() {
                break End::Stopped(stop.reason().to_string());
            }
            if url_text != first
                && paging::expired(cursor_at, self.client.cursor_ttl(), self.clock.now())
            {
                if let Some(s) = storing.take() {
                    s.await?; // the keys read below must include it
                }
                self.start_again(&run.uid, cursor_at).await?;
                url_text.clone_from(&first);
                pass = Pass::fresh(page_no + 1);
                if known.is_none() {
                    known = Some(self.stored_keys(run, leg.input).await?);
                }
            }
            if pass.count >= limits.max_pages {
                break End::MaxPages;
            }
            let url = match self.sendable(&url_text) {
                Ok(u) => u,
                Err(f) => break End::Failed(f),
            };
            if !pass.visited.insert(url_text.clone()) {
                break End::Failed(ApiFailure::PaginationLoop(url_text));
            }
            let page = self
                .fetch(run, &url, body, deadline, gate, storing.take())
                .await?;
            let page = match page {
                Ok(p) => p,
                Err(f) => break End::Failed(f),
            };
            // Each item is written as JSON text once: for the loop check, the keys and the store.
            let texts: Vec<String> = page.items.iter().map(ToString::to_string).collect();
            let hash = store::hash_texts(&texts);
            if let Some(&earlier) = pass.seen.get(&hash).filter(|_| !page.items.is_empty()) {
                break End::Failed(ApiFailure::PageRepeated {
                    url: url_text,
                    page: earlier,
                });
            }
            page_no = leg.number_after(page_no);
            pass.count += 1;
            pass.seen.insert(hash.clone(), page_no);
            let fetched = page.items.len() as u64;
            let items = Items::of(&run.action_name, page.items, texts, hash).unseen(known.as_mut());
            let n = items.values.len() as u64;
            total += n;
            next = page.next.map(|u| u.to_string());
            cursor_at = Some(self.clock.now());
            let cursor = next.clone();
            storing = Some(Box::pin(async move {
                self.keep_page(run, leg, page_no, url_text, cursor, items)
                    .await?;
                self.client.metrics().items_stored(&run.job, n);
                info!(
                    page = page_no,
                    items = n,
                    repeats = fetched - n,
                    total,
                    "page stored"
                );
                Ok(())
            }));
        };
        if let Some(s) = storing {
            s.await?;
        }
        Ok(end)
    }

    /// The pages `leg` stored before; an input of a list never paged has none to read.
    async fn stored_pages(
        &self,
        run: &RunRecord,
        leg: &Leg,
    ) -> Result<Vec<store::PageRecord>, StoreError> {
        if leg.untouched {
            return Ok(Vec::new());
        }
        persistently(|| self.store.pages_of(run.id, leg.input)).await
    }

    /// Fetches the page at `url` while the last one is stored (`storing`, whose error comes
    /// first), and counts the request's retries.
    async fn fetch(
        &self,
        run: &RunRecord,
        url: &Url,
        body: Option<&serde_json::Value>,
        deadline: Option<tokio::time::Instant>,
        gate: &RunGate,
        storing: Option<Storing<'_>>,
    ) -> Result<Result<Page, ApiFailure>, StoreError> {
        let mut attempts = Attempts::default();
        let fetch = self
            .client
            .live_page(url, body, &mut attempts, deadline, Some(gate));
        let page = match storing {
            Some(s) => {
                let (stored, page) = tokio::join!(s, fetch);
                stored?;
                page
            }
            None => fetch.await,
        };
        if attempts != Attempts::default() {
            let (r, w) = (attempts.retries, attempts.rate_limit_waits);
            persistently(|| self.store.count_retries(&run.uid, r, w)).await?;
        }
        Ok(page)
    }

    /// A page's URL, if it may be sent: a URL, on the API's origin.
    fn sendable(&self, url_text: &str) -> Result<Url, ApiFailure> {
        match Url::parse(url_text) {
            Ok(u) if !self.client.same_origin(&u) => {
                Err(ApiFailure::ForeignNext(url_text.to_string()))
            }
            Ok(u) => Ok(u),
            Err(e) => Err(ApiFailure::BadBody {
                status: 200,
                detail: format!("stored cursor {url_text:?} is not a URL ({e})"),
            }),
        }
    }

    /// The cursor is too old to send: the run's history says so, and its pages start again.
    async fn start_again(
        &self,
        uid: &str,
        cursor_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), StoreError> {
        let ttl = humantime::format_duration(self.client.cursor_ttl());
        let at = cursor_at.map(store::ts).unwrap_or_default();
        let why = format!(
            "cursor expired (handed out at {at}, older than cursor_ttl {ttl}): pages start again from the first; items already stored are not stored again"
        );
        warn!(cursor_at = %at, cursor_ttl = %ttl, "cursor expired; starting the pages again");
        let now = self.clock.now();
        persistently(|| self.store.note(uid, &why, now)).await
    }

    /// What identifies each item already stored in the run (of `input`, in a run over a list).
    async fn stored_keys(
        &self,
        run: &RunRecord,
        input: Option<u32>,
    ) -> Result<HashSet<u64>, StoreError> {
        let items = persistently(|| self.store.items_of(run.id, input)).await?;
        Ok(items
            .iter()
            .map(|i| catalog::item_key(&run.action_name, i, &i.to_string()))
            .collect())
    }

    /// Stores one page with the run's next cursor (and its callback) in one transaction.
    async fn keep_page(
        &self,
        run: &RunRecord,
        leg: &Leg,
        page_no: u32,
        url: String,
        cursor: Option<String>,
        items: Items,
    ) -> Result<(), StoreError> {
        let callback = run.callback_url.clone().map(|u| {
            let body = callbacks::page_body(&run.uid, page_no, &leg.input_value, &items.values);
            (u, body)
        });
        let page = Arc::new(NewPage {
            page_no,
            url,
            texts: items.texts,
            keys: items.keys,
            content_hash: items.hash,
            next_url: cursor,
            callback,
            input: leg.input,
        });
        drop(items.values);
        let now = self.clock.now();
        persistently(|| self.store.store_page(&run.uid, page.clone(), now)).await
    }

    async fn finish(&self, uid: &str, end: End) -> Result<RunRecord, StoreError> {
        let run = self.get(uid).await?;
        let stored = run.pages > 0;
        match end {
            End::Done => {
                self.transition(uid, RunStatus::Succeeded, "pagination ended", None)
                    .await
            }
            End::MaxPages => {
                let e = LastError {
                    label: "MAX_PAGES".into(),
                    message: format!("stopped after max_pages ({}) pages", run.pages),
                };
                self.transition(uid, RunStatus::PartialSucceeded, "max_pages", Some(e))
                    .await
            }
            End::Stopped(reason) => {
                self.transition(uid, RunStatus::Stopped, &reason, None)
                    .await
            }
            End::Inputs(tally) => {
                let (to, reason) = tally.status();
                self.transition(uid, to, &reason, tally.error).await
            }
            End::Unreadable(why) => {
                warn!(error = %why, "inputs file unreadable");
                let e = LastError {
                    label: "INVALID_INPUTS_FILE".into(),
                    message: cap(&why, 2000),
                };
                self.transition(uid, RunStatus::Invalid, "inputs_file", Some(e))
                    .await
            }
            End::NoInputs(why) => {
                info!(why = %why, "nothing to do");
                let e = LastError {
                    label: "NO_INPUTS".into(),
                    message: why,
                };
                self.transition(uid, RunStatus::Invalid, "no_inputs", Some(e))
                    .await
            }
            End::Failed(f) => {
                let to = f.run_status(stored);
                warn!(status = %to, error = %f, "run failed");
                // The server chose these strings: stored capped.
                let e = LastError {
                    label: cap(&f.label(), 64),
                    message: cap(&f.to_string(), 2000),
                };
                if let Some(at) = self.resume_at(&f).await {
                    persistently(|| self.store.set_postponed(uid, Some(at))).await?;
                }
                self.transition(uid, to, &e.label.to_ascii_lowercase(), Some(e))
                    .await
            }
        }
    }

    /// When a blocked run may go on by itself: what the failure says (a quota's reset), or for
    /// a 402 the end of the billing period when `/quotas` told it (credits coming back earlier
    /// resume it sooner).
    async fn resume_at(&self, f: &ApiFailure) -> Option<chrono::DateTime<chrono::Utc>> {
        if let Some(at) = f.resume_at() {
            return Some(at);
        }
        if !matches!(f, ApiFailure::Http { status: 402, .. }) {
            return None;
        }
        let account = self.store.account().await.ok().flatten()?;
        account.period_end.filter(|end| *end > self.clock.now())
    }

    async fn get(&self, uid: &str) -> Result<RunRecord, StoreError> {
        persistently(|| self.store.existing_run(uid)).await
    }

    async fn transition(
        &self,
        uid: &str,
        to: RunStatus,
        reason: &str,
        error: Option<LastError>,
    ) -> Result<RunRecord, StoreError> {
        let now = self.clock.now();
        let run =
            persistently(|| self.store.transition(uid, to, reason, error.clone(), now)).await?;
        if to != RunStatus::Running {
            info!(status = %to, reason, "run status");
        }
        Ok(run)
    }
}

/// A page's items as values, as JSON text and by their keys, with the content hash of the
/// texts.
struct Items {
    values: Vec<serde_json::Value>,
    texts: Vec<String>,
    keys: Vec<u64>,
    hash: String,
}

impl Items {
    fn of(action: &str, values: Vec<serde_json::Value>, texts: Vec<String>, hash: String) -> Items {
        let keys = catalog::item_keys(action, &values, &texts);
        Items {
            values,
            texts,
            keys,
            hash,
        }
    }

    /// What of the page to store: all of it, or in a pass that started again (`known` holds
    /// what the run stored), the items not stored yet.
    fn unseen(self, known: Option<&mut HashSet<u64>>) -> Items {
        let Some(known) = known else {
            return self;
        };
        let fetched = self.values.len();
        let mut kept = Items {
            values: Vec::new(),
            texts: Vec::new(),
            keys: Vec::new(),
            hash: self.hash,
        };
        for ((v, t), k) in self.values.into_iter().zip(self.texts).zip(self.keys) {
            if known.insert(k) {
                kept.values.push(v);
                kept.texts.push(t);
                kept.keys.push(k);
            }
        }
        if kept.values.len() != fetched {
            kept.hash = store::hash_texts(&kept.texts);
        }
        kept
    }
}

/// A page being stored while the paging loop goes on.
type Storing<'a> = std::pin::Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// How the paging loop ended.
enum End {
    Done,
    MaxPages,
    Stopped(String),
    Failed(ApiFailure),
    /// Every input of a run over a list was tried: how they ended.
    Inputs(inputs::Tally),
    /// The run's inputs file vanished or no longer holds valid inputs: why.
    Unreadable(String),
    /// A chained run found nothing waiting from its source (another run took it first).
    NoInputs(String),
}

/// `f`, bounded by `limit` when there is one; `None` when the limit ran out.
async fn within<F: Future>(limit: Option<Duration>, f: F) -> Option<F::Output> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, f).await.ok(),
        None => Some(f.await),
    }
}

/// What one paging loop works through: the run's one input, or one input of its list, with
/// the body it sends, the input its callbacks name, and where its cursor is.
struct Leg {
    /// The input's place in the run's list; `None` for a run over one input.
    input: Option<u32>,
    /// The body sent by POST (cleaned as the action accepts it); `None` for a v1 GET.
    body: Option<serde_json::Value>,
    /// The input, as the page callbacks give it.
    input_value: serde_json::Value,
    /// The cursor after the last stored page of this leg.
    next: Option<String>,
    /// The run's last page number, shared by the inputs of a list paged at once; `None`: the
    /// leg numbers its pages on from the run's count.
    numbers: Option<Arc<std::sync::atomic::AtomicU32>>,
    /// True for an input of a list with no page stored yet.
    untouched: bool,
    /// Items stored so far: the run's, or the input's (the `total` its log lines give).
    items: u64,
}

impl Leg {
    /// The number of the leg's next page, its last being `last`: the next of the run's shared
    /// numbers when inputs are paged at once.
    fn number_after(&self, last: u32) -> u32 {
        match &self.numbers {
            Some(n) => n.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
            None => last + 1,
        }
    }

    /// A run over one input. A v4 live run POSTs its body (stored before the catalog was
    /// enforced: sent as the action accepts it); a v1 endpoint is a GET whose query is in the
    /// URL.
    fn whole(run: &RunRecord) -> Leg {
        Leg {
            input: None,
            body: (!catalog::v1::is_endpoint(&run.action_name))
                .then(|| catalog::clean_live_body(&run.action_name, &run.body)),
            input_value: run.body["input"].clone(),
            next: run.next_url.clone(),
            numbers: None,
            untouched: false,
            items: run.items,
        }
    }
}
