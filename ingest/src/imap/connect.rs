//! Reaching the server: TCP, then implicit TLS or STARTTLS (or, only when configured,
//! neither), the greeting, and the login.
//!
//! TLS is rustls (ring) with the webpki roots plus the certificates of `ca_file`.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::config::{ImapConfig, TlsMode};
use super::error::server_said;
use super::ImapError;

/// Connecting (TCP + TLS + greeting) gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Anything async-imap can run over: TCP, or TLS over TCP.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> Io for T {}

/// A logged-in IMAP session.
pub(super) type Session = async_imap::Session<Box<dyn Io>>;

/// How one mailbox's connections are made: its config and its TLS setup.
pub(super) struct Connector {
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Connector {
    /// Builds the TLS setup (reads `ca_file`); connects nothing.
    pub(super) fn new(config: &ImapConfig) -> Result<Self, ImapError> {
        let tls = match config.tls {
            TlsMode::None => None,
            TlsMode::Implicit | TlsMode::Starttls => Some(tls_connector(config.ca_file.as_deref())?),
        };
        Ok(Self { tls })
    }

    /// Connects, secures, reads the greeting and logs in.
    pub(super) async fn connect(&self, config: &ImapConfig) -> Result<Session, ImapError> {
        let server = config.server();
        let client = tokio::time::timeout(CONNECT_TIMEOUT, self.open(config))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())))
            .map_err(|reason| ImapError::Connect { server: server.clone(), reason })?;
        let password = config.password().expose()?;
        client.login(&config.username, &password).await.map_err(|(err, _)| refused(config, err))
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

/// A failed login: the server's refusal, or a connection that broke meanwhile.
fn refused(config: &ImapConfig, err: async_imap::error::Error) -> ImapError {
    match err {
        async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_) => {
            ImapError::Refused { account: config.account(), reason: server_said(&err) }
        }
        other => ImapError::session(&config.server(), other),
    }
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
