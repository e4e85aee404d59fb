//! Any NDJSON stream between machines over NATS JetStream (`nats-pub`, `nats-sub`).
//!
//! The publisher sends each line as one message with a `Nats-Msg-Id` derived from the
//! record (a hash of the line, or its `cursor`), so JetStream's duplicate window drops a
//! re-send; it keeps at most a bounded number of messages unconfirmed, sends again what a
//! lost connection left unconfirmed, and counts in its ack file only what the stream
//! confirmed, in input order. The subscriber reads through a pull consumer (durable when
//! named), writes each message as a line and acknowledges a batch once it is written:
//! at-least-once, so a sink that takes a record twice as once (esmond-post into the
//! archive) gets every record exactly once.
//!
//! With the sink's ack file (`nats-sub --ack FILE … | esmond-post --ack FILE`), the
//! subscriber gives each record a cursor of its own and acknowledges a message only when
//! the sink's trail has passed it: a record in the pipe when the sink fails is delivered
//! again, not lost.
//!
//! Both ends create the stream when it is missing, with the same defaults, so either may
//! start first.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::future::{Future, IntoFuture};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;

use crate::error::Error;
use crate::ndjson::{read_ahead, Ahead, BadLines, LineReader};
use crate::record::{cursor_of, Text};

mod pack;
pub use pack::PACK_BYTES;
use pack::{Pack, Plan};

/// How to reach the NATS servers, as nats users expect to say it.
#[derive(Debug, Clone)]
pub struct Server {
    /// `nats://HOST:PORT` (several, comma-separated, for a cluster; `tls://` for TLS).
    pub url: String,
    /// A credentials file (JWT and NKey seed), as `nats --creds`.
    pub creds: Option<PathBuf>,
    /// User and password.
    pub user: Option<(String, String)>,
    /// An authentication token.
    pub token: Option<String>,
    /// CA certificates to trust (PEM).
    pub tls_ca: Option<PathBuf>,
    /// A client certificate and its key (PEM).
    pub tls_cert: Option<(PathBuf, PathBuf)>,
    /// Require TLS even when the URL does not.
    pub tls_required: bool,
    /// How long to keep trying when no server answers.
    pub retry_for: Duration,
    /// The connection's name, shown by the server (the program's).
    pub name: String,
    /// Whether a signal asked the run to stop (its number).
    pub stop: fn() -> Option<i32>,
    /// Where passing trouble is told (a missed heartbeat, a reconnect).
    pub warn: fn(&str),
}

/// The stream the messages are kept in, when it has to be created.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// Its name; by default the subject's first token, upper-cased.
    pub name: Option<String>,
    /// Messages older than this are dropped.
    pub max_age: Duration,
    /// The stream's size limit, bytes (the oldest messages go first).
    pub max_bytes: i64,
    /// How long a message id is remembered to drop a re-send.
    pub duplicate_window: Duration,
    /// Copies kept in a cluster.
    pub replicas: usize,
}

impl StreamSpec {
    /// The stream's name and subjects for `subject`: `gridftp.host1` is kept in `GRIDFTP`,
    /// which takes `gridftp` and `gridftp.>`, so each host may publish on its own subject
    /// and one subscriber take them all (`gridftp.>`).
    pub fn for_subject(&self, subject: &str) -> (String, Vec<String>) {
        let first = subject.split('.').next().unwrap_or(subject);
        let name = self.name.clone().unwrap_or_else(|| {
            first
                .chars()
                .map(|c| match c {
                    'a'..='z' => c.to_ascii_uppercase(),
                    'A'..='Z' | '0'..='9' | '-' | '_' => c,
                    _ => '_',
                })
                .collect()
        });
        (name, vec![first.to_owned(), format!("{first}.>")])
    }
}

/// How a message id is made from a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageId {
    /// A SHA-256 of the line: the same record sent again is the same message.
    Hash,
    /// The record's `cursor` (the producer's resume token), after the subject; the hash
    /// when a record has none.
    Cursor,
}

/// The message id of `line` (a JSON object) published on `subject`.
pub fn message_id(kind: MessageId, subject: &str, line: &[u8]) -> String {
    let cursor = match kind {
        MessageId::Cursor => cursor_of(line),
        MessageId::Hash => None,
    };
    id_of(kind, subject, line, cursor.as_deref())
}

/// [`message_id`] with the line's cursor read already.
fn id_of(kind: MessageId, subject: &str, line: &[u8], cursor: Option<&str>) -> String {
    use sha2::Digest;
    if let (MessageId::Cursor, Some(cursor)) = (kind, cursor) {
        return format!("{subject}:{cursor}");
    }
    let digest = sha2::Sha256::digest(line);
    let mut id = String::with_capacity(43);
    for byte in &digest[..20] {
        let _ = write!(id, "{byte:02x}");
    }
    id
}

