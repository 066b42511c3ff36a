//! systemd's notify protocol: READY once the schedule is armed, STATUS lines, RELOADING around a
//! reload, STOPPING, and WATCHDOG pings. Every call is a no-op outside systemd.

use sd_notify::NotifyState;
use tracing::debug;

pub fn ready() {
    send(&[NotifyState::Ready]);
}

pub fn status(line: &str) {
    send(&[NotifyState::Status(line)]);
}

pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// Half of `WatchdogSec`, when systemd asked for pings.
pub fn watchdog_interval() -> Option<std::time::Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}

fn send(state: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some()
        && let Err(e) = sd_notify::notify(state)
    {
        debug!(error = %e, "sd_notify failed");
    }
}
