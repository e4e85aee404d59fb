//! The rows the esmond-client query tools printed (esmond.md §2.6) and their human, CSV
//! and JSON forms (§2.7), plus measurement records (records.md §1) for `-o ndjson`.
//!
//! A [`Table`] streams rows to a writer as they come, so a series of any length is
//! written in bounded memory; [`Formatter`] turns one data point of an event type into its
//! rows. Values are written as Python 2 wrote them ([`super::python`]); where Python's
//! output depended on its dict hash order (the keys of a JSON row, the buckets of a
//! histogram) the archive's order is kept instead.

use std::io::{self, Write};

use serde_json::Value;

use super::python;
use super::types::{self, Storage, Summary};

/// What the originals printed between two human rows.
pub const SEPARATOR: &str = "= + = + = + = + = + =\n";

/// The columns every data row starts with.
pub const BASE_COLUMNS: [&str; 7] = [
    "source",
    "destination",
    "event_type",
    "tool",
    "summary_type",
    "summary_window",
    "timestamp",
];

/// esmond-ps-get-endpoints' columns.
pub const ENDPOINT_COLUMNS: [&str; 5] = [
    "source",
    "destination",
    "measurement_agent",
    "tool_name",
    "event_type",
];

/// esmond-ps-get-metadata's columns (its DEFAULT_FIELDS).
pub const METADATA_COLUMNS: [&str; 6] = [
    "source",
    "destination",
    "measurement_agent",
    "input_source",
    "input_destination",
    "tool_name",
];

/// An output format of the query tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `column: value` lines, rows separated by [`SEPARATOR`].
    Human,
    /// A header and CRLF rows, as Python's csv module writes them.
    Csv,
    /// One JSON array of row objects, as `json.dumps` writes it.
    Json,
}

