//! mmash's JSON API (Python mmstats 0.8.0, `mmash.py`), as data: which labels and files a
//! set of stats files holds, a label's values per file, and mmash's aggregations, with
//! Python's rules for them. The HTTP side is [`super::serve`]; this part needs no server,
//! so it is tested without one.
//!
//! Where this differs from mmash, on purpose:
//! * `exact=1` works (mmash's `elif startswith` matched prefixes anyway);
//! * a request glob is confined to the stats directory: `..` anywhere or an absolute
//!   pattern is refused (mmash refused `..` but let `os.path.join` take an absolute one);
//! * files are in sorted order, not the directory's, so a label's values come in the order
//!   `/files/` lists them;
//! * native files' averages and timers give their mean, histograms an object of their
//!   count, sum, min, max, mean, p50, p90 and p99 (format 1 has neither);
//! * `max` and `min` over a mix of text and numbers are refused (Python 2 ordered every
//!   number before every string).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Number, Value as Json};

use super::histogram::Snapshot;
use super::{StatsFile, Value};

/// One of mmash's `aggr=` functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggr {
    /// The mean, as a float.
    Avg,
    /// The first file's value.
    One,
    /// The largest.
    Max,
    /// The smallest.
    Min,
    /// The sum (integers stay integers).
    Sum,
    /// The smallest of the values that are not zero (or false, or empty).
    NonzeroMin,
    /// The mean of the values that are not zero.
    NonzeroAvg,
}

impl Aggr {
    /// The aggregation named `name`; `None` for any other name, which mmash ignores.
    pub fn parse(name: &str) -> Option<Aggr> {
        Some(match name {
            "avg" => Aggr::Avg,
            "one" => Aggr::One,
            "max" => Aggr::Max,
            "min" => Aggr::Min,
            "sum" => Aggr::Sum,
            "nonzero-min" => Aggr::NonzeroMin,
            "nonzero-avg" => Aggr::NonzeroAvg,
            _ => return None,
        })
    }

    /// Turns a label's values (one per file, at least one) into one, or says why it can't.
    pub fn apply(self, values: &[Json]) -> Result<Json, String> {
        let nonzero: Vec<Json>;
        let values = match self {
            Aggr::NonzeroMin | Aggr::NonzeroAvg => {
                nonzero = values.iter().filter(|v| truthy(v)).cloned().collect();
                if nonzero.is_empty() {
                    return Err("every value is zero".into());
                }
                &nonzero[..]
            }
            _ => values,
        };
        let Some(first) = values.first() else {
            return Err("no values".into());
        };
        match self {
            Aggr::One => Ok(first.clone()),
            Aggr::Sum => sum(values).map(Total::into_json),
            Aggr::Avg | Aggr::NonzeroAvg => {
                let total = sum(values)?.as_f64();
                Ok(float(total / values.len() as f64))
            }
            Aggr::Max | Aggr::Min | Aggr::NonzeroMin => {
                let want = if self == Aggr::Max {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Less
                };
                let mut best = first;
                for value in &values[1..] {
                    // Python's max and min keep the first of equal values.
                    if compare(value, best)? == want {
                        best = value;
                    }
                }
                compare(best, best)?;
                Ok(best.clone())
            }
        }
    }
}

/// A sum kept exact while it is whole.
enum Total {
    Int(i128),
    Float(f64),
}

impl Total {
    fn as_f64(&self) -> f64 {
        match *self {
            Total::Int(n) => n as f64,
            Total::Float(f) => f,
        }
    }

    fn into_json(self) -> Json {
        match self {
            Total::Int(n) => i64::try_from(n)
                .map(Json::from)
                .or_else(|_| u64::try_from(n).map(Json::from))
                .unwrap_or_else(|_| float(n as f64)),
            Total::Float(f) => float(f),
        }
    }
}

