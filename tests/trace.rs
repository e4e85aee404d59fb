//! The tracers on real processes, devices and workers: proc-trace on children that exit
//! and restart, netdev-trace on loopback traffic, line-stamp around real `perf stat -j`
//! and `pidstat -h` and around a worker it must signal and drain.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use serde_json::Value;

/// A tracer running in the background, its records arriving on a channel.
struct Tracer {
    child: Child,
    records: Receiver<Value>,
}

impl Tracer {
    fn start(command: &mut Command) -> Tracer {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, records) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                let record: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a record ({e}): {line}"));
                if send.send(record).is_err() {
                    return;
                }
            }
        });
        Tracer { child, records }
    }

    /// The records up to and including the next `matched` record (one proc-trace tick).
    fn tick(&self) -> Vec<Value> {
        let mut tick = Vec::new();
        loop {
            let record = self.next();
            let last = record["series"] == "matched";
            tick.push(record);
            if last {
                return tick;
            }
        }
    }

    fn next(&self) -> Value {
        match self.records.recv_timeout(Duration::from_secs(20)) {
            Ok(record) => record,
            Err(RecvTimeoutError::Timeout) => panic!("no record within 20 s"),
            Err(RecvTimeoutError::Disconnected) => panic!("the tracer ended"),
        }
    }

    /// Every record until the tracer ends, and its stderr.
    fn finish(mut self) -> (Vec<Value>, std::process::ExitStatus, String) {
        let rest: Vec<Value> = self.records.iter().collect();
        let status = self.child.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        (rest, status, stderr)
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child that is killed when the test ends.
struct Kid(Child);

impl Kid {
    /// Starts `program` in its own process group, so that dropping it ends whatever it
    /// started too (a `sh -c 'sleep …; …'` leaves its sleep behind otherwise, holding the
    /// test's output open).
    fn spawn(program: &str, args: &[&str]) -> Kid {
        use std::os::unix::process::CommandExt;
        Kid(Command::new(program)
            .args(args)
            .process_group(0)
            .spawn()
            .unwrap())
    }
    fn pid(&self) -> i64 {
        i64::from(self.0.id())
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        // The process group, when this Kid leads one (see `spawn`), then the Kid itself.
        // SAFETY: kill only sends a signal; no memory is involved.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The series of `records` about process `pid`, in order.
fn series_of(records: &[Value], pid: i64) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["pid"] == pid)
        .map(|r| r["series"].as_str().unwrap().to_owned())
        .collect()
}

const FIRST: [&str; 4] = ["rss", "vms", "threads", "fds"];
const LATER: [&str; 14] = [
    "rss",
    "vms",
    "threads",
    "fds",
    "cpu_user",
    "cpu_system",
    "read_bytes",
    "write_bytes",
    "read_calls",
    "write_calls",
    "ctx_voluntary",
    "ctx_involuntary",
    "faults_minor",
    "faults_major",
];

/// proc-trace follows a busy process, one that exits and a daemon that is restarted under
/// its PID file: sizes on a process's first tick, every series after, a CPU share for the
/// busy one, nothing more (and no error) for the one that exited, a new start time for the
/// restarted daemon with no rate across the restart, and a `matched` count every tick.
#[test]
fn proc_trace_follows_processes_that_exit_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let busy = Kid::spawn("sh", &["-c", "while :; do :; done"]);
    let exiting = Kid::spawn("sleep", &["1000"]);
    let pidfile = dir.path().join("daemon.pid");
    let daemon = Kid::spawn("sleep", &["1000"]);
    std::fs::write(&pidfile, format!("{}\n", daemon.pid())).unwrap();
    let tracer = Tracer::start(
        Command::new(common::bin_path("proc-trace"))
            .args(["--pid", &busy.pid().to_string()])
            .args(["--pid", &exiting.pid().to_string()])
            .arg("--pidfile")
            .arg(&pidfile)
            .args(["--task", "t1", "-i", "0.3"]),
    );
    let first = tracer.tick();
    for kid in [&busy, &exiting, &daemon] {
        assert_eq!(series_of(&first, kid.pid()), FIRST);
    }
    assert_eq!(first.last().unwrap()["value"], 3);
    assert_eq!(first[0]["task"], "t1");
    assert_eq!(first[0]["tracer"], "proc");
    let second = tracer.tick();
    for kid in [&busy, &exiting, &daemon] {
        assert_eq!(series_of(&second, kid.pid()), LATER);
    }
    let cpu = second
        .iter()
        .find(|r| r["pid"] == busy.pid() && r["series"] == "cpu_user")
        .unwrap();
    assert!(cpu["value"].as_f64().unwrap() > 10.0, "{cpu}");
    assert_eq!(cpu["comm"], "sh");
    assert_eq!(cpu["unit"], "%");

    // One process exits; the daemon is restarted under a new PID.
    let (exited, old_daemon) = (exiting.pid(), daemon.pid());
    let old_start = second.iter().find(|r| r["pid"] == old_daemon).unwrap()["start"].clone();
    drop(exiting);
    drop(daemon);
    let daemon = Kid::spawn("sleep", &["1001"]);
    std::fs::write(&pidfile, format!("{}\n", daemon.pid())).unwrap();
    // Ticks taken before the change may be queued: the first with the new daemon is the
    // first after it.
    let mut tick = tracer.tick();
    while !tick.iter().any(|r| r["pid"] == daemon.pid()) {
        tick = tracer.tick();
    }
    assert!(!tick
        .iter()
        .any(|r| r["pid"] == exited || r["pid"] == old_daemon));
    assert_eq!(series_of(&tick, busy.pid()), LATER);
    assert_eq!(series_of(&tick, daemon.pid()), FIRST);
    assert_eq!(tick.last().unwrap()["value"], 2);
    let new_start = &tick.iter().find(|r| r["pid"] == daemon.pid()).unwrap()["start"];
    assert!(new_start.as_f64() >= old_start.as_f64());
    let tick = tracer.tick();
    assert_eq!(series_of(&tick, daemon.pid()), LATER);

    // Nothing selected is a sample too.
    drop(busy);
    drop(daemon);
    let mut tick = tracer.tick();
    while tick.len() > 1 {
        tick = tracer.tick();
    }
    assert_eq!(tick[0]["series"], "matched");
    assert_eq!(tick[0]["value"], 0);
    let mut tracer = tracer;
    tracer.child.kill().unwrap();
    let (_, _, stderr) = tracer.finish();
    assert_eq!(stderr, "");
}

