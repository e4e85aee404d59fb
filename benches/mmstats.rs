//! mmstats benchmarks: the writer's hot paths, the `metrics` facade through the mmstats
//! recorder, and `mmstats-slurp` over 1,000 files.
//!
//! `cargo bench --bench mmstats` (figures in BENCHMARKS.md). Each writer figure is the
//! best of five runs of a tight loop on a file in the temp dir, in ns per update; the
//! slurp figure is the best of five runs of the release binary, output to /dev/null.
//! Pin it to one core (`taskset -c 0`) for steadier numbers.

use std::hint::black_box;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use measpipe::mmstats::{Builder, Local, Mode, Shared, Stats};

const UPDATES: u64 = 50_000_000;
const FILES: usize = 1_000;

fn best_of_five(mut run: impl FnMut() -> Duration) -> Duration {
    (0..5).map(|_| run()).min().unwrap_or_default()
}

fn per_update(name: &str, updates: u64, mut body: impl FnMut(u64)) {
    let best = best_of_five(|| {
        let started = Instant::now();
        for i in 0..updates {
            body(black_box(i));
        }
        started.elapsed()
    });
    println!(
        "{name:<40} {:>7.2} ns/update",
        best.as_nanos() as f64 / updates as f64
    );
}

fn declare() -> Builder {
    Builder::new()
        .counter("hits")
        .histogram("latency_ns")
        .average("avg")
        .text("status", 32)
        .gauge("queue")
}

fn writer_benchmarks<M: Mode>(stats: &Stats<M>, mode: &str) {
    let hits = stats.counter("hits").unwrap();
    let latency = stats.histogram("latency_ns").unwrap();
    let avg = stats.average("avg").unwrap();
    let status = stats.text("status").unwrap();
    let queue = stats.gauge("queue").unwrap();
    per_update(&format!("counter incr ({mode})"), UPDATES, |_| hits.incr());
    per_update(&format!("gauge set ({mode})"), UPDATES, |i| {
        queue.set(i as i64)
    });
    // Values spread over many buckets, as latencies are.
    per_update(&format!("histogram record ({mode})"), UPDATES, |i| {
        latency.record((i.wrapping_mul(2_654_435_761) & 0xf_ffff) + 100)
    });
    per_update(&format!("average add ({mode})"), UPDATES / 5, |i| {
        avg.add(i as f64)
    });
    per_update(&format!("text set, 20 bytes ({mode})"), UPDATES / 5, |_| {
        status.set("degraded: 3 of 5 up")
    });
}

/// The `metrics` facade's handles through the mmstats recorder (issue 17: a counter
/// increment ≤ 5 ns), as an instrumented program holds them: registered once, then updated
/// in the loop. Beside them in the same run, the writer's own updates above (the floor),
/// and the facade's no-op recorder (the facade's own cost: an `Arc<dyn CounterFn>` call).
fn recorder_benchmarks(dir: &Path) {
    use measpipe::mmstats::recorder::MmstatsRecorder;
    let recorder = MmstatsRecorder::builder()
        .path_template(dir.join("bench-{PID}-{TID}.mmstats"))
        .histogram_scale(1e9)
        .build();
    metrics::with_local_recorder(&recorder, || {
        let hits = metrics::counter!("hits");
        let latency = metrics::histogram!("latency_seconds");
        let queue = metrics::gauge!("queue");
        per_update("counter increment (metrics facade)", UPDATES, |_| {
            hits.increment(1)
        });
        per_update("histogram record (metrics facade)", UPDATES / 5, |i| {
            latency.record(((i.wrapping_mul(2_654_435_761) & 0xf_ffff) + 100) as f64 * 1e-9)
        });
        per_update("gauge set (metrics facade)", UPDATES / 5, |i| {
            queue.set(i as f64)
        });
    });
    assert_eq!(recorder.errors(), (0, None));
    let noop = metrics::NoopRecorder;
    metrics::with_local_recorder(&noop, || {
        let hits = metrics::counter!("hits");
        per_update(
            "counter increment (facade, no-op recorder)",
            UPDATES,
            |_| hits.increment(1),
        );
    });
}

fn slurp(binary: &str, files: &Path, what: &str) {
    let pattern = files.join("*.mmstats");
    let best = best_of_five(|| {
        let started = Instant::now();
        let status = Command::new(binary)
            .arg(&pattern)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        started.elapsed()
    });
    println!(
        "{:<40} {:>7.1} ms",
        format!("mmstats-slurp, {FILES} {what}"),
        best.as_secs_f64() * 1e3
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let local: Stats<Local> = declare()
        .path(dir.path().join("local.mmstats"))
        .create()
        .unwrap();
    writer_benchmarks(&local, "one writer thread");
    let shared: Stats<Shared> = declare()
        .path(dir.path().join("shared.mmstats"))
        .create_shared()
        .unwrap();
    writer_benchmarks(&shared, "shared file, uncontended");
    recorder_benchmarks(dir.path());

    // MEASPIPE_BIN_DIR names another build's binaries (benches/before-after.sh uses it).
    let binary = std::env::var("MEASPIPE_BIN_DIR")
        .map(|dir| format!("{dir}/mmstats-slurp"))
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_mmstats-slurp").to_owned());
    let binary = binary.as_str();
    let native = tempfile::tempdir().unwrap();
    let files: Vec<Stats<Local>> = (0..FILES)
        .map(|i| {
            declare()
                .label_prefix("web.")
                .static_text("version", "1.2.3")
                .path(native.path().join(format!("web-{i}.mmstats")))
                .create()
                .unwrap()
        })
        .collect();
    slurp(binary, native.path(), "native files (6 fields)");
    drop(files);

    let v1 = tempfile::tempdir().unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mmstats/alltypes-0.8.0.mmstats");
    for i in 0..FILES {
        std::fs::copy(&fixture, v1.path().join(format!("py-{i}.mmstats"))).unwrap();
    }
    slurp(binary, v1.path(), "format 1 files (31 fields)");
}
