//! Retention: stored rows older than their tier's age are deleted.
//!
//! Input: a store and `[retention]` (two ages, in days). Output: the old rows gone.
//! Two tiers, because per-record rows are most of a store and daily aggregates are what
//! reports, dashboards and detection baselines read:
//! - `records_days`: DMARC records (one row per record), by report day; failure
//!   (forensic) reports, by the day their message arrived; and dead letters with the
//!   input bytes kept for them, by the time they were received;
//! - `aggregates_days` (at least `records_days`): everything else about a report — its
//!   row, daily aggregates by source and by selector, TLS policies and failures —,
//!   detector signals, alerts (by the end of their window) and the envelope hashes
//!   (by the time they were stored).
//!
//! Ages count back from today (UTC), the one place the wall clock decides what a store
//! holds. A report's row lives as long as its aggregates, so a resent report is still
//! recognized while its totals are kept (DESIGN.md invariant 2); one resent after that
//! is stored again and pruned again. Enrichment (`sources`) is kept.
//!
//! SQLite: the deletes run in short transactions (a few hundred reports, or one policy
//! domain of one table, each), so a pruning pass beside `ruaflow run` never holds the
//! writer off for long. ClickHouse: see `clickhouse::retention`.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use rusqlite::{params, Connection};
use serde::Deserialize;

use crate::normalize::DAY;
use crate::store::StoreError;

/// `[retention]`: how many days of data are kept. A missing age keeps that tier forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days of per-record rows kept: DMARC records (by report day), failure reports (by
    /// the day their message arrived) and dead letters (by the time they were received).
    pub records_days: Option<u32>,
    /// Days of reports, daily aggregates, TLS results, detector signals and alerts
    /// kept; at least `records_days`.
    pub aggregates_days: Option<u32>,
}

/// Why a `[retention]` section is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetentionError {
    /// An age of zero would delete today's data.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// Records would outlive the reports they belong to.
    #[error("aggregates_days ({aggregates}) must be at least records_days ({records})")]
    AggregatesShorter {
        /// `aggregates_days`.
        aggregates: u32,
        /// `records_days`.
        records: u32,
    },
}

impl RetentionConfig {
    /// Checks the ages before anything runs.
    pub fn validate(&self) -> Result<(), RetentionError> {
        if self.records_days == Some(0) {
            return Err(RetentionError::Zero("records_days"));
        }
        if self.aggregates_days == Some(0) {
            return Err(RetentionError::Zero("aggregates_days"));
        }
        if let (Some(records), Some(aggregates)) = (self.records_days, self.aggregates_days) {
            if aggregates < records {
                return Err(RetentionError::AggregatesShorter { aggregates, records });
            }
        }
        Ok(())
    }

    /// True when some tier has an age.
    pub fn is_set(&self) -> bool {
        self.records_days.is_some() || self.aggregates_days.is_some()
    }

    /// The first report day each tier keeps at `now` (unix seconds): rows of earlier
    /// days go. `None` = kept forever.
    pub fn cutoffs(&self, now: i64) -> Cutoffs {
        let today = now.div_euclid(DAY) * DAY;
        let keep_from = |days: Option<u32>| days.map(|d| today - (i64::from(d) - 1) * DAY);
        Cutoffs { records: keep_from(self.records_days), aggregates: keep_from(self.aggregates_days) }
    }
}

/// The first day kept per tier (unix seconds of a UTC midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Records of report days before this go.
    pub records: Option<i64>,
    /// Reports, aggregates and the rest of days before this go.
    pub aggregates: Option<i64>,
}

/// What a pruning pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    /// DMARC records.
    pub records: u64,
    /// Reports (DMARC and TLS), with their TLS policies and failures.
    pub reports: u64,
    /// Rows of the daily aggregate tables (by source, by selector).
    pub aggregates: u64,
    /// Detector signal rows.
    pub signals: u64,
    /// Alert notices.
    pub alerts: u64,
    /// Envelope hashes.
    pub envelopes: u64,
    /// Dead letters (with the input bytes kept for them).
    pub dead_letters: u64,
    /// DMARC failure (forensic) reports.
    pub failure_reports: u64,
}

impl Pruned {
    /// True when nothing was deleted.
    pub fn is_empty(&self) -> bool {
        *self == Pruned::default()
    }
}

/// Reports handled per transaction.
const REPORTS_PER_TX: i64 = 500;

/// Deletes what `config` no longer keeps at `now` from the SQLite store on `conn`.
pub fn prune_sqlite(conn: &Connection, config: &RetentionConfig, now: i64) -> Result<Pruned, StoreError> {
    let cut = config.cutoffs(now);
    let mut pruned = Pruned::default();
    // Aggregates first: reports deleted there take their records along, so the records
    // pass then has less to visit.
    if let Some(day) = cut.aggregates {
        for_old_reports(conn, day, |tx, ids| {
            pruned.records += delete_in(tx, "DELETE FROM dmarc_records WHERE report IN", ids)?;
            delete_in(tx, "DELETE FROM tlsrpt_failures WHERE report IN", ids)?;
            delete_in(tx, "DELETE FROM tlsrpt_policies WHERE report IN", ids)?;
            pruned.reports += delete_in(tx, "DELETE FROM reports WHERE id IN", ids)?;
            Ok(())
        })?;
        let domains: Vec<String> = conn
            .prepare("SELECT DISTINCT domain FROM agg_source_day UNION SELECT DISTINCT domain FROM detector_signals")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for domain in &domains {
            // One domain of one table per statement (and so per transaction): each walks
            // the table's primary key from (domain, oldest day).
            for table in ["agg_source_day", "agg_selector_day"] {
                pruned.aggregates += conn.execute(
                    &format!("DELETE FROM {table} WHERE domain = ?1 AND day < ?2"),
                    params![domain, day],
                )? as u64;
            }
            pruned.signals += conn.execute(
                "DELETE FROM detector_signals WHERE domain = ?1 AND day < ?2",
                params![domain, day],
            )? as u64;
        }
        pruned.alerts += conn.execute("DELETE FROM alerts WHERE window_end < ?1", [day])? as u64;
        pruned.envelopes += conn.execute("DELETE FROM envelopes WHERE stored_at < ?1", [day])? as u64;
    }
    if let Some(day) = cut.records {
        for_old_reports(conn, day, |tx, ids| {
            pruned.records += delete_in(tx, "DELETE FROM dmarc_records WHERE report IN", ids)?;
            Ok(())
        })?;
        pruned.failure_reports += conn.execute("DELETE FROM failure_reports WHERE day < ?1", [day])? as u64;
        pruned.dead_letters += conn.execute("DELETE FROM dead_letters WHERE received_at < ?1", [day])? as u64;
        conn.execute("DELETE FROM dead_letter_inputs WHERE received_at < ?1", [day])?;
    }
    Ok(pruned)
}

