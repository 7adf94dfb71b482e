//! DMARC aggregate reports (RFC 7489 Appendix C, RFC 9990).
//!
//! Layout: [`model`] (the report's types), [`tags`] (the element vocabulary),
//! [`reader`] (the streaming pull reader, [`DmarcReader`]).

pub mod model;
pub mod reader;
mod tags;

pub use model::*;
pub use reader::{parse_report, DmarcReader};
