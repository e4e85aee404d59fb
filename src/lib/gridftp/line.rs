//! Recognising and splitting the three GridFTP log line formats.

/// The text before the netlogger fields in the main server log.
const TRANSFER_STATS: &str = ":: Transfer stats: ";

/// Which log format to expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Decide per line: `{` starts JSON, `:: Transfer stats:` marks the main log, a
    /// leading `KEY=` token the transfer log; other lines are ignored.
    Auto,
    /// The transfer log (`-log-transfer`): every line must be `KEY=value` fields.
    Netlogger,
    /// The main server log: only `Transfer stats:` lines are read.
    Main,
    /// The JSON transfer log: every line must be a JSON object.
    Json,
}

/// What a line holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind<'a> {
    /// Netlogger fields (from the transfer log or a main-log `Transfer stats:` line).
    Netlogger(&'a str),
    /// A JSON object.
    Json(&'a str),
    /// Nothing to read.
    Ignored,
}

/// Classifies one line (without its newline) under `format`. Errors name what a forced
/// format expected.
pub fn classify(line: &str, format: Format) -> Result<Kind<'_>, String> {
    let line = line.trim_end();
    if line.trim_start().is_empty() {
        return Ok(Kind::Ignored);
    }
    let stats = || {
        line.find(TRANSFER_STATS)
            .map(|at| &line[at + TRANSFER_STATS.len()..])
    };
    match format {
        Format::Auto => Ok(if line.starts_with('{') {
            Kind::Json(line)
        } else if starts_with_key(line) {
            Kind::Netlogger(line)
        } else if let Some(fields) = stats() {
            Kind::Netlogger(fields)
        } else {
            Kind::Ignored
        }),
        Format::Netlogger if starts_with_key(line) => Ok(Kind::Netlogger(line)),
        Format::Netlogger => Err("not a transfer-log line (expected KEY=value fields)".into()),
        Format::Main => Ok(stats().map_or(Kind::Ignored, Kind::Netlogger)),
        Format::Json if line.starts_with('{') => Ok(Kind::Json(line)),
        Format::Json => Err("not a JSON object".into()),
    }
}

/// Length of the `KEY` of a token that starts with `KEY=`, where KEY is a letter followed
/// by letters, digits, `_` or `.`.
fn key_len(token: &str) -> Option<usize> {
    let bytes = token.as_bytes();
    if !bytes.first()?.is_ascii_alphabetic() {
        return None;
    }
    let len = bytes
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'.'))?;
    (bytes[len] == b'=').then_some(len)
}

fn starts_with_key(line: &str) -> bool {
    key_len(line).is_some()
}

/// One `KEY=value` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The key as written (`DATE`, `NL.EVNT`, `retrans`).
    pub key: &'a str,
    /// The value; may contain spaces.
    pub value: &'a str,
}

/// Splits netlogger text into fields, in order, into `out` (cleared first). A token that
/// does not start with `KEY=` continues the previous value, so `FILE=/a b c` keeps its
/// spaces.
pub fn split_fields<'a>(text: &'a str, out: &mut Vec<Field<'a>>) -> Result<(), String> {
    out.clear();
    let bytes = text.as_bytes();
    let separator = |b: u8| b == b' ' || b == b'\t';
    let mut current: Option<(&'a str, usize, usize)> = None;
    let mut at = 0;
    while at < bytes.len() {
        if separator(bytes[at]) {
            at += 1;
            continue;
        }
        let start = at;
        at = memchr::memchr2(b' ', b'\t', &bytes[at..]).map_or(bytes.len(), |n| at + n);
        // Both ends sit next to ASCII separators or the ends of the text: char boundaries.
        let token = &text[start..at];
        match key_len(token) {
            Some(len) => {
                if let Some((key, from, to)) = current.take() {
                    out.push(Field {
                        key,
                        value: &text[from..to],
                    });
                }
                current = Some((&token[..len], start + len + 1, at));
            }
            None => match current.as_mut() {
                Some((_, _, to)) => *to = at,
                None => return Err(format!("expected KEY=value, found {token:?}")),
            },
        }
    }
    if let Some((key, from, to)) = current {
        out.push(Field {
            key,
            value: &text[from..to],
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs(text: &str) -> Vec<(&str, &str)> {
        let mut out = Vec::new();
        split_fields(text, &mut out).unwrap();
        out.iter().map(|f| (f.key, f.value)).collect()
    }

    #[test]
    fn values_keep_their_spaces_and_keys_their_case() {
        assert_eq!(
            pairs("DATE=1 FILE=/a b  c NL.EVNT=FTP_INFO retrans=1,2 EMPTY="),
            vec![
                ("DATE", "1"),
                ("FILE", "/a b  c"),
                ("NL.EVNT", "FTP_INFO"),
                ("retrans", "1,2"),
                ("EMPTY", "")
            ]
        );
        assert!(split_fields("junk DATE=1", &mut Vec::new()).is_err());
    }

    #[test]
    fn formats_are_told_apart() {
        let nl = "DATE=1 TYPE=RETR";
        assert_eq!(classify(nl, Format::Auto), Ok(Kind::Netlogger(nl)));
        let main = "[6300] Sun Nov 22 22:27:12 2026 :: Transfer stats: DATE=1 TYPE=RETR";
        assert_eq!(classify(main, Format::Auto), Ok(Kind::Netlogger(nl)));
        assert_eq!(classify(main, Format::Main), Ok(Kind::Netlogger(nl)));
        assert_eq!(classify("[1] starting", Format::Main), Ok(Kind::Ignored));
        assert_eq!(
            classify("{\"a\":1}", Format::Auto),
            Ok(Kind::Json("{\"a\":1}"))
        );
        assert_eq!(classify("hello", Format::Auto), Ok(Kind::Ignored));
        assert!(classify("hello", Format::Netlogger).is_err());
        assert!(classify("hello", Format::Json).is_err());
        assert_eq!(classify("   ", Format::Netlogger), Ok(Kind::Ignored));
    }

    proptest! {
        #[test]
        fn splitting_never_panics_and_covers_every_key(text in "[ -~\t]{0,200}") {
            let mut out = Vec::new();
            if split_fields(&text, &mut out).is_ok() {
                for field in &out {
                    let pair = format!("{}={}", field.key, field.value);
                    prop_assert!(text.contains(&pair));
                }
            }
            let _ = classify(&text, Format::Auto);
        }
    }
}
