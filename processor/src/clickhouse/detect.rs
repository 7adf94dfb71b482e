//! The detectors' state in ClickHouse, for the detector group (`ruaflow detect`).
//!
//! Input: report digests (the sender model's changes) and the detectors' questions about
//! one (domain, day). Output: the sender model (`senders`, `sender_networks`), signals
//! (`detector_signals`), notices (`notices`, and `alerts` for the dashboards).
//! Invariants:
//! - one writer per domain: the member of the group that owns the domain's partition of
//!   the digest topic reads a row, folds, and writes the next version;
//! - folding is idempotent: each row remembers the position of the last digest folded
//!   into it, so a digest read again after a crash or a rebalance (at or before that
//!   position) changes nothing, and the latest report parts folded in ([`APPLIED_KEPT`]),
//!   so a digest published again by a processor that restarted does not either;
//! - a notice's row id is derived from its identity, so raising it again finds it; it is
//!   stored before the sinks see it and marked `notified` after they took it, and the
//!   next owner of the domain hands over what a dead one stored but did not hand over.

use std::collections::{BTreeMap, HashMap, HashSet};

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use ruaflow_schema::alert::{Alert, AlertKind, AlertSource, AlertState};

use super::{date, datetime, ClickHouseUrl};
use crate::detect::store::{
    DayCounts, DaySource, ReporterActivity, Signal, StoredNotice, StoredSignal, TlsDay, TlsFailure,
};
use crate::detect::{DetectConfig, DetectStore};
use crate::digest::{Digest, DigestCounts, DigestKind};
use crate::normalize::DAY;
use crate::sender::{Change, Context, Sender, Status, TRUSTED_SERVICE};
use crate::store::StoreError;

/// Report parts remembered per sender row against double folding.
const APPLIED_KEPT: usize = 64;
/// Values per `IN (…)` list.
const IN_CHUNK: usize = 1000;

/// A row of `senders` / `sender_networks`.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct SenderRow {
    domain: String,
    source: String,
    network: String,
    first_day: u16,
    last_day: u16,
    days: Vec<u16>,
    days_seen: u32,
    messages: u64,
    dmarc_pass: u64,
    dkim_aligned_pass: u64,
    spf_aligned_pass: u64,
    dkim_only_pass: u64,
    first_spf_day: Option<u16>,
    first_dkim_day: Option<u16>,
    dkim_keys: Vec<String>,
    status: String,
    reason: String,
    status_since: u16,
    applied: Vec<String>,
    digest_partition: i32,
    digest_offset: i64,
    version: u64,
    updated_at: u32,
}

const SENDER_FIELDS: &str = "domain, source, network, first_day, last_day, days, days_seen, messages, dmarc_pass, \
     dkim_aligned_pass, spf_aligned_pass, dkim_only_pass, first_spf_day, first_dkim_day, dkim_keys, status, reason, \
     status_since, applied, digest_partition, digest_offset, version, updated_at";

fn secs(days: u16) -> i64 {
    i64::from(days) * DAY
}

impl SenderRow {
    fn sender(&self) -> Sender {
        Sender {
            domain: self.domain.clone(),
            source: self.source.clone(),
            network: self.network.clone(),
            first_day: secs(self.first_day),
            last_day: secs(self.last_day),
            days: self.days.iter().map(|&d| secs(d)).collect(),
            days_seen: self.days_seen,
            messages: self.messages,
            dmarc_pass: self.dmarc_pass,
            dkim_aligned_pass: self.dkim_aligned_pass,
            spf_aligned_pass: self.spf_aligned_pass,
            dkim_only_pass: self.dkim_only_pass,
            first_spf_day: self.first_spf_day.map(secs),
            first_dkim_day: self.first_dkim_day.map(secs),
            dkim_keys: self.dkim_keys.clone(),
        }
    }

