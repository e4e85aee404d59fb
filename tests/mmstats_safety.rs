//! mmstats readers against hostile or unlucky stats files (issue 17, "safety first"): every
//! case here was measured on the release build before it was fixed, and a bad file must be
//! reported and skipped while the rest are read.

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::{bin, fixture, ndjson_of};
use measpipe::mmstats::{self, v1, Builder};

/// No reader may take longer than this on a handful of files.
const PATIENCE: Duration = Duration::from_secs(20);

fn patch(path: &Path, at: usize, bytes: &[u8]) {
    let mut data = fs::read(path).unwrap();
    data[at..at + bytes.len()].copy_from_slice(bytes);
    fs::write(path, data).unwrap();
}

/// The byte offset of `words` (consecutive native-endian u64 words) in the file.
fn find_words(path: &Path, words: &[u64]) -> usize {
    let needle: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let data = fs::read(path).unwrap();
    let hits: Vec<usize> = (0..=data.len() - needle.len())
        .filter(|&at| at % 8 == 0 && data[at..at + needle.len()] == needle[..])
        .collect();
    assert_eq!(hits.len(), 1, "{words:?} in {}", path.display());
    hits[0]
}

#[test]
fn a_histogram_with_min_above_max_is_read_not_a_crash_and_the_other_files_too() {
    let dir = tempfile::tempdir().unwrap();
    let planted = dir.path().join("planted.mmstats");
    let stats = Builder::new()
        .histogram("latency")
        .path(&planted)
        .keep_file()
        .create()
        .unwrap();
    stats.histogram("latency").unwrap().record(1234);
    drop(stats);
    // [count 1][sum 1234][min 1234][max 1234] → min u64::MAX, max 0.
    let at = find_words(&planted, &[1, 1234, 1234, 1234]);
    patch(&planted, at + 16, &u64::MAX.to_ne_bytes());
    patch(&planted, at + 24, &0u64.to_ne_bytes());
    let good = dir.path().join("good.mmstats");
    fs::copy(fixture("mmstats/minimal-0.8.0.mmstats"), &good).unwrap();

    let out = bin("mmstats-slurp")
        .arg(dir.path().join("*.mmstats"))
        .timeout(PATIENCE)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
    let records = common::ndjson_lines(&out.stdout);
    assert_eq!(records.len(), 3, "{records:?}");
    let latency = &records[2];
    assert_eq!(latency["label"], "latency");
    assert_eq!(
        (&latency["count"], &latency["min"], &latency["max"]),
        (&1.into(), &u64::MAX.into(), &0.into())
    );
    assert_eq!(
        (&records[0]["label"], &records[1]["label"]),
        (&"hits".into(), &"up".into())
    );
    // Text too, where the percentiles are rendered.
    let out = bin("mmstats-slurp")
        .args(["--format", "text"])
        .arg(&planted)
        .timeout(PATIENCE)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn format1_write_buffer_byte_changed_after_the_first_snapshot_is_a_reported_error() {
    let bytes = fs::read(fixture("mmstats/alltypes-0.8.0.mmstats")).unwrap();
    let layouts = v1::parse(&bytes).unwrap();
    let buffered = layouts.iter().find(|l| l.buffered).unwrap();
    for changed_to in [7u8, 255, 254] {
        let mut later = bytes.clone();
        later[buffered.write_buffer_offset] = changed_to;
        let mut snapshots = [bytes.clone(), later.clone(), later].into_iter();
        let err = v1::read_snapshots(|| Ok(snapshots.next().unwrap()))
            .expect_err("a changed write-buffer byte must be refused");
        assert_eq!(
            err.to_string(),
            format!(
                "offset {}: the write buffer byte of field {:?} changed from {} to {changed_to} while being read",
                buffered.write_buffer_offset, buffered.label, bytes[buffered.write_buffer_offset]
            )
        );
    }
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_fifo_named_like_a_stats_file_is_skipped_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("a-trap.mmstats");
    mkfifo(&fifo);
    fs::copy(
        fixture("mmstats/minimal-0.8.0.mmstats"),
        dir.path().join("b-good.mmstats"),
    )
    .unwrap();
    let d = dir.path().display();
    let out = bin("mmstats-slurp")
        .arg(dir.path().join("*.mmstats"))
        .timeout(PATIENCE)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "mmstats-slurp: error: {d}/a-trap.mmstats: not a regular file (a FIFO)\n\
             mmstats-slurp: error: 1 of 2 stats files could not be read\n"
        )
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(common::ndjson_lines(&out.stdout).len(), 2);

    let out = bin("mmstats-clean")
        .arg(dir.path().join("*.mmstats"))
        .timeout(PATIENCE)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "mmstats-clean: error: 1 stats file could not be read or removed\n"
    );
    assert_eq!(out.status.code(), Some(1));
    let decisions = common::ndjson_lines(&out.stdout);
    assert_eq!(decisions.len(), 2, "{decisions:?}");
    assert_eq!(decisions[0]["verdict"], "unreadable");
    assert_eq!(decisions[0]["error"], "not a regular file (a FIFO)");
    assert_eq!(decisions[0]["removed"], false);
    assert!(fifo.exists());

    let out = bin("mmstats-poll")
        .args(["-c", "1", "--format", "ndjson", "hits"])
        .arg(dir.path().join("*.mmstats"))
        .timeout(PATIENCE)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("mmstats-poll: warning: {d}/a-trap.mmstats: not a regular file (a FIFO)\n")
    );
    assert_eq!(common::ndjson_lines(&out.stdout)[0]["files"], 1);
}