/// What `nats-pub` does.
#[derive(Debug, Clone)]
pub struct PublishSettings {
    /// Where to.
    pub server: Server,
    /// The stream, when it is missing.
    pub stream: StreamSpec,
    /// The subject every line is published on.
    pub subject: String,
    /// How message ids are made.
    pub id: MessageId,
    /// At most this many messages unconfirmed.
    pub max_in_flight: usize,
    /// The ack file: the number of input records confirmed (or refused as bad lines).
    pub ack: Option<PathBuf>,
    /// The cursor ack file: the cursor of the last record confirmed (every one before it
    /// confirmed too), as esmond-post's `--ack` writes it for the producer's `--ack`.
    pub ack_cursor: Option<PathBuf>,
    /// Input records to skip (a rerun over the same input).
    pub skip: u64,
    /// Records per message, at most (1: a message per line). A message is also cut
    /// before it would pass [`PACK_BYTES`], and when the input pauses for `linger` or ends.
    pub pack: usize,
    /// How long a message that is not full waits for more input.
    pub linger: Duration,
    /// Where the stream sequence of the last message the ack files count is kept (needed
    /// with `pack` > 1): a rerun packs what the stream holds past it as it was packed.
    pub sequence: Option<PathBuf>,
}

/// What a publish run did.
#[derive(Debug, Default, Clone)]
pub struct PublishCounts {
    /// Input records done (confirmed, or refused as bad lines).
    pub done: u64,
    /// Messages the stream confirmed.
    pub confirmed: u64,
    /// Of those, re-sends the stream dropped by their message id.
    pub duplicates: u64,
    /// Messages published again after a failure.
    pub resent: u64,
    /// The cursor of the last record confirmed with every one before it (with
    /// `ack_cursor` only).
    pub cursor: Option<Box<str>>,
    /// The stream sequence of the last message confirmed (with `sequence` only).
    pub sequence: u64,
}

/// A line read ahead: its payload, its record's id and (with `ack_cursor`) cursor.
type Read = (Vec<u8>, String, Option<Box<str>>);

/// A message sent, waiting for its confirm.
struct Pending {
    /// The input record number (from 1) of its first and last record.
    first: u64,
    last: u64,
    payload: bytes::Bytes,
    id: String,
    /// Its last record's cursor (with `ack_cursor` only).
    cursor: Option<Box<str>>,
    confirm: Option<Confirm>,
}

type Confirm = Pin<
    Box<
        dyn Future<
                Output = Result<jetstream::publish::PublishAck, jetstream::context::PublishError>,
            > + Send,
    >,
>;

/// Publishes every line `lines` yields. Returns the counts and the bad-line counter, or
/// the error that stopped the run (the ack file then covers exactly what was confirmed).
pub fn publish(
    settings: PublishSettings,
    lines: LineReader,
    bad: BadLines,
    mut progress: impl FnMut(&PublishCounts),
) -> Result<(PublishCounts, BadLines), Error> {
    let (subject, id_kind) = (settings.subject.clone(), settings.id);
    // The cursor is read once, for the id or the cursor ack file or both.
    let keep = settings.ack_cursor.is_some();
    let read = keep || id_kind == MessageId::Cursor;
    let (mut rx, reader) = read_ahead("nats-read", lines, bad, settings.skip, 8192, move |line| {
        serde_json::from_slice::<serde::de::IgnoredAny>(line)
            .map_err(|e| format!("not JSON: {e}"))?;
        let cursor = read.then(|| cursor_of(line)).flatten();
        let id = id_of(id_kind, &subject, line, cursor.as_deref());
        let cursor = keep.then(|| cursor.map(Box::from)).flatten();
        Ok((line.to_vec(), id, cursor))
    })?;
    let skip = settings.skip;
    let runtime = runtime()?;
    let mut counts = PublishCounts {
        done: skip,
        ..PublishCounts::default()
    };
    let result = runtime.block_on(publish_loop(&settings, &mut rx, &mut counts, &mut progress));
    drop(rx);
    let bad = reader
        .join()
        .map_err(|_| Error::failed("the input thread failed"))?;
    write_acks(&settings, &counts)?;
    result.map(|()| (counts, bad))
}

/// Writes the ack files: the count of records done, and the last confirmed cursor; then
/// the stream sequence they reach.
fn write_acks(settings: &PublishSettings, counts: &PublishCounts) -> Result<(), Error> {
    if let Some(path) = &settings.ack {
        crate::state::write_atomic(path, format!("{}\n", counts.done).as_bytes())?;
    }
    if let (Some(path), Some(cursor)) = (&settings.ack_cursor, &counts.cursor) {
        crate::state::write_atomic(path, format!("{cursor}\n").as_bytes())?;
    }
    match &settings.sequence {
        Some(path) => pack::write_sequence(path, counts.sequence),
        None => Ok(()),
    }
}

/// At most this many bytes of messages wait for their confirms, whatever --max-in-flight
/// says: the memory they hold, and what a lost connection sends again.
const IN_FLIGHT_BYTES: usize = 32 << 20;

/// What the publish loop sends with.
struct Sender<'a> {
    context: &'a jetstream::Context,
    subject: &'a str,
    most: usize,
    pack: Pack,
    /// The messages of a killed run to send again as they were.
    plan: Plan,
    /// The ids (hashed) of the records the pack must hold, when it is one of those, and
    /// whether it has held them so far.
    target: Option<(Vec<u64>, bool)>,
    pending: VecDeque<Pending>,
    /// The bytes of the pending messages.
    pending_bytes: usize,
}

