//! The sender model's tables (`senders`, `sender_networks`): reading and writing rows.

use rusqlite::{params, Connection, OptionalExtension};

use super::json;
use crate::aggregate::SourceCounts;
use crate::detect::DetectConfig;
use crate::sender::{Change, Context, Sender, Status, TRUSTED_SERVICE};
use crate::store::StoreError;

use super::staged::STAGED_MAX;

impl super::SqliteStore {
    /// Folds one report's counts for one source (or network) into the sender model: into
    /// the batch's staged row (read once per batch, written once at its commit), or, when
    /// as many rows are staged as [`STAGED_MAX`], straight into the table.
    pub(super) fn learn(
        &mut self,
        table: SenderTable,
        domain: &str,
        source: &str,
        day: i64,
        counts: &SourceCounts,
    ) -> Result<(), StoreError> {
        let key = (table, domain.to_owned(), source.to_owned());
        if let Some(row) = self.staged.change(&key) {
            row.apply(Change { day, counts });
            return Ok(());
        }
        let mut row = load_sender(&self.conn, table, domain, source)?
            .unwrap_or_else(|| Sender::new(domain, source, &counts.network));
        row.apply(Change { day, counts });
        if self.staged.len() >= STAGED_MAX {
            return write_row(&self.conn, &self.rules, table, &row);
        }
        self.staged.stage(key, row);
        Ok(())
    }

    /// Writes the staged rows, in key order, with their status as of their last day.
    pub(super) fn flush_staged(&mut self) -> Result<(), StoreError> {
        for ((table, _, _), row) in self.staged.drain_sorted() {
            write_row(&self.conn, &self.rules, table, &row)?;
        }
        Ok(())
    }
}

/// Writes a model row with its status as of its last day.
fn write_row(
    conn: &Connection,
    rules: &DetectConfig,
    table: SenderTable,
    row: &Sender,
) -> Result<(), StoreError> {
    let context = context(conn, rules, table, row)?;
    let (status, reason) = row.status_as_of(rules, context.borrowed(), row.last_day);
    store_sender(conn, table, row, status, &reason)
}

/// What the status rule needs besides the row: a declared network, and the service
/// enrichment named for an address.
fn context(
    conn: &Connection,
    rules: &DetectConfig,
    table: SenderTable,
    row: &Sender,
) -> Result<OwnedContext, StoreError> {
    let service = match table {
        SenderTable::Sources if row.first_dkim_day.is_some() => conn
            .prepare_cached(&format!("SELECT {TRUSTED_SERVICE} FROM sources WHERE ip = ?1"))?
            .query_row([&row.source], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten(),
        _ => None,
    };
    let declared = rules.declared(&row.domain, row.source.parse().ok(), service.as_deref());
    Ok(OwnedContext { declared, service })
}

/// The status rules as written, to tell whether stored statuses were evaluated by the
/// rules in force.
pub(super) fn status_rules(rules: &DetectConfig) -> String {
    format!(
        "baseline_days={} familiar_after_days={} familiar_min_days={} senders={:?}",
        rules.baseline_days, rules.familiar_after_days, rules.familiar_min_days, rules.senders
    )
}

/// Which stored statuses to evaluate again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// Every row of both tables: the rules changed.
    All,
    /// The address rows whose source enrichment has since named a trusted service,
    /// while their stored status ranks below `service`.
    NamedServices,
}

/// Rows evaluated per read, so that a large model is never held whole.
const REFRESH_CHUNK: i64 = 5_000;

/// Evaluates stored statuses again by `rules` (as of each row's last day, as when it was
/// stored) and writes those that changed; returns how many did. The caller holds the
/// transaction.
pub fn refresh_statuses(
    conn: &Connection,
    rules: &DetectConfig,
    which: Refresh,
) -> Result<usize, StoreError> {
    let mut changed = 0;
    for table in [SenderTable::Sources, SenderTable::Networks] {
        let filter = match (which, table) {
            (Refresh::All, _) => "1".to_owned(),
            (Refresh::NamedServices, SenderTable::Sources) => format!(
                "first_dkim_day IS NOT NULL AND status IN ('familiar', 'unknown')
                 AND source IN (SELECT ip FROM sources WHERE ({TRUSTED_SERVICE}) IS NOT NULL)"
            ),
            (Refresh::NamedServices, SenderTable::Networks) => continue,
        };
        let read = format!(
            "SELECT {SENDER_COLUMNS}, status, reason FROM {} WHERE (domain, source) > (?1, ?2) AND {filter}
             ORDER BY domain, source LIMIT ?3",
            table.name()
        );
        let update = format!(
            "UPDATE {} SET status_since = CASE WHEN status = ?3 THEN status_since ELSE last_day END,
                status = ?3, reason = ?4 WHERE domain = ?1 AND source = ?2",
            table.name()
        );
        let mut after = (String::new(), String::new());
        loop {
            let rows: Vec<(Sender, String, String)> = conn
                .prepare_cached(&read)?
                .query_map(params![after.0, after.1, REFRESH_CHUNK], |r| {
                    Ok((sender_from_row(r, 0)?, r.get(15)?, r.get(16)?))
                })?
                .collect::<Result<_, _>>()?;
            let Some((last, _, _)) = rows.last() else { break };
            after = (last.domain.clone(), last.source.clone());
            for (row, stored_status, stored_reason) in &rows {
                let context = context(conn, rules, table, row)?;
                let (status, reason) = row.status_as_of(rules, context.borrowed(), row.last_day);
                if status.as_str() != stored_status || &reason != stored_reason {
                    conn.prepare_cached(&update)?.execute(params![
                        row.domain,
                        row.source,
                        status.as_str(),
                        reason
                    ])?;
                    changed += 1;
                }
            }
        }
    }
    Ok(changed)
}

/// Which table of the sender model: per address, or per network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
