//! Alert sinks: the log, webhooks, Alertmanager and email.
//!
//! Input: each [`Alert`] after the store has committed it, via [`Sinks::emit`].
//! Output: one log line per alert, one HTTP POST per alert and HTTP endpoint, one mail per
//! alert and email target.
//! Invariant: `emit` never waits on the network. The store is the source of truth, so an
//! alert the network sinks cannot take (queue full, endpoint gave up, shutdown) is dropped
//! for them only, with an ERROR log; it is never lost from the store.
//!
//! ```text
//! emit ─┬─> log (warn! / info!)
//!       └─> sync_channel(QUEUE_CAPACITY) ──> sink thread ─┬─> webhook::body ──────┬─> http::Client ─┬─ retry
//!           (full: ERROR, alert dropped)                  ├─> alertmanager::body ─┘                 │
//!                                                         └─> email::Mailer (message, SMTP) ────────┘
//! ```
//!
//! Layout:
//! - [`webhook`]: generic JSON and Slack bodies, [`WebhookConfig`]
//! - [`alertmanager`]: Alertmanager v2 postable alerts, [`AlertmanagerConfig`]
//! - [`email`]: mail over SMTP (STARTTLS or implicit TLS, AUTH), [`EmailConfig`]
//! - `http`: one blocking POST
//! - `retry`: attempts with exponential backoff, for every endpoint
//! - `trouble`: a failing email target told once per problem, not per attempt
//! - `error`: [`SinkError`], classified retriable or not

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use std::{fmt, thread};

use ruaflow_schema::alert::{Alert, AlertState, Severity};
use serde::Deserialize;
use tracing::{debug, error, info, warn};

pub mod alertmanager;
pub mod email;
mod error;
mod http;
mod retry;
mod trouble;
pub mod webhook;

pub use alertmanager::AlertmanagerConfig;
pub use email::{EmailConfig, EmailTls};
pub use error::SinkError;
pub use retry::FIRST_BACKOFF;
pub use webhook::{WebhookConfig, WebhookFormat};

use email::Mailer;
use http::{Client, Destination};

/// Alerts waiting for the sink thread. Alerts are rare (deduplicated, with a cooldown), so
/// this is a backlog for an endpoint that is down or slow: with the defaults one alert
/// costs at most about 21 s per unreachable HTTP endpoint, and about 2 minutes per email
/// server that accepts connections but never answers (4 attempts of 30 s). When it is
/// full, `emit` logs an ERROR and drops the alert for the network sinks; it is already in
/// the store.
pub const QUEUE_CAPACITY: usize = 256;

/// How long dropping [`Sinks`] waits for queued alerts before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Where alerts go besides the store and the log. Empty (the default) means log only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    /// Webhooks, each receiving every alert.
    pub webhooks: Vec<WebhookConfig>,
    /// Alertmanagers, each receiving every alert.
    pub alertmanager: Vec<AlertmanagerConfig>,
    /// Email targets (`[[alerts.email]]`), each sending every alert to its recipients.
    pub email: Vec<EmailConfig>,
    /// Time limit of one HTTP request (resolve, connect, send, answer), in milliseconds.
    /// Email targets have their own `timeout_ms`.
    pub timeout_ms: u64,
    /// Retries after a retriable failure (HTTP 5xx, 408, 429; SMTP 4xx, a refused login;
    /// a timeout, a connection error), with exponential backoff from 200 ms (200, 400,
    /// 800 ms, …, at most 30 s between tries).
    pub retries: u32,
}

impl Default for SinkConfig {
    fn default() -> SinkConfig {
        SinkConfig {
            webhooks: Vec::new(),
            alertmanager: Vec::new(),
            email: Vec::new(),
            timeout_ms: 5000,
            retries: 3,
        }
    }
}

