//! A transfer as a measurement record (records.md §1): the shape is the shared
//! [`record::Measurement`], filled with gridftp's typed parameters and values, written
//! through the byte-level [`WriteJson`] path (35 % faster for the whole tool than serde's,
//! which is what the tests compare it with, byte for byte).

use std::borrow::Cow;

use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};

use super::transfer::{Direction, Retransmits, Scalar, Transfer};
use crate::record::fast::{self, member, WriteJson, WriteMembers};
use crate::record::{EventTypeSpec, FailureValue, Measurement, Metadata, Subject};

/// What to put in every record besides the transfer itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Add `gridftp-file` (off by default: file names can be private).
    pub file: bool,
    /// Add `gridftp-user`.
    pub user: bool,
    /// Add `gridftp-volume`.
    pub volume: bool,
}

/// The event types every gridftp measurement's metadata registers, so the metadata is the
/// same whether a run succeeded or failed.
const EVENT_TYPES: &[EventTypeSpec<'static>] = &[
    EventTypeSpec::plain("throughput"),
    EventTypeSpec::plain("streams-packet-retransmits"),
    EventTypeSpec::plain("failures"),
];

/// The event types of a gridftp record: all of [`EVENT_TYPES`], or for a successful
/// transfer from the JSON log the first two: the original's JSON mode registered no
/// `failures`, and esmond's metadata checksum covers the event types, so registering it
/// would fork the series the original created.
struct EventTypes {
    json_success: bool,
}

impl EventTypes {
    fn specs(&self) -> &'static [EventTypeSpec<'static>] {
        if self.json_success {
            &EVENT_TYPES[..2]
        } else {
            EVENT_TYPES
        }
    }
}

impl Serialize for EventTypes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.specs().serialize(serializer)
    }
}

impl WriteJson for EventTypes {
    /// The list is the same for every record: written once, then copied.
    fn write_json(&self, out: &mut Vec<u8>) {
        static WRITTEN: [std::sync::OnceLock<Vec<u8>>; 2] =
            [std::sync::OnceLock::new(), std::sync::OnceLock::new()];
        let text = WRITTEN[usize::from(self.json_success)].get_or_init(|| {
            let mut text = Vec::new();
            self.specs().write_json(&mut text);
            text
        });
        out.extend_from_slice(text);
    }
}

impl Serialize for Scalar<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Scalar::Int(n) => serializer.serialize_i64(*n),
            Scalar::Text(text) => serializer.serialize_str(text),
            Scalar::Missing => serializer.serialize_unit(),
        }
    }
}

/// The free-form parameters esmond-ps-load-gridftp registered, in its order.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Parameters<'a> {
    bw_parallel_streams: Scalar<'a>,
    bw_stripes: Scalar<'a>,
    gridftp_program: Scalar<'a>,
    gridftp_block_size: Scalar<'a>,
    tcp_window_size: Scalar<'a>,
    gridftp_bytes_transferred: Scalar<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gridftp_file: Option<Scalar<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gridftp_user: Option<Scalar<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gridftp_volume: Option<Scalar<'a>>,
}

/// A finished transfer's values.
#[derive(Serialize)]
#[serde(untagged)]
enum Values<'a> {
    Succeeded {
        #[serde(skip_serializing_if = "Option::is_none")]
        throughput: Option<f64>,
        #[serde(rename = "streams-packet-retransmits")]
        retransmits: &'a Retransmits<'a>,
    },
    Failed {
        failures: FailureValue<'a>,
    },
}

impl Serialize for Retransmits<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        match self {
            Retransmits::None => {}
            // Checked to be comma-separated integers when the line was parsed.
            Retransmits::Text(text) => {
                for n in text.split(',') {
                    seq.serialize_element(&n.parse::<u64>().unwrap_or(0))?;
                }
            }
            Retransmits::List(list) => {
                for n in list {
                    seq.serialize_element(n)?;
                }
            }
        }
        seq.end()
    }
}

/// A record's cursor: the position's identity prefix and `offset:line`, written without
/// building the string.
struct Cursor<'a> {
    prefix: &'a str,
    offset: u64,
    line: u64,
}

impl std::fmt::Display for Cursor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}:{}", self.prefix, self.offset, self.line)
    }
}

