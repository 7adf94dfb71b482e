//! Source enrichment against real inputs: the MaxMind test databases in
//! `../shared/mmdb`, IPinfo Lite-layout databases written at test time
//! (`mmdb_writer`), parsedmarc's community service map as `bench/peer-setup` installs it,
//! and dnsmasq (Debian package `dnsmasq-base`) started on a free loopback port as the
//! nameserver. A missing dnsmasq, database or map fails the test; it is never a silent
//! skip.

mod mmdb_writer;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ruaflow_processor::enrich::{
    ptr_base, EnrichConfig, Enricher, MatchedBy, MmdbInfo, PtrLookup, ServiceKind, ServiceMap,
};
use ruaflow_processor::normalize::network_of;
use ruaflow_processor::sqlite::SqliteStore;

// ---------------------------------------------------------------- helpers

fn mmdb(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/mmdb").join(name);
    assert!(
        path.is_file(),
        "test database {} is missing: ../shared/mmdb must sit beside the repository",
        path.display()
    );
    path
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test ip")
}

/// A migrated store at `dir/ruaflow.db` holding `sources` rows for `ips`.
fn db_with_sources(dir: &Path, ips: &[&str]) -> PathBuf {
    let path = dir.join("ruaflow.db");
    let store = SqliteStore::open(&path).expect("open store");
    for text in ips {
        store
            .conn()
            .execute(
                "INSERT INTO sources (ip, network, first_seen) VALUES (?1, ?2, 1700000000)",
                rusqlite::params![ip(text).to_string(), network_of(ip(text))],
            )
            .expect("insert source");
    }
    path
}

/// One `sources` row as the tests check it.
#[derive(Debug, PartialEq)]
struct Row {
    ptr: Option<String>,
    ptr_base: Option<String>,
    asn: Option<i64>,
    as_org: Option<String>,
    country: Option<String>,
    resolved: bool,
}

fn row(db: &Path, text: &str) -> Row {
    let conn = rusqlite::Connection::open(db).expect("open db");
    conn.query_row(
        "SELECT ptr, ptr_base, asn, as_org, country, resolved_at FROM sources WHERE ip = ?1",
        [ip(text).to_string()],
        |r| {
            Ok(Row {
                ptr: r.get(0)?,
                ptr_base: r.get(1)?,
                asn: r.get(2)?,
                as_org: r.get(3)?,
                country: r.get(4)?,
                resolved: r.get::<_, Option<i64>>(5)?.is_some(),
            })
        },
    )
    .expect("source row")
}

fn unresolved(asn: Option<i64>, as_org: Option<&str>) -> Row {
    Row { ptr: None, ptr_base: None, asn, as_org: as_org.map(str::to_owned), country: None, resolved: false }
}

/// A nameserver that never answers: a bound UDP socket nobody reads from. It also
/// tells whether any query was sent to it.
struct SilentNameserver {
    socket: UdpSocket,
}

impl SilentNameserver {
    fn new() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        socket.set_nonblocking(true).expect("nonblocking");
        Self { socket }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("local addr")
    }

    /// Datagrams received since the last call.
    fn queries(&self) -> usize {
        let mut buf = [0u8; 1500];
        let mut n = 0;
        while self.socket.recv_from(&mut buf).is_ok() {
            n += 1;
        }
        n
    }
}

#[path = "../../tests/common/dnsmasq.rs"]
mod dnsmasq;
use dnsmasq::{read, Dnsmasq};

fn online(nameserver: SocketAddr) -> EnrichConfig {
    EnrichConfig { nameservers: vec![nameserver], lookup_timeout_ms: 2_000, ..EnrichConfig::default() }
}

// ---------------------------------------------------------------- config, psl, mmdb

