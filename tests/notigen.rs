//! notigen: the generator's guarantees over a simulated day (through the library API, as a
//! Rust user drives it), and notigen-emit's output (through the binary).

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};

use common::{bin, bin_path, fixture};
use measpipe::notigen::time::{parse_start, DAY};
use measpipe::notigen::{Config, Generator, PayloadMode, TimeFormat};
use serde_json::Value;
use uuid::Uuid;

/// What the test tracks about one instance while replaying the stream.
#[derive(Default)]
struct Life {
    create_request: Option<Uuid>,
    created: bool,
    delete_started: bool,
}

#[test]
fn a_simulated_day_at_100_ops_per_minute_keeps_every_promise() {
    let start = parse_start("2026-03-01T00:00:00Z").unwrap();
    let config = Config {
        ops_per_hour: 6000.0,
        payload: PayloadMode::Seed,
        time_format: TimeFormat::Python,
        seed: Some(11),
    };
    let mut generator = Generator::new(&config, start);
    let end = start + DAY + 3_600_000_000; // past the first midnight
    let mut now = start;
    let mut requests: HashMap<Uuid, i64> = HashMap::new(); // request → last time seen
    let mut operations = HashSet::new();
    let mut lives: HashMap<Uuid, Life> = HashMap::new();
    let mut last_when = i64::MIN;
    let mut exists_at_midnight = Vec::new();
    let mut live_at_midnight = None;
    let (mut events, mut violations, mut early_updates) = (0u64, 0u64, 0u64);
    while now <= end {
        for n in generator.generate(now) {
            events += 1;
            let (when, request, instance) = (n.when(), n.request_id(), n.instance_id());
            assert!(when >= last_when, "events out of time order");
            last_when = when;
            let first_of_request = match requests.insert(request, when) {
                Some(previous) => {
                    assert!(when >= previous, "request {request} out of order");
                    false
                }
                None => true,
            };
            let midnight = start + DAY;
            // The end-of-day batch: single-event requests at midnight (every operation
            // opens with an API compute.instance.update instead).
            if first_of_request && when == midnight && n.event_type() == "compute.instance.exists" {
                if live_at_midnight.is_none() {
                    live_at_midnight = Some(
                        lives
                            .values()
                            .filter(|l| l.created && !l.delete_started)
                            .count(),
                    );
                }
                exists_at_midnight.push(instance);
                let life = &lives[&instance];
                assert!(
                    life.created && !life.delete_started,
                    "exists for a non-live instance"
                );
                continue;
            }
            let life = lives.entry(instance).or_default();
            if life.create_request.is_none() {
                life.create_request = Some(request);
                operations.insert(request);
            }
            let own_create = life.create_request == Some(request);
            if n.event_type() == "compute.instance.update"
                && requests.get(&request) == Some(&when)
                && !own_create
            {
                operations.insert(request);
            }
            if life.delete_started && !own_create {
                // Only the delete's own chain may continue after delete.start.
                if n.event_type() != "compute.instance.delete.start"
                    && !is_delete_chain(n.event_type())
                {
                    violations += 1;
                }
            }
            if !own_create && !life.created {
                early_updates += 1;
            }
            match n.event_type() {
                "compute.instance.create.end" if own_create => life.created = true,
                "compute.instance.delete.start" => life.delete_started = true,
                _ => {}
            }
        }
        now = generator.move_to_next_tick(now);
    }
    let ops_first_day = 24 * 60 * 100;
    let started = generator.operations() as f64;
    let expected = (ops_first_day + 60 * 100) as f64; // 25 simulated hours
    assert!(
        (started - expected).abs() / expected < 0.02,
        "{started} operations for {expected}"
    );
    assert!(
        operations.len() as f64 >= 0.95 * started,
        "{} distinct requests",
        operations.len()
    );
    assert_eq!(violations, 0, "events after delete began");
    assert_eq!(early_updates, 0, "events before create finished");
    assert!(events > 400_000, "{events} events");
    assert!(!exists_at_midnight.is_empty(), "no end-of-day exists batch");
    assert_eq!(
        Some(exists_at_midnight.len()),
        live_at_midnight,
        "one exists per live instance"
    );
    let unique: HashSet<_> = exists_at_midnight.iter().collect();
    assert_eq!(unique.len(), exists_at_midnight.len());
}

fn is_delete_chain(event_type: &str) -> bool {
    matches!(
        event_type,
        "compute.instance.update"
            | "compute.instance.shutdown.start"
            | "compute.instance.shutdown.end"
            | "compute.instance.delete.end"
            | "terminate_instance"
    )
}

