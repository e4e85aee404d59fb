//! An iperf3 report → one measurement record (records.md §1), mapped as esmond-ps-pipe
//! did, with the fixes listed in the module docs of [`crate::iperf3`].

use std::borrow::Cow;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Number;

use crate::record::{EventTypeSpec, FailureValue, Measurement, Metadata, Subject};

use super::report::{Report, Slice};

/// What the report itself does not say.
#[derive(Debug, Clone, Default)]
pub struct Context<'a> {
    /// `tool-name`: `bwctl/iperf3` for transcripts, `iperf3` for plain runs.
    pub tool_name: &'a str,
    /// The sender's name (`input-source`); default: the source address.
    pub input_source: Option<&'a str>,
    /// The receiver's name (`input-destination`); default: the destination address.
    pub input_destination: Option<&'a str>,
    /// `measurement-agent`; default: the iperf3 client's address.
    pub measurement_agent: Option<&'a str>,
    /// The original's interval-major `streams-*-subintervals`.
    pub legacy_shapes: bool,
    /// `ts` when the report has no start time (a test that failed to connect).
    pub fallback_ts: i64,
}

/// The free-form parameters of the test, as esmond-ps-pipe registered them.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Parameters<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_transport_protocol: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_duration: Option<&'a Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bw_parallel_streams: Option<u64>,
    /// Spelt with underscores, as esmond-ps-pipe did: the spelling is part of the
    /// metadata's identity, and a dashed key forked every series a site had.
    #[serde(
        rename = "bw_ignore_first_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    bw_ignore_first_seconds: Option<&'a Number>,
}

/// A test's values: `failures` for a failed test, else every event type it measured.
enum Values<'a> {
    Failed(&'a str),
    Measured {
        report: &'a Report,
        udp: bool,
        streams: u64,
        legacy: bool,
    },
}

/// Appends the measurement record for `report` (without newline) to `out`.
pub fn write(out: &mut Vec<u8>, report: &Report, context: &Context) -> Result<(), String> {
    let (source, destination) = endpoints(report, context)?;
    let udp = report.is_udp();
    let streams = report.streams();
    let agent = context
        .measurement_agent
        .or_else(|| {
            report
                .start
                .connected
                .first()
                .map(|c| c.local_host.as_str())
        })
        .unwrap_or(source);
    let test = report.start.test_start.as_ref();
    let event_types = event_types(udp, streams, test.is_some(), report.error.is_some());
    let subject = Subject {
        source,
        destination,
        tool_name: context.tool_name,
        measurement_agent: agent,
        input_source: context.input_source.unwrap_or(source),
        input_destination: context.input_destination.unwrap_or(destination),
    };
    let parameters = Parameters {
        ip_transport_protocol: test.map(|t| t.protocol.as_str()),
        time_duration: test.and_then(|t| t.duration.as_ref()),
        bw_parallel_streams: test.map(|t| t.num_streams),
        bw_ignore_first_seconds: test.and_then(|t| t.omit.as_ref()),
    };
    let ts = report
        .start
        .timestamp
        .as_ref()
        .map_or(context.fallback_ts, |t| t.timesecs);
    let values = match &report.error {
        Some(error) => Values::Failed(error),
        None => Values::Measured {
            report,
            udp,
            streams,
            legacy: context.legacy_shapes,
        },
    };
    let record = Measurement::new(
        Metadata::point_to_point(subject, parameters, event_types),
        ts,
        values,
        None::<&str>,
    );
    // Serialising into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &record);
    Ok(())
}

/// Source and destination addresses: the data's direction, from the client's connection
/// (swapped for `-R`), or from the names given for a test that never connected.
fn endpoints<'a>(report: &'a Report, context: &Context<'a>) -> Result<(&'a str, &'a str), String> {
    if let Some(connection) = report.start.connected.first() {
        let (client, server) = (
            connection.local_host.as_str(),
            connection.remote_host.as_str(),
        );
        let reverse = report
            .start
            .test_start
            .as_ref()
            .is_some_and(|t| t.reverse != 0);
        return Ok(if reverse {
            (server, client)
        } else {
            (client, server)
        });
    }
    match (context.input_source, context.input_destination) {
        (Some(source), Some(destination)) => Ok((source, destination)),
        _ => Err(match &report.error {
            Some(error) => format!(
                "the test failed ({error}) before connecting, so it names no endpoints; give --input-source and --input-destination"
            ),
            None => "the iperf3 JSON has no start.connected endpoints".to_owned(),
        }),
    }
}

/// The event types registered for a kind of test: the original's set, so a successful
/// test lands in the metadata esmond-ps-pipe created (esmond's metadata checksum covers
/// the event types); a failed test adds `failures`, which the original never recorded.
fn event_types(udp: bool, streams: u64, known: bool, failed: bool) -> Vec<EventTypeSpec<'static>> {
    let mut names = Vec::with_capacity(12);
    let mut add =
        |list: &[&'static str]| names.extend(list.iter().map(|n| EventTypeSpec::plain(n)));
    add(&[
        "throughput",
        "throughput-subintervals",
        "packet-retransmits-subintervals",
    ]);
    if streams > 1 {
        if !udp {
            add(&[
                "streams-packet-retransmits",
                "streams-packet-retransmits-subintervals",
            ]);
        }
        add(&["streams-throughput", "streams-throughput-subintervals"]);
    }
    if udp {
        add(&["packet-count-lost", "packet-count-sent", "packet-loss-rate"]);
    } else if known {
        add(&["packet-retransmits"]);
    }
    if failed {
        add(&["failures"]);
    }
    names
}

