//! User service maps: CSV files in the `base_reverse_dns,name,type` layout of
//! parsedmarc's community map, or any file with those columns.
//!
//! Lenient on what real files hold: a header row (any column order) or none, CRLF line
//! ends, a UTF-8 byte order mark, quoted values with commas and doubled quotes, extra
//! columns, blank lines and `#` comments, a trailing dot on a domain, a missing or
//! unknown type word (then [`ServiceKind::Other`]). Strict on meaning: a row without a
//! domain or a name, a value that is not a domain, or a domain given two different
//! services in one file is an error naming the file and line. Names are repaired when
//! they are UTF-8 read as Latin-1 and lose their control characters. A single-label key
//! (`fujitsu`) is skipped with a warning: it would match every name under that
//! top-level domain.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use tracing::warn;

use super::{domain_key, Service, ServiceKind, ServiceMapError};

/// Largest user file read, in bytes. parsedmarc's community map is about 1.6 MB.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Most data rows read from one user file. parsedmarc's community map has about 40,000.
pub const MAX_FILE_ROWS: usize = 200_000;
/// Longest service name, in characters.
const MAX_NAME_CHARS: usize = 200;
/// Columns split per line; anything past them is ignored, so a line of commas costs no
/// more than this.
const MAX_FIELDS: usize = 32;
/// Skipped rows warned about one by one; the rest are counted in one warning.
const MAX_SKIP_WARNINGS: usize = 10;

/// One usable row.
pub(super) struct Row {
    pub(super) domain: String,
    pub(super) service: Service,
}

/// The file's text, at most [`MAX_FILE_BYTES`], without a byte order mark. Bytes that
/// are not UTF-8 are replaced (a name may come from a spreadsheet in another encoding),
/// with a warning naming the first line that has them.
pub(super) fn read_capped(path: &Path) -> Result<String, ServiceMapError> {
    let read_error = |source| ServiceMapError::Read { path: path.to_owned(), source };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(read_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ServiceMapError::TooLarge { path: path.to_owned(), max_bytes: MAX_FILE_BYTES });
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            let line = bytes[..valid].iter().filter(|&&b| b == b'\n').count() + 1;
            warn!(path = %path.display(), line, "service map is not UTF-8; undecodable bytes replaced");
            String::from_utf8_lossy(&bytes).into_owned()
        }
    };
    Ok(text.strip_prefix('\u{feff}').map(str::to_owned).unwrap_or(text))
}

/// Which column holds what.
#[derive(Clone, Copy)]
struct Columns {
    domain: usize,
    name: usize,
    kind: Option<usize>,
}

/// The rows of one file, checked. `path` only names the file in errors and warnings.
pub(super) fn parse(path: &Path, text: &str) -> Result<Vec<Row>, ServiceMapError> {
    let error = |line: usize, reason: String| ServiceMapError::Row { path: path.to_owned(), line, reason };
    let mut columns = Columns { domain: 0, name: 1, kind: Some(2) };
    let mut first = true;
    let mut rows: Vec<Row> = Vec::new();
    // Domain → (line, index in `rows`), to tell a repeated row from a contradiction.
    let mut seen: HashMap<String, (usize, usize)> = HashMap::new();
    let mut data_rows = 0usize;
    let mut skipped = 0usize;

    for (index, raw) in text.split('\n').enumerate() {
        let line = index + 1;
        let content = raw.strip_suffix('\r').unwrap_or(raw);
        if content.trim().is_empty() || content.trim_start().starts_with('#') {
            continue;
        }
        let fields = split_fields(content).map_err(|reason| error(line, reason))?;
        if std::mem::take(&mut first) {
            if let Some(header) = header(&fields) {
                columns = header.map_err(|reason| error(line, reason))?;
                continue;
            }
        }
        data_rows += 1;
        if data_rows > MAX_FILE_ROWS {
            return Err(ServiceMapError::TooManyRows { path: path.to_owned(), max_rows: MAX_FILE_ROWS });
        }
        let field = |i: usize| fields.get(i).map_or("", |f| f.trim());
        let (raw_domain, name) = (field(columns.domain), field(columns.name));
        if raw_domain.is_empty() && name.is_empty() {
            continue; // a row of empty cells, as spreadsheets leave
        }
        let domain = domain_key(raw_domain).map_err(|reason| error(line, reason))?;
        if !domain.contains('.') {
            skipped += 1;
            if skipped <= MAX_SKIP_WARNINGS {
                warn!(path = %path.display(), line, key = %domain, "service map row skipped: a single label would match a whole top-level domain");
            }
            continue;
        }
        let name = clean_name(name);
        if name.is_empty() {
            return Err(error(line, format!("no name for `{domain}`")));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(error(
                line,
                format!("the name for `{domain}` is longer than {MAX_NAME_CHARS} characters"),
            ));
        }
        let kind = columns.kind.map_or(ServiceKind::Other, |i| ServiceKind::from_label(field(i)));
        let service = Service { name, kind };
        if let Some(&(earlier, at)) = seen.get(&domain) {
            if rows[at].service != service {
                let was = &rows[at].service;
                return Err(error(
                    line,
                    format!("`{domain}` is already on line {earlier} as {} ({})", was.name, was.kind),
                ));
            }
            continue;
        }
        seen.insert(domain.clone(), (line, rows.len()));
        rows.push(Row { domain, service });
    }
    if skipped > MAX_SKIP_WARNINGS {
        warn!(path = %path.display(), skipped, "service map rows skipped in all: single labels");
    }
    Ok(rows)
}

