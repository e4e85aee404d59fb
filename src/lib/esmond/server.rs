//! The HTTP side of the archive: esmond's routes, messages and shapes (esmond.md §1),
//! served by axum. Paths are routed by hand so the script alias, trailing-slash redirects
//! and esmond's exact 400 messages for bad path parts all live in one place.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};

use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use axum::Router;
use serde_json::{json, Map, Value};

use super::pscheduler::{self, Ingest};
use super::store::{
    Check, Condition, Metadata, NewMetadata, NewRun, Outcome, RunFilter, RunOutcome, SeriesQuery,
    Store, StoredRun, SUBJECT_FIELDS,
};
use super::types::{self, Summary};
use super::Failure;
use super::{bulk, timefilter};
use crate::clock::now_seconds;

/// Filters one search may combine (each is a join; SQLite allows 64 tables in a query).
const MAX_FILTERS: usize = 64;

/// Page size when a request gives no `limit` (esmond's `default_limit`).
const DEFAULT_LIMIT: u64 = 1500;

/// How the archive is served.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// URL prefix before `/perfsonar/archive/` (`esmond` on perfSONAR hosts), if any; the
    /// API is also served without it.
    pub script_alias: Option<String>,
    /// Networks whose clients may write without a key.
    pub trusted: Vec<(IpAddr, u8)>,
    /// Largest request body accepted, bytes.
    pub max_body: usize,
    /// Bytes of request bodies read at once, across all connections (a write waits its
    /// turn beyond it).
    pub body_budget: usize,
    /// Connection cap; time for a request's headers, and again for its body, to arrive;
    /// how long an idle keep-alive connection is kept.
    pub limits: crate::http::Limits,
    /// Delete points older than this many days (checked hourly).
    pub retention: super::retention::Policy,
    /// Where notices go (where it listens, what retention deleted, what was refused).
    pub notice: fn(&str),
    /// How pScheduler results sent to `/logstash` are taken in.
    pub pscheduler: Arc<Ingest>,
}

struct App {
    store: Store,
    /// The API's roots: with the script alias (the one shown in URIs) and without.
    roots: Vec<String>,
    trusted: Vec<(IpAddr, u8)>,
    max_body: usize,
    /// Body bytes that may be read at once, in KiB permits.
    bodies: Arc<tokio::sync::Semaphore>,
    request_timeout: Duration,
    pscheduler: Arc<Ingest>,
    notice: fn(&str),
    /// The server's own metrics (`GET /metrics`).
    meters: super::meters::Meters,
}

/// Serves until SIGINT or SIGTERM, then finishes the requests in flight.
pub fn serve(store: Store, config: Config) -> std::io::Result<()> {
    let aliased = match config.script_alias.as_deref().map(|a| a.trim_matches('/')) {
        Some(alias) if !alias.is_empty() => Some(format!("/{alias}/perfsonar/archive")),
        _ => None,
    };
    let roots: Vec<String> = aliased
        .into_iter()
        .chain(Some("/perfsonar/archive".to_owned()))
        .collect();
    no_huge_pages();
    crate::http::raise_open_files(config.limits.max_connections, 64, config.notice);
    if store.full_at_start() {
        (config.notice)(
            "warning: the archive's disk is full: serving reads; writes are refused (507) until space is freed",
        );
    }
    let meters = super::meters::Meters::new();
    let app = Arc::new(App {
        meters,
        store,
        roots,
        trusted: config.trusted.clone(),
        max_body: config.max_body,
        bodies: Arc::new(tokio::sync::Semaphore::new(budget_permits(
            config.body_budget.max(config.max_body),
        ))),
        request_timeout: config.limits.request_timeout,
        pscheduler: config.pscheduler.clone(),
        notice: config.notice,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let address = listener.local_addr()?;
        (config.notice)(&format!("listening on http://{address}{}/", app.roots[0]));
        if config.retention.deletes() {
            (config.notice)(&format!("retention: {}", config.retention.describe()));
            tokio::spawn(retention(
                app.clone(),
                config.retention.clone(),
                config.notice,
            ));
        }
        if app.store.dir().is_none() {
            tokio::spawn(months_ahead(app.clone(), config.notice));
        }
        let kept = app.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                kept.meters.upkeep();
            }
        });
        // Bodies are read (and limited) by the handler, after authentication.
        let router = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::disable())
            .with_state(app);
        crate::http::accept(listener, router, &config.limits, config.notice).await;
        Ok(())
    })
}

/// Body permits for `bytes` (1 KiB each, within the semaphore's limit).
fn budget_permits(bytes: usize) -> usize {
    bytes
        .div_ceil(1024)
        .clamp(1, tokio::sync::Semaphore::MAX_PERMITS)
}

/// Turns transparent huge pages off for the process. Requests allocate and free buffers
/// of tens of kilobytes on many threads, and each fresh 2 MB page the allocator touches was
/// zeroed whole: 18 % of the archive's CPU under mixed load (measured with perf).
fn no_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes integers only and changes a flag of the process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// On PostgreSQL, makes the partitions of the points of this month and the next, hourly
/// (writes then never wait for a month's partition to be made, which locks the points'
/// table for every server until the write commits).
async fn months_ahead(app: Arc<App>, notice: fn(&str)) {
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let store = app.clone();
        let made = tokio::task::spawn_blocking(move || {
            let now = now_seconds();
            store.store.prepare_months(now, now + super::pg::AHEAD)
        })
        .await;
        if let Ok(Err(e)) = made {
            notice(&format!("warning: partitions of the months ahead: {e}"));
        }
    }
}

