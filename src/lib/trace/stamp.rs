//! Line stamping: any line-producing worker (stap, `bpftrace -f json`, `perf stat -j`,
//! `pidstat -h`, a log tail) turned into trace records as its lines arrive. This is
//! scalpels' `sca-tracer` with its `parse_*` functions, streaming instead of holding
//! every line until stop.
//!
//! Each line is stamped with the time it was read (pidstat prints only a local time of day).
//! What a line becomes, by [`Parse`]:
//!
//! | parse | a line | records |
//! |---|---|---|
//! | `count` | an integer (stap's `%d`) | one, that integer |
//! | `number` | a number | one, that number |
//! | `json` | any JSON (`bpftrace -f json`) | one, the JSON as the value |
//! | `raw` | any text | one, the text as the value |
//! | `perf-stat` | a `perf stat -j` object | one per counted event: series the event, unit perf's (`count` if none), field `interval` when perf gives one; `<not counted>` and `<not supported>` give none |
//! | `pidstat` | a `pidstat -h` row, after its `#` header | one per numeric column (`%usr`, `minflt/s`, `RSS`, …) with the fields `pid`, `uid` and `command` |
//!
//! Blank lines (except for `raw`), and pidstat's banner, are not samples and give nothing.
//! A line that does not parse is a [`Bad`] line: the caller reports it and goes on.

use serde::Serialize;
use serde_json::Value;

use super::{NoFields, Tags};
use crate::ndjson::NdjsonWriter;

/// How to read a worker's lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// An integer per line.
    Count,
    /// A number per line.
    Number,
    /// A JSON value per line.
    Json,
    /// The line's text.
    Raw,
    /// `perf stat -j` output.
    PerfStat,
    /// `pidstat -h` output.
    Pidstat,
}

impl Parse {
    /// Every parse with its name (as `line-stamp --parse` and a registry's `parse` spell it).
    pub const NAMES: [(Parse, &'static str); 6] = [
        (Parse::Count, "count"),
        (Parse::Number, "number"),
        (Parse::Json, "json"),
        (Parse::Raw, "raw"),
        (Parse::PerfStat, "perf-stat"),
        (Parse::Pidstat, "pidstat"),
    ];

    /// The parse's name.
    pub fn name(self) -> &'static str {
        Parse::NAMES
            .iter()
            .find(|(parse, _)| *parse == self)
            .map_or("count", |(_, name)| name)
    }

    /// The parse called `name`.
    pub fn from_name(name: &str) -> Option<Parse> {
        Parse::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(parse, _)| *parse)
    }
}

/// Why a line gave no record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad(pub String);

/// Turns lines into records.
#[derive(Debug)]
pub struct Stamper {
    tags: Tags,
    parse: Parse,
    series: String,
    unit: String,
    /// pidstat's columns, from its last `#` header.
    columns: Vec<String>,
    /// Records written.
    pub records: u64,
    /// perf counters that were not counted (or not supported).
    pub not_counted: u64,
}

#[derive(Debug, Serialize)]
struct Interval {
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<f64>,
}

#[derive(Debug, Serialize)]
struct PidstatFields<'a> {
    pid: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<i64>,
    command: &'a str,
}

impl Stamper {
    /// A stamper of `parse` lines into `series` (in `unit`) for the single-series parses.
    pub fn new(tags: Tags, parse: Parse, series: String, unit: String) -> Stamper {
        Stamper {
            tags,
            parse,
            series,
            unit,
            columns: Vec::new(),
            records: 0,
            not_counted: 0,
        }
    }

