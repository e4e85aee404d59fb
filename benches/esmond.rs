//! esmond-serve benchmarks: bulk ingest and base-data reads over loopback HTTP, metadata
//! search latency with 100,000 metadata, and how a time-window query grows with the points
//! stored (10^4 … 10^6; 10^7 with `MEASPIPE_BENCH_HUGE=1`).
//!
//! `cargo bench --bench esmond` (figures in BENCHMARKS.md). The server is the release
//! binary on a temporary data directory; bulk fixtures are loaded through the library.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use measpipe::esmond::store::{NewMetadata, Store};
use measpipe::esmond::types::Summary;
use serde_json::{json, Value};

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(dir: &Path) -> Server {
        Server::start_on(&["--data".as_ref(), dir.as_os_str()])
    }

    /// esmond-serve with these store arguments (`--data DIR` or `--store URL`).
    fn start_on(store: &[&std::ffi::OsStr]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // MEASPIPE_BIN_DIR names another build's binaries (to compare two in one run).
        let binary = std::env::var("MEASPIPE_BIN_DIR")
            .map(|dir| format!("{dir}/esmond-serve"))
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_esmond-serve").to_owned());
        let child = Command::new(binary)
            .args(store)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, port }
    }
    fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/esmond/perfsonar/archive/{path}",
            self.port
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bulk PUT of `body` to `url` with token `key`: the answer's status. The answer is read
/// to its end, as a client does, so the connection is kept for the next request (ureq
/// closes one whose body was left unread).
fn put(agent: &ureq::Agent, url: &str, key: &str, body: &str) -> u16 {
    let mut reply = agent
        .put(url)
        .header("Authorization", &format!("Token {key}"))
        .header("Content-Type", "application/json")
        .send(body.as_bytes())
        .unwrap();
    let _ = reply.body_mut().read_to_vec().unwrap();
    reply.status().as_u16()
}

/// The text of a GET of `url`.
fn get_text(agent: &ureq::Agent, url: &str) -> String {
    agent
        .get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn metadata(i: usize) -> NewMetadata {
    NewMetadata {
        subject_type: "point-to-point".into(),
        subject: vec![
            ("source", format!("10.{}.{}.1", i / 250 % 250, i % 250)),
            ("destination", format!("10.{}.{}.2", i / 250 % 250, i % 250)),
            (
                "measurement-agent",
                format!("10.{}.{}.1", i / 250 % 250, i % 250),
            ),
            (
                "tool-name",
                if i.is_multiple_of(3) {
                    "pscheduler/iperf3"
                } else {
                    "bwctl/iperf3"
                }
                .into(),
            ),
            ("input-source", format!("host{i}.example.net")),
            ("input-destination", format!("peer{i}.example.net")),
        ],
        parameters: vec![
            ("time-duration".into(), "30".into()),
            ("bw-parallel-streams".into(), (i % 4 + 1).to_string()),
        ],
        event_types: vec![
            ("throughput".into(), vec![(Summary::Average, 86400)]),
            ("packet-retransmits".into(), vec![]),
            ("failures".into(), vec![]),
        ],
    }
}

/// A bulk PUT body of `n` throughput points from `first`, `step` seconds apart, the i-th
/// worth 9,000,000,000 + i.
fn bulk_body(first: i64, step: i64, n: usize) -> String {
    let data: Vec<Value> = (0..n as i64)
        .map(|i| json!({"ts": first + i * step, "val": [{"event-type": "throughput", "val": 9_000_000_000i64 + i}]}))
        .collect();
    json!({ "data": data }).to_string()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
}

fn ingest_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let key = store.add_token("bench", 0).unwrap();
    let (mk, _) = store.create_metadata(&metadata(0)).unwrap();
    drop(store);
    let server = Server::start(dir.path());
    let agent = agent();
    let (batches, per_batch) = (100, 2000);
    let started = Instant::now();
    for batch in 0..batches {
        let first = 1_700_000_000 + (batch * per_batch) as i64 * 10;
        let body = bulk_body(first, 10, per_batch);
        let reply = agent
            .put(&server.url(&format!("{mk}/")))
            .header("Authorization", &format!("Token {key}"))
            .header("Content-Type", "application/json")
            .send(body.as_bytes())
            .unwrap();
        assert_eq!(reply.status().as_u16(), 201);
    }
    let points = (batches * per_batch) as f64;
    let elapsed = started.elapsed().as_secs_f64();
    println!("bulk ingest: {points} points (throughput + its daily average) in {elapsed:.2} s: {:.0} points/s", points / elapsed);

    let url = server.url(&format!(
        "{mk}/throughput/base?time-start=0&time-end=2000000000&limit=1000000"
    ));
    let mut best = Duration::MAX;
    let mut count = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let body = get_text(&agent, &url);
        best = best.min(started.elapsed());
        count = body.matches("\"ts\"").count();
    }
    println!(
        "base-data read: {count} points in {:.1} ms: {:.0} points/s",
        best.as_secs_f64() * 1e3,
        count as f64 / best.as_secs_f64()
    );
}

