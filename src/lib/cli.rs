//! The run wrapper every binary uses, and the argument groups they share.
//!
//! [`main`] turns a tool's `run` function into a well-mannered Unix program:
//!
//! * exit 0 on success, 1 on a runtime failure or bad input, 2 on a usage error (clap's
//!   own code, and [`Error::Usage`]);
//! * errors print as `prog: error: <cause>` where an input error's cause starts with
//!   `<file>:<line>:`; warnings as `prog: warning: …`;
//! * a closed stdout (EPIPE, as under `| head -1`) ends the
//!   program quietly with status 0 (Rust ignores SIGPIPE, so writes fail with EPIPE rather
//!   than killing the process; restoring SIG_DFL would exit 141 and break `set -o pipefail`);
//! * SIGINT and SIGTERM flush whatever [`stdout`] has buffered, never splitting a record,
//!   and exit 130 / 143;
//! * 75 (EX_TEMPFAIL) when another run holds a state lock ([`Error::Locked`]), so cron
//!   overlap is visible.
//!
//! The signal design: a dedicated thread waits for the signal and then takes the stdout
//! lock that every record write holds, so it flushes between two records; the main thread
//! never needs to poll a flag, which matters for a filter blocked reading a quiet pipe. If
//! the lock is not free within 300 ms (a write blocked on a full pipe whose reader has
//! stopped), the program exits without that flush: a signal always ends it promptly.
//! Stateful tools call [`stop_on_signal`] instead: the thread then only records the signal,
//! the tool polls [`interrupted`] between records, saves its state and returns
//! [`Error::Interrupted`] (a second signal still ends the program at once).

use std::io::{self, IsTerminal, Write};
use std::process;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use clap::{Args, Parser};

use crate::error::Error;
pub use crate::error::{EXIT_FAILURE, EXIT_SUCCESS, EXIT_TEMPFAIL, EXIT_USAGE};
use crate::ndjson::{NdjsonWriter, OnError, DEFAULT_MAX_LINE};
use crate::sync::lock;

/// Set by [`stop_on_signal`]: signals are recorded instead of ending the program.
static GRACEFUL: AtomicBool = AtomicBool::new(false);
/// The signal received in graceful mode, or 0.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// Size of the stdout buffer: large writes keep pipes fast.
const STDOUT_BUFFER: usize = 64 * 1024;

/// How long the signal thread waits for a record in progress before it exits anyway: a
/// write blocked on a full pipe whose reader has stopped must not keep the program alive.
const SIGNAL_FLUSH_WAIT: Duration = Duration::from_millis(300);

static PROGRAM: OnceLock<String> = OnceLock::new();
static STDOUT: OnceLock<Arc<Mutex<io::BufWriter<io::Stdout>>>> = OnceLock::new();

/// Runs a tool: parses `A` from the command line, calls `run`, flushes stdout and exits
/// with the status the error carries ([`Error::exit_code`]). Never returns.
pub fn main<A: Parser>(run: fn(A) -> Result<(), Error>) -> ! {
    let args = A::try_parse().unwrap_or_else(|usage| {
        // Help and version go to stdout with status 0; a closed pipe there is no error.
        let _ = usage.print();
        process::exit(if usage.use_stderr() {
            EXIT_USAGE
        } else {
            EXIT_SUCCESS
        })
    });
    let _ = PROGRAM.set(A::command().get_name().to_owned());
    install_signal_flusher();
    // Flush even after a failure: the records written before it are valid and wanted.
    let outcome = run(args);
    let outcome = outcome.and(flush_stdout());
    process::exit(match outcome {
        Ok(()) => EXIT_SUCCESS,
        Err(err) => {
            if !err.is_broken_pipe() && !matches!(err, Error::Interrupted(_)) {
                error(&err.to_string());
            }
            err.exit_code()
        }
    })
}

/// The running program's name, for messages.
pub fn program() -> &'static str {
    PROGRAM.get().map(String::as_str).unwrap_or("measpipe")
}