async fn retention(app: Arc<App>, policy: super::retention::Policy, notice: fn(&str)) {
    let policy = Arc::new(policy);
    loop {
        let (store, kept) = (app.clone(), policy.clone());
        let purged =
            tokio::task::spawn_blocking(move || store.store.purge(&kept, now_seconds())).await;
        match purged {
            Ok(Ok(p)) if p.points + p.runs + p.refusals > 0 => notice(&format!(
                "retention: deleted {} points, {} runs and {} refusals past their time",
                p.points, p.runs, p.refusals
            )),
            Ok(Err(e)) => notice(&format!("warning: retention: {e}")),
            _ => {}
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

/// Every request.
async fn handle(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    let (started, counted, counter) = (std::time::Instant::now(), method.clone(), app.clone());
    let response = crate::http::logged(peer.ip(), method, uri, |method, uri, target| async move {
        respond(&app, peer.ip(), method, uri, headers, body)
            .await
            .unwrap_or_else(|failure| failure_response(&public(failure, &target)))
    })
    .await;
    let took = started.elapsed().as_secs_f64();
    counter.meters.request(&counted, response.status(), took);
    response
}

/// Routes a request: the health check; else credentials (for a write) before a byte of
/// the body is read, then the body within the size limit, the shared body budget and the
/// request timeout, then the API.
async fn respond(
    app: &Arc<App>,
    peer: IpAddr,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let path = uri.path();
    if path == "/health" || path == "/health/" {
        let app = app.clone();
        return blocking(move || health(&app)).await;
    }
    if path == "/metrics" && matches!(method, Method::GET | Method::HEAD) {
        let store = app.clone();
        let sizes = blocking(move || store.store.sizes()).await?;
        let text = app.meters.render(app.store.points_written(), &sizes);
        let mut response = Response::new(Body::from(text));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        return Ok(response);
    }
    if matches!(method, Method::GET | Method::HEAD)
        && (path == "/" || path.starts_with("/dashboard/"))
    {
        let (app, path, query) = (app.clone(), path.to_owned(), uri.query().map(str::to_owned));
        return blocking(move || dashboard(&app, &path, query.as_deref())).await;
    }
    // pScheduler's http archiver (perfSONAR 5) PUTs or POSTs each result here.
    let logstash = matches!(path, "/logstash" | "/logstash/");
    if logstash && !matches!(method, Method::PUT | Method::POST) {
        return Err(Failure {
            status: 405,
            detail: format!("Method \"{method}\" not allowed."),
        });
    }
    let root = match app
        .roots
        .iter()
        .find(|root| path.starts_with(root.as_str()))
    {
        Some(root) => root.clone(),
        None if logstash => String::new(),
        None => return Err(Failure::not_found()),
    };
    if !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
        in_place(|| authenticate(app, &headers, peer))?;
    }
    let too_large = || Failure {
        status: 413,
        detail: format!("Request body larger than {} bytes", app.max_body),
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > app.max_body as u64) {
        return Err(too_large());
    }
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    let expected = match declared {
        Some(n) => n as usize,
        None if chunked => app.max_body,
        None => 0,
    };
    // Bodies share a budget: many large writes at once wait their turn, within the
    // request timeout, instead of holding gigabytes.
    let _budget = if expected > 0 {
        let permits = u32::try_from(budget_permits(expected)).unwrap_or(u32::MAX);
        match tokio::time::timeout(app.request_timeout, app.bodies.acquire_many(permits)).await {
            Ok(Ok(permit)) => Some(permit),
            _ => {
                return Err(Failure {
                    status: 503,
                    detail: "Too many large writes at once; try again".into(),
                })
            }
        }
    } else {
        None
    };
    let body =
        match tokio::time::timeout(app.request_timeout, read_body(body, declared, app.max_body))
            .await
        {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(BodyError::Incomplete)) => {
                return Err(Failure::bad_request("Request body incomplete"))
            }
            Ok(Err(BodyError::TooLarge)) => return Err(too_large()),
            Err(_) => {
                return Err(Failure {
                    status: 408,
                    detail: format!(
                        "Request body not received within {} s",
                        app.request_timeout.as_secs_f64()
                    ),
                })
            }
        };
    let request = Request {
        method,
        uri,
        headers,
        body,
        root,
    };
    if logstash {
        in_place(|| ingest(app, &request))
    } else if matches!(request.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let app = app.clone();
        blocking(move || route(&app, &request)).await
    } else {
        in_place(|| route(app, &request))
    }
}

/// What a client is told of a failure: a server-side one's cause goes to the log only.
fn public(failure: Failure, target: &str) -> Failure {
    if failure.status != 500 {
        return failure;
    }
    eprintln!("esmond-serve: error: {target}: {}", failure.detail);
    Failure::internal("Internal error; the archive's log has the cause")
}

/// Why a body could not be read.
enum BodyError {
    TooLarge,
    Incomplete,
}

/// Reads a body into one buffer of its declared size (no regrowth, no second copy), at
/// most `max` bytes.
async fn read_body(mut body: Body, declared: Option<u64>, max: usize) -> Result<Bytes, BodyError> {
    use http_body_util::BodyExt;
    let mut buffer = Vec::with_capacity(declared.map_or(0, |n| n as usize).min(max));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Incomplete)?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > max {
                return Err(BodyError::TooLarge);
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buffer))
}

/// Runs `f` on the blocking pool (the store is synchronous: SQLite, or PostgreSQL's
/// blocking client, which must not run on a runtime thread).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Err(Failure::internal("request handler failed")))
}

/// Runs `f` on this worker thread, which tokio hands its other tasks away from meanwhile
/// (`block_in_place`). Writes run so: the blocking pool's two hand-offs and wake-ups (for
/// the credentials, then the write) cost a single writer ~8 % of its time; reads stay on
/// the pool, so a write never holds one up (mixed load: read p99 29 ms in place, 15 ms on
/// the pool).
fn in_place<T>(f: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    tokio::task::block_in_place(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)))
        .unwrap_or_else(|_| Err(Failure::internal("request handler failed")))
}

/// `GET /health`: 200 and `{"status": "ok"}` when the archive answers a read.
fn health(app: &App) -> Reply {
    app.store.check()?;
    Ok(json_response(
        StatusCode::OK,
        json!({"status": "ok"}).to_string(),
    ))
}

/// What a dashboard page may be asked for.
#[derive(serde::Deserialize)]
struct PageQuery {
    page: Option<u64>,
    days: Option<u64>,
}

/// A dashboard page: the overview at `/`, a metadata's at `/dashboard/KEY`.
fn dashboard(app: &App, path: &str, query: Option<&str>) -> Reply {
    use super::dashboard;
    let query: PageQuery = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| Failure::bad_request(format!("Invalid query: {e}")))?;
    let html = match path.strip_prefix("/dashboard/") {
        None => dashboard::overview(&app.store, query.page.unwrap_or(1))?,
        Some(key) => dashboard::detail(
            &app.store,
            key.trim_end_matches('/'),
            query.days.unwrap_or(dashboard::DAYS),
        )?
        .ok_or_else(Failure::not_found)?,
    };
    let mut response = Response::new(Body::from(html));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(dashboard::POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

struct Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    /// The API root the request came in under (with the script alias or without).
    root: String,
}

/// A request's query parameters.
struct Params(Vec<(String, String)>);

impl Params {
    /// The first value of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `name` as a count (`limit`, `offset`); `default` when absent or not a number, as
    /// DRF's paginator did.
    fn count(&self, name: &str, default: u64) -> u64 {
        self.get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
}

impl Request {
    fn query(&self) -> Vec<(String, String)> {
        self.uri
            .query()
            .and_then(|q| serde_urlencoded::from_str(q).ok())
            .unwrap_or_default()
    }

    fn params(&self) -> Params {
        Params(self.query())
    }

    /// `http://host` as the client named this server.
    fn origin(&self) -> String {
        let host = self
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("http://{host}")
    }
}

type Reply = Result<Response<Body>, Failure>;

fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let length = HeaderValue::from(body.len());
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, length);
    *response.status_mut() = status;
    // Exactly this: esmond-client 4.2.1 compares the header string for equality.
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn failure_response(failure: &Failure) -> Response<Body> {
    let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, json!({"detail": failure.detail}).to_string());
    if failure.status == 401 {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
    }
    response
}

fn created() -> Reply {
    Ok(json_response(StatusCode::CREATED, "\"\"".to_owned()))
}

