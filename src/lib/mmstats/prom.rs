//! Stats files as Prometheus metrics: the text exposition format (for node_exporter's
//! textfile collector, and `/metrics`), optionally ending with OpenMetrics' `# EOF`.
//!
//! Files are aggregated by label, the way Prometheus' own multiprocess mode does, so a
//! scrape has one series per metric rather than one per writer thread:
//! * counters (native) are summed over every file, those of exited writers included, so
//!   a total never goes backwards when a worker exits; exposed as `<name>_total`;
//! * averages, moving averages and timers become summaries: their counts and sums, summed
//!   the same way;
//! * histograms are merged bucket by bucket into a histogram whose `le` bounds are the
//!   powers of two minus one (`0, 1, 3, 7, …`), exact for the log-linear buckets;
//! * gauges, booleans and every number of a format 1 file (whose counters cannot be told
//!   from gauges) are per live process, `{pid="…"}`, summed over its threads' files; a
//!   dead writer's gauges are dropped;
//! * text is not exposed.
//!
//! Names are the labels with every character outside `[a-zA-Z0-9_:]` made `_` (the dots
//! of `web.stats.hits`) and an optional prefix. A name used by two kinds keeps the first
//! kind seen; the other fields are counted in [`Exposition::conflicts`].

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::histogram::bucket_range;
use super::process::{self, Liveness};
use super::{Format, StatsFile, Value};

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Summary,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
            Kind::Histogram => "histogram",
        }
    }
}

/// What a family has gathered.
#[derive(Debug)]
struct Family {
    kind: Kind,
    label: String,
    /// Counter: the total. Summary and histogram: the sum.
    sum: f64,
    /// Summary and histogram: how many observations.
    count: u64,
    /// Histogram: observations per power-of-two bound (index k is `le = 2^k - 1`).
    bounds: Vec<u64>,
    /// Gauge: the value per live pid.
    per_pid: BTreeMap<u32, f64>,
}

/// Stats files gathered into metric families; [`render`](Exposition::render) writes them.
#[derive(Debug, Default)]
pub struct Exposition {
    prefix: String,
    families: BTreeMap<String, Family>,
    alive: HashMap<u32, bool>,
    /// Fields skipped because their name was already used by a metric of another kind.
    pub conflicts: usize,
    /// Files whose writer has exited (their counters still count).
    pub dead_files: usize,
}

impl Exposition {
    /// An empty exposition whose metric names start with `prefix` (may be empty).
    pub fn new(prefix: &str) -> Self {
        Exposition {
            prefix: prefix.to_owned(),
            ..Self::default()
        }
    }

    /// Adds one file's fields.
    pub fn add(&mut self, stats: &StatsFile) {
        let alive = self.writer_alive(stats);
        self.add_as(stats, alive);
    }

    /// Whether the file's writer is still there: its pid exists and it did not close the
    /// file.
    fn writer_alive(&mut self, stats: &StatsFile) -> bool {
        stats.owner.pid.is_some_and(|pid| self.alive(pid)) && !stats.owner.closed
    }

