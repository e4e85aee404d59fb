//! `esmond-bulk-fetch`: everything in a window, to files or as records
//! (esmond-ps-get-bulk).

use std::path::PathBuf;

use clap::Parser;

use super::esmond_query::{Output, QueryArgs};
use crate::cli::{self, OutputArgs};
use crate::error::Error;
use crate::esmond::fetch::{self, Files, Outcome, Selection};
use crate::esmond::rows::Format;

const EXAMPLES: &str = "\
Examples:
  # a month of everything, one CSV file per test and event type, resumable
  esmond-bulk-fetch -u https://archive.example.net -S 2026-11-01 -E 2026-12-01 \\
    -o csv -D /srv/export --resume

  # copy a week of one archive into another
  esmond-bulk-fetch -u http://old:8080 -S -7d -o ndjson \\
    | esmond-post --url http://new:8080 --key \"$KEY\"";

/// Fetch every series of every matching metadata from an esmond archive, as
/// esmond-ps-get-bulk did, a page at a time (memory stays bounded whatever the archive's
/// size).
///
/// With -o csv or json, each metadata and event type goes to its own file in
/// --output-directory, SRC_DST_EVENT[_SUMMARY-WINDOW]_STARTDATE_ENDDATE_KEY.EXT (the
/// metadata key keeps two tests apart), written beside it and renamed when complete, so a
/// file that exists is finished: --resume skips those. With -o ndjson, measurement records
/// (one per metadata and time, every event type's value) go to stdout, for esmond-post.
/// A status line shows progress on a terminal; a summary goes to stderr at the end.
#[derive(Debug, Parser)]
#[command(name = "esmond-bulk-fetch", version, after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    query: QueryArgs,

    /// csv or json (files in --output-directory), or ndjson (records on stdout).
    #[arg(
        short = 'o',
        long,
        value_enum,
        value_name = "FORMAT",
        default_value = "csv"
    )]
    output_format: Output,

    /// Where the files go (it must exist).
    #[arg(short = 'D', long, value_name = "DIR", default_value = ".")]
    output_directory: PathBuf,

    /// Keep the files an earlier run finished; fetch only the others.
    #[arg(long)]
    resume: bool,

    /// Points asked for per request.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    page_size: u64,

    #[command(flatten)]
    output: OutputArgs,
}

/// Runs `esmond-bulk-fetch`.
pub fn run(args: Args) -> Result<(), Error> {
    if args.query.list_events()? {
        return Ok(());
    }
    let selection = Selection::new(
        args.query.filters()?,
        args.query.event_type.clone(),
        args.query.summary(),
        args.query.summary_window,
        args.page_size,
    );
    let archive = args.query.archive();
    let mut status = cli::Status::new(false);
    let format = match args.output_format {
        Output::Human => {
            return Err(Error::Usage(
                "-o human is not a bulk format: choose csv or json (files) or ndjson (records)"
                    .into(),
            ))
        }
        Output::Csv => Format::Csv,
        Output::Json => Format::Json,
        Output::Ndjson => {
            selection.check_records().map_err(Error::Usage)?;
            let mut lines = cli::stdout(&args.output);
            let (records, points) = fetch::write_records(
                &archive,
                &selection,
                |line| lines.write_line(line),
                |records, points| status.update(|| format!("{records} records, {points} points")),
            )?;
            drop(status);
            cli::notice(&format!("{records} records, {points} points"));
            return Ok(());
        }
    };
    if !args.output_directory.is_dir() {
        return Err(Error::Usage(format!(
            "--output-directory {}: not a directory",
            args.output_directory.display()
        )));
    }
    let files = Files {
        dir: args.output_directory.clone(),
        format,
        resume: args.resume,
    };
    let verbose = args.query.verbose;
    let progress = fetch::write_files(
        &archive,
        &selection,
        &files,
        &mut args.query.names(),
        |key, event, outcome, progress| {
            if verbose {
                match outcome {
                    Outcome::Written(path, points) => {
                        cli::notice(&format!("wrote {} ({points} points)", path.display()))
                    }
                    Outcome::Kept(path) => {
                        cli::notice(&format!("kept {} (--resume)", path.display()))
                    }
                    Outcome::Empty => cli::notice(&format!("{key} {event}: no data in the window")),
                }
            }
            status.update(|| {
                let total = progress.total.map_or_else(String::new, |t| format!("/{t}"));
                format!(
                    "metadata {}{total}, {} points, {} files written, {} kept",
                    progress.metadata, progress.points, progress.written, progress.kept
                )
            });
        },
    )?;
    drop(status);
    cli::notice(&format!(
        "{} metadata: {} files written ({} points), {} kept from an earlier run",
        progress.metadata, progress.written, progress.points, progress.kept
    ));
    Ok(())
}
