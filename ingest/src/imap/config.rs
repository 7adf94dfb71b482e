//! One `[[imap]]` section: which server, how to log in, which folders.
//!
//! Validated when the config file is loaded ([`ImapConfig::validate`]), before anything
//! connects; secrets are [`Secret`]s, read at each login and never logged.

use std::path::PathBuf;

use serde::Deserialize;

use ruaflow_schema::Secret;

use super::oauth2::{Grant, OAuth2Config};
use super::sasl::Mechanism;
use super::ImapError;

/// The environment variable read for the password when `password` is not set.
pub const PASSWORD_ENV: &str = "RUAFLOW_IMAP_PASSWORD";

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (IMAPS, port 993 by default).
    Implicit,
    /// Plain connection upgraded with STARTTLS before login (port 143 by default).
    Starttls,
    /// No TLS at all: the password crosses the network in clear. Only when set explicitly.
    None,
}

/// How to log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// IMAP LOGIN with `password`.
    Password,
    /// SASL XOAUTH2 with a token from `[imap.oauth2]`.
    Xoauth2,
    /// SASL OAUTHBEARER (RFC 7628) with a token from `[imap.oauth2]`.
    Oauthbearer,
}

/// How a mailbox logs in, resolved from the section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// A password.
    Password(Secret),
    /// A bearer token for this SASL mechanism, from this grant.
    Bearer(Mechanism, Grant),
}

/// One `[[imap]]` section: a mailbox folder to read reports from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapConfig {
    /// Server host name (also the name its TLS certificate must carry).
    pub host: String,
    /// Server port; 993 for `tls = "implicit"`, 143 otherwise.
    #[serde(default)]
    pub port: Option<u16>,
    /// `"implicit"` (default), `"starttls"` or `"none"`.
    #[serde(default = "default_tls")]
    pub tls: TlsMode,
    /// Extra CA certificates (PEM file) trusted on top of the built-in webpki roots, for
    /// a server with a private CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Login name (for OAuth2, the mailbox address).
    pub username: String,
    /// How to log in: `"password"` (the default without `[imap.oauth2]`), `"xoauth2"`
    /// (the default with it) or `"oauthbearer"`.
    #[serde(default)]
    pub auth: Option<AuthMethod>,
    /// The password: `"…"`, `{ file = "PATH" }` or `{ env = "NAME" }`; when unset, the
    /// environment variable `RUAFLOW_IMAP_PASSWORD`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Where OAuth2 access tokens come from (`[imap.oauth2]`), for `auth = "xoauth2"` or
    /// `"oauthbearer"`.
    #[serde(default)]
    pub oauth2: Option<OAuth2Config>,
    /// The folder reports arrive in (`/` separates levels in this and every folder name;
    /// it is translated to the server's hierarchy delimiter).
    #[serde(default = "default_folder")]
    pub folder: String,
    /// Where messages go once their aggregate or TLS reports are stored.
    #[serde(default = "default_processed")]
    pub processed_folder: String,
    /// Where messages holding a DMARC failure (forensic) report go once stored.
    #[serde(default = "default_failures")]
    pub failures_folder: String,
    /// Where messages holding no report go (never enqueued, never deleted).
    #[serde(default = "default_ignored")]
    pub ignored_folder: String,
    /// Where unreadable or oversized messages go (the readable-but-broken ones are also
    /// stored as dead letters first).
    #[serde(default = "default_invalid")]
    pub invalid_folder: String,
    /// Largest message fetched, in bytes (RFC822.SIZE, checked before fetching); larger
    /// ones are moved to `invalid_folder` with a warning. Default: `[limits]
    /// max_input_bytes` (32 MiB), the largest input the pipeline reads.
    #[serde(default)]
    pub max_message_bytes: Option<u64>,
    /// Seconds between checks when the server does not offer IDLE.
    #[serde(default = "default_poll_interval_secs")]
    pub poll_interval_secs: u64,
}

fn default_tls() -> TlsMode {
    TlsMode::Implicit
}
fn default_folder() -> String {
    "INBOX".into()
}
fn default_processed() -> String {
    "ruaflow/processed".into()
}
fn default_failures() -> String {
    "ruaflow/failures".into()
}
fn default_ignored() -> String {
    "ruaflow/ignored".into()
}
fn default_invalid() -> String {
    "ruaflow/invalid".into()
}
fn default_poll_interval_secs() -> u64 {
    60
}

impl ImapConfig {
    /// Checks the values that need no IO. Called when the config file is loaded.
    pub fn validate(&self) -> Result<(), ImapError> {
        if self.host.trim().is_empty() {
            return Err(ImapError::Config("host is empty"));
        }
        if self.username.is_empty() {
            return Err(ImapError::Config("username is empty"));
        }
        if self.port == Some(0) {
            return Err(ImapError::Config("port is 0"));
        }
        let folders = [
            &self.folder,
            &self.processed_folder,
            &self.failures_folder,
            &self.ignored_folder,
            &self.invalid_folder,
        ];
        if folders.iter().any(|f| f.trim().is_empty()) {
            return Err(ImapError::Config("a folder name is empty"));
        }
        if folders.iter().any(|f| f.contains(['"', '\\', '\r', '\n'])) {
            return Err(ImapError::Config("folder names may not hold quotes, backslashes or line breaks"));
        }
        let targets = &folders[1..];
        if targets.contains(&&self.folder) {
            return Err(ImapError::Config("the target folders must differ from folder"));
        }
        if self.max_message_bytes == Some(0) {
            return Err(ImapError::Config("max_message_bytes is 0"));
        }
        if self.poll_interval_secs == 0 {
            return Err(ImapError::Config("poll_interval_secs is 0"));
        }
        self.login().map(drop)
    }

