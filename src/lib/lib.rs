//! measpipe: small, fast, composable Unix filters for operations and network-measurement
//! telemetry.
//!
//! Every binary reads and/or writes newline-delimited JSON (the record families of
//! [`record`]), so operators join them with shell pipes, cron jobs and logrotate hooks. The
//! binaries are thin: each one is a [`tools`] module (a clap `Args` struct and a `run`
//! function) wrapped by [`cli::main`], which owns the Unix manners shared by all of them:
//! exit codes, `prog: error: file:line: cause` messages, quiet exit on a closed pipe, and
//! flushing on SIGINT/SIGTERM. [`ndjson`] is the streaming reader and writer they share.

#[cfg(feature = "tools")]
pub mod cli;
pub mod clock;
#[cfg(feature = "tools")]
pub mod docs;
pub mod error;
pub mod esmond;
pub mod fields;
pub mod gridftp;
pub mod html;
#[cfg(feature = "http-server")]
pub mod http;
pub mod iperf3;
pub mod limits;
pub mod mmstats;
#[cfg(feature = "nats")]
pub mod nats;
pub mod ndjson;
pub mod notigen;
pub mod record;
pub mod state;
pub mod sync;
#[cfg(feature = "tools")]
pub mod tools;
#[cfg(feature = "tracers")]
pub mod trace;

pub use error::{Error, Location};
