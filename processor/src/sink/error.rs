//! Why an alert could not be delivered, or the sinks could not start, and whether trying
//! again may help ([`SinkError::is_retriable`]).

use std::path::PathBuf;

use ruaflow_schema::secret::SecretError;

/// Why an alert could not be delivered, or the sinks could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// A configuration value is unusable; nothing was started.
    #[error("invalid sink config {field}: {reason}")]
    Config {
        /// The offending field, e.g. `webhooks[0].url`.
        field: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The CA file of an email target cannot be read or holds no certificate; nothing
    /// was started.
    #[error("invalid sink config {field}: cannot use CA file {path}: {reason}")]
    CaFile {
        /// The field, e.g. `email[0].ca_file`.
        field: String,
        /// The configured path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The sink thread could not be spawned.
    #[error("could not spawn the sink thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The alert could not be serialized (a non-finite number in `details`, say).
    #[error("could not encode the alert: {0}")]
    Encode(#[from] serde_json::Error),
    /// The endpoint answered with a status other than 2xx.
    #[error("endpoint answered http {status}: {body}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The start of the answer's body, lossily decoded.
        body: String,
    },
    /// No answer: connection, TLS, timeout or protocol failure.
    #[error("request failed: {0}")]
    Request(#[from] ureq::Error),
    /// The SMTP server could not be reached, or the session broke off (refused
    /// connection, timeout, reset, an answer that is not SMTP).
    #[error("cannot reach SMTP server {server}: {reason}")]
    SmtpConnect {
        /// `host:port`.
        server: String,
        /// What went wrong, from the network or the SMTP client.
        reason: String,
    },
    /// TLS with the SMTP server failed: an untrusted or expired certificate, a name
    /// mismatch, or no STARTTLS where it is required.
    #[error("TLS with SMTP server {server} failed: {reason}")]
    SmtpTls {
        /// `host:port`.
        server: String,
        /// What went wrong.
        reason: String,
    },
    /// The SMTP server refused the login.
    #[error("SMTP login refused for {username} at {server}: {reason}")]
    SmtpLogin {
        /// The configured username.
        username: String,
        /// `host:port`.
        server: String,
        /// The server's answer, or why no mechanism could be used.
        reason: String,
    },
    /// The SMTP password could not be read (a missing file or variable).
    #[error("cannot read the SMTP password for {username} at {server}: {source}")]
    SmtpSecret {
        /// The configured username.
        username: String,
        /// `host:port`.
        server: String,
        /// Why.
        source: SecretError,
    },
    /// A webhook's bearer token could not be read (a missing file or variable), or is
    /// not a valid header value.
    #[error("cannot use the bearer token of {endpoint}: {reason}")]
    Token {
        /// The endpoint's label.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The SMTP server refused the sender, a recipient or the message.
    #[error("SMTP server {server} refused the alert mail: {reason}")]
    SmtpRefused {
        /// `host:port`.
        server: String,
        /// The server's answer.
        reason: String,
        /// A 4xx answer (try again later) rather than a 5xx one.
        transient: bool,
    },
    /// The alert mail could not be built.
    #[error("could not build the alert mail: {0}")]
    Message(String),
}

impl SinkError {
    /// Whether trying again later may succeed: 5xx, 408 (request timeout), 429 (rate
    /// limited), timeouts and connection errors; for email also a 4xx answer, a refused
    /// login and an unreadable password (the password is read again at each attempt, so
    /// a corrected file is picked up). Other 4xx, 3xx, TLS and config errors need an
    /// operator.
    pub fn is_retriable(&self) -> bool {
        match self {
            SinkError::Status { status, .. } => *status >= 500 || matches!(status, 408 | 429),
            SinkError::Request(err) => matches!(
                err,
                ureq::Error::Io(_)
                    | ureq::Error::Timeout(_)
                    | ureq::Error::HostNotFound
                    | ureq::Error::ConnectionFailed
                    | ureq::Error::ConnectProxyFailed(_)
            ),
            SinkError::SmtpConnect { .. }
            | SinkError::SmtpLogin { .. }
            | SinkError::SmtpSecret { .. }
            | SinkError::Token { .. } => true,
            SinkError::SmtpRefused { transient, .. } => *transient,
            SinkError::Config { .. }
            | SinkError::CaFile { .. }
            | SinkError::Spawn(_)
            | SinkError::Encode(_)
            | SinkError::SmtpTls { .. }
            | SinkError::Message(_) => false,
        }
    }
}