impl Serialize for Cursor<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// An optional parameter: absent unless `wanted`, `null` when the log lacks it.
fn optional(wanted: bool, value: Option<&str>) -> Option<Scalar<'_>> {
    wanted.then(|| value.map_or(Scalar::Missing, Scalar::Text))
}

impl WriteJson for Scalar<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Scalar::Int(n) => fast::integer(out, *n),
            Scalar::Text(text) => fast::string(out, text),
            Scalar::Missing => out.extend_from_slice(b"null"),
        }
    }
}

impl WriteMembers for Parameters<'_> {
    fn write_members(&self, out: &mut Vec<u8>) {
        for (name, value) in [
            ("bw-parallel-streams", &self.bw_parallel_streams),
            ("bw-stripes", &self.bw_stripes),
            ("gridftp-program", &self.gridftp_program),
            ("gridftp-block-size", &self.gridftp_block_size),
            ("tcp-window-size", &self.tcp_window_size),
            ("gridftp-bytes-transferred", &self.gridftp_bytes_transferred),
        ] {
            member(out, name);
            value.write_json(out);
        }
        for (name, value) in [
            ("gridftp-file", &self.gridftp_file),
            ("gridftp-user", &self.gridftp_user),
            ("gridftp-volume", &self.gridftp_volume),
        ] {
            if let Some(value) = value {
                member(out, name);
                value.write_json(out);
            }
        }
    }
}

impl WriteJson for Retransmits<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Retransmits::None => out.extend_from_slice(b"[]"),
            // Checked to be comma-separated integers when the line was parsed.
            Retransmits::Text(text) => fast::list(out, text.split(','), |out, n| {
                fast::integer(out, n.parse::<u64>().unwrap_or(0))
            }),
            Retransmits::List(list) => list.as_slice().write_json(out),
        }
    }
}

impl WriteJson for Values<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Values::Succeeded {
                throughput,
                retransmits,
            } => {
                out.push(b'{');
                if let Some(bps) = throughput {
                    out.extend_from_slice(b"\"throughput\":");
                    fast::float(out, *bps);
                    out.push(b',');
                }
                out.extend_from_slice(b"\"streams-packet-retransmits\":");
                retransmits.write_json(out);
                out.push(b'}');
            }
            Values::Failed { failures } => {
                out.extend_from_slice(b"{\"failures\":");
                failures.write_json(out);
                out.push(b'}');
            }
        }
    }
}

impl WriteJson for Cursor<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        // The prefix is digits, hex and colons: nothing to escape.
        out.push(b'"');
        out.extend_from_slice(self.prefix.as_bytes());
        fast::integer(out, self.offset);
        out.push(b':');
        fast::integer(out, self.line);
        out.push(b'"');
    }
}