/// A format 1 file this test process writes the way Python mmstats does: created by its
/// pid, mapped writable while the "writer" lives, `sys.created` set to `created`.
fn v1_live_file(dest: &Path, created: f64) -> memmap2::MmapMut {
    fs::copy(fixture("mmstats/alltypes-0.8.0.mmstats"), dest).unwrap();
    let bytes = fs::read(dest).unwrap();
    for layout in v1::parse(&bytes).unwrap() {
        let at = layout.write_buffer_offset + 1;
        match layout.label.as_str() {
            "sys.pid" => patch(dest, at, &std::process::id().to_le_bytes()),
            "sys.created" => patch(dest, at, &created.to_le_bytes()),
            _ => {}
        }
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dest)
        .unwrap();
    unsafe { memmap2::MmapMut::map_mut(&file).unwrap() }
}

#[test]
fn clean_keeps_a_live_format1_writer_whatever_the_wall_clock_says() {
    let dir = tempfile::tempdir().unwrap();
    let started = mmstats::process::start_time(std::process::id()).unwrap();
    // A forward clock step after this process started moves its btime-based start time
    // past what it wrote as `sys.created`: 3 s, and 3 hours.
    let _three_s = v1_live_file(&dir.path().join("three-s.mmstats"), started - 3.0);
    let _three_h = v1_live_file(&dir.path().join("three-h.mmstats"), started - 3.0 * 3600.0);
    // The same pid, and a sys.created well before its start, but nobody maps the file: the
    // writer is gone (its pid now another process's, here this one).
    let orphan = dir.path().join("orphan.mmstats");
    drop(v1_live_file(&orphan, started - 3.0));
    let decisions = ndjson_of(bin("mmstats-clean").arg(dir.path().join("*")));
    let verdict = |name: &str| {
        decisions
            .iter()
            .find(|d| d["file"].as_str().unwrap().ends_with(name))
            .unwrap()
            .clone()
    };
    for live in ["three-s.mmstats", "three-h.mmstats"] {
        let d = verdict(live);
        assert_eq!(
            (&d["verdict"], &d["reason"], &d["removed"]),
            (&"alive".into(), &"running".into(), &false.into()),
            "{live}: {d}"
        );
        assert!(dir.path().join(live).exists());
    }
    let d = verdict("orphan.mmstats");
    assert_eq!(
        (&d["verdict"], &d["reason"], &d["removed"]),
        (&"stale".into(), &"not-mapped".into(), &true.into()),
        "{d}"
    );
    assert!(!orphan.exists());
}

