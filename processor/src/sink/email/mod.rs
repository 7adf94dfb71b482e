//! Email alerts: one message per alert, submitted over SMTP to every configured target.
//!
//! Input: an [`Alert`] and an [`EmailConfig`] (`[[alerts.email]]`). Output: one message to
//! all the target's recipients, accepted by its submission server (STARTTLS on 587,
//! implicit TLS on 465, AUTH PLAIN or LOGIN).
//! Invariant: the password is read at each attempt and never logged; failures are
//! classified ([`SinkError::is_retriable`]), retried with the sinks' backoff, and told
//! once per problem (`trouble`), not once per attempt.
//!
//! Layout: `message` (subject, body, Message-ID, headers), `smtp` (one SMTP session and
//! its errors in the server's words).

mod message;
mod smtp;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::client::{Certificate, TlsParameters};
use ruaflow_schema::alert::Alert;
use ruaflow_schema::secret::Secret;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;

use super::retry::with_retries;
use super::trouble::Trouble;
use super::SinkError;

/// The largest CA file read, in bytes: a bundle of a few certificates, not a document.
const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

/// The environment variable the password is read from when `username` is set and
/// `password` is not.
pub const DEFAULT_PASSWORD_ENV: &str = "RUAFLOW_SMTP_PASSWORD";

/// One email target: a submission server and the recipients of every alert.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The submission server's host name (or IP address); its TLS certificate must
    /// name it.
    pub server: String,
    /// The port; by default 587 with `starttls`, 465 with `implicit`, 25 with `none`.
    #[serde(default)]
    pub port: Option<u16>,
    /// How the connection is encrypted; `starttls` by default.
    #[serde(default)]
    pub tls: EmailTls,
    /// PEM certificates trusted besides the public roots (a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The login; when set, AUTH (PLAIN or LOGIN, as the server offers) before sending.
    #[serde(default)]
    pub username: Option<String>,
    /// The password: `"…"`, `{ file = "PATH" }` or `{ env = "NAME" }`, read at each
    /// attempt; `{ env = "RUAFLOW_SMTP_PASSWORD" }` when `username` is set without it.
    #[serde(default)]
    pub password: Option<Secret>,
    /// The sender: `ruaflow@example.com` or `ruaflow <ruaflow@example.com>`. Its domain
    /// also ends every Message-ID.
    pub from: String,
    /// The recipients; one message goes to all of them.
    pub to: Vec<String>,
    /// Time limit for connecting and for each answer of the server, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    30_000
}

impl fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `Secret`'s Debug shows where the password is, never the password.
        f.debug_struct("EmailConfig")
            .field("server", &self.server)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// How an email target's connection is encrypted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailTls {
    /// Plain SMTP upgraded with STARTTLS (RFC 3207), required: a server that does not
    /// offer it is an error, never a cleartext fallback. Port 587 by default.
    #[default]
    Starttls,
    /// TLS from the first byte (RFC 8314), port 465 by default.
    Implicit,
    /// No encryption, for a relay on the same host or a trusted network; no AUTH then.
    None,
}

