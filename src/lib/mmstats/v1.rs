//! Format 1: what Python mmstats 0.6–0.8 writes (spec mmstats.md §1).
//!
//! After the version byte `0x01`, field records are packed back to back with no padding:
//! `u16 label_len, label, u16 type_len, type signature, u8 write_buffer, value bytes`. A
//! `write_buffer` of 255 means one unbuffered value follows; 0 or 1 means two buffers follow
//! and the value is `buffers[write_buffer ^ 1]`. The list ends at a zero label length or at
//! end of file (a file whose fields fill it exactly has no terminator). Everything is
//! native-endian, which in practice means little-endian.
//!
//! Python writers update values in place with no fences, so a reader can catch a value half
//! written. [`read`] therefore takes the layout from one snapshot and keeps re-reading the
//! file until each field's bytes (write-buffer byte and buffers) are the same in two
//! consecutive snapshots.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::{Field, Owner, ReadError, StatsFile, Value};

/// The first byte of a format 1 file.
pub const VERSION: u8 = 0x01;

/// `write_buffer` value of an unbuffered field.
const UNBUFFERED: u8 = 255;

/// Snapshots taken before a still-changing field is reported as inconsistent.
const MAX_READS: usize = 100;

/// Where one field sits in the file, as parsed from a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Offset of the label-size `u16`.
    pub offset: usize,
    /// The label (invalid UTF-8 replaced).
    pub label: String,
    /// The struct type signature, e.g. `Q` or `255s`.
    pub signature: String,
    /// The decoded signature.
    code: Code,
    /// Offset of the write-buffer byte.
    pub write_buffer_offset: usize,
    /// True for double-buffered fields.
    pub buffered: bool,
    /// Offset just past the field.
    pub end: usize,
}

impl Layout {
    /// Decodes this field's value from a snapshot of the file.
    pub fn value(&self, bytes: &[u8]) -> Value {
        let start = self.write_buffer_offset + 1;
        let size = self.code.size;
        let at = if self.buffered {
            // `check` keeps the byte 0 or 1; the mask keeps even a bad byte in bounds.
            let read_buffer = usize::from((bytes[self.write_buffer_offset] & 1) ^ 1);
            start + read_buffer * size
        } else {
            start
        };
        self.code.decode(&bytes[at..at + size])
    }

    /// Refuses a later snapshot whose write-buffer byte no longer fits this layout (a
    /// buffered field's byte must stay 0 or 1, an unbuffered one's 255).
    fn check(&self, previous: &[u8], current: &[u8]) -> Result<(), ReadError> {
        let byte = current[self.write_buffer_offset];
        let fits = match self.buffered {
            true => byte <= 1,
            false => byte == UNBUFFERED,
        };
        if fits {
            return Ok(());
        }
        Err(ReadError::corrupt(
            self.write_buffer_offset,
            format!(
                "the write buffer byte of field {:?} changed from {} to {byte} while being read",
                self.label, previous[self.write_buffer_offset]
            ),
        ))
    }

    fn bytes<'a>(&self, snapshot: &'a [u8]) -> &'a [u8] {
        &snapshot[self.write_buffer_offset..self.end]
    }
}

/// Reads a format 1 file, re-reading until every field is stable.
pub fn read(file: &File) -> Result<StatsFile, ReadError> {
    read_snapshots(|| snapshot(file))
}

/// [`read`] over successive snapshots of a file's bytes, as `next` takes them: the layout
/// comes from the first, and every later one must keep each field's write-buffer byte a
/// valid one for the field (a writer never changes it from buffered to unbuffered, so a
/// change means the file was rewritten or corrupted under the reader).
pub fn read_snapshots(
    mut next: impl FnMut() -> Result<Vec<u8>, ReadError>,
) -> Result<StatsFile, ReadError> {
    let first = next()?;
    let layouts = parse(&first)?;
    let mut settled: Vec<Option<Value>> = vec![None; layouts.len()];
    let mut previous = first;
    for _ in 1..MAX_READS {
        let current = next()?;
        if current.len() != previous.len() {
            return Err(ReadError::corrupt(
                current.len(),
                "the file changed size while being read",
            ));
        }
        let mut open = 0;
        for (layout, slot) in layouts.iter().zip(settled.iter_mut()) {
            layout.check(&previous, &current)?;
            if slot.is_none() {
                if layout.bytes(&previous) == layout.bytes(&current) {
                    *slot = Some(layout.value(&current));
                } else {
                    open += 1;
                }
            }
        }
        previous = current;
        if open == 0 {
            break;
        }
    }
    let fields: Vec<Field> = layouts
        .iter()
        .zip(settled)
        .map(|(layout, value)| Field {
            label: layout.label.clone(),
            type_code: layout.signature.clone(),
            consistent: value.is_some(),
            value: value.unwrap_or_else(|| layout.value(&previous)),
        })
        .collect();
    Ok(StatsFile {
        format: super::Format::V1,
        owner: owner(&fields),
        fields,
    })
}

