//! One finished transfer, from either log format, with the checks a record needs.

use serde_json::Value;

use super::line::Field;

/// Seconds from the epoch to the end of year 9999.
const MAX_EPOCH_SECONDS: f64 = 253_402_300_799.0;

/// A metadata value: an integer where the log has one, else the text (as the original,
/// which sent `int(v)` where possible), or absent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    /// An integer.
    Int(i64),
    /// Anything else.
    Text(&'a str),
    /// Not in the log (sent as `null`).
    Missing,
}

impl<'a> Scalar<'a> {
    fn of(text: Option<&'a str>) -> Scalar<'a> {
        match text {
            None => Scalar::Missing,
            Some(t) => t.parse().map_or(Scalar::Text(t), Scalar::Int),
        }
    }

    fn of_json(value: Option<&'a Value>) -> Scalar<'a> {
        match value {
            None | Some(Value::Null) => Scalar::Missing,
            Some(Value::Number(n)) => n.as_i64().map_or(Scalar::Missing, Scalar::Int),
            Some(Value::String(s)) => Scalar::of(Some(s)),
            Some(_) => Scalar::Missing,
        }
    }
}

/// Per-stream TCP retransmits.
#[derive(Debug, Clone, PartialEq)]
pub enum Retransmits<'a> {
    /// None collected.
    None,
    /// The netlogger `retrans=n,n,…` text, checked to be comma-separated integers.
    Text(&'a str),
    /// From the JSON log's streams.
    List(Vec<u64>),
}

/// Which way the data went, seen from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The server sent (RETR, ERET): host → DEST.
    Sent,
    /// The server received (STOR, ESTO): DEST → host.
    Received,
}

/// A transfer read from a log line.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer<'a> {
    /// RETR, STOR, ERET or ESTO.
    pub command: &'a str,
    /// Which way the data went.
    pub direction: Direction,
    /// The FTP reply code; `None` when the log does not say (JSON without `ret_code`).
    pub code: Option<u32>,
    /// START, microseconds since the epoch (UTC).
    pub start_us: i64,
    /// DATE (end), microseconds since the epoch (UTC).
    pub end_us: i64,
    /// The server's host name, if logged.
    pub host: Option<&'a str>,
    /// The peer: DEST without its brackets.
    pub dest: &'a str,
    /// NBYTES.
    pub bytes: Scalar<'a>,
    /// STREAMS.
    pub streams: Scalar<'a>,
    /// STRIPES.
    pub stripes: Scalar<'a>,
    /// PROG.
    pub program: Scalar<'a>,
    /// BLOCK.
    pub block_size: Scalar<'a>,
    /// BUFFER (TCP window).
    pub tcp_window: Scalar<'a>,
    /// USER.
    pub user: Option<&'a str>,
    /// FILE.
    pub file: Option<&'a str>,
    /// VOLUME.
    pub volume: Option<&'a str>,
    /// Per-stream retransmits.
    pub retransmits: Retransmits<'a>,
    /// Read from the JSON transfer log (whose metadata, in the original, registered no
    /// `failures`).
    pub from_json: bool,
}

impl Transfer<'_> {
    /// True when the transfer completed (226, or no code logged).
    pub fn succeeded(&self) -> bool {
        self.code.is_none_or(|c| c == 226)
    }

    /// Why a successful transfer has no throughput, in words for a warning: DATE not after
    /// START, or a negative byte count. `None` when it has one (or NBYTES is not a number,
    /// which the metadata already shows).
    pub fn throughput_problem(&self) -> Option<&'static str> {
        match self.bytes {
            Scalar::Int(b) if b < 0 => Some("negative NBYTES: no throughput recorded"),
            Scalar::Int(_) if self.end_us == self.start_us => Some(
                "DATE equals START: no throughput recorded (as the original), only retransmits",
            ),
            Scalar::Int(_) if self.end_us < self.start_us => {
                Some("DATE is before START (a clock step?): no throughput recorded")
            }
            _ => None,
        }
    }

    /// Throughput in bits/s, or `None` when DATE is not after START or NBYTES is negative
    /// ([`Transfer::throughput_problem`] says which).
    pub fn throughput(&self) -> Option<f64> {
        let micros = self.end_us - self.start_us;
        let bytes = match self.bytes {
            Scalar::Int(b) => b,
            _ => return None,
        };
        (micros > 0 && bytes >= 0).then(|| (8 * bytes as i128) as f64 / (micros as f64 / 1e6))
    }
}

