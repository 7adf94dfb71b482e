//! OAuth2 for IMAP: the `[imap.oauth2]` section, and the access tokens it yields for SASL
//! XOAUTH2 and OAUTHBEARER (`sasl`).
//!
//! A token comes from one of three places ([`Grant`]):
//! - the client-credentials grant of a token endpoint (RFC 6749 §4.4): the Microsoft
//!   identity platform for an app that may read a Microsoft 365 mailbox
//!   (`IMAP.AccessAsApp`), with tenant, client id and client secret;
//! - a refresh token (RFC 6749 §6), Google's and Microsoft's way for a user's consent;
//! - a command that prints one (a token helper the operator already uses).
//!
//! `provider = "microsoft" | "google"` fills in the token endpoint and the scope. Secrets
//! are [`Secret`]s, read when a token is asked for; tokens are renewed before they
//! expire (`token`).

mod token;

use serde::Deserialize;

use ruaflow_schema::Secret;

use super::ImapError;

pub use token::TokenError;
pub(super) use token::TokenSource;

/// Microsoft 365 over IMAP, for an app (client credentials): the `.default` scope of
/// Exchange Online, which carries the `IMAP.AccessAsApp` permission granted to the app.
const MICROSOFT_APP_SCOPE: &str = "https://outlook.office365.com/.default";
/// Microsoft 365 over IMAP, for a user (refresh token); `offline_access` keeps the
/// refresh token coming.
const MICROSOFT_USER_SCOPE: &str = "https://outlook.office365.com/IMAP.AccessAsUser.All offline_access";
/// Google's token endpoint.
const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// A token issuer whose endpoint and scopes ruaflow knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// The Microsoft identity platform (Microsoft 365, Outlook.com); needs `tenant`.
    Microsoft,
    /// Google (Gmail, Google Workspace).
    Google,
}

/// The `[imap.oauth2]` section: where access tokens come from. Set `token_command`, or
/// `refresh_token` (with `client_id`), or `client_secret` (with `client_id`) for the
/// client-credentials grant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    /// `"microsoft"` or `"google"`: the token endpoint and scope are then known;
    /// unset for another issuer (give `token_url`).
    #[serde(default)]
    pub provider: Option<Provider>,
    /// Microsoft: the directory (tenant) ID or a domain of it, e.g.
    /// `"contoso.onmicrosoft.com"`; names the token endpoint.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The token endpoint, `https://…` (`http://` only on loopback). Default from
    /// `provider`.
    #[serde(default)]
    pub token_url: Option<String>,
    /// The application (client) ID.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The client secret: `"…"`, `{ file = "PATH" }` or `{ env = "NAME" }`. Needed for
    /// client credentials; sent with a refresh token when set (Google wants it).
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// A refresh token, as `client_secret`. When the endpoint issues a new one with a
    /// token, the new one is used from then on (kept in memory).
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    /// Space-separated scopes to ask for. Default from `provider` and the grant; none
    /// otherwise.
    #[serde(default)]
    pub scope: Option<String>,
    /// A command that prints an access token (alone, or as JSON with `access_token` and
    /// `expires_in`), as an argument list: no shell. Run at each login that needs a new
    /// token, with a 30 s limit.
    #[serde(default)]
    pub token_command: Option<Vec<String>>,
}

/// Where a mailbox's tokens come from, resolved and checked from [`OAuth2Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// The client-credentials grant of a token endpoint.
    ClientCredentials {
        /// The token endpoint.
        url: String,
        /// The client ID.
        client_id: String,
        /// The client secret.
        client_secret: Secret,
        /// Scopes asked for.
        scope: Option<String>,
    },
    /// The refresh-token grant of a token endpoint.
    RefreshToken {
        /// The token endpoint.
        url: String,
        /// The client ID.
        client_id: String,
        /// The client secret, for a confidential client.
        client_secret: Option<Secret>,
        /// The refresh token configured.
        refresh_token: Secret,
        /// Scopes asked for.
        scope: Option<String>,
    },
    /// A command printing the token.
    Command {
        /// Program and arguments.
        argv: Vec<String>,
    },
}

