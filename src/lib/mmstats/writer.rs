//! Publishing stats: declare the fields once, create the file, update through typed handles.
//!
//! ```no_run
//! use measpipe::mmstats::Builder;
//!
//! let stats = Builder::new()
//!     .label_prefix("web.")
//!     .counter("requests")
//!     .histogram("latency_ns")
//!     .text("status", 32)
//!     .static_text("version", env!("CARGO_PKG_VERSION"))
//!     .create()?; // {CMD}-{PID}-{TID}.mmstats in $MMSTATS_PATH or the temp dir
//! let requests = stats.counter("requests")?;
//! let latency = stats.histogram("latency_ns")?;
//! requests.incr();
//! latency.record(1_250);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A [`Stats<Local>`] (from [`Builder::create`]) is one thread's file, the mmstats model: it
//! can move between threads but not be shared, and neither can its handles, so every update
//! is a plain load and a release store with no atomic read-modify-write. A
//! [`Stats<Shared>`] (from [`Builder::create_shared`]) is one file for a whole process:
//! counters use `fetch_add` and compound fields take their seqlock with a compare-and-swap.
//! The file is built under a temporary name and renamed into place, so a reader never sees
//! it half made, and it is removed when the `Stats` is dropped (or marked closed, with
//! [`Builder::keep_file`]).

use std::fs;
use std::marker::PhantomData;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memmap2::{MmapOptions, MmapRaw};

use super::histogram::{self, DEFAULT_SUB_BITS};
use super::layout::{self, header, word, Kind};
use super::{files, process, seqlock};

/// Why a stats file could not be created or a field handle not taken.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Creating, sizing, mapping or renaming the file failed.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause (in the message, not a `source`, so it is printed once).
        cause: std::io::Error,
    },
    /// A declaration is not valid (duplicate or over-long label, bad size, bad template).
    #[error("{0}")]
    Invalid(String),
    /// No field with that label was declared.
    #[error("no stats field {0:?} was declared")]
    NoSuchField(String),
    /// The field exists with another kind.
    #[error("stats field {label:?} is a {actual}, not a {wanted}")]
    WrongKind {
        /// The label asked for.
        label: String,
        /// The kind it was declared as.
        actual: &'static str,
        /// The kind asked for.
        wanted: &'static str,
    },
}

/// How updates are made safe: one writer thread per file, or several.
pub trait Mode: private::Sealed {
    /// True when several threads write the file.
    const SHARED: bool;
    /// Adds to a counter word.
    fn add(cell: &AtomicU64, n: u64);
    /// Takes a seqlocked slot for writing; returns the value for `end_write`.
    fn begin(slot: &[AtomicU64]) -> u64;
}

mod private {
    pub trait Sealed {}
    impl Sealed for super::Local {}
    impl Sealed for super::Shared {}
}

/// One writer thread per file (the default): the cheapest updates.
///
/// The file records the creating thread, and mmstats-clean removes it once that thread has
/// exited, so a `Stats<Local>` is neither `Send` nor `Sync`: it cannot outlive its thread
/// as a writer somewhere else.
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// let stats = measpipe::mmstats::Builder::new().counter("c").create().unwrap();
/// send(stats); // a per-thread file stays on its thread
/// ```
///
/// ```
/// fn share<T: Send + Sync>(_: &T) {}
/// let path = std::env::temp_dir().join(format!("doc-shared-{}.mmstats", std::process::id()));
/// let stats = measpipe::mmstats::Builder::new().counter("c").path(&path).create_shared().unwrap();
/// share(&stats); // a process-wide file may go anywhere
/// ```
#[derive(Debug)]
pub struct Local(PhantomData<*const ()>);

/// Several writer threads share the file.
#[derive(Debug)]
pub struct Shared;

impl Mode for Local {
    const SHARED: bool = false;
    #[inline]
    fn add(cell: &AtomicU64, n: u64) {
        cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Release,
        );
    }
    #[inline]
    fn begin(slot: &[AtomicU64]) -> u64 {
        seqlock::begin_write_exclusive(slot)
    }
}

impl Mode for Shared {
    const SHARED: bool = true;
    #[inline]
    fn add(cell: &AtomicU64, n: u64) {
        cell.fetch_add(n, Ordering::Release);
    }
    #[inline]
    fn begin(slot: &[AtomicU64]) -> u64 {
        seqlock::begin_write_shared(slot)
    }
}

