//! `trace-report`: statistics and charts of a task. See [`crate::trace::report`].

use std::io::Write;
use std::path::PathBuf;

use clap::Parser;

use crate::cli::TraceDirArgs;
use crate::trace::agent::store_path;
use crate::trace::report::{self, Format};
use crate::trace::store::Store;

const EXAMPLES: &str = "\
Examples:
  # the latest task
  trace-report

  # one task's proc tracer as CSV, by a prefix of its id
  trace-report 0193a7 --tracer proc --format csv

  # a page with a chart per series, to mail or attach to a bug
  trace-report --last --html storm.html";

/// Report a task's samples: per series (tracer, series, unit and the record's string and
/// integer fields, such as pid or dev) the count, min, mean, max and the 50th, 95th and
/// 99th percentiles (nearest rank). Series of non-numeric samples have a count only.
///
/// Reads the agent's store (DIR/traces.sqlite) directly, so it works while the agent runs
/// (a running task is reported as far as it has got) and when it does not.
#[derive(Debug, Parser)]
#[command(name = "trace-report", version, after_help = EXAMPLES)]
pub struct Args {
    /// A task id or an unambiguous prefix of one (default: the latest task).
    #[arg(value_name = "TASK", conflicts_with = "last")]
    task: Option<String>,

    /// The latest task (the default).
    #[arg(long)]
    last: bool,

    /// Only this tracer's series.
    #[arg(long, value_name = "NAME")]
    tracer: Option<String>,

    /// How to write the statistics on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,

    /// Also write a self-contained HTML page (no external scripts or fonts) with a chart
    /// per series to FILE (`-`: to stdout, instead of the statistics).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,

    #[command(flatten)]
    dir: TraceDirArgs,
}

/// Runs `trace-report`.
pub fn run(args: Args) -> Result<(), crate::Error> {
    let store = Store::open_read(&store_path(&args.dir.dir()))?;
    let id = store.resolve(args.task.as_deref())?;
    let task = store.task(&id)?;
    let summaries = report::summarize(&store, &id, args.tracer.as_deref())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if let Some(path) = &args.html {
        if path.as_os_str() == "-" {
            report::write_html(&mut out, &task, &summaries)
                .and_then(|()| out.flush())
                .map_err(|e| crate::Error::io("<stdout>", e))?;
            return Ok(());
        }
        let mut page = Vec::with_capacity(64 * 1024);
        report::write_html(&mut page, &task, &summaries)
            .map_err(|e| crate::Error::io(path.display().to_string(), e))?;
        crate::state::write_atomic(path, &page)?;
    }
    let written = match args.format {
        Format::Text => report::write_text(&mut out, &task, &summaries),
        Format::Json => report::write_json(&mut out, &summaries),
        Format::Csv => return report::write_csv(&mut out, &summaries),
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| crate::Error::io("<stdout>", e))
}
