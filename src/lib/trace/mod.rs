//! Tracers: samplers and wrappers that print trace records (records.md §4) as they go.
//! They are scalpels' tracers and workers (notigen-scalpels.md §3), except that they stream:
//! scalpels held every sample in memory until stop and lost what a worker printed after the
//! signal.
//!
//! Every record carries its task and tracer ([`Tags`]). A sampler ticks on a fixed
//! schedule ([`Ticker`]) and flushes each tick's records at once.

pub mod agent;
pub mod netdev;
pub mod port;
pub mod proc;
pub mod protocol;
pub mod registry;
pub mod report;
pub mod stamp;
pub mod store;

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::ndjson::NdjsonWriter;
use crate::record::fast::{WriteJson, WriteMembers};
use crate::record::{Trace, TraceKind};

/// The task and tracer names every record of one tracer carries.
#[derive(Debug, Clone)]
pub struct Tags {
    /// The task that started the tracer (a supervisor passes it in `MEASPIPE_TASK`).
    pub task: String,
    /// The tracer's name.
    pub tracer: String,
}

impl Tags {
    /// Writes one record: `series` sampled at `ts` (epoch seconds), its unit and value,
    /// then the tracer's own fields.
    pub fn write<V: Serialize, X: Serialize>(
        &self,
        out: &mut NdjsonWriter,
        ts: f64,
        series: &str,
        unit: &str,
        value: V,
        extra: X,
    ) -> Result<(), crate::Error> {
        out.write_record(&self.record(ts, series, unit, value, extra))
    }

    /// [`write`](Tags::write) through the byte-level writer, for tracers that write many
    /// records a second (proc-trace: a dozen per process per sample).
    pub fn write_fast<V: WriteJson, X: WriteMembers>(
        &self,
        out: &mut NdjsonWriter,
        ts: f64,
        series: &str,
        unit: &str,
        value: V,
        extra: X,
    ) -> Result<(), crate::Error> {
        out.write_json(&self.record(ts, series, unit, value, extra))
    }

    fn record<'a, V, X>(
        &'a self,
        ts: f64,
        series: &'a str,
        unit: &'a str,
        value: V,
        extra: X,
    ) -> Trace<'a, V, X> {
        Trace {
            kind: TraceKind,
            task: self.task.as_str().into(),
            tracer: self.tracer.as_str().into(),
            ts,
            series: series.into(),
            unit: unit.into(),
            value,
            extra,
        }
    }
}

/// No tracer-specific fields.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct NoFields {}

impl WriteMembers for NoFields {
    fn write_members(&self, _: &mut Vec<u8>) {}
}

/// Ticks every `interval` after a start, without drift (a slow tick does not push the
/// later ones back; ticks missed entirely are skipped).
#[derive(Debug)]
pub struct Ticker {
    start: Instant,
    interval: Duration,
    next: u64,
}

impl Ticker {
    /// A ticker whose first tick is now.
    pub fn new(interval: Duration) -> Ticker {
        Ticker {
            start: Instant::now(),
            interval,
            next: 0,
        }
    }

    /// Sleeps until the next tick is due and returns its number (0 for the first), or
    /// `None` as soon as `stop` says so (it is asked every 50 ms).
    pub fn wait(&mut self, stop: impl Fn() -> bool) -> Option<u64> {
        let due = self.start + self.interval.mul_f64(self.next as f64);
        let now = Instant::now();
        if due > now {
            let mut left = due - now;
            while !left.is_zero() {
                if stop() {
                    return None;
                }
                let nap = left.min(Duration::from_millis(50));
                std::thread::sleep(nap);
                left = due.saturating_duration_since(Instant::now());
            }
        } else if !self.interval.is_zero() {
            // Late by more than a whole interval: skip to the tick now due.
            let late = (now - self.start).as_secs_f64() / self.interval.as_secs_f64();
            self.next = self.next.max(late.floor() as u64);
        }
        if stop() {
            return None;
        }
        let tick = self.next;
        self.next += 1;
        Some(tick)
    }
}

/// A counter's rate per second between two readings `seconds` apart; `None` without an
/// earlier reading, or if the counter went back (it was reset).
pub fn rate(now: u64, before: Option<u64>, seconds: f64) -> Option<f64> {
    let before = before?;
    (now >= before && seconds > 0.0).then(|| (now - before) as f64 / seconds)
}
