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
use crate::record::fast::{self, WriteMembers};

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
#[derive(Debug)]
pub struct Selection {
    /// PID files and cgroups that could not be read (each reported once).
    unreadable: HashSet<PathBuf>,
    /// By PID: the process's start, whether its command line matched, and the sample it
    /// was last read at.
    matched: HashMap<i32, (u64, bool, u64)>,
    next: HashMap<i32, (u64, bool, u64)>,
    samples: u64,
    /// The processes of the last sample, kept open for the next.
    open: HashMap<i32, Open>,
    /// How many more files may be kept open.
    spare: u64,
    /// For reading `/proc` files.
    buffer: Vec<u8>,
}

impl Default for Selection {
    /// A selection that may keep open all but 128 of the files the process may open
    /// (its soft limit raised to the hard one first).
    fn default() -> Selection {
        Selection::with_spare(crate::limits::raise_open_files().saturating_sub(128))
    }
}

impl Selection {
    /// A selection that keeps at most `spare` files open between samples; the processes
    /// beyond are opened anew at every sample.
    pub fn with_spare(spare: u64) -> Selection {
        Selection {
            unreadable: HashSet::new(),
            matched: HashMap::new(),
            next: HashMap::new(),
            samples: 0,
            open: HashMap::new(),
            spare,
            buffer: vec![0; 4096],
        }
    }

    /// Forgets the process `pid` (it has gone), giving back the files it kept.
    fn close(&mut self, pid: i32) {
        if let Some(open) = self.open.remove(&pid) {
            self.spare += open.kept();
        }
    }

    /// Reads the file `kind` of the selected process `pid` into the buffer; its length.
    fn read(&mut self, pid: i32, kind: Kind) -> Option<usize> {
        let open = self.open.get_mut(&pid)?;
        let buffer = &mut self.buffer;
        open.with(kind, &mut self.spare, |file| read_whole(file, buffer))
    }

    /// How many times the process `pid` (its main thread) has been given a CPU, the third
    /// field of its `schedstat`. `None` if the kernel does not keep it.
    fn scheduled(&mut self, pid: i32) -> Option<u64> {
        let len = self.read(pid, Kind::Schedstat)?;
        let text = std::str::from_utf8(&self.buffer[..len]).ok()?;
        text.split_ascii_whitespace().nth(2)?.parse().ok()
    }

    /// The number of open files of the selected process `pid`: since Linux 6.2 the size of
    /// its `fd` directory (one `fstat` of the kept directory), else by listing it.
    fn fds(&mut self, pid: i32) -> Option<u64> {
        let open = self.open.get_mut(&pid)?;
        let size = open.with(Kind::Fd, &mut self.spare, |dir| {
            Some(dir.metadata().ok()?.len())
        });
        match size {
            Some(size) if size > 0 => Some(size),
            _ => open.process.fd_count().ok().map(|n| n as u64),
        }
    }
}

/// The files of `/proc/PID` a sample reads, in the order [`Open`] keeps them.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Stat = 0,
    Status = 1,
    Io = 2,
    Fd = 3,
    Schedstat = 4,
}

impl Kind {
    fn name(self) -> &'static str {
        ["stat", "status", "io", "fd", "schedstat"][self as usize]
    }
}

/// A process's `/proc` directory and files, kept open from one sample to the next: the
/// kernel regenerates a `/proc` file when it is read again from its start, so a sample
/// costs one `pread` per file instead of an open, two reads and a close. A kept file of a
/// process that has gone fails with ESRCH, even once its PID is given to another process.
#[derive(Debug)]
struct Open {
    process: Process,
    /// Whether the directory itself counts against [`Selection::spare`] (else the process
    /// is opened anew at every sample, and keeps no file).
    kept: bool,
    files: [Option<std::fs::File>; 5],
}

impl Open {
    /// Opens the process `pid`, keeping its directory open if `spare` allows.
    fn new(pid: i32, spare: &mut u64) -> Option<Open> {
        let process = Process::new(pid).ok()?;
        let kept = *spare > 0;
        *spare -= u64::from(kept);
        Some(Open {
            process,
            kept,
            files: [None, None, None, None, None],
        })
    }

    /// How many files it keeps open.
    fn kept(&self) -> u64 {
        u64::from(self.kept) + self.files.iter().filter(|f| f.is_some()).count() as u64
    }

