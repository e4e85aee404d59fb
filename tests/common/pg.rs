//! A PostgreSQL server of the test's own: `initdb` in a temporary directory, `postgres`
//! on a free loopback port (as `nobody` when the tests run as root, which PostgreSQL
//! refuses), trust authentication, stopped (fast shutdown) when dropped.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running PostgreSQL server.
pub struct Postgres {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The `postgres` program.
    program: PathBuf,
    dir: tempfile::TempDir,
}

/// PostgreSQL's program `name`: on the PATH, else in Debian's /usr/lib/postgresql/N/bin
/// (the newest N).
fn program(name: &str) -> Option<PathBuf> {
    let on_path = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    on_path.or_else(|| {
        let mut found: Vec<PathBuf> = glob::glob(&format!("/usr/lib/postgresql/*/bin/{name}"))
            .ok()?
            .flatten()
            .collect();
        found.sort();
        found.pop()
    })
}

/// `command` run as nobody when this process is root.
fn as_server_user(program: &std::path::Path) -> Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Command::new(program);
    }
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(program);
    command
}

impl Postgres {
    /// Starts one, or `None` (a skip, a failure under MEASPIPE_REQUIRE_LIVE) when
    /// PostgreSQL is not installed.
    pub fn start() -> Option<Postgres> {
        let (Some(initdb), Some(postgres)) = (program("initdb"), program("postgres")) else {
            assert!(
                std::env::var("MEASPIPE_REQUIRE_LIVE").as_deref() != Ok("1"),
                "PostgreSQL (initdb, postgres) not found: MEASPIPE_REQUIRE_LIVE=1 requires it; .ci/run installs postgresql-15"
            );
            super::skipped("PostgreSQL (initdb, postgres) not found");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let status = Command::new("chown")
                .args(["nobody:nogroup"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let init = as_server_user(&initdb)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let port = super::free_port();
        let child = launch(&postgres, dir.path(), port);
        Some(Postgres {
            child,
            port,
            program: postgres,
            dir,
        })
    }

    /// Stops the server (fast shutdown) and starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.child = launch(&self.program, self.dir.path(), self.port);
    }

    fn stop(&mut self) {
        // SIGINT: fast shutdown (the server is run by setpriv's exec, so its pid is ours).
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    /// A URL of database `db` as the superuser (trust authentication).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `db`; returns its URL.
    pub fn create(&self, db: &str) -> String {
        let mut client = postgres::Client::connect(&self.url("postgres"), postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .unwrap();
        self.url(db)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `postgres` on the cluster in `dir`/data and `port`; returns once it says it is
/// ready (the rest of its log is drained).
fn launch(postgres: &std::path::Path, dir: &std::path::Path, port: u16) -> Child {
    let mut child = as_server_user(postgres)
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
        .arg("-k")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Ready when it says so (its log goes to stderr); the rest of its log is drained.
    let stderr = child.stderr.take().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut ready = Some(ready_tx);
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("database system is ready to accept connections") {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(());
                }
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("postgres never said it was ready");
    child
}