    /// How to log in: the password, or the SASL mechanism and where its tokens come from.
    pub fn login(&self) -> Result<Login, ImapError> {
        let auth = self.auth.unwrap_or(match self.oauth2 {
            Some(_) => AuthMethod::Xoauth2,
            None => AuthMethod::Password,
        });
        let mechanism = match auth {
            AuthMethod::Password if self.oauth2.is_some() => return Err(ImapError::Config(
                "auth = \"password\" does not use [imap.oauth2]: set auth = \"xoauth2\" or \"oauthbearer\"",
            )),
            AuthMethod::Password => {
                let password = self.password.clone().unwrap_or_else(|| Secret::env(PASSWORD_ENV));
                return Ok(Login::Password(password));
            }
            AuthMethod::Xoauth2 => Mechanism::Xoauth2,
            AuthMethod::Oauthbearer => Mechanism::Oauthbearer,
        };
        if self.password.is_some() {
            return Err(ImapError::Config(
                "password is not used with OAuth2 (auth = \"xoauth2\" or \"oauthbearer\")",
            ));
        }
        let Some(oauth2) = &self.oauth2 else {
            return Err(ImapError::Config(
                "auth = \"xoauth2\" or \"oauthbearer\" needs an [imap.oauth2] section",
            ));
        };
        Ok(Login::Bearer(mechanism, oauth2.grant()?))
    }

    /// The port, defaulted from the TLS mode.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(if self.tls == TlsMode::Implicit { 993 } else { 143 })
    }

    /// `host:port` (`[host]:port` for an IPv6 address), how messages name the server.
    pub fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port())
        } else {
            format!("{}:{}", self.host, self.port())
        }
    }

    /// `user at host:port`, how messages name the account.
    pub fn account(&self) -> String {
        format!("{} at {}", self.username, self.server())
    }

    /// `user@host/folder`, the prefix of every origin from this mailbox.
    pub fn mailbox_name(&self) -> String {
        format!("{}@{}/{}", self.username, self.host, self.folder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Result<ImapConfig, toml::de::Error> {
        toml::from_str(&format!("host = \"imap.example.com\"\nusername = \"dmarc\"\n{extra}"))
    }

    #[test]
    fn defaults_validation_and_redaction() {
        let c = config("password = \"hunter2\"").expect("parses");
        c.validate().expect("valid");
        assert_eq!((c.tls, c.port()), (TlsMode::Implicit, 993));
        assert_eq!(c.processed_folder, "ruaflow/processed");
        assert_eq!(c.max_message_bytes, None, "derived from [limits] max_input_bytes");
        assert_eq!(c.account(), "dmarc at imap.example.com:993");
        let v6: ImapConfig = toml::from_str("host = \"2001:db8::1\"\nusername = \"d\"").expect("parses");
        assert_eq!(v6.server(), "[2001:db8::1]:993");
        assert!(!format!("{c:?}").contains("hunter2"), "password redacted in Debug");
        let login = |extra: &str| config(extra).expect("parses").login();
        assert_eq!(login("").expect("login"), Login::Password(Secret::env(PASSWORD_ENV)));
        assert_eq!(
            login("password = { file = \"/etc/ruaflow/imap\" }").expect("login"),
            Login::Password(Secret::file("/etc/ruaflow/imap"))
        );
        let oauth2 = "[oauth2]\ntoken_command = [\"print-token\"]";
        let command = Grant::Command { argv: vec!["print-token".into()] };
        assert_eq!(login(oauth2).expect("login"), Login::Bearer(Mechanism::Xoauth2, command.clone()));
        assert_eq!(
            login(&format!("auth = \"oauthbearer\"\n{oauth2}")).expect("login"),
            Login::Bearer(Mechanism::Oauthbearer, command)
        );
        assert!(login("auth = \"xoauth2\"").is_err(), "OAuth2 without [imap.oauth2]");
        assert!(login(&format!("auth = \"password\"\n{oauth2}")).is_err(), "[imap.oauth2] unused");
        assert!(login(&format!("password = \"p\"\n{oauth2}")).is_err(), "a password unused");
        assert_eq!(config("tls = \"none\"").expect("parses").port(), 143);
        assert!(config("tls = \"plain\"").is_err(), "unknown tls mode");
        assert!(config("folder_name = \"x\"").is_err(), "unknown keys are errors");
        assert!(config("password = { path = \"x\" }").is_err(), "unknown secret form");
        let same = config("processed_folder = \"INBOX\"").expect("parses");
        assert!(same.validate().is_err(), "target equal to the source folder");
    }
}
