//! nats-pub and nats-sub against real nats-server JetStream (Debian's), each server started
//! here in a temporary directory on free loopback ports: every record through once, re-sends
//! dropped, each stage killed with -9 mid-stream and rerun, a cluster node killed.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin_path, free_port};

/// A nats-server with JetStream, stopped (SIGKILL) on drop.
struct Nats {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
    log: PathBuf,
}

impl Nats {
    /// Starts a node; `cluster` is (its cluster port, every node's cluster port).
    fn start(dir: &Path, name: &str, cluster: Option<(u16, &[u16])>) -> Nats {
        let port = free_port();
        let mut args: Vec<String> = vec![
            "-js".into(),
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-sd".into(),
            dir.join(name).display().to_string(),
            "--server_name".into(),
            name.into(),
        ];
        if let Some((own, all)) = cluster {
            let routes: Vec<String> = all
                .iter()
                .filter(|p| **p != own)
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect();
            args.extend([
                "--cluster_name".into(),
                "measpipe".into(),
                "--cluster".into(),
                format!("nats://127.0.0.1:{own}"),
                "--routes".into(),
                routes.join(","),
            ]);
        }
        let mut nats = Nats {
            child: None,
            port,
            args,
            log: dir.join(format!("{name}.log")),
        };
        nats.launch();
        nats
    }

