//! The database's files beside `SQLite`'s own: who may read them (0600: they hold scraped personal
//! data), who may write them (the owner; a command run as another user would leave WAL files the
//! daemon cannot open), and the lock files that keep one daemon per database and one remote
//! sync at a time.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Result, StoreError};

/// `SQLite`'s companions of a database file.
const COMPANIONS: [&str; 3] = ["", "-wal", "-shm"];

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_os_string();
    p.push(suffix);
    PathBuf::from(p)
}

/// Creates the database file 0600 (whatever the umask) before `SQLite` does; `SQLite` then gives
/// its `-wal` and `-shm` files the same mode.
pub fn create_private(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    match OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Brings an existing database and its companions down to 0600 (databases made by earlier
/// versions were 0644). Files owned by someone else are left alone.
pub fn restrict(path: &Path) {
    for suffix in COMPANIONS {
        let p = with_suffix(path, suffix);
        if let Ok(meta) = p.metadata()
            && meta.mode() & 0o077 != 0
            && meta.uid() == effective_uid().unwrap_or(u32::MAX)
        {
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
        }
    }
}

/// This process's effective user id (from `/proc/self/status`; `None` where there is none).
pub fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Why this process must not write the database at `path`: it belongs to another user, and
/// files this process creates beside it (WAL, SHM, locks) would be unreadable to its owner.
pub fn foreign_owner(path: &Path) -> Option<String> {
    let owner = path.metadata().ok()?.uid();
    let me = effective_uid()?;
    (owner != me).then(|| {
        format!(
            "{} belongs to uid {owner} and this command runs as uid {me}: files it would create \
             beside it (-wal, -shm) could not be opened by the owner's daemon; run it as the \
             owner (e.g. sudo -u '#{owner}' watchbell ...) or read with --db on a copy",
            path.display()
        )
    })
}

/// An exclusive lock on a file beside the database, held while this value lives.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Takes `DB.lock` for the life of the daemon: one daemon per database. Fails at once, naming
/// the holder, when another process has it.
pub fn daemon_lock(db: &Path) -> std::result::Result<Lock, String> {
    let path = with_suffix(db, ".lock");
    let mut file = open_lock(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            let me = format!("pid {} on {}\n", std::process::id(), hostname());
            let _ = file.set_len(0);
            let _ = file.rewind();
            let _ = file.write_all(me.as_bytes());
            Ok(Lock { _file: file })
        }
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                "another process"
            } else {
                holder
            };
            Err(format!(
                "another watchbell daemon ({holder}) already runs on {}; one daemon per database",
                db.display()
            ))
        }
        Err(TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// Takes `DB.sync.lock`, waiting up to `patience` for another reconcile to finish; `None` when
/// it did not. A CLI `sync` and the daemon's own never run at once.
pub fn sync_lock(db: &Path, patience: Duration) -> Option<Lock> {
    let path = with_suffix(db, ".sync.lock");
    let file = open_lock(&path).ok()?;
    let start = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Some(Lock { _file: file }),
            Err(TryLockError::WouldBlock) if start.elapsed() < patience => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(_) => return None,
        }
    }
}

fn open_lock(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "this host".into(), |h| h.trim().to_string())
}

#[cfg(test)]
mod tests {

    /// The files beside a database (WAL, SHM, the daemon's and sync's locks) stay out of a
    /// checkout's `git status`.
    #[test]
    fn the_files_beside_a_database_are_ignored_by_git() {
        let ignored = include_str!("../../.gitignore");
        for suffix in ["", "-wal", "-shm", ".lock", ".sync.lock"] {
            let pattern = format!("*.db{suffix}");
            assert!(ignored.lines().any(|l| l == pattern), "{pattern}");
        }
        let db = std::path::Path::new("watchbell.db");
        assert_eq!(
            with_suffix(db, ".lock"),
            std::path::Path::new("watchbell.db.lock")
        );
    }

    use super::*;

    #[test]
    fn the_database_and_its_wal_are_private_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("w.db");
        let store = super::super::Store::open(&db).unwrap();
        store
            .call_blocking(
                |c| Ok(c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")?),
            )
            .unwrap();
        for suffix in COMPANIONS {
            let p = with_suffix(&db, suffix);
            let mode = p.metadata().unwrap().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is {mode:o}", p.display());
        }
    }

    #[test]
    fn an_existing_open_database_is_brought_down_to_0600() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("w.db");
        std::fs::write(&db, b"").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(super::super::Store::open(&db).unwrap());
        assert_eq!(db.metadata().unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_second_daemon_lock_fails_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("w.db");
        let held = daemon_lock(&db).unwrap();
        let err = daemon_lock(&db).unwrap_err();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        assert!(daemon_lock(&db).is_ok());
    }

    #[test]
    fn one_sync_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("w.db");
        let held = sync_lock(&db, Duration::ZERO).unwrap();
        assert!(sync_lock(&db, Duration::from_millis(200)).is_none());
        drop(held);
        assert!(sync_lock(&db, Duration::ZERO).is_some());
    }
}
