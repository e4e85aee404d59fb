//! The trace store: tasks, the tracer runs of each, and every line each run printed, in one
//! SQLite file in the agent's data directory (`traces.sqlite`, WAL, so a report reads it
//! while the agent writes). scalpels kept a task's samples in memory until stop and then
//! wrote one JSON list per result; here each line is a row, committed as it arrives.
//!
//! | table | a row |
//! |---|---|
//! | `tasks` | a task: `id`, `started`, `stopped` (epoch seconds), `vars` (JSON) |
//! | `runs` | a tracer of a task: its `argv` (JSON), `pid`, `started`, `ended`, `outcome` (`stopped`, `finished`, `crashed: …`), `lines` printed, how many were `raw` (not trace records), the tail of its `stderr` |
//! | `samples` | a line: its `seq` (1 for the run's first line), `ts`, `series`, `unit`, `instance` (the record's string and integer fields, `pid=42 comm=nova`), `value` (when a number), and the `record` itself (the trace record as the agent piped it on) |

use std::path::Path;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::Error;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, started REAL NOT NULL, stopped REAL, vars TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    task TEXT NOT NULL, tracer TEXT NOT NULL, argv TEXT NOT NULL, pid INTEGER,
    started REAL NOT NULL, ended REAL, outcome TEXT, lines INTEGER NOT NULL DEFAULT 0,
    raw INTEGER NOT NULL DEFAULT 0, stderr TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (task, tracer));
CREATE TABLE IF NOT EXISTS samples (
    task TEXT NOT NULL, tracer TEXT NOT NULL, seq INTEGER NOT NULL, ts REAL NOT NULL,
    series TEXT NOT NULL, unit TEXT NOT NULL, instance TEXT NOT NULL, value REAL,
    record TEXT NOT NULL, PRIMARY KEY (task, tracer, seq)) WITHOUT ROWID;
";

/// What a run of a tracer ended as when the agent itself ended without stopping it.
pub const LOST: &str = "lost: the agent ended while it ran";

/// One line a tracer printed, as stored.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The task.
    pub task: std::sync::Arc<str>,
    /// The tracer.
    pub tracer: std::sync::Arc<str>,
    /// The line's number in the run, from 1.
    pub seq: u64,
    /// When it was sampled (epoch seconds).
    pub ts: f64,
    /// Its series.
    pub series: String,
    /// Its unit.
    pub unit: String,
    /// Its string and integer fields, `k=v` joined by spaces in key order.
    pub instance: String,
    /// Its value, when that is a number.
    pub value: Option<f64>,
    /// The trace record.
    pub record: String,
}

/// A tracer run, as `status`, `stop` and `tasks` show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    /// The tracer.
    pub tracer: String,
    /// Its command line.
    pub argv: Vec<String>,
    /// Its process (group) id.
    pub pid: Option<u32>,
    /// `running`, or how it ended.
    pub state: String,
    /// Lines it printed.
    pub lines: u64,
    /// Of those, lines that were not trace records (stored as `stdout` lines).
    pub raw: u64,
    /// The last lines it wrote on stderr.
    pub stderr: String,
}

/// A task, with its runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskInfo {
    /// Its id.
    pub id: String,
    /// When it started (epoch seconds).
    pub started: f64,
    /// When it stopped, once it has.
    pub stopped: Option<f64>,
    /// Its tracer runs.
    pub runs: Vec<RunInfo>,
}

/// The store (one connection).
pub struct Store {
    conn: Connection,
    name: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("name", &self.name).finish()
    }
}

