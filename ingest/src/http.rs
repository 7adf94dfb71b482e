//! The `http` source: reports POSTed over HTTP (axum on tokio).
//!
//! Input: `POST /v1/tlsrpt` (RFC 8460 §3 HTTPS delivery: `application/tlsrpt+gzip` or
//! `application/tlsrpt+json`, no authentication) and `POST /v1/reports` (bearer token; a
//! raw body holding any supported file: xml, gz, zip, json, eml — or a
//! `multipart/form-data` upload, one report file per file part). Output: one
//! [`Delivery`] per accepted body on the queue, source `http`, origin the remote address.
//! Also `GET /healthz` and `GET /metrics` (Prometheus text).
//!
//! Invariant (DESIGN.md "Nothing lost"): a POST is answered 2xx only after the store
//! committed the batch holding its body — the handler waits for the delivery's
//! acknowledgement, which the processor's durability barrier fires after the commit. A
//! body that holds no readable report is still enqueued (the pipeline records it as a
//! dead letter with the reason) and answered 400 after that commit. When the
//! acknowledgement does not come within `ack_timeout_ms` the answer is 503: the client
//! retries, and idempotency by report identity makes the retry count once.
//!
//! A multipart upload is answered once every file in it is stored; 400 names the files
//! that held no readable report (they are dead letters, the others are stored).
//!
//! Answers: 200 stored, 400 no readable report (JSON `{"error": …}`), 401 missing or
//! wrong token, 413 body above `max_body_bytes` (refused from `Content-Length`, or as
//! soon as the stream passes the cap; never buffered past it), 415 a content type
//! `/v1/tlsrpt` does not take, 429 rate limited per client IP, 503 not stored in time.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use ruaflow_schema::{Delivery, Envelope, Limits, Parsed, Source};

/// The environment variable that supplies the upload token when the config names none.
pub const TOKEN_ENV: &str = "RUAFLOW_HTTP_TOKEN";

/// Client addresses the rate limiter tracks at once. When full, entries idle for a
/// minute (whose buckets would be full anyway) are dropped; if it is still full, new
/// clients are refused with 429 until some go idle, so memory stays bounded under a flood
/// from many addresses.
const MAX_TRACKED_CLIENTS: usize = 65_536;

/// The `[http]` section: where the endpoint listens and how it guards itself.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port to listen on, e.g. `"0.0.0.0:8443"`. Plain HTTP unless
    /// `tls_cert` and `tls_key` are set (or a TLS proxy in front provides RFC 8460's HTTPS).
    pub listen: SocketAddr,
    /// Certificate chain (PEM) to serve HTTPS with; needs `tls_key`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Bearer token required by `POST /v1/reports`. Prefer `token_file` or the
    /// `RUAFLOW_HTTP_TOKEN` environment variable to keep it out of the file.
    #[serde(default)]
    pub token: Option<String>,
    /// File holding the bearer token (surrounding whitespace ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Largest request body accepted, in bytes (32 MiB, the Envelope cap). Larger bodies
    /// are answered 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// POSTs allowed per client IP (IPv6: per /64) per minute, as a token bucket that
    /// allows a burst of this size; 0 disables the limit.
    #[serde(default = "default_rate_limit_per_minute")]
    pub rate_limit_per_minute: u32,
    /// How long a POST waits for the store to commit its body, in milliseconds, before
    /// it is answered 503 (the client retries).
    #[serde(default = "default_ack_timeout_ms")]
    pub ack_timeout_ms: u64,
}

fn default_max_body_bytes() -> u64 {
    32 << 20
}

fn default_rate_limit_per_minute() -> u32 {
    600
}

fn default_ack_timeout_ms() -> u64 {
    30_000
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("listen", &self.listen)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("token_file", &self.token_file)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("ack_timeout_ms", &self.ack_timeout_ms)
            .finish()
    }
}

