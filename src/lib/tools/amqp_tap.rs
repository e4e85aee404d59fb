//! `amqp-tap`: messages from an AMQP 0-9-1 queue → NDJSON, acknowledged only once written.

use clap::Parser;

use crate::cli::{self, OutputArgs};
use crate::error::Error;
use crate::ndjson::{BadLines, OnError};
use crate::notigen::amqp::{self, TapSettings};
use crate::tools::amqp_publish::BrokerArgs;

const EXAMPLES: &str = "\
Examples:
  # every legacy notification, as Ceilometer would see it, checked against the contract
  amqp-tap --bind 'notifications.*' | record-check --kind notification

  # drain the queue amqp-publish (or Nova) fills, unwrapped to v1 dicts, and stop
  amqp-tap --queue versioned_notifications.info --unwrap --count 1000 > batch.ndjson";

/// Write messages from RabbitMQ (AMQP 0-9-1) as NDJSON, one per line.
///
/// Consumes --queue (declared if missing, bound with any --bind keys) or, with only --bind,
/// a private queue the broker names and deletes when the tap ends (it sees only what is
/// published while it runs). Each message body is written as one line (the v1 dict inside
/// a v2 envelope with --unwrap) and acknowledged only after the output has been flushed,
/// so a message is never lost between the broker and the next filter. A message whose
/// _unique_id was among the last 65,536 is acknowledged and dropped, as oslo's listeners
/// drop repeats. A body that is not a JSON object is reported and acknowledged. When the
/// connection fails, amqp-tap reconnects with backoff; unacknowledged messages come again.
#[derive(Debug, Parser)]
#[command(name = "amqp-tap", version, after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    broker: BrokerArgs,

    /// The queue to consume (e.g. notifications.info, the queue oslo's driver declares).
    #[arg(long, value_name = "NAME", required_unless_present = "bind")]
    queue: Option<String>,

    /// Bind the queue to the exchange with this binding key (a topic pattern:
    /// notifications.*, versioned_notifications.error, #); repeat for more.
    #[arg(long, value_name = "KEY")]
    bind: Vec<String>,

    /// Write the v1 dict inside each v2 envelope instead of the envelope.
    #[arg(long)]
    unwrap: bool,

    /// Stop after writing this many messages.
    #[arg(long, value_name = "N")]
    count: Option<u64>,

    /// Messages the broker may send ahead of the acknowledgements.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..))]
    prefetch: u16,

    /// No status line on a terminal.
    #[arg(short, long)]
    quiet: bool,

    #[command(flatten)]
    output: OutputArgs,
}

/// Runs `amqp-tap`.
pub fn run(args: Args) -> Result<(), Error> {
    if args.queue.as_deref().is_some_and(str::is_empty) {
        return Err(Error::Usage("--queue must not be empty".into()));
    }
    cli::stop_on_signal();
    let settings = TapSettings {
        broker: args.broker.broker(),
        queue: args.queue.clone(),
        bind: args.bind.clone(),
        unwrap: args.unwrap,
        count: args.count,
        prefetch: args.prefetch,
    };
    let mut out = cli::stdout(&args.output);
    let mut bad = BadLines::new(OnError::Skip).warn_each(cli::warn);
    let mut status = cli::Status::new(args.quiet);
    let result = amqp::tap(settings, &mut out, &mut bad, |counts| {
        status.update(|| {
            format!(
                "{} written, {} repeats dropped",
                counts.done, counts.repeated
            )
        })
    });
    drop(status);
    bad.report(cli::warn);
    match result {
        Err(err) if err.is_broken_pipe() => Ok(()),
        Err(err) => Err(err),
        Ok(counts) => {
            if counts.repeated > 0 || counts.reconnects > 0 {
                let mut note = format!(
                    "{} messages written; {} repeats dropped",
                    counts.done, counts.repeated
                );
                if counts.reconnects > 0 {
                    note.push_str(&format!("; {} connections lost", counts.reconnects));
                }
                cli::notice(&note);
            }
            out.flush()
        }
    }
}
