//! The archive sink: measurement records into an esmond archive, losing nothing.
//!
//! The policy lives here, apart from any transport and any command line:
//!
//! * **identity and cache**: a metadata's identity is SHA-256 of the archive root and the
//!   metadata with sorted keys; its archive key is created once (get-or-create POST) and
//!   remembered in the key cache ([`super::keys`]) between runs, so cron runs do not
//!   re-POST it, in bounded memory however many metadata a run sees;
//! * **batching**: values go in bulk PUTs grouped by metadata, flushed every `batch_size`
//!   points and at the end;
//! * **acknowledgement**: after a flush has landed, the cursor of its last record is
//!   written atomically to the ack file; the producer resumes after it;
//! * **splitting**: a real esmond's PUT is not atomic and answers 409 for a duplicate: such
//!   a batch is split and sent point by point, and duplicates count as delivered;
//! * **forgotten keys**: a 404 on a PUT (a rebuilt archive) creates the metadata again once;
//! * **retries**: a connection error, a 5xx or a 429 is retried with exponential backoff
//!   and full jitter, or after the server's `Retry-After`; any other 4xx is not retried
//!   (the request itself is wrong).
//!
//! A [`Transport`] sends one request; [`super::client::Http`] is the real one and
//! [`DryRun`] prints the requests instead.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::bulk::{self, Item, Point};
pub use super::keys::RECENT;
use super::keys::{self, Keys};
use crate::error::{Error, Location};
use crate::ndjson::NdjsonWriter;
use crate::record::{RawMeasurement, Text};
use crate::state;

/// What the archive answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body text.
    pub body: String,
    /// The `Retry-After` header, in seconds, if the server sent one.
    pub retry_after: Option<Duration>,
}

impl Answer {
    /// An answer without `Retry-After`.
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Answer {
            status,
            body: body.into(),
            retry_after: None,
        }
    }

    /// esmond's `detail` message, or the start of the body.
    pub fn detail(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| self.body.chars().take(200).collect())
    }

    fn retryable(&self) -> bool {
        self.status >= 500 || self.status == 429
    }
}

/// Sends one request to the archive.
pub trait Transport {
    /// Sends `method url body` (a JSON body); an `Err` is a failure to get any answer
    /// (connection refused, timeout), in words.
    fn send(&mut self, method: &str, url: &str, body: &[u8]) -> Result<Answer, String>;

    /// Waits before a retry (a fake transport records it instead).
    fn pause(&mut self, delay: Duration) {
        std::thread::sleep(delay);
    }

    /// Another transport to the same archive, for a request sent from another thread
    /// (sharing kept-alive connections where it can). `None` (the default): requests go
    /// one at a time.
    fn fork(&self) -> Option<Box<dyn Transport + Send>> {
        None
    }
}

/// When and how often to retry.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Retries after the first attempt.
    pub retries: u32,
    /// First backoff; doubles each retry (with full jitter), capped at `max_delay`.
    pub backoff: Duration,
    /// The longest wait, also for a server's `Retry-After`.
    pub max_delay: Duration,
}

/// How the sink delivers.
#[derive(Debug, Clone)]
pub struct Config {
    /// The archive root URL, ending with `/` (`…/perfsonar/archive/`).
    pub root: String,
    /// Points per bulk PUT.
    pub batch_size: u64,
    /// The retry policy.
    pub retry: Retry,
    /// Write the cursor of the last delivered record here, atomically.
    pub ack: Option<PathBuf>,
    /// The metadata-key cache file.
    pub cache: Option<PathBuf>,
    /// Metadata texts whose keys are remembered in memory ([`keys::RECENT`]).
    pub recent: usize,
    /// Nothing is really delivered (a [`DryRun`] transport): keep neither cache nor ack.
    pub dry_run: bool,
    /// Use measpipe's batch API (`POST {root}records/`) when the archive has it (asked
    /// once, before the first record); else, or when false, the esmond API.
    pub records_api: bool,
    /// A point the archive refuses (400) stops the run ([`SinkError::RefusedPoint`])
    /// instead of being set aside for [`Sink::take_refused`].
    pub stop_on_refused: bool,
    /// Batch-API requests under way at once (1: one at a time). Their answers are taken,
    /// and acknowledged, in the order they were sent.
    pub in_flight: usize,
    /// Receives a warning for every retry (attempt, wait, cause).
    pub warn: fn(&str),
}

/// Why a record was not taken, or the run must stop.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The archive refused the record's metadata (4xx): a bad record, not a failed run.
    #[error("the archive refused the metadata: HTTP {status}: {detail}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// esmond's message.
        detail: String,
    },
    /// The archive refused a record (its point, or with measpipe's batch API its
    /// metadata), under `stop_on_refused`.
    #[error("{location}: the archive refused the {part}: HTTP 400: {detail}")]
    RefusedPoint {
        /// What the archive refused: `metadata` or `point`.
        part: &'static str,
        /// Where the record was read.
        location: Location,
        /// esmond's message.
        detail: String,
        /// The input line.
        line: Vec<u8>,
    },
    /// Delivery failed; only acknowledged records were delivered.
    #[error("{0}")]
    Failed(String),
    /// Writing the ack, the cache or dry-run output failed.
    #[error("{0}")]
    Local(#[from] Error),
}

impl From<SinkError> for Error {
    fn from(err: SinkError) -> Self {
        match err {
            SinkError::Local(err) => err,
            other => Error::Failed(other.to_string()),
        }
    }
}

/// Counts for the exit summary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Records taken.
    pub records: u64,
    /// Points taken.
    pub points: u64,
    /// Requests sent, retries included.
    pub requests: u64,
    /// Retries after a failure.
    pub retries: u64,
    /// Points the archive already had, with the same value (409).
    pub duplicates: u64,
    /// Points the archive had with another value (409): kept by the archive, set aside.
    pub conflicts: u64,
    /// Points refused.
    pub failures: u64,
}

impl std::fmt::Display for Totals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "records {}, points {}, requests {}, retries {}, duplicates {}, conflicts {}, failures {}",
            self.records,
            self.points,
            self.requests,
            self.retries,
            self.duplicates,
            self.conflicts,
            self.failures
        )
    }
}

/// The bulk items waiting for one metadata key, serialised back to back, with the input
/// line of each (to name and keep a point the archive refuses); no allocation per record.
struct Batch {
    key: Arc<str>,
    items: Vec<u8>,
    ends: Vec<usize>,
    lines: Vec<u8>,
    line_ends: Vec<usize>,
    locations: Vec<Location>,
    /// Each item's place in the input, across batches.
    seqs: Vec<u64>,
}

/// One item of a batch with where it came from.
#[derive(Clone, Copy)]
struct Entry<'b> {
    seq: u64,
    item: &'b [u8],
    line: &'b [u8],
    location: &'b Location,
}

impl Batch {
    fn entries(&self) -> Vec<Entry<'_>> {
        let (mut start, mut line_start) = (0, 0);
        self.ends
            .iter()
            .zip(&self.line_ends)
            .zip(&self.locations)
            .zip(&self.seqs)
            .map(|(((&end, &line_end), location), &seq)| {
                let entry = Entry {
                    seq,
                    item: &self.items[start..end],
                    line: &self.lines[line_start..line_end],
                    location,
                };
                start = end + 1;
                line_start = line_end;
                entry
            })
            .collect()
    }
}

