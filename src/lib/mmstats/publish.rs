//! mmstats-publish's policy: what a stream of NDJSON lines publishes into stats files.
//!
//! Two native files, both in the writer's usual place unless named:
//! * the fixed file, `<base>.mmstats`: `lines` and `bad_lines` counters, a float gauge per
//!   `--gauge` field (its latest value) and a histogram per `--histogram` field (values
//!   rounded to whole numbers, negatives counted as 0);
//! * the keys file, `<base>-keys.mmstats`: a counter `<field>.<value>` per value seen of
//!   each `--count-by` field. Values are not known in advance and a native file's fields
//!   are fixed, so when a new value appears the file is made again with one more counter
//!   (its counts carried over) and renamed over the old one: readers, which open files by
//!   name, see the counts go on. After `max_keys` values of a field, the others count in
//!   `<field>.other`.
//!
//! Counts are kept in process memory and written to the files by [`Publisher::publish`],
//! which the tool calls whenever its input has no more data waiting: under load once per
//! read buffer, when quiet at once.

use std::collections::HashMap;
use std::path::PathBuf;

use super::writer::{Builder, Local, Stats, WriteError};
use crate::fields::{top_level_each, Scalar};

/// What to publish.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Fields whose values are counted, one counter per value.
    pub count_by: Vec<String>,
    /// Fields whose latest numeric value is a gauge.
    pub gauges: Vec<String>,
    /// Fields whose numeric values go into a histogram.
    pub histograms: Vec<String>,
    /// Most distinct values counted per `count_by` field before `other`.
    pub max_keys: usize,
    /// The fixed file; the keys file is beside it, `-keys` before the extension.
    pub path: PathBuf,
}

/// The counters of one `count_by` field.
#[derive(Debug, Default)]
struct Keys {
    index: HashMap<String, usize>,
    counts: Vec<u64>,
    published: Vec<u64>,
}

/// Follows a stream of lines and publishes it.
pub struct Publisher {
    plan: Plan,
    fixed: Stats<Local>,
    keys_path: PathBuf,
    keys_file: Option<Stats<Local>>,
    keys: Vec<Keys>,
    /// Whether a key appeared since the keys file was made.
    grown: bool,
    /// The fields looked for in each line: count_by, then gauges, then histograms (kept
    /// for the whole run, so leaked once rather than borrowed from `plan`).
    wanted: Vec<&'static str>,
    lines: u64,
    bad_lines: u64,
    published_lines: (u64, u64),
    gauges: Vec<Option<f64>>,
    samples: Vec<Vec<u64>>,
}

/// Counts `value` among `keys`; true when it is a new key. Past `max_keys` values, new
/// ones count as `other`.
fn count(keys: &mut Keys, max_keys: usize, value: &str) -> bool {
    if let Some(&slot) = keys.index.get(value) {
        keys.counts[slot] += 1;
        return false;
    }
    let value = if keys.index.len() < max_keys {
        value
    } else {
        "other"
    };
    let next = keys.counts.len();
    let slot = *keys.index.entry(value.to_owned()).or_insert(next);
    let new = slot == next;
    if new {
        keys.counts.push(0);
        keys.published.push(0);
    }
    keys.counts[slot] += 1;
    new
}

/// The label of value `value` of field `field` in the keys file.
fn key_label(field: &str, value: &str) -> String {
    format!("{field}.{value}")
}

impl Publisher {
    /// Creates the fixed file; the keys file appears with the first counted value.
    pub fn new(plan: Plan) -> Result<Publisher, WriteError> {
        let mut builder = Builder::new()
            .counter("lines")
            .counter("bad_lines")
            .path(&plan.path);
        for gauge in &plan.gauges {
            builder = builder.gauge_f64(gauge);
        }
        for histogram in &plan.histograms {
            builder = builder.histogram(histogram);
        }
        let fixed = builder.create()?;
        let stem = plan.path.with_extension("");
        let mut keys_path = stem.into_os_string();
        keys_path.push("-keys.mmstats");
        let wanted: Vec<&'static str> = plan
            .count_by
            .iter()
            .chain(&plan.gauges)
            .chain(&plan.histograms)
            .map(|f| &*Box::leak(f.clone().into_boxed_str()))
            .collect();
        Ok(Publisher {
            keys: plan.count_by.iter().map(|_| Keys::default()).collect(),
            gauges: vec![None; plan.gauges.len()],
            samples: vec![Vec::new(); plan.histograms.len()],
            plan,
            fixed,
            keys_path: PathBuf::from(keys_path),
            keys_file: None,
            grown: false,
            wanted,
            lines: 0,
            bad_lines: 0,
            published_lines: (0, 0),
        })
    }