/// Prints `prog: warning: <message>` on stderr.
pub fn warn(message: &str) {
    say(format_args!("{}: warning: {message}", program()));
}

/// Prints `prog: <message>` on stderr (a notice: a summary, where the server listens).
pub fn notice(message: &str) {
    say(format_args!("{}: {message}", program()));
}

/// Prints `prog: error: <message>` on stderr.
pub fn error(message: &str) {
    say(format_args!("{}: error: {message}", program()));
}

/// One message line on stderr, above the status line if one is showing.
fn say(line: std::fmt::Arguments) {
    let write = || {
        let _ = writeln!(io::stderr().lock(), "{line}");
    };
    match STATUS.get() {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// The status line, once a tool has shown one.
static STATUS: std::sync::OnceLock<indicatif::ProgressBar> = std::sync::OnceLock::new();

/// A status line at the bottom of a terminal (`prog: <text>`, redrawn a few times a second
/// and cleared at the end); nothing at all when stderr is not a terminal, or `off`. The
/// messages of [`warn`], [`notice`] and [`error`] print above it.
pub struct Status {
    bar: Option<&'static indicatif::ProgressBar>,
    shown: Option<std::time::Instant>,
}

impl Status {
    /// A status line if stderr is a terminal and not `off`.
    pub fn new(off: bool) -> Status {
        let bar = (!off && io::stderr().is_terminal()).then(|| {
            STATUS.get_or_init(|| {
                let bar = indicatif::ProgressBar::with_draw_target(
                    None,
                    indicatif::ProgressDrawTarget::stderr_with_hz(4),
                );
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{prefix}: {msg} ({elapsed})")
                        .expect("a valid template"),
                );
                bar.set_prefix(program());
                bar.set_message("starting");
                bar.enable_steady_tick(std::time::Duration::from_secs(1));
                bar
            })
        });
        Status { bar, shown: None }
    }

    /// Shows `text()`, at most four times a second (it is asked for only then).
    pub fn update(&mut self, text: impl FnOnce() -> String) {
        let Some(bar) = self.bar else { return };
        let now = std::time::Instant::now();
        if self
            .shown
            .is_none_or(|shown| now.duration_since(shown) >= std::time::Duration::from_millis(250))
        {
            self.shown = Some(now);
            bar.set_message(text());
        }
    }
}

impl Drop for Status {
    fn drop(&mut self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Implements `clap::ValueEnum` for a library enum, so the domains that own the enums
/// know nothing of clap: `value_enum!(Format { Format::Auto => "auto": "help", … })`.
#[macro_export]
macro_rules! value_enum {
    ($ty:ty { $($variant:path => $name:literal : $help:literal),+ $(,)? }) => {
        impl ::clap::ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                &[$($variant),+]
            }
            fn to_possible_value(&self) -> Option<::clap::builder::PossibleValue> {
                Some(match self {
                    $($variant => ::clap::builder::PossibleValue::new($name).help($help)),+
                })
            }
        }
    };
}

value_enum!(OnError {
    OnError::Fail => "fail": "Stop at the first bad line with exit status 1",
    OnError::Skip => "skip": "Skip bad lines, count them, and report the count on stderr at exit",
});

/// Output options every record-writing tool accepts.
#[derive(Debug, Clone, Default, Args)]
pub struct OutputArgs {
    /// Flush after every record (the default when stdout is a terminal); use it behind
    /// `tail -f` so each record reaches the next filter at once.
    #[arg(long)]
    pub line_buffered: bool,
}

/// Returns the process's buffered NDJSON writer on stdout. Every call shares one buffer, so
/// the signal thread can flush it.
pub fn stdout(options: &OutputArgs) -> NdjsonWriter {
    let shared = STDOUT.get_or_init(|| {
        Arc::new(Mutex::new(io::BufWriter::with_capacity(
            STDOUT_BUFFER,
            io::stdout(),
        )))
    });
    let line_buffered = options.line_buffered || io::stdout().is_terminal();
    NdjsonWriter::new(Arc::clone(shared), line_buffered)
}

fn flush_stdout() -> Result<(), Error> {
    match STDOUT.get() {
        Some(shared) => lock(shared)
            .flush()
            .map_err(|cause| Error::io("<stdout>", cause)),
        None => Ok(()),
    }
}

/// Flushes stdout between two records (the flush takes the lock every record write holds)
/// if that finishes within [`SIGNAL_FLUSH_WAIT`]; otherwise (a write blocked on a full pipe
/// whose reader stopped) gives up, so the signal still ends the program promptly.
fn flush_stdout_for_signal() {
    let Some(shared) = STDOUT.get() else {
        return;
    };
    let shared = Arc::clone(shared);
    let (done, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = lock(&shared).flush();
        let _ = done.send(());
    });
    let _ = wait.recv_timeout(SIGNAL_FLUSH_WAIT);
}

