//! esmond-serve exposed: slow and idle clients bounded in time, a connection cap, writes
//! authenticated before their bodies are read, plain messages for what SQLite refuses, both
//! API roots, HEAD and a health check, and a full disk (issue 14).

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::serve::Serve;
use serde_json::{json, Value};

const METADATA: &str = r#"{"subject-type": "point-to-point", "source": "10.0.0.1", "destination": "10.0.0.2", "tool-name": "hardening", "measurement-agent": "10.0.0.1", "input-source": "a", "input-destination": "b", "event-types": [{"event-type": "throughput", "summaries": []}]}"#;

on_both_stores! {
fn a_silent_connection_is_closed_after_the_request_timeout() {
    let serve = Serve::start(&["--request-timeout", "1", "--idle-timeout", "30"]);
    let (_, took) = common::until_closed(serve.connect());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
}
}

on_both_stores! {
fn headers_sent_a_byte_at_a_time_are_cut_off() {
    let serve = Serve::start(&["--request-timeout", "1", "--idle-timeout", "30"]);
    let mut stream = serve.connect();
    stream.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
    let writer = stream.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        let mut writer = writer;
        for byte in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            .iter()
            .cycle()
            .take(100)
        {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let (_, took) = common::until_closed(stream);
    assert!(took < Duration::from_secs(4), "{took:?}");
    trickle.join().unwrap();
}
}

on_both_stores! {
fn a_body_sent_a_byte_at_a_time_gets_408() {
    let serve = Serve::start(&["--request-timeout", "1", "--idle-timeout", "30"]);
    let mut stream = serve.connect();
    write!(
        stream,
        "POST /esmond/perfsonar/archive/ HTTP/1.1\r\nHost: x\r\nAuthorization: Token {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{",
        serve.key
    )
    .unwrap();
    let writer = stream.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        let mut writer = writer;
        for _ in 0..50 {
            if writer.write_all(b" ").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let started = Instant::now();
    let mut got = vec![0u8; 4096];
    let n = stream.read(&mut got).unwrap();
    let head = String::from_utf8_lossy(&got[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 408 "), "{head}");
    assert!(
        head.ends_with(r#"{"detail":"Request body not received within 1 s"}"#),
        "{head}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    drop(stream);
    trickle.join().unwrap();
}
}

on_both_stores! {
fn an_idle_keep_alive_connection_is_closed() {
    let serve = Serve::start(&["--request-timeout", "30", "--idle-timeout", "1"]);
    let mut stream = serve.connect();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (got, took) = common::until_closed(stream);
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.ends_with(r#"{"status":"ok"}"#), "{got}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
}
}

on_both_stores! {
fn connections_beyond_the_cap_are_closed_at_once_and_logged() {
    let serve = Serve::start(&[
        "--max-connections",
        "8",
        "--request-timeout",
        "30",
        "--idle-timeout",
        "3",
    ]);
    let held = common::held_connections(serve.addr(), 8);
    let (got, took) = common::until_closed(serve.connect());
    assert_eq!(got, "");
    assert!(took < Duration::from_secs(1), "{took:?}");
    let log = serve.log_text();
    assert!(
        log.lines()
            .any(|l| l.starts_with("esmond-serve: warning: 127.0.0.1:")
                && l.ends_with(
                    ": refused: 8 connections open (--max-connections); 1 refused so far"
                )),
        "{log}"
    );
    // The idle ones are closed in time, and clients are served again.
    for stream in held {
        let (_, took) = common::until_closed(stream);
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
    assert_eq!(serve.call("GET", "/health", None, false).0, 200);
}
}

on_both_stores! {
fn a_write_is_authenticated_before_its_body_is_read() {
    let serve = Serve::start(&[]);
    // Headers announcing 60 MB, and no body: the answer comes at once.
    for (authorization, status, detail) in [
        ("", 401, "Authentication credentials were not provided."),
        ("Authorization: Token wrong\r\n", 401, "Invalid token."),
    ] {
        let mut stream = serve.connect();
        write!(
            stream,
            "PUT /esmond/perfsonar/archive/abc/ HTTP/1.1\r\nHost: x\r\n{authorization}Content-Type: application/json\r\nContent-Length: 60000000\r\n\r\n"
        )
        .unwrap();
        let mut got = vec![0u8; 4096];
        let n = stream.read(&mut got).unwrap();
        let head = String::from_utf8_lossy(&got[..n]).into_owned();
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        assert!(
            head.ends_with(&json!({"detail": detail}).to_string()),
            "{head}"
        );
    }
    // With a key, a body larger than --max-body is refused unread too.
    let mut stream = serve.connect();
    write!(
        stream,
        "PUT /esmond/perfsonar/archive/abc/ HTTP/1.1\r\nHost: x\r\nAuthorization: Token {}\r\nContent-Type: application/json\r\nContent-Length: 600000000\r\n\r\n",
        serve.key
    )
    .unwrap();
    let mut got = vec![0u8; 4096];
    let n = stream.read(&mut got).unwrap();
    let head = String::from_utf8_lossy(&got[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 413 "), "{head}");
    assert!(
        head.ends_with(r#"{"detail":"Request body larger than 67108864 bytes"}"#),
        "{head}"
    );
}
}

on_both_stores! {
fn thousands_of_filters_get_a_plain_400_and_no_internal_text() {
    let serve = Serve::start(&[]);
    let filters: Vec<String> = (0..3000).map(|i| format!("p{i}=v")).collect();
    let (status, body) = serve.call(
        "GET",
        &format!("/esmond/perfsonar/archive/?{}", filters.join("&")),
        None,
        false,
    );
    assert_eq!(status, 400);
    assert_eq!(body, r#"{"detail":"Too many filters: 3000 (at most 64)"}"#);
}
}

on_both_stores! {
fn both_roots_head_and_a_health_check() {
    let serve = Serve::start(&[]);
    let (status, created) = serve.call("POST", "/perfsonar/archive/", Some(METADATA), true);
    assert_eq!(status, 201, "{created}");
    let key = serde_json::from_str::<Value>(&created).unwrap()["metadata-key"]
        .as_str()
        .unwrap()
        .to_owned();
    // Each root names its own URIs, so a client follows them under the root it used.
    for root in ["/perfsonar/archive", "/esmond/perfsonar/archive"] {
        let (status, body) = serve.call("GET", &format!("{root}/{key}/"), None, false);
        assert_eq!(status, 200);
        let metadata: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(metadata["uri"], format!("{root}/{key}/"));
    }
    // HEAD: GET's status and length, no body.
    let mut stream = serve.connect();
    write!(
        stream,
        "HEAD /esmond/perfsonar/archive/{key}/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        serve.addr()
    )
    .unwrap();
    let (head, _) = common::until_closed(stream);
    let (_, get) = serve.call(
        "GET",
        &format!("/esmond/perfsonar/archive/{key}/"),
        None,
        false,
    );
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-length: {}\r\n", get.len())),
        "{head}"
    );
    assert!(head.ends_with("\r\n\r\n"), "{head}");
    assert_eq!(
        serve.call("GET", "/health", None, false),
        (200, r#"{"status":"ok"}"#.to_owned())
    );
    assert_eq!(
        serve.call("HEAD", "/health", None, false),
        (200, String::new())
    );
}
}

on_both_stores! {
/// An identical point sent again is a no-op answered 201, not esmond's 409: the write is
/// idempotent, so a client that retries after a lost answer is not told it failed. A
/// different value at the same time is a conflict, 409, and the stored value stays.
fn an_identical_resend_is_201_and_a_different_value_409() {
    let serve = Serve::start(&[]);
    let (_, created) = serve.call("POST", "/esmond/perfsonar/archive/", Some(METADATA), true);
    let key = serde_json::from_str::<Value>(&created).unwrap()["metadata-key"]
        .as_str()
        .unwrap()
        .to_owned();
    let put = |val: u64| {
        serve.call(
            "PUT",
            &format!("/esmond/perfsonar/archive/{key}/"),
            Some(
                &json!({"data": [{"ts": 100, "val": [{"event-type": "throughput", "val": val}]}]})
                    .to_string(),
            ),
            true,
        )
    };
    assert_eq!(put(5).0, 201);
    assert_eq!(put(5), (201, "\"\"".to_owned()));
    let (status, body) = put(6);
    assert_eq!(status, 409, "{body}");
    let (_, stored) = serve.call(
        "GET",
        &format!("/esmond/perfsonar/archive/{key}/throughput/base?time-start=0"),
        None,
        false,
    );
    assert_eq!(
        serde_json::from_str::<Value>(&stored).unwrap(),
        json!([{"ts": 100, "val": 5.0}])
    );
}
}

/// A small tmpfs for the archive (needs root to mount).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(Stdio::piped())
            .output()
            .ok()?;
        if !out.status.success() {
            assert!(
                std::env::var("MEASPIPE_REQUIRE_LIVE").as_deref() != Ok("1"),
                "cannot mount a tmpfs (root needed): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            common::skipped("disk-full test: cannot mount a tmpfs (needs root)");
            return None;
        }
        Some(Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes points until the archive answers something else than 201; returns the points
/// acknowledged and that answer.
fn fill(serve: &Serve, key: &str, from: u64) -> (Vec<u64>, (u16, String)) {
    let mut acknowledged = Vec::new();
    for batch in 0..100_000u64 {
        let stamps: Vec<u64> = (0..200).map(|i| from + batch * 200 + i).collect();
        let data: Vec<Value> = stamps
            .iter()
            .map(|&ts| json!({"ts": ts, "val": [{"event-type": "throughput", "val": ts}]}))
            .collect();
        let answer = serve.call(
            "PUT",
            &format!("/esmond/perfsonar/archive/{key}/"),
            Some(&json!({ "data": data }).to_string()),
            true,
        );
        if answer.0 != 201 {
            return (acknowledged, answer);
        }
        acknowledged.extend(stamps);
    }
    panic!("the disk never filled");
}

#[test]
fn a_full_disk_degrades_to_reads_and_recovers_losing_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&dir.path().join("disk"), "6m") else {
        return;
    };
    let data = disk.0.join("archive");
    let mut serve = Serve::start_in(dir, Some(data.clone()), &[]);
    let (_, created) = serve.call("POST", "/esmond/perfsonar/archive/", Some(METADATA), true);
    let key = serde_json::from_str::<Value>(&created).unwrap()["metadata-key"]
        .as_str()
        .unwrap()
        .to_owned();
    // Space for the archive to grow into, taken by a file that can be given back.
    let ballast = disk.0.join("ballast");
    std::fs::write(&ballast, vec![0u8; 1 << 20]).unwrap();
    let (mut acknowledged, refused) = fill(&serve, &key, 1_000_000);
    assert!(!acknowledged.is_empty());
    assert_eq!(
        refused,
        (
            507,
            r#"{"detail":"The archive's disk is full: nothing was written; try again when space is freed"}"#.to_owned()
        )
    );
    // kill -9 while full, then start again on the full disk: reads are served, writes
    // refused with the same message.
    let server = serve.server.take().unwrap();
    Command::new("kill")
        .args(["-9", &server.pid().to_string()])
        .status()
        .unwrap();
    drop(server);
    serve.launch(&[]);
    let log = serve.log_text();
    assert!(
        log.lines().any(|l| l == "esmond-serve: warning: the archive's disk is full: serving reads; writes are refused (507) until space is freed"),
        "{log}"
    );
    let (status, _) = serve.call(
        "GET",
        &format!("/esmond/perfsonar/archive/{key}/"),
        None,
        false,
    );
    assert_eq!(status, 200);
    assert_eq!(
        fill(&serve, &key, 5_000_000).1 .0,
        507,
        "{}",
        serve.log_text()
    );
    // Space comes back: writes work again, without a restart.
    std::fs::remove_file(&ballast).unwrap();
    let (more, _) = fill(&serve, &key, 9_000_000);
    assert!(!more.is_empty());
    acknowledged.extend(more);
    // Every acknowledged point is there.
    let (_, stored) = serve.call(
        "GET",
        &format!("/esmond/perfsonar/archive/{key}/throughput/base?time-start=0&time-end=2000000000&limit=10000000"),
        None,
        false,
    );
    let stored: Vec<u64> = serde_json::from_str::<Value>(&stored)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["ts"].as_u64().unwrap())
        .collect();
    for ts in &acknowledged {
        assert!(
            stored.binary_search(ts).is_ok(),
            "acknowledged {ts} missing"
        );
    }
    drop(serve);
}

on_both_stores! {
/// measpipe's batch API: records of any metadata in one request, a status per line, the
/// bad ones set aside without stopping the rest, the same again answered `duplicate`.
fn the_batch_api_answers_each_record_and_is_idempotent() {
    let serve = Serve::start(&[]);
    let record = |destination: &str, ts: u64, val: Value| {
        json!({"kind": "measurement", "metadata": {"subject-type": "point-to-point",
            "source": "10.0.0.1", "destination": destination, "tool-name": "batch",
            "measurement-agent": "10.0.0.1", "input-source": "a", "input-destination": "b",
            "event-types": [{"event-type": "throughput", "summaries": []}]},
            "ts": ts, "values": {"throughput": val}})
        .to_string()
    };
    let body = [
        record("10.0.0.2", 100, json!(5)),
        record("10.0.0.3", 100, json!(7)),
        record("not-an-address", 100, json!(1)),
        record("10.0.0.2", 101, json!("fast")),
        record("10.0.0.2", 100, json!(6)),
    ]
    .join("\n");
    // Without a key: refused before the body is read.
    assert_eq!(
        serve
            .call(
                "POST",
                "/esmond/perfsonar/archive/records/",
                Some(&body),
                false
            )
            .0,
        401
    );
    let (status, answer) = serve.call(
        "POST",
        "/esmond/perfsonar/archive/records/",
        Some(&body),
        true,
    );
    assert_eq!(status, 200, "{answer}");
    let lines: Vec<Value> = answer
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let statuses: Vec<&str> = lines
        .iter()
        .map(|l| l["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["stored", "stored", "refused", "refused", "conflict"]
    );
    assert_eq!(
        lines[2],
        json!({"line": 3, "status": "refused", "part": "metadata", "detail": "destination must be an IP address, not 'not-an-address'"})
    );
    assert_eq!(lines[3]["part"], "point");
    assert_eq!(
        lines[4],
        json!({"line": 5, "status": "conflict", "detail": "the archive holds another throughput at 100: 5.0, not 6"})
    );
    // The metadata is the one an esmond-API client finds or creates.
    let (_, created) = serve.call(
        "POST",
        "/esmond/perfsonar/archive/",
        Some(
            &serde_json::from_str::<Value>(&record("10.0.0.2", 0, json!(0))).unwrap()["metadata"]
                .to_string(),
        ),
        true,
    );
    assert_eq!(
        serde_json::from_str::<Value>(&created).unwrap()["metadata-key"],
        lines[0]["metadata-key"]
    );
    // Again: what was stored is a duplicate now; the rest answers as before.
    let (_, again) = serve.call(
        "POST",
        "/esmond/perfsonar/archive/records/",
        Some(&body),
        true,
    );
    let statuses: Vec<String> = again
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        statuses,
        ["duplicate", "duplicate", "refused", "refused", "conflict"]
    );
    // An empty batch answers 200 and nothing (how esmond-post asks for the API).
    assert_eq!(
        serve.call("POST", "/perfsonar/archive/records/", Some(""), true),
        (200, String::new())
    );
}
}
