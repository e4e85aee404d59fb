//! The HTTP transport to an esmond archive (a real esmond 4.x or esmond-serve), over
//! ureq: one request per call, no policy (retries and splitting are the sink's, in
//! [`super::sink`]).

use std::time::Duration;

use super::sink::{Answer, Transport};

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
    /// Check TLS certificates.
    pub verify_tls: bool,
}

impl Settings {
    /// The archive root URL (ends with `/`).
    pub fn root(&self) -> String {
        let base = self.url.trim_end_matches('/');
        match self.script_alias.as_deref().map(|a| a.trim_matches('/')) {
            Some(alias) if !alias.is_empty() => format!("{base}/{alias}/perfsonar/archive/"),
            _ => format!("{base}/perfsonar/archive/"),
        }
    }
}

/// The HTTP transport.
pub struct Http {
    agent: ureq::Agent,
    authorization: Option<String>,
}

impl Http {
    /// A transport for `settings`.
    pub fn new(settings: &Settings) -> Http {
        let tls = ureq::tls::TlsConfig::builder()
            .disable_verification(!settings.verify_tls)
            .build();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(settings.timeout))
            // As many as esmond-post's --in-flight allows (ureq keeps 3 by default).
            .max_idle_connections_per_host(64)
            .tls_config(tls)
            .build()
            .into();
        Http {
            agent,
            authorization: settings.authorization.clone(),
        }
    }

    fn once(&self, method: &str, url: &str, body: &[u8]) -> Result<Answer, ureq::Error> {
        if method == "GET" {
            let request = match &self.authorization {
                Some(auth) => self.agent.get(url).header("Authorization", auth),
                None => self.agent.get(url),
            };
            let mut response = request.call()?;
            return Ok(Answer {
                status: response.status().as_u16(),
                body: response.body_mut().read_to_string().unwrap_or_default(),
                retry_after: None,
            });
        }
        let request = match method {
            "PUT" => self.agent.put(url),
            _ => self.agent.post(url),
        };
        let request = request.header("Content-Type", "application/json");
        let request = match &self.authorization {
            Some(auth) => request.header("Authorization", auth),
            None => request,
        };
        let mut response = request.send(body)?;
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Ok(Answer {
            status: response.status().as_u16(),
            body: response.body_mut().read_to_string().unwrap_or_default(),
            retry_after,
        })
    }
}

/// A GET's answer.
#[derive(Debug)]
pub struct Fetched {
    /// HTTP status.
    pub status: u16,
    /// The `Content-Type` header (empty if none).
    pub content_type: String,
    /// The body.
    pub body: String,
}

impl Http {
    /// GETs `url`, reading at most `limit` bytes of body (more is an error).
    pub fn get(&self, url: &str, limit: u64) -> Result<Fetched, String> {
        let request = match &self.authorization {
            Some(auth) => self.agent.get(url).header("Authorization", auth),
            None => self.agent.get(url),
        };
        let mut response = request.call().map_err(|e| e.to_string())?;
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_string()
            .map_err(|e| format!("reading the answer: {e}"))?;
        Ok(Fetched {
            status: response.status().as_u16(),
            content_type,
            body,
        })
    }
}

impl Transport for Http {
    fn send(&mut self, method: &str, url: &str, body: &[u8]) -> Result<Answer, String> {
        self.once(method, url, body).map_err(|e| e.to_string())
    }

    /// The same agent (its pool of kept-alive connections is shared).
    fn fork(&self) -> Option<Box<dyn Transport + Send>> {
        Some(Box::new(Http {
            agent: self.agent.clone(),
            authorization: self.authorization.clone(),
        }))
    }
}
