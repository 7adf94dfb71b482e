//! `ruaflow sources --db FILE [--domain D] [--status S] [--since DATE] [--until DATE]
//! [--days N] [--limit N] [--json | --csv]`: every sending source of each policy domain
//! over a range, most messages first, with what is known about it: the sender model's
//! status and why (is it one of the domain's own senders?), the mail service behind it,
//! reverse DNS, AS, country, and its pass rates.
//!
//! The rows are `ruaflow export --what sources`' (`crate::export`), ordered by volume:
//! `--json` and `--csv` write them as SQLite steps through them (the same columns in
//! both). The text table aligns its columns, so it holds the rows it shows; `--limit`
//! keeps it short.

use std::path::PathBuf;

use clap::Args;

use ruaflow_processor::sender::Status;

use crate::cli::export::is_broken_pipe;
use crate::export::{self, Filter, Format, SourceSelection};
use crate::range::RangeArgs;
use crate::report::format::pct_text;
use crate::report::{query, text, write_stdout};

/// Every sender status, in the order of trust.
const STATUSES: [Status; 5] =
    [Status::Configured, Status::Authorized, Status::Service, Status::Familiar, Status::Unknown];

/// Arguments of `ruaflow sources`.
#[derive(Debug, Args)]
pub struct SourcesArgs {
    /// The SQLite database written by `ruaflow run` (opened read-only).
    #[arg(long, default_value = "ruaflow.db")]
    pub db: PathBuf,
    /// Only this policy domain.
    #[arg(long, value_name = "D")]
    pub domain: Option<String>,
    /// Only sources with this sender status: configured, authorized, service, familiar
    /// or unknown. Repeat the flag or separate statuses with commas to keep several.
    #[arg(long, value_name = "S", value_delimiter = ',', value_parser = parse_status)]
    pub status: Vec<Status>,
    /// Only these report days.
    #[command(flatten)]
    pub range: RangeArgs,
    /// At most N sources (those with the most messages); all of them by default.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// One JSON object per line (the columns of `export --what sources`).
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// CSV with a header line (the same columns as --json).
    #[arg(long)]
    pub csv: bool,
}

/// Reads a sender status as typed (any case); anything else is refused with the list.
fn parse_status(word: &str) -> Result<Status, String> {
    let word = word.trim();
    STATUSES.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(word)).ok_or_else(|| {
        let all: Vec<&str> = STATUSES.iter().map(|s| s.as_str()).collect();
        format!("{word:?} is not a sender status: expected one of {}", all.join(", "))
    })
}

/// Prints the sources.
pub fn run(args: SourcesArgs) -> anyhow::Result<()> {
    let conn = query::open(&args.db)?;
    let range = args.range.resolve(|| query::newest_day(&conn, args.domain.as_deref()))?;
    let filter = Filter { domain: args.domain, range };
    let selection = SourceSelection { by_volume: true, limit: args.limit, statuses: args.status };
    if args.json || args.csv {
        let format = if args.csv { Format::Csv } else { Format::Jsonl };
        let out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
        return match export::sources(&conn, &filter, &selection, format, out) {
            // `ruaflow sources --csv | head` closes the pipe early: not an error.
            Err(err) if is_broken_pipe(&err) => Ok(()),
            other => other.map(|_| ()),
        };
    }
    let mut lines = Vec::new();
    export::sources(&conn, &filter, &selection, Format::Jsonl, &mut lines)?;
    if lines.is_empty() {
        return write_stdout("no sources in the range\n");
    }
    let mut t = text::Table::new(&[
        ("domain", false),
        ("source", false),
        ("status", false),
        ("messages", true),
        ("DMARC pass", true),
        ("DKIM aligned", true),
        ("SPF aligned", true),
        ("first", false),
        ("last", false),
        ("days", true),
        ("service", false),
        ("reverse DNS", false),
        ("AS", false),
        ("country", false),
        ("reason", false),
    ]);
    for line in String::from_utf8_lossy(&lines).lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        let rate = |k: &str| pct_text(v[k].as_f64());
        t.row(vec![
            s("domain"),
            s("source_ip_address"),
            s("sender_status"),
            ruaflow_schema::text::thousands(n("count")),
            rate("dmarc_pass_pct"),
            rate("dkim_aligned_pct"),
            rate("spf_aligned_pct"),
            s("first_day"),
            s("last_day"),
            n("days_seen").to_string(),
            s("service"),
            s("source_reverse_dns"),
            as_name(v["source_asn"].as_u64(), v["source_as_name"].as_str()),
            s("source_country"),
            s("sender_reason"),
        ]);
    }
    t.drop_empty_columns();
    let mut out = String::new();
    t.render(&mut out, 0, text::Style { color: false });
    write_stdout(&out)
}

/// `AS15169 Google LLC`, `AS15169`, the name alone, or nothing.
pub fn as_name(asn: Option<u64>, name: Option<&str>) -> String {
    match (asn, name) {
        (Some(asn), Some(name)) => format!("AS{asn} {name}"),
        (Some(asn), None) => format!("AS{asn}"),
        (None, name) => name.unwrap_or("").to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_the_five_words_in_any_case() {
        assert_eq!(parse_status("unknown"), Ok(Status::Unknown));
        assert_eq!(parse_status(" Familiar "), Ok(Status::Familiar));
        let err = parse_status("trusted").expect_err("not a status");
        assert!(err.contains("configured, authorized, service, familiar, unknown"), "{err}");
        assert!(parse_status("").is_err());
    }
}
