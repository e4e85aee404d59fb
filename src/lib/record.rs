//! The record vocabulary: the four families of the NDJSON contract between binaries
//! (records.md), declared once and shared by every producer and every consumer.
//!
//! Each family is one serde type whose named fields are the contract. The types borrow
//! and are generic over the parts a producer knows in its own terms, so the envelope is
//! declared here and nowhere else:
//!
//! * a producer fills [`Measurement`] with its typed metadata parameters and values
//!   (gridftp-parse, bwctl-extract) and serialises it straight into its output buffer;
//! * a consumer parses the same [`Measurement`] with raw parts ([`RawMeasurement`]:
//!   metadata and each value kept as the original JSON text), so a sink forwards bytes it
//!   never re-serialises;
//! * [`classify`] validates a line against the family's fully typed form
//!   ([`CheckedMeasurement`], …) with messages that name the missing or malformed field.
//!
//! Consumers that pass records through (record-check) copy the original line, so unknown
//! fields survive untouched; the typed forms ignore them.
//!
//! A producer whose serde path is measurably too slow writes the same type through
//! [`fast::WriteJson`], which is tested byte for byte against serde.
pub mod fast;

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The `kind` value of a measurement record.
pub const MEASUREMENT: &str = "measurement";
/// The `kind` value of a stat sample.
pub const STAT: &str = "stat";
/// The `kind` value of a trace sample.
pub const TRACE: &str = "trace";

/// A record family, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// A measurement run bound for an esmond archive (records.md §1).
    Measurement,
    /// An OpenStack-like notification, v1 dict or v2 envelope (records.md §2).
    Notification,
    /// One field read from an mmstats file (records.md §3).
    Stat,
    /// One sample from a tracer (records.md §4).
    Trace,
}

impl Family {
    /// The family's name as used in `kind` fields and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Family::Measurement => MEASUREMENT,
            Family::Notification => "notification",
            Family::Stat => STAT,
            Family::Trace => TRACE,
        }
    }
}

/// Declares a unit type that is a record's fixed `kind`: it serialises as the name and
/// accepts only the name.
macro_rules! kind_tag {
    ($(#[$doc:meta])* $name:ident = $value:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name;

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str($value)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                use serde::de::Error as _;
                let kind = <Cow<'de, str>>::deserialize(deserializer)?;
                if kind == $value {
                    Ok($name)
                } else {
                    Err(D::Error::custom(format!(
                        "a {:?} record, not a {}",
                        kind, $value
                    )))
                }
            }
        }
    };
}

kind_tag!(
    /// The `kind` of a measurement record: `"measurement"`.
    MeasurementKind = MEASUREMENT
);
kind_tag!(
    /// The `kind` of a stat sample: `"stat"`.
    StatKind = STAT
);
kind_tag!(
    /// The `kind` of a trace sample: `"trace"`.
    TraceKind = TRACE
);

/// One measurement run at one timestamp with every event type it produced (records.md §1).
///
/// `M` is the metadata (a [`Metadata`] for producers and validation, raw JSON for sinks),
/// `V` the values (event type → value) and `C` the cursor (text; a producer may give a
/// type that writes itself without allocating).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement<M, V, C> {
    /// Always `"measurement"`.
    pub kind: MeasurementKind,
    /// Exactly an esmond metadata POST body.
    pub metadata: M,
    /// Integer epoch seconds (UTC).
    pub ts: i64,
    /// Event type → value, in the shape esmond stores for that event type.
    pub values: V,
    /// Opaque resume token of the producer, echoed back by sinks that acknowledge delivery.
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub cursor: Option<C>,
}

fn none<C>() -> Option<C> {
    None
}

/// Text borrowed from the line where it can be (no escapes), owned where it cannot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

/// A measurement as a sink reads it: the metadata and every value are the original JSON
/// text, parsed once and never re-serialised. Values are in event-type order.
pub type RawMeasurement<'a> = Measurement<&'a RawValue, BTreeMap<Text<'a>, &'a RawValue>, Text<'a>>;

