//! `mmstats-poll`: vmstat for stats files. Every tick it re-expands the file patterns (so
//! processes that start later appear), reads the named fields and prints, per field, the
//! sum over all files of how much the field changed since the previous tick.
//!
//! Unlike Python's `pollstats` it never crashes on a file that lacks a field (the file
//! counts zero for it), matches labels exactly instead of by prefix, reads files whose
//! fields end exactly at end of file, and takes fractional delays.

use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Map, Value as Json};

use crate::cli::{self, OutputArgs};
use crate::mmstats::poll::{center, Amount, Filter, Poller, Tick};
use crate::mmstats::render::Layout;
use crate::ndjson::NdjsonWriter;

const EXAMPLES: &str = "\
Examples:
  # requests and errors per second over every worker's per-thread files
  mmstats-poll -p web.stats. status.2XX,status.5XX '/run/web/*.mmstats'

  # ten half-second samples as records, for a graph
  mmstats-poll -c 10 -d 0.5 --format ndjson hits,misses";

/// Print per-interval changes of stats fields, summed across files, like vmstat.
///
/// The first row is the fields' totals; each later row is how much each field grew (or
/// shrank) since the previous row, summed over every file that has it. Files are found
/// again at every tick. Text fields cannot be summed and count zero.
#[derive(Debug, Parser)]
#[command(name = "mmstats-poll", version, after_help = EXAMPLES)]
pub struct Args {
    /// Prepended to every field name (e.g. `web.stats.`); the header shows the names as
    /// given.
    #[arg(short, long, default_value = "")]
    prefix: String,

    /// Comma-separated field labels to follow.
    #[arg(value_name = "FIELDS", value_parser = parse_fields)]
    fields: FieldList,

    #[command(flatten)]
    files: cli::StatsFileArgs,

    /// Only files that match: KEY keeps files with a field whose label starts with KEY,
    /// KEY=VALUE files whose field KEY shows VALUE (as mmstats-slurp --format text prints
    /// it). Repeat to require several; unlike pollstats, each -f narrows the files.
    #[arg(short, long = "filter", value_name = "KEY[=VALUE]", value_parser = Filter::parse)]
    filter: Vec<Filter>,

    /// Print COUNT rows, then exit (default: until interrupted).
    #[arg(short, long, value_name = "COUNT")]
    count: Option<u64>,

    /// Seconds between rows; fractions allowed.
    #[arg(short, long, value_name = "SECONDS", default_value = "1", value_parser = parse_delay)]
    delay: f64,

    /// Repeat the header every N rows of text; 0 prints it once.
    #[arg(short = 'n', long, value_name = "N", default_value_t = 20)]
    headers: u64,

    /// Output layout: text rows under a header, or one object per tick,
    /// {"ts","interval_s","files","deltas":{..},"totals":{..}}. Each row is flushed at once.
    #[arg(long, value_enum, default_value_t = Layout::Text)]
    format: Layout,
}

/// The FIELDS argument, split at commas.
#[derive(Debug, Clone)]
struct FieldList(Vec<String>);

fn parse_fields(text: &str) -> Result<FieldList, String> {
    let fields: Vec<String> = text.split(',').map(str::to_owned).collect();
    if fields.iter().any(String::is_empty) {
        return Err(format!("{text:?} has an empty field name"));
    }
    Ok(FieldList(fields))
}

fn parse_delay(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 && seconds < 1e9 => Ok(seconds),
        _ => Err(format!("{text:?} is not a positive number of seconds")),
    }
}

/// Runs `mmstats-poll`.
pub fn run(args: Args) -> Result<(), crate::Error> {
    let mut out = cli::stdout(&OutputArgs {
        line_buffered: true,
    });
    let mut poller = Poller::new(
        args.fields
            .0
            .iter()
            .map(|f| format!("{}{f}", args.prefix))
            .collect(),
        args.filter.clone(),
    );
    let delay = Duration::from_secs_f64(args.delay);
    let started = Instant::now();
    let mut last = None::<Instant>;
    let mut row = 0u64;
    while args.count.is_none_or(|count| row < count) {
        if row > 0 {
            let due = started + delay.mul_f64(row as f64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let now = Instant::now();
        // Patterns are expanded again every tick; one that matches nothing is said once.
        let tick = poller.tick(args.files.resolve(row == 0)?, cli::warn);
        match args.format {
            Layout::Text => {
                let repeat = args.headers > 0 && row.is_multiple_of(args.headers);
                if row == 0 || repeat {
                    let header: Vec<String> = args.fields.0.iter().map(|f| center(f, 20)).collect();
                    out.write_line(header.join("|").as_bytes())?;
                }
                let cells: Vec<String> = tick
                    .deltas
                    .iter()
                    .map(|d| format!("{:>19} ", d.text()))
                    .collect();
                out.write_line(cells.join("|").as_bytes())?;
            }
            Layout::Ndjson => write_tick(&mut out, &args.fields.0, &tick, last.map(|l| now - l))?,
        }
        last = Some(now);
        row += 1;
    }
    Ok(())
}

fn write_tick(
    out: &mut NdjsonWriter,
    names: &[String],
    tick: &Tick,
    interval: Option<Duration>,
) -> Result<(), crate::Error> {
    let object = |amounts: &[Amount]| -> Map<String, Json> {
        names
            .iter()
            .cloned()
            .zip(amounts.iter().map(|a| a.json()))
            .collect()
    };
    let mut record = Map::new();
    record.insert("ts".into(), Json::from(crate::clock::now_epoch()));
    record.insert(
        "interval_s".into(),
        interval.map_or(Json::Null, |i| Json::from(i.as_secs_f64())),
    );
    record.insert("files".into(), Json::from(tick.files));
    record.insert("deltas".into(), Json::Object(object(&tick.deltas)));
    record.insert("totals".into(), Json::Object(object(&tick.totals)));
    out.write_record(&record)
}
