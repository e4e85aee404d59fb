//! `esmond-endpoints`: who measured what (esmond-ps-get-endpoints).

use std::io;

use clap::Parser;

use super::esmond_query::{stdout_error, Output, QueryArgs};
use crate::cli::{self, OutputArgs};
use crate::error::Error;
use crate::esmond::fetch;
use crate::esmond::rows::{Cell, Table, ENDPOINT_COLUMNS};

const EXAMPLES: &str = "\
Examples:
  # every test the local archive holds from the last day
  esmond-endpoints

  # throughput tests of one host over a week, as CSV
  esmond-endpoints -u https://archive.example.net -s 198.51.100.7 -e throughput -S -7d -o csv";

/// List the endpoints of the measurements in an esmond archive: one row per metadata
/// (source, destination, measurement agent, tool and its event types), as
/// esmond-ps-get-endpoints did, for esmond 4.x or esmond-serve.
///
/// Only metadata written since --start-time are listed (the archive filters on each
/// event type's last update).
#[derive(Debug, Parser)]
#[command(name = "esmond-endpoints", version, after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    query: QueryArgs,

    /// human, csv, json, or ndjson (one JSON object per row).
    #[arg(
        short = 'o',
        long,
        value_enum,
        value_name = "FORMAT",
        default_value = "human"
    )]
    output_format: Output,

    #[command(flatten)]
    output: OutputArgs,
}

/// A field's cell (`None` when the metadata has no such field).
fn cell(value: &Option<String>) -> Cell<'_> {
    value.as_deref().map_or(Cell::Null, Cell::Text)
}

/// Runs `esmond-endpoints`.
pub fn run(args: Args) -> Result<(), Error> {
    if args.query.list_events()? {
        return Ok(());
    }
    let filters = args.query.filters()?;
    let archive = args.query.archive();
    let mut names = args.query.names();
    let mut table = args
        .output_format
        .table()
        .map(|format| Table::new(format, &ENDPOINT_COLUMNS, io::stdout(), true));
    let mut lines = cli::stdout(&args.output);
    fetch::each_metadata(&archive, &filters, |metadata, _| {
        let mut text = |key: &str| metadata.text(key).map(|v| names.name(&v));
        let (source, destination, agent) = (
            text("source"),
            text("destination"),
            text("measurement-agent"),
        );
        let tool = metadata.text("tool-name");
        let events: Vec<String> = metadata.event_types().into_iter().map(|e| e.name).collect();
        let row = [
            ("source", cell(&source)),
            ("destination", cell(&destination)),
            ("measurement_agent", cell(&agent)),
            ("tool_name", cell(&tool)),
            ("event_type", Cell::List(&events)),
        ];
        match &mut table {
            Some(table) => table.row(&row).map_err(stdout_error),
            None => lines.write_record(&serde_json::json!({
                "source": source, "destination": destination, "measurement_agent": agent,
                "tool_name": tool, "event_type": events,
            })),
        }
    })?;
    if let Some(table) = table {
        table.finish().map_err(stdout_error)?;
    }
    Ok(())
}