fn redirect(to: String) -> Reply {
    let mut response = json_response(StatusCode::MOVED_PERMANENTLY, String::new());
    let location = HeaderValue::from_str(&to).map_err(|e| Failure::internal(e.to_string()))?;
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

fn route(app: &App, request: &Request) -> Reply {
    let path = request.uri.path();
    let root = request.root.as_str();
    let Some(rest) = path.strip_prefix(root) else {
        return Err(Failure::not_found());
    };
    let trailing = rest.ends_with('/');
    let mut parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let aliased;
    if let Some(first) = parts.first_mut() {
        aliased = metadata_key(app, first)?;
        *first = &aliased;
    }
    // HEAD is GET without the body (hyper sends none).
    let method = match request.method {
        Method::HEAD => &Method::GET,
        ref other => other,
    };
    match (parts.as_slice(), method) {
        ([], &Method::GET) if !trailing => redirect(with_query(format!("{root}/"), request)),
        ([], &Method::GET) => list(app, request),
        ([], &Method::POST) => create(app, request),
        (["runs"], &Method::GET) if !trailing => redirect(with_query(format!("{path}/"), request)),
        (["runs"], &Method::GET) => runs(app, request),
        (["runs", "refused"], &Method::GET) => refused(app, request),
        (["runs", id], &Method::GET) => run(app, request, id),
        ([key], &Method::GET) if !trailing => redirect(with_query(format!("{path}/"), request)),
        ([key], &Method::GET) => {
            let metadata = app.store.metadata(key)?.ok_or_else(Failure::not_found)?;
            let body = metadata_json(request, &metadata).to_string();
            Ok(json_response(StatusCode::OK, body))
        }
        (["records"], &Method::POST) => records(app, request),
        (["records", "check"], &Method::POST) => check_records(app, request),
        ([key], &Method::PUT) => bulk(app, key, request),
        ([_], &Method::PATCH) => Err(Failure {
            status: 405,
            detail: "does not support PATCH verb".into(),
        }),
        ([key, event_type], &Method::GET) => {
            let found = app.store.metadata(key)?;
            let objects: Vec<Value> = found
                .iter()
                .flat_map(|m| {
                    m.event_types
                        .iter()
                        .filter(|(et, _)| et == event_type)
                        .map(|et| event_type_json(&request.root, m, et))
                })
                .collect();
            Ok(json_response(
                StatusCode::OK,
                Value::Array(objects).to_string(),
            ))
        }
        ([_, _], &Method::POST) => created(),
        ([key, event_type, "base"], &Method::POST) => post_point(app, key, event_type, request),
        ([_, _, other, ..], &Method::POST) => Err(Failure::bad_request(format!(
            "Only base summary-type allowed for writing. Cannot use {other}"
        ))),
        ([key, event_type, "base"], &Method::GET) => {
            data(app, request, key, event_type, "base", "0")
        }
        ([key, event_type, summaries], &Method::GET) => {
            summary_list(app, root, key, event_type, summaries)
        }
        ([key, event_type, summary, window], &Method::GET) => {
            data(app, request, key, event_type, summary, window)
        }
        (_, &Method::GET | &Method::POST | &Method::PUT) => Err(Failure::not_found()),
        _ => Err(Failure {
            status: 405,
            detail: format!("Method \"{method}\" not allowed."),
        }),
    }
}

fn with_query(path: String, request: &Request) -> String {
    match request.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    }
}

/// Checks write credentials: a Token (or legacy ApiKey) header, or a trusted network.
fn authenticate(app: &App, headers: &HeaderMap, peer: IpAddr) -> Result<(), Failure> {
    let unauthorized = |detail: &str| Failure {
        status: 401,
        detail: detail.into(),
    };
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    match header.and_then(|h| h.split_once(' ')) {
        Some(("Token", key)) => match app.store.token_user(key.trim())? {
            Some(_) => Ok(()),
            None => Err(unauthorized("Invalid token.")),
        },
        // A key as the password of HTTP Basic (pScheduler's http archiver sends the
        // credentials that way): user is the key's owner.
        Some(("Basic", encoded)) => {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok());
            let Some((user, key)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
                return Err(unauthorized("Invalid basic header."));
            };
            match app.store.token_user(key)? {
                Some(owner) if owner == user => Ok(()),
                _ => Err(unauthorized("Invalid username/password.")),
            }
        }
        Some(("ApiKey", credentials)) => {
            let (user, key) = credentials
                .trim()
                .split_once(':')
                .unwrap_or(("", credentials));
            match app.store.token_user(key)? {
                Some(owner) if owner == user => Ok(()),
                _ => Err(unauthorized("Invalid token.")),
            }
        }
        _ if app.trusted.iter().any(|net| contains(*net, peer)) => Ok(()),
        _ => Err(unauthorized(
            "Authentication credentials were not provided.",
        )),
    }
}

/// Whether `ip` is inside `network/prefix`.
pub fn contains((network, prefix): (IpAddr, u8), ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match (network, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// Metadata.

fn metadata_uri(root: &str, key: &str) -> String {
    format!("{root}/{key}/")
}

fn event_type_json(
    root: &str,
    metadata: &Metadata,
    (name, series): &(String, Vec<super::store::SeriesInfo>),
) -> Value {
    let uri = metadata_uri(root, &metadata.key);
    let base = series.iter().find(|s| s.summary == Summary::Base);
    let summaries: Vec<Value> = series
        .iter()
        .filter(|s| s.summary != Summary::Base)
        .map(|s| {
            json!({
                "summary-type": s.summary.name(),
                "summary-window": s.window.to_string(),
                "time-updated": s.updated,
                "uri": format!("{uri}{name}/{}/{}", s.summary.path(), s.window),
            })
        })
        .collect();
    json!({
        "event-type": name,
        "base-uri": format!("{uri}{name}/base"),
        "time-updated": base.and_then(|b| b.updated),
        "summaries": summaries,
    })
}

fn metadata_json(request: &Request, metadata: &Metadata) -> Value {
    let uri = metadata_uri(&request.root, &metadata.key);
    let mut object = Map::new();
    object.insert("url".into(), json!(format!("{}{uri}", request.origin())));
    object.insert("uri".into(), json!(uri));
    object.insert("metadata-key".into(), json!(metadata.key));
    object.insert("subject-type".into(), json!(metadata.subject_type));
    for (name, value) in &metadata.subject {
        object.insert((*name).to_owned(), json!(value));
    }
    for (name, value) in &metadata.parameters {
        object.insert(name.replace('_', "-"), json!(value));
    }
    let event_types: Vec<Value> = metadata
        .event_types
        .iter()
        .map(|et| event_type_json(&request.root, metadata, et))
        .collect();
    object.insert("event-types".into(), Value::Array(event_types));
    Value::Object(object)
}

/// IP addresses for a host filter, by esmond's `dns-match-rule`.
fn addresses(host: &str, rule: &str) -> Result<Vec<String>, Failure> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip.to_string()]);
    }
    let found: Vec<IpAddr> = (host, 80)
        .to_socket_addrs()
        .map(|a| a.map(|s| s.ip()).collect())
        .unwrap_or_default();
    let v4 = found.iter().find(|i| i.is_ipv4()).map(IpAddr::to_string);
    let v6 = found.iter().find(|i| i.is_ipv6()).map(IpAddr::to_string);
    let chosen: Vec<String> = match rule {
        "only-v4" => v4.into_iter().collect(),
        "only-v6" => v6.into_iter().collect(),
        "prefer-v4" => v4.or(v6).into_iter().collect(),
        "prefer-v6" => v6.or(v4).into_iter().collect(),
        _ => v4.into_iter().chain(v6).collect(),
    };
    if chosen.is_empty() {
        return Err(Failure::bad_request(format!(
            "Unable to find address for host {host}"
        )));
    }
    Ok(chosen)
}