fn install_signal_flusher() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        warn("cannot install signal handlers; SIGINT/SIGTERM will not flush output");
        return;
    };
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if GRACEFUL.load(Ordering::SeqCst) && RECEIVED.swap(signal, Ordering::SeqCst) == 0 {
                continue;
            }
            flush_stdout_for_signal();
            process::exit(128 + signal);
        }
    });
}

/// Where a tool's messages go: stderr (`prog: message`), or with `--log-dir DIR` a file in
/// DIR with a timestamp and level on each line.
pub struct Log(Option<std::fs::File>);

impl Log {
    /// Messages to `DIR/name` (appended) when `dir` is given, else to stderr.
    pub fn open(dir: Option<&std::path::Path>, name: &str) -> Result<Log, Error> {
        let Some(dir) = dir else {
            return Ok(Log(None));
        };
        let path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(path.display().to_string(), e))?;
        Ok(Log(Some(file)))
    }

    /// Says `message` at `level` ("error" goes to stderr as an error).
    pub fn say(&mut self, level: &str, message: &str) {
        match &mut self.0 {
            Some(file) => {
                let _ = writeln!(file, "{} {level}: {message}", crate::clock::now_rfc3339());
            }
            None if level == "error" => error(message),
            None => notice(message),
        }
    }
}

