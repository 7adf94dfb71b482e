//! The `imap` source: report mail read from an IMAP mailbox (async-imap on tokio, rustls).
//!
//! Input: the messages in one folder of one mailbox (`[[imap]]` in the config). Output:
//! one [`Delivery`] per message holding a report (or a broken one), source `imap`, origin
//! `user@host/folder/UID`, the whole RFC 5322 message as bytes.
//!
//! Invariant (DESIGN.md "Nothing lost"): a message leaves the watched folder only after
//! the store committed it — the move to `processed_folder` (or `invalid_folder`, whose
//! message the pipeline stored as a dead letter) runs when the delivery's
//! acknowledgement arrives, which the processor's durability barrier fires after the
//! commit. A crash or restart in between finds the message still in the folder and
//! delivers it again, which idempotency by report identity makes harmless. Nothing is
//! ever deleted: mail with no report goes to `ignored_folder` without being enqueued;
//! mail above `max_message_bytes` goes to `invalid_folder` unread.
//!
//! Loop per mailbox: connect (implicit TLS, STARTTLS, or plaintext only when configured),
//! log in, create the target folders, select, read every message oldest UID first, then
//! IDLE (when offered, re-issued every 29 minutes as RFC 2177 asks) or sleep
//! `poll_interval_secs`; any error drops the connection and reconnects after an
//! exponential backoff (1 s doubling to 5 min, reset by a successful login).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_imap::types::Capabilities;
use futures::TryStreamExt;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use ruaflow_schema::{survey, Delivery, Envelope, Limits, Shutdown, Source};

/// The environment variable read for the password when neither `password` nor
/// `password_file` nor `password_env` is set.
pub const PASSWORD_ENV: &str = "RUAFLOW_IMAP_PASSWORD";

/// How long one IDLE lasts before it is re-issued: RFC 2177 asks clients to re-issue at
/// least every 29 minutes, because servers may drop an idle client after 30.
const IDLE_TIMEOUT: Duration = Duration::from_secs(29 * 60);
/// First reconnect delay after an error; doubles up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest reconnect delay.
const BACKOFF_MAX: Duration = Duration::from_secs(5 * 60);
/// Connecting (TCP + TLS + greeting) gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

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

/// One `[[imap]]` section: a mailbox folder to read reports from.
#[derive(Clone, Deserialize)]
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
    /// Login name.
    pub username: String,
    /// Password in the file itself; prefer `password_file` or `password_env`.
    #[serde(default)]
    pub password: Option<String>,
    /// File holding the password (surrounding whitespace ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password (default `RUAFLOW_IMAP_PASSWORD` when
    /// no other password setting is given).
    #[serde(default)]
    pub password_env: Option<String>,
    /// The folder reports arrive in.
    #[serde(default = "default_folder")]
    pub folder: String,
    /// Where messages go once their reports are stored (`/` separates levels; it is
    /// translated to the server's hierarchy delimiter).
    #[serde(default = "default_processed")]
    pub processed_folder: String,
    /// Where messages holding no report go (never enqueued, never deleted).
    #[serde(default = "default_ignored")]
    pub ignored_folder: String,
    /// Where unreadable or oversized messages go (the readable-but-broken ones are also
    /// stored as dead letters first).
    #[serde(default = "default_invalid")]
    pub invalid_folder: String,
    /// Largest message fetched, in bytes (RFC822.SIZE, checked before fetching); larger
    /// ones are moved to `invalid_folder` with a warning.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u64,
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
fn default_ignored() -> String {
    "ruaflow/ignored".into()
}
fn default_invalid() -> String {
    "ruaflow/invalid".into()
}
fn default_max_message_bytes() -> u64 {
    32 << 20
}
fn default_poll_interval_secs() -> u64 {
    60
}

impl fmt::Debug for ImapConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("password_file", &self.password_file)
            .field("password_env", &self.password_env)
            .field("folder", &self.folder)
            .field("processed_folder", &self.processed_folder)
            .field("ignored_folder", &self.ignored_folder)
            .field("invalid_folder", &self.invalid_folder)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("poll_interval_secs", &self.poll_interval_secs)
            .finish()
    }
}

