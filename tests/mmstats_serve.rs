//! mmstats-serve against what mmash answered (the golden responses and, where pyenv's 2.7
//! has it, the real mmash 0.8.0 on the same files), Prometheus' promtool, and headless
//! Chromium watching the live page while a writer runs (issue 17).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::{bin_path, fixture, free_port, BackgroundServer};
use measpipe::mmstats::{layout, Builder};
use serde_json::{json, Value as Json};

/// An mmstats-serve on a free loopback port, over `dir`.
fn serve(dir: &Path, extra: &[&str]) -> BackgroundServer {
    let port = free_port();
    let mut command = Command::new(bin_path("mmstats-serve"));
    command
        .arg("--dir")
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .stderr(Stdio::null());
    BackgroundServer::start(command, port, Duration::from_secs(20))
}

/// One GET: status, content type and body.
fn get(server: &BackgroundServer, path: &str, accept: Option<&str>) -> (u16, String, String) {
    request(server, "GET", path, accept)
}

fn request(
    server: &BackgroundServer,
    method: &str,
    path: &str,
    accept: Option<&str>,
) -> (u16, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", server.addr));
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let mut response = agent.run(request.body(()).unwrap()).unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (status, content_type, body)
}

/// The three per-thread files of one real mmstats 0.8.0 writer, in a directory of their own.
fn live_080_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for tid in ["11220", "11223", "11224"] {
        let name = format!("live_080.py-11220-{tid}.mmstats");
        fs::copy(fixture(&format!("mmstats/{name}")), dir.path().join(name)).unwrap();
    }
    dir
}

/// A JSON answer with its order-free parts sorted: mmash lists files and a label's values
/// in the directory's order, mmstats-serve in sorted order.
fn unordered(mut answer: Json) -> Json {
    if let Some(object) = answer.as_object_mut() {
        for value in object.values_mut() {
            if let Some(list) = value.as_array_mut() {
                list.sort_by_key(|v| v.to_string());
            }
        }
    }
    answer
}

/// The golden file's requests and what mmash answered: (path, status, body).
fn golden_mmash() -> Vec<(String, u16, String)> {
    let text = fs::read_to_string(fixture("mmstats/golden/live_080.mmash-responses.txt")).unwrap();
    text.split("### GET ")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let (path, rest) = block.split_once('\n').unwrap();
            let status: u16 = rest.split(' ').nth(1).unwrap().parse().unwrap();
            let body = rest.split_once("\r\n\r\n").unwrap().1.trim().to_owned();
            (path.to_owned(), status, body)
        })
        .collect()
}

