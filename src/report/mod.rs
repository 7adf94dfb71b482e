//! Reports over the embedded store: `ruaflow report`, and the summary and HTML page of
//! `ruaflow demo`.
//!
//! ```text
//! SQLite file (read-only) ──query──> Report ──text──> terminal
//!                                       ├────serde──> JSON document
//!                                       └────html───> one self-contained page (inline SVG)
//! ```
//!
//! Input: a store written by `ruaflow run` (possibly while it still writes). Output: a
//! summary per policy domain, its sources, DKIM selectors, TLS results, reporters,
//! alerts and dead letters. Report data is untrusted: every string is escaped for the
//! medium it goes to (see `format`).
//!
//! Layout:
//! - `query`: the SQL, one read snapshot → [`model::Report`];
//! - `model`: the report types, which are also the `--json` document;
//! - `profile`: everything known about one address (`ruaflow source IP`);
//! - `format`: numbers, dates, escaping;
//! - `text`: the terminal view;
//! - `html` + `svg`: the page and its charts.

pub mod format;
mod html;
pub mod model;
pub mod profile;
pub mod query;
mod svg;
pub mod text;

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Context;

pub use query::Options;

/// Reads the report for `options` from the store at `db`.
pub fn load(db: &Path, options: &Options) -> anyhow::Result<model::Report> {
    let conn = query::open(db)?;
    query::load(&conn, options).with_context(|| format!("cannot read the report from {}", db.display()))
}

/// Prints the terminal report for `options` to stdout (coloured on a terminal unless
/// `NO_COLOR` is set).
pub fn print_text(db: &Path, options: &Options) -> anyhow::Result<()> {
    let report = load(db, options)?;
    write_stdout(&text::render(&report, color_stdout()))
}

/// Prints the summary of every domain over all report days (what `ruaflow report`
/// prints without options).
pub fn print_summary(db: &Path) -> anyhow::Result<()> {
    print_text(db, &Options::default())
}

/// Prints the report for `options` as one JSON document (see [`model`]).
pub fn print_json(db: &Path, options: &Options) -> anyhow::Result<()> {
    let report = load(db, options)?;
    let mut text = serde_json::to_string_pretty(&report)?;
    text.push('\n');
    write_stdout(&text)
}

/// Writes the HTML page for `options` to `out` (through a temporary file in the same
/// directory, renamed into place, so a reader never sees half a page).
pub fn write_html_with(db: &Path, out: &Path, options: &Options) -> anyhow::Result<()> {
    let report = load(db, options)?;
    let page = html::render(&report);
    let name =
        out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "report.html".into());
    let tmp = out.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, page).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

/// Writes the HTML page of every domain over all report days to `out`.
pub fn write_html(db: &Path, out: &Path) -> anyhow::Result<()> {
    write_html_with(db, out, &Options::default())
}

/// Colour only for a terminal, and never when `NO_COLOR` is set (no-color.org).
fn color_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Writes to stdout; a closed pipe (`ruaflow report | head`) is not an error.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