/// A record whose point the archive refused, set aside for the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// What the archive refused: `metadata` or `point`.
    pub part: &'static str,
    /// Where the record was read.
    pub location: Location,
    /// The archive's message.
    pub detail: String,
    /// The input line.
    pub line: Vec<u8>,
}

/// Records waiting to be sent: batches in first-seen order of their metadata.
#[derive(Default)]
struct Pending {
    batches: Vec<Batch>,
    /// Each key's batch.
    index: HashMap<Arc<str>, usize>,
    /// Items taken so far (the next one's place in the input).
    seq: u64,
    points: u64,
    cursor: Option<String>,
}

/// Which API the archive is spoken to in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// Not asked yet.
    Unknown,
    /// measpipe's batch API (esmond-serve).
    Records,
    /// esmond's REST API.
    Esmond,
}

/// Records for the batch API: their lines back to back, each ended by a newline.
#[derive(Default)]
struct Flat {
    lines: Vec<u8>,
    ends: Vec<usize>,
    locations: Vec<Location>,
}

impl Flat {
    /// Adds a record's line.
    fn push(&mut self, line: &[u8], location: &Location) {
        self.lines.extend_from_slice(line);
        self.lines.push(b'\n');
        self.ends.push(self.lines.len());
        self.locations.push(location.clone());
    }

    /// Record `i`'s line, without its newline.
    fn line(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.lines[start..self.ends[i] - 1]
    }
}

/// One line of the batch API's answer.
#[derive(serde::Deserialize)]
struct RecordAnswer {
    status: String,
    #[serde(default)]
    part: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

/// A batch-API request under way on a thread of its own.
struct Flying {
    flat: Arc<Flat>,
    cursor: Option<String>,
    sent: std::thread::JoinHandle<Sent>,
}

/// What became of a request: the answer (after any retries), the requests it took, and
/// whether its thread wrote the ack (every record answered, none refused under
/// `stop_on_refused`, every earlier request acknowledged), or failed to.
struct Sent {
    answer: Result<Answer, SinkError>,
    requests: u64,
    retries: u64,
    acked: Result<bool, Error>,
}

/// The order in which requests under way acknowledge, so that an ack follows an answer
/// at once (not only when the next batch is sent) and never passes an earlier request:
/// the number of the next request to acknowledge, and whether one could not be (then no
/// later one is).
#[derive(Default)]
struct AckOrder {
    state: std::sync::Mutex<(u64, bool)>,
    turn: std::sync::Condvar,
}

impl AckOrder {
    /// Waits for request `seq`'s turn; acknowledges through `ack` if `clean` (else stops
    /// every later one). Whether it acknowledged.
    fn acknowledge(
        &self,
        seq: u64,
        clean: bool,
        ack: impl FnOnce() -> Result<(), Error>,
    ) -> Result<bool, Error> {
        let mut state = crate::sync::lock(&self.state);
        while state.0 != seq && !state.1 {
            state = self
                .turn
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        let done = match (state.1, clean) {
            (true, _) => Ok(false),
            (false, false) => {
                state.1 = true;
                Ok(false)
            }
            (false, true) => match ack() {
                Ok(()) => {
                    state.0 += 1;
                    Ok(true)
                }
                Err(err) => {
                    state.1 = true;
                    Err(err)
                }
            },
        };
        self.turn.notify_all();
        done
    }
}

/// The archive sink: see the module documentation.
pub struct Sink<T: Transport> {
    config: Config,
    transport: T,
    keys: Keys,
    totals: Totals,
    pending: Pending,
    api: Api,
    /// Records waiting for the batch API, back to back.
    flat: Flat,
    /// Batch-API requests under way, oldest first.
    flying: std::collections::VecDeque<Flying>,
    /// Their acknowledgement order, and the next request's number in it.
    order: Arc<AckOrder>,
    sent: u64,
    refused: Vec<Refused>,
    /// Under `stop_on_refused`, the first refused item of the flush under way (by input
    /// place) and the archive's message.
    stop: Option<(u64, Refused)>,
    conflicts: Vec<Refused>,
}

impl<T: Transport> Sink<T> {
    /// A sink delivering through `transport`; reads the key cache.
    pub fn new(config: Config, transport: T) -> Result<Self, Error> {
        let keys = Keys::open(config.cache.as_deref(), config.dry_run, config.recent)?;
        Ok(Sink {
            transport,
            keys,
            totals: Totals::default(),
            pending: Pending::default(),
            api: if config.records_api && !config.dry_run {
                Api::Unknown
            } else {
                Api::Esmond
            },
            flat: Flat::default(),
            flying: std::collections::VecDeque::new(),
            order: Arc::default(),
            sent: 0,
            refused: Vec::new(),
            stop: None,
            conflicts: Vec::new(),
            config,
        })
    }

    /// Whether records wait to be sent or acknowledged (what a quiet input flushes).
    pub fn holds(&self) -> bool {
        self.pending.cursor.is_some()
            || !self.pending.batches.is_empty()
            || !self.flat.ends.is_empty()
            || !self.flying.is_empty()
    }

    /// Takes note of a record set aside (not sent: a bad line, refused metadata) whose
    /// `cursor` the next acknowledgement may name: it is done with.
    pub fn pass(&mut self, cursor: Option<&str>) {
        if let Some(cursor) = cursor {
            self.pending.cursor = Some(cursor.to_owned());
        }
    }

    /// What was done so far.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// The records whose points the archive holds with other values (a 409 for another
    /// value at the same time), since the last call: the archive keeps its value; the
    /// caller warns and keeps the record.
    pub fn take_conflicts(&mut self) -> Vec<Refused> {
        std::mem::take(&mut self.conflicts)
    }

    /// The records whose points the archive refused since the last call (without
    /// `stop_on_refused`): the caller reports them, counts them and keeps them.
    pub fn take_refused(&mut self) -> Vec<Refused> {
        std::mem::take(&mut self.refused)
    }

    /// Takes one record, read as `line` at `location`; sends a batch when one is full. A
    /// [`SinkError::Refused`] (its metadata) is the record's fault: the caller counts it
    /// and goes on.
    pub fn push(
        &mut self,
        record: &RawMeasurement,
        location: &Location,
        line: &[u8],
    ) -> Result<(), SinkError> {
        if self.api == Api::Unknown {
            self.api = self.probe()?;
        }
        match self.api {
            Api::Records => self.flat.push(line, location),
            _ => self.push_batch(record, location, line)?,
        }
        let points = record.values.len() as u64;
        self.totals.records += 1;
        self.totals.points += points;
        self.pending.points += points;
        if let Some(cursor) = &record.cursor {
            self.pending.cursor = Some(cursor.0.clone().into_owned());
        }
        if self.pending.points >= self.config.batch_size {
            match self.api {
                Api::Records => self.send_flat()?,
                _ => self.flush()?,
            }
        }
        Ok(())
    }

