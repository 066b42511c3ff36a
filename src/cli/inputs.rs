//! `watchbell inputs JOB`: where a chained job's inputs stand. Each new item of its source is
//! pending until a run holds it, then consumed (its input succeeded) or failed (refused, or
//! unfinished in three runs); both are final.

use super::runs::read_db;
use super::{Cli, Failure, Outcome, optional_config};

pub fn run(cli: &Cli, job: &str, json: bool) -> Outcome {
    let config = optional_config(cli)?;
    let from = config
        .as_ref()
        .and_then(|c| c.job(job))
        .and_then(|j| j.request.inputs_from.clone());
    if config.is_some() && from.is_none() {
        return Err(Failure::usage(format!(
            "{job} has no inputs_from in the job file"
        )));
    }
    let report = read_db(cli)?.chain_report(job)?;
    if json {
        out!("{}", serde_json::to_string(&report).unwrap_or_default());
        return Ok(());
    }
    let src = report
        .src
        .clone()
        .or_else(|| from.map(|f| f.job))
        .unwrap_or_else(|| "?".into());
    let since = report.since.as_deref().unwrap_or("its first run");
    out!("{job} takes the new items of {src} (since {since})");
    out!(
        "  pending {}  held {}  consumed {}  failed {}",
        report.pending,
        report.held,
        report.consumed,
        report.failed
    );
    Ok(())
}
