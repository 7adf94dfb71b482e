//! DMARC failure reports end to end in the embedded store: the corpus's failure reports
//! go through `ruaflow run --once`, are stored once each and redacted by default, and
//! `ruaflow failures` lists them (text, JSON lines, CSV, filters); an aggregate report
//! that shows the source sending SPF-aligned mail turns it from `unknown` into
//! `authorized`; the configuration can allow more to be stored.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn corpus_failures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/parsedmarc/failure")
}

fn ruaflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ruaflow")).args(args).output().expect("run ruaflow")
}

fn ok(output: Output) -> String {
    assert!(output.status.success(), "exit {:?}: {}", output.status, String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8 stdout")
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn run(db: &Path, extra: &[&str]) -> String {
    let mut args = vec!["run", "--once", "--offline", "--db", s(db)];
    args.extend_from_slice(extra);
    ok(ruaflow(&args))
}

fn failures(db: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["failures", "--db", s(db), "--json"];
    args.extend_from_slice(extra);
    ok(ruaflow(&args)).lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect()
}

/// Strings of the corpus's original messages that are personal: local parts of the
/// addresses and the subjects. None may be stored by default.
const PERSONAL: &[&str] = &[
    "sharepoint@",
    "peter.pan@",
    "sender@",
    "recipient@",
    "info@",
    "user@",
    "redacted@",
    "bounces+",
    "Interaktive",
    "Rent Reminder",
    "Payment from your account",
    "Subject line, could be UTF8 encoded",
];

#[test]
fn corpus_failure_reports_are_stored_once_redacted_and_listed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("store.db");
    let summary = run(&db, &[s(&corpus_failures())]);
    // Five files, four reports: the LinkedIn report comes twice (LF and CRLF lines).
    assert!(summary.contains("4 failure reports stored"), "{summary}");
    assert!(summary.contains("1 duplicate reports"), "{summary}");
    // Redelivered in another wrapping (an mbox of both LinkedIn files): nothing new.
    let mbox = dir.path().join("again.mbox");
    let mut again = Vec::new();
    for name in ["dmarc_ruf_report_linkedin.eml", "exim_plain_text_only_no_arf_part.eml"] {
        let bytes = std::fs::read(corpus_failures().join(name)).expect("read corpus file");
        if !bytes.starts_with(b"From ") {
            again.extend_from_slice(b"From someone@example.net Mon Jan  1 00:00:00 2024\n");
        }
        again.extend_from_slice(&bytes);
        again.push(b'\n');
    }
    std::fs::write(&mbox, again).expect("write mbox");
    let summary = run(&db, &[s(&mbox)]);
    assert!(summary.contains("0 failure reports stored"), "{summary}");

    let all = failures(&db, &[]);
    assert_eq!(all.len(), 4, "{all:?}");
    let arrivals: Vec<i64> = all.iter().map(|e| e["arrival"].as_i64().expect("arrival")).collect();
    assert!(arrivals.windows(2).all(|w| w[0] >= w[1]), "newest first: {arrivals:?}");
    let text = serde_json::to_string(&all).expect("json");
    for personal in PERSONAL {
        assert!(!text.contains(personal), "{personal:?} was stored: {text}");
    }
    let linkedin = all.iter().find(|e| e["reporter"] == "linkedin.com").expect("linkedin report");
    assert_eq!(linkedin["domain"], "example.com");
    assert_eq!(linkedin["source_ip"], "10.10.10.10");
    assert_eq!(linkedin["auth_failures"], "dmarc");
    assert_eq!(linkedin["delivery_result"], "delivered");
    assert_eq!(linkedin["header_from"], "*@example.com");
    assert_eq!(linkedin["header_to"], "*@linkedin.com");
    assert_eq!(linkedin["subject"], Value::Null);
    assert_eq!(linkedin["message_id"], "<01010101010101010101010101010101@ABAB01MS0016.someserver.loc>");
    assert_eq!(linkedin["redacted"], "local_parts,subject,body");
    assert_eq!(linkedin["sender"], "unknown");
    let netease = all.iter().find(|e| e["reporter"] == "163.com").expect("netease report");
    assert_eq!(netease["dkim_domain"], "entrata.com");
    assert_eq!(netease["identity_alignment"], "spf,dkim");
    assert_eq!(netease["mail_from"], "<*@email.entrata.com>");
    let exim = all.iter().find(|e| e["source_ip"] == "203.0.113.68").expect("exim report");
    assert!(
        exim["original_authentication_results"]
            .as_str()
            .is_some_and(|a| a.contains("smtp.mailfrom=*@example.com")),
        "{exim}"
    );

    // Filters.
    assert_eq!(failures(&db, &["--domain", "EXAMPLE.com"]).len(), 2);
    let in_2018 = failures(&db, &["--since", "2018-01-01", "--until", "2018-12-31"]);
    assert_eq!(in_2018.len(), 2, "{in_2018:?}");
    assert_eq!(failures(&db, &["--until", "2018-09-28"]).len(), 1, "a bare --until date includes its day");
    let bad = ruaflow(&["failures", "--db", s(&db), "--since", "last week"]);
    assert_eq!(bad.status.code(), Some(2), "a bad date is a usage error");

    // CSV: a header and one row per report, every row as wide as the header.
    let csv = ok(ruaflow(&["failures", "--db", s(&db), "--csv"]));
    let header = csv.lines().next().expect("header");
    assert!(header.starts_with("arrival,") && header.contains(",source_ip,"), "{header}");
    assert_eq!(csv.matches("\r\n").count(), 5, "{csv}");
    // Text.
    let table = ok(ruaflow(&["failures", "--db", s(&db)]));
    assert!(table.contains("10.10.10.10") && table.contains("(redacted)"), "{table}");
}

/// An aggregate report in which 10.10.10.10 sends SPF-aligned passing mail for
/// example.com on the day of the LinkedIn failure report (2019-04-30).
fn aggregate_from_the_source() -> &'static str {
    r#"<?xml version="1.0"?>
<feedback>
  <report_metadata><org_name>receiver.example</org_name><email>r@receiver.example</email>
    <report_id>status-1</report_id>
    <date_range><begin>1556582400</begin><end>1556668799</end></date_range></report_metadata>
  <policy_published><domain>example.com</domain><p>none</p></policy_published>
  <record><row><source_ip>10.10.10.10</source_ip><count>7</count>
    <policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results><spf><domain>example.com</domain><result>pass</result></spf></auth_results></record>
</feedback>
"#
}

