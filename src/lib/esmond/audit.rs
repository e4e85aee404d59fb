//! Proof of archiving: given what should be in an archive (pScheduler run hrefs or ids,
//! pScheduler result bodies, measurement records), which of it is there, and why what is
//! missing is missing when the archive knows (pscheduler.md §4.1; esmond-serve's
//! `runs/`, `runs/refused/` and `records/check/`).

use serde_json::Value;

use super::sink::Transport;

/// One thing expected in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// A pScheduler run, by its href or its UUID.
    Run(String),
    /// A measurement record (records.md), its line as given.
    Record(String),
}

/// What an input line expects: a run href (`…/runs/<uuid>`) or a run UUID, a pScheduler
/// result body (its `run.href`, else its `id`), or a measurement record.
pub fn expected(line: &str) -> Result<Expected, String> {
    let line = line.trim();
    if line.starts_with('{') {
        let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        if value.get("metadata").is_some() && value.get("ts").is_some() {
            return Ok(Expected::Record(line.to_owned()));
        }
        let href = value
            .get("run")
            .and_then(|r| r.get("href"))
            .or_else(|| value.get("run-href"))
            .and_then(Value::as_str);
        if let Some(run) = href.or_else(|| value.get("id").and_then(Value::as_str)) {
            return Ok(Expected::Run(run.to_owned()));
        }
        return Err("neither a measurement record nor a pScheduler result".into());
    }
    let uuid = |t: &str| t.len() == 36 && t.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if (line.starts_with("http://") || line.starts_with("https://")) && line.contains("/runs/") {
        return Ok(Expected::Run(line.to_owned()));
    }
    if uuid(line) {
        return Ok(Expected::Run(line.to_owned()));
    }
    Err("not a run href, a run UUID, a pScheduler result or a measurement record".into())
}

/// Whether an expected thing is in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It is there.
    Present,
    /// It is not.
    Missing,
    /// Its time holds another value.
    Different,
}

impl Status {
    /// The name in the output.
    pub fn name(self) -> &'static str {
        match self {
            Status::Present => "present",
            Status::Missing => "missing",
            Status::Different => "different",
        }
    }
}

/// The finding for one expected thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Present, missing or different.
    pub status: Status,
    /// The metadata holding it, when present.
    pub metadata_key: Option<String>,
    /// Why it is missing (or how it differs), when known.
    pub detail: Option<String>,
}

/// Audits against the archive at `root` (its API root URL, ending in `/`); one finding
/// per expected thing, in order. Records are checked `batch` at a time. An `Err` is an
/// archive that cannot answer (or is not esmond-serve).
pub fn audit(
    transport: &mut dyn Transport,
    root: &str,
    expected: &[Expected],
    batch: usize,
) -> Result<Vec<Finding>, String> {
    let mut findings: Vec<Option<Finding>> = vec![None; expected.len()];
    let records: Vec<(usize, &str)> = expected
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Expected::Record(line) => Some((i, line.as_str())),
            Expected::Run(_) => None,
        })
        .collect();
    for chunk in records.chunks(batch.max(1)) {
        let body: String = chunk.iter().map(|(_, line)| format!("{line}\n")).collect();
        let answer = call(
            transport,
            "POST",
            &format!("{root}records/check/"),
            body.as_bytes(),
        )?;
        let lines: Vec<Value> = answer
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("records/check/ answered something else than NDJSON: {e}"))?;
        if lines.len() != chunk.len() {
            return Err(format!(
                "records/check/ answered {} lines for {} records",
                lines.len(),
                chunk.len()
            ));
        }
        for ((i, _), line) in chunk.iter().zip(lines) {
            let text = |k: &str| line.get(k).and_then(Value::as_str).map(str::to_owned);
            let status = match line.get("status").and_then(Value::as_str) {
                Some("present") => Status::Present,
                Some("different") => Status::Different,
                Some("refused") => {
                    return Err(format!(
                        "the archive refuses expected record {}: {}",
                        i + 1,
                        text("detail").unwrap_or_default()
                    ))
                }
                _ => Status::Missing,
            };
            findings[*i] = Some(Finding {
                status,
                metadata_key: text("metadata-key"),
                detail: text("detail"),
            });
        }
    }
    for (i, e) in expected.iter().enumerate() {
        let Expected::Run(run) = e else { continue };
        let by = if run.contains("/runs/") {
            "run-href"
        } else {
            "id"
        };
        let query = serde_urlencoded::to_string([(by, run.as_str())]).unwrap_or_default();
        let found: Value = json(&call(
            transport,
            "GET",
            &format!("{root}runs/?{query}"),
            b"",
        )?)?;
        let finding = match found.as_array().and_then(|a| a.first()) {
            Some(stored) => Finding {
                status: Status::Present,
                metadata_key: stored
                    .get("metadata-key")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                detail: None,
            },
            None => {
                let query =
                    serde_urlencoded::to_string([("run", run.as_str())]).unwrap_or_default();
                let refused: Value = json(&call(
                    transport,
                    "GET",
                    &format!("{root}runs/refused/?{query}"),
                    b"",
                )?)?;
                let detail = match refused.as_array().and_then(|a| a.first()) {
                    Some(r) => format!(
                        "refused ({}) at {}: {}",
                        r["status"],
                        chrono::DateTime::from_timestamp(r["received"].as_i64().unwrap_or(0), 0)
                            .map_or_else(String::new, |t| t.to_rfc3339()),
                        r["detail"].as_str().unwrap_or("")
                    ),
                    None => "never received".into(),
                };
                Finding {
                    status: Status::Missing,
                    metadata_key: None,
                    detail: Some(detail),
                }
            }
        };
        findings[i] = Some(finding);
    }
    Ok(findings.into_iter().flatten().collect())
}

fn json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text)
        .map_err(|e| format!("the archive answered something else than JSON: {e}"))
}

/// One request; its body when it succeeded.
fn call(
    transport: &mut dyn Transport,
    method: &str,
    url: &str,
    body: &[u8],
) -> Result<String, String> {
    let answer = transport
        .send(method, url, body)
        .map_err(|e| format!("{url}: {e}"))?;
    match answer.status {
        200 => Ok(answer.body),
        404 => Err(format!(
            "{url}: 404: the archive keeps no runs (esmond-audit needs esmond-serve)"
        )),
        status => Err(format!("{url}: {status}: {}", answer.body.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_what_they_expect() {
        let href =
            "https://ps-a.example.net/pscheduler/tasks/t/runs/ad38835e-ddd6-4f55-afa7-3207237751aa";
        assert_eq!(expected(href), Ok(Expected::Run(href.into())));
        assert_eq!(
            expected("ad38835e-ddd6-4f55-afa7-3207237751aa\n"),
            Ok(Expected::Run("ad38835e-ddd6-4f55-afa7-3207237751aa".into()))
        );
        assert_eq!(
            expected(&format!(r#"{{"id": "x", "run": {{"href": "{href}"}}}}"#)),
            Ok(Expected::Run(href.into()))
        );
        let record = r#"{"kind": "measurement", "ts": 1, "metadata": {}, "values": {}}"#;
        assert_eq!(expected(record), Ok(Expected::Record(record.into())));
        assert!(expected("hello").is_err());
        assert!(expected("{").unwrap_err().starts_with("not JSON"));
    }
}
