//! Email alerts end to end: `ruaflow run --once` on a synthetic DKIM replay flood, with an
//! `[[alerts.email]]` section pointing at a real SMTP server on loopback
//! (`tests/services/smtp`: aiosmtpd, STARTTLS with a private CA, AUTH). Every alert the
//! run stores reaches the recipients before the process exits, and says what it is.
//!
//! Needs `python3-aiosmtpd` (installed by `tests/run`); without it the test fails with
//! the reason, it never skips.

mod common;

use std::path::Path;

use common::ruaflow;
use common::smtp::{SmtpServer, PASSWORD};
use mail_parser::MessageParser;

fn config(server: &SmtpServer, password_file: &Path) -> String {
    format!(
        r#"[detect]
# The synthetic reports are months old: notify about them as if they were new.
notify_max_age_days = 100000

[alerts]
retries = 1

[[alerts.email]]
server = "127.0.0.1"
port = {port}
tls = "starttls"
ca_file = "{ca}"
username = "ruaflow"
password = {{ file = "{password}" }}
from = "ruaflow <ruaflow@alerts.example.org>"
to = ["postmaster@example.com", "security@example.com"]
timeout_ms = 10000
"#,
        port = server.port,
        ca = server.ca_file().display(),
        password = password_file.display(),
    )
}

#[test]
fn every_stored_alert_is_mailed_before_run_once_exits() {
    let server = SmtpServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("synth");
    let out = ruaflow()
        .args(["synth", "--seed", "1", "--scenario", "replay-flood", "--out"])
        .arg(&data)
        .output()
        .expect("synth");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config_path = dir.path().join("ruaflow.toml");
    std::fs::write(&config_path, config(&server, &server.password_file(PASSWORD))).expect("write config");

    let db = dir.path().join("ruaflow.db");
    let out = ruaflow()
        .args(["run", "--once", "--offline", "--db"])
        .arg(&db)
        .arg("--config")
        .arg(&config_path)
        .arg(&data)
        .env("RUST_LOG", "info")
        .output()
        .expect("run");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "run --once failed:\n{log}");

    let alerts = ruaflow().args(["alerts", "--json", "--db"]).arg(&db).output().expect("alerts");
    let stored: Vec<serde_json::Value> = String::from_utf8_lossy(&alerts.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert!(
        stored.iter().any(|a| a["kind"] == "dkim_replay_suspected"),
        "the flood raised an alert: {stored:?}"
    );

    let received = server.received();
    assert_eq!(
        received.len(),
        stored.len(),
        "one mail per stored alert; log:\n{log}\nserver:\n{}",
        server.log()
    );
    assert!(!log.contains("alert not delivered") && !log.contains(PASSWORD), "{log}");
    let mut subjects = Vec::new();
    for message in &received {
        assert_eq!(message.envelope["tls"], true);
        assert_eq!(message.envelope["user"], "ruaflow");
        assert_eq!(
            message.envelope["rcpt_tos"],
            serde_json::json!(["postmaster@example.com", "security@example.com"])
        );
        let parsed = MessageParser::default().parse(&message.raw).expect("a message");
        subjects.push(parsed.subject().unwrap_or_default().to_owned());
    }
    // Each stored alert has its mail, named by severity (or state), kind, domain and day.
    // (The store keeps the fullest figures of a day, which may have grown after the mail
    // went out, so the subjects are compared, not the summaries.)
    for alert in &stored {
        let tag = match alert["state"].as_str() {
            Some("resolved") => "RESOLVED".to_owned(),
            _ => alert["severity"].as_str().unwrap_or_default().to_ascii_uppercase(),
        };
        let day = alert["window_start"].as_i64().expect("window_start");
        let date = ruaflow_schema::time::format_date(day);
        let prefix = format!(
            "[ruaflow] {tag} {} {} ",
            alert["kind"].as_str().unwrap_or_default(),
            alert["domain"].as_str().unwrap_or_default()
        );
        assert!(
            subjects.iter().any(|s| s.starts_with(&prefix) && s.contains(&date)),
            "no mail for {prefix}… {date} among {subjects:#?}"
        );
    }
    let replay = received
        .iter()
        .zip(&subjects)
        .find(|(_, s)| s.starts_with("[ruaflow] CRITICAL dkim_replay_suspected example.com "))
        .unwrap_or_else(|| panic!("no replay mail among {subjects:?}"));
    let body =
        MessageParser::default().parse(&replay.0.raw).and_then(|m| m.body_text(0).map(|b| b.into_owned()));
    let body = body.expect("a body");
    let flat = body.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("DKIM replay suspected for example.com on "), "the summary:\n{body}");
    assert!(flat.contains("._domainkey.example.com") && flat.contains("(adkim=s)"), "the advice:\n{body}");
    assert!(body.contains("Top sources:") && body.contains("Reporters:"), "{body}");
}
