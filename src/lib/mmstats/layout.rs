//! The native stats file format ("mmstats format 3"), byte by byte.
//!
//! Designed so that readers in other processes never see a torn value and never need a
//! lock: metadata is written once, before the file appears under its name (the writer
//! builds it under a temporary name and renames it), and only the 8-byte aligned value
//! slots change afterwards. Scalars are single atomic words; compound values (text,
//! averages, timers, histograms) sit behind one sequence counter each (a seqlock). All
//! integers are in the host's byte order, recorded in the header; on every supported host
//! that is little-endian.
//!
//! ```text
//! HEADER (256 bytes)
//! off len field
//!   0   8 magic "MMSTATS3"        (first byte 'M': Python readers reject the file cleanly)
//!   8   2 major = 1               (readers refuse other majors)
//!  10   2 minor = 0               (additive changes)
//!  12   4 header_len = 256
//!  16   1 byte_order              1 = little-endian, 2 = big-endian
//!  17   3 reserved
//!  20   4 field_count
//!  24   8 meta_off                (= 256)
//!  32   8 meta_len
//!  40   8 values_off              (64-byte aligned)
//!  48   8 values_len
//!  56   8 file_len
//!  64   4 pid                     the writer's process
//!  68   4 tid                     the writer's thread (0 for a process-wide file)
//!  72   8 start_ticks             /proc/PID/stat field 22 of the writer: tells a reused PID
//!  80   8 created_unix_ns
//!  88   4 state                   atomic: 1 live, 2 closed (clean shutdown, file kept)
//!  92   4 flags                   bit 0: shared by several writer threads
//!  96  16 boot_id                 /proc/sys/kernel/random/boot_id: tells a reboot
//! 112  64 cmd                     NUL-padded UTF-8, basename of argv[0]
//! 176  80 reserved (zero)
//!
//! METADATA: field_count records, each 8-byte aligned
//!  +0   4 rec_len                 multiple of 8, at least 24
//!  +4   1 kind                    see `Kind`
//!  +5   1 flags                   bit 0: constant (a static value, never written again)
//!  +6   2 label_len
//!  +8   8 value_off               absolute, 8-aligned (64-aligned for seqlocked kinds)
//! +16   4 value_len
//! +20   4 param                   text: capacity in bytes; moving average and timer:
//!                                 window; histogram: sub-bucket bits
//! +24     label (UTF-8), zero padding to 8
//!
//! VALUES: one slot per field, in 8-byte words
//! counter       [u64]                               single writer: load + release store;
//!                                                   shared file: fetch_add
//! gauge         [i64]     gauge_f64 [f64 bits]      bool [0 or 1]
//! text          [seq][len][capacity bytes, padded to 8]
//! average,      [seq][count][sum][last][mean][window][next][window_sum][window × f64]
//! moving_average, timer   (mean = sum/count when window is 0, else window_sum/min(count, window);
//!                          timers hold seconds)
//! histogram     [seq][count][sum][min][max][buckets × u64]  log-linear, see `histogram`
//! ```
//!
//! Seqlock protocol. Writer: make `seq` odd, release fence, store the words, store
//! `seq + 2` with release (a writer shared by threads takes the odd value with a
//! compare-and-swap, which also excludes other writers). Reader: acquire-load `seq` (retry
//! while odd), load the words, acquire fence, reload `seq`; the copy is whole if it did not
//! change.

/// The first byte of a native file.
pub const FIRST_BYTE: u8 = b'M';
/// Magic at offset 0.
pub const MAGIC: &[u8; 8] = b"MMSTATS3";
/// Incompatible-change version.
pub const MAJOR: u16 = 1;
/// Additive-change version.
pub const MINOR: u16 = 0;
/// Size of the header.
pub const HEADER_LEN: usize = 256;
/// Size of a metadata record before its label.
pub const RECORD_FIXED_LEN: usize = 24;
/// Alignment of seqlocked slots (a cache line).
pub const LINE: usize = 64;

/// Byte-order marker of this host.
pub const HOST_BYTE_ORDER: u8 = if cfg!(target_endian = "little") { 1 } else { 2 };

/// Header offsets.
pub mod header {
    /// `u16` major version.
    pub const MAJOR: usize = 8;
    /// `u16` minor version.
    pub const MINOR: usize = 10;
    /// `u32` header length.
    pub const HEADER_LEN: usize = 12;
    /// `u8` byte order.
    pub const BYTE_ORDER: usize = 16;
    /// `u32` number of fields.
    pub const FIELD_COUNT: usize = 20;
    /// `u64` metadata offset.
    pub const META_OFF: usize = 24;
    /// `u64` metadata length.
    pub const META_LEN: usize = 32;
    /// `u64` values offset.
    pub const VALUES_OFF: usize = 40;
    /// `u64` values length.
    pub const VALUES_LEN: usize = 48;
    /// `u64` file length.
    pub const FILE_LEN: usize = 56;
    /// `u32` writer pid.
    pub const PID: usize = 64;
    /// `u32` writer tid.
    pub const TID: usize = 68;
    /// `u64` writer start ticks.
    pub const START_TICKS: usize = 72;
    /// `u64` creation time, ns.
    pub const CREATED_NS: usize = 80;
    /// `u32` state word (atomic).
    pub const STATE: usize = 88;
    /// `u32` flags.
    pub const FLAGS: usize = 92;
    /// 16-byte boot id.
    pub const BOOT_ID: usize = 96;
    /// 64-byte command name.
    pub const CMD: usize = 112;
    /// Length of the command name.
    pub const CMD_LEN: usize = 64;
}

