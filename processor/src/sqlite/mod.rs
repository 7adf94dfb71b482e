//! The embedded store: one SQLite file (WAL mode), the same logical tables as ClickHouse.
//!
//! Input: what the pipeline's writer computed — reports, records with their verdicts,
//! aggregates, dead letters. Output: rows that `ruaflow report`, the detectors and
//! dashboards read, and the sender model ([`crate::sender`]), kept here in the same
//! transaction as the reports it learns from. Invariants: every write of a report (its
//! row, its records, its aggregates) happens inside one savepoint, and its changes to the
//! sender model are staged (`staged.rs`), undone with that savepoint and written before
//! the batch's commit, so a report is stored whole or not at all; the report identity is
//! a UNIQUE key, so a redelivered report changes no total (nor the model); transactions are
//! committed by the caller in batches, and only a committed batch may be acknowledged
//! upstream.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use ruaflow_schema::dmarc::{Record, ReportHeader};
use ruaflow_schema::tlsrpt::TlsReport;

use crate::aggregate::Aggregates;
use crate::detect::DetectConfig;
use crate::normalize::Verdict;
use crate::redact::FailureRow;

mod detect;
mod senders;
mod staged;

pub use detect::SqliteDetect;
use senders::{learn_history, SenderTable};
pub use senders::{sender_status, Refresh};

/// Versioned migrations, applied in order and recorded in `schema_migrations`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../../schema/sql/sqlite/0001_init.sql")),
    (2, include_str!("../../../schema/sql/sqlite/0002_dead_letter_inputs.sql")),
    (3, include_str!("../../../schema/sql/sqlite/0003_failure_reports.sql")),
    (5, include_str!("../../../schema/sql/sqlite/0005_senders.sql")),
    (6, include_str!("../../../schema/sql/sqlite/0006_service_trust.sql")),
    (7, include_str!("../../../schema/sql/sqlite/0007_alert_lifecycle.sql")),
    (8, include_str!("../../../schema/sql/sqlite/0008_model_rules.sql")),
];

use crate::barrier::Sealed;
use crate::store::{InputTally, ReportFacts, ReportTotals, Store};
pub use crate::store::{Origin, StoreError};

/// A report being written.
pub struct OpenReport {
    id: i64,
    domain: String,
    day: i64,
    reporter: String,
}

/// The SQLite store.
pub struct SqliteStore {
    conn: Connection,
    in_tx: bool,
    /// The rules the sender model's stored status follows.
    rules: DetectConfig,
    /// The sender model's rows the open batch changed, written at its commit.
    staged: staged::Staged,
}

