//! gridftp-parse: fixtures against what esmond-ps-load-gridftp posted, resuming from state
//! and acknowledgement files, real logrotate, and a live globus-gridftp-server.

mod common;

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{bin, bin_path, fixture, ndjson_lines, ndjson_of};
use serde_json::{json, Value};

fn parse(args: &[&str]) -> Vec<Value> {
    ndjson_of(bin("gridftp-parse").args(args))
}

fn mock_requests(name: &str) -> Vec<Value> {
    fs::read_to_string(fixture(&format!("gridftp/{name}")))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn without(mut value: Value, key: &str) -> Value {
    value.as_object_mut().unwrap().remove(key);
    value
}

#[test]
fn netlogger_records_carry_what_the_original_posted() {
    let log = fixture("gridftp/netlogger-synthetic.log");
    let got = parse(&["--host-ip", "127.0.0.1", log.to_str().unwrap()]);
    // RETR 226, STOR 426, (LIST skipped), RETR without HOST (address from --host-ip), STOR to ::1
    assert_eq!(got.len(), 4);
    let mock = mock_requests("mock_requests_gridftp_netlogger.jsonl");
    assert_eq!(got[0]["metadata"], mock[0]["body"]);
    assert_eq!(got[1]["metadata"], mock[2]["body"]);
    let put = &mock[1]["body"]["data"][0];
    assert_eq!(got[0]["ts"], put["ts"]);
    assert_eq!(got[0]["values"]["throughput"], put["val"][0]["val"]);
    assert_eq!(
        got[0]["values"]["streams-packet-retransmits"],
        put["val"][1]["val"]
    );
    assert_eq!(got[1]["ts"], mock[3]["body"]["ts"]);
    assert_eq!(got[1]["values"]["failures"], mock[3]["body"]["val"]);
    // Where the original gave up (no HOST; an IPv6 peer), we record the transfer.
    assert_eq!(got[2]["metadata"]["source"], "127.0.0.1");
    assert_eq!(got[2]["metadata"]["destination"], "IPv4address");
    assert_eq!(got[3]["metadata"]["source"], "::1");
    for record in &got {
        bin("record-check")
            .args(["--kind", "measurement", "--quiet"])
            .write_stdin(serde_json::to_vec(record).unwrap())
            .assert()
            .success();
    }
}

#[test]
fn json_records_carry_what_the_original_posted_minus_its_unregistered_blobs() {
    let got = parse(&[
        "-N",
        "-V",
        fixture("gridftp/json-synthetic.log").to_str().unwrap(),
    ]);
    assert_eq!(got.len(), 1);
    let mock = mock_requests("mock_requests_gridftp_json.jsonl");
    // The original registered no failures event type for JSON logs; we always do, so a
    // failed transfer has somewhere to go.
    assert_eq!(
        without(got[0]["metadata"].clone(), "event-types"),
        without(mock[0]["body"].clone(), "event-types")
    );
    let put = &mock[1]["body"]["data"][0];
    assert_eq!(got[0]["ts"], put["ts"]);
    assert_eq!(
        got[0]["values"],
        json!({"throughput": put["val"][0]["val"], "streams-packet-retransmits": put["val"][1]["val"]})
    );
}

#[test]
fn the_main_log_gives_the_same_transfers_as_the_transfer_log() {
    let strip = |mut records: Vec<Value>| {
        for r in &mut records {
            r.as_object_mut().unwrap().remove("cursor");
        }
        records
    };
    let transfer = strip(parse(&[
        "--host-ip",
        "127.0.0.1",
        fixture("gridftp/transfer-netlogger.log").to_str().unwrap(),
    ]));
    let main = strip(parse(&[
        "--host-ip",
        "127.0.0.1",
        "--format",
        "main",
        fixture("gridftp/server-main.log").to_str().unwrap(),
    ]));
    assert_eq!(transfer.len(), 7);
    assert_eq!(main, transfer);
    let stor = &transfer[3];
    assert_eq!(stor["metadata"]["input-destination"], "vm");
    assert_eq!(stor["metadata"]["input-source"], "127.0.0.1");
}

#[test]
fn values_with_spaces_parse_and_raw_keeps_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("t.log");
    fs::write(&log, "DATE=20261122222712.944702 HOST=vm FILE=/data/my file.bin NBYTES=8 START=20261122222712.944700 DEST=[10.0.0.2] TYPE=RETR CODE=226 SITE=x y\n").unwrap();
    let raw = parse(&["--raw", log.to_str().unwrap()]);
    assert_eq!(raw[0]["FILE"], "/data/my file.bin");
    assert_eq!(raw[0]["SITE"], "x y");
    let m = parse(&["-F", "--host-ip", "10.0.0.1", log.to_str().unwrap()]);
    assert_eq!(m[0]["metadata"]["gridftp-file"], "/data/my file.bin");
    assert_eq!(m[0]["values"]["throughput"], 32_000_000.0);
}

#[test]
fn bad_lines_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("t.log");
    fs::write(
        &log,
        "DATE=20261122222712.9 START=2026 TYPE=RETR CODE=226 DEST=[1.2.3.4] HOST=h\n",
    )
    .unwrap();
    let out = bin("gridftp-parse")
        .args(["--on-error", "fail"])
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        format!(
            "gridftp-parse: error: {}:1: START: \"2026\" is not YYYYmmddHHMMSS.ffffff\n",
            log.display()
        )
    );
    // The default names it, counts it and goes on.
    let out = bin("gridftp-parse").arg(&log).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        one_bad_line(&log, 1, "START: \"2026\" is not YYYYmmddHHMMSS.ffffff")
    );
    bin("gridftp-parse")
        .arg(dir.path().join("missing.log"))
        .assert()
        .code(1);
    bin("gridftp-parse")
        .args(["--state", "s", "-"])
        .assert()
        .code(2);
    bin("gridftp-parse")
        .args(["--state", "s", "--ack", "a", "x"])
        .assert()
        .code(2);
}

