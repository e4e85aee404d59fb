//! `proc-trace`: per-process CPU, memory, descriptors, I/O, context switches and faults,
//! sampled from /proc as trace records. See [`crate::trace::proc`].

use std::path::PathBuf;

use clap::Parser;
use regex::Regex;

use crate::cli::{self, OutputArgs, TracerArgs};
use crate::trace::proc::{Sampler, Selection, Selector};

const EXAMPLES: &str = "\
Examples:
  # every nova process, once a second, into a file
  proc-trace --match 'nova-(api|compute)' > nova.ndjson

  # one daemon by its PID file (a restart is followed), ten samples half a second apart
  proc-trace --pidfile /run/sshd.pid -i 0.5 -c 10

  # a systemd service's processes, as the user it runs as
  proc-trace --cgroup system.slice/rabbitmq-server.service --user rabbitmq";

/// Sample processes from /proc: one trace record per process and series every interval.
///
/// Series: cpu_user and cpu_system (% of one core over the interval), rss and vms (bytes),
/// threads and fds (count), read_bytes and write_bytes (storage I/O, bytes/s), read_calls
/// and write_calls (calls/s), ctx_voluntary and ctx_involuntary (switches/s), faults_minor
/// and faults_major (faults/s). Each record names the process's pid, comm and start (epoch
/// seconds): a restarted program, or a reused PID, is a new process. Rates need two
/// samples, so a process's first sample has its sizes and counts only. fds and the I/O
/// series need the right to read the process's /proc/PID/fd and io (its own user, or root).
///
/// Processes are selected again at every sample: --pid, --pidfile and --cgroup name
/// candidates (all together; without any, every process is one), and --match and --user
/// keep those that match both. Every sample also writes a `matched` record, the number of
/// processes selected, 0 included. proc-trace never selects itself.
#[derive(Debug, Parser)]
#[command(name = "proc-trace", version, after_help = EXAMPLES)]
pub struct Args {
    /// A process to trace (repeatable).
    #[arg(long, value_name = "PID")]
    pid: Vec<i32>,

    /// A file holding the PID of a process to trace, read at every sample (repeatable).
    #[arg(long, value_name = "FILE")]
    pidfile: Vec<PathBuf>,

    /// A cgroup v2 whose processes to trace: a directory, absolute or under /sys/fs/cgroup
    /// (repeatable).
    #[arg(long, value_name = "CGROUP")]
    cgroup: Vec<PathBuf>,

    /// Keep processes whose command line (arguments joined by spaces) matches REGEX.
    #[arg(long = "match", value_name = "REGEX")]
    pattern: Option<Regex>,

    /// Keep processes running as USER (a name or a numeric uid).
    #[arg(long, value_name = "USER", value_parser = user_id)]
    user: Option<u32>,

    /// The tracer name the records carry.
    #[arg(long, default_value = "proc", value_name = "NAME")]
    tracer: String,

    #[command(flatten)]
    sampling: TracerArgs,

    #[command(flatten)]
    output: OutputArgs,
}

/// A user name or numeric uid.
fn user_id(text: &str) -> Result<u32, String> {
    if let Ok(uid) = text.parse() {
        return Ok(uid);
    }
    uzers::get_user_by_name(text)
        .map(|user| user.uid())
        .ok_or_else(|| format!("no user named {text:?}"))
}

/// Runs `proc-trace`.
pub fn run(args: Args) -> Result<(), crate::Error> {
    let selector = Selector {
        pids: args.pid,
        pidfiles: args.pidfile,
        cgroups: args.cgroup,
        pattern: args.pattern,
        uid: args.user,
    };
    let mut sampler = Sampler::new(args.sampling.tags(&args.tracer));
    let mut selection = Selection::default();
    let mut out = cli::stdout(&args.output);
    args.sampling.each_tick(&mut out, |out, ts| {
        let processes = selector.select(&mut selection, cli::warn);
        sampler.tick(out, &mut selection, &processes, ts).map(drop)
    })
}
