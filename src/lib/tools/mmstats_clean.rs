//! `mmstats-clean`: removes stats files whose writer is gone, and says why for each file.
//!
//! Python's `cleanstats` only asks `kill(pid, 0)`, so a recycled pid keeps a dead writer's
//! file forever. Here a file is stale when it is marked closed, when its pid does not
//! exist, when the process that has the pid now started after the file's writer (native
//! files record the writer's start ticks), when the live process with a format 1 file's
//! pid does not map the file, when it was written in another boot, or when its writer
//! thread has exited (the rule is [`crate::mmstats::stale`]).

use std::fs;
use std::path::Path;

use clap::Parser;
use serde::Serialize;

use crate::cli::{self, OutputArgs};
use crate::mmstats::render::Layout;
use crate::mmstats::stale;
use crate::mmstats::{self, ReadError};

const EXAMPLES: &str = "\
Examples:
  # what would go, without removing anything
  mmstats-clean --dry-run

  # from cron: clean a service's directory, keep a log of the decisions
  mmstats-clean '/run/web/*.mmstats' >> /var/log/mmstats-clean.ndjson

  # the Python cleanstats wording
  mmstats-clean --format text /tmp/*.mmstats";

/// Remove stats files whose writer has gone, keeping live ones.
///
/// Prints one decision per file: {"file","pid","verdict","reason","removed"}, where verdict
/// is alive, stale, invalid (not a stats file), no-pid (format 1 file without sys.pid) or
/// unreadable. Stale reasons: closed, dead (no such pid), pid-reused (the pid's process
/// started after the file's writer), not-mapped (the live process with a format 1 file's
/// pid does not map the file, so it is not its writer), rebooted, thread-gone. No wall
/// clock decides: where another user's mappings cannot be read, a format 1 file counts as
/// pid-reused only when the pid started an hour after its sys.created. Invalid and no-pid files are kept unless --force. Exit status 1 if a
/// file could not be read or removed.
#[derive(Debug, Parser)]
#[command(name = "mmstats-clean", version, after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    files: cli::StatsFileArgs,

    /// Decide and print, but remove nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,

    /// Also remove files that are not stats files, or have no pid to check.
    #[arg(long)]
    force: bool,

    /// Output layout.
    #[arg(long, value_enum, default_value_t = Layout::Ndjson)]
    format: Layout,

    #[command(flatten)]
    output: OutputArgs,
}

/// What was decided about one file.
#[derive(Debug, Serialize)]
struct Decision<'a> {
    file: &'a str,
    pid: Option<u32>,
    verdict: &'static str,
    reason: String,
    removed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Runs `mmstats-clean`.
pub fn run(args: Args) -> Result<(), crate::Error> {
    let paths = args.files.resolve(true)?;
    let mut out = cli::stdout(&args.output);
    let (mut removed, mut alive, mut failures) = (0usize, 0usize, 0usize);
    for path in &paths {
        let name = path.to_string_lossy();
        let mut decision = decide(path, &name, args.force);
        if decision.removed {
            if args.dry_run {
                decision.removed = false;
            } else if let Err(err) = fs::remove_file(path) {
                decision.removed = false;
                decision.error = Some(format!("could not remove: {err}"));
            }
        }
        if decision.error.is_some() {
            failures += 1;
        }
        removed += usize::from(decision.removed);
        alive += usize::from(decision.verdict == "alive");
        match args.format {
            Layout::Ndjson => out.write_record(&decision)?,
            Layout::Text => out.write_line(sentence(&decision, args.dry_run).as_bytes())?,
        }
    }
    if args.format == Layout::Text {
        out.write_line(format!("Removed {removed}  -  {alive} alive").as_bytes())?;
    }
    if failures > 0 {
        let files = if failures == 1 { "file" } else { "files" };
        return Err(crate::Error::failed(format!(
            "{failures} stats {files} could not be read or removed"
        )));
    }
    Ok(())
}

/// Decides one file; `removed` says whether it should go.
fn decide<'a>(path: &Path, name: &'a str, force: bool) -> Decision<'a> {
    let mut decision = Decision {
        file: name,
        pid: None,
        verdict: "alive",
        reason: String::new(),
        removed: false,
        error: None,
    };
    let stats = match mmstats::read(path) {
        Ok(stats) => stats,
        Err(ReadError::Io(err)) => {
            decision.verdict = "unreadable";
            decision.error = Some(err.to_string());
            return decision;
        }
        Err(err @ ReadError::Corrupt { .. }) => {
            decision.verdict = "invalid";
            decision.reason = err.to_string();
            decision.removed = force;
            return decision;
        }
    };
    decision.pid = stats.owner.pid;
    match stale::staleness(&stats, path) {
        Ok(Some(why)) => {
            decision.verdict = "stale";
            decision.reason = why.name().into();
            decision.removed = true;
        }
        Ok(None) if stats.owner.pid.is_none() => {
            decision.verdict = "no-pid";
            decision.reason = "the file names no writer pid".into();
            decision.removed = force;
        }
        Ok(None) => decision.reason = "running".into(),
        Err(err) => {
            decision.verdict = "unreadable";
            decision.error = Some(format!("cannot check pid: {err}"));
        }
    }
    decision
}

/// The decision in cleanstats' words.
fn sentence(d: &Decision, dry_run: bool) -> String {
    let action = if d.removed {
        "Deleting"
    } else if dry_run && d.verdict == "stale" {
        "Would delete"
    } else {
        "Keeping"
    };
    let pid = d.pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
    let mut text = match (d.verdict, d.reason.as_str()) {
        ("alive", _) => format!("PID {pid} is alive. {action} {}", d.file),
        ("stale", "dead") => format!("PID {pid} not found. {action} {}", d.file),
        ("stale", "pid-reused") => format!("PID {pid} was reused. {action} {}", d.file),
        ("stale", "closed") => format!("File was closed by PID {pid}. {action} {}", d.file),
        ("stale", "rebooted") => format!("File is from another boot. {action} {}", d.file),
        ("stale", _) => format!("Thread of PID {pid} has exited. {action} {}", d.file),
        ("invalid", _) => format!("Invalid file: {} ({}). {action}", d.file, d.reason),
        ("no-pid", _) => format!("File has no sys.pid entry: {}. {action}", d.file),
        _ => format!("Cannot read {}. {action}", d.file),
    };
    if let Some(error) = &d.error {
        text.push_str(&format!(" ({error})"));
    }
    text
}