    /// Starts a node from a configuration file; `{PORT}` and `{DIR}` in `config` are its
    /// port and a store directory.
    fn start_with(dir: &Path, config: &str) -> Nats {
        let port = free_port();
        let text = config
            .replace("{PORT}", &port.to_string())
            .replace("{DIR}", &dir.join("js").display().to_string());
        let path = dir.join("nats.conf");
        std::fs::write(&path, text).unwrap();
        let mut nats = Nats {
            child: None,
            port,
            args: vec!["-c".into(), path.display().to_string()],
            log: dir.join("nats.log"),
        };
        nats.launch();
        nats
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let before = std::fs::read_to_string(&self.log).unwrap_or_default().len();
        self.child = Some(
            Command::new("nats-server")
                .args(&self.args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start nats-server"),
        );
        self.wait_for(before, "Server is ready");
    }

    /// Waits until the log, after byte `from`, says `what`.
    fn wait_for(&self, from: usize, what: &str) {
        if !self.said_within(from, what, Duration::from_secs(30)) {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            panic!("nats-server never said {what:?}:\n{text}");
        }
    }

    /// Whether the log, after byte `from`, says `what` within `limit`.
    fn said_within(&self, from: usize, what: &str, limit: Duration) -> bool {
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.get(from..).is_some_and(|t| t.contains(what)) {
                return true;
            }
            if started.elapsed() >= limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

fn have_nats() -> bool {
    common::have("nats-server", "JetStream for nats-pub and nats-sub")
}

/// `n` distinct records, as lines.
fn records(n: usize) -> String {
    let mut text = String::with_capacity(n * 80);
    for i in 0..n {
        text.push_str(&format!(
            "{{\"kind\":\"measurement\",\"ts\":{},\"values\":{{\"throughput\":{}}},\"cursor\":\"log:{i}\"}}\n",
            1_796_000_000 + i,
            i * 7
        ));
    }
    text
}

fn nats_pub(url: &str) -> Command {
    let mut command = Command::new(bin_path("nats-pub"));
    command.args(["-s", url, "--retry-for", "60s"]);
    command
}

fn nats_sub(url: &str) -> Command {
    let mut command = Command::new(bin_path("nats-sub"));
    command.args(["-s", url, "--retry-for", "60s"]);
    command
}

/// One JetStream node in a temporary directory (`None`, a skip, without nats-server).
fn one_node() -> Option<(tempfile::TempDir, Nats)> {
    if !have_nats() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path(), "n1", None);
    Some((dir, nats))
}

/// Every message on `subject` now, through a new consumer: its lines.
fn drain(url: &str, subject: &str) -> Vec<String> {
    let out = nats_sub(url)
        .args(["--idle", "2s", subject])
        .output()
        .unwrap();
    common::assert_success(&out);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Reads a count file (0 until it exists).
fn count(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn records_go_through_once_in_order_and_a_resend_is_dropped() {
    let Some((dir, nats)) = one_node() else {
        return;
    };
    let input = dir.path().join("in.ndjson");
    let mut text = records(10_000);
    // One bad line in the middle: reported with its place, counted, skipped.
    let at = text.find("\"ts\":1796005000").unwrap();
    let line_start = text[..at].rfind('\n').unwrap() + 1;
    text.insert_str(line_start, "not json\n");
    std::fs::write(&input, &text).unwrap();
    let ack = dir.path().join("pub.ack");
    let out = nats_pub(&nats.url())
        .args(["--on-error", "skip", "--ack"])
        .arg(&ack)
        .arg("gridftp.host1")
        .arg(&input)
        .output()
        .unwrap();
    common::assert_success(&out);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!(
            "nats-pub: warning: {}:5001: not JSON: expected ident at line 1 column 2 (skipped)\n",
            input.display()
        )),
        "{stderr}"
    );
    assert_eq!(count(&ack), 10_001);
    let expected: Vec<String> = records(10_000).lines().map(str::to_owned).collect();
    same_lines(&drain(&nats.url(), "gridftp.>"), &expected);

    // The same input again: every message a duplicate, the stream unchanged.
    let out = nats_pub(&nats.url())
        .args(["--on-error", "skip", "gridftp.host1"])
        .arg(&input)
        .output()
        .unwrap();
    common::assert_success(&out);
    assert!(
        String::from_utf8(out.stderr).unwrap().contains(&format!(
            "nats-pub: {}: 10000 messages confirmed; 0 sent again, 10000 dropped by the stream as duplicates",
            nats.url()
        ))
    );
    assert_eq!(drain(&nats.url(), "gridftp.>").len(), 10_000);

    // A durable consumer goes on where it acknowledged.
    let first = nats_sub(&nats.url())
        .args(["--durable", "archive", "--count", "4000", "gridftp.>"])
        .output()
        .unwrap();
    common::assert_success(&first);
    let rest = nats_sub(&nats.url())
        .args(["--durable", "archive", "--idle", "2s", "gridftp.>"])
        .output()
        .unwrap();
    common::assert_success(&rest);
    let both = [first.stdout, rest.stdout].concat();
    let lines: Vec<String> = String::from_utf8(both)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    same_lines(&lines, &expected);

    // A stream or a durable consumer made for other subjects is named, not used.
    let out = nats_pub(&nats.url())
        .args(["--stream", "GRIDFTP", "other.h1"])
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "nats-pub: error: stream GRIDFTP takes gridftp, gridftp.>, not other.h1 (name another with --stream)\n"
    );
    let out = nats_sub(&nats.url())
        .args(["--durable", "archive", "--idle", "1s", "gridftp.host1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "nats-sub: error: the durable consumer archive reads gridftp.>, not gridftp.host1 (name another with --durable)\n"
    );
}

/// The two lists of lines are equal (else the count and the first difference).
fn same_lines(got: &[String], expected: &[String]) {
    let first = got.iter().zip(expected).position(|(a, b)| a != b);
    assert!(
        got.len() == expected.len() && first.is_none(),
        "{} lines, {} expected; first difference at {first:?}",
        got.len(),
        expected.len()
    );
}

#[test]
fn usage_errors_and_an_absent_server_are_one_line_each() {
    let out = Command::new(bin_path("nats-pub"))
        .arg("gridftp.*")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "nats-pub: error: \"gridftp.*\" is not a subject to publish on (no wildcards or spaces)\n"
    );
    let out = Command::new(bin_path("nats-pub"))
        .args(["--pack", "64", "gridftp.h1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "nats-pub: error: --pack needs --ack or --ack-cursor: a rerun packs again what this \
         run sent and did not count, and where that starts is kept beside that file\n"
    );
    let port = free_port();
    let out = Command::new(bin_path("nats-sub"))
        .args([
            "-s",
            &format!("nats://127.0.0.1:{port}"),
            "--retry-for",
            "1s",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!("nats-sub: error: nats://127.0.0.1:{port}: "))
            && stderr.lines().count() == 1,
        "{stderr}"
    );
}

/// Starts `command` with its stdout into `out` and its stdin from `input`.
fn spawn(mut command: Command, input: Option<&Path>, out: Option<&Path>) -> Child {
    command.stderr(Stdio::piped());
    command.stdin(match input {
        Some(path) => Stdio::from(std::fs::File::open(path).unwrap()),
        None => Stdio::null(),
    });
    command.stdout(match out {
        Some(path) => Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap(),
        ),
        None => Stdio::null(),
    });
    command.spawn().unwrap()
}

/// Waits until `done()` holds (checked every 10 ms, at most 120 s).
fn until(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn lines_of(path: &Path) -> usize {
    std::fs::File::open(path)
        .map(|f| BufReader::new(f).lines().count())
        .unwrap_or(0)
}

/// Three JetStream nodes routed to each other, once they have elected a metadata leader.
/// Debian's nats-server 2.9.10 now and then forms the routes but elects no leader (seen
/// once in CI, under the load of the parallel tests): such a cluster is stopped, said so
/// on stderr, and a new one started on new ports and directories, three times at most.
fn cluster_of_three(dir: &Path) -> Vec<Nats> {
    for attempt in 1..=3 {
        let home = dir.join(format!("cluster{attempt}"));
        std::fs::create_dir_all(&home).unwrap();
        let cluster: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let nodes: Vec<Nats> = (0..3)
            .map(|i| Nats::start(&home, &format!("n{i}"), Some((cluster[i], &cluster))))
            .collect();
        let elected = nodes
            .iter()
            .all(|node| node.said_within(0, "metadata leader", Duration::from_secs(30)));
        if elected {
            return nodes;
        }
        eprintln!(
            "attempt {attempt}: the cluster elected no metadata leader in 30 s; starting another"
        );
    }
    panic!("three clusters in a row elected no metadata leader");
}

/// A 3-node JetStream cluster, the stream kept on all three. 1,000,000 records go through
/// nats-pub (killed with -9 once mid-stream and rerun with --resume) while one node is
/// killed with -9 and started again, then through nats-sub on a durable consumer (killed
/// with -9 once mid-stream and rerun). The stream holds each record once, and the
/// subscriber's output, once the batch it wrote before its kill is set aside, too.
#[test]
fn a_cluster_node_and_each_stage_killed_mid_stream_lose_and_repeat_nothing() {
    cluster_node_and_stages_killed(1);
}

/// The same with 64 records to a message (`nats-pub --pack 64`): the rerun sends what the
/// killed run left uncounted in the same messages, and the stream drops them.
#[test]
fn a_cluster_node_and_each_stage_killed_mid_stream_with_packed_messages() {
    cluster_node_and_stages_killed(64);
}

fn cluster_node_and_stages_killed(pack: usize) {
    if !have_nats() {
        return;
    }
    const N: usize = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = cluster_of_three(dir.path());
    let urls = nodes.iter().map(Nats::url).collect::<Vec<_>>().join(",");
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, records(N)).unwrap();
    let ack = dir.path().join("pub.ack");
    let publisher = || {
        let mut command = nats_pub(&urls);
        command
            .args([
                "--replicas",
                "3",
                "--id-from",
                "cursor",
                "--pack",
                &pack.to_string(),
                "--resume",
                "--ack",
            ])
            .arg(&ack)
            .arg("gridftp.host1")
            .arg(&input);
        command
    };
    // The publisher, killed once a fifth is confirmed.
    let mut first = spawn(publisher(), None, None);
    until("a fifth confirmed", || count(&ack) >= (N / 5) as u64);
    first.kill().unwrap();
    first.wait().unwrap();
    let resumed_at = count(&ack);
    assert!(
        resumed_at < N as u64,
        "the first run finished before its kill"
    );
    // Rerun; a node is killed while it goes on, and started again.
    let mut second = spawn(publisher(), None, None);
    until("two fifths confirmed", || count(&ack) >= (2 * N / 5) as u64);
    nodes[2].kill();
    until("three fifths confirmed", || {
        count(&ack) >= (3 * N / 5) as u64
    });
    nodes[2].launch();
    let status = second.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(second.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert_eq!(count(&ack), N as u64);

    // The subscriber, killed mid-stream and rerun on its durable consumer.
    let out = dir.path().join("out.ndjson");
    let subscriber = || {
        let mut command = nats_sub(&urls);
        command.args([
            "--durable",
            "archive",
            "--ack-wait",
            "2s",
            "--idle",
            "5s",
            "gridftp.>",
        ]);
        command
    };
    let mut first = spawn(subscriber(), None, Some(&out));
    until("a third written", || lines_of(&out) >= N / 3);
    first.kill().unwrap();
    first.wait().unwrap();
    let before_kill = lines_of(&out);
    let mut second = spawn(subscriber(), None, Some(&out));
    let status = second.wait().unwrap();
    assert!(status.success());

    // Every record, each once, in the stream; the subscriber wrote each, and wrote again
    // only what its killed run had not acknowledged (at most what the consumer lets wait
    // for acknowledgement: four batches of 1,000 messages).
    let text = std::fs::read_to_string(&out).unwrap();
    let written: Vec<&str> = text.lines().collect();
    let unique: HashSet<&str> = written.iter().copied().collect();
    let expected = records(N);
    let expected: HashSet<&str> = expected.lines().collect();
    assert_eq!(unique.len(), N);
    assert!(
        unique == expected,
        "the records written are not the records sent"
    );
    let repeated = written.len() - N;
    assert!(
        repeated <= 4_000 * pack,
        "{repeated} written twice (the killed run wrote {before_kill})"
    );
    let stream = drain(&urls, "gridftp.>");
    assert_eq!(stream.len(), N, "the stream holds each record once");
}

/// Messages of 256 records (~20 KB each here) read by a pull of up to 1,000 messages:
/// each pull asks for at most 8 MiB, and its end by the server (`409 Message Size Exceeds
/// MaxBytes`) is the usual end of a pull, not a warning. Every record comes once, in
/// order. (Unbounded, such pulls dropped messages at their expiry, and those came again
/// out of order after the ack wait.)
#[test]
fn large_packed_messages_are_read_in_bounded_pulls_quietly_and_in_order() {
    let Some((dir, nats)) = one_node() else {
        return;
    };
    const N: usize = 120_000;
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, records(N)).unwrap();
    let out = nats_pub(&nats.url())
        .args(["--pack", "256", "--ack"])
        .arg(dir.path().join("pub.ack"))
        .arg("big.h1")
        .arg(&input)
        .output()
        .unwrap();
    common::assert_success(&out);
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "");
    let out = nats_sub(&nats.url())
        .args(["--durable", "all", "--count", &N.to_string(), "big.>"])
        .output()
        .unwrap();
    common::assert_success(&out);
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "");
    let got: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let expected: Vec<String> = records(N).lines().map(str::to_owned).collect();
    same_lines(&got, &expected);
}