/// A HOST-less line (a real log form) once stopped every later run at the same place, with
/// `--state` or `--ack`: nothing after it was ever loaded and logrotate's hook failed.
#[test]
fn a_bad_line_never_stops_the_position_and_is_kept_in_the_reject_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("t.log");
    let state = dir.path().join("state");
    let reject = dir.path().join("reject.ndjson");
    let hostless = "DATE=20261122222712.944702 PROG=globus-gridftp-server NL.EVNT=FTP_INFO START=20261122222711.944700 USER=anonymous FILE=/x BUFFER=0 BLOCK=262144 NBYTES=8 VOLUME=/ STREAMS=1 STRIPES=1 DEST=[10.0.0.2] TYPE=RETR CODE=226";
    let line = |n| line(n).replace("HOST=vm", "HOST=127.0.0.1");
    append(&log, &(line(1) + hostless + "\n" + &line(3)));
    let args = |extra: &[&str]| {
        let mut all = vec![
            "--state",
            state.to_str().unwrap(),
            "--reject",
            reject.to_str().unwrap(),
        ];
        all.extend_from_slice(extra);
        all.push(log.to_str().unwrap());
        all.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let out = bin("gridftp-parse").args(args(&[])).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(numbers(&ndjson_lines(&out.stdout)), [1, 3]);
    let cause = "no HOST on this line; give --host-ip";
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        one_bad_line(&log, 2, cause)
    );
    let rejected = ndjson_lines(&fs::read(&reject).unwrap());
    assert_eq!(
        rejected,
        [
            serde_json::json!({"location": format!("{}:2", log.display()), "cause": cause, "line": hostless})
        ]
    );
    // The next run starts after all three lines: nothing again, nothing stuck.
    append(&log, &line(4));
    let out = bin("gridftp-parse").args(args(&[])).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(numbers(&ndjson_lines(&out.stdout)), [4]);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// A zero or negative duration, a negative NBYTES or a year-0 START once dropped the
/// throughput, or gave a negative one, without a word.
#[test]
fn impossible_durations_and_sizes_are_named_not_silently_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("t.log");
    let same = line(1).replace("START=20261122222711.000000", "START=20261122222712.000001");
    let backwards = line(2).replace("START=20261122222711.000000", "START=20261122222713.000000");
    let negative = line(3).replace("NBYTES=1003", "NBYTES=-5");
    let year0 = line(4).replace("START=20261122222711.000000", "START=00001122222711.000000");
    fs::write(&log, [same, backwards, negative, year0, line(5)].concat()).unwrap();
    let out = bin("gridftp-parse")
        .args(["--host-ip", "127.0.0.1"])
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let records = ndjson_lines(&out.stdout);
    assert_eq!(records.len(), 4);
    for record in &records[..3] {
        assert_eq!(record["values"].get("throughput"), None, "{record}");
        assert_eq!(
            record["values"]["streams-packet-retransmits"],
            serde_json::json!([])
        );
    }
    assert_eq!(records[3]["values"]["throughput"], 8.0 * 1005.0 / 1.000005);
    let l = log.display();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "gridftp-parse: warning: {l}:1: DATE equals START: no throughput recorded (as the original), only retransmits\n\
             gridftp-parse: warning: {l}:2: DATE is before START (a clock step?): no throughput recorded\n\
             gridftp-parse: warning: {l}:3: negative NBYTES: no throughput recorded\n\
             gridftp-parse: warning: {l}:4: START: \"00001122222711.000000\": year 0 is out of range (skipped)\n\
             gridftp-parse: warning: skipped 1 bad line (first: {l}:4: START: \"00001122222711.000000\": year 0 is out of range)\n"
        )
    );
}

/// `DEST=[::1]` with a host of the other family once gave source ::1, destination
/// 127.0.0.1: such a record is now refused, naming why.
#[test]
fn a_host_is_never_paired_with_a_peer_of_the_other_family() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("t.log");
    fs::write(
        &log,
        line(1)
            .replace("HOST=vm", "HOST=127.0.0.1")
            .replace("[127.0.0.1]", "[::1]"),
    )
    .unwrap();
    let out = bin("gridftp-parse").arg(&log).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    let cause = "host \"127.0.0.1\" has no IPv6 address to pair with the peer ::1 (it has 127.0.0.1); give --host-ip";
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        one_bad_line(&log, 1, cause)
    );
}

// ---------------------------------------------------------------------------------------
// Resuming.

/// A netlogger line for transfer number `n`.
fn line(n: u32) -> String {
    format!(
        "DATE=20261122222712.{:06} HOST=vm PROG=globus-gridftp-server NL.EVNT=FTP_INFO START=20261122222711.000000 USER=anonymous FILE=/data/f{n}.bin BUFFER=131072 BLOCK=262144 NBYTES={} VOLUME=/ STREAMS=1 STRIPES=1 DEST=[127.0.0.1] TYPE=RETR CODE=226 TASKID=none\n",
        n,
        1000 + n
    )
}

/// What gridftp-parse says of a run with one bad line, at `line` of `log`.
fn one_bad_line(log: &Path, line: u64, cause: &str) -> String {
    let log = log.display();
    format!(
        "gridftp-parse: warning: {log}:{line}: {cause} (skipped)\n\
         gridftp-parse: warning: skipped 1 bad line (first: {log}:{line}: {cause})\n"
    )
}

