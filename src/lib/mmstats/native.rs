//! Reads the native format ([`super::layout`]).
//!
//! The header and metadata never change after the file appears, so they are read with
//! `pread` and checked: every offset and length must lie inside the file, value slots must
//! be aligned and as long as their kind needs. Only then is the file mapped, and the value
//! slots are read with atomic loads (seqlocked slots until a copy is whole), so a writer in
//! another process can never hand out a torn value.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use memmap2::MmapOptions;

use super::histogram::{self, Snapshot};
use super::layout::{self, header, word, Kind};
use super::{seqlock, Field, Format, Owner, ReadError, StatsFile, Summary, Value};

/// One field's metadata record, checked.
struct Record {
    label: String,
    kind: Kind,
    offset: usize,
    len: usize,
    param: u32,
}

/// Files up to this size are read with two `pread` copies instead of a mapping: for the
/// few kilobytes of a typical file, mapping, faulting in and unmapping cost most of a read.
const COPY_MAX: usize = 256 * 1024;

/// Reads a native file of `len` bytes.
pub fn read(file: &File, len: u64) -> Result<StatsFile, ReadError> {
    let len = usize::try_from(len).map_err(|_| ReadError::corrupt(0, "file too large"))?;
    if len < layout::HEADER_LEN {
        return Err(ReadError::corrupt(len, "truncated header"));
    }
    if len <= COPY_MAX {
        if let Some(stats) = read_copied(file, len)? {
            return Ok(stats);
        }
    }
    read_mapped(file, len)
}

/// The file's bytes from `from` (8-aligned) to `len` as 8-aligned words at their own
/// word indexes (the words before `from` and the tail are zero).
fn copy(file: &File, from: usize, len: usize) -> Result<Vec<u64>, ReadError> {
    let mut words = vec![0u64; len.div_ceil(8)];
    // SAFETY: the byte view covers the vector's initialised words from `from` on.
    let bytes = unsafe {
        std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>().add(from), len - from)
    };
    file.read_exact_at(bytes, from as u64)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                ReadError::corrupt(len, "the file shrank while being read")
            }
            _ => ReadError::Io(e),
        })?;
    Ok(words)
}

fn bytes_of(words: &[u64]) -> &[u8] {
    // SAFETY: u64 words viewed as their bytes; the lifetime is the words'.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 8) }
}

/// Reads the file from two copies taken one after the other (the second of the values
/// region only): a value slot is whole when
/// it is the same in both and its sequence word (for seqlocked kinds) is even, which a
/// writer's update in between or during either copy would change. `None` when a slot
/// differs (a writer is busy): the caller then reads through a mapping, where the seqlock
/// readers wait for the writer.
fn read_copied(file: &File, len: usize) -> Result<Option<StatsFile>, ReadError> {
    let mut first = copy(file, 0, len)?;
    let bytes = &bytes_of(&first)[..len];
    let mut head = [0u8; layout::HEADER_LEN];
    head.copy_from_slice(&bytes[..layout::HEADER_LEN]);
    let head = HeaderView(&head);
    let geometry = head.check(len)?;
    let meta = &bytes[geometry.meta_off..geometry.meta_off + geometry.meta_len];
    let records = parse_records(meta, &geometry)?;
    // Header and metadata never change once the file has its name: only the values again.
    let second = copy(file, geometry.values_off, len)?;
    for record in &records {
        let a = &first[record.offset / 8..(record.offset + record.len) / 8];
        let b = &second[record.offset / 8..(record.offset + record.len) / 8];
        let seqlocked = !matches!(
            record.kind,
            Kind::Counter | Kind::Gauge | Kind::GaugeF64 | Kind::Bool
        );
        if a != b || (seqlocked && a[word::SEQ] & 1 == 1) {
            return Ok(None);
        }
    }
    let state = u32::from_ne_bytes(head.bytes(header::STATE));
    // The private, settled copy, viewed as atomics only to share the mapped path's decoder.
    // SAFETY: AtomicU64 has u64's size and alignment, and nothing else touches `first`
    // while this view lives.
    let atomics: &[AtomicU64] =
        unsafe { std::slice::from_raw_parts(first.as_mut_ptr().cast::<AtomicU64>(), first.len()) };
    Ok(Some(decode(&head, state, records, atomics)))
}