/// A name fit to print: UTF-8 that was decoded as Latin-1 once too often is repaired
/// (parsedmarc's map has `Broadband \u{e2}\u{80}\u{93} …` for `Broadband – …`), and
/// control characters, which would reach terminals and logs, are dropped.
fn clean_name(name: &str) -> String {
    let latin1 = name.chars().all(|c| u32::from(c) <= 0xff) && name.chars().any(|c| u32::from(c) >= 0x80);
    let repaired =
        latin1.then(|| String::from_utf8(name.chars().map(|c| u32::from(c) as u8).collect()).ok()).flatten();
    let name = repaired.as_deref().unwrap_or(name);
    name.chars().filter(|c| !c.is_control()).collect::<String>().trim().to_owned()
}

/// `Some` when `fields` is a header row: it names a `name` column and a
/// `base_reverse_dns` (or `domain`) column; `type` is optional.
fn header(fields: &[String]) -> Option<Result<Columns, String>> {
    let position =
        |names: &[&str]| fields.iter().position(|f| names.contains(&f.trim().to_ascii_lowercase().as_str()));
    let domain = position(&["base_reverse_dns", "domain"]);
    let name = position(&["name"]);
    match (domain, name) {
        (Some(domain), Some(name)) => Some(Ok(Columns { domain, name, kind: position(&["type"]) })),
        (Some(_), None) => Some(Err("the header has no `name` column".into())),
        _ => None,
    }
}

