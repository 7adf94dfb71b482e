//! End-to-end tests of the HTTP endpoint of `ruaflow run`: real HTTP requests (ureq)
//! against the binary serving a config-file `[http]` section on a loopback port, with
//! the SQLite store read right after each answer. Because a 2xx is sent only after the
//! store committed, the report must already be there when the client sees the answer.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::client::{agent, agent_trusting, gzip, post};
use common::Running;

const TOKEN: &str = "test-token-5f1d";

/// A `ruaflow run` process serving HTTP, killed on drop unless stopped.
struct Server {
    /// Declared first: the process is reaped before its directory is removed.
    ruaflow: Running,
    base: String,
    /// A client for this server (trusting its test CA when it serves HTTPS).
    agent: ureq::Agent,
    db: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the binary with an `[http]` section (plus `extra` keys in it) and waits
    /// until `/healthz` answers.
    fn start(extra: &str) -> Server {
        Self::start_with(extra, false)
    }

    /// Like `start`, serving HTTPS with a certificate for localhost from a test CA.
    fn start_https(extra: &str) -> Server {
        Self::start_with(extra, true)
    }

    fn start_with(extra: &str, https: bool) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = common::free_port();
        let config = dir.path().join("ruaflow.toml");
        let (scheme, tls, agent) = if https {
            let ca = test_ca(dir.path());
            let tls = format!(
                "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
                dir.path().join("cert.pem").display(),
                dir.path().join("key.pem").display()
            );
            ("https", tls, agent_trusting(&ca))
        } else {
            ("http", String::new(), agent())
        };
        std::fs::write(
            &config,
            format!(
                "[http]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\nmax_body_bytes = 1048576\nack_timeout_ms = 20000\n{tls}{extra}\n"
            ),
        )
        .expect("write config");
        let db = dir.path().join("ruaflow.db");
        let mut c = common::ruaflow();
        c.arg("run")
            .arg("--offline")
            .arg("--config")
            .arg(&config)
            .arg("--db")
            .arg(&db)
            .env_remove("RUAFLOW_HTTP_TOKEN");
        let ruaflow = Running::spawn(c, dir.path(), "ruaflow");
        let base = format!("{scheme}://localhost:{port}");
        let server = Server { ruaflow, base, agent: agent.clone(), db, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut r) = agent.get(&format!("{}/healthz", server.base)).call() {
                if r.status().as_u16() == 200 {
                    assert_eq!(r.body_mut().read_to_string().expect("body"), "ok");
                    break;
                }
            }
            assert!(Instant::now() < deadline, "server did not come up; log:\n{}", server.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn stderr(&self) -> String {
        self.ruaflow.stderr()
    }

    fn count(&self, sql: &str, param: &str) -> i64 {
        let conn = rusqlite::Connection::open(&self.db).expect("open db");
        conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
        conn.query_row(sql, [param], |r| r.get(0)).expect("query")
    }

    /// Sends SIGTERM and returns whether the process exited 0 within 30 s.
    fn terminate(&mut self) -> bool {
        self.ruaflow.terminate()
    }
}

/// A private CA and a certificate for localhost signed by it (cert.pem, key.pem) in
/// `dir`; returns the CA certificate (PEM).
fn test_ca(dir: &Path) -> Vec<u8> {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=ruaflow test CA",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ]);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
    std::fs::read(dir.join("ca.pem")).expect("ca")
}

fn corpus(path: &str) -> PathBuf {
    common::corpus().join(path)
}

/// A small DMARC aggregate report with its own report id.
fn dmarc_report(report_id: &str, octet: u32) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata><org_name>load.example</org_name><email>dmarc@load.example</email>
    <report_id>{report_id}</report_id><date_range><begin>1700006400</begin><end>1700092799</end></date_range></report_metadata>
  <policy_published><domain>example.com</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct></policy_published>
  <record><row><source_ip>198.51.100.{octet}</source_ip><count>2</count>
    <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results><dkim><domain>example.com</domain><selector>s1</selector><result>pass</result></dkim>
      <spf><domain>example.com</domain><result>pass</result></spf></auth_results></record>
</feedback>
"#
    )
    .into_bytes()
}

const REPORTS_WITH_ID: &str = "SELECT COUNT(*) FROM reports WHERE report_id = ?1";

