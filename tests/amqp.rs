//! amqp-publish and amqp-tap against a real RabbitMQ (Debian's rabbitmq-server, started by
//! each test on free loopback ports in a temporary directory), with a real oslo.messaging
//! notification listener (Debian's python3-oslo.messaging) on the other side.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, bin_path, fixture, free_port};
use serde_json::Value;

const RABBITMQ_SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// A RabbitMQ node of its own: its own node name, ports, epmd port and data directory.
struct Rabbit {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    dist_port: u16,
    epmd_port: u16,
    node: String,
}

impl Rabbit {
    /// Starts a node, or returns None (skipping; failing under MEASPIPE_REQUIRE_LIVE=1)
    /// when rabbitmq-server is not installed.
    fn start() -> Option<Rabbit> {
        if !Path::new(RABBITMQ_SERVER).exists() {
            assert!(
                std::env::var("MEASPIPE_REQUIRE_LIVE").as_deref() != Ok("1"),
                "{RABBITMQ_SERVER} not found: MEASPIPE_REQUIRE_LIVE=1 requires Debian's rabbitmq-server; .ci/run installs it"
            );
            common::skipped("rabbitmq-server not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut rabbit = Rabbit {
            child: None,
            port,
            dist_port: free_port(),
            epmd_port: free_port(),
            node: format!("measpipe-{port}@localhost"),
            dir,
        };
        rabbit.boot();
        Some(rabbit)
    }

    fn env(&self, command: &mut Command) {
        let base = self.dir.path();
        std::fs::create_dir_all(base.join("home")).unwrap();
        let plugins = base.join("enabled_plugins");
        std::fs::write(&plugins, "[].\n").unwrap();
        std::fs::write(base.join("rabbitmq.conf"), "log.console = true\n").unwrap();
        command
            .env("HOME", base.join("home"))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_MNESIA_BASE", base.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", base.join("log"))
            .env("RABBITMQ_CONFIG_FILE", base.join("rabbitmq.conf"))
            .env("RABBITMQ_PID_FILE", base.join("rabbit.pid"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", &plugins)
            .env("RABBITMQ_LOGS", "-");
    }

    /// Starts the node and waits for "Server startup complete" on its output.
    fn boot(&mut self) {
        let mut command = Command::new(RABBITMQ_SERVER);
        self.env(&mut command);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rabbitmq-server");
        let stdout = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut seen = Vec::new();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if line.contains("Server startup complete") {
                    let _ = ready_tx.send(Ok(()));
                    break;
                }
                seen.push(line);
                if seen.len() > 400 {
                    seen.remove(0);
                }
            }
            let _ = ready_tx.send(Err(seen.join("\n")));
            // Keep draining so the node never blocks on a full pipe.
            for _ in lines {}
        });
        match ready_rx.recv_timeout(Duration::from_secs(90)) {
            Ok(Ok(())) => {}
            Ok(Err(log)) => panic!("rabbitmq-server stopped before starting:\n{log}"),
            Err(_) => panic!("rabbitmq-server did not start within 90 s"),
        }
        self.child = Some(child);
    }

    /// Stops the node (SIGTERM: RabbitMQ shuts down cleanly) and waits for it.
    fn shut_down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    /// Kills the node with SIGKILL (no clean shutdown) and waits for it.
    fn crash(&mut self) {
        let pid = std::fs::read_to_string(self.dir.path().join("rabbit.pid")).unwrap();
        let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// The same broker as oslo.messaging's transport_url (amqp:// would pick its AMQP 1.0
    /// driver).
    fn oslo_url(&self) -> String {
        format!("rabbit://guest:guest@127.0.0.1:{}/", self.port)
    }

    /// The number of messages in `queue` once it is `expected` (rabbitmqctl's counts lag
    /// the queue by up to a few seconds), or what it is after 15 s; None if there is no
    /// such queue.
    fn messages(&self, queue: &str, expected: u64) -> Option<u64> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let count = self.count(queue);
            if count == Some(expected) || Instant::now() > deadline {
                return count;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Whether some queue is bound to the exchange `nova` with `key`.
    fn bound(&self, key: &str) -> bool {
        let mut command = Command::new("/usr/lib/rabbitmq/bin/rabbitmqctl");
        self.env(&mut command);
        let out = command
            .args([
                "-n",
                &self.node,
                "-q",
                "list_bindings",
                "source_name",
                "routing_key",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|line| line == format!("nova\t{key}"))
    }

    fn count(&self, queue: &str) -> Option<u64> {
        let mut command = Command::new("/usr/lib/rabbitmq/bin/rabbitmqctl");
        self.env(&mut command);
        let out = command
            .args(["-n", &self.node, "-q", "list_queues", "name", "messages"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|line| {
                let (name, count) = line.split_once('\t')?;
                (name == queue).then(|| count.trim().parse().ok())?
            })
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        self.shut_down();
        let _ = Command::new("epmd")
            .arg("-kill")
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A child process killed if the test ends first.
struct Killed(Option<Child>);

impl Killed {
    fn new(child: Child) -> Self {
        Killed(Some(child))
    }

    fn child(&mut self) -> &mut Child {
        self.0
            .as_mut()
            .expect("the child is taken only by output()")
    }

    /// Waits for the child and collects its output (it is then not killed).
    fn output(mut self) -> std::process::Output {
        let child = self.0.take().expect("the child is taken only here");
        child.wait_with_output().unwrap()
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn oslo_available() -> bool {
    common::debian_python_with("oslo_messaging", "python3-oslo.messaging").is_some()
}

fn notigen(args: &[&str]) -> Vec<u8> {
    let out = bin("notigen-emit").args(args).output().unwrap();
    common::assert_success(&out);
    out.stdout
}

fn publish(rabbit: &Rabbit, input: &[u8], extra: &[&str]) -> std::process::Output {
    let mut command = Command::new(bin_path("amqp-publish"));
    command
        .args(["--url", &rabbit.url(), "--retry-for", "20s"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

/// The v1 dict of a line (unwrapping a v2 envelope).
fn v1(line: &str) -> Value {
    let value: Value = serde_json::from_str(line).unwrap();
    match value.get("oslo.message") {
        Some(Value::String(inner)) => serde_json::from_str(inner).unwrap(),
        _ => value,
    }
}

/// Both forms of Nova's notifications, published by amqp-publish, reach a real
/// oslo.messaging listener: every one, with its event type, priority, publisher, payload
/// and message id.
#[test]
fn an_oslo_listener_receives_every_notification_in_both_formats() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    if !oslo_available() {
        return;
    }
    let input = notigen(&[
        "--seed",
        "19",
        "--count",
        "3000",
        "--format",
        "both",
        "--envelope",
        "v1",
    ]);
    let sent: Vec<Value> = String::from_utf8(input.clone())
        .unwrap()
        .lines()
        .map(v1)
        .collect();
    let versioned = sent
        .iter()
        .filter(|m| m["payload"].get("nova_object.name").is_some())
        .count();
    assert!(
        versioned > 1000 && versioned < 2000,
        "{versioned} versioned"
    );
    assert!(sent.iter().any(|m| m["priority"] == "ERROR"));

    let mut listener = Command::new(common::DEBIAN_PYTHON)
        .arg(fixture("notigen/oslo_listen.py"))
        .args([
            &rabbit.oslo_url(),
            "nova",
            "3000",
            "notifications",
            "versioned_notifications",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the listener to say it listens (its queues are declared).
    let mut stderr = BufReader::new(listener.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert_eq!(first, "listening\n");

    let out = publish(&rabbit, &input, &["--ack", "/dev/null"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");

    let mut rest = String::new();
    let mut listened = String::new();
    listener
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut listened)
        .unwrap();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(listener.wait().unwrap().success(), "listener: {rest}");
    let received: HashMap<String, Value> = listened
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap();
            (value["message_id"].as_str().unwrap().to_owned(), value)
        })
        .collect();
    assert_eq!(received.len(), 3000, "every message once");
    for message in &sent {
        let got = &received[message["message_id"].as_str().unwrap()];
        for key in [
            "event_type",
            "priority",
            "publisher_id",
            "payload",
            "timestamp",
        ] {
            assert_eq!(got[key], message[key], "{key} of {}", message["message_id"]);
        }
    }
}

/// What oslo's driver leaves on the broker is what amqp-publish leaves: the exchange, a
/// queue per routing key bound with that key, and the messages waiting there with oslo's
/// properties, readable by amqp-tap and by record-check.
#[test]
fn queues_are_declared_and_bound_before_any_consumer_exists() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    let input = notigen(&["--seed", "4", "--count", "500", "--format", "both"]);
    let out = publish(&rabbit, &input, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(input.clone())
        .unwrap()
        .lines()
        .map(v1)
        .collect();
    let mut expected: HashMap<String, u64> = HashMap::new();
    for message in &lines {
        let topic = if message["payload"].get("nova_object.name").is_some() {
            "versioned_notifications"
        } else {
            "notifications"
        };
        let key = format!(
            "{topic}.{}",
            message["priority"].as_str().unwrap().to_lowercase()
        );
        *expected.entry(key).or_default() += 1;
    }
    for (queue, count) in &expected {
        assert_eq!(rabbit.messages(queue, *count), Some(*count), "{queue}");
    }
    // A tap on the legacy info queue, unwrapped, checked against the record contract.
    let legacy = expected["notifications.info"];
    let tap = Command::new(bin_path("amqp-tap"))
        .args([
            "--url",
            &rabbit.url(),
            "--queue",
            "notifications.info",
            "--unwrap",
        ])
        .args(["--count", &legacy.to_string()])
        .output()
        .unwrap();
    common::assert_success(&tap);
    let mut check = bin("record-check");
    let checked = check
        .args(["--kind", "notification", "--summary"])
        .write_stdin(tap.stdout.clone())
        .output()
        .unwrap();
    common::assert_success(&checked);
    let tapped: Vec<Value> = String::from_utf8(tap.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let wanted: Vec<&Value> = lines
        .iter()
        .filter(|m| m["priority"] == "INFO" && m["payload"].get("nova_object.name").is_none())
        .collect();
    assert_eq!(tapped.len(), wanted.len());
    for (got, want) in tapped.iter().zip(wanted) {
        assert_eq!(got, want, "in order, unchanged");
    }
    assert_eq!(
        rabbit.messages("notifications.info", 0),
        Some(0),
        "acknowledged"
    );
}

/// The broker is killed (-9) and started again while amqp-publish sends 20,000 messages
/// and amqp-tap reads them: every message arrives exactly once, and the ack file counts
/// every record.
#[test]
fn a_broker_restarted_mid_stream_loses_and_repeats_nothing() {
    let Some(mut rabbit) = Rabbit::start() else {
        return;
    };
    const TOTAL: usize = 20_000;
    let input = notigen(&[
        "--seed",
        "8",
        "--count",
        &TOTAL.to_string(),
        "--format",
        "versioned",
    ]);
    let ids: Vec<String> = String::from_utf8(input.clone())
        .unwrap()
        .lines()
        .map(|line| v1(line)["message_id"].as_str().unwrap().to_owned())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let ack = dir.path().join("publish.ack");
    let url = rabbit.url();
    // The tap's queue takes every priority; made (and bound) before anything is published.
    let tap_args = [
        "--url",
        &url,
        "--durable",
        "--queue",
        "restart-tap",
        "--bind",
        "restart.*",
        "--unwrap",
        "--retry-for",
        "60s",
    ];
    let made = Command::new(bin_path("amqp-tap"))
        .args(tap_args)
        .args(["--count", "0"])
        .output()
        .unwrap();
    common::assert_success(&made);
    assert_eq!(rabbit.messages("restart-tap", 0), Some(0));
    // A slow producer: the stream is still going when the broker goes down.
    let mut publisher = Killed::new(
        Command::new(bin_path("amqp-publish"))
            .args([
                "--url",
                &url,
                "--durable",
                "--retry-for",
                "60s",
                "--topic",
                "restart",
            ])
            .arg("--ack")
            .arg(&ack)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdin = publisher.child().stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        for chunk in input
            .split_inclusive(|&b| b == b'\n')
            .collect::<Vec<_>>()
            .chunks(500)
        {
            for line in chunk {
                stdin.write_all(line).unwrap();
            }
            stdin.flush().unwrap();
            std::thread::sleep(Duration::from_millis(150));
        }
    });
    let mut tap = Killed::new(
        Command::new(bin_path("amqp-tap"))
            .args(tap_args)
            .args(["--count", &TOTAL.to_string(), "--line-buffered"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let tap_out = tap.child().stdout.take().unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(tap_out).lines() {
            let _ = line_tx.send(line.unwrap());
        }
    });
    // Synchronise on output: restart once the tap has written a quarter.
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while got.len() < TOTAL / 4 {
        let line = line_rx
            .recv_timeout(deadline - Instant::now())
            .expect("tap output");
        got.push(line);
    }
    rabbit.crash();
    rabbit.boot();
    while got.len() < TOTAL {
        match line_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => got.push(line),
            Err(_) => panic!("{} of {TOTAL} after the restart", got.len()),
        }
    }
    feeder.join().unwrap();
    let published = publisher.output();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let notice = String::from_utf8_lossy(&published.stderr);
    assert!(notice.contains("connections lost"), "{notice}");
    let tapped = tap.output();
    assert!(
        tapped.status.success(),
        "{}",
        String::from_utf8_lossy(&tapped.stderr)
    );
    reader.join().unwrap();
    let got_ids: Vec<String> = got
        .iter()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["message_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let unique: HashSet<&String> = got_ids.iter().collect();
    assert_eq!(unique.len(), TOTAL, "no repeats");
    assert_eq!(unique, ids.iter().collect::<HashSet<_>>(), "none lost");
    assert_eq!(std::fs::read_to_string(&ack).unwrap(), format!("{TOTAL}\n"));
    // Nothing is left behind: whatever was written was acknowledged.
    assert_eq!(rabbit.messages("restart-tap", 0), Some(0));
}

/// A bad line is reported with its place and skipped under --on-error skip; the good lines
/// around it are published. With --resume, a rerun sends only what the ack file does not
/// count.
#[test]
fn bad_lines_are_named_and_a_rerun_resumes_after_the_ack() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input: PathBuf = dir.path().join("in.ndjson");
    let good = notigen(&["--seed", "2", "--count", "10"]);
    let mut text = good.clone();
    text.extend_from_slice(b"{\"event_type\":\"x\"}\n");
    std::fs::write(&input, &text).unwrap();
    let ack = dir.path().join("in.ack");
    let run = |extra: &[&str]| {
        Command::new(bin_path("amqp-publish"))
            .args(["--url", &rabbit.url(), "--topic", "resume", "--ack"])
            .arg(&ack)
            .args(extra)
            .arg(&input)
            .output()
            .unwrap()
    };
    let failed = run(&[]);
    assert_eq!(failed.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&failed.stderr),
        format!("amqp-publish: error: {}:11: no priority\n", input.display())
    );
    assert_eq!(std::fs::read_to_string(&ack).unwrap(), "10\n");
    assert_eq!(rabbit.messages("resume.info", 10), Some(10));

    text.extend_from_slice(&notigen(&["--seed", "3", "--count", "5"]));
    std::fs::write(&input, &text).unwrap();
    let resumed = run(&["--resume", "--on-error", "skip"]);
    common::assert_success(&resumed);
    assert_eq!(
        String::from_utf8_lossy(&resumed.stderr),
        format!(
            "amqp-publish: warning: {0}:11: no priority (skipped)\namqp-publish: warning: skipped 1 bad line (first: {0}:11: no priority)\n",
            input.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&ack).unwrap(), "16\n");
    assert_eq!(
        rabbit.messages("resume.info", 15),
        Some(15),
        "10 + 5, none twice"
    );
}

/// An unreachable broker, or a peer that accepts and never answers: retried for
/// --retry-for, then one line naming it (without the password) and exit 1.
#[test]
fn an_unreachable_broker_is_named_without_its_password() {
    let check = |port: u16, why: &str| {
        let started = Instant::now();
        let mut child = Command::new(bin_path("amqp-publish"))
            .args([
                "--url",
                &format!("amqp://nova:s3cret@127.0.0.1:{port}/%2f"),
                "--retry-for",
                "1s",
            ])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&notigen(&["--seed", "1", "--count", "1"]))
            .unwrap();
        let out = Killed::new(child).output();
        assert_eq!(out.status.code(), Some(1), "{why}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with(&format!(
                "amqp-publish: error: amqp://nova:***@127.0.0.1:{port}/%2f: "
            )),
            "{stderr}"
        );
        assert!(stderr.contains(why), "{stderr}");
        assert!(stderr.ends_with("; gave up after 1 s\n"), "{stderr}");
        assert!(!stderr.contains("s3cret"));
        assert_eq!(stderr.lines().count(), 1);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{why}: {:?}",
            started.elapsed()
        );
    };
    // A listener that never answers: the AMQP handshake would wait forever.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    check(port, "no AMQP answer within 1 s");
    // Nothing listening at all.
    drop(silent);
    check(port, "Connection refused");
}

/// Every notification published twice in a row (as a publisher that lost its connection
/// before the confirms sends them again): amqp-tap writes each once, by its _unique_id,
/// and says how many repeats it dropped.
#[test]
fn repeats_are_dropped_by_unique_id() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    // The INFO notifications only: they all go to one queue.
    let input: String = String::from_utf8(notigen(&["--seed", "6", "--count", "301"]))
        .unwrap()
        .lines()
        .filter(|line| line.contains(r#""priority":"INFO""#))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(input.lines().count(), 300);
    let doubled: String = input
        .lines()
        .map(|line| format!("{line}\n{line}\n"))
        .collect();
    let out = publish(&rabbit, doubled.as_bytes(), &["--topic", "twice"]);
    common::assert_success(&out);
    assert_eq!(rabbit.messages("twice.info", 600), Some(600));
    let tap = Command::new(bin_path("amqp-tap"))
        .args([
            "--url",
            &rabbit.url(),
            "--queue",
            "twice.info",
            "--count",
            "300",
        ])
        .output()
        .unwrap();
    common::assert_success(&tap);
    assert_eq!(
        String::from_utf8_lossy(&tap.stderr),
        "amqp-tap: 300 messages written; 299 repeats dropped\n"
    );
    let expected: Vec<Value> = input.lines().map(v1).collect();
    let got: Vec<Value> = String::from_utf8(tap.stdout)
        .unwrap()
        .lines()
        .map(v1)
        .collect();
    assert_eq!(got, expected);
    // The last message's repeat was not read: it waits on the broker.
    assert_eq!(rabbit.messages("twice.info", 1), Some(1));
}

/// A message that is not a JSON object (published by kombu, oslo's own AMQP library, as
/// any other service might): amqp-tap names it, acknowledges it, and goes on.
#[test]
fn a_message_that_is_not_json_is_reported_and_the_stream_goes_on() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    if !oslo_available() {
        return;
    }
    let send = Command::new(common::DEBIAN_PYTHON)
        .args([
            "-c",
            r#"
import sys, kombu
with kombu.Connection(sys.argv[1]) as conn:
    producer = conn.Producer()
    queue = kombu.Queue("mixed", kombu.Exchange("nova", type="topic", durable=False), routing_key="mixed", durable=False)
    for body in ['{"event_type": "a", "priority": "INFO", "_unique_id": "1"}', 'not json', '{"event_type": "b", "priority": "INFO", "_unique_id": "2"}']:
        producer.publish(body, exchange=queue.exchange, routing_key="mixed", declare=[queue], serializer=None, content_type="application/json", content_encoding="utf-8")
"#,
            &format!("amqp://guest:guest@127.0.0.1:{}//", rabbit.port),
        ])
        .output()
        .unwrap();
    common::assert_success(&send);
    let tap = Command::new(bin_path("amqp-tap"))
        .args(["--url", &rabbit.url(), "--queue", "mixed", "--count", "2"])
        .output()
        .unwrap();
    common::assert_success(&tap);
    assert_eq!(
        String::from_utf8_lossy(&tap.stdout),
        "{\"event_type\": \"a\", \"priority\": \"INFO\", \"_unique_id\": \"1\"}\n{\"event_type\": \"b\", \"priority\": \"INFO\", \"_unique_id\": \"2\"}\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&tap.stderr),
        "amqp-tap: warning: queue mixed:2: message not a JSON object: expected ident at line 1 column 2 (skipped)\n\
         amqp-tap: warning: skipped 1 bad line (first: queue mixed:2: message not a JSON object: expected ident at line 1 column 2)\n"
    );
    assert_eq!(
        rabbit.messages("mixed", 0),
        Some(0),
        "all three acknowledged"
    );
}

/// The issue's pipeline, as a shell runs it: `amqp-tap --bind 'notifications.*' |
/// record-check --kind notification` gets every legacy notification published while it
/// runs (its private queue bound before anything is sent), and none of the versioned ones.
#[test]
fn a_tap_bound_with_a_pattern_feeds_record_check() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    let input = notigen(&["--seed", "12", "--count", "400", "--format", "both"]);
    let legacy: Vec<Value> = String::from_utf8(input.clone())
        .unwrap()
        .lines()
        .map(v1)
        .filter(|m| m["payload"].get("nova_object.name").is_none())
        .collect();
    let script = format!(
        "'{}' --url '{}' --bind 'notifications.*' --unwrap --count {} | '{}' --kind notification",
        bin_path("amqp-tap").display(),
        rabbit.url(),
        legacy.len(),
        bin_path("record-check").display(),
    );
    let pipeline = Killed::new(
        Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Synchronise on the broker: publish once the tap's queue is bound.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !rabbit.bound("notifications.*") {
        assert!(Instant::now() < deadline, "the tap never bound its queue");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = publish(&rabbit, &input, &[]);
    common::assert_success(&out);
    let done = pipeline.output();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&done.stderr), "");
    let got: Vec<Value> = String::from_utf8(done.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut got_ids: Vec<&str> = got
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    let mut want_ids: Vec<&str> = legacy
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    got_ids.sort_unstable();
    want_ids.sort_unstable();
    assert_eq!(got_ids, want_ids);
}