impl Sender<'_> {
    /// Whether another message may be sent before a confirm comes.
    fn room(&self, most: usize) -> bool {
        self.pending.len() < most && self.pending_bytes < IN_FLIGHT_BYTES
    }

    /// The oldest message, confirmed.
    fn confirmed(&mut self) -> Option<Pending> {
        let first = self.pending.pop_front()?;
        self.pending_bytes -= first.payload.len();
        Some(first)
    }

    /// Adds a record to the pack, sending it when full; a record that would not fit sends
    /// the pack before it first.
    async fn add(&mut self, index: u64, read: Read) {
        let (line, id, cursor) = read;
        if !self.pack.fits(line.len()) {
            self.send().await;
        }
        if let Some((ids, same)) = &mut self.target {
            // A record other than the one the message held: the message will be new, but
            // it ends where that one did, so that the next ones are the same again.
            *same &= ids.get(self.pack.count) == Some(&pack::id_hash(&id));
        } else if self.pack.is_empty() {
            self.target = self.plan.take(pack::id_hash(&id)).map(|ids| (ids, true));
        }
        self.pack.push(index, line, id, cursor);
        let full = self.target.as_ref().map_or(self.most, |(ids, _)| ids.len());
        if self.pack.count >= full {
            self.send().await;
        }
    }

    /// Whether the pack may be sent before it is full, when the input pauses: not while it
    /// is to be a message the stream holds already.
    fn may_linger(&self) -> bool {
        !self.pack.is_empty() && !self.target.as_ref().is_some_and(|(_, same)| *same)
    }

    /// Sends the pack as one message.
    async fn send(&mut self) {
        self.target = None;
        let message = self.pack.take();
        let confirm = send(self.context, self.subject, &message.payload, &message.id).await;
        self.pending_bytes += message.payload.len();
        self.pending.push_back(Pending {
            first: message.first,
            last: message.last,
            payload: message.payload,
            id: message.id,
            cursor: message.cursor,
            confirm,
        });
    }
}

/// The bytes one pull asks for at most: several packed messages, and at least the largest
/// message the server takes. (Unbounded, a pull of 1,000 messages of 256 records is
/// ~90 MB, which the server did not deliver within the pull's expiry; the messages left
/// came again only after the ack wait.)
fn pull_bytes(context: &jetstream::Context) -> usize {
    let largest = context.client().server_info().max_payload;
    (8 << 20).max(largest)
}

/// Whether a pull ended because the next message would pass its bytes: the usual end of
/// one asked for with `max_bytes` (the server says `409 Message Size Exceeds MaxBytes`;
/// async-nats gives it as an error whose text alone names it).
fn full(e: &async_nats::Error) -> bool {
    e.to_string().contains("Exceeds MaxBytes")
}

/// The messages on `subject` past stream sequence `after`, as a rerun packs them again.
async fn landed(
    context: &jetstream::Context,
    stream: &stream::Stream,
    settings: &PublishSettings,
    after: u64,
) -> Result<Plan, Error> {
    let url = &settings.server.url;
    let failed = |e: &dyn std::fmt::Display| {
        Error::failed(format!("{url}: reading what the last run sent: {e}"))
    };
    let config = consumer::pull::Config {
        filter_subject: settings.subject.clone(),
        deliver_policy: consumer::DeliverPolicy::ByStartSequence {
            start_sequence: after + 1,
        },
        ack_policy: consumer::AckPolicy::None,
        inactive_threshold: Duration::from_secs(60),
        ..Default::default()
    };
    let mut consumer = stream
        .create_consumer(config)
        .await
        .map_err(|e| failed(&e))?;
    let mut left = consumer.info().await.map_err(|e| failed(&e))?.num_pending;
    let mut plan = Plan::default();
    while left > 0 {
        let mut messages = consumer
            .batch()
            .max_messages(usize::try_from(left.min(1000)).unwrap_or(1000))
            .max_bytes(pull_bytes(context))
            .expires(Duration::from_secs(5))
            .messages()
            .await
            .map_err(|e| failed(&e))?;
        let before = left;
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(message) => message,
                Err(e) if full(&e) => break,
                Err(e) => return Err(failed(&e)),
            };
            let ids = message
                .payload
                .split(|&b| b == b'\n')
                .map(|line| {
                    let cursor = (settings.id == MessageId::Cursor)
                        .then(|| cursor_of(line))
                        .flatten();
                    pack::id_hash(&id_of(
                        settings.id,
                        &settings.subject,
                        line,
                        cursor.as_deref(),
                    ))
                })
                .collect();
            if !plan.landed(ids) {
                (settings.server.warn)(&format!(
                    "{}: more than {} records on {} past the stream sequence kept beside the \
                     ack file; the rest is packed anew (and may be kept twice)",
                    url,
                    pack::PLAN_RECORDS,
                    settings.subject
                ));
                left = 0;
                break;
            }
            left -= 1;
        }
        if left == before {
            return Err(failed(&"no messages came"));
        }
    }
    let name = consumer.cached_info().name.clone();
    let _ = stream.delete_consumer(&name).await;
    Ok(plan)
}

