//! trace-agent and trace-report on real tracers: tasks started and stopped through the
//! socket, every line each tracer printed found in the store, crashes reported, reports
//! with exact statistics, and the HTML page rendered by headless Chromium.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A `trace-agent serve` on a directory of its own, stopped (SIGTERM) on drop.
struct Agent {
    child: Option<Child>,
    dir: PathBuf,
    stderr: Arc<Mutex<String>>,
    stdout: Option<std::thread::JoinHandle<String>>,
    _tmp: tempfile::TempDir,
}

impl Agent {
    /// Starts an agent whose registry is `registry`; returns once it listens.
    fn start(registry: &str, extra: &[&str]) -> Agent {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("trace");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("tracers.toml"), registry).unwrap();
        Agent::start_in(tmp, dir, extra)
    }

    /// Kills this agent with SIGKILL (it stops nothing), then starts another on the same
    /// directory; returns once it listens.
    fn kill_and_restart(mut self) -> Agent {
        let mut child = self.child.take().unwrap();
        unsafe_kill(child.id(), 9);
        child.wait().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let kept = std::mem::replace(&mut self._tmp, tmp);
        let dir = self.dir.clone();
        Agent::start_in(kept, dir, &[])
    }

    fn start_in(tmp: tempfile::TempDir, dir: PathBuf, extra: &[&str]) -> Agent {
        let mut child = Command::new(common::bin_path("trace-agent"))
            .arg("--dir")
            .arg(&dir)
            .arg("serve")
            .args(["--grace", "5"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (ready, listening) = std::sync::mpsc::channel();
        let mut lines = BufReader::new(child.stderr.take().unwrap());
        let kept = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut line = String::new();
            while lines.read_line(&mut line).unwrap_or(0) > 0 {
                if line.starts_with("trace-agent: listening on ") {
                    let _ = ready.send(());
                }
                kept.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        listening
            .recv_timeout(Duration::from_secs(20))
            .expect("the agent did not say it listens");
        // Read as it comes: a reader that stops holds the agent up, as it would hold tee.
        let mut out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            out.read_to_string(&mut text).unwrap();
            text
        });
        Agent {
            child: Some(child),
            dir,
            stderr,
            stdout: Some(stdout),
            _tmp: tmp,
        }
    }

    /// A client command against this agent.
    fn client(&self, args: &[&str]) -> std::process::Output {
        Command::new(common::bin_path("trace-agent"))
            .arg("--dir")
            .arg(&self.dir)
            .args(args)
            .output()
            .unwrap()
    }

    /// A client command that must succeed: its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.client(args);
        common::assert_success(&out);
        String::from_utf8(out.stdout).unwrap()
    }

    /// A client command that must fail with status 1: its stderr.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.client(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        String::from_utf8(out.stderr).unwrap()
    }

    /// `status --json`: the running tasks.
    fn status(&self) -> Vec<Value> {
        let reply: Value = serde_json::from_str(&self.ok(&["--json", "status"])).unwrap();
        reply["tasks"].as_array().unwrap().clone()
    }

    /// Waits until `ready` holds of the running tasks (as `status` reports them).
    fn wait_for(&self, what: &str, ready: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = self.status();
            if ready(&status) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: never; last status {status:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then the exit status and everything it wrote on stdout.
    fn terminate(&mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        unsafe_kill(child.id(), 15);
        let status = child.wait().unwrap();
        (status, self.stdout.take().unwrap().join().unwrap())
    }

    fn store(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.join("traces.sqlite")).unwrap()
    }

    fn said(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe_kill(child.id(), 15);
            let _ = child.wait();
        }
    }
}

fn unsafe_kill(pid: u32, signal: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// The run of `tracer` in a status task.
fn run<'a>(task: &'a Value, tracer: &str) -> &'a Value {
    task["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["tracer"] == tracer)
        .unwrap_or_else(|| panic!("no run of {tracer} in {task}"))
}

fn lines(task: &Value, tracer: &str) -> u64 {
    run(task, tracer)["lines"].as_u64().unwrap()
}

