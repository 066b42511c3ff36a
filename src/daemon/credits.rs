//! The account's credits, read from the API (`GET /workspaces`) once a minute into the database,
//! where `status` and `/metrics` find them without the key. A failed read keeps the last figures
//! and is logged once per streak of failures, not every minute.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::{info, warn};

use crate::runner::Runner;

/// How often the credits are read.
pub const EVERY: Duration = Duration::from_mins(1);

/// Reads the credits in the background, unless a read is still under way.
pub fn read(runner: &Runner, state: &Arc<Reading>) {
    if state.running.swap(true, Ordering::AcqRel) {
        return;
    }
    let (runner, state) = (runner.clone(), state.clone());
    tokio::spawn(async move {
        match runner.client.workspace().await {
            Ok(a) => {
                if state.failing.swap(false, Ordering::AcqRel) {
                    info!(
                        credits_left = a.credits_left,
                        "account credits readable again"
                    );
                }
                let _ = runner.store.record_account(a).await;
            }
            Err(e) => {
                if !state.failing.swap(true, Ordering::AcqRel) {
                    warn!(error = %e, "cannot read the account's credits; the last figures stay");
                }
            }
        }
        state.running.store(false, Ordering::Release);
    });
}

/// Whether a read is under way, and whether the last one failed.
#[derive(Default)]
pub struct Reading {
    running: AtomicBool,
    failing: AtomicBool,
}
