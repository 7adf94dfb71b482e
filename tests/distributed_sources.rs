//! End-to-end tests of the distributed pipeline's network sources: `ruaflow ingest http`
//! and `ruaflow ingest imap` publishing to a real Kafka broker, `ruaflow process`
//! storing into a real ClickHouse, and the result compared with the embedded pipeline
//! (`ruaflow run --once`) on the same inputs.
//!
//! The design promise checked here (src/cli/ingest.rs): a source lets go of its input
//! only after Kafka confirmed it. For HTTP that is the answer (2xx, or 400 for a body
//! holding no readable report, which still goes to Kafka and ends as a dead letter); for
//! IMAP it is the move out of the watched folder. So right after each answer or move the
//! topic must already hold the input.
//!
//! Kafka and ClickHouse come from `tests/services/up` (RUAFLOW_TEST_KAFKA,
//! RUAFLOW_TEST_CLICKHOUSE); Dovecot is started per test by `tests/services/dovecot`
//! (root and dovecot-imapd needed, as in tests/imap.rs); the Kafka-outage test starts a
//! Kafka of its own with `tests/services/kafka`, so stopping it disturbs no other test.
//! Without the env vars the tests are skipped with a message, except with CI=true, where
//! that is a failure.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use common::client::{agent, gzip, post};
use common::cluster::{
    clickhouse_query, clickhouse_totals, embedded_totals, process_command, services, unique, wait_for,
    OwnService, Services,
};
use common::dovecot::{
    broken_mail, corpus_mails, maildir_name, report_mail, with_secrets, write_imap_config, Dovecot, PLAIN,
};
use common::{corpus, ruaflow, wait_until, Running, Totals};

const TOKEN: &str = "dist-token-9c4e";

/// A test through the shared services: them, its own topic, consumer group and migrated
/// database `name` (`prefix` made unique), and a temporary directory; `None` (the test is
/// skipped) without the services.
fn setting(prefix: &str) -> Option<(Services, String, tempfile::TempDir)> {
    let svc = services()?;
    let name = svc.migrated(prefix);
    Some((svc, name, tempfile::tempdir().expect("tempdir")))
}

/// `ruaflow process` from topic `name` on `kafka` into database `name` on `clickhouse`
/// (group `name`, at most `batch_records` in a batch) until ClickHouse holds `want`, then
/// SIGTERM: asserts that it got there within 60 s and exited 0.
fn process_until(
    kafka: &str,
    clickhouse: &str,
    name: &str,
    batch_records: Option<u32>,
    dir: &Path,
    want: Totals,
) {
    let command = process_command(kafka, name, &format!("{clickhouse}/{name}"), name, batch_records);
    let mut processor = Running::spawn(command, dir, "process");
    let reached = wait_for(clickhouse, name, want, Duration::from_secs(60));
    let clean = processor.terminate();
    assert!(reached.is_ok(), "{reached:?}\n{}", processor.stderr());
    assert!(clean, "process did not exit 0 on SIGTERM:\n{}", processor.stderr());
}

/// How many messages a topic holds (all partitions), read from its watermarks.
struct TopicSize {
    client: BaseConsumer,
}

impl TopicSize {
    fn new(kafka: &str) -> TopicSize {
        let client: BaseConsumer =
            ClientConfig::new().set("bootstrap.servers", kafka).create().expect("kafka client");
        TopicSize { client }
    }

    fn of(&self, topic: &str) -> u64 {
        let timeout = Duration::from_secs(10);
        let metadata = self.client.fetch_metadata(Some(topic), timeout).expect("topic metadata");
        let partitions = metadata.topics().first().map_or(0, |t| t.partitions().len());
        assert!(partitions > 0, "topic {topic} has no partitions (not created?)");
        (0..partitions as i32)
            .map(|p| {
                let (low, high) = self.client.fetch_watermarks(topic, p, timeout).expect("watermarks");
                (high - low) as u64
            })
            .sum()
    }
}

