//! End-to-end tests of the embedded pipeline (`ruaflow run --once`): idempotency by
//! bytes and by report identity, and exact totals after the process is killed mid-run.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{corpus, ruaflow};

use common::sqlite_totals as totals;

fn run_once(db: &Path, inputs: &[&Path]) -> String {
    let out = ruaflow()
        .arg("run")
        .arg("--once")
        .arg("--offline")
        .arg("--db")
        .arg(db)
        .args(inputs)
        .output()
        .expect("run");
    assert!(out.status.success(), "run failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn the_same_report_in_any_wrapping_is_counted_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).expect("mkdir");
    let src = corpus().join("parsedmarc/extract_report");
    for name in ["nice-input.xml", "nice-input.xml.gz", "nice-input.xml.zip"] {
        std::fs::copy(src.join(name), inputs.join(name)).expect("copy");
    }
    // The same gzip, attached to a mail message.
    let gz = std::fs::read(src.join("nice-input.xml.gz")).expect("read");
    let eml = format!(
        "From: noreply-dmarc-support@google.com\r\nSubject: Report domain: example.com\r\nMIME-Version: 1.0\r\n\
         Content-Type: application/gzip; name=report.xml.gz\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        base64(&gz)
    );
    std::fs::write(inputs.join("mail.eml"), eml).expect("write eml");

    let db = dir.path().join("t.db");
    let summary = run_once(&db, &[&inputs]);
    assert!(summary.contains("1 reports, 20 records, 3047 messages stored"), "{summary}");
    assert!(summary.contains("3 duplicate reports"), "{summary}");
    let first = totals(&db);
    assert_eq!((first.reports, first.records, first.messages, first.aggregated), (1, 20, 3047, 3047));

    // Delivered again: byte-identical inputs are skipped before parsing.
    let again = run_once(&db, &[&inputs]);
    assert!(again.contains("0 reports") && again.contains("4 duplicate inputs"), "{again}");
    assert_eq!(totals(&db), first);
}

#[test]
fn the_corpus_twice_changes_no_total() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("t.db");
    run_once(&db, &[&corpus()]);
    let first = totals(&db);
    assert!(first.reports >= 40 && first.messages > 8_000, "{first:?}");
    assert_eq!(first.messages, first.aggregated, "aggregates agree with records");
    assert_eq!(first.messages, first.selector_messages + unsigned_messages(&db), "selector aggregates agree");
    run_once(&db, &[&corpus()]);
    assert_eq!(totals(&db), first);
}

/// Messages in records that carried no DKIM result at all (absent from the selector table).
fn unsigned_messages(db: &Path) -> u64 {
    let conn = rusqlite::Connection::open(db).expect("open");
    conn.query_row("SELECT COALESCE(SUM(count),0) FROM dmarc_records WHERE dkim_domain IS NULL", [], |r| {
        r.get(0)
    })
    .expect("query")
}

#[test]
fn a_run_killed_at_any_moment_resumes_to_exact_totals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("synth");
    let out = ruaflow()
        .args(["synth", "--seed", "7", "--scenario", "replay-flood", "--scale", "2", "--out"])
        .arg(&data)
        .output()
        .expect("synth");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let reference = dir.path().join("reference.db");
    run_once(&reference, &[&data]);
    let expected = totals(&reference);
    assert!(expected.records > 1_000, "data set too small to interrupt: {expected:?}");

    let db = dir.path().join("killed.db");
    // Kills that landed between two commits: some of the data stored, not all of it.
    let mut between_commits = 0;
    let mut stored_after = Vec::new();
    for attempt in 0..6u64 {
        let mut child = ruaflow()
            .arg("run")
            .arg("--once")
            .arg("--offline")
            .arg("--db")
            .arg(&db)
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        // Kill at a different moment each time: after some commits, mid-batch.
        let deadline = Instant::now() + Duration::from_millis(150 + attempt * 170);
        while Instant::now() < deadline {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let killed = child.try_wait().expect("wait").is_none();
        if killed {
            child.kill().expect("kill -9");
        }
        child.wait().expect("reap");
        let stored = if db.exists() { totals(&db).records } else { 0 };
        stored_after.push(stored);
        if killed && stored > 0 && stored < expected.records {
            between_commits += 1;
        }
    }
    assert!(
        between_commits > 0,
        "no kill landed between two commits (records stored after each: {stored_after:?} of {}); use a larger data set",
        expected.records
    );
    run_once(&db, &[&data]);
    assert_eq!(totals(&db), expected, "after {between_commits} kills between commits ({stored_after:?})");
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (i, chunk) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.push_str("\r\n");
        }
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for j in 0..4 {
            if j <= chunk.len() {
                out.push(char::from(A[(n >> (18 - 6 * j)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn watching_picks_up_new_files_and_sigterm_commits_and_exits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).expect("mkdir");
    let src = corpus().join("parsedmarc/extract_report/nice-input.xml");
    std::fs::copy(&src, inputs.join("first.xml")).expect("copy");
    let db = dir.path().join("t.db");
    let mut child = ruaflow()
        .args(["run", "--offline", "--db"])
        .arg(&db)
        .arg(&inputs)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stored = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if common::try_sqlite_totals(&db).is_ok_and(|t| t.reports >= n) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    };
    assert!(stored(1), "the first file was not stored");
    // A new report appears in the watched directory.
    std::fs::copy(corpus().join("dmarc-report-viewer/dmarc-reports/google.xml"), inputs.join("second.xml"))
        .expect("copy");
    assert!(stored(2), "the new file was not picked up");

    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "{exit:?}");
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().expect("stdout"), &mut out).expect("read");
    assert!(out.contains("2 reports"), "summary after SIGTERM: {out}");
    assert_eq!(totals(&db).reports, 2);
}

/// While `run` watches, new sources are enriched as they come (here from the shared test
/// ASN database, offline), not only when it stops.
#[test]
fn watching_enriches_new_sources_while_it_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).expect("mkdir");
    let mmdb = corpus().join("../mmdb/GeoLite2-ASN-Test.mmdb");
    let config = dir.path().join("ruaflow.toml");
    std::fs::write(&config, format!("[enrich]\nasn_db = \"{}\"\n", mmdb.display())).expect("config");
    let report = r#"<?xml version="1.0"?>