#[test]
fn poll_warns_about_a_field_no_file_has_and_a_pattern_that_matches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(
        fixture("mmstats/minimal-0.8.0.mmstats"),
        dir.path().join("a.mmstats"),
    )
    .unwrap();
    let nothing = dir.path().join("nothing-*.mmstats");
    let out = bin("mmstats-poll")
        .args(["-c", "3", "-d", "0.05", "--format", "ndjson", "hits,y_typo"])
        .arg(dir.path().join("a.mmstats"))
        .arg(&nothing)
        .timeout(PATIENCE)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "mmstats-poll: warning: no stats files match {}\n\
             mmstats-poll: warning: no stats file has a field y_typo\n",
            nothing.display()
        )
    );
    assert_eq!(common::ndjson_lines(&out.stdout).len(), 3);
}

#[test]
fn poll_filters_files_by_field_presence_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let web = Builder::new()
        .counter("hits")
        .static_text("role", "web")
        .path(dir.path().join("web.mmstats"))
        .create()
        .unwrap();
    let db = Builder::new()
        .counter("hits")
        .static_text("role", "db")
        .counter("db.queries")
        .path(dir.path().join("db.mmstats"))
        .create()
        .unwrap();
    web.counter("hits").unwrap().add(5);
    db.counter("hits").unwrap().add(7);
    let totals = |filters: &[&str]| {
        let mut cmd = bin("mmstats-poll");
        cmd.args(["-c", "1", "--format", "ndjson"]);
        for f in filters {
            cmd.args(["-f", f]);
        }
        let rows = ndjson_of(cmd.arg("hits").arg(dir.path().join("*.mmstats")));
        (rows[0]["files"].clone(), rows[0]["totals"]["hits"].clone())
    };
    assert_eq!(totals(&[]), (2.into(), 12.into()));
    assert_eq!(totals(&["role=web"]), (1.into(), 5.into()));
    assert_eq!(totals(&["db."]), (1.into(), 7.into()));
    assert_eq!(totals(&["role=db", "db.queries"]), (1.into(), 7.into()));
    assert_eq!(totals(&["role=cache"]), (0.into(), 0.into()));
}

/// A native file with a field of every kind, each written, as bytes.
fn native_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.mmstats");
    let stats = Builder::new()
        .counter("c")
        .gauge("g")
        .gauge_f64("f")
        .flag("b", true)
        .text("t", 12)
        .average("a")
        .moving_average("m", 4)
        .timer("tm")
        .histogram("h")
        .static_text("s", "static")
        .path(&path)
        .keep_file()
        .create()
        .unwrap();
    stats.counter("c").unwrap().add(3);
    stats.gauge("g").unwrap().set(-4);
    stats.gauge_f64("f").unwrap().set(2.5);
    stats.text("t").unwrap().set("hello");
    stats.average("a").unwrap().add(1.5);
    for v in [1.0, 2.0, 3.0, 4.0, 5.0] {
        stats.average("m").unwrap().add(v);
    }
    for v in [1, 900, 70_000, u64::MAX / 3] {
        stats.histogram("h").unwrap().record(v);
    }
    drop(stats);
    fs::read(&path).unwrap()
}

/// Renders everything read, as every reader does: stat records, slurpstats text.
fn render_all(name: &str, stats: &mmstats::StatsFile) {
    for field in &stats.fields {
        let record = mmstats::render::StatRecord {
            file: name,
            stats,
            field,
            ts: 1.0,
        };
        let line = serde_json::to_string(&record).unwrap();
        measpipe::record::classify(line.as_bytes()).unwrap();
    }
    assert_eq!(
        mmstats::render::slurpstats_lines(name, stats).len(),
        stats.fields.len() + 2
    );
}

/// Byte changes anywhere, values included: (position as a fraction of the length, byte),
/// and whether to cut the file short (at a fraction of its length).
fn corruption() -> impl proptest::strategy::Strategy<Value = (Vec<(f64, u8)>, Option<f64>)> {
    use proptest::prelude::*;
    (
        proptest::collection::vec((0.0..1.0f64, any::<u8>()), 1..24),
        proptest::option::weighted(0.15, 0.0..1.0f64),
    )
}

