//! DMARC failure (forensic) reports: RFC 6591 ARF, as updated by RFC 9991.
//!
//! Input: the parts of one `multipart/report` message — the `message/feedback-report`
//! part (`Name: value` fields), the original message or its headers
//! (`message/rfc822`, `text/rfc822-headers`) and who sent the report — or the
//! plain-text summary Exim sends instead (no ARF part, the original headers quoted in
//! the text). Output: a [`FailureReport`] holding what a postmaster looks at, exactly
//! as the reporter sent it: nothing is redacted here (the processor redacts before
//! anything is stored).
//!
//! Every value is capped at `max_field_bytes`, and the original body at the same cap;
//! [`FailureReport::key`] is the report's identity, the same however the message was
//! wrapped or its lines ended.
//!
//! Layout: `model` (the types and the identity), `parse` (ARF fields, the Exim summary,
//! the original message's headers).

mod model;
mod parse;

pub use model::{FailureReport, OriginalMessage};
pub use parse::ReportMessage;