/// The state letter of process `pid` (`S` while it sleeps), from its `stat`.
fn state_of(pid: i64) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(") ").unwrap().1;
    after.chars().next().unwrap()
}

/// Polls `ready` every 10 ms for up to 10 s.
fn until(what: &str, mut ready: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("not {what} within 10 s");
}

/// `fds` is the process's open files, exactly; its context switches follow a process that
/// sleeps, is woken and sleeps again: none while it sleeps (when its `status` is not read
/// again), some in the interval it was woken, none again after.
#[test]
fn proc_trace_counts_files_and_the_wakeups_of_a_sleeping_process() {
    let mut child = Command::new("sh")
        .args([
            "-c",
            "exec 3</dev/null 4</dev/null 5</dev/null; while read x; do :; done",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let kid = Kid(child);
    let pid = kid.pid();
    let files = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    // Asleep in `read` once its files are open (beside those it inherited).
    until("asleep with its files open", || {
        std::fs::read_link(format!("/proc/{pid}/fd/5")).is_ok() && state_of(pid) == 'S'
    });
    let open = files() as f64;
    let tracer = Tracer::start(Command::new(common::bin_path("proc-trace")).args([
        "--pid",
        &pid.to_string(),
        "-i",
        "0.3",
    ]));
    let value = |tick: &[Value], series: &str| -> f64 {
        let record = tick.iter().find(|r| r["series"] == series).unwrap();
        record["value"].as_f64().unwrap()
    };
    let first = tracer.tick();
    assert_eq!(value(&first, "fds"), open);
    let asleep = tracer.tick();
    assert_eq!(value(&asleep, "ctx_voluntary"), 0.0);
    assert_eq!(value(&asleep, "ctx_involuntary"), 0.0);
    // Woken once: it reads the line, then sleeps in the next read.
    input.write_all(b"wake up\n").unwrap();
    input.flush().unwrap();
    let mut woken = 0;
    while value(&tracer.tick(), "ctx_voluntary") == 0.0 {
        woken += 1;
        assert!(
            woken < 3,
            "no voluntary switch seen 3 ticks after the wake-up"
        );
    }
    // Then quiet again (the wake-up may span two ticks).
    let mut quiet = 0;
    while value(&tracer.tick(), "ctx_voluntary") != 0.0 {
        quiet += 1;
        assert!(quiet < 2, "voluntary switches go on after the wake-up");
    }
    assert_eq!(value(&tracer.tick(), "fds"), open);
}

/// --match selects by command line and never selects proc-trace itself; --user keeps the
/// processes of that user; a PID file that does not exist is warned about once.
#[test]
fn proc_trace_selects_by_command_line_and_user() {
    let marker = format!("measpipe-proc-trace-{}", std::process::id());
    // (A command after the sleep keeps sh from exec'ing it: sh is the process matched.)
    let kid = Kid::spawn("sh", &["-c", &format!("sleep 1000; : {marker}")]);
    // Until its sleep has been exec'd, sh's forked child carries the marker too (CI saw
    // 2 matched once): wait for the child to be sleep.
    let started = std::time::Instant::now();
    while !sleeping_child(kid.pid()) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "sh never started its sleep"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let me = users_uid();
    let out = common::bin("proc-trace")
        .args([
            "--match",
            &marker,
            "--user",
            &me.to_string(),
            "-c",
            "2",
            "-i",
            "0.2",
        ])
        .output()
        .unwrap();
    let records = common::ndjson_lines(&out.stdout);
    let matched: Vec<&Value> = records
        .iter()
        .filter(|r| r["series"] == "matched")
        .collect();
    assert_eq!(matched.len(), 2);
    // On failure, which processes were selected (pid, comm).
    let selected: std::collections::BTreeSet<String> = records
        .iter()
        .filter(|r| r["series"] != "matched")
        .map(|r| format!("{} {}", r["pid"], r["comm"]))
        .collect();
    assert!(
        matched.iter().all(|r| r["value"] == 1),
        "{matched:?}; selected {selected:?}; the kid is {}",
        kid.pid()
    );
    assert!(records
        .iter()
        .filter(|r| r["series"] != "matched")
        .all(|r| r["pid"] == kid.pid()));
    assert_eq!(out.stderr, b"");
    // A PID file names the candidates: one that does not exist selects nothing, said once.
    let out = common::bin("proc-trace")
        .args([
            "--match",
            &marker,
            "--pidfile",
            "/nonexistent/x.pid",
            "-c",
            "3",
            "-i",
            "0.1",
        ])
        .output()
        .unwrap();
    let counts: Vec<Value> = common::ndjson_lines(&out.stdout)
        .into_iter()
        .map(|r| r["value"].clone())
        .collect();
    assert_eq!(counts, [0, 0, 0]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "proc-trace: warning: /nonexistent/x.pid: No such file or directory (os error 2); it selects no process\n"
    );
    let other = common::bin("proc-trace")
        .args([
            "--match",
            &marker,
            "--user",
            &(me + 1).to_string(),
            "-c",
            "1",
        ])
        .output()
        .unwrap();
    let records = common::ndjson_lines(&other.stdout);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["value"], 0);
}

/// Whether process `parent` has a child that runs `sleep` (its command name).
fn sleeping_child(parent: i64) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i64>().ok())
        .any(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // pid (comm) state ppid …
            let Some((comm, rest)) = stat.split_once(") ") else {
                return false;
            };
            comm.ends_with("(sleep")
                && rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) == Some(parent)
        })
}

