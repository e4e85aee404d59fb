//! mmstats: metrics that applications publish into memory-mapped files, read by other
//! processes with no locks and no system calls on the writer's side.
//!
//! Two on-disk formats are read, told apart by the first byte of the file:
//!
//! * **format 1** (`0x01`), what the Python `mmstats` 0.6–0.8 writes: packed, unaligned,
//!   native-endian field records with a "write buffer" byte per field ([`v1`]). Read with
//!   `pread` into a buffer, never through a live mapping, and re-read until two reads agree
//!   so a concurrent writer cannot hand out a torn value.
//! * **the native format** (`'M'`, magic `MMSTATS3`), written by this crate's [`writer`]:
//!   immutable metadata apart from 8-byte aligned value slots, atomics for scalars and one
//!   seqlock per compound value ([`layout`] documents it byte by byte, [`native`] reads it).
//!
//! `0x02` was the never-implemented Python "version 2 proposal"; files starting with it are
//! refused with a message that says so. Either format reads into the same [`StatsFile`], so
//! the tools (`mmstats-slurp`, `mmstats-poll`, `mmstats-clean`, `mmstats-serve`) do not
//! care which one a writer used.

// Readers and writers share values through 8-byte atomics in a mapping.
#[cfg(not(target_has_atomic = "64"))]
compile_error!("mmstats needs 8-byte atomics (target_has_atomic = \"64\")");

pub mod files;
pub mod format1;
pub mod histogram;
pub mod layout;
pub mod mmash;
pub mod native;
pub mod poll;
pub mod process;
pub mod prom;
pub mod publish;
#[cfg(feature = "recorder")]
pub mod recorder;
pub mod render;
mod seqlock;
#[cfg(feature = "http-server")]
pub mod serve;
pub mod stale;
pub mod v1;
pub mod writer;

use std::fs::{Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

pub use writer::{Builder, Local, Mode, Shared, Stats};

/// The on-disk format of a stats file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Python mmstats' format (first byte `0x01`).
    V1,
    /// This crate's lock-free format (magic `MMSTATS3`).
    Native,
}

impl Format {
    /// The name used in records: `mmstats1` or `mmstats3`.
    pub fn name(self) -> &'static str {
        match self {
            Format::V1 => "mmstats1",
            Format::Native => "mmstats3",
        }
    }
}

/// What a stats file says about the process that wrote it, for staleness checks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Owner {
    /// The writer's process id (format 1: the last label ending in `sys.pid`).
    pub pid: Option<u32>,
    /// The writer thread of a native per-thread file.
    pub tid: Option<u32>,
    /// When the file was created, epoch seconds (format 1: `sys.created`).
    pub created: Option<f64>,
    /// The writer's start time in clock ticks since boot (`/proc/PID/stat` field 22);
    /// native files only.
    pub start_ticks: Option<u64>,
    /// The boot the writer ran in (`/proc/sys/kernel/random/boot_id`); native files only.
    pub boot_id: Option<[u8; 16]>,
    /// The writer marked the file closed (a clean shutdown that kept the file).
    pub closed: bool,
}

/// A field's value as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Unsigned integer (counters, `Q`, `I`, `H`, `B`, ...).
    U64(u64),
    /// Signed integer (gauges, `q`, `i`, `h`, `b`).
    I64(i64),
    /// Floating point (`d`, `f`, float gauges).
    F64(f64),
    /// Boolean (`?`, bool fields).
    Bool(bool),
    /// Text, cut at the first NUL, invalid UTF-8 dropped.
    Text(String),
    /// An average, moving average or timer: the published mean and its parts.
    Summary(Summary),
    /// A log-linear histogram of unsigned values.
    Histogram(histogram::Snapshot),
    /// A value with no meaning (struct code `x`, a pad byte).
    Null,
}

impl Value {
    /// The value as a number, for summing and differencing: integers and floats as
    /// themselves, bools as 0/1, a summary's mean, a histogram's count. Text has none.
    pub fn number(&self) -> Option<Number> {
        match *self {
            Value::U64(v) => Some(Number::U64(v)),
            Value::I64(v) => Some(Number::I64(v)),
            Value::F64(v) => Some(Number::F64(v)),
            Value::Bool(v) => Some(Number::U64(u64::from(v))),
            Value::Summary(ref s) => Some(Number::F64(s.mean)),
            Value::Histogram(ref h) => Some(Number::U64(h.count)),
            Value::Text(_) | Value::Null => None,
        }
    }
}

