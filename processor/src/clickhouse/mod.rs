//! The distributed store: ClickHouse over HTTP (RowBinary), the same logical tables as
//! the SQLite store.
//!
//! Input: reports and dead letters from the pipeline's writer. Output: rows in
//! ClickHouse, inserted once per batch, table by table, at [`Store::commit`].
//! Invariants:
//! - nothing is acknowledged before every table's insert of the batch succeeded (the
//!   pipeline's barrier fires acks only after `commit` returns `Ok`);
//! - every row's sorting key derives from the report identity (or the envelope hash) and
//!   the row's position in the report, in ReplacingMergeTree tables: writing a batch
//!   twice — after a crash, a ClickHouse outage, a Kafka redelivery or a rebalance —
//!   changes no total once readers use FINAL (see `schema/sql/clickhouse/0001_init.sql`);
//! - while ClickHouse is unreachable, `commit` retries with backoff and holds the batch:
//!   the writer stops taking work, the workers and the queue fill, and back-pressure
//!   reaches the consumer instead of memory growing.

mod detect;
mod enrich;
mod insert;
mod migrate;
pub mod notices;
pub mod retention;
mod rows;

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use ruaflow_schema::dmarc::{Record, ReportHeader};
use ruaflow_schema::tlsrpt::TlsReport;
use ruaflow_schema::Shutdown;

pub use self::detect::{ClickHouseDetect, Positioned};
pub use self::enrich::SourceEnricher;
use self::insert::Inserter;
pub use self::migrate::{applied_versions, check_schema, migrate, ClickHouseUrl, SUPPORTED_VERSION};
use self::rows::*;
use crate::aggregate::Aggregates;
use crate::barrier::Sealed;
use crate::digest::Digest;
use crate::normalize::Verdict;
use crate::store::{InputTally, Origin, ReportFacts, ReportTotals, Store, StoreError};

/// The longest pause between two attempts at an insert while ClickHouse is down.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// An input that produced dead letters, handed to the dead-letter queue whole, once.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Provenance of the input.
    pub origin: Origin,
    /// Why its parts could not be read (the reasons of its dead letters, summed up).
    pub reason: String,
    /// The raw input, whole.
    pub raw: Arc<Vec<u8>>,
}

/// Where dead letters go besides the `dead_letters` table (the Kafka DLQ topic).
pub trait DeadLetterQueue: Send {
    /// Publishes the letters and returns once the queue durably holds all of them.
    fn publish(&mut self, letters: &[DeadLetter]) -> Result<(), String>;
}

/// Where report digests go once a batch's rows are in (the detector group's topic).
pub trait DigestQueue: Send {
    /// Publishes the digests and returns once the queue durably holds all of them.
    fn publish(&mut self, digests: &[Digest]) -> Result<(), String>;
}

/// The rows of the open batch, per table.
#[derive(Default)]
struct Batch {
    envelopes: Vec<EnvelopeRow>,
    reports: Vec<ReportRow>,
    records: Vec<RecordRow>,
    policies: Vec<PolicyRow>,
    failures: Vec<FailureRow>,
    failure_reports: Vec<FailureReportRow>,
    source_days: Vec<SourceDayRow>,
    selector_days: Vec<SelectorDayRow>,
    dead_letters: Vec<DeadLetterRow>,
    dead_letter_inputs: Vec<DeadLetterInputRow>,
    dlq: Vec<DeadLetter>,
    /// What the detector group learns of each report, published before the `reports` rows.
    digests: Vec<Digest>,
    /// Report keys written in this batch: the same report twice in one batch is skipped.
    keys: HashSet<[u8; 16]>,
    /// Steps of [`ClickHouseStore::flush`] already done in an earlier attempt.
    done: u16,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.envelopes.is_empty()
            && self.dead_letters.is_empty()
            && self.reports.is_empty()
            && self.failure_reports.is_empty()
    }

    fn rows(&self) -> usize {
        self.reports.len()
            + self.records.len()
            + self.policies.len()
            + self.failures.len()
            + self.failure_reports.len()
            + self.source_days.len()
            + self.selector_days.len()
            + self.dead_letters.len()
            + self.dead_letter_inputs.len()
            + self.envelopes.len()
    }
}

/// A DMARC report being written.
pub struct OpenDmarc {
    row: ReportRow,
    ordinal: u32,
    part: u32,
    /// Buffer lengths when the report began, to drop its rows if it is aborted.
    marks: (usize, usize, usize, usize),
}

