//! The archive's store: SQLite in WAL mode, one file in the data directory (the
//! default), or a PostgreSQL database shared by several servers ([`Store::open_pg`]). The
//! statements and logic below are the same for both: they run on a [`Conn`], and
//! PostgreSQL's own part (schema migrations, month partitions) is [`super::pg`].
//!
//! ```text
//! metadata  (id, key, ck, checksum, subject_type, source, destination,
//!            measurement_agent, tool_name, input_source, input_destination, parameters)
//!                                                             one row per metadata; ck:
//!                                                             the checksum's first 8 bytes
//!                                                             (a small index); parameters:
//!                                                             [[name, value], ...] by name
//! parameter (name, value, metadata_id)                        free-form keys, as text, for
//!                                                             searches
//! series    (id, metadata_id, event_type, summary, win, updated)
//!                                                             base and summary series
//! point     (series_id, ts, value, state)                     value: the JSON the API
//!                                                             returns; state: what
//!                                                             summaries fold (numeric
//!                                                             types; NULL for a base
//!                                                             point whose JSON reads back
//!                                                             as the same value)
//! token     (user, hash, created)                             SHA-256 of API keys
//! //! ```
//!
//! Every request's writes are one transaction: a bulk PUT lands whole or not at all, and a
//! write that got 201 is in the WAL before the response is sent (`synchronous = FULL`;
//! on PostgreSQL, committed).
//! Summaries are kept on write: numeric ones fold the new value into their bin's running
//! state, histogram ones are recomputed from the bin's base points (so an overwritten
//! histogram is not counted twice).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::sql::{args, Arg, Conn, Param};
use super::statistics;
use super::types::{self, Storage, Stored, Summary};
use super::Failure;

/// The schema's version (`PRAGMA user_version`); an archive of an older one is migrated
/// when it opens.
const VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS metadata (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    ck INTEGER NOT NULL,
    checksum BLOB NOT NULL,
    subject_type TEXT NOT NULL,
    source TEXT, destination TEXT, measurement_agent TEXT,
    tool_name TEXT, input_source TEXT, input_destination TEXT,
    parameters TEXT NOT NULL DEFAULT '[]');
CREATE UNIQUE INDEX IF NOT EXISTS metadata_by_key ON metadata(key);
CREATE INDEX IF NOT EXISTS metadata_ck ON metadata(ck);
CREATE INDEX IF NOT EXISTS metadata_source ON metadata(source);
CREATE INDEX IF NOT EXISTS metadata_destination ON metadata(destination);
CREATE INDEX IF NOT EXISTS metadata_agent ON metadata(measurement_agent);
CREATE INDEX IF NOT EXISTS metadata_tool ON metadata(tool_name);
CREATE INDEX IF NOT EXISTS metadata_input_source ON metadata(input_source);
CREATE INDEX IF NOT EXISTS metadata_input_destination ON metadata(input_destination);
CREATE TABLE IF NOT EXISTS parameter (
    name TEXT NOT NULL, value TEXT NOT NULL, metadata_id INTEGER NOT NULL,
    PRIMARY KEY (name, value, metadata_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY, metadata_id INTEGER NOT NULL, event_type TEXT NOT NULL,
    summary TEXT NOT NULL, win INTEGER NOT NULL, updated INTEGER,
    UNIQUE (metadata_id, event_type, summary, win));
CREATE INDEX IF NOT EXISTS series_lookup ON series(event_type, summary, win, updated, metadata_id);
CREATE TABLE IF NOT EXISTS point (
    series_id INTEGER NOT NULL, ts INTEGER NOT NULL, value TEXT NOT NULL, state TEXT,
    PRIMARY KEY (series_id, ts)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run (
    id TEXT NOT NULL UNIQUE, metadata_id INTEGER NOT NULL, ts INTEGER NOT NULL,
    received INTEGER NOT NULL, test_type TEXT NOT NULL, tool TEXT NOT NULL,
    succeeded INTEGER NOT NULL, run_href TEXT, task_href TEXT,
    test_checksum TEXT NOT NULL, observer TEXT, collided TEXT, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS run_by_checksum ON run(test_checksum, ts);
CREATE INDEX IF NOT EXISTS run_by_href ON run(run_href);
CREATE INDEX IF NOT EXISTS run_by_metadata ON run(metadata_id, ts);
CREATE TABLE IF NOT EXISTS refusal (
    id TEXT PRIMARY KEY, run_href TEXT, received INTEGER NOT NULL, status INTEGER NOT NULL,
    detail TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS refusal_by_href ON refusal(run_href);
CREATE TABLE IF NOT EXISTS token (
    user TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, created INTEGER NOT NULL);
";

/// A series' points in a time range, in time order.
const POINTS_SQL: &str = "SELECT p.ts, p.value FROM metadata m JOIN series s ON s.metadata_id = m.id JOIN point p ON p.series_id = s.id WHERE m.key = ?1 AND s.event_type = ?2 AND s.summary = ?3 AND s.win = ?4 AND p.ts BETWEEN ?5 AND ?6 ORDER BY p.ts";

/// A write generation and the search results computed in it, by query.
type SearchCache = (u64, HashMap<String, Arc<Vec<i64>>>);

/// Readers that may query at once (WAL lets them run beside the writer).
const READERS: usize = 8;
/// Connections a server keeps for reads on PostgreSQL.
const PG_READERS: usize = 4;

/// The archive's store.
pub struct Store {
    /// The disk was full when the archive opened (it serves reads; writes get 507).
    full_at_start: bool,
    writer: Mutex<Writing>,
    /// Signalled when a transaction commits (or fails).
    committed: std::sync::Condvar,
    /// Writes waiting for the writer.
    queued: AtomicUsize,
    readers: Vec<Mutex<Conn>>,
    next: AtomicUsize,
    /// Bumped after every committed write.
    generation: AtomicU64,
    /// New points written since the archive opened (see [`Store::points_written`]).
    written: AtomicU64,
    /// The data directory (none for PostgreSQL).
    dir: Option<std::path::PathBuf>,
    /// Search results (matching ids in key order) of the current generation: a client
    /// paging through a search repeats it for every page, and finding and counting every
    /// match is the costly part.
    searches: Mutex<SearchCache>,
}

/// A metadata as posted, validated.
/// What one [`Store::purge`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Points.
    pub points: usize,
    /// pScheduler runs.
    pub runs: usize,
    /// Refusals noted for the audit.
    pub refusals: usize,
}

/// What became of one record of [`Store::write_records`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its points were stored, in the metadata with this key.
    Stored(String),
    /// The archive had every point already, with the same values.
    Duplicate(String),
    /// A point's time already holds another value: the record was not stored.
    Conflict(String),
    /// The record is invalid: which part (`record`, `metadata` or `point`) and esmond's
    /// message. It was not stored.
    Refused(&'static str, String),
}

/// A pScheduler run to archive ([`Store::write_run`]): its metadata and point as the
/// esmond archiver would have posted them, and what is kept of the run itself.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    /// The run's UUID: a run is stored once.
    pub id: &'a str,
    /// The metadata, as posted.
    pub metadata: NewMetadata,
    /// Event types registered beside the metadata's own (not part of its identity): what
    /// the archiver sends without registering it.
    pub extra: Vec<(String, Vec<(Summary, i64)>)>,
    /// The point's time.
    pub ts: i64,
    /// The point's values.
    pub values: Vec<(String, Value)>,
    /// When it arrived, epoch seconds.
    pub received: i64,
    /// Test type, tool, and whether it succeeded.
    pub test_type: &'a str,
    /// The tool's name.
    pub tool: &'a str,
    /// Whether the run succeeded.
    pub succeeded: bool,
    /// `run.href` and `task.href`.
    pub run_href: Option<&'a str>,
    /// The task's href.
    pub task_href: Option<&'a str>,
    /// Logstash's test checksum.
    pub test_checksum: &'a str,
    /// The `x-ps-observer` header.
    pub observer: Option<&'a str>,
    /// The body as kept (JSON).
    pub body: &'a str,
}

/// What [`Store::write_run`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// Stored in the metadata with this key; the event types whose time already held
    /// another value (those values were kept, as esmond's 409 kept them).
    Stored(String, Vec<String>),
    /// The run was stored before (in the metadata with this key): nothing written.
    Repeat(String),
}

/// A stored run, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRun {
    /// The run's UUID.
    pub id: String,
    /// Its metadata's key.
    pub metadata_key: String,
    /// The point's time.
    pub ts: i64,
    /// When it arrived.
    pub received: i64,
    /// Test type.
    pub test_type: String,
    /// Tool.
    pub tool: String,
    /// Whether it succeeded.
    pub succeeded: bool,
    /// Its run href.
    pub run_href: Option<String>,
    /// Its task href.
    pub task_href: Option<String>,
    /// Logstash's test checksum.
    pub test_checksum: String,
    /// The `x-ps-observer` header it came with.
    pub observer: Option<String>,
    /// Event types whose time held another value (JSON list), if any.
    pub collided: Option<String>,
    /// The body as kept (JSON).
    pub body: String,
}

/// What [`Store::check_records`] found of one expected record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Every value is there, in the metadata with this key.
    Present(String),
    /// Not there: why.
    Missing(String),
    /// A value's time holds another value: which.
    Different(String),
    /// The record itself is invalid: which part and why.
    Refused(&'static str, String),
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// This run UUID.
    pub id: Option<String>,
    /// This run href.
    pub run_href: Option<String>,
    /// This test checksum.
    pub test_checksum: Option<String>,
    /// Of the metadata with this key.
    pub metadata_key: Option<String>,
    /// Runs at or after this time.
    pub since: Option<i64>,
}

/// The writer connection and its group-commit bookkeeping.
struct Writing {
    connection: Conn,
    /// When the open transaction began.
    open: Option<std::time::Instant>,
    /// The open (or last) transaction's number.
    generation: u64,
    /// The last transaction committed or failed.
    committed: u64,
    /// The recent failed transactions and why (a waiter looks for its own).
    failed: std::collections::VecDeque<(u64, Failure)>,
}

/// The writer's maps, looked up for every point: foldhash, not SipHash (keys are ids and
/// interned names, no attacker chooses them to collide).
type Fast<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Series (id, summary, window) of one metadata's event type.
type SeriesRows = Vec<(i64, Summary, i64)>;

/// The most points of one series written by one statement.
const RUN: usize = 64;
/// The most series with points held back at once.
const RUNS: usize = 16;

/// Points of one series in rising time, held back to be written together (see
/// [`Writer::flush_run`]).
struct Run {
    /// The interned event type.
    name: usize,
    storage: Storage,
    /// The base series.
    base: i64,
    /// The summaries folded from it.
    summaries: SeriesRows,
    points: Vec<(i64, Stored)>,
}

/// Writes points into their series: each metadata's series looked up once, summaries
/// folded, and each series' newest time set at the end. Event types are interned (a name
/// is allocated once per write, not per point). A series' numeric points in rising time
/// are held back and written by one statement each [`RUN`] (their summaries folded once
/// per bin) when no point is stored in their span yet, the usual case for new data;
/// otherwise each is written on its own.
#[derive(Default)]
struct Writer {
    names: Vec<String>,
    /// Series (id, summary, window) by metadata id and event type.
    series: Fast<(i64, usize), SeriesRows>,
    /// The newest time written, by metadata id and event type.
    touched: Fast<(i64, usize), i64>,
    /// The newest time series were created with in this write, by metadata id and event
    /// type (they need no update unless a later point is newer).
    fresh: Fast<(i64, usize), i64>,
    /// Points held back, by series.
    runs: Vec<Run>,
    /// Points stored that were new (not the same value again).
    new_points: usize,
    /// A buffer for the text of values.
    text: Vec<u8>,
    /// Where each value's text ends in `text`.
    ends: Vec<usize>,
}

impl Writer {
    fn intern(&mut self, event_type: &str) -> usize {
        match self.names.iter().position(|n| n == event_type) {
            Some(at) => at,
            None => {
                self.names.push(event_type.to_owned());
                self.names.len() - 1
            }
        }
    }

    /// Takes note of the series of a metadata just created (no need to look them up),
    /// and of the newest time they were created with.
    fn created(
        &mut self,
        id: i64,
        series: CreatedSeries<'_>,
        updated: impl Fn(&str) -> Option<i64>,
    ) {
        for (event_type, sid, summary, window) in series {
            let name = self.intern(event_type);
            let rows = self.series.entry((id, name)).or_default();
            if types::storage(event_type).is_some_and(|storage| storage.allows(summary)) {
                rows.push((sid, summary, window));
            }
            if let Some(newest) = updated(event_type) {
                self.fresh.insert((id, name), newest);
            }
        }
    }

    /// Validates and writes one point (esmond's message for a time that holds another
    /// value).
    fn point(
        &mut self,
        tx: &Conn,
        id: i64,
        ts: i64,
        event_type: &str,
        value: &Value,
    ) -> Result<(), Failure> {
        let storage = types::storage(event_type)
            .ok_or_else(|| Failure::bad_request(format!("Invalid event type {event_type}")))?;
        let stored = types::validate(storage, value).map_err(Failure::bad_request)?;
        self.write(tx, id, ts, event_type, storage, stored)
    }

    /// The series of a metadata's event type (looked up once per write).
    fn series(
        &mut self,
        tx: &Conn,
        id: i64,
        event_type: &str,
        storage: Storage,
    ) -> Result<(usize, &SeriesRows), Failure> {
        let name = self.intern(event_type);
        if let std::collections::hash_map::Entry::Vacant(vacant) = self.series.entry((id, name)) {
            let rows = tx.all(
                "SELECT id, summary, win FROM series WHERE metadata_id = ?1 AND event_type = ?2",
                args![id, event_type],
                |r| {
                    Ok((
                        r.i64(0)?,
                        r.text(1)?.and_then(Summary::from_name),
                        r.i64(2)?,
                    ))
                },
            )?;
            let rows = rows
                .into_iter()
                .filter_map(|(sid, s, w)| s.map(|s| (sid, s, w)))
                .filter(|(_, s, _)| storage.allows(*s))
                .collect();
            vacant.insert(rows);
        }
        Ok((name, &self.series[&(id, name)]))
    }

