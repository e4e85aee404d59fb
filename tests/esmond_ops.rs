//! esmond-serve's operations: online backup and restore.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use common::serve::Serve;
use serde_json::{json, Value};

fn metadata(source: &str) -> String {
    json!({"subject-type": "point-to-point", "source": source, "destination": "10.0.0.2",
           "tool-name": "ops", "measurement-agent": source, "input-source": "a",
           "input-destination": "b", "event-types": [{"event-type": "throughput", "summaries": []}]})
    .to_string()
}

/// Creates a metadata; its key.
fn create(serve: &Serve, source: &str) -> String {
    let (status, created) = serve.call(
        "POST",
        "/esmond/perfsonar/archive/",
        Some(&metadata(source)),
        true,
    );
    assert_eq!(status, 201, "{created}");
    serde_json::from_str::<Value>(&created).unwrap()["metadata-key"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The bulk body of `stamps`, each point's value its time.
fn body(stamps: impl Iterator<Item = u64>) -> String {
    let data: Vec<Value> = stamps
        .map(|ts| json!({"ts": ts, "val": [{"event-type": "throughput", "val": ts}]}))
        .collect();
    json!({ "data": data }).to_string()
}

/// A metadata's stored throughput points, time → value (read 100,000 seconds at a time).
fn stored(serve: &Serve, key: &str) -> BTreeMap<u64, f64> {
    let mut points = BTreeMap::new();
    for start in (0..3_000_000u64).step_by(100_000) {
        let (status, text) = serve.call(
            "GET",
            &format!(
                "/esmond/perfsonar/archive/{key}/throughput/base?time-start={start}&time-end={}&limit=200000",
                start + 99_999
            ),
            None,
            false,
        );
        assert_eq!(status, 200, "{text}");
        points.extend(
            serde_json::from_str::<Vec<Value>>(&text)
                .unwrap()
                .iter()
                .map(|p| (p["ts"].as_u64().unwrap(), p["val"].as_f64().unwrap())),
        );
    }
    points
}

fn backup(data: &Path, dest: &Path) -> std::process::Output {
    Command::new(common::bin_path("esmond-serve"))
        .arg("--data")
        .arg(data)
        .arg("backup")
        .arg(dest)
        .output()
        .unwrap()
}

#[test]
fn a_backup_under_writes_restores_every_acknowledged_point() {
    let serve = Serve::start(&[]);
    // Some bulk first, so the copy takes a while: 400,000 points of one metadata.
    let bulk = create(&serve, "10.0.0.1");
    for batch in 0..400u64 {
        let (status, text) = serve.call(
            "PUT",
            &format!("/esmond/perfsonar/archive/{bulk}/"),
            Some(&body((0..1000).map(|i| 1_000_000 + batch * 1000 + i))),
            true,
        );
        assert_eq!(status, 201, "{text}");
    }
    // Two writers go on writing one point per request while the backup runs.
    let keys = [create(&serve, "10.0.1.1"), create(&serve, "10.0.2.1")];
    let acknowledged: [Mutex<Vec<u64>>; 2] = Default::default();
    let (stop, started) = (AtomicBool::new(false), AtomicUsize::new(0));
    let backup_dir = serve.dir.path().join("backup");
    let (before, during, output) = std::thread::scope(|scope| {
        for (key, acks) in keys.iter().zip(&acknowledged) {
            let (serve, stop, started) = (&serve, &stop, &started);
            scope.spawn(move || {
                for ts in 2_000_000u64.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let put = serve.call(
                        "PUT",
                        &format!("/esmond/perfsonar/archive/{key}/"),
                        Some(&body(std::iter::once(ts))),
                        true,
                    );
                    assert_eq!(put.0, 201, "{}", put.1);
                    acks.lock().unwrap().push(ts);
                    started.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        // Each writer has been answered a few times before the backup begins.
        while acknowledged.iter().any(|a| a.lock().unwrap().len() < 20) {
            std::thread::yield_now();
        }
        let before: Vec<Vec<u64>> = acknowledged
            .iter()
            .map(|a| a.lock().unwrap().clone())
            .collect();
        let at_start = started.load(Ordering::SeqCst);
        let output = backup(&serve.data, &backup_dir);
        let during = started.load(Ordering::SeqCst) - at_start;
        stop.store(true, Ordering::SeqCst);
        (before, during, output)
    });
    common::assert_success(&output);
    eprintln!("{during} writes answered while the backup ran");
    let said = String::from_utf8(output.stderr).unwrap();
    let copy = backup_dir.join("archive.sqlite");
    assert!(
        said.starts_with(&format!("esmond-serve: backup: {} (", copy.display()))
            && said.ends_with(" s\n")
            && said.lines().count() == 1,
        "{said}"
    );
    assert!(during > 0, "no write was answered while the backup ran");
    assert!(!backup_dir.join("archive.sqlite.partial").exists());
    let check: String = rusqlite::Connection::open(&copy)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");

    // A server started on the copy has every point answered before the backup began, the
    // bulk whole, and writes nothing half: each point it has was sent.
    let restored = Serve::start_in(tempfile::tempdir().unwrap(), Some(backup_dir.clone()), &[]);
    let points = stored(&restored, &bulk);
    assert_eq!(points.len(), 400_000);
    assert!(points.iter().all(|(ts, val)| *ts as f64 == *val));
    for ((key, before), acks) in keys.iter().zip(&before).zip(&acknowledged) {
        let points = stored(&restored, key);
        let missing: Vec<&u64> = before
            .iter()
            .filter(|ts| !points.contains_key(ts))
            .collect();
        assert_eq!(missing, Vec::<&u64>::new());
        let sent = acks.lock().unwrap().len() as u64 + 1;
        assert!(points.len() as u64 <= sent);
        assert!(points
            .iter()
            .all(|(ts, val)| *ts >= 2_000_000 && *ts < 2_000_000 + sent && *ts as f64 == *val));
    }
    // The restored archive takes writes (its writer's key was added on the copy).
    let (status, text) = restored.call(
        "PUT",
        &format!("/esmond/perfsonar/archive/{bulk}/"),
        Some(&body(std::iter::once(5))),
        true,
    );
    assert_eq!(status, 201, "{text}");
}

#[test]
fn a_backup_refuses_an_occupied_or_locked_destination_and_a_missing_archive() {
    let serve = Serve::start(&[]);
    let dest = serve.dir.path().join("copy");
    common::assert_success(&backup(&serve.data, &dest));
    let again = backup(&serve.data, &dest);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(again.stderr).unwrap(),
        format!(
            "esmond-serve: error: {}: an archive is already there; back up into a new directory\n",
            dest.join("archive.sqlite").display()
        )
    );
    let missing = backup(
        &serve.dir.path().join("nothing"),
        &serve.dir.path().join("c2"),
    );
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(missing.stderr).unwrap(),
        format!(
            "esmond-serve: error: {}: no archive there\n",
            serve.dir.path().join("nothing/archive.sqlite").display()
        )
    );
    // Another backup into the same directory is running: 75, nothing touched.
    let other = serve.dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let lock = std::fs::File::create(other.join("archive.sqlite.lock")).unwrap();
    lock.lock().unwrap();
    let locked = backup(&serve.data, &other);
    assert_eq!(locked.status.code(), Some(75), "{locked:?}");
    assert!(!other.join("archive.sqlite").exists());
    drop(lock);
    common::assert_success(&backup(&serve.data, &other));
}

/// The shipped units, copied into `into` with the binary built here in place of
/// /usr/local/bin/esmond-serve.
fn units(into: &Path) -> Vec<std::path::PathBuf> {
    let shipped = common::repo_root().join("pipelines/systemd");
    let binary = common::bin_path("esmond-serve");
    let mut copies = Vec::new();
    for name in [
        "esmond-serve.service",
        "esmond-serve-backup.service",
        "measpipe-nats-ingest.service",
        "esmond-serve-backup.timer",
    ] {
        let text = std::fs::read_to_string(shipped.join(name)).unwrap();
        let copy = into.join(name);
        std::fs::write(
            &copy,
            text.replace("/usr/local/bin/esmond-serve", binary.to_str().unwrap()),
        )
        .unwrap();
        copies.push(copy);
    }
    copies
}

fn verify(units: &[std::path::PathBuf]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(units)
        .output()
        .unwrap()
}

#[test]
fn the_systemd_units_verify_are_sandboxed_and_their_command_serves() {
    if !common::have("systemd-analyze", "checking the systemd units") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let copies = units(dir.path());
    let verified = verify(&copies);
    assert_eq!(
        (
            verified.status.code(),
            String::from_utf8_lossy(&verified.stderr).as_ref()
        ),
        (Some(0), ""),
    );
    // The check can fail: a misspelt option or a missing binary is reported.
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    let unit = broken.join("esmond-serve.service");
    let text = std::fs::read_to_string(&copies[0]).unwrap();
    std::fs::write(&unit, text.replace("NoNewPrivileges=", "NoNewPrivilege=")).unwrap();
    let said = String::from_utf8(verify(&[unit]).stderr).unwrap();
    assert!(
        said.contains("Unknown key 'NoNewPrivilege' in section [Service]"),
        "{said}"
    );

    // systemd's own rating of the sandboxing: "OK" is below 5; these are well under 2.
    for service in copies
        .iter()
        .filter(|c| c.extension().is_some_and(|e| e == "service"))
    {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(service)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let level: f64 = text
            .lines()
            .find_map(|l| {
                l.split_once("Overall exposure level for ")?
                    .1
                    .split_once(": ")
            })
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level in {text}"));
        assert!(level <= 2.0, "{}: exposure {level}", service.display());
    }

    // The unit's command line, on a directory and port of the test's own, serves and stops
    // gracefully on SIGTERM (what systemctl stop sends).
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let port = common::free_port();
    let data = dir.path().join("state");
    let words: Vec<String> = exec
        .replace("/var/lib/esmond-serve", data.to_str().unwrap())
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut command = Command::new(&words[0]);
    command
        .args(&words[1..])
        .stderr(std::process::Stdio::null());
    let server = common::BackgroundServer::start(command, port, std::time::Duration::from_secs(20));
    let health: String = ureq::get(format!("http://127.0.0.1:{port}/health"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert_eq!(health, r#"{"status":"ok"}"#);
    assert_eq!(server.stop().code(), Some(0));
    assert!(data.join("archive.sqlite").is_file());
}

on_both_stores! {
fn metrics_count_requests_points_and_the_database_and_pass_promtool() {
    let serve = Serve::start(&[]);
    let key = create(&serve, "10.0.0.1");
    let put = |stamps: std::ops::Range<u64>| {
        serve.call(
            "PUT",
            &format!("/esmond/perfsonar/archive/{key}/"),
            Some(&body(stamps)),
            true,
        )
    };
    assert_eq!(put(100..103).0, 201);
    // Two new points, one the same again: 2 more written, not 3.
    assert_eq!(put(102..105).0, 201);
    assert_eq!(
        serve
            .call("GET", "/esmond/perfsonar/archive/nothing/", None, false)
            .0,
        404
    );
    assert_eq!(stored(&serve, &key).len(), 5);
    let (status, text) = serve.call("GET", "/metrics", None, false);
    assert_eq!(status, 200);
    let samples: BTreeMap<&str, f64> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name, value.parse().unwrap())
        })
        .collect();
    let get = |name: &str| {
        *samples
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    assert_eq!(get("esmond_serve_points_written_total"), 5.0);
    assert_eq!(
        get(r#"esmond_serve_requests_total{method="POST",status="201"}"#),
        1.0
    );
    assert_eq!(
        get(r#"esmond_serve_requests_total{method="PUT",status="201"}"#),
        2.0
    );
    assert_eq!(
        get(r#"esmond_serve_requests_total{method="GET",status="404"}"#),
        1.0
    );
    // stored() reads 30 windows; the health probe of the start is a GET 200 as well.
    let reads = get(r#"esmond_serve_requests_total{method="GET",status="200"}"#);
    assert!(reads >= 30.0, "{reads}");
    assert_eq!(
        get(r#"esmond_serve_request_duration_seconds_count{method="PUT"}"#),
        2.0
    );
    assert_eq!(
        get(r#"esmond_serve_request_duration_seconds_bucket{method="PUT",le="+Inf"}"#),
        2.0
    );
    let size = match &serve.store.url {
        Some(url) => {
            let mut db = postgres::Client::connect(url, postgres::NoTls).unwrap();
            let size: i64 = db
                .query_one("SELECT pg_database_size(current_database())", &[])
                .unwrap()
                .get(0);
            size as f64
        }
        None => std::fs::metadata(serve.data.join("archive.sqlite"))
            .unwrap()
            .len() as f64,
    };
    assert!(get(r#"esmond_serve_database_bytes{file="database"}"#) > 0.0);
    assert!(get(r#"esmond_serve_database_bytes{file="database"}"#) <= size);
    assert!(text.contains("# TYPE esmond_serve_request_duration_seconds histogram\n"));
    // Prometheus' own linter accepts it as it is.
    if common::have("promtool", "checking /metrics") {
        let mut check = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        check
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = check.wait_with_output().unwrap();
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).as_ref()
            ),
            (Some(0), ""),
            "{text}"
        );
    }
}
}

on_both_stores! {
/// (On PostgreSQL the space is the database server's to reuse: no file to measure.)
fn retention_rules_keep_each_series_its_time_and_shrink_the_file() {
    let mut serve = Serve::start(&[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let day = 86_400;
    let put = |key: &str, points: Vec<Value>| {
        let (status, text) = serve.call(
            "PUT",
            &format!("/esmond/perfsonar/archive/{key}/"),
            Some(&json!({ "data": points }).to_string()),
            true,
        );
        assert_eq!(status, 201, "{text}");
    };
    let throughput = |from: u64| -> Vec<Value> {
        (0..100)
            .map(|i| json!({"ts": from + i * 60, "val": [{"event-type": "throughput", "val": i}]}))
            .collect()
    };
    // A: kept forever by its rule; B: the default, 30 days; C: its rule, 200 days.
    let a = create(&serve, "10.0.0.1");
    put(&a, throughput(now - 100 * day));
    put(&a, throughput(now - day));
    let b_metadata = metadata("10.0.0.2").replace(
        r#"[{"event-type":"throughput","summaries":[]}]"#,
        r#"[{"event-type":"throughput","summaries":[]},{"event-type":"failures","summaries":[]}]"#,
    );
    let (status, created) = serve.call(
        "POST",
        "/esmond/perfsonar/archive/",
        Some(&b_metadata),
        true,
    );
    assert_eq!(status, 201, "{created}");
    let b = serde_json::from_str::<Value>(&created).unwrap()["metadata-key"]
        .as_str()
        .unwrap()
        .to_owned();
    put(&b, throughput(now - 100 * day));
    put(&b, throughput(now - day));
    let failures: Vec<Value> = (0..20_000)
        .map(|i| json!({"ts": now - 90 * day + i, "val": [{"event-type": "failures", "val": {"error": "x".repeat(200)}}]}))
        .collect();
    put(&b, failures);
    let c = create(&serve, "10.0.0.3");
    put(&c, throughput(now - 250 * day));
    put(&c, throughput(now - 100 * day));

    serve.server.take().unwrap().stop();
    let file = serve.data.join("archive.sqlite");
    let on_sqlite = serve.store.url.is_none();
    let size = || match on_sqlite {
        true => std::fs::metadata(&file).unwrap().len(),
        false => 0,
    };
    let before = size();
    serve.launch(&[
        "--retention",
        "30",
        "--keep",
        "source=10.0.0.1:forever",
        "--keep",
        "source=10.0.0.3:200",
    ]);
    // The first pass runs at start: wait for its line.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let done =
        "esmond-serve: retention: deleted 20200 points, 0 runs and 0 refusals past their time";
    while !serve
        .log_text()
        .lines()
        .any(|l| l.starts_with("esmond-serve: retention: deleted"))
    {
        assert!(std::time::Instant::now() < deadline, "{}", serve.log_text());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let log = serve.log_text();
    assert!(log.lines().any(|l| l == done), "{log}");
    assert!(
        log.lines().any(|l| l
            == "esmond-serve: retention: source=10.0.0.1: forever; source=10.0.0.3: 200 days; everything else: 30 days"),
        "{log}"
    );
    let times = |key: &str, event_type: &str| -> Vec<u64> {
        let (status, text) = serve.call(
            "GET",
            &format!("/esmond/perfsonar/archive/{key}/{event_type}/base?time-start=0&time-end={}&limit=100000", now + day),
            None,
            false,
        );
        assert_eq!(status, 200, "{text}");
        serde_json::from_str::<Vec<Value>>(&text)
            .unwrap()
            .iter()
            .map(|p| p["ts"].as_u64().unwrap())
            .collect()
    };
    let from = |start: u64| (0..100).map(|i| start + i * 60).collect::<Vec<u64>>();
    assert_eq!(
        times(&a, "throughput"),
        [from(now - 100 * day), from(now - day)].concat()
    );
    assert_eq!(times(&b, "throughput"), from(now - day));
    assert_eq!(times(&b, "failures"), Vec::<u64>::new());
    assert_eq!(times(&c, "throughput"), from(now - 100 * day));
    let after = size();
    assert!(after <= before / 2, "{before} → {after} bytes");
}
}