    /// Adds one file's fields, its writer known to be alive or not.
    fn add_as(&mut self, stats: &StatsFile, alive: bool) {
        let pid = stats.owner.pid;
        if !alive {
            self.dead_files += 1;
        }
        for field in &stats.fields {
            let (kind, sum, count, gauge) = match (&field.value, stats.format) {
                (Value::Text(_) | Value::Null, _) => continue,
                (Value::U64(v), Format::Native) if field.type_code == "counter" => {
                    (Kind::Counter, *v as f64, 0, None)
                }
                (Value::Summary(s), Format::Native) => (Kind::Summary, s.sum, s.count, None),
                (Value::Histogram(h), _) => (Kind::Histogram, h.sum as f64, h.count, None),
                (value, _) => match value.number() {
                    Some(n) => (Kind::Gauge, 0.0, 0, Some(n.as_f64())),
                    None => continue,
                },
            };
            if kind == Kind::Gauge && !alive {
                continue;
            }
            let name = self.name(&field.label, kind);
            let family = self.families.entry(name).or_insert_with(|| Family {
                kind,
                label: field.label.clone(),
                sum: 0.0,
                count: 0,
                bounds: Vec::new(),
                per_pid: BTreeMap::new(),
            });
            if family.kind != kind {
                self.conflicts += 1;
                continue;
            }
            family.sum += sum;
            family.count = family.count.saturating_add(count);
            if let (Some(value), Some(pid)) = (gauge, pid) {
                *family.per_pid.entry(pid).or_insert(0.0) += value;
            }
            if let Value::Histogram(h) = &field.value {
                for (index, &n) in h.buckets.iter().enumerate() {
                    if n == 0 {
                        continue;
                    }
                    let (_, high) = bucket_range(index, h.sub_bits);
                    // The smallest k with 2^k - 1 >= high.
                    let k = (64 - high.leading_zeros()) as usize;
                    if family.bounds.len() <= k {
                        family.bounds.resize(k + 1, 0);
                    }
                    family.bounds[k] = family.bounds[k].saturating_add(n);
                }
            }
        }
    }

    fn alive(&mut self, pid: u32) -> bool {
        *self
            .alive
            .entry(pid)
            .or_insert_with(|| !matches!(process::liveness(pid), Ok(Liveness::Gone)))
    }

    fn name(&self, label: &str, kind: Kind) -> String {
        let mut name = String::with_capacity(self.prefix.len() + label.len() + 6);
        name.push_str(&self.prefix);
        for c in label.chars() {
            name.push(if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            });
        }
        if name.starts_with(|c: char| c.is_ascii_digit()) || name.is_empty() {
            name.insert(0, '_');
        }
        if kind == Kind::Counter && !name.ends_with("_total") {
            name.push_str("_total");
        }
        name
    }

    /// Writes the exposition: `# HELP` and `# TYPE` lines, then the samples of each
    /// family, in name order; `openmetrics` ends it with `# EOF`.
    pub fn render(&self, out: &mut String, openmetrics: bool) {
        for (name, family) in &self.families {
            // OpenMetrics names a counter family without its `_total`.
            let family_name = match (openmetrics, family.kind) {
                (true, Kind::Counter) => name.strip_suffix("_total").unwrap_or(name),
                _ => name,
            };
            let help = family.label.replace('\\', "\\\\").replace('\n', "\\n");
            let _ = writeln!(out, "# HELP {family_name} mmstats field {help}");
            let _ = writeln!(out, "# TYPE {family_name} {}", family.kind.name());
            match family.kind {
                Kind::Counter => sample(out, name, "", family.sum),
                Kind::Gauge => {
                    for (pid, value) in &family.per_pid {
                        sample(out, name, &format!("{{pid=\"{pid}\"}}"), *value);
                    }
                }
                Kind::Summary => {
                    sample(out, &format!("{name}_sum"), "", family.sum);
                    sample(out, &format!("{name}_count"), "", family.count as f64);
                }
                Kind::Histogram => {
                    let mut cumulative = 0u64;
                    for (k, n) in family.bounds.iter().enumerate() {
                        cumulative = cumulative.saturating_add(*n);
                        let le = if k == 64 { u64::MAX } else { (1u64 << k) - 1 };
                        let labels = format!("{{le=\"{le}\"}}");
                        sample(out, &format!("{name}_bucket"), &labels, cumulative as f64);
                    }
                    let count = family.count as f64;
                    sample(out, &format!("{name}_bucket"), "{le=\"+Inf\"}", count);
                    sample(out, &format!("{name}_sum"), "", family.sum);
                    sample(out, &format!("{name}_count"), "", count);
                }
            }
        }
        if openmetrics {
            out.push_str("# EOF\n");
        }
    }
}

/// Repeated expositions of the same files (a server's `/metrics`), remembering what was
/// read of the files whose writer has exited or closed them: such a file never changes
/// again, so it is read once, not at every scrape (a directory of a busy site is mostly
/// files of exited workers, and their counters still count). A remembered file is read
/// again when its size, times or inode change; one no longer matched is forgotten.
#[derive(Debug, Default)]
pub struct Scraper {
    finished: HashMap<PathBuf, Finished>,
}

