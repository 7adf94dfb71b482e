//! `ruaflow parse [--json] PATH…`: every report in the inputs, one line each.
//!
//! JSON lines follow the contract in DESIGN.md "CLI". Files are parsed on all cores in
//! small batches and printed in input order. Exit status 0 when every input held a
//! report, 1 when some held none (their lines say why), 2 on a usage or I/O error.
//!
//! `--csv` streams: records go from the parser to stdout one at a time, file after file,
//! so any input is converted in flat memory; what holds no report is said on stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use ruaflow_schema::dmarc::DmarcReader;
use ruaflow_schema::dmarc::DmarcReport;
use ruaflow_schema::failure::FailureReport;
use ruaflow_schema::read::parse_found;
use ruaflow_schema::tlsrpt::TlsReport;
use ruaflow_schema::unpack::{unpack, Content, Found};
use ruaflow_schema::{read_reports, Limits, Located, Parsed};

use super::inputs;

/// Arguments of `ruaflow parse`.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// One JSON object per line per report (the stable machine format).
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// One CSV line per DMARC aggregate record, in parsedmarc's columns (the columns of
    /// `ruaflow export --what records`); other kinds of report are left out.
    #[arg(long)]
    csv: bool,
    /// Files or directories (walked recursively): xml, gz, zip, json, eml, mbox.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// Files parsed together before their lines are printed (bounds memory on big trees).
const BATCH_FILES: usize = 64;

pub fn run(args: ParseArgs) -> anyhow::Result<ExitCode> {
    let files = ruaflow_ingest::dir::scan(&args.paths)?;
    let limits = Limits::default();
    if args.csv {
        return csv(&files, &limits);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut any_error = false;
    for batch in files.chunks(BATCH_FILES) {
        let lines = parse_batch(batch, &limits, threads, args.json);
        for (text, had_error) in lines {
            any_error |= had_error;
            out.write_all(text.as_bytes())?;
        }
    }
    out.flush()?;
    Ok(if any_error { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Parses a batch on `threads` threads; returns each file's output and whether it had errors.
fn parse_batch(batch: &[PathBuf], limits: &Limits, threads: usize, json: bool) -> Vec<(String, bool)> {
    let mut results: Vec<(String, bool)> = vec![(String::new(), false); batch.len()];
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<&mut (String, bool)>> =
        results.iter_mut().map(std::sync::Mutex::new).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads.min(batch.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(path) = batch.get(i) else { break };
                let rendered = render_file(path, limits, json);
                if let Ok(mut slot) = slots[i].lock() {
                    **slot = rendered;
                }
            });
        }
    });
    drop(slots);
    results
}

fn render_file(path: &Path, limits: &Limits, json: bool) -> (String, bool) {
    let file = path.display().to_string();
    if !json {
        return summarize_file(&file, path, limits);
    }
    let found = match inputs::read_capped(path, limits.max_input_bytes) {
        Ok(bytes) => read_reports(&bytes, limits),
        Err(err) => vec![Located { location: String::new(), parsed: Parsed::Error(err) }],
    };
    let mut text = String::new();
    let mut had_error = false;
    for located in &found {
        had_error |= matches!(located.parsed, Parsed::Error(_));
        let line = Line::new(&file, located);
        // Serializing plain data into a String cannot fail.
        text.push_str(&serde_json::to_string(&line).unwrap_or_default());
        text.push('\n');
    }
    (text, had_error)
}

/// One output line of `parse --json`.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Body<'a> {
    Dmarc {
        org_name: &'a str,
        report_id: &'a str,
        domain: &'a str,
        begin: i64,
        end: i64,
        record_count: usize,
        message_count: u64,
        report: &'a DmarcReport,
    },
    Tlsrpt {
        organization_name: &'a str,
        report_id: &'a str,
        policy_count: usize,
        successful_sessions: u64,
        failed_sessions: u64,
        report: &'a TlsReport,
    },
    Failure {
        reported_domain: Option<&'a str>,
        source_ip: Option<String>,
        report: &'a FailureReport,
    },
    Error {
        error: String,
    },
}

#[derive(Serialize)]
struct Line<'a> {
    file: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    location: &'a str,
    #[serde(flatten)]
    body: Body<'a>,
}

impl<'a> Line<'a> {
    fn new(file: &'a str, located: &'a Located) -> Self {
        let body = match &located.parsed {
            Parsed::Dmarc(r) => Body::Dmarc {
                org_name: &r.header.metadata.org_name,
                report_id: &r.header.metadata.report_id,
                domain: &r.header.policy.domain,
                begin: r.header.metadata.begin,
                end: r.header.metadata.end,
                record_count: r.records.len(),
                message_count: r.message_count(),
                report: r,
            },
            Parsed::Tlsrpt(r) => Body::Tlsrpt {
                organization_name: &r.organization_name,
                report_id: &r.report_id,
                policy_count: r.policies.len(),
                successful_sessions: r.successful_sessions(),
                failed_sessions: r.failed_sessions(),
                report: r,
            },
            Parsed::Failure(r) => Body::Failure {
                reported_domain: r.reported_domain.as_deref(),
                source_ip: r.source_ip.map(|ip| ip.to_string()),
                report: r,
            },
            Parsed::Error(err) => Body::Error { error: err.to_string() },
        };
        Line { file, location: &located.location, body }
    }
}

