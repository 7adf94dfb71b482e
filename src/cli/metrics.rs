//! `[metrics] listen`: Prometheus `/metrics` of `ruaflow run`, on an address of its own.
//!
//! What it shows: the pipeline's counters (`ruaflow_reports_total`, `…_records_total`,
//! `…_messages_total`, `…_dead_letters_total`, `…_failure_reports_total`,
//! `…_duplicate_reports_total`, `…_duplicate_inputs_total`, `…_inputs_total`), set from
//! the pipeline's own tallies at each scrape; the queue's depth (`ruaflow_queue_depth`),
//! detection time per commit (`ruaflow_detection_seconds`) and alert notices
//! (`ruaflow_alert_notices_total`), recorded where they happen; and the HTTP source's
//! counters when `[http]` is served.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;

use ruaflow_processor::pipeline::Progress;

/// Binds `listen` and serves `/metrics` on `runtime` until the process ends.
pub fn serve(
    listen: SocketAddr,
    runtime: &tokio::runtime::Runtime,
    progress: Arc<Progress>,
) -> anyhow::Result<()> {
    let handle = ruaflow_ingest::metrics::prometheus();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(listen))
        .with_context(|| format!("cannot listen on {listen} for [metrics]"))?;
    tracing::info!(listen = %listen, "serving /metrics");
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let s = progress.summary();
            for (name, value) in [
                ("ruaflow_inputs_total", s.envelopes),
                ("ruaflow_duplicate_inputs_total", s.duplicate_envelopes),
                ("ruaflow_reports_total", s.reports),
                ("ruaflow_duplicate_reports_total", s.duplicate_reports),
                ("ruaflow_records_total", s.records),
                ("ruaflow_messages_total", s.messages),
                ("ruaflow_dead_letters_total", s.dead_letters),
                ("ruaflow_failure_reports_total", s.failure_reports),
            ] {
                ::metrics::counter!(name).absolute(value);
            }
            std::future::ready(handle.render())
        }),
    );
    runtime.spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "the metrics endpoint failed");
        }
    });
    Ok(())
}
