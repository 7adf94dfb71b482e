//! Enrich: what is known about each source IP, filled into the `sources` table.
//!
//! ```text
//!  sources (resolved_at IS NULL) ──> rdns: PTR lookups, ≤ N in flight ──┐
//!                                    mmdb: ASN, AS org, country ─────────┴─> UPDATE sources (short transactions)
//! ```
//!
//! Input: `sources` rows the store wrote as reports arrived, not yet given a reverse DNS
//! answer. Output: their `ptr`, `ptr_base` (registrable domain of the PTR name), `asn`,
//! `as_org`, `as_domain`, `country`, the mail service behind the address (`service`,
//! `service_kind`: named by [`ServiceMap`] from those fields) and `resolved_at`. Invariants: `resolved_at` is set only on a
//! definitive answer (a name, NXDOMAIN, or no PTR record: then `ptr` is NULL); a failed
//! lookup (timeout, SERVFAIL) leaves it NULL and the address is not asked again for
//! `retry_after_secs`; `offline` sends no DNS query at all; MMDB fields are filled
//! whenever a database is configured, offline too.
//!
//! Layout: `rdns` (resolver, concurrency bound, answer cache), `mmdb` (IP databases),
//! `service` (which mail service is behind an address: the built-in map and user CSV
//! files; pure, called by whoever holds the enriched fields).

mod mmdb;
mod rdns;
mod service;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{named_params, Connection};
use tokio::task::JoinSet;
use tracing::{debug, info};

pub use mmdb::MmdbInfo;
pub use service::{
    Identified, MatchedBy, Service, ServiceKind, ServiceMap, ServiceMapError,
    MAX_FILE_BYTES as MAX_SERVICE_MAP_BYTES, MAX_FILE_ROWS as MAX_SERVICE_MAP_ROWS,
};

use mmdb::Mmdb;
use rdns::Rdns;

/// Rows updated per write transaction: short, so the pipeline's writer never waits long.
const WRITE_BATCH: usize = 256;
/// Rows read per page while looking for rows to enrich (past deferred ones).
const SELECT_PAGE: usize = 1024;
/// Reverse lookups started together; a round none of which is answered stops the rest.
const LOOKUP_ROUND: usize = 64;
/// How long a write waits for the pipeline's writer to release the database.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How sources are enriched. Every field has a default, so an empty section is valid.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichConfig {
    /// Send no DNS query at all (air-gapped hosts, reproducible runs). MMDB fields are
    /// still filled.
    pub offline: bool,
    /// Nameservers to ask, as `ip:port`, in order. Empty: the system's
    /// (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// A database in the GeoLite2-ASN layout; fills `asn` and `as_org`.
    pub asn_db: Option<PathBuf>,
    /// A database in the GeoLite2-Country layout; fills `country`.
    pub country_db: Option<PathBuf>,
    /// IPinfo's free "Lite" database (`ipinfo_lite.mmdb`: ASN, AS name, AS domain and
    /// country in one file). Fills what `asn_db` and `country_db` leave empty, and the
    /// AS domain.
    pub ipinfo_db: Option<PathBuf>,
    /// Service maps to load over the built-in one, in order (a later file's entry
    /// replaces an earlier one's): CSV files in the `base_reverse_dns,name,type`
    /// layout of parsedmarc's community map. See [`ServiceMap::load`].
    pub services: Vec<PathBuf>,
    /// Reverse lookups in flight at once.
    pub max_concurrent_lookups: usize,
    /// Time allowed for one reverse lookup, in milliseconds (one attempt, no retry).
    pub lookup_timeout_ms: u64,
    /// Seconds before an address whose lookup failed is asked again.
    pub retry_after_secs: u64,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        Self {
            offline: false,
            nameservers: Vec::new(),
            asn_db: None,
            country_db: None,
            ipinfo_db: None,
            services: Vec::new(),
            max_concurrent_lookups: 32,
            lookup_timeout_ms: 2_000,
            retry_after_secs: 3_600,
        }
    }
}

impl EnrichConfig {
    /// Whether enrichment has anything to do: reverse DNS, or an IP database.
    pub fn has_work(&self) -> bool {
        !self.offline || self.asn_db.is_some() || self.country_db.is_some() || self.ipinfo_db.is_some()
    }

    /// Checks the values before anything is opened.
    pub fn validate(&self) -> Result<(), EnrichError> {
        if self.max_concurrent_lookups == 0 {
            return Err(EnrichError::Config("max_concurrent_lookups must be at least 1".into()));
        }
        if !(1..=60_000).contains(&self.lookup_timeout_ms) {
            return Err(EnrichError::Config("lookup_timeout_ms must be between 1 and 60000".into()));
        }
        Ok(())
    }

