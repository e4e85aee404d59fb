//! An iperf3 report → one measurement record (records.md §1), mapped as esmond-ps-pipe
//! did, with the fixes listed in the module docs of [`crate::iperf3`].

use serde_json::Number;

use crate::jsonout::{integer, key, number, optional_number, string};

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
    out.extend_from_slice(br#"{"kind":"measurement","metadata":{"subject-type":"point-to-point""#);
    let mut first = false;
    for (name, value) in [
        ("source", source),
        ("destination", destination),
        ("tool-name", context.tool_name),
        ("measurement-agent", agent),
        ("input-source", context.input_source.unwrap_or(source)),
        (
            "input-destination",
            context.input_destination.unwrap_or(destination),
        ),
    ] {
        key(out, &mut first, name);
        string(out, value);
    }
    if let Some(test) = &report.start.test_start {
        key(out, &mut first, "ip-transport-protocol");
        string(out, &test.protocol);
        if let Some(duration) = &test.duration {
            key(out, &mut first, "time-duration");
            number(out, duration);
        }
        key(out, &mut first, "bw-parallel-streams");
        integer(out, test.num_streams);
        if let Some(omit) = &test.omit {
            key(out, &mut first, "bw-ignore-first-seconds");
            number(out, omit);
        }
    }
    key(out, &mut first, "event-types");
    out.push(b'[');
    for (i, name) in event_types(udp, streams, report.start.test_start.is_some())
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"event-type":"#);
        string(out, name);
        out.extend_from_slice(br#","summaries":[]}"#);
    }
    out.extend_from_slice(br#"]},"ts":"#);
    let ts = report
        .start
        .timestamp
        .as_ref()
        .map_or(context.fallback_ts, |t| t.timesecs);
    integer(out, ts);
    out.extend_from_slice(br#","values":{"#);
    match &report.error {
        Some(error) => {
            out.extend_from_slice(br#""failures":{"error":"#);
            string(out, error);
            out.push(b'}');
        }
        None => values(out, report, udp, streams, context.legacy_shapes),
    }
    out.extend_from_slice(b"}}");
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

/// The event types registered for a kind of test: the original's set, then `failures`.
fn event_types(udp: bool, streams: u64, known: bool) -> Vec<&'static str> {
    let mut names = vec![
        "throughput",
        "throughput-subintervals",
        "packet-retransmits-subintervals",
    ];
    if streams > 1 {
        if !udp {
            names.extend([
                "streams-packet-retransmits",
                "streams-packet-retransmits-subintervals",
            ]);
        }
        names.extend(["streams-throughput", "streams-throughput-subintervals"]);
    }
    if udp {
        names.extend(["packet-count-lost", "packet-count-sent", "packet-loss-rate"]);
    } else if known {
        names.push("packet-retransmits");
    }
    names.push("failures");
    names
}

/// `{"start":…,"duration":…,"<key>":…}` for one slice.
fn subinterval(out: &mut Vec<u8>, slice: &Slice, key_name: &str, value: Option<&Number>) {
    out.extend_from_slice(br#"{"start":"#);
    optional_number(out, slice.start.as_ref());
    out.extend_from_slice(br#","duration":"#);
    optional_number(out, slice.seconds.as_ref());
    out.push(b',');
    string(out, key_name);
    out.push(b':');
    optional_number(out, value);
    out.push(b'}');
}

/// `[item, item, …]`.
fn list<T>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = T>,
    mut each: impl FnMut(&mut Vec<u8>, T),
) {
    out.push(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, item);
    }
    out.push(b']');
}

fn values(out: &mut Vec<u8>, report: &Report, udp: bool, streams: u64, legacy: bool) {
    let end = &report.end;
    let mut first = true;
    let total = if udp { &end.sum } else { &end.sum_received };
    if let Some(bps) = total.as_ref().and_then(|s| s.bits_per_second.as_ref()) {
        key(out, &mut first, "throughput");
        number(out, bps);
    }
    let sums = || report.intervals.iter().filter_map(|i| i.sum.as_ref());
    key(out, &mut first, "throughput-subintervals");
    list(out, sums(), |out, s| {
        subinterval(out, s, "val", s.bits_per_second.as_ref())
    });
    if udp {
        let sum = end.sum.as_ref();
        let lost = sum.and_then(|s| s.lost_packets.as_ref());
        let sent = sum.and_then(|s| s.packets.as_ref());
        if let Some(lost) = lost {
            key(out, &mut first, "packet-count-lost");
            number(out, lost);
        }
        if let Some(sent) = sent {
            key(out, &mut first, "packet-count-sent");
            number(out, sent);
        }
        // A zero denominator would be refused by the archive.
        if let (Some(lost), Some(sent)) = (lost, sent) {
            if sent.as_f64().is_some_and(|n| n > 0.0) {
                key(out, &mut first, "packet-loss-rate");
                out.extend_from_slice(br#"{"numerator":"#);
                number(out, lost);
                out.extend_from_slice(br#","denominator":"#);
                number(out, sent);
                out.push(b'}');
            }
        }
    } else if let Some(retransmits) = end.sum_sent.as_ref().and_then(|s| s.retransmits.as_ref()) {
        key(out, &mut first, "packet-retransmits");
        number(out, retransmits);
    }
    key(out, &mut first, "packet-retransmits-subintervals");
    list(out, sums(), |out, s| {
        subinterval(out, s, "val", s.retransmits.as_ref())
    });
    if streams > 1 {
        if !udp {
            key(out, &mut first, "streams-packet-retransmits");
            list(out, &end.streams, |out, s| {
                optional_number(out, s.sender.as_ref().and_then(|s| s.retransmits.as_ref()))
            });
            key(out, &mut first, "streams-packet-retransmits-subintervals");
            per_stream(out, report, legacy, "retransmits", |s| {
                s.retransmits.as_ref()
            });
        }
        key(out, &mut first, "streams-throughput");
        list(out, &end.streams, |out, s| {
            let side = if udp { &s.udp } else { &s.receiver };
            optional_number(out, side.as_ref().and_then(|s| s.bits_per_second.as_ref()))
        });
        key(out, &mut first, "streams-throughput-subintervals");
        per_stream(out, report, legacy, "throughput", |s| {
            s.bits_per_second.as_ref()
        });
    }
}

/// Per-stream subintervals: stream-major with key `val`, or (legacy) interval-major with
/// `legacy_key`.
fn per_stream(
    out: &mut Vec<u8>,
    report: &Report,
    legacy: bool,
    legacy_key: &str,
    field: impl Fn(&Slice) -> Option<&Number>,
) {
    if legacy {
        list(out, &report.intervals, |out, interval| {
            list(out, &interval.streams, |out, s| {
                subinterval(out, s, legacy_key, field(s))
            })
        });
        return;
    }
    let count = report
        .intervals
        .iter()
        .map(|i| i.streams.len())
        .max()
        .unwrap_or(0);
    list(out, 0..count, |out, stream| {
        let slices = report
            .intervals
            .iter()
            .filter_map(|i| i.streams.get(stream));
        list(out, slices, |out, s| subinterval(out, s, "val", field(s)))
    });
}