/// A measurement with every contract field typed, as [`classify`] checks it.
pub type CheckedMeasurement<'a> = Measurement<
    Metadata<'a, Map<String, Value>, Vec<EventTypeSpec<'a>>>,
    Map<String, Value>,
    Text<'a>,
>;

/// An esmond metadata object: the subject fields, free-form parameters `P` (flattened
/// between the subject and the event types) and the event types `E`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[serde(bound(
    serialize = "P: Serialize, E: Serialize",
    deserialize = "P: Deserialize<'de>, E: Deserialize<'de>, 'de: 'a"
))]
pub struct Metadata<'a, P, E> {
    /// `point-to-point` or `network-element`.
    #[serde(borrow)]
    pub subject_type: Cow<'a, str>,
    /// Source address (an IP literal for esmond).
    #[serde(borrow)]
    pub source: Cow<'a, str>,
    /// Destination address (an IP literal for esmond).
    #[serde(borrow)]
    pub destination: Cow<'a, str>,
    /// The tool that measured, e.g. `bwctl/iperf3`.
    #[serde(borrow)]
    pub tool_name: Cow<'a, str>,
    /// The host that ran the measurement (an IP literal for esmond).
    #[serde(borrow)]
    pub measurement_agent: Cow<'a, str>,
    /// The source as the user named it.
    #[serde(borrow)]
    pub input_source: Cow<'a, str>,
    /// The destination as the user named it.
    #[serde(borrow)]
    pub input_destination: Cow<'a, str>,
    /// Free-form parameters (`time-duration`, `ip-transport-protocol`, …).
    #[serde(flatten)]
    pub parameters: P,
    /// Every event type the producer can emit for this kind of test.
    pub event_types: E,
}

/// The subject type of every measurement the producers make.
pub const POINT_TO_POINT: &str = "point-to-point";

/// Who measured what, for a point-to-point [`Metadata`].
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Source address.
    pub source: &'a str,
    /// Destination address.
    pub destination: &'a str,
    /// The tool that measured.
    pub tool_name: &'a str,
    /// The host that ran the measurement.
    pub measurement_agent: &'a str,
    /// The source as the user named it.
    pub input_source: &'a str,
    /// The destination as the user named it.
    pub input_destination: &'a str,
}

impl<'a, P, E> Metadata<'a, P, E> {
    /// A point-to-point metadata.
    pub fn point_to_point(subject: Subject<'a>, parameters: P, event_types: E) -> Self {
        Metadata {
            subject_type: Cow::Borrowed(POINT_TO_POINT),
            source: Cow::Borrowed(subject.source),
            destination: Cow::Borrowed(subject.destination),
            tool_name: Cow::Borrowed(subject.tool_name),
            measurement_agent: Cow::Borrowed(subject.measurement_agent),
            input_source: Cow::Borrowed(subject.input_source),
            input_destination: Cow::Borrowed(subject.input_destination),
            parameters,
            event_types,
        }
    }
}

impl<M, V, C> Measurement<M, V, C> {
    /// A measurement record (its `kind` set).
    pub fn new(metadata: M, ts: i64, values: V, cursor: Option<C>) -> Self {
        Measurement {
            kind: MeasurementKind,
            metadata,
            ts,
            values,
            cursor,
        }
    }
}

/// One entry of a metadata's `event-types` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EventTypeSpec<'a> {
    /// The esmond event type, e.g. `throughput`.
    #[serde(borrow)]
    pub event_type: Cow<'a, str>,
    /// Summaries the archive keeps for it.
    #[serde(borrow, default)]
    pub summaries: Cow<'a, [SummarySpec<'a>]>,
}

impl EventTypeSpec<'static> {
    /// An event type without summaries (what the producers register).
    pub const fn plain(event_type: &'static str) -> Self {
        EventTypeSpec {
            event_type: Cow::Borrowed(event_type),
            summaries: Cow::Borrowed(&[]),
        }
    }
}

