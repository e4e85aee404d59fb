//! Test harness shared by the integration tests: run the real binaries, and start and stop
//! background servers on free loopback ports.
//!
//! Each integration test binary includes this module and uses part of it.
#![allow(dead_code)]

pub mod pg;
pub mod serve;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The path of one of the package's binaries, built by cargo next to the test executable.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// An `assert_cmd` command for one of the package's binaries.
pub fn bin(name: &str) -> assert_cmd::Command {
    assert_cmd::Command::new(bin_path(name))
}

/// The repository root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A file under `tests/fixtures/`.
pub fn fixture(relative: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(relative)
}

/// Whether `program` can be run; if not, prints why the calling test skips, and records
/// the skip (see [`skipped`]).
///
/// Every program this is asked about is one `.ci/run` installs, so under
/// `MEASPIPE_REQUIRE_LIVE=1` (which `.ci/run` sets) a missing one fails the test instead.
pub fn have(program: &str, why: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var("MEASPIPE_REQUIRE_LIVE").as_deref() != Ok("1"),
            "{program} not found ({why}): MEASPIPE_REQUIRE_LIVE=1 requires it; .ci/run installs it"
        );
        skipped(&format!("{program} not found ({why})"));
    }
    found
}

/// Records that the calling test skipped: prints it, and appends `test: reason` to the
/// file `$MEASPIPE_SKIP_LOG` names, so `.ci/run` can list every skip in one line at the end
/// (cargo hides a passing test's output).
pub fn skipped(reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_owned();
    eprintln!("SKIP: {test}: {reason}");
    if let Ok(log) = std::env::var("MEASPIPE_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(file, "{test}: {reason}");
        }
    }
}

/// Fails the test with the command's stderr unless it exited 0.
pub fn assert_success(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The lines of NDJSON output, parsed.
pub fn ndjson_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an NDJSON line"))
        .collect()
}

/// Runs a tool that must succeed and returns its NDJSON output.
pub fn ndjson_of(command: &mut assert_cmd::Command) -> Vec<serde_json::Value> {
    let out = command.output().expect("run the tool");
    assert_success(&out);
    ndjson_lines(&out.stdout)
}

/// The Python 2.7 oracle interpreter (`$MEASPIPE_PYTHON27`, else pyenv's 2.7.18) if it
/// can import `module`; otherwise prints why the calling test skips.
pub fn python27_with(module: &str, package: &str) -> Option<String> {
    let python = std::env::var("MEASPIPE_PYTHON27").unwrap_or_else(|_| {
        format!(
            "{}/.pyenv/versions/2.7.18/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let imports = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !imports {
        // The one skip MEASPIPE_REQUIRE_LIVE allows: pyenv's 2.7 is not a Debian package.
        skipped(&format!(
            "Python 2.7 with {package} not found at {python} (set MEASPIPE_PYTHON27)"
        ));
        return None;
    }
    Some(python)
}

/// Debian's Python 3, which imports Debian's python3-* packages (pyenv's does not).
pub const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// Debian's python3 (not pyenv's) if it imports `module`; otherwise the test skips, or
/// fails under MEASPIPE_REQUIRE_LIVE=1 (`.ci/run` installs the package).
pub fn debian_python_with(module: &str, package: &str) -> Option<&'static str> {
    const PYTHON: &str = DEBIAN_PYTHON;
    let imports = Command::new(PYTHON)
        .args(["-c", &format!("import {module}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !imports {
        assert!(
            std::env::var("MEASPIPE_REQUIRE_LIVE").as_deref() != Ok("1"),
            "{PYTHON} cannot import {module}: MEASPIPE_REQUIRE_LIVE=1 requires Debian's {package}; .ci/run installs it"
        );
        skipped(&format!(
            "{PYTHON} cannot import {module} (Debian's {package})"
        ));
        return None;
    }
    Some(PYTHON)
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A server process in the background, killed when dropped.
pub struct BackgroundServer {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl BackgroundServer {
    /// Starts `command` (which must listen on `port` on 127.0.0.1) and waits until a TCP
    /// connection succeeds, or panics after `timeout` with the server's exit status.
    pub fn start(mut command: Command, port: u16, timeout: Duration) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let mut server = BackgroundServer { child, addr };
        let deadline = Instant::now() + timeout;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("{command:?} exited before listening: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "{command:?} not ready on {addr} after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server with SIGTERM and waits for it; returns its exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("wait for server")
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs headless Chromium (Debian's, as root: no sandbox; no background networking) on
/// `target` (a URL) with the profile directory `profile`, its net log in
/// `profile/net.json` (see [`page_requests`]), a 1100×900 window and `extra` arguments
/// (`--dump-dom`, `--screenshot=FILE`, `--virtual-time-budget=MS`); returns what it printed.
pub fn chromium(target: &str, profile: &Path, extra: &[&str]) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1100,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!(
            "--log-net-log={}",
            profile.join("net.json").display()
        ))
        .args(extra)
        .arg(target)
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium: {out:?}");
    String::from_utf8(out.stdout).expect("chromium prints UTF-8")
}

/// The URLs a page asked for during the last [`chromium`] run with `profile`, from its net
/// log: requests with an initiator (the browser's own, such as update checks, have none).
pub fn page_requests(profile: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(profile.join("net.json")).expect("chromium's net log");
    let log: serde_json::Value = serde_json::from_str(&text).expect("a JSON net log");
    let start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"].clone();
    log["events"]
        .as_array()
        .expect("net log events")
        .iter()
        .filter(|e| e["type"] == start && e["params"]["initiator"] != "not an origin")
        .filter_map(|e| e["params"]["url"].as_str())
        .map(str::to_owned)
        .collect()
}

/// Reads until the server closes the connection (waiting at most 15 s for each read);
/// returns what it sent and how long it took.
pub fn until_closed(mut stream: TcpStream) -> (String, Duration) {
    use std::io::Read;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("set a read timeout");
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("still open after {:?}: {e}", started.elapsed()),
        }
    }
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

/// Opens `n` connections that the server holds (accepted within its connection cap), for
/// tests of the cap. A connection the server refuses is closed at once; that happens while
/// an earlier client's slot is still being given back (the start-up probe's, say), so such
/// a set is dropped and opened again until all `n` stay open.
pub fn held_connections(addr: std::net::SocketAddr, n: usize) -> Vec<TcpStream> {
    use std::io::Read;
    for _ in 0..50 {
        let streams: Vec<TcpStream> = (0..n)
            .map(|_| TcpStream::connect(addr).expect("connect"))
            .collect();
        let all_open = streams.iter().all(|stream| {
            stream
                .set_read_timeout(Some(Duration::from_millis(200)))
                .expect("set a read timeout");
            let mut byte = [0u8; 1];
            // A held, silent connection has nothing to read: the read times out.
            matches!((&*stream).read(&mut byte), Err(e)
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
        });
        if all_open {
            return streams;
        }
    }
    panic!("the server never held {n} connections at once");
}
