//! `watchbell sync [--dry-run] [--prune]`: the account's remote schedules brought in line with
//! the file, one printed line per action with why.

use super::{Cli, Failure, Outcome, database_to_write};
use crate::api::{Client, key};
use crate::clock::Clock;
use crate::config::Config;
use crate::store::{Store, files};
use crate::sync::{self, SyncError};

/// How long `sync` waits for the daemon's reconcile to finish.
const SYNC_WAIT: std::time::Duration = std::time::Duration::from_mins(1);

pub fn run(cli: &Cli, dry_run: bool, prune: bool) -> Outcome {
    let config = Config::load(&cli.config)?;
    let key = key::resolve(&config.api.key).map_err(|e| Failure::usage(e.to_string()))?;
    let clock = Clock::System;
    let client =
        Client::for_config(&config.api, key, None, clock.clone()).map_err(Failure::runtime)?;
    let rt = tokio::runtime::Runtime::new().map_err(Failure::runtime)?;
    // The cluster's database, as the daemon finds it; the turn below keeps the leader's own
    // reconcile apart.
    let store = if let (Some(source), None) = (&config.store, &cli.db) {
        Some(super::cluster::write(source)?)
    } else {
        let db = database_to_write(cli, &config, "sync")?;
        // A dry run writes nothing, not even a new database.
        if dry_run && !db.exists() {
            None
        } else {
            if let Some(why) = files::foreign_owner(&db).filter(|_| !dry_run) {
                return Err(Failure::usage(why));
            }
            Some(Store::open(&db)?)
        }
    };
    // Never at once with the daemon's own reconcile (two creations of one schedule).
    let _turn = match store.as_ref().filter(|_| !dry_run) {
        Some(s) => Some(rt.block_on(s.sync_turn(SYNC_WAIT))?.ok_or_else(|| {
            Failure::runtime(format!(
                "another sync on {} (the daemon's) did not finish within {}s; try again",
                s.path().display(),
                SYNC_WAIT.as_secs()
            ))
        })?),
        None => None,
    };
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
        out!("remote schedules match the file; nothing to do");
        return Ok(());
    }
    if dry_run {
        out!("plan (dry run, nothing changed):");
        for s in &steps {
            out!("  {s}");
        }
        return Ok(());
    }
    let mut failed = 0;
    for s in steps.iter().filter(|s| !s.changes()) {
        out!("  {s}");
    }
    for a in &applied {
        match &a.result {
            Ok(done) => out!("  {}  -> {done}", a.step),
            Err(e) => {
                failed += 1;
                out!("  {}  -> FAILED: {e}", a.step);
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
