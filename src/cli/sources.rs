//! The sources the commands assemble (see [`super::assemble`]): input files and
//! directories, the HTTP endpoint, the IMAP mailboxes and a Kafka consumer group. Each
//! feeds the queue until its work is done or the shutdown triggers.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;

use ruaflow_ingest::dir::{self, DirConfig};
use ruaflow_ingest::http::{HttpConfig, HttpSource};
use ruaflow_ingest::imap::{ImapConfig, ImapSource};
use ruaflow_ingest::kafka::Consumer;
use ruaflow_processor::pipeline::Progress;
use ruaflow_schema::{Delivery, Health, Limits, Shutdown};

use super::assemble::Source;
use super::config::Config;

/// How often watched inputs are scanned for new files.
const WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// Files and directories given on the command line, read into deliveries: once, or
/// watched for new and changed files. What cannot be read becomes a delivery that says
/// why (a dead letter), never an error that stops the feed.
pub struct FileSource {
    inputs: Vec<PathBuf>,
    config: DirConfig,
    max_input: u64,
    once: bool,
    /// Where a progress bar is kept while files are processed (on a terminal only), so
    /// the command can clear it once they are stored.
    bar: Option<(Arc<Progress>, BarSlot)>,
}

/// Where a source keeps the progress bar it shows, for its command to clear.
pub type BarSlot = Arc<Mutex<Option<indicatif::ProgressBar>>>;

impl FileSource {
    /// A feed of the files under `inputs`; each is read up to `max_input_bytes` (one
    /// byte more, so the processor can tell it is over the cap and dead-letter it).
    /// Fails when an input named on the command line does not exist (a usage error).
    pub fn new(inputs: &[PathBuf], config: &Config, once: bool) -> anyhow::Result<Self> {
        if let Some(missing) = inputs.iter().find(|p| std::fs::symlink_metadata(p).is_err()) {
            anyhow::bail!("input {} does not exist", missing.display());
        }
        Ok(Self {
            inputs: inputs.to_vec(),
            config: config.files.clone(),
            max_input: config.limits.max_input_bytes,
            once,
            bar: None,
        })
    }

    /// Shows a progress bar over the first scan's inputs (when stderr is a terminal),
    /// kept in `slot` for the caller to clear.
    pub fn with_progress(
        mut self,
        progress: Arc<Progress>,
        slot: Arc<Mutex<Option<indicatif::ProgressBar>>>,
    ) -> Self {
        self.bar = Some((progress, slot));
        self
    }

    /// Reads each file into a delivery on `queue` (waiting while it is full); each
    /// problem becomes a delivery carrying its reason. Stops early on a shutdown.
    fn feed(
        &self,
        changes: dir::Changes,
        queue: &mpsc::Sender<Delivery>,
        shutdown: &Shutdown,
    ) -> anyhow::Result<()> {
        let problems = changes.problems.into_iter().map(|(path, reason)| {
            tracing::warn!(path = %path.display(), reason = %reason, "input not read");
            dir::unreadable(&path, &reason)
        });
        let files = changes.files.into_iter().map(|path| dir::read_envelope(&path, self.max_input));
        for envelope in problems.chain(files) {
            if shutdown.is_triggered() {
                break;
            }
            if queue.blocking_send(Delivery { envelope, ack: None }).is_err() {
                anyhow::bail!("the pipeline stopped");
            }
        }
        Ok(())
    }
}

impl Source for FileSource {
    fn name(&self) -> String {
        "files".into()
    }

    fn run(
        self: Box<Self>,
        queue: mpsc::Sender<Delivery>,
        shutdown: &Shutdown,
        _: &tokio::runtime::Handle,
    ) -> anyhow::Result<()> {
        let mut seen = dir::Seen::default();
        let first = seen.changed(&self.inputs, &self.config);
        if let Some((progress, slot)) = &self.bar {
            let total = (first.files.len() + first.problems.len()) as u64;
            if let Ok(mut slot) = slot.lock() {
                *slot = progress_bar(total, progress);
            }
        }
        self.feed(first, &queue, shutdown)?;
        if self.once {
            return Ok(());
        }
        tracing::info!(inputs = self.inputs.len(), "watching inputs for new reports; Ctrl-C to stop");
        // A scan every WATCH_INTERVAL; the shutdown cuts the wait short.
        while !shutdown.wait_timeout(WATCH_INTERVAL) {
            let changed = seen.changed(&self.inputs, &self.config);
            self.feed(changed, &queue, shutdown)?;
        }
        Ok(())
    }
}