/// Reads the file through a read-only mapping, each seqlocked slot until a copy is whole.
fn read_mapped(file: &File, len: usize) -> Result<StatsFile, ReadError> {
    let mut head = [0u8; layout::HEADER_LEN];
    file.read_exact_at(&mut head, 0)?;
    let head = HeaderView(&head);
    let geometry = head.check(len)?;
    let mut meta = vec![0u8; geometry.meta_len];
    file.read_exact_at(&mut meta, geometry.meta_off as u64)?;
    let records = parse_records(&meta, &geometry)?;

    let map = MmapOptions::new().len(len).map_raw_read_only(file)?;
    let base = map.as_ptr();
    // SAFETY: the state word is 4-aligned (offset 88 of a page-aligned mapping) and inside
    // the header, which the length check above guarantees is mapped.
    let state = unsafe { &*base.add(header::STATE).cast::<AtomicU32>() }.load(Ordering::Relaxed);
    // Only Relaxed loads are promised on read-only memory: order later loads with a fence.
    fence(Ordering::Acquire);
    // SAFETY: the mapping is page-aligned and `len` bytes long, so its first `len / 8`
    // words are 8-aligned and mapped until `map` drops at the end of this function. Only
    // Relaxed loads are made on this read-only mapping (the standard library promises no
    // more there), each ordered by an Acquire fence.
    let words = unsafe { std::slice::from_raw_parts(base.cast::<AtomicU64>(), len / 8) };
    Ok(decode(&head, state, records, words))
}

/// Decodes every field from `words`, the file as 8-byte words (parse_records checked that
/// each slot lies inside the file and is 8-aligned).
fn decode(head: &HeaderView, state: u32, records: Vec<Record>, words: &[AtomicU64]) -> StatsFile {
    let mut scratch = Vec::new();
    let fields = records
        .into_iter()
        .map(|record| {
            let slot = &words[record.offset / 8..(record.offset + record.len) / 8];
            let (value, consistent) = read_value(&record, slot, &mut scratch);
            Field {
                label: record.label,
                type_code: record.kind.name().to_owned(),
                value,
                consistent,
            }
        })
        .collect();
    StatsFile {
        format: Format::Native,
        owner: owner(head, state),
        fields,
    }
}

/// The writer facts of a checked header whose state word reads `state`.
fn owner(head: &HeaderView, state: u32) -> Owner {
    Owner {
        pid: Some(head.u32(header::PID)),
        tid: Some(head.u32(header::TID)).filter(|&t| t != 0),
        created: Some(head.u64(header::CREATED_NS) as f64 / 1e9),
        start_ticks: Some(head.u64(header::START_TICKS)).filter(|&t| t != 0),
        boot_id: Some(head.boot_id()).filter(|id| id != &[0; 16]),
        closed: state == layout::STATE_CLOSED,
    }
}

/// Offsets and lengths of the regions, checked against the file.
struct Geometry {
    field_count: usize,
    meta_off: usize,
    meta_len: usize,
    values_off: usize,
    values_end: usize,
}

struct HeaderView<'a>(&'a [u8; layout::HEADER_LEN]);

impl HeaderView<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.0[at..at + N]);
        out
    }
    fn u16(&self, at: usize) -> u16 {
        u16::from_ne_bytes(self.bytes(at))
    }
    fn u32(&self, at: usize) -> u32 {
        u32::from_ne_bytes(self.bytes(at))
    }
    fn u64(&self, at: usize) -> u64 {
        u64::from_ne_bytes(self.bytes(at))
    }
    fn usize(&self, at: usize) -> usize {
        usize::try_from(self.u64(at)).unwrap_or(usize::MAX)
    }
    fn boot_id(&self) -> [u8; 16] {
        self.bytes(header::BOOT_ID)
    }

    fn check(&self, file_len: usize) -> Result<Geometry, ReadError> {
        if &self.0[..8] != layout::MAGIC {
            return Err(ReadError::corrupt(0, "bad magic, not a native stats file"));
        }
        if self.0[header::BYTE_ORDER] != layout::HOST_BYTE_ORDER {
            return Err(ReadError::corrupt(
                header::BYTE_ORDER,
                "written on a host of the other byte order",
            ));
        }
        let major = self.u16(header::MAJOR);
        if major != layout::MAJOR {
            return Err(ReadError::corrupt(
                header::MAJOR,
                format!("format version {major}.x is not supported (this reader knows 1.x)"),
            ));
        }
        if self.u32(header::HEADER_LEN) as usize != layout::HEADER_LEN {
            return Err(ReadError::corrupt(header::HEADER_LEN, "bad header length"));
        }
        let declared = self.usize(header::FILE_LEN);
        if declared != file_len {
            return Err(ReadError::corrupt(
                header::FILE_LEN,
                format!("header says {declared} bytes but the file has {file_len}"),
            ));
        }
        let region = |off_at: usize, len_at: usize, what: &str| {
            let (off, len) = (self.usize(off_at), self.usize(len_at));
            match off.checked_add(len) {
                Some(end) if off >= layout::HEADER_LEN && end <= file_len => Ok((off, end)),
                _ => Err(ReadError::corrupt(
                    off_at,
                    format!("{what} region {off}+{len} lies outside the file"),
                )),
            }
        };
        let (meta_off, meta_end) = region(header::META_OFF, header::META_LEN, "metadata")?;
        let (values_off, values_end) = region(header::VALUES_OFF, header::VALUES_LEN, "values")?;
        if values_off % layout::LINE != 0 || values_off < meta_end {
            return Err(ReadError::corrupt(
                header::VALUES_OFF,
                "misplaced values region",
            ));
        }
        Ok(Geometry {
            field_count: self.u32(header::FIELD_COUNT) as usize,
            meta_off,
            meta_len: meta_end - meta_off,
            values_off,
            values_end,
        })
    }
}

