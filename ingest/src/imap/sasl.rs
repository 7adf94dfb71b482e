//! SASL mechanisms that carry an OAuth2 bearer token: Google's and Microsoft's XOAUTH2,
//! and OAUTHBEARER (RFC 7628).
//!
//! The client's first message holds the user and the token; when the server refuses the
//! token it first sends a challenge with a JSON error, which the client must answer
//! (OAUTHBEARER with a single `%x01`, RFC 7628 §3.2.3; XOAUTH2 with an empty line)
//! before the final `NO`. The JSON's `status` is kept for the error message.

use serde::Deserialize;

/// Which bearer-token mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mechanism {
    /// `AUTHENTICATE XOAUTH2` (Gmail, Microsoft 365, Dovecot).
    Xoauth2,
    /// `AUTHENTICATE OAUTHBEARER` (RFC 7628; Gmail, Dovecot).
    Oauthbearer,
}

impl Mechanism {
    /// The SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Xoauth2 => "XOAUTH2",
            Mechanism::Oauthbearer => "OAUTHBEARER",
        }
    }
}

/// One authentication exchange: the first answer carries the token, a second challenge
/// is the server's error report.
pub(super) struct BearerExchange<'a> {
    mechanism: Mechanism,
    user: &'a str,
    host: &'a str,
    port: u16,
    token: &'a str,
    sent: bool,
    /// The `status` of the server's error report, when it sent one.
    pub(super) refusal: Option<String>,
}

impl<'a> BearerExchange<'a> {
    pub(super) fn new(mechanism: Mechanism, user: &'a str, host: &'a str, port: u16, token: &'a str) -> Self {
        Self { mechanism, user, host, port, token, sent: false, refusal: None }
    }

    /// The client's first message.
    fn initial_response(&self) -> Vec<u8> {
        let (user, token) = (self.user, self.token);
        match self.mechanism {
            Mechanism::Xoauth2 => format!("user={user}\x01auth=Bearer {token}\x01\x01").into_bytes(),
            Mechanism::Oauthbearer => {
                // GS2 header (RFC 5801): no channel binding, the authorization identity
                // with `,` and `=` escaped as `=2C` and `=3D`.
                let authzid = user.replace('=', "=3D").replace(',', "=2C");
                format!(
                    "n,a={authzid},\x01host={}\x01port={}\x01auth=Bearer {token}\x01\x01",
                    self.host, self.port
                )
                .into_bytes()
            }
        }
    }
}

impl async_imap::Authenticator for &mut BearerExchange<'_> {
    type Response = Vec<u8>;

    fn process(&mut self, challenge: &[u8]) -> Vec<u8> {
        if !self.sent {
            self.sent = true;
            return self.initial_response();
        }
        #[derive(Deserialize)]
        struct Report {
            status: Option<serde_json::Value>,
        }
        let status = serde_json::from_slice::<Report>(challenge).ok().and_then(|r| r.status);
        self.refusal = Some(match status {
            Some(serde_json::Value::String(s)) => s.chars().take(64).collect(),
            Some(other) => other.to_string().chars().take(64).collect(),
            None => "unreadable".to_owned(),
        });
        match self.mechanism {
            Mechanism::Xoauth2 => Vec::new(),
            Mechanism::Oauthbearer => vec![0x01],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_imap::Authenticator;

    #[test]
    fn first_messages_and_error_reports() {
        let mut x =
            BearerExchange::new(Mechanism::Xoauth2, "dmarc@example.com", "imap.example.com", 993, "t0k");
        assert_eq!((&mut x).process(b""), b"user=dmarc@example.com\x01auth=Bearer t0k\x01\x01");
        // Gmail's report for a refused token.
        let gmail = br#"{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}"#;
        assert_eq!((&mut x).process(gmail), b"");
        assert_eq!(x.refusal.as_deref(), Some("400"));

        let mut o = BearerExchange::new(Mechanism::Oauthbearer, "a,b=c", "imap.example.com", 993, "t0k");
        assert_eq!(
            (&mut o).process(b""),
            b"n,a=a=2Cb=3Dc,\x01host=imap.example.com\x01port=993\x01auth=Bearer t0k\x01\x01"
        );
        // Dovecot's report for a token its introspection calls inactive.
        assert_eq!((&mut o).process(br#"{"status":"invalid_token"}"#), b"\x01");
        assert_eq!(o.refusal.as_deref(), Some("invalid_token"));
    }
}
