//! The archive's schema on PostgreSQL 15, created and upgraded by the binary
//! (`esmond-serve migrate --store postgres://…`), and the time partitions of its points.
//!
//! The tables mirror the embedded store's (see [`super::store`]): metadata, its free-form
//! parameters, series, points, pScheduler runs and refusals, and key hashes. Points are
//! range-partitioned on their time by calendar month (UTC), so retention drops whole
//! partitions and PostgreSQL deletes their files at once, with no VACUUM to wait for.
//!
//! Migrations are numbered and applied in order, each in its own transaction under an
//! advisory lock, so servers started together on one database apply each migration once.
//! The applied versions are kept in `measpipe_schema`.
//!
//! The API is served from this schema by the store itself ([`super::store`], through
//! [`super::sql`]); this module is what is PostgreSQL's own.

use postgres::{Client, NoTls};

use crate::error::Error;

/// The schema's current version: the number of migrations.
pub const VERSION: i32 = MIGRATIONS.len() as i32;

/// The advisory lock every migration takes ("measpipe" in ASCII), so concurrent runs wait
/// for each other instead of racing on the DDL.
const LOCK: i64 = 0x6d65_6173_7069_7065;

/// The advisory lock a write transaction holds ("measwrit"): the writes of every server
/// sharing the database are serialised as one SQLite file's are, and partitions are made
/// under it too (no two transactions create one at once).
pub const WRITE_LOCK: i64 = 0x6d65_6173_7772_6974;

/// Each migration's SQL, in order: version N is `MIGRATIONS[N - 1]`.
const MIGRATIONS: &[&str] = &[
    // 1: the tables of the embedded store's schema version 1, points partitioned by time.
    "
CREATE TABLE metadata (
    id BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    ck BIGINT NOT NULL,
    checksum BYTEA NOT NULL,
    subject_type TEXT NOT NULL,
    source TEXT, destination TEXT, measurement_agent TEXT,
    tool_name TEXT, input_source TEXT, input_destination TEXT,
    parameters TEXT NOT NULL DEFAULT '[]');
CREATE INDEX metadata_ck ON metadata(ck);
CREATE INDEX metadata_source ON metadata(source);
CREATE INDEX metadata_destination ON metadata(destination);
CREATE INDEX metadata_agent ON metadata(measurement_agent);
CREATE INDEX metadata_tool ON metadata(tool_name);
CREATE INDEX metadata_input_source ON metadata(input_source);
CREATE INDEX metadata_input_destination ON metadata(input_destination);
CREATE TABLE parameter (
    name TEXT NOT NULL, value TEXT NOT NULL, metadata_id BIGINT NOT NULL,
    PRIMARY KEY (name, value, metadata_id));
CREATE TABLE series (
    id BIGSERIAL PRIMARY KEY, metadata_id BIGINT NOT NULL, event_type TEXT NOT NULL,
    summary TEXT NOT NULL, win BIGINT NOT NULL, updated BIGINT,
    UNIQUE (metadata_id, event_type, summary, win));
CREATE INDEX series_lookup ON series(event_type, summary, win, updated, metadata_id);
CREATE TABLE point (
    series_id BIGINT NOT NULL, ts BIGINT NOT NULL, value TEXT NOT NULL, state TEXT,
    PRIMARY KEY (series_id, ts)) PARTITION BY RANGE (ts);
CREATE TABLE run (
    id TEXT NOT NULL UNIQUE, metadata_id BIGINT NOT NULL, ts BIGINT NOT NULL,
    received BIGINT NOT NULL, test_type TEXT NOT NULL, tool TEXT NOT NULL,
    succeeded BOOLEAN NOT NULL, run_href TEXT, task_href TEXT,
    test_checksum TEXT NOT NULL, observer TEXT, collided TEXT, body TEXT NOT NULL);
CREATE INDEX run_by_checksum ON run(test_checksum, ts);
CREATE INDEX run_by_href ON run(run_href);
CREATE INDEX run_by_metadata ON run(metadata_id, ts);
CREATE TABLE refusal (
    id TEXT PRIMARY KEY, run_href TEXT, received BIGINT NOT NULL, status INTEGER NOT NULL,
    detail TEXT NOT NULL);
CREATE INDEX refusal_by_href ON refusal(run_href);
CREATE TABLE token (
    \"user\" TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, created BIGINT NOT NULL);
",
    // 2: the archive's write generation, bumped by every write transaction: servers keep
    // search results while it stands still (another server's write moves it).
    "
CREATE TABLE measpipe_generation (n BIGINT NOT NULL);
INSERT INTO measpipe_generation VALUES (0);
",
];

/// What [`migrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// The version found (0: no schema yet).
    pub from: i32,
    /// The version now, [`VERSION`].
    pub to: i32,
}

/// Connects to the database at `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB` or
/// `host=… dbname=…`). Errors name the database without its password.
pub fn connect(url: &str) -> Result<Client, Error> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e| Error::Usage(format!("{}: not a PostgreSQL URL: {e}", redact(url))))?;
    // An unreachable host is an error in moments, not a request that hangs.
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    config
        .connect(NoTls)
        .map_err(|e| Error::failed(format!("{}: {}", redact(url), cause(&e))))
}

