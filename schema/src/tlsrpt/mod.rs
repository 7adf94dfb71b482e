//! SMTP TLS reports (RFC 8460).

pub mod model;
pub mod parse;

pub use model::*;
pub use parse::parse_report;
