//! The one integration-test binary: the CLI, the daemon and the client against real sockets.

mod alerting;
mod asynch;
mod catalog;
mod chains;
mod cli;
mod daemon;
mod faults;
mod first_hour;
mod lists;
mod live;
mod operator;
mod pg;
mod progress;
mod proxy;
mod results;
mod safety;
mod signals;
mod support;
mod sync;
mod v1;