/// The stored records of `tracer` in `task`, in the order printed.
fn stored(store: &rusqlite::Connection, task: &str, tracer: &str) -> Vec<Value> {
    let mut query = store
        .prepare("SELECT record FROM samples WHERE task = ?1 AND tracer = ?2 ORDER BY seq")
        .unwrap();
    query
        .query_map([task, tracer], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|r| serde_json::from_str(&r.unwrap()).unwrap())
        .collect()
}

/// A shell command that runs `pipeline` with its output also copied to `file`, by a `tee`
/// that ignores SIGTERM and so copies to the end: the file is what the tracer printed.
fn teed(pipeline: &str, file: &Path) -> String {
    format!("{pipeline} | (trap '' TERM; exec tee {})", file.display())
}

fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

#[test]
fn the_agent_runs_tracers_and_stores_every_line_each_printed() {
    let printed = tempfile::tempdir().unwrap();
    let file = |name: &str| printed.path().join(name);
    let netdev = common::bin_path("netdev-trace");
    let proc_trace = common::bin_path("proc-trace");
    let registry = format!(
        "[tracers.count]\nargv = [\"sh\", \"-c\", \"seq 1 1000; exec sleep 600\"]\nparse = \"count\"\n\
         [tracers.loop]\nargv = [\"sh\", \"-c\", {}]\nparse = \"count\"\n\
         [tracers.lo]\nargv = [\"sh\", \"-c\", {}]\n\
         [tracers.proc]\nargv = [\"sh\", \"-c\", {}]\n",
        toml_string(&teed(
            "i=0; while :; do i=$((i+1)); echo $i; sleep 0.01; done",
            &file("loop")
        )),
        toml_string(&teed(
            &format!("{} --dev lo --interval 0.1", netdev.display()),
            &file("lo")
        )),
        toml_string(&teed(
            &format!("{} --pid {{pid}} --interval 0.1", proc_trace.display()),
            &file("proc")
        )),
    );
    let mut agent = Agent::start(&registry, &["--stdout"]);
    let mut sleeper = Command::new("sleep").arg("600").spawn().unwrap();
    let pid = format!("pid={}", sleeper.id());
    let task = agent.ok(&["start", "count", "loop", "lo", "proc", "--var", &pid]);
    let task = task.trim().to_owned();
    assert_eq!(task.len(), 36, "a task id: {task}");
    agent.wait_for("every tracer printing", |tasks| {
        tasks.len() == 1
            && lines(&tasks[0], "count") == 1000
            && lines(&tasks[0], "loop") >= 50
            && lines(&tasks[0], "lo") >= 16
            && lines(&tasks[0], "proc") >= 20
    });
    let stop: Value = serde_json::from_str(&agent.ok(&["--json", "stop", &task[..13]])).unwrap();
    let stopped = &stop["task"];
    assert_eq!(stopped["id"], task.as_str());
    assert!(stopped["stopped"].is_f64());
    for tracer in ["count", "loop", "lo", "proc"] {
        assert_eq!(run(stopped, tracer)["state"], "stopped", "{stopped}");
        assert_eq!(run(stopped, tracer)["raw"], 0, "{stopped}");
    }
    let store = agent.store();
    let count = stored(&store, &task, "count");
    let values: Vec<i64> = count.iter().map(|r| r["value"].as_i64().unwrap()).collect();
    assert_eq!(values, (1..=1000).collect::<Vec<_>>());
    assert_eq!(lines(stopped, "count"), 1000);
    // Every line the tracers printed up to the stop, drained after the signal.
    let loop_printed: Vec<i64> = std::fs::read_to_string(file("loop"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let loop_stored: Vec<i64> = stored(&store, &task, "loop")
        .iter()
        .map(|r| r["value"].as_i64().unwrap())
        .collect();
    assert_eq!(loop_stored, loop_printed);
    assert_eq!(lines(stopped, "loop"), loop_printed.len() as u64);
    for tracer in ["lo", "proc"] {
        let printed: Vec<Value> = std::fs::read_to_string(file(tracer))
            .unwrap()
            .lines()
            .map(|l| {
                let mut record: Value = serde_json::from_str(l).unwrap();
                // The agent tags each record with its registry name.
                record["tracer"] = tracer.into();
                record
            })
            .collect();
        assert!(printed.iter().all(|r| r["task"] == task.as_str()));
        assert_eq!(stored(&store, &task, tracer), printed, "{tracer}");
        assert_eq!(lines(stopped, tracer), printed.len() as u64);
    }
    let total: i64 = store
        .query_row("SELECT count(*) FROM samples", [], |r| r.get(0))
        .unwrap();
    // The task list names it, stopped.
    let tasks = agent.ok(&["tasks"]);
    assert!(tasks.starts_with(&task), "{tasks}");
    assert!(tasks.trim_end().ends_with("count,lo,loop,proc"), "{tasks}");
    // SIGTERM: the agent ends with 143, and every stored record went on to stdout.
    let (status, out) = agent.terminate();
    assert_eq!(status.code(), Some(143));
    assert_eq!(out.lines().count() as i64, total);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

#[test]
fn a_crashed_tracer_is_reported_and_the_others_go_on() {
    let registry = "[tracers.bad]\nargv = [\"sh\", \"-c\", \"echo 1; echo oops >&2; exit 3\"]\n\
                    [tracers.good]\nargv = [\"sh\", \"-c\", \"while :; do echo 1; sleep 0.02; done\"]\nparse = \"count\"\n";
    let agent = Agent::start(registry, &[]);
    let task = agent.ok(&["start", "bad", "good"]).trim().to_owned();
    agent.wait_for("the crash", |tasks| {
        run(&tasks[0], "bad")["state"] != "running" && lines(&tasks[0], "good") > 0
    });
    let status = agent.status();
    let bad = run(&status[0], "bad");
    assert_eq!(bad["state"], "crashed: exit status 3: oops");
    assert_eq!(bad["stderr"], "oops");
    assert_eq!(bad["lines"], 1);
    assert_eq!(
        bad["raw"], 1,
        "a line that is not a trace record is kept as one"
    );
    let seen = lines(&status[0], "good");
    agent.wait_for("the other tracer going on", |tasks| {
        lines(&tasks[0], "good") > seen + 10
    });
    let said = agent.said();
    assert!(said.contains("trace-agent: bad: oops\n"), "{said}");
    assert!(
        said.contains(&format!(
            "trace-agent: task {task}: tracer bad crashed: exit status 3: oops\n"
        )),
        "{said}"
    );
    let text = agent.ok(&["stop"]);
    let mut runs = text.lines().skip(1);
    let bad_line = runs.next().unwrap();
    assert!(bad_line.starts_with("  bad   pid "), "{text}");
    assert!(
        bad_line.ends_with("1 lines (1 not trace records)  crashed: exit status 3: oops"),
        "{text}"
    );
    assert!(runs.next().unwrap().ends_with("  stopped"), "{text}");
    let store = agent.store();
    let raw = stored(&store, &task, "bad");
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0]["series"], "stdout");
    assert_eq!(raw[0]["unit"], "line");
    assert_eq!(raw[0]["value"], "1");
}

#[test]
fn tasks_by_prefix_and_plain_refusals() {
    let registry = "[vars]\ninterval = \"1\"\n\
                    [tracers.a]\nargv = [\"sleep\", \"600\"]\n\
                    [tracers.b]\nargv = [\"sleep\", \"600\"]\n\
                    [tracers.needsvar]\nargv = [\"sleep\", \"{port}\"]\n";
    let agent = Agent::start(registry, &[]);
    let one = agent.ok(&["start", "a"]).trim().to_owned();
    let two = agent.ok(&["start", "b"]).trim().to_owned();
    let common: String = one
        .chars()
        .zip(two.chars())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x)
        .collect();
    let (first, second) = if one < two {
        (&one, &two)
    } else {
        (&two, &one)
    };
    assert_eq!(
        agent.refused(&["stop", &common]),
        format!("trace-agent: error: task {common:?} is ambiguous: it starts {first}, {second}\n")
    );
    assert_eq!(
        agent.refused(&["start", "a"]),
        format!("trace-agent: error: tracer \"a\" is already running in task {one}\n")
    );
    assert_eq!(
        agent.refused(&["start", "nope"]),
        "trace-agent: error: no tracer \"nope\" in the registry (it has: a, b, needsvar)\n"
    );
    assert_eq!(
        agent.refused(&["start", "needsvar"]),
        "trace-agent: error: tracer \"needsvar\": variable \"port\" has no value (give it with --var port=VALUE)\n"
    );
    let list = agent.ok(&["list"]);
    assert_eq!(list.lines().count(), 3);
    assert!(
        list.starts_with(&format!("a         {one}  sleep 600\n")),
        "{list}"
    );
    let unique = &one[..common.len() + 1];
    let stopped = agent.ok(&["stop", unique]);
    assert!(
        stopped.starts_with(&format!("task {one} started ")),
        "{stopped}"
    );
    assert_eq!(
        agent.refused(&["stop", &one]),
        format!("trace-agent: error: task {one} has already stopped\n")
    );
    let stopped = agent.ok(&["stop", "--last"]);
    assert!(
        stopped.starts_with(&format!("task {two} started ")),
        "{stopped}"
    );
    assert_eq!(
        agent.refused(&["stop"]),
        "trace-agent: error: no task is running\n"
    );

    // Only its owner can reach it.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&agent.dir.join("agent.sock")), 0o600);
    // A second agent on the same directory is refused with status 75.
    let second = agent.client(&["serve"]);
    assert_eq!(second.status.code(), Some(75), "{second:?}");
    // A request that is not one, and one too long, get a plain answer.
    let ask = |bytes: &[u8]| {
        let mut socket =
            std::os::unix::net::UnixStream::connect(agent.dir.join("agent.sock")).unwrap();
        socket.write_all(bytes).unwrap();
        let mut reply = String::new();
        socket.read_to_string(&mut reply).unwrap();
        reply
    };
    assert_eq!(
        ask(b"hello\n"),
        "{\"ok\":false,\"error\":\"not a request: expected value at line 1 column 1\"}\n"
    );
    assert_eq!(
        ask(&vec![b'x'; 70_000]),
        "{\"ok\":false,\"error\":\"a request the agent could not read: a message longer than 65536 bytes\"}\n"
    );

    // A directory without an agent.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(common::bin_path("trace-agent"))
        .arg("--dir")
        .arg(empty.path())
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "trace-agent: error: {}/agent.sock: no trace agent is listening here (start one with `trace-agent serve`)\n",
            empty.path().display()
        )
    );
    // The agent makes its directory private when it creates it.
    let fresh = empty.path().join("new");
    let mut own = Command::new(common::bin_path("trace-agent"))
        .arg("--dir")
        .arg(&fresh)
        .arg("serve")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    BufReader::new(own.stderr.take().unwrap())
        .read_line(&mut said)
        .unwrap();
    assert_eq!(
        said,
        format!("trace-agent: listening on {}/agent.sock\n", fresh.display())
    );
    assert_eq!(mode(&fresh), 0o700);
    unsafe_kill(own.id(), 15);
    assert_eq!(own.wait().unwrap().code(), Some(143));
}

