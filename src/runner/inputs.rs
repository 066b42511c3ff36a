//! A run over a list of inputs: live mode takes one input per call, so the run pages one input
//! after another, each with its own cursor, and ends with what became of each (PRODUCT.md,
//! "Input lists and chained jobs"). The inputs are stored with the run in a transaction of
//! their own before the first request; a finished input is never called again in the run.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use serde_json::Value;
use tracing::{info, warn};

use super::{End, Leg, Limits, Runner, Stop};
use crate::api::{ApiFailure, cap};
use crate::catalog;
use crate::catalog::Count;
use crate::lanes::RunGate;
use crate::status::RunStatus;
use crate::store::{
    self, InputOutcome, InputRecord, LastError, RunRecord, SentMark, SentState, StoreError,
    persistently,
};

/// True when the run's body carries a list of inputs, an inputs file, or `inputs_from`.
pub(super) fn is_list(run: &RunRecord) -> bool {
    run.body.get("inputs").is_some_and(Value::is_array)
        || run.body.get("inputs_file").is_some_and(Value::is_string)
        || is_chained(run)
}

/// True when the run's inputs are its source job's new items (`inputs_from`).
pub(super) fn is_chained(run: &RunRecord) -> bool {
    run.body.get("inputs_from").is_some_and(Value::is_object)
}

/// Inputs stored per transaction when a run reads its inputs file.
const CHUNK: usize = 1000;

/// Inputs read from the store at a time while paging them.
const BATCH: u32 = 256;

/// How the inputs of a run ended, and the run's status from them.
#[derive(Debug, Default)]
pub(super) struct Tally {
    total: usize,
    succeeded: usize,
    refused: usize,
    failed: usize,
    pub(super) unfinished: usize,
    max_pages: bool,
    /// The error the run shows: the first failure left to retry, else the first refusal, else
    /// `max_pages`.
    pub(super) error: Option<LastError>,
    refusal: Option<LastError>,
}

impl Tally {
    #[cfg(test)]
    fn of(inputs: &[InputRecord]) -> Tally {
        let mut t = Tally::default();
        for i in inputs {
            t.add(i);
        }
        t.done()
    }

    fn add(&mut self, i: &InputRecord) {
        self.total += 1;
        match i.outcome {
            InputOutcome::Succeeded | InputOutcome::AlreadySent => self.succeeded += 1,
            InputOutcome::Refused => self.refused += 1,
            InputOutcome::Failed | InputOutcome::OutcomeUnknown | InputOutcome::Released => {
                self.failed += 1;
            }
            InputOutcome::Pending | InputOutcome::Unfinished => self.unfinished += 1,
        }
        let Some(e) = &i.error else { return };
        match i.outcome {
            InputOutcome::Succeeded => self.max_pages = true,
            InputOutcome::Refused => {
                self.refusal.get_or_insert_with(|| e.clone());
            }
            _ => {
                self.error.get_or_insert_with(|| e.clone());
            }
        }
    }

    /// Every input added: the run's error chosen.
    fn done(mut self) -> Tally {
        if self.max_pages && self.refusal.is_none() && self.error.is_none() {
            self.error = Some(max_pages_error());
        }
        self.error = self.error.take().or(self.refusal.take());
        self
    }

    /// `SUCCEEDED` when every input succeeded, `INVALID` when every one was refused, `FAILED`
    /// when none succeeded, else `PARTIAL_SUCCEEDED`; the reason counts the refused and the
    /// failed.
    pub(super) fn status(&self) -> (RunStatus, String) {
        let n = self.total;
        let failed = self.failed + self.unfinished;
        if self.succeeded == n {
            return if self.max_pages {
                (RunStatus::PartialSucceeded, "max_pages".into())
            } else {
                (RunStatus::Succeeded, "every input ended".into())
            };
        }
        if self.refused == n {
            return (RunStatus::Invalid, format!("inputs_refused {n}/{n}"));
        }
        let mut why = Vec::new();
        if self.refused > 0 {
            why.push(format!("inputs_refused {}/{n}", self.refused));
        }
        if failed > 0 {
            why.push(format!("inputs_failed {failed}/{n}"));
        }
        let to = if self.succeeded == 0 {
            RunStatus::Failed
        } else {
            RunStatus::PartialSucceeded
        };
        (to, why.join(", "))
    }
}

fn max_pages_error() -> LastError {
    LastError {
        label: "MAX_PAGES".into(),
        message: "an input stopped after max_pages pages".into(),
    }
}