    fn set(&mut self, s: &Sender) {
        self.first_day = date(s.first_day);
        self.last_day = date(s.last_day);
        self.days = s.days.iter().map(|&d| date(d)).collect();
        self.days_seen = s.days_seen;
        self.messages = s.messages;
        self.dmarc_pass = s.dmarc_pass;
        self.dkim_aligned_pass = s.dkim_aligned_pass;
        self.spf_aligned_pass = s.spf_aligned_pass;
        self.dkim_only_pass = s.dkim_only_pass;
        self.first_spf_day = s.first_spf_day.map(date);
        self.first_dkim_day = s.first_dkim_day.map(date);
        self.dkim_keys.clone_from(&s.dkim_keys);
    }

    /// A new version of the row with `status` and its reason; `status_since` moves to
    /// the row's last day when the status changed.
    fn restatus(&mut self, status: Status, reason: String, now: u32) {
        if self.status != status.as_str() {
            self.status_since = self.last_day;
            self.status = status.as_str().to_owned();
        }
        self.reason = reason;
        self.version += 1;
        self.updated_at = now;
    }

    fn new(domain: &str, c: &DigestCounts) -> Self {
        SenderRow {
            domain: domain.to_owned(),
            source: c.source.clone(),
            network: c.network.clone(),
            first_day: u16::MAX,
            last_day: 0,
            days: Vec::new(),
            days_seen: 0,
            messages: 0,
            dmarc_pass: 0,
            dkim_aligned_pass: 0,
            spf_aligned_pass: 0,
            dkim_only_pass: 0,
            first_spf_day: None,
            first_dkim_day: None,
            dkim_keys: Vec::new(),
            status: String::new(),
            reason: String::new(),
            status_since: 0,
            applied: Vec::new(),
            digest_partition: -1,
            digest_offset: -1,
            version: 0,
            updated_at: 0,
        }
    }
}

/// A digest and where it was read: its partition and offset in the digest topic.
#[derive(Debug, Clone)]
pub struct Positioned {
    /// The digest.
    pub digest: Digest,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

/// A row of `notices`.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub(super) struct NoticeRow {
    pub(super) id: i64,
    pub(super) kind: String,
    pub(super) domain: String,
    pub(super) subject: String,
    pub(super) window_start: u32,
    pub(super) state: String,
    pub(super) body: String,
    pub(super) historical: u8,
    pub(super) notified: u8,
    pub(super) acknowledged_at: u32,
    pub(super) ack_note: String,
    pub(super) version: u64,
}

pub(super) const NOTICE_FIELDS: &str =
    "id, kind, domain, subject, window_start, state, body, historical, notified, \
     acknowledged_at, ack_note, version";

/// A row of `alerts` (what the dashboards show).
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

/// A row of `detector_signals`.
#[derive(Debug, Row, Serialize)]
struct SignalRow {
    domain: String,
    signal: String,
    subject: String,
    day: u16,
    value: f64,
    updated_at: u32,
}

/// One (source, reporter) of a day, as `agg_source_day` sums it.
#[derive(Debug, Row, Deserialize)]
struct DayRow {
    source_ip: String,
    network: String,
    reporter: String,
    messages: u64,
    dmarc_pass: u64,
    dkim_aligned_pass: u64,
    spf_aligned_pass: u64,
    dkim_only_pass: u64,
    blocked: u64,
}

/// The days one reporter covered for one domain.
#[derive(Debug, Row, Deserialize)]
struct ActivityRow {
    domain: String,
    org_name: String,
    days: Vec<u16>,
}

/// The id of a notice: derived from its identity, the same in every process.
fn notice_id(kind: &str, domain: &str, subject: &str, window_start: i64, state: &str) -> i64 {
    let mut hash = Sha256::new();
    for part in [kind, domain, subject, &window_start.to_string(), state] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let bytes = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    i64::from_be_bytes(first) & i64::MAX
}

fn state_word(state: AlertState) -> &'static str {
    match state {
        AlertState::Firing => "firing",
        AlertState::Resolved => "resolved",
    }
}

/// A string literal for SQL (values that are not bound: `IN` lists).
fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `values` as the contents of `IN (…)` lists, [`IN_CHUNK`] values each.
fn in_lists<'a>(values: &'a [&str]) -> impl Iterator<Item = String> + 'a {
    values.chunks(IN_CHUNK).map(|chunk| chunk.iter().map(|v| quoted(v)).collect::<Vec<_>>().join(","))
}

