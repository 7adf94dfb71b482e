//! Alert sinks against a real HTTP/1.1 server on 127.0.0.1 (port 0), started by each test:
//! what webhooks and Alertmanager receive, retries, and that `emit` never waits on the
//! network.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ruaflow_processor::sink::{
    AlertmanagerConfig, SinkConfig, SinkError, Sinks, WebhookConfig, WebhookFormat, QUEUE_CAPACITY,
};
use ruaflow_schema::alert::{
    Alert, AlertKind, AlertReporter, AlertSelector, AlertSource, AlertState, Severity,
};
use serde_json::Value;

// ---------------------------------------------------------------- test server

/// One request as the server read it.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    /// Names lowercased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is json")
    }
}

/// A one-connection-at-a-time HTTP/1.1 server. It answers the scripted `(status, delay)`
/// pairs in order, then 200, each with `connection: close`.
struct TestServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    fn start(statuses: &[u16]) -> TestServer {
        TestServer::scripted(statuses.iter().map(|&s| (s, Duration::ZERO)).collect())
    }

    fn scripted(script: VecDeque<(u16, Duration)>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind test server");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, halt) = (Arc::clone(&requests), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut script = script;
            for stream in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (status, delay) = script.pop_front().unwrap_or((200, Duration::ZERO));
                if let Some(request) = serve(stream, status, delay) {
                    log.lock().expect("request log").push(request);
                }
            }
        });
        TestServer { addr, requests, stop, thread: Some(thread) }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("request log").clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees `stop`.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("test server thread");
        }
    }
}

/// Reads one request (content-length or chunked body), waits `delay`, answers `status`.
fn serve(stream: TcpStream, status: u16, delay: Duration) -> Option<Recorded> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            reader.read_line(&mut line).ok()?;
            let size = usize::from_str_radix(line.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2]; // data + CRLF
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = find("content-length") {
        body = vec![0; len.parse().ok()?];
        reader.read_exact(&mut body).ok()?;
    }
    std::thread::sleep(delay);
    let answer = if (200..300).contains(&status) { "" } else { "no thanks" };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} Scripted\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
    Some(Recorded { method, path, headers, body })
}

/// A port on 127.0.0.1 with nothing listening: bound, then released.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

// ---------------------------------------------------------------- fixtures

const DAY_2026_10_01: i64 = 1_790_812_800;

fn replay_alert() -> Alert {
    Alert {
        kind: AlertKind::DkimReplaySuspected,
        state: AlertState::Firing,
        domain: "example.com".into(),
        severity: Severity::Critical,
        window_start: DAY_2026_10_01,
        window_end: DAY_2026_10_01 + 86_400,
        observed: 48_000.0,
        baseline: 120.0,
        sources: vec![
            AlertSource {
                ip: "203.0.113.7".into(),
                network: "203.0.113.0/24".into(),
                messages: 30_000,
                ptr: Some("mx.bulk.example.net".into()),
                asn: Some(64500),
                as_org: Some("Example Transit".into()),
                country: Some("NL".into()),
                service: None,
                status: None,
            },
            AlertSource {
                ip: "2001:db8::25".into(),
                network: "2001:db8::/48".into(),
                messages: 18_000,
                ptr: None,
                asn: None,
                as_org: None,
                country: None,
                service: None,
                status: None,
            },
        ],
        selectors: vec![AlertSelector {
            domain: "example.com".into(),
            selector: "s2024".into(),
            messages: 48_000,
        }],
        reporters: vec![AlertReporter { org: "google.com".into(), messages: 48_000 }],
        first_seen: DAY_2026_10_01 + 3600,
        episode: None,
        historical: false,
        summary: "48000 DKIM-signed messages from unknown sources; rotate selector s2024".into(),
        details: serde_json::Map::new(),
    }
}

fn webhook(url: String, token: Option<&str>, format: WebhookFormat) -> WebhookConfig {
    WebhookConfig { url, bearer_token: token.map(ruaflow_schema::secret::Secret::value), format }
}

fn config(webhooks: Vec<WebhookConfig>, alertmanager: Vec<AlertmanagerConfig>, retries: u32) -> SinkConfig {
    SinkConfig { webhooks, alertmanager, email: vec![], timeout_ms: 2000, retries }
}

