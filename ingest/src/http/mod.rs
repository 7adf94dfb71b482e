//! The `http` source: reports POSTed over HTTP or HTTPS (hyper + axum on tokio).
//!
//! Input: connections on the listen address. Output: one [`Delivery`] per accepted body
//! on the queue, source `http`, origin the remote address; see [`handlers`] for the
//! routes, what each accepts and when it answers.
//!
//! Invariant: nothing a client sends can take more than a bounded share of the process.
//! The accept loop here owns the connection caps: at most `max_connections` open (then
//! new ones wait in the kernel's backlog, costing no file descriptor), at most
//! `max_connections_per_client` per client address, a TLS handshake within 10 s, each
//! request's headers (and every idle keep-alive wait) within `header_timeout_ms`; an
//! accept error (out of file descriptors) is logged and waited out, never fatal. The
//! handlers own the body caps (size, time, bytes held at once, checks per core).
//!
//! Layout: [`config`] (the `[http]` section, the token), [`handlers`] (routes),
//! [`rate_limit`] (per-client limits), [`tls`] (rustls from PEM files).

pub mod config;
mod handlers;
mod rate_limit;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{mpsc, Semaphore};

use ruaflow_schema::{Delivery, Health, Limits, Shutdown};

pub use self::config::{HttpConfig, HttpError, Token, TOKEN_ENV};
use self::handlers::AppState;
use self::rate_limit::{ConnectionCounts, RateLimiter};

/// The endpoint, bound and ready to serve.
pub struct HttpSource {
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// Everything the handlers share but the queue, which [`HttpSource::serve`] gets.
    state: AppState,
    max_connections: usize,
    per_client: ConnectionCounts,
    header_timeout: Duration,
}

impl HttpSource {
    /// Binds `config.listen`; bodies are checked against `limits`; POSTs are refused
    /// with 503 while `health` reports a problem. Must run inside a tokio runtime.
    pub async fn bind(
        config: &HttpConfig,
        token: Option<Token>,
        limits: Limits,
        health: Health,
    ) -> Result<Self, HttpError> {
        config.validate()?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
            _ => None,
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| HttpError::Bind { addr: config.listen, source })?;
        let max_body_bytes = config.max_body_bytes.unwrap_or(limits.max_input_bytes);
        let inflight_kib = config.max_inflight_body_bytes.div_ceil(1024).min(Semaphore::MAX_PERMITS as u64);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let state = AppState {
            token,
            queue: None,
            limits,
            max_body_bytes,
            body_timeout: Duration::from_millis(config.body_timeout_ms),
            ack_timeout: Duration::from_millis(config.ack_timeout_ms),
            limiter: RateLimiter::new(config.rate_limit_per_minute),
            metrics: crate::metrics::prometheus(),
            inflight: Arc::new(Semaphore::new(inflight_kib as usize)),
            checking: Arc::new(Semaphore::new(cores)),
            health,
        };
        Ok(Self {
            listener,
            tls,
            state,
            max_connections: config.max_connections as usize,
            per_client: ConnectionCounts::new(config.max_connections_per_client),
            header_timeout: Duration::from_millis(config.header_timeout_ms),
        })
    }

    /// The bound address (the real port when `listen` asked for port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, HttpError> {
        self.listener.local_addr().map_err(HttpError::Serve)
    }

    /// Serves, feeding `queue`, until `shutdown` triggers; then stops accepting, lets
    /// in-flight requests finish (each waits for its acknowledgement or its timeout) and
    /// returns, having dropped `queue`.
    pub async fn serve(self, queue: mpsc::Sender<Delivery>, shutdown: Shutdown) -> Result<(), HttpError> {
        let router = handlers::router(Arc::new(AppState { queue: Some(queue), ..self.state }));
        let shutdown = async move { shutdown.triggered().await };
        let slots = Arc::new(Semaphore::new(self.max_connections));
        // Connections watch this to finish gracefully; dropping the sender tells them.
        let (stopping_tx, stopping) = tokio::sync::watch::channel(());
        tokio::pin!(shutdown);
        let mut last_accept_warning = None::<tokio::time::Instant>;
        loop {
            // A slot first: at the cap, connections wait in the backlog, not in a task.
            let slot = tokio::select! {
                slot = Arc::clone(&slots).acquire_owned() => slot.map_err(|e| HttpError::Serve(std::io::Error::other(e)))?,
                () = &mut shutdown => break,
            };
            let (tcp, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors and the like: wait it out, say so once a minute.
                        if last_accept_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                            tracing::warn!(error = %err, "http accept failed; retrying");
                            last_accept_warning = Some(tokio::time::Instant::now());
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let Some(counted) = self.per_client.open(peer.ip()) else {
                metrics::counter!("ruaflow_http_connections_refused_total", "reason" => "per_client")
                    .increment(1);
                tracing::debug!(peer = %peer, "too many connections from this client; refused");
                if self.tls.is_none() {
                    tokio::spawn(refuse(tcp, slot));
                }
                continue;
            };
            let service = TowerToHyperService::new(router.clone().layer(axum::Extension(ConnectInfo(peer))));
            let (tls, header_timeout, mut stopping) =
                (self.tls.clone(), self.header_timeout, stopping.clone());
            tokio::spawn(async move {
                let _held = (slot, counted);
                metrics::gauge!("ruaflow_http_connections_open").increment(1.0);
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new()).header_read_timeout(header_timeout);
                let served = match tls {
                    None => serve_connection(&http, TokioIo::new(tcp), service, &mut stopping).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => {
                                serve_connection(&http, TokioIo::new(stream), service, &mut stopping).await
                            }
                            Ok(Err(err)) => Err(format!("TLS handshake failed: {err}")),
                            Err(_) => Err("TLS handshake timed out".to_owned()),
                        }
                    }
                };
                if let Err(err) = served {
                    tracing::debug!(peer = %peer, error = %err, "http connection ended");
                }
                metrics::gauge!("ruaflow_http_connections_open").decrement(1.0);
            });
        }
        // Stop accepting; let open connections finish their request, then wait for them.
        drop(self.listener);
        drop(stopping_tx);
        let _all = slots.acquire_many(self.max_connections as u32).await;
        Ok(())
    }
}

/// Tells a plain-HTTP client with too many connections open why this one closes (it
/// is written before the request is read, as HTTP allows), within a second.
async fn refuse(mut tcp: tokio::net::TcpStream, _slot: tokio::sync::OwnedSemaphorePermit) {
    use tokio::io::AsyncWriteExt;
    const BODY: &str = r#"{"error":"too many connections from your address; retry later"}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = tcp.write_all(answer.as_bytes()).await;
        let _ = tcp.shutdown().await;
    })
    .await;
}

/// Serves one connection until it ends, or until the endpoint stops (then the request
/// in flight finishes and the connection closes).
async fn serve_connection<I, S>(
    http: &hyper::server::conn::http1::Builder,
    io: I,
    service: S,
    stopping: &mut tokio::sync::watch::Receiver<()>,
) -> Result<(), String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming> + Send,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = http.serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => return served.map_err(|e| e.to_string()),
        _ = stopping.changed() => {}
    }
    connection.as_mut().graceful_shutdown();
    connection.await.map_err(|e| e.to_string())
}
