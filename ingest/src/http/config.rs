//! The `[http]` section, its errors, and the upload token.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use ruaflow_schema::{Secret, SecretError};

/// The environment variable that supplies the upload token when the config names none.
pub const TOKEN_ENV: &str = "RUAFLOW_HTTP_TOKEN";

/// The `[http]` section: where the endpoint listens and how it guards itself. Every
/// limit has a default that holds against a stranger on the internet; raise them for a
/// trusted network only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port to listen on, e.g. `"0.0.0.0:8443"`. Plain HTTP unless
    /// `tls_cert` and `tls_key` are set (or a TLS proxy in front provides RFC 8460's HTTPS).
    pub listen: SocketAddr,
    /// Certificate chain (PEM) to serve HTTPS with; needs `tls_key`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Bearer token required by `POST /v1/reports`: `"VALUE"`, `{ file = "PATH" }` or
    /// `{ env = "NAME" }` (see [`Secret`]); without it, the `RUAFLOW_HTTP_TOKEN`
    /// environment variable. Prefer a file or the environment to keep it out of the config.
    #[serde(default)]
    pub token: Option<Secret>,
    /// Largest request body accepted, in bytes; larger bodies are answered 413. Default:
    /// `[limits] max_input_bytes` (32 MiB), the largest input the pipeline reads.
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// Request bodies held in memory at once, all requests together, in bytes (128 MiB).
    /// A request that would pass it is answered 503 at once (the client retries).
    #[serde(default = "default_max_inflight_body_bytes")]
    pub max_inflight_body_bytes: u64,
    /// Connections open at once (512). When all are taken, new ones wait in the
    /// kernel's backlog: no file descriptor is spent on them.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Connections open at once from one client address (IPv6: one /64) (32); more are
    /// closed as soon as they are accepted.
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: u32,
    /// How long a client has to send a request's headers, and how long an idle
    /// keep-alive connection stays open, in milliseconds (10 s).
    #[serde(default = "default_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// How long a client has to send a whole request body, in milliseconds (60 s);
    /// after that the answer is 408.
    #[serde(default = "default_body_timeout_ms")]
    pub body_timeout_ms: u64,
    /// POSTs allowed per client IP (IPv6: per /64) per minute, as a token bucket that
    /// allows a burst of this size; 0 disables the limit.
    #[serde(default = "default_rate_limit_per_minute")]
    pub rate_limit_per_minute: u32,
    /// How long a POST waits for the store to commit its body, in milliseconds, before
    /// it is answered 503 (the client retries).
    #[serde(default = "default_ack_timeout_ms")]
    pub ack_timeout_ms: u64,
}

fn default_max_inflight_body_bytes() -> u64 {
    128 << 20
}

fn default_max_connections() -> u32 {
    512
}

fn default_max_connections_per_client() -> u32 {
    32
}

fn default_header_timeout_ms() -> u64 {
    10_000
}

fn default_body_timeout_ms() -> u64 {
    60_000
}

fn default_rate_limit_per_minute() -> u32 {
    600
}

fn default_ack_timeout_ms() -> u64 {
    30_000
}

/// What can go wrong setting up or running the endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// A config value is out of range or contradicts another.
    #[error("invalid [http] config: {0}")]
    Config(&'static str),
    /// The token could not be read.
    #[error("cannot read the [http] token: {0}")]
    Token(#[from] SecretError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("http server failed: {0}")]
    Serve(std::io::Error),
    /// The TLS certificate or key could not be used.
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

impl HttpConfig {
    /// Checks the values that need no IO. Called when the config file is loaded.
    pub fn validate(&self) -> Result<(), HttpError> {
        if self.max_body_bytes == Some(0) {
            return Err(HttpError::Config("max_body_bytes must be above 0"));
        }
        if self.max_inflight_body_bytes < self.max_body_bytes.unwrap_or(0) {
            return Err(HttpError::Config("max_inflight_body_bytes must be at least max_body_bytes"));
        }
        if self.max_connections == 0 || self.max_connections_per_client == 0 {
            return Err(HttpError::Config("max_connections and max_connections_per_client must be above 0"));
        }
        if self.ack_timeout_ms == 0 || self.header_timeout_ms == 0 || self.body_timeout_ms == 0 {
            return Err(HttpError::Config(
                "ack_timeout_ms, header_timeout_ms and body_timeout_ms must be above 0",
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(HttpError::Config("set both tls_cert and tls_key, or neither"));
        }
        Ok(())
    }

    /// The upload token, read once at start: `token`, else the `RUAFLOW_HTTP_TOKEN`
    /// environment variable; `None` when neither is set (then `/v1/reports` refuses
    /// every upload with 401).
    pub fn resolve_token(&self) -> Result<Option<Token>, HttpError> {
        let secret = match &self.token {
            Some(secret) => secret.clone(),
            None if std::env::var_os(TOKEN_ENV).is_some_and(|v| !v.is_empty()) => Secret::env(TOKEN_ENV),
            None => return Ok(None),
        };
        Ok(Some(Token::new(secret.expose()?)))
    }
}

/// The upload token, resolved: redacted in `Debug` (it is a [`Secret`]), compared in
/// constant time.
#[derive(Debug, Clone)]
pub struct Token(Secret);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(Secret::value(token))
    }

    /// True when `presented` is this token. Time depends on the length only.
    pub(super) fn matches(&self, presented: &[u8]) -> bool {
        let Ok(expected) = self.0.expose() else { return false };
        let expected = expected.as_bytes();
        expected.len() == presented.len()
            && expected.iter().zip(presented).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_json(json: &str) -> Result<HttpConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn config_defaults_validation_and_redaction() {
        let config: HttpConfig =
            from_json(r#"{"listen": "127.0.0.1:8080", "token": "s3cret"}"#).expect("parses");
        assert_eq!(config.max_body_bytes, None, "derived from [limits] max_input_bytes");
        assert_eq!(config.rate_limit_per_minute, 600);
        assert_eq!((config.max_connections, config.header_timeout_ms), (512, 10_000));
        config.validate().expect("valid");
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret") && debug.contains("[redacted]"), "{debug}");
        assert!(!format!("{:?}", config.resolve_token().expect("token")).contains("s3cret"));

        assert!(from_json(r#"{"listen": "127.0.0.1:8080", "max_body_mb": 1}"#).is_err(), "unknown key");
        let from_file: HttpConfig =
            from_json(r#"{"listen": "127.0.0.1:8080", "token": {"file": "/nonexistent/token"}}"#)
                .expect("parses");
        assert!(matches!(from_file.resolve_token(), Err(HttpError::Token(_))), "a missing file is an error");
        let small: HttpConfig = from_json(
            r#"{"listen": "127.0.0.1:8080", "max_body_bytes": 100, "max_inflight_body_bytes": 10}"#,
        )
        .expect("parses");
        assert!(small.validate().is_err(), "in-flight bytes below one body");
    }

    #[test]
    fn tokens_compare_exactly() {
        let token = Token::new("abc");
        assert!(token.matches(b"abc"));
        assert!(!token.matches(b"abd"));
        assert!(!token.matches(b"ab"));
        assert!(!token.matches(b""));
    }
}
