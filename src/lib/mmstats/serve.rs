//! mmstats-serve's HTTP side: mmash's JSON API ([`super::mmash`]), `/metrics` for
//! Prometheus ([`super::prom`], through a [`Scraper`] that reads a finished writer's file
//! once), and two pages: `/`, every label with a form to choose some, and `/graph/`, which
//! plots the chosen ones live. The pages are one HTML file each, with their script and style
//! inline: nothing is fetched from anywhere but this server.
//!
//! Like mmash, every request globs and reads the files again, so a writer that starts is
//! seen at the next request; unlike mmash it listens on loopback unless told otherwise, and
//! each connection is bounded as every measpipe server bounds them ([`crate::http`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use axum::Router;
use serde_json::{json, Value as Json};

use super::mmash::{self, Aggr, Files};
use super::prom::Scraper;
use crate::html::escape;
use crate::http::Limits;

/// How the stats are served.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The stats directory: a request's `glob=` (and `/files/<glob>`) is taken inside it.
    pub dir: PathBuf,
    /// The files served when a request names none (mmash's `MMSTATS_GLOB`).
    pub pattern: String,
    /// Prepended to every metric name on `/metrics`.
    pub metric_prefix: String,
    /// How often the live page polls, milliseconds (a page may ask for another).
    pub interval_ms: u64,
    /// Connection cap and timeouts.
    pub limits: Limits,
    /// Where notices go (where it listens, refused connections, server-side errors).
    pub notice: fn(&str),
}

struct App {
    config: Config,
    scraper: Mutex<Scraper>,
}

/// Serves until SIGINT or SIGTERM, then finishes the requests in flight.
pub fn serve(config: Config) -> std::io::Result<()> {
    crate::http::raise_open_files(config.limits.max_connections, 64, config.notice);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let address = listener.local_addr()?;
        (config.notice)(&format!(
            "listening on http://{address}/ for {}",
            config.pattern
        ));
        let limits = config.limits;
        let notice = config.notice;
        let app = Arc::new(App {
            config,
            scraper: Mutex::new(Scraper::default()),
        });
        let router = Router::new().fallback(handle).with_state(app);
        crate::http::accept(listener, router, &limits, notice).await;
        Ok(())
    })
}

