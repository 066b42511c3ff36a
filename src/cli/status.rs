//! `watchbell status [JOB]`: one line per job, readable in 80 columns: a strip of its last runs
//! (one letter each, coloured on a terminal), the success rate and median duration over them,
//! the last run's age, the next tick (or the remote schedule). Account-wide facts (identity
//! lanes) go in a footer. `status JOB` expands one job: its next ticks, last runs, skipped ticks.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;

use super::runs::read_db_at;
use super::{Cli, Failure, Outcome, database_path};
use crate::clock::Clock;
use crate::config::{Config, Job, Runner, Safety};
use crate::status::RunStatus;
use crate::store::{Reader, RunFilter, RunRecord};

/// How many runs the strip shows at most.
const STRIP: usize = 20;
/// Columns of a line without the strip.
const FIXED: usize = 60;

pub fn run(cli: &Cli, job: Option<&str>) -> Outcome {
    // The job file when there is one; without it, the database alone (no next ticks).
    let config = if cli.config.exists() {
        Some(Config::load(&cli.config)?)
    } else {
        None
    };
    let path = database_path(cli, config.as_ref());
    // Jobs in a file that has not run yet still have next ticks to show.
    let store = config.as_ref().and_then(|c| c.store.as_ref());
    let db = if let Some(source) = store.filter(|_| cli.db.is_none()) {
        Some(super::cluster::read(source)?)
    } else if !path.exists() && config.is_some() && cli.db.is_none() {
        eprintln!("no database at {} yet: no runs", path.display());
        None
    } else {
        Some(read_db_at(&path)?)
    };
    if config.is_none() {
        eprintln!(
            "no job file at {}: next ticks need it (--config PATH)",
            cli.config.display()
        );
    }
    let now = Clock::System.now();
    if let Some(name) = job {
        let job = config.as_ref().and_then(|c| c.job(name));
        let known = db.as_ref().map(Reader::job_names).transpose()?;
        if job.is_none() && !known.is_some_and(|k| k.iter().any(|j| j == name)) {
            return Err(Failure::usage(format!(
                "no job named {name:?} in the file or the database"
            )));
        }
        return detail(db.as_ref(), name, job, now);
    }
    let jobs: Vec<(String, Option<&Job>)> = match (&config, &db) {
        (Some(c), _) => c.jobs.iter().map(|j| (j.name.clone(), Some(j))).collect(),
        (None, Some(db)) => db.job_names()?.into_iter().map(|n| (n, None)).collect(),
        (None, None) => Vec::new(),
    };
    table(db.as_ref(), &jobs, now)?;
    if let Some(db) = &db {
        let safety = config.map(|c| c.safety).unwrap_or_default();
        footer(db, &safety, now)?;
    }
    Ok(())
}

/// One line per job.
fn table(
    db: Option<&Reader>,
    jobs: &[(String, Option<&Job>)],
    now: chrono::DateTime<chrono::Utc>,
) -> Outcome {
    let tty = std::io::stdout().is_terminal();
    let remote: HashMap<String, (String, Option<String>)> = match db {
        Some(db) => db
            .remote_statuses()?
            .into_iter()
            .map(|(j, u, s)| (j, (u, s)))
            .collect(),
        None => HashMap::new(),
    };
    // Off a terminal the rule is 80 columns; on one, `COLUMNS` may widen the strip.
    let width = if tty {
        crate::logging::terminal_width()
    } else {
        80
    };
    let strip_width = width.saturating_sub(FIXED).clamp(4, STRIP);
    out!(
        "{:<16} {:<3} {:<strip_width$} {:>4} {:>6} {:<8} {}",
        "JOB",
        "ON",
        "RUNS",
        "OK%",
        "MEDIAN",
        "LAST",
        "NEXT TICK"
    );
    for (name, job) in jobs {
        let runs = match db {
            Some(db) => db.list_runs(&RunFilter {
                job: Some(name.clone()),
                limit: Some(STRIP as u32),
                ..RunFilter::default()
            })?,
            None => Vec::new(),
        };
        let finished: Vec<&RunRecord> = runs.iter().filter(|r| r.status.is_final()).collect();
        let rate = if finished.is_empty() {
            "-".to_string()
        } else {
            let ok = finished
                .iter()
                .filter(|r| r.status == RunStatus::Succeeded)
                .count();
            format!("{}%", ok * 100 / finished.len())
        };
        let last = runs
            .first()
            .map_or_else(|| "-".to_string(), |r| ago(now - r.created_at));
        let next = match job {
            None => "(no job file)".to_string(),
            Some(job) if job.runner == Runner::Remote => remote.get(name).map_or_else(
                || "remote".to_string(),
                |(_, s)| format!("remote {}", s.as_deref().unwrap_or("?")),
            ),
            Some(job) if !job.enabled => "disabled".to_string(),
            Some(job) => match &job.schedule {
                None => job.fires(),
                Some(s) => s.next_after(now).map_or_else(
                    || "never".into(),
                    |f| f.local.format("%a %d %H:%M %Z").to_string(),
                ),
            },
        };
        let on = match job {
            Some(job) if !job.enabled => "no",
            Some(_) => "yes",
            None => "?",
        };
        out!(
            "{:<16} {:<3} {} {:>4} {:>6} {:<8} {}",
            truncate(name, 16),
            on,
            strip(&runs, strip_width, tty),
            rate,
            median(&finished),
            last,
            truncate(&next, 17)
        );
    }
    Ok(())
}

