//! The proc tracer: per-process CPU, memory, file descriptors, I/O, context switches and
//! page faults from `/proc` (through the procfs crate), like Telegraf's procstat.
//!
//! Processes are chosen anew at every tick ([`Selector`]), so processes that start later
//! appear and those that end drop out without an error. A process is known by its PID and
//! its start time: a restarted program, or a PID the kernel gave to another process, starts
//! afresh (no rate is computed across the two).
//!
//! Series, each one record per process per tick (records.md §4) with the fields `pid`,
//! `comm` and `start` (the process's start, epoch seconds):
//!
//! | series | unit | |
//! |---|---|---|
//! | `cpu_user`, `cpu_system` | `%` | of one core, over the last interval |
//! | `rss`, `vms` | `bytes` | resident and virtual size |
//! | `threads`, `fds` | `count` | `fds` needs the right to read the process's `/proc/PID/fd` |
//! | `read_bytes`, `write_bytes` | `bytes/s` | storage I/O (`/proc/PID/io`, same right) |
//! | `read_calls`, `write_calls` | `calls/s` | read and write system calls |
//! | `ctx_voluntary`, `ctx_involuntary` | `switches/s` | context switches |
//! | `faults_minor`, `faults_major` | `faults/s` | page faults |
//!
//! Rates and CPU need two readings, so a process's first tick gives its sizes and counts
//! only. Every tick also gives one `matched` record (unit `processes`, no process fields):
//! how many processes were selected, 0 included, so "nothing found" is a sample too.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

use procfs::process::{Process, Stat};
use regex::Regex;
use serde::Serialize;

use super::{rate, NoFields, Tags};
use crate::ndjson::NdjsonWriter;

/// Which processes to trace. PIDs, PID files and cgroups name candidates (all of them
/// together); without any, every process is a candidate. `pattern` and `uid` then keep
/// the candidates that match both. The tracer itself is never selected.
#[derive(Debug, Default)]
pub struct Selector {
    /// PIDs given as such.
    pub pids: Vec<i32>,
    /// Files holding a PID, read at every tick.
    pub pidfiles: Vec<PathBuf>,
    /// cgroup v2 directories (absolute, or under `/sys/fs/cgroup`); their `cgroup.procs`
    /// are read at every tick.
    pub cgroups: Vec<PathBuf>,
    /// Matched against the command line, its arguments joined by spaces (the command name
    /// for a process without one, such as a kernel thread).
    pub pattern: Option<Regex>,
    /// The real user id the process must run as.
    pub uid: Option<u32>,
}

/// How often (in samples) a process that was matched by its command line is matched again:
/// reading a command line means reading the process's memory, the costliest part of a
/// sample, and a process changes its title (setproctitle) rarely after its start.
pub const MATCH_AGAIN: u64 = 10;

/// What [`Selector::select`] keeps from one sample to the next.
#[derive(Debug, Default)]
pub struct Selection {
    /// PID files and cgroups that could not be read (each reported once).
    unreadable: HashSet<PathBuf>,
    /// By PID: the process's start, whether its command line matched, and the sample it
    /// was last read at.
    matched: HashMap<i32, (u64, bool, u64)>,
    next: HashMap<i32, (u64, bool, u64)>,
    samples: u64,
    /// For reading `stat` files.
    buffer: Vec<u8>,
}

