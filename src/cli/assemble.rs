//! The one assembler of every long-running command: sources → queue → sink, built from
//! the sink backward, with one [`Shutdown`] and one tokio runtime.
//!
//! ```text
//!  run      files, HTTP, IMAP ──┐                      ┌─> pipeline: SQLite + detection hook ─> alert sinks
//!  detect   Kafka (own group) ──┼─> queue (bounded) ───┼─> pipeline: SQLite + detection hook ─> alert sinks
//!  process  Kafka (group) ──────┤                      ├─> pipeline: ClickHouse (+ dead-letter topic)
//!  ingest   files, HTTP, IMAP ──┘                      └─> Kafka publisher
//! ```
//!
//! Order of things (Quickwit's indexing pipeline is the model): the sink starts first,
//! on a thread of its own, holding the queue's receiver; then each source, on a thread
//! of its own, with a clone of the queue's sender. A source runs until its work is done
//! (a one-shot file feed) or until the shutdown triggers (a signal, a failing store, a
//! failing source), and returns having dropped its sender. Completion is the queue's:
//! once the last sender is gone the queue closes, the sink drains what is in it, commits
//! and returns — so everything a source was told is stored, is.

use std::thread::JoinHandle;

use anyhow::Context;
use tokio::sync::mpsc;

use ruaflow_processor::pipeline::{self, CommitHook, Delivery, PipelineConfig, Progress};
use ruaflow_processor::store::Store;
use ruaflow_schema::Shutdown;

/// How many workers the process's runtime has. Sources wait on the network and the
/// pipeline has threads of its own, so two are plenty.
const RUNTIME_WORKERS: usize = 2;

/// The process's tokio runtime (one per command): sources, clients and signals share it.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RUNTIME_WORKERS)
        .thread_name("ruaflow-rt")
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Triggers `shutdown` on SIGINT or SIGTERM (a task on `runtime`).
pub fn stop_on_signals(runtime: &tokio::runtime::Runtime, shutdown: &Shutdown) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let _guard = runtime.enter();
        let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        let shutdown = shutdown.clone();
        runtime.spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "stopping: finishing what is in flight");
            shutdown.trigger(format!("stopped by {name}"));
        });
    }
    #[cfg(not(unix))]
    {
        let shutdown = shutdown.clone();
        runtime.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                shutdown.trigger("stopped by Ctrl-C");
            }
        });
    }
    Ok(())
}

/// Something that feeds the queue.
pub trait Source: Send {
    /// What it is, for logs and errors.
    fn name(&self) -> String;

    /// True for a source that reads what is there and ends (`--once`): its failure is
    /// reported when the run ends, without stopping the other sources.
    fn one_shot(&self) -> bool {
        false
    }

    /// Feeds `queue` until its work is done or `shutdown` triggers; returns having
    /// dropped `queue`. Async sources run on `runtime` (blocking this thread).
    fn run(
        self: Box<Self>,
        queue: mpsc::Sender<Delivery>,
        shutdown: &Shutdown,
        runtime: &tokio::runtime::Handle,
    ) -> anyhow::Result<()>;
}

/// A started sink: the thread that drains the queue.
pub type Sink<T> = JoinHandle<anyhow::Result<T>>;

/// The pipeline as a sink: parse workers and one writer into `store`, `hook` after each
/// commit. `dedupe_db`: a SQLite file whose inputs the workers skip unparsed when
/// byte-identical.
pub struct Pipeline<S: Store> {
    pub store: S,
    pub dedupe_db: Option<std::path::PathBuf>,
    pub config: PipelineConfig,
    pub hook: Box<dyn CommitHook<S>>,
    pub progress: std::sync::Arc<Progress>,
}

impl<S: Store + 'static> Pipeline<S> {
    /// Starts the pipeline on a thread of its own, draining `queue`; it returns the
    /// store once the queue closed and everything in it is stored.
    pub fn start(self, queue: mpsc::Receiver<Delivery>) -> anyhow::Result<Sink<S>> {
        let Pipeline { store, dedupe_db, config, mut hook, progress } = self;
        let thread = std::thread::Builder::new().name("pipeline".into()).spawn(move || {
            pipeline::run(store, dedupe_db, queue, &config, progress, &mut *hook).map_err(anyhow::Error::from)
        })?;
        Ok(thread)
    }
}