impl OAuth2Config {
    /// The grant the settings describe, with the provider's endpoint and scope filled in;
    /// an error says which setting is missing or contradicts another.
    pub fn grant(&self) -> Result<Grant, ImapError> {
        let endpoint_keys = [
            self.provider.is_some(),
            self.tenant.is_some(),
            self.token_url.is_some(),
            self.client_id.is_some(),
            self.client_secret.is_some(),
            self.refresh_token.is_some(),
            self.scope.is_some(),
        ];
        if let Some(argv) = &self.token_command {
            if argv.is_empty() || argv[0].trim().is_empty() {
                return Err(ImapError::Config("[imap.oauth2] token_command is empty"));
            }
            if endpoint_keys.iter().any(|set| *set) {
                return Err(ImapError::Config(
                    "[imap.oauth2] token_command takes no token endpoint settings (provider, tenant, token_url, client_id, client_secret, refresh_token, scope)",
                ));
            }
            return Ok(Grant::Command { argv: argv.clone() });
        }
        let url = self.token_url()?;
        let client_id = match self.client_id.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => return Err(ImapError::Config("[imap.oauth2] needs client_id (or token_command)")),
        };
        let user_scope = match self.provider {
            Some(Provider::Microsoft) => Some(MICROSOFT_USER_SCOPE),
            Some(Provider::Google) | None => None,
        };
        if let Some(refresh_token) = &self.refresh_token {
            return Ok(Grant::RefreshToken {
                url,
                client_id,
                client_secret: self.client_secret.clone(),
                refresh_token: refresh_token.clone(),
                scope: self.scope.clone().or(user_scope.map(str::to_owned)),
            });
        }
        if self.provider == Some(Provider::Google) {
            return Err(ImapError::Config(
                "[imap.oauth2] Gmail has no client-credentials grant for IMAP: give refresh_token (or token_command)",
            ));
        }
        let Some(client_secret) = self.client_secret.clone() else {
            return Err(ImapError::Config(
                "[imap.oauth2] needs client_secret (client credentials) or refresh_token (or token_command)",
            ));
        };
        let app_scope = (self.provider == Some(Provider::Microsoft)).then(|| MICROSOFT_APP_SCOPE.to_owned());
        Ok(Grant::ClientCredentials {
            url,
            client_id,
            client_secret,
            scope: self.scope.clone().or(app_scope),
        })
    }

    /// The token endpoint: `token_url`, or the provider's.
    fn token_url(&self) -> Result<String, ImapError> {
        let url =
            match (self.provider, &self.tenant, &self.token_url) {
                (_, _, Some(url)) => url.clone(),
                (Some(Provider::Microsoft), Some(tenant), None) => {
                    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
                    if tenant.is_empty() || !tenant.chars().all(plain) {
                        return Err(ImapError::Config(
                            "[imap.oauth2] tenant is a directory ID or domain (letters, digits, '-', '.')",
                        ));
                    }
                    format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
                }
                (Some(Provider::Microsoft), None, None) => {
                    return Err(ImapError::Config("[imap.oauth2] provider = \"microsoft\" needs tenant"))
                }
                (Some(Provider::Google), _, None) => GOOGLE_TOKEN_URL.to_owned(),
                (None, _, None) => return Err(ImapError::Config(
                    "[imap.oauth2] needs provider (\"microsoft\" or \"google\"), token_url or token_command",
                )),
            };
        if self.tenant.is_some() && self.provider != Some(Provider::Microsoft) {
            return Err(ImapError::Config("[imap.oauth2] tenant applies to provider = \"microsoft\" only"));
        }
        check_token_url(&url)?;
        Ok(url)
    }
}