fn error_of(f: &ApiFailure) -> LastError {
    // The server chose these strings: stored capped.
    LastError {
        label: cap(&f.label(), 64),
        message: cap(&f.to_string(), 2000),
    }
}

/// What became of an input whose paging ended with `end`, and the end of the whole run when
/// the input's failure is the account's, not its own.
fn outcome_of(end: End, through_identity: bool) -> (InputOutcome, Option<LastError>, Option<End>) {
    match end {
        End::Done => (InputOutcome::Succeeded, None, None),
        End::MaxPages => (InputOutcome::Succeeded, Some(max_pages_error()), None),
        End::Stopped(reason) => (InputOutcome::Unfinished, None, Some(End::Stopped(reason))),
        End::Failed(f) => {
            let e = Some(error_of(&f));
            let refused = f.run_status(false) == RunStatus::Invalid
                || matches!(f, ApiFailure::Http { status: 404, .. });
            let account = matches!(f.run_status(false), RunStatus::Blocked | RunStatus::Stopped)
                || (through_identity && f.identity_unusable());
            if refused {
                (InputOutcome::Refused, e, None)
            } else if account {
                // The next input would meet the same wall: the run ends as for one input.
                (InputOutcome::Unfinished, e, Some(End::Failed(f)))
            } else if matches!(f, ApiFailure::Http { status: 424, .. }) {
                (InputOutcome::Failed, e, None)
            } else {
                (InputOutcome::Unfinished, e, None)
            }
        }
        End::Inputs(_) | End::Unreadable(_) | End::NoInputs(_) => {
            unreachable!("an input is paged by page_loop")
        }
    }
}

