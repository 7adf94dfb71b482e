//! `parse --csv`: one row per DMARC aggregate record, in parsedmarc's CSV columns (the
//! rows of `ruaflow export --what records`, see `crate::export::records`).
//!
//! Records go from the parser to the file's output slot one at a time, so a report of
//! any size is converted in flat memory. Other kinds of report are not rows of this
//! table and are left out; what holds no report is said on stderr, escaped.

use std::io::Write;

use ruaflow_schema::dmarc::DmarcReader;
use ruaflow_schema::text::escape_unsafe;
use ruaflow_schema::unpack::Content;
use ruaflow_schema::Limits;

use crate::export::records::{self, RecordFields, ReportFields};
use crate::export::{Format, RowWriter};

/// The header line.
pub fn header(out: &mut impl Write) -> std::io::Result<()> {
    RowWriter::new(out, Format::Csv, records::COLUMNS).map(drop)
}

/// Writes the rows of one part of an input; returns whether it held no readable report
/// (said on stderr).
pub fn rows(
    out: &mut impl Write,
    file: &str,
    location: &str,
    content: Content<'_>,
    limits: &Limits,
) -> std::io::Result<bool> {
    let at = || match location {
        "" => escape_unsafe(file).into_owned(),
        at => format!("{} [{}]", escape_unsafe(file), escape_unsafe(at)),
    };
    let reader = match content {
        Content::Xml(reader) => reader,
        Content::Json(_) | Content::Failure(_) => return Ok(false),
        Content::Broken(err) => {
            eprintln!("{}: error: {}", at(), escape_unsafe(&err.to_string()));
            return Ok(true);
        }
    };
    let mut parser = DmarcReader::new(reader, limits);
    let header = match parser.header() {
        Ok(header) => header,
        Err(err) => {
            eprintln!("{}: error: {}", at(), escape_unsafe(&err.to_string()));
            return Ok(true);
        }
    };
    let report = ReportFields::from_header(&header);
    let mut w = RowWriter::continuing(out, Format::Csv, records::COLUMNS);
    loop {
        match parser.next_record() {
            Ok(Some(record)) => w.row(&records::row(&report, &RecordFields::from_record(&record)))?,
            Ok(None) => return Ok(false),
            Err(err) => {
                // The rows written so far stay: a CSV cannot take them back.
                eprintln!("{}: error after some records: {}", at(), escape_unsafe(&err.to_string()));
                return Ok(true);
            }
        }
    }
}
