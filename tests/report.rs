//! `ruaflow report` and `ruaflow alerts` end to end: a store is built with
//! `ruaflow run --once` from ../shared/corpus plus a hostile report written here, and
//! each view is checked against figures computed independently from
//! `ruaflow parse --json` on the same inputs.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A reporter name that must never reach a page as markup.
const HOSTILE_ORG: &str = "<script>alert(1)</script>";
/// A DKIM selector and an alert summary with markup in them, for the same reason.
const HOSTILE_SELECTOR: &str = "sel\"><svg onload=alert(2)>";
const HOSTILE_SUMMARY: &str = "flood from <img src=x onerror=alert(3)> & 'friends'";

/// A DMARC report from a hostile reporter (XML-escaped here, so it parses and the
/// store holds the raw markup).
fn hostile_report() -> String {
    let esc =
        |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    format!(
        r#"<?xml version="1.0"?>
<feedback>
  <report_metadata><org_name>{org}</org_name><email>x@hostile.example</email>
    <report_id>hostile-1</report_id>
    <date_range><begin>1718150400</begin><end>1718236799</end></date_range></report_metadata>
  <policy_published><domain>hostile.example</domain><p>reject</p></policy_published>
  <record><row><source_ip>198.51.100.7</source_ip><count>42</count>
    <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>hostile.example</header_from></identifiers>
    <auth_results><dkim><domain>hostile.example</domain><selector>{sel}</selector><result>pass</result></dkim>
      <spf><domain>elsewhere.example</domain><result>fail</result></spf></auth_results></record>
</feedback>
"#,
        org = esc(HOSTILE_ORG),
        sel = esc(HOSTILE_SELECTOR)
    )
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus() -> PathBuf {
    root().join("../shared/corpus")
}

fn ruaflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ruaflow")).args(args).output().expect("run ruaflow")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout")
}

fn ok(output: Output) -> String {
    assert!(output.status.success(), "exit {:?}: {}", output.status, String::from_utf8_lossy(&output.stderr));
    stdout(&output)
}

/// A store built from the corpus and the hostile report.
struct Store {
    dir: tempfile::TempDir,
    db: PathBuf,
    hostile: PathBuf,
}

impl Store {
    fn build() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let hostile = dir.path().join("hostile.xml");
        std::fs::write(&hostile, hostile_report()).expect("write hostile report");
        let db = dir.path().join("store.db");
        ok(ruaflow(&["run", "--once", "--offline", "--db", s(&db), s(&corpus()), s(&hostile)]));
        Store { dir, db, hostile }
    }

    fn report(&self, extra: &[&str]) -> Output {
        let mut args = vec!["report", "--db", s(&self.db)];
        args.extend_from_slice(extra);
        ruaflow(&args)
    }

    fn json(&self, extra: &[&str]) -> Value {
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&ok(self.report(&args))).expect("report --json is JSON")
    }

    /// Inserts an alert row as the detector would.
    fn insert_alert(&self, kind: &str, window_start: i64, summary: &str, body: &str) {
        let conn = rusqlite::Connection::open(&self.db).expect("open store");
        conn.execute(
            "INSERT INTO alerts (kind, domain, subject, severity, window_start, window_end, observed, baseline,
                first_seen, raised_at, state, summary, body)
             VALUES (?1, 'example.com', '', 'critical', ?2, ?2 + 86399, 945.0, 12.5, ?2, ?2 + 90000, 'firing', ?3, ?4)",
            rusqlite::params![kind, window_start, summary, body],
        )
        .expect("insert alert");
    }
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// What `ruaflow parse --json` says the inputs hold, with resent reports (same
/// reporter, id, domain and range) counted once, as the store does.
struct Expected {
    reports: u64,
    messages: u64,
    by_domain: HashMap<String, u64>,
}

fn expected(store: &Store) -> Expected {
    let output = ruaflow(&["parse", "--json", s(&corpus()), s(&store.hostile)]);
    // Exit 1 only says that some inputs (READMEs, licences) hold no report.
    assert!(matches!(output.status.code(), Some(0 | 1)), "parse failed: {output:?}");
    let mut seen = HashSet::new();
    let mut exp = Expected { reports: 0, messages: 0, by_domain: HashMap::new() };
    for line in stdout(&output).lines() {
        let v: Value = serde_json::from_str(line).expect("parse line is JSON");
        if v["kind"] != "dmarc" {
            continue;
        }
        let identity = (
            v["org_name"].to_string(),
            v["report_id"].to_string(),
            v["domain"].to_string(),
            v["begin"].to_string(),
            v["end"].to_string(),
        );
        if !seen.insert(identity) {
            continue;
        }
        let n = v["message_count"].as_u64().expect("message_count");
        exp.reports += 1;
        exp.messages += n;
        *exp.by_domain.entry(v["domain"].as_str().expect("domain").to_owned()).or_default() += n;
    }
    assert!(exp.reports > 10 && exp.messages > 1000, "the corpus looks empty: {} reports", exp.reports);
    exp
}

