//! A recorder for the [`metrics`] facade that publishes into stats files, so a Rust
//! program instrumented with `metrics::counter!`, `gauge!` and `histogram!` is read by
//! mmstats-slurp, mmstats-poll and mmstats-serve (mmash's API and `/metrics`) with no
//! exporter thread, no socket and no system call on the hot path.
//!
//! The design follows from what an update may cost (the target is 5 ns for a counter):
//! * **counters and histograms are per thread.** Each thread that updates one gets a file
//!   of its own (`{CMD}-{PID}-{TID}.mmstats` by default) holding every counter and
//!   histogram registered so far, and adds with a plain load and store: one writer per
//!   word needs no atomic read-modify-write (a shared `lock xadd` costs more than the
//!   whole budget). Readers already sum counters and histograms over a process's files.
//!   A registration after a thread's file was made makes that thread regrow it at its next
//!   update: a new file with every field, its counts carried over, renamed over the old.
//!   A thread's file is kept, marked closed, when the thread exits, so its counts go on
//!   counting (as an exited writer's do in `mmstats-slurp --format prom`); mmstats-clean
//!   removes closed files.
//! * **gauges are per process**, in one shared file (`TID` 0 in the name): a gauge set by
//!   one thread and read by another must be one value, not a sum. Their updates take a
//!   read lock (a registration regrows the file under the write lock) and an atomic store
//!   or compare-and-swap.
//!
//! Labels are the metric's name, then each of its labels as `.key.value`
//! (`http.requests.method.GET`), behind an optional prefix. Histograms record `u64`s: a
//! value is multiplied by [`RecorderBuilder::histogram_scale`] (1 unless set: record
//! seconds at a scale of 1e6 to keep microseconds), rounded, negatives as 0, NaN dropped.
//! A name registered again as another kind, or a label a stats file cannot hold (empty,
//! or over 65,535 bytes; counted in [`MmstatsRecorder::errors`]), gets a no-op handle.
//! `absolute` sets what this thread has counted.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

use super::files;
use super::writer::{self, Builder, Local, Shared, Stats, WriteError};
use crate::sync::lock;

/// Distinguishes recorders in a thread's list of files.
static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

/// What kind of field a registered metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Configures a [`MmstatsRecorder`].
#[derive(Debug, Clone)]
pub struct RecorderBuilder {
    template: Option<PathBuf>,
    prefix: String,
    scale: f64,
}

impl RecorderBuilder {
    /// Where the files go: a path whose name may hold `{CMD}`, `{PID}` and `{TID}` (the
    /// process-wide gauge file has `TID` 0). Default: `$MMSTATS_FILES` (else
    /// `{CMD}-{PID}-{TID}.mmstats`) in `$MMSTATS_PATH` (else the temp dir), as mmstats.
    pub fn path_template(mut self, template: impl Into<PathBuf>) -> Self {
        self.template = Some(template.into());
        self
    }

    /// Put before every label (e.g. `web.`).
    pub fn label_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// What a histogram's values are multiplied by before they are recorded as whole
    /// numbers (1e6 records seconds as microseconds).
    pub fn histogram_scale(mut self, scale: f64) -> Self {
        self.scale = scale;
        self
    }

    /// The recorder. No file is made until a metric is updated.
    pub fn build(self) -> MmstatsRecorder {
        MmstatsRecorder {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                template: self.template,
                prefix: self.prefix,
                scale: if self.scale.is_finite() && self.scale > 0.0 {
                    self.scale
                } else {
                    1.0
                },
                registry: Mutex::new(Registry::default()),
                generation: AtomicU64::new(0),
                gauges: RwLock::new(None),
                errors: AtomicU64::new(0),
                last_error: Mutex::new(None),
            }),
        }
    }
}

/// A `metrics` recorder backed by stats files; see the module documentation. Install it
/// with `metrics::set_global_recorder`.
#[derive(Debug, Clone)]
pub struct MmstatsRecorder {
    inner: Arc<Inner>,
}

impl MmstatsRecorder {
    /// A builder with the defaults.
    pub fn builder() -> RecorderBuilder {
        RecorderBuilder {
            template: None,
            prefix: String::new(),
            scale: 1.0,
        }
    }

    /// How many times a file could not be made (updates then go nowhere until the next
    /// registration), and the last cause.
    pub fn errors(&self) -> (u64, Option<String>) {
        (
            self.inner.errors.load(Ordering::Relaxed),
            lock(&self.inner.last_error).clone(),
        )
    }

    /// The handle of `key` as a `kind`, registered now if new; `None` when the name is
    /// registered as another kind.
    fn handle(&self, key: &Key, kind: Kind) -> Option<Arc<Handle>> {
        let index = self.register(key, kind)?;
        Some(Arc::new(Handle {
            inner: self.inner.clone(),
            index,
        }))
    }