/// `nats-pub --pack`, step by step: a run sends 40 records 10 to a message, and leaves its
/// ack file and stream sequence as a kill after its first message would (10 counted,
/// sequence 1). The rerun, asked for 16 to a message, reads back the three messages past
/// it and sends their records in the same messages, which the stream drops (16 to a
/// message, they would be two new ones, stored). When a record there differs, the message
/// it was in is sent anew, ending where that one did, and the next ones are the same again.
#[test]
fn a_rerun_sends_what_the_stream_holds_past_its_sequence_in_the_same_messages() {
    let Some((dir, nats)) = one_node() else {
        return;
    };
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, records(40)).unwrap();
    let ack = dir.path().join("pub.ack");
    let sequence = dir.path().join("pub.ack.seq");
    let publish = |pack: &str| {
        let out = nats_pub(&nats.url())
            .args(["--pack", pack, "--resume", "--ack"])
            .arg(&ack)
            .args(["gridftp.h1"])
            .arg(&input)
            .output()
            .unwrap();
        common::assert_success(&out);
        String::from_utf8(out.stderr).unwrap()
    };
    assert_eq!(publish("10"), "");
    assert_eq!(count(&ack), 40);
    assert_eq!(std::fs::read_to_string(&sequence).unwrap(), "4\n");
    let killed = || {
        std::fs::write(&ack, "10\n").unwrap();
        std::fs::write(&sequence, "1\n").unwrap();
    };
    killed();
    assert_eq!(
        publish("16"),
        format!(
            "nats-pub: {}: 3 messages confirmed; 0 sent again, 3 dropped by the stream as duplicates\n",
            nats.url()
        )
    );
    assert_eq!(count(&ack), 40);
    assert_eq!(std::fs::read_to_string(&sequence).unwrap(), "4\n");
    let expected: Vec<String> = records(40).lines().map(str::to_owned).collect();
    same_lines(&drain(&nats.url(), "gridftp.>"), &expected);

    // Record 15 differs now: records 11–20 are a new message, the next two the same.
    let mut changed = expected.clone();
    changed[14] = changed[14].replace("\"throughput\":98", "\"throughput\":99");
    assert_ne!(changed[14], expected[14]);
    std::fs::write(&input, changed.join("\n") + "\n").unwrap();
    killed();
    assert_eq!(
        publish("16"),
        format!(
            "nats-pub: {}: 3 messages confirmed; 0 sent again, 2 dropped by the stream as duplicates\n",
            nats.url()
        )
    );
    let mut stream = expected.clone();
    stream.extend(changed[10..20].iter().cloned());
    same_lines(&drain(&nats.url(), "gridftp.>"), &stream);
}

