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

mod alerts;
mod migrate;
mod rows;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clickhouse::{Client, RowOwned, RowWrite};
use sha2::{Digest, Sha256};

use ruaflow_schema::dmarc::{Record, ReportHeader};
use ruaflow_schema::tlsrpt::TlsReport;

pub use self::alerts::copy_alerts;
pub use self::migrate::{migrate, schema_version, ClickHouseUrl, SUPPORTED_VERSION};
use self::rows::*;
use crate::aggregate::Aggregates;
use crate::normalize::{day_of, network_of, verdict};
use crate::store::{Origin, Store, StoreError};

/// Bytes of a dead letter's raw input kept in the `dead_letters` table (the whole input
/// goes to the dead-letter topic).
pub const DEAD_LETTER_RAW_CAP: usize = 1 << 20;

/// The longest pause between two attempts at an insert while ClickHouse is down.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A dead letter handed to the dead-letter queue with the whole raw input.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Provenance of the input.
    pub origin: Origin,
    /// Where inside the input (archive member, MIME part), `""` for the whole.
    pub location: String,
    /// Why it could not be read.
    pub reason: String,
    /// The raw input, whole.
    pub raw: Arc<Vec<u8>>,
}

/// Where dead letters go besides the `dead_letters` table (the Kafka DLQ topic).
pub trait DeadLetterQueue: Send {
    /// Publishes the letters and returns once the queue durably holds all of them.
    fn publish(&mut self, letters: &[DeadLetter]) -> Result<(), String>;
}

/// The rows of the open batch, per table.
#[derive(Default)]
struct Batch {
    envelopes: Vec<EnvelopeRow>,
    reports: Vec<ReportRow>,
    records: Vec<RecordRow>,
    policies: Vec<PolicyRow>,
    failures: Vec<FailureRow>,
    source_days: Vec<SourceDayRow>,
    selector_days: Vec<SelectorDayRow>,
    dead_letters: Vec<DeadLetterRow>,
    dlq: Vec<DeadLetter>,
    /// Report keys written in this batch: the same report twice in one batch is skipped.
    keys: HashSet<[u8; 16]>,
    /// Steps of [`ClickHouseStore::flush`] already done in an earlier attempt.
    done: u16,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.envelopes.is_empty() && self.dead_letters.is_empty() && self.reports.is_empty()
    }

    fn rows(&self) -> usize {
        self.reports.len()
            + self.records.len()
            + self.policies.len()
            + self.failures.len()
            + self.source_days.len()
            + self.selector_days.len()
            + self.dead_letters.len()
            + self.envelopes.len()
    }
}

/// A DMARC report being written.
pub struct OpenDmarc {
    row: ReportRow,
    ordinal: u32,
    part: u32,
    aggregates: Aggregates,
    /// Buffer lengths when the report began, to drop its rows if it is aborted.
    marks: (usize, usize, usize),
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
    client: Client,
    runtime: tokio::runtime::Runtime,
    batch: Batch,
    dlq: Option<Box<dyn DeadLetterQueue>>,
    stop: Arc<AtomicBool>,
    stats: Arc<InsertStats>,
}

