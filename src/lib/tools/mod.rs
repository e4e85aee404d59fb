//! One module per binary: its clap `Args` and its `run` function.
//!
//! [`ALL`] lists every tool; the man-page and completion generator and the `--help` smoke
//! tests walk it, so adding a tool is adding one module, one `src/bin` file and one line
//! here.

use clap::CommandFactory;

pub mod amqp_publish;
pub mod amqp_tap;
pub mod bwctl_extract;
pub mod esmond_audit;
pub mod esmond_bulk_fetch;
pub mod esmond_endpoints;
pub mod esmond_get;
pub mod esmond_metadata;
pub mod esmond_post;
pub mod esmond_query;
pub mod esmond_serve;
pub mod gridftp_parse;
pub mod line_stamp;
pub mod mmstats_clean;
pub mod mmstats_poll;
pub mod mmstats_publish;
pub mod mmstats_serve;
pub mod mmstats_slurp;
pub mod nats_pub;
pub mod nats_sub;
pub mod netdev_trace;
pub mod notigen_emit;
pub mod port_trace;
pub mod proc_trace;
pub mod record_check;
pub mod trace_agent;
pub mod trace_report;

/// A binary of the package: its name and its clap command.
pub struct Tool {
    /// The binary's name (also its `src/bin/<name>.rs`).
    pub name: &'static str,
    /// Builds the clap command, for documentation and completions.
    pub command: fn() -> clap::Command,
}

/// Every binary of the package.
pub const ALL: &[Tool] = &[
    Tool {
        name: "amqp-publish",
        command: amqp_publish::Args::command,
    },
    Tool {
        name: "amqp-tap",
        command: amqp_tap::Args::command,
    },
    Tool {
        name: "bwctl-extract",
        command: bwctl_extract::Args::command,
    },
    Tool {
        name: "esmond-audit",
        command: esmond_audit::Args::command,
    },
    Tool {
        name: "esmond-bulk-fetch",
        command: esmond_bulk_fetch::Args::command,
    },
    Tool {
        name: "esmond-endpoints",
        command: esmond_endpoints::Args::command,
    },
    Tool {
        name: "esmond-get",
        command: esmond_get::Args::command,
    },
    Tool {
        name: "esmond-metadata",
        command: esmond_metadata::Args::command,
    },
    Tool {
        name: "esmond-post",
        command: esmond_post::Args::command,
    },
    Tool {
        name: "esmond-serve",
        command: esmond_serve::Args::command,
    },
    Tool {
        name: "gridftp-parse",
        command: gridftp_parse::Args::command,
    },
    Tool {
        name: "line-stamp",
        command: line_stamp::Args::command,
    },
    Tool {
        name: "mmstats-clean",
        command: mmstats_clean::Args::command,
    },
    Tool {
        name: "mmstats-poll",
        command: mmstats_poll::Args::command,
    },
    Tool {
        name: "mmstats-publish",
        command: mmstats_publish::Args::command,
    },
    Tool {
        name: "mmstats-serve",
        command: mmstats_serve::Args::command,
    },
    Tool {
        name: "mmstats-slurp",
        command: mmstats_slurp::Args::command,
    },
    Tool {
        name: "nats-pub",
        command: nats_pub::Args::command,
    },
    Tool {
        name: "nats-sub",
        command: nats_sub::Args::command,
    },
    Tool {
        name: "netdev-trace",
        command: netdev_trace::Args::command,
    },
    Tool {
        name: "notigen-emit",
        command: notigen_emit::Args::command,
    },
    Tool {
        name: "port-trace",
        command: port_trace::Args::command,
    },
    Tool {
        name: "proc-trace",
        command: proc_trace::Args::command,
    },
    Tool {
        name: "record-check",
        command: record_check::Args::command,
    },
    Tool {
        name: "trace-agent",
        command: trace_agent::Args::command,
    },
    Tool {
        name: "trace-report",
        command: trace_report::Args::command,
    },
];
