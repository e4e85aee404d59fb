//! Streaming NDJSON: a line reader over several inputs and a buffered record writer.
//!
//! The reader reuses one line buffer for the whole run and hands out borrowed slices, so
//! the hot path allocates nothing per line; callers deserialize with
//! `serde_json::from_slice` into borrowed structs. Line-at-a-time reading (rather than
//! `serde_json::Deserializer::from_reader(..).into_iter()`) is both faster here and what
//! gives every error its line number.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::cli::{self, OnError};
use crate::error::{Error, Location};

/// Read buffer per input: big enough that the kernel copies in large chunks.
const READ_BUFFER: usize = 256 * 1024;

/// The display name of standard input in messages.
pub const STDIN_NAME: &str = "<stdin>";

/// One line of input, without its line terminator.
#[derive(Debug)]
pub struct Line<'a> {
    /// The line's bytes (no `\n`, no trailing `\r`).
    pub bytes: &'a [u8],
    /// Where it came from.
    pub location: Location,
}

/// Reads lines from a list of inputs in order (`-` is standard input; an empty list means
/// standard input alone). Blank lines are skipped but still counted.
pub struct LineReader {
    pending: std::vec::IntoIter<String>,
    current: Option<Box<dyn BufRead>>,
    file: Arc<str>,
    line: u64,
    buf: Vec<u8>,
}

