//! The sender model where a postmaster looks, end to end through the binary:
//! `ruaflow sources` (every source by default, `--status` filters, CSV = JSON) and
//! `ruaflow source IP` (standing per domain, days, the alerts that named it), over one
//! store built with `ruaflow run --once` from ../shared/corpus and a synthetic replay
//! flood (`ruaflow synth --scenario replay-flood`), so that some sources are `unknown`
//! and named by an alert while the corpus's senders are authorized by their SPF.

mod common;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

use common::{corpus, csv, ok, run_args as run, s};

const STATUSES: [&str; 5] = ["configured", "authorized", "service", "familiar", "unknown"];

/// The store, built once for every test of this file.
fn db() -> &'static PathBuf {
    static DB: OnceLock<PathBuf> = OnceLock::new();
    DB.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sources-store");
        let _ = std::fs::remove_dir_all(&dir);
        let synth = dir.join("synth");
        ok(run(&["synth", "--seed", "1", "--scenario", "replay-flood", "--out", s(&synth)]));
        let db = dir.join("store.db");
        ok(run(&["run", "--once", "--offline", "--db", s(&db), s(&corpus()), s(&synth)]));
        db
    })
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

/// `ruaflow sources --db STORE --json ARGS…` as objects.
fn sources(extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["sources", "--db", s(db()), "--json"];
    args.extend_from_slice(extra);
    json_lines(&ok(run(&args)))
}

/// `ruaflow source IP --db STORE --json`, with its exit code.
fn source(ip: &str) -> (Option<i32>, Value) {
    let out = run(&["source", ip, "--db", s(db()), "--json"]);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not one JSON object ({e}): {text}"));
    (out.status.code(), value)
}

fn key(row: &Value) -> (String, String) {
    (
        row["domain"].as_str().expect("domain").to_owned(),
        row["source_ip_address"].as_str().expect("ip").to_owned(),
    )
}

fn status_of(row: &Value) -> &str {
    row["sender_status"].as_str().expect("status")
}

