//! Email alerts against a real SMTP server on 127.0.0.1: Debian's aiosmtpd started by
//! `tests/services/smtp` (STARTTLS with a private test CA and AUTH by default; implicit
//! TLS; plain), one per test. What the server received is parsed back and checked:
//! envelope, recipients, subject, Message-ID, threading, body, escaping of hostile report
//! data; and the failures a postmaster meets: a wrong password (told once, retried, and
//! picked up when the password file is fixed), an untrusted certificate, no STARTTLS, a
//! server that is down.
//!
//! Needs `python3-aiosmtpd` (installed by `tests/run`) and `openssl`; without them the
//! tests fail with the reason, they never skip.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mail_parser::MessageParser;
use ruaflow_processor::sink::{EmailConfig, EmailTls, SinkConfig, SinkError, Sinks};
use ruaflow_schema::alert::{
    Alert, AlertKind, AlertReporter, AlertSelector, AlertSource, AlertState, Severity,
};
use ruaflow_schema::secret::Secret;
use serde_json::Value;

const FLUSH: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- the server

/// The test server's helper, shared with the end-to-end tests of the binary.
#[path = "../../tests/common/smtp.rs"]
mod smtp;

use smtp::{free_port, SmtpServer, PASSWORD, USER};

/// A target of `server`, with the right password in a file.
fn target(server: &SmtpServer, tls: EmailTls) -> EmailConfig {
    EmailConfig {
        server: "127.0.0.1".into(),
        port: Some(server.port),
        tls,
        ca_file: Some(server.ca_file()),
        username: Some(USER.into()),
        password: Some(Secret::file(server.password_file(PASSWORD))),
        from: "ruaflow alerts <ruaflow@alerts.example.org>".into(),
        to: vec!["postmaster@example.org".into(), "Security Team <security@example.org>".into()],
        timeout_ms: 5_000,
    }
}

// ---------------------------------------------------------------- captured logs

/// Everything logged by any test of this binary (one global subscriber); each test reads
/// the lines naming its own endpoint (its port is its own).
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || Capture(Arc::clone(&sink)))
            .init();
        buffer
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The problems told about `endpoint`: the first line of each episode of failures.
fn problems_told(endpoint: &str) -> Vec<String> {
    log_lines(endpoint).into_iter().filter(|l| l.contains("alert delivery failing")).collect()
}

/// The captured log lines that mention `needle`.
fn log_lines(needle: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(&logs().lock().expect("log buffer")).into_owned();
    text.lines().filter(|l| l.contains(needle)).map(str::to_owned).collect()
}

// ---------------------------------------------------------------- fixtures

const DAY_2026_10_01: i64 = 1_790_812_800;

const REPLAY_SUMMARY: &str = "DKIM replay suspected for example.com on 2026-10-01: 48,000 messages (97.6% of the \
    domain's mail) passed DMARC on DKIM alone from 412 sources in 230 networks that are not its senders (baseline \
    120). Rotate the key of selector s2024 (s2024._domainkey.example.com); oversign From, To and CC (list them \
    twice in h=) and use strict DKIM alignment (adkim=s) to blunt replays.";

fn replay_alert() -> Alert {
    let mut details = serde_json::Map::new();
    details.insert("share".into(), 0.976.into());
    details.insert("unknown_sources".into(), 412.into());
    Alert {
        kind: AlertKind::DkimReplaySuspected,
        state: AlertState::Firing,
        domain: "example.com".into(),
        severity: Severity::Critical,
        window_start: DAY_2026_10_01,
        window_end: DAY_2026_10_01 + 86_400,
        observed: 48_000.0,
        baseline: 120.0,
        sources: vec![AlertSource {
            ip: "203.0.113.7".into(),
            network: "203.0.113.0/24".into(),
            messages: 30_000,
            ptr: Some("mx.bulk.example.net".into()),
            asn: Some(64500),
            as_org: Some("Example Transit".into()),
            country: Some("NL".into()),
            service: None,
            status: None,
        }],
        selectors: vec![AlertSelector {
            domain: "example.com".into(),
            selector: "s2024".into(),
            messages: 48_000,
        }],
        reporters: vec![AlertReporter { org: "google.com".into(), messages: 48_000 }],
        first_seen: DAY_2026_10_01 + 3600,
        episode: None,
        historical: false,
        summary: REPLAY_SUMMARY.into(),
        details,
    }
}