    /// The interned event type and its base series' id (`None`: the metadata does not
    /// register it).
    fn base(
        &mut self,
        tx: &Conn,
        id: i64,
        event_type: &str,
        storage: Storage,
    ) -> Result<Option<(usize, i64)>, Failure> {
        let (name, series) = self.series(tx, id, event_type, storage)?;
        Ok(series
            .iter()
            .find(|s| s.1 == Summary::Base)
            .map(|&(base, _, _)| (name, base)))
    }

    /// Another value held at `ts` (its stored JSON), if any.
    fn held(
        &mut self,
        tx: &Conn,
        id: i64,
        event_type: &str,
        storage: Storage,
        ts: i64,
        stored: &Stored,
    ) -> Result<Option<String>, Failure> {
        // What is held back is looked at too.
        self.flush(tx)?;
        let Some((_, base)) = self.base(tx, id, event_type, storage)? else {
            return Ok(None);
        };
        Ok(match existing(tx, base, storage, ts, stored)? {
            Written::Other(held) => Some(held),
            _ => None,
        })
    }

    /// Writes a validated point, or holds it back with the points of its series before
    /// it. Another value at its time is a 409 (now or when the run is written).
    fn write(
        &mut self,
        tx: &Conn,
        id: i64,
        ts: i64,
        event_type: &str,
        storage: Storage,
        stored: Stored,
    ) -> Result<(), Failure> {
        let Some((name, base)) = self.base(tx, id, event_type, storage)? else {
            return Ok(());
        };
        if storage.is_raw() {
            let series = &self.series[&(id, name)];
            if write_one(tx, base, &self.names[name], storage, series, ts, &stored)? {
                self.new_points += 1;
            }
        } else {
            let at = self.runs.iter().position(|r| r.base == base);
            let joins = at.is_some_and(|at| {
                let run = &self.runs[at];
                run.points.len() < RUN && run.points.last().is_some_and(|p| p.0 < ts)
            });
            match at {
                Some(at) if joins => self.runs[at].points.push((ts, stored)),
                _ => {
                    if let Some(at) = at {
                        let run = self.runs.swap_remove(at);
                        self.flush_run(tx, run)?;
                    } else if self.runs.len() == RUNS {
                        let run = self.runs.swap_remove(0);
                        self.flush_run(tx, run)?;
                    }
                    let summaries = self.series[&(id, name)]
                        .iter()
                        .filter(|s| s.1 != Summary::Base)
                        .copied()
                        .collect();
                    self.runs.push(Run {
                        name,
                        storage,
                        base,
                        summaries,
                        points: vec![(ts, stored)],
                    });
                }
            }
        }
        self.touch(id, name, ts);
        Ok(())
    }

    /// Notes `ts` as a time written in the event type `name` of metadata `id` (the
    /// newest one sets the series' `updated` at the end).
    fn touch(&mut self, id: i64, name: usize, ts: i64) {
        let newest = self.touched.entry((id, name)).or_insert(ts);
        *newest = (*newest).max(ts);
    }

    /// Writes one point now (not held back), folding it into its summaries; `false`
    /// when its time holds another numeric value, which stays (a collision to note, not a
    /// failure). One look at the time, not one before and one in the write.
    fn write_unless_taken(
        &mut self,
        tx: &Conn,
        id: i64,
        ts: i64,
        event_type: &str,
        storage: Storage,
        stored: &Stored,
    ) -> Result<bool, Failure> {
        let Some((name, base)) = self.base(tx, id, event_type, storage)? else {
            return Ok(true);
        };
        let replaced = match write_point(tx, base, storage, ts, stored)? {
            Written::Other(_) => return Ok(false),
            Written::Same => None,
            Written::New => Some(false),
            Written::Replaced => Some(true),
        };
        if let Some(replaced) = replaced {
            self.new_points += 1;
            let series = &self.series[&(id, name)];
            fold_point(tx, base, storage, series, ts, stored, replaced)?;
        }
        self.touch(id, name, ts);
        Ok(true)
    }

    /// Writes the points held back.
    fn flush(&mut self, tx: &Conn) -> Result<(), Failure> {
        while let Some(run) = self.runs.pop() {
            self.flush_run(tx, run)?;
        }
        Ok(())
    }

    /// Writes a run of points: if no point is stored in its span, all by one INSERT and
    /// each summary bin folded once; else each on its own.
    fn flush_run(&mut self, tx: &Conn, run: Run) -> Result<(), Failure> {
        let (Some(first), Some(last)) = (run.points.first(), run.points.last()) else {
            return Ok(());
        };
        tx.cover(first.0, last.0)?;
        let free = run.points.len() > 1 && {
            let taken = tx.one(
                "SELECT EXISTS (SELECT 1 FROM point WHERE series_id = ?1 AND ts BETWEEN ?2 AND ?3)",
                args![run.base, first.0, last.0],
                |r| r.i64(0),
            )?;
            taken == Some(0)
        };
        if !free {
            let name = &self.names[run.name];
            for (ts, stored) in &run.points {
                if write_one(tx, run.base, name, run.storage, &run.summaries, *ts, stored)? {
                    self.new_points += 1;
                }
            }
            return Ok(());
        }
        let mut rows = &run.points[..];
        while !rows.is_empty() {
            // A statement per power of two: few statements to prepare and keep.
            let n = if rows.len() >= RUN {
                RUN
            } else {
                1 << rows.len().ilog2()
            };
            // Every value's and state's text in one buffer, bound by their ends.
            self.text.clear();
            self.ends.clear();
            for (_, stored) in &rows[..n] {
                stored.write_json(&mut self.text);
                self.ends.push(self.text.len());
                if stored.keeps_state(run.storage) {
                    stored.write_store(&mut self.text);
                    self.ends.push(self.text.len());
                } else {
                    self.ends.push(usize::MAX);
                }
            }
            let all = text(&self.text)?;
            let mut values = Vec::with_capacity(1 + 3 * n);
            values.push(Arg::Int(run.base));
            let mut start = 0;
            for ((ts, _), ends) in rows[..n].iter().zip(self.ends.chunks(2)) {
                values.push(Arg::Int(*ts));
                values.push(Arg::Text(&all[start..ends[0]]));
                start = ends[0];
                values.push(match ends[1] {
                    usize::MAX => Arg::Null,
                    end => {
                        let state = Arg::Text(&all[start..end]);
                        start = end;
                        state
                    }
                });
            }
            tx.execute(insert_rows_sql(n), &values)?;
            rows = &rows[n..];
        }
        self.new_points += run.points.len();
        for &(sid, summary, window) in &run.summaries {
            let mut from = 0;
            while from < run.points.len() {
                let start = bin(run.points[from].0, window)?;
                let mut to = from + 1;
                while to < run.points.len() && bin(run.points[to].0, window)? == start {
                    to += 1;
                }
                let values = run.points[from..to].iter().map(|p| &p.1);
                fold(
                    tx,
                    run.base,
                    sid,
                    run.storage,
                    summary,
                    window,
                    start,
                    values,
                    false,
                )?;
                from = to;
            }
        }
        Ok(())
    }

    /// Writes what is held back and sets each written event type's `updated` to its
    /// newest time; how many new points the writer wrote. The time is kept on the event
    /// type's base series row alone (its summaries are read with it): one row and one
    /// index entry moved per event type, not one per summary.
    fn finish(mut self, tx: &Conn) -> Result<usize, Failure> {
        self.flush(tx)?;
        // The event types of one metadata written up to the same time (all of a
        // pScheduler result's) are set by one statement.
        let mut due: Vec<(i64, i64, usize)> = self
            .touched
            .iter()
            .filter(|(key, newest)| self.fresh.get(key).is_none_or(|set| set < newest))
            .map(|(&(id, name), &newest)| (id, newest, name))
            .collect();
        due.sort_unstable();
        for group in due.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            for names in group.chunks(32) {
                let sql = format!(
                    "UPDATE series SET updated = CASE WHEN updated > ?1 THEN updated ELSE ?1 END WHERE metadata_id = ?2 AND summary = 'base' AND win = 0 AND event_type IN ({})",
                    placeholders(names.len())
                );
                let mut values = vec![Arg::Int(group[0].1), Arg::Int(group[0].0)];
                values.extend(
                    names
                        .iter()
                        .map(|&(_, _, name)| Arg::Text(&self.names[name])),
                );
                tx.execute(&sql, &values)?;
            }
        }
        Ok(self.new_points)
    }
}

/// Writes one point and folds it into its summaries if it is new; whether it was (not
/// the same value again). Another value at its time is a 409 with esmond's message.
fn write_one(
    tx: &Conn,
    base: i64,
    event_type: &str,
    storage: Storage,
    summaries: &[(i64, Summary, i64)],
    ts: i64,
    stored: &Stored,
) -> Result<bool, Failure> {
    let replaced = match write_point(tx, base, storage, ts, stored)? {
        Written::New => false,
        Written::Replaced => true,
        Written::Same => return Ok(false),
        Written::Other(_) => {
            return Err(Failure::conflict(format!(
                "Time series value already exists with event type {event_type} at time {ts}"
            )))
        }
    };
    fold_point(tx, base, storage, summaries, ts, stored, replaced)?;
    Ok(true)
}

/// Folds one new point of base series `base` into each of its summaries (`series`, the
/// base among them or not); `replaced` when it replaced another raw value.
fn fold_point(
    tx: &Conn,
    base: i64,
    storage: Storage,
    series: &[(i64, Summary, i64)],
    ts: i64,
    stored: &Stored,
    replaced: bool,
) -> Result<(), Failure> {
    for &(sid, summary, window) in series.iter().filter(|s| s.1 != Summary::Base) {
        let bin = bin(ts, window)?;
        fold(
            tx,
            base,
            sid,
            storage,
            summary,
            window,
            bin,
            [stored],
            replaced,
        )?;
    }
    Ok(())
}

/// `INSERT` of `n` points (a power of two up to [`RUN`]) of one series (`?1`), each its
/// time, value and state; made once.
fn insert_rows_sql(n: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let statements = SQL.get_or_init(|| {
        (0..=RUN.ilog2())
            .map(|power| {
                let rows: Vec<String> = (0..1usize << power)
                    .map(|i| format!("(?1,?{},?{},?{})", 3 * i + 2, 3 * i + 3, 3 * i + 4))
                    .collect();
                format!(
                    "INSERT INTO point (series_id, ts, value, state) VALUES {}",
                    rows.join(",")
                )
            })
            .collect()
    });
    &statements[n.ilog2() as usize]
}

/// Text written by serde_json or itoa (always UTF-8).
fn text(bytes: &[u8]) -> Result<&str, Failure> {
    std::str::from_utf8(bytes).map_err(|e| Failure::internal(e.to_string()))
}

/// The start of the summary bin of `window` seconds holding `ts` (`ts` itself for a
/// window of 0).
fn bin(ts: i64, window: i64) -> Result<i64, Failure> {
    if window > 0 {
        ts.checked_sub(ts.rem_euclid(window))
            .ok_or_else(|| Failure::bad_request(format!("Time {ts} is out of range")))
    } else {
        Ok(ts)
    }
}

/// A point to write: its time, event type and value.
pub type Point<'p> = (i64, std::borrow::Cow<'p, str>, Value);

#[derive(Debug, Clone, Default)]
pub struct NewMetadata {
    /// `point-to-point` or `network-element`.
    pub subject_type: String,
    /// Subject fields by their dashed names.
    pub subject: Vec<(&'static str, String)>,
    /// Free-form parameters, values as text.
    pub parameters: Vec<(String, String)>,
    /// Event types and their summaries (type, window).
    pub event_types: Vec<(String, Vec<(Summary, i64)>)>,
}

/// One series of a metadata, as listed.
#[derive(Debug, Clone)]
pub struct SeriesInfo {
    /// The summary kind.
    pub summary: Summary,
    /// Its window, seconds.
    pub window: i64,
    /// Last write, epoch seconds.
    pub updated: Option<i64>,
}

/// A stored metadata.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// The 32-hex key.
    pub key: String,
    /// Subject type.
    pub subject_type: String,
    /// Subject fields present, by dashed name.
    pub subject: Vec<(&'static str, String)>,
    /// Free-form parameters.
    pub parameters: Vec<(String, String)>,
    /// Event types, each with its base series first, then its summaries.
    pub event_types: Vec<(String, Vec<SeriesInfo>)>,
}

/// Which points of which series to read.
#[derive(Debug, Clone)]
pub struct SeriesQuery<'a> {
    /// Metadata key.
    pub key: &'a str,
    /// Event type.
    pub event_type: &'a str,
    /// Base or a summary.
    pub summary: Summary,
    /// The summary window (0 for base).
    pub window: i64,
    /// First second included.
    pub begin: i64,
    /// Last second included.
    pub end: i64,
    /// At most this many points.
    pub limit: u64,
    /// After skipping this many.
    pub offset: u64,
}

/// The subject columns, by dashed name.
pub const SUBJECT_FIELDS: [(&str, &str); 6] = [
    ("source", "source"),
    ("destination", "destination"),
    ("measurement-agent", "measurement_agent"),
    ("tool-name", "tool_name"),
    ("input-source", "input_source"),
    ("input-destination", "input_destination"),
];

