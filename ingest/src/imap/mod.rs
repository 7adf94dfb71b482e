//! The `imap` source: report mail read from an IMAP mailbox (async-imap on tokio, rustls).
//!
//! Input: the messages in one folder of one mailbox (`[[imap]]` in the config). Output:
//! one [`Delivery`] per message holding a report (or a broken one), source `imap`, origin
//! `user@host/folder/UID`, the whole RFC 5322 message as bytes.
//!
//! Invariant (DESIGN.md "Nothing lost"): a message leaves the watched folder only after
//! the store committed it — the move to `processed_folder` (aggregate and TLS reports),
//! `failures_folder` (failure reports) or `invalid_folder` (whose message the pipeline
//! stored as a dead letter) runs when the delivery's acknowledgement arrives, which the
//! processor's durability barrier fires after the commit. A crash or restart in between
//! finds the message still in the folder and delivers it again, which idempotency by
//! report identity makes harmless. Nothing is ever deleted: mail with no report goes to
//! `ignored_folder` without being enqueued; mail above `max_message_bytes` goes to
//! `invalid_folder` unread.
//!
//! Watching ([`ImapSource::run`]), per mailbox: connect (implicit TLS, STARTTLS, or
//! plaintext only when configured), log in, create the target folders, select, read
//! every message oldest UID first, then IDLE (when offered, re-issued every 29 minutes as
//! RFC 2177 asks) or sleep `poll_interval_secs`; any error drops the connection and
//! reconnects after a capped backoff, reported as `trouble` says. A session logged in
//! with an OAuth2 token logs out and in again, with a new token, before its token
//! expires. A one-shot read
//! ([`ImapSource::once`]) reads the messages present at its first listing and ends.
//!
//! Layout:
//! - [`config`]: the `[[imap]]` section and its validation
//! - `connect`: TCP, TLS / STARTTLS, greeting, login
//! - [`oauth2`]: `[imap.oauth2]` and the access tokens (client credentials, refresh
//!   token, command), renewed before they expire
//! - `sasl`: XOAUTH2 and OAUTHBEARER
//! - `mailbox`: folders, listing, fetching and moving messages; [`classify`]
//! - `error`: [`ImapError`], in the words of the server, with the account and port
//! - `trouble`: retries and how failures are reported (once, then reminders)

pub mod config;
mod connect;
mod error;
mod mailbox;
pub mod oauth2;
mod sasl;
mod trouble;

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use ruaflow_schema::{Delivery, Envelope, Limits, Shutdown, Source};

pub use config::{AuthMethod, ImapConfig, Login, TlsMode, PASSWORD_ENV};
pub use error::ImapError;
pub use mailbox::{classify, Verdict};
pub use oauth2::{Grant, OAuth2Config, Provider, TokenError};
pub use sasl::Mechanism;

use connect::{Connector, Session};
use trouble::Trouble;

/// How long one IDLE lasts before it is re-issued: RFC 2177 asks clients to re-issue at
/// least every 29 minutes, because servers may drop an idle client after 30.
const IDLE_TIMEOUT: Duration = Duration::from_secs(29 * 60);
/// Connections a one-shot read tries before it gives up on a mailbox (transient errors
/// only; a permanent one ends it at once).
const ONCE_ATTEMPTS: u32 = 3;
/// Delay before a one-shot read's next attempt, times the attempts so far.
const ONCE_RETRY: Duration = Duration::from_secs(1);

/// One mailbox being read: its config, TLS setup and the queue it feeds.
pub struct ImapSource {
    config: ImapConfig,
    connector: Connector,
    limits: Limits,
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
    /// The session's token is due for renewal: log in again now.
    Renew,
}

/// The folders of one session, in the server's hierarchy delimiter.
struct Folders {
    watched: String,
    processed: String,
    failures: String,
    ignored: String,
    invalid: String,
}

impl Folders {
    /// Where a message goes.
    fn of(&self, verdict: Verdict) -> &str {
        match verdict {
            Verdict::Report => &self.processed,
            Verdict::Failure => &self.failures,
            Verdict::NoReport => &self.ignored,
            Verdict::Invalid => &self.invalid,
        }
    }
}

impl ImapSource {
    /// Validates the config, checks that its secrets can be read and builds the TLS
    /// setup (reads `ca_file`); connects nothing.
    pub fn new(config: ImapConfig, limits: Limits) -> Result<Self, ImapError> {
        config.validate()?;
        let connector = Connector::new(&config)?;
        Ok(Self { config, connector, limits })
    }

