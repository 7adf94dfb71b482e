//! The `imap` source: report mail read from an IMAP mailbox (async-imap on tokio, rustls).
//!
//! Input: the messages in one folder of one mailbox (`[[imap]]` in the config). Output:
//! one [`Delivery`] per message holding a report (or a broken one), source `imap`, origin
//! `user@host/folder/UID`, the whole RFC 5322 message as bytes.
//!
//! Invariant (DESIGN.md "Nothing lost"): a message leaves the watched folder only after
//! the store committed it — the move to `processed_folder` (aggregate and TLS reports),
//! `failures_folder` (failure reports) or `invalid_folder` (whose message the pipeline
//! stored as a dead letter) runs when the delivery's
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
//! exponential backoff (1 s doubling to 5 min, reset by a successful login). A one-shot
//! read ([`ImapSource::once`]) reads the messages present at its first listing and ends.
//!
//! Layout:
//! - [`config`]: the `[[imap]]` section and its validation
//! - `connect`: TCP, TLS / STARTTLS, greeting, login
//! - `mailbox`: folders, listing, fetching and moving messages; [`classify`]

pub mod config;
mod connect;
mod mailbox;

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use ruaflow_schema::{Delivery, Envelope, Limits, SecretError, Source};

pub use config::{ImapConfig, TlsMode, PASSWORD_ENV};
pub use mailbox::{classify, Verdict};

use connect::{Connector, Session};

/// How long one IDLE lasts before it is re-issued: RFC 2177 asks clients to re-issue at
/// least every 29 minutes, because servers may drop an idle client after 30.
const IDLE_TIMEOUT: Duration = Duration::from_secs(29 * 60);
/// First reconnect delay after an error; doubles up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest reconnect delay.
const BACKOFF_MAX: Duration = Duration::from_secs(5 * 60);

/// What can go wrong setting up or talking to the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImapError {
    /// A config value is out of range or contradicts another.
    #[error("invalid [[imap]] config: {0}")]
    Config(&'static str),
    /// A password or token could not be read.
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

/// One mailbox being read: its config, TLS setup and the queue it feeds.
pub struct ImapSource {
    config: ImapConfig,
    connector: Connector,
    limits: Limits,
    tx: mpsc::Sender<Delivery>,
}

/// What a source did with the messages it read (each counted once it left the folder).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    /// Aggregate or TLS reports stored and moved to `processed_folder`.
    pub reports: u64,
    /// Failure reports stored and moved to `failures_folder`.
    pub failures: u64,
    /// Mail with no report, moved to `ignored_folder`.
    pub ignored: u64,
    /// Unreadable or oversized mail, moved to `invalid_folder`.
    pub invalid: u64,
}

impl Fetched {
    fn count(&mut self, verdict: Verdict) {
        *match verdict {
            Verdict::Report => &mut self.reports,
            Verdict::Failure => &mut self.failures,
            Verdict::NoReport => &mut self.ignored,
            Verdict::Invalid => &mut self.invalid,
        } += 1;
    }
}

/// How far a one-shot read has come: it reads the messages that were in the folder when
/// it first listed it (UIDs up to `last_uid` under `uid_validity`), not mail arriving
/// while it works, so it ends even on a busy mailbox.
#[derive(Debug, Default)]
struct Snapshot {
    uid_validity: Option<u32>,
    last_uid: Option<u32>,
}

/// Why one connection ended without an error.
enum Ended {
    /// Stop was signalled.
    Stopped,
    /// A one-shot read found nothing left of its snapshot.
    Done,
}

/// The folders messages are moved to, in the server's hierarchy delimiter.
struct Targets {
    processed: String,
    failures: String,
    ignored: String,
    invalid: String,
}

impl Targets {
    fn of(&self, verdict: Verdict) -> &str {
        match verdict {
            Verdict::Report => &self.processed,
            Verdict::Failure => &self.failures,
            Verdict::NoReport => &self.ignored,
            Verdict::Invalid => &self.invalid,
        }
    }
}

/// Connections a one-shot read tries before it gives up on a mailbox.
const ONCE_ATTEMPTS: u32 = 3;

impl ImapSource {
    /// Validates the config, checks that the password can be read and builds the TLS
    /// setup (reads `ca_file`); connects nothing.
    pub fn new(config: ImapConfig, limits: Limits, tx: mpsc::Sender<Delivery>) -> Result<Self, ImapError> {
        config.validate()?;
        config.password().expose()?;
        let connector = Connector::new(&config)?;
        Ok(Self { config, connector, limits, tx })
    }

