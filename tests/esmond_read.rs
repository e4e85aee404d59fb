//! The archive readers (esmond-endpoints, esmond-metadata, esmond-get, esmond-bulk-fetch)
//! against esmond-serve loaded with known data (tests/fixtures/esmond/readback.ndjson,
//! through esmond-post); where Python 2.7 has esmond-client 4.2.1, against the real tools.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{bin, bin_path, BackgroundServer};
use serde_json::Value;

/// The window the fixture's data are in.
const WINDOW: [&str; 4] = ["-S", "2014-04-01", "-E", "2014-05-01"];

/// Event types of the fixture, one of each formatter and more.
const EVENTS: [&str; 9] = [
    "throughput",
    "failures",
    "throughput-subintervals",
    "streams-throughput",
    "streams-throughput-subintervals",
    "histogram-owdelay",
    "packet-loss-rate",
    "packet-trace",
    "pscheduler-run-href",
];

/// An esmond-serve in a temp dir, with a writer's key.
struct Archive {
    _server: BackgroundServer,
    url: String,
    key: String,
    dir: tempfile::TempDir,
}

impl Archive {
    fn start() -> Archive {
        let dir = tempfile::tempdir().unwrap();
        let store = common::serve::Store::new(&dir.path().join("archive"));
        let key = store.token("writer");
        let port = common::free_port();
        let mut command = Command::new(bin_path("esmond-serve"));
        command
            .args(&store.args)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stderr(Stdio::null());
        let server = BackgroundServer::start(command, port, Duration::from_secs(20));
        Archive {
            _server: server,
            url: format!("http://127.0.0.1:{port}"),
            key,
            dir,
        }
    }

    /// Posts measurement records with esmond-post; returns its stderr summary.
    fn post(&self, records: &Path) -> String {
        let out = bin("esmond-post")
            .args(["--url", &self.url, "--key", &self.key])
            .arg("--cache")
            .arg(self.dir.path().join("keys.db"))
            .arg(records)
            .output()
            .unwrap();
        common::assert_success(&out);
        String::from_utf8(out.stderr).unwrap()
    }

    /// An archive holding the fixture's records.
    fn loaded() -> Archive {
        let archive = Archive::start();
        archive.post(&common::fixture("esmond/readback.ndjson"));
        archive
    }