/// `nats-pub --pack`: records come in bursts through a pipe, so most messages are cut
/// early (the input paused for the linger). nats-pub is killed with -9 while messages it
/// had confirmed are past its ack file, and rerun with --resume over the whole input in a
/// file (no pauses): it packs what the stream holds past its ack file as the killed run
/// did, so the stream drops each re-sent message and holds every record once. Packed by
/// the usual rules instead, the same records make other messages, and the stream keeps
/// them twice. Tried up to three times, since the kill must land while confirmed messages
/// are past the ack file (nearly always).
#[test]
fn packed_messages_are_cut_again_where_a_killed_run_cut_them() {
    let Some((dir, nats)) = one_node() else {
        return;
    };
    const N: usize = 20_000;
    let text = records(N);
    let lines: Vec<&str> = text.lines().collect();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, &text).unwrap();
    for attempt in 1..=3 {
        let subject = format!("packed{attempt}.h1");
        let ack = dir.path().join(format!("pub{attempt}.ack"));
        let sequence = dir.path().join(format!("pub{attempt}.ack.seq"));
        let publisher = || {
            let mut command = nats_pub(&nats.url());
            command.args(["--pack", "16", "--linger", "2ms", "--resume", "--ack"]);
            command.arg(&ack).arg(&subject);
            command
        };
        let mut first = publisher();
        first.stdin(Stdio::piped()).stderr(Stdio::null());
        let mut first = first.spawn().unwrap();
        let mut stdin = first.stdin.take().unwrap();
        // Bursts of 1–99 records, 5 ms apart, until the pipe breaks.
        let fed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let feed = {
            let fed = fed.clone();
            let lines: Vec<String> = lines.iter().map(|l| format!("{l}\n")).collect();
            std::thread::spawn(move || {
                let (mut at, mut seed) = (0, 7u64);
                while at < lines.len() {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let burst = 1 + (seed >> 33) as usize % 99;
                    let end = (at + burst).min(lines.len());
                    if std::io::Write::write_all(&mut stdin, lines[at..end].concat().as_bytes())
                        .is_err()
                    {
                        return;
                    }
                    at = end;
                    fed.store(at, std::sync::atomic::Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        until("a quarter confirmed", || count(&ack) >= (N / 4) as u64);
        // Some bursts more, so that messages are confirmed past the ack file.
        let then = fed.load(std::sync::atomic::Ordering::SeqCst);
        until("1,000 records more fed", || {
            fed.load(std::sync::atomic::Ordering::SeqCst) >= then + 1_000
        });
        first.kill().unwrap();
        first.wait().unwrap();
        feed.join().unwrap();
        let acked = count(&ack);
        let landed = drain(&nats.url(), &subject).len() as u64;
        assert!(
            sequence.exists(),
            "the stream sequence is kept beside the ack file"
        );
        if landed == acked {
            eprintln!("attempt {attempt}: the kill came with nothing confirmed past the ack file");
            continue;
        }
        let out = publisher().arg(&input).output().unwrap();
        common::assert_success(&out);
        let dropped = landed - acked;
        let stderr = String::from_utf8(out.stderr).unwrap();
        let said = " dropped by the stream as duplicates\n";
        let duplicates: u64 = stderr
            .strip_suffix(said)
            .and_then(|s| s.rsplit(", ").next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{stderr}"));
        assert!(duplicates >= 1, "{stderr}");
        assert_eq!(count(&ack), N as u64);
        let stream = drain(&nats.url(), &subject);
        let expected: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        same_lines(&stream, &expected);
        eprintln!("attempt {attempt}: {dropped} records were past the ack file, sent again in {duplicates} messages the stream dropped");
        return;
    }
    panic!("three kills in a row came with nothing confirmed past the ack file");
}

/// Runs `program` with `args` in `dir`, asserting it succeeds.
fn run_in(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
}

/// A server that asks for a user and a password over TLS (its certificate signed by a CA
/// made here): the nats CLI's flags reach it; a wrong password is one line and exit 1.
#[test]
fn credentials_and_tls_are_taken_as_the_nats_cli_takes_them() {
    if !have_nats() || !common::have("openssl", "makes the test's certificates") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run_in(
        d,
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=measpipe test CA",
        ],
    );
    run_in(
        d,
        "openssl",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    run_in(
        d,
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    let config = format!(
        "listen: 127.0.0.1:{{PORT}}\njetstream {{ store_dir: \"{{DIR}}\" }}\nauthorization {{ user: measpipe, password: s3cret }}\ntls {{ cert_file: \"{}\", key_file: \"{}\" }}\n",
        d.join("server.pem").display(),
        d.join("server.key").display()
    );
    let nats = Nats::start_with(d, &config);
    let url = format!("tls://127.0.0.1:{}", nats.port);
    let ca = d.join("ca.pem");
    let input = d.join("in.ndjson");
    std::fs::write(&input, records(100)).unwrap();
    let with = |password: &str| {
        let mut command = Command::new(bin_path("nats-pub"));
        command
            .args([
                "-s",
                &url,
                "--retry-for",
                "1s",
                "--user",
                "measpipe",
                "--password",
                password,
            ])
            .arg("--tlsca")
            .arg(&ca)
            .arg("secure.h1")
            .arg(&input);
        command.output().unwrap()
    };
    let out = with("s3cret");
    common::assert_success(&out);
    let out = Command::new(bin_path("nats-sub"))
        .args([
            "-s",
            &url,
            "--user",
            "measpipe",
            "--password",
            "s3cret",
            "--idle",
            "1s",
        ])
        .arg("--tlsca")
        .arg(&ca)
        .arg("secure.>")
        .output()
        .unwrap();
    common::assert_success(&out);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), records(100));

    let out = with("wrong");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!("nats-pub: error: {url}: ")) && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert!(stderr.to_lowercase().contains("authorization"), "{stderr}");
}

/// `n` GridFTP transfers by `host` (an address: the archive takes IP literals) in the
/// netlogger transfer log format, a second apart, each of the same size (so one metadata
/// per host).
fn transfer_log(host: &str, n: usize) -> String {
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z").unwrap();
    (0..n)
        .map(|i| {
            let begin = start + chrono::Duration::seconds(i as i64);
            let end = begin + chrono::Duration::milliseconds(400);
            format!(
                "DATE={} HOST={host} PROG=globus-gridftp-server NL.EVNT=FTP_INFO START={} USER=anonymous FILE=/data/f{i}.bin BUFFER=131072 BLOCK=262144 NBYTES=50000000 VOLUME=/ STREAMS=1 STRIPES=1 DEST=[192.0.2.{}] TYPE=RETR CODE=226 TASKID=none\n",
                end.format("%Y%m%d%H%M%S%.6f"),
                begin.format("%Y%m%d%H%M%S%.6f"),
                if host.ends_with(".10") { 10 } else { 20 }
            )
        })
        .collect()
}

/// The two GridFTP hosts of the pipeline test.
const HOSTS: [&str; 2] = ["198.51.100.10", "198.51.100.11"];

on_both_stores! {
/// The deployment of the README: gridftp-parse | nats-pub on two hosts, nats-sub |
/// esmond-post into esmond-serve on the archive host. Every transfer is stored once, and
/// running every stage again over the same logs stores nothing more. On both archive
/// stores (`name::sqlite`, `name::postgres`): the README's reference deployment.
fn transfers_from_two_hosts_reach_the_archive_once_through_jetstream() {
    let Some((dir, nats)) = one_node() else {
        return;
    };
    let archive = common::serve::Serve::start(&[]);
    let n = 1_500;
    for host in HOSTS {
        std::fs::write(
            dir.path().join(format!("{host}.log")),
            transfer_log(host, n),
        )
        .unwrap();
    }
    let stage = |script: String| common::assert_success(&bash(&script));
    let run_all = || {
        for host in HOSTS {
            stage(format!(
                "{} {} | {} -s {} --ack {} --resume gridftp.{host}",
                bin_path("gridftp-parse").display(),
                dir.path().join(format!("{host}.log")).display(),
                bin_path("nats-pub").display(),
                nats.url(),
                dir.path().join(format!("{host}.ack")).display(),
            ));
        }
        stage(format!(
            "{} -s {} --durable archive --ack {a} --idle 2s 'gridftp.>' \
             | {} --url http://{}/ --key {} --ack {a}",
            bin_path("nats-sub").display(),
            nats.url(),
            bin_path("esmond-post").display(),
            archive.addr(),
            archive.key,
            a = dir.path().join("post.ack").display(),
        ));
    };
    let stored = || -> Vec<(String, usize)> {
        let hosts = gridftp_points(&archive);
        hosts
            .into_iter()
            .map(|(host, times)| (host, times.len()))
            .collect()
    };
    run_all();
    let expected: Vec<(String, usize)> = HOSTS.iter().map(|h| (h.to_string(), n)).collect();
    assert_eq!(stored(), expected);
    // Everything again: the publishers' ack files skip what was confirmed, the durable
    // consumer has nothing new, and the archive is unchanged.
    run_all();
    assert_eq!(stored(), expected);
    assert_eq!(drain(&nats.url(), "gridftp.>").len(), 2 * n);
}
}

/// Runs `script` under bash with pipefail.
fn bash(script: &str) -> std::process::Output {
    Command::new("bash")
        .args(["-c", &format!("set -o pipefail; {script}")])
        .output()
        .unwrap()
}

/// `n` transfers of `host` written to DIR/transfer.log and published with
/// `gridftp-parse | nats-pub --pack PACK` to `gridftp.HOST`.
fn publish_transfers(dir: &Path, nats: &Nats, host: &str, n: usize, pack: usize) {
    let log = dir.join("transfer.log");
    std::fs::write(&log, transfer_log(host, n)).unwrap();
    common::assert_success(&bash(&format!(
        "{} {} | {} -s {} --pack {pack} --ack {} gridftp.{host}",
        bin_path("gridftp-parse").display(),
        log.display(),
        bin_path("nats-pub").display(),
        nats.url(),
        dir.join("pub.ack").display(),
    )));
}

/// With the sink's ack file, nats-sub acknowledges a message only once esmond-post has
/// delivered it: when esmond-post fails (a refused key), what was in the pipe comes again
/// to the next run, and every transfer is stored once.
#[test]
fn a_record_in_the_pipe_when_the_sink_fails_comes_again_with_its_ack() {
    let Some((dir, nats)) = one_node() else {
        return;
    };
    let archive = common::serve::Serve::start(&[]);
    // Few enough that all of them fit in the pipe's buffer before esmond-post fails.
    let n = 40;
    publish_transfers(dir.path(), &nats, HOSTS[0], n, 1);
    let ack = dir.path().join("post.ack");
    let deliver = |key: &str| {
        bash(&format!(
            "{} -s {} --durable archive --ack {a} --ack-wait 2s --idle 4s 'gridftp.>' \
             | {} --url http://{}/ --key {key} --retries 0 --ack {a}",
            bin_path("nats-sub").display(),
            nats.url(),
            bin_path("esmond-post").display(),
            archive.addr(),
            a = ack.display(),
        ))
    };
    let stored = || -> usize { gridftp_points(&archive).iter().map(|h| h.1.len()).sum() };
    let failed = deliver("not-a-key");
    assert_eq!(
        failed.status.code(),
        Some(1),
        "esmond-post refuses to go on"
    );
    assert_eq!(stored(), 0);
    assert!(!ack.exists(), "nothing was acknowledged");
    // The durable consumer acknowledged nothing: the same messages come again (after the
    // 2 s ack wait) and land.
    let out = deliver(&archive.key);
    common::assert_success(&out);
    assert_eq!(stored(), n);
    let trail = std::fs::read_to_string(&ack).unwrap();
    assert!(
        trail.starts_with("nats-sub:") && trail.ends_with(&format!(":{n}\n")),
        "the trail names the last of nats-sub's cursors: {trail:?}"
    );
    // (How many requests, and whether a message was delivered again while the pipe was
    // slow, depends on timing; what is stored does not.)
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.starts_with(&format!(
            "esmond-post: records {n}, points {}, requests ",
            2 * n
        )) && summary.ends_with(", retries 0, duplicates 0, conflicts 0, failures 0\n"),
        "{summary}"
    );
    // Everything was acknowledged: a further run has nothing to deliver.
    let again = deliver(&archive.key);
    common::assert_success(&again);
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        "esmond-post: records 0, points 0, requests 0, retries 0, duplicates 0, conflicts 0, failures 0\n"
    );
    assert_eq!(stored(), n);
}

/// The GridFTP points stored, by host: their times, in order.
fn gridftp_points(archive: &common::serve::Serve) -> Vec<(String, Vec<i64>)> {
    let (status, found) = archive.call("GET", "/perfsonar/archive/?tool-name=gridftp", None, false);
    assert_eq!(status, 200, "{found}");
    let found: serde_json::Value = serde_json::from_str(&found).unwrap();
    let mut hosts: Vec<(String, Vec<i64>)> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let path = format!(
                "/perfsonar/archive/{}/throughput/base?time-start=0&time-end=2000000000&limit=1000000",
                m["metadata-key"].as_str().unwrap()
            );
            let (_, points) = archive.call("GET", &path, None, false);
            let points: serde_json::Value = serde_json::from_str(&points).unwrap();
            let times = points.as_array().unwrap().iter().map(|p| p["ts"].as_i64().unwrap());
            (m["input-source"].as_str().unwrap().to_owned(), times.collect())
        })
        .collect();
    hosts.sort();
    hosts
}