fn failed(what: &'static str) -> impl Fn(clickhouse::error::Error) -> StoreError {
    move |e| StoreError::ClickHouse(format!("{what}: {e}"))
}

/// The mail service enrichment named for an address (`source_services`).
#[derive(Debug, Clone)]
struct NamedService {
    name: String,
    /// The status rule trusts it ([`TRUSTED_SERVICE`]).
    trusted: bool,
}

impl NamedService {
    fn trusted(&self) -> Option<&str> {
        self.trusted.then_some(self.name.as_str())
    }
}

/// The detection state of the distributed deployment.
pub struct ClickHouseDetect {
    client: Client,
    runtime: tokio::runtime::Handle,
    rules: DetectConfig,
    /// Notices read by [`DetectStore::notices`] or written since the last
    /// [`ClickHouseDetect::mark_notified`], by id (an update follows a read).
    read: HashMap<i64, NoticeRow>,
    /// Notices stored (or handed over) since the last [`ClickHouseDetect::mark_notified`],
    /// by id; their newest version is in `read`.
    fresh: Vec<i64>,
    /// Only these domains' reporters are judged by the silence sweep (the domains this
    /// member owns); all when `None`.
    owned: Option<HashSet<String>>,
}

impl ClickHouseDetect {
    /// Connects and checks that the database was migrated to this build's version.
    pub fn connect(
        url: &ClickHouseUrl,
        runtime: tokio::runtime::Handle,
        rules: DetectConfig,
    ) -> Result<Self, StoreError> {
        let client = url.client();
        runtime.block_on(super::check_schema(&client))?;
        Ok(Self { client, runtime, rules, read: HashMap::new(), fresh: Vec::new(), owned: None })
    }

    /// Restricts the silence sweep (and the re-evaluation of named services) to these
    /// domains.
    pub fn own(&mut self, domains: HashSet<String>) {
        self.owned = Some(domains);
    }

    /// Adds a domain this member has read a digest of to those it owns.
    pub fn own_domain(&mut self, domain: &str) {
        let owned = self.owned.get_or_insert_with(HashSet::new);
        if !owned.contains(domain) {
            owned.insert(domain.to_owned());
        }
    }

    /// Whether this member owns a domain yet.
    pub fn owns_any(&self) -> bool {
        self.owned.as_ref().is_some_and(|owned| !owned.is_empty())
    }

    /// Folds digests into the sender model, in order, each with its position in the
    /// digest topic (partition, offset); a TLS digest changes nothing there. One read and
    /// one write per table and domain, whatever the batch holds.
    pub fn learn(&mut self, digests: &[Positioned]) -> Result<(), StoreError> {
        let mut domains: BTreeMap<&str, Vec<&Positioned>> = BTreeMap::new();
        for digest in digests.iter().filter(|d| d.digest.kind == DigestKind::Dmarc) {
            domains.entry(digest.digest.domain.as_str()).or_default().push(digest);
        }
        for (domain, digests) in domains {
            self.fold("senders", domain, &digests, |d| &d.sources)?;
            self.fold("sender_networks", domain, &digests, |d| &d.networks)?;
        }
        Ok(())
    }

