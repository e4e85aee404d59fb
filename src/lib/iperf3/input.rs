//! Finding the tests in a stream of lines: bwctl transcripts and plain iperf3 JSON, in any
//! mix and number.
//!
//! A transcript is a group of `bwctl: Using …` header lines followed by one results block
//! whose JSON sits between `bwctl: start_tool:` and `bwctl: stop_tool:` (a second block for
//! the same headers, as `bwctl -y` prints for the other side, is the same test and is
//! skipped). Outside transcripts, a line starting with `{` begins a plain document, which
//! ends where its braces balance (strings and escapes respected), so documents appended one
//! after another are told apart without any framing.

use crate::error::Location;

/// The header lines of one bwctl run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bwctl {
    /// `bwctl: Using tool: <tool>`.
    pub tool: Option<String>,
    /// `bwctl: Using <addr> as the address for <local|remote> sender`.
    pub sender: Option<String>,
    /// `bwctl: Using <addr> as the address for <local|remote> receiver`.
    pub receiver: Option<String>,
    /// `bwctl: start_tool: <NTP seconds>` as Unix seconds.
    pub started: Option<i64>,
}

/// One test's iperf3 JSON and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    /// The JSON text.
    pub json: String,
    /// The line where the JSON starts.
    pub location: Location,
    /// The transcript's headers, for a test read from bwctl output.
    pub bwctl: Option<Bwctl>,
}

/// Seconds between the NTP epoch (1900) and the Unix epoch.
const NTP_UNIX_OFFSET: f64 = 2_208_988_800.0;

/// Splits lines into tests. Feed every line with [`Splitter::line`], then call
/// [`Splitter::finish`] at the end of each input.
#[derive(Debug, Default)]
pub struct Splitter {
    headers: Bwctl,
    /// A header line was seen since the last complete transcript test.
    headers_seen: bool,
    /// The current headers already gave their test.
    group_done: bool,
    /// Inside `start_tool` … `stop_tool`.
    collecting: Option<Location>,
    transcript_json: String,
    plain: Scanner,
}

/// Brace balance of a plain JSON document in progress.
#[derive(Debug, Default)]
struct Scanner {
    start: Option<Location>,
    text: Vec<u8>,
    depth: u32,
    in_string: bool,
}

impl Scanner {
    /// Feeds one line; moves each document that completes into `out`. Returns the bytes
    /// after a completed document that still need a look, if any.
    fn feed<'a>(&mut self, bytes: &'a [u8], out: &mut Vec<u8>) -> Option<&'a [u8]> {
        let mut at = 0;
        while at < bytes.len() {
            if self.in_string {
                // Jump to the string's next quote or escape.
                match memchr::memchr2(b'"', b'\\', &bytes[at..]) {
                    None => break,
                    Some(n) if bytes[at + n] == b'\\' => at += n + 2,
                    Some(n) => {
                        self.in_string = false;
                        at += n + 1;
                    }
                }
                continue;
            }
            match bytes[at] {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        self.text.extend_from_slice(&bytes[..=at]);
                        out.append(&mut self.text);
                        return Some(&bytes[at + 1..]);
                    }
                }
                _ => {}
            }
            at += 1;
        }
        self.text.extend_from_slice(bytes);
        self.text.push(b'\n');
        None
    }
}

impl Splitter {
    /// Takes one line (without its newline); pushes the tests it completes.
    pub fn line(
        &mut self,
        line: &[u8],
        location: &Location,
        tests: &mut Vec<Test>,
    ) -> Result<(), String> {
        if let Some(start) = &self.collecting {
            if line.starts_with(b"bwctl: stop_tool:") {
                let start = start.clone();
                self.collecting = None;
                let json = std::mem::take(&mut self.transcript_json);
                if !self.group_done {
                    self.group_done = true;
                    self.headers_seen = false;
                    tests.push(Test {
                        json,
                        location: start,
                        bwctl: Some(self.headers.clone()),
                    });
                }
            } else {
                self.transcript_json.push_str(&lossy(line));
                self.transcript_json.push('\n');
            }
            return Ok(());
        }
        if let Some(start) = &self.plain.start {
            // iperf3 -J opens each document with a line holding only `{`; inside one, every
            // nested brace is indented. So a bare `{` means the document before it was cut
            // short (a run killed mid-write): lose that one only and start the next.
            if line.trim_ascii_end() == b"{" {
                let cut = format!(
                    "the iperf3 JSON document from line {} is cut short (this line starts another)",
                    start.line
                );
                self.plain = Scanner::default();
                self.plain.start = Some(location.clone());
                self.plain_json(line, location, tests)?;
                return Err(cut);
            }
            return self.plain_json(line, location, tests);
        }
        if let Some(rest) = line.strip_prefix(b"bwctl:") {
            self.bwctl_line(String::from_utf8_lossy(rest).trim(), location);
            return Ok(());
        }
        if line.trim_ascii_start().starts_with(b"{") {
            self.plain.start = Some(location.clone());
            return self.plain_json(line, location, tests);
        }
        Ok(())
    }