impl EmailConfig {
    /// The port used: the configured one, or the default of the TLS mode.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            EmailTls::Starttls => 587,
            EmailTls::Implicit => 465,
            EmailTls::None => 25,
        })
    }

    /// Checks every value but the CA file (read by [`Mailer::new`]) and returns the
    /// sender and the recipients; `i` is the target's place in `email`, for the error.
    pub(crate) fn validate(&self, i: usize) -> Result<(Mailbox, Vec<Mailbox>), SinkError> {
        let err = |name: &str, reason| Err(SinkError::Config { field: format!("email[{i}].{name}"), reason });
        if self.server.is_empty() || self.server.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return err("server", "must be a host name or address");
        }
        // `smtp.example.com:587` is a common slip; an IPv6 address is the one name with colons.
        if self.server.contains(':') && self.server.parse::<std::net::IpAddr>().is_err() {
            return err("server", "a host name without the port (the port goes in `port`)");
        }
        if self.port == Some(0) {
            return err("port", "must be positive");
        }
        if self.timeout_ms == 0 {
            return err("timeout_ms", "must be positive");
        }
        const NOT_AN_ADDRESS: &str = "not an email address (user@example.com or \"Name <user@example.com>\")";
        let Some(from) = parse_mailbox(&self.from) else { return err("from", NOT_AN_ADDRESS) };
        if self.to.is_empty() {
            return err("to", "needs at least one recipient");
        }
        let Some(to) = self.to.iter().map(|to| parse_mailbox(to)).collect::<Option<Vec<_>>>() else {
            return err("to", NOT_AN_ADDRESS);
        };
        match (&self.username, &self.password) {
            (None, Some(_)) => return err("password", "set without a username"),
            (Some(user), _) if user.is_empty() || user.chars().any(char::is_control) => {
                return err("username", "must be non-empty, without control characters");
            }
            (Some(_), _) if self.tls == EmailTls::None => {
                return err(
                    "username",
                    "a password is never sent without TLS: use tls = \"starttls\" or \"implicit\"",
                );
            }
            _ => {}
        }
        Ok((from, to))
    }
}

/// A mailbox from the config, with the ASCII control characters a header must not carry
/// refused (lettre's parser is lenient about them).
fn parse_mailbox(text: &str) -> Option<Mailbox> {
    if text.chars().any(char::is_control) {
        return None;
    }
    text.parse().ok()
}

/// One email target, ready to send: the config checked, the CA file read, the TLS
/// parameters built. Lives on the sink thread.
pub(crate) struct Mailer {
    session: smtp::Session,
    from: Mailbox,
    to: Vec<Mailbox>,
    retries: u32,
    trouble: Trouble,
    /// What logs show: `email smtp.example.com:587`.
    pub label: String,
}

impl Mailer {
    /// Builds target `i` of the config; fails on an unusable value or CA file.
    pub fn new(config: &EmailConfig, i: usize, retries: u32) -> Result<Mailer, SinkError> {
        let (from, to) = config.validate(i)?;
        let server = format!("{}:{}", config.server, config.port());
        let tls = match config.tls {
            EmailTls::None => None,
            mode => Some((mode, tls_parameters(config, i)?)),
        };
        let login = config.username.as_ref().map(|username| smtp::Login {
            username: username.clone(),
            password: config.password.clone().unwrap_or_else(|| Secret::env(DEFAULT_PASSWORD_ENV)),
        });
        let session = smtp::Session {
            host: config.server.clone(),
            port: config.port(),
            server: server.clone(),
            tls,
            login,
            timeout: Duration::from_millis(config.timeout_ms),
        };
        let label = format!("email {server}");
        Ok(Mailer { session, from, to, retries, trouble: Trouble::new(label.clone()), label })
    }

    /// Sends `alert` until the server accepts it, a permanent error occurs, or the
    /// retries are spent; `pause` as in [`with_retries`]. The message is built once, so
    /// every attempt sends the same bytes (and the same Message-ID).
    pub fn deliver(&mut self, alert: &Alert, pause: impl FnMut(Duration) -> bool) -> Result<(), SinkError> {
        let mail = message::compose(alert, &self.from, &self.to, ruaflow_schema::clock::now())?;
        let bytes = mail.formatted();
        let (session, trouble) = (&self.session, &mut self.trouble);
        let result = with_retries(
            self.retries,
            || session.submit(mail.envelope(), &bytes),
            |err, _, delay| trouble.failed(err, Some(delay)),
            pause,
        );
        match &result {
            Ok(()) => self.trouble.recovered(),
            Err(err) => self.trouble.gave_up(err),
        }
        result
    }
}

