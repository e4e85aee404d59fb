//! Facts about processes that decide whether a stats file's writer is still there: is the
//! pid alive, when did it start (a reused pid started later than the file's writer), and
//! which boot is this (a persistent directory survives reboots).

use std::fs;
use std::io;

/// What `kill(pid, 0)` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// It exists and we may signal it.
    Alive,
    /// It exists but belongs to another user (EPERM).
    AliveOtherUser,
    /// No such process (ESRCH).
    Gone,
}

/// Asks the kernel whether `pid` exists, without signalling it.
pub fn liveness(pid: u32) -> io::Result<Liveness> {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return Ok(Liveness::Gone);
    };
    if pid <= 0 {
        // kill(0, ...) and kill(-1, ...) address process groups: never a file's writer.
        return Ok(Liveness::Gone);
    }
    // SAFETY: kill with signal 0 only performs the existence and permission checks.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return Ok(Liveness::Alive);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ESRCH) => Ok(Liveness::Gone),
        Some(libc::EPERM) => Ok(Liveness::AliveOtherUser),
        _ => Err(err),
    }
}

/// Whether `pid` has the file `(dev, ino)` mapped, from `/proc/PID/maps`: `None` when the
/// maps cannot be read (another user's process, without root), or the process is gone.
/// A writer keeps its stats file mapped for as long as it writes it, so this needs no
/// clock at all.
pub fn maps_file(pid: u32, dev: u64, ino: u64) -> Option<bool> {
    let maps = fs::read(format!("/proc/{pid}/maps")).ok()?;
    let want = format!("{:02x}:{:02x} {ino} ", libc::major(dev), libc::minor(dev));
    Some(maps.split(|&b| b == b'\n').any(|line| {
        // address perms offset dev inode path: skip three fields, compare the next two.
        let mut rest = line;
        for _ in 0..3 {
            match rest.iter().position(|&b| b == b' ') {
                Some(at) => rest = &rest[at + 1..],
                None => return false,
            }
        }
        rest.starts_with(want.as_bytes())
    }))
}

/// The start time of `pid` in clock ticks since boot (`/proc/PID/stat` field 22), or
/// `None` if it cannot be read (gone, or no procfs).
pub fn start_ticks(pid: u32) -> Option<u64> {
    parse_start_ticks(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The start time of the calling process in clock ticks since boot.
pub fn own_start_ticks() -> Option<u64> {
    parse_start_ticks(&fs::read_to_string("/proc/self/stat").ok()?)
}

/// Field 22 of a `/proc/PID/stat` line. The command (field 2) may contain spaces and
/// parentheses, so fields are counted from the last `)`.
fn parse_start_ticks(stat: &str) -> Option<u64> {
    let after_command = &stat[stat.rfind(')')? + 1..];
    // Fields 3, 4, ... follow; field 22 is the 20th of them.
    after_command.split_whitespace().nth(19)?.parse().ok()
}

/// When `pid` started, epoch seconds (to within a second: the boot time is whole seconds).
pub fn start_time(pid: u32) -> Option<f64> {
    let ticks = start_ticks(pid)?;
    Some(boot_time()? as f64 + ticks as f64 / clock_ticks_per_second()? as f64)
}

/// The boot time, epoch seconds (`btime` of `/proc/stat`).
fn boot_time() -> Option<u64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

fn clock_ticks_per_second() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0)
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`) as 16 bytes, if known.
pub fn boot_id() -> Option<[u8; 16]> {
    let text = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    uuid::Uuid::parse_str(text.trim())
        .ok()
        .map(|id| *id.as_bytes())
}

/// The calling thread's kernel thread id.
pub fn thread_id() -> u32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    let tid = unsafe { libc::gettid() };
    u32::try_from(tid).unwrap_or(0)
}

/// The basename of the running program, as mmstats' `{CMD}`.
pub fn command_name() -> String {
    std::env::args_os()
        .next()
        .as_deref()
        .map(std::path::Path::new)
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_ticks_skip_commands_with_spaces_and_parens() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_ticks(line), Some(987654));
    }

    #[test]
    fn this_process_is_alive_and_has_a_start_time() {
        assert_eq!(liveness(std::process::id()).unwrap(), Liveness::Alive);
        assert_eq!(start_ticks(std::process::id()), own_start_ticks());
        assert!(start_time(std::process::id()).is_some());
        assert!(boot_id().is_some());
        assert!(thread_id() > 0);
    }
}
