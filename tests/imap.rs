//! End-to-end tests of the IMAP source of `ruaflow run`: a real Dovecot on a loopback
//! port (`tests/services/dovecot`), messages delivered straight into its maildir, the
//! binary reading them through an `[[imap]]` section, and the result checked in the
//! SQLite store and in the maildir on disk (Dovecot's Maildir++ layout: folder
//! `ruaflow/processed` is `mail/.ruaflow.processed`).
//!
//! Needs `dovecot` (Debian `dovecot-imapd`, installed by `tests/run`) and root; without
//! them the tests fail with the reason, they never skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVICE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/services/dovecot");

/// A Dovecot started by the service script, stopped on drop.
struct Dovecot {
    dir: PathBuf,
    port: u16,
}

impl Dovecot {
    fn start(parent: &Path) -> Dovecot {
        Self::start_with(parent, &[])
    }

    fn start_with(parent: &Path, extra: &[&str]) -> Dovecot {
        let dir = parent.join("dovecot");
        let port = common::free_port();
        let out = Command::new(SERVICE)
            .args(["start".as_ref(), dir.as_os_str(), port.to_string().as_ref()])
            .args(extra)
            .output()
            .expect("run tests/services/dovecot");
        assert!(
            out.status.success(),
            "cannot start Dovecot (the IMAP tests need it: apt-get install dovecot-imapd, run as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Dovecot { dir, port }
    }

    fn maildir(&self) -> PathBuf {
        self.dir.join("mail")
    }

    /// Delivers a message the way an MDA does: a file in `new/`, owned by the mail user.
    fn deliver(&self, name: &str, bytes: &[u8]) {
        let tmp = self.maildir().join("tmp").join(name);
        std::fs::write(&tmp, bytes).expect("write message");
        let status = Command::new("chown").arg("dovecot:dovecot").arg(&tmp).status().expect("chown");
        assert!(status.success(), "chown dovecot {}", tmp.display());
        std::fs::rename(&tmp, self.maildir().join("new").join(name)).expect("deliver");
    }

    /// Messages in a folder on disk (`""` is INBOX), `cur/` and `new/` together.
    fn count(&self, folder: &str) -> usize {
        let base = if folder.is_empty() { self.maildir() } else { self.maildir().join(format!(".{folder}")) };
        ["cur", "new"]
            .iter()
            .map(|sub| std::fs::read_dir(base.join(sub)).map(|d| d.count()).unwrap_or(0))
            .sum()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new(SERVICE).arg("stop").arg(&self.dir).status();
    }
}

/// A `ruaflow run` process reading the Dovecot mailbox, killed on drop unless stopped.
struct Ruaflow {
    child: Option<Child>,
    log: PathBuf,
}

impl Ruaflow {
    fn start(dir: &Path, dovecot: &Dovecot, db: &Path, run: usize) -> Ruaflow {
        let section = format!("host = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n", dovecot.port);
        Self::start_with(dir, &section, db, run)
    }

