//! `mmstats-serve`: mmash's JSON API, `/metrics` for Prometheus and a live page, over the
//! stats files of a directory.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::cli::ConnectionArgs;
use crate::error::Error;
use crate::mmstats::files;
use crate::mmstats::serve::{self, Config};

const EXAMPLES: &str = "\
Examples:
  # the files of $MMSTATS_PATH (or the temp dir) on http://127.0.0.1:5002/
  mmstats-serve

  # one application's files; Prometheus scrapes http://127.0.0.1:9102/metrics
  mmstats-serve --dir /run/web --listen 127.0.0.1:9102 --metric-prefix web_

  # what mmash answered, from a shell
  curl -s 'http://127.0.0.1:5002/stats/web.requests?aggr=sum'
  curl -s 'http://127.0.0.1:5002/stats/web.requests?exact=1&glob=web-1234-*.mmstats'

  # a live page of two fields, polled twice a second
  xdg-open 'http://127.0.0.1:5002/graph/?field=web.requests&field=web.request_bytes&interval=500'";

/// Serve stats files over HTTP: mmash's JSON API, Prometheus' /metrics and a live page.
///
/// Every request globs and reads the files again, so writers that start or exit are seen
/// at once; files that cannot be read are skipped, as mmash skips them.
///
/// Routes (GET and HEAD):
///   /stats/             {"stats": [every label]}
///   /stats/NAME         {label: [value per file]} for the labels starting with NAME;
///                       ?exact=1 for NAME alone, ?glob=PATTERN for other files of the
///                       directory, ?aggr=avg|one|max|min|sum|nonzero-min|nonzero-avg for
///                       one value per label (400 when the values cannot be aggregated)
///   /files/, /files/PATTERN   {"files": [files that hold at least one field]}
///   /metrics            the Prometheus text format (OpenMetrics, with # EOF, when the
///                       scraper's Accept asks for it), aggregated as --format prom of
///                       mmstats-slurp: counters as NAME_total and summaries and histograms
///                       summed over every file, exited writers included; gauges per live pid
///   /                   every label, with a form to plot some
///   /graph/?field=LABEL[&field=…][&interval=MS][&aggr=…][&rate=LABEL]
///                       a live page: counters as rates, histograms as the p50/p95/p99 of
///                       each interval, other numbers as they are (rate=LABEL plots a format 1
///                       counter, which its file cannot tell from a gauge, as a rate;
///                       glob= as for /stats/)
///   /live?field=LABEL…  what the page polls, as JSON
///   /health             {"status": "ok"}
///
/// A PATTERN is taken inside --dir: '..' or an absolute pattern is refused with 400.
/// Values come in sorted file order (mmash used the directory's order), and exact=1 works
/// (mmash matched prefixes anyway). A file of an exited writer is read once for /metrics
/// and remembered until it changes or goes. Errors are answered {"error": "..."}.
#[derive(Debug, Parser)]
#[command(name = "mmstats-serve", version, after_help = EXAMPLES, verbatim_doc_comment)]
pub struct Args {
    /// Address and port to listen on (loopback unless you say otherwise; mmash's port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5002")]
    listen: SocketAddr,

    /// The stats directory; request patterns are taken inside it. Default: $MMSTATS_PATH,
    /// else the temp dir.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// The files served when a request names none, inside --dir unless absolute. Default:
    /// $MMSTATS_GLOB, else *.mmstats in --dir.
    #[arg(long, value_name = "PATTERN")]
    glob: Option<String>,

    /// Prepended to every metric name on /metrics (e.g. `web_`).
    #[arg(long, value_name = "PREFIX", default_value = "")]
    metric_prefix: String,

    /// Milliseconds between the live page's polls, unless its address says otherwise.
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..=3_600_000))]
    interval: u64,

    #[command(flatten)]
    connections: ConnectionArgs,
}

/// Runs `mmstats-serve`.
pub fn run(args: Args) -> Result<(), Error> {
    let dir = args.dir.clone().unwrap_or_else(files::stats_dir);
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "--dir {}: not a directory",
            dir.display()
        )));
    }
    let pattern = match (&args.glob, &args.dir) {
        (Some(glob), _) => dir.join(glob).to_string_lossy().into_owned(),
        (None, Some(dir)) => dir.join("*.mmstats").to_string_lossy().into_owned(),
        (None, None) => files::default_glob(),
    };
    crate::cli::stop_on_signal();
    let config = Config {
        listen: args.listen,
        dir,
        pattern,
        metric_prefix: args.metric_prefix,
        interval_ms: args.interval,
        limits: args.connections.limits(),
        notice: crate::cli::notice,
    };
    serve::serve(config).map_err(|e| Error::failed(format!("serving on {}: {e}", args.listen)))
}
