//! `esmond-post`: measurement records → an esmond archive, losing nothing.
//!
//! Metadata is created once per distinct metadata and its key remembered in a cache file
//! (so cron runs do not re-POST it); values go in bulk PUTs grouped by metadata. After each
//! batch has landed, `--ack FILE` gets the cursor of the last record in it, written
//! atomically: the producer (`gridftp-parse --ack FILE`) resumes after it. A real esmond's
//! PUT is not atomic and answers 409 for a duplicate: such a batch is split and its points
//! sent one by one, and duplicates count as delivered.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::cli::{self, InputArgs, OutputArgs};
use crate::error::Error;
use crate::esmond::client::{Http, Settings};
use crate::esmond::deliver;
use crate::esmond::sink::{self, DryRun, Retry, Sink, SinkError, Transport};
use crate::ndjson::OnError;

const EXAMPLES: &str = "\
Examples:
  # bwctl results into the local archive
  bwctl -c receiver.example.net -T iperf3 --parsable --verbose |& bwctl-extract \\
    | esmond-post --url http://127.0.0.1:8080 --key \"$KEY\"

  # GridFTP transfers from cron, losing nothing and repeating nothing (pipelines/gridftp.cron)
  flock -n -E 75 /var/lib/measpipe/gridftp.run.lock sh -c 'gridftp-parse \\
    --ack /var/lib/measpipe/gridftp.ack /var/log/gridftp-transfer.log \\
    | esmond-post --url https://archive.example.net --ack /var/lib/measpipe/gridftp.ack'

  # what would be sent
  esmond-post --dry-run --url http://archive records.ndjson";

/// Send measurement records to an esmond archive (esmond 4.x or esmond-serve).
///
/// Each distinct metadata is created once (get-or-create; keys are cached in --cache) and
/// values are sent in bulk PUTs of up to --batch-size points. Connection errors, 5xx and
/// 429 are retried with exponential backoff and jitter (or after the archive's
/// Retry-After); other 4xx are not. When the retries are spent the run exits 1
/// having acknowledged only what landed. On a terminal a status line shows the counts as
/// they go; a summary goes to stderr (or the log) at exit.
#[derive(Debug, Parser)]
#[command(name = "esmond-post", version, after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    input: InputArgs,

    /// The archive: scheme://host[:port] (the default is where esmond-serve listens).
    #[arg(
        short = 'U',
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,

    /// The path before perfsonar/archive (`esmond` on perfSONAR hosts); `/` for none.
    #[arg(short = 's', long, value_name = "ALIAS", default_value = "esmond")]
    script_alias: String,

    /// API key, sent as `Authorization: Token KEY` (or `ApiKey USER:KEY` with --user).
    #[arg(
        short = 'k',
        long,
        value_name = "KEY",
        env = "ESMOND_KEY",
        hide_env_values = true
    )]
    key: Option<String>,

    /// Use the legacy Tastypie `ApiKey USER:KEY` header.
    #[arg(short = 'u', long, value_name = "USER", requires = "key")]
    user: Option<String>,

    /// Seconds before a request is abandoned (then retried); at most 86400.
    #[arg(long, value_name = "SECONDS", default_value = "20", value_parser = cli::seconds)]
    timeout: Duration,

    /// Retries of a failed request (connection error or 5xx) before giving up.
    #[arg(long, value_name = "N", default_value_t = 5)]
    retries: u32,

    /// First retry delay in seconds; it doubles (with jitter) up to 30 s.
    #[arg(long, value_name = "SECONDS", default_value = "0.5", value_parser = cli::seconds)]
    backoff: Duration,

    /// Points per bulk PUT.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,

    /// Print the requests as NDJSON on stdout and send nothing.
    #[arg(long)]
    dry_run: bool,

    /// Speak only esmond's API (a metadata POST and a bulk PUT per metadata), even to an
    /// esmond-serve, whose batch API (many metadata per request and transaction) is used
    /// otherwise.
    #[arg(long)]
    esmond_api: bool,

    /// Batch-API requests under way at once (kept-alive connections; the archive writes
    /// them together). Their answers, and so the ack, are taken in order. 1: one at a
    /// time. The esmond API always sends one at a time.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    in_flight: u64,

    /// Write the cursor of the last delivered record here, atomically.
    #[arg(long, value_name = "FILE")]
    ack: Option<PathBuf>,

    /// When the input pauses this long, send (and acknowledge) what is waiting instead of
    /// holding it for a full batch: a stream that never ends (nats-sub) is delivered as
    /// it comes.
    #[arg(long, value_name = "SECONDS", default_value = "0.2", value_parser = cli::seconds)]
    linger: Duration,

    /// Append every record that is not delivered (bad lines, refused metadata or points)
    /// here as {"location","cause","line"} NDJSON, with the archive's message.
    #[arg(long, value_name = "FILE")]
    reject: Option<PathBuf>,

    /// Metadata-key cache, a SQLite file (default: $XDG_CACHE_HOME/measpipe/esmond-post-keys.db).
    #[arg(long, value_name = "FILE")]
    cache: Option<PathBuf>,

    /// Say "N records processed" every N records (esmond-ps-load-gridftp's progress).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    progress_every: Option<u64>,

    /// Write messages to DIR/esmond-post.log instead of stderr.
    #[arg(short = 'l', long, value_name = "DIR")]
    log_dir: Option<PathBuf>,

    /// Do not check the archive's TLS certificate.
    #[arg(long)]
    insecure: bool,

    #[command(flatten)]
    output: OutputArgs,
}

