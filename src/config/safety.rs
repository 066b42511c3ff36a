//! `[safety]`: how requests made through a LinkedIn identity are paced. The defaults are what the
//! vendor's live-mode guidance asks of a careful person: one request at a time per identity, a
//! random 3 to 10 seconds between two of them, and daily caps on outreach and profile visits.

use std::time::Duration;

use chrono_tz::Tz;

use super::read::{self, Diags, Section, Value};

/// The pacing of identity lanes (see `crate::lanes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Safety {
    /// Requests in flight per identity, across jobs, runs and processes.
    pub per_identity: u32,
    /// The random gap between the end of one request of a lane and the start of the next.
    pub page_gap: (Duration, Duration),
    /// Outreach requests (connect, message, ...) per identity per local day.
    pub outreach: u32,
    /// Profile and company visits per identity per local day.
    pub visits: u32,
    /// How long a lane whose identity the API reported unusable stays paused.
    pub lane_pause: Duration,
    /// Caps start at 20% and reach 100% over this long from a lane's first request.
    pub ramp_up: Option<Duration>,
    /// The zone whose midnight starts a new day for the caps (`[defaults] timezone`).
    pub tz: Tz,
}

impl Default for Safety {
    fn default() -> Self {
        Safety {
            per_identity: 1,
            page_gap: (Duration::from_secs(3), Duration::from_secs(10)),
            outreach: 25,
            visits: 80,
            lane_pause: Duration::from_hours(6),
            ramp_up: None,
            tz: Tz::UTC,
        }
    }
}

pub(super) fn read_safety(d: &mut Diags, s: &Section, tz: Tz) -> Option<Safety> {
    s.only(
        d,
        &[
            "per_identity",
            "page_gap",
            "daily_cap",
            "lane_pause",
            "ramp_up",
        ],
    );
    let mut safety = Safety {
        tz,
        ..Safety::default()
    };
    let mut ok = true;
    if let Some(v) = s.get("per_identity") {
        ok &= read::integer(d, v, "per_identity", 1, 16)
            .map(|n| safety.per_identity = n as u32)
            .is_some();
    }
    if let Some(v) = s.get("page_gap") {
        ok &= gap(d, v).map(|g| safety.page_gap = g).is_some();
    }
    if let Some(v) = s.get("daily_cap") {
        ok &= caps(d, v, &mut safety).is_some();
    }
    if let Some(v) = s.get("lane_pause") {
        ok &= read::duration(d, v, "lane_pause")
            .map(|p| safety.lane_pause = p)
            .is_some();
    }
    if let Some(v) = s.get("ramp_up") {
        ok &= read::positive_duration(d, v, "ramp_up")
            .map(|r| safety.ramp_up = Some(r))
            .is_some();
    }
    ok.then_some(safety)
}

/// `"3s..10s"`: a range of durations, the first no longer than the second.
fn gap(d: &mut Diags, v: &Value) -> Option<(Duration, Duration)> {
    let text = read::string(d, v, "page_gap")?;
    let parsed = text.split_once("..").and_then(|(a, b)| {
        let a = humantime::parse_duration(a.trim()).ok()?;
        let b = humantime::parse_duration(b.trim()).ok()?;
        Some((a, b))
    });
    match parsed {
        Some((a, b)) if a <= b && b <= Duration::from_hours(1) => Some((a, b)),
        Some(_) => {
            d.at(
                &v.span(),
                format!(
                    "page_gap: {text:?} must go from a shorter to a longer gap, at most an hour"
                ),
            );
            None
        }
        None => {
            d.at(
                &v.span(),
                format!("page_gap: {text:?} is not a range like \"3s..10s\""),
            );
            None
        }
    }
}

fn caps(d: &mut Diags, v: &Value, safety: &mut Safety) -> Option<()> {
    let t = read::table(d, v, "daily_cap", "daily_cap")?;
    t.only(d, &["outreach", "visits"]);
    if let Some(v) = t.get("outreach") {
        safety.outreach = read::integer(d, v, "daily_cap.outreach", 0, 10_000)? as u32;
    }
    if let Some(v) = t.get("visits") {
        safety.visits = read::integer(d, v, "daily_cap.visits", 0, 100_000)? as u32;
    }
    Some(())
}
