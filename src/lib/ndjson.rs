//! Streaming NDJSON: a line reader over several inputs and a buffered record writer.
//!
//! The reader reuses one line buffer for the whole run and hands out borrowed slices, so
//! the hot path allocates nothing per line; callers deserialize with
//! `serde_json::from_slice` into borrowed structs. Line-at-a-time reading (rather than
//! `serde_json::Deserializer::from_reader(..).into_iter()`) is both faster here and what
//! gives every error its line number.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Location};
use crate::sync::lock;

/// Read buffer per input: big enough that the kernel copies in large chunks.
const READ_BUFFER: usize = 256 * 1024;

/// The longest line read by default (`--max-line`): far above any record the tools write
/// (a 10,000-point subinterval record is about 1 MB), far below what would exhaust memory.
pub const DEFAULT_MAX_LINE: usize = 16 * 1024 * 1024;

/// What to do with an input line that cannot be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Stop at the first bad line with exit status 1.
    Fail,
    /// Skip bad lines, count them, and report the count on stderr at exit.
    Skip,
}

/// What [`read_bounded_line`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// Bytes consumed from the reader, the newline included (0 at the end of input).
    pub consumed: u64,
    /// The line ended with `\n` (false for a last line without one).
    pub complete: bool,
    /// The line was longer than the limit: `buf` holds only its first `max` bytes and the
    /// rest was consumed and dropped.
    pub overlong: bool,
}

/// Reads one line into `buf` (cleared first) as [`read_bounded_line`] does, with `max`
/// counting the line without its `\n` or `\r\n`: `overlong` says the line's content is
/// longer than `max` (what `--max-line` means).
pub fn read_line_within(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Read> {
    let mut read = read_bounded_line(reader, buf, max.saturating_add(2))?;
    read.overlong = read.overlong || trim_line_end(buf).len() > max;
    Ok(read)
}

/// The cause of an overlong line, for its error.
pub fn overlong_cause(max: usize) -> String {
    format!("line longer than {max} bytes (raise --max-line to accept it)")
}

/// Reads one line into `buf` (cleared first), keeping at most `max` bytes of it, so a
/// line of any length costs bounded memory. The whole line is always consumed.
pub fn read_bounded_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Read> {
    buf.clear();
    let mut read = Read {
        consumed: 0,
        complete: false,
        overlong: false,
    };
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(read);
        }
        let (chunk, done) = match memchr::memchr(b'\n', available) {
            Some(at) => (&available[..=at], true),
            None => (available, false),
        };
        let room = max.saturating_sub(buf.len());
        if chunk.len() > room {
            read.overlong = true;
        }
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let n = chunk.len();
        reader.consume(n);
        read.consumed += n as u64;
        if done {
            read.complete = true;
            return Ok(read);
        }
    }
}

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
    current: Option<BufReader<Box<dyn io::Read + Send>>>,
    /// The open input's descriptor, for [`LineReader::quiet`].
    fd: RawFd,
    file: Arc<str>,
    line: u64,
    buf: Vec<u8>,
    max_line: usize,
    overlong: bool,
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
            fd: -1,
            file: Arc::from(""),
            line: 0,
            buf: Vec::with_capacity(4096),
            max_line: DEFAULT_MAX_LINE,
            overlong: false,
        }
    }

    /// Sets the longest line accepted (bytes, without the newline); a longer line is a bad
    /// line, consumed without being kept.
    pub fn max_line(mut self, max: usize) -> Self {
        self.max_line = max;
        self
    }

    /// Returns the next non-blank line, or `None` after the last input is exhausted. A line
    /// over the length limit goes to `bad` (an error under `--on-error fail`, counted and
    /// skipped under `skip`).
    pub fn next(&mut self, bad: &mut BadLines) -> Result<Option<Line<'_>>, Error> {
        loop {
            if !self.fill_next_line()? {
                return Ok(None);
            }
            if !self.overlong {
                break;
            }
            let location = Location {
                file: Arc::clone(&self.file),
                line: self.line,
            };
            bad.handle(Error::bad_input(location, overlong_cause(self.max_line)))?;
        }
        Ok(Some(Line {
            bytes: trim_line_end(&self.buf),
            location: Location {
                file: Arc::clone(&self.file),
                line: self.line,
            },
        }))
    }

    /// Whether the input has gone quiet: no whole line is buffered and nothing came to
    /// read for `wait` (a pipe or terminal whose writer pauses; a regular file never is).
    /// A sink holding records sends them then, instead of waiting for a full batch.
    pub fn quiet(&mut self, wait: Duration) -> bool {
        let Some(reader) = self.current.as_ref() else {
            return false;
        };
        if memchr::memchr(b'\n', reader.buffer()).is_some() {
            return false;
        }
        let mut poll = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = libc::c_int::try_from(wait.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd, for the descriptor of the input being read.
        let ready = unsafe { libc::poll(&mut poll, 1, millis) };
        ready == 0
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
            // The limit counts the line without its terminator.
            let read = read_line_within(reader, &mut self.buf, self.max_line)
                .map_err(|cause| Error::io(&*self.file, cause))?;
            if read.consumed == 0 {
                self.current = None;
                continue;
            }
            self.line += 1;
            self.overlong = read.overlong;
            if self.overlong || !trim_line_end(&self.buf).iter().all(u8::is_ascii_whitespace) {
                return Ok(true);
            }
        }
    }

    fn open_next(&mut self) -> Result<bool, Error> {
        let Some(path) = self.pending.next() else {
            return Ok(false);
        };
        let input: Box<dyn io::Read + Send> = if path == "-" {
            self.file = Arc::from(STDIN_NAME);
            self.fd = io::stdin().as_raw_fd();
            Box::new(io::stdin())
        } else {
            let file = File::open(&path).map_err(|cause| Error::io(&path, cause))?;
            self.file = Arc::from(path.as_str());
            self.fd = file.as_raw_fd();
            Box::new(file)
        };
        self.current = Some(BufReader::with_capacity(READ_BUFFER, input));
        self.line = 0;
        Ok(true)
    }
}

