//! `gridftp-parse`: GridFTP server logs → one measurement record per transfer, resuming
//! where the last run stopped (from cron) and across log rotation (from logrotate).
//!
//! The position is kept either in a state file this tool writes (`--state`) or, when
//! nothing may be lost, in an acknowledgement file the consumer writes (`--ack`): every
//! record carries a `cursor`, the consumer stores the cursor of the last record it
//! delivered durably, and the next run starts after it. The cursor format and the rotation
//! rules are in the [`crate::gridftp`] module docs.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{ArgAction, Parser};
use serde_json::{Map, Value};

use crate::cli::{self, OnError, OutputArgs};
use crate::error::{Error, Location};
use crate::gridftp::line::{self, Format, Kind};
use crate::gridftp::position::{self, Identity, Position, Start};
use crate::gridftp::render::{self, Options};
use crate::gridftp::resolve::Resolver;
use crate::gridftp::transfer::{self, Transfer};
use crate::ndjson::{BadLines, NdjsonWriter};
use crate::state;

const EXAMPLES: &str = "\
Examples:
  # every transfer in a log, once
  gridftp-parse /var/log/gridftp-transfer.log

  # from cron: only what is new since the last run
  gridftp-parse --state /var/lib/measpipe/gridftp.state /var/log/gridftp-transfer.log

  # losing nothing: resume from what the consumer acknowledged
  gridftp-parse --ack /var/lib/measpipe/gridftp.ack /var/log/gridftp-transfer.log \\
    | esmond-post --ack /var/lib/measpipe/gridftp.ack

  # logrotate prerotate: read the old file to its end, then forget it
  gridftp-parse --wait --state S --delete-state /var/log/gridftp-transfer.log";

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
    /// guarded by STATE.lock).
    #[arg(long, value_name = "STATE", conflicts_with = "ack")]
    state: Option<PathBuf>,

    /// Start after the cursor the consumer acknowledged in this file (never written by
    /// gridftp-parse; guarded by ACK.lock).
    #[arg(long, value_name = "ACK")]
    ack: Option<PathBuf>,

    /// Remove the state file at exit (logrotate prerotate: the next run starts the new log
    /// from the beginning).
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

    /// What to do with a line that cannot be parsed.
    #[arg(long, value_enum, default_value_t = OnError::Fail, value_name = "POLICY")]
    on_error: OnError,

    #[command(flatten)]
    output: OutputArgs,

    /// Print version.
    #[arg(long, action = ArgAction::Version)]
    version: Option<bool>,
}

/// Runs `gridftp-parse`.
pub fn run(args: Args) -> anyhow::Result<()> {
    cli::stop_on_signal();
    let stdin = args.log == "-";
    let guarded = args.state.as_deref().or(args.ack.as_deref());
    if stdin && guarded.is_some() {
        return Err(
            Error::Usage("--state and --ack need a log file, not standard input".into()).into(),
        );
    }
    let _lock = guarded
        .map(|path| state::lock(path, args.wait))
        .transpose()?;
    let saved = match (&args.state, &args.ack) {
        (Some(path), _) => read_state(path)?,
        (_, Some(path)) => read_ack(path)?,
        _ => None,
    };

    let mut scan = Scan {
        out: cli::stdout(&args.output),
        bad: BadLines::new(args.on_error),
        resolver: Resolver::new(args.host_ip.clone()),
        options: Options {
            file: args.file_attr,
            user: args.name_attr,
            volume: args.volume_attr,
        },
        args: &args,
        fields: Vec::new(),
        record: Vec::with_capacity(2048),
    };
    let end = if stdin {
        scan.read(io::stdin().lock(), "<stdin>", None)?;
        None
    } else {
        let path = Path::new(&args.log);
        let mut file = File::open(path).with_context(|| args.log.clone())?;
        let identity = Identity::of(&file).with_context(|| args.log.clone())?;
        let (offset, line) = match position::start(saved.as_ref(), &file)? {
            Start::Fresh => (0, 0),
            Start::Resume { offset, line } => (offset, line),
            Start::Rotated => {
                cli::warn(&format!(
                    "{}: not the file of the saved position (rotated or truncated); reading it from the start",
                    args.log
                ));
                (0, 0)
            }
        };
        file.seek(SeekFrom::Start(offset))?;
        let start = Position {
            identity,
            offset,
            line,
        };
        let reader = BufReader::with_capacity(256 * 1024, file);
        let (offset, line) = scan.read(reader, &args.log, Some(&start))?;
        Some(Position {
            identity,
            offset,
            line,
        })
    };
    scan.bad.report();
    scan.out.flush()?;
    if let (Some(path), Some(end)) = (&args.state, end) {
        if !args.dont_write {
            write_state(path, &end, &args.log)?;
        }
        if args.delete_state {
            state::remove(path)?;
        }
    }
    match cli::interrupted() {
        Some(signal) => Err(Error::Interrupted(signal).into()),
        None => Ok(()),
    }
}

/// The state of one run over a log.
struct Scan<'a> {
    out: NdjsonWriter,
    bad: BadLines,
    resolver: Resolver,
    options: Options,
    args: &'a Args,
    fields: Vec<line::Field<'static>>,
    record: Vec<u8>,
}

