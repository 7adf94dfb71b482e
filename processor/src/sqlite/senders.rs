//! The sender model's tables (`senders`, `sender_networks`): reading and writing rows.

use rusqlite::{params, Connection, OptionalExtension};

use super::json;
use crate::aggregate::SourceCounts;
use crate::detect::DetectConfig;
use crate::sender::{Change, Context, Sender, Status, TRUSTED_SERVICE};
use crate::store::StoreError;

impl super::SqliteStore {
    /// Folds one report's counts for one source (or network) into the sender model.
    pub(super) fn learn(
        &self,
        table: SenderTable,
        domain: &str,
        source: &str,
        day: i64,
        counts: &SourceCounts,
    ) -> Result<(), StoreError> {
        let mut row = load_sender(&self.conn, table, domain, source)?
            .unwrap_or_else(|| Sender::new(domain, source, &counts.network));
        row.apply(Change { day, counts });
        let context = self.context(table, &row)?;
        let (status, reason) = row.status_as_of(&self.rules, context.borrowed(), row.last_day);
        store_sender(&self.conn, table, &row, status, &reason)
    }

    /// What the status rule needs besides the row: a declared network, and the service
    /// enrichment named for an address.
    fn context(&self, table: SenderTable, row: &Sender) -> Result<OwnedContext, StoreError> {
        let service = match table {
            SenderTable::Sources if row.first_dkim_day.is_some() => self
                .conn
                .prepare_cached(&format!("SELECT {TRUSTED_SERVICE} FROM sources WHERE ip = ?1"))?
                .query_row([&row.source], |r| r.get::<_, Option<String>>(0))
                .optional()?
                .flatten(),
            _ => None,
        };
        let declared = self.rules.declared(&row.domain, row.source.parse().ok(), service.as_deref());
        Ok(OwnedContext { declared, service })
    }
}

/// Which table of the sender model: per address, or per network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SenderTable {
    /// `senders`: per policy domain × address.
    Sources,
    /// `sender_networks`: per policy domain × /24 or /48.
    Networks,
}

impl SenderTable {
    fn name(self) -> &'static str {
        match self {
            SenderTable::Sources => "senders",
            SenderTable::Networks => "sender_networks",
        }
    }
}

/// The status rule's context, owned (read from the config and the `sources` table).
struct OwnedContext {
    declared: Option<String>,
    service: Option<String>,
}

impl OwnedContext {
    fn borrowed(&self) -> Context<'_> {
        Context { declared: self.declared.as_deref(), service: self.service.as_deref() }
    }
}

/// The columns of a sender row, in the order [`load_sender`] and [`store_sender`] use.
pub(super) const SENDER_COLUMNS: &str =
    "domain, source, network, first_day, last_day, days, days_seen, messages, dmarc_pass,
    dkim_aligned_pass, spf_aligned_pass, dkim_only_pass, first_spf_day, first_dkim_day, dkim_keys";

/// One sender row from a query selecting [`SENDER_COLUMNS`] from column `at` on.
pub(crate) fn sender_from_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Sender> {
    let days: String = r.get(at + 5)?;
    let keys: String = r.get(at + 14)?;
    Ok(Sender {
        domain: r.get(at)?,
        source: r.get(at + 1)?,
        network: r.get(at + 2)?,
        first_day: r.get(at + 3)?,
        last_day: r.get(at + 4)?,
        days: serde_json::from_str(&days).unwrap_or_default(),
        days_seen: r.get(at + 6)?,
        messages: r.get(at + 7)?,
        dmarc_pass: r.get(at + 8)?,
        dkim_aligned_pass: r.get(at + 9)?,
        spf_aligned_pass: r.get(at + 10)?,
        dkim_only_pass: r.get(at + 11)?,
        first_spf_day: r.get(at + 12)?,
        first_dkim_day: r.get(at + 13)?,
        dkim_keys: serde_json::from_str(&keys).unwrap_or_default(),
    })
}

/// The model's row for `source` of `domain`, if it has one.
pub(crate) fn load_sender(
    conn: &Connection,
    table: SenderTable,
    domain: &str,
    source: &str,
) -> Result<Option<Sender>, StoreError> {
    let sql = format!("SELECT {SENDER_COLUMNS} FROM {} WHERE domain = ?1 AND source = ?2", table.name());
    Ok(conn.prepare_cached(&sql)?.query_row(params![domain, source], |r| sender_from_row(r, 0)).optional()?)
}

