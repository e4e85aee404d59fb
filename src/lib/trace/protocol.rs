//! What `trace-agent`'s clients and its server say on the unix socket: one JSON request
//! line, one JSON reply line (then the connection closes).
//!
//! ```text
//! {"op":"start","tracers":["proc","traffic"],"vars":{"match":"nova"}}
//! {"ok":true,"task":{"id":"0193…","started":…,"stopped":null,"runs":[…]}}
//! {"op":"stop","task":"0193a"}          // task: an unambiguous prefix; none = the latest
//! {"op":"list"}  {"op":"status"}  {"op":"tasks"}
//! {"ok":false,"error":"no tracer \"prc\" in the registry (it has: …)"}
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::store::TaskInfo;
use crate::Error;

/// The longest request the agent reads.
pub const MAX_REQUEST: usize = 64 * 1024;

/// The longest reply a client reads.
pub const MAX_REPLY: usize = 64 * 1024 * 1024;

/// A request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Start a task running these tracers.
    Start {
        /// Registry names.
        tracers: Vec<String>,
        /// Variables for their templates.
        #[serde(default)]
        vars: BTreeMap<String, String>,
    },
    /// Stop a running task (the latest without one).
    Stop {
        /// A task id or an unambiguous prefix of one.
        #[serde(default)]
        task: Option<String>,
    },
    /// The registry's tracers.
    List,
    /// The running tasks.
    Status,
    /// Every task in the store.
    Tasks,
}

/// A registry entry, as `list` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TracerInfo {
    /// Its name.
    pub name: String,
    /// Its argv template.
    pub argv: Vec<String>,
    /// How its lines are read, if it prints lines rather than records.
    pub parse: Option<String>,
    /// The running task that runs it.
    pub running: Option<String>,
}

/// A reply.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Reply {
    /// Whether the request was done.
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The task started or stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskInfo>,
    /// The tasks of `status` and `tasks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<TaskInfo>>,
    /// The tracers of `list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracers: Option<Vec<TracerInfo>>,
}

impl Reply {
    /// A refusal.
    pub fn error(message: impl Into<String>) -> Reply {
        Reply {
            error: Some(message.into()),
            ..Reply::default()
        }
    }
}

/// Sends `request` to the agent at `socket` and returns its reply (an error if it refused,
/// naming why), waiting at most `timeout` for it.
pub fn call(socket: &Path, request: &Request, timeout: Duration) -> Result<Reply, Error> {
    let name = socket.display();
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        use std::io::ErrorKind::{ConnectionRefused, NotFound};
        match e.kind() {
            NotFound | ConnectionRefused => Error::failed(format!(
                "{name}: no trace agent is listening here (start one with `trace-agent serve`)"
            )),
            _ => Error::io(name.to_string(), e),
        }
    })?;
    let mut line = serde_json::to_vec(request).map_err(|e| Error::failed(e.to_string()))?;
    line.push(b'\n');
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.write_all(&line))
        .map_err(|e| Error::io(name.to_string(), e))?;
    let mut reader = std::io::BufReader::new(stream);
    let mut reply = Vec::new();
    let read = read_message(&mut reader, &mut reply, MAX_REPLY).map_err(|e| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            Error::failed(format!("{name}: no reply within {} s", timeout.as_secs()))
        } else {
            Error::io(name.to_string(), e)
        }
    })?;
    if !read {
        return Err(Error::failed(format!(
            "{name}: the agent closed the connection without a reply"
        )));
    }
    let reply: Reply = serde_json::from_slice(&reply)
        .map_err(|e| Error::failed(format!("{name}: a reply that is not the agent's: {e}")))?;
    match (&reply.ok, &reply.error) {
        (true, _) => Ok(reply),
        (false, Some(error)) => Err(Error::failed(error.clone())),
        (false, None) => Err(Error::failed(format!(
            "{name}: the agent refused, saying nothing"
        ))),
    }
}

/// Reads one line of at most `max` bytes into `into` (without its newline): `false` at
/// an end before any byte; an error for a longer line.
pub fn read_message(
    reader: &mut impl BufRead,
    into: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<bool> {
    into.clear();
    let read = crate::ndjson::read_line_within(reader, into, max)?;
    if read.overlong {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a message longer than {max} bytes"),
        ));
    }
    let end = crate::ndjson::trim_line_end(into).len();
    into.truncate(end);
    Ok(read.consumed > 0)
}

/// Where the agent keeps its socket, lock and store when not told: `$MEASPIPE_TRACE_DIR` is
/// read by the tools; this is `$XDG_STATE_HOME/measpipe/trace`, else
/// `~/.local/state/measpipe/trace`, else `<temp dir>/measpipe-trace-<uid>`.
pub fn default_dir() -> std::path::PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|s| !s.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|home| Path::new(&home).join(".local/state"))
        });
    match state {
        Some(state) => state.join("measpipe/trace"),
        None => {
            // SAFETY: getuid(2) cannot fail and touches no memory.
            let uid = unsafe { libc::getuid() };
            std::env::temp_dir().join(format!("measpipe-trace-{uid}"))
        }
    }
}

/// A moment for people: RFC 3339 UTC to the second.
pub fn when(ts: f64) -> String {
    chrono::DateTime::from_timestamp_micros((ts * 1e6) as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ts.to_string())
}

/// A task as `stop` and `status` print it: a line for the task, one per tracer run.
pub fn write_task(out: &mut impl Write, task: &TaskInfo) -> std::io::Result<()> {
    let lines: u64 = task.runs.iter().map(|r| r.lines).sum();
    let state = match task.stopped {
        Some(stopped) => format!("stopped {}", when(stopped)),
        None => "running".into(),
    };
    writeln!(
        out,
        "task {} started {}, {state}: {} tracers, {lines} lines",
        task.id,
        when(task.started),
        task.runs.len()
    )?;
    let width = task.runs.iter().map(|r| r.tracer.len()).max().unwrap_or(0);
    for run in &task.runs {
        let pid = run.pid.map_or("-".into(), |p| p.to_string());
        let raw = if run.raw > 0 {
            format!(" ({} not trace records)", run.raw)
        } else {
            String::new()
        };
        writeln!(
            out,
            "  {:width$}  pid {pid:>7}  {:>9} lines{raw}  {}",
            run.tracer, run.lines, run.state
        )?;
    }
    Ok(())
}

/// The task list as `tasks` prints it: a line per task.
pub fn write_tasks(out: &mut impl Write, tasks: &[TaskInfo]) -> std::io::Result<()> {
    for task in tasks {
        let stopped = task.stopped.map_or("running".into(), when);
        let tracers: Vec<&str> = task.runs.iter().map(|r| r.tracer.as_str()).collect();
        let lines: u64 = task.runs.iter().map(|r| r.lines).sum();
        writeln!(
            out,
            "{}  {}  {stopped:<20}  {lines:>9} lines  {}",
            task.id,
            when(task.started),
            tracers.join(",")
        )?;
    }
    Ok(())
}

/// The registry as `list` prints it: name, the task running it (or `-`), the template.
pub fn write_tracers(out: &mut impl Write, tracers: &[TracerInfo]) -> std::io::Result<()> {
    let width = tracers.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for tracer in tracers {
        let running = tracer.running.as_deref().unwrap_or("-");
        let parse = tracer
            .parse
            .as_ref()
            .map_or(String::new(), |p| format!("  (parse {p})"));
        writeln!(
            out,
            "{:width$}  {running:<36}  {}{parse}",
            tracer.name,
            tracer.argv.join(" ")
        )?;
    }
    Ok(())
}
