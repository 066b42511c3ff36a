//! `watchbell backfill JOB --from T --to T [--yes]`: fills in the past. Each nominal tick of the
//! job in the half-open range that has no run (no tick row, or one skipped while the daemon was
//! down, outside the catch-up window, or for overlap) is fired in order, in this process, through
//! the same lifecycle, pacer, lanes and lease as any run. Running it twice fires nothing the
//! second time: the tick rows say fired.

use chrono::{DateTime, Utc};

use super::trigger::{hold_lease, runner_for, runtime};
use super::{Cli, Failure, Outcome, database_to_write};
use crate::clock::Clock;
use crate::config::{Config, Runner as RunnerKind};
use crate::runner::{Limits, Stop};
use crate::status::RunStatus;
use crate::store::Trigger;

/// Past this many ticks, `--yes` is needed (a wrong range could mean thousands of runs).
const CONFIRM_OVER: usize = 100;

#[derive(clap::Args, Debug)]
pub struct BackfillArgs {
    /// The job, as named in the job file.
    pub job: String,
    /// The first instant of the range (RFC 3339), included.
    #[arg(long)]
    pub from: String,
    /// The end of the range (RFC 3339), excluded; not in the future.
    #[arg(long)]
    pub to: String,
    /// Go ahead with more than 100 ticks.
    #[arg(long)]
    pub yes: bool,
}

fn instant(flag: &str, s: &str) -> Result<DateTime<Utc>, Failure> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc())
        .map_err(|e| Failure::usage(format!("{flag} {s:?}: not an RFC 3339 instant ({e})")))
}

pub fn run(cli: &Cli, args: &BackfillArgs) -> Outcome {
    let config = Config::load(&cli.config)?;
    let job = config
        .job(&args.job)
        .ok_or_else(|| {
            Failure::usage(format!(
                "no job named {:?} in {}",
                args.job,
                cli.config.display()
            ))
        })?
        .clone();
    if job.runner == RunnerKind::Remote {
        return Err(Failure::usage(format!(
            "{} has runner = \"remote\": its runs happen in Captain Data's scheduler, not here",
            job.name
        )));
    }
    let (from, to) = (instant("--from", &args.from)?, instant("--to", &args.to)?);
    let now = Clock::System.now();
    if to > now {
        return Err(Failure::usage(format!(
            "--to {} is in the future; backfill fills in the past (the daemon fires what comes)",
            args.to
        )));
    }
    if from >= to {
        return Err(Failure::usage("--from must come before --to".to_string()));
    }
    let Some(schedule) = &job.schedule else {
        return Err(Failure::usage(format!(
            "{} has no cron: it fires {}, and has no past ticks to fill",
            job.name,
            job.fires()
        )));
    };
    let mut ticks = Vec::new();
    let mut at = from - chrono::Duration::milliseconds(1);
    while let Some(fire) = schedule.next_after(at).filter(|f| f.at < to) {
        ticks.push(fire.at);
        at = fire.at;
        if ticks.len() > 100_000 {
            return Err(Failure::usage(
                "more than 100000 ticks in that range".to_string(),
            ));
        }
    }
    if ticks.len() > CONFIRM_OVER && !args.yes {
        return Err(Failure::usage(format!(
            "{} ticks of {} in that range: pass --yes to fire them all",
            ticks.len(),
            job.name
        )));
    }
    let db = database_to_write(cli, &config, "backfill")?;
    let runner = runner_for(&config, &db, Clock::System)?;
    runtime()?.block_on(async {
        let owner = crate::owner::this_process(runner.clock.now());
        let leases = hold_lease(&runner, owner.clone());
        let (mut fired, mut failed) = (0, 0);
        for nominal in &ticks {
            let new = job.new_run(Trigger::Backfill, Some(*nominal), Some(owner.clone()));
            let Some(uid) = runner
                .store
                .backfill_tick(*nominal, new, runner.clock.now())
                .await?
            else {
                out!("{}  already has a run", nominal.to_rfc3339());
                continue;
            };
            fired += 1;
            let limits = Limits::of(&job);
            let done = runner.run_to_end(&uid, &limits, &Stop::new()).await?;
            // A sent async run is the daemon's receiver's now: sent is this command's success.
            let sent = limits.asynchronous && !done.status.is_final();
            if done.status != RunStatus::Succeeded && !sent {
                failed += 1;
            }
            out!(
                "{}  run {}: {} ({} pages, {} items)",
                nominal.to_rfc3339(),
                done.uid,
                done.status,
                done.pages,
                done.items
            );
        }
        leases.abort();
        out!(
            "backfill of {}: {} tick(s) in range, {fired} fired, {} already had a run",
            job.name,
            ticks.len(),
            ticks.len() - fired
        );
        if failed > 0 {
            return Err(Failure::runtime(format!(
                "{failed} backfilled run(s) did not succeed"
            )));
        }
        Ok(())
    })
}
