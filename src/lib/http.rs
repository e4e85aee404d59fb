//! What every measpipe HTTP server shares, whatever it serves: accepting connections within
//! a cap, bounding slow and idle clients in time, stopping gracefully on SIGINT/SIGTERM,
//! and the access log. esmond-serve and mmstats-serve differ in their routes, not in how
//! they treat a connection, so a flood, a silent client or a descriptor shortage is handled
//! once, here.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Response, Uri};
use axum::Router;

/// How connections are bounded.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more are closed at once (and logged).
    pub max_connections: usize,
    /// Time for a request's headers to arrive (a server may apply it again to the body).
    pub request_timeout: Duration,
    /// An idle keep-alive connection is closed after this.
    pub idle_timeout: Duration,
}

/// Accepts connections until SIGINT or SIGTERM, within the connection cap, each with the
/// header and idle timeouts; then waits for the requests in flight. `notice` hears of
/// refused connections (one line per 100) and failed accepts.
pub async fn accept(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: &Limits,
    notice: fn(&str),
) {
    use axum::extract::ConnectInfo;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let stop = shutdown();
    tokio::pin!(stop);
    let mut refused: u64 = 0;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors or similar: say so, breathe, go on.
                    notice(&format!("warning: accept: {err}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused += 1;
            // One line per 100 refusals: a flood must not flood the log too.
            if refused % 100 == 1 {
                notice(&format!(
                    "warning: {peer}: refused: {} connections open (--max-connections); {refused} refused so far",
                    limits.max_connections
                ));
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service =
            TowerToHyperService::new(router.clone().layer(axum::Extension(ConnectInfo(peer))));
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.request_timeout)
            .keep_alive(true);
        let connection = builder.serve_connection(
            TokioIo::new(Idle::new(stream, limits.idle_timeout)),
            service,
        );
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = watched.await;
            drop(slot);
        });
    }
    graceful.shutdown().await;
}

/// Raises the soft limit on open files to the hard one, so the connection cap (not the
/// descriptor table) is what refuses clients; warns when even that is too low for
/// `connections` plus `reserve` descriptors of the server's own.
pub fn raise_open_files(connections: usize, reserve: u64, notice: fn(&str)) {
    let current = crate::limits::raise_open_files();
    if current < connections as u64 + reserve {
        notice(&format!(
            "warning: open-file limit {current} is below --max-connections {connections} plus the server's own {reserve}; raise it (LimitNOFILE=)"
        ));
    }
}

/// Answers a request with what `answer` makes of its method, URI and target (path and
/// query), then writes its access-log line.
pub async fn logged<F, A>(client: IpAddr, method: Method, uri: Uri, answer: F) -> Response<Body>
where
    F: FnOnce(Method, Uri, String) -> A,
    A: Future<Output = Response<Body>>,
{
    let started = Instant::now();
    let target = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let logged_method = method.clone();
    let response = answer(method, uri, target.clone()).await;
    log(
        client,
        &logged_method,
        &target,
        response.status().as_u16(),
        started,
    );
    response
}

/// One access-log line on stderr: `client "METHOD target" status duration`, formatted
/// first and written with one call (stderr is unbuffered: `eprintln!` writes each piece of
/// the format on its own, some twenty system calls a line).
fn log(client: IpAddr, method: &Method, target: &str, status: u16, started: Instant) {
    let line = format!(
        "{client} \"{method} {target}\" {status} {:.1}ms\n",
        started.elapsed().as_secs_f64() * 1e3
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
}

/// Resolves at the first SIGINT or SIGTERM.
pub async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// A connection that fails its pending read once nothing was read or written for the idle
/// timeout: hyper then closes it. A request being answered writes, so only silence counts.
struct Idle {
    stream: tokio::net::TcpStream,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Idle {
    fn new(stream: tokio::net::TcpStream, timeout: Duration) -> Idle {
        Idle {
            stream,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    fn touch(&mut self) {
        let next = tokio::time::Instant::now() + self.timeout;
        self.deadline.as_mut().reset(next);
    }
}

impl tokio::io::AsyncRead for Idle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(result)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "idle connection",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl tokio::io::AsyncWrite for Idle {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