/// A progress bar on stderr while files are processed, only when stderr is a terminal.
fn progress_bar(total: u64, progress: &Arc<Progress>) -> Option<indicatif::ProgressBar> {
    if total < 2 || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} inputs {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let ticker = bar.clone();
    let progress = Arc::clone(progress);
    // A display refresh, not a wait for a signal: it ends when the bar is finished.
    std::thread::spawn(move || {
        while !ticker.is_finished() {
            let s = progress.summary();
            ticker.set_position(s.envelopes + s.duplicate_envelopes);
            ticker.set_message(format!("{} records", s.records));
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    Some(bar)
}

/// The HTTP endpoint, bound (so a busy port is an error before anything runs).
pub struct HttpFeed {
    source: HttpSource,
}

impl HttpFeed {
    /// Resolves the token and binds `http.listen`; POSTs are refused while `health`
    /// reports a problem.
    pub fn bind(
        http: &HttpConfig,
        limits: &Limits,
        health: Health,
        runtime: &tokio::runtime::Runtime,
    ) -> anyhow::Result<Self> {
        let token = http.resolve_token()?;
        if token.is_none() {
            tracing::warn!(
                env = ruaflow_ingest::http::TOKEN_ENV,
                "no [http] token configured: POST /v1/reports refuses every upload"
            );
        }
        let source = runtime.block_on(HttpSource::bind(http, token, limits.clone(), health))?;
        tracing::info!(listen = %source.local_addr()?, "http endpoint ready");
        Ok(Self { source })
    }
}

impl Source for HttpFeed {
    fn name(&self) -> String {
        "http".into()
    }

    fn run(
        self: Box<Self>,
        queue: mpsc::Sender<Delivery>,
        shutdown: &Shutdown,
        runtime: &tokio::runtime::Handle,
    ) -> anyhow::Result<()> {
        // Returns once every request in flight has been answered (each waits for its
        // commit at most `ack_timeout_ms`).
        runtime.block_on(self.source.serve(queue, shutdown.clone()))?;
        tracing::info!("http endpoint stopped");
        Ok(())
    }
}

/// The `[[imap]]` mailboxes, one task each: watched until the shutdown, or (one-shot)
/// read as they are now.
pub struct ImapFeed {
    sources: Vec<(String, ImapSource)>,
    once: bool,
}

impl ImapFeed {
    /// Checks secrets and TLS setups (an error here stops the command before anything
    /// connects).
    pub fn new(mailboxes: &[ImapConfig], limits: &Limits, once: bool) -> anyhow::Result<Self> {
        let sources = mailboxes
            .iter()
            .map(|imap| {
                let name = imap.mailbox_name();
                let source = ImapSource::new(imap.clone(), limits.clone())
                    .with_context(|| format!("[[imap]] {name}"))?;
                Ok((name, source))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { sources, once })
    }
}

impl Source for ImapFeed {
    fn name(&self) -> String {
        "imap".into()
    }

    fn one_shot(&self) -> bool {
        self.once
    }

    /// Watching: each mailbox finishes the message in flight (its commit) and returns
    /// on the shutdown. One-shot: each reads what it holds now; the run fails naming
    /// every mailbox that could not be read (what was read is stored all the same).
    fn run(
        self: Box<Self>,
        queue: mpsc::Sender<Delivery>,
        shutdown: &Shutdown,
        runtime: &tokio::runtime::Handle,
    ) -> anyhow::Result<()> {
        let once = self.once;
        let tasks: Vec<_> = self
            .sources
            .into_iter()
            .map(|(name, source)| {
                let (queue, shutdown) = (queue.clone(), shutdown.clone());
                let task = runtime.spawn(async move {
                    if once {
                        source.once(queue, shutdown).await.map(|_| ())
                    } else {
                        source.run(queue, shutdown).await;
                        Ok(())
                    }
                });
                (name, task)
            })
            .collect();
        drop(queue);
        let failed: Vec<String> = runtime.block_on(async {
            let mut failed = Vec::new();
            for (name, task) in tasks {
                match task.await {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => failed.push(format!("{name}: {err}")),
                    Err(err) => failed.push(format!("{name}: {err}")),
                }
            }
            failed
        });
        match failed.as_slice() {
            [] => Ok(()),
            [one] => anyhow::bail!("imap mailbox not read: {one}"),
            _ => anyhow::bail!("{} imap mailboxes not read:\n  {}", failed.len(), failed.join("\n  ")),
        }
    }
}

/// A member of a Kafka consumer group: every message a delivery whose acknowledgement
/// marks its offset done.
pub struct KafkaFeed {
    pub consumer: Consumer,
    pub health: Health,
    /// How long a stop waits for in-flight deliveries to be stored.
    pub drain: Duration,
}

impl Source for KafkaFeed {
    fn name(&self) -> String {
        "kafka".into()
    }

    fn run(
        self: Box<Self>,
        queue: mpsc::Sender<Delivery>,
        shutdown: &Shutdown,
        _: &tokio::runtime::Handle,
    ) -> anyhow::Result<()> {
        self.consumer.run(queue, shutdown, &self.health, self.drain);
        Ok(())
    }
}
