//! Enrichment in the distributed deployment: what the detector group learns about the
//! source addresses of the digests it reads, written to ClickHouse's `sources` and
//! `source_services`.
//!
//! Input: addresses, handed over as digests are folded (never blocking detection: a
//! full hand-over queue drops addresses, which come again with later reports). Output:
//! `sources` rows (PTR name and its registrable domain, AS number and name, country;
//! the newest `updated_at` wins) and, when the service map names one, the mail service
//! behind the address in `source_services` (named by [`Enricher::identify_service`], as
//! the embedded store names it). Invariants: an address with a definitive answer
//! younger than `retry_after_secs` is not looked up again, whichever member answered
//! it (the table is asked first); a failed lookup writes nothing (a row would replace
//! an earlier answer) and is asked again after `retry_after_secs`; offline, only the IP
//! databases are read.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clickhouse::{Client, Row};
use serde::Serialize;
use tokio::sync::mpsc;

use super::{datetime, insert_rows, ClickHouseUrl};
use crate::enrich::{ptr_base, Enricher, PtrLookup};
use crate::normalize::network_of;
use crate::store::StoreError;

/// Addresses waiting for enrichment at most.
const QUEUE: usize = 100_000;
/// Addresses enriched per round.
const ROUND: usize = 512;

/// A row of `sources`.
#[derive(Debug, Row, Serialize)]
struct SourceRow {
    ip: String,
    network: String,
    ptr: String,
    ptr_base: String,
    asn: u32,
    as_org: String,
    country: String,
    resolved_at: u32,
    updated_at: u32,
}

/// A row of `source_services`.
#[derive(Debug, Row, Serialize)]
struct ServiceRow {
    ip: String,
    service: String,
    service_kind: &'static str,
    service_by: &'static str,
    updated_at: u32,
}

/// Hands addresses to the enrichment task.
#[derive(Clone)]
pub struct SourceEnricher {
    queue: mpsc::Sender<IpAddr>,
    /// Set when the task has named a mail service since [`SourceEnricher::named_since`].
    named: Arc<AtomicBool>,
}

impl SourceEnricher {
    /// Starts the task on `runtime`; it ends when every handle is dropped.
    pub fn start(
        url: &ClickHouseUrl,
        enricher: Enricher,
        retry_after: Duration,
        offline: bool,
        runtime: &tokio::runtime::Handle,
    ) -> Self {
        let (queue, received) = mpsc::channel(QUEUE);
        let named = Arc::new(AtomicBool::new(false));
        let task = Task {
            client: url.client(),
            enricher: Arc::new(enricher),
            retry_after,
            offline,
            done: HashMap::new(),
            named: Arc::clone(&named),
        };
        runtime.spawn(task.run(received));
        SourceEnricher { queue, named }
    }

    /// Asks for `ip` to be enriched (dropped when the queue is full).
    pub fn enrich(&self, ip: IpAddr) {
        let _ = self.queue.try_send(ip);
    }

    /// Whether the task named a mail service since the last call: the sender model's
    /// stored statuses of those addresses may stand otherwise now.
    pub fn named_since(&self) -> bool {
        self.named.swap(false, Ordering::AcqRel)
    }
}

struct Task {
    client: Client,
    enricher: Arc<Enricher>,
    retry_after: Duration,
    /// No reverse DNS: rows carry the IP databases' fields only.
    offline: bool,
    /// Addresses this member wrote lately, with when (not asked again before `retry_after`).
    done: HashMap<IpAddr, Instant>,
    /// Set once services are written.
    named: Arc<AtomicBool>,
}

impl Task {
    async fn run(mut self, mut received: mpsc::Receiver<IpAddr>) {
        let mut round = Vec::with_capacity(ROUND);
        while received.recv_many(&mut round, ROUND).await > 0 {
            let now = Instant::now();
            self.done.retain(|_, at| now.duration_since(*at) < self.retry_after);
            let mut fresh: Vec<IpAddr> = round.drain(..).filter(|ip| !self.done.contains_key(ip)).collect();
            fresh.sort_unstable();
            fresh.dedup();
            if fresh.is_empty() {
                continue;
            }
            if let Err(err) = self.enrich(&fresh).await {
                tracing::warn!(error = %err, sources = fresh.len(), "sources not enriched; they are asked again with later reports");
            }
        }
    }

