//! End-to-end tests of the IMAP source of `ruaflow run`: a real Dovecot on a loopback
//! port (`tests/services/dovecot`), messages delivered straight into its maildir, the
//! binary reading them through an `[[imap]]` section, and the result checked in the
//! SQLite store and in the maildir on disk (Dovecot's Maildir++ layout: folder
//! `ruaflow/processed` is `mail/.ruaflow.processed`).
//!
//! Needs `dovecot` (Debian `dovecot-imapd`, installed by `tests/run`) and root; without
//! them the tests fail with the reason, they never skip.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::dovecot::{
    self, broken_mail, maildir_name, report_mail, run_ruaflow, run_ruaflow_once, Dovecot, PLAIN,
};
use common::Running;

/// A `ruaflow run` process reading the Dovecot mailbox, its log `ruaflow-{run}.log` in
/// `dir`; killed on drop unless stopped.
fn run_imap(dir: &Path, dovecot: &Dovecot, db: &Path, run: usize) -> Running {
    run_ruaflow(dir, &dovecot.plain_section(), db, run)
}

fn count(db: &Path, sql: &str) -> i64 {
    if !db.exists() {
        return -1;
    }
    let Ok(conn) = rusqlite::Connection::open(db) else { return -1 };
    let _ = conn.busy_timeout(Duration::from_secs(10));
    conn.query_row(sql, [], |r| r.get(0)).unwrap_or(-1)
}

/// Polls `check` for up to 60 s; panics with `what` and the logs when it never holds.
fn wait_until(what: &str, logs: impl Fn() -> String, check: impl FnMut() -> bool) {
    common::wait_until(what, Duration::from_secs(60), logs, check);
}

/// A DMARC failure (forensic) report mail of the corpus.
fn failure_mail() -> Vec<u8> {
    let mails = dovecot::corpus_mails(&["failure"]);
    let (_, bytes) =
        mails.iter().find(|(name, _)| name == "dmarc_ruf_report_linkedin.eml").expect("in the corpus");
    bytes.clone()
}

/// The corpus's report mails: three DMARC aggregate reports and one SMTP TLS report.
fn corpus_mails() -> Vec<(String, Vec<u8>)> {
    let mails = dovecot::corpus_mails(&["aggregate", "smtp_tls"]);
    assert_eq!(mails.len(), 4, "the corpus holds 3 aggregate and 1 smtp_tls .eml");
    mails
}

/// Delivers one mail of each kind but the broken one: the 4 corpus report mails
/// (returned), a mail holding no report and a failure report.
fn deliver_each_kind(dovecot: &Dovecot) -> Vec<(String, Vec<u8>)> {
    let mails = corpus_mails();
    for (n, (_, bytes)) in mails.iter().enumerate() {
        dovecot.deliver(&maildir_name(n), bytes);
    }
    dovecot.deliver(&maildir_name(10), PLAIN.as_bytes());
    dovecot.deliver(&maildir_name(11), &failure_mail());
    mails
}

#[test]
fn imap_reports_stored_then_moved_by_kind() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dovecot = Dovecot::start(tmp.path());
    deliver_each_kind(&dovecot);
    dovecot.deliver(&maildir_name(12), broken_mail("broken").as_bytes());
    assert_eq!(dovecot.count(""), 7);

    let db = tmp.path().join("ruaflow.db");
    let mut ruaflow = run_imap(tmp.path(), &dovecot, &db, 1);
    let logs = || format!("{}\n--- dovecot\n{}", ruaflow.stderr(), dovecot.log());
    wait_until("4 reports and 1 dead letter in the store", logs, || {
        count(&db, "SELECT count(*) FROM reports") == 4
            && count(&db, "SELECT count(*) FROM dead_letters") == 1
    });
    wait_until("the folders to settle", logs, || {
        dovecot.count("") == 0
            && dovecot.count("ruaflow.processed") == 4
            && dovecot.count("ruaflow.failures") == 1
            && dovecot.count("ruaflow.ignored") == 1
            && dovecot.count("ruaflow.invalid") == 1
    });
    assert_eq!(
        count(&db, "SELECT count(*) FROM envelopes WHERE source = 'imap' AND origin LIKE 'ruaflow@127.0.0.1/INBOX/%'"),
        6,
        "the 4 report mails, the failure report and the broken one were stored as imap envelopes (the plain mail is not)"
    );
    // The plain mail never reached the store; the broken one is a dead letter.
    let ignored: Vec<String> = ["cur", "new"]
        .iter()
        .flat_map(|sub| {
            std::fs::read_dir(dovecot.maildir().join(".ruaflow.ignored").join(sub)).into_iter().flatten()
        })
        .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("read ignored mail"))
        .collect();
    assert!(ignored.len() == 1 && ignored[0].contains("lunch?"), "the plain mail is the ignored one");
    assert!(ruaflow.terminate(), "SIGTERM exits 0; log:\n{}", ruaflow.stderr());
    eprintln!("imap_reports_stored_then_moved_by_kind took {:?}", started.elapsed());
}

