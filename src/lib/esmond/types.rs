//! The esmond event-type catalogue: how each event type stores its values, which
//! summaries it allows, and the validation and normalisation of posted values
//! (esmond.md §1.5).

use serde_json::{Map, Value};

/// How an event type's values are stored and returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Whole numbers, returned as floats.
    Integer,
    /// Numbers kept to four decimals.
    Float,
    /// `{numerator, denominator}`, returned as their ratio.
    Percentage,
    /// `{bucket: count}`.
    Histogram,
    /// Lists of `{start, duration, val}`.
    Subinterval,
    /// Any JSON.
    Json,
}

/// A summary kind (singular, as in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    /// The base series itself.
    Base,
    /// Sum per window.
    Aggregation,
    /// Mean per window.
    Average,
    /// Histogram statistics per window.
    Statistics,
}

impl Summary {
    /// The JSON (singular) name.
    pub fn name(self) -> &'static str {
        match self {
            Summary::Base => "base",
            Summary::Aggregation => "aggregation",
            Summary::Average => "average",
            Summary::Statistics => "statistics",
        }
    }

    /// The URL path (plural) name.
    pub fn path(self) -> &'static str {
        match self {
            Summary::Base => "base",
            Summary::Aggregation => "aggregations",
            Summary::Average => "averages",
            Summary::Statistics => "statistics",
        }
    }

    /// From the JSON name.
    pub fn from_name(name: &str) -> Option<Summary> {
        Some(match name {
            "base" => Summary::Base,
            "aggregation" => Summary::Aggregation,
            "average" => Summary::Average,
            "statistics" => Summary::Statistics,
            _ => return None,
        })
    }

    /// From the URL path name.
    pub fn from_path(path: &str) -> Option<Summary> {
        Some(match path {
            "base" => Summary::Base,
            "aggregations" => Summary::Aggregation,
            "averages" => Summary::Average,
            "statistics" => Summary::Statistics,
            _ => return None,
        })
    }
}

/// Every event type esmond knows: the 33 esmond-client 4.2.1 listed (`-L`), in its
/// order, then the 16 its list missed (perfsonar/esmond#77).
pub const EVENT_TYPES: [&str; 49] = [
    "failures",
    "histogram-owdelay",
    "histogram-rtt",
    "histogram-ttl",
    "histogram-ttl-reverse",
    "ntp-delay",
    "ntp-dispersion",
    "ntp-jitter",
    "ntp-offset",
    "ntp-polling-interval",
    "ntp-reach",
    "ntp-stratum",
    "ntp-wander",
    "packet-duplicates",
    "packet-duplicates-bidir",
    "packet-loss-rate",
    "packet-loss-rate-bidir",
    "packet-trace",
    "packet-count-lost",
    "packet-count-lost-bidir",
    "packet-count-sent",
    "packet-reorders",
    "packet-reorders-bidir",
    "packet-retransmits",
    "packet-retransmits-subintervals",
    "path-mtu",
    "streams-packet-retransmits",
    "streams-packet-retransmits-subintervals",
    "streams-throughput",
    "streams-throughput-subintervals",
    "throughput",
    "throughput-subintervals",
    "time-error-estimates",
    "iostat",
    "mpstat",
    "packet-rtt",
    "packet-rtt-subintervals",
    "packet-trace-multi",
    "pscheduler-raw",
    "pscheduler-run-href",
    "rusage",
    "streams-packet-rtt",
    "streams-packet-rtt-subintervals",
    "streams-tcp-windowsize",
    "streams-tcp-windowsize-subintervals",
    "streams-tcpinfo",
    "tcp-windowsize",
    "tcp-windowsize-subintervals",
    "tcpinfo",
];