#[test]
fn reports_are_stored_before_the_answer() {
    let server = Server::start("rate_limit_per_minute = 0");
    let agent = agent();

    // RFC 8460 §3: TLSRPT as JSON, then gzipped (a distinct report id), no token.
    let json = std::fs::read(corpus("parsedmarc/smtp_tls/rfc8460.json")).expect("corpus json");
    let (status, body) = post(&agent, &server.url("/v1/tlsrpt"), "application/tlsrpt+json", None, &json);
    assert_eq!(status, 200, "{body}");
    let rfc_id = "5065427c-23d3-47ca-b6e0-946ea0e8c4be";
    assert_eq!(server.count(REPORTS_WITH_ID, rfc_id), 1, "stored before the 200");

    let renamed = String::from_utf8(json.clone()).expect("utf-8").replace(rfc_id, "gzipped-rfc8460");
    let (status, body) =
        post(&agent, &server.url("/v1/tlsrpt"), "application/tlsrpt+gzip", None, &gzip(renamed.as_bytes()));
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.count(REPORTS_WITH_ID, "gzipped-rfc8460"), 1);
    let stored: i64 = server.count(
        "SELECT COUNT(*) FROM reports r JOIN tlsrpt_policies p ON p.report = r.id WHERE r.report_id = ?1",
        "gzipped-rfc8460",
    );
    assert!(stored >= 1, "its policies are stored too");

    // A DMARC .xml.gz from the corpus through the authenticated upload.
    let file = "parsedmarc/aggregate/fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz";
    let gz = std::fs::read(corpus(file)).expect("corpus gz");
    let (status, body) = post(&agent, &server.url("/v1/reports"), "application/gzip", Some(TOKEN), &gz);
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.count(REPORTS_WITH_ID, "102675056"), 1, "{}", server.stderr());
    let records = server.count(
        "SELECT COUNT(*) FROM dmarc_records d JOIN reports r ON d.report = r.id WHERE r.report_id = ?1",
        "102675056",
    );
    assert!(records >= 1);

    // Posting the same reports again is answered 200 and changes nothing.
    let total = server.count("SELECT COUNT(*) FROM reports WHERE ?1 = ?1", "");
    assert_eq!(post(&agent, &server.url("/v1/tlsrpt"), "application/tlsrpt+json", None, &json).0, 200);
    assert_eq!(post(&agent, &server.url("/v1/reports"), "application/gzip", Some(TOKEN), &gz).0, 200);
    assert_eq!(server.count("SELECT COUNT(*) FROM reports WHERE ?1 = ?1", ""), total);

    let mut metrics = agent.get(&server.url("/metrics")).call().expect("metrics");
    assert_eq!(metrics.status().as_u16(), 200);
    let text = metrics.body_mut().read_to_string().expect("metrics text");
    assert!(text.contains(r#"ruaflow_http_requests_total{endpoint="tlsrpt",status="2xx"} 3"#), "{text}");
    assert!(text.contains(r#"ruaflow_http_reports_accepted_total{endpoint="reports"} 2"#), "{text}");
}

#[test]
fn bad_requests_get_clear_errors() {
    let server = Server::start("rate_limit_per_minute = 0");
    let agent = agent();
    let url = server.url("/v1/reports");
    let report = dmarc_report("auth-check", 1);

    let (status, body) = post(&agent, &url, "application/xml", None, &report);
    assert_eq!(status, 401, "missing token: {body}");
    let (status, body) = post(&agent, &url, "application/xml", Some("wrong-token"), &report);
    assert_eq!(status, 401, "wrong token: {body}");
    assert!(body.contains("invalid bearer token"), "{body}");
    assert_eq!(server.count(REPORTS_WITH_ID, "auth-check"), 0, "nothing stored without the token");

    // Over max_body_bytes (1 MiB here): refused from Content-Length, before the body is
    // read. The client asks `Expect: 100-continue` (as curl does for large bodies), so it
    // hears the 413 instead of writing into a connection the server will not read.
    let mut answer = agent
        .post(&url)
        .header("Content-Type", "application/xml")
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .header("Expect", "100-continue")
        .send(&vec![b' '; (1 << 20) + 1][..])
        .expect("oversized post");
    let body = answer.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(answer.status().as_u16(), 413, "{body}");
    assert!(body.contains("larger than 1048576 bytes"), "{body}");

    // Garbage: enqueued, dead-lettered with the reason, then answered 400 naming it.
    let garbage = b"this is not a DMARC report, not gzip, not zip, not JSON".to_vec();
    let (status, body) = post(&agent, &url, "application/octet-stream", Some(TOKEN), &garbage);
    assert_eq!(status, 400, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("json error");
    let reason = answer["error"].as_str().expect("error text");
    assert!(!reason.is_empty());
    let conn = rusqlite::Connection::open(&server.db).expect("db");
    let (source, stored_reason): (String, String) = conn
        .query_row(
            "SELECT d.source, d.reason FROM dead_letters d JOIN dead_letter_inputs i USING (envelope_sha256)
             WHERE i.raw = ?1",
            [&garbage],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("a dead letter for the garbage, committed before the 400");
    assert_eq!(source, "http");
    assert!(!stored_reason.is_empty());

    // /v1/tlsrpt takes the RFC 8460 media types (and generic ones), not e.g. HTML.
    let (status, _) = post(&agent, &server.url("/v1/tlsrpt"), "text/html", None, b"<html/>");
    assert_eq!(status, 415);
}

#[test]
fn clients_over_the_rate_limit_get_429() {
    let server = Server::start("rate_limit_per_minute = 3");
    let agent = agent();
    let url = server.url("/v1/tlsrpt");
    for _ in 0..3 {
        assert_eq!(post(&agent, &url, "text/plain", None, b"x").0, 415, "within the limit");
    }
    let answer =
        agent.post(&url).header("Content-Type", "application/tlsrpt+json").send(&b"{}"[..]).expect("post");
    assert_eq!(answer.status().as_u16(), 429);
    assert!(answer.headers().get("retry-after").is_some());
}

#[test]
fn concurrent_uploads_are_stored_exactly_once_and_sigterm_drains() {
    const THREADS: usize = 50;
    const PER_THREAD: usize = 40;
    let mut server = Server::start("rate_limit_per_minute = 0\nmax_connections_per_client = 64");
    let url = server.url("/v1/reports");
    let started = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let agent = agent();
                (0..PER_THREAD)
                    .map(|i| {
                        let report = dmarc_report(&format!("load-{t}-{i}"), (i % 250) as u32 + 1);
                        post(&agent, &url, "application/xml", Some(TOKEN), &report).0
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().flat_map(|t| t.join().expect("client thread")).collect();
    assert_eq!(statuses.len(), THREADS * PER_THREAD);
    let failed: Vec<_> = statuses.iter().filter(|s| !(200..300).contains(*s)).collect();
    assert!(failed.is_empty(), "non-2xx answers: {failed:?}\n{}", server.stderr());
    eprintln!("{} uploads in {:?}", statuses.len(), started.elapsed());

    let load = "SELECT COUNT(*) FROM reports WHERE report_id LIKE ?1";
    assert_eq!(server.count(load, "load-%"), (THREADS * PER_THREAD) as i64);
    let messages = "SELECT COALESCE(SUM(d.count), 0) FROM dmarc_records d JOIN reports r ON d.report = r.id WHERE r.report_id LIKE ?1";
    assert_eq!(server.count(messages, "load-%"), 2 * (THREADS * PER_THREAD) as i64);

    // Re-posting 100 of them (as a client retrying after a lost answer would) changes no total.
    // Concurrently: each answer waits for a commit, so sequential posts would be slow.
    let resent: Vec<_> = (0..THREADS)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let agent = agent();
                (0..100 / THREADS)
                    .map(|j| {
                        let report = dmarc_report(&format!("load-{t}-{j}"), (j % 250) as u32 + 1);
                        post(&agent, &url, "application/xml", Some(TOKEN), &report).0
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    let resent: Vec<u16> = resent.into_iter().flat_map(|t| t.join().expect("client thread")).collect();
    assert_eq!(resent.len(), 100);
    assert!(resent.iter().all(|s| *s == 200), "{resent:?}");
    assert_eq!(server.count(load, "load-%"), (THREADS * PER_THREAD) as i64);
    assert_eq!(server.count(messages, "load-%"), 2 * (THREADS * PER_THREAD) as i64);

    assert!(server.terminate(), "SIGTERM exits 0; log:\n{}", server.stderr());
    assert!(server.stderr().contains("http endpoint ready"), "{}", server.stderr());
}

#[test]
fn once_ignores_the_http_section_with_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("ruaflow.toml");
    std::fs::write(&config, format!("[http]\nlisten = \"127.0.0.1:{}\"\n", common::free_port()))
        .expect("config");
    let input = dir.path().join("report.xml");
    std::fs::write(&input, dmarc_report("once-1", 7)).expect("input");
    let db = dir.path().join("ruaflow.db");
    let out = Command::new(env!("CARGO_BIN_EXE_ruaflow"))
        .args(["run", "--once", "--offline", "--config"])
        .arg(&config)
        .arg("--db")
        .arg(&db)
        .arg(&input)
        .output()
        .expect("run --once");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("the [http] section is ignored"), "{stderr}");
    assert!(!stderr.contains("http endpoint ready"), "{stderr}");
    let conn = rusqlite::Connection::open(&db).expect("db");
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM reports WHERE report_id = 'once-1'", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 1);
}

/// A `multipart/form-data` body: `(field, filename, content type, bytes)` parts.
fn multipart(boundary: &str, parts: &[(&str, Option<&str>, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, content_type, bytes) in parts {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        if let Some(filename) = filename {
            body.extend_from_slice(format!("; filename=\"{filename}\"").as_bytes());
        }
        body.extend_from_slice(format!("\r\nContent-Type: {content_type}\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

#[test]
fn multipart_uploads_store_each_file_part() {
    let server = Server::start("rate_limit_per_minute = 0");
    let agent = agent();
    let url = server.url("/v1/reports");
    let boundary = "----ruaflow-test-7d3a";
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let json = std::fs::read(corpus("parsedmarc/smtp_tls/rfc8460.json")).expect("corpus json");
    let body = multipart(
        boundary,
        &[
            ("note", None, "text/plain", b"uploaded by a form"),
            ("file", Some("a.xml.gz"), "application/gzip", &gzip(&dmarc_report("multipart-a", 7))),
            ("file", Some("b.xml"), "text/xml", &dmarc_report("multipart-b", 8)),
            ("file", Some("tls.json"), "application/json", &json),
        ],
    );
    let (status, answer) = post(&agent, &url, &content_type, Some(TOKEN), &body);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(r#""files":3"#) && answer.contains(r#""reports":3"#), "{answer}");
    for id in ["multipart-a", "multipart-b", "5065427c-23d3-47ca-b6e0-946ea0e8c4be"] {
        assert_eq!(server.count(REPORTS_WITH_ID, id), 1, "{id} stored before the 200");
    }

    // One bad file among good ones: 400 naming it; the good one is stored, the bad one
    // is a dead letter.
    let body = multipart(
        boundary,
        &[
            ("file", Some("good.xml"), "text/xml", &dmarc_report("multipart-c", 9)),
            ("file", Some("junk.bin"), "application/octet-stream", b"this is not a report"),
        ],
    );
    let (status, answer) = post(&agent, &url, &content_type, Some(TOKEN), &body);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("junk.bin"), "{answer}");
    assert_eq!(server.count(REPORTS_WITH_ID, "multipart-c"), 1);
    assert_eq!(server.count("SELECT COUNT(*) FROM dead_letters WHERE reason != ?1", ""), 1);

    // A form without a file, and a body that does not match its boundary.
    let body = multipart(boundary, &[("note", None, "text/plain", b"no file")]);
    let (status, answer) = post(&agent, &url, &content_type, Some(TOKEN), &body);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("no file part"), "{answer}");
    let (status, answer) = post(&agent, &url, "multipart/form-data; boundary=other", Some(TOKEN), &body);
    assert_eq!(status, 400, "{answer}");
    // Without the token a multipart upload is refused like any other.
    assert_eq!(post(&agent, &url, &content_type, None, &body).0, 401);
}

#[test]
fn https_serves_rfc8460_deliveries_with_the_configured_certificate() {
    let server = Server::start_https("rate_limit_per_minute = 0");
    let json = std::fs::read(corpus("parsedmarc/smtp_tls/rfc8460.json")).expect("corpus json");
    let (status, body) =
        post(&server.agent, &server.url("/v1/tlsrpt"), "application/tlsrpt+gzip", None, &gzip(&json));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        server.count(REPORTS_WITH_ID, "5065427c-23d3-47ca-b6e0-946ea0e8c4be"),
        1,
        "stored before the 200"
    );
    // A client that does not trust the test CA cannot talk to it, and plain HTTP is refused.
    let untrusting = agent();
    assert!(
        untrusting.post(&server.url("/v1/tlsrpt")).send(&json[..]).is_err(),
        "an unknown CA must fail the handshake"
    );
    let plain = server.url("/healthz").replace("https://", "http://");
    assert!(untrusting.get(&plain).call().is_err(), "plain HTTP on the TLS port must fail");
    // A client that connects and never speaks holds nothing: the next one is served.
    let _idle = std::net::TcpStream::connect(server.base.trim_start_matches("https://")).expect("connect");
    let (status, _) = post(&server.agent, &server.url("/v1/tlsrpt"), "application/tlsrpt+json", None, &json);
    assert_eq!(status, 200);
}
