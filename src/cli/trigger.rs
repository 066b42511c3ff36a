//! `watchbell trigger JOB` and `watchbell runs resume UID`: one run in the foreground, recorded
//! like any other, with progress in the log and the outcome as the exit code.

use std::path::Path;

use super::{Cli, Failure, Outcome, database_to_write};
use crate::api::{ApiKey, Client, key};
use crate::clock::Clock;
use crate::config::Config;
use crate::runner::{Limits, Runner, Stop};
use crate::sandbox::Sandbox;
use crate::status::RunStatus;
use crate::store::{RunRecord, Store, Trigger};

/// The default bounds for a run whose job has left the file.
const FALLBACK_LIMITS: Limits = Limits::bounds(500, std::time::Duration::from_mins(30));

/// A store, a client and a runner for this file.
pub fn runner_for(config: &Config, db: &Path, clock: Clock) -> Result<Runner, Failure> {
    let key = key::resolve(&config.api.key).map_err(|e| Failure::usage(e.to_string()))?;
    runner_with(config, db, clock, key)
}

/// [`runner_for`] with the key given (the sandbox's).
fn runner_with(config: &Config, db: &Path, clock: Clock, key: ApiKey) -> Result<Runner, Failure> {
    if let Some(why) = crate::store::files::foreign_owner(db) {
        return Err(Failure::usage(why));
    }
    let client = Client::for_config(&config.api, key, None, clock.clone())
        .map_err(Failure::runtime)?
        .with_v1(config.v1_base());
    let store = Store::open(db)?;
    Ok(Runner {
        store,
        client,
        clock,
        safety: config.safety.clone(),
        receiver: config.receiver.clone(),
    })
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Failure::runtime)
}

/// Where `trigger --sandbox` keeps its runs unless `--db` is given: never the real database.
pub const SANDBOX_DB: &str = "watchbell-sandbox.db";

pub fn trigger(cli: &Cli, job_name: &str, with_sandbox: bool, wait: bool) -> Outcome {
    let mut config = Config::load(&cli.config)?;
    if config.job(job_name).is_none() {
        return Err(Failure::usage(format!(
            "no job named {job_name:?} in {}",
            cli.config.display()
        )));
    }
    super::check_secrets(&config)?;
    let rt = runtime()?;
    let asynchronous = config
        .job(job_name)
        .is_some_and(|j| j.runner == crate::config::Runner::Async);
    let (runner, sandbox) = if with_sandbox {
        let sb = rt
            .block_on(Sandbox::start(super::daemon::sandbox_options(&config)))
            .map_err(|e| Failure::runtime(format!("cannot start the sandbox: {e}")))?;
        for dropped in config.use_sandbox(sb.base_url(), sb.v1_url()) {
            crate::progress::above(|| eprintln!("{dropped}"));
        }
        let db = cli.db.clone().unwrap_or_else(|| SANDBOX_DB.into());
        let listener = match &mut config.receiver {
            Some(r) if asynchronous => Some(rt.block_on(bind_receiver(r))?),
            _ => None,
        };
        let runner = runner_with(&config, &db, Clock::System, ApiKey::new(sb.api_key()))?;
        (runner, Some((sb, listener)))
    } else {
        let db = database_to_write(cli, &config, "trigger")?;
        (runner_for(&config, &db, Clock::System)?, None)
    };
    let job = config.job(job_name).expect("checked above").clone();
    let mut sandbox = sandbox;
    rt.block_on(async {
        let owner = crate::owner::this_process(runner.clock.now());
        let (links, afters) = config.links();
        runner
            .store
            .set_links(links, afters, runner.clock.now())
            .await?;
        let new = job.new_run(Trigger::Manual, None, Some(owner.clone()));
        let run = runner.store.create_run(new, runner.clock.now()).await?;
        crate::progress::above(|| eprintln!("run {} created for job {}", run.uid, job.name));
        let leases = hold_lease(&runner, owner);
        let stop_receiver = tokio_util::sync::CancellationToken::new();
        let outcome = if asynchronous {
            let runner = std::sync::Arc::new(runner.clone());
            let here = sandbox.as_ref().and_then(|(_, l)| l.as_ref()).is_some();
            if let Some(listener) = sandbox.as_mut().and_then(|(_, l)| l.take()) {
                let (_, file) = tokio::sync::watch::channel(std::sync::Arc::new(config.clone()));
                crate::receiver::serve(runner.clone(), listener, file, &stop_receiver);
            }
            submit(&runner, &run.uid, &Limits::of(&job), wait || here).await
        } else {
            finish(&runner, &run.uid, Limits::of(&job)).await
        };
        stop_receiver.cancel();
        leases.abort();
        deliver(&runner, &config, run.id).await;
        if let Some((sb, _)) = sandbox {
            sb.stop().await;
            out!(
                "  look at it with: watchbell --db {} runs show {}",
                runner.store.path().display(),
                run.uid
            );
        }
        outcome
    })
}

