//! `port-trace`: inbound packets and bytes per second to TCP ports, through an nftables
//! counter it adds and removes. See [`crate::trace::port`].

use clap::Parser;

use crate::cli::{self, OutputArgs, TracerArgs};
use crate::trace::port::PortCounters;

const EXAMPLES: &str = "\
Examples:
  # RabbitMQ's AMQP port every 3 s (scalpels' rpc tracer); needs root
  sudo port-trace --port 5672 -i 3

  # two ports, ten samples
  sudo port-trace --port 80 --port 443 -c 10";

/// Count inbound TCP packets and bytes per second to local ports with nftables.
///
/// At its start port-trace adds a table of its own, inet measpipe_port_<PID>, whose
/// input-hook rules only count packets to each --port (no verdict: the traffic is not
/// otherwise touched), and at its end, after COUNT samples or on SIGINT/SIGTERM, removes it.
/// A table left by a port-trace killed with SIGKILL is removed by the next one. Needs root
/// (or CAP_NET_ADMIN) and the nft command (Debian: nftables).
///
/// Series, one record per port every interval with the field port: rx_packets (packets/s)
/// and rx_bytes (bytes/s). A rate needs two readings, so the first records come one
/// interval after the start.
#[derive(Debug, Parser)]
#[command(name = "port-trace", version, after_help = EXAMPLES)]
pub struct Args {
    /// A local TCP port to count inbound traffic to (repeatable).
    #[arg(long, value_name = "PORT", required = true)]
    port: Vec<u16>,

    /// The tracer name the records carry.
    #[arg(long, default_value = "port", value_name = "NAME")]
    tracer: String,

    #[command(flatten)]
    sampling: TracerArgs,

    #[command(flatten)]
    output: OutputArgs,
}

/// Runs `port-trace`.
pub fn run(args: Args) -> Result<(), crate::Error> {
    cli::stop_on_signal();
    let mut ports = args.port;
    ports.sort_unstable();
    ports.dedup();
    let mut counters = PortCounters::add(args.sampling.tags(&args.tracer), ports)?;
    let mut out = cli::stdout(&args.output);
    let sampling = args.sampling.of_rates();
    // The counters are removed when `counters` drops, whatever ends the loop.
    sampling.each_tick(&mut out, |out, ts| counters.tick(out, ts))
}
