//! `bwctl-extract`: bwctl transcripts and iperf3 JSON → one measurement record per test;
//! the reading half of `bwctl … |& esmond-ps-pipe`.

use std::net::{ToSocketAddrs, UdpSocket};

use clap::Parser;

use crate::cli::{self, InputArgs, OutputArgs};
use crate::error::Error;
use crate::iperf3::input::{Splitter, Test};
use crate::iperf3::measurement::{self, Context};
use crate::iperf3::report::Report;

const EXAMPLES: &str = "\
Examples:
  # what esmond-ps-pipe did, as records
  bwctl -c receiver.example.net -T iperf3 -t 10 --parsable --verbose |& bwctl-extract

  # a local iperf3 run, named for the archive
  iperf3 -c 10.0.0.2 -J | bwctl-extract --input-source here.example.net --input-destination there.example.net

  # a night of runs appended to one file: one record per test
  bwctl-extract runs.json > runs.ndjson";

/// Turn bwctl transcripts and iperf3 -J output into measurement records.
///
/// Reads bwctl --parsable --verbose transcripts (stdout and stderr merged) and plain iperf3
/// JSON documents, any number back to back, and writes one measurement per test with the
/// event types esmond-ps-pipe posted: throughput and its subintervals, packet-retransmits
/// (TCP) or packet-count-lost/-sent and packet-loss-rate (UDP), and the streams-* types for
/// several streams. A failed test becomes a failures value. No names are looked up unless
/// --resolve-agent is given.
#[derive(Debug, Parser)]
#[command(name = "bwctl-extract", version, after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    input: InputArgs,

    /// The sender's name for input-source (default: bwctl's sender address, else the
    /// source address from the JSON).
    #[arg(long, value_name = "NAME")]
    input_source: Option<String>,

    /// The receiver's name for input-destination (default: bwctl's receiver address, else
    /// the destination address from the JSON).
    #[arg(long, value_name = "NAME")]
    input_destination: Option<String>,

    /// The measurement-agent address (default: the iperf3 client's own address).
    #[arg(long, value_name = "ADDR", conflicts_with = "resolve_agent")]
    measurement_agent: Option<String>,

    /// Find the measurement agent as esmond-ps-pipe did: the local address this host uses
    /// to reach the destination (a routing lookup, and a DNS lookup for a name).
    #[arg(long)]
    resolve_agent: bool,

    /// Write streams-*-subintervals as the original did: interval-major lists keyed
    /// retransmits/throughput instead of stream-major lists keyed val.
    #[arg(long)]
    legacy_shapes: bool,

    #[command(flatten)]
    output: OutputArgs,
}

/// Runs `bwctl-extract`.
pub fn run(args: Args) -> Result<(), Error> {
    let mut reader = args.input.reader();
    let mut bad = args.input.bad_lines();
    let mut out = cli::stdout(&args.output);
    let mut splitter = Splitter::default();
    let mut tests = Vec::new();
    let mut file: Option<std::sync::Arc<str>> = None;
    let mut found = 0u64;
    let mut record = Vec::with_capacity(16 * 1024);
    loop {
        let line = reader.next(&mut bad)?;
        let next_file = line.as_ref().map(|l| l.location.file.clone());
        if file.is_some() && next_file != file {
            // Framing left open (a transcript cut short) is one bad test, under --on-error.
            if let Err(cause) = splitter.finish(file.as_deref().unwrap_or("<stdin>")) {
                bad.handle(Error::Failed(cause))?;
            }
        }
        let Some(line) = line else { break };
        file = next_file;
        if let Err(cause) = splitter.line(line.bytes, &line.location, &mut tests) {
            bad.handle(Error::bad_input(line.location.clone(), cause))?;
        }
        for test in tests.drain(..) {
            found += 1;
            record.clear();
            match measure(&mut record, &test, &args) {
                Ok(()) => out.write_line(&record)?,
                Err(cause) => bad.handle(Error::bad_input(test.location, cause))?,
            }
        }
    }
    bad.report(cli::warn);
    if found == 0 {
        let input = args.input.files.join(", ");
        let input = if input.is_empty() {
            "<stdin>".to_owned()
        } else {
            input
        };
        return Err(Error::failed(format!(
            "{input}: no iperf3 JSON and no bwctl results (was bwctl run with --parsable --verbose?)"
        )));
    }
    Ok(())
}

/// One test → its record, appended to `out`.
fn measure(out: &mut Vec<u8>, test: &Test, args: &Args) -> Result<(), String> {
    let report: Report =
        serde_json::from_str(&test.json).map_err(|e| format!("invalid iperf3 JSON: {e}"))?;
    let (tool_name, sender, receiver, started) = match &test.bwctl {
        Some(bwctl) => {
            match bwctl.tool.as_deref() {
                Some("iperf3") => {}
                Some(tool) => {
                    return Err(format!("bwctl ran {tool}; only iperf3 results can be read"))
                }
                None => return Err("no \"bwctl: Using tool:\" line before these results".into()),
            }
            (
                "bwctl/iperf3",
                bwctl.sender.as_deref(),
                bwctl.receiver.as_deref(),
                bwctl.started,
            )
        }
        None => ("iperf3", None, None, None),
    };
    let input_source = args.input_source.as_deref().or(sender);
    let input_destination = args.input_destination.as_deref().or(receiver);
    let resolved;
    let measurement_agent = if args.resolve_agent {
        let target = input_destination
            .map(str::to_owned)
            .or_else(|| {
                report
                    .start
                    .connected
                    .first()
                    .map(|c| c.remote_host.clone())
            })
            .ok_or("no destination to resolve the measurement agent against")?;
        resolved = local_address_towards(&target)?;
        Some(resolved.as_str())
    } else {
        args.measurement_agent.as_deref()
    };
    let context = Context {
        tool_name,
        input_source,
        input_destination,
        measurement_agent,
        legacy_shapes: args.legacy_shapes,
        fallback_ts: started.unwrap_or_else(crate::clock::now_seconds),
    };
    measurement::write(out, &report, &context)
}

/// The local address the kernel would use to reach `host` (no packet is sent).
fn local_address_towards(host: &str) -> Result<String, String> {
    let target = (host, 80)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {host}"))?;
    let bind = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    socket
        .connect(target)
        .and_then(|()| socket.local_addr())
        .map(|a| a.ip().to_string())
        .map_err(|e| format!("no route to {host}: {e}"))
}