/// Closes the process's standard output (it then writes to /dev/null), so the next filter
/// in the pipe reads its end while this process goes on (waiting for that filter's ack).
pub fn close_stdout() -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    // SAFETY: both descriptors are open; dup2 replaces fd 1 atomically.
    if unsafe { libc::dup2(null.as_raw_fd(), libc::STDOUT_FILENO) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether standard output is a pipe whose reader has gone (the next write would fail
/// with EPIPE): a process waiting on that reader stops instead of waiting for ever.
pub fn stdout_gone() -> bool {
    let mut poll = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd; a zero timeout only looks.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    ready > 0 && poll.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// Makes SIGINT/SIGTERM set a flag (see [`interrupted`]) instead of ending the program, for
/// tools that must save their state first. A second signal ends it at once.
pub fn stop_on_signal() {
    GRACEFUL.store(true, Ordering::SeqCst);
}

/// The signal received since [`stop_on_signal`], if any.
pub fn interrupted() -> Option<i32> {
    match RECEIVED.load(Ordering::Relaxed) {
        0 => None,
        signal => Some(signal),
    }
}

/// Input options every record-reading tool accepts.
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// Input files, read in order; `-` or none means standard input.
    #[arg(value_name = "FILE")]
    pub files: Vec<String>,

    /// What to do with a line that is not a valid record.
    #[arg(long, value_enum, default_value_t = OnError::Fail, value_name = "POLICY")]
    pub on_error: OnError,

    /// The longest input line accepted, in bytes; a longer line is a bad line (see
    /// --on-error) and costs no more memory than this.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_LINE as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_line: u64,
}

impl InputArgs {
    /// A line reader over the inputs, with the length limit applied.
    pub fn reader(&self) -> crate::ndjson::LineReader {
        let max = usize::try_from(self.max_line).unwrap_or(usize::MAX);
        crate::ndjson::LineReader::new(&self.files).max_line(max)
    }

    /// The `--on-error` policy's counter.
    pub fn bad_lines(&self) -> crate::ndjson::BadLines {
        crate::ndjson::BadLines::new(self.on_error)
    }
}

/// The ack file of the publishers (amqp-publish, nats-pub): the count of input records
/// the far side confirmed, and a rerun that skips them.
#[derive(Debug, Clone, Args)]
pub struct AckArgs {
    /// Write the number of input records confirmed (or refused as bad lines) to FILE,
    /// atomically, while the run goes on and at its end.
    #[arg(long, value_name = "FILE")]
    pub ack: Option<std::path::PathBuf>,

    /// Skip the input records the --ack file already counts (a rerun over the same input).
    #[arg(long, requires = "ack")]
    pub resume: bool,
}

impl AckArgs {
    /// The input records to skip: what the ack file (`what`, in a message) counts under
    /// --resume, else none.
    pub fn skip(&self, what: &str) -> Result<u64, Error> {
        match (&self.ack, self.resume) {
            (Some(path), true) => crate::state::read_count(path, what),
            _ => Ok(0),
        }
    }
}

/// The stats-file arguments every mmstats reader takes.
#[derive(Debug, Clone, Args)]
pub struct StatsFileArgs {
    /// Stats files or glob patterns. Quote a pattern to let the tool expand it
    /// (mmstats-poll expands it again at every tick). Default: $MMSTATS_GLOB, else
    /// $MMSTATS_PATH/*.mmstats, else <temp dir>/*.mmstats.
    #[arg(value_name = "FILES|GLOBS")]
    pub files: Vec<String>,
}

impl StatsFileArgs {
    /// The files named now, warning about explicit patterns that matched nothing.
    pub fn resolve(&self, warn_unmatched: bool) -> Result<Vec<std::path::PathBuf>, Error> {
        let (files, unmatched) =
            crate::mmstats::files::expand(&self.files).map_err(Error::Usage)?;
        if warn_unmatched && !self.files.is_empty() {
            for pattern in unmatched {
                warn(&format!("no stats files match {pattern}"));
            }
        }
        Ok(files)
    }
}

/// The options every tracer takes: whose records they are, and how often it samples.
#[derive(Debug, Clone, Args)]
pub struct TracerArgs {
    /// The task every record names (a supervisor sets MEASPIPE_TASK for the tracers it starts).
    #[arg(
        long,
        env = "MEASPIPE_TASK",
        default_value = "adhoc",
        value_name = "TASK"
    )]
    pub task: String,

    /// Seconds between samples; fractions allowed.
    #[arg(short, long, default_value = "1", value_name = "SECONDS", value_parser = positive_seconds)]
    pub interval: Duration,

    /// Take COUNT samples, then exit (default: until interrupted).
    #[arg(short, long, value_name = "COUNT")]
    pub count: Option<u64>,
}

impl TracerArgs {
    /// The tags of tracer `tracer`'s records.
    pub fn tags(&self, tracer: &str) -> crate::trace::Tags {
        crate::trace::Tags {
            task: self.task.clone(),
            tracer: tracer.to_owned(),
        }
    }

    /// For a tracer of rates, whose first reading only starts them: one reading more than
    /// COUNT, so COUNT samples come out.
    pub fn of_rates(self) -> TracerArgs {
        TracerArgs {
            count: self.count.map(|c| c.saturating_add(1)),
            ..self
        }
    }

    /// Samples every interval until COUNT samples or a signal: `tick` gets each sample's
    /// time (epoch seconds) and the records it writes are flushed at once. After
    /// [`stop_on_signal`], a signal ends the loop between samples with
    /// [`Error::Interrupted`], so the tracer can undo what it set up.
    pub fn each_tick(
        &self,
        out: &mut NdjsonWriter,
        mut tick: impl FnMut(&mut NdjsonWriter, f64) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut ticker = crate::trace::Ticker::new(self.interval);
        let mut taken = 0;
        while self.count.is_none_or(|count| taken < count) {
            if ticker.wait(|| interrupted().is_some()).is_none() {
                break;
            }
            tick(out, crate::clock::now_epoch())?;
            out.flush()?;
            taken += 1;
        }
        match interrupted() {
            Some(signal) => Err(Error::Interrupted(signal)),
            None => Ok(()),
        }
    }
}