fn resolved_alert() -> Alert {
    let mut alert = replay_alert();
    alert.state = AlertState::Resolved;
    alert.window_start += 4 * 86_400;
    alert.window_end += 4 * 86_400;
    alert.summary =
        "Resolved: dkim_replay_suspected for example.com is back at its baseline on 2026-10-05 (it fired \
                     on 2026-10-01)."
            .into();
    alert
}

/// An alert whose report data tries to inject headers and SMTP commands.
fn hostile_alert() -> Alert {
    let mut alert = replay_alert();
    alert.domain =
        "evil.example\r\nBcc: victim@example.net\r\nSubject: pwned\r\n\r\n.\r\nRCPT TO:<x@example.net>"
            .into();
    alert.selectors[0].selector = "s1\nX-Injected: yes".into();
    alert.summary = "Spoofed\r\n.\r\nMAIL FROM:<evil@example.net>\r\n".into();
    alert
}

/// A target on smtp.example.org's submission port, STARTTLS, no login.
fn without_login() -> EmailConfig {
    EmailConfig {
        server: "smtp.example.org".into(),
        port: None,
        tls: EmailTls::Starttls,
        ca_file: None,
        username: None,
        password: None,
        from: "ruaflow@example.org".into(),
        to: vec!["postmaster@example.org".into()],
        timeout_ms: 1_000,
    }
}

fn sinks(email: EmailConfig, retries: u32) -> Sinks {
    Sinks::start(&SinkConfig { email: vec![email], retries, ..SinkConfig::default() }).expect("start sinks")
}

fn parse(raw: &[u8]) -> mail_parser::Message<'_> {
    MessageParser::default().parse(raw).expect("a parseable message")
}

/// The header lines of a raw message, unfolded, as (name, value).
fn header_lines(raw: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default().replace("\r\n ", " ").replace("\r\n\t", " ");
    head.lines().filter_map(|l| l.split_once(':')).map(|(n, v)| (n.to_owned(), v.trim().to_owned())).collect()
}

// ---------------------------------------------------------------- tests