    /// The fixed file's path.
    pub fn path(&self) -> &std::path::Path {
        self.fixed.path()
    }

    /// The keys file's path.
    pub fn keys_path(&self) -> &std::path::Path {
        &self.keys_path
    }

    /// Counts one line (without its newline).
    pub fn line(&mut self, line: &[u8]) {
        self.lines += 1;
        let counted = self.plan.count_by.len();
        let gauges = self.plan.gauges.len();
        let Publisher {
            wanted,
            keys,
            plan,
            grown,
            gauges: latest,
            samples,
            ..
        } = self;
        let object = top_level_each(line, wanted, |i, value| {
            if i < counted {
                let text = match &value {
                    Scalar::Text(t) => t.as_ref(),
                    Scalar::Number(n) => n,
                    Scalar::Bool(true) => "true",
                    Scalar::Bool(false) => "false",
                    Scalar::Null | Scalar::Nested => return,
                };
                *grown |= count(&mut keys[i], plan.max_keys, text);
            } else if let Some(v) = value.as_f64() {
                if i < counted + gauges {
                    latest[i - counted] = Some(v);
                } else {
                    let v = if v.is_finite() && v > 0.0 {
                        v.round() as u64
                    } else {
                        0
                    };
                    samples[i - counted - gauges].push(v);
                }
            }
        });
        if !object {
            self.bad_lines += 1;
        }
    }

    /// Writes what was counted since the last call into the files (making the keys file
    /// again when values appeared).
    pub fn publish(&mut self) -> Result<(), WriteError> {
        let (lines, bad) = self.published_lines;
        self.fixed.counter("lines")?.add(self.lines - lines);
        self.fixed.counter("bad_lines")?.add(self.bad_lines - bad);
        self.published_lines = (self.lines, self.bad_lines);
        for (label, value) in self.plan.gauges.iter().zip(&self.gauges) {
            if let Some(value) = value {
                self.fixed.gauge_f64(label)?.set(*value);
            }
        }
        for (label, samples) in self.plan.histograms.iter().zip(&mut self.samples) {
            let histogram = self.fixed.histogram(label)?;
            for v in samples.drain(..) {
                histogram.record(v);
            }
        }
        if self.grown {
            self.regrow()?;
        }
        if let Some(file) = &self.keys_file {
            for (field, keys) in self.plan.count_by.iter().zip(&mut self.keys) {
                for (value, &slot) in &keys.index {
                    let delta = keys.counts[slot] - keys.published[slot];
                    if delta > 0 {
                        file.counter(&key_label(field, value))?.add(delta);
                        keys.published[slot] = keys.counts[slot];
                    }
                }
            }
        }
        Ok(())
    }

    /// Makes the keys file again with every value seen, carrying the published counts.
    fn regrow(&mut self) -> Result<(), WriteError> {
        // Kept on drop: the path is the new file's by then (see `Drop`).
        let mut builder = Builder::new().path(&self.keys_path).keep_file();
        let mut labels = Vec::new();
        for (field, keys) in self.plan.count_by.iter().zip(&self.keys) {
            let mut values: Vec<(&String, &usize)> = keys.index.iter().collect();
            values.sort();
            for (value, &slot) in values {
                let label = key_label(field, value);
                builder = builder.counter(&label);
                labels.push((label, keys.published[slot]));
            }
        }
        let file = builder.create()?;
        for (label, count) in &labels {
            file.counter(label)?.add(*count);
        }
        // The old file (unlinked by the rename) is marked closed as it drops.
        self.keys_file = Some(file);
        self.grown = false;
        Ok(())
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        // The keys file is kept by its handle (a regrown file must not remove its
        // successor's path); at the end it goes like the fixed file.
        if self.keys_file.take().is_some() {
            let _ = std::fs::remove_file(&self.keys_path);
        }
    }
}
