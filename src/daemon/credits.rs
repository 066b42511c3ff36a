//! The account's credits, read from the API (v1 `/quotas`, else v4 `/workspaces`) once a minute into the database,
//! where `status` and `/metrics` find them without the key. A failed read keeps the last figures
//! and is logged once per streak of failures, not every minute. When credits come back (a new
//! billing period, a top-up), runs BLOCKED by a 402 are resumed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::{info, warn};

use crate::runner::Runner;
use crate::store::account::Account;

/// How often the credits are read (the daemon's default).
pub const EVERY: Duration = Duration::from_mins(1);

/// Reads the credits in the background, unless a read is still under way.
pub fn read(runner: &Runner, state: &Arc<Reading>) {
    if state.running.swap(true, Ordering::AcqRel) {
        return;
    }
    let (runner, state) = (runner.clone(), state.clone());
    tokio::spawn(async move {
        match runner.client.credits().await {
            Ok(a) => {
                if state.failing.swap(false, Ordering::AcqRel) {
                    info!(
                        credits_left = a.credits_left,
                        "account credits readable again"
                    );
                }
                let left = a.credits_left;
                *state
                    .last
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(a.clone());
                let before = runner.store.account().await.ok().flatten();
                let _ = runner.store.record_account(a).await;
                // Runs BLOCKED by a 402 resume when credits come back: more left than at the
                // last reading (a new billing period, a top-up; spending only lowers it), or a
                // first reading. Not at every reading: a 402 for another reason would be sent
                // again once a minute, for ever.
                let came_back = before.as_ref().is_none_or(|b| left > b.credits_left);
                if left > 0
                    && came_back
                    && let Ok(n) = runner.store.unblock_for_credits(runner.clock.now()).await
                    && n > 0
                {
                    info!(
                        runs = n,
                        credits_left = left,
                        "credits again: runs blocked for credits resume"
                    );
                }
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

/// A reading older than this says nothing about now (the reads keep failing).
const FRESH: chrono::Duration = chrono::Duration::minutes(10);

/// Whether a read is under way, whether the last one failed, and the last figures (kept here
/// so the tick path asks memory, not the database queue behind run work).
#[derive(Default)]
pub struct Reading {
    running: AtomicBool,
    failing: AtomicBool,
    last: std::sync::Mutex<Option<Account>>,
}

impl Reading {
    /// True when the last reading, fresh enough to trust, said no credits were left.
    pub fn out_of_credits(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        let last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        last.as_ref()
            .is_some_and(|a| a.credits_left <= 0 && now - a.read_at < FRESH)
    }
}