/// Account-wide facts: credits and identity lanes.
fn footer(db: &Reader, safety: &Safety, now: chrono::DateTime<chrono::Utc>) -> Outcome {
    if let Some(c) = db.cluster()? {
        out!("");
        out!("{}", cluster_line(&c));
    }
    // An older database has no credits yet: the footer just leaves them out.
    if let Ok(Some(a)) = db.account() {
        out!("");
        out!("{}", credits_line(&a, now));
    }
    let (day, _) = crate::lanes::local_day(now, safety.tz);
    let lanes = db.lanes(&day, now)?;
    if !lanes.is_empty() {
        out!("");
        out!("{}", super::lanes::header(&day, safety));
        for l in &lanes {
            out!("{}", super::lanes::line(l, safety));
        }
    }
    Ok(())
}

/// `cluster: leader node-a (epoch 3, renewed 2s ago); nodes node-a (1s ago), node-b (0s ago)`.
fn cluster_line(c: &crate::store::ClusterView) -> String {
    let leader = match (&c.leader, c.live) {
        (Some(l), true) => format!(
            "leader {l} (epoch {}, renewed {:.0}s ago)",
            c.epoch, c.renewed_s_ago
        ),
        (Some(l), false) => format!(
            "no live leader ({l}, epoch {}, last renewed {:.0}s ago)",
            c.epoch, c.renewed_s_ago
        ),
        (None, _) => "no leader yet".to_string(),
    };
    let nodes: Vec<String> = c
        .nodes
        .iter()
        .map(|(n, ago)| format!("{n} ({ago:.0}s ago)"))
        .collect();
    format!("cluster: {leader}; nodes {}", nodes.join(", "))
}

