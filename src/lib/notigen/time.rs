//! Simulated time: microseconds since the Unix epoch (UTC), and the two ways of writing it.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike};

/// Microseconds since 1970-01-01T00:00:00Z.
pub type Micros = i64;

/// Microseconds in a second.
pub const SECOND: Micros = 1_000_000;
/// Microseconds in a day.
pub const DAY: Micros = 86_400 * SECOND;

/// How timestamps are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    /// `YYYY-MM-DD HH:MM:SS.ffffff`, Python's `str(datetime)` as oslo.messaging sends it,
    /// always with the fraction.
    Python,
    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    Rfc3339,
}

impl TimeFormat {
    /// Formats `at`.
    pub fn format(self, at: Micros) -> String {
        let mut out = Vec::with_capacity(27);
        TimeWriter::new(self).write(at, &mut out);
        String::from_utf8(out).expect("timestamps are ASCII")
    }
}

/// Writes timestamps, formatting the date and time of day only when the second changes.
pub struct TimeWriter {
    format: TimeFormat,
    second: Micros,
    prefix: [u8; 20],
}

impl TimeWriter {
    /// A writer for `format`.
    pub fn new(format: TimeFormat) -> Self {
        TimeWriter {
            format,
            second: Micros::MIN,
            prefix: [0; 20],
        }
    }

    /// Appends `at` (without quotes) to `out`.
    pub fn write(&mut self, at: Micros, out: &mut Vec<u8>) {
        let second = at.div_euclid(SECOND);
        if self.second != second {
            self.prefix = civil_prefix(at, self.format);
            self.second = second;
        }
        out.extend_from_slice(&self.prefix);
        let fraction = at.rem_euclid(SECOND);
        let mut digits = [b'0'; 6];
        let mut rest = fraction;
        for digit in digits.iter_mut().rev() {
            *digit = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        out.extend_from_slice(&digits);
        if self.format == TimeFormat::Rfc3339 {
            out.push(b'Z');
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS.` (or with `T`) for the second containing `at`, written digit by
/// digit: strftime costs more than everything else on a line.
fn civil_prefix(at: Micros, format: TimeFormat) -> [u8; 20] {
    let when = datetime(at);
    let (date, clock) = (when.date(), when.time());
    let mut prefix = *b"0000-00-00 00:00:00.";
    let mut put = |at: usize, width: usize, mut value: u32| {
        for slot in prefix[at..at + width].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, date.year().clamp(0, 9999) as u32);
    put(5, 2, date.month());
    put(8, 2, date.day());
    put(11, 2, clock.hour());
    put(14, 2, clock.minute());
    put(17, 2, clock.second());
    if format == TimeFormat::Rfc3339 {
        prefix[10] = b'T';
    }
    prefix
}

fn datetime(at: Micros) -> NaiveDateTime {
    DateTime::from_timestamp_micros(at)
        .unwrap_or_default()
        .naive_utc()
}

/// The UTC midnight at or before `at`.
pub fn midnight_before(at: Micros) -> Micros {
    at - at.rem_euclid(DAY)
}

/// The current wall-clock time.
pub fn now() -> Micros {
    crate::clock::now_micros()
}

/// Parses a start time: RFC 3339 (`2026-11-22T10:00:00Z`), `YYYY-MM-DD HH:MM:SS[.ffffff]`
/// (UTC, as notigen writes), `YYYY-MM-DD` (midnight UTC), or `now`.
pub fn parse_start(text: &str) -> Result<Micros, String> {
    if text == "now" {
        return Ok(now());
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.timestamp_micros());
    }
    for pattern in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, pattern) {
            return Ok(at.and_utc().timestamp_micros());
        }
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc()
            .timestamp_micros());
    }
    Err(format!(
        "cannot read {text:?} as a time: use RFC 3339 (2026-11-22T10:00:00Z), \
         'YYYY-MM-DD HH:MM:SS' (UTC), YYYY-MM-DD or now"
    ))
}

/// Truncates `at` to the whole second (a default start reads better without a fraction).
pub fn whole_second(at: Micros) -> Micros {
    let second = datetime(at).with_nanosecond(0).unwrap_or_default();
    second.and_utc().timestamp_micros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_format_keeps_a_zero_fraction() {
        let at = parse_start("2026-11-22 00:00:00").unwrap();
        assert_eq!(TimeFormat::Python.format(at), "2026-11-22 00:00:00.000000");
        assert_eq!(
            TimeFormat::Rfc3339.format(at + 42),
            "2026-11-22T00:00:00.000042Z"
        );
    }

    #[test]
    fn the_writer_cache_follows_the_second() {
        let mut writer = TimeWriter::new(TimeFormat::Python);
        let at = parse_start("2026-11-22T23:59:59.999999Z").unwrap();
        let mut out = Vec::new();
        writer.write(at, &mut out);
        out.push(b'|');
        writer.write(at + 1, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-11-22 23:59:59.999999|2026-11-23 00:00:00.000000"
        );
    }

    #[test]
    fn start_times_parse_in_every_documented_form() {
        let midnight = 1_795_305_600 * SECOND; // 2026-11-22T00:00:00Z
        assert_eq!(parse_start("2026-11-22"), Ok(midnight));
        assert_eq!(parse_start("2026-11-22T00:00:00Z"), Ok(midnight));
        assert_eq!(parse_start("2026-11-22T01:00:00+01:00"), Ok(midnight));
        assert_eq!(
            parse_start("2026-11-22 00:00:00.5"),
            Ok(midnight + SECOND / 2)
        );
        assert!(parse_start("yesterday").is_err());
        assert_eq!(midnight_before(midnight + 5), midnight);
    }

    proptest::proptest! {
        #[test]
        fn parse_start_never_panics(text in "\\PC{0,40}") {
            let _ = parse_start(&text);
        }

        #[test]
        fn formatting_never_panics_and_has_a_fixed_width(at in proptest::num::i64::ANY) {
            let at = at / 4; // keep within chrono's range of years
            let text = TimeFormat::Python.format(at);
            proptest::prop_assert_eq!(text.len(), 26);
        }
    }
}
