//! Access tokens: asked from the token endpoint (or the command), kept, and renewed
//! before they expire.
//!
//! A token is used until its renewal time — a quarter of its lifetime before it expires,
//! at most five minutes before — and the IMAP session that logged in with it is renewed
//! by then too (`Token::renew_at`), so no login ever presents an expired token. A token
//! the server refuses is forgotten ([`TokenSource::forget`]) and a new one asked for: it
//! may have been revoked. Secrets and tokens never reach a log or an error message.

use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use ruaflow_schema::SecretError;

use super::Grant;

/// Longest wait for the token endpoint (connect, request, answer) or the command.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read from a token endpoint or command: a token answer is a few KiB.
const MAX_ANSWER_BYTES: u64 = 64 * 1024;
/// The lifetime assumed for a token that comes without `expires_in`: below the hour
/// Microsoft and Google tokens last.
const ASSUMED_LIFETIME: Duration = Duration::from_secs(50 * 60);
/// A token is renewed at most this long before it expires (for long-lived tokens; a
/// short-lived one is renewed when three quarters of its life are gone).
const RENEW_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Characters of an error description kept in a message.
const MAX_REASON_CHARS: usize = 300;

/// Why no access token could be obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token endpoint answered, without a token (RFC 6749 §5.2: `invalid_client`,
    /// `invalid_grant`, …; or a server error).
    #[error("OAuth2 token endpoint {url} gave no token for {account}: {reason}")]
    Refused {
        /// The token endpoint.
        url: String,
        /// `user at host:port`.
        account: String,
        /// The OAuth2 error and its description, or the HTTP status.
        reason: String,
        /// Whether only a change of the credentials or the app's rights can fix it.
        permanent: bool,
    },
    /// The token endpoint could not be reached.
    #[error("cannot reach OAuth2 token endpoint {url}: {reason}")]
    Unreachable {
        /// The token endpoint.
        url: String,
        /// Why.
        reason: String,
    },
    /// The token command failed or printed no token.
    #[error("token_command {program} gave no token: {reason}")]
    Command {
        /// The program run.
        program: String,
        /// Why.
        reason: String,
    },
    /// A client secret or refresh token could not be read.
    #[error("OAuth2 secret: {0}")]
    Secret(#[from] SecretError),
}

impl TokenError {
    /// Whether only a person can fix it.
    pub fn is_permanent(&self) -> bool {
        match self {
            TokenError::Refused { permanent, .. } => *permanent,
            TokenError::Unreachable { .. } => false,
            TokenError::Command { .. } | TokenError::Secret(_) => true,
        }
    }
}

/// An access token and when it should be replaced.
#[derive(Clone)]
pub(in crate::imap) struct Token {
    /// The bearer token itself; never logged.
    pub(in crate::imap) access: String,
    /// When a new token should be used instead (and a session logged in with this one
    /// renewed).
    pub(in crate::imap) renew_at: Instant,
    /// Obtained just now, not taken from the cache: a refusal of it is final.
    pub(in crate::imap) fresh: bool,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("access", &"[redacted]").field("renew_at", &self.renew_at).finish()
    }
}

/// What an issuer handed out.
struct Issued {
    access: String,
    lifetime: Option<Duration>,
    refresh_token: Option<String>,
}

/// The tokens of one mailbox: the grant, the current token and the newest refresh token.
pub(in crate::imap) struct TokenSource {
    grant: Grant,
    account: String,
    agent: ureq::Agent,
    /// Never held across an `.await`.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    current: Option<Token>,
    /// A refresh token the endpoint issued in place of the configured one.
    rotated_refresh_token: Option<String>,
}