/// Python's `sum`: booleans count as 0 and 1, one float makes the total a float; anything
/// else is refused.
fn sum(values: &[Json]) -> Result<Total, String> {
    let mut total = Total::Int(0);
    for value in values {
        total = match (total, number(value)?) {
            (Total::Int(a), Total::Int(b)) => Total::Int(a.saturating_add(b)),
            (a, b) => Total::Float(a.as_f64() + b.as_f64()),
        };
    }
    Ok(total)
}

fn number(value: &Json) -> Result<Total, String> {
    match value {
        Json::Bool(b) => Ok(Total::Int(i128::from(*b))),
        Json::Number(n) => Ok(match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Total::Int(i128::from(i)),
            (_, Some(u)) => Total::Int(i128::from(u)),
            _ => Total::Float(n.as_f64().unwrap_or(f64::NAN)),
        }),
        other => Err(format!("cannot do arithmetic on {}", describe(other))),
    }
}

/// Orders two values as Python would, numbers with numbers and text with text.
fn compare(a: &Json, b: &Json) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Json::String(a), Json::String(b)) => Ok(a.cmp(b)),
        _ => {
            let (a, b) = (number(a)?, number(b)?);
            Ok(match (a, b) {
                (Total::Int(a), Total::Int(b)) => a.cmp(&b),
                (a, b) => a
                    .as_f64()
                    .partial_cmp(&b.as_f64())
                    .unwrap_or(std::cmp::Ordering::Equal),
            })
        }
    }
}