/// The `N` of "N inputs published to …; M failed" in an ingest's stdout, with M.
fn published(stdout: &str) -> Option<(u64, u64)> {
    let line = stdout.lines().find(|l| l.contains(" inputs published to "))?;
    let n = line.split_whitespace().next()?.parse().ok()?;
    let failed = line.rsplit("; ").next()?.split_whitespace().next()?.parse().ok()?;
    Some((n, failed))
}

// ---------------------------------------------------------------------------- HTTP

/// Writes an `[http]` config listening on a free port; returns it and the base URL.
fn http_config(dir: &Path, extra: &str) -> (PathBuf, String) {
    let port = common::free_port();
    let config = dir.join("ruaflow.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\nrate_limit_per_minute = 0\n{extra}\n"
        ),
    )
    .expect("write config");
    (config, format!("http://127.0.0.1:{port}"))
}

fn ingest_http(kafka: &str, topic: &str, config: &Path, dir: &Path, name: &str) -> Running {
    let mut c = ruaflow();
    c.args(["ingest", "http", "--kafka", kafka, "--topic", topic, "--partitions", "2", "--config"])
        .arg(config)
        .env_remove("RUAFLOW_HTTP_TOKEN");
    Running::spawn(c, dir, name)
}

/// Waits until `/healthz` answers 200 (the topics are set up and the endpoint serves).
fn wait_healthy(base: &str, ingest: &Running) {
    let agent = agent();
    wait_until(
        "the http endpoint to serve",
        Duration::from_secs(60),
        || ingest.stderr(),
        || agent.get(&format!("{base}/healthz")).call().is_ok_and(|r| r.status().as_u16() == 200),
    );
}

/// One upload of the HTTP test.
struct Upload {
    path: &'static str,
    content_type: &'static str,
    token: Option<&'static str>,
    body: Vec<u8>,
    /// The file name the body is kept under for the embedded reference run.
    name: String,
}

fn uploads() -> Vec<Upload> {
    let mut uploads = Vec::new();
    // RFC 8460 §3: every TLSRPT JSON of the corpus, no token. rfc8460.json and
    // rfc-example.json are one report (same identity, same contents): stored once.
    let mut tls: Vec<PathBuf> = ["parsedmarc/smtp_tls", "dmarc-report-viewer/smtp-tls-reports"]
        .iter()
        .flat_map(|d| std::fs::read_dir(corpus().join(d)).expect("corpus dir"))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    tls.sort();
    assert!(tls.len() >= 8, "{tls:?}");
    for path in &tls {
        uploads.push(Upload {
            path: "/v1/tlsrpt",
            content_type: "application/tlsrpt+json",
            token: None,
            body: std::fs::read(path).expect("read corpus"),
            name: format!("tls-{}", path.file_name().expect("name").to_string_lossy()),
        });
    }
    // A gzipped TLSRPT (a report id of its own, so it is a report of its own).
    let json = std::fs::read_to_string(corpus().join("parsedmarc/smtp_tls/rfc8460.json")).expect("read");
    let renamed = json.replace("5065427c-23d3-47ca-b6e0-946ea0e8c4be", "gzipped-through-kafka");
    assert_ne!(renamed, json);
    uploads.push(Upload {
        path: "/v1/tlsrpt",
        content_type: "application/tlsrpt+gzip",
        token: None,
        body: gzip(renamed.as_bytes()),
        name: "tls-gzipped.json.gz".into(),
    });
    // DMARC aggregate reports through the authenticated upload: xml, gz, zip.
    for (file, content_type) in [
        ("parsedmarc/aggregate/example.net!example.com!1529366400!1529452799.xml", "application/xml"),
        ("parsedmarc/aggregate/fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz", "application/gzip"),
        ("parsedmarc/aggregate/estadocuenta1.infonacot.gob.mx!example.com!1536853302!1536939702!2940.xml.zip", "application/zip"),
    ] {
        let path = corpus().join(file);
        uploads.push(Upload {
            path: "/v1/reports",
            content_type,
            token: Some(TOKEN),
            body: std::fs::read(&path).expect("read corpus"),
            name: format!("dmarc-{}", path.file_name().expect("name").to_string_lossy()),
        });
    }
    uploads
}

