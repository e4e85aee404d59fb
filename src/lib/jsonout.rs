//! Writing JSON straight into a byte buffer, for the hot paths that produce a fixed record
//! shape millions of times (building a `serde_json::Value` first costs an allocation per
//! key). Strings are escaped by serde_json only when they need it.

use serde_json::Number;

/// A JSON string; the common case (nothing to escape) is a plain copy.
pub fn string(out: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

/// An integer.
pub fn integer(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A float, shortest round-trip form (serde_json's formatting); non-finite values are
/// `null`, as serde_json writes them.
pub fn float(out: &mut Vec<u8>, value: f64) {
    let _ = serde_json::to_writer(&mut *out, &value);
}

/// A number exactly as it was parsed (integers stay integers).
pub fn number(out: &mut Vec<u8>, value: &Number) {
    let _ = serde_json::to_writer(&mut *out, value);
}

/// A number, or `null` when absent.
pub fn optional_number(out: &mut Vec<u8>, value: Option<&Number>) {
    match value {
        Some(n) => number(out, n),
        None => out.extend_from_slice(b"null"),
    }
}

/// `"name":`, preceded by a comma unless it is the first member (`first` is then cleared).
pub fn key(out: &mut Vec<u8>, first: &mut bool, name: &str) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    string(out, name);
    out.push(b':');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_only_when_needed() {
        let mut out = Vec::new();
        string(&mut out, "plain");
        out.push(b' ');
        string(&mut out, "a\"b\\c\u{1}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""plain" "a\"b\\c\u0001""#
        );
    }

    #[test]
    fn members_get_their_commas() {
        let mut out = b"{".to_vec();
        let mut first = true;
        key(&mut out, &mut first, "a");
        integer(&mut out, 1);
        key(&mut out, &mut first, "b");
        optional_number(&mut out, None);
        out.push(b'}');
        assert_eq!(out, br#"{"a":1,"b":null}"#);
    }
}
