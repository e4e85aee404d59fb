//! `gridftp-parse`: GridFTP server logs → one measurement record per transfer, resuming
//! where the last run stopped (from cron) and across log rotation (from logrotate).
//!
//! The position is kept either in a state file this tool writes (`--state`) or, when
//! nothing may be lost, in an acknowledgement file the consumer writes (`--ack`): every
//! record carries a `cursor`, the consumer stores the cursor of the last record it
//! delivered durably, and the next run starts after it. The cursor format and the rotation
//! rules are in the [`crate::gridftp`] module docs.

use std::io;
use std::path::PathBuf;

use clap::{ArgAction, Parser};

use crate::cli::{self, OutputArgs};
use crate::error::Error;
use crate::gridftp::checkpoint::{Checkpointer, Store};
use crate::gridftp::line::Format;
use crate::gridftp::render::Options;
use crate::gridftp::scan::{Hooks, Scanner, Settings};
use crate::ndjson::{BadLines, OnError, DEFAULT_MAX_LINE};

const EXAMPLES: &str = "\
Examples:
  # every transfer in a log, once
  gridftp-parse /var/log/gridftp-transfer.log

  # from cron: only what is new since the last run
  gridftp-parse --state /var/lib/measpipe/gridftp.state /var/log/gridftp-transfer.log

  # losing nothing: resume from what the consumer acknowledged (the whole pipe under
  # one lock, so a second run cannot read the ack while the first still delivers)
  flock -n -E 75 /var/lib/measpipe/gridftp.run.lock sh -c 'gridftp-parse \\
    --ack /var/lib/measpipe/gridftp.ack /var/log/gridftp-transfer.log \\
    | esmond-post --ack /var/lib/measpipe/gridftp.ack'

  # after logrotate renamed the log, the next run finishes the rotated file
  # (gridftp-transfer.log.1) from the saved position, then reads the new log
  gridftp-parse --state /var/lib/measpipe/gridftp.state /var/log/gridftp-transfer.log";

/// Turn GridFTP server logs into measurement records, resumably.
///
/// Reads the transfer log (-log-transfer), the main log's "Transfer stats:" lines or
/// the JSON transfer log, and writes one measurement per RETR/STOR (and ERET/ESTO)
/// transfer with the metadata esmond-ps-load-gridftp posted: throughput and
/// streams-packet-retransmits for code 226, failures for any other code. Every record
/// carries a cursor. A partial last line (still being written) is left for the next run.
/// Exit status 75 if another run holds the state's lock.
#[derive(Debug, Parser)]
#[command(
    name = "gridftp-parse",
    version,
    disable_version_flag = true,
    after_help = EXAMPLES
)]
pub struct Args {
    /// The log to read; `-` reads standard input (no --state or --ack then).
    #[arg(value_name = "LOG")]
    log: String,

    /// Line format.
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    format: Format,

    /// Remember the position here and start from it next time (written atomically,
    /// guarded by STATE.lock; saved every 10,000 records or second during the run, after
    /// the records before it were flushed, so a killed run repeats at most that much).
    #[arg(long, value_name = "STATE", conflicts_with = "ack")]
    state: Option<PathBuf>,

    /// Start after the cursor the consumer acknowledged in this file (never written by
    /// gridftp-parse; guarded by ACK.lock while it runs: hold a lock over the whole pipe,
    /// e.g. with flock, so that a run cannot start before the last one's ack is written).
    #[arg(long, value_name = "ACK")]
    ack: Option<PathBuf>,

    /// Remove the state file at exit, so the next run reads the log from its start (not
    /// needed for rotation, which is followed: a rotated file is finished first).
    #[arg(short = 'D', long, requires = "state")]
    delete_state: bool,

    /// Read from the saved state but do not update it.
    #[arg(short = 'd', long, requires = "state")]
    dont_write: bool,

    /// Emit one record, then stop (the state then points just after it).
    #[arg(short = 'S', long)]
    single: bool,

    /// Wait for another run's lock instead of exiting with status 75.
    #[arg(long)]
    wait: bool,

