//! `ruaflow parse [--json] PATH…`: every report in the inputs, one line each.
//!
//! JSON lines follow the contract in DESIGN.md "CLI" (see [`json`] for how a report of
//! any size is streamed). Files are parsed on all cores and printed in input order
//! ([`ordered`]); memory stays bounded whatever the number or size of the reports. The
//! readable form escapes every character of a report that could act on a terminal.
//! Exit status 0 when every input held a report, 1 when some held none (their lines say
//! why), 2 on a usage error.

mod json;
mod ordered;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use clap::Args;

use ruaflow_schema::dmarc::DmarcReader;
use ruaflow_schema::read::parse_found;
use ruaflow_schema::text::escape_unsafe;
use ruaflow_schema::unpack::{unpack, Content, Found};
use ruaflow_schema::{Limits, Parsed};

use self::ordered::{Ordered, Slot};
use super::inputs;

/// Arguments of `ruaflow parse`.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// One JSON object per line per report (the stable machine format).
    #[arg(long)]
    json: bool,
    /// Files or directories (walked recursively): xml, gz, zip, json, eml, mbox.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// Output held per file before it streams (a report larger than this is printed as it is
/// read, once the files before it are out).
const SPILL_BYTES: usize = 1 << 20;
/// Files rendered ahead of the one being printed.
const WINDOW_FILES: usize = 64;

pub fn run(args: ParseArgs) -> anyhow::Result<ExitCode> {
    if let Some(missing) = args.paths.iter().find(|p| std::fs::symlink_metadata(p).is_err()) {
        anyhow::bail!("{} does not exist", missing.display());
    }
    let scan = ruaflow_ingest::dir::scan(&args.paths, &ruaflow_ingest::dir::DirConfig::default());
    let limits = Limits::default();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let printer = Ordered::new(
        std::io::BufWriter::with_capacity(1 << 16, std::io::stdout()),
        SPILL_BYTES,
        WINDOW_FILES,
    );
    let any_error = AtomicBool::new(!scan.problems.is_empty());
    // What could not be walked comes first, as error lines.
    let mut problems = Vec::new();
    for (path, reason) in &scan.problems {
        let file = path.display().to_string();
        if args.json {
            json::error(&mut problems, &file, "", reason)?;
        } else {
            writeln!(problems, "{}: error: {}", escape_unsafe(&file), escape_unsafe(reason))?;
        }
    }
    let next = AtomicUsize::new(0);
    let result = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.min(scan.files.len()).max(1))
            .map(|_| {
                scope.spawn(|| -> std::io::Result<()> {
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = scan.files.get(index) else { return Ok(()) };
                        let mut slot = printer.slot(index)?;
                        if index == 0 {
                            slot.write_all(&problems)?;
                        }
                        let had_error = render_file(&mut slot, path, &limits, args.json)?;
                        any_error.fetch_or(had_error, Ordering::Relaxed);
                        slot.finish()?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().unwrap_or_else(|_| Err(std::io::Error::other("worker panicked"))))
    });
    let flushed = result.and_then(|()| printer.into_inner()).and_then(|mut out| {
        if scan.files.is_empty() {
            out.write_all(&problems)?;
        }
        out.flush()
    });
    match flushed {
        // The reader went away (`ruaflow parse … | head`): nothing more to say.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        other => other?,
    }
    Ok(if any_error.load(Ordering::Relaxed) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Prints one file's reports into its slot; returns whether any part held no report.
fn render_file<W: Write>(
    out: &mut Slot<'_, W>,
    path: &Path,
    limits: &Limits,
    json: bool,
) -> std::io::Result<bool> {
    let file = path.display().to_string();
    let bytes = match inputs::read_capped(path, limits.max_input_bytes) {
        Ok(bytes) => bytes,
        Err(err) if json => return json::error(out, &file, "", &err.to_string()).map(|()| true),
        Err(err) => {
            return writeln!(out, "{}: error: {}", escape_unsafe(&file), escape_unsafe(&err.to_string()))
                .map(|()| true)
        }
    };
    let mut had_error = false;
    unpack(&bytes, limits, &mut |found| {
        let location = found.location.as_str();
        if json {
            had_error |= match found.content {
                Content::Xml(reader) => json::dmarc(out, &file, location, reader, limits)?,
                other => {
                    match parse_found(Found { location: String::new(), content: other }, limits).parsed {
                        Parsed::Tlsrpt(report) => {
                            json::tlsrpt(out, &file, location, &report).map(|()| false)?
                        }
                        Parsed::Failure(report) => {
                            json::failure(out, &file, location, &report).map(|()| false)?
                        }
                        Parsed::Error(err) => {
                            json::error(out, &file, location, &err.to_string()).map(|()| true)?
                        }
                        Parsed::Dmarc(_) => false,
                    }
                }
            };
            return Ok(());
        }
        let line = match found.content {
            Content::Xml(reader) => match count_dmarc(reader, limits) {
                Ok(line) => line,
                Err(err) => {
                    had_error = true;
                    format!("error: {}", escape_unsafe(&err.to_string()))
                }
            },
            other => {
                let located = parse_found(Found { location: String::new(), content: other }, limits);
                had_error |= matches!(located.parsed, Parsed::Error(_));
                describe(&located.parsed)
            }
        };
        let file = escape_unsafe(&file);
        match location {
            "" => writeln!(out, "{file}: {line}"),
            at => writeln!(out, "{file} [{}]: {line}", escape_unsafe(at)),
        }
    })?;
    Ok(had_error)
}

/// The readable summary streams: records are counted as they are parsed and never held.
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
        escape_unsafe(&m.org_name),
        escape_unsafe(&header.policy.domain),
        ruaflow_schema::time::format_datetime(m.begin),
        ruaflow_schema::time::format_datetime(m.end),
    );
    for warning in parser.take_warnings() {
        line.push_str(&format!("\n  warning: {}", escape_unsafe(&warning)));
    }
    Ok(line)
}

/// One line for what is not an aggregate report (those are counted by [`count_dmarc`]),
/// every report field escaped.
fn describe(parsed: &Parsed) -> String {
    match parsed {
        Parsed::Dmarc(r) => format!(
            "dmarc from {} for {}",
            escape_unsafe(&r.header.metadata.org_name),
            escape_unsafe(&r.header.policy.domain)
        ),
        Parsed::Tlsrpt(r) => {
            let mut line = format!(
                "tlsrpt from {} for {}, {} policies, {} successful and {} failed sessions",
                escape_unsafe(&r.organization_name),
                escape_unsafe(r.policy_domain().unwrap_or("?")),
                r.policies.len(),
                r.successful_sessions(),
                r.failed_sessions()
            );
            for warning in &r.warnings {
                line.push_str(&format!("\n  warning: {}", escape_unsafe(warning)));
            }
            line
        }
        Parsed::Failure(r) => format!(
            "dmarc failure report for {} from {}, reported by {}",
            escape_unsafe(r.reported_domain.as_deref().unwrap_or("?")),
            r.source_ip.map_or_else(|| "?".to_owned(), |ip| ip.to_string()),
            escape_unsafe(r.reporter.as_deref().unwrap_or("?"))
        ),
        Parsed::Error(err) => format!("error: {}", escape_unsafe(&err.to_string())),
    }
}
