//! bwctl-extract: fixtures against what esmond-ps-pipe posted, plain iperf3 documents, a
//! live iperf3 on loopback, and broken input.

mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{bin, fixture, ndjson_of};
use measpipe::error::Location;
use measpipe::iperf3::input::Splitter;
use measpipe::iperf3::measurement::{self, Context};
use measpipe::iperf3::report::Report;
use proptest::prelude::*;
use serde_json::{json, Value};

fn extract(args: &[&str], stdin: &[u8]) -> Vec<Value> {
    ndjson_of(bin("bwctl-extract").args(args).write_stdin(stdin.to_vec()))
}

/// The original's PUT values by event type, and its metadata POST body.
fn original(case: &str) -> (Value, serde_json::Map<String, Value>) {
    let text =
        fs::read_to_string(fixture(&format!("bwctl/mock_requests_pipe_{case}.jsonl"))).unwrap();
    let requests: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut values = serde_json::Map::new();
    if let Some(put) = requests.get(1) {
        for v in put["body"]["data"][0]["val"].as_array().unwrap() {
            values.insert(
                v["event-type"].as_str().unwrap().to_owned(),
                v["val"].clone(),
            );
        }
    }
    (requests[0]["body"].clone(), values)
}

/// Transposes interval-major `[[{…,key}]]` into stream-major `[[{…,"val"}]]`.
fn stream_major(legacy: &Value, key: &str) -> Value {
    let intervals = legacy.as_array().unwrap();
    let streams = intervals[0].as_array().unwrap().len();
    (0..streams)
        .map(|s| {
            intervals
                .iter()
                .map(|i| {
                    let slice = &i[s];
                    json!({"start": slice["start"], "duration": slice["duration"], "val": slice[key]})
                })
                .collect::<Value>()
        })
        .collect()
}

#[test]
fn transcripts_give_what_the_original_posted_with_the_documented_fixes() {
    for case in ["tcp_1stream", "tcp_2streams", "udp_1stream"] {
        let input = fs::read(fixture(&format!("bwctl/bwctl_iperf3_{case}_synthetic.txt"))).unwrap();
        let got = extract(&[], &input);
        assert_eq!(got.len(), 1, "{case}");
        let (meta, values) = original(case);
        // The metadata is the original's, key spelling and event types included, so a
        // successful test lands in the series esmond-ps-pipe created (no `failures`).
        assert_eq!(got[0]["metadata"], meta, "{case}");
        let mut ours = got[0]["values"].as_object().unwrap().clone();
        for key in [
            "streams-packet-retransmits-subintervals",
            "streams-throughput-subintervals",
        ] {
            if let Some(legacy) = values.get(key) {
                let legacy_key = if key.contains("retransmits") {
                    "retransmits"
                } else {
                    "throughput"
                };
                assert_eq!(
                    ours.remove(key).unwrap(),
                    stream_major(legacy, legacy_key),
                    "{case} {key}"
                );
            }
        }
        let mut theirs = values.clone();
        theirs.retain(|k, _| !k.starts_with("streams-") || !k.ends_with("-subintervals"));
        assert_eq!(Value::Object(ours), Value::Object(theirs), "{case}");

        let legacy = extract(&["--legacy-shapes"], &input);
        for (key, value) in &values {
            assert_eq!(
                &legacy[0]["values"][key], value,
                "{case} --legacy-shapes {key}"
            );
        }
        assert!(got[0]["ts"].as_i64().unwrap() > 1_700_000_000, "{case}");
    }
}

