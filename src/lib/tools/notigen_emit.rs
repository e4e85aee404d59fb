//! `notigen-emit`: writes OpenStack-like notifications, one per line (records.md §2).
//!
//! Fast mode (the default) advances simulated time tick by tick as fast as the output
//! takes it; `--realtime` writes each notification when the wall clock reaches its time.

use std::time::Duration;

use clap::{ArgGroup, Parser};

use crate::cli::{self, OutputArgs};
use crate::error::Error;
use crate::notigen::time::{self, Micros, SECOND};
use crate::notigen::{Config, Envelope, Format, Generator, PayloadMode, Renderer, TimeFormat};

const EXAMPLES: &str = "\
Examples:
  # one simulated day at 100 operations a minute, as fast as possible
  notigen-emit --duration 24h --seed 7 > day.ndjson

  # a live feed in the oslo.messaging v2 envelope, 30 operations a minute
  notigen-emit --realtime --ops-per-minute 30 --envelope v2

  # Nova's versioned notifications beside the legacy ones, into RabbitMQ as Nova sends them
  notigen-emit --realtime --format both | amqp-publish --url amqp://guest:guest@127.0.0.1:5672/%2f

  # the first ten notifications, checked against the record contract
  notigen-emit --seed 1 --count 10 --payload seed | record-check --summary";

/// Default rate: the rate the original's README and this project's targets use.
const DEFAULT_OPS_PER_MINUTE: f64 = 100.0;

/// The start of a seeded fast run without --start, so that the seed alone fixes the bytes.
const SEEDED_START: &str = "2026-01-01T00:00:00Z";

/// Generate OpenStack-like (Nova) notifications as NDJSON.
///
/// Operations (creates, updates, deletes of simulated instances) start at a fixed rate;
/// each is a chain of notifications sharing one request id, spread over time, so chains
/// interleave. At every UTC midnight each live instance gets a compute.instance.exists
/// auditing the day. Without --count or --duration it runs until interrupted.
#[derive(Debug, Parser)]
#[command(name = "notigen-emit", version, after_help = EXAMPLES)]
#[command(group(ArgGroup::new("rate").args(["ops_per_minute", "ops_per_hour"])))]
pub struct Args {
    /// New operations per minute [default: 100].
    #[arg(long, value_name = "N")]
    ops_per_minute: Option<f64>,

    /// New operations per hour (instead of --ops-per-minute).
    #[arg(long, value_name = "N")]
    ops_per_hour: Option<f64>,

    /// Follow the wall clock: write each notification when its time comes (flushed at
    /// once). Without it, simulated time runs as fast as possible.
    #[arg(long)]
    realtime: bool,

    /// Simulated start: RFC 3339, 'YYYY-MM-DD HH:MM:SS' (UTC), YYYY-MM-DD or now.
    /// [default: now; 2026-01-01T00:00:00Z for a --seed run in fast mode]
    #[arg(long, value_name = "TIME", value_parser = time::parse_start)]
    start: Option<Micros>,

    /// Stop after this many notifications.
    #[arg(long, value_name = "N")]
    count: Option<u64>,

    /// Stop after this much simulated time, e.g. 24h, 90min, 2days.
    #[arg(long, value_name = "SPAN", value_parser = humantime::parse_duration)]
    duration: Option<Duration>,

    /// Seed the random generator: the same seed (and start) gives byte-identical output.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// Payload detail: the full legacy Nova payload, or a few fields (same operations,
    /// events, times and ids either way).
    #[arg(long, value_enum, default_value_t = PayloadMode::Full)]
    payload: PayloadMode,

    /// Which notifications, as Nova's [notifications]notification_format: the legacy ones,
    /// Nova's versioned ones (publisher nova-compute:<host>, event types like
    /// instance.create.start, nova_object payloads), or both, each legacy notification
    /// followed by its versioned twin. Events Nova sends only in the legacy form (the
    /// scheduler's, RPC names published as INFO) have no versioned twin.
    #[arg(long, value_enum, default_value_t = Format::Unversioned)]
    format: Format,

    /// Message envelope: the flat v1 dict or the v2 {"oslo.version","oslo.message"} form.
    #[arg(long, value_enum, default_value_t = Envelope::V1)]
    envelope: Envelope,

    /// Timestamp format: python is 'YYYY-MM-DD HH:MM:SS.ffffff' as oslo.messaging sends it.
    #[arg(long, value_enum, default_value_t = TimeFormat::Python)]
    timestamp_format: TimeFormat,

