//! Values written as Python 2 writes them: the esmond-client tools print floats with
//! `str()` (human) or `repr()` (CSV, JSON) and dicts and lists as their `repr`, and dump
//! JSON with `", "` and `": "` separators and non-ASCII escaped. measpipe's readers write
//! the same text, so scripts that parsed the originals' output keep working.

use std::io::{self, Write};

use serde_json::Value;

/// `repr(f)` of Python 2.7 (the shortest text that reads back, with `.0` or an exponent).
pub fn write_repr(out: &mut Vec<u8>, value: f64) {
    if let Some(special) = special(value) {
        out.extend_from_slice(special.as_bytes());
        return;
    }
    // Rust's `{:e}` is the shortest round-trip digits: the same digits as Python's repr.
    let scientific = format!("{value:e}");
    layout(out, &scientific, 16);
}

/// `str(f)` of Python 2.7: `%.12g`, with `.0` added to a whole number.
pub fn write_str(out: &mut Vec<u8>, value: f64) {
    if let Some(special) = special(value) {
        out.extend_from_slice(special.as_bytes());
        return;
    }
    let scientific = format!("{value:.11e}");
    layout(out, &scientific, 12);
}

fn special(value: f64) -> Option<&'static str> {
    if value.is_nan() {
        Some("nan")
    } else if value.is_infinite() {
        Some(if value > 0.0 { "inf" } else { "-inf" })
    } else {
        None
    }
}

/// Lays out Rust scientific text (`-d.ddde-x`) as Python does: positional when
/// `-4 <= exponent < limit`, else `d.ddde+XX`; trailing zeros dropped, `.0` kept on whole
/// numbers.
fn layout(out: &mut Vec<u8>, scientific: &str, limit: i32) {
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let end = digits.iter().rposition(|&d| d != b'0').map_or(1, |p| p + 1);
    let digits = &digits[..end];
    if negative {
        out.push(b'-');
    }
    if (-4..limit).contains(&exponent) {
        if exponent < 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-exponent - 1) as usize));
            out.extend_from_slice(digits);
        } else {
            let whole = exponent as usize + 1;
            if digits.len() <= whole {
                out.extend_from_slice(digits);
                out.extend(std::iter::repeat_n(b'0', whole - digits.len()));
                out.extend_from_slice(b".0");
            } else {
                out.extend_from_slice(&digits[..whole]);
                out.push(b'.');
                out.extend_from_slice(&digits[whole..]);
            }
        }
    } else {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exponent < 0 { b'-' } else { b'+' });
        let magnitude = exponent.unsigned_abs();
        if magnitude < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(itoa::Buffer::new().format(magnitude).as_bytes());
    }
}

/// A JSON number's text as Python prints it: integers as they are, floats by `repr`
/// (`str` when `human`).
pub fn write_number(out: &mut Vec<u8>, text: &str, human: bool) {
    let is_float = text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'));
    if !is_float {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    match text.parse::<f64>() {
        Ok(f) if human => write_str(out, f),
        Ok(f) => write_repr(out, f),
        Err(_) => out.extend_from_slice(text.as_bytes()),
    }
}

/// `repr()` of a decoded JSON value (`{u'34.5': 85}`, `[1.0, None]`, `True`), in the
/// order the archive sent it (Python 2's own dict order is its hash order).
pub fn write_value_repr(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"None"),
        Value::Bool(true) => out.extend_from_slice(b"True"),
        Value::Bool(false) => out.extend_from_slice(b"False"),
        Value::Number(n) => write_number(out, &n.to_string(), false),
        Value::String(s) => write_unicode_repr(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_value_repr(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_unicode_repr(out, key);
                out.extend_from_slice(b": ");
                write_value_repr(out, item);
            }
            out.push(b'}');
        }
    }
}

