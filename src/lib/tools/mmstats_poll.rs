//! `mmstats-poll`: vmstat for stats files. Every tick it re-expands the file patterns (so
//! processes that start later appear), reads the named fields and prints, per field, the
//! sum over all files of how much the field changed since the previous tick.
//!
//! Unlike Python's `pollstats` it never crashes on a file that lacks a field (the file
//! counts zero for it), matches labels exactly instead of by prefix, reads files whose
//! fields end exactly at end of file, and takes fractional delays.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Map, Value as Json};

use crate::cli::{self, OutputArgs};
use crate::mmstats::render::Layout;
use crate::mmstats::{self, Number, ReadError};
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

/// The value a field contributes: integers stay exact.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Amount {
    Int(i128),
    Float(f64),
}

impl Amount {
    fn of(number: Number) -> Amount {
        number
            .as_i128()
            .map_or(Amount::Float(number.as_f64()), Amount::Int)
    }

    fn plus(self, other: Amount) -> Amount {
        match (self, other) {
            (Amount::Int(a), Amount::Int(b)) => Amount::Int(a.saturating_add(b)),
            (a, b) => Amount::Float(a.as_f64() + b.as_f64()),
        }
    }

    fn minus(self, other: Amount) -> Amount {
        match (self, other) {
            (Amount::Int(a), Amount::Int(b)) => Amount::Int(a.saturating_sub(b)),
            (a, b) => Amount::Float(a.as_f64() - b.as_f64()),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Amount::Int(v) => v as f64,
            Amount::Float(v) => v,
        }
    }

    fn text(self) -> String {
        match self {
            Amount::Int(v) => v.to_string(),
            Amount::Float(v) => format!("{v:.3}"),
        }
    }

    fn json(self) -> Json {
        match self {
            Amount::Int(v) => i64::try_from(v)
                .map(Json::from)
                .or_else(|_| u64::try_from(v).map(Json::from))
                .unwrap_or_else(|_| Json::from(v as f64)),
            Amount::Float(v) => serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number),
        }
    }
}

/// One tick's reading.
struct Tick {
    deltas: Vec<Amount>,
    totals: Vec<Amount>,
    files: usize,
}

/// Follows the fields across ticks.
struct Poller {
    labels: Vec<String>,
    previous: HashMap<PathBuf, Vec<Option<Amount>>>,
    warned: HashMap<PathBuf, String>,
}

impl Poller {
    fn tick(&mut self, files: &cli::StatsFileArgs) -> Result<Tick, crate::Error> {
        let paths = files.resolve(false)?;
        let zero = Amount::Int(0);
        let mut tick = Tick {
            deltas: vec![zero; self.labels.len()],
            totals: vec![zero; self.labels.len()],
            files: 0,
        };
        let mut current = HashMap::with_capacity(paths.len());
        for path in paths {
            let stats = match mmstats::read(&path) {
                Ok(stats) => stats,
                // The writer exited between the glob and the read: not worth a word.
                Err(ReadError::Io(err)) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => {
                    let message = err.to_string();
                    if self.warned.get(&path) != Some(&message) {
                        cli::warn(&format!("{}: {message}", path.display()));
                        self.warned.insert(path, message);
                    }
                    continue;
                }
            };
            let values: Vec<Option<Amount>> = self
                .labels
                .iter()
                .map(|label| {
                    let field = stats.field(label)?;
                    field.value.number().map(Amount::of)
                })
                .collect();
            if values.iter().all(Option::is_none) {
                continue;
            }
            tick.files += 1;
            let before = self.previous.get(&path);
            for (i, value) in values.iter().enumerate() {
                let Some(value) = *value else { continue };
                let old = before.and_then(|b| b[i]).unwrap_or(zero);
                tick.deltas[i] = tick.deltas[i].plus(value.minus(old));
                tick.totals[i] = tick.totals[i].plus(value);
            }
            current.insert(path, values);
        }
        self.previous = current;
        Ok(tick)
    }
}

/// Python's `str.center`: the extra space goes right unless the width is odd.
fn center(name: &str, width: usize) -> String {
    let name: String = name.chars().take(width).collect();
    let margin = width - name.chars().count();
    let left = margin / 2 + (margin & width & 1);
    format!("{}{name}{}", " ".repeat(left), " ".repeat(margin - left))
}

/// Runs `mmstats-poll`.
pub fn run(args: Args) -> Result<(), crate::Error> {
    let mut out = cli::stdout(&OutputArgs {
        line_buffered: true,
    });
    let mut poller = Poller {
        labels: args
            .fields
            .0
            .iter()
            .map(|f| format!("{}{f}", args.prefix))
            .collect(),
        previous: HashMap::new(),
        warned: HashMap::new(),
    };
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
        let tick = poller.tick(&args.files)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn center_matches_python() {
        for (name, width, left, right) in [
            ("ok", 20, 9, 9),
            ("bad", 20, 8, 9),
            ("abc", 21, 9, 9),
            ("ab", 21, 10, 9),
        ] {
            let want = format!("{}{name}{}", " ".repeat(left), " ".repeat(right));
            assert_eq!(center(name, width), want, "{name} in {width}");
        }
        assert_eq!(center(&"x".repeat(30), 20), "x".repeat(20));
    }
}