fn emit(args: &[&str]) -> String {
    let out = bin("notigen-emit")
        .args(args)
        .assert()
        .success()
        .get_output()
        .clone();
    String::from_utf8(out.stdout).unwrap()
}

fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_same_seed_gives_identical_bytes_and_another_seed_does_not() {
    let a = emit(&["--seed", "42", "--count", "3000"]);
    let b = emit(&["--seed", "42", "--count", "3000"]);
    let c = emit(&["--seed", "43", "--count", "3000"]);
    assert_eq!(a.lines().count(), 3000);
    assert!(a == b, "same seed, different bytes");
    assert_ne!(a, c);
}

#[test]
fn seed_and_full_payloads_describe_the_same_events() {
    let common = ["--seed", "5", "--duration", "2h", "--ops-per-minute", "60"];
    let seed = parse_lines(&emit(&[&common[..], &["--payload", "seed"]].concat()));
    let full = parse_lines(&emit(&[&common[..], &["--payload", "full"]].concat()));
    assert_eq!(seed.len(), full.len());
    assert!(seed.len() > 400);
    let project = |v: &Value| {
        (
            v["event_type"].clone(),
            v["timestamp"].clone(),
            v["_context_request_id"].clone(),
            v["publisher_id"].clone(),
            v["message_id"].clone(),
            v["priority"].clone(),
        )
    };
    for (s, f) in seed.iter().zip(&full) {
        assert_eq!(project(s), project(f));
        let instance = |v: &Value| {
            v["payload"]["instance_id"]
                .as_str()
                .or(v["payload"]["args"]["instance"]["uuid"].as_str())
                .map(str::to_owned)
        };
        assert_eq!(instance(s), instance(f), "{s}\n{f}");
        let keys: Vec<&String> = s["payload"].as_object().unwrap().keys().collect();
        assert!(keys.len() <= 6, "seed payload too big: {keys:?}");
    }
    // The full payload carries the legacy Nova fields.
    let create_end = full
        .iter()
        .find(|v| v["event_type"] == "compute.instance.create.end")
        .unwrap();
    for key in [
        "image_meta",
        "instance_type",
        "memory_mb",
        "launched_at",
        "fixed_ips",
        "state",
        "tenant_id",
        "host",
    ] {
        assert!(
            create_end["payload"].get(key).is_some(),
            "create.end lacks {key}"
        );
    }
    assert_ne!(create_end["payload"]["launched_at"], "");
}

