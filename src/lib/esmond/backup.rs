//! Online backup of a live archive: a consistent copy made while the server goes on
//! writing, into a directory a server can start from (`esmond-serve --data DEST`).
//!
//! The copy is SQLite's online backup of one read transaction: in WAL mode a reader holds
//! its snapshot while the writer appends to the log, so the copy is the archive as it was
//! at one commit, whatever is written meanwhile, and the writer never waits for it. Every
//! write answered before the backup began is in it. Pages are copied in steps (for
//! progress); the held transaction keeps the steps on one snapshot. The copy is made as
//! `archive.sqlite.partial`, flushed, and renamed into place, so a killed backup leaves no
//! file a server would take for an archive.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::error::Error;

/// The archive's file name in a data directory.
pub const FILE: &str = "archive.sqlite";

/// Pages copied per step (16 MB of 4 KB pages) between progress reports.
const STEP_PAGES: i32 = 4096;

/// What a backup copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// The copy's path (`DEST/archive.sqlite`).
    pub path: PathBuf,
    /// Pages copied.
    pub pages: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// How long it took.
    pub took: Duration,
}

/// A database error on `path`, named.
fn sqlite(path: &Path, err: rusqlite::Error) -> Error {
    Error::failed(format!("{}: {err}", path.display()))
}

impl std::fmt::Display for Copied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} pages, {} bytes) in {:.1} s",
            self.path.display(),
            self.pages,
            self.bytes,
            self.took.as_secs_f64()
        )
    }
}

/// Copies the archive in `data` into `dest` (created if missing) while it may be in use;
/// `progress(copied, total)` hears of each step's pages. Fails if `dest` already holds an
/// archive, or `data` holds none; [`Error::Locked`] while another backup into `dest` runs
/// (its lock is `DEST/archive.sqlite.lock`).
pub fn backup(
    data: &Path,
    dest: &Path,
    mut progress: impl FnMut(u64, u64),
) -> Result<Copied, Error> {
    let started = Instant::now();
    let source_path = data.join(FILE);
    if !source_path.is_file() {
        return Err(Error::failed(format!(
            "{}: no archive there",
            source_path.display()
        )));
    }
    let io = |path: &Path, e: std::io::Error| Error::io(path.display().to_string(), e);
    std::fs::create_dir_all(dest).map_err(|e| io(dest, e))?;
    let target = dest.join(FILE);
    let _lock = crate::state::lock(&target, false)?;
    if target.exists() {
        return Err(Error::failed(format!(
            "{}: an archive is already there; back up into a new directory",
            target.display()
        )));
    }
    let partial = dest.join(format!("{FILE}.partial"));
    // A killed backup's leftovers (the lock is held).
    for leftover in [
        partial.clone(),
        dest.join(format!("{FILE}.partial-journal")),
    ] {
        match std::fs::remove_file(&leftover) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&leftover, e)),
            _ => {}
        }
    }
    // Read-only and never creating: a backup must not change the archive it copies.
    let source = Connection::open_with_flags(
        &source_path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| sqlite(&source_path, e))?;
    source
        .busy_timeout(Duration::from_secs(10))
        .map_err(|e| sqlite(&source_path, e))?;
    // One snapshot for every step: the read transaction is held until the copy is done.
    source
        .execute_batch("BEGIN")
        .and_then(|()| source.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())))
        .map_err(|e| sqlite(&source_path, e))?;
    let mut copy = Connection::open(&partial).map_err(|e| sqlite(&partial, e))?;
    {
        let backup =
            rusqlite::backup::Backup::new(&source, &mut copy).map_err(|e| sqlite(&partial, e))?;
        loop {
            let step = backup.step(STEP_PAGES).map_err(|e| sqlite(&partial, e))?;
            let done = backup.progress();
            let total = done.pagecount.max(0) as u64;
            progress(total - done.remaining.max(0) as u64, total);
            match step {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => {}
                // The copy's own file is busy (nothing else should open it): wait a little.
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
    // The snapshot is no longer needed: let the server's checkpoints pass it.
    drop(source);
    let number = |pragma: &str| {
        copy.query_row(pragma, [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| sqlite(&partial, e))
    };
    let (pages, page_size) = (number("PRAGMA page_count")?, number("PRAGMA page_size")?);
    // The backup's commit flushed the copy (synchronous = FULL); close it, then make the
    // rename itself durable.
    copy.close().map_err(|(_, e)| sqlite(&partial, e))?;
    std::fs::rename(&partial, &target).map_err(|e| io(&target, e))?;
    std::fs::File::open(dest)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dest, e))?;
    Ok(Copied {
        path: target,
        pages,
        bytes: pages * page_size,
        took: started.elapsed(),
    })
}
