//! `esmond-audit`: which of the runs and records that should be in an archive are there.

use std::time::Duration;

use clap::Parser;

use crate::cli::{self, InputArgs, OutputArgs};
use crate::error::Error;
use crate::esmond::audit::{self, Expected, Status};
use crate::esmond::client::{Http, Settings};

const EXAMPLES: &str = "\
Examples:
  # the runs a pScheduler host says it archived (run hrefs, one per line)
  esmond-audit --url https://archive.example.net runs.txt

  # every transfer of a GridFTP log (records as gridftp-parse writes them)
  gridftp-parse /var/log/gridftp-transfer.log | esmond-audit --key \"$KEY\"

  # everything, present or not, as NDJSON
  esmond-audit --all runs.txt records.ndjson";

/// Check that what should be in an esmond-serve archive is there.
///
/// Each input line names something expected: a pScheduler run href
/// (https://HOST/pscheduler/tasks/T/runs/R) or run UUID, a pScheduler result body as its
/// http archiver sends it, or a measurement record (records.md; e.g. gridftp-parse's
/// output, or esmond-post's --reject file). For each one missing (or holding another value
/// at its time) a line goes to stdout: {"line", "status": "missing" | "different",
/// "run" | "record", "detail"}, where the detail says why when the archive knows (a run it
/// refused: when and why; a run never received; a record's metadata or point not there).
/// --all writes the present ones too. A summary goes to stderr. Exits 1 when anything is
/// missing or different, 0 when everything is there.
///
/// Runs are looked up one request each on kept-alive connections; records are checked
/// --batch-size at a time (checking a record needs the same key as writing it).
#[derive(Debug, Parser)]
#[command(name = "esmond-audit", version, after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    input: InputArgs,

    #[command(flatten)]
    output: OutputArgs,

    /// The archive: scheme://host[:port] (the default is where esmond-serve listens).
    #[arg(
        short = 'U',
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,

    /// The path before perfsonar/archive (`esmond` on perfSONAR hosts); `/` for none.
    #[arg(short = 's', long, value_name = "ALIAS", default_value = "esmond")]
    script_alias: String,

    /// API key (records are checked with it, as esmond-post writes them).
    #[arg(
        short = 'k',
        long,
        value_name = "KEY",
        env = "ESMOND_KEY",
        hide_env_values = true
    )]
    key: Option<String>,

    /// Seconds before a request is abandoned.
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = cli::seconds)]
    timeout: Duration,

    /// Do not check the archive's TLS certificate.
    #[arg(long)]
    insecure: bool,

    /// Write a line for every expected thing, present ones too.
    #[arg(long)]
    all: bool,

    /// Records checked per request.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    batch_size: u64,
}

/// Runs `esmond-audit`.
pub fn run(args: Args) -> Result<(), Error> {
    let mut reader = args.input.reader();
    let mut bad = args.input.bad_lines();
    let mut expected = Vec::new();
    let mut lines = Vec::new();
    while let Some(line) = reader.next(&mut bad)? {
        let text = String::from_utf8_lossy(line.bytes);
        if text.trim().is_empty() {
            continue;
        }
        match audit::expected(&text) {
            Ok(e) => {
                expected.push(e);
                lines.push(line.location.to_string());
            }
            Err(cause) => bad.handle(Error::bad_input(line.location, cause))?,
        }
    }
    let settings = Settings {
        url: args.url.clone(),
        script_alias: Some(args.script_alias.clone()),
        authorization: args.key.as_ref().map(|k| format!("Token {k}")),
        timeout: args.timeout.max(Duration::from_millis(1)),
        verify_tls: !args.insecure,
    };
    let mut http = Http::new(&settings);
    let findings = audit::audit(
        &mut http,
        &settings.root(),
        &expected,
        args.batch_size as usize,
    )
    .map_err(Error::failed)?;
    let mut out = cli::stdout(&args.output);
    let (mut present, mut missing, mut different) = (0u64, 0u64, 0u64);
    for ((finding, e), at) in findings.iter().zip(&expected).zip(&lines) {
        match finding.status {
            Status::Present => present += 1,
            Status::Missing => missing += 1,
            Status::Different => different += 1,
        }
        if finding.status == Status::Present && !args.all {
            continue;
        }
        let mut object = serde_json::json!({"line": at, "status": finding.status.name()});
        match e {
            Expected::Run(run) => object["run"] = run.clone().into(),
            Expected::Record(record) => {
                object["record"] = serde_json::from_str(record).unwrap_or_default()
            }
        }
        if let Some(key) = &finding.metadata_key {
            object["metadata-key"] = key.clone().into();
        }
        if let Some(detail) = &finding.detail {
            object["detail"] = detail.clone().into();
        }
        out.write_record(&object)?;
    }
    out.flush()?;
    bad.report(cli::warn);
    let summary = format!(
        "{} expected: {present} present, {missing} missing, {different} different",
        findings.len()
    );
    if missing + different > 0 {
        return Err(Error::failed(summary));
    }
    cli::notice(&summary);
    Ok(())
}
