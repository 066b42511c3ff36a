//! `watchbell runs ...`: what happened, read from the database without disturbing the daemon.

use clap::Subcommand;
use rusqlite::Connection;

use super::{Cli, Failure, Outcome, database_path, optional_config};
use crate::status::RunStatus;
use crate::store::{self, RunFilter};

#[derive(Subcommand, Debug)]
pub enum RunsCommand {
    /// Runs, newest first.
    List {
        #[arg(long)]
        job: Option<String>,
        #[arg(long)]
        status: Option<RunStatus>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// One run with its transitions and pages.
    Show {
        uid: String,
        #[arg(long)]
        json: bool,
    },
    /// A run's results.
    Results {
        uid: String,
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
    },
    /// Continue a stopped, blocked, failed or partially succeeded run from its cursor.
    Resume { uid: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
}

/// Opens the database read-only; `None` when it does not exist yet (nothing has run).
pub fn read_db(cli: &Cli) -> Result<Option<Connection>, Failure> {
    let config = optional_config(cli)?;
    let path = database_path(cli, config.as_ref());
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(store::open_read_only(&path)?))
}

pub fn run(cli: &Cli, cmd: &RunsCommand) -> Outcome {
    match cmd {
        RunsCommand::List {
            job,
            status,
            limit,
            json,
        } => list(cli, job.clone(), *status, *limit, *json),
        RunsCommand::Results { uid, format } => results(cli, uid, *format),
        RunsCommand::Resume { .. } => unreachable!("handled by the trigger module"),
        RunsCommand::Show { uid, json } => show(cli, uid, *json),
    }
}

fn list(
    cli: &Cli,
    job: Option<String>,
    status: Option<RunStatus>,
    limit: u32,
    json: bool,
) -> Outcome {
    {
        {
            let filter = RunFilter {
                job,
                status,
                since: None,
                limit: Some(limit),
            };
            let runs = match read_db(cli)? {
                Some(conn) => store::list_runs(&conn, &filter)?,
                None => Vec::new(),
            };
            if json {
                for r in &runs {
                    println!("{}", r.to_json());
                }
            } else if runs.is_empty() {
                println!("no runs");
            } else {
                println!(
                    "{:<36}  {:<17}  {:<20}  {:<20}  {:>5}  {:>7}",
                    "UID", "STATUS", "JOB", "CREATED", "PAGES", "ITEMS"
                );
                for r in &runs {
                    println!(
                        "{:<36}  {:<17}  {:<20}  {:<20}  {:>5}  {:>7}",
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
    }
}

fn results(cli: &Cli, uid: &str, format: Format) -> Outcome {
    {
        {
            let conn =
                read_db(cli)?.ok_or_else(|| Failure::runtime(format!("run {uid} not found")))?;
            let run = store::get_run(&conn, uid)?
                .ok_or_else(|| Failure::runtime(format!("run {uid} not found")))?;
            let mut items = Vec::new();
            store::for_each_item(&conn, run.id, |v| {
                items.push(v);
                Ok(())
            })?;
            let mut out = std::io::stdout().lock();
            match format {
                Format::Jsonl => crate::export::jsonl(&mut out, &items),
                Format::Csv => crate::export::csv(&mut out, &items),
            }
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::BrokenPipe => Ok(()), // `| head` is a normal way to read
                _ => Err(Failure::runtime(e)),
            })
        }
    }
}

fn show(cli: &Cli, uid: &str, json: bool) -> Outcome {
    {
        {
            let conn =
                read_db(cli)?.ok_or_else(|| Failure::runtime(format!("run {uid} not found")))?;
            let run = store::get_run(&conn, uid)?
                .ok_or_else(|| Failure::runtime(format!("run {uid} not found")))?;
            let transitions = store::transitions(&conn, run.id)?;
            let pages = store::pages(&conn, run.id)?;
            if json {
                let mut j = run.to_json();
                j["transitions"] = serde_json::to_value(&transitions).unwrap_or_default();
                j["pages_detail"] = serde_json::to_value(&pages).unwrap_or_default();
                println!("{j}");
                return Ok(());
            }
            println!(
                "run {}  job {}  action {}",
                run.uid, run.job, run.action_name
            );
            println!(
                "status {}  pages {}  items {}  retries {}  rate-limit waits {}",
                run.status, run.pages, run.items, run.retry_count, run.rate_limit_waits
            );
            if let Some(e) = &run.last_error {
                println!("last error {}: {}", e.label, e.message);
            }
            println!("transitions:");
            for t in &transitions {
                println!(
                    "  {}  {:>17} -> {:<17} {}",
                    t.at,
                    t.from.as_deref().unwrap_or("-"),
                    t.to,
                    t.reason.as_deref().unwrap_or("")
                );
            }
            if !pages.is_empty() {
                println!("pages:");
                for p in &pages {
                    println!(
                        "  {:>4}  {:>5} items  {}  {}",
                        p.page, p.items, p.fetched_at, p.url
                    );
                }
            }
            Ok(())
        }
    }
}

pub fn ticks(cli: &Cli, job: Option<&str>, since: Option<&str>, json: bool) -> Outcome {
    let since = since
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.to_utc())
                .map_err(|e| {
                    Failure::usage(format!("--since {s:?}: not an RFC 3339 instant ({e})"))
                })
        })
        .transpose()?;
    let ticks = match read_db(cli)? {
        Some(conn) => store::list_ticks(&conn, job, since)?,
        None => Vec::new(),
    };
    if json {
        for t in &ticks {
            println!("{}", serde_json::to_string(t).unwrap_or_default());
        }
    } else if ticks.is_empty() {
        println!("no ticks");
    } else {
        println!(
            "{:<20}  {:<24}  {:<8}  {:<16}  RUN",
            "JOB", "SCHEDULED FOR", "OUTCOME", "REASON"
        );
        for t in &ticks {
            println!(
                "{:<20}  {:<24}  {:<8}  {:<16}  {}",
                t.job,
                t.scheduled_for,
                t.outcome,
                t.reason.as_deref().unwrap_or("-"),
                t.run_uid.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(())
}