/// What can go wrong setting up or running the endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// A config value is out of range or contradicts another.
    #[error("invalid [http] config: {0}")]
    Config(&'static str),
    /// The token file could not be read.
    #[error("cannot read token file {path}: {source}")]
    TokenFile {
        /// The file named by `token_file`.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("http server failed: {0}")]
    Serve(std::io::Error),
    /// The TLS certificate or key could not be used.
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

impl HttpConfig {
    /// Checks the values that need no IO. Called when the config file is loaded.
    pub fn validate(&self) -> Result<(), HttpError> {
        if self.token.is_some() && self.token_file.is_some() {
            return Err(HttpError::Config("set token or token_file, not both"));
        }
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(HttpError::Config("token is empty"));
        }
        if self.max_body_bytes == 0 {
            return Err(HttpError::Config("max_body_bytes must be above 0"));
        }
        if self.ack_timeout_ms == 0 {
            return Err(HttpError::Config("ack_timeout_ms must be above 0"));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(HttpError::Config("set both tls_cert and tls_key, or neither"));
        }
        Ok(())
    }

    /// The upload token: `token`, else the contents of `token_file`, else the
    /// `RUAFLOW_HTTP_TOKEN` environment variable; `None` when none is set (then
    /// `/v1/reports` refuses every upload with 401).
    pub fn resolve_token(&self) -> Result<Option<Token>, HttpError> {
        if let Some(token) = &self.token {
            return Ok(Some(Token(token.trim().to_owned())));
        }
        if let Some(path) = &self.token_file {
            let text = std::fs::read_to_string(path)
                .map_err(|source| HttpError::TokenFile { path: path.clone(), source })?;
            let token = text.trim();
            if token.is_empty() {
                return Err(HttpError::Config("token_file is empty"));
            }
            return Ok(Some(Token(token.to_owned())));
        }
        Ok(std::env::var(TOKEN_ENV).ok().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).map(Token))
    }
}

/// A bearer token, redacted in `Debug`, compared in constant time.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// True when `presented` is this token. Time depends on the length only.
    fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        expected.len() == presented.len()
            && expected.iter().zip(presented).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([redacted])")
    }
}

/// The Prometheus recorder behind `GET /metrics`, installed as the process's global
/// `metrics` recorder on first use (so every crate's counters show up there).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics will be empty");
            }
            metrics::describe_counter!(
                "ruaflow_http_requests_total",
                "HTTP requests by endpoint and status class"
            );
            metrics::describe_counter!(
                "ruaflow_http_reports_accepted_total",
                "POSTed bodies stored, by endpoint"
            );
            metrics::describe_counter!(
                "ruaflow_http_reports_rejected_total",
                "POSTs refused or not stored, by endpoint and reason"
            );
            handle
        })
        .clone()
}

/// The endpoint, bound and ready to serve.
pub struct HttpSource {
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<AppState>,
}

struct AppState {
    token: Option<Token>,
    queue: mpsc::Sender<Delivery>,
    limits: Limits,
    max_body_bytes: u64,
    ack_timeout: Duration,
    limiter: RateLimiter,
    metrics: PrometheusHandle,
}

impl HttpSource {
    /// Binds `config.listen`; deliveries go to `queue`, validated against `limits`.
    /// Must run inside a tokio runtime.
    pub async fn bind(
        config: &HttpConfig,
        token: Option<Token>,
        limits: Limits,
        queue: mpsc::Sender<Delivery>,
    ) -> Result<Self, HttpError> {
        config.validate()?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(crate::https::acceptor(cert, key)?),
            _ => None,
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| HttpError::Bind { addr: config.listen, source })?;
        let state = Arc::new(AppState {
            token,
            queue,
            limits,
            max_body_bytes: config.max_body_bytes,
            ack_timeout: Duration::from_millis(config.ack_timeout_ms),
            limiter: RateLimiter::new(config.rate_limit_per_minute),
            metrics: prometheus(),
        });
        Ok(Self { listener, tls, state })
    }

    /// The bound address (the real port when `listen` asked for port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, HttpError> {
        self.listener.local_addr().map_err(HttpError::Serve)
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish (each waits for its acknowledgement or its timeout) and returns. The queue
    /// sender held by the endpoint is dropped on return.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), HttpError> {
        let app = router(self.state).into_make_service_with_connect_info::<SocketAddr>();
        match self.tls {
            Some(acceptor) => {
                use axum::serve::ListenerExt;
                let listener =
                    crate::https::TlsListener::new(self.listener, acceptor).map_err(HttpError::Serve)?;
                // `tap_io` gives the TLS listener the remote-address connect info.
                axum::serve(listener.tap_io(|_| {}), app).with_graceful_shutdown(shutdown).await
            }
            None => axum::serve(self.listener, app).with_graceful_shutdown(shutdown).await,
        }
        .map_err(HttpError::Serve)
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .route("/v1/tlsrpt", post(post_tlsrpt))
        .route("/v1/reports", post(post_reports))
        .fallback(not_found)
        // Bodies are read by `read_capped`, which enforces `max_body_bytes` itself.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Which endpoint answered, a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Tlsrpt,
    Reports,
    Healthz,
    Metrics,
    Other,
}

impl Endpoint {
    fn as_str(self) -> &'static str {
        match self {
            Endpoint::Tlsrpt => "tlsrpt",
            Endpoint::Reports => "reports",
            Endpoint::Healthz => "healthz",
            Endpoint::Metrics => "metrics",
            Endpoint::Other => "other",
        }
    }
}