#[test]
fn imap_restart_picks_up_new_mail_and_stores_nothing_twice() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dovecot = Dovecot::start(tmp.path());
    let mails = corpus_mails();
    let db = tmp.path().join("ruaflow.db");
    dovecot.deliver(&maildir_name(0), &mails[0].1);
    dovecot.deliver(&maildir_name(1), &mails[1].1);

    let mut first = run_imap(tmp.path(), &dovecot, &db, 1);
    let logs = || format!("{}\n--- dovecot\n{}", first.stderr(), dovecot.log());
    wait_until("2 reports, both moved", logs, || {
        count(&db, "SELECT count(*) FROM reports") == 2 && dovecot.count("ruaflow.processed") == 2
    });
    assert!(first.terminate(), "SIGTERM exits 0; log:\n{}", first.stderr());

    // While it is down: one new report, and a redelivery of one already stored.
    dovecot.deliver(&maildir_name(3), &mails[3].1);
    dovecot.deliver(&maildir_name(4), &mails[0].1);
    let mut second = run_imap(tmp.path(), &dovecot, &db, 2);
    let logs = || format!("{}\n--- dovecot\n{}", second.stderr(), dovecot.log());
    wait_until("the new report stored and both mails moved", logs, || {
        count(&db, "SELECT count(*) FROM reports") == 3
            && dovecot.count("") == 0
            && dovecot.count("ruaflow.processed") == 4
    });
    // And once more while it runs (IDLE wakes it).
    dovecot.deliver(&maildir_name(5), &mails[2].1);
    wait_until("the mail delivered while running", logs, || {
        count(&db, "SELECT count(*) FROM reports") == 4
            && dovecot.count("") == 0
            && dovecot.count("ruaflow.processed") == 5
    });
    assert_eq!(count(&db, "SELECT count(*) FROM reports"), 4, "nothing stored twice");
    assert_eq!(count(&db, "SELECT count(*) FROM envelopes"), 4, "the redelivered mail is a known envelope");
    assert_eq!(count(&db, "SELECT count(*) FROM dead_letters"), 0);
    assert!(second.terminate(), "SIGTERM exits 0; log:\n{}", second.stderr());
}

#[test]
fn imap_over_implicit_tls_with_a_private_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dovecot = Dovecot::start_with(tmp.path(), &["--tls"]);
    let mails = corpus_mails();
    dovecot.deliver(&maildir_name(0), &mails[3].1);
    let db = tmp.path().join("ruaflow.db");
    let section = format!(
        "host = \"localhost\"\nport = {}\ntls = \"implicit\"\nca_file = \"{}\"\n",
        dovecot.port,
        dovecot.dir.join("ca.pem").display()
    );
    let mut ruaflow = run_ruaflow(tmp.path(), &section, &db, 1);
    let logs = || format!("{}\n--- dovecot\n{}", ruaflow.stderr(), dovecot.log());
    wait_until("the report stored over TLS and moved", logs, || {
        count(&db, "SELECT count(*) FROM reports") == 1 && dovecot.count("ruaflow.processed") == 1
    });
    assert!(dovecot.log().contains("TLS"), "the session was TLS");
    assert!(ruaflow.terminate(), "SIGTERM exits 0; log:\n{}", ruaflow.stderr());
}

