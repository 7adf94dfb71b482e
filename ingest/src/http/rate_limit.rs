//! Per-client limits of the HTTP endpoint: a token bucket of requests per minute, and a
//! count of open connections, both per client (an IPv4 address, or an IPv6 /64: the
//! block one host usually holds). Memory stays bounded under a flood from many
//! addresses (see [`MAX_TRACKED_CLIENTS`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Client addresses the rate limiter tracks at once. When full, entries idle for a
/// minute (whose buckets would be full anyway) are dropped; if it is still full, new
/// clients are refused with 429 until some go idle.
const MAX_TRACKED_CLIENTS: usize = 65_536;

/// The address a client's limits are kept under: IPv4 as is (IPv4-mapped IPv6 too), IPv6
/// by its /64.
pub(super) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

/// Token buckets per client: `per_minute` tokens, refilled continuously.
pub(super) struct RateLimiter {
    /// Requests per minute per client (0: unlimited).
    pub(super) per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub(super) fn new(per_minute: u32) -> Self {
        Self { per_minute, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `ip` (an IPv6 client counts per /64, the block one host
    /// usually holds), or says no.
    pub(super) fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let key = client_key(ip);
        let capacity = f64::from(self.per_minute);
        let Ok(mut buckets) = self.buckets.lock() else { return true };
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(&key) {
            buckets.retain(|_, b| now.duration_since(b.updated) < Duration::from_secs(60));
            if buckets.len() >= MAX_TRACKED_CLIENTS {
                return false;
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: capacity, updated: now });
        let refill = now.duration_since(bucket.updated).as_secs_f64() * capacity / 60.0;
        bucket.tokens = (bucket.tokens + refill).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Open connections per client, capped. A [`ConnectionGuard`] counts one connection
/// until it is dropped.
#[derive(Clone)]
pub(super) struct ConnectionCounts {
    per_client: u32,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

/// One counted connection; dropping it releases the count.
pub(super) struct ConnectionGuard {
    counts: ConnectionCounts,
    key: IpAddr,
}

impl ConnectionCounts {
    pub(super) fn new(per_client: u32) -> Self {
        Self { per_client, open: Arc::default() }
    }

    /// Counts a new connection from `ip`, or `None` when the client has too many open.
    pub(super) fn open(&self, ip: IpAddr) -> Option<ConnectionGuard> {
        let key = client_key(ip);
        let mut open = self.open.lock().ok()?;
        let count = open.entry(key).or_insert(0);
        if *count >= self.per_client {
            return None;
        }
        *count += 1;
        Some(ConnectionGuard { counts: self.clone(), key })
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Ok(mut open) = self.counts.open.lock() {
            if let Some(count) = open.get_mut(&self.key) {
                *count -= 1;
                if *count == 0 {
                    open.remove(&self.key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_allows_a_burst_then_refills() {
        let limiter = RateLimiter::new(3);
        let start = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        assert!((0..3).all(|_| limiter.allow(ip, start)));
        assert!(!limiter.allow(ip, start), "the burst is spent");
        assert!(limiter.allow("192.0.2.2".parse().expect("ip"), start), "per client");
        assert!(limiter.allow(ip, start + Duration::from_secs(20)), "one token per 20 s");
        // Two addresses in one IPv6 /64 share a bucket.
        let a: IpAddr = "2001:db8::1".parse().expect("ip");
        let b: IpAddr = "2001:db8::2".parse().expect("ip");
        assert!((0..3).all(|_| limiter.allow(a, start)));
        assert!(!limiter.allow(b, start));
        assert!(RateLimiter::new(0).allow(ip, start), "0 disables");
    }

    #[test]
    fn connections_are_counted_per_client_until_dropped() {
        let counts = ConnectionCounts::new(2);
        let ip: IpAddr = "2001:db8::1".parse().expect("ip");
        let same_block: IpAddr = "2001:db8::ffff".parse().expect("ip");
        let first = counts.open(ip).expect("first");
        let _second = counts.open(same_block).expect("second");
        assert!(counts.open(ip).is_none(), "a third from the same /64");
        assert!(counts.open("192.0.2.1".parse().expect("ip")).is_some(), "another client");
        drop(first);
        assert!(counts.open(ip).is_some(), "released on drop");
    }
}
