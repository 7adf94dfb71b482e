//! `ruaflow migrate --clickhouse URL`: creates the database and applies the versioned
//! DDL under `schema/sql/clickhouse/` (idempotent; safe to run on every deploy).

use clap::Args;

use ruaflow_processor::clickhouse::{migrate, ClickHouseUrl};

/// Arguments of `ruaflow migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// ClickHouse HTTP URL: http://[user[:password]@]host:port[/database] (database
    /// `ruaflow` by default; the password may come from RUAFLOW_CLICKHOUSE_PASSWORD).
    #[arg(long, env = "RUAFLOW_CLICKHOUSE")]
    pub clickhouse: ClickHouseUrl,
}

pub fn run(args: MigrateArgs) -> anyhow::Result<()> {
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
    Ok(())
}
