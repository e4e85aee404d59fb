//! `esmond-get`: the data of one event type (esmond-ps-get).

use std::io;

use clap::Parser;

use super::esmond_query::{stdout_error, Output, QueryArgs};
use crate::cli::{self, OutputArgs};
use crate::error::Error;
use crate::esmond::fetch::{self, Selection};
use crate::esmond::rows::{Formatter, Table};

const EXAMPLES: &str = "\
Examples:
  # a day of throughput between two hosts
  esmond-get -s 10.1.1.1 -d 10.1.1.2 -e throughput

  # daily averages for April, as CSV
  esmond-get -s 10.1.1.1 -d 10.1.1.2 -e throughput -T average -W 86400 \\
    -S 2014-04-01 -E 2014-05-01 -o csv

  # one-way delay histograms' statistics over the last week
  esmond-get -s 10.1.1.1 -d 10.1.1.2 -e histogram-owdelay -T statistics -S -7d";

/// Print the data of one event type from an esmond archive, as esmond-ps-get did: a row
/// per point (per subinterval, stream or hop where the event type has them), for every
/// metadata matching the filters, in human, CSV or JSON form, or as measurement records
/// (-o ndjson) for esmond-post.
///
/// Data are read a page at a time between --start-time and --end-time. Unlike the
/// original, a series written again after --end-time is found (the metadata search is
/// bounded by the start only), --src and --dest are optional, and any event type the
/// archive has can be read.
#[derive(Debug, Parser)]
#[command(name = "esmond-get", version, after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    query: QueryArgs,

    /// human, csv, json, or ndjson (measurement records; base data only).
    #[arg(
        short = 'o',
        long,
        value_enum,
        value_name = "FORMAT",
        default_value = "human"
    )]
    output_format: Output,

    /// Points asked for per request.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    page_size: u64,

    #[command(flatten)]
    output: OutputArgs,
}

/// Runs `esmond-get`.
pub fn run(args: Args) -> Result<(), Error> {
    if args.query.list_events()? {
        return Ok(());
    }
    let Some(event_type) = args.query.event_type.clone() else {
        return Err(Error::Usage(
            "--event-type is required (-L lists esmond's event types)".into(),
        ));
    };
    let selection = Selection::new(
        args.query.filters()?,
        Some(event_type.clone()),
        args.query.summary(),
        args.query.summary_window,
        args.page_size,
    );
    if args.output_format == Output::Ndjson {
        selection.check_records().map_err(Error::Usage)?;
    }
    let archive = args.query.archive();
    match args.output_format.table() {
        Some(format) => {
            let columns = Formatter::of(&event_type, selection.summary).columns();
            let mut table = Table::new(format, &columns, io::stdout(), true);
            fetch::write_rows(&archive, &selection, &mut args.query.names(), &mut table)?;
            table.finish().map_err(stdout_error)?;
        }
        None => {
            let mut lines = cli::stdout(&args.output);
            fetch::write_records(
                &archive,
                &selection,
                |line| lines.write_line(line),
                |_, _| {},
            )?;
        }
    }
    Ok(())
}
