//! The options the four archive readers share (esmond-client 4.2.1's
//! `perfsonar_client_opts`, esmond.md §2.1), and their wiring to [`crate::esmond::query`].

use std::io::{self, Write};
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::cli;
use crate::error::Error;
use crate::esmond::client::Settings;
use crate::esmond::query::{Archive, Filters, Names, Window};
use crate::esmond::rows::Format;
use crate::esmond::types::{self, Summary};

/// An output format (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// `column: value` lines, rows separated by `= + = + …`.
    Human,
    /// A header row and CRLF rows.
    Csv,
    /// One JSON array of rows.
    Json,
    /// Measurement records (records.md), one per line, for esmond-post.
    Ndjson,
}

impl Output {
    /// The table format (`None` for NDJSON records).
    pub fn table(self) -> Option<Format> {
        match self {
            Output::Human => Some(Format::Human),
            Output::Csv => Some(Format::Csv),
            Output::Json => Some(Format::Json),
            Output::Ndjson => None,
        }
    }
}

/// A summary type (`-T`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryType {
    /// Sums per window.
    Aggregation,
    /// Means per window.
    Average,
    /// Histogram statistics per window.
    Statistics,
}

/// The options every reader takes.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The archive: scheme://host[:port] (the default is where esmond-serve listens). A
    /// URL ending in /esmond/perfsonar/archive/ is trimmed to its base.
    #[arg(
        short = 'u',
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,

    /// The path before perfsonar/archive (`esmond` on perfSONAR hosts); `/` for none.
    #[arg(long, value_name = "ALIAS", default_value = "esmond")]
    pub script_alias: String,

    /// Only measurements from this source (an address, IPv6 too, or a name the archive
    /// resolves).
    #[arg(short = 's', long = "src", value_name = "SRC")]
    pub src: Option<String>,

    /// Only measurements to this destination.
    #[arg(short = 'd', long = "dest", value_name = "DEST")]
    pub dest: Option<String>,

    /// Only measurements by this measurement agent.
    #[arg(short = 'a', long, value_name = "AGENT")]
    pub agent: Option<String>,

    /// Only this event type (any the archive has; -L lists esmond's).
    #[arg(short = 'e', long, value_name = "EVENT")]
    pub event_type: Option<String>,

    /// Only measurements by this tool (tool-name, e.g. bwctl/iperf3).
    #[arg(short = 't', long, value_name = "TOOL")]
    pub tool: Option<String>,

    /// Start of the window: 2015-04-01, 'Jan 1 2015 13:00', ISO 8601, -7d, yesterday,
    /// @EPOCH (naive times are UTC) [default: 24 hours before the end].
    #[arg(short = 'S', long, value_name = "WHEN")]
    pub start_time: Option<String>,

    /// End of the window, in the same forms [default: now].
    #[arg(short = 'E', long, value_name = "WHEN")]
    pub end_time: Option<String>,

    /// Any other metadata search parameter, e.g. ip-transport-protocol:tcp,
    /// input-source:host.example.net, or a free-form parameter of the archive's; the value
    /// may contain ':'. Repeatable; later ones override the options above.
    #[arg(short = 'F', long = "filter", value_name = "KEY:VALUE")]
    pub filter: Vec<String>,

    /// List esmond's event types and exit.
    #[arg(short = 'L', long)]
    pub list_events: bool,

    /// Extended metadata: every field of each metadata (esmond-metadata).
    #[arg(short = 'M', long)]
    pub metadata_extended: bool,

    /// Read this summary instead of the base data (numeric and histogram event types).
    #[arg(short = 'T', long, value_enum, value_name = "TYPE")]
    pub summary_type: Option<SummaryType>,

    /// The summary's window in seconds (with -T).
    #[arg(short = 'W', long, value_name = "SECONDS", default_value_t = 0)]
    pub summary_window: i64,

    /// Look addresses up in reverse DNS and print host names (the originals did so unless
    /// -I; here DNS is used only when asked).
    #[arg(long)]
    pub resolve: bool,

    /// Print addresses, not names (the default; the originals' flag, kept for scripts).
    #[arg(short = 'I', long, conflicts_with = "resolve")]
    pub ip: bool,

    /// Print each URL fetched on stderr.
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// Seconds before a request is abandoned.
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = cli::seconds)]
    pub timeout: Duration,

    /// Do not check the archive's TLS certificate (the originals checked nothing unless
    /// --ssl-verify; here certificates are checked unless this is given).
    #[arg(long)]
    pub insecure: bool,

    /// Check the archive's TLS certificate (the default; the originals' flag).
    #[arg(long, conflicts_with = "insecure")]
    pub ssl_verify: bool,
}

impl QueryArgs {
    /// With `-L`: prints the event types (as the originals did) and returns true.
    pub fn list_events(&self) -> Result<bool, Error> {
        if !self.list_events {
            return Ok(false);
        }
        let mut text = String::from("\nValid event types:\n");
        for event_type in types::EVENT_TYPES {
            text.push_str("    ");
            text.push_str(event_type);
            text.push('\n');
        }
        let mut out = io::stdout();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| Error::io("<stdout>", e))?;
        Ok(true)
    }

    /// The archive to read.
    pub fn archive(&self) -> Archive {
        let settings = Settings {
            url: self.url.clone(),
            script_alias: Some(self.script_alias.clone()),
            authorization: None,
            timeout: self.timeout.max(Duration::from_millis(1)),
            verify_tls: !self.insecure,
        };
        let archive = Archive::new(&settings);
        if self.verbose {
            archive.traced(|url| cli::notice(&format!("GET {url}")))
        } else {
            archive
        }
    }

    /// Names for addresses (reverse DNS with --resolve).
    pub fn names(&self) -> Names {
        Names::new(self.resolve)
    }

    /// The summary asked for, `base` without -T.
    pub fn summary(&self) -> Summary {
        match self.summary_type {
            None => Summary::Base,
            Some(SummaryType::Aggregation) => Summary::Aggregation,
            Some(SummaryType::Average) => Summary::Average,
            Some(SummaryType::Statistics) => Summary::Statistics,
        }
    }

    /// The metadata search and the window, from the options and then the -F filters.
    pub fn filters(&self) -> Result<Filters, Error> {
        let mut named: Vec<(&str, String)> = [
            ("source", &self.src),
            ("destination", &self.dest),
            ("measurement-agent", &self.agent),
            ("event-type", &self.event_type),
            ("tool-name", &self.tool),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.clone().map(|v| (name, v)))
        .collect();
        if self.summary_type.is_some() {
            named.push(("summary-type", self.summary().name().to_owned()));
        }
        if self.summary_window != 0 {
            named.push(("summary-window", self.summary_window.to_string()));
        }
        let window = Window {
            start: self.start_time.as_deref(),
            end: self.end_time.as_deref(),
            now: crate::clock::now_seconds(),
        };
        Filters::from_options(&named, &self.filter, window).map_err(Error::Usage)
    }
}

/// A table on stdout: a closed pipe is a quiet end (`Error::io("<stdout>", …)`).
pub fn stdout_error(cause: io::Error) -> Error {
    Error::io("<stdout>", cause)
}