const FLUSH: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- tests

/// A token in a file is read at each delivery: a rotated file is picked up, and a
/// missing one is an error that names the endpoint, never a request without the token.
#[test]
fn webhook_token_from_a_file_is_read_at_each_delivery() {
    let server = TestServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "first-token\n").expect("write");
    let hook = WebhookConfig {
        url: server.url("/hooks/ruaflow"),
        bearer_token: Some(ruaflow_schema::secret::Secret::file(&token_file)),
        format: WebhookFormat::Generic,
    };
    assert!(!format!("{hook:?}").contains("first-token"));
    let sinks = Sinks::start(&config(vec![hook], vec![], 0)).expect("start");
    sinks.emit(&replay_alert());
    assert!(sinks.flush(FLUSH));
    std::fs::write(&token_file, "rotated-token").expect("rotate");
    sinks.emit(&replay_alert());
    assert!(sinks.flush(FLUSH));
    std::fs::remove_file(&token_file).expect("remove");
    sinks.emit(&replay_alert());
    sinks.flush(FLUSH);
    let tokens: Vec<Option<String>> =
        server.requests().iter().map(|r| r.header("authorization").map(str::to_owned)).collect();
    assert_eq!(tokens, [Some("Bearer first-token".to_owned()), Some("Bearer rotated-token".to_owned())]);
}

#[test]
fn generic_webhook_receives_alert_json_text_and_bearer_token() {
    let server = TestServer::start(&[]);
    let hook = webhook(server.url("/hooks/ruaflow"), Some("s3cret-token"), WebhookFormat::Generic);
    let sinks = Sinks::start(&config(vec![hook], vec![], 3)).expect("start");
    sinks.emit(&replay_alert());
    assert!(sinks.flush(FLUSH), "delivered before the flush timeout");

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/hooks/ruaflow"));
    assert_eq!(request.header("authorization"), Some("Bearer s3cret-token"));
    assert!(request.header("content-type").is_some_and(|v| v.starts_with("application/json")));
    let body = request.json();
    assert_eq!(body["kind"], "dkim_replay_suspected");
    assert_eq!(body["domain"], "example.com");
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["sources"][0]["ip"], "203.0.113.7");
    assert_eq!(
        body["text"],
        "[CRITICAL] dkim_replay_suspected example.com 2026-10-01: \
         48000 DKIM-signed messages from unknown sources; rotate selector s2024"
    );
    // The rest of the body is the Alert itself.
    let mut alert_part = body.clone();
    alert_part.as_object_mut().expect("object").remove("text");
    let alert: Alert = serde_json::from_value(alert_part).expect("body is an Alert plus text");
    assert_eq!(alert, replay_alert());
}

#[test]
fn slack_webhook_receives_only_text() {
    let server = TestServer::start(&[]);
    let hook = webhook(server.url("/services/T0/B0/XYZ"), None, WebhookFormat::Slack);
    let sinks = Sinks::start(&config(vec![hook], vec![], 3)).expect("start");
    let mut resolved = replay_alert();
    resolved.state = AlertState::Resolved;
    sinks.emit(&replay_alert());
    sinks.emit(&resolved);
    assert!(sinks.flush(FLUSH));

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].header("authorization"), None);
    let firing = requests[0].json();
    let keys: Vec<&String> = firing.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["text"]);
    let text = firing["text"].as_str().expect("text is a string");
    assert!(text.starts_with("[CRITICAL] dkim_replay_suspected example.com 2026-10-01: "), "{text}");
    assert!(text.contains("203.0.113.7 (30000 messages"), "{text}");
    assert!(text.contains("s2024._domainkey.example.com"), "{text}");
    assert!(text.lines().count() >= 3, "{text}");
    let resolved_text = requests[1].json()["text"].as_str().expect("text").to_owned();
    assert!(resolved_text.starts_with("[RESOLVED] dkim_replay_suspected"), "{resolved_text}");
}

