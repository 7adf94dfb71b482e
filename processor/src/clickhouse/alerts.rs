//! Alerts copied from a detection store (SQLite) into ClickHouse's `alerts` table, where
//! Grafana shows them next to the data.
//!
//! The table's sorting key is the notice's identity (kind, domain, subject, window,
//! state), so copying a notice again — after a restart, or from a second detector — stores
//! it once.

use clickhouse::Row;
use serde::Serialize;

use super::{datetime, ClickHouseUrl};
use crate::store::StoreError;

#[derive(Debug, Row, Serialize)]
struct AlertRow {
    kind: String,
    domain: String,
    subject: String,
    severity: String,
    window_start: u32,
    window_end: u32,
    observed: f64,
    baseline: f64,
    first_seen: u32,
    raised_at: u32,
    state: String,
    summary: String,
    body: String,
}

/// Copies the alerts of `conn` with an id above `after` into ClickHouse; returns the
/// highest id copied (`after` when there was none).
pub fn copy_alerts(
    runtime: &tokio::runtime::Handle,
    url: &ClickHouseUrl,
    conn: &rusqlite::Connection,
    after: i64,
) -> Result<i64, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, kind, domain, subject, severity, window_start, window_end, observed, baseline, first_seen,
                raised_at, state, summary, body
         FROM alerts WHERE id > ?1 ORDER BY id",
    )?;
    let mut last = after;
    let mut rows = Vec::new();
    for row in stmt.query_map([after], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            AlertRow {
                kind: r.get(1)?,
                domain: r.get(2)?,
                subject: r.get(3)?,
                severity: r.get(4)?,
                window_start: datetime(r.get(5)?),
                window_end: datetime(r.get(6)?),
                observed: r.get(7)?,
                baseline: r.get(8)?,
                first_seen: datetime(r.get(9)?),
                raised_at: datetime(r.get(10)?),
                state: r.get(11)?,
                summary: r.get(12)?,
                body: r.get(13)?,
            },
        ))
    })? {
        let (id, alert) = row?;
        last = last.max(id);
        rows.push(alert);
    }
    if rows.is_empty() {
        return Ok(after);
    }
    let client = url.client();
    let failed = |e: clickhouse::error::Error| StoreError::ClickHouse(format!("insert into alerts: {e}"));
    runtime.block_on(async {
        let mut insert = client.insert::<AlertRow>("alerts").await.map_err(failed)?;
        for row in &rows {
            insert.write(row).await.map_err(failed)?;
        }
        insert.end().await.map_err(failed)
    })?;
    Ok(last)
}
