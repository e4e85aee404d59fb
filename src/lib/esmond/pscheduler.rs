//! pScheduler results as perfSONAR 5 hosts send them to their archive (the `http`
//! archiver's body, pscheduler.md §1.4), mapped to esmond exactly as pScheduler's own
//! `esmond` archiver maps them (§2): the metadata it would POST and the point it would PUT.
//! Also the identity perfSONAR's Logstash pipeline gives a test (`test_checksum`, §3.2),
//! and what of a body is kept (§4.1: never the task, its secrets or the tool's diags).
//!
//! The mapping is the archiver's, quirks included, so data archived here reads back as
//! data archived by esmond did. Where the archiver loses data the fixes are options
//! ([`Fixes`]); the ones that change no identity are on by default in esmond-serve.

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::{json, Map, Value};

/// Why a body cannot be archived: the HTTP status to answer and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400 for a body that is not a pScheduler result, 422 for one whose hosts cannot be
    /// resolved.
    pub status: u16,
    /// What is wrong, for the `{"detail": …}` answer and the log.
    pub detail: String,
}

impl Refusal {
    fn bad(detail: impl Into<String>) -> Refusal {
        Refusal {
            status: 400,
            detail: detail.into(),
        }
    }
}

/// The esmond archiver's `data-formatting-policy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Policy {
    /// Known test types mapped, others as `pscheduler-raw` (the default).
    #[default]
    PreferMapped,
    /// Mapped, and `pscheduler-raw` as well.
    MappedAndRaw,
    /// Known types only; any other is refused.
    MappedOnly,
    /// Everything as `pscheduler-raw`.
    RawOnly,
}

impl Policy {
    /// The policy by its archiver name (`prefer-mapped`, `mapped-and-raw`, `mapped-only`,
    /// `raw-only`).
    pub fn from_name(name: &str) -> Option<Policy> {
        Some(match name {
            "prefer-mapped" => Policy::PreferMapped,
            "mapped-and-raw" => Policy::MappedAndRaw,
            "mapped-only" => Policy::MappedOnly,
            "raw-only" => Policy::RawOnly,
            _ => return None,
        })
    }
}

/// Departures from the archiver's mapping (pscheduler.md §4.2), each off by default here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fixes {
    /// Quirk 4: stream lists keep zeros, one entry per stream.
    pub streams: bool,
    /// Quirk 5: spec `ip-tos` → `ip-tos`, `flow-label` → `ip-packet-flowlabel`.
    pub spec_map: bool,
    /// Quirk 10: UDP `packet-count-lost` and the loss rate from the streams' `lost`.
    pub udp_loss_from_streams: bool,
}

/// How a body is mapped.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The archiver's `measurement-agent` option (else the lead participant).
    pub measurement_agent: Option<String>,
    /// The archiver's `data-formatting-policy`.
    pub policy: Policy,
    /// Departures from the archiver.
    pub fixes: Fixes,
}

/// How an archive takes pScheduler results in (esmond-serve's `/logstash`).
#[derive(Debug)]
pub struct Ingest {
    /// Resolves the tests' hosts.
    pub resolver: Resolver,
    /// The mapping's options.
    pub options: Options,
    /// Store only what esmond would have stored: event types the archiver sends without
    /// registering them are dropped (quirks 1 and 2), as esmond dropped them.
    pub strict_esmond: bool,
    /// Bytes of each `diags` kept with a run.
    pub max_diags: usize,
}

impl Ingest {
    /// An ingest with `options`, its hosts from the /etc/hosts-form file `hosts` (checked
    /// before the system resolver); the error names the file and what is wrong.
    pub fn configured(
        hosts: Option<&std::path::Path>,
        options: Options,
        strict_esmond: bool,
        max_diags: usize,
    ) -> Result<Ingest, String> {
        Ok(Ingest {
            resolver: Resolver::with_hosts_file(hosts)?,
            options,
            strict_esmond,
            max_diags,
        })
    }
}

impl Default for Ingest {
    fn default() -> Ingest {
        Ingest {
            resolver: Resolver::system(),
            options: Options::default(),
            strict_esmond: false,
            max_diags: 4096,
        }
    }
}

/// Host name resolution as `getaddrinfo` gives it: the last IPv4 and the last IPv6
/// address of a name (or the address itself, for a literal).
pub trait Resolve {
    /// `(v4, v6)` of `host`, either absent when it has none.
    fn resolve(&self, host: &str) -> (Option<IpAddr>, Option<IpAddr>);
}

/// A host's last IPv4 and last IPv6 address.
type Addresses = (Option<IpAddr>, Option<IpAddr>);

/// A static host map (`/etc/hosts` lines), consulted before the system resolver, whose
/// answers are kept for five minutes.
#[derive(Debug, Default)]
pub struct Resolver {
    hosts: HashMap<String, (Option<IpAddr>, Option<IpAddr>)>,
    cache: std::sync::Mutex<HashMap<String, (std::time::Instant, Addresses)>>,
    /// Whether names not in the map go to the system resolver.
    pub system: bool,
}

impl Resolver {
    /// A resolver with no map that asks the system.
    pub fn system() -> Resolver {
        Resolver {
            system: true,
            ..Resolver::default()
        }
    }

    /// Adds `/etc/hosts`-style lines (`ADDRESS NAME…`, `#` comments); the last address of
    /// each family of a name wins, as getaddrinfo's last answer does. Returns the line
    /// number and text of a line that is not of that form.
    pub fn add_hosts(&mut self, text: &str) -> Result<(), (usize, String)> {
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let address = words.next().unwrap_or("");
            let ip: IpAddr = address
                .parse()
                .map_err(|_| (n + 1, format!("not an IP address: {address}")))?;
            let mut named = false;
            for name in words {
                named = true;
                let entry = self.hosts.entry(name.to_ascii_lowercase()).or_default();
                match ip {
                    IpAddr::V4(_) => entry.0 = Some(ip),
                    IpAddr::V6(_) => entry.1 = Some(ip),
                }
            }
            if !named {
                return Err((n + 1, format!("no host name after {address}")));
            }
        }
        Ok(())
    }
}

impl Resolver {
    /// The system resolver behind the host map in `path` (`/etc/hosts` form), if any; an
    /// error names the file and the line (or why the file could not be read).
    pub fn with_hosts_file(path: Option<&std::path::Path>) -> Result<Resolver, String> {
        let mut resolver = Resolver::system();
        if let Some(path) = path {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            resolver
                .add_hosts(&text)
                .map_err(|(line, cause)| format!("{}:{line}: {cause}", path.display()))?;
        }
        Ok(resolver)
    }
}

impl Resolve for Resolver {
    fn resolve(&self, host: &str) -> (Option<IpAddr>, Option<IpAddr>) {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return family(ip);
        }
        if let Some(found) = self.hosts.get(&host.to_ascii_lowercase()) {
            return *found;
        }
        if !self.system {
            return (None, None);
        }
        const KEEP: std::time::Duration = std::time::Duration::from_secs(300);
        let now = std::time::Instant::now();
        if let Some((at, found)) = crate::sync::lock(&self.cache).get(host) {
            if now.duration_since(*at) < KEEP {
                return *found;
            }
        }
        let (mut v4, mut v6) = (None, None);
        if let Ok(found) = std::net::ToSocketAddrs::to_socket_addrs(&(host, 0)) {
            for address in found {
                match address.ip() {
                    ip @ IpAddr::V4(_) => v4 = Some(ip),
                    ip @ IpAddr::V6(_) => v6 = Some(ip),
                }
            }
        }
        let mut cache = crate::sync::lock(&self.cache);
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(host.to_owned(), (now, (v4, v6)));
        (v4, v6)
    }
}