/// The writer facts format 1 carries: the last `*sys.pid` and `*sys.created` fields.
fn owner(fields: &[Field]) -> Owner {
    let last = |suffix: &str| fields.iter().rev().find(|f| f.label.ends_with(suffix));
    let pid = last("sys.pid").and_then(|f| match f.value {
        Value::U64(v) => u32::try_from(v).ok(),
        Value::I64(v) => u32::try_from(v).ok(),
        _ => None,
    });
    let created = last("sys.created").and_then(|f| f.value.number().map(|n| n.as_f64()));
    Owner {
        pid,
        created,
        ..Owner::default()
    }
}

fn snapshot(file: &File) -> Result<Vec<u8>, ReadError> {
    let len = file.metadata()?.len();
    let len = usize::try_from(len).map_err(|_| ReadError::corrupt(0, "file too large"))?;
    let mut bytes = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let got = file.read_at(&mut bytes[done..], done as u64)?;
        if got == 0 {
            bytes.truncate(done);
            break;
        }
        done += got;
    }
    Ok(bytes)
}

/// Parses the field layout of a format 1 snapshot. Every length is checked against the
/// end of the data: a truncated or corrupt file is an error naming the offset.
pub fn parse(bytes: &[u8]) -> Result<Vec<Layout>, ReadError> {
    match bytes.first() {
        Some(&VERSION) => {}
        Some(other) => {
            return Err(ReadError::corrupt(
                0,
                format!("not a format 1 file (first byte 0x{other:02x})"),
            ))
        }
        None => return Err(ReadError::corrupt(0, "empty file")),
    }
    let mut fields = Vec::new();
    let mut at = 1;
    while bytes.len() - at >= 2 {
        let offset = at;
        let label_len = usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
        if label_len == 0 {
            break;
        }
        at += 2;
        let label = take(bytes, &mut at, label_len, offset, "label")?;
        let type_len = take(bytes, &mut at, 2, offset, "type size")?;
        let type_len = usize::from(u16::from_le_bytes([type_len[0], type_len[1]]));
        let signature = take(bytes, &mut at, type_len, offset, "type signature")?;
        let signature = String::from_utf8_lossy(signature).into_owned();
        let code = Code::parse(&signature)
            .ok_or_else(|| ReadError::corrupt(at - type_len, bad_signature(&signature)))?;
        let write_buffer_offset = at;
        let write_buffer = take(bytes, &mut at, 1, offset, "write buffer byte")?[0];
        let buffered = match write_buffer {
            UNBUFFERED => false,
            0 | 1 => true,
            other => {
                return Err(ReadError::corrupt(
                    write_buffer_offset,
                    format!("write buffer byte is {other}, expected 0, 1 or 255"),
                ))
            }
        };
        let value_len = code.size * if buffered { 2 } else { 1 };
        take(bytes, &mut at, value_len, offset, "value")?;
        fields.push(Layout {
            offset,
            label: String::from_utf8_lossy(label).into_owned(),
            signature,
            code,
            write_buffer_offset,
            buffered,
            end: at,
        });
    }
    Ok(fields)
}

fn bad_signature(signature: &str) -> String {
    format!("unsupported type signature {signature:?}")
}

