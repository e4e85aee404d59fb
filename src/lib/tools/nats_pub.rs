//! `nats-pub`: an NDJSON stream → NATS JetStream, a message per line (or per --pack lines),
//! losing nothing.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::cli::{self, AckArgs, InputArgs, ServerArgs, StreamArgs};
use crate::error::Error;
use crate::nats::{self, MessageId, PublishSettings};

const EXAMPLES: &str = "\
Examples:
  # GridFTP transfers from this host into the site's JetStream, from cron: a rerun goes
  # on after the last transfer the stream confirmed, across log rotations, and a record
  # sent again is dropped by its message id
  gridftp-parse --ack /var/lib/measpipe/nats.ack /var/log/gridftp-transfer.log \\
      | nats-pub --ack-cursor /var/lib/measpipe/nats.ack \\
          -s nats://nats1.example.net:4222 \"gridftp.$(hostname -s)\"

  # any NDJSON file, sent again after a failure: --resume skips what was confirmed
  nats-pub --ack sent.ack --resume events records.ndjson

  # and on the archive host, into esmond-serve
  nats-sub --durable archive --ack /var/lib/measpipe/post.ack 'gridftp.>' \\
      | esmond-post --ack /var/lib/measpipe/post.ack";

/// How a message id is made from a record.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum IdFrom {
    /// A SHA-256 of the line: the same record sent again is dropped.
    Hash,
    /// The subject and the record's cursor (the hash when it has none).
    Cursor,
}

/// Publish an NDJSON stream to NATS JetStream, one message per line, losing nothing.
///
/// Each line (a JSON value; others are bad lines, see --on-error) is published on SUBJECT
/// with a Nats-Msg-Id made from the record, so the stream's duplicate window drops a
/// re-send (with --pack, several lines to a message, its id made from theirs). The stream
/// is created when missing (see the stream options; nats-sub creates the same one). At
/// most --max-in-flight messages (and 32 MiB) wait for the stream's confirm: a slow or
/// absent server holds the input back instead of filling memory. When a connection
/// fails, everything unconfirmed is sent again under the same ids; nats-pub gives up, with
/// exit status 1, only when no server answers for --retry-for. --ack FILE holds the number
/// of input records confirmed, rewritten atomically each second and at the end; with
/// --resume a rerun skips them, and what a killed run had sent but not seen confirmed is
/// dropped by the stream as a duplicate.
#[derive(Debug, Parser)]
#[command(name = "nats-pub", version, after_help = EXAMPLES)]
pub struct Args {
    /// The subject to publish on (e.g. gridftp.HOST).
    #[arg(value_name = "SUBJECT")]
    subject: String,

    #[command(flatten)]
    input: InputArgs,

    #[command(flatten)]
    server: ServerArgs,

    #[command(flatten)]
    stream: StreamArgs,

    /// What message ids are made from.
    #[arg(long, value_enum, default_value_t = IdFrom::Hash)]
    id_from: IdFrom,

    /// At most this many messages published and not yet confirmed (and at most 32 MiB of
    /// them).
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_in_flight: u64,

    /// Up to N records in one message, newline-separated (nats-sub writes them as lines;
    /// other consumers see N lines in a message). Several times the throughput, since the
    /// server's work is per message. A message is also cut before 256 KiB, and early when
    /// the input pauses for --linger or ends. A rerun sends what a killed run sent and did
    /// not count in the same messages, so that the stream drops them: it reads them from
    /// the subject, past the stream sequence kept in FILE.seq beside --ack or --ack-cursor
    /// FILE (hence one of them is needed). One publisher per subject, as gridftp.HOST.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pack: u64,

    /// With --pack: how long a message that is not full waits for more input.
    #[arg(long, value_name = "SPAN", default_value = "50ms", value_parser = humantime::parse_duration)]
    linger: Duration,

    #[command(flatten)]
    ack: AckArgs,

    /// Write the cursor of the last record the stream confirmed (every one before it
    /// confirmed too) to FILE, as esmond-post's --ack does, each second and at the end:
    /// the producer's --ack FILE goes on after it (gridftp-parse --ack FILE | nats-pub
    /// --ack-cursor FILE), across log rotations, which a count of records cannot follow.
    #[arg(long, value_name = "FILE")]
    ack_cursor: Option<PathBuf>,

    /// No status line on a terminal.
    #[arg(short, long)]
    quiet: bool,
}

/// Runs `nats-pub`.
pub fn run(args: Args) -> Result<(), Error> {
    if args.subject.is_empty() || args.subject.contains(['*', '>', ' ']) {
        return Err(Error::Usage(format!(
            "{:?} is not a subject to publish on (no wildcards or spaces)",
            args.subject
        )));
    }
    cli::stop_on_signal();
    let skip = args.ack.skip("a nats-pub ack file")?;
    let sequence = match (
        args.pack,
        args.ack.ack.as_ref().or(args.ack_cursor.as_ref()),
    ) {
        (1, _) => None,
        (_, Some(ack)) => Some(PathBuf::from(format!("{}.seq", ack.display()))),
        (_, None) => {
            return Err(Error::Usage(
                "--pack needs --ack or --ack-cursor: a rerun packs again what this run \
                 sent and did not count, and where that starts is kept beside that file"
                    .into(),
            ))
        }
    };
    let settings = PublishSettings {
        server: args.server.server(),
        stream: args.stream.spec(),
        subject: args.subject.clone(),
        id: match args.id_from {
            IdFrom::Hash => MessageId::Hash,
            IdFrom::Cursor => MessageId::Cursor,
        },
        max_in_flight: usize::try_from(args.max_in_flight).unwrap_or(usize::MAX),
        ack: args.ack.ack.clone(),
        ack_cursor: args.ack_cursor.clone(),
        skip,
        pack: usize::try_from(args.pack).unwrap_or(usize::MAX),
        linger: args.linger,
        sequence,
    };
    let bad = args.input.bad_lines().warn_each(cli::warn);
    let mut status = cli::Status::new(args.quiet);
    let result = nats::publish(settings, args.input.reader(), bad, |counts| {
        status.update(|| format!("{} confirmed, {} sent again", counts.done, counts.resent))
    });
    drop(status);
    let (counts, bad) = result?;
    bad.report(cli::warn);
    if counts.resent > 0 || counts.duplicates > 0 {
        cli::notice(&format!(
            "{}: {} messages confirmed; {} sent again, {} dropped by the stream as duplicates",
            args.server.url, counts.confirmed, counts.resent, counts.duplicates
        ));
    }
    Ok(())
}