/// A token endpoint receives secrets: `https://`, or `http://` to this machine only.
fn check_token_url(url: &str) -> Result<(), ImapError> {
    let uri: ureq::http::Uri =
        url.parse().map_err(|_| ImapError::Config("[imap.oauth2] token_url is not a URL"))?;
    let host = uri.host().unwrap_or_default();
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1");
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(()),
        Some("http") if loopback => Ok(()),
        Some("http") => Err(ImapError::Config(
            "[imap.oauth2] token_url must be https:// (plain http:// only to localhost): it receives secrets",
        )),
        _ => Err(ImapError::Config("[imap.oauth2] token_url must be an https:// URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(toml_text: &str) -> Result<Grant, String> {
        let config: OAuth2Config = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        config.grant().map_err(|e| e.to_string())
    }

    #[test]
    fn providers_fill_in_endpoint_and_scope() {
        let microsoft = grant(
            "provider = \"microsoft\"\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"app\"\nclient_secret = { env = \"S\" }",
        );
        assert_eq!(
            microsoft,
            Ok(Grant::ClientCredentials {
                url: "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token".into(),
                client_id: "app".into(),
                client_secret: Secret::env("S"),
                scope: Some("https://outlook.office365.com/.default".into()),
            })
        );
        let microsoft_user = grant(
            "provider = \"microsoft\"\ntenant = \"common\"\nclient_id = \"app\"\nrefresh_token = { file = \"/r\" }",
        );
        assert!(
            matches!(&microsoft_user, Ok(Grant::RefreshToken { scope: Some(s), client_secret: None, .. }) if s.contains("IMAP.AccessAsUser.All")),
            "{microsoft_user:?}"
        );
        let google = grant(
            "provider = \"google\"\nclient_id = \"app\"\nclient_secret = \"s\"\nrefresh_token = { env = \"R\" }",
        );
        assert!(
            matches!(&google, Ok(Grant::RefreshToken { url, scope: None, client_secret: Some(_), .. }) if url == GOOGLE_TOKEN_URL),
            "{google:?}"
        );
        let command = grant("token_command = [\"oama\", \"access\", \"dmarc@example.com\"]");
        assert_eq!(
            command,
            Ok(Grant::Command { argv: vec!["oama".into(), "access".into(), "dmarc@example.com".into()] })
        );
        let own = grant("token_url = \"http://127.0.0.1:8080/token\"\nclient_id = \"a\"\nclient_secret = \"s\"\nscope = \"mail\"");
        assert!(matches!(own, Ok(Grant::ClientCredentials { scope: Some(s), .. }) if s == "mail"));
    }

    #[test]
    fn contradictions_and_gaps_are_named() {
        let refused = |text: &str, needle: &str| {
            let err = grant(text).expect_err(text);
            assert!(err.contains(needle), "{text}: {err}");
        };
        refused("provider = \"microsoft\"\nclient_id = \"a\"\nclient_secret = \"s\"", "needs tenant");
        refused("provider = \"google\"\nclient_id = \"a\"\nclient_secret = \"s\"", "refresh_token");
        refused("token_url = \"https://id.example/token\"\nclient_secret = \"s\"", "client_id");
        refused("token_url = \"https://id.example/token\"\nclient_id = \"a\"", "client_secret");
        refused(
            "token_url = \"http://id.example/token\"\nclient_id = \"a\"\nclient_secret = \"s\"",
            "https://",
        );
        refused("token_command = []", "empty");
        refused("token_command = [\"x\"]\nclient_id = \"a\"", "takes no token endpoint");
        refused("tenant = \"t\"\ntoken_url = \"https://id.example/token\"\nclient_id = \"a\"\nclient_secret = \"s\"", "microsoft");
        refused(
            "provider = \"microsoft\"\ntenant = \"a/../b\"\nclient_id = \"a\"\nclient_secret = \"s\"",
            "tenant",
        );
        refused("client_id = \"a\"\nclient_secret = \"s\"", "needs provider");
        assert!(grant("provider = \"yahoo\"").is_err(), "unknown provider");
        assert!(grant("client_secret_file = \"x\"").is_err(), "unknown key");
    }
}