impl Scan<'_> {
    /// Reads complete lines from `reader` (positioned at `start`, or at the beginning of
    /// standard input) and writes their records. Returns the offset and line number after
    /// the last line consumed.
    fn read(
        &mut self,
        mut reader: impl BufRead,
        name: &str,
        start: Option<&Position>,
    ) -> anyhow::Result<(u64, u64)> {
        let file: std::sync::Arc<str> = name.into();
        let prefix = start.map(Position::identity_prefix);
        let (mut offset, mut line) = start.map_or((0, 0), |p| (p.offset, p.line));
        let mut buf = Vec::with_capacity(4096);
        while cli::interrupted().is_none() {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .with_context(|| name.to_owned())?;
            // A file's last line without a newline is still being written: leave it.
            if n == 0 || (start.is_some() && buf.last() != Some(&b'\n')) {
                break;
            }
            offset += n as u64;
            line += 1;
            let text = match std::str::from_utf8(&buf) {
                Ok(text) => std::borrow::Cow::Borrowed(text),
                Err(_) => String::from_utf8_lossy(&buf),
            };
            let text = text.trim_end_matches(['\n', '\r']);
            let cursor = prefix.as_deref().map(|p| (p, offset, line));
            match self.line(text, cursor) {
                Ok(emitted) => {
                    if emitted && self.args.single {
                        break;
                    }
                }
                Err(LineError::Bad(cause)) => {
                    let location = Location {
                        file: file.clone(),
                        line,
                    };
                    self.bad.handle(Error::bad_input(location, cause))?;
                }
                Err(LineError::Output(err)) => return Err(err.into()),
            }
        }
        Ok((offset, line))
    }

    /// Handles one line; true if it produced a record.
    fn line(&mut self, text: &str, cursor: Option<(&str, u64, u64)>) -> Result<bool, LineError> {
        match line::classify(text, self.args.format)? {
            Kind::Ignored => Ok(false),
            Kind::Netlogger(fields_text) => {
                let mut fields = recycle(std::mem::take(&mut self.fields));
                let result = self.netlogger(fields_text, &mut fields, cursor);
                self.fields = recycle(fields);
                result
            }
            Kind::Json(json) => {
                let object: Value =
                    serde_json::from_str(json).map_err(|e| format!("invalid JSON: {e}"))?;
                let Some(transfer) = transfer::from_json(&object)? else {
                    return Ok(false);
                };
                if self.args.raw {
                    self.raw(object.as_object().cloned().unwrap_or_default(), cursor)?;
                } else {
                    self.measurement(&transfer, cursor)?;
                }
                Ok(true)
            }
        }
    }

    fn netlogger<'t>(
        &mut self,
        text: &'t str,
        fields: &mut Vec<line::Field<'t>>,
        cursor: Option<(&str, u64, u64)>,
    ) -> Result<bool, LineError> {
        line::split_fields(text, fields)?;
        let Some(transfer) = transfer::from_netlogger(fields)? else {
            return Ok(false);
        };
        if self.args.raw {
            let object = fields
                .iter()
                .map(|f| (f.key.to_owned(), Value::from(f.value)))
                .collect();
            self.raw(object, cursor)?;
        } else {
            self.measurement(&transfer, cursor)?;
        }
        Ok(true)
    }

    fn measurement(
        &mut self,
        transfer: &Transfer,
        cursor: Option<(&str, u64, u64)>,
    ) -> Result<(), LineError> {
        let host = transfer
            .host
            .or(self.args.host_ip.as_deref())
            .ok_or("no HOST on this line; give --host-ip")?;
        let address = self.resolver.address(host, transfer.dest, cli::warn);
        self.record.clear();
        render::measurement(
            &mut self.record,
            transfer,
            host,
            address,
            self.options,
            cursor,
        );
        Ok(self.out.write_line(&self.record)?)
    }

    fn raw(
        &mut self,
        mut object: Map<String, Value>,
        cursor: Option<(&str, u64, u64)>,
    ) -> Result<(), LineError> {
        if let Some((prefix, offset, line)) = cursor {
            object.insert(
                "cursor".into(),
                Value::from(format!("{prefix}{offset}:{line}")),
            );
        }
        Ok(self.out.write_record(&object)?)
    }
}

/// Why a line produced no record.
enum LineError {
    /// The line is malformed (subject to --on-error).
    Bad(String),
    /// Writing the record failed (always fatal).
    Output(Error),
}

impl From<String> for LineError {
    fn from(cause: String) -> Self {
        LineError::Bad(cause)
    }
}

impl From<&str> for LineError {
    fn from(cause: &str) -> Self {
        LineError::Bad(cause.to_owned())
    }
}

impl From<Error> for LineError {
    fn from(err: Error) -> Self {
        LineError::Output(err)
    }
}

/// An empty vector with `fields`' allocation, free to borrow from another line.
// `filter` could not change the element's lifetime, which is the point; collecting an
// empty in-place iterator keeps the allocation.
#[allow(clippy::unnecessary_filter_map)]
fn recycle<'b>(mut fields: Vec<line::Field<'_>>) -> Vec<line::Field<'b>> {
    fields.clear();
    fields.into_iter().filter_map(|_| None).collect()
}

/// The position saved by a previous run, from `--state`.
fn read_state(path: &Path) -> anyhow::Result<Option<Position>> {
    let Some(text) = state::read(path)? else {
        return Ok(None);
    };
    let cursor = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("cursor")?.as_str().map(str::to_owned))
        .ok_or_else(|| anyhow::anyhow!("{}: not a gridftp-parse state file", path.display()))?;
    let position =
        Position::parse(&cursor).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Some(position))
}

/// The position the consumer acknowledged, from `--ack` (a missing file means nothing yet).
fn read_ack(path: &Path) -> anyhow::Result<Option<Position>> {
    match state::read(path)? {
        Some(text) if !text.trim().is_empty() => Position::parse(&text)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
        _ => Ok(None),
    }
}

fn write_state(path: &Path, end: &Position, log: &str) -> anyhow::Result<()> {
    let saved = crate::clock::now_rfc3339();
    let body = serde_json::json!({
        "cursor": end.to_string(),
        "log": log,
        "saved": saved,
    });
    state::write_atomic(path, format!("{body}\n").as_bytes())?;
    Ok(())
}