    /// Writes the records of one line (without its line end), read at `ts`.
    pub fn line(
        &mut self,
        out: &mut NdjsonWriter,
        line: &[u8],
        ts: f64,
    ) -> Result<Result<(), Bad>, crate::Error> {
        let text = match std::str::from_utf8(line) {
            Ok(text) => text,
            Err(_) if self.parse == Parse::Raw => {
                let text = String::from_utf8_lossy(line);
                return self.one(out, ts, text.as_ref()).map(Ok);
            }
            Err(e) => return Ok(Err(Bad(format!("not UTF-8 ({e})")))),
        };
        if text.trim().is_empty() && self.parse != Parse::Raw {
            return Ok(Ok(()));
        }
        match self.parse {
            Parse::Raw => self.one(out, ts, text).map(Ok),
            Parse::Count => match text.trim().parse::<i64>() {
                Ok(n) => self.one(out, ts, n).map(Ok),
                Err(_) => Ok(Err(Bad(format!("not an integer: {:?}", clip(text))))),
            },
            Parse::Number => match text.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => self.one(out, ts, n).map(Ok),
                _ => Ok(Err(Bad(format!("not a number: {:?}", clip(text))))),
            },
            Parse::Json => match serde_json::from_str::<Value>(text) {
                Ok(value) => self.one(out, ts, value).map(Ok),
                Err(e) => Ok(Err(Bad(format!("not JSON: {e}")))),
            },
            Parse::PerfStat => self.perf_stat(out, text, ts),
            Parse::Pidstat => self.pidstat(out, text, ts),
        }
    }

    fn one<V: Serialize>(
        &mut self,
        out: &mut NdjsonWriter,
        ts: f64,
        value: V,
    ) -> Result<(), crate::Error> {
        self.records += 1;
        self.tags
            .write(out, ts, &self.series, &self.unit, value, NoFields {})
    }

    fn perf_stat(
        &mut self,
        out: &mut NdjsonWriter,
        text: &str,
        ts: f64,
    ) -> Result<Result<(), Bad>, crate::Error> {
        #[derive(serde::Deserialize)]
        struct Counter<'a> {
            #[serde(rename = "counter-value")]
            value: Option<std::borrow::Cow<'a, str>>,
            event: Option<std::borrow::Cow<'a, str>>,
            #[serde(default)]
            unit: std::borrow::Cow<'a, str>,
            interval: Option<f64>,
        }
        let counter: Counter = match serde_json::from_str(text) {
            Ok(counter) => counter,
            Err(e) => return Ok(Err(Bad(format!("not a perf stat -j line: {e}")))),
        };
        let (Some(value), Some(event)) = (counter.value, counter.event) else {
            // A line of metrics only, without a counter of its own.
            return Ok(Ok(()));
        };
        if value.starts_with('<') {
            self.not_counted += 1;
            return Ok(Ok(()));
        }
        let Ok(number) = value.trim().parse::<f64>() else {
            return Ok(Err(Bad(format!(
                "counter-value is not a number: {value:?}"
            ))));
        };
        let unit = if counter.unit.is_empty() {
            "count"
        } else {
            &counter.unit
        };
        self.records += 1;
        let fields = Interval {
            interval: counter.interval,
        };
        self.tags
            .write(out, ts, &event, unit, number, fields)
            .map(Ok)
    }

    fn pidstat(
        &mut self,
        out: &mut NdjsonWriter,
        text: &str,
        ts: f64,
    ) -> Result<Result<(), Bad>, crate::Error> {
        if let Some(header) = text.strip_prefix('#') {
            self.columns = header.split_whitespace().map(str::to_owned).collect();
            return Ok(Ok(()));
        }
        if self.columns.is_empty() {
            // The banner (`Linux 6.1.0 (host) ...`) before the first header.
            return Ok(Ok(()));
        }
        let cells: Vec<&str> = text.split_whitespace().collect();
        let command_at = self.columns.iter().position(|c| c == "Command");
        let wanted = command_at.map_or(self.columns.len(), |at| at + 1);
        if cells.len() < wanted {
            return Ok(Err(Bad(format!(
                "a pidstat row of {} columns under a header of {}",
                cells.len(),
                self.columns.len()
            ))));
        }
        let cell = |name: &str| {
            self.columns
                .iter()
                .position(|c| c == name)
                .and_then(|at| cells.get(at))
        };
        let number = |name: &str| cell(name).and_then(|c| c.parse::<i64>().ok());
        let Some(pid) = number("PID").or_else(|| number("TGID")) else {
            return Ok(Err(Bad("a pidstat row without a PID".into())));
        };
        let command = command_at.map_or(String::new(), |at| cells[at..].join(" "));
        let fields = PidstatFields {
            pid,
            uid: number("UID"),
            command: &command,
        };
        for (name, value) in self.columns.iter().zip(&cells) {
            if matches!(
                name.as_str(),
                "Time" | "UID" | "USER" | "PID" | "TGID" | "TID" | "CPU" | "Command"
            ) {
                continue;
            }
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            self.records += 1;
            self.tags
                .write(out, ts, name, pidstat_unit(name), value, &fields)?;
        }
        Ok(Ok(()))
    }
}

/// The unit of a pidstat column.
fn pidstat_unit(column: &str) -> &'static str {
    if column.starts_with('%') {
        "%"
    } else if column.ends_with("/s") {
        "per_s"
    } else if matches!(column, "VSZ" | "RSS" | "StkSize" | "StkRef") {
        "kB"
    } else {
        "count"
    }
}

