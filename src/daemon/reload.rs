//! Reloading the job file: a file that does not validate is rejected with its errors logged and
//! the running schedule is kept exactly as it was; a valid one is applied as a diff.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::dispatch::Dispatch;
use super::notify;
use crate::config::Config;
use crate::scheduler::Command;
use crate::store::StoreError;

/// Notices a change of the job file by polling its path (editors save by rename).
pub struct FileWatch {
    path: PathBuf,
    meta: Option<(Option<std::time::SystemTime>, u64)>,
    hash: u64,
}

impl FileWatch {
    pub fn new(path: &Path) -> FileWatch {
        let mut w = FileWatch {
            path: path.to_path_buf(),
            meta: None,
            hash: 0,
        };
        w.changed();
        w
    }

    /// True when the content differs from the last look (a touch alone is not a change).
    pub fn changed(&mut self) -> bool {
        let meta = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.modified().ok(), m.len()));
        if meta == self.meta {
            return false;
        }
        self.meta = meta;
        let mut h = DefaultHasher::new();
        std::fs::read(&self.path).unwrap_or_default().hash(&mut h);
        let hash = h.finish();
        let changed = hash != self.hash && self.hash != 0;
        self.hash = hash;
        changed
    }
}

pub async fn apply(
    d: &mut Dispatch,
    path: &Path,
    why: &str,
    scheduler: &mpsc::Sender<Command>,
) -> Result<(), StoreError> {
    notify::reloading();
    match Config::load(path) {
        Err(e) => {
            for line in e.to_string().lines() {
                error!(why, "{line}");
            }
            error!(why, "reload rejected; the running schedule is unchanged");
        }
        Ok(mut new) => {
            for w in &new.warnings {
                warn!(why, "{w}");
            }
            let old = &d.config;
            let fp = |c: &Config| -> std::collections::HashMap<String, u64> {
                c.jobs
                    .iter()
                    .map(|j| (j.name.clone(), j.fingerprint()))
                    .collect()
            };
            let (before, after) = (fp(old), fp(&new));
            let mut added: Vec<&String> =
                after.keys().filter(|k| !before.contains_key(*k)).collect();
            let mut removed: Vec<&String> =
                before.keys().filter(|k| !after.contains_key(*k)).collect();
            let mut changed: Vec<&String> = after
                .iter()
                .filter(|(k, v)| before.get(*k).is_some_and(|b| b != *v))
                .map(|(k, _)| k)
                .collect();
            added.sort();
            removed.sort();
            changed.sort();
            if format!("{:?}{:?}", old.api, old.daemon) != format!("{:?}{:?}", new.api, new.daemon)
            {
                warn!(
                    why,
                    "[api] and [daemon] changes take effect at the next restart"
                );
                new.api = old.api.clone();
                new.daemon = old.daemon.clone();
            }
            info!(why, added = ?added, removed = ?removed, changed = ?changed, "job file reloaded");
            // New and changed jobs start from now; unchanged ones keep their timers anyway.
            let entries = super::entries(&new, &std::collections::HashMap::new());
            d.set_config(new);
            let _ = scheduler.send(Command::Reload(entries)).await;
        }
    }
    notify::ready();
    Ok(())
}