/// One enricher, shared by tasks spawned on a multi-threaded runtime, each enriching a
/// store of its own: both finish, and each store holds what the databases say.
#[test]
fn one_enricher_serves_tasks_spawned_on_a_runtime() {
    let config = EnrichConfig {
        offline: true,
        asn_db: Some(mmdb("GeoLite2-ASN-Test.mmdb")),
        country_db: Some(mmdb("GeoLite2-Country-Test.mmdb")),
        ..EnrichConfig::default()
    };
    let enricher = std::sync::Arc::new(Enricher::new(&config).expect("enricher"));
    let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let first = db_with_sources(a.path(), &["1.0.0.1", "192.0.2.1"]);
    let second = db_with_sources(b.path(), &["81.2.69.142"]);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let tasks: Vec<_> = [first.clone(), second.clone()]
        .into_iter()
        .map(|db| {
            let enricher = std::sync::Arc::clone(&enricher);
            runtime.spawn(async move { enricher.enrich_pending(&db, 10).await })
        })
        .collect();
    let enriched: Vec<usize> = runtime.block_on(async {
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await.expect("task").expect("enriched"));
        }
        out
    });
    assert_eq!(enriched, [2, 1]);
    assert_eq!(row(&first, "1.0.0.1").asn, Some(15169));
    assert_eq!(row(&second, "81.2.69.142").country.as_deref(), Some("GB"));
}