/// A field's initial or static value.
#[derive(Debug, Clone)]
pub(super) enum Init {
    Zero,
    Word(u64),
    Text(String),
}

#[derive(Debug, Clone)]
pub(super) struct Declaration {
    pub(super) label: String,
    pub(super) kind: Kind,
    pub(super) constant: bool,
    pub(super) param: u32,
    pub(super) init: Init,
}

/// Declares the fields of a stats file. Every method takes and returns the builder;
/// [`create`](Builder::create) or [`create_shared`](Builder::create_shared) makes the file.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    pub(super) prefix: String,
    pub(super) fields: Vec<Declaration>,
    pub(super) path: Option<PathBuf>,
    pub(super) keep: bool,
}

/// Default size of a moving average or timer window, as Python mmstats.
pub const DEFAULT_WINDOW: u32 = 100;

impl Builder {
    /// An empty declaration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Prepends `prefix` to every label in the file (`web.` + `hits` = `web.hits`).
    /// Handles are still taken by the label as declared.
    pub fn label_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// Writes the file at `path` instead of the `MMSTATS_PATH`/`MMSTATS_FILES` default.
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Keeps the file when the `Stats` is dropped, marked closed, instead of removing it.
    pub fn keep_file(mut self) -> Self {
        self.keep = true;
        self
    }

    fn declare(mut self, label: &str, kind: Kind, param: u32, init: Init) -> Self {
        self.fields.push(Declaration {
            label: label.to_owned(),
            kind,
            constant: false,
            param,
            init,
        });
        self
    }

    fn declare_static(self, label: &str, kind: Kind, param: u32, init: Init) -> Self {
        let mut builder = self.declare(label, kind, param, init);
        if let Some(last) = builder.fields.last_mut() {
            last.constant = true;
        }
        builder
    }

    /// A monotonic `u64` counter.
    pub fn counter(self, label: &str) -> Self {
        self.declare(label, Kind::Counter, 0, Init::Zero)
    }
    /// An `i64` gauge.
    pub fn gauge(self, label: &str) -> Self {
        self.declare(label, Kind::Gauge, 0, Init::Zero)
    }
    /// An `f64` gauge.
    pub fn gauge_f64(self, label: &str) -> Self {
        self.declare(label, Kind::GaugeF64, 0, Init::Zero)
    }
    /// A boolean.
    pub fn flag(self, label: &str, initial: bool) -> Self {
        self.declare(label, Kind::Bool, 0, Init::Word(u64::from(initial)))
    }
    /// Text of at most `capacity` bytes (longer values are cut at a character boundary).
    pub fn text(self, label: &str, capacity: u32) -> Self {
        self.declare(label, Kind::Text, capacity, Init::Zero)
    }
    /// The mean of every sample added.
    pub fn average(self, label: &str) -> Self {
        self.declare(label, Kind::Average, 0, Init::Zero)
    }
    /// The mean of the last `window` samples.
    pub fn moving_average(self, label: &str, window: u32) -> Self {
        self.declare(label, Kind::MovingAverage, window, Init::Zero)
    }
    /// The mean duration, in seconds, of the last [`DEFAULT_WINDOW`] timed sections.
    pub fn timer(self, label: &str) -> Self {
        self.declare(label, Kind::Timer, DEFAULT_WINDOW, Init::Zero)
    }
    /// A log-linear histogram of `u64` values (6.25 % buckets); readers report p50/p90/p99.
    pub fn histogram(self, label: &str) -> Self {
        self.declare(label, Kind::Histogram, DEFAULT_SUB_BITS, Init::Zero)
    }
    /// A constant `u64`.
    pub fn static_u64(self, label: &str, value: u64) -> Self {
        self.declare_static(label, Kind::Counter, 0, Init::Word(value))
    }
    /// A constant `i64`.
    pub fn static_i64(self, label: &str, value: i64) -> Self {
        self.declare_static(label, Kind::Gauge, 0, Init::Word(value as u64))
    }
    /// A constant `f64`.
    pub fn static_f64(self, label: &str, value: f64) -> Self {
        self.declare_static(label, Kind::GaugeF64, 0, Init::Word(value.to_bits()))
    }
    /// A constant text.
    pub fn static_text(self, label: &str, value: &str) -> Self {
        let capacity = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.declare_static(label, Kind::Text, capacity, Init::Text(value.to_owned()))
    }