on_both_stores! {
/// `nats-sub --ack | esmond-post --ack` with esmond-post killed with -9 mid-stream: nats-sub
/// sees its reader gone and ends; the rerun delivers the rest, and the archive holds every
/// transfer once. The transfers were published 50 to a message (`nats-pub --pack 50`): each
/// record gets its own cursor, and a message is acknowledged once its last record is.
fn esmond_post_killed_mid_stream_behind_nats_sub_loses_and_repeats_nothing() {
    let Some((dir, nats)) = one_node() else {
        return;
    };
    let archive = common::serve::Serve::start(&[]);
    let n = 20_000;
    let host = HOSTS[0];
    publish_transfers(dir.path(), &nats, host, n, 50);
    let ack = dir.path().join("post.ack");
    let mut sub = Command::new(bin_path("nats-sub"))
        .args([
            "-s",
            &nats.url(),
            "--durable",
            "archive",
            "--ack-wait",
            "2s",
        ])
        .arg("--ack")
        .arg(&ack)
        .arg("gridftp.>")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://{}/", archive.addr());
    let mut post = Command::new(bin_path("esmond-post"))
        .args(["--url", &url, "--key", &archive.key, "--batch-size", "200"])
        .arg("--ack")
        .arg(&ack)
        .stdin(Stdio::from(sub.stdout.take().unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let acked = || -> u64 {
        std::fs::read_to_string(&ack)
            .ok()
            .and_then(|a| a.trim_end().rsplit(':').next()?.parse().ok())
            .unwrap_or(0)
    };
    until("esmond-post acknowledged 2,000 records", || {
        acked() >= 2_000
    });
    post.kill().unwrap();
    post.wait().unwrap();
    let ended = sub.wait_with_output().unwrap();
    assert_eq!(
        (
            ended.status.code(),
            String::from_utf8_lossy(&ended.stderr).as_ref()
        ),
        (Some(0), ""),
        "nats-sub ends quietly once its reader is gone"
    );
    let before = gridftp_points(&archive);
    assert!(
        before[0].1.len() < n,
        "killed mid-stream: {}",
        before[0].1.len()
    );
    // What the killed pipe left unacknowledged comes again once its ack wait has passed,
    // which under load can be after a rerun's --idle: a rerun that ends early has lost
    // nothing (the stream keeps it), so reruns go on until every transfer is stored (at
    // most five; a transfer acknowledged and not stored would never come).
    let rerun = || {
        let out = bash(&format!(
            "{} -s {} --durable archive --ack {a} --idle 4s 'gridftp.>' \
             | {} --url {url} --key {} --ack {a}",
            bin_path("nats-sub").display(),
            nats.url(),
            bin_path("esmond-post").display(),
            archive.key,
            a = ack.display(),
        ));
        common::assert_success(&out);
    };
    for _ in 0..5 {
        rerun();
        if gridftp_points(&archive).iter().map(|h| h.1.len()).sum::<usize>() >= n {
            break;
        }
    }
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z")
        .unwrap()
        .timestamp();
    let every: Vec<i64> = (0..n as i64).map(|i| start + i).collect();
    let stored = gridftp_points(&archive);
    assert!(
        stored == [(host.to_owned(), every.clone())],
        "every transfer once: {} points, the first missing {:?}",
        stored.iter().map(|h| h.1.len()).sum::<usize>(),
        every
            .iter()
            .find(|t| !stored.iter().any(|h| h.1.contains(t)))
    );
}
}

/// The cron pipeline of the README: `gridftp-parse --ack A LOG | nats-pub --ack-cursor A`.
/// A rerun goes on after the last transfer the stream confirmed, through a rotation of
/// the log (the rotated file finished first, then the new one from its start), and a run
/// with nothing new publishes nothing: the stream holds every transfer once, in order.
/// One message per transfer, then 16 to a message (`--pack 16`, its stream sequence kept
/// beside the cursor file).
#[test]
fn a_cron_rerun_goes_on_after_the_confirmed_cursor_across_a_log_rotation() {
    for pack in [1, 16] {
        cron_reruns_across_a_rotation(pack);
    }
}

fn cron_reruns_across_a_rotation(pack: usize) {
    let Some((dir, nats)) = one_node() else {
        return;
    };
    let host = HOSTS[0];
    let all: Vec<String> = transfer_log(host, 1_800)
        .lines()
        .map(|l| format!("{l}\n"))
        .collect();
    let log = dir.path().join("transfer.log");
    let ack = dir.path().join("nats.ack");
    // Each run sends only what is new: nats-pub says nothing (it names the re-sends the
    // stream dropped as duplicates when there are any).
    let run = || {
        let out = bash(&format!(
            "{} --ack {a} {} | {} -s {} --pack {pack} --ack-cursor {a} gridftp.{host}",
            bin_path("gridftp-parse").display(),
            log.display(),
            bin_path("nats-pub").display(),
            nats.url(),
            a = ack.display(),
        ));
        common::assert_success(&out);
        out.stderr
    };
    std::fs::write(&log, all[..1_000].concat()).unwrap();
    assert_eq!(String::from_utf8_lossy(&run()), "");
    assert!(std::fs::read_to_string(&ack)
        .unwrap()
        .starts_with("gridftp"));
    let sequence = dir.path().join("nats.ack.seq");
    if pack > 1 {
        // 63 messages of 16 and the last 8, cut at the input's end.
        assert_eq!(std::fs::read_to_string(&sequence).unwrap(), "63\n");
    } else {
        assert!(!sequence.exists());
    }
    // 500 more, then the log rotated and 300 more in the new one.
    let mut grown = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut grown, all[1_000..1_500].concat().as_bytes()).unwrap();
    drop(grown);
    std::fs::rename(&log, dir.path().join("transfer.log.1")).unwrap();
    std::fs::write(&log, all[1_500..].concat()).unwrap();
    let rotated = String::from_utf8_lossy(&run()).into_owned();
    assert!(
        rotated.starts_with("gridftp-parse: warning: ")
            && rotated.ends_with(" from line 1001 first\n")
            && rotated.lines().count() == 1,
        "{rotated}"
    );
    assert_eq!(String::from_utf8_lossy(&run()), "");
    let files: Vec<String> = drain(&nats.url(), "gridftp.>")
        .iter()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            record["ts"].as_i64().unwrap().to_string()
        })
        .collect();
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z")
        .unwrap()
        .timestamp();
    let every: Vec<String> = (0..1_800).map(|i| (start + i).to_string()).collect();
    assert!(
        files == every,
        "every transfer once, in order: {} messages, the first out of place at {:?}",
        files.len(),
        files.iter().zip(&every).position(|(a, b)| a != b)
    );
}