#[test]
fn config_defaults_and_rejects_unknown_fields() {
    let config: EnrichConfig = serde_json::from_str("{}").expect("empty config");
    assert_eq!(config, EnrichConfig::default());
    assert_eq!(config.max_concurrent_lookups, 32);
    assert_eq!(config.lookup_timeout_ms, 2_000);
    assert_eq!(config.retry_after_secs, 3_600);
    assert!(!config.offline);

    let config: EnrichConfig =
        serde_json::from_str(r#"{"offline": true, "nameservers": ["127.0.0.1:5353"]}"#).expect("config");
    assert!(config.offline);
    assert_eq!(config.nameservers, vec![SocketAddr::from(([127, 0, 0, 1], 5353))]);

    let err = serde_json::from_str::<EnrichConfig>(r#"{"timeout_ms": 5}"#).expect_err("unknown field");
    assert!(err.to_string().contains("timeout_ms"), "{err}");

    let zero = EnrichConfig { offline: true, max_concurrent_lookups: 0, ..EnrichConfig::default() };
    let err = Enricher::new(&zero).err().expect("zero concurrency is refused");
    assert!(err.to_string().contains("max_concurrent_lookups"), "{err}");
}

#[test]
fn ptr_base_is_the_registrable_domain() {
    assert_eq!(ptr_base("mail-1.outbound.example.co.uk").as_deref(), Some("example.co.uk"));
    assert_eq!(ptr_base("MX.Mail.Example.COM.").as_deref(), Some("example.com"));
    assert_eq!(ptr_base("o1.ptr1234.sendgrid.net").as_deref(), Some("sendgrid.net"));
    assert_eq!(ptr_base("co.uk"), None);
    assert_eq!(ptr_base("localhost"), None);
}

#[test]
fn mmdb_lookups_against_the_test_databases() {
    let config = EnrichConfig {
        offline: true,
        asn_db: Some(mmdb("GeoLite2-ASN-Test.mmdb")),
        country_db: Some(mmdb("GeoLite2-Country-Test.mmdb")),
        ..EnrichConfig::default()
    };
    let enricher = Enricher::new(&config).expect("enricher");

    // GeoLite2-ASN-Test.json: 1.0.0.0/24 → AS15169 "Google Inc.".
    let google = enricher.lookup_mmdb(ip("1.0.0.1"));
    assert_eq!(google.asn, Some(15169));
    assert_eq!(google.as_org.as_deref(), Some("Google Inc."));
    // 12.81.96.0/19 → AS7018 with no organization in the record.
    let att = enricher.lookup_mmdb(ip("12.81.100.1"));
    assert_eq!((att.asn, att.as_org), (Some(7018), None));
    // IPv6: 2001:1700::/27 → AS6730 "Sunrise Communications AG".
    let sunrise = enricher.lookup_mmdb(ip("2001:1700::25"));
    assert_eq!(sunrise.asn, Some(6730));
    assert_eq!(sunrise.as_org.as_deref(), Some("Sunrise Communications AG"));

    // The country test database (MaxMind's test data): 81.2.69.142 → GB,
    // 89.160.20.112/28 → SE, 2001:218::/32 → JP.
    assert_eq!(enricher.lookup_mmdb(ip("81.2.69.142")).country.as_deref(), Some("GB"));
    assert_eq!(enricher.lookup_mmdb(ip("89.160.20.115")).country.as_deref(), Some("SE"));
    assert_eq!(enricher.lookup_mmdb(ip("2001:218::1")).country.as_deref(), Some("JP"));

    // Documentation ranges are in neither database.
    assert_eq!(enricher.lookup_mmdb(ip("192.0.2.1")), MmdbInfo::default());
    assert!(enricher.lookup_mmdb(ip("2001:db8::1")).is_empty());

    // No databases: nothing, and no error.
    let bare = Enricher::new(&EnrichConfig { offline: true, ..EnrichConfig::default() }).expect("enricher");
    assert!(bare.lookup_mmdb(ip("1.0.0.1")).is_empty());
}

#[test]
fn unreadable_database_error_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing-GeoLite2-ASN.mmdb");
    let config = EnrichConfig { offline: true, asn_db: Some(missing.clone()), ..EnrichConfig::default() };
    let err = Enricher::new(&config).err().expect("missing file is an error");
    assert!(err.to_string().contains(&missing.display().to_string()), "{err}");

    // A file that is not a MaxMind DB (the JSON listing beside the test database).
    let json = mmdb("GeoLite2-ASN-Test.json");
    let config = EnrichConfig { offline: true, country_db: Some(json.clone()), ..EnrichConfig::default() };
    let err = Enricher::new(&config).err().expect("not an mmdb file");
    assert!(err.to_string().contains(&json.display().to_string()), "{err}");
}

// ---------------------------------------------------------------- IPinfo Lite

/// An IPinfo Lite-layout database in `dir`: one flat record of text fields per network,
/// empty strings where IPinfo knows nothing, as `ipinfo_lite.mmdb` holds them.
fn ipinfo_lite(dir: &Path) -> PathBuf {
    use mmdb_writer::{Value, Writer};
    let lite = |asn: &str, as_name: &str, as_domain: &str, code: &str, country: &str| {
        Value::text_map(&[
            ("asn", asn),
            ("as_name", as_name),
            ("as_domain", as_domain),
            ("continent", "North America"),
            ("continent_code", "NA"),
            ("country", country),
            ("country_code", code),
        ])
    };
    let mut db = Writer::new("ipinfo_lite.mmdb");
    db.insert("1.0.0.0/24", &lite("AS15169", "Google LLC", "google.com", "AU", "Australia"))
        .insert("12.81.96.0/19", &lite("AS7018", "AT&T Services, Inc.", "att.com", "US", "United States"))
        .insert("81.2.69.0/24", &lite("AS20712", "Andrews & Arnold Ltd", "aa.net.uk", "FR", "France"))
        .insert("192.0.2.0/24", &lite("AS11377", "SendGrid, Inc.", "SendGrid.COM", "us", "United States"))
        // Announced by nobody IPinfo knows: empty AS fields, as in the real file.
        .insert("198.51.100.0/24", &lite("", "", "", "CN", "China"))
        // A different AS than the GeoLite2 test database says (AS6730).
        .insert(
            "2001:1700::/32",
            &lite("AS6830", "Liberty Global B.V.", "libertyglobal.com", "CH", "Switzerland"),
        )
        .insert(
            "2001:db8:25::/48",
            &lite("AS6939", "Hurricane Electric LLC", "he.net", "US", "United States"),
        )
        // IPinfo's older `country_asn` layout: `country` is the code.
        .insert(
            "203.0.113.0/24",
            &Value::text_map(&[
                ("asn", "AS2519"),
                ("as_name", "ARTERIA Networks Corporation"),
                ("as_domain", "arteria-net.com"),
                ("continent", "AS"),
                ("continent_name", "Asia"),
                ("country", "JP"),
                ("country_name", "Japan"),
            ]),
        );
    let path = dir.join("ipinfo_lite.mmdb");
    std::fs::write(&path, db.build()).expect("write ipinfo_lite.mmdb");
    path
}

fn info(asn: Option<u32>, as_org: Option<&str>, as_domain: Option<&str>, country: Option<&str>) -> MmdbInfo {
    MmdbInfo {
        asn,
        as_org: as_org.map(str::to_owned),
        as_domain: as_domain.map(str::to_owned),
        country: country.map(str::to_owned),
    }
}

#[test]
fn ipinfo_lite_gives_asn_as_name_domain_and_country() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config =
        EnrichConfig { offline: true, ipinfo_db: Some(ipinfo_lite(dir.path())), ..EnrichConfig::default() };
    let enricher = Enricher::new(&config).expect("enricher");

    assert_eq!(
        enricher.lookup_mmdb(ip("1.0.0.1")),
        info(Some(15169), Some("Google LLC"), Some("google.com"), Some("AU"))
    );
    // The domain is lower-cased and the country code upper-cased.
    assert_eq!(
        enricher.lookup_mmdb(ip("192.0.2.200")),
        info(Some(11377), Some("SendGrid, Inc."), Some("sendgrid.com"), Some("US"))
    );
    assert_eq!(
        enricher.lookup_mmdb(ip("2001:db8:25::1")),
        info(Some(6939), Some("Hurricane Electric LLC"), Some("he.net"), Some("US"))
    );
    // Empty strings are no value.
    assert_eq!(enricher.lookup_mmdb(ip("198.51.100.9")), info(None, None, None, Some("CN")));
    assert_eq!(
        enricher.lookup_mmdb(ip("203.0.113.5")),
        info(Some(2519), Some("ARTERIA Networks Corporation"), Some("arteria-net.com"), Some("JP"))
    );
    // Not in the database.
    assert!(enricher.lookup_mmdb(ip("100.64.0.1")).is_empty());
    assert!(enricher.lookup_mmdb(ip("2001:db8:26::1")).is_empty());
}