    /// Creates this thread's stats file: only this thread may update it.
    pub fn create(self) -> Result<Stats<Local>, WriteError> {
        self.build()
    }

    /// Creates one stats file for the whole process: any thread may update it.
    pub fn create_shared(self) -> Result<Stats<Shared>, WriteError> {
        self.build()
    }

    /// The file a writer on thread `tid` creates: the declared path, else the
    /// `MMSTATS_PATH`/`MMSTATS_FILES` default.
    pub(super) fn file_path(&self, tid: u32) -> Result<PathBuf, WriteError> {
        match &self.path {
            Some(path) => Ok(path.clone()),
            None => files::writer_path(tid).map_err(WriteError::Invalid),
        }
    }

    fn build<M: Mode>(self) -> Result<Stats<M>, WriteError> {
        let tid = process::thread_id();
        let path = self.file_path(tid)?;
        let plan = Plan::new(&self.prefix, &self.fields)?;
        let header = Header {
            pid: std::process::id(),
            tid: if M::SHARED { 0 } else { tid },
            shared: M::SHARED,
        };
        let map = create_mapped(&path, plan.file_len, |base| {
            // SAFETY: the mapping is plan.file_len bytes long and nobody else can see the
            // file yet (it has a random temporary name), so plain writes cannot race.
            unsafe { plan.write(base, &header, &self.prefix, &self.fields) }
        })?;
        Ok(Stats {
            map,
            path,
            slots: plan.slots,
            keep: self.keep,
            _mode: PhantomData,
        })
    }
}

/// Creates the file `path` whole or not at all: a temporary file of `len` bytes in its
/// directory, mode 0644, mapped and filled by `fill` (given the mapping's start), then
/// renamed into place, so a reader never sees a partial file. Returns the mapping.
pub(super) fn create_mapped(
    path: &Path,
    len: usize,
    fill: impl FnOnce(*mut u8),
) -> Result<MmapRaw, WriteError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |cause| WriteError::Io { path, cause }
    };
    let temp = tempfile::Builder::new()
        .prefix(".mmstats-")
        .tempfile_in(&dir)
        .map_err(io(&dir))?;
    temp.as_file()
        .set_len(len as u64)
        .map_err(io(temp.path()))?;
    fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o644)).map_err(io(temp.path()))?;
    let map = MmapOptions::new()
        .len(len)
        .map_raw(temp.as_file())
        .map_err(io(temp.path()))?;
    fill(map.as_mut_ptr());
    temp.persist(path).map_err(|e| WriteError::Io {
        path: path.to_path_buf(),
        cause: e.error,
    })?;
    Ok(map)
}

/// Where a declared field lives.
#[derive(Debug, Clone)]
struct Slot {
    label: String,
    kind: Kind,
    offset: usize,
    len: usize,
    param: u32,
}

/// The computed layout of a file about to be written.
struct Plan {
    meta_len: usize,
    values_off: usize,
    values_len: usize,
    file_len: usize,
    slots: Vec<Slot>,
}

struct Header {
    pid: u32,
    tid: u32,
    shared: bool,
}

impl Plan {
    fn new(prefix: &str, fields: &[Declaration]) -> Result<Plan, WriteError> {
        let mut meta_len = 0;
        for (i, field) in fields.iter().enumerate() {
            let label_len = prefix.len() + field.label.len();
            if label_len == 0 || label_len > usize::from(u16::MAX) {
                return Err(WriteError::Invalid(format!(
                    "stats field label {:?} must be 1 to 65535 bytes long",
                    field.label
                )));
            }
            if fields[..i].iter().any(|f| f.label == field.label) {
                return Err(WriteError::Invalid(format!(
                    "stats field {:?} is declared twice",
                    field.label
                )));
            }
            meta_len += layout::record_len(label_len);
        }
        let values_off = layout::align_up(layout::HEADER_LEN + meta_len, layout::LINE);
        let mut at = values_off;
        let mut slots = Vec::with_capacity(fields.len());
        for field in fields {
            let len = field.kind.slot_len(field.param).ok_or_else(|| {
                WriteError::Invalid(format!("stats field {:?}: bad size", field.label))
            })?;
            if field.kind == Kind::Text && field.param == 0 && !field.constant {
                return Err(WriteError::Invalid(format!(
                    "text field {:?} needs a capacity of at least 1 byte",
                    field.label
                )));
            }
            let offset = layout::align_up(at, field.kind.align());
            slots.push(Slot {
                label: field.label.clone(),
                kind: field.kind,
                offset,
                len,
                param: field.param,
            });
            at = offset + len;
        }
        let values_len = at - values_off;
        let file_len = layout::align_up(at.max(values_off + 8), 4096);
        Ok(Plan {
            meta_len,
            values_off,
            values_len,
            file_len,
            slots,
        })
    }

