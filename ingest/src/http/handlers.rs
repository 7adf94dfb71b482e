//! The endpoint's routes: what each answers, and under which caps.
//!
//! - `POST /v1/tlsrpt` (RFC 8460 §3 HTTPS delivery, no authentication): one TLS report,
//!   JSON or gzip-compressed JSON, and nothing else. Anything else is refused (415 for
//!   another format, 400 for JSON that is not a TLS report) and never enqueued, so a
//!   stranger can make this endpoint store only valid TLS reports.
//! - `POST /v1/reports` (bearer token): a raw body holding any supported file (xml, gz,
//!   zip, json, eml, mbox), or a `multipart/form-data` upload, one report file per file
//!   part. A body that holds no readable report is still enqueued (the pipeline records
//!   it as a dead letter with the reason) and answered 400 after that commit.
//! - `GET /healthz` (503 with the reason once the pipeline cannot store), `GET /metrics`.
//!
//! Invariant (DESIGN.md "Nothing lost"): a POST is answered 2xx only after the store
//! committed the batch holding its body. Caps: a body above `max_body_bytes` is refused
//! from `Content-Length`, or as soon as the stream passes it (413, never buffered past
//! it); a body not complete within `body_timeout_ms` is 408; bodies held at once are
//! capped in bytes (503 when full); bodies are checked by at most one task per core,
//! streaming (no report is held whole); the answer waits at most `ack_timeout_ms` for
//! the commit (503 after that: the client retries, and idempotency by report identity
//! makes the retry count once).
//!
//! Answers: 200 stored, 400 no readable report (JSON `{"error": …}`), 401 missing or
//! wrong token, 408 body too slow, 413 body too large, 415 not a TLS report on
//! `/v1/tlsrpt`, 429 rate limited per client, 503 busy, stopping or unhealthy.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use ruaflow_schema::{Delivery, Envelope, Error as SchemaError, Health, Limits, Source};

use super::config::Token;
use super::rate_limit::RateLimiter;

/// The state every handler shares.
pub(super) struct AppState {
    pub(super) token: Option<Token>,
    /// Set once the endpoint serves (see `HttpSource::serve`).
    pub(super) queue: Option<mpsc::Sender<Delivery>>,
    pub(super) limits: Limits,
    pub(super) max_body_bytes: u64,
    pub(super) body_timeout: Duration,
    pub(super) ack_timeout: Duration,
    pub(super) limiter: RateLimiter,
    pub(super) metrics: PrometheusHandle,
    /// Body bytes held at once, in KiB permits.
    pub(super) inflight: Arc<Semaphore>,
    /// Bodies being checked at once (one per core).
    pub(super) checking: Arc<Semaphore>,
    pub(super) health: Health,
}

pub(super) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .route("/v1/tlsrpt", post(post_tlsrpt))
        .route("/v1/reports", post(post_reports))
        .fallback(not_found)
        // Bodies are read by `read_body`, which enforces every body cap itself.
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
    let mut answer = json(status, &serde_json::json!({ "error": message }));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        answer.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    if matches!(status, StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT) {
        // The rest of the body is not read: the connection cannot be reused.
        answer.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    answer
}

/// A JSON answer.
fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    if let Some(problem) = state.health.problem() {
        count_request(Endpoint::Healthz, StatusCode::SERVICE_UNAVAILABLE);
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "status": "failing", "error": problem }),
        );
    }
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

/// The media types a TLS report may be labelled with: RFC 8460 §3 names the first two;
/// senders that label the body generically (or not at all) are accepted too, and the
/// body itself is checked either way.
fn tlsrpt_media_type(headers: &HeaderMap) -> bool {
    matches!(
        media_type(headers).as_deref(),
        None | Some(
            "application/tlsrpt+gzip"
                | "application/tlsrpt+json"
                | "application/json"
                | "application/gzip"
                | "application/x-gzip"
                | "application/octet-stream"
        )
    )
}

