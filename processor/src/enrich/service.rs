//! Service identification: which mail service is behind a source address.
//!
//! Input: what enrichment knows about an address — the PTR name (or its registrable
//! domain), the AS's domain, the AS number and the AS name. Output: the [`Service`]
//! (name and [`ServiceKind`]) of the first key that matches, tried in that order, and
//! which signal matched ([`MatchedBy`]). Pure and synchronous: no IO after loading.
//!
//! The map is the built-in one (`services.toml` beside this file, facts curated for
//! this project) plus optional user files in the `base_reverse_dns,name,type` CSV layout
//! (`[enrich] services`); a user entry replaces a built-in one with the same key, a
//! later file an earlier one. Invariant: a user file is read within [`MAX_FILE_BYTES`]
//! and [`MAX_FILE_ROWS`], and every row is either used, skipped with a warning naming
//! the file and line, or refused with an error naming them — never guessed.

mod csv;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use tracing::info;

pub use csv::{MAX_FILE_BYTES, MAX_FILE_ROWS};

/// The built-in map, compiled in.
const BUILTIN: &str = include_str!("services.toml");

/// What a service does, as far as sending mail goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    /// Hosts people's and companies' mailboxes: Gmail and Google Workspace, Microsoft
    /// 365, Yahoo, Zoho Mail, Fastmail.
    MailboxProvider,
    /// Sends for its customers' domains: email service providers, marketing and
    /// transactional platforms, CRM and help desks (Amazon SES, SendGrid, Mailchimp,
    /// Salesforce, Zendesk).
    Esp,
    /// Forwards or redistributes mail: forwarding and alias services, mailing lists.
    Forwarder,
    /// Gives internet access; mail from its addresses is from its customers' machines.
    Isp,
    /// Clouds and web hosts: the machines are their customers'.
    Hosting,
    /// Filters its customers' mail in and out (Proofpoint, Mimecast).
    SecurityGateway,
    /// Anything else: a platform mailing as itself, or a type word not known here.
    Other,
}

impl ServiceKind {
    /// The stable lower-case name (`mailbox_provider`, `esp`, …), for storage and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::MailboxProvider => "mailbox_provider",
            ServiceKind::Esp => "esp",
            ServiceKind::Forwarder => "forwarder",
            ServiceKind::Isp => "isp",
            ServiceKind::Hosting => "hosting",
            ServiceKind::SecurityGateway => "security_gateway",
            ServiceKind::Other => "other",
        }
    }

    /// The kind a user file's `type` word stands for, case-insensitively: this
    /// module's own names, and the words of parsedmarc's community map (`Email
    /// Provider`, `Marketing`, `SaaS`, `Email Security`, `ISP`, `Web Host`, `IaaS`,
    /// `PaaS`). `SaaS` counts as an ESP: a platform that shows up in a domain's DMARC
    /// reports is one mailing as that domain (Amazon SES is `SaaS` there). Any other
    /// word (an industry such as `Finance`) is [`ServiceKind::Other`].
    pub fn from_label(label: &str) -> Self {
        let words: Vec<String> = words(label).collect();
        match words.join(" ").as_str() {
            "mailbox provider" | "mailbox" | "email provider" | "mail provider" => {
                ServiceKind::MailboxProvider
            }
            "esp"
            | "email service provider"
            | "marketing"
            | "email marketing"
            | "bulk"
            | "bulk sender"
            | "transactional"
            | "saas" => ServiceKind::Esp,
            "forwarder" | "forwarding" | "mailing list" | "list" => ServiceKind::Forwarder,
            "isp" | "internet service provider" => ServiceKind::Isp,
            "hosting" | "web host" | "web hosting" | "iaas" | "paas" | "cloud" => ServiceKind::Hosting,
            "security gateway" | "email security" => ServiceKind::SecurityGateway,
            _ => ServiceKind::Other,
        }
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A named mail service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Service {
    /// The name people know it by (`Amazon SES`, `Microsoft 365`).
    pub name: String,
    /// What it does.
    pub kind: ServiceKind,
}

/// Which signal named the service, strongest first. A PTR name is chosen by whoever
/// runs the address and is not forward-confirmed here; the AS fields come from the IP
/// databases and name the network, not the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchedBy {
    /// The PTR name, or a domain above it.
    Ptr,
    /// The AS's domain (IPinfo Lite's `as_domain`).
    AsDomain,
    /// The AS number.
    Asn,
    /// Words of the AS name.
    AsName,
}