fn append(path: &Path, text: &str) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// The transfer numbers in a set of records.
fn numbers(records: &[Value]) -> Vec<u64> {
    records
        .iter()
        .map(|r| r["metadata"]["gridftp-bytes-transferred"].as_u64().unwrap() - 1000)
        .collect()
}

#[test]
fn state_resumes_after_the_last_complete_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("t.log");
    let state = dir.path().join("state");
    let run = |extra: &[&str]| {
        let mut args = vec!["--host-ip", "127.0.0.1", "--state", state.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push(log.to_str().unwrap());
        numbers(&parse(&args))
    };
    append(&log, &(line(1) + &line(2)));
    // The server is still writing line 3.
    let partial = line(3);
    append(&log, &partial[..40]);
    assert_eq!(run(&[]), [1, 2]);
    assert_eq!(run(&[]), Vec::<u64>::new());
    append(&log, &partial[40..]);
    append(&log, "DATE=20261122222712.000000 TYPE=LIST CODE=226\n");
    assert_eq!(run(&[]), [3]);
    append(&log, &(line(4) + &line(5)));
    assert_eq!(run(&["--single"]), [4]);
    assert_eq!(run(&["--dont-write"]), [5]);
    assert_eq!(run(&[]), [5]);
    let saved: Value = serde_json::from_str(&fs::read_to_string(&state).unwrap()).unwrap();
    let len = fs::metadata(&log).unwrap().len();
    assert!(
        saved["cursor"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{len}:6")),
        "{saved}"
    );
    assert_eq!(run(&["--delete-state"]), Vec::<u64>::new());
    assert!(!state.exists());
    assert_eq!(run(&[]), [1, 2, 3, 4, 5]);
}

#[test]
fn an_overlapping_run_exits_75_and_leaves_the_state_alone() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("t.log");
    let state = dir.path().join("state");
    append(&log, &line(1));
    let lock = fs::File::create(dir.path().join("state.lock")).unwrap();
    lock.lock().unwrap();
    let out = bin("gridftp-parse")
        .args(["--host-ip", "127.0.0.1", "--state"])
        .arg(&state)
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "gridftp-parse: error: {} is locked by another run; try again later\n",
            state.display()
        )
    );
    assert!(out.stdout.is_empty() && !state.exists());
}

#[test]
fn a_rotated_log_is_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("t.log");
    let state = dir.path().join("state");
    let args = [
        "--host-ip",
        "127.0.0.1",
        "--state",
        state.to_str().unwrap(),
        log.to_str().unwrap(),
    ];
    append(&log, &(line(1) + &line(2)));
    assert_eq!(numbers(&parse(&args)), [1, 2]);
    let rotated = dir.path().join("t.log.1");
    fs::rename(&log, &rotated).unwrap();
    append(&rotated, &line(9));
    append(&log, &line(3));
    // The rotated file is finished first, then the new log is read from its start.
    let out = bin("gridftp-parse").args(args).output().unwrap();
    assert_eq!(numbers(&ndjson_lines(&out.stdout)), [9, 3]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "gridftp-parse: warning: {} was rotated: finishing {} from line 3 first\n",
            log.display(),
            rotated.display()
        )
    );
    // With no rotated copy beside it, the log is read from its start, saying why.
    fs::remove_file(&rotated).unwrap();
    fs::rename(&log, dir.path().join("elsewhere")).unwrap();
    append(&log, &line(3));
    let out = bin("gridftp-parse").args(args).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "gridftp-parse: warning: {}: not the file of the saved position (rotated or truncated), and no rotated copy of it was found beside it; reading it from the start\n",
            log.display()
        )
    );
    assert_eq!(numbers(&ndjson_lines(&out.stdout)), [3]);
}

/// A consumer that delivers records one by one and acknowledges each by writing its
/// cursor atomically, dying after `limit` of them (None: reads to the end).
fn consume(log: &Path, ack: &Path, limit: Option<usize>) -> Vec<u64> {
    let mut parse = Command::new(bin_path("gridftp-parse"))
        .args(["--host-ip", "127.0.0.1", "--ack"])
        .arg(ack)
        .arg(log)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut delivered = Vec::new();
    for line in BufReader::new(parse.stdout.take().unwrap()).lines() {
        if limit == Some(delivered.len()) {
            break; // the consumer dies: its pipe closes mid-stream
        }
        let record: Value = serde_json::from_str(&line.unwrap()).unwrap();
        delivered.push(
            record["metadata"]["gridftp-bytes-transferred"]
                .as_u64()
                .unwrap()
                - 1000,
        );
        let temp = ack.with_extension("new");
        fs::write(&temp, record["cursor"].as_str().unwrap()).unwrap();
        fs::rename(&temp, ack).unwrap();
    }
    let status = parse.wait().unwrap();
    assert!(
        status.success(),
        "a closed pipe is a quiet exit 0: {status}"
    );
    delivered
}

#[test]
fn a_consumer_killed_mid_stream_loses_nothing_and_a_rerun_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("t.log");
    let ack = dir.path().join("ack");
    // Enough records that the killed consumer leaves many unread in the pipe.
    let all: Vec<u64> = (1..=20_000).collect();
    let text: String = all.iter().map(|&n| line(n as u32)).collect();
    append(&log, &text);
    let first = consume(&log, &ack, Some(7));
    assert_eq!(first, (1..=7).collect::<Vec<u64>>());
    let second = consume(&log, &ack, Some(12_345));
    let third = consume(&log, &ack, None);
    let delivered: Vec<u64> = first.into_iter().chain(second).chain(third).collect();
    assert_eq!(delivered, all, "every transfer exactly once, in order");
    assert!(
        consume(&log, &ack, None).is_empty(),
        "a further run emits nothing"
    );
    append(&log, &line(20_001));
    assert_eq!(consume(&log, &ack, None), [20_001]);
}

