//! Reloading the job file: a file that does not validate is rejected with its errors logged and
//! the running schedule is kept exactly as it was; a valid one is applied as a diff.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::dispatch::Dispatch;
use super::notify;
use crate::config::Config;
use crate::scheduler::Command;
use crate::store::StoreError;

/// Notices a change of the job file. inotify (through `notify`) watches the file's directory,
/// since editors save by writing a new file and renaming it over the old one; an event only
/// prompts a look, and the file counts as changed when its content differs (a touch is not a
/// change). Where no watch can be set, the path is looked at every [`POLL`] instead.
pub struct FileWatch {
    path: PathBuf,
    meta: Option<(Option<std::time::SystemTime>, u64)>,
    hash: u64,
    events: Option<(::notify::RecommendedWatcher, mpsc::Receiver<()>)>,
    /// When the last event's settle ends, while one is pending.
    settle_at: Option<tokio::time::Instant>,
}

/// How often the file is looked at when it cannot be watched.
const POLL: std::time::Duration = std::time::Duration::from_secs(2);
/// How long after an event the file is read: an editor's save is several events.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

impl FileWatch {
    /// A watch on `path`, whose content was `known` ([`crate::config::text_hash`]; 0: unknown,
    /// taken now) when the running configuration was read from it.
    pub fn new(path: &Path, known: u64) -> FileWatch {
        let mut w = FileWatch {
            path: path.to_path_buf(),
            meta: None,
            hash: known,
            events: watch(path),
            settle_at: None,
        };
        if w.events.is_none() {
            warn!(path = %path.display(), "cannot watch the job file; looking at it every 2s");
        }
        if known == 0 {
            w.changed();
        }
        w
    }

    /// Resolves when the file may have changed: after an event and a short settle, or at the
    /// next poll where it cannot be watched. Cancel-safe (the daemon's loop drops it whenever
    /// another event comes first): an event seen is kept until its settle has passed.
    pub async fn wait(&mut self) {
        let Some((_, rx)) = &mut self.events else {
            return tokio::time::sleep(POLL).await;
        };
        let at = if let Some(at) = self.settle_at {
            at
        } else {
            if rx.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
            *self.settle_at.insert(tokio::time::Instant::now() + SETTLE)
        };
        tokio::time::sleep_until(at).await;
        self.settle_at = None;
        while rx.try_recv().is_ok() {}
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
        let hash = crate::config::text_hash(&std::fs::read(&self.path).unwrap_or_default());
        let changed = hash != self.hash && self.hash != 0;
        self.hash = hash;
        changed
    }
}

/// A watch on the directory of `path`, sending a wake for each event that names the file.
fn watch(path: &Path) -> Option<(::notify::RecommendedWatcher, mpsc::Receiver<()>)> {
    use ::notify::Watcher as _;
    let name = path.file_name()?.to_os_string();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (tx, rx) = mpsc::channel(1);
    let mut watcher = ::notify::recommended_watcher(move |e: ::notify::Result<::notify::Event>| {
        let ours = e.map_or(true, |e| {
            e.paths.iter().any(|p| p.file_name() == Some(&name))
        });
        if ours {
            let _ = tx.try_send(()); // one pending wake is enough
        }
    })
    .ok()?;
    watcher
        .watch(&dir, ::notify::RecursiveMode::NonRecursive)
        .ok()?;
    Some((watcher, rx))
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