/// `line` without its `\n` or `\r\n`.
pub fn trim_line_end(line: &[u8]) -> &[u8] {
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
    warn_each: Option<fn(&str)>,
    reject: Option<(String, io::BufWriter<File>)>,
}

/// How many bad lines [`BadLines::warn_each`] names one by one before only counting.
pub const WARN_EACH_MAX: u64 = 20;

/// One line of a `--reject` file: where the bad line was, why, and the line itself.
#[derive(Serialize)]
struct Rejected<'a> {
    location: String,
    cause: &'a str,
    line: &'a str,
}

impl BadLines {
    /// A counter that applies `policy`.
    pub fn new(policy: OnError) -> Self {
        BadLines {
            policy,
            skipped: 0,
            first: None,
            warn_each: None,
            reject: None,
        }
    }

    /// Names each skipped line through `warn` (the first [`WARN_EACH_MAX`] of them), not
    /// only the first one at the end.
    pub fn warn_each(mut self, warn: fn(&str)) -> Self {
        self.warn_each = Some(warn);
        self
    }

    /// Appends every bad line given to [`BadLines::handle_line`] to the file at `path`, as
    /// `{"location","cause","line"}` NDJSON, so nothing is lost that could be fixed and fed
    /// again.
    pub fn reject_to(mut self, path: &std::path::Path) -> Result<Self, Error> {
        let name = path.display().to_string();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|cause| Error::io(&name, cause))?;
        self.reject = Some((name, io::BufWriter::new(file)));
        Ok(self)
    }

    /// Handles one bad line whose text is `line`: copies it to the reject file, if any,
    /// then as [`BadLines::handle`].
    pub fn handle_line(&mut self, err: Error, line: &[u8]) -> Result<(), Error> {
        if let Error::BadInput { location, cause } = &err {
            self.keep(location, cause, line)?;
        }
        self.handle(err)
    }

    /// Keeps `line` in the reject file (if any) with `cause`, without counting it as bad: a
    /// record that was handled, but not as it asked (a conflicting value).
    pub fn keep(&mut self, location: &Location, cause: &str, line: &[u8]) -> Result<(), Error> {
        let Some((name, out)) = &mut self.reject else {
            return Ok(());
        };
        let text = String::from_utf8_lossy(line);
        let record = Rejected {
            location: location.to_string(),
            cause,
            line: text.trim_end_matches(['\n', '\r']),
        };
        serde_json::to_writer(&mut *out, &record)
            .map_err(io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|cause| Error::io(name.as_str(), cause))
    }

    /// Flushes the reject file (before a position past the rejected lines is saved).
    pub fn flush(&mut self) -> Result<(), Error> {
        match &mut self.reject {
            Some((name, out)) => out.flush().map_err(|cause| Error::io(name.as_str(), cause)),
            None => Ok(()),
        }
    }

    /// Handles one bad line: returns the error under `fail`, records it under `skip`.
    pub fn handle(&mut self, err: Error) -> Result<(), Error> {
        if self.policy == OnError::Skip {
            if let Some(warn) = self.warn_each {
                if self.skipped < WARN_EACH_MAX {
                    warn(&format!("{err} (skipped)"));
                } else if self.skipped == WARN_EACH_MAX {
                    warn("more bad lines: counted, not shown");
                }
            }
        }
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

    /// Passes `skipped N bad lines (first: file:line: cause)` to `warn` if anything was
    /// skipped.
    pub fn report(&self, warn: impl FnOnce(&str)) {
        if let Some(first) = &self.first {
            let plural = if self.skipped == 1 { "" } else { "s" };
            warn(&format!(
                "skipped {} bad line{plural} (first: {first})",
                self.skipped
            ));
        }
    }
}