impl SinkConfig {
    /// Checks every value; called by [`Sinks::start`] before anything connects.
    pub fn validate(&self) -> Result<(), SinkError> {
        if self.timeout_ms == 0 {
            return Err(SinkError::Config { field: "timeout_ms".into(), reason: "must be positive" });
        }
        for (i, hook) in self.webhooks.iter().enumerate() {
            http::validate_url(format!("webhooks[{i}].url"), &hook.url)?;
            // A token written in the config is checked now; one in a file or the
            // environment at each use (it may be rotated).
            if let Some(token) = hook.bearer_token.as_ref().filter(|t| t.is_inline()) {
                if token.expose().ok().filter(|t| http::is_header_token(t)).is_none() {
                    return Err(SinkError::Config {
                        field: format!("webhooks[{i}].bearer_token"),
                        reason: "must be non-empty printable ascii without spaces",
                    });
                }
            }
        }
        for (i, am) in self.alertmanager.iter().enumerate() {
            let field = format!("alertmanager[{i}].url");
            http::validate_url(field.clone(), &am.url)?;
            if am.url.contains(['?', '#']) {
                return Err(SinkError::Config { field, reason: "base url must not have a query" });
            }
        }
        for (i, email) in self.email.iter().enumerate() {
            email.validate(i)?;
        }
        Ok(())
    }
}

/// The running sinks: logs every alert and hands it to one background thread that posts
/// it to every configured endpoint. Dropping it flushes (for at most 10 s) and joins.
pub struct Sinks {
    /// `None` when no endpoint is configured (no thread), and after drop.
    tx: Option<SyncSender<Box<Alert>>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    endpoints: Vec<String>,
}

impl fmt::Debug for Sinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sinks").field("endpoints", &self.endpoints).finish_non_exhaustive()
    }
}

impl Sinks {
    /// Validates `config` and, when it names any endpoint, spawns the sink thread.
    pub fn start(config: &SinkConfig) -> Result<Sinks, SinkError> {
        config.validate()?;
        let endpoints = endpoints(config)?;
        let labels = endpoints.iter().map(|e| e.label().to_owned()).collect();
        let shared = Arc::new(Shared::default());
        if endpoints.is_empty() {
            return Ok(Sinks { tx: None, thread: None, shared, endpoints: labels });
        }
        let client = Client::new(Duration::from_millis(config.timeout_ms), config.retries);
        let (tx, rx) = mpsc::sync_channel(QUEUE_CAPACITY);
        let worker = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("ruaflow-sinks".into())
            .spawn(move || run(&rx, endpoints, &client, &worker))
            .map_err(SinkError::Spawn)?;
        Ok(Sinks { tx: Some(tx), thread: Some(thread), shared, endpoints: labels })
    }

    /// Logs `alert` and queues it for the endpoints. Never waits on the network: when the
    /// queue is full the alert is dropped for the endpoints, with an ERROR.
    pub fn emit(&self, alert: &Alert) {
        log_alert(alert);
        let Some(tx) = &self.tx else { return };
        // Counted before sending so that `flush` cannot miss an alert in the channel.
        self.shared.lock().pending += 1;
        let why = match tx.try_send(Box::new(alert.clone())) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => "alert sink queue full",
            Err(TrySendError::Disconnected(_)) => "alert sink thread gone",
        };
        self.shared.done_one();
        error!(
            kind = alert.kind.as_str(),
            domain = %alert.domain,
            capacity = QUEUE_CAPACITY,
            "{why}, alert dropped for webhooks, alertmanager and email"
        );
    }

    /// Waits until every queued alert was delivered or given up on. Returns `false` if
    /// `timeout` passed first.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while state.pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self.shared.changed.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }
}

impl Drop for Sinks {
    /// Flushes for at most `SHUTDOWN_GRACE` (10 s), then tells the thread to give up on the rest
    /// (it stops retrying; a request in flight still runs to its timeout) and joins it.
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        if !self.flush(SHUTDOWN_GRACE) {
            warn!(pending = self.shared.lock().pending, "alert sinks not drained at shutdown");
        }
        self.shared.lock().shutdown = true;
        self.shared.changed.notify_all();
        // Closing the channel ends the thread's loop once it has drained it.
        drop(self.tx.take());
        if thread.join().is_err() {
            error!("alert sink thread panicked");
        }
    }
}

/// What each endpoint is, and where it is.
enum Endpoint {
    Webhook(WebhookFormat, Destination),
    Alertmanager(Destination),
    Email(Box<Mailer>),
}

impl Endpoint {
    /// What logs show: `webhook https://hooks.slack.com/…`, `email smtp.example.com:587`.
    fn label(&self) -> &str {
        match self {
            Endpoint::Webhook(_, dest) | Endpoint::Alertmanager(dest) => &dest.label,
            Endpoint::Email(mailer) => &mailer.label,
        }
    }