fn direction(command: &str) -> Option<Direction> {
    match command {
        "RETR" | "ERET" => Some(Direction::Sent),
        "STOR" | "ESTO" => Some(Direction::Received),
        _ => None,
    }
}

/// The netlogger fields a transfer uses, found in one pass over the line.
#[derive(Default)]
struct Slots<'a> {
    date: Option<&'a str>,
    host: Option<&'a str>,
    program: Option<&'a str>,
    start: Option<&'a str>,
    user: Option<&'a str>,
    file: Option<&'a str>,
    buffer: Option<&'a str>,
    block: Option<&'a str>,
    bytes: Option<&'a str>,
    volume: Option<&'a str>,
    streams: Option<&'a str>,
    stripes: Option<&'a str>,
    dest: Option<&'a str>,
    command: Option<&'a str>,
    code: Option<&'a str>,
    retrans: Option<&'a str>,
}

impl<'a> Slots<'a> {
    fn slot(&mut self, key: &str) -> Option<&mut Option<&'a str>> {
        const KEYS: [&str; 16] = [
            "DATE", "HOST", "PROG", "START", "USER", "FILE", "BUFFER", "BLOCK", "NBYTES", "VOLUME",
            "STREAMS", "STRIPES", "DEST", "TYPE", "CODE", "RETRANS",
        ];
        // Real logs spell the keys exactly so; other spellings fall back to a
        // case-insensitive search.
        let index = match key {
            "DATE" => 0,
            "HOST" => 1,
            "PROG" => 2,
            "START" => 3,
            "USER" => 4,
            "FILE" => 5,
            "BUFFER" => 6,
            "BLOCK" => 7,
            "NBYTES" => 8,
            "VOLUME" => 9,
            "STREAMS" => 10,
            "STRIPES" => 11,
            "DEST" => 12,
            "TYPE" => 13,
            "CODE" => 14,
            "retrans" => 15,
            other => KEYS.iter().position(|k| k.eq_ignore_ascii_case(other))?,
        };
        Some(match index {
            0 => &mut self.date,
            1 => &mut self.host,
            2 => &mut self.program,
            3 => &mut self.start,
            4 => &mut self.user,
            5 => &mut self.file,
            6 => &mut self.buffer,
            7 => &mut self.block,
            8 => &mut self.bytes,
            9 => &mut self.volume,
            10 => &mut self.streams,
            11 => &mut self.stripes,
            12 => &mut self.dest,
            13 => &mut self.command,
            14 => &mut self.code,
            _ => &mut self.retrans,
        })
    }
}

/// Builds a transfer from netlogger fields; `Ok(None)` for lines that are not transfers
/// (LIST, NLST, ...).
pub fn from_netlogger<'a>(fields: &[Field<'a>]) -> Result<Option<Transfer<'a>>, String> {
    let mut slots = Slots::default();
    for field in fields {
        if let Some(slot) = slots.slot(field.key) {
            // The first occurrence wins, as a reader scanning left to right expects.
            slot.get_or_insert(field.value);
        }
    }
    let Some(command) = slots.command else {
        return Ok(None);
    };
    let Some(direction) = direction(command) else {
        return Ok(None);
    };
    let required = |value: Option<&'a str>, key: &str| {
        value.ok_or_else(|| format!("{command} line without {key}"))
    };
    let start_us =
        parse_timestamp(required(slots.start, "START")?).map_err(|e| format!("START: {e}"))?;
    let end_us =
        parse_timestamp(required(slots.date, "DATE")?).map_err(|e| format!("DATE: {e}"))?;
    let code = required(slots.code, "CODE")?;
    let code = code
        .parse()
        .map_err(|_| format!("CODE {code:?} is not a number"))?;
    let dest = required(slots.dest, "DEST")?;
    let dest = dest.trim_start_matches('[').trim_end_matches(']');
    let retransmits = match slots.retrans {
        None | Some("") => Retransmits::None,
        Some(text) => {
            if text.split(',').any(|n| n.parse::<u64>().is_err()) {
                return Err(format!("retrans {text:?} is not a list of integers"));
            }
            Retransmits::Text(text)
        }
    };
    Ok(Some(Transfer {
        command,
        direction,
        code: Some(code),
        start_us,
        end_us,
        host: slots.host,
        dest,
        bytes: Scalar::of(slots.bytes),
        streams: Scalar::of(slots.streams),
        stripes: Scalar::of(slots.stripes),
        program: Scalar::of(slots.program),
        block_size: Scalar::of(slots.block),
        tcp_window: Scalar::of(slots.buffer),
        user: slots.user,
        file: slots.file,
        volume: slots.volume,
        retransmits,
        from_json: false,
    }))
}