    fn register(&self, key: &Key, kind: Kind) -> Option<usize> {
        let mut label = self.inner.prefix.clone();
        label.push_str(key.name());
        for pair in key.labels() {
            label.push('.');
            label.push_str(pair.key());
            label.push('.');
            label.push_str(pair.value());
        }
        if label.is_empty() || label.len() > usize::from(u16::MAX) {
            // One label a file cannot hold must not cost a thread its whole file.
            self.inner.failed(format!(
                "metric label of {} bytes: a stats label is 1 to 65535 bytes; updates to it are dropped",
                label.len()
            ));
            return None;
        }
        let mut registry = lock(&self.inner.registry);
        if let Some(&index) = registry.by_label.get(&label) {
            return (registry.defs[index].kind == kind).then_some(index);
        }
        let index = registry.defs.len();
        registry.defs.push(Def {
            label: label.clone(),
            kind,
        });
        registry.by_label.insert(label, index);
        if kind == Kind::Gauge {
            self.inner.regrow_gauges(&registry);
        } else {
            // Threads see the new field at their next update (the registry lock is held,
            // so a thread that sees the new generation finds the new field).
            self.inner.generation.fetch_add(1, Ordering::Release);
        }
        Some(index)
    }
}

impl Recorder for MmstatsRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.handle(key, Kind::Counter)
            .map_or_else(Counter::noop, Counter::from_arc)
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.handle(key, Kind::Gauge)
            .map_or_else(Gauge::noop, Gauge::from_arc)
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.handle(key, Kind::Histogram)
            .map_or_else(Histogram::noop, Histogram::from_arc)
    }
}

#[derive(Debug)]
struct Def {
    label: String,
    kind: Kind,
}

#[derive(Debug, Default)]
struct Registry {
    defs: Vec<Def>,
    by_label: HashMap<String, usize>,
}

#[derive(Debug)]
struct Inner {
    id: usize,
    template: Option<PathBuf>,
    prefix: String,
    scale: f64,
    registry: Mutex<Registry>,
    /// Bumped by every registration.
    generation: AtomicU64,
    gauges: RwLock<Option<GaugeFile>>,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// The process's gauges, and where each registered one's word is.
#[derive(Debug)]
struct GaugeFile {
    stats: Stats<Shared>,
    /// Per registry index: the gauge's word, or null for another kind.
    words: Vec<*const AtomicU64>,
}

// SAFETY: the pointers point into `stats`' mapping, which lives exactly as long as the
// struct and does not move; they are only used for atomic operations, which any thread
// may make on a shared file (`Stats<Shared>` is `Send + Sync`).
unsafe impl Send for GaugeFile {}
// SAFETY: as above.
unsafe impl Sync for GaugeFile {}

/// A thread's file for one recorder.
struct ThreadFile {
    recorder: usize,
    /// The registry generation it holds (or failed to be made at).
    generation: u64,
    stats: Option<Stats<Local>>,
    /// Per registry index: the word(s) of a counter or histogram, or an empty slot.
    words: Vec<(*const AtomicU64, usize)>,
}

thread_local! {
    static THREAD_FILES: RefCell<Vec<ThreadFile>> = const { RefCell::new(Vec::new()) };
}

impl Inner {
    fn path(&self, tid: u32) -> Result<PathBuf, String> {
        match &self.template {
            None => files::writer_path(tid),
            Some(template) => {
                let name = template
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let name = files::expand_template(
                    &name,
                    &super::process::command_name(),
                    std::process::id(),
                    tid,
                )?;
                Ok(template.parent().unwrap_or(Path::new("")).join(name))
            }
        }
    }

    fn failed(&self, cause: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *lock(&self.last_error) = Some(cause);
    }

    /// Runs `update` on the words of counter or histogram `index` in this thread's file,
    /// making or regrowing the file first when a registration came since.
    #[inline]
    fn with_words(&self, index: usize, update: impl FnOnce(&[AtomicU64])) {
        let _ = THREAD_FILES.try_with(|files| {
            let mut files = files.borrow_mut();
            let generation = self.generation.load(Ordering::Acquire);
            let at = match files.iter().position(|f| f.recorder == self.id) {
                Some(at) if files[at].generation == generation => at,
                found => self.regrow_thread(&mut files, found, generation),
            };
            if let Some(&(word, len)) = files[at].words.get(index) {
                if !word.is_null() {
                    // SAFETY: `word` points at `len` aligned words of the live mapping of
                    // `files[at].stats`, which the borrow of `files` keeps alive; only this
                    // thread writes them.
                    update(unsafe { std::slice::from_raw_parts(word, len) });
                }
            }
        });
    }

