//! Whole-report reading: unpack + parse into complete values.
//!
//! Input: one raw input. Output: every report in it, each a [`Parsed`] value held whole
//! in memory. This is what `ruaflow parse` and the tests use; the pipeline streams
//! records through [`crate::dmarc::DmarcReader`] instead.

use std::io::Read;

use crate::dmarc::{self, DmarcReport};
use crate::error::Error;
use crate::failure::FailureReport;
use crate::limits::{LimitExceeded, Limits};
use crate::tlsrpt::{self, TlsReport};
use crate::unpack::{unpack, Content, Found};

/// One report (or failure to read one) found in an input.
#[derive(Debug)]
pub enum Parsed {
    /// A DMARC aggregate report.
    Dmarc(DmarcReport),
    /// An SMTP TLS report.
    Tlsrpt(TlsReport),
    /// A DMARC failure report.
    Failure(FailureReport),
    /// Something that held no readable report, and why.
    Error(Error),
}

/// A [`Parsed`] value and where in the input it was found (see [`Found::location`]).
#[derive(Debug)]
pub struct Located {
    /// Location inside the input; empty for the input itself.
    pub location: String,
    /// The report or error.
    pub parsed: Parsed,
}

/// Reads every report in `input`. Never fails as a whole: what cannot be read is an
/// [`Parsed::Error`] entry, and there is always at least one entry.
pub fn read_reports(input: &[u8], limits: &Limits) -> Vec<Located> {
    let mut out = Vec::new();
    let result: Result<(), std::convert::Infallible> = unpack(input, limits, &mut |found| {
        out.push(parse_found(found, limits));
        Ok(())
    });
    match result {
        Ok(()) => out,
        Err(never) => match never {},
    }
}

/// Parses one document found by [`unpack`].
pub fn parse_found(found: Found<'_>, limits: &Limits) -> Located {
    let parsed = match found.content {
        Content::Xml(reader) => match dmarc::parse_report(reader, limits) {
            Ok(report) => Parsed::Dmarc(report),
            Err(err) => Parsed::Error(err),
        },
        Content::Json(reader) => match read_json(reader, limits) {
            Ok(bytes) => match tlsrpt::parse_report(&bytes, limits) {
                Ok(report) => Parsed::Tlsrpt(report),
                Err(err) => Parsed::Error(err),
            },
            Err(err) => Parsed::Error(err),
        },
        Content::Failure(report) => Parsed::Failure(*report),
        Content::Broken(err) => Parsed::Error(err),
    };
    Located { location: found.location, parsed }
}

/// Buffers a JSON document, capped at `max_buffered_bytes`.
pub fn read_json(reader: &mut dyn std::io::BufRead, limits: &Limits) -> Result<Vec<u8>, Error> {
    let cap = limits.max_buffered_bytes;
    let mut bytes = Vec::new();
    reader.take(cap + 1).read_to_end(&mut bytes).map_err(|e| Error::from_io(&e, "compressed"))?;
    if bytes.len() as u64 > cap {
        return Err(LimitExceeded::BufferedBytes(cap).into());
    }
    Ok(bytes)
}
