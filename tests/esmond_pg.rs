//! esmond-serve's PostgreSQL schema against a real PostgreSQL 15 started by the test:
//! `esmond-serve migrate` creates it, is safe to run again and from several processes at
//! once, and retention drops whole partitions of points (their files gone).

mod common;

use common::bin;
use common::pg::Postgres;

/// Runs `esmond-serve migrate --store URL`: its exit code and stderr.
fn migrate(url: &str) -> (Option<i32>, String) {
    let out = bin("esmond-serve")
        .args(["migrate", "--store", url])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The partitions `esmond-serve migrate` makes at `now`: the months from now to 31 days
/// on (two, or three from the 29th of a month), joined as it names them.
fn months_ahead(now: i64) -> String {
    let mut names = Vec::new();
    let mut at = now;
    while at <= now + measpipe::esmond::pg::AHEAD {
        let month = measpipe::esmond::pg::partition_of(at).unwrap();
        names.push(month.name);
        at = month.end;
    }
    names.join(", ")
}

/// The schema's tables (not the partitions), sorted.
fn tables(client: &mut postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
              ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn migrate_creates_the_schema_once_even_from_several_processes() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let url = pg.create("archive");
    let months = months_ahead(measpipe::clock::now_seconds());
    let (code, stderr) = migrate(&url);
    assert_eq!(
        (code, stderr),
        (
            Some(0),
            format!("esmond-serve: {url}: schema version 2 created; partitions {months} created\n")
        )
    );
    assert_eq!(
        migrate(&url),
        (
            Some(0),
            format!("esmond-serve: {url}: already at schema version 2\n")
        )
    );
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    assert_eq!(
        tables(&mut client),
        [
            "measpipe_generation",
            "measpipe_schema",
            "metadata",
            "parameter",
            "point",
            "refusal",
            "run",
            "series",
            "token"
        ]
    );
    // Four at once on a fresh database: one creates, the others find it made, none fails.
    let fresh = pg.create("fresh");
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let fresh = fresh.clone();
            std::thread::spawn(move || migrate(&fresh))
        })
        .collect();
    let mut said: Vec<String> = runs
        .into_iter()
        .map(|r| {
            let (code, stderr) = r.join().unwrap();
            assert_eq!(code, Some(0), "{stderr}");
            stderr
                .split("; partitions")
                .next()
                .unwrap()
                .trim_end()
                .to_owned()
        })
        .collect();
    said.sort();
    assert_eq!(
        said,
        [
            format!("esmond-serve: {fresh}: already at schema version 2"),
            format!("esmond-serve: {fresh}: already at schema version 2"),
            format!("esmond-serve: {fresh}: already at schema version 2"),
            format!("esmond-serve: {fresh}: schema version 2 created"),
        ]
    );
    let mut client = postgres::Client::connect(&fresh, postgres::NoTls).unwrap();
    let versions: Vec<i32> = client
        .query("SELECT version FROM measpipe_schema", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2]);
}

#[test]
fn bad_urls_and_absent_servers_are_one_line_each() {
    let (code, stderr) = migrate("postgres://esmond:s3cret@127.0.0.1:1/archive");
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with("esmond-serve: error: postgres://esmond:***@127.0.0.1:1/archive: ")
            && stderr.lines().count() == 1
            && !stderr.contains("s3cret"),
        "{stderr}"
    );
    let (code, stderr) = migrate("mysql://nope");
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with("esmond-serve: error: mysql://nope: not a PostgreSQL URL: ")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
    let out = bin("esmond-serve").output().unwrap();
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).as_ref()
        ),
        (
            Some(2),
            "esmond-serve: error: --data DIR (or --store URL, for PostgreSQL) is required\n"
        )
    );
    // Serving from an absent database, from the environment's URL: one line, no password.
    let out = bin("esmond-serve")
        .env(
            "ESMOND_SERVE_STORE",
            "postgres://esmond:s3cret@127.0.0.1:1/archive",
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.starts_with("esmond-serve: error: postgres://esmond:***@127.0.0.1:1/archive: ")
            && stderr.lines().count() == 1
            && !stderr.contains("s3cret"),
        "{stderr}"
    );
}

/// A server refuses a database `esmond-serve migrate` has not brought up to date, and
/// says what to run.
#[test]
fn a_database_without_the_schema_is_refused_with_the_command_to_run() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let url = pg.create("archive");
    let out = bin("esmond-serve")
        .args(["--store", &url, "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).as_ref()
        ),
        (
            Some(1),
            format!(
                "esmond-serve: error: {url}: the database's schema is version 0, this esmond-serve's is 2: run `esmond-serve migrate --store URL`\n"
            )
            .as_str()
        )
    );
}

