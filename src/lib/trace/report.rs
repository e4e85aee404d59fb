//! Reports of a task: per series (tracer, series, unit and instance) the count, min, mean,
//! max and the 50th, 95th and 99th percentiles (nearest rank) as text, CSV or NDJSON, and
//! one self-contained HTML page with an SVG chart per series. scalpels printed raw tables
//! and Google Charts pages that loaded `google.com/jsapi`; it computed no statistics.

use std::fmt::Write as _;
use std::io::Write;

use serde::Serialize;

use super::store::{Store, TaskInfo};
use crate::html::escape as esc;
use crate::Error;

/// How a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An aligned table.
    Text,
    /// CSV.
    Csv,
    /// NDJSON.
    Json,
}

/// Points drawn per chart at most (the extremes of each slice of time are kept).
pub const MAX_POINTS: usize = 2000;

/// One series' statistics. A series of non-numeric samples (raw lines, JSON) has a count
/// and no numbers.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// The task.
    pub task: String,
    /// The tracer.
    pub tracer: String,
    /// The series.
    pub series: String,
    /// Its unit.
    pub unit: String,
    /// Its string and integer fields (`dev=lo`, `pid=42 comm=nova`), empty if none.
    pub instance: String,
    /// Samples.
    pub count: u64,
    /// The smallest value.
    pub min: Option<f64>,
    /// The mean.
    pub mean: Option<f64>,
    /// The largest value.
    pub max: Option<f64>,
    /// The median (nearest rank).
    pub p50: Option<f64>,
    /// The 95th percentile (nearest rank).
    pub p95: Option<f64>,
    /// The 99th percentile (nearest rank).
    pub p99: Option<f64>,
    /// The first sample's time, epoch seconds.
    pub first: f64,
    /// The last sample's time.
    pub last: f64,
    /// The points to draw, `(ts, value)`, at most [`MAX_POINTS`].
    #[serde(skip)]
    pub points: Vec<(f64, f64)>,
}

/// The `p`-th percentile of sorted `values` by nearest rank: the smallest value with at
/// least `p`% of the values at or below it.
pub fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// The summaries of task `task` (of `tracer` only, if given), in series order.
pub fn summarize(store: &Store, task: &str, tracer: Option<&str>) -> Result<Vec<Summary>, Error> {
    let mut summaries: Vec<Summary> = Vec::new();
    let mut values: Vec<(f64, f64)> = Vec::new();
    store.each_sample(task, tracer, |tracer, series, unit, instance, ts, value| {
        let same = summaries.last().is_some_and(|s| {
            s.tracer == tracer && s.series == series && s.unit == unit && s.instance == instance
        });
        if !same {
            if let Some(done) = summaries.last_mut() {
                finish(done, &mut values);
            }
            summaries.push(Summary {
                task: task.to_owned(),
                tracer: tracer.to_owned(),
                series: series.to_owned(),
                unit: unit.to_owned(),
                instance: instance.to_owned(),
                count: 0,
                min: None,
                mean: None,
                max: None,
                p50: None,
                p95: None,
                p99: None,
                first: ts,
                last: ts,
                points: Vec::new(),
            });
        }
        let current = summaries.last_mut().expect("pushed above");
        current.count += 1;
        current.last = ts;
        if let Some(value) = value {
            values.push((ts, value));
        }
    })?;
    if let Some(done) = summaries.last_mut() {
        finish(done, &mut values);
    }
    Ok(summaries)
}

fn finish(summary: &mut Summary, values: &mut Vec<(f64, f64)>) {
    if values.is_empty() {
        return;
    }
    summary.points = downsample(values, MAX_POINTS);
    let mut sorted: Vec<f64> = values.iter().map(|(_, v)| *v).collect();
    sorted.sort_by(f64::total_cmp);
    summary.min = sorted.first().copied();
    summary.max = sorted.last().copied();
    summary.mean = Some(sorted.iter().sum::<f64>() / sorted.len() as f64);
    summary.p50 = nearest_rank(&sorted, 50.0);
    summary.p95 = nearest_rank(&sorted, 95.0);
    summary.p99 = nearest_rank(&sorted, 99.0);
    values.clear();
}

/// At most `max` of `points` (in time order): all of them if they fit, else the lowest and
/// highest of each of `max / 2` equal runs, in time order, so no peak is lost.
pub fn downsample(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max {
        return points.to_vec();
    }
    let buckets = (max / 2).max(1);
    let size = points.len().div_ceil(buckets);
    let mut kept = Vec::with_capacity(max);
    for chunk in points.chunks(size) {
        let low = chunk.iter().min_by(|a, b| a.1.total_cmp(&b.1)).copied();
        let high = chunk.iter().max_by(|a, b| a.1.total_cmp(&b.1)).copied();
        if let (Some(low), Some(high)) = (low, high) {
            if low.0 <= high.0 {
                kept.extend([low, high]);
            } else {
                kept.extend([high, low]);
            }
        }
    }
    kept.dedup_by(|a, b| a == b);
    kept
}