async fn publish_loop(
    settings: &PublishSettings,
    rx: &mut tokio::sync::mpsc::Receiver<Ahead<Read>>,
    counts: &mut PublishCounts,
    progress: &mut impl FnMut(&PublishCounts),
) -> Result<(), Error> {
    let server = &settings.server;
    let client = connect(server).await?;
    // The bound on messages in flight is this loop's own. The client's must never bind:
    // after a lost connection the confirms dropped for a re-send keep its permits until
    // its ack timeout, and the re-send would wait for them.
    let context = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(5))
        .ack_timeout(Duration::from_secs(5))
        .max_ack_inflight(settings.max_in_flight.saturating_mul(16).max(1 << 16))
        .build(client);
    let stream = ensure_stream(&context, &settings.stream, &settings.subject).await?;
    let mut plan = Plan::default();
    if let Some(path) = &settings.sequence {
        match pack::read_sequence(path)? {
            Some(after) => {
                // A stream made again since starts its sequence anew.
                let after = after.min(stream.cached_info().state.last_sequence);
                counts.sequence = after;
                plan = landed(&context, &stream, settings, after).await?;
            }
            None => {
                counts.sequence = stream.cached_info().state.last_sequence;
                pack::write_sequence(path, counts.sequence)?;
            }
        }
    }
    let mut out = Sender {
        context: &context,
        subject: &settings.subject,
        most: settings.pack.max(1),
        pack: Pack::new(),
        plan,
        target: None,
        pending: VecDeque::with_capacity(settings.max_in_flight),
        pending_bytes: 0,
    };
    let mut end: Option<u64> = None;
    let mut last_ack = Instant::now();
    let mut failing_since: Option<Instant> = None;
    loop {
        if let Some(signal) = (server.stop)() {
            return Err(Error::Interrupted(signal));
        }
        if let (Some(total), true) = (end, out.pending.is_empty()) {
            counts.done = total;
            return Ok(());
        }
        let room = out.room(settings.max_in_flight) && end.is_none();
        let lingering = room && out.may_linger();
        let linger = tokio::time::sleep_until((out.pack.opened + settings.linger).into());
        let waiting = out.pending.front().is_some_and(|p| p.confirm.is_some());
        let unsent = out.pending.front().is_some_and(|p| p.confirm.is_none());
        let front = out.pending.front_mut().and_then(|p| p.confirm.as_mut());
        let tick = tokio::time::sleep(Duration::from_millis(200));
        tokio::select! {
            read = rx.recv(), if room => match read {
                Some(Ahead::Item(index, read)) => out.add(index, read).await,
                Some(Ahead::End(total)) => {
                    end = Some(total);
                    if !out.pack.is_empty() {
                        out.send().await;
                    }
                }
                Some(Ahead::Failed(err)) => return Err(err),
                None => return Err(Error::failed("the input thread stopped")),
            },
            () = linger, if lingering => {
                // What the input has ready goes in first: the pack is cut early only when
                // nothing is, or the input has ended.
                let sent = out.pending.len();
                while out.pending.len() == sent {
                    match rx.try_recv() {
                        Ok(Ahead::Item(index, read)) => out.add(index, read).await,
                        Ok(Ahead::End(total)) => {
                            end = Some(total);
                            out.send().await;
                        }
                        Ok(Ahead::Failed(err)) => return Err(err),
                        Err(tokio::sync::mpsc::error::TryRecvError::Empty) => out.send().await,
                        Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                            return Err(Error::failed("the input thread stopped"));
                        }
                    }
                }
            },
            confirmed = async { front.expect("a confirm to wait for").await }, if waiting => {
                match confirmed {
                    Ok(ack) => {
                        let first = out.confirmed();
                        let done = first.as_ref().map_or(0, |p| p.last);
                        if let Some(cursor) = first.and_then(|p| p.cursor) {
                            counts.cursor = Some(cursor);
                        }
                        // A duplicate's is the sequence of the message it repeats.
                        counts.sequence = counts.sequence.max(ack.sequence);
                        // Bad lines between confirmed ones are done too (those after the
                        // last, once the input has ended: at the loop's top).
                        counts.done = out.pending.front().map_or(done, |next| next.first - 1);
                        counts.confirmed += 1;
                        counts.duplicates += u64::from(ack.duplicate);
                        failing_since = None;
                    }
                    Err(err) => {
                        let since = *failing_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > server.retry_for {
                            return Err(Error::failed(format!(
                                "{}: no confirm for {:?}: {err}",
                                server.url, server.retry_for
                            )));
                        }
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        // Everything not confirmed is sent again, in order, under the same
                        // ids: what did land is dropped by the stream as a duplicate.
                        for item in out.pending.iter_mut() {
                            item.confirm = send(&context, &settings.subject, &item.payload, &item.id).await;
                            counts.resent += 1;
                        }
                    }
                }
            },
            () = tick, if unsent => {
                // A send that failed at once: try them again.
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > server.retry_for {
                    return Err(Error::failed(format!(
                        "{}: cannot publish for {:?}",
                        server.url, server.retry_for
                    )));
                }
                for item in out.pending.iter_mut().filter(|p| p.confirm.is_none()) {
                    item.confirm = send(&context, &settings.subject, &item.payload, &item.id).await;
                    counts.resent += 1;
                }
            }
        }
        if last_ack.elapsed() >= Duration::from_secs(1) {
            last_ack = Instant::now();
            write_acks(settings, counts)?;
            progress(counts);
        }
    }
}

