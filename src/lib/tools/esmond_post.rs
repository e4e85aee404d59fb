//! `esmond-post`: measurement records → an esmond archive, losing nothing.
//!
//! Metadata is created once per distinct metadata and its key remembered in a cache file
//! (so cron runs do not re-POST it); values go in bulk PUTs grouped by metadata. After each
//! batch has landed, `--ack FILE` gets the cursor of the last record in it, written
//! atomically: the producer (`gridftp-parse --ack FILE`) resumes after it. A real esmond's
//! PUT is not atomic and answers 409 for a duplicate: such a batch is split and its points
//! sent one by one, and duplicates count as delivered.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::cli::{self, InputArgs, OutputArgs};
use crate::error::Error;
use crate::esmond::client::{Client, Settings};
use crate::ndjson::{BadLines, LineReader, NdjsonWriter};
use crate::record::{self, Family};
use crate::state;

const EXAMPLES: &str = "\
Examples:
  # bwctl results into the local archive
  bwctl -c receiver.example.net -T iperf3 --parsable --verbose |& bwctl-extract \\
    | esmond-post --url http://127.0.0.1:8080 --key \"$KEY\"

  # GridFTP transfers from cron, losing nothing and repeating nothing
  gridftp-parse --ack /var/lib/measpipe/gridftp.ack /var/log/gridftp-transfer.log \\
    | esmond-post --url https://archive.example.net --key \"$KEY\" --ack /var/lib/measpipe/gridftp.ack

  # what would be sent
  esmond-post --dry-run --url http://archive records.ndjson";

/// Send measurement records to an esmond archive (esmond 4.x or esmond-serve).
///
/// Each distinct metadata is created once (get-or-create; keys are cached in --cache) and
/// values are sent in bulk PUTs of up to --batch-size points. Connection errors and 5xx are
/// retried with exponential backoff and jitter; when the retries are spent the run exits 1
/// having acknowledged only what landed. A summary goes to stderr (or the log) at exit.
#[derive(Debug, Parser)]
#[command(name = "esmond-post", version, after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    input: InputArgs,

    /// The archive: scheme://host[:port].
    #[arg(
        short = 'U',
        long,
        value_name = "URL",
        default_value = "http://localhost:8000"
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

    /// Seconds before a request is abandoned (then retried).
    #[arg(long, value_name = "SECONDS", default_value_t = 20.0)]
    timeout: f64,

    /// Retries of a failed request (connection error or 5xx) before giving up.
    #[arg(long, value_name = "N", default_value_t = 5)]
    retries: u32,

    /// First retry delay in seconds; it doubles (with jitter) up to 30 s.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.5)]
    backoff: f64,

    /// Points per bulk PUT.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,

    /// Print the requests as NDJSON on stdout and send nothing.
    #[arg(long)]
    dry_run: bool,

    /// Write the cursor of the last delivered record here, atomically.
    #[arg(long, value_name = "FILE")]
    ack: Option<PathBuf>,

    /// Metadata-key cache (default: $XDG_CACHE_HOME/measpipe/esmond-post-keys.json).
    #[arg(long, value_name = "FILE")]
    cache: Option<PathBuf>,

    /// Write messages to DIR/esmond-post.log instead of stderr.
    #[arg(short = 'l', long, value_name = "DIR")]
    log_dir: Option<PathBuf>,

    /// Do not check the archive's TLS certificate.
    #[arg(long)]
    insecure: bool,

    #[command(flatten)]
    output: OutputArgs,
}

/// Where messages go.
struct Log(Option<std::fs::File>);

impl Log {
    fn say(&mut self, level: &str, message: &str) {
        match &mut self.0 {
            Some(file) => {
                let _ = writeln!(file, "{} {level}: {message}", crate::clock::now_rfc3339());
            }
            None if level == "error" => cli::error(message),
            None => eprintln!("{}: {message}", cli::program()),
        }
    }
}

/// Metadata keys by metadata identity, kept between runs.
struct Cache {
    path: Option<PathBuf>,
    keys: Map<String, Value>,
    changed: bool,
}

impl Cache {
    fn open(path: Option<PathBuf>) -> Result<Cache, Error> {
        let keys = match &path {
            Some(p) => state::read(p)?
                .and_then(|text| serde_json::from_str::<Map<String, Value>>(&text).ok())
                .unwrap_or_default(),
            None => Map::new(),
        };
        Ok(Cache {
            path,
            keys,
            changed: false,
        })
    }

    fn save(&self) -> Result<(), Error> {
        let (Some(path), true) = (&self.path, self.changed) else {
            return Ok(());
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
        }
        let _lock = state::lock(path, true)?;
        // Merge with what another run saved meanwhile.
        let mut merged = state::read(path)?
            .and_then(|text| serde_json::from_str::<Map<String, Value>>(&text).ok())
            .unwrap_or_default();
        merged.extend(self.keys.clone());
        state::write_atomic(path, Value::Object(merged).to_string().as_bytes())
    }
}