#[test]
fn alertmanager_receives_v2_alert_array_without_ips_in_labels() {
    let server = TestServer::start(&[]);
    let am = AlertmanagerConfig { url: server.url("/") };
    let sinks = Sinks::start(&config(vec![], vec![am], 3)).expect("start");
    sinks.emit(&replay_alert());
    assert!(sinks.flush(FLUSH));

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!((requests[0].method.as_str(), requests[0].path.as_str()), ("POST", "/api/v2/alerts"));
    let body = requests[0].json();
    let alerts = body.as_array().expect("an array of postable alerts");
    assert_eq!(alerts.len(), 1);
    let labels = alerts[0]["labels"].as_object().expect("labels");
    assert_eq!(labels["alertname"], "dkim_replay_suspected");
    assert_eq!(labels["domain"], "example.com");
    assert_eq!(labels["severity"], "critical");
    assert_eq!(labels["source"], "ruaflow");
    for (name, value) in labels {
        let value = value.as_str().expect("label values are strings");
        assert!(value.parse::<IpAddr>().is_err(), "label {name} holds an IP: {value}");
        for source in &replay_alert().sources {
            assert!(!value.contains(&source.ip) && !value.contains(&source.network), "label {name}: {value}");
        }
    }
    let annotations = &alerts[0]["annotations"];
    assert!(annotations["description"].as_str().is_some_and(|d| d.contains("203.0.113.7")));
    assert!(annotations["selector"].as_str().is_some_and(|s| s.contains("s2024._domainkey.example.com")));
    assert_eq!(annotations["summary"], replay_alert().summary);
    assert_eq!(alerts[0]["startsAt"].as_str().map(|s| s.len()), Some("2026-10-01T01:00:00Z".len()));
    assert!(alerts[0]["endsAt"].as_str().is_some_and(|s| s.ends_with('Z')));
}

#[test]
fn server_error_is_retried_and_delivered_once() {
    let server = TestServer::start(&[500, 200]);
    let hook = webhook(server.url("/hook"), None, WebhookFormat::Generic);
    let sinks = Sinks::start(&config(vec![hook], vec![], 3)).expect("start");
    let started = Instant::now();
    sinks.emit(&replay_alert());
    assert!(sinks.flush(FLUSH));

    let requests = server.requests();
    assert_eq!(requests.len(), 2, "one 500, then one delivery, then nothing");
    assert_eq!(requests[0].body, requests[1].body, "the retry sends the same body");
    assert!(started.elapsed() >= Duration::from_millis(200), "waited the first backoff");
}