impl Runner {
    /// Stores the run's inputs (once: a second call adds nothing): its list, or its inputs
    /// file read again now, a chunk at a time. `Ok(Err(why))`: the file has vanished or no
    /// longer holds valid inputs, and the run is invalid.
    pub(super) async fn store_inputs(
        &self,
        run: &RunRecord,
    ) -> Result<Result<(), String>, StoreError> {
        if let Some(list) = run.body["inputs"].as_array() {
            let list: Vec<String> = list.iter().map(ToString::to_string).collect();
            persistently(|| self.store.add_inputs(run.id, 0, list.clone())).await?;
            return Ok(Ok(()));
        }
        if is_chained(run) {
            return self.take_chain(run).await;
        }
        let Some(path) = run.body["inputs_file"].as_str() else {
            return Ok(Ok(()));
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<String>>(2);
        let reading = {
            let path = std::path::PathBuf::from(path);
            let action = run.action_name.clone();
            tokio::task::spawn_blocking(move || read_chunks(&path, &action, &tx))
        };
        let mut start = 0u32;
        while let Some(chunk) = rx.recv().await {
            let n = chunk.len() as u32;
            persistently(|| self.store.add_inputs(run.id, start, chunk.clone())).await?;
            start += n;
        }
        match reading.await {
            Ok(Ok(())) => Ok(Ok(())),
            Ok(Err(why)) => Ok(Err(format!("inputs_file {path}: {why}"))),
            Err(e) => Ok(Err(format!("inputs_file {path}: {e}"))),
        }
    }

    /// Holds what waits for the run's job from its source and stores it as the run's inputs,
    /// each item mapped and held to the action's schema (one that breaks it is refused, with no
    /// request). `Ok(Err(why))`: nothing was waiting.
    async fn take_chain(&self, run: &RunRecord) -> Result<Result<(), String>, StoreError> {
        let from: crate::config::InputsFrom =
            match serde_json::from_value(run.body["inputs_from"].clone()) {
                Ok(f) => f,
                Err(e) => return Ok(Err(format!("inputs_from: {e}"))),
            };
        let action = run.action_name.clone();
        let src = from.job.clone();
        let map: std::sync::Arc<store::MapItem> = std::sync::Arc::new(move |text: &str| {
            let item: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
            let input = from.input_of(&item)?;
            if let Some(act) = catalog::v4().action(&action)
                && let Some((key, why)) = crate::config::input_problems(act, &input)
                    .into_iter()
                    .next()
            {
                let at = key.map(|k| format!("{k}: ")).unwrap_or_default();
                return Err(format!("mapped input {at}{why}"));
            }
            Ok(Value::Object(input).to_string())
        });
        let n = persistently(|| self.store.take_chain(run.id, &run.job, map.clone())).await?;
        if n == 0 {
            return Ok(Err(format!("nothing waiting from {src}")));
        }
        info!(inputs = n, src = %src, "inputs taken from the source job");
        Ok(Ok(()))
    }

    /// Pages each input not yet finished, in order, each from its own cursor and each within
    /// `run_timeout`; stops early only for what stops the whole run (a stop, the account).
    pub(super) async fn list_loop(
        &self,
        run: &RunRecord,
        limits: &Limits,
        stop: &Stop,
        gate: &RunGate,
    ) -> Result<End, StoreError> {
        let through_identity = catalog::v4()
            .action(&run.action_name)
            .and_then(|a| a.modes.live.as_ref())
            .is_some_and(|m| m.takes("identity_mode") || m.takes("identity_ids"));
        let outreach = Count::of(&run.action_name) == Count::Outreach;
        // Inputs paged at once share the run's page numbers, from the last one stored.
        let last_page = persistently(|| self.store.last_page(run.id)).await?;
        let list = List {
            run,
            limits,
            stop,
            gate,
            through_identity,
            outreach,
            numbers: Arc::new(AtomicU32::new(last_page)),
            // Through an identity, one request at a time is the lane's rule anyway; an
            // outreach input's record needs its request alone at the gate.
            at_once: if through_identity || outreach {
                1
            } else {
                limits.input_concurrency.max(1) as usize
            },
        };
        // A batch of inputs at a time: a list of 100,000 is never held whole.
        let mut batches = Batches::of(run);
        while let Some(batch) = batches.next(self).await? {
            if let Some(end) = self.page_inputs(&list, &batch).await? {
                return Ok(end);
            }
        }
        let mut tally = Tally::default();
        let mut batches = Batches::of(run);
        while let Some(batch) = batches.next(self).await? {
            for i in &batch {
                tally.add(i);
            }
        }
        if tally.total == 0 {
            return Ok(End::Unreadable("the run has no inputs stored".into()));
        }
        Ok(End::Inputs(tally.done()))
    }

    /// Pages the unfinished inputs of `batch`, `at_once` at a time; `Some` when the whole run
    /// ends on one of them (inputs in flight then are dropped where they are: each page is
    /// stored with its cursor, so they resume there).
    async fn page_inputs(
        &self,
        list: &List<'_>,
        batch: &[InputRecord],
    ) -> Result<Option<End>, StoreError> {
        use futures_util::stream::{FuturesUnordered, StreamExt};
        let mut running = FuturesUnordered::new();
        let mut next = 0;
        loop {
            while running.len() < list.at_once && next < batch.len() {
                let input = &batch[next];
                next += 1;
                if !input.outcome.is_final() {
                    running.push(self.one_input(list, input));
                }
            }
            let Some(end) = running.next().await else {
                return Ok(None);
            };
            if let Some(end) = end? {
                return Ok(Some(end));
            }
        }
    }

    /// Pages one input of the list and records how it ended; `Some` when the whole run ends on
    /// it.
    async fn one_input(
        &self,
        list: &List<'_>,
        input: &InputRecord,
    ) -> Result<Option<End>, StoreError> {
        let (run, stop, gate) = (list.run, list.stop, list.gate);
        if stop.is_stopped() {
            return Ok(Some(End::Stopped(stop.reason().to_string())));
        }
        let mark = list.outreach.then(|| SentMark {
            job: run.job.clone(),
            input: store::sent_key(&input.input),
            run_id: run.id,
            index: input.index,
        });
        if let Some(mark) = &mark
            && self.sent_before(mark).await?
        {
            return Ok(None);
        }
        gate.send_as(mark.clone());
        let (end, answered) = self.page_input(list, input).await?;
        gate.send_as(None);
        let (outcome, error, run_end) = if let Some(end) = end {
            outcome_of(end, list.through_identity)
        } else {
            let e = LastError {
                label: "RUN_TIMEOUT".into(),
                message: format!("input {} did not finish within run_timeout", input.index),
            };
            (InputOutcome::Unfinished, Some(e), None)
        };
        let recorded = outcome == InputOutcome::Succeeded && error.is_none();
        let outcome = if let Some(mark) = mark {
            persistently(|| {
                self.store
                    .settle_sent(mark.clone(), outcome, error.clone(), answered)
            })
            .await?
        } else if recorded {
            outcome // with its last page
        } else {
            persistently(|| {
                self.store
                    .set_input_outcome(run.id, input.index, outcome, error.clone())
            })
            .await?;
            outcome
        };
        if outcome != InputOutcome::Succeeded || error.is_some() {
            warn!(input = input.index, outcome = %outcome, error = ?error.as_ref().map(|e| &e.label), "input ended");
        } else {
            info!(input = input.index, "input ended");
        }
        Ok(run_end)
    }

    /// Pages one input within `run_timeout`: its end (`None`: out of time; resumed from its
    /// cursor by `retry` or `runs resume`), and whether the server answered it with a refusal
    /// (a 4xx: nothing was acted on).
    async fn page_input(
        &self,
        list: &List<'_>,
        input: &InputRecord,
    ) -> Result<(Option<End>, bool), StoreError> {
        let (run, limits) = (list.run, list.limits);
        let leg = Leg::input(run, input, list.numbers.clone());
        let paging = self.page_loop(run, &leg, limits, list.stop, list.gate);
        let Ok(end) = tokio::time::timeout(limits.run_timeout, paging).await else {
            return Ok((None, false));
        };
        let end = end?;
        let answered = matches!(&end, End::Failed(ApiFailure::Http { status, .. }) if (400..500).contains(status))
            || matches!(&end, End::Failed(ApiFailure::RateLimited { .. }));
        Ok((Some(end), answered))
    }

    /// True when the job's record says `mark`'s input went out before: the input is ended
    /// without a request, `already_sent`, or `outcome_unknown` when this run's own request
    /// was in flight when its process died.
    async fn sent_before(&self, mark: &SentMark) -> Result<bool, StoreError> {
        let (job, key) = (mark.job.clone(), mark.input.clone());
        let Some(row) = persistently(|| self.store.sent(&job, &key)).await? else {
            return Ok(false);
        };
        if row.run_id == mark.run_id && row.index == mark.index && row.state == SentState::InFlight
        {
            let e = LastError {
                label: "OUTCOME_UNKNOWN".into(),
                message: "its request was in flight when the run's process ended; not sent again"
                    .into(),
            };
            warn!(
                input = mark.index,
                "outreach input in flight at a crash: outcome unknown, not sent again"
            );
            let unknown = InputOutcome::OutcomeUnknown;
            persistently(|| {
                self.store
                    .settle_sent(mark.clone(), unknown, Some(e.clone()), false)
            })
            .await?;
        } else {
            info!(
                input = mark.index,
                first_run = row.run_id,
                state = row.state.as_str(),
                "outreach input sent before: not sent again"
            );
            persistently(|| {
                self.store.set_input_outcome(
                    mark.run_id,
                    mark.index,
                    InputOutcome::AlreadySent,
                    None,
                )
            })
            .await?;
        }
        Ok(true)
    }
}

/// What paging a run's list needs, shared by its inputs in flight.
struct List<'a> {
    run: &'a RunRecord,
    limits: &'a Limits,
    stop: &'a Stop,
    gate: &'a RunGate,
    through_identity: bool,
    outreach: bool,
    /// The run's last page number.
    numbers: Arc<AtomicU32>,
    /// Inputs paged at once.
    at_once: usize,
}

