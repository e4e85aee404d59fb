//! The trace agent: scalpels' `sca-agent` and `sca-tracer` as one process. It owns a data
//! directory (the socket, the lock and the store), starts tasks of named tracers from the
//! [registry](super::registry), and stores every line each tracer prints as it arrives.
//!
//! - Each tracer runs as a child in its own process group, with `MEASPIPE_TASK` and
//!   `MEASPIPE_TRACER` set, standard input from /dev/null and its working directory the
//!   registry's. Its trace records are re-tagged with the task and the registry name; any
//!   other line is kept as a `stdout` record (unit `line`), so nothing it prints is lost.
//!   Its stderr is passed on, prefixed with its name, and its last lines kept for the run.
//! - One writer thread owns the store: lines from every tracer go through a bounded queue
//!   (a tracer faster than the disk waits), a batch per transaction, then on to stdout
//!   when asked.
//! - Stopping a task sends SIGTERM to every tracer's group, reads each tracer's output to
//!   its end, and after the grace period sends SIGKILL. The reply comes once everything is
//!   committed. A tracer that ends on its own is recorded (`finished`, `crashed: exit
//!   status 3: <its last stderr line>`) and the others go on.
//! - An agent that was killed stops nothing: the next one on the directory records the
//!   runs it left as lost and stops each tracer still running from them, after checking
//!   that the pid still leads its own group and started when the run did.
//! - Only the agent's owner (or root) may connect: the socket is mode 0600 in a 0700
//!   directory and each peer's uid is checked before its request is read.

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::protocol::{read_message, Reply, Request, TracerInfo, MAX_REQUEST};
use super::registry::{self, Registry};
use super::store::{RunInfo, Sample, Store, TaskInfo};
use crate::clock::now_epoch;
use crate::ndjson::NdjsonWriter;
use crate::Error;

/// Connections served at once; more are refused.
const MAX_CONNECTIONS: usize = 32;

/// How long a client has to send its request.
const REQUEST_TIME: Duration = Duration::from_secs(5);

/// Lines queued for the store before the tracers wait.
const QUEUE: usize = 16 * 1024;

/// Lines per transaction at most.
const BATCH: usize = 4096;

/// Lines of a tracer's stderr kept for its run.
const STDERR_TAIL: usize = 10;

/// How the agent runs.
pub struct Options {
    /// The data directory.
    pub dir: PathBuf,
    /// The registry file; `None`: `DIR/tracers.toml` if there is one, else the built-in one.
    pub registry: Option<PathBuf>,
    /// How long a stopped tracer has to end before SIGKILL.
    pub grace: Duration,
    /// The longest line kept whole from a tracer.
    pub max_line: usize,
    /// Where every stored record also goes, if anywhere.
    pub out: Option<NdjsonWriter>,
    /// Says something on stderr (a tracer's stderr, a crash, a refused connection).
    pub say: fn(&str),
    /// Asked every 50 ms: true once the agent should stop.
    pub stop: fn() -> bool,
}

/// The data directory's files.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("agent.sock")
}

/// The store's file in the data directory.
pub fn store_path(dir: &Path) -> PathBuf {
    dir.join("traces.sqlite")
}

enum Message {
    Sample(Sample),
    Call(Box<dyn FnOnce(&mut Store) + Send>),
}

struct Agent {
    dir: PathBuf,
    registry: Option<PathBuf>,
    grace: Duration,
    max_line: usize,
    say: fn(&str),
    queue: SyncSender<Message>,
    running: Mutex<Vec<Task>>,
}

struct Task {
    id: String,
    started: f64,
    runs: Vec<Run>,
}

struct Run {
    tracer: String,
    argv: Vec<String>,
    pid: Option<u32>,
    lines: Arc<AtomicU64>,
    raw: Arc<AtomicU64>,
    stopping: Arc<AtomicBool>,
    ended: Arc<Mutex<Option<RunInfo>>>,
    done: Option<Receiver<()>>,
}