    /// Calls `f` with its file `kind`, kept open if `spare` allows. `None` if the process
    /// has gone or the file cannot be opened.
    fn with<T>(
        &mut self,
        kind: Kind,
        spare: &mut u64,
        f: impl FnOnce(&std::fs::File) -> Option<T>,
    ) -> Option<T> {
        let slot = &mut self.files[kind as usize];
        if let Some(file) = slot {
            return f(file);
        }
        let file = self.process.open_relative(kind.name()).ok()?;
        let result = f(&file);
        if self.kept && *spare > 0 {
            *spare -= 1;
            *slot = Some(file);
        }
        result
    }
}

/// Reads `file` from its start into `buffer` (grown when it is filled) and returns the
/// length read. A `/proc` file shows its whole text to a read large enough, so a read
/// shorter than asked is its end: one system call per file.
fn read_whole(file: &std::fs::File, buffer: &mut Vec<u8>) -> Option<usize> {
    use std::os::unix::fs::FileExt;
    let mut len = 0;
    loop {
        if len == buffer.len() {
            buffer.resize(buffer.len().max(2048) * 2, 0);
        }
        match file.read_at(&mut buffer[len..], len as u64) {
            Ok(0) => return Some(len),
            Ok(n) => {
                len += n;
                if len < buffer.len() {
                    return Some(len);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// A process [`Selector::select`] chose.
#[derive(Debug)]
pub struct Selected {
    /// Its PID.
    pub pid: i32,
    /// Its `stat`, as read when it was selected.
    pub stat: Stat,
    /// How many times its main thread had been given a CPU, read just before `stat`.
    pub scheduled: Option<u64>,
}

impl Selector {
    /// The processes selected now, by PID, in order, each with its `stat` as read now;
    /// `state` keeps them open for [`Sampler::tick`]. A PID file or cgroup that cannot be
    /// read selects nothing and is reported through `warn` (once, until it can be read
    /// again). A process's command line is read when it is first seen and again every
    /// [`MATCH_AGAIN`] samples.
    pub fn select(&self, state: &mut Selection, warn: fn(&str)) -> Vec<Selected> {
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
        if !named {
            candidates = std::fs::read_dir("/proc")
                .map(|dir| {
                    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
        }
        candidates.sort_unstable();
        candidates.dedup();
        let me = std::process::id() as i32;
        let sample = state.samples;
        state.samples += 1;
        state.next.clear();
        // Processes that are no longer candidates, and those not kept, are let go.
        let gone: Vec<i32> = state
            .open
            .iter()
            .filter(|(pid, open)| !open.kept || candidates.binary_search(pid).is_err())
            .map(|(pid, _)| *pid)
            .collect();
        for pid in gone {
            state.close(pid);
        }
        let mut selected = Vec::with_capacity(candidates.len());
        for pid in candidates {
            if pid == me {
                continue;
            }
            let Some((stat, scheduled)) = self.stat(state, pid) else {
                state.close(pid);
                continue;
            };
            if let Some(pattern) = &self.pattern {
                let known = state.matched.get(&pid).filter(|(start, _, read)| {
                    *start == stat.starttime && sample - read < MATCH_AGAIN
                });
                let entry = match known {
                    Some(&entry) => entry,
                    None => {
                        let line = state
                            .open
                            .get(&pid)
                            .and_then(|open| command_line(&open.process, &stat));
                        let Some(line) = line else {
                            state.close(pid);
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
            selected.push(Selected {
                pid,
                stat,
                scheduled,
            });
        }
        std::mem::swap(&mut state.matched, &mut state.next);
        selected
    }

    /// The `stat` of the candidate `pid` if it is there and runs as the right user, and
    /// its [`Selected::scheduled`] read just before; opens it when it is new. When a kept
    /// `stat` fails, the process has gone; its PID is opened afresh, as another process may
    /// have it now.
    fn stat(&self, state: &mut Selection, pid: i32) -> Option<(Stat, Option<u64>)> {
        let mut fresh = !state.open.contains_key(&pid);
        loop {
            if fresh {
                state.close(pid);
                let open = Open::new(pid, &mut state.spare)?;
                state.open.insert(pid, open);
            }
            let scheduled = state.scheduled(pid);
            if let Some(len) = state.read(pid, Kind::Stat) {
                let stat = <Stat as procfs::FromRead>::from_read(&state.buffer[..len]).ok()?;
                let uid = || state.open.get(&pid)?.process.uid().ok();
                if self.uid.is_some_and(|want| uid() != Some(want)) {
                    return None;
                }
                return Some((stat, scheduled));
            }
            if fresh {
                return None;
            }
            fresh = true;
        }
    }
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
    /// [`Selected::scheduled`] at this reading.
    scheduled: Option<u64>,
    /// Whether its main thread was running or runnable (state `R`) at this reading.
    running: bool,
}

/// Whether the main thread's context switches are still those of the reading `before`, so
/// its `status` (the costliest file of a sample) need not be read again: it was neither
/// running nor runnable at that reading, and it has not been given a CPU since the
/// scheduler count read just before it (`scheduled`, read now before `stat`). A thread
/// switches only off a CPU, and only after it was given one. A wake-up in the microseconds
/// between the `schedstat` and `stat` reads of the earlier sample shows one interval late;
/// totals stay exact.
fn unchanged(before: &Reading, scheduled: Option<u64>) -> bool {
    !before.running && before.scheduled.is_some() && before.scheduled == scheduled
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

impl WriteMembers for &ProcessFields<'_> {
    fn write_members(&self, out: &mut Vec<u8>) {
        fast::member(out, "pid");
        fast::integer(out, self.pid);
        fast::member(out, "comm");
        fast::string(out, self.comm);
        fast::member(out, "start");
        fast::float(out, self.start);
    }
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
        }
    }

    /// A process's voluntary and involuntary context switches, from its `status`. Read here
    /// rather than by procfs's `Process::status`, which parses all of the file's ~55
    /// fields into a map (a third of proc-trace's time on 1,000 processes) for these two.
    fn switches(selection: &mut Selection, pid: i32) -> Option<[u64; 2]> {
        let len = selection.read(pid, Kind::Status)?;
        let status = std::str::from_utf8(&selection.buffer[..len]).ok()?;
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
    fn io(selection: &mut Selection, pid: i32) -> Option<[u64; 4]> {
        let len = selection.read(pid, Kind::Io)?;
        let io =
            <procfs::process::Io as procfs::FromBufRead>::from_buf_read(&selection.buffer[..len])
                .ok()?;
        Some([io.read_bytes, io.write_bytes, io.syscr, io.syscw])
    }

    /// Reads every process of `processes` (with the `stat` read when `selection` selected
    /// it) and writes its records, then the `matched` record.
    pub fn tick(
        &mut self,
        out: &mut NdjsonWriter,
        selection: &mut Selection,
        processes: &[Selected],
        ts: f64,
    ) -> Result<usize, crate::Error> {
        let mut seen = std::mem::take(&mut self.seen);
        seen.clear();
        let mut matched = 0;
        for &Selected {
            pid,
            ref stat,
            scheduled,
        } in processes
        {
            let now = Instant::now();
            let before = self.last.get(&pid).filter(|b| b.started == stat.starttime);
            let io = Sampler::io(selection, pid);
            let switches = match before {
                Some(before) if unchanged(before, scheduled) => before.switches,
                _ => Sampler::switches(selection, pid),
            };
            let fds = selection.fds(pid);
            let reading = Reading {
                at: now,
                started: stat.starttime,
                utime: stat.utime,
                stime: stat.stime,
                minflt: stat.minflt,
                majflt: stat.majflt,
                io,
                switches,
                scheduled,
                running: stat.state == 'R',
            };
            let fields = ProcessFields {
                pid,
                comm: &stat.comm,
                start: self.boot + stat.starttime as f64 / self.ticks_per_second,
            };
            let mut put = |series: &str, unit: &str, value: u64| {
                self.tags.write_fast(out, ts, series, unit, value, &fields)
            };
            put("rss", "bytes", stat.rss.saturating_mul(self.page_size))?;
            put("vms", "bytes", stat.vsize)?;
            put("threads", "count", stat.num_threads.max(0) as u64)?;
            if let Some(fds) = fds {
                put("fds", "count", fds)?;
            }
            if let Some(before) = before {
                let seconds = (now - before.at).as_secs_f64();
                let mut put = |series: &str, unit: &str, now: u64, then: u64, scale: f64| match rate(
                    now,
                    Some(then),
                    seconds,
                ) {
                    Some(rate) => {
                        self.tags
                            .write_fast(out, ts, series, unit, rate * scale, &fields)
                    }
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
            .write_fast(out, ts, "matched", "processes", matched as u64, NoFields {})?;
        Ok(matched)
    }
}
