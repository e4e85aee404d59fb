//! Writing to an esmond archive (a real esmond 4.x or esmond-serve): metadata
//! get-or-create and bulk PUTs, with retries for what can be retried.
//!
//! Connection errors and 5xx answers are retried with exponential backoff and full jitter
//! until the retry budget is spent; 4xx answers are not (the request itself is wrong),
//! except that the caller handles 404 (a forgotten metadata key) and 409 (a duplicate).

use std::time::Duration;

use serde_json::Value;

/// How to reach the archive.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `scheme://host[:port]`, optionally with a path prefix.
    pub url: String,
    /// The alias before `perfsonar/archive` (`esmond`), or none.
    pub script_alias: Option<String>,
    /// `Authorization` header value, if any.
    pub authorization: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// First backoff; doubles each retry (with jitter), capped at 30 s.
    pub backoff: Duration,
    /// Check TLS certificates.
    pub verify_tls: bool,
}

/// What the archive answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body text.
    pub body: String,
}

impl Answer {
    /// esmond's `detail` message, or the body.
    pub fn detail(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| self.body.chars().take(200).collect())
    }
}

/// Why a request did not get an answer worth acting on.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Every attempt failed to connect or got a 5xx.
    #[error("{url}: gave up after {attempts} attempts: {last}")]
    Exhausted {
        /// The URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

/// Counts kept for the exit summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    /// Requests sent (attempts included).
    pub requests: u64,
    /// Retries after a failure.
    pub retries: u64,
}

/// An archive client.
pub struct Client {
    settings: Settings,
    agent: ureq::Agent,
    root: String,
    /// Request and retry counts.
    pub counters: Counters,
}

impl Client {
    /// A client for `settings`.
    pub fn new(settings: Settings) -> Client {
        let tls = ureq::tls::TlsConfig::builder()
            .disable_verification(!settings.verify_tls)
            .build();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(settings.timeout))
            .tls_config(tls)
            .build()
            .into();
        let base = settings.url.trim_end_matches('/');
        let root = match settings
            .script_alias
            .as_deref()
            .map(|a| a.trim_matches('/'))
        {
            Some(alias) if !alias.is_empty() => format!("{base}/{alias}/perfsonar/archive/"),
            _ => format!("{base}/perfsonar/archive/"),
        };
        Client {
            settings,
            agent,
            root,
            counters: Counters::default(),
        }
    }

    /// The archive root URL (ends with `/`).
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Sends `method url body`, retrying connection errors and 5xx.
    pub fn send(&mut self, method: &str, url: &str, body: &str) -> Result<Answer, SendError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.counters.requests += 1;
            let failure = match self.once(method, url, body) {
                Ok(answer) if answer.status < 500 => return Ok(answer),
                Ok(answer) => format!("HTTP {}: {}", answer.status, answer.detail()),
                Err(err) => err.to_string(),
            };
            if attempt > self.settings.retries {
                return Err(SendError::Exhausted {
                    url: url.to_owned(),
                    attempts: attempt,
                    last: failure,
                });
            }
            self.counters.retries += 1;
            let ceiling = self
                .settings
                .backoff
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(Duration::from_secs(30));
            // Full jitter: overlapping cron runs do not retry in step.
            std::thread::sleep(ceiling.mul_f64(rand::random::<f64>()));
        }
    }

    fn once(&self, method: &str, url: &str, body: &str) -> Result<Answer, ureq::Error> {
        let request = match method {
            "PUT" => self.agent.put(url),
            _ => self.agent.post(url),
        };
        let request = request.header("Content-Type", "application/json");
        let request = match &self.settings.authorization {
            Some(auth) => request.header("Authorization", auth),
            None => request,
        };
        let mut response = request.send(body.as_bytes())?;
        Ok(Answer {
            status: response.status().as_u16(),
            body: response.body_mut().read_to_string().unwrap_or_default(),
        })
    }
}
