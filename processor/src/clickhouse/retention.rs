//! Retention in ClickHouse: the ages of `[retention]` (see `crate::retention`) as table
//! TTLs where the server has them (19.6 and later), and as partition drops where it does
//! not (18.16).
//!
//! The tables, their time column and their tier are those of
//! `schema/sql/clickhouse/0004_retention_ttl.sql`, read from it, so the TTLs and the
//! drops cannot disagree. With TTLs, ClickHouse deletes on its own as it merges; the
//! TTL is sent only when the one in force differs (changing it rewrites parts).
//! Without, each call drops the month partitions whose days are all past the age (so a
//! month goes once its last day has aged out) and deletes old rows of the small
//! unpartitioned tables with a mutation; run it on a timer (`ruaflow prune`).

use clickhouse::Client;

use super::migrate::statements;
use super::ClickHouseUrl;
use crate::retention::RetentionConfig;
use crate::store::StoreError;

/// The TTL statements, with `{records_days}` / `{aggregates_days}` to fill in.
const TTL_TEMPLATE: &str = include_str!("../../../schema/sql/clickhouse/0004_retention_ttl.sql");

/// The first server version with table TTLs.
const TTL_SINCE: (u32, u32) = (19, 6);

/// What a retention pass did in ClickHouse.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    /// Whether the server has TTLs (then they do the deleting).
    pub ttl: bool,
    /// Tables whose TTL was set now.
    pub ttls_set: Vec<String>,
    /// Partitions dropped, as `table:partition`.
    pub partitions_dropped: Vec<String>,
    /// Unpartitioned tables given a delete mutation for their old rows.
    pub deletes: Vec<String>,
}

/// One line of the template: a table, the time column its age counts from, the tier
/// (`records_days` or `aggregates_days`) and the statement.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    table: String,
    column: String,
    tier: &'static str,
    statement: String,
}

/// The rules of the template; statements it cannot read are a bug caught by the tests.
fn rules() -> Vec<Rule> {
    statements(TTL_TEMPLATE)
        .into_iter()
        .filter_map(|statement| {
            // ALTER TABLE {table} MODIFY TTL {column} + toIntervalDay({tier})
            let words: Vec<&str> = statement.split_whitespace().collect();
            let tier = ["records_days", "aggregates_days"]
                .into_iter()
                .find(|t| statement.contains(&format!("{{{t}}}")))?;
            match words.as_slice() {
                ["ALTER", "TABLE", table, "MODIFY", "TTL", column, "+", _] => Some(Rule {
                    table: (*table).to_owned(),
                    column: (*column).to_owned(),
                    tier,
                    statement: statement.clone(),
                }),
                _ => None,
            }
        })
        .collect()
}

fn days(config: &RetentionConfig, tier: &str) -> Option<u32> {
    match tier {
        "records_days" => config.records_days,
        _ => config.aggregates_days,
    }
}

fn failed(what: String) -> impl Fn(clickhouse::error::Error) -> StoreError {
    move |e| StoreError::ClickHouse(format!("{what}: {e}"))
}

/// Applies `config` to the database at `url` at time `now` (unix seconds).
pub async fn apply(url: &ClickHouseUrl, config: &RetentionConfig, now: i64) -> Result<Applied, StoreError> {
    let client = url.client();
    let version: String = client
        .query("SELECT version()")
        .fetch_one()
        .await
        .map_err(failed("cannot read the server version".into()))?;
    let mut applied = Applied { ttl: supports_ttl(&version), ..Applied::default() };
    let cutoffs = config.cutoffs(now);
    for rule in rules() {
        let Some(age) = days(config, rule.tier) else { continue };
        if applied.ttl {
            set_ttl(&client, &rule, age, &mut applied).await?;
        } else {
            let keep_from = match rule.tier {
                "records_days" => cutoffs.records,
                _ => cutoffs.aggregates,
            };
            if let Some(day) = keep_from {
                drop_old(&client, &rule, day, &mut applied).await?;
            }
        }
    }
    Ok(applied)
}

/// Whether a `version()` answer (`18.16.1`, `26.9.1.1`) is a server with table TTLs.
fn supports_ttl(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= TTL_SINCE
}