#[test]
fn starttls_auth_delivers_firing_and_resolved_to_every_recipient() {
    let server = SmtpServer::start(&[]);
    let sinks = sinks(target(&server, EmailTls::Starttls), 3);
    sinks.emit(&replay_alert());
    sinks.emit(&resolved_alert());
    assert!(sinks.flush(FLUSH), "delivered within {FLUSH:?}; server log:\n{}", server.log());

    let received = server.received();
    assert_eq!(received.len(), 2, "one message per alert; server log:\n{}", server.log());
    for message in &received {
        let envelope = &message.envelope;
        assert_eq!(envelope["mail_from"], "ruaflow@alerts.example.org");
        assert_eq!(
            envelope["rcpt_tos"],
            serde_json::json!(["postmaster@example.org", "security@example.org"])
        );
        assert_eq!(envelope["user"], USER, "sent after AUTH");
        assert_eq!(envelope["tls"], true, "sent inside TLS (STARTTLS)");
    }
    assert_eq!(server.auth_log(), ["ok ruaflow PLAIN", "ok ruaflow PLAIN"], "one login per message, PLAIN");

    let firing = parse(&received[0].raw);
    assert_eq!(firing.subject(), Some("[ruaflow] CRITICAL dkim_replay_suspected example.com 2026-10-01"));
    let to: Vec<&str> = firing.to().expect("To").iter().filter_map(|a| a.address()).collect();
    assert_eq!(to, ["postmaster@example.org", "security@example.org"]);
    assert_eq!(
        firing.from().and_then(|f| f.first()).and_then(|a| a.address()),
        Some("ruaflow@alerts.example.org")
    );
    assert_eq!(firing.header_raw("Auto-Submitted").map(str::trim), Some("auto-generated"));
    assert_eq!(
        firing.header_raw("X-Ruaflow-Alert").map(str::trim),
        Some("dkim_replay_suspected; severity=critical; state=firing")
    );
    let body = firing.body_text(0).expect("a text body").into_owned();
    let flat = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let summary = REPLAY_SUMMARY.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains(&summary), "the whole summary, advice included:\n{body}");
    for expected in [
        "CRITICAL: dkim_replay_suspected for example.com",
        "Report day: 2026-10-01 (UTC)",
        "Observed: 48,000",
        "Baseline: 120",
        "share: 0.976",
        "203.0.113.7 (203.0.113.0/24): 30,000 messages, mx.bulk.example.net, AS64500 Example Transit, NL",
        "s2024._domainkey.example.com: 48,000 messages",
        "google.com: 48,000 messages",
    ] {
        assert!(flat.contains(expected), "{expected:?} missing from:\n{body}");
    }
    assert!(body.lines().all(|l| l.chars().count() <= 78), "wrapped for a mail reader:\n{body}");

    let resolved = parse(&received[1].raw);
    assert_eq!(
        resolved.subject(),
        Some("[ruaflow] RESOLVED dkim_replay_suspected example.com 2026-10-05 (was critical)")
    );
    let resolved_body = resolved.body_text(0).expect("a text body").into_owned();
    assert!(resolved_body.starts_with("RESOLVED: dkim_replay_suspected for example.com"), "{resolved_body}");
    let resolved_flat = resolved_body.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(resolved_flat.contains("back at its baseline on 2026-10-05"), "{resolved_body}");

    // Message-IDs: one per notice, in the sender's domain; both notices in one thread.
    let (firing_id, resolved_id) = (firing.message_id().expect("id"), resolved.message_id().expect("id"));
    assert!(firing_id.starts_with("dkim_replay_suspected.") && firing_id.ends_with("@alerts.example.org"));
    assert_ne!(firing_id, resolved_id);
    let thread = |m: &mail_parser::Message<'_>| m.references().as_text().map(str::to_owned);
    assert!(
        thread(&firing).is_some_and(|t| t.starts_with("thread.dkim_replay_suspected.")),
        "{:?}",
        thread(&firing)
    );
    assert_eq!(thread(&firing), thread(&resolved), "the resolved notice threads with the firing one");
}

#[test]
fn the_same_notice_twice_has_the_same_message_id() {
    let server = SmtpServer::start(&[]);
    let sinks = sinks(target(&server, EmailTls::Starttls), 0);
    sinks.emit(&replay_alert());
    sinks.emit(&replay_alert());
    assert!(sinks.flush(FLUSH));
    let received = server.received();
    assert_eq!(received.len(), 2);
    let ids: Vec<String> =
        received.iter().map(|m| parse(&m.raw).message_id().expect("id").to_owned()).collect();
    assert_eq!(ids[0], ids[1], "a mail reader can recognize the repeat");
}

#[test]
fn hostile_report_data_cannot_inject_headers_or_smtp_commands() {
    let server = SmtpServer::start(&[]);
    let sinks = sinks(target(&server, EmailTls::Starttls), 0);
    sinks.emit(&hostile_alert());
    assert!(sinks.flush(FLUSH));
    let received = server.received();
    assert_eq!(received.len(), 1, "one message, no second one smuggled in; server log:\n{}", server.log());
    let envelope = &received[0].envelope;
    assert_eq!(envelope["mail_from"], "ruaflow@alerts.example.org", "no MAIL FROM from the report");
    assert_eq!(
        envelope["rcpt_tos"],
        serde_json::json!(["postmaster@example.org", "security@example.org"]),
        "no recipient from the report"
    );
    let headers = header_lines(&received[0].raw);
    let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    for injected in ["Bcc", "X-Injected", "RCPT TO"] {
        assert!(!names.iter().any(|n| n.eq_ignore_ascii_case(injected)), "{injected} injected: {names:?}");
    }
    assert_eq!(names.iter().filter(|n| n.eq_ignore_ascii_case("Subject")).count(), 1, "{names:?}");

    let message = parse(&received[0].raw);
    let subject = message.subject().expect("subject");
    assert!(
        subject.starts_with(
            "[ruaflow] CRITICAL dkim_replay_suspected evil.example\\u{d}\\u{a}Bcc: victim@example.net"
        ),
        "CR and LF shown, not acted on: {subject:?}"
    );
    assert!(!subject.contains(['\r', '\n']));
    let body = message.body_text(0).expect("body").into_owned();
    assert!(body.contains("s1\\u{a}X-Injected: yes._domainkey"), "{body}");
    assert!(body.contains("Spoofed\\u{d}\\u{a}.\\u{d}\\u{a}MAIL FROM:<evil@example.net>"), "{body}");
    assert!(!body.lines().any(|l| l.trim() == "." || l.starts_with("X-Injected")), "{body}");
}