#[test]
fn maxmind_files_answer_first_and_ipinfo_fills_the_gaps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = EnrichConfig {
        offline: true,
        asn_db: Some(mmdb("GeoLite2-ASN-Test.mmdb")),
        country_db: Some(mmdb("GeoLite2-Country-Test.mmdb")),
        ipinfo_db: Some(ipinfo_lite(dir.path())),
        ..EnrichConfig::default()
    };
    let enricher = Enricher::new(&config).expect("enricher");

    // GeoLite2-ASN's AS and name; IPinfo, naming the same AS, adds the domain; the
    // country file has no answer, so IPinfo's country.
    assert_eq!(
        enricher.lookup_mmdb(ip("1.0.0.1")),
        info(Some(15169), Some("Google Inc."), Some("google.com"), Some("AU"))
    );
    // GeoLite2-ASN has AS7018 without a name: IPinfo's name for the same AS fills it.
    assert_eq!(
        enricher.lookup_mmdb(ip("12.81.100.1")),
        info(Some(7018), Some("AT&T Services, Inc."), Some("att.com"), Some("US"))
    );
    // The two disagree on the AS: GeoLite2's stands, with no domain from the other AS.
    let sunrise = enricher.lookup_mmdb(ip("2001:1700::25"));
    assert_eq!(
        (sunrise.asn, sunrise.as_org.as_deref(), sunrise.as_domain),
        (Some(6730), Some("Sunrise Communications AG"), None)
    );
    assert_eq!(sunrise.country.as_deref(), Some("CH"));
    // The country file's answer stands over IPinfo's.
    assert_eq!(enricher.lookup_mmdb(ip("81.2.69.142")).country.as_deref(), Some("GB"));
    // Only IPinfo knows the address.
    assert_eq!(
        enricher.lookup_mmdb(ip("192.0.2.1")),
        info(Some(11377), Some("SendGrid, Inc."), Some("sendgrid.com"), Some("US"))
    );
}

#[test]
fn a_database_of_another_layout_as_ipinfo_gives_nothing_and_no_error() {
    // The GeoLite2-ASN file's records have none of IPinfo's fields.
    let config = EnrichConfig {
        offline: true,
        ipinfo_db: Some(mmdb("GeoLite2-ASN-Test.mmdb")),
        ..EnrichConfig::default()
    };
    let enricher = Enricher::new(&config).expect("enricher");
    assert!(enricher.lookup_mmdb(ip("1.0.0.1")).is_empty());

    let json = mmdb("GeoLite2-ASN-Test.json");
    let config = EnrichConfig { offline: true, ipinfo_db: Some(json.clone()), ..EnrichConfig::default() };
    let err = Enricher::new(&config).err().expect("not an mmdb file");
    assert!(err.to_string().contains(&json.display().to_string()), "{err}");
}