/// Where trace-agent and trace-report find the agent's socket and store.
#[derive(Debug, Clone, Args)]
pub struct TraceDirArgs {
    /// The agent's data directory: its socket (agent.sock), lock, registry (tracers.toml)
    /// and store (traces.sqlite). Default: $XDG_STATE_HOME/measpipe/trace, else
    /// ~/.local/state/measpipe/trace.
    #[arg(long, env = "MEASPIPE_TRACE_DIR", value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
}

impl TraceDirArgs {
    /// The directory, the default filled in.
    pub fn dir(&self) -> std::path::PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(crate::trace::protocol::default_dir)
    }
}

/// [`seconds`], above zero.
fn positive_seconds(text: &str) -> Result<Duration, String> {
    seconds(text).and_then(|s| {
        if s.is_zero() {
            Err(format!("{text:?} is not a positive number of seconds"))
        } else {
            Ok(s)
        }
    })
}

/// How a server bounds its clients (esmond-serve, mmstats-serve).
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// Connections served at once; more are closed at once and logged. The open-file limit
    /// is raised to its hard limit at start.
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,

    /// Seconds for a request's headers to arrive, and again for its body (then 408 or the
    /// connection is closed).
    #[arg(long, value_name = "SECONDS", default_value = "20", value_parser = seconds)]
    pub request_timeout: Duration,

    /// Seconds an idle keep-alive connection is kept open.
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = seconds)]
    pub idle_timeout: Duration,
}

impl ConnectionArgs {
    /// The limits, each timeout at least 10 ms.
    pub fn limits(&self) -> crate::http::Limits {
        crate::http::Limits {
            max_connections: self.max_connections as usize,
            request_timeout: self.request_timeout.max(Duration::from_millis(10)),
            idle_timeout: self.idle_timeout.max(Duration::from_millis(10)),
        }
    }
}

/// Parses a number of seconds for a timeout or a delay: finite, not negative, at most a
/// day (a larger value is a typo, and would overflow a `Duration`).
pub fn seconds(text: &str) -> Result<Duration, String> {
    const MAX: f64 = 86_400.0;
    match text.trim().parse::<f64>() {
        Ok(s) if (0.0..=MAX).contains(&s) => Ok(Duration::from_secs_f64(s)),
        Ok(_) => Err(format!("{text:?} is not between 0 and {MAX} seconds")),
        Err(_) => Err(format!("{text:?} is not a number of seconds")),
    }
}

/// Parses a network as ADDRESS/PREFIX (CIDR), or a single address (its whole length).
pub fn cidr(text: &str) -> Result<(std::net::IpAddr, u8), String> {
    let (address, prefix) = text.split_once('/').unwrap_or((text, ""));
    let address: std::net::IpAddr = address
        .parse()
        .map_err(|_| format!("{text:?} is not an address or CIDR network"))?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix = if prefix.is_empty() {
        max
    } else {
        prefix
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("{text:?}: bad prefix length"))?
    };
    Ok((address, prefix))
}