fn corrupt(good: &[u8], changes: &[(f64, u8)], cut: Option<f64>) -> Vec<u8> {
    let mut bytes = good.to_vec();
    for &(at, byte) in changes {
        let at = ((at * bytes.len() as f64) as usize).min(bytes.len() - 1);
        bytes[at] = byte;
    }
    if let Some(cut) = cut {
        bytes.truncate((cut * bytes.len() as f64) as usize);
    }
    bytes
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    #[test]
    fn corrupt_native_files_read_and_render_without_panic((changes, cut) in corruption()) {
        static GOOD: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let good = GOOD.get_or_init(native_bytes);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.mmstats");
        fs::write(&path, corrupt(good, &changes, cut)).unwrap();
        if let Ok(stats) = mmstats::read(&path) {
            render_all("bad.mmstats", &stats);
        }
    }

    #[test]
    fn corrupt_format1_files_read_and_render_without_panic(
        (changes, cut) in corruption(),
        (later, _) in corruption(),
    ) {
        static GOOD: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let good = GOOD.get_or_init(|| fs::read(fixture("mmstats/alltypes-0.8.0.mmstats")).unwrap());
        let first = corrupt(good, &changes, cut);
        // Through the file, and as a reader sees a file changing under it: a first
        // snapshot, then others with more bytes changed.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.mmstats");
        fs::write(&path, &first).unwrap();
        if let Ok(stats) = mmstats::read(&path) {
            render_all("bad.mmstats", &stats);
        }
        if !first.is_empty() {
            let second = corrupt(&first, &later, None);
            let mut snapshots = [first.clone(), second.clone(), second].into_iter().cycle();
            if let Ok(stats) = v1::read_snapshots(|| Ok(snapshots.next().unwrap())) {
                render_all("bad.mmstats", &stats);
            }
        }
    }
}

#[test]
fn slurp_prom_aggregates_like_multiprocess_mode_and_promtool_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let make = |name: &str, hits: u64, queue: i64, latencies: &[u64]| {
        let stats = Builder::new()
            .label_prefix("web.")
            .counter("hits")
            .gauge("queue")
            .histogram("request_bytes")
            .average("size")
            .text("state", 8)
            .path(d.join(name))
            .keep_file()
            .create_shared()
            .unwrap();
        stats.counter("hits").unwrap().add(hits);
        stats.gauge("queue").unwrap().set(queue);
        for &v in latencies {
            stats.histogram("request_bytes").unwrap().record(v);
            stats.average("size").unwrap().add(v as f64);
        }
        stats
    };
    let _a = make("a.mmstats", 5, 2, &[0, 1, 2]);
    let _b = make("b.mmstats", 7, 3, &[100]);
    // A writer that exited: its counter and observations still count, its gauge does not.
    drop(make("dead.mmstats", 100, 50, &[5000]));
    let dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = {
        let mut dead = dead;
        let pid = dead.id();
        dead.wait().unwrap();
        pid
    };
    // Reopened as live but with the dead pid (a kept file is marked closed, which
    // counts as exited too: undo that to test the pid rule).
    patch(
        &d.join("dead.mmstats"),
        measpipe::mmstats::layout::header::PID,
        &dead_pid.to_ne_bytes(),
    );
    patch(
        &d.join("dead.mmstats"),
        measpipe::mmstats::layout::header::STATE,
        &1u32.to_ne_bytes(),
    );

    let target = d.join("textfile").join("mmstats.prom");
    fs::create_dir(target.parent().unwrap()).unwrap();
    let out = bin("mmstats-slurp")
        .args(["--format", "prom", "--metric-prefix", "app_", "-o"])
        .arg(&target)
        .arg(d.join("*.mmstats"))
        .timeout(PATIENCE)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let text = fs::read_to_string(&target).unwrap();
    let me = std::process::id();
    assert_eq!(
        text,
        format!(
            "# HELP app_web_hits_total mmstats field web.hits\n\
             # TYPE app_web_hits_total counter\n\
             app_web_hits_total 112\n\
             # HELP app_web_queue mmstats field web.queue\n\
             # TYPE app_web_queue gauge\n\
             app_web_queue{{pid=\"{me}\"}} 5\n\
             # HELP app_web_request_bytes mmstats field web.request_bytes\n\
             # TYPE app_web_request_bytes histogram\n\
             app_web_request_bytes_bucket{{le=\"0\"}} 1\n\
             app_web_request_bytes_bucket{{le=\"1\"}} 2\n\
             app_web_request_bytes_bucket{{le=\"3\"}} 3\n\
             app_web_request_bytes_bucket{{le=\"7\"}} 3\n\
             app_web_request_bytes_bucket{{le=\"15\"}} 3\n\
             app_web_request_bytes_bucket{{le=\"31\"}} 3\n\
             app_web_request_bytes_bucket{{le=\"63\"}} 3\n\
             app_web_request_bytes_bucket{{le=\"127\"}} 4\n\
             app_web_request_bytes_bucket{{le=\"255\"}} 4\n\
             app_web_request_bytes_bucket{{le=\"511\"}} 4\n\
             app_web_request_bytes_bucket{{le=\"1023\"}} 4\n\
             app_web_request_bytes_bucket{{le=\"2047\"}} 4\n\
             app_web_request_bytes_bucket{{le=\"4095\"}} 4\n\
             app_web_request_bytes_bucket{{le=\"8191\"}} 5\n\
             app_web_request_bytes_bucket{{le=\"+Inf\"}} 5\n\
             app_web_request_bytes_sum 5103\n\
             app_web_request_bytes_count 5\n\
             # HELP app_web_size mmstats field web.size\n\
             # TYPE app_web_size summary\n\
             app_web_size_sum 5103\n\
             app_web_size_count 5\n"
        )
    );
    if common::have(
        "promtool",
        "Debian's prometheus package checks the exposition",
    ) {
        let check = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(fs::File::open(&target).unwrap())
            .output()
            .unwrap();
        assert_eq!(
            (
                check.status.code(),
                String::from_utf8_lossy(&check.stdout).as_ref(),
                String::from_utf8_lossy(&check.stderr).as_ref()
            ),
            (Some(0), "", "")
        );
    }
}