/// One condition of a metadata search.
#[derive(Debug, Clone)]
pub enum Condition {
    /// A subject column is one of these values.
    SubjectIn(&'static str, Vec<String>),
    /// `subject_type` or `key` equals.
    Column(&'static str, String),
    /// A parameter equals.
    Parameter(String, String),
    /// Some series matches all of these (event type, summary, window, time range).
    Series {
        /// `event-type`.
        event_type: Option<String>,
        /// `summary-type`.
        summary: Option<String>,
        /// `summary-window`.
        window: Option<i64>,
        /// Time range on `updated`.
        range: Option<(i64, Option<i64>)>,
    },
}

/// Version 0 (measpipe before 2026-12) to 1: the checksum's index was its 64-character
/// text, and a metadata's parameters were looked up in a second index of their own. The
/// tables are rebuilt in one transaction; the new indexes are made by [`SCHEMA`].
fn migrate(c: &mut Connection) -> Result<(), Failure> {
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let old: bool = c.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('metadata') WHERE name = 'checksum' AND type = 'TEXT'",
        [],
        |r| r.get(0),
    )?;
    if version >= VERSION || !old {
        return Ok(());
    }
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "ALTER TABLE metadata RENAME TO metadata_v0;
         ALTER TABLE parameter RENAME TO parameter_v0;
         DROP INDEX IF EXISTS metadata_by_key;
         DROP INDEX IF EXISTS metadata_source;
         DROP INDEX IF EXISTS metadata_destination;
         DROP INDEX IF EXISTS metadata_agent;
         DROP INDEX IF EXISTS metadata_tool;
         DROP INDEX IF EXISTS metadata_input_source;
         DROP INDEX IF EXISTS metadata_input_destination;
         DROP INDEX IF EXISTS parameter_lookup;",
    )?;
    tx.execute_batch(SCHEMA)?;
    tx.execute_batch(
        "INSERT INTO metadata (id, key, ck, checksum, subject_type, source, destination,
             measurement_agent, tool_name, input_source, input_destination, parameters)
         SELECT id, key, 0, unhex(checksum), subject_type, source, destination,
             measurement_agent, tool_name, input_source, input_destination,
             (SELECT json_group_array(json_array(name, value))
              FROM (SELECT name, value FROM parameter_v0 p WHERE p.metadata_id = m.id ORDER BY name))
         FROM metadata_v0 m;
         INSERT INTO parameter (name, value, metadata_id)
         SELECT name, value, metadata_id FROM parameter_v0;
         DROP TABLE metadata_v0;
         DROP TABLE parameter_v0;",
    )?;
    {
        let mut rows = tx.prepare("SELECT id, checksum FROM metadata")?;
        let mut set = tx.prepare("UPDATE metadata SET ck = ?1 WHERE id = ?2")?;
        let all = rows
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        for (id, checksum) in all {
            let digest: [u8; 32] = checksum.try_into().map_err(|_| {
                Failure::internal(format!("metadata {id}: a checksum not of 32 bytes"))
            })?;
            set.execute(params![short_checksum(&digest), id])?;
        }
    }
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()?;
    Ok(())
}

/// A metadata's checksum: SHA-256 of its [`checksum_text`].
fn checksum(new: &NewMetadata) -> [u8; 32] {
    Sha256::digest(checksum_text(new).as_bytes()).into()
}

/// The checksum's first 8 bytes, the metadata's indexed identity (a match is confirmed by
/// the whole checksum).
fn short_checksum(checksum: &[u8; 32]) -> i64 {
    let mut head = [0; 8];
    head.copy_from_slice(&checksum[..8]);
    i64::from_le_bytes(head)
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Copies the log back into the database on a thread of its own, so that a commit does
/// not wait for it (SQLite's automatic checkpoint runs in the committing write): the
/// writer tells it when the log has grown by `CHECKPOINT_PAGES`; a passive checkpoint
/// never blocks the writer or a reader. The thread ends with the writer.
///
/// The log starts over (is written from its beginning again) only when a write begins
/// with every frame copied, which a thread copying alongside a steady writer never
/// quite achieves: once the thread is within `CATCH_UP_PAGES` of the log's end, the
/// writer copies those few itself, so the next write starts the log over. A log that
/// kept growing made every commit grow the file, which costs the disk a metadata journal
/// write more (measured: a single writer's commits took twice as long, ~0.7 ms instead
/// of ~0.35 ms, and its log reached 12 MB in 200 commits).
fn checkpoint_aside(writer: &mut Connection, path: &Path) -> Result<(), Failure> {
    /// The log's growth, in pages, that calls for a checkpoint (SQLite's default).
    const CHECKPOINT_PAGES: i32 = 1000;
    /// The most pages the writer copies itself to let the log start over.
    const CATCH_UP_PAGES: i32 = 200;
    /// The most checkpoints in a row that chase the writer.
    const CATCH_UP_PASSES: usize = 8;
    let checkpointer = Connection::open(path)?;
    configure(&checkpointer)?;
    let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
    // The pages of the log the thread has copied, in the low half, under the number of
    // times the log started over (a pass that straddles a new start must not count).
    let copied = Arc::new(AtomicU64::new(0));
    let thread_copied = Arc::clone(&copied);
    let mut last = 0;
    // Replaces SQLite's automatic checkpoint (which is itself a log hook).
    writer.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: i32| {
        let mark = copied.load(Ordering::Acquire);
        let mut behind = pages - (mark as u32 as i32);
        if pages < last {
            // The log started over.
            copied.store(((mark >> 32) + 1) << 32, Ordering::Release);
            (last, behind) = (0, pages);
        }
        if pages >= 4 * CHECKPOINT_PAGES || (pages >= CHECKPOINT_PAGES && behind <= CATCH_UP_PAGES)
        {
            // Writes that never pause keep a passive checkpoint from ever reaching the
            // log's end (past 4×), or the thread is nearly there: the writer copies the
            // rest itself (what the thread copied is not copied again).
            let _ = wal.checkpoint_v2(rusqlite::wal::CheckpointMode::PASSIVE);
            last = pages;
        } else if pages - last >= CHECKPOINT_PAGES {
            last = pages;
            let _ = wake.try_send(());
        }
        Ok(())
    }))?;
    std::thread::Builder::new()
        .name("checkpoint".into())
        .spawn(move || {
            while woken.recv().is_ok() {
                // A pass copies the log as it was when the pass began; another follows
                // while the last copied much (the writer meanwhile wrote as much).
                // A failure (a full disk) leaves the log to the next try.
                let mut before = 0;
                for _ in 0..CATCH_UP_PASSES {
                    let mark = thread_copied.load(Ordering::Acquire);
                    let Ok((log, done)) = checkpointer
                        .wal_checkpoint_v2(None::<&str>, rusqlite::wal::CheckpointMode::PASSIVE)
                    else {
                        break;
                    };
                    let now = (mark >> 32) << 32 | u64::from(done.max(0) as u32);
                    let _ = thread_copied.compare_exchange(
                        mark,
                        now,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    );
                    if done < log || log - before <= CATCH_UP_PAGES {
                        break;
                    }
                    before = log;
                }
            }
        })
        .map_err(|e| Failure::internal(format!("checkpoint thread: {e}")))?;
    Ok(())
}

fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(std::time::Duration::from_secs(10))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", "OFF")?;
    // Statement journals (each write's savepoint in a group commit) and sorts stay in
    // memory: a savepoint that touched more than 64 KiB of pages was otherwise written to
    // a temporary file, 11 % of the server's CPU per pScheduler result.
    connection.pragma_update(None, "temp_store", "MEMORY")?;
    // Plans that do not hang on bound values: otherwise SQLite prepares a cached statement
    // again each time values are bound to it (rusqlite clears them after each use), and
    // parsing a read's SQL cost more than the read.
    connection.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