/// A summary of an event type: its type and window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SummarySpec<'a> {
    /// `aggregation`, `average` or `statistics`.
    #[serde(borrow)]
    pub summary_type: Cow<'a, str>,
    /// Window in seconds; esmond sends it as a string, clients often as a number.
    #[serde(deserialize_with = "window_as_string")]
    pub summary_window: Cow<'a, str>,
}

fn window_as_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Cow<'de, str>, D::Error> {
    use serde::de::Error as _;
    match Value::deserialize(deserializer)? {
        Value::Number(n) if n.is_u64() => Ok(Cow::Owned(n.to_string())),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(Cow::Owned(s))
        }
        other => Err(D::Error::custom(format!(
            "summary-window must be a whole number of seconds, got {other}"
        ))),
    }
}

/// The `{"error": "..."}` value of a `failures` event type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureValue<'a> {
    /// What went wrong, in the tool's words.
    #[serde(borrow)]
    pub error: Cow<'a, str>,
}

/// The oslo.messaging v1 notification dict (records.md §2). `P` is the payload, `X` the
/// `_context_*` keys, `_unique_id` and anything else (flattened after the named fields).
///
/// notigen-emit writes this shape through its own byte-level renderer (3 M lines/s, well
/// over 20 % faster than serde for its spliced, pre-serialised payloads); its tests parse
/// every line back into this type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "P: Serialize, X: Serialize",
    deserialize = "P: Deserialize<'de>, X: Deserialize<'de>, 'de: 'a"
))]
pub struct Notification<'a, P, X> {
    /// A UUID per message.
    #[serde(borrow)]
    pub message_id: Cow<'a, str>,
    /// `<service>.<host>`, e.g. `compute.host-12`.
    #[serde(borrow)]
    pub publisher_id: Cow<'a, str>,
    /// e.g. `compute.instance.create.end`.
    #[serde(borrow)]
    pub event_type: Cow<'a, str>,
    /// `INFO`, `ERROR`, …
    #[serde(borrow)]
    pub priority: Cow<'a, str>,
    /// The notification body.
    pub payload: P,
    /// When it was sent (`YYYY-MM-DD HH:MM:SS.ffffff` as oslo sends it, or RFC 3339).
    #[serde(borrow)]
    pub timestamp: Cow<'a, str>,
    /// `_context_*` keys, `_unique_id` and anything else.
    #[serde(flatten)]
    pub extra: X,
}

/// A notification with its payload and extra keys as JSON values, as [`classify`] checks it.
pub type CheckedNotification<'a> = Notification<'a, Value, Map<String, Value>>;

/// The oslo.messaging v2 envelope: the v1 dict JSON-encoded inside a string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationEnvelope<'a> {
    /// Always `"2.0"`.
    #[serde(rename = "oslo.version", borrow)]
    pub version: Cow<'a, str>,
    /// The v1 dict as a JSON string.
    #[serde(rename = "oslo.message", borrow)]
    pub message: Cow<'a, str>,
}

/// One field read from an mmstats file (records.md §3). `R` is the reading (`value` and,
/// for averages and histograms, their parts), `X` what the reader adds after `ts`; both
/// are flattened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "R: Serialize, X: Serialize",
    deserialize = "R: Deserialize<'de>, X: Deserialize<'de>, 'de: 'a"
))]
pub struct Stat<'a, R, X> {
    /// Always `"stat"`.
    pub kind: StatKind,
    /// The stats file it was read from.
    #[serde(borrow)]
    pub file: Cow<'a, str>,
    /// The writer's process id; `null` for a file that does not record it (a Python
    /// `BaseMmStats` file has no `sys.pid`).
    pub pid: Option<u32>,
    /// The field's label, e.g. `web.stats.status.2XX`.
    #[serde(borrow)]
    pub label: Cow<'a, str>,
    /// The field's type signature.
    #[serde(rename = "type", borrow)]
    pub type_code: Cow<'a, str>,
    /// The value and its parts.
    #[serde(flatten)]
    pub reading: R,
    /// When it was read, epoch seconds.
    pub ts: f64,
    /// Anything else.
    #[serde(flatten)]
    pub extra: X,
}

/// The reading of a stat as [`classify`] checks it: a `value` and any parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckedReading {
    /// The value (number, string, bool, …).
    pub value: Value,
}

