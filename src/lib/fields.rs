//! Finding top-level fields of an NDJSON line without parsing all of it, for filters that
//! pass every line on unchanged and only look at a few keys (mmstats-publish's
//! `--count-by event_type`): one pass over the bytes that skips strings and nested values,
//! stopping once every wanted key is found.
//!
//! The scan is exact for valid JSON objects (a key inside a nested object or a string is
//! never taken for a top-level one); for anything else it returns `None` for the keys it
//! could not find, never panics, and never reads past the line.

/// A top-level value as found: a string (its contents, escapes undone only when there
/// are any), a number (its text), `true`/`false`, `null`, or a nested value (unused).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    /// A string value.
    Text(std::borrow::Cow<'a, str>),
    /// A number, as written.
    Number(&'a str),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// An object or array.
    Nested,
}

impl Scalar<'_> {
    /// The value as a number: numbers, and strings that hold one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Number(text) => text.parse().ok(),
            Scalar::Text(text) => text.trim().parse().ok(),
            Scalar::Bool(b) => Some(f64::from(u8::from(*b))),
            Scalar::Null | Scalar::Nested => None,
        }
    }
}

/// Finds each of `keys` at the top level of the JSON object `line`, filling `found`
/// (cleared first, one slot per key, `None` where absent). Returns false when the line
/// is not a JSON object as far as the scan went.
pub fn top_level<'a>(line: &'a [u8], keys: &[&str], found: &mut Vec<Option<Scalar<'a>>>) -> bool {
    found.clear();
    found.resize(keys.len(), None);
    top_level_each(line, keys, |slot, value| found[slot] = Some(value))
}

/// [`top_level`] without a buffer: calls `seen(index of the key, value)` for the first
/// occurrence of each key, in line order, and stops once all were seen.
pub fn top_level_each<'a>(
    line: &'a [u8],
    keys: &[&str],
    mut seen: impl FnMut(usize, Scalar<'a>),
) -> bool {
    let mut done = 0u64;
    // Up to 64 keys are looked for (a bit each); later ones are never found.
    let all = if keys.len() >= 64 {
        u64::MAX
    } else {
        (1u64 << keys.len()) - 1
    };
    if keys.is_empty() {
        return line.trim_ascii_start().first() == Some(&b'{');
    }
    let mut at = skip_ws(line, 0);
    if line.get(at) != Some(&b'{') {
        return false;
    }
    at = skip_ws(line, at + 1);
    if line.get(at) == Some(&b'}') {
        return true;
    }
    loop {
        // "key"
        if line.get(at) != Some(&b'"') {
            return false;
        }
        let Some((key_end, key_escaped)) = string_end(line, at + 1) else {
            return false;
        };
        let key = &line[at + 1..key_end];
        at = skip_ws(line, key_end + 1);
        if line.get(at) != Some(&b':') {
            return false;
        }
        at = skip_ws(line, at + 1);
        let start = at;
        let Some(end) = value_end(line, at) else {
            return false;
        };
        if let Some(slot) = keys.iter().position(|k| {
            if key_escaped {
                unescape(key).as_deref() == Some(*k)
            } else {
                k.as_bytes() == key
            }
        }) {
            if slot < 64 && done & (1 << slot) == 0 {
                done |= 1 << slot;
                seen(slot, scalar(&line[start..end]));
                if done == all {
                    return true;
                }
            }
        }
        at = skip_ws(line, end);
        match line.get(at) {
            Some(b',') => at = skip_ws(line, at + 1),
            Some(b'}') => return true,
            _ => return false,
        }
    }
}

fn skip_ws(line: &[u8], mut at: usize) -> usize {
    while matches!(line.get(at), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        at += 1;
    }
    at
}

/// The index of the closing quote of a string whose contents start at `at`, and whether
/// it has escapes.
fn string_end(line: &[u8], mut at: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    loop {
        let next = memchr::memchr2(b'"', b'\\', line.get(at..)?)? + at;
        if line[next] == b'"' {
            return Some((next, escaped));
        }
        escaped = true;
        at = next + 2;
    }
}

