//! The callback receiver: where the vendor's callbacks for async runs and received remote
//! schedules arrive, are checked (token from the headers before any body is read, a bounded
//! number of bodies read at once, a bounded size), and are stored exactly once; and the sweep
//! that proves each such run complete against the API's callback log and repairs gaps.

pub mod remote;
pub mod server;
pub mod sweep;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::error;

use crate::config::Config;
use crate::runner::Runner;

/// Serves callbacks on `listener` and runs the sweep, until `stop`.
pub fn serve(
    runner: Arc<Runner>,
    listener: tokio::net::TcpListener,
    config: tokio::sync::watch::Receiver<Arc<Config>>,
    stop: &CancellationToken,
) {
    let Some(shared) = callbacks(runner.clone(), listener, config.clone(), stop) else {
        return;
    };
    let Some(receiver) = runner.receiver.clone() else {
        return;
    };
    let sweep = sweep::Sweep {
        runner,
        receiver,
        shared,
        config,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default(),
        remote: tokio::sync::Mutex::default(),
    };
    let until = stop.clone();
    crate::daemon::workers::handle().spawn(async move {
        let mut every = tokio::time::interval(sweep.every());
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = until.cancelled() => return,
                _ = every.tick() => {}
                () = sweep.shared.closing.notified() => {}
            }
            if let Err(e) = sweep.remote_pass().await {
                error!(error = %e, "the remote-run sweep could not read or write the store; it tries again");
            }
            if let Err(e) = sweep.pass().await {
                error!(error = %e, "the async sweep could not read or write the store; it tries again");
            }
        }
    });
}

/// Serves callbacks on `listener` until `stop`, without the sweep: what a cluster's standby
/// does (its writes are idempotent; a callback it cannot place, the first of a remote run it
/// may not confirm with the API, is answered 503 and delivered again). `None` without
/// `[receiver]` or when the listener cannot serve.
pub fn callbacks(
    runner: Arc<Runner>,
    listener: tokio::net::TcpListener,
    config: tokio::sync::watch::Receiver<Arc<Config>>,
    stop: &CancellationToken,
) -> Option<Arc<server::Shared>> {
    let receiver = runner.receiver.clone()?;
    let shared = server::Shared::new(runner, config, receiver.max_body);
    let app = server::router(shared.clone());
    let until = stop.clone();
    // Served from the run threads, below the tick path: a flood of callbacks, forged or not,
    // waits for the CPU after the scheduler.
    let listener = match listener.into_std() {
        Ok(l) => l,
        Err(e) => {
            error!(error = %e, "the receiver cannot serve");
            return None;
        }
    };
    crate::daemon::workers::handle().spawn(async move {
        let served = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => {
                axum::serve(l, app)
                    .with_graceful_shutdown(until.cancelled_owned())
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = served {
            error!(error = %e, "the receiver stopped");
        }
    });
    Some(shared)
}