<feedback>
  <report_metadata><org_name>example.net</org_name><email>dmarc@example.net</email>
    <report_id>watch-enrich-1</report_id><date_range><begin>1788220800</begin><end>1788307199</end></date_range>
  </report_metadata>
  <policy_published><domain>example.com</domain><p>none</p></policy_published>
  <record><row><source_ip>1.0.0.1</source_ip><count>3</count>
    <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results><dkim><domain>example.com</domain><result>pass</result></dkim>
      <spf><domain>example.com</domain><result>pass</result></spf></auth_results></record>
</feedback>
"#;
    std::fs::write(inputs.join("report.xml"), report).expect("report");
    let db = dir.path().join("t.db");
    let mut child = ruaflow()
        .args(["run", "--offline", "--db"])
        .arg(&db)
        .arg("--config")
        .arg(&config)
        .arg(&inputs)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let asn = || -> Option<i64> {
        let conn =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
        conn.query_row("SELECT asn FROM sources WHERE ip = '1.0.0.1'", [], |r| r.get(0)).ok()?
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline && asn().is_none() {
        std::thread::sleep(Duration::from_millis(500));
    }
    let still_running = child.try_wait().expect("wait").is_none();
    let enriched = asn();
    let _ = common::terminate(child);
    assert!(still_running, "run stopped by itself");
    assert_eq!(enriched, Some(15169), "the source was enriched while run was watching");
}

/// `[metrics] listen`: while `run` watches, Prometheus text on its own address with the
/// pipeline's counters as they move, the queue's depth and detection time.
#[test]
fn watching_serves_pipeline_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).expect("mkdir");
    std::fs::copy(corpus().join("parsedmarc/extract_report/nice-input.xml"), inputs.join("first.xml"))
        .expect("copy");
    let port = common::free_port();
    let config = dir.path().join("ruaflow.toml");
    std::fs::write(&config, format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n")).expect("config");
    let db = dir.path().join("t.db");
    let child = ruaflow()
        .args(["run", "--offline", "--db"])
        .arg(&db)
        .arg("--config")
        .arg(&config)
        .arg(&inputs)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let scrape = || -> String {
        ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default()
    };
    let value = |text: &str, name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut text = String::new();
    while Instant::now() < deadline {
        text = scrape();
        if value(&text, "ruaflow_reports_total").is_some_and(|n| n >= 1.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let first = value(&text, "ruaflow_records_total");
    // A second report arrives: the counters move.
    std::fs::copy(corpus().join("dmarc-report-viewer/dmarc-reports/google.xml"), inputs.join("second.xml"))
        .expect("copy");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut later = String::new();
    while Instant::now() < deadline {
        later = scrape();
        if value(&later, "ruaflow_reports_total").is_some_and(|n| n >= 2.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let clean = common::terminate(child);
    assert_eq!(value(&text, "ruaflow_reports_total"), Some(1.0), "{text}");
    assert_eq!(value(&later, "ruaflow_reports_total"), Some(2.0), "{later}");
    assert!(value(&later, "ruaflow_records_total") > first, "{later}");
    assert_eq!(value(&later, "ruaflow_dead_letters_total"), Some(0.0), "{later}");
    assert!(later.contains("ruaflow_queue_depth"), "{later}");
    assert!(later.contains("ruaflow_detection_seconds"), "{later}");
    assert!(clean, "run did not stop cleanly");
}