    async fn enrich(&mut self, ips: &[IpAddr]) -> Result<(), StoreError> {
        let answered = self.answered_lately(ips).await?;
        let mut lookups = tokio::task::JoinSet::new();
        for &ip in ips.iter().filter(|ip| !answered.contains(*ip)) {
            let enricher = Arc::clone(&self.enricher);
            lookups.spawn(async move { (ip, enricher.lookup_ptr(ip).await, enricher.lookup_mmdb(ip)) });
        }
        let now = datetime(ruaflow_schema::clock::now());
        let started = Instant::now();
        let (mut rows, mut services, mut answered, mut failed) = (Vec::new(), Vec::new(), 0usize, 0usize);
        while let Some(joined) = lookups.join_next().await {
            let Ok((ip, ptr, mmdb)) = joined else { continue };
            let (name, resolved_at) = match ptr {
                PtrLookup::Answer(name) => {
                    answered += 1;
                    (name, now)
                }
                // A failed (or deferred) lookup writes nothing: a row written now would
                // replace an earlier answer; the address is asked again later.
                PtrLookup::Failed => {
                    failed += 1;
                    continue;
                }
                PtrLookup::Skipped if !self.offline => continue,
                PtrLookup::Skipped => (None, 0),
            };
            if resolved_at == 0 && mmdb.is_empty() {
                continue;
            }
            if let Some(found) = self.enricher.identify_service(name.as_deref(), &mmdb) {
                services.push(ServiceRow {
                    ip: ip.to_string(),
                    service: found.service.name.clone(),
                    service_kind: found.service.kind.as_str(),
                    service_by: found.by.as_str(),
                    updated_at: now,
                });
            }
            rows.push(SourceRow {
                ip: ip.to_string(),
                network: network_of(ip),
                ptr_base: name.as_deref().and_then(ptr_base).unwrap_or_default(),
                ptr: name.unwrap_or_default(),
                asn: mmdb.asn.unwrap_or(0),
                as_org: mmdb.as_org.unwrap_or_default(),
                country: mmdb.country.unwrap_or_default(),
                resolved_at,
                updated_at: now,
            });
            self.done.insert(ip, Instant::now());
        }
        if answered == 0 && failed > 0 {
            tracing::warn!(
                "reverse DNS: 0 of {failed} lookups answered in {:.0} s; continuing without it, asked again in {} s",
                started.elapsed().as_secs_f64(),
                self.retry_after.as_secs()
            );
        }
        // Services first: an address is asked again until its `sources` row is written.
        insert_rows(&self.client, "source_services", &services).await?;
        if !services.is_empty() {
            self.named.store(true, Ordering::Release);
        }
        insert_rows(&self.client, "sources", &rows).await?;
        tracing::debug!(sources = rows.len(), services = services.len(), "sources enriched");
        Ok(())
    }

    /// Those of `ips` another member (or an earlier run) answered within `retry_after`.
    async fn answered_lately(&self, ips: &[IpAddr]) -> Result<HashSet<IpAddr>, StoreError> {
        let list: Vec<String> = ips.iter().map(|ip| format!("'{ip}'")).collect();
        let sql = format!(
            "SELECT ip FROM sources FINAL WHERE ip IN ({}) AND resolved_at > now() - {}",
            list.join(","),
            self.retry_after.as_secs()
        );
        let found: Vec<String> = self
            .client
            .query(&sql)
            .fetch_all()
            .await
            .map_err(|e| StoreError::ClickHouse(format!("reading sources: {e}")))?;
        Ok(found.iter().filter_map(|ip| ip.parse().ok()).collect())
    }
}