/// One value of a row.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    /// A string.
    Text(&'a str),
    /// An integer.
    Int(i64),
    /// A JSON number's text (an integer, or a float written the Python way).
    Number(&'a str),
    /// Any decoded JSON value (dicts and lists as Python's repr in human and CSV).
    Value(&'a Value),
    /// Python's `None`.
    Null,
    /// A list of strings, joined with `", "` in human and CSV.
    List(&'a [String]),
}

/// Rows streamed to a writer in one [`Format`].
pub struct Table<W: Write> {
    format: Format,
    header: Vec<String>,
    sink: Sink<W>,
    rows: u64,
    scratch: Vec<u8>,
    /// A trailing newline after the output (Python's `print`), not in bulk files.
    print: bool,
}

enum Sink<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Plain(io::BufWriter<W>),
}

impl<W: Write> Table<W> {
    /// A table writing to `out`; `header` is the CSV header (and the columns of the "no
    /// data" row). With `print`, the output ends with the newline Python's `print` added.
    pub fn new(format: Format, header: &[&str], out: W, print: bool) -> Table<W> {
        let sink = match format {
            Format::Csv => Sink::Csv(Box::new(
                csv::WriterBuilder::new()
                    .terminator(csv::Terminator::CRLF)
                    .buffer_capacity(256 * 1024)
                    .from_writer(out),
            )),
            _ => Sink::Plain(io::BufWriter::with_capacity(256 * 1024, out)),
        };
        let mut table = Table {
            format,
            header: header.iter().map(|&h| h.to_owned()).collect(),
            sink,
            rows: 0,
            scratch: Vec::with_capacity(256),
            print,
        };
        if let Sink::Csv(csv) = &mut table.sink {
            // The header is written even when no row follows (then a "No data" row).
            let _ = csv.write_record(header);
        }
        table
    }

    /// The table's format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes one row of `(column, value)` pairs (CSV keeps only the header's columns,
    /// in the header's order, as `DictWriter(extrasaction='ignore')` did).
    pub fn row(&mut self, cells: &[(&str, Cell<'_>)]) -> io::Result<()> {
        let first = self.rows == 0;
        self.rows += 1;
        match &mut self.sink {
            Sink::Csv(csv) => {
                for column in &self.header {
                    self.scratch.clear();
                    if let Some((_, cell)) = cells.iter().find(|(c, _)| c == column) {
                        write_cell(&mut self.scratch, cell, Format::Csv);
                    }
                    csv.write_field(&self.scratch)?;
                }
                csv.write_record(None::<&[u8]>)?;
            }
            Sink::Plain(out) => {
                let scratch = &mut self.scratch;
                scratch.clear();
                match self.format {
                    Format::Human => {
                        if !first {
                            scratch.extend_from_slice(SEPARATOR.as_bytes());
                        }
                        for (column, cell) in cells {
                            scratch.extend_from_slice(column.as_bytes());
                            scratch.extend_from_slice(b": ");
                            write_cell(scratch, cell, Format::Human);
                            scratch.push(b'\n');
                        }
                    }
                    _ => {
                        scratch.extend_from_slice(if first { b"[{" } else { b", {" });
                        for (i, (column, cell)) in cells.iter().enumerate() {
                            if i > 0 {
                                scratch.extend_from_slice(b", ");
                            }
                            python::write_dumps(scratch, &Value::from(*column));
                            scratch.extend_from_slice(b": ");
                            write_cell(scratch, cell, Format::Json);
                        }
                        scratch.push(b'}');
                    }
                }
                out.write_all(scratch)?;
            }
        }
        Ok(())
    }

    /// Ends the output ("No data found." when no row was written) and returns the writer
    /// and the number of rows.
    pub fn finish(self) -> io::Result<(W, u64)> {
        let rows = self.rows;
        let tail: &[u8] = if self.print { b"\n" } else { b"" };
        let mut out = match self.sink {
            Sink::Csv(mut csv) => {
                if rows == 0 {
                    csv.write_record(self.header.iter().map(|_| "No data"))?;
                }
                csv.into_inner().map_err(|e| e.into_error())?
            }
            Sink::Plain(mut out) => {
                match (self.format, rows) {
                    (Format::Human, 0) => out.write_all(b"No data found.")?,
                    (_, 0) => out.write_all(br#"[{"msg": "No data found."}]"#)?,
                    (Format::Human, _) => {}
                    _ => out.write_all(b"]")?,
                }
                out.into_inner().map_err(|e| e.into_error())?
            }
        };
        out.write_all(tail)?;
        out.flush()?;
        Ok((out, rows))
    }
}

/// One cell in `format`.
fn write_cell(out: &mut Vec<u8>, cell: &Cell<'_>, format: Format) {
    let human = format == Format::Human;
    match cell {
        Cell::Text(text) if format == Format::Json => python::write_dumps(out, &Value::from(*text)),
        Cell::Text(text) => out.extend_from_slice(text.as_bytes()),
        Cell::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Cell::Number(text) => python::write_number(out, text, human),
        Cell::Null => match format {
            Format::Human => out.extend_from_slice(b"None"),
            Format::Csv => {}
            Format::Json => out.extend_from_slice(b"null"),
        },
        Cell::Value(value) => match (format, value) {
            (Format::Json, value) => python::write_dumps(out, value),
            (Format::Csv, Value::Null) => {}
            (_, Value::String(text)) => out.extend_from_slice(text.as_bytes()),
            (_, Value::Number(n)) => python::write_number(out, &n.to_string(), human),
            // A list field is `", ".join(str(x) for x in v)`.
            (_, Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    match item {
                        Value::String(text) => out.extend_from_slice(text.as_bytes()),
                        Value::Number(n) => python::write_number(out, &n.to_string(), true),
                        other => python::write_value_repr(out, other),
                    }
                }
            }
            (_, value) => python::write_value_repr(out, value),
        },
        Cell::List(items) if format == Format::Json => {
            let list: Vec<Value> = items.iter().map(|s| Value::from(s.as_str())).collect();
            python::write_dumps(out, &Value::Array(list));
        }
        Cell::List(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                out.extend_from_slice(item.as_bytes());
            }
        }
    }
}

/// How an event type's points become rows (the originals' EVENT_MAP, extended by
/// storage to every event type the archive knows, and beyond).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formatter {
    /// One row per point: `value`.
    Numeric,
    /// One row per point: `msg`, the failure's error text.
    Failures,
    /// One row per point: `bucket` (the metadata's sample-bucket-width) and `value`.
    Histogram,
    /// A histogram's statistics summary: one row per point, one column per statistic.
    Statistics,
    /// One row per subinterval: `start`, `duration`, `value`.
    Subintervals,
    /// One row per stream: `stream_num`, `value`.
    NumberList,
    /// One row per stream and subinterval: `stream_num`, `start`, `duration`, `value`.
    SubintervalList,
    /// One row per hop of a traceroute.
    PacketTrace,
    /// Any other event type (tcpinfo, iostat, pscheduler-raw, …): `value`.
    Value,
}

const STATISTICS: [(&str, &str); 10] = [
    ("min", "minimum"),
    ("median", "median"),
    ("max", "maximum"),
    ("mean", "mean"),
    ("mode", "mode"),
    ("standard_deviation", "standard-deviation"),
    ("variance", "variance"),
    ("percentile_25", "percentile-25"),
    ("percentile_75", "percentile-75"),
    ("percentile_95", "percentile-95"),
];

const HOP_COLUMNS: [&str; 7] = [
    "ttl",
    "query",
    "success",
    "ip",
    "rtt",
    "mtu",
    "error_message",
];

impl Formatter {
    /// The formatter of `event_type` when `summary` is asked for.
    pub fn of(event_type: &str, summary: Summary) -> Formatter {
        match event_type {
            "failures" => return Formatter::Failures,
            "packet-trace" => return Formatter::PacketTrace,
            _ => {}
        }
        if event_type.starts_with("streams-") && event_type != "streams-tcpinfo" {
            return if event_type.ends_with("-subintervals") {
                Formatter::SubintervalList
            } else {
                Formatter::NumberList
            };
        }
        match types::storage(event_type) {
            Some(Storage::Integer | Storage::Float | Storage::Percentage) => Formatter::Numeric,
            Some(Storage::Histogram) if summary == Summary::Statistics => Formatter::Statistics,
            Some(Storage::Histogram) => Formatter::Histogram,
            Some(Storage::Subinterval) => Formatter::Subintervals,
            _ => Formatter::Value,
        }
    }

    /// Whether the requested summary's data is fetched (the originals fetched base data
    /// for the other formatters, whatever -T said).
    pub fn reads_summaries(self) -> bool {
        matches!(
            self,
            Formatter::Numeric | Formatter::Histogram | Formatter::Statistics
        )
    }

    /// The columns after [`BASE_COLUMNS`].
    pub fn extra_columns(self) -> Vec<&'static str> {
        match self {
            Formatter::Numeric | Formatter::Value => vec!["value"],
            Formatter::Failures => vec!["msg"],
            Formatter::Histogram => vec!["bucket", "value"],
            Formatter::Statistics => STATISTICS.iter().map(|(c, _)| *c).collect(),
            Formatter::Subintervals => vec!["start", "duration", "value"],
            Formatter::NumberList => vec!["stream_num", "value"],
            Formatter::SubintervalList => vec!["stream_num", "start", "duration", "value"],
            Formatter::PacketTrace => HOP_COLUMNS.to_vec(),
        }
    }

    /// Every column, in order (the CSV header).
    pub fn columns(self) -> Vec<&'static str> {
        let mut columns = BASE_COLUMNS.to_vec();
        columns.extend(self.extra_columns());
        columns
    }
}