/// The start of a long line, for a message.
fn clip(text: &str) -> &str {
    match text.char_indices().nth(80) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// Stamps every line of `input` (named `name` in messages) until its end. Records are
/// flushed whenever no more input is waiting, so each reaches the next filter while the
/// worker runs, without a write per line under load. A bad line goes to `bad` (which
/// counts it, or stops the run under `--on-error fail`).
pub fn stamp_stream<R: std::io::Read>(
    stamper: &mut Stamper,
    input: &mut std::io::BufReader<R>,
    name: &str,
    out: &mut NdjsonWriter,
    max_line: usize,
    bad: &mut crate::ndjson::BadLines,
) -> Result<(), crate::Error> {
    let file: std::sync::Arc<str> = name.into();
    let mut line = Vec::with_capacity(4096);
    let mut number = 0u64;
    loop {
        if input.buffer().is_empty() {
            out.flush()?;
        }
        let read = crate::ndjson::read_line_within(input, &mut line, max_line)
            .map_err(|e| crate::Error::io(name, e))?;
        if read.consumed == 0 {
            return out.flush();
        }
        number += 1;
        let location = crate::error::Location {
            file: file.clone(),
            line: number,
        };
        let content = crate::ndjson::trim_line_end(&line);
        if read.overlong {
            let cause = crate::ndjson::overlong_cause(max_line);
            bad.handle_line(crate::Error::bad_input(location, cause), content)?;
            continue;
        }
        if let Err(Bad(cause)) = stamper.line(out, content, crate::clock::now_epoch())? {
            bad.handle_line(crate::Error::bad_input(location, cause), content)?;
        }
    }
}

/// A worker run as a child in its own process group, its stdout piped to the stamper (its
/// stderr stays the tracer's).
#[derive(Debug)]
pub struct Worker {
    child: std::process::Child,
}

impl Worker {
    /// Starts `argv`; the worker and its output.
    pub fn spawn(argv: &[String]) -> Result<(Worker, std::process::ChildStdout), crate::Error> {
        use std::os::unix::process::CommandExt;
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| crate::Error::Usage("no worker command given".into()))?;
        let mut child = std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| crate::Error::failed(format!("{program}: cannot start: {e}")))?;
        let output = child
            .stdout
            .take()
            .ok_or_else(|| crate::Error::failed(format!("{program}: no output pipe")))?;
        Ok((Worker { child }, output))
    }

    /// A handle that signals the worker's process group from another thread.
    pub fn group(&self) -> Group {
        Group(self.child.id() as i32)
    }

    /// Waits for the worker to end: an error names how it ended if that was not success.
    pub fn wait(mut self, name: &str) -> Result<(), crate::Error> {
        use std::os::unix::process::ExitStatusExt;
        let status = self
            .child
            .wait()
            .map_err(|e| crate::Error::failed(format!("{name}: {e}")))?;
        match (status.code(), status.signal()) {
            (Some(0), _) => Ok(()),
            (Some(code), _) => Err(crate::Error::failed(format!(
                "{name} exited with status {code}"
            ))),
            (None, Some(signal)) => Err(crate::Error::failed(format!(
                "{name} was killed by signal {signal}"
            ))),
            (None, None) => Err(crate::Error::failed(format!("{name} ended: {status}"))),
        }
    }
}

/// A worker's process group.
#[derive(Debug, Clone, Copy)]
pub struct Group(i32);

impl Group {
    /// Sends `signal` to every process of the group (the worker and what it started).
    pub fn signal(self, signal: i32) {
        // SAFETY: kill(2) with a negative pid signals a process group; it touches no memory.
        unsafe {
            libc::kill(-self.0, signal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamper(parse: Parse) -> Stamper {
        let tags = Tags {
            task: "t".into(),
            tracer: "x".into(),
        };
        Stamper::new(tags, parse, "x".into(), "u".into())
    }

    fn writer() -> NdjsonWriter {
        let sink = std::sync::Arc::new(std::sync::Mutex::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::io::stdout(),
        )));
        NdjsonWriter::new(sink, false)
    }

    proptest::proptest! {
        /// Any bytes, in any parse: a record, nothing or a bad line, never a panic; an
        /// integer line in `count` is that integer.
        #[test]
        fn any_line_parses_or_is_a_bad_line(line in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), n in proptest::prelude::any::<i64>()) {
            let mut out = writer();
            for parse in [Parse::Count, Parse::Number, Parse::Json, Parse::Raw, Parse::PerfStat, Parse::Pidstat] {
                let mut stamper = stamper(parse);
                let _ = stamper.line(&mut out, b"# Time UID PID %usr Command", 1.0).unwrap();
                let _ = stamper.line(&mut out, &line, 1.0).unwrap();
            }
            let mut count = stamper(Parse::Count);
            let text = format!(" {n}\r");
            proptest::prop_assert_eq!(count.line(&mut out, text.as_bytes(), 1.0).unwrap(), Ok(()));
            proptest::prop_assert_eq!(count.records, 1);
            // Not flushed: the records are not what is tested (and would reach the real stdout).
            std::mem::forget(out);
        }
    }

    #[test]
    fn pidstat_rows_before_a_header_and_short_rows() {
        let mut out = writer();
        let mut stamper = stamper(Parse::Pidstat);
        let banner = b"Linux 6.1.0 (vm) \t12/04/26 \t_x86_64_\t(2 CPU)";
        assert_eq!(stamper.line(&mut out, banner, 1.0).unwrap(), Ok(()));
        let header = b"# Time UID PID %usr Command";
        assert_eq!(stamper.line(&mut out, header, 1.0).unwrap(), Ok(()));
        assert_eq!(
            stamper.line(&mut out, b"04:40:55 0", 1.0).unwrap(),
            Err(Bad("a pidstat row of 2 columns under a header of 5".into()))
        );
        let row = b"04:40:55 0 7001 1.50 my command";
        assert_eq!(stamper.line(&mut out, row, 1.0).unwrap(), Ok(()));
        assert_eq!(stamper.records, 1);
        std::mem::forget(out);
    }
}
