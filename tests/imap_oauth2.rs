//! End-to-end tests of OAuth2 logins to a mailbox: SASL XOAUTH2 and OAUTHBEARER against a
//! real Dovecot whose oauth2 passdb asks a loopback token issuer
//! (`tests/services/oauth2_server.py`) whether each token is active — the issuer ruaflow
//! gets its tokens from by the client-credentials grant, a refresh token, or a command.
//!
//! Checked: reports read and filed with each mechanism, watching and one-shot; a session
//! renewed with a new token before its token expires (tokens living 4 s); a revoked
//! token replaced without troubling the operator; a revoked refresh token, a wrong
//! client secret and a refused token each said once, in words that name the problem;
//! no secret or token in any log.
//!
//! Needs `dovecot` (Debian `dovecot-imapd`), root and `python3`, as tests/imap.rs; without
//! them the tests fail with the reason, they never skip.

mod common;

use std::path::Path;
use std::time::Duration;

use common::dovecot::{self, maildir_name, report_mail, run_ruaflow, run_ruaflow_once, Dovecot};
use common::oauth2::{Issuer, CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN};
use common::Running;

fn count(db: &Path, sql: &str) -> i64 {
    let Ok(conn) = rusqlite::Connection::open(db) else { return -1 };
    let _ = conn.busy_timeout(Duration::from_secs(10));
    conn.query_row(sql, [], |r| r.get(0)).unwrap_or(-1)
}

fn reports(db: &Path) -> i64 {
    if !db.exists() {
        return -1;
    }
    count(db, "SELECT count(*) FROM reports")
}

/// Polls `check` for up to 60 s; panics with `what` and the logs when it never holds.
fn wait_until(what: &str, logs: impl Fn() -> String, check: impl FnMut() -> bool) {
    common::wait_until(what, Duration::from_secs(60), logs, check);
}

/// A Dovecot that takes tokens `issuer` calls active, and the issuer.
fn servers(dir: &Path) -> (Issuer, Dovecot) {
    let issuer = Issuer::start(dir);
    let dovecot = Dovecot::start_with(dir, &["--oauth2", &issuer.introspection_url()]);
    (issuer, dovecot)
}

/// The `[[imap]]` keys for `auth` (`xoauth2` or `oauthbearer`) with `oauth2`, the keys of
/// its `[imap.oauth2]` table.
fn section(dovecot: &Dovecot, auth: &str, oauth2: &str) -> String {
    format!("{}auth = \"{auth}\"\n[imap.oauth2]\n{oauth2}", dovecot.plain_section())
}

/// Client credentials from `issuer`, the secret from the environment.
fn client_credentials(issuer: &Issuer) -> String {
    format!(
        "token_url = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = {{ env = \"TEST_CLIENT_SECRET\" }}\nscope = \"imap\"\n",
        issuer.token_url()
    )
}

/// Fails when a secret or any token `issuer` handed out is in `log`.
fn assert_no_secret(log: &str, issuer: &Issuer) {
    assert!(!log.contains(CLIENT_SECRET), "the client secret is in the log:\n{log}");
    assert!(!log.contains(REFRESH_TOKEN), "the refresh token is in the log:\n{log}");
    for issued in issuer.seen().issued {
        assert!(!log.contains(&issued.token), "a token is in the log:\n{log}");
    }
}

fn both_logs(ruaflow: &Running, dovecot: &Dovecot) -> String {
    format!("{}\n--- dovecot\n{}", ruaflow.stderr(), dovecot.log())
}

