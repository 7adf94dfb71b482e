//! The long-running sources shared by `ruaflow run` and `ruaflow ingest`: the HTTP
//! endpoint and the IMAP mailboxes, each on a runtime of its own, feeding a queue of
//! deliveries (the embedded pipeline's, or the Kafka publisher's), and the stop signal.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use ruaflow_ingest::dir;
use ruaflow_ingest::http::{HttpConfig, HttpSource};
use ruaflow_ingest::imap::ImapSource;
use ruaflow_schema::{Delivery, Health};

use super::config::Config;

/// The HTTP endpoint on its own runtime, feeding the pipeline's queue.
pub struct HttpRunning {
    runtime: tokio::runtime::Runtime,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), ruaflow_ingest::http::HttpError>>,
    /// How long a stop waits for in-flight requests: each waits at most this for its commit.
    grace: Duration,
}

impl HttpRunning {
    /// Binds and starts serving; returns once the address is bound.
    pub fn start(
        http: &HttpConfig,
        config: &Config,
        tx: tokio::sync::mpsc::Sender<Delivery>,
        health: Health,
    ) -> anyhow::Result<Self> {
        let token = http.resolve_token()?;
        if token.is_none() {
            tracing::warn!(
                env = ruaflow_ingest::http::TOKEN_ENV,
                "no [http] token configured: POST /v1/reports refuses every upload"
            );
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("http")
            .enable_all()
            .build()?;
        let source = runtime.block_on(HttpSource::bind(http, token, config.limits.clone(), tx, health))?;
        let addr = source.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = runtime.spawn(source.serve(async move {
            let _ = stopped.await;
        }));
        tracing::info!(listen = %addr, "http endpoint ready");
        Ok(Self {
            runtime,
            stop,
            server,
            grace: Duration::from_millis(http.ack_timeout_ms) + Duration::from_secs(5),
        })
    }

    /// Stops accepting, waits for in-flight requests (bounded by the ack timeout), and
    /// drops the endpoint's queue sender.
    pub fn stop(self) {
        let _ = self.stop.send(());
        // The timer must be created inside the runtime, hence the async block.
        let (grace, server) = (self.grace, self.server);
        match self.runtime.block_on(async move { tokio::time::timeout(grace, server).await }) {
            Ok(Ok(Ok(()))) => tracing::info!("http endpoint stopped"),
            Ok(Ok(Err(err))) => tracing::error!(error = %err, "http endpoint failed"),
            Ok(Err(err)) => tracing::error!(error = %err, "http endpoint task failed"),
            Err(_) => tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "http requests still open after the grace period; closing them"
            ),
        }
        self.runtime.shutdown_timeout(Duration::from_secs(1));
    }
}

/// The IMAP sources on their own runtime, feeding the pipeline's queue.
pub struct ImapRunning {
    runtime: tokio::runtime::Runtime,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ImapRunning {
    /// How long a stop waits for a source to finish the message in flight (its commit).
    const GRACE: Duration = Duration::from_secs(60);

    /// Resolves passwords and TLS setups (errors here stop `run` before anything
    /// connects), then starts one task per mailbox.
    pub fn start(config: &Config, tx: tokio::sync::mpsc::Sender<Delivery>) -> anyhow::Result<Self> {
        let sources = config
            .imap
            .iter()
            .map(|imap| {
                ImapSource::new(imap.clone(), config.limits.clone(), tx.clone())
                    .with_context(|| format!("[[imap]] {}@{}", imap.username, imap.host))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("imap")
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let tasks = sources.into_iter().map(|source| runtime.spawn(source.run(stopped.clone()))).collect();
        Ok(Self { runtime, stop, tasks })
    }

    /// Signals the sources and waits (bounded) until each has finished its message in
    /// flight and dropped its queue sender.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        let tasks = self.tasks;
        let all = async move {
            for task in tasks {
                let _ = task.await;
            }
        };
        if self.runtime.block_on(async move { tokio::time::timeout(Self::GRACE, all).await }).is_err() {
            tracing::warn!("imap sources still busy after the grace period; stopping them");
        }
        self.runtime.shutdown_timeout(Duration::from_secs(1));
    }
}

/// A flag set by SIGINT or SIGTERM.
pub fn stop_signal() -> anyhow::Result<Arc<std::sync::atomic::AtomicBool>> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        runtime.block_on(async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut term), Ok(mut int)) =
                    (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
                else {
                    return;
                };
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
        });
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    })?;
    Ok(stop)
}

/// How often watched inputs are scanned for new files.
const WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// Files and directories given on the command line, read into deliveries: once, or
/// watched for new and changed files. What cannot be read becomes a delivery that says
/// why (a dead letter), never an error that stops the feed.
pub struct FileFeed<'a> {
    inputs: &'a [PathBuf],
    config: dir::DirConfig,
    seen: dir::Seen,
    max_input: u64,
}

impl<'a> FileFeed<'a> {
    /// A feed of the files under `inputs`; each is read up to `max_input` bytes (one
    /// more, so the processor can tell it is over the cap and dead-letter it). Fails when
    /// an input named on the command line does not exist (a usage error).
    pub fn new(inputs: &'a [PathBuf], config: &dir::DirConfig, max_input: u64) -> anyhow::Result<Self> {
        if let Some(missing) = inputs.iter().find(|p| std::fs::symlink_metadata(p).is_err()) {
            anyhow::bail!("input {} does not exist", missing.display());
        }
        Ok(Self { inputs, config: config.clone(), seen: dir::Seen::default(), max_input })
    }

    /// What is new or changed since the last call: files oldest first, and problems not
    /// reported before.
    pub fn changed(&mut self) -> dir::Changes {
        self.seen.changed(self.inputs, &self.config)
    }

    /// Reads each file into a delivery on `tx` (waiting while the queue is full); each
    /// problem becomes a delivery carrying its reason.
    pub fn feed(
        &self,
        changes: dir::Changes,
        tx: &tokio::sync::mpsc::Sender<Delivery>,
    ) -> anyhow::Result<()> {
        let problems = changes.problems.into_iter().map(|(path, reason)| {
            tracing::warn!(path = %path.display(), reason = %reason, "input not read");
            dir::unreadable(&path, &reason)
        });
        let files = changes.files.into_iter().map(|path| dir::read_envelope(&path, self.max_input));
        for envelope in problems.chain(files) {
            if tx.blocking_send(Delivery { envelope, ack: None }).is_err() {
                anyhow::bail!("the pipeline stopped");
            }
        }
        Ok(())
    }

    /// Feeds new and changed files every few seconds until `stop` is set or `health`
    /// says the pipeline cannot go on.
    pub fn watch(
        &mut self,
        tx: &tokio::sync::mpsc::Sender<Delivery>,
        stop: &AtomicBool,
        health: &Health,
    ) -> anyhow::Result<()> {
        tracing::info!(inputs = self.inputs.len(), "watching inputs for new reports; Ctrl-C to stop");
        let mut last_scan = std::time::Instant::now();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(problem) = health.problem() {
                anyhow::bail!("stopping: {problem}");
            }
            // Short sleeps keep a stop prompt; scans happen every WATCH_INTERVAL.
            std::thread::sleep(Duration::from_millis(200));
            if last_scan.elapsed() >= WATCH_INTERVAL {
                let changed = self.changed();
                self.feed(changed, tx)?;
                last_scan = std::time::Instant::now();
            }
        }
        tracing::info!("stopping: finishing what is in flight");
        Ok(())
    }
}