/// Appends one measurement record (without newline) to `out`.
///
/// `host` is the server's logged name and `address` its address; `cursor` is the cursor
/// prefix and the `offset:line` to append, if records carry cursors.
pub fn measurement(
    out: &mut Vec<u8>,
    transfer: &Transfer,
    host: &str,
    address: &str,
    options: Options,
    cursor: Option<(&str, u64, u64)>,
) {
    let (source, destination, input_source, input_destination) = match transfer.direction {
        Direction::Sent => (address, transfer.dest, host, transfer.dest),
        Direction::Received => (transfer.dest, address, transfer.dest, host),
    };
    let values = if transfer.succeeded() {
        Values::Succeeded {
            throughput: transfer.throughput(),
            retransmits: &transfer.retransmits,
        }
    } else {
        Values::Failed {
            failures: FailureValue {
                error: Cow::Owned(super::ftp::failure_text(transfer.code.unwrap_or(0))),
            },
        }
    };
    let subject = Subject {
        source,
        destination,
        tool_name: "gridftp",
        measurement_agent: address,
        input_source,
        input_destination,
    };
    let parameters = Parameters {
        bw_parallel_streams: transfer.streams,
        bw_stripes: transfer.stripes,
        gridftp_program: transfer.program,
        gridftp_block_size: transfer.block_size,
        tcp_window_size: transfer.tcp_window,
        gridftp_bytes_transferred: transfer.bytes,
        gridftp_file: optional(options.file, transfer.file),
        gridftp_user: optional(options.user, transfer.user),
        gridftp_volume: optional(options.volume, transfer.volume),
    };
    let record = Measurement::new(
        Metadata::point_to_point(
            subject,
            parameters,
            EventTypes {
                json_success: transfer.from_json && transfer.succeeded(),
            },
        ),
        transfer.start_us.div_euclid(1_000_000),
        values,
        cursor.map(|(prefix, offset, line)| Cursor {
            prefix,
            offset,
            line,
        }),
    );
    record.write_json(out);
    #[cfg(test)]
    assert_eq!(
        std::str::from_utf8(out).ok(),
        serde_json::to_string(&record).ok().as_deref(),
        "the fast path and serde disagree"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gridftp::line::split_fields;
    use crate::gridftp::transfer::from_netlogger;
    use serde_json::{json, Value};

    fn render(line: &str, options: Options) -> Value {
        let mut fields = Vec::new();
        split_fields(line, &mut fields).unwrap();
        let transfer = from_netlogger(&fields).unwrap().unwrap();
        let mut out = Vec::new();
        measurement(
            &mut out,
            &transfer,
            "localhost",
            "127.0.0.1",
            options,
            Some(("gridftp1:1:2:0:0000000000000000:", 10, 1)),
        );
        serde_json::from_slice(&out).unwrap()
    }

    /// Every transfer of the fixture logs, with every option and awkward names: the fast
    /// path (checked against serde inside `measurement` under test) never disagrees.
    #[test]
    fn the_fast_path_matches_serde_on_every_fixture_transfer() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gridftp");
        let mut rendered = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
            for line in text.lines() {
                let Ok(crate::gridftp::line::Kind::Netlogger(fields_text)) =
                    crate::gridftp::line::classify(line, crate::gridftp::line::Format::Auto)
                else {
                    continue;
                };
                let mut fields = Vec::new();
                if split_fields(fields_text, &mut fields).is_err() {
                    continue;
                }
                let Ok(Some(transfer)) = from_netlogger(&fields) else {
                    continue;
                };
                for (host, options) in [
                    ("localhost", Options::default()),
                    (
                        "h\"q\\\u{1}é",
                        Options {
                            file: true,
                            user: true,
                            volume: true,
                        },
                    ),
                ] {
                    let mut out = Vec::new();
                    measurement(
                        &mut out,
                        &transfer,
                        host,
                        "::1",
                        options,
                        Some(("gridftp1:1:2:0:00:", 9, 3)),
                    );
                    measurement(&mut Vec::new(), &transfer, host, "::1", options, None);
                    rendered += 1;
                }
            }
        }
        assert!(rendered > 20, "{rendered}");
    }

    #[test]
    fn the_written_event_types_are_the_declared_ones() {
        let written = |json_success| {
            let mut out = Vec::new();
            EventTypes { json_success }.write_json(&mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            written(false),
            r#"[{"event-type":"throughput","summaries":[]},{"event-type":"streams-packet-retransmits","summaries":[]},{"event-type":"failures","summaries":[]}]"#
        );
        assert_eq!(
            written(true),
            r#"[{"event-type":"throughput","summaries":[]},{"event-type":"streams-packet-retransmits","summaries":[]}]"#
        );
    }

    #[test]
    fn a_failed_store_is_reversed_and_reports_its_code() {
        let record = render(
            "DATE=20150407150001.000000 HOST=localhost PROG=globus-gridftp-server NL.EVNT=FTP_INFO START=20150407145950.500000 USER=anonymous FILE=/data1/1G.dat BUFFER=0 BLOCK=262144 NBYTES=1000000 VOLUME=/ STREAMS=2 STRIPES=1 DEST=[127.0.0.1] TYPE=STOR CODE=426",
            Options { file: true, user: false, volume: true },
        );
        assert_eq!(record["metadata"]["input-source"], "127.0.0.1");
        assert_eq!(record["metadata"]["input-destination"], "localhost");
        assert_eq!(record["metadata"]["tcp-window-size"], 0);
        assert_eq!(record["metadata"]["gridftp-file"], "/data1/1G.dat");
        assert_eq!(record["metadata"]["gridftp-volume"], "/");
        assert!(record["metadata"].get("gridftp-user").is_none());
        assert_eq!(record["ts"], 1428418790);
        assert_eq!(
            record["values"],
            json!({"failures": {"error": "426 Connection closed; transfer aborted."}})
        );
        assert_eq!(record["cursor"], "gridftp1:1:2:0:0000000000000000:10:1");
    }
}