/// An address as the one family it is.
fn family(ip: IpAddr) -> (Option<IpAddr>, Option<IpAddr>) {
    match ip {
        IpAddr::V4(_) => (Some(ip), None),
        IpAddr::V6(_) => (None, Some(ip)),
    }
}

/// pScheduler's `ip_normalize_version`: both ends in one family (`ip_version` 4 or 6
/// forces it; else IPv6 when both have it, else IPv4 when both have it, else neither).
fn normalize(
    resolver: &dyn Resolve,
    source: Option<&str>,
    dest: Option<&str>,
    ip_version: Option<i64>,
) -> (Option<IpAddr>, Option<IpAddr>) {
    let (s4, s6) = source.map_or((None, None), |s| resolver.resolve(s));
    let (d4, d6) = dest.map_or((None, None), |d| resolver.resolve(d));
    match ip_version {
        Some(6) => (s6, d6),
        Some(4) => (s4, d4),
        _ if s6.is_some() && d6.is_some() => (s6, d6),
        _ if s4.is_some() && d4.is_some() => (s4, d4),
        _ => (None, None),
    }
}

/// What pScheduler's esmond archiver would send for one run: the metadata it POSTs and
/// the one point it PUTs.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// The run the body reports (its `ts` is the point's time).
    pub run: Run,
    /// The metadata POST body, keys in the archiver's order.
    pub metadata: Map<String, Value>,
    /// The point's values: event type and value, in the archiver's order.
    pub values: Vec<(String, Value)>,
}

impl Mapped {
    /// `{"metadata": …, "data": {"data": [{"ts", "val": […]}]}}`, the shape of the
    /// fixtures' captures.
    pub fn to_json(&self) -> Value {
        let val: Vec<Value> = self
            .values
            .iter()
            .map(|(et, v)| json!({"event-type": et, "val": v}))
            .collect();
        json!({
            "metadata": self.metadata,
            "data": {"data": [{"ts": self.run.ts, "val": val}]},
        })
    }

    /// The event types the metadata registers, with their summaries (type, window).
    pub fn event_types(&self) -> Vec<(String, Vec<(String, i64)>)> {
        self.metadata
            .get("event-types")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|et| {
                let name = et.get("event-type")?.as_str()?.to_owned();
                let summaries = et
                    .get("summaries")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|s| {
                        Some((
                            s.get("summary-type")?.as_str()?.to_owned(),
                            s.get("summary-window")?.as_i64()?,
                        ))
                    })
                    .collect();
                Some((name, summaries))
            })
            .collect()
    }

    /// Event types the point carries that the metadata does not register (the archiver's
    /// quirks 1 and 2: esmond answered 201 and stored nothing of them).
    pub fn unregistered(&self) -> Vec<String> {
        let registered = self.event_types();
        let mut missing: Vec<String> = Vec::new();
        for (et, _) in &self.values {
            if !registered.iter().any(|(r, _)| r == et) && !missing.contains(et) {
                missing.push(et.clone());
            }
        }
        missing
    }
}

/// Who ran a result and what it is, from the body's envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The run's UUID (`id`).
    pub id: String,
    /// `run.href`, if given.
    pub run_href: Option<String>,
    /// `task.href` (or `run.task-href`), if given.
    pub task_href: Option<String>,
    /// The test type.
    pub test_type: String,
    /// The tool's name (without `pscheduler/`).
    pub tool: String,
    /// The scheduled start, epoch seconds.
    pub ts: i64,
    /// Whether the merged result says it succeeded.
    pub succeeded: bool,
    /// perfSONAR Logstash's `pscheduler.test_checksum` of the test.
    pub test_checksum: String,
}

/// Python's truth value of a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// `obj.get(key)` when truthy.
fn get_truthy<'v>(object: &'v Value, key: &str) -> Option<&'v Value> {
    object.get(key).filter(|v| truthy(v))
}

/// `obj.get(key)` when present and not null.
fn get_some<'v>(object: &'v Value, key: &str) -> Option<&'v Value> {
    object.get(key).filter(|v| !v.is_null())
}

/// The body's test: `test`, else `task.test`.
fn test_of(body: &Value) -> Option<&Value> {
    get_truthy(body, "test").or_else(|| body.get("task").and_then(|t| get_truthy(t, "test")))
}

/// A string field of the body, or a refusal naming it.
fn text<'v>(value: Option<&'v Value>, name: &str) -> Result<&'v str, Refusal> {
    value
        .and_then(Value::as_str)
        .ok_or_else(|| Refusal::bad(format!("{name} is missing or not a string")))
}

