//! mmstats: the format 1 reader against files and outputs of the real Python mmstats, the
//! native writer and reader under concurrent writers, and mmstats-slurp, -poll and -clean.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{bin, bin_path, fixture, ndjson_of};
use measpipe::mmstats::histogram::{bucket_of, DEFAULT_SUB_BITS};
use measpipe::mmstats::{self, layout, v1, Builder, Value};
use serde_json::{json, Value as Json};

const V1_FILES: [&str; 8] = [
    "alltypes-0.8.0.mmstats",
    "fullpage-0.8.0.mmstats",
    "multipage-0.8.0.mmstats",
    "minimal-0.8.0.mmstats",
    "webstats-0.6.1-mmstats-10870-10870",
    "live_080.py-11220-11220.mmstats",
    "live_080.py-11220-11223.mmstats",
    "live_080.py-11220-11224.mmstats",
];

fn value_json(value: &Value) -> Json {
    match value {
        Value::U64(v) => json!(v),
        Value::I64(v) => json!(v),
        Value::F64(v) => json!(v),
        Value::Bool(v) => json!(v),
        Value::Text(v) => json!(v),
        other => panic!("format 1 has no {other:?}"),
    }
}

#[test]
fn every_real_v1_file_parses_to_exactly_the_golden_values() {
    for name in V1_FILES {
        let path = fixture(&format!("mmstats/{name}"));
        let golden =
            fs::read_to_string(fixture(&format!("mmstats/golden/{name}.parsed.ndjson"))).unwrap();
        let mut golden: Vec<Json> = golden
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let summary = golden.pop().unwrap();

        let stats = mmstats::read(&path).unwrap();
        let bytes = fs::read(&path).unwrap();
        let layouts = v1::parse(&bytes).unwrap();
        assert_eq!(stats.fields.len(), golden.len(), "{name}");
        for ((field, layout), want) in stats.fields.iter().zip(&layouts).zip(&golden) {
            assert_eq!(json!(field.label), want["label"], "{name}");
            assert_eq!(
                json!(field.type_code),
                want["type"],
                "{name} {}",
                field.label
            );
            assert_eq!(
                value_json(&field.value),
                want["value"],
                "{name} {}",
                field.label
            );
            assert!(field.consistent);
            assert_eq!(
                json!(layout.offset),
                want["offset"],
                "{name} {}",
                field.label
            );
            assert_eq!(json!(layout.end), want["end"], "{name} {}", field.label);
            assert_eq!(
                json!(bytes[layout.write_buffer_offset]),
                want["write_buffer"],
                "{name} {}",
                field.label
            );
        }
        let fields_end = layouts.last().map_or(1, |l| l.end);
        assert_eq!(json!(fields_end), summary["fields_end"], "{name}");
        assert_eq!(json!(bytes.len()), summary["file_size"], "{name}");
    }
}

#[test]
fn v1_owner_facts_come_from_the_default_fields() {
    let stats = mmstats::read(&fixture("mmstats/webstats-0.6.1-mmstats-10870-10870")).unwrap();
    assert_eq!(stats.owner.pid, Some(10870));
    let created = stats.owner.created.unwrap();
    assert!((created - 1795386532.59).abs() < 0.01, "{created}");
    let minimal = mmstats::read(&fixture("mmstats/minimal-0.8.0.mmstats")).unwrap();
    assert_eq!(minimal.owner.pid, None);
}