impl Drop for Store {
    /// Copies the whole log into the database, as SQLite does when its last connection
    /// closes (the checkpoint thread's may close after the process has ended).
    fn drop(&mut self) {
        let state = crate::sync::lock(&self.writer);
        if let Conn::Lite(c) = &state.connection {
            let _ = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, Failure> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::internal(format!("{}: {e}", dir.display())))?;
        let path = dir.join("archive.sqlite");
        let mut writer = Connection::open(&path)?;
        // A full disk must not keep the archive from starting: it serves reads, and
        // writes answer 507 until space returns (each write simply tries again).
        let mut full = false;
        let mut step = |result: rusqlite::Result<()>| -> Result<(), Failure> {
            match result {
                Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) => {
                    full = true;
                    Ok(())
                }
                other => Ok(other?),
            }
        };
        // Must precede the first table: lets --retention give space back to the system.
        step(writer.pragma_update(None, "auto_vacuum", "INCREMENTAL"))?;
        step(configure(&writer))?;
        // 16 MB of page cache for the writer (readers keep SQLite's 2 MB): a batch of new
        // metadata touches many index pages, and re-reading them costs more (measured:
        // 8,700 → 9,500 transfers/s with benches/ingest-realistic.sh).
        step(writer.pragma_update(None, "cache_size", -16_384))?;
        migrate(&mut writer)?;
        step(writer.execute_batch(SCHEMA))?;
        step(writer.pragma_update(None, "user_version", VERSION))?;
        // Fresh statistics let the planner pick the selective filter to drive a search.
        // A bounded sample keeps startup quick on a large archive.
        step(writer.execute_batch("PRAGMA analysis_limit=1000; PRAGMA optimize=0x10002;"))?;
        checkpoint_aside(&mut writer, &path)?;
        let readers = (0..READERS)
            .map(|_| {
                let reader = Connection::open(&path)?;
                step(configure(&reader))?;
                Ok(Conn::Lite(reader))
            })
            .collect::<Result<Vec<_>, Failure>>()?;
        Ok(Store::with(
            Conn::Lite(writer),
            readers,
            Some(dir.to_owned()),
            full,
        ))
    }

    /// Opens the store in the PostgreSQL database at `url`, whose schema `esmond-serve
    /// migrate` made (an older schema is refused, naming the command), and makes the point
    /// partitions of this month and the next. Writes take the database's write lock, so
    /// servers sharing it are interchangeable: each answers a write once it is committed,
    /// and every one reads it at once.
    pub fn open_pg(url: &str) -> Result<Store, crate::Error> {
        use super::pg;
        let mut writer = pg::connect(url)?;
        let version = pg::version(&mut writer)?;
        if version != pg::VERSION {
            return Err(crate::Error::failed(format!(
                "{}: the database's schema is version {version}, this esmond-serve's is {}: run `esmond-serve migrate --store URL`",
                pg::redact(url),
                pg::VERSION
            )));
        }
        let now = crate::clock::now_seconds();
        pg::ensure_partitions(&mut writer, now, now + pg::AHEAD)?;
        let readers = (0..PG_READERS)
            .map(|_| {
                Ok(Conn::Pg(Box::new(super::sql::Pg::new(
                    url,
                    pg::connect(url)?,
                ))))
            })
            .collect::<Result<Vec<_>, crate::Error>>()?;
        Ok(Store::with(
            Conn::Pg(Box::new(super::sql::Pg::new(url, writer))),
            readers,
            None,
            false,
        ))
    }

    fn with(
        writer: Conn,
        readers: Vec<Conn>,
        dir: Option<std::path::PathBuf>,
        full: bool,
    ) -> Store {
        Store {
            full_at_start: full,
            writer: Mutex::new(Writing {
                connection: writer,
                open: None,
                generation: 0,
                committed: 0,
                failed: std::collections::VecDeque::new(),
            }),
            committed: std::sync::Condvar::new(),
            queued: AtomicUsize::new(0),
            readers: readers.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            written: AtomicU64::new(0),
            dir,
            searches: Mutex::new((0, HashMap::new())),
        }
    }

    /// Whether the disk was full when the archive opened.
    pub fn full_at_start(&self) -> bool {
        self.full_at_start
    }

    /// Whether the archive answers a read (the health check).
    pub fn check(&self) -> Result<(), Failure> {
        self.read(|c| {
            c.one("SELECT count(*) FROM token", &[], |_| Ok(()))
                .map(drop)
        })
    }

    fn read<T>(&self, f: impl FnOnce(&Conn) -> Result<T, Failure>) -> Result<T, Failure> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        let connection = crate::sync::lock(&self.readers[index]);
        f(&connection)
    }

    /// Runs `f` in a write transaction, answering once it is committed. Writes that arrive
    /// while one runs share its transaction (group commit: one fsync for all of them), each
    /// in its own savepoint, so one that fails is undone alone; the last of a burst, or the
    /// first after 20 ms, commits for all.
    fn write<T>(&self, f: impl FnOnce(&Conn) -> Result<T, Failure>) -> Result<T, Failure> {
        self.write_in(true, f)
    }

    /// [`Store::write`] for a write that checks everything before it writes, so that only
    /// the database itself (a full disk) can fail it midway: it joins without a savepoint
    /// (SQLite would journal every page it touches), and should it fail, the whole shared
    /// transaction fails (every write in it is answered with the failure, none lands).
    fn write_checked<T>(&self, f: impl FnOnce(&Conn) -> Result<T, Failure>) -> Result<T, Failure> {
        self.write_in(false, f)
    }

    fn write_in<T>(
        &self,
        isolate: bool,
        f: impl FnOnce(&Conn) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        /// The longest a transaction stays open for more writes to join it.
        const GATHER: std::time::Duration = std::time::Duration::from_millis(20);
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut state = crate::sync::lock(&self.writer);
        self.queued.fetch_sub(1, Ordering::SeqCst);
        // The first write of a transaction needs no savepoint (a failure rolls the whole
        // transaction back, nobody else being in it); one that joins does (SQLite then
        // journals the pages it touches).
        let first = state.open.is_none();
        if first {
            state.connection.begin()?;
            state.open = Some(std::time::Instant::now());
            state.generation += 1;
        }
        let generation = state.generation;
        let savepoint = !first && isolate;
        let result = match savepoint {
            false => f(&state.connection),
            true => match state.connection.batch("SAVEPOINT write") {
                Ok(()) => f(&state.connection),
                Err(e) => Err(e),
            },
        };
        if !state.connection.in_transaction() {
            // SQLite rolled the whole transaction back (a full disk, say): every write in
            // it fails.
            let failure = result.err().unwrap_or_else(Failure::disk_full);
            return Err(self.fail(state, generation, failure));
        }
        if let (Err(failure), false, false) = (&result, first, savepoint) {
            // A checked write failed midway among others: none of them can land.
            let failure = failure.clone();
            return Err(self.fail(state, generation, failure));
        }
        let undone = match (&result, first) {
            (Ok(_), _) if !savepoint => Ok(()),
            (Err(failure), true) => {
                // Alone in it: end the transaction; the failure is this write's only.
                let _ = state.connection.rollback();
                state.open = None;
                state.committed = generation;
                self.committed.notify_all();
                return Err(failure.clone());
            }
            (Ok(_), _) => state.connection.batch("RELEASE write"),
            (Err(_), _) => state.connection.batch("ROLLBACK TO write; RELEASE write"),
        };
        if let Err(e) = undone {
            return Err(self.fail(state, generation, e));
        }
        let waiting = self.queued.load(Ordering::SeqCst) > 0;
        if waiting && state.open.is_some_and(|opened| opened.elapsed() < GATHER) {
            // A write that follows commits this one with its own (or, should it never
            // come to that, this one does after a while).
            while state.committed < generation {
                let (next, timeout) = self
                    .committed
                    .wait_timeout(state, GATHER * 5)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                state = next;
                if timeout.timed_out()
                    && state.committed < generation
                    && state.generation == generation
                    && self.queued.load(Ordering::SeqCst) == 0
                {
                    return self.commit(state, generation).and(result);
                }
            }
            if let Some((_, failure)) = state.failed.iter().find(|(g, _)| *g == generation) {
                return Err(failure.clone());
            }
            return result;
        }
        self.commit(state, generation).and(result)
    }

    /// Commits the open transaction for every write in it.
    fn commit(
        &self,
        mut state: std::sync::MutexGuard<'_, Writing>,
        generation: u64,
    ) -> Result<(), Failure> {
        if let Err(e) = state.connection.commit() {
            return Err(self.fail(state, generation, e));
        }
        state.open = None;
        state.committed = generation;
        // After the commit: a count computed meanwhile is filed under the old generation.
        self.generation.fetch_add(1, Ordering::Release);
        self.committed.notify_all();
        Ok(())
    }

    /// Ends a failed transaction: every write waiting on it gets `failure`.
    fn fail(
        &self,
        mut state: std::sync::MutexGuard<'_, Writing>,
        generation: u64,
        failure: Failure,
    ) -> Failure {
        if state.connection.in_transaction() {
            let _ = state.connection.rollback();
        }
        state.open = None;
        state.committed = generation;
        // Waiters wake within moments; a few hundred failures back is plenty.
        if state.failed.len() == 256 {
            state.failed.pop_front();
        }
        state.failed.push_back((generation, failure.clone()));
        self.committed.notify_all();
        failure
    }

    /// The ids `sql` selects, in order, cached until the next write.
    ///
    /// On PostgreSQL the generation is the database's (other servers write to it too),
    /// read before the search, so what is kept under it holds every write it counts.
    fn matching_ids(
        &self,
        c: &Conn,
        sql: &str,
        values: &[Param],
    ) -> Result<Arc<Vec<i64>>, Failure> {
        /// Ids kept at most, over all cached searches (8 bytes each).
        const MAX_CACHED: usize = 2_000_000;
        let select = || {
            let values: Vec<Arg> = values.iter().map(Param::arg).collect();
            c.all(sql, &values, |r| r.i64(0))
        };
        let generation = match c.is_pg() {
            true => c
                .one("SELECT n FROM measpipe_generation", &[], |r| r.i64(0))?
                .map_or(0, |n| n as u64),
            false => self.generation.load(Ordering::Acquire),
        };
        let key = format!("{sql}\u{0}{values:?}");
        {
            let cached = crate::sync::lock(&self.searches);
            if cached.0 == generation {
                if let Some(ids) = cached.1.get(&key) {
                    return Ok(Arc::clone(ids));
                }
            }
        }
        let ids = Arc::new(select()?);
        let mut cached = crate::sync::lock(&self.searches);
        if cached.0 != generation {
            *cached = (generation, HashMap::new());
        }
        let held: usize = cached.1.values().map(|v| v.len()).sum();
        if held + ids.len() <= MAX_CACHED {
            cached.1.insert(key, Arc::clone(&ids));
        }
        Ok(ids)
    }

    /// Creates a metadata, or finds the identical one. Returns its key and whether it is new.
    pub fn create_metadata(&self, new: &NewMetadata) -> Result<(String, bool), Failure> {
        let mut created = self.create_metadata_batch(std::slice::from_ref(new))?;
        created
            .pop()
            .ok_or_else(|| Failure::internal("no metadata created"))
    }

    /// [`create_metadata`](Store::create_metadata) for many, in one transaction (bulk
    /// imports).
    pub fn create_metadata_batch(
        &self,
        batch: &[NewMetadata],
    ) -> Result<Vec<(String, bool)>, Failure> {
        self.write(|tx| {
            batch
                .iter()
                .map(|new| insert_metadata(tx, new).map(|(_, key, created)| (key, created)))
                .collect()
        })
    }

    /// The metadata with this key.
    pub fn metadata(&self, key: &str) -> Result<Option<Metadata>, Failure> {
        self.read(|c| {
            let id = c.one("SELECT id FROM metadata WHERE key = ?1", args![key], |r| {
                r.i64(0)
            })?;
            id.map(|id| load(c, id)).transpose()
        })
    }

    /// Metadata matching every condition, sorted by key: one page and the total count.
    pub fn search(
        &self,
        conditions: &[Condition],
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<Metadata>, u64), Failure> {
        // Free-form parameters are joins (one row per metadata and name, so no duplicates):
        // the planner can then drive from the parameter index when it is the selective
        // filter. Everything else is a condition on the metadata row.
        let mut joins = Vec::new();
        let mut values: Vec<Param> = Vec::new();
        for (i, condition) in conditions.iter().enumerate() {
            if let Condition::Parameter(name, value) = condition {
                joins.push(format!(
                    "parameter p{i} ON p{i}.metadata_id = m.id AND p{i}.name = ? AND p{i}.value = ?"
                ));
                values.push(name.clone().into());
                values.push(value.clone().into());
            }
        }
        let joined: String = joins.iter().map(|j| format!(" JOIN {j}")).collect();
        let mut sql = format!(" FROM metadata m{joined} WHERE TRUE");
        for condition in conditions {
            match condition {
                Condition::SubjectIn(column, options) => {
                    sql.push_str(&format!(
                        " AND m.{column} IN ({})",
                        placeholders(options.len())
                    ));
                    values.extend(options.iter().cloned().map(Into::into));
                }
                Condition::Column(column, value) => {
                    sql.push_str(&format!(" AND m.{column} = ?"));
                    values.push(value.clone().into());
                }
                Condition::Parameter(..) => {}
                Condition::Series {
                    event_type,
                    summary,
                    window,
                    range,
                } => {
                    sql.push_str(" AND EXISTS (SELECT 1 FROM series s WHERE s.metadata_id = m.id");
                    if let Some(et) = event_type {
                        sql.push_str(" AND s.event_type = ?");
                        values.push(et.clone().into());
                    }
                    // An event type's time is on its base series row (`Writer::finish`):
                    // with a time range, `s` is that row and the summary is asked of a
                    // sibling `w`.
                    let sibling = range.is_some() && (summary.is_some() || window.is_some());
                    if let Some((begin, end)) = range {
                        sql.push_str(" AND s.summary = 'base' AND s.win = 0 AND s.updated >= ?");
                        values.push((*begin).into());
                        if let Some(end) = end {
                            sql.push_str(" AND s.updated <= ?");
                            values.push((*end).into());
                        }
                    }
                    let alias = match sibling {
                        true => {
                            sql.push_str(" AND EXISTS (SELECT 1 FROM series w WHERE w.metadata_id = m.id AND w.event_type = s.event_type");
                            "w"
                        }
                        false => "s",
                    };
                    if let Some(summary) = summary {
                        sql.push_str(&format!(" AND {alias}.summary = ?"));
                        values.push(summary.clone().into());
                    }
                    if let Some(window) = window {
                        sql.push_str(&format!(" AND {alias}.win = ?"));
                        values.push((*window).into());
                    }
                    sql.push_str(if sibling { "))" } else { ")" });
                }
            }
        }
        self.read(|c| {
            let ids = self.matching_ids(c, &format!("SELECT m.id{sql} ORDER BY m.key"), &values)?;
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(ids.len());
            let end = start
                .saturating_add(usize::try_from(limit).unwrap_or(usize::MAX))
                .min(ids.len());
            let found = ids[start..end]
                .iter()
                .map(|&id| load(c, id))
                .collect::<Result<_, _>>()?;
            Ok((found, ids.len() as u64))
        })
    }

    /// Writes points `(ts, event type, value)` to a metadata in one transaction. Points
    /// for event types the metadata does not register are ignored, as esmond did.
    ///
    /// An event type's `time-updated` becomes the time of its newest point (not the wall
    /// clock of the write), so time-windowed metadata searches — which esmond-client always
    /// sends — find data that was loaded after the fact.
    pub fn write_points<'p, I>(&self, key: &str, items: I) -> Result<(), Failure>
    where
        I: IntoIterator<Item = Result<Vec<Point<'p>>, Failure>>,
    {
        let written = self.write(|tx| {
            let id = tx.one("SELECT id FROM metadata WHERE key = ?1", args![key], |r| {
                r.i64(0)
            })?;
            let Some(id) = id else {
                return Err(Failure::not_found());
            };
            let mut writer = Writer::default();
            for item in items {
                for (ts, event_type, value) in item? {
                    writer.point(tx, id, ts, &event_type, &value)?;
                }
            }
            writer.finish(tx)
        })?;
        self.written.fetch_add(written as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The data directory the archive is in (none on PostgreSQL).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Makes sure points at times `from..=to` can be written without making a partition
    /// then (on PostgreSQL; nothing to do on SQLite).
    pub fn prepare_months(&self, from: i64, to: i64) -> Result<(), Failure> {
        match self.dir {
            Some(_) => Ok(()),
            None => self.write(|tx| tx.cover(from, to)),
        }
    }

    /// The database's size in bytes, by file: the SQLite file and its log, or the
    /// PostgreSQL database (`pg_database_size`).
    pub fn sizes(&self) -> Result<Vec<(&'static str, u64)>, Failure> {
        let Some(dir) = &self.dir else {
            let size = self.read(|c| {
                c.one("SELECT pg_database_size(current_database())", &[], |r| {
                    r.i64(0)
                })
            })?;
            return Ok(vec![("database", size.unwrap_or(0).max(0) as u64)]);
        };
        let file = dir.join(super::backup::FILE);
        let log = dir.join(format!("{}-wal", super::backup::FILE));
        let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        Ok(vec![("database", size(&file)), ("wal", size(&log))])
    }

    /// New points written since the archive opened (by writes that were answered).
    pub fn points_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Writes measurement records, each its metadata (found or created) and its points, in
    /// one transaction. A record the archive refuses, or whose value conflicts with a
    /// stored one, is checked before anything of it is written, and reported; the rest
    /// land. (No savepoint per record: SQLite would journal every page it touched.)
    pub fn write_records<'p, I>(&self, records: I) -> Result<Vec<Outcome>, Failure>
    where
        I: IntoIterator<Item = Result<(NewMetadata, Vec<Point<'p>>), (&'static str, Failure)>>,
    {
        self.write_checked(|tx| {
            let mut writer = Writer::default();
            let mut outcomes = Vec::new();
            for record in records {
                let (new, points) = match record {
                    Ok(record) => record,
                    Err((part, failure)) => {
                        outcomes.push(Outcome::Refused(part, failure.detail));
                        continue;
                    }
                };
                let mut valid = Vec::with_capacity(points.len());
                let mut refused = None;
                for (ts, event_type, value) in &points {
                    let checked = types::storage(event_type)
                        .ok_or_else(|| format!("Invalid event type {event_type}"))
                        .and_then(|storage| Ok((storage, types::validate(storage, value)?)));
                    match checked {
                        Ok((storage, stored)) => valid.push((*ts, &**event_type, value, storage, stored)),
                        Err(detail) => {
                            refused = Some(detail);
                            break;
                        }
                    }
                }
                if let Some(detail) = refused {
                    outcomes.push(Outcome::Refused("point", detail));
                    continue;
                }
                let checksum = checksum(&new);
                let found = find_metadata(tx, &checksum)?;
                // A metadata that exists may hold other values at these times.
                if let Some((id, _)) = &found {
                    let mut conflict = None;
                    for (ts, event_type, value, storage, stored) in &valid {
                        if let Some(held) = writer.held(tx, *id, event_type, *storage, *ts, stored)? {
                            conflict = Some(format!(
                                "the archive holds another {event_type} at {ts}: {held}, not {value}"
                            ));
                            break;
                        }
                    }
                    if let Some(detail) = conflict {
                        outcomes.push(Outcome::Conflict(detail));
                        continue;
                    }
                }
                let (id, key) = match found {
                    Some(found) => found,
                    None => {
                        let newest = |event_type: &str| {
                            valid.iter().filter(|p| p.1 == event_type).map(|p| p.0).max()
                        };
                        let (id, key, series) = create_metadata_row(tx, &new, &checksum, newest)?;
                        writer.created(id, series, newest);
                        (id, key)
                    }
                };
                let (before, empty) = (writer.new_points, valid.is_empty());
                for (ts, event_type, _, storage, stored) in valid {
                    writer.write(tx, id, ts, event_type, storage, stored)?;
                }
                writer.flush(tx)?;
                outcomes.push(if writer.new_points > before || empty {
                    Outcome::Stored(key)
                } else {
                    Outcome::Duplicate(key)
                });
            }
            let written = writer.finish(tx)?;
            Ok((outcomes, written))
        })
        .map(|(outcomes, written)| {
            self.written.fetch_add(written as u64, Ordering::Relaxed);
            outcomes
        })
    }

    /// Archives a pScheduler run in one transaction: its metadata found (by the
    /// archiver's identity) or created, the extra event types registered, its point
    /// written as the archiver's PUT would (a time that holds another value keeps it, and
    /// is reported), and the run kept. A run already stored is a [`RunOutcome::Repeat`].
    pub fn write_run(&self, run: &NewRun) -> Result<RunOutcome, Failure> {
        // Checked before anything is written: a refused value refuses the run.
        let mut valid = Vec::with_capacity(run.values.len());
        for (event_type, value) in &run.values {
            if value.is_null() {
                continue;
            }
            let storage = types::storage(event_type)
                .ok_or_else(|| Failure::bad_request(format!("Invalid event type {event_type}")))?;
            let stored = types::validate(storage, value)
                .map_err(|e| Failure::bad_request(format!("{event_type}: {e}")))?;
            valid.push((event_type.as_str(), storage, stored));
        }
        let (outcome, written) = self.write(|tx| {
            let repeat = tx.one(
                "SELECT m.key FROM run r JOIN metadata m ON m.id = r.metadata_id WHERE r.id = ?1",
                args![run.id],
                |r| r.string(0),
            )?;
            if let Some(key) = repeat {
                return Ok((RunOutcome::Repeat(key), 0));
            }
            let (id, key, _) = insert_metadata(tx, &run.metadata)?;
            for (event_type, summaries) in &run.extra {
                let rows = std::iter::once((Summary::Base, 0)).chain(summaries.iter().copied());
                for (summary, window) in rows {
                    tx.execute(
                        "INSERT INTO series (metadata_id, event_type, summary, win, updated) VALUES (?1, ?2, ?3, ?4, NULL) ON CONFLICT DO NOTHING",
                        args![id, event_type, summary.name(), window],
                    )?;
                }
            }
            let mut writer = Writer::default();
            let mut collided = Vec::new();
            for (event_type, storage, stored) in valid {
                if !writer.write_unless_taken(tx, id, run.ts, event_type, storage, &stored)? {
                    collided.push(event_type.to_owned());
                }
            }
            let written = writer.finish(tx)?;
            let collided_json = (!collided.is_empty())
                .then(|| serde_json::to_string(&collided).unwrap_or_default());
            tx.execute(
                "INSERT INTO run (id, metadata_id, ts, received, test_type, tool, succeeded, run_href, task_href, test_checksum, observer, collided, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                args![
                run.id,
                id,
                run.ts,
                run.received,
                run.test_type,
                run.tool,
                run.succeeded,
                run.run_href,
                run.task_href,
                run.test_checksum,
                run.observer,
                collided_json.as_deref(),
                run.body,
            ],
            )?;
            Ok((RunOutcome::Stored(key, collided), written))
        })?;
        self.written.fetch_add(written as u64, Ordering::Relaxed);
        Ok(outcome)
    }

    /// Whether each measurement record (metadata and points, as [`Store::write_records`]
    /// takes them) is in the archive, reading only.
    pub fn check_records<'p, I>(&self, records: I) -> Result<Vec<Check>, Failure>
    where
        I: IntoIterator<Item = Result<(NewMetadata, Vec<Point<'p>>), (&'static str, Failure)>>,
    {
        self.read(|c| {
            let mut checks = Vec::new();
            'records: for record in records {
                let (new, points) = match record {
                    Ok(record) => record,
                    Err((part, failure)) => {
                        checks.push(Check::Refused(part, failure.detail));
                        continue;
                    }
                };
                let Some((id, key)) = find_metadata(c, &checksum(&new))? else {
                    checks.push(Check::Missing("no metadata with these fields".into()));
                    continue;
                };
                for (ts, event_type, value) in &points {
                    let Some(storage) = types::storage(event_type) else {
                        checks.push(Check::Refused("point", format!("Invalid event type {event_type}")));
                        continue 'records;
                    };
                    let stored = match types::validate(storage, value) {
                        Ok(stored) => stored,
                        Err(detail) => {
                            checks.push(Check::Refused("point", detail));
                            continue 'records;
                        }
                    };
                    let base = c.one(
                        "SELECT id FROM series WHERE metadata_id = ?1 AND event_type = ?2 AND summary = 'base' AND win = 0",
                        args![id, &**event_type],
                        |r| r.i64(0),
                    )?;
                    let Some(base) = base else {
                        checks.push(Check::Missing(format!(
                            "metadata {key} has no {event_type}"
                        )));
                        continue 'records;
                    };
                    let held = c.one(
                        "SELECT value FROM point WHERE series_id = ?1 AND ts = ?2",
                        args![base, *ts],
                        |r| r.string(0),
                    )?;
                    match held {
                        None => {
                            checks.push(Check::Missing(format!(
                                "metadata {key} has no {event_type} at {ts}"
                            )));
                            continue 'records;
                        }
                        Some(held) if !storage.is_raw() && held != stored.to_json() => {
                            checks.push(Check::Different(format!(
                                "metadata {key} holds another {event_type} at {ts}: {held}, not {value}"
                            )));
                            continue 'records;
                        }
                        Some(_) => {}
                    }
                }
                checks.push(Check::Present(key));
            }
            Ok(checks)
        })
    }

    /// Notes why a pScheduler run was refused (the latest reason per run), for an audit.
    pub fn note_refusal(
        &self,
        id: &str,
        run_href: Option<&str>,
        received: i64,
        failure: &Failure,
    ) -> Result<(), Failure> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO refusal (id, run_href, received, status, detail) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO UPDATE SET run_href = excluded.run_href, received = excluded.received, status = excluded.status, detail = excluded.detail",
                args![id, run_href, received, failure.status, &failure.detail],
            )?;
            Ok(())
        })
    }

    /// Why the run with this href (or id) was refused, and when: (status, detail, received).
    pub fn refusal(&self, run: &str) -> Result<Option<(u16, String, i64)>, Failure> {
        self.read(|c| {
            c.one(
                "SELECT status, detail, received FROM refusal WHERE run_href = ?1 OR id = ?1 ORDER BY received DESC LIMIT 1",
                args![run],
                |r| {
                    let status = u16::try_from(r.i64(0)?)
                        .map_err(|e| Failure::internal(format!("a refusal's status: {e}")))?;
                    Ok((status, r.string(1)?, r.i64(2)?))
                },
            )
        })
    }

    /// Stored runs matching `filter`, newest first: one page and the total count.
    pub fn runs(
        &self,
        filter: &RunFilter,
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<StoredRun>, u64), Failure> {
        let mut sql =
            String::from(" FROM run r JOIN metadata m ON m.id = r.metadata_id WHERE TRUE");
        let mut values: Vec<Param> = Vec::new();
        for (column, value) in [
            ("r.id", &filter.id),
            ("r.run_href", &filter.run_href),
            ("r.test_checksum", &filter.test_checksum),
            ("m.key", &filter.metadata_key),
        ] {
            if let Some(value) = value {
                sql.push_str(&format!(" AND {column} = ?"));
                values.push(value.clone().into());
            }
        }
        if let Some(since) = filter.since {
            sql.push_str(" AND r.ts >= ?");
            values.push(since.into());
        }
        self.read(|c| {
            let mut paged: Vec<Arg> = values.iter().map(Param::arg).collect();
            let total = c
                .one(&format!("SELECT count(*){sql}"), &paged, |r| r.i64(0))?
                .unwrap_or(0);
            paged.push(Arg::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
            paged.push(Arg::Int(i64::try_from(offset).unwrap_or(i64::MAX)));
            let runs = c.all(
                &format!(
                    "SELECT r.id, m.key, r.ts, r.received, r.test_type, r.tool, r.succeeded, r.run_href, r.task_href, r.test_checksum, r.observer, r.collided, r.body{sql} ORDER BY r.ts DESC, r.id LIMIT ? OFFSET ?"
                ),
                &paged,
                |r| {
                    Ok(StoredRun {
                        id: r.string(0)?,
                        metadata_key: r.string(1)?,
                        ts: r.i64(2)?,
                        received: r.i64(3)?,
                        test_type: r.string(4)?,
                        tool: r.string(5)?,
                        succeeded: r.i64(6)? != 0,
                        run_href: r.opt_string(7)?,
                        task_href: r.opt_string(8)?,
                        test_checksum: r.string(9)?,
                        observer: r.opt_string(10)?,
                        collided: r.opt_string(11)?,
                        body: r.string(12)?,
                    })
                },
            )?;
            Ok((runs, total as u64))
        })
    }

    pub fn points(&self, query: &SeriesQuery) -> Result<String, Failure> {
        self.read(|c| {
            // LIMIT and OFFSET are applied here: SQLite compiles a bound LIMIT's value into
            // the statement, and prepares it again whenever another is bound.
            let mut out = String::with_capacity(4096);
            out.push('[');
            let mut first = true;
            let mut skip = query.offset;
            let mut left = query.limit;
            let values = args![
                query.key,
                query.event_type,
                query.summary.name(),
                query.window,
                query.begin,
                query.end,
            ];
            c.each(POINTS_SQL, values, &mut |row| {
                if left == 0 {
                    return Ok(false);
                }
                if skip > 0 {
                    skip -= 1;
                    return Ok(true);
                }
                left -= 1;
                if !std::mem::take(&mut first) {
                    out.push(',');
                }
                out.push_str("{\"ts\":");
                out.push_str(itoa::Buffer::new().format(row.i64(0)?));
                out.push_str(",\"val\":");
                out.push_str(row.text(1)?.unwrap_or("null"));
                out.push('}');
                Ok(left > 0)
            })?;
            out.push(']');
            Ok(out)
        })
    }

    /// A page of metadata for the dashboard, ordered by source, destination, tool and key;
    /// and how many there are in all.
    pub fn listing(&self, limit: u64, offset: u64) -> Result<(Vec<Metadata>, u64), Failure> {
        self.read(|c| {
            let total = c
                .one("SELECT count(*) FROM metadata", &[], |r| r.i64(0))?
                .unwrap_or(0);
            let ids = c.all(
                "SELECT id FROM metadata ORDER BY source, destination, tool_name, key LIMIT ?1 OFFSET ?2",
                args![
                    i64::try_from(limit).unwrap_or(i64::MAX),
                    i64::try_from(offset).unwrap_or(i64::MAX)
                ],
                |r| r.i64(0),
            )?;
            let found = ids
                .into_iter()
                .map(|id| load(c, id))
                .collect::<Result<_, _>>()?;
            Ok((found, total as u64))
        })
    }

    /// The newest `max` base points of an event type at or after `since`, oldest first,
    /// each value as the API returns it.
    pub fn recent(
        &self,
        key: &str,
        event_type: &str,
        since: i64,
        max: u64,
    ) -> Result<Vec<(i64, Value)>, Failure> {
        self.read(|c| {
            let mut points = c.all(
                "SELECT p.ts, p.value FROM metadata m JOIN series s ON s.metadata_id = m.id JOIN point p ON p.series_id = s.id WHERE m.key = ?1 AND s.event_type = ?2 AND s.summary = 'base' AND s.win = 0 AND p.ts >= ?3 ORDER BY p.ts DESC LIMIT ?4",
                args![key, event_type, since, i64::try_from(max).unwrap_or(i64::MAX)],
                |row| {
                    let text = row.text(1)?.unwrap_or("null");
                    let value = serde_json::from_str(text).map_err(|e| {
                        Failure::internal(format!(
                            "metadata {key}: {event_type}: a stored value: {e}"
                        ))
                    })?;
                    Ok((row.i64(0)?, value))
                },
            )?;
            points.reverse();
            Ok(points)
        })
    }

    /// Deletes what `policy` no longer keeps at `now` (epoch seconds): each series' points
    /// older than its days, the runs older than their metadata's longest-kept series, the
    /// refusals older than the default; then gives the freed pages back to the file
    /// system. Works through the series in transactions of a few hundred, so writes go on
    /// meanwhile.
    pub fn purge(&self, policy: &super::retention::Policy, now: i64) -> Result<Purged, Failure> {
        use super::retention::Field;
        let cutoff = |days: Option<u64>| days.map(|d| now.saturating_sub(d as i64 * 86_400));
        // (series, metadata, cutoff): None keeps everything.
        let series: Vec<(i64, i64, Option<i64>)> = self.read(|c| {
            c.all(
                "SELECT s.id, s.metadata_id, s.event_type, s.summary, m.subject_type, m.source, m.destination, m.measurement_agent, m.tool_name, m.input_source, m.input_destination FROM series s JOIN metadata m ON m.id = s.metadata_id",
                &[],
                |r| {
                let text = |i: usize| r.opt_string(i).map(Option::unwrap_or_default);
                let fields = [
                    text(2)?, text(3)?, text(4)?, text(5)?, text(6)?, text(7)?, text(8)?,
                    text(9)?, text(10)?,
                ];
                let days = policy.days(|field| {
                    &fields[match field {
                        Field::EventType => 0,
                        Field::SummaryType => 1,
                        Field::SubjectType => 2,
                        Field::Source => 3,
                        Field::Destination => 4,
                        Field::MeasurementAgent => 5,
                        Field::ToolName => 6,
                        Field::InputSource => 7,
                        Field::InputDestination => 8,
                    }]
                });
                Ok((r.i64(0)?, r.i64(1)?, cutoff(days)))
            })
        })?;
        let mut purged = Purged::default();
        // On PostgreSQL, the months every series is past go whole (their files deleted at
        // once); the rows left past their time are deleted below.
        let whole = match self.dir {
            Some(_) => None,
            None => series.iter().map(|s| s.2).collect::<Option<Vec<i64>>>(),
        };
        if let Some(cutoff) = whole.and_then(|cutoffs| cutoffs.into_iter().min()) {
            purged.points += self.write(|tx| tx.drop_months_before(cutoff))?;
        }
        let points: Vec<(i64, i64)> = series
            .iter()
            .filter_map(|&(id, _, before)| Some((id, before?)))
            .collect();
        purged.points += self.delete_before(
            "DELETE FROM point WHERE series_id = ?1 AND ts < ?2",
            &points,
        )?;
        // A run goes with its metadata's longest-kept series.
        let mut runs: HashMap<i64, Option<i64>> = HashMap::new();
        for (_, metadata, before) in &series {
            let kept = runs.entry(*metadata).or_insert(*before);
            *kept = match (*kept, before) {
                (Some(a), Some(b)) => Some(a.min(*b)),
                _ => None,
            };
        }
        let runs: Vec<(i64, i64)> = runs
            .into_iter()
            .filter_map(|(m, b)| Some((m, b?)))
            .collect();
        purged.runs =
            self.delete_before("DELETE FROM run WHERE metadata_id = ?1 AND ts < ?2", &runs)?;
        if let Some(before) = cutoff(policy.default_days) {
            purged.refusals += self
                .write(|tx| tx.execute("DELETE FROM refusal WHERE received < ?1", args![before]))?;
        }
        if purged.points + purged.runs + purged.refusals > 0 {
            self.give_space_back()?;
        }
        Ok(purged)
    }

    /// Runs `sql` (a DELETE of `?1`'s rows before `?2`) for each pair of `rows`, in
    /// transactions of 500 so writes go on meanwhile; how many rows went.
    fn delete_before(&self, sql: &str, rows: &[(i64, i64)]) -> Result<usize, Failure> {
        let mut deleted = 0;
        for chunk in rows.chunks(500) {
            deleted += self.write(|tx| {
                let mut deleted = 0;
                for &(id, before) in chunk {
                    deleted += tx.execute(sql, args![id, before])?;
                }
                Ok(deleted)
            })?;
        }
        Ok(deleted)
    }

    /// Returns freed pages to the file system (incremental vacuum, then a truncating
    /// checkpoint), unless writes are gathering into a transaction (next time, then).
    fn give_space_back(&self) -> Result<(), Failure> {
        let state = crate::sync::lock(&self.writer);
        // (PostgreSQL's own vacuum reuses the space.)
        let (Conn::Lite(connection), None) = (&state.connection, state.open) else {
            return Ok(());
        };
        // The pragma frees one page per step: run it to the end.
        let mut vacuum = connection.prepare("PRAGMA incremental_vacuum")?;
        let mut rows = vacuum.query([])?;
        while rows.next()?.is_some() {}
        drop(rows);
        // The file shrinks when the log is copied back; the checkpoint thread may be
        // copying (the checkpoint then answers busy): try again for a while.
        for _ in 0..100 {
            let busy: i64 =
                connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
            if busy == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(())
    }

    /// Creates (or replaces) `user`'s API key; returns the key, which is stored only hashed.
    pub fn add_token(&self, user: &str, now: i64) -> Result<String, Failure> {
        let key: String = (0..20)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let hash = sha256_hex(&key);
        self.write(|tx| {
            tx.execute(
                "INSERT INTO token (\"user\", hash, created) VALUES (?1, ?2, ?3) ON CONFLICT (\"user\") DO UPDATE SET hash = excluded.hash, created = excluded.created",
                args![user, &hash, now],
            )
        })?;
        Ok(key)
    }

    /// Users with keys and when they were created.
    pub fn tokens(&self) -> Result<Vec<(String, i64)>, Failure> {
        self.read(|c| {
            c.all(
                "SELECT \"user\", created FROM token ORDER BY \"user\"",
                &[],
                |r| Ok((r.string(0)?, r.i64(1)?)),
            )
        })
    }

    /// Removes `user`'s key; false if there was none.
    pub fn revoke_token(&self, user: &str) -> Result<bool, Failure> {
        self.write(|tx| Ok(tx.execute("DELETE FROM token WHERE \"user\" = ?1", args![user])? > 0))
    }

    /// The user owning `key`, if any.
    pub fn token_user(&self, key: &str) -> Result<Option<String>, Failure> {
        let hash = sha256_hex(key);
        self.read(|c| {
            c.one(
                "SELECT \"user\" FROM token WHERE hash = ?1",
                args![&hash],
                |r| r.string(0),
            )
        })
    }
}

/// Inserts one metadata (or finds its identical twin) inside a transaction.
/// Creates a metadata, or finds the identical one: its row id, key and whether it is new.
fn insert_metadata(tx: &Conn, new: &NewMetadata) -> Result<(i64, String, bool), Failure> {
    let checksum = checksum(new);
    if let Some((id, key)) = find_metadata(tx, &checksum)? {
        return Ok((id, key, false));
    }
    let (id, key, _) = create_metadata_row(tx, new, &checksum, |_| None)?;
    Ok((id, key, true))
}

/// The row id and key of the metadata with this checksum, if any.
fn find_metadata(tx: &Conn, checksum: &[u8; 32]) -> Result<Option<(i64, String)>, Failure> {
    tx.one(
        "SELECT id, key FROM metadata WHERE ck = ?1 AND checksum = ?2",
        args![short_checksum(checksum), &checksum[..]],
        |r| Ok((r.i64(0)?, r.string(1)?)),
    )
}

/// The series a metadata was created with: event type, row id, summary, window.
type CreatedSeries<'m> = Vec<(&'m str, i64, Summary, i64)>;