#[test]
fn client_error_is_not_retried() {
    let server = TestServer::start(&[400]);
    let hook = webhook(server.url("/hook"), None, WebhookFormat::Generic);
    let sinks = Sinks::start(&config(vec![hook], vec![], 3)).expect("start");
    sinks.emit(&replay_alert());
    assert!(sinks.flush(FLUSH), "a permanent error is given up on at once");
    assert_eq!(server.requests().len(), 1);

    // 429 is the exception among 4xx: rate limited, so retried.
    let server = TestServer::start(&[429, 200]);
    let hook = webhook(server.url("/hook"), None, WebhookFormat::Generic);
    let sinks = Sinks::start(&config(vec![hook], vec![], 3)).expect("start");
    sinks.emit(&replay_alert());
    assert!(sinks.flush(FLUSH));
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn unreachable_endpoint_does_not_block_emit_and_flush_gives_up() {
    let url = format!("http://127.0.0.1:{}/hook", closed_port());
    let sinks =
        Sinks::start(&config(vec![webhook(url, None, WebhookFormat::Generic)], vec![], 2)).expect("start");
    let started = Instant::now();
    sinks.emit(&replay_alert());
    let emit_took = started.elapsed();
    assert!(emit_took < Duration::from_millis(50), "emit took {emit_took:?}");
    assert!(sinks.flush(FLUSH), "flush returns once the retries are spent");
    // Two retries: 200 ms + 400 ms of backoff between three refused connections.
    let flush_took = started.elapsed();
    assert!(flush_took >= Duration::from_millis(600), "gave up after {flush_took:?}, before the retries");
}

#[test]
fn full_queue_drops_alerts_without_blocking_emit() {
    // The first answer takes a second, so the queue fills behind it.
    let server = TestServer::scripted(VecDeque::from([(200, Duration::from_secs(1))]));
    let hook = webhook(server.url("/hook"), None, WebhookFormat::Generic);
    let sinks = Sinks::start(&config(vec![hook], vec![], 0)).expect("start");
    let emitted = QUEUE_CAPACITY + 20;
    let started = Instant::now();
    for _ in 0..emitted {
        sinks.emit(&replay_alert());
    }
    let emit_took = started.elapsed();
    assert!(emit_took < Duration::from_millis(500), "{emitted} emits took {emit_took:?}");
    assert!(sinks.flush(FLUSH));
    let delivered = server.requests().len();
    assert!(delivered < emitted, "alerts beyond the queue were dropped: {delivered} of {emitted}");
    assert!(delivered >= QUEUE_CAPACITY, "the queued ones were delivered: {delivered}");
}

#[test]
fn drop_delivers_what_is_queued() {
    let server = TestServer::start(&[]);
    let am = AlertmanagerConfig { url: server.url("") };
    let hook = webhook(server.url("/hook"), None, WebhookFormat::Slack);
    let sinks = Sinks::start(&config(vec![hook], vec![am], 3)).expect("start");
    sinks.emit(&replay_alert());
    drop(sinks);
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/hook", "/api/v2/alerts"]);
}

#[test]
fn config_debug_redacts_token_and_webhook_path() {
    let config = SinkConfig {
        webhooks: vec![webhook(
            "https://hooks.slack.com/services/T000/B000/PathSecret".into(),
            Some("TokenSecret123"),
            WebhookFormat::Slack,
        )],
        alertmanager: vec![AlertmanagerConfig { url: "http://admin:AmPassword@127.0.0.1:9093".into() }],
        ..SinkConfig::default()
    };
    let debug = format!("{config:?}");
    for secret in ["TokenSecret123", "PathSecret", "AmPassword"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    assert!(debug.contains("hooks.slack.com") && debug.contains("Secret([redacted])"), "{debug}");
    let sinks = Sinks::start(&config).expect("start");
    assert!(!format!("{sinks:?}").contains("PathSecret"));
}

#[test]
fn config_has_defaults_and_rejects_unknown_fields() {
    let config: SinkConfig = serde_json::from_str("{}").expect("empty config");
    assert_eq!((config.timeout_ms, config.retries), (5000, 3));
    assert!(config.webhooks.is_empty() && config.alertmanager.is_empty());

    let config: SinkConfig = serde_json::from_str(
        r#"{"webhooks": [{"url": "https://example.com/h", "format": "slack"}],
            "alertmanager": [{"url": "http://127.0.0.1:9093"}], "retries": 1}"#,
    )
    .expect("full config");
    assert_eq!(config.webhooks[0].format, WebhookFormat::Slack);
    assert_eq!(config.webhooks[0].bearer_token, None);
    assert_eq!((config.timeout_ms, config.retries), (5000, 1));

    for bad in [
        r#"{"timeout": 5}"#,
        r#"{"webhooks": [{"url": "https://example.com/h", "token": "x"}]}"#,
        r#"{"webhooks": [{"url": "https://example.com/h", "format": "teams"}]}"#,
        r#"{"alertmanager": [{"url": "http://am", "path": "/x"}]}"#,
    ] {
        assert!(serde_json::from_str::<SinkConfig>(bad).is_err(), "accepted {bad}");
    }
}

#[test]
fn start_rejects_invalid_config() {
    let bad_configs = [
        config(vec![webhook("ftp://example.com/h".into(), None, WebhookFormat::Generic)], vec![], 3),
        config(vec![webhook("example.com/h".into(), None, WebhookFormat::Generic)], vec![], 3),
        config(
            vec![webhook("https://example.com/h".into(), Some("a\r\nX: y"), WebhookFormat::Generic)],
            vec![],
            3,
        ),
        config(vec![], vec![AlertmanagerConfig { url: "http://am:9093/?x=1".into() }], 3),
        SinkConfig { timeout_ms: 0, ..SinkConfig::default() },
    ];
    for config in bad_configs {
        match Sinks::start(&config) {
            Err(err @ SinkError::Config { .. }) => assert!(!err.is_retriable()),
            other => panic!("{config:?} gave {other:?}"),
        }
    }
}
