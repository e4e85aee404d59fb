//! The run wrapper every binary uses, and the argument groups they share.
//!
//! [`main`] turns a tool's `run` function into a well-mannered Unix program:
//!
//! * exit 0 on success, 1 on a runtime failure or bad input, 2 on a usage error (clap's
//!   own code, and [`Error::Usage`]);
//! * errors print as `prog: error: <cause>` where an input error's cause starts with
//!   `<file>:<line>:`; warnings as `prog: warning: …`;
//! * a closed stdout (EPIPE, as under `| head -1`) anywhere in the error chain ends the
//!   program quietly with status 0 (Rust ignores SIGPIPE, so writes fail with EPIPE rather
//!   than killing the process; restoring SIG_DFL would exit 141 and break `set -o pipefail`);
//! * SIGINT and SIGTERM flush whatever [`stdout`] has buffered, never splitting a record,
//!   and exit 130 / 143;
//! * 75 (EX_TEMPFAIL) when another run holds a state lock ([`Error::Locked`]), so cron
//!   overlap is visible.
//!
//! The signal design: a dedicated thread waits for the signal and then takes the stdout
//! lock that every record write holds, so it flushes between two records; the main thread
//! never needs to poll a flag, which matters for a filter blocked reading a quiet pipe.
//! Stateful tools call [`stop_on_signal`] instead: the thread then only records the signal,
//! the tool polls [`interrupted`] between records, saves its state and returns
//! [`Error::Interrupted`] (a second signal still ends the program at once).

use std::io::{self, IsTerminal, Write};
use std::process;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use clap::{Args, Parser, ValueEnum};

use crate::error::Error;
use crate::ndjson::NdjsonWriter;

/// Exit status for success.
pub const EXIT_SUCCESS: i32 = 0;
/// Exit status for a runtime failure or bad input records.
pub const EXIT_FAILURE: i32 = 1;
/// Exit status for a usage error (what clap uses).
pub const EXIT_USAGE: i32 = 2;
/// Exit status when another run holds the lock (EX_TEMPFAIL).
pub const EXIT_TEMPFAIL: i32 = 75;

/// Set by [`stop_on_signal`]: signals are recorded instead of ending the program.
static GRACEFUL: AtomicBool = AtomicBool::new(false);
/// The signal received in graceful mode, or 0.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// Size of the stdout buffer: large writes keep pipes fast.
const STDOUT_BUFFER: usize = 64 * 1024;

static PROGRAM: OnceLock<String> = OnceLock::new();
static STDOUT: OnceLock<Arc<Mutex<io::BufWriter<io::Stdout>>>> = OnceLock::new();

/// Runs a tool: parses `A` from the command line, calls `run`, flushes stdout and exits
/// with the status the module documentation describes. Never returns.
pub fn main<A: Parser>(run: fn(A) -> anyhow::Result<()>) -> ! {
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
    let flushed = flush_stdout().map_err(anyhow::Error::from);
    let outcome = outcome.and(flushed);
    process::exit(match outcome {
        Ok(()) => EXIT_SUCCESS,
        Err(err) if is_broken_pipe(&err) => EXIT_SUCCESS,
        Err(err) if matches!(err.downcast_ref(), Some(Error::Interrupted(_))) => exit_code(&err),
        Err(err) => {
            error(&format!("{err:#}"));
            exit_code(&err)
        }
    })
}

/// The running program's name, for messages.
pub fn program() -> &'static str {
    PROGRAM.get().map(String::as_str).unwrap_or("measpipe")
}

/// Prints `prog: warning: <message>` on stderr.
pub fn warn(message: &str) {
    let _ = writeln!(io::stderr().lock(), "{}: warning: {message}", program());
}

/// Prints `prog: error: <message>` on stderr.
pub fn error(message: &str) {
    let _ = writeln!(io::stderr().lock(), "{}: error: {message}", program());
}

fn exit_code(err: &anyhow::Error) -> i32 {
    match err.downcast_ref::<Error>() {
        Some(Error::Usage(_)) => EXIT_USAGE,
        Some(Error::Locked(_)) => EXIT_TEMPFAIL,
        Some(Error::Interrupted(signal)) => 128 + signal,
        _ => EXIT_FAILURE,
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .map(io::Error::kind)
            .or_else(|| cause.downcast_ref::<Error>().and_then(Error::io_kind))
            == Some(io::ErrorKind::BrokenPipe)
    })
}

/// Output options every record-writing tool accepts.
#[derive(Debug, Clone, Args)]
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

/// Locks a shared buffer even if a panicking thread poisoned it: the bytes are still there.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn flush_stdout() -> Result<(), Error> {
    match STDOUT.get() {
        Some(shared) => lock(shared)
            .flush()
            .map_err(|source| Error::io("<stdout>", source)),
        None => Ok(()),
    }
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
            let _ = flush_stdout();
            process::exit(128 + signal);
        }
    });
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

/// What to do with an input line that cannot be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnError {
    /// Stop at the first bad line with exit status 1.
    Fail,
    /// Skip bad lines, count them, and report the count on stderr at exit.
    Skip,
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
}