impl Selector {
    /// The processes selected now, by PID, in order, each with its `stat` as read now. A
    /// PID file or cgroup that cannot be read selects nothing and is reported through
    /// `warn` (once, until it can be read again). A process's command line is read when it
    /// is first seen and again every [`MATCH_AGAIN`] samples.
    pub fn select(&self, state: &mut Selection, warn: fn(&str)) -> Vec<(Process, Stat)> {
        let named = !(self.pids.is_empty() && self.pidfiles.is_empty() && self.cgroups.is_empty());
        let mut candidates: Vec<i32> = self.pids.clone();
        let unreadable = &mut state.unreadable;
        let mut note = |path: &PathBuf, text: Result<String, std::io::Error>| -> String {
            match text {
                Ok(text) => {
                    unreadable.remove(path);
                    text
                }
                Err(e) => {
                    if unreadable.insert(path.clone()) {
                        warn(&format!("{}: {e}; it selects no process", path.display()));
                    }
                    String::new()
                }
            }
        };
        for file in &self.pidfiles {
            let text = note(file, std::fs::read_to_string(file));
            candidates.extend(
                text.split_whitespace()
                    .next()
                    .and_then(|p| p.parse::<i32>().ok()),
            );
        }
        for group in &self.cgroups {
            let path = cgroup_procs(group);
            let text = note(&path, std::fs::read_to_string(&path));
            candidates.extend(text.lines().filter_map(|p| p.trim().parse::<i32>().ok()));
        }
        let me = std::process::id() as i32;
        let processes: Vec<Process> = if named {
            candidates.sort_unstable();
            candidates.dedup();
            candidates
                .into_iter()
                .filter_map(|pid| Process::new(pid).ok())
                .collect()
        } else {
            procfs::process::all_processes()
                .map(|all| all.filter_map(Result::ok).collect())
                .unwrap_or_default()
        };
        let sample = state.samples;
        state.samples += 1;
        state.next.clear();
        let mut selected = Vec::with_capacity(processes.len());
        for process in processes {
            let pid = process.pid();
            if pid == me || self.uid.is_some_and(|uid| process.uid().ok() != Some(uid)) {
                continue;
            }
            let Some(stat) = read_stat(&process, &mut state.buffer) else {
                continue;
            };
            if let Some(pattern) = &self.pattern {
                let known = state.matched.get(&pid).filter(|(start, _, read)| {
                    *start == stat.starttime && sample - read < MATCH_AGAIN
                });
                let entry = match known {
                    Some(&entry) => entry,
                    None => {
                        let Some(line) = command_line(&process, &stat) else {
                            continue;
                        };
                        (stat.starttime, pattern.is_match(&line), sample)
                    }
                };
                state.next.insert(pid, entry);
                if !entry.1 {
                    continue;
                }
            }
            selected.push((process, stat));
        }
        std::mem::swap(&mut state.matched, &mut state.next);
        selected
    }
}

