//! The parts of an iperf3 `-J` document a measurement uses. Everything else is skipped
//! while parsing; numbers stay `serde_json::Number` so integers and floats are written
//! back exactly as iperf3 wrote them.

use serde::Deserialize;
use serde_json::Number;

/// An iperf3 JSON result.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Report {
    /// Test setup.
    pub start: Start,
    /// Per-interval results.
    pub intervals: Vec<Interval>,
    /// Totals.
    pub end: End,
    /// Set when the test failed.
    pub error: Option<String>,
}

/// `start`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Start {
    /// The connections: `local_host`/`remote_host` as the client saw them.
    pub connected: Vec<Connected>,
    /// When the test started.
    pub timestamp: Option<Timestamp>,
    /// The test's parameters.
    pub test_start: Option<TestStart>,
}

/// One connection.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Connected {
    /// The client's address.
    pub local_host: String,
    /// The server's address.
    pub remote_host: String,
}

/// `start.timestamp`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Timestamp {
    /// Epoch seconds.
    pub timesecs: i64,
}

/// `start.test_start`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TestStart {
    /// `TCP` or `UDP`.
    pub protocol: String,
    /// `-P`.
    pub num_streams: u64,
    /// `-O`, seconds omitted at the start.
    pub omit: Option<Number>,
    /// `-t`, seconds.
    pub duration: Option<Number>,
    /// 1 for `-R` (the server sends).
    pub reverse: u64,
}

/// One interval.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Interval {
    /// Per stream.
    pub streams: Vec<Slice>,
    /// All streams.
    pub sum: Option<Slice>,
}

/// A stretch of time in an interval or at the end, for one stream or all.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Slice {
    /// Seconds since the test started.
    pub start: Option<Number>,
    /// Length, seconds.
    pub seconds: Option<Number>,
    /// Throughput.
    pub bits_per_second: Option<Number>,
    /// TCP retransmits (senders only).
    pub retransmits: Option<Number>,
    /// UDP packets lost.
    pub lost_packets: Option<Number>,
    /// UDP packets.
    pub packets: Option<Number>,
}

/// `end`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct End {
    /// Per stream totals.
    pub streams: Vec<EndStream>,
    /// UDP totals.
    pub sum: Option<Slice>,
    /// What was sent.
    pub sum_sent: Option<Slice>,
    /// What was received.
    pub sum_received: Option<Slice>,
}

/// One stream's totals: `sender`/`receiver` for TCP, `udp` for UDP.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EndStream {
    /// TCP sender side.
    pub sender: Option<Slice>,
    /// TCP receiver side.
    pub receiver: Option<Slice>,
    /// UDP.
    pub udp: Option<Slice>,
}

impl Report {
    /// True for a UDP test.
    pub fn is_udp(&self) -> bool {
        self.start
            .test_start
            .as_ref()
            .is_some_and(|t| t.protocol.eq_ignore_ascii_case("udp"))
    }

    /// Streams in the test (1 when unknown).
    pub fn streams(&self) -> u64 {
        self.start
            .test_start
            .as_ref()
            .map_or(1, |t| t.num_streams.max(1))
    }
}