/// `nats-sub --ack FILE` into a sink that never writes FILE: once every record it may
/// hold waits, and nothing was acknowledged for the ack wait, it says so (once).
#[test]
fn a_sink_that_acknowledges_nothing_is_named() {
    use std::io::BufRead as _;
    let Some((dir, nats)) = one_node() else {
        return;
    };
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, records(100)).unwrap();
    let mut publish = nats_pub(&nats.url());
    common::assert_success(&publish.args(["quiet.h"]).arg(&input).output().unwrap());
    let ack = dir.path().join("never.ack");
    let mut sub = nats_sub(&nats.url())
        .args(["--batch", "10", "--ack-wait", "1s", "--ack"])
        .arg(&ack)
        .arg("quiet.>")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(sub.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    sub.kill().unwrap();
    sub.wait().unwrap();
    assert_eq!(
        line,
        format!(
            "nats-sub: warning: {}: the sink has acknowledged nothing for 1s and 40 records wait for it (is it writing its --ack to this file?)\n",
            ack.display()
        )
    );
}

/// A file of pipelines/ with its paths, binaries and servers moved into this test.
fn localize(pipeline: &str, dir: &Path, nats: &Nats, archive: &str) -> String {
    let text =
        std::fs::read_to_string(common::repo_root().join("pipelines").join(pipeline)).unwrap();
    let mut text = text
        .replace(
            "/var/log/gridftp-transfer.log",
            dir.join("transfer.log").to_str().unwrap(),
        )
        .replace(
            "/var/lib/measpipe-nats-ingest",
            dir.join("ingest").to_str().unwrap(),
        )
        .replace("/var/lib/measpipe", dir.join("lib").to_str().unwrap())
        .replace("nats://127.0.0.1:4222", &nats.url())
        .replace("http://127.0.0.1:8080", archive);
    for program in ["gridftp-parse", "nats-pub", "nats-sub", "esmond-post"] {
        text = text.replace(
            &format!("{program} "),
            &format!("{} ", bin_path(program).display()),
        );
    }
    text
}