#[test]
fn implicit_tls_delivers_on_its_own_port() {
    let server = SmtpServer::start(&["--tls"]);
    let sinks = sinks(target(&server, EmailTls::Implicit), 1);
    sinks.emit(&replay_alert());
    assert!(sinks.flush(FLUSH));
    let received = server.received();
    assert_eq!(received.len(), 1, "server log:\n{}", server.log());
    assert_eq!(received[0].envelope["tls"], true);
    assert_eq!(received[0].envelope["user"], USER);
}

#[test]
fn a_local_relay_takes_mail_in_the_clear_without_auth() {
    let server = SmtpServer::start(&["--plain", "--no-auth"]);
    let config = EmailConfig {
        tls: EmailTls::None,
        ca_file: None,
        username: None,
        password: None,
        ..target(&server, EmailTls::None)
    };
    let sinks = sinks(config, 0);
    sinks.emit(&replay_alert());
    assert!(sinks.flush(FLUSH));
    let received = server.received();
    assert_eq!(received.len(), 1, "server log:\n{}", server.log());
    assert_eq!(
        (received[0].envelope["tls"].clone(), received[0].envelope["user"].clone()),
        (false.into(), Value::Null)
    );
}

#[test]
fn wrong_password_is_told_once_retried_and_picked_up_when_fixed() {
    let server = SmtpServer::start(&[]);
    let config = target(&server, EmailTls::Starttls);
    server.password_file("not-the-password");
    let label = format!("email 127.0.0.1:{}", server.port);
    logs();
    let sinks = sinks(config, 2);

    let started = Instant::now();
    sinks.emit(&replay_alert());
    assert!(started.elapsed() < Duration::from_millis(50), "emit never waits on the network");
    assert!(sinks.flush(FLUSH));
    assert!(started.elapsed() >= Duration::from_millis(600), "backed off 200 + 400 ms between the attempts");
    assert_eq!(server.auth_log(), ["refused ruaflow PLAIN"; 3], "first try and two retries");
    assert!(server.received().is_empty());

    // A second alert with the same problem: attempted again, not told again.
    sinks.emit(&resolved_alert());
    assert!(sinks.flush(FLUSH));
    assert_eq!(server.auth_log().len(), 6);

    let told = problems_told(&label);
    assert_eq!(told.len(), 1, "the problem is told once for 6 attempts: {told:#?}");
    assert!(told[0].contains("ERROR"), "a refused login needs an operator: {}", told[0]);
    assert!(
        told[0].contains(&format!("SMTP login refused for ruaflow at 127.0.0.1:{}: 535 5.7.8", server.port)),
        "in the server's words: {}",
        told[0]
    );
    assert!(!told[0].contains("not-the-password"), "the password is never logged");
    let given_up = log_lines(&label).into_iter().filter(|l| l.contains("alert not delivered")).count();
    assert_eq!(given_up, 2, "each alert given up on is logged once");

    // The password file is fixed: read again at the next attempt.
    server.password_file(PASSWORD);
    sinks.emit(&replay_alert());
    assert!(sinks.flush(FLUSH));
    assert_eq!(server.received().len(), 1, "delivered with the new password");
    assert_eq!(server.auth_log().last().map(String::as_str), Some("ok ruaflow PLAIN"));
    assert_eq!(log_lines(&label).iter().filter(|l| l.contains("alert delivery works again")).count(), 1);
    assert!(log_lines("not-the-password").is_empty() && log_lines(PASSWORD).is_empty());
}

