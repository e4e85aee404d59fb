//! The dates the query tools take for `--start-time` and `--end-time`: what the originals
//! read with dateutil (`2015-04-01`, `April 1`, `Jan 1 2015 13:00`, ISO 8601 with or
//! without a time or zone; naive times are UTC, missing parts come from today), and
//! relative ones: `-7d`, `-12h`, `+30m`, `yesterday`, `3 days ago`, `now`, and `@EPOCH`.
//! Parsing is uutils' `parse_datetime` (GNU `date -d`'s grammar) at the current time in
//! UTC, plus the `[+-]N[smhdw]` shorthand.

use jiff::tz::TimeZone;
use jiff::Zoned;

/// `text` as epoch seconds, relative to `now` (epoch seconds); the error names the text.
pub fn parse(text: &str, now: i64) -> Result<i64, String> {
    let unreadable = || {
        format!(
            "cannot read the date {text:?} (try 2015-04-01, 'Jan 1 2015 13:00', -7d or yesterday)"
        )
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(unreadable());
    }
    if let Some(seconds) = shorthand(trimmed) {
        return now.checked_add(seconds).ok_or_else(unreadable);
    }
    let base = jiff::Timestamp::from_second(now)
        .map_err(|_| unreadable())?
        .to_zoned(TimeZone::UTC);
    let parsed: Option<Zoned> = parse_datetime::parse_datetime_at_date(base, trimmed)
        .ok()
        .and_then(|p| p.into_zoned());
    parsed
        .map(|z| z.timestamp().as_second())
        .ok_or_else(unreadable)
}

/// `[+-]N[smhdw]`: seconds from now.
fn shorthand(text: &str) -> Option<i64> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'-' => (-1, &text[1..]),
        b'+' => (1, &text[1..]),
        _ => return None,
    };
    let unit = rest.chars().last()?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    let count: i64 = rest[..rest.len() - 1].parse().ok()?;
    count.checked_mul(scale)?.checked_mul(sign)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-04 02:30:00 UTC.
    const NOW: i64 = 1_796_351_400;

    #[test]
    fn dates_are_read_as_the_originals_read_them_plus_relative_ones() {
        for (text, expected) in [
            ("2015-04-01", 1_427_846_400),
            ("2015-04-01T12:00:00", 1_427_889_600),
            ("2015-04-01 12:00", 1_427_889_600),
            ("2015-04-01T12:00:00+02:00", 1_427_882_400),
            ("2014-04-13 20:41:12Z", 1_397_421_672),
            ("Jan 1 2015", 1_420_070_400),
            ("Jan 1 2015 13:00", 1_420_117_200),
            ("January 1", 1_767_225_600),
            ("April 1", 1_775_001_600),
            ("-7d", NOW - 7 * 86_400),
            ("-12h", NOW - 12 * 3600),
            ("+30m", NOW + 1800),
            ("yesterday", NOW - 86_400),
            ("3 days ago", NOW - 3 * 86_400),
            ("now", NOW),
            ("@1397347200", 1_397_347_200),
        ] {
            assert_eq!(parse(text, NOW), Ok(expected), "{text}");
        }
    }

    #[test]
    fn a_date_that_cannot_be_read_is_an_error_naming_it() {
        for text in ["", "garbage", "-7x", "2015-13-45"] {
            let err = parse(text, NOW).unwrap_err();
            assert!(
                err.starts_with(&format!("cannot read the date {text:?}")),
                "{err}"
            );
        }
    }

    proptest::proptest! {
        /// Any text is read or refused with a message naming it: never a panic.
        #[test]
        fn any_text_is_read_or_refused(text in "\\PC{0,40}", now in 0i64..4_000_000_000) {
            if let Err(err) = parse(&text, now) {
                proptest::prop_assert!(err.starts_with("cannot read the date "));
            }
        }
    }
}