#[test]
fn the_json_api_answers_what_mmash_answered() {
    let dir = live_080_dir();
    let server = serve(dir.path(), &[]);
    let golden = golden_mmash();
    assert_eq!(golden.len(), 11);
    for (path, status, body) in golden {
        let (got_status, content_type, got) = get(&server, &path, None);
        assert_eq!(got_status, status, "{path}: {got}");
        assert_eq!(content_type, "application/json", "{path}");
        let got: Json = serde_json::from_str(&got).unwrap();
        if status == 200 {
            let want: Json = serde_json::from_str(
                &body.replace("/var/run/mmlive", &dir.path().to_string_lossy()),
            )
            .unwrap();
            assert_eq!(unordered(got), unordered(want), "{path}");
        } else {
            // mmash answered Flask's HTML page; ours says why.
            assert!(
                got["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{path}: {got}"
            );
        }
    }
    // Values come in the order /files/ lists the files.
    let (_, _, files) = get(&server, "/files/", None);
    let (_, _, ok) = get(&server, "/stats/flask.example.ok?exact=1", None);
    assert_eq!(
        serde_json::from_str::<Json>(&files).unwrap()["files"],
        json!(["11220", "11223", "11224"]
            .map(|t| format!("{}/live_080.py-11220-{t}.mmstats", dir.path().display())))
    );
    assert_eq!(ok, r#"{"flask.example.ok":[120,240,360]}"#);
}

#[test]
fn exact_works_globs_stay_in_the_directory_and_errors_are_json() {
    let dir = live_080_dir();
    let server = serve(dir.path(), &[]);
    let body = |path: &str| {
        let (status, _, body) = get(&server, path, None);
        (status, serde_json::from_str::<Json>(&body).unwrap())
    };
    // mmash's exact=1 still matched prefixes; here it means the label alone.
    assert_eq!(body("/stats/flask.example.o?exact=1"), (200, json!({})));
    assert_eq!(
        body("/stats/flask.example.bad?exact=1&aggr=nonzero-avg"),
        (200, json!({"flask.example.bad": 12.0}))
    );
    assert_eq!(
        body("/stats/flask.example.working?aggr=nonzero-min"),
        (
            400,
            json!({"error": "aggr: flask.example.working: every value is zero"})
        )
    );
    // An aggregation mmash does not know is ignored by /stats/, as by mmash.
    assert_eq!(
        body("/stats/flask.example.bad?aggr=median").1,
        json!({"flask.example.bad": [12, 12, 12]})
    );
    assert_eq!(
        body("/stats/x?glob=/etc/*"),
        (
            400,
            json!({"error": "glob \"/etc/*\": patterns are relative to the stats directory"})
        )
    );
    assert_eq!(body("/files/..%2F*").0, 400);
    // A class that spells '..' matches no directory entry: the glob lists none.
    let outside = tempfile::tempdir_in(dir.path().parent().unwrap()).unwrap();
    fs::copy(
        fixture("mmstats/minimal-0.8.0.mmstats"),
        outside.path().join("x.mmstats"),
    )
    .unwrap();
    let sneaky = format!(
        "/files/[.][.]%2F{}%2F*",
        outside.path().file_name().unwrap().to_string_lossy()
    );
    assert_eq!(body(&sneaky), (200, json!({"files": []})));
    assert_eq!(
        body("/nowhere"),
        (404, json!({"error": "no such page: /nowhere"}))
    );
    assert_eq!(body("/health"), (200, json!({"status": "ok"})));
    let (status, _, text) = request(&server, "POST", "/stats/", None);
    assert_eq!(
        (status, text.as_str()),
        (
            405,
            r#"{"error":"POST is not served here; only GET and HEAD"}"#
        )
    );
    let (status, content_type, text) = request(&server, "HEAD", "/stats/", None);
    assert_eq!(
        (status, content_type.as_str(), text.as_str()),
        (200, "application/json", "")
    );
}

#[test]
fn the_real_mmash_agrees_on_the_same_files() {
    let Some(python) = common::python27_with("mmstats.mmash", "mmstats 0.8.0 and Flask") else {
        return;
    };
    let dir = live_080_dir();
    // A file mmash cannot read, which both skip, and a native one only we read.
    fs::write(dir.path().join("garbage.mmstats"), b"\x07not stats").unwrap();
    let ours = serve(dir.path(), &[]);
    let port = free_port();
    let settings = dir.path().join("settings.py");
    fs::write(
        &settings,
        format!(
            "MMSTATS_GLOB = {:?}\nDEBUG = False\nHOST = '127.0.0.1'\nPORT = {port}\n",
            format!("{}/*.mmstats", dir.path().display())
        ),
    )
    .unwrap();
    let mut command = Command::new(python);
    command
        .args(["-m", "mmstats.mmash"])
        .env("MMASH_SETTINGS", &settings)
        .env("MMSTATS_PATH", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mmash = BackgroundServer::start(command, port, Duration::from_secs(30));
    let mut compared = 0;
    for path in [
        "/stats/",
        "/stats/flask.example.",
        "/stats/flask.example.latency",
        "/stats/flask.example.working",
        "/stats/flask.example.sys.pid",
        "/stats/nothing.here",
        "/files/",
        "/files/*-11223.mmstats",
        "/stats/flask.example.ok?glob=*-1122[34].mmstats",
        "/stats/x?glob=../*",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(
        [
            "avg",
            "one",
            "max",
            "min",
            "sum",
            "nonzero-min",
            "nonzero-avg",
            "median",
        ]
        .iter()
        .flat_map(|aggr| {
            [
                "ok",
                "bad",
                "latency",
                "working",
                "sys.created",
                "org.python.version",
            ]
            .map(|label| format!("/stats/flask.example.{label}?aggr={aggr}"))
        }),
    ) {
        let (status, _, body) = get(&ours, &path, None);
        let (want_status, _, want) = get(&mmash, &path, None);
        assert_eq!(status, want_status, "{path}: ours {body}, mmash {want}");
        if status == 200 {
            let body: Json = serde_json::from_str(&body).unwrap();
            let want: Json = serde_json::from_str(&want).unwrap();
            if path.contains("aggr=one") {
                // The first file's value: directory order there, sorted order here.
                assert_eq!(
                    body.as_object().unwrap().len(),
                    want.as_object().unwrap().len()
                );
            } else {
                assert_eq!(unordered(body), unordered(want), "{path}");
            }
        }
        compared += 1;
    }
    assert_eq!(compared, 58);
}

/// A native stats file whose writer has exited: made here, then given a pid that cannot
/// exist and the state of a file still being written.
fn exited_writer_file(path: &Path, requests: u64, bytes: &[u64]) {
    let stats = Builder::new()
        .label_prefix("web.")
        .counter("requests")
        .gauge("queue")
        .histogram("request_bytes")
        .path(path)
        .keep_file()
        .create()
        .unwrap();
    stats.counter("requests").unwrap().add(requests);
    stats.gauge("queue").unwrap().set(9);
    for &b in bytes {
        stats.histogram("request_bytes").unwrap().record(b);
    }
    drop(stats);
    let mut data = fs::read(path).unwrap();
    let pid_max: u32 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    data[layout::header::PID..layout::header::PID + 4]
        .copy_from_slice(&(pid_max + 7).to_ne_bytes());
    data[layout::header::STATE..layout::header::STATE + 4]
        .copy_from_slice(&layout::STATE_LIVE.to_ne_bytes());
    // Replace, not rewrite: a new inode, as a writer's rename makes.
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// A writer thread of this process: `requests` counts up and `request_bytes` records until
/// the returned flag is set. Returns once the file exists.
fn running_writer(path: PathBuf) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready, created) = mpsc::channel();
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let stats = Builder::new()
            .label_prefix("web.")
            .counter("requests")
            .gauge("queue")
            .histogram("request_bytes")
            .path(&path)
            .create()
            .unwrap();
        let requests = stats.counter("requests").unwrap();
        let histogram = stats.histogram("request_bytes").unwrap();
        stats.gauge("queue").unwrap().set(2);
        ready.send(()).unwrap();
        let mut n = 0u64;
        while !flag.load(Ordering::Relaxed) {
            requests.add(1);
            histogram.record(1000 + n % 5000);
            n += 1;
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    created.recv().unwrap();
    (stop, thread)
}

/// The value of the one sample line `name` (with its labels) of an exposition.
fn sample(text: &str, name: &str) -> f64 {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.split(' ').next() == Some(name))
        .collect();
    assert_eq!(lines.len(), 1, "{name} in\n{text}");
    lines[0].rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn metrics_pass_promtool_count_exited_writers_and_follow_a_live_one() {
    let dir = tempfile::tempdir().unwrap();
    exited_writer_file(&dir.path().join("web-1.mmstats"), 1000, &[10, 20, 30]);
    exited_writer_file(&dir.path().join("web-2.mmstats"), 500, &[40]);
    let (stop, writer) = running_writer(dir.path().join("web-live.mmstats"));
    let server = serve(dir.path(), &["--metric-prefix", "app_"]);

    let (status, content_type, first) = get(&server, "/metrics", None);
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let me = std::process::id();
    // Exited writers' counters and histograms count; their gauges do not.
    assert!(sample(&first, "app_web_requests_total") > 1500.0, "{first}");
    assert_eq!(
        sample(&first, &format!("app_web_queue{{pid=\"{me}\"}}")),
        2.0
    );
    assert!(sample(&first, "app_web_request_bytes_count") > 4.0);
    assert!(first.contains("# TYPE app_web_request_bytes histogram\n"));
    if common::have("promtool", "checks the Prometheus exposition") {
        let mut check = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut check.stdin.take().unwrap(), first.as_bytes()).unwrap();
        let out = check.wait_with_output().unwrap();
        assert!(out.status.success(), "promtool: {out:?}");
        assert_eq!(
            (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            ("".into(), "".into()),
            "promtool warned"
        );
    }

    // The live writer's counter moves between scrapes.
    let before = sample(&first, "app_web_requests_total");
    let mut after = before;
    for _ in 0..200 {
        let (_, _, again) = get(&server, "/metrics", None);
        after = sample(&again, "app_web_requests_total");
        if after > before {
            break;
        }
    }
    assert!(after > before, "the total stayed {before}");

    // An exited writer's file is remembered, but not past its replacement or removal.
    exited_writer_file(&dir.path().join("web-1.mmstats"), 3000, &[1, 2, 3]);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let (_, _, replaced) = get(&server, "/metrics", None);
    assert_eq!(
        sample(&replaced, "app_web_requests_total"),
        3500.0,
        "{replaced}"
    );
    fs::remove_file(dir.path().join("web-2.mmstats")).unwrap();
    let (_, _, removed) = get(&server, "/metrics", None);
    assert_eq!(sample(&removed, "app_web_requests_total"), 3000.0);
    assert_eq!(sample(&removed, "app_web_request_bytes_count"), 3.0);

    let (status, content_type, open) = get(
        &server,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    );
    assert_eq!(status, 200);
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(open.ends_with("\n# EOF\n"), "{open}");
    assert!(open.contains("# TYPE app_web_requests counter\napp_web_requests_total 3000\n"));
}

/// The text of the element with `id` in a dumped DOM.
fn element(dom: &str, id: &str) -> String {
    let start = dom
        .find(&format!("id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no #{id} in {dom}"));
    let text = &dom[start + id.len() + 6..];
    text[..text.find('<').unwrap()].to_owned()
}

#[test]
fn the_live_page_changes_on_screen_while_a_writer_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (stop, writer) = running_writer(dir.path().join("web-live.mmstats"));
    let server = serve(dir.path(), &[]);
    // Without a script the page still shows every chosen field's value now.
    let query =
        "field=web.requests&field=web.request_bytes&field=web.queue&field=no.such&interval=100";
    let (status, content_type, page) = get(&server, &format!("/graph/?{query}"), None);
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/html; charset=utf-8")
    );
    assert!(
        element(&page, "first-0").parse::<u64>().unwrap() > 0,
        "{page}"
    );
    assert_eq!(element(&page, "first-2"), "2");
    assert_eq!(element(&page, "first-3"), "no file has it");
    assert!(
        !page.contains("src=") && !page.contains("href=\"http"),
        "the page loads nothing"
    );
    let (_, _, index) = get(&server, "/", None);
    assert!(
        index.contains("<a href=\"stats/web.requests?exact=1\">web.requests</a>"),
        "{index}"
    );

    if !common::have("chromium", "renders the live page") {
        stop.store(true, Ordering::Relaxed);
        return;
    }
    let artifacts = common::repo_root().join("target/test-artifacts");
    fs::create_dir_all(&artifacts).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{}/graph/?{query}", server.addr);
    // Timers run in virtual time, so the page polls many times in a moment; every poll is a
    // real request to the server, while the writer goes on in real time.
    let chromium = |args: &[&str]| {
        let mut all = vec!["--virtual-time-budget=3000"];
        all.extend_from_slice(args);
        common::chromium(&url, profile.path(), &all)
    };
    let dom = chromium(&["--dump-dom"]);
    let polls: u64 = element(&dom, "polls").parse().unwrap();
    assert!(polls >= 3, "{polls} polls");
    let number = |text: String| -> u64 { text.split(' ').next().unwrap().parse().unwrap() };
    let first = number(element(&dom, "first-0"));
    let latest = number(element(&dom, "latest-0"));
    assert!(
        latest > first,
        "requests on screen: {first} at load, {latest} now"
    );
    assert!(
        element(&dom, "latest-0").ends_with("/s)"),
        "a rate is shown"
    );
    assert!(element(&dom, "latest-1").contains(" · p99 "), "{dom}");
    for chart in ["chart-0", "chart-1", "chart-2"] {
        let svg = &dom[dom.find(&format!("id=\"{chart}\"")).unwrap()..];
        let svg = &svg[..svg.find("</svg>").unwrap()];
        assert!(svg.contains("<polyline"), "{chart} has no line: {svg}");
    }
    let page_requests = common::page_requests(profile.path());
    assert!(page_requests.len() as u64 >= polls, "{page_requests:?}");
    let origin = format!("http://{}/", server.addr);
    assert!(
        page_requests.iter().all(|u| u.starts_with(&origin)),
        "requests left the server: {page_requests:?}"
    );
    let shot = artifacts.join("mmstats-serve-live.png");
    let _ = fs::remove_file(&shot);
    chromium(&[&format!("--screenshot={}", shot.display())]);
    let png = fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{}",
        shot.display()
    );
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}

#[test]
fn the_metrics_recorder_publishes_exact_counts_that_the_readers_sum() {
    use measpipe::mmstats::recorder::MmstatsRecorder;
    let dir = tempfile::tempdir().unwrap();
    let recorder = MmstatsRecorder::builder()
        .path_template(dir.path().join("app-{PID}-{TID}.mmstats"))
        .label_prefix("app.")
        .histogram_scale(1e6)
        .build();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let recorder = recorder.clone();
            std::thread::spawn(move || {
                metrics::with_local_recorder(&recorder, || {
                    let requests = metrics::counter!("requests", "method" => "GET");
                    let latency = metrics::histogram!("latency");
                    for i in 0..10_000u64 {
                        requests.increment(1);
                        latency.record((i % 100) as f64 / 1e6);
                        if i == 5_000 {
                            // A registration midway: every thread regrows its file and
                            // carries its counts over.
                            metrics::counter!("late", "thread" => t.to_string()).increment(7);
                        }
                    }
                    metrics::gauge!("workers").increment(1.0);
                    metrics::counter!("requests", "method" => "GET").absolute(1);
                });
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    metrics::with_local_recorder(&recorder, || metrics::gauge!("workers").decrement(0.5));
    assert_eq!(recorder.errors(), (0, None));
    // Four threads' files (closed as their threads exited) and the process's gauges.
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(names.contains(&format!("app-{}-0.mmstats", std::process::id())));

    let out = common::bin("mmstats-slurp")
        .args(["--format", "prom"])
        .arg(dir.path().join("*.mmstats"))
        .output()
        .unwrap();
    common::assert_success(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        sample(&text, "app_requests_method_GET_total"),
        40_000.0,
        "{text}"
    );
    for t in 0..4 {
        assert_eq!(sample(&text, &format!("app_late_thread_{t}_total")), 7.0);
    }
    assert_eq!(sample(&text, "app_latency_count"), 40_000.0);
    // Microseconds 0..99, each 400 times: the sum is exact.
    assert_eq!(sample(&text, "app_latency_sum"), 400.0 * 4950.0);
    let me = std::process::id();
    assert_eq!(sample(&text, &format!("app_workers{{pid=\"{me}\"}}")), 3.5);

    // mmstats-serve reads the same files.
    let server = serve(dir.path(), &[]);
    let (_, _, metrics) = get(&server, "/metrics", None);
    assert_eq!(sample(&metrics, "app_requests_method_GET_total"), 40_000.0);
    let (_, _, sum) = get(&server, "/stats/app.requests.method.GET?aggr=sum", None);
    assert_eq!(sum, r#"{"app.requests.method.GET":40000}"#);

    // A label no stats file can hold gets a no-op handle, and the thread's other counters
    // go on.
    let long = "x".repeat(70_000);
    std::thread::spawn(move || {
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!(long).increment(1);
            metrics::counter!("after").increment(2);
        });
        let (errors, cause) = recorder.errors();
        assert_eq!(errors, 1);
        assert!(cause.unwrap().starts_with("metric label of 70004 bytes"));
    })
    .join()
    .unwrap();
    let (_, _, after) = get(&server, "/stats/app.after?aggr=sum", None);
    assert_eq!(after, r#"{"app.after":2}"#);
}

/// A pipeline's shell, in a process group of its own, killed whole on drop.
struct Pipeline(std::process::Child);

impl Drop for Pipeline {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; a negative pid names the group.
        unsafe { libc::kill(-(self.0.id() as libc::pid_t), libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

#[test]
fn mmstats_serve_and_poll_watch_a_live_pipeline_through_mmstats_publish() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("passed.ndjson");
    let bins = bin_path("notigen-emit").parent().unwrap().to_owned();
    // The README's example, as written there (a faster feed, files in a directory).
    let pipeline = Pipeline(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "notigen-emit --realtime --ops-per-minute 1200 --seed 3 | mmstats-publish --count-by event_type -o {dir}/n.mmstats | record-check --kind notification > {out}",
                dir = dir.path().display(),
                out = out.display()
            ))
            .env("PATH", format!("{}:{}", bins.display(), std::env::var("PATH").unwrap()))
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    let server = serve(dir.path(), &[]);
    let lines = |server: &BackgroundServer| -> u64 {
        let (_, _, body) = get(server, "/stats/lines?exact=1&aggr=sum", None);
        serde_json::from_str::<Json>(&body).unwrap()["lines"]
            .as_u64()
            .unwrap_or(0)
    };
    let mut counted = 0;
    for _ in 0..300 {
        counted = lines(&server);
        if counted >= 20 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(counted >= 20, "only {counted} lines counted in 30 s");
    // A line seen downstream was counted before it got there.
    let passed = fs::read_to_string(&out).unwrap();
    let passed: Vec<Json> = passed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (_, _, keys) = get(&server, "/stats/event_type.", None);
    let now = lines(&server);
    let keys: Json = serde_json::from_str(&keys).unwrap();
    assert!(
        now >= passed.len() as u64,
        "{now} counted, {} passed",
        passed.len()
    );
    for record in &passed {
        let label = format!("event_type.{}", record["event_type"].as_str().unwrap());
        assert!(keys.get(&label).is_some(), "{label} not published: {keys}");
    }
    let (_, _, bad) = get(&server, "/stats/bad_lines?exact=1&aggr=sum", None);
    assert_eq!(bad, r#"{"bad_lines":0}"#);
    // mmstats-poll reads the same files.
    let poll = common::bin("mmstats-poll")
        .args(["--format", "ndjson", "-c", "1", "-d", "0.1"])
        .args(["lines"])
        .arg(dir.path().join("n.mmstats"))
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    common::assert_success(&poll);
    let tick: Json = serde_json::from_slice(&poll.stdout).unwrap();
    assert!(tick["totals"]["lines"].as_u64().unwrap() >= now, "{tick}");
    drop(pipeline);
}

#[test]
fn silent_and_idle_clients_are_bounded_and_the_cap_refuses_the_rest() {
    let dir = live_080_dir();
    let server = serve(
        dir.path(),
        &[
            "--request-timeout",
            "1",
            "--idle-timeout",
            "1",
            "--max-connections",
            "2",
        ],
    );
    // Two clients that say nothing hold the cap; a third is closed at once.
    let held = common::held_connections(server.addr, 2);
    let refused = common::until_closed(std::net::TcpStream::connect(server.addr).unwrap()).1;
    assert!(refused < Duration::from_millis(900), "{refused:?}");
    // Each silent client is cut off after the request timeout.
    for stream in held {
        let took = common::until_closed(stream).1;
        assert!(took < Duration::from_secs(4), "{took:?}");
    }
    // Then the server answers again (a closed connection gives its slot back as its task
    // ends, a moment after the close).
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("http://{}/health", server.addr);
    let answered = (0..100).find_map(|_| match agent.get(&url).call() {
        Ok(response) => Some(response.status().as_u16()),
        Err(_) => {
            std::thread::sleep(Duration::from_millis(20));
            None
        }
    });
    assert_eq!(answered, Some(200));
}