/// The storage of an event type, or `None` if esmond does not know it.
pub fn storage(event_type: &str) -> Option<Storage> {
    Some(match event_type {
        "throughput"
        | "packet-count-lost"
        | "packet-count-lost-bidir"
        | "packet-count-sent"
        | "packet-duplicates"
        | "packet-duplicates-bidir"
        | "packet-reorders"
        | "packet-reorders-bidir"
        | "packet-retransmits"
        | "packet-rtt"
        | "path-mtu"
        | "ntp-stratum"
        | "ntp-reach"
        | "tcp-windowsize" => Storage::Integer,
        "time-error-estimates"
        | "ntp-offset"
        | "ntp-jitter"
        | "ntp-wander"
        | "ntp-polling-interval"
        | "ntp-delay"
        | "ntp-dispersion" => Storage::Float,
        "packet-loss-rate" | "packet-loss-rate-bidir" => Storage::Percentage,
        "histogram-owdelay" | "histogram-rtt" | "histogram-ttl" | "histogram-ttl-reverse" => {
            Storage::Histogram
        }
        "throughput-subintervals"
        | "packet-retransmits-subintervals"
        | "packet-rtt-subintervals"
        | "tcp-windowsize-subintervals" => Storage::Subinterval,
        "failures"
        | "packet-trace"
        | "packet-trace-multi"
        | "streams-packet-retransmits"
        | "streams-packet-retransmits-subintervals"
        | "streams-throughput"
        | "streams-throughput-subintervals"
        | "streams-packet-rtt"
        | "streams-packet-rtt-subintervals"
        | "streams-tcp-windowsize"
        | "streams-tcp-windowsize-subintervals"
        | "streams-tcpinfo"
        | "tcpinfo"
        | "iostat"
        | "mpstat"
        | "rusage"
        | "pscheduler-raw"
        | "pscheduler-run-href" => Storage::Json,
        _ => return None,
    })
}

impl Storage {
    /// Whether a summary kind may be kept for this storage.
    pub fn allows(self, summary: Summary) -> bool {
        matches!(
            (self, summary),
            (_, Summary::Base)
                | (
                    Storage::Integer | Storage::Float,
                    Summary::Aggregation | Summary::Average
                )
                | (Storage::Percentage, Summary::Aggregation)
                | (
                    Storage::Histogram,
                    Summary::Aggregation | Summary::Statistics
                )
        )
    }

    /// Raw types are overwritten by a second write at the same time; numeric ones conflict.
    pub fn is_raw(self) -> bool {
        matches!(
            self,
            Storage::Histogram | Storage::Subinterval | Storage::Json
        )
    }
}

/// A validated value, in the form it is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// An integer (integer storage).
    Integer(i64),
    /// Ten-thousandths (float storage).
    Scaled(i64),
    /// A ratio's parts.
    Ratio(i64, i64),
    /// Anything kept as JSON (histogram counts normalised to integers).
    Json(Value),
}

impl Stored {
    /// The value as the API returns it, as JSON text.
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        self.write_json(&mut out);
        text(out)
    }

    /// [`Stored::to_json`], appended to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Stored::Integer(n) => write_float(out, *n as f64),
            Stored::Scaled(n) => write_float(out, *n as f64 / 10_000.0),
            Stored::Ratio(num, den) => write_float(out, *num as f64 / *den as f64),
            // Writing to a Vec cannot fail.
            Stored::Json(v) => drop(serde_json::to_writer(out, v)),
        }
    }

    /// [`Stored::to_store`], appended to `out`.
    pub fn write_store(&self, out: &mut Vec<u8>) {
        let mut number = itoa::Buffer::new();
        match self {
            Stored::Integer(n) | Stored::Scaled(n) => {
                out.extend_from_slice(number.format(*n).as_bytes())
            }
            Stored::Ratio(num, den) => {
                out.extend_from_slice(number.format(*num).as_bytes());
                out.push(b'/');
                out.extend_from_slice(number.format(*den).as_bytes());
            }
            Stored::Json(v) => drop(serde_json::to_writer(out, v)),
        }
    }

    /// Whether a base point must keep [`Stored::to_store`] beside its JSON: not when the
    /// JSON reads back as this same value (integers up to 2^53, floats of a few
    /// decimals), which is most points and a third of their bytes. A percentage keeps its
    /// parts; raw types keep nothing.
    pub fn keeps_state(&self, storage: Storage) -> bool {
        let json = match self {
            Stored::Integer(n) => *n as f64,
            Stored::Scaled(n) => *n as f64 / 10_000.0,
            _ => return !storage.is_raw(),
        };
        // The JSON is the shortest text of this float, which parses back to it exactly.
        validate(storage, &Value::from(json)).ok().as_ref() != Some(self)
    }

    /// The text kept in the store: enough to rebuild the value for summaries.
    pub fn to_store(&self) -> String {
        let mut out = Vec::new();
        self.write_store(&mut out);
        text(out)
    }
}

/// Text written by serde_json or itoa (always UTF-8).
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A float as Python's `repr` / JSON writes it (always with a fraction or exponent).
pub fn float_text(value: f64) -> String {
    let mut out = Vec::new();
    write_float(&mut out, value);
    text(out)
}