pub fn resume(cli: &Cli, uid: &str) -> Outcome {
    let config = Config::load(&cli.config)?;
    let runner = runner_for(
        &config,
        &database_to_write(cli, &config, "runs resume")?,
        Clock::System,
    )?;
    runtime()?.block_on(async {
        let run = runner
            .store
            .run(uid)
            .await?
            .ok_or_else(|| Failure::runtime(format!("run {uid} not found")))?;
        if !run.status.is_resumable() {
            return Err(Failure::runtime(format!(
                "run {uid} is {}; only STOPPED, BLOCKED, FAILED and PARTIAL_SUCCEEDED runs resume",
                run.status
            )));
        }
        if let Some(api) = vendor_run(&runner, uid).await? {
            return resume_at_api(&runner, uid, &api).await;
        }
        let owner = crate::owner::this_process(runner.clock.now());
        runner.take_over(uid, &owner, "resumed by hand").await?;
        let leases = hold_lease(&runner, owner);
        let limits = config.job(&run.job).map_or(FALLBACK_LIMITS, Limits::of);
        let outcome = finish(&runner, uid, limits).await;
        leases.abort();
        deliver(&runner, &config, run.id).await;
        outcome
    })
}

/// The API's uid of an async or received run (the vendor runs it, so the vendor resumes it).
async fn vendor_run(runner: &Runner, uid: &str) -> Result<Option<String>, Failure> {
    let uid = uid.to_string();
    let st = runner
        .store
        .call(move |c| crate::store::batches::state(c, &uid))
        .await?;
    Ok(st.and_then(|s| s.api_uid))
}

/// `POST /runs/{uid}/resume`; the run is the receiver's again (the daemon's sweep finishes it).
async fn resume_at_api(runner: &Runner, uid: &str, api: &str) -> Outcome {
    let remote = runner
        .client
        .resume_run(api)
        .await
        .map_err(|e| Failure::runtime(format!("the API did not resume run {api}: {e}")))?;
    let (id, now) = (uid.to_string(), runner.clock.now());
    runner
        .store
        .call(move |c| crate::store::batches::resumed(c, &id, ("resumed at the API", false), now))
        .await?;
    out!(
        "run {uid}: resumed at the API (run {api} is {}); the daemon's receiver stores what follows",
        remote.status.as_deref().unwrap_or("?")
    );
    Ok(())
}

/// Renews this process's lease on its run, so a daemon beside it never takes it over.
pub(super) fn hold_lease(runner: &Runner, owner: String) -> tokio::task::JoinHandle<()> {
    let (store, clock) = (runner.store.clone(), runner.clock.clone());
    tokio::spawn(async move {
        loop {
            let _ = store.renew_leases(&owner, store.now(&clock)).await;
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
    })
}

/// Tries to deliver the run's webhook callbacks for a few seconds; what is left is delivered by
/// the daemon.
async fn deliver(runner: &Runner, config: &Config, run_id: i64) {
    let (_, file) = tokio::sync::watch::channel(std::sync::Arc::new(config.clone()));
    let d = crate::callbacks::Deliverer::new(runner.store.clone(), runner.clock.clone(), file);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let _ = d.deliver_due(Some(run_id)).await;
        let left = runner.store.pending_count(Some(run_id)).await.unwrap_or(0);
        if left == 0 {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            let later = if config.api.sandbox {
                "they stay queued in this sandbox database"
            } else {
                "the daemon will keep trying"
            };
            crate::progress::above(|| {
                eprintln!("{left} callback(s) not delivered yet; {later}");
            });
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Binds `trigger --sandbox`'s own receiver on a free loopback port, its public URL the bound
/// address.
async fn bind_receiver(
    r: &mut crate::config::Receiver,
) -> Result<tokio::net::TcpListener, Failure> {
    let l = tokio::net::TcpListener::bind(r.listen)
        .await
        .map_err(|e| Failure::runtime(format!("[receiver] listen {}: {e}", r.listen)))?;
    let addr = l.local_addr().map_err(Failure::runtime)?;
    r.public_url = reqwest::Url::parse(&format!("http://{addr}")).ok();
    Ok(l)
}

/// Sends an async run; with `wait`, follows it to its end (the receiver stores its batches).
/// Exits 0 once sent, or with `wait` only on SUCCEEDED.
async fn submit(runner: &Runner, uid: &str, limits: &Limits, wait: bool) -> Outcome {
    let mut done = runner.execute(uid, limits, &Stop::new()).await?;
    if !done.status.is_final() {
        let api = runner
            .store
            .call({
                let uid = uid.to_string();
                move |c| crate::store::batches::state(c, &uid)
            })
            .await?
            .and_then(|s| s.api_uid)
            .unwrap_or_else(|| "unconfirmed".into());
        out!("run {uid}: sent (API run {api}); its results come back through [receiver]");
        if !wait {
            return Ok(());
        }
    }
    while !done.status.is_final() {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        done = runner.store.existing_run(uid).await?;
    }
    said(&done);
    if done.status == RunStatus::Succeeded {
        Ok(())
    } else {
        Err(Failure::runtime(""))
    }
}

/// Prints how a run ended, and its error.
fn said(done: &RunRecord) {
    out!(
        "run {}: {} ({} pages, {} items)",
        done.uid,
        done.status,
        done.pages,
        done.items
    );
    if let Some(e) = &done.last_error {
        out!("  {}: {}", e.label, e.message);
    }
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
    let done: RunRecord = runner.run_to_end(uid, &limits, &stop).await?;
    said(&done);
    if done.status == RunStatus::Stopped && stop.is_stopped() {
        out!("  resume with: watchbell runs resume {}", done.uid);
    }
    if done.status == RunStatus::Succeeded {
        Ok(())
    } else {
        Err(Failure::runtime(""))
    }
}