#[test]
fn every_source_is_listed_by_volume_and_filtered_by_status() {
    let all = sources(&[]);
    let export: Vec<Value> =
        json_lines(&ok(run(&["export", "--db", s(db()), "--what", "sources", "--format", "jsonl"])));
    // Every source, not a top few: the same (domain, source) pairs as the export.
    assert!(all.len() > 1000, "the store looks small: {} sources", all.len());
    let mut listed: Vec<_> = all.iter().map(key).collect();
    let mut exported: Vec<_> = export.iter().map(key).collect();
    listed.sort();
    exported.sort();
    assert_eq!(listed, exported, "sources lists every source the export has");
    let counts: Vec<u64> = all.iter().map(|r| r["count"].as_u64().expect("count")).collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "most messages first");
    assert_eq!(sources(&["--limit", "3"]).len(), 3);

    // Each status keeps its own sources; the five together are all of them.
    let mut seen = 0;
    for status in STATUSES {
        let rows = sources(&["--status", status]);
        assert!(rows.iter().all(|r| status_of(r) == status), "--status {status}");
        assert_eq!(rows.len(), all.iter().filter(|r| status_of(r) == status).count(), "--status {status}");
        seen += rows.len();
    }
    assert_eq!(seen, all.len());
    let unknown = sources(&["--status", "unknown"]);
    let authorized = sources(&["--status", "authorized"]);
    assert!(
        !unknown.is_empty() && !authorized.is_empty(),
        "the flood is unknown, the corpus's senders authorized"
    );
    // Several statuses: a comma list or the flag repeated, in any case.
    let both = sources(&["--status", "unknown,authorized"]);
    assert_eq!(both.len(), unknown.len() + authorized.len());
    assert_eq!(sources(&["--status", "Unknown", "--status", "AUTHORIZED"]), both);
    // The rates are the counts' share of the messages.
    for row in &authorized {
        let count = row["count"].as_f64().expect("count");
        let spf = row["spf_aligned_pass"].as_f64().expect("spf") * 100.0 / count;
        assert!((row["spf_aligned_pct"].as_f64().expect("rate") - spf).abs() <= 0.05, "{row}");
    }

    // A word that is not a status is refused, naming the five.
    let bad = run(&["sources", "--db", s(db()), "--status", "unknown,trusted"]);
    assert_eq!(bad.status.code(), Some(2));
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        said.contains("\"trusted\" is not a sender status") && said.contains("configured, authorized"),
        "{said}"
    );

    // The text table: a header and one line per source, with the status and the reason.
    let text = ok(run(&["sources", "--db", s(db()), "--status", "authorized", "--limit", "2"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains("status") && lines[0].contains("SPF aligned"), "{text}");
    assert!(lines[1].contains(authorized[0]["source_ip_address"].as_str().expect("ip")), "{text}");
    assert!(lines[1].contains("authorized") && lines[1].contains("SPF-aligned pass since"), "{text}");
}

#[test]
fn csv_has_the_json_rows() {
    let args = ["--status", "unknown,authorized,familiar"];
    let mut json_args = vec!["sources", "--db", s(db()), "--json"];
    json_args.extend_from_slice(&args);
    let jsonl = ok(run(&json_args));
    let rows = json_lines(&jsonl);
    let mut csv_args = vec!["sources", "--db", s(db()), "--csv"];
    csv_args.extend_from_slice(&args);
    let table = csv(&ok(run(&csv_args)));
    let header = &table[0];
    // The same columns in the same order: the header's names appear in that order in
    // each JSON line, and are all of its keys.
    let first = jsonl.lines().next().expect("a row");
    let at: Vec<usize> = header
        .iter()
        .map(|h| first.find(&format!("\"{h}\":")).unwrap_or_else(|| panic!("{h} in {first}")))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{header:?} vs {first}");
    assert_eq!(header.len(), rows[0].as_object().expect("object").len());
    assert_eq!(table.len() - 1, rows.len(), "the same rows");
    assert!(
        rows.iter().any(|r| r["sender_reason"].as_str().is_some_and(|why| why.contains(','))),
        "a quoted field among them"
    );
    for (fields, row) in table[1..].iter().zip(&rows) {
        let expected: Vec<String> = header
            .iter()
            .map(|k| match &row[k.as_str()] {
                Value::Null => String::new(),
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect();
        assert_eq!(fields, &expected);
    }
}

#[test]
fn source_shows_the_alert_that_named_a_flood_address() {
    let alerts = json_lines(&ok(run(&["alerts", "--db", s(db()), "--json"])));
    let replay = alerts
        .iter()
        .find(|a| a["kind"] == "dkim_replay_suspected" && a["state"] == "firing")
        .unwrap_or_else(|| panic!("the flood raised an alert: {alerts:?}"));
    let id = replay["id"].as_i64().expect("id");
    let ip = replay["sources"][0]["ip"].as_str().expect("the alert names a source");

    let (code, profile) = source(ip);
    assert_eq!(code, Some(0));
    assert_eq!(profile["ip"], ip);
    assert_eq!(profile["seen"], true);
    let named = profile["alerts"].as_array().expect("alerts");
    let mention = named.iter().find(|a| a["id"] == id).unwrap_or_else(|| panic!("alert {id} in {profile}"));
    assert_eq!(mention["kind"], "dkim_replay_suspected");
    assert_eq!(mention["domain"], replay["domain"]);
    assert_eq!(mention["state"], "firing");
    assert_eq!(mention["messages"], replay["sources"][0]["messages"]);
    assert!(profile["alerts_total"].as_u64().is_some_and(|n| n >= 1));
    let standing = profile["domains"]
        .as_array()
        .expect("domains")
        .iter()
        .find(|d| d["domain"] == replay["domain"])
        .unwrap_or_else(|| panic!("its domain in {profile}"));
    assert_eq!(standing["status"], "unknown", "{standing}");
    assert!(standing["dkim_keys"].as_array().is_some_and(|k| !k.is_empty()), "the replayed key: {standing}");
    assert!(standing["dkim_only_pass"].as_u64().is_some_and(|n| n > 0), "{standing}");
    assert!(!profile["daily"].as_array().expect("daily").is_empty());

    let text = ok(run(&["source", ip, "--db", s(db())]));
    assert!(text.starts_with(ip), "{text}");
    let alert_line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{id} ")))
        .unwrap_or_else(|| panic!("a line for alert {id}:\n{text}"));
    assert!(alert_line.contains("dkim_replay_suspected") && alert_line.contains("firing"), "{text}");
    assert!(text.contains("unknown"), "{text}");
}

#[test]
fn source_shows_how_a_known_sender_stands() {
    let top = &sources(&["--status", "authorized", "--limit", "1"])[0];
    let ip = top["source_ip_address"].as_str().expect("ip");
    let (code, profile) = source(ip);
    assert_eq!(code, Some(0));
    let standing = profile["domains"]
        .as_array()
        .expect("domains")
        .iter()
        .find(|d| d["domain"] == top["domain"])
        .unwrap_or_else(|| panic!("{} in {profile}", top["domain"]));
    assert_eq!(standing["status"], "authorized");
    assert_eq!(standing["reason"], top["sender_reason"]);
    assert!(
        standing["reason"].as_str().is_some_and(|r| r.starts_with("SPF-aligned pass since")),
        "{standing}"
    );
    // The model's totals are the aggregates' (the listing covers every day).
    for (model, listed) in [
        ("messages", "count"),
        ("dmarc_pass", "dmarc_pass"),
        ("spf_aligned_pass", "spf_aligned_pass"),
        ("days_seen", "days_seen"),
        ("first_day", "first_day"),
        ("last_day", "last_day"),
    ] {
        assert_eq!(standing[model], top[listed], "{model}");
    }
    // The last days it was seen, newest first, ending on its last day.
    let daily = profile["daily"].as_array().expect("daily");
    assert!(!daily.is_empty() && daily.len() <= 14 * profile["domains"].as_array().expect("d").len());
    assert_eq!(daily[0]["day"], standing["last_day"]);
    assert!(daily.windows(2).all(|w| w[0]["day"].as_str() >= w[1]["day"].as_str()));
    let text = ok(run(&["source", ip, "--db", s(db())]));
    assert!(text.contains("authorized") && text.contains("SPF-aligned pass since"), "{text}");
    assert!(text.contains("Last 14 days seen"), "{text}");

    // An IPv6 source is found however it is typed.
    if let Some(v6) =
        sources(&[]).iter().find_map(|r| r["source_ip_address"].as_str().filter(|ip| ip.contains(':')))
    {
        let IpAddr::V6(addr) = v6.parse::<IpAddr>().expect("ip") else { unreachable!() };
        let long: Vec<String> = addr.segments().iter().map(|s| format!("{s:04X}")).collect();
        let (code, profile) = source(&format!("[{}]", long.join(":")));
        assert_eq!((code, profile["ip"].as_str()), (Some(0), Some(v6)));
    }
}

#[test]
fn source_refuses_what_is_not_an_address_and_says_when_none_is_known() {
    for bad in ["192.0.2", "mail.example.com", "192.0.2.0/24", ""] {
        let out = run(&["source", bad, "--db", s(db())]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("is not an IP address"), "{bad:?}: {said}");
    }
    // An address no report names (absent from every source row).
    let never = "2001:db8:dead:beef::1";
    assert!(sources(&[]).iter().all(|r| r["source_ip_address"] != never));
    let (code, profile) = source(never);
    assert_eq!(code, Some(1), "nothing known is exit 1");
    assert_eq!(profile["seen"], false);
    assert_eq!(profile["domains"], serde_json::json!([]));
    let out = run(&["source", never, "--db", s(db())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing in this store names 2001:db8:dead:beef::1")
    );
    // No store: an error, and no file is created.
    let missing = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-such-store.db");
    let out = run(&["source", "192.0.2.1", "--db", s(&missing)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database at"));
    assert!(!missing.exists());
}
