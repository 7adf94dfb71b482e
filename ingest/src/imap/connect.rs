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
        let (host, port) = (config.host.as_str(), config.port());
        let client = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let tcp = TcpStream::connect((host, port)).await?;
            let stream: Box<dyn Io> = match (&self.tls, config.tls) {
                (Some(tls), TlsMode::Implicit) => Box::new(tls.connect(server_name(host)?, tcp).await?),
                (Some(tls), TlsMode::Starttls) => {
                    let mut plain = async_imap::Client::new(tcp);
                    greeting(&mut plain).await?;
                    plain.run_command_and_check_ok("STARTTLS", None).await?;
                    Box::new(tls.connect(server_name(host)?, plain.into_inner()).await?)
                }
                _ => Box::new(tcp),
            };
            let mut client = async_imap::Client::new(stream);
            if config.tls != TlsMode::Starttls {
                greeting(&mut client).await?;
            }
            Ok::<_, ImapError>(client)
        })
        .await
        .map_err(|_| {
            ImapError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))
        })??;
        let password = config.password().expose()?;
        client.login(&config.username, &password).await.map_err(|(err, _)| ImapError::Imap(err))
    }
}

/// Reads the server greeting (async-imap leaves that to the caller).
async fn greeting<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug>(
    client: &mut async_imap::Client<T>,
) -> Result<(), ImapError> {
    match client.read_response().await? {
        Some(_) => Ok(()),
        None => Err(ImapError::Greeting),
    }
}

fn server_name(host: &str) -> Result<rustls_pki_types::ServerName<'static>, ImapError> {
    rustls_pki_types::ServerName::try_from(host.to_owned()).map_err(|_| {
        ImapError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, "invalid host name for TLS"))
    })
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
        .map_err(|e| ImapError::Io(std::io::Error::other(e)))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
