//! End-to-end tests of the distributed pipeline against a real Kafka broker (KRaft) and a
//! real ClickHouse server: `ruaflow migrate`, `ruaflow ingest dir`, `ruaflow process`.
//!
//! The services are started by `tests/run` (`tests/services/up`), which exports
//! RUAFLOW_TEST_KAFKA and RUAFLOW_TEST_CLICKHOUSE. Each test uses a topic, a consumer
//! group and a database of its own; the outage test starts a ClickHouse of its own, so
//! stopping it disturbs no other test. Without the services the tests are skipped with a
//! message, except with CI=true, where a missing service fails them.
//!
//! Expected totals come from two independent places: `ruaflow parse --json` (reports,
//! records and messages, each report counted once by identity) and the embedded
//! pipeline (`ruaflow run --once`) on the same inputs, which must agree with ClickHouse
//! on every total, dead letters included.

mod common;
#[path = "../processor/tests/mmdb_writer/mod.rs"]
mod mmdb_writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;

use common::cluster::{
    clickhouse_query, clickhouse_totals, embedded_totals, migrate, process_command, services, unique,
    wait_for, OwnService,
};
use common::{corpus, ruaflow, Guarded, Totals};

/// (reports, records, messages) from `ruaflow parse --json`, each report counted once by
/// identity (the corpus holds some reports in several encodings).
fn parse_totals(inputs: &[&Path]) -> (u64, u64, u64) {
    let out = ruaflow().args(["parse", "--json"]).args(inputs).output().expect("parse");
    let mut reports: HashMap<String, (u64, u64)> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let n = |k: &str| v[k].as_u64().unwrap_or_default();
        match v["kind"].as_str() {
            Some("dmarc") => {
                let key = format!(
                    "d|{}|{}|{}|{}|{}",
                    s("org_name"),
                    s("report_id"),
                    s("domain"),
                    n("begin"),
                    n("end")
                );
                reports.insert(key, (n("record_count"), n("message_count")));
            }
            Some("tlsrpt") => {
                reports.insert(format!("t|{}|{}", s("organization_name"), s("report_id")), (0, 0));
            }
            _ => {}
        }
    }
    let (records, messages) = reports.values().fold((0, 0), |(r, m), (a, b)| (r + a, m + b));
    (reports.len() as u64, records, messages)
}

/// `files` without those holding a report whose identity an earlier file already holds
/// with other contents.
fn one_copy_per_identity(files: Vec<PathBuf>) -> Vec<PathBuf> {
    let out = ruaflow().args(["parse", "--json"]).args(&files).output().expect("parse");
    let mut first: HashMap<String, String> = HashMap::new();
    let mut drop = std::collections::HashSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        if v["kind"] != "dmarc" {
            continue;
        }
        let identity =
            format!("{}|{}|{}|{}|{}", v["org_name"], v["report_id"], v["domain"], v["begin"], v["end"]);
        let content = v["report"].to_string();
        match first.get(&identity) {
            Some(seen) if *seen != content => {
                drop.insert(PathBuf::from(v["file"].as_str().unwrap_or_default()));
            }
            Some(_) => {}
            None => {
                first.insert(identity, content);
            }
        }
    }
    assert!(!drop.is_empty(), "the corpus was expected to hold conflicting copies");
    files.into_iter().filter(|f| !drop.contains(f)).collect()
}

fn ingest(kafka: &str, topic: &str, partitions: u32, inputs: &[&Path]) {
    let out = ruaflow()
        .args(["ingest", "dir", "--once", "--kafka", kafka, "--topic", topic, "--partitions"])
        .arg(partitions.to_string())
        .args(inputs)
        .output()
        .expect("ingest");
    assert!(out.status.success(), "ingest failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 failed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A `ruaflow process` with small batches (many inserts and offset commits per run),
/// its log in `log`.
fn process(kafka: &str, topic: &str, clickhouse: &str, group: &str, log: &Path) -> Guarded {
    spawn_logged(process_command(kafka, topic, clickhouse, group, Some(300)), log)
}

/// Starts `command` with RUST_LOG=info, its output appended to `log`.
fn spawn_logged(mut command: std::process::Command, log: &Path) -> Guarded {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log");
    Guarded::new(
        command
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start ruaflow"),
    )
}

/// The totals stay at `want` for a while (nothing arrives late and doubles a count).
fn stays(url: &str, db: &str, want: Totals) {
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(clickhouse_totals(url, db).expect("totals"), want, "totals changed after they were reached");
}

fn synth(dir: &Path, scenario: &str, seed: u32, days: u32) -> PathBuf {
    let out = ruaflow()
        .args(["synth", "--out"])
        .arg(dir)
        .args(["--scenario", scenario, "--seed", &seed.to_string(), "--days", &days.to_string()])
        .output()
        .expect("synth");
    assert!(out.status.success(), "synth failed: {}", String::from_utf8_lossy(&out.stderr));
    dir.join("reports")
}

/// Splits a synthetic data set into two loads (every other file moves to a sibling
/// directory). Two data sets from separate `synth` runs would not do: reporters' ids are
/// deterministic per day (Google's TLS ids are the date and domain), so they would share
/// report identities with different contents.
fn halves(dir: &Path) -> (PathBuf, PathBuf) {
    let second = dir.with_extension("second");
    std::fs::create_dir_all(&second).expect("mkdir");
    for (i, file) in walk(dir).into_iter().enumerate() {
        if i % 2 == 1 {
            std::fs::rename(&file, second.join(file.file_name().expect("name"))).expect("move");
        }
    }
    (dir.to_path_buf(), second)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn log_text(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Messages on a topic with their headers, read from the beginning.
fn topic_messages(kafka: &str, topic: &str, expect: usize) -> Vec<HashMap<String, String>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "52428800")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < expect && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let mut headers: HashMap<String, String> = HashMap::new();
            if let Some(h) = m.headers() {
                for header in h.iter() {
                    let value =
                        header.value.map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
                    headers.insert(header.key.to_owned(), value);
                }
            }
            headers.insert("payload_len".into(), m.payload().map_or(0, <[u8]>::len).to_string());
            headers.insert(
                "key".into(),
                m.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default(),
            );
            headers.insert("partition".into(), m.partition().to_string());
            out.push(headers);
        }
    }
    out
}

