//! ruaflow-processor: from raw report bytes to stored rows and alerts.
//!
//! ```text
//! Delivery (Envelope + ack) ──> pipeline: unpack ─> parse ─> normalize ─> aggregate ─> store ─> commit ─> acks
//!                                                                                        │
//!                                                                              detect <──┘ (after each commit)
//! ```
//!
//! Layout:
//! - [`pipeline`]: parse workers and the single store writer (both deployments)
//! - [`barrier`]: the durability barrier — acks sealed into a commit, released once durable
//! - [`normalize`]: DMARC verdicts, report days, source networks
//! - [`store`]: what the writer needs from a store; [`sqlite`] (embedded) and
//!   [`clickhouse`] (distributed) implement it
//! - [`aggregate`]: a report's records summed per source and per DKIM selector
//! - [`redact`]: a failure report → its stored row, with the privacy rule applied
//! - [`sqlite`]: the embedded store (migrations, idempotent writes, aggregates)
//! - [`clickhouse`]: the distributed store (migrations, idempotent batch inserts)
//! - [`sender`]: the sender model — who sends as each domain, and why it is known
//! - [`detect`]: detectors, baselines, notices
//! - [`sink`]: alert delivery (webhooks, Alertmanager, email)
//! - [`enrich`]: what is known about a source address (reverse DNS, MMDB)
//! - [`retention`]: old rows deleted by age, in two tiers (per-record rows, aggregates)
//! - [`reprocess`]: dead-letter inputs read through the pipeline again from their kept bytes

#![forbid(unsafe_code)]

pub mod aggregate;
pub mod barrier;
pub mod cidr;
pub mod clickhouse;
pub mod detect;
pub mod digest;
pub mod enrich;
pub mod normalize;
pub mod pipeline;
pub mod redact;
pub mod reprocess;
pub mod retention;
pub mod sender;
pub mod sink;
pub mod sqlite;
pub mod store;
