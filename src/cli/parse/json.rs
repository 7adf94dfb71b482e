//! `parse --json` lines, written while the report is read.
//!
//! A DMARC report's records are written one at a time as the parser yields them, so a
//! report of any size costs bounded memory. The counts follow the report in the object
//! (`{"file", "location", "kind": "dmarc", "org_name", …, "report": {…, "records": […],
//! "warnings": […]}, "record_count", "message_count"}`), since they are known only at its
//! end. A report that fails part-way is printed as an error line when nothing of it was
//! printed yet; when it was (a report larger than the output buffer), its line is closed
//! with what was read and an `"error"` field saying why it stops there.

use std::io::{BufRead, Write};

use serde::Serialize;

use ruaflow_schema::dmarc::DmarcReader;
use ruaflow_schema::failure::FailureReport;
use ruaflow_schema::tlsrpt::TlsReport;
use ruaflow_schema::Limits;

use super::ordered::Slot;

/// The fields every line starts with.
#[derive(Serialize)]
struct Head<'a> {
    file: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    location: &'a str,
}

/// Writes `value`'s JSON object without its closing brace, after `head`'s fields.
fn open_object(out: &mut impl Write, head: &Head<'_>, value: &impl Serialize) -> std::io::Result<()> {
    let mut head_json = serde_json::to_vec(head)?;
    head_json.pop(); // `}`
    out.write_all(&head_json)?;
    let body = serde_json::to_vec(value)?;
    out.write_all(b",")?;
    out.write_all(&body[1..body.len() - 1])?;
    Ok(())
}

/// An error line.
pub fn error(out: &mut impl Write, file: &str, location: &str, error: &str) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct Body<'a> {
        kind: &'static str,
        error: &'a str,
    }
    open_object(out, &Head { file, location }, &Body { kind: "error", error })?;
    out.write_all(b"}\n")
}

/// A TLS report line.
pub fn tlsrpt(out: &mut impl Write, file: &str, location: &str, report: &TlsReport) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct Body<'a> {
        kind: &'static str,
        organization_name: &'a str,
        report_id: &'a str,
        policy_count: usize,
        successful_sessions: u64,
        failed_sessions: u64,
        report: &'a TlsReport,
    }
    let body = Body {
        kind: "tlsrpt",
        organization_name: &report.organization_name,
        report_id: &report.report_id,
        policy_count: report.policies.len(),
        successful_sessions: report.successful_sessions(),
        failed_sessions: report.failed_sessions(),
        report,
    };
    open_object(out, &Head { file, location }, &body)?;
    out.write_all(b"}\n")
}

/// A failure report line.
pub fn failure(
    out: &mut impl Write,
    file: &str,
    location: &str,
    report: &FailureReport,
) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct Body<'a> {
        kind: &'static str,
        reported_domain: Option<&'a str>,
        source_ip: Option<String>,
        report: &'a FailureReport,
    }
    let body = Body {
        kind: "failure",
        reported_domain: report.reported_domain.as_deref(),
        source_ip: report.source_ip.map(|ip| ip.to_string()),
        report,
    };
    open_object(out, &Head { file, location }, &body)?;
    out.write_all(b"}\n")
}

/// A DMARC report line, streamed. Returns whether the report failed (then the line is
/// an error line, or carries an `"error"` field).
pub fn dmarc<W: Write>(
    out: &mut Slot<'_, W>,
    file: &str,
    location: &str,
    reader: &mut dyn BufRead,
    limits: &Limits,
) -> std::io::Result<bool> {
    let mark = out.mark();
    let mut parser = DmarcReader::new(reader, limits);
    let header = match parser.header() {
        Ok(header) => header,
        Err(err) => return error(out, file, location, &err.to_string()).map(|()| true),
    };
    // Written into a buffer first: until it spills, a failure part-way can still be
    // printed as a plain error line instead.
    let mut line = Vec::with_capacity(4096);
    #[derive(Serialize)]
    struct Body<'a> {
        kind: &'static str,
        org_name: &'a str,
        report_id: &'a str,
        domain: &'a str,
        begin: i64,
        end: i64,
    }
    let m = &header.metadata;
    let body = Body {
        kind: "dmarc",
        org_name: &m.org_name,
        report_id: &m.report_id,
        domain: &header.policy.domain,
        begin: m.begin,
        end: m.end,
    };
    open_object(&mut line, &Head { file, location }, &body)?;
    line.extend_from_slice(b",\"report\":");
    let mut header_json = serde_json::to_vec(&header)?;
    header_json.pop(); // `}`
    line.extend_from_slice(&header_json);
    line.extend_from_slice(b",\"records\":[");
    let (mut records, mut messages) = (0u64, 0u64);
    let failed = loop {
        match parser.next_record() {
            Ok(Some(record)) => {
                if records > 0 {
                    line.push(b',');
                }
                serde_json::to_writer(&mut line, &record)?;
                records += 1;
                messages += record.count;
                if line.len() >= 1 << 16 {
                    out.write_all(&line)?;
                    line.clear();
                }
            }
            Ok(None) => break None,
            Err(err) => break Some(err),
        }
    };
    if let Some(err) = &failed {
        if !out.is_streaming() {
            // Nothing of it was printed: take the partial report back and say why.
            out.truncate(mark);
            return error(out, file, location, &err.to_string()).map(|()| true);
        }
    }
    line.extend_from_slice(b"],\"warnings\":");
    serde_json::to_writer(&mut line, &parser.take_warnings())?;
    line.push(b'}');
    line.extend_from_slice(format!(",\"record_count\":{records},\"message_count\":{messages}").as_bytes());
    if let Some(err) = &failed {
        line.extend_from_slice(b",\"error\":");
        serde_json::to_writer(&mut line, &format!("the report stops after {records} records: {err}"))?;
    }
    line.extend_from_slice(b"}\n");
    out.write_all(&line)?;
    Ok(failed.is_some())
}
