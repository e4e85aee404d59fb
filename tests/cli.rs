//! The manners every binary shares: help, version, man pages, exit codes, error messages,
//! closed pipes, signals; and the harness itself.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{bin, bin_path, repo_root, BackgroundServer};
use measpipe::tools::ALL;
use predicates::prelude::*;

const STAT: &str =
    r#"{"kind":"stat","file":"/run/a.mmstats","pid":1,"label":"a","type":"Q","value":1,"ts":1.5}"#;

#[test]
fn every_tool_has_a_binary_and_every_binary_is_a_tool() {
    let mut bins: Vec<String> = std::fs::read_dir(repo_root().join("src/bin"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    bins.sort();
    let mut tools: Vec<String> = ALL.iter().map(|t| t.name.to_owned()).collect();
    tools.sort();
    assert_eq!(bins, tools, "src/bin and measpipe::tools::ALL disagree");
}

#[test]
fn every_binary_answers_help_and_version() {
    for tool in ALL {
        bin(tool.name)
            .arg("--help")
            .assert()
            .success()
            .stdout(predicate::str::contains("Usage:"))
            .stdout(predicate::str::contains("Example"));
        bin(tool.name)
            .arg("--version")
            .assert()
            .success()
            .stdout(format!("{} {}\n", tool.name, env!("CARGO_PKG_VERSION")));
        bin(tool.name)
            .arg("--no-such-flag")
            .assert()
            .code(2)
            .stderr(predicate::str::contains("unexpected argument"));
    }
}

#[test]
fn committed_man_pages_and_completions_are_current() {
    let stale = measpipe::docs::stale(repo_root(), &measpipe::docs::generate(ALL));
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}: run `cargo run --example gen-docs` and commit"
    );
}

#[test]
fn the_staleness_check_catches_a_changed_flag() {
    let changed = [measpipe::tools::Tool {
        name: ALL[0].name,
        command: || (ALL[0].command)().arg(clap::Arg::new("new").long("a-new-flag")),
    }];
    let stale = measpipe::docs::stale(repo_root(), &measpipe::docs::generate(&changed));
    assert!(
        stale.contains(&format!("man/{}.1", ALL[0].name).into()),
        "{stale:?}"
    );
}