/// The index just past the value starting at `at`.
fn value_end(line: &[u8], at: usize) -> Option<usize> {
    match *line.get(at)? {
        b'"' => string_end(line, at + 1).map(|(end, _)| end + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match *line.get(i)? {
                    b'"' => i = string_end(line, i + 1)?.0,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let len = line[at..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n'))
                .unwrap_or(line.len() - at);
            (len > 0).then_some(at + len)
        }
    }
}

fn scalar(raw: &[u8]) -> Scalar<'_> {
    match raw.first() {
        Some(b'"') => {
            let inner = &raw[1..raw.len() - 1];
            match std::str::from_utf8(inner) {
                Ok(text) if !inner.contains(&b'\\') => Scalar::Text(text.into()),
                _ => Scalar::Text(unescape(inner).unwrap_or_default().into()),
            }
        }
        Some(b'{' | b'[') => Scalar::Nested,
        _ => match raw {
            b"true" => Scalar::Bool(true),
            b"false" => Scalar::Bool(false),
            b"null" => Scalar::Null,
            number => Scalar::Number(std::str::from_utf8(number).unwrap_or("")),
        },
    }
}

/// A string's contents with escapes undone (by serde_json, which knows every rule).
fn unescape(inner: &[u8]) -> Option<String> {
    let mut quoted = Vec::with_capacity(inner.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(inner);
    quoted.push(b'"');
    serde_json::from_slice(&quoted).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn find<'a>(line: &'a str, keys: &[&str]) -> Vec<Option<Scalar<'a>>> {
        let mut found = Vec::new();
        top_level(line.as_bytes(), keys, &mut found);
        found
    }

    #[test]
    fn finds_top_level_keys_only() {
        let line = r#"{"payload":{"event_type":"nested","s":"\"event_type\":1"},"event_type":"compute.instance.create.end","n":-1.5e3,"ok":true,"x":null}"#;
        assert_eq!(
            find(line, &["event_type", "n", "ok", "x", "missing"]),
            vec![
                Some(Scalar::Text("compute.instance.create.end".into())),
                Some(Scalar::Number("-1.5e3")),
                Some(Scalar::Bool(true)),
                Some(Scalar::Null),
                None
            ]
        );
        assert_eq!(
            find(r#"{"k\u0065y" : "a\nb"}"#, &["key"]),
            vec![Some(Scalar::Text("a\nb".into()))]
        );
        assert_eq!(find("not json", &["a"]), vec![None]);
        assert_eq!(find(r#"{"a":"#, &["a"]), vec![None]);
    }

    /// Any JSON value, small, with keys and text that need escaping (shared by the
    /// crate's proptests).
    pub(crate) fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-z\"\\\\{}:, ]{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map("[a-c\"]{1,2}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// On valid objects the scan agrees with serde_json; on any bytes it returns.
        #[test]
        fn agrees_with_serde_json(
            object in prop::collection::btree_map("[a-c\"]{1,2}", json_value(), 0..6),
            noise in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            let object: serde_json::Map<String, serde_json::Value> = object.into_iter().collect();
            let line = serde_json::to_string(&object).unwrap();
            let keys = ["a", "b", "\"", "ab"];
            let found = find(&line, &keys);
            for (key, got) in keys.iter().zip(&found) {
                let want = object.get(*key).map(|v| match v {
                    serde_json::Value::String(s) => Scalar::Text(s.clone().into()),
                    serde_json::Value::Number(_) => Scalar::Number(""),
                    serde_json::Value::Bool(b) => Scalar::Bool(*b),
                    serde_json::Value::Null => Scalar::Null,
                    _ => Scalar::Nested,
                });
                match (got, want) {
                    (Some(Scalar::Number(n)), Some(Scalar::Number(_))) => {
                        prop_assert_eq!(n.parse::<f64>().ok(), object[*key].as_f64());
                    }
                    (got, want) => prop_assert_eq!(got.clone(), want),
                }
            }
            let mut found = Vec::new();
            top_level(&noise, &keys, &mut found);
            let mut cut = line.into_bytes();
            cut.truncate(cut.len() / 2);
            top_level(&cut, &keys, &mut found);
        }
    }
}
