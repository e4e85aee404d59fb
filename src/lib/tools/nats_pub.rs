//! `nats-pub`: an NDJSON stream → NATS JetStream, one message per line, losing nothing.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args as ClapArgs, Parser, ValueEnum};

use crate::cli::{self, AckArgs, InputArgs};
use crate::error::Error;
use crate::nats::{self, MessageId, PublishSettings, Server, StreamSpec};

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

/// How nats-pub and nats-sub reach the servers (the flags of the nats CLI).
#[derive(Debug, Clone, ClapArgs)]
pub struct ServerArgs {
    /// NATS server URLs, comma-separated (nats://HOST:PORT; tls://HOST:PORT for TLS).
    #[arg(
        short = 's',
        long = "server",
        value_name = "URL",
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub url: String,

    /// A credentials file (user JWT and NKey seed).
    #[arg(long, value_name = "FILE", env = "NATS_CREDS")]
    pub creds: Option<PathBuf>,

    /// User name (with --password).
    #[arg(long, value_name = "USER", env = "NATS_USER", requires = "password")]
    pub user: Option<String>,

    /// Password for --user.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "NATS_PASSWORD",
        requires = "user"
    )]
    pub password: Option<String>,

    /// An authentication token.
    #[arg(long, value_name = "TOKEN", env = "NATS_TOKEN")]
    pub token: Option<String>,

    /// CA certificates to trust (PEM).
    #[arg(long = "tlsca", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,

    /// A client certificate (PEM; with --tlskey).
    #[arg(long = "tlscert", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The client certificate's key (PEM).
    #[arg(long = "tlskey", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Require TLS, whatever the URL says.
    #[arg(long)]
    pub tls: bool,

    /// Keep trying this long when no server answers (or confirms) before giving up.
    #[arg(long, value_name = "SPAN", default_value = "5min", value_parser = humantime::parse_duration)]
    pub retry_for: Duration,
}

impl ServerArgs {
    /// The domain's server settings.
    pub fn server(&self) -> Server {
        Server {
            url: self.url.clone(),
            creds: self.creds.clone(),
            user: self.user.clone().zip(self.password.clone()),
            token: self.token.clone(),
            tls_ca: self.tls_ca.clone(),
            tls_cert: self.tls_cert.clone().zip(self.tls_key.clone()),
            tls_required: self.tls,
            retry_for: self.retry_for,
            name: cli::program().to_owned(),
            stop: cli::interrupted,
            warn: cli::warn,
        }
    }
}

/// The stream either end creates when it is missing (both with the same defaults).
#[derive(Debug, Clone, ClapArgs)]
pub struct StreamArgs {
    /// The stream; by default the subject's first token upper-cased (gridftp.host1 is
    /// kept in GRIDFTP, which takes gridftp and gridftp.>).
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,

    /// Messages older than this are dropped from a new stream.
    #[arg(long, value_name = "SPAN", default_value = "7days", value_parser = humantime::parse_duration)]
    pub max_age: Duration,

    /// A new stream's size limit in bytes; the oldest messages go first.
    #[arg(long, value_name = "BYTES", default_value_t = 10 << 30)]
    pub max_bytes: u64,

    /// How long a new stream remembers message ids to drop re-sends: a rerun after a
    /// crash must come within it.
    #[arg(long, value_name = "SPAN", default_value = "1h", value_parser = humantime::parse_duration)]
    pub duplicate_window: Duration,

    /// Copies of a new stream's messages in a cluster.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub replicas: u8,
}

impl StreamArgs {
    /// The domain's stream settings.
    pub fn spec(&self) -> StreamSpec {
        StreamSpec {
            name: self.stream.clone(),
            max_age: self.max_age,
            max_bytes: i64::try_from(self.max_bytes).unwrap_or(i64::MAX),
            duplicate_window: self.duplicate_window,
            replicas: usize::from(self.replicas),
        }
    }
}

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
/// re-send. The stream is created when missing (see the stream options; nats-sub creates
/// the same one). At most --max-in-flight messages wait for the stream's confirm: a slow
/// or absent server holds the input back instead of filling memory. When a connection
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

    /// At most this many messages published and not yet confirmed.
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_in_flight: u64,

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