/// A stat sample as [`classify`] checks it.
pub type CheckedStat<'a> = Stat<'a, CheckedReading, Map<String, Value>>;

/// One sample from a tracer (records.md §4); `X` holds the tracer-specific fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "V: Serialize, X: Serialize",
    deserialize = "V: Deserialize<'de>, X: Deserialize<'de>, 'de: 'a"
))]
pub struct Trace<'a, V, X> {
    /// Always `"trace"`.
    pub kind: TraceKind,
    /// The task that started the tracer.
    #[serde(borrow)]
    pub task: Cow<'a, str>,
    /// The tracer's name, e.g. `proc`.
    #[serde(borrow)]
    pub tracer: Cow<'a, str>,
    /// When it was sampled, epoch seconds.
    pub ts: f64,
    /// The series name.
    #[serde(borrow)]
    pub series: Cow<'a, str>,
    /// Unit of `value`.
    #[serde(borrow)]
    pub unit: Cow<'a, str>,
    /// The sample.
    pub value: V,
    /// Tracer-specific fields.
    #[serde(flatten)]
    pub extra: X,
}

/// A trace sample as [`classify`] checks it.
pub type CheckedTrace<'a> = Trace<'a, Value, Map<String, Value>>;

/// Just enough of a line to tell its family without building the whole record.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    kind: Option<&'a str>,
    #[serde(rename = "oslo.version", default)]
    oslo_version: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    event_type: Option<serde::de::IgnoredAny>,
}

/// The `cursor` of any record (a JSON object), if it has one: what a sink acknowledges,
/// whatever the record's family.
pub fn cursor_of(line: &[u8]) -> Option<Cow<'_, str>> {
    #[derive(Deserialize)]
    struct Cursor<'a> {
        #[serde(borrow)]
        cursor: Option<Cow<'a, str>>,
    }
    serde_json::from_slice::<Cursor>(line).ok()?.cursor
}

/// Tells which family `line` belongs to and checks it against that family's type.
///
/// The error is a cause for an operator (`missing field \`ts\` at column 80`), without the
/// location, which the caller knows.
pub fn classify(line: &[u8]) -> Result<Family, String> {
    let probe: Probe = serde_json::from_slice(line).map_err(|e| json_cause(&e))?;
    let family = match probe.kind {
        Some(MEASUREMENT) => Family::Measurement,
        Some(STAT) => Family::Stat,
        Some(TRACE) => Family::Trace,
        Some(other) => return Err(format!("unknown record kind {other:?}")),
        None if probe.oslo_version.is_some() || probe.event_type.is_some() => Family::Notification,
        None => {
            return Err(
                "not a record: no \"kind\" field and not a notification (no \"event_type\")"
                    .to_owned(),
            )
        }
    };
    let checked = match family {
        Family::Measurement => serde_json::from_slice::<CheckedMeasurement>(line).map(drop),
        Family::Stat => serde_json::from_slice::<CheckedStat>(line).map(drop),
        Family::Trace => serde_json::from_slice::<CheckedTrace>(line).map(drop),
        Family::Notification if probe.oslo_version.is_some() => check_envelope(line),
        Family::Notification => serde_json::from_slice::<CheckedNotification>(line).map(drop),
    };
    checked.map_err(|e| format!("invalid {} record: {}", family.name(), json_cause(&e)))?;
    Ok(family)
}

fn check_envelope(line: &[u8]) -> Result<(), serde_json::Error> {
    let envelope: NotificationEnvelope = serde_json::from_slice(line)?;
    serde_json::from_str::<CheckedNotification>(&envelope.message).map(drop)
}

