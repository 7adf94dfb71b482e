//! `ruaflow report --db FILE [--json | --html OUT] [--domain D] [--since DATE] [--until DATE]
//! [--days N]`: what the store holds, per policy domain. The work is in `crate::report`;
//! this is the flags.

use std::path::PathBuf;

use clap::Args;

use crate::range::RangeArgs;
use crate::report::{self, Options};

/// Arguments of `ruaflow report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The SQLite database written by `ruaflow run` (opened read-only).
    #[arg(long, default_value = "ruaflow.db")]
    pub db: PathBuf,
    /// Print one JSON document instead of text (field names are stable).
    #[arg(long, conflicts_with = "html")]
    pub json: bool,
    /// Write a self-contained HTML page with charts to OUT.
    #[arg(long, value_name = "OUT")]
    pub html: Option<PathBuf>,
    /// Only this policy domain.
    #[arg(long, value_name = "D")]
    pub domain: Option<String>,
    /// Only these report days.
    #[command(flatten)]
    pub range: RangeArgs,
}

/// Prints or writes the report the flags ask for.
pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let options = Options { domain: args.domain, range: args.range };
    if let Some(out) = &args.html {
        report::write_html_with(&args.db, out, &options)?;
        eprintln!("report written to {}", out.display());
        Ok(())
    } else if args.json {
        report::print_json(&args.db, &options)
    } else {
        report::print_text(&args.db, &options)
    }
}