#[derive(Debug)]
struct Finished {
    identity: Identity,
    stats: StatsFile,
}

/// What tells one file from its replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Identity {
    fn of(path: &Path) -> Option<Identity> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        })
    }
}

/// What one scrape did, besides the exposition.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScrapeCounts {
    /// Files read now.
    pub read: usize,
    /// Files of finished writers taken from memory.
    pub remembered: usize,
    /// Files that could not be read (skipped).
    pub unreadable: usize,
}

impl Scraper {
    /// The exposition of `paths` now; unreadable files are skipped and counted.
    pub fn scrape(&mut self, paths: &[PathBuf], prefix: &str) -> (Exposition, ScrapeCounts) {
        let mut exposition = Exposition::new(prefix);
        let mut counts = ScrapeCounts::default();
        let mut kept = HashMap::with_capacity(self.finished.len());
        for path in paths {
            let identity = Identity::of(path);
            if let Some(known) = self.finished.remove(path) {
                if Some(known.identity) == identity {
                    exposition.add_as(&known.stats, false);
                    counts.remembered += 1;
                    kept.insert(path.clone(), known);
                    continue;
                }
            }
            let Ok(stats) = super::read(path) else {
                counts.unreadable += 1;
                continue;
            };
            counts.read += 1;
            let alive = exposition.writer_alive(&stats);
            exposition.add_as(&stats, alive);
            // Only a writer known to be gone (not a file without a pid) is final.
            let finished = stats.owner.closed || (stats.owner.pid.is_some() && !alive);
            if let (true, Some(identity)) = (finished, identity) {
                kept.insert(path.clone(), Finished { identity, stats });
            }
        }
        self.finished = kept;
        (exposition, counts)
    }
}

/// One sample line; non-finite values as Prometheus spells them.
fn sample(out: &mut String, name: &str, labels: &str, value: f64) {
    let _ = if value.is_nan() {
        writeln!(out, "{name}{labels} NaN")
    } else if value.is_infinite() {
        writeln!(
            out,
            "{name}{labels} {}Inf",
            if value > 0.0 { "+" } else { "-" }
        )
    } else {
        writeln!(out, "{name}{labels} {value}")
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmstats::{Field, Owner};

    #[test]
    fn names_are_sanitised_and_counters_get_total() {
        let e = Exposition::new("app_");
        assert_eq!(
            e.name("web.stats.2XX", Kind::Counter),
            "app_web_stats_2XX_total"
        );
        assert_eq!(e.name("hits_total", Kind::Counter), "app_hits_total");
        assert_eq!(Exposition::new("").name("9lives", Kind::Gauge), "_9lives");
    }

    #[test]
    fn counters_of_dead_writers_still_count_and_their_gauges_do_not() {
        let field = |label: &str, type_code: &str, value: Value| Field {
            label: label.into(),
            type_code: type_code.into(),
            value,
            consistent: true,
        };
        let file = |pid: u32, hits: u64, queue: i64| StatsFile {
            format: Format::Native,
            owner: Owner {
                pid: Some(pid),
                ..Owner::default()
            },
            fields: vec![
                field("hits", "counter", Value::U64(hits)),
                field("queue", "gauge", Value::I64(queue)),
            ],
        };
        let me = std::process::id();
        let mut e = Exposition::new("");
        e.add(&file(me, 5, 2));
        e.add(&file(me, 1, 1));
        e.add(&file(u32::MAX - 1, 10, 7));
        let mut out = String::new();
        e.render(&mut out, false);
        assert_eq!(
            out,
            format!(
                "# HELP hits_total mmstats field hits\n# TYPE hits_total counter\nhits_total 16\n\
                 # HELP queue mmstats field queue\n# TYPE queue gauge\nqueue{{pid=\"{me}\"}} 3\n"
            )
        );
        assert_eq!(e.dead_files, 1);
    }
}