fn parse_records(meta: &[u8], geometry: &Geometry) -> Result<Vec<Record>, ReadError> {
    let mut records = Vec::with_capacity(geometry.field_count.min(meta.len() / 24));
    let mut at = 0;
    for index in 0..geometry.field_count {
        let offset = geometry.meta_off + at;
        let bad = |cause: String| ReadError::corrupt(offset, format!("field {index}: {cause}"));
        let fixed = meta
            .get(at..at + layout::RECORD_FIXED_LEN)
            .ok_or_else(|| bad("record runs past the metadata region".into()))?;
        let u32_at =
            |i: usize| u32::from_ne_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]);
        let record_len = u32_at(0) as usize;
        let kind =
            Kind::from_byte(fixed[4]).ok_or_else(|| bad(format!("unknown kind {}", fixed[4])))?;
        let label_len = usize::from(u16::from_ne_bytes([fixed[6], fixed[7]]));
        let mut value_off = [0u8; 8];
        value_off.copy_from_slice(&fixed[8..16]);
        let value_off = usize::try_from(u64::from_ne_bytes(value_off)).unwrap_or(usize::MAX);
        let value_len = u32_at(16) as usize;
        let param = u32_at(20);
        if record_len != layout::record_len(label_len) || at + record_len > meta.len() {
            return Err(bad(format!("bad record length {record_len}")));
        }
        let label_at = at + layout::RECORD_FIXED_LEN;
        let label = String::from_utf8_lossy(&meta[label_at..label_at + label_len]).into_owned();
        let expected = kind.slot_len(param);
        let inside = value_off >= geometry.values_off
            && value_off
                .checked_add(value_len)
                .is_some_and(|end| end <= geometry.values_end);
        if expected != Some(value_len) || !inside || value_off % kind.align() != 0 {
            return Err(bad(format!(
                "{label:?}: bad value slot {value_off}+{value_len} for a {}",
                kind.name()
            )));
        }
        records.push(Record {
            label,
            kind,
            offset: value_off,
            len: value_len,
            param,
        });
        at += record_len;
    }
    Ok(records)
}

fn read_value(record: &Record, words: &[AtomicU64], scratch: &mut Vec<u64>) -> (Value, bool) {
    let scalar = || {
        let value = words[0].load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        value
    };
    match record.kind {
        Kind::Counter => (Value::U64(scalar()), true),
        Kind::Gauge => (Value::I64(scalar() as i64), true),
        Kind::GaugeF64 => (Value::F64(f64::from_bits(scalar())), true),
        Kind::Bool => (Value::Bool(scalar() != 0), true),
        Kind::Text => {
            // Only the words holding the current text.
            let used = |slot: &[AtomicU64]| {
                let len = slot[word::TEXT_LEN].load(Ordering::Relaxed) as usize;
                word::TEXT_BYTES + len.min(record.param as usize).div_ceil(8)
            };
            let consistent = seqlock::read(words, scratch, used);
            let len = (scratch[word::TEXT_LEN] as usize).min(record.param as usize);
            let bytes: Vec<u8> = scratch[word::TEXT_BYTES..]
                .iter()
                .flat_map(|w| w.to_ne_bytes())
                .take(len)
                .collect();
            (
                Value::Text(String::from_utf8_lossy(&bytes).into_owned()),
                consistent,
            )
        }
        Kind::Average | Kind::MovingAverage | Kind::Timer => {
            // The ring is the writer's business; readers need the published mean.
            let consistent = seqlock::read(words, scratch, |_| word::RING);
            let float = |i: usize| f64::from_bits(scratch[i]);
            let summary = Summary {
                count: scratch[word::COUNT],
                sum: float(word::SUM),
                last: float(word::LAST),
                mean: float(word::MEAN),
                window: scratch[word::WINDOW],
            };
            (Value::Summary(summary), consistent)
        }
        Kind::Histogram => {
            // Buckets above the largest value are empty: copying only up to its bucket
            // keeps the copy short, so it fits between writers' updates.
            let used = |slot: &[AtomicU64]| {
                if slot[word::COUNT].load(Ordering::Relaxed) == 0 {
                    return word::BUCKETS;
                }
                let max = slot[word::MAX].load(Ordering::Relaxed);
                word::BUCKETS + histogram::bucket_of(max, record.param) + 1
            };
            let consistent = seqlock::read(words, scratch, used);
            let snapshot = Snapshot {
                count: scratch[word::COUNT],
                sum: scratch[word::SUM],
                min: scratch[word::MIN],
                max: scratch[word::MAX],
                sub_bits: record.param,
                buckets: scratch[word::BUCKETS..].to_vec(),
            };
            (Value::Histogram(snapshot), consistent)
        }
    }
}