/// Describes a serde_json error without its trailing "at line 1 column N" when the input
/// is a single line, keeping the column, which is still useful.
fn json_cause(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(at) => format!("{} at column {}", &text[..at], err.column()),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEASUREMENT_LINE: &str = r#"{"kind":"measurement","metadata":{"subject-type":"point-to-point","source":"10.0.0.1","destination":"10.0.0.2","tool-name":"bwctl/iperf3","measurement-agent":"10.0.0.1","input-source":"h1","input-destination":"h2","time-duration":"10","event-types":[{"event-type":"throughput","summaries":[{"summary-type":"average","summary-window":"86400"}]}]},"ts":1795386409,"values":{"throughput":9852811218.03},"cursor":"c1","extra":true}"#;

    #[test]
    fn every_family_of_records_md_is_recognised() {
        assert_eq!(
            classify(MEASUREMENT_LINE.as_bytes()),
            Ok(Family::Measurement)
        );
        let stat = r#"{"kind":"stat","file":"/run/app/web-123-123.mmstats","pid":123,"label":"web.stats.status.2XX","type":"Q","value":17,"ts":1795386409.25}"#;
        assert_eq!(classify(stat.as_bytes()), Ok(Family::Stat));
        let trace = r#"{"kind":"trace","task":"t","tracer":"proc","ts":1795386409.25,"series":"rss","unit":"bytes","value":12345,"pid":7}"#;
        assert_eq!(classify(trace.as_bytes()), Ok(Family::Trace));
        let v1 = r#"{"message_id":"m","publisher_id":"compute.host-1","event_type":"compute.instance.update","priority":"INFO","payload":{},"timestamp":"2026-11-22 00:00:00.000000","_context_request_id":"req-1"}"#;
        assert_eq!(classify(v1.as_bytes()), Ok(Family::Notification));
        let v2 = serde_json::json!({"oslo.version": "2.0", "oslo.message": v1}).to_string();
        assert_eq!(classify(v2.as_bytes()), Ok(Family::Notification));
    }

    #[test]
    fn a_checked_measurement_round_trips() {
        let record: CheckedMeasurement = serde_json::from_str(MEASUREMENT_LINE).unwrap();
        assert_eq!(record.metadata.parameters["time-duration"], "10");
        assert_eq!(record.cursor, Some(Text("c1".into())));
        let again = serde_json::to_string(&record).unwrap();
        let reparsed: CheckedMeasurement = serde_json::from_str(&again).unwrap();
        assert_eq!(reparsed, record);
    }

    #[test]
    fn a_raw_measurement_borrows_its_parts() {
        let record: RawMeasurement = serde_json::from_str(MEASUREMENT_LINE).unwrap();
        assert!(MEASUREMENT_LINE.contains(record.metadata.get()));
        assert_eq!(
            record.values[&Text("throughput".into())].get(),
            "9852811218.03"
        );
        assert!(matches!(record.cursor, Some(Text(Cow::Borrowed("c1")))));
        let stat = r#"{"kind":"stat","metadata":{},"ts":1,"values":{}}"#;
        let err = serde_json::from_str::<RawMeasurement>(stat).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a \"stat\" record, not a measurement at line 1 column 14"
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let missing_ts = MEASUREMENT_LINE.replace(r#""ts":1795386409,"#, "");
        assert_eq!(
            classify(missing_ts.as_bytes()).unwrap_err(),
            "invalid measurement record: missing field `ts` at column 411"
        );
        assert_eq!(
            classify(br#"{"kind":"bogus"}"#).unwrap_err(),
            "unknown record kind \"bogus\""
        );
        assert_eq!(
            classify(b"{\"a\":").unwrap_err(),
            "EOF while parsing a value at column 5"
        );
        let bad_window = MEASUREMENT_LINE.replace(r#""86400""#, r#""daily""#);
        assert_eq!(
            classify(bad_window.as_bytes()).unwrap_err(),
            "invalid measurement record: summary-window must be a whole number of seconds, got \"daily\" at column 341"
        );
    }

    proptest::proptest! {
        #[test]
        fn classify_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = classify(&bytes);
        }

        #[test]
        fn classify_never_panics_on_mutated_records(cut in 0usize..400, byte in proptest::num::u8::ANY) {
            let mut line = MEASUREMENT_LINE.as_bytes().to_vec();
            let at = cut % line.len();
            line[at] = byte;
            let _ = classify(&line);
            let _ = classify(&line[..at]);
        }
    }
}