/// The TLS parameters of target `i`: the public roots, plus the CA file's certificates.
fn tls_parameters(config: &EmailConfig, i: usize) -> Result<TlsParameters, SinkError> {
    let mut builder = TlsParameters::builder(config.server.clone());
    if let Some(path) = &config.ca_file {
        let err = |reason: String| SinkError::CaFile {
            field: format!("email[{i}].ca_file"),
            path: path.clone(),
            reason,
        };
        let pem = read_capped(path).map_err(err)?;
        let ders = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(format!("not PEM: {e}")))?;
        if ders.is_empty() {
            return Err(err("holds no PEM certificate".into()));
        }
        for der in ders {
            let certificate = Certificate::from_der(der.to_vec()).map_err(|e| err(e.to_string()))?;
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| SinkError::SmtpTls { server: config.server.clone(), reason: e.to_string() })
}

fn read_capped(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_CA_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(format!("larger than {MAX_CA_FILE_BYTES} bytes"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_like: serde_json::Value) -> EmailConfig {
        serde_json::from_value(toml_like).expect("email config")
    }

    fn minimal() -> serde_json::Value {
        serde_json::json!({"server": "smtp.example.com", "from": "ruaflow@example.com", "to": ["postmaster@example.com"]})
    }

    #[test]
    fn defaults_are_starttls_on_587_and_30_s() {
        let c = config(minimal());
        assert_eq!((c.tls, c.port(), c.timeout_ms), (EmailTls::Starttls, 587, 30_000));
        let (from, to) = c.validate(0).expect("valid");
        assert_eq!((from.email.to_string(), to.len()), ("ruaflow@example.com".to_owned(), 1));
        let ipv6 = EmailConfig { server: "::1".into(), ..c.clone() };
        assert!(ipv6.validate(0).is_ok(), "an IPv6 address is a server");
        let mut implicit = c.clone();
        implicit.tls = EmailTls::Implicit;
        assert_eq!(implicit.port(), 465);
    }

    #[test]
    fn unusable_values_are_refused_before_connecting() {
        let cases = [
            (serde_json::json!({"server": ""}), "email[0].server"),
            (serde_json::json!({"server": "smtp.example.com\r\nRCPT TO:<x@y>"}), "email[0].server"),
            (serde_json::json!({"server": "smtp.example.com:587"}), "email[0].server"),
            (serde_json::json!({"from": "not an address"}), "email[0].from"),
            (serde_json::json!({"from": "a@example.com\r\nBcc: x@y.z"}), "email[0].from"),
            (serde_json::json!({"to": []}), "email[0].to"),
            (serde_json::json!({"to": ["ok@example.com", "bad"]}), "email[0].to"),
            (serde_json::json!({"password": "x"}), "email[0].password"),
            (serde_json::json!({"username": "u", "tls": "none"}), "email[0].username"),
            (serde_json::json!({"timeout_ms": 0}), "email[0].timeout_ms"),
            (serde_json::json!({"port": 0}), "email[0].port"),
        ];
        for (change, field) in cases {
            let mut value = minimal();
            for (k, v) in change.as_object().expect("object") {
                value[k] = v.clone();
            }
            match config(value).validate(0) {
                Err(SinkError::Config { field: f, .. }) => assert_eq!(f, field, "{change}"),
                other => panic!("{change} gave {other:?}"),
            }
        }
        let mut value = minimal();
        value["ca_file"] = "/nonexistent/ca.pem".into();
        let err = Mailer::new(&config(value), 2, 0).err().expect("a missing CA file");
        assert!(
            err.to_string().contains("email[2].ca_file") && err.to_string().contains("/nonexistent/ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn debug_never_shows_the_password() {
        let mut value = minimal();
        value["username"] = "ruaflow".into();
        value["password"] = "hunter2-smtp".into();
        let c = config(value);
        assert!(c.validate(0).is_ok());
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2-smtp") && debug.contains("redacted"), "{debug}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let mut value = minimal();
        value["pasword"] = "typo".into();
        assert!(serde_json::from_value::<EmailConfig>(value).is_err());
        let mut value = minimal();
        value["tls"] = "ssl".into();
        assert!(serde_json::from_value::<EmailConfig>(value).is_err());
    }
}