/// The page cache, in KiB.
const CACHE_KIB: i64 = 16 * 1024;

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        Self::setup(conn)
    }

    /// An in-memory store, for tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(conn: Connection) -> Result<Self, StoreError> {
        // WAL lets `ruaflow report` read while `ruaflow run` writes; NORMAL sync is
        // durable across process crashes (the case the pipeline guards against) and
        // only risks the last commits on power loss.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // SQLite's default page cache is 2 MB: a batch's B-tree pages no longer fit, so
        // it spills dirty pages to the WAL mid-transaction and reads them back. 16 MiB
        // holds a batch's working set (BENCHMARKS.md §4c) and keeps one huge report's
        // peak far below its goal.
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let mut store =
            Self { conn, in_tx: false, rules: DetectConfig::default(), staged: staged::Staged::default() };
        store.migrate()?;
        Ok(store)
    }

    /// Keeps the sender model's stored status by `rules` (declared networks, learning
    /// window) instead of the defaults. When the stored statuses were evaluated by other
    /// rules (a sender declared since, a longer window), every one is evaluated again,
    /// so a declaration takes effect on the sources already seen.
    pub fn with_rules(mut self, rules: DetectConfig) -> Result<Self, StoreError> {
        self.rules = rules;
        let written = senders::status_rules(&self.rules);
        let stored: Option<String> = self
            .conn
            .query_row("SELECT value FROM store_state WHERE key = 'status_rules'", [], |r| r.get(0))
            .optional()?;
        if stored.as_deref() != Some(written.as_str()) {
            let tx = self.conn.transaction()?;
            let changed = senders::refresh_statuses(&tx, &self.rules, senders::Refresh::All)?;
            tx.execute(
                "INSERT INTO store_state (key, value) VALUES ('status_rules', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [&written],
            )?;
            tx.commit()?;
            if stored.is_some() {
                tracing::info!(changed, "sender statuses evaluated again by the changed rules");
            }
        }
        Ok(self)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )?;
        let applied: std::collections::BTreeSet<i64> = self
            .conn
            .prepare("SELECT version FROM schema_migrations")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let supported = MIGRATIONS.last().map_or(0, |m| m.0);
        if let Some(&found) = applied.last().filter(|&&v| v > supported) {
            return Err(StoreError::TooNew { found, supported });
        }
        // Every migration not applied yet, in order (numbers need not be contiguous).
        for (version, sql) in MIGRATIONS.iter().filter(|m| !applied.contains(&m.0)) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            if *version == 5 {
                // The sender model of a file written before it: learned once from the
                // aggregates already stored, in the order they happened.
                learn_history(&tx)?;
            }
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![version, ruaflow_schema::clock::now()],
            )?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Evaluates the stored statuses `which` names again by the store's rules, in one
    /// transaction; returns how many changed. After enrichment, with
    /// [`Refresh::NamedServices`]: an address now known as a mail service stands as one.
    pub fn refresh_statuses(&mut self, which: Refresh) -> Result<usize, StoreError> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let changed = senders::refresh_statuses(&tx, &self.rules, which)?;
        tx.commit()?;
        Ok(changed)
    }

    /// The underlying connection, for readers (`report`, detection).
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Abandons the open batch, if any.
    pub fn rollback(&mut self) -> Result<(), StoreError> {
        self.staged.clear();
        if self.in_tx {
            self.in_tx = false;
            self.conn.execute_batch("ROLLBACK")?;
        }
        Ok(())
    }

    /// True when an envelope with these bytes was already stored.
    pub fn envelope_seen(&self, sha256: &[u8; 32]) -> Result<bool, StoreError> {
        let found = self
            .conn
            .prepare_cached("SELECT 1 FROM envelopes WHERE sha256 = ?1")?
            .query_row([&sha256[..]], |_| Ok(()))
            .optional()?;
        Ok(found.is_some())
    }

    /// Adds one part of a report's aggregates to the aggregate tables, and its changes to
    /// the sender model (per source and per network). Parts add up: a report too large to
    /// aggregate at once is written in several, inside the same savepoint.
    fn write_aggregates(&mut self, report: &OpenReport, part: &Aggregates) -> Result<(), StoreError> {
        let mut upsert = self.conn.prepare_cached(
            "INSERT INTO agg_source_day (domain, day, source_ip, reporter, network, messages, dmarc_pass,
                dkim_aligned_pass, spf_aligned_pass, dkim_only_pass, disp_none, disp_quarantine, disp_reject)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT (domain, day, source_ip, reporter) DO UPDATE SET
                messages = messages + excluded.messages,
                dmarc_pass = dmarc_pass + excluded.dmarc_pass,
                dkim_aligned_pass = dkim_aligned_pass + excluded.dkim_aligned_pass,
                spf_aligned_pass = spf_aligned_pass + excluded.spf_aligned_pass,
                dkim_only_pass = dkim_only_pass + excluded.dkim_only_pass,
                disp_none = disp_none + excluded.disp_none,
                disp_quarantine = disp_quarantine + excluded.disp_quarantine,
                disp_reject = disp_reject + excluded.disp_reject",
        )?;
        let mut source = self.conn.prepare_cached(
            "INSERT INTO sources (ip, network, first_seen) VALUES (?1, ?2, ?3) ON CONFLICT (ip) DO NOTHING",
        )?;
        for (ip, c) in &part.sources {
            let ip = ip.to_string();
            upsert.execute(params![
                report.domain,
                report.day,
                ip,
                report.reporter,
                c.network,
                c.messages,
                c.dmarc_pass,
                c.dkim_aligned_pass,
                c.spf_aligned_pass,
                c.dkim_only_pass,
                c.disp_none,
                c.disp_quarantine,
                c.disp_reject
            ])?;
            source.execute(params![ip, c.network, report.day])?;
        }
        let mut selector = self.conn.prepare_cached(
            "INSERT INTO agg_selector_day (domain, day, dkim_domain, selector, messages, dkim_pass, dkim_only_pass)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (domain, day, dkim_domain, selector) DO UPDATE SET
                messages = messages + excluded.messages,
                dkim_pass = dkim_pass + excluded.dkim_pass,
                dkim_only_pass = dkim_only_pass + excluded.dkim_only_pass",
        )?;
        for ((domain, sel), c) in &part.selectors {
            selector.execute(params![
                report.domain,
                report.day,
                domain,
                sel,
                c.messages,
                c.dkim_pass,
                c.dkim_only_pass
            ])?;
        }
        drop((upsert, source, selector));
        for (ip, c) in &part.sources {
            self.learn(SenderTable::Sources, &report.domain, &ip.to_string(), report.day, c)?;
        }
        for (network, c) in &part.networks {
            self.learn(SenderTable::Networks, &report.domain, network, report.day, c)?;
        }
        Ok(())
    }

    /// The rows of a TLS report, inside the open savepoint; false when a report with its
    /// identity is already stored.
    fn write_tlsrpt(
        &self,
        report: &TlsReport,
        origin: &Origin,
        location: &str,
        domain: &str,
        day: i64,
    ) -> Result<bool, StoreError> {
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO reports (kind, org_name, report_id, domain, begin_ts, end_ts, day, email,
                    schema_version, record_count, message_count, envelope_sha256, location, stored_at, warnings)
                 VALUES ('tlsrpt', ?1, ?2, ?3, ?4, ?5, ?6, ?7, 'rfc8460', ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                report.organization_name,
                report.report_id,
                domain,
                report.start,
                report.end,
                day,
                report.contact_info,
                report.policies.len(),
                report.successful_sessions() + report.failed_sessions(),
                &origin.sha256[..],
                location,
                ruaflow_schema::clock::now(),
                (!report.warnings.is_empty()).then(|| json(&report.warnings)),
            ])?;
        if inserted == 0 {
            return Ok(false);
        }
        let id = self.conn.last_insert_rowid();
        let mut policy = self.conn.prepare_cached(
            "INSERT INTO tlsrpt_policies (report, policy_type, policy_domain, mx_host, policy_string,
                successful_sessions, failed_sessions) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut failure = self.conn.prepare_cached(
            "INSERT INTO tlsrpt_failures (report, policy_domain, result_type, sending_mta_ip, receiving_mx_hostname,
                receiving_ip, failed_sessions, additional_information, failure_reason_code)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for p in &report.policies {
            let policy_domain = if p.policy_domain.is_empty() { domain } else { p.policy_domain.as_str() };
            policy.execute(params![
                id,
                p.policy_type.as_str(),
                policy_domain,
                serde_json::to_string(&p.mx_host).unwrap_or_default(),
                serde_json::to_string(&p.policy_string).unwrap_or_default(),
                p.successful_sessions,
                p.failed_sessions
            ])?;
            for f in &p.failure_details {
                failure.execute(params![
                    id,
                    policy_domain,
                    f.result_type.as_str(),
                    f.sending_mta_ip.map(|ip| ip.to_string()),
                    f.receiving_mx_hostname,
                    f.receiving_ip.map(|ip| ip.to_string()),
                    f.failed_session_count,
                    f.additional_information,
                    f.failure_reason_code
                ])?;
            }
        }
        Ok(true)
    }

    /// Rolls the open savepoint `report` back when `result` is an error, so that nothing
    /// of a refused report stays; passes the result on.
    fn roll_back_on_error<T>(&mut self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if result.is_err() {
            self.roll_back_report()?;
        }
        result
    }

    /// Opens the savepoint of one report. Between two reports, a full stage is written
    /// out first, outside any report's savepoint.
    fn begin_report(&mut self) -> Result<(), StoreError> {
        if self.staged.len() >= staged::STAGED_MAX {
            self.flush_staged()?;
        }
        self.conn.execute_batch("SAVEPOINT report")?;
        self.staged.begin_report();
        Ok(())
    }

    /// Keeps the open report.
    fn release_report(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("RELEASE report")?;
        self.staged.release_report();
        Ok(())
    }

    /// Rolls the open report back, in the database and in the staged rows.
    fn roll_back_report(&mut self) -> Result<(), StoreError> {
        self.staged.roll_back_report();
        self.conn.execute_batch("ROLLBACK TO report; RELEASE report")?;
        Ok(())
    }
}

