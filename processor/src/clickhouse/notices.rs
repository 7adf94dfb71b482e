//! The detector group's notices for operators: listed, and acknowledged
//! (`ruaflow alerts --clickhouse URL`, `ruaflow alerts ack ID --clickhouse URL`).
//!
//! An acknowledgement is the notice's row written again with `acknowledged_at` and the
//! note, under the next version; the detector group reads it before it notifies about
//! the episode again, so an acknowledged episode sends nothing more.

use super::detect::{NoticeRow, NOTICE_FIELDS};
use super::{datetime, ClickHouseUrl};
use crate::store::StoreError;

/// How far an acknowledgement moves a notice's version.
const ACK_VERSION_STEP: u64 = 1 << 20;

/// One stored notice.
#[derive(Debug, Clone)]
pub struct StoredNotice {
    /// Its id (derived from its identity).
    pub id: i64,
    /// `firing` or `resolved`.
    pub state: String,
    /// The alert as the detector wrote it (JSON).
    pub body: String,
    /// About a window already old when evaluated: stored, never sent.
    pub historical: bool,
    /// When an operator acknowledged it (unix seconds).
    pub acknowledged_at: Option<i64>,
    /// The operator's note.
    pub ack_note: Option<String>,
}

/// Every notice (of `domain`, when given), oldest window first.
pub fn list(
    url: &ClickHouseUrl,
    runtime: &tokio::runtime::Handle,
    domain: Option<&str>,
) -> Result<Vec<StoredNotice>, StoreError> {
    let client = url.client();
    let sql = format!(
        "SELECT {NOTICE_FIELDS} FROM notices FINAL WHERE ? = '' OR lower(domain) = lower(?)
         ORDER BY window_start, domain, kind, state"
    );
    let d = domain.unwrap_or_default();
    let rows: Vec<NoticeRow> = runtime
        .block_on(client.query(&sql).bind(d).bind(d).fetch_all())
        .map_err(|e| StoreError::ClickHouse(format!("reading notices: {e}")))?;
    Ok(rows
        .into_iter()
        .map(|r| StoredNotice {
            id: r.id,
            state: r.state,
            body: r.body,
            historical: r.historical == 1,
            acknowledged_at: (r.acknowledged_at > 0).then_some(i64::from(r.acknowledged_at)),
            ack_note: (!r.ack_note.is_empty()).then_some(r.ack_note),
        })
        .collect())
}

/// What an acknowledgement found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acknowledged {
    /// Done.
    Done {
        /// The alert kind.
        kind: String,
        /// The policy domain.
        domain: String,
        /// It was acknowledged before (the first time is kept).
        again: bool,
    },
    /// No notice has this id.
    NotFound,
    /// The notice is a resolved one: there is nothing left to acknowledge.
    Resolved {
        /// The alert kind.
        kind: String,
        /// The policy domain.
        domain: String,
    },
}

/// Acknowledges notice `id` at `now`, with `note`.
pub fn acknowledge(
    url: &ClickHouseUrl,
    runtime: &tokio::runtime::Handle,
    id: i64,
    note: Option<&str>,
    now: i64,
) -> Result<Acknowledged, StoreError> {
    let client = url.client();
    let failed =
        |e: clickhouse::error::Error| StoreError::ClickHouse(format!("acknowledging notice {id}: {e}"));
    let rows: Vec<NoticeRow> = runtime
        .block_on(
            client
                .query(&format!("SELECT {NOTICE_FIELDS} FROM notices FINAL WHERE id = ?"))
                .bind(id)
                .fetch_all(),
        )
        .map_err(failed)?;
    let Some(mut row) = rows.into_iter().next() else { return Ok(Acknowledged::NotFound) };
    if row.state != "firing" {
        return Ok(Acknowledged::Resolved { kind: row.kind, domain: row.domain });
    }
    let again = row.acknowledged_at > 0;
    if !again {
        row.acknowledged_at = datetime(now);
    }
    if let Some(note) = note {
        row.ack_note = note.to_owned();
    }
    // Far above the detector's own steps (one per write), so a detector that read the
    // row just before cannot write over the acknowledgement; it reads it next time.
    row.version += ACK_VERSION_STEP;
    runtime.block_on(async {
        let mut insert = client.insert::<NoticeRow>("notices").await.map_err(failed)?;
        insert.write(&row).await.map_err(failed)?;
        insert.end().await.map_err(failed)
    })?;
    Ok(Acknowledged::Done { kind: row.kind, domain: row.domain, again })
}
