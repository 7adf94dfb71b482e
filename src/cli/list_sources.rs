//! `ruaflow sources --db FILE [--domain D] [--since DATE] [--until DATE] [--days N]
//! [--limit N] [--json]`: the sending sources of each policy domain over a range, most
//! messages first, with what is known about them: the sender model's status (is it one of
//! the domain's own senders?), the mail service behind it, reverse DNS, AS, country.
//!
//! The rows are `ruaflow export --what sources`' (`crate::export`), topped by volume.

use std::path::PathBuf;

use clap::Args;

use crate::export::{self, Filter, Format};
use crate::range::RangeArgs;
use crate::report::format::{pct, pct_text};
use crate::report::{query, text, write_stdout};

/// Arguments of `ruaflow sources`.
#[derive(Debug, Args)]
pub struct SourcesArgs {
    /// The SQLite database written by `ruaflow run` (opened read-only).
    #[arg(long, default_value = "ruaflow.db")]
    pub db: PathBuf,
    /// Only this policy domain.
    #[arg(long, value_name = "D")]
    pub domain: Option<String>,
    /// Only these report days.
    #[command(flatten)]
    pub range: RangeArgs,
    /// How many sources (those with the most messages).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: u32,
    /// One JSON object per line (the columns of `export --what sources`).
    #[arg(long)]
    pub json: bool,
}

/// Prints the sources.
pub fn run(args: SourcesArgs) -> anyhow::Result<()> {
    let conn = query::open(&args.db)?;
    let range = args.range.resolve(|| query::newest_day(&conn, args.domain.as_deref()))?;
    let filter = Filter { domain: args.domain, range };
    let mut lines = Vec::new();
    export::sources(&conn, &filter, Some(args.limit), Format::Jsonl, &mut lines)?;
    if args.json {
        return write_stdout(&String::from_utf8_lossy(&lines));
    }
    let mut t = text::Table::new(&[
        ("domain", false),
        ("source", false),
        ("first", false),
        ("last", false),
        ("days", true),
        ("messages", true),
        ("DMARC pass", true),
        ("DKIM-only", true),
        ("status", false),
        ("service", false),
        ("reverse DNS", false),
        ("AS", false),
        ("country", false),
    ]);
    for line in String::from_utf8_lossy(&lines).lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        let as_name = match (v["source_asn"].as_u64(), v["source_as_name"].as_str()) {
            (Some(asn), Some(name)) => format!("AS{asn} {name}"),
            (Some(asn), None) => format!("AS{asn}"),
            (None, name) => name.unwrap_or("").to_owned(),
        };
        t.row(vec![
            s("domain"),
            s("source_ip_address"),
            s("first_day"),
            s("last_day"),
            n("days_seen").to_string(),
            ruaflow_schema::text::thousands(n("count")),
            pct_text(pct(n("dmarc_pass"), n("count"))),
            ruaflow_schema::text::thousands(n("dkim_only_pass")),
            s("sender_status"),
            s("service"),
            s("source_reverse_dns"),
            as_name,
            s("source_country"),
        ]);
    }
    if lines.is_empty() {
        return write_stdout("no sources in the range\n");
    }
    let mut out = String::new();
    t.render(&mut out, 0, text::Style { color: false });
    write_stdout(&out)
}