/// `repr()` of a Python 2 unicode string: `u'…'` (double quotes when it holds a `'` and
/// no `"`), with `\\`, `\n`, `\r`, `\t`, `\xNN` and `\uNNNN` escapes.
fn write_unicode_repr(out: &mut Vec<u8>, text: &str) {
    let quote = if text.contains('\'') && !text.contains('"') {
        b'"'
    } else {
        b'\''
    };
    out.push(b'u');
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if c as u32 == quote as u32 => {
                out.push(b'\\');
                out.push(quote);
            }
            ' '..='~' => out.push(c as u8),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push(quote);
}

/// A serde_json formatter that writes as Python's `json.dumps` does by default:
/// `", "` and `": "` separators, floats by `repr`, non-ASCII as `\uXXXX`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Dumps;

impl serde_json::ser::Formatter for Dumps {
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        separate(writer, first)
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        separate(writer, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_f64<W: ?Sized + Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        let mut text = Vec::with_capacity(24);
        match special(value) {
            // json.dumps writes these (allow_nan=True).
            Some("nan") => text.extend_from_slice(b"NaN"),
            Some("inf") => text.extend_from_slice(b"Infinity"),
            Some(_) => text.extend_from_slice(b"-Infinity"),
            None => write_repr(&mut text, value),
        }
        writer.write_all(&text)
    }

    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if fragment.is_ascii() {
            return writer.write_all(fragment.as_bytes());
        }
        let mut units = [0u16; 2];
        for c in fragment.chars() {
            if c.is_ascii() {
                writer.write_all(&[c as u8])?;
            } else {
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// `", "` before every item but the first.
fn separate<W: ?Sized + Write>(writer: &mut W, first: bool) -> io::Result<()> {
    if first {
        Ok(())
    } else {
        writer.write_all(b", ")
    }
}

/// `json.dumps(value)` of a decoded value, appended to `out`.
pub fn write_dumps(out: &mut Vec<u8>, value: &Value) {
    use serde::Serialize;
    let mut serializer = serde_json::Serializer::with_formatter(&mut *out, Dumps);
    // Writing to a Vec cannot fail.
    drop(value.serialize(&mut serializer));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr(f: f64) -> String {
        let mut out = Vec::new();
        write_repr(&mut out, f);
        String::from_utf8(out).unwrap()
    }

    fn str_(f: f64) -> String {
        let mut out = Vec::new();
        write_str(&mut out, f);
        String::from_utf8(out).unwrap()
    }

    /// Figures checked against Python 2.7.18's `repr` and `str`.
    #[test]
    fn floats_are_written_as_python_2_writes_them() {
        for (f, r, s) in [
            (7016320000.0, "7016320000.0", "7016320000.0"),
            (
                0.04666666666666667,
                "0.04666666666666667",
                "0.0466666666667",
            ),
            (0.0, "0.0", "0.0"),
            (-1.5, "-1.5", "-1.5"),
            (1e16, "1e+16", "1e+16"),
            (1e15, "1000000000000000.0", "1e+15"),
            (123456789012.0, "123456789012.0", "123456789012.0"),
            (1234567890123.0, "1234567890123.0", "1.23456789012e+12"),
            (12345678901.0, "12345678901.0", "12345678901.0"),
            (0.0001, "0.0001", "0.0001"),
            (0.00001, "1e-05", "1e-05"),
            (1.5e-10, "1.5e-10", "1.5e-10"),
            (34.41, "34.41", "34.41"),
            (1e300, "1e+300", "1e+300"),
            (f64::INFINITY, "inf", "inf"),
        ] {
            assert_eq!(repr(f), r, "repr({f})");
            assert_eq!(str_(f), s, "str({f})");
        }
    }

    #[test]
    fn values_are_written_as_python_2_reprs_and_dumps() {
        let value: Value =
            serde_json::from_str(r#"{"34.5": 85, "it's": [1.0, null, true, "é\n"], "q": "a\"b"}"#)
                .unwrap();
        let mut out = Vec::new();
        write_value_repr(&mut out, &value);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{u'34.5': 85, u"it's": [1.0, None, True, u'\xe9\n'], u'q': u'a"b'}"#
        );
        let mut out = Vec::new();
        write_dumps(&mut out, &value);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"34.5": 85, "it's": [1.0, null, true, "\u00e9\n"], "q": "a\"b"}"#
        );
    }
}