fn count_request(endpoint: Endpoint, status: StatusCode) {
    let class = match status.as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!("ruaflow_http_requests_total", "endpoint" => endpoint.as_str(), "status" => class)
        .increment(1);
}

/// A JSON error answer, counted as a rejection with a low-cardinality `reason`.
fn reject(endpoint: Endpoint, status: StatusCode, reason: &'static str, message: &str) -> Response {
    metrics::counter!("ruaflow_http_reports_rejected_total", "endpoint" => endpoint.as_str(), "reason" => reason)
        .increment(1);
    count_request(endpoint, status);
    json(status, &serde_json::json!({ "error": message }))
}

/// A JSON answer.
fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

async fn healthz() -> Response {
    count_request(Endpoint::Healthz, StatusCode::OK);
    "ok".into_response()
}

async fn render_metrics(State(state): State<Arc<AppState>>) -> Response {
    count_request(Endpoint::Metrics, StatusCode::OK);
    let text = state.metrics.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

async fn not_found() -> Response {
    count_request(Endpoint::Other, StatusCode::NOT_FOUND);
    json(StatusCode::NOT_FOUND, &serde_json::json!({ "error": "not found" }))
}

async fn post_tlsrpt(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let endpoint = Endpoint::Tlsrpt;
    if let Some(answer) = state.rate_limited(endpoint, peer.ip()) {
        return answer;
    }
    // RFC 8460 §3 names the two media types; senders that label the body generically
    // (or not at all) are accepted too and sniffed by content, like every other input.
    let media = media_type(request.headers());
    let accepted = matches!(
        media.as_deref(),
        None | Some(
            "application/tlsrpt+gzip"
                | "application/tlsrpt+json"
                | "application/json"
                | "application/gzip"
                | "application/x-gzip"
                | "application/octet-stream"
        )
    );
    if !accepted {
        return reject(
            endpoint,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "media_type",
            "content type must be application/tlsrpt+gzip or application/tlsrpt+json",
        );
    }
    state.accept(endpoint, peer, request).await
}

async fn post_reports(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let endpoint = Endpoint::Reports;
    if let Some(answer) = state.rate_limited(endpoint, peer.ip()) {
        return answer;
    }
    let unauthorized = |message: &str| {
        let mut answer = reject(endpoint, StatusCode::UNAUTHORIZED, "unauthorized", message);
        answer.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        answer
    };
    let Some(token) = &state.token else {
        return unauthorized("uploads are disabled: no token is configured on this server");
    };
    match bearer(request.headers()) {
        None => return unauthorized("missing bearer token"),
        Some(presented) if !token.matches(presented) => return unauthorized("invalid bearer token"),
        Some(_) => {}
    }
    state.accept(endpoint, peer, request).await
}

impl AppState {
    fn rate_limited(&self, endpoint: Endpoint, ip: IpAddr) -> Option<Response> {
        if self.limiter.allow(ip, Instant::now()) {
            return None;
        }
        let mut answer = reject(
            endpoint,
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "rate limit exceeded; retry later",
        );
        let wait_secs = 60 / u64::from(self.limiter.per_minute.max(1)) + 1;
        answer.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait_secs));
        Some(answer)
    }

    /// Reads, validates and enqueues one body, then answers once the store committed it.
    async fn accept(&self, endpoint: Endpoint, peer: SocketAddr, request: Request) -> Response {
        let content_type =
            request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (parts, body) = request.into_parts();
        let bytes = match read_capped(&parts.headers, body, self.max_body_bytes).await {
            Ok(bytes) => bytes,
            Err(BodyError::TooLarge) => {
                tracing::warn!(peer = %peer, max_body_bytes = self.max_body_bytes, "http body too large");
                let message = format!("body larger than {} bytes", self.max_body_bytes);
                let mut answer = reject(endpoint, StatusCode::PAYLOAD_TOO_LARGE, "too_large", &message);
                // The rest of the body is not read: the connection cannot be reused.
                answer.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                return answer;
            }
            Err(BodyError::Read(err)) => {
                tracing::debug!(peer = %peer, error = %err, "http body read failed");
                return reject(
                    endpoint,
                    StatusCode::BAD_REQUEST,
                    "body_read",
                    "cannot read the request body",
                );
            }
        };

        // A multipart upload (`/v1/reports` only) carries one report file per file part.
        let uploads = match (endpoint, content_type.as_deref().and_then(crate::multipart::boundary)) {
            (Endpoint::Reports, Some(boundary)) => match file_parts(&bytes, &boundary) {
                Ok(uploads) => uploads,
                Err(message) => return reject(endpoint, StatusCode::BAD_REQUEST, "multipart", &message),
            },
            _ => vec![Upload { bytes, filename: None, content_type }],
        };

        // Parse once here so the client learns at once whether each file was readable;
        // the pipeline parses again (streaming) when it stores it.
        let limits = self.limits.clone();
        let checked = tokio::task::spawn_blocking(move || {
            uploads
                .into_iter()
                .map(|upload| {
                    let verdict = validate(&upload.bytes, &limits);
                    (upload, verdict)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let Ok(checked) = checked else {
            return reject(endpoint, StatusCode::INTERNAL_SERVER_ERROR, "internal", "validation failed");
        };

        // One deadline covers both waiting for room on the queue (back-pressure from the
        // pipeline) and waiting for the commit.
        let deadline = tokio::time::Instant::now() + self.ack_timeout;
        let unavailable = |reason: &'static str, message: &str| {
            let mut answer = reject(endpoint, StatusCode::SERVICE_UNAVAILABLE, reason, message);
            answer.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            answer
        };
        let mut acks = Vec::with_capacity(checked.len());
        let mut verdicts = Vec::with_capacity(checked.len());
        for (upload, verdict) in checked {
            let mut envelope = Envelope::new(upload.bytes, Source::Http, peer.to_string(), unix_now());
            envelope.content_type = upload.content_type;
            envelope.filename = upload.filename.clone();
            let (ack_tx, ack_rx) = oneshot::channel::<()>();
            let delivery = Delivery {
                envelope,
                ack: Some(Box::new(move || {
                    // The client may have gone (timeout, disconnect): nothing to tell then.
                    let _ = ack_tx.send(());
                })),
            };
            match tokio::time::timeout_at(deadline, self.queue.send(delivery)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return unavailable("stopped", "the pipeline is stopping; retry later"),
                Err(_) => return unavailable("timeout", "the pipeline is busy; retry later"),
            }
            acks.push(ack_rx);
            verdicts.push((upload.filename, verdict));
        }
        for ack_rx in acks {
            match tokio::time::timeout_at(deadline, ack_rx).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    return unavailable("stopped", "the pipeline stopped before storing the report; retry")
                }
                Err(_) => {
                    tracing::warn!(peer = %peer, ack_timeout_ms = self.ack_timeout.as_millis() as u64, "http upload not committed in time");
                    return unavailable("timeout", "not stored in time; retry later");
                }
            }
        }
        let reports: usize = verdicts.iter().filter_map(|(_, v)| v.as_ref().ok()).sum();
        let failed: Vec<String> = verdicts
            .iter()
            .filter_map(|(name, v)| {
                let reason = v.as_ref().err()?;
                Some(match name {
                    Some(name) => format!("{name}: {reason}"),
                    None => reason.clone(),
                })
            })
            .collect();
        if failed.is_empty() {
            metrics::counter!("ruaflow_http_reports_accepted_total", "endpoint" => endpoint.as_str())
                .increment(verdicts.len() as u64);
            count_request(endpoint, StatusCode::OK);
            json(
                StatusCode::OK,
                &serde_json::json!({ "status": "stored", "reports": reports, "files": verdicts.len() }),
            )
        } else {
            tracing::info!(peer = %peer, reasons = %failed.join("; "), "http upload held no readable report");
            reject(endpoint, StatusCode::BAD_REQUEST, "unreadable", &failed.join("; "))
        }
    }
}

