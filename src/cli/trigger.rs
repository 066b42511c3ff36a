//! `watchbell trigger JOB` and `watchbell runs resume UID`: one run in the foreground, recorded
//! like any other, with progress in the log and the outcome as the exit code.

use std::path::Path;

use super::{Cli, Failure, Outcome, database_path};
use crate::api::{Client, key};
use crate::clock::Clock;
use crate::config::{Config, Job};
use crate::runner::{Limits, Runner, Stop};
use crate::status::RunStatus;
use crate::store::{self, NewRun, RunRecord, Store, Trigger};

/// The default bounds for a run whose job has left the file.
const FALLBACK_LIMITS: Limits = Limits {
    max_pages: 500,
    run_timeout: std::time::Duration::from_mins(30),
};

pub fn limits(job: &Job) -> Limits {
    Limits {
        max_pages: job.max_pages,
        run_timeout: job.run_timeout,
    }
}

/// A store, a client and a runner for this file.
pub fn runner_for(config: &Config, db: &Path, clock: Clock) -> Result<Runner, Failure> {
    let key = key::resolve(&config.api.key).map_err(|e| Failure::usage(e.to_string()))?;
    let client =
        Client::for_config(&config.api, key, None, clock.clone()).map_err(Failure::runtime)?;
    let store = Store::open(db)?;
    Ok(Runner {
        store,
        client,
        clock,
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Failure::runtime)
}

pub fn trigger(cli: &Cli, job_name: &str) -> Outcome {
    let config = Config::load(&cli.config)?;
    let job = config
        .job(job_name)
        .ok_or_else(|| {
            Failure::usage(format!(
                "no job named {job_name:?} in {}",
                cli.config.display()
            ))
        })?
        .clone();
    let runner = runner_for(&config, &database_path(cli, Some(&config)), Clock::System)?;
    runtime()?.block_on(async {
        let new = NewRun {
            job: job.name.clone(),
            action_name: job.action.clone(),
            trigger: Trigger::Manual,
            scheduled_for: None,
            body: job.live_body(),
            callback_url: job.webhook.as_ref().map(|w| w.url.to_string()),
            owner: None,
        };
        let now = runner.clock.now();
        let run = runner
            .store
            .call(move |c| store::create_run(c, &new, now))
            .await?;
        eprintln!("run {} created for job {}", run.uid, job.name);
        finish(&runner, &run.uid, limits(&job)).await
    })
}

pub fn resume(cli: &Cli, uid: &str) -> Outcome {
    let config = Config::load(&cli.config)?;
    let runner = runner_for(&config, &database_path(cli, Some(&config)), Clock::System)?;
    runtime()?.block_on(async {
        let u = uid.to_string();
        let run = runner
            .store
            .call(move |c| store::get_run(c, &u))
            .await?
            .ok_or_else(|| Failure::runtime(format!("run {uid} not found")))?;
        if !run.status.is_resumable() {
            return Err(Failure::runtime(format!(
                "run {uid} is {}; only STOPPED, BLOCKED, FAILED and PARTIAL_SUCCEEDED runs resume",
                run.status
            )));
        }
        runner.requeue(uid, "resumed by hand").await?;
        let limits = config.job(&run.job).map_or(FALLBACK_LIMITS, limits);
        finish(&runner, uid, limits).await
    })
}

/// Runs to the end (Ctrl-C stops it, resumable), prints the outcome, exits 0 only on SUCCEEDED.
async fn finish(runner: &Runner, uid: &str, limits: Limits) -> Outcome {
    let stop = Stop::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.stop("interrupted");
        }
    });
    let done: RunRecord = runner.execute(uid, limits, &stop).await?;
    println!(
        "run {}: {} ({} pages, {} items)",
        done.uid, done.status, done.pages, done.items
    );
    if let Some(e) = &done.last_error {
        println!("  {}: {}", e.label, e.message);
    }
    if done.status == RunStatus::Succeeded {
        Ok(())
    } else {
        Err(Failure::runtime(""))
    }
}
