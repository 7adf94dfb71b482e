//! One blocking HTTP POST per alert and endpoint, with retries.
//!
//! Input: a [`Destination`] and a JSON body. Output: `Ok` once the endpoint answered 2xx,
//! or the [`SinkError`] that made us give up.
//! Invariant: only retriable errors (5xx, 408, 429, timeouts, connection errors) are
//! retried, at most `retries` times with exponential backoff (`retry`); any other
//! answer is permanent and returned at once. URLs never reach logs or errors whole:
//! a Slack webhook's path is its secret, so only [`origin`] is shown.

use std::io::Read;
use std::time::Duration;

use tracing::warn;
use ureq::http::Uri;

use super::retry::with_retries;
use super::SinkError;

/// How much of an error answer's body goes into [`SinkError::Status`], in bytes.
const MAX_ERROR_BODY_BYTES: u64 = 512;

/// Where one endpoint's POSTs go.
pub(crate) struct Destination {
    /// The full URL, used only for the request.
    pub url: String,
    /// Sent as `Authorization: Bearer …` when set; read at each attempt.
    pub bearer_token: Option<ruaflow_schema::secret::Secret>,
    /// What logs show: `webhook https://hooks.slack.com/…`.
    pub label: String,
}

/// A blocking client shared by every endpoint; lives on the sink thread.
pub(crate) struct Client {
    agent: ureq::Agent,
    retries: u32,
}

impl Client {
    /// `timeout` bounds each attempt as a whole (resolve, connect, send, answer).
    pub fn new(timeout: Duration, retries: u32) -> Client {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // Statuses are classified below, not turned into `ureq::Error::StatusCode`.
            .http_status_as_error(false)
            // A POST is never followed to another URL: a redirect is a misconfigured
            // endpoint and is reported as a permanent 3xx.
            .max_redirects(0)
            .user_agent(concat!("ruaflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Client { agent, retries }
    }

    /// POSTs `body` until it is accepted, a permanent error occurs, or `retries` retries
    /// are spent (see [`with_retries`]); each failed attempt is logged at WARN.
    pub fn deliver(
        &self,
        dest: &Destination,
        body: &[u8],
        pause: impl FnMut(Duration) -> bool,
    ) -> Result<(), SinkError> {
        let failed = |err: &SinkError, attempt: u32, delay: Duration| {
            warn!(
                endpoint = %dest.label,
                attempt,
                retry_in_ms = delay.as_millis() as u64,
                error = %err,
                "alert delivery failed, will retry"
            );
        };
        with_retries(self.retries, || self.post(dest, body), failed, pause)
    }

    /// One attempt.
    fn post(&self, dest: &Destination, body: &[u8]) -> Result<(), SinkError> {
        let mut request = self.agent.post(&dest.url).content_type("application/json");
        if let Some(secret) = &dest.bearer_token {
            let token = secret
                .expose()
                .map_err(|e| e.to_string())
                .and_then(|t| {
                    if is_header_token(&t) {
                        Ok(t)
                    } else {
                        Err(format!("the token from {secret} is not printable ascii without spaces"))
                    }
                })
                .map_err(|reason| SinkError::Token { endpoint: dest.label.clone(), reason })?;
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let mut response = request.send(body)?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        // Best effort: the answer's reason helps the operator (Slack answers
        // `invalid_payload`, Alertmanager the validation error) but is not required.
        let mut start = Vec::new();
        let _ = response.body_mut().as_reader().take(MAX_ERROR_BODY_BYTES).read_to_end(&mut start);
        Err(SinkError::Status { status, body: String::from_utf8_lossy(&start).trim().to_owned() })
    }
}

/// A bearer token fit for a header: visible ASCII (a newline would split the request).
pub(crate) fn is_header_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())
}

/// Checks that `url` is an absolute `http://` or `https://` URL with a host.
pub(crate) fn validate_url(field: String, url: &str) -> Result<(), SinkError> {
    let uri: Uri =
        url.parse().map_err(|_| SinkError::Config { field: field.clone(), reason: "not a url" })?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(SinkError::Config { field, reason: "url must start with http:// or https://" });
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(SinkError::Config { field, reason: "url has no host" });
    }
    Ok(())
}

/// The part of a URL safe to log: scheme, host and port, with `/…` standing for a path
/// (Slack and Teams webhook paths are credentials; userinfo is dropped too).
pub(crate) fn origin(url: &str) -> String {
    let Ok(uri) = url.parse::<Uri>() else { return "<invalid url>".to_owned() };
    let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
        return "<invalid url>".to_owned();
    };
    let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    let path = if uri.path_and_query().is_some_and(|p| p.as_str() != "/") { "/…" } else { "" };
    format!("{scheme}://{host}{port}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        let status = |status| SinkError::Status { status, body: String::new() };
        for retriable in [500, 502, 503, 408, 429] {
            assert!(status(retriable).is_retriable(), "{retriable}");
        }
        for permanent in [400, 401, 403, 404, 301, 413] {
            assert!(!status(permanent).is_retriable(), "{permanent}");
        }
        assert!(SinkError::Request(ureq::Error::HostNotFound).is_retriable());
        assert!(!SinkError::Request(ureq::Error::BadUri("x".into())).is_retriable());
    }

    #[test]
    fn origin_hides_paths_and_userinfo() {
        assert_eq!(origin("https://hooks.slack.com/services/T0/B0/SECRET"), "https://hooks.slack.com/…");
        assert_eq!(origin("http://user:pw@127.0.0.1:9093"), "http://127.0.0.1:9093");
        assert_eq!(origin("http://127.0.0.1:9093/"), "http://127.0.0.1:9093");
        assert_eq!(origin("no url"), "<invalid url>");
    }

    #[test]
    fn urls_are_validated() {
        assert!(validate_url("u".into(), "https://example.com/hook").is_ok());
        assert!(validate_url("u".into(), "http://127.0.0.1:9093").is_ok());
        for bad in ["ftp://example.com/", "example.com/hook", "http://", "not a url", ""] {
            assert!(validate_url("u".into(), bad).is_err(), "{bad:?}");
        }
    }
}