/// `state` while the writer is alive.
pub const STATE_LIVE: u32 = 1;
/// `state` after a clean shutdown that kept the file.
pub const STATE_CLOSED: u32 = 2;
/// Header flag: several threads write this file.
pub const FLAG_SHARED: u32 = 1;
/// Field flag: a static value.
pub const FIELD_CONSTANT: u8 = 1;

/// Word indexes inside seqlocked slots.
pub mod word {
    /// The sequence counter of every seqlocked slot.
    pub const SEQ: usize = 0;
    /// Text: byte length of the current value.
    pub const TEXT_LEN: usize = 1;
    /// Text: first word of the bytes.
    pub const TEXT_BYTES: usize = 2;
    /// Summary: samples so far.
    pub const COUNT: usize = 1;
    /// Summary: sum of samples; histogram: sum of values.
    pub const SUM: usize = 2;
    /// Summary: latest sample.
    pub const LAST: usize = 3;
    /// Summary: published mean.
    pub const MEAN: usize = 4;
    /// Summary: window size (0 = cumulative).
    pub const WINDOW: usize = 5;
    /// Summary: next ring index.
    pub const NEXT: usize = 6;
    /// Summary: sum over the ring.
    pub const WINDOW_SUM: usize = 7;
    /// Summary: first ring slot.
    pub const RING: usize = 8;
    /// Histogram: smallest value (`u64::MAX` while empty).
    pub const MIN: usize = 3;
    /// Histogram: largest value.
    pub const MAX: usize = 4;
    /// Histogram: first bucket.
    pub const BUCKETS: usize = 5;
}

/// What a field holds and how its slot is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Monotonic `u64`.
    Counter = 1,
    /// `i64` level.
    Gauge = 2,
    /// `f64` level.
    GaugeF64 = 3,
    /// Boolean.
    Bool = 4,
    /// Seqlocked text.
    Text = 5,
    /// Cumulative mean.
    Average = 6,
    /// Mean of the last N samples.
    MovingAverage = 7,
    /// Moving average of elapsed seconds.
    Timer = 8,
    /// Log-linear histogram.
    Histogram = 9,
}

impl Kind {
    /// Decodes a kind byte.
    pub fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Counter,
            2 => Kind::Gauge,
            3 => Kind::GaugeF64,
            4 => Kind::Bool,
            5 => Kind::Text,
            6 => Kind::Average,
            7 => Kind::MovingAverage,
            8 => Kind::Timer,
            9 => Kind::Histogram,
            _ => return None,
        })
    }

    /// The name readers report as the field's type.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::GaugeF64 => "gauge_f64",
            Kind::Bool => "bool",
            Kind::Text => "text",
            Kind::Average => "average",
            Kind::MovingAverage => "moving_average",
            Kind::Timer => "timer",
            Kind::Histogram => "histogram",
        }
    }

    /// True for kinds whose slot starts with a sequence counter.
    pub fn seqlocked(self) -> bool {
        matches!(
            self,
            Kind::Text | Kind::Average | Kind::MovingAverage | Kind::Timer | Kind::Histogram
        )
    }

    /// The slot length in bytes for this kind with parameter `param`, or `None` when the
    /// parameter is out of range.
    pub fn slot_len(self, param: u32) -> Option<usize> {
        let words = match self {
            Kind::Counter | Kind::Gauge | Kind::GaugeF64 | Kind::Bool => 1,
            Kind::Text => word::TEXT_BYTES + (param as usize).div_ceil(8),
            Kind::Average => word::RING,
            Kind::MovingAverage | Kind::Timer => word::RING + param as usize,
            Kind::Histogram => word::BUCKETS + super::histogram::bucket_count(param)?,
        };
        Some(words * 8)
    }

    /// The slot's alignment.
    pub fn align(self) -> usize {
        if self.seqlocked() {
            LINE
        } else {
            8
        }
    }
}

/// Rounds `n` up to a multiple of `align` (a power of two).
pub fn align_up(n: usize, align: usize) -> usize {
    (n + align - 1) & !(align - 1)
}

/// Length of a metadata record with a label of `label_len` bytes.
pub fn record_len(label_len: usize) -> usize {
    align_up(RECORD_FIXED_LEN + label_len, 8)
}