/// Takes `len` bytes at `*at`, or fails naming the field that is cut short.
fn take<'a>(
    bytes: &'a [u8],
    at: &mut usize,
    len: usize,
    field_offset: usize,
    what: &str,
) -> Result<&'a [u8], ReadError> {
    let end = at.checked_add(len).filter(|&end| end <= bytes.len());
    match end {
        Some(end) => {
            let taken = &bytes[*at..end];
            *at = end;
            Ok(taken)
        }
        None => Err(ReadError::corrupt(
            *at,
            format!(
                "the {what} of the field at offset {field_offset} runs past the end of the file ({} bytes)",
                bytes.len()
            ),
        )),
    }
}

/// A Python `struct` code for one item, with its native size on LP64.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Code {
    letter: u8,
    size: usize,
}

impl Code {
    /// Parses a one-item native struct signature: an optional `@`, then a letter, or a
    /// count followed by `s` or `p`.
    fn parse(signature: &str) -> Option<Code> {
        let signature = signature.strip_prefix('@').unwrap_or(signature);
        let digits = signature.bytes().take_while(u8::is_ascii_digit).count();
        let (count, rest) = signature.split_at(digits);
        let &[letter] = rest.as_bytes() else {
            return None;
        };
        if !count.is_empty() {
            let count: usize = count.parse().ok()?;
            return matches!(letter, b's' | b'p').then_some(Code {
                letter,
                size: count,
            });
        }
        let size = match letter {
            b'c' | b'b' | b'B' | b'x' | b'?' | b's' | b'p' => 1,
            b'h' | b'H' | b'e' => 2,
            b'i' | b'I' | b'f' => 4,
            b'l' | b'L' | b'q' | b'Q' | b'n' | b'N' | b'd' | b'P' => 8,
            _ => return None,
        };
        Some(Code { letter, size })
    }

    /// Decodes exactly `self.size` bytes.
    fn decode(self, b: &[u8]) -> Value {
        fn array<const N: usize>(b: &[u8]) -> [u8; N] {
            let mut out = [0u8; N];
            out.copy_from_slice(&b[..N]);
            out
        }
        match self.letter {
            b'b' => Value::I64(i64::from(b[0] as i8)),
            b'B' => Value::U64(u64::from(b[0])),
            b'?' => Value::Bool(b[0] != 0),
            b'c' => Value::Text(text(&b[..1])),
            b'x' => Value::Null,
            b'h' => Value::I64(i64::from(i16::from_le_bytes(array(b)))),
            b'H' => Value::U64(u64::from(u16::from_le_bytes(array(b)))),
            b'e' => Value::F64(f16_to_f64(u16::from_le_bytes(array(b)))),
            b'i' => Value::I64(i64::from(i32::from_le_bytes(array(b)))),
            b'I' => Value::U64(u64::from(u32::from_le_bytes(array(b)))),
            b'f' => Value::F64(f64::from(f32::from_le_bytes(array(b)))),
            b'l' | b'q' | b'n' => Value::I64(i64::from_le_bytes(array(b))),
            b'L' | b'Q' | b'N' | b'P' => Value::U64(u64::from_le_bytes(array(b))),
            b'd' => Value::F64(f64::from_le_bytes(array(b))),
            b'p' => {
                let len =
                    usize::from(b.first().copied().unwrap_or(0)).min(b.len().saturating_sub(1));
                Value::Text(text(&b[1..1 + len]))
            }
            // 's': cut at the first NUL, like the Python reader.
            _ => Value::Text(text(b)),
        }
    }
}

/// Text as the Python reader decodes it: cut at the first NUL, invalid UTF-8 dropped
/// (`'ignore'`), not replaced.
pub(crate) fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let mut out = String::new();
    for chunk in bytes[..end].utf8_chunks() {
        out.push_str(chunk.valid());
    }
    out
}