/// Writes a model row with its status as of its last day; `status_since` moves to the
/// last day when the status changed.
pub(crate) fn store_sender(
    conn: &Connection,
    table: SenderTable,
    row: &Sender,
    status: Status,
    reason: &str,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO {} ({SENDER_COLUMNS}, status, reason, status_since)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?5)
         ON CONFLICT (domain, source) DO UPDATE SET
            network = excluded.network, first_day = excluded.first_day, last_day = excluded.last_day,
            days = excluded.days, days_seen = excluded.days_seen, messages = excluded.messages,
            dmarc_pass = excluded.dmarc_pass, dkim_aligned_pass = excluded.dkim_aligned_pass,
            spf_aligned_pass = excluded.spf_aligned_pass, dkim_only_pass = excluded.dkim_only_pass,
            first_spf_day = excluded.first_spf_day, first_dkim_day = excluded.first_dkim_day,
            dkim_keys = excluded.dkim_keys,
            status_since = CASE WHEN status = excluded.status THEN status_since ELSE excluded.last_day END,
            status = excluded.status, reason = excluded.reason",
        table.name()
    );
    conn.prepare_cached(&sql)?.execute(params![
        row.domain,
        row.source,
        row.network,
        row.first_day,
        row.last_day,
        json(&row.days),
        row.days_seen,
        row.messages,
        row.dmarc_pass,
        row.dkim_aligned_pass,
        row.spf_aligned_pass,
        row.dkim_only_pass,
        row.first_spf_day,
        row.first_dkim_day,
        json(&row.dkim_keys),
        status.as_str(),
        reason,
    ])?;
    Ok(())
}

/// Learns the sender model of a file written before it had one, from the aggregates
/// already stored, day by day (default rules: statuses are refreshed as sources report
/// again).
pub(super) fn learn_history(conn: &Connection) -> Result<(), StoreError> {
    let rules = DetectConfig::default();
    for (table, key) in [(SenderTable::Sources, "source_ip"), (SenderTable::Networks, "network")] {
        let sql = format!(
            "SELECT domain, {key}, MIN(network), day, SUM(messages), SUM(dmarc_pass), SUM(dkim_aligned_pass),
                SUM(spf_aligned_pass), SUM(dkim_only_pass)
             FROM agg_source_day GROUP BY domain, {key}, day ORDER BY domain, {key}, day"
        );
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        let mut current: Option<Sender> = None;
        let flush = |row: Option<Sender>| -> Result<(), StoreError> {
            if let Some(row) = row {
                let (status, reason) = row.status_as_of(&rules, Context::default(), row.last_day);
                store_sender(conn, table, &row, status, &reason)?;
            }
            Ok(())
        };
        while let Some(r) = rows.next()? {
            let (domain, source, network, day): (String, String, String, i64) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            let counts = SourceCounts {
                network: network.clone(),
                messages: r.get(4)?,
                dmarc_pass: r.get(5)?,
                dkim_aligned_pass: r.get(6)?,
                spf_aligned_pass: r.get(7)?,
                dkim_only_pass: r.get(8)?,
                ..SourceCounts::default()
            };
            if current.as_ref().is_none_or(|c| c.domain != domain || c.source != source) {
                flush(current.take())?;
                current = Some(Sender::new(&domain, &source, &network));
            }
            if let Some(row) = current.as_mut() {
                row.apply(Change { day, counts: &counts });
            }
        }
        flush(current)?;
    }
    Ok(())
}

/// How `ip` stands with `domain` as of `day`, with the reason: the model's answer, which
/// every view of a source asks.
pub fn sender_status(
    conn: &Connection,
    rules: &DetectConfig,
    domain: &str,
    ip: &str,
    day: i64,
) -> Result<(Status, String), StoreError> {
    let service: Option<String> = conn
        .prepare_cached(&format!("SELECT {TRUSTED_SERVICE} FROM sources WHERE ip = ?1"))?
        .query_row([ip], |r| r.get(0))
        .optional()?
        .flatten();
    let declared = rules.declared(domain, ip.parse().ok(), service.as_deref());
    let context = Context { declared: declared.as_deref(), service: service.as_deref() };
    Ok(match load_sender(conn, SenderTable::Sources, domain, ip)? {
        Some(row) => row.status_as_of(rules, context, day),
        None => match declared {
            Some(note) => (Status::Configured, format!("declared for {domain}: {note}")),
            None => (Status::Unknown, "never seen".to_owned()),
        },
    })
}
