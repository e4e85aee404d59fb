//! `mmstats-slurp`: every field of every stats file, as stat records or as `slurpstats`
//! text.
//!
//! It reads both formats (Python mmstats' format 1 and the native one). A file that cannot
//! be read is reported, `mmstats-slurp: error: FILE: offset N: cause`, and the others are
//! still read; the exit status is then 1.

use clap::Parser;

use crate::cli::{self, OutputArgs};
use crate::mmstats::render::{self, Layout, StatRecord};

const EXAMPLES: &str = "\
Examples:
  # every field of every file in $MMSTATS_PATH (or the temp dir), one record per line
  mmstats-slurp

  # the Python slurpstats layout, for eyes
  mmstats-slurp --format text /run/web/*.mmstats

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

    /// Output layout.
    #[arg(long, value_enum, default_value_t = Layout::Ndjson)]
    format: Layout,

    #[command(flatten)]
    output: OutputArgs,
}

/// Runs `mmstats-slurp`.
pub fn run(args: Args) -> Result<(), crate::Error> {
    let paths = args.files.resolve(true)?;
    let mut out = cli::stdout(&args.output);
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
            Layout::Ndjson => {
                let ts = crate::clock::now_epoch();
                for field in &stats.fields {
                    out.write_record(&StatRecord {
                        file: &name,
                        stats: &stats,
                        field,
                        ts,
                    })?;
                }
            }
            Layout::Text => {
                for line in render::slurpstats_lines(&name, &stats) {
                    out.write_line(line.as_bytes())?;
                }
            }
        }
    }
    if failed > 0 {
        return Err(crate::Error::failed(format!(
            "{failed} of {} stats files could not be read",
            paths.len()
        )));
    }
    Ok(())
}