/// Every request: the access log around [`respond`], which runs on the blocking pool
/// (reading stats files is file I/O).
async fn handle(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response<Body> {
    crate::http::logged(peer.ip(), method, uri, |method, uri, target| async move {
        if !matches!(method, Method::GET | Method::HEAD) {
            let mut response = Refusal {
                status: StatusCode::METHOD_NOT_ALLOWED,
                message: format!("{method} is not served here; only GET and HEAD"),
            }
            .response(&target, app.config.notice);
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let shared = app.clone();
        tokio::task::spawn_blocking(move || respond(&shared, &uri, &headers))
            .await
            .unwrap_or_else(|_| Err(Refusal::internal("request handler failed")))
            .unwrap_or_else(|refusal| refusal.response(&target, app.config.notice))
    })
    .await
}

/// Why a request gets no answer of its own.
struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn internal(cause: impl Into<String>) -> Refusal {
        Refusal {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: cause.into(),
        }
    }

    /// `{"error": message}`; a server-side cause goes to the log, not to the client.
    fn response(self, target: &str, notice: fn(&str)) -> Response<Body> {
        let message = if self.status.is_server_error() {
            notice(&format!("error: {target}: {}", self.message));
            "internal error; the server's log has the cause".to_owned()
        } else {
            self.message
        };
        json_response(self.status, &json!({ "error": message }))
    }
}

/// The request's query as pairs (repeated names kept), or a 400.
fn query(uri: &Uri) -> Result<Vec<(String, String)>, Refusal> {
    serde_urlencoded::from_str(uri.query().unwrap_or(""))
        .map_err(|e| Refusal::bad_request(format!("bad query string: {e}")))
}

/// Every value of a repeated parameter (`field=a&field=b`).
fn params(query: &[(String, String)], name: &str) -> Vec<String> {
    query
        .iter()
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
        .collect()
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn respond(app: &App, uri: &Uri, headers: &HeaderMap) -> Result<Response<Body>, Refusal> {
    let path = percent_encoding::percent_decode_str(uri.path())
        .decode_utf8()
        .map_err(|_| Refusal::bad_request("the path is not UTF-8"))?;
    let query = query(uri)?;
    let config = &app.config;
    let files = |glob: Option<&str>| -> Result<Files, Refusal> {
        let pattern = match glob {
            None => config.pattern.clone(),
            Some(glob) => mmash::confine(&config.dir, glob).map_err(Refusal::bad_request)?,
        };
        let (paths, _) = super::files::expand(&[pattern]).map_err(Refusal::bad_request)?;
        Ok(Files::read(&paths))
    };
    let glob = param(&query, "glob").filter(|g| !g.is_empty());
    match path.as_ref() {
        "/" => Ok(html_response(index_page(&files(glob)?, config))),
        "/graph" | "/graph/" => {
            let fields = params(&query, "field");
            let interval = match param(&query, "interval") {
                None => config.interval_ms,
                Some(text) => text
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| (50..=3_600_000).contains(ms))
                    .ok_or_else(|| {
                        Refusal::bad_request("interval: milliseconds from 50 to 3600000")
                    })?,
            };
            let aggr = aggregation(&query)?;
            let now = files(glob)?.live(&fields, aggr, crate::clock::now_epoch());
            Ok(html_response(graph_page(&fields, &now, &query, interval)))
        }
        "/live" => {
            let fields = params(&query, "field");
            let aggr = aggregation(&query)?;
            Ok(json_response(
                StatusCode::OK,
                &files(glob)?.live(&fields, aggr, crate::clock::now_epoch()),
            ))
        }
        "/stats" | "/stats/" => Ok(json_response(StatusCode::OK, &files(glob)?.labels())),
        "/files" | "/files/" => Ok(json_response(StatusCode::OK, &files(None)?.paths())),
        "/metrics" => Ok(metrics(app, headers)),
        "/health" | "/health/" => Ok(json_response(StatusCode::OK, &json!({"status": "ok"}))),
        other => {
            if let Some(name) = other.strip_prefix("/stats/") {
                let exact = param(&query, "exact").is_some_and(|v| !v.is_empty());
                // mmash ignores an aggregation it does not know.
                let aggr = param(&query, "aggr").and_then(Aggr::parse);
                let answer = files(glob)?
                    .stat(name, exact, aggr)
                    .map_err(|e| Refusal::bad_request(format!("aggr: {e}")))?;
                Ok(json_response(StatusCode::OK, &answer))
            } else if let Some(glob) = other.strip_prefix("/files/") {
                Ok(json_response(StatusCode::OK, &files(Some(glob))?.paths()))
            } else {
                Err(Refusal {
                    status: StatusCode::NOT_FOUND,
                    message: format!("no such page: {other}"),
                })
            }
        }
    }
}

/// The page's and `/live`'s `aggr=`: unlike `/stats/`, an unknown name is refused.
fn aggregation(query: &[(String, String)]) -> Result<Option<Aggr>, Refusal> {
    match param(query, "aggr").filter(|a| !a.is_empty()) {
        None => Ok(None),
        Some(name) => Aggr::parse(name).map(Some).ok_or_else(|| {
            Refusal::bad_request(format!(
                "aggr {name:?}: one of avg, one, max, min, sum, nonzero-min, nonzero-avg"
            ))
        }),
    }
}

/// `/metrics`: the Prometheus text format, or OpenMetrics (ending `# EOF`) when the
/// scraper's Accept header asks for it.
fn metrics(app: &App, headers: &HeaderMap) -> Response<Body> {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (paths, _) =
        super::files::expand(std::slice::from_ref(&app.config.pattern)).unwrap_or_default();
    let (exposition, _) = app
        .scraper
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .scrape(&paths, &app.config.metric_prefix);
    let mut text = String::with_capacity(64 * 1024);
    exposition.render(&mut text, openmetrics);
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    response(StatusCode::OK, content_type, text.into_bytes())
}

fn response(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    let length = HeaderValue::from(body.len());
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, length);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json_response(status: StatusCode, value: &Json) -> Response<Body> {
    response(status, "application/json", value.to_string().into_bytes())
}

fn html_response(page: String) -> Response<Body> {
    let mut response = response(
        StatusCode::OK,
        "text/html; charset=utf-8",
        page.into_bytes(),
    );
    // The pages load nothing from anywhere, and say so to the browser.
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:",
        ),
    );
    response
}