/// The shipped pipelines of the reference deployment: pipelines/gridftp-nats.cron on a
/// GridFTP host (run twice around a log rotation) and the command of
/// pipelines/systemd/measpipe-nats-ingest.service on the archive host. The archive ends
/// with every transfer once.
#[test]
fn the_shipped_cron_line_and_ingest_service_deliver_every_transfer_once() {
    if !have_nats() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("lib")).unwrap();
    std::fs::create_dir(dir.path().join("ingest")).unwrap();
    let nats = Nats::start(dir.path(), "n1", None);
    let archive = common::serve::Serve::start(&[]);
    let url = format!("http://{}", archive.addr());
    let cron = localize("gridftp-nats.cron", dir.path(), &nats, &url);
    let entry = cron
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .unwrap();
    // After the schedule (five fields) and the user.
    let command = entry
        .split_whitespace()
        .skip(6)
        .collect::<Vec<_>>()
        .join(" ");
    let all: Vec<String> = transfer_log(HOSTS[0], 1_200)
        .lines()
        .map(|l| format!("{l}\n"))
        .collect();
    let log = dir.path().join("transfer.log");
    let cron_run = || common::assert_success(&bash(&command));
    std::fs::write(&log, all[..700].concat()).unwrap();
    cron_run();
    std::fs::rename(&log, dir.path().join("transfer.log.1")).unwrap();
    std::fs::write(&log, all[700..].concat()).unwrap();
    cron_run();

    let service = localize(
        "systemd/measpipe-nats-ingest.service",
        dir.path(),
        &nats,
        &url,
    );
    let exec = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let mut ingest = Command::new("sh");
    ingest
        .args(["-c", exec])
        .env("ESMOND_KEY", &archive.key)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut ingest, 0);
    let mut ingest = ingest.spawn().unwrap();
    until("the archive has every transfer", || {
        gridftp_points(&archive)
            .first()
            .is_some_and(|h| h.1.len() >= all.len())
    });
    // systemctl stop: SIGTERM to every process of the service.
    // SAFETY: signalling the process group this test made.
    unsafe { libc::kill(-(ingest.id() as i32), libc::SIGTERM) };
    ingest.wait().unwrap();
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z")
        .unwrap()
        .timestamp();
    let every: Vec<i64> = (0..all.len() as i64).map(|i| start + i).collect();
    let stored = gridftp_points(&archive);
    assert!(
        stored == [(HOSTS[0].to_owned(), every)],
        "every transfer once: {:?}",
        stored.iter().map(|h| (&h.0, h.1.len())).collect::<Vec<_>>()
    );
    assert!(std::fs::read_to_string(dir.path().join("ingest/post.ack"))
        .unwrap()
        .starts_with("nats-sub:"));
}

/// nats-sub shows a status line on a terminal (a pty from util-linux `script`) and clears
/// it; off a terminal (every other test) there is none.
#[test]
fn nats_sub_shows_a_status_line_only_on_a_terminal() {
    if !common::have("script", "util-linux's pty runner") {
        return;
    }
    let Some((dir, nats)) = one_node() else {
        return;
    };
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, records(3)).unwrap();
    let mut publish = nats_pub(&nats.url());
    common::assert_success(&publish.args(["shown.h"]).arg(&input).output().unwrap());
    let command = format!(
        "{} -s {} --idle 1s 'shown.>' > /dev/null",
        bin_path("nats-sub").display(),
        nats.url()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("nats-sub: 3 written"), "{shown:?}");
    assert!(shown.ends_with("\x1b[2K"), "the line is cleared: {shown:?}");
}
