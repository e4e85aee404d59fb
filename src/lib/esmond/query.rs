//! Reading an esmond archive back: the metadata search and the time series, in pages,
//! as esmond-client 4.2.1's query library did (esmond.md §2.4, §5.1), without its bugs.
//!
//! * Filters are any `name=value` the archive takes, free-form metadata parameters
//!   included, and values may hold `:` (IPv6 addresses, URLs).
//! * The metadata search sends only `time-start`: esmond filters metadata on the
//!   event type's last update (§1.4), so the originals' `time-end` dropped every series
//!   written again after the end of the window asked for ("No data found." for a series
//!   whose newest point is after -E). The data requests carry the whole window.
//! * Every request is bounded: metadata come `METADATA_PAGE` at a time, points `page` at a
//!   time, each page starting one second after the last point of the one before, so a
//!   big archive is never asked for everything and memory stays bounded.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::client::{Http, Settings};
use crate::error::Error;

/// Metadata asked for per request.
pub const METADATA_PAGE: u64 = 1000;

/// The largest answer read (a page of points or metadata).
const MAX_ANSWER: u64 = 1 << 30;

/// What is told of each URL fetched.
type Trace = Box<dyn Fn(&str)>;

/// An archive to read from.
pub struct Archive {
    http: Http,
    /// `scheme://host[:port][/prefix]`, without a trailing slash: what `uri`s are appended to.
    base: String,
    /// The metadata root (`…/perfsonar/archive/`).
    root: String,
    /// Called with each URL before it is fetched (`-v`).
    trace: Option<Trace>,
}

impl Archive {
    /// An archive at `settings.url`. A URL that already ends in the archive's path
    /// (`/esmond/perfsonar/archive/`) is trimmed to its base, as the originals did.
    pub fn new(settings: &Settings) -> Archive {
        let mut settings = settings.clone();
        let mut base = settings.url.trim_end_matches('/').to_owned();
        const ARCHIVE: &str = "/perfsonar/archive";
        if let Some(at) = base.find(ARCHIVE) {
            if base[at + ARCHIVE.len()..].trim_matches('/').is_empty() {
                base.truncate(at);
                // Whatever came before perfsonar/archive is the alias.
                let (host, alias) = split_path(&base);
                settings.script_alias = (!alias.is_empty()).then(|| alias.to_owned());
                base = host.to_owned();
            }
        }
        settings.url = base.clone();
        let root = settings.root();
        Archive {
            http: Http::new(&settings),
            base,
            root,
            trace: None,
        }
    }

    /// Calls `trace` with each URL fetched.
    pub fn traced(mut self, trace: impl Fn(&str) + 'static) -> Archive {
        self.trace = Some(Box::new(trace));
        self
    }

    /// The metadata root URL.
    pub fn root(&self) -> &str {
        &self.root
    }

    fn get(&self, url: &str) -> Result<String, Error> {
        if let Some(trace) = &self.trace {
            trace(url);
        }
        let fetched = self
            .http
            .get(url, MAX_ANSWER)
            .map_err(|e| Error::failed(format!("GET {url}: {e}")))?;
        if fetched.status != 200 {
            let detail = serde_json::from_str::<Value>(&fetched.body)
                .ok()
                .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| fetched.body.chars().take(200).collect());
            return Err(Error::failed(format!(
                "GET {url}: the archive answered {}: {detail}",
                fetched.status
            )));
        }
        if !fetched.content_type.starts_with("application/json") {
            return Err(Error::failed(format!(
                "GET {url}: the archive answered {} instead of JSON (is this an esmond archive?)",
                if fetched.content_type.is_empty() {
                    "no content type"
                } else {
                    &fetched.content_type
                }
            )));
        }
        Ok(fetched.body)
    }

    /// The metadata matching `filters`, a page at a time.
    pub fn metadata<'a>(&'a self, filters: &Filters) -> MetadataPages<'a> {
        MetadataPages {
            archive: self,
            query: filters.metadata_query(),
            offset: 0,
            total: None,
            done: false,
        }
    }

    /// The points of the series at `uri` (a metadata's `base-uri` or a summary's `uri`)
    /// from `start` to `end` (inclusive), `page` at a time.
    pub fn series(&self, uri: &str, start: i64, end: i64, page: u64) -> SeriesPages<'_> {
        SeriesPages {
            archive: self,
            url: format!("{}{}", self.base, uri),
            next: Some(start),
            end,
            page: page.max(1),
        }
    }
}

/// `scheme://host[:port]` and the path after it.
fn split_path(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => (
            &url[..after_scheme + slash],
            url[after_scheme + slash..].trim_matches('/'),
        ),
        None => (url, ""),
    }
}