impl Run {
    fn info(&self) -> RunInfo {
        if let Some(ended) = &*lock(&self.ended) {
            return ended.clone();
        }
        RunInfo {
            tracer: self.tracer.clone(),
            argv: self.argv.clone(),
            pid: self.pid,
            state: "running".into(),
            lines: self.lines.load(Ordering::Relaxed),
            raw: self.raw.load(Ordering::Relaxed),
            stderr: String::new(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Serves until `options.stop` says so; then stops every task (each tracer drained and its
/// lines committed) and returns.
pub fn serve(mut options: Options) -> Result<(), Error> {
    let dir = options.dir.clone();
    let shown = dir.display().to_string();
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io(shown.clone(), e))?;
    }
    let _lock = crate::state::lock(&dir.join("agent"), false)?;
    let store = Store::open(&store_path(&dir))?;
    let lost = store.mark_lost(now_epoch())?;
    if !lost.is_empty() {
        (options.say)(&format!(
            "{} tracer runs were left running by an agent that ended without stopping them; recorded as lost",
            lost.len()
        ));
        let stopped = lost
            .iter()
            .filter_map(|&(pid, started)| pid.map(|pid| (pid, started)))
            .filter(|&(pid, started)| stop_orphan(pid, started, options.grace))
            .count();
        if stopped > 0 {
            (options.say)(&format!(
                "stopped {stopped} of their tracers, still running without an agent"
            ));
        }
    }
    let socket = socket_path(&dir);
    // The lock is held: a socket file here is a dead agent's.
    let _ = std::fs::remove_file(&socket);
    let listener = bind_private(&socket)?;
    let (queue, lines) = sync_channel(QUEUE);
    let out = options.out.take();
    let say = options.say;
    let writer = std::thread::spawn(move || write_store(store, lines, out, say));
    let agent = Arc::new(Agent {
        dir,
        registry: options.registry,
        grace: options.grace,
        max_line: options.max_line,
        say,
        queue,
        running: Mutex::new(Vec::new()),
    });
    say(&format!("listening on {}", socket.display()));
    let connections = Arc::new(AtomicUsize::new(0));
    while !(options.stop)() {
        match listener.accept() {
            Ok((stream, _)) => {
                if connections.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                    connections.fetch_sub(1, Ordering::SeqCst);
                    say("refused a connection: too many at once");
                    let _ = answer(stream, &Reply::error("the agent is busy; try again"));
                    continue;
                }
                let (agent, connections) = (Arc::clone(&agent), Arc::clone(&connections));
                std::thread::spawn(move || {
                    agent.connection(stream);
                    connections.fetch_sub(1, Ordering::SeqCst);
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                say(&format!("{}: {e}", socket.display()));
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    let _ = std::fs::remove_file(&socket);
    let tasks: Vec<Task> = std::mem::take(&mut *lock(&agent.running));
    let stopped: Vec<_> = tasks
        .into_iter()
        .map(|task| {
            let agent = Arc::clone(&agent);
            std::thread::spawn(move || agent.stop_task(task))
        })
        .collect();
    for task in stopped {
        let _ = task.join();
    }
    drop(agent);
    writer
        .join()
        .map_err(|_| Error::failed("the store's writer failed"))
}

/// Binds a listening socket only its owner can connect to.
fn bind_private(socket: &Path) -> Result<UnixListener, Error> {
    use std::os::unix::fs::PermissionsExt;
    let name = socket.display().to_string();
    // SAFETY: umask(2) only swaps the process's file mode mask.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(socket);
    // SAFETY: as above, restoring the mask.
    unsafe { libc::umask(old) };
    let listener = bound.map_err(|e| Error::io(name.clone(), e))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| listener.set_nonblocking(true))
        .map_err(|e| Error::io(name, e))?;
    Ok(listener)
}

/// The uid of the process at the other end of `stream`.
fn peer_uid(stream: &UnixStream) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED fills a ucred of `len` bytes, which `cred` is.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(cred.uid)
}

fn answer(mut stream: UnixStream, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(std::io::Error::from)?;
    line.push(b'\n');
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(REQUEST_TIME))?;
    stream.write_all(&line)?;
    // Read what is left of a refused request (within bounds) before closing, so the
    // close does not reset the connection before the client has read the reply.
    stream.shutdown(std::net::Shutdown::Write)?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    std::io::copy(&mut (&stream).take(1 << 20), &mut std::io::sink()).map(drop)
}

/// The store's writer: batches of lines, each batch one transaction, then piped on.
fn write_store(
    mut store: Store,
    queue: Receiver<Message>,
    mut out: Option<NdjsonWriter>,
    say: fn(&str),
) {
    let mut batch: Vec<Sample> = Vec::with_capacity(BATCH);
    while let Ok(first) = queue.recv() {
        let mut call = None;
        match first {
            Message::Sample(sample) => batch.push(sample),
            Message::Call(f) => call = Some(f),
        }
        while call.is_none() && batch.len() < BATCH {
            match queue.try_recv() {
                Ok(Message::Sample(sample)) => batch.push(sample),
                Ok(Message::Call(f)) => call = Some(f),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            if let Err(e) = store.insert(&batch) {
                say(&format!("{} lines were not stored: {e}", batch.len()));
            }
            if let Some(writer) = &mut out {
                let piped = batch
                    .iter()
                    .try_for_each(|s| writer.write_line(s.record.as_bytes()))
                    .and_then(|()| writer.flush());
                if let Err(e) = piped {
                    if !e.is_broken_pipe() {
                        say(&format!("no longer piping records on: {e}"));
                    }
                    out = None;
                }
            }
            batch.clear();
        }
        if let Some(call) = call {
            call(&mut store);
        }
    }
}

impl Agent {
    /// Runs `f` on the store after every line queued so far is committed.
    fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let (reply, answer) = sync_channel(1);
        let call = Box::new(move |store: &mut Store| {
            let _ = reply.send(f(store));
        });
        self.queue
            .send(Message::Call(call))
            .map_err(|_| Error::failed("the store's writer has stopped"))?;
        answer
            .recv()
            .map_err(|_| Error::failed("the store's writer has stopped"))
    }

    fn connection(&self, stream: UnixStream) {
        // SAFETY: geteuid(2) cannot fail and touches no memory.
        let me = unsafe { libc::geteuid() };
        match peer_uid(&stream) {
            Some(uid) if uid == me || uid == 0 => {}
            uid => {
                let who = uid.map_or("an unknown user".into(), |u| format!("uid {u}"));
                (self.say)(&format!("refused a connection from {who}"));
                let _ = answer(stream, &Reply::error("refused: not the agent's owner"));
                return;
            }
        }
        let request = stream
            .set_nonblocking(false)
            .and_then(|()| stream.set_read_timeout(Some(REQUEST_TIME)))
            .and_then(|()| stream.try_clone())
            .and_then(|read| {
                let mut reader = BufReader::new(read.take(MAX_REQUEST as u64 + 2));
                let mut line = Vec::new();
                read_message(&mut reader, &mut line, MAX_REQUEST).map(|_| line)
            });
        let reply = match request {
            Err(e) => Reply::error(format!("a request the agent could not read: {e}")),
            Ok(line) => match serde_json::from_slice::<Request>(&line) {
                Err(e) => Reply::error(format!("not a request: {e}")),
                Ok(request) => self.handle(request),
            },
        };
        let _ = answer(stream, &reply);
    }

    fn handle(&self, request: Request) -> Reply {
        let done = match request {
            Request::Start { tracers, vars } => self.start(&tracers, vars).map(|task| Reply {
                task: Some(task),
                ..Reply::default()
            }),
            Request::Stop { task } => self.stop(task.as_deref()).map(|task| Reply {
                task: Some(task),
                ..Reply::default()
            }),
            Request::List => self.list().map(|tracers| Reply {
                tracers: Some(tracers),
                ..Reply::default()
            }),
            Request::Status => Ok(Reply {
                tasks: Some(lock(&self.running).iter().map(task_info).collect()),
                ..Reply::default()
            }),
            Request::Tasks => self
                .with_store(|store| store.tasks())
                .and_then(|tasks| tasks)
                .map(|tasks| Reply {
                    tasks: Some(tasks),
                    ..Reply::default()
                }),
        };
        match done {
            Ok(reply) => Reply { ok: true, ..reply },
            Err(e) => Reply::error(e.to_string()),
        }
    }

    /// The registry as it is now, and the directory its tracers run in.
    fn registry(&self) -> Result<(Registry, PathBuf), Error> {
        let own = self.dir.join("tracers.toml");
        let path = self
            .registry
            .clone()
            .or_else(|| own.exists().then_some(own));
        let Some(path) = path else {
            let registry = Registry::parse(registry::BUILTIN, "the built-in registry")
                .map_err(Error::failed)?;
            return Ok((registry, self.dir.clone()));
        };
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(name.clone(), e))?;
        let registry = Registry::parse(&text, &name).map_err(Error::failed)?;
        let at = path
            .parent()
            .map_or_else(|| self.dir.clone(), Path::to_path_buf);
        Ok((registry, at))
    }

    fn list(&self) -> Result<Vec<TracerInfo>, Error> {
        let (registry, _) = self.registry()?;
        let running = lock(&self.running);
        Ok(registry
            .tracers
            .iter()
            .map(|(name, tracer)| TracerInfo {
                name: name.clone(),
                argv: tracer.argv.clone(),
                parse: tracer.parse.map(|p| p.name().to_owned()),
                running: running
                    .iter()
                    .find(|task| task.runs.iter().any(|r| &r.tracer == name))
                    .map(|task| task.id.clone()),
            })
            .collect())
    }

    fn start(&self, names: &[String], vars: BTreeMap<String, String>) -> Result<TaskInfo, Error> {
        if names.is_empty() {
            return Err(Error::Usage("name at least one tracer to start".into()));
        }
        let (registry, at) = self.registry()?;
        let mut running = lock(&self.running);
        let id = uuid::Uuid::now_v7().to_string();
        let dir = self.dir.display().to_string();
        let mut commands: Vec<(String, Vec<String>)> = Vec::new();
        for name in names {
            if commands.iter().any(|(n, _)| n == name) {
                continue;
            }
            if let Some(task) = running
                .iter()
                .find(|t| t.runs.iter().any(|r| &r.tracer == name))
            {
                return Err(Error::failed(format!(
                    "tracer {name:?} is already running in task {}",
                    task.id
                )));
            }
            let builtins = [
                ("task", id.as_str()),
                ("tracer", name.as_str()),
                ("dir", dir.as_str()),
            ];
            let argv = registry
                .command(name, &vars, &builtins)
                .map_err(Error::failed)?;
            commands.push((
                name.clone(),
                wrap(registry.tracer(name).map_err(Error::failed)?, name, argv),
            ));
        }
        let started = now_epoch();
        let vars_json = serde_json::to_string(&vars).unwrap_or_default();
        let task_id = id.clone();
        self.with_store(move |store| store.add_task(&task_id, started, &vars_json))??;
        let mut task = Task {
            id: id.clone(),
            started,
            runs: Vec::new(),
        };
        for (name, argv) in commands {
            match self.spawn(&id, &name, argv, &at) {
                Ok(run) => task.runs.push(run),
                Err(failed) => {
                    let (run, e) = *failed;
                    task.runs.push(run);
                    drop(running);
                    self.stop_task(task);
                    return Err(Error::failed(format!("{e} (task {id} stopped)")));
                }
            }
        }
        let info = task_info(&task);
        running.push(task);
        Ok(info)
    }

    /// Starts one tracer; on failure, the run that records why.
    fn spawn(
        &self,
        task: &str,
        tracer: &str,
        argv: Vec<String>,
        at: &Path,
    ) -> Result<Run, Box<(Run, Error)>> {
        use std::os::unix::process::CommandExt;
        let mut run = Run {
            tracer: tracer.to_owned(),
            argv,
            pid: None,
            lines: Arc::default(),
            raw: Arc::default(),
            stopping: Arc::default(),
            ended: Arc::default(),
            done: None,
        };
        let child = std::process::Command::new(&run.argv[0])
            .args(&run.argv[1..])
            .env("MEASPIPE_TASK", task)
            .env("MEASPIPE_TRACER", tracer)
            .current_dir(at)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .spawn();
        let started = now_epoch();
        let mut child = match child {
            Ok(child) => child,
            Err(e) => {
                let why = format!("tracer {tracer:?}: cannot start {}: {e}", run.argv[0]);
                let mut info = run.info();
                info.state = format!("failed to start: {e}");
                let (task, ended) = (task.to_owned(), info.clone());
                let _ = self.with_store(move |store| {
                    store
                        .add_run(&task, &ended, started)
                        .and_then(|()| store.end_run(&task, &ended, started))
                });
                *lock(&run.ended) = Some(info);
                return Err(Box::new((run, Error::failed(why))));
            }
        };
        run.pid = Some(child.id());
        let (task_tag, tracer_tag): (Arc<str>, Arc<str>) = (task.into(), tracer.into());
        let info = run.info();
        let (t, i) = (task.to_owned(), info.clone());
        let _ = self.with_store(move |store| store.add_run(&t, &i, started));
        let (done, finished) = sync_channel(1);
        run.done = Some(finished);
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let watch = Watch {
            queue: self.queue.clone(),
            task: task_tag,
            tracer: tracer_tag,
            lines: Arc::clone(&run.lines),
            raw: Arc::clone(&run.raw),
            stopping: Arc::clone(&run.stopping),
            ended: Arc::clone(&run.ended),
            info,
            max_line: self.max_line,
            say: self.say,
        };
        std::thread::spawn(move || {
            watch.run(child, stdout, stderr);
            let _ = done.send(());
        });
        Ok(run)
    }

    fn stop(&self, prefix: Option<&str>) -> Result<TaskInfo, Error> {
        let task = {
            let mut running = lock(&self.running);
            let at = match prefix {
                None => running
                    .len()
                    .checked_sub(1)
                    .ok_or_else(|| Error::failed("no task is running"))?,
                Some(prefix) => {
                    let owned = prefix.to_owned();
                    let id = self.with_store(move |store| store.resolve(Some(&owned)))??;
                    running
                        .iter()
                        .position(|t| t.id == id)
                        .ok_or_else(|| Error::failed(format!("task {id} has already stopped")))?
                }
            };
            running.remove(at)
        };
        let id = task.id.clone();
        self.stop_task(task);
        self.with_store(move |store| store.task(&id))?
    }

    /// Stops every tracer of `task`, drains it, and records the task stopped once all its
    /// lines are committed.
    fn stop_task(&self, mut task: Task) {
        for run in &task.runs {
            run.stopping.store(true, Ordering::SeqCst);
            if let Some(pid) = run.pid {
                signal_group(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + self.grace;
        for run in &mut task.runs {
            let Some(done) = run.done.take() else {
                continue;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if done.recv_timeout(left).is_ok() {
                continue;
            }
            if let Some(pid) = run.pid {
                (self.say)(&format!(
                    "task {}: tracer {} did not stop within {} s of SIGTERM: SIGKILL",
                    task.id,
                    run.tracer,
                    self.grace.as_secs_f64()
                ));
                signal_group(pid, libc::SIGKILL);
            }
            if done.recv_timeout(Duration::from_secs(5)).is_err() {
                (self.say)(&format!(
                    "task {}: tracer {}'s output is still open after SIGKILL (a process outside its group holds it); not waiting",
                    task.id, run.tracer
                ));
            }
        }
        let (id, stopped) = (task.id.clone(), now_epoch());
        let _ = self.with_store(move |store| store.stop_task(&id, stopped));
    }
}

fn task_info(task: &Task) -> TaskInfo {
    TaskInfo {
        id: task.id.clone(),
        started: task.started,
        stopped: None,
        runs: task.runs.iter().map(Run::info).collect(),
    }
}

fn signal_group(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) with a negative pid signals a process group; it touches no memory.
        unsafe {
            libc::kill(-pid, signal);
        }
    }
}

/// A tracer's command as run: a bare program name is looked for beside the agent first
/// (measpipe's tracers), then on PATH; a tracer with a `parse` runs under line-stamp.
fn wrap(tracer: &registry::Tracer, name: &str, mut argv: Vec<String>) -> Vec<String> {
    let beside = |program: &str| -> String {
        if !program.contains('/') {
            if let Some(path) = std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(|dir| dir.join(program)))
                .filter(|path| path.is_file())
            {
                return path.display().to_string();
            }
        }
        program.to_owned()
    };
    argv[0] = beside(&argv[0]);
    let Some(parse) = tracer.parse else {
        return argv;
    };
    let mut wrapped = vec![
        beside("line-stamp"),
        "--tracer".into(),
        name.into(),
        "--parse".into(),
        parse.name().into(),
    ];
    for (flag, value) in [("--series", &tracer.series), ("--unit", &tracer.unit)] {
        if let Some(value) = value {
            wrapped.extend([flag.to_owned(), value.clone()]);
        }
    }
    wrapped.push("--".into());
    wrapped.extend(argv);
    wrapped
}

/// What watches one tracer: its output into the store, its stderr on, its end recorded.
struct Watch {
    queue: SyncSender<Message>,
    task: Arc<str>,
    tracer: Arc<str>,
    lines: Arc<AtomicU64>,
    raw: Arc<AtomicU64>,
    stopping: Arc<AtomicBool>,
    ended: Arc<Mutex<Option<RunInfo>>>,
    info: RunInfo,
    max_line: usize,
    say: fn(&str),
}

impl Watch {
    fn run(
        mut self,
        mut child: std::process::Child,
        stdout: Option<std::process::ChildStdout>,
        stderr: Option<std::process::ChildStderr>,
    ) {
        let (tracer, say) = (self.tracer.clone(), self.say);
        let tail = std::thread::spawn(move || pass_stderr(stderr, &tracer, say));
        if let Some(stdout) = stdout {
            self.read(stdout);
        }
        let tail = tail.join().unwrap_or_default();
        let outcome = match child.wait() {
            Ok(status) => outcome(status, self.stopping.load(Ordering::SeqCst), &tail),
            Err(e) => format!("lost: {e}"),
        };
        if outcome.starts_with("crashed") {
            (self.say)(&format!(
                "task {}: tracer {} {outcome}",
                self.task, self.tracer
            ));
        }
        let mut info = self.info.clone();
        info.state = outcome;
        info.lines = self.lines.load(Ordering::SeqCst);
        info.raw = self.raw.load(Ordering::SeqCst);
        info.stderr = tail.join("\n");
        let (task, ended, at) = (self.task.to_string(), info.clone(), now_epoch());
        let _ = self
            .queue
            .send(Message::Call(Box::new(move |store: &mut Store| {
                let _ = store.end_run(&task, &ended, at);
            })));
        *lock(&self.ended) = Some(info);
    }

    fn read(&mut self, stdout: std::process::ChildStdout) {
        let mut input = BufReader::with_capacity(256 * 1024, stdout);
        let mut line = Vec::with_capacity(4096);
        let mut seq = 0;
        loop {
            match crate::ndjson::read_line_within(&mut input, &mut line, self.max_line) {
                Ok(read) if read.consumed == 0 => return,
                Ok(_) => {}
                Err(e) => {
                    (self.say)(&format!("task {}: tracer {}: {e}", self.task, self.tracer));
                    return;
                }
            }
            seq += 1;
            let content = crate::ndjson::trim_line_end(&line);
            let sample = sample(&self.task, &self.tracer, seq, content);
            if sample.series == RAW_SERIES {
                self.raw.fetch_add(1, Ordering::Relaxed);
            }
            if self.queue.send(Message::Sample(sample)).is_err() {
                return;
            }
            self.lines.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// How a tracer's end reads.
fn outcome(status: std::process::ExitStatus, stopping: bool, tail: &[String]) -> String {
    use std::os::unix::process::ExitStatusExt;
    let how = match (status.code(), status.signal()) {
        (Some(0), _) => None,
        (Some(code), _) => Some(format!("exit status {code}")),
        (None, Some(signal)) => Some(format!("signal {signal}")),
        (None, None) => Some(status.to_string()),
    };
    match (stopping, how) {
        (true, _) if status.signal() == Some(libc::SIGKILL) => {
            "killed: it did not stop on SIGTERM".into()
        }
        (true, _) => "stopped".into(),
        (false, None) => "finished".into(),
        (false, Some(how)) => match tail.last() {
            Some(last) => format!("crashed: {how}: {last}"),
            None => format!("crashed: {how}"),
        },
    }
}

/// Passes a tracer's stderr on, line by line; returns its last lines.
fn pass_stderr(
    stderr: Option<std::process::ChildStderr>,
    tracer: &str,
    say: fn(&str),
) -> Vec<String> {
    let mut tail = std::collections::VecDeque::with_capacity(STDERR_TAIL);
    let Some(stderr) = stderr else {
        return Vec::new();
    };
    let mut input = BufReader::new(stderr);
    let mut line = Vec::new();
    while let Ok(read) = crate::ndjson::read_line_within(&mut input, &mut line, 4096) {
        if read.consumed == 0 {
            break;
        }
        let text = String::from_utf8_lossy(crate::ndjson::trim_line_end(&line)).into_owned();
        say(&format!("{tracer}: {text}"));
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(text);
    }
    tail.into()
}

/// The series of a line that was not a trace record.
pub const RAW_SERIES: &str = "stdout";

/// A tracer's line as stored: its trace record re-tagged, or the line as a `stdout` record.
pub fn sample(task: &Arc<str>, tracer: &Arc<str>, seq: u64, line: &[u8]) -> Sample {
    let ts = now_epoch();
    if let Ok(mut record) = serde_json::from_slice::<crate::record::CheckedTrace>(line) {
        record.task = (**task).into();
        record.tracer = (**tracer).into();
        let mut instance = String::new();
        for (key, value) in &record.extra {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) if !n.is_f64() => n.to_string(),
                _ => continue,
            };
            if !instance.is_empty() {
                instance.push(' ');
            }
            instance.push_str(key);
            instance.push('=');
            instance.push_str(&text);
        }
        if record.ts.is_finite() {
            return Sample {
                task: Arc::clone(task),
                tracer: Arc::clone(tracer),
                seq,
                ts: record.ts,
                series: record.series.to_string(),
                unit: record.unit.to_string(),
                instance,
                value: record.value.as_f64().filter(|v| v.is_finite()),
                record: serde_json::to_string(&record).unwrap_or_default(),
            };
        }
    }
    let text = String::from_utf8_lossy(line);
    let record = crate::record::Trace {
        kind: crate::record::TraceKind,
        task: (**task).into(),
        tracer: (**tracer).into(),
        ts,
        series: RAW_SERIES.into(),
        unit: "line".into(),
        value: text.as_ref(),
        extra: super::NoFields {},
    };
    Sample {
        task: Arc::clone(task),
        tracer: Arc::clone(tracer),
        seq,
        ts,
        series: RAW_SERIES.into(),
        unit: "line".into(),
        instance: String::new(),
        value: None,
        record: serde_json::to_string(&record).unwrap_or_default(),
    }
}

/// Stops the process group that a dead agent's run left behind (its tracer and whatever
/// the tracer started), as a stop would have: SIGTERM, then SIGKILL after `grace`. Only
/// when `pid` still leads its own process group and started when the run did, so a pid
/// the kernel has given to another program since is left alone. Returns whether it
/// signalled.
fn stop_orphan(pid: u32, run_started: f64, grace: Duration) -> bool {
    let Ok(group) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: getpgid only reads the process table.
    if group <= 1 || unsafe { libc::getpgid(group) } != group {
        return false;
    }
    let Some(started) = procfs::process::Process::new(group)
        .and_then(|p| p.stat())
        .ok()
        .and_then(|stat| {
            let boot = procfs::boot_time_secs().ok()? as f64;
            Some(boot + stat.starttime as f64 / procfs::ticks_per_second() as f64)
        })
    else {
        return false;
    };
    // The run is recorded just after its tracer starts; boot time is whole seconds.
    if !(run_started - 5.0..=run_started + 2.0).contains(&started) {
        return false;
    }
    let alive = || {
        procfs::process::Process::new(group)
            .and_then(|p| p.stat())
            .is_ok_and(|stat| stat.state != 'Z')
    };
    // SAFETY: kill has no memory preconditions; a negative pid names the group.
    unsafe { libc::kill(-group, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if alive() {
        // SAFETY: as above.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
    true
}