async fn post_tlsrpt(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let endpoint = Endpoint::Tlsrpt;
    if let Some(answer) = state.refuse_early(endpoint, peer.ip()) {
        return answer;
    }
    if !tlsrpt_media_type(request.headers()) {
        let message = "content type must be application/tlsrpt+gzip or application/tlsrpt+json";
        return reject(endpoint, StatusCode::UNSUPPORTED_MEDIA_TYPE, "media_type", message);
    }
    let content_type = content_type(request.headers());
    let (body, _held) = match state.read_body(endpoint, peer, request).await {
        Ok(read) => read,
        Err(answer) => return answer,
    };
    // Only a TLS report goes further: checked whole before anything is enqueued.
    let limits = state.limits.clone();
    let checked = state
        .check(
            move |body: &Vec<u8>| {
                ruaflow_schema::unpack::tlsrpt_delivery(body, &limits)
                    .and_then(|json| ruaflow_schema::tlsrpt::parse_report(&json, &limits))
                    .map(|_| ())
            },
            body,
        )
        .await;
    let body = match checked {
        Ok((body, Ok(()))) => body,
        Ok((_, Err(err))) => {
            tracing::info!(peer = %peer, error = %err, "tlsrpt refused");
            return match err {
                SchemaError::Unrecognized(_) | SchemaError::Empty => {
                    reject(endpoint, StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_tlsrpt", &err.to_string())
                }
                _ => reject(endpoint, StatusCode::BAD_REQUEST, "unreadable", &err.to_string()),
            };
        }
        Err(answer) => return answer,
    };
    let upload = Upload { bytes: body, filename: None, content_type };
    state.store(endpoint, peer, vec![(upload, Ok(1))]).await
}

async fn post_reports(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let endpoint = Endpoint::Reports;
    if let Some(answer) = state.refuse_early(endpoint, peer.ip()) {
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
    let content_type = content_type(request.headers());
    let (body, _held) = match state.read_body(endpoint, peer, request).await {
        Ok(read) => read,
        Err(answer) => return answer,
    };
    // A multipart upload carries one report file per file part.
    let uploads = match content_type.as_deref().and_then(ruaflow_schema::multipart::boundary) {
        Some(boundary) => match file_parts(&body, &boundary, state.limits.max_mime_parts as usize) {
            Ok(uploads) => uploads,
            Err(message) => return reject(endpoint, StatusCode::BAD_REQUEST, "multipart", &message),
        },
        None => vec![Upload { bytes: body, filename: None, content_type }],
    };
    // Checked here so the client learns at once whether each file was readable; the
    // pipeline reads it again when it stores it.
    let limits = state.limits.clone();
    let checked = state
        .check(
            move |uploads: &Vec<Upload>| {
                uploads.iter().map(|u| verdict(&u.bytes, &limits)).collect::<Vec<_>>()
            },
            uploads,
        )
        .await;
    match checked {
        Ok((uploads, verdicts)) => {
            state.store(endpoint, peer, uploads.into_iter().zip(verdicts).collect()).await
        }
        Err(answer) => answer,
    }
}

/// Body bytes held for a request, released when the request is answered.
pub(super) struct Held(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl AppState {
    /// Refusals that need no body: an unhealthy pipeline, a client over its rate.
    fn refuse_early(&self, endpoint: Endpoint, ip: IpAddr) -> Option<Response> {
        if let Some(problem) = self.health.problem() {
            let message = format!("this server cannot store reports now ({problem}); retry later");
            return Some(reject(endpoint, StatusCode::SERVICE_UNAVAILABLE, "unhealthy", &message));
        }
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

    /// Reads the body under its caps: `max_body_bytes` (from `Content-Length` before
    /// reading, else while streaming), `body_timeout`, and the bytes all requests may
    /// hold at once.
    async fn read_body(
        &self,
        endpoint: Endpoint,
        peer: SocketAddr,
        request: Request,
    ) -> Result<(Vec<u8>, Held), Response> {
        let (parts, body) = request.into_parts();
        let read = read_capped(&parts.headers, body, self.max_body_bytes, &self.inflight);
        match tokio::time::timeout(self.body_timeout, read).await {
            Ok(Ok(read)) => Ok(read),
            Ok(Err(BodyError::TooLarge)) => {
                tracing::info!(peer = %peer, max_body_bytes = self.max_body_bytes, "http body too large");
                let message = format!("body larger than {} bytes", self.max_body_bytes);
                Err(reject(endpoint, StatusCode::PAYLOAD_TOO_LARGE, "too_large", &message))
            }
            Ok(Err(BodyError::Busy)) => {
                tracing::warn!(peer = %peer, "http bodies in flight at their cap; refusing");
                Err(reject(
                    endpoint,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "the server is busy; retry later",
                ))
            }
            Ok(Err(BodyError::Read(err))) => {
                tracing::debug!(peer = %peer, error = %err, "http body read failed");
                Err(reject(endpoint, StatusCode::BAD_REQUEST, "body_read", "cannot read the request body"))
            }
            Err(_) => {
                tracing::info!(peer = %peer, body_timeout_ms = self.body_timeout.as_millis() as u64, "http body too slow");
                let message = format!("the body did not arrive within {} ms", self.body_timeout.as_millis());
                Err(reject(endpoint, StatusCode::REQUEST_TIMEOUT, "body_timeout", &message))
            }
        }
    }

    /// Runs a check of `input` on a blocking thread, at most one per core at a time; the
    /// input comes back with the verdict. Waits for a turn no longer than `ack_timeout`.
    async fn check<T: Send + 'static, V: Send + 'static>(
        &self,
        check: impl FnOnce(&T) -> V + Send + 'static,
        input: T,
    ) -> Result<(T, V), Response> {
        let endpoint = Endpoint::Other;
        let busy =
            || reject(endpoint, StatusCode::SERVICE_UNAVAILABLE, "busy", "the server is busy; retry later");
        let permit =
            match tokio::time::timeout(self.ack_timeout, Arc::clone(&self.checking).acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => return Err(busy()),
            };
        let checked = tokio::task::spawn_blocking(move || {
            let verdict = check(&input);
            drop(permit);
            (input, verdict)
        })
        .await;
        checked
            .map_err(|_| reject(endpoint, StatusCode::INTERNAL_SERVER_ERROR, "internal", "the check failed"))
    }

    /// Enqueues each upload and answers once the store committed them all.
    async fn store(
        &self,
        endpoint: Endpoint,
        peer: SocketAddr,
        checked: Vec<(Upload, Result<usize, String>)>,
    ) -> Response {
        // One deadline covers both waiting for room on the queue (back-pressure from the
        // pipeline) and waiting for the commit.
        let deadline = tokio::time::Instant::now() + self.ack_timeout;
        let unavailable = |reason: &'static str, message: &str| {
            reject(endpoint, StatusCode::SERVICE_UNAVAILABLE, reason, message)
        };
        let mut acks = Vec::with_capacity(checked.len());
        let mut verdicts = Vec::with_capacity(checked.len());
        for (upload, verdict) in checked {
            let mut envelope =
                Envelope::new(upload.bytes, Source::Http, peer.to_string(), ruaflow_schema::clock::now());
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
            let Some(queue) = &self.queue else {
                return unavailable("stopped", "the pipeline is stopping; retry later");
            };
            match tokio::time::timeout_at(deadline, queue.send(delivery)).await {
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
            let reasons = failed.join("; ");
            tracing::info!(peer = %peer, reasons = %ruaflow_schema::text::escape_unsafe(&reasons), "http upload held no readable report");
            reject(endpoint, StatusCode::BAD_REQUEST, "unreadable", &reasons)
        }
    }
}

/// One file of a request: the whole body, or a file part of a multipart upload.
struct Upload {
    bytes: Vec<u8>,
    filename: Option<String>,
    content_type: Option<String>,
}

/// The file parts of a multipart upload (parts with a filename; form fields are ignored),
/// at most `max_parts` parts.
fn file_parts(body: &[u8], boundary: &str, max_parts: usize) -> Result<Vec<Upload>, String> {
    let uploads: Vec<Upload> = ruaflow_schema::multipart::parts(body, boundary, max_parts)?
        .into_iter()
        .filter(|p| p.filename.is_some())
        .map(|p| Upload { bytes: p.data.to_vec(), filename: p.filename, content_type: p.content_type })
        .collect();
    if uploads.is_empty() {
        return Err("the multipart upload holds no file part (a part with a filename)".into());
    }
    Ok(uploads)
}

/// How many reports `bytes` holds, or the reason it holds none. Streaming: no report is
/// held whole, whatever its size.
fn verdict(bytes: &[u8], limits: &Limits) -> Result<usize, String> {
    let survey = ruaflow_schema::survey(bytes, limits);
    match (survey.reports(), survey.errors.first()) {
        (0, Some(reason)) => Err(reason.clone()),
        (0, None) => Err("no report found".into()),
        (reports, _) => Ok(reports),
    }
}

enum BodyError {
    TooLarge,
    Busy,
    Read(axum::Error),
}

/// Permits of the in-flight semaphore are KiB.
fn kib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

/// The body, refused as soon as it is known to pass `max` bytes: from `Content-Length`
/// before reading anything, else while streaming. Never holds more than `max` bytes, and
/// holds them only under permits of `inflight`.
async fn read_capped(
    headers: &HeaderMap,
    mut body: Body,
    max: u64,
    inflight: &Arc<Semaphore>,
) -> Result<(Vec<u8>, Held), BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(BodyError::TooLarge);
    }
    let take =
        |bytes: u64| Arc::clone(inflight).try_acquire_many_owned(kib(bytes)).map_err(|_| BodyError::Busy);
    let mut held = match declared {
        Some(n) if n > 0 => Some(take(n)?),
        _ => None,
    };
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Read)?;
        if let Ok(data) = frame.into_data() {
            let len = bytes.len() as u64 + data.len() as u64;
            if len > max {
                return Err(BodyError::TooLarge);
            }
            // A body longer than it said, or one without a length: hold what it grew by.
            let covered = held.as_ref().map_or(0, |p| p.num_permits() as u64 * 1024);
            if len > covered {
                let more = take(len - covered)?;
                match &mut held {
                    Some(permit) => permit.merge(more),
                    None => held = Some(more),
                }
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok((bytes, Held(held)))
}

/// The declared content type, as sent.
fn content_type(headers: &HeaderMap) -> Option<String> {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned)
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn verdicts_name_the_reason() {
        let limits = Limits::default();
        let reason = verdict(b"this is not a report", &limits).expect_err("garbage");
        assert!(!reason.is_empty());
        let json = br#"{"organization-name":"X","date-range":{"start-datetime":"2016-04-01T00:00:00Z","end-datetime":"2016-04-01T23:59:59Z"},"contact-info":"a@b","report-id":"r1","policies":[]}"#;
        assert_eq!(verdict(json, &limits), Ok(1));
    }
}
