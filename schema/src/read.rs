//! Whole-report reading: unpack + parse into complete values.
//!
//! Input: one raw input. Output: every report in it, each a [`Parsed`] value held whole
//! in memory ([`read_reports`], for tests and tools on trusted sizes), or only what it
//! holds, counted while the records stream by ([`survey`]: what the HTTP and IMAP sources
//! check before they answer, in memory bounded whatever the report size). The pipeline
//! streams records through [`crate::dmarc::DmarcReader`] itself.

use std::io::Read;

use crate::dmarc::{self, DmarcReader, DmarcReport};
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

/// What one raw input holds, counted without keeping any record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Survey {
    /// DMARC aggregate reports read to their end.
    pub dmarc: usize,
    /// SMTP TLS reports.
    pub tlsrpt: usize,
    /// DMARC failure reports.
    pub failure: usize,
    /// Why documents held no readable report, located (`part 2: …`): the first
    /// `max_dead_letters` of them.
    pub errors: Vec<String>,
    /// Every document that held no readable report.
    pub error_count: usize,
    /// Of those, mail messages that simply hold no report (not an error of the sender).
    pub no_report_count: usize,
}

impl Survey {
    /// Reports of any kind.
    pub fn reports(&self) -> usize {
        self.dmarc + self.tlsrpt + self.failure
    }
}

/// Reads every report in `input` through, counting; records are parsed and dropped one
/// at a time, so memory stays bounded by the caps, not by the report size.
pub fn survey(input: &[u8], limits: &Limits) -> Survey {
    let mut survey = Survey::default();
    let result: Result<(), std::convert::Infallible> = unpack(input, limits, &mut |found| {
        let outcome = match found.content {
            Content::Xml(reader) => count_dmarc(reader, limits).map(|()| &mut survey.dmarc),
            Content::Json(reader) => read_json(reader, limits)
                .and_then(|bytes| tlsrpt::parse_report(&bytes, limits))
                .map(|_| &mut survey.tlsrpt),
            Content::Failure(_) => Ok(&mut survey.failure),
            Content::Broken(err) => Err(err),
        };
        match outcome {
            Ok(count) => *count += 1,
            Err(err) => {
                survey.error_count += 1;
                if matches!(err, Error::NoReportInMessage(_)) {
                    survey.no_report_count += 1;
                }
                if survey.errors.len() < limits.max_dead_letters as usize {
                    survey.errors.push(match found.location.as_str() {
                        "" => err.to_string(),
                        at => format!("{at}: {err}"),
                    });
                }
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => survey,
        Err(never) => match never {},
    }
}

fn count_dmarc(reader: &mut dyn std::io::BufRead, limits: &Limits) -> Result<(), Error> {
    let mut parser = DmarcReader::new(reader, limits);
    parser.header()?;
    while parser.next_record()?.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survey_counts_kinds_and_keeps_located_errors() {
        let limits = Limits::default();
        let xml = b"<feedback><report_metadata><org_name>o</org_name><report_id>r</report_id>\
            <date_range><begin>1</begin><end>2</end></date_range></report_metadata>\
            <policy_published><domain>example.com</domain></policy_published>\
            <record><row><source_ip>192.0.2.1</source_ip><count>3</count></row></record></feedback>";
        assert_eq!(survey(xml, &limits), Survey { dmarc: 1, ..Survey::default() });
        let garbage = survey(b"hello", &limits);
        assert_eq!((garbage.reports(), garbage.error_count, garbage.no_report_count), (0, 1, 0));
        assert!(garbage.errors[0].contains("unrecognized"), "{:?}", garbage.errors);
        let mail = survey(b"From: a@example.com\r\nSubject: hi\r\n\r\nhello", &limits);
        assert_eq!((mail.error_count, mail.no_report_count), (1, 1));
    }
}
