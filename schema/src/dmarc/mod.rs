//! DMARC aggregate reports (RFC 7489 Appendix C, RFC 9990).

pub mod model;
pub mod parse;

pub use model::*;
pub use parse::{parse_report, DmarcReader};