    /// Adds a record to its metadata's batch for esmond's API (its key found or created).
    fn push_batch(
        &mut self,
        record: &RawMeasurement,
        location: &Location,
        line: &[u8],
    ) -> Result<(), SinkError> {
        let text = record.metadata.get();
        let key = match self.keys.recent(text) {
            Some(key) => key,
            None => {
                let metadata: Value = serde_json::from_str(text)
                    .map_err(|e| SinkError::Failed(format!("metadata: {e}")))?;
                let key = self.key_for(&metadata)?;
                self.keys.remember(text, key.clone());
                key
            }
        };
        let item = Item {
            ts: record.ts,
            val: Points(&record.values),
        };
        let at = match self.pending.index.get(&key) {
            Some(&at) => at,
            None => {
                self.pending
                    .index
                    .insert(key.clone(), self.pending.batches.len());
                self.pending.batches.push(Batch {
                    key,
                    items: Vec::new(),
                    ends: Vec::new(),
                    lines: Vec::new(),
                    line_ends: Vec::new(),
                    locations: Vec::new(),
                    seqs: Vec::new(),
                });
                self.pending.batches.len() - 1
            }
        };
        let batch = &mut self.pending.batches[at];
        // Borrowed text and raw JSON always serialise; an item that did not is not counted.
        if bulk::push_item(&mut batch.items, &item) {
            batch.ends.push(batch.items.len());
            batch.lines.extend_from_slice(line);
            batch.line_ends.push(batch.lines.len());
            batch.locations.push(location.clone());
            batch.seqs.push(self.pending.seq);
            self.pending.seq += 1;
        }
        Ok(())
    }

    /// Sends everything pending; on success acknowledges the last record's cursor.
    /// If a batch fails, the rest are dropped unacknowledged (the producer sends them
    /// again next run). Under `stop_on_refused`, a refused point stops the run once the
    /// rest is sent, acknowledging the records before it (all of which landed).
    pub fn flush(&mut self) -> Result<(), SinkError> {
        if self.api == Api::Records {
            return self.flush_flat();
        }
        let batches = std::mem::take(&mut self.pending.batches);
        self.pending.index.clear();
        let mut cursor = self.pending.cursor.take();
        self.pending.points = 0;
        for batch in &batches {
            self.put(&batch.key, &batch.entries())?;
        }
        self.keys.commit()?;
        let stop = self.stop.take();
        if let Some((seq, _)) = &stop {
            cursor = last_cursor_before(&batches, *seq);
        }
        self.acknowledge(cursor, stop.map(|(_, refused)| refused))
    }

    /// Whether the archive has measpipe's batch API: an empty batch answered 200.
    fn probe(&mut self) -> Result<Api, SinkError> {
        let url = format!("{}records/", self.config.root);
        let answer = self.send("POST", &url, b"")?;
        Ok(match answer.status {
            200 => Api::Records,
            _ => Api::Esmond,
        })
    }

    /// Sends the waiting records and every request under way, then acknowledges as
    /// [`Sink::flush`] does.
    fn flush_flat(&mut self) -> Result<(), SinkError> {
        self.send_flat()?;
        while let Some(flying) = self.flying.pop_front() {
            self.land(flying)?;
        }
        Ok(())
    }

    /// Sends the waiting records in one batch-API request (one transaction in the
    /// archive): on a thread of its own when the transport forks and `in_flight` allows,
    /// once the oldest request under way has been answered if as many are; else here.
    fn send_flat(&mut self) -> Result<(), SinkError> {
        let flat = std::mem::take(&mut self.flat);
        let cursor = self.pending.cursor.take();
        self.pending.points = 0;
        if flat.ends.is_empty() {
            // Only records set aside since: acknowledged after every request under way has
            // landed (their acknowledgements come first).
            while let Some(flying) = self.flying.pop_front() {
                self.land(flying)?;
            }
            return self.acknowledge(cursor, None);
        }
        let url = format!("{}records/", self.config.root);
        let transport = match self.config.in_flight > 1 {
            true => self.transport.fork(),
            false => None,
        };
        let Some(mut transport) = transport else {
            let answer = self.send("POST", &url, &flat.lines);
            return self.settle(&flat, cursor, answer);
        };
        if self.flying.len() >= self.config.in_flight {
            let oldest = self.flying.pop_front().expect("a request under way");
            self.land(oldest)?;
        }
        let flat = Arc::new(flat);
        let body = Arc::clone(&flat);
        let (retry, warn) = (self.config.retry, self.config.warn);
        let (order, seq) = (Arc::clone(&self.order), self.sent);
        self.sent += 1;
        let ack = match self.config.dry_run {
            true => None,
            false => self.config.ack.clone(),
        };
        let stop_on_refused = self.config.stop_on_refused;
        let acked_cursor = cursor.clone();
        let sent = std::thread::Builder::new()
            .name("esmond-post-send".into())
            .spawn(move || {
                let mut counts = (0, 0);
                let answer = send_retrying(
                    &mut *transport,
                    retry,
                    warn,
                    ("POST", &url, &body.lines),
                    &mut counts,
                );
                let clean = answer.as_ref().is_ok_and(|answer| {
                    answer.status == 200 && {
                        let answers = record_answers(&answer.body);
                        answers.len() == body.ends.len()
                            && !(stop_on_refused
                                && answers.iter().any(|a| {
                                    !matches!(
                                        a.status.as_str(),
                                        "stored" | "duplicate" | "conflict"
                                    )
                                }))
                    }
                });
                let acked = order.acknowledge(seq, clean, || match (&ack, &acked_cursor) {
                    (Some(ack), Some(cursor)) => {
                        state::write_atomic(ack, format!("{cursor}\n").as_bytes())
                    }
                    _ => Ok(()),
                });
                Sent {
                    answer,
                    requests: counts.0,
                    retries: counts.1,
                    acked,
                }
            })
            .map_err(|e| SinkError::Failed(format!("cannot start a sending thread: {e}")))?;
        self.flying.push_back(Flying { flat, cursor, sent });
        Ok(())
    }

    /// Takes the answer of a request under way. If it failed, the others are waited for
    /// and dropped unacknowledged (they are sent again next run, and found there).
    fn land(&mut self, flying: Flying) -> Result<(), SinkError> {
        let sent = flying.sent.join().unwrap_or_else(|_| Sent {
            answer: Err(SinkError::Failed("a sending thread panicked".into())),
            requests: 0,
            retries: 0,
            acked: Ok(false),
        });
        self.totals.requests += sent.requests;
        self.totals.retries += sent.retries;
        let settled = match sent.acked {
            Err(err) => Err(err.into()),
            // Its thread wrote the ack already.
            Ok(true) => self.settle(&flying.flat, None, sent.answer),
            Ok(false) => self.settle(&flying.flat, flying.cursor, sent.answer),
        };
        if settled.is_err() {
            for rest in std::mem::take(&mut self.flying) {
                if let Ok(sent) = rest.sent.join() {
                    self.totals.requests += sent.requests;
                    self.totals.retries += sent.retries;
                }
            }
        }
        settled
    }

