//! `ruaflow prune (--db FILE | --clickhouse URL) [--config FILE] [--records-days N]
//! [--aggregates-days N]`: deletes what `[retention]` no longer keeps, once (for a timer;
//! `ruaflow run` also prunes while it runs). The work is in
//! `ruaflow_processor::retention` (SQLite) and `ruaflow_processor::clickhouse::retention`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use ruaflow_processor::clickhouse::{retention as ch_retention, ClickHouseUrl};
use ruaflow_processor::retention::{self, RetentionConfig};

use super::config::Config;

/// Arguments of `ruaflow prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The SQLite database (embedded store).
    #[arg(long, conflicts_with = "clickhouse", required_unless_present = "clickhouse")]
    pub db: Option<PathBuf>,
    /// The ClickHouse store: http://[user[:password]@]host:port[/database].
    #[arg(long)]
    pub clickhouse: Option<ClickHouseUrl>,
    /// Configuration file with a `[retention]` section.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Days of DMARC records kept (overrides `records_days`).
    #[arg(long, value_name = "N")]
    pub records_days: Option<u32>,
    /// Days of reports, aggregates, TLS results, signals and alerts kept (overrides
    /// `aggregates_days`).
    #[arg(long, value_name = "N")]
    pub aggregates_days: Option<u32>,
}

pub fn run(args: PruneArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    config.retention = RetentionConfig {
        records_days: args.records_days.or(config.retention.records_days),
        aggregates_days: args.aggregates_days.or(config.retention.aggregates_days),
    };
    config.validate_retention()?;
    if !config.retention.is_set() {
        anyhow::bail!(
            "nothing to prune: set [retention] in the config, or --records-days / --aggregates-days"
        );
    }
    let now = ruaflow_schema::clock::now();
    if let Some(url) = &args.clickhouse {
        let runtime = super::assemble::runtime()?;
        let applied = runtime
            .block_on(ch_retention::apply(url, &config.retention, now))
            .with_context(|| format!("pruning {url}"))?;
        println!("{}", serde_json::to_string(&applied)?);
        return Ok(());
    }
    let db = args.db.as_deref().context("--db or --clickhouse")?;
    if !db.exists() {
        anyhow::bail!("no database at {}", db.display());
    }
    let pruned = retention::prune_file(db, &config.retention, now)
        .with_context(|| format!("pruning {}", db.display()))?;
    println!("{}", serde_json::to_string(&pruned)?);
    Ok(())
}