#[test]
fn slurp_text_is_byte_identical_to_slurpstats() {
    for (file, golden, shown) in [
        (
            "alltypes-0.8.0.mmstats",
            "alltypes-0.8.0.slurpstats.txt",
            "/srv/mmstats/alltypes-0.8.0.mmstats",
        ),
        (
            "webstats-0.6.1-mmstats-10870-10870",
            "webstats-0.6.1.slurpstats.txt",
            "webstats-0.6.1-mmstats-10870-10870",
        ),
    ] {
        let path = fixture(&format!("mmstats/{file}"));
        let output = bin("mmstats-slurp")
            .args(["--format", "text"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(output.status.success());
        let got = String::from_utf8(output.stdout).unwrap().replacen(
            &path.display().to_string(),
            shown,
            1,
        );
        let want = fs::read_to_string(fixture(&format!("mmstats/golden/{golden}"))).unwrap();
        assert_eq!(got, want, "{file}");
    }
}

#[test]
fn slurp_writes_valid_stat_records_for_every_fixture() {
    let files: Vec<PathBuf> = V1_FILES
        .iter()
        .map(|f| fixture(&format!("mmstats/{f}")))
        .collect();
    let slurp = bin("mmstats-slurp").args(&files).output().unwrap();
    common::assert_success(&slurp);
    let lines: Vec<Json> = slurp
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 31 + 1 + 8 + 2 + 11 + 3 * 10);
    let ok: Vec<&Json> = lines
        .iter()
        .filter(|l| l["label"] == "flask.example.ok")
        .collect();
    assert_eq!(
        ok.iter().map(|l| l["value"].as_u64().unwrap()).sum::<u64>(),
        720
    );
    assert!(ok
        .iter()
        .all(|l| l["pid"] == 11220 && l["format"] == "mmstats1"));
    bin("record-check")
        .args(["--kind", "stat", "--quiet"])
        .write_stdin(slurp.stdout)
        .assert()
        .success();
}

#[test]
fn slurp_reports_bad_files_by_name_and_offset_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fs::read(fixture("mmstats/alltypes-0.8.0.mmstats")).unwrap();
    let truncated = dir.path().join("truncated.mmstats");
    fs::write(&truncated, &bytes[..300]).unwrap();
    let empty = dir.path().join("empty.mmstats");
    fs::write(&empty, b"").unwrap();
    let v2 = dir.path().join("v2.mmstats");
    fs::write(&v2, [2u8, 0, 0]).unwrap();
    let good = fixture("mmstats/minimal-0.8.0.mmstats");
    let output = bin("mmstats-slurp")
        .arg(&truncated)
        .arg(&good)
        .arg(&empty)
        .arg(&v2)
        .arg(dir.path().join("missing.mmstats"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let t = truncated.display();
    let d = dir.path().display();
    assert_eq!(
        stderr,
        format!(
            "mmstats-slurp: error: {t}: offset 176: the value of the field at offset 149 runs past the end of the file (300 bytes)\n\
             mmstats-slurp: error: {d}/empty.mmstats: offset 0: empty file, not a stats file\n\
             mmstats-slurp: error: {d}/v2.mmstats: offset 0: format 2 (the unimplemented Python mmstats proposal) is not supported\n\
             mmstats-slurp: error: {d}/missing.mmstats: No such file or directory (os error 2)\n\
             mmstats-slurp: error: 4 of 5 stats files could not be read\n"
        )
    );
    assert_eq!(String::from_utf8(output.stdout).unwrap().lines().count(), 2);
}

#[test]
fn slurp_defaults_to_mmstats_path_and_mmstats_glob() {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(
        fixture("mmstats/minimal-0.8.0.mmstats"),
        dir.path().join("a.mmstats"),
    )
    .unwrap();
    fs::copy(
        fixture("mmstats/fullpage-0.8.0.mmstats"),
        dir.path().join("b.other"),
    )
    .unwrap();
    let out = bin("mmstats-slurp")
        .env("MMSTATS_PATH", dir.path())
        .env_remove("MMSTATS_GLOB")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 2);
    let out = bin("mmstats-slurp")
        .env("MMSTATS_GLOB", dir.path().join("*.other"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("\"label\":\"x\"") && text.lines().count() == 1,
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// The native format.

#[test]
fn native_fields_read_back_with_their_parts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.mmstats");
    let stats = Builder::new()
        .label_prefix("app.")
        .counter("hits")
        .gauge("queue")
        .gauge_f64("load")
        .flag("up", false)
        .text("status", 12)
        .average("avg")
        .moving_average("mavg", 3)
        .timer("work")
        .histogram("latency_ns")
        .static_u64("build", 42)
        .static_i64("offset", -7)
        .static_f64("ratio", 0.5)
        .static_text("version", "1.2.3")
        .path(&path)
        .create()
        .unwrap();
    stats.counter("hits").unwrap().add(5);
    stats.gauge("queue").unwrap().set(-3);
    stats.gauge_f64("load").unwrap().set(1.5);
    stats.flag("up").unwrap().set(true);
    stats.text("status").unwrap().set("degraded but running");
    for x in [1.0, 2.0, 4.5] {
        stats.average("avg").unwrap().add(x);
    }
    for x in [10.0, 20.0, 30.0, 40.0] {
        stats.average("mavg").unwrap().add(x);
    }
    stats
        .timer("work")
        .unwrap()
        .record(Duration::from_millis(250));
    let latency = stats.histogram("latency_ns").unwrap();
    for v in 1..=1000 {
        latency.record(v);
    }
    assert!(stats
        .counter("avg")
        .unwrap_err()
        .to_string()
        .contains("is a average"));
    assert!(stats.counter("nope").is_err());

    let read = mmstats::read(&path).unwrap();
    assert_eq!(read.owner.pid, Some(std::process::id()));
    assert!(!read.owner.closed);
    let value = |label: &str| read.field(label).unwrap().value.clone();
    assert_eq!(value("app.hits"), Value::U64(5));
    assert_eq!(value("app.queue"), Value::I64(-3));
    assert_eq!(value("app.load"), Value::F64(1.5));
    assert_eq!(value("app.up"), Value::Bool(true));
    assert_eq!(value("app.status"), Value::Text("degraded but".into()));
    assert_eq!(value("app.build"), Value::U64(42));
    assert_eq!(value("app.offset"), Value::I64(-7));
    assert_eq!(value("app.ratio"), Value::F64(0.5));
    assert_eq!(value("app.version"), Value::Text("1.2.3".into()));
    let Value::Summary(avg) = value("app.avg") else {
        panic!()
    };
    assert_eq!((avg.count, avg.mean, avg.last), (3, 2.5, 4.5));
    let Value::Summary(mavg) = value("app.mavg") else {
        panic!()
    };
    assert_eq!((mavg.count, mavg.mean, mavg.window), (4, 30.0, 3));
    let Value::Summary(work) = value("app.work") else {
        panic!()
    };
    assert_eq!(work.mean, 0.25);
    let Value::Histogram(h) = value("app.latency_ns") else {
        panic!()
    };
    assert_eq!((h.count, h.sum, h.min, h.max), (1000, 500_500, 1, 1000));
    let p99 = h.quantile(0.99).unwrap() as f64;
    assert!((p99 - 990.0).abs() <= 990.0 / 16.0, "{p99}");

    let out = bin("mmstats-slurp").arg(&path).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().find(|l| l.contains("latency_ns")).unwrap();
    let record: Json = serde_json::from_str(line).unwrap();
    assert_eq!(record["type"], "histogram");
    assert_eq!(record["count"], 1000);
    assert_eq!(record["format"], "mmstats3");
    assert!(
        record["p50"].as_u64().unwrap().abs_diff(500) <= 32,
        "{record}"
    );
    drop(stats);
    assert!(!path.exists(), "dropping the writer removes its file");
}

/// The only test that sets MMSTATS_* in this process; the others name their files.
#[test]
fn writers_name_their_files_from_mmstats_path_and_mmstats_files() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("MMSTATS_PATH", dir.path());
    std::env::set_var("MMSTATS_FILES", "{CMD}-{PID}-{TID}.stats");
    let stats = Builder::new().counter("c").create();
    std::env::remove_var("MMSTATS_FILES");
    std::env::remove_var("MMSTATS_PATH");
    let stats = stats.unwrap();
    let name = stats
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let exe = std::env::current_exe().unwrap();
    let cmd = exe.file_name().unwrap().to_string_lossy();
    let tid = mmstats::process::thread_id();
    assert_eq!(name, format!("{cmd}-{}-{tid}.stats", std::process::id()));
    assert_eq!(stats.path().parent(), Some(dir.path()));
    let read = mmstats::read(stats.path()).unwrap();
    assert_eq!(read.owner.tid, Some(tid));
    let path = stats.path().to_path_buf();
    drop(stats);
    assert!(!path.exists());
}

#[test]
fn the_python_reader_rejects_native_files_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.mmstats");
    let _stats = Builder::new().counter("c").path(&path).create().unwrap();
    assert_eq!(fs::read(&path).unwrap()[0], layout::FIRST_BYTE);
    let Some(python) = common::python27_with("mmstats", "mmstats 0.8.0") else {
        return;
    };
    let out = Command::new(python)
        .args(["-m", "mmstats.clean"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Invalid file"), "{text}");
    assert!(path.exists(), "cleanstats must leave our files alone");
}

#[test]
fn corrupt_native_files_are_errors_not_panics_and_what_reads_renders() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.mmstats");
    let stats = Builder::new()
        .counter("c")
        .histogram("h")
        .average("a")
        .text("t", 9)
        .path(&path)
        .keep_file()
        .create()
        .unwrap();
    stats.counter("c").unwrap().add(5);
    stats.histogram("h").unwrap().record(1234);
    stats.average("a").unwrap().add(2.5);
    drop(stats);
    let good = fs::read(&path).unwrap();
    let broken = dir.path().join("broken.mmstats");
    let broken_name = broken.to_string_lossy().into_owned();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let (mut read, mut refused) = (0, 0);
    for round in 0..3000 {
        let mut bytes = good.clone();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Anywhere: the header and metadata, where a bad length could mislead the reader,
        // and the values region, where a bad count or bound could mislead the renderer.
        let at = if round % 2 == 0 {
            (rng as usize) % 512
        } else {
            (rng as usize) % good.len()
        };
        bytes[at] = (rng >> 32) as u8;
        // Now and then a whole word of extreme values (u64::MAX, 0, i64::MIN).
        if round % 5 == 0 {
            let word = ((rng >> 16) as usize % (good.len() / 8)) * 8;
            let extreme = [u64::MAX, 0, 1 << 63][round % 3];
            bytes[word..word + 8].copy_from_slice(&extreme.to_le_bytes());
        }
        if round % 7 == 0 {
            bytes.truncate((rng as usize >> 8) % good.len());
        }
        fs::write(&broken, &bytes).unwrap();
        match mmstats::read(&broken) {
            Ok(stats) => {
                read += 1;
                for field in &stats.fields {
                    let record = mmstats::render::StatRecord {
                        file: &broken_name,
                        stats: &stats,
                        field,
                        ts: 1.0,
                    };
                    let line = serde_json::to_string(&record).unwrap();
                    measpipe::record::classify(line.as_bytes()).unwrap();
                }
                let lines = mmstats::render::slurpstats_lines(&broken_name, &stats);
                assert_eq!(lines.len(), stats.fields.len() + 2);
            }
            Err(_) => refused += 1,
        }
    }
    assert!(
        read > 100 && refused > 100,
        "read {read}, refused {refused}"
    );
}

/// Four writer threads update a shared file, and four more their own files, while the
/// reader reads continuously: every read must be consistent and the final counts exact.
#[test]
fn concurrent_writers_never_show_a_reader_an_inconsistent_value() {
    const SECONDS: u64 = 10;
    let dir = tempfile::tempdir().unwrap();
    let shared_path = dir.path().join("shared.mmstats");
    let shared = Builder::new()
        .counter("hits")
        .histogram("h")
        .average("avg")
        .text("t", 40)
        .path(&shared_path)
        .create_shared()
        .unwrap();
    let stop = AtomicBool::new(false);
    // Stops the writers even when an assertion fails, or the scope would wait forever.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let mut reads = 0u64;
    let mut checked_files = 0u64;
    let totals = std::thread::scope(|scope| {
        let mut writers = Vec::new();
        for t in 0..4u64 {
            let (shared, stop) = (&shared, &stop);
            let own_path = dir.path().join(format!("thread-{t}.mmstats"));
            writers.push(scope.spawn(move || {
                let own = Builder::new()
                    .counter("hits")
                    .histogram("h")
                    .text("t", 40)
                    .path(&own_path)
                    .keep_file()
                    .create()
                    .unwrap();
                let (hits, h, avg, text) = (
                    shared.counter("hits").unwrap(),
                    shared.histogram("h").unwrap(),
                    shared.average("avg").unwrap(),
                    shared.text("t").unwrap(),
                );
                let (own_hits, own_h, own_text) = (
                    own.counter("hits").unwrap(),
                    own.histogram("h").unwrap(),
                    own.text("t").unwrap(),
                );
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    hits.incr();
                    own_hits.incr();
                    h.record((t + 1) * 1000);
                    own_h.record(n % 7 * 1000);
                    avg.add(2.0);
                    if n.is_multiple_of(16) {
                        text.set(&self_checking_text(n));
                        own_text.set(&self_checking_text(n));
                    }
                }
                n
            }));
        }
        let _stop = StopOnDrop(&stop);
        let deadline = Instant::now() + Duration::from_secs(SECONDS);
        let mut last_hits = 0;
        while Instant::now() < deadline {
            let file = mmstats::read(&shared_path).unwrap();
            check_invariants(&file);
            let Value::U64(hits) = file.field("hits").unwrap().value else {
                panic!()
            };
            assert!(hits >= last_hits, "a counter went backwards");
            last_hits = hits;
            for t in 0..4 {
                let own = dir.path().join(format!("thread-{t}.mmstats"));
                if let Ok(file) = mmstats::read(&own) {
                    check_invariants(&file);
                    checked_files += 1;
                }
            }
            reads += 1;
        }
        stop.store(true, Ordering::Relaxed);
        writers
            .into_iter()
            .map(|w| w.join().unwrap())
            .collect::<Vec<u64>>()
    });
    let file = mmstats::read(&shared_path).unwrap();
    check_invariants(&file);
    let total: u64 = totals.iter().sum();
    assert_eq!(file.field("hits").unwrap().value, Value::U64(total));
    let Value::Histogram(h) = &file.field("h").unwrap().value else {
        panic!()
    };
    assert_eq!(h.count, total);
    for (t, n) in totals.iter().enumerate() {
        assert_eq!(
            h.buckets[bucket_of((t as u64 + 1) * 1000, DEFAULT_SUB_BITS)],
            *n
        );
        let own = mmstats::read(&dir.path().join(format!("thread-{t}.mmstats"))).unwrap();
        assert_eq!(own.field("hits").unwrap().value, Value::U64(*n));
        assert!(own.owner.closed);
    }
    eprintln!(
        "{reads} reads of the shared file and {checked_files} of per-thread files in {SECONDS} s, \
         {total} updates of each shared field, all consistent"
    );
    assert!(
        reads > 100,
        "the reader must have raced the writers many times"
    );
}

/// A text whose parts repeat `n`, so a torn copy is visible.
fn self_checking_text(n: u64) -> String {
    vec![n.to_string(); (n % 4 + 1) as usize].join("|")
}

fn check_invariants(file: &mmstats::StatsFile) {
    for field in &file.fields {
        assert!(field.consistent, "{} reported inconsistent", field.label);
        match &field.value {
            Value::Histogram(h) => {
                assert_eq!(h.count, h.buckets.iter().sum::<u64>(), "histogram count");
                // The writers record multiples of 1000 up to 6000, one bucket each.
                let weighted: u64 = (0..=6u64)
                    .map(|k| k * 1000 * h.buckets[bucket_of(k * 1000, h.sub_bits)])
                    .sum();
                assert_eq!(h.sum, weighted, "histogram sum");
            }
            Value::Summary(s) => {
                assert_eq!(s.sum, 2.0 * s.count as f64, "average sum");
                if s.count > 0 {
                    assert_eq!(s.mean, 2.0);
                }
            }
            Value::Text(t) if !t.is_empty() => {
                let parts: Vec<&str> = t.split('|').collect();
                let n: u64 = parts[0].parse().unwrap();
                assert!(parts.iter().all(|p| *p == parts[0]), "torn text {t:?}");
                assert_eq!(parts.len() as u64, n % 4 + 1, "torn text {t:?}");
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------
// mmstats-poll

fn poll_ndjson(args: &[&str]) -> Vec<Json> {
    ndjson_of(bin("mmstats-poll").arg("--format=ndjson").args(args))
}

#[test]
fn poll_sums_deltas_across_files_and_survives_the_original_crashes() {
    let dir = fixture("mmstats");
    let glob = dir.join("live_080*.mmstats").display().to_string();
    let rows = poll_ndjson(&[
        "-c",
        "2",
        "-d",
        "0.05",
        "-p",
        "flask.example.",
        "ok,bad,missing",
        &glob,
    ]);
    assert_eq!(
        rows[0]["totals"],
        json!({"ok": 720, "bad": 36, "missing": 0})
    );
    assert_eq!(
        rows[0]["deltas"],
        json!({"ok": 720, "bad": 36, "missing": 0})
    );
    assert_eq!(rows[1]["deltas"], json!({"ok": 0, "bad": 0, "missing": 0}));
    assert_eq!(rows[0]["files"], 3);
    assert!(rows[1]["interval_s"].as_f64().unwrap() > 0.04);

    // pollstats crashes on a file whose fields end at EOF, and its README's prefix
    // mistake matched labels by prefix; both just count zero here.
    let fullpage = dir.join("fullpage-0.8.0.mmstats").display().to_string();
    let web = dir
        .join("webstats-0.6.1-mmstats-10870-10870")
        .display()
        .to_string();
    let rows = poll_ndjson(&["-c", "1", "-p", "web.stats.status", "2XX", &fullpage, &web]);
    assert_eq!(rows[0]["deltas"], json!({"2XX": 0}));
    let rows = poll_ndjson(&[
        "-c",
        "1",
        "-p",
        "web.stats.status.",
        "2XX,3XX",
        &fullpage,
        &web,
    ]);
    assert_eq!(rows[0]["deltas"], json!({"2XX": 17, "3XX": 3}));
}

#[test]
fn poll_text_matches_the_pollstats_layout_without_colour() {
    let glob = fixture("mmstats")
        .join("live_080*.mmstats")
        .display()
        .to_string();
    let out = bin("mmstats-poll")
        .args([
            "-c",
            "3",
            "-d",
            "0.01",
            "-n",
            "2",
            "-p",
            "flask.example.",
            "ok,bad",
            &glob,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    // Python's str.center and Rust's {:^} agree for these widths.
    let header = format!("{:^20}|{:^20}", "ok", "bad");
    let row = |ok: u64, bad: u64| format!("{ok:>19} |{bad:>19} ");
    assert_eq!(
        text,
        [
            header.clone(),
            row(720, 36),
            row(0, 0),
            header,
            row(0, 0),
            String::new()
        ]
        .join("\n")
    );
}

#[test]
fn poll_finds_files_that_appear_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let first = Builder::new()
        .counter("hits")
        .path(dir.path().join("a.mmstats"))
        .create()
        .unwrap();
    first.counter("hits").unwrap().add(3);
    let mut poll = Command::new(bin_path("mmstats-poll"))
        .args(["--format", "ndjson", "-c", "4", "-d", "0.3", "hits"])
        .arg(dir.path().join("*.mmstats"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(poll.stdout.take().unwrap()).lines();
    let row: Json = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(row["deltas"]["hits"], 3);
    let second = Builder::new()
        .counter("hits")
        .path(dir.path().join("b.mmstats"))
        .create()
        .unwrap();
    second.counter("hits").unwrap().add(10);
    first.counter("hits").unwrap().add(1);
    let rows: Vec<Json> = lines
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert!(poll.wait().unwrap().success());
    let grown: u64 = rows
        .iter()
        .map(|r| r["deltas"]["hits"].as_u64().unwrap())
        .sum();
    assert_eq!(grown, 11);
    assert_eq!(rows.last().unwrap()["totals"]["hits"], 14);
    assert_eq!(rows.last().unwrap()["files"], 2);
}

#[test]
fn poll_refuses_bad_delays() {
    for delay in ["0", "-1", "abc", "inf"] {
        bin("mmstats-poll")
            .args(["-d", delay, "x"])
            .assert()
            .code(2);
    }
}

// ---------------------------------------------------------------------------------------
// mmstats-clean

/// A process that is alive for the test and started after the test process.
struct Sleeper(Child);

impl Sleeper {
    fn start() -> Sleeper {
        Sleeper(Command::new("sleep").arg("60").spawn().unwrap())
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The pid of a process that has exited.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn patch(path: &Path, at: usize, bytes: &[u8]) {
    let mut data = fs::read(path).unwrap();
    data[at..at + bytes.len()].copy_from_slice(bytes);
    fs::write(path, data).unwrap();
}

/// Copies a format 1 fixture to `dest`, setting its `sys.pid` and `sys.created`.
fn v1_copy(dest: &Path, pid: u32, created: f64) {
    fs::copy(fixture("mmstats/alltypes-0.8.0.mmstats"), dest).unwrap();
    let bytes = fs::read(dest).unwrap();
    for layout in v1::parse(&bytes).unwrap() {
        let at = layout.write_buffer_offset + 1;
        match layout.label.as_str() {
            "sys.pid" => patch(dest, at, &pid.to_le_bytes()),
            "sys.created" => patch(dest, at, &created.to_le_bytes()),
            _ => {}
        }
    }
}

fn clean(args: &[&str], dir: &Path) -> Vec<Json> {
    ndjson_of(bin("mmstats-clean").args(args).arg(dir.join("*")))
}

fn verdict<'a>(decisions: &'a [Json], file: &str) -> &'a Json {
    decisions
        .iter()
        .find(|d| d["file"].as_str().unwrap().ends_with(file))
        .unwrap_or_else(|| panic!("no decision for {file}"))
}

#[test]
fn clean_removes_dead_and_reused_writers_and_keeps_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // Started well after this test process (start times have 10 ms ticks) and `now`.
    std::thread::sleep(Duration::from_millis(1100));
    let sleeper = Sleeper::start();

    let live = Builder::new()
        .counter("c")
        .path(d.join("live.mmstats"))
        .create()
        .unwrap();
    fs::copy(live.path(), d.join("dead.mmstats")).unwrap();
    patch(
        &d.join("dead.mmstats"),
        layout::header::PID,
        &dead_pid().to_ne_bytes(),
    );
    fs::copy(live.path(), d.join("reused.mmstats")).unwrap();
    patch(
        &d.join("reused.mmstats"),
        layout::header::PID,
        &sleeper.pid().to_ne_bytes(),
    );
    let kept = Builder::new()
        .counter("c")
        .path(d.join("closed.mmstats"))
        .keep_file()
        .create()
        .unwrap();
    drop(kept);

    v1_copy(&d.join("v1-dead.mmstats"), dead_pid(), now);
    v1_copy(&d.join("v1-reused.mmstats"), sleeper.pid(), now - 3600.0);
    // A live format 1 writer maps its file, as Python mmstats does: here this process.
    v1_copy(&d.join("v1-live.mmstats"), std::process::id(), now + 2.0);
    let v1_live = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(d.join("v1-live.mmstats"))
        .unwrap();
    let _mapped = unsafe { memmap2::MmapMut::map_mut(&v1_live).unwrap() };
    fs::copy(
        fixture("mmstats/minimal-0.8.0.mmstats"),
        d.join("no-pid.mmstats"),
    )
    .unwrap();
    fs::write(d.join("garbage.mmstats"), b"not stats").unwrap();

    let dry = clean(&["--dry-run"], d);
    assert_eq!(dry.len(), 9);
    assert!(dry.iter().all(|x| x["removed"] == false));
    assert_eq!(fs::read_dir(d).unwrap().count(), 9);

    let decisions = clean(&[], d);
    for (file, verdict_, reason) in [
        ("/live.mmstats", "alive", "running"),
        ("/dead.mmstats", "stale", "dead"),
        ("/reused.mmstats", "stale", "pid-reused"),
        ("/closed.mmstats", "stale", "closed"),
        ("/v1-dead.mmstats", "stale", "dead"),
        // The sleeper has the pid but does not map the file: not its writer.
        ("/v1-reused.mmstats", "stale", "not-mapped"),
        ("/v1-live.mmstats", "alive", "running"),
        ("/no-pid.mmstats", "no-pid", "the file names no writer pid"),
    ] {
        let decision = verdict(&decisions, file);
        assert_eq!(decision["verdict"], verdict_, "{decision}");
        assert_eq!(decision["reason"], reason, "{decision}");
        assert_eq!(decision["removed"], verdict_ == "stale", "{decision}");
        assert_eq!(d.join(&file[1..]).exists(), verdict_ != "stale", "{file}");
    }
    assert_eq!(
        verdict(&decisions, "/garbage.mmstats")["verdict"],
        "invalid"
    );
    assert!(d.join("garbage.mmstats").exists());

    let forced = clean(&["--force"], d);
    assert_eq!(forced.iter().filter(|x| x["removed"] == true).count(), 2);
    assert!(!d.join("garbage.mmstats").exists() && !d.join("no-pid.mmstats").exists());
    assert!(d.join("live.mmstats").exists() && d.join("v1-live.mmstats").exists());
    drop(live);
}

#[test]
fn clean_text_speaks_like_cleanstats() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead.mmstats");
    v1_copy(&path, dead_pid(), 0.0);
    let out = bin("mmstats-clean")
        .args(["--format", "text"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.ends_with("Removed 1  -  0 alive\n"), "{text}");
    assert!(
        text.starts_with("PID ") && text.contains("not found. Deleting"),
        "{text}"
    );
}

/// The real Python writer's file: our slurp prints what its slurpstats prints, and our
/// clean agrees with its cleanstats while the writer lives and after it dies.
#[test]
fn python_mmstats_writer_files_read_and_clean_like_the_originals() {
    let Some(python) = common::python27_with("mmstats", "mmstats 0.8.0") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("py.mmstats");
    let mut writer = Command::new(&python)
        .arg(fixture("mmstats/python_writer.py"))
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(writer.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready, "ready\n");

    let theirs = Command::new(&python)
        .args(["-m", "mmstats.slurpstats"])
        .arg(&path)
        .env("PYTHONIOENCODING", "utf-8")
        .output()
        .unwrap();
    let ours = bin("mmstats-slurp")
        .args(["--format", "text"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!theirs.stdout.is_empty());
    assert_eq!(
        String::from_utf8(ours.stdout).unwrap(),
        String::from_utf8(theirs.stdout).unwrap()
    );

    let decisions = clean(&["--dry-run"], dir.path());
    assert_eq!(decisions[0]["verdict"], "alive");
    let theirs = Command::new(&python)
        .args(["-m", "mmstats.clean"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&theirs.stdout).contains("1 alive"));

    writer.stdin.take().unwrap().write_all(b"").unwrap();
    assert!(writer.wait().unwrap().success());
    let decisions = clean(&[], dir.path());
    assert_eq!(decisions[0]["reason"], "dead", "{decisions:?}");
    assert!(!path.exists());
}

/// What Python's slurpstats (or, without Python, mmstats-slurp --format text) prints.
fn slurpstats_text(python: Option<&str>, path: &Path) -> String {
    let out = match python {
        Some(python) => Command::new(python)
            .args(["-m", "mmstats.slurpstats"])
            .arg(path)
            .env("PYTHONIOENCODING", "utf-8")
            .output()
            .unwrap(),
        None => bin("mmstats-slurp")
            .args(["--format", "text"])
            .arg(path)
            .output()
            .unwrap(),
    };
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn format1_files_written_here_are_read_by_the_python_tools() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rust.mmstats");
    let stats = Builder::new()
        .label_prefix("web.")
        .counter("hits")
        .gauge("queue")
        .gauge_f64("load")
        .flag("up", false)
        .text("state", 8)
        .moving_average("latency", 2)
        .static_text("role", "frontend")
        .path(&path)
        .create_format1()
        .unwrap();
    stats.add("hits", 40).unwrap();
    stats.add("hits", 2).unwrap();
    stats.set_i64("queue", -3).unwrap();
    stats.set_f64("load", 0.25).unwrap();
    stats.set_bool("up", true).unwrap();
    stats.set_text("state", "runningXXX").unwrap();
    for sample in [1.0, 2.0, 4.0] {
        stats.add_sample("latency", sample).unwrap();
    }
    assert!(matches!(
        stats.add("role", 1),
        Err(mmstats::writer::WriteError::WrongKind { .. })
    ));
    assert!(Builder::new()
        .histogram("h")
        .path(dir.path().join("h.mmstats"))
        .create_format1()
        .unwrap_err()
        .to_string()
        .contains("format 1 has no histograms"));

    // Read back here first: every value as written.
    let read = mmstats::read(&path).unwrap();
    assert_eq!(read.format, mmstats::Format::V1);
    let value = |label: &str| read.field(label).unwrap().value.clone();
    assert_eq!(value("web.hits"), Value::U64(42));
    assert_eq!(value("web.queue"), Value::I64(-3));
    assert_eq!(value("web.load"), Value::F64(0.25));
    assert_eq!(value("web.up"), Value::Bool(true));
    assert_eq!(value("web.state"), Value::Text("runningX".into()));
    assert_eq!(value("web.latency"), Value::F64(3.0));
    assert_eq!(value("web.role"), Value::Text("frontend".into()));
    assert_eq!(read.owner.pid, Some(std::process::id()));

    let python = common::python27_with("mmstats", "mmstats 0.8.0");
    let ours = bin("mmstats-slurp")
        .args(["--format", "text"])
        .arg(&path)
        .output()
        .unwrap();
    let theirs = slurpstats_text(python.as_deref(), &path);
    assert_eq!(String::from_utf8(ours.stdout).unwrap(), theirs);
    assert!(theirs.contains("  web.hits        42\n"), "{theirs}");
    assert!(theirs.contains("  web.latency     3.0\n"), "{theirs}");
    let Some(python) = python else { return };

    // pollstats: the first row is the totals, then the changes.
    let poll = Command::new(&python)
        .args([
            "-m",
            "mmstats.pollstats",
            "-c",
            "2",
            "-p",
            "web.",
            "hits,queue",
        ])
        .arg(&path)
        .output()
        .unwrap();
    // pollstats colours its numbers whatever the output is: strip the escapes.
    let mut text = String::from_utf8(poll.stdout).unwrap();
    while let Some(at) = text.find('\u{1b}') {
        let end = at + text[at..].find('m').unwrap();
        text.replace_range(at..=end, "");
    }
    let row = |a: i64, b: i64| format!("{a:>19} |{b:>19} ");
    assert_eq!(
        text.lines().skip(1).collect::<Vec<_>>(),
        [row(42, -3), row(0, 0)],
        "{text}"
    );
    // cleanstats keeps it while this process lives.
    let clean = Command::new(&python)
        .args(["-m", "mmstats.clean"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&clean.stdout).contains("1 alive"));
    drop(stats);
    assert!(!path.exists());
}

#[test]
fn a_write_error_names_its_cause_once() {
    let Err(err) = measpipe::mmstats::writer::Builder::new()
        .counter("a")
        .path("/nonexistent/measpipe/web.mmstats")
        .create()
    else {
        panic!("created a file in a missing directory");
    };
    let text = err.to_string();
    // tempfile names the random temporary it could not create; the rest is exact.
    let (message, temporary) = text.split_once(" at path ").expect(&text);
    assert_eq!(
        message,
        "/nonexistent/measpipe: No such file or directory (os error 2)"
    );
    assert!(
        temporary.starts_with("\"/nonexistent/measpipe/.mmstats-"),
        "{text}"
    );
    assert!(std::error::Error::source(&err).is_none());
}
