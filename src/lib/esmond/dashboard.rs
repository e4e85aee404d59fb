//! The archive's dashboard: HTML pages made by the server from the store, with inline SVG
//! charts and CSS, no scripts, fonts or anything else fetched (readable without
//! JavaScript, and allowed nothing else by its Content-Security-Policy).
//!
//! `/` lists the test pairs (source → destination, tool) with the latest throughput,
//! latency, loss and traceroute path of each; `/dashboard/KEY` charts each event type of
//! one metadata over its last days and lists its traceroute paths with the changes marked.

use std::fmt::Write as _;

use serde_json::Value;

use super::statistics;
use super::store::{Metadata, Store};
use super::types::{self, Storage};
use super::Failure;
use crate::html::escape as esc;

/// Test pairs listed per page of the overview.
pub const PAGE: u64 = 100;
/// Days a detail page shows when the request names none, and the most it may name.
pub const DAYS: u64 = 7;
const MAX_DAYS: u64 = 3_660;
/// Points read for one chart at most (the newest); charts draw at most [`DRAWN`].
const READ: u64 = 50_000;
const DRAWN: usize = 720;
/// Traceroute results read for one path table at most (the newest).
const TRACES: u64 = 5_000;

/// The Content-Security-Policy the pages are served with: inline styles and nothing else.
pub const POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'self'";

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1a1a1a;max-width:1100px}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.5em 0}th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
.badge{background:#c0392b;color:#fff;border-radius:3px;padding:0 .4em;font-size:.85em;font-weight:600}\
mark.changed{background:#f9d4cf;color:#7b1d12;font-weight:600}\
ol.path{margin:0;padding-left:1.6em}.muted{color:#777}\
svg{display:block;margin:.3em 0;background:#fafafa;border:1px solid #e5e5e5}\
svg text{font:11px sans-serif;fill:#555}";

/// The overview page: page `page` (from 1) of the test pairs.
pub fn overview(store: &Store, page: u64) -> Result<String, Failure> {
    let page = page.max(1);
    let (listed, total) = store.listing(PAGE, (page - 1).saturating_mul(PAGE))?;
    let pages = total.div_ceil(PAGE).max(1);
    let mut html = head("Measurements");
    let _ = write!(
        html,
        "<h1>Measurements</h1><p>{total} test{} in the archive{}.</p>",
        if total == 1 { "" } else { "s" },
        if pages > 1 {
            format!("; page {page} of {pages}")
        } else {
            String::new()
        }
    );
    if listed.is_empty() {
        html.push_str("<p class=muted>Nothing has been archived yet.</p>");
    } else {
        html.push_str(
            "<table class=pairs><thead><tr><th>Source → destination</th><th>Tool</th>\
             <th>Throughput</th><th>Latency</th><th>Loss</th><th>Path</th><th>Latest result (UTC)</th>\
             </tr></thead><tbody>",
        );
        for metadata in &listed {
            row(store, metadata, &mut html)?;
        }
        html.push_str("</tbody></table>");
    }
    if pages > 1 {
        html.push_str("<nav>");
        if page > 1 {
            let _ = write!(html, "<a href=\"/?page={}\">← previous</a> ", page - 1);
        }
        if page < pages {
            let _ = write!(html, "<a href=\"/?page={}\">next →</a>", page + 1);
        }
        html.push_str("</nav>");
    }
    html.push_str("</body></html>");
    Ok(html)
}

/// One overview row: the pair, its tool and the latest value of each kind it measures.
fn row(store: &Store, metadata: &Metadata, html: &mut String) -> Result<(), Failure> {
    let key = metadata.key.as_str();
    let latest = |names: &[&str]| -> Result<Option<(String, i64, Value)>, Failure> {
        for name in names {
            if has(metadata, name) {
                if let Some((ts, value)) = store.recent(key, name, i64::MIN, 1)?.pop() {
                    return Ok(Some(((*name).to_owned(), ts, value)));
                }
            }
        }
        Ok(None)
    };
    let _ = write!(
        html,
        "<tr><td><a href=\"/dashboard/{}\">{}</a></td><td>{}</td>",
        esc(key),
        esc(&pair(metadata)),
        esc(subject(metadata, "tool-name").unwrap_or("")),
    );
    for kinds in [
        &["throughput"][..],
        &["histogram-owdelay", "histogram-rtt"],
        &["packet-loss-rate", "packet-loss-rate-bidir"],
    ] {
        match latest(kinds)? {
            Some((name, ts, value)) => match number(&name, &value) {
                Some(n) => {
                    let _ = write!(
                        html,
                        "<td class=n title=\"{} at {}\">{}</td>",
                        esc(&name),
                        time(ts),
                        esc(&format_value(&name, n))
                    );
                }
                None => html.push_str("<td></td>"),
            },
            None => html.push_str("<td></td>"),
        }
    }
    html.push_str("<td>");
    if has(metadata, "packet-trace") {
        let last_two = store.recent(key, "packet-trace", i64::MIN, 2)?;
        let paths: Vec<Vec<Hop>> = last_two.iter().map(|(_, v)| hops(v)).collect();
        if let Some(path) = paths.last() {
            let _ = write!(
                html,
                "{} hop{}",
                path.len(),
                if path.len() == 1 { "" } else { "s" }
            );
            if paths.len() == 2 && paths[0] != paths[1] {
                let _ = write!(
                    html,
                    " <span class=badge title=\"the path changed at {}\">changed</span>",
                    time(last_two[1].0)
                );
            }
        }
    }
    let updated = metadata
        .event_types
        .iter()
        .flat_map(|(_, series)| series.iter().filter_map(|s| s.updated))
        .max();
    let _ = write!(
        html,
        "</td><td>{}</td></tr>",
        updated.map(time).unwrap_or_default()
    );
    Ok(())
}

/// The page of metadata `key`: each event type over the `days` before its newest point;
/// `None` when there is no such metadata.
pub fn detail(store: &Store, key: &str, days: u64) -> Result<Option<String>, Failure> {
    let Some(metadata) = store.metadata(key)? else {
        return Ok(None);
    };
    let days = days.clamp(1, MAX_DAYS);
    let end = metadata
        .event_types
        .iter()
        .flat_map(|(_, series)| series.iter().filter_map(|s| s.updated))
        .max()
        .unwrap_or(0);
    let begin = end.saturating_sub(days as i64 * 86_400);
    let title = format!(
        "{} ({})",
        pair(&metadata),
        subject(&metadata, "tool-name").unwrap_or("")
    );
    let mut html = head(&title);
    let _ = write!(
        html,
        "<p><a href=\"/\">← all tests</a></p><h1>{}</h1><p>The {days} day{} to {} UTC. \
         Other spans: <a href=\"?days=1\">1 day</a> · <a href=\"?days=7\">7 days</a> · \
         <a href=\"?days=30\">30 days</a> · <a href=\"?days=365\">a year</a>.</p>",
        esc(&title),
        if days == 1 { "" } else { "s" },
        time(end)
    );
    html.push_str("<details><summary>Metadata</summary><table>");
    let _ = write!(
        html,
        "<tr><th>metadata-key</th><td>{}</td></tr><tr><th>subject-type</th><td>{}</td></tr>",
        esc(key),
        esc(&metadata.subject_type)
    );
    for (name, value) in metadata
        .subject
        .iter()
        .map(|(n, v)| (*n, v.as_str()))
        .chain(
            metadata
                .parameters
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
        )
    {
        let _ = write!(
            html,
            "<tr><th>{}</th><td>{}</td></tr>",
            esc(name),
            esc(value)
        );
    }
    html.push_str("</table></details>");
    for (event_type, _) in &metadata.event_types {
        let name = event_type.as_str();
        match types::storage(name) {
            _ if name == "packet-trace" => {
                let traces = store.recent(key, name, begin, TRACES)?;
                section(&mut html, name, traces.len());
                trace_table(&traces, &mut html);
            }
            _ if name == "failures" => {
                let failures = store.recent(key, name, begin, 100)?;
                section(&mut html, name, failures.len());
                failure_table(&failures, &mut html);
            }
            Some(Storage::Integer | Storage::Float | Storage::Percentage | Storage::Histogram) => {
                let points: Vec<(i64, f64)> = store
                    .recent(key, name, begin, READ)?
                    .iter()
                    .filter_map(|(ts, v)| Some((*ts, number(name, v)?)))
                    .collect();
                section(&mut html, name, points.len());
                if !points.is_empty() {
                    html.push_str(&chart(name, &points, (begin, end)));
                }
            }
            // Subintervals, per-stream lists, raw results: the API serves them.
            _ => continue,
        }
        html.push_str("</section>");
    }
    html.push_str("</body></html>");
    Ok(Some(html))
}

/// Opens a section: its heading and its count of results.
fn section(html: &mut String, event_type: &str, count: usize) {
    let _ = write!(
        html,
        "<section id=\"{0}\"><h2>{0}</h2><p class=muted>{1} result{2} in this span{3}</p>",
        esc(event_type),
        count,
        if count == 1 { "" } else { "s" },
        match unit(event_type) {
            "" => String::new(),
            unit => format!("; {}", esc(unit)),
        }
    );
}

/// What a chart's values are.
fn unit(event_type: &str) -> &'static str {
    match event_type {
        "throughput" => "bits per second",
        "histogram-owdelay" | "histogram-rtt" => "median, milliseconds",
        "histogram-ttl" | "histogram-ttl-reverse" => "median hops",
        "packet-loss-rate" | "packet-loss-rate-bidir" => "per cent of packets lost",
        _ => "",
    }
}

/// The number a point is charted as: the value; a loss rate in per cent; a histogram's
/// median.
fn number(event_type: &str, value: &Value) -> Option<f64> {
    match value {
        Value::Object(histogram) => statistics::statistics(histogram)["median"].as_f64(),
        Value::Number(n) if event_type.starts_with("packet-loss-rate") => Some(n.as_f64()? * 100.0),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// A value as the overview shows it: throughput with an SI prefix, delays in ms, loss in %.
fn format_value(event_type: &str, n: f64) -> String {
    match event_type {
        "throughput" => format!("{}b/s", si(n)),
        "histogram-owdelay" | "histogram-rtt" => format!("{} ms", short(n)),
        e if e.starts_with("packet-loss-rate") => format!("{} %", short(n)),
        _ => si(n),
    }
}

/// `n` with an SI prefix and three significant digits (`9.41 G`).
fn si(n: f64) -> String {
    let prefixes = [(1e12, " T"), (1e9, " G"), (1e6, " M"), (1e3, " k")];
    for (scale, prefix) in prefixes {
        if n.abs() >= scale {
            return format!("{}{prefix}", short(n / scale));
        }
    }
    format!("{} ", short(n))
}

/// Three significant digits, no trailing zeros.
fn short(n: f64) -> String {
    if n == 0.0 || !n.is_finite() {
        return format!("{n}");
    }
    let decimals = (2 - n.abs().log10().floor() as i32).clamp(0, 6) as usize;
    let text = format!("{n:.decimals$}");
    match text.contains('.') {
        true => text.trim_end_matches('0').trim_end_matches('.').to_owned(),
        false => text,
    }
}

/// A line chart of `points` (time, value) over `span`, as inline SVG: a line, a dot with
/// its value as a tooltip per point (up to [`DRAWN`], the mean of neighbours beyond),
/// five labelled gridlines and four labelled times.
fn chart(event_type: &str, points: &[(i64, f64)], span: (i64, i64)) -> String {
    let (width, height, left, right, top, bottom) = (760.0, 220.0, 78.0, 12.0, 12.0, 28.0);
    let group = points.len().div_ceil(DRAWN).max(1);
    let drawn: Vec<(i64, f64)> = points
        .chunks(group)
        .map(|c| {
            let ts = c[c.len() / 2].0;
            (ts, c.iter().map(|p| p.1).sum::<f64>() / c.len() as f64)
        })
        .collect();
    let high = drawn.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    let low = drawn.iter().map(|p| p.1).fold(f64::MAX, f64::min).min(0.0);
    let high = if high > low { high * 1.05 } else { low + 1.0 };
    let (begin, end) = (span.0.min(drawn[0].0), span.1.max(drawn[drawn.len() - 1].0));
    let x =
        |ts: i64| left + (ts - begin) as f64 / (end - begin).max(1) as f64 * (width - left - right);
    let y = |v: f64| top + (high - v) / (high - low) * (height - top - bottom);
    let mut svg = format!(
        "<svg class=chart data-event-type=\"{}\" data-points=\"{}\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=img aria-label=\"{} over time\">",
        esc(event_type),
        drawn.len(),
        esc(event_type)
    );
    for step in 0..=4 {
        let v = low + (high - low) * step as f64 / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{x2}\" y1=\"{at:.1}\" y2=\"{at:.1}\" stroke=\"#e0e0e0\"/><text x=\"{label}\" y=\"{base:.1}\" text-anchor=end>{text}</text>",
            x2 = width - right,
            at = y(v),
            label = left - 6.0,
            base = y(v) + 4.0,
            text = esc(&format_value(event_type, v))
        );
    }
    for step in 0..=3 {
        let ts = begin + (end - begin) * step / 3;
        let anchor = ["start", "middle", "middle", "end"][step as usize];
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor={anchor}>{}</text>",
            x(ts),
            height - 8.0,
            time(ts)
        );
    }
    let line: Vec<String> = drawn
        .iter()
        .map(|&(ts, v)| format!("{:.1},{:.1}", x(ts), y(v)))
        .collect();
    let _ = write!(
        svg,
        "<polyline fill=none stroke=\"#2266aa\" stroke-width=\"1.5\" points=\"{}\"/>",
        line.join(" ")
    );
    for &(ts, v) in &drawn {
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"#2266aa\"><title>{} UTC: {}</title></circle>",
            x(ts),
            y(v),
            time(ts),
            esc(&format_value(event_type, v))
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One hop of a traceroute path: its address (`*` when none answered) and name.
#[derive(Debug, Clone, PartialEq)]
struct Hop {
    ip: String,
    name: Option<String>,
}

/// The hops of a `packet-trace` value in TTL order (the first query of each TTL).
fn hops(value: &Value) -> Vec<Hop> {
    let mut hops: Vec<(i64, Hop)> = Vec::new();
    for hop in value.as_array().into_iter().flatten() {
        let ttl = hop["ttl"].as_i64().unwrap_or(hops.len() as i64 + 1);
        if hops.iter().any(|(t, _)| *t == ttl) {
            continue;
        }
        let ip = hop["ip"].as_str().unwrap_or("*").to_owned();
        let name = hop["hostname"].as_str().map(str::to_owned);
        hops.push((ttl, Hop { ip, name }));
    }
    hops.sort_by_key(|(ttl, _)| *ttl);
    hops.into_iter().map(|(_, hop)| hop).collect()
}

/// A path and the results that took it one after another.
#[derive(Debug, PartialEq)]
struct PathRun {
    first: i64,
    last: i64,
    count: usize,
    hops: Vec<Hop>,
}

/// Consecutive results with the same path (by address), oldest first.
fn path_runs(traces: &[(i64, Value)]) -> Vec<PathRun> {
    let mut runs: Vec<PathRun> = Vec::new();
    for (ts, value) in traces {
        let path = hops(value);
        match runs.last_mut() {
            Some(run) if same_path(&run.hops, &path) => {
                run.last = *ts;
                run.count += 1;
            }
            _ => runs.push(PathRun {
                first: *ts,
                last: *ts,
                count: 1,
                hops: path,
            }),
        }
    }
    runs
}

fn same_path(a: &[Hop], b: &[Hop]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.ip == y.ip)
}

/// The traceroute paths, newest first, each hop that differs from the path before it
/// marked, and each change labelled.
fn trace_table(traces: &[(i64, Value)], html: &mut String) {
    let runs = path_runs(traces);
    if runs.is_empty() {
        return;
    }
    let changes = runs.len() - 1;
    let _ = write!(
        html,
        "<p>{} path{} and {changes} change{} in this span.</p><table class=trace><thead><tr>\
         <th>From (UTC)</th><th>To (UTC)</th><th>Results</th><th>Path</th></tr></thead><tbody>",
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
        if changes == 1 { "" } else { "s" },
    );
    for (i, run) in runs.iter().enumerate().rev() {
        let before = i.checked_sub(1).map(|j| &runs[j].hops);
        let _ = write!(
            html,
            "<tr{}><td>{}</td><td>{}</td><td class=n>{}</td><td>",
            if before.is_some() {
                " class=changed"
            } else {
                ""
            },
            time(run.first),
            time(run.last),
            run.count
        );
        if before.is_some() {
            html.push_str("<span class=badge>path changed</span>");
        }
        html.push_str("<ol class=path>");
        for (n, hop) in run.hops.iter().enumerate() {
            let changed = before.is_some_and(|b| b.get(n).is_none_or(|h| h.ip != hop.ip));
            let label = match &hop.name {
                Some(name) if name != &hop.ip => format!("{} ({})", esc(&hop.ip), esc(name)),
                _ => esc(&hop.ip),
            };
            match changed {
                true => {
                    let _ = write!(html, "<li><mark class=changed>{label}</mark></li>");
                }
                false => {
                    let _ = write!(html, "<li>{label}</li>");
                }
            }
        }
        html.push_str("</ol>");
        if let Some(gone) = before.filter(|b| b.len() > run.hops.len()) {
            let _ = write!(
                html,
                "<p class=muted>{} hop{} fewer than before</p>",
                gone.len() - run.hops.len(),
                if gone.len() - run.hops.len() == 1 {
                    ""
                } else {
                    "s"
                }
            );
        }
        html.push_str("</td></tr>");
    }
    html.push_str("</tbody></table>");
}

/// The newest failures with their messages.
fn failure_table(failures: &[(i64, Value)], html: &mut String) {
    if failures.is_empty() {
        return;
    }
    html.push_str(
        "<table class=failures><thead><tr><th>When (UTC)</th><th>Error</th></tr></thead><tbody>",
    );
    for (ts, value) in failures.iter().rev() {
        let error = match &value["error"] {
            Value::String(text) => text.clone(),
            Value::Null => value.to_string(),
            other => other.to_string(),
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td></tr>",
            time(*ts),
            esc(&error)
        );
    }
    html.push_str("</tbody></table>");
}

/// Whether the metadata has an event type.
fn has(metadata: &Metadata, event_type: &str) -> bool {
    metadata.event_types.iter().any(|(e, _)| e == event_type)
}

/// A subject field's value.
fn subject<'m>(metadata: &'m Metadata, field: &str) -> Option<&'m str> {
    metadata
        .subject
        .iter()
        .find(|(name, _)| *name == field)
        .map(|(_, v)| v.as_str())
}

/// `source → destination`, or the one end a network-element metadata has.
fn pair(metadata: &Metadata) -> String {
    let source = subject(metadata, "source")
        .or_else(|| subject(metadata, "measurement-agent"))
        .unwrap_or("?");
    match subject(metadata, "destination") {
        Some(destination) => format!("{source} → {destination}"),
        None => source.to_owned(),
    }
}

/// Epoch seconds as `2026-12-01 02:47`, UTC.
fn time(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| ts.to_string())
}

/// A page's head, its style inline.
fn head(title: &str) -> String {
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width\"><title>{}</title><style>{STYLE}</style></head><body>",
        esc(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trace(ips: &[&str]) -> Value {
        Value::Array(
            ips.iter()
                .enumerate()
                .map(|(i, ip)| match *ip {
                    "*" => json!({"ttl": i + 1, "query": 1, "success": 0}),
                    ip => json!({"ttl": i + 1, "query": 1, "success": 1, "ip": ip}),
                })
                .collect(),
        )
    }

    #[test]
    fn consecutive_equal_paths_are_one_run_and_a_changed_hop_is_marked() {
        let traces = vec![
            (10, trace(&["10.0.0.1", "*", "10.0.0.9"])),
            (20, trace(&["10.0.0.1", "*", "10.0.0.9"])),
            (30, trace(&["10.0.0.1", "10.0.0.5", "10.0.0.9"])),
            (40, trace(&["10.0.0.1", "*", "10.0.0.9"])),
        ];
        let runs = path_runs(&traces);
        assert_eq!(
            runs.iter()
                .map(|r| (r.first, r.last, r.count))
                .collect::<Vec<_>>(),
            vec![(10, 20, 2), (30, 30, 1), (40, 40, 1)]
        );
        let mut html = String::new();
        trace_table(&traces, &mut html);
        assert_eq!(
            html.matches("<span class=badge>path changed</span>")
                .count(),
            2
        );
        assert_eq!(
            html.matches("<mark class=changed>")
                .collect::<Vec<_>>()
                .len(),
            2
        );
        assert!(html.contains("<mark class=changed>10.0.0.5</mark>"));
        assert!(html.contains("<mark class=changed>*</mark>"));
        assert!(html.contains("3 paths and 2 changes in this span."));
    }

    #[test]
    fn values_are_charted_as_numbers_of_their_kind() {
        assert_eq!(number("throughput", &json!(9.4e9)), Some(9.4e9));
        assert_eq!(number("packet-loss-rate", &json!(0.25)), Some(25.0));
        assert_eq!(
            number("histogram-owdelay", &json!({"0.5": 1, "0.7": 5, "3": 1})),
            Some(0.7)
        );
        assert_eq!(number("failures", &json!({"error": "x"})), None);
        assert_eq!(format_value("throughput", 9_412_000_000.0), "9.41 Gb/s");
        assert_eq!(format_value("histogram-rtt", 0.25), "0.25 ms");
        assert_eq!(format_value("packet-loss-rate", 12.0), "12 %");
    }

    #[test]
    fn a_chart_draws_every_point_up_to_its_limit_and_averages_beyond() {
        let points: Vec<(i64, f64)> = (0..10).map(|i| (i * 60, i as f64)).collect();
        let svg = chart("throughput", &points, (0, 600));
        assert_eq!(svg.matches("<circle").count(), 10);
        assert!(svg.contains("data-points=\"10\""));
        let many: Vec<(i64, f64)> = (0..3_000).map(|i| (i, 1.0)).collect();
        let svg = chart("throughput", &many, (0, 3_000));
        assert_eq!(svg.matches("<circle").count(), 600);
    }
}