impl MatchedBy {
    /// The stored word: `ptr`, `as_domain`, `asn`, `as_name`.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::Ptr => "ptr",
            MatchedBy::AsDomain => "as_domain",
            MatchedBy::Asn => "asn",
            MatchedBy::AsName => "as_name",
        }
    }
}

/// The answer of [`ServiceMap::identify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identified<'a> {
    /// The service.
    pub service: &'a Service,
    /// What matched.
    pub by: MatchedBy,
}

/// Why a service map could not be loaded. Every message names the file, and the line
/// where there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceMapError {
    /// The file could not be opened or read.
    #[error("cannot read service map {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("service map {} is larger than {max_bytes} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The cap.
        max_bytes: u64,
    },
    /// The file has more rows than [`MAX_FILE_ROWS`].
    #[error("service map {} has more than {max_rows} rows", path.display())]
    TooManyRows {
        /// The file.
        path: PathBuf,
        /// The cap.
        max_rows: usize,
    },
    /// A row means nothing usable, or contradicts an earlier row of the same file.
    #[error("service map {}:{line}: {reason}", path.display())]
    Row {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Services by key. Build it once ([`ServiceMap::load`]) and share it; lookups borrow.
#[derive(Debug, Clone)]
pub struct ServiceMap {
    services: Vec<Service>,
    /// The index of each service in `services`, to share one entry between keys.
    index: HashMap<Service, usize>,
    ptr: HashMap<String, usize>,
    as_domain: HashMap<String, usize>,
    asn: HashMap<u32, usize>,
    /// Word sequences of AS names; the longest are tried first.
    as_name: Vec<(Vec<String>, usize)>,
}

impl ServiceMap {
    /// The built-in map alone.
    pub fn builtin() -> Self {
        // The file is compiled in and checked by the tests below: a failure here is a
        // defect of the build, not of anything a user did.
        parse_builtin(BUILTIN).unwrap_or_else(|e| panic!("the built-in service map is invalid: {e}"))
    }

    /// The built-in map with the user's CSV files over it, in order: a later file's
    /// key replaces an earlier file's or the built-in one's. An error names the file
    /// and line.
    pub fn load(user_files: &[PathBuf]) -> Result<Self, ServiceMapError> {
        let mut map = Self::builtin();
        for path in user_files {
            let text = csv::read_capped(path)?;
            let added = map.add_csv(path, &text)?;
            info!(path = %path.display(), entries = added, "service map loaded");
        }
        Ok(map)
    }

    /// Adds the rows of one user file (`text`, read from `path`, which errors and
    /// warnings name). A row's domain matches both PTR names and AS domains, as the
    /// community map's users expect. Returns the number of keys added or replaced.
    pub fn add_csv(&mut self, path: &Path, text: &str) -> Result<usize, ServiceMapError> {
        let rows = csv::parse(path, text)?;
        let added = rows.len();
        for row in rows {
            let id = self.intern(row.service);
            self.ptr.insert(row.domain.clone(), id);
            self.as_domain.insert(row.domain, id);
        }
        Ok(added)
    }

    /// The service behind an address, from the first of these that names one:
    /// the PTR name (`ptr`: the full name or its registrable domain; a name under a
    /// listed domain matches it), the AS's domain, the AS number, the AS name (whole
    /// words, in order). Case-insensitive; a trailing dot is ignored. `None` when
    /// nothing matches. Pass the full PTR name when there is one: keys below a
    /// registrable domain (a user's `relay.example.org`) then match too.
    ///
    /// ```
    /// use ruaflow_processor::enrich::{MatchedBy, ServiceKind, ServiceMap};
    ///
    /// let services = ServiceMap::builtin();
    /// let found = services
    ///     .identify(Some("mail-dm6nam12on2101.outbound.protection.outlook.com"), None, Some(8075), None)
    ///     .expect("a known service");
    /// assert_eq!(found.service.name, "Microsoft 365");
    /// assert_eq!((found.service.kind, found.by), (ServiceKind::MailboxProvider, MatchedBy::Ptr));
    /// ```
    pub fn identify(
        &self,
        ptr: Option<&str>,
        as_domain: Option<&str>,
        asn: Option<u32>,
        as_name: Option<&str>,
    ) -> Option<Identified<'_>> {
        let found = |id: usize, by| Identified { service: &self.services[id], by };
        if let Some(id) = ptr.and_then(|name| lookup_domain(&self.ptr, name)) {
            return Some(found(id, MatchedBy::Ptr));
        }
        if let Some(id) = as_domain.and_then(|name| lookup_domain(&self.as_domain, name)) {
            return Some(found(id, MatchedBy::AsDomain));
        }
        if let Some(&id) = asn.and_then(|asn| self.asn.get(&asn)) {
            return Some(found(id, MatchedBy::Asn));
        }
        let name: Vec<String> = words(as_name?).collect();
        self.as_name
            .iter()
            .find(|(pattern, _)| name.windows(pattern.len()).any(|window| window == pattern.as_slice()))
            .map(|&(_, id)| found(id, MatchedBy::AsName))
    }

    /// Number of distinct services.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// True when the map names no service (never for a loaded map: the built-in one
    /// is always there).
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// The distinct services, in the order they were added.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    fn empty() -> Self {
        Self {
            services: Vec::new(),
            index: HashMap::new(),
            ptr: HashMap::new(),
            as_domain: HashMap::new(),
            asn: HashMap::new(),
            as_name: Vec::new(),
        }
    }

    fn intern(&mut self, service: Service) -> usize {
        if let Some(&id) = self.index.get(&service) {
            return id;
        }
        self.services.push(service.clone());
        self.index.insert(service, self.services.len() - 1);
        self.services.len() - 1
    }
}