    /// Writes the header, metadata and initial values.
    ///
    /// # Safety
    /// `base` must point to `self.file_len` writable bytes that no other thread or process
    /// accesses during the call.
    unsafe fn write(&self, base: *mut u8, head: &Header, prefix: &str, fields: &[Declaration]) {
        // SAFETY: the caller guarantees exclusive access to file_len bytes.
        let file = unsafe { std::slice::from_raw_parts_mut(base, self.file_len) };
        let mut put = |at: usize, bytes: &[u8]| file[at..at + bytes.len()].copy_from_slice(bytes);
        put(0, layout::MAGIC);
        put(header::MAJOR, &layout::MAJOR.to_ne_bytes());
        put(header::MINOR, &layout::MINOR.to_ne_bytes());
        put(
            header::HEADER_LEN,
            &(layout::HEADER_LEN as u32).to_ne_bytes(),
        );
        put(header::BYTE_ORDER, &[layout::HOST_BYTE_ORDER]);
        put(header::FIELD_COUNT, &(fields.len() as u32).to_ne_bytes());
        put(header::META_OFF, &(layout::HEADER_LEN as u64).to_ne_bytes());
        put(header::META_LEN, &(self.meta_len as u64).to_ne_bytes());
        put(header::VALUES_OFF, &(self.values_off as u64).to_ne_bytes());
        put(header::VALUES_LEN, &(self.values_len as u64).to_ne_bytes());
        put(header::FILE_LEN, &(self.file_len as u64).to_ne_bytes());
        put(header::PID, &head.pid.to_ne_bytes());
        put(header::TID, &head.tid.to_ne_bytes());
        let ticks = process::own_start_ticks().unwrap_or(0);
        put(header::START_TICKS, &ticks.to_ne_bytes());
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        put(header::CREATED_NS, &created.to_ne_bytes());
        put(header::STATE, &layout::STATE_LIVE.to_ne_bytes());
        let flags = if head.shared { layout::FLAG_SHARED } else { 0 };
        put(header::FLAGS, &flags.to_ne_bytes());
        put(header::BOOT_ID, &process::boot_id().unwrap_or([0; 16]));
        let cmd = process::command_name();
        let cmd = truncate_to_char(&cmd, header::CMD_LEN - 1);
        put(header::CMD, cmd.as_bytes());

        let mut at = layout::HEADER_LEN;
        for (field, slot) in fields.iter().zip(&self.slots) {
            let label_len = prefix.len() + field.label.len();
            let record_len = layout::record_len(label_len);
            put(at, &(record_len as u32).to_ne_bytes());
            let flags = if field.constant {
                layout::FIELD_CONSTANT
            } else {
                0
            };
            put(at + 4, &[field.kind as u8, flags]);
            put(at + 6, &(label_len as u16).to_ne_bytes());
            put(at + 8, &(slot.offset as u64).to_ne_bytes());
            put(at + 16, &(slot.len as u32).to_ne_bytes());
            put(at + 20, &field.param.to_ne_bytes());
            put(at + 24, prefix.as_bytes());
            put(at + 24 + prefix.len(), field.label.as_bytes());
            at += record_len;

            match (&field.init, field.kind) {
                (Init::Word(v), _) => put(slot.offset, &v.to_ne_bytes()),
                (Init::Text(text), _) => {
                    put(
                        slot.offset + 8 * word::TEXT_LEN,
                        &(text.len() as u64).to_ne_bytes(),
                    );
                    put(slot.offset + 8 * word::TEXT_BYTES, text.as_bytes());
                }
                (Init::Zero, Kind::MovingAverage | Kind::Timer) => put(
                    slot.offset + 8 * word::WINDOW,
                    &u64::from(field.param).to_ne_bytes(),
                ),
                (Init::Zero, Kind::Histogram) => {
                    put(slot.offset + 8 * word::MIN, &u64::MAX.to_ne_bytes())
                }
                (Init::Zero, _) => {}
            }
        }
    }
}