/// [`float_text`], appended to `out`.
pub fn write_float(out: &mut Vec<u8>, value: f64) {
    // Writing to a Vec cannot fail; a float that is not finite is `null`, as in a Value.
    drop(serde_json::to_writer(out, &value));
}

/// Python's `long()` of a JSON value: integers, floats truncated toward zero, numeric
/// strings of integers.
fn long(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 9.2e18)
                .map(|f| f.trunc() as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// Python's `float()` of a JSON value.
fn float(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

/// Validates a posted value for `storage`, with esmond's messages.
pub fn validate(storage: Storage, value: &Value) -> Result<Stored, String> {
    match storage {
        Storage::Integer => long(value)
            .map(Stored::Integer)
            .ok_or_else(|| "Value must be an integer".to_owned()),
        Storage::Float => {
            let f =
                float(value).ok_or_else(|| "Value must be a floating point number".to_owned())?;
            // Stored scaled by 10^4 in an i64: refuse what would not fit, never saturate.
            let scaled = f * 10_000.0;
            if scaled.is_nan() || scaled.abs() >= 9.2e18 {
                return Err(format!("Value {} is out of range", float_text(f)));
            }
            Ok(Stored::Scaled(scaled as i64))
        }
        Storage::Percentage => {
            let object = value.as_object().ok_or_else(|| {
                "Value must be an object with 'numerator' and 'denominator'".to_owned()
            })?;
            let part = |name: &str| -> Result<i64, String> {
                let field = object
                    .get(name)
                    .ok_or_else(|| format!("Missing required field '{name}'"))?;
                long(field).ok_or_else(|| format!("The field '{name}' must be an integer"))
            };
            let numerator = part("numerator")?;
            let denominator = part("denominator")?;
            if denominator <= 0 {
                return Err("The field 'denominator' must be greater than 0".into());
            }
            if numerator < 0 {
                return Err("The field 'numerator' cannot be negative".into());
            }
            Ok(Stored::Ratio(numerator, denominator))
        }
        Storage::Histogram => {
            let object = value
                .as_object()
                .ok_or_else(|| "Invalid histogram provided".to_owned())?;
            let mut counts = Map::new();
            let mut total = 0i64;
            for (bucket, count) in object {
                let count = long(count)
                    .ok_or_else(|| "Value of histogram must be an integer".to_owned())?;
                total = total
                    .checked_add(count)
                    .ok_or_else(|| "Histogram counts are out of range".to_owned())?;
                counts.insert(bucket.clone(), Value::from(count));
            }
            Ok(Stored::Json(Value::Object(counts)))
        }
        Storage::Subinterval => {
            let list = value
                .as_array()
                .filter(|l| !l.is_empty())
                .ok_or_else(|| "Empty subinterval provided".to_owned())?;
            for (i, item) in list.iter().enumerate() {
                let object = item
                    .as_object()
                    .ok_or_else(|| format!("Subinterval at position {i} must be an object"))?;
                for field in ["start", "duration"] {
                    if !object.contains_key(field) {
                        return Err(format!(
                            "Interval must contain '{field}' field at position {i}"
                        ));
                    }
                }
                if float(&object["start"]).is_none() || float(&object["duration"]).is_none() {
                    return Err(
                        "Subinterval 'start' and 'duration' must be floating point numbers".into(),
                    );
                }
                if !object.contains_key("val") {
                    return Err(format!("Interval must contain 'val' field at position {i}"));
                }
            }
            Ok(Stored::Json(value.clone()))
        }
        Storage::Json => Ok(Stored::Json(value.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// A value stored without its state is the value its JSON text reads back as.
        #[test]
        fn a_value_without_its_state_reads_back_from_its_json(
            n in proptest::prelude::any::<i64>(),
            f in -9.2e14f64..9.2e14,
            small in -100_000_000i64..100_000_000,
        ) {
            let cases = [
                (Storage::Integer, Stored::Integer(n)),
                (Storage::Float, validate(Storage::Float, &Value::from(f)).unwrap()),
                (Storage::Float, Stored::Scaled(small)),
                (Storage::Float, Stored::Scaled(n / 1_000)),
            ];
            for (storage, stored) in cases {
                if !stored.keeps_state(storage) {
                    let json: Value = serde_json::from_str(&stored.to_json()).unwrap();
                    proptest::prop_assert_eq!(validate(storage, &json), Ok(stored));
                }
            }
        }
    }

    #[test]
    fn values_keep_their_state_when_their_json_loses_it() {
        let exact = 1i64 << 53;
        assert!(!Stored::Integer(exact).keeps_state(Storage::Integer));
        assert!(Stored::Integer(exact + 1).keeps_state(Storage::Integer));
        assert!(!Stored::Scaled(12_345_678).keeps_state(Storage::Float));
        assert!(Stored::Ratio(1, 3).keeps_state(Storage::Percentage));
        assert!(!Stored::Json(Value::Null).keeps_state(Storage::Histogram));
    }

    #[test]
    fn the_catalogue_lists_every_event_type_once_and_each_has_a_storage() {
        let mut seen = std::collections::HashSet::new();
        for event_type in EVENT_TYPES {
            assert!(seen.insert(event_type), "{event_type} listed twice");
            assert!(storage(event_type).is_some(), "{event_type} has no storage");
        }
    }

    #[test]
    fn values_that_would_overflow_are_refused() {
        assert_eq!(
            validate(Storage::Float, &Value::from(1e300)).unwrap_err(),
            "Value 1e+300 is out of range"
        );
        let huge = serde_json::json!({"1": i64::MAX, "2": 1});
        assert_eq!(
            validate(Storage::Histogram, &huge).unwrap_err(),
            "Histogram counts are out of range"
        );
    }
    use serde_json::json;

    #[test]
    fn the_catalogue_has_49_types() {
        let names = [
            "throughput",
            "packet-count-lost",
            "packet-count-lost-bidir",
            "packet-count-sent",
            "packet-duplicates",
            "packet-duplicates-bidir",
            "packet-reorders",
            "packet-reorders-bidir",
            "packet-retransmits",
            "packet-rtt",
            "path-mtu",
            "ntp-stratum",
            "ntp-reach",
            "tcp-windowsize",
            "time-error-estimates",
            "ntp-offset",
            "ntp-jitter",
            "ntp-wander",
            "ntp-polling-interval",
            "ntp-delay",
            "ntp-dispersion",
            "packet-loss-rate",
            "packet-loss-rate-bidir",
            "histogram-owdelay",
            "histogram-rtt",
            "histogram-ttl",
            "histogram-ttl-reverse",
            "throughput-subintervals",
            "packet-retransmits-subintervals",
            "packet-rtt-subintervals",
            "tcp-windowsize-subintervals",
            "failures",
            "packet-trace",
            "packet-trace-multi",
            "streams-packet-retransmits",
            "streams-packet-retransmits-subintervals",
            "streams-throughput",
            "streams-throughput-subintervals",
            "streams-packet-rtt",
            "streams-packet-rtt-subintervals",
            "streams-tcp-windowsize",
            "streams-tcp-windowsize-subintervals",
            "streams-tcpinfo",
            "tcpinfo",
            "iostat",
            "mpstat",
            "rusage",
            "pscheduler-raw",
            "pscheduler-run-href",
        ];
        assert_eq!(names.len(), 49);
        assert!(names.iter().all(|n| storage(n).is_some()));
        assert_eq!(storage("nonsense"), None);
    }

    #[test]
    fn values_validate_like_esmond() {
        assert_eq!(
            validate(Storage::Integer, &json!(7.9)).unwrap().to_json(),
            "7.0"
        );
        assert_eq!(
            validate(Storage::Integer, &json!("12")),
            Ok(Stored::Integer(12))
        );
        assert_eq!(
            validate(Storage::Integer, &json!("x")).unwrap_err(),
            "Value must be an integer"
        );
        assert_eq!(
            validate(Storage::Float, &json!(0.00123456))
                .unwrap()
                .to_json(),
            "0.0012"
        );
        let ratio = validate(
            Storage::Percentage,
            &json!({"numerator": 7, "denominator": "150"}),
        );
        assert_eq!(ratio.unwrap().to_json(), "0.04666666666666667");
        assert_eq!(
            validate(
                Storage::Percentage,
                &json!({"numerator": 1, "denominator": 0})
            )
            .unwrap_err(),
            "The field 'denominator' must be greater than 0"
        );
        assert_eq!(
            validate(Storage::Percentage, &json!({"denominator": 3})).unwrap_err(),
            "Missing required field 'numerator'"
        );
        assert_eq!(
            validate(Storage::Histogram, &json!({"1": "x"})).unwrap_err(),
            "Value of histogram must be an integer"
        );
        assert_eq!(
            validate(Storage::Subinterval, &json!([])).unwrap_err(),
            "Empty subinterval provided"
        );
        assert_eq!(
            validate(Storage::Subinterval, &json!([{"duration": 1, "val": 2}])).unwrap_err(),
            "Interval must contain 'start' field at position 0"
        );
    }
}
