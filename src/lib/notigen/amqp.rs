//! Notifications to and from an AMQP 0-9-1 broker (RabbitMQ) as oslo.messaging's rabbit
//! driver sends and receives them, losing nothing.
//!
//! [`publish`]: a topic exchange, the queue named after each routing key declared and
//! bound before the first message to it (so nothing is lost before a consumer exists),
//! oslo's message properties, publisher confirms with a bounded number in flight. When the
//! connection fails, the tool reconnects with exponential backoff and jitter and publishes
//! again every message not yet confirmed, in order; a consumer drops the repeats by their
//! `_unique_id`, as oslo's listeners do. `--ack FILE` holds the number of input records
//! all confirmed (or refused as bad lines), written atomically while the run goes on.
//!
//! [`tap`]: consumes a queue (or a private queue bound with binding keys), writes each
//! message as one line, and acknowledges it only after the line has been flushed to the
//! output. A message whose `_unique_id` was seen among the last [`DEDUP_WINDOW`] is
//! acknowledged and dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::PublisherConfirm;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

use super::oslo::{self, Publication};
use crate::error::Error;
use crate::ndjson::{read_ahead, Ahead, BadLines, LineReader, NdjsonWriter};

/// How many recent `_unique_id`s a consumer remembers to drop repeats.
pub const DEDUP_WINDOW: usize = 65_536;
/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the ack file is rewritten while confirms arrive.
const ACK_EVERY: Duration = Duration::from_millis(200);

/// Where the broker is and how its exchange is declared (shared by both directions).
#[derive(Debug, Clone)]
pub struct Broker {
    /// `amqp://user:pass@host:port/vhost` (`rabbit://` as oslo's transport_url is
    /// accepted; `amqps://` for TLS).
    pub url: String,
    /// The topic exchange (oslo's `control_exchange`; Nova sets `nova`).
    pub exchange: String,
    /// Declare the exchange and queues durable (oslo's `amqp_durable_queues`; its
    /// default is false). Messages are always sent persistent (delivery mode 2), as oslo
    /// sends them, so on durable queues they survive a broker restart.
    pub durable: bool,
    /// How long to keep trying to reach the broker before giving up.
    pub retry_for: Duration,
    /// The connection's name in the broker's management (the program's name).
    pub name: String,
    /// Asked between messages: the signal that asks the run to stop, if one came.
    pub stop: fn() -> Option<i32>,
}

impl Broker {
    fn amqp_url(&self) -> String {
        match self.url.strip_prefix("rabbit://") {
            Some(rest) => format!("amqp://{rest}"),
            None => self.url.clone(),
        }
    }

