//! `mmstats-publish`: a tee for NDJSON streams that publishes live counts of what passes
//! into stats files, so mmstats-poll and mmstats-slurp can watch any pipeline. Every line
//! goes to standard output unchanged, bad ones included; the policy (which files, which
//! fields, how new values grow the keys file) is [`crate::mmstats::publish`].

use std::io::BufRead;
use std::path::PathBuf;

use clap::Parser;

use crate::cli::{self, OutputArgs};
use crate::mmstats::publish::{Plan, Publisher};

const EXAMPLES: &str = "\
Examples:
  # notifications per event type, per second, while the pipeline runs
  notigen-emit --realtime | mmstats-publish --count-by event_type -o /tmp/n.mmstats | record-check --kind notification
  mmstats-poll -p event_type. compute.instance.create.start,compute.instance.delete.end /tmp/n-keys.mmstats

  # a tracer's samples kept in a file, its latest value and records per series watched live
  proc-trace --match nginx | mmstats-publish --count-by series --gauge value -o /tmp/p.mmstats > trace.ndjson";

/// Pass NDJSON through unchanged, publishing live counts of it into stats files.
///
/// The fixed file (-o, default the writer's $MMSTATS_PATH/{CMD}-{PID}-{TID}.mmstats) holds
/// the counters lines and bad_lines (not a JSON object), a gauge per --gauge field (its
/// latest value) and a histogram per --histogram field. The keys file beside it (NAME-keys.mmstats)
/// holds a counter FIELD.VALUE per value of each --count-by field; it is made again, counts
/// carried over, when a new value appears. Only top-level fields are looked at. Both files
/// are removed when the input ends.
#[derive(Debug, Parser)]
#[command(name = "mmstats-publish", version, after_help = EXAMPLES)]
pub struct Args {
    /// Count the lines by the value of this top-level field (repeatable).
    #[arg(long, value_name = "FIELD")]
    count_by: Vec<String>,

    /// Publish this numeric field's latest value as a gauge (repeatable).
    #[arg(long, value_name = "FIELD")]
    gauge: Vec<String>,

    /// Record this numeric field's values in a histogram (rounded; negatives as 0).
    #[arg(long, value_name = "FIELD")]
    histogram: Vec<String>,

    /// Distinct values counted per --count-by field; later new ones count as FIELD.other.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    max_keys: usize,

    /// The fixed stats file (the keys file is FILE without .mmstats, plus -keys.mmstats).
    #[arg(short = 'o', long = "stats-file", value_name = "FILE")]
    stats_file: Option<PathBuf>,

    #[command(flatten)]
    output: OutputArgs,
}

/// Runs `mmstats-publish`.
pub fn run(args: Args) -> Result<(), crate::Error> {
    let path = match args.stats_file {
        Some(path) => path,
        None => crate::mmstats::files::writer_path(crate::mmstats::process::thread_id())
            .map_err(crate::Error::Usage)?,
    };
    let mut publisher = Publisher::new(Plan {
        count_by: args.count_by,
        gauges: args.gauge,
        histograms: args.histogram,
        max_keys: args.max_keys,
        path,
    })
    .map_err(|e| crate::Error::failed(e.to_string()))?;
    let failed = |e: crate::mmstats::writer::WriteError| crate::Error::failed(e.to_string());
    let mut out = cli::stdout(&args.output);
    let mut input = std::io::BufReader::with_capacity(256 * 1024, std::io::stdin().lock());
    let mut line = Vec::with_capacity(4096);
    loop {
        // Nothing more waiting: let the readers, then the next filter, see what came so
        // far (in that order, so a line seen downstream is already counted).
        if input.buffer().is_empty() {
            publisher.publish().map_err(failed)?;
            out.flush()?;
        }
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .map_err(|e| crate::Error::io("<stdin>", e))?;
        if read == 0 {
            break;
        }
        let content = crate::ndjson::trim_line_end(&line);
        publisher.line(content);
        out.write_line(content)?;
    }
    publisher.publish().map_err(failed)?;
    out.flush()
}