fn list(app: &App, request: &Request) -> Reply {
    let params = request.params();
    let get = |name: &str| params.get(name);
    let rule = get("dns-match-rule").unwrap_or("v4v6");
    if !matches!(
        rule,
        "v4v6" | "only-v4" | "only-v6" | "prefer-v4" | "prefer-v6"
    ) {
        return Err(Failure::bad_request(format!(
            "Invalid dns-match-rule parameter {rule}"
        )));
    }
    let mut conditions = Vec::new();
    let range = timefilter::resolve(get, now_seconds()).map_err(Failure::bad_request)?;
    let window = get("summary-window")
        .map(|w| {
            w.parse::<i64>()
                .map_err(|_| Failure::bad_request("Summary window parameter must be an integer"))
        })
        .transpose()?;
    let event_type = get("event-type").map(str::to_owned);
    let summary = get("summary-type").map(str::to_owned);
    if event_type.is_some() || summary.is_some() || window.is_some() || range.is_some() {
        conditions.push(Condition::Series {
            event_type,
            summary,
            window,
            range: range.map(|r| (r.begin, r.end)),
        });
    }
    for (name, value) in &params.0 {
        match name.as_str() {
            "source" | "destination" | "measurement-agent" => {
                let column = if name == "measurement-agent" {
                    "measurement_agent"
                } else if name == "source" {
                    "source"
                } else {
                    "destination"
                };
                conditions.push(Condition::SubjectIn(column, addresses(value, rule)?));
            }
            "tool-name" => conditions.push(Condition::Column("tool_name", value.clone())),
            "input-source" => conditions.push(Condition::Column("input_source", value.clone())),
            "input-destination" => {
                conditions.push(Condition::Column("input_destination", value.clone()))
            }
            "subject-type" => conditions.push(Condition::Column("subject_type", value.clone())),
            "metadata-key" => conditions.push(Condition::Column("key", value.clone())),
            "event-type" | "summary-type" | "summary-window" | "time" | "time-start"
            | "time-end" | "time-range" | "limit" | "offset" | "format" | "dns-match-rule" => {}
            _ => conditions.push(Condition::Parameter(name.clone(), value.clone())),
        }
    }
    if conditions.len() > MAX_FILTERS {
        return Err(Failure::bad_request(format!(
            "Too many filters: {} (at most {MAX_FILTERS})",
            conditions.len()
        )));
    }
    let (limit, offset) = (
        params.count("limit", DEFAULT_LIMIT),
        params.count("offset", 0),
    );
    let (found, total) = app.store.search(&conditions, limit, offset)?;
    let mut objects: Vec<Value> = found.iter().map(|m| metadata_json(request, m)).collect();
    let next = (offset + limit < total).then(|| page_url(request, limit, Some(offset + limit)));
    let previous = (offset > 0).then(|| {
        let back = offset.saturating_sub(limit);
        page_url(request, limit, (back > 0).then_some(back))
    });
    if let Some(Value::Object(first)) = objects.first_mut() {
        first.insert("metadata-count-total".into(), json!(total));
        first.insert("metadata-previous-page".into(), json!(previous));
        first.insert("metadata-next-page".into(), json!(next));
    }
    let mut response = json_response(StatusCode::OK, Value::Array(objects).to_string());
    link_header(&mut response, next, previous);
    Ok(response)
}

/// The request's URL with `limit` and `offset` replaced (no offset: removed).
fn page_url(request: &Request, limit: u64, offset: Option<u64>) -> String {
    let mut query: Vec<(String, String)> = request
        .query()
        .into_iter()
        .filter(|(k, _)| k != "limit" && k != "offset")
        .collect();
    query.push(("limit".into(), limit.to_string()));
    if let Some(offset) = offset {
        query.push(("offset".into(), offset.to_string()));
    }
    let encoded = serde_urlencoded::to_string(&query).unwrap_or_default();
    format!("{}{}?{encoded}", request.origin(), request.uri.path())
}

fn link_header(response: &mut Response<Body>, next: Option<String>, previous: Option<String>) {
    let links: Vec<String> = next
        .map(|n| format!("<{n}>; rel=\"next\""))
        .into_iter()
        .chain(previous.map(|p| format!("<{p}>; rel=\"prev\"")))
        .collect();
    if let Ok(value) = HeaderValue::from_str(&links.join(", ")) {
        if !links.is_empty() {
            response.headers_mut().insert(header::LINK, value);
        }
    }
}

fn parse_body(request: &Request) -> Result<Value, Failure> {
    serde_json::from_slice(&request.body)
        .map_err(|e| Failure::bad_request(format!("JSON parse error - {e}")))
}

/// Text of a free-form parameter value, as esmond stored it: Python 2's `unicode()` of
/// the decoded value (`19.0`, `True`, `None`, floats to 12 significant digits, lists and
/// dicts as their repr).
fn parameter_text(value: &Value) -> String {
    let mut out = Vec::new();
    match value {
        Value::String(s) => return s.clone(),
        Value::Number(n) if n.is_f64() => {
            super::python::write_str(&mut out, n.as_f64().unwrap_or(f64::NAN))
        }
        Value::Number(n) => return n.to_string(),
        other => super::python::write_value_repr(&mut out, other),
    }
    String::from_utf8(out).unwrap_or_default()
}

fn create(app: &App, request: &Request) -> Reply {
    let body = parse_body(request)?;
    let new = new_metadata(&body)?;
    let (key, _) = app.store.create_metadata(&new)?;
    let metadata = app.store.metadata(&key)?.ok_or_else(Failure::not_found)?;
    let body = metadata_json(request, &metadata);
    let mut response = json_response(StatusCode::CREATED, body.to_string());
    if let Some(Ok(url)) = body
        .get("url")
        .and_then(Value::as_str)
        .map(HeaderValue::from_str)
    {
        response.headers_mut().insert(header::LOCATION, url);
    }
    Ok(response)
}

/// A metadata POST's body, validated with esmond's messages.
fn new_metadata(body: &Value) -> Result<NewMetadata, Failure> {
    let object = body
        .as_object()
        .ok_or_else(|| Failure::bad_request("JSON parse error - expected a JSON object"))?;
    if object.contains_key("metadata-key") {
        return Err(Failure::bad_request(
            "metadata-key is not allowed to be specified",
        ));
    }
    let subject_type = object
        .get("subject-type")
        .ok_or_else(|| Failure::bad_request("Missing subject-type field in request"))?;
    let subject_type = parameter_text(subject_type);
    if !matches!(subject_type.as_str(), "point-to-point" | "network-element") {
        return Err(Failure::bad_request(format!(
            "Invalid subject type {subject_type}"
        )));
    }
    let event_types = object
        .get("event-types")
        .ok_or_else(|| Failure::bad_request("Missing event-types field in request"))?;
    let event_types = event_types
        .as_array()
        .ok_or_else(|| Failure::bad_request("event_types must be a list"))?;
    let mut new = NewMetadata {
        subject_type,
        ..NewMetadata::default()
    };
    for item in event_types {
        let name = item
            .get("event-type")
            .and_then(Value::as_str)
            .ok_or_else(|| Failure::bad_request("No event-type defined"))?;
        let storage = types::storage(name)
            .ok_or_else(|| Failure::bad_request(format!("Invalid event-type {name}")))?;
        let mut summaries = Vec::new();
        for summary in item
            .get("summaries")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let kind = summary
                .get("summary-type")
                .ok_or_else(|| Failure::bad_request("Summary must contain summary-type"))?;
            let kind = parameter_text(kind);
            let parsed = Summary::from_name(&kind)
                .ok_or_else(|| Failure::bad_request(format!("Invalid summary type '{kind}'")))?;
            if parsed == Summary::Base {
                continue;
            }
            if !storage.allows(parsed) {
                return Err(Failure::bad_request(format!(
                    "Summary type {kind} not allowed for event-type {name}"
                )));
            }
            let window = summary
                .get("summary-window")
                .ok_or_else(|| Failure::bad_request("Summary must contain summary-window"))?;
            let window = parameter_text(window)
                .trim()
                .parse::<i64>()
                .map_err(|_| Failure::bad_request("Summary window must be an integer"))?;
            summaries.push((parsed, window));
        }
        new.event_types.push((name.to_owned(), summaries));
    }
    if new.event_types.is_empty() {
        return Err(Failure::bad_request("No event-type defined"));
    }
    for (key, value) in object {
        if key == "subject-type" || key == "event-types" {
            continue;
        }
        let text = parameter_text(value);
        match SUBJECT_FIELDS.iter().find(|(name, _)| name == key) {
            Some((name, _)) => {
                if matches!(*name, "source" | "destination" | "measurement-agent")
                    && text.parse::<IpAddr>().is_err()
                {
                    return Err(Failure::bad_request(format!(
                        "{name} must be an IP address, not '{text}'"
                    )));
                }
                new.subject.push((name, text));
            }
            None => new.parameters.push((key.clone(), text)),
        }
    }
    Ok(new)
}