    /// The URL without its password, for messages.
    pub fn display_url(&self) -> String {
        let url = self.amqp_url();
        match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let userinfo = &url[scheme + 3..at];
                let user = userinfo.split(':').next().unwrap_or("");
                format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
            }
            _ => url,
        }
    }

    /// Connects and opens a channel, retrying with backoff until `retry_for` has passed
    /// since `since` (the first failure).
    async fn connect(&self, since: &mut Option<Instant>) -> Result<Channel, Error> {
        let mut backoff = Duration::from_millis(100);
        loop {
            // A peer that accepts and never answers must not hold the run: each attempt
            // ends within CONNECT_TIMEOUT (or what is left of retry_for), and a signal
            // ends it at once.
            let left = since.map_or(self.retry_for, |first| {
                self.retry_for.saturating_sub(first.elapsed())
            });
            let limit = left.clamp(Duration::from_millis(100), CONNECT_TIMEOUT);
            let attempt = tokio::select! {
                attempt = tokio::time::timeout(limit, self.try_connect()) => attempt
                    .unwrap_or_else(|_| Err(format!("no AMQP answer within {}", humanize(limit)))),
                signal = stopped(self.stop) => return Err(Error::Interrupted(signal)),
            };
            match attempt {
                Ok(channel) => {
                    *since = None;
                    return Ok(channel);
                }
                Err(cause) => {
                    let first = *since.get_or_insert_with(Instant::now);
                    if first.elapsed() >= self.retry_for {
                        return Err(Error::failed(format!(
                            "{}: {cause}; gave up after {}",
                            self.display_url(),
                            humanize(self.retry_for)
                        )));
                    }
                    let jitter = rand::random_range(0.5..1.0);
                    tokio::select! {
                        () = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
                        signal = stopped(self.stop) => return Err(Error::Interrupted(signal)),
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn try_connect(&self) -> Result<Channel, String> {
        let properties =
            ConnectionProperties::default().with_connection_name(self.name.as_str().into());
        let connection = Connection::connect(&self.amqp_url(), properties)
            .await
            .map_err(|e| e.to_string())?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| e.to_string())?;
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: self.durable,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| format!("declaring exchange {}: {e}", self.exchange))?;
        Ok(channel)
    }

    /// Declares the queue `name` (durable as the broker's settings say) and binds it to the
    /// exchange with each key.
    async fn queue(
        &self,
        channel: &Channel,
        name: &str,
        keys: &[String],
    ) -> Result<String, String> {
        let queue = channel
            .queue_declare(
                name.into(),
                QueueDeclareOptions {
                    durable: self.durable && !name.is_empty(),
                    exclusive: name.is_empty(),
                    auto_delete: name.is_empty(),
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| format!("declaring queue {name}: {e}"))?;
        let name = queue.name().as_str().to_owned();
        for key in keys {
            channel
                .queue_bind(
                    name.as_str().into(),
                    self.exchange.as_str().into(),
                    key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| format!("binding queue {name} to {key}: {e}"))?;
        }
        Ok(name)
    }
}

fn humanize(span: Duration) -> String {
    format!("{:.0} s", span.as_secs_f64().max(1.0))
}

/// The longest one connection attempt (TCP, TLS, AMQP handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves with the signal once `stop` reports one (polled every 100 ms).
async fn stopped(stop: fn() -> Option<i32>) -> i32 {
    loop {
        if let Some(signal) = stop() {
            return signal;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counters a run reports.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Messages the broker confirmed (publish) or that were written (tap).
    pub done: u64,
    /// Messages published again after a reconnect (publish) or dropped as repeats (tap).
    pub repeated: u64,
    /// Connections lost.
    pub reconnects: u64,
}

/// How [`publish`] runs.
pub struct PublishSettings {
    /// The broker.
    pub broker: Broker,
    /// Topic and envelope of each message.
    pub publication: Publication,
    /// At most this many messages published and not yet confirmed.
    pub max_in_flight: usize,
    /// The ack file: the number of input records done, rewritten atomically.
    pub ack: Option<PathBuf>,
    /// Input records to skip first (those a previous run's ack file counts).
    pub skip: u64,
}

/// A publish whose frames lapin has queued, until lapin has written them.
type Publishing = Pin<Box<dyn Future<Output = lapin::Result<PublisherConfirm>> + Send>>;

/// A record read and prepared, waiting for its confirm.
struct Pending {
    index: u64,
    key: Arc<str>,
    body: Arc<Vec<u8>>,
    /// The publish, once started and until lapin has written it.
    publishing: Option<Publishing>,
    confirm: Option<PublisherConfirm>,
}

impl Pending {
    /// Waits for this message's confirm (its frames written first). `Err` when the
    /// connection failed before.
    async fn confirmed(&mut self) -> lapin::Result<lapin::Confirmation> {
        if let Some(publishing) = self.publishing.as_mut() {
            let confirm = publishing.await;
            self.publishing = None;
            self.confirm = Some(confirm?);
        }
        match self.confirm.as_mut() {
            Some(confirm) => confirm.await,
            None => std::future::pending().await,
        }
    }
}

/// Publishes every record `lines` yields. Returns the counts, or the error that stopped
/// the run (the ack file then covers exactly what was confirmed).
pub fn publish(
    settings: PublishSettings,
    lines: LineReader,
    bad: BadLines,
    mut progress: impl FnMut(&Counts),
) -> Result<(Counts, BadLines), Error> {
    let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let skip = settings.skip;
    let mut publication = settings.publication;
    let mut keys: HashMap<String, Arc<str>> = HashMap::new();
    let mut key = String::new();
    let (mut rx, reader) = read_ahead("amqp-read", lines, bad, skip, 4096, move |line| {
        let mut body = free_rx.try_recv().unwrap_or_default();
        publication.prepare(line, &mut body, &mut key)?;
        let key = match keys.get(key.as_str()) {
            Some(key) => Arc::clone(key),
            None => {
                let shared: Arc<str> = Arc::from(key.as_str());
                keys.insert(key.clone(), Arc::clone(&shared));
                shared
            }
        };
        Ok((key, body))
    })?;
    let runtime = runtime()?;
    let broker = settings.broker;
    let result = runtime.block_on(async {
        let mut counts = Counts::default();
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let mut channel: Option<Channel> = None;
        let mut declared: HashSet<Arc<str>> = HashSet::new();
        let mut end: Option<u64> = None;
        // A bad line under --on-error fail: what came before it is still confirmed first.
        let mut failure: Option<Error> = None;
        let mut last_read = skip;
        let mut done_index = skip;
        let mut written_index = skip;
        let mut last_write = Instant::now();
        let mut failing_since = None;
        let properties = BasicProperties::default()
            .with_content_type(oslo::CONTENT_TYPE.into())
            .with_content_encoding(oslo::CONTENT_ENCODING.into())
            .with_headers(FieldTable::default())
            .with_delivery_mode(2)
            .with_priority(0);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let outcome: Result<(), Error> = loop {
            if let Some(signal) = (broker.stop)() {
                break Err(Error::Interrupted(signal));
            }
            if let (Some(total), true) = (end, pending.is_empty()) {
                done_index = total;
                break match failure.take() {
                    Some(err) => Err(err),
                    None => Ok(()),
                };
            }
            let Some(open) = channel.as_ref() else {
                let fresh = broker.connect(&mut failing_since).await;
                let fresh = match fresh {
                    Ok(fresh) => fresh,
                    Err(err) => break Err(err),
                };
                declared.clear();
                let mut ok = fresh
                    .confirm_select(ConfirmSelectOptions::default())
                    .await
                    .is_ok();
                // Everything not yet confirmed goes again, in order.
                for item in pending.iter_mut() {
                    if !ok {
                        break;
                    }
                    counts.repeated += 1;
                    ok = send(&broker, &fresh, &mut declared, item, &properties).await;
                }
                if ok {
                    channel = Some(fresh);
                } else {
                    counts.reconnects += 1;
                }
                continue;
            };
            let room = pending.len() < settings.max_in_flight;
            let front = pending
                .front_mut()
                .filter(|p| p.publishing.is_some() || p.confirm.is_some());
            let has_front = front.is_some();
            let front = async {
                match front {
                    Some(item) => item.confirmed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                confirmation = front, if has_front => {
                    match confirmation {
                        Ok(confirmation) if confirmation.is_ack() => {
                            let item = pending.pop_front().expect("a front was awaited");
                            done_index = item.index;
                            counts.done += 1;
                            if let Ok(mut body) = Arc::try_unwrap(item.body) {
                                body.clear();
                                let _ = free_tx.send(body);
                            }
                        }
                        // A nack (the broker could not take it) or a lost connection:
                        // reconnect and send again everything unconfirmed.
                        _ => {
                            lose(&mut channel, &mut counts);
                        }
                    }
                }
                read = rx.recv(), if room && end.is_none() => {
                    match read {
                        Some(Ahead::Item(index, (key, body))) => {
                            last_read = index;
                            let mut item = Pending {
                                index,
                                key,
                                body: Arc::new(body),
                                publishing: None,
                                confirm: None,
                            };
                            let ok = send(&broker, open, &mut declared, &mut item, &properties).await;
                            pending.push_back(item);
                            if !ok {
                                lose(&mut channel, &mut counts);
                            }
                        }
                        Some(Ahead::End(total)) => end = Some(total),
                        Some(Ahead::Failed(err)) => {
                            failure = Some(err);
                            end = Some(last_read);
                        }
                        None => break Err(Error::failed("the input thread stopped")),
                    }
                }
                _ = tick.tick() => {}
            }
            if let Some(path) = &settings.ack {
                if done_index != written_index && last_write.elapsed() >= ACK_EVERY {
                    write_ack(path, done_index)?;
                    written_index = done_index;
                    last_write = Instant::now();
                    progress(&counts);
                }
            } else if last_write.elapsed() >= ACK_EVERY {
                last_write = Instant::now();
                progress(&counts);
            }
        };
        if let Some(path) = &settings.ack {
            if done_index != written_index {
                write_ack(path, done_index)?;
            }
        }
        if let Some(channel) = channel {
            let _ = channel.close(200, "done".into()).await;
        }
        outcome.map(|()| counts)
    });
    drop(rx);
    let bad = reader
        .join()
        .map_err(|_| Error::failed("the input thread panicked"))?;
    result.map(|counts| (counts, bad))
}

fn lose(channel: &mut Option<Channel>, counts: &mut Counts) {
    if channel.take().is_some() {
        counts.reconnects += 1;
    }
}

/// Publishes `item` on `channel`, declaring and binding its queue first if this channel
/// has not yet. False when the channel failed.
async fn send(
    broker: &Broker,
    channel: &Channel,
    declared: &mut HashSet<Arc<str>>,
    item: &mut Pending,
    properties: &BasicProperties,
) -> bool {
    if !declared.contains(&item.key) {
        let key = item.key.to_string();
        if broker
            .queue(channel, &key, std::slice::from_ref(&key))
            .await
            .is_err()
        {
            return false;
        }
        declared.insert(Arc::clone(&item.key));
    }
    item.confirm = None;
    let channel = channel.clone();
    let exchange = broker.exchange.as_str().into();
    let key = (*item.key).into();
    let body = Arc::clone(&item.body);
    let properties = properties.clone();
    let mut publishing: Publishing = Box::pin(async move {
        channel
            .basic_publish(
                exchange,
                key,
                BasicPublishOptions::default(),
                &body,
                properties,
            )
            .await
    });
    // The first poll queues the frames (and takes the delivery tag) at once, in input
    // order; the rest of the publish only waits for lapin to write them, which it does for
    // many messages at a time, so it is not awaited here.
    let mut context = Context::from_waker(Waker::noop());
    match publishing.as_mut().poll(&mut context) {
        Poll::Ready(Ok(confirm)) => item.confirm = Some(confirm),
        Poll::Ready(Err(_)) => {
            item.publishing = None;
            return false;
        }
        Poll::Pending => item.publishing = Some(publishing),
    }
    true
}

/// Writes the ack file: the number of input records done, then a newline.
fn write_ack(path: &std::path::Path, done: u64) -> Result<(), Error> {
    crate::state::write_atomic(path, format!("{done}\n").as_bytes())
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Error::failed(format!("cannot start the I/O runtime: {e}")))
}

/// What [`tap`] consumes.
pub struct TapSettings {
    /// The broker.
    pub broker: Broker,
    /// A named queue to consume (declared if missing); `None` for a private queue that
    /// the broker names and deletes when the tap ends.
    pub queue: Option<String>,
    /// Binding keys (topic patterns such as `notifications.*`) the queue is bound with.
    pub bind: Vec<String>,
    /// Write the v1 dict inside a v2 envelope instead of the envelope.
    pub unwrap: bool,
    /// Stop after this many messages written.
    pub count: Option<u64>,
    /// Unacknowledged deliveries the broker may send ahead.
    pub prefetch: u16,
}

/// Consumes messages to `out` until interrupted, `count` is reached, or the broker stays
/// unreachable for `retry_for`. A body that is not a JSON object is reported with `warn`,
/// counted in `bad` and acknowledged.
pub fn tap(
    settings: TapSettings,
    out: &mut NdjsonWriter,
    bad: &mut BadLines,
    mut progress: impl FnMut(&Counts),
) -> Result<Counts, Error> {
    let runtime = runtime()?;
    runtime.block_on(async {
        let mut counts = Counts::default();
        let mut seen = Seen::new(DEDUP_WINDOW);
        let mut failing_since = None;
        let mut line = Vec::with_capacity(8192);
        let mut last_progress = Instant::now();
        let name = settings.queue.clone().unwrap_or_default();
        let mut message_number = 0u64;
        'connection: loop {
            let channel = settings.broker.connect(&mut failing_since).await?;
            let consumed = async {
                let queue = settings
                    .broker
                    .queue(&channel, &name, &settings.bind)
                    .await?;
                channel
                    .basic_qos(settings.prefetch, BasicQosOptions::default())
                    .await
                    .map_err(|e| e.to_string())?;
                let consumer = channel
                    .basic_consume(
                        queue.as_str().into(),
                        "".into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| format!("consuming {queue}: {e}"))?;
                Ok::<_, String>((queue, consumer))
            }
            .await;
            let (queue, mut consumer) = match consumed {
                Ok(found) => found,
                Err(cause) if settings.queue.is_some() && cause.contains("PRECONDITION") => {
                    return Err(Error::failed(format!(
                        "{}: {cause} (is --durable the same as where the queue was made?)",
                        settings.broker.display_url()
                    )));
                }
                Err(_) => {
                    counts.reconnects += 1;
                    continue 'connection;
                }
            };
            let mut unacked: Option<u64> = None;
            let mut unacked_count = 0u32;
            loop {
                if let Some(signal) = (settings.broker.stop)() {
                    flush_and_ack(out, &channel, &mut unacked, &mut unacked_count).await??;
                    return Err(Error::Interrupted(signal));
                }
                if settings.count.is_some_and(|count| counts.done >= count) {
                    flush_and_ack(out, &channel, &mut unacked, &mut unacked_count).await??;
                    let _ = channel.close(200, "done".into()).await;
                    return Ok(counts);
                }
                // Wait briefly for more; when none comes, flush what was written and ack it.
                let wait = if unacked.is_some() {
                    Duration::from_millis(20)
                } else {
                    Duration::from_millis(200)
                };
                let next = match tokio::time::timeout(wait, consumer.next()).await {
                    Err(_) => {
                        let acked =
                            flush_and_ack(out, &channel, &mut unacked, &mut unacked_count).await?;
                        if acked.is_err() {
                            counts.reconnects += 1;
                            continue 'connection;
                        }
                        if last_progress.elapsed() >= ACK_EVERY {
                            last_progress = Instant::now();
                            progress(&counts);
                        }
                        continue;
                    }
                    Ok(next) => next,
                };
                let delivery = match next {
                    Some(Ok(delivery)) => delivery,
                    // The connection or channel went away: unacked messages come back.
                    _ => {
                        counts.reconnects += 1;
                        continue 'connection;
                    }
                };
                message_number += 1;
                let tag = delivery.delivery_tag;
                match oslo::receive(&delivery.data, settings.unwrap) {
                    Err(cause) => {
                        let location = crate::error::Location {
                            file: Arc::from(format!("queue {queue}").as_str()),
                            line: message_number,
                        };
                        let err = Error::bad_input(location, format!("message {cause}"));
                        bad.handle_line(err, &delivery.data)?;
                    }
                    Ok(received) => {
                        let fresh = received
                            .unique_id
                            .as_deref()
                            .is_none_or(|id| seen.insert(id));
                        if !fresh {
                            counts.repeated += 1;
                        } else {
                            line.clear();
                            match received.unwrapped.as_deref() {
                                Some(inner) => line.extend_from_slice(inner.as_bytes()),
                                None => line.extend_from_slice(&delivery.data),
                            }
                            if line.contains(&b'\n') {
                                let value: serde_json::Value = serde_json::from_slice(&line)
                                    .map_err(|e| Error::failed(e.to_string()))?;
                                line.clear();
                                serde_json::to_writer(&mut line, &value)
                                    .map_err(|e| Error::failed(e.to_string()))?;
                            }
                            out.write_line(&line)?;
                            counts.done += 1;
                        }
                    }
                }
                unacked = Some(tag);
                unacked_count += 1;
                if unacked_count >= u32::from(settings.prefetch / 2).max(1) {
                    let acked =
                        flush_and_ack(out, &channel, &mut unacked, &mut unacked_count).await?;
                    if acked.is_err() {
                        counts.reconnects += 1;
                        continue 'connection;
                    }
                }
            }
        }
    })
}

/// Flushes the output, then acknowledges every delivery up to the last one written. The
/// outer error is the output's (the run ends); the inner one, the acknowledgement's (the
/// connection is gone: reconnect, and the unacknowledged messages come again).
async fn flush_and_ack(
    out: &mut NdjsonWriter,
    channel: &Channel,
    unacked: &mut Option<u64>,
    count: &mut u32,
) -> Result<Result<(), Error>, Error> {
    let Some(tag) = unacked.take() else {
        return Ok(Ok(()));
    };
    out.flush()?;
    *count = 0;
    Ok(channel
        .basic_ack(tag, BasicAckOptions { multiple: true })
        .await
        .map_err(|e| Error::failed(format!("acknowledging: {e}"))))
}

/// The most recent `_unique_id`s, oldest forgotten first.
struct Seen {
    order: VecDeque<Box<str>>,
    set: HashSet<Box<str>>,
    capacity: usize,
}

impl Seen {
    fn new(capacity: usize) -> Self {
        Seen {
            order: VecDeque::with_capacity(capacity),
            set: HashSet::with_capacity(capacity),
            capacity,
        }
    }

    /// Remembers `id`; false if it was already remembered.
    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        let id: Box<str> = id.into();
        self.order.push_back(id.clone());
        self.set.insert(id);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_forgets_the_oldest_first() {
        let mut seen = Seen::new(2);
        assert!(seen.insert("a"));
        assert!(!seen.insert("a"));
        assert!(seen.insert("b"));
        assert!(seen.insert("c"));
        assert!(seen.insert("a"), "a was forgotten when c came");
        assert!(!seen.insert("c"));
    }

    #[test]
    fn passwords_are_not_shown() {
        let broker = Broker {
            url: "rabbit://nova:secret@mq.example.net:5672/nova".into(),
            exchange: "nova".into(),
            durable: false,
            retry_for: Duration::from_secs(1),
            name: "test".into(),
            stop: || None,
        };
        assert_eq!(
            broker.display_url(),
            "amqp://nova:***@mq.example.net:5672/nova"
        );
    }
}