fn users_uid() -> u32 {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// netdev-trace on the loopback sees 8 MB sent through it between two samples.
#[test]
fn netdev_trace_sees_loopback_traffic() {
    let tracer = Tracer::start(
        Command::new(common::bin_path("netdev-trace"))
            .args(["--dev", "lo", "-i", "0.5", "-c", "2"]),
    );
    let first: Vec<Value> = (0..8).map(|_| tracer.next()).collect();
    let series: Vec<&str> = first
        .iter()
        .map(|r| r["series"].as_str().unwrap())
        .collect();
    assert_eq!(
        series,
        [
            "rx_bytes",
            "tx_bytes",
            "rx_packets",
            "tx_packets",
            "rx_errors",
            "tx_errors",
            "rx_drops",
            "tx_drops"
        ]
    );
    assert!(first
        .iter()
        .all(|r| r["dev"] == "lo" && r["tracer"] == "netdev"));
    // 8 MB through a loopback connection, now, before the next sample.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        std::io::copy(&mut socket, &mut std::io::sink()).unwrap()
    });
    let mut socket = std::net::TcpStream::connect(address).unwrap();
    socket.write_all(&vec![7u8; 8_000_000]).unwrap();
    drop(socket);
    assert_eq!(reader.join().unwrap(), 8_000_000);
    let second: Vec<Value> = (0..8).map(|_| tracer.next()).collect();
    let seconds = second[0]["ts"].as_f64().unwrap() - first[0]["ts"].as_f64().unwrap();
    let received = second[0]["value"].as_f64().unwrap() * seconds;
    assert!(received > 7_000_000.0, "{received} bytes in {seconds} s");
    let (rest, status, stderr) = tracer.finish();
    assert!(rest.is_empty(), "{rest:?}");
    assert!(status.success());
    assert_eq!(stderr, "");
}