/// The longest prefix of `text` that is at most `max` bytes and ends on a char boundary.
pub(super) fn truncate_to_char(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A live stats file. Take handles with the accessor of each kind; dropping it removes
/// the file (or marks it closed with [`Builder::keep_file`]).
#[derive(Debug)]
pub struct Stats<M: Mode> {
    map: MmapRaw,
    path: PathBuf,
    slots: Vec<Slot>,
    keep: bool,
    _mode: PhantomData<M>,
}

/// Handle types are tied to their `Stats` and inherit its thread rules.
macro_rules! handle {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name<'a, M: Mode> {
            words: &'a [AtomicU64],
            _stats: PhantomData<&'a Stats<M>>,
        }

        impl<M: Mode> Clone for $name<'_, M> {
            fn clone(&self) -> Self {
                *self
            }
        }

        impl<M: Mode> Copy for $name<'_, M> {}

        impl<'a, M: Mode> $name<'a, M> {
            /// A handle on words taken with [`Stats::words`].
            #[allow(dead_code)]
            pub(super) fn from_words(words: &'a [AtomicU64]) -> Self {
                $name {
                    words,
                    _stats: PhantomData,
                }
            }
        }
    };
}

handle!(
    /// Updates a counter.
    Counter
);
handle!(
    /// Updates an `i64` gauge.
    Gauge
);
handle!(
    /// Updates an `f64` gauge.
    GaugeF64
);
handle!(
    /// Updates a boolean.
    Flag
);
/// Updates a text field.
#[derive(Debug)]
pub struct Text<'a, M: Mode> {
    words: &'a [AtomicU64],
    capacity: usize,
    _stats: PhantomData<&'a Stats<M>>,
}
handle!(
    /// Adds samples to an average or moving average.
    Average
);
handle!(
    /// Times sections of code into a timer field.
    Timer
);
handle!(
    /// Records values into a histogram.
    Histogram
);

impl<M: Mode> Stats<M> {
    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the mapping to disk (`msync`). Never needed for readers on this machine.
    pub fn flush(&self) -> std::io::Result<()> {
        self.map.flush()
    }

    /// The words of the slot declared as `label` and its parameter, if it has one of `kinds`.
    fn slot(
        &self,
        label: &str,
        kinds: &[Kind],
        wanted: &'static str,
    ) -> Result<(&[AtomicU64], u32), WriteError> {
        let slot = self
            .slots
            .iter()
            .find(|s| s.label == label)
            .ok_or_else(|| WriteError::NoSuchField(label.to_owned()))?;
        if !kinds.contains(&slot.kind) {
            return Err(WriteError::WrongKind {
                label: label.to_owned(),
                actual: slot.kind.name(),
                wanted,
            });
        }
        // SAFETY: the slot lies inside the mapping (Plan::new), its offset is 8-aligned and
        // the mapping is page-aligned, so it is a valid, aligned array of u64 words that
        // lives as long as &self. Other processes only read it.
        let words = unsafe {
            std::slice::from_raw_parts(
                self.map.as_ptr().add(slot.offset).cast::<AtomicU64>(),
                slot.len / 8,
            )
        };
        Ok((words, slot.param))
    }