    fn fold(
        &mut self,
        table: &'static str,
        domain: &str,
        digests: &[&Positioned],
        counts_of: impl Fn(&Digest) -> &[DigestCounts],
    ) -> Result<(), StoreError> {
        let mut sources: Vec<&str> =
            digests.iter().flat_map(|d| counts_of(&d.digest).iter().map(|c| c.source.as_str())).collect();
        sources.sort_unstable();
        sources.dedup();
        if sources.is_empty() {
            return Ok(());
        }
        let mut rows: HashMap<String, SenderRow> =
            self.sender_rows(table, domain, &sources)?.into_iter().map(|r| (r.source.clone(), r)).collect();
        // A service names an address, never a network.
        let services = if table == "senders" { self.services(&sources)? } else { HashMap::new() };
        let now = datetime(ruaflow_schema::clock::now());
        let mut changed: HashSet<String> = HashSet::new();
        for positioned in digests {
            let Positioned { digest, partition, offset } = positioned;
            let identity = digest.identity();
            for c in counts_of(digest) {
                let row = rows.entry(c.source.clone()).or_insert_with(|| SenderRow::new(domain, c));
                let read_again = row.digest_partition == *partition && *offset <= row.digest_offset;
                if read_again || row.applied.contains(&identity) {
                    continue;
                }
                let mut sender =
                    if row.version == 0 { Sender::new(domain, &c.source, &c.network) } else { row.sender() };
                sender.apply(Change { day: digest.day, counts: &c.counts() });
                let (status, reason) = self.status_of(&sender, &services);
                row.set(&sender);
                row.restatus(status, reason, now);
                row.applied.push(identity.clone());
                if row.applied.len() > APPLIED_KEPT {
                    row.applied.remove(0);
                }
                (row.digest_partition, row.digest_offset) = (*partition, *offset);
                changed.insert(c.source.clone());
            }
        }
        let changed: Vec<SenderRow> = rows.into_values().filter(|r| changed.contains(&r.source)).collect();
        self.insert(table, &changed)
    }

    /// Evaluates again the stored status of the address rows, of the domains this member
    /// owns, whose source enrichment has since named a trusted mail service while their
    /// status ranks below `service` (they were folded before the name was known); writes
    /// those that changed and returns how many. The embedded store does the same after
    /// its enrichment.
    pub fn refresh_named_services(&mut self) -> Result<usize, StoreError> {
        let mut rows: Vec<SenderRow> = Vec::new();
        for filter in self.owned_filters().into_iter().filter(|f| !f.is_empty()) {
            let sql = format!(
                "SELECT {SENDER_FIELDS} FROM senders FINAL
                 WHERE status IN ('familiar', 'unknown') AND isNotNull(first_dkim_day)
                   AND source IN (SELECT ip FROM source_services FINAL WHERE isNotNull({TRUSTED_SERVICE})) {filter}"
            );
            rows.extend(self.fetch::<SenderRow>(&sql, &[], "reading the sender model")?);
        }
        let sources: Vec<&str> = rows.iter().map(|r| r.source.as_str()).collect();
        let services = self.services(&sources)?;
        let now = datetime(ruaflow_schema::clock::now());
        let mut changed = Vec::new();
        for mut row in rows {
            let (status, reason) = self.status_of(&row.sender(), &services);
            if row.status != status.as_str() || row.reason != reason {
                row.restatus(status, reason, now);
                changed.push(row);
            }
        }
        self.insert("senders", &changed)?;
        Ok(changed.len())
    }

    /// The status of `sender` as of its last day, with the service enrichment named for
    /// its address and the declared senders.
    fn status_of(&self, sender: &Sender, services: &HashMap<String, NamedService>) -> (Status, String) {
        let service = services.get(&sender.source).and_then(NamedService::trusted);
        let declared = self.rules.declared(&sender.domain, sender.source.parse().ok(), service);
        let context = Context { declared: declared.as_deref(), service };
        sender.status_as_of(&self.rules, context, sender.last_day)
    }

    /// `AND domain IN (…)` filters covering the domains this member owns, one per
    /// [`IN_CHUNK`] domains (none when it owns none); one empty filter when it judges
    /// every domain.
    fn owned_filters(&self) -> Vec<String> {
        match &self.owned {
            None => vec![String::new()],
            Some(owned) => {
                let mut domains: Vec<&str> = owned.iter().map(String::as_str).collect();
                domains.sort_unstable();
                in_lists(&domains).map(|list| format!("AND domain IN ({list})")).collect()
            }
        }
    }

