//! ASN, AS organization and country from MaxMind DB files the user supplies.
//!
//! Input: an IP. Output: an [`MmdbInfo`] with whatever the configured databases know.
//! Invariant: a lookup never fails: an IP a database does not cover, a record of an
//! unexpected shape, or no database at all each give empty fields. Any file in the
//! GeoLite2-ASN / GeoLite2-Country layout works (GeoLite2, DB-IP Lite, IPinfo's
//! MaxMind-compatible exports).

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
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: Option<String>,
}

impl MmdbInfo {
    /// True when no database knew anything about the address.
    pub fn is_empty(&self) -> bool {
        self.asn.is_none() && self.as_org.is_none() && self.country.is_none()
    }
}

/// The opened databases (each optional). Files are read into memory once.
pub(crate) struct Mmdb {
    asn: Option<Reader<Vec<u8>>>,
    country: Option<Reader<Vec<u8>>>,
}

impl Mmdb {
    pub(crate) fn open(asn: Option<&Path>, country: Option<&Path>) -> Result<Self, EnrichError> {
        Ok(Self { asn: asn.map(open).transpose()?, country: country.map(open).transpose()? })
    }

    /// True when at least one database is configured.
    pub(crate) fn is_configured(&self) -> bool {
        self.has_asn() || self.has_country()
    }

    /// True when an ASN database is configured.
    pub(crate) fn has_asn(&self) -> bool {
        self.asn.is_some()
    }

    /// True when a country database is configured.
    pub(crate) fn has_country(&self) -> bool {
        self.country.is_some()
    }

    pub(crate) fn lookup(&self, ip: IpAddr) -> MmdbInfo {
        let mut info = MmdbInfo::default();
        if let Some(reader) = &self.asn {
            if let Some(asn) = decode::<geoip2::Asn<'_>>(reader, ip) {
                info.asn = asn.autonomous_system_number;
                info.as_org = asn.autonomous_system_organization.map(str::to_owned);
            }
        }
        if let Some(reader) = &self.country {
            if let Some(c) = decode::<geoip2::Country<'_>>(reader, ip) {
                // `country` is where the address is used; databases leave it out for
                // some anycast and satellite ranges, where only the registration
                // country is known.
                info.country =
                    c.country.iso_code.or(c.registered_country.iso_code).map(str::to_ascii_uppercase);
            }
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