    /// The built-in service map with the `services` files over it. Reads the files:
    /// call it once at startup, before anything connects, and share the map.
    pub fn service_map(&self) -> Result<ServiceMap, ServiceMapError> {
        ServiceMap::load(&self.services)
    }
}

/// Why enrichment could not start or could not write its results.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrichError {
    /// A configuration value is out of range.
    #[error("invalid enrich config: {0}")]
    Config(String),
    /// An IP database file could not be opened or is not a MaxMind DB.
    #[error("cannot open ip database {}: {source}", path.display())]
    Mmdb {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        source: maxminddb::MaxMindDbError,
    },
    /// The resolver could not be set up (e.g. the system resolver configuration is
    /// missing or unreadable).
    #[error("cannot set up the dns resolver: {0}")]
    Resolver(hickory_resolver::net::NetError),
    /// Reading or writing the `sources` table failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A service map file could not be read or holds an invalid row.
    #[error(transparent)]
    ServiceMap(#[from] ServiceMapError),
    /// A lookup or database task panicked or was cancelled.
    #[error("enrichment task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl EnrichError {
    /// True when trying again later may succeed (the database is busy or locked).
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            EnrichError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}

/// The result of asking for one address's PTR name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PtrLookup {
    /// A definitive answer: the name (lower case, no trailing dot), or `None` when the
    /// address has none (NXDOMAIN, or no PTR record).
    Answer(Option<String>),
    /// No answer this time (timeout, SERVFAIL, unreachable nameserver); ask again later.
    Failed,
    /// Not asked: offline, or the address failed recently and waits out its
    /// `retry_after_secs`.
    Skipped,
}

/// Enriches source IPs. Cheap to share behind an `Arc`; lookups need a tokio runtime.
pub struct Enricher {
    /// `None` when offline.
    rdns: Option<Arc<Rdns>>,
    mmdb: Mmdb,
    /// Names the mail service behind an address from what the lookups found.
    services: ServiceMap,
    retry_after: Duration,
    /// Addresses not to select again before the instant: failed lookups and, offline,
    /// addresses already given their MMDB fields.
    deferred: Mutex<HashMap<IpAddr, Instant>>,
}

impl Enricher {
    /// Validates the config, opens the IP databases and the service maps (an error names
    /// the file) and sets up the resolver (the system's configuration unless nameservers
    /// are given).
    /// Needs no runtime.
    pub fn new(config: &EnrichConfig) -> Result<Self, EnrichError> {
        config.validate()?;
        let mmdb =
            Mmdb::open(config.asn_db.as_deref(), config.country_db.as_deref(), config.ipinfo_db.as_deref())?;
        let services = config.service_map()?;
        let rdns = if config.offline { None } else { Some(Arc::new(Rdns::new(config)?)) };
        Ok(Self {
            rdns,
            mmdb,
            services,
            retry_after: Duration::from_secs(config.retry_after_secs),
            deferred: Mutex::new(HashMap::new()),
        })
    }

    /// What the IP databases say about `ip` (empty without databases). Synchronous and
    /// cheap: a walk of an in-memory tree.
    pub fn lookup_mmdb(&self, ip: IpAddr) -> MmdbInfo {
        self.mmdb.lookup(ip)
    }