/// The Message-IDs of the messages in a folder on disk (`cur/` and `new/`), one per file.
fn message_ids(dovecot: &Dovecot, folder: &str) -> Vec<String> {
    ["cur", "new"]
        .iter()
        .flat_map(|sub| {
            std::fs::read_dir(dovecot.maildir().join(format!(".{folder}")).join(sub)).into_iter().flatten()
        })
        .map(|e| {
            let text = std::fs::read_to_string(e.expect("entry").path()).expect("read mail");
            let line = text.lines().find(|l| l.starts_with("Message-ID:")).expect("a Message-ID");
            line["Message-ID:".len()..].trim().to_owned()
        })
        .collect()
}

#[test]
fn imap_killed_mid_batch_loses_and_repeats_nothing() {
    const MAILS: usize = 150;
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dovecot = Dovecot::start(tmp.path());
    for n in 0..MAILS {
        dovecot.deliver(&maildir_name(n), report_mail(&format!("kill-{n:03}")).as_bytes());
    }
    let db = tmp.path().join("ruaflow.db");

    // Two runs killed with SIGKILL (no shutdown, no final commit, maybe between a commit
    // and its move), each once more mail has left INBOX; then a run to the end.
    let mut left_at_kill = Vec::new();
    for (run, moved) in [(1, 20), (2, 70)] {
        let mut ruaflow = run_imap(tmp.path(), &dovecot, &db, run);
        let logs = || format!("{}\n--- dovecot\n{}", ruaflow.stderr(), dovecot.log());
        wait_until(&format!("run {run}: {moved} mails moved"), logs, || {
            dovecot.count("ruaflow.processed") >= moved
        });
        let mut child = ruaflow.child.take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        left_at_kill.push(dovecot.count(""));
    }
    assert!(
        left_at_kill.iter().all(|&left| left > 0),
        "each kill came mid-batch: {left_at_kill:?} left in INBOX"
    );

    let mut last = run_imap(tmp.path(), &dovecot, &db, 3);
    let logs = || format!("{}\n--- dovecot\n{}", last.stderr(), dovecot.log());
    wait_until("INBOX empty and every mail in processed", logs, || {
        dovecot.count("") == 0
            && dovecot.count("ruaflow.processed") == MAILS
            && count(&db, "SELECT count(*) FROM reports") == MAILS as i64
    });
    assert!(last.terminate(), "SIGTERM exits 0; log:\n{}", last.stderr());

    assert_eq!(count(&db, "SELECT count(*) FROM reports"), MAILS as i64, "nothing stored twice");
    assert_eq!(count(&db, "SELECT count(DISTINCT report_id) FROM reports"), MAILS as i64, "nothing lost");
    assert_eq!(count(&db, "SELECT count(*) FROM reports WHERE report_id LIKE 'kill-%'"), MAILS as i64);
    assert_eq!(count(&db, "SELECT count(*) FROM dead_letters"), 0);
    let mut ids = message_ids(&dovecot, "ruaflow.processed");
    assert_eq!(ids.len(), MAILS, "processed holds each mail once");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), MAILS, "no mail duplicated in processed");
    assert_eq!(dovecot.folders(), (0, MAILS, 0, 0, 0));
    eprintln!(
        "imap_killed_mid_batch_loses_and_repeats_nothing: {left_at_kill:?} left in INBOX at the kills, took {:?}",
        started.elapsed()
    );
}

#[test]
fn imap_survives_the_server_dropping_the_connection() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dovecot = Dovecot::start(tmp.path());
    let mails = corpus_mails();
    dovecot.deliver(&maildir_name(0), &mails[0].1);
    let db = tmp.path().join("ruaflow.db");
    let mut ruaflow = run_imap(tmp.path(), &dovecot, &db, 1);
    let logs = || format!("{}\n--- dovecot\n{}", ruaflow.stderr(), dovecot.log());
    wait_until("the first report stored and moved", logs, || {
        count(&db, "SELECT count(*) FROM reports") == 1 && dovecot.count("ruaflow.processed") == 1
    });

    // Twice: the server drops the (idle) connection, then new mail arrives.
    for (round, mail) in [(1, &mails[1]), (2, &mails[3])] {
        let opened = |log: &str| log.matches("imap mailbox open").count();
        wait_until("the session to be open", logs, || opened(&ruaflow.stderr()) == round);
        assert!(dovecot.kill_sessions() >= 1, "round {round}: a session to kill; logs:\n{}", logs());
        wait_until("the dropped connection noticed", logs, || {
            ruaflow.stderr().matches("imap mailbox unavailable").count() == round
        });
        dovecot.deliver(&maildir_name(round), &mail.1);
        wait_until("a reconnect that stores and moves the new mail", logs, || {
            count(&db, "SELECT count(*) FROM reports") == 1 + round as i64
                && dovecot.count("") == 0
                && dovecot.count("ruaflow.processed") == 1 + round
        });
        assert_eq!(opened(&ruaflow.stderr()), round + 1, "one reconnect; logs:\n{}", logs());
    }
    assert_eq!(count(&db, "SELECT count(*) FROM dead_letters"), 0);
    assert!(ruaflow.terminate(), "SIGTERM exits 0; log:\n{}", ruaflow.stderr());
    eprintln!("imap_survives_the_server_dropping_the_connection took {:?}", started.elapsed());
}