// ---------------------------------------------------------------------------------------
// Data.

/// Python's `long()` of a timestamp.
fn timestamp(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 9.2e18)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn post_point(app: &App, key: &str, event_type: &str, request: &Request) -> Reply {
    let json_type = request
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_type {
        return Err(Failure::bad_request(
            "Must post content-type: application/json header and json-formatted payload.",
        ));
    }
    if request.body.is_empty() {
        return Err(Failure::bad_request("No data payload POSTed."));
    }
    let payload: Value = serde_json::from_slice(&request.body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| {
            Failure::bad_request(format!(
                "POST data payload could not be decoded to a JSON object - given: {}",
                String::from_utf8_lossy(&request.body)
            ))
        })?;
    let ts = payload
        .get("ts")
        .ok_or_else(|| Failure::bad_request("Required field ts not provided in request"))?;
    let ts = timestamp(ts).ok_or_else(|| Failure::bad_request("Time must be a unix timestamp"))?;
    let value = payload
        .get("val")
        .ok_or_else(|| Failure::bad_request("Required field val not provided in request"))?;
    if types::storage(event_type).is_none() {
        return Err(Failure::bad_request(format!(
            "Invalid event type {event_type}"
        )));
    }
    app.store.write_points(
        key,
        [Ok(vec![(
            ts,
            std::borrow::Cow::Borrowed(event_type),
            value.clone(),
        )])],
    )?;
    created()
}

fn bulk(app: &App, key: &str, request: &Request) -> Reply {
    // A body that begins `{"data": [` is read in one pass from there, the body's tail
    // checked at the array's end; any other is first read whole, for esmond's messages.
    let items = match std::str::from_utf8(&request.body)
        .ok()
        .and_then(Items::body)
    {
        Some(items) => items,
        None => {
            let body: bulk::InBody = serde_json::from_slice(&request.body).map_err(json_error)?;
            Items::array(data_array(body)?)
        }
    };
    // Each item is read as it is written, in the write's one transaction (a refused item
    // rolls it all back): no copy of the points is ever held.
    write_overlapped(app, key, items)?;
    created()
}

/// esmond's answer to a body that is not JSON.
fn json_error(e: serde_json::Error) -> Failure {
    Failure::bad_request(format!("JSON parse error - {e}"))
}

/// A bulk body's `data` array, or esmond's message for its absence.
fn data_array(body: bulk::InBody<'_>) -> Result<&str, Failure> {
    let data = body
        .data
        .ok_or_else(|| Failure::bad_request("Request must contain 'data' element"))?;
    if !data.get().starts_with('[') {
        return Err(Failure::bad_request("The 'data' element must be an array"));
    }
    Ok(data.get())
}

/// Where the items of a body that begins `{"data": [` (JSON whitespace allowed) begin.
fn plain_start(body: &str) -> Option<usize> {
    let mut at = 0;
    for token in ["{", "\"data\"", ":", "["] {
        at += skip_space(&body[at..]);
        body[at..].starts_with(token).then_some(())?;
        at += token.len();
    }
    Some(at)
}

/// A bulk body at least this large is parsed on a thread of its own while the writer
/// writes what is parsed: one client's PUT then waits for the longer of the two, not for
/// both.
const OVERLAP_BYTES: usize = 16 * 1024;
/// Points handed from the parsing thread to the writer at once.
const CHUNK: usize = 128;

/// Writes a bulk body's items into metadata `key`; a large body's are parsed meanwhile on
/// a scoped thread, in chunks through a bounded channel (a refused item still rolls the
/// whole write back, and a failed write stops the parse).
fn write_overlapped(app: &App, key: &str, items: Items<'_>) -> Result<(), Failure> {
    if items.text.len() < OVERLAP_BYTES {
        return app.store.write_points(key, items);
    }
    // Nothing read yet: a copy costs two words.
    let fallback = items.clone();
    std::thread::scope(|scope| {
        let (send, receive) = std::sync::mpsc::sync_channel(16);
        let parse = move || {
            let mut chunk = Vec::with_capacity(CHUNK);
            for item in items {
                match item {
                    Ok(points) => chunk.extend(points),
                    Err(failure) => {
                        let _ = send.send(Ok(chunk));
                        let _ = send.send(Err(failure));
                        return;
                    }
                }
                if chunk.len() >= CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    if send.send(Ok(full)).is_err() {
                        return;
                    }
                }
            }
            let _ = send.send(Ok(chunk));
        };
        match std::thread::Builder::new()
            .name("bulk-parse".into())
            .spawn_scoped(scope, parse)
        {
            Ok(_) => app.store.write_points(key, receive.iter()),
            // No thread to be had (the process's limit): parsed here as a small body is.
            Err(_) => app.store.write_points(key, fallback),
        }
    })
}

/// The items of a bulk body's `data` array, each parsed in one pass as it is written. At
/// the first that is not plainly valid the rest are read the careful way
/// ([`item_points`]), for esmond's message on what is wrong.
#[derive(Clone)]
struct Items<'a> {
    /// The array's text (starting with `[`), or the whole body when it began `{"data": [`.
    text: &'a str,
    /// Whether `text` is the whole body: what follows the array must then close it.
    whole: bool,
    /// Where the next item begins (after the `[` or a `,`).
    at: usize,
    /// The next item's position in the array.
    index: usize,
    /// All items read the careful way, once one was not plainly valid.
    careful: Option<Result<Vec<bulk::InItem<'a>>, Failure>>,
    done: bool,
}

/// A bulk item as the one-pass parse takes it.
type PlainItem<'a> = bulk::Item<Value, Vec<bulk::Point<&'a str, Value>>>;