impl Store for SqliteStore {
    type Open = OpenReport;

    /// Starts a batch transaction if none is open.
    fn begin(&mut self) -> Result<(), StoreError> {
        if !self.in_tx {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.in_tx = true;
        }
        Ok(())
    }

    /// Commits the batch, then releases its acknowledgements: once `COMMIT` returned,
    /// everything written since [`Self::begin`] survives a crash.
    fn commit(&mut self, sealed: Sealed) -> Result<(), StoreError> {
        if self.in_tx {
            self.flush_staged()?;
            self.conn.execute_batch("COMMIT")?;
            self.in_tx = false;
        }
        sealed.release();
        Ok(())
    }

    /// Records that an envelope was fully processed (inside the batch).
    fn envelope_done(&mut self, origin: &Origin, tally: &InputTally) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO envelopes (sha256, source, origin, filename, received_at, stored_at, reports, dead_letters)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                &origin.sha256[..],
                origin.source.as_str(),
                origin.origin,
                origin.filename,
                origin.received_at,
                ruaflow_schema::clock::now(),
                tally.reports,
                tally.dead_letters
            ])?;
        Ok(())
    }

    /// Starts storing a DMARC report. Returns `None` when a report with the same
    /// identity is already stored (the caller then skips its records).
    fn begin_dmarc(
        &mut self,
        facts: &ReportFacts<'_>,
        header: &ReportHeader,
    ) -> Result<Option<OpenReport>, StoreError> {
        let (k, m, p) = (&facts.key, &header.metadata, &header.policy);
        self.begin_report()?;
        let insert = || -> Result<usize, StoreError> {
            Ok(self.conn.prepare_cached(
                "INSERT OR IGNORE INTO reports (kind, org_name, report_id, domain, begin_ts, end_ts, day, email,
                    schema_version, policy_p, policy_sp, policy_np, adkim, aspf, pct, testing, record_count,
                    message_count, envelope_sha256, location, stored_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, 0, 0, ?17, ?18, ?19)",
            )?
            .execute(params![
                k.kind.as_str(),
                k.reporter,
                k.report_id,
                k.domain,
                k.begin,
                k.end,
                facts.day,
                m.email,
                match header.schema {
                    ruaflow_schema::dmarc::SchemaVersion::Rfc7489 => "rfc7489",
                    ruaflow_schema::dmarc::SchemaVersion::Rfc9990 => "rfc9990",
                },
                p.p.as_ref().map(|v| v.as_str()),
                p.sp.as_ref().map(|v| v.as_str()),
                p.np.as_ref().map(|v| v.as_str()),
                p.adkim.as_ref().map(|v| v.as_str()),
                p.aspf.as_ref().map(|v| v.as_str()),
                p.pct,
                p.testing.as_ref().map(|v| v.as_str()),
                &facts.origin.sha256[..],
                facts.location,
                ruaflow_schema::clock::now(),
            ])?)
        };
        let inserted = insert();
        if self.roll_back_on_error(inserted)? == 0 {
            self.release_report()?;
            return Ok(None);
        }
        Ok(Some(OpenReport {
            id: self.conn.last_insert_rowid(),
            domain: k.domain.clone(),
            day: facts.day,
            reporter: k.reporter.clone(),
        }))
    }

    /// Stores one record of an open report, with its verdict.
    fn dmarc_record(
        &mut self,
        report: &mut OpenReport,
        record: &Record,
        v: &Verdict<'_>,
        _network: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO dmarc_records (report, source_ip, count, disposition, policy_dkim, policy_spf, dmarc_pass,
                    dkim_aligned, spf_aligned, header_from, envelope_from, envelope_to, dkim_domain, dkim_selector,
                    dkim_result, spf_domain, spf_result, reasons, dkim_auth, spf_auth)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
            )?
            .execute(params![
                report.id,
                record.source_ip.to_string(),
                record.count,
                record.disposition.as_str(),
                record.dkim.as_ref().map(|r| r.as_str()),
                record.spf.as_ref().map(|r| r.as_str()),
                v.dmarc_pass(),
                v.dkim_aligned,
                v.spf_aligned,
                record.header_from,
                record.envelope_from,
                record.envelope_to,
                v.dkim.map(|d| d.domain.as_str()),
                v.dkim.and_then(|d| d.selector.as_deref()),
                v.dkim.map(|d| d.result.as_str()),
                v.spf.map(|s| s.domain.as_str()),
                v.spf.map(|s| s.result.as_str()),
                (!record.reasons.is_empty()).then(|| json(&record.reasons)),
                json(&record.dkim_auth),
                json(&record.spf_auth),
            ])?;
        Ok(())
    }

    /// Writes one part of the report's aggregates and learns from it.
    fn dmarc_aggregates(&mut self, report: &mut OpenReport, part: &Aggregates) -> Result<(), StoreError> {
        self.write_aggregates(report, part)
    }

    /// Finishes an open report: writes its totals and warnings, and releases its
    /// savepoint.
    fn finish_dmarc(
        &mut self,
        report: OpenReport,
        totals: ReportTotals,
        warnings: &[String],
    ) -> Result<(), StoreError> {
        let warnings = (!warnings.is_empty()).then(|| serde_json::to_string(warnings).unwrap_or_default());
        let finished = self
            .conn
            .prepare_cached(
                "UPDATE reports SET record_count = ?2, message_count = ?3, warnings = ?4 WHERE id = ?1",
            )
            .and_then(|mut update| {
                update.execute(params![report.id, totals.records, totals.messages, warnings])
            })
            .map_err(StoreError::from);
        self.roll_back_on_error(finished)?;
        self.release_report()?;
        Ok(())
    }

    /// Abandons an open report (its parse failed part-way): nothing of it is kept.
    fn abort_report(&mut self, report: OpenReport) -> Result<(), StoreError> {
        let _ = report;
        self.roll_back_report()
    }

    /// Stores a TLS report whole. Returns false when it was already stored.
    fn tlsrpt(&mut self, facts: &ReportFacts<'_>, report: &TlsReport) -> Result<bool, StoreError> {
        self.begin_report()?;
        let written = self.write_tlsrpt(report, facts.origin, facts.location, &facts.key.domain, facts.day);
        if !self.roll_back_on_error(written)? {
            self.release_report()?;
            return Ok(false);
        }
        self.release_report()?;
        Ok(true)
    }

    /// Stores a failure report row. Returns false when one with the same identity is
    /// already stored (the first copy wins).
    fn failure_report(
        &mut self,
        row: &FailureRow,
        origin: &Origin,
        location: &str,
    ) -> Result<bool, StoreError> {
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO failure_reports (report_key, arrival, day, reporter, feedback_type, domain,
                    source_ip, network, auth_failures, delivery_result, dkim_domain, dkim_selector, spf_domain,
                    identity_alignment, mail_from, rcpt_to, authentication_results, header_from, header_to, subject,
                    date, message_id, original_authentication_results, body, redacted, envelope_sha256, location,
                    stored_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
                    ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)",
            )?
            .execute(params![
                &row.key[..],
                row.arrival,
                row.day,
                row.reporter,
                row.feedback_type,
                row.domain,
                row.source_ip.map(|ip| ip.to_string()),
                row.network,
                row.auth_failures,
                row.delivery_result,
                row.dkim_domain,
                row.dkim_selector,
                row.spf_domain,
                row.identity_alignment,
                row.mail_from,
                row.rcpt_to,
                row.authentication_results,
                row.header_from,
                row.header_to,
                row.subject,
                row.date,
                row.message_id,
                row.original_authentication_results,
                row.body,
                row.redacted,
                &origin.sha256[..],
                location,
                ruaflow_schema::clock::now()
            ])?;
        Ok(inserted > 0)
    }

    /// Stores a dead letter: which input, where in it, and why. A dead letter for the
    /// same envelope and location is stored once.
    fn dead_letter(&mut self, origin: &Origin, location: &str, reason: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO dead_letters (envelope_sha256, source, origin, location, reason, received_at, raw_size)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                &origin.sha256[..],
                origin.source.as_str(),
                origin.origin,
                location,
                reason,
                origin.received_at,
                origin.size
            ])?;
        Ok(())
    }

    /// Keeps the first bytes of an input that produced dead letters, once per input.
    fn dead_letter_input(
        &mut self,
        origin: &Origin,
        raw: &std::sync::Arc<Vec<u8>>,
        keep: usize,
        _reasons: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO dead_letter_inputs (envelope_sha256, source, origin, filename, received_at, raw_size, raw)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                &origin.sha256[..],
                origin.source.as_str(),
                origin.origin,
                origin.filename,
                origin.received_at,
                origin.size,
                &raw[..raw.len().min(keep)]
            ])?;
        Ok(())
    }
}

/// Store-wide totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// DMARC aggregate reports stored.
    pub dmarc_reports: u64,
    /// TLS reports stored.
    pub tlsrpt_reports: u64,
    /// DMARC records stored.
    pub records: u64,
    /// Messages over all records.
    pub messages: u64,
    /// Messages over the per-source aggregates (equals `messages` when consistent).
    pub aggregated_messages: u64,
    /// Dead letters stored.
    pub dead_letters: u64,
}

/// A model value as JSON text. The model types serialize infallibly (strings, numbers,
/// vectors of them), so the empty-string fallback is never taken.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_runs_with_its_page_cache_and_savepoint_journal_settings() -> Result<(), StoreError> {
        let store = SqliteStore::in_memory()?;
        let cache: i64 = store.conn.pragma_query_value(None, "cache_size", |r| r.get(0))?;
        assert_eq!(cache, -CACHE_KIB);
        // Set at build time (.cargo/config.toml): without it every report's savepoint
        // journal beyond 64 KiB goes through a temporary file.
        let options: Vec<String> = store
            .conn
            .prepare("PRAGMA compile_options")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        assert!(options.iter().any(|o| o == "STMTJRNL_SPILL=16777216"), "{options:?}");
        Ok(())
    }
}