/// What to ask the archive for.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Metadata search parameters (`source`, `event-type`, free-form parameters, …).
    pub params: Vec<(String, String)>,
    /// The first second of the window.
    pub start: i64,
    /// The last second of the window.
    pub end: i64,
}

impl Filters {
    /// Sets `name` (replacing an earlier value, as later options override earlier ones).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.params.iter_mut().find(|(n, _)| n == name) {
            Some(param) => param.1 = value,
            None => self.params.push((name.to_owned(), value)),
        }
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The filters of the readers' options: `named` search parameters, then each
    /// `KEY:VALUE` of `extra` (any key, dashed or underscored; the value may hold `:`;
    /// `time-start`/`time-end` set the window), then the window (default: the day before
    /// its end). Errors are the message for the option at fault.
    pub fn from_options(
        named: &[(&str, String)],
        extra: &[String],
        window: Window<'_>,
    ) -> Result<Filters, String> {
        let when = |option: &str, text: &str| {
            super::dates::parse(text, window.now).map_err(|e| format!("--{option}: {e}"))
        };
        let mut end = match window.end {
            Some(text) => when("end-time", text)?,
            None => window.now,
        };
        let mut start = window
            .start
            .map(|text| when("start-time", text))
            .transpose()?;
        let mut filters = Filters::default();
        for (name, value) in named {
            filters.set(name, value.clone());
        }
        for filter in extra {
            let Some((key, value)) = filter.split_once(':') else {
                return Err(format!(
                    "--filter {filter:?}: expected KEY:VALUE, e.g. ip-transport-protocol:tcp"
                ));
            };
            let key = key.trim().replace('_', "-");
            match key.as_str() {
                "" => return Err(format!("--filter {filter:?}: the key is empty")),
                "time-start" => start = Some(when("filter time-start", value)?),
                "time-end" => end = when("filter time-end", value)?,
                "limit" | "offset" | "format" => {
                    return Err(format!(
                    "--filter {filter:?}: {key} is the readers' own (they page through everything)"
                ))
                }
                _ => filters.set(&key, value),
            }
        }
        filters.start = start.unwrap_or(end.saturating_sub(86_400));
        filters.end = end;
        if filters.start > filters.end {
            return Err(format!(
                "the start of the window ({}) is after its end ({})",
                super::rows::timestamp_text(filters.start),
                super::rows::timestamp_text(filters.end)
            ));
        }
        Ok(filters)
    }

    fn metadata_query(&self) -> Vec<(String, String)> {
        let mut query = self.params.clone();
        // Only the start: see the module's documentation.
        query.push(("time-start".into(), self.start.to_string()));
        query
    }
}

/// The window as the options gave it: dates as written (see [`super::dates`]), and now.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    /// `--start-time`, if given.
    pub start: Option<&'a str>,
    /// `--end-time`, if given.
    pub end: Option<&'a str>,
    /// Epoch seconds the relative dates count from.
    pub now: i64,
}

/// A URL with a query string.
fn with_query(url: &str, query: &[(String, String)]) -> String {
    let encoded = serde_urlencoded::to_string(query).unwrap_or_default();
    if encoded.is_empty() {
        url.to_owned()
    } else {
        format!("{url}?{encoded}")
    }
}

/// The metadata search, a page at a time.
pub struct MetadataPages<'a> {
    archive: &'a Archive,
    query: Vec<(String, String)>,
    offset: u64,
    total: Option<u64>,
    done: bool,
}

impl MetadataPages<'_> {
    /// The number of matching metadata, once the first page has come.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// The next page of metadata; `None` after the last.
    pub fn next_page(&mut self) -> Result<Option<Vec<Metadata>>, Error> {
        if self.done {
            return Ok(None);
        }
        let mut query = self.query.clone();
        query.push(("limit".into(), METADATA_PAGE.to_string()));
        query.push(("offset".into(), self.offset.to_string()));
        let url = with_query(&self.archive.root, &query);
        let body = self.archive.get(&url)?;
        let page: Vec<Map<String, Value>> = serde_json::from_str(&body)
            .map_err(|e| Error::failed(format!("GET {url}: not a list of metadata: {e}")))?;
        if let Some(first) = page.first() {
            if let Some(total) = first.get("metadata-count-total").and_then(Value::as_u64) {
                self.total = Some(total);
            }
        }
        self.offset += page.len() as u64;
        self.done = page.is_empty()
            || (page.len() as u64) < METADATA_PAGE
            || self.total.is_some_and(|t| self.offset >= t);
        if page.is_empty() {
            return Ok(None);
        }
        Ok(Some(page.into_iter().map(Metadata::new).collect()))
    }
}