/// What can go wrong setting up or talking to the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImapError {
    /// A config value is out of range or contradicts another.
    #[error("invalid [[imap]] config: {0}")]
    Config(&'static str),
    /// The password could not be found.
    #[error("no imap password: {0}")]
    Password(String),
    /// The CA file could not be read or holds no usable certificate.
    #[error("cannot use ca_file {path}: {reason}")]
    CaFile {
        /// The configured file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Connecting, TLS or the connection itself failed.
    #[error("imap connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The server refused a command or answered something unexpected.
    #[error("imap command failed: {0}")]
    Imap(#[from] async_imap::error::Error),
    /// The server greeted with something other than OK, or not at all.
    #[error("imap server did not greet")]
    Greeting,
    /// The pipeline is gone (shutting down): nothing more can be delivered.
    #[error("the pipeline stopped")]
    PipelineClosed,
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
        let set = [self.password.is_some(), self.password_file.is_some(), self.password_env.is_some()];
        if set.iter().filter(|s| **s).count() > 1 {
            return Err(ImapError::Config("set at most one of password, password_file, password_env"));
        }
        if self.port == Some(0) {
            return Err(ImapError::Config("port is 0"));
        }
        let folders = [&self.folder, &self.processed_folder, &self.ignored_folder, &self.invalid_folder];
        if folders.iter().any(|f| f.trim().is_empty()) {
            return Err(ImapError::Config("a folder name is empty"));
        }
        if folders.iter().any(|f| f.contains(['"', '\\', '\r', '\n'])) {
            return Err(ImapError::Config("folder names may not hold quotes, backslashes or line breaks"));
        }
        let targets = [&self.processed_folder, &self.ignored_folder, &self.invalid_folder];
        if targets.contains(&&self.folder) {
            return Err(ImapError::Config("the target folders must differ from folder"));
        }
        if self.max_message_bytes == 0 {
            return Err(ImapError::Config("max_message_bytes is 0"));
        }
        if self.poll_interval_secs == 0 {
            return Err(ImapError::Config("poll_interval_secs is 0"));
        }
        Ok(())
    }

    /// The port, defaulted from the TLS mode.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(if self.tls == TlsMode::Implicit { 993 } else { 143 })
    }

    /// Finds the password: `password`, `password_file`, `password_env`, or
    /// [`PASSWORD_ENV`]. Never logged.
    pub fn resolve_password(&self) -> Result<String, ImapError> {
        if let Some(password) = &self.password {
            return Ok(password.clone());
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ImapError::Password(format!("cannot read {}: {e}", path.display())))?;
            return Ok(text.trim().to_owned());
        }
        let var = self.password_env.as_deref().unwrap_or(PASSWORD_ENV);
        std::env::var(var).map_err(|_| ImapError::Password(format!("environment variable {var} is not set")))
    }

    /// `user@host/folder`, the prefix of every origin from this mailbox.
    fn mailbox_name(&self) -> String {
        format!("{}@{}/{}", self.username, self.host, self.folder)
    }
}

/// Where a message goes after it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// At least one DMARC aggregate, TLS or failure report: stored, then `processed_folder`.
    Report,
    /// Mail with no report at all: `ignored_folder`, not enqueued.
    NoReport,
    /// Something that looked like a report but could not be read: stored as a dead
    /// letter, then `invalid_folder`.
    Invalid,
}

/// Decides where a message goes from what [`survey`] finds in it (pure; run it in
/// `spawn_blocking`, the parse is CPU-bound; streaming, so no report is held whole).
pub fn classify(bytes: &[u8], limits: &Limits) -> Verdict {
    let found = survey(bytes, limits);
    if found.reports() > 0 {
        return Verdict::Report;
    }
    if found.error_count > 0 && found.error_count == found.no_report_count {
        return Verdict::NoReport;
    }
    Verdict::Invalid
}

/// Anything async-imap can run over: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> Io for T {}
type Session = async_imap::Session<Box<dyn Io>>;

/// One mailbox being read: its config, resolved secrets and TLS setup.
pub struct ImapSource {
    config: ImapConfig,
    password: String,
    tls: Option<tokio_rustls::TlsConnector>,
    limits: Limits,
}

