//! A writer of format 1, the Python mmstats 0.6–0.8 format ([`super::v1`] reads it), so
//! that the Python tools (slurpstats, pollstats, cleanstats, mmash) can read what a Rust
//! program publishes.
//!
//! Format 1 can express every kind but histograms: counters (`Q`), gauges (`q`, `d`),
//! booleans (`?`), text (`Ns`), and averages, moving averages and timers as their mean
//! (`d`, the window kept in process memory, as Python does). Numbers are double-buffered
//! as Python writes them (write the buffer readers are not reading, then flip the
//! write-buffer byte); text and booleans are written in place. The file ends with the
//! fields Python adds (`sys.pid`, `sys.tid`, `sys.uid`, `sys.gid`, `sys.created`), so
//! cleanstats and mmstats-clean can judge it.
//!
//! The format has no seqlocks: a reader can catch a value being written, which is why
//! readers re-read until two snapshots agree. Prefer the native format where every
//! reader is measpipe's.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU8, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use memmap2::MmapRaw;

use super::layout::Kind;
use super::writer::{create_mapped, truncate_to_char, Builder, Init, WriteError};
use super::{process, v1};

/// Write-buffer byte of an unbuffered field.
const UNBUFFERED: u8 = 255;

/// Where one field's bytes are.
#[derive(Debug)]
struct Slot {
    label: String,
    kind: Kind,
    /// Offset of the write-buffer byte; the value (or two buffers) follows.
    at: usize,
    size: usize,
    buffered: bool,
    constant: bool,
    window: usize,
}

/// Process-local state of an average: what Python keeps outside the file.
#[derive(Debug, Default)]
struct Mean {
    count: u64,
    sum: f64,
    window: VecDeque<f64>,
    window_sum: f64,
}

/// A live format 1 stats file. Like [`super::Stats`]`<`[`super::Local`]`>` it belongs to
/// the thread that created it (`sys.tid`), so it is neither `Send` nor `Sync`.
#[derive(Debug)]
pub struct Stats {
    map: MmapRaw,
    path: PathBuf,
    slots: Vec<Slot>,
    means: RefCell<Vec<Mean>>,
    keep: bool,
    _thread: PhantomData<*const ()>,
}

impl Builder {
    /// Creates this thread's stats file in format 1, which the Python tools read. Fails
    /// for histograms, which format 1 cannot express.
    pub fn create_format1(self) -> Result<Stats, WriteError> {
        let tid = process::thread_id();
        let path = self.file_path(tid)?;
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        // SAFETY: getuid and getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let system = [
            ("sys.uid", Kind::Counter, Init::Word(u64::from(uid))),
            ("sys.created", Kind::GaugeF64, Init::Word(created.to_bits())),
            (
                "sys.pid",
                Kind::Counter,
                Init::Word(u64::from(std::process::id())),
            ),
            ("sys.gid", Kind::Counter, Init::Word(u64::from(gid))),
            ("sys.tid", Kind::Gauge, Init::Word(u64::from(tid))),
        ];
        let mut bytes = vec![v1::VERSION];
        let mut slots = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let declared = self
            .fields
            .iter()
            .map(|f| (f.label.as_str(), f.kind, f.constant, f.param, &f.init));
        let added = system.iter().map(|(l, k, i)| (*l, *k, true, 0, i));
        for (label, kind, constant, param, init) in declared.chain(added) {
            if !seen.insert(label) {
                return Err(WriteError::Invalid(format!(
                    "stats field {label:?} declared twice"
                )));
            }
            let full = format!("{}{label}", self.prefix);
            let (signature, size) = match kind {
                Kind::Counter => ("Q".to_owned(), 8),
                Kind::Gauge => ("q".to_owned(), 8),
                Kind::GaugeF64 | Kind::Average | Kind::MovingAverage | Kind::Timer => {
                    ("d".to_owned(), 8)
                }
                Kind::Bool => ("?".to_owned(), 1),
                Kind::Text => (format!("{}s", param.max(1)), param.max(1) as usize),
                Kind::Histogram => {
                    return Err(WriteError::Invalid(format!(
                        "stats field {full:?}: format 1 has no histograms (use the native format)"
                    )))
                }
            };
            let label_len = u16::try_from(full.len())
                .map_err(|_| WriteError::Invalid(format!("stats label {full:?} is too long")))?;
            bytes.extend_from_slice(&label_len.to_le_bytes());
            bytes.extend_from_slice(full.as_bytes());
            bytes.extend_from_slice(&(signature.len() as u16).to_le_bytes());
            bytes.extend_from_slice(signature.as_bytes());
            let buffered = !constant && !matches!(kind, Kind::Bool | Kind::Text);
            let at = bytes.len();
            bytes.push(if buffered { 0 } else { UNBUFFERED });
            let mut value = vec![0u8; size];
            match init {
                Init::Word(word) => value.copy_from_slice(&word.to_le_bytes()[..size.min(8)]),
                Init::Text(text) => {
                    let text = truncate_to_char(text, size);
                    value[..text.len()].copy_from_slice(text.as_bytes());
                }
                Init::Zero => {}
            }
            bytes.extend_from_slice(&value);
            if buffered {
                bytes.extend_from_slice(&value);
            }
            slots.push(Slot {
                label: label.to_owned(),
                kind,
                at,
                size,
                buffered,
                constant,
                window: param as usize,
            });
        }
        // Python files are whole pages, zero-filled: a zero label length ends the list.
        let len = (bytes.len() + 2).next_multiple_of(4096);
        bytes.resize(len, 0);
        let map = create_mapped(&path, bytes.len(), |base| {
            // SAFETY: the mapping is bytes.len() long and nobody else sees the file yet.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), base, bytes.len()) }
        })?;
        let means = RefCell::new(slots.iter().map(|_| Mean::default()).collect());
        Ok(Stats {
            map,
            path,
            slots,
            means,
            keep: self.keep,
            _thread: PhantomData,
        })
    }
}