/// A number for people: integers as integers, others to 3 decimals without trailing zeros.
pub fn human(value: Option<f64>) -> String {
    let Some(v) = value else {
        return "-".into();
    };
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

const COLUMNS: [&str; 11] = [
    "tracer", "series", "unit", "instance", "count", "min", "mean", "max", "p50", "p95", "p99",
];

fn cells(s: &Summary, number: impl Fn(Option<f64>) -> String) -> [String; 11] {
    [
        s.tracer.clone(),
        s.series.clone(),
        s.unit.clone(),
        s.instance.clone(),
        s.count.to_string(),
        number(s.min),
        number(s.mean),
        number(s.max),
        number(s.p50),
        number(s.p95),
        number(s.p99),
    ]
}

/// An aligned table, after a line naming the task.
pub fn write_text(
    out: &mut impl Write,
    task: &TaskInfo,
    summaries: &[Summary],
) -> std::io::Result<()> {
    writeln!(out, "task {} {}", task.id, span(task))?;
    let rows: Vec<[String; 11]> = summaries.iter().map(|s| cells(s, human)).collect();
    let mut widths = COLUMNS.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, row: &[String]| -> std::io::Result<()> {
        let mut text = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            let pad = w.saturating_sub(cell.chars().count());
            if i < 4 {
                let _ = write!(text, "{cell}{}  ", " ".repeat(pad));
            } else {
                let _ = write!(text, "{}{cell}  ", " ".repeat(pad));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, &COLUMNS.map(str::to_owned))?;
    for row in &rows {
        line(out, row)?;
    }
    Ok(())
}

/// When a task ran, for people.
fn span(task: &TaskInfo) -> String {
    let at = super::protocol::when;
    match task.stopped {
        Some(stopped) => format!("from {} to {}", at(task.started), at(stopped)),
        None => format!("from {} (running)", at(task.started)),
    }
}

/// CSV: a header, then a row per series (numbers in full; empty where a series has none).
pub fn write_csv(out: &mut impl Write, summaries: &[Summary]) -> Result<(), Error> {
    let mut csv = csv::Writer::from_writer(out);
    let fault = |e: csv::Error| Error::failed(format!("<stdout>: {e}"));
    csv.write_record(["task"].iter().chain(COLUMNS.iter()))
        .map_err(fault)?;
    for s in summaries {
        let row = cells(s, |v| v.map(|v| v.to_string()).unwrap_or_default());
        csv.write_record(std::iter::once(&s.task).chain(row.iter()))
            .map_err(fault)?;
    }
    csv.flush().map_err(|e| Error::io("<stdout>", e))
}

/// NDJSON: an object per series.
pub fn write_json(out: &mut impl Write, summaries: &[Summary]) -> std::io::Result<()> {
    for s in summaries {
        serde_json::to_writer(&mut *out, s)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 220.0;
const PAD_LEFT: f64 = 80.0;
const PAD_BOTTOM: f64 = 24.0;

/// One SVG chart of a series' points.
fn chart(s: &Summary) -> String {
    let (Some(low), Some(high)) = (s.min, s.max) else {
        return format!(
            "<p class=\"none\">{} samples, none a number: nothing to draw.</p>",
            s.count
        );
    };
    let (t0, t1) = (s.first, s.last.max(s.first + 1e-9));
    let (v0, v1) = if high > low {
        (low, high)
    } else {
        (low - 1.0, high + 1.0)
    };
    let x = |t: f64| PAD_LEFT + (t - t0) / (t1 - t0) * (WIDTH - PAD_LEFT - 10.0);
    let y = |v: f64| 10.0 + (v1 - v) / (v1 - v0) * (HEIGHT - PAD_BOTTOM - 20.0);
    let mut path = String::with_capacity(s.points.len() * 16);
    for (t, v) in &s.points {
        let _ = write!(path, "{:.1},{:.1} ", x(*t), y(*v));
    }
    let time = |ts: f64| {
        chrono::DateTime::from_timestamp_micros((ts * 1e6) as i64)
            .map(|t| t.format("%H:%M:%S").to_string())
            .unwrap_or_default()
    };
    let base = HEIGHT - PAD_BOTTOM;
    format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{label}\">\
<line class=\"axis\" x1=\"{PAD_LEFT}\" y1=\"10\" x2=\"{PAD_LEFT}\" y2=\"{base}\"/>\
<line class=\"axis\" x1=\"{PAD_LEFT}\" y1=\"{base}\" x2=\"{right}\" y2=\"{base}\"/>\
<text x=\"{tx}\" y=\"{ytop}\" text-anchor=\"end\">{vmax}</text>\
<text x=\"{tx}\" y=\"{ybot}\" text-anchor=\"end\">{vmin}</text>\
<text x=\"{PAD_LEFT}\" y=\"{tlabel}\">{tstart}</text>\
<text x=\"{mid}\" y=\"{tlabel}\" text-anchor=\"middle\">{length} s</text>\
<text x=\"{right}\" y=\"{tlabel}\" text-anchor=\"end\">{tend} UTC</text>\
<polyline class=\"line\" points=\"{path}\"/></svg>",
        label = esc(&format!("{} {} ({})", s.tracer, s.series, s.unit)),
        right = WIDTH - 10.0,
        mid = (PAD_LEFT + WIDTH - 10.0) / 2.0,
        length = human(Some(s.last - s.first)),
        tx = PAD_LEFT - 6.0,
        ytop = y(v1) + 4.0,
        ybot = y(v0) + 4.0,
        vmax = esc(&human(Some(v1))),
        vmin = esc(&human(Some(v0))),
        tlabel = HEIGHT - 6.0,
        tstart = time(t0),
        tend = time(t1),
        path = path.trim_end(),
    )
}

/// One self-contained page: the task, a table of every series, and a chart per series.
/// Nothing is loaded from anywhere (its Content-Security-Policy forbids it); the one
/// inline script (allowed by a nonce) only counts the charts drawn into the title.
pub fn write_html(
    out: &mut impl Write,
    task: &TaskInfo,
    summaries: &[Summary],
) -> std::io::Result<()> {
    let nonce: String = {
        use rand::Rng;
        let mut rng = rand::rng();
        (0..24)
            .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
            .collect()
    };
    let mut page = String::with_capacity(64 * 1024);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'\">\
<meta name=\"viewport\" content=\"width=device-width\">\
<title>trace {id}</title><style>\
body{{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}}\
table{{border-collapse:collapse;margin-bottom:1.5em}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}\
td.n{{text-align:right;font-variant-numeric:tabular-nums}}\
.chart{{width:100%;max-width:960px;height:auto;display:block}}.axis{{stroke:#888}}\
.line{{fill:none;stroke:#1f6fb4;stroke-width:1.5}}text{{font-size:11px;fill:#444}}\
h2{{font-size:15px;margin:1.2em 0 .2em}}\
</style></head><body>\n<h1>Task {id}</h1><p>{span}; {n} series.</p>\n",
        id = esc(&task.id),
        span = esc(&span(task)),
        n = summaries.len(),
    );
    page.push_str("<table><tr>");
    for column in COLUMNS {
        let _ = write!(page, "<th>{column}</th>");
    }
    page.push_str("</tr>\n");
    for s in summaries {
        page.push_str("<tr>");
        for (i, cell) in cells(s, human).iter().enumerate() {
            let class = if i >= 4 { " class=\"n\"" } else { "" };
            let _ = write!(page, "<td{class}>{}</td>", esc(cell));
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</table>\n");
    for s in summaries {
        let instance = if s.instance.is_empty() {
            String::new()
        } else {
            format!(" — {}", esc(&s.instance))
        };
        let _ = writeln!(
            page,
            "<section><h2>{} / {} ({}){instance}</h2>{}</section>",
            esc(&s.tracer),
            esc(&s.series),
            esc(&s.unit),
            chart(s)
        );
    }
    let _ = write!(
        page,
        "<script nonce=\"{nonce}\">\
var drawn=0;document.querySelectorAll('svg.chart polyline').forEach(function(p){{var b=p.getBBox();if(b.width>0||b.height>0)drawn++;}});\
var loaded=performance.getEntriesByType('resource').length;\
document.title='rendered '+drawn+' charts, '+loaded+' resources loaded';\
</script>\n</body></html>\n"
    );
    out.write_all(page.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&values, 50.0), Some(50.0));
        assert_eq!(nearest_rank(&values, 95.0), Some(95.0));
        assert_eq!(nearest_rank(&values, 99.0), Some(99.0));
        assert_eq!(nearest_rank(&[7.0], 99.0), Some(7.0));
        assert_eq!(nearest_rank(&[], 50.0), None);
        assert_eq!(nearest_rank(&[1.0, 2.0, 3.0, 4.0], 50.0), Some(2.0));
    }

    proptest::proptest! {
        /// Downsampling keeps at most the limit, in time order, with the extremes.
        #[test]
        fn downsampling_keeps_extremes(values in proptest::collection::vec(-1e9f64..1e9, 0..5000), max in 2usize..300) {
            let points: Vec<(f64, f64)> = values.iter().enumerate().map(|(i, v)| (i as f64, *v)).collect();
            let kept = downsample(&points, max);
            proptest::prop_assert!(kept.len() <= max.max(points.len().min(max)));
            proptest::prop_assert!(kept.windows(2).all(|w| w[0].0 <= w[1].0));
            if let Some(high) = values.iter().copied().max_by(f64::total_cmp) {
                proptest::prop_assert!(kept.iter().any(|p| p.1 == high));
            }
        }

        /// Any text is escaped: no markup survives.
        #[test]
        fn escaped_text_has_no_markup(text in "\\PC*") {
            let escaped = esc(&text);
            proptest::prop_assert!(!escaped.contains('<') && !escaped.contains('"'));
        }
    }
}
