//! `watchbell prune [--dry-run]`: deletes the finished runs older than `[daemon] retain` and says
//! what went (the daemon does the same once a day).

use std::fmt::Write as _;

use super::{Cli, Failure, Outcome, database_to_write};
use crate::clock::Clock;
use crate::config::Config;
use crate::store::{Pruned, Store, files};

pub fn run(cli: &Cli, dry_run: bool) -> Outcome {
    let config = Config::load(&cli.config)?;
    let Some(retain) = config.daemon.retain else {
        return Err(Failure::usage(format!(
            "{} keeps every run: set [daemon] retain (e.g. retain = \"90d\") to prune",
            cli.config.display()
        )));
    };
    let db = database_to_write(cli, &config, "prune")?;
    if !db.exists() {
        out!("no database at {}: nothing to prune", db.display());
        return Ok(());
    }
    if let Some(why) = files::foreign_owner(&db).filter(|_| !dry_run) {
        return Err(Failure::usage(why));
    }
    let before =
        Clock::System.now() - chrono::Duration::from_std(retain).unwrap_or(chrono::Duration::MAX);
    let store = Store::open(&db)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::runtime)?;
    let p = rt.block_on(store.prune(before, dry_run))?;
    out!("{}", report(&p, dry_run, &before.to_rfc3339()));
    Ok(())
}

/// One paragraph on what a prune removed (or would).
pub fn report(p: &Pruned, dry_run: bool, before: &str) -> String {
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut s = format!(
        "{verb} {} finished run(s) created before {before}: {} item(s), {} page(s), {} transition(s), {} callback(s); kept {} as their job's last run",
        p.runs, p.items, p.pages, p.transitions, p.callbacks, p.kept_last
    );
    if p.switched_vacuum {
        s.push_str("\nthe database now gives pruned space back as it goes (incremental vacuum; switched once)");
    }
    if !dry_run {
        let _ = write!(s, "\nreclaimed {} KiB", p.reclaimed_bytes / 1024);
    }
    s
}