    fn sender_rows(&self, table: &str, domain: &str, sources: &[&str]) -> Result<Vec<SenderRow>, StoreError> {
        let mut out = Vec::new();
        for list in in_lists(sources) {
            let sql =
                format!("SELECT {SENDER_FIELDS} FROM {table} FINAL WHERE domain = ? AND source IN ({list})");
            let rows: Vec<SenderRow> = self
                .runtime
                .block_on(self.client.query(&sql).bind(domain).fetch_all())
                .map_err(failed("reading the sender model"))?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// The mail service enrichment named for each of `ips` that has one.
    fn services(&self, ips: &[&str]) -> Result<HashMap<String, NamedService>, StoreError> {
        let mut out = HashMap::new();
        for list in in_lists(ips) {
            let sql = format!(
                "SELECT ip, service, toUInt8(isNotNull({TRUSTED_SERVICE})) FROM source_services FINAL WHERE ip IN ({list})"
            );
            let rows: Vec<(String, String, u8)> = self.fetch(&sql, &[], "reading source services")?;
            out.extend(
                rows.into_iter()
                    .map(|(ip, name, trusted)| (ip, NamedService { name, trusted: trusted == 1 })),
            );
        }
        Ok(out)
    }

    fn insert<T: clickhouse::RowOwned + clickhouse::RowWrite>(
        &self,
        table: &'static str,
        rows: &[T],
    ) -> Result<(), StoreError> {
        self.runtime.block_on(super::insert_rows(&self.client, table, rows))
    }

    /// Notices of `domain` stored but not handed to the sinks (their owner died in
    /// between), to hand over now; they count as notified once
    /// [`ClickHouseDetect::mark_notified`] runs.
    pub fn unnotified(&mut self, domain: &str) -> Result<Vec<Alert>, StoreError> {
        let sql = format!(
            "SELECT {NOTICE_FIELDS} FROM notices FINAL WHERE domain = ? AND notified = 0 AND historical = 0"
        );
        let rows: Vec<NoticeRow> = self
            .runtime
            .block_on(self.client.query(&sql).bind(domain).fetch_all())
            .map_err(failed("reading notices"))?;
        let mut alerts = Vec::new();
        for row in rows {
            if let Ok(alert) = serde_json::from_str::<Alert>(&row.body) {
                if row.acknowledged_at == 0 {
                    alerts.push(alert);
                }
                self.fresh.push(row.id);
                self.read.insert(row.id, row);
            }
        }
        Ok(alerts)
    }

    /// Forgets what the last evaluation read and stored, after it failed part-way: its
    /// notices were not handed to the sinks, so none is marked notified.
    pub fn forget(&mut self) {
        self.read.clear();
        self.fresh.clear();
    }

    /// Records that the sinks took every notice stored (or handed over) since the last
    /// call.
    pub fn mark_notified(&mut self) -> Result<(), StoreError> {
        let mut ids = std::mem::take(&mut self.fresh);
        ids.sort_unstable();
        ids.dedup();
        let mut rows = Vec::new();
        for id in ids {
            if let Some(row) = self.read.get_mut(&id) {
                row.notified = 1;
                row.version += 1;
                rows.push(row.clone());
            }
        }
        self.insert("notices", &rows)?;
        // What was read is read again next time (the cache only bridges one evaluation).
        self.read.clear();
        Ok(())
    }

    fn alert_row(alert: &Alert, subject: &str, body: &str) -> AlertRow {
        AlertRow {
            kind: alert.kind.as_str().to_owned(),
            domain: alert.domain.clone(),
            subject: subject.to_owned(),
            severity: alert.severity.as_str().to_owned(),
            window_start: datetime(alert.window_start),
            window_end: datetime(alert.window_end),
            observed: alert.observed,
            baseline: alert.baseline,
            first_seen: datetime(alert.first_seen),
            raised_at: datetime(ruaflow_schema::clock::now()),
            state: state_word(alert.state).to_owned(),
            summary: alert.summary.clone(),
            body: body.to_owned(),
        }
    }

    fn fetch<T: clickhouse::RowOwned + for<'b> clickhouse::RowRead>(
        &self,
        sql: &str,
        binds: &[&str],
        what: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        let mut query = self.client.query(sql);
        for b in binds {
            query = query.bind(*b);
        }
        self.runtime.block_on(query.fetch_all::<T>()).map_err(failed(what))
    }
}

impl DetectStore for ClickHouseDetect {
    type Error = StoreError;

