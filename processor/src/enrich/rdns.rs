//! Reverse DNS: source IP → PTR name, with a bound on lookups in flight.
//!
//! Input: an IP. Output: a definitive answer (the PTR name, or none: NXDOMAIN or no
//! PTR record) or a failure (timeout, SERVFAIL, REFUSED, network error).
//! Invariants: at most `max_concurrent_lookups` queries are in flight, each bounded by
//! `lookup_timeout_ms` (one attempt); only definitive answers are cached, so a
//! failure is asked again later and never remembered as "no name".

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};
use tokio::sync::Semaphore;

use super::{EnrichConfig, EnrichError};

/// Definitive answers kept in memory. When full the cache is emptied: the `sources`
/// table is the lasting cache, this one only spares repeated queries in between.
const CACHE_CAPACITY: usize = 65_536;

/// Why a lookup gave no answer this time.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LookupFailure {
    /// No response within the lookup timeout.
    #[error("timed out")]
    Timeout,
    /// The nameserver answered with an error (SERVFAIL, REFUSED) or could not be reached.
    #[error("{0}")]
    Dns(#[from] NetError),
}

/// A reverse resolver with a concurrency bound and a cache of definitive answers.
pub(crate) struct Rdns {
    resolver: TokioResolver,
    permits: Semaphore,
    timeout: Duration,
    /// IP → PTR name (`None`: the address has no name).
    answers: Mutex<HashMap<IpAddr, Option<String>>>,
}

impl Rdns {
    /// Builds the resolver. Needs no runtime; lookups do (a tokio runtime).
    pub(crate) fn new(config: &EnrichConfig) -> Result<Self, EnrichError> {
        let mut builder = if config.nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(EnrichError::Resolver)?
        } else {
            let servers = config.nameservers.iter().map(|addr| nameserver(*addr)).collect();
            Resolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.timeout = Duration::from_millis(config.lookup_timeout_ms);
        opts.attempts = 1;
        // Our semaphore is the bound; the resolver must not refuse below it ("busy").
        opts.max_active_requests = opts.max_active_requests.max(config.max_concurrent_lookups);
        // /etc/hosts names the machine itself, never a mail source; and tests must see
        // only the nameserver they configured.
        opts.use_hosts_file = ResolveHosts::Never;
        let resolver = builder.build().map_err(EnrichError::Resolver)?;
        Ok(Self {
            resolver,
            permits: Semaphore::new(config.max_concurrent_lookups),
            timeout: Duration::from_millis(config.lookup_timeout_ms),
            answers: Mutex::new(HashMap::new()),
        })
    }

    /// The PTR name of `ip` (`Ok(None)`: definitively none), from the cache or the
    /// nameservers. Waits for a permit when `max_concurrent_lookups` are in flight.
    pub(crate) async fn lookup(&self, ip: IpAddr) -> Result<Option<String>, LookupFailure> {
        if let Some(answer) = self.cached(ip) {
            return Ok(answer);
        }
        let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
        // The resolver's own timeout covers one query; this one covers the whole
        // lookup, whatever the resolver does inside (several servers, UDP then TCP).
        let answer = match tokio::time::timeout(self.timeout, self.resolver.reverse_lookup(ip)).await {
            Err(_) => return Err(LookupFailure::Timeout),
            Ok(Ok(lookup)) => first_ptr(lookup.answers()),
            // NXDOMAIN, or NOERROR without a PTR record: the address has no name.
            Ok(Err(err)) if err.is_no_records_found() => None,
            Ok(Err(err)) => return Err(err.into()),
        };
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        if answers.len() >= CACHE_CAPACITY {
            answers.clear();
        }
        answers.insert(ip, answer.clone());
        Ok(answer)
    }

    fn cached(&self, ip: IpAddr) -> Option<Option<String>> {
        self.answers.lock().unwrap_or_else(|e| e.into_inner()).get(&ip).cloned()
    }
}

/// A nameserver at `addr`, over UDP and (for truncated answers) TCP, on its port.
fn nameserver(addr: SocketAddr) -> NameServerConfig {
    let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
        .into_iter()
        .map(|mut c| {
            c.port = addr.port();
            c
        })
        .collect();
    NameServerConfig::new(addr.ip(), true, connections)
}

/// The PTR name to keep when there are several: the smallest, so repeated lookups
/// agree whatever order the server rotates them in. Lower case, no trailing dot.
fn first_ptr(records: &[hickory_resolver::proto::rr::Record]) -> Option<String> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::PTR(ptr) => Some(ptr.0.to_ascii().trim_end_matches('.').to_ascii_lowercase()),
            _ => None,
        })
        .filter(|name| !name.is_empty())
        .min()
}