/// Garbage with the right token: documented (ingest/src/http.rs) as enqueued, then
/// answered 400 naming the reason once it is durable — here once Kafka holds it — and
/// stored as a dead letter by the processor.
const GARBAGE: &[u8] = b"this is not a DMARC report, not gzip, not zip, not JSON (via kafka)";

#[test]
fn http_uploads_reach_clickhouse_through_kafka_each_held_by_kafka_before_the_answer() {
    let started = Instant::now();
    let Some((svc, name, tmp)) = setting("http_src") else { return };

    let (config, base) = http_config(tmp.path(), "ack_timeout_ms = 20000");
    let mut ingest = ingest_http(&svc.kafka, &name, &config, tmp.path(), "ingest");
    wait_healthy(&base, &ingest);
    let topic = TopicSize::new(&svc.kafka);
    assert_eq!(topic.of(&name), 0);

    let agent = agent();
    let reference = tmp.path().join("reference");
    std::fs::create_dir_all(&reference).expect("mkdir");
    let mut in_kafka = 0;
    let uploads = uploads();
    for upload in &uploads {
        let (status, body) =
            post(&agent, &format!("{base}{}", upload.path), upload.content_type, upload.token, &upload.body);
        assert_eq!(status, 200, "{}: {body}\n{}", upload.name, ingest.stderr());
        let answer: serde_json::Value = serde_json::from_str(&body).expect("json answer");
        assert_eq!(answer["status"], "stored", "{body}");
        in_kafka += 1;
        // The 200 means Kafka confirmed the write: the topic holds it now, not later.
        assert_eq!(topic.of(&name), in_kafka, "answered 200 before Kafka held {}", upload.name);
        std::fs::write(reference.join(&upload.name), &upload.body).expect("write reference");
    }

    // The same report again (a client retrying after a lost answer): 200, one more
    // message on the topic, no change to any total.
    let (status, body) =
        post(&agent, &format!("{base}/v1/tlsrpt"), "application/tlsrpt+json", None, &uploads[0].body);
    assert_eq!(status, 200, "{body}");
    in_kafka += 1;
    assert_eq!(topic.of(&name), in_kafka);

    // Garbage: published, then answered 400 with the reason.
    let (status, body) =
        post(&agent, &format!("{base}/v1/reports"), "application/octet-stream", Some(TOKEN), GARBAGE);
    assert_eq!(status, 400, "garbage: {body}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("json error");
    assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    in_kafka += 1;
    assert_eq!(topic.of(&name), in_kafka, "the 400 for garbage comes after Kafka holds it");
    std::fs::write(reference.join("garbage.bin"), GARBAGE).expect("write reference");

    // Refused before anything is read or published: no token, a wrong token, a media
    // type /v1/tlsrpt does not take. The report refused here (usssa.com) is in no other
    // upload, so the totals below show it never arrived.
    let refused =
        std::fs::read(corpus().join("parsedmarc/aggregate/usssa.com!example.com!1538784000!1538870399.xml"))
            .expect("read corpus");
    let reports = format!("{base}/v1/reports");
    let (status, body) = post(&agent, &reports, "application/xml", None, &refused);
    assert_eq!(status, 401, "missing token: {body}");
    let (status, body) = post(&agent, &reports, "application/xml", Some("not-the-token"), &refused);
    assert_eq!(status, 401, "wrong token: {body}");
    assert!(body.contains("invalid bearer token"), "{body}");
    let (status, body) = post(&agent, &format!("{base}/v1/tlsrpt"), "text/html", None, b"<html/>");
    assert_eq!(status, 415, "{body}");
    assert_eq!(topic.of(&name), in_kafka, "a refused upload reached Kafka");

    assert!(ingest.terminate(), "ingest http did not exit 0 on SIGTERM:\n{}", ingest.stderr());
    assert_eq!(published(&ingest.stdout()), Some((in_kafka, 0)), "{}", ingest.stdout());
    let dlq = format!("{name}.dlq");

    let want = embedded_totals(&[&reference]);
    assert!(want.reports >= 10 && want.tls_policies > 0 && want.records > 0, "{want:?}");
    assert_eq!(want.dead_letters, 1, "only the garbage is a dead letter: {want:?}");
    process_until(&svc.kafka, &svc.clickhouse, &name, Some(300), tmp.path(), want);

    // The garbage is a dead letter from source http, in ClickHouse and on the DLQ.
    let dead = clickhouse_query(
        &svc.clickhouse,
        &format!("SELECT source, raw_size, reason != '' FROM {name}.dead_letters FINAL FORMAT TSV"),
    )
    .expect("dead letters");
    assert_eq!(dead.trim(), format!("http\t{}\t1", GARBAGE.len()), "{dead}");
    assert_eq!(topic.of(&dlq), 1, "the garbage is on the DLQ");
    let envelopes = clickhouse_query(
        &svc.clickhouse,
        &format!("SELECT countIf(source = 'http'), count() FROM {name}.envelopes FINAL FORMAT TSV"),
    )
    .expect("envelopes");
    let distinct = std::fs::read_dir(&reference).expect("reference").count();
    assert_eq!(envelopes.trim(), format!("{distinct}\t{distinct}"), "one envelope per distinct body");
    eprintln!("http through kafka took {:?}", started.elapsed());
}

#[test]
fn ingest_http_without_kafka_never_serves_and_exits_naming_kafka() {
    let Some(_svc) = services() else { return };
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (config, base) = http_config(tmp.path(), "");
    // A port nothing listens on: no broker answers, and ingest says so within seconds.
    let nowhere = format!("127.0.0.1:{}", common::free_port());
    let mut ingest = ingest_http(&nowhere, &unique("nowhere"), &config, tmp.path(), "ingest");
    let agent = agent();
    let report = std::fs::read(corpus().join("parsedmarc/smtp_tls/rfc8460.json")).expect("read corpus");
    let mut attempts = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = ingest.child.as_mut().expect("running").try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "ingest http still running after 20 s:\n{}", ingest.stderr());
        // Until then, no upload may be answered at all (nothing listens yet).
        let answer = agent
            .post(&format!("{base}/v1/tlsrpt"))
            .header("Content-Type", "application/tlsrpt+json")
            .send(&report[..]);
        if let Ok(answer) = answer {
            panic!("answered {} with Kafka unreachable", answer.status());
        }
        attempts += 1;
        std::thread::sleep(Duration::from_millis(500));
    };
    ingest.child = None;
    let stderr = ingest.stderr();
    assert!(!status.success(), "exit {status:?}\n{stderr}");
    assert!(attempts > 10, "{attempts}");
    let said = format!("no Kafka broker reachable at {nowhere} within 10 s");
    assert!(stderr.contains(&said), "the error must say Kafka is unreachable, naming the brokers:\n{stderr}");
    assert!(!stderr.contains("cannot set up topic"), "not a topic problem:\n{stderr}");
    eprintln!("ingest http without kafka exited {status:?} after {:?}: {}", started.elapsed(), stderr.trim());
}