impl ClickHouseStore {
    /// Connects and checks that the database was migrated to the version this build
    /// writes (`ruaflow migrate`). `stop`: once set, a failing commit gives up after a
    /// few attempts instead of retrying forever (its data stays unacknowledged).
    pub fn connect(url: &ClickHouseUrl, stop: Arc<AtomicBool>) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::ClickHouse(format!("cannot start the client runtime: {e}")))?;
        let client = url.client();
        let found = runtime.block_on(schema_version(&client))?;
        let supported = i64::from(SUPPORTED_VERSION);
        if found < supported {
            return Err(StoreError::TooOld { found, needed: supported });
        }
        if found > supported {
            return Err(StoreError::TooNew { found, supported });
        }
        Ok(Self { client, runtime, batch: Batch::default(), dlq: None, stop, stats: Arc::default() })
    }

    /// Sends dead letters to `dlq` as well as to the `dead_letters` table.
    pub fn with_dead_letter_queue(mut self, dlq: Box<dyn DeadLetterQueue>) -> Self {
        self.dlq = Some(dlq);
        self
    }

    /// What the store inserted so far.
    pub fn stats(&self) -> Arc<InsertStats> {
        Arc::clone(&self.stats)
    }

    /// Store-wide totals, each stored row counted once (FINAL).
    pub fn totals(&self) -> Result<crate::sqlite::Totals, StoreError> {
        totals(&self.runtime, &self.client)
    }

    /// Inserts the batch, step by step; a step done in an earlier attempt is skipped.
    /// Every insert is idempotent, so a step repeated after an unclear failure is too.
    fn flush(&mut self) -> Result<(), StoreError> {
        let batch = &mut self.batch;
        // Dead letters first go to the queue, whole: an operator replays them from there.
        if batch.done & 1 == 0 {
            if let (Some(dlq), false) = (self.dlq.as_mut(), batch.dlq.is_empty()) {
                dlq.publish(&batch.dlq).map_err(StoreError::DeadLetterQueue)?;
            }
            batch.done |= 1;
        }
        self.runtime.block_on(async {
            if batch.done & (1 << 9) == 0 {
                Self::drop_stored_reports(&self.client, batch).await?;
                batch.done |= 1 << 9;
            }
            Self::insert_tables(&self.client, batch).await
        })
    }

    /// Removes from the batch every report whose identity is already in `reports`, so
    /// the first stored copy of a report wins, as in the SQLite store. A redelivery of
    /// the same bytes would be harmless anyway (same keys); this matters for a report
    /// resent with the same identity but other contents, and spares the inserts.
    async fn drop_stored_reports(client: &Client, batch: &mut Batch) -> Result<(), StoreError> {
        let mut stored = HashSet::new();
        for chunk in batch.reports.chunks(2000) {
            let keys: Vec<String> = chunk
                .iter()
                .map(|r| format!("unhex('{}')", ruaflow_schema::envelope::hex(&r.report_key)))
                .collect();
            let sql = format!("SELECT hex(report_key) FROM reports WHERE report_key IN ({})", keys.join(","));
            let found: Vec<String> = client
                .query(&sql)
                .fetch_all()
                .await
                .map_err(|e| StoreError::ClickHouse(format!("looking up stored reports: {e}")))?;
            for key in found {
                let mut bytes = [0u8; 16];
                for (i, b) in bytes.iter_mut().enumerate() {
                    *b = u8::from_str_radix(key.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0);
                }
                stored.insert(bytes);
            }
        }
        if stored.is_empty() {
            return Ok(());
        }
        tracing::debug!(reports = stored.len(), "reports stored before skipped");
        metrics::counter!("ruaflow_duplicate_reports_total").increment(stored.len() as u64);
        let keep = |key: &[u8; 16]| !stored.contains(key);
        batch.reports.retain(|r| keep(&r.report_key));
        batch.records.retain(|r| keep(&r.report_key));
        batch.source_days.retain(|r| keep(&r.report_key));
        batch.selector_days.retain(|r| keep(&r.report_key));
        batch.policies.retain(|r| keep(&r.report_key));
        batch.failures.retain(|r| keep(&r.report_key));
        Ok(())
    }

    async fn insert_tables(client: &Client, batch: &mut Batch) -> Result<(), StoreError> {
        // Details before the rows that announce them: a `reports` row implies its
        // records and aggregates are in, and an `envelopes` row that the input is done.
        insert(client, "dmarc_records", &batch.records, &mut batch.done, 1 << 1).await?;
        insert(client, "agg_source_day", &batch.source_days, &mut batch.done, 1 << 2).await?;
        insert(client, "agg_selector_day", &batch.selector_days, &mut batch.done, 1 << 3).await?;
        insert(client, "tlsrpt_policies", &batch.policies, &mut batch.done, 1 << 4).await?;
        insert(client, "tlsrpt_failures", &batch.failures, &mut batch.done, 1 << 5).await?;
        insert(client, "dead_letters", &batch.dead_letters, &mut batch.done, 1 << 6).await?;
        insert(client, "reports", &batch.reports, &mut batch.done, 1 << 7).await?;
        insert(client, "envelopes", &batch.envelopes, &mut batch.done, 1 << 8).await?;
        Ok(())
    }

    fn flush_aggregates(&mut self, report: &mut OpenDmarc) {
        let r = &report.row;
        for (ip, c) in &report.aggregates.sources {
            self.batch.source_days.push(SourceDayRow {
                domain: r.domain.clone(),
                day: r.day,
                source_ip: ip.to_string(),
                reporter: r.org_name.clone(),
                network: network_of(*ip),
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
        for ((dkim_domain, selector), c) in &report.aggregates.selectors {
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
        report.aggregates.clear();
        report.part += 1;
    }
}

/// Inserts `rows` into `table` unless `step` is marked done in `done`, then marks it.
async fn insert<T: RowOwned + RowWrite>(
    client: &Client,
    table: &str,
    rows: &[T],
    done: &mut u16,
    step: u16,
) -> Result<(), StoreError> {
    if *done & step != 0 || rows.is_empty() {
        *done |= step;
        return Ok(());
    }
    let failed = |e: clickhouse::error::Error| StoreError::ClickHouse(format!("insert into {table}: {e}"));
    let mut insert = client.insert::<T>(table).await.map_err(failed)?;
    for row in rows {
        insert.write(row).await.map_err(failed)?;
    }
    insert.end().await.map_err(failed)?;
    *done |= step;
    Ok(())
}

fn totals(runtime: &tokio::runtime::Runtime, client: &Client) -> Result<crate::sqlite::Totals, StoreError> {
    let sql = "SELECT
            (SELECT count() FROM reports FINAL WHERE kind = 'dmarc') AS dmarc_reports,
            (SELECT count() FROM reports FINAL WHERE kind = 'tlsrpt') AS tlsrpt_reports,
            (SELECT count() FROM dmarc_records FINAL) AS records,
            (SELECT sum(count) FROM dmarc_records FINAL) AS messages,
            (SELECT sum(messages) FROM agg_source_day FINAL) AS aggregated_messages,
            (SELECT count() FROM dead_letters FINAL) AS dead_letters";
    let row: TotalsRow = runtime
        .block_on(client.query(sql).fetch_one())
        .map_err(|e| StoreError::ClickHouse(format!("totals: {e}")))?;
    Ok(crate::sqlite::Totals {
        dmarc_reports: row.dmarc_reports,
        tlsrpt_reports: row.tlsrpt_reports,
        records: row.records,
        messages: row.messages,
        aggregated_messages: row.aggregated_messages,
        dead_letters: row.dead_letters,
    })
}

/// The report identity as a 16-byte key: kind, reporter, report id, policy domain,
/// begin and end (DESIGN.md "Report identity").
pub fn report_key(kind: &str, org: &str, report_id: &str, domain: &str, begin: i64, end: i64) -> [u8; 16] {
    let mut h = Sha256::new();
    for part in [kind, org, report_id, domain] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.update(begin.to_le_bytes());
    h.update(end.to_le_bytes());
    let digest = h.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// Unix seconds as a `DateTime` value (clamped to its range).
fn datetime(ts: i64) -> u32 {
    ts.clamp(0, i64::from(u32::MAX)) as u32
}

/// The report day (unix seconds of a UTC midnight) as a `Date` value.
fn date(day: i64) -> u16 {
    (day.max(0) / crate::normalize::DAY).min(i64::from(u16::MAX)) as u16
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

    fn commit(&mut self) -> Result<(), StoreError> {
        if self.batch.is_empty() {
            self.batch = Batch::default();
            return Ok(());
        }
        let rows = self.batch.rows();
        let mut backoff = Duration::from_millis(200);
        let mut attempts = 0u32;
        loop {
            let started = Instant::now();
            let result = self.flush();
            match result {
                Ok(()) => {
                    metrics::histogram!("ruaflow_insert_seconds").record(started.elapsed().as_secs_f64());
                    metrics::counter!("ruaflow_rows_inserted_total").increment(rows as u64);
                    self.stats.rows.fetch_add(rows as u64, Ordering::Relaxed);
                    self.stats.batches.fetch_add(1, Ordering::Relaxed);
                    self.stats.failing.store(false, Ordering::Relaxed);
                    self.batch = Batch::default();
                    return Ok(());
                }
                Err(err) => {
                    attempts += 1;
                    metrics::counter!("ruaflow_insert_failures_total").increment(1);
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    self.stats.failing.store(true, Ordering::Relaxed);
                    if self.stop.load(Ordering::Relaxed) && attempts >= 3 {
                        return Err(err);
                    }
                    tracing::warn!(error = %err, attempt = attempts, retry_in_ms = backoff.as_millis() as u64,
                        "insert failed; the batch is held and retried (nothing is acknowledged meanwhile)");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn begin_dmarc(
        &mut self,
        header: &ReportHeader,
        origin: &Origin,
        location: &str,
    ) -> Result<Option<OpenDmarc>, StoreError> {
        let m = &header.metadata;
        let p = &header.policy;
        let key = report_key("dmarc", &m.org_name, &m.report_id, &p.domain, m.begin, m.end);
        if !self.batch.keys.insert(key) {
            return Ok(None);
        }
        let b = &self.batch;
        let marks = (b.records.len(), b.source_days.len(), b.selector_days.len());
        let row = ReportRow {
            report_key: key,
            kind: "dmarc".into(),
            org_name: m.org_name.clone(),
            report_id: m.report_id.clone(),
            domain: p.domain.clone(),
            begin_ts: datetime(m.begin),
            end_ts: datetime(m.end),
            day: date(day_of(m.begin, m.end)),
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
            envelope_sha256: origin.sha256,
            location: location.to_owned(),
            warnings: String::new(),
            stored_at: datetime(crate::sqlite::now()),
        };
        Ok(Some(OpenDmarc { row, ordinal: 0, part: 0, aggregates: Aggregates::default(), marks }))
    }

    fn dmarc_record(&mut self, report: &mut OpenDmarc, record: &Record) -> Result<(), StoreError> {
        let v = verdict(record);
        let r = &report.row;
        self.batch.records.push(RecordRow {
            report_key: r.report_key,
            ordinal: report.ordinal,
            domain: r.domain.clone(),
            day: r.day,
            reporter: r.org_name.clone(),
            source_ip: record.source_ip.to_string(),
            network: network_of(record.source_ip),
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
        if report.aggregates.is_full() {
            self.flush_aggregates(report);
        }
        report.ordinal += 1;
        report.row.record_count += 1;
        report.row.message_count += record.count;
        report.aggregates.add(record, &v);
        Ok(())
    }

    fn finish_dmarc(&mut self, mut report: OpenDmarc, warnings: &[String]) -> Result<(), StoreError> {
        self.flush_aggregates(&mut report);
        if !warnings.is_empty() {
            report.row.warnings = json(&warnings);
        }
        self.batch.reports.push(report.row);
        Ok(())
    }

    fn abort_report(&mut self, report: OpenDmarc) -> Result<(), StoreError> {
        let (records, sources, selectors) = report.marks;
        self.batch.records.truncate(records);
        self.batch.source_days.truncate(sources);
        self.batch.selector_days.truncate(selectors);
        self.batch.keys.remove(&report.row.report_key);
        Ok(())
    }

    fn tlsrpt(&mut self, report: &TlsReport, origin: &Origin, location: &str) -> Result<bool, StoreError> {
        let domain = report.policy_domain().unwrap_or("").to_owned();
        let key = report_key(
            "tlsrpt",
            &report.organization_name,
            &report.report_id,
            &domain,
            report.start,
            report.end,
        );
        if !self.batch.keys.insert(key) {
            return Ok(false);
        }
        let day = date(day_of(report.start, report.end));
        let stored_at = datetime(crate::sqlite::now());
        for (i, p) in report.policies.iter().enumerate() {
            let policy_domain =
                if p.policy_domain.is_empty() { domain.clone() } else { p.policy_domain.clone() };
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
            warnings: String::new(),
            stored_at,
        });
        Ok(true)
    }

    fn dead_letter(
        &mut self,
        origin: &Origin,
        location: &str,
        reason: &str,
        raw: &[u8],
    ) -> Result<(), StoreError> {
        self.batch.dead_letters.push(DeadLetterRow {
            envelope_sha256: origin.sha256,
            location: location.to_owned(),
            source: origin.source.to_owned(),
            origin: origin.origin.clone(),
            reason: reason.to_owned(),
            received_at: datetime(origin.received_at),
            raw_size: raw.len() as u64,
            raw: raw[..raw.len().min(DEAD_LETTER_RAW_CAP)].to_vec(),
            stored_at: datetime(crate::sqlite::now()),
        });
        if self.dlq.is_some() {
            self.batch.dlq.push(DeadLetter {
                origin: origin.clone(),
                location: location.to_owned(),
                reason: reason.to_owned(),
                raw: Arc::new(raw.to_vec()),
            });
        }
        metrics::counter!("ruaflow_dead_letters_total").increment(1);
        Ok(())
    }

    fn envelope_done(&mut self, origin: &Origin) -> Result<(), StoreError> {
        self.batch.envelopes.push(EnvelopeRow {
            sha256: origin.sha256,
            source: origin.source.to_owned(),
            origin: origin.origin.clone(),
            filename: text(origin.filename.as_deref()),
            received_at: datetime(origin.received_at),
            stored_at: datetime(crate::sqlite::now()),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_key_covers_every_part_of_the_identity() {
        let base = report_key("dmarc", "google.com", "1", "example.com", 10, 20);
        assert_eq!(base, report_key("dmarc", "google.com", "1", "example.com", 10, 20));
        let variants = [
            report_key("tlsrpt", "google.com", "1", "example.com", 10, 20),
            report_key("dmarc", "google.co", "1", "example.com", 10, 20),
            report_key("dmarc", "google.com", "2", "example.com", 10, 20),
            report_key("dmarc", "google.com", "1", "example.org", 10, 20),
            report_key("dmarc", "google.com", "1", "example.com", 11, 20),
            report_key("dmarc", "google.com", "1", "example.com", 10, 21),
            // The separator keeps field boundaries: "ab"+"c" differs from "a"+"bc".
            report_key("dmarc", "google.co", "m1", "example.com", 10, 20),
        ];
        for v in variants {
            assert_ne!(v, base);
        }
    }

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
