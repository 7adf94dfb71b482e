//! `ruaflow export`, `ruaflow sources` and `ruaflow parse --csv` end to end: a store is
//! built with `ruaflow run --once` from ../shared/corpus, and every kind of export is
//! checked against the store's own figures (`ruaflow report --json`), in both formats,
//! with the domain and date filters; the stored records export exactly as the parsed
//! files convert.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde_json::Value;

use common::{corpus, csv, ok, run_args as run, s};

struct Store {
    _dir: tempfile::TempDir,
    db: PathBuf,
}

impl Store {
    fn build() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("store.db");
        ok(run(&["run", "--once", "--offline", "--db", s(&db), s(&corpus())]));
        Store { _dir: dir, db }
    }

    fn export(&self, what: &str, format: &str, extra: &[&str]) -> String {
        let mut args = vec!["export", "--db", s(&self.db), "--what", what, "--format", format];
        args.extend_from_slice(extra);
        ok(run(&args))
    }

    /// JSON lines of an export, as objects.
    fn rows(&self, what: &str, extra: &[&str]) -> Vec<Value> {
        self.export(what, "jsonl", extra)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {l}")))
            .collect()
    }

    fn report(&self, extra: &[&str]) -> Value {
        let mut args = vec!["report", "--db", s(&self.db), "--json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&ok(run(&args))).expect("report JSON")
    }
}

fn sum(rows: &[Value], key: &str) -> u64 {
    rows.iter().map(|r| r[key].as_u64().unwrap_or_else(|| panic!("{key} in {r}"))).sum()
}

#[test]
fn every_kind_matches_the_store_in_both_formats() {
    let store = Store::build();
    let report = store.report(&[]);
    let totals = &report["totals"];
    let messages = totals["messages"].as_u64().expect("messages");
    let reports =
        totals["dmarc_reports"].as_u64().expect("n") + totals["tlsrpt_reports"].as_u64().expect("n");
    assert!(messages > 1000 && reports > 20, "the corpus looks empty");

    let records = store.rows("records", &[]);
    assert_eq!(sum(&records, "count"), messages, "records add up to the stored messages");
    let aggregates = store.rows("aggregates", &[]);
    assert_eq!(sum(&aggregates, "count"), messages, "aggregates add up to the stored messages");
    let sources = store.rows("sources", &[]);
    assert_eq!(sum(&sources, "count"), messages, "sources add up to the stored messages");
    let stored = store.rows("reports", &[]);
    assert_eq!(stored.len() as u64, reports);
    let dmarc: Vec<&Value> = stored.iter().filter(|r| r["kind"] == "dmarc").collect();
    assert_eq!(
        dmarc.iter().map(|r| r["record_count"].as_u64().expect("n")).sum::<u64>(),
        records.len() as u64
    );
    assert!(
        stored.iter().all(|r| r["origin"].as_str().is_some_and(|o| o.contains("corpus"))),
        "origins kept"
    );
    let tls = store.rows("tls", &[]);
    let tls_sessions: u64 = report["domains"]
        .as_array()
        .expect("domains")
        .iter()
        .filter_map(|d| d["tls"]["successful_sessions"].as_u64())
        .sum();
    let policy_rows: Vec<&Value> = tls.iter().filter(|r| r["result_type"].is_null()).collect();
    assert_eq!(
        policy_rows.iter().map(|r| r["successful_session_count"].as_u64().expect("n")).sum::<u64>(),
        tls_sessions
    );
    assert!(tls.iter().any(|r| r["result_type"].is_string()), "failure rows too");
    assert_eq!(store.rows("alerts", &[]).len(), 0, "the corpus raises no alert");

    // The CSV of each kind holds the same rows, under a header of the same columns.
    for (what, rows) in
        [("records", &records), ("aggregates", &aggregates), ("sources", &sources), ("tls", &tls)]
    {
        let table = csv(&store.export(what, "csv", &[]));
        let header = &table[0];
        let mut columns: Vec<&String> = header.iter().collect();
        columns.sort();
        let keys: Vec<&String> = rows[0].as_object().expect("object").keys().collect();
        assert_eq!(columns, keys, "{what}: CSV header and JSON keys");
        assert_eq!(table.len() - 1, rows.len(), "{what}: CSV rows");
        for (line, json) in table[1..].iter().zip(rows.iter()) {
            for (name, field) in header.iter().zip(line) {
                let want = match &json[name] {
                    Value::Null => String::new(),
                    Value::String(s) if s.starts_with(['=', '+', '-', '@']) => format!("'{s}"),
                    Value::String(s) => s.clone(),
                    Value::Bool(true) => "True".into(),
                    Value::Bool(false) => "False".into(),
                    other => other.to_string(),
                };
                assert_eq!(field, &want, "{what}: column {name}");
            }
        }
    }
    // parsedmarc's columns first, in its order (tests/peer_csv.py checks the values).
    let header = &csv(&store.export("records", "csv", &[]))[0];
    assert_eq!(header[..5], ["xml_schema", "org_name", "org_email", "org_extra_contact_info", "report_id"]);
    assert_eq!(header[43], "spf_results");
}