/// Why one connection ended without an error.
enum Ended {
    Stopped,
}

impl ImapSource {
    /// Resolves the password and builds the TLS setup (reads `ca_file`); connects nothing.
    pub fn new(config: ImapConfig, limits: Limits) -> Result<Self, ImapError> {
        config.validate()?;
        let password = config.resolve_password()?;
        let tls = match config.tls {
            TlsMode::None => None,
            TlsMode::Implicit | TlsMode::Starttls => Some(tls_connector(config.ca_file.as_deref())?),
        };
        Ok(Self { config, password, tls, limits })
    }

    /// Reads the mailbox into `queue` until `shutdown` triggers (or the pipeline
    /// closes), reconnecting with backoff on errors. Returns once no delivery of its own
    /// is in flight, having dropped `queue`.
    pub async fn run(self, queue: mpsc::Sender<Delivery>, shutdown: Shutdown) {
        let mailbox = self.config.mailbox_name();
        let mut backoff = BACKOFF_MIN;
        loop {
            if shutdown.is_triggered() {
                break;
            }
            let mut logged_in = false;
            match self.connection(&queue, &shutdown, &mut logged_in).await {
                Ok(Ended::Stopped) => break,
                Err(ImapError::PipelineClosed) => break,
                Err(err) => {
                    if logged_in {
                        backoff = BACKOFF_MIN;
                    }
                    tracing::warn!(mailbox = %mailbox, error = %err, retry_in_secs = backoff.as_secs(), "imap connection failed");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.triggered() => break,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        tracing::info!(mailbox = %mailbox, "imap source stopped");
    }

    /// One connection: log in, then read and wait until stopped or an error.
    async fn connection(
        &self,
        queue: &mpsc::Sender<Delivery>,
        shutdown: &Shutdown,
        logged_in: &mut bool,
    ) -> Result<Ended, ImapError> {
        let mut session = self.connect().await?;
        *logged_in = true;
        let caps = session.capabilities().await?;
        let delimiter = hierarchy_delimiter(&mut session).await?;
        let target = |name: &str| name.replace('/', &delimiter);
        let (processed, ignored, invalid) = (
            target(&self.config.processed_folder),
            target(&self.config.ignored_folder),
            target(&self.config.invalid_folder),
        );
        for folder in [&processed, &ignored, &invalid] {
            match session.create(folder).await {
                Ok(()) => tracing::info!(folder = %folder, "imap folder created"),
                // Dovecot: `NO [ALREADYEXISTS] Mailbox already exists`.
                Err(async_imap::error::Error::No(_)) => {}
                Err(err) => return Err(err.into()),
            }
        }
        let folder = &self.config.folder;
        tracing::info!(mailbox = %self.config.mailbox_name(), idle = caps.has_str("IDLE"), "imap mailbox open");
        loop {
            let selected = session.select(folder).await?;
            if selected.exists > 0 {
                let messages = list_messages(&mut session).await?;
                for (uid, size) in messages {
                    if shutdown.is_triggered() {
                        return Ok(Ended::Stopped);
                    }
                    let verdict = self.handle(&mut session, queue, uid, size).await?;
                    let to = match verdict {
                        Verdict::Report => &processed,
                        Verdict::NoReport => &ignored,
                        Verdict::Invalid => &invalid,
                    };
                    move_message(&mut session, &caps, uid, to).await?;
                }
                // Look again before waiting: mail may have arrived while we worked.
                continue;
            }
            while session.unsolicited_responses.try_recv().is_ok() {}
            if caps.has_str("IDLE") {
                let mut idle = session.idle();
                idle.init().await?;
                let (wait, _interrupt) = idle.wait_with_timeout(IDLE_TIMEOUT);
                let stopped = tokio::select! {
                    response = wait => { response?; false }
                    _ = shutdown.triggered() => true,
                };
                if stopped {
                    return Ok(Ended::Stopped);
                }
                session = idle.done().await?;
            } else {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(self.config.poll_interval_secs)) => {}
                    _ = shutdown.triggered() => return Ok(Ended::Stopped),
                }
            }
        }
    }

    /// Reads one message, enqueues it when it holds a report (waiting for the commit),
    /// and says where it goes.
    async fn handle(
        &self,
        session: &mut Session,
        queue: &mpsc::Sender<Delivery>,
        uid: u32,
        size: u64,
    ) -> Result<Verdict, ImapError> {
        let origin = format!("{}/{uid}", self.config.mailbox_name());
        if size > self.config.max_message_bytes {
            tracing::warn!(origin = %origin, bytes = size, max = self.config.max_message_bytes, "imap message too large; moved to the invalid folder");
            return Ok(Verdict::Invalid);
        }
        // BODY.PEEK[] leaves \Seen alone: the mailbox looks the same to a person reading it.
        let bytes = {
            let fetches: Vec<_> =
                session.uid_fetch(uid.to_string(), "(UID BODY.PEEK[])").await?.try_collect().await?;
            let fetch = fetches.iter().find(|f| f.uid == Some(uid));
            match fetch.and_then(|f| f.body()) {
                Some(body) => body.to_vec(),
                // Expunged by someone else between the listing and now.
                None => {
                    return Err(ImapError::Io(std::io::Error::other(format!("message {origin} vanished"))))
                }
            }
        };
        if bytes.len() as u64 > self.config.max_message_bytes {
            tracing::warn!(origin = %origin, bytes = bytes.len(), "imap message too large; moved to the invalid folder");
            return Ok(Verdict::Invalid);
        }
        let limits = self.limits.clone();
        let (bytes, verdict) = tokio::task::spawn_blocking(move || {
            let verdict = classify(&bytes, &limits);
            (bytes, verdict)
        })
        .await
        .map_err(|e| ImapError::Io(std::io::Error::other(e)))?;
        if verdict == Verdict::NoReport {
            tracing::info!(origin = %origin, "imap message holds no report; moved to the ignored folder");
            return Ok(verdict);
        }
        let envelope = Envelope::new(bytes, Source::Imap, origin.clone(), ruaflow_schema::clock::now());
        let (ack_tx, ack_rx) = oneshot::channel::<()>();
        let delivery = Delivery {
            envelope,
            ack: Some(Box::new(move || {
                let _ = ack_tx.send(());
            })),
        };
        queue.send(delivery).await.map_err(|_| ImapError::PipelineClosed)?;
        // The durability barrier: the ack fires only after the store committed. If the
        // pipeline drops it instead, the message stays in the folder for the next run.
        ack_rx.await.map_err(|_| ImapError::PipelineClosed)?;
        tracing::debug!(origin = %origin, ?verdict, "imap message stored");
        Ok(verdict)
    }

    /// Connects, secures, reads the greeting and logs in.
    async fn connect(&self) -> Result<Session, ImapError> {
        let (host, port) = (self.config.host.as_str(), self.config.port());
        let client = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let tcp = TcpStream::connect((host, port)).await?;
            let stream: Box<dyn Io> = match (&self.tls, self.config.tls) {
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
            if self.config.tls != TlsMode::Starttls {
                greeting(&mut client).await?;
            }
            Ok::<_, ImapError>(client)
        })
        .await
        .map_err(|_| {
            ImapError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))
        })??;
        client.login(&self.config.username, &self.password).await.map_err(|(err, _)| ImapError::Imap(err))
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
fn tls_connector(ca_file: Option<&std::path::Path>) -> Result<tokio_rustls::TlsConnector, ImapError> {
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

/// The server's hierarchy delimiter (`LIST "" ""`); `/` when it names none.
async fn hierarchy_delimiter(session: &mut Session) -> Result<String, ImapError> {
    // `LIST "" ""` is the standard way (RFC 3501 §6.3.8); async-imap 0.11 yields no
    // entry for its empty name with Dovecot 2.3, so the top-level folders are asked too.
    for pattern in ["", "%"] {
        let names: Vec<_> = session.list(Some(""), Some(pattern)).await?.try_collect().await?;
        if let Some(delimiter) = names.iter().find_map(|n| n.delimiter()) {
            tracing::debug!(delimiter, "imap hierarchy delimiter");
            return Ok(delimiter.to_owned());
        }
    }
    Ok("/".to_owned())
}

/// UID and RFC822.SIZE of every message in the selected folder, oldest UID first.
async fn list_messages(session: &mut Session) -> Result<Vec<(u32, u64)>, ImapError> {
    let fetches: Vec<_> = session.uid_fetch("1:*", "(UID RFC822.SIZE)").await?.try_collect().await?;
    let mut messages: Vec<(u32, u64)> =
        fetches.iter().filter_map(|f| Some((f.uid?, u64::from(f.size.unwrap_or(0))))).collect();
    messages.sort_unstable();
    messages.dedup_by_key(|m| m.0);
    Ok(messages)
}

/// Moves one message: UID MOVE (RFC 6851) when offered, else UID COPY + \Deleted + UID
/// EXPUNGE (UIDPLUS, RFC 4315), else COPY + \Deleted + EXPUNGE (which also expunges
/// anything else someone flagged \Deleted in this folder — the best a bare IMAP4rev1
/// server allows).
async fn move_message(
    session: &mut Session,
    caps: &Capabilities,
    uid: u32,
    to: &str,
) -> Result<(), ImapError> {
    let uid = uid.to_string();
    if caps.has_str("MOVE") {
        session.uid_mv(&uid, to).await?;
        return Ok(());
    }
    session.uid_copy(&uid, to).await?;
    let _: Vec<_> = session.uid_store(&uid, "+FLAGS.SILENT (\\Deleted)").await?.try_collect().await?;
    if caps.has_str("UIDPLUS") {
        let _: Vec<_> = session.uid_expunge(&uid).await?.try_collect().await?;
    } else {
        let _: Vec<_> = session.expunge().await?.try_collect().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Result<ImapConfig, toml::de::Error> {
        toml::from_str(&format!("host = \"imap.example.com\"\nusername = \"dmarc\"\n{extra}"))
    }

    #[test]
    fn config_defaults_validation_and_redaction() {
        let c = config("password = \"hunter2\"").expect("parses");
        c.validate().expect("valid");
        assert_eq!((c.tls, c.port()), (TlsMode::Implicit, 993));
        assert_eq!(c.processed_folder, "ruaflow/processed");
        assert_eq!(c.max_message_bytes, 32 << 20);
        assert!(!format!("{c:?}").contains("hunter2"), "password redacted in Debug");
        assert_eq!(config("tls = \"none\"").expect("parses").port(), 143);
        assert!(config("tls = \"plain\"").is_err(), "unknown tls mode");
        assert!(config("folder_name = \"x\"").is_err(), "unknown keys are errors");
        let both = config("password = \"a\"\npassword_env = \"B\"").expect("parses");
        assert!(both.validate().is_err(), "two password sources");
        let same = config("processed_folder = \"INBOX\"").expect("parses");
        assert!(same.validate().is_err(), "target equal to the source folder");
    }

    #[test]
    fn classify_by_content() {
        let limits = Limits::default();
        let plain = b"From: a@example.com\r\nSubject: hello\r\nContent-Type: text/plain\r\n\r\nhi\r\n";
        assert_eq!(classify(plain, &limits), Verdict::NoReport);
        let broken = b"From: a@example.com\r\nSubject: Report domain: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/gzip\r\nContent-Disposition: attachment; filename=r.xml.gz\r\nContent-Transfer-Encoding: base64\r\n\r\nH4sIAAAAAAAAA0tMTAQA\r\n--b--\r\n";
        assert_eq!(classify(broken, &limits), Verdict::Invalid);
        let xml = br#"<?xml version="1.0"?><feedback><report_metadata><org_name>x</org_name><email>a@x</email><report_id>1</report_id><date_range><begin>1</begin><end>2</end></date_range></report_metadata><policy_published><domain>example.com</domain><p>none</p></policy_published><record><row><source_ip>192.0.2.1</source_ip><count>1</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers><auth_results><spf><domain>example.com</domain><result>pass</result></spf></auth_results></record></feedback>"#;
        assert_eq!(classify(xml, &limits), Verdict::Report);
    }
}