// ---------------------------------------------------------------------------------------
// pipelines/: the cron line and the logrotate stanza, with the real logrotate.

/// A GridFTP host as the shipped pipelines/ set it up: a log, cron's pipe into an
/// esmond-serve archive, logrotate.
struct Site {
    dir: tempfile::TempDir,
    archive: common::BackgroundServer,
    key: String,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("lib")).unwrap();
        let data = dir.path().join("archive");
        let key = Command::new(bin_path("esmond-serve"))
            .arg("--data")
            .arg(&data)
            .args(["token", "add", "gridftp"])
            .output()
            .unwrap();
        common::assert_success(&key);
        let port = common::free_port();
        let mut serve = Command::new(bin_path("esmond-serve"));
        serve
            .arg("--data")
            .arg(&data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stderr(Stdio::null());
        let archive = common::BackgroundServer::start(serve, port, Duration::from_secs(20));
        Site {
            dir,
            archive,
            key: String::from_utf8(key.stdout).unwrap().trim().to_owned(),
        }
    }
    fn log(&self) -> PathBuf {
        self.dir.path().join("gridftp-transfer.log")
    }
    fn lib(&self) -> PathBuf {
        self.dir.path().join("lib")
    }
    fn url(&self) -> String {
        format!("http://{}", self.archive.addr)
    }
    /// A file of pipelines/ with its paths moved into this site.
    fn localize(&self, pipeline: &str) -> String {
        let text =
            fs::read_to_string(common::repo_root().join("pipelines").join(pipeline)).unwrap();
        text.replace(
            "/var/log/gridftp-transfer.log",
            self.log().to_str().unwrap(),
        )
        .replace("/var/lib/measpipe", self.lib().to_str().unwrap())
        .replace(
            "gridftp-parse ",
            &format!(
                "{} --host-ip 127.0.0.1 ",
                bin_path("gridftp-parse").display()
            ),
        )
        .replace(
            "esmond-post ",
            &format!("{} ", bin_path("esmond-post").display()),
        )
        .replace("http://127.0.0.1:8080", &self.url())
    }
    fn cron_run(&self) {
        let command = self.cron_command();
        let out = Command::new("sh")
            .args(["-c", &command])
            .env("ESMOND_KEY", &self.key)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fn rotate(&self, mode: &str) {
        let config = self.dir.path().join("logrotate.conf");
        let stanza = self
            .localize("gridftp.logrotate")
            .replace("    create\n", &format!("    {mode}\n"));
        fs::write(&config, stanza).unwrap();
        let out = Command::new("logrotate")
            .arg("-f")
            .arg("-s")
            .arg(self.dir.path().join("logrotate.status"))
            .arg(&config)
            .output()
            .unwrap();
        common::assert_success(&out);
    }
    /// A GET of the archive, as JSON.
    fn get(&self, path: &str) -> Value {
        let mut response = ureq::get(format!("{}{path}", self.url())).call().unwrap();
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
    }

    /// The transfers the archive holds, by number, one entry per stored point, sorted.
    fn delivered(&self) -> Vec<u64> {
        let get = |path: &str| self.get(path);
        let found = get("/esmond/perfsonar/archive/?tool-name=gridftp&limit=100000");
        let mut numbers = Vec::new();
        for metadata in found.as_array().unwrap() {
            let n = metadata["gridftp-bytes-transferred"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                - 1000;
            let uri = metadata["uri"].as_str().unwrap();
            let points = get(&format!(
                "{uri}streams-packet-retransmits/base?time-start=0&time-end=2000000000"
            ));
            numbers.extend(std::iter::repeat_n(n, points.as_array().unwrap().len()));
        }
        numbers.sort();
        numbers
    }
}

fn rotation_loses_and_repeats_nothing(mode: &str) {
    if !common::have("logrotate", "rotation tests") {
        return;
    }
    let site = Site::new();
    let rotated = site.dir.path().join("gridftp-transfer.log.1");
    append(&site.log(), &(line(1) + &line(2)));
    site.cron_run();
    // Lines the cron run has not seen yet, and one the server is half-way through writing
    // when logrotate renames the file.
    let eight = line(8);
    let (head, tail) = eight.split_at(40);
    append(&site.log(), &(line(3) + &line(4) + head));
    site.rotate(mode);
    assert!(rotated.exists());
    if mode == "create" {
        // The server writes on through its descriptor of the renamed file.
        append(&rotated, tail);
    }
    append(&site.log(), &(line(5) + &line(6)));
    site.cron_run();
    site.cron_run();
    append(&site.log(), &line(7));
    site.rotate(mode);
    site.cron_run();
    let mut want = vec![1, 2, 3, 4, 5, 6, 7];
    if mode == "create" {
        want.push(8);
    }
    // copytruncate: the half-written line 8 was cut by the truncation (its documented
    // window); everything else is stored once.
    assert_eq!(site.delivered(), want);
    assert_eq!(
        fs::read_to_string(site.lib().join("gridftp.reject")).unwrap_or_default(),
        ""
    );
}

#[test]
fn logrotate_create_loses_and_repeats_nothing_the_rotated_file_is_finished() {
    rotation_loses_and_repeats_nothing("create");
}

#[test]
fn logrotate_copytruncate_loses_only_its_window_the_copy_is_finished() {
    rotation_loses_and_repeats_nothing("copytruncate");
}

// ---------------------------------------------------------------------------------------
// Soak: a live writer, the real logrotate, cron-like runs of the shipped pipe.

/// Transfer `n` of a soak: 20 metadata (its size is `1000 + n % 20`), a second apart.
fn soak_line(n: u64) -> String {
    let start = chrono::DateTime::from_timestamp(1_790_000_000 + (n / 20) as i64, 0).unwrap();
    let date = start + chrono::Duration::seconds(1);
    format!(
        "DATE={}.000000 HOST=vm PROG=globus-gridftp-server NL.EVNT=FTP_INFO START={}.000000 USER=anonymous FILE=/data/soak.bin BUFFER=131072 BLOCK=262144 NBYTES={} VOLUME=/ STREAMS=1 STRIPES=1 DEST=[127.0.0.1] TYPE=RETR CODE=226 TASKID=none\n",
        date.format("%Y%m%d%H%M%S"),
        start.format("%Y%m%d%H%M%S"),
        1000 + n % 20
    )
}

/// The soak transfer numbers in `text` (a log, rotated or live).
fn soak_numbers(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| {
            let field = |name: &str| {
                l.split(' ')
                    .find_map(|f| f.strip_prefix(name))
                    .map(str::to_owned)
            };
            let start = field("START=")?;
            let start = chrono::NaiveDateTime::parse_from_str(&start, "%Y%m%d%H%M%S%.f").ok()?;
            let size: u64 = field("NBYTES=")?.parse().ok()?;
            Some((start.and_utc().timestamp() as u64 - 1_790_000_000) * 20 + size - 1000)
        })
        .collect()
}

