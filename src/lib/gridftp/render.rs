//! Writes a transfer as a measurement record (records.md §1), straight into a byte buffer:
//! the hot path of a loader that must keep up with a million lines a second.

use super::transfer::{Direction, Retransmits, Scalar, Transfer};
use crate::jsonout::{float, integer, string};

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
const EVENT_TYPES: &str = r#"[{"event-type":"throughput","summaries":[]},{"event-type":"streams-packet-retransmits","summaries":[]},{"event-type":"failures","summaries":[]}]"#;

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
    out.extend_from_slice(
        br#"{"kind":"measurement","metadata":{"subject-type":"point-to-point","source":"#,
    );
    string(out, source);
    out.extend_from_slice(br#","destination":"#);
    string(out, destination);
    out.extend_from_slice(br#","tool-name":"gridftp","measurement-agent":"#);
    string(out, address);
    out.extend_from_slice(br#","input-source":"#);
    string(out, input_source);
    out.extend_from_slice(br#","input-destination":"#);
    string(out, input_destination);
    for (key, value) in [
        ("bw-parallel-streams", transfer.streams),
        ("bw-stripes", transfer.stripes),
        ("gridftp-program", transfer.program),
        ("gridftp-block-size", transfer.block_size),
        ("tcp-window-size", transfer.tcp_window),
        ("gridftp-bytes-transferred", transfer.bytes),
    ] {
        key_prefix(out, key);
        scalar(out, value);
    }
    for (wanted, key, value) in [
        (options.file, "gridftp-file", transfer.file),
        (options.user, "gridftp-user", transfer.user),
        (options.volume, "gridftp-volume", transfer.volume),
    ] {
        if wanted {
            key_prefix(out, key);
            scalar(out, value.map_or(Scalar::Missing, Scalar::Text));
        }
    }
    out.extend_from_slice(br#","event-types":"#);
    out.extend_from_slice(EVENT_TYPES.as_bytes());
    out.extend_from_slice(br#"},"ts":"#);
    integer(out, transfer.start_us.div_euclid(1_000_000));
    out.extend_from_slice(br#","values":{"#);
    if transfer.succeeded() {
        if let Some(bps) = transfer.throughput() {
            out.extend_from_slice(br#""throughput":"#);
            float(out, bps);
            out.push(b',');
        }
        out.extend_from_slice(br#""streams-packet-retransmits":["#);
        match &transfer.retransmits {
            Retransmits::None => {}
            Retransmits::Text(text) => {
                for (i, n) in text.split(',').enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    integer(out, n.parse::<u64>().unwrap_or(0));
                }
            }
            Retransmits::List(list) => {
                for (i, n) in list.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    integer(out, *n);
                }
            }
        }
        out.extend_from_slice(b"]}");
    } else {
        out.extend_from_slice(br#""failures":{"error":"#);
        string(out, &super::ftp::failure_text(transfer.code.unwrap_or(0)));
        out.extend_from_slice(b"}}");
    }
    if let Some((prefix, offset, line)) = cursor {
        out.extend_from_slice(br#","cursor":""#);
        out.extend_from_slice(prefix.as_bytes());
        integer(out, offset);
        out.push(b':');
        integer(out, line);
        out.push(b'"');
    }
    out.push(b'}');
}

fn key_prefix(out: &mut Vec<u8>, key: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

fn scalar(out: &mut Vec<u8>, value: Scalar) {
    match value {
        Scalar::Int(n) => integer(out, n),
        Scalar::Text(text) => string(out, text),
        Scalar::Missing => out.extend_from_slice(b"null"),
    }
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