    /// Sorts a batch-API answer per record, then acknowledges the batch's last cursor (or,
    /// under `stop_on_refused`, the last before the first refused record, and stops).
    fn settle(
        &mut self,
        flat: &Flat,
        mut cursor: Option<String>,
        answer: Result<Answer, SinkError>,
    ) -> Result<(), SinkError> {
        let url = format!("{}records/", self.config.root);
        let answer = answer?;
        if answer.status != 200 {
            self.totals.failures += flat.ends.len() as u64;
            return Err(SinkError::Failed(format!(
                "{url}: records refused: HTTP {}: {}",
                answer.status,
                answer.detail()
            )));
        }
        let answers = record_answers(&answer.body);
        if answers.len() != flat.ends.len() {
            return Err(SinkError::Failed(format!(
                "{url}: {} answers for {} records",
                answers.len(),
                flat.ends.len()
            )));
        }
        let mut stop: Option<(usize, Refused)> = None;
        for (i, answer) in answers.into_iter().enumerate() {
            let set_aside = |part: &'static str| Refused {
                part,
                location: flat.locations[i].clone(),
                detail: answer.detail.clone().unwrap_or_default(),
                line: flat.line(i).to_vec(),
            };
            match answer.status.as_str() {
                "stored" => {}
                "duplicate" => self.totals.duplicates += 1,
                "conflict" => {
                    self.totals.conflicts += 1;
                    self.conflicts.push(set_aside("point"));
                }
                _ => {
                    self.totals.failures += 1;
                    let part = match answer.part.as_deref() {
                        Some("metadata") => "metadata",
                        _ => "point",
                    };
                    if !self.config.stop_on_refused {
                        self.refused.push(set_aside(part));
                    } else if stop.is_none() {
                        stop = Some((i, set_aside(part)));
                    }
                }
            }
        }
        if let Some((i, _)) = &stop {
            cursor = (0..*i).rev().find_map(|j| {
                let record: RawMeasurement = serde_json::from_slice(flat.line(j)).ok()?;
                Some(record.cursor?.0.into_owned())
            });
        }
        self.acknowledge(cursor, stop.map(|(_, refused)| refused))
    }

    /// Writes the ack (unless a dry run), then stops at the refused record, if any.
    fn acknowledge(&self, cursor: Option<String>, stop: Option<Refused>) -> Result<(), SinkError> {
        if let (Some(ack), Some(cursor)) = (&self.config.ack, cursor) {
            if !self.config.dry_run {
                state::write_atomic(ack, format!("{cursor}\n").as_bytes())?;
            }
        }
        match stop {
            Some(refused) => Err(SinkError::RefusedPoint {
                part: refused.part,
                location: refused.location,
                detail: refused.detail,
                line: refused.line,
            }),
            None => Ok(()),
        }
    }

    /// Flushes and saves the key cache (the keys are saved even when the flush fails).
    pub fn finish(&mut self) -> Result<(), SinkError> {
        let flushed = self.flush();
        let saved = self.save_cache();
        flushed?;
        saved
    }

    /// Saves the key cache (after a failed run too: the keys it learnt are still valid).
    pub fn save_cache(&mut self) -> Result<(), SinkError> {
        Ok(self.keys.commit()?)
    }

    /// The archive's key for `metadata`, creating it if needed.
    fn key_for(&mut self, metadata: &Value) -> Result<Arc<str>, SinkError> {
        let id = keys::identity(&self.config.root, metadata);
        if let Some(key) = self.keys.get(&id)? {
            return Ok(key);
        }
        let key = self.create(metadata)?;
        self.keys.insert(&id, &key)?;
        Ok(Arc::from(key))
    }

