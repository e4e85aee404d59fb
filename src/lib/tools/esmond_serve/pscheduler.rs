//! esmond-serve's options for pScheduler results (`/logstash`), under their own help heading.

use std::path::PathBuf;

use crate::error::Error;
use crate::esmond::pscheduler::{Fixes, Ingest, Options, Policy};

/// How pScheduler results sent to /logstash are archived.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "pScheduler results (/logstash)")]
pub(super) struct PschedulerArgs {
    /// Host names for the tests' hosts, in /etc/hosts form (ADDRESS NAME...), looked up
    /// before the system resolver. A result whose hosts resolve nowhere is refused (422).
    #[arg(long, value_name = "FILE")]
    hosts: Option<PathBuf>,

    /// The esmond archiver's measurement-agent option: this host (in the source's address
    /// family) instead of each result's lead participant.
    #[arg(long, value_name = "HOST")]
    measurement_agent: Option<String>,

    /// The esmond archiver's data-formatting-policy.
    #[arg(long, value_name = "POLICY", default_value = "prefer-mapped",
          value_parser = ["prefer-mapped", "mapped-and-raw", "mapped-only", "raw-only"])]
    data_policy: String,

    /// Store only what esmond stored: drop the event types the archiver sends without
    /// registering them (packet-rtt, tcp-windowsize, their stream and subinterval forms, and
    /// failures of unmapped test types). By default they are registered and kept.
    #[arg(long)]
    strict_esmond: bool,

    /// Keep zeros in the per-stream lists (the archiver drops them, misaligning the list
    /// with the streams).
    #[arg(long)]
    fix_streams: bool,

    /// Also map spec ip-tos to ip-tos and flow-label to ip-packet-flowlabel (the archiver
    /// looks for names the tests do not use). Changes the metadata of those tests.
    #[arg(long)]
    fix_spec_map: bool,

    /// UDP packet-count-lost and packet-loss-rate from the streams' losses (iperf3's summary
    /// says 0 for the sender side).
    #[arg(long)]
    udp_loss_from_streams: bool,

    /// Bytes of each result's diags kept with the run (the tool's whole output otherwise).
    #[arg(long, value_name = "BYTES", default_value_t = 4096)]
    keep_diags: usize,
}

impl PschedulerArgs {
    /// The ingest these options configure.
    pub(super) fn ingest(&self) -> Result<Ingest, Error> {
        let fixes = Fixes {
            streams: self.fix_streams,
            spec_map: self.fix_spec_map,
            udp_loss_from_streams: self.udp_loss_from_streams,
        };
        let policy = Policy::from_name(&self.data_policy).unwrap_or_default();
        let options = Options {
            measurement_agent: self.measurement_agent.clone(),
            policy,
            fixes,
        };
        Ingest::configured(
            self.hosts.as_deref(),
            options,
            self.strict_esmond,
            self.keep_diags,
        )
        .map_err(Error::Usage)
    }
}