/// `credits 999,880 of 1,000,000 (plan sandbox, period ends 2026-12-01 00:00 UTC, read 12s ago)`.
fn credits_line(a: &crate::store::account::Account, now: chrono::DateTime<chrono::Utc>) -> String {
    let ago = (now - a.read_at).num_seconds().max(0);
    let ago = if ago < 120 {
        format!("{ago}s")
    } else {
        format!("{}m", ago / 60)
    };
    let plan = a.plan.as_deref().unwrap_or("unknown");
    let period = a
        .period_end
        .map(|e| format!(", period ends {}", e.format("%Y-%m-%d %H:%M UTC")))
        .unwrap_or_default();
    format!(
        "credits {} of {} (plan {plan}{period}, read {ago} ago)",
        thousands(a.credits_left),
        thousands(a.credits_max)
    )
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// One job in full: the next five ticks, the last runs, the last skipped ticks and why.
fn detail(
    db: Option<&Reader>,
    name: &str,
    job: Option<&Job>,
    now: chrono::DateTime<chrono::Utc>,
) -> Outcome {
    let Some(job) = job else {
        out!("{name}");
        out!("next ticks: need the job file (--config PATH)");
        return match db {
            Some(db) => runs_and_skips(db, name),
            None => Ok(()),
        };
    };
    match &job.schedule {
        Some(s) => out!("{}  {}  {}  {}", job.name, s.cron, s.tz.name(), job.action),
        None => out!("{}  {}  {}", job.name, job.fires(), job.action),
    }
    let upcoming = job
        .schedule
        .as_ref()
        .map_or((chrono_tz::UTC, Vec::new()), |s| (s.tz, s.upcoming(now, 5)));
    if job.schedule.is_some() {
        out!("next ticks:");
    }
    let utc = upcoming.0 == chrono_tz::UTC || upcoming.0 == chrono_tz::Etc::UTC;
    for f in upcoming.1 {
        let local = f.local.format("%a %Y-%m-%d %H:%M:%S %Z");
        if utc {
            out!("  {local}");
        } else {
            out!("  {local}  ({} UTC)", f.at.format("%H:%M:%S"));
        }
    }
    if let Some(db) = db {
        return runs_and_skips(db, name);
    }
    out!("no runs yet");
    Ok(())
}

/// A job's last runs and skipped ticks.
fn runs_and_skips(db: &Reader, name: &str) -> Outcome {
    out!("last runs:");
    let runs = db.list_runs(&RunFilter {
        job: Some(name.to_string()),
        limit: Some(10),
        ..RunFilter::default()
    })?;
    for r in &runs {
        let took = r.started_at.zip(r.finished_at).map_or_else(
            || "-".to_string(),
            |(s, f)| secs((f - s).num_milliseconds()),
        );
        out!(
            "  {}  {:<17} {:>4}p {:>6}i {:>7}  {}{}",
            r.created_at.format("%Y-%m-%d %H:%M:%S"),
            r.status.as_str(),
            r.pages,
            r.items,
            took,
            r.uid,
            r.last_error
                .as_ref()
                .map_or_else(String::new, |e| format!("  {}", e.label))
        );
    }
    let skipped: Vec<_> = db
        .ticks(Some(name), None)?
        .into_iter()
        .filter(|t| t.outcome == "skipped")
        .collect();
    out!("skipped ticks: {}", skipped.len());
    for t in skipped.iter().rev().take(10) {
        out!(
            "  {}  {}",
            t.scheduled_for,
            t.reason.map_or("-", |r| r.as_str())
        );
    }
    Ok(())
}

/// The last runs as letters, oldest to newest (S succeeded, P partial, F failed, I invalid,
/// B blocked, X stopped, . not finished), coloured on a terminal.
fn strip(runs: &[RunRecord], width: usize, colour: bool) -> String {
    let mut out = String::new();
    let shown: Vec<&RunRecord> = runs.iter().take(width).collect();
    for r in shown.iter().rev() {
        let (letter, code) = match r.status {
            RunStatus::Succeeded => ('S', "32"),
            RunStatus::PartialSucceeded => ('P', "33"),
            RunStatus::Failed => ('F', "31"),
            RunStatus::Invalid => ('I', "31"),
            RunStatus::Blocked => ('B', "33"),
            RunStatus::Stopped => ('X', "33"),
            _ => ('.', "36"),
        };
        if colour {
            let _ = write!(out, "\x1b[{code}m{letter}\x1b[0m");
        } else {
            out.push(letter);
        }
    }
    let pad = width.saturating_sub(shown.len());
    out.push_str(&" ".repeat(pad));
    out
}

/// The median duration of finished runs that started.
fn median(runs: &[&RunRecord]) -> String {
    let mut ms: Vec<i64> = runs
        .iter()
        .filter_map(|r| Some((r.finished_at? - r.started_at?).num_milliseconds()))
        .collect();
    if ms.is_empty() {
        return "-".into();
    }
    ms.sort_unstable();
    secs(ms[ms.len() / 2])
}

fn secs(ms: i64) -> String {
    match ms {
        ..=9_999 => format!("{:.1}s", ms as f64 / 1000.0),
        10_000..=5_999_999 => format!("{}s", ms / 1000),
        _ => format!("{}m", ms / 60_000),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_read_with_thousands_separators_and_their_age() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(-4_500), "-4,500");
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-29T12:00:00Z")
            .unwrap()
            .to_utc();
        let a = crate::store::account::Account {
            credits_left: 999_880,
            credits_max: 1_000_000,
            credits_used: 120,
            plan: Some("sandbox".into()),
            read_at: now - chrono::Duration::seconds(12),
            period_end: None,
        };
        assert_eq!(
            credits_line(&a, now),
            "credits 999,880 of 1,000,000 (plan sandbox, read 12s ago)"
        );
        let ends = crate::store::account::Account {
            period_end: chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
                .ok()
                .map(|t| t.to_utc()),
            ..a
        };
        assert_eq!(
            credits_line(&ends, now),
            "credits 999,880 of 1,000,000 (plan sandbox, period ends 2026-12-01 00:00 UTC, read 12s ago)"
        );
    }
}
