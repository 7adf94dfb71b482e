//! Export: what the store holds (or what report files hold), row by row, as CSV or JSON
//! lines, for spreadsheets, scripts and other tools.
//!
//! ```text
//! SQLite file (read-only, one snapshot) ──query──> rows ──write──> CSV | JSON lines (stdout)
//! report files ──DmarcReader──> records ──────────────┘   (`ruaflow parse --csv`)
//! ```
//!
//! Input: a ruaflow store, a kind of row ([`What`]), a domain and a range of report days.
//! Output: one line per row, written as SQLite steps through the query, so an export of
//! any size takes constant memory (no query sorts a whole table: each reads in an index's
//! or the table's own order; `tests` checks the plans). Every time is UTC; days are
//! `YYYY-MM-DD`, times `YYYY-MM-DD HH:MM:SS`.
//!
//! Layout:
//! - `write`: the CSV and JSON-lines writers (quoting, the spreadsheet-formula guard);
//! - `records`: DMARC records in parsedmarc's CSV columns (stored or parsed);
//! - `tables`: the queries and columns of every [`What`].

pub mod records;
mod tables;
pub mod write;

use std::io::Write;

use rusqlite::Connection;

use crate::range::DayRange;
pub use tables::{failure_row, sources, SourceSelection, FAILURE_COLUMNS};
pub use write::{Format, RowWriter};

/// What to export, one row per …
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    /// … DMARC record, in parsedmarc's aggregate CSV columns.
    Records,
    /// … policy domain, report day, source IP and reporter (daily aggregates).
    Aggregates,
    /// … policy domain and source IP over the range, with what is known about it.
    Sources,
    /// … report (DMARC and TLS), with where it came from.
    Reports,
    /// … TLS policy and TLS failure, in parsedmarc's SMTP TLS CSV columns.
    Tls,
    /// … DMARC failure (forensic) report, as `ruaflow failures` shows it (redacted).
    Failures,
    /// … alert notice.
    Alerts,
}

/// Which rows: a policy domain (any case; `None` = all) and a range of report days.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this policy domain.
    pub domain: Option<String>,
    /// Only these report days (alerts: whose window overlaps them).
    pub range: DayRange,
}

/// Writes the rows of `what` to `out`; returns how many.
pub fn export(
    conn: &Connection,
    what: What,
    filter: &Filter,
    format: Format,
    out: impl Write,
) -> anyhow::Result<u64> {
    // One read transaction: the rows are one snapshot even while `ruaflow run` commits.
    conn.execute_batch("BEGIN DEFERRED")?;
    let rows = match what {
        What::Records => tables::records(conn, filter, format, out),
        What::Aggregates => tables::aggregates(conn, filter, format, out),
        What::Sources => tables::sources(conn, filter, &SourceSelection::default(), format, out),
        What::Reports => tables::reports(conn, filter, format, out),
        What::Tls => tables::tls(conn, filter, format, out),
        What::Failures => tables::failures(conn, filter, format, out),
        What::Alerts => tables::alerts(conn, filter, format, out),
    };
    conn.execute_batch("COMMIT")?;
    rows
}

/// A unix second as `YYYY-MM-DD HH:MM:SS` (UTC), parsedmarc's time format.
fn datetime(secs: i64) -> String {
    ruaflow_schema::time::format_datetime(secs).replace('T', " ").trim_end_matches('Z').to_owned()
}

/// A unix second's UTC date, `YYYY-MM-DD`.
fn date(secs: i64) -> String {
    ruaflow_schema::time::format_date(secs)
}