/// How far past now the partitions of the points are made ahead (this month and the
/// next): by `esmond-serve migrate`, at a server's start and hourly.
pub const AHEAD: i64 = 31 * 86_400;

/// `esmond-serve migrate`: brings the schema of the database at `url` to [`VERSION`] and
/// makes the partitions of the months ahead of `now`; what it did, in a line.
pub fn migrate_database(url: &str, now: i64) -> Result<String, Error> {
    let mut client = connect(url)?;
    let migrated = migrate(&mut client)?;
    let created = ensure_partitions(&mut client, now, now + AHEAD)?;
    let what = match migrated.from {
        from if from == migrated.to => format!("already at schema version {from}"),
        0 => format!("schema version {} created", migrated.to),
        from => format!("schema upgraded from version {from} to {}", migrated.to),
    };
    let partitions = match created.len() {
        0 => String::new(),
        _ => format!("; partitions {} created", created.join(", ")),
    };
    Ok(format!("{}: {what}{partitions}", redact(url)))
}

/// Brings the schema to [`VERSION`], one migration per transaction, under an advisory
/// lock: runs at once wait for each other, and the first applies what is due. A database
/// whose schema is newer than this binary's is refused.
pub fn migrate(client: &mut Client) -> Result<Migrated, Error> {
    migrate_to(client, VERSION)
}

/// [`migrate`] up to schema version `to` only (an older binary's schema, for tests of an
/// upgrade).
pub fn migrate_to(client: &mut Client, to: i32) -> Result<Migrated, Error> {
    let to = to.clamp(0, VERSION);
    let failed = |e: postgres::Error| Error::failed(format!("migrating: {}", cause(&e)));
    // One run applies every migration due while the others wait (a session lock, let go
    // at the end, or by the database should this process die). The bookkeeping table is
    // made under it too: two runs creating it at once collide on its type's name (IF NOT
    // EXISTS does not keep them apart).
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK])
        .map_err(failed)?;
    let applied = client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS measpipe_schema (
                 version INTEGER PRIMARY KEY,
                 applied TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .map_err(failed)
        .and_then(|()| apply(client, to));
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK]);
    let migrated = applied?;
    unlocked.map_err(failed)?;
    Ok(migrated)
}

/// Applies the migrations after the database's version up to `to`, each in a
/// transaction of its own; the caller holds the migration lock.
fn apply(client: &mut Client, to: i32) -> Result<Migrated, Error> {
    let failed = |e: postgres::Error| Error::failed(format!("migrating: {}", cause(&e)));
    let from = current_version(client).map_err(failed)?;
    if from > VERSION {
        return Err(Error::failed(format!(
            "the database's schema is version {from}, newer than this esmond-serve's \
             {VERSION}: run a newer esmond-serve"
        )));
    }
    for version in from + 1..=to {
        let mut tx = client.transaction().map_err(failed)?;
        let sql = MIGRATIONS[usize::try_from(version - 1).unwrap_or(0)];
        tx.batch_execute(sql)
            .map_err(|e| Error::failed(format!("migration {version}: {}", cause(&e))))?;
        tx.execute(
            "INSERT INTO measpipe_schema (version) VALUES ($1)",
            &[&version],
        )
        .map_err(failed)?;
        tx.commit().map_err(failed)?;
    }
    Ok(Migrated {
        from,
        to: to.max(from),
    })
}

/// The database's schema version (0 when `esmond-serve migrate` never ran on it).
pub fn version(client: &mut Client) -> Result<i32, Error> {
    let failed = |e: postgres::Error| Error::failed(format!("schema version: {}", cause(&e)));
    let exists: bool = client
        .query_one("SELECT to_regclass('measpipe_schema') IS NOT NULL", &[])
        .map_err(failed)?
        .get(0);
    match exists {
        true => current_version(client).map_err(failed),
        false => Ok(0),
    }
}

/// The schema's version (0 before the first migration).
fn current_version(client: &mut Client) -> Result<i32, postgres::Error> {
    Ok(client
        .query_one("SELECT COALESCE(max(version), 0) FROM measpipe_schema", &[])?
        .get(0))
}

/// A month's partition of the points: its name and its range of times, [start, end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// `point_YYYY_MM`.
    pub name: String,
    /// Its first second (the month's first, UTC).
    pub start: i64,
    /// The next month's first second.
    pub end: i64,
}

/// The partition holding time `ts` (epoch seconds).
pub fn partition_of(ts: i64) -> Result<Partition, Error> {
    use chrono::{Datelike, TimeZone, Utc};
    let out_of_range = || Error::failed(format!("time {ts} is out of range"));
    let at = Utc.timestamp_opt(ts, 0).single().ok_or_else(out_of_range)?;
    let (year, month) = (at.year(), at.month());
    let first = |year: i32, month: u32| {
        Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
            .single()
            .map(|t| t.timestamp())
            .ok_or_else(out_of_range)
    };
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    Ok(Partition {
        name: format!("point_{year:04}_{month:02}"),
        start: first(year, month)?,
        end: first(next_year, next_month)?,
    })
}

