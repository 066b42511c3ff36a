//! `watchbell status`: one line per job, readable in 80 columns: enabled, runner, last run, next
//! tick (local time), remote schedule. Colours only on a terminal.

use std::collections::HashMap;
use std::io::IsTerminal;

use super::runs::read_db;
use super::{Cli, Outcome};
use crate::clock::Clock;
use crate::config::{Config, Runner};
use crate::status::RunStatus;

pub fn run(cli: &Cli) -> Outcome {
    let config = Config::load(&cli.config)?;
    let conn = read_db(cli)?;
    let now = Clock::System.now();
    let remote: HashMap<String, (String, Option<String>)> = match &conn {
        Some(db) => db
            .remote_statuses()?
            .into_iter()
            .map(|(j, u, s)| (j, (u, s)))
            .collect(),
        None => HashMap::new(),
    };
    let colour = std::io::stdout().is_terminal();
    out!(
        "{:<18} {:<3} {:<6} {:<24} {:<17} REMOTE",
        "JOB",
        "ON",
        "RUNNER",
        "LAST RUN",
        "NEXT TICK"
    );
    for job in &config.jobs {
        let last = match &conn {
            Some(db) => db.last_run(&job.name)?,
            None => None,
        };
        let last_text = last.as_ref().map_or_else(
            || "-".to_string(),
            |r| {
                // A job whose last run failed is marked, colour or not.
                let mark = if matches!(r.status, RunStatus::Failed | RunStatus::Invalid) {
                    "!"
                } else {
                    ""
                };
                format!(
                    "{mark}{} {} {}i",
                    short_status(r.status),
                    ago(now - r.created_at),
                    r.items
                )
            },
        );
        let last_text = match (&last, colour) {
            (Some(r), true) => paint(r.status, &format!("{last_text:<24}")),
            _ => format!("{last_text:<24}"),
        };
        let next = if job.runner == Runner::Remote {
            "remote".to_string()
        } else if !job.enabled {
            "disabled".to_string()
        } else {
            job.schedule.next_after(now).map_or_else(
                || "never".into(),
                |f| f.local.format("%a %d %H:%M %Z").to_string(),
            )
        };
        let remote_text = remote.get(&job.name).map_or_else(
            || "-".to_string(),
            |(uid, s)| {
                format!(
                    "{} {}",
                    s.as_deref().unwrap_or("?"),
                    &uid[..8.min(uid.len())]
                )
            },
        );
        out!(
            "{:<18} {:<3} {:<6} {} {:<17} {}",
            truncate(&job.name, 18),
            if job.enabled { "yes" } else { "no" },
            if job.runner == Runner::Local {
                "local"
            } else {
                "remote"
            },
            last_text,
            truncate(&next, 17),
            remote_text
        );
    }
    if let Some(c) = &conn {
        let (day, _) = crate::lanes::local_day(now, config.safety.tz);
        let lanes = c.lanes(&day, now)?;
        if !lanes.is_empty() {
            out!("");
            out!("{}", super::lanes::header(&day, &config.safety));
            for l in &lanes {
                out!("{}", super::lanes::line(l, &config.safety));
            }
        }
    }
    Ok(())
}

fn short_status(s: RunStatus) -> &'static str {
    match s {
        RunStatus::PartialSucceeded => "PARTIAL",
        other => other.as_str(),
    }
}

fn paint(s: RunStatus, text: &str) -> String {
    let code = match s {
        RunStatus::Succeeded => "32",
        RunStatus::Failed | RunStatus::Invalid => "31",
        _ => "33",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

fn ago(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}
