//! `mmstats-slurp`: every field of every stats file, as stat records or as `slurpstats`
//! text.
//!
//! It reads both formats (Python mmstats' format 1 and the native one). A file that cannot
//! be read is reported, `mmstats-slurp: error: FILE: offset N: cause`, and the others are
//! still read; the exit status is then 1.

use std::path::PathBuf;

use clap::Parser;

use crate::cli::{self, OutputArgs};
use crate::mmstats::prom::Exposition;
use crate::mmstats::render::{self, SlurpFormat, StatRecord};
use crate::ndjson::NdjsonWriter;

const EXAMPLES: &str = "\
Examples:
  # every field of every file in $MMSTATS_PATH (or the temp dir), one record per line
  mmstats-slurp

  # the Python slurpstats layout, for eyes
  mmstats-slurp --format text /run/web/*.mmstats

  # for node_exporter's textfile collector, every minute from cron
  mmstats-slurp --format prom -o /var/lib/prometheus/node-exporter/mmstats.prom '/run/web/*.mmstats'

  # the total of one counter over a process's per-thread files
  mmstats-slurp '/run/web/web-1234-*.mmstats' | jq -s 'map(select(.label==\"web.hits\").value) | add'";

/// Read memory-mapped stats files and print every field.
///
/// Each field becomes one stat record: {"kind":"stat","file","pid","label","type",
/// "value","ts","format"}. Averages and timers add count, sum, last and window (value is
/// the mean); histograms add count, sum, min, max, mean, p50, p90 and p99 (value is the
/// count). NaN and infinities are null plus a "value_str". A field that a writer kept
/// changing through every re-read carries "consistent":false.
#[derive(Debug, Parser)]
#[command(name = "mmstats-slurp", version, after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    files: cli::StatsFileArgs,

    /// Output layout. prom aggregates by label as Prometheus' multiprocess mode does:
    /// counters (as NAME_total), summaries and histograms summed over every file, those
    /// of exited writers included; gauges per live pid.
    #[arg(long, value_enum, default_value_t = SlurpFormat::Ndjson)]
    format: SlurpFormat,

    /// Prepended to every metric name with --format prom (e.g. `myapp_`).
    #[arg(long, value_name = "PREFIX", default_value = "")]
    metric_prefix: String,

    /// Write to FILE instead of standard output, replacing it atomically (mode 0644) once
    /// everything is read, so a collector never reads half a file.
    #[arg(short = 'o', long = "output-file", value_name = "FILE")]
    output_file: Option<PathBuf>,

    #[command(flatten)]
    output: OutputArgs,
}

/// Where the output goes: standard output as it is made, or a file replaced at the end.
enum Sink {
    Stdout(NdjsonWriter),
    File(PathBuf, Vec<u8>),
}

impl Sink {
    fn line(&mut self, line: &[u8]) -> Result<(), crate::Error> {
        match self {
            Sink::Stdout(out) => out.write_line(line),
            Sink::File(_, text) => {
                text.extend_from_slice(line);
                text.push(b'\n');
                Ok(())
            }
        }
    }

    fn record(&mut self, record: &StatRecord) -> Result<(), crate::Error> {
        match self {
            Sink::Stdout(out) => out.write_record(record),
            Sink::File(path, text) => {
                serde_json::to_writer(&mut *text, record)
                    .map_err(|e| crate::Error::io(path.display().to_string(), e.into()))?;
                text.push(b'\n');
                Ok(())
            }
        }
    }
}

/// Runs `mmstats-slurp`.
pub fn run(args: Args) -> Result<(), crate::Error> {
    let paths = args.files.resolve(true)?;
    let mut sink = match &args.output_file {
        Some(path) => Sink::File(path.clone(), Vec::new()),
        None => Sink::Stdout(cli::stdout(&args.output)),
    };
    let mut exposition = Exposition::new(&args.metric_prefix);
    let mut failed = 0usize;
    for path in &paths {
        let name = path.to_string_lossy();
        let stats = match crate::mmstats::read(path) {
            Ok(stats) => stats,
            Err(err) => {
                cli::error(&format!("{name}: {err}"));
                failed += 1;
                continue;
            }
        };
        match args.format {
            SlurpFormat::Ndjson => {
                let ts = crate::clock::now_epoch();
                for field in &stats.fields {
                    sink.record(&StatRecord {
                        file: &name,
                        stats: &stats,
                        field,
                        ts,
                    })?;
                }
            }
            SlurpFormat::Text => {
                for line in render::slurpstats_lines(&name, &stats) {
                    sink.line(line.as_bytes())?;
                }
            }
            SlurpFormat::Prom => exposition.add(&stats),
        }
    }
    if args.format == SlurpFormat::Prom {
        let mut text = String::new();
        exposition.render(&mut text, false);
        for line in text.lines() {
            sink.line(line.as_bytes())?;
        }
    }
    if let Sink::File(path, text) = &sink {
        crate::state::publish(path, text)?;
    }
    if failed > 0 {
        return Err(crate::Error::failed(format!(
            "{failed} of {} stats files could not be read",
            paths.len()
        )));
    }
    Ok(())
}