/// Runs `esmond-post`.
pub fn run(args: Args) -> Result<(), Error> {
    let mut log = cli::Log::open(args.log_dir.as_deref(), "esmond-post.log")?;
    let authorization = match (&args.user, &args.key) {
        (Some(user), Some(key)) => Some(format!("ApiKey {user}:{key}")),
        (None, Some(key)) => Some(format!("Token {key}")),
        _ => None,
    };
    let settings = Settings {
        url: args.url.clone(),
        script_alias: Some(args.script_alias.clone()),
        authorization,
        timeout: args.timeout.max(Duration::from_millis(1)),
        verify_tls: !args.insecure,
    };
    let config = sink::Config {
        root: settings.root(),
        batch_size: args.batch_size,
        retry: Retry {
            retries: args.retries,
            backoff: args.backoff,
            max_delay: Duration::from_secs(30),
        },
        ack: args.ack.clone(),
        cache: args.cache.clone().or_else(sink::default_cache),
        recent: sink::RECENT,
        dry_run: args.dry_run,
        records_api: !args.esmond_api,
        stop_on_refused: args.input.on_error == OnError::Fail,
        in_flight: args.in_flight as usize,
        warn: cli::warn,
    };
    let (outcome, totals) = if args.dry_run {
        let transport = DryRun::new(cli::stdout(&args.output));
        deliver(&args, Sink::new(config, transport)?, &mut log)
    } else {
        deliver(&args, Sink::new(config, Http::new(&settings))?, &mut log)
    };
    log.say("info", &totals.to_string());
    if let Err(err) = &outcome {
        log.say("error", &err.to_string());
    }
    // The cause is in the log (or on stderr) already; a broken pipe still ends quietly.
    outcome.map_err(|err| match err {
        SinkError::Local(local) if local.is_broken_pipe() => local,
        _ => Error::failed("stopped; only acknowledged records were delivered"),
    })
}

/// Reads every record into `sink`; returns how it ended and the totals.
fn deliver<T: Transport>(
    args: &Args,
    mut sink: Sink<T>,
    log: &mut cli::Log,
) -> (Result<(), SinkError>, sink::Totals) {
    let outcome = (|| {
        let mut reader = args.input.reader();
        let mut bad = args.input.bad_lines();
        if let Some(path) = &args.reject {
            bad = bad.reject_to(path)?;
        }
        // A status line on a terminal, unless messages go to a log.
        let mut status = cli::Status::new(args.log_dir.is_some());
        let mut progress = |totals: &sink::Totals| {
            status.update(|| totals.to_string());
            if args
                .progress_every
                .is_some_and(|n| totals.records.is_multiple_of(n))
            {
                log.say("info", &format!("{} records processed", totals.records));
            }
        };
        deliver::all(
            &mut sink,
            &mut reader,
            &mut bad,
            args.linger,
            cli::warn,
            &mut progress,
        )
    })();
    (outcome, sink.totals())
}
