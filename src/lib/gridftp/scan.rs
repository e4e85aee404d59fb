//! One run over a log: complete lines in, records out, the end position back.
//!
//! The scanner knows nothing of the command line: warnings go to a callback, and a stop
//! request (a signal, for the tool) is polled between lines through another, so the run
//! ends between two records and its position can be saved.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::line::{self, Format, Kind};
use super::position::{self, Identity, Position, Start};
use super::render::{self, Options};
use super::resolve::Resolver;
use super::transfer::{self, Transfer};
use crate::error::{Error, IoContext, Location};
use crate::ndjson::{self, BadLines, NdjsonWriter};

/// How to read and what to write.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Line format.
    pub format: Format,
    /// Optional metadata parameters.
    pub options: Options,
    /// Write the parsed fields instead of measurements.
    pub raw: bool,
    /// Stop after one record.
    pub single: bool,
    /// The server's address, instead of resolving HOST.
    pub host_ip: Option<String>,
    /// The longest line read; a longer one is a bad line.
    pub max_line: usize,
    /// Call [`Hooks::checkpoint`] after this many records, or this long after the last
    /// checkpoint (whichever comes first), so a killed run repeats little.
    pub checkpoint_every: (u64, std::time::Duration),
}

/// What the scanner calls back.
pub struct Hooks<'h> {
    /// Receives warnings (`prog: warning:` for the tool).
    pub warn: &'h dyn Fn(&str),
    /// Asked between lines whether to stop now.
    pub stop: &'h dyn Fn() -> bool,
    /// Saves a position during the run, after the records before it were flushed; `None`
    /// when nothing is saved (no state file, or the consumer acknowledges).
    pub checkpoint: Option<&'h Checkpoint<'h>>,
}

/// Saves a position during a run.
pub type Checkpoint<'h> = dyn Fn(&Position) -> Result<(), Error> + 'h;

/// Reads logs and writes their records.
pub struct Scanner<'h> {
    out: NdjsonWriter,
    bad: BadLines,
    resolver: Resolver,
    settings: Settings,
    hooks: Hooks<'h>,
    fields: Vec<line::Field<'static>>,
    record: Vec<u8>,
    /// The input and line being handled, for warnings about it.
    at: Option<(Arc<str>, u64)>,
    /// `--single` stopped the last read after its record.
    stopped_early: bool,
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

impl<'h> Scanner<'h> {
    /// A scanner writing to `out`, applying `bad` to malformed lines.
    pub fn new(out: NdjsonWriter, bad: BadLines, settings: Settings, hooks: Hooks<'h>) -> Self {
        Scanner {
            out,
            bad,
            resolver: Resolver::new(settings.host_ip.clone()),
            settings,
            hooks,
            fields: Vec::new(),
            record: Vec::with_capacity(2048),
            at: None,
            stopped_early: false,
        }
    }

    /// Reads the log at `path` from `saved` (if it is still this file) to its last complete
    /// line; returns the position after it.
    pub fn read_file(&mut self, path: &str, saved: Option<&Position>) -> Result<Position, Error> {
        let file = File::open(path).at(path)?;
        let (offset, line) = match position::start(saved, &file).at(path)? {
            Start::Fresh => (0, 0),
            Start::Resume { offset, line } => (offset, line),
            Start::Rotated => {
                // The saved position is in the file as it was before a rotation: finish that
                // file first (renamed by `create`, or copied by `copytruncate`), then read
                // this one from its start.
                let found = match saved {
                    Some(saved) => position::find_rotated(Path::new(path), saved)
                        .at(path)?
                        .map(|found| (found, *saved)),
                    None => None,
                };
                match found {
                    Some(((rotated, old), saved)) => {
                        let name = rotated.display().to_string();
                        (self.hooks.warn)(&format!(
                            "{path} was rotated: finishing {name} from line {} first",
                            saved.line + 1
                        ));
                        let end = self.read_open(old, &name, saved.offset, saved.line)?;
                        if (self.hooks.stop)() || self.stopped_early {
                            return Ok(end);
                        }
                    }
                    None => (self.hooks.warn)(&format!(
                        "{path}: not the file of the saved position (rotated or truncated), and no rotated copy of it was found beside it; reading it from the start"
                    )),
                }
                (0, 0)
            }
        };
        self.read_open(file, path, offset, line)
    }

