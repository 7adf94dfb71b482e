//! Known senders of a policy domain, as of a report day.
//!
//! Input: the per-source aggregates of the domain up to that day, and configured
//! networks. Output: the set of known source IPs. A source is known when it is
//! configured, when it has sent SPF-aligned passing mail for the domain (the domain's own
//! SPF authorizes it), or when it is familiar: first seen at least `familiar_after_days`
//! before the day and seen on at least `familiar_min_days` days of the baseline window
//! (forwarders, mailing lists). Replayed mail passes DKIM from IPs that are none of these.

use std::collections::HashSet;
use std::net::IpAddr;

use rusqlite::{params, Connection};

use super::DetectConfig;
use crate::normalize::DAY;

/// Source IPs of `domain` on `day` that are known senders.
pub fn known_on(
    conn: &Connection,
    config: &DetectConfig,
    domain: &str,
    day: i64,
) -> rusqlite::Result<HashSet<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT source_ip,
                SUM(spf_aligned_pass) AS spf,
                MIN(day) AS first_day,
                COUNT(DISTINCT CASE WHEN day < ?2 AND day >= ?3 THEN day END) AS recent_days
         FROM agg_source_day
         WHERE domain = ?1 AND day <= ?2
           AND source_ip IN (SELECT source_ip FROM agg_source_day WHERE domain = ?1 AND day = ?2)
         GROUP BY source_ip",
    )?;
    let window_start = day - config.baseline_days * DAY;
    let familiar_before = day - config.familiar_after_days * DAY;
    let networks = config.known_networks(domain);
    let mut known = HashSet::new();
    let rows = stmt.query_map(params![domain, day, window_start], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?))
    })?;
    for row in rows {
        let (ip, spf, first_day, recent_days) = row?;
        let history = History { spf_aligned_pass: spf, first_day: Some(first_day), recent_days };
        if classify(config, networks, &ip, &history, familiar_before) != SenderStatus::Unknown {
            known.insert(ip);
        }
    }
    Ok(known)
}

/// How a source stands with a policy domain, from the learned known senders (the
/// statuses a per-domain sender model will refine; `service` is not told apart yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SenderStatus {
    /// Inside a network configured for the domain (`[detect] known_senders`).
    Configured,
    /// Has sent SPF-aligned passing mail for the domain: its SPF authorizes it.
    Authorized,
    /// Seen stably over the baseline window (forwarders, mailing lists).
    Familiar,
    /// None of these.
    Unknown,
}

impl SenderStatus {
    /// The status as a word (`configured`, `authorized`, `familiar`, `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            SenderStatus::Configured => "configured",
            SenderStatus::Authorized => "authorized",
            SenderStatus::Familiar => "familiar",
            SenderStatus::Unknown => "unknown",
        }
    }
}

/// The status of source `ip` for `domain` as of `day`, from its history in
/// `agg_source_day` up to that day. This is the one function failure reports and their
/// views ask, so they switch to a stored sender model by changing it alone.
pub fn sender_status(
    conn: &Connection,
    config: &DetectConfig,
    domain: &str,
    ip: &str,
    day: i64,
) -> rusqlite::Result<SenderStatus> {
    let window_start = day - config.baseline_days * DAY;
    let history = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(spf_aligned_pass), 0), MIN(day),
                COUNT(DISTINCT CASE WHEN day < ?3 AND day >= ?4 THEN day END)
         FROM agg_source_day WHERE domain = ?1 AND source_ip = ?2 AND day <= ?3",
        )?
        .query_row(params![domain, ip, day, window_start], |r| {
            Ok(History { spf_aligned_pass: r.get(0)?, first_day: r.get(1)?, recent_days: r.get(2)? })
        })?;
    let networks = config.known_networks(domain);
    Ok(classify(config, networks, ip, &history, day - config.familiar_after_days * DAY))
}

/// A source's history for one domain up to a day.
struct History {
    spf_aligned_pass: i64,
    first_day: Option<i64>,
    recent_days: i64,
}

fn classify(
    config: &DetectConfig,
    networks: &[Cidr],
    ip: &str,
    history: &History,
    familiar_before: i64,
) -> SenderStatus {
    let configured = !networks.is_empty()
        && ip.parse::<IpAddr>().is_ok_and(|addr| networks.iter().any(|n| n.contains(addr)));
    if configured {
        SenderStatus::Configured
    } else if history.spf_aligned_pass > 0 {
        SenderStatus::Authorized
    } else if history.first_day.is_some_and(|d| d <= familiar_before)
        && history.recent_days >= config.familiar_min_days
    {
        SenderStatus::Familiar
    } else {
        SenderStatus::Unknown
    }
}

/// An IP network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// True when `ip` is inside the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = addr.trim().parse().map_err(|_| format!("invalid network {s:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix.trim().parse().map_err(|_| format!("invalid prefix in {s:?}"))?
        };
        if prefix > max {
            return Err(format!("prefix longer than /{max} in {s:?}"));
        }
        Ok(Cidr { addr, prefix })
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains() {
        let net: Cidr = "192.0.2.0/24".parse().expect("cidr");
        assert!(net.contains("192.0.2.200".parse().expect("ip")));
        assert!(!net.contains("192.0.3.1".parse().expect("ip")));
        let v6: Cidr = "2001:db8::/32".parse().expect("cidr");
        assert!(v6.contains("2001:db8:5::1".parse().expect("ip")));
        let host: Cidr = "198.51.100.7".parse().expect("cidr");
        assert!(
            host.contains("198.51.100.7".parse().expect("ip"))
                && !host.contains("198.51.100.8".parse().expect("ip"))
        );
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        let all: Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(all.contains("8.8.8.8".parse().expect("ip")));
    }
}

#[cfg(test)]
mod status_tests {
    use super::*;
    use crate::sqlite::SqliteStore;

    #[test]
    fn sender_status_from_history_and_configuration() {
        let store = SqliteStore::in_memory().expect("store");
        let conn = store.conn();
        let row = |ip: &str, day: i64, spf: i64| {
            conn.execute(
                "INSERT INTO agg_source_day VALUES ('example.com', ?1, ?2, 'r', 'n', 10, 10, 10, ?3, 0, 10, 0, 0)",
                params![day * DAY, ip, spf],
            )
            .expect("insert");
        };
        row("192.0.2.1", 100, 5);
        for day in [80, 85, 90, 95] {
            row("198.51.100.7", day, 0);
        }
        row("203.0.113.9", 99, 0);
        let mut config = DetectConfig::default();
        let status = |config: &DetectConfig, ip: &str| {
            sender_status(conn, config, "example.com", ip, 100 * DAY).expect("status")
        };
        assert_eq!(status(&config, "192.0.2.1"), SenderStatus::Authorized);
        assert_eq!(status(&config, "198.51.100.7"), SenderStatus::Familiar);
        assert_eq!(status(&config, "203.0.113.9"), SenderStatus::Unknown);
        assert_eq!(status(&config, "10.0.0.1"), SenderStatus::Unknown, "never seen");
        // Before its SPF-aligned day the first source was not yet known.
        let before = sender_status(conn, &config, "example.com", "192.0.2.1", 99 * DAY).expect("status");
        assert_eq!(before, SenderStatus::Unknown);
        config.known_senders.insert("example.com".into(), vec!["203.0.113.0/24".parse().expect("cidr")]);
        assert_eq!(status(&config, "203.0.113.9"), SenderStatus::Configured);
    }
}