/// Counters of what the store inserted, for `/metrics` and summaries.
#[derive(Debug, Default)]
pub struct InsertStats {
    /// Rows inserted, over all tables.
    pub rows: std::sync::atomic::AtomicU64,
    /// Batches inserted.
    pub batches: std::sync::atomic::AtomicU64,
    /// Failed insert attempts (each retried).
    pub failures: std::sync::atomic::AtomicU64,
    /// The last insert attempt failed (ClickHouse unreachable or refusing).
    pub failing: AtomicBool,
}

/// The ClickHouse store.
pub struct ClickHouseStore {
    url: ClickHouseUrl,
    batch: Batch,
    /// Until the inserter starts (it takes the queue with it).
    dlq: Option<Box<dyn DeadLetterQueue>>,
    /// Dead letters also go to a queue (kept after the inserter took it).
    dlq_enabled: bool,
    /// Until the inserter starts: where digests go.
    digest_queue: Option<Box<dyn DigestQueue>>,
    /// Digests are collected (a queue is set).
    digests_enabled: bool,
    shutdown: Shutdown,
    runtime: tokio::runtime::Handle,
    stats: Arc<InsertStats>,
    inserter: Option<Inserter>,
}

impl ClickHouseStore {
    /// Connects and checks that the database was migrated to the version this build
    /// writes (`ruaflow migrate`). The client runs on `runtime` (called from threads
    /// outside it). Once `shutdown` triggers, a failing commit gives up after a few
    /// attempts instead of retrying forever (its data stays unacknowledged).
    pub fn connect(
        url: &ClickHouseUrl,
        shutdown: Shutdown,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, StoreError> {
        let client = url.client();
        runtime.block_on(check_schema(&client))?;
        Ok(Self {
            url: url.clone(),
            batch: Batch::default(),
            dlq: None,
            dlq_enabled: false,
            digest_queue: None,
            digests_enabled: false,
            shutdown,
            runtime,
            stats: Arc::default(),
            inserter: None,
        })
    }

    /// Sends dead letters to `dlq` as well as to the `dead_letters` table.
    pub fn with_dead_letter_queue(mut self, dlq: Box<dyn DeadLetterQueue>) -> Self {
        self.dlq = Some(dlq);
        self.dlq_enabled = true;
        self
    }

    /// Publishes a digest of every stored report to `queue` (for the detector group),
    /// after the report's rows and before its `reports` row.
    pub fn with_digest_queue(mut self, queue: Box<dyn DigestQueue>) -> Self {
        self.digest_queue = Some(queue);
        self.digests_enabled = true;
        self
    }

    /// What the store inserted so far.
    pub fn stats(&self) -> Arc<InsertStats> {
        Arc::clone(&self.stats)
    }

    /// The inserter thread, started on first use.
    fn inserter(&mut self) -> &mut Inserter {
        let (url, shutdown, stats, runtime) = (&self.url, &self.shutdown, &self.stats, &self.runtime);
        let (dlq, digests) = (&mut self.dlq, &mut self.digest_queue);
        self.inserter.get_or_insert_with(|| {
            Inserter::start(
                url.client(),
                dlq.take(),
                digests.take(),
                shutdown.clone(),
                Arc::clone(stats),
                runtime.clone(),
            )
        })
    }

    fn write_aggregates(&mut self, report: &mut OpenDmarc, part: &Aggregates) {
        let r = &report.row;
        for (ip, c) in &part.sources {
            self.batch.source_days.push(SourceDayRow {
                domain: r.domain.clone(),
                day: r.day,
                source_ip: ip.to_string(),
                reporter: r.org_name.clone(),
                network: c.network.clone(),
                report_key: r.report_key,
                part: report.part,
                messages: c.messages,
                dmarc_pass: c.dmarc_pass,
                dkim_aligned_pass: c.dkim_aligned_pass,
                spf_aligned_pass: c.spf_aligned_pass,
                dkim_only_pass: c.dkim_only_pass,
                disp_none: c.disp_none,
                disp_quarantine: c.disp_quarantine,
                disp_reject: c.disp_reject,
                stored_at: r.stored_at,
            });
        }
        for ((dkim_domain, selector), c) in &part.selectors {
            self.batch.selector_days.push(SelectorDayRow {
                domain: r.domain.clone(),
                day: r.day,
                dkim_domain: dkim_domain.clone(),
                selector: selector.clone(),
                reporter: r.org_name.clone(),
                report_key: r.report_key,
                part: report.part,
                messages: c.messages,
                dkim_pass: c.dkim_pass,
                dkim_only_pass: c.dkim_only_pass,
                stored_at: r.stored_at,
            });
        }
        if self.digests_enabled {
            let day = i64::from(r.day) * crate::normalize::DAY;
            let digest = Digest::dmarc(&r.domain, day, &r.report_key, report.part, &r.org_name, part);
            self.batch.digests.extend(digest);
        }
        report.part += 1;
    }
}

/// Unix seconds as a `DateTime` value (clamped to its range).
fn datetime(ts: i64) -> u32 {
    ts.clamp(0, i64::from(u32::MAX)) as u32
}

/// The report day (unix seconds of a UTC midnight) as a `Date` value.
fn date(day: i64) -> u16 {
    (day.max(0) / crate::normalize::DAY).min(i64::from(u16::MAX)) as u16
}

/// Inserts `rows` into `table` in one INSERT (nothing when there are none).
async fn insert_rows<T: clickhouse::RowOwned + clickhouse::RowWrite>(
    client: &clickhouse::Client,
    table: &str,
    rows: &[T],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let failed = |e: clickhouse::error::Error| StoreError::ClickHouse(format!("insert into {table}: {e}"));
    let mut insert = client.insert::<T>(table).await.map_err(failed)?;
    for row in rows {
        insert.write(row).await.map_err(failed)?;
    }
    insert.end().await.map_err(failed)
}

fn text(value: Option<&str>) -> String {
    value.unwrap_or_default().to_owned()
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

impl Store for ClickHouseStore {
    type Open = OpenDmarc;

    fn begin(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Hands the batch and its acknowledgements to the inserter thread and returns at
    /// once, unless the inserter is still storing the previous batch (then it waits: at
    /// most one batch is in flight while the next one fills). The inserter releases the
    /// acknowledgements only after every table's insert of the batch succeeded.
    fn commit(&mut self, sealed: Sealed) -> Result<(), StoreError> {
        let batch = std::mem::take(&mut self.batch);
        self.inserter().submit(batch, sealed)
    }

    /// Waits until every batch handed over is stored (or has failed for good).
    fn close(&mut self) -> Result<(), StoreError> {
        match self.inserter.take() {
            Some(inserter) => inserter.close(),
            None => Ok(()),
        }
    }

    fn begin_dmarc(
        &mut self,
        facts: &ReportFacts<'_>,
        header: &ReportHeader,
    ) -> Result<Option<OpenDmarc>, StoreError> {
        let (k, m, p) = (&facts.key, &header.metadata, &header.policy);
        let key = facts.digest;
        if !self.batch.keys.insert(key) {
            return Ok(None);
        }
        let b = &self.batch;
        let marks = (b.records.len(), b.source_days.len(), b.selector_days.len(), b.digests.len());
        let row = ReportRow {
            report_key: key,
            kind: k.kind.as_str().into(),
            org_name: k.reporter.clone(),
            report_id: k.report_id.clone(),
            domain: k.domain.clone(),
            begin_ts: datetime(k.begin),
            end_ts: datetime(k.end),
            day: date(facts.day),
            email: m.email.clone(),
            schema_version: match header.schema {
                ruaflow_schema::dmarc::SchemaVersion::Rfc7489 => "rfc7489",
                ruaflow_schema::dmarc::SchemaVersion::Rfc9990 => "rfc9990",
            }
            .into(),
            policy_p: text(p.p.as_ref().map(|v| v.as_str())),
            policy_sp: text(p.sp.as_ref().map(|v| v.as_str())),
            policy_np: text(p.np.as_ref().map(|v| v.as_str())),
            adkim: text(p.adkim.as_ref().map(|v| v.as_str())),
            aspf: text(p.aspf.as_ref().map(|v| v.as_str())),
            pct: p.pct,
            testing: text(p.testing.as_ref().map(|v| v.as_str())),
            record_count: 0,
            message_count: 0,
            envelope_sha256: facts.origin.sha256,
            location: facts.location.to_owned(),
            warnings: String::new(),
            stored_at: datetime(ruaflow_schema::clock::now()),
        };
        Ok(Some(OpenDmarc { row, ordinal: 0, part: 0, marks }))
    }

    fn dmarc_record(
        &mut self,
        report: &mut OpenDmarc,
        record: &Record,
        v: &Verdict<'_>,
        network: &str,
    ) -> Result<(), StoreError> {
        let r = &report.row;
        self.batch.records.push(RecordRow {
            report_key: r.report_key,
            ordinal: report.ordinal,
            domain: r.domain.clone(),
            day: r.day,
            reporter: r.org_name.clone(),
            source_ip: record.source_ip.to_string(),
            network: network.to_owned(),
            count: record.count,
            disposition: record.disposition.as_str().to_owned(),
            policy_dkim: text(record.dkim.as_ref().map(|r| r.as_str())),
            policy_spf: text(record.spf.as_ref().map(|r| r.as_str())),
            dmarc_pass: u8::from(v.dmarc_pass()),
            dkim_aligned: u8::from(v.dkim_aligned),
            spf_aligned: u8::from(v.spf_aligned),
            header_from: record.header_from.clone(),
            envelope_from: text(record.envelope_from.as_deref()),
            envelope_to: text(record.envelope_to.as_deref()),
            dkim_domain: text(v.dkim.map(|d| d.domain.as_str())),
            dkim_selector: text(v.dkim.and_then(|d| d.selector.as_deref())),
            dkim_result: text(v.dkim.map(|d| d.result.as_str())),
            spf_domain: text(v.spf.map(|s| s.domain.as_str())),
            spf_result: text(v.spf.map(|s| s.result.as_str())),
            reasons: if record.reasons.is_empty() { String::new() } else { json(&record.reasons) },
            dkim_auth: json(&record.dkim_auth),
            spf_auth: json(&record.spf_auth),
            stored_at: r.stored_at,
        });
        report.ordinal += 1;
        Ok(())
    }

    fn dmarc_aggregates(&mut self, report: &mut OpenDmarc, part: &Aggregates) -> Result<(), StoreError> {
        self.write_aggregates(report, part);
        Ok(())
    }

    fn finish_dmarc(
        &mut self,
        mut report: OpenDmarc,
        totals: ReportTotals,
        warnings: &[String],
    ) -> Result<(), StoreError> {
        report.row.record_count = totals.records;
        report.row.message_count = totals.messages;
        if !warnings.is_empty() {
            report.row.warnings = json(&warnings);
        }
        self.batch.reports.push(report.row);
        Ok(())
    }

    fn abort_report(&mut self, report: OpenDmarc) -> Result<(), StoreError> {
        let (records, sources, selectors, digests) = report.marks;
        self.batch.digests.truncate(digests);
        self.batch.records.truncate(records);
        self.batch.source_days.truncate(sources);
        self.batch.selector_days.truncate(selectors);
        self.batch.keys.remove(&report.row.report_key);
        Ok(())
    }

    fn tlsrpt(&mut self, facts: &ReportFacts<'_>, report: &TlsReport) -> Result<bool, StoreError> {
        let (origin, location) = (facts.origin, facts.location);
        let domain = facts.key.domain.clone();
        let key = facts.digest;
        if !self.batch.keys.insert(key) {
            return Ok(false);
        }
        let day = date(facts.day);
        let stored_at = datetime(ruaflow_schema::clock::now());
        let mut digested = HashSet::new();
        for (i, p) in report.policies.iter().enumerate() {
            let policy_domain =
                if p.policy_domain.is_empty() { domain.clone() } else { p.policy_domain.clone() };
            if self.digests_enabled && digested.insert(policy_domain.clone()) {
                let digest = Digest::tls(&policy_domain, facts.day, &key, &report.organization_name);
                self.batch.digests.push(digest);
            }
            self.batch.policies.push(PolicyRow {
                report_key: key,
                ordinal: i as u32,
                day,
                reporter: report.organization_name.clone(),
                policy_type: p.policy_type.as_str().to_owned(),
                policy_domain: policy_domain.clone(),
                mx_host: json(&p.mx_host),
                policy_string: json(&p.policy_string),
                successful_sessions: p.successful_sessions,
                failed_sessions: p.failed_sessions,
                stored_at,
            });
            for (j, f) in p.failure_details.iter().enumerate() {
                self.batch.failures.push(FailureRow {
                    report_key: key,
                    policy_ordinal: i as u32,
                    ordinal: j as u32,
                    day,
                    reporter: report.organization_name.clone(),
                    policy_domain: policy_domain.clone(),
                    result_type: f.result_type.as_str().to_owned(),
                    sending_mta_ip: f.sending_mta_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                    receiving_mx_hostname: text(f.receiving_mx_hostname.as_deref()),
                    receiving_ip: f.receiving_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                    failed_sessions: f.failed_session_count,
                    additional_information: text(f.additional_information.as_deref()),
                    failure_reason_code: text(f.failure_reason_code.as_deref()),
                    stored_at,
                });
            }
        }
        self.batch.reports.push(ReportRow {
            report_key: key,
            kind: "tlsrpt".into(),
            org_name: report.organization_name.clone(),
            report_id: report.report_id.clone(),
            domain,
            begin_ts: datetime(report.start),
            end_ts: datetime(report.end),
            day,
            email: text(report.contact_info.as_deref()),
            schema_version: "rfc8460".into(),
            policy_p: String::new(),
            policy_sp: String::new(),
            policy_np: String::new(),
            adkim: String::new(),
            aspf: String::new(),
            pct: None,
            testing: String::new(),
            record_count: report.policies.len() as u64,
            message_count: report.successful_sessions() + report.failed_sessions(),
            envelope_sha256: origin.sha256,
            location: location.to_owned(),
            warnings: if report.warnings.is_empty() { String::new() } else { json(&report.warnings) },
            stored_at,
        });
        Ok(true)
    }

    fn failure_report(
        &mut self,
        row: &crate::redact::FailureRow,
        origin: &Origin,
        location: &str,
    ) -> Result<bool, StoreError> {
        if !self.batch.keys.insert(row.key) {
            return Ok(false);
        }
        self.batch.failure_reports.push(FailureReportRow {
            report_key: row.key,
            arrival: datetime(row.arrival),
            day: date(row.day),
            reporter: row.reporter.clone(),
            feedback_type: row.feedback_type.clone(),
            domain: row.domain.clone(),
            source_ip: row.source_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            network: row.network.clone(),
            auth_failures: row.auth_failures.clone(),
            delivery_result: text(row.delivery_result.as_deref()),
            dkim_domain: text(row.dkim_domain.as_deref()),
            dkim_selector: text(row.dkim_selector.as_deref()),
            spf_domain: text(row.spf_domain.as_deref()),
            identity_alignment: text(row.identity_alignment.as_deref()),
            mail_from: text(row.mail_from.as_deref()),
            rcpt_to: text(row.rcpt_to.as_deref()),
            authentication_results: text(row.authentication_results.as_deref()),
            header_from: text(row.header_from.as_deref()),
            header_to: text(row.header_to.as_deref()),
            subject: text(row.subject.as_deref()),
            date: row.date.map(datetime),
            message_id: text(row.message_id.as_deref()),
            original_authentication_results: text(row.original_authentication_results.as_deref()),
            body: text(row.body.as_deref()),
            redacted: row.redacted.clone(),
            envelope_sha256: origin.sha256,
            location: location.to_owned(),
            stored_at: datetime(ruaflow_schema::clock::now()),
        });
        Ok(true)
    }

    fn dead_letter(&mut self, origin: &Origin, location: &str, reason: &str) -> Result<(), StoreError> {
        self.batch.dead_letters.push(DeadLetterRow {
            envelope_sha256: origin.sha256,
            location: location.to_owned(),
            source: origin.source.as_str().to_owned(),
            origin: origin.origin.clone(),
            reason: reason.to_owned(),
            received_at: datetime(origin.received_at),
            raw_size: origin.size,
            raw: Vec::new(),
            stored_at: datetime(ruaflow_schema::clock::now()),
        });
        metrics::counter!("ruaflow_dead_letters_total").increment(1);
        Ok(())
    }

    fn dead_letter_input(
        &mut self,
        origin: &Origin,
        raw: &Arc<Vec<u8>>,
        keep: usize,
        reasons: &str,
    ) -> Result<(), StoreError> {
        self.batch.dead_letter_inputs.push(DeadLetterInputRow {
            envelope_sha256: origin.sha256,
            source: origin.source.as_str().to_owned(),
            origin: origin.origin.clone(),
            filename: text(origin.filename.as_deref()),
            received_at: datetime(origin.received_at),
            raw_size: origin.size,
            raw: raw[..raw.len().min(keep)].to_vec(),
            stored_at: datetime(ruaflow_schema::clock::now()),
        });
        if self.dlq_enabled {
            self.batch.dlq.push(DeadLetter {
                origin: origin.clone(),
                reason: reasons.to_owned(),
                raw: Arc::clone(raw),
            });
        }
        Ok(())
    }

    fn envelope_done(&mut self, origin: &Origin, _tally: &InputTally) -> Result<(), StoreError> {
        self.batch.envelopes.push(EnvelopeRow {
            sha256: origin.sha256,
            source: origin.source.as_str().to_owned(),
            origin: origin.origin.clone(),
            filename: text(origin.filename.as_deref()),
            received_at: datetime(origin.received_at),
            stored_at: datetime(ruaflow_schema::clock::now()),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_fit_their_columns() {
        assert_eq!(date(0), 0);
        assert_eq!(date(86_400 * 20_000), 20_000);
        assert_eq!(date(-5), 0);
        assert_eq!(datetime(-1), 0);
        assert_eq!(datetime(1_700_000_000), 1_700_000_000);
        assert_eq!(datetime(i64::MAX), u32::MAX);
    }
}