    fn day_sources(
        &mut self,
        domain: &str,
        day: i64,
        visit: &mut dyn FnMut(DaySource),
    ) -> Result<(), Self::Error> {
        let date_text = ruaflow_schema::time::format_date(day);
        let rows: Vec<DayRow> = self.fetch(
            "SELECT source_ip, any(network), reporter, toUInt64(sum(messages)), toUInt64(sum(dmarc_pass)),
                    toUInt64(sum(dkim_aligned_pass)), toUInt64(sum(spf_aligned_pass)), toUInt64(sum(dkim_only_pass)),
                    toUInt64(sum(disp_quarantine + disp_reject))
             FROM agg_source_day FINAL WHERE domain = ? AND day = toDate(?)
             GROUP BY source_ip, reporter",
            &[domain, &date_text],
            "reading the day's sources",
        )?;
        // Grouped by network, then address, as the detectors expect.
        let mut sources: BTreeMap<(String, String), DaySource> = BTreeMap::new();
        for r in rows {
            let counts = DayCounts {
                messages: r.messages,
                dmarc_pass: r.dmarc_pass,
                dkim_aligned_pass: r.dkim_aligned_pass,
                spf_aligned_pass: r.spf_aligned_pass,
                dkim_only_pass: r.dkim_only_pass,
                blocked: r.blocked,
            };
            let entry = sources.entry((r.network.clone(), r.source_ip.clone())).or_insert_with(|| {
                DaySource { ip: r.source_ip.clone(), network: r.network.clone(), ..DaySource::default() }
            });
            entry.reporters.push((r.reporter, counts));
        }
        let ips: Vec<&str> = sources.keys().map(|(_, ip)| ip.as_str()).collect();
        let senders: HashMap<String, Sender> = self
            .sender_rows("senders", domain, &ips)?
            .into_iter()
            .map(|r| (r.source.clone(), r.sender()))
            .collect();
        let networks: Vec<&str> = {
            let mut n: Vec<&str> = sources.keys().map(|(net, _)| net.as_str()).collect();
            n.dedup();
            n
        };
        let first_days: HashMap<String, i64> = self
            .sender_rows("sender_networks", domain, &networks)?
            .into_iter()
            .map(|r| (r.source.clone(), secs(r.first_day)))
            .collect();
        let services = self.services(&ips)?;
        for ((network, ip), mut source) in sources {
            source.sender = senders.get(&ip).cloned();
            if let Some(service) = services.get(&ip) {
                source.service = Some(service.name.clone());
                source.service_trusted = service.trusted;
            }
            source.network_first_day = first_days.get(&network).copied();
            visit(source);
        }
        Ok(())
    }

    fn first_report(&mut self, domain: &str, day: i64) -> Result<Option<i64>, Self::Error> {
        let date_text = ruaflow_schema::time::format_date(day);
        let found: Vec<(u32, u64)> = self.fetch(
            "SELECT toUInt32(min(begin_ts)), count() FROM reports FINAL
             WHERE domain = ? AND day = toDate(?) AND kind = 'dmarc'",
            &[domain, &date_text],
            "reading the day's reports",
        )?;
        Ok(found.first().filter(|(_, n)| *n > 0).map(|(t, _)| i64::from(*t)))
    }

    fn tls_day(&mut self, domain: &str, day: i64) -> Result<TlsDay, Self::Error> {
        let date_text = ruaflow_schema::time::format_date(day);
        let sessions: Vec<u64> = self.fetch(
            "SELECT toUInt64(sum(successful_sessions + failed_sessions)) FROM tlsrpt_policies FINAL
             WHERE policy_domain = ? AND day = toDate(?)",
            &[domain, &date_text],
            "reading the day's TLS sessions",
        )?;
        let sessions = sessions.first().copied().unwrap_or(0);
        if sessions == 0 {
            return Ok(TlsDay::default());
        }
        let failures: Vec<(String, String, String, u64)> = self.fetch(
            "SELECT result_type, receiving_mx_hostname, reporter, toUInt64(sum(failed_sessions))
             FROM tlsrpt_failures FINAL WHERE policy_domain = ? AND day = toDate(?)
             GROUP BY result_type, receiving_mx_hostname, reporter",
            &[domain, &date_text],
            "reading the day's TLS failures",
        )?;
        let first: Vec<(u32, u64)> = self.fetch(
            "SELECT toUInt32(min(begin_ts)), count() FROM reports FINAL WHERE kind = 'tlsrpt' AND day = toDate(?)
             AND report_key IN (SELECT report_key FROM tlsrpt_policies WHERE policy_domain = ? AND day = toDate(?))",
            &[&date_text, domain, &date_text],
            "reading the day's TLS reports",
        )?;
        Ok(TlsDay {
            sessions,
            failures: failures
                .into_iter()
                .map(|(result_type, mx, reporter, sessions)| TlsFailure {
                    result_type,
                    mx,
                    reporter,
                    sessions,
                })
                .collect(),
            first_seen: first.first().filter(|(_, n)| *n > 0).map(|(t, _)| i64::from(*t)),
        })
    }

