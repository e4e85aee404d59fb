//! `amqp-publish`: notifications (NDJSON) → an AMQP 0-9-1 broker, exactly as oslo.messaging's
//! rabbit driver publishes them, losing nothing.

use std::time::Duration;

use clap::{Args as ClapArgs, Parser};

use crate::cli::{self, AckArgs, InputArgs};
use crate::error::Error;
use crate::notigen::amqp::{self, Broker, PublishSettings};
use crate::notigen::oslo::Publication;
use crate::notigen::Envelope;

const EXAMPLES: &str = "\
Examples:
  # a simulated Nova into a local RabbitMQ, legacy and versioned, as Nova publishes them
  notigen-emit --realtime --format both | amqp-publish

  # a file, resumable: a rerun with --resume sends only what the broker did not confirm
  amqp-publish --ack day.ack --resume --durable day.ndjson

  # a listener on the other side
  amqp-tap --bind 'notifications.*' | record-check --kind notification";

/// Broker options shared by amqp-publish and amqp-tap.
#[derive(Debug, Clone, ClapArgs)]
pub struct BrokerArgs {
    /// The broker: amqp://USER:PASS@HOST:PORT/VHOST (the vhost / is %2f); rabbit:// as in
    /// oslo's transport_url works too, amqps:// for TLS.
    #[arg(
        short = 'U',
        long,
        value_name = "URL",
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub url: String,

    /// The topic exchange (oslo's control_exchange: Nova sets nova, oslo's own default is
    /// openstack).
    #[arg(long, value_name = "NAME", default_value = "nova")]
    pub exchange: String,

    /// Declare the exchange and queues durable, as oslo does with amqp_durable_queues =
    /// True (oslo's default is non-durable). Messages are always persistent, so on durable
    /// queues they survive a broker restart. Every declarer of a name must agree.
    #[arg(long)]
    pub durable: bool,

    /// Keep trying to reach the broker this long (with backoff) before giving up.
    #[arg(long, value_name = "SPAN", default_value = "5min", value_parser = humantime::parse_duration)]
    pub retry_for: Duration,
}

impl BrokerArgs {
    /// The domain's broker settings.
    pub fn broker(&self) -> Broker {
        Broker {
            url: self.url.clone(),
            exchange: self.exchange.clone(),
            durable: self.durable,
            retry_for: self.retry_for,
            name: cli::program().to_owned(),
            stop: cli::interrupted,
        }
    }
}

/// Publish notifications to RabbitMQ (AMQP 0-9-1) as OpenStack services do.
///
/// Each line is a notification: an oslo v1 dict or a v2 {"oslo.version","oslo.message"}
/// envelope, as notigen-emit writes them. It is published to the topic exchange with
/// routing key <topic>.<priority> (notifications.info, versioned_notifications.error, …):
/// the topic is --topic, or versioned_notifications for a versioned (nova_object) payload
/// and notifications otherwise; the priority is the record's, lowercased. Before the first
/// message to a routing key, the queue of that name is declared and bound, as oslo's
/// driver does, so nothing is lost before a consumer exists. Messages carry oslo's
/// properties (application/json, utf-8, delivery mode 2) and a _unique_id (added if
/// missing), by which consumers drop repeats.
///
/// The broker confirms every message (publisher confirms, at most --max-in-flight
/// waiting). When the connection fails, amqp-publish reconnects with backoff and publishes
/// again everything not yet confirmed; it exits 1 only when the broker stays unreachable
/// for --retry-for. --ack FILE holds the number of input records confirmed, rewritten
/// atomically as confirms arrive.
#[derive(Debug, Parser)]
#[command(name = "amqp-publish", version, after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    input: InputArgs,

    #[command(flatten)]
    broker: BrokerArgs,

    /// Publish every message on this topic (routing key <TOPIC>.<priority>) instead of
    /// choosing notifications / versioned_notifications by the payload.
    #[arg(long, value_name = "TOPIC")]
    topic: Option<String>,

    /// The body: v2 is oslo's messagingv2 driver (what Nova deployments use), v1 its
    /// messaging driver (the flat dict). Input in either form is converted.
    #[arg(long, value_enum, default_value_t = Envelope::V2)]
    envelope: Envelope,

    /// At most this many messages published and not yet confirmed.
    #[arg(long, value_name = "N", default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_in_flight: u64,

    #[command(flatten)]
    ack: AckArgs,

    /// No status line on a terminal.
    #[arg(short, long)]
    quiet: bool,
}

/// Runs `amqp-publish`.
pub fn run(args: Args) -> Result<(), Error> {
    if args.topic.as_deref().is_some_and(str::is_empty) {
        return Err(Error::Usage("--topic must not be empty".into()));
    }
    cli::stop_on_signal();
    let skip = args.ack.skip("an amqp-publish ack file")?;
    let settings = PublishSettings {
        broker: args.broker.broker(),
        publication: Publication::new(args.envelope, args.topic.clone()),
        max_in_flight: usize::try_from(args.max_in_flight).unwrap_or(usize::MAX),
        ack: args.ack.ack.clone(),
        skip,
    };
    let url = settings.broker.display_url();
    let bad = args.input.bad_lines().warn_each(cli::warn);
    let mut status = cli::Status::new(args.quiet);
    let result = amqp::publish(settings, args.input.reader(), bad, |counts| {
        status.update(|| {
            format!(
                "{} confirmed, {} reconnects",
                counts.done, counts.reconnects
            )
        })
    });
    drop(status);
    let (counts, bad) = result?;
    bad.report(cli::warn);
    if counts.reconnects > 0 || counts.repeated > 0 {
        cli::notice(&format!(
            "{url}: {} messages confirmed; {} connections lost, {} messages sent again",
            counts.done, counts.reconnects, counts.repeated
        ));
    }
    Ok(())
}