fn default_cache() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("measpipe").join("esmond-post-keys.json"))
}

/// A metadata's identity: SHA-256 of the archive root and the metadata with sorted keys.
fn identity(root: &str, metadata: &Value) -> String {
    fn canonical(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), canonical(&map[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
            other => other.clone(),
        }
    }
    let text = format!("{root}\n{}", canonical(metadata));
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The archive refused a record's metadata (4xx): a bad record, not a failed run.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

/// Totals for the exit summary.
#[derive(Debug, Default)]
struct Totals {
    records: u64,
    points: u64,
    duplicates: u64,
    failures: u64,
}

/// Records waiting to be sent.
#[derive(Default)]
struct Pending {
    /// Metadata keys in first-seen order, with their `{ts, val}` items as JSON text.
    batches: Vec<(String, Vec<String>)>,
    points: u64,
    cursor: Option<String>,
}

/// A measurement record as esmond-post needs it: the metadata and values stay raw JSON
/// text, so a record is parsed once and nothing is re-serialised.
#[derive(serde::Deserialize)]
struct Incoming<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    metadata: &'a RawValue,
    ts: i64,
    #[serde(borrow)]
    values: BTreeMap<Cow<'a, str>, &'a RawValue>,
    #[serde(borrow, default)]
    cursor: Option<Cow<'a, str>>,
}

struct Poster<'a> {
    args: &'a Args,
    client: Client,
    cache: Cache,
    log: Log,
    totals: Totals,
    /// Metadata bodies by key, to re-create one the archive forgot.
    bodies: HashMap<String, Value>,
    /// Keys by the metadata's exact text, for this run: most records repeat a metadata.
    seen: HashMap<String, String>,
    dry_run_out: Option<NdjsonWriter>,
}

impl Poster<'_> {
    /// The archive's key for `metadata`, creating it if needed.
    fn key_for(&mut self, metadata: &Value) -> anyhow::Result<String> {
        let id = identity(self.client.root(), metadata);
        if let Some(key) = self.cache.keys.get(&id).and_then(Value::as_str) {
            let key = key.to_owned();
            if !self.bodies.contains_key(&key) {
                self.bodies.insert(key.clone(), metadata.clone());
            }
            return Ok(key);
        }
        let key = self.create(metadata)?;
        self.cache.keys.insert(id, json!(key));
        self.cache.changed = !self.args.dry_run;
        self.bodies.insert(key.clone(), metadata.clone());
        Ok(key)
    }

    fn create(&mut self, metadata: &Value) -> anyhow::Result<String> {
        let url = self.client.root().to_owned();
        if let Some(out) = &mut self.dry_run_out {
            out.write_record(&json!({"method": "POST", "url": url, "body": metadata}))?;
            return Ok(format!("dry-run-{}", &identity(&url, metadata)[..32]));
        }
        let answer = self.client.send("POST", &url, &metadata.to_string())?;
        match answer.status {
            200 | 201 => serde_json::from_str::<Value>(&answer.body)
                .ok()
                .and_then(|v| {
                    v.get("metadata-key")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .ok_or_else(|| {
                    anyhow!(
                        "{url}: the archive answered {} without a metadata-key",
                        answer.status
                    )
                }),
            status => Err(Refused(format!(
                "the archive refused the metadata: HTTP {status}: {}",
                answer.detail()
            ))
            .into()),
        }
    }

    /// Sends everything pending; on success acknowledges the last record's cursor.
    fn flush(&mut self, pending: &mut Pending) -> anyhow::Result<()> {
        for (key, items) in std::mem::take(&mut pending.batches) {
            self.put(&key, items)?;
        }
        pending.points = 0;
        if let (Some(ack), Some(cursor)) = (&self.args.ack, pending.cursor.take()) {
            if !self.args.dry_run {
                state::write_atomic(ack, format!("{cursor}\n").as_bytes())?;
            }
        }
        Ok(())
    }

    fn put(&mut self, key: &str, items: Vec<String>) -> anyhow::Result<()> {
        let url = format!("{}{key}/", self.client.root());
        let body = format!("{{\"data\":[{}]}}", items.join(","));
        if let Some(out) = &mut self.dry_run_out {
            let body: Value = serde_json::from_str(&body)?;
            out.write_record(&json!({"method": "PUT", "url": url, "body": body}))?;
            return Ok(());
        }
        let answer = self.client.send("PUT", &url, &body)?;
        match answer.status {
            200 | 201 => Ok(()),
            // One or more points already there: send them one by one so the rest land.
            409 if items.len() > 1 => {
                for item in items {
                    self.put(key, vec![item])?;
                }
                Ok(())
            }
            409 => {
                self.totals.duplicates += 1;
                Ok(())
            }
            404 => {
                // The archive forgot the key (a rebuilt archive): create it again, once.
                let metadata =
                    self.bodies.get(key).cloned().ok_or_else(|| {
                        anyhow!("{url}: the archive does not know metadata {key}")
                    })?;
                self.cache.keys.retain(|_, v| v.as_str() != Some(key));
                let fresh = self.key_for(&metadata)?;
                if fresh == key {
                    bail!("{url}: the archive does not know metadata {key}");
                }
                self.put(&fresh, items)
            }
            status => {
                self.totals.failures += items.len() as u64;
                bail!("{url}: data refused: HTTP {status}: {}", answer.detail())
            }
        }
    }
}

/// Runs `esmond-post`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let log = match &args.log_dir {
        Some(dir) => {
            let path = dir.join("esmond-post.log");
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| path.display().to_string())?;
            Log(Some(file))
        }
        None => Log(None),
    };
    let authorization = match (&args.user, &args.key) {
        (Some(user), Some(key)) => Some(format!("ApiKey {user}:{key}")),
        (None, Some(key)) => Some(format!("Token {key}")),
        _ => None,
    };
    let client = Client::new(Settings {
        url: args.url.clone(),
        script_alias: Some(args.script_alias.clone()),
        authorization,
        timeout: Duration::from_secs_f64(args.timeout.max(0.001)),
        retries: args.retries,
        backoff: Duration::from_secs_f64(args.backoff.max(0.0)),
        verify_tls: !args.insecure,
    });
    let cache = Cache::open(args.cache.clone().or_else(default_cache))?;
    let dry_run_out = args.dry_run.then(|| cli::stdout(&args.output));
    let mut poster = Poster {
        args: &args,
        client,
        cache,
        log,
        totals: Totals::default(),
        bodies: HashMap::new(),
        seen: HashMap::new(),
        dry_run_out,
    };
    let outcome = post_all(&mut poster);
    let saved = poster.cache.save();
    let t = &poster.totals;
    let c = poster.client.counters;
    let summary = format!(
        "records {}, points {}, requests {}, retries {}, duplicates {}, failures {}",
        t.records, t.points, c.requests, c.retries, t.duplicates, t.failures
    );
    poster.log.say("info", &summary);
    if let Err(err) = &outcome {
        poster.log.say("error", &format!("{err:#}"));
    }
    saved?;
    outcome.map_err(|_| anyhow!("stopped; only acknowledged records were delivered"))
}