/// `{"start":…,"duration":…,"<key>":…}` for one slice.
struct Subinterval<'a> {
    slice: &'a Slice,
    key: &'a str,
    value: Option<&'a Number>,
}

impl Serialize for Subinterval<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("start", &self.slice.start)?;
        map.serialize_entry("duration", &self.slice.seconds)?;
        map.serialize_entry(self.key, &self.value)?;
        map.end()
    }
}

/// A list serialised from an iterator that can be walked again.
struct List<F>(F);

impl<F, I> Serialize for List<F>
where
    F: Fn() -> I,
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for item in (self.0)() {
            seq.serialize_element(&item)?;
        }
        seq.end()
    }
}

/// Per-stream subintervals: stream-major with key `val`, or (legacy) interval-major with
/// `legacy_key`.
struct PerStream<'a> {
    report: &'a Report,
    legacy: bool,
    legacy_key: &'a str,
    field: fn(&Slice) -> Option<&Number>,
}

impl Serialize for PerStream<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (field, report, legacy_key) = (self.field, self.report, self.legacy_key);
        if self.legacy {
            return List(|| {
                report.intervals.iter().map(|interval| {
                    List(|| {
                        interval.streams.iter().map(|s| Subinterval {
                            slice: s,
                            key: legacy_key,
                            value: field(s),
                        })
                    })
                })
            })
            .serialize(serializer);
        }
        let count = report
            .intervals
            .iter()
            .map(|i| i.streams.len())
            .max()
            .unwrap_or(0);
        List(|| {
            (0..count).map(move |stream| {
                List(move || {
                    report
                        .intervals
                        .iter()
                        .filter_map(move |i| i.streams.get(stream))
                        .map(move |s| Subinterval {
                            slice: s,
                            key: "val",
                            value: field(s),
                        })
                })
            })
        })
        .serialize(serializer)
    }
}

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        let (report, udp, streams, legacy) = match *self {
            Values::Failed(error) => {
                map.serialize_entry(
                    "failures",
                    &FailureValue {
                        error: Cow::Borrowed(error),
                    },
                )?;
                return map.end();
            }
            Values::Measured {
                report,
                udp,
                streams,
                legacy,
            } => (report, udp, streams, legacy),
        };
        let end = &report.end;
        let total = if udp { &end.sum } else { &end.sum_received };
        if let Some(bps) = total.as_ref().and_then(|s| s.bits_per_second.as_ref()) {
            map.serialize_entry("throughput", bps)?;
        }
        let sums = || report.intervals.iter().filter_map(|i| i.sum.as_ref());
        let subintervals = |field: fn(&Slice) -> Option<&Number>| {
            List(move || {
                sums().map(move |s| Subinterval {
                    slice: s,
                    key: "val",
                    value: field(s),
                })
            })
        };
        map.serialize_entry(
            "throughput-subintervals",
            &subintervals(|s| s.bits_per_second.as_ref()),
        )?;
        if udp {
            let sum = end.sum.as_ref();
            let lost = sum.and_then(|s| s.lost_packets.as_ref());
            let sent = sum.and_then(|s| s.packets.as_ref());
            if let Some(lost) = lost {
                map.serialize_entry("packet-count-lost", lost)?;
            }
            if let Some(sent) = sent {
                map.serialize_entry("packet-count-sent", sent)?;
            }
            // A zero denominator would be refused by the archive.
            if let (Some(lost), Some(sent)) = (lost, sent) {
                if sent.as_f64().is_some_and(|n| n > 0.0) {
                    map.serialize_entry(
                        "packet-loss-rate",
                        &LossRate {
                            numerator: lost,
                            denominator: sent,
                        },
                    )?;
                }
            }
        } else if let Some(retransmits) = end.sum_sent.as_ref().and_then(|s| s.retransmits.as_ref())
        {
            map.serialize_entry("packet-retransmits", retransmits)?;
        }
        map.serialize_entry(
            "packet-retransmits-subintervals",
            &subintervals(|s| s.retransmits.as_ref()),
        )?;
        if streams > 1 {
            if !udp {
                map.serialize_entry(
                    "streams-packet-retransmits",
                    &List(|| {
                        end.streams
                            .iter()
                            .map(|s| s.sender.as_ref().and_then(|s| s.retransmits.as_ref()))
                    }),
                )?;
                map.serialize_entry(
                    "streams-packet-retransmits-subintervals",
                    &PerStream {
                        report,
                        legacy,
                        legacy_key: "retransmits",
                        field: |s| s.retransmits.as_ref(),
                    },
                )?;
            }
            map.serialize_entry(
                "streams-throughput",
                &List(|| {
                    end.streams.iter().map(|s| {
                        let side = if udp { &s.udp } else { &s.receiver };
                        side.as_ref().and_then(|s| s.bits_per_second.as_ref())
                    })
                }),
            )?;
            map.serialize_entry(
                "streams-throughput-subintervals",
                &PerStream {
                    report,
                    legacy,
                    legacy_key: "throughput",
                    field: |s| s.bits_per_second.as_ref(),
                },
            )?;
        }
        map.end()
    }
}

/// `packet-loss-rate`: esmond's percentage shape.
#[derive(Serialize)]
struct LossRate<'a> {
    numerator: &'a Number,
    denominator: &'a Number,
}