#[test]
fn corpus_and_a_synthetic_month_arrive_exactly_once_with_dead_letters_on_the_dlq() {
    let Some(svc) = services() else { return };
    let (name, url) = svc.database("e2e");
    let tmp = tempfile::tempdir().expect("tempdir");
    let synthetic = synth(&tmp.path().join("synth"), "replay-flood", 7, 10);
    // The corpus has reports that share an identity but differ in content (a resent,
    // edited report). Both stores keep the first copy they store, and which copy comes
    // first through Kafka's partitions is a matter of timing; so only one file of each
    // such group is loaded here, and every total has a single right answer.
    let corpus_files = one_copy_per_identity(walk(&corpus()));
    let mut inputs: Vec<&Path> = corpus_files.iter().map(PathBuf::as_path).collect();
    inputs.push(&synthetic);

    let want = embedded_totals(&inputs);
    let (reports, records, messages) = parse_totals(&inputs);
    assert_eq!(
        (want.reports, want.records, want.messages),
        (reports, records, messages),
        "embedded vs parse"
    );
    assert!(want.dead_letters >= 3 && want.records > 1000 && want.failure_reports >= 4, "{want:?}");

    migrate(&url);
    ingest(&svc.kafka, &name, 4, &inputs);
    // Publishing everything twice (a source that redelivers) changes nothing.
    ingest(&svc.kafka, &name, 4, &inputs);
    let log = tmp.path().join("process.log");
    let child = process(&svc.kafka, &name, &url, &name, &log);
    let reached = wait_for(&svc.clickhouse, &name, want, Duration::from_secs(180));
    let clean = common::terminate(child);
    assert!(reached.is_ok(), "{reached:?}\n{}", log_text(&log));
    assert!(clean, "process did not exit 0 on SIGTERM:\n{}", log_text(&log));
    stays(&svc.clickhouse, &name, want);

    // Failure reports arrive redacted, as in the embedded store: no local part, subject
    // or body by default.
    let leaks = clickhouse_query(
        &svc.clickhouse,
        &format!(
            "SELECT count() FROM {name}.failure_reports FINAL
             WHERE match(concat(header_from, ' ', header_to, ' ', mail_from, ' ', rcpt_to), '[^* ]@')
                OR subject != '' OR body != '' FORMAT TSV"
        ),
    )
    .expect("query failure reports");
    assert_eq!(leaks.trim(), "0", "failure reports stored unredacted");
    let linkedin = clickhouse_query(
        &svc.clickhouse,
        &format!(
            "SELECT header_from, redacted FROM {name}.failure_reports FINAL WHERE reporter = 'linkedin.com' FORMAT TSV"
        ),
    )
    .expect("query failure reports");
    assert_eq!(linkedin, "*@example.com\tlocal_parts,subject,body\n");

    // Every dead letter is on the DLQ too, whole, with its reason (twice: it was
    // published twice, and the topic is a log, not a table).
    let dlq = topic_messages(&svc.kafka, &format!("{name}.dlq"), 2 * want.dead_letters as usize);
    assert_eq!(dlq.len() as u64, 2 * want.dead_letters, "{dlq:?}");
    assert!(dlq.iter().all(|h| !h["reason"].is_empty() && h["source"] == "dir"), "{dlq:?}");
    assert!(dlq.iter().any(|h| h["reason"].contains("unrecognized content")), "{dlq:?}");

    // Offsets were committed: a new processor in the same group finds nothing to do.
    let child = process(&svc.kafka, &name, &url, &name, &log);
    std::thread::sleep(Duration::from_secs(5));
    assert!(common::terminate(child));
    let last = log_text(&log).lines().rfind(|l| l.contains("inputs,")).unwrap_or_default().to_owned();
    assert!(last.starts_with("0 inputs"), "a restarted processor re-read committed input: {last}");
}