/// What every row of one series shares.
#[derive(Debug, Clone)]
pub struct SeriesRow {
    /// Source (an address, or its name with DNS asked for).
    pub source: String,
    /// Destination.
    pub destination: String,
    /// The event type.
    pub event_type: String,
    /// The metadata's tool-name.
    pub tool: String,
    /// `base` or the summary type asked for.
    pub summary_type: String,
    /// The summary window asked for (0 for base).
    pub summary_window: i64,
    /// The metadata's sample-bucket-width (histograms' `bucket` column).
    pub bucket: Option<String>,
}

/// `YYYY-MM-DD HH:MM:SS` of an epoch second (UTC), as `str(datetime.utcfromtimestamp())`.
pub fn timestamp_text(ts: i64) -> String {
    match chrono::DateTime::from_timestamp(ts, 0) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => ts.to_string(),
    }
}

/// The field `name` of a JSON object as a cell (missing: `None`).
fn field<'v>(value: &'v Value, name: &str) -> Cell<'v> {
    value.get(name).map_or(Cell::Null, Cell::Value)
}

impl SeriesRow {
    /// Writes the rows of one point (`ts`, and `text`, its `val` as the archive sent it); `names` turns
    /// a hop's address into what is printed.
    pub fn write<W: Write>(
        &self,
        table: &mut Table<W>,
        formatter: Formatter,
        ts: i64,
        text: &str,
        names: &mut dyn FnMut(&str) -> String,
    ) -> io::Result<()> {
        let timestamp = timestamp_text(ts);
        let base = [
            ("source", Cell::Text(&self.source)),
            ("destination", Cell::Text(&self.destination)),
            ("event_type", Cell::Text(&self.event_type)),
            ("tool", Cell::Text(&self.tool)),
            ("summary_type", Cell::Text(&self.summary_type)),
            ("summary_window", Cell::Int(self.summary_window)),
            ("timestamp", Cell::Text(&timestamp)),
        ];
        if formatter == Formatter::Numeric
            && text.starts_with(|c: char| c == '-' || c.is_ascii_digit())
        {
            let mut cells = base.to_vec();
            cells.push(("value", Cell::Number(text)));
            return table.row(&cells);
        }
        let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        fn joined<'c>(
            base: &[(&'c str, Cell<'c>)],
            extra: &[(&'c str, Cell<'c>)],
        ) -> Vec<(&'c str, Cell<'c>)> {
            let mut cells = base.to_vec();
            cells.extend_from_slice(extra);
            cells
        }
        match formatter {
            Formatter::Numeric | Formatter::Value => {
                table.row(&joined(&base, &[("value", Cell::Value(&value))]))
            }
            Formatter::Failures => {
                let msg = value.get("error").map_or(Cell::Null, Cell::Value);
                table.row(&joined(&base, &[("msg", msg)]))
            }
            Formatter::Histogram => {
                let bucket = self.bucket.as_deref().map_or(Cell::Null, Cell::Text);
                table.row(&joined(
                    &base,
                    &[("bucket", bucket), ("value", Cell::Value(&value))],
                ))
            }
            Formatter::Statistics => {
                let cells: Vec<(&'static str, Cell<'_>)> = STATISTICS
                    .iter()
                    .map(|(column, key)| (*column, field(&value, key)))
                    .collect();
                table.row(&joined(&base, &cells))
            }
            Formatter::Subintervals => {
                for interval in value.as_array().into_iter().flatten() {
                    table.row(&joined(
                        &base,
                        &[
                            ("start", field(interval, "start")),
                            ("duration", field(interval, "duration")),
                            ("value", field(interval, "val")),
                        ],
                    ))?;
                }
                Ok(())
            }
            Formatter::NumberList => {
                for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                    table.row(&joined(
                        &base,
                        &[
                            ("stream_num", Cell::Int(i as i64)),
                            ("value", Cell::Value(item)),
                        ],
                    ))?;
                }
                Ok(())
            }
            Formatter::SubintervalList => {
                for (i, stream) in value.as_array().into_iter().flatten().enumerate() {
                    for interval in stream.as_array().into_iter().flatten() {
                        table.row(&joined(
                            &base,
                            &[
                                ("stream_num", Cell::Int(i as i64)),
                                ("start", field(interval, "start")),
                                ("duration", field(interval, "duration")),
                                ("value", field(interval, "val")),
                            ],
                        ))?;
                    }
                }
                Ok(())
            }
            Formatter::PacketTrace => {
                let hops = value.as_array().map(Vec::as_slice).unwrap_or_default();
                if table.format() == Format::Human {
                    // A header block per measurement, then a block per hop.
                    table.row(&base)?;
                }
                for hop in hops {
                    let ip = hop.get("ip").and_then(Value::as_str).map(&mut *names);
                    let mut hop_cells: Vec<(&str, Cell<'_>)> = HOP_COLUMNS
                        .iter()
                        .map(|&column| (column, field(hop, column)))
                        .collect();
                    if let Some(ip) = &ip {
                        hop_cells[3].1 = Cell::Text(ip);
                    }
                    if table.format() == Format::Human {
                        table.row(&hop_cells)?;
                    } else {
                        table.row(&joined(&base, &hop_cells))?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// A value as a measurement record carries it, so that esmond-post stores it again: the
/// archive returns a loss rate as its ratio, which is posted as `{numerator, denominator}`
/// over `denominator` (the metadata's sample-size, the packets per test) when that gives
/// the ratio back, else as the smallest fraction that does; whole numbers of integer event
/// types (returned as floats) as integers.
pub fn write_record_value(
    out: &mut Vec<u8>,
    storage: Option<Storage>,
    text: &str,
    denominator: Option<i64>,
) {
    match storage {
        Some(Storage::Percentage) => {
            if let Ok(ratio) = text.parse::<f64>() {
                let over = |d: i64| {
                    let n = (ratio * d as f64).round();
                    (n >= 0.0 && n <= d as f64 && n / d as f64 == ratio).then_some((n as i64, d))
                };
                let (numerator, denominator) = denominator
                    .filter(|&d| d > 0)
                    .and_then(over)
                    .unwrap_or_else(|| fraction(ratio));
                let _ = write!(
                    out,
                    r#"{{"numerator":{numerator},"denominator":{denominator}}}"#
                );
                return;
            }
        }
        Some(Storage::Integer) => {
            if let Ok(f) = text.parse::<f64>() {
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    out.extend_from_slice(itoa::Buffer::new().format(f as i64).as_bytes());
                    return;
                }
            }
        }
        _ => {}
    }
    out.extend_from_slice(text.as_bytes());
}

/// The fraction with the smallest denominator (at most 2^31) whose ratio is exactly
/// `ratio` as a float, by continued fractions; the closest such fraction if none is exact.
pub fn fraction(ratio: f64) -> (i64, i64) {
    if !ratio.is_finite() || ratio <= 0.0 {
        return (0, 1);
    }
    const MAX: i64 = 1 << 31;
    let (mut p0, mut q0, mut p1, mut q1) = (0i64, 1i64, 1i64, 0i64);
    let mut x = ratio;
    let mut best = (ratio.round() as i64, 1i64);
    for _ in 0..64 {
        let a = x.floor();
        if a > MAX as f64 {
            break;
        }
        let a = a as i64;
        let (Some(p2), Some(q2)) = (
            a.checked_mul(p1).and_then(|v| v.checked_add(p0)),
            a.checked_mul(q1).and_then(|v| v.checked_add(q0)),
        ) else {
            break;
        };
        if q2 > MAX {
            break;
        }
        best = (p2, q2);
        if p2 as f64 / q2 as f64 == ratio {
            break;
        }
        (p0, q0, p1, q1) = (p1, q1, p2, q2);
        let rest = x - a as f64;
        if rest == 0.0 {
            break;
        }
        x = 1.0 / rest;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_text(format: Format, rows: &[Vec<(&str, Cell<'_>)>], header: &[&str]) -> String {
        let mut table = Table::new(format, header, Vec::new(), true);
        for row in rows {
            table.row(row).unwrap();
        }
        String::from_utf8(table.finish().unwrap().0).unwrap()
    }

    #[test]
    fn rows_are_written_as_the_originals_wrote_them() {
        let events = vec!["throughput".to_owned(), "failures".to_owned()];
        let rows = vec![
            vec![
                ("source", Cell::Text("10.1.1.1")),
                ("event_type", Cell::List(&events)),
            ],
            vec![
                ("source", Cell::Text("10.1.1.2")),
                ("event_type", Cell::List(&events[..1])),
            ],
        ];
        let header = ["source", "event_type"];
        assert_eq!(
            table_text(Format::Human, &rows, &header),
            "source: 10.1.1.1\nevent_type: throughput, failures\n= + = + = + = + = + =\nsource: 10.1.1.2\nevent_type: throughput\n\n"
        );
        assert_eq!(
            table_text(Format::Csv, &rows, &header),
            "source,event_type\r\n10.1.1.1,\"throughput, failures\"\r\n10.1.1.2,throughput\r\n\n"
        );
        assert_eq!(
            table_text(Format::Json, &rows, &header),
            "[{\"source\": \"10.1.1.1\", \"event_type\": [\"throughput\", \"failures\"]}, {\"source\": \"10.1.1.2\", \"event_type\": [\"throughput\"]}]\n"
        );
        assert_eq!(table_text(Format::Human, &[], &header), "No data found.\n");
        assert_eq!(
            table_text(Format::Json, &[], &header),
            "[{\"msg\": \"No data found.\"}]\n"
        );
        assert_eq!(
            table_text(Format::Csv, &[], &header),
            "source,event_type\r\nNo data,No data\r\n\n"
        );
    }

    #[test]
    fn a_loss_ratio_becomes_the_smallest_fraction_that_gives_it_back() {
        for (n, d) in [
            (7i64, 150i64),
            (0, 1),
            (1, 1),
            (3, 600),
            (123_457, 1_000_000),
            (1, 3),
        ] {
            let ratio = n as f64 / d as f64;
            let (p, q) = fraction(ratio);
            assert_eq!(p as f64 / q as f64, ratio, "{n}/{d} gave {p}/{q}");
            assert!(q <= d, "{n}/{d} gave {p}/{q}");
        }
        let mut out = Vec::new();
        write_record_value(
            &mut out,
            Some(Storage::Percentage),
            "0.04666666666666667",
            None,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"numerator":7,"denominator":150}"#
        );
        // Over the test's packets when the metadata says how many (sample-size).
        let mut out = Vec::new();
        write_record_value(
            &mut out,
            Some(Storage::Percentage),
            "0.04666666666666667",
            Some(600),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"numerator":28,"denominator":600}"#
        );
    }
}
