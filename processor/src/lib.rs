//! ruaflow-processor: from raw report bytes to stored rows and alerts.
//!
//! ```text
//! Delivery (Envelope + ack) ──> pipeline: unpack ─> parse ─> normalize ─> aggregate ─> store ─> commit ─> acks
//!                                                                                        │
//!                                                                              detect <──┘ (after each commit)
//! ```
//!
//! Layout:
//! - [`pipeline`]: parse workers and the single store writer (embedded mode)
//! - [`barrier`]: the durability barrier — acks only after commit
//! - [`normalize`]: DMARC verdicts, report days, source networks
//! - [`sqlite`]: the embedded store (migrations, idempotent writes, aggregates)

#![forbid(unsafe_code)]

pub mod barrier;
pub mod detect;
pub mod enrich;
pub mod normalize;
pub mod pipeline;
pub mod sink;
pub mod sqlite;
