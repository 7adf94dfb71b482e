//! Reaching the server: TCP, then implicit TLS or STARTTLS (or, only when configured,
//! neither), the greeting, and the login — IMAP LOGIN with a password, or SASL XOAUTH2 /
//! OAUTHBEARER with a token from `oauth2`.
//!
//! TLS is rustls (ring) with the webpki roots plus the certificates of `ca_file`.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use ruaflow_schema::Secret;

use super::config::{ImapConfig, Login, TlsMode};
use super::error::server_said;
use super::oauth2::TokenSource;
use super::sasl::{BearerExchange, Mechanism};
use super::ImapError;

/// Connecting (TCP + TLS + greeting) gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Anything async-imap can run over: TCP, or TLS over TCP.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> Io for T {}

/// A logged-in IMAP session.
pub(super) type Session = async_imap::Session<Box<dyn Io>>;

/// How one mailbox's connections are made: its TLS setup and its credentials.
pub(super) struct Connector {
    tls: Option<tokio_rustls::TlsConnector>,
    credentials: Credentials,
}

/// What a login presents.
enum Credentials {
    Password(Secret),
    Bearer { mechanism: Mechanism, tokens: Box<TokenSource> },
}

impl Connector {
    /// Builds the TLS setup (reads `ca_file`) and checks that the secrets can be read;
    /// connects nothing.
    pub(super) fn new(config: &ImapConfig) -> Result<Self, ImapError> {
        let tls = match config.tls {
            TlsMode::None => None,
            TlsMode::Implicit | TlsMode::Starttls => Some(tls_connector(config.ca_file.as_deref())?),
        };
        let credentials = match config.login()? {
            Login::Password(password) => {
                password.expose()?;
                Credentials::Password(password)
            }
            Login::Bearer(mechanism, grant) => {
                let tokens = Box::new(TokenSource::new(grant, config.account()));
                tokens.check()?;
                Credentials::Bearer { mechanism, tokens }
            }
        };
        Ok(Self { tls, credentials })
    }

    /// Connects, secures, reads the greeting and logs in. Returns the session and, for a
    /// token login, when the session should be renewed: before its token expires (a
    /// server may end a session whose token expired; a new login needs a valid one).
    pub(super) async fn connect(&self, config: &ImapConfig) -> Result<(Session, Option<Instant>), ImapError> {
        let server = config.server();
        let client = tokio::time::timeout(CONNECT_TIMEOUT, self.open(config))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())))
            .map_err(|reason| ImapError::Connect { server: server.clone(), reason })?;
        match &self.credentials {
            Credentials::Password(password) => {
                let password = password.expose()?;
                let session = client
                    .login(&config.username, &password)
                    .await
                    .map_err(|(err, _)| refused(config, err, None, true))?;
                Ok((session, None))
            }
            Credentials::Bearer { mechanism, tokens } => {
                bearer_login(client, config, *mechanism, tokens).await
            }
        }
    }

    /// TCP, TLS or STARTTLS, and the greeting; the error says which step failed.
    async fn open(&self, config: &ImapConfig) -> Result<async_imap::Client<Box<dyn Io>>, String> {
        let host = config.host.as_str();
        let tcp = TcpStream::connect((host, config.port())).await.map_err(|e| e.to_string())?;
        let handshake = |e: std::io::Error| format!("TLS handshake failed: {e}");
        let stream: Box<dyn Io> = match (&self.tls, config.tls) {
            (Some(tls), TlsMode::Implicit) => {
                Box::new(tls.connect(server_name(host)?, tcp).await.map_err(handshake)?)
            }
            (Some(tls), TlsMode::Starttls) => {
                let mut plain = async_imap::Client::new(tcp);
                greeting(&mut plain).await?;
                plain
                    .run_command_and_check_ok("STARTTLS", None)
                    .await
                    .map_err(|e| format!("STARTTLS refused: {}", server_said(&e)))?;
                Box::new(tls.connect(server_name(host)?, plain.into_inner()).await.map_err(handshake)?)
            }
            _ => Box::new(tcp),
        };
        let mut client = async_imap::Client::new(stream);
        if config.tls != TlsMode::Starttls {
            greeting(&mut client).await?;
        }
        Ok(client)
    }
}

/// Logs in with a token. A kept token the server refuses may have been revoked: it is
/// forgotten and the login tried once more, on the same connection, with a new one.
async fn bearer_login(
    mut client: async_imap::Client<Box<dyn Io>>,
    config: &ImapConfig,
    mechanism: Mechanism,
    tokens: &TokenSource,
) -> Result<(Session, Option<Instant>), ImapError> {
    loop {
        let token = tokens.token().await?;
        let mut exchange =
            BearerExchange::new(mechanism, &config.username, &config.host, config.port(), &token.access);
        match client.authenticate(mechanism.name(), &mut exchange).await {
            Ok(session) => return Ok((session, Some(token.renew_at))),
            Err((err @ (async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_)), back))
                if !token.fresh =>
            {
                tokens.forget();
                tracing::info!(account = %config.account(), reason = %server_said(&err), "imap refused the kept token; asking for a new one");
                client = back;
            }
            Err((err, _)) => return Err(refused(config, err, exchange.refusal.take(), false)),
        }
    }
}

/// A failed login: the server's refusal (with its SASL error status, and a hint for
/// the providers that refuse passwords), or a connection that broke meanwhile.
fn refused(
    config: &ImapConfig,
    err: async_imap::error::Error,
    status: Option<String>,
    password: bool,
) -> ImapError {
    if !matches!(err, async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_)) {
        return ImapError::session(&config.server(), err);
    }
    let mut reason = server_said(&err);
    if let Some(status) = status {
        reason.push_str(&format!("; token status {status}"));
    }
    let host = config.host.to_ascii_lowercase();
    if password && (host.ends_with("office365.com") || host.ends_with("outlook.com")) {
        reason.push_str(
            "; Microsoft 365 accepts no passwords over IMAP: use [imap.oauth2] with provider = \"microsoft\"",
        );
    } else if password && (host.ends_with("gmail.com") || host.ends_with("googlemail.com")) {
        reason.push_str("; Gmail wants an app password, or [imap.oauth2] with provider = \"google\"");
    }
    ImapError::Refused { account: config.account(), reason }
}

/// Reads the server greeting (async-imap leaves that to the caller).
async fn greeting<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug>(
    client: &mut async_imap::Client<T>,
) -> Result<(), String> {
    match client.read_response().await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("the server closed the connection before its greeting".to_owned()),
        Err(err) => Err(format!("no greeting: {err}")),
    }
}

fn server_name(host: &str) -> Result<rustls_pki_types::ServerName<'static>, String> {
    rustls_pki_types::ServerName::try_from(host.to_owned())
        .map_err(|_| format!("{host} is not a valid host name for TLS"))
}

/// rustls (ring) with the webpki roots plus the certificates in `ca_file`.
fn tls_connector(ca_file: Option<&Path>) -> Result<tokio_rustls::TlsConnector, ImapError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca_file {
        let ca_err = |reason: String| ImapError::CaFile { path: path.to_path_buf(), reason };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| ca_err(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| ca_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_err("no PEM certificate in it".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        // Only fails for a crypto provider without TLS 1.2 and 1.3, which ring is not.
        .map_err(|_| ImapError::Config("TLS: no safe protocol version available"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
