//! Alert latency: from the commit of the flood-bearing report to the alert arriving at
//! a webhook, through the real pipeline, detector and sink.
//!
//! ```text
//! cargo run --release -p ruaflow-processor --example alert_latency -- BASE.db FLOOD_FILE…
//! ```
//!
//! BASE.db is a store holding the weeks before the flood (made with `ruaflow run --once`
//! on a replay-flood data set without its flood-day files); each FLOOD_FILE is a report of
//! the flood's first day. For every file, the example copies the base store, feeds that
//! one file through the pipeline, and measures the time from the end of the commit that
//! stored it to the webhook receiving the alert. It prints each latency and the median.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ruaflow_processor::detect::{DetectConfig, DetectHook};
use ruaflow_processor::pipeline::{self, CommitHook, Delivery, PipelineConfig, Progress};
use ruaflow_processor::sink::{SinkConfig, Sinks, WebhookConfig, WebhookFormat};
use ruaflow_processor::sqlite::SqliteStore;
use ruaflow_schema::{Envelope, Source};

/// Records when each commit ended, then runs detection.
struct Timed<H> {
    committed: Arc<Mutex<Option<Instant>>>,
    inner: H,
}

impl<H: CommitHook<SqliteStore>> CommitHook<SqliteStore> for Timed<H> {
    fn after_commit(&mut self, store: &mut SqliteStore, touched: &[(String, i64)]) {
        if let Ok(mut at) = self.committed.lock() {
            at.get_or_insert_with(Instant::now);
        }
        self.inner.after_commit(store, touched);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (base, files) = args.split_first().ok_or("usage: alert_latency BASE.db FLOOD_FILE…")?;
    let mut latencies = Vec::new();
    for file in files {
        let dir = std::env::temp_dir().join(format!("ruaflow-latency-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let db = dir.join("t.db");
        std::fs::copy(base, &db)?;

        // A real HTTP endpoint: note when the first request arrives.
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let received: Arc<Mutex<Option<Instant>>> = Arc::default();
        let got = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut stream = stream;
                let mut buf = [0u8; 65536];
                let _ = stream.read(&mut buf);
                if let Ok(mut at) = got.lock() {
                    at.get_or_insert_with(Instant::now);
                }
                let _ =
                    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        let sinks = Sinks::start(&SinkConfig {
            webhooks: vec![WebhookConfig { url, bearer_token: None, format: WebhookFormat::Generic }],
            ..SinkConfig::default()
        })?;
        let committed: Arc<Mutex<Option<Instant>>> = Arc::default();
        let mut hook = Timed {
            committed: Arc::clone(&committed),
            inner: DetectHook {
                // The synthetic reports are months old: notify as if they were new.
                config: DetectConfig { notify_max_age_days: 100_000, ..DetectConfig::default() },
                notify: |alert: &_| sinks.emit(alert),
            },
        };
        let store = SqliteStore::open(&db)?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let bytes = std::fs::read(file)?;
        tx.blocking_send(Delivery {
            envelope: Envelope::new(bytes, Source::Dir, file.clone(), 0),
            ack: None,
        })?;
        drop(tx);
        let config =
            PipelineConfig { batch_interval: Duration::from_millis(100), ..PipelineConfig::default() };
        pipeline::run(store, Some(db.clone()), rx, &config, Arc::new(Progress::default()), &mut hook)?;
        sinks.flush(Duration::from_secs(10));
        let (Some(c), Some(r)) =
            (*committed.lock().map_err(|_| "lock")?, *received.lock().map_err(|_| "lock")?)
        else {
            println!("{file}: no alert");
            continue;
        };
        let ms = r.duration_since(c).as_secs_f64() * 1000.0;
        println!("{file}: {ms:.1} ms from commit to webhook");
        latencies.push(ms);
        std::fs::remove_dir_all(&dir)?;
    }
    latencies.sort_by(f64::total_cmp);
    if let Some(median) = latencies.get(latencies.len() / 2) {
        println!(
            "median {median:.1} ms, max {:.1} ms over {} runs",
            latencies[latencies.len() - 1],
            latencies.len()
        );
    }
    Ok(())
}