/// One file of a request: the whole body, or a file part of a multipart upload.
struct Upload {
    bytes: Vec<u8>,
    filename: Option<String>,
    content_type: Option<String>,
}

/// The file parts of a multipart upload (parts with a filename; form fields are ignored).
fn file_parts(body: &[u8], boundary: &str) -> Result<Vec<Upload>, String> {
    let uploads: Vec<Upload> = crate::multipart::parts(body, boundary)?
        .into_iter()
        .filter(|p| p.filename.is_some())
        .map(|p| Upload { bytes: p.data.to_vec(), filename: p.filename, content_type: p.content_type })
        .collect();
    if uploads.is_empty() {
        return Err("the multipart upload holds no file part (a part with a filename)".into());
    }
    Ok(uploads)
}

/// How many reports `bytes` holds, or the reason it holds none.
fn validate(bytes: &[u8], limits: &Limits) -> Result<usize, String> {
    let found = ruaflow_schema::read_reports(bytes, limits);
    let readable = found.iter().filter(|l| !matches!(l.parsed, Parsed::Error(_))).count();
    if readable > 0 {
        return Ok(readable);
    }
    let reason = found.iter().find_map(|l| match &l.parsed {
        Parsed::Error(err) if l.location.is_empty() => Some(err.to_string()),
        Parsed::Error(err) => Some(format!("{}: {err}", l.location)),
        _ => None,
    });
    Err(reason.unwrap_or_else(|| "no report found".into()))
}