fn metadata_search() {
    metadata_search_on(None);
}

/// [`metadata_search`] on the embedded store, or on the PostgreSQL database at `url`
/// (migrated, empty).
fn metadata_search_on(url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let store = match url {
        Some(url) => Store::open_pg(url).unwrap(),
        None => Store::open(dir.path()).unwrap(),
    };
    let on = if url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let total = 100_000;
    let started = Instant::now();
    for chunk in (0..total).collect::<Vec<_>>().chunks(10_000) {
        let batch: Vec<NewMetadata> = chunk.iter().map(|&i| metadata(i)).collect();
        store.create_metadata_batch(&batch).unwrap();
    }
    println!(
        "loaded {total} metadata in {:.1} s on {on}",
        started.elapsed().as_secs_f64()
    );
    drop(store);
    let server = match url {
        Some(url) => Server::start_on(&["--store".as_ref(), url.as_ref()]),
        None => Server::start(dir.path()),
    };
    let agent = agent();
    for (name, query) in [
        (
            "source+destination",
            &(|i: usize| {
                format!(
                    "?source=10.{}.{}.1&destination=10.{}.{}.2",
                    i / 250 % 250,
                    i % 250,
                    i / 250 % 250,
                    i % 250
                )
            }) as &dyn Fn(usize) -> String,
        ),
        ("input-source+event-type", &|i: usize| {
            format!("?input-source=host{i}.example.net&event-type=throughput")
        }),
        ("tool-name+bw-parallel-streams, limit 10", &|i: usize| {
            format!(
                "?tool-name=bwctl/iperf3&bw-parallel-streams={}&limit=10&offset={}",
                i % 4 + 1,
                i % 1000
            )
        }),
    ] {
        let mut latencies = Vec::new();
        for n in 0..1000 {
            let i = (n * 7919) % total;
            let started = Instant::now();
            let reply = agent.get(&server.url(&query(i))).call().unwrap();
            assert_eq!(reply.status().as_u16(), 200);
            latencies.push(started.elapsed());
        }
        latencies.sort();
        println!(
            "metadata search ({name}) over {total} on {on}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0)
        );
    }
}

