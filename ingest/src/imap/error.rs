//! What goes wrong with a mailbox, in words a postmaster can act on.
//!
//! Every error names the account or the server with its port, and quotes what the server
//! said without async-imap's internal formatting (`code: None, info: Some("…")`). Each is
//! either permanent — only a person can fix it (a refused login, a missing folder, an
//! unreadable secret) — or transient (the network, a restart), which decides how often
//! it is retried and how loudly it is reported.

use std::path::PathBuf;

use ruaflow_schema::SecretError;

use super::oauth2::TokenError;

/// What can go wrong setting up or talking to the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImapError {
    /// A config value is out of range or contradicts another.
    #[error("invalid [[imap]] config: {0}")]
    Config(&'static str),
    /// A password or OAuth2 secret could not be read.
    #[error("imap secret: {0}")]
    Secret(#[from] SecretError),
    /// The CA file could not be read or holds no usable certificate.
    #[error("cannot use ca_file {path}: {reason}")]
    CaFile {
        /// The configured file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// TCP, TLS, STARTTLS or the greeting failed.
    #[error("cannot connect to IMAP server {server}: {reason}")]
    Connect {
        /// `host:port`.
        server: String,
        /// Why.
        reason: String,
    },
    /// The server refused the login (wrong password, expired or revoked token, an
    /// account that may not use IMAP or this way of logging in).
    #[error("IMAP login refused for {account}: {reason}")]
    Refused {
        /// `user at host:port`.
        account: String,
        /// What the server said, and a hint when one is known.
        reason: String,
    },
    /// The folder to read does not exist.
    #[error("IMAP folder \"{folder}\" not found for {account}; the folders there are: {existing}")]
    NoFolder {
        /// The configured `folder`.
        folder: String,
        /// `user at host:port`.
        account: String,
        /// The folders the server listed.
        existing: String,
    },
    /// The session failed after the login: the connection dropped, or the server
    /// refused a command.
    #[error("IMAP session with {server} failed: {reason}")]
    Session {
        /// `host:port`.
        server: String,
        /// Why.
        reason: String,
    },
    /// No OAuth2 access token could be obtained.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The pipeline is gone (shutting down): nothing more can be delivered.
    #[error("the pipeline stopped")]
    PipelineClosed,
}

impl ImapError {
    /// Whether only a person can fix it (a config or credential problem): such errors
    /// are retried slowly in watch mode and not at all by a one-shot read.
    pub fn is_permanent(&self) -> bool {
        match self {
            ImapError::Config(_)
            | ImapError::Secret(_)
            | ImapError::CaFile { .. }
            | ImapError::Refused { .. }
            | ImapError::NoFolder { .. } => true,
            ImapError::Token(err) => err.is_permanent(),
            ImapError::Connect { .. } | ImapError::Session { .. } | ImapError::PipelineClosed => false,
        }
    }

    /// A session error on `server` from what async-imap reported.
    pub(super) fn session(server: &str, err: async_imap::error::Error) -> Self {
        ImapError::Session { server: server.to_owned(), reason: server_said(&err) }
    }
}

/// What the server said (or what happened to the connection), without async-imap's
/// `Debug` rendering: `AUTHENTICATIONFAILED (Authentication failed.)` for
/// `NO [AUTHENTICATIONFAILED] Authentication failed.`.
pub(super) fn server_said(err: &async_imap::error::Error) -> String {
    use async_imap::error::Error;
    match err {
        Error::No(text) => response_text("NO", text),
        Error::Bad(text) => response_text("BAD", text),
        Error::ConnectionLost => "the server closed the connection".to_owned(),
        Error::Io(err) => err.to_string(),
        other => other.to_string(),
    }
}

/// async-imap renders a tagged NO/BAD as `code: {code:?}, info: {information:?}`;
/// imap-proto parses only the response codes of RFC 3501 and leaves others
/// (`[AUTHENTICATIONFAILED]`, RFC 5530) at the start of the text. Both come out as
/// `CODE (text)`.
fn response_text(status: &str, rendered: &str) -> String {
    let code = rendered.strip_prefix("code: Some(").map(|rest| {
        rest.split(|c: char| !c.is_ascii_alphanumeric()).next().unwrap_or_default().to_uppercase()
    });
    let info = rendered.split_once("info: Some(\"").map(|(_, rest)| {
        let quoted = rest.strip_suffix("\")").unwrap_or(rest);
        quoted.replace("\\\"", "\"").replace("\\\\", "\\")
    });
    let (code, text) = match (code, info) {
        (Some(code), info) => (Some(code), info),
        (None, Some(info)) => match info.strip_prefix('[').and_then(|rest| rest.split_once(']')) {
            Some((code, text)) => (Some(code.to_owned()), Some(text.trim().to_owned())),
            None => (None, Some(info)),
        },
        (None, None) => (None, None),
    };
    match (code, text.filter(|t| !t.is_empty())) {
        (Some(code), Some(text)) => format!("{code} ({text})"),
        (Some(code), None) => code,
        (None, Some(text)) => format!("{status} ({text})"),
        (None, None) => status.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_imap::error::Error;

    #[test]
    fn server_words_without_debug_rendering() {
        // What async-imap makes of Dovecot's `NO [AUTHENTICATIONFAILED] Authentication failed.`
        let dovecot =
            Error::No("code: None, info: Some(\"[AUTHENTICATIONFAILED] Authentication failed.\")".into());
        assert_eq!(server_said(&dovecot), "AUTHENTICATIONFAILED (Authentication failed.)");
        // Gmail: `NO [ALERT] Application-specific password required: https://…`
        let gmail =
            Error::No("code: Some(Alert), info: Some(\"Application-specific password required\")".into());
        assert_eq!(server_said(&gmail), "ALERT (Application-specific password required)");
        // Microsoft 365 with basic authentication switched off: `NO LOGIN failed.`
        let microsoft = Error::No("code: None, info: Some(\"LOGIN failed.\")".into());
        assert_eq!(server_said(&microsoft), "NO (LOGIN failed.)");
        let quoted = Error::Bad("code: None, info: Some(\"Error in \\\"IMAP\\\" command\")".into());
        assert_eq!(server_said(&quoted), "BAD (Error in \"IMAP\" command)");
        assert_eq!(server_said(&Error::No("code: None, info: None".into())), "NO");
        assert_eq!(server_said(&Error::ConnectionLost), "the server closed the connection");
    }
}