/// A token request's fields, `application/x-www-form-urlencoded` (RFC 6749 §4.4.2, §6).
type Form = Vec<(&'static str, String)>;

/// The token answer of RFC 6749 §5.1 (and what a token command may print).
#[derive(Deserialize)]
struct Answer {
    access_token: Option<String>,
    /// Seconds; some issuers send it as a string.
    expires_in: Option<serde_json::Value>,
    refresh_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl TokenSource {
    /// Tokens for `account` (`user at host:port`, for messages) from `grant`.
    pub(in crate::imap) fn new(grant: Grant, account: String) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            // OAuth2 errors come with 400 and 401: their body says what is wrong.
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("ruaflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Self { grant, account, agent, state: Mutex::new(State::default()) }
    }

    /// Checks that the configured secrets can be read (before anything connects).
    pub(in crate::imap) fn check(&self) -> Result<(), SecretError> {
        match &self.grant {
            Grant::ClientCredentials { client_secret, .. } => client_secret.expose().map(drop),
            Grant::RefreshToken { client_secret, refresh_token, .. } => {
                refresh_token.expose()?;
                client_secret.as_ref().map_or(Ok(()), |s| s.expose().map(drop))
            }
            Grant::Command { .. } => Ok(()),
        }
    }

    /// The current token, or a new one when there is none or it is due for renewal.
    pub(in crate::imap) async fn token(&self) -> Result<Token, TokenError> {
        if let Some(token) = self.lock().current.clone().filter(|t| Instant::now() < t.renew_at) {
            return Ok(Token { fresh: false, ..token });
        }
        let asked = Instant::now();
        let issued = match &self.grant {
            Grant::Command { argv } => run_command(argv).await?,
            _ => self.request().await?,
        };
        let lifetime = issued.lifetime.unwrap_or(ASSUMED_LIFETIME);
        let renew_at = asked + renew_after(lifetime);
        let token = Token { access: issued.access, renew_at, fresh: true };
        let mut state = self.lock();
        state.current = Some(token.clone());
        if issued.refresh_token.is_some() {
            state.rotated_refresh_token = issued.refresh_token;
        }
        tracing::debug!(account = %self.account, lifetime_secs = lifetime.as_secs(), "oauth2 token obtained");
        Ok(token)
    }

    /// Drops the current token (the server refused it): the next [`TokenSource::token`]
    /// asks for a new one.
    pub(in crate::imap) fn forget(&self) {
        self.lock().current = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding it cannot leave the state half-written (plain stores).
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One request to the token endpoint, off the async threads.
    async fn request(&self) -> Result<Issued, TokenError> {
        let (url, form) = self.form()?;
        let agent = self.agent.clone();
        let account = self.account.clone();
        tokio::task::spawn_blocking(move || post_form(&agent, &url, &form, &account))
            .await
            .unwrap_or_else(|e| Err(TokenError::Unreachable { url: String::new(), reason: e.to_string() }))
    }

    /// The endpoint and the form for the grant, secrets read now.
    fn form(&self) -> Result<(String, Form), TokenError> {
        let mut form = Vec::new();
        let (url, scope) = match &self.grant {
            Grant::ClientCredentials { url, client_id, client_secret, scope } => {
                form.push(("grant_type", "client_credentials".to_owned()));
                form.push(("client_id", client_id.clone()));
                form.push(("client_secret", client_secret.expose()?));
                (url, scope)
            }
            Grant::RefreshToken { url, client_id, client_secret, refresh_token, scope } => {
                let refresh = match self.lock().rotated_refresh_token.clone() {
                    Some(rotated) => rotated,
                    None => refresh_token.expose()?,
                };
                form.push(("grant_type", "refresh_token".to_owned()));
                form.push(("client_id", client_id.clone()));
                if let Some(secret) = client_secret {
                    form.push(("client_secret", secret.expose()?));
                }
                form.push(("refresh_token", refresh));
                (url, scope)
            }
            Grant::Command { .. } => unreachable!("a command grant makes no request"),
        };
        if let Some(scope) = scope {
            form.push(("scope", scope.clone()));
        }
        Ok((url.clone(), form))
    }
}

/// How long a token of `lifetime` is used: all but a quarter of it, at most
/// [`RENEW_MARGIN`] less.
fn renew_after(lifetime: Duration) -> Duration {
    lifetime - (lifetime / 4).min(RENEW_MARGIN)
}

/// POSTs the form and reads the token answer (blocking).
fn post_form(agent: &ureq::Agent, url: &str, form: &Form, account: &str) -> Result<Issued, TokenError> {
    let unreachable = |reason: String| TokenError::Unreachable { url: url.to_owned(), reason };
    let mut response = agent
        .post(url)
        .send_form(form.iter().map(|(k, v)| (*k, v.as_str())))
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_string()
        .map_err(|e| unreachable(format!("reading the answer: {e}")))?;
    let refused = |reason: String, permanent: bool| TokenError::Refused {
        url: url.to_owned(),
        account: account.to_owned(),
        reason,
        permanent,
    };
    let answer: Option<Answer> = serde_json::from_str(&body).ok();
    match answer {
        Some(answer) if (200..300).contains(&status) => {
            issued(answer).map_err(|reason| refused(format!("HTTP {status}, {reason}"), false))
        }
        Some(Answer { error: Some(error), error_description, .. }) => {
            // RFC 6749 §5.2 errors are about the request or its credentials, except a
            // server that says it is busy.
            let busy = status == 429 || status >= 500 || error == "temporarily_unavailable";
            let reason = match error_description {
                Some(text) => format!("{error} ({})", first_line(&text)),
                None => error,
            };
            Err(refused(reason, !busy))
        }
        _ => {
            let permanent = (400..500).contains(&status) && status != 408 && status != 429;
            Err(refused(format!("HTTP {status} without a token answer"), permanent))
        }
    }
}

/// The token of an answer, checked: printable ASCII, as RFC 6750 §2.1 allows and SASL
/// needs (its fields are separated by control characters).
fn issued(answer: Answer) -> Result<Issued, String> {
    let access = answer.access_token.unwrap_or_default();
    if access.is_empty() || !access.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("no usable access_token in the answer".to_owned());
    }
    let lifetime = match answer.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|&secs| secs > 0)
    .map(Duration::from_secs);
    Ok(Issued { access, lifetime, refresh_token: answer.refresh_token.filter(|t| !t.is_empty()) })
}

/// Runs the token command: its standard output is the token alone (first line), or a
/// JSON token answer.
async fn run_command(argv: &[String]) -> Result<Issued, TokenError> {
    let program = argv[0].clone();
    let failed = |reason: String| TokenError::Command { program: program.clone(), reason };
    let mut command = tokio::process::Command::new(&argv[0]);
    command.args(&argv[1..]).stdin(std::process::Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(REQUEST_TIMEOUT, command.output())
        .await
        .map_err(|_| failed(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())))?
        .map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(failed(format!("{}: {}", output.status, first_line(&stderr))));
    }
    if output.stdout.len() as u64 > MAX_ANSWER_BYTES {
        return Err(failed(format!("printed more than {MAX_ANSWER_BYTES} bytes")));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let text = text.trim();
    let answer = if text.starts_with('{') {
        serde_json::from_str(text)
            .map_err(|e| failed(format!("printed JSON that is no token answer: {e}")))?
    } else {
        let token = text.lines().next().unwrap_or_default().trim().to_owned();
        Answer {
            access_token: Some(token),
            expires_in: None,
            refresh_token: None,
            error: None,
            error_description: None,
        }
    };
    issued(answer).map_err(failed)
}

/// The first line of a message, shortened: Microsoft's descriptions go on with trace
/// and correlation IDs and a timestamp, which differ at every attempt.
fn first_line(text: &str) -> String {
    let line = text.trim().lines().next().unwrap_or_default().trim();
    match line.char_indices().nth(MAX_REASON_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str) -> Result<Issued, String> {
        issued(serde_json::from_str(json).expect("json"))
    }

    #[test]
    fn answers_read_as_issuers_send_them() {
        let microsoft = answer(r#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAi.x.y"}"#)
            .expect("token");
        assert_eq!(
            (microsoft.access.as_str(), microsoft.lifetime),
            ("eyJ0eXAi.x.y", Some(Duration::from_secs(3599)))
        );
        let stringly =
            answer(r#"{"access_token":"t","expires_in":"60","refresh_token":"r2"}"#).expect("token");
        assert_eq!(
            (stringly.lifetime, stringly.refresh_token.as_deref()),
            (Some(Duration::from_secs(60)), Some("r2"))
        );
        assert_eq!(answer(r#"{"access_token":"t"}"#).expect("token").lifetime, None);
        assert!(answer(r#"{"access_token":""}"#).is_err());
        assert!(answer("{\"access_token\":\"a\\u0001b\"}").is_err(), "a control character would break SASL");
        let long = format!(
            "AADSTS7000215: Invalid client secret provided. {}\r\nTrace ID: 1\r\nTimestamp: 2",
            "x".repeat(400)
        );
        let said = first_line(&long);
        assert!(
            said.starts_with("AADSTS7000215") && !said.contains("Trace ID") && said.chars().count() == 301,
            "{said}"
        );
    }

    #[test]
    fn renewal_comes_before_expiry() {
        let secs = |s| Duration::from_secs(s);
        assert_eq!(renew_after(secs(3600)), secs(3300), "an hour: five minutes early");
        assert_eq!(renew_after(secs(400)), secs(300), "a quarter early");
        assert_eq!(renew_after(secs(4)), secs(3));
        assert_eq!(renew_after(ASSUMED_LIFETIME), secs(45 * 60));
    }

    #[tokio::test]
    async fn kept_renewed_when_due_and_forgotten_when_refused() {
        // A token command whose every token differs ($$) and lives one second.
        let script = std::env::temp_dir().join(format!("ruaflow-token-{}.sh", std::process::id()));
        std::fs::write(&script, "echo \"{\\\"access_token\\\":\\\"tok-$$\\\",\\\"expires_in\\\":1}\"\n")
            .expect("write script");
        let argv = vec!["sh".to_owned(), script.display().to_string()];
        let source = TokenSource::new(Grant::Command { argv }, "dmarc at imap.example.com:993".into());
        let first = source.token().await.expect("token");
        assert!(first.fresh && first.access.starts_with("tok-"), "{:?}", first.access);
        let cached = source.token().await.expect("token");
        assert_eq!(
            (cached.access.as_str(), cached.fresh),
            (first.access.as_str(), false),
            "kept while valid"
        );
        tokio::time::sleep_until(first.renew_at).await;
        let renewed = source.token().await.expect("token");
        assert!(renewed.fresh && renewed.access != first.access, "a new token once due");
        source.forget();
        let after_refusal = source.token().await.expect("token");
        assert!(
            after_refusal.fresh && after_refusal.access != renewed.access,
            "a refused token is not reused"
        );
        assert!(!format!("{after_refusal:?}").contains("tok-"), "redacted");
        std::fs::remove_file(&script).expect("cleanup");

        let failing = TokenSource::new(Grant::Command { argv: vec!["false".into()] }, "a".into());
        let err = failing.token().await.expect_err("exit 1");
        assert!(
            err.is_permanent() && err.to_string().starts_with("token_command false gave no token"),
            "{err}"
        );
    }
}
