//! iperf3 results, plain (`iperf3 -J`) or wrapped in a bwctl transcript, → measurement
//! records: the reading half of esmond-ps-pipe.
//!
//! [`input`] finds the tests in a stream of lines: bwctl `--parsable --verbose`
//! transcripts (the JSON between `bwctl: start_tool:` and `bwctl: stop_tool:`, with the
//! `bwctl: Using …` header lines naming the tool and the endpoints) and plain iperf3 JSON
//! documents, any number of them back to back. [`report`] is the part of an iperf3 JSON
//! document that a measurement needs, and [`measurement`] maps it the way esmond-ps-pipe
//! did (esmond.md §4.2), with its mistakes fixed:
//!
//! * UDP with several streams works (the original crashed on `end.streams[].sender`);
//! * `streams-*-subintervals` are stream-major lists of `{start, duration, val}` (what
//!   esmond-ps-get and pscheduler use); `legacy_shapes` gives the original's
//!   interval-major lists keyed `retransmits`/`throughput`;
//! * a failed test (iperf3 `error`) becomes a `failures` value instead of nothing;
//! * reverse mode (`-R`) records the data's real direction;
//! * no name lookups: the measurement agent is the iperf3 client's own address unless
//!   the caller says otherwise.
//!
//! One thing that looks like a mistake is kept: `bw_ignore_first_seconds` is spelt with
//! underscores, as esmond-ps-pipe did. The spelling is part of the metadata's identity, so
//! the dashed key (pScheduler's spelling) would fork every series of a site switching over.

pub mod input;
pub mod measurement;
pub mod report;
