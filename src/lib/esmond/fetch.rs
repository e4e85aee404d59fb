//! What the query tools do with an archive: the rows of every matching series into one
//! table (esmond-get), measurement records (`-o ndjson`), and one file per metadata and
//! event type (esmond-bulk-fetch), each written atomically and skipped on `--resume` once
//! finished. Everything streams a page at a time: memory is bounded by the page size,
//! whatever the archive holds.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::query::{Archive, Filters, Metadata, Names, Page, SeriesPages};
use super::rows::{self, Format, Formatter, SeriesRow, Table};
use super::types::{self, Summary};
use crate::error::{Error, IoContext};

/// Which series of each matching metadata to read.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The metadata search and the time window.
    pub filters: Filters,
    /// One event type, or every event type of each metadata.
    pub event_type: Option<String>,
    /// `base`, or a summary type.
    pub summary: Summary,
    /// The summary window (0 for base).
    pub window: i64,
    /// Points asked for per request.
    pub page: u64,
}

impl Selection {
    /// A selection; the window counts only for a summary (base data has none).
    pub fn new(
        filters: Filters,
        event_type: Option<String>,
        summary: Summary,
        window: i64,
        page: u64,
    ) -> Selection {
        let window = if summary == Summary::Base { 0 } else { window };
        Selection {
            filters,
            event_type,
            summary,
            window,
            page,
        }
    }

    /// Refuses a summary for measurement records, which carry base data.
    pub fn check_records(&self) -> Result<(), String> {
        if self.summary == Summary::Base {
            Ok(())
        } else {
            Err("-o ndjson writes measurement records, which carry base data: leave out --summary-type".into())
        }
    }

    /// The event types of `metadata` to read.
    fn events(&self, metadata: &Metadata) -> Vec<super::query::EventType> {
        metadata
            .event_types()
            .into_iter()
            .filter(|e| self.event_type.as_deref().is_none_or(|want| want == e.name))
            .collect()
    }

    /// The rows' shared columns and the path of the series for `event` of `metadata`
    /// (`None`: the summary asked for does not exist, so there is no data).
    fn series(
        &self,
        metadata: &Metadata,
        event: &super::query::EventType,
        names: &mut Names,
    ) -> (SeriesRow, Formatter, Option<String>) {
        let formatter = Formatter::of(&event.name, self.summary);
        let uri = if formatter.reads_summaries() {
            event.uri(self.summary.name(), self.window)
        } else {
            Some(event.base_uri.as_str())
        };
        let row = SeriesRow {
            source: names.name(&metadata.text("source").unwrap_or_default()),
            destination: names.name(&metadata.text("destination").unwrap_or_default()),
            event_type: event.name.clone(),
            tool: metadata.text("tool-name").unwrap_or_default(),
            summary_type: self.summary.name().to_owned(),
            summary_window: self.window,
            bucket: metadata.text("sample-bucket-width"),
        };
        (row, formatter, uri.map(str::to_owned))
    }
}

/// Calls `each` with every metadata matching `filters`, a page at a time.
pub fn each_metadata(
    archive: &Archive,
    filters: &Filters,
    mut each: impl FnMut(&Metadata, Option<u64>) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut pages = archive.metadata(filters);
    while let Some(page) = pages.next_page()? {
        for metadata in &page {
            each(metadata, pages.total())?;
        }
    }
    Ok(())
}

/// Writes the rows of every selected series of every matching metadata to `table`;
/// returns the points read.
pub fn write_rows<W: Write>(
    archive: &Archive,
    selection: &Selection,
    names: &mut Names,
    table: &mut Table<W>,
) -> Result<u64, Error> {
    let mut points = 0;
    each_metadata(archive, &selection.filters, |metadata, _| {
        for event in selection.events(metadata) {
            let (row, formatter, uri) = selection.series(metadata, &event, names);
            let Some(uri) = uri else { continue };
            let mut pages = archive.series(
                &uri,
                selection.filters.start,
                selection.filters.end,
                selection.page,
            );
            while let Some(page) = pages.next_page()? {
                points += write_page(table, &row, formatter, &page, names, "<stdout>")?;
            }
        }
        Ok(())
    })?;
    Ok(points)
}

