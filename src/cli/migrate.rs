//! `ruaflow migrate --clickhouse URL [--config FILE]`: creates the database and applies
//! the versioned DDL under `schema/sql/clickhouse/` (idempotent; safe to run on every
//! deploy), then the config's `[retention]` (table TTLs where the server has them).

use std::path::PathBuf;

use clap::Args;

use ruaflow_processor::clickhouse::{migrate, retention, ClickHouseUrl};

use super::config::Config;

/// Arguments of `ruaflow migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// ClickHouse HTTP URL: http://[user[:password]@]host:port[/database] (database
    /// `ruaflow` by default; the password may come from RUAFLOW_CLICKHOUSE_PASSWORD).
    #[arg(long, env = "RUAFLOW_CLICKHOUSE")]
    pub clickhouse: ClickHouseUrl,
    /// Configuration file; its `[retention]` ages become table TTLs.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref())?;
    let runtime = super::assemble::runtime()?;
    let applied = runtime
        .block_on(migrate(&args.clickhouse))
        .map_err(|e| anyhow::anyhow!("migrating {}: {e}", args.clickhouse))?;
    match applied.as_slice() {
        [] => println!("{} is up to date", args.clickhouse),
        versions => println!(
            "{}: applied migration{} {}",
            args.clickhouse,
            if versions.len() > 1 { "s" } else { "" },
            versions.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        ),
    }
    if config.retention.is_set() {
        let applied = runtime
            .block_on(retention::apply(&args.clickhouse, &config.retention, ruaflow_schema::clock::now()))
            .map_err(|e| anyhow::anyhow!("retention in {}: {e}", args.clickhouse))?;
        if applied.ttl {
            println!("{}: retention TTLs in force ({} set now)", args.clickhouse, applied.ttls_set.len());
        } else {
            println!(
                "{}: this ClickHouse has no TTLs; old data is dropped by `ruaflow prune --clickhouse` (run it daily)",
                args.clickhouse
            );
        }
    }
    Ok(())
}