#[test]
fn publish_tees_every_line_and_counts_what_passes() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let fixed = dir.path().join("p.mmstats");
    let keys = dir.path().join("p-keys.mmstats");
    let mut child = std::process::Command::new(common::bin_path("mmstats-publish"))
        .args([
            "--count-by",
            "event_type",
            "--gauge",
            "n",
            "--histogram",
            "size",
            "-o",
        ])
        .arg(&fixed)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    let mut echoed = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| {
                let mut line = String::new();
                output.read_line(&mut line).unwrap();
                line
            })
            .collect()
    };
    let batch1 = "{\"event_type\":\"a\",\"n\":5,\"size\":100}\n{\"payload\":{\"event_type\":\"x\"},\"event_type\":\"a\",\"n\":7,\"size\":3.4}\nnot json\n{\"event_type\":\"b\",\"n\":-2,\"size\":-1}\n";
    input.write_all(batch1.as_bytes()).unwrap();
    input.flush().unwrap();
    assert_eq!(echoed(4).concat(), batch1);
    let value = |path: &Path, label: &str| {
        mmstats::read(path)
            .unwrap()
            .field(label)
            .unwrap()
            .value
            .clone()
    };
    use mmstats::Value;
    assert_eq!(value(&fixed, "lines"), Value::U64(4));
    assert_eq!(value(&fixed, "bad_lines"), Value::U64(1));
    assert_eq!(value(&fixed, "n"), Value::F64(-2.0));
    match value(&fixed, "size") {
        Value::Histogram(h) => assert_eq!((h.count, h.sum, h.min, h.max), (3, 103, 0, 100)),
        other => panic!("{other:?}"),
    }

    let batch2 = "{\"event_type\":\"c\"}\n{\"event_type\":\"a\"}\n";
    input.write_all(batch2.as_bytes()).unwrap();
    input.flush().unwrap();
    assert_eq!(echoed(2).concat(), batch2);
    for (label, count) in [
        ("event_type.a", 3),
        ("event_type.b", 1),
        ("event_type.c", 1),
    ] {
        assert_eq!(value(&keys, label), Value::U64(count), "{label}");
    }
    assert_eq!(value(&fixed, "lines"), Value::U64(6));
    drop(input);
    assert!(child.wait().unwrap().success());
    assert!(!fixed.exists() && !keys.exists());
}