    fn create(&mut self, metadata: &Value) -> Result<String, SinkError> {
        let url = self.config.root.clone();
        let answer = self.send("POST", &url, metadata.to_string().as_bytes())?;
        match answer.status {
            200 | 201 => serde_json::from_str::<Value>(&answer.body)
                .ok()
                .and_then(|v| {
                    v.get("metadata-key")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .ok_or_else(|| {
                    SinkError::Failed(format!(
                        "{url}: the archive answered {} without a metadata-key",
                        answer.status
                    ))
                }),
            // Nothing to create metadata in: the URL or alias is wrong, not the record.
            404 => Err(SinkError::Failed(format!(
                "POST {url}: HTTP 404: {}: no esmond archive at this URL; check --url and --script-alias (esmond-serve and perfSONAR hosts serve /esmond/perfsonar/archive/, the default)",
                answer.detail()
            ))),
            status => Err(SinkError::Refused {
                status,
                detail: answer.detail(),
            }),
        }
    }

    fn put(&mut self, key: &str, entries: &[Entry]) -> Result<(), SinkError> {
        let url = format!("{}{key}/", self.config.root);
        let items: Vec<&[u8]> = entries.iter().map(|e| e.item).collect();
        let answer = self.send("PUT", &url, &bulk::body(&items))?;
        match answer.status {
            200 | 201 => Ok(()),
            // One or more points already there: send them one by one so the rest land.
            409 if entries.len() > 1 => {
                for entry in entries {
                    self.put(key, std::slice::from_ref(entry))?;
                }
                Ok(())
            }
            // Already there: the same value (a re-send), or another one (a conflict).
            409 => {
                let entry = entries[0];
                match self.differs(key, entry.item) {
                    None => self.totals.duplicates += 1,
                    Some(detail) => {
                        self.totals.conflicts += 1;
                        self.conflicts.push(Refused {
                            part: "point",
                            location: entry.location.clone(),
                            detail,
                            line: entry.line.to_vec(),
                        });
                    }
                }
                Ok(())
            }
            // Some point is refused: halve until the refused ones are alone, so the rest
            // land (a real esmond's PUT may have stored part of it; re-sending is safe).
            400 if entries.len() > 1 => {
                let (left, right) = entries.split_at(entries.len() / 2);
                self.put(key, left)?;
                self.put(key, right)
            }
            400 => {
                let entry = entries[0];
                self.totals.failures += 1;
                let detail = answer.detail();
                let refused = Refused {
                    part: "point",
                    location: entry.location.clone(),
                    detail,
                    line: entry.line.to_vec(),
                };
                if !self.config.stop_on_refused {
                    self.refused.push(refused);
                } else if self.stop.as_ref().is_none_or(|(seq, _)| entry.seq < *seq) {
                    self.stop = Some((entry.seq, refused));
                }
                Ok(())
            }
            404 => {
                // The archive forgot the key (a rebuilt archive): create it again, once.
                let forgotten = || {
                    SinkError::Failed(format!("{url}: the archive does not know metadata {key}"))
                };
                // The metadata is in the record's own line.
                let metadata = serde_json::from_slice::<RawMeasurement>(entries[0].line)
                    .ok()
                    .and_then(|record| serde_json::from_str::<Value>(record.metadata.get()).ok())
                    .ok_or_else(forgotten)?;
                self.keys.forget(key)?;
                let fresh = self.key_for(&metadata)?;
                if &*fresh == key {
                    return Err(forgotten());
                }
                self.put(&fresh, entries)
            }
            status => {
                self.totals.failures += entries.len() as u64;
                Err(SinkError::Failed(format!(
                    "{url}: data refused: HTTP {status}: {}",
                    answer.detail()
                )))
            }
        }
    }

    /// Why the archive's points at this item's time differ from the item's, or `None`
    /// when they are the same (read back with one GET per event type).
    fn differs(&mut self, key: &str, item: &[u8]) -> Option<String> {
        let item: bulk::InItem = serde_json::from_slice(item).ok()?;
        let ts: i64 = serde_json::from_str(item.ts?.get()).ok()?;
        let points: Vec<bulk::InPoint> = serde_json::from_str(item.val?.get()).ok()?;
        for point in points {
            let (Some(event_type), Some(val)) = (point.event_type, point.val) else {
                continue;
            };
            let url = format!(
                "{}{key}/{event_type}/base?time-start={ts}&time-end={ts}",
                self.config.root
            );
            let sent: Value = serde_json::from_str(val.get()).ok()?;
            let stored = match self.send("GET", &url, b"") {
                Ok(answer) if answer.status == 200 => serde_json::from_str::<Value>(&answer.body)
                    .ok()
                    .and_then(|v| v.as_array()?.iter().find(|p| p["ts"] == ts).cloned())
                    .map(|p| p["val"].clone()),
                Ok(answer) => {
                    return Some(format!(
                        "{event_type} at {ts} is already stored, and reading it back failed: HTTP {}: {}",
                        answer.status,
                        answer.detail()
                    ))
                }
                Err(err) => {
                    return Some(format!(
                        "{event_type} at {ts} is already stored, and reading it back failed: {err}"
                    ))
                }
            };
            match stored {
                Some(stored) if same(&stored, &sent) => {}
                Some(stored) => {
                    return Some(format!(
                        "the archive holds another {event_type} at {ts}: {stored}, not {sent}"
                    ))
                }
                None => {
                    return Some(format!(
                        "the archive answered 409 for {event_type} at {ts} but holds no point there"
                    ))
                }
            }
        }
        None
    }

    /// Sends with the retry policy of the module documentation.
    fn send(&mut self, method: &str, url: &str, body: &[u8]) -> Result<Answer, SinkError> {
        let mut counts = (0, 0);
        let (retry, warn) = (self.config.retry, self.config.warn);
        let answer = send_retrying(
            &mut self.transport,
            retry,
            warn,
            (method, url, body),
            &mut counts,
        );
        self.totals.requests += counts.0;
        self.totals.retries += counts.1;
        answer
    }
}

/// The batch API's answer, a line per record.
fn record_answers(body: &str) -> Vec<RecordAnswer> {
    body.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Sends `(method, url, body)` with the retry policy of the module documentation, adding
/// the requests sent and the retries to `counts`.
fn send_retrying(
    transport: &mut dyn Transport,
    retry: Retry,
    warn: fn(&str),
    (method, url, body): (&str, &str, &[u8]),
    counts: &mut (u64, u64),
) -> Result<Answer, SinkError> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        counts.0 += 1;
        let (failure, asked) = match transport.send(method, url, body) {
            Ok(answer) if !answer.retryable() => return Ok(answer),
            Ok(answer) => (
                format!("HTTP {}: {}", answer.status, answer.detail()),
                answer.retry_after,
            ),
            Err(err) => (err, None),
        };
        if attempt > retry.retries {
            let hint = if failure.contains("onnection refused") {
                " (is the archive running there? esmond-serve listens on 127.0.0.1:8080 by default; see --url)"
            } else {
                ""
            };
            return Err(SinkError::Failed(format!(
                "{url}: gave up after {attempt} attempts: {failure}{hint}"
            )));
        }
        counts.1 += 1;
        let delay = match asked {
            Some(asked) => asked.min(retry.max_delay),
            None => {
                let ceiling = retry
                    .backoff
                    .saturating_mul(1 << (attempt - 1).min(16))
                    .min(retry.max_delay);
                // Full jitter: overlapping cron runs do not retry in step.
                ceiling.mul_f64(rand::random::<f64>())
            }
        };
        warn(&format!(
            "{method} {url}: attempt {attempt} of {} failed ({failure}); retrying in {:.1} s",
            retry.retries + 1,
            delay.as_secs_f64()
        ));
        transport.pause(delay);
    }
}

/// Where esmond-post keeps its metadata keys unless told:
/// `$XDG_CACHE_HOME/measpipe/esmond-post-keys.db` (else under `~/.cache`).
pub fn default_cache() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache")))?;
    Some(base.join("measpipe").join("esmond-post-keys.db"))
}

/// The cursor of the last record before input place `seq` that has one (read back from its
/// line: only a stopped run needs it).
fn last_cursor_before(batches: &[Batch], seq: u64) -> Option<String> {
    let mut before: Vec<Entry> = batches
        .iter()
        .flat_map(|batch| batch.entries())
        .filter(|entry| entry.seq < seq)
        .collect();
    before.sort_unstable_by_key(|entry| std::cmp::Reverse(entry.seq));
    before.iter().find_map(|entry| {
        let record: RawMeasurement = serde_json::from_slice(entry.line).ok()?;
        Some(record.cursor?.0.into_owned())
    })
}

/// Whether a stored value is the value sent: numbers within the archive's precision (esmond
/// keeps floats to 4 decimals, and `5` reads back as `5.0`), the rest exactly.
fn same(stored: &Value, sent: &Value) -> bool {
    match (stored, sent) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => (a - b).abs() <= 1e-4 + 1e-12 * b.abs(),
            _ => a == b,
        },
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        _ => stored == sent,
    }
}

/// A record's values as the bulk format's list of points, in event-type order.
struct Points<'r, 'a>(&'r BTreeMap<Text<'a>, &'a RawValue>);

impl serde::Serialize for Points<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(event_type, val)| Point {
            event_type: event_type.0.as_ref(),
            val: *val,
        }))
    }
}

/// A transport that prints each request as `{"method","url","body"}` NDJSON and answers
/// as an archive would (a made-up key for a POST, 201 for a PUT), sending nothing.
pub struct DryRun {
    out: NdjsonWriter,
}

impl DryRun {
    /// Prints requests to `out`.
    pub fn new(out: NdjsonWriter) -> Self {
        DryRun { out }
    }
}

#[derive(serde::Serialize)]
struct Request<'a> {
    method: &'a str,
    url: &'a str,
    body: &'a RawValue,
}