    /// The server's IP address for source/destination/measurement-agent (default: resolve
    /// the logged HOST once; an unresolvable name is recorded as it is, with a warning).
    #[arg(long, value_name = "IP")]
    host_ip: Option<String>,

    /// Also record the transferred file's path as gridftp-file.
    #[arg(short = 'F', long)]
    file_attr: bool,

    /// Also record the user as gridftp-user.
    #[arg(short = 'N', long)]
    name_attr: bool,

    /// Also record the volume as gridftp-volume.
    #[arg(short = 'V', long)]
    volume_attr: bool,

    /// Write each transfer's parsed fields (and its cursor) instead of a measurement.
    #[arg(long)]
    raw: bool,

    /// What to do with a line that cannot be parsed or turned into a record: skip (the
    /// default, as the original did) names it on stderr, counts it and goes on, so the
    /// position never sticks at it; fail stops there with exit status 1, and the next run
    /// meets it again.
    #[arg(long, value_enum, default_value_t = OnError::Skip, value_name = "POLICY")]
    on_error: OnError,

    /// Append every bad line here as {"location","cause","line"} NDJSON, to fix and load
    /// again.
    #[arg(long, value_name = "FILE")]
    reject: Option<PathBuf>,

    /// The longest line read, in bytes; a longer one is a bad line (see --on-error).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_LINE as u64, value_parser = clap::value_parser!(u64).range(1..))]
    max_line: u64,

    #[command(flatten)]
    output: OutputArgs,

    /// Print version.
    #[arg(long, action = ArgAction::Version)]
    version: Option<bool>,
}

/// With `--state`, the position is saved during the run too, after this many records…
const CHECKPOINT_RECORDS: u64 = 10_000;
/// …or this long after the last save, so a killed run repeats at most that much.
const CHECKPOINT_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs `gridftp-parse`.
pub fn run(args: Args) -> Result<(), Error> {
    cli::stop_on_signal();
    let stdin = args.log == "-";
    let store = match (&args.state, &args.ack) {
        (Some(path), _) => Store::State(path.clone()),
        (_, Some(path)) => Store::Ack(path.clone()),
        _ => Store::None,
    };
    if stdin && store != Store::None {
        return Err(Error::Usage(
            "--state and --ack need a log file, not standard input".into(),
        ));
    }
    let checkpoint = Checkpointer::open(store, args.wait)?;
    let saved = checkpoint.saved()?;
    let settings = Settings {
        format: args.format,
        options: Options {
            file: args.file_attr,
            user: args.name_attr,
            volume: args.volume_attr,
        },
        raw: args.raw,
        single: args.single,
        host_ip: args.host_ip.clone(),
        max_line: usize::try_from(args.max_line).unwrap_or(usize::MAX),
        checkpoint_every: (CHECKPOINT_RECORDS, CHECKPOINT_PERIOD),
    };
    let stop = || cli::interrupted().is_some();
    let save = |position: &crate::gridftp::position::Position| checkpoint.save(position, &args.log);
    let hooks = Hooks {
        warn: &cli::warn,
        stop: &stop,
        checkpoint: (args.state.is_some() && !args.dont_write).then_some(&save as _),
    };
    let out = cli::stdout(&args.output);
    let mut bad = BadLines::new(args.on_error).warn_each(cli::warn);
    if let Some(path) = &args.reject {
        bad = bad.reject_to(path)?;
    }
    let mut scanner = Scanner::new(out, bad, settings, hooks);
    let end = if stdin {
        scanner.read(io::stdin().lock(), "<stdin>", None)?;
        None
    } else {
        Some(scanner.read_file(&args.log, saved.as_ref())?)
    };
    scanner.finish()?;
    if let Some(end) = end {
        if !args.dont_write {
            checkpoint.save(&end, &args.log)?;
        }
        if args.delete_state {
            checkpoint.remove()?;
        }
    }
    match cli::interrupted() {
        Some(signal) => Err(Error::Interrupted(signal)),
        None => Ok(()),
    }
}
