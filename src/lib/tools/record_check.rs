//! `record-check`: validates NDJSON records against the contract between measpipe binaries
//! and passes the valid ones through unchanged.
//!
//! It is the pipeline's seat belt: put it between a producer and a sink to stop (or, with
//! `--on-error skip`, count) anything that is not a record of records.md, and to select
//! families with `--kind`. Valid lines are written byte for byte as they came.

use std::collections::BTreeMap;

use clap::Parser;

use crate::cli::{self, InputArgs, OutputArgs};
use crate::error::Error;
use crate::record::{self, Family};

const EXAMPLES: &str = "\
Examples:
  # stop at the first malformed record, naming its file and line
  cat day1.ndjson day2.ndjson | record-check > checked.ndjson

  # keep only the measurements of a mixed stream
  record-check --kind measurement mixed.ndjson

  # count what a file holds, skipping (and counting) anything broken
  record-check --on-error skip --summary --quiet records.ndjson";

/// Check NDJSON records against the measpipe record contract and pass valid ones through.
///
/// Each line must be one record of the four families (measurement, notification, stat,
/// trace) with every contract field present and well-typed. Valid lines are written to
/// stdout unchanged; the first invalid one stops the run with
/// `record-check: error: FILE:LINE: cause` and exit status 1, unless `--on-error skip`.
#[derive(Debug, Parser)]
#[command(name = "record-check", version, after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    input: InputArgs,

    #[command(flatten)]
    output: OutputArgs,

    /// Pass only records of these families (comma-separated or repeated); valid records
    /// of other families are dropped.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "FAMILY")]
    kind: Vec<Family>,

    /// Print how many valid records of each family were seen, on stderr at exit.
    #[arg(long)]
    summary: bool,

    /// Check only: write nothing to stdout.
    #[arg(short, long)]
    quiet: bool,
}

/// Runs `record-check`.
pub fn run(args: Args) -> Result<(), Error> {
    let mut reader = args.input.reader();
    let mut bad = args.input.bad_lines();
    let mut out = cli::stdout(&args.output);
    let mut seen: BTreeMap<Family, u64> = BTreeMap::new();
    while let Some(line) = reader.next(&mut bad)? {
        let family = match record::classify(line.bytes) {
            Ok(family) => family,
            Err(cause) => {
                bad.handle(Error::bad_input(line.location, cause))?;
                continue;
            }
        };
        *seen.entry(family).or_default() += 1;
        if !args.quiet && (args.kind.is_empty() || args.kind.contains(&family)) {
            out.write_line(line.bytes)?;
        }
    }
    bad.report(cli::warn);
    if args.summary {
        let counts: Vec<String> = [
            Family::Measurement,
            Family::Notification,
            Family::Stat,
            Family::Trace,
        ]
        .iter()
        .map(|f| format!("{} {}", f.name(), seen.get(f).copied().unwrap_or(0)))
        .collect();
        eprintln!(
            "{}: {}, bad {}",
            cli::program(),
            counts.join(", "),
            bad.skipped()
        );
    }
    Ok(())
}