#[test]
fn an_untrusted_certificate_is_refused_at_once_before_any_login() {
    let server = SmtpServer::start(&[]);
    let config = EmailConfig { ca_file: None, ..target(&server, EmailTls::Starttls) };
    let label = format!("email 127.0.0.1:{}", server.port);
    logs();
    let sinks = sinks(config, 3);
    let started = Instant::now();
    sinks.emit(&replay_alert());
    assert!(sinks.flush(FLUSH));
    assert!(started.elapsed() < Duration::from_millis(200 * 3), "not retried: {:?}", started.elapsed());
    assert!(server.received().is_empty());
    assert!(server.auth_log().is_empty(), "no password sent to a server we could not verify");
    let told = problems_told(&label);
    assert_eq!(told.len(), 1, "{told:#?}");
    assert!(told[0].contains("TLS with SMTP server") && told[0].contains("UnknownIssuer"), "{}", told[0]);
}

#[test]
fn starttls_is_required_never_a_cleartext_fallback() {
    // A server offering AUTH in the clear and no STARTTLS.
    let server = SmtpServer::start(&["--plain"]);
    let sinks = sinks(EmailConfig { ca_file: None, ..target(&server, EmailTls::Starttls) }, 3);
    sinks.emit(&replay_alert());
    assert!(sinks.flush(FLUSH));
    assert!(server.received().is_empty());
    assert!(server.auth_log().is_empty(), "the password never crossed a cleartext connection");
    let label = format!("email 127.0.0.1:{}", server.port);
    assert!(
        log_lines(&label).iter().any(|l| l.contains("does not offer STARTTLS")),
        "{:#?}",
        log_lines(&label)
    );
}

#[test]
fn a_server_that_is_down_is_retried_and_never_blocks_emit() {
    let port = free_port();
    let config =
        EmailConfig { server: "127.0.0.1".into(), port: Some(port), timeout_ms: 2_000, ..without_login() };
    logs();
    let sinks = sinks(config, 2);
    let started = Instant::now();
    for _ in 0..5 {
        sinks.emit(&replay_alert());
    }
    assert!(started.elapsed() < Duration::from_millis(50), "emit never waits: {:?}", started.elapsed());
    assert!(sinks.flush(FLUSH));
    assert!(started.elapsed() >= Duration::from_millis(5 * 600), "each alert tried three times, backing off");
    let label = format!("email 127.0.0.1:{port}");
    let told = problems_told(&label);
    assert_eq!(told.len(), 1, "{told:#?}");
    assert!(told[0].contains("WARN") && told[0].contains("cannot reach SMTP server"), "{}", told[0]);
}

#[test]
fn unusable_email_config_is_refused_before_anything_connects() {
    let base = without_login();
    let not_pem = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(not_pem.path(), "no certificate here\n").expect("write");
    let bad = [
        EmailConfig { to: vec![], ..base.clone() },
        EmailConfig { from: "x".into(), ..base.clone() },
        EmailConfig { tls: EmailTls::None, username: Some(USER.into()), ..base.clone() },
        EmailConfig { ca_file: Some(not_pem.path().to_owned()), ..base.clone() },
        EmailConfig { ca_file: Some(Path::new("/nonexistent/ca.pem").to_owned()), ..base.clone() },
    ];
    for config in bad {
        match Sinks::start(&SinkConfig { email: vec![config.clone()], ..SinkConfig::default() }) {
            Err(err @ (SinkError::Config { .. } | SinkError::CaFile { .. })) => {
                assert!(!err.is_retriable());
                assert!(err.to_string().contains("email[0]."), "{err}");
            }
            other => panic!("{config:?} gave {other:?}"),
        }
    }
    let parsed: SinkConfig = serde_json::from_value(serde_json::json!({
        "email": [{"server": "smtp.example.org", "from": "a@example.org", "to": ["b@example.org"],
                   "username": "a", "password": {"file": "/etc/ruaflow/smtp.password"}, "tls": "implicit"}]
    }))
    .expect("an [[alerts.email]] section");
    assert_eq!((parsed.email[0].tls, parsed.email[0].port()), (EmailTls::Implicit, 465));
}