#[test]
fn a_processor_killed_ten_times_mid_load_leaves_exact_totals() {
    let Some(svc) = services() else { return };
    let (name, url) = svc.database("kill");
    let tmp = tempfile::tempdir().expect("tempdir");
    let synthetic = synth(&tmp.path().join("synth"), "spoofing-spike", 11, 35);
    let want = embedded_totals(&[&synthetic]);

    migrate(&url);
    ingest(&svc.kafka, &name, 4, &[&synthetic]);
    let log = tmp.path().join("process.log");
    let mut seed = 0x9e37_79b9_u32;
    // Kills that landed between two commits: some of the load in ClickHouse, not all.
    let mut between_commits = 0;
    let mut seen = Vec::new();
    let assignments = || log_text(&log).matches("partitions assigned").count();
    for _ in 0..10 {
        let joined_before = assignments();
        let mut child = process(&svc.kafka, &name, &url, &name, &log);
        // A pseudo-random moment between 0.5 and 3.5 s into its work, counted from its
        // partitions' assignment (joining the group takes longer on a loaded machine).
        let deadline = Instant::now() + Duration::from_secs(60);
        while assignments() == joined_before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        std::thread::sleep(Duration::from_millis(500 + u64::from(seed % 3000)));
        let running = child.try_wait().expect("wait").is_none();
        let before = clickhouse_totals(&svc.clickhouse, &name).unwrap_or_default();
        child.kill().expect("kill -9");
        child.wait().expect("reap");
        seen.push(before.records);
        if running && before.records > 0 && before.records < want.records {
            between_commits += 1;
        }
    }
    assert!(
        between_commits >= 3,
        "too few kills landed between two commits ({between_commits}; records stored at each kill: {seen:?} of {})",
        want.records
    );
    let child = process(&svc.kafka, &name, &url, &name, &log);
    let reached = wait_for(&svc.clickhouse, &name, want, Duration::from_secs(180));
    let clean = common::terminate(child);
    assert!(reached.is_ok(), "{reached:?}\n{}", log_text(&log));
    assert!(clean);
    stays(&svc.clickhouse, &name, want);
}

#[test]
fn clickhouse_down_for_30_seconds_mid_load_loses_and_doubles_nothing() {
    let Some(svc) = services() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    // A ClickHouse of this test's own: stopping it disturbs no other test.
    let clickhouse = OwnService::start("clickhouse", tmp.path().join("clickhouse"));
    let server = format!("http://{}", clickhouse.address());
    let name = unique("outage");
    let url = format!("{server}/{name}");
    // Two loads: the second arrives while ClickHouse is down, so the processor must
    // hold a batch through the outage whatever its speed.
    let (first, second) = halves(&synth(&tmp.path().join("synth"), "tls-failure", 5, 35));
    let want = embedded_totals(&[&first, &second]);

    migrate(&url);
    ingest(&svc.kafka, &name, 4, &[&first]);
    let log = tmp.path().join("process.log");
    let child = process(&svc.kafka, &name, &url, &name, &log);
    let deadline = Instant::now() + Duration::from_secs(60);
    while clickhouse_totals(&server, &name).map_or(0, |t| t.records) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = clickhouse_totals(&server, &name).expect("totals before the outage");
    clickhouse.service("stop");
    ingest(&svc.kafka, &name, 4, &[&second]);
    std::thread::sleep(Duration::from_secs(30));
    clickhouse.service("start");
    let reached = wait_for(&server, &name, want, Duration::from_secs(180));
    let clean = common::terminate(child);
    let log = log_text(&log);
    clickhouse.service("stop");
    assert!(before.records > 0 && before != want, "the outage did not fall mid-load: {before:?}");
    assert!(log.contains("processing"), "{log}");
    assert!(reached.is_ok(), "{reached:?}\n{log}");
    assert!(clean, "{log}");
    assert!(
        log.contains("insert failed; the batch is held and retried"),
        "the outage was not noticed:\n{log}"
    );
}