    /// Makes this thread's file anew with every counter and histogram registered, taking
    /// over the old one's counts; returns its place in `files`.
    #[cold]
    fn regrow_thread(
        &self,
        files: &mut Vec<ThreadFile>,
        found: Option<usize>,
        generation: u64,
    ) -> usize {
        let at = found.unwrap_or_else(|| {
            files.push(ThreadFile {
                recorder: self.id,
                generation,
                stats: None,
                words: Vec::new(),
            });
            files.len() - 1
        });
        let file = &mut files[at];
        file.generation = generation;
        let registry = lock(&self.registry);
        let made = self
            .path(super::process::thread_id())
            .map_err(WriteError::Invalid)
            .and_then(|path| {
                let mut builder = Builder::new().path(path).keep_file();
                for def in &registry.defs {
                    builder = match def.kind {
                        Kind::Counter => builder.counter(&def.label),
                        Kind::Histogram => builder.histogram(&def.label),
                        Kind::Gauge => builder,
                    };
                }
                builder.create()
            });
        match made {
            Ok(stats) => {
                if let Some(old) = &file.stats {
                    stats.carry_over(old);
                }
                file.words = registry
                    .defs
                    .iter()
                    .map(|def| match def.kind {
                        Kind::Gauge => (std::ptr::null(), 0),
                        _ => stats
                            .words(&def.label)
                            .map_or((std::ptr::null(), 0), |w| (w.as_ptr(), w.len())),
                    })
                    .collect();
                // The old file, unlinked by the rename, is marked closed as it drops.
                file.stats = Some(stats);
            }
            Err(err) => {
                // Updates go nowhere until the next registration tries again.
                file.words.clear();
                file.stats = None;
                self.failed(err.to_string());
            }
        }
        at
    }

    /// Makes the process's gauge file anew with every gauge registered, values carried
    /// over, while no gauge is being updated.
    fn regrow_gauges(&self, registry: &Registry) {
        let mut gauges = self
            .gauges
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let made = self.path(0).map_err(WriteError::Invalid).and_then(|path| {
            let mut builder = Builder::new().path(path).keep_file();
            for def in registry.defs.iter().filter(|d| d.kind == Kind::Gauge) {
                builder = builder.gauge_f64(&def.label);
            }
            builder.create_shared()
        });
        match made {
            Ok(stats) => {
                if let Some(old) = gauges.as_ref() {
                    stats.carry_over(&old.stats);
                }
                let words = registry
                    .defs
                    .iter()
                    .map(|def| match def.kind {
                        Kind::Gauge => stats
                            .words(&def.label)
                            .map_or(std::ptr::null(), |w| w.as_ptr()),
                        _ => std::ptr::null(),
                    })
                    .collect();
                *gauges = Some(GaugeFile { stats, words });
            }
            Err(err) => self.failed(err.to_string()),
        }
    }

    /// Runs `update` on gauge `index`'s word, under the read lock.
    fn with_gauge(&self, index: usize, update: impl FnOnce(&AtomicU64)) {
        let gauges = self
            .gauges
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(word) = gauges.as_ref().and_then(|g| g.words.get(index)) {
            if !word.is_null() {
                // SAFETY: see `GaugeFile`; the read lock keeps the file from being replaced.
                update(unsafe { &**word });
            }
        }
    }
}

/// What a registered metric's handle holds.
struct Handle {
    inner: Arc<Inner>,
    index: usize,
}

impl CounterFn for Handle {
    #[inline]
    fn increment(&self, value: u64) {
        self.inner.with_words(self.index, |words| {
            writer::Counter::<Local>::from_words(words).add(value)
        });
    }

    fn absolute(&self, value: u64) {
        self.inner.with_words(self.index, |words| {
            let counter = writer::Counter::<Local>::from_words(words);
            let now = counter.get();
            if value > now {
                counter.add(value - now);
            }
        });
    }
}

impl HistogramFn for Handle {
    #[inline]
    fn record(&self, value: f64) {
        if value.is_nan() {
            return;
        }
        let scaled = (value * self.inner.scale).round().max(0.0) as u64;
        self.inner.with_words(self.index, |words| {
            writer::Histogram::<Local>::from_words(words).record(scaled)
        });
    }
}

impl GaugeFn for Handle {
    fn increment(&self, value: f64) {
        self.inner.with_gauge(self.index, |word| {
            let _ = word.fetch_update(Ordering::Release, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
        });
    }

    fn decrement(&self, value: f64) {
        GaugeFn::increment(self, -value);
    }

    fn set(&self, value: f64) {
        self.inner.with_gauge(self.index, |word| {
            word.store(value.to_bits(), Ordering::Release)
        });
    }
}