/// Builds a transfer from a JSON transfer-log object; `Ok(None)` for events other than
/// `Transfer-End` and for commands that are not transfers.
pub fn from_json(object: &Value) -> Result<Option<Transfer<'_>>, String> {
    let text = |key: &str| object.get(key).and_then(Value::as_str);
    if text("event_type") != Some("Transfer-End") {
        return Ok(None);
    }
    let command = text("cmd_type").ok_or("Transfer-End without cmd_type")?;
    let Some(direction) = direction(command) else {
        return Ok(None);
    };
    let seconds = |key: &str| -> Result<i64, String> {
        let value = match object.get(key) {
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        let value = value
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("{key} missing or not epoch seconds"))?;
        // Years 1 to 9999, as the netlogger DATE format can say; beyond, microseconds would
        // not fit the record's arithmetic.
        if value.abs() > MAX_EPOCH_SECONDS {
            return Err(format!("{key} {value:e} is out of range (years 1 to 9999)"));
        }
        Ok((value * 1e6).round() as i64)
    };
    let streams = object.get("streams").and_then(Value::as_array);
    let retransmits = streams.map_or(Retransmits::None, |streams| {
        Retransmits::List(
            streams
                .iter()
                .filter_map(|s| s.pointer("/TCPinfo/total_retrans").and_then(Value::as_u64))
                .collect(),
        )
    });
    let stripes = streams
        .and_then(|s| s.iter().filter_map(|s| s.get("stripe")?.as_i64()).max())
        .map_or(Scalar::Missing, |max| Scalar::Int(max + 1));
    let code = match object.get("ret_code") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .or_else(|| v.as_str()?.parse().ok())
                .and_then(|c| u32::try_from(c).ok())
                .ok_or_else(|| format!("ret_code {v} is not a number"))?,
        ),
    };
    Ok(Some(Transfer {
        command,
        direction,
        code,
        start_us: seconds("start_timestamp")?,
        end_us: seconds("end_timestamp")?,
        host: text("host").map(str::trim),
        dest: text("dest").ok_or("Transfer-End without dest")?,
        bytes: Scalar::of_json(object.get("nbytes")),
        streams: Scalar::of_json(object.get("nstreams")),
        stripes,
        program: Scalar::of_json(object.get("prog")),
        block_size: Scalar::of_json(object.get("globus_blocksize")),
        tcp_window: Scalar::of_json(object.get("tcp_bufsize")),
        user: text("user"),
        file: text("file"),
        volume: text("volume"),
        retransmits,
        from_json: true,
    }))
}