/// A device that does not exist is warned about once and gives no records.
#[test]
fn netdev_trace_warns_once_of_a_missing_device() {
    let out = common::bin("netdev-trace")
        .args(["--dev", "nosuch0", "-i", "0.1", "-c", "3"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "netdev-trace: warning: nosuch0: no such network device (yet); it is traced when it appears\n"
    );
}

/// line-stamp around the real `perf stat -j`: a record per counted event and interval.
#[test]
fn line_stamp_wraps_perf_stat() {
    if !common::have("perf", "linux-perf: perf stat is a worker line-stamp wraps") {
        return;
    }
    let out = common::bin("line-stamp")
        .args([
            "--tracer",
            "perf",
            "--parse",
            "perf-stat",
            "--task",
            "t2",
            "--",
        ])
        .args(["perf", "stat", "-j", "-I", "200", "--log-fd", "1"])
        .args(["-e", "task-clock,context-switches", "--"])
        .args(["timeout", "1.1", "sh", "-c", "while :; do :; done"])
        .output()
        .unwrap();
    common::assert_success(&out);
    let records = common::ndjson_lines(&out.stdout);
    let clock: Vec<&Value> = records
        .iter()
        .filter(|r| r["series"] == "task-clock")
        .collect();
    let switches: Vec<&Value> = records
        .iter()
        .filter(|r| r["series"] == "context-switches")
        .collect();
    assert!(clock.len() >= 4, "{records:?}");
    assert_eq!(records.len(), clock.len() + switches.len(), "{records:?}");
    assert!(clock
        .iter()
        .all(|r| r["unit"] == "msec" && r["value"].is_f64() && r["interval"].is_f64()));
    assert!(switches
        .iter()
        .all(|r| r["unit"] == "count" && r["task"] == "t2"));
}

/// line-stamp around the real `pidstat -h`: a record per numeric column of the process's
/// rows.
#[test]
fn line_stamp_wraps_pidstat() {
    if !common::have("pidstat", "sysstat: pidstat is a worker line-stamp wraps") {
        return;
    }
    let kid = Kid::spawn("sleep", &["1000"]);
    let out = common::bin("line-stamp")
        .args(["--tracer", "pidstat", "--parse", "pidstat", "--"])
        .args([
            "pidstat",
            "-h",
            "-u",
            "-r",
            "-p",
            &kid.pid().to_string(),
            "1",
            "2",
        ])
        .output()
        .unwrap();
    common::assert_success(&out);
    let records = common::ndjson_lines(&out.stdout);
    let series: std::collections::BTreeSet<&str> = records
        .iter()
        .map(|r| r["series"].as_str().unwrap())
        .collect();
    assert!(records
        .iter()
        .all(|r| r["pid"] == kid.pid() && r["command"] == "sleep"));
    let rss = records.iter().find(|r| r["series"] == "RSS").unwrap();
    assert_eq!(rss["unit"], "kB");
    assert_eq!(records.iter().filter(|r| r["series"] == "RSS").count(), 2);
    // Every numeric column but the CPU number, in both rows.
    assert_eq!(
        series.into_iter().collect::<Vec<_>>(),
        [
            "%CPU", "%MEM", "%guest", "%system", "%usr", "%wait", "RSS", "VSZ", "majflt/s",
            "minflt/s"
        ]
    );
    assert_eq!(records.len(), 2 * 10);
}

/// line-stamp reads its standard input: each parse, blank lines ignored, and a bad line
/// named with its line number, counted and skipped.
#[test]
fn line_stamp_parses_standard_input() {
    let run = |parse: &str, input: &str| {
        let out = common::bin("line-stamp")
            .args(["--tracer", "x", "--parse", parse, "--task", "t"])
            .write_stdin(input)
            .output()
            .unwrap();
        let values: Vec<Value> = common::ndjson_lines(&out.stdout)
            .into_iter()
            .map(|r| {
                assert_eq!(
                    (r["kind"].as_str(), r["task"].as_str(), r["series"].as_str()),
                    (Some("trace"), Some("t"), Some("x"))
                );
                r["value"].clone()
            })
            .collect();
        (
            values,
            out.status.code(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    assert_eq!(
        run("count", "1\n\n22\nx\n3"),
        (
            vec![Value::from(1), Value::from(22), Value::from(3)],
            Some(0),
            "line-stamp: warning: <stdin>:4: not an integer: \"x\" (skipped)\nline-stamp: warning: skipped 1 bad line (first: <stdin>:4: not an integer: \"x\")\n".to_owned()
        )
    );
    assert_eq!(
        run("number", "1.5\n-2e3\n"),
        (
            vec![Value::from(1.5), Value::from(-2000.0)],
            Some(0),
            String::new()
        )
    );
    assert_eq!(
        run("json", "{\"type\":\"map\",\"data\":{\"@\":3}}\n[1]\n"),
        (
            vec![
                serde_json::json!({"type":"map","data":{"@":3}}),
                serde_json::json!([1])
            ],
            Some(0),
            String::new()
        )
    );
    assert_eq!(
        run("raw", "a b\n\n"),
        (
            vec![Value::from("a b"), Value::from("")],
            Some(0),
            String::new()
        )
    );
    let failed = common::bin("line-stamp")
        .args(["--tracer", "x", "--on-error", "fail"])
        .write_stdin("1\nnope\n2\n")
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    assert_eq!(common::ndjson_lines(&failed.stdout).len(), 1);
    assert_eq!(
        String::from_utf8_lossy(&failed.stderr),
        "line-stamp: error: <stdin>:2: not an integer: \"nope\"\n"
    );
}

/// SIGTERM to line-stamp goes to its worker, whose last words (printed after the signal)
/// are still stamped; line-stamp then exits 143. Records stream while the worker runs.
#[test]
fn line_stamp_passes_a_signal_on_and_drains_the_worker() {
    let tracer = Tracer::start(
        Command::new(common::bin_path("line-stamp"))
            .args(["--tracer", "w", "--"])
            .args([
                "sh",
                "-c",
                "trap 'echo 9; exit 0' TERM; echo 1; while :; do sleep 0.05; done",
            ]),
    );
    assert_eq!(tracer.next()["value"], 1);
    let pid = tracer.child.id() as i32;
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let (rest, status, stderr) = tracer.finish();
    assert_eq!(
        rest.iter().map(|r| r["value"].clone()).collect::<Vec<_>>(),
        [Value::from(9)]
    );
    assert_eq!(status.code(), Some(143), "{stderr}");
    // (sh may say its sleep was Terminated: the worker's stderr is line-stamp's.)
    assert!(!stderr.contains("line-stamp"), "{stderr}");
}

/// A worker that fails is an error naming it and its status, after its lines.
#[test]
fn line_stamp_reports_a_failed_worker() {
    let out = common::bin("line-stamp")
        .args(["--tracer", "w", "--", "sh", "-c", "echo 5; exit 3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(common::ndjson_lines(&out.stdout)[0]["value"], 5);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "line-stamp: error: sh exited with status 3\n"
    );
    let missing = common::bin("line-stamp")
        .args(["--tracer", "w", "--", "/nonexistent/worker"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "line-stamp: error: /nonexistent/worker: cannot start: No such file or directory (os error 2)\n"
    );
}

/// The rules of `nft list table inet NAME`, or `None` if there is no such table.
fn nft_table(name: &str) -> Option<String> {
    let out = Command::new("nft")
        .args(["list", "table", "inet", name])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap())
}

/// port-trace adds its counting table, sees 4 MB sent to the port over loopback between
/// two samples, and removes the table on SIGTERM (exit 143). A table left by a port-trace
/// that died is removed by the next one.
#[test]
fn port_trace_counts_loopback_traffic_and_removes_its_table() {
    if !common::have("nft", "nftables: port-trace counts with it") {
        return;
    }
    // The privilege is the machine's, not an installable component: without it, say so.
    let probe = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    if !probe.status.success() {
        common::skipped(&format!(
            "nft cannot run here (no root or CAP_NET_ADMIN): {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        ));
        return;
    }
    // A table as a port-trace killed with SIGKILL leaves it.
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let stale = format!("measpipe_port_{}", gone.id());
    assert!(Command::new("nft")
        .args(["add", "table", "inet", &stale])
        .status()
        .unwrap()
        .success());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tracer = Tracer::start(Command::new(common::bin_path("port-trace")).args([
        "--port",
        &port.to_string(),
        "-i",
        "0.5",
    ]));
    let first = [tracer.next(), tracer.next()];
    assert_eq!(
        first.each_ref().map(|r| r["series"].as_str().unwrap()),
        ["rx_packets", "rx_bytes"]
    );
    assert!(first
        .iter()
        .all(|r| r["port"] == port && r["tracer"] == "port"));
    let table = format!("measpipe_port_{}", tracer.child.id());
    let rules = nft_table(&table).expect("port-trace's table while it runs");
    assert!(
        rules.contains(&format!("tcp dport {port} counter name \"port_{port}\"")),
        "{rules}"
    );
    assert_eq!(nft_table(&stale), None, "the stale table is removed");
    let reader = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        std::io::copy(&mut socket, &mut std::io::sink()).unwrap()
    });
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket.write_all(&vec![1u8; 4_000_000]).unwrap();
    drop(socket);
    assert_eq!(reader.join().unwrap(), 4_000_000);
    // The transfer may straddle a tick: add up the intervals until it is all counted
    // (payload plus headers), which every packet is by the time the reader has it all.
    // Rates times the spacing of the records' timestamps differ from the counter's bytes
    // by the jitter between port-trace's own interval and those stamps: allow 1 %.
    let (mut bytes, mut packets, mut last_ts) = (0.0, 0.0, first[0]["ts"].as_f64().unwrap());
    let mut ticks = Vec::new();
    while bytes <= 3_960_000.0 {
        let tick = [tracer.next(), tracer.next()];
        let ts = tick[0]["ts"].as_f64().unwrap();
        packets += tick[0]["value"].as_f64().unwrap() * (ts - last_ts);
        bytes += tick[1]["value"].as_f64().unwrap() * (ts - last_ts);
        last_ts = ts;
        ticks.push(tick);
        assert!(
            ticks.len() < 4,
            "{bytes} bytes counted in 3 ticks: {ticks:?}"
        );
    }
    assert!(
        bytes < 4_400_000.0 && packets >= 1.0,
        "{bytes} bytes, {packets} packets: {ticks:?}"
    );
    let pid = tracer.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let (_, status, stderr) = tracer.finish();
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert_eq!(stderr, "");
    assert_eq!(nft_table(&table), None, "the table is removed at the end");
}

/// Without the privilege to add the counter, a clear one-line error and status 1.
#[test]
fn port_trace_without_privilege_says_so() {
    if !common::have("nft", "nftables: port-trace counts with it")
        || !common::have("setpriv", "util-linux: to run port-trace as nobody")
    {
        return;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(common::bin_path("port-trace"))
        .args(["--port", "1", "-c", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("port-trace: error: cannot add the nftables counters (port-trace needs root or CAP_NET_ADMIN): nft -f -: ")
            && stderr.ends_with("Operation not permitted\n")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
}