/// The envelope of a body: refused when it is not a pScheduler result (§2.7 step 1).
pub fn run_of(body: &Value) -> Result<Run, Refusal> {
    if !body.is_object() {
        return Err(Refusal::bad("the body is not a JSON object"));
    }
    let test = test_of(body).ok_or_else(|| Refusal::bad("test (or task.test) is missing"))?;
    let test_type = text(test.get("type"), "test.type")?.to_owned();
    if test.get("spec").is_none_or(|s| !s.is_object()) {
        return Err(Refusal::bad("test.spec is missing or not an object"));
    }
    let tool = text(body.get("tool").and_then(|t| t.get("name")), "tool.name")?.to_owned();
    let schedule = body.get("schedule");
    let start = text(schedule.and_then(|s| s.get("start")), "schedule.start")?;
    let ts = iso8601_epoch(start)
        .ok_or_else(|| Refusal::bad(format!("schedule.start is not an ISO 8601 time: {start}")))?;
    let duration = text(
        schedule.and_then(|s| s.get("duration")),
        "schedule.duration",
    )?;
    iso8601_seconds(duration).ok_or_else(|| {
        Refusal::bad(format!(
            "schedule.duration is not an ISO 8601 duration: {duration}"
        ))
    })?;
    match body.get("participants").and_then(Value::as_array) {
        Some(p) if !p.is_empty() => {}
        _ => return Err(Refusal::bad("participants is missing or empty")),
    }
    let result = body
        .get("result")
        .filter(|r| r.is_object())
        .ok_or_else(|| Refusal::bad("result is missing or not an object"))?;
    let id = text(body.get("id"), "id")?.to_owned();
    if id.is_empty() || id.len() > 200 {
        return Err(Refusal::bad("id must be a run UUID"));
    }
    let href = |object: &str, key: &str| {
        body.get(object)
            .and_then(|o| o.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Ok(Run {
        id,
        run_href: href("run", "href"),
        task_href: href("task", "href").or_else(|| href("run", "task-href")),
        test_type,
        tool,
        ts,
        succeeded: result.get("succeeded").is_some_and(truthy),
        test_checksum: test_checksum(body),
    })
}

/// Maps a body as pScheduler's esmond archiver does (pscheduler.md §2), after checking
/// it with [`run_of`].
pub fn map(body: &Value, resolver: &dyn Resolve, options: &Options) -> Result<Mapped, Refusal> {
    let run = run_of(body)?;
    let test = test_of(body).unwrap_or(&Value::Null);
    let spec = &test["spec"];
    let lead = match &body["participants"][0] {
        Value::String(s) => s.clone(),
        other => {
            return Err(Refusal::bad(format!(
                "participants[0] is not a host: {other}"
            )))
        }
    };
    let result = &body["result"];
    let duration = body["schedule"]["duration"]
        .as_str()
        .and_then(iso8601_seconds)
        .unwrap_or(0.0);
    let kind = Kind::of(&run.test_type, options.policy).ok_or_else(|| Refusal {
        status: 422,
        detail: format!(
            "test type {} is not mapped and the data policy is mapped-only",
            run.test_type
        ),
    })?;
    let mut metadata = Map::new();
    metadata.insert("event-types".into(), Value::Array(Vec::new()));
    metadata.insert("pscheduler-test-type".into(), json!(run.test_type));
    let ip_version = spec.get("ip-version").and_then(Value::as_i64);
    addresses(
        &mut metadata,
        kind,
        spec,
        &lead,
        ip_version,
        options.measurement_agent.as_deref(),
        resolver,
    )?;
    metadata.insert(
        "tool-name".into(),
        json!(format!("pscheduler/{}", run.tool)),
    );
    metadata.insert("time-duration".into(), float(duration));
    let mut event_types: Vec<&str> = kind.event_types(spec);
    if run.run_href.is_some() {
        event_types.push("pscheduler-run-href");
    }
    let raw = kind == Kind::DiskToDisk
        || (options.policy == Policy::MappedAndRaw && !matches!(kind, Kind::Raw));
    if raw {
        event_types.push("pscheduler-raw");
    }
    metadata["event-types"] = Value::Array(event_types.iter().map(|et| event_type(et)).collect());
    let fixes: &[(&str, &str)] = match options.fixes.spec_map {
        true => kind.spec_map_fixes(),
        false => &[],
    };
    for (field, name) in kind.spec_map().iter().chain(fixes) {
        if let Some(value) = spec.get(*field) {
            metadata.insert((*name).into(), value.clone());
        }
    }
    kind.more_metadata(&mut metadata, spec, &run.test_type);
    if let Some(reference) = body.get("reference").and_then(Value::as_object) {
        for (field, value) in reference {
            if !field.starts_with('_') {
                flatten(
                    &mut metadata,
                    format!("pscheduler-reference-{field}"),
                    value,
                );
            }
        }
    }
    let mut values: Vec<(String, Value)> = Vec::new();
    if run.succeeded {
        for (field, et) in kind.data_map() {
            match result.get(*field) {
                Some(Value::Object(o)) if o.is_empty() => {}
                Some(value) => values.push(((*et).into(), value.clone())),
                None => {}
            }
        }
        kind.more_data(&mut values, spec, result, options.fixes);
    } else {
        let message = match get_truthy(result, "error") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => "The test failed for an unspecified reason. See the server logs of the testing host(s).".into(),
        };
        values.push(("failures".into(), json!({ "error": message })));
    }
    if let Some(href) = &run.run_href {
        values.push(("pscheduler-run-href".into(), json!({ "href": href })));
    }
    if raw {
        values.push(("pscheduler-raw".into(), result.clone()));
    }
    Ok(Mapped {
        run,
        metadata,
        values,
    })
}

/// A float as Python's `float` would be dumped (`19.0`, not `19`).
fn float(value: f64) -> Value {
    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
}

/// An event type of the metadata POST, with the archiver's default summaries.
fn event_type(name: &str) -> Value {
    let summaries: &[(&str, i64)] = match name {
        "throughput" => &[("average", 86400)],
        "packet-loss-rate"
        | "packet-count-sent"
        | "packet-count-lost"
        | "packet-count-lost-bidir" => &[
            ("aggregation", 300),
            ("aggregation", 3600),
            ("aggregation", 86400),
        ],
        "histogram-owdelay" => &[
            ("aggregation", 300),
            ("statistics", 300),
            ("aggregation", 3600),
            ("statistics", 0),
            ("statistics", 3600),
            ("aggregation", 86400),
            ("statistics", 86400),
        ],
        "packet-loss-rate-bidir" => &[("aggregation", 3600), ("aggregation", 86400)],
        "histogram-rtt" => &[
            ("statistics", 0),
            ("aggregation", 3600),
            ("statistics", 3600),
            ("aggregation", 86400),
            ("statistics", 86400),
        ],
        _ => &[],
    };
    if summaries.is_empty() {
        return json!({ "event-type": name });
    }
    let summaries: Vec<Value> = summaries
        .iter()
        .map(|(kind, window)| {
            json!({"summary-window": window, "event-type": name, "summary-type": kind})
        })
        .collect();
    json!({ "event-type": name, "summaries": summaries })
}

/// The archiver's `parse_metadata_field`: lists as `-<i>` per element (not recursed),
/// objects as `-<key>` recursively (skipping `_` keys), scalars as they are.
fn flatten(metadata: &mut Map<String, Value>, key: String, value: &Value) {
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                metadata.insert(format!("{key}-{i}"), item.clone());
            }
        }
        Value::Object(object) => {
            for (sub, item) in object {
                if !sub.starts_with('_') {
                    flatten(metadata, format!("{key}-{sub}"), item);
                }
            }
        }
        scalar => {
            metadata.insert(key, scalar.clone());
        }
    }
}

/// The archiver's record classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Throughput,
    Latency,
    Trace,
    Rtt,
    DiskToDisk,
    Raw,
}

impl Kind {
    fn of(test_type: &str, policy: Policy) -> Option<Kind> {
        if policy == Policy::RawOnly {
            return Some(Kind::Raw);
        }
        Some(match test_type {
            "throughput" => Kind::Throughput,
            "latency" | "latencybg" => Kind::Latency,
            "trace" => Kind::Trace,
            "rtt" => Kind::Rtt,
            "disk-to-disk" => Kind::DiskToDisk,
            _ if policy == Policy::MappedOnly => return None,
            _ => Kind::Raw,
        })
    }

