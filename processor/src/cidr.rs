//! IP networks in CIDR notation, as the owner declares them (`[[senders]]`).

use std::net::IpAddr;

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

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
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