impl Store {
    /// Opens (creating) the store at `path` for the agent.
    pub fn open(path: &Path) -> Result<Store, Error> {
        let name = path.display().to_string();
        let conn = Connection::open(path).map_err(|e| Error::failed(format!("{name}: {e}")))?;
        let store = Store { conn, name };
        store
            .conn
            .execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .and_then(|()| store.conn.execute_batch(SCHEMA))
            .map_err(|e| store.fault(e))?;
        store
            .conn
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| store.fault(e))?;
        Ok(store)
    }

    /// Opens the store at `path` to read (a report), while an agent may write it.
    pub fn open_read(path: &Path) -> Result<Store, Error> {
        let name = path.display().to_string();
        if !path.exists() {
            return Err(Error::failed(format!(
                "{name}: no trace store here (trace-agent serve has not run with this --dir)"
            )));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| Error::failed(format!("{name}: {e}")))?;
        let store = Store { conn, name };
        store
            .conn
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| store.fault(e))?;
        Ok(store)
    }

    fn fault(&self, e: rusqlite::Error) -> Error {
        Error::failed(format!("{}: {e}", self.name))
    }

    /// Ends what an agent that died left running: its runs become [`LOST`] and its tasks
    /// stop at `now`. Returns each such run's tracer pid (if it was started) and when the
    /// run started.
    pub fn mark_lost(&self, now: f64) -> Result<Vec<(Option<u32>, f64)>, Error> {
        let left: Vec<(Option<u32>, f64)> = self
            .conn
            .prepare("SELECT pid, started FROM runs WHERE ended IS NULL")
            .and_then(|mut select| {
                select
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect()
            })
            .map_err(|e| self.fault(e))?;
        self.conn
            .execute(
                "UPDATE runs SET ended = ?1, outcome = ?2 WHERE ended IS NULL",
                params![now, LOST],
            )
            .map_err(|e| self.fault(e))?;
        self.conn
            .execute("UPDATE tasks SET stopped = ?1 WHERE stopped IS NULL", [now])
            .map_err(|e| self.fault(e))?;
        Ok(left)
    }

    /// Records a new task.
    pub fn add_task(&self, id: &str, started: f64, vars: &str) -> Result<(), Error> {
        self.conn
            .execute(
                "INSERT INTO tasks (id, started, vars) VALUES (?1, ?2, ?3)",
                params![id, started, vars],
            )
            .map(drop)
            .map_err(|e| self.fault(e))
    }

    /// Records that a task stopped.
    pub fn stop_task(&self, id: &str, stopped: f64) -> Result<(), Error> {
        self.conn
            .execute(
                "UPDATE tasks SET stopped = ?2 WHERE id = ?1",
                params![id, stopped],
            )
            .map(drop)
            .map_err(|e| self.fault(e))
    }

    /// Records a run that started (`pid` none if it could not start).
    pub fn add_run(&self, task: &str, run: &RunInfo, started: f64) -> Result<(), Error> {
        let argv = serde_json::to_string(&run.argv).unwrap_or_default();
        self.conn
            .execute(
                "INSERT INTO runs (task, tracer, argv, pid, started) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![task, run.tracer, argv, run.pid, started],
            )
            .map(drop)
            .map_err(|e| self.fault(e))
    }

    /// Records how a run ended.
    pub fn end_run(&self, task: &str, run: &RunInfo, ended: f64) -> Result<(), Error> {
        self.conn
            .execute(
                "UPDATE runs SET ended = ?3, outcome = ?4, lines = ?5, raw = ?6, stderr = ?7
                 WHERE task = ?1 AND tracer = ?2",
                params![
                    task,
                    run.tracer,
                    ended,
                    run.state,
                    run.lines as i64,
                    run.raw as i64,
                    run.stderr
                ],
            )
            .map(drop)
            .map_err(|e| self.fault(e))
    }

    /// Stores `samples` in one transaction.
    pub fn insert(&mut self, samples: &[Sample]) -> Result<(), Error> {
        let name = &self.name;
        let fault = |e: rusqlite::Error| Error::failed(format!("{name}: {e}"));
        let tx = self.conn.transaction().map_err(fault)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO samples
                     (task, tracer, seq, ts, series, unit, instance, value, record)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(fault)?;
            for s in samples {
                insert
                    .execute(params![
                        &*s.task,
                        &*s.tracer,
                        s.seq as i64,
                        s.ts,
                        s.series,
                        s.unit,
                        s.instance,
                        s.value,
                        s.record
                    ])
                    .map_err(fault)?;
            }
        }
        tx.commit().map_err(fault)
    }

    /// The id of the task `prefix` names (any unambiguous start of an id), or of the latest
    /// task without one.
    pub fn resolve(&self, prefix: Option<&str>) -> Result<String, Error> {
        let Some(prefix) = prefix else {
            return self
                .conn
                .query_row(
                    "SELECT id FROM tasks ORDER BY started DESC, id DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.fault(e))?
                .ok_or_else(|| Error::failed(format!("{}: no tasks yet", self.name)));
        };
        let lowered = prefix.to_ascii_lowercase();
        let mut query = self
            .conn
            .prepare_cached(
                "SELECT id FROM tasks WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id LIMIT 6",
            )
            .map_err(|e| self.fault(e))?;
        let ids: Vec<String> = query
            .query_map([&lowered], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.fault(e))?;
        match ids.as_slice() {
            [] => Err(Error::failed(format!("no task {prefix:?}"))),
            [id] => Ok(id.clone()),
            more => Err(Error::failed(format!(
                "task {prefix:?} is ambiguous: it starts {}{}",
                more[..more.len().min(5)].join(", "),
                if more.len() > 5 { ", …" } else { "" }
            ))),
        }
    }

    /// Task `id` with its runs as stored.
    pub fn task(&self, id: &str) -> Result<TaskInfo, Error> {
        let (started, stopped) = self
            .conn
            .query_row(
                "SELECT started, stopped FROM tasks WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.fault(e))?;
        let mut query = self
            .conn
            .prepare_cached(
                "SELECT tracer, argv, pid, coalesce(outcome, 'running'), lines, raw, stderr
                 FROM runs WHERE task = ?1 ORDER BY tracer",
            )
            .map_err(|e| self.fault(e))?;
        let runs = query
            .query_map([id], |r| {
                let argv: String = r.get(1)?;
                Ok(RunInfo {
                    tracer: r.get(0)?,
                    argv: serde_json::from_str(&argv).unwrap_or_default(),
                    pid: r.get(2)?,
                    state: r.get(3)?,
                    lines: r.get::<_, i64>(4)? as u64,
                    raw: r.get::<_, i64>(5)? as u64,
                    stderr: r.get(6)?,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(|e| self.fault(e))?;
        Ok(TaskInfo {
            id: id.to_owned(),
            started,
            stopped,
            runs,
        })
    }

    /// Every task, oldest first, with its runs.
    pub fn tasks(&self) -> Result<Vec<TaskInfo>, Error> {
        let mut query = self
            .conn
            .prepare_cached("SELECT id FROM tasks ORDER BY started, id")
            .map_err(|e| self.fault(e))?;
        let ids: Vec<String> = query
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.fault(e))?;
        ids.iter().map(|id| self.task(id)).collect()
    }

    /// Calls `each` with every sample of task `task` (of `tracer` only, if given) in
    /// series order: tracer, series, unit, instance, then time.
    pub fn each_sample(
        &self,
        task: &str,
        tracer: Option<&str>,
        mut each: impl FnMut(&str, &str, &str, &str, f64, Option<f64>),
    ) -> Result<(), Error> {
        let mut query = self
            .conn
            .prepare(
                "SELECT tracer, series, unit, instance, ts, value FROM samples
                 WHERE task = ?1 AND (?2 IS NULL OR tracer = ?2)
                 ORDER BY tracer, series, unit, instance, ts, seq",
            )
            .map_err(|e| self.fault(e))?;
        let mut rows = query
            .query(params![task, tracer])
            .map_err(|e| self.fault(e))?;
        while let Some(row) = rows.next().map_err(|e| self.fault(e))? {
            let text = |i| {
                row.get_ref(i)
                    .ok()
                    .and_then(|v| v.as_str().ok())
                    .unwrap_or("")
            };
            let ts: f64 = row.get(4).map_err(|e| self.fault(e))?;
            let value: Option<f64> = row.get(5).map_err(|e| self.fault(e))?;
            each(text(0), text(1), text(2), text(3), ts, value);
        }
        Ok(())
    }
}