    fn event_types(self, spec: &Value) -> Vec<&'static str> {
        match self {
            Kind::Throughput => {
                let parallel = parallel(spec);
                let mut ets = vec!["failures", "throughput", "throughput-subintervals"];
                if parallel {
                    ets.extend(["streams-throughput", "streams-throughput-subintervals"]);
                }
                if spec.get("udp").is_some_and(truthy) {
                    ets.extend(["packet-loss-rate", "packet-count-lost", "packet-count-sent"]);
                } else {
                    ets.extend(["packet-retransmits", "packet-retransmits-subintervals"]);
                    if parallel {
                        ets.extend([
                            "streams-packet-retransmits",
                            "streams-packet-retransmits-subintervals",
                        ]);
                    }
                }
                ets
            }
            Kind::Latency => vec![
                "failures",
                "packet-count-sent",
                "histogram-owdelay",
                "histogram-ttl",
                "packet-duplicates",
                "packet-loss-rate",
                "packet-count-lost",
                "packet-reorders",
                "time-error-estimates",
            ],
            Kind::Trace => {
                let mut ets = vec!["failures", "packet-trace", "path-mtu"];
                if paris(spec) {
                    ets.push("packet-trace-multi");
                }
                ets
            }
            Kind::Rtt => vec![
                "failures",
                "packet-count-sent",
                "histogram-rtt",
                "histogram-ttl-reverse",
                "packet-duplicates-bidir",
                "packet-loss-rate-bidir",
                "packet-count-lost-bidir",
                "packet-reorders-bidir",
            ],
            Kind::DiskToDisk => vec!["failures", "throughput"],
            Kind::Raw => vec!["pscheduler-raw"],
        }
    }

    /// Spec field → metadata field (`get_metadata_field_map`).
    fn spec_map(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Throughput => &[
                ("tos", "ip-tos"),
                ("dscp", "ip-dscp"),
                ("buffer-length", "bw-buffer-size"),
                ("parallel", "bw-parallel-streams"),
                ("bandwidth", "bw-target-bandwidth"),
                ("window-size", "tcp-window-size"),
                ("dynamic-window-size", "tcp-dynamic-window-size"),
                ("mss", "tcp-max-segment-size"),
                ("omit", "bw-ignore-first-seconds"),
            ],
            Kind::Latency => &[
                ("packet-count", "sample-size"),
                ("bucket-width", "sample-bucket-width"),
                ("packet-interval", "time-probe-interval"),
                ("packet-timeout", "time-probe-timeout"),
                ("ip-tos", "ip-tos"),
                ("flip", "mode-flip"),
                ("packet-padding", "ip-packet-padding"),
                ("single-participant-mode", "mode-single-participant"),
            ],
            Kind::Trace => &[
                ("algorithm", "trace-algorithm"),
                ("first-ttl", "trace-first-ttl"),
                ("fragment", "ip-fragment"),
                ("hops", "trace-max-ttl"),
                ("length", "ip-packet-size"),
                ("probe-type", "ip-transport-protocol"),
                ("queries", "trace-num-queries"),
                ("tos", "ip-tos"),
            ],
            Kind::Rtt => &[
                ("count", "sample-size"),
                ("flowlabel", "ip-packet-flowlabel"),
                ("tos", "ip-tos"),
                ("length", "ip-packet-size"),
                ("ttl", "ip-ttl"),
            ],
            Kind::DiskToDisk => &[("parallel", "bw-parallel-streams")],
            Kind::Raw => &[],
        }
    }

    /// The spec fields the archiver's map misses (quirk 5), mapped with `--fix-spec-map`.
    fn spec_map_fixes(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Throughput | Kind::Trace => &[("ip-tos", "ip-tos")],
            Kind::Rtt => &[("ip-tos", "ip-tos"), ("flow-label", "ip-packet-flowlabel")],
            _ => &[],
        }
    }

    /// `add_additional_metadata`.
    fn more_metadata(self, metadata: &mut Map<String, Value>, spec: &Value, test_type: &str) {
        let seconds = |metadata: &mut Map<String, Value>, field: &str, name: &str| {
            if let Some(value) = get_truthy(spec, field) {
                if let Some(s) = value.as_str().and_then(iso8601_seconds) {
                    metadata.insert(name.into(), float(s));
                }
            }
        };
        match self {
            Kind::Throughput => {
                let protocol = if spec.get("udp").is_some_and(truthy) {
                    "udp"
                } else {
                    "tcp"
                };
                metadata.insert("ip-transport-protocol".into(), json!(protocol));
            }
            Kind::Trace => {
                seconds(metadata, "sendwait", "time-probe-interval");
                seconds(metadata, "wait", "time-test-timeout");
            }
            Kind::Rtt => {
                seconds(metadata, "interval", "time-probe-interval");
                seconds(metadata, "timeout", "time-test-timeout");
                seconds(metadata, "deadline", "time-probe-timeout");
            }
            Kind::DiskToDisk | Kind::Raw => {
                if let Some(fields) = spec.as_object() {
                    for (field, value) in fields {
                        flatten(metadata, format!("pscheduler-{test_type}-{field}"), value);
                    }
                }
            }
            Kind::Latency => {}
        }
    }

    /// Result field → event type (`get_data_field_map`).
    fn data_map(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Latency => &[
                ("histogram-latency", "histogram-owdelay"),
                ("histogram-ttl", "histogram-ttl"),
                ("packets-sent", "packet-count-sent"),
                ("packets-lost", "packet-count-lost"),
                ("packets-reordered", "packet-reorders"),
                ("packets-duplicated", "packet-duplicates"),
                ("max-clock-error", "time-error-estimates"),
            ],
            Kind::Rtt => &[
                ("sent", "packet-count-sent"),
                ("lost", "packet-count-lost-bidir"),
                ("duplicates", "packet-duplicates-bidir"),
                ("reorders", "packet-reorders-bidir"),
            ],
            _ => &[],
        }
    }

    /// `add_additional_data`.
    fn more_data(
        self,
        values: &mut Vec<(String, Value)>,
        spec: &Value,
        result: &Value,
        fixes: Fixes,
    ) {
        match self {
            Kind::Throughput => throughput_data(values, spec, result, fixes),
            Kind::Latency => rate(
                values,
                "packet-loss-rate",
                result,
                "packets-lost",
                "packets-sent",
            ),
            Kind::Trace => trace_data(values, spec, result),
            Kind::Rtt => rtt_data(values, result),
            Kind::DiskToDisk => {
                if let Some(f) = get_some(result, "throughput").and_then(number) {
                    values.push(("throughput".into(), float(f)));
                }
            }
            Kind::Raw => values.push(("pscheduler-raw".into(), result.clone())),
        }
    }
}

/// `'parallel' in spec and spec['parallel'] > 1`.
fn parallel(spec: &Value) -> bool {
    spec.get("parallel")
        .and_then(Value::as_f64)
        .is_some_and(|p| p > 1.0)
}

fn paris(spec: &Value) -> bool {
    spec.get("algorithm").and_then(Value::as_str) == Some("paris-traceroute")
}

/// A number, or a numeric string, as Python's `float()` takes it.
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// Python's `int()` of a value, when it has one.
fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// `add_data_rate`: `{numerator, denominator}` when both are there, integers, and the
/// denominator is not 0.
fn rate(
    values: &mut Vec<(String, Value)>,
    et: &str,
    object: &Value,
    numerator: &str,
    denominator: &str,
) {
    let (Some(n), Some(d)) = (get_some(object, numerator), get_some(object, denominator)) else {
        return;
    };
    if int(n).is_none() || int(d).is_none_or(|d| d == 0) {
        return;
    }
    values.push((et.into(), json!({"numerator": n, "denominator": d})));
}

/// `end - start` with Python's types: integers stay integers.
fn minus(end: &Value, start: &Value) -> Option<Value> {
    match (end.as_i64(), start.as_i64()) {
        (Some(e), Some(s)) => Some(json!(e.checked_sub(s)?)),
        _ => Some(float(number(end)? - number(start)?)),
    }
}