/// Creates a metadata known to be new (its checksum is not in the archive), with its
/// parameters and series, each series' newest time being `updated` of its event type (the
/// points about to be written); returns its row id, key and series.
fn create_metadata_row<'m>(
    tx: &Conn,
    new: &'m NewMetadata,
    checksum: &[u8; 32],
    updated: impl Fn(&str) -> Option<i64>,
) -> Result<(i64, String, CreatedSeries<'m>), Failure> {
    // A time-ordered key (UUID version 7, 32 hex digits like esmond's): a new key goes at
    // the end of the key index, not to a random page of it.
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let key = uuid::Builder::from_unix_timestamp_millis(millis, &rand::random())
        .into_uuid()
        .simple()
        .to_string();
    let mut parameters = new.parameters.iter().collect::<Vec<_>>();
    parameters.sort();
    let parameters = serde_json::to_string(&parameters)
        .map_err(|e| Failure::internal(format!("parameters: {e}")))?;
    let value = |name: &str| {
        new.subject
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    };
    let id = tx
        .one(
            "INSERT INTO metadata (key, ck, checksum, subject_type, source, destination, measurement_agent, tool_name, input_source, input_destination, parameters) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) RETURNING id",
            args![
                &key,
                short_checksum(checksum),
                &checksum[..],
                &new.subject_type,
                value("source"),
                value("destination"),
                value("measurement-agent"),
                value("tool-name"),
                value("input-source"),
                value("input-destination"),
                &parameters,
            ],
            |r| r.i64(0),
        )?
        .ok_or_else(|| Failure::internal("a metadata inserted without an id"))?;
    // One statement for all of them (most metadata have a handful; the statement for
    // each count is cached).
    for chunk in new.parameters.chunks(32) {
        let sql = format!(
            "INSERT INTO parameter (name, value, metadata_id) VALUES {} ON CONFLICT DO NOTHING",
            vec!["(?, ?, ?)"; chunk.len()].join(", ")
        );
        let values: Vec<Arg> = chunk
            .iter()
            .flat_map(|(name, value)| [Arg::Text(name), Arg::Text(value), Arg::Int(id)])
            .collect();
        tx.execute(&sql, &values)?;
    }
    let mut created = Vec::new();
    for (event_type, summaries) in &new.event_types {
        let newest = updated(event_type);
        let rows = std::iter::once((Summary::Base, 0)).chain(summaries.iter().copied());
        for (summary, window) in rows {
            let made = tx.one(
                "INSERT INTO series (metadata_id, event_type, summary, win, updated) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING RETURNING id",
                args![id, event_type, summary.name(), window, newest],
                |r| r.i64(0),
            )?;
            if let Some(sid) = made {
                created.push((event_type.as_str(), sid, summary, window));
            }
        }
    }
    Ok((id, key, created))
}

