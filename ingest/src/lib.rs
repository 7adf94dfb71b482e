//! ruaflow-ingest: report sources and the queue they feed.
//!
//! ```text
//! files / directories ──> dir ──┐
//! IMAP mailboxes ──────── imap ─┼──> Envelope ──> queue (local: bounded channel; or Kafka)
//! HTTP POST ──────────── http ──┘
//! ```
//!
//! A source turns whatever it reads into [`ruaflow_schema::Envelope`]s — the raw bytes
//! and where they came from, nothing parsed — and acknowledges its input only once the
//! processor says the data is durably stored.
//!
//! Layout:
//! - [`dir`]: files and directories, once or watched
//! - [`imap`]: report mail read from IMAP mailboxes (password or OAuth2), moved away only
//!   after the commit
//! - [`http`]: reports POSTed over HTTP or HTTPS (RFC 8460 TLSRPT delivery,
//!   token-authenticated uploads), with its connection and body caps
//! - [`metrics`]: the process's Prometheus recorder
//! - [`queue`]: the in-process bounded queue of the embedded deployment
//! - [`kafka`]: the Kafka queue of the distributed deployment (topic setup, publisher,
//!   consumer group, committable offsets)

#![forbid(unsafe_code)]

pub mod dir;
pub mod http;
pub mod imap;
pub mod kafka;
pub mod metrics;
pub mod queue;