impl<'a> Items<'a> {
    /// The items of a `data` array's text (which starts with `[`).
    fn array(text: &'a str) -> Items<'a> {
        Items {
            text,
            whole: false,
            at: 1,
            index: 0,
            careful: None,
            done: false,
        }
    }

    /// The items of a whole body, if it begins `{"data": [` ([`plain_start`]).
    fn body(body: &'a str) -> Option<Items<'a>> {
        Some(Items {
            whole: true,
            at: plain_start(body)?,
            ..Items::array(body)
        })
    }

    /// Whether the array that ends before `after` ends the text as well: always for an
    /// array's text; for a whole body, when only its closing `}` follows (anything else,
    /// another key say, is left to the careful reading).
    fn ends(&self, after: usize) -> bool {
        !self.whole || self.text[after..].trim_matches([' ', '\t', '\n', '\r']) == "}"
    }

    /// Every item, read the careful way.
    fn read_carefully(&self) -> Result<Vec<bulk::InItem<'a>>, Failure> {
        let array = match self.whole {
            true => data_array(serde_json::from_str(self.text).map_err(json_error)?)?,
            false => self.text,
        };
        serde_json::from_str(array).map_err(json_error)
    }

    /// The next item in one pass, if it is plainly valid; where the one after begins and
    /// whether it was the last.
    fn plain(&self) -> Option<(Vec<super::store::Point<'a>>, usize, bool)> {
        let rest = &self.text[self.at..];
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<PlainItem<'a>>();
        let item = stream.next()?.ok()?;
        let ts = timestamp(&item.ts)?;
        let mut end = self.at + stream.byte_offset();
        end += skip_space(&self.text[end..]);
        let last = match self.text.as_bytes().get(end) {
            Some(b',') => false,
            Some(b']') if self.ends(end + 1) => true,
            _ => return None,
        };
        let points = item
            .val
            .into_iter()
            .map(|p| {
                (!p.val.is_null()).then_some((ts, std::borrow::Cow::Borrowed(p.event_type), p.val))
            })
            .collect::<Option<Vec<_>>>()?;
        Some((points, end + 1, last))
    }
}

/// The length of the JSON whitespace `text` begins with.
fn skip_space(text: &str) -> usize {
    text.bytes()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count()
}

impl<'a> Iterator for Items<'a> {
    type Item = Result<Vec<super::store::Point<'a>>, Failure>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.careful.is_none() {
            if self.index == 0 {
                let end = self.at + skip_space(&self.text[self.at..]);
                if self.text.as_bytes().get(end) == Some(&b']') && self.ends(end + 1) {
                    self.done = true;
                    return None;
                }
            }
            if let Some((points, next, last)) = self.plain() {
                (self.at, self.done) = (next, last);
                self.index += 1;
                return Some(Ok(points));
            }
            self.careful = Some(self.read_carefully());
        }
        let item = match self.careful.as_ref()? {
            Err(failure) => Err(failure.clone()),
            Ok(items) => {
                let item = items.get(self.index)?;
                item_points(self.index, item)
            }
        };
        self.index += 1;
        if item.is_err() {
            self.done = true;
        }
        Some(item)
    }
}

/// One bulk item's points, with esmond's messages for what is missing or malformed.
fn item_points<'a>(
    i: usize,
    item: &bulk::InItem<'a>,
) -> Result<Vec<super::store::Point<'a>>, Failure> {
    let ts = item.ts.ok_or_else(|| {
        Failure::bad_request(format!(
            "Missing ts field in provided data list at position {i}"
        ))
    })?;
    let ts = serde_json::from_str(ts.get())
        .ok()
        .as_ref()
        .and_then(timestamp)
        .ok_or_else(|| Failure::bad_request("Time must be a unix timestamp"))?;
    let values = item.val.ok_or_else(|| {
        Failure::bad_request(format!(
            "Missing val field in provided data list at position {i}"
        ))
    })?;
    let values: Vec<bulk::InPoint> = serde_json::from_str(values.get())
        .ok()
        .filter(|_| values.get().starts_with('['))
        .ok_or_else(|| {
            Failure::bad_request(format!(
                "'val' field must be an array in provided data list at position {i}"
            ))
        })?;
    values
        .into_iter()
        .enumerate()
        .map(|(j, value)| {
            let event_type = value.event_type.ok_or_else(|| {
                Failure::bad_request(format!(
                    "Missing event-type field at data item {i} in value {j} "
                ))
            })?;
            let val = value.val.ok_or_else(|| {
                Failure::bad_request(format!("Missing val field at data item {i} in value {j} "))
            })?;
            let val: Value = serde_json::from_str(val.get()).map_err(json_error)?;
            Ok((ts, event_type, val))
        })
        .collect()
}

/// One measurement record of a `records` body: its metadata and points, or which part
/// is refused and why.
type ParsedRecord<'a> =
    Result<(NewMetadata, Vec<super::store::Point<'a>>), (&'static str, Failure)>;

/// The records of a `records` body (one per non-blank line).
fn parse_records(body: &[u8]) -> Vec<ParsedRecord<'_>> {
    let lines: Vec<&[u8]> = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .collect();
    lines
        .iter()
        .map(|line| {
            let record: crate::record::RawMeasurement =
                serde_json::from_slice(line).map_err(|e| {
                    (
                        "record",
                        Failure::bad_request(format!("not a measurement record: {e}")),
                    )
                })?;
            let metadata: Value = serde_json::from_str(record.metadata.get()).map_err(|e| {
                (
                    "metadata",
                    Failure::bad_request(format!("JSON parse error - {e}")),
                )
            })?;
            let new = new_metadata(&metadata).map_err(|f| ("metadata", f))?;
            let points = record
                .values
                .iter()
                .map(|(event_type, val)| {
                    let val: Value = serde_json::from_str(val.get()).map_err(|e| {
                        (
                            "point",
                            Failure::bad_request(format!("JSON parse error - {e}")),
                        )
                    })?;
                    Ok((record.ts, event_type.0.clone(), val))
                })
                .collect::<Result<Vec<_>, (&'static str, Failure)>>()?;
            Ok((new, points))
        })
        .collect()
}

