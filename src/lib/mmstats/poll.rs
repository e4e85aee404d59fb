//! `pollstats`' arithmetic: per-interval changes of stats fields, summed across files.
//!
//! A file that lacks a field counts zero for it (pollstats crashed), labels match exactly
//! (pollstats matched by prefix), and integers stay exact.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::Value as Json;

use super::{Number, ReadError};

/// The value a field contributes: integers stay exact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    /// An integer (exact).
    Int(i128),
    /// Anything else.
    Float(f64),
}

impl Amount {
    /// The amount of a field's number.
    pub fn of(number: Number) -> Amount {
        number
            .as_i128()
            .map_or(Amount::Float(number.as_f64()), Amount::Int)
    }

    /// The sum.
    pub fn plus(self, other: Amount) -> Amount {
        match (self, other) {
            (Amount::Int(a), Amount::Int(b)) => Amount::Int(a.saturating_add(b)),
            (a, b) => Amount::Float(a.as_f64() + b.as_f64()),
        }
    }

    /// The difference.
    pub fn minus(self, other: Amount) -> Amount {
        match (self, other) {
            (Amount::Int(a), Amount::Int(b)) => Amount::Int(a.saturating_sub(b)),
            (a, b) => Amount::Float(a.as_f64() - b.as_f64()),
        }
    }

    /// As a float.
    pub fn as_f64(self) -> f64 {
        match self {
            Amount::Int(v) => v as f64,
            Amount::Float(v) => v,
        }
    }

    /// As pollstats prints it.
    pub fn text(self) -> String {
        match self {
            Amount::Int(v) => v.to_string(),
            Amount::Float(v) => format!("{v:.3}"),
        }
    }

    /// As JSON.
    pub fn json(self) -> Json {
        match self {
            Amount::Int(v) => i64::try_from(v)
                .map(Json::from)
                .or_else(|_| u64::try_from(v).map(Json::from))
                .unwrap_or_else(|_| Json::from(v as f64)),
            Amount::Float(v) => serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number),
        }
    }
}

/// One tick's reading.
pub struct Tick {
    /// Per field, the change since the previous tick, summed over files.
    pub deltas: Vec<Amount>,
    /// Per field, the value now, summed over files.
    pub totals: Vec<Amount>,
    /// Files that have at least one of the fields.
    pub files: usize,
}

/// Which files count (pollstats' `-f`): every filter must match a file.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `KEY`: the file has a field whose label starts with it.
    Present(String),
    /// `KEY=VALUE`: the file's field `KEY` shows exactly `VALUE` (as mmstats-slurp's text
    /// prints it: `True`, `3`, `web`).
    Equals(String, String),
}

impl Filter {
    /// Parses `KEY` or `KEY=VALUE`.
    pub fn parse(text: &str) -> Result<Filter, String> {
        match text.split_once('=') {
            Some(("", _)) => Err(format!("{text:?}: the filter has no field name before '='")),
            Some((key, value)) => Ok(Filter::Equals(key.to_owned(), value.to_owned())),
            None if text.is_empty() => Err("an empty filter matches every file".to_owned()),
            None => Ok(Filter::Present(text.to_owned())),
        }
    }

    fn matches(&self, stats: &super::StatsFile) -> bool {
        match self {
            Filter::Present(prefix) => stats.fields.iter().any(|f| f.label.starts_with(prefix)),
            Filter::Equals(label, value) => stats
                .field(label)
                .is_some_and(|f| super::render::text_value(&f.value) == *value),
        }
    }
}

/// Follows the fields across ticks.
pub struct Poller {
    labels: Vec<String>,
    filters: Vec<Filter>,
    previous: HashMap<PathBuf, Vec<Option<Amount>>>,
    warned: HashMap<PathBuf, String>,
    /// Per label: some file had it, or its absence was reported.
    accounted: Vec<bool>,
}

impl Poller {
    /// Follows `labels` (full labels, prefix included) in the files every filter matches.
    pub fn new(labels: Vec<String>, filters: Vec<Filter>) -> Self {
        Poller {
            accounted: vec![false; labels.len()],
            labels,
            filters,
            previous: HashMap::new(),
            warned: HashMap::new(),
        }
    }

    /// Reads the fields from `paths` (the files found now); a file that cannot be read is
    /// passed to `warn` once per distinct cause, and so, once, is a label that no file had
    /// at the first tick that read any file (a misspelt field counts zero, silently in
    /// pollstats).
    pub fn tick(&mut self, paths: Vec<PathBuf>, warn: impl Fn(&str)) -> Tick {
        let zero = Amount::Int(0);
        let mut tick = Tick {
            deltas: vec![zero; self.labels.len()],
            totals: vec![zero; self.labels.len()],
            files: 0,
        };
        let mut current = HashMap::with_capacity(paths.len());
        let mut files_read = 0usize;
        for path in paths {
            let stats = match super::read(&path) {
                Ok(stats) => stats,
                // The writer exited between the glob and the read: not worth a word.
                Err(ReadError::Io(err)) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => {
                    let message = err.to_string();
                    if self.warned.get(&path) != Some(&message) {
                        warn(&format!("{}: {message}", path.display()));
                        self.warned.insert(path, message);
                    }
                    continue;
                }
            };
            if !self.filters.iter().all(|f| f.matches(&stats)) {
                continue;
            }
            files_read += 1;
            for (label, accounted) in self.labels.iter().zip(&mut self.accounted) {
                *accounted |= stats.field(label).is_some();
            }
            let values: Vec<Option<Amount>> = self
                .labels
                .iter()
                .map(|label| {
                    let field = stats.field(label)?;
                    field.value.number().map(Amount::of)
                })
                .collect();
            if values.iter().all(Option::is_none) {
                continue;
            }
            tick.files += 1;
            let before = self.previous.get(&path);
            for (i, value) in values.iter().enumerate() {
                let Some(value) = *value else { continue };
                let old = before.and_then(|b| b[i]).unwrap_or(zero);
                tick.deltas[i] = tick.deltas[i].plus(value.minus(old));
                tick.totals[i] = tick.totals[i].plus(value);
            }
            current.insert(path, values);
        }
        self.previous = current;
        if files_read > 0 {
            for (label, accounted) in self.labels.iter().zip(&mut self.accounted) {
                if !*accounted {
                    warn(&format!("no stats file has a field {label}"));
                    *accounted = true;
                }
            }
        }
        tick
    }
}

/// Python's `str.center`: the extra space goes right unless the width is odd.
pub fn center(name: &str, width: usize) -> String {
    let name: String = name.chars().take(width).collect();
    let margin = width - name.chars().count();
    let left = margin / 2 + (margin & width & 1);
    format!("{}{name}{}", " ".repeat(left), " ".repeat(margin - left))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn center_matches_python() {
        for (name, width, left, right) in [
            ("ok", 20, 9, 9),
            ("bad", 20, 8, 9),
            ("abc", 21, 9, 9),
            ("ab", 21, 10, 9),
        ] {
            let want = format!("{}{name}{}", " ".repeat(left), " ".repeat(right));
            assert_eq!(center(name, width), want, "{name} in {width}");
        }
        assert_eq!(center(&"x".repeat(30), 20), "x".repeat(20));
    }
}