/// Points go to their month's partition; dropping the months before a cutoff removes
/// their rows and their files, and leaves the later months whole.
#[test]
fn retention_drops_whole_partitions_and_their_files() {
    use measpipe::esmond::pg;
    let Some(server) = Postgres::start() else {
        return;
    };
    let url = server.create("archive");
    let mut client = pg::connect(&url).unwrap();
    pg::migrate(&mut client).unwrap();
    let september = 1_788_220_800; // 2026-09-01T00:00:00Z
    let december = 1_796_083_200; // 2026-12-01T00:00:00Z
    let created = pg::ensure_partitions(&mut client, september, december).unwrap();
    assert_eq!(
        created,
        [
            "point_2026_09",
            "point_2026_10",
            "point_2026_11",
            "point_2026_12"
        ]
    );
    assert!(pg::ensure_partitions(&mut client, september, december)
        .unwrap()
        .is_empty());
    // A day of points a minute apart in each month.
    for partition in pg::partitions(&mut client).unwrap() {
        client
            .execute(
                "INSERT INTO point (series_id, ts, value)
                 SELECT 1, t, '1' FROM generate_series($1::bigint, $1::bigint + 86399, 60) t",
                &[&partition.start],
            )
            .unwrap();
    }
    let file = |client: &mut postgres::Client, name: &str| -> std::path::PathBuf {
        let data: String = client.query_one("SHOW data_directory", &[]).unwrap().get(0);
        let relative: String = client
            .query_one("SELECT pg_relation_filepath($1::text::regclass)", &[&name])
            .unwrap()
            .get(0);
        std::path::Path::new(&data).join(relative)
    };
    let september_file = file(&mut client, "point_2026_09");
    let october_file = file(&mut client, "point_2026_10");
    client.batch_execute("CHECKPOINT").unwrap();
    assert!(std::fs::metadata(&september_file).unwrap().len() > 0);
    assert!(std::fs::metadata(&october_file).unwrap().len() > 0);
    // Keep from mid-November: September and October go whole; November stays (its
    // first half is the row-by-row retention's).
    let cutoff = 1_794_787_200; // 2026-11-15T00:00:00Z
    assert_eq!(
        pg::drop_partitions_before(&mut client, cutoff).unwrap(),
        ["point_2026_09", "point_2026_10"]
    );
    // Their space is given back at once (PostgreSQL truncates a dropped table's file and
    // unlinks it at the next checkpoint).
    let size = |f: &std::path::Path| std::fs::metadata(f).map_or(0, |m| m.len());
    assert_eq!((size(&september_file), size(&october_file)), (0, 0));
    client.batch_execute("CHECKPOINT").unwrap();
    assert!(!september_file.exists() && !october_file.exists());
    let left: Vec<(i64, i64)> = client
        .query(
            "SELECT min(ts), count(*) FROM point GROUP BY ts / 2592000 ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(left, [(1_793_491_200, 1440), (december, 1440)]);
}

/// A PostgreSQL of the test's own with a database `esmond-serve migrate` made, a writer's
/// key, and where the servers' log goes.
struct Database {
    pg: Postgres,
    url: String,
    key: String,
    /// Holds `log` (removed when dropped).
    _dir: tempfile::TempDir,
    log: std::path::PathBuf,
}

impl Database {
    /// `None` (a skip) when PostgreSQL is not installed.
    fn new() -> Option<Database> {
        let pg = Postgres::start()?;
        let url = pg.create("archive");
        assert_eq!(migrate(&url).0, Some(0));
        let key = common::serve::Store::postgres(&url).token("writer");
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serve.log");
        Some(Database {
            pg,
            url,
            key,
            _dir: dir,
            log,
        })
    }
}

/// esmond-serve on `url`, listening on a free port, its stderr in `log`.
fn serve(url: &str, log: &std::path::Path, extra: &[&str]) -> common::BackgroundServer {
    let port = common::free_port();
    let mut command = std::process::Command::new(common::bin_path("esmond-serve"));
    command
        .args(["--store", url, "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        );
    common::BackgroundServer::start(command, port, std::time::Duration::from_secs(20))
}

/// One request: status and body.
fn call(
    server: &common::BackgroundServer,
    method: &str,
    path: &str,
    key: &str,
    body: Option<&str>,
) -> (u16, String) {
    send(server.addr, method, path, key, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// One request to `addr`: status and body, or why there was no answer.
fn send(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    key: &str,
    body: Option<&str>,
) -> Result<(u16, String), ureq::Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("Authorization", format!("Token {key}"))
        .header("Content-Type", "application/json");
    let mut response = match body {
        Some(body) => agent.run(request.body(body.to_owned()).unwrap()),
        None => agent.run(request.body(()).unwrap()),
    }?;
    let status = response.status().as_u16();
    Ok((
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    ))
}

const METADATA: &str = r#"{"subject-type": "point-to-point", "source": "10.0.0.1",
    "destination": "10.0.0.2", "tool-name": "bwctl/iperf3", "measurement-agent": "10.0.0.1",
    "input-source": "a", "input-destination": "b", "time-duration": "20",
    "event-types": [{"event-type": "throughput", "summaries": [{"summary-type": "average",
    "summary-window": "3600"}]}]}"#;

/// The metadata's key, created through `server`.
fn create(server: &common::BackgroundServer, key: &str) -> String {
    let (status, text) = call(
        server,
        "POST",
        "/esmond/perfsonar/archive/",
        key,
        Some(METADATA),
    );
    assert_eq!(status, 201, "{text}");
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["metadata-key"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The base throughput points of `metadata` read through `server`: (time, value).
fn points(server: &common::BackgroundServer, metadata: &str) -> Vec<(i64, i64)> {
    let (status, text) = call(
        server,
        "GET",
        &format!("/esmond/perfsonar/archive/{metadata}/throughput/base?time-start=0&time-end=4000000000&limit=1000000"),
        "",
        None,
    );
    assert_eq!(status, 200, "{text}");
    serde_json::from_str::<Vec<serde_json::Value>>(&text)
        .unwrap()
        .iter()
        .map(|p| (p["ts"].as_i64().unwrap(), p["val"].as_f64().unwrap() as i64))
        .collect()
}

/// Two servers on one database are interchangeable: a metadata posted to both at once is
/// one metadata, a write through one is read through the other at once, concurrent writes
/// through both all land, and one killed with -9 mid-stream leaves the other serving
/// every write either acknowledged.
#[test]
fn two_servers_on_one_database_are_interchangeable() {
    let Some(db) = Database::new() else {
        return;
    };
    let (url, key, log) = (db.url.clone(), db.key.clone(), db.log.clone());
    let a = serve(&url, &log, &[]);
    let b = serve(&url, &log, &[]);

    // The same metadata posted to both at once: one key.
    let (from_a, from_b) = std::thread::scope(|s| {
        let one = s.spawn(|| create(&a, &key));
        let other = s.spawn(|| create(&b, &key));
        (one.join().unwrap(), other.join().unwrap())
    });
    assert_eq!(from_a, from_b);
    let metadata = from_a;

    // Written through one, read through the other at once.
    let put = |addr: std::net::SocketAddr, ts: i64| {
        let body = format!(
            r#"{{"data": [{{"ts": {ts}, "val": [{{"event-type": "throughput", "val": {ts}}}]}}]}}"#
        );
        let path = format!("/esmond/perfsonar/archive/{metadata}/");
        // (No answer, from a server killed meanwhile, is no acknowledgement.)
        send(addr, "PUT", &path, &key, Some(&body)).map_or(0, |(status, _)| status)
    };
    assert_eq!(put(a.addr, 1_000), 201);
    assert_eq!(points(&b, &metadata), [(1_000, 1_000)]);
    // A search B answered (and keeps) is answered anew once A has written.
    let found = |server: &common::BackgroundServer| -> usize {
        let (status, text) = call(
            server,
            "GET",
            "/esmond/perfsonar/archive/?tool-name=bwctl/iperf3",
            "",
            None,
        );
        assert_eq!(status, 200, "{text}");
        serde_json::from_str::<Vec<serde_json::Value>>(&text)
            .unwrap()
            .len()
    };
    assert_eq!((found(&b), found(&b)), (1, 1));
    let other = METADATA.replace("10.0.0.2", "10.0.0.3");
    let (status, text) = call(&a, "POST", "/esmond/perfsonar/archive/", &key, Some(&other));
    assert_eq!(status, 201, "{text}");
    assert_eq!(found(&b), 2);

    // Writers through both at once; A killed with -9 while they write (a write A did not
    // answer is sent to B, and those writing through A go on through B): every write is
    // read through B once.
    let acknowledged = std::sync::Mutex::new(vec![1_000]);
    let a_alive = std::sync::atomic::AtomicBool::new(true);
    let (a_addr, b_addr) = (a.addr, b.addr);
    std::thread::scope(|s| {
        for writer in 0..4i64 {
            let (a_alive, acknowledged, put) = (&a_alive, &acknowledged, &put);
            s.spawn(move || {
                for i in 0..200 {
                    let ts = 10_000 + writer * 1_000 + i;
                    let through_a =
                        writer % 2 == 0 && a_alive.load(std::sync::atomic::Ordering::SeqCst);
                    let mut status = put(if through_a { a_addr } else { b_addr }, ts);
                    if status != 201 && through_a {
                        // A is gone: the client sends it again to B (an identical
                        // write A committed before dying is a no-op there).
                        status = put(b_addr, ts);
                    }
                    if status == 201 {
                        acknowledged.lock().unwrap().push(ts);
                    }
                }
            });
        }
        let (a_alive, acknowledged) = (&a_alive, &acknowledged);
        s.spawn(move || {
            // Kill A once it and B have acknowledged some of the writes.
            while acknowledged.lock().unwrap().len() < 150 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            drop(a);
            a_alive.store(false, std::sync::atomic::Ordering::SeqCst);
        });
    });
    let mut acknowledged = acknowledged.into_inner().unwrap();
    acknowledged.sort_unstable();
    let read: Vec<i64> = points(&b, &metadata).iter().map(|p| p.0).collect();
    // Every write was acknowledged by one or the other, and each is there once.
    assert_eq!(acknowledged.len(), 801);
    assert_eq!(read, acknowledged);
    assert_eq!(put(b.addr, 900_000), 201);
}

/// With every series past a month, esmond-serve's retention drops the month's partition
/// whole; a month partly past has its old points deleted; what is kept reads back.
#[test]
fn retention_through_the_server_drops_whole_months() {
    let Some(db) = Database::new() else {
        return;
    };
    let (url, key, log) = (db.url.clone(), db.key.clone(), db.log.clone());
    let server = serve(&url, &log, &[]);
    let metadata = create(&server, &key);
    let now = measpipe::clock::now_seconds();
    let day = 86_400;
    // A point a day for 120 days, half a day off the retention's cutoff (the server's
    // clock reads a little later than this one).
    let at = |d: i64| now - d * day - day / 2;
    let data: Vec<String> = (0..120)
        .map(|d| {
            let ts = at(d);
            format!(r#"{{"ts": {ts}, "val": [{{"event-type": "throughput", "val": {d}}}]}}"#)
        })
        .collect();
    let (status, text) = call(
        &server,
        "PUT",
        &format!("/esmond/perfsonar/archive/{metadata}/"),
        &key,
        Some(&format!(r#"{{"data": [{}]}}"#, data.join(","))),
    );
    assert_eq!(status, 201, "{text}");
    drop(server);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let months = |client: &mut postgres::Client| -> Vec<String> {
        measpipe::esmond::pg::partitions(client)
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect()
    };
    let before = months(&mut client);
    let cutoff = now - 30 * day;
    let whole: Vec<String> = measpipe::esmond::pg::partitions(&mut client)
        .unwrap()
        .into_iter()
        .filter(|p| p.end <= cutoff)
        .map(|p| p.name)
        .collect();
    assert!(whole.len() >= 2, "{before:?}");
    let server = serve(&url, &log, &["--retention", "30"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let said = |log: &str| {
        log.lines()
            .find(|l| l.starts_with("esmond-serve: retention: deleted"))
            .map(str::to_owned)
    };
    while said(&std::fs::read_to_string(&log).unwrap()).is_none() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let kept: Vec<i64> = points(&server, &metadata).iter().map(|p| p.0).collect();
    let expected: Vec<i64> = (0..120).rev().map(at).filter(|&ts| ts >= cutoff).collect();
    assert_eq!(kept, expected);
    let after = months(&mut client);
    assert!(
        whole.iter().all(|m| !after.contains(m)),
        "{before:?} → {after:?}"
    );
    assert_eq!(
        after.len(),
        before.len() - whole.len(),
        "{before:?} → {after:?}"
    );
    // Every base point past its time went, and every hourly average whose bin starts
    // past it.
    let base = (0..120).filter(|&d| at(d) < cutoff).count();
    let averages = (0..120)
        .filter(|&d| at(d).div_euclid(3600) * 3600 < cutoff)
        .count();
    assert_eq!(
        said(&std::fs::read_to_string(&log).unwrap()).unwrap(),
        format!(
            "esmond-serve: retention: deleted {} points, 0 runs and 0 refusals past their time",
            base + averages
        )
    );
}

/// A database restarted under a server: the server connects again by itself, for writes
/// and for every read connection; what it acknowledged before and after reads back.
#[test]
fn a_restarted_database_is_connected_again() {
    let Some(mut db) = Database::new() else {
        return;
    };
    let (url, key, log) = (db.url.clone(), db.key.clone(), db.log.clone());
    let server = serve(&url, &log, &[]);
    let metadata = create(&server, &key);
    let put = |ts: i64| {
        call(
            &server,
            "PUT",
            &format!("/esmond/perfsonar/archive/{metadata}/"),
            &key,
            Some(&format!(
                r#"{{"data": [{{"ts": {ts}, "val": [{{"event-type": "throughput", "val": {ts}}}]}}]}}"#
            )),
        )
    };
    assert_eq!(put(1_000).0, 201);
    // Every read connection has been used.
    for _ in 0..8 {
        assert_eq!(points(&server, &metadata), [(1_000, 1_000)]);
    }
    db.pg.restart();
    let (status, text) = put(2_000);
    assert_eq!(
        status,
        201,
        "{text}\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    for _ in 0..8 {
        let read = std::panic::catch_unwind(|| points(&server, &metadata));
        assert_eq!(
            read.ok(),
            Some(vec![(1_000, 1_000), (2_000, 2_000)]),
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
    }
}

/// The months ahead are made before a write needs them (the server does it hourly), and
/// a write at a time of a month not made yet makes its partition itself.
#[test]
fn partitions_are_made_ahead_and_by_the_write_that_needs_one() {
    use measpipe::esmond::pg;
    use measpipe::esmond::store::Store;
    let Some(server) = Postgres::start() else {
        return;
    };
    let url = server.create("archive");
    assert_eq!(migrate(&url).0, Some(0));
    let store = Store::open_pg(&url).unwrap();
    let mut client = pg::connect(&url).unwrap();
    let names = |client: &mut postgres::Client| -> Vec<String> {
        pg::partitions(client)
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect()
    };
    let january_2030 = 1_893_456_000; // 2030-01-01T00:00:00Z
    store
        .prepare_months(january_2030, january_2030 + 31 * 86_400)
        .unwrap();
    let made = names(&mut client);
    assert!(
        made.contains(&"point_2030_01".to_owned()) && made.contains(&"point_2030_02".to_owned()),
        "{made:?}"
    );
    // A metadata, and a point in 1999: its month is made by the write.
    let new = measpipe::esmond::store::NewMetadata {
        subject_type: "point-to-point".into(),
        subject: vec![
            ("source", "10.0.0.1".into()),
            ("destination", "10.0.0.2".into()),
        ],
        parameters: vec![],
        event_types: vec![("throughput".into(), vec![])],
    };
    let (key, created) = store.create_metadata(&new).unwrap();
    assert!(created);
    let point = (915_148_800, "throughput".into(), serde_json::json!(1)); // 1999-01-01
    store.write_points(&key, [Ok(vec![point])]).unwrap();
    assert!(names(&mut client).contains(&"point_1999_01".to_owned()));
}

/// A database at an older schema (version 1, the first release's) is upgraded by
/// `esmond-serve migrate` in place: what it held stays, and a server then serves it.
#[test]
fn migrate_upgrades_an_older_schema_keeping_its_data() {
    use measpipe::esmond::pg;
    let Some(server) = Postgres::start() else {
        return;
    };
    let url = server.create("archive");
    let mut client = pg::connect(&url).unwrap();
    assert_eq!(
        pg::migrate_to(&mut client, 1).unwrap(),
        pg::Migrated { from: 0, to: 1 }
    );
    client
        .batch_execute(r#"INSERT INTO token ("user", hash, created) VALUES ('old', 'x', 1)"#)
        .unwrap();
    // A server of this version refuses it until it is upgraded.
    let out = bin("esmond-serve")
        .args(["--store", &url, "token", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // (Version 1 made no partitions: migrate makes this month's and the next.)
    let months = months_ahead(measpipe::clock::now_seconds());
    assert_eq!(
        migrate(&url),
        (
            Some(0),
            format!(
                "esmond-serve: {url}: schema upgraded from version 1 to 2; partitions {months} created\n"
            )
        )
    );
    let out = bin("esmond-serve")
        .args(["--store", &url, "token", "list"])
        .output()
        .unwrap();
    common::assert_success(&out);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "old\t1970-01-01T00:00:01+00:00\n"
    );
}