impl Default for ServiceMap {
    /// The built-in map.
    fn default() -> Self {
        Self::builtin()
    }
}

/// The `id` of `name` or of the nearest domain above it (`a.b.example.com`,
/// `b.example.com`, `example.com`, `com`).
fn lookup_domain(table: &HashMap<String, usize>, name: &str) -> Option<usize> {
    let name = name.trim().trim_end_matches('.').to_lowercase();
    let mut rest = name.as_str();
    loop {
        if let Some(&id) = table.get(rest) {
            return Some(id);
        }
        rest = rest.split_once('.')?.1;
    }
}

/// The lower-case alphanumeric words of `text` (`AMAZON-02` → `amazon`, `02`).
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

/// A domain as a key: lower case, no trailing dot, labels of letters, digits, `-` and
/// `_` (non-ASCII letters are kept as they are: they match only names written the same
/// way, never their `xn--` form). `Err` says what is wrong.
fn domain_key(raw: &str) -> Result<String, String> {
    let key = raw.trim().trim_end_matches('.').to_lowercase();
    if key.is_empty() {
        return Err("no domain".into());
    }
    if key.len() > 253 {
        return Err(format!("`{raw}` is longer than a domain name can be"));
    }
    for label in key.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("`{raw}` is not a domain name (empty or over-long label)"));
        }
        if !label.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("`{raw}` is not a domain name"));
        }
    }
    Ok(key)
}

/// One `[[service]]` of the built-in file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BuiltinService {
    name: String,
    kind: ServiceKind,
    #[serde(default)]
    ptr: Vec<String>,
    #[serde(default)]
    as_domain: Vec<String>,
    #[serde(default)]
    asn: Vec<u32>,
    #[serde(default)]
    as_name: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BuiltinFile {
    service: Vec<BuiltinService>,
}

