//! Delivering a stream of measurement lines through a [`Sink`]: what becomes of each line
//! the sink cannot take. A line that is not a measurement, a record whose metadata the
//! archive refuses and a point it refuses go to `--on-error` (kept in the reject file, if
//! any); a point that conflicts with what the archive holds is named and kept, not counted
//! as bad (the archive has a value there; the run goes on).

use std::time::Duration;

use super::sink::{Sink, SinkError, Totals, Transport};
use crate::error::{Error, Location};
use crate::ndjson::{BadLines, LineReader};
use crate::record::{self, Family, RawMeasurement};

/// Reads every line of `reader` into `sink`, then sends what is pending. Whenever the input
/// has been quiet for `linger` (a stream that pauses), what the sink holds is sent and
/// acknowledged without waiting for a full batch. `warn` names the conflicts and, at the
/// end, the skipped lines; `progress` is shown the totals after each record.
pub fn all<T: Transport>(
    sink: &mut Sink<T>,
    reader: &mut LineReader,
    bad: &mut BadLines,
    linger: Duration,
    warn: fn(&str),
    progress: &mut dyn FnMut(&Totals),
) -> Result<(), SinkError> {
    let read = records(sink, reader, bad, linger, warn, progress);
    let sent = match read {
        Ok(()) => sink.finish(),
        // The archive failed: what is pending would fail too.
        Err(err @ SinkError::Failed(_)) => sink.save_cache().and(Err(err)),
        // A line stopped the run (`--on-error fail`): the records before it are good, so
        // they are delivered and acknowledged first (a refused point among them is named
        // instead, being earlier).
        Err(err) => sink.finish().and(Err(err)),
    };
    // Points refused by the last batches, then the record that stopped the run, if any.
    let outcome = set_aside(sink, bad, warn).and_then(|()| match sent {
        Err(SinkError::RefusedPoint {
            part,
            location,
            detail,
            line,
        }) => refused_point(bad, part, location, &detail, &line),
        other => other,
    });
    let flushed = bad.flush();
    outcome?;
    flushed?;
    bad.report(warn);
    Ok(())
}

fn records<T: Transport>(
    sink: &mut Sink<T>,
    reader: &mut LineReader,
    bad: &mut BadLines,
    linger: Duration,
    warn: fn(&str),
    progress: &mut dyn FnMut(&Totals),
) -> Result<(), SinkError> {
    loop {
        if sink.holds() && reader.quiet(linger) {
            sink.flush()?;
            set_aside(sink, bad, warn)?;
            continue;
        }
        let Some(line) = reader.next(bad)? else {
            return Ok(());
        };
        let record: RawMeasurement = match serde_json::from_slice(line.bytes) {
            Ok(record) => record,
            Err(err) => {
                let cause = match record::classify(line.bytes) {
                    Ok(Family::Measurement) | Err(_) => format!("not a measurement record: {err}"),
                    Ok(other) => format!("a {} record, not a measurement", other.name()),
                };
                bad.handle_line(Error::bad_input(line.location, cause), line.bytes)?;
                sink.pass(record::cursor_of(line.bytes).as_deref());
                continue;
            }
        };
        match sink.push(&record, &line.location, line.bytes) {
            Ok(()) => {}
            Err(refused @ SinkError::Refused { .. }) => {
                let err = Error::bad_input(line.location.clone(), refused.to_string());
                bad.handle_line(err, line.bytes)?;
                sink.pass(record.cursor.as_ref().map(|c| &*c.0));
            }
            Err(err) => return Err(err),
        }
        set_aside(sink, bad, warn)?;
        progress(&sink.totals());
    }
}

/// A refused point, to `--on-error` (which stops the run under `fail`).
fn refused_point(
    bad: &mut BadLines,
    part: &str,
    location: Location,
    detail: &str,
    line: &[u8],
) -> Result<(), SinkError> {
    let cause = format!("the archive refused the {part}: HTTP 400: {detail}");
    Ok(bad.handle_line(Error::bad_input(location, cause), line)?)
}

/// Hands the points the archive refused (found when a batch was sent) to `--on-error`, and
/// names and keeps the records whose values conflict with what the archive holds.
fn set_aside<T: Transport>(
    sink: &mut Sink<T>,
    bad: &mut BadLines,
    warn: fn(&str),
) -> Result<(), SinkError> {
    for conflict in sink.take_conflicts() {
        let cause = format!("conflict: {}", conflict.detail);
        warn(&format!("{}: {cause}", conflict.location));
        bad.keep(&conflict.location, &cause, &conflict.line)?;
    }
    for refused in sink.take_refused() {
        refused_point(
            bad,
            refused.part,
            refused.location,
            &refused.detail,
            &refused.line,
        )?;
    }
    Ok(())
}