    fn signals(&mut self, domain: &str, from: i64, to: i64) -> Result<Vec<StoredSignal>, Self::Error> {
        let (from, to) = (ruaflow_schema::time::format_date(from), ruaflow_schema::time::format_date(to));
        let rows: Vec<(String, String, u16, f64)> = self.fetch(
            "SELECT signal, subject, toUInt16(day), value FROM detector_signals FINAL
             WHERE domain = ? AND day >= toDate(?) AND day < toDate(?)",
            &[domain, &from, &to],
            "reading signals",
        )?;
        Ok(rows
            .into_iter()
            .map(|(signal, subject, day, value)| StoredSignal { signal, subject, day: secs(day), value })
            .collect())
    }

    fn record_signals(&mut self, domain: &str, signals: &[Signal]) -> Result<(), Self::Error> {
        let now = datetime(ruaflow_schema::clock::now());
        let rows: Vec<SignalRow> = signals
            .iter()
            .map(|s| SignalRow {
                domain: domain.to_owned(),
                signal: s.signal.to_owned(),
                subject: s.subject.clone(),
                day: date(s.day),
                value: s.value,
                updated_at: now,
            })
            .collect();
        self.insert("detector_signals", &rows)
    }

    fn enrich_sources(&mut self, sources: &mut [AlertSource]) -> Result<(), Self::Error> {
        if sources.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = sources.iter().map(|s| quoted(&s.ip)).collect();
        let sql = format!(
            "SELECT ip, ptr, toUInt32(asn), as_org, country FROM sources FINAL WHERE ip IN ({})",
            list.join(",")
        );
        let known: Vec<(String, String, u32, String, String)> = self.fetch(&sql, &[], "reading sources")?;
        let known: HashMap<String, (String, u32, String, String)> =
            known.into_iter().map(|(ip, p, a, o, c)| (ip, (p, a, o, c))).collect();
        let ips: Vec<&str> = sources.iter().map(|s| s.ip.as_str()).collect();
        let services = self.services(&ips)?;
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        for source in sources.iter_mut() {
            if let Some(service) = services.get(&source.ip) {
                source.service = Some(service.name.clone());
            }
            if let Some((ptr, asn, as_org, country)) = known.get(&source.ip) {
                source.ptr = some(ptr);
                source.asn = (*asn > 0).then_some(*asn);
                source.as_org = some(as_org);
                source.country = some(country);
            }
        }
        Ok(())
    }

    fn reporter_activity(&mut self, regular_window: i64) -> Result<Vec<ReporterActivity>, Self::Error> {
        // Only the owned domains are read: every member sweeps once a minute, and the
        // reports of 120 days of every domain are not each member's business.
        let mut rows: Vec<ActivityRow> = Vec::new();
        for filter in self.owned_filters() {
            let sql = format!(
                "SELECT domain, org_name, groupUniqArray(toUInt16(day)) FROM reports FINAL
                 WHERE kind = 'dmarc' AND day > today() - 120 {filter}
                 GROUP BY domain, org_name"
            );
            rows.extend(self.fetch::<ActivityRow>(&sql, &[], "reading reporter activity")?);
        }
        let mut latest: HashMap<String, i64> = HashMap::new();
        let rows: Vec<(String, String, Vec<i64>)> = rows
            .into_iter()
            .map(|ActivityRow { domain, org_name: org, days }| {
                let days: Vec<i64> = days.into_iter().map(secs).collect();
                let last = days.iter().copied().max().unwrap_or(0);
                let entry = latest.entry(domain.clone()).or_insert(last);
                *entry = (*entry).max(last);
                (domain, org, days)
            })
            .collect();
        Ok(rows
            .into_iter()
            .map(|(domain, reporter, days)| {
                let last_day = days.iter().copied().max().unwrap_or(0);
                let recent_days =
                    days.iter().filter(|&&d| d > last_day - regular_window && d <= last_day).count() as i64;
                ReporterActivity { latest_day: latest[&domain], domain, reporter, last_day, recent_days }
            })
            .collect())
    }