/// The readable summary streams: DMARC records are counted as they are parsed and never
/// held, so a report of any size is summarized in flat memory.
fn summarize_file(file: &str, path: &Path, limits: &Limits) -> (String, bool) {
    let bytes = match inputs::read_capped(path, limits.max_input_bytes) {
        Ok(bytes) => bytes,
        Err(err) => return (format!("{file}: error: {err}\n"), true),
    };
    let mut text = String::new();
    let mut had_error = false;
    let result: Result<(), std::convert::Infallible> = unpack(&bytes, limits, &mut |found| {
        let line = match found.content {
            Content::Xml(reader) => match count_dmarc(reader, limits) {
                Ok(line) => line,
                Err(err) => {
                    had_error = true;
                    format!("error: {err}")
                }
            },
            other => {
                let located = parse_found(Found { location: String::new(), content: other }, limits);
                had_error |= matches!(located.parsed, Parsed::Error(_));
                describe(&located.parsed)
            }
        };
        let at =
            if found.location.is_empty() { file.to_owned() } else { format!("{file} [{}]", found.location) };
        text.push_str(&format!("{at}: {line}\n"));
        Ok(())
    });
    match result {
        Ok(()) => (text, had_error),
        Err(never) => match never {},
    }
}

fn count_dmarc(reader: &mut dyn std::io::BufRead, limits: &Limits) -> Result<String, ruaflow_schema::Error> {
    let mut parser = DmarcReader::new(reader, limits);
    let header = parser.header()?;
    let (mut records, mut messages) = (0u64, 0u64);
    while let Some(record) = parser.next_record()? {
        records += 1;
        messages += record.count;
    }
    let m = &header.metadata;
    let mut line = format!(
        "dmarc from {} for {}, {} .. {}, {records} records, {messages} messages",
        m.org_name,
        header.policy.domain,
        ruaflow_schema::time::format_datetime(m.begin),
        ruaflow_schema::time::format_datetime(m.end),
    );
    for warning in parser.take_warnings() {
        line.push_str(&format!("\n  warning: {warning}"));
    }
    Ok(line)
}

/// One line for what is not an aggregate report (those are counted by [`count_dmarc`]).
fn describe(parsed: &Parsed) -> String {
    match parsed {
        Parsed::Dmarc(r) => {
            format!("dmarc from {} for {}", r.header.metadata.org_name, r.header.policy.domain)
        }
        Parsed::Tlsrpt(r) => format!(
            "tlsrpt from {} for {}, {} policies, {} successful and {} failed sessions",
            r.organization_name,
            r.policy_domain().unwrap_or("?"),
            r.policies.len(),
            r.successful_sessions(),
            r.failed_sessions()
        ),
        Parsed::Failure(r) => format!(
            "dmarc failure report for {} from {}",
            r.reported_domain.as_deref().unwrap_or("?"),
            r.source_ip.map_or_else(|| "?".to_owned(), |ip| ip.to_string())
        ),
        Parsed::Error(err) => format!("error: {err}"),
    }
}

/// `--csv`: a header, then one row per DMARC record of every input, streamed.
fn csv(files: &[PathBuf], limits: &Limits) -> anyhow::Result<ExitCode> {
    use crate::export::records::{self, RecordFields, ReportFields};
    use crate::export::{Format, RowWriter};

    let stdout = std::io::stdout();
    let out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut w = RowWriter::new(out, Format::Csv, records::COLUMNS)?;
    let mut any_error = false;
    for path in files {
        let file = path.display();
        let bytes = match inputs::read_capped(path, limits.max_input_bytes) {
            Ok(bytes) => bytes,
            Err(err) => {
                eprintln!("{file}: error: {err}");
                any_error = true;
                continue;
            }
        };
        let result: Result<(), std::io::Error> = unpack(&bytes, limits, &mut |found| {
            let at = if found.location.is_empty() {
                file.to_string()
            } else {
                format!("{file} [{}]", found.location)
            };
            match found.content {
                Content::Xml(reader) => {
                    let mut parser = DmarcReader::new(reader, limits);
                    let header = match parser.header() {
                        Ok(header) => header,
                        Err(err) => {
                            eprintln!("{at}: error: {err}");
                            any_error = true;
                            return Ok(());
                        }
                    };
                    let report = ReportFields::from_header(&header);
                    loop {
                        match parser.next_record() {
                            Ok(Some(record)) => {
                                w.row(&records::row(&report, &RecordFields::from_record(&record)))?
                            }
                            Ok(None) => break,
                            Err(err) => {
                                // The rows written so far stay: a CSV cannot take them back.
                                eprintln!("{at}: error after some records: {err}");
                                any_error = true;
                                break;
                            }
                        }
                    }
                }
                Content::Broken(err) => {
                    eprintln!("{at}: error: {err}");
                    any_error = true;
                }
                Content::Json(_) | Content::Failure(_) => {}
            }
            Ok(())
        });
        match result {
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            other => other?,
        }
    }
    match w.finish() {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => {
            other?;
        }
    }
    Ok(if any_error { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
