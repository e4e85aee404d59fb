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
    /// Where the archive is (`data`, or a database when the test runs on PostgreSQL).
    pub store: Store,
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
        let store = Store::new(&data);
        let key = store.token("writer");
        let log = dir.path().join("serve.log");
        let mut serve = Serve {
            server: None,
            data,
            store,
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
            .args(&self.store.args)
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

thread_local! {
    /// The PostgreSQL of the running test, when it runs on that store (stopped when the
    /// test's thread ends).
    static POSTGRES: std::cell::RefCell<Option<super::pg::Postgres>> =
        const { std::cell::RefCell::new(None) };
    /// Databases made on it.
    static DATABASES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The store the calling test's archives run on, to name what the test keeps by it
/// (`sqlite` or `postgres`): the two variants of a test run at once.
pub fn store_name() -> &'static str {
    match POSTGRES.with(|pg| pg.borrow().is_some()) {
        true => "postgres",
        false => "sqlite",
    }
}

/// Runs the calling test's archives on a PostgreSQL of its own from now on; false (a skip,
/// a failure under MEASPIPE_REQUIRE_LIVE) when PostgreSQL is not installed.
pub fn on_postgres() -> bool {
    let Some(server) = super::pg::Postgres::start() else {
        return false;
    };
    POSTGRES.with(|pg| *pg.borrow_mut() = Some(server));
    true
}

/// Where an archive is kept: its arguments to esmond-serve, `--data DIR` or, when the test
/// runs on PostgreSQL ([`on_postgres`]), `--store URL` of a database of its own, migrated.
#[derive(Debug, Clone)]
pub struct Store {
    pub args: Vec<std::ffi::OsString>,
    /// The database's URL, on PostgreSQL.
    pub url: Option<String>,
}

impl Store {
    /// The archive in data directory `data`, or in a new database on the test's PostgreSQL.
    pub fn new(data: &std::path::Path) -> Store {
        let url = POSTGRES.with(|pg| {
            pg.borrow().as_ref().map(|pg| {
                let n = DATABASES.with(|d| {
                    d.set(d.get() + 1);
                    d.get()
                });
                pg.create(&format!("archive{n}"))
            })
        });
        match url {
            Some(url) => {
                let out = Command::new(bin_path("esmond-serve"))
                    .args(["--store", &url, "migrate"])
                    .output()
                    .unwrap();
                super::assert_success(&out);
                Store::postgres(&url)
            }
            None => Store {
                args: vec!["--data".into(), data.as_os_str().to_owned()],
                url: None,
            },
        }
    }

    /// The archive in the PostgreSQL database at `url`, as it is.
    pub fn postgres(url: &str) -> Store {
        Store {
            args: vec!["--store".into(), url.into()],
            url: Some(url.to_owned()),
        }
    }

    /// A new key for `user`.
    pub fn token(&self, user: &str) -> String {
        let out = Command::new(bin_path("esmond-serve"))
            .args(&self.args)
            .args(["token", "add", user])
            .output()
            .unwrap();
        super::assert_success(&out);
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}

/// Each test, once on the embedded store and once on PostgreSQL: `name::sqlite` and
/// `name::postgres`. The body starts its archives through [`Store`] (or [`Serve`]).
#[macro_export]
macro_rules! on_both_stores {
    ($($(#[$meta:meta])* fn $name:ident() $body:block)*) => {$(
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn sqlite() $body

            #[test]
            fn postgres() {
                if $crate::common::serve::on_postgres() $body
            }
        }
    )*};
}