    /// The mail service behind an address, from its PTR name (the full name, when it has
    /// one) and what the IP databases say about it ([`ServiceMap::identify`] over the
    /// built-in map and the `services` files). Both stores name services through this.
    pub fn identify_service(&self, ptr: Option<&str>, mmdb: &MmdbInfo) -> Option<Identified<'_>> {
        self.services.identify(ptr, mmdb.as_domain.as_deref(), mmdb.asn, mmdb.as_org.as_deref())
    }

    /// The PTR name of `ip`, from the in-memory cache or the nameservers. A failure
    /// defers the address for `retry_after_secs`.
    pub async fn lookup_ptr(&self, ip: IpAddr) -> PtrLookup {
        let Some(rdns) = &self.rdns else { return PtrLookup::Skipped };
        if self.deferred_now().contains(&ip) {
            return PtrLookup::Skipped;
        }
        self.settle(ip, rdns.lookup(ip).await)
    }

    /// Enriches up to `limit` rows of the `sources` table in the SQLite database at `db`
    /// that have no reverse DNS answer yet (`resolved_at IS NULL`), skipping addresses
    /// deferred after a failure. Looks them up concurrently (at most
    /// `max_concurrent_lookups` in flight) and writes each batch of results in one
    /// short transaction on a connection of its own. Returns the number of rows
    /// updated: given a definitive rDNS answer, or MMDB fields.
    pub async fn enrich_pending(&self, db: &Path, limit: usize) -> Result<usize, EnrichError> {
        if limit == 0 || (self.rdns.is_none() && !self.mmdb.is_configured()) {
            return Ok(0);
        }
        let deferred = self.deferred_now();
        let path = db.to_owned();
        let (conn, pending) = tokio::task::spawn_blocking(move || {
            let conn = open(&path)?;
            let pending = select_pending(&conn, limit, &deferred)?;
            Ok::<_, rusqlite::Error>((conn, pending))
        })
        .await??;
        let selected = pending.len();
        let mut writer = Writer { conn: Arc::new(Mutex::new(conn)), batch: Vec::new(), updated: 0 };
        let (mut answered, mut failed) = (0usize, 0usize);

        match &self.rdns {
            None => {
                for ip in pending {
                    self.defer(ip);
                    writer.push(self.update(ip, None)).await?;
                }
            }
            Some(rdns) => {
                // A round of lookups at a time; the semaphore inside `rdns` bounds the
                // queries. A resolver that answers none of a whole round is not asked
                // about the rest now: they wait for the next attempt, and it is said.
                let started = Instant::now();
                let mut pending = pending.into_iter().peekable();
                while pending.peek().is_some() {
                    let mut lookups = JoinSet::new();
                    for ip in pending.by_ref().take(LOOKUP_ROUND) {
                        let rdns = Arc::clone(rdns);
                        lookups.spawn(async move { (ip, rdns.lookup(ip).await) });
                    }
                    let round = lookups.len();
                    let answered_before = answered;
                    while let Some(joined) = lookups.join_next().await {
                        let (ip, result) = joined?;
                        let answer = match self.settle(ip, result) {
                            PtrLookup::Answer(name) => {
                                answered += 1;
                                Some(name)
                            }
                            _ => {
                                failed += 1;
                                None
                            }
                        };
                        writer.push(self.update(ip, answer)).await?;
                    }
                    if answered == answered_before && pending.peek().is_some() {
                        let later: Vec<IpAddr> = pending.by_ref().collect();
                        for &ip in &later {
                            self.defer(ip);
                            writer.push(self.update(ip, None)).await?;
                        }
                        tracing::warn!(
                            "reverse DNS: 0 of {round} lookups answered in {:.0} s; continuing without it for {} \
                             more sources, asked again in {} s",
                            started.elapsed().as_secs_f64(),
                            later.len(),
                            self.retry_after.as_secs()
                        );
                    }
                }
            }
        }
        let updated = writer.finish().await?;
        if selected > 0 {
            info!(selected, answered, failed, updated, "sources enriched");
        }
        Ok(updated)
    }

    /// Records the outcome of a lookup: a failure defers the address, an answer
    /// clears any deferral.
    fn settle(&self, ip: IpAddr, result: Result<Option<String>, rdns::LookupFailure>) -> PtrLookup {
        match result {
            Ok(name) => {
                self.deferred.lock().unwrap_or_else(|e| e.into_inner()).remove(&ip);
                PtrLookup::Answer(name)
            }
            Err(error) => {
                debug!(ip = %ip, error = %error, "reverse lookup failed");
                self.defer(ip);
                PtrLookup::Failed
            }
        }
    }

    fn defer(&self, ip: IpAddr) {
        let until = Instant::now() + self.retry_after;
        self.deferred.lock().unwrap_or_else(|e| e.into_inner()).insert(ip, until);
    }

    /// The addresses deferred now, forgetting those whose time has come.
    fn deferred_now(&self) -> HashSet<IpAddr> {
        let now = Instant::now();
        let mut deferred = self.deferred.lock().unwrap_or_else(|e| e.into_inner());
        deferred.retain(|_, until| *until > now);
        deferred.keys().copied().collect()
    }

    /// The row update for `ip`: `ptr` is `Some` for a definitive rDNS answer.
    fn update(&self, ip: IpAddr, ptr: Option<Option<String>>) -> Update {
        let mmdb = self.mmdb.lookup(ip);
        let name = ptr.as_ref().and_then(Option::as_deref);
        let service = self
            .identify_service(name, &mmdb)
            .map(|found| (found.service.name.clone(), found.service.kind.as_str(), found.by.as_str()));
        Update {
            ip: ip.to_string(),
            ptr,
            mmdb,
            service,
            has_asn: self.mmdb.has_asn(),
            has_country: self.mmdb.has_country(),
        }
    }
}

/// The registrable domain of a PTR name (`mail-1.outbound.example.co.uk` →
/// `example.co.uk`), by the public suffix list; `None` for a bare suffix or a
/// single label.
pub fn ptr_base(name: &str) -> Option<String> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    psl::domain_str(&name).map(str::to_owned)
}

