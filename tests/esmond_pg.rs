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
    let now = measpipe::clock::now_seconds();
    let (this, next) = (
        measpipe::esmond::pg::partition_of(now).unwrap(),
        measpipe::esmond::pg::partition_of(now + 31 * 86_400).unwrap(),
    );
    let (code, stderr) = migrate(&url);
    assert_eq!(
        (code, stderr),
        (
            Some(0),
            format!(
                "esmond-serve: {url}: schema version 1 created; partitions {}, {} created\n",
                this.name, next.name
            )
        )
    );
    assert_eq!(
        migrate(&url),
        (
            Some(0),
            format!("esmond-serve: {url}: already at schema version 1\n")
        )
    );
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    assert_eq!(
        tables(&mut client),
        [
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
            format!("esmond-serve: {fresh}: already at schema version 1"),
            format!("esmond-serve: {fresh}: already at schema version 1"),
            format!("esmond-serve: {fresh}: already at schema version 1"),
            format!("esmond-serve: {fresh}: schema version 1 created"),
        ]
    );
    let mut client = postgres::Client::connect(&fresh, postgres::NoTls).unwrap();
    let versions: Vec<i32> = client
        .query("SELECT version FROM measpipe_schema", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1]);
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
