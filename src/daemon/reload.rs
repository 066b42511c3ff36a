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

/// Notices a change of the job file. inotify watches the file's directory, since editors save
/// by writing a new file and renaming it over the old one; an event only prompts a look, and
/// the file counts as changed when its content differs (a touch is not a change). Where no
/// watch can be set, the path is looked at every [`POLL`] instead.
pub struct FileWatch {
    path: PathBuf,
    meta: Option<(Option<std::time::SystemTime>, u64)>,
    hash: u64,
    /// Wakes from the watch thread; `None` where there is no watch (or it ended).
    events: Option<mpsc::Receiver<()>>,
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
        let Some(rx) = &mut self.events else {
            return tokio::time::sleep(POLL).await;
        };
        let at = if let Some(at) = self.settle_at {
            at
        } else {
            if rx.recv().await.is_none() {
                warn!(path = %self.path.display(), "the job file's watch ended; looking at it every 2s");
                self.events = None;
                return;
            }
            *self.settle_at.insert(tokio::time::Instant::now() + SETTLE)
        };
        tokio::time::sleep_until(at).await;
        self.settle_at = None;
        if let Some(rx) = &mut self.events {
            while rx.try_recv().is_ok() {}
        }
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

/// A watch on the directory of `path` for what saving a file does (written and closed, moved in
/// or out, created, deleted), sending a wake for each event that names the file. Opens and
/// writes are left out: the database and its WAL often sit beside the job file, and with every
/// event watched (the `notify` crate's mask) their writes kept the watch thread at a tenth of
/// the daemon's CPU under load. The thread ends at the first event after the receiver is
/// dropped, or when the directory goes.
fn watch(path: &Path) -> Option<mpsc::Receiver<()>> {
    use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
    let name = path.file_name()?.to_os_string();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let fd = inotify::init(CreateFlags::CLOEXEC).ok()?;
    let saves = WatchFlags::CLOSE_WRITE
        | WatchFlags::MOVED_TO
        | WatchFlags::MOVED_FROM
        | WatchFlags::CREATE
        | WatchFlags::DELETE;
    inotify::add_watch(&fd, &dir, saves).ok()?;
    let (tx, rx) = mpsc::channel(1);
    std::thread::Builder::new()
        .name("watchbell-watch".into())
        .spawn(move || {
            let mut buf = [std::mem::MaybeUninit::uninit(); 4096];
            let mut events = inotify::Reader::new(&fd, &mut buf);
            loop {
                let event = match events.next() {
                    Ok(e) => e,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => return,
                };
                let flags = event.events();
                let ours = flags.contains(ReadFlags::QUEUE_OVERFLOW)
                    || event
                        .file_name()
                        .is_some_and(|n| n.to_bytes() == name.as_encoded_bytes());
                if ours {
                    let _ = tx.try_send(()); // one pending wake is enough
                }
                if tx.is_closed() || flags.contains(ReadFlags::IGNORED) {
                    return;
                }
            }
        })
        .ok()?;
    Some(rx)
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
            if old.api.sandbox {
                let (base, v1) = (old.api.base_url.clone(), old.api.v1_base());
                for dropped in new.use_sandbox(base, v1) {
                    warn!("{dropped}");
                }
            }
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
            d.set_links().await;
            let _ = scheduler.send(Command::Reload(entries)).await;
        }
    }
    notify::ready();
    Ok(())
}