    /// Reads an open log from `offset` (the end of line `line`) to its last complete line.
    fn read_open(
        &mut self,
        mut file: File,
        name: &str,
        offset: u64,
        line: u64,
    ) -> Result<Position, Error> {
        let identity = Identity::of(&file).at(name)?;
        file.seek(SeekFrom::Start(offset)).at(name)?;
        let start = Position {
            identity,
            offset,
            line,
        };
        let reader = BufReader::with_capacity(256 * 1024, file);
        let (offset, line) = self.read(reader, name, Some(&start))?;
        Ok(Position {
            identity,
            offset,
            line,
        })
    }

    /// Reads complete lines from `reader` (positioned at `start`, or at the beginning of a
    /// stream when `None`) and writes their records. Returns the offset and line number
    /// after the last line consumed.
    pub fn read(
        &mut self,
        mut reader: impl BufRead,
        name: &str,
        start: Option<&Position>,
    ) -> Result<(u64, u64), Error> {
        let file: Arc<str> = name.into();
        let prefix = start.map(Position::identity_prefix);
        let (mut offset, mut line) = start.map_or((0, 0), |p| (p.offset, p.line));
        let mut buf = Vec::with_capacity(4096);
        let max = self.settings.max_line;
        let (every, period) = self.settings.checkpoint_every;
        let mut since = 0u64;
        let mut last_checkpoint = std::time::Instant::now();
        self.at = Some((file.clone(), line));
        while !(self.hooks.stop)() {
            let read = ndjson::read_line_within(&mut reader, &mut buf, max).at(name)?;
            // A file's last line without a newline is still being written: leave it.
            if read.consumed == 0 || (start.is_some() && !read.complete) {
                break;
            }
            offset += read.consumed;
            line += 1;
            let text = match std::str::from_utf8(&buf) {
                Ok(text) => Cow::Borrowed(text),
                Err(_) => String::from_utf8_lossy(&buf),
            };
            let text = text.trim_end_matches(['\n', '\r']);
            if let Some(at) = &mut self.at {
                at.1 = line;
            }
            let outcome = if read.overlong {
                Err(LineError::Bad(ndjson::overlong_cause(max)))
            } else {
                let cursor = prefix.as_deref().map(|p| (p, offset, line));
                self.line(text, cursor)
            };
            match outcome {
                Ok(emitted) => {
                    if emitted && self.settings.single {
                        self.stopped_early = true;
                        break;
                    }
                    since += u64::from(emitted);
                    if let (Some(checkpoint), Some(start)) = (self.hooks.checkpoint, start) {
                        if since >= every || (since > 0 && last_checkpoint.elapsed() >= period) {
                            // What the position covers must be out of our hands first.
                            self.bad.flush()?;
                            self.out.flush()?;
                            checkpoint(&Position {
                                identity: start.identity,
                                offset,
                                line,
                            })?;
                            since = 0;
                            last_checkpoint = std::time::Instant::now();
                        }
                    }
                }
                Err(LineError::Bad(cause)) => {
                    let location = Location {
                        file: file.clone(),
                        line,
                    };
                    self.bad
                        .handle_line(Error::bad_input(location, cause), &buf)?;
                }
                Err(LineError::Output(err)) => return Err(err),
            }
        }
        Ok((offset, line))
    }

    /// Reports skipped lines and flushes the output and the reject file (before the
    /// position is saved).
    pub fn finish(&mut self) -> Result<(), Error> {
        self.bad.report(self.hooks.warn);
        self.bad.flush()?;
        self.out.flush()
    }

    /// Handles one line; true if it produced a record.
    fn line(&mut self, text: &str, cursor: Option<(&str, u64, u64)>) -> Result<bool, LineError> {
        match line::classify(text, self.settings.format)? {
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
                if self.settings.raw {
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
        if self.settings.raw {
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
            .or(self.settings.host_ip.as_deref())
            .ok_or("no HOST on this line; give --host-ip")?;
        let address = self
            .resolver
            .address(host, transfer.dest, self.hooks.warn)?;
        if let (true, Some(problem)) = (transfer.succeeded(), transfer.throughput_problem()) {
            match &self.at {
                Some((file, line)) => (self.hooks.warn)(&format!("{file}:{line}: {problem}")),
                None => (self.hooks.warn)(problem),
            }
        }
        self.record.clear();
        render::measurement(
            &mut self.record,
            transfer,
            host,
            address,
            self.settings.options,
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

/// An empty vector with `fields`' allocation, free to borrow from another line.
// `filter` could not change the element's lifetime, which is the point; collecting an
// empty in-place iterator keeps the allocation.
#[allow(clippy::unnecessary_filter_map)]
fn recycle<'b>(mut fields: Vec<line::Field<'_>>) -> Vec<line::Field<'b>> {
    fields.clear();
    fields.into_iter().filter_map(|_| None).collect()
}
