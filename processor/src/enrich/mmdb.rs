//! ASN, AS organization, AS domain and country from MaxMind DB files the user supplies.
//!
//! Input: an IP. Output: an [`MmdbInfo`] with whatever the configured databases know.
//! Invariant: a lookup never fails: an IP a database does not cover, a record of an
//! unexpected shape, or no database at all each give empty fields. Two layouts are read:
//! - GeoLite2-ASN / GeoLite2-Country (MaxMind's GeoLite2 and GeoIP2, DB-IP Lite, IPinfo's
//!   MaxMind-compatible exports): one file for the AS, one for the country;
//! - IPinfo Lite (`ipinfo_lite.mmdb`): one flat record per network with `asn` (text,
//!   `AS15169`), `as_name`, `as_domain`, `country_code`, `country` (the name),
//!   `continent_code`, `continent`; empty strings where IPinfo knows nothing. Its older
//!   `country_asn` layout, where `country` is the code, is read too.
//!
//! When both kinds are configured, the GeoLite2-layout file answers first for its
//! fields and IPinfo fills the gaps; the AS name and domain are taken from IPinfo only
//! when it names the same AS.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::{geoip2, Reader};
use tracing::{debug, info};

use super::EnrichError;

/// What the IP databases say about one address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MmdbInfo {
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// Organization that registered the AS.
    pub as_org: Option<String>,
    /// The AS organization's domain, lower case (IPinfo's `as_domain`; only the IPinfo
    /// database has it).
    pub as_domain: Option<String>,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: Option<String>,
}

impl MmdbInfo {
    /// True when no database knew anything about the address.
    pub fn is_empty(&self) -> bool {
        self.asn.is_none() && self.as_org.is_none() && self.as_domain.is_none() && self.country.is_none()
    }
}

/// The opened databases (each optional). Files are read into memory once.
pub(crate) struct Mmdb {
    asn: Option<Reader<Vec<u8>>>,
    country: Option<Reader<Vec<u8>>>,
    ipinfo: Option<Reader<Vec<u8>>>,
}

/// One record of IPinfo Lite (or its older `country_asn` layout). Every field is text.
#[derive(serde::Deserialize)]
struct IpinfoRecord<'a> {
    #[serde(borrow, default)]
    asn: Option<&'a str>,
    #[serde(borrow, default)]
    as_name: Option<&'a str>,
    #[serde(borrow, default)]
    as_domain: Option<&'a str>,
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    /// The country's name in IPinfo Lite, its code in `country_asn`.
    #[serde(borrow, default)]
    country: Option<&'a str>,
}

impl IpinfoRecord<'_> {
    /// The record's fields, normalized: `AS15169` → 15169, empty strings → `None`,
    /// the domain in lower case, the country code in upper case.
    fn info(&self) -> MmdbInfo {
        let text = |value: Option<&str>| value.map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        let asn = text(self.asn).and_then(|asn| {
            let digits = asn.strip_prefix("AS").or_else(|| asn.strip_prefix("as")).unwrap_or(&asn);
            digits.parse::<u32>().ok()
        });
        let country = text(self.country_code)
            .or_else(|| {
                text(self.country).filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()))
            })
            .map(|c| c.to_ascii_uppercase());
        MmdbInfo {
            asn,
            as_org: text(self.as_name),
            as_domain: text(self.as_domain).map(|d| d.trim_end_matches('.').to_ascii_lowercase()),
            country,
        }
    }
}

impl Mmdb {
    pub(crate) fn open(
        asn: Option<&Path>,
        country: Option<&Path>,
        ipinfo: Option<&Path>,
    ) -> Result<Self, EnrichError> {
        Ok(Self {
            asn: asn.map(open).transpose()?,
            country: country.map(open).transpose()?,
            ipinfo: ipinfo.map(open).transpose()?,
        })
    }

    /// True when at least one database is configured.
    pub(crate) fn is_configured(&self) -> bool {
        self.has_asn() || self.has_country()
    }

    /// True when a database with AS fields is configured.
    pub(crate) fn has_asn(&self) -> bool {
        self.asn.is_some() || self.ipinfo.is_some()
    }

    /// True when a database with countries is configured.
    pub(crate) fn has_country(&self) -> bool {
        self.country.is_some() || self.ipinfo.is_some()
    }

    pub(crate) fn lookup(&self, ip: IpAddr) -> MmdbInfo {
        let mut info = MmdbInfo::default();
        if let Some(reader) = &self.asn {
            if let Some(asn) = decode::<geoip2::Asn<'_>>(reader, ip) {
                info.asn = asn.autonomous_system_number;
                info.as_org = asn.autonomous_system_organization.map(str::to_owned);
            }
        }
        let ipinfo =
            self.ipinfo.as_ref().and_then(|reader| decode::<IpinfoRecord<'_>>(reader, ip)).map(|r| r.info());
        if let Some(reader) = &self.country {
            if let Some(c) = decode::<geoip2::Country<'_>>(reader, ip) {
                // `country` is where the address is used; databases leave it out for
                // some anycast and satellite ranges, where only the registration
                // country is known.
                info.country =
                    c.country.iso_code.or(c.registered_country.iso_code).map(str::to_ascii_uppercase);
            }
        }
        if let Some(ipinfo) = ipinfo {
            if info.asn.is_none() {
                info.asn = ipinfo.asn;
            }
            if info.asn.is_some() && info.asn == ipinfo.asn {
                info.as_org = info.as_org.or(ipinfo.as_org);
                info.as_domain = ipinfo.as_domain;
            }
            info.country = info.country.or(ipinfo.country);
        }
        info
    }
}

fn open(path: &Path) -> Result<Reader<Vec<u8>>, EnrichError> {
    let reader =
        Reader::open_readfile(path).map_err(|source| EnrichError::Mmdb { path: path.to_owned(), source })?;
    let meta = reader.metadata();
    info!(
        path = %path.display(),
        database_type = %meta.database_type,
        build_epoch = meta.build_epoch,
        "ip database opened"
    );
    Ok(reader)
}

/// Decodes the record for `ip`, or `None` when the database has none or it does not
/// have the expected shape (a City file given as the ASN file, say).
fn decode<'de, T: serde::Deserialize<'de>>(reader: &'de Reader<Vec<u8>>, ip: IpAddr) -> Option<T> {
    // An IPv6 address looked up in an IPv4-only file is an error, not a miss.
    match reader.lookup(ip).and_then(|found| found.decode::<T>()) {
        Ok(record) => record,
        Err(error) => {
            debug!(ip = %ip, error = %error, "ip database lookup failed");
            None
        }
    }
}
