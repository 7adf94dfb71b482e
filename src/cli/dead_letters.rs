//! `ruaflow dead-letters --db FILE [--since DATE] [--json]`: every dead letter, oldest
//! first, with where it came from in full (source, origin, file name, place inside the
//! input), why, and how much of the input the store kept for `ruaflow reprocess`.
//!
//! With `--json`, one object per line: `id`, `received_at` (unix seconds), `received`
//! (UTC), `source`, `origin`, `filename`, `location`, `reason`, `raw_size` (the whole
//! input's bytes), `kept_bytes` (0 when nothing was kept), `reprocessable` (kept whole),
//! `sha256`. The text form escapes report data for the terminal.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use ruaflow_schema::text::escape_unsafe;
use serde_json::json;

use crate::report::{query, write_stdout};

/// Arguments of `ruaflow dead-letters`.
#[derive(Debug, Args)]
pub struct DeadLettersArgs {
    /// The SQLite database written by `ruaflow run` (opened read-only).
    #[arg(long, default_value = "ruaflow.db")]
    pub db: PathBuf,
    /// Only dead letters received from DATE on (YYYY-MM-DD, UTC).
    #[arg(long, value_name = "DATE", value_parser = crate::range::parse_date)]
    pub since: Option<i64>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: DeadLettersArgs) -> anyhow::Result<()> {
    let conn = query::open(&args.db)?;
    let mut stmt = conn.prepare(
        "SELECT d.id, d.received_at, d.source, d.origin, i.filename, d.location, d.reason, d.raw_size,
                COALESCE(length(i.raw), 0), lower(hex(d.envelope_sha256))
         FROM dead_letters d LEFT JOIN dead_letter_inputs i ON i.envelope_sha256 = d.envelope_sha256
         WHERE d.received_at >= ?1 ORDER BY d.received_at, d.id",
    )?;
    let mut rows = stmt.query([args.since.unwrap_or(i64::MIN)])?;
    let (mut out, mut count, mut inputs) = (String::new(), 0u64, std::collections::HashSet::new());
    while let Some(r) = rows.next()? {
        let (id, received_at, source, origin): (i64, i64, String, String) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        let (filename, location, reason): (Option<String>, String, String) =
            (r.get(4)?, r.get(5)?, r.get(6)?);
        let (raw_size, kept, sha256): (i64, i64, String) = (r.get(7)?, r.get(8)?, r.get(9)?);
        let reprocessable = kept > 0 && kept == raw_size;
        count += 1;
        inputs.insert(sha256.clone());
        if args.json {
            let line = json!({
                "id": id, "received_at": received_at, "received": ruaflow_schema::time::format_datetime(received_at),
                "source": source, "origin": origin, "filename": filename, "location": location, "reason": reason,
                "raw_size": raw_size, "kept_bytes": kept, "reprocessable": reprocessable, "sha256": sha256,
            });
            let _ = writeln!(out, "{line}");
            continue;
        }
        let at =
            if location.is_empty() { String::new() } else { format!(" › {}", escape_unsafe(&location)) };
        let _ = writeln!(
            out,
            "{}  {source:<4}  {}{at}",
            crate::report::format::datetime(received_at),
            escape_unsafe(&origin)
        );
        let _ = writeln!(out, "    {}", escape_unsafe(&reason));
        let kept_text = match (kept, reprocessable) {
            (0, _) => "no bytes kept".to_owned(),
            (_, true) => format!("{} bytes kept whole", ruaflow_schema::text::thousands(kept as u64)),
            (_, false) => format!(
                "first {} of {} bytes kept (not reprocessable)",
                ruaflow_schema::text::thousands(kept as u64),
                ruaflow_schema::text::thousands(raw_size as u64)
            ),
        };
        let _ = writeln!(out, "    #{id} · {kept_text} · sha256 {}", &sha256[..16]);
    }
    if !args.json {
        let _ = writeln!(
            out,
            "{count} dead letters from {} inputs{}",
            inputs.len(),
            if count > 0 {
                format!("; retry them with `ruaflow reprocess --db {}`", args.db.display())
            } else {
                String::new()
            }
        );
    }
    write_stdout(&out)
}