    /// Runs a reader against this archive; returns (status, stdout, stderr).
    fn run(&self, tool: &str, args: &[&str]) -> (i32, String, String) {
        let out = bin(tool)
            .args(["-u", &self.url])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    /// A reader's stdout; it must succeed.
    fn output(&self, tool: &str, args: &[&str]) -> String {
        let (status, stdout, stderr) = self.run(tool, args);
        assert_eq!(status, 0, "{tool} {args:?}: {stderr}");
        stdout
    }
}

/// Output in a form where the order of metadata (sorted by their random keys) does not
/// matter: human blocks, CSV lines after the header, JSON rows and NDJSON lines, sorted.
fn normalized(format: &str, text: &str) -> Vec<String> {
    let mut items: Vec<String> = match format {
        "human" => text
            .split("= + = + = + = + = + =\n")
            .map(|b| b.trim_end().to_owned())
            .collect(),
        "csv" => {
            let mut lines = text.split("\r\n").map(str::to_owned);
            let header = lines.next().unwrap_or_default();
            let mut rest: Vec<String> = lines.collect();
            rest.sort();
            rest.insert(0, header);
            return rest;
        }
        "json" => {
            let rows: Vec<Value> =
                serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
            rows.iter()
                .map(|r| {
                    let object: std::collections::BTreeMap<String, Value> =
                        serde_json::from_value(r.clone()).unwrap();
                    serde_json::to_string(&object).unwrap()
                })
                .collect()
        }
        _ => text.lines().map(str::to_owned).collect(),
    };
    items.sort();
    items
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(common::fixture(&format!("esmond/readback/{name}"))).unwrap()
}

on_both_stores! {
fn every_reader_writes_every_format() {
    let archive = Archive::loaded();
    for format in ["human", "csv", "json", "ndjson"] {
        let mut cases: Vec<(String, Vec<&str>)> = vec![
            (format!("endpoints.{format}"), vec!["esmond-endpoints"]),
            (format!("metadata.{format}"), vec!["esmond-metadata"]),
        ];
        for event in EVENTS {
            cases.push((
                format!("get-{event}.{format}"),
                vec!["esmond-get", "-e", event],
            ));
        }
        for (name, command) in cases {
            let mut args: Vec<&str> = command[1..].to_vec();
            args.extend(WINDOW);
            args.extend(["-o", format]);
            let got = archive.output(command[0], &args);
            assert_eq!(
                normalized(format, &got),
                normalized(format, &expected(&name)),
                "{name}: {got}"
            );
        }
    }
    // Summaries: statistics of histograms, averages of throughput.
    let got = archive.output(
        "esmond-get",
        &[
            "-e",
            "histogram-owdelay",
            "-T",
            "statistics",
            "-o",
            "csv",
            WINDOW[0],
            WINDOW[1],
            WINDOW[2],
            WINDOW[3],
        ],
    );
    assert_eq!(got, expected("get-histogram-owdelay-statistics.csv"));
    let got = archive.output(
        "esmond-get",
        &[
            "-e",
            "throughput",
            "-T",
            "average",
            "-W",
            "86400",
            "-s",
            "10.1.1.1",
            WINDOW[0],
            WINDOW[1],
            WINDOW[2],
            WINDOW[3],
        ],
    );
    assert_eq!(got, expected("get-throughput-average-86400.human"));
}
}

on_both_stores! {
fn nothing_found_is_said_as_the_originals_said_it() {
    let archive = Archive::loaded();
    let none = ["-e", "throughput", "-S", "2020-01-01", "-E", "2020-01-02"];
    let with = |format: &str| {
        let mut args = none.to_vec();
        args.extend(["-o", format]);
        archive.output("esmond-get", &args)
    };
    assert_eq!(with("human"), "No data found.\n");
    assert_eq!(with("json"), "[{\"msg\": \"No data found.\"}]\n");
    assert_eq!(
        with("csv"),
        "source,destination,event_type,tool,summary_type,summary_window,timestamp,value\r\nNo data,No data,No data,No data,No data,No data,No data,No data\r\n\n"
    );
    assert_eq!(with("ndjson"), "");
}
}

on_both_stores! {
fn filters_take_ipv6_values_with_colons_and_free_form_keys() {
    let archive = Archive::loaded();
    for filter in [
        vec!["-s", "2001:db8::1"],
        vec![
            "-F",
            "pscheduler-reference:https://ps1.example.net:443/pscheduler/tasks/7",
        ],
        vec!["-F", "pscheduler_test_type:throughput"],
        vec!["-F", "input-source:ps1.example.net", "-d", "2001:db8::2"],
    ] {
        let mut args = filter.clone();
        args.extend(WINDOW);
        args.extend(["-o", "csv"]);
        let got = archive.output("esmond-endpoints", &args);
        assert_eq!(
            got,
            "source,destination,measurement_agent,tool_name,event_type\r\n2001:db8::1,2001:db8::2,2001:db8::1,pscheduler/iperf3,\"pscheduler-run-href, throughput\"\r\n\n",
            "{filter:?}"
        );
    }
}
}

on_both_stores! {
/// A series written again after the end of the window asked for (its `time-updated` is
/// later than -E) is still found: esmond-serve filters metadata on `time-updated` as
/// esmond did (time-end excludes it), and the readers bound the metadata search by the
/// start only. The real esmond-ps-get, which sends time-end, finds nothing.
fn a_series_written_after_the_window_is_still_found() {
    let archive = Archive::loaded();
    // bwctl/iperf3 throughput was last written at 2014-04-14 02:31:32; end before it.
    let args = [
        "-s",
        "10.1.1.1",
        "-e",
        "throughput",
        "-S",
        "2014-04-13",
        "-E",
        "2014-04-14",
        "-o",
        "csv",
    ];
    let got = archive.output("esmond-get", &args);
    assert_eq!(
        got,
        "source,destination,event_type,tool,summary_type,summary_window,timestamp,value\r\n10.1.1.1,10.1.1.2,throughput,bwctl/iperf3,base,0,2014-04-13 20:41:12,7016320000.0\r\n\n"
    );
    // The archive itself agrees with esmond: a metadata search with time-end before the
    // last update does not match.
    let search = |query: &str| -> usize {
        let url = format!("{}/esmond/perfsonar/archive/?source=10.1.1.1&event-type=throughput&tool-name=bwctl/iperf3&{query}", archive.url);
        let body = ureq::get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        serde_json::from_str::<Vec<Value>>(&body).unwrap().len()
    };
    assert_eq!(search("time-start=1397347200&time-end=1397433600"), 0);
    assert_eq!(search("time-start=1397347200"), 1);
    if let Some((python, scripts)) = real_client() {
        let out = Command::new(&python)
            .arg(scripts.join("esmond-ps-get"))
            .args(["-u", &archive.url, "-I", "-d", "10.1.1.2"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "source,destination,event_type,tool,summary_type,summary_window,timestamp,value\r\nNo data,No data,No data,No data,No data,No data,No data,No data\r\n\n");
    }
}
}

on_both_stores! {
fn the_copy_pipeline_gives_every_point_once() {
    let from = Archive::loaded();
    let to = Archive::start();
    let dump = |archive: &Archive| {
        archive.output(
            "esmond-bulk-fetch",
            &["-S", "2014-04-01", "-E", "2014-05-01", "-o", "ndjson"],
        )
    };
    let records = from.dir.path().join("copy.ndjson");
    std::fs::write(&records, dump(&from)).unwrap();
    assert_eq!(
        to.post(&records).trim(),
        "esmond-post: records 7, points 18, requests 2, retries 0, duplicates 0, conflicts 0, failures 0"
    );
    // Again: every record is already there (a duplicate each), nothing is stored twice.
    assert_eq!(
        to.post(&records).trim(),
        "esmond-post: records 7, points 18, requests 2, retries 0, duplicates 7, conflicts 0, failures 0"
    );
    assert_eq!(
        normalized("ndjson", &dump(&to)),
        normalized("ndjson", &dump(&from))
    );
    // Summaries are computed again by the archive copied into.
    for args in [
        ["-e", "throughput", "-T", "average", "-W", "86400"],
        ["-e", "histogram-owdelay", "-T", "aggregation", "-W", "3600"],
        ["-e", "histogram-owdelay", "-T", "statistics", "-W", "0"],
        ["-e", "packet-loss-rate", "-T", "aggregation", "-W", "3600"],
    ] {
        let mut args = args.to_vec();
        args.extend(WINDOW);
        args.extend(["-o", "json"]);
        assert_eq!(
            normalized("json", &to.output("esmond-get", &args)),
            normalized("json", &from.output("esmond-get", &args)),
            "{args:?}"
        );
    }
}
}

on_both_stores! {
fn bulk_fetch_writes_a_file_per_metadata_and_event_type_and_resumes() {
    let archive = Archive::loaded();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let (status, stdout, stderr) = archive.run(
        "esmond-bulk-fetch",
        &[
            "-S",
            "2014-04-01",
            "-E",
            "2014-05-01",
            "-o",
            "csv",
            "-D",
            dir,
        ],
    );
    assert_eq!((status, stdout.as_str()), (0, ""), "{stderr}");
    assert_eq!(
        stderr,
        "esmond-bulk-fetch: 3 metadata: 11 files written (18 points), 0 kept from an earlier run\n"
    );
    let mut names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 11);
    // Two tests' failures no longer overwrite each other: the key is in the name.
    let failures: Vec<&String> = names.iter().filter(|n| n.contains("_failures_")).collect();
    assert_eq!(failures.len(), 1, "{names:?}");
    assert!(names.iter().any(
        |n| n.starts_with("2001:db8::1_2001:db8::2_pscheduler-run-href_2014-04-01_2014-05-01_")
    ));
    let throughput = names
        .iter()
        .find(|n| n.starts_with("10.1.1.1_10.1.1.2_throughput_"))
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(out.path().join(throughput)).unwrap(),
        "source,destination,event_type,tool,summary_type,summary_window,timestamp,value\r\n10.1.1.1,10.1.1.2,throughput,bwctl/iperf3,base,0,2014-04-13 20:41:12,7016320000.0\r\n10.1.1.1,10.1.1.2,throughput,bwctl/iperf3,base,0,2014-04-14 02:31:32,7225480000.0\r\n"
    );
    // A run killed mid-file leaves only a .part beside the missing file: --resume
    // fetches that one again and keeps the others.
    std::fs::remove_file(out.path().join(throughput)).unwrap();
    std::fs::write(out.path().join(format!(".{throughput}.part")), "half").unwrap();
    let (status, _, stderr) = archive.run(
        "esmond-bulk-fetch",
        &[
            "-S",
            "2014-04-01",
            "-E",
            "2014-05-01",
            "-o",
            "csv",
            "-D",
            dir,
            "--resume",
        ],
    );
    assert_eq!(status, 0);
    assert_eq!(
        stderr,
        "esmond-bulk-fetch: 3 metadata: 1 files written (2 points), 10 kept from an earlier run\n"
    );
    let after: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(after.len(), 11, "{after:?}");
}
}