/// A number read from a field, keeping integers exact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// Unsigned integer.
    U64(u64),
    /// Signed integer.
    I64(i64),
    /// Floating point.
    F64(f64),
}

impl Number {
    /// The value as an `i128`, if it is an integer.
    pub fn as_i128(self) -> Option<i128> {
        match self {
            Number::U64(v) => Some(i128::from(v)),
            Number::I64(v) => Some(i128::from(v)),
            Number::F64(_) => None,
        }
    }

    /// The value as an `f64` (large integers lose precision).
    pub fn as_f64(self) -> f64 {
        match self {
            Number::U64(v) => v as f64,
            Number::I64(v) => v as f64,
            Number::F64(v) => v,
        }
    }
}

/// The published state of an average, moving average or timer field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Samples added since the field was created.
    pub count: u64,
    /// Sum of all samples.
    pub sum: f64,
    /// The latest sample.
    pub last: f64,
    /// The published mean: over all samples, or over the last `window` for moving
    /// averages and timers.
    pub mean: f64,
    /// The moving window's size; 0 for a cumulative average.
    pub window: u64,
}

/// One field of a stats file.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The label, e.g. `web.stats.status.2XX`.
    pub label: String,
    /// The type: a struct signature (`Q`, `255s`) for format 1, a kind name
    /// (`counter`, `histogram`, ...) for the native format.
    pub type_code: String,
    /// The value.
    pub value: Value,
    /// False when a concurrent writer kept changing the field and no two reads agreed;
    /// the value is then the last one read.
    pub consistent: bool,
}

/// Everything read from one stats file.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsFile {
    /// The file's format.
    pub format: Format,
    /// What the file says about its writer.
    pub owner: Owner,
    /// The fields in file order (labels may repeat in format 1).
    pub fields: Vec<Field>,
}

impl StatsFile {
    /// The first field with exactly this label.
    pub fn field(&self, label: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.label == label)
    }
}

/// Why a stats file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read (the cause is the message, not a `source`, so
    /// it is printed once).
    #[error("{0}")]
    Io(io::Error),
    /// The file is not a stats file of a known format, or is corrupt at `offset`.
    #[error("offset {offset}: {cause}")]
    Corrupt {
        /// Byte offset of the problem.
        offset: u64,
        /// What is wrong.
        cause: String,
    },
}

impl From<io::Error> for ReadError {
    fn from(err: io::Error) -> Self {
        ReadError::Io(err)
    }
}

impl ReadError {
    fn corrupt(offset: impl TryInto<u64>, cause: impl Into<String>) -> Self {
        ReadError::Corrupt {
            offset: offset.try_into().unwrap_or(u64::MAX),
            cause: cause.into(),
        }
    }
}

/// Reads a stats file of either format.
pub fn read(path: &Path) -> Result<StatsFile, ReadError> {
    // Non-blocking, so that opening a FIFO planted under a stats file's name returns at
    // once (and is then refused) instead of waiting for a writer that never comes.
    // O_NOATIME where allowed (the file's owner): a reader polling thousands of files
    // should not dirty every inode; others get EPERM and open it plainly.
    let open = |flags| {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | flags)
            .open(path)
    };
    let file = match open(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0)?,
        other => other?,
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other(format!("not a regular file ({})", kind_of(&meta))).into());
    }
    let mut first = [0u8; 1];
    let got = std::os::unix::fs::FileExt::read_at(&file, &mut first, 0)?;
    if got == 0 {
        return Err(ReadError::corrupt(0, "empty file, not a stats file"));
    }
    match first[0] {
        v1::VERSION => v1::read(&file),
        0x02 => Err(ReadError::corrupt(
            0,
            "format 2 (the unimplemented Python mmstats proposal) is not supported",
        )),
        layout::FIRST_BYTE => native::read(&file, meta.len()),
        other => Err(ReadError::corrupt(
            0,
            format!("not a stats file (first byte 0x{other:02x})"),
        )),
    }
}

/// What a file that is not a regular file is, in words.
fn kind_of(meta: &Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "not a file"
    }
}