enum BodyError {
    TooLarge,
    Read(axum::Error),
}

/// The body, refused as soon as it is known to pass `max` bytes: from `Content-Length`
/// before reading anything, else while streaming. Never holds more than `max` bytes.
async fn read_capped(headers: &HeaderMap, mut body: Body, max: u64) -> Result<Vec<u8>, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(BodyError::TooLarge);
    }
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Read)?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() as u64 + data.len() as u64 > max {
                return Err(BodyError::TooLarge);
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

/// The media type of `Content-Type`, lowercase, without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    (!media.is_empty()).then_some(media)
}

/// The token of an `Authorization: Bearer …` header (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| rest.trim_ascii())
}

/// Token buckets per client: `per_minute` tokens, refilled continuously.
struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    fn new(per_minute: u32) -> Self {
        Self { per_minute, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `ip` (an IPv6 client counts per /64, the block one host
    /// usually holds), or says no.
    fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let key = match ip {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into())
            }
            IpAddr::V6(v6) => IpAddr::V4(v6.to_ipv4_mapped().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED)),
            v4 => v4,
        };
        let capacity = f64::from(self.per_minute);
        let Ok(mut buckets) = self.buckets.lock() else { return true };
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(&key) {
            buckets.retain(|_, b| now.duration_since(b.updated) < Duration::from_secs(60));
            if buckets.len() >= MAX_TRACKED_CLIENTS {
                return false;
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: capacity, updated: now });
        let refill = now.duration_since(bucket.updated).as_secs_f64() * capacity / 60.0;
        bucket.tokens = (bucket.tokens + refill).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn unix_now() -> i64 {
    crate::dir::unix_now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_validation_and_redaction() {
        let config: HttpConfig =
            from_json(r#"{"listen": "127.0.0.1:8080", "token": "s3cret"}"#).expect("parses");
        assert_eq!(config.max_body_bytes, 32 << 20);
        assert_eq!(config.rate_limit_per_minute, 600);
        config.validate().expect("valid");
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret") && debug.contains("[redacted]"), "{debug}");
        assert!(!format!("{:?}", config.resolve_token().expect("token")).contains("s3cret"));

        assert!(from_json(r#"{"listen": "127.0.0.1:8080", "max_body_mb": 1}"#).is_err(), "unknown key");
        let both: HttpConfig =
            from_json(r#"{"listen": "127.0.0.1:8080", "token": "a", "token_file": "/x"}"#).expect("parses");
        assert!(both.validate().is_err());
    }

    fn from_json(json: &str) -> Result<HttpConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn tokens_compare_exactly() {
        let token = Token::new("abc");
        assert!(token.matches(b"abc"));
        assert!(!token.matches(b"abd"));
        assert!(!token.matches(b"ab"));
        assert!(!token.matches(b""));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bEaReR tok"));
        assert_eq!(bearer(&headers), Some(&b"tok"[..]));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic dG9r"));
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn rate_limiter_allows_a_burst_then_refills() {
        let limiter = RateLimiter::new(3);
        let start = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        assert!((0..3).all(|_| limiter.allow(ip, start)));
        assert!(!limiter.allow(ip, start), "the burst is spent");
        assert!(limiter.allow("192.0.2.2".parse().expect("ip"), start), "per client");
        assert!(limiter.allow(ip, start + Duration::from_secs(20)), "one token per 20 s");
        // Two addresses in one IPv6 /64 share a bucket.
        let a: IpAddr = "2001:db8::1".parse().expect("ip");
        let b: IpAddr = "2001:db8::2".parse().expect("ip");
        assert!((0..3).all(|_| limiter.allow(a, start)));
        assert!(!limiter.allow(b, start));
        assert!(RateLimiter::new(0).allow(ip, start), "0 disables");
    }

    #[test]
    fn validation_names_the_reason() {
        let limits = Limits::default();
        let reason = validate(b"this is not a report", &limits).expect_err("garbage");
        assert!(!reason.is_empty());
        let json = br#"{"organization-name":"X","date-range":{"start-datetime":"2016-04-01T00:00:00Z","end-datetime":"2016-04-01T23:59:59Z"},"contact-info":"a@b","report-id":"r1","policies":[]}"#;
        assert_eq!(validate(json, &limits), Ok(1));
    }
}
