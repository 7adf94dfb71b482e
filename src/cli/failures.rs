//! `ruaflow failures --db FILE [--domain D] [--since DATE] [--until DATE] [--days N]
//! [--json | --csv]`: the stored DMARC failure (forensic) reports, newest first.
//!
//! Text is a table for the terminal; `--json` one object per line (the fields of
//! `report --json`'s `failure_reports.latest`); `--csv` a header line and one row per
//! report, in the same fields and order (`crate::export`'s writer: RFC 4180, formulas
//! defused). Every value is as stored: redacted unless the configuration allowed more
//! (README "Failure reports"). The range is `crate::range`'s, on the day each message
//! arrived; `--days` counts back from the newest such day.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::export::{failure_row, Format, RowWriter, FAILURE_COLUMNS};
use crate::range::RangeArgs;
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
    /// Only messages that arrived on these days (UTC).
    #[command(flatten)]
    pub range: RangeArgs,
    /// One JSON object per line.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// CSV with a header line.
    #[arg(long)]
    pub csv: bool,
}

/// Prints the failure reports.
pub fn run(args: FailuresArgs) -> anyhow::Result<()> {
    let conn = query::open(&args.db)?;
    let range = args.range.resolve(|| query::newest_failure_day(&conn, args.domain.as_deref()))?;
    let filter = FailureFilter {
        domain: args.domain,
        since: range.first_day,
        until: range.last_day.map(|_| range.hi()),
        limit: None,
    };
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
        let mut w = RowWriter::new(Vec::new(), Format::Csv, FAILURE_COLUMNS)?;
        for entry in &entries {
            w.row(&failure_row(entry))?;
        }
        String::from_utf8(w.finish()?)?
    } else if entries.is_empty() {
        "no failure reports\n".to_owned()
    } else {
        let mut out = String::new();
        text::failures_table(&entries, true).render(&mut out, 0, text::Style { color: false });
        out
    };
    write_stdout(&out)
}