    /// Reads the mailbox until `stop` turns true (or the pipeline closes), reconnecting
    /// with backoff on errors. Returns once no delivery of its own is in flight.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Fetched {
        let mailbox = self.config.mailbox_name();
        let mut fetched = Fetched::default();
        let mut backoff = BACKOFF_MIN;
        loop {
            if *stop.borrow() {
                break;
            }
            let mut logged_in = false;
            match self.connection(&mut stop, None, &mut fetched, &mut logged_in).await {
                Ok(Ended::Stopped | Ended::Done) => break,
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
                _ = stop.wait_for(|s| *s) => break,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        tracing::info!(mailbox = %mailbox, ?fetched, "imap source stopped");
        fetched
    }

    /// Reads what is in the folder now — stores it, files each message — and returns;
    /// mail arriving meanwhile waits for the next run. A lost connection is retried
    /// ([`ONCE_ATTEMPTS`] in all), resuming where it stopped.
    pub async fn once(self) -> Result<Fetched, ImapError> {
        let mailbox = self.config.mailbox_name();
        // Nobody stops a one-shot read; it ends when its snapshot is done.
        let (_never, mut stop) = watch::channel(false);
        let mut snapshot = Snapshot::default();
        let mut fetched = Fetched::default();
        let mut attempt = 1;
        loop {
            let mut logged_in = false;
            match self.connection(&mut stop, Some(&mut snapshot), &mut fetched, &mut logged_in).await {
                Ok(_) => break,
                Err(err @ ImapError::PipelineClosed) => return Err(err),
                Err(err) if attempt >= ONCE_ATTEMPTS => return Err(err),
                Err(err) => {
                    let retry_in = BACKOFF_MIN * attempt;
                    tracing::warn!(mailbox = %mailbox, error = %err, retry_in_secs = retry_in.as_secs(), "imap connection failed");
                    tokio::time::sleep(retry_in).await;
                    attempt += 1;
                }
            }
        }
        tracing::info!(mailbox = %mailbox, ?fetched, "imap mailbox read");
        Ok(fetched)
    }

    /// One connection: log in, then read and wait until stopped or an error (or, with a
    /// `snapshot`, until the snapshot is read).
    async fn connection(
        &self,
        stop: &mut watch::Receiver<bool>,
        mut snapshot: Option<&mut Snapshot>,
        fetched: &mut Fetched,
        logged_in: &mut bool,
    ) -> Result<Ended, ImapError> {
        let mut session = self.connector.connect(&self.config).await?;
        *logged_in = true;
        let caps = session.capabilities().await?;
        let delimiter = mailbox::hierarchy_delimiter(&mut session).await?;
        let target = |name: &str| name.replace('/', &delimiter);
        let targets = Targets {
            processed: target(&self.config.processed_folder),
            failures: target(&self.config.failures_folder),
            ignored: target(&self.config.ignored_folder),
            invalid: target(&self.config.invalid_folder),
        };
        let all = [&targets.processed, &targets.failures, &targets.ignored, &targets.invalid];
        mailbox::create_folders(&mut session, &all.map(String::as_str)).await?;
        let folder = &self.config.folder;
        tracing::info!(mailbox = %self.config.mailbox_name(), idle = caps.has_str("IDLE"), "imap mailbox open");
        loop {
            let selected = session.select(folder).await?;
            let mut messages =
                if selected.exists > 0 { mailbox::list_messages(&mut session).await? } else { Vec::new() };
            if let Some(snapshot) = snapshot.as_deref_mut() {
                if snapshot.last_uid.is_none() || snapshot.uid_validity != selected.uid_validity {
                    snapshot.uid_validity = selected.uid_validity;
                    snapshot.last_uid = Some(messages.last().map_or(0, |m| m.0));
                }
                let last = snapshot.last_uid.unwrap_or(0);
                messages.retain(|m| m.0 <= last);
                if messages.is_empty() {
                    session.logout().await?;
                    return Ok(Ended::Done);
                }
            }
            if !messages.is_empty() {
                for (uid, size) in messages {
                    if *stop.borrow() {
                        return Ok(Ended::Stopped);
                    }
                    let verdict = self.handle(&mut session, uid, size).await?;
                    mailbox::move_message(&mut session, &caps, uid, targets.of(verdict)).await?;
                    fetched.count(verdict);
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
                    _ = stop.wait_for(|s| *s) => true,
                };
                if stopped {
                    return Ok(Ended::Stopped);
                }
                session = idle.done().await?;
            } else {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(self.config.poll_interval_secs)) => {}
                    _ = stop.wait_for(|s| *s) => return Ok(Ended::Stopped),
                }
            }
        }
    }

    /// Reads one message, enqueues it when it holds a report (waiting for the commit),
    /// and says where it goes.
    async fn handle(&self, session: &mut Session, uid: u32, size: u64) -> Result<Verdict, ImapError> {
        let origin = format!("{}/{uid}", self.config.mailbox_name());
        if size > self.config.max_message_bytes {
            tracing::warn!(origin = %origin, bytes = size, max = self.config.max_message_bytes, "imap message too large; moved to the invalid folder");
            return Ok(Verdict::Invalid);
        }
        let Some(bytes) = mailbox::fetch_message(session, uid).await? else {
            return Err(ImapError::Io(std::io::Error::other(format!("message {origin} vanished"))));
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
        let envelope = Envelope::new(bytes, Source::Imap, origin.clone(), unix_now());
        let (ack_tx, ack_rx) = oneshot::channel::<()>();
        let delivery = Delivery {
            envelope,
            ack: Some(Box::new(move || {
                let _ = ack_tx.send(());
            })),
        };
        self.tx.send(delivery).await.map_err(|_| ImapError::PipelineClosed)?;
        // The durability barrier: the ack fires only after the store committed. If the
        // pipeline drops it instead, the message stays in the folder for the next run.
        ack_rx.await.map_err(|_| ImapError::PipelineClosed)?;
        tracing::debug!(origin = %origin, ?verdict, "imap message stored");
        Ok(verdict)
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
