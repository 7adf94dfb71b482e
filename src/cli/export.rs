//! `ruaflow export --db FILE --what KIND [--format csv|jsonl] [--domain D] [--since DATE]
//! [--until DATE] [--days N]`: the store's rows on stdout, streamed. The work is in
//! `crate::export`; this is the flags.

use std::path::PathBuf;

use clap::Args;

use crate::export::{self, Filter, Format, What};
use crate::range::RangeArgs;
use crate::report::query;

/// Arguments of `ruaflow export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The SQLite database written by `ruaflow run` (opened read-only).
    #[arg(long, default_value = "ruaflow.db")]
    pub db: PathBuf,
    /// Which rows: one per DMARC record (parsedmarc's CSV columns), per daily aggregate,
    /// per source, per report, per TLS policy and failure, or per alert.
    #[arg(long, value_enum)]
    pub what: What,
    /// CSV with a header line, or one JSON object per line.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
    /// Only this policy domain.
    #[arg(long, value_name = "D")]
    pub domain: Option<String>,
    /// Only these report days (alerts: whose window overlaps them).
    #[command(flatten)]
    pub range: RangeArgs,
}

/// Writes the rows to stdout.
pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let conn = query::open(&args.db)?;
    let range = args.range.resolve(|| query::newest_day(&conn, args.domain.as_deref()))?;
    let filter = Filter { domain: args.domain, range };
    let stdout = std::io::stdout().lock();
    let out = std::io::BufWriter::with_capacity(1 << 16, stdout);
    match export::export(&conn, args.what, &filter, args.format, out) {
        Ok(rows) => {
            tracing::debug!(rows, "exported");
            Ok(())
        }
        // `ruaflow export … | head` closes the pipe early: not an error.
        Err(err) if is_broken_pipe(&err) => Ok(()),
        Err(err) => Err(err),
    }
}

/// True when the error is stdout's reader having gone away.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
