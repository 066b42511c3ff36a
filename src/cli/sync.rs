//! `watchbell sync [--dry-run] [--prune]`: the account's remote schedules brought in line with
//! the file, one printed line per action with why.

use super::{Cli, Failure, Outcome, database_path};
use crate::api::{Client, key};
use crate::clock::Clock;
use crate::config::Config;
use crate::store::Store;
use crate::sync::{self, SyncError};

pub fn run(cli: &Cli, dry_run: bool, prune: bool) -> Outcome {
    let config = Config::load(&cli.config)?;
    let key = key::resolve(&config.api.key).map_err(|e| Failure::usage(e.to_string()))?;
    let clock = Clock::System;
    let client =
        Client::for_config(&config.api, key, None, clock.clone()).map_err(Failure::runtime)?;
    let db = database_path(cli, Some(&config));
    // A dry run writes nothing, not even a new database.
    let store = if dry_run && !db.exists() {
        None
    } else {
        Some(Store::open(&db)?)
    };
    let rt = tokio::runtime::Runtime::new().map_err(Failure::runtime)?;
    let (steps, applied) = rt
        .block_on(sync::reconcile(
            &config,
            &client,
            store.as_ref(),
            &clock,
            dry_run,
            prune,
        ))
        .map_err(|e| match e {
            SyncError::List(f) => Failure::runtime(format!("sync: {f}; nothing was changed")),
            other => Failure::runtime(other),
        })?;
    if steps.is_empty() {
        println!("remote schedules match the file; nothing to do");
        return Ok(());
    }
    if dry_run {
        println!("plan (dry run, nothing changed):");
        for s in &steps {
            println!("  {s}");
        }
        return Ok(());
    }
    let mut failed = 0;
    for s in steps.iter().filter(|s| !s.changes()) {
        println!("  {s}");
    }
    for a in &applied {
        match &a.result {
            Ok(done) => println!("  {}  -> {done}", a.step),
            Err(e) => {
                failed += 1;
                println!("  {}  -> FAILED: {e}", a.step);
            }
        }
    }
    if failed > 0 {
        return Err(Failure::runtime(format!(
            "{failed} change(s) failed; the others were applied"
        )));
    }
    Ok(())
}