#[test]
fn two_processors_share_the_partitions_and_one_leaving_mid_load_changes_no_total() {
    let Some(svc) = services() else { return };
    let (name, url) = svc.database("group");
    let tmp = tempfile::tempdir().expect("tempdir");
    // Two loads: the second arrives after the first processor left, so the one that
    // stays must take over its partitions.
    let (first, second) = halves(&synth(&tmp.path().join("synth"), "new-esp", 3, 35));
    let want = embedded_totals(&[&first, &second]);

    migrate(&url);
    ingest(&svc.kafka, &name, 4, &[&first]);
    let (log_a, log_b) = (tmp.path().join("a.log"), tmp.path().join("b.log"));
    let assigned = |log: &Path| log_text(log).lines().filter(|l| l.contains("partitions assigned")).count();
    let wait_until = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{what} within 60 s\n--- a\n{}\n--- b\n{}",
                log_text(&log_a),
                log_text(&log_b)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // a starts alone and takes every partition; then b joins and the group rebalances,
    // so both take part; then a leaves (a second rebalance) with the second load still
    // to come, which b must take over whole.
    let a = process(&svc.kafka, &name, &url, &name, &log_a);
    wait_until("a assigned", &|| assigned(&log_a) >= 1);
    let b = process(&svc.kafka, &name, &url, &name, &log_b);
    wait_until("the group rebalanced over a and b", &|| assigned(&log_b) >= 1 && assigned(&log_a) >= 2);
    let before = clickhouse_totals(&svc.clickhouse, &name).expect("totals");
    let a_clean = common::terminate(a);
    ingest(&svc.kafka, &name, 4, &[&second]);
    let reached = wait_for(&svc.clickhouse, &name, want, Duration::from_secs(180));
    let b_clean = common::terminate(b);
    let (a_log, b_log) = (log_text(&log_a), log_text(&log_b));
    assert!(reached.is_ok(), "{reached:?}\n--- a\n{a_log}\n--- b\n{b_log}");
    assert!(a_clean && b_clean, "--- a\n{a_log}\n--- b\n{b_log}");
    assert!(before != want, "the first load was over before the first processor left: {before:?}");
    assert!(
        assigned(&log_b) >= 2,
        "b must have been re-assigned after a left\n--- a\n{a_log}\n--- b\n{b_log}"
    );
    let inputs = |log: &str| {
        log.lines()
            .find(|l| l.contains(" inputs, "))
            .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(
        inputs(&a_log) > 0 && inputs(&b_log) > 0,
        "both processors must have done part of the work\n--- a\n{a_log}\n--- b\n{b_log}"
    );
    stays(&svc.clickhouse, &name, want);
}

#[test]
fn a_poison_report_goes_to_the_dlq_and_the_partition_goes_on() {
    let Some(svc) = services() else { return };
    let (name, url) = svc.database("poison");
    let tmp = tempfile::tempdir().expect("tempdir");
    // One partition, so the good reports are queued behind the poison ones.
    let poison = tmp.path().join("poison");
    std::fs::create_dir_all(&poison).expect("mkdir");
    std::fs::write(poison.join("a-truncated.xml.gz"), [0x1f, 0x8b, 0x08, 0x00, 0x00]).expect("write");
    std::fs::write(poison.join("b-broken.xml"), "<feedback><report_metadata><org_name>x</org_name>")
        .expect("write");
    let good = corpus().join("parsedmarc/smtp_tls/rfc8460.json");
    migrate(&url);
    ingest(&svc.kafka, &name, 1, &[&poison]);
    ingest(&svc.kafka, &name, 1, &[&good]);
    let want = embedded_totals(&[&poison, &good]);
    assert_eq!((want.dead_letters, want.reports), (2, 1), "{want:?}");

    let log = tmp.path().join("process.log");
    let child = process(&svc.kafka, &name, &url, &name, &log);
    let reached = wait_for(&svc.clickhouse, &name, want, Duration::from_secs(120));
    let clean = common::terminate(child);
    assert!(reached.is_ok(), "{reached:?}\n{}", log_text(&log));
    assert!(clean);
    let dlq = topic_messages(&svc.kafka, &format!("{name}.dlq"), 2);
    assert_eq!(dlq.len(), 2, "{dlq:?}");
    let reasons: Vec<&str> = dlq.iter().map(|h| h["reason"].as_str()).collect();
    assert!(dlq.iter().any(|h| h["filename"] == "a-truncated.xml.gz" && h["payload_len"] == "5"), "{dlq:?}");
    assert!(reasons.iter().all(|r| !r.is_empty()), "{reasons:?}");
    let stored = clickhouse_query(
        &svc.clickhouse,
        &format!("SELECT reason FROM {name}.dead_letters FINAL ORDER BY reason FORMAT TSV"),
    )
    .expect("dead letters");
    assert_eq!(stored.lines().count(), 2, "{stored}");
}

#[test]
fn a_report_resent_with_other_contents_keeps_the_first_copy() {
    let Some(svc) = services() else { return };
    let (name, url) = svc.database("resent");
    let tmp = tempfile::tempdir().expect("tempdir");
    // Two corpus files with one identity (Test Inc., 1.id.0): no records, then two.
    let first = corpus().join("dmarc-report-converter/test_empty.xml");
    let resent = corpus().join("dmarc-report-converter/test.xml");
    let want = embedded_totals(&[&first]);
    assert_ne!(
        want,
        embedded_totals(&[&resent]),
        "the two copies must differ for this test to mean anything"
    );

    migrate(&url);
    ingest(&svc.kafka, &name, 1, &[&first]);
    let log = tmp.path().join("process.log");
    let child = process(&svc.kafka, &name, &url, &name, &log);
    let stored_first = wait_for(&svc.clickhouse, &name, want, Duration::from_secs(60));
    ingest(&svc.kafka, &name, 1, &[&resent]);
    std::thread::sleep(Duration::from_secs(3));
    let after = clickhouse_totals(&svc.clickhouse, &name);
    assert!(common::terminate(child));
    assert!(stored_first.is_ok(), "{stored_first:?}\n{}", log_text(&log));
    assert_eq!(after, Ok(want), "{}", log_text(&log));
}

/// Firing replay notices as (domain, window_start), from `ruaflow alerts --json`.
fn replay_alerts(db: &Path) -> std::collections::BTreeSet<(String, i64)> {
    let out = ruaflow().args(["alerts", "--json", "--db"]).arg(db).output().expect("alerts");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("alert json"))
        .filter(|a| a["kind"] == "dkim_replay_suspected" && a["state"] == "firing")
        .map(|a| {
            (a["domain"].as_str().unwrap_or_default().to_owned(), a["window_start"].as_i64().unwrap_or(0))
        })
        .collect()
}