#[test]
fn every_line_is_an_oslo_v1_dict_with_the_stacktach_essentials() {
    let lines = parse_lines(&emit(&["--seed", "9", "--count", "2000"]));
    for v in &lines {
        for key in [
            "message_id",
            "publisher_id",
            "event_type",
            "priority",
            "payload",
            "timestamp",
            "_unique_id",
            "_context_request_id",
            "_context_timestamp",
            "_context_project_id",
        ] {
            assert!(v.get(key).is_some(), "missing {key}: {v}");
        }
        let publisher = v["publisher_id"].as_str().unwrap();
        let (service, host) = publisher.split_once('.').expect("dotted publisher_id");
        assert!(["api", "scheduler", "compute"].contains(&service) && !host.is_empty());
        assert!(v["_context_request_id"]
            .as_str()
            .unwrap()
            .starts_with("req-"));
        let ts = v["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), 26, "python timestamp keeps its fraction: {ts}");
        assert_eq!(&ts[10..11], " ");
    }
}

#[test]
fn the_v2_envelope_wraps_exactly_the_v1_dict() {
    let v1 = emit(&[
        "--seed",
        "3",
        "--count",
        "200",
        "--timestamp-format",
        "rfc3339",
    ]);
    let v2 = emit(&[
        "--seed",
        "3",
        "--count",
        "200",
        "--timestamp-format",
        "rfc3339",
        "--envelope",
        "v2",
    ]);
    for (a, b) in v1.lines().zip(v2.lines()) {
        let outer: Value = serde_json::from_str(b).unwrap();
        assert_eq!(outer["oslo.version"], "2.0");
        assert_eq!(outer["oslo.message"].as_str().unwrap(), a);
        let inner: Value = serde_json::from_str(a).unwrap();
        let ts = inner["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z') && &ts[10..11] == "T", "{ts}");
    }
    bin("record-check").write_stdin(v2).assert().success();
}

#[test]
fn failure_chains_appear_with_priority_error() {
    let lines = parse_lines(&emit(&[
        "--seed",
        "1",
        "--duration",
        "12h",
        "--payload",
        "seed",
    ]));
    let errors: HashSet<&str> = lines
        .iter()
        .filter(|v| v["priority"] == "ERROR")
        .map(|v| v["event_type"].as_str().unwrap())
        .collect();
    for expected in [
        "compute.instance.create.error",
        "scheduler.run_instance",
        "terminate_instance",
    ] {
        assert!(errors.contains(expected), "no {expected} in {errors:?}");
    }
    assert!(
        errors
            .iter()
            .any(|e| e.ends_with("_instance") && *e != "terminate_instance"),
        "{errors:?}"
    );
}

#[test]
fn count_and_duration_stop_the_run() {
    assert_eq!(emit(&["--count", "7"]).lines().count(), 7);
    let lines = parse_lines(&emit(&[
        "--seed",
        "2",
        "--start",
        "2026-05-01 10:00:00",
        "--duration",
        "10min",
        "--payload",
        "seed",
    ]));
    let last = lines.last().unwrap()["timestamp"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(last.as_str() <= "2026-05-01 10:10:00.000000", "{last}");
    assert!(lines[0]["timestamp"] == "2026-05-01 10:00:00.000000");
}

#[test]
fn realtime_mode_writes_notifications_as_the_clock_reaches_them() {
    // 600 operations a minute: a new operation every 100 ms of wall time.
    let started = std::time::Instant::now();
    let out = emit(&[
        "--realtime",
        "--ops-per-minute",
        "600",
        "--duration",
        "1s",
        "--payload",
        "seed",
    ]);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= std::time::Duration::from_millis(900),
        "{elapsed:?}"
    );
    assert!(out.lines().count() >= 8, "{out}");
}

#[test]
fn bad_arguments_are_usage_errors() {
    bin("notigen-emit")
        .args(["--ops-per-minute", "0"])
        .assert()
        .code(2);
    bin("notigen-emit")
        .args(["--start", "yesterday"])
        .assert()
        .code(2);
    bin("notigen-emit")
        .args(["--ops-per-minute", "5", "--ops-per-hour", "5"])
        .assert()
        .code(2);
}

#[test]
fn stackdistiller_accepts_the_output_with_every_trait_filled() {
    let Some(python) = common::python27_with("stackdistiller", "stackdistiller 0.12") else {
        return;
    };
    for args in [
        &["--payload", "full"][..],
        &["--payload", "seed", "--envelope", "v2"][..],
    ] {
        let mut emit = Command::new(bin_path("notigen-emit"))
            .args(["--seed", "4", "--duration", "25h", "--ops-per-minute", "2"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Command::new(&python)
            .arg(fixture("notigen/stackdistiller_check.py"))
            .arg(fixture("notigen/event_definitions.yaml"))
            .stdin(emit.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(emit.wait().unwrap().success());
        common::assert_success(&out);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(report["notifications"].as_u64().unwrap() > 1000, "{report}");
        assert_eq!(report["events"], report["notifications"], "{report}");
        assert_eq!(report["missing"], serde_json::json!({}), "{report}");
        assert_eq!(report["when_mismatch"], 0, "{report}");
        assert!(report["hosts"].as_u64().unwrap() > 10, "{report}");
    }
}

/// notigen-emit writes notifications through its own byte-level renderer; every line, in
/// every payload mode and envelope, is the shared record type.
#[test]
fn every_line_is_the_shared_notification_record() {
    use measpipe::record::{CheckedNotification, NotificationEnvelope};
    for (payload, envelope) in [
        ("seed", "v1"),
        ("full", "v1"),
        ("seed", "v2"),
        ("full", "v2"),
    ] {
        let out = bin("notigen-emit")
            .args([
                "--seed",
                "3",
                "--count",
                "2000",
                "--payload",
                payload,
                "--envelope",
                envelope,
            ])
            .output()
            .unwrap();
        common::assert_success(&out);
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.lines().count(), 2000);
        for line in text.lines() {
            let inner = if envelope == "v2" {
                let outer: NotificationEnvelope = serde_json::from_str(line).unwrap();
                assert_eq!(outer.version, "2.0");
                outer.message.into_owned()
            } else {
                line.to_owned()
            };
            let record: CheckedNotification =
                serde_json::from_str(&inner).unwrap_or_else(|e| panic!("{e}: {inner}"));
            assert!(record.extra.contains_key("_context_request_id"), "{inner}");
            assert!(record.payload.is_object(), "{inner}");
        }
    }
}

/// Every versioned notification is one Nova 26 would send: its payload passes Nova's own
/// objects (every field of the class, nothing else, each value accepted by the field's
/// from_primitive and coerce, versions equal), its event type is one Nova registers for
/// that payload, its publisher is `<nova binary>:<host>`.
#[test]
fn versioned_notifications_pass_nova_s_own_objects() {
    let Some(python) = common::debian_python_with("nova.notifications.objects", "python3-nova")
    else {
        return;
    };
    for envelope in ["v1", "v2"] {
        let text = emit(&[
            "--seed",
            "5",
            "--ops-per-minute",
            "20",
            "--duration",
            "26h",
            "--format",
            "versioned",
            "--envelope",
            envelope,
        ]);
        let lines = text.lines().count();
        assert!(lines > 20_000, "{lines} lines");
        let mut check = Command::new(python)
            .arg(fixture("notigen/nova_check.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = check.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            use std::io::Write;
            stdin.write_all(text.as_bytes()).unwrap();
        });
        let out = check.wait_with_output().unwrap();
        feeder.join().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("versioned {lines} legacy 0\n"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success());
    }
}

/// `--format both` is the unversioned run and the versioned run of the same seed
/// interleaved, each versioned notification right after its legacy twin, with the same
/// time, request, instance, priority and host.
#[test]
fn both_formats_describe_the_same_operations() {
    let args = [
        "--seed",
        "11",
        "--ops-per-minute",
        "30",
        "--duration",
        "25h",
    ];
    let run = |format: &str| {
        let mut all = args.to_vec();
        all.extend(["--format", format]);
        emit(&all)
    };
    let legacy = run("unversioned");
    let versioned = run("versioned");
    let both = run("both");
    let (mut legacy_in_both, mut versioned_in_both) = (String::new(), String::new());
    let mut previous: Option<Value> = None;
    let mut kinds = HashSet::new();
    for line in both.lines() {
        let message: Value = serde_json::from_str(line).unwrap();
        let is_versioned = message["payload"].get("nova_object.name").is_some();
        if !is_versioned {
            legacy_in_both.push_str(line);
            legacy_in_both.push('\n');
            previous = Some(message);
            continue;
        }
        versioned_in_both.push_str(line);
        versioned_in_both.push('\n');
        let twin = previous
            .take()
            .expect("a versioned notification follows its legacy twin");
        for key in ["timestamp", "priority", "_context_request_id"] {
            assert_eq!(message[key], twin[key], "{key}: {line}");
        }
        assert_ne!(message["message_id"], twin["message_id"]);
        assert_ne!(message["_unique_id"], twin["_unique_id"]);
        let data = &message["payload"]["nova_object.data"];
        let event_type = message["event_type"].as_str().unwrap();
        let host = twin["publisher_id"]
            .as_str()
            .unwrap()
            .split_once('.')
            .unwrap()
            .1;
        assert_eq!(
            message["publisher_id"]
                .as_str()
                .unwrap()
                .split_once(':')
                .unwrap()
                .1,
            host,
            "{line}"
        );
        if event_type == "compute.exception" {
            assert_eq!(data["function_name"], twin["event_type"]);
            kinds.insert("exception".to_owned());
            continue;
        }
        kinds.insert(event_type.split('.').nth(1).unwrap().to_owned());
        assert_eq!(data["uuid"], twin["payload"]["instance_id"], "{line}");
        assert_eq!(data["request_id"], twin["_context_request_id"], "{line}");
        assert_eq!(data["tenant_id"], twin["payload"]["tenant_id"], "{line}");
        let legacy_type = twin["event_type"].as_str().unwrap();
        assert!(
            legacy_type
                .replace("compute.instance.", "instance.")
                .replace("resize.prep", "resize_prep")
                .replace("resize.confirm", "resize_confirm")
                .replace("resize.revert", "resize_revert")
                .replace("finish_resize", "resize_finish")
                .starts_with(event_type.trim_end_matches(".end")),
            "{legacy_type} -> {event_type}"
        );
    }
    assert_eq!(legacy_in_both, legacy);
    assert_eq!(versioned_in_both, versioned);
    for kind in [
        "update",
        "create",
        "delete",
        "exists",
        "exception",
        "snapshot",
        "resize_prep",
    ] {
        assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
    }
}