#[test]
fn every_man_page_renders_with_man() {
    if !common::have("man", "renders the man pages") {
        return;
    }
    for tool in ALL {
        let page = repo_root().join(format!("man/{}.1", tool.name));
        let out = Command::new("man")
            .args(["-l", "-P", "cat"])
            .arg(&page)
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        assert!(out.status.success(), "man -l {page:?}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "roff warnings for {page:?}"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("NAME") && text.contains(tool.name), "{text}");
        assert!(text.contains("--help"), "{text}");
        assert!(text.contains("measpipe-records(7)"), "{text}");
        assert!(text.contains("75   another run holds the lock"), "{text}");
    }
    let contract = repo_root().join(measpipe::docs::RECORDS_PAGE);
    let out = Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(&contract)
        .env("MANWIDTH", "80")
        .output()
        .unwrap();
    assert!(out.status.success(), "man -l {contract:?}: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "roff warnings");
    let text = String::from_utf8_lossy(&out.stdout);
    for section in [
        "MEASUREMENT",
        "NOTIFICATION",
        "STAT",
        "TRACE",
        "CONVENTIONS",
    ] {
        assert!(text.contains(section), "{section} in {text}");
    }
}

#[test]
fn every_page_names_only_pages_that_ship() {
    let shipped: Vec<String> = std::fs::read_dir(repo_root().join("man"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for page in &shipped {
        let raw = std::fs::read_to_string(repo_root().join("man").join(page)).unwrap();
        // Plain text: no font escapes, dashes as dashes; then every `name(N)` is a page.
        let text = raw
            .replace("\\fB", "")
            .replace("\\fR", "")
            .replace("\\fI", "")
            .replace("\\-", "-");
        let bytes = text.as_bytes();
        let mut named = 0;
        for at in 0..bytes.len().saturating_sub(2) {
            if bytes[at] != b'(' || !bytes[at + 1].is_ascii_digit() || bytes[at + 2] != b')' {
                continue;
            }
            let start = text[..at]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .map_or(0, |i| i + 1);
            let name = &text[start..at];
            if name.is_empty() {
                continue;
            }
            named += 1;
            let section = bytes[at + 1] as char;
            assert!(
                shipped.contains(&format!("{name}.{section}")),
                "{page} names {name}({section}), which is not shipped"
            );
        }
        assert!(named > 0, "{page} names no other page");
    }
}

#[test]
fn a_closed_pipe_ends_quietly_with_status_zero() {
    let input = format!("{STAT}\n").repeat(200_000);
    let mut child = Command::new(bin_path("record-check"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    // Read one line, then close the pipe, as `| head -1` does.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// Runs `<command> 2>err | head -1` in bash and returns the command's exit status followed
/// by whatever it wrote on stderr.
fn status_and_stderr_under_head(setup: &str, command: &str) -> String {
    let script =
        format!("{setup} {command} 2>err | head -1 >/dev/null; echo ${{PIPESTATUS[0]}}; cat err");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .args(["-c", &script])
        .current_dir(dir.path())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn head_in_a_real_shell_pipeline_exits_zero_with_empty_stderr() {
    let setup = format!("yes '{STAT}' | head -n 300000 >in;");
    let command = format!("{} in", bin_path("record-check").display());
    assert_eq!(status_and_stderr_under_head(&setup, &command), "0\n");
}

#[test]
fn an_endless_generator_ends_quietly_under_head() {
    let command = format!("{} --payload seed", bin_path("notigen-emit").display());
    assert_eq!(status_and_stderr_under_head("", &command), "0\n");
}

#[test]
fn a_malformed_line_names_file_and_line_and_exits_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.ndjson");
    std::fs::write(&path, format!("{STAT}\n\n{{\"kind\":\"stat\",\n{STAT}\n")).unwrap();
    bin("record-check")
        .arg(&path)
        .assert()
        .code(1)
        .stdout(format!("{STAT}\n"))
        .stderr(format!(
            "record-check: error: {}:3: EOF while parsing a value at column 15\n",
            path.display()
        ));
}

#[test]
fn on_error_skip_counts_bad_lines_and_exits_zero() {
    let input = format!("{STAT}\nnot json\n{STAT}\n{{\"kind\":\"stat\"}}\n");
    bin("record-check")
        .args(["--on-error", "skip"])
        .write_stdin(input)
        .assert()
        .success()
        .stdout(format!("{STAT}\n{STAT}\n"))
        .stderr(
            "record-check: warning: skipped 2 bad lines (first: <stdin>:2: expected ident at column 2)\n",
        );
}

#[test]
fn several_inputs_are_read_in_order_and_dash_is_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    std::fs::write(&a, format!("{STAT}\n")).unwrap();
    let trace = r#"{"kind":"trace","task":"t","tracer":"proc","ts":1.0,"series":"rss","unit":"bytes","value":5}"#;
    bin("record-check")
        .arg(&a)
        .arg("-")
        .arg(&a)
        .write_stdin(format!("{trace}\n"))
        .assert()
        .success()
        .stdout(format!("{STAT}\n{trace}\n{STAT}\n"));
}

#[test]
fn a_missing_input_file_is_named_and_its_cause_given_once() {
    bin("record-check")
        .arg("/nonexistent/x.ndjson")
        .assert()
        .code(1)
        .stderr(
            "record-check: error: /nonexistent/x.ndjson: No such file or directory (os error 2)\n",
        );
}

#[test]
fn an_overlong_line_is_a_bad_line_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.ndjson");
    // A 40 MB line between two records: the default --max-line (16 MiB) refuses it, and
    // under a 400 MB address-space limit (it once took 1.5 GB) the run goes on past it.
    let mut text = format!("{STAT}\n").into_bytes();
    text.extend(std::iter::repeat_n(b'x', 40_000_000));
    text.extend_from_slice(format!("\n{STAT}\n").as_bytes());
    std::fs::write(&path, &text).unwrap();
    let script = format!(
        "ulimit -v 400000; exec {} --on-error skip {}",
        bin_path("record-check").display(),
        path.display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "record-check: warning: skipped 1 bad line (first: {}:2: line longer than 16777216 bytes (raise --max-line to accept it))\n",
            path.display()
        )
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{STAT}\n{STAT}\n")
    );
    bin("record-check")
        .args(["--max-line", "20"])
        .arg(&path)
        .assert()
        .code(1)
        .stdout("")
        .stderr(format!(
            "record-check: error: {}:1: line longer than 20 bytes (raise --max-line to accept it)\n",
            path.display()
        ));
}

#[test]
fn sigterm_ends_a_filter_blocked_on_a_full_pipe_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.ndjson");
    std::fs::write(&path, format!("{STAT}\n").repeat(200_000)).unwrap();
    let mut child = Command::new(bin_path("record-check"))
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Handshake: one record read shows it is writing; then nobody reads, the pipe fills and
    // the filter blocks in write(2) holding the output lock.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let sent = std::time::Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let waited = sent.elapsed();
    drop(stdout);
    assert_eq!(status.code(), Some(143));
    assert!(waited < Duration::from_secs(1), "took {waited:?}");
}

#[test]
fn timeouts_a_duration_cannot_hold_are_usage_errors() {
    for (flag, value) in [
        ("--timeout", "1e20"),
        ("--backoff", "inf"),
        ("--timeout", "NaN"),
    ] {
        bin("esmond-post")
            .args(["--dry-run", flag, value])
            .write_stdin("")
            .assert()
            .code(2)
            .stdout("")
            .stderr(format!(
                "error: invalid value '{value}' for '{flag} <SECONDS>': \"{value}\" is not between 0 and 86400 seconds\n\nFor more information, try '--help'.\n"
            ));
    }
}

#[test]
fn sigterm_flushes_buffered_records_and_exits_143() {
    let mut child = Command::new(bin_path("record-check"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Two records sit in the 64 KiB buffer while the filter waits for more input.
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{STAT}\n{STAT}\n").as_bytes())
        .unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(out.status.code(), Some(143));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{STAT}\n{STAT}\n")
    );
}

#[test]
fn the_harness_starts_a_real_server_and_waits_for_it() {
    if !common::have("python3", "serves HTTP for the harness test") {
        return;
    }
    let port = common::free_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hello").unwrap();
    let mut command = Command::new("python3");
    command
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let server = BackgroundServer::start(command, port, Duration::from_secs(20));
    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    stream
        .write_all(b"GET /hello.txt HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(response.ends_with("hello"), "{response}");
    server.stop();
}

#[test]
fn the_light_library_compiles_none_of_the_servers_or_the_command_line() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-e",
            "normal",
            "--no-default-features",
            "--prefix",
            "none",
            "--locked",
            "--offline",
        ])
        .current_dir(repo_root())
        .output()
        .unwrap();
    common::assert_success(&out);
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for heavy in [
        "rusqlite",
        "libsqlite3-sys",
        "tokio",
        "axum",
        "ureq",
        "clap",
        "clap_mangen",
        "hyper",
    ] {
        assert!(
            !crates.contains(&heavy),
            "{heavy} in the light tree:\n{tree}"
        );
    }
    assert!(crates.contains(&"memmap2"), "{tree}");
}

/// The domains know neither clap nor the run wrapper: they report through callbacks and
/// return values, and the exit status travels on the error type.
#[test]
fn no_domain_imports_clap_or_the_cli() {
    let mut offenders = Vec::new();
    for domain in [
        "notigen", "mmstats", "gridftp", "iperf3", "esmond", "record", "ndjson", "state", "sync",
        "clock",
    ] {
        let dir = repo_root().join("src/lib").join(domain);
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.push(repo_root().join(format!("src/lib/{domain}.rs")));
        for file in files.iter().filter(|f| f.is_file()) {
            let text = std::fs::read_to_string(file).unwrap();
            for (n, line) in text.lines().enumerate() {
                if line.contains("clap") || line.contains("crate::cli") || line.contains("cli::") {
                    offenders.push(format!("{}:{}: {line}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

/// esmond-post shows a status line on a terminal (here a pty from util-linux `script`) and
/// clears it; the summary and messages still print whole. Off a terminal there is none
/// (every other test compares stderr whole).
#[test]
fn a_status_line_only_on_a_terminal() {
    if !common::have("script", "util-linux's pty runner") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("records.ndjson");
    let record = r#"{"kind":"measurement","metadata":{"subject-type":"point-to-point","source":"10.0.0.1","destination":"10.0.0.2","event-types":[]},"ts":5,"values":{"throughput":1.5}}"#;
    std::fs::write(&input, format!("{record}\n{record}\n")).unwrap();
    let command = format!(
        "{} --dry-run --cache {} {} > /dev/null",
        bin_path("esmond-post").display(),
        dir.path().join("keys.db").display(),
        input.display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("esmond-post: records 1, points "),
        "{shown:?}"
    );
    // The last thing on the terminal is the summary, whole, after the status is cleared.
    assert!(
        shown.ends_with("\x1b[2K\x1b[1Aesmond-post: records 2, points 2, requests 2, retries 0, duplicates 0, conflicts 0, failures 0\r\n")
            || shown.ends_with("\x1b[2Kesmond-post: records 2, points 2, requests 2, retries 0, duplicates 0, conflicts 0, failures 0\r\n"),
        "{shown:?}"
    );
}