#[test]
fn a_post_while_kafka_is_down_is_not_answered_2xx_and_its_retry_counts_once() {
    let Some(svc) = services() else { return };
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let kafka = OwnService::start("kafka", tmp.path().join("kafka"));
    let name = svc.migrated("http_down");
    let (config, base) = http_config(tmp.path(), "ack_timeout_ms = 3000");
    let mut ingest = ingest_http(&kafka.address(), &name, &config, tmp.path(), "ingest");
    wait_healthy(&base, &ingest);
    let agent = agent();
    let tlsrpt = format!("{base}/v1/tlsrpt");
    let first = std::fs::read(corpus().join("parsedmarc/smtp_tls/rfc8460.json")).expect("read corpus");
    let second = std::fs::read(corpus().join("parsedmarc/smtp_tls/mail.ru.json")).expect("read corpus");
    let (status, body) = post(&agent, &tlsrpt, "application/tlsrpt+json", None, &first);
    assert_eq!(status, 200, "{body}\n{}", ingest.stderr());

    kafka.service("stop");
    let down = Instant::now();
    let (status, body) = post(&agent, &tlsrpt, "application/tlsrpt+json", None, &second);
    assert_eq!(status, 503, "a POST while Kafka is down: {body}");
    assert!(down.elapsed() < Duration::from_secs(10), "the 503 took {:?}", down.elapsed());

    // Kafka comes back; the client retries until it is answered 200.
    kafka.service("start");
    let mut retries = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = post(&agent, &tlsrpt, "application/tlsrpt+json", None, &second);
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "no 200 within 60 s of Kafka's return:\n{}", ingest.stderr());
        retries += 1;
    }
    assert!(ingest.terminate(), "ingest http did not exit 0 on SIGTERM:\n{}", ingest.stderr());
    // The first attempt at `second` was published too, once Kafka returned (librdkafka
    // kept it): the topic holds it twice or more, the store counts it once.
    let held = TopicSize::new(&kafka.address()).of(&name);
    assert!(held >= 3, "{held} messages on the topic");

    let reference = tmp.path().join("reference");
    std::fs::create_dir_all(&reference).expect("mkdir");
    std::fs::write(reference.join("first.json"), &first).expect("write");
    std::fs::write(reference.join("second.json"), &second).expect("write");
    let want = embedded_totals(&[&reference]);
    process_until(&kafka.address(), &svc.clickhouse, &name, None, tmp.path(), want);
    eprintln!(
        "kafka outage test took {:?} ({retries} retries answered 503 after Kafka's restart; {held} messages on the topic)",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------- IMAP

/// `bytes` with every line ending CRLF.
fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 40);
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