fn post_all(poster: &mut Poster) -> anyhow::Result<()> {
    let mut reader = LineReader::new(&poster.args.input.files);
    let mut bad = BadLines::new(poster.args.input.on_error);
    let mut pending = Pending::default();
    while let Some(line) = reader.next_line()? {
        let record: Incoming = match serde_json::from_slice(line.bytes) {
            Ok(record) => record,
            Err(err) => {
                let cause = match record::classify(line.bytes) {
                    Ok(Family::Measurement) | Err(_) => format!("not a measurement record: {err}"),
                    Ok(other) => format!("a {} record, not a measurement", other.name()),
                };
                bad.handle(Error::bad_input(line.location, cause))?;
                continue;
            }
        };
        if record.kind != "measurement" {
            bad.handle(Error::bad_input(
                line.location,
                format!("a {:?} record, not a measurement", record.kind),
            ))?;
            continue;
        }
        let key = match poster.seen.get(record.metadata.get()) {
            Some(key) => key.clone(),
            None => {
                let metadata: Value = serde_json::from_str(record.metadata.get())?;
                match poster.key_for(&metadata) {
                    Ok(key) => {
                        poster
                            .seen
                            .insert(record.metadata.get().to_owned(), key.clone());
                        key
                    }
                    Err(err) => match err.downcast::<Refused>() {
                        Ok(refused) => {
                            bad.handle(Error::bad_input(line.location, refused.0))?;
                            continue;
                        }
                        Err(err) => return Err(err),
                    },
                }
            }
        };
        let mut item = String::with_capacity(64 + line.bytes.len() / 2);
        item.push_str("{\"ts\":");
        item.push_str(itoa::Buffer::new().format(record.ts));
        item.push_str(",\"val\":[");
        for (i, (event_type, value)) in record.values.iter().enumerate() {
            if i > 0 {
                item.push(',');
            }
            item.push_str("{\"event-type\":");
            item.push_str(&serde_json::to_string(event_type.as_ref())?);
            item.push_str(",\"val\":");
            item.push_str(value.get());
            item.push('}');
        }
        item.push_str("]}");
        let points = record.values.len() as u64;
        poster.totals.records += 1;
        poster.totals.points += points;
        pending.points += points;
        match pending.batches.iter_mut().find(|(k, _)| *k == key) {
            Some((_, items)) => items.push(item),
            None => pending.batches.push((key, vec![item])),
        }
        if let Some(cursor) = record.cursor {
            pending.cursor = Some(cursor.into_owned());
        }
        if pending.points >= poster.args.batch_size {
            poster.flush(&mut pending)?;
        }
    }
    poster.flush(&mut pending)?;
    bad.report();
    Ok(())
}