/// The throughput record's `add_additional_data`.
fn throughput_data(values: &mut Vec<(String, Value)>, spec: &Value, result: &Value, fixes: Fixes) {
    let udp = spec.get("udp").is_some_and(truthy);
    let parallel = parallel(spec);
    let push = |values: &mut Vec<(String, Value)>, et: &str, v: Value| values.push((et.into(), v));
    if let Some(summaries) = get_truthy(result, "summary") {
        if let Some(summary) = get_truthy(summaries, "summary") {
            let if_exists = |values: &mut Vec<(String, Value)>, et: &str, field: &str| {
                if let Some(v) = get_some(summary, field) {
                    values.push((et.into(), v.clone()));
                }
            };
            if_exists(values, "throughput", "throughput-bits");
            if udp {
                let streams_lost = fixes
                    .udp_loss_from_streams
                    .then(|| udp_lost_from_streams(summaries))
                    .flatten();
                if_exists(values, "packet-count-sent", "sent");
                match &streams_lost {
                    Some(lost) => values.push(("packet-count-lost".into(), json!(lost))),
                    None => if_exists(values, "packet-count-lost", "lost"),
                }
                match streams_lost {
                    Some(lost) => {
                        let mut fixed = summary.clone();
                        fixed["lost"] = json!(lost);
                        rate(values, "packet-loss-rate", &fixed, "lost", "sent");
                    }
                    None => rate(values, "packet-loss-rate", summary, "lost", "sent"),
                }
            } else {
                if_exists(values, "packet-retransmits", "retransmits");
                if_exists(values, "packet-rtt", "rtt");
                if_exists(values, "tcp-windowsize", "tcp-window-size");
            }
        }
        if let (Some(Value::Array(streams)), true) = (get_truthy(summaries, "streams"), parallel) {
            let mut streams: Vec<&Value> = streams.iter().collect();
            streams.sort_by(|a, b| order(&a["stream-id"], &b["stream-id"]));
            let throughput: Vec<Value> = streams
                .iter()
                .map(|s| s.get("throughput-bits").cloned().unwrap_or(Value::Null))
                .collect();
            let list = |field: &str| -> Vec<Value> {
                streams
                    .iter()
                    .filter_map(|s| match s.get(field) {
                        Some(v) if truthy(v) => Some(v.clone()),
                        Some(v) if fixes.streams && !v.is_null() => Some(v.clone()),
                        _ if fixes.streams => Some(Value::Null),
                        _ => None,
                    })
                    .collect()
            };
            let (retransmits, rtt, window) =
                (list("retransmits"), list("rtt"), list("tcp-window-size"));
            push(values, "streams-throughput", Value::Array(throughput));
            if !udp {
                for (et, list) in [
                    ("streams-packet-retransmits", retransmits),
                    ("streams-packet-rtt", rtt),
                    ("streams-tcp-windowsize", window),
                ] {
                    if !list.is_empty() && (!fixes.streams || list.iter().any(|v| !v.is_null())) {
                        push(values, et, Value::Array(list));
                    }
                }
            }
        }
    }
    let Some(Value::Array(intervals)) = get_truthy(result, "intervals") else {
        return;
    };
    let fields = ["throughput-bits", "retransmits", "rtt", "tcp-window-size"];
    let mut totals: [Vec<Value>; 4] = Default::default();
    // By stream id, in first-seen order (sorted below).
    let mut streams: [Vec<(Value, Vec<Value>)>; 4] = Default::default();
    for interval in intervals {
        if let Some(summary) = get_truthy(interval, "summary") {
            if let (Some(start), Some(end)) = (get_some(summary, "start"), get_some(summary, "end"))
            {
                if let Some(duration) = minus(end, start) {
                    for (i, field) in fields.iter().enumerate() {
                        if let Some(v) = get_some(summary, field) {
                            totals[i].push(json!({"start": start, "duration": duration, "val": v}));
                        }
                    }
                }
            }
        }
        let (Some(Value::Array(list)), true) = (get_truthy(interval, "streams"), parallel) else {
            continue;
        };
        for stream in list {
            let (Some(start), Some(end)) = (get_some(stream, "start"), get_some(stream, "end"))
            else {
                continue;
            };
            let Some(id) = get_some(stream, "stream-id") else {
                continue;
            };
            let Some(duration) = minus(end, start) else {
                continue;
            };
            for (i, field) in fields.iter().enumerate() {
                let at = match streams[i].iter().position(|(s, _)| s == id) {
                    Some(at) => at,
                    None => {
                        streams[i].push((id.clone(), Vec::new()));
                        streams[i].len() - 1
                    }
                };
                if let Some(v) = get_some(stream, field) {
                    streams[i][at]
                        .1
                        .push(json!({"start": start, "duration": duration, "val": v}));
                }
            }
        }
    }
    let by_stream = |mut list: Vec<(Value, Vec<Value>)>| -> Value {
        list.sort_by(|a, b| order(&a.0, &b.0));
        Value::Array(list.into_iter().map(|(_, v)| Value::Array(v)).collect())
    };
    let [throughput, retransmits, rtt, window] = totals;
    let [s_throughput, s_retransmits, s_rtt, s_window] = streams;
    if !throughput.is_empty() {
        push(values, "throughput-subintervals", Value::Array(throughput));
    }
    if !s_throughput.is_empty() {
        push(
            values,
            "streams-throughput-subintervals",
            by_stream(s_throughput),
        );
    }
    if udp {
        return;
    }
    for (et, list) in [
        ("packet-retransmits-subintervals", retransmits),
        ("packet-rtt-subintervals", rtt),
        ("tcp-windowsize-subintervals", window),
    ] {
        if !list.is_empty() {
            push(values, et, Value::Array(list));
        }
    }
    for (et, list) in [
        ("streams-packet-retransmits-subintervals", s_retransmits),
        ("streams-packet-rtt-subintervals", s_rtt),
        ("streams-tcp-windowsize-subintervals", s_window),
    ] {
        if !list.is_empty() {
            push(values, et, by_stream(list));
        }
    }
}

/// The sum of the streams' `lost` (quirk 10's fix), when every stream has one.
fn udp_lost_from_streams(summaries: &Value) -> Option<i64> {
    let streams = summaries.get("streams")?.as_array()?;
    if streams.is_empty() {
        return None;
    }
    streams.iter().map(|s| s.get("lost").and_then(int)).sum()
}

/// Python's order of stream ids (numbers by value, strings by text, numbers first).
fn order(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&y.as_f64().unwrap_or(0.0)),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Number(_), _) => std::cmp::Ordering::Less,
        (_, Value::Number(_)) => std::cmp::Ordering::Greater,
        _ => std::cmp::Ordering::Equal,
    }
}

/// The trace record's `add_additional_data`.
fn trace_data(values: &mut Vec<(String, Value)>, spec: &Value, result: &Value) {
    let Some(paths) = result.get("paths").and_then(Value::as_array) else {
        return;
    };
    let mut multi = Vec::new();
    let mut first: Option<Vec<Value>> = None;
    let (mut mtu, mut pmtu): (Option<Value>, Option<f64>) = (None, None);
    for path in paths {
        let hops = path.as_array().map(Vec::as_slice).unwrap_or_default();
        let mut formatted = Vec::with_capacity(hops.len());
        for (n, hop) in hops.iter().enumerate() {
            let mut out = Map::new();
            out.insert("ttl".into(), json!(n + 1));
            out.insert("query".into(), json!(1));
            match get_truthy(hop, "error") {
                Some(error) => {
                    out.insert("success".into(), json!(0));
                    out.insert("error-message".into(), error.clone());
                }
                None => {
                    out.insert("success".into(), json!(1));
                }
            }
            for field in ["ip", "hostname", "as"] {
                if let Some(v) = get_truthy(hop, field) {
                    out.insert(field.into(), v.clone());
                }
            }
            if let Some(rtt) = get_some(hop, "rtt")
                .and_then(Value::as_str)
                .and_then(iso8601_seconds)
            {
                out.insert("rtt".into(), float(rtt * 1000.0));
            }
            match get_some(hop, "mtu") {
                Some(m) => {
                    out.insert("mtu".into(), m.clone());
                    mtu = Some(m.clone());
                    if let Some(f) = m.as_f64() {
                        if pmtu.is_none_or(|p| p > f) {
                            pmtu = Some(f);
                        }
                    }
                }
                None => {
                    if let Some(m) = &mtu {
                        out.insert("mtu".into(), m.clone());
                    }
                }
            }
            formatted.push(Value::Object(out));
        }
        if first.as_ref().is_none_or(Vec::is_empty) {
            first = Some(formatted.clone());
        }
        multi.push(Value::Array(formatted));
    }
    if let Some(trace) = first.filter(|t| !t.is_empty()) {
        values.push(("packet-trace".into(), Value::Array(trace)));
    }
    if let Some(p) = pmtu {
        let value = if p.fract() == 0.0 && p.abs() < 9e15 {
            json!(p as i64)
        } else {
            float(p)
        };
        values.push(("path-mtu".into(), value));
    }
    if paris(spec) && !multi.is_empty() {
        values.push(("packet-trace-multi".into(), Value::Array(multi)));
    }
}