/// One row's new values.
struct Update {
    ip: String,
    /// `Some`: a definitive rDNS answer (the name, or none).
    ptr: Option<Option<String>>,
    mmdb: MmdbInfo,
    /// The mail service named from the PTR name and the IP databases, its kind, and
    /// what named it.
    service: Option<(String, &'static str, &'static str)>,
    /// The ASN database is configured: its answer, even empty, replaces `asn`/`as_org`.
    has_asn: bool,
    /// The country database is configured: its answer replaces `country`.
    has_country: bool,
}

impl Update {
    fn is_empty(&self) -> bool {
        self.ptr.is_none() && !self.has_asn && !self.has_country
    }
}

/// Collects updates and writes them in batches, each in its own transaction, off the
/// async threads (a write may wait up to [`BUSY_TIMEOUT`] for the pipeline's writer).
struct Writer {
    conn: Arc<Mutex<Connection>>,
    batch: Vec<Update>,
    updated: usize,
}

impl Writer {
    async fn push(&mut self, update: Update) -> Result<(), EnrichError> {
        if !update.is_empty() {
            self.batch.push(update);
        }
        if self.batch.len() >= WRITE_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), EnrichError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let conn = Arc::clone(&self.conn);
        self.updated += tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            write_batch(&mut conn, &batch)
        })
        .await??;
        Ok(())
    }

    async fn finish(mut self) -> Result<usize, EnrichError> {
        self.flush().await?;
        Ok(self.updated)
    }
}

fn open(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Up to `limit` addresses with no rDNS answer yet, in address order, skipping the
/// deferred ones (paging past them, so a run of failures cannot starve the rest).
fn select_pending(
    conn: &Connection,
    limit: usize,
    deferred: &HashSet<IpAddr>,
) -> Result<Vec<IpAddr>, rusqlite::Error> {
    let mut stmt =
        conn.prepare("SELECT ip FROM sources WHERE resolved_at IS NULL AND ip > ?1 ORDER BY ip LIMIT ?2")?;
    let mut pending = Vec::new();
    let mut after = String::new();
    loop {
        let page: Vec<String> = stmt
            .query_map(rusqlite::params![after, SELECT_PAGE as i64], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let last_page = page.len() < SELECT_PAGE;
        for text in page {
            // The store writes `IpAddr`'s canonical text, so this only skips rows
            // written by hand.
            if let Ok(ip) = text.parse::<IpAddr>() {
                if !deferred.contains(&ip) {
                    pending.push(ip);
                    if pending.len() == limit {
                        return Ok(pending);
                    }
                }
            }
            after = text;
        }
        if last_page {
            return Ok(pending);
        }
    }
}

/// Writes one batch in one transaction. Returns the rows updated.
fn write_batch(conn: &mut Connection, batch: &[Update]) -> Result<usize, rusqlite::Error> {
    let now = ruaflow_schema::clock::now();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut updated = 0;
    {
        // Each flag says whether that group of columns has a new value; a column
        // without one keeps what it had.
        let mut stmt = tx.prepare_cached(
            "UPDATE sources SET
                ptr         = CASE WHEN :has_ptr THEN :ptr ELSE ptr END,
                ptr_base    = CASE WHEN :has_ptr THEN :ptr_base ELSE ptr_base END,
                resolved_at = CASE WHEN :has_ptr THEN :now ELSE resolved_at END,
                asn         = CASE WHEN :has_asn THEN :asn ELSE asn END,
                as_org      = CASE WHEN :has_asn THEN :as_org ELSE as_org END,
                as_domain   = CASE WHEN :has_asn THEN :as_domain ELSE as_domain END,
                service     = COALESCE(:service, service),
                service_kind = CASE WHEN :service IS NULL THEN service_kind ELSE :service_kind END,
                service_by  = CASE WHEN :service IS NULL THEN service_by ELSE :service_by END,
                country     = CASE WHEN :has_country THEN :country ELSE country END
             WHERE ip = :ip",
        )?;
        for u in batch {
            let ptr = u.ptr.as_ref().and_then(Option::as_deref);
            updated += stmt.execute(named_params! {
                ":ip": u.ip,
                ":has_ptr": u.ptr.is_some(),
                ":ptr": ptr,
                ":ptr_base": ptr.and_then(ptr_base),
                ":now": now,
                ":has_asn": u.has_asn,
                ":asn": u.mmdb.asn,
                ":as_org": u.mmdb.as_org,
                ":as_domain": u.mmdb.as_domain,
                ":service": u.service.as_ref().map(|(name, _, _)| name),
                ":service_kind": u.service.as_ref().map(|(_, kind, _)| kind),
                ":service_by": u.service.as_ref().map(|(_, _, by)| by),
                ":has_country": u.has_country,
                ":country": u.mmdb.country,
            })?;
        }
    }
    tx.commit()?;
    Ok(updated)
}