impl Site {
    /// The soak transfers the archive holds, one entry per stored point, sorted.
    fn soak_delivered(&self) -> Vec<u64> {
        let get = |path: &str| self.get(path);
        let found = get("/esmond/perfsonar/archive/?tool-name=gridftp&limit=100000");
        let mut numbers = Vec::new();
        for metadata in found.as_array().unwrap() {
            let size: u64 = metadata["gridftp-bytes-transferred"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let uri = metadata["uri"].as_str().unwrap();
            let points = get(&format!(
                "{uri}throughput/base?time-start=0&time-end=2000000000&limit=1000000"
            ));
            for point in points.as_array().unwrap() {
                let ts = point["ts"].as_u64().unwrap();
                numbers.push((ts - 1_790_000_000) * 20 + size - 1000);
            }
        }
        numbers.sort_unstable();
        numbers
    }

    /// The shipped cron command with its paths in this site.
    fn cron_command(&self) -> String {
        let cron = self.localize("gridftp.cron");
        let entry = cron
            .lines()
            .find(|l| !l.starts_with('#') && !l.starts_with("ESMOND_KEY="))
            .unwrap();
        let mut command = entry;
        for _ in 0..6 {
            command = command.trim_start();
            command = &command[command.find(char::is_whitespace).unwrap()..];
        }
        command.trim().to_owned()
    }
}

/// Every transfer line in the log and its rotated copies (compressed ones too).
fn on_disk(site: &Site) -> Vec<u64> {
    let mut numbers = Vec::new();
    for entry in fs::read_dir(site.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("gridftp-transfer.log") {
            continue;
        }
        let text = if name.ends_with(".gz") {
            let out = Command::new("gzip").arg("-dc").arg(&path).output().unwrap();
            String::from_utf8(out.stdout).unwrap()
        } else {
            fs::read_to_string(&path).unwrap()
        };
        numbers.extend(soak_numbers(&text));
    }
    numbers.sort_unstable();
    numbers
}

/// What a soak wrote, left on disk and stored (transfer numbers, sorted), and the records
/// its runs posted in all.
struct Soaked {
    written: Vec<u64>,
    on_disk: Vec<u64>,
    stored: Vec<u64>,
    posted: u64,
}

/// A writer at ~1,500 transfers/s for 9 s, logrotate every 1.5 s (6 rotations), and two
/// cron-like runners of the shipped pipe every 0.2 s (so runs overlap and meet the lock),
/// then a last run.
fn soak(mode: &str) -> Option<Soaked> {
    if !common::have("logrotate", "soak tests") || !common::have("gzip", "soak tests") {
        return None;
    }
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let site = Arc::new(Site::new());
    let done = Arc::new(AtomicBool::new(false));
    let posted = Arc::new(AtomicU64::new(0));
    // Rotations done, and (one more than) the most rotations done when a run that went
    // through started: the shipped logrotate stanza promises no more than a run between
    // two rotations finds the rotated file, so the next rotation waits for such a run
    // (under load a run can take longer than the 1.5 s between rotations).
    let rotations = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicU64::new(0));
    let command = site.cron_command();
    // The server's log exists before cron first runs (else a run says it is missing, as it
    // should: the runners below must not start before the writer has made it).
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(site.log())
        .unwrap();
    let run = {
        let (site, command, posted) = (site.clone(), command.clone(), posted.clone());
        let (rotations, finished) = (rotations.clone(), finished.clone());
        move || {
            let epoch = rotations.load(Ordering::SeqCst);
            let out = Command::new("sh")
                .args(["-c", &command])
                .env("ESMOND_KEY", &site.key)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            // A run that finds the previous one still going leaves quietly.
            if out.status.code() == Some(75) && stderr.is_empty() {
                return stderr;
            }
            assert!(out.status.success(), "{command}: {stderr}");
            let summary = stderr
                .lines()
                .find_map(|l| l.strip_prefix("esmond-post: records "))
                .unwrap_or_else(|| panic!("no summary: {stderr}"));
            let records: u64 = summary.split(',').next().unwrap().parse().unwrap();
            posted.fetch_add(records, Ordering::SeqCst);
            finished.fetch_max(epoch + 1, Ordering::SeqCst);
            stderr
        }
    };
    let runners: Vec<_> = (0..2)
        .map(|_| {
            let (done, run) = (done.clone(), run.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    let stderr = run();
                    for line in stderr.lines() {
                        assert!(
                            line.starts_with("esmond-post: records ")
                                || (line.starts_with("gridftp-parse: warning: ")
                                    && line.contains(" was rotated: finishing "))
                                || (line.starts_with("gridftp-parse: error: ")
                                    && line
                                        .ends_with(" is locked by another run; try again later")),
                            "{line}"
                        );
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        })
        .collect();
    // The writer: whole lines in single writes; under `create` it reopens the log by name
    // every 0.1 s (as a server does on SIGHUP), so lines also land in the renamed file.
    let writer = {
        let (site, mode) = (site.clone(), mode.to_owned());
        std::thread::spawn(move || {
            let open = || {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(site.log())
                    .unwrap()
            };
            let mut file = open();
            let started = std::time::Instant::now();
            let mut n = 0u64;
            let mut reopened = started;
            while started.elapsed() < Duration::from_secs(9) {
                let due = (started.elapsed().as_secs_f64() * 1500.0) as u64;
                while n < due {
                    file.write_all(soak_line(n).as_bytes()).unwrap();
                    n += 1;
                }
                if mode == "create" && reopened.elapsed() >= Duration::from_millis(100) {
                    file = open();
                    reopened = std::time::Instant::now();
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            n
        })
    };
    for rotation in 0..6 {
        std::thread::sleep(Duration::from_millis(1500));
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while finished.load(Ordering::SeqCst) <= rotation {
            assert!(
                std::time::Instant::now() < deadline,
                "no run went through since rotation {rotation}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        site.rotate(mode);
        rotations.fetch_add(1, Ordering::SeqCst);
    }
    let written = writer.join().unwrap();
    done.store(true, Ordering::SeqCst);
    for runner in runners {
        runner.join().unwrap();
    }
    run();
    let rotated = fs::read_dir(site.dir.path())
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("gridftp-transfer.log.")
        })
        .count();
    assert!(rotated >= 5, "{rotated} rotated files");
    assert_eq!(
        fs::read_to_string(site.lib().join("gridftp.reject")).unwrap_or_default(),
        ""
    );
    Some(Soaked {
        written: (0..written).collect(),
        on_disk: on_disk(&site),
        stored: site.soak_delivered(),
        posted: posted.load(Ordering::SeqCst),
    })
}

#[test]
fn soak_logrotate_create_every_transfer_written_is_stored_once() {
    let Some(Soaked {
        written,
        on_disk,
        stored,
        posted,
    }) = soak("create")
    else {
        return;
    };
    assert!(written.len() > 10_000, "{} written", written.len());
    assert_eq!(on_disk, written);
    assert_eq!(stored.len(), written.len());
    assert!(stored == written, "stored differs from written");
    // Nothing was sent twice either: the runs together posted each record once.
    assert_eq!(posted, written.len() as u64);
}

#[test]
fn soak_logrotate_copytruncate_stores_once_all_that_its_window_leaves() {
    let Some(Soaked {
        written,
        on_disk,
        stored,
        posted,
    }) = soak("copytruncate")
    else {
        return;
    };
    assert!(written.len() > 10_000, "{} written", written.len());
    // Lines written between logrotate's copy and its truncation are in no file: that is
    // the documented window. Every line that is in a file is stored, once.
    assert!(stored == on_disk, "stored differs from what is on disk");
    assert_eq!(posted, on_disk.len() as u64);
    let lost = written.len() - on_disk.len();
    eprintln!(
        "copytruncate: {lost} of {} lines lost in logrotate's window",
        written.len()
    );
    assert!(lost < written.len() / 20, "{lost} lost");
}

/// kill -9 of a random stage of the shipped pipe at a random moment, 24 kills, with new
/// transfers between rounds: afterwards every transfer is stored, once, and nothing is
/// set aside as bad.
#[test]
fn kill_9_of_either_stage_at_any_moment_loses_nothing() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("MEASPIPE_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("kill -9 test seed {seed} (MEASPIPE_KILL_SEED to repeat)");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let site = Site::new();
    let ack = site.lib().join("gridftp.ack");
    let reject = site.lib().join("gridftp.reject");
    let cache = site.lib().join("keys.db");
    let mut written = 0u64;
    let mut write = |count: u64| {
        let text: String = (written..written + count).map(soak_line).collect();
        append(&site.log(), &text);
        written += count;
    };
    write(4000);
    let pipe = || {
        let mut parse = Command::new(bin_path("gridftp-parse"))
            .args(["--host-ip", "127.0.0.1", "--ack"])
            .arg(&ack)
            .arg(site.log())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let post = Command::new(bin_path("esmond-post"))
            .args(["--url", &site.url(), "--batch-size", "50", "--ack"])
            .arg(&ack)
            .arg("--reject")
            .arg(&reject)
            .arg("--cache")
            .arg(&cache)
            .env("ESMOND_KEY", &site.key)
            .stdin(parse.stdout.take().unwrap())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        (parse, post)
    };
    // The moment is random within a window that follows how long a run lasts on this
    // machine: a run that ended before its moment halves the window, a kill widens it.
    let mut killed = [0u32; 2];
    let mut window_ms = 400u64;
    let mut rounds = 0;
    while killed.iter().sum::<u32>() < 24 && rounds < 100 {
        rounds += 1;
        let (mut parse, mut post) = pipe();
        std::thread::sleep(Duration::from_millis(rng.random_range(0..=window_ms)));
        let stage = rng.random_range(0..2usize);
        let victim = if stage == 0 { &mut parse } else { &mut post };
        if victim.try_wait().unwrap().is_none() {
            victim.kill().unwrap();
            killed[stage] += 1;
            window_ms = (window_ms + window_ms / 4).min(400);
        } else {
            window_ms = (window_ms / 2).max(2);
        }
        parse.wait().unwrap();
        post.wait().unwrap();
        write(rng.random_range(100..600));
    }
    // The next runs finish the work: one delivers the rest (or stops at a line cut by a
    // kill, delivering what came before it), a second has nothing left.
    for _ in 0..3 {
        let (mut parse, post) = pipe();
        let out = post.wait_with_output().unwrap();
        parse.wait().unwrap();
        if out.status.success() {
            break;
        }
    }
    let (mut parse, post) = pipe();
    let out = post.wait_with_output().unwrap();
    parse.wait().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "esmond-post: records 0, points 0, requests 0, retries 0, duplicates 0, conflicts 0, failures 0\n"
    );
    eprintln!(
        "killed gridftp-parse {} times, esmond-post {} times, in {rounds} rounds",
        killed[0], killed[1]
    );
    assert_eq!(
        killed.iter().sum::<u32>(),
        24,
        "{killed:?} kills in {rounds} rounds"
    );
    let stored = site.soak_delivered();
    assert_eq!(stored.len() as u64, written);
    assert!(
        stored == (0..written).collect::<Vec<u64>>(),
        "stored differs from written"
    );
    assert_eq!(fs::read_to_string(&reject).unwrap_or_default(), "");
}

// ---------------------------------------------------------------------------------------
// A live globus-gridftp-server on loopback.

#[test]
fn live_gridftp_transfers_each_appear_once_with_their_fields() {
    if !common::have("globus-gridftp-server", "live GridFTP test")
        || !common::have("globus-url-copy", "live GridFTP test")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    let source = data.join("src.bin");
    fs::write(&source, vec![7u8; 8_000_000]).unwrap();
    // The anonymous user (nobody) must be able to read and write here.
    Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(dir.path())
        .status()
        .unwrap();
    let transfer_log = dir.path().join("transfer.log");
    let main_log = dir.path().join("main.log");
    let port = common::free_port();
    let mut server = Command::new("globus-gridftp-server");
    server
        .args([
            "-aa",
            "-anonymous-user",
            "nobody",
            "-anonymous-group",
            "nogroup",
        ])
        .args(["-p", &port.to_string(), "-control-interface", "127.0.0.1"])
        .args(["-data-interface", "127.0.0.1", "-c", "/dev/null"])
        .arg("-log-transfer")
        .arg(&transfer_log)
        .arg("-l")
        .arg(&main_log)
        .args(["-log-level", "ALL"]);
    let server = common::BackgroundServer::start(server, port, Duration::from_secs(20));
    let url = |path: &Path| format!("ftp://127.0.0.1:{port}{}", path.display());
    let mut expected = Vec::new();
    for streams in [1, 2, 4] {
        let dest = dir.path().join(format!("got-{streams}.bin"));
        let status = Command::new("globus-url-copy")
            .args(["-p", &streams.to_string(), &url(&source)])
            .arg(format!("file://{}", dest.display()))
            .status()
            .unwrap();
        assert!(status.success());
        expected.push(("RETR", streams, source.clone()));
    }
    for streams in [1, 3] {
        let dest = data.join(format!("up-{streams}.bin"));
        let status = Command::new("globus-url-copy")
            .args(["-p", &streams.to_string()])
            .arg(format!("file://{}", source.display()))
            .arg(url(&dest))
            .status()
            .unwrap();
        assert!(status.success());
        expected.push(("STOR", streams, dest));
    }
    // The server logs a transfer as it completes; give the last one a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fs::read_to_string(&transfer_log)
        .unwrap_or_default()
        .lines()
        .count()
        < expected.len()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);

    let log = transfer_log.to_str().unwrap();
    let measured = parse(&["--host-ip", "127.0.0.1", "-F", log]);
    let raw = parse(&["--raw", log]);
    assert_eq!(measured.len(), expected.len(), "each transfer exactly once");
    for ((record, raw), (command, streams, file)) in measured.iter().zip(&raw).zip(&expected) {
        let meta = &record["metadata"];
        assert_eq!(raw["TYPE"], *command);
        assert_eq!(meta["bw-parallel-streams"], *streams);
        assert_eq!(meta["gridftp-file"], file.to_str().unwrap());
        assert_eq!(meta["gridftp-bytes-transferred"], 8_000_000);
        assert_eq!(meta["tool-name"], "gridftp");
        let (from, to) = if *command == "RETR" {
            (&meta["source"], &meta["input-destination"])
        } else {
            (&meta["destination"], &meta["input-source"])
        };
        assert_eq!(from, "127.0.0.1");
        assert_eq!(to, "127.0.0.1");
        let micros = |key: &str| {
            let text = raw[key].as_str().unwrap();
            let (whole, fraction) = text.split_once('.').unwrap();
            let time = chrono::NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S").unwrap();
            time.and_utc().timestamp() * 1_000_000
                + format!("{fraction:0<6}").parse::<i64>().unwrap()
        };
        let elapsed = (micros("DATE") - micros("START")) as f64 / 1e6;
        let expected_bps = 8.0 * 8_000_000.0 / elapsed;
        let bps = record["values"]["throughput"].as_f64().unwrap();
        assert!(
            (bps - expected_bps).abs() / expected_bps < 1e-9,
            "{bps} vs {expected_bps}"
        );
        assert_eq!(record["ts"], micros("START") / 1_000_000);
        let retrans = record["values"]["streams-packet-retransmits"]
            .as_array()
            .unwrap();
        assert!(retrans.is_empty() || retrans.len() == *streams as usize);
    }
    let from_main = parse(&[
        "--host-ip",
        "127.0.0.1",
        "-F",
        "--format",
        "main",
        main_log.to_str().unwrap(),
    ]);
    let strip = |r: &Value| without(r.clone(), "cursor");
    assert_eq!(
        from_main.iter().map(strip).collect::<Vec<_>>(),
        measured.iter().map(strip).collect::<Vec<_>>()
    );
}

/// A run of `gridftp-parse --state` over a fresh log of `total` transfers, its stdout a
/// pipe the test reads (a handshake: it cannot run ahead of the test by more than a pipe).
struct StatefulRun {
    _dir: tempfile::TempDir,
    log: PathBuf,
    state: PathBuf,
    child: std::process::Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl StatefulRun {
    fn start(total: u32) -> StatefulRun {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("t.log");
        let state = dir.path().join("state");
        let text: String = (1..=total).map(line).collect();
        append(&log, &text);
        let mut child = Command::new(bin_path("gridftp-parse"))
            .args(["--host-ip", "127.0.0.1", "--state"])
            .arg(&state)
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        StatefulRun {
            _dir: dir,
            log,
            state,
            child,
            stdout,
        }
    }

    /// What a second run from the saved state writes.
    fn rerun(&self) -> Vec<Value> {
        parse(&[
            "--host-ip",
            "127.0.0.1",
            "--state",
            self.state.to_str().unwrap(),
            self.log.to_str().unwrap(),
        ])
    }
}

/// State was saved only at exit: after kill -9 a rerun repeated the whole run. Now it is
/// saved during the run, after the records it covers were flushed: nothing is lost, and a
/// rerun repeats at most one checkpoint interval (10,000 records).
#[test]
fn kill_9_mid_run_repeats_at_most_one_checkpoint_and_loses_nothing() {
    let total = 100_000u32;
    let mut run = StatefulRun::start(total);
    let state = run.state.clone();
    // Read until 30,000 records arrived (three checkpoints' worth), then kill.
    let mut output = Vec::new();
    let mut lines = 0;
    while lines < 30_000 {
        let n = run.stdout.read_until(b'\n', &mut output).unwrap();
        assert!(n > 0, "the run ended early");
        lines += 1;
    }
    run.child.kill().unwrap();
    std::io::Read::read_to_end(&mut run.stdout, &mut output).unwrap();
    run.child.wait().unwrap();
    // A write cut by the kill may leave half a line: it is not a record.
    let complete = output
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let first = numbers(&ndjson_lines(&output[..complete]));
    let saved: Value = serde_json::from_str(&fs::read_to_string(&state).unwrap()).unwrap();
    let covered: usize = saved["cursor"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(covered >= 20_000, "checkpointed during the run: {covered}");
    assert!(
        first.len() >= covered,
        "the state covers only what was written"
    );
    assert!(
        first.len() - covered <= 10_000 + 200,
        "repeats at most a checkpoint (and what sat in the pipe): {} after {covered}",
        first.len()
    );
    let second = run.rerun();
    assert_eq!(
        second.first().map(|r| numbers(std::slice::from_ref(r))[0]),
        Some(covered as u64 + 1)
    );
    let all: Vec<u64> = first[..covered]
        .iter()
        .copied()
        .chain(numbers(&second))
        .collect();
    assert_eq!(all, (1..=u64::from(total)).collect::<Vec<_>>());
}

#[test]
fn sigterm_saves_the_state_between_records_and_a_rerun_completes() {
    let total = 120_000u32;
    // The first record shows the run is under way; the rest waits in a full pipe until
    // the test reads it, so the run cannot finish before the signal.
    let mut run = StatefulRun::start(total);
    let state = run.state.clone();
    let mut output = Vec::new();
    run.stdout.read_until(b'\n', &mut output).unwrap();
    assert!(!output.is_empty(), "the run wrote a first record");
    let pid = run.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    std::io::Read::read_to_end(&mut run.stdout, &mut output).unwrap();
    let status = run.child.wait().unwrap();
    let first = numbers(&ndjson_lines(&output));
    assert!(
        first.len() < total as usize,
        "the signal stopped the run early"
    );
    assert_eq!(status.code(), Some(143));
    let saved: Value = serde_json::from_str(&fs::read_to_string(&state).unwrap()).unwrap();
    let cursor = saved["cursor"].as_str().unwrap();
    let line_count: u64 = cursor.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(
        first.len() as u64,
        line_count,
        "the state covers exactly what was written"
    );
    let second = run.rerun();
    let all: Vec<u64> = first.into_iter().chain(numbers(&second)).collect();
    assert_eq!(all, (1..=u64::from(total)).collect::<Vec<_>>());
}

/// The JSON log's original metadata registered no `failures`; registering it forked the
/// series (esmond's metadata checksum covers the event types).
#[test]
fn json_transfers_register_the_originals_event_types() {
    let original: Value = serde_json::from_str(
        fs::read_to_string(fixture("gridftp/mock_requests_gridftp_json.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let records = parse(&[fixture("gridftp/json-synthetic.log").to_str().unwrap()]);
    let succeeded: Vec<&Value> = records
        .iter()
        .filter(|r| r["values"].get("failures").is_none())
        .collect();
    assert!(!succeeded.is_empty());
    for record in succeeded {
        let expected: Vec<Value> = original["body"]["event-types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| serde_json::json!({"event-type": t["event-type"], "summaries": []}))
            .collect();
        assert_eq!(
            record["metadata"]["event-types"],
            Value::from(expected),
            "{record}"
        );
    }
}
