//! `line-stamp`: a line-producing worker's output as timestamped trace records. See
//! [`crate::trace::stamp`].

use clap::Parser;

use crate::cli::{self, OutputArgs};
use crate::ndjson::{BadLines, OnError};
use crate::trace::stamp::{stamp_stream, Parse, Stamper, Worker};

const EXAMPLES: &str = "\
Examples:
  # a SystemTap probe printing a count a second
  stap oslo-lock.stp | line-stamp --tracer oslolock --series lock --unit count

  # perf's counters every second, perf run by line-stamp (perf stat writes to stderr
  # unless told --log-fd 1)
  line-stamp --tracer perf --parse perf-stat -- perf stat -j -I 1000 --log-fd 1 -a

  # per-process CPU and memory from pidstat
  line-stamp --tracer pidstat --parse pidstat -- pidstat -h -u -r -p ALL 1

  # a log, line by line
  tail -F /var/log/mysql/query.log | line-stamp --tracer mysql --parse raw";

/// Turn each line a worker prints into a trace record stamped with the time it arrived.
///
/// The worker is either the command after `--`, run as a child in its own process group
/// (SIGINT and SIGTERM are passed on to it, and its output is read to its end before
/// line-stamp exits), or whatever writes to standard input. Records stream: they are
/// flushed whenever no more input is waiting.
///
/// A line that does not parse is reported with its line number and skipped (or stops the
/// run, with --on-error fail); blank lines give nothing, except with --parse raw.
#[derive(Debug, Parser)]
#[command(name = "line-stamp", version, after_help = EXAMPLES)]
pub struct Args {
    /// The tracer name the records carry.
    #[arg(long, value_name = "NAME")]
    tracer: String,

    /// What a line is.
    #[arg(long, value_enum, default_value_t = Parse::Count)]
    parse: Parse,

    /// The series of the records (count, number, json and raw; perf-stat names each
    /// record by its event, pidstat by its column). Default: the tracer's name.
    #[arg(long, value_name = "NAME")]
    series: Option<String>,

    /// The unit of the records (count, number, json and raw). Default: count for count,
    /// line for raw, none otherwise.
    #[arg(long, value_name = "UNIT")]
    unit: Option<String>,

    /// The task every record names (a supervisor sets MEASPIPE_TASK for the tracers it starts).
    #[arg(
        long,
        env = "MEASPIPE_TASK",
        default_value = "adhoc",
        value_name = "TASK"
    )]
    task: String,

    /// What to do with a line that does not parse.
    #[arg(long, value_enum, default_value_t = OnError::Skip, value_name = "POLICY")]
    on_error: OnError,

    /// The longest line accepted, in bytes; a longer one is a bad line.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1..))]
    max_line: u64,

    /// The worker to run, after `--`; without one, standard input is read.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,

    #[command(flatten)]
    output: OutputArgs,
}

/// Runs `line-stamp`.
pub fn run(args: Args) -> Result<(), crate::Error> {
    let unit = args.unit.unwrap_or_else(|| {
        match args.parse {
            Parse::Count => "count",
            Parse::Raw => "line",
            _ => "",
        }
        .to_owned()
    });
    let tags = crate::trace::Tags {
        task: args.task,
        tracer: args.tracer.clone(),
    };
    let series = args.series.unwrap_or_else(|| args.tracer.clone());
    let mut stamper = Stamper::new(tags, args.parse, series, unit);
    let mut bad = BadLines::new(args.on_error).warn_each(cli::warn);
    let mut out = cli::stdout(&args.output);
    let max_line = usize::try_from(args.max_line).unwrap_or(usize::MAX);
    let outcome = if args.command.is_empty() {
        let mut input = std::io::BufReader::with_capacity(256 * 1024, std::io::stdin());
        let name = crate::ndjson::STDIN_NAME;
        stamp_stream(&mut stamper, &mut input, name, &mut out, max_line, &mut bad)
    } else {
        run_worker(&args.command, &mut stamper, &mut out, max_line, &mut bad)
    };
    bad.report(cli::warn);
    if stamper.not_counted > 0 {
        cli::notice(&format!(
            "{} perf counters were not counted",
            stamper.not_counted
        ));
    }
    outcome
}

/// Runs the worker, passes a signal on to its process group, stamps its output to the
/// end, and ends as the signal says (or as the worker did).
fn run_worker(
    command: &[String],
    stamper: &mut Stamper,
    out: &mut crate::ndjson::NdjsonWriter,
    max_line: usize,
    bad: &mut BadLines,
) -> Result<(), crate::Error> {
    cli::stop_on_signal();
    let (worker, output) = Worker::spawn(command)?;
    let group = worker.group();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let forward = std::thread::spawn(move || loop {
        if let Some(signal) = cli::interrupted() {
            group.signal(signal);
            return;
        }
        if finished
            .recv_timeout(std::time::Duration::from_millis(20))
            .is_ok()
        {
            return;
        }
    });
    let mut input = std::io::BufReader::with_capacity(256 * 1024, output);
    let name = &command[0];
    let stamped = stamp_stream(stamper, &mut input, name, out, max_line, bad);
    let _ = done.send(());
    let _ = forward.join();
    let ended = worker.wait(name);
    stamped?;
    match cli::interrupted() {
        Some(signal) => Err(crate::Error::Interrupted(signal)),
        None => ended,
    }
}
