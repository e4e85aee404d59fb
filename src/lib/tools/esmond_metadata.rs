//! `esmond-metadata`: the metadata of an esmond archive (esmond-ps-get-metadata).

use std::io;

use clap::Parser;
use serde_json::{Map, Value};

use super::esmond_query::{stdout_error, Output, QueryArgs};
use crate::cli::{self, OutputArgs};
use crate::error::Error;
use crate::esmond::fetch;
use crate::esmond::rows::{Cell, Format, Table, METADATA_COLUMNS};

const EXAMPLES: &str = "\
Examples:
  # the tests of the last day, their endpoints and tools
  esmond-metadata

  # every field of the TCP throughput tests to one host
  esmond-metadata -d 2001:db8::7 -e throughput -F ip-transport-protocol:tcp -M";

/// List the metadata of an esmond archive, as esmond-ps-get-metadata did: source,
/// destination, measurement agent, input source and destination and tool, or with -M every
/// field (free-form parameters too, sorted by name). Works with esmond 4.x and esmond-serve.
#[derive(Debug, Parser)]
#[command(name = "esmond-metadata", version, after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    query: QueryArgs,

    /// human, csv (not with -M), json, or ndjson (one JSON object per metadata).
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

/// Fields -M does not print (they are the archive's, not the measurement's).
const HIDDEN: [&str; 3] = ["event-types", "uri", "metadata-key"];

/// Runs `esmond-metadata`.
pub fn run(args: Args) -> Result<(), Error> {
    if args.query.list_events()? {
        return Ok(());
    }
    let extended = args.query.metadata_extended;
    if extended && args.output_format == Output::Csv {
        return Err(Error::Usage(
            "-o csv cannot be used with --metadata-extended (the metadata have different fields)"
                .into(),
        ));
    }
    let filters = args.query.filters()?;
    let archive = args.query.archive();
    let mut names = args.query.names();
    let mut table = args
        .output_format
        .table()
        .map(|format| Table::new(format, &METADATA_COLUMNS, io::stdout(), true));
    let mut lines = cli::stdout(&args.output);
    fetch::each_metadata(&archive, &filters, |metadata, _| {
        // The fixed columns first, then (with -M) every other field by name.
        let mut fields: Vec<(String, Value)> = METADATA_COLUMNS
            .iter()
            .map(|&column| {
                let value = metadata
                    .object
                    .get(&column.replace('_', "-"))
                    .cloned()
                    .unwrap_or(Value::Null);
                (column.to_owned(), value)
            })
            .collect();
        if extended {
            let mut rest: Vec<(String, Value)> = metadata
                .object
                .iter()
                .filter(|(k, _)| !HIDDEN.contains(&k.as_str()))
                .map(|(k, v)| (k.replace('-', "_"), v.clone()))
                .filter(|(k, _)| !METADATA_COLUMNS.contains(&k.as_str()))
                .collect();
            rest.sort_by(|a, b| a.0.cmp(&b.0));
            fields.extend(rest);
        }
        for (column, value) in &mut fields {
            if matches!(
                column.as_str(),
                "source" | "destination" | "measurement_agent"
            ) {
                if let Value::String(address) = value {
                    *address = names.name(address);
                }
            }
        }
        match &mut table {
            Some(table) => {
                if extended && table.format() == Format::Json {
                    // -M -o json: the keys sorted, as the originals' OrderedDict did.
                    fields.sort_by(|a, b| a.0.cmp(&b.0));
                }
                let row: Vec<(&str, Cell<'_>)> = fields
                    .iter()
                    .map(|(column, value)| {
                        let cell = match value {
                            Value::Null => Cell::Null,
                            Value::String(s) => Cell::Text(s),
                            other => Cell::Value(other),
                        };
                        (column.as_str(), cell)
                    })
                    .collect();
                table.row(&row).map_err(stdout_error)
            }
            None => lines.write_record(&Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        }
    })?;
    if let Some(table) = table {
        table.finish().map_err(stdout_error)?;
    }
    Ok(())
}
