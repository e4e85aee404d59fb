//! How fields are written out: as stat records (the shared [`record::Stat`], records.md
//! §3) and as the text the Python `slurpstats` prints.

use std::borrow::Cow;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::{Field, StatsFile, Value};
use crate::record;

/// How the mmstats tools print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// NDJSON, one object per line.
    Ndjson,
    /// Text in the layout of the Python original (slurpstats, pollstats, cleanstats).
    Text,
}

/// What mmstats-slurp prints: a [`Layout`], or Prometheus metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlurpFormat {
    /// NDJSON stat records.
    Ndjson,
    /// slurpstats' text.
    Text,
    /// The Prometheus text exposition format ([`super::prom`]).
    Prom,
}

/// Percentiles reported for histograms.
const PERCENTILES: [(&str, f64); 3] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)];

/// One stat record: a field of a file read at `ts`.
pub struct StatRecord<'a> {
    /// The file as named to the reader.
    pub file: &'a str,
    /// What was read from it.
    pub stats: &'a StatsFile,
    /// The field.
    pub field: &'a Field,
    /// When it was read, epoch seconds.
    pub ts: f64,
}

impl Serialize for StatRecord<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        record::Stat {
            kind: record::StatKind,
            file: Cow::Borrowed(self.file),
            pid: self.stats.owner.pid,
            label: Cow::Borrowed(&self.field.label),
            type_code: Cow::Borrowed(&self.field.type_code),
            reading: Reading(&self.field.value),
            ts: self.ts,
            extra: Extra {
                format: self.stats.format.name(),
                consistent: (!self.field.consistent).then_some(false),
            },
        }
        .serialize(serializer)
    }
}

/// What mmstats-slurp adds after `ts`.
#[derive(Serialize)]
struct Extra {
    format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    consistent: Option<bool>,
}

/// A field's `value` and, for averages and histograms, their parts.
struct Reading<'a>(&'a Value);

impl Serialize for Reading<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self.0 {
            Value::U64(v) => map.serialize_entry("value", v)?,
            Value::I64(v) => map.serialize_entry("value", v)?,
            Value::F64(v) => float_entry(&mut map, "value", *v)?,
            Value::Bool(v) => map.serialize_entry("value", v)?,
            Value::Text(v) => map.serialize_entry("value", v)?,
            Value::Null => map.serialize_entry("value", &())?,
            Value::Summary(s) => {
                float_entry(&mut map, "value", s.mean)?;
                map.serialize_entry("count", &s.count)?;
                float_entry(&mut map, "sum", s.sum)?;
                float_entry(&mut map, "last", s.last)?;
                map.serialize_entry("window", &s.window)?;
            }
            Value::Histogram(h) => {
                map.serialize_entry("value", &h.count)?;
                map.serialize_entry("count", &h.count)?;
                map.serialize_entry("sum", &h.sum)?;
                map.serialize_entry("min", &(h.count > 0).then_some(h.min))?;
                map.serialize_entry("max", &(h.count > 0).then_some(h.max))?;
                map.serialize_entry("mean", &h.mean())?;
                for (name, q) in PERCENTILES {
                    map.serialize_entry(name, &h.quantile(q))?;
                }
            }
        }
        map.end()
    }
}

/// Writes a float; NaN and infinities, which JSON lacks, become `null` plus `<key>_str`.
fn float_entry<M: SerializeMap>(map: &mut M, key: &str, value: f64) -> Result<(), M::Error> {
    if value.is_finite() {
        map.serialize_entry(key, &value)
    } else {
        map.serialize_entry(key, &())?;
        map.serialize_entry(&format!("{key}_str"), &python_float(value))
    }
}

/// The lines `slurpstats` prints for one file: `==> path`, each field as
/// `  <label padded to the longest> <value>`, then an empty line.
pub fn slurpstats_lines(path: &str, stats: &StatsFile) -> Vec<String> {
    let width = stats
        .fields
        .iter()
        .map(|f| f.label.len())
        .max()
        .unwrap_or(0);
    let mut lines = Vec::with_capacity(stats.fields.len() + 2);
    lines.push(format!("==> {path}"));
    for field in &stats.fields {
        let pad = width - field.label.len();
        lines.push(format!(
            "  {}{:pad$} {}",
            field.label,
            "",
            text_value(&field.value)
        ));
    }
    lines.push(String::new());
    lines
}

/// A value as Python 2's `%s` shows it (floats with 12 significant digits).
pub fn text_value(value: &Value) -> String {
    match value {
        Value::U64(v) => v.to_string(),
        Value::I64(v) => v.to_string(),
        Value::F64(v) => python_float(*v),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Text(v) => v.clone(),
        Value::Null => "None".to_owned(),
        Value::Summary(s) => python_float(s.mean),
        Value::Histogram(h) => {
            let mut text = format!("count={}", h.count);
            for (name, q) in PERCENTILES {
                if let Some(v) = h.quantile(q) {
                    text.push_str(&format!(" {name}={v}"));
                }
            }
            text
        }
    }
}

/// Python 2's `str(float)`: `'%.12g'`, with `.0` added when the result looks like an
/// integer; `inf`, `-inf`, `nan`.
pub fn python_float(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    const PRECISION: i32 = 12;
    let scientific = format!("{:.*e}", (PRECISION - 1) as usize, value);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..PRECISION).contains(&exponent) {
        let decimals = (PRECISION - 1 - exponent) as usize;
        let fixed = format!("{value:.decimals$}");
        let trimmed = trim_fraction(&fixed);
        if trimmed.contains('.') {
            trimmed.to_owned()
        } else {
            format!("{trimmed}.0")
        }
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim_fraction(mantissa), exponent.abs())
    }
}

/// Drops trailing zeros of a fraction, and the point if nothing is left after it.
fn trim_fraction(number: &str) -> &str {
    if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_python_2_str() {
        for (value, text) in [
            (f64::from(0.1f32), "0.10000000149"),
            (std::f64::consts::PI, "3.14159265359"),
            (1795386506.97, "1795386506.97"),
            (3.0, "3.0"),
            (0.25, "0.25"),
            (-2.25, "-2.25"),
            (1e16, "1e+16"),
            (123456789012.0, "123456789012.0"),
            (1234567890123.0, "1.23456789012e+12"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1700000000.5, "1700000000.5"),
        ] {
            assert_eq!(python_float(value), text, "{value}");
        }
    }
}
