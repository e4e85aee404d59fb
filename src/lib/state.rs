//! State files for tools run from cron: written atomically, guarded by a lock.
//!
//! A state file is replaced, never edited: the new contents go to a temporary file with a
//! unique name beside it (`.<state>.XXXXXX.new`, so two writers never share one), are
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

/// Reads a count file (a number and a newline, as the publishers' ack files hold): 0 when
/// it does not exist; `what` names it in the error when it holds something else.
pub fn read_count(path: &Path, what: &str) -> Result<u64, Error> {
    match read(path)? {
        None => Ok(0),
        Some(text) => text.trim().parse().map_err(|_| {
            Error::failed(format!(
                "{}: not {what} (expected a record count, found {:?})",
                path.display(),
                text.trim()
            ))
        }),
    }
}

/// Replaces the file at `path` with `contents`, atomically and durably, readable by its
/// owner only (mode 0600, as the temporary file is made).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), Error> {
    replace(path, contents, None)
}

/// Replaces the file at `path` with `contents`, atomically and durably, readable by
/// everyone (mode 0644): for files other programs collect, such as node_exporter's
/// textfile directory (whose collector skips the `.new` temporary).
pub fn publish(path: &Path, contents: &[u8]) -> Result<(), Error> {
    replace(path, contents, Some(0o644))
}

fn replace(path: &Path, contents: &[u8], mode: Option<u32>) -> Result<(), Error> {
    // A device or FIFO named as the file (`--ack /dev/null`) is written in place: renaming
    // over it would replace /dev/null itself with a regular file.
    if let Ok(meta) = fs::metadata(path) {
        if !meta.is_file() && !meta.is_dir() {
            return fs::OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|mut file| file.write_all(contents))
                .map_err(|e| Error::io(path.display().to_string(), e));
        }
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let io_err = |p: &Path| {
        let p = p.display().to_string();
        move |e| Error::io(p, e)
    };
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".new")
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    temp.write_all(contents).map_err(io_err(temp.path()))?;
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        temp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io_err(temp.path()))?;
    }
    temp.as_file().sync_all().map_err(io_err(temp.path()))?;
    temp.persist(path)
        .map_err(|e| Error::io(path.display().to_string(), e.error))?;
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

    /// `--ack /dev/null` (or any device) is written to, not renamed over: /dev/null stays
    /// the device (it was once replaced by a regular file, which broke every later reader
    /// of /dev/null on the machine).
    #[test]
    fn a_device_is_written_in_place_not_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let null = Path::new("/dev/null");
        write_atomic(null, b"12\n").unwrap();
        publish(null, b"12\n").unwrap();
        let kind = fs::metadata(null).unwrap().file_type();
        assert!(kind.is_char_device(), "/dev/null is no longer a device");
        assert_eq!(fs::read(null).unwrap(), b"");
    }

    use super::*;

    #[test]
    fn concurrent_writers_never_share_a_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        // The old fixed name `<state>.new`, left by a crashed writer or held by another,
        // no longer matters.
        fs::write(dir.path().join("state.new"), "stale").unwrap();
        let writers: Vec<_> = (0..8)
            .map(|i| {
                let state = state.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        write_atomic(&state, format!("writer {i}").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let text = read(&state).unwrap().unwrap();
        assert!(text.starts_with("writer "), "{text}");
        assert_eq!(
            fs::read_to_string(dir.path().join("state.new")).unwrap(),
            "stale"
        );
    }

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
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state"]);
        remove(&state).unwrap();
        remove(&state).unwrap();
    }
}
