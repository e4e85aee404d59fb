//! esmond's time filter parameters (`time`, `time-start`, `time-end`, `time-range`),
//! resolved as `handle_time_filters` did (esmond.md §1.4).

/// An inclusive time range; `end` is `None` when open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First second included.
    pub begin: i64,
    /// Last second included, if bounded.
    pub end: Option<i64>,
}

/// Resolves the parameters; `Ok(None)` when none is given. `lookup` returns a parameter's
/// raw value.
pub fn resolve<'a>(
    lookup: impl Fn(&str) -> Option<&'a str>,
    now: i64,
) -> Result<Option<Range>, String> {
    let parse = |name: &str| -> Result<Option<i64>, String> {
        lookup(name)
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| "Time parameter must be an integer".to_owned())
            })
            .transpose()
    };
    let (time, start, end, range) = (
        parse("time")?,
        parse("time-start")?,
        parse("time-end")?,
        parse("time-range")?,
    );
    let sum = |a: i64, b: i64| {
        a.checked_add(b)
            .ok_or_else(|| "Time parameters out of range".to_owned())
    };
    let difference = |a: i64, b: i64| {
        a.checked_sub(b)
            .ok_or_else(|| "Time parameters out of range".to_owned())
    };
    let resolved = match (time, start, end, range) {
        (Some(t), ..) => Range {
            begin: t,
            end: Some(t),
        },
        (None, Some(s), Some(e), _) => Range {
            begin: s,
            end: Some(e),
        },
        (None, Some(s), None, Some(r)) => Range {
            begin: s,
            end: Some(sum(s, r)?),
        },
        (None, None, Some(e), Some(r)) => Range {
            begin: difference(e, r)?,
            end: Some(e),
        },
        (None, Some(s), None, None) => Range {
            begin: s,
            end: None,
        },
        (None, None, Some(e), None) => Range {
            begin: 0,
            end: Some(e),
        },
        (None, None, None, Some(r)) => Range {
            begin: difference(now, r)?,
            end: None,
        },
        (None, None, None, None) => return Ok(None),
    };
    if resolved.end.is_some_and(|e| e < resolved.begin) {
        return Err("Requested start time must be less than end time".into());
    }
    Ok(Some(resolved))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&'static str, &'static str)]) -> Result<Option<Range>, String> {
        resolve(|k| pairs.iter().find(|p| p.0 == k).map(|p| p.1), 1000)
    }

    #[test]
    fn every_rule() {
        let r = |begin, end| Ok(Some(Range { begin, end }));
        assert_eq!(with(&[("time", "5"), ("time-start", "1")]), r(5, Some(5)));
        assert_eq!(
            with(&[("time-start", "1"), ("time-end", "9")]),
            r(1, Some(9))
        );
        assert_eq!(
            with(&[("time-start", "1"), ("time-range", "9")]),
            r(1, Some(10))
        );
        assert_eq!(
            with(&[("time-end", "20"), ("time-range", "5")]),
            r(15, Some(20))
        );
        assert_eq!(with(&[("time-start", "7")]), r(7, None));
        assert_eq!(with(&[("time-end", "7")]), r(0, Some(7)));
        assert_eq!(with(&[("time-range", "100")]), r(900, None));
        assert_eq!(with(&[]), Ok(None));
        assert_eq!(
            with(&[("time", "x")]).unwrap_err(),
            "Time parameter must be an integer"
        );
        assert_eq!(
            with(&[("time-start", "9"), ("time-end", "1")]).unwrap_err(),
            "Requested start time must be less than end time"
        );
    }

    #[test]
    fn overflowing_parameters_are_refused_not_wrapped() {
        let refused = Err("Time parameters out of range".to_owned());
        assert_eq!(
            with(&[("time-start", "9223372036854775807"), ("time-range", "1")]),
            refused
        );
        assert_eq!(
            with(&[("time-end", "-9223372036854775808"), ("time-range", "1")]),
            refused
        );
        assert_eq!(with(&[("time-range", "-9223372036854775807")]), refused);
    }
}
