//! The wall clock, in the units the tools write: one place to read it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as i64)
}

/// Whole seconds since the Unix epoch (esmond's `ts`).
pub fn now_seconds() -> i64 {
    now_micros().div_euclid(1_000_000)
}

/// Seconds since the Unix epoch with microseconds (the records' `ts` for samples).
pub fn now_epoch() -> f64 {
    now_micros() as f64 / 1e6
}

/// The time as RFC 3339 UTC to the second, for state files and logs.
pub fn now_rfc3339() -> String {
    chrono::DateTime::from_timestamp(now_seconds(), 0).map_or_else(String::new, |t| {
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    })
}