/// The rtt record's `add_additional_data`.
fn rtt_data(values: &mut Vec<(String, Value)>, result: &Value) {
    let mut rtts: Map<String, Value> = Map::new();
    let mut ttls: Map<String, Value> = Map::new();
    let bump = |histogram: &mut Map<String, Value>, key: String| {
        let count = histogram.entry(key).or_insert(json!(0));
        *count = json!(count.as_i64().unwrap_or(0) + 1);
    };
    for trip in result
        .get("roundtrips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(rtt) = get_truthy(trip, "rtt")
            .and_then(Value::as_str)
            .and_then(iso8601_seconds)
        {
            bump(&mut rtts, format!("{:.2}", rtt * 1000.0));
        }
        if let Some(ttl) = get_truthy(trip, "ttl") {
            let key = match ttl {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            bump(&mut ttls, key);
        }
    }
    if !rtts.is_empty() {
        values.push(("histogram-rtt".into(), Value::Object(rtts)));
    }
    if !ttls.is_empty() {
        values.push(("histogram-ttl-reverse".into(), Value::Object(ttls)));
    }
    rate(values, "packet-loss-rate-bidir", result, "lost", "sent");
}

/// `parse_addresses` of the archiver (and the disk-to-disk record's own).
fn addresses(
    metadata: &mut Map<String, Value>,
    kind: Kind,
    spec: &Value,
    lead: &str,
    ip_version: Option<i64>,
    agent: Option<&str>,
    resolver: &dyn Resolve,
) -> Result<(), Refusal> {
    let field = |name: &str| -> Option<String> {
        spec.get(name).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let (input_source, input_dest, point_to_point) = match kind {
        Kind::DiskToDisk => {
            let host = |name: &str| {
                field(name)
                    .and_then(|url| url_host(&url))
                    .or_else(|| agent.map(str::to_owned))
            };
            (
                host("source").unwrap_or_else(|| lead.to_owned()),
                Some(host("dest").unwrap_or_else(|| lead.to_owned())),
                true,
            )
        }
        Kind::Raw => (lead.to_owned(), None, false),
        _ => {
            let dest = field("dest").ok_or_else(|| Refusal::bad("test.spec.dest is missing"))?;
            (
                field("source").unwrap_or_else(|| lead.to_owned()),
                Some(dest),
                true,
            )
        }
    };
    let (source, dest) = if point_to_point {
        normalize(
            resolver,
            Some(&input_source),
            input_dest.as_deref(),
            ip_version,
        )
    } else {
        normalize(
            resolver,
            Some(&input_source),
            Some(&input_source),
            ip_version,
        )
    };
    let ends: Vec<(&str, &str)> = match (point_to_point, input_dest.as_deref()) {
        (true, Some(dest)) => vec![("the source", &input_source), ("the destination", dest)],
        _ => vec![("the source", &input_source)],
    };
    let source = source.ok_or_else(|| unresolved(resolver, &ends, ip_version))?;
    metadata.insert(
        "subject-type".into(),
        json!(if point_to_point {
            "point-to-point"
        } else {
            "network-element"
        }),
    );
    if let (true, Some(input_dest)) = (point_to_point && kind != Kind::DiskToDisk, &input_dest) {
        metadata.insert("input-destination".into(), json!(input_dest));
    }
    metadata.insert("source".into(), json!(source.to_string()));
    if point_to_point {
        let dest = dest.ok_or_else(|| unresolved(resolver, &ends, ip_version))?;
        metadata.insert("destination".into(), json!(dest.to_string()));
    }
    metadata.insert("input-source".into(), json!(input_source));
    if kind == Kind::DiskToDisk {
        metadata.insert("input-destination".into(), json!(input_dest));
    }
    let source_text = source.to_string();
    let agent_host = agent.unwrap_or(lead);
    let agent = match agent {
        Some(agent) => normalize(resolver, Some(&source_text), Some(agent), None)
            .1
            .or_else(|| match kind {
                Kind::DiskToDisk => None,
                _ => normalize(resolver, Some(agent), Some(agent), ip_version).0,
            }),
        None => normalize(resolver, Some(&source_text), Some(lead), None).1,
    };
    let agent = agent.ok_or_else(|| {
        unresolved(
            resolver,
            &[
                ("the source", &source_text),
                ("the measurement agent", agent_host),
            ],
            None,
        )
    })?;
    metadata.insert("measurement-agent".into(), json!(agent.to_string()));
    Ok(())
}

/// Why hosts could not be given addresses of one family: the first that has no address
/// at all, else that they share no family (or lack the one `ip-version` asks for).
fn unresolved(resolver: &dyn Resolve, ends: &[(&str, &str)], ip_version: Option<i64>) -> Refusal {
    let detail = match ends
        .iter()
        .find(|(_, host)| resolver.resolve(host) == (None, None))
    {
        Some((what, host)) => {
            format!("cannot resolve {what} {host}: add it to the archive's host map (--hosts)")
        }
        None => {
            let hosts: Vec<&str> = ends.iter().map(|(_, host)| *host).collect();
            match ip_version {
                Some(v) => format!(
                    "no IPv{v} address for {} (test.spec.ip-version)",
                    hosts.join(" and ")
                ),
                None => format!("{} have no address family in common", hosts.join(" and ")),
            }
        }
    };
    Refusal {
        status: 422,
        detail,
    }
}

/// The host of a URL (`scheme://[user@]host[:port]/…`), as `urlparse(…).hostname`.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Seconds of an ISO 8601 duration as Python's `timedelta.total_seconds()` gives them
/// (whole microseconds); years and months are refused, as pScheduler refuses them.
pub fn iso8601_seconds(text: &str) -> Option<f64> {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let body = text.strip_prefix('P')?;
    let (date, time) = match body.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (body, None),
    };
    let mut micros = 0f64;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut rest = part;
        let mut last = 0;
        while !rest.is_empty() {
            let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))?;
            let number: f64 = rest[..end].replace(',', ".").parse().ok()?;
            let unit = rest[end..].chars().next()?;
            let at = units.iter().position(|(u, _)| *u == unit)?;
            if at < last {
                return None;
            }
            last = at + 1;
            micros += number * units[at].1;
            any = true;
            rest = &rest[end + unit.len_utf8()..];
        }
        Some(())
    };
    take(date, &[('W', 604_800e6), ('D', 86_400e6)])?;
    if let Some(time) = time {
        if time.is_empty() {
            return None;
        }
        take(time, &[('H', 3_600e6), ('M', 60e6), ('S', 1e6)])?;
    }
    if !any || !micros.is_finite() {
        return None;
    }
    let micros = micros.round_ties_even();
    Some(if negative { -micros } else { micros } / 1e6)
}

/// Epoch seconds of an ISO 8601 time (`2026-12-01T02:45:10+00:00`; no offset is UTC),
/// the fraction dropped as `calendar.timegm` drops it.
pub fn iso8601_epoch(text: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(t) = chrono::DateTime::parse_from_str(text, format) {
            return Some(t.timestamp());
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp());
        }
    }
    None
}

/// perfSONAR Logstash's `pscheduler.test_checksum` (pscheduler.md §3.2): SHA-256 of the
/// canonical JSON of `{"test", "observer_ip": null, "tool"}` (the observer's address is
/// never set when the filter runs).
pub fn test_checksum(body: &Value) -> String {
    let tool = body
        .get("tool")
        .and_then(|t| t.get("name"))
        .cloned()
        .unwrap_or(Value::Null);
    let object = json!({
        "test": body.get("test").cloned().unwrap_or(Value::Null),
        "observer_ip": Value::Null,
        "tool": tool,
    });
    let mut text = String::with_capacity(256);
    canonical(&mut text, &object);
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The canonical JSON of the Logstash filter's `to_json_c14n`: keys sorted by UTF-16
/// code units, no spaces, numbers in its own notation.
pub fn canonical(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => canonical_number(out, n),
        Value::String(s) => ruby_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(out, item);
            }
            out.push(']');
        }
        Value::Object(object) => {
            let mut keys: Vec<&String> = object.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ruby_string(out, key);
                out.push(':');
                canonical(out, &object[key]);
            }
            out.push('}');
        }
    }
}