fn ingest_imap(
    kafka: &str,
    topic: &str,
    dovecot: &Dovecot,
    dir: &Path,
    name: &str,
    extra: &[&str],
) -> Running {
    let config = dir.join("imap.toml");
    write_imap_config(&config, &dovecot.plain_section());
    let mut c = ruaflow();
    c.args(["ingest", "imap", "--kafka", kafka, "--topic", topic, "--partitions", "2", "--config"])
        .arg(&config)
        .args(extra);
    with_secrets(&mut c);
    Running::spawn(c, dir, name)
}

#[test]
fn imap_mail_reaches_clickhouse_through_kafka_and_is_moved_only_once_kafka_holds_it() {
    let started = Instant::now();
    let Some((svc, name, tmp)) = setting("imap_src") else { return };
    let dovecot = Dovecot::start(tmp.path());
    let mails = corpus_mails(&["aggregate", "smtp_tls", "failure"]);
    assert_eq!(mails.len(), 9, "the corpus holds 3 aggregate, 1 smtp_tls and 5 failure .eml");
    // Aggregate and TLS reports are filed in the processed folder, failure reports in
    // the failures folder.
    let (reports, failures) = (4, 5);
    let reference = tmp.path().join("reference");
    std::fs::create_dir_all(&reference).expect("mkdir");
    for (n, (file, bytes)) in mails.iter().enumerate() {
        dovecot.deliver(&maildir_name(n), bytes);
        std::fs::write(reference.join(format!("{n:02}-{file}")), bytes).expect("write reference");
    }
    let broken = broken_mail("broken-kafka");
    dovecot.deliver(&maildir_name(90), PLAIN.as_bytes());
    dovecot.deliver(&maildir_name(91), broken.as_bytes());
    // The plain mail is not in the reference: the imap source moves it to the ignored
    // folder without publishing it (the embedded `run --once` of it as a file would
    // record a dead letter "mail message holds no report").
    std::fs::write(reference.join("broken.eml"), &broken).expect("write reference");
    assert_eq!(dovecot.folders(), (reports + failures + 2, 0, 0, 0, 0));

    let topic = TopicSize::new(&svc.kafka);
    let mut ingest = ingest_imap(&svc.kafka, &name, &dovecot, tmp.path(), "ingest-1", &[]);
    let logs = || format!("{}\n--- dovecot\n{}", ingest.stderr(), dovecot.log());
    // Each message leaves INBOX only after Kafka confirmed it; the broken one goes to the
    // invalid folder (the imap source parses to classify), the plain one to ignored.
    let mut moved_before_held = Vec::new();
    wait_until("the folders to settle", Duration::from_secs(60), logs, || {
        let (_, processed, failed, _, invalid) = dovecot.folders();
        let moved = (processed + failed + invalid) as u64;
        if moved > 0 {
            let held = topic.of(&name);
            if held < moved {
                moved_before_held.push((moved, held));
            }
        }
        dovecot.folders() == (0, reports, failures, 1, 1)
    });
    assert!(moved_before_held.is_empty(), "messages moved before Kafka held them: {moved_before_held:?}");
    let published_mails = (reports + failures) as u64 + 1;
    assert_eq!(topic.of(&name), published_mails, "the report mails and the broken one are on the topic");
    assert!(ingest.terminate(), "ingest imap did not exit 0 on SIGTERM:\n{}", ingest.stderr());
    assert_eq!(published(&ingest.stdout()), Some((published_mails, 0)), "{}", ingest.stdout());

    let want = embedded_totals(&[&reference]);
    assert_eq!(want.dead_letters, 1, "the broken mail is the one dead letter: {want:?}");
    process_until(&svc.kafka, &svc.clickhouse, &name, Some(300), tmp.path(), want);
    let stored = clickhouse_query(
        &svc.clickhouse,
        &format!(
            "SELECT (SELECT count() FROM {name}.envelopes FINAL WHERE source = 'imap' AND origin LIKE 'ruaflow@127.0.0.1/INBOX/%'),
                    (SELECT count() FROM {name}.envelopes FINAL),
                    (SELECT any(source) FROM {name}.dead_letters FINAL)
             FORMAT TSV"
        ),
    )
    .expect("envelopes");
    // IMAP hands out messages with CRLF line ends, so a corpus mail stored with LF and
    // its CRLF twin (dmarc_ruf_report_linkedin{,.crlf}.eml) arrive as one envelope.
    let mut bodies: Vec<Vec<u8>> = mails.iter().map(|(_, bytes)| crlf(bytes)).collect();
    bodies.push(crlf(broken.as_bytes()));
    bodies.sort();
    bodies.dedup();
    assert_eq!(stored.trim(), format!("{0}\t{0}\timap", bodies.len()), "{stored}");

    // One more report while nothing runs: `ingest imap --once` publishes it, files it,
    // and exits by itself (cron, systemd timers).
    dovecot.deliver(&maildir_name(92), report_mail("once-through-kafka").as_bytes());
    let mut once = ingest_imap(&svc.kafka, &name, &dovecot, tmp.path(), "ingest-2", &["--once"]);
    assert!(once.wait_exit(Duration::from_secs(60)), "ingest imap --once did not exit 0:\n{}", once.stderr());
    assert_eq!(published(&once.stdout()), Some((1, 0)), "{}", once.stdout());
    assert_eq!(topic.of(&name), published_mails + 1);
    assert_eq!(dovecot.folders(), (0, reports + 1, failures, 1, 1));
    assert_eq!(clickhouse_totals(&svc.clickhouse, &name), Ok(want));
    eprintln!("imap through kafka took {:?}", started.elapsed());
}