// The command-line names of the library's enums (the domains know no clap).
value_enum!(crate::record::Family {
    crate::record::Family::Measurement => "measurement": "A measurement run bound for an esmond archive (measpipe-records(7))",
    crate::record::Family::Notification => "notification": "An OpenStack-like notification, v1 dict or v2 envelope (measpipe-records(7))",
    crate::record::Family::Stat => "stat": "One field read from an mmstats file (measpipe-records(7))",
    crate::record::Family::Trace => "trace": "One sample from a tracer (measpipe-records(7))",
});
value_enum!(crate::trace::stamp::Parse {
    crate::trace::stamp::Parse::Count => "count": "An integer per line (stap's %d)",
    crate::trace::stamp::Parse::Number => "number": "A number per line",
    crate::trace::stamp::Parse::Json => "json": "A JSON value per line, kept whole as the value (bpftrace -f json)",
    crate::trace::stamp::Parse::Raw => "raw": "The line's text as the value",
    crate::trace::stamp::Parse::PerfStat => "perf-stat": "perf stat -j: a record per counted event",
    crate::trace::stamp::Parse::Pidstat => "pidstat": "pidstat -h: a record per numeric column of each row",
});
value_enum!(crate::trace::report::Format {
    crate::trace::report::Format::Text => "text": "An aligned table after a line naming the task",
    crate::trace::report::Format::Csv => "csv": "A header, then a row per series",
    crate::trace::report::Format::Json => "json": "NDJSON, an object per series",
});
value_enum!(crate::gridftp::line::Format {
    crate::gridftp::line::Format::Auto => "auto": "Decide per line: `{` starts JSON, `:: Transfer stats:` marks the main log, a leading `KEY=` token the transfer log; other lines are ignored",
    crate::gridftp::line::Format::Netlogger => "netlogger": "The transfer log (`-log-transfer`): every line must be `KEY=value` fields",
    crate::gridftp::line::Format::Main => "main": "The main server log: only `Transfer stats:` lines are read",
    crate::gridftp::line::Format::Json => "json": "The JSON transfer log: every line must be a JSON object",
});
value_enum!(crate::notigen::PayloadMode {
    crate::notigen::PayloadMode::Seed => "seed": "A few fields: instance_id, tenant_id, state, old_state (and the audit period on exists events)",
    crate::notigen::PayloadMode::Full => "full": "The whole legacy Nova instance payload",
});
value_enum!(crate::notigen::TimeFormat {
    crate::notigen::TimeFormat::Python => "python": "`YYYY-MM-DD HH:MM:SS.ffffff`, Python's `str(datetime)` as oslo.messaging sends it, always with the fraction",
    crate::notigen::TimeFormat::Rfc3339 => "rfc3339": "`YYYY-MM-DDTHH:MM:SS.ffffffZ`",
});
value_enum!(crate::notigen::Format {
    crate::notigen::Format::Unversioned => "unversioned": "Legacy notifications (topic notifications), as Ceilometer reads them",
    crate::notigen::Format::Versioned => "versioned": "Nova's versioned notifications (topic versioned_notifications; nova_object payloads)",
    crate::notigen::Format::Both => "both": "Each legacy notification followed by its versioned twin, when Nova sends one",
});
value_enum!(crate::notigen::Envelope {
    crate::notigen::Envelope::V1 => "v1": "The flat oslo.messaging v1 dict (driver `messaging`)",
    crate::notigen::Envelope::V2 => "v2": "`{\"oslo.version\":\"2.0\",\"oslo.message\":\"<v1 dict as a JSON string>\"}` (driver `messagingv2`)",
});
value_enum!(crate::mmstats::render::Layout {
    crate::mmstats::render::Layout::Ndjson => "ndjson": "NDJSON, one object per line",
    crate::mmstats::render::Layout::Text => "text": "Text in the layout of the Python original (slurpstats, pollstats, cleanstats)",
});

