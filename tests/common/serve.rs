//! An esmond-serve of a test's own: its data directory, a writer's key, its log.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::{bin_path, BackgroundServer};

/// An esmond-serve with its own data directory, its stderr in `log`.
pub struct Serve {
    pub server: Option<BackgroundServer>,
    pub data: PathBuf,
    pub log: PathBuf,
    pub key: String,
    pub dir: tempfile::TempDir,
}

impl Serve {
    pub fn start(extra: &[&str]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, None, extra)
    }

    /// Starts on `data` (default: a directory in `dir`).
    pub fn start_in(dir: tempfile::TempDir, data: Option<PathBuf>, extra: &[&str]) -> Serve {
        let data = data.unwrap_or_else(|| dir.path().join("archive"));
        let out = Command::new(bin_path("esmond-serve"))
            .arg("--data")
            .arg(&data)
            .args(["token", "add", "writer"])
            .output()
            .unwrap();
        super::assert_success(&out);
        let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let log = dir.path().join("serve.log");
        let mut serve = Serve {
            server: None,
            data,
            log,
            key,
            dir,
        };
        serve.launch(extra);
        serve
    }

    pub fn launch(&mut self, extra: &[&str]) {
        let port = super::free_port();
        let mut command = Command::new(bin_path("esmond-serve"));
        command
            .arg("--data")
            .arg(&self.data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.log)
                    .unwrap(),
            );
        self.server = Some(BackgroundServer::start(
            command,
            port,
            Duration::from_secs(20),
        ));
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.as_ref().unwrap().addr
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        stream
    }

    /// One request on a fresh connection: status and body.
    pub fn call(&self, method: &str, path: &str, body: Option<&str>, key: bool) -> (u16, String) {
        let url = format!("http://{}{path}", self.addr());
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut request = ureq::http::Request::builder().method(method).uri(&url);
        if key {
            request = request.header("Authorization", format!("Token {}", self.key));
        }
        let answer = match body {
            Some(body) => agent.run(
                request
                    .header("Content-Type", "application/json")
                    .body(body.to_owned())
                    .unwrap(),
            ),
            None => agent.run(request.body(()).unwrap()),
        };
        let mut response = answer.unwrap_or_else(|e| {
            panic!(
                "{method} {path}: {e}\nthe server's log:\n{}",
                self.log_text()
            )
        });
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, text)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
