//! Who runs a run. Each process that executes runs (`watchbell run`, `watchbell trigger`) has an
//! owner id and renews a lease on its runs; a run whose owner is gone can be recovered by the
//! daemon, and a run whose owner is alive is never touched.

use chrono::{DateTime, Utc};

use crate::uid::new_uid;

/// `HOST:PID:RANDOM` for this process.
pub fn this_process(now: DateTime<Utc>) -> String {
    format!(
        "{}:{}:{}",
        hostname(),
        std::process::id(),
        &new_uid(now)[..8]
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "localhost".into(), |h| h.trim().to_string())
}

/// Whether the owner of a run still holds it: its lease is fresh and, when it ran on this
/// machine, its process still exists (so a `kill -9` is noticed at once, not at lease expiry).
pub fn is_alive(
    owner: Option<&str>,
    lease_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    let Some(owner) = owner else { return false };
    if lease_until.is_none_or(|l| l < now) {
        return false;
    }
    let mut parts = owner.split(':');
    match (
        parts.next(),
        parts.next().and_then(|p| p.parse::<u32>().ok()),
    ) {
        (Some(host), Some(pid)) if host == hostname() => {
            pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists()
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_until_its_lease_lapses() {
        let now = crate::clock::Clock::System.now();
        let me = this_process(now);
        let later = now + chrono::Duration::seconds(10);
        assert!(is_alive(Some(&me), Some(later), now));
        assert!(!is_alive(
            Some(&me),
            Some(now - chrono::Duration::seconds(1)),
            now
        ));
        assert!(!is_alive(None, Some(later), now));
    }

    #[test]
    fn a_dead_local_process_is_noticed_before_its_lease_lapses() {
        let now = crate::clock::Clock::System.now();
        let later = now + chrono::Duration::seconds(10);
        let ghost = format!("{}:{}:abcd", hostname(), u32::MAX - 7);
        assert!(!is_alive(Some(&ghost), Some(later), now));
        assert!(is_alive(Some("elsewhere:1:abcd"), Some(later), now));
    }
}