/// Parses the built-in file strictly: every key a lower-case domain or word list as
/// written, at most once per column, every service with at least one key.
fn parse_builtin(text: &str) -> Result<ServiceMap, String> {
    let file: BuiltinFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut map = ServiceMap::empty();
    for entry in file.service {
        let name = entry.name.trim();
        if name.is_empty() || name != entry.name {
            return Err(format!("service name `{}` is empty or padded", entry.name));
        }
        if entry.ptr.is_empty()
            && entry.as_domain.is_empty()
            && entry.asn.is_empty()
            && entry.as_name.is_empty()
        {
            return Err(format!("{name}: no key"));
        }
        let id = map.intern(Service { name: name.to_owned(), kind: entry.kind });
        for (column, keys) in [("ptr", &entry.ptr), ("as_domain", &entry.as_domain)] {
            let table = if column == "ptr" { &mut map.ptr } else { &mut map.as_domain };
            for key in keys {
                if domain_key(key).as_deref() != Ok(key.as_str()) {
                    return Err(format!("{name}: {column} `{key}` is not a lower-case domain"));
                }
                if table.insert(key.clone(), id).is_some() {
                    return Err(format!("{column} `{key}` is listed twice"));
                }
            }
        }
        for &asn in &entry.asn {
            if map.asn.insert(asn, id).is_some() {
                return Err(format!("asn {asn} is listed twice"));
            }
        }
        for pattern in &entry.as_name {
            let pattern_words: Vec<String> = words(pattern).collect();
            if pattern_words.is_empty() || pattern_words.join(" ") != *pattern {
                return Err(format!("{name}: as_name `{pattern}` is not lower-case words"));
            }
            if map.as_name.iter().any(|(existing, _)| *existing == pattern_words) {
                return Err(format!("as_name `{pattern}` is listed twice"));
            }
            map.as_name.push((pattern_words, id));
        }
    }
    // Longest first, so `rocket science group` is tried before a one-word pattern;
    // the sort is stable, so equal lengths keep the file's order.
    map.as_name.sort_by_key(|(pattern, _)| std::cmp::Reverse(pattern.len()));
    Ok(map)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn name_of(found: Option<Identified<'_>>) -> Option<(&str, ServiceKind, MatchedBy)> {
        found.map(|f| (f.service.name.as_str(), f.service.kind, f.by))
    }

    fn by_ptr<'a>(map: &'a ServiceMap, ptr: &str) -> Option<(&'a str, ServiceKind)> {
        map.identify(Some(ptr), None, None, None).map(|f| (f.service.name.as_str(), f.service.kind))
    }

    #[test]
    fn the_builtin_map_loads_with_about_150_services_and_unique_keys() {
        let map = ServiceMap::builtin();
        assert!((140..=260).contains(&map.len()), "{} services", map.len());
        // Duplicate keys are refused by the parser; prove it sees them.
        let doubled =
            format!("{BUILTIN}\n[[service]]\nname = \"Again\"\nkind = \"esp\"\nptr = [\"amazonses.com\"]\n");
        let err = parse_builtin(&doubled).expect_err("a duplicate ptr key is refused");
        assert!(err.contains("amazonses.com"), "{err}");
        let doubled = format!("{BUILTIN}\n[[service]]\nname = \"Again\"\nkind = \"esp\"\nasn = [11377]\n");
        assert!(parse_builtin(&doubled).is_err(), "a duplicate asn is refused");
        // Every kind is used, and names are distinct.
        let kinds: HashSet<ServiceKind> = map.services().iter().map(|s| s.kind).collect();
        assert_eq!(kinds.len(), 7, "{kinds:?}");
        let names: HashSet<&str> = map.services().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), map.len(), "two services share a name");
    }

    #[test]
    fn known_services_resolve_from_their_ptr_names() {
        let map = ServiceMap::builtin();
        use ServiceKind::*;
        assert_eq!(by_ptr(&map, "google.com"), Some(("Google Workspace / Gmail", MailboxProvider)));
        assert_eq!(
            by_ptr(&map, "mail-sor-f41.google.com"),
            Some(("Google Workspace / Gmail", MailboxProvider))
        );
        assert_eq!(by_ptr(&map, "amazonses.com"), Some(("Amazon SES", Esp)));
        assert_eq!(by_ptr(&map, "a8-33.smtp-out.amazonses.com"), Some(("Amazon SES", Esp)));
        // The registrable domain of mail-xyz.outbound.protection.outlook.com.
        assert_eq!(by_ptr(&map, "outlook.com"), Some(("Microsoft 365", MailboxProvider)));
        assert_eq!(
            by_ptr(&map, "mail-dm6nam12on2101.outbound.protection.outlook.com"),
            Some(("Microsoft 365", MailboxProvider))
        );
        assert_eq!(by_ptr(&map, "mx0a-00123456.pphosted.com"), Some(("Proofpoint", SecurityGateway)));
        assert_eq!(by_ptr(&map, "mail180-5.suw21.mcsv.net"), Some(("Mailchimp", Esp)));
        assert_eq!(by_ptr(&map, "rsgsv.net"), Some(("Mailchimp", Esp)));
        assert_eq!(
            by_ptr(&map, "mail135-8.atl141.mandrillapp.com"),
            Some(("Mailchimp Transactional (Mandrill)", Esp))
        );
        assert_eq!(by_ptr(&map, "o1.ptr2410.sendgrid.net"), Some(("SendGrid", Esp)));
        assert_eq!(by_ptr(&map, "mta-1.mtasv.net"), Some(("Postmark", Esp)));
        assert_eq!(by_ptr(&map, "smtp10.mta.salesforce.com"), Some(("Salesforce", Esp)));
        assert_eq!(by_ptr(&map, "us-smtp-outbound-1.mimecast.com"), Some(("Mimecast", SecurityGateway)));
        assert_eq!(by_ptr(&map, "googlegroups.com"), Some(("Google Groups", Forwarder)));
        assert_eq!(by_ptr(&map, "c-73-1-2-3.hsd1.fl.comcast.net"), Some(("Comcast Xfinity", Isp)));
        assert_eq!(
            by_ptr(&map, "ec2-3-1-2-3.compute-1.amazonaws.com"),
            Some(("Amazon Web Services", Hosting))
        );
        // Case and a trailing dot do not matter; a look-alike domain does not match.
        assert_eq!(by_ptr(&map, "O1.PTR2410.SendGrid.NET."), Some(("SendGrid", Esp)));
        assert_eq!(by_ptr(&map, "notsendgrid.net"), None);
        assert_eq!(by_ptr(&map, "sendgrid.net.example.org"), None);
        assert_eq!(by_ptr(&map, "example.org"), None);
        assert_eq!(by_ptr(&map, ""), None);
    }

    #[test]
    fn signals_are_tried_in_order_ptr_as_domain_asn_as_name() {
        let map = ServiceMap::builtin();
        use MatchedBy::*;
        use ServiceKind::*;
        // Gmail's PTR name wins over Google's AS, whose kind is hosting.
        let gmail = map.identify(Some("google.com"), Some("google.com"), Some(15169), Some("Google LLC"));
        assert_eq!(name_of(gmail), Some(("Google Workspace / Gmail", MailboxProvider, Ptr)));
        // No PTR match: the AS domain.
        let vm = map.identify(Some("vm.example.net"), Some("google.com"), Some(15169), Some("Google LLC"));
        assert_eq!(name_of(vm), Some(("Google", Hosting, AsDomain)));
        // No domain at all: the AS number, then the AS name.
        assert_eq!(name_of(map.identify(None, None, Some(11377), Some("x"))), Some(("SendGrid", Esp, Asn)));
        assert_eq!(
            name_of(map.identify(None, Some("example.net"), Some(64500), Some("SENDGRID"))),
            Some(("SendGrid", Esp, AsName))
        );
        assert_eq!(
            name_of(map.identify(None, None, None, Some("AMAZON-02"))),
            Some(("Amazon Web Services", Hosting, AsName))
        );
        assert_eq!(
            name_of(map.identify(None, None, None, Some("The Rocket Science Group, LLC"))),
            Some(("Mailchimp", Esp, AsName))
        );
        // Whole words only: `amazonas` is not `amazon`, `Telecom Rocket` is not a sequence.
        assert_eq!(name_of(map.identify(None, None, None, Some("Amazonas Telecom"))), None);
        assert_eq!(name_of(map.identify(None, None, None, Some("Rocket Group Science"))), None);
        assert_eq!(name_of(map.identify(None, None, None, None)), None);
    }

    #[test]
    fn kind_words_of_user_files() {
        use ServiceKind::*;
        for (word, kind) in [
            ("Email Provider", MailboxProvider),
            ("mailbox_provider", MailboxProvider),
            ("Marketing", Esp),
            ("ESP", Esp),
            ("Email Security", SecurityGateway),
            ("security_gateway", SecurityGateway),
            ("ISP", Isp),
            ("Web Host", Hosting),
            ("IaaS", Hosting),
            ("PaaS", Hosting),
            ("Mailing List", Forwarder),
            ("forwarder", Forwarder),
            ("Finance", Other),
            ("SaaS", Esp),
            ("MSP", Other),
            ("", Other),
        ] {
            assert_eq!(ServiceKind::from_label(word), kind, "{word:?}");
        }
        for kind in [MailboxProvider, Esp, Forwarder, Isp, Hosting, SecurityGateway, Other] {
            assert_eq!(ServiceKind::from_label(kind.as_str()), kind);
        }
    }

    #[test]
    fn user_entries_win_and_match_as_domains_too() {
        let mut map = ServiceMap::builtin();
        let csv = "base_reverse_dns,name,type\ngoogle.com,Google (ours),Email Provider\nexample-esp.net,Example ESP,Marketing\n";
        assert_eq!(map.add_csv(Path::new("mine.csv"), csv).expect("loads"), 2);
        assert_eq!(
            by_ptr(&map, "mail-sor-f41.google.com"),
            Some(("Google (ours)", ServiceKind::MailboxProvider))
        );
        let as_level = map.identify(None, Some("example-esp.net"), None, None);
        assert_eq!(name_of(as_level), Some(("Example ESP", ServiceKind::Esp, MatchedBy::AsDomain)));
        // A later file replaces an earlier one's key.
        map.add_csv(Path::new("local.csv"), "example-esp.net,Example ESP EU,Marketing\n").expect("loads");
        assert_eq!(by_ptr(&map, "o1.example-esp.net"), Some(("Example ESP EU", ServiceKind::Esp)));
        // Built-in keys the user did not touch still answer.
        assert_eq!(by_ptr(&map, "amazonses.com"), Some(("Amazon SES", ServiceKind::Esp)));
    }

    #[test]
    fn load_reads_files_and_names_a_missing_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = dir.path().join("first.csv");
        let second = dir.path().join("second.csv");
        std::fs::write(&first, "example.net,First,ISP\n").expect("write");
        std::fs::write(&second, "example.net,Second,Web Host\n").expect("write");
        let map = ServiceMap::load(&[first.clone(), second]).expect("loads");
        assert_eq!(by_ptr(&map, "example.net"), Some(("Second", ServiceKind::Hosting)));
        assert_eq!(ServiceMap::load(&[]).expect("builtin").len(), ServiceMap::builtin().len());

        let missing = dir.path().join("missing.csv");
        let err = ServiceMap::load(&[first, missing.clone()]).expect_err("a missing file is an error");
        assert!(err.to_string().contains(&missing.display().to_string()), "{err}");
    }
}