/// Creates the partitions holding every time in [from, to] that are missing; returns
/// those it created. Each in a transaction of its own, under [`WRITE_LOCK`].
pub fn ensure_partitions(client: &mut Client, from: i64, to: i64) -> Result<Vec<String>, Error> {
    let failed = |e: postgres::Error| Error::failed(format!("partitions: {}", cause(&e)));
    let existing = partitions(client)?;
    let mut created = Vec::new();
    let mut at = from;
    while at <= to {
        let partition = partition_of(at)?;
        if !existing.iter().any(|p| p.name == partition.name) {
            let mut tx = client.transaction().map_err(failed)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
                .map_err(failed)?;
            if create_partition(&mut tx, at)?.made {
                created.push(partition.name.clone());
            }
            tx.commit().map_err(failed)?;
        }
        at = partition.end;
    }
    Ok(created)
}

/// A partition [`create_partition`] found or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    /// Its first second.
    pub start: i64,
    /// The next partition's first second.
    pub end: i64,
    /// Whether it was made now.
    pub made: bool,
}

/// Creates the partition holding `ts` unless it exists, in the caller's transaction,
/// which must hold [`WRITE_LOCK`] (a partition made meanwhile by another is then seen).
pub fn create_partition(client: &mut impl postgres::GenericClient, ts: i64) -> Result<Made, Error> {
    let failed = |e: postgres::Error| Error::failed(format!("partitions: {}", cause(&e)));
    let partition = partition_of(ts)?;
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&partition.name])
        .map_err(failed)?
        .get(0);
    if !exists {
        client
            .batch_execute(&format!(
                "CREATE TABLE {} PARTITION OF point FOR VALUES FROM ({}) TO ({})",
                partition.name, partition.start, partition.end
            ))
            .map_err(failed)?;
    }
    Ok(Made {
        start: partition.start,
        end: partition.end,
        made: !exists,
    })
}

/// The partitions of the points, oldest first.
pub fn partitions(client: &mut impl postgres::GenericClient) -> Result<Vec<Partition>, Error> {
    let rows = client
        .query(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'point'::regclass",
            &[],
        )
        .map_err(|e| Error::failed(format!("partitions: {}", cause(&e))))?;
    let mut found: Vec<Partition> = rows
        .iter()
        .filter_map(|row| {
            let name: String = row.get(0);
            let bound: String = row.get(1);
            // FOR VALUES FROM ('1795392000') TO ('1798070400')
            let numbers: Vec<i64> = bound
                .split(|c: char| !c.is_ascii_digit() && c != '-')
                .filter_map(|n| n.parse().ok())
                .collect();
            match numbers[..] {
                [start, end] => Some(Partition { name, start, end }),
                _ => None,
            }
        })
        .collect();
    found.sort_by_key(|p| p.start);
    Ok(found)
}

/// Drops every partition whose times all fall before `cutoff` (its end at or before it):
/// their files are deleted at once. Returns the partitions dropped.
pub fn drop_partitions_before(client: &mut Client, cutoff: i64) -> Result<Vec<String>, Error> {
    let mut dropped = Vec::new();
    for partition in partitions(client)? {
        if partition.end <= cutoff {
            client
                .batch_execute(&format!("DROP TABLE IF EXISTS {}", partition.name))
                .map_err(|e| {
                    Error::failed(format!("dropping {}: {}", partition.name, cause(&e)))
                })?;
            dropped.push(partition.name);
        }
    }
    Ok(dropped)
}

/// The database's message for `e` (the server's own text when it sent one).
fn cause(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => e.to_string(),
    }
}

/// `url` without its password (for messages).
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url
            .split_whitespace()
            .map(|kv| match kv.split_once('=') {
                Some(("password", _)) => "password=***".to_owned(),
                _ => kv.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_s_partition_spans_it_in_utc() {
        let p = partition_of(1_795_392_000).unwrap(); // 2026-11-23T00:00:00Z
        assert_eq!(
            p,
            Partition {
                name: "point_2026_11".into(),
                start: 1_793_491_200,
                end: 1_796_083_200
            }
        );
        assert_eq!(partition_of(p.end).unwrap().name, "point_2026_12");
        assert_eq!(partition_of(p.end - 1).unwrap().name, "point_2026_11");
        let december = partition_of(1_798_675_200).unwrap(); // 2026-12-31
        assert_eq!(december.name, "point_2026_12");
        assert_eq!(partition_of(december.end).unwrap().name, "point_2027_01");
        assert_eq!(partition_of(-1).unwrap().name, "point_1969_12");
    }

    #[test]
    fn passwords_are_not_repeated() {
        assert_eq!(
            redact("postgres://esmond:s3cret@db.example.net:5432/archive"),
            "postgres://esmond:***@db.example.net:5432/archive"
        );
        assert_eq!(
            redact("postgres://esmond@db/archive"),
            "postgres://esmond@db/archive"
        );
        assert_eq!(
            redact("host=db user=esmond password=s3cret dbname=archive"),
            "host=db user=esmond password=*** dbname=archive"
        );
    }
}
