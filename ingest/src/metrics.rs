//! The process's Prometheus recorder: every crate's `metrics` counters end up in it, and
//! `/metrics` (of the HTTP endpoint, `process`, `detect`) renders it.
//!
//! Metrics are low-cardinality: never a domain, an address or a report id as a label;
//! those go to the store.

use std::sync::OnceLock;

use metrics_exporter_prometheus::PrometheusHandle;

/// The recorder, installed as the process's global `metrics` recorder on first use.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics will be empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!("ruaflow_http_requests_total", "HTTP requests by endpoint and status class");
    metrics::describe_counter!("ruaflow_http_reports_accepted_total", "POSTed bodies stored, by endpoint");
    metrics::describe_counter!(
        "ruaflow_http_reports_rejected_total",
        "POSTs refused or not stored, by endpoint and reason"
    );
    metrics::describe_counter!(
        "ruaflow_http_connections_refused_total",
        "HTTP connections closed at once, by reason (per_client: the client has too many open)"
    );
    metrics::describe_gauge!("ruaflow_http_connections_open", "HTTP connections open");
}