/// Reads the file `name` of `process` into `buffer` (cleared first), in pieces: procfs's
/// own readers, like `read_to_end`, first stat the file and seek in it to size a buffer,
/// two system calls per file for a size /proc does not know. `None` if the process has gone
/// or the file cannot be read.
fn read_file(process: &Process, name: &str, buffer: &mut Vec<u8>) -> Option<()> {
    use std::io::Read;
    buffer.clear();
    let mut file = process.open_relative(name).ok()?;
    let mut piece = [0u8; 4096];
    loop {
        match file.read(&mut piece) {
            Ok(0) => return Some(()),
            Ok(n) => buffer.extend_from_slice(&piece[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// A process's `stat`, read with [`read_file`].
fn read_stat(process: &Process, buffer: &mut Vec<u8>) -> Option<Stat> {
    read_file(process, "stat", buffer)?;
    <Stat as procfs::FromRead>::from_read(&buffer[..]).ok()
}

/// `cgroup.procs` of a cgroup given as an absolute directory or one under `/sys/fs/cgroup`.
fn cgroup_procs(group: &std::path::Path) -> PathBuf {
    let base = std::path::Path::new("/sys/fs/cgroup");
    let dir = if group.starts_with(base) {
        group.to_path_buf()
    } else {
        base.join(group.strip_prefix("/").unwrap_or(group))
    };
    dir.join("cgroup.procs")
}

/// A process's command line, its arguments joined by spaces; its command name when it has
/// none. `None` once it has gone.
fn command_line(process: &Process, stat: &Stat) -> Option<String> {
    let args = process.cmdline().ok()?;
    if args.is_empty() {
        return Some(stat.comm.clone());
    }
    Some(args.join(" "))
}

/// A process's counters at one reading.
#[derive(Debug, Clone, Copy)]
struct Reading {
    at: Instant,
    /// Clock ticks since boot at its start: with the PID, who the process is.
    started: u64,
    utime: u64,
    stime: u64,
    minflt: u64,
    majflt: u64,
    io: Option<[u64; 4]>,
    switches: Option<[u64; 2]>,
}

/// The series of `/proc/PID/io`, in the order a [`Reading`] keeps them.
const IO_SERIES: [(&str, &str); 4] = [
    ("read_bytes", "bytes/s"),
    ("write_bytes", "bytes/s"),
    ("read_calls", "calls/s"),
    ("write_calls", "calls/s"),
];

/// The fields of every per-process record.
#[derive(Debug, Serialize)]
struct ProcessFields<'a> {
    pid: i32,
    comm: &'a str,
    start: f64,
}

/// Samples processes and writes their records; keeps each process's last reading for the
/// next tick's rates.
#[derive(Debug)]
pub struct Sampler {
    tags: Tags,
    last: HashMap<i32, Reading>,
    /// The map the next tick fills (kept to reuse its memory).
    seen: HashMap<i32, Reading>,
    ticks_per_second: f64,
    page_size: u64,
    boot: f64,
    /// For reading `status` and `io` files.
    buffer: Vec<u8>,
}

impl Sampler {
    /// A sampler writing records tagged `tags`.
    pub fn new(tags: Tags) -> Sampler {
        Sampler {
            tags,
            last: HashMap::new(),
            seen: HashMap::new(),
            ticks_per_second: procfs::ticks_per_second() as f64,
            page_size: procfs::page_size(),
            boot: procfs::boot_time_secs().unwrap_or(0) as f64,
            buffer: Vec::with_capacity(4096),
        }
    }

    /// A process's voluntary and involuntary context switches, from its `status`. Read here
    /// rather than by procfs's `Process::status`, which parses all of the file's ~55
    /// fields into a map (a third of proc-trace's time on 1,000 processes) for these two.
    fn switches(&mut self, process: &Process) -> Option<[u64; 2]> {
        read_file(process, "status", &mut self.buffer)?;
        let status = std::str::from_utf8(&self.buffer).ok()?;
        let field = |name: &str| -> Option<u64> {
            let at = status.find(name)? + name.len();
            let rest = status[at..].strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        };
        Some([
            field("\nvoluntary_ctxt_switches")?,
            field("\nnonvoluntary_ctxt_switches")?,
        ])
    }

    /// A process's storage bytes and read/write calls, from its `io`.
    fn io(&mut self, process: &Process) -> Option<[u64; 4]> {
        read_file(process, "io", &mut self.buffer)?;
        let io =
            <procfs::process::Io as procfs::FromBufRead>::from_buf_read(&self.buffer[..]).ok()?;
        Some([io.read_bytes, io.write_bytes, io.syscr, io.syscw])
    }

    /// Reads every process of `processes` (with the `stat` read when it was selected) and
    /// writes its records, then the `matched` record.
    pub fn tick(
        &mut self,
        out: &mut NdjsonWriter,
        processes: &[(Process, Stat)],
        ts: f64,
    ) -> Result<usize, crate::Error> {
        let mut seen = std::mem::take(&mut self.seen);
        seen.clear();
        let mut matched = 0;
        for (process, stat) in processes {
            let now = Instant::now();
            let io = self.io(process);
            let switches = self.switches(process);
            let reading = Reading {
                at: now,
                started: stat.starttime,
                utime: stat.utime,
                stime: stat.stime,
                minflt: stat.minflt,
                majflt: stat.majflt,
                io,
                switches,
            };
            let pid = process.pid();
            let fields = ProcessFields {
                pid,
                comm: &stat.comm,
                start: self.boot + stat.starttime as f64 / self.ticks_per_second,
            };
            let mut put = |series: &str, unit: &str, value: u64| {
                self.tags.write(out, ts, series, unit, value, &fields)
            };
            put("rss", "bytes", stat.rss.saturating_mul(self.page_size))?;
            put("vms", "bytes", stat.vsize)?;
            put("threads", "count", stat.num_threads.max(0) as u64)?;
            if let Ok(fds) = process.fd_count() {
                put("fds", "count", fds as u64)?;
            }
            let before = self.last.get(&pid).filter(|b| b.started == stat.starttime);
            if let Some(before) = before {
                let seconds = (now - before.at).as_secs_f64();
                let mut put = |series: &str, unit: &str, now: u64, then: u64, scale: f64| match rate(
                    now,
                    Some(then),
                    seconds,
                ) {
                    Some(rate) => self
                        .tags
                        .write(out, ts, series, unit, rate * scale, &fields),
                    None => Ok(()),
                };
                let cpu = 100.0 / self.ticks_per_second;
                put("cpu_user", "%", reading.utime, before.utime, cpu)?;
                put("cpu_system", "%", reading.stime, before.stime, cpu)?;
                if let (Some(io), Some(was)) = (reading.io, before.io) {
                    for (i, (series, unit)) in IO_SERIES.into_iter().enumerate() {
                        put(series, unit, io[i], was[i], 1.0)?;
                    }
                }
                if let (Some(now), Some(was)) = (reading.switches, before.switches) {
                    put("ctx_voluntary", "switches/s", now[0], was[0], 1.0)?;
                    put("ctx_involuntary", "switches/s", now[1], was[1], 1.0)?;
                }
                put(
                    "faults_minor",
                    "faults/s",
                    reading.minflt,
                    before.minflt,
                    1.0,
                )?;
                put(
                    "faults_major",
                    "faults/s",
                    reading.majflt,
                    before.majflt,
                    1.0,
                )?;
            }
            seen.insert(pid, reading);
            matched += 1;
        }
        self.seen = std::mem::replace(&mut self.last, seen);
        self.tags
            .write(out, ts, "matched", "processes", matched, NoFields {})?;
        Ok(matched)
    }
}