/// Writes one record per line into a shared, large buffer (the run wrapper's stdout).
///
/// Each record is written while holding the buffer's lock, so a signal-triggered flush
/// never cuts a record in half.
pub struct NdjsonWriter {
    sink: Arc<Mutex<io::BufWriter<io::Stdout>>>,
    line_buffered: bool,
    /// Where [`write_json`](NdjsonWriter::write_json) builds a record (kept, not
    /// allocated per record).
    scratch: Vec<u8>,
}

impl NdjsonWriter {
    /// A writer into `sink`, flushing after every record when `line_buffered`.
    pub fn new(sink: Arc<Mutex<io::BufWriter<io::Stdout>>>, line_buffered: bool) -> Self {
        NdjsonWriter {
            sink,
            line_buffered,
            scratch: Vec::new(),
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

    /// Writes `record` through its byte-level writer ([`crate::record::fast`]): the same
    /// bytes as [`write_record`](NdjsonWriter::write_record), without serde's escaping of
    /// every key.
    pub fn write_json<T: crate::record::fast::WriteJson + ?Sized>(
        &mut self,
        record: &T,
    ) -> Result<(), Error> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        record.write_json(&mut scratch);
        let written = self.write_line(&scratch);
        self.scratch = scratch;
        written
    }

    /// Pushes buffered records to stdout now (before saving a state that says they were
    /// delivered).
    pub fn flush(&mut self) -> Result<(), Error> {
        lock(&self.sink)
            .flush()
            .map_err(|cause| Error::io("<stdout>", cause))
    }

    /// Runs `write` and appends the newline under one hold of the lock, then flushes if
    /// line-buffered.
    fn write_with(
        &mut self,
        write: impl FnOnce(&mut io::BufWriter<io::Stdout>) -> io::Result<()>,
    ) -> Result<(), Error> {
        let mut sink = lock(&self.sink);
        let result = write(&mut sink)
            .and_then(|()| sink.write_all(b"\n"))
            .and_then(|()| {
                if self.line_buffered {
                    sink.flush()
                } else {
                    Ok(())
                }
            });
        result.map_err(|cause| Error::io("<stdout>", cause))
    }
}

/// What a [`read_ahead`] thread hands over.
#[cfg(any(feature = "amqp", feature = "nats"))]
pub enum Ahead<T> {
    /// A record prepared, with its number in the input (from 1, bad lines counted).
    Item(u64, T),
    /// The end of input: the number of records read (bad ones included).
    End(u64),
    /// Reading failed, or a bad line under `--on-error fail`.
    Failed(Error),
}

/// Reads `lines` on a thread of its own (named `name`), skips the first `skip` records,
/// and hands each of the others, made by `prepare`, to an async consumer through a channel
/// of `capacity`. A line `prepare` refuses (its cause) is a bad line for `bad`. The thread
/// ends with the channel's receiver and gives `bad` back.
#[cfg(any(feature = "amqp", feature = "nats"))]
pub fn read_ahead<T: Send + 'static>(
    name: &str,
    mut lines: LineReader,
    mut bad: BadLines,
    skip: u64,
    capacity: usize,
    mut prepare: impl FnMut(&[u8]) -> Result<T, String> + Send + 'static,
) -> Result<
    (
        tokio::sync::mpsc::Receiver<Ahead<T>>,
        std::thread::JoinHandle<BadLines>,
    ),
    Error,