/// Publishes one message; its confirm, or `None` when it could not even be sent.
async fn send(
    context: &jetstream::Context,
    subject: &str,
    payload: &bytes::Bytes,
    id: &str,
) -> Option<Confirm> {
    let message = jetstream::message::PublishMessage::build()
        .payload(payload.clone())
        .message_id(id);
    match context.send_publish(subject.to_owned(), message).await {
        Ok(confirm) => Some(confirm.into_future()),
        Err(_) => None,
    }
}

/// What `nats-sub` does.
#[derive(Debug, Clone)]
pub struct SubscribeSettings {
    /// Where from.
    pub server: Server,
    /// The stream, when it is missing.
    pub stream: StreamSpec,
    /// The subject (wildcards allowed) to take.
    pub subject: String,
    /// A durable consumer's name: a rerun goes on where the last one acknowledged.
    pub durable: Option<String>,
    /// Start at new messages instead of the stream's first (for a new consumer).
    pub new_only: bool,
    /// Messages written before they are acknowledged at once.
    pub batch: usize,
    /// How long the server waits for an acknowledgement before it delivers a message again
    /// (what a killed run left unacknowledged comes again after this).
    pub ack_wait: Duration,
    /// End (0) when no message came for this long.
    pub idle: Option<Duration>,
    /// End (0) after this many records (the message that reaches it written whole).
    pub count: Option<u64>,
    /// The sink's ack file: a record is acknowledged only once the cursor written there
    /// has passed the one this run gave it.
    pub ack: Option<PathBuf>,
    /// Closes the output (so the sink sees its end and acknowledges the rest).
    pub close_output: fn() -> std::io::Result<()>,
    /// Whether the output's reader has gone (a dead sink, while waiting for its ack).
    pub output_gone: fn() -> bool,
}

/// Writes every message on the subject to `out`, as its lines (one record, or several
/// from `nats-pub --pack`), acknowledging a batch's messages once they are written and
/// flushed. Returns the number of records written.
pub fn subscribe(
    settings: SubscribeSettings,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(&SubscribeCounts),
) -> Result<u64, Error> {
    runtime()?.block_on(subscribe_loop(&settings, out, progress))
}

/// Where a subscribe run is, for a status line.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubscribeCounts {
    /// Records written.
    pub written: u64,
    /// Of those, the ones waiting for the sink's acknowledgement (with `ack`).
    pub waiting: u64,
}