/// A number as `to_json_c14n` writes it: `%.15E`, trailing zeros dropped, positional for
/// exponents −6 to 20.
fn canonical_number(out: &mut String, number: &serde_json::Number) {
    let value = number.as_f64().unwrap_or(0.0);
    if value == 0.0 {
        out.push('0');
        return;
    }
    if value < 0.0 {
        out.push('-');
    }
    let scientific = format!("{:.15E}", value.abs());
    let (mantissa, exponent) = scientific.split_once('E').unwrap_or((&scientific, "0"));
    let mut exponent: i32 = exponent.parse().unwrap_or(0);
    let (integral, fractional) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut integral = integral.to_owned();
    let mut fractional = fractional.trim_end_matches('0').to_owned();
    let mut suffix = None;
    if exponent > 0 && exponent < 21 {
        while exponent > 0 {
            let digit = if fractional.is_empty() {
                '0'
            } else {
                fractional.remove(0)
            };
            integral.push(digit);
            exponent -= 1;
        }
    } else if exponent < 0 && exponent > -7 {
        fractional = format!(
            "{}{integral}{fractional}",
            "0".repeat((-exponent - 1) as usize)
        );
        integral = "0".into();
    } else if exponent != 0 {
        suffix = Some(if exponent > 0 {
            format!("e+{exponent}")
        } else {
            format!("e{exponent}")
        });
    }
    out.push_str(&integral);
    if !fractional.is_empty() {
        out.push('.');
        out.push_str(&fractional);
    }
    if let Some(suffix) = suffix {
        out.push_str(&suffix);
    }
}

/// A string as Ruby's `to_json` writes it: UTF-8 kept, `"` `\` and control characters
/// escaped, `/` not.
fn ruby_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// What of a body the archive keeps with the run: everything but the task (its spec may
/// hold secrets, §1.5), the raw per-participant results and the merged copy in `run`, and
/// with each `diags` longer than `max_diags` bytes cut to that (they are most of a
/// throughput body: the tool's whole output).
pub fn kept(mut body: Value, max_diags: usize) -> Value {
    if let Some(object) = body.as_object_mut() {
        object.remove("task");
        if let Some(Value::Object(run)) = object.get_mut("run") {
            run.remove("result-full");
            run.remove("result-merged");
        }
        if let Some(result) = object.get_mut("result") {
            cut_diags(result, max_diags);
        }
    }
    body
}