fn growth() {
    let mut sizes = vec![10_000usize, 100_000, 1_000_000];
    if std::env::var_os("MEASPIPE_BENCH_HUGE").is_some() {
        sizes.push(10_000_000);
    }
    for n in sizes {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (mk, _) = store.create_metadata(&metadata(0)).unwrap();
        let started = Instant::now();
        let chunk = 100_000;
        for start in (0..n).step_by(chunk) {
            let points = (start..(start + chunk).min(n)).map(|i| {
                Ok(vec![(
                    i as i64 * 60,
                    std::borrow::Cow::Borrowed("throughput"),
                    json!(1_000_000 + i),
                )])
            });
            store.write_points(&mk, points).unwrap();
        }
        let load = started.elapsed().as_secs_f64();
        drop(store);
        let server = Server::start(dir.path());
        let agent = agent();
        let middle = (n as i64 / 2) * 60;
        let day = server.url(&format!(
            "{mk}/throughput/base?time-start={middle}&time-end={}",
            middle + 86_399
        ));
        let mut latencies = Vec::new();
        for _ in 0..200 {
            let started = Instant::now();
            let body = get_text(&agent, &day);
            latencies.push(started.elapsed());
            assert!(body.len() > 2);
        }
        latencies.sort();
        println!(
            "{n:>9} points stored (loaded at {:.0} points/s): one day (1,440 points) p50 {:.2} ms, p99 {:.2} ms",
            n as f64 / load,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    }
}

/// Bulk ingest through esmond-serve against a raw SQLite baseline run here, with 1, 4 and
/// 16 writers: each writer its own metadata (throughput only, no summaries: one row per
/// point), 1,000-point PUTs; the baseline inserts the same rows, 1,000 per transaction,
/// with a prepared INSERT into a WAL table with synchronous=FULL, one connection per
/// writer. The two alternate for `MEASPIPE_BENCH_ROUNDS` rounds (default 5: the machine is
/// shared and noisy); the ratio is esmond-serve's median points/s over the baseline's
/// (goal ≥ 0.8).
fn ingest_against_sqlite() {
    let rounds: usize = rounds(5);
    let counts: Vec<usize> = writer_counts(&[1, 4, 16]);
    for writers in counts {
        let (mut served, mut raw): (Vec<f64>, Vec<f64>) = (0..rounds)
            .map(|_| (ingest_served(writers), ingest_raw(writers)))
            .unzip();
        served.sort_by(f64::total_cmp);
        raw.sort_by(f64::total_cmp);
        let median = |v: &[f64]| v[v.len() / 2];
        println!(
            "bulk ingest, {writers} writer(s), {rounds} rounds: esmond-serve median {:.0} points/s ({:.0}–{:.0}), raw SQLite median {:.0} ({:.0}–{:.0}): ratio {:.2}",
            median(&served),
            served[0],
            served[rounds - 1],
            median(&raw),
            raw[0],
            raw[rounds - 1],
            median(&served) / median(&raw)
        );
    }
}

/// The writer counts to measure: `MEASPIPE_BENCH_WRITERS` (`1,4`: only those), else
/// `default`.
fn writer_counts(default: &[usize]) -> Vec<usize> {
    std::env::var("MEASPIPE_BENCH_WRITERS")
        .ok()
        .map(|w| w.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

/// Rounds of a comparison: `MEASPIPE_BENCH_ROUNDS`, else `default`.
fn rounds(default: usize) -> usize {
    std::env::var("MEASPIPE_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(default)
}

/// Points in each ingest run (`MEASPIPE_BENCH_POINTS`, default 200,000), and per PUT or
/// transaction.
fn ingest_points() -> usize {
    std::env::var("MEASPIPE_BENCH_POINTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000)
}
const INGEST_BATCH: usize = 1000;

/// One esmond-serve ingest run: points/s.
fn ingest_served(writers: usize) -> f64 {
    ingest_served_on(writers, None)
}

/// One esmond-serve ingest run on the embedded store, or on the PostgreSQL database at
/// `url` (migrated, empty): points/s.
fn ingest_served_on(writers: usize, url: Option<&str>) -> f64 {
    let per_writer = ingest_points() / writers;
    let dir = tempfile::tempdir().unwrap();
    let store = match url {
        Some(url) => Store::open_pg(url).unwrap(),
        None => Store::open(dir.path()).unwrap(),
    };
    let key = store.add_token("bench", 0).unwrap();
    let keys: Vec<String> = (0..writers)
        .map(|w| {
            let mut new = metadata(w);
            new.event_types = vec![("throughput".into(), vec![])];
            store.create_metadata(&new).unwrap().0
        })
        .collect();
    drop(store);
    let server = match url {
        Some(url) => Server::start_on(&["--store".as_ref(), url.as_ref()]),
        None => Server::start(dir.path()),
    };
    // The bodies are made before the clock starts: the client's JSON is not measured.
    let bodies: Vec<String> = (0..per_writer / INGEST_BATCH)
        .map(|batch| {
            bulk_body(
                1_700_000_000 + (batch * INGEST_BATCH) as i64,
                1,
                INGEST_BATCH,
            )
        })
        .collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for mk in &keys {
            let (url, key, bodies) = (server.url(&format!("{mk}/")), key.clone(), &bodies);
            scope.spawn(move || {
                let agent = agent();
                for body in bodies {
                    assert_eq!(put(&agent, &url, &key, body), 201);
                }
            });
        }
    });
    (per_writer / INGEST_BATCH * INGEST_BATCH * writers) as f64 / started.elapsed().as_secs_f64()
}

/// One raw SQLite run of the same rows: points/s.
fn ingest_raw(writers: usize) -> f64 {
    let per_writer = ingest_points() / writers;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.sqlite");
    {
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE point (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, value TEXT NOT NULL, state TEXT, PRIMARY KEY (series_id, ts)) WITHOUT ROWID;",
        )
        .unwrap();
    }
    let started = Instant::now();
    std::thread::scope(|scope| {
        for w in 0..writers {
            let path = path.clone();
            scope.spawn(move || {
                let mut db = rusqlite::Connection::open(&path).unwrap();
                db.busy_timeout(Duration::from_secs(60)).unwrap();
                db.execute_batch("PRAGMA synchronous=FULL").unwrap();
                for batch in 0..per_writer / INGEST_BATCH {
                    let tx = db
                        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                        .unwrap();
                    {
                        let mut insert = tx
                            .prepare_cached("INSERT INTO point (series_id, ts, value, state) VALUES (?1, ?2, ?3, NULL)")
                            .unwrap();
                        for i in 0..INGEST_BATCH {
                            let ts = 1_700_000_000 + (batch * INGEST_BATCH + i) as i64;
                            let value = (9_000_000_000i64 + i as i64).to_string();
                            insert.execute(rusqlite::params![w as i64, ts, value]).unwrap();
                        }
                    }
                    tx.commit().unwrap();
                }
            });
        }
    });
    (per_writer / INGEST_BATCH * INGEST_BATCH * writers) as f64 / started.elapsed().as_secs_f64()
}

/// Mixed load (issue 14: write p99 ≤ 100 ms, read p99 ≤ 20 ms): 48 connections for 60 s
/// (`MEASPIPE_BENCH_SECONDS`), 24 writing 100-point bulk PUTs into metadata with a daily
/// average and 24 reading a day of base data; then every acknowledged point is looked for.
fn mixed_load() {
    let seconds: u64 = std::env::var("MEASPIPE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let key = store.add_token("bench", 0).unwrap();
    let keys: Vec<String> = (0..24)
        .map(|w| store.create_metadata(&metadata(w)).unwrap().0)
        .collect();
    drop(store);
    let server = Server::start(dir.path());
    let until = Instant::now() + Duration::from_secs(seconds);
    let (writes, reads, acknowledged) = std::thread::scope(|scope| {
        let writers: Vec<_> = keys
            .iter()
            .map(|mk| {
                let (url, key) = (server.url(&format!("{mk}/")), key.clone());
                scope.spawn(move || {
                    let agent = agent();
                    let (mut latencies, mut stamps) = (Vec::new(), Vec::new());
                    let mut batch = 0i64;
                    while Instant::now() < until {
                        let ts0 = 1_700_000_000 + batch * 100 * 60;
                        let body = bulk_body(ts0, 60, 100);
                        let started = Instant::now();
                        let status = put(&agent, &url, &key, &body);
                        latencies.push(started.elapsed());
                        if status == 201 {
                            stamps.push(ts0);
                        }
                        batch += 1;
                    }
                    (latencies, stamps)
                })
            })
            .collect();
        let readers: Vec<_> = keys
            .iter()
            .map(|mk| {
                let url = server.url(&format!(
                    "{mk}/throughput/base?time-start=1700000000&time-end=1700086400"
                ));
                scope.spawn(move || {
                    let agent = agent();
                    let mut latencies = Vec::new();
                    while Instant::now() < until {
                        let started = Instant::now();
                        let mut reply = agent.get(&url).call().unwrap();
                        let _ = reply.body_mut().read_to_string().unwrap();
                        latencies.push(started.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut writes = Vec::new();
        let mut acknowledged = Vec::new();
        for writer in writers {
            let (latencies, stamps) = writer.join().unwrap();
            writes.extend(latencies);
            acknowledged.push(stamps);
        }
        let reads: Vec<Duration> = readers
            .into_iter()
            .flat_map(|r| r.join().unwrap())
            .collect();
        (writes, reads, acknowledged)
    });
    let (mut writes, mut reads) = (writes, reads);
    writes.sort();
    reads.sort();
    // Every acknowledged batch's first and last point are there.
    let agent = agent();
    let mut missing = 0;
    for (mk, stamps) in keys.iter().zip(&acknowledged) {
        let body = agent
            .get(&server.url(&format!(
                "{mk}/throughput/base?time-start=0&time-end=2000000000&limit=100000000"
            )))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let stored: std::collections::HashSet<i64> = serde_json::from_str::<Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["ts"].as_i64().unwrap())
            .collect();
        missing += stamps
            .iter()
            .filter(|&&ts| !stored.contains(&ts) || !stored.contains(&(ts + 99 * 60)))
            .count();
    }
    println!(
        "mixed load, 48 connections, {seconds} s: {} writes (100 points) p50 {:.1} ms p99 {:.1} ms; {} reads p50 {:.1} ms p99 {:.1} ms; acknowledged batches missing: {missing}",
        writes.len(),
        percentile(&writes, 0.5),
        percentile(&writes, 0.99),
        reads.len(),
        percentile(&reads, 0.5),
        percentile(&reads, 0.99),
    );
}

/// CPU seconds (user + system) the process `pid` has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are the 12th and 13th fields after the command.
    (ticks(11) + ticks(12)) / 100.0
}

/// pScheduler results into esmond-serve (issue 18: ≥ 5,000 results/s): the same results
/// PUT to /logstash as perfSONAR 5's http archiver sends them, against the way a
/// perfSONAR 4 host's esmond archiver stored them (a metadata POST and a data PUT per
/// result, mapped beforehand, not timed). `MEASPIPE_BENCH_RESULTS` results (default
/// 20,000) of 100 tests (the rtt fixture with 100 destinations, one start second each),
/// by 1 and 4 writers (`MEASPIPE_BENCH_WRITERS`).
fn pscheduler_ingest() {
    let results: usize = std::env::var("MEASPIPE_BENCH_RESULTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let writers: Vec<usize> = writer_counts(&[1, 4]);
    // `MEASPIPE_BENCH_FIXTURE=latencybg_powstream_1.json`: another test's results.
    let name = std::env::var("MEASPIPE_BENCH_FIXTURE").unwrap_or_else(|_| "rtt_ping.json".into());
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/pscheduler")
                .join(&name),
        )
        .unwrap(),
    )
    .unwrap();
    let bodies: Vec<Value> = (0..results)
        .map(|i| {
            let mut body = fixture.clone();
            let id = format!("00000000-0000-4000-8000-{i:012}");
            body["id"] = json!(id);
            body["run"]["href"] = json!(format!(
                "https://ps-a.example.net/pscheduler/tasks/t{}/runs/{id}",
                i % 100
            ));
            body["test"]["spec"]["dest"] = json!(format!("10.1.0.{}", i % 100));
            let start = chrono::DateTime::from_timestamp(1_796_000_000 + i as i64, 0).unwrap();
            body["schedule"]["start"] = json!(start.to_rfc3339());
            body
        })
        .collect();
    let texts: Vec<String> = bodies.iter().map(Value::to_string).collect();
    let resolver = measpipe::esmond::pscheduler::Resolver::default();
    let options = measpipe::esmond::pscheduler::Options::default();
    let archiver: Vec<(String, String)> = bodies
        .iter()
        .map(|body| {
            let mapped = measpipe::esmond::pscheduler::map(body, &resolver, &options).unwrap();
            let data = mapped.to_json()["data"].to_string();
            (Value::Object(mapped.metadata).to_string(), data)
        })
        .collect();
    for &n in &writers {
        let run = |http_archiver: bool| -> (f64, f64) {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            let key = store.add_token("bench", 0).unwrap();
            drop(store);
            let server = Server::start(dir.path());
            let pid = server.child.id();
            let cpu = cpu_seconds(pid);
            let started = Instant::now();
            std::thread::scope(|scope| {
                for w in 0..n {
                    let (server, key, texts, archiver) = (&server, &key, &texts, &archiver);
                    scope.spawn(move || {
                        let agent = agent();
                        let logstash = format!("http://127.0.0.1:{}/logstash", server.port);
                        for i in (w..results).step_by(n) {
                            if http_archiver {
                                assert_eq!(put(&agent, &logstash, key, &texts[i]), 200);
                                continue;
                            }
                            let (metadata, data) = &archiver[i];
                            let mut reply = agent
                                .post(&server.url(""))
                                .header("Authorization", &format!("Token {key}"))
                                .header("Content-Type", "application/json")
                                .send(metadata.as_bytes())
                                .unwrap();
                            assert_eq!(reply.status().as_u16(), 201);
                            let created: Value =
                                serde_json::from_str(&reply.body_mut().read_to_string().unwrap())
                                    .unwrap();
                            let mk = created["metadata-key"].as_str().unwrap();
                            assert_eq!(put(&agent, &server.url(&format!("{mk}/")), key, data), 201);
                        }
                    });
                }
            });
            let elapsed = started.elapsed().as_secs_f64();
            (results as f64 / elapsed, cpu_seconds(pid) - cpu)
        };
        let (logstash, logstash_cpu) = run(true);
        let (archiver_rate, archiver_cpu) = run(false);
        println!(
            "pScheduler results ({name}), {n} writer(s), {results} results: /logstash {logstash:.0}/s (server CPU {:.0} µs/result), esmond archiver's POST+PUT {archiver_rate:.0}/s (server CPU {:.0} µs/result): ratio {:.2}",
            logstash_cpu / results as f64 * 1e6,
            archiver_cpu / results as f64 * 1e6,
            logstash / archiver_rate
        );
    }
}

/// Operations at scale (issue 18). An archive of 20,000 metadata and 10,000,000 throughput
/// points (`MEASPIPE_BENCH_OPS_POINTS`): the server's cold start (spawn to accepting
/// connections, polled every 20 ms) and its peak RSS after 1,000 reads. Then the archive grown past
/// 1 GiB (`MEASPIPE_BENCH_OPS_BYTES`): `esmond-serve backup` of it while the server runs,
/// beside `cp` of the same file, wall and CPU time of each.
fn operations() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (points, bytes) = (
        env("MEASPIPE_BENCH_OPS_POINTS", 10_000_000),
        env("MEASPIPE_BENCH_OPS_BYTES", 1 << 30),
    );
    let n_metadata = 20_000usize;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("archive");
    let store = Store::open(&data).unwrap();
    let started = Instant::now();
    let mut keys = Vec::new();
    for chunk in (0..n_metadata).collect::<Vec<_>>().chunks(10_000) {
        let batch: Vec<NewMetadata> = chunk.iter().map(|&i| metadata(i)).collect();
        keys.extend(
            store
                .create_metadata_batch(&batch)
                .unwrap()
                .into_iter()
                .map(|k| k.0),
        );
    }
    // Each metadata a run of points a minute apart; several metadata per transaction.
    let per = points / n_metadata as u64;
    let load = |store: &Store, from: i64, per: u64| {
        for key in &keys {
            let items = (0..per).map(|i| {
                Ok(vec![(
                    from + i as i64 * 60,
                    std::borrow::Cow::Borrowed("throughput"),
                    json!(9_000_000_000u64 + i),
                )])
            });
            store.write_points(key, items).unwrap();
        }
    };
    load(&store, 1_700_000_000, per);
    drop(store);
    let file = data.join("archive.sqlite");
    let size = || std::fs::metadata(&file).unwrap().len();
    println!(
        "ops: {n_metadata} metadata, {} points loaded in {:.0} s: {:.0} MB",
        per * n_metadata as u64,
        started.elapsed().as_secs_f64(),
        size() as f64 / 1e6
    );
    let mut starts = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let server = Server::start(&data);
        starts.push(started.elapsed());
        drop(server);
    }
    starts.sort();
    let server = Server::start(&data);
    let agent = agent();
    for n in 0..1000 {
        let key = &keys[(n * 7919) % keys.len()];
        let url = server.url(&format!(
            "{key}/throughput/base?time-start=0&time-end=2000000000"
        ));
        let body = get_text(&agent, &url);
        assert!(body.len() > 2);
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0)
            .unwrap()
    };
    println!(
        "ops: cold start median {:.0} ms (max {:.0} ms over 5); after 1,000 reads RSS {:.1} MB, peak {:.1} MB (goals: 1 s, 64 MB)",
        starts[2].as_secs_f64() * 1e3,
        starts[4].as_secs_f64() * 1e3,
        field("VmRSS:"),
        field("VmHWM:")
    );
    // The dashboard over the same archive: the overview's first and a middle page (100
    // tests each, their latest values), and one test's page (a chart per event type).
    let base = format!("http://127.0.0.1:{}", server.port);
    let timed = |path: &str| {
        let mut took: Vec<Duration> = (0..20)
            .map(|_| {
                let started = Instant::now();
                let body = get_text(&agent, &format!("{base}{path}"));
                assert!(body.contains("</html>"), "{path}");
                started.elapsed()
            })
            .collect();
        took.sort();
        took[10].as_secs_f64() * 1e3
    };
    let (first, middle, detail) = (
        timed("/"),
        timed("/?page=100"),
        timed(&format!("/dashboard/{}", keys[keys.len() / 2])),
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0;
    println!(
        "ops: dashboard medians of 20: / {first:.1} ms, /?page=100 {middle:.1} ms, /dashboard/KEY {detail:.1} ms; peak RSS after them {peak:.1} MB"
    );
    drop(server);

    // Grown past `bytes`, offline (faster), then backed up while a server holds it open.
    let store = Store::open(&data).unwrap();
    let mut from = 1_800_000_000;
    while size() < bytes {
        load(&store, from, per);
        from += per as i64 * 60;
    }
    drop(store);
    let _server = Server::start(&data);
    let timed = |command: &mut Command| {
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%e %U %S"])
            .arg(command.get_program())
            .args(command.get_args())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let said = String::from_utf8(out.stderr).unwrap();
        let figures: Vec<f64> = said
            .lines()
            .last()
            .unwrap()
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect();
        (figures[0], figures[1] + figures[2])
    };
    for round in 0..3 {
        let copy = dir.path().join(format!("cp{round}"));
        std::fs::create_dir_all(&copy).unwrap();
        let (cp_wall, cp_cpu) = timed(Command::new("cp").arg(&file).arg(&copy));
        std::fs::remove_dir_all(&copy).unwrap();
        let dest = dir.path().join(format!("backup{round}"));
        let binary = env!("CARGO_BIN_EXE_esmond-serve");
        let (wall, cpu) = timed(
            Command::new(binary)
                .arg("--data")
                .arg(&data)
                .arg("backup")
                .arg(&dest),
        );
        std::fs::remove_dir_all(&dest).unwrap();
        println!(
            "ops: backup of {:.2} GB: esmond-serve backup {wall:.2} s (CPU {cpu:.2} s), cp {cp_wall:.2} s (CPU {cp_cpu:.2} s): ratio {:.2} (goal 10 s)",
            size() as f64 / 1e9,
            wall / cp_wall
        );
    }
}

/// The test harness's PostgreSQL server (tests/common/pg.rs), for the raw baseline below.
#[path = "../tests/common/mod.rs"]
mod common;

/// Issue 20's baseline for a PostgreSQL store: the rows of the ingest bench written straight
/// into the PostgreSQL schema's partitioned `point` table (`esmond-serve migrate`'s) by
/// 1 and 4 writers (`MEASPIPE_BENCH_WRITERS`), each transaction 1,000 points, committed
/// durably (synchronous_commit on, fsync on), two ways: a prepared INSERT a row, and one
/// INSERT of the transaction's rows as arrays (`unnest`). Raw SQLite's rate in the same run
/// gives the ratio. Needs PostgreSQL (initdb, postgres) installed.
fn pg_raw() {
    use measpipe::esmond::pg;
    let Some(server) = common::pg::Postgres::start() else {
        return;
    };
    let url = server.create("bench");
    let points = ingest_points();
    {
        let mut client = pg::connect(&url).unwrap();
        pg::migrate(&mut client).unwrap();
        pg::ensure_partitions(&mut client, 1_700_000_000, 1_700_000_000 + points as i64).unwrap();
    }
    let counts: Vec<usize> = writer_counts(&[1, 4]);
    let run = |writers: usize, arrays: bool| -> f64 {
        let mut client = pg::connect(&url).unwrap();
        client.batch_execute("TRUNCATE point").unwrap();
        client.batch_execute("CHECKPOINT").unwrap();
        let per_writer = points / writers;
        let started = Instant::now();
        std::thread::scope(|scope| {
            for w in 0..writers {
                let url = url.clone();
                scope.spawn(move || {
                    let mut client = pg::connect(&url).unwrap();
                    let one = client
                        .prepare("INSERT INTO point (series_id, ts, value) VALUES ($1, $2, $3)")
                        .unwrap();
                    let many = client
                        .prepare(
                            "INSERT INTO point (series_id, ts, value) \
                             SELECT $1, t, v FROM unnest($2::bigint[], $3::text[]) AS u(t, v)",
                        )
                        .unwrap();
                    let series = w as i64;
                    for batch in 0..per_writer / INGEST_BATCH {
                        let stamps: Vec<i64> = (0..INGEST_BATCH)
                            .map(|i| 1_700_000_000 + (batch * INGEST_BATCH + i) as i64)
                            .collect();
                        let values: Vec<String> = (0..INGEST_BATCH)
                            .map(|i| (9_000_000_000i64 + i as i64).to_string())
                            .collect();
                        let mut tx = client.transaction().unwrap();
                        if arrays {
                            tx.execute(&many, &[&series, &stamps, &values]).unwrap();
                        } else {
                            for (ts, value) in stamps.iter().zip(&values) {
                                tx.execute(&one, &[&series, ts, value]).unwrap();
                            }
                        }
                        tx.commit().unwrap();
                    }
                });
            }
        });
        (per_writer / INGEST_BATCH * INGEST_BATCH * writers) as f64
            / started.elapsed().as_secs_f64()
    };
    for writers in counts {
        let rows = run(writers, false);
        let arrays = run(writers, true);
        let sqlite = ingest_raw(writers);
        println!(
            "raw PostgreSQL, {writers} writer(s), {points} points: a row per INSERT {rows:.0} points/s, arrays {arrays:.0}; raw SQLite {sqlite:.0}: ratios {:.2} / {:.2}",
            rows / sqlite,
            arrays / sqlite
        );
    }
}

/// Issue 20: esmond-serve's bulk ingest (the `ingest` bench's PUTs of 1,000 points) on
/// PostgreSQL against the same on the embedded SQLite store, alternating for
/// `MEASPIPE_BENCH_ROUNDS` rounds (default 3), by 1 and 4 writers
/// (`MEASPIPE_BENCH_WRITERS`); each PostgreSQL round on a fresh database. Goal: ≥ 100,000
/// points/s with 4 writers. With `MEASPIPE_BENCH_SEARCH=1`, the `search` bench on both
/// stores instead.
fn pg_served() {
    use measpipe::esmond::pg;
    let Some(server) = common::pg::Postgres::start() else {
        return;
    };
    let rounds: usize = rounds(3);
    let counts: Vec<usize> = writer_counts(&[1, 4]);
    let mut databases = 0;
    if std::env::var("MEASPIPE_BENCH_SEARCH").is_ok_and(|v| v == "1") {
        // Metadata search over 100,000 metadata on both stores.
        let url = server.create("search");
        pg::migrate(&mut pg::connect(&url).unwrap()).unwrap();
        metadata_search_on(Some(&url));
        metadata_search_on(None);
        return;
    }
    for writers in counts {
        let (mut on_pg, mut on_sqlite): (Vec<f64>, Vec<f64>) = (0..rounds)
            .map(|_| {
                databases += 1;
                let url = server.create(&format!("bench{databases}"));
                pg::migrate(&mut pg::connect(&url).unwrap()).unwrap();
                let mut client = pg::connect(&url).unwrap();
                pg::ensure_partitions(
                    &mut client,
                    1_700_000_000,
                    1_700_000_000 + ingest_points() as i64,
                )
                .unwrap();
                (
                    ingest_served_on(writers, Some(&url)),
                    ingest_served(writers),
                )
            })
            .unzip();
        on_pg.sort_by(f64::total_cmp);
        on_sqlite.sort_by(f64::total_cmp);
        let median = |v: &[f64]| v[v.len() / 2];
        println!(
            "esmond-serve bulk ingest, {writers} writer(s), {rounds} rounds: on PostgreSQL median {:.0} points/s ({:.0}–{:.0}), on SQLite median {:.0} ({:.0}–{:.0}): ratio {:.2}",
            median(&on_pg),
            on_pg[0],
            on_pg[rounds - 1],
            median(&on_sqlite),
            on_sqlite[0],
            on_sqlite[rounds - 1],
            median(&on_pg) / median(&on_sqlite)
        );
    }
}

fn main() {
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    if only.as_deref() == Some("pg") {
        pg_raw();
        return;
    }
    if only.as_deref() == Some("pg-serve") {
        pg_served();
        return;
    }
    if only.as_deref().is_none_or(|o| o == "pscheduler") {
        pscheduler_ingest();
    }
    if only.as_deref().is_none_or(|o| o == "ingest") {
        ingest_against_sqlite();
    }
    if only.as_deref().is_none_or(|o| o == "mixed") {
        mixed_load();
    }
    if only.as_deref() == Some("ops") {
        operations();
    }
    if only.as_deref().is_none_or(|o| o == "search") {
        metadata_search();
    }
    if only.is_some() {
        return;
    }
    ingest_and_read();
    growth();
}