value_enum!(crate::mmstats::render::SlurpFormat {
    crate::mmstats::render::SlurpFormat::Ndjson => "ndjson": "NDJSON stat records, one per line",
    crate::mmstats::render::SlurpFormat::Text => "text": "Text in the layout of Python's slurpstats",
    crate::mmstats::render::SlurpFormat::Prom => "prom": "Prometheus text format, aggregated by label (node_exporter's textfile collector)",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_refuse_what_a_duration_cannot_hold() {
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(
            seconds("1e20"),
            Err("\"1e20\" is not between 0 and 86400 seconds".to_owned())
        );
        assert_eq!(
            seconds("inf"),
            Err("\"inf\" is not between 0 and 86400 seconds".to_owned())
        );
        assert_eq!(
            seconds("NaN"),
            Err("\"NaN\" is not between 0 and 86400 seconds".to_owned())
        );
        assert_eq!(
            seconds("-1"),
            Err("\"-1\" is not between 0 and 86400 seconds".to_owned())
        );
        assert_eq!(
            seconds("soon"),
            Err("\"soon\" is not a number of seconds".to_owned())
        );
    }
}

/// How nats-pub and nats-sub reach the servers (the flags of the nats CLI).
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// NATS server URLs, comma-separated (nats://HOST:PORT; tls://HOST:PORT for TLS).
    #[arg(
        short = 's',
        long = "server",
        value_name = "URL",
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub url: String,

    /// A credentials file (user JWT and NKey seed).
    #[arg(long, value_name = "FILE", env = "NATS_CREDS")]
    pub creds: Option<std::path::PathBuf>,

    /// User name (with --password).
    #[arg(long, value_name = "USER", env = "NATS_USER", requires = "password")]
    pub user: Option<String>,

    /// Password for --user.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "NATS_PASSWORD",
        requires = "user"
    )]
    pub password: Option<String>,

    /// An authentication token.
    #[arg(long, value_name = "TOKEN", env = "NATS_TOKEN")]
    pub token: Option<String>,

    /// CA certificates to trust (PEM).
    #[arg(long = "tlsca", value_name = "FILE")]
    pub tls_ca: Option<std::path::PathBuf>,

    /// A client certificate (PEM; with --tlskey).
    #[arg(long = "tlscert", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The client certificate's key (PEM).
    #[arg(long = "tlskey", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Require TLS, whatever the URL says.
    #[arg(long)]
    pub tls: bool,

    /// Keep trying this long when no server answers (or confirms) before giving up.
    #[arg(long, value_name = "SPAN", default_value = "5min", value_parser = humantime::parse_duration)]
    pub retry_for: Duration,
}

impl ServerArgs {
    /// The domain's server settings.
    pub fn server(&self) -> crate::nats::Server {
        crate::nats::Server {
            url: self.url.clone(),
            creds: self.creds.clone(),
            user: self.user.clone().zip(self.password.clone()),
            token: self.token.clone(),
            tls_ca: self.tls_ca.clone(),
            tls_cert: self.tls_cert.clone().zip(self.tls_key.clone()),
            tls_required: self.tls,
            retry_for: self.retry_for,
            name: program().to_owned(),
            stop: interrupted,
            warn,
        }
    }
}

/// The stream either end creates when it is missing (both with the same defaults).
#[derive(Debug, Clone, Args)]
pub struct StreamArgs {
    /// The stream; by default the subject's first token upper-cased (gridftp.host1 is
    /// kept in GRIDFTP, which takes gridftp and gridftp.>).
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,

    /// Messages older than this are dropped from a new stream.
    #[arg(long, value_name = "SPAN", default_value = "7days", value_parser = humantime::parse_duration)]
    pub max_age: Duration,

    /// A new stream's size limit in bytes; the oldest messages go first.
    #[arg(long, value_name = "BYTES", default_value_t = 10 << 30)]
    pub max_bytes: u64,

    /// How long a new stream remembers message ids to drop re-sends: a rerun after a
    /// crash must come within it.
    #[arg(long, value_name = "SPAN", default_value = "1h", value_parser = humantime::parse_duration)]
    pub duplicate_window: Duration,

    /// Copies of a new stream's messages in a cluster.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub replicas: u8,
}

impl StreamArgs {
    /// The domain's stream settings.
    pub fn spec(&self) -> crate::nats::StreamSpec {
        crate::nats::StreamSpec {
            name: self.stream.clone(),
            max_age: self.max_age,
            max_bytes: i64::try_from(self.max_bytes).unwrap_or(i64::MAX),
            duplicate_window: self.duplicate_window,
            replicas: usize::from(self.replicas),
        }
    }
}
