//! `watchbell runs ...`, `ticks` and `export`: what happened, read from the database without
//! disturbing the daemon (read-only, WAL).

use chrono::{DateTime, Utc};
use clap::Subcommand;

use super::{Cli, Failure, Outcome, database_path, optional_config};
use crate::status::RunStatus;
use crate::store::{self, RunFilter};

#[derive(Subcommand, Debug)]
pub enum RunsCommand {
    /// Runs, newest first.
    List {
        /// Only this job's runs.
        #[arg(long)]
        job: Option<String>,
        /// Only runs in this status.
        #[arg(long)]
        status: Option<RunStatus>,
        /// Runs created from this instant on (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        limit: u32,
        /// As JSON lines: one object per line, no line when nothing matched.
        #[arg(long)]
        json: bool,
    },
    /// One run with its transitions, pages and callbacks.
    Show {
        /// The run's uid, as `runs list` prints it.
        uid: String,
        /// As JSON lines: one object per line, no line when nothing matched.
        #[arg(long)]
        json: bool,
    },
    /// The inputs of a run over a list: outcome, pages, items, error.
    Inputs {
        /// The run's uid, as `runs list` prints it.
        uid: String,
        /// As JSON lines: one object per line, no line when nothing matched.
        #[arg(long)]
        json: bool,
    },
    /// A run's results.
    Results {
        /// The run's uid, as `runs list` prints it.
        uid: String,
        #[command(flatten)]
        items: ItemsArgs,
    },
    /// Continue a stopped, blocked, failed or partially succeeded run from its cursor.
    Resume {
        /// The run's uid, as `runs list` prints it.
        uid: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
}

/// Opens the database read-only. One that does not exist is an error (exit 1): an empty answer
/// would hide a typo in `--db` or a command run from the wrong directory.
///
/// The database is found as the daemon finds it: `--db PATH`, else the job file's `[store]`
/// (`PostgreSQL`), else `[daemon] database`.
pub fn read_db(cli: &Cli) -> Result<store::Reader, Failure> {
    let config = optional_config(cli)?;
    if cli.db.is_none()
        && let Some(source) = config.as_ref().and_then(|c| c.store.as_ref())
    {
        return super::cluster::read(source);
    }
    read_db_at(&database_path(cli, config.as_ref()))
}

/// [`read_db`] at a path already found.
pub fn read_db_at(path: &std::path::Path) -> Result<store::Reader, Failure> {
    if !path.exists() {
        return Err(no_database(path));
    }
    Ok(store::open_read_only(path)?)
}

/// An empty answer: `why` on stdout, or with `--json` (JSON lines: nothing matched, no line) on
/// stderr, for the person reading.
pub fn nothing(why: &str, json: bool) {
    if json {
        eprintln!("{why}");
    } else {
        out!("{why}");
    }
}

/// The error of a database path where there is none.
pub fn no_database(path: &std::path::Path) -> Failure {
    Failure::runtime(format!(
        "no database at {}: nothing has run with it (check --db, or the directory)",
        path.display()
    ))
}

fn parse_since(flag: &str, s: Option<&str>) -> Result<Option<DateTime<Utc>>, Failure> {
    s.map(|s| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.to_utc())
            .map_err(|e| Failure::usage(format!("{flag} {s:?}: not an RFC 3339 instant ({e})")))
    })
    .transpose()
}

pub fn run(cli: &Cli, cmd: &RunsCommand) -> Outcome {
    match cmd {
        RunsCommand::List {
            job,
            status,
            since,
            limit,
            json,
        } => {
            let filter = RunFilter {
                job: job.clone(),
                status: *status,
                since: parse_since("--since", since.as_deref())?,
                limit: Some(*limit),
            };
            list(cli, &filter, *json)
        }
        RunsCommand::Results { uid, items } => results(cli, uid, *items),
        RunsCommand::Resume { .. } => unreachable!("handled by the trigger module"),
        RunsCommand::Show { uid, json } => show(cli, uid, *json),
        RunsCommand::Inputs { uid, json } => inputs(cli, uid, *json),
    }
}

fn list(cli: &Cli, filter: &RunFilter, json: bool) -> Outcome {
    let runs = read_db(cli)?.list_runs(filter)?;
    if runs.is_empty() {
        nothing("no runs", json);
    } else if json {
        for r in &runs {
            out!("{}", r.to_json());
        }
    } else {
        out!(
            "{:<36}  {:<17}  {:<20}  {:<19}  {:>5}  {:>7}",
            "UID",
            "STATUS",
            "JOB",
            "CREATED (UTC)",
            "PAGES",
            "ITEMS"
        );
        for r in &runs {
            out!(
                "{:<36}  {:<17}  {:<20}  {:<19}  {:>5}  {:>7}",
                r.uid,
                r.status.as_str(),
                r.job,
                r.created_at.format("%Y-%m-%d %H:%M:%S"),
                r.pages,
                r.items
            );
        }
    }
    Ok(())
}

fn not_found(uid: &str) -> Failure {
    Failure::runtime(format!("run {uid} not found"))
}