/// IEEE 754 half precision (struct code `e`) to double.
fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f64::from(bits & 0x3ff);
    sign * match exponent {
        0 => fraction * 2f64.powi(-24),
        31 if fraction == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1.0 + fraction / 1024.0) * 2f64.powi(exponent - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn field(label: &str, sig: &str, wb: u8, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(label.len() as u16).to_le_bytes());
        out.extend_from_slice(label.as_bytes());
        out.extend_from_slice(&(sig.len() as u16).to_le_bytes());
        out.extend_from_slice(sig.as_bytes());
        out.push(wb);
        out.extend_from_slice(value);
        out
    }

    fn values(bytes: &[u8]) -> Vec<(String, Value)> {
        parse(bytes)
            .unwrap()
            .iter()
            .map(|l| (l.label.clone(), l.value(bytes)))
            .collect()
    }

    #[test]
    fn double_buffered_value_is_the_buffer_not_being_written() {
        let mut file = vec![VERSION];
        let mut bufs = 42u64.to_le_bytes().to_vec();
        bufs.extend_from_slice(&2u64.to_le_bytes());
        file.extend(field("n", "Q", 1, &bufs));
        file.extend(field("m", "Q", 0, &bufs));
        assert_eq!(
            values(&file),
            vec![("n".into(), Value::U64(42)), ("m".into(), Value::U64(2))]
        );
    }

    #[test]
    fn fields_ending_exactly_at_eof_need_no_terminator() {
        let mut file = vec![VERSION];
        file.extend(field("s", "4s", 255, b"edge"));
        assert_eq!(
            values(&file),
            vec![("s".into(), Value::Text("edge".into()))]
        );
    }

    #[test]
    fn one_stray_byte_at_eof_ends_the_list() {
        let mut file = vec![VERSION];
        file.extend(field("b", "?", 255, &[2]));
        file.push(7);
        assert_eq!(values(&file), vec![("b".into(), Value::Bool(true))]);
    }

    #[test]
    fn strings_stop_at_nul_and_drop_invalid_utf8() {
        assert_eq!(text(b"bye\0o world"), "bye");
        assert_eq!(text(b"a\xffb"), "ab");
    }

    #[test]
    fn truncated_value_names_the_offset() {
        let mut file = vec![VERSION];
        file.extend(field("x", "Q", 255, &[1, 2, 3]));
        let err = parse(&file).unwrap_err().to_string();
        assert!(
            err.starts_with("offset 8: the value of the field at offset 1"),
            "{err}"
        );
    }

    #[test]
    fn bad_write_buffer_and_signature_are_errors() {
        let mut file = vec![VERSION];
        file.extend(field("x", "Q", 7, &[0; 16]));
        assert!(parse(&file)
            .unwrap_err()
            .to_string()
            .contains("write buffer byte is 7"));
        let mut file = vec![VERSION];
        file.extend(field("x", "2Q", 255, &[0; 16]));
        assert!(parse(&file).unwrap_err().to_string().contains("\"2Q\""));
    }

    #[test]
    fn every_native_struct_code_has_its_lp64_size() {
        for (sig, size) in [
            ("c", 1),
            ("b", 1),
            ("B", 1),
            ("x", 1),
            ("?", 1),
            ("h", 2),
            ("H", 2),
            ("e", 2),
            ("i", 4),
            ("I", 4),
            ("f", 4),
            ("l", 8),
            ("L", 8),
            ("q", 8),
            ("Q", 8),
            ("n", 8),
            ("N", 8),
            ("d", 8),
            ("P", 8),
            ("255s", 255),
            ("10p", 10),
            ("@Q", 8),
        ] {
            assert_eq!(Code::parse(sig).map(|c| c.size), Some(size), "{sig}");
        }
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut file = vec![VERSION];
            file.extend(tail);
            if let Ok(layouts) = parse(&file) {
                for layout in layouts {
                    let _ = layout.value(&file);
                }
            }
        }

        #[test]
        fn every_truncation_of_a_valid_file_is_an_error_or_a_prefix(cut in 0usize..120) {
            let mut file = vec![VERSION];
            let mut bufs = 3u64.to_le_bytes().to_vec();
            bufs.extend_from_slice(&2u64.to_le_bytes());
            file.extend(field("hits", "Q", 1, &bufs));
            file.extend(field("name", "10s", 255, b"abcdefghij"));
            file.extend(field("up", "?", 255, &[1]));
            let cut = cut.min(file.len());
            match parse(&file[..cut]) {
                Ok(layouts) => prop_assert!(layouts.iter().all(|l| l.end <= cut)),
                Err(ReadError::Corrupt { offset, .. }) => prop_assert!(offset as usize <= cut),
                Err(other) => prop_assert!(false, "{other}"),
            }
        }
    }
}