> {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity);
    let reader = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut index = 0u64;
            loop {
                let line = match lines.next(&mut bad) {
                    Ok(Some(line)) => line,
                    Ok(None) => {
                        let _ = tx.blocking_send(Ahead::End(index));
                        break;
                    }
                    Err(err) => {
                        let _ = tx.blocking_send(Ahead::Failed(err));
                        break;
                    }
                };
                index += 1;
                if index <= skip {
                    continue;
                }
                match prepare(line.bytes) {
                    Ok(item) => {
                        if tx.blocking_send(Ahead::Item(index, item)).is_err() {
                            break;
                        }
                    }
                    Err(cause) => {
                        let err = Error::bad_input(line.location.clone(), cause);
                        if let Err(err) = bad.handle_line(err, line.bytes) {
                            let _ = tx.blocking_send(Ahead::Failed(err));
                            break;
                        }
                    }
                }
            }
            bad
        })
        .map_err(|e| Error::failed(format!("cannot start the input thread: {e}")))?;
    Ok((rx, reader))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn collect(paths: &[String]) -> Vec<(String, String)> {
        let mut reader = LineReader::new(paths);
        let mut bad = BadLines::new(OnError::Fail);
        let mut out = Vec::new();
        while let Some(line) = reader.next(&mut bad).unwrap() {
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
        let err = reader
            .next(&mut BadLines::new(OnError::Fail))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "/nonexistent/measpipe-input: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn an_overlong_line_is_a_bad_line_and_reading_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long");
        let mut text = b"{\"a\":1}\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 100_000));
        text.extend_from_slice(b"\n{\"b\":2}\n");
        std::fs::write(&path, &text).unwrap();
        let name = path.display().to_string();
        let mut reader = LineReader::new(std::slice::from_ref(&name)).max_line(1000);
        let mut bad = BadLines::new(OnError::Skip);
        let mut lines = Vec::new();
        while let Some(line) = reader.next(&mut bad).unwrap() {
            lines.push(String::from_utf8(line.bytes.to_vec()).unwrap());
        }
        assert_eq!(lines, ["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!(bad.skipped(), 1);
        assert!(reader.buf.capacity() < 8192, "{}", reader.buf.capacity());
        assert_eq!(
            bad.first.unwrap().to_string(),
            format!("{name}:2: line longer than 1000 bytes (raise --max-line to accept it)")
        );
        let mut strict = LineReader::new(std::slice::from_ref(&name)).max_line(1000);
        let mut fail = BadLines::new(OnError::Fail);
        assert!(strict.next(&mut fail).unwrap().is_some());
        assert!(strict.next(&mut fail).is_err());
    }

    proptest::proptest! {
        /// Whatever the input and the limit, bounded reading sees the lines `split` sees,
        /// each cut to the limit, and consumes every byte.
        #[test]
        fn bounded_reading_agrees_with_splitting(
            text in proptest::collection::vec(proptest::prop_oneof![Just(b'\n'), Just(b'a'), Just(b'\r')], 0..200),
            max in 0usize..12,
        ) {
            let mut input = io::BufReader::with_capacity(7, &text[..]);
            let mut buf = Vec::new();
            let mut lines = Vec::new();
            let mut consumed = 0;
            loop {
                let read = read_bounded_line(&mut input, &mut buf, max).unwrap();
                if read.consumed == 0 {
                    break;
                }
                consumed += read.consumed;
                lines.push((buf.clone(), read.overlong, read.complete));
            }
            prop_assert_eq!(consumed, text.len() as u64);
            let expected: Vec<(Vec<u8>, bool, bool)> = text
                .split_inclusive(|&b| b == b'\n')
                .map(|l| (l[..l.len().min(max)].to_vec(), l.len() > max, l.ends_with(b"\n")))
                .collect();
            prop_assert_eq!(lines, expected);
        }
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_accepted() {
        let mut input = io::Cursor::new(b"abcd\r\nefgh".to_vec());
        let mut buf = Vec::new();
        let read = read_bounded_line(&mut input, &mut buf, 6).unwrap();
        assert_eq!(
            (read.consumed, read.complete, read.overlong),
            (6, true, false)
        );
        let read = read_bounded_line(&mut input, &mut buf, 3).unwrap();
        assert_eq!(
            (read.consumed, read.complete, read.overlong),
            (4, false, true)
        );
        assert_eq!(buf, b"efg");
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