impl Transport for DryRun {
    fn send(&mut self, method: &str, url: &str, body: &[u8]) -> Result<Answer, String> {
        let raw: &RawValue = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        self.out
            .write_record(&Request {
                method,
                url,
                body: raw,
            })
            .map_err(|e| e.to_string())?;
        Ok(match method {
            "POST" => {
                let digest = Sha256::digest(body);
                let key: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
                Answer::new(201, format!("{{\"metadata-key\":\"dry-run-{key}\"}}"))
            }
            _ => Answer::new(201, ""),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Answers from a script and records what was sent and every pause.
    #[derive(Default)]
    struct Fake {
        answers: VecDeque<Result<Answer, String>>,
        sent: Vec<(String, String, String)>,
        pauses: Vec<Duration>,
    }

    impl Transport for Fake {
        fn send(&mut self, method: &str, url: &str, body: &[u8]) -> Result<Answer, String> {
            self.sent.push((
                method.into(),
                url.into(),
                String::from_utf8_lossy(body).into(),
            ));
            self.answers
                .pop_front()
                .unwrap_or_else(|| Ok(Answer::new(201, r#"{"metadata-key":"k1"}"#)))
        }
        fn pause(&mut self, delay: Duration) {
            self.pauses.push(delay);
        }
    }

    fn config(retries: u32) -> Config {
        Config {
            root: "http://a/perfsonar/archive/".into(),
            batch_size: 1000,
            retry: Retry {
                retries,
                backoff: Duration::from_millis(100),
                max_delay: Duration::from_secs(30),
            },
            ack: None,
            cache: None,
            recent: keys::RECENT,
            dry_run: false,
            records_api: false,
            stop_on_refused: false,
            in_flight: 1,
            warn: |_| {},
        }
    }

    fn here(line: u64) -> Location {
        Location {
            file: "in".into(),
            line,
        }
    }

    const RECORD: &str = r#"{"kind":"measurement","metadata":{"source":"10.0.0.1","event-types":[]},"ts":5,"values":{"throughput":1.5,"failures":{"error":"x"}},"cursor":"c7"}"#;

    fn sink(answers: Vec<Result<Answer, String>>, retries: u32) -> Sink<Fake> {
        let fake = Fake {
            answers: answers.into(),
            ..Fake::default()
        };
        Sink::new(config(retries), fake).unwrap()
    }

    fn push(sink: &mut Sink<Fake>) -> Result<(), SinkError> {
        let record: RawMeasurement = serde_json::from_str(RECORD).unwrap();
        sink.push(&record, &here(1), RECORD.as_bytes())
    }

    #[test]
    fn server_errors_and_429_are_retried_and_retry_after_is_honoured() {
        let mut busy = Answer::new(429, r#"{"detail":"slow down"}"#);
        busy.retry_after = Some(Duration::from_secs(7));
        let mut s = sink(
            vec![
                Err("connection refused".into()),
                Ok(Answer::new(503, "down")),
                Ok(busy),
                Ok(Answer::new(201, r#"{"metadata-key":"k9"}"#)),
            ],
            5,
        );
        push(&mut s).unwrap();
        s.finish().unwrap();
        let fake = &s.transport;
        assert_eq!(fake.sent.len(), 5, "4 POST attempts and one PUT");
        assert_eq!(fake.pauses.len(), 3);
        assert!(fake.pauses[0] <= Duration::from_millis(100));
        assert!(fake.pauses[1] <= Duration::from_millis(200));
        assert_eq!(fake.pauses[2], Duration::from_secs(7));
        assert_eq!(
            fake.sent[4],
            (
                "PUT".into(),
                "http://a/perfsonar/archive/k9/".into(),
                r#"{"data":[{"ts":5,"val":[{"event-type":"failures","val":{"error":"x"}},{"event-type":"throughput","val":1.5}]}]}"#.into()
            )
        );
        assert_eq!(
            s.totals(),
            Totals {
                records: 1,
                points: 2,
                requests: 5,
                retries: 3,
                duplicates: 0,
                conflicts: 0,
                failures: 0
            }
        );
    }

    #[test]
    fn other_client_errors_are_not_retried() {
        let mut s = sink(
            vec![Ok(Answer::new(
                400,
                r#"{"detail":"Invalid subject type x"}"#,
            ))],
            5,
        );
        let err = push(&mut s).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the archive refused the metadata: HTTP 400: Invalid subject type x"
        );
        assert_eq!(s.transport.sent.len(), 1);
        assert!(s.transport.pauses.is_empty());
    }

    #[test]
    fn the_retry_budget_ends_the_run() {
        let mut s = sink(
            vec![Ok(Answer::new(500, "a")), Ok(Answer::new(502, "b"))],
            1,
        );
        let err = push(&mut s).unwrap_err();
        assert_eq!(
            err.to_string(),
            "http://a/perfsonar/archive/: gave up after 2 attempts: HTTP 502: b"
        );
        assert_eq!(s.transport.pauses.len(), 1);
    }

    #[test]
    fn a_conflicting_batch_is_split_and_duplicates_counted() {
        let mut s = sink(
            vec![
                Ok(Answer::new(201, r#"{"metadata-key":"k1"}"#)),
                Ok(Answer::new(409, "dup")),
                Ok(Answer::new(409, "dup")),
                // Read back: the same failure and throughput (a re-send)…
                Ok(Answer::new(200, r#"[{"ts":5,"val":{"error":"x"}}]"#)),
                Ok(Answer::new(200, r#"[{"ts":5,"val":1.50001}]"#)),
                Ok(Answer::new(409, "dup")),
                // …and another throughput (a conflict).
                Ok(Answer::new(200, r#"[{"ts":6,"val":{"error":"x"}}]"#)),
                Ok(Answer::new(200, r#"[{"ts":6,"val":2.0}]"#)),
            ],
            0,
        );
        push(&mut s).unwrap();
        let line = RECORD.replace("\"ts\":5", "\"ts\":6");
        let other: RawMeasurement = serde_json::from_str(&line).unwrap();
        s.push(&other, &here(2), line.as_bytes()).unwrap();
        s.finish().unwrap();
        let bodies: Vec<&str> = s.transport.sent[1..]
            .iter()
            .filter(|r| r.0 == "PUT")
            .map(|r| r.2.as_str())
            .collect();
        let one = |ts| {
            format!(
                r#"{{"data":[{{"ts":{ts},"val":[{{"event-type":"failures","val":{{"error":"x"}}}},{{"event-type":"throughput","val":1.5}}]}}]}}"#
            )
        };
        assert_eq!(bodies.len(), 3);
        assert_eq!(bodies[1], one(5));
        assert_eq!(bodies[2], one(6));
        assert_eq!(
            s.transport.sent[3].1,
            "http://a/perfsonar/archive/k1/failures/base?time-start=5&time-end=5"
        );
        assert_eq!((s.totals().duplicates, s.totals().conflicts), (1, 1));
        assert_eq!(
            s.take_conflicts(),
            [Refused {
                part: "point",
                location: here(2),
                detail: "the archive holds another throughput at 6: 2.0, not 1.5".into(),
                line: line.into_bytes(),
            }]
        );
    }

    /// One refused point among 1,999 good ones once stored nothing: the batch is halved
    /// until the refused point is alone, and everything else lands.
    #[test]
    fn a_refused_point_is_found_by_halving_and_the_rest_lands() {
        // The archive refuses any body holding ts 13.
        struct Picky(Fake);
        impl Transport for Picky {
            fn send(&mut self, method: &str, url: &str, body: &[u8]) -> Result<Answer, String> {
                let text = String::from_utf8_lossy(body).into_owned();
                self.0.sent.push((method.into(), url.into(), text.clone()));
                Ok(match method {
                    "POST" => Answer::new(201, r#"{"metadata-key":"k1"}"#),
                    _ if text.contains(r#""ts":13,"#) => {
                        Answer::new(400, r#"{"detail":"Value must be an integer"}"#)
                    }
                    _ => Answer::new(201, ""),
                })
            }
        }
        for stop in [false, true] {
            let mut config = config(0);
            config.stop_on_refused = stop;
            let mut s = Sink::new(config, Picky(Fake::default())).unwrap();
            let lines: Vec<String> = (0..20)
                .map(|ts| RECORD.replace("\"ts\":5", &format!("\"ts\":{ts}")))
                .collect();
            for (i, line) in lines.iter().enumerate() {
                let record: RawMeasurement = serde_json::from_str(line).unwrap();
                s.push(&record, &here(i as u64 + 1), line.as_bytes())
                    .unwrap();
            }
            let outcome = s.finish();
            if stop {
                assert_eq!(
                    outcome.unwrap_err().to_string(),
                    "in:14: the archive refused the point: HTTP 400: Value must be an integer"
                );
                continue;
            }
            outcome.unwrap();
            let landed: Vec<String> = s.transport.0.sent[1..]
                .iter()
                .filter(|r| !r.2.contains(r#""ts":13,"#))
                .map(|r| r.2.clone())
                .collect();
            let stored = landed
                .iter()
                .map(|b| b.matches("\"ts\":").count())
                .sum::<usize>();
            assert_eq!(stored, 19);
            assert_eq!(
                s.take_refused(),
                [Refused {
                    part: "point",
                    location: here(14),
                    detail: "Value must be an integer".into(),
                    line: lines[13].clone().into_bytes(),
                }]
            );
            assert_eq!(s.totals().failures, 1);
            // 1 POST, then 1 + 2 + 2 + 2 + 2 + 2 PUTs halving 20 items down to one.
            assert_eq!(s.transport.0.sent.len(), 12);
        }
    }

    #[test]
    fn under_fail_a_refused_point_stops_the_run_acknowledging_what_came_before_it() {
        // Two metadata interleaved; the archive refuses any body holding ts 13.
        struct Picky(Vec<String>);
        impl Transport for Picky {
            fn send(&mut self, method: &str, _url: &str, body: &[u8]) -> Result<Answer, String> {
                let text = String::from_utf8_lossy(body).into_owned();
                Ok(match method {
                    "POST" if text.contains("10.0.0.1") => {
                        Answer::new(201, r#"{"metadata-key":"k1"}"#)
                    }
                    "POST" => Answer::new(201, r#"{"metadata-key":"k2"}"#),
                    _ if text.contains(r#""ts":13,"#) => {
                        Answer::new(400, r#"{"detail":"Value must be an integer"}"#)
                    }
                    _ => {
                        self.0.push(text);
                        Answer::new(201, "")
                    }
                })
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(0);
        config.stop_on_refused = true;
        config.ack = Some(dir.path().join("ack"));
        let mut s = Sink::new(config, Picky(Vec::new())).unwrap();
        for ts in 0..20 {
            let line = RECORD
                .replace("\"ts\":5", &format!("\"ts\":{ts}"))
                .replace("\"c7\"", &format!("\"c{ts}\""))
                .replace(
                    "10.0.0.1",
                    if ts % 2 == 0 { "10.0.0.1" } else { "10.0.0.2" },
                );
            let record: RawMeasurement = serde_json::from_str(&line).unwrap();
            s.push(&record, &here(ts + 1), line.as_bytes()).unwrap();
        }
        assert_eq!(
            s.finish().unwrap_err().to_string(),
            "in:14: the archive refused the point: HTTP 400: Value must be an integer"
        );
        // Everything before the refused record landed, and the ack says so.
        let landed: String = s.transport.0.concat();
        for ts in 0..13 {
            assert!(
                landed.contains(&format!("\"ts\":{ts},")),
                "ts {ts} not sent"
            );
        }
        assert_eq!(
            std::fs::read_to_string(dir.path().join("ack")).unwrap(),
            "c12\n"
        );
        assert_eq!(s.take_refused(), []);
    }

    #[test]
    fn a_wrong_url_is_named_with_its_likely_fix() {
        let mut s = sink(vec![Ok(Answer::new(404, r#"{"detail":"Not found."}"#))], 0);
        assert_eq!(
            push(&mut s).unwrap_err().to_string(),
            "POST http://a/perfsonar/archive/: HTTP 404: Not found.: no esmond archive at this URL; check --url and --script-alias (esmond-serve and perfSONAR hosts serve /esmond/perfsonar/archive/, the default)"
        );
    }

    #[test]
    fn the_ack_names_the_last_delivered_cursor_only_after_delivery() {
        let dir = tempfile::tempdir().unwrap();
        let ack = dir.path().join("ack");
        let mut s = sink(vec![], 0);
        s.config.ack = Some(ack.clone());
        push(&mut s).unwrap();
        assert!(!ack.exists());
        s.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&ack).unwrap(), "c7\n");
    }

    #[test]
    fn a_failed_flush_acknowledges_nothing_even_when_finished_after() {
        let dir = tempfile::tempdir().unwrap();
        let ack = dir.path().join("ack");
        let mut s = sink(
            vec![
                Ok(Answer::new(201, r#"{"metadata-key":"k1"}"#)),
                Err("connection refused".into()),
            ],
            0,
        );
        s.config.ack = Some(ack.clone());
        push(&mut s).unwrap();
        assert!(s.flush().is_err());
        s.finish().unwrap();
        assert!(!ack.exists());
    }

    /// Answers a POST with a key made from its body, and anything else with 201.
    #[derive(Default)]
    struct Archive {
        posts: usize,
        puts: usize,
    }

    impl Transport for Archive {
        fn send(&mut self, method: &str, _url: &str, body: &[u8]) -> Result<Answer, String> {
            if method == "POST" {
                self.posts += 1;
                let key: String = Sha256::digest(body)
                    .iter()
                    .take(8)
                    .map(|b| format!("{b:02x}"))
                    .collect();
                return Ok(Answer::new(201, format!(r#"{{"metadata-key":"{key}"}}"#)));
            }
            self.puts += 1;
            Ok(Answer::new(201, ""))
        }
    }

    #[test]
    fn keys_come_back_from_the_cache_file_when_memory_has_forgotten_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(0);
        config.cache = Some(dir.path().join("keys.db"));
        config.recent = 4;
        config.batch_size = 7;
        let mut s = Sink::new(config.clone(), Archive::default()).unwrap();
        let line = |i: u32| {
            format!(
                r#"{{"kind":"measurement","metadata":{{"source":"10.0.0.1","destination":"10.0.0.2","n":{i}}},"ts":5,"values":{{"throughput":1.5}}}}"#
            )
        };
        for pass in 0..2 {
            for i in 0..100 {
                let text = line(i);
                let record: RawMeasurement = serde_json::from_str(&text).unwrap();
                s.push(&record, &here(u64::from(pass * 100 + i)), text.as_bytes())
                    .unwrap();
            }
        }
        s.finish().unwrap();
        // One creation per metadata, though only 4 texts are remembered in memory.
        assert_eq!((s.transport.posts, s.transport.puts), (100, 200));
        drop(s);
        // The next run knows every key.
        let mut s = Sink::new(config, Archive::default()).unwrap();
        for i in 0..100 {
            let text = line(i);
            let record: RawMeasurement = serde_json::from_str(&text).unwrap();
            s.push(&record, &here(u64::from(i)), text.as_bytes())
                .unwrap();
        }
        s.finish().unwrap();
        assert_eq!((s.transport.posts, s.transport.puts), (0, 100));
    }

    #[test]
    fn an_archive_without_the_batch_api_gets_the_esmond_api() {
        let mut s = sink(
            vec![
                Ok(Answer::new(404, r#"{"detail":"Not found."}"#)),
                Ok(Answer::new(201, r#"{"metadata-key":"k1"}"#)),
            ],
            0,
        );
        s.config.records_api = true;
        s.api = Api::Unknown;
        push(&mut s).unwrap();
        s.finish().unwrap();
        let sent: Vec<(&str, &str)> = s
            .transport
            .sent
            .iter()
            .map(|(m, u, _)| (m.as_str(), u.as_str()))
            .collect();
        assert_eq!(
            sent,
            [
                ("POST", "http://a/perfsonar/archive/records/"),
                ("POST", "http://a/perfsonar/archive/"),
                ("PUT", "http://a/perfsonar/archive/k1/"),
            ]
        );
    }

    #[test]
    fn the_batch_api_answers_each_record_and_the_ack_follows() {
        let dir = tempfile::tempdir().unwrap();
        let answer = [
            r#"{"line":1,"status":"stored","metadata-key":"k1"}"#,
            r#"{"line":2,"status":"duplicate","metadata-key":"k1"}"#,
            r#"{"line":3,"status":"conflict","detail":"the archive holds another throughput at 5: 1.0, not 2"}"#,
            r#"{"line":4,"status":"refused","part":"metadata","detail":"Invalid subject type x"}"#,
        ]
        .join("\n");
        let mut s = sink(
            vec![Ok(Answer::new(200, "")), Ok(Answer::new(200, answer))],
            0,
        );
        s.config.records_api = true;
        s.config.ack = Some(dir.path().join("ack"));
        s.api = Api::Unknown;
        for i in 1..=4 {
            let line = RECORD.replace("\"c7\"", &format!("\"c{i}\""));
            let record: RawMeasurement = serde_json::from_str(&line).unwrap();
            s.push(&record, &here(i), line.as_bytes()).unwrap();
        }
        s.finish().unwrap();
        let totals = s.totals();
        assert_eq!(
            (
                totals.records,
                totals.requests,
                totals.duplicates,
                totals.conflicts,
                totals.failures
            ),
            (4, 2, 1, 1, 1)
        );
        assert_eq!(s.transport.sent[1].2.lines().count(), 4);
        let conflicts = s.take_conflicts();
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].location, here(3));
        let refused = s.take_refused();
        assert_eq!((refused[0].part, refused[0].location.line), ("metadata", 4));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("ack")).unwrap(),
            "c4\n"
        );
    }

    /// A batch-API archive shared by forked transports: answers every record `stored`,
    /// except a batch holding `fail_on` (a 500); the first requests wait (up to 5 s) until
    /// `together` are under way at once, and the most seen at once is kept.
    /// Requests under way now, and the most at once.
    type Together = Arc<(std::sync::Mutex<(usize, usize)>, std::sync::Condvar)>;

    #[derive(Clone)]
    struct Concurrent {
        state: Together,
        together: usize,
        fail_on: Option<&'static str>,
    }

    impl Transport for Concurrent {
        fn send(&mut self, _method: &str, _url: &str, body: &[u8]) -> Result<Answer, String> {
            let body = String::from_utf8_lossy(body).into_owned();
            if body.is_empty() {
                return Ok(Answer::new(200, ""));
            }
            let (lock, woken) = &*self.state;
            let mut counts = lock.lock().unwrap();
            counts.0 += 1;
            counts.1 = counts.1.max(counts.0);
            woken.notify_all();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while counts.1 < self.together && std::time::Instant::now() < deadline {
                counts = woken
                    .wait_timeout(counts, Duration::from_millis(50))
                    .unwrap()
                    .0;
            }
            counts.0 -= 1;
            drop(counts);
            if self.fail_on.is_some_and(|marker| body.contains(marker)) {
                return Ok(Answer::new(500, "{\"detail\":\"broken\"}"));
            }
            let lines: Vec<String> = (1..=body.lines().count())
                .map(|i| format!(r#"{{"line":{i},"status":"stored","metadata-key":"k"}}"#))
                .collect();
            Ok(Answer::new(200, lines.join("\n")))
        }

        fn fork(&self) -> Option<Box<dyn Transport + Send>> {
            Some(Box::new(self.clone()))
        }
    }

    fn concurrent_sink(
        fail_on: Option<&'static str>,
        ack: &std::path::Path,
    ) -> (Sink<Concurrent>, Together) {
        let transport = Concurrent {
            state: Arc::default(),
            together: 2,
            fail_on,
        };
        let state = Arc::clone(&transport.state);
        let mut config = config(0);
        config.records_api = true;
        config.in_flight = 2;
        config.batch_size = 2;
        config.ack = Some(ack.to_owned());
        (Sink::new(config, transport).unwrap(), state)
    }

    fn push_numbered(sink: &mut Sink<Concurrent>, i: u64) -> Result<(), SinkError> {
        let line = RECORD.replace("\"c7\"", &format!("\"c{i}\""));
        let record: RawMeasurement = serde_json::from_str(&line).unwrap();
        sink.push(&record, &here(i), line.as_bytes())
    }

    #[test]
    fn batch_requests_go_together_and_are_acknowledged_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let ack = dir.path().join("ack");
        let (mut s, state) = concurrent_sink(None, &ack);
        for i in 1..=6 {
            push_numbered(&mut s, i).unwrap();
        }
        s.finish().unwrap();
        assert_eq!(
            state.0.lock().unwrap().1,
            2,
            "most requests under way at once"
        );
        let totals = s.totals();
        assert_eq!(
            (totals.records, totals.requests, totals.failures),
            (6, 7, 0)
        );
        assert_eq!(std::fs::read_to_string(&ack).unwrap(), "c6\n");
    }

    #[test]
    fn a_failed_batch_stops_the_ack_before_it_though_a_later_one_landed() {
        let dir = tempfile::tempdir().unwrap();
        let ack = dir.path().join("ack");
        let (mut s, _) = concurrent_sink(Some("\"c3\""), &ack);
        let mut failed = None;
        for i in 1..=6 {
            if let Err(err) = push_numbered(&mut s, i) {
                failed = Some(err);
                break;
            }
        }
        let err = match failed {
            Some(err) => err,
            None => s.finish().unwrap_err(),
        };
        assert_eq!(
            err.to_string(),
            "http://a/perfsonar/archive/records/: gave up after 1 attempts: HTTP 500: broken"
        );
        assert_eq!(std::fs::read_to_string(&ack).unwrap(), "c2\n");
        assert!(s.flying.is_empty());
    }

    #[test]
    fn a_record_set_aside_is_acknowledged_only_after_the_requests_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let ack = dir.path().join("ack");
        let (mut s, _) = concurrent_sink(Some("\"c1\""), &ack);
        push_numbered(&mut s, 1).unwrap();
        push_numbered(&mut s, 2).unwrap();
        // c3 was set aside (a bad line): nothing is sent for it, and its cursor must not
        // be acknowledged over c1's failure.
        s.pass(Some("c3"));
        assert!(s.finish().is_err());
        assert!(!ack.exists(), "{:?}", std::fs::read_to_string(&ack));

        let ack = dir.path().join("ack-clean");
        let (mut s, _) = concurrent_sink(None, &ack);
        push_numbered(&mut s, 1).unwrap();
        push_numbered(&mut s, 2).unwrap();
        s.pass(Some("c3"));
        s.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&ack).unwrap(), "c3\n");
    }
}