#[test]
fn domain_and_range_filter_every_kind() {
    let store = Store::build();
    let ex = store.report(&["--domain", "example.com"]);
    let daily = ex["domains"][0]["daily"].as_array().expect("daily");
    assert!(daily.len() >= 3, "example.com has too few days");
    let (a, b) = (&daily[1], &daily[daily.len() - 2]);
    let (since, until) = (a["date"].as_str().expect("date"), b["date"].as_str().expect("date"));
    let window = ["--domain", "EXAMPLE.COM", "--since", since, "--until", until];
    let expected = store.report(&["--domain", "example.com", "--since", since, "--until", until]);
    let messages = expected["totals"]["messages"].as_u64().expect("messages");
    assert!(messages > 0 && messages < ex["totals"]["messages"].as_u64().expect("n"), "a strict part");

    let records = store.rows("records", &window);
    assert_eq!(sum(&records, "count"), messages);
    assert!(records.iter().all(|r| r["domain"] == "example.com"));
    assert!(records.iter().all(|r| r["day"].as_str() >= Some(since) && r["day"].as_str() <= Some(until)));
    let aggregates = store.rows("aggregates", &window);
    assert_eq!(sum(&aggregates, "count"), messages);
    assert!(aggregates.iter().all(|r| r["day"].as_str() >= Some(since) && r["day"].as_str() <= Some(until)));
    assert_eq!(sum(&store.rows("sources", &window), "count"), messages);
    let reports = store.rows("reports", &window);
    assert_eq!(
        reports.len() as u64,
        expected["totals"]["dmarc_reports"].as_u64().expect("n")
            + expected["totals"]["tlsrpt_reports"].as_u64().expect("n")
    );
    assert!(store
        .rows("tls", &["--domain", "example.com"])
        .iter()
        .all(|r| r["policy_domain"] == "example.com"));

    // --days counts back from the domain's newest report day, as `report` does.
    let last2 = store.report(&["--domain", "example.com", "--days", "2"]);
    let rows = store.rows("records", &["--domain", "example.com", "--days", "2"]);
    assert_eq!(sum(&rows, "count"), last2["totals"]["messages"].as_u64().expect("n"));

    let bad = run(&["export", "--db", s(&store.db), "--what", "records", "--since", "2024-13-01"]);
    assert_eq!(bad.status.code(), Some(2));
    let bad = run(&["export", "--db", s(&store.db), "--what", "nothing"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// The rows of each report identity (org, id, domain, begin, end) in a records CSV.
fn by_identity(table: &[Vec<String>]) -> BTreeMap<Vec<String>, Vec<Vec<String>>> {
    let header = &table[0];
    let col = |name: &str| header.iter().position(|h| h == name).expect("column");
    let key = [col("org_name"), col("report_id"), col("domain"), col("begin_date"), col("end_date")];
    let mut out: BTreeMap<Vec<String>, Vec<Vec<String>>> = BTreeMap::new();
    for row in &table[1..] {
        out.entry(key.iter().map(|&i| row[i].clone()).collect()).or_default().push(row.clone());
    }
    out
}

#[test]
fn stored_records_export_as_the_files_convert() {
    let store = Store::build();
    let exported = csv(&store.export("records", "csv", &[]));
    let parsed = run(&["parse", "--csv", s(&corpus())]);
    // Exit 1: some corpus files (licences, an empty file) hold no report.
    assert_eq!(parsed.status.code(), Some(1), "{}", String::from_utf8_lossy(&parsed.stderr));
    assert!(String::from_utf8_lossy(&parsed.stderr).contains("LICENSE"), "inputs without reports are named");
    let converted = csv(&String::from_utf8(parsed.stdout).expect("utf-8"));
    assert_eq!(exported[0], converted[0], "one header");

    // A report sent twice (in two files) is stored once: each stored report's rows are
    // the rows of one of the parsed copies, in the same order.
    let (stored, files) = (by_identity(&exported), by_identity(&converted));
    assert_eq!(stored.keys().collect::<Vec<_>>(), files.keys().collect::<Vec<_>>(), "same reports");
    let mut copies: HashMap<&Vec<String>, usize> = HashMap::new();
    for row in &converted[1..] {
        *copies.entry(row).or_default() += 1;
    }
    for (identity, rows) in &stored {
        let parsed_rows = &files[identity];
        assert!(
            parsed_rows.len() % rows.len() == 0
                && parsed_rows.chunks(rows.len()).any(|copy| copy == rows.as_slice()),
            "{identity:?}: stored rows differ from every parsed copy"
        );
    }
    assert!(stored.values().map(Vec::len).sum::<usize>() > 2000);
}

#[test]
fn failures_export_as_ruaflow_failures_shows_them() {
    let store = Store::build();
    let failures = |extra: &[&str]| -> Vec<Value> {
        let mut args = vec!["failures", "--db", s(&store.db), "--json"];
        args.extend_from_slice(extra);
        ok(run(&args)).lines().map(|l| serde_json::from_str(l).expect("JSON")).collect()
    };
    let shown = failures(&[]);
    assert!(shown.len() >= 2, "the corpus holds failure reports: {}", shown.len());
    let exported = store.rows("failures", &[]);
    // The same reports (export in stored order, `failures` newest first), field for field.
    let key = |v: &Value| v.to_string();
    let mut a: Vec<String> = shown.iter().map(key).collect();
    let mut b: Vec<String> = exported.iter().map(key).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    // CSV: the same columns as `failures --csv`.
    let table = csv(&store.export("failures", "csv", &[]));
    let theirs = csv(&ok(run(&["failures", "--db", s(&store.db), "--csv"])));
    assert_eq!(table[0], theirs[0]);
    assert_eq!(table.len(), theirs.len());
    // The shared range: by the day the message arrived, --days from the newest such day.
    let newest = shown[0]["arrival_time"].as_str().expect("time")[..10].to_owned();
    let last_day = failures(&["--days", "1"]);
    assert!(
        !last_day.is_empty()
            && last_day.iter().all(|f| f["arrival_time"].as_str().is_some_and(|t| t.starts_with(&newest)))
    );
    assert_eq!(store.rows("failures", &["--since", &newest]).len(), failures(&["--since", &newest]).len());
    let bad = run(&["failures", "--db", s(&store.db), "--since", "2026-02-30"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn sources_lists_the_top_senders_of_the_range() {
    let store = Store::build();
    let all = store.rows("sources", &["--domain", "example.com"]);
    let mut by_volume: Vec<u64> = all.iter().map(|r| r["count"].as_u64().expect("n")).collect();
    by_volume.sort_unstable_by(|a, b| b.cmp(a));

    let json =
        ok(run(&["sources", "--db", s(&store.db), "--domain", "example.com", "--json", "--limit", "3"]));
    let top: Vec<Value> = json.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    assert_eq!(top.len(), 3);
    // Each source carries the sender model's answer: the corpus's top senders pass SPF
    // aligned, so their own SPF authorizes them.
    let statuses = ["configured", "authorized", "service", "familiar", "unknown"];
    assert!(all.iter().all(|r| statuses.contains(&r["sender_status"].as_str().expect("status"))), "{all:?}");
    assert!(all.iter().any(|r| r["sender_status"] == "authorized"
        && r["sender_reason"].as_str().is_some_and(|why| why.starts_with("SPF-aligned pass since"))));
    assert_eq!(top.iter().map(|r| r["count"].as_u64().expect("n")).collect::<Vec<_>>(), by_volume[..3]);

    let text = ok(run(&["sources", "--db", s(&store.db), "--domain", "example.com", "--limit", "3"]));
    assert_eq!(text.lines().count(), 4, "a header and three sources:\n{text}");
    assert!(text
        .lines()
        .nth(1)
        .is_some_and(|l| l.contains(top[0]["source_ip_address"].as_str().expect("ip"))));
    let none = ok(run(&["sources", "--db", s(&store.db), "--since", "2099-01-01"]));
    assert_eq!(none, "no sources in the range\n");
}