async fn subscribe_loop(
    settings: &SubscribeSettings,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(&SubscribeCounts),
) -> Result<u64, Error> {
    let server = &settings.server;
    let client = connect(server).await?;
    let context = jetstream::new(client);
    let stream = ensure_stream(&context, &settings.stream, &settings.subject).await?;
    let batch = settings.batch.max(1);
    let config = consumer::pull::Config {
        durable_name: settings.durable.clone(),
        filter_subject: settings.subject.clone(),
        ack_policy: consumer::AckPolicy::Explicit,
        deliver_policy: match settings.new_only {
            true => consumer::DeliverPolicy::New,
            false => consumer::DeliverPolicy::All,
        },
        max_ack_pending: i64::try_from(batch * 4).unwrap_or(i64::MAX),
        ack_wait: settings.ack_wait,
        inactive_threshold: match settings.durable {
            Some(_) => Duration::ZERO,
            None => Duration::from_secs(60),
        },
        ..Default::default()
    };
    let consumer: consumer::PullConsumer = match &settings.durable {
        Some(name) => stream.get_or_create_consumer(name, config).await,
        None => stream.create_consumer(config).await,
    }
    .map_err(|e| Error::failed(format!("{}: consumer: {e}", server.url)))?;
    let reads = &consumer.cached_info().config.filter_subject;
    if let (Some(name), false) = (&settings.durable, *reads == settings.subject) {
        return Err(Error::failed(format!(
            "the durable consumer {name} reads {reads}, not {} (name another with --durable)",
            settings.subject
        )));
    }
    let mut written = 0u64;
    let mut quiet_since = Instant::now();
    let mut failing_since: Option<Instant> = None;
    let mut trail = settings.ack.as_deref().map(Trail::new);
    // At most what the consumer lets be unacknowledged waits for the sink.
    let most = batch * 4;
    loop {
        if let Some(signal) = (server.stop)() {
            return Err(Error::Interrupted(signal));
        }
        progress(&SubscribeCounts {
            written,
            waiting: trail.as_ref().map_or(0, |t| t.waiting.len() as u64),
        });
        // Only what will be written is asked for: nothing waits unacknowledged in this
        // process when it stops. (A message holds one record at least.)
        let want = match settings.count {
            Some(n) if written >= n => return finish(settings, out, trail, written).await,
            Some(n) => batch.min(usize::try_from(n - written).unwrap_or(usize::MAX)),
            None => batch,
        };
        let want = match &mut trail {
            Some(trail) => {
                trail.settle(settings).await?;
                // A sink that died acknowledges nothing more: what waits comes again.
                if !trail.waiting.is_empty() && (settings.output_gone)() {
                    return Err(stdout(std::io::ErrorKind::BrokenPipe.into()));
                }
                let room = most.saturating_sub(trail.waiting.len());
                if room == 0 {
                    // The sink has the rest: wait for its trail to move.
                    trail.stalled(settings);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                want.min(room)
            }
            None => want,
        };
        let mut messages = match consumer
            .batch()
            .max_messages(want)
            .max_bytes(pull_bytes(&context))
            .expires(Duration::from_millis(500))
            .messages()
            .await
        {
            Ok(messages) => {
                failing_since = None;
                messages
            }
            Err(e) => {
                let since = *failing_since.get_or_insert_with(|| {
                    (server.warn)(&format!("{}: {e}; trying again", server.url));
                    Instant::now()
                });
                if since.elapsed() > server.retry_for {
                    return Err(Error::failed(format!(
                        "{}: no messages for {:?}: {e}",
                        server.url, server.retry_for
                    )));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        let written_before = written;
        let mut written_now: Vec<jetstream::Message> = Vec::with_capacity(want);
        while let Some(message) = messages.next().await {
            match message {
                Ok(message) => {
                    written += 1 + memchr::memchr_iter(b'\n', &message.payload).count() as u64;
                    if let Some(trail) = &mut trail {
                        if let Some(n) = trail.stamp(&message.payload, out)? {
                            trail.waiting.push_back((n, message));
                            continue;
                        }
                    } else {
                        out.write_all(&message.payload).map_err(stdout)?;
                        out.write_all(b"\n").map_err(stdout)?;
                    }
                    written_now.push(message);
                }
                Err(e) if full(&e) => break,
                Err(e) => {
                    (server.warn)(&format!("{}: {e}", server.url));
                    break;
                }
            }
        }
        // The batch is written out, then each message acknowledged; the last one waits
        // for the server's word, which comes after every acknowledgement before it.
        // (Acknowledging the last alone, as AckPolicy::All would, also acknowledges a
        // batch a killed run left behind before it is delivered again.)
        if written == written_before {
            if settings
                .idle
                .is_some_and(|idle| quiet_since.elapsed() >= idle)
            {
                return finish(settings, out, trail, written).await;
            }
            continue;
        }
        out.flush().map_err(stdout)?;
        acknowledge(written_now, &server.url).await?;
        quiet_since = Instant::now();
    }
}

/// Acknowledges `messages`; the last one waits for the server's word, which comes after
/// every acknowledgement before it.
async fn acknowledge(
    messages: impl IntoIterator<Item = jetstream::Message>,
    url: &str,
) -> Result<(), Error> {
    let failed = |e: async_nats::Error| Error::failed(format!("{url}: acknowledging: {e}"));
    let mut last = None;
    for message in messages {
        if let Some(before) = last.replace(message) {
            before.ack().await.map_err(failed)?;
        }
    }
    match last {
        Some(last) => last.double_ack().await.map_err(failed),
        None => Ok(()),
    }
}

/// The end of a run: with a trail, the output is closed so the sink sends the rest, and its
/// acknowledgements are waited for (up to the ack wait, after which the stream delivers
/// what is left again anyway).
async fn finish(
    settings: &SubscribeSettings,
    out: &mut dyn Write,
    trail: Option<Trail>,
    written: u64,
) -> Result<u64, Error> {
    let Some(mut trail) = trail else {
        return Ok(written);
    };
    out.flush().map_err(stdout)?;
    (settings.close_output)().map_err(stdout)?;
    let deadline = Instant::now() + settings.ack_wait;
    loop {
        trail.settle(settings).await?;
        if trail.waiting.is_empty() {
            return Ok(written);
        }
        if let Some(signal) = (settings.server.stop)() {
            return Err(Error::Interrupted(signal));
        }
        if Instant::now() >= deadline {
            return Err(Error::failed(format!(
                "{}: {} of the records written were not acknowledged there within --ack-wait \
                 (the stream delivers them again)",
                trail.file.display(),
                trail.waiting.len()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sink's acknowledgement trail: written messages wait here, unacknowledged, until the
/// cursor in the sink's ack file reaches the one this run gave them.
struct Trail {
    file: PathBuf,
    /// `nats-sub:RUN:`, this run's cursors' prefix (a cursor of another run acknowledges
    /// nothing here).
    prefix: String,
    /// The next record's number in this run (from 1).
    next: u64,
    waiting: VecDeque<(u64, jetstream::Message)>,
    /// When the waiting messages' ack wait was last extended.
    extended: Instant,
    /// When the sink last acknowledged something (or nothing was waiting), and whether
    /// its silence since was reported.
    moved: Instant,
    warned: bool,
    /// The line being written and its cursor (kept for their buffers).
    line: Vec<u8>,
    cursor: String,
}

impl Trail {
    fn new(file: &Path) -> Trail {
        Trail {
            file: file.to_owned(),
            prefix: format!("nats-sub:{:016x}:", rand::random::<u64>()),
            next: 1,
            waiting: VecDeque::new(),
            extended: Instant::now(),
            moved: Instant::now(),
            warned: false,
            line: Vec::new(),
            cursor: String::new(),
        }
    }

    /// Writes each line of `payload` with this run's next cursor in place of its own; the
    /// last cursor's number, or `None` when no line is a JSON object that can carry one
    /// (such lines are written as they are).
    fn stamp(&mut self, payload: &[u8], out: &mut dyn Write) -> Result<Option<u64>, Error> {
        let mut last = None;
        for line in payload.split(|&b| b == b'\n') {
            self.cursor.clear();
            let _ = write!(self.cursor, "{}{}", self.prefix, self.next);
            if with_cursor(line, &self.cursor, &mut self.line) {
                self.line.push(b'\n');
                out.write_all(&self.line).map_err(stdout)?;
                last = Some(self.next);
                self.next += 1;
            } else {
                out.write_all(line).map_err(stdout)?;
                out.write_all(b"\n").map_err(stdout)?;
            }
        }
        Ok(last)
    }

    /// Says once when every record nats-sub may hold waits for the sink, and the sink has
    /// acknowledged nothing for the ack wait (a sink not writing its ack to this file).
    fn stalled(&mut self, settings: &SubscribeSettings) {
        if !self.warned && self.moved.elapsed() >= settings.ack_wait {
            self.warned = true;
            (settings.server.warn)(&format!(
                "{}: the sink has acknowledged nothing for {} and {} records wait for it \
                 (is it writing its --ack to this file?)",
                self.file.display(),
                humantime::format_duration(settings.ack_wait),
                self.waiting.len()
            ));
        }
    }

    /// The number of the last record the sink acknowledged in this run, if any.
    fn acknowledged(&self) -> Option<u64> {
        let text = std::fs::read_to_string(&self.file).ok()?;
        text.trim_end().strip_prefix(&self.prefix)?.parse().ok()
    }

    /// Acknowledges every waiting message the sink's trail has passed; asks for more time
    /// for the others when a third of the ack wait has gone by.
    async fn settle(&mut self, settings: &SubscribeSettings) -> Result<(), Error> {
        let url = &settings.server.url;
        let upto = self.acknowledged().unwrap_or(0);
        if self.waiting.front().is_none_or(|(n, _)| *n <= upto) {
            self.moved = Instant::now();
            self.warned = false;
        }
        // Numbered in writing order: the passed ones are a prefix.
        let passed = self.waiting.partition_point(|(n, _)| *n <= upto);
        acknowledge(self.waiting.drain(..passed).map(|(_, m)| m), url).await?;
        let failed = |e: async_nats::Error| Error::failed(format!("{url}: acknowledging: {e}"));
        if self.waiting.is_empty() || self.extended.elapsed() < settings.ack_wait / 3 {
            return Ok(());
        }
        for (_, message) in &self.waiting {
            message
                .ack_with(jetstream::AckKind::Progress)
                .await
                .map_err(failed)?;
        }
        self.extended = Instant::now();
        Ok(())
    }
}

/// `line` (a JSON object) with its `cursor` field set to `cursor`, into `into`; false if
/// `line` is not a JSON object.
fn with_cursor(line: &[u8], cursor: &str, into: &mut Vec<u8>) -> bool {
    type Fields<'a> = indexmap::IndexMap<Text<'a>, &'a serde_json::value::RawValue>;
    let Ok(mut fields) = serde_json::from_slice::<Fields>(line) else {
        return false;
    };
    fields.shift_remove(&Text("cursor".into()));
    into.clear();
    if serde_json::to_writer(&mut *into, &fields).is_err() {
        return false;
    }
    into.pop();
    if !fields.is_empty() {
        into.push(b',');
    }
    // The cursor is plain text (no character JSON escapes).
    let _ = write!(into, "\"cursor\":\"{cursor}\"}}");
    true
}

/// A failure to write the output.
fn stdout(e: std::io::Error) -> Error {
    Error::io("<stdout>", e)
}

/// Connects, trying again with backoff for `retry_for`.
async fn connect(server: &Server) -> Result<async_nats::Client, Error> {
    let started = Instant::now();
    let mut wait = Duration::from_millis(100);
    loop {
        let mut options = async_nats::ConnectOptions::new()
            .name(&server.name)
            .connection_timeout(Duration::from_secs(5))
            .require_tls(server.tls_required);
        if let Some(path) = &server.creds {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| Error::failed(format!("{}: {e}", path.display())))?;
        }
        if let Some((user, password)) = &server.user {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &server.token {
            options = options.token(token.clone());
        }
        if let Some(ca) = &server.tls_ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &server.tls_cert {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        let addrs = server
            .url
            .split(',')
            .map(|url| url.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Usage(format!("{}: {e}", server.url)))?;
        match options.connect(addrs.as_slice()).await {
            Ok(client) => return Ok(client),
            Err(e) if started.elapsed() < server.retry_for && (server.stop)().is_none() => {
                let _ = e;
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(Error::failed(format!("{}: {e}", server.url))),
        }
    }
}

/// The stream that takes `subject`, created with `spec` when there is none.
async fn ensure_stream(
    context: &jetstream::Context,
    spec: &StreamSpec,
    subject: &str,
) -> Result<stream::Stream, Error> {
    let (name, subjects) = spec.for_subject(subject);
    let config = stream::Config {
        name: name.clone(),
        subjects,
        max_age: spec.max_age,
        max_bytes: spec.max_bytes,
        duplicate_window: spec.duplicate_window,
        num_replicas: spec.replicas.max(1),
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::Old,
        retention: stream::RetentionPolicy::Limits,
        ..Default::default()
    };
    let stream = context
        .get_or_create_stream(config)
        .await
        .map_err(|e| Error::failed(format!("stream {name}: {e}")))?;
    // A stream of that name made for other subjects would swallow nothing of ours.
    let taken = &stream.cached_info().config.subjects;
    if !taken.iter().any(|pattern| covers(pattern, subject)) {
        return Err(Error::failed(format!(
            "stream {name} takes {}, not {subject} (name another with --stream)",
            taken.join(", ")
        )));
    }
    Ok(stream)
}

/// Whether every subject `subject` names (it may hold wildcards) matches `pattern`.
fn covers(pattern: &str, subject: &str) -> bool {
    let (mut pattern, mut subject) = (pattern.split('.'), subject.split('.'));
    loop {
        match (pattern.next(), subject.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(token)) if token != ">" => {}
            (Some(want), Some(token)) if want == token && !matches!(token, "*" | ">") => {}
            _ => return false,
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Error::failed(format!("cannot start the I/O runtime: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subjects_stream_takes_its_first_token_and_everything_under_it() {
        let spec = StreamSpec {
            name: None,
            max_age: Duration::ZERO,
            max_bytes: -1,
            duplicate_window: Duration::ZERO,
            replicas: 1,
        };
        assert_eq!(
            spec.for_subject("gridftp.host-1"),
            (
                "GRIDFTP".to_owned(),
                vec!["gridftp".into(), "gridftp.>".into()]
            )
        );
        assert_eq!(spec.for_subject("gridftp.>").0, "GRIDFTP");
        assert_eq!(spec.for_subject("a:b").0, "A_B");
    }

    #[test]
    fn a_pattern_covers_the_subjects_it_matches_and_no_wider_filter() {
        assert!(covers("gridftp.>", "gridftp.h1"));
        assert!(covers("gridftp.>", "gridftp.>"));
        assert!(covers("gridftp.>", "gridftp.a.b"));
        assert!(covers("gridftp.*", "gridftp.*"));
        assert!(covers("gridftp", "gridftp"));
        assert!(!covers("gridftp", "gridftp.h1"));
        assert!(!covers("gridftp.*", "gridftp.>"));
        assert!(!covers("gridftp.h1", "gridftp.*"));
        assert!(!covers("gridftp.>", "gridftp"));
        assert!(!covers("other.>", "gridftp.h1"));
    }

    #[test]
    fn a_records_cursor_is_replaced_in_place_and_the_rest_kept_as_written() {
        let stamped = |line: &str| {
            let mut into = Vec::new();
            with_cursor(line.as_bytes(), "nats-sub:ab:7", &mut into)
                .then(|| String::from_utf8(into).unwrap())
        };
        assert_eq!(
            stamped(r#"{"kind":"measurement","ts":5,"values":{"x":1.50},"cursor":"g:1"}"#)
                .as_deref(),
            Some(r#"{"kind":"measurement","ts":5,"values":{"x":1.50},"cursor":"nats-sub:ab:7"}"#)
        );
        assert_eq!(
            stamped(r#"{"cur\u0073or":"old", "b" : [1, 2]}"#).as_deref(),
            Some(r#"{"b":[1, 2],"cursor":"nats-sub:ab:7"}"#)
        );
        assert_eq!(
            stamped("{}").as_deref(),
            Some(r#"{"cursor":"nats-sub:ab:7"}"#)
        );
        assert_eq!(stamped("[1]"), None);
        assert_eq!(stamped("plain text"), None);
        assert_eq!(stamped(r#"{"a":1"#), None);
    }

    proptest::proptest! {
        /// Any object gets the cursor and keeps every other field; anything else is left.
        #[test]
        fn any_object_takes_a_cursor_and_keeps_the_rest(
            object in proptest::collection::btree_map("[a-c\"]{1,2}|cursor", crate::fields::tests::json_value(), 0..6),
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
        ) {
            let object: serde_json::Map<String, serde_json::Value> = object.into_iter().collect();
            let mut into = Vec::new();
            proptest::prop_assert!(with_cursor(serde_json::to_string(&object).unwrap().as_bytes(), "n:1", &mut into));
            let mut want = object.clone();
            want.shift_remove("cursor");
            want.insert("cursor".into(), serde_json::json!("n:1"));
            let got: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&into).unwrap();
            proptest::prop_assert_eq!(got, want);
            if with_cursor(&noise, "n:1", &mut into) {
                let got: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&into).unwrap();
                proptest::prop_assert_eq!(&got["cursor"], "n:1");
            }
        }
    }

    #[test]
    fn message_ids_are_the_lines_hash_or_the_subject_and_cursor() {
        let line = br#"{"kind":"measurement","cursor":"/var/log/gridftp.log:1234"}"#;
        let hashed = message_id(MessageId::Hash, "x", line);
        assert_eq!(hashed.len(), 40);
        assert_eq!(hashed, message_id(MessageId::Hash, "y", line));
        assert_ne!(hashed, message_id(MessageId::Hash, "x", b"{}"));
        assert_eq!(
            message_id(MessageId::Cursor, "gridftp.h1", line),
            "gridftp.h1:/var/log/gridftp.log:1234"
        );
        assert_eq!(
            message_id(MessageId::Cursor, "x", b"{}"),
            message_id(MessageId::Hash, "x", b"{}")
        );
    }
}