/// Runs `sources` into the sink `start_sink` makes of the queue, until every source is
/// done and the sink has drained the queue; returns what the sink returns. A source that
/// fails triggers the shutdown (the others stop too) unless it is one-shot; either way
/// its error is returned once the sink drained what was fed.
pub fn assemble<T: Send + 'static>(
    start_sink: impl FnOnce(mpsc::Receiver<Delivery>) -> anyhow::Result<Sink<T>>,
    sources: Vec<Box<dyn Source>>,
    shutdown: &Shutdown,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<T> {
    let (queue, received) = ruaflow_ingest::queue::local::<Delivery>();
    let sink = start_sink(received)?;
    let mut running = Vec::with_capacity(sources.len());
    for source in sources {
        let (queue, shutdown, runtime) = (queue.clone(), shutdown.clone(), runtime.clone());
        let (name, one_shot) = (source.name(), source.one_shot());
        let thread = std::thread::Builder::new().name(format!("source {name}")).spawn(move || {
            let ran = source.run(queue, &shutdown, &runtime);
            if let (Err(err), false) = (&ran, one_shot) {
                tracing::error!(source = %name, error = %format!("{err:#}"), "source failed; stopping");
                shutdown.trigger(format!("{name} failed: {err:#}"));
            }
            ran
        })?;
        running.push(thread);
    }
    drop(queue);
    let mut failed = None;
    for thread in running {
        let ran = thread.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a source thread panicked")));
        if let Err(err) = ran {
            failed.get_or_insert(err);
        }
    }
    let drained = sink.join().map_err(|_| anyhow::anyhow!("the pipeline thread panicked"))?;
    match failed {
        Some(err) => Err(err),
        None => drained,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruaflow_schema::{Envelope, Source as Kind};

    /// Sends `n` deliveries, then waits for the shutdown unless one-shot.
    struct Counting {
        n: usize,
        one_shot: bool,
    }

    impl Source for Counting {
        fn name(&self) -> String {
            "counting".into()
        }

        fn run(
            self: Box<Self>,
            queue: mpsc::Sender<Delivery>,
            shutdown: &Shutdown,
            _: &tokio::runtime::Handle,
        ) -> anyhow::Result<()> {
            for i in 0..self.n {
                let envelope = Envelope::new(vec![b'x'; i + 1], Kind::Dir, format!("{i}"), 0);
                queue
                    .blocking_send(Delivery { envelope, ack: None })
                    .map_err(|_| anyhow::anyhow!("queue closed"))?;
            }
            if !self.one_shot {
                shutdown.wait_timeout(std::time::Duration::from_secs(30));
            }
            Ok(())
        }
    }

    fn counting_sink(queue: mpsc::Receiver<Delivery>) -> anyhow::Result<Sink<usize>> {
        let mut queue = queue;
        Ok(std::thread::spawn(move || {
            let mut n = 0;
            while queue.blocking_recv().is_some() {
                n += 1;
            }
            Ok(n)
        }))
    }

    #[test]
    fn the_sink_drains_everything_once_the_sources_are_done() {
        let runtime = runtime().expect("runtime");
        let shutdown = Shutdown::new();
        let sources: Vec<Box<dyn Source>> =
            vec![Box::new(Counting { n: 3, one_shot: true }), Box::new(Counting { n: 4, one_shot: true })];
        let n = assemble(counting_sink, sources, &shutdown, runtime.handle()).expect("assembled");
        assert_eq!(n, 7);
        assert!(!shutdown.is_triggered(), "one-shot sources end the run without a stop");
    }

    #[test]
    fn a_stop_ends_waiting_sources_and_the_queue_drains() {
        let runtime = runtime().expect("runtime");
        let shutdown = Shutdown::new();
        let stopper = shutdown.clone();
        let started = std::time::Instant::now();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            stopper.trigger("test");
        });
        let sources: Vec<Box<dyn Source>> = vec![Box::new(Counting { n: 5, one_shot: false })];
        let n = assemble(counting_sink, sources, &shutdown, runtime.handle()).expect("assembled");
        assert_eq!(n, 5);
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "the stop ended the wait");
    }
}