/// Parses `YYYYmmddHHMMSS.ffffff` (UTC; 1 to 6 fraction digits, or none) into
/// microseconds since the epoch.
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not YYYYmmddHHMMSS.ffffff");
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let number = |range: std::ops::Range<usize>| -> u32 {
        whole[range]
            .bytes()
            .fold(0, |n, b| n * 10 + u32::from(b - b'0'))
    };
    let micros = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(6)
        .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
    // Year 0 is not a year Python's datetime (the original) or the archive accepts.
    let year = number(0..4) as i32;
    if year == 0 {
        return Err(format!("{text:?}: year 0 is out of range"));
    }
    let date = chrono::NaiveDate::from_ymd_opt(year, number(4..6), number(6..8)).ok_or_else(bad)?;
    let time = date
        .and_hms_micro_opt(number(8..10), number(10..12), number(12..14), micros)
        .ok_or_else(bad)?;
    Ok(time.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gridftp::line::split_fields;
    use proptest::prelude::*;

    const DOCS_LINE: &str = "DATE=20150407145945.113944 HOST=localhost PROG=globus-gridftp-server NL.EVNT=FTP_INFO START=20150407145936.596363 USER=anonymous FILE=/data1/100M.dat BUFFER=87380 BLOCK=262144 NBYTES=100000000 VOLUME=/ STREAMS=5 STRIPES=1 DEST=[127.0.0.1] TYPE=RETR CODE=226 retrans=36,17,27,25,61";

    #[test]
    fn the_esmond_docs_line_gives_the_originals_throughput() {
        let mut fields = Vec::new();
        split_fields(DOCS_LINE, &mut fields).unwrap();
        let t = from_netlogger(&fields).unwrap().unwrap();
        assert_eq!(t.start_us / 1_000_000, 1428418776);
        assert_eq!(t.throughput(), Some(93923380.35881314));
        assert_eq!(t.dest, "127.0.0.1");
        assert_eq!(t.streams, Scalar::Int(5));
        assert_eq!(t.retransmits, Retransmits::Text("36,17,27,25,61"));
        assert!(t.succeeded());
    }

    #[test]
    fn json_times_far_out_of_range_are_refused_not_wrapped() {
        for (start, cause) in [
            (
                "1e300",
                "start_timestamp 1e300 is out of range (years 1 to 9999)",
            ),
            (
                "-1e300",
                "start_timestamp -1e300 is out of range (years 1 to 9999)",
            ),
        ] {
            let line = format!(
                r#"{{"event_type":"Transfer-End","start_timestamp":{start},"end_timestamp":1700000001,"dest":"127.0.0.1","cmd_type":"RETR","ret_code":226,"nbytes":10}}"#
            );
            let value: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(from_json(&value).unwrap_err(), cause);
        }
    }

    #[test]
    fn timestamps_parse_strictly() {
        assert_eq!(parse_timestamp("19700101000001.5"), Ok(1_500_000));
        assert_eq!(parse_timestamp("19700101000001"), Ok(1_000_000));
        for bad in [
            "2015040714594",
            "20151307145945.1",
            "20150407145945.1234567",
            "x",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn non_transfers_are_skipped_and_broken_transfers_named() {
        let mut fields = Vec::new();
        split_fields("DATE=20150407145945.1 TYPE=LIST CODE=226", &mut fields).unwrap();
        assert_eq!(from_netlogger(&fields), Ok(None));
        split_fields("DATE=20150407145945.1 TYPE=RETR CODE=226", &mut fields).unwrap();
        assert_eq!(
            from_netlogger(&fields),
            Err("RETR line without START".into())
        );
        split_fields(
            "DATE=20150407145945.1 START=20150407145945.1 TYPE=RETR CODE=x DEST=[1.2.3.4]",
            &mut fields,
        )
        .unwrap();
        assert_eq!(
            from_netlogger(&fields),
            Err("CODE \"x\" is not a number".into())
        );
    }

    proptest! {
        #[test]
        fn random_lines_never_panic(text in "(DATE|START|TYPE|CODE|DEST|retrans|NBYTES)=[0-9.,A-Z\\[\\]]{0,20}( [A-Za-z]{1,5}=[ -~]{0,12}){0,12}") {
            let mut fields = Vec::new();
            if split_fields(&text, &mut fields).is_ok() {
                let _ = from_netlogger(&fields);
            }
        }

        #[test]
        fn random_json_never_panics(text in "\\{\"event_type\":\"Transfer-End\",\"cmd_type\":\"(RETR|STOR)\"(,\"[a-z_]{1,16}\":(\"[ -~]{0,8}\"|[0-9.e-]{1,8}|null|\\[\\]))*\\}") {
            if let Ok(value) = serde_json::from_str::<Value>(&text) {
                let _ = from_json(&value);
            }
        }
    }
}