#[test]
fn the_sender_status_comes_from_what_the_store_knows_and_privacy_is_configurable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("store.db");
    let linkedin = corpus_failures().join("dmarc_ruf_report_linkedin.eml");
    run(&db, &[s(&linkedin)]);
    assert_eq!(failures(&db, &[])[0]["sender"], "unknown");
    let aggregate = dir.path().join("aggregate.xml");
    std::fs::write(&aggregate, aggregate_from_the_source()).expect("write aggregate");
    run(&db, &[s(&aggregate)]);
    assert_eq!(failures(&db, &[])[0]["sender"], "authorized", "SPF-aligned mail makes the source known");

    // A configuration that allows everything stores the original as it was.
    let config = dir.path().join("ruaflow.toml");
    std::fs::write(
        &config,
        "[failure_reports]\nstore_local_parts = true\nstore_subject = true\nstore_body = true\n",
    )
    .expect("write config");
    let open_db = dir.path().join("open.db");
    run(&open_db, &["--config", s(&config), s(&linkedin)]);
    let entry = &failures(&open_db, &[])[0];
    assert_eq!(entry["header_from"], "Sender <sender@example.com>");
    assert_eq!(entry["subject"], "Subject line, could be UTF8 encoded");
    assert_eq!(entry["redacted"], "");
    let conn = rusqlite::Connection::open(&open_db).expect("open store");
    let body: Option<String> =
        conn.query_row("SELECT body FROM failure_reports", [], |r| r.get(0)).expect("body column");
    assert!(body.is_some_and(|b| b.contains("HTML Text")), "the body is stored when allowed");
    let conn = rusqlite::Connection::open(&db).expect("open store");
    let body: Option<String> =
        conn.query_row("SELECT body FROM failure_reports", [], |r| r.get(0)).expect("body column");
    assert_eq!(body, None, "never by default");
}

/// A sender declared after its mail was stored takes effect at the next run, without the
/// source reporting again: the sender model, `sources` and the failure listing all say
/// `configured` with the note; taking the declaration out makes it `authorized` again.
#[test]
fn a_sender_declared_later_stands_as_configured_everywhere_at_the_next_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("store.db");
    let aggregate = dir.path().join("aggregate.xml");
    std::fs::write(&aggregate, aggregate_from_the_source()).expect("write aggregate");
    let linkedin = corpus_failures().join("dmarc_ruf_report_linkedin.eml");
    run(&db, &[s(&aggregate), s(&linkedin)]);
    assert_eq!(failures(&db, &[])[0]["sender"], "authorized");

    let config = dir.path().join("ruaflow.toml");
    std::fs::write(
        &config,
        "[[senders]]\ndomain = \"example.com\"\nnetworks = [\"10.10.10.0/24\"]\nnote = \"the CRM\"\n",
    )
    .expect("write config");
    // Nothing new to store: the aggregate is a duplicate.
    run(&db, &["--config", s(&config), s(&aggregate)]);
    assert_eq!(failures(&db, &[])[0]["sender"], "configured");
    let listed = ok(ruaflow(&["sources", "--db", s(&db), "--json"]));
    let row: Value = serde_json::from_str(listed.lines().next().expect("one source")).expect("json");
    assert_eq!(row["sender_status"], "configured", "{row}");
    assert!(row["sender_reason"].as_str().is_some_and(|r| r.contains("the CRM")), "{row}");

    run(&db, &[s(&aggregate)]);
    assert_eq!(failures(&db, &[])[0]["sender"], "authorized", "the declaration was taken out");
}

#[test]
fn a_store_from_before_failure_reports_is_read_then_migrated() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("store.db");
    let aggregate = dir.path().join("aggregate.xml");
    std::fs::write(&aggregate, aggregate_from_the_source()).expect("write aggregate");
    run(&db, &[s(&aggregate)]);
    // As a store of schema version 1 looks.
    let conn = rusqlite::Connection::open(&db).expect("open store");
    conn.execute_batch("DROP TABLE failure_reports; DELETE FROM schema_migrations WHERE version = 3")
        .expect("downgrade");
    drop(conn);
    assert_eq!(ok(ruaflow(&["failures", "--db", s(&db)])), "no failure reports\n");
    let report: Value =
        serde_json::from_str(&ok(ruaflow(&["report", "--db", s(&db), "--json"]))).expect("report json");
    assert_eq!(report["totals"]["failure_reports"], 0);
    assert_eq!(report["totals"]["messages"], 7, "the rest of the store reads as before");
    let conn = rusqlite::Connection::open(&db).expect("open store");
    let tables: i64 = conn
        .query_row("SELECT COUNT(*) FROM sqlite_master WHERE name = 'failure_reports'", [], |r| r.get(0))
        .expect("tables");
    assert_eq!(tables, 0, "reading leaves the file untouched");
    drop(conn);
    run(&db, &[s(&corpus_failures())]);
    assert_eq!(failures(&db, &[]).len(), 4, "`run` migrated the store");
}