    /// Delivers `alert`, with retries; `pause` sleeps between attempts unless shutdown
    /// begins.
    fn deliver(
        &mut self,
        alert: &Alert,
        client: &Client,
        pause: impl FnMut(Duration) -> bool,
    ) -> Result<(), SinkError> {
        match self {
            Endpoint::Webhook(format, dest) => client.deliver(dest, &webhook::body(alert, *format)?, pause),
            Endpoint::Alertmanager(dest) => {
                client.deliver(dest, &alertmanager::body(alert, ruaflow_schema::clock::now())?, pause)
            }
            Endpoint::Email(mailer) => mailer.deliver(alert, pause),
        }
    }
}

/// Every configured endpoint, email targets with their CA files read.
fn endpoints(config: &SinkConfig) -> Result<Vec<Endpoint>, SinkError> {
    let hooks = config.webhooks.iter().map(|hook| {
        let dest = Destination {
            url: hook.url.clone(),
            bearer_token: hook.bearer_token.clone(),
            label: format!("webhook {}", http::origin(&hook.url)),
        };
        Ok(Endpoint::Webhook(hook.format, dest))
    });
    let managers = config.alertmanager.iter().map(|am| {
        Ok(Endpoint::Alertmanager(Destination {
            url: alertmanager::alerts_url(&am.url),
            bearer_token: None,
            label: format!("alertmanager {}", http::origin(&am.url)),
        }))
    });
    let mailers = config
        .email
        .iter()
        .enumerate()
        .map(|(i, email)| Ok(Endpoint::Email(Box::new(Mailer::new(email, i, config.retries)?))));
    hooks.chain(managers).chain(mailers).collect()
}

/// State shared by [`Sinks`] and its thread, guarded by one mutex; `changed` is notified
/// whenever `pending` drops or `shutdown` is set.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Alerts accepted by `emit` and not yet finished by the thread.
    pending: usize,
    /// Set by `Drop`: stop retrying, give up on what is left.
    shutdown: bool,
}

impl Shared {
    /// The state; a panic elsewhere cannot leave the two counters inconsistent, so a
    /// poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn done_one(&self) {
        self.lock().pending -= 1;
        self.changed.notify_all();
    }

    /// Sleeps for `delay` unless shutdown begins first; returns whether to go on.
    fn pause(&self, delay: Duration) -> bool {
        let state = self.lock();
        let (state, _) = self
            .changed
            .wait_timeout_while(state, delay, |s| !s.shutdown)
            .unwrap_or_else(PoisonError::into_inner);
        !state.shutdown
    }
}

/// The sink thread: one alert at a time, to each endpoint in turn.
fn run(rx: &Receiver<Box<Alert>>, mut endpoints: Vec<Endpoint>, client: &Client, shared: &Shared) {
    for alert in rx {
        for endpoint in &mut endpoints {
            let (kind, domain) = (alert.kind.as_str(), alert.domain.as_str());
            if shared.lock().shutdown {
                error!(kind, domain, endpoint = %endpoint.label(), "alert not delivered: shutting down");
                continue;
            }
            match endpoint.deliver(&alert, client, |d| shared.pause(d)) {
                Ok(()) => debug!(kind, domain, endpoint = %endpoint.label(), "alert delivered"),
                Err(err) => error!(
                    kind,
                    domain,
                    endpoint = %endpoint.label(),
                    retriable = err.is_retriable(),
                    error = %err,
                    "alert not delivered"
                ),
            }
        }
        shared.done_one();
    }
}

/// Every alert goes to the log: WARN when it fires at warning or critical, INFO otherwise.
fn log_alert(alert: &Alert) {
    let kind = alert.kind.as_str();
    let domain = alert.domain.as_str();
    let severity = alert.severity.as_str();
    let (observed, baseline) = (alert.observed, alert.baseline);
    match (alert.state, alert.severity) {
        (AlertState::Firing, Severity::Critical | Severity::Warning) => {
            warn!(kind, domain, severity, observed, baseline, "alert firing")
        }
        (AlertState::Firing, Severity::Info) => {
            info!(kind, domain, severity, observed, baseline, "alert firing")
        }
        (AlertState::Resolved, _) => info!(kind, domain, severity, observed, baseline, "alert resolved"),
    }
}
