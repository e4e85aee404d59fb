//! The four record families of the NDJSON contract between binaries (records.md).
//!
//! Each family is a serde type whose named fields are the contract; everything else a
//! record carries is kept in an `extra` map so filters pass unknown fields through
//! untouched. [`classify`] tells which family a line belongs to and validates it against
//! that family's type, with messages that name the missing or malformed field.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// The `kind` value of a measurement record.
pub const MEASUREMENT: &str = "measurement";
/// The `kind` value of a stat sample.
pub const STAT: &str = "stat";
/// The `kind` value of a trace sample.
pub const TRACE: &str = "trace";

/// A record family, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
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

/// One measurement run at one timestamp with every event type it produced (records.md §1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Always `"measurement"`.
    pub kind: String,
    /// Exactly an esmond metadata POST body.
    pub metadata: Metadata,
    /// Integer epoch seconds (UTC).
    pub ts: i64,
    /// Event type → value, in the shape esmond stores for that event type.
    pub values: Map<String, Value>,
    /// Opaque resume token of the producer, echoed back by sinks that acknowledge delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Fields this crate does not own, passed through untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An esmond metadata object: the subject fields, free-form parameters and event types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Metadata {
    /// `point-to-point` or `network-element`.
    pub subject_type: String,
    /// Source address (an IP literal for esmond).
    pub source: String,
    /// Destination address (an IP literal for esmond).
    pub destination: String,
    /// The tool that measured, e.g. `bwctl/iperf3`.
    pub tool_name: String,
    /// The host that ran the measurement (an IP literal for esmond).
    pub measurement_agent: String,
    /// The source as the user named it.
    pub input_source: String,
    /// The destination as the user named it.
    pub input_destination: String,
    /// Every event type the producer can emit for this kind of test.
    pub event_types: Vec<EventTypeSpec>,
    /// Free-form parameters (`time-duration`, `ip-transport-protocol`, …).
    #[serde(flatten)]
    pub parameters: Map<String, Value>,
}

/// One entry of a metadata's `event-types` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EventTypeSpec {
    /// The esmond event type, e.g. `throughput`.
    pub event_type: String,
    /// Summaries the archive keeps for it.
    #[serde(default)]
    pub summaries: Vec<SummarySpec>,
}

/// A summary of an event type: its type and window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SummarySpec {
    /// `aggregation`, `average` or `statistics`.
    pub summary_type: String,
    /// Window in seconds; esmond sends it as a string, clients often as a number.
    #[serde(deserialize_with = "window_as_string")]
    pub summary_window: String,
}

fn window_as_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    use serde::de::Error as _;
    match Value::deserialize(deserializer)? {
        Value::Number(n) if n.is_u64() => Ok(n.to_string()),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => Ok(s),
        other => Err(D::Error::custom(format!(
            "summary-window must be a whole number of seconds, got {other}"
        ))),
    }
}

/// The oslo.messaging v1 notification dict (records.md §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// A UUID per message.
    pub message_id: String,
    /// `<service>.<host>`, e.g. `compute.host-12`.
    pub publisher_id: String,
    /// e.g. `compute.instance.create.end`.
    pub event_type: String,
    /// `INFO`, `ERROR`, …
    pub priority: String,
    /// The notification body.
    pub payload: Value,
    /// When it was sent (`YYYY-MM-DD HH:MM:SS.ffffff` as oslo sends it, or RFC 3339).
    pub timestamp: String,
    /// `_context_*` keys, `_unique_id` and anything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The oslo.messaging v2 envelope: the v1 dict JSON-encoded inside a string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationEnvelope {
    /// Always `"2.0"`.
    #[serde(rename = "oslo.version")]
    pub version: String,
    /// The v1 dict as a JSON string.
    #[serde(rename = "oslo.message")]
    pub message: String,
}

/// One field read from an mmstats file (records.md §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatSample {
    /// Always `"stat"`.
    pub kind: String,
    /// The stats file it was read from.
    pub file: String,
    /// The writer's process id; `null` for a file that does not record it (a Python
    /// `BaseMmStats` file has no `sys.pid`).
    pub pid: Option<u32>,
    /// The field's label, e.g. `web.stats.status.2XX`.
    pub label: String,
    /// The field's type signature.
    #[serde(rename = "type")]
    pub type_code: String,
    /// The value (number, string, bool, …).
    pub value: Value,
    /// When it was read, epoch seconds.
    pub ts: f64,
    /// Histogram/summary parts (`count`, `sum`, `p50`, …) and anything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One sample from a tracer (records.md §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSample {
    /// Always `"trace"`.
    pub kind: String,
    /// The task that started the tracer.
    pub task: String,
    /// The tracer's name, e.g. `proc`.
    pub tracer: String,
    /// When it was sampled, epoch seconds.
    pub ts: f64,
    /// The series name.
    pub series: String,
    /// Unit of `value`.
    pub unit: String,
    /// The sample.
    pub value: Value,
    /// Tracer-specific fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

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
        Family::Measurement => serde_json::from_slice::<Measurement>(line).map(drop),
        Family::Stat => serde_json::from_slice::<StatSample>(line).map(drop),
        Family::Trace => serde_json::from_slice::<TraceSample>(line).map(drop),
        Family::Notification if probe.oslo_version.is_some() => check_envelope(line),
        Family::Notification => serde_json::from_slice::<Notification>(line).map(drop),
    };
    checked.map_err(|e| format!("invalid {} record: {}", family.name(), json_cause(&e)))?;
    Ok(family)
}

fn check_envelope(line: &[u8]) -> Result<(), serde_json::Error> {
    let envelope: NotificationEnvelope = serde_json::from_slice(line)?;
    serde_json::from_str::<Notification>(&envelope.message).map(drop)
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
    fn unknown_fields_survive_a_round_trip() {
        let record: Measurement = serde_json::from_str(MEASUREMENT_LINE).unwrap();
        assert_eq!(record.extra["extra"], Value::Bool(true));
        assert_eq!(record.metadata.parameters["time-duration"], "10");
        let again = serde_json::to_string(&record).unwrap();
        let reparsed: Measurement = serde_json::from_str(&again).unwrap();
        assert_eq!(reparsed, record);
    }

    #[test]
    fn errors_name_the_problem() {
        let missing_ts = MEASUREMENT_LINE.replace(r#""ts":1795386409,"#, "");
        let err = classify(missing_ts.as_bytes()).unwrap_err();
        assert!(
            err.starts_with("invalid measurement record: missing field `ts`"),
            "{err}"
        );
        assert!(classify(br#"{"kind":"bogus"}"#)
            .unwrap_err()
            .contains("bogus"));
        assert!(classify(b"{\"a\":").unwrap_err().contains("EOF"));
        let bad_window = MEASUREMENT_LINE.replace(r#""86400""#, r#""daily""#);
        assert!(classify(bad_window.as_bytes())
            .unwrap_err()
            .contains("summary-window"));
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