/// Splits one line into at most [`MAX_FIELDS`] fields. A field may be quoted (`"a, b"`,
/// `""` for a quote inside); a quoted value must end on its line.
fn split_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    while fields.len() < MAX_FIELDS {
        while chars.next_if(|&c| c == ' ' || c == '\t').is_some() {}
        let mut field = String::new();
        let more = if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    None => return Err("a quoted value does not end on its line".into()),
                    Some('"') if chars.next_if_eq(&'"').is_some() => field.push('"'),
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            while chars.next_if(|&c| c == ' ' || c == '\t').is_some() {}
            match chars.next() {
                None => false,
                Some(',') => true,
                Some(c) => return Err(format!("`{c}` after a quoted value")),
            }
        } else {
            loop {
                match chars.next() {
                    None => break false,
                    Some(',') => break true,
                    Some(c) => field.push(c),
                }
            }
        };
        fields.push(field);
        if !more {
            break;
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<(String, String, ServiceKind)> {
        parse(Path::new("map.csv"), text)
            .expect("parses")
            .into_iter()
            .map(|r| (r.domain, r.service.name, r.service.kind))
            .collect()
    }

    fn row_error(text: &str) -> String {
        parse(Path::new("map.csv"), text).err().expect("an error").to_string()
    }

    #[test]
    fn splits_quoted_and_plain_fields() {
        let split = |line| split_fields(line).expect("splits");
        assert_eq!(split("a.com,Name,ISP"), ["a.com", "Name", "ISP"]);
        assert_eq!(split(r#"a.com,"Acme, Inc.",Web Host"#), ["a.com", "Acme, Inc.", "Web Host"]);
        assert_eq!(split(r#"a.com,"The ""Best"" Mail" , ESP"#), ["a.com", r#"The "Best" Mail"#, "ESP"]);
        assert_eq!(split("a.com,,"), ["a.com", "", ""]);
        assert_eq!(split(""), [""]);
        assert_eq!(split(&",".repeat(10_000)).len(), MAX_FIELDS);
        assert!(split_fields(r#"a.com,"Acme, Inc."#).is_err());
        assert!(split_fields(r#"a.com,"Acme" Inc,ISP"#).is_err());
    }

    #[test]
    fn lenient_on_what_real_files_hold() {
        let text = "base_reverse_dns,name,type\r\n\
                    # a comment\r\n\
                    \r\n\
                    Example.COM.,\"Example, Inc.\",Email Provider,extra,columns\r\n\
                    esp.example.net,Example ESP,Marketing\r\n\
                    bank.example.org,Example Bank,Finance\r\n\
                    notype.example.org,No Type\r\n\
                    ,,\r\n\
                    esp.example.net,Example ESP,Marketing\r\n\
                    добро.рф,Кириллица,ISP\r\n";
        assert_eq!(
            rows(text),
            [
                ("example.com".to_owned(), "Example, Inc.".to_owned(), ServiceKind::MailboxProvider),
                ("esp.example.net".into(), "Example ESP".into(), ServiceKind::Esp),
                ("bank.example.org".into(), "Example Bank".into(), ServiceKind::Other),
                ("notype.example.org".into(), "No Type".into(), ServiceKind::Other),
                ("добро.рф".into(), "Кириллица".into(), ServiceKind::Isp),
            ]
        );
    }

    #[test]
    fn header_columns_in_any_order_or_no_header() {
        assert_eq!(
            rows("type,name,base_reverse_dns\nISP,Example,example.net\n"),
            [("example.net".to_owned(), "Example".to_owned(), ServiceKind::Isp)]
        );
        assert_eq!(rows("example.net,Example,ISP\n").len(), 1);
        assert_eq!(rows("domain,name\nexample.net,Example\n")[0].2, ServiceKind::Other);
        assert!(
            row_error("base_reverse_dns,label,type\n").contains("map.csv:1: the header has no `name` column")
        );
    }

    #[test]
    fn names_are_repaired_and_cleaned() {
        assert_eq!(
            clean_name("Fast Broadband \u{e2}\u{80}\u{93} 21wan.net"),
            "Fast Broadband \u{2013} 21wan.net"
        );
        assert_eq!(clean_name("Caf\u{e9} Mail"), "Caf\u{e9} Mail");
        assert_eq!(clean_name("Evil\u{1b}[31m Red\u{7}"), "Evil[31m Red");
        assert_eq!(clean_name("Кириллица"), "Кириллица");
    }

    #[test]
    fn single_labels_are_skipped() {
        assert_eq!(rows("fujitsu,Fujitsu,Technology\ncom,Everyone,ISP\nexample.net,Example,ISP\n").len(), 1);
    }

    #[test]
    fn strict_on_meaning_with_file_and_line() {
        let cases = [
            ("example.net,,ISP\n", "map.csv:1: no name for `example.net`"),
            ("ok.net,Ok,ISP\nnot a domain,Name,ISP\n", "map.csv:2: `not a domain` is not a domain name"),
            ("a..b.net,Name,ISP\n", "map.csv:1: `a..b.net` is not a domain name"),
            ("mail/relay.net,Name,ISP\n", "map.csv:1: `mail/relay.net` is not a domain name"),
            ("ok.net,\"Unterminated,ISP\n", "map.csv:1: a quoted value does not end on its line"),
            ("ok.net,One,ISP\n\nok.net,Two,ISP\n", "map.csv:3: `ok.net` is already on line 1 as One (isp)"),
            (",Name Only,ISP\n", "map.csv:1: no domain"),
        ];
        for (text, expected) in cases {
            let err = row_error(text);
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        let long = format!("ok.net,{},ISP\n", "n".repeat(MAX_NAME_CHARS + 1));
        assert!(row_error("ok.net,\u{7}\u{1b} ,ISP\n").contains("map.csv:1: no name for `ok.net`"));
        assert!(row_error(&long).contains("map.csv:1: the name for `ok.net` is longer"));
    }

    #[test]
    fn caps_on_size_and_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = dir.path().join("big.csv");
        let file = std::fs::File::create(&big).expect("create");
        file.set_len(MAX_FILE_BYTES + 1).expect("grow");
        let err = read_capped(&big).expect_err("too large");
        assert!(matches!(err, ServiceMapError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("big.csv"), "{err}");

        let many: String = (0..=MAX_FILE_ROWS).map(|i| format!("h{i}.example.net,Example,ISP\n")).collect();
        let err = parse(Path::new("many.csv"), &many).err().expect("too many rows");
        assert!(matches!(err, ServiceMapError::TooManyRows { .. }), "{err}");
        let just_enough: String =
            (0..MAX_FILE_ROWS).map(|i| format!("h{i}.example.net,Example,ISP\n")).collect();
        assert_eq!(parse(Path::new("ok.csv"), &just_enough).expect("at the cap").len(), MAX_FILE_ROWS);
    }

    #[test]
    fn undecodable_bytes_are_replaced_and_a_bom_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("latin1.csv");
        std::fs::write(&path, b"\xef\xbb\xbfexample.net,Caf\xe9 Mail,Email Provider\n").expect("write");
        let text = read_capped(&path).expect("reads");
        assert_eq!(text, "example.net,Caf\u{fffd} Mail,Email Provider\n");
    }
}