#[tokio::test]
async fn ipinfo_fields_land_in_sources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db_with_sources(dir.path(), &["192.0.2.7", "198.51.100.9", "100.64.0.1"]);
    let config =
        EnrichConfig { offline: true, ipinfo_db: Some(ipinfo_lite(dir.path())), ..EnrichConfig::default() };
    let enricher = Enricher::new(&config).expect("enricher");
    assert_eq!(enricher.enrich_pending(&db, 100).await.expect("enrich"), 3);
    assert_eq!(
        row(&db, "192.0.2.7"),
        Row { country: Some("US".into()), ..unresolved(Some(11377), Some("SendGrid, Inc.")) }
    );
    assert_eq!(row(&db, "198.51.100.9"), Row { country: Some("CN".into()), ..unresolved(None, None) });
    assert_eq!(row(&db, "100.64.0.1"), unresolved(None, None));
    // The service is named and stored with what named it; an ESP named by its network
    // is the one the sender model trusts.
    let conn = rusqlite::Connection::open(&db).expect("open");
    let service = |ip: &str| -> (Option<String>, Option<String>, Option<String>) {
        conn.query_row("SELECT service, service_kind, service_by FROM sources WHERE ip = ?1", [ip], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("row")
    };
    assert_eq!(service("192.0.2.7"), (Some("SendGrid".into()), Some("esp".into()), Some("as_domain".into())));
    assert_eq!(service("100.64.0.1"), (None, None, None));
    let rules = ruaflow_processor::detect::DetectConfig::default();
    let (status, _) = ruaflow_processor::sqlite::sender_status(&conn, &rules, "example.com", "192.0.2.7", 0)
        .expect("status");
    assert_eq!(status, ruaflow_processor::sender::Status::Unknown, "never seen for the domain: no status");
}

// ---------------------------------------------------------------- service identification

/// From an address to its service: what the IP database says, then the map.
#[test]
fn services_are_identified_from_ipinfo_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config =
        EnrichConfig { offline: true, ipinfo_db: Some(ipinfo_lite(dir.path())), ..EnrichConfig::default() };
    let enricher = Enricher::new(&config).expect("enricher");
    let services = config.service_map().expect("built-in map");
    let identify = |text: &str, ptr: Option<&str>| {
        let found = enricher.lookup_mmdb(ip(text));
        services
            .identify(ptr, found.as_domain.as_deref(), found.asn, found.as_org.as_deref())
            .map(|f| (f.service.name.clone(), f.service.kind, f.by))
    };
    assert_eq!(identify("192.0.2.1", None), Some(("SendGrid".into(), ServiceKind::Esp, MatchedBy::AsDomain)));
    // Google's network without a Gmail PTR name is hosting; with one, Gmail.
    assert_eq!(identify("1.0.0.1", None), Some(("Google".into(), ServiceKind::Hosting, MatchedBy::AsDomain)));
    let gmail = identify("1.0.0.1", ptr_base("mail-sor-f41.google.com").as_deref());
    assert_eq!(
        gmail,
        Some(("Google Workspace / Gmail".into(), ServiceKind::MailboxProvider, MatchedBy::Ptr))
    );
    assert_eq!(identify("198.51.100.9", None), None);
}

/// The file a user points `[enrich] services` at: parsedmarc's community map, as
/// `bench/peer-setup` installs it (tests/run does). Read, not copied.
#[test]
fn parsedmarc_community_map_loads() {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/.venv/lib");
    let map_file = std::fs::read_dir(&venv)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|python| python.path().join("site-packages/parsedmarc/resources/maps/base_reverse_dns_map.csv"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!("parsedmarc's base_reverse_dns_map.csv is not under {}: run bench/peer-setup (tests/run does)", venv.display())
        });
    let map = ServiceMap::load(std::slice::from_ref(&map_file)).unwrap_or_else(|e| panic!("{e}"));
    let builtin = ServiceMap::builtin();
    assert!(map.len() > builtin.len() + 1_000, "{} services", map.len());

    let text = std::fs::read_to_string(&map_file).expect("read");
    let added = ServiceMap::builtin().add_csv(&map_file, &text).expect("loads");
    assert!(added > 10_000, "{added} rows");
    // Its type words map onto the kinds.
    for kind in [
        ServiceKind::MailboxProvider,
        ServiceKind::Esp,
        ServiceKind::SecurityGateway,
        ServiceKind::Isp,
        ServiceKind::Hosting,
        ServiceKind::Other,
    ] {
        assert!(map.services().iter().any(|s| s.kind == kind), "no {kind} service");
    }
    // The big names resolve from their PTR domains, whichever map names them.
    for (ptr, kind) in [
        ("amazonses.com", ServiceKind::Esp),
        ("pphosted.com", ServiceKind::SecurityGateway),
        ("sendgrid.net", ServiceKind::Esp),
    ] {
        let found = map.identify(Some(ptr), None, None, None).unwrap_or_else(|| panic!("{ptr} unknown"));
        assert_eq!((found.by, found.service.kind), (MatchedBy::Ptr, kind), "{ptr}: {:?}", found.service);
    }
}

