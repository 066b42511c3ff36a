//! watchbell: a local CRON scheduler daemon for Captain Data actions.
//!
//! - [`config`]: what was asked (the job file, validated); [`catalog`]: what the account accepts.
//! - [`schedule`]: when (cron + zone + DST policy -> instants); [`clock`]: the one door to time.
//! - [`scheduler`]: when jobs are due (a heap, one sleep); knows no HTTP and no SQL.
//! - [`api`]: the Captain Data client (pagination, pacing, retries); [`sandbox`]: its simulator.
//! - [`runner`]: how one run goes; [`status`]: the lifecycle it follows; [`lanes`]: account safety.
//! - [`store`]: what happened (runs, transitions, pages, ticks, links, deliveries).
//! - [`daemon`]: the wiring (dispatch, reload, recovery, systemd); [`owner`]: who runs a run.
//! - [`receiver`]: async and received remote runs: callbacks stored exactly once, completeness
//!   proven against the vendor's callback log.
//! - [`sync`]: remote schedules; [`callbacks`]: webhooks, signed by [`signatures`]; [`metrics`];
//!   [`export`].
//! - [`cli`]: the commands; [`logging`]: the log lines.

pub mod api;
pub mod callbacks;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod export;
pub mod fnv;
pub mod lanes;
pub mod logging;
pub mod metrics;
pub mod owner;
pub mod paging;
pub mod progress;
pub mod realtime;
pub mod receiver;
pub mod runner;
pub mod sandbox;
pub mod schedule;
pub mod scheduler;
pub mod signatures;
pub mod status;
pub mod store;
pub mod sync;
pub mod uid;