    fn start_with(dir: &Path, section: &str, db: &Path, run: usize) -> Ruaflow {
        let config = dir.join("ruaflow.toml");
        std::fs::write(
            &config,
            format!(
                "[[imap]]\n{section}username = \"ruaflow\"\npassword_env = \"TEST_IMAP_PASSWORD\"\npoll_interval_secs = 1\n"
            ),
        )
        .expect("write config");
        let log = dir.join(format!("ruaflow-{run}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_ruaflow"))
            .args(["run", "--offline", "--db"])
            .arg(db)
            .arg("--config")
            .arg(&config)
            .env("TEST_IMAP_PASSWORD", "ruaflow-test")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn ruaflow");
        Ruaflow { child: Some(child), log }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and returns whether the process exited 0 within 30 s.
    fn terminate(&mut self) -> bool {
        common::terminate(self.child.take().expect("running"))
    }
}

impl Drop for Ruaflow {
    fn drop(&mut self) {
        common::reap(self.child.take());
    }
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
fn wait_until(what: &str, logs: impl Fn() -> String, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}; logs:\n{}", logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The corpus's report mails: three DMARC aggregate reports and one SMTP TLS report.
fn corpus_mails() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/parsedmarc");
    let mut mails = Vec::new();
    for sub in ["aggregate", "smtp_tls"] {
        let mut paths: Vec<_> = std::fs::read_dir(root.join(sub))
            .unwrap_or_else(|e| panic!("corpus {}: {e}", root.join(sub).display()))
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        paths.sort();
        for path in paths {
            let name = path.file_name().expect("name").to_string_lossy().into_owned();
            mails.push((name, std::fs::read(&path).expect("read corpus mail")));
        }
    }
    assert_eq!(mails.len(), 4, "the corpus holds 3 aggregate and 1 smtp_tls .eml");
    mails
}

const PLAIN: &str = "From: alice@example.com\r\nTo: dmarc@example.net\r\nSubject: lunch?\r\nMessage-ID: <plain@example.com>\r\nContent-Type: text/plain\r\n\r\nNo report in here.\r\n";

/// A report mail whose gzip attachment is truncated.
const BROKEN: &str = "From: noreply-dmarc@example.org\r\nTo: dmarc@example.net\r\nSubject: Report domain: example.net Submitter: example.org Report-ID: broken-1\r\nMessage-ID: <broken@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/gzip\r\nContent-Disposition: attachment; filename=example.org!example.net!1!2.xml.gz\r\nContent-Transfer-Encoding: base64\r\n\r\nH4sIAAAAAAAAA0tMTAQA\r\n--b--\r\n";

fn maildir_name(n: usize) -> String {
    format!("1700000000.M{n}P1.ruaflow-test")
}

#[test]
fn imap_reports_stored_then_moved_by_kind() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dovecot = Dovecot::start(tmp.path());
    let mails = corpus_mails();
    for (n, (_, bytes)) in mails.iter().enumerate() {
        dovecot.deliver(&maildir_name(n), bytes);
    }
    dovecot.deliver(&maildir_name(10), PLAIN.as_bytes());
    dovecot.deliver(&maildir_name(11), BROKEN.as_bytes());
    assert_eq!(dovecot.count(""), 6);

    let db = tmp.path().join("ruaflow.db");
    let mut ruaflow = Ruaflow::start(tmp.path(), &dovecot, &db, 1);
    let logs = || format!("{}\n--- dovecot\n{}", ruaflow.stderr(), dovecot.log());
    wait_until("4 reports and 1 dead letter in the store", logs, || {
        count(&db, "SELECT count(*) FROM reports") == 4
            && count(&db, "SELECT count(*) FROM dead_letters") == 1
    });
    wait_until("the folders to settle", logs, || {
        dovecot.count("") == 0
            && dovecot.count("ruaflow.processed") == 4
            && dovecot.count("ruaflow.ignored") == 1
            && dovecot.count("ruaflow.invalid") == 1
    });
    assert_eq!(
        count(&db, "SELECT count(*) FROM envelopes WHERE source = 'imap' AND origin LIKE 'ruaflow@127.0.0.1/INBOX/%'"),
        5,
        "the 4 report mails and the broken one were stored as imap envelopes (the plain mail is not)"
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

    let mut first = Ruaflow::start(tmp.path(), &dovecot, &db, 1);
    let logs = || format!("{}\n--- dovecot\n{}", first.stderr(), dovecot.log());
    wait_until("2 reports, both moved", logs, || {
        count(&db, "SELECT count(*) FROM reports") == 2 && dovecot.count("ruaflow.processed") == 2
    });
    assert!(first.terminate(), "SIGTERM exits 0; log:\n{}", first.stderr());

    // While it is down: one new report, and a redelivery of one already stored.
    dovecot.deliver(&maildir_name(3), &mails[3].1);
    dovecot.deliver(&maildir_name(4), &mails[0].1);
    let mut second = Ruaflow::start(tmp.path(), &dovecot, &db, 2);
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
    let mut ruaflow = Ruaflow::start_with(tmp.path(), &section, &db, 1);
    let logs = || format!("{}\n--- dovecot\n{}", ruaflow.stderr(), dovecot.log());
    wait_until("the report stored over TLS and moved", logs, || {
        count(&db, "SELECT count(*) FROM reports") == 1 && dovecot.count("ruaflow.processed") == 1
    });
    assert!(dovecot.log().contains("TLS"), "the session was TLS");
    assert!(ruaflow.terminate(), "SIGTERM exits 0; log:\n{}", ruaflow.stderr());
}