/// `POST {root}/records/check/`: whether each measurement record (one per line, as
/// `records` takes them) is in the archive, writing nothing. One NDJSON line per record:
/// `{"line": N, "status": "present" | "missing" | "different" | "refused",
/// "metadata-key": K, "detail": D}`.
fn check_records(app: &App, request: &Request) -> Reply {
    let checks = app.store.check_records(parse_records(&request.body))?;
    let mut answer = String::with_capacity(checks.len() * 64);
    for (i, check) in checks.iter().enumerate() {
        let line = i + 1;
        let object = match check {
            Check::Present(key) => json!({"line": line, "status": "present", "metadata-key": key}),
            Check::Missing(detail) => json!({"line": line, "status": "missing", "detail": detail}),
            Check::Different(detail) => {
                json!({"line": line, "status": "different", "detail": detail})
            }
            Check::Refused(part, detail) => {
                json!({"line": line, "status": "refused", "part": part, "detail": detail})
            }
        };
        answer.push_str(&object.to_string());
        answer.push('\n');
    }
    let mut response = json_response(StatusCode::OK, answer);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

/// `POST {root}/records/`, measpipe's batch write: measurement records (records.md, one
/// per line) of any metadata, in one transaction. Each metadata is found or created as a
/// metadata POST would, each record's points written as a bulk PUT would. The answer is
/// one NDJSON line per input line, in order: `{"line": N, "status": "stored" |
/// "duplicate" | "conflict" | "refused", "metadata-key": K, "part": P, "detail": D}` (`part`:
/// what was refused, `record`, `metadata` or `point`; a refused or
/// conflicting record is not stored, and does not stop the others). Sending the same
/// records again answers `duplicate`.
fn records(app: &App, request: &Request) -> Reply {
    let parsed = parse_records(&request.body);
    // Parsed before the writer is taken: another request's records are written meanwhile.
    let outcomes = app.store.write_records(parsed)?;
    let mut answer = String::with_capacity(outcomes.len() * 64);
    for (i, outcome) in outcomes.iter().enumerate() {
        use std::fmt::Write;
        let line = i + 1;
        // Keys are hex digits: no escaping (and no value built) for the common answers.
        let _ = match outcome {
            Outcome::Stored(key) => writeln!(
                answer,
                r#"{{"line":{line},"status":"stored","metadata-key":"{key}"}}"#
            ),
            Outcome::Duplicate(key) => writeln!(
                answer,
                r#"{{"line":{line},"status":"duplicate","metadata-key":"{key}"}}"#
            ),
            Outcome::Conflict(detail) => writeln!(
                answer,
                "{}",
                json!({"line": line, "status": "conflict", "detail": detail})
            ),
            Outcome::Refused(part, detail) => writeln!(
                answer,
                "{}",
                json!({"line": line, "status": "refused", "part": part, "detail": detail})
            ),
        };
    }
    let mut response = json_response(StatusCode::OK, answer);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

/// `PUT`/`POST /logstash`: one pScheduler result as perfSONAR 5's http archiver sends it
/// (pscheduler.md §1.3, §4.1). It is stored as pScheduler's esmond archiver would have
/// posted it (metadata, event types, summaries, the point; §2) in one transaction with the
/// run itself (its hrefs, test checksum, observer and the body without the task), and
/// answered `200 ok` (as Logstash answers) once on disk. A run already stored is answered
/// 200 again and not written twice; a body that is not a pScheduler result is 400, one
/// whose hosts cannot be resolved 422 (pScheduler retries neither, unless its archive spec
/// has a retry-policy).
fn ingest(app: &App, request: &Request) -> Reply {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let href = body
        .get("run")
        .and_then(|r| r.get("href"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    // Refusals are logged, and noted for esmond-audit when the run can be named.
    let refusal = |run: &str, failure: Failure| {
        (app.notice)(&format!(
            "logstash: refused run {run}: {} ({})",
            failure.detail, failure.status
        ));
        if run != "?" {
            if let Err(e) = app
                .store
                .note_refusal(run, href.as_deref(), now_seconds(), &failure)
            {
                (app.notice)(&format!(
                    "warning: noting the refusal of {run}: {}",
                    e.detail
                ));
            }
        }
        failure
    };
    if body.is_null() {
        let e = serde_json::from_slice::<Value>(&request.body)
            .err()
            .map_or_else(|| "the body is null".to_owned(), |e| e.to_string());
        return Err(refusal(
            "?",
            Failure::bad_request(format!("JSON parse error - {e}")),
        ));
    }
    let to_failure = |r: pscheduler::Refusal| Failure {
        status: r.status,
        detail: r.detail,
    };
    let id = body.get("id").and_then(Value::as_str).unwrap_or("?");
    let ingest = &app.pscheduler;
    let mapped = pscheduler::map(&body, &ingest.resolver, &ingest.options)
        .map_err(|r| refusal(id, to_failure(r)))?;
    let extra = if ingest.strict_esmond {
        Vec::new()
    } else {
        mapped
            .unregistered()
            .into_iter()
            .filter(|et| types::storage(et).is_some())
            .map(|et| (et, Vec::new()))
            .collect()
    };
    let pscheduler::Mapped {
        run,
        metadata,
        values,
    } = mapped;
    let metadata = new_metadata(&Value::Object(metadata)).map_err(|f| refusal(&run.id, f))?;
    let kept = pscheduler::kept(body, ingest.max_diags).to_string();
    let observer = request
        .headers
        .get("x-ps-observer")
        .and_then(|v| v.to_str().ok());
    let new = NewRun {
        id: &run.id,
        metadata,
        extra,
        ts: run.ts,
        values,
        received: now_seconds(),
        test_type: &run.test_type,
        tool: &run.tool,
        succeeded: run.succeeded,
        run_href: run.run_href.as_deref(),
        task_href: run.task_href.as_deref(),
        test_checksum: &run.test_checksum,
        observer,
        body: &kept,
    };
    match app.store.write_run(&new).map_err(|f| match f.status {
        400 => refusal(&run.id, f),
        _ => f,
    })? {
        RunOutcome::Stored(key, collided) if !collided.is_empty() => (app.notice)(&format!(
            "logstash: run {} stored in {key}, but {} already held another value at {} (kept; the archiver's 409)",
            run.id,
            collided.join(", "),
            run.ts
        )),
        _ => {}
    }
    let mut response = Response::new(Body::from("ok"));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

/// `GET {root}/runs/refused/?run=HREF-OR-ID`: why that run was refused, when it was
/// (`[{"run", "status", "detail", "received"}]`), else `[]`.
fn refused(app: &App, request: &Request) -> Reply {
    let params = request.params();
    let run = params
        .get("run")
        .ok_or_else(|| Failure::bad_request("run (a run href or id) is required"))?;
    let found = app.store.refusal(run)?;
    let objects: Vec<Value> = found
        .into_iter()
        .map(|(status, detail, received)| {
            json!({"run": run, "status": status, "detail": detail, "received": received})
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        Value::Array(objects).to_string(),
    ))
}

/// A stored run as the API shows it (`body`: with what was kept of its body).
fn run_json(root: &str, run: &StoredRun, body: bool) -> Value {
    let mut object = json!({
        "id": run.id,
        "metadata-key": run.metadata_key,
        "metadata-uri": metadata_uri(root, &run.metadata_key),
        "uri": format!("{root}/runs/{}/", run.id),
        "ts": run.ts,
        "received": run.received,
        "test-type": run.test_type,
        "tool": run.tool,
        "succeeded": run.succeeded,
        "run-href": run.run_href,
        "task-href": run.task_href,
        "test-checksum": run.test_checksum,
        "observer": run.observer,
        "collided": run
            .collided
            .as_deref()
            .and_then(|c| serde_json::from_str::<Value>(c).ok())
            .unwrap_or(json!([])),
    });
    if body {
        object["body"] = serde_json::from_str(&run.body).unwrap_or(Value::Null);
    }
    object
}

/// `GET {root}/runs/`: the pScheduler runs stored, newest first, by `run-href`,
/// `test-checksum`, `metadata-key`, `id` or `time-start`; `limit` (default 1000) and
/// `offset` page them.
fn runs(app: &App, request: &Request) -> Reply {
    let params = request.params();
    let text = |name: &str| params.get(name).map(str::to_owned);
    let since = match params.get("time-start") {
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| Failure::bad_request("time-start must be a unix timestamp"))?,
        ),
        None => None,
    };
    let filter = RunFilter {
        id: text("id"),
        run_href: text("run-href"),
        test_checksum: text("test-checksum"),
        metadata_key: text("metadata-key"),
        since,
    };
    let (limit, offset) = (params.count("limit", 1000), params.count("offset", 0));
    let (found, total) = app.store.runs(&filter, limit, offset)?;
    let objects: Vec<Value> = found
        .iter()
        .map(|run| run_json(&request.root, run, false))
        .collect();
    let mut response = json_response(StatusCode::OK, Value::Array(objects).to_string());
    let next = (offset + limit < total).then(|| page_url(request, limit, Some(offset + limit)));
    let previous = (offset > 0).then(|| {
        let back = offset.saturating_sub(limit);
        page_url(request, limit, (back > 0).then_some(back))
    });
    link_header(&mut response, next, previous);
    if let Ok(total) = HeaderValue::from_str(&total.to_string()) {
        response.headers_mut().insert("x-total-count", total);
    }
    Ok(response)
}

/// `GET {root}/runs/ID/`: one stored run with what was kept of its body.
fn run(app: &App, request: &Request, id: &str) -> Reply {
    let filter = RunFilter {
        id: Some(id.to_owned()),
        ..RunFilter::default()
    };
    let (found, _) = app.store.runs(&filter, 1, 0)?;
    let run = found.first().ok_or_else(Failure::not_found)?;
    Ok(json_response(
        StatusCode::OK,
        run_json(&request.root, run, true).to_string(),
    ))
}

/// A metadata key in a path: perfSONAR Logstash's 64-hex test checksum (elmond's
/// metadata key) stands for the metadata of the newest run with it.
fn metadata_key<'k>(app: &App, key: &'k str) -> Result<std::borrow::Cow<'k, str>, Failure> {
    if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(std::borrow::Cow::Borrowed(key));
    }
    let filter = RunFilter {
        test_checksum: Some(key.to_ascii_lowercase()),
        ..RunFilter::default()
    };
    let (found, _) = app.store.runs(&filter, 1, 0)?;
    Ok(found
        .into_iter()
        .next()
        .map_or(std::borrow::Cow::Borrowed(key), |run| {
            std::borrow::Cow::Owned(run.metadata_key)
        }))
}