#[test]
fn xoauth2_client_credentials_renews_before_expiry_and_replaces_a_revoked_token() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (issuer, dovecot) = servers(tmp.path());
    issuer.control(r#"{"lifetime": 4}"#);
    dovecot.deliver(&maildir_name(0), report_mail("xoauth2-0").as_bytes());
    let db = tmp.path().join("ruaflow.db");
    let mut ruaflow =
        run_ruaflow(tmp.path(), &section(&dovecot, "xoauth2", &client_credentials(&issuer)), &db, 1);
    let logs = || both_logs(&ruaflow, &dovecot);
    wait_until("the first report stored and filed", logs, || {
        reports(&db) == 1 && dovecot.count("ruaflow.processed") == 1
    });

    // Tokens live 4 s: the session is renewed with a new token every 3 s, before expiry.
    wait_until("three tokens issued", logs, || issuer.seen().issued.len() >= 3);
    dovecot.deliver(&maildir_name(1), report_mail("xoauth2-1").as_bytes());
    wait_until("a report read on a renewed session", logs, || reports(&db) == 2);
    let seen = issuer.seen();
    assert!(seen.issued.iter().all(|i| i.grant == "client_credentials" && i.scope == "imap"), "{seen:?}");
    assert_eq!(seen.introspections.inactive, 0, "no expired token was ever presented: {seen:?}");
    assert!(!dovecot.log().contains("auth failed"), "no login refused:\n{}", logs());
    assert!(ruaflow.stderr().contains("imap session renewed before its token expires"), "{}", logs());

    // Long-lived tokens from now on; once one is in use, it is revoked and the session
    // dropped: the reconnect presents the kept (revoked) token, is refused, and logs in
    // with a new one.
    issuer.control(r#"{"lifetime": 3600}"#);
    wait_until("a long-lived token in use", logs, || {
        issuer.seen().issued.last().is_some_and(|i| i.lifetime == 3600)
    });
    std::thread::sleep(Duration::from_millis(500));
    let before = issuer.seen().issued.len();
    issuer.control(r#"{"revoke": "access"}"#);
    assert!(dovecot.kill_sessions() >= 1, "a session to drop:\n{}", logs());
    dovecot.deliver(&maildir_name(2), report_mail("xoauth2-2").as_bytes());
    wait_until("the report read after the revocation", logs, || {
        reports(&db) == 3 && dovecot.count("ruaflow.processed") == 3
    });
    let seen = issuer.seen();
    assert_eq!(seen.issued.len(), before + 1, "one new token after the revocation: {seen:?}");
    assert!(seen.introspections.inactive >= 1, "the revoked token was presented and refused: {seen:?}");
    assert!(ruaflow.stderr().contains("imap refused the kept token; asking for a new one"), "{}", logs());
    assert!(!ruaflow.stderr().contains("IMAP login refused"), "recovered without an error:\n{}", logs());
    assert!(ruaflow.terminate(), "SIGTERM exits 0; log:\n{}", ruaflow.stderr());
    assert_no_secret(&ruaflow.stderr(), &issuer);
}

#[test]
fn oauthbearer_refresh_token_keeps_the_newest_and_tells_a_revoked_grant_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (issuer, dovecot) = servers(tmp.path());
    // Short-lived tokens, and every refresh token works once: the issuer hands out a new
    // one with each token, so only a client that keeps the newest can go on.
    issuer.control(r#"{"lifetime": 4, "rotate": true}"#);
    dovecot.deliver(&maildir_name(0), report_mail("bearer-0").as_bytes());
    let refresh = tmp.path().join("refresh-token");
    std::fs::write(&refresh, format!("{REFRESH_TOKEN}\n")).expect("write refresh token");
    let oauth2 = format!(
        "token_url = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nrefresh_token = {{ file = \"{}\" }}\n",
        issuer.token_url(),
        refresh.display()
    );
    let db = tmp.path().join("ruaflow.db");
    let mut ruaflow = run_ruaflow(tmp.path(), &section(&dovecot, "oauthbearer", &oauth2), &db, 1);
    let logs = || both_logs(&ruaflow, &dovecot);
    wait_until("the first report stored and filed", logs, || {
        reports(&db) == 1 && dovecot.count("ruaflow.processed") == 1
    });
    wait_until("three tokens, each from the previous refresh token", logs, || {
        issuer.seen().issued.len() >= 3
    });
    let seen = issuer.seen();
    assert!(seen.refused.is_empty(), "no refresh token used twice: {seen:?}");
    assert_eq!(seen.issued[0].refresh_used.as_deref(), Some(REFRESH_TOKEN));
    assert!(seen.issued[1].refresh_used.as_deref().is_some_and(|r| r != REFRESH_TOKEN), "{seen:?}");
    dovecot.deliver(&maildir_name(1), report_mail("bearer-1").as_bytes());
    wait_until("a report read on a renewed session", logs, || reports(&db) == 2);
    assert!(dovecot.log().contains("method=OAUTHBEARER"), "{}", logs());

    // The grant is revoked: the next renewal gets `invalid_grant`, said once at ERROR
    // however often it is retried.
    issuer.control(r#"{"revoke": "refresh"}"#);
    wait_until("two refused refreshes", logs, || issuer.seen().refused.len() >= 2);
    let said = format!(
        "OAuth2 token endpoint {} gave no token for ruaflow at 127.0.0.1:{}: invalid_grant (the refresh token is expired or revoked)",
        issuer.token_url(),
        dovecot.port
    );
    let lines: Vec<String> =
        ruaflow.stderr().lines().filter(|l| l.contains(&said)).map(str::to_owned).collect();
    assert!(lines.len() == 1 && lines[0].contains("ERROR"), "told once, at ERROR:\n{}", logs());
    assert!(ruaflow.terminate(), "SIGTERM exits 0; log:\n{}", ruaflow.stderr());
    assert_no_secret(&ruaflow.stderr(), &issuer);
}

#[test]
fn one_shot_with_each_mechanism_and_clear_refusals() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (issuer, dovecot) = servers(tmp.path());
    let db = tmp.path().join("ruaflow.db");
    let mails = dovecot::corpus_mails(&["aggregate", "failure"]);

    // XOAUTH2, the token printed by a command.
    for (n, (_, bytes)) in mails.iter().enumerate() {
        dovecot.deliver(&maildir_name(n), bytes);
    }
    let command = format!(
        "token_command = [\"python3\", \"{}\", \"token\", \"{}\"]\n",
        common::oauth2::SERVER,
        issuer.token_url()
    );
    let (ok, out, err) = run_ruaflow_once(tmp.path(), &section(&dovecot, "xoauth2", &command), &db, 1);
    assert!(ok, "run --once with a token command exits 0:\n{err}\n--- dovecot\n{}", dovecot.log());
    assert!(out.contains("3 reports,"), "{out}");
    assert_eq!(
        (dovecot.count(""), dovecot.count("ruaflow.processed"), dovecot.count("ruaflow.failures")),
        (0, 3, 5)
    );
    assert!(dovecot.log().contains("method=XOAUTH2"), "{}", dovecot.log());

    // OAUTHBEARER, client credentials.
    dovecot.deliver(&maildir_name(20), report_mail("once-bearer").as_bytes());
    let (ok, _, err) =
        run_ruaflow_once(tmp.path(), &section(&dovecot, "oauthbearer", &client_credentials(&issuer)), &db, 2);
    assert!(ok, "run --once with OAUTHBEARER exits 0:\n{err}\n--- dovecot\n{}", dovecot.log());
    assert_eq!((reports(&db), dovecot.count("")), (4, 0));
    assert!(dovecot.log().contains("method=OAUTHBEARER"), "{}", dovecot.log());

    // A wrong client secret: the token endpoint's words, and the mail stays.
    dovecot.deliver(&maildir_name(21), report_mail("once-refused").as_bytes());
    let wrong = client_credentials(&issuer).replace("{ env = \"TEST_CLIENT_SECRET\" }", "\"not-the-secret\"");
    let (ok, _, err) = run_ruaflow_once(tmp.path(), &section(&dovecot, "xoauth2", &wrong), &db, 3);
    assert!(!ok, "a refused token request fails the run");
    let said = format!(
        "OAuth2 token endpoint {} gave no token for ruaflow at 127.0.0.1:{}: invalid_client (wrong client secret)",
        issuer.token_url(),
        dovecot.port
    );
    assert_eq!(err.matches(&said).count(), 1, "said once:\n{err}");
    assert!(!err.contains("not-the-secret"), "{err}");

    // A token the server does not accept: the login refusal, with the SASL status.
    let bogus = "token_command = [\"echo\", \"not-a-token-of-the-issuer\"]\n";
    let (ok, _, err) = run_ruaflow_once(tmp.path(), &section(&dovecot, "oauthbearer", bogus), &db, 4);
    assert!(!ok, "a refused login fails the run");
    let said = format!(
        "IMAP login refused for ruaflow at 127.0.0.1:{}: AUTHENTICATIONFAILED (Authentication failed.); token status invalid_token",
        dovecot.port
    );
    assert!(err.contains(&said), "expected {said:?} in:\n{err}");
    assert!(!err.contains("not-a-token-of-the-issuer"), "{err}");
    assert_eq!((reports(&db), dovecot.count("")), (4, 1), "the mail waits for a working login");
}