#[test]
fn tracers_left_by_a_killed_agent_are_stopped_by_the_next_one() {
    let registry = "[tracers.sleeper]\nargv = [\"sh\", \"-c\", \"echo 1; exec sleep 600\"]\nparse = \"count\"\n";
    let agent = Agent::start(registry, &[]);
    let task = agent.ok(&["start", "sleeper"]);
    agent.wait_for("the tracer runs", |tasks| {
        tasks.len() == 1 && lines(&tasks[0], "sleeper") == 1
    });
    let pid: i64 = agent
        .store()
        .query_row(
            "SELECT pid FROM runs WHERE task = ?1",
            [task.trim()],
            |row| row.get(0),
        )
        .unwrap();
    let running = |pid: i64| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.rsplit(") ").next().unwrap_or("").starts_with('Z'))
    };
    let agent = agent.kill_and_restart();
    // The new agent stops the orphan before it listens.
    assert!(!running(pid), "tracer {pid} still runs");
    let said = agent.said();
    assert!(
        said.contains(
            "trace-agent: 1 tracer runs were left running by an agent that ended without stopping them; recorded as lost\n\
             trace-agent: stopped 1 of their tracers, still running without an agent\n"
        ),
        "{said}"
    );
}

#[test]
fn trace_report_gives_exact_statistics_and_a_page_chromium_renders() {
    let registry = "[tracers.count]\nargv = [\"sh\", \"-c\", \"seq 1 100; exec sleep 600\"]\nparse = \"count\"\n\
                    [tracers.number]\nargv = [\"sh\", \"-c\", \"echo 1.5; echo 2.5; echo 4; exec sleep 600\"]\nparse = \"number\"\nseries = \"latency\"\nunit = \"ms\"\n\
                    [tracers.words]\nargv = [\"sh\", \"-c\", \"echo a; echo b; exec sleep 600\"]\n";
    let agent = Agent::start(registry, &[]);
    let task = agent
        .ok(&["start", "count", "number", "words"])
        .trim()
        .to_owned();
    agent.wait_for("every line", |tasks| {
        lines(&tasks[0], "count") == 100
            && lines(&tasks[0], "number") == 3
            && lines(&tasks[0], "words") == 2
    });
    agent.ok(&["stop"]);
    let report = |args: &[&str]| {
        let out = Command::new(common::bin_path("trace-report"))
            .arg("--dir")
            .arg(&agent.dir)
            .args(args)
            .output()
            .unwrap();
        common::assert_success(&out);
        String::from_utf8(out.stdout).unwrap()
    };
    let text = report(&[&task[..20]]);
    let (head, table) = text.split_once('\n').unwrap();
    assert!(head.starts_with(&format!("task {task} from ")), "{head}");
    assert_eq!(
        table,
        "tracer  series   unit   instance  count  min   mean  max  p50  p95  p99\n\
         count   count    count              100    1   50.5  100   50   95   99\n\
         number  latency  ms                   3  1.5  2.667    4  2.5    4    4\n\
         words   stdout   line                 2    -      -    -    -    -    -\n"
    );
    assert_eq!(
        report(&["--last", "--format", "csv", "--tracer", "number"]),
        format!(
            "task,tracer,series,unit,instance,count,min,mean,max,p50,p95,p99\n\
             {task},number,latency,ms,,3,1.5,2.6666666666666665,4,2.5,4,4\n"
        )
    );
    let json = report(&["--format", "json", "--tracer", "count"]);
    let summary: Value = serde_json::from_str(json.trim()).unwrap();
    for (key, want) in [
        ("count", 100.0),
        ("min", 1.0),
        ("mean", 50.5),
        ("max", 100.0),
        ("p50", 50.0),
        ("p95", 95.0),
        ("p99", 99.0),
    ] {
        assert_eq!(summary[key].as_f64(), Some(want), "{key}: {json}");
    }

    // The page: self-contained, and drawn by a real browser.
    let page = agent.dir.join("report.html");
    report(&["--html", page.to_str().unwrap()]);
    let html = std::fs::read_to_string(&page).unwrap();
    for outside in [
        "http:", "https:", "//", " src=", " href=", "url(", "@import",
    ] {
        assert!(
            !html.contains(outside),
            "the page refers outside itself ({outside})"
        );
    }
    assert_eq!(
        html.matches("<polyline").count(),
        2,
        "two numeric series, two charts"
    );
    if !common::have("chromium", "renders the HTML report") {
        return;
    }
    let artifacts = common::repo_root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let chromium = |args: &[&str], page: &Path| {
        common::chromium(&format!("file://{}", page.display()), profile.path(), args)
    };
    let dom = chromium(&["--dump-dom"], &page);
    assert!(
        dom.contains("<title>rendered 2 charts, 0 resources loaded</title>"),
        "the charts did not render: {dom}"
    );
    assert_eq!(
        common::page_requests(profile.path()),
        Vec::<String>::new(),
        "requests left the page"
    );
    // The check sees a page that does load something (Chromium's own background requests,
    // which have no origin, are not the page's).
    let leaky = profile.path().join("leaky.html");
    std::fs::write(
        &leaky,
        "<html><body><img src=\"http://127.0.0.1:9/x.png\"></body></html>",
    )
    .unwrap();
    chromium(&["--dump-dom"], &leaky);
    assert_eq!(
        common::page_requests(profile.path()),
        vec!["http://127.0.0.1:9/x.png".to_owned()]
    );
    let shot = artifacts.join("trace-report.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&[&format!("--screenshot={}", shot.display())], &page);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot {}",
        shot.display()
    );
}
