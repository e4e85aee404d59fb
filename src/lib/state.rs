//! State files for tools run from cron: written atomically, guarded by a lock.
//!
//! A state file is replaced, never edited: the new contents go to `<state>.new`, are
//! fsynced, renamed over the old file, and the directory is fsynced, so a crash leaves
//! either the old state or the new one. Overlapping runs are kept apart by a lock on a
//! separate `<state>.lock` file (never on the renamed file, whose inode changes at every
//! save).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::Error;

/// An exclusive lock, released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Takes the lock that guards the state at `path` (the file `<path>.lock`). If another
/// process holds it: waits when `wait`, else fails with [`Error::Locked`].
pub fn lock(path: &Path, wait: bool) -> Result<Lock, Error> {
    let lock_path = with_suffix(path, ".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(lock_path.display().to_string(), e))?;
    let locked = if wait {
        file.lock().map_err(TryLockError::Error)
    } else {
        file.try_lock()
    };
    match locked {
        Ok(()) => Ok(Lock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(Error::Locked(path.display().to_string())),
        Err(TryLockError::Error(e)) => Err(Error::io(lock_path.display().to_string(), e)),
    }
}

/// Reads a state file; `None` if it does not exist.
pub fn read(path: &Path) -> Result<Option<String>, Error> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path.display().to_string(), e)),
    }
}

/// Replaces the file at `path` with `contents`, atomically and durably.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let temp = with_suffix(path, ".new");
    let io_err = |p: &Path| {
        let p = p.display().to_string();
        move |e| Error::io(p, e)
    };
    let mut file = File::create(&temp).map_err(io_err(&temp))?;
    file.write_all(contents).map_err(io_err(&temp))?;
    file.sync_all().map_err(io_err(&temp))?;
    drop(file);
    fs::rename(&temp, path).map_err(io_err(path))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Removes a state file; a missing one is not an error.
pub fn remove(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path.display().to_string(), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = lock(&state, false).unwrap();
        assert!(matches!(lock(&state, false), Err(Error::Locked(_))));
        drop(first);
        assert!(lock(&state, false).is_ok());
    }

    #[test]
    fn atomic_writes_replace_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert_eq!(read(&state).unwrap(), None);
        write_atomic(&state, b"one").unwrap();
        write_atomic(&state, b"two").unwrap();
        assert_eq!(read(&state).unwrap().as_deref(), Some("two"));
        assert!(!dir.path().join("state.new").exists());
        remove(&state).unwrap();
        remove(&state).unwrap();
    }
}