/// Calls `each` with the ids of reports of days before `day`, a few hundred at a time,
/// each call in a transaction of its own; one pass over `reports` in id order.
fn for_old_reports(
    conn: &Connection,
    day: i64,
    mut each: impl FnMut(&Connection, &[i64]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut after = 0i64;
    loop {
        let tx = conn.unchecked_transaction()?;
        let ids: Vec<i64> = tx
            .prepare_cached("SELECT id FROM reports WHERE id > ?1 AND day < ?2 ORDER BY id LIMIT ?3")?
            .query_map(params![after, day, REPORTS_PER_TX], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let Some(&last) = ids.last() else { return Ok(()) };
        each(&tx, &ids)?;
        tx.commit()?;
        after = last;
    }
}

/// Runs `sql` (ending in `IN`) over a list of ids; returns the rows deleted.
fn delete_in(conn: &Connection, sql: &str, ids: &[i64]) -> Result<u64, StoreError> {
    // The ids are integers from the store itself, so the list is written inline.
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    Ok(conn.execute(&format!("{sql} ({list})"), [])? as u64)
}

/// Opens the store at `db` and prunes it once (`ruaflow prune`).
pub fn prune_file(db: &Path, config: &RetentionConfig, now: i64) -> Result<Pruned, StoreError> {
    let store = crate::sqlite::SqliteStore::open(db)?;
    prune_sqlite(store.conn(), config, now)
}

/// How often the pruner beside a running pipeline deletes what has aged out.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Prunes a store beside a running pipeline: once at start, then every
/// [`PRUNE_INTERVAL`], on a thread with a connection of its own, until
/// [`Pruner::finish`].
pub struct Pruner {
    stop: Sender<()>,
    thread: std::thread::JoinHandle<()>,
    db: PathBuf,
    config: RetentionConfig,
}

impl Pruner {
    /// Starts pruning `db`; `None` when `config` keeps everything.
    pub fn start(db: &Path, config: &RetentionConfig) -> std::io::Result<Option<Self>> {
        if !config.is_set() {
            return Ok(None);
        }
        let (stop, stopped): (Sender<()>, Receiver<()>) = std::sync::mpsc::channel();
        let (path, cfg) = (db.to_path_buf(), *config);
        let thread = std::thread::Builder::new().name("prune".into()).spawn(move || loop {
            pass(&path, &cfg);
            match stopped.recv_timeout(PRUNE_INTERVAL) {
                Err(RecvTimeoutError::Timeout) => continue,
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        })?;
        Ok(Some(Self { stop, thread, db: db.to_path_buf(), config: *config }))
    }

    /// Stops the thread, then prunes once more (what the run just stored may already
    /// be past its age: an old archive).
    pub fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
        pass(&self.db, &self.config);
    }
}

/// One pruning pass; a failure is logged (the next pass retries), never fatal.
fn pass(db: &Path, config: &RetentionConfig) {
    match prune_file(db, config, ruaflow_schema::clock::now()) {
        Ok(pruned) if pruned.is_empty() => tracing::debug!("retention: nothing to prune"),
        Ok(p) => tracing::info!(
            records = p.records,
            reports = p.reports,
            aggregates = p.aggregates,
            signals = p.signals,
            alerts = p.alerts,
            envelopes = p.envelopes,
            dead_letters = p.dead_letters,
            failure_reports = p.failure_reports,
            "retention: old rows deleted"
        ),
        Err(err) => tracing::warn!(error = %err, "retention: pruning failed; retrying at the next pass"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_checked_and_count_whole_days_back_from_today() {
        let ok = RetentionConfig { records_days: Some(30), aggregates_days: Some(400) };
        assert_eq!(ok.validate(), Ok(()));
        assert!(RetentionConfig { records_days: Some(0), ..ok }.validate().is_err());
        assert_eq!(
            RetentionConfig { records_days: Some(90), aggregates_days: Some(30) }.validate(),
            Err(RetentionError::AggregatesShorter { aggregates: 30, records: 90 })
        );
        assert!(!RetentionConfig::default().is_set());
        // At 13:00 on day D, keeping 1 day keeps D; keeping 30 keeps D-29 … D.
        let now = 100 * DAY + 13 * 3600;
        let cut = RetentionConfig { records_days: Some(1), aggregates_days: Some(30) }.cutoffs(now);
        assert_eq!(cut, Cutoffs { records: Some(100 * DAY), aggregates: Some(71 * DAY) });
        assert_eq!(RetentionConfig::default().cutoffs(now), Cutoffs { records: None, aggregates: None });
    }
}
