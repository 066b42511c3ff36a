//! `watchbell lanes [resume ID]`: each identity lane's requests today against its caps, requests
//! in flight, and any pause; `resume` lifts a pause before its time.

use super::runs::{no_database, nothing, read_db};
use super::{Cli, Failure, Outcome, database_path, optional_config};
use crate::clock::Clock;
use crate::config::Safety;
use crate::lanes::local_day;
use crate::store::{LaneReport, Store, files};

pub fn run(cli: &Cli, resume: Option<&str>, json: bool) -> Outcome {
    let config = optional_config(cli)?;
    let safety = config
        .as_ref()
        .map(|c| c.safety.clone())
        .unwrap_or_default();
    if let Some(lane) = resume {
        let db = match &config {
            Some(c) => super::database_to_write(cli, c, "lanes resume")?,
            None => database_path(cli, None),
        };
        if !db.exists() {
            return Err(no_database(&db));
        }
        if let Some(why) = files::foreign_owner(&db) {
            return Err(Failure::usage(why));
        }
        let store = Store::open(&db)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(Failure::runtime)?;
        if rt.block_on(store.lane_resume(lane))? {
            out!("lane {lane} resumed: its jobs may send again");
            return Ok(());
        }
        return Err(Failure::runtime(format!("lane {lane} is not paused")));
    }
    let now = Clock::System.now();
    let (day, _) = local_day(now, safety.tz);
    let lanes = read_db(cli)?.lanes(&day, now)?;
    if lanes.is_empty() {
        nothing(
            "no identity lanes yet (no request has gone through an identity)",
            json,
        );
    } else if json {
        for l in &lanes {
            out!("{}", serde_json::to_string(l).unwrap_or_default());
        }
    } else {
        out!("{}", header(&day, &safety));
        for l in &lanes {
            out!("{}", line(l, &safety));
        }
    }
    Ok(())
}

pub fn header(day: &str, safety: &Safety) -> String {
    format!(
        "{:<40} {:>9} {:>9} {:>6} {:>4}  PAUSED   (day {day} in {})",
        "LANE",
        "OUTREACH",
        "VISITS",
        "READS",
        "NOW",
        safety.tz.name()
    )
}

/// One lane: requests today against the caps, in flight, pause.
pub fn line(l: &LaneReport, safety: &Safety) -> String {
    let pause = match (&l.paused_until, &l.pause_reason) {
        (Some(until), reason) => {
            format!("until {until} ({})", reason.as_deref().unwrap_or("paused"))
        }
        (None, _) => "-".into(),
    };
    format!(
        "{:<40} {:>9} {:>9} {:>6} {:>4}  {pause}",
        l.lane,
        format!("{}/{}", l.outreach, safety.outreach),
        format!("{}/{}", l.visits, safety.visits),
        l.reads,
        l.in_flight
    )
}