fn show(cli: &Cli, uid: &str, json: bool) -> Outcome {
    let db = read_db(cli)?;
    let run = db.run(uid)?.ok_or_else(|| not_found(uid))?;
    let transitions = db.transitions(run.id)?;
    let pages = db.pages(run.id)?;
    let deliveries = db.deliveries_of(run.id)?;
    let vendor = db.async_of(uid)?;
    if json {
        let mut j = run.to_json();
        if let Some((st, batches)) = &vendor {
            j["async"] = serde_json::json!({
                "api_run_uid": st.api_uid, "closing": st.closing, "remote_status": st.remote_status,
                "batches_lost": st.lost, "batches": batches,
            });
        }
        j["transitions"] = serde_json::to_value(&transitions).unwrap_or_default();
        j["pages_detail"] = serde_json::to_value(&pages).unwrap_or_default();
        j["callbacks"] = deliveries_json(&deliveries);
        out!("{j}");
        return Ok(());
    }
    show_text(&db, &run, vendor.as_ref(), &transitions, &pages)?;
    if !deliveries.is_empty() {
        out!("deliveries (callbacks, notifications, pings):");
        for d in &deliveries {
            let http = d
                .last_http_status
                .map_or_else(|| "-".to_string(), |s| s.to_string());
            out!(
                "  {:>3}  {:<8}  {:<9}  HTTP {:<3}  attempts {}  {}  {}",
                d.seq,
                d.kind,
                d.state,
                http,
                d.attempts,
                redact(&d.url),
                d.last_error.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}

/// `runs show` for people: the run, its inputs and batches, its history and its pages.
fn show_text(
    db: &store::Reader,
    run: &store::RunRecord,
    vendor: Option<&(store::batches::AsyncState, Vec<store::batches::BatchRecord>)>,
    transitions: &[store::TransitionRecord],
    pages: &[store::PageRecord],
) -> Result<(), Failure> {
    out!(
        "run {}  job {}  action {}",
        run.uid,
        run.job,
        run.action_name
    );
    out!(
        "status {}  pages {}  items {} ({} new)  retries {}  rate-limit waits {}  waited for lanes {:.1}s",
        run.status,
        run.pages,
        run.items,
        db.new_items(run.id)?,
        run.retry_count,
        run.rate_limit_waits,
        run.lane_wait_ms as f64 / 1000.0
    );
    if let Some(t) = run.scheduled_for {
        out!("tick {}  trigger {}", t.to_rfc3339(), run.trigger);
    }
    if let Some(e) = &run.last_error {
        out!("last error {}: {}", e.label, e.message);
    }
    let for_credits = run.status == RunStatus::Blocked
        && run
            .last_error
            .as_ref()
            .is_some_and(store::LastError::waits_for_credits);
    match (run.postponed_until, for_credits) {
        (Some(p), true) => out!(
            "blocked for credits: the daemon resumes it when the account has credits again, or when the billing period ends ({})",
            p.to_rfc3339()
        ),
        (Some(p), false) => out!("blocked until {}", p.to_rfc3339()),
        (None, true) => {
            out!("blocked for credits: the daemon resumes it when the account has credits again");
        }
        (None, false) => {}
    }
    show_inputs(&db.inputs(run.id)?);
    if let Some((st, batches)) = vendor {
        show_batches(st, batches);
    }
    out!("transitions:");
    for t in transitions {
        out!(
            "  {}  {:>17} -> {:<17} {}",
            t.at,
            t.from.as_deref().unwrap_or("-"),
            t.to,
            t.reason.as_deref().unwrap_or("")
        );
    }
    if !pages.is_empty() {
        out!("pages:");
        for p in pages {
            out!(
                "  {:>4}  {:>5} items  {}  {}",
                p.page,
                p.items,
                p.fetched_at,
                p.url
            );
        }
    }
    Ok(())
}

fn deliveries_json(deliveries: &[store::Delivery]) -> serde_json::Value {
    deliveries
        .iter()
        .map(|d| {
            serde_json::json!({"seq": d.seq, "kind": d.kind, "url": redact(&d.url), "state": d.state, "attempts": d.attempts,
                "http_status": d.last_http_status, "error": d.last_error, "delivered_at": d.delivered_at})
        })
        .collect()
}

/// An async or received run: the vendor's run, and each batch its callbacks delivered.
fn show_batches(st: &store::batches::AsyncState, batches: &[store::batches::BatchRecord]) {
    let count = |how: &str| batches.iter().filter(|b| b.how == how).count();
    out!(
        "async: API run {}  batches received {}  replayed {}  late {}  lost {}",
        st.api_uid.as_deref().unwrap_or("unconfirmed"),
        count("received"),
        count("replayed"),
        count("late"),
        st.lost
    );
    for b in batches {
        out!(
            "  {:<40} {:<17} {:>5} items  {:<8} {}",
            b.batch_uid,
            b.status,
            b.items,
            b.how,
            b.at
        );
    }
}

/// A list's inputs in `runs show`: counted by outcome, and those not succeeded listed.
fn show_inputs(inputs: &[store::InputRecord]) {
    if inputs.is_empty() {
        return;
    }
    out!("inputs: {}", input_counts(inputs));
    for i in inputs
        .iter()
        .filter(|i| !i.outcome.is_final() || i.error.is_some())
    {
        let why = i
            .error
            .as_ref()
            .map_or_else(String::new, |e| format!("  {}: {}", e.label, e.message));
        out!("  input {:>4}  {:<10}{why}", i.index, i.outcome);
    }
}

/// `30 inputs: 28 succeeded, 1 refused, 1 unfinished`.
fn input_counts(inputs: &[store::InputRecord]) -> String {
    let mut counts: Vec<(store::InputOutcome, usize)> = Vec::new();
    for i in inputs {
        match counts.iter_mut().find(|(o, _)| *o == i.outcome) {
            Some((_, n)) => *n += 1,
            None => counts.push((i.outcome, 1)),
        }
    }
    counts.sort_by_key(|(o, _)| o.as_str());
    let parts: Vec<String> = counts.iter().map(|(o, n)| format!("{n} {o}")).collect();
    format!("{} inputs: {}", inputs.len(), parts.join(", "))
}

/// `watchbell runs inputs UID`: each input of a run over a list.
fn inputs(cli: &Cli, uid: &str, json: bool) -> Outcome {
    let db = read_db(cli)?;
    let run = db.run(uid)?.ok_or_else(|| not_found(uid))?;
    let inputs = db.inputs(run.id)?;
    if inputs.is_empty() {
        nothing(&format!("run {uid} is over one input, not a list"), json);
        return Ok(());
    }
    if json {
        for i in &inputs {
            out!("{}", serde_json::to_string(i).unwrap_or_default());
        }
        return Ok(());
    }
    out!("{}", input_counts(&inputs));
    out!(
        "{:>5}  {:<10}  {:>5}  {:>7}  INPUT / ERROR",
        "INPUT",
        "OUTCOME",
        "PAGES",
        "ITEMS"
    );
    for i in &inputs {
        let error = i
            .error
            .as_ref()
            .map_or_else(String::new, |e| format!("  {}: {}", e.label, e.message));
        out!(
            "{:>5}  {:<10}  {:>5}  {:>7}  {}{error}",
            i.index,
            i.outcome,
            i.pages,
            i.items,
            i.input
        );
    }
    Ok(())
}

/// A delivery URL as shown: userinfo and query string hidden (they may carry tokens).
fn redact(url: &str) -> String {
    reqwest::Url::parse(url).map_or_else(
        |_| "(unparsable URL)".into(),
        |u| crate::config::redacted(&u),
    )
}

/// How `runs results` and `export` choose and write items.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct ItemsArgs {
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// Only items no earlier run of the same job returned.
    #[arg(long)]
    pub new: bool,
    /// CSV: keep cells that start like a formula as they are (by default they get a leading ').
    #[arg(long)]
    pub raw: bool,
}

fn write_items(db: &store::Reader, q: &store::ItemQuery, args: ItemsArgs, origin: bool) -> Outcome {
    let layout = crate::export::Layout {
        csv: args.format == Format::Csv,
        origin,
        raw: args.raw,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    crate::export::quiet_pipe(crate::export::write(db, q, layout, &mut out))?;
    match std::io::Write::flush(&mut out) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::runtime(e)),
        _ => Ok(()),
    }
}

fn results(cli: &Cli, uid: &str, args: ItemsArgs) -> Outcome {
    let db = read_db(cli)?;
    let run = db.run(uid)?.ok_or_else(|| not_found(uid))?;
    let q = store::ItemQuery {
        run_id: Some(run.id),
        new_only: args.new,
        ..store::ItemQuery::default()
    };
    write_items(&db, &q, args, false)
}

/// `watchbell export`: items of many runs, each with `_run_uid` and `_job` added.
pub fn export(cli: &Cli, job: Option<&str>, since: Option<&str>, args: ItemsArgs) -> Outcome {
    let since = parse_since("--since", since)?;
    let db = read_db(cli)?;
    let q = store::ItemQuery {
        job: job.map(str::to_string),
        since,
        new_only: args.new,
        ..store::ItemQuery::default()
    };
    write_items(&db, &q, args, true)
}

pub fn ticks(cli: &Cli, job: Option<&str>, since: Option<&str>, json: bool) -> Outcome {
    let since = parse_since("--since", since)?;
    let ticks = read_db(cli)?.ticks(job, since)?;
    if ticks.is_empty() {
        nothing("no ticks", json);
    } else if json {
        for t in &ticks {
            out!("{}", serde_json::to_string(t).unwrap_or_default());
        }
    } else {
        out!(
            "{:<20}  {:<24}  {:<8}  {:<16}  RUN",
            "JOB",
            "SCHEDULED FOR",
            "OUTCOME",
            "REASON"
        );
        for t in &ticks {
            out!(
                "{:<20}  {:<24}  {:<8}  {:<16}  {}",
                t.job,
                t.scheduled_for,
                t.outcome,
                t.reason.map_or("-", |r| r.as_str()),
                t.run_uid.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(())
}
