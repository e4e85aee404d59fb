//! esmond-serve as the archive of a perfSONAR 5 site: pScheduler results PUT to /logstash
//! exactly as the http archiver sends them, read back through the esmond API as the esmond
//! archiver would have stored them (issue 18; pscheduler.md §2, §3, §4).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;

use common::serve::Serve;
use common::{assert_success, bin_path};
use serde_json::{json, Value};

const ROOT: &str = "/esmond/perfsonar/archive";

/// The fixtures' testbed hosts (their namespaces' /etc/hosts).
const TESTBED_HOSTS: &str = "198.51.100.10 ps-a.example.net\n2001:db8:a::10 ps-a.example.net\n203.0.113.20 ps-b.example.net\n2001:db8:b::20 ps-b.example.net\n";

fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(
        common::repo_root()
            .join("tests/fixtures/pscheduler")
            .join(name),
    )
    .unwrap()
}

fn fixture(name: &str) -> Value {
    serde_json::from_str(&fixture_text(name)).unwrap()
}

fn cases() -> Vec<String> {
    fixture("index.json")
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["file"].as_str().unwrap().to_owned())
        .collect()
}

/// An archive with the testbed's host map and a key for `pscheduler_logstash`, the user
/// psconfig's archive spec names; its Basic credentials.
fn archive(extra: &[&str]) -> (Serve, String) {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, TESTBED_HOSTS).unwrap();
    let data = dir.path().join("archive");
    let hosts = hosts.to_str().unwrap().to_owned();
    let mut args = vec!["--hosts", &hosts];
    args.extend_from_slice(extra);
    let serve = Serve::start_in(dir, Some(data), &args);
    // (Keys are looked up at each request.)
    let key = serve.store.token("pscheduler_logstash");
    use base64::Engine;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("pscheduler_logstash:{key}"));
    (serve, basic)
}