/// A run's inputs, [`BATCH`] at a time, in order.
struct Batches {
    run_id: i64,
    from: u32,
}

impl Batches {
    fn of(run: &RunRecord) -> Batches {
        Batches {
            run_id: run.id,
            from: 0,
        }
    }

    /// The next batch; `None` after the last.
    async fn next(&mut self, runner: &Runner) -> Result<Option<Vec<InputRecord>>, StoreError> {
        let (id, from) = (self.run_id, self.from);
        let batch = persistently(|| runner.store.inputs_from(id, from, BATCH)).await?;
        let Some(last) = batch.last() else {
            return Ok(None);
        };
        self.from = last.index + 1;
        Ok(Some(batch))
    }
}

/// Reads the inputs file at `path` for a run of `action`, each row held to the action's
/// schema, and sends its inputs in chunks; the first problem ends it as the reason.
fn read_chunks(
    path: &std::path::Path,
    action: &str,
    tx: &tokio::sync::mpsc::Sender<Vec<String>>,
) -> Result<(), String> {
    let act = catalog::v4().action(action);
    let takes = |k: &str| act.is_none_or(|a| a.input_property(k).is_some());
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut problem = None;
    let read = crate::config::inputs_file::read(path, &takes, &mut |row| {
        let row = match row {
            Ok(row) => row,
            Err(p) => {
                problem = Some(p.to_string());
                return false;
            }
        };
        if let Some((key, why)) = act.and_then(|a| {
            crate::config::input_problems(a, &row.input)
                .into_iter()
                .next()
        }) {
            let col = key.map_or(1, |k| row.column(&k));
            problem = Some(format!("{}:{col}: {why}", row.row));
            return false;
        }
        chunk.push(Value::Object(row.input).to_string());
        if chunk.len() == CHUNK {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
            return tx.blocking_send(full).is_ok();
        }
        true
    });
    let rows = read.map_err(|p| p.to_string())?;
    if let Some(p) = problem {
        return Err(p);
    }
    if rows == 0 {
        return Err("no inputs".into());
    }
    if !chunk.is_empty() {
        let _ = tx.blocking_send(chunk);
    }
    Ok(())
}