on_both_stores! {
fn bad_arguments_and_unreachable_archives_are_one_line_errors() {
    let archive = Archive::loaded();
    for (tool, args, code, message) in [
        ("esmond-get", vec!["-e", "throughput", "-S", "garbage"], 2, "esmond-get: error: --start-time: cannot read the date \"garbage\" (try 2015-04-01, 'Jan 1 2015 13:00', -7d or yesterday)\n"),
        ("esmond-get", vec!["-s", "10.1.1.1"], 2, "esmond-get: error: --event-type is required (-L lists esmond's event types)\n"),
        ("esmond-get", vec!["-e", "throughput", "-S", "2014-05-01", "-E", "2014-04-01"], 2, "esmond-get: error: the start of the window (2014-05-01 00:00:00) is after its end (2014-04-01 00:00:00)\n"),
        ("esmond-get", vec!["-e", "throughput", "-T", "average", "-o", "ndjson"], 2, "esmond-get: error: -o ndjson writes measurement records, which carry base data: leave out --summary-type\n"),
        ("esmond-endpoints", vec!["-F", "tool-name"], 2, "esmond-endpoints: error: --filter \"tool-name\": expected KEY:VALUE, e.g. ip-transport-protocol:tcp\n"),
        ("esmond-metadata", vec!["-M", "-o", "csv"], 2, "esmond-metadata: error: -o csv cannot be used with --metadata-extended (the metadata have different fields)\n"),
        ("esmond-bulk-fetch", vec!["-o", "human"], 2, "esmond-bulk-fetch: error: -o human is not a bulk format: choose csv or json (files) or ndjson (records)\n"),
        ("esmond-bulk-fetch", vec!["-D", "/nonexistent/dir"], 2, "esmond-bulk-fetch: error: --output-directory /nonexistent/dir: not a directory\n"),
    ] {
        let (status, stdout, stderr) = archive.run(tool, &args);
        assert_eq!((status, stdout.as_str(), stderr.as_str()), (code, "", message), "{tool} {args:?}");
    }
    // An archive that is not there, and a server that is not an archive.
    let port = common::free_port();
    let out = bin("esmond-get")
        .args([
            "-u",
            &format!("http://127.0.0.1:{port}"),
            "-e",
            "throughput",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.starts_with(&format!("esmond-get: error: GET http://127.0.0.1:{port}/esmond/perfsonar/archive/?event-type=throughput&time-start=")),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let (status, _, stderr) = archive.run(
        "esmond-get",
        &["--script-alias", "nothing", "-e", "throughput"],
    );
    assert_eq!(status, 1);
    assert!(
        stderr.contains("/nothing/perfsonar/archive/?event-type=throughput&time-start="),
        "{stderr}"
    );
    assert!(stderr.contains(": the archive answered 404: "), "{stderr}");
}
}

#[test]
fn list_events_prints_every_event_type_the_archive_knows() {
    let out = bin("esmond-get").arg("-L").output().unwrap();
    common::assert_success(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    let original = std::fs::read_to_string(common::fixture("esmond/list_events.out")).unwrap();
    // The original's 33, in its order, then the 16 it missed.
    assert!(text.starts_with(&original), "{text}");
    assert_eq!(text.lines().count(), 2 + 49);
    assert!(text.contains("\n    pscheduler-run-href\n"));
}

/// Python 2.7 with esmond-client 4.2.1, and where its scripts are.
fn real_client() -> Option<(String, PathBuf)> {
    let python = common::python27_with("esmond_client.perfsonar.query", "esmond-client 4.2.1")?;
    let scripts = Path::new(&python).parent().unwrap().to_owned();
    Some((python, scripts))
}

on_both_stores! {
/// The rows of the real 4.2.1 tools and of measpipe's on the same archive are the same:
/// human and CSV byte for byte (Python's dict order aside: JSON rows compared as
/// objects); -M without the first row's pagination counts, which measpipe leaves out.
fn rows_equal_those_of_the_real_esmond_client() {
    let Some((python, scripts)) = real_client() else {
        return;
    };
    let archive = Archive::loaded();
    let real = |tool: &str, args: &[&str]| -> String {
        let out = Command::new(&python)
            .arg(scripts.join(tool))
            .args(["-u", &archive.url, "-I"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let pair = [
        ("esmond-ps-get-endpoints", "esmond-endpoints"),
        ("esmond-ps-get-metadata", "esmond-metadata"),
    ];
    let mut cases: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    for (original, ours) in pair {
        for format in ["human", "csv", "json"] {
            cases.push((original, ours, vec!["-o", format]));
        }
    }
    for event in &EVENTS[..8] {
        for format in ["human", "csv", "json"] {
            cases.push((
                "esmond-ps-get",
                "esmond-get",
                vec![
                    "-s", "10.1.1.1", "-d", "10.1.1.2", "-e", event, "-o", format,
                ],
            ));
        }
    }
    for summary in [
        ["average", "86400", "throughput"],
        ["aggregation", "3600", "histogram-owdelay"],
        ["statistics", "0", "histogram-owdelay"],
        ["aggregation", "3600", "packet-loss-rate"],
    ] {
        for format in ["human", "csv"] {
            cases.push((
                "esmond-ps-get",
                "esmond-get",
                vec![
                    "-s", "10.1.1.1", "-d", "10.1.1.2", "-T", summary[0], "-W", summary[1], "-e",
                    summary[2], "-o", format,
                ],
            ));
        }
    }
    for (original, ours, mut args) in cases {
        args.extend(WINDOW);
        let (theirs, mine) = (real(original, &args), archive.output(ours, &args));
        let format = args[args.iter().position(|a| *a == "-o").unwrap() + 1];
        if format == "json" {
            assert_eq!(
                normalized("json", &mine),
                normalized("json", &theirs),
                "{ours} {args:?}"
            );
        } else {
            assert_eq!(
                normalized(format, &mine),
                normalized(format, &theirs),
                "{ours} {args:?}"
            );
        }
    }
    // -M: the same fields, but the pagination counts of the original's first row.
    let mut args = vec!["-M", "-o", "json"];
    args.extend(WINDOW);
    let strip = |text: &str| -> Vec<String> {
        let rows: Vec<Value> = serde_json::from_str(text).unwrap();
        let mut rows: Vec<String> = rows
            .into_iter()
            .map(|mut r| {
                let o = r.as_object_mut().unwrap();
                o.retain(|k, _| !k.starts_with("metadata_"));
                serde_json::to_string(o).unwrap()
            })
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(
        strip(&archive.output("esmond-metadata", &args)),
        strip(&real("esmond-ps-get-metadata", &args))
    );
    // get-bulk, one event type at a time (on the whole archive it dies at
    // pscheduler-run-href): its files hold what esmond-bulk-fetch writes.
    for format in ["csv", "json"] {
        let (theirs, mine) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        for event in EVENTS[..8].iter().chain(&["packet-retransmits"]) {
            let mut args = vec!["-o", format, "-e", event];
            args.extend(WINDOW);
            let out = Command::new(&python)
                .arg(scripts.join("esmond-ps-get-bulk"))
                .args([
                    "-u",
                    &archive.url,
                    "-I",
                    "-D",
                    theirs.path().to_str().unwrap(),
                ])
                .args(&args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut args = vec!["-o", format];
        args.extend(WINDOW);
        args.extend(["-D", mine.path().to_str().unwrap()]);
        archive.output("esmond-bulk-fetch", &args);
        let written: Vec<_> = std::fs::read_dir(theirs.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        // All of measpipe's but pscheduler-run-href, which the original cannot read.
        assert_eq!(written.len(), 10, "{written:?}");
        for path in written {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let ours = std::fs::read_dir(mine.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| {
                    let n = p.file_name().unwrap().to_string_lossy();
                    n.starts_with(&format!("{name}_")) && n.ends_with(format)
                })
                .unwrap_or_else(|| panic!("no file like {name}"));
            let (a, b) = (
                std::fs::read_to_string(&path).unwrap(),
                std::fs::read_to_string(&ours).unwrap(),
            );
            assert_eq!(normalized(format, &b), normalized(format, &a), "{name}");
        }
    }
}
}

on_both_stores! {
/// pipelines/esmond-ps-get* take the originals' flags and run measpipe's readers.
fn the_drop_in_wrappers_take_the_original_flags() {
    let archive = Archive::loaded();
    let path = format!(
        "{}:{}",
        bin_path("esmond-get").parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let wrapper = |name: &str, args: &[&str]| {
        let out = Command::new(common::repo_root().join("pipelines").join(name))
            .args(args)
            .env("PATH", &path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let mut args = vec!["-u", archive.url.as_str(), "-I", "-o", "csv"];
    args.extend(WINDOW);
    let (status, stdout, stderr) = wrapper("esmond-ps-get-endpoints", &args);
    assert_eq!(status, Some(0), "{stderr}");
    assert_eq!(
        normalized("csv", &stdout),
        normalized("csv", &expected("endpoints.csv"))
    );
    args.extend([
        "-s",
        "10.1.1.1",
        "-d",
        "10.1.1.2",
        "-e",
        "throughput",
        "--ssl-verify",
    ]);
    let (status, stdout, stderr) = wrapper("esmond-ps-get", &args);
    assert_eq!(status, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        archive.output("esmond-get", &args[2..args.len() - 1])
    );
    let (status, _, stderr) = wrapper("esmond-ps-get-metadata", &["-o", "csv"]);
    assert_eq!(
        (status, stderr.as_str()),
        (
            Some(2),
            "esmond-ps-get-metadata: error: --url is a required arg\n"
        )
    );
    let out = tempfile::tempdir().unwrap();
    let mut args = vec![
        "-u",
        archive.url.as_str(),
        "-I",
        "-o",
        "json",
        "-D",
        out.path().to_str().unwrap(),
    ];
    args.extend(WINDOW);
    let (status, _, stderr) = wrapper("esmond-ps-get-bulk", &args);
    assert_eq!(status, Some(0), "{stderr}");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 11);
}
}