fn placeholders(n: usize) -> String {
    vec!["?"; n.max(1)].join(",")
}

/// The text whose SHA-256 identifies a metadata (esmond's checksum recipe).
fn checksum_text(new: &NewMetadata) -> String {
    use std::fmt::Write;
    // str::to_lowercase, without its allocation for ASCII.
    let lower = |text: &mut String, value: &str| match value.is_ascii() {
        true => text.extend(value.chars().map(|c| c.to_ascii_lowercase())),
        false => text.push_str(&value.to_lowercase()),
    };
    let mut text = String::with_capacity(512);
    text.push_str("subject-type::");
    lower(&mut text, &new.subject_type);
    let mut subject: Vec<_> = new.subject.iter().collect();
    subject.sort();
    for (k, v) in subject {
        let _ = write!(text, ",{k}::");
        lower(&mut text, v);
    }
    let mut parameters: Vec<_> = new.parameters.iter().collect();
    parameters.sort();
    for (k, v) in parameters {
        text.push(',');
        lower(&mut text, k);
        text.push_str("::");
        lower(&mut text, v);
    }
    // esmond sorts the rows as text.
    let mut rows: Vec<String> = new
        .event_types
        .iter()
        .flat_map(|(et, summaries)| {
            std::iter::once(format!(",{et}::base::0")).chain(
                summaries
                    .iter()
                    .map(move |(s, w)| format!(",{et}::{}::{w}", s.name())),
            )
        })
        .collect();
    rows.sort();
    rows.dedup();
    text.extend(rows);
    text
}

/// Loads a metadata by row id.
fn load(c: &Conn, id: i64) -> Result<Metadata, Failure> {
    let (key, subject_type, subject, parameters) = c
        .one(
            "SELECT key, subject_type, source, destination, measurement_agent, tool_name, input_source, input_destination, parameters FROM metadata WHERE id = ?1",
            args![id],
            |r| {
                let mut subject = Vec::new();
                for (i, (name, _)) in SUBJECT_FIELDS.iter().enumerate() {
                    if let Some(value) = r.opt_string(i + 2)? {
                        subject.push((*name, value));
                    }
                }
                let parameters = r.string(2 + SUBJECT_FIELDS.len())?;
                Ok((r.string(0)?, r.string(1)?, subject, parameters))
            },
        )?
        .ok_or_else(|| Failure::internal(format!("metadata {id} vanished")))?;
    let parameters: Vec<(String, String)> = serde_json::from_str(&parameters)
        .map_err(|e| Failure::internal(format!("metadata {key}: parameters: {e}")))?;
    let mut event_types: Vec<(String, Vec<SeriesInfo>)> = Vec::new();
    let rows = c.all(
        "SELECT s.event_type, s.summary, s.win, b.updated FROM series s LEFT JOIN series b ON b.metadata_id = s.metadata_id AND b.event_type = s.event_type AND b.summary = 'base' AND b.win = 0 WHERE s.metadata_id = ?1 ORDER BY s.event_type, s.summary, s.win",
        args![id],
        |r| Ok((r.string(0)?, r.string(1)?, r.i64(2)?, r.int(3)?)),
    )?;
    for (event_type, summary, window, updated) in rows {
        let Some(summary) = Summary::from_name(&summary) else {
            continue;
        };
        let info = SeriesInfo {
            summary,
            window,
            updated,
        };
        match event_types.iter_mut().find(|(et, _)| *et == event_type) {
            Some((_, series)) => series.push(info),
            None => event_types.push((event_type, vec![info])),
        }
    }
    for (_, series) in &mut event_types {
        series.sort_by_key(|s| (s.summary != Summary::Base, s.summary.name(), s.window));
    }
    Ok(Metadata {
        key,
        subject_type,
        subject,
        parameters,
        event_types,
    })
}

/// Stores a base point. Returns false when an identical point was already there (nothing
/// to do); a different numeric value at the same time is a 409.
/// What writing a point found.
enum Written {
    /// It was new.
    New,
    /// It replaced another raw value (summaries of its bin are made again from the base).
    Replaced,
    /// The same value was there.
    Same,
    /// Another value is there (its stored JSON): nothing was written.
    Other(String),
}

/// What a point at `ts` would find: nothing there (or a raw value it replaces), the same
/// value, or another one.
fn existing(
    tx: &Conn,
    series: i64,
    storage: Storage,
    ts: i64,
    stored: &Stored,
) -> Result<Written, Failure> {
    let found = tx.one(
        "SELECT value, state FROM point WHERE series_id = ?1 AND ts = ?2",
        args![series, ts],
        |r| Ok((r.string(0)?, r.opt_string(1)?)),
    )?;
    // A base point without a state is the value its JSON reads back as
    // (`Stored::keeps_state`); archives written before kept every numeric point's state.
    let same_state = |held: &Option<String>| match held {
        Some(held) => !storage.is_raw() && *held == stored.to_store(),
        None => !stored.keeps_state(storage),
    };
    Ok(match found {
        Some((value, held)) if value == stored.to_json() && same_state(&held) => Written::Same,
        Some((value, _)) if !storage.is_raw() => Written::Other(value),
        Some(_) => Written::Replaced,
        None => Written::New,
    })
}

fn write_point(
    tx: &Conn,
    series: i64,
    storage: Storage,
    ts: i64,
    stored: &Stored,
) -> Result<Written, Failure> {
    let json = stored.to_json();
    tx.cover(ts, ts)?;
    if storage.is_raw() {
        // A raw value is replaced by a new one, as esmond did.
        let found = existing(tx, series, storage, ts, stored)?;
        if let Written::Same = found {
            return Ok(Written::Same);
        }
        tx.execute(
            "INSERT INTO point (series_id, ts, value, state) VALUES (?1, ?2, ?3, NULL) ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value, state = NULL",
            args![series, ts, &json],
        )?;
        return Ok(found);
    }
    // Insert first, look only when the time is taken (one B-tree walk for a new point).
    let state = stored.keeps_state(storage).then(|| stored.to_store());
    let inserted = tx.execute(
        "INSERT INTO point (series_id, ts, value, state) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        args![series, ts, &json, state.as_deref()],
    )?;
    if inserted == 1 {
        return Ok(Written::New);
    }
    existing(tx, series, storage, ts, stored)
}

