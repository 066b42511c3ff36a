//! `watchbell next`: what the schedule will do, so a user can check an expression before trusting it.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{Cli, Failure, Outcome};
use crate::clock::Clock;
use crate::config::Config;
use crate::schedule::{CronExpr, Fire, Fold, Gap, Schedule};

#[derive(clap::Args, Debug)]
pub struct NextArgs {
    /// Only this job of the file.
    pub job: Option<String>,
    /// How many fire times.
    #[arg(short = 'n', default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub count: u32,
    /// Start after this instant (RFC 3339) instead of now.
    #[arg(long)]
    pub after: Option<String>,
    /// One JSON object per fire time.
    #[arg(long)]
    pub json: bool,
    /// An expression typed here instead of the job file.
    #[arg(long, conflicts_with = "job")]
    pub cron: Option<String>,
    /// The zone for --cron.
    #[arg(long, default_value = "UTC", requires = "cron")]
    pub timezone: String,
}

pub fn run(cli: &Cli, args: &NextArgs) -> Outcome {
    let after = match &args.after {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map_err(|e| Failure::usage(format!("--after {s:?}: not an RFC 3339 instant ({e})")))?
            .to_utc(),
        None => Clock::System.now(),
    };
    let schedules: Vec<(Option<String>, Schedule)> = if let Some(expr) = &args.cron {
        let cron =
            CronExpr::parse(expr).map_err(|e| Failure::usage(format!("--cron {expr:?}: {e}")))?;
        let tz: Tz = args.timezone.parse().map_err(|_| {
            Failure::usage(format!("--timezone {:?}: unknown IANA zone", args.timezone))
        })?;
        let s = Schedule::new(
            "",
            cron,
            tz,
            Gap::Shift,
            Fold::First,
            std::time::Duration::ZERO,
        );
        vec![(None, s)]
    } else {
        let config = Config::load(&cli.config)?;
        let jobs: Vec<_> = config
            .jobs
            .into_iter()
            .filter(|j| args.job.as_ref().is_none_or(|n| *n == j.name))
            .filter_map(|j| {
                if j.schedule.is_none() {
                    out!("{}: fires {}, no cron", j.name, j.fires());
                }
                Some((Some(j.name), j.schedule?))
            })
            .collect();
        if jobs.is_empty()
            && let Some(name) = &args.job
        {
            return Err(Failure::usage(format!(
                "no job named {name:?} in {}",
                cli.config.display()
            )));
        }
        jobs
    };
    for (name, schedule) in &schedules {
        let fires = schedule.upcoming(after, args.count as usize);
        if args.json {
            for f in &fires {
                out!("{}", fire_json(name.as_deref(), f));
            }
        } else {
            print_text(name.as_deref(), schedule, &fires);
        }
    }
    Ok(())
}

fn fire_json(job: Option<&str>, f: &Fire) -> serde_json::Value {
    serde_json::json!({
        "job": job,
        "at": f.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "local": f.local.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        "dst": f.dst.map(super::super::schedule::Dst::as_str),
    })
}

fn print_text(name: Option<&str>, s: &Schedule, fires: &[Fire]) {
    out!(
        "{}{} in {}: {}",
        name.map(|n| format!("{n}: ")).unwrap_or_default(),
        s.cron.as_str(),
        s.tz.name(),
        s.cron.describe()
    );
    if fires.is_empty() {
        out!("  (never fires again)");
    }
    for f in fires {
        let mark = match f.dst {
            Some(crate::schedule::Dst::Gap) => "  dst gap: shifted past the missing hour",
            Some(crate::schedule::Dst::Fold) => "  dst fold: this local time happens twice",
            None => "",
        };
        out!(
            "  {}  {}{mark}",
            f.local.format("%Y-%m-%d %H:%M:%S %Z"),
            f.at.with_timezone(&Utc).format("%Y-%m-%dT%H:%M:%SZ")
        );
    }
}