async fn set_ttl(client: &Client, rule: &Rule, age: u32, applied: &mut Applied) -> Result<(), StoreError> {
    let engine: String = client
        .query("SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = ?")
        .bind(&rule.table)
        .fetch_one()
        .await
        .map_err(failed(format!("cannot read table {}", rule.table)))?;
    if engine.contains(&format!("TTL {} + toIntervalDay({age})", rule.column)) {
        return Ok(());
    }
    let sql = rule.statement.replace(&format!("{{{}}}", rule.tier), &age.to_string());
    client.query(&sql).execute().await.map_err(failed(format!("cannot set the TTL of {}", rule.table)))?;
    tracing::info!(table = %rule.table, days = age, "retention: ttl set");
    applied.ttls_set.push(rule.table.clone());
    Ok(())
}

/// Drops the month partitions of `rule.table` whose days all come before `keep_from`;
/// in an unpartitioned table, deletes the rows before it.
async fn drop_old(
    client: &Client,
    rule: &Rule,
    keep_from: i64,
    applied: &mut Applied,
) -> Result<(), StoreError> {
    let partitions: Vec<String> = client
        .query(
            "SELECT DISTINCT partition FROM system.parts
             WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition",
        )
        .bind(&rule.table)
        .fetch_all()
        .await
        .map_err(failed(format!("cannot list the partitions of {}", rule.table)))?;
    let keep_month = month_of(keep_from);
    for partition in partitions {
        match partition.parse::<u32>() {
            // toYYYYMM(day): every day of a month before the first month kept is older.
            Ok(month) if (100_001..=999_912).contains(&month) && month < keep_month => {
                client
                    .query(&format!("ALTER TABLE {} DROP PARTITION {month}", rule.table))
                    .execute()
                    .await
                    .map_err(failed(format!("cannot drop partition {month} of {}", rule.table)))?;
                tracing::info!(table = %rule.table, partition = month, "retention: partition dropped");
                applied.partitions_dropped.push(format!("{}:{month}", rule.table));
            }
            Ok(_) => {}
            Err(_) => {
                // `tuple()`: one partition for the whole table.
                let date = ruaflow_schema::time::format_date(keep_from);
                let condition = format!("toDate({}) < toDate('{date}')", rule.column);
                let old: u64 = client
                    .query(&format!("SELECT count() FROM {} WHERE {condition}", rule.table))
                    .fetch_one()
                    .await
                    .map_err(failed(format!("cannot count old rows of {}", rule.table)))?;
                if old > 0 {
                    client
                        .query(&format!("ALTER TABLE {} DELETE WHERE {condition}", rule.table))
                        .execute()
                        .await
                        .map_err(failed(format!("cannot delete old rows of {}", rule.table)))?;
                    tracing::info!(table = %rule.table, rows = old, "retention: old rows deleted");
                    applied.deletes.push(rule.table.clone());
                }
            }
        }
    }
    Ok(())
}

/// `YYYYMM` of a unix second (UTC), as `toYYYYMM` names partitions.
fn month_of(secs: i64) -> u32 {
    let (y, m, _) = ruaflow_schema::time::civil_from_days(secs.div_euclid(86_400));
    (y as u32) * 100 + m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_statement_is_a_rule_of_a_tier() {
        let rules = rules();
        assert_eq!(rules.len(), statements(TTL_TEMPLATE).len(), "a statement the rules cannot read");
        assert_eq!(rules.iter().filter(|r| r.tier == "records_days").count(), 4);
        let records = &rules[0];
        assert_eq!((records.table.as_str(), records.column.as_str()), ("dmarc_records", "day"));
        assert!(rules.iter().any(|r| r.table == "alerts" && r.column == "window_end"));
    }

    #[test]
    fn versions_and_months() {
        assert!(!supports_ttl("18.16.1"));
        assert!(!supports_ttl("19.5.3.8"));
        assert!(supports_ttl("19.6.1"));
        assert!(supports_ttl("26.9.1.1"));
        assert_eq!(month_of(1_788_220_800), 202_609); // 2026-09-01
    }
}