    fn bwctl_line(&mut self, text: &str, location: &Location) {
        let header = |splitter: &mut Splitter| {
            if splitter.group_done {
                splitter.headers = Bwctl::default();
                splitter.group_done = false;
            }
            splitter.headers_seen = true;
        };
        if let Some(tool) = text.strip_prefix("Using tool:") {
            header(self);
            self.headers.tool = Some(tool.trim().to_owned());
        } else if let Some((address, role)) = text
            .strip_prefix("Using ")
            .and_then(|t| t.split_once(" as the address for "))
        {
            header(self);
            let address = Some(address.trim().to_owned());
            if role.ends_with("sender") {
                self.headers.sender = address;
            } else if role.ends_with("receiver") {
                self.headers.receiver = address;
            }
        } else if let Some(time) = text.strip_prefix("start_tool:") {
            if !self.group_done {
                self.headers.started = time
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .map(|t| (t - NTP_UNIX_OFFSET) as i64);
            }
            self.collecting = Some(Location {
                file: location.file.clone(),
                line: location.line + 1,
            });
        }
    }

    fn plain_json(
        &mut self,
        line: &[u8],
        location: &Location,
        tests: &mut Vec<Test>,
    ) -> Result<(), String> {
        let mut rest = line;
        loop {
            let mut done = Vec::new();
            let Some(after) = self.plain.feed(rest, &mut done) else {
                return Ok(());
            };
            let start = self.plain.start.take().unwrap_or_else(|| location.clone());
            self.plain = Scanner::default();
            tests.push(Test {
                json: String::from_utf8(done).unwrap_or_else(|e| lossy(e.as_bytes()).into_owned()),
                location: start,
                bwctl: None,
            });
            let after = after.trim_ascii_start();
            if !after.starts_with(b"{") {
                return Ok(());
            }
            self.plain.start = Some(location.clone());
            rest = after;
        }
    }

    /// Ends an input: anything left open is an error naming what is missing.
    pub fn finish(&mut self, file: &str) -> Result<(), String> {
        let open = if let Some(start) = self.collecting.take() {
            Some(format!(
                "{start}: the results after \"bwctl: start_tool\" never end (no \"bwctl: stop_tool\" line; transcript cut short?)"
            ))
        } else if let Some(start) = self.plain.start.take() {
            Some(format!("{start}: iperf3 JSON document is cut short"))
        } else if self.headers_seen && !self.group_done {
            Some(format!(
                "{file}: bwctl transcript without a \"bwctl: start_tool\" line (run bwctl with --parsable --verbose)"
            ))
        } else {
            None
        };
        *self = Splitter::default();
        open.map_or(Ok(()), Err)
    }
}

/// UTF-8 text, invalid sequences replaced (the common valid case copies nothing).
fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn split(text: &str) -> Result<Vec<Test>, String> {
        let mut splitter = Splitter::default();
        let mut tests = Vec::new();
        let file: Arc<str> = "in".into();
        for (n, line) in text.lines().enumerate() {
            let location = Location {
                file: file.clone(),
                line: n as u64 + 1,
            };
            splitter.line(line.as_bytes(), &location, &mut tests)?;
        }
        splitter.finish("in")?;
        Ok(tests)
    }

    #[test]
    fn plain_documents_back_to_back_are_told_apart() {
        let tests = split("{\"a\": \"}{\\\"\"}\n{\n \"b\": [1, {\"c\": 2}]\n}{\"d\":3}\n").unwrap();
        let texts: Vec<&str> = tests.iter().map(|t| t.json.as_str()).collect();
        assert_eq!(
            texts,
            [
                "{\"a\": \"}{\\\"\"}",
                "{\n \"b\": [1, {\"c\": 2}]\n}",
                "{\"d\":3}"
            ]
        );
        assert_eq!(tests[1].location.line, 2);
    }

    #[test]
    fn a_transcript_gives_one_test_with_its_headers() {
        let text = "bwctl: Using 10.0.0.1 as the address for local sender\nbwctl: Using 10.0.0.2 as the address for remote receiver\nbwctl: Using tool: iperf3\nSENDER START\nbwctl: start_tool: 3900000000.5\n{\"x\": 1}\nbwctl: stop_tool: 3900000010.0\nSENDER END\nRECEIVER START\nbwctl: start_tool: 3900000000.5\n{\"x\": 2}\nbwctl: stop_tool: 3900000010.0\n";
        let tests = split(text).unwrap();
        assert_eq!(tests.len(), 1);
        let bwctl = tests[0].bwctl.as_ref().unwrap();
        assert_eq!(bwctl.tool.as_deref(), Some("iperf3"));
        assert_eq!(bwctl.sender.as_deref(), Some("10.0.0.1"));
        assert_eq!(bwctl.receiver.as_deref(), Some("10.0.0.2"));
        assert_eq!(bwctl.started, Some(3_900_000_000 - 2_208_988_800));
        assert_eq!(tests[0].json, "{\"x\": 1}\n");
        assert_eq!(tests[0].location.line, 6);
    }

    #[test]
    fn missing_framing_is_named() {
        let no_start = "bwctl: Using tool: iperf3\n{\"x\": 1}\n";
        assert!(split(no_start)
            .unwrap_err()
            .contains("without a \"bwctl: start_tool\" line"));
        let no_stop = "bwctl: Using tool: iperf3\nbwctl: start_tool: 1\n{\"x\": 1}\n";
        assert!(split(no_stop)
            .unwrap_err()
            .starts_with("in:3: the results after"));
        assert!(split("{\"x\": [1,\n").unwrap_err().contains("cut short"));
    }

    proptest! {
        #[test]
        fn random_input_never_panics(lines in proptest::collection::vec("(bwctl: (start_tool: 1|stop_tool: 2|Using tool: iperf3)|[{}\\[\\]\"\\\\ a-z:,0-9]{0,30})", 0..30)) {
            let _ = split(&lines.join("\n"));
        }
    }
}
