//! One SMTP submission: connect (implicit TLS or STARTTLS), AUTH, MAIL, RCPT, DATA, QUIT.
//!
//! Input: a [`Session`] (where and how) and one message. Output: `Ok` once the server
//! accepted the message for every recipient, or a [`SinkError`] saying which step failed
//! in the server's own words.
//! Invariant: with TLS configured, nothing but EHLO and STARTTLS is sent before the
//! handshake succeeded (STARTTLS is required, never opportunistic), and the password is
//! read from its [`Secret`] at each attempt and never logged.
//!
//! The steps are lettre's `SmtpConnection` rather than its `SmtpTransport`, so that a
//! refused login, a TLS failure and a refused recipient are told apart.

use std::error::Error as _;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{SmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use ruaflow_schema::secret::Secret;
use ruaflow_schema::text::escape_unsafe;

use super::EmailTls;
use crate::sink::SinkError;

/// The mechanisms offered, in order of preference: PLAIN sends the password in one
/// step; LOGIN is what older servers (and Exchange) offer. Both only inside TLS.
const MECHANISMS: &[Mechanism] = &[Mechanism::Plain, Mechanism::Login];

/// How much of a server's answer an error keeps, in characters.
const MAX_REASON_CHARS: usize = 512;

/// A login: the username and where its password is.
pub(super) struct Login {
    pub username: String,
    pub password: Secret,
}

/// Where and how one target submits.
pub(super) struct Session {
    /// The host name connected to and checked in the certificate.
    pub host: String,
    pub port: u16,
    /// `host:port`, for errors.
    pub server: String,
    /// `None` for cleartext.
    pub tls: Option<(EmailTls, TlsParameters)>,
    pub login: Option<Login>,
    /// Bounds connecting and each answer.
    pub timeout: Duration,
}

impl Session {
    /// Submits `message` (already formatted) to the envelope's recipients.
    pub fn submit(&self, envelope: &Envelope, message: &[u8]) -> Result<(), SinkError> {
        // The EHLO name: this host's name (lettre's `hostname` feature), as RFC 5321
        // §4.1.4 wants.
        let hello = ClientId::default();
        let wrapper = match &self.tls {
            Some((EmailTls::Implicit, parameters)) => Some(parameters),
            _ => None,
        };
        let mut conn = SmtpConnection::connect(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &hello,
            wrapper,
            None,
        )
        .map_err(|e| self.failure(&e))?;
        let result = self.transaction(&mut conn, &hello, envelope, message);
        // QUIT after success, and after a refusal too: the session is still in sync.
        // After a network error there is nobody to say it to; `abort` just closes.
        match &result {
            Ok(()) | Err(SinkError::SmtpRefused { .. } | SinkError::SmtpLogin { .. }) => {
                let _ = conn.quit();
            }
            Err(_) => conn.abort(),
        }
        result
    }

    fn transaction(
        &self,
        conn: &mut SmtpConnection,
        hello: &ClientId,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<(), SinkError> {
        if let Some((EmailTls::Starttls, parameters)) = &self.tls {
            if !conn.can_starttls() {
                return Err(SinkError::SmtpTls {
                    server: self.server.clone(),
                    reason: "the server does not offer STARTTLS (tls = \"implicit\" for port 465)".into(),
                });
            }
            conn.starttls(parameters, hello).map_err(|e| self.failure(&e))?;
        }
        if let Some(login) = &self.login {
            let password = login.password.expose().map_err(|source| SinkError::SmtpSecret {
                username: login.username.clone(),
                server: self.server.clone(),
                source,
            })?;
            let credentials = Credentials::new(login.username.clone(), password);
            conn.auth(MECHANISMS, &credentials).map_err(|e| match self.failure(&e) {
                // An answer to AUTH, or no mechanism in common: the login is refused.
                SinkError::SmtpRefused { reason, .. } => SinkError::SmtpLogin {
                    username: login.username.clone(),
                    server: self.server.clone(),
                    reason,
                },
                _ if e.is_client() => SinkError::SmtpLogin {
                    username: login.username.clone(),
                    server: self.server.clone(),
                    reason: format!("the server offers neither AUTH PLAIN nor AUTH LOGIN ({})", reason(&e)),
                },
                other => other,
            })?;
        }
        conn.send(envelope, message).map_err(|e| self.failure(&e))?;
        Ok(())
    }

    /// Classifies a failed step: a negative answer (4xx transient, 5xx permanent), TLS
    /// (lettre's TLS errors, and a failed handshake, which rustls reports through the
    /// stream as `InvalidData`), a timeout, or the network.
    fn failure(&self, err: &lettre::transport::smtp::Error) -> SinkError {
        let server = self.server.clone();
        if let Some(code) = err.status() {
            let reason = format!("{code} {}", reason(err));
            return SinkError::SmtpRefused { server, reason, transient: err.is_transient() };
        }
        match io_kind(err) {
            _ if err.is_tls() => SinkError::SmtpTls { server, reason: reason(err) },
            Some(std::io::ErrorKind::InvalidData) => SinkError::SmtpTls { server, reason: reason(err) },
            // A read or write past the socket's timeout is `WouldBlock` on Linux.
            Some(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => SinkError::SmtpConnect {
                server,
                reason: format!("no answer within {} ms", self.timeout.as_millis()),
            },
            _ => SinkError::SmtpConnect { server, reason: reason(err) },
        }
    }
}

/// The kind of the first I/O error in `err`'s chain.
fn io_kind(err: &lettre::transport::smtp::Error) -> Option<std::io::ErrorKind> {
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = e.source();
    }
    None
}

/// The innermost useful words of `err`: the server's answer, or the network's or TLS
/// library's reason; escaped (it is printed in logs) and capped.
fn reason(err: &lettre::transport::smtp::Error) -> String {
    let text = match err.source() {
        Some(source) => source.to_string(),
        None => err.to_string(),
    };
    let text = escape_unsafe(text.trim());
    match text.char_indices().nth(MAX_REASON_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}