/// The sender model of an embedded store, as `sender_model` gives ClickHouse's.
type ModelRow = (String, String, String, i64, i64, u32, u64, Vec<String>);

fn sqlite_model(db: &Path, table: &str) -> Vec<ModelRow> {
    let conn = rusqlite::Connection::open(db).expect("open");
    let mut stmt = conn
        .prepare(&format!(
            "SELECT domain, source, status, first_day, last_day, days_seen, messages, dkim_keys FROM {table}"
        ))
        .expect("prepare");
    let mut rows: Vec<ModelRow> = stmt
        .query_map([], |r| {
            let keys: String = r.get(7)?;
            let mut keys: Vec<String> = serde_json::from_str(&keys).unwrap_or_default();
            keys.sort();
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, keys))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    rows.sort();
    rows
}

fn clickhouse_model(url: &str, db: &str, table: &str) -> Vec<ModelRow> {
    let sql = format!(
        "SELECT domain, source, status, toUInt16(first_day), toUInt16(last_day), days_seen, messages,
                arrayStringConcat(arraySort(dkim_keys), ' ')
         FROM {db}.{table} FINAL FORMAT TSV"
    );
    let text = clickhouse_query(url, &sql).expect("sender model");
    let mut rows: Vec<ModelRow> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let n = |i: usize| f[i].parse::<i64>().expect("number");
            let keys = f[7].split(' ').filter(|k| !k.is_empty()).map(str::to_owned).collect();
            (
                f[0].to_owned(),
                f[1].to_owned(),
                f[2].to_owned(),
                n(3) * 86_400,
                n(4) * 86_400,
                n(5) as u32,
                n(6) as u64,
                keys,
            )
        })
        .collect();
    rows.sort();
    rows
}

/// The partition lists a consumer logged as assigned to it, in order
/// (`partitions assigned … partitions=[0, 3]`).
fn assignments(log: &Path) -> Vec<Vec<String>> {
    log_text(log)
        .lines()
        .filter(|l| l.contains("partitions assigned"))
        .filter_map(|l| l.split_once("partitions=["))
        .map(|(_, list)| list.trim_end_matches(']').split(", ").map(str::to_owned).collect())
        .collect()
}

/// `ruaflow detect` on the digest topic, delivering to `webhook`, its log in `log`.
fn detector(kafka: &str, topic: &str, clickhouse: &str, group: &str, config: &Path, log: &Path) -> Guarded {
    let mut command = ruaflow();
    command
        .args(["detect", "--kafka", kafka, "--topic", topic, "--group", group, "--clickhouse", clickhouse])
        .arg("--config")
        .arg(config);
    spawn_logged(command, log)
}