#[test]
fn imap_over_starttls() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dovecot = Dovecot::start_with(tmp.path(), &["--starttls"]);
    let mails = corpus_mails();
    for (n, (_, bytes)) in mails.iter().enumerate() {
        dovecot.deliver(&maildir_name(n), bytes);
    }
    let db = tmp.path().join("ruaflow.db");
    let section = format!(
        "host = \"localhost\"\nport = {}\ntls = \"starttls\"\nca_file = \"{}\"\n",
        dovecot.port,
        dovecot.dir.join("ca.pem").display()
    );
    let mut ruaflow = run_ruaflow(tmp.path(), &section, &db, 1);
    let logs = || format!("{}\n--- dovecot\n{}", ruaflow.stderr(), dovecot.log());
    wait_until("the 4 reports stored after STARTTLS and moved", logs, || {
        count(&db, "SELECT count(*) FROM reports") == 4 && dovecot.folders() == (0, 4, 0, 0, 0)
    });
    // Dovecot counts a loopback client as secured, so it would accept a plaintext login
    // here too (ssl = required notwithstanding): the proof of the upgrade is its log,
    // which marks a login over TLS `TLS` and a plain loopback one `secured`.
    let log = dovecot.log();
    let logins: Vec<&str> = log.lines().filter(|l| l.contains("Login: user=<ruaflow>")).collect();
    assert!(
        !logins.is_empty() && logins.iter().all(|l| l.contains(", TLS,")),
        "every login over TLS:\n{}",
        logs()
    );
    assert!(ruaflow.terminate(), "SIGTERM exits 0; log:\n{}", ruaflow.stderr());
}

#[test]
fn imap_once_reads_what_is_there_files_it_and_exits() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dovecot = Dovecot::start(tmp.path());
    let mails = deliver_each_kind(&dovecot);
    let db = tmp.path().join("ruaflow.db");

    let (ok, out, err) = run_ruaflow_once(tmp.path(), &dovecot.plain_section(), &db, 1);
    assert!(ok, "run --once exits 0; log:\n{err}\n--- dovecot\n{}", dovecot.log());
    assert!(out.contains("4 reports,"), "the summary counts the 4 reports: {out}");
    assert_eq!(count(&db, "SELECT count(*) FROM reports"), 4);
    assert_eq!(
        (dovecot.count(""), dovecot.count("ruaflow.processed"), dovecot.count("ruaflow.failures")),
        (0, 4, 1),
        "every report filed by kind before the exit"
    );
    assert_eq!(dovecot.count("ruaflow.ignored"), 1);

    // Nothing new: a second one-shot run reads nothing, stores nothing, and exits 0.
    dovecot.deliver(&maildir_name(20), &mails[0].1);
    let (ok, out, err) = run_ruaflow_once(tmp.path(), &dovecot.plain_section(), &db, 2);
    assert!(ok, "second run --once exits 0; log:\n{err}");
    assert!(
        out.contains("0 reports,") && out.contains("1 duplicate"),
        "a resent report is not stored twice: {out}"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM reports"), 4);
    assert_eq!((dovecot.count(""), dovecot.count("ruaflow.processed")), (0, 5));
    eprintln!("imap_once_reads_what_is_there_files_it_and_exits took {:?}", started.elapsed());
}

/// The lines of `log` that show async-imap's internal rendering instead of the server's
/// words.
fn debug_text(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("code: ") || l.contains("Some(") || l.contains("info: ")).collect()
}

