//! One pass through a run's pagination, and when it must start again. A run normally makes one
//! pass, from the first page to the last. A cursor older than `cursor_ttl` (v1 cursors expire
//! after 24 hours) is never sent: the run makes a new pass from the first page, and from then on
//! stores only items it has not stored yet. Loop detection (a URL fetched twice, a page whose
//! items repeat an earlier page) looks only at the current pass: starting again on purpose is
//! not a loop.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::{PageRecord, parse_ts};

/// What loop detection knows of the current pass.
#[derive(Debug, Default)]
pub struct Pass {
    /// The page number the pass began at.
    pub start: u32,
    /// URLs fetched in this pass.
    pub visited: HashSet<String>,
    /// Content hashes of this pass's pages, with their page numbers.
    pub seen: HashMap<String, u32>,
    /// True when pages of an earlier pass (of the same run, or of the same input of a run over
    /// a list) were stored: items may repeat.
    restarted: bool,
    /// Pages stored in this pass (an input's pages need not be numbered in a row: inputs paged
    /// at once share the run's numbers).
    pub count: u32,
}

impl Pass {
    /// The pass the stored pages are in: from the last page fetched at `first` (the run's first
    /// URL) onwards; page 1 when no page was.
    pub fn of(stored: &[PageRecord], first: &str) -> Pass {
        let start = stored
            .iter()
            .rev()
            .find(|p| p.url == first)
            .map_or(1, |p| p.page);
        let mine = || stored.iter().filter(move |p| p.page >= start);
        Pass {
            start,
            restarted: stored.iter().any(|p| p.page < start),
            count: mine().count() as u32,
            visited: mine().map(|p| p.url.clone()).collect(),
            seen: mine()
                .filter_map(|p| p.content_hash.clone().map(|h| (h, p.page)))
                .collect(),
        }
    }

    /// A new pass, after an earlier one, whose first page will be page `start`.
    pub fn fresh(start: u32) -> Pass {
        Pass {
            start,
            restarted: true,
            ..Pass::default()
        }
    }

    /// The first pass of one input of a run over a list, from page `start` of the run.
    pub fn first(start: u32) -> Pass {
        Pass {
            start,
            ..Pass::default()
        }
    }

    /// True when this pass started again after an earlier one: items may repeat.
    pub fn is_repeat(&self) -> bool {
        self.restarted
    }
}

/// When the cursor after the last stored page was handed out (that page's fetch time).
pub fn cursor_time(stored: &[PageRecord]) -> Option<DateTime<Utc>> {
    stored.last().and_then(|p| parse_ts(&p.fetched_at))
}

/// True when a cursor handed out at `at` is older than `ttl` at `now`.
pub fn expired(at: Option<DateTime<Utc>>, ttl: Duration, now: DateTime<Utc>) -> bool {
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    at.is_some_and(|at| now - at > ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(page: u32, url: &str, hash: &str) -> PageRecord {
        PageRecord {
            page,
            url: url.into(),
            items: 1,
            fetched_at: "2026-01-01T00:00:00.000Z".into(),
            content_hash: Some(hash.into()),
            input: None,
        }
    }

    #[test]
    fn the_current_pass_starts_at_the_last_first_page() {
        let stored = [
            page(1, "F", "a"),
            page(2, "F?c=1", "b"),
            page(3, "F", "a"),
            page(4, "F?c=9", "b"),
        ];
        let p = Pass::of(&stored, "F");
        assert_eq!(p.start, 3);
        assert!(p.is_repeat());
        assert_eq!(p.visited.len(), 2);
        assert_eq!(p.seen.get("b"), Some(&4));
        assert_eq!(p.count, 2);
        let one = Pass::of(&stored[..2], "F");
        assert_eq!((one.start, one.is_repeat(), one.count), (1, false, 2));
        assert_eq!(Pass::of(&[], "F").count, 0);
    }

    #[test]
    fn a_cursor_expires_after_its_ttl() {
        let at = parse_ts("2026-01-01T00:00:00.000Z");
        let ttl = Duration::from_hours(24);
        let later = |h| at.unwrap() + chrono::Duration::hours(h);
        assert!(!expired(at, ttl, later(24)));
        assert!(expired(at, ttl, later(25)));
        assert!(!expired(None, ttl, later(99)));
        assert!(!expired(at, Duration::MAX, later(99)));
        assert_eq!(cursor_time(&[page(1, "F", "a")]), at);
    }
}