/// Writes a page's rows; a failed write names `output`.
fn write_page<W: Write>(
    table: &mut Table<W>,
    row: &SeriesRow,
    formatter: Formatter,
    page: &Page,
    names: &mut Names,
    output: &str,
) -> Result<u64, Error> {
    let mut resolve = |ip: &str| names.name(ip);
    for (ts, val) in page.iter() {
        row.write(table, formatter, ts, val, &mut resolve)
            .map_err(|e| Error::io(output, e))?;
    }
    Ok(page.len() as u64)
}

/// One series being merged into records: its pages and where it is in the current one.
struct Cursor<'a> {
    event_type: String,
    storage: Option<types::Storage>,
    pages: SeriesPages<'a>,
    page: Option<Page>,
    at: usize,
}

impl Cursor<'_> {
    fn current(&self) -> Option<(i64, &str)> {
        self.page.as_ref().map(|p| p.get(self.at))
    }

    fn advance(&mut self) -> Result<(), Error> {
        self.at += 1;
        if self.page.as_ref().is_some_and(|p| self.at >= p.len()) {
            self.page = self.pages.next_page()?;
            self.at = 0;
        }
        Ok(())
    }
}

/// Writes every matching metadata's base data as measurement records (records.md §1):
/// one line per metadata and time, carrying the values of all its selected event types
/// at that time, so that `esmond-post` stores the same points in another archive.
/// `line` gets each line without its newline; returns (records, points).
pub fn write_records(
    archive: &Archive,
    selection: &Selection,
    mut line: impl FnMut(&[u8]) -> Result<(), Error>,
    mut progress: impl FnMut(u64, u64),
) -> Result<(u64, u64), Error> {
    let (mut records, mut points) = (0u64, 0u64);
    let mut out = Vec::with_capacity(4096);
    each_metadata(archive, &selection.filters, |metadata, _| {
        let events = selection.events(metadata);
        if events.is_empty() {
            return Ok(());
        }
        let head = {
            let mut head = br#"{"kind":"measurement","metadata":"#.to_vec();
            serde_json::to_writer(&mut head, &metadata.post_body())
                .map_err(|e| Error::failed(e.to_string()))?;
            head.extend_from_slice(br#","ts":"#);
            head
        };
        let packets = metadata
            .text("sample-size")
            .and_then(|s| s.parse::<i64>().ok());
        // Each series gets a share of the page, so the pages held stay within one.
        let page = (selection.page / events.len() as u64).max(100);
        let mut cursors = Vec::with_capacity(events.len());
        for event in events {
            let mut pages = archive.series(
                &event.base_uri,
                selection.filters.start,
                selection.filters.end,
                page,
            );
            let first = pages.next_page()?;
            cursors.push(Cursor {
                storage: types::storage(&event.name),
                event_type: event.name,
                pages,
                page: first,
                at: 0,
            });
        }
        while let Some(ts) = cursors
            .iter()
            .filter_map(|c| c.current().map(|(ts, _)| ts))
            .min()
        {
            out.clear();
            out.extend_from_slice(&head);
            out.extend_from_slice(itoa::Buffer::new().format(ts).as_bytes());
            out.extend_from_slice(br#","values":{"#);
            let mut first = true;
            for cursor in cursors.iter_mut() {
                let Some((at, val)) = cursor.current() else {
                    continue;
                };
                if at != ts {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                serde_json::to_writer(&mut out, &cursor.event_type)
                    .map_err(|e| Error::failed(e.to_string()))?;
                out.push(b':');
                rows::write_record_value(&mut out, cursor.storage, val, packets);
                points += 1;
                cursor.advance()?;
            }
            out.extend_from_slice(b"}}");
            line(&out)?;
            records += 1;
            if records % 4096 == 0 {
                progress(records, points);
            }
        }
        Ok(())
    })?;
    Ok((records, points))
}

/// Where and how esmond-bulk-fetch writes its files.
#[derive(Debug, Clone)]
pub struct Files {
    /// The directory.
    pub dir: PathBuf,
    /// CSV or JSON.
    pub format: Format,
    /// Skip series whose file is already there (a finished earlier run).
    pub resume: bool,
}

/// What happened to one series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written: its path and points.
    Written(PathBuf, u64),
    /// Its file was already there (`--resume`).
    Kept(PathBuf),
    /// No points in the window.
    Empty,
}

/// Progress of a bulk fetch, for a status line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Metadata done.
    pub metadata: u64,
    /// Matching metadata, once known.
    pub total: Option<u64>,
    /// Points read.
    pub points: u64,
    /// Files written.
    pub written: u64,
    /// Files kept from an earlier run.
    pub kept: u64,
}

/// The file of one series: `SRC_DST_EVENT_STARTDATE_ENDDATE_KEY.EXT` (the originals'
/// name, plus the metadata key and the summary so that two series never share one).
pub fn file_name(row: &SeriesRow, key: &str, filters: &Filters, format: Format) -> String {
    let date = |ts: i64| {
        chrono::DateTime::from_timestamp(ts, 0)
            .map_or_else(|| ts.to_string(), |t| t.format("%Y-%m-%d").to_string())
    };
    let summary = if row.summary_type == "base" {
        String::new()
    } else {
        format!("_{}-{}", row.summary_type, row.summary_window)
    };
    let name = format!(
        "{}_{}_{}{summary}_{}_{}_{key}.{}",
        or_none(&row.source),
        or_none(&row.destination),
        row.event_type,
        date(filters.start),
        date(filters.end),
        if format == Format::Csv { "csv" } else { "json" }
    );
    name.replace(['/', '\0'], "_")
}

fn or_none(text: &str) -> &str {
    if text.is_empty() {
        "None"
    } else {
        text
    }
}

/// Writes one file per selected series of every matching metadata into `files.dir`;
/// `each` hears of every series (metadata key, event type, outcome) and of the progress.
pub fn write_files(
    archive: &Archive,
    selection: &Selection,
    files: &Files,
    names: &mut Names,
    mut each: impl FnMut(&str, &str, &Outcome, &Progress),
) -> Result<Progress, Error> {
    let mut progress = Progress::default();
    each_metadata(archive, &selection.filters, |metadata, total| {
        progress.total = total;
        let key = metadata.key();
        for event in selection.events(metadata) {
            let (row, formatter, uri) = selection.series(metadata, &event, names);
            let path = files
                .dir
                .join(file_name(&row, &key, &selection.filters, files.format));
            let outcome = if files.resume && path.exists() {
                progress.kept += 1;
                Outcome::Kept(path)
            } else {
                match uri {
                    None => Outcome::Empty,
                    Some(uri) => write_file(
                        archive,
                        selection,
                        files.format,
                        &row,
                        formatter,
                        &uri,
                        &path,
                        names,
                        &mut progress,
                    )?,
                }
            };
            each(&key, &event.name, &outcome, &progress);
        }
        progress.metadata += 1;
        Ok(())
    })?;
    Ok(progress)
}

/// One series into `path`: written beside it as `.NAME.part`, synced, then renamed.
#[allow(clippy::too_many_arguments)]
fn write_file(
    archive: &Archive,
    selection: &Selection,
    format: Format,
    row: &SeriesRow,
    formatter: Formatter,
    uri: &str,
    path: &Path,
    names: &mut Names,
    progress: &mut Progress,
) -> Result<Outcome, Error> {
    let mut pages = archive.series(
        uri,
        selection.filters.start,
        selection.filters.end,
        selection.page,
    );
    let Some(first) = pages.next_page()? else {
        return Ok(Outcome::Empty);
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let part = path.with_file_name(format!(".{name}.part"));
    let file = File::create(&part).at(part.display())?;
    let mut table = Table::new(format, &formatter.columns(), file, false);
    let io = |e: std::io::Error| Error::io(part.display().to_string(), e);
    let mut points = 0;
    let mut page = Some(first);
    while let Some(current) = page {
        points += write_page(
            &mut table,
            row,
            formatter,
            &current,
            names,
            &part.display().to_string(),
        )?;
        progress.points += current.len() as u64;
        page = pages.next_page()?;
    }
    let (file, _) = table.finish().map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&part, path).at(path.display())?;
    progress.written += 1;
    Ok(Outcome::Written(path.to_owned(), points))
}
