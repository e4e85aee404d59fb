//! `netdev-trace`: network device rates as trace records. See [`crate::trace::netdev`].

use clap::Parser;

use crate::cli::{self, OutputArgs, TracerArgs};
use crate::trace::netdev::Sampler;

const EXAMPLES: &str = "\
Examples:
  # eth0 and the loopback, once a second
  netdev-trace --dev eth0 --dev lo

  # a bridge every 3 s (scalpels' traffic tracer), for a task
  MEASPIPE_TASK=storm-1 netdev-trace --dev br-ex -i 3";

/// Sample network devices from /proc/net/dev: receive and transmit rates per device.
///
/// Series, one record per device every interval with the field dev: rx_bytes and tx_bytes
/// (bytes/s), rx_packets and tx_packets (packets/s), rx_errors and tx_errors (errors/s),
/// rx_drops and tx_drops (drops/s). A rate needs two readings, so the first records come one
/// interval after the start. A device that does not exist is reported once, and traced
/// once it appears.
#[derive(Debug, Parser)]
#[command(name = "netdev-trace", version, after_help = EXAMPLES)]
pub struct Args {
    /// A network device to trace (repeatable).
    #[arg(long, value_name = "IF", required = true)]
    dev: Vec<String>,

    /// The tracer name the records carry.
    #[arg(long, default_value = "netdev", value_name = "NAME")]
    tracer: String,

    #[command(flatten)]
    sampling: TracerArgs,

    #[command(flatten)]
    output: OutputArgs,
}

/// Runs `netdev-trace`.
pub fn run(args: Args) -> Result<(), crate::Error> {
    let mut sampler = Sampler::new(args.sampling.tags(&args.tracer), args.dev);
    let mut out = cli::stdout(&args.output);
    let sampling = args.sampling.of_rates();
    sampling.each_tick(&mut out, |out, ts| sampler.tick(out, ts, cli::warn))
}
