//! `ruaflow failures --db FILE [--domain D] [--since T] [--until T] [--json | --csv]`:
//! the stored DMARC failure (forensic) reports, newest first.
//!
//! Text is a table for the terminal; `--json` one object per line (the fields of
//! `report --json`'s `failure_reports.latest`); `--csv` a header line and one row per
//! report (RFC 4180 quoting). Every value is as stored: redacted unless the
//! configuration allowed more (README "Failure reports").

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::report::model::FailureEntry;
use crate::report::query::{self, FailureFilter};
use crate::report::{text, write_stdout};

/// Arguments of `ruaflow failures`.
#[derive(Debug, Args)]
pub struct FailuresArgs {
    /// The SQLite database written by `ruaflow run` (opened read-only).
    #[arg(long, default_value = "ruaflow.db")]
    pub db: PathBuf,
    /// Only reports about this domain.
    #[arg(long, value_name = "D")]
    pub domain: Option<String>,
    /// Only messages that arrived at or after T (`YYYY-MM-DD` or RFC 3339, UTC).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub since: Option<i64>,
    /// Only messages that arrived at or before T (a date alone includes that whole day).
    #[arg(long, value_name = "T", value_parser = parse_until)]
    pub until: Option<i64>,
    /// One JSON object per line.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// CSV with a header line.
    #[arg(long)]
    pub csv: bool,
}

fn parse_time(text: &str) -> Result<i64, String> {
    ruaflow_schema::time::parse_datetime(text)
        .ok_or_else(|| format!("{text:?} is not a date (YYYY-MM-DD) or an RFC 3339 time"))
}

fn parse_until(text: &str) -> Result<i64, String> {
    let at = parse_time(text)?;
    // A bare date means the whole of that day.
    Ok(if text.trim().len() == 10 { at + 86_399 } else { at })
}

/// Prints the failure reports.
pub fn run(args: FailuresArgs) -> anyhow::Result<()> {
    let conn = query::open(&args.db)?;
    let filter = FailureFilter { domain: args.domain, since: args.since, until: args.until, limit: None };
    let entries = query::failure_entries(&conn, &filter)
        .with_context(|| format!("cannot read failure reports from {}", args.db.display()))?;
    let out = if args.json {
        let mut out = String::new();
        for entry in &entries {
            out.push_str(&serde_json::to_string(entry)?);
            out.push('\n');
        }
        out
    } else if args.csv {
        csv(&entries)?
    } else if entries.is_empty() {
        "no failure reports\n".to_owned()
    } else {
        let mut out = String::new();
        text::failures_table(&entries, true).render(&mut out, 0, text::Style { color: false });
        out
    };
    write_stdout(&out)
}

/// The entries as CSV: the JSON field names (sorted) as the header.
fn csv(entries: &[FailureEntry]) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut header_done = false;
    for entry in entries {
        let serde_json::Value::Object(fields) = serde_json::to_value(entry)? else {
            anyhow::bail!("a failure entry is not a JSON object");
        };
        if !header_done {
            let names: Vec<String> = fields.keys().map(|k| quote(k)).collect();
            out.push_str(&names.join(","));
            out.push_str("\r\n");
            header_done = true;
        }
        let cells: Vec<String> = fields
            .values()
            .map(|v| match v {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => quote(s),
                other => quote(&other.to_string()),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    Ok(out)
}

/// A CSV cell (RFC 4180): quoted when it holds a comma, quote or line break. A cell
/// that a spreadsheet would read as a formula (`=`, `+`, `-`, `@` first) gets a leading
/// apostrophe: report data is untrusted.
fn quote(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quote("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(parse_until("2024-01-02"), Ok(1_704_239_999));
        assert!(parse_time("yesterday").is_err());
    }
}
