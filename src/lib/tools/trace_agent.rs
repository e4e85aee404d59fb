//! `trace-agent`: scalpels' agent and client as one binary. See [`crate::trace::agent`].

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::cli::{self, OutputArgs, TraceDirArgs};
use crate::trace::agent::{self, Options};
use crate::trace::protocol::{self, Reply, Request};

const EXAMPLES: &str = "\
Examples:
  # the agent, its records also piped on as NDJSON
  trace-agent serve --stdout | esmond-post ...

  # trace nova's processes and the loopback for a while, then stop and report
  task=$(trace-agent start proc traffic --var match=nova-compute)
  trace-agent status
  trace-agent stop \"$task\"            # or a prefix of it, or --last
  trace-report \"$task\" --html report.html

  # what the registry ($DIR/tracers.toml, else the built-in one) offers
  trace-agent list";

/// Run named tracers as tasks and store everything they print (scalpels' agent).
///
/// `trace-agent serve` owns a data directory (--dir): a unix socket only its owner can use
/// (agent.sock, mode 0600), a lock (a second agent exits with status 75), the tracer
/// registry (tracers.toml, read again at every start; without one the built-in registry
/// of proc, traffic, rpc, perf and pidstat) and the store (traces.sqlite, every line each
/// tracer printed, committed as it arrives). Tracers run in their own process groups;
/// stopping a task sends them SIGTERM, reads their output to its end and, after --grace,
/// sends SIGKILL. SIGTERM or SIGINT to the agent stops every task the same way (exit 143
/// or 130). An agent that was killed (SIGKILL, a crash) stops nothing; the next one on the
/// directory records its runs as lost and stops the tracers still running from them (a
/// process group whose leader started when the run did; a reused pid is left alone).
///
/// The other subcommands are clients: `start` prints the new task's id; `stop`, `status`,
/// `tasks` and `list` print what the agent says (--json: its reply as JSON). A task is
/// named by its id or any unambiguous prefix of it.
#[derive(Debug, Parser)]
#[command(name = "trace-agent", version, after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    dir: TraceDirArgs,

    /// Print the agent's reply as one JSON line (clients).
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent (in the foreground; see pipelines/trace-agent.service).
    Serve {
        /// The registry file (default: DIR/tracers.toml, else the built-in one).
        #[arg(long, value_name = "FILE")]
        registry: Option<PathBuf>,

        /// How long a stopped tracer has to end after SIGTERM before SIGKILL.
        #[arg(long, default_value = "10", value_name = "SECONDS", value_parser = cli::seconds)]
        grace: Duration,

        /// Also write every stored record to stdout, as NDJSON, once it is committed. Like
        /// tee, the agent waits for a slow reader (and so do its tracers and clients).
        #[arg(long)]
        stdout: bool,

        /// The longest tracer line kept whole, in bytes (a longer one is cut).
        #[arg(long, value_name = "BYTES", default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1..))]
        max_line: u64,

        #[command(flatten)]
        output: OutputArgs,
    },
    /// Start a task running the named tracers; prints its id.
    Start {
        /// Tracers from the registry.
        #[arg(required = true, value_name = "TRACER")]
        tracers: Vec<String>,

        /// A template variable, overriding the registry's [vars] (repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = name_value)]
        vars: Vec<(String, String)>,
    },
    /// Stop a task (the latest running one without TASK): every tracer drained.
    Stop {
        /// A task id or an unambiguous prefix of one.
        #[arg(value_name = "TASK", conflicts_with = "last")]
        task: Option<String>,

        /// The latest running task (the default).
        #[arg(long)]
        last: bool,
    },
    /// The registry's tracers, and the task running each.
    List,
    /// The running tasks and their tracers.
    Status,
    /// Every task in the store.
    Tasks,
}

fn name_value(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    if !crate::trace::registry::valid_name(name) {
        return Err(format!("{name:?} is not a variable name"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Runs `trace-agent`.
pub fn run(args: Args) -> Result<(), crate::Error> {
    let dir = args.dir.dir();
    let request = match args.command {
        Command::Serve {
            registry,
            grace,
            stdout,
            max_line,
            output,
        } => {
            cli::stop_on_signal();
            agent::serve(Options {
                dir,
                registry,
                grace,
                max_line: usize::try_from(max_line).unwrap_or(usize::MAX),
                out: stdout.then(|| cli::stdout(&output)),
                say: cli::notice,
                stop: || cli::interrupted().is_some(),
            })?;
            return match cli::interrupted() {
                Some(signal) => Err(crate::Error::Interrupted(signal)),
                None => Ok(()),
            };
        }
        Command::Start { tracers, vars } => Request::Start {
            tracers,
            vars: vars.into_iter().collect::<BTreeMap<_, _>>(),
        },
        Command::Stop { task, .. } => Request::Stop { task },
        Command::List => Request::List,
        Command::Status => Request::Status,
        Command::Tasks => Request::Tasks,
    };
    // A stop waits for the tracers' grace period; nothing else takes long.
    let timeout = Duration::from_secs(if matches!(request, Request::Stop { .. }) {
        600
    } else {
        60
    });
    let reply = protocol::call(&agent::socket_path(&dir), &request, timeout)?;
    print(&request, &reply, args.json).map_err(|e| crate::Error::io("<stdout>", e))
}

fn print(request: &Request, reply: &Reply, json: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, reply)?;
        return writeln!(out);
    }
    match request {
        Request::Start { .. } => {
            if let Some(task) = &reply.task {
                writeln!(out, "{}", task.id)?;
            }
        }
        Request::Stop { .. } => {
            if let Some(task) = &reply.task {
                protocol::write_task(&mut out, task)?;
            }
        }
        Request::Status => {
            for task in reply.tasks.iter().flatten() {
                protocol::write_task(&mut out, task)?;
            }
        }
        Request::Tasks => protocol::write_tasks(&mut out, reply.tasks.as_deref().unwrap_or(&[]))?,
        Request::List => {
            protocol::write_tracers(&mut out, reply.tracers.as_deref().unwrap_or(&[]))?
        }
    }
    out.flush()
}