/// Python's truth: zero, false, empty text and null are false.
fn truthy(value: &Json) -> bool {
    match value {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

fn describe(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "text",
        Json::Array(_) => "a list",
        Json::Object(_) => "a histogram",
    }
}

/// A float as JSON; NaN and infinities (which JSON lacks) as null.
fn float(value: f64) -> Json {
    Number::from_f64(value).map_or(Json::Null, Json::Number)
}

/// A field's value as mmash shows it.
pub fn json_value(value: &Value) -> Json {
    match value {
        Value::U64(v) => Json::from(*v),
        Value::I64(v) => Json::from(*v),
        Value::F64(v) => float(*v),
        Value::Bool(v) => Json::Bool(*v),
        Value::Text(v) => Json::String(v.clone()),
        Value::Summary(s) => float(s.mean),
        Value::Histogram(h) => histogram_json(h),
        Value::Null => Json::Null,
    }
}

fn histogram_json(h: &Snapshot) -> Json {
    let some = h.count > 0;
    json!({
        "count": h.count,
        "sum": h.sum,
        "min": some.then_some(h.min),
        "max": some.then_some(h.max),
        "mean": h.mean(),
        "p50": h.quantile(0.5),
        "p90": h.quantile(0.9),
        "p99": h.quantile(0.99),
    })
}

/// Checks a request's glob and joins it onto the stats directory: `..` anywhere, an
/// absolute pattern or a NUL is refused (the answer is a 400).
pub fn confine(dir: &Path, glob: &str) -> Result<String, String> {
    if glob.contains("..") {
        return Err(format!("glob {glob:?}: '..' is not allowed"));
    }
    if glob.starts_with('/') {
        return Err(format!(
            "glob {glob:?}: patterns are relative to the stats directory"
        ));
    }
    if glob.contains('\0') || glob.is_empty() {
        return Err("glob: empty or not text".into());
    }
    Ok(dir.join(glob).to_string_lossy().into_owned())
}

/// The stats files one request read: each readable one, in glob order (unreadable ones are
/// skipped, as mmash skips them).
#[derive(Debug, Default)]
pub struct Files {
    /// Files and what was read from each.
    pub files: Vec<(PathBuf, StatsFile)>,
}

impl Files {
    /// Reads `paths`, skipping those that cannot be read.
    pub fn read(paths: &[PathBuf]) -> Files {
        let files = paths
            .iter()
            .filter_map(|path| Some((path.clone(), super::read(path).ok()?)))
            .collect();
        Files { files }
    }

    /// `GET /stats/`: `{"stats": [every label, sorted, once]}`.
    pub fn labels(&self) -> Json {
        let mut labels: Vec<&str> = self
            .files
            .iter()
            .flat_map(|(_, stats)| stats.fields.iter().map(|f| f.label.as_str()))
            .collect();
        labels.sort_unstable();
        labels.dedup();
        json!({ "stats": labels })
    }

    /// `GET /files/`: `{"files": [the files that yielded at least one field]}`.
    pub fn paths(&self) -> Json {
        let files: Vec<String> = self
            .files
            .iter()
            .filter(|(_, stats)| !stats.fields.is_empty())
            .map(|(path, _)| path.to_string_lossy().into_owned())
            .collect();
        json!({ "files": files })
    }

    /// `GET /stats/<name>`: every label starting with `name` (equal to it with `exact`),
    /// with its values in file order, or each aggregated by `aggr`.
    pub fn stat(&self, name: &str, exact: bool, aggr: Option<Aggr>) -> Result<Json, String> {
        let mut found: BTreeMap<&str, Vec<Json>> = BTreeMap::new();
        for (_, stats) in &self.files {
            for field in &stats.fields {
                let wanted = if exact {
                    field.label == name
                } else {
                    field.label.starts_with(name)
                };
                if wanted {
                    found
                        .entry(field.label.as_str())
                        .or_default()
                        .push(json_value(&field.value));
                }
            }
        }
        let mut out = Map::new();
        for (label, values) in found {
            let value = match aggr {
                Some(aggr) => aggr.apply(&values).map_err(|e| format!("{label}: {e}"))?,
                None => Json::Array(values),
            };
            out.insert(label.to_owned(), value);
        }
        Ok(Json::Object(out))
    }

    /// What the live page plots of each label in `labels`, now: `{"ts", "fields": {label:
    /// {"kind", ...}}}`. A native counter's `value` is its sum over the files (the page
    /// plots its rate); a histogram is merged over the files and gives its nonzero buckets
    /// as `[low, high, count]` (the page plots percentiles of what each poll adds); text is
    /// the first file's; any other number is aggregated by `aggr` (default: sum, averages'
    /// means averaged). A label no file has is `{"kind": "missing"}`.
    pub fn live(&self, labels: &[String], aggr: Option<Aggr>, ts: f64) -> Json {
        let mut fields = Map::new();
        for label in labels {
            let mut values = Vec::new();
            let mut counter = false;
            let mut summary = false;
            let mut merged: Option<Snapshot> = None;
            for (_, stats) in &self.files {
                for field in stats.fields.iter().filter(|f| &f.label == label) {
                    match &field.value {
                        Value::Histogram(h) => match &mut merged {
                            Some(m) => m.merge(h),
                            None => merged = Some(h.clone()),
                        },
                        other => {
                            counter |= field.type_code == "counter";
                            summary |= matches!(other, Value::Summary(_));
                            values.push(json_value(other));
                        }
                    }
                }
            }
            let entry = if let Some(h) = merged {
                let buckets: Vec<Json> = h
                    .buckets
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| **n > 0)
                    .map(|(index, n)| {
                        let (low, high) = super::histogram::bucket_range(index, h.sub_bits);
                        json!([low, high, n])
                    })
                    .collect();
                let mut entry = histogram_json(&h);
                entry["kind"] = json!("histogram");
                entry["buckets"] = Json::Array(buckets);
                entry
            } else if values.is_empty() {
                json!({"kind": "missing"})
            } else if let Some(Json::String(text)) = values.first() {
                json!({"kind": "text", "value": text})
            } else {
                let (kind, aggr) = match (counter, summary, aggr) {
                    (true, _, _) => ("counter", Aggr::Sum),
                    (_, _, Some(aggr)) => ("gauge", aggr),
                    (_, true, None) => ("gauge", Aggr::Avg),
                    (_, false, None) => ("gauge", Aggr::Sum),
                };
                match aggr.apply(&values) {
                    Ok(value) => json!({"kind": kind, "value": value, "files": values.len()}),
                    Err(error) => json!({"kind": "error", "error": error}),
                }
            };
            fields.insert(label.clone(), entry);
        }
        json!({"ts": ts, "fields": fields})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(aggr: &str, values: Json) -> Result<Json, String> {
        Aggr::parse(aggr).unwrap().apply(values.as_array().unwrap())
    }

    #[test]
    fn aggregations_follow_python() {
        assert_eq!(apply("sum", json!([360, 120, 240])), Ok(json!(720)));
        assert_eq!(apply("avg", json!([360, 120, 240])), Ok(json!(240.0)));
        assert_eq!(apply("max", json!([360, 120, 240])), Ok(json!(360)));
        assert_eq!(apply("min", json!([360, 120.5, 240])), Ok(json!(120.5)));
        assert_eq!(apply("one", json!(["a", 1])), Ok(json!("a")));
        assert_eq!(apply("sum", json!([true, true, false])), Ok(json!(2)));
        assert_eq!(apply("sum", json!([1, 0.5])), Ok(json!(1.5)));
        assert_eq!(apply("max", json!(["b", "c", "a"])), Ok(json!("c")));
        assert_eq!(apply("nonzero-min", json!([0, 3, 2])), Ok(json!(2)));
        assert_eq!(apply("nonzero-avg", json!([0, 3, 0, 1])), Ok(json!(2.0)));
        assert_eq!(
            apply("sum", json!([u64::MAX, 1])),
            Ok(json!(18446744073709551616.0))
        );
        for (aggr, values) in [
            ("sum", json!(["2.7.18", "2.7.18"])),
            ("avg", json!(["x"])),
            ("nonzero-min", json!([0, false, ""])),
            ("max", json!([1, "a"])),
            ("sum", json!([{"count": 1}])),
        ] {
            assert!(apply(aggr, values.clone()).is_err(), "{aggr} {values}");
        }
        assert_eq!(Aggr::parse("median"), None);
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = Json> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::from),
            any::<i64>().prop_map(Json::from),
            any::<u64>().prop_map(Json::from),
            any::<f64>().prop_map(float),
            "\\PC{0,8}".prop_map(Json::from),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
                proptest::collection::btree_map("[a-z]{1,3}", inner, 0..3)
                    .prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Any values, any aggregation: a value or a reason, never a panic; numbers only
        /// ever sum to a number.
        #[test]
        fn aggregating_anything_answers_or_refuses(
            values in proptest::collection::vec(any_json(), 1..6),
            which in 0usize..7,
        ) {
            let aggr = [Aggr::Avg, Aggr::One, Aggr::Max, Aggr::Min, Aggr::Sum, Aggr::NonzeroMin, Aggr::NonzeroAvg][which];
            let answer = aggr.apply(&values);
            if aggr == Aggr::Sum && values.iter().all(|v| v.is_number() || v.is_boolean()) {
                proptest::prop_assert!(answer.is_ok_and(|a| a.is_number() || a.is_null()));
            }
        }

        /// Whatever a client sends as a glob, what is globbed starts with the directory and
        /// never climbs out of it.
        #[test]
        fn a_confined_glob_never_leaves_the_directory(glob in "[./a-z*?\\[\\]\\\\%]{0,12}") {
            let dir = Path::new("/run/mm");
            if let Ok(pattern) = confine(dir, &glob) {
                proptest::prop_assert!(pattern.starts_with("/run/mm/"));
                proptest::prop_assert!(!Path::new(&pattern)
                    .components()
                    .any(|c| c == std::path::Component::ParentDir));
            }
        }
    }

    #[test]
    fn globs_stay_in_the_stats_directory() {
        let dir = Path::new("/run/mm");
        assert_eq!(
            confine(dir, "*-11224.mmstats").unwrap(),
            "/run/mm/*-11224.mmstats"
        );
        assert!(confine(dir, "../etc/*").is_err());
        assert!(confine(dir, "a/..b").is_err());
        assert!(confine(dir, "/etc/*").is_err());
        assert!(confine(dir, "").is_err());
    }
}