// ---------------------------------------------------------------- rDNS against dnsmasq

#[tokio::test]
async fn rdns_answers_land_in_sources() {
    let dns = Dnsmasq::start(
        &[("192.0.2.25", "mail-1.outbound.example.co.uk")],
        "2001:db8::25 MX6.Mail.Example.org\n",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db_with_sources(dir.path(), &["192.0.2.25", "2001:db8::25", "198.51.100.7", "1.0.0.1"]);
    let config = EnrichConfig { asn_db: Some(mmdb("GeoLite2-ASN-Test.mmdb")), ..online(dns.addr) };
    let enricher = Enricher::new(&config).expect("enricher");

    let updated = enricher.enrich_pending(&db, 100).await.expect("enrich");
    assert_eq!(updated, 4, "dnsmasq log:\n{}", read(&dns.log));

    assert_eq!(
        row(&db, "192.0.2.25"),
        Row {
            ptr: Some("mail-1.outbound.example.co.uk".into()),
            ptr_base: Some("example.co.uk".into()),
            asn: None,
            as_org: None,
            country: None,
            resolved: true,
        }
    );
    let v6 = row(&db, "2001:db8::25");
    assert_eq!(v6.ptr.as_deref(), Some("mx6.mail.example.org"));
    assert_eq!(v6.ptr_base.as_deref(), Some("example.org"));
    assert!(v6.resolved);
    // NXDOMAIN is an answer: resolved, with no name.
    assert_eq!(row(&db, "198.51.100.7"), Row { resolved: true, ..unresolved(None, None) });
    assert_eq!(row(&db, "1.0.0.1"), Row { resolved: true, ..unresolved(Some(15169), Some("Google Inc.")) });

    // Answered rows are not selected again.
    assert_eq!(enricher.enrich_pending(&db, 100).await.expect("enrich"), 0);

    // Definitive answers are cached in memory: with the nameserver gone they still come.
    drop(dns);
    assert_eq!(
        enricher.lookup_ptr(ip("192.0.2.25")).await,
        PtrLookup::Answer(Some("mail-1.outbound.example.co.uk".into()))
    );
    assert_eq!(enricher.lookup_ptr(ip("198.51.100.7")).await, PtrLookup::Answer(None));
}

#[tokio::test]
async fn limit_bounds_the_rows_enriched() {
    let dns = Dnsmasq::start(&[], "");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db_with_sources(dir.path(), &["198.51.100.1", "198.51.100.2", "198.51.100.3"]);
    let enricher = Enricher::new(&online(dns.addr)).expect("enricher");
    assert_eq!(enricher.enrich_pending(&db, 2).await.expect("enrich"), 2);
    assert_eq!(enricher.enrich_pending(&db, 2).await.expect("enrich"), 1);
    assert_eq!(enricher.enrich_pending(&db, 2).await.expect("enrich"), 0);
    for text in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        assert!(row(&db, text).resolved, "{text}");
    }
}

/// A resolver that answers nothing stops the round: the first round's addresses are
/// asked, the rest wait for the next attempt, and the call returns in about one timeout.
#[tokio::test]
async fn a_silent_resolver_is_given_up_on_after_one_round() {
    let silent = SilentNameserver::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let ips: Vec<String> = (0..200)
        .map(|i| format!("198.51.100.{}", i % 250 + 1))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let refs: Vec<&str> = ips.iter().map(String::as_str).collect();
    let db = db_with_sources(dir.path(), &refs);
    let config = EnrichConfig { lookup_timeout_ms: 300, max_concurrent_lookups: 64, ..online(silent.addr()) };
    let enricher = Enricher::new(&config).expect("enricher");
    enricher.enrich_pending(&db, 1000).await.expect("enrich");
    let asked = silent.queries();
    assert!(
        (1..=64 * 3).contains(&asked),
        "{asked} queries: only the first round is asked (resolvers retry a little)"
    );
    // None is asked again before its retry time.
    assert_eq!(enricher.enrich_pending(&db, 1000).await.expect("enrich"), 0);
    assert_eq!(silent.queries(), 0);
}