    /// Reads the mailbox into `queue` until `shutdown` triggers (or the pipeline closes),
    /// reconnecting after errors. Returns once no delivery of its own is in flight,
    /// having dropped `queue`.
    pub async fn run(self, queue: mpsc::Sender<Delivery>, shutdown: Shutdown) -> Fetched {
        let mailbox = self.config.mailbox_name();
        let mut trouble = Trouble::new(mailbox.clone());
        let mut fetched = Fetched::default();
        loop {
            if shutdown.is_triggered() {
                break;
            }
            let retry_in = match self.connection(&queue, &shutdown, None, &mut fetched, &mut trouble).await {
                Ok(Ended::Stopped | Ended::Done) | Err(ImapError::PipelineClosed) => break,
                Ok(Ended::Renew) => continue,
                Err(err) => trouble.failed(&err),
            };
            tokio::select! {
                _ = tokio::time::sleep(retry_in) => {}
                _ = shutdown.triggered() => break,
            }
        }
        let Fetched { reports, failures, ignored, invalid } = fetched;
        tracing::info!(mailbox = %mailbox, reports, failures, ignored, invalid, "imap source stopped");
        fetched
    }

    /// Reads what is in the folder now into `queue` — stores it, files each message —
    /// and returns; mail arriving meanwhile waits for the next run. A transient failure
    /// is retried ([`ONCE_ATTEMPTS`] connections in all), resuming where it stopped; a
    /// shutdown ends it after the message in flight.
    pub async fn once(self, queue: mpsc::Sender<Delivery>, shutdown: Shutdown) -> Result<Fetched, ImapError> {
        let mailbox = self.config.mailbox_name();
        let mut trouble = Trouble::new(mailbox.clone());
        let mut snapshot = Snapshot::default();
        let mut fetched = Fetched::default();
        let mut attempt = 1;
        loop {
            match self.connection(&queue, &shutdown, Some(&mut snapshot), &mut fetched, &mut trouble).await {
                Ok(Ended::Renew) => continue,
                Ok(Ended::Stopped | Ended::Done) => break,
                Err(err) if err.is_permanent() || attempt >= ONCE_ATTEMPTS => return Err(err),
                Err(err @ ImapError::PipelineClosed) => return Err(err),
                Err(err) => {
                    let retry_in = ONCE_RETRY * attempt;
                    tracing::warn!(mailbox = %mailbox, retry_in_secs = retry_in.as_secs(), error = %err, "imap attempt failed");
                    tokio::time::sleep(retry_in).await;
                    attempt += 1;
                }
            }
        }
        let Fetched { reports, failures, ignored, invalid } = fetched;
        tracing::info!(mailbox = %mailbox, reports, failures, ignored, invalid, "imap mailbox read");
        Ok(fetched)
    }