    /// The counter declared as `label`.
    pub fn counter(&self, label: &str) -> Result<Counter<'_, M>, WriteError> {
        let (words, _) = self.slot(label, &[Kind::Counter], "counter")?;
        Ok(Counter {
            words,
            _stats: PhantomData,
        })
    }
    /// The gauge declared as `label`.
    pub fn gauge(&self, label: &str) -> Result<Gauge<'_, M>, WriteError> {
        let (words, _) = self.slot(label, &[Kind::Gauge], "gauge")?;
        Ok(Gauge {
            words,
            _stats: PhantomData,
        })
    }
    /// The float gauge declared as `label`.
    pub fn gauge_f64(&self, label: &str) -> Result<GaugeF64<'_, M>, WriteError> {
        let (words, _) = self.slot(label, &[Kind::GaugeF64], "gauge_f64")?;
        Ok(GaugeF64 {
            words,
            _stats: PhantomData,
        })
    }
    /// The boolean declared as `label`.
    pub fn flag(&self, label: &str) -> Result<Flag<'_, M>, WriteError> {
        let (words, _) = self.slot(label, &[Kind::Bool], "bool")?;
        Ok(Flag {
            words,
            _stats: PhantomData,
        })
    }
    /// The text field declared as `label`.
    pub fn text(&self, label: &str) -> Result<Text<'_, M>, WriteError> {
        let (words, capacity) = self.slot(label, &[Kind::Text], "text")?;
        Ok(Text {
            words,
            capacity: capacity as usize,
            _stats: PhantomData,
        })
    }
    /// The average or moving average declared as `label`.
    pub fn average(&self, label: &str) -> Result<Average<'_, M>, WriteError> {
        let kinds = [Kind::Average, Kind::MovingAverage];
        let (words, _) = self.slot(label, &kinds, "average")?;
        Ok(Average {
            words,
            _stats: PhantomData,
        })
    }
    /// The timer declared as `label`.
    pub fn timer(&self, label: &str) -> Result<Timer<'_, M>, WriteError> {
        let (words, _) = self.slot(label, &[Kind::Timer], "timer")?;
        Ok(Timer {
            words,
            _stats: PhantomData,
        })
    }
    /// The histogram declared as `label`.
    pub fn histogram(&self, label: &str) -> Result<Histogram<'_, M>, WriteError> {
        let (words, _) = self.slot(label, &[Kind::Histogram], "histogram")?;
        Ok(Histogram {
            words,
            _stats: PhantomData,
        })
    }
}

#[cfg_attr(not(feature = "recorder"), allow(dead_code))]
impl<M: Mode> Stats<M> {
    /// The words of the slot declared as `label`, whatever its kind (for the recorder,
    /// which keeps them beside the file).
    pub(super) fn words(&self, label: &str) -> Option<&[AtomicU64]> {
        let kinds = [self.slots.iter().find(|s| s.label == label)?.kind];
        self.slot(label, &kinds, "any").ok().map(|(words, _)| words)
    }

    /// Copies the words of every slot that `old` declares with the same label, kind and
    /// size: a regrown file taking over its predecessor's counts. `old` must not be
    /// written meanwhile (the recorder's files have one writer thread, the caller).
    pub(super) fn carry_over(&self, old: &Stats<M>) {
        for slot in &self.slots {
            let same = old
                .slots
                .iter()
                .find(|o| o.label == slot.label && o.kind == slot.kind && o.len == slot.len);
            if let (Some(_), Some(to), Some(from)) =
                (same, self.words(&slot.label), old.words(&slot.label))
            {
                for (to, from) in to.iter().zip(from) {
                    to.store(from.load(Ordering::Relaxed), Ordering::Relaxed);
                }
            }
        }
        std::sync::atomic::fence(Ordering::Release);
    }
}

impl<M: Mode> Drop for Stats<M> {
    fn drop(&mut self) {
        // SAFETY: the state word is 4-aligned inside the header of our live mapping.
        let state = unsafe { &*self.map.as_ptr().add(header::STATE).cast::<AtomicU32>() };
        state.store(layout::STATE_CLOSED, Ordering::Release);
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl<M: Mode> Counter<'_, M> {
    /// Adds one.
    #[inline]
    pub fn incr(&self) {
        M::add(&self.words[0], 1);
    }
    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        M::add(&self.words[0], n);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.words[0].load(Ordering::Relaxed)
    }
}

impl<M: Mode> Gauge<'_, M> {
    /// Sets the level.
    #[inline]
    pub fn set(&self, value: i64) {
        self.words[0].store(value as u64, Ordering::Release);
    }
    /// Adds `delta` (negative to lower it).
    #[inline]
    pub fn add(&self, delta: i64) {
        M::add(&self.words[0], delta as u64);
    }
    /// The current level.
    pub fn get(&self) -> i64 {
        self.words[0].load(Ordering::Relaxed) as i64
    }
}

impl<M: Mode> GaugeF64<'_, M> {
    /// Sets the level.
    #[inline]
    pub fn set(&self, value: f64) {
        self.words[0].store(value.to_bits(), Ordering::Release);
    }
    /// The current level.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.words[0].load(Ordering::Relaxed))
    }
}