#[tokio::test]
async fn dead_nameserver_times_out_and_is_retried_later() {
    let silent = SilentNameserver::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db_with_sources(dir.path(), &["192.0.2.9", "1.0.0.1"]);
    let config = EnrichConfig {
        lookup_timeout_ms: 300,
        asn_db: Some(mmdb("GeoLite2-ASN-Test.mmdb")),
        ..online(silent.addr())
    };
    let enricher = Enricher::new(&config).expect("enricher");

    let started = Instant::now();
    // Both rows get their MMDB fields; neither gets an rDNS answer.
    assert_eq!(enricher.enrich_pending(&db, 100).await.expect("enrich"), 2);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "lookups took {elapsed:?}");
    assert!(silent.queries() >= 2, "the nameserver was asked");
    assert_eq!(row(&db, "192.0.2.9"), unresolved(None, None));
    assert_eq!(row(&db, "1.0.0.1"), unresolved(Some(15169), Some("Google Inc.")));

    // Within the retry-after window the failed addresses are neither selected nor asked.
    assert_eq!(enricher.enrich_pending(&db, 100).await.expect("enrich"), 0);
    assert_eq!(enricher.lookup_ptr(ip("192.0.2.9")).await, PtrLookup::Skipped);
    assert_eq!(silent.queries(), 0, "a deferred address was asked again");

    // Once the window has passed they are asked again.
    let config = EnrichConfig { retry_after_secs: 0, ..config };
    let enricher = Enricher::new(&config).expect("enricher");
    enricher.enrich_pending(&db, 100).await.expect("enrich");
    assert!(silent.queries() >= 2, "failed addresses are retried");
    assert_eq!(enricher.lookup_ptr(ip("192.0.2.9")).await, PtrLookup::Failed);
    assert!(!row(&db, "192.0.2.9").resolved);
}

#[tokio::test]
async fn concurrent_lookups_are_bounded() {
    let silent = SilentNameserver::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db_with_sources(dir.path(), &["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
    let config = EnrichConfig { lookup_timeout_ms: 200, max_concurrent_lookups: 1, ..online(silent.addr()) };
    let enricher = Enricher::new(&config).expect("enricher");
    let started = Instant::now();
    enricher.enrich_pending(&db, 100).await.expect("enrich");
    // One at a time, each waiting out its timeout.
    assert!(started.elapsed() >= Duration::from_millis(600), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn offline_mode_sends_no_queries() {
    let silent = SilentNameserver::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db_with_sources(dir.path(), &["1.0.0.1", "192.0.2.77"]);
    let config =
        EnrichConfig { offline: true, asn_db: Some(mmdb("GeoLite2-ASN-Test.mmdb")), ..online(silent.addr()) };
    let enricher = Enricher::new(&config).expect("enricher");

    // MMDB fields are filled offline; no row is marked resolved.
    assert_eq!(enricher.enrich_pending(&db, 100).await.expect("enrich"), 2);
    assert_eq!(row(&db, "1.0.0.1"), unresolved(Some(15169), Some("Google Inc.")));
    assert_eq!(row(&db, "192.0.2.77"), unresolved(None, None));
    assert_eq!(enricher.lookup_ptr(ip("192.0.2.77")).await, PtrLookup::Skipped);
    // Rows already given their MMDB fields are not rewritten on every call.
    assert_eq!(enricher.enrich_pending(&db, 100).await.expect("enrich"), 0);
    assert_eq!(silent.queries(), 0, "offline mode sent a query");

    // Offline without databases there is nothing to do, and the database is not touched.
    let bare = Enricher::new(&EnrichConfig { offline: true, ..EnrichConfig::default() }).expect("enricher");
    assert_eq!(bare.enrich_pending(&dir.path().join("absent.db"), 100).await.expect("no-op"), 0);
}
