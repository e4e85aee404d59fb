//! The server's own metrics for Prometheus (`GET /metrics`, the text exposition format):
//! requests by method and status, request latency, points written, the database's size.
//!
//! They live in a metrics-exporter-prometheus recorder the server owns (not the process's
//! global one), so two servers in one process never mix their figures.

use metrics::{Key, Label, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

const REQUESTS: &str = "esmond_serve_requests_total";
const LATENCY: &str = "esmond_serve_request_duration_seconds";
const POINTS: &str = "esmond_serve_points_written_total";
const DATABASE: &str = "esmond_serve_database_bytes";

/// Latency buckets, seconds: a read of a day is ~1 ms, a bulk write ~1–50 ms.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Where the figures are kept.
pub struct Meters {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Default for Meters {
    fn default() -> Self {
        Self::new()
    }
}

static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);

impl Meters {
    /// Meters for a server.
    pub fn new() -> Meters {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(LATENCY.into()), &BUCKETS)
            .expect("buckets are not empty")
            .build_recorder();
        recorder.describe_counter(
            REQUESTS.into(),
            None,
            "Requests answered, by method and status.".into(),
        );
        recorder.describe_histogram(
            LATENCY.into(),
            Some(Unit::Seconds),
            "Time from a request's headers to its answer, by method.".into(),
        );
        recorder.describe_counter(
            POINTS.into(),
            None,
            "New points written since the server started (answered writes).".into(),
        );
        recorder.describe_gauge(
            DATABASE.into(),
            Some(Unit::Bytes),
            "Size of the archive's files (the database and its write-ahead log).".into(),
        );
        let handle = recorder.handle();
        Meters { recorder, handle }
    }

    /// Counts an answered request.
    pub fn request(
        &self,
        method: &axum::http::Method,
        status: axum::http::StatusCode,
        seconds: f64,
    ) {
        let method = match *method {
            axum::http::Method::GET => "GET",
            axum::http::Method::HEAD => "HEAD",
            axum::http::Method::POST => "POST",
            axum::http::Method::PUT => "PUT",
            axum::http::Method::DELETE => "DELETE",
            axum::http::Method::OPTIONS => "OPTIONS",
            _ => "other",
        };
        let labels = vec![
            Label::from_static_parts("method", method),
            Label::new("status", status.as_str().to_owned()),
        ];
        self.recorder
            .register_counter(&Key::from_parts(REQUESTS, labels), &METADATA)
            .increment(1);
        let labels = vec![Label::from_static_parts("method", method)];
        self.recorder
            .register_histogram(&Key::from_parts(LATENCY, labels), &METADATA)
            .record(seconds);
    }

    /// The exposition, with `points` written and the database's `sizes` (bytes, by file:
    /// [`Store::sizes`](super::store::Store::sizes)) as they are now.
    pub fn render(&self, points: u64, sizes: &[(&'static str, u64)]) -> String {
        self.recorder
            .register_counter(&Key::from_name(POINTS), &METADATA)
            .absolute(points);
        for &(file, size) in sizes {
            self.recorder
                .register_gauge(
                    &Key::from_parts(DATABASE, vec![Label::from_static_parts("file", file)]),
                    &METADATA,
                )
                .set(size as f64);
        }
        self.handle.render()
    }

    /// Folds recent latency observations into their buckets; call every few seconds, so
    /// memory stays bounded between scrapes.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}