/// A request as pScheduler's http archiver (pycurl) sends it: the captured headers in
/// their order, Content-Type twice (psconfig's lower-case one and the plugin's own).
fn archiver_request(method: &str, path: &str, authorization: Option<&str>, body: &str) -> Vec<u8> {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: archive.example.net\r\nUser-Agent: PycURL/7.49.0 libcurl/8.23.0\r\nAccept: */*\r\nx-ps-observer: ps-a.example.net\r\ncontent-type: application/json\r\n"
    );
    if let Some(authorization) = authorization {
        request.push_str(&format!("Authorization: {authorization}\r\n"));
    }
    request.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// Reads one response from a kept-alive connection: status, Content-Type, body.
fn read_response(reader: &mut BufReader<TcpStream>) -> (u16, String, String) {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (mut length, mut content_type) = (0usize, String::new());
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap(),
            "content-type" => content_type = value.trim().to_owned(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status, content_type, String::from_utf8(body).unwrap())
}

/// PUTs `bodies` on one kept-alive connection as the archiver does: each answer.
fn put_all(
    serve: &Serve,
    authorization: Option<&str>,
    bodies: &[String],
) -> Vec<(u16, String, String)> {
    let stream = serve.connect();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    bodies
        .iter()
        .map(|body| {
            writer
                .write_all(&archiver_request("PUT", "/logstash", authorization, body))
                .unwrap();
            read_response(&mut reader)
        })
        .collect()
}

fn get(serve: &Serve, path: &str) -> Value {
    let (status, body) = serve.call("GET", path, None, false);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// esmond-get's NDJSON of `event_type` between the testbed's hosts on the fixtures' day.
fn esmond_get(serve: &Serve, event_type: &str) -> std::process::Output {
    Command::new(bin_path("esmond-get"))
        .args(["-u", &format!("http://{}", serve.addr())])
        .args([
            "-s",
            "198.51.100.10",
            "-d",
            "203.0.113.20",
            "-e",
            event_type,
        ])
        .args(["-S", "@1796090000", "-E", "@1796100000", "-o", "ndjson"])
        .output()
        .unwrap()
}

/// `href` percent-encoded for a query.
fn encoded(href: &str) -> String {
    href.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The stored runs with this run href.
fn runs_by_href(serve: &Serve, href: &str) -> Vec<Value> {
    let found = get(serve, &format!("{ROOT}/runs/?run-href={}", encoded(href)));
    found.as_array().unwrap().clone()
}

/// The stored run with this run href.
fn run_by_href(serve: &Serve, href: &str) -> Value {
    let found = runs_by_href(serve, href);
    assert_eq!(found.len(), 1, "{href}: {found:?}");
    found[0].clone()
}

/// Python 2's `unicode()` of a posted metadata value, as esmond returns it (§2.6).
fn as_esmond_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap();
            if f.fract() == 0.0 {
                format!("{f:.1}")
            } else {
                f.to_string()
            }
        }
        Value::Bool(true) => "True".into(),
        other => other.to_string(),
    }
}

/// A posted value as esmond reads it back (§2.6): integer types truncated and returned
/// as floats, time-error-estimates to 4 decimals, a percentage as its quotient, the rest
/// as posted.
fn as_esmond_value(event_type: &str, value: &Value) -> Value {
    match event_type {
        "throughput"
        | "packet-count-sent"
        | "packet-count-lost"
        | "packet-count-lost-bidir"
        | "packet-retransmits"
        | "packet-duplicates"
        | "packet-duplicates-bidir"
        | "packet-reorders"
        | "packet-reorders-bidir"
        | "path-mtu"
        | "packet-rtt"
        | "tcp-windowsize" => json!(value.as_f64().unwrap().trunc()),
        "time-error-estimates" => json!((value.as_f64().unwrap() * 1e4).trunc() / 1e4),
        "packet-loss-rate" | "packet-loss-rate-bidir" => {
            json!(value["numerator"].as_f64().unwrap() / value["denominator"].as_f64().unwrap())
        }
        _ => value.clone(),
    }
}

on_both_stores! {
/// Every fixture PUT as the http archiver PUTs it is answered `200 ok`, and reads back
/// through the esmond API as the esmond archiver's POST and PUT would have been stored:
/// the metadata's fields and event types (with the summaries), every value, the run with
/// Logstash's test checksum; the archiver's unregistered event types are registered and
/// readable too.
fn every_fixture_posted_as_the_http_archiver_posts_it_reads_back_as_esmond_serves_it() {
    let (serve, basic) = archive(&[]);
    let cases = cases();
    let bodies: Vec<String> = cases.iter().map(|c| fixture_text(c)).collect();
    let answers = put_all(&serve, Some(&format!("Basic {basic}")), &bodies);
    for (case, answer) in cases.iter().zip(&answers) {
        assert_eq!(
            answer,
            &(200, "text/plain; charset=utf-8".to_owned(), "ok".to_owned()),
            "{case}"
        );
    }
    let checksums = fixture("test_checksums.json");
    for case in &cases {
        let body = fixture(case);
        let sent = fixture(&case.replace(".json", ".esmond.json"));
        let href = body["run"]["href"].as_str().unwrap();
        let run = run_by_href(&serve, href);
        let expected_checksum = checksums
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["file"] == case.as_str())
            .unwrap()["test_checksum"]
            .clone();
        assert_eq!(run["id"], body["id"], "{case}");
        assert_eq!(run["test-checksum"], expected_checksum, "{case}");
        assert_eq!(run["observer"], "ps-a.example.net");
        assert_eq!(run["succeeded"], body["result"]["succeeded"], "{case}");
        let key = run["metadata-key"].as_str().unwrap().to_owned();

        // The metadata: every posted field as esmond's text, and the event types.
        let metadata = get(&serve, &format!("{ROOT}/{key}/"));
        let posted = sent["metadata"].as_object().unwrap();
        for (field, value) in posted {
            if field == "event-types" {
                continue;
            }
            assert_eq!(
                metadata[field],
                json!(as_esmond_text(value)),
                "{case}: {field}"
            );
        }
        let mut expected_types: Vec<(String, Vec<(String, String)>)> = posted["event-types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|et| {
                let mut summaries: Vec<(String, String)> = et["summaries"]
                    .as_array()
                    .map(|s| {
                        s.iter()
                            .map(|s| {
                                (
                                    s["summary-type"].as_str().unwrap().to_owned(),
                                    s["summary-window"].to_string(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                summaries.sort();
                (et["event-type"].as_str().unwrap().to_owned(), summaries)
            })
            .collect();
        // What the archiver sends without registering it is registered here (quirks 1, 2).
        for value in sent["data"]["data"][0]["val"].as_array().unwrap() {
            let et = value["event-type"].as_str().unwrap();
            if !expected_types.iter().any(|(e, _)| e == et) {
                expected_types.push((et.to_owned(), Vec::new()));
            }
        }
        let mut got_types: Vec<(String, Vec<(String, String)>)> = metadata["event-types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|et| {
                let mut summaries: Vec<(String, String)> = et["summaries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| {
                        (
                            s["summary-type"].as_str().unwrap().to_owned(),
                            s["summary-window"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect();
                summaries.sort();
                (et["event-type"].as_str().unwrap().to_owned(), summaries)
            })
            .collect();
        expected_types.sort();
        got_types.sort();
        assert_eq!(got_types, expected_types, "{case}: event types");

        // Every value of the point.
        let ts = sent["data"]["data"][0]["ts"].as_i64().unwrap();
        for value in sent["data"]["data"][0]["val"].as_array().unwrap() {
            let et = value["event-type"].as_str().unwrap();
            let read = get(
                &serve,
                &format!("{ROOT}/{key}/{et}/base?time-start={ts}&time-end={ts}"),
            );
            assert_eq!(
                read,
                json!([{"ts": ts, "val": as_esmond_value(et, &value["val"])}]),
                "{case}: {et}"
            );
        }

        // The run kept, without its task, with its diags cut.
        let kept = get(
            &serve,
            &format!("{ROOT}/runs/{}/", body["id"].as_str().unwrap()),
        );
        assert_eq!(
            kept["body"]["result"]["succeeded"],
            body["result"]["succeeded"]
        );
        assert_eq!(kept["body"].get("task"), None, "{case}");
        assert_eq!(kept["body"]["run"].get("result-full"), None, "{case}");
        if let Some(diags) = kept["body"]["result"]["diags"].as_str() {
            assert!(diags.len() <= 4096 + " […]".len(), "{case}");
        }
        // Logstash's test checksum (elmond's metadata key) stands for the metadata.
        let alias = get(
            &serve,
            &format!("{ROOT}/{}/", expected_checksum.as_str().unwrap()),
        );
        assert_eq!(alias["metadata-key"], json!(key), "{case}");
    }
    // One metadata per distinct metadata the archiver posted (esmond's identity): the two
    // latencybg results of one task share one, and so do the failed and the reverse
    // throughput tests, whose posted metadata are the same. 11 runs.
    let distinct: std::collections::BTreeSet<String> = cases
        .iter()
        .map(|c| fixture(&c.replace(".json", ".esmond.json"))["metadata"].to_string())
        .collect();
    assert_eq!(distinct.len(), 9);
    let all = get(&serve, &format!("{ROOT}/?limit=100"));
    assert_eq!(all.as_array().unwrap().len(), distinct.len());
    let runs = get(&serve, &format!("{ROOT}/runs/"));
    assert_eq!(runs.as_array().unwrap().len(), 11);
    let bg = run_by_href(
        &serve,
        fixture("latencybg_powstream_2.json")["run"]["href"]
            .as_str()
            .unwrap(),
    );
    let of_bg = get(
        &serve,
        &format!(
            "{ROOT}/runs/?metadata-key={}",
            bg["metadata-key"].as_str().unwrap()
        ),
    );
    assert_eq!(of_bg.as_array().unwrap().len(), 2);

    // measpipe's esmond-get reads them as any esmond data (the metadata's
    // pscheduler-run-href, which broke esmond-ps-get-bulk, is no obstacle).
    let out = esmond_get(&serve, "throughput");
    assert_success(&out);
    let mut got: Vec<(i64, f64)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).unwrap();
            (
                record["ts"].as_i64().unwrap(),
                record["values"]["throughput"].as_f64().unwrap(),
            )
        })
        .collect();
    got.sort_by_key(|a| a.0);
    let mut want: Vec<(i64, f64)> = [
        "throughput_tcp_4streams",
        "throughput_tcp_reverse",
        "throughput_udp",
    ]
    .iter()
    .map(|case| {
        let sent = fixture(&format!("{case}.esmond.json"));
        let point = &sent["data"]["data"][0];
        let value = point["val"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["event-type"] == "throughput")
            .unwrap();
        (
            point["ts"].as_i64().unwrap(),
            value["val"].as_f64().unwrap().trunc(),
        )
    })
    .collect();
    want.sort_by_key(|a| a.0);
    assert_eq!(got, want);

    // Sent again (pScheduler re-sends after a lost answer): 200, nothing written twice.
    let again = put_all(&serve, Some(&format!("Basic {basic}")), &bodies);
    assert!(again.iter().all(|a| a.0 == 200 && a.2 == "ok"), "{again:?}");
    assert_eq!(
        get(&serve, &format!("{ROOT}/runs/"))
            .as_array()
            .unwrap()
            .len(),
        11
    );
    assert_eq!(
        get(&serve, &format!("{ROOT}/?limit=100"))
            .as_array()
            .unwrap()
            .len(),
        9
    );
}
}

on_both_stores! {
/// Writes to /logstash are authenticated before the body is read (Basic with a key as
/// the password, a Token, or a trusted network); a refused body is answered with why and
/// nothing of it is stored.
fn logstash_writes_are_authenticated_and_bad_bodies_refused_with_the_reason() {
    let (serve, basic) = archive(&[]);
    let body = fixture_text("rtt_ping.json");
    use base64::Engine;
    let wrong = base64::engine::general_purpose::STANDARD.encode("pscheduler_logstash:nope");
    let answers = put_all(&serve, None, std::slice::from_ref(&body));
    assert_eq!(answers[0].0, 401);
    assert_eq!(
        answers[0].2,
        r#"{"detail":"Authentication credentials were not provided."}"#
    );
    let answers = put_all(
        &serve,
        Some(&format!("Basic {wrong}")),
        std::slice::from_ref(&body),
    );
    assert_eq!(answers[0].0, 401);
    assert_eq!(answers[0].2, r#"{"detail":"Invalid username/password."}"#);
    assert_eq!(get(&serve, &format!("{ROOT}/runs/")), json!([]));

    let mut unresolvable = fixture("rtt_ping.json");
    unresolvable["test"]["spec"]["dest"] = json!("nowhere.invalid");
    unresolvable["id"] = json!("11111111-2222-3333-4444-555555555555");
    let cases = [
        (
            "{}".to_owned(),
            400,
            r#"{"detail":"test (or task.test) is missing"}"#,
        ),
        (
            "not json".to_owned(),
            400,
            r#"{"detail":"JSON parse error - expected ident at line 1 column 2"}"#,
        ),
        (
            unresolvable.to_string(),
            422,
            r#"{"detail":"cannot resolve the destination nowhere.invalid: add it to the archive's host map (--hosts)"}"#,
        ),
    ];
    let bodies: Vec<String> = cases.iter().map(|c| c.0.clone()).collect();
    let answers = put_all(&serve, Some(&format!("Basic {basic}")), &bodies);
    for ((_, status, detail), answer) in cases.iter().zip(&answers) {
        assert_eq!((answer.0, answer.2.as_str()), (*status, *detail));
        assert_eq!(answer.1, "application/json");
    }
    assert_eq!(get(&serve, &format!("{ROOT}/runs/")), json!([]));
    let log = serve.log_text();
    assert!(
        log.contains("logstash: refused run 11111111-2222-3333-4444-555555555555: cannot resolve the destination nowhere.invalid: add it to the archive's host map (--hosts) (422)"),
        "{log}"
    );
    // GET is not a write: 405, as Logstash's Apache front answers no GET either.
    let (status, text) = serve.call("GET", "/logstash", None, false);
    assert_eq!(
        (status, text.as_str()),
        (405, r#"{"detail":"Method \"GET\" not allowed."}"#)
    );
    // A Token works as for every other write, and POST as PUT.
    let (status, text) = serve.call("POST", "/logstash/", Some(&body), true);
    assert_eq!((status, text.as_str()), (200, "ok"));
    assert_eq!(
        get(&serve, &format!("{ROOT}/runs/"))
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
}

on_both_stores! {
/// `--strict-esmond` stores what esmond stored: the event types the archiver sends
/// without registering them are dropped, as esmond dropped them.
fn strict_esmond_drops_what_the_archiver_never_registered() {
    let (serve, basic) = archive(&["--strict-esmond"]);
    let body = fixture_text("throughput_tcp_4streams.json");
    let answers = put_all(&serve, Some(&format!("Basic {basic}")), &[body]);
    assert_eq!(answers[0].0, 200);
    let href = fixture("throughput_tcp_4streams.json")["run"]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = run_by_href(&serve, &href)["metadata-key"]
        .as_str()
        .unwrap()
        .to_owned();
    let metadata = get(&serve, &format!("{ROOT}/{key}/"));
    let types: Vec<&str> = metadata["event-types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|et| et["event-type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types.len(),
        fixture("throughput_tcp_4streams.esmond.json")["metadata"]["event-types"]
            .as_array()
            .unwrap()
            .len()
    );
    assert!(!types.contains(&"streams-packet-rtt"), "{types:?}");
}
}

/// esmond-audit finds exactly the runs removed from an archive, says why for the one it
/// refused and for one it never received, and checks measurement records value by value.
#[test]
fn the_audit_finds_exactly_the_runs_removed_from_an_archive() {
    let (serve, basic) = archive(&[]);
    let template = fixture("rtt_ping.json");
    let mut bodies = Vec::new();
    let mut hrefs = Vec::new();
    for i in 0..40 {
        let mut body = template.clone();
        let id = format!("00000000-0000-4000-8000-{i:012}");
        let href = format!("https://ps-a.example.net/pscheduler/tasks/t/runs/{id}");
        body["id"] = json!(id);
        body["run"]["href"] = json!(href);
        body["schedule"]["start"] = json!(format!("2026-12-01T03:{:02}:00+00:00", i));
        bodies.push(body.to_string());
        hrefs.push(href);
    }
    let mut refused = template.clone();
    refused["id"] = json!("00000000-0000-4000-8000-999999999999");
    refused["run"]["href"] = json!(
        "https://ps-a.example.net/pscheduler/tasks/t/runs/00000000-0000-4000-8000-999999999999"
    );
    refused["test"]["spec"]["dest"] = json!("nowhere.invalid");
    bodies.push(refused.to_string());
    let answers = put_all(&serve, Some(&format!("Basic {basic}")), &bodies);
    assert!(answers[..40].iter().all(|a| a.0 == 200), "{answers:?}");
    assert_eq!(answers[40].0, 422);

    // Five runs disappear from the archive (by hand, as a lost disk block or an operator
    // would lose them).
    let removed = [3usize, 7, 19, 20, 39];
    {
        let db = rusqlite::Connection::open(serve.data.join("archive.sqlite")).unwrap();
        db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        for i in removed {
            let n = db
                .execute("DELETE FROM run WHERE run_href = ?1", [&hrefs[i]])
                .unwrap();
            assert_eq!(n, 1);
        }
    }
    let never =
        "https://ps-a.example.net/pscheduler/tasks/t/runs/00000000-0000-4000-8000-888888888888";
    let mut expected: Vec<String> = hrefs.clone();
    expected.push(refused["run"]["href"].as_str().unwrap().to_owned());
    expected.push(never.to_owned());
    let list = serve.dir.path().join("expected.txt");
    std::fs::write(&list, expected.join("\n") + "\n").unwrap();
    let out = Command::new(bin_path("esmond-audit"))
        .args(["-U", &format!("http://{}", serve.addr())])
        .arg(&list)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let found: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut want: Vec<Value> = removed
        .iter()
        .map(|&i| {
            json!({"line": format!("{}:{}", list.display(), i + 1), "status": "missing", "run": hrefs[i], "detail": "never received"})
        })
        .collect();
    let at = |n: usize| format!("{}:{n}", list.display());
    let refusal = &found[found.len() - 2]["detail"];
    let refusal = refusal.as_str().unwrap();
    assert!(refusal.starts_with("refused (422) at 20"), "{refusal}");
    assert!(
        refusal.ends_with(": cannot resolve the destination nowhere.invalid: add it to the archive's host map (--hosts)"),
        "{refusal}"
    );
    want.push(json!({"line": at(41), "status": "missing", "run": expected[40], "detail": refusal}));
    want.push(
        json!({"line": at(42), "status": "missing", "run": never, "detail": "never received"}),
    );
    assert_eq!(found, want);
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "esmond-audit: error: 42 expected: 35 present, 7 missing, 0 different\n"
    );

    // Measurement records, as esmond-get writes them: present, then one point lost and one
    // value changed.
    let records = esmond_get(&serve, "packet-count-sent");
    assert_success(&records);
    let records: Vec<Value> = String::from_utf8(records.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The removed runs' points are still there: 40.
    assert_eq!(records.len(), 40);
    let file = serve.dir.path().join("records.ndjson");
    let write = |records: &[Value]| {
        let text: String = records.iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(&file, text).unwrap();
    };
    write(&records);
    let audit = || {
        Command::new(bin_path("esmond-audit"))
            .args(["-U", &format!("http://{}", serve.addr()), "-k", &serve.key])
            .arg(&file)
            .output()
            .unwrap()
    };
    let out = audit();
    assert_success(&out);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "");
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "esmond-audit: 40 expected: 40 present, 0 missing, 0 different\n"
    );
    let mut changed = records.clone();
    changed[4]["values"]["packet-count-sent"] = json!(11);
    write(&changed);
    let lost_ts = records[9]["ts"].as_i64().unwrap();
    {
        let db = rusqlite::Connection::open(serve.data.join("archive.sqlite")).unwrap();
        db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        let n = db
            .execute(
                "DELETE FROM point WHERE ts = ?1 AND series_id IN (SELECT id FROM series WHERE event_type = 'packet-count-sent' AND summary = 'base')",
                [lost_ts],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    let out = audit();
    assert_eq!(out.status.code(), Some(1));
    let found: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let statuses: Vec<(String, String, String)> = found
        .iter()
        .map(|f| {
            (
                f["line"].as_str().unwrap().to_owned(),
                f["status"].as_str().unwrap().to_owned(),
                f["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(statuses.len(), 2, "{found:?}");
    assert_eq!(statuses[0].0, format!("{}:5", file.display()));
    assert_eq!(statuses[0].1, "different");
    assert!(
        statuses[0].2.ends_with(&format!(
            "holds another packet-count-sent at {}: 10.0, not 11",
            records[4]["ts"]
        )),
        "{}",
        statuses[0].2
    );
    assert_eq!(statuses[1].0, format!("{}:10", file.display()));
    assert_eq!(statuses[1].1, "missing");
    assert!(
        statuses[1]
            .2
            .ends_with(&format!("has no packet-count-sent at {lost_ts}")),
        "{}",
        statuses[1].2
    );
}

on_both_stores! {
/// Retention by policy takes pScheduler runs with their metadata's points: the runs of
/// kept series stay, the others go, and a refusal younger than the default stays.
fn retention_takes_runs_with_their_points_and_keeps_what_a_rule_keeps() {
    let (mut serve, basic) = archive(&[]);
    let bodies: Vec<String> = cases().iter().map(|c| fixture_text(c)).collect();
    let answers = put_all(&serve, Some(&format!("Basic {basic}")), &bodies);
    assert!(answers.iter().all(|a| a.0 == 200), "{answers:?}");
    let refused = put_all(&serve, Some(&format!("Basic {basic}")), &["[1]".to_owned()]);
    assert_eq!(refused[0].0, 400);
    serve.server.take().unwrap().stop();
    let hosts = serve.dir.path().join("hosts");
    // The fixtures ran on 2026-12-01: three days' retention takes them all, but iperf3's.
    serve.launch(&[
        "--hosts",
        hosts.to_str().unwrap(),
        "--retention",
        "3",
        "--keep",
        "tool-name=pscheduler/iperf3:forever",
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let deleted = loop {
        let log = serve.log_text();
        if let Some(line) = log
            .lines()
            .find(|l| l.starts_with("esmond-serve: retention: deleted "))
        {
            break line.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "{log}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(
        deleted.ends_with(" points, 6 runs and 0 refusals past their time"),
        "{deleted}"
    );
    for case in cases() {
        let result = fixture(&case);
        let found = runs_by_href(&serve, result["run"]["href"].as_str().unwrap());
        let kept = result["test"]["type"] == "throughput";
        assert_eq!(found.len(), usize::from(kept), "{case}: {found:?}");
    }
}
}

on_both_stores! {
/// The real esmond-client 4.2.1 (Python 2.7) reads what pScheduler's http archiver sent
/// as measpipe's esmond-get reads it: the same rows, in human and CSV form, for every
/// event type the fixtures' latency, rtt, throughput and trace results produced.
fn the_real_esmond_client_reads_pscheduler_results_as_esmond_get_does() {
    let Some(python) =
        common::python27_with("esmond_client.perfsonar.query", "esmond-client 4.2.1")
    else {
        return;
    };
    let scripts = std::path::Path::new(&python).parent().unwrap().to_owned();
    let (serve, basic) = archive(&[]);
    let bodies: Vec<String> = cases().iter().map(|c| fixture_text(c)).collect();
    for answer in put_all(&serve, Some(&format!("Basic {basic}")), &bodies) {
        assert_eq!(answer.0, 200, "{answer:?}");
    }
    let url = format!("http://{}", serve.addr());
    let window = ["-S", "2026-11-30", "-E", "2026-12-02"];
    let pair = ["-s", "198.51.100.10", "-d", "203.0.113.20"];
    let mut compared = 0;
    for event in [
        "throughput",
        "packet-retransmits",
        "failures",
        "histogram-owdelay",
        "histogram-rtt",
        "packet-loss-rate",
        "packet-count-sent",
        "packet-trace",
        "path-mtu",
    ] {
        for format in ["human", "csv"] {
            let args: Vec<&str> = pair
                .iter()
                .chain(&["-e", event, "-o", format])
                .chain(&window)
                .copied()
                .collect();
            let theirs = Command::new(&python)
                .arg(scripts.join("esmond-ps-get"))
                .args(["-u", &url])
                .args(&args)
                .output()
                .unwrap();
            assert!(
                theirs.status.success(),
                "esmond-ps-get {args:?}: {}",
                String::from_utf8_lossy(&theirs.stderr)
            );
            let ours = Command::new(bin_path("esmond-get"))
                .args(["-u", &url])
                .args(&args)
                .output()
                .unwrap();
            assert_success(&ours);
            let (theirs, ours) = (
                String::from_utf8(theirs.stdout).unwrap(),
                String::from_utf8(ours.stdout).unwrap(),
            );
            assert!(!ours.trim().is_empty(), "{event}: no rows");
            let rows = |text: &str| {
                let text = python_dicts_sorted(text);
                let mut rows: Vec<String> = match format {
                    "human" => text
                        .split("= + = + = + = + = + =\n")
                        .map(|b| b.trim_end().to_owned())
                        .collect(),
                    _ => text.split("\r\n").map(str::to_owned).collect(),
                };
                rows.sort();
                rows
            };
            assert_eq!(rows(&ours), rows(&theirs), "{event} -o {format}");
            compared += 1;
        }
    }
    assert_eq!(compared, 18);
}
}

/// `text` with the entries of every Python dict repr (`{u'a': 1, u'b': 2}`) in sorted
/// order, innermost first: Python 2 prints a dict in its hash order, esmond-get in the
/// order the archive sent it (a documented difference; the entries must be the same).
fn python_dicts_sorted(text: &str) -> String {
    let mut text = text.to_owned();
    while let Some(end) = text.find('}') {
        let start = text[..end].rfind('{').expect("a dict's opening brace");
        let mut entries: Vec<&str> = text[start + 1..end].split(", ").collect();
        entries.sort();
        // Marked as done with other brackets, so the next pass finds the next dict.
        let sorted = format!("\u{ab}{}\u{bb}", entries.join(", "));
        text.replace_range(start..=end, &sorted);
    }
    text
}