#[test]
fn udp_with_several_streams_works_where_the_original_crashed() {
    let input = fs::read(fixture("bwctl/bwctl_iperf3_udp_2streams_synthetic.txt")).unwrap();
    let got = extract(&[], &input);
    let json = fs::read_to_string(fixture("iperf3/b_udp_2streams.json")).unwrap();
    let doc: Value = serde_json::from_str(&json).unwrap();
    let values = &got[0]["values"];
    assert_eq!(values["throughput"], doc["end"]["sum"]["bits_per_second"]);
    assert_eq!(values["packet-count-sent"], doc["end"]["sum"]["packets"]);
    let streams: Vec<Value> = doc["end"]["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["udp"]["bits_per_second"].clone())
        .collect();
    assert_eq!(values["streams-throughput"], Value::Array(streams));
    assert_eq!(
        values["streams-throughput-subintervals"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(values.get("streams-packet-retransmits").is_none());
    let (meta, _) = original("udp_2streams");
    assert_eq!(got[0]["metadata"]["source"], meta["source"]);
}

/// Checks a plain iperf3 record against its JSON document.
fn check_against_json(record: &Value, doc: &Value) {
    let udp = doc["start"]["test_start"]["protocol"] == "UDP";
    let reverse = doc["start"]["test_start"]["reverse"] == 1;
    let streams = doc["start"]["test_start"]["num_streams"].as_u64().unwrap();
    let meta = &record["metadata"];
    let connected = &doc["start"]["connected"][0];
    let (source, destination) = if reverse {
        (&connected["remote_host"], &connected["local_host"])
    } else {
        (&connected["local_host"], &connected["remote_host"])
    };
    assert_eq!(&meta["source"], source);
    assert_eq!(&meta["destination"], destination);
    assert_eq!(meta["tool-name"], "iperf3");
    assert_eq!(meta["bw-parallel-streams"], streams);
    assert_eq!(
        meta["ip-transport-protocol"],
        doc["start"]["test_start"]["protocol"]
    );
    assert_eq!(record["ts"], doc["start"]["timestamp"]["timesecs"]);
    let values = &record["values"];
    let total = if udp {
        &doc["end"]["sum"]
    } else {
        &doc["end"]["sum_received"]
    };
    assert_eq!(values["throughput"], total["bits_per_second"]);
    let intervals = doc["intervals"].as_array().unwrap();
    let sub = values["throughput-subintervals"].as_array().unwrap();
    assert_eq!(sub.len(), intervals.len());
    for (s, i) in sub.iter().zip(intervals) {
        assert_eq!(s["val"], i["sum"]["bits_per_second"]);
        assert_eq!(s["duration"], i["sum"]["seconds"]);
    }
    if udp {
        assert_eq!(
            values["packet-count-lost"],
            doc["end"]["sum"]["lost_packets"]
        );
        assert_eq!(values["packet-count-sent"], doc["end"]["sum"]["packets"]);
    } else {
        assert_eq!(
            values["packet-retransmits"],
            doc["end"]["sum_sent"]["retransmits"]
        );
    }
    if streams > 1 {
        let per_stream = values["streams-throughput-subintervals"]
            .as_array()
            .unwrap();
        assert_eq!(per_stream.len() as u64, streams);
        for (k, stream) in per_stream.iter().enumerate() {
            for (s, i) in stream.as_array().unwrap().iter().zip(intervals) {
                assert_eq!(s["val"], i["streams"][k]["bits_per_second"]);
            }
        }
    }
    let types: Vec<&str> = meta["event-types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["event-type"].as_str().unwrap())
        .collect();
    for key in values.as_object().unwrap().keys() {
        assert!(types.contains(&key.as_str()), "{key} is not registered");
    }
}

#[test]
fn plain_iperf3_documents_one_record_each_even_back_to_back() {
    let names = [
        "tcp_1stream",
        "tcp_4streams",
        "tcp_reverse",
        "udp_1stream",
        "udp_2streams",
        "b_tcp_2streams",
    ];
    let mut all = Vec::new();
    let mut docs = Vec::new();
    for name in names {
        let text = fs::read(fixture(&format!("iperf3/{name}.json"))).unwrap();
        docs.push(serde_json::from_slice::<Value>(&text).unwrap());
        all.extend_from_slice(&text);
    }
    let got = extract(&[], &all);
    assert_eq!(got.len(), names.len());
    for (record, doc) in got.iter().zip(&docs) {
        check_against_json(record, doc);
    }
    let named = extract(
        &[
            "--input-source",
            "a.example.net",
            "--input-destination",
            "b.example.net",
        ],
        &fs::read(fixture("iperf3/tcp_1stream.json")).unwrap(),
    );
    assert_eq!(named[0]["metadata"]["input-source"], "a.example.net");
    assert_eq!(named[0]["metadata"]["input-destination"], "b.example.net");
}

#[test]
fn a_failed_test_becomes_a_failures_record() {
    let refused = fs::read(fixture("iperf3/tcp_refused.json")).unwrap();
    let out = bin("bwctl-extract")
        .write_stdin(refused.clone())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "bwctl-extract: error: <stdin>:1: the test failed (unable to connect to server: Connection refused) before connecting, so it names no endpoints; give --input-source and --input-destination\n"
    );
    let got = extract(
        &[
            "--input-source",
            "10.0.0.1",
            "--input-destination",
            "10.0.0.2",
        ],
        &refused,
    );
    assert_eq!(
        got[0]["values"],
        json!({"failures": {"error": "unable to connect to server: Connection refused"}})
    );
    assert_eq!(got[0]["metadata"]["source"], "10.0.0.1");
    // A failed test is recorded, under a metadata that registers `failures`.
    let types: Vec<&str> = got[0]["metadata"]["event-types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["event-type"].as_str().unwrap())
        .collect();
    assert_eq!(types.last(), Some(&"failures"), "{types:?}");
}

#[test]
fn missing_framing_or_json_is_one_clear_line_and_exit_1() {
    let transcript =
        fs::read_to_string(fixture("bwctl/bwctl_iperf3_tcp_1stream_synthetic.txt")).unwrap();
    let no_verbose: String = transcript
        .lines()
        .filter(|l| !l.starts_with("bwctl: start_tool") && !l.starts_with("bwctl: stop_tool"))
        .map(|l| format!("{l}\n"))
        .collect();
    let cut: String = transcript
        .lines()
        .take(60)
        .map(|l| format!("{l}\n"))
        .collect();
    let local = transcript.replace("remote sender", "local sender");
    let no_start = "<stdin>: bwctl transcript without a \"bwctl: start_tool\" line (run bwctl with --parsable --verbose)";
    for (input, message) in [
        (
            "",
            "<stdin>: no iperf3 JSON and no bwctl results (was bwctl run with --parsable --verbose?)",
        ),
        ("bwctl: Using tool: iperf3\n", no_start),
        (
            cut.as_str(),
            "<stdin>:15: the results after \"bwctl: start_tool\" never end (no \"bwctl: stop_tool\" line; transcript cut short?)",
        ),
        (&no_verbose[..no_verbose.find("{").unwrap()], no_start),
        (
            "{\"start\": [1, 2]}\n",
            "<stdin>:1: invalid iperf3 JSON: invalid type: integer `1`, expected a sequence at line 1 column 12",
        ),
    ] {
        let out = bin("bwctl-extract").write_stdin(input).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{message}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert_eq!(stderr, format!("bwctl-extract: error: {message}\n"));
    }
    // A transcript with a local endpoint works (the original could not extract it).
    let got = extract(&[], local.as_bytes());
    assert_eq!(got[0]["metadata"]["input-source"], "127.0.0.1");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Truncated and corrupted transcripts never panic the splitter or the mapper.
    #[test]
    fn truncated_or_corrupted_transcripts_never_panic(cut in 0usize..12_000, flips in proptest::collection::vec((0usize..12_000, any::<u8>()), 0..8)) {
        let mut input = fs::read(fixture("bwctl/bwctl_iperf3_tcp_2streams_synthetic.txt")).unwrap();
        for (at, byte) in flips {
            let at = at % input.len();
            input[at] = byte;
        }
        input.truncate(cut.min(input.len()));
        let mut splitter = Splitter::default();
        let mut tests = Vec::new();
        let file: std::sync::Arc<str> = "in".into();
        for (n, line) in input.split(|&b| b == b'\n').enumerate() {
            let location = Location { file: file.clone(), line: n as u64 + 1 };
            let _ = splitter.line(line, &location, &mut tests);
        }
        let _ = splitter.finish("in");
        for test in tests {
            if let Ok(report) = serde_json::from_str::<Report>(&test.json) {
                let context = Context { tool_name: "bwctl/iperf3", ..Context::default() };
                let mut out = Vec::new();
                if measurement::write(&mut out, &report, &context).is_ok() {
                    prop_assert!(serde_json::from_slice::<Value>(&out).is_ok());
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Live iperf3 on loopback.

#[test]
fn live_iperf3_runs_map_to_their_json() {
    if !common::have("iperf3", "live iperf3 test") {
        return;
    }
    let port = common::free_port();
    let mut server = Command::new("iperf3");
    server
        .args(["-s", "-B", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let server = common::BackgroundServer::start(server, port, Duration::from_secs(10));
    let run = |extra: &[&str]| -> (Value, Vec<u8>) {
        // The server may still be busy with the readiness probe's connection (or the last
        // test): iperf3 reports that as an error; try again.
        for _ in 0..20 {
            let out = Command::new("iperf3")
                .args(["-c", "127.0.0.1", "-p", &port.to_string(), "-t", "1", "-J"])
                .args(extra)
                .stderr(Stdio::null())
                .output()
                .unwrap();
            let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
            let error = doc["error"].as_str().unwrap_or_default();
            if !(error.contains("busy") || error.contains("control message")) {
                return (doc, out.stdout);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("the iperf3 server stayed busy");
    };
    for extra in [
        &[][..],
        &["-P", "4"][..],
        &["-u", "-b", "20M"][..],
        &["-u", "-b", "20M", "-P", "3"][..],
        &["-R"][..],
    ] {
        let (doc, raw) = run(extra);
        assert!(doc.get("error").is_none(), "{extra:?}: {}", doc["error"]);
        let got = extract(&[], &raw);
        assert_eq!(got.len(), 1, "{extra:?}");
        check_against_json(&got[0], &doc);
    }
    drop(server);
    // Nothing listens now: a refused connection.
    let (doc, raw) = run(&[]);
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("Connection refused"),
        "{doc}"
    );
    let got = extract(
        &[
            "--input-source",
            "127.0.0.1",
            "--input-destination",
            "127.0.0.1",
        ],
        &raw,
    );
    assert_eq!(got[0]["values"]["failures"]["error"], doc["error"]);
}

/// A night of `iperf3 -J >> runs.json`, one run killed mid-write: only that run is lost.
#[test]
fn a_cut_short_document_loses_only_itself() {
    let doc = fs::read_to_string(fixture("iperf3/tcp_1stream.json")).unwrap();
    let cut = &doc[..doc.len() / 2];
    let night = format!("{doc}{cut}\n{doc}{doc}");
    let cut_at = doc.lines().count() + 1;
    let next_at = cut_at + cut.lines().count();
    let out = bin("bwctl-extract")
        .args(["--on-error", "skip"])
        .write_stdin(night.clone())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(common::ndjson_lines(&out.stdout).len(), 3);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("bwctl-extract: warning: skipped 1 bad line (first: <stdin>:{next_at}: the iperf3 JSON document from line {cut_at} is cut short (this line starts another))\n")
    );
    // Cut short at the very end of the input: skipped too, under skip.
    let out = bin("bwctl-extract")
        .args(["--on-error", "skip"])
        .write_stdin(format!("{doc}{cut}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(common::ndjson_lines(&out.stdout).len(), 1);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("bwctl-extract: warning: skipped 1 bad line (first: <stdin>:{cut_at}: iperf3 JSON document is cut short)\n")
    );
    // The default still stops there, having written the run before it.
    let out = bin("bwctl-extract").write_stdin(night).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(common::ndjson_lines(&out.stdout).len(), 1);
}
