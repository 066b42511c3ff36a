//! watchbell: a local CRON scheduler daemon for Captain Data actions.
//!
//! - [`config`]: what was asked (the job file, validated).
//! - [`schedule`]: when (cron + zone + DST policy -> instants); [`clock`]: the one door to time.
//! - [`store`]: what happened (`SQLite`: runs, transitions, pages, ticks); [`status`]: the lifecycle.
//! - [`cli`]: the commands.

pub mod api;
pub mod callbacks;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod export;
pub mod logging;
pub mod metrics;
pub mod owner;
pub mod runner;
pub mod sandbox;
pub mod schedule;
pub mod scheduler;
pub mod status;
pub mod store;
pub mod sync;
pub mod uid;
