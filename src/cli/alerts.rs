//! `ruaflow alerts --db FILE [--json] [--domain D] [--since DATE] [--until DATE] [--days N]`:
//! the stored alerts, oldest first.
//!
//! With `--json`, one JSON object per line: the alert's `body` column, which already is
//! the whole alert as the detector wrote it. Without, a readable line per alert and its
//! whole summary under it, wrapped to the terminal's width (100 columns when stdout is
//! not a terminal). The range keeps the alerts whose window overlaps it (`crate::range`).

use std::path::PathBuf;

use clap::Args;
use rusqlite::params;

use crate::range::{DayRange, RangeArgs};
use crate::report::{query, text, write_stdout};

/// Arguments of `ruaflow alerts`.
#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// The SQLite database written by `ruaflow run` (opened read-only).
    #[arg(long, default_value = "ruaflow.db")]
    pub db: PathBuf,
    /// One JSON object per line (the stable machine format).
    #[arg(long)]
    pub json: bool,
    /// Only alerts for this policy domain.
    #[arg(long, value_name = "D")]
    pub domain: Option<String>,
    /// Only alerts whose window overlaps these report days.
    #[command(flatten)]
    pub range: RangeArgs,
}

/// Prints the alerts.
pub fn run(args: AlertsArgs) -> anyhow::Result<()> {
    let conn = query::open(&args.db)?;
    let range = args.range.resolve(|| query::newest_day(&conn, args.domain.as_deref()))?;
    if args.json {
        let mut out = String::new();
        let mut stmt = conn.prepare(
            "SELECT body FROM alerts WHERE (?1 IS NULL OR lower(domain) = lower(?1))
             AND window_end >= ?2 AND window_start <= ?3
             ORDER BY window_start, id",
        )?;
        let bodies =
            stmt.query_map(params![&args.domain, range.lo(), range.hi()], |r| r.get::<_, String>(0))?;
        for body in bodies {
            out.push_str(&one_line(&body?));
            out.push('\n');
        }
        return write_stdout(&out);
    }
    let mut alerts = query::alerts(&conn, args.domain.as_deref(), &range, i64::MAX)?;
    alerts.reverse();
    if alerts.is_empty() {
        return write_stdout(if range == DayRange::ALL { "no alerts\n" } else { "no alerts in the range\n" });
    }
    write_stdout(&text::alerts_list(&alerts, width(), text::Style { color: false }))
}

/// The width summaries are wrapped to when stdout is not a terminal.
const PIPE_WIDTH: usize = 100;

/// The terminal's width in columns, or [`PIPE_WIDTH`] for a pipe or a file.
fn width() -> usize {
    console::Term::stdout().size_checked().map_or(PIPE_WIDTH, |(_rows, cols)| usize::from(cols))
}

/// The body on one line. The detector writes compact JSON, which is printed as it is;
/// a body with line breaks is re-serialized compactly so the output stays one object
/// per line.
fn one_line(body: &str) -> String {
    if !body.contains(['\n', '\r']) {
        return body.to_owned();
    }
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(value) => value.to_string(),
        Err(_) => serde_json::json!({ "error": "alert body is not JSON", "body": body }).to_string(),
    }
}