impl LineReader {
    /// Prepares to read `paths` in order. Files are opened lazily, one at a time, so a
    /// glob of thousands of files does not exhaust file descriptors; like `cat`, an input
    /// that cannot be opened stops the run when its turn comes.
    pub fn new(paths: &[String]) -> Self {
        let paths = if paths.is_empty() {
            vec!["-".to_owned()]
        } else {
            paths.to_vec()
        };
        LineReader {
            pending: paths.into_iter(),
            current: None,
            file: Arc::from(""),
            line: 0,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Returns the next non-blank line, or `None` after the last input is exhausted.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, Error> {
        if !self.fill_next_line()? {
            return Ok(None);
        }
        Ok(Some(Line {
            bytes: trim_line_end(&self.buf),
            location: Location {
                file: Arc::clone(&self.file),
                line: self.line,
            },
        }))
    }

    /// Reads until `buf` holds a non-blank line; false at the end of the last input.
    fn fill_next_line(&mut self) -> Result<bool, Error> {
        loop {
            let Some(reader) = self.current.as_mut() else {
                if !self.open_next()? {
                    return Ok(false);
                }
                continue;
            };
            self.buf.clear();
            let read = reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|source| Error::io(&*self.file, source))?;
            if read == 0 {
                self.current = None;
                continue;
            }
            self.line += 1;
            if !trim_line_end(&self.buf).iter().all(u8::is_ascii_whitespace) {
                return Ok(true);
            }
        }
    }

    fn open_next(&mut self) -> Result<bool, Error> {
        let Some(path) = self.pending.next() else {
            return Ok(false);
        };
        let reader: Box<dyn BufRead> = if path == "-" {
            self.file = Arc::from(STDIN_NAME);
            Box::new(BufReader::with_capacity(READ_BUFFER, io::stdin()))
        } else {
            let file = File::open(&path).map_err(|source| Error::io(&path, source))?;
            self.file = Arc::from(path.as_str());
            Box::new(BufReader::with_capacity(READ_BUFFER, file))
        };
        self.current = Some(reader);
        self.line = 0;
        Ok(true)
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Applies `--on-error`: fails on the first bad line, or counts the skipped ones and reports
/// them at the end.
#[derive(Debug)]
pub struct BadLines {
    policy: OnError,
    skipped: u64,
    first: Option<Error>,
}

impl BadLines {
    /// A counter that applies `policy`.
    pub fn new(policy: OnError) -> Self {
        BadLines {
            policy,
            skipped: 0,
            first: None,
        }
    }

    /// Handles one bad line: returns the error under `fail`, records it under `skip`.
    pub fn handle(&mut self, err: Error) -> Result<(), Error> {
        match self.policy {
            OnError::Fail => Err(err),
            OnError::Skip => {
                self.skipped += 1;
                self.first.get_or_insert(err);
                Ok(())
            }
        }
    }

    /// How many lines were skipped.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Prints `prog: warning: skipped N bad lines (first: file:line: cause)` on stderr if
    /// anything was skipped.
    pub fn report(&self) {
        if let Some(first) = &self.first {
            let plural = if self.skipped == 1 { "" } else { "s" };
            cli::warn(&format!(
                "skipped {} bad line{plural} (first: {first})",
                self.skipped
            ));
        }
    }
}

/// Writes one record per line into a shared, large buffer (see [`cli::stdout`]).
///
/// Each record is written while holding the buffer's lock, so a signal-triggered flush
/// never cuts a record in half.
pub struct NdjsonWriter {
    sink: Arc<Mutex<io::BufWriter<io::Stdout>>>,
    line_buffered: bool,
}

impl NdjsonWriter {
    pub(crate) fn new(sink: Arc<Mutex<io::BufWriter<io::Stdout>>>, line_buffered: bool) -> Self {
        NdjsonWriter {
            sink,
            line_buffered,
        }
    }

    /// Writes `line` (which must not contain `\n`) followed by a newline.
    pub fn write_line(&mut self, line: &[u8]) -> Result<(), Error> {
        self.write_with(|sink| sink.write_all(line))
    }

    /// Serializes `record` as compact JSON followed by a newline.
    pub fn write_record<T: Serialize + ?Sized>(&mut self, record: &T) -> Result<(), Error> {
        self.write_with(|sink| serde_json::to_writer(sink, record).map_err(io::Error::from))
    }

    /// Pushes buffered records to stdout now (before saving a state that says they were
    /// delivered).
    pub fn flush(&mut self) -> Result<(), Error> {
        cli::lock(&self.sink)
            .flush()
            .map_err(|source| Error::io("<stdout>", source))
    }

    /// Runs `write` and appends the newline under one hold of the lock, then flushes if
    /// line-buffered.
    fn write_with(
        &mut self,
        write: impl FnOnce(&mut io::BufWriter<io::Stdout>) -> io::Result<()>,
    ) -> Result<(), Error> {
        let mut sink = cli::lock(&self.sink);
        let result = write(&mut sink)
            .and_then(|()| sink.write_all(b"\n"))
            .and_then(|()| {
                if self.line_buffered {
                    sink.flush()
                } else {
                    Ok(())
                }
            });
        result.map_err(|source| Error::io("<stdout>", source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(paths: &[String]) -> Vec<(String, String)> {
        let mut reader = LineReader::new(paths);
        let mut out = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            out.push((
                line.location.to_string(),
                String::from_utf8(line.bytes.to_vec()).unwrap(),
            ));
        }
        out
    }

    #[test]
    fn reads_several_inputs_in_order_with_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::File::create(&a)
            .unwrap()
            .write_all(b"{\"x\":1}\r\n\n{\"x\":2}\n")
            .unwrap();
        std::fs::File::create(&b)
            .unwrap()
            .write_all(b"{\"y\":3}")
            .unwrap();
        let (a, b) = (a.display().to_string(), b.display().to_string());
        let lines = collect(&[a.clone(), b.clone()]);
        assert_eq!(
            lines,
            vec![
                (format!("{a}:1"), "{\"x\":1}".to_owned()),
                (format!("{a}:3"), "{\"x\":2}".to_owned()),
                (format!("{b}:1"), "{\"y\":3}".to_owned()),
            ]
        );
    }

    #[test]
    fn a_missing_input_is_an_error_naming_it() {
        let mut reader = LineReader::new(&["/nonexistent/measpipe-input".to_owned()]);
        let err = reader.next_line().unwrap_err().to_string();
        assert!(err.starts_with("/nonexistent/measpipe-input: "), "{err}");
    }

    #[test]
    fn skip_policy_counts_and_keeps_the_first_error() {
        let location = |line| Location {
            file: Arc::from("f"),
            line,
        };
        let mut bad = BadLines::new(OnError::Skip);
        bad.handle(Error::bad_input(location(2), "one")).unwrap();
        bad.handle(Error::bad_input(location(5), "two")).unwrap();
        assert_eq!(bad.skipped(), 2);
        assert_eq!(bad.first.as_ref().unwrap().to_string(), "f:2: one");
        let mut strict = BadLines::new(OnError::Fail);
        assert!(strict.handle(Error::bad_input(location(1), "x")).is_err());
    }
}