/// The detector group: three `ruaflow detect` on a digest topic of four partitions, fed by
/// two processors; one detector is killed (SIGKILL) while the flood's digests arrive.
/// Every replay notice is stored once and reaches the webhook once, as the embedded
/// pipeline raises them, and the sender model in ClickHouse equals the embedded one row
/// by row.
#[test]
fn three_detectors_share_the_domains_and_one_killed_mid_flood_changes_nothing() {
    let Some(svc) = services() else { return };
    let (name, url) = svc.database("detect");
    let tmp = tempfile::tempdir().expect("tempdir");
    let synthetic = synth(&tmp.path().join("synth"), "replay-flood", 1, 35);
    let labels: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("synth/labels.json")).expect("labels"))
            .expect("labels json");
    let flood_day = labels["events"][0]["first_day"].as_i64().expect("the flood's first day");
    // The days before the flood, then the flood: the detectors learn first.
    let flood = tmp.path().join("flood");
    std::fs::create_dir_all(&flood).expect("mkdir");
    for file in walk(&synthetic) {
        let name = file.file_name().expect("name").to_string_lossy().into_owned();
        let begin: i64 = name.split('!').nth(2).and_then(|b| b.parse().ok()).expect("begin in the file name");
        if begin >= flood_day {
            std::fs::rename(&file, flood.join(&name)).expect("move");
        }
    }
    let before_count = walk(&synthetic).len();
    let total = before_count + walk(&flood).len();

    // The reference: the embedded pipeline on the same files, in the same order.
    let reference = tmp.path().join("ref.db");
    let config = tmp.path().join("detect.toml");
    let webhook = common::webhook::Webhook::start();
    std::fs::write(
        &config,
        format!(
            "[enrich]\noffline = true\n\n[detect]\n# The synthetic reports are months old: notify as if they were new.\nnotify_max_age_days = 100000\n\n\
             [alerts]\nretries = 5\n\n[[alerts.webhooks]]\nurl = \"{}\"\n",
            webhook.url
        ),
    )
    .expect("config");
    for part in [&synthetic, &flood] {
        let out = ruaflow()
            .args(["run", "--once", "--offline", "--db"])
            .arg(&reference)
            .arg(part)
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let expected = replay_alerts(&reference);
    assert!(!expected.is_empty(), "the scenario must raise a replay alert");

    migrate(&url);
    let logs: Vec<PathBuf> =
        ["a", "b", "d0", "d1", "d2"].iter().map(|n| tmp.path().join(format!("{n}.log"))).collect();
    ingest(&svc.kafka, &name, 4, &[&synthetic]);
    let a = process(&svc.kafka, &name, &url, &name, &logs[0]);
    let b = process(&svc.kafka, &name, &url, &name, &logs[1]);
    let group = format!("{name}_detect");
    let mut detectors: Vec<Guarded> =
        (0..3).map(|i| detector(&svc.kafka, &name, &url, &group, &config, &logs[2 + i])).collect();
    let reports = |want: usize| {
        let deadline = Instant::now() + Duration::from_secs(180);
        while Instant::now() < deadline {
            let n = clickhouse_query(&svc.clickhouse, &format!("SELECT count() FROM {name}.reports FINAL"))
                .ok()
                .and_then(|t| t.trim().parse::<usize>().ok());
            if n == Some(want) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        false
    };
    let all_logs = || logs.iter().map(|l| log_text(l)).collect::<Vec<_>>().join("\n---\n");
    assert!(reports(before_count), "the days before the flood were stored\n{}", all_logs());
    // The detector that owns the flooded domain: its digests' partition, in the last
    // assignment each detector logged.
    let digests = topic_messages(&svc.kafka, &format!("{name}.digests"), before_count);
    let partition = digests
        .iter()
        .find(|m| m["key"] == "example.com")
        .map(|m| m["partition"].clone())
        .unwrap_or_else(|| panic!("no digest of example.com: {digests:?}"));
    std::thread::sleep(Duration::from_secs(2));
    let owner = (0..3)
        .find(|i| assignments(&logs[2 + i]).last().is_some_and(|list| list.contains(&partition)))
        .unwrap_or_else(|| panic!("no detector owns partition {partition}\n{}", all_logs()));
    // The flood arrives; its owner dies while its digests are being read.
    ingest(&svc.kafka, &name, 4, &[&flood]);
    std::thread::sleep(Duration::from_millis(700));
    let mut killed = detectors.remove(owner);
    killed.kill().expect("SIGKILL");
    let _ = killed.wait();
    assert!(reports(total), "every report was stored\n{}", all_logs());

    // Its partitions move to the others (after the session timeout); wait for the
    // notices, then a while longer for any duplicate.
    let firing = |bodies: &[serde_json::Value]| -> Vec<(String, i64)> {
        bodies
            .iter()
            .filter(|a| a["kind"] == "dkim_replay_suspected" && a["state"] == "firing")
            .map(|a| {
                (a["domain"].as_str().unwrap_or_default().to_owned(), a["window_start"].as_i64().unwrap_or(0))
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline && firing(&webhook.received()).len() < expected.len() {
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(15));
    let clean: Vec<bool> = [a, b].into_iter().chain(detectors).map(common::terminate).collect();
    let logs_text = all_logs();
    assert!(clean.iter().all(|c| *c), "{logs_text}");
    // The partition moved to a survivor.
    let taken_over = (0..3)
        .filter(|i| *i != owner)
        .any(|i| assignments(&logs[2 + i]).iter().any(|list| list.contains(&partition)));
    assert!(taken_over, "partition {partition} was not taken over\n{logs_text}");

    // At the webhook: each replay notice once, and no notice of any kind twice.
    let received = webhook.received();
    let mut replays = firing(&received);
    replays.sort();
    assert_eq!(
        replays,
        expected.iter().cloned().collect::<Vec<_>>(),
        "replay notices at the webhook\n{logs_text}"
    );
    let mut identities: Vec<String> = received
        .iter()
        .map(|a| format!("{} {} {} {}", a["kind"], a["domain"], a["window_start"], a["state"]))
        .collect();
    let all = identities.len();
    identities.sort();
    identities.dedup();
    assert_eq!(identities.len(), all, "a notice reached the webhook twice: {received:?}");

    // In the store: each notice once, all of them notified.
    let stored = clickhouse_query(
        &svc.clickhouse,
        &format!(
            "SELECT domain, toUInt32(window_start), notified FROM {name}.notices FINAL
             WHERE kind = 'dkim_replay_suspected' AND state = 'firing' ORDER BY domain, window_start FORMAT TSV"
        ),
    )
    .expect("notices");
    let stored: Vec<(String, i64, u8)> = stored
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some((f.next()?.to_owned(), f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect();
    assert_eq!(
        stored.iter().map(|(d, w, _)| (d.clone(), *w)).collect::<Vec<_>>(),
        expected.iter().cloned().collect::<Vec<_>>()
    );
    assert!(stored.iter().all(|(_, _, notified)| *notified == 1), "{stored:?}");
    let shown = clickhouse_query(
        &svc.clickhouse,
        &format!("SELECT count() FROM {name}.alerts FINAL WHERE kind = 'dkim_replay_suspected' AND state = 'firing'"),
    )
    .expect("alerts");
    assert_eq!(shown.trim().parse::<usize>().ok(), Some(expected.len()), "the dashboards' alerts");

    // An operator lists the notices and acknowledges the replay.
    let listed = |args: &[&str]| {
        let out = ruaflow().args(["alerts", "--clickhouse", &url]).args(args).output().expect("alerts");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let notices: Vec<serde_json::Value> =
        listed(&["--json"]).lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    let replay = notices
        .iter()
        .find(|n| n["kind"] == "dkim_replay_suspected" && n["state"] == "firing")
        .unwrap_or_else(|| panic!("{notices:?}"));
    let id = replay["id"].as_i64().expect("id").to_string();
    let out = ruaflow()
        .args(["alerts", "ack", &id, "--note", "rotating the key", "--clickhouse", &url])
        .output()
        .expect("ack");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = listed(&[]);
    assert!(text.contains("firing (acknowledged)") && text.contains(": rotating the key"), "{text}");
    let missing = ruaflow().args(["alerts", "ack", "12345", "--clickhouse", &url]).output().expect("ack");
    assert!(!missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("no alert 12345"));

    // The same sender model as the embedded store, row by row.
    for table in ["senders", "sender_networks"] {
        let want = sqlite_model(&reference, table);
        let got = clickhouse_model(&svc.clickhouse, &name, table);
        assert_eq!(got.len(), want.len(), "{table}: rows");
        if let Some((g, w)) = got.iter().zip(&want).find(|(g, w)| g != w) {
            panic!("{table}: the first differing row\nclickhouse: {g:?}\nembedded:   {w:?}");
        }
    }
}

/// The detector group enriches the sources of the digests it reads: reverse DNS from a
/// real nameserver (dnsmasq) and the shared test ASN database land in ClickHouse's
/// `sources`, where the dashboards read them; the service map names the mail service
/// behind an address into `source_services` as the embedded store names it (by PTR name
/// or AS), and the sender model's status counts a trusted one (an ESP named by the IP
/// databases) as `service` for DKIM-aligned mail, and a PTR-named one not.
#[test]
fn the_detector_group_enriches_sources_into_clickhouse() {
    let Some(svc) = services() else { return };
    let (name, url) = svc.database("enrich");
    migrate(&url);
    let dns = common::dnsmasq::Dnsmasq::start(
        &[("192.0.2.25", "mail-1.outbound.example.co.uk"), ("192.0.2.26", "o1.ptr2410.sendgrid.net")],
        "",
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let inputs = tmp.path().join("in");
    std::fs::create_dir(&inputs).expect("mkdir");
    // `spf`: pass (SPF-aligned: authorized), or fail (DKIM-only mail).
    let record = |ip: &str, count: u32, spf: &str| {
        format!(
            "<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated><disposition>none</disposition>\
             <dkim>pass</dkim><spf>{spf}</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from>\
             </identifiers><auth_results><dkim><domain>example.com</domain><selector>s1</selector><result>pass</result></dkim><spf>\
             <domain>example.com</domain><result>{spf}</result></spf></auth_results></record>"
        )
    };
    let report = format!(
        "<?xml version=\"1.0\"?><feedback><report_metadata><org_name>example.net</org_name><email>d@example.net</email>\
         <report_id>enrich-1</report_id><date_range><begin>1788220800</begin><end>1788307199</end></date_range>\
         </report_metadata><policy_published><domain>example.com</domain><p>none</p></policy_published>{}{}{}{}</feedback>",
        record("192.0.2.25", 5, "pass"),
        record("1.0.0.1", 3, "pass"),
        record("192.0.2.26", 4, "fail"),
        record("192.0.2.99", 2, "fail"),
    );
    std::fs::write(inputs.join("report.xml"), report).expect("report");
    // The shared test databases name no ESP's AS (only ISPs, Google, Akamai): an IPinfo
    // Lite database written here names SendGrid's for 192.0.2.99. Enrichment names it
    // after its digest was folded (as unknown); the member then evaluates it again.
    let ipinfo = tmp.path().join("ipinfo_lite.mmdb");
    let sendgrid = mmdb_writer::Value::text_map(&[
        ("asn", "AS11377"),
        ("as_name", "SendGrid, Inc."),
        ("as_domain", "sendgrid.com"),
        ("country", "United States"),
        ("country_code", "US"),
    ]);
    std::fs::write(
        &ipinfo,
        mmdb_writer::Writer::new("ipinfo_lite.mmdb").insert("192.0.2.99/32", &sendgrid).build(),
    )
    .expect("write the IP database");
    let config = tmp.path().join("detect.toml");
    let mmdb = corpus().join("../mmdb/GeoLite2-ASN-Test.mmdb");
    std::fs::write(
        &config,
        format!(
            "[enrich]\nnameservers = [\"{}\"]\nasn_db = \"{}\"\nipinfo_db = \"{}\"\n",
            dns.addr,
            mmdb.display(),
            ipinfo.display()
        ),
    )
    .expect("config");
    ingest(&svc.kafka, &name, 1, &[&inputs]);
    let logs: Vec<PathBuf> = ["p", "d"].iter().map(|n| tmp.path().join(format!("{n}.log"))).collect();
    let processor = process(&svc.kafka, &name, &url, &name, &logs[0]);
    let detect = detector(&svc.kafka, &name, &url, &format!("{name}_detect"), &config, &logs[1]);
    let rows = |sql: &str| -> Vec<String> {
        clickhouse_query(&svc.clickhouse, &format!("{sql} FORMAT TSV"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let sources = || {
        rows(&format!(
            "SELECT ip, ptr, ptr_base, asn, as_org, resolved_at > 0 FROM {name}.sources FINAL ORDER BY ip"
        ))
    };
    let services = || {
        rows(&format!(
            "SELECT ip, service, service_kind, service_by FROM {name}.source_services FINAL ORDER BY ip"
        ))
    };
    let senders =
        || rows(&format!("SELECT source, status, reason FROM {name}.senders FINAL ORDER BY source"));
    // Until everything is enriched and 192.0.2.99, named after its digest was folded,
    // stands as a service (or the time is up: the assertions below say what is missing).
    // Within 50 s: the member re-evaluates as soon as its enrichment names a service, not
    // only at its minutely sweep.
    let deadline = Instant::now() + Duration::from_secs(50);
    let settled = || {
        sources().len() == 4
            && services().len() == 3
            && senders().iter().any(|l| l.starts_with("192.0.2.99\tservice\t"))
    };
    while Instant::now() < deadline && !settled() {
        std::thread::sleep(Duration::from_millis(300));
    }
    let (got_sources, got_services, got_senders) = (sources(), services(), senders());
    let clean = [common::terminate(processor), common::terminate(detect)];
    let logs_text = logs.iter().map(|l| log_text(l)).collect::<Vec<_>>().join("\n---\n");
    assert_eq!(
        got_sources,
        [
            "1.0.0.1\t\t\t15169\tGoogle Inc.\t1",
            "192.0.2.25\tmail-1.outbound.example.co.uk\texample.co.uk\t0\t\t1",
            "192.0.2.26\to1.ptr2410.sendgrid.net\tsendgrid.net\t0\t\t1",
            "192.0.2.99\t\t\t11377\tSendGrid, Inc.\t1",
        ],
        "{logs_text}"
    );
    // Named by the AS number (the built-in map's Google AS) and by the PTR name.
    assert_eq!(
        got_services,
        [
            "1.0.0.1\tGoogle\thosting\tasn",
            "192.0.2.26\tSendGrid\tesp\tptr",
            "192.0.2.99\tSendGrid\tesp\tas_domain"
        ],
        "{logs_text}"
    );
    let statuses: Vec<(&str, &str)> = got_senders
        .iter()
        .filter_map(|l| l.split('\t').collect::<Vec<_>>().get(..2).map(|f| (f[0], f[1])))
        .collect();
    assert_eq!(
        statuses,
        [
            ("1.0.0.1", "authorized"),
            ("192.0.2.25", "authorized"),
            ("192.0.2.26", "unknown"),
            ("192.0.2.99", "service")
        ],
        "{got_senders:?}\n{logs_text}"
    );
    assert!(got_senders[3].ends_with("\tSendGrid, DKIM-aligned pass since 2026-09-01"), "{got_senders:?}");
    assert_eq!(clean, [true; 2], "{logs_text}");
}

/// The silence sweep of a detector reads only the reporters of the domains it owns (every
/// member sweeps once a minute; the others' domains are theirs to judge), and all of them
/// when it owns no partition list.
#[test]
fn a_detector_reads_the_reporter_activity_of_its_own_domains_only() {
    use ruaflow_processor::clickhouse::{ClickHouseDetect, ClickHouseUrl};
    use ruaflow_processor::detect::{DetectConfig, DetectStore};

    let Some(svc) = services() else { return };
    let (name, url) = svc.database("activity");
    migrate(&url);
    let insert = |domain: &str, reporter: &str, days_ago: u32| {
        clickhouse_query(
            &svc.clickhouse,
            &format!(
                "INSERT INTO {name}.reports (report_key, kind, org_name, report_id, domain, begin_ts, end_ts, day, \
                 stored_at) SELECT MD5('{domain}{reporter}{days_ago}'), 'dmarc', '{reporter}', '{reporter}-{days_ago}', \
                 '{domain}', now(), now(), today() - {days_ago}, now()"
            ),
        )
        .expect("insert a report");
    };
    for days_ago in 1..=3 {
        insert("own.example", "google.com", days_ago);
        insert("own.example", "yahoo.com", days_ago + 1);
        insert("other.example", "google.com", days_ago);
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let url: ClickHouseUrl = url.parse().expect("url");
    let mut detect =
        ClickHouseDetect::connect(&url, runtime.handle().clone(), DetectConfig::default()).expect("connect");
    let activity = |detect: &mut ClickHouseDetect| {
        let mut rows: Vec<(String, String, i64)> = detect
            .reporter_activity(14 * 86_400)
            .expect("activity")
            .into_iter()
            .map(|a| (a.domain, a.reporter, a.recent_days))
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(activity(&mut detect).len(), 3, "all domains' reporters when nothing is owned");
    detect.own(["own.example".to_owned()].into_iter().collect());
    assert_eq!(
        activity(&mut detect),
        vec![
            ("own.example".to_owned(), "google.com".to_owned(), 3),
            ("own.example".to_owned(), "yahoo.com".to_owned(), 3)
        ]
    );
    detect.own(std::collections::HashSet::new());
    assert_eq!(activity(&mut detect), vec![], "owning no domain reads none");
}