#[test]
fn imap_errors_name_the_account_the_port_and_what_exists() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dovecot = Dovecot::start(tmp.path());
    dovecot.deliver(&maildir_name(0), &corpus_mails()[0].1);
    let db = tmp.path().join("ruaflow.db");
    let port = dovecot.port;

    // A wrong password: refused, said once in the server's words, not retried by --once.
    let wrong = format!("{}password = \"not-the-password\"\n", dovecot.plain_section());
    let (ok, _, err) = run_ruaflow_once(tmp.path(), &wrong, &db, 1);
    assert!(!ok, "a refused login fails the one-shot run");
    let said = format!("IMAP login refused for ruaflow at 127.0.0.1:{port}: AUTHENTICATIONFAILED");
    assert_eq!(err.matches(&said).count(), 1, "said once, in these words:\n{err}");
    assert!(debug_text(&err).is_empty(), "no internal debug text:\n{err}");

    // A folder that does not exist: named, with the folders that do.
    let missing = format!("{}folder = \"Reports/DMARC\"\n", dovecot.plain_section());
    let (ok, _, err) = run_ruaflow_once(tmp.path(), &missing, &db, 2);
    assert!(!ok, "a missing folder fails the one-shot run");
    let said = format!(
        "IMAP folder \"Reports/DMARC\" not found for ruaflow at 127.0.0.1:{port}; the folders there are: INBOX, ruaflow, ruaflow/failures, ruaflow/ignored, ruaflow/invalid, ruaflow/processed"
    );
    assert!(err.contains(&said), "expected {said:?} in:\n{err}");
    assert_eq!(dovecot.count(""), 1, "nothing read");

    // Nothing listening: the error names the host and the port.
    let closed = common::free_port();
    let (ok, _, err) = run_ruaflow_once(
        tmp.path(),
        &format!("host = \"127.0.0.1\"\nport = {closed}\ntls = \"none\"\n"),
        &db,
        3,
    );
    assert!(!ok, "an unreachable server fails the one-shot run");
    assert!(
        err.contains(&format!("cannot connect to IMAP server 127.0.0.1:{closed}: Connection refused")),
        "host and port in the error:\n{err}"
    );
    assert!(debug_text(&err).is_empty(), "no internal debug text:\n{err}");
}

#[test]
fn imap_refused_login_told_once_retried_and_recovered_from_a_password_file() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dovecot = Dovecot::start(tmp.path());
    dovecot.deliver(&maildir_name(0), &corpus_mails()[0].1);
    let db = tmp.path().join("ruaflow.db");
    let password = tmp.path().join("imap.password");
    std::fs::write(&password, "an-old-password\n").expect("write password");
    let section = format!("{}password = {{ file = \"{}\" }}\n", dovecot.plain_section(), password.display());
    let mut ruaflow = run_ruaflow(tmp.path(), &section, &db, 1);
    let logs = || format!("{}\n--- dovecot\n{}", ruaflow.stderr(), dovecot.log());
    let refusals = || dovecot.log().matches("auth failed").count();
    wait_until("a second refused login (a retry)", logs, || refusals() >= 2);
    let said = format!("IMAP login refused for ruaflow at 127.0.0.1:{}: AUTHENTICATIONFAILED", dovecot.port);
    assert_eq!(ruaflow.stderr().matches(&said).count(), 1, "told once, not at each retry:\n{}", logs());
    assert!(
        ruaflow.stderr().lines().any(|l| l.contains("ERROR") && l.contains(&said)),
        "at ERROR:\n{}",
        logs()
    );
    assert!(debug_text(&ruaflow.stderr()).is_empty(), "no internal debug text:\n{}", logs());

    // The password file is fixed while it runs: the next attempt reads it and gets in.
    std::fs::write(&password, "ruaflow-test\n").expect("fix password");
    wait_until("the report stored once the password is right", logs, || {
        count(&db, "SELECT count(*) FROM reports") == 1 && dovecot.count("ruaflow.processed") == 1
    });
    assert!(ruaflow.stderr().contains("imap mailbox available again"), "{}", logs());
    assert!(!ruaflow.stderr().contains("an-old-password") && !ruaflow.stderr().contains("ruaflow-test"));
    assert!(ruaflow.terminate(), "SIGTERM exits 0; log:\n{}", ruaflow.stderr());
    eprintln!(
        "imap_refused_login_told_once_retried_and_recovered_from_a_password_file took {:?}",
        started.elapsed()
    );
}