fn summary_list(app: &App, root: &str, key: &str, event_type: &str, summaries: &str) -> Reply {
    let summary = Summary::from_path(summaries)
        .filter(|s| *s != Summary::Base)
        .ok_or_else(|| Failure::bad_request(format!("Invalid summary type '{summaries}'")))?;
    let metadata = app.store.metadata(key)?.ok_or_else(Failure::not_found)?;
    let objects: Vec<Value> = metadata
        .event_types
        .iter()
        .filter(|(et, _)| et == event_type)
        .flat_map(|et| {
            event_type_json(root, &metadata, et)["summaries"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|s| s["summary-type"] == summary.name())
        .collect();
    if objects.is_empty() {
        return Err(Failure::not_found());
    }
    Ok(json_response(
        StatusCode::OK,
        Value::Array(objects).to_string(),
    ))
}

fn data(
    app: &App,
    request: &Request,
    key: &str,
    event_type: &str,
    summary: &str,
    window: &str,
) -> Reply {
    if types::storage(event_type).is_none() {
        return Err(Failure::bad_request(format!(
            "Unsupported event type '{event_type}' provided"
        )));
    }
    let summary = Summary::from_path(summary)
        .ok_or_else(|| Failure::bad_request(format!("Invalid summary type '{summary}'")))?;
    let window: i64 = window
        .parse()
        .map_err(|_| Failure::bad_request("Summary window parameter must be an integer"))?;
    let params = request.params();
    let get = |name: &str| params.get(name);
    let now = now_seconds();
    let range = timefilter::resolve(get, now)
        .map_err(Failure::bad_request)?
        .map_or((0, now), |r| (r.begin, r.end.unwrap_or(now + 3600)));
    let (limit, offset) = (
        params.count("limit", DEFAULT_LIMIT),
        params.count("offset", 0),
    );
    let body = app.store.points(&SeriesQuery {
        key,
        event_type,
        summary,
        window,
        begin: range.0,
        end: range.1,
        limit,
        offset,
    })?;
    Ok(json_response(StatusCode::OK, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// All the points of a bulk body's items, or the first failure.
    type Read<'a> = Result<Vec<super::super::store::Point<'a>>, String>;

    /// A body's items read the careful way only.
    fn careful(text: &str) -> Read<'_> {
        let items: Vec<bulk::InItem> =
            serde_json::from_str(text).map_err(|e| format!("JSON parse error - {e}"))?;
        let mut points = Vec::new();
        for (i, item) in items.iter().enumerate() {
            points.extend(item_points(i, item).map_err(|f| f.detail)?);
        }
        Ok(points)
    }

    /// A bulk body's items read in one pass give what the careful reading gives: the
    /// same points, or the same failure, for plain, unusual and broken items.
    #[test]
    fn items_in_one_pass_are_the_careful_reading() {
        for text in [
            "[]",
            " [ ] ",
            r#"[{"ts":100,"val":[{"event-type":"throughput","val":1}]}]"#,
            r#"[ {"ts": 100, "val": [{"event-type": "throughput", "val": 1}, {"event-type": "packet-count-sent", "val": 2}]} ,
                {"ts": "101", "val": [{"event-type": "thr\u006fughput", "val": 2.5}]},
                {"ts": 102.7, "val": [], "extra": {"a": [1]}} ]"#,
            r#"[{"ts":100,"val":[{"event-type":"throughput","val":1}]},{"val":[]}]"#,
            r#"[{"ts":null,"val":[]}]"#,
            r#"[{"ts":100,"val":[{"event-type":"throughput","val":null}]}]"#,
            r#"[{"ts":100,"val":[{"event-type":"throughput"}]}]"#,
            r#"[{"ts":100,"val":{"event-type":"throughput","val":1}}]"#,
            r#"[{"ts":100,"val":[{"val":1}]}]"#,
            r#"[{"ts":"soon","val":[]}]"#,
            r#"[{"ts":100,"val":[]},7]"#,
            r#"[{"ts":100,"ts":101,"val":[]}]"#,
        ] {
            let text = text.trim();
            let mut plain = Vec::new();
            let read: Read = Items::array(text)
                .try_for_each(|item| {
                    plain.extend(item.map_err(|f| f.detail)?);
                    Ok(())
                })
                .map(|()| plain);
            assert_eq!(read, careful(text), "{text}");
        }
        // A body that is not plainly valid is read the careful way from there on.
        assert_eq!(
            careful(r#"[{"ts":100,"val":[{"event-type":"throughput","val":1}]},{"val":[]}]"#),
            Err("Missing ts field in provided data list at position 1".into())
        );
    }

    /// A whole body read in one pass from its `data` array gives what reading it whole
    /// first gives, for plain bodies and for bodies with more after the array.
    #[test]
    fn bodies_in_one_pass_are_the_careful_reading() {
        let item = r#"{"ts":100,"val":[{"event-type":"throughput","val":1}]}"#;
        for body in [
            format!(r#"{{"data":[{item}]}}"#),
            format!(" {{ \"data\" : [ {item} , {item} ] }} \n"),
            r#"{"data":[]}"#.to_owned(),
            r#"{"data":[ ]} x"#.to_owned(),
            format!(r#"{{"data":[{item}]}} x"#),
            format!(r#"{{"data":[{item}],"other":1}}"#),
            format!(r#"{{"data":[{item}],"data":[]}}"#),
            format!(r#"{{"data":[{item}],"#),
            format!(r#"{{"data":[{item}]"#),
            format!(r#"{{"data":[{item}]]}}"#),
            r#"{"data":[{"ts":100,"val":[{"val":1}]}]}"#.to_owned(),
        ] {
            let mut plain = Vec::new();
            let read: Read = Items::body(&body)
                .unwrap_or_else(|| panic!("{body}"))
                .try_for_each(|item| {
                    plain.extend(item.map_err(|f| f.detail)?);
                    Ok(())
                })
                .map(|()| plain);
            let whole = serde_json::from_str(&body)
                .map_err(json_error)
                .and_then(data_array)
                .map_err(|f| f.detail)
                .and_then(careful);
            assert_eq!(read, whole, "{body}");
        }
        for body in [
            r#"{"dat":[]}"#,
            r#"["data"]"#,
            r#"{"data":{}}"#,
            r#"{"x":1,"data":[]}"#,
        ] {
            assert_eq!(plain_start(body), None, "{body}");
        }
    }

    #[test]
    fn networks_contain_their_addresses() {
        let net: (IpAddr, u8) = ("10.1.0.0".parse().unwrap(), 16);
        assert!(contains(net, "10.1.200.3".parse().unwrap()));
        assert!(!contains(net, "10.2.0.1".parse().unwrap()));
        assert!(contains(net, "::ffff:10.1.0.9".parse().unwrap()));
        assert!(contains(
            ("::1".parse().unwrap(), 128),
            "::1".parse().unwrap()
        ));
        assert!(contains(
            ("0.0.0.0".parse().unwrap(), 0),
            "192.0.2.1".parse().unwrap()
        ));
    }
}