    fn notices(
        &mut self,
        kind: AlertKind,
        domain: &str,
        subject: &str,
    ) -> Result<Vec<StoredNotice>, Self::Error> {
        let sql = format!(
            "SELECT {NOTICE_FIELDS} FROM notices FINAL WHERE domain = ? AND kind = ? AND subject = ?"
        );
        let rows: Vec<NoticeRow> = self.fetch(&sql, &[domain, kind.as_str(), subject], "reading notices")?;
        let mut out = Vec::new();
        for row in rows {
            // A body this version cannot read (written by a newer one) is skipped, not fatal.
            let Ok(alert) = serde_json::from_str::<Alert>(&row.body) else { continue };
            out.push(StoredNotice {
                id: row.id,
                day: i64::from(row.window_start),
                firing: row.state == "firing",
                alert,
                acknowledged: row.acknowledged_at > 0,
            });
            self.read.insert(row.id, row);
        }
        Ok(out)
    }

    fn insert_notice(&mut self, alert: &Alert, subject: &str) -> Result<bool, Self::Error> {
        let state = state_word(alert.state);
        let kind = alert.kind.as_str();
        let id = notice_id(kind, &alert.domain, subject, alert.window_start, state);
        let found: Vec<u64> = self.fetch(
            &format!("SELECT count() FROM notices WHERE domain = ? AND id = {id}"),
            &[&alert.domain],
            "reading notices",
        )?;
        if found.first().is_some_and(|&n| n > 0) {
            return Ok(false);
        }
        let body = serde_json::to_string(alert).unwrap_or_default();
        let row = NoticeRow {
            id,
            kind: kind.to_owned(),
            domain: alert.domain.clone(),
            subject: subject.to_owned(),
            window_start: datetime(alert.window_start),
            state: state.to_owned(),
            body: body.clone(),
            historical: u8::from(alert.historical),
            notified: u8::from(alert.historical),
            acknowledged_at: 0,
            ack_note: String::new(),
            version: 1,
        };
        self.insert("notices", std::slice::from_ref(&row))?;
        self.insert("alerts", &[Self::alert_row(alert, subject, &body)])?;
        if !alert.historical {
            self.fresh.push(id);
        }
        self.read.insert(id, row);
        Ok(true)
    }

    fn update_notice(&mut self, id: i64, alert: &Alert) -> Result<(), Self::Error> {
        let Some(mut row) = self.read.get(&id).cloned() else {
            return Err(StoreError::ClickHouse(format!("notice {id} updated before it was read")));
        };
        row.body = serde_json::to_string(alert).unwrap_or_default();
        row.version += 1;
        self.insert("notices", std::slice::from_ref(&row))?;
        self.insert("alerts", &[Self::alert_row(alert, &row.subject, &row.body)])?;
        self.read.insert(id, row);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_ids_follow_the_identity() {
        let a = notice_id("dkim_replay_suspected", "example.com", "s1", 86_400, "firing");
        assert_eq!(a, notice_id("dkim_replay_suspected", "example.com", "s1", 86_400, "firing"));
        assert_ne!(a, notice_id("dkim_replay_suspected", "example.com", "s1", 86_400, "resolved"));
        assert_ne!(a, notice_id("dkim_replay_suspected", "example.co", "ms1", 86_400, "firing"));
        assert!(a >= 0);
    }

    #[test]
    fn quoted_values_cannot_end_their_literal() {
        assert_eq!(quoted("192.0.2.1"), "'192.0.2.1'");
        assert_eq!(quoted("a'b\\"), "'a\\'b\\\\'");
    }
}
