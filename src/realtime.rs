//! Noticing that the wall clock was set, without polling. tokio's timers follow the monotonic
//! clock, so a daemon on them alone must wake every second to notice a clock jump or a resume
//! from suspend. Instead one thread blocks on a Linux timerfd armed on `CLOCK_REALTIME` with
//! `TFD_TIMER_CANCEL_ON_SET`: the kernel cancels it the moment the clock is set, and on resume
//! from suspend (which it treats as a clock set). Each time, the thread bumps a counter that
//! sleepers watch. rustix gives the timerfd a safe API; the thread costs nothing while idle.

use std::sync::OnceLock;

use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};
use tokio::sync::watch;

/// How far ahead the watch timer is armed: it exists to be cancelled, not to expire.
const FAR: i64 = 10 * 366 * 86_400;

/// A receiver that changes each time the wall clock is set, or `None` where the kernel offers
/// no such timer (then sleepers fall back to short naps).
pub fn clock_changes() -> Option<watch::Receiver<u64>> {
    static WATCH: OnceLock<Option<watch::Sender<u64>>> = OnceLock::new();
    WATCH
        .get_or_init(|| {
            let fd = timerfd_create(TimerfdClockId::Realtime, TimerfdFlags::CLOEXEC).ok()?;
            arm(&fd).ok()?;
            let (tx, _) = watch::channel(0);
            let sender = tx.clone();
            std::thread::Builder::new()
                .name("watchbell-clock".into())
                .spawn(move || watch_clock(&fd, &sender))
                .ok()?;
            Some(tx)
        })
        .as_ref()
        .map(watch::Sender::subscribe)
}

fn arm(fd: &rustix::fd::OwnedFd) -> rustix::io::Result<()> {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let far = Timespec {
        tv_sec: now.tv_sec.saturating_add(FAR),
        tv_nsec: 0,
    };
    timerfd_settime(
        fd,
        TimerfdTimerFlags::ABSTIME | TimerfdTimerFlags::CANCEL_ON_SET,
        &Itimerspec {
            it_interval: zero,
            it_value: far,
        },
    )
    .map(drop)
}

/// Blocks on the timer for ever: each cancellation (a clock set, a resume) is counted, and the
/// timer armed again.
fn watch_clock(fd: &rustix::fd::OwnedFd, changes: &watch::Sender<u64>) {
    let mut buf = [0u8; 8];
    loop {
        match rustix::io::read(fd, &mut buf) {
            Err(rustix::io::Errno::CANCELED) => {
                changes.send_modify(|n| *n += 1);
                tracing::info!(
                    "the wall clock was set (or the machine resumed); ticks are recomputed"
                );
            }
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the wall clock; ticks notice jumps at the next wake");
                return;
            }
        }
        if arm(fd).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_is_watched_where_the_kernel_allows() {
        let rx = clock_changes().expect("Linux has CANCEL_ON_SET timerfds");
        assert_eq!(*rx.borrow(), 0);
        assert!(clock_changes().is_some(), "one watcher, many receivers");
    }
}