/// A label as a path segment of a link.
fn segment(text: &str) -> String {
    /// What a label keeps as it is in a link: letters, digits, `.`, `_` and `-`.
    const KEPT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'.')
        .remove(b'_')
        .remove(b'-');
    percent_encoding::utf8_percent_encode(text, KEPT).to_string()
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse}td,th{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}\
td.num{text-align:right;font-variant-numeric:tabular-nums}svg{background:#fafafa;border:1px solid #ddd}\
.note{color:#666}";

/// `/`: every label, each a link to its values, in a form that opens the live page for the
/// chosen ones.
fn index_page(files: &Files, config: &Config) -> String {
    let labels = files.labels();
    let mut rows = String::new();
    for label in labels["stats"].as_array().into_iter().flatten() {
        let label = label.as_str().unwrap_or_default();
        rows.push_str(&format!(
            "<tr><td><input type=checkbox name=field value=\"{0}\"></td><td><a href=\"stats/{1}?exact=1\">{0}</a></td></tr>\n",
            escape(label),
            segment(label)
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>mmstats: {count} labels</title>\
<style>{STYLE}</style></head><body>\n<h1>mmstats</h1>\n<p class=note>{pattern}: {files} files, {count} labels. \
<a href=\"metrics\">/metrics</a> · <a href=\"stats/\">/stats/</a> · <a href=\"files/\">/files/</a></p>\n\
<form action=\"graph/\" method=get><p><button type=submit>Plot the chosen fields</button></p>\n<table>\n{rows}</table>\n\
<p><button type=submit>Plot the chosen fields</button></p></form>\n</body></html>\n",
        count = labels["stats"].as_array().map_or(0, Vec::len),
        pattern = escape(&config.pattern),
        files = files.files.len(),
    )
}

/// `/graph/`: the chosen fields' values as they are now (readable without a script), then
/// a chart per field that the inline script keeps up to date from `/live`.
fn graph_page(fields: &[String], now: &Json, query: &[(String, String)], interval: u64) -> String {
    let mut rows = String::new();
    for (index, label) in fields.iter().enumerate() {
        let entry = &now["fields"][label.as_str()];
        let kind = entry["kind"].as_str().unwrap_or("missing");
        let shown = match kind {
            "histogram" => format!(
                "count {} · p50 {} · p99 {}",
                entry["count"], entry["p50"], entry["p99"]
            ),
            "missing" => "no file has it".to_owned(),
            "error" => entry["error"].as_str().unwrap_or_default().to_owned(),
            "text" => entry["value"].as_str().unwrap_or_default().to_owned(),
            _ => entry["value"].to_string(),
        };
        rows.push_str(&format!(
            "<tr id=\"row-{index}\"><td>{label}</td><td>{kind}</td><td class=num id=\"first-{index}\">{shown}</td>\
<td class=num id=\"latest-{index}\">{shown}</td><td><svg id=\"chart-{index}\" width=480 height=110 \
role=img aria-label=\"{label}\"></svg><div class=note id=\"axis-{index}\"></div></td></tr>\n",
            label = escape(label),
            shown = escape(&shown),
        ));
    }
    // What the script polls: the same query, as the page was asked for.
    let live_query = serde_urlencoded::to_string(
        query
            .iter()
            .filter(|(k, _)| k != "interval")
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    let setup = json!({
        "fields": fields,
        "query": live_query,
        "interval": interval,
        "rate": query.iter().filter(|(k, _)| k == "rate").map(|(_, v)| v).collect::<Vec<_>>(),
    })
    .to_string()
    .replace('<', "\\u003c");
    let empty = if fields.is_empty() {
        "<p>No field chosen: pick some on <a href=\"../\">the list of labels</a>, or add <code>?field=LABEL</code> to this address.</p>"
    } else {
        ""
    };
    format!(
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>mmstats live</title><style>{STYLE}</style></head><body>\n\
<h1>mmstats live</h1>\n<p class=note>Counters are plotted as rates per second, histograms as the p50, p95 and p99 of what \
each poll adds, other numbers as they are. <a href=\"../\">All labels</a>.</p>\n{empty}\
<p id=status class=note>polls: <span id=polls>0</span> · every {interval} ms · <span id=when></span></p>\n\
<table><tr><th>label</th><th>kind</th><th>at load</th><th>latest</th><th>chart</th></tr>\n{rows}</table>\n\
<script type=\"application/json\" id=setup>{setup}</script>\n<script>{GRAPH_SCRIPT}</script>\n</body></html>\n"
    )
}

/// The live page's script: polls `/live`, keeps the last points of each field, draws them.
const GRAPH_SCRIPT: &str = include_str!("graph.js");