    #[command(flatten)]
    output: OutputArgs,
}

/// When a run stops.
struct Limits {
    count: Option<u64>,
    end: Option<Micros>,
}

/// Runs `notigen-emit`.
pub fn run(args: Args) -> Result<(), Error> {
    let ops_per_hour = match (args.ops_per_minute, args.ops_per_hour) {
        (_, Some(per_hour)) => per_hour,
        (per_minute, None) => per_minute.unwrap_or(DEFAULT_OPS_PER_MINUTE) * 60.0,
    };
    if !(ops_per_hour.is_finite() && ops_per_hour > 0.0 && ops_per_hour <= 3.6e9) {
        return Err(Error::Usage(format!(
            "the operation rate must be a positive number up to 1,000,000 a second, got {ops_per_hour} an hour"
        )));
    }
    let start = match (args.start, args.seed, args.realtime) {
        (Some(start), _, _) => start,
        (None, Some(_), false) => time::parse_start(SEEDED_START).map_err(Error::Usage)?,
        (None, _, _) => time::whole_second(time::now()),
    };
    let config = Config {
        ops_per_hour,
        payload: args.payload,
        time_format: args.timestamp_format,
        seed: args.seed,
    };
    let limits = Limits {
        count: args.count,
        end: args
            .duration
            .map(|span| start.saturating_add(span.as_micros().min(i64::MAX as u128) as Micros)),
    };
    let mut generator = Generator::new(&config, start);
    let renderer = Renderer::new(args.payload, args.timestamp_format, args.envelope);
    let mut output = args.output.clone();
    output.line_buffered |= args.realtime;
    let mut emitter = Emitter {
        renderer,
        format: args.format,
        out: cli::stdout(&output),
        line: Vec::with_capacity(8192),
        written: 0,
    };
    if args.realtime {
        run_realtime(&mut generator, &mut emitter, &limits, start)
    } else {
        run_fast(&mut generator, &mut emitter, &limits, start)
    }
}

/// Renders and writes notifications, counting them.
struct Emitter {
    renderer: Renderer,
    format: Format,
    out: crate::ndjson::NdjsonWriter,
    line: Vec<u8>,
    written: u64,
}

impl Emitter {
    /// Writes the due notifications; false once a limit is reached.
    fn emit(
        &mut self,
        generator: &mut Generator,
        now: Micros,
        limits: &Limits,
    ) -> Result<bool, Error> {
        for notification in generator.generate(now) {
            if self.format != Format::Versioned {
                if limits.count.is_some_and(|count| self.written >= count) {
                    return Ok(false);
                }
                self.line.clear();
                self.renderer.render(notification, &mut self.line);
                self.out.write_line(&self.line)?;
                self.written += 1;
            }
            if self.format != Format::Unversioned {
                if limits.count.is_some_and(|count| self.written >= count) {
                    return Ok(false);
                }
                self.line.clear();
                if self.renderer.render_versioned(notification, &mut self.line) {
                    self.out.write_line(&self.line)?;
                    self.written += 1;
                }
            }
        }
        Ok(limits.count.is_none_or(|count| self.written < count))
    }
}

fn run_fast(
    generator: &mut Generator,
    emitter: &mut Emitter,
    limits: &Limits,
    start: Micros,
) -> Result<(), Error> {
    let mut now = start;
    loop {
        let at_end = limits.end.is_some_and(|end| now >= end);
        let now_capped = limits.end.map_or(now, |end| now.min(end));
        if !emitter.emit(generator, now_capped, limits)? || at_end {
            return Ok(());
        }
        now = generator.move_to_next_tick(now);
    }
}

fn run_realtime(
    generator: &mut Generator,
    emitter: &mut Emitter,
    limits: &Limits,
    start: Micros,
) -> Result<(), Error> {
    let offset = start - time::now();
    loop {
        let now = time::now() + offset;
        let at_end = limits.end.is_some_and(|end| now >= end);
        let now_capped = limits.end.map_or(now, |end| now.min(end));
        if !emitter.emit(generator, now_capped, limits)? || at_end {
            return Ok(());
        }
        let due = generator.next_due().min(limits.end.unwrap_or(Micros::MAX));
        let wait = (due - (time::now() + offset)).clamp(0, SECOND);
        std::thread::sleep(Duration::from_micros(wait as u64));
    }
}