/// One metadata object, as the archive returned it (pagination keys removed).
#[derive(Debug, Clone)]
pub struct Metadata {
    /// The object, dashed keys, in the archive's order.
    pub object: Map<String, Value>,
}

/// One event type of a metadata.
#[derive(Debug, Clone)]
pub struct EventType {
    /// Its name.
    pub name: String,
    /// The path of its base series.
    pub base_uri: String,
    /// Its summaries: type, window (as text) and path.
    pub summaries: Vec<(String, String, String)>,
}

impl EventType {
    /// The path of the series of `summary` (`base` or a summary type) and `window`, if
    /// the event type has it.
    pub fn uri(&self, summary: &str, window: i64) -> Option<&str> {
        if summary == "base" {
            return Some(&self.base_uri);
        }
        let window = window.to_string();
        self.summaries
            .iter()
            .find(|(t, w, _)| t == summary && *w == window)
            .map(|(_, _, uri)| uri.as_str())
    }
}

/// Keys of the search's first object that are pagination, not metadata.
const PAGINATION: [&str; 3] = [
    "metadata-count-total",
    "metadata-previous-page",
    "metadata-next-page",
];

impl Metadata {
    fn new(mut object: Map<String, Value>) -> Metadata {
        for key in PAGINATION {
            object.shift_remove(key);
        }
        Metadata { object }
    }

    /// A field as text (numbers too; the archive sends free-form parameters as strings).
    pub fn text(&self, key: &str) -> Option<String> {
        match self.object.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// The metadata key.
    pub fn key(&self) -> String {
        self.text("metadata-key").unwrap_or_default()
    }

    /// Its event types, in the archive's order.
    pub fn event_types(&self) -> Vec<EventType> {
        #[derive(Deserialize)]
        struct Summary {
            #[serde(rename = "summary-type")]
            kind: String,
            #[serde(rename = "summary-window")]
            window: Value,
            #[serde(default)]
            uri: String,
        }
        #[derive(Deserialize)]
        struct Event {
            #[serde(rename = "event-type")]
            name: String,
            #[serde(rename = "base-uri", default)]
            base_uri: String,
            #[serde(default)]
            summaries: Vec<Summary>,
        }
        let events: Vec<Event> = self
            .object
            .get("event-types")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        events
            .into_iter()
            .map(|e| EventType {
                name: e.name,
                base_uri: e.base_uri,
                summaries: e
                    .summaries
                    .into_iter()
                    .map(|s| {
                        let window = match s.window {
                            Value::String(w) => w,
                            other => other.to_string(),
                        };
                        (s.kind, window, s.uri)
                    })
                    .collect(),
            })
            .collect()
    }

    /// The metadata as an esmond metadata POST body (records.md §1's `metadata`): what
    /// registers the same metadata in another archive.
    pub fn post_body(&self) -> Value {
        let mut body = Map::new();
        for (key, value) in &self.object {
            if matches!(key.as_str(), "url" | "uri" | "metadata-key" | "event-types") {
                continue;
            }
            body.insert(key.clone(), value.clone());
        }
        let events: Vec<Value> = self
            .event_types()
            .into_iter()
            .map(|e| {
                let summaries: Vec<Value> = e
                    .summaries
                    .into_iter()
                    .map(|(kind, window, _)| {
                        serde_json::json!({"summary-type": kind, "summary-window": window})
                    })
                    .collect();
                serde_json::json!({"event-type": e.name, "summaries": summaries})
            })
            .collect();
        body.insert("event-types".into(), Value::Array(events));
        Value::Object(body)
    }
}

/// A series' points, a page at a time.
pub struct SeriesPages<'a> {
    archive: &'a Archive,
    url: String,
    next: Option<i64>,
    end: i64,
    page: u64,
}

impl SeriesPages<'_> {
    /// The next page of points; `None` after the last.
    pub fn next_page(&mut self) -> Result<Option<Page>, Error> {
        let Some(start) = self.next.filter(|&s| s <= self.end) else {
            return Ok(None);
        };
        let query = [
            ("time-start".to_owned(), start.to_string()),
            ("time-end".to_owned(), self.end.to_string()),
            ("limit".to_owned(), self.page.to_string()),
        ];
        let url = with_query(&self.url, &query);
        let body = self.archive.get(&url)?;
        let page = Page::parse(body).map_err(|e| Error::failed(format!("GET {url}: {e}")))?;
        self.next = match page.points.last() {
            Some(&(ts, ..)) if page.points.len() as u64 >= self.page => ts.checked_add(1),
            _ => None,
        };
        if page.points.is_empty() {
            return Ok(None);
        }
        Ok(Some(page))
    }
}