fn domain<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["domains"]
        .as_array()
        .expect("domains")
        .iter()
        .find(|d| d["domain"] == name)
        .unwrap_or_else(|| panic!("domain {name} missing"))
}

fn with_separators(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn json_totals_match_parse_output() {
    let store = Store::build();
    let exp = expected(&store);
    let report = store.json(&[]);

    assert_eq!(report["totals"]["messages"], exp.messages);
    assert_eq!(report["totals"]["dmarc_reports"], exp.reports);
    assert_eq!(report["window"]["days"], Value::Null);
    let domains = report["domains"].as_array().expect("domains");
    let dmarc_domains: Vec<_> = domains.iter().filter(|d| d["dmarc_reports"].as_u64() > Some(0)).collect();
    assert_eq!(dmarc_domains.len(), exp.by_domain.len());
    for (name, messages) in &exp.by_domain {
        assert_eq!(domain(&report, name)["messages"], *messages, "messages of {name}");
    }
    let example = domain(&report, "example.com");
    assert_eq!(example["messages"], exp.by_domain["example.com"]);
    // Most messages first.
    assert_eq!(domains[0]["domain"], "example.com");

    // Every domain's days add up to its total, and each day's split adds up to the day.
    for d in domains {
        let mut sum = 0;
        for day in d["daily"].as_array().expect("daily") {
            let parts: u64 = ["pass_both", "dkim_only", "spf_only", "fail"]
                .iter()
                .map(|k| day[k].as_u64().expect("count"))
                .sum();
            assert_eq!(parts, day["messages"].as_u64().expect("messages"), "{}: {day}", d["domain"]);
            sum += parts;
        }
        assert_eq!(Some(sum), d["messages"].as_u64(), "daily sum of {}", d["domain"]);
        let disp = &d["dispositions"];
        let disp_sum: u64 =
            ["none", "quarantine", "reject"].iter().map(|k| disp[k].as_u64().expect("count")).sum();
        assert_eq!(Some(disp_sum), d["messages"].as_u64());
    }

    // The hostile report is there, stored as data.
    let hostile = domain(&report, "hostile.example");
    assert_eq!(hostile["messages"], 42);
    assert_eq!(hostile["dkim_only_pass"], 42);
    assert_eq!(hostile["selectors"][0]["selector"], HOSTILE_SELECTOR);
    assert_eq!(hostile["reporters"][0]["org_name"], HOSTILE_ORG);
    assert_eq!(hostile["top_sources"][0]["ip"], "198.51.100.7");
    assert_eq!(hostile["dmarc_pass_pct"], 100.0);

    // TLS reports of the corpus name example.com as a policy domain.
    let tls = &example["tls"];
    assert!(tls["reports"].as_u64() >= Some(1), "example.com TLS: {tls}");
    assert!(!tls["failures"].as_array().expect("failures").is_empty());

    // The corpus holds inputs that are not reports (a README, licences, an empty file).
    let dead = &report["dead_letters"];
    assert!(dead["count"].as_u64() >= Some(1), "{dead}");
    assert!(dead["latest"][0]["reason"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(report["alerts"], serde_json::json!([]));
}

#[test]
fn days_count_calendar_days_back_from_the_newest_report_day() {
    let store = Store::build();
    let all = store.json(&[]);
    let last = all["window"]["last_day"].as_i64().expect("last day");

    let one = store.json(&["--days", "1"]);
    assert_eq!(one["window"]["report_days"], 1);
    assert_eq!(one["window"]["first_day"], last);
    assert_eq!(one["window"]["last_day"], last);

    // For one domain, its own newest report day: the corpus's example.com reports end
    // in 2024, years before the newest TLS report.
    let ex_all = store.json(&["--domain", "example.com"]);
    let daily: Vec<(i64, u64)> = ex_all["domains"][0]["daily"]
        .as_array()
        .expect("daily")
        .iter()
        .map(|d| (d["day"].as_i64().expect("day"), d["messages"].as_u64().expect("messages")))
        .collect();
    let newest = daily.last().expect("a day").0;
    let mut fewer_report_days_than_days = false;
    for n in [1i64, 2, 7, 30, 365] {
        let since = newest - (n - 1) * DAY;
        let in_range: Vec<&(i64, u64)> = daily.iter().filter(|(d, _)| *d >= since).collect();
        fewer_report_days_than_days |= (in_range.len() as i64) < n;
        let got = store.json(&["--domain", "example.com", "--days", &n.to_string()]);
        let w = &got["window"];
        assert_eq!(w["days"], n, "--days {n}");
        assert_eq!(w["last_day"], newest, "--days {n}");
        assert_eq!(w["until"], date_of(&daily, newest), "--days {n}");
        assert!(w["first_day"].as_i64() >= Some(since), "--days {n}: {w}");
        let got_days: Vec<i64> = got["domains"][0]["daily"]
            .as_array()
            .expect("daily")
            .iter()
            .map(|d| d["day"].as_i64().expect("day"))
            .collect();
        assert_eq!(got_days, in_range.iter().map(|(d, _)| *d).collect::<Vec<_>>(), "--days {n}: days");
        let expected: u64 = in_range.iter().map(|(_, m)| m).sum();
        assert_eq!(got["totals"]["messages"], expected, "--days {n}: messages");
    }
    // The corpus has gaps, so calendar days and report days differ somewhere.
    assert!(fewer_report_days_than_days, "the corpus days are contiguous: the test proves nothing");

    let zero = store.report(&["--days", "0"]);
    assert_eq!(zero.status.code(), Some(2), "--days 0 is a usage error");
}

#[test]
fn since_and_until_select_report_days_inclusively() {
    let store = Store::build();
    let ex_all = store.json(&["--domain", "example.com"]);
    let daily = ex_all["domains"][0]["daily"].as_array().expect("daily").clone();
    assert!(daily.len() >= 3, "example.com has too few days for this test");
    let (a, b) = (&daily[1], &daily[daily.len() - 2]);
    let (a_date, b_date) = (a["date"].as_str().expect("date"), b["date"].as_str().expect("date"));
    let expected: u64 = daily
        .iter()
        .filter(|d| d["day"].as_i64() >= a["day"].as_i64() && d["day"].as_i64() <= b["day"].as_i64())
        .map(|d| d["messages"].as_u64().expect("messages"))
        .sum();
    let got = store.json(&["--domain", "example.com", "--since", a_date, "--until", b_date]);
    assert_eq!(got["window"]["since"], a_date);
    assert_eq!(got["window"]["until"], b_date);
    assert_eq!(got["window"]["first_day"], a["day"]);
    assert_eq!(got["window"]["last_day"], b["day"]);
    assert_eq!(got["totals"]["messages"], expected);
    let got_daily = got["domains"][0]["daily"].as_array().expect("daily");
    assert_eq!(got_daily.first(), Some(a));
    assert_eq!(got_daily.last(), Some(b));
    // One end only.
    let from = store.json(&["--domain", "example.com", "--since", b_date]);
    assert_eq!(from["window"]["until"], Value::Null);
    assert_eq!(from["domains"][0]["daily"][0], *b);
    // --until with --days: N days ending there.
    let two = store.json(&["--domain", "example.com", "--until", b_date, "--days", "2"]);
    assert_eq!(two["window"]["until"], b_date);
    assert_eq!(two["window"]["since"], date_of_secs(b["day"].as_i64().expect("day") - DAY));

    for bad in [
        vec!["--since", "2024-02-30"],
        vec!["--since", "yesterday"],
        vec!["--since", b_date, "--until", a_date],
        vec!["--since", a_date, "--days", "3"],
    ] {
        let out = store.report(&bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?} must be refused: {out:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).trim().is_empty(), "{bad:?}: no message");
    }
}

/// An `alerts --json` line without the row's own fields (`id`, `acknowledged_at`,
/// `ack_note`): the body as the detector wrote it.
fn body_of(line: &str) -> String {
    let mut value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let object = value.as_object_mut().expect("an object");
    assert!(object.remove("id").is_some_and(|id| id.is_i64()), "{line}");
    assert!(object.remove("acknowledged_at").is_some(), "{line}");
    assert!(object.remove("ack_note").is_some(), "{line}");
    value.to_string()
}

#[test]
fn alerts_take_the_same_range() {
    let store = Store::build();
    let day = 1_718_236_800; // 2024-06-13
    store.insert_alert("spoofing_spike", day - 10 * DAY, "ten days before", r#"{"n":1}"#);
    store.insert_alert("dkim_replay_suspected", day, "that day", r#"{"n":2}"#);
    let lines = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["alerts", "--db", s(&store.db), "--json"];
        args.extend_from_slice(extra);
        ok(ruaflow(&args)).lines().map(body_of).collect()
    };
    assert_eq!(lines(&[]), [r#"{"n":1}"#, r#"{"n":2}"#]);
    assert_eq!(lines(&["--since", "2024-06-13"]), [r#"{"n":2}"#]);
    assert_eq!(lines(&["--until", "2024-06-12"]), [r#"{"n":1}"#]);
    assert_eq!(lines(&["--since", "2024-06-04", "--until", "2024-06-12"]), Vec::<String>::new());
    assert_eq!(lines(&["--until", "2024-06-13", "--days", "1", "--domain", "EXAMPLE.com"]), [r#"{"n":2}"#]);
    let text = ok(ruaflow(&["alerts", "--db", s(&store.db), "--since", "2030-01-01"]));
    assert_eq!(text, "no alerts in the range\n");
}

/// Seconds in a day.
const DAY: i64 = 86_400;

/// The `date` of `day` among a domain's daily entries.
fn date_of(daily: &[(i64, u64)], day: i64) -> String {
    assert!(daily.iter().any(|(d, _)| *d == day));
    date_of_secs(day)
}

/// `YYYY-MM-DD` of a unix second.
fn date_of_secs(secs: i64) -> String {
    ruaflow_schema::time::format_date(secs)
}

#[test]
fn reporters_are_named_once_by_the_domain_of_their_address() {
    let store = Store::build();
    let report = store.json(&[]);
    let reporters = report["reporters"].as_array().expect("reporters");
    let google: Vec<&Value> = reporters
        .iter()
        .filter(|r| {
            r["org_names"].as_array().expect("names").iter().any(|n| n == "Google Inc." || n == "google.com")
        })
        .collect();
    // Google's DMARC reports say "google.com", its TLS reports "Google Inc.": one row.
    assert_eq!(google.len(), 1, "{google:#?}");
    let google = google[0];
    assert_eq!(google["reporter"], "google.com");
    let names = google["org_names"].as_array().expect("names");
    assert!(
        names.contains(&Value::from("google.com")) && names.contains(&Value::from("Google Inc.")),
        "{names:?}"
    );
    assert!(google["dmarc_reports"].as_u64() > Some(0) && google["tlsrpt_reports"].as_u64() > Some(0));
    assert_eq!(
        google["reports"].as_u64(),
        Some(google["dmarc_reports"].as_u64().expect("n") + google["tlsrpt_reports"].as_u64().expect("n"))
    );
    // Every reporter appears once, and the rows add up to every report in the store.
    let keys: HashSet<&str> = reporters.iter().map(|r| r["reporter"].as_str().expect("reporter")).collect();
    assert_eq!(keys.len(), reporters.len());
    let sum: u64 = reporters.iter().map(|r| r["reports"].as_u64().expect("n")).sum();
    let totals = &report["totals"];
    assert_eq!(
        sum,
        totals["dmarc_reports"].as_u64().expect("n") + totals["tlsrpt_reports"].as_u64().expect("n")
    );
}

#[test]
fn domain_filter_ignores_case() {
    let store = Store::build();
    let report = store.json(&["--domain", "EXAMPLE.com"]);
    let domains = report["domains"].as_array().expect("domains");
    assert_eq!(domains.len(), 1);
    assert_eq!(domains[0]["domain"], "example.com");
    assert_eq!(report["totals"]["messages"], domains[0]["messages"]);
    let none = store.json(&["--domain", "nowhere.example"]);
    assert_eq!(none["domains"], serde_json::json!([]));
    assert_eq!(none["totals"]["messages"], 0);
}

#[test]
fn terminal_report_is_aligned_plain_text() {
    let store = Store::build();
    let exp = expected(&store);
    let text = ok(store.report(&[]));
    assert!(!text.contains('\u{1b}'), "no colour when stdout is not a terminal");
    assert!(text.contains(&format!("{} messages", with_separators(exp.messages))), "{text}");
    assert!(text.contains("━━ example.com"));
    assert!(text.contains("━━ hostile.example"));
    assert!(text.contains(&with_separators(exp.by_domain["example.com"])));
    assert!(
        text.contains("Top sources") && text.contains("DKIM signatures") && text.contains("Dead letters")
    );
    assert!(text.contains(HOSTILE_ORG), "text output shows report data as it is");
    // Percentages carry one decimal.
    assert!(text.contains("100.0%"));
    // Columns line up: in the dispositions grid every row puts "DMARC pass"/"DMARC
    // fail"/"quarantine" at the same column.
    let section = text.split("━━ example.com").nth(1).expect("example.com section");
    let grid: Vec<&str> = section.lines().skip(2).take(3).collect();
    let cols: Vec<usize> = grid
        .iter()
        .map(|l| ["DMARC pass", "DMARC fail", "quarantine"].iter().find_map(|k| l.find(k)).expect("column"))
        .collect();
    assert!(cols.windows(2).all(|w| w[0] == w[1]), "misaligned: {grid:#?}");
}

#[test]
fn html_page_is_self_contained_and_escaped() {
    let store = Store::build();
    store.insert_alert("dkim_replay_suspected", 1_718_236_800, HOSTILE_SUMMARY, r#"{"kind":"x"}"#);
    let out = store.dir.path().join("report.html");
    ok(store.report(&["--html", s(&out)]));
    let page = std::fs::read_to_string(&out).expect("page written");

    assert!(page.starts_with("<!doctype html>"));
    assert!(page.trim_end().ends_with("</html>"));
    assert!(page.matches("<svg").count() >= 4, "charts drawn");
    assert_eq!(page.matches("<svg").count(), page.matches("</svg>").count());
    // Nothing is fetched: no asset, no script, no web font. Escaped report data holds
    // no raw `<`, so every `<…>` in the page is markup the page itself wrote.
    for tag in tags(&page) {
        let name =
            tag.split(|c: char| c.is_whitespace() || c == '>').next().unwrap_or("").to_ascii_lowercase();
        assert!(
            !["script", "link", "img", "iframe", "object", "embed", "image", "use", "foreignobject"]
                .contains(&name.as_str()),
            "page has a <{name}> element: <{tag}"
        );
        assert!(!tag.contains(" src="), "asset reference in <{tag}");
        if let Some(at) = tag.find("href=\"") {
            assert!(tag[at + 6..].starts_with('#'), "link out of the page in <{tag}");
        }
    }
    let style = page.split("<style>").nth(1).and_then(|s| s.split("</style>").next()).expect("inline style");
    for banned in ["url(", "@import", "@font-face"] {
        assert!(!style.contains(banned), "style contains {banned:?}");
    }
    // Report data may hold URLs (a TLS report's additional-information): as text only,
    // never in markup.
    for tag in tags(&page) {
        assert!(!tag.contains("http://") && !tag.contains("https://"), "URL in markup: <{tag}");
    }
    // Hostile strings appear, escaped.
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("sel&quot;&gt;&lt;svg onload=alert(2)&gt;"));
    assert!(page.contains("flood from &lt;img src=x onerror=alert(3)&gt; &amp; &#39;friends&#39;"));
    assert!(!page.contains("<svg onload"));
    // The alert is in the tables and on the timeline.
    assert!(page.contains("dkim_replay_suspected"));
    assert!(page.contains(r#"<g class="marker">"#));
    // The numbers are in tables too.
    assert!(page.contains("<table>") && page.contains("example.com"));
}

#[test]
fn html_renders_in_headless_chromium() {
    let chromium = find_on_path("chromium").unwrap_or_else(|| {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        panic!(
            "chromium is not on PATH{}: install it with `apt-get install -y chromium` (tests/run must install it before this test)",
            if ci { " (CI=true)" } else { "" }
        )
    });
    let store = Store::build();
    let dir = store.dir.path();
    let page = dir.join("report.html");
    ok(store.report(&["--html", s(&page)]));
    let blank = dir.join("blank.html");
    std::fs::write(&blank, "<!doctype html><html><body></body></html>").expect("write blank page");

    let report_png = screenshot(&chromium, &page, dir);
    let blank_png = screenshot(&chromium, &blank, dir);
    for png in [&report_png, &blank_png] {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
        // IHDR: width and height, big-endian, at bytes 16..24.
        let width = u32::from_be_bytes(png[16..20].try_into().expect("4 bytes"));
        let height = u32::from_be_bytes(png[20..24].try_into().expect("4 bytes"));
        assert_eq!((width, height), (1280, 2400));
    }
    // A blank page compresses to almost nothing; charts, text and tables do not.
    assert!(
        report_png.len() > 8 * blank_png.len() && report_png.len() > 50_000,
        "the screenshot looks blank: {} bytes (blank page: {} bytes)",
        report_png.len(),
        blank_png.len()
    );
}

fn find_chromium() -> PathBuf {
    find_on_path("chromium").unwrap_or_else(|| {
        panic!(
            "chromium is not on PATH: install it with `apt-get install -y chromium` (tests/run installs it)"
        )
    })
}

/// A provider's morning after: 25 domains, three weeks, and a DKIM replay flood that
/// makes one domain's worst day ~50 times its ordinary one. The page must stay a page:
/// every domain in the overview (no scroll box), a contents line per domain, the flood
/// chart cut with an inset to scale, every day of the range in a folded table, and a
/// print that starts each domain on its own page.
#[test]
fn html_at_25_domains_after_a_flood() {
    let chromium = find_chromium();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("synth");
    let db = dir.path().join("flood.db");
    ok(ruaflow(&[
        "synth",
        "--out",
        s(&data),
        "--seed",
        "5",
        "--scenario",
        "replay-flood",
        "--scale",
        "8.33",
        "--days",
        "21",
    ]));
    ok(ruaflow(&["run", "--once", "--offline", "--db", s(&db), s(&data)]));
    let report: Value =
        serde_json::from_str(&ok(ruaflow(&["report", "--db", s(&db), "--json"]))).expect("report JSON");
    let domains = report["domains"].as_array().expect("domains");
    assert_eq!(domains.len(), 25);
    let flooded = &domains[0];
    assert_eq!(flooded["domain"], "example.com");
    let mut daily: Vec<u64> = flooded["daily"]
        .as_array()
        .expect("daily")
        .iter()
        .map(|d| d["messages"].as_u64().expect("n"))
        .collect();
    let peak = *daily.iter().max().expect("days");
    daily.sort_unstable();
    let median = daily[daily.len() / 2];
    assert!(peak > 40 * median, "the flood day is ~50x the ordinary one: {peak} vs {median}");

    let page_path = dir.path().join("report.html");
    ok(ruaflow(&["report", "--db", s(&db), "--html", s(&page_path)]));
    let page = std::fs::read_to_string(&page_path).expect("page");
    assert!(!page.contains("scroll"), "no scroll boxes: the page reads and prints whole");
    let overview =
        page.split("<h3>Domains</h3>").nth(1).and_then(|p| p.split("</table>").next()).expect("overview");
    assert_eq!(overview.matches("<tr>").count(), 26, "a header and all 25 domains");
    let sections: Vec<&str> = page.split(r#"<section class="domain""#).skip(1).collect();
    assert_eq!(sections.len(), 25);
    for (i, section) in sections.iter().enumerate() {
        assert!(section.contains(r#"<nav class="toc""#), "domain {i} has its contents line");
        for link in section.split(r##"href="#"##).skip(1).map(|l| l.split('"').next().unwrap_or("")) {
            assert!(page.contains(&format!(r#"id="{link}""#)), "domain {i}: link to #{link} goes nowhere");
        }
    }
    let example = sections[0];
    let volume =
        example.split(r#"id="d0-volume""#).nth(1).and_then(|v| v.split("</details>").next()).expect("volume");
    assert!(
        volume.contains("data-inset") && volume.contains(r#"class="cut""#),
        "the flood chart is cut, with an inset"
    );
    assert!(volume.contains("far above the ordinary days"), "and says so");
    assert!(volume.contains("<details class=\"more\"><summary>Daily figures: 21 days"), "every day, folded");
    assert_eq!(volume.split("<tbody>").nth(1).expect("rows").matches("<tr>").count(), 21);

    // On screen: a page with charts, not a blank one.
    let png = screenshot_sized(&chromium, &page_path, dir.path(), (1280, 4000));
    let blank = dir.path().join("blank.html");
    std::fs::write(&blank, "<!doctype html><html><body></body></html>").expect("write blank page");
    let blank_png = screenshot_sized(&chromium, &blank, dir.path(), (1280, 4000));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 10 * blank_png.len(), "the screenshot looks blank: {} bytes", png.len());
    // In print: a first page, then each domain from a page of its own.
    let pdf = print_to_pdf(&chromium, &page_path, dir.path());
    assert!(pdf.starts_with(b"%PDF-"), "a PDF");
    let pages = pdf_pages(&pdf);
    assert!((26..=200).contains(&pages), "{pages} printed pages for 25 domains");
}

/// The page count of a PDF: the largest `/Count` of its page tree.
fn pdf_pages(pdf: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(pdf);
    text.split("/Count ")
        .skip(1)
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// The inside of every `<…>` in `page`.
fn tags(page: &str) -> Vec<&str> {
    page.split('<').skip(1).map(|t| t.split('>').next().unwrap_or(t)).collect()
}

fn screenshot(chromium: &Path, page: &Path, dir: &Path) -> Vec<u8> {
    screenshot_sized(chromium, page, dir, (1280, 2400))
}

fn screenshot_sized(chromium: &Path, page: &Path, dir: &Path, (width, height): (u32, u32)) -> Vec<u8> {
    let png = page.with_extension("png");
    headless(
        chromium,
        dir,
        &[format!("--screenshot={}", png.display()), format!("--window-size={width},{height}")],
        page,
        &png,
    )
}

/// The page printed to PDF by Chromium (its print stylesheet, no header or footer).
fn print_to_pdf(chromium: &Path, page: &Path, dir: &Path) -> Vec<u8> {
    let pdf = page.with_extension("pdf");
    headless(
        chromium,
        dir,
        &[format!("--print-to-pdf={}", pdf.display()), "--no-pdf-header-footer".into()],
        page,
        &pdf,
    )
}

/// Runs headless Chromium on `page` with `extra` flags and returns the file it wrote.
fn headless(chromium: &Path, dir: &Path, extra: &[String], page: &Path, written: &Path) -> Vec<u8> {
    let profile = tempfile::tempdir_in(dir).expect("profile dir");
    let output = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    std::fs::read(written).unwrap_or_else(|err| {
        panic!("no {} ({err}); chromium said: {}", written.display(), String::from_utf8_lossy(&output.stderr))
    })
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(name)).find(|p| p.is_file())
}

#[test]
fn alerts_json_prints_each_body_on_one_line() {
    let store = Store::build();
    let empty = ok(ruaflow(&["alerts", "--db", s(&store.db), "--json"]));
    assert_eq!(empty, "", "no alerts, no lines");

    let compact =
        r#"{"kind":"dkim_replay_suspected","domain":"example.com","selector":"google","observed":945}"#;
    let pretty = "{\n  \"kind\": \"spoofing_spike\",\n  \"domain\": \"example.com\"\n}";
    store.insert_alert("spoofing_spike", 1_718_236_800, "later", pretty);
    store.insert_alert("dkim_replay_suspected", 1_711_929_600, HOSTILE_SUMMARY, compact);

    let out = ok(ruaflow(&["alerts", "--db", s(&store.db), "--json"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    // Oldest window first; the body as stored, with the row's id and acknowledgement.
    assert_eq!(
        serde_json::from_str::<Value>(&body_of(lines[0])).expect("JSON"),
        serde_json::from_str::<Value>(compact).expect("JSON")
    );
    let second: Value = serde_json::from_str(lines[1]).expect("JSON line");
    assert_eq!(second["kind"], "spoofing_spike");

    let text = ok(ruaflow(&["alerts", "--db", s(&store.db)]));
    // One line per alert; its summary follows, indented.
    let rows: Vec<&str> = text.lines().skip(1).filter(|l| !l.is_empty() && !l.starts_with(' ')).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(
        rows[0].contains("2024-04-01")
            && rows[0].contains("dkim_replay_suspected")
            && rows[0].contains("945")
    );
    assert!(rows[1].contains("spoofing_spike") && rows[1].contains("example.com"));

    let filtered = ok(ruaflow(&["alerts", "--db", s(&store.db), "--json", "--domain", "other.example"]));
    assert_eq!(filtered, "");
}

#[test]
fn alerts_text_shows_each_whole_summary_wrapped_to_100_columns() {
    let store = Store::build();
    let advice = "Rotate the key of selector s2024 (s2024._domainkey.example.com) and use adkim=s.";
    let evidence =
        "945 messages passed DMARC on DKIM alone from 31 sources in 12 networks that are not its senders.";
    let long =
        format!("DKIM replay suspected for example.com on 2024-04-01: {} {advice}", [evidence; 3].join(" "));
    assert!(long.chars().count() > 300, "longer than any cell the table would keep");
    store.insert_alert("dkim_replay_suspected", 1_711_929_600, &long, "{}");
    store.insert_alert("spoofing_spike", 1_718_236_800, "terminal \u{1b}[2J escape", "{}");

    // stdout is a pipe here, so the width is 100 columns.
    let text = ok(ruaflow(&["alerts", "--db", s(&store.db)]));
    let widest = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(widest <= 100, "a line of {widest} columns:\n{text}");
    let blocks: Vec<&str> = text.split("\n\n").collect();
    assert_eq!(blocks.len(), 2, "one block per alert:\n{text}");
    let summary = |block: &str| -> Vec<String> {
        block.lines().filter(|l| l.starts_with("    ")).map(|l| l.trim().to_owned()).collect()
    };
    let first = summary(blocks[0]);
    assert!(first.len() >= 4, "wrapped over several lines:\n{text}");
    assert_eq!(first.join(" "), long, "the whole summary, nothing cut:\n{text}");
    assert!(first.last().is_some_and(|l| l.ends_with("adkim=s.")), "ends with the advice:\n{text}");
    assert!(blocks[0].lines().nth(1).is_some_and(|l| l.contains("dkim_replay_suspected")), "{text}");
    assert_eq!(summary(blocks[1]), ["terminal \u{fffd}[2J escape"], "control characters neutralized");
    assert!(!text.contains('\u{1b}'));

    // The JSON lines are the bodies as stored, whatever the text view does.
    let json = ok(ruaflow(&["alerts", "--db", s(&store.db), "--json"]));
    assert_eq!(json.lines().map(body_of).collect::<Vec<_>>(), ["{}", "{}"]);
}

#[test]
fn report_reads_while_a_writer_holds_the_store() {
    let store = Store::build();
    let writer = rusqlite::Connection::open(&store.db).expect("open store");
    writer.execute_batch("BEGIN IMMEDIATE").expect("take the write lock");
    writer
        .execute("DELETE FROM agg_source_day WHERE domain = 'example.com'", [])
        .expect("uncommitted change");
    // WAL: the reader sees the last committed state, without waiting for the writer.
    let report = store.json(&["--domain", "example.com"]);
    assert!(report["totals"]["messages"].as_u64() > Some(1000));
    writer.execute_batch("ROLLBACK").expect("rollback");
}

#[test]
fn missing_database_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("absent.db");
    let output = ruaflow(&["report", "--db", s(&db)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no database at"));
    assert!(!db.exists(), "reading must not create the file");
}

/// A TLS report with one failed session among ten million, at an MX with markup in
/// its failure details.
fn tiny_share_tls_report() -> String {
    serde_json::json!({
        "organization-name": "Tiny Share Reporter", "report-id": "tiny-1", "contact-info": "x@tiny.example",
        "date-range": {"start-datetime": "2024-06-12T00:00:00Z", "end-datetime": "2024-06-12T23:59:59Z"},
        "policies": [{
            "policy": {"policy-type": "sts", "policy-domain": "tiny.example", "mx-host": ["mx.tiny.example"]},
            "summary": {"total-successful-session-count": 9_999_999, "total-failure-session-count": 1},
            "failure-details": [{"result-type": "certificate-expired", "sending-mta-ip": "192.0.2.44",
                "receiving-mx-hostname": "mx.tiny.example", "receiving-ip": "203.0.113.5",
                "failed-session-count": 1, "failure-reason-code": "X509_EXPIRED",
                "additional-information": HOSTILE_SELECTOR}]
        }]
    })
    .to_string()
}

#[test]
fn failure_reports_and_tls_by_mx_in_every_view() {
    let store = Store::build();
    let tiny = store.dir.path().join("tiny.json");
    std::fs::write(&tiny, tiny_share_tls_report()).expect("write TLS report");
    ok(ruaflow(&["run", "--once", "--offline", "--db", s(&store.db), s(&tiny)]));

    // Expected failure reports per domain, independently from `ruaflow parse`: one per
    // reporter and set of report fields (the corpus holds one report twice, with LF and
    // with CRLF line ends).
    let output = ruaflow(&["parse", "--json", s(&corpus())]);
    let mut seen = HashSet::new();
    let mut by_domain: HashMap<String, u64> = HashMap::new();
    for line in stdout(&output).lines() {
        let v: Value = serde_json::from_str(line).expect("json line");
        if v["kind"] == "failure"
            && seen.insert((v["report"]["reporter"].to_string(), v["report"]["fields"].to_string()))
        {
            *by_domain.entry(v["reported_domain"].as_str().expect("domain").to_owned()).or_default() += 1;
        }
    }
    assert!(by_domain.values().sum::<u64>() >= 4, "the corpus has failure reports: {by_domain:?}");

    let report = store.json(&[]);
    assert_eq!(report["totals"]["failure_reports"], by_domain.values().sum::<u64>());
    for (name, count) in &by_domain {
        let f = &domain(&report, name)["failure_reports"];
        assert_eq!(f["count"], *count, "{name}: {f}");
        let per_source: u64 =
            f["sources"].as_array().expect("sources").iter().map(|x| x["reports"].as_u64().expect("n")).sum();
        assert_eq!(per_source, *count, "{name}: every report under its source");
        assert!(f["from_unknown_sources"].as_u64() <= Some(*count));
        for e in f["latest"].as_array().expect("latest") {
            assert!(["configured", "authorized", "familiar", "unknown"]
                .contains(&e["sender"].as_str().expect("sender")));
            for field in ["mail_from", "rcpt_to", "header_from", "header_to", "authentication_results"] {
                if let Some(text) = e[field].as_str() {
                    for (at, _) in text.match_indices('@') {
                        let before = text[..at].chars().last();
                        assert!(
                            matches!(before, Some('*') | Some('=') | None),
                            "{name} {field} not redacted: {text}"
                        );
                    }
                }
            }
            assert_eq!(e["subject"], Value::Null, "subjects are not stored by default");
        }
    }
    assert_eq!(domain(&report, "example.com")["failure_reports"]["sources"][0]["sender"], "unknown");

    // TLS by MX: the rows add up to the failure details, and a share of one in ten
    // million reads as such, not as zero.
    let example_tls = &domain(&report, "example.com")["tls"];
    let by_result: u64 = example_tls["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .map(|f| f["failed_sessions"].as_u64().expect("n"))
        .sum();
    let by_mx: u64 = example_tls["by_mx"]
        .as_array()
        .expect("by_mx")
        .iter()
        .map(|f| f["failed_sessions"].as_u64().expect("n"))
        .sum();
    assert_eq!(by_mx, by_result, "{example_tls}");
    for row in example_tls["by_mx"].as_array().expect("by_mx") {
        assert!(row["share_pct"].as_f64() > Some(0.0) && row["share"] != "0.0%", "{row}");
    }
    let tiny_tls = &domain(&report, "tiny.example")["tls"]["by_mx"][0];
    assert_eq!(tiny_tls["mx"], "mx.tiny.example");
    assert_eq!(tiny_tls["result_type"], "certificate-expired");
    assert_eq!(tiny_tls["sending_ip"], "192.0.2.44");
    assert_eq!(tiny_tls["receiving_ip"], "203.0.113.5");
    assert_eq!(tiny_tls["failure_reason_code"], "X509_EXPIRED");
    assert_eq!(tiny_tls["additional_information"], HOSTILE_SELECTOR);
    assert_eq!(tiny_tls["share"], "0.00001%");

    let text = ok(store.report(&[]));
    assert!(text.contains("TLS by MX") && text.contains("0.00001%"), "{text}");
    assert!(text.contains("Failure reports") && text.contains("Latest failure reports"));
    let out = store.dir.path().join("report.html");
    ok(store.report(&["--html", s(&out)]));
    let page = std::fs::read_to_string(&out).expect("page written");
    assert!(page.contains("<h3>Failure reports</h3>") && page.contains("<h4>TLS by MX</h4>"));
    assert!(page.contains("0.00001%") && page.contains("mx.tiny.example"));
    assert!(page.contains("sel&quot;&gt;&lt;svg onload=alert(2)&gt;") && !page.contains("<svg onload"));
}