impl Stats {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn slot(&self, label: &str, kinds: &[Kind], wanted: &'static str) -> Result<usize, WriteError> {
        let index = self
            .slots
            .iter()
            .position(|s| s.label == label)
            .ok_or_else(|| WriteError::NoSuchField(label.to_owned()))?;
        let slot = &self.slots[index];
        if slot.constant || !kinds.contains(&slot.kind) {
            let actual = if slot.constant {
                "constant"
            } else {
                slot.kind.name()
            };
            return Err(WriteError::WrongKind {
                label: label.to_owned(),
                actual,
                wanted,
            });
        }
        Ok(index)
    }

    fn write_byte(&self, at: usize) -> &AtomicU8 {
        assert!(at < self.map.len());
        // SAFETY: in bounds of our live mapping; u8 needs no alignment.
        unsafe { &*self.map.as_mut_ptr().add(at).cast::<AtomicU8>() }
    }

    /// Writes `value` into the slot: for a buffered field into the buffer readers are not
    /// reading, then flips the write-buffer byte (Python's protocol); else in place.
    fn put(&self, index: usize, value: &[u8]) {
        let slot = &self.slots[index];
        let len = value.len().min(slot.size);
        let wb = self.write_byte(slot.at);
        let target = if slot.buffered {
            let buffer = usize::from(wb.load(Ordering::Relaxed) & 1);
            slot.at + 1 + buffer * slot.size
        } else {
            slot.at + 1
        };
        assert!(target + slot.size <= self.map.len());
        // SAFETY: the target range lies inside our mapping (checked above); readers in
        // other processes copy it and re-read until it is stable.
        unsafe {
            let dst = self.map.as_mut_ptr().add(target);
            std::ptr::copy_nonoverlapping(value.as_ptr(), dst, len);
            std::ptr::write_bytes(dst.add(len), 0, slot.size - len);
        }
        if slot.buffered {
            fence(Ordering::Release);
            wb.store((wb.load(Ordering::Relaxed) & 1) ^ 1, Ordering::Release);
        }
    }

    /// The published value of a buffered 8-byte slot.
    fn current(&self, index: usize) -> [u8; 8] {
        let slot = &self.slots[index];
        let read = usize::from(self.write_byte(slot.at).load(Ordering::Relaxed) & 1) ^ 1;
        let mut out = [0u8; 8];
        let from = slot.at + 1 + read * slot.size;
        assert!(from + 8 <= self.map.len());
        // SAFETY: in bounds (checked); only this thread writes the file.
        unsafe { std::ptr::copy_nonoverlapping(self.map.as_ptr().add(from), out.as_mut_ptr(), 8) };
        out
    }

    /// Adds `n` to the counter `label`.
    pub fn add(&self, label: &str, n: u64) -> Result<(), WriteError> {
        let index = self.slot(label, &[Kind::Counter], "counter")?;
        let value = u64::from_le_bytes(self.current(index)).wrapping_add(n);
        self.put(index, &value.to_le_bytes());
        Ok(())
    }

    /// Sets the gauge `label`.
    pub fn set_i64(&self, label: &str, value: i64) -> Result<(), WriteError> {
        let index = self.slot(label, &[Kind::Gauge], "gauge")?;
        self.put(index, &value.to_le_bytes());
        Ok(())
    }

    /// Sets the float gauge `label`.
    pub fn set_f64(&self, label: &str, value: f64) -> Result<(), WriteError> {
        let index = self.slot(label, &[Kind::GaugeF64], "gauge_f64")?;
        self.put(index, &value.to_le_bytes());
        Ok(())
    }

    /// Sets the boolean `label`.
    pub fn set_bool(&self, label: &str, value: bool) -> Result<(), WriteError> {
        let index = self.slot(label, &[Kind::Bool], "bool")?;
        self.put(index, &[u8::from(value)]);
        Ok(())
    }

    /// Sets the text `label`, cut to its capacity on a character boundary.
    pub fn set_text(&self, label: &str, value: &str) -> Result<(), WriteError> {
        let index = self.slot(label, &[Kind::Text], "text")?;
        let value = truncate_to_char(value, self.slots[index].size);
        self.put(index, value.as_bytes());
        Ok(())
    }

    /// Adds a sample to the average or moving average `label`; publishes the new mean.
    pub fn add_sample(&self, label: &str, sample: f64) -> Result<(), WriteError> {
        let index = self.slot(
            label,
            &[Kind::Average, Kind::MovingAverage, Kind::Timer],
            "average",
        )?;
        let window = match self.slots[index].kind {
            Kind::Average => 0,
            _ => self.slots[index].window.max(1),
        };
        let mean = {
            let mut means = self.means.borrow_mut();
            let m = &mut means[index];
            m.count += 1;
            m.sum += sample;
            if window == 0 {
                m.sum / m.count as f64
            } else {
                m.window.push_back(sample);
                m.window_sum += sample;
                if m.window.len() > window {
                    m.window_sum -= m.window.pop_front().unwrap_or(0.0);
                }
                m.window_sum / m.window.len() as f64
            }
        };
        self.put(index, &mean.to_le_bytes());
        Ok(())
    }

    /// Records an elapsed time in the timer `label`, in seconds.
    pub fn record(&self, label: &str, elapsed: Duration) -> Result<(), WriteError> {
        self.slot(label, &[Kind::Timer], "timer")?;
        self.add_sample(label, elapsed.as_secs_f64())
    }
}

impl Drop for Stats {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}