/// One page of points: the body as received and where each point's value is in it.
#[derive(Debug)]
pub struct Page {
    body: String,
    points: Vec<(i64, usize, usize)>,
}

impl Page {
    /// Reads an answer `[{"ts": …, "val": …}, …]`.
    pub fn parse(body: String) -> Result<Page, String> {
        #[derive(Deserialize)]
        struct Point<'a> {
            ts: i64,
            #[serde(borrow)]
            val: &'a serde_json::value::RawValue,
        }
        let base = body.as_ptr() as usize;
        let points: Vec<Point<'_>> =
            serde_json::from_str(&body).map_err(|e| format!("not a list of points: {e}"))?;
        let spans = points
            .iter()
            .map(|p| {
                let text = p.val.get();
                let at = text.as_ptr() as usize - base;
                (p.ts, at, at + text.len())
            })
            .collect();
        drop(points);
        Ok(Page {
            body,
            points: spans,
        })
    }

    /// Points on the page.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the page is empty.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Point `i`: its time and its value's JSON text.
    pub fn get(&self, i: usize) -> (i64, &str) {
        let (ts, from, to) = self.points[i];
        (ts, &self.body[from..to])
    }

    /// The points in order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &str)> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// Addresses turned into host names (reverse DNS, each looked up once), or left alone.
#[derive(Debug, Default)]
pub struct Names {
    resolve: bool,
    cache: HashMap<String, String>,
}

impl Names {
    /// Names that look addresses up when `resolve` is set.
    pub fn new(resolve: bool) -> Names {
        Names {
            resolve,
            cache: HashMap::new(),
        }
    }

    /// The host name of `address` (the address itself if it has none, or if it is not an
    /// address, or without `resolve`).
    pub fn name(&mut self, address: &str) -> String {
        if !self.resolve {
            return address.to_owned();
        }
        self.cache
            .entry(address.to_owned())
            .or_insert_with(|| {
                address
                    .parse::<IpAddr>()
                    .ok()
                    .and_then(|ip| dns_lookup::lookup_addr(&ip).ok())
                    .unwrap_or_else(|| address.to_owned())
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_keeps_each_value_as_sent() {
        let page =
            Page::parse(r#"[{"ts": 1, "val": 1.5}, {"val": {"a": [1, 2]}, "ts": 2}]"#.into())
                .unwrap();
        assert_eq!(
            page.iter().collect::<Vec<_>>(),
            [(1, "1.5"), (2, r#"{"a": [1, 2]}"#)]
        );
    }

    #[test]
    fn urls_ending_in_the_archive_path_are_trimmed_to_their_base() {
        let settings = |url: &str| Settings {
            url: url.into(),
            script_alias: Some("esmond".into()),
            authorization: None,
            timeout: std::time::Duration::from_secs(1),
            verify_tls: true,
        };
        for (url, root) in [
            ("http://h:8080", "http://h:8080/esmond/perfsonar/archive/"),
            ("http://h:8080/", "http://h:8080/esmond/perfsonar/archive/"),
            (
                "http://h/esmond/perfsonar/archive/",
                "http://h/esmond/perfsonar/archive/",
            ),
            ("http://h/perfsonar/archive", "http://h/perfsonar/archive/"),
            (
                "http://h/x/esmond/perfsonar/archive",
                "http://h/x/esmond/perfsonar/archive/",
            ),
        ] {
            assert_eq!(Archive::new(&settings(url)).root(), root, "{url}");
        }
    }

    proptest::proptest! {
        /// Any answer is a page or an error, never a panic; a page gives back each point
        /// as it was sent.
        #[test]
        fn pages_are_read_back_as_sent(points in proptest::collection::vec((0i64..i64::MAX, -1e12f64..1e12), 0..50), junk in "\\PC{0,60}") {
            let _ = Page::parse(junk);
            let body = serde_json::to_string(
                &points.iter().map(|(ts, v)| serde_json::json!({"ts": ts, "val": v})).collect::<Vec<_>>(),
            ).unwrap();
            let page = Page::parse(body).unwrap();
            proptest::prop_assert_eq!(page.len(), points.len());
            for ((ts, v), (got_ts, got)) in points.iter().zip(page.iter()) {
                proptest::prop_assert_eq!(*ts, got_ts);
                proptest::prop_assert_eq!(got.parse::<f64>().unwrap(), *v);
            }
        }
    }
}