/// Folds new base points, all in the summary bin starting at `bin`, into one summary
/// series: the bin's state is read and written once for all of them. A histogram bin is
/// merged from what it held and the new points, or, when `rebuild` (a base histogram
/// replaced another in this bin), made again from every base histogram in it.
#[allow(clippy::too_many_arguments)]
fn fold<'s>(
    tx: &Conn,
    base: i64,
    series: i64,
    storage: Storage,
    summary: Summary,
    window: i64,
    bin: i64,
    points: impl IntoIterator<Item = &'s Stored>,
    rebuild: bool,
) -> Result<(), Failure> {
    // The bin's point, if any: its state, and its value where only a histogram
    // aggregation needs it (a numeric fold copies no text it does not read).
    let value_needed = storage == Storage::Histogram && summary == Summary::Aggregation;
    let held = tx.one(
        "SELECT value, state FROM point WHERE series_id = ?1 AND ts = ?2",
        args![series, bin],
        |r| {
            let value = if value_needed {
                Some(r.string(0)?)
            } else {
                None
            };
            Ok((value, r.opt_string(1)?))
        },
    )?;
    let (held, state) = match held {
        Some((value, state)) => (Some(value), state),
        None => (None, None),
    };
    let pair = |state: &Option<String>| -> (i64, i64) {
        state
            .as_deref()
            .and_then(|s| s.split_once(' '))
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
            .unwrap_or((0, 0))
    };
    let single = || {
        state
            .as_deref()
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let (value, new_state) = match (storage, summary) {
        (Storage::Integer, Summary::Aggregation) => {
            let sum = points.into_iter().fold(single(), |sum, p| match p {
                Stored::Integer(v) => sum.saturating_add(*v),
                _ => sum,
            });
            (sum.to_string(), Some(sum.to_string()))
        }
        (Storage::Float, Summary::Aggregation) => {
            let sum = points.into_iter().fold(single(), |sum, p| match p {
                Stored::Scaled(v) => sum.saturating_add(*v),
                _ => sum,
            });
            (
                types::float_text(sum as f64 / 10_000.0),
                Some(sum.to_string()),
            )
        }
        (Storage::Integer | Storage::Float, Summary::Average) => {
            let (sum, count) = points
                .into_iter()
                .fold(pair(&state), |(sum, count), p| match p {
                    Stored::Integer(v) | Stored::Scaled(v) => (sum.saturating_add(*v), count + 1),
                    _ => (sum, count),
                });
            if count == 0 {
                return Ok(());
            }
            let scale = if storage == Storage::Float {
                10_000.0
            } else {
                1.0
            };
            (
                types::float_text(sum as f64 / count as f64 / scale),
                Some(format!("{sum} {count}")),
            )
        }
        (Storage::Percentage, Summary::Aggregation) => {
            let (num, den) = points
                .into_iter()
                .fold(pair(&state), |(num, den), p| match p {
                    Stored::Ratio(n, d) => (num.saturating_add(*n), den.saturating_add(*d)),
                    _ => (num, den),
                });
            (
                types::float_text(num as f64 / den as f64),
                Some(format!("{num} {den}")),
            )
        }
        (Storage::Histogram, Summary::Aggregation | Summary::Statistics) => {
            let new = points.into_iter().filter_map(|p| match p {
                Stored::Json(point) => Some(point.clone()),
                _ => None,
            });
            // What the bin merged so far: an aggregation's value, a statistics point's
            // state (a statistics point of an older archive has none: made again).
            let so_far = match (summary, &held, &state) {
                (_, None, _) => Some(Value::Object(Default::default())),
                (Summary::Aggregation, Some(value), _) => {
                    value.as_deref().and_then(|v| serde_json::from_str(v).ok())
                }
                (_, Some(_), Some(merged)) => serde_json::from_str(merged).ok(),
                (_, Some(_), None) => None,
            };
            let merged = match so_far {
                Some(so_far) if window > 0 && !rebuild => {
                    statistics::merge(std::iter::once(so_far).chain(new))
                }
                _ if window == 0 => statistics::merge(new),
                _ => {
                    let histograms = tx.all(
                        "SELECT value FROM point WHERE series_id = ?1 AND ts >= ?2 AND ts < ?3",
                        args![base, bin, bin.saturating_add(window)],
                        |r| r.string(0),
                    )?;
                    statistics::merge(
                        histograms
                            .iter()
                            .filter_map(|h| serde_json::from_str(h).ok()),
                    )
                }
            };
            match summary {
                Summary::Aggregation => (Value::Object(merged).to_string(), None),
                // A windowed statistics point keeps the bin's merged histogram as its
                // state, so the next point is merged into it, not into every base point.
                _ if window > 0 => {
                    let value = statistics::statistics(&merged).to_string();
                    (value, Some(Value::Object(merged).to_string()))
                }
                _ => (statistics::statistics(&merged).to_string(), None),
            }
        }
        _ => return Ok(()),
    };
    tx.cover(bin, bin)?;
    tx.execute(
        "INSERT INTO point (series_id, ts, value, state) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value, state = excluded.state",
        args![series, bin, &value, new_state.as_deref()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::borrow::Cow;

    fn throughput_metadata() -> NewMetadata {
        NewMetadata {
            subject_type: "point-to-point".into(),
            subject: vec![
                ("source", "10.0.0.1".into()),
                ("destination", "10.0.0.2".into()),
            ],
            parameters: vec![],
            event_types: vec![("throughput".into(), vec![])],
        }
    }

    /// An event type's time-updated is its newest point's, for its summaries too (kept on
    /// the base series alone), and a search by time range with a summary finds the
    /// metadata whose event type has that summary and was updated in the range.
    #[test]
    fn time_updated_is_the_event_types_and_searches_by_range_use_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut keys = Vec::new();
        for (i, ts) in [1_000, 5_000].into_iter().enumerate() {
            let mut new = throughput_metadata();
            new.subject[0].1 = format!("10.0.0.{}", 10 + i);
            new.event_types = vec![(
                "throughput".into(),
                vec![(Summary::Average, 86_400), (Summary::Aggregation, 3_600)],
            )];
            let (key, _) = store.create_metadata(&new).unwrap();
            for t in [ts - 100, ts] {
                store
                    .write_points(&key, [Ok(vec![(t, Cow::Borrowed("throughput"), json!(t))])])
                    .unwrap();
            }
            keys.push(key);
        }
        let found = store.metadata(&keys[1]).unwrap().unwrap();
        let times: Vec<Option<i64>> = found.event_types[0].1.iter().map(|s| s.updated).collect();
        assert_eq!(times, [Some(5_000); 3]);
        let search = |summary: Option<&str>, window: Option<i64>, range: (i64, Option<i64>)| {
            let condition = Condition::Series {
                event_type: Some("throughput".into()),
                summary: summary.map(str::to_owned),
                window,
                range: Some(range),
            };
            let (found, _) = store.search(&[condition], 100, 0).unwrap();
            found.into_iter().map(|m| m.key).collect::<Vec<_>>()
        };
        assert_eq!(search(None, None, (3_000, None)), [keys[1].clone()]);
        assert_eq!(
            search(Some("average"), Some(86_400), (0, Some(2_000))),
            [keys[0].clone()]
        );
        assert_eq!(
            search(Some("average"), Some(3_600), (0, None)),
            Vec::<String>::new()
        );
        assert_eq!(search(Some("aggregation"), None, (0, None)).len(), 2);
        assert_eq!(
            search(Some("base"), Some(0), (4_950, Some(5_000))),
            [keys[1].clone()]
        );
    }

    /// Reading a series again and again prepares its statement once per reader: SQLite
    /// prepared it again on every use (plans hung on bound values, which rusqlite clears
    /// after each use), ~125 µs of CPU per read. Limit and offset still hold.
    #[test]
    fn reading_points_again_does_not_prepare_their_statement_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (key, _) = store.create_metadata(&throughput_metadata()).unwrap();
        let points = (0..10).map(|t| Ok(vec![(100 + t, Cow::Borrowed("throughput"), json!(t))]));
        store.write_points(&key, points).unwrap();
        let query = |limit, offset| SeriesQuery {
            key: &key,
            event_type: "throughput",
            summary: Summary::Base,
            window: 0,
            begin: 0,
            end: 1000,
            limit,
            offset,
        };
        for round in 0..4 * READERS as u64 {
            let read = store.points(&query(2 + round % 3, round % 4)).unwrap();
            let (limit, offset) = (2 + round % 3, round % 4);
            let expected: Vec<String> = (offset..(offset + limit).min(10))
                .map(|t| format!("{{\"ts\":{},\"val\":{}.0}}", 100 + t, t))
                .collect();
            assert_eq!(read, format!("[{}]", expected.join(",")));
        }
        for reader in &store.readers {
            let reader = reader.lock().unwrap();
            let Conn::Lite(reader) = &*reader else {
                unreachable!("a SQLite store")
            };
            let statement = reader.prepare_cached(POINTS_SQL).unwrap();
            assert_eq!(
                statement.get_status(rusqlite::StatementStatus::RePrepare),
                0
            );
        }
    }

    /// A metadata with numeric series of each storage and their summaries.
    fn summarised_metadata() -> NewMetadata {
        let mut new = throughput_metadata();
        new.event_types = vec![
            (
                "throughput".into(),
                vec![(Summary::Average, 300), (Summary::Aggregation, 3600)],
            ),
            (
                "packet-count-sent".into(),
                vec![(Summary::Aggregation, 300)],
            ),
            ("packet-loss-rate".into(), vec![(Summary::Aggregation, 600)]),
        ];
        new
    }

    /// Every stored point of `store` (series as event type, summary and window; time,
    /// value, state), in order.
    fn all_points(store: &Store) -> Vec<(String, i64, String, Option<String>)> {
        store
            .read(|c| {
                c.all(
                    "SELECT s.event_type || '/' || s.summary || '/' || s.win, p.ts, p.value, p.state FROM point p JOIN series s ON s.id = p.series_id ORDER BY 1, 2",
                    &[],
                    |r| Ok((r.string(0)?, r.i64(1)?, r.string(2)?, r.opt_string(3)?)),
                )
            })
            .unwrap()
    }

    /// A pScheduler run of `metadata` at `ts`, for the tests.
    fn test_run<'a>(
        id: &'a str,
        metadata: &NewMetadata,
        extra: Vec<(String, Vec<(Summary, i64)>)>,
        ts: i64,
        values: Vec<(String, Value)>,
    ) -> NewRun<'a> {
        NewRun {
            id,
            metadata: metadata.clone(),
            extra,
            ts,
            values,
            received: 0,
            test_type: "rtt",
            tool: "ping",
            succeeded: true,
            run_href: None,
            task_href: None,
            test_checksum: "x",
            observer: None,
            body: "{}",
        }
    }

    /// The points (at most 10) of a series of the metadata `key` in 0–100,000 s, as JSON.
    fn series_points(
        store: &Store,
        key: &str,
        event_type: &str,
        summary: Summary,
        window: i64,
    ) -> String {
        store
            .points(&SeriesQuery {
                key,
                event_type,
                summary,
                window,
                begin: 0,
                end: 100_000,
                limit: 10,
                offset: 0,
            })
            .unwrap()
    }

    /// A run whose time already holds another numeric value of one event type is stored
    /// with that event type noted as collided (the held value stays); its other values,
    /// and a histogram (raw: replaced), are written and summarised.
    #[test]
    fn a_run_colliding_with_a_held_value_is_stored_and_the_collision_noted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut metadata = throughput_metadata();
        metadata.event_types = vec![
            ("throughput".into(), vec![(Summary::Average, 86_400)]),
            ("packet-retransmits".into(), vec![]),
            ("histogram-rtt".into(), vec![(Summary::Aggregation, 3_600)]),
        ];
        let run = |id: &'static str, throughput: f64, retransmits: i64, bucket: &str| {
            let values = vec![
                ("throughput".to_owned(), json!(throughput)),
                ("packet-retransmits".to_owned(), json!(retransmits)),
                ("histogram-rtt".to_owned(), json!({ bucket: 3 })),
            ];
            store
                .write_run(&test_run(id, &metadata, vec![], 7_200, values))
                .unwrap()
        };
        let RunOutcome::Stored(key, collided) = run("a", 1000.0, 2, "0.5") else {
            panic!("the first run is stored");
        };
        assert!(collided.is_empty());
        let RunOutcome::Stored(_, collided) = run("b", 2000.0, 2, "0.7") else {
            panic!("the second run is stored");
        };
        assert_eq!(collided, ["throughput"]);
        let point = |event_type: &str, summary: Summary, window: i64| {
            series_points(&store, &key, event_type, summary, window)
        };
        assert_eq!(
            point("throughput", Summary::Base, 0),
            r#"[{"ts":7200,"val":1000.0}]"#
        );
        assert_eq!(
            point("throughput", Summary::Average, 86_400),
            r#"[{"ts":0,"val":1000.0}]"#
        );
        assert_eq!(
            point("packet-retransmits", Summary::Base, 0),
            r#"[{"ts":7200,"val":2.0}]"#
        );
        assert_eq!(
            point("histogram-rtt", Summary::Base, 0),
            r#"[{"ts":7200,"val":{"0.7":3}}]"#
        );
        assert_eq!(
            point("histogram-rtt", Summary::Aggregation, 3_600),
            r#"[{"ts":7200,"val":{"0.7":3}}]"#
        );
    }

    /// A test's later run registers the extra series its metadata lacks and folds into
    /// them, and a run after that folds the same.
    #[test]
    fn a_later_run_registers_the_extra_series_it_lacks_and_folds_into_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut metadata = throughput_metadata();
        metadata.event_types = vec![("throughput".into(), vec![(Summary::Average, 86_400)])];
        let run = |id: &'static str, ts: i64, throughput: f64, histogram: Option<Value>| {
            let mut values = vec![("throughput".to_owned(), json!(throughput))];
            let mut extra = vec![];
            if let Some(histogram) = histogram {
                values.push(("histogram-rtt".to_owned(), histogram));
                extra.push((
                    "histogram-rtt".to_owned(),
                    vec![(Summary::Aggregation, 3_600)],
                ));
            }
            match store
                .write_run(&test_run(id, &metadata, extra, ts, values))
                .unwrap()
            {
                RunOutcome::Stored(key, collided) if collided.is_empty() => key,
                other => panic!("{other:?}"),
            }
        };
        let key = run("a", 7_200, 1000.0, None);
        assert_eq!(run("b", 10_800, 2000.0, Some(json!({"0.5": 2}))), key);
        assert_eq!(run("c", 10_801, 3000.0, Some(json!({"0.5": 1}))), key);
        let point = |event_type: &str, summary: Summary, window: i64| {
            series_points(&store, &key, event_type, summary, window)
        };
        assert_eq!(
            point("throughput", Summary::Average, 86_400),
            r#"[{"ts":0,"val":2000.0}]"#
        );
        assert_eq!(
            point("histogram-rtt", Summary::Aggregation, 3_600),
            r#"[{"ts":10800,"val":{"0.5":3}}]"#
        );
        assert_eq!(
            point("histogram-rtt", Summary::Base, 0),
            r#"[{"ts":10800,"val":{"0.5":2}},{"ts":10801,"val":{"0.5":1}}]"#
        );
    }

    /// Histogram summaries merged point by point (each bin from what it held) are what
    /// merging every base histogram of the bin gives, also when a base histogram is
    /// replaced by another (the bin is then made again from its base points).
    #[test]
    fn histogram_summaries_merged_point_by_point_equal_a_merge_of_their_bin() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(18);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut new = throughput_metadata();
        new.event_types = vec![(
            "histogram-owdelay".into(),
            vec![
                (Summary::Aggregation, 3600),
                (Summary::Statistics, 0),
                (Summary::Statistics, 3600),
            ],
        )];
        let (key, _) = store.create_metadata(&new).unwrap();
        let mut base: std::collections::BTreeMap<i64, Value> = Default::default();
        for _ in 0..300 {
            // Times repeat often: a repeated time replaces the histogram held there.
            let ts = 1_700_000_000 + rng.random_range(0..40) * 300;
            let histogram: serde_json::Map<String, Value> = (0..rng.random_range(1..4))
                .map(|_| {
                    let bucket = format!("{:.1}", rng.random_range(1..30) as f64 / 10.0);
                    (bucket, json!(rng.random_range(1..20)))
                })
                .collect();
            let value = Value::Object(histogram);
            store
                .write_points(
                    &key,
                    [Ok(vec![(
                        ts,
                        Cow::Borrowed("histogram-owdelay"),
                        value.clone(),
                    )])],
                )
                .unwrap();
            base.insert(ts, value);
        }
        let stored: HashMap<(String, i64), String> = all_points(&store)
            .into_iter()
            .map(|(series, ts, value, _)| ((series, ts), value))
            .collect();
        let mut bins: std::collections::BTreeMap<i64, Vec<Value>> = Default::default();
        for (ts, histogram) in &base {
            bins.entry(ts - ts % 3600)
                .or_default()
                .push(histogram.clone());
            let alone = statistics::statistics(&statistics::merge([histogram.clone()]));
            assert_eq!(
                stored[&("histogram-owdelay/statistics/0".to_owned(), *ts)],
                alone.to_string()
            );
        }
        for (bin, histograms) in bins {
            let merged = statistics::merge(histograms);
            assert_eq!(
                stored[&("histogram-owdelay/aggregation/3600".to_owned(), bin)],
                Value::Object(merged.clone()).to_string(),
                "bin {bin}"
            );
            assert_eq!(
                stored[&("histogram-owdelay/statistics/3600".to_owned(), bin)],
                statistics::statistics(&merged).to_string(),
                "bin {bin}"
            );
        }
    }

    /// Points written as one bulk write (held back and written in runs, their summary
    /// bins folded once) leave the archive exactly as the same points written one at a
    /// time: over stored points and beside them, with times repeated, out of order and
    /// spanning bins, for integer, float and percentage storage.
    #[test]
    fn points_written_together_are_stored_as_written_one_by_one() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(14);
        for round in 0..40 {
            let n = rng.random_range(1..400);
            let mut points = Vec::new();
            let mut ts = 1_700_000_000i64;
            for _ in 0..n {
                // Mostly rising, sometimes repeated or going back.
                ts += match rng.random_range(0..20) {
                    0 => 0,
                    1 => -rng.random_range(1..200),
                    _ => rng.random_range(1..90),
                };
                let v = rng.random_range(0..1_000_000i64);
                points.push(match rng.random_range(0..4) {
                    0 => (ts, "packet-count-sent", json!(v)),
                    1 => (
                        ts,
                        "packet-loss-rate",
                        json!({"numerator": v % 7, "denominator": 10}),
                    ),
                    _ => (ts, "throughput", json!(v as f64 / 3.0)),
                });
            }
            // A point repeated later gets the value it had: a conflict is not the subject.
            let mut first: HashMap<(i64, &str), Value> = HashMap::new();
            for (ts, event_type, value) in &mut points {
                *value = first
                    .entry((*ts, *event_type))
                    .or_insert(value.clone())
                    .clone();
            }
            // Some are stored beforehand, one by one in both archives.
            let (before, during) = points.split_at(rng.random_range(0..=points.len() / 2));
            let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
            let stores = dirs.each_ref().map(|d| Store::open(d.path()).unwrap());
            let keys = stores
                .each_ref()
                .map(|s| s.create_metadata(&summarised_metadata()).unwrap().0);
            let item = |(ts, e, v): &(i64, &'static str, Value)| -> Result<Vec<Point>, Failure> {
                Ok(vec![(*ts, Cow::Borrowed(*e), v.clone())])
            };
            for (store, key) in stores.iter().zip(&keys) {
                for point in before {
                    store.write_points(key, [item(point)]).unwrap();
                }
            }
            stores[0]
                .write_points(&keys[0], during.iter().map(item))
                .unwrap();
            for point in during {
                stores[1].write_points(&keys[1], [item(point)]).unwrap();
            }
            assert_eq!(
                all_points(&stores[0]),
                all_points(&stores[1]),
                "round {round}"
            );
        }
    }

    /// A base point is stored without its state when its JSON reads back as the same
    /// value. An identical re-send is a no-op and another value a conflict, also when the
    /// two share their JSON text (2^53 and 2^53 + 1 both read 9007199254740992.0), and
    /// over points an earlier measpipe stored with their state.
    #[test]
    fn base_points_keep_their_state_only_when_their_json_loses_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut new = throughput_metadata();
        new.event_types = vec![("packet-count-sent".into(), vec![])];
        let (key, _) = store.create_metadata(&new).unwrap();
        let exact = 1i64 << 53;
        let point = |ts: i64, v: i64| Ok(vec![(ts, Cow::Borrowed("packet-count-sent"), json!(v))]);
        let sent = [(1, exact), (2, exact + 1), (3, 7), (4, 8)];
        store
            .write_points(&key, sent.map(|(ts, v)| point(ts, v)))
            .unwrap();
        let stored = all_points(&store);
        let states: Vec<_> = stored.iter().map(|p| p.3.as_deref()).collect();
        assert_eq!(states, [None, Some("9007199254740993"), None, None]);
        // As an earlier measpipe stored it.
        store
            .write(|c| c.execute("UPDATE point SET state = '8' WHERE ts = 4", &[]))
            .unwrap();
        let stored = all_points(&store);
        for (ts, v) in sent {
            store.write_points(&key, [point(ts, v)]).unwrap();
            store
                .write_points(&key, (1..=4).map(|t| point(t, sent[t as usize - 1].1)))
                .unwrap();
        }
        assert_eq!(all_points(&store), stored);
        for (ts, v) in [(1, exact + 1), (2, exact), (4, 9)] {
            let failure = store.write_points(&key, [point(ts, v)]).unwrap_err();
            assert_eq!(failure.status, 409, "{ts}");
        }
        assert_eq!(all_points(&store), stored);
    }

    /// A point of a bulk write whose time holds another value fails the write with
    /// esmond's message, whether it is held back in a run or not, and none of the
    /// write's points land.
    #[test]
    fn a_point_in_a_run_over_another_value_fails_the_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (key, _) = store.create_metadata(&summarised_metadata()).unwrap();
        let point = |ts: i64, v: i64| Ok(vec![(ts, Cow::Borrowed("packet-count-sent"), json!(v))]);
        store.write_points(&key, [point(105, 1)]).unwrap();
        let stored = all_points(&store);
        let failure = store
            .write_points(&key, (100..110).map(|ts| point(ts, 2)))
            .unwrap_err();
        assert_eq!(failure.status, 409);
        assert_eq!(
            failure.detail,
            "Time series value already exists with event type packet-count-sent at time 105"
        );
        assert_eq!(all_points(&store), stored);
    }

    /// An archive of schema version 0 opens migrated: its metadata keeps its key and
    /// parameters, is found by a parameter search, and a record with the same metadata
    /// lands in it instead of creating another.
    #[test]
    fn a_version_0_archive_is_migrated_when_it_opens() {
        let dir = tempfile::tempdir().unwrap();
        let mut new = throughput_metadata();
        new.parameters = vec![
            ("tcp-window-size".into(), "131072".into()),
            ("bw-parallel-streams".into(), "4".into()),
        ];
        {
            let c = Connection::open(dir.path().join("archive.sqlite")).unwrap();
            c.execute_batch(
                "CREATE TABLE metadata (id INTEGER PRIMARY KEY, key TEXT NOT NULL,
                     checksum TEXT NOT NULL UNIQUE, subject_type TEXT NOT NULL,
                     source TEXT, destination TEXT, measurement_agent TEXT,
                     tool_name TEXT, input_source TEXT, input_destination TEXT);
                 CREATE UNIQUE INDEX metadata_by_key ON metadata(key);
                 CREATE INDEX metadata_source ON metadata(source);
                 CREATE TABLE parameter (metadata_id INTEGER NOT NULL, name TEXT NOT NULL,
                     value TEXT NOT NULL, PRIMARY KEY (metadata_id, name)) WITHOUT ROWID;
                 CREATE INDEX parameter_lookup ON parameter(name, value, metadata_id);
                 CREATE TABLE series (id INTEGER PRIMARY KEY, metadata_id INTEGER NOT NULL,
                     event_type TEXT NOT NULL, summary TEXT NOT NULL, win INTEGER NOT NULL,
                     updated INTEGER, UNIQUE (metadata_id, event_type, summary, win));
                 CREATE TABLE point (series_id INTEGER NOT NULL, ts INTEGER NOT NULL,
                     value TEXT NOT NULL, state TEXT, PRIMARY KEY (series_id, ts)) WITHOUT ROWID;
                 CREATE TABLE token (user TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE,
                     created INTEGER NOT NULL);",
            )
            .unwrap();
            c.execute(
                "INSERT INTO metadata (id, key, checksum, subject_type, source, destination) VALUES (7, 'k0', ?1, 'point-to-point', '10.0.0.1', '10.0.0.2')",
                [sha256_hex(&checksum_text(&new))],
            )
            .unwrap();
            c.execute_batch(
                "INSERT INTO parameter VALUES (7, 'tcp-window-size', '131072'), (7, 'bw-parallel-streams', '4');
                 INSERT INTO series VALUES (1, 7, 'throughput', 'base', 0, 10);
                 INSERT INTO point VALUES (1, 10, '5.0', '50000');",
            )
            .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let metadata = store.metadata("k0").unwrap().unwrap();
        assert_eq!(
            metadata.parameters,
            vec![
                ("bw-parallel-streams".to_owned(), "4".to_owned()),
                ("tcp-window-size".to_owned(), "131072".to_owned()),
            ]
        );
        let (found, count) = store
            .search(
                &[Condition::Parameter(
                    "tcp-window-size".into(),
                    "131072".into(),
                )],
                10,
                0,
            )
            .unwrap();
        assert_eq!((found[0].key.as_str(), count), ("k0", 1));
        let outcomes = store
            .write_records([Ok((new, vec![(20, Cow::Borrowed("throughput"), json!(6))]))])
            .unwrap();
        assert_eq!(outcomes, vec![Outcome::Stored("k0".into())]);
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.metadata("k0").unwrap().unwrap().parameters.len(), 2);
    }

    /// A single steady writer's log starts over near its checkpoint size instead of
    /// growing to four times it (a commit that grows the file costs a metadata journal
    /// write more): 300 commits of 1,000 points each add ~4,500 pages to the log.
    #[test]
    fn a_steady_writer_s_log_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (key, _) = store.create_metadata(&throughput_metadata()).unwrap();
        let wal = dir.path().join("archive.sqlite-wal");
        let mut largest = 0;
        for batch in 0..300i64 {
            let points = (0..1000).map(|i| {
                (
                    batch * 1000 + i,
                    Cow::Borrowed("throughput"),
                    json!(9_000_000_000i64 + i),
                )
            });
            store.write_points(&key, [Ok(points.collect())]).unwrap();
            largest = largest.max(std::fs::metadata(&wal).unwrap().len());
        }
        // 1,000 pages of 4,096 bytes and their 24-byte frame headers, with what one
        // more pass of the thread and a commit add (the log once reached 16 MB).
        assert!(largest < 2_000 * 4_120, "the log reached {largest} bytes");
    }

    /// Writes at once share transactions (group commit); one that fails is undone alone,
    /// every other is stored.
    #[test]
    fn concurrent_writes_share_commits_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (key, _) = store.create_metadata(&throughput_metadata()).unwrap();
        let barrier = std::sync::Barrier::new(16);
        let outcomes: Vec<bool> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..16i64)
                .map(|w| {
                    let (store, key, barrier) = (&store, &key, &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        let mut ok = true;
                        for round in 0..20i64 {
                            let ts = (w * 100 + round) * 2;
                            // Writer 7's tenth write holds a bad value after a good one.
                            let bad = w == 7 && round == 10;
                            let points = vec![
                                (ts, Cow::Borrowed("throughput"), json!(1)),
                                (
                                    ts + 1,
                                    Cow::Borrowed("throughput"),
                                    if bad { json!("fast") } else { json!(2) },
                                ),
                            ];
                            ok &= store.write_points(key, [Ok(points)]).is_ok() != bad;
                        }
                        ok
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(outcomes.iter().all(|&ok| ok));
        let stored = store
            .points(&SeriesQuery {
                key: &key,
                event_type: "throughput",
                summary: Summary::Base,
                window: 0,
                begin: 0,
                end: 1_000_000,
                limit: 1_000_000,
                offset: 0,
            })
            .unwrap();
        let stamps: Vec<i64> = serde_json::from_str::<Value>(&stored)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["ts"].as_i64().unwrap())
            .collect();
        let mut want: Vec<i64> = (0..16i64)
            .flat_map(|w| (0..20i64).map(move |r| (w, r)))
            .filter(|&(w, r)| !(w == 7 && r == 10))
            .flat_map(|(w, r)| {
                let ts = (w * 100 + r) * 2;
                [ts, ts + 1]
            })
            .collect();
        want.sort_unstable();
        assert_eq!(stamps, want);
    }
}
