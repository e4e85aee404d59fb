//! Whether a stats file's writer is gone: mmstats-clean's rule, kept with the format so a
//! reader and the cleaner agree on it.
//!
//! No wall clock decides it where something better exists. A native file records its
//! writer's start in clock ticks since boot, which a clock step cannot move; a format 1
//! file records only `sys.created` (wall time), so it is judged by whether the live
//! process with its pid maps the file, as a Python writer does for as long as it writes.
//! Only when that cannot be seen (another user's process, without root) are wall times
//! compared, with [`CLOCK_MARGIN`] of slack.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::process::{self, Liveness};
use super::{Format, StatsFile};

/// How much later than `sys.created` a format 1 writer's pid must have started, by the
/// wall clock, before the pid counts as reused when its mappings cannot be read. A forward
/// clock step after the writer started moves its btime-based start time forward by the
/// step: a step smaller than this cannot make a live file look stale.
pub const CLOCK_MARGIN: f64 = 3600.0;

/// Why a file's writer is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// The writer marked the file closed (native files).
    Closed,
    /// The file was written in another boot (native files).
    Rebooted,
    /// No process has the writer's pid.
    Dead,
    /// The process with the pid started after the writer (native: other start ticks;
    /// format 1 without readable mappings: more than [`CLOCK_MARGIN`] after `sys.created`).
    PidReused,
    /// The process with the writer's pid does not map the file (format 1).
    NotMapped,
    /// A per-thread file's writer thread has exited (native files).
    ThreadGone,
}

impl Stale {
    /// The reason's name in mmstats-clean's decisions.
    pub fn name(self) -> &'static str {
        match self {
            Stale::Closed => "closed",
            Stale::Rebooted => "rebooted",
            Stale::Dead => "dead",
            Stale::PidReused => "pid-reused",
            Stale::NotMapped => "not-mapped",
            Stale::ThreadGone => "thread-gone",
        }
    }
}

/// Why the writer of `stats` (read from `path`) is gone, or `None` if it is alive or the
/// file names no pid.
pub fn staleness(stats: &StatsFile, path: &Path) -> io::Result<Option<Stale>> {
    let owner = &stats.owner;
    if owner.closed {
        return Ok(Some(Stale::Closed));
    }
    if let (Some(file_boot), Some(this_boot)) = (owner.boot_id, process::boot_id()) {
        if file_boot != this_boot {
            return Ok(Some(Stale::Rebooted));
        }
    }
    let Some(pid) = owner.pid else {
        return Ok(None);
    };
    if process::liveness(pid)? == Liveness::Gone {
        return Ok(Some(Stale::Dead));
    }
    let stale = match stats.format {
        Format::Native => match owner.start_ticks {
            Some(ticks) if process::start_ticks(pid).is_some_and(|t| t != ticks) => {
                Some(Stale::PidReused)
            }
            _ => thread_gone(pid, owner.tid).then_some(Stale::ThreadGone),
        },
        Format::V1 => {
            let meta = fs::metadata(path)?;
            match process::maps_file(pid, meta.dev(), meta.ino()) {
                Some(true) => None,
                Some(false) => Some(Stale::NotMapped),
                None => owner
                    .created
                    .zip(process::start_time(pid))
                    .is_some_and(|(created, started)| started > created + CLOCK_MARGIN)
                    .then_some(Stale::PidReused),
            }
        }
    };
    Ok(stale)
}

/// True when a per-thread file's writer thread no longer exists in its live process.
/// [`super::Stats`]`<Local>` cannot leave the thread that created it, so the thread's exit
/// is the end of its writer.
fn thread_gone(pid: u32, tid: Option<u32>) -> bool {
    tid.is_some_and(|tid| !Path::new(&format!("/proc/{pid}/task/{tid}")).exists())
}