impl<M: Mode> Flag<'_, M> {
    /// Sets the value.
    #[inline]
    pub fn set(&self, value: bool) {
        self.words[0].store(u64::from(value), Ordering::Release);
    }
    /// The current value.
    pub fn get(&self) -> bool {
        self.words[0].load(Ordering::Relaxed) != 0
    }
}

impl<M: Mode> Text<'_, M> {
    /// Replaces the text; a value longer than the capacity is cut at a char boundary.
    pub fn set(&self, value: &str) {
        let value = truncate_to_char(value, self.capacity).as_bytes();
        let odd = M::begin(self.words);
        self.words[word::TEXT_LEN].store(value.len() as u64, Ordering::Relaxed);
        for (chunk, cell) in value.chunks(8).zip(&self.words[word::TEXT_BYTES..]) {
            let mut bytes = [0u8; 8];
            bytes[..chunk.len()].copy_from_slice(chunk);
            cell.store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
        }
        seqlock::end_write(self.words, odd);
    }
}

/// Adds one sample to a summary slot (average, moving average, timer).
#[inline]
fn add_sample<M: Mode>(words: &[AtomicU64], sample: f64) {
    let load = |i: usize| words[i].load(Ordering::Relaxed);
    let load_f = |i: usize| f64::from_bits(load(i));
    let store = |i: usize, v: u64| words[i].store(v, Ordering::Relaxed);
    let odd = M::begin(words);
    let count = load(word::COUNT) + 1;
    let sum = load_f(word::SUM) + sample;
    store(word::COUNT, count);
    store(word::SUM, sum.to_bits());
    store(word::LAST, sample.to_bits());
    let window = load(word::WINDOW) as usize;
    let mean = if window == 0 {
        sum / count as f64
    } else {
        let next = load(word::NEXT) as usize % window;
        let evicted = load_f(word::RING + next);
        store(word::RING + next, sample.to_bits());
        let following = (next + 1) % window;
        let window_sum = if following == 0 {
            // Once per lap, recompute the sum so rounding errors cannot accumulate.
            (0..window).map(|i| load_f(word::RING + i)).sum()
        } else {
            load_f(word::WINDOW_SUM) - evicted + sample
        };
        store(word::NEXT, following as u64);
        store(word::WINDOW_SUM, f64::to_bits(window_sum));
        window_sum / count.min(window as u64) as f64
    };
    store(word::MEAN, mean.to_bits());
    seqlock::end_write(words, odd);
}

impl<M: Mode> Average<'_, M> {
    /// Adds a sample.
    #[inline]
    pub fn add(&self, sample: f64) {
        add_sample::<M>(self.words, sample);
    }
}

impl<'a, M: Mode> Timer<'a, M> {
    /// Records one elapsed duration.
    pub fn record(&self, elapsed: Duration) {
        add_sample::<M>(self.words, elapsed.as_secs_f64());
    }
    /// Runs `section` and records how long it took.
    pub fn time<T>(&self, section: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = section();
        self.record(started.elapsed());
        result
    }
    /// Starts timing; the time is recorded when the guard is dropped.
    pub fn start(&self) -> TimerGuard<'a, M> {
        TimerGuard {
            timer: *self,
            started: Instant::now(),
        }
    }
}

/// Records the time since [`Timer::start`] when dropped.
#[derive(Debug)]
pub struct TimerGuard<'a, M: Mode> {
    timer: Timer<'a, M>,
    started: Instant,
}

impl<M: Mode> Drop for TimerGuard<'_, M> {
    fn drop(&mut self) {
        self.timer.record(self.started.elapsed());
    }
}

impl<M: Mode> Histogram<'_, M> {
    /// Records one value.
    #[inline]
    pub fn record(&self, value: u64) {
        let words = self.words;
        let load = |i: usize| words[i].load(Ordering::Relaxed);
        let store = |i: usize, v: u64| words[i].store(v, Ordering::Relaxed);
        let bucket = word::BUCKETS + histogram::bucket_of(value, DEFAULT_SUB_BITS);
        let odd = M::begin(words);
        store(word::COUNT, load(word::COUNT) + 1);
        store(word::SUM, load(word::SUM).wrapping_add(value));
        if value < load(word::MIN) {
            store(word::MIN, value);
        }
        if value > load(word::MAX) {
            store(word::MAX, value);
        }
        if let Some(cell) = words.get(bucket) {
            cell.store(cell.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
        seqlock::end_write(words, odd);
    }
}