impl Leg {
    /// One input of a run over a list: the run's body with this input in place of the list.
    fn input(run: &RunRecord, input: &InputRecord, numbers: Arc<AtomicU32>) -> Leg {
        // The rest of the body, without copying the list for every input.
        let mut body: serde_json::Map<String, Value> = run
            .body
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| !matches!(k.as_str(), "inputs" | "inputs_file"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        body.insert("input".into(), input.input.clone());
        let body = Value::Object(body);
        Leg {
            input: Some(input.index),
            body: Some(catalog::clean_live_body(&run.action_name, &body)),
            input_value: input.input.clone(),
            next: input.next_url.clone(),
            numbers: Some(numbers),
            untouched: input.pages == 0,
            items: input.items,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(outcome: InputOutcome, label: Option<&str>) -> InputRecord {
        InputRecord {
            index: 0,
            input: Value::Null,
            outcome,
            next_url: None,
            pages: 0,
            items: 0,
            error: label.map(|l| LastError {
                label: l.into(),
                message: String::new(),
            }),
        }
    }

    fn status(outcomes: &[(InputOutcome, Option<&str>)]) -> (RunStatus, String) {
        let inputs: Vec<InputRecord> = outcomes.iter().map(|(o, l)| input(*o, *l)).collect();
        Tally::of(&inputs).status()
    }

    #[test]
    fn a_lists_status_follows_its_inputs() {
        use InputOutcome::{Failed, Refused, Succeeded, Unfinished};
        let ok = (Succeeded, None);
        assert_eq!(
            status(&[ok, ok]),
            (RunStatus::Succeeded, "every input ended".into())
        );
        assert_eq!(
            status(&[ok, (Refused, Some("INVALID_INPUT"))]),
            (RunStatus::PartialSucceeded, "inputs_refused 1/2".into())
        );
        assert_eq!(
            status(&[
                (Refused, Some("INVALID_INPUT")),
                (Refused, Some("HTTP_404"))
            ]),
            (RunStatus::Invalid, "inputs_refused 2/2".into())
        );
        assert_eq!(
            status(&[
                (Refused, Some("INVALID_INPUT")),
                (Unfinished, Some("HTTP_503"))
            ]),
            (
                RunStatus::Failed,
                "inputs_refused 1/2, inputs_failed 1/2".into()
            )
        );
        assert_eq!(
            status(&[
                ok,
                (Failed, Some("HTTP_424")),
                (Unfinished, Some("HTTP_503"))
            ]),
            (RunStatus::PartialSucceeded, "inputs_failed 2/3".into())
        );
        assert_eq!(
            status(&[ok, (Succeeded, Some("MAX_PAGES"))]),
            (RunStatus::PartialSucceeded, "max_pages".into())
        );
    }

    #[test]
    fn the_runs_error_is_the_first_failure_left_to_retry() {
        use InputOutcome::{Refused, Succeeded, Unfinished};
        let t = Tally::of(&[
            input(Refused, Some("INVALID_INPUT")),
            input(Unfinished, Some("HTTP_503")),
            input(Succeeded, None),
        ]);
        assert_eq!(t.error.unwrap().label, "HTTP_503");
        assert_eq!(t.unfinished, 1);
        let refused = Tally::of(&[
            input(Refused, Some("INVALID_INPUT")),
            input(Succeeded, None),
        ]);
        assert_eq!(refused.error.unwrap().label, "INVALID_INPUT");
        assert_eq!(refused.unfinished, 0);
    }
}