    /// One connection: log in, then read and wait until stopped or an error (or, with a
    /// `snapshot`, until the snapshot is read).
    async fn connection(
        &self,
        queue: &mpsc::Sender<Delivery>,
        shutdown: &Shutdown,
        mut snapshot: Option<&mut Snapshot>,
        fetched: &mut Fetched,
        trouble: &mut Trouble,
    ) -> Result<Ended, ImapError> {
        let (mut session, renew_at) = self.connector.connect(&self.config).await?;
        trouble.logged_in();
        // Checked after each message and each wait, never before the first: a session
        // always gets something done, however short its token's life.
        let due = || renew_at.is_some_and(|at| Instant::now() >= at);
        let server = self.config.server();
        let lost = |err| ImapError::session(&server, err);
        let caps = session.capabilities().await.map_err(lost)?;
        let folders = self.open(&mut session).await?;
        tracing::info!(mailbox = %self.config.mailbox_name(), idle = caps.has_str("IDLE"), "imap mailbox open");
        loop {
            let selected = session.select(&folders.watched).await.map_err(lost)?;
            let mut messages = match selected.exists {
                0 => Vec::new(),
                _ => mailbox::list_messages(&mut session).await.map_err(lost)?,
            };
            if let Some(snapshot) = snapshot.as_deref_mut() {
                if snapshot.last_uid.is_none() || snapshot.uid_validity != selected.uid_validity {
                    snapshot.uid_validity = selected.uid_validity;
                    snapshot.last_uid = Some(messages.last().map_or(0, |m| m.0));
                }
                let last = snapshot.last_uid.unwrap_or(0);
                messages.retain(|m| m.0 <= last);
                if messages.is_empty() {
                    session.logout().await.map_err(lost)?;
                    return Ok(Ended::Done);
                }
            }
            if !messages.is_empty() {
                for (uid, size) in messages {
                    if shutdown.is_triggered() {
                        return Ok(Ended::Stopped);
                    }
                    let verdict = self.handle(&mut session, queue, uid, size).await?;
                    mailbox::move_message(&mut session, &caps, uid, folders.of(verdict))
                        .await
                        .map_err(lost)?;
                    fetched.count(verdict);
                    if due() {
                        return self.renew(session).await;
                    }
                }
                // Look again before waiting: mail may have arrived while we worked.
                continue;
            }
            while session.unsolicited_responses.try_recv().is_ok() {}
            // Wake up in time to renew the session before its token expires.
            let until_renewal =
                renew_at.map_or(Duration::MAX, |at| at.saturating_duration_since(Instant::now()));
            if caps.has_str("IDLE") {
                let mut idle = session.idle();
                idle.init().await.map_err(lost)?;
                let (wait, _interrupt) = idle.wait_with_timeout(IDLE_TIMEOUT.min(until_renewal));
                let stopped = tokio::select! {
                    response = wait => { response.map_err(lost)?; false }
                    _ = shutdown.triggered() => true,
                };
                if stopped {
                    return Ok(Ended::Stopped);
                }
                session = idle.done().await.map_err(lost)?;
            } else {
                let poll = Duration::from_secs(self.config.poll_interval_secs).min(until_renewal);
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = shutdown.triggered() => return Ok(Ended::Stopped),
                }
            }
            if due() {
                return self.renew(session).await;
            }
        }
    }

    /// Ends a session whose token is due for renewal; the caller logs in again.
    async fn renew(&self, mut session: Session) -> Result<Ended, ImapError> {
        tracing::info!(mailbox = %self.config.mailbox_name(), "imap session renewed before its token expires");
        session.logout().await.map_err(|e| ImapError::session(&self.config.server(), e))?;
        Ok(Ended::Renew)
    }

    /// Names the folders in the server's delimiter, creates the target folders and checks
    /// that the watched one exists (naming those that do when it does not).
    async fn open(&self, session: &mut Session) -> Result<Folders, ImapError> {
        let server = self.config.server();
        let lost = |err| ImapError::session(&server, err);
        let delimiter = mailbox::hierarchy_delimiter(session).await.map_err(lost)?;
        let folder = |name: &str| name.replace('/', &delimiter);
        let folders = Folders {
            watched: folder(&self.config.folder),
            processed: folder(&self.config.processed_folder),
            failures: folder(&self.config.failures_folder),
            ignored: folder(&self.config.ignored_folder),
            invalid: folder(&self.config.invalid_folder),
        };
        let targets = [&folders.processed, &folders.failures, &folders.ignored, &folders.invalid];
        mailbox::create_folders(session, &targets.map(String::as_str)).await.map_err(lost)?;
        if let Some(existing) =
            mailbox::missing_folder(session, &folders.watched, &delimiter).await.map_err(lost)?
        {
            return Err(ImapError::NoFolder {
                folder: self.config.folder.clone(),
                account: self.config.account(),
                existing,
            });
        }
        Ok(folders)
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
        let max = self.config.max_message_bytes.unwrap_or(self.limits.max_input_bytes);
        if size > max {
            tracing::warn!(origin = %origin, bytes = size, max, "imap message too large; moved to the invalid folder");
            return Ok(Verdict::Invalid);
        }
        let server = self.config.server();
        let fetched =
            mailbox::fetch_message(session, uid).await.map_err(|e| ImapError::session(&server, e))?;
        let Some(bytes) = fetched else {
            let reason = format!("message {origin} vanished while being read");
            return Err(ImapError::Session { server, reason });
        };
        if bytes.len() as u64 > max {
            tracing::warn!(origin = %origin, bytes = bytes.len(), max, "imap message too large; moved to the invalid folder");
            return Ok(Verdict::Invalid);
        }
        let limits = self.limits.clone();
        let (bytes, verdict) = tokio::task::spawn_blocking(move || {
            let verdict = classify(&bytes, &limits);
            (bytes, verdict)
        })
        .await
        .map_err(|e| ImapError::Session {
            server: self.config.server(),
            reason: format!("reading {origin}: {e}"),
        })?;
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
}