fn cut_diags(value: &mut Value, max: usize) {
    if let Some(Value::String(diags)) = value.get_mut("diags") {
        if diags.len() > max {
            let mut end = max;
            while !diags.is_char_boundary(end) {
                end -= 1;
            }
            diags.truncate(end);
            diags.push_str(" […]");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixtures' hosts, as their testbed's `/etc/hosts` had them.
    pub(crate) const TESTBED_HOSTS: &str = "198.51.100.10 ps-a.example.net\n2001:db8:a::10 ps-a.example.net\n203.0.113.20 ps-b.example.net\n2001:db8:b::20 ps-b.example.net\n";

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/pscheduler/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    fn testbed() -> Resolver {
        let mut resolver = Resolver::default();
        resolver.add_hosts(TESTBED_HOSTS).unwrap();
        resolver
    }

    /// Every fixture maps to what the real esmond archiver sent for it: the same metadata
    /// POST and the same point, value for value and type for type (key order aside).
    #[test]
    fn every_fixture_maps_as_the_esmond_archiver_sent_it() {
        let index = fixture("index.json");
        let cases = index.as_array().unwrap();
        assert_eq!(cases.len(), 11);
        for case in cases {
            let file = case["file"].as_str().unwrap();
            let body = fixture(file);
            let sent = fixture(&file.replace(".json", ".esmond.json"));
            let mapped = map(&body, &testbed(), &Options::default()).unwrap();
            let got = mapped.to_json();
            assert_eq!(got["metadata"], sent["metadata"], "{file}: metadata");
            assert_eq!(got["data"], sent["data"], "{file}: data");
            // In the archiver's order, too.
            let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(&got["metadata"]), keys(&sent["metadata"]), "{file}");
        }
    }

    /// The test checksum of every fixture is the one perfSONAR's Logstash computed, from
    /// the same canonical text.
    #[test]
    fn every_fixture_has_logstash_s_test_checksum() {
        let expected = fixture("test_checksums.json");
        for case in expected.as_array().unwrap() {
            let body = fixture(case["file"].as_str().unwrap());
            let object = json!({
                "test": body["test"],
                "observer_ip": null,
                "tool": body["tool"]["name"],
            });
            let mut text = String::new();
            canonical(&mut text, &object);
            assert_eq!(text, case["canonical"].as_str().unwrap());
            assert_eq!(
                test_checksum(&body),
                case["test_checksum"].as_str().unwrap()
            );
        }
    }

    /// A change to a body, and the status and message it is refused with.
    type Case = (fn(&mut Value), u16, &'static str);

    #[test]
    fn unusable_bodies_are_refused_with_the_reason() {
        let good = fixture("rtt_ping.json");
        let cases: Vec<Case> = vec![
            (|b| { b["test"] = Value::Null; b["task"] = Value::Null }, 400, "test (or task.test) is missing"),
            (|b| b["tool"] = json!({}), 400, "tool.name is missing or not a string"),
            (|b| b["schedule"]["start"] = json!("soon"), 400, "schedule.start is not an ISO 8601 time: soon"),
            (|b| b["schedule"]["duration"] = json!("P1M"), 400, "schedule.duration is not an ISO 8601 duration: P1M"),
            (|b| b["participants"] = json!([]), 400, "participants is missing or empty"),
            (|b| b["result"] = Value::Null, 400, "result is missing or not an object"),
            (|b| b["id"] = json!(7), 400, "id is missing or not a string"),
            (
                |b| b["test"]["spec"]["dest"] = json!("nowhere.invalid"),
                422,
                "cannot resolve the destination nowhere.invalid: add it to the archive's host map (--hosts)",
            ),
        ];
        let mut resolver = testbed();
        resolver.system = false;
        resolver
            .add_hosts("2001:db8:c::1 v6only.example\n")
            .unwrap();
        let more: Vec<Case> = vec![
            (
                |b| b["test"]["spec"]["dest"] = json!("v6only.example"),
                422,
                "198.51.100.10 and v6only.example have no address family in common",
            ),
            (
                |b| b["test"]["spec"]["ip-version"] = json!(6),
                422,
                "no IPv6 address for 198.51.100.10 and 203.0.113.20 (test.spec.ip-version)",
            ),
        ];
        for (change, status, detail) in cases.into_iter().chain(more) {
            let mut body = good.clone();
            change(&mut body);
            let refusal = map(&body, &resolver, &Options::default()).unwrap_err();
            assert_eq!((refusal.status, refusal.detail.as_str()), (status, detail));
        }
        assert_eq!(
            map(&json!([1]), &resolver, &Options::default())
                .unwrap_err()
                .detail,
            "the body is not a JSON object"
        );
    }

    /// The fixes change only what they are for.
    #[test]
    fn fixes_recover_what_the_archiver_drops() {
        let resolver = testbed();
        let fixes = |fixes: Fixes| Options {
            fixes,
            ..Options::default()
        };
        let value = |mapped: &Mapped, et: &str| {
            mapped
                .values
                .iter()
                .find(|(e, _)| e == et)
                .map(|(_, v)| v.clone())
        };
        let udp = fixture("throughput_udp.json");
        let plain = map(&udp, &resolver, &Options::default()).unwrap();
        assert_eq!(value(&plain, "packet-count-lost"), Some(json!(0)));
        let fixed = map(
            &udp,
            &resolver,
            &fixes(Fixes {
                udp_loss_from_streams: true,
                ..Fixes::default()
            }),
        )
        .unwrap();
        let lost: i64 = udp["result"]["summary"]["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["lost"].as_i64().unwrap())
            .sum();
        assert!(lost > 0);
        assert_eq!(value(&fixed, "packet-count-lost"), Some(json!(lost)));
        assert_eq!(
            value(&fixed, "packet-loss-rate"),
            Some(
                json!({"numerator": lost, "denominator": udp["result"]["summary"]["summary"]["sent"]})
            )
        );
        let four = fixture("throughput_tcp_4streams.json");
        let plain = map(&four, &resolver, &Options::default()).unwrap();
        assert_eq!(plain.metadata.get("ip-tos"), None);
        assert_eq!(value(&plain, "streams-packet-retransmits"), None);
        assert_eq!(
            plain.unregistered(),
            [
                "streams-packet-rtt",
                "streams-packet-rtt-subintervals",
                "streams-tcp-windowsize-subintervals"
            ]
        );
        let fixed = map(
            &four,
            &resolver,
            &fixes(Fixes {
                streams: true,
                spec_map: true,
                ..Fixes::default()
            }),
        )
        .unwrap();
        assert_eq!(fixed.metadata.get("ip-tos"), Some(&json!(32)));
        assert_eq!(
            value(&fixed, "streams-packet-retransmits"),
            Some(json!([0, 0, 0, 0]))
        );
        let failed = fixture("throughput_failed.json");
        assert!(map(&failed, &resolver, &Options::default())
            .unwrap()
            .unregistered()
            .is_empty());
        let mut raw_failed = fixture("unknown_http.json");
        raw_failed["result"] = json!({"succeeded": false, "error": "curl: timeout"});
        let mapped = map(&raw_failed, &resolver, &Options::default()).unwrap();
        assert_eq!(mapped.unregistered(), ["failures"]);
    }

    #[test]
    fn durations_are_python_timedeltas() {
        assert_eq!(iso8601_seconds("PT19S"), Some(19.0));
        assert_eq!(iso8601_seconds("P1DT2S"), Some(86402.0));
        assert_eq!(iso8601_seconds("PT0.000083S"), Some(8.3e-5));
        assert_eq!(iso8601_seconds("PT0.5M"), Some(30.0));
        assert_eq!(iso8601_seconds("P1W"), Some(604800.0));
        assert_eq!(iso8601_seconds("PT1H2M3.5S"), Some(3723.5));
        for bad in ["", "P", "PT", "P1Y", "P2M", "19S", "PT1S2M", "PTXS"] {
            assert_eq!(iso8601_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn times_are_epoch_seconds() {
        assert_eq!(iso8601_epoch("2026-12-01T02:48:26+00:00"), Some(1796093306));
        assert_eq!(iso8601_epoch("2026-12-01T03:48:26+01:00"), Some(1796093306));
        assert_eq!(iso8601_epoch("2026-12-01T02:48:26.9Z"), Some(1796093306));
        assert_eq!(iso8601_epoch("2026-12-01T02:48:26"), Some(1796093306));
        assert_eq!(iso8601_epoch("yesterday"), None);
    }

    #[test]
    fn numbers_are_canonical_as_the_ruby_filter_writes_them() {
        let cases = [
            ("0", "0"),
            ("0.0", "0"),
            ("1", "1"),
            ("1.0", "1"),
            ("2100000000", "2100000000"),
            ("0.001", "0.001"),
            ("0.1", "0.1"),
            ("15.5", "15.5"),
            ("-3", "-3"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("1.5e-7", "1.5e-7"),
            ("0.000001", "0.000001"),
            ("123.456", "123.456"),
        ];
        for (json, want) in cases {
            let value: Value = serde_json::from_str(json).unwrap();
            let mut out = String::new();
            canonical(&mut out, &value);
            assert_eq!(out, want, "{json}");
        }
        let mut out = String::new();
        canonical(
            &mut out,
            &json!({"b": "a/\"\u{1}é", "a": [true, null], "B": 1}),
        );
        assert_eq!(out, r#"{"B":1,"a":[true,null],"b":"a/\"\u0001é"}"#);
    }

    #[test]
    fn urls_give_their_hosts() {
        assert_eq!(
            url_host("ftp://user@Host.example:21/x"),
            Some("host.example".into())
        );
        assert_eq!(
            url_host("http://[2001:db8::1]:80/"),
            Some("2001:db8::1".into())
        );
        assert_eq!(url_host("/local/path"), None);
    }

    #[test]
    fn a_host_map_keeps_the_last_address_of_each_family() {
        let mut resolver = Resolver::default();
        resolver
            .add_hosts(
                "# c\n198.51.100.9 a.example\n198.51.100.10 a.example b\n2001:db8::1 a.example\n",
            )
            .unwrap();
        assert_eq!(
            resolver.resolve("A.example"),
            (
                Some("198.51.100.10".parse().unwrap()),
                Some("2001:db8::1".parse().unwrap())
            )
        );
        assert_eq!(resolver.resolve("c.example"), (None, None));
        assert_eq!(
            Resolver::default().add_hosts("x a\n"),
            Err((1, "not an IP address: x".into()))
        );
    }

    /// Any JSON value, a few levels deep, with the keys the mapping looks for.
    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let keys = prop::sample::select(vec![
            "summary",
            "streams",
            "intervals",
            "stream-id",
            "start",
            "end",
            "throughput-bits",
            "retransmits",
            "rtt",
            "tcp-window-size",
            "paths",
            "ip",
            "mtu",
            "error",
            "roundtrips",
            "ttl",
            "sent",
            "lost",
            "succeeded",
            "parallel",
            "udp",
            "dest",
            "source",
            "ip-version",
            "algorithm",
            "histogram-latency",
            "packets-sent",
            "packets-lost",
            "x",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(float),
            "[A-Za-z0-9:.PTSMHDW-]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((keys.clone(), inner), 0..6).prop_map(|entries| {
                    Value::Object(
                        entries
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v))
                            .collect(),
                    )
                }),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever a body holds where a result or a spec should be, mapping it answers
        /// (a mapping or a refusal) and never panics; so do the checksum and the times.
        #[test]
        fn any_result_or_spec_maps_or_is_refused(
            result in any_json(),
            spec in any_json(),
            kind in proptest::sample::select(vec!["throughput", "latency", "trace", "rtt", "disk-to-disk", "http"]),
            text in "\\PC{0,24}",
        ) {
            let mut body = fixture("rtt_ping.json");
            body["result"] = result;
            body["test"]["type"] = json!(kind);
            if let Value::Object(mut spec) = spec {
                spec.insert("dest".into(), json!("203.0.113.20"));
                body["test"]["spec"] = Value::Object(spec);
            }
            let mut resolver = testbed();
            resolver.system = false;
            for policy in [Policy::PreferMapped, Policy::MappedAndRaw, Policy::MappedOnly, Policy::RawOnly] {
                let options = Options {
                    policy,
                    fixes: Fixes { streams: true, spec_map: true, udp_loss_from_streams: true },
                    ..Options::default()
                };
                let _ = map(&body, &resolver, &options);
            }
            let _ = test_checksum(&body);
            let _ = iso8601_seconds(&text);
            let _ = iso8601_epoch(&text);
        }
    }
}
