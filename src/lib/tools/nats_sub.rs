//! `nats-sub`: messages from NATS JetStream → NDJSON, acknowledged once written.

use std::io::Write;
use std::time::Duration;

use clap::Parser;

use crate::cli::{self, ServerArgs, StreamArgs};
use crate::error::Error;
use crate::nats::{self, SubscribeSettings};

const EXAMPLES: &str = "\
Examples:
  # every host's transfers into the archive: a message is acknowledged once the archive
  # has it, and the durable consumer goes on from there
  nats-sub --durable archive --ack /var/lib/measpipe/post.ack 'gridftp.>' \\
    | esmond-post --ack /var/lib/measpipe/post.ack

  # what is in the stream now, then stop
  nats-sub --idle 2s 'gridftp.>' > backlog.ndjson";

/// Write the messages of a NATS JetStream subject as NDJSON, one per line.
///
/// Reads SUBJECT (wildcards allowed) from its stream (created when missing, as nats-pub
/// creates it) through a pull consumer: with --durable NAME the server remembers what was
/// acknowledged and a rerun goes on from there; without it every run starts at the
/// stream's first message (--new: at messages published from now on). Messages are
/// written in stream order and acknowledged a batch at a time, only after the output has
/// been flushed: a message is never lost between the stream and the next filter. With
/// --ack (the sink's own ack file), a message waits further, until the sink says it
/// delivered the record: nothing is lost in the sink either. After a crash what was not
/// acknowledged comes again, so a record may be written twice; sinks that take a record
/// twice as once (esmond-post into the archive) store each exactly once. Runs until
/// SIGINT/SIGTERM, --count records, or --idle without any. A message nats-pub --pack made
/// holds several records, one per line: each is written as a line.
#[derive(Debug, Parser)]
#[command(name = "nats-sub", version, after_help = EXAMPLES)]
pub struct Args {
    /// The subject to read (e.g. gridftp.> for every host's).
    #[arg(value_name = "SUBJECT")]
    subject: String,

    #[command(flatten)]
    server: ServerArgs,

    #[command(flatten)]
    stream: StreamArgs,

    /// A durable consumer: acknowledged messages are not delivered to it again.
    #[arg(long, value_name = "NAME")]
    durable: Option<String>,

    /// Start a new consumer at messages published from now on.
    #[arg(long)]
    new: bool,

    /// Messages written before their output is flushed and they are acknowledged.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    batch: u64,

    /// How long the server waits for a batch's acknowledgement before delivering it again
    /// (after a crash, the unacknowledged batch comes again after this).
    #[arg(long, value_name = "SPAN", default_value = "30s", value_parser = humantime::parse_duration)]
    ack_wait: Duration,

    /// Stop (exit 0) when no message came for this long.
    #[arg(long, value_name = "SPAN", value_parser = humantime::parse_duration)]
    idle: Option<Duration>,

    /// Stop (exit 0) after writing this many records (the message that reaches N is
    /// written whole).
    #[arg(long, value_name = "N")]
    count: Option<u64>,

    /// The sink's ack file (esmond-post --ack FILE): each record gets a cursor of this
    /// run's, and its message is acknowledged only when the sink has written that cursor
    /// (or a later one) there. A record in the pipe when the sink fails comes again.
    /// Lines that are not JSON objects cannot carry a cursor: they are acknowledged once
    /// written. At the end the output is closed and the sink's last acknowledgement is
    /// waited for, up to --ack-wait.
    #[arg(long, value_name = "FILE")]
    ack: Option<std::path::PathBuf>,

    /// No status line on a terminal.
    #[arg(short, long)]
    quiet: bool,
}

/// Runs `nats-sub`.
pub fn run(args: Args) -> Result<(), Error> {
    if args.subject.is_empty() || args.subject.contains(' ') {
        return Err(Error::Usage(format!("{:?} is not a subject", args.subject)));
    }
    if args
        .durable
        .as_deref()
        .is_some_and(|d| d.is_empty() || d.contains(['.', '*', '>', ' ']))
    {
        return Err(Error::Usage(
            "--durable must be a name without dots, wildcards or spaces".into(),
        ));
    }
    cli::stop_on_signal();
    let settings = SubscribeSettings {
        server: args.server.server(),
        stream: args.stream.spec(),
        subject: args.subject.clone(),
        durable: args.durable.clone(),
        new_only: args.new,
        batch: usize::try_from(args.batch).unwrap_or(usize::MAX),
        ack_wait: args.ack_wait,
        idle: args.idle,
        count: args.count,
        ack: args.ack.clone(),
        close_output: cli::close_stdout,
        output_gone: cli::stdout_gone,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut status = cli::Status::new(args.quiet);
    let waits = args.ack.is_some();
    let result = nats::subscribe(settings, &mut out, &mut |counts| {
        status.update(|| match waits {
            true => format!(
                "{} written, {} waiting for the sink",
                counts.written, counts.waiting
            ),
            false => format!("{} written", counts.written),
        })
    });
    drop(status);
    match result {
        Err(err) if err.is_broken_pipe() => Ok(()),
        Err(err) => Err(err),
        Ok(_) => out
            .flush()
            .map_err(|e| Error::io("<stdout>", e))
            .or_else(|e| if e.is_broken_pipe() { Ok(()) } else { Err(e) }),
    }
}
